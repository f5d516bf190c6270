/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Message: one entry received through the native API
 *
 * A Bus1Message holds the entry as the RECV returned it, a reference on its
 * peer (the payload, handle IDs and security context are read in place from
 * the peer's read-only pool, with the slice layout of docs/model.md §5) and
 * the fds the RECV installed.
 *
 * Slice layout, offsets from the slice start: payload at 0; handle IDs
 * (u64) at ALIGN8(n_bytes); fd numbers (int) at + ALIGN8(8 * n_handles);
 * security context at + ALIGN8(4 * n_fds). The library always receives
 * with INSTALL_FDS, so n_fds is the message's fd count, and the broker has
 * written the fd numbers (SLICE_FDS) before the RECV returned. The
 * accessors hand out the installed fds from their own array, which is the
 * same list.
 *
 * Invariants:
 *  - the slice of a DATA message lies wholly inside the peer's mapping
 *    (checked once, in message_fill());
 *  - release_slice is set exactly for a dequeued DATA message (seed
 *    included): it owns the slice and gives it back with SLICE_RELEASE
 *    when it dies; a peeked message owns nothing;
 *  - fds[i] is an fd the message owns, or -1 once stolen; n_installed is 0
 *    for peeked messages, else msg.n_fds.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "bus1/client.h"
#include "client/client.h"
#include "client/message.h"
#include "client/peer.h"
#include "util/macro.h"

struct Bus1Message {
        unsigned long n_refs;           /* atomic */
        Bus1Peer *peer;                 /* NULL until filled */
        ProtoEntry entry;
        bool release_slice;
        int *fds;
        size_t n_installed;
};

/**
 * message_new() - allocate an empty message
 * @messagep:   out: the message, with one reference
 *
 * Return: 0, -ENOMEM.
 */
int message_new(Bus1Message **messagep) {
        Bus1Message *message;

        message = calloc(1, sizeof(*message));
        if (!message)
                return -ENOMEM;
        message->n_refs = 1;
        *messagep = message;
        return 0;
}

/**
 * message_fill() - take over the result of a RECV
 * @message:    a message from message_new()
 * @peer:       the peer it was received on; the message takes a reference
 * @flags:      the RECV flags (BUS1_RECV_FLAG_*)
 * @recv:       the RECV result; its fds are owned by @message afterwards,
 *              even on failure (they are closed then)
 *
 * Return: 0, -EPROTO if the slice is not inside the pool (a broken broker).
 */
int message_fill(Bus1Message *message, Bus1Peer *peer, uint64_t flags, ClientRecv *recv) {
        const ProtoMessage *msg = &recv->entry.msg;
        uint64_t end;

        message->entry = recv->entry;
        message->fds = recv->fds;
        message->n_installed = recv->n_fds;
        recv->fds = NULL;
        recv->n_fds = 0;

        if (msg->type == BUS1_MSG_DATA) {
                if (__builtin_add_overflow(msg->offset, client_slice_size(msg), &end) ||
                    end > peer->client->pool_size)
                        return -EPROTO;
                message->release_slice = !(flags & BUS1_RECV_FLAG_PEEK);
        }
        message->peer = bus1_peer_ref(peer);
        return 0;
}

/**
 * message_free() - close the message's fds and release its slice
 * @message:    message, or NULL
 *
 * Return: NULL.
 */
Bus1Message *message_free(Bus1Message *message) {
        Bus1Peer *peer;

        if (!message)
                return NULL;
        peer = message->peer;

        if (peer && message->release_slice) {
                /*
                 * -ENXIO after a flush, -ESHUTDOWN after a disconnect: the
                 * slice is gone already, which is all this wants.
                 */
                pthread_mutex_lock(&peer->client->lock);
                (void)client_slice_release(peer->client, message->entry.msg.offset);
                pthread_mutex_unlock(&peer->client->lock);
        }
        for (size_t i = 0; i < message->n_installed; ++i)
                safe_close(message->fds[i]);
        free(message->fds);
        bus1_peer_unref(peer);
        free(message);
        return NULL;
}

/**
 * bus1_message_ref() - take a reference
 * @message:    message, or NULL
 *
 * Return: @message.
 */
_public_ Bus1Message *bus1_message_ref(Bus1Message *message) {
        if (message)
                __atomic_add_fetch(&message->n_refs, 1, __ATOMIC_RELAXED);
        return message;
}

/**
 * bus1_message_unref() - drop a reference
 * @message:    message, or NULL
 *
 * With the last reference a dequeued DATA message gives its slice back
 * (SLICE_RELEASE; a peeked one never owned it), every fd that was not
 * stolen is closed, and the peer reference is dropped.
 *
 * Return: NULL.
 */
_public_ Bus1Message *bus1_message_unref(Bus1Message *message) {
        if (!message)
                return NULL;
        if (__atomic_sub_fetch(&message->n_refs, 1, __ATOMIC_ACQ_REL) > 0)
                return NULL;
        return message_free(message);
}

/**
 * bus1_message_get_type() - what the entry is
 * @message:    message
 *
 * Return: BUS1_MSG_DATA, BUS1_MSG_NODE_DESTROY or BUS1_MSG_NODE_RELEASE.
 */
_public_ unsigned int bus1_message_get_type(Bus1Message *message) {
        return (unsigned int)message->entry.msg.type;
}

/**
 * bus1_message_get_flags() - the entry's flags
 * @message:    message
 *
 * Return: BUS1_MSG_FLAG_CONTINUE (another entry of the same transaction
 *         follows) and BUS1_MSG_FLAG_HAS_SECCTX.
 */
_public_ uint64_t bus1_message_get_flags(Bus1Message *message) {
        return message->entry.msg.flags;
}

/**
 * bus1_message_get_destination() - the peer's own handle ID it was sent to
 * @message:    message
 *
 * For NODE_DESTROY the peer's handle to the destroyed node; for
 * NODE_RELEASE the owner handle of the released node; the seed's is
 * BUS1_HANDLE_INVALID.
 *
 * Return: the handle ID.
 */
_public_ uint64_t bus1_message_get_destination(Bus1Message *message) {
        return message->entry.msg.destination;
}

/**
 * bus1_message_get_creds() - the sender's credentials
 * @message:    message
 * @uidp:       out (may be NULL); (uid_t)-1 for notifications
 * @gidp:       out (may be NULL); (gid_t)-1 for notifications
 * @pidp:       out (may be NULL); 0 for notifications
 * @tidp:       out (may be NULL); 0 for notifications
 *
 * The UID, GID and PID are those the broker read with SO_PEERCRED when the
 * sender connected.
 */
_public_ void bus1_message_get_creds(Bus1Message *message, uid_t *uidp, gid_t *gidp,
                                     pid_t *pidp, pid_t *tidp) {
        const ProtoMessage *msg = &message->entry.msg;

        if (uidp)
                *uidp = (uid_t)msg->uid;
        if (gidp)
                *gidp = (gid_t)msg->gid;
        if (pidp)
                *pidp = (pid_t)msg->pid;
        if (tidp)
                *tidp = (pid_t)msg->tid;
}

static const uint8_t *message_slice(Bus1Message *message) {
        return message->peer->client->pool + message->entry.msg.offset;
}

/**
 * bus1_message_get_data() - the payload
 * @message:    message
 * @sizep:      out: its size (may be NULL)
 *
 * Return: a pointer into the peer's read-only pool, valid while the
 *         message lives (for a peeked message: while the entry stays
 *         queued); NULL, with size 0, for notifications.
 */
_public_ const void *bus1_message_get_data(Bus1Message *message, size_t *sizep) {
        if (message->entry.msg.type != BUS1_MSG_DATA) {
                if (sizep)
                        *sizep = 0;
                return NULL;
        }
        if (sizep)
                *sizep = (size_t)message->entry.msg.n_bytes;
        return message_slice(message);
}

/**
 * bus1_message_get_n_handles() - number of handles the message carries
 * @message:    message
 *
 * Return: the count, 0 for notifications.
 */
_public_ size_t bus1_message_get_n_handles(Bus1Message *message) {
        return (size_t)message->entry.msg.n_handles;
}

/**
 * bus1_message_get_handle() - a handle the message carries
 * @message:    message
 * @i:          index below bus1_message_get_n_handles()
 *
 * Each handle of a dequeued message is one user reference of the peer, to
 * be dropped with bus1_peer_handle_release(). In a peeked message an ID
 * the peer released meanwhile may still be the old one.
 *
 * Return: the peer's ID of the handle, or BUS1_HANDLE_INVALID if its node
 *         was destroyed before the message was sent, or if @i is out of
 *         range.
 */
_public_ uint64_t bus1_message_get_handle(Bus1Message *message, size_t i) {
        uint64_t id;

        if (i >= message->entry.msg.n_handles)
                return BUS1_HANDLE_INVALID;
        memcpy(&id, message_slice(message) + align8(message->entry.msg.n_bytes) + 8 * i,
               sizeof(id));
        return id;
}

/**
 * bus1_message_get_n_fds() - number of fds the message carries
 * @message:    message
 *
 * Return: the count (for a peeked message too, although none is installed).
 */
_public_ size_t bus1_message_get_n_fds(Bus1Message *message) {
        return (size_t)message->entry.msg.n_fds;
}

/**
 * bus1_message_get_fd() - an fd the message carries, still owned by it
 * @message:    message
 * @i:          index below bus1_message_get_n_fds()
 *
 * The fd is O_CLOEXEC and is closed with the message's last reference.
 *
 * Return: the fd, or -1 if it was stolen, if the message was peeked (no
 *         fd is installed then), or if @i is out of range.
 */
_public_ int bus1_message_get_fd(Bus1Message *message, size_t i) {
        if (i >= message->n_installed)
                return -1;
        return message->fds[i];
}

/**
 * bus1_message_steal_fd() - take over an fd the message carries
 * @message:    message
 * @i:          index below bus1_message_get_n_fds()
 *
 * Return: the fd, now owned by the caller, or -1 if already stolen, not
 *         installed (peeked message) or @i is out of range.
 */
_public_ int bus1_message_steal_fd(Bus1Message *message, size_t i) {
        if (i >= message->n_installed)
                return -1;
        return TAKE_FD(message->fds[i]);
}

/**
 * bus1_message_get_secctx() - the sender's security context
 * @message:    message
 * @sizep:      out: its size (may be NULL)
 *
 * Only with BUS1_PEER_FLAG_WANT_SECCTX and an LSM that labels the sender.
 *
 * Return: a pointer into the pool (not NUL-terminated unless the LSM's
 *         label is), or NULL with size 0.
 */
_public_ const void *bus1_message_get_secctx(Bus1Message *message, size_t *sizep) {
        const ProtoMessage *msg = &message->entry.msg;

        if (msg->type != BUS1_MSG_DATA || !msg->n_secctx) {
                if (sizep)
                        *sizep = 0;
                return NULL;
        }
        if (sizep)
                *sizep = (size_t)msg->n_secctx;
        return message_slice(message) + align8(msg->n_bytes) + align8(8 * msg->n_handles) +
               align8(4 * msg->n_fds);
}
