/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Shared helpers for the object model's unit tests: a bus with peers on
 * the stack, short wrappers around the commands, and assert_valid(), which
 * runs the model's consistency checker. Every test calls assert_valid()
 * after each step.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <cmocka.h>
#include "bus1/uapi.h"
#include "bus/bus.h"
#include "bus/peer.h"
#include "bus/tx.h"
#include "bus/validate.h"
#include "util/fdlist.h"

#define assert_valid(_bus) assert_int_equal(bus_validate(_bus), 0)

static inline Peer *test_peer_new(Bus *bus, uint32_t uid) {
        PeerCreds creds = { .uid = uid, .gid = uid, .pid = 100 + uid, .tid = 100 + uid };
        Peer *peer = NULL;

        assert_int_equal(peer_new(&peer, bus, &creds), 0);
        return peer;
}

/* send @len bytes of @data to the listed destinations, attaching handles */
static inline int test_send(Peer *sender, uint64_t flags, const uint64_t *dsts, uint64_t n_dsts,
                            uint64_t *errors, const void *data, size_t len,
                            const uint64_t *handles, uint64_t n_handles, FdList *fds) {
        struct iovec vec = { .iov_base = (void *)data, .iov_len = len };
        TxArgs args = {
                .flags = flags,
                .destinations = dsts,
                .n_destinations = n_dsts,
                .errors = errors,
                .vecs = &vec,
                .n_vecs = data ? 1 : 0,
                .handles = handles,
                .n_handles = n_handles,
                .fds = fds,
        };

        return peer_send(sender, &args);
}

/* unicast without handles or fds */
static inline int test_send1(Peer *sender, uint64_t dst, const char *text) {
        return test_send(sender, 0, &dst, 1, NULL, text, text ? strlen(text) : 0,
                         NULL, 0, NULL);
}

/* receive (dequeue) with everything mapped */
static inline int test_recv(Peer *peer, uint64_t flags, PeerRecv *r) {
        memset(r, 0, sizeof(*r));
        return peer_recv(peer, flags, UINT64_MAX, r);
}

/* the pool bytes of a received slice */
static inline const void *test_slice(Peer *peer, uint64_t offset) {
        return peer->pool.base + offset;
}

/* the u64 handle IDs of a received DATA entry */
static inline uint64_t test_slice_handle(Peer *peer, const PeerRecv *r, uint64_t i) {
        uint64_t id;

        memcpy(&id, peer->pool.base + r->offset + align8(r->n_bytes) + 8 * i, sizeof(id));
        return id;
}

/* transfer @id from @src into @dst (NULL: itself); returns the new ID */
static inline uint64_t test_transfer(Peer *src, uint64_t id, Peer *dst) {
        uint64_t out = 0;

        assert_int_equal(peer_handle_transfer(src, 0, id, dst, &out), 0);
        return out;
}

/* lower (or raise) @peer's handle limit, keeping its other limits and flags */
static inline void test_set_max_handles(Peer *peer, uint32_t max_handles) {
        PeerLimits limits = {
                .max_slices = PEER_LIMIT_KEEP,
                .max_handles = max_handles,
                .max_inflight_bytes = PEER_LIMIT_KEEP,
                .max_inflight_fds = PEER_LIMIT_KEEP,
        };

        assert_int_equal(peer_reset(peer, 0, UINT64_MAX, &limits), 0);
}

/* PEER_RESET with BUS1_PEER_RESET_FLAG_FLUSH, limits and flags kept */
static inline void test_flush(Peer *peer) {
        PeerLimits keep = {
                .max_slices = PEER_LIMIT_KEEP,
                .max_handles = PEER_LIMIT_KEEP,
                .max_inflight_bytes = PEER_LIMIT_KEEP,
                .max_inflight_fds = PEER_LIMIT_KEEP,
        };

        assert_int_equal(peer_reset(peer, BUS1_PEER_RESET_FLAG_FLUSH, UINT64_MAX, &keep), 0);
}

/* nothing to receive: a RECV (peeking, so nothing changes) answers EAGAIN */
static inline void test_expect_empty(Peer *peer) {
        PeerRecv r;

        assert_int_equal(test_recv(peer, BUS1_RECV_FLAG_PEEK, &r), -EAGAIN);
}

/*
 * dequeue the next entry and check it is a notification of @type
 * (BUS1_MSG_NODE_*) to @destination with @flags, carrying the fixed
 * notification fields (docs/model.md §5)
 */
static inline void test_expect_notification(Peer *peer, uint64_t type, uint64_t destination,
                                            uint64_t flags) {
        PeerRecv r;

        assert_int_equal(test_recv(peer, 0, &r), 0);
        assert_int_equal(r.type, type);
        assert_int_equal(r.flags, flags);
        assert_int_equal(r.destination, destination);
        assert_int_equal(r.creds.uid, UINT32_MAX);
        assert_int_equal(r.creds.gid, UINT32_MAX);
        assert_int_equal(r.creds.pid, 0);
        assert_int_equal(r.creds.tid, 0);
        assert_int_equal(r.offset, BUS1_OFFSET_INVALID);
        assert_int_equal(r.n_bytes, 0);
        assert_int_equal(r.n_handles, 0);
        assert_int_equal(r.n_fds, 0);
        assert_int_equal(r.n_secctx, 0);
        assert_null(r.fds);
}

/*
 * dequeue the next entry and check it is DATA to @destination with payload
 * @text and @n_handles handle entries; the slice stays the peer's (read its
 * handles with test_slice_handle(@r, i))
 */
static inline void test_expect_data(Peer *peer, uint64_t destination, const char *text,
                                    uint64_t n_handles, PeerRecv *r) {
        size_t len = text ? strlen(text) : 0;

        assert_int_equal(test_recv(peer, 0, r), 0);
        assert_int_equal(r->type, BUS1_MSG_DATA);
        assert_int_equal(r->destination, destination);
        assert_int_equal(r->n_bytes, len);
        assert_int_equal(r->n_handles, n_handles);
        if (len)
                assert_memory_equal(test_slice(peer, r->offset), text, len);
}
