/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Message: one delivery of a transaction's payload to one receiving peer
 *
 * Invariants: a message is on its receiver's queue (or is the receiver's
 * seed) and on its destination node's message list until it is received or
 * dropped; while it owns its slice, the slice is busy and unpublished in the
 * receiver's pool; its handle entries hold exactly one in-flight reference
 * each on the receiver's handles, and its fds are charged to the receiver.
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "bus/bus.h"
#include "bus/handle.h"
#include "bus/message.h"
#include "bus/node.h"
#include "bus/peer.h"
#include "bus/pool.h"
#include "bus/user.h"
#include "util/fdlist.h"

/**
 * message_slice_size() - bytes a message occupies in a pool
 * @n_bytes:    payload size
 * @n_handles:  handle entries
 * @n_fds:      fds
 * @n_secctx:   security context bytes
 *
 * Return: ALIGN8(n_bytes) + ALIGN8(8 * n_handles) + ALIGN8(4 * n_fds) +
 *         ALIGN8(n_secctx), at least 8; UINT64_MAX if that overflows.
 */
uint64_t message_slice_size(uint64_t n_bytes, uint64_t n_handles, uint64_t n_fds,
                            uint64_t n_secctx) {
        uint64_t size = 0, part;

        if (align8_overflows(n_bytes) || align8_overflows(n_secctx))
                return UINT64_MAX;
        if (__builtin_add_overflow(size, align8(n_bytes), &size))
                return UINT64_MAX;
        if (__builtin_mul_overflow(n_handles, 8, &part) ||
            __builtin_add_overflow(size, part, &size))
                return UINT64_MAX;
        if (__builtin_mul_overflow(n_fds, 4, &part) || align8_overflows(part) ||
            __builtin_add_overflow(size, align8(part), &size))
                return UINT64_MAX;
        if (__builtin_add_overflow(size, align8(n_secctx), &size))
                return UINT64_MAX;
        return size < 8 ? 8 : size;
}

/**
 * message_fd_offset() - where the fd area of a slice starts
 * @n_bytes:    payload size
 * @n_handles:  handle entries
 *
 * Return: the offset from the slice start; only valid for sizes that
 *         message_slice_size() accepted.
 */
uint64_t message_fd_offset(uint64_t n_bytes, uint64_t n_handles) {
        return align8(n_bytes) + 8 * n_handles;
}

/**
 * message_new() - allocate an empty message
 * @messagep:   out: the message
 * @receiver:   receiving peer
 * @n_handles:  number of handle entries it will carry
 *
 * Return: 0, -ENOMEM.
 */
int message_new(Message **messagep, Peer *receiver, uint64_t n_handles) {
        Message *message;
        size_t size;

        if (__builtin_mul_overflow(n_handles, sizeof(Handle *), &size) ||
            __builtin_add_overflow(size, sizeof(*message), &size))
                return -ENOMEM;

        /* the common message, with no handles, is reused (no malloc per send) */
        message = n_handles ? NULL : freelist_pop(&receiver->bus->message_cache);
        if (message)
                memset(message, 0, size);
        else
                message = calloc(1, size);
        if (!message)
                return -ENOMEM;

        queue_entry_init(&message->entry, QUEUE_ENTRY_DATA);
        list_init(&message->node_link);
        message->receiver = receiver;
        message->destination = UINT64_MAX;
        message->n_handles = n_handles;
        message->reusable = n_handles == 0;
        *messagep = message;
        return 0;
}

/**
 * message_n_fds() - number of fds a message carries
 * @message:    message
 *
 * Return: the count.
 */
uint64_t message_n_fds(const Message *message) {
        return message->fds ? message->fds->n_fds : 0;
}

/**
 * message_free() - drop a message and everything it holds
 * @message:    message, or NULL
 * @seq:        sequence number of the transaction dropping it
 *
 * Unlinks it from the receiver's queue and its node, returns its slice (if
 * it still owns it), its fd charge and its in-flight handle references
 * (which may queue NODE_RELEASE notifications), and drops its node.
 */
void message_free(Message *message, uint64_t seq) {
        Peer *receiver;

        if (!message)
                return;

        receiver = message->receiver;
        queue_remove(&receiver->queue, &message->entry);
        list_unlink(&message->node_link);

        /* the sender's share first: it was charged on top of the rest */
        user_share_sub(receiver->user, message->actor, message->share);
        memset(message->share, 0, sizeof(message->share));

        if (message->slice) {
                user_sub(receiver->user, USER_SLICES, 1);
                user_sub(receiver->user, USER_BYTES, message->slice->size);
                pool_free(&receiver->pool, message->slice);
        }

        if (message->fds) {
                assert(receiver->n_inflight_fds >= message->fds->n_fds);
                receiver->n_inflight_fds -= message->fds->n_fds;
                receiver->bus->n_inflight_fds -= message->fds->n_fds;
                user_sub(receiver->user, USER_FDS, message->fds->n_fds);
                fdlist_unref(message->fds);
        }

        for (uint64_t i = 0; i < message->n_handles; ++i)
                if (message->handles[i])
                        handle_release_inflight(message->handles[i], 1, seq);

        node_unref(message->node);
        /* by its allocation: a received message has n_handles 0 by then */
        if (message->reusable)
                freelist_push(&receiver->bus->message_cache, message);
        else
                free(message);
}
