/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Shared helpers for the object model's unit tests: a bus with peers (the
 * TestBus fixture), short wrappers around the commands, and assert_valid(),
 * which runs the model's consistency checker. Every test calls
 * assert_valid() after each step.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
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

/*
 * The TestBus fixture: a Bus and its first peers, of UIDs 1, 2, ..., made
 * and checked by test_bus_setup1() to test_bus_setup4(). A case reads them
 * from its state:
 *
 *      TestBus *t = *state;
 *      Peer *a = t->peers[0], *b = t->peers[1];
 *
 * The teardown frees them and checks the bus once more, in one of two
 * orders: test_bus_teardown() the last peer first, checking the bus at the
 * end; test_bus_teardown_checked() the first peer first, checking the bus
 * after each. A peer the case set to NULL is not freed (peer_free(NULL)).
 * test_bus_unit_test(f, n) and test_bus_unit_test_checked(f, n) register
 * case @f on a bus with @n peers.
 */
#define TEST_BUS_PEERS_MAX 4

typedef struct TestBus {
        Bus bus;
        Peer *peers[TEST_BUS_PEERS_MAX];
        unsigned int n_peers;
} TestBus;

static inline int test_bus_setup(void **state, unsigned int n_peers) {
        TestBus *t = calloc(1, sizeof(*t));

        assert_non_null(t);
        assert_true(n_peers <= TEST_BUS_PEERS_MAX);
        *state = t;
        bus_init(&t->bus);
        for (unsigned int i = 0; i < n_peers; ++i) {
                t->peers[i] = test_peer_new(&t->bus, i + 1);
                t->n_peers = i + 1;
        }
        assert_valid(&t->bus);
        return 0;
}

static inline int test_bus_setup1(void **state) {
        return test_bus_setup(state, 1);
}

static inline int test_bus_setup2(void **state) {
        return test_bus_setup(state, 2);
}

static inline int test_bus_setup3(void **state) {
        return test_bus_setup(state, 3);
}

static inline int test_bus_setup4(void **state) {
        return test_bus_setup(state, 4);
}

static inline void test_bus_free(TestBus *t) {
        bus_deinit(&t->bus);
        free(t);
}

static inline int test_bus_teardown(void **state) {
        TestBus *t = *state;

        for (unsigned int i = t->n_peers; i-- > 0;)
                t->peers[i] = peer_free(t->peers[i]);
        assert_valid(&t->bus);
        test_bus_free(t);
        return 0;
}

static inline int test_bus_teardown_checked(void **state) {
        TestBus *t = *state;

        for (unsigned int i = 0; i < t->n_peers; ++i) {
                t->peers[i] = peer_free(t->peers[i]);
                assert_valid(&t->bus);
        }
        test_bus_free(t);
        return 0;
}

#define test_bus_unit_test(f, n)                                                  \
        cmocka_unit_test_setup_teardown(f, test_bus_setup##n, test_bus_teardown)
#define test_bus_unit_test_checked(f, n)                                          \
        cmocka_unit_test_setup_teardown(f, test_bus_setup##n, test_bus_teardown_checked)

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
