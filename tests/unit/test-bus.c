/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for the Bus: defaults, the transaction clock, peer IDs and the peer
 * list, the pool_setup callback, and the consistency checker itself
 *
 * Every test builds its own Bus on the stack and calls assert_valid() after
 * each step. The last test breaks invariants on purpose, one at a time, to
 * show that bus_validate() notices (and prints) each of them, so that a
 * passing assert_valid() elsewhere means something.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <cmocka.h>
#include "bus1/uapi.h"
#include "bus/bus.h"
#include "bus/handle.h"
#include "bus/node.h"
#include "bus/peer.h"
#include "bus/pool.h"
#include "bus/queue.h"
#include "bus/validate.h"
#include "model-util.h"
#include "util/list.h"

#define REGION_SIZE 4096

/* what the custom pool_setup callback saw, and the regions it hands out */
typedef struct SetupLog {
        unsigned int n_calls;
        int fail;               /* returned instead of setting up, if non-zero */
        Bus *bus;
        Peer *peer;
        Pool *pool;
        uint64_t size;
        uint8_t regions[2][REGION_SIZE];
} SetupLog;

static int setup_log_pool(Bus *bus, Peer *peer, Pool *pool, uint64_t size) {
        SetupLog *log = bus->userdata;

        log->bus = bus;
        log->peer = peer;
        log->pool = pool;
        log->size = size;
        ++log->n_calls;
        if (log->fail)
                return log->fail;

        assert_true(log->n_calls <= ARRAY_SIZE(log->regions));
        assert_true(size <= REGION_SIZE);
        pool_init(pool, log->regions[log->n_calls - 1], size, NULL, NULL);
        return 0;
}

/* the bus's peer list holds exactly @expected, in this order */
static void check_peers(Bus *bus, Peer **expected, size_t n) {
        size_t i = 0;
        Peer *peer;

        list_for_each_entry(peer, &bus->peers, bus_link) {
                assert_true(i < n);
                assert_ptr_equal(peer, expected[i]);
                assert_ptr_equal(peer->bus, bus);
                ++i;
        }
        assert_int_equal(i, n);
        assert_int_equal(bus->n_peers, n);
        assert_int_equal(list_is_empty(&bus->peers), n == 0);
}

/* bus_init() gives an empty bus with the default limits (docs/model.md §8) */
static void test_init_defaults(void **state) {
        Bus bus;

        memset(&bus, 0xaa, sizeof(bus));
        bus_init(&bus);
        assert_valid(&bus);

        assert_int_equal(bus.clock, 0);
        assert_int_equal(bus.n_peer_ids, 0);
        assert_int_equal(bus.n_peers, 0);
        assert_true(list_is_empty(&bus.peers));
        assert_int_equal(bus.limits.max_slices, 16384);
        assert_int_equal(bus.limits.max_handles, 65536);
        assert_int_equal(bus.limits.max_inflight_bytes, 16 * 1024 * 1024);
        assert_int_equal(bus.limits.max_inflight_fds, 4096);
        assert_int_equal(bus.pool_size, 16 * 1024 * 1024);
        assert_non_null(bus.pool_setup);
        assert_null(bus.userdata);

        bus_deinit(&bus);
}

/*
 * A new peer starts with the bus's limits and pool size at the time it is
 * created, its creds, and a default (anonymous) pool it can receive into.
 */
static void test_new_peer_takes_bus_defaults(void **state) {
        PeerCreds creds = { .uid = 7, .gid = 8, .pid = 9, .tid = 10 };
        Peer *a, *b, *c;
        PeerLimits l;
        uint64_t f, ba;
        PeerRecv r;
        Bus bus;

        bus_init(&bus);
        a = test_peer_new(&bus, 1);
        assert_valid(&bus);
        assert_int_equal(peer_query(a, 0, &f, &l), 0);
        assert_int_equal(f, 0);
        assert_int_equal(l.max_slices, 16384);
        assert_int_equal(l.max_handles, 65536);
        assert_int_equal(l.max_inflight_bytes, 16 * 1024 * 1024);
        assert_int_equal(l.max_inflight_fds, 4096);
        assert_int_equal(a->pool.max_size, 16 * 1024 * 1024);

        bus.limits = (PeerLimits){ 10, 20, 30, 40 };
        bus.pool_size = 8192;
        assert_int_equal(peer_new(&b, &bus, &creds), 0);
        assert_valid(&bus);
        assert_ptr_equal(b->bus, &bus);
        assert_int_equal(b->creds.uid, 7);
        assert_int_equal(b->creds.gid, 8);
        assert_int_equal(b->creds.pid, 9);
        assert_int_equal(b->creds.tid, 10);
        assert_int_equal(peer_query(b, 0, &f, &l), 0);
        assert_int_equal(l.max_slices, 10);
        assert_int_equal(l.max_handles, 20);
        assert_int_equal(l.max_inflight_bytes, 30);
        assert_int_equal(l.max_inflight_fds, 40);
        assert_int_equal(b->pool.max_size, 8192);

        /* the bus's limits are copied, not shared */
        assert_int_equal(peer_query(a, 0, &f, &l), 0);
        assert_int_equal(l.max_slices, 16384);

        /* the default pool works */
        c = test_peer_new(&bus, 3);
        ba = test_transfer(a, 0x100, c);
        assert_valid(&bus);
        assert_int_equal(test_send1(c, ba, "pooled"), 0);
        assert_valid(&bus);
        assert_int_equal(test_recv(a, 0, &r), 0);
        assert_valid(&bus);
        assert_int_equal(r.n_bytes, 6);
        assert_memory_equal(test_slice(a, r.offset), "pooled", 6);

        a = peer_free(a);
        b = peer_free(b);
        c = peer_free(c);
        assert_valid(&bus);
        bus_deinit(&bus);
}

/*
 * bus_tick() is strictly increasing, every transaction takes a tick, and a
 * queue's entries of successive transactions carry increasing numbers.
 */
static void test_tick_strictly_increasing(void **state) {
        uint64_t prev, t, ba;
        QueueEntry *e;
        Peer *a, *b;
        Bus bus;

        bus_init(&bus);
        assert_valid(&bus);

        prev = bus.clock;
        for (int i = 0; i < 1000; ++i) {
                t = bus_tick(&bus);
                assert_true(t > prev);
                assert_int_equal(bus.clock, t);
                prev = t;
        }

        a = test_peer_new(&bus, 1);
        b = test_peer_new(&bus, 2);
        assert_valid(&bus);
        ba = test_transfer(a, 0x100, b);
        assert_valid(&bus);

        prev = bus.clock;
        for (int i = 0; i < 3; ++i) {
                assert_int_equal(test_send1(b, ba, "tick"), 0);
                assert_valid(&bus);
                assert_true(bus.clock > prev);
                prev = bus.clock;
        }
        assert_int_equal(peer_handle_release(b, ba), 0);        /* NODE_RELEASE on A */
        assert_valid(&bus);
        assert_true(bus.clock > prev);
        prev = bus.clock;

        t = 0;
        list_for_each_entry(e, &a->queue.entries, link) {
                assert_true(e->seq > t);
                assert_true(e->seq <= bus.clock);
                t = e->seq;
        }
        assert_int_equal(a->queue.n_entries, 4);

        test_flush(a);
        assert_valid(&bus);
        assert_true(bus.clock > prev);
        prev = bus.clock;
        assert_int_equal(peer_disconnect(b), 0);
        assert_valid(&bus);
        assert_true(bus.clock > prev);

        a = peer_free(a);
        b = peer_free(b);
        assert_valid(&bus);
        bus_deinit(&bus);
}

/* peer IDs are unique and increasing, never reused after a peer is freed */
static void test_peer_ids_unique_increasing(void **state) {
        Peer *peers[8] = {};
        uint64_t last = 0;
        Bus bus;

        bus_init(&bus);
        for (size_t i = 0; i < 5; ++i) {
                peers[i] = test_peer_new(&bus, (uint32_t)i);
                assert_valid(&bus);
                assert_true(peers[i]->id > last);
                last = peers[i]->id;
        }

        peers[4] = peer_free(peers[4]);
        peers[1] = peer_free(peers[1]);
        assert_valid(&bus);

        for (size_t i = 5; i < 8; ++i) {
                peers[i] = test_peer_new(&bus, (uint32_t)i);
                assert_valid(&bus);
                assert_true(peers[i]->id > last);
                last = peers[i]->id;
        }

        for (size_t i = 0; i < 8; ++i)
                for (size_t j = i + 1; j < 8; ++j)
                        if (peers[i] && peers[j])
                                assert_int_not_equal(peers[i]->id, peers[j]->id);

        for (size_t i = 0; i < 8; ++i) {
                peers[i] = peer_free(peers[i]);
                assert_valid(&bus);
        }
        bus_deinit(&bus);
}

/*
 * n_peers and the peers list track peer_new() and peer_free(); a
 * disconnected peer stays listed until it is freed.
 */
static void test_peers_list_tracks_peers(void **state) {
        Peer *a, *b, *c, *d;
        Bus bus;

        bus_init(&bus);
        check_peers(&bus, NULL, 0);

        a = test_peer_new(&bus, 1);
        assert_valid(&bus);
        check_peers(&bus, (Peer *[]){ a }, 1);
        b = test_peer_new(&bus, 2);
        c = test_peer_new(&bus, 3);
        assert_valid(&bus);
        check_peers(&bus, (Peer *[]){ a, b, c }, 3);

        assert_int_equal(peer_disconnect(b), 0);
        assert_valid(&bus);
        check_peers(&bus, (Peer *[]){ a, b, c }, 3);

        b = peer_free(b);
        assert_valid(&bus);
        check_peers(&bus, (Peer *[]){ a, c }, 2);

        d = test_peer_new(&bus, 4);
        assert_valid(&bus);
        check_peers(&bus, (Peer *[]){ a, c, d }, 3);

        a = peer_free(a);
        assert_valid(&bus);
        check_peers(&bus, (Peer *[]){ c, d }, 2);
        d = peer_free(d);
        c = peer_free(c);
        assert_valid(&bus);
        check_peers(&bus, NULL, 0);

        assert_null(peer_free(NULL));
        assert_valid(&bus);
        bus_deinit(&bus);
}

/* a custom pool_setup callback backs every new peer's pool */
static void test_pool_setup_custom(void **state) {
        SetupLog *log;
        uint64_t ba;
        Peer *a, *b;
        PeerRecv r;
        char *big;
        Bus bus;

        log = test_calloc(1, sizeof(*log));
        big = test_calloc(1, REGION_SIZE + 1);
        bus_init(&bus);
        bus.pool_setup = setup_log_pool;
        bus.userdata = log;
        bus.pool_size = REGION_SIZE;

        a = test_peer_new(&bus, 1);
        assert_valid(&bus);
        assert_int_equal(log->n_calls, 1);
        assert_ptr_equal(log->bus, &bus);
        assert_ptr_equal(log->peer, a);
        assert_ptr_equal(log->pool, &a->pool);
        assert_int_equal(log->size, REGION_SIZE);
        assert_ptr_equal(a->pool.base, log->regions[0]);

        b = test_peer_new(&bus, 2);
        assert_valid(&bus);
        assert_int_equal(log->n_calls, 2);
        assert_ptr_equal(log->peer, b);
        assert_ptr_equal(b->pool.base, log->regions[1]);

        /* A receives into its own region */
        ba = test_transfer(a, 0x100, b);
        assert_valid(&bus);
        assert_int_equal(test_send1(b, ba, "custom pool"), 0);
        assert_valid(&bus);
        assert_int_equal(test_recv(a, 0, &r), 0);
        assert_valid(&bus);
        assert_int_equal(r.n_bytes, 11);
        assert_true(r.offset + 11 <= REGION_SIZE);
        assert_memory_equal(log->regions[0] + r.offset, "custom pool", 11);

        /* and nothing larger than the region */
        assert_int_equal(test_send(b, 0, &ba, 1, NULL, big, REGION_SIZE + 1,
                                   NULL, 0, NULL), -EMSGSIZE);
        assert_valid(&bus);

        a = peer_free(a);
        b = peer_free(b);
        assert_valid(&bus);
        bus_deinit(&bus);
        test_free(big);
        test_free(log);
}

/*
 * A failing pool_setup makes peer_new() fail with its error, and leaves no
 * peer behind: nothing listed or counted, no ID used, the output untouched.
 */
static void test_pool_setup_failure(void **state) {
        const int errors[] = { -EIO, -ENOMEM, -EMFILE };
        PeerCreds creds = { .uid = 1 };
        Peer *sentinel = (Peer *)(uintptr_t)0x1, *p, *a;
        SetupLog *log;
        Bus bus;

        log = test_calloc(1, sizeof(*log));
        bus_init(&bus);
        bus.pool_setup = setup_log_pool;
        bus.userdata = log;
        bus.pool_size = REGION_SIZE;

        a = test_peer_new(&bus, 1);
        assert_valid(&bus);

        for (size_t i = 0; i < ARRAY_SIZE(errors); ++i) {
                log->fail = errors[i];
                p = sentinel;
                assert_int_equal(peer_new(&p, &bus, &creds), errors[i]);
                assert_valid(&bus);
                assert_ptr_equal(p, sentinel);
                assert_int_equal(log->n_calls, 2 + i);
                check_peers(&bus, (Peer *[]){ a }, 1);
                assert_int_equal(bus.n_peer_ids, a->id);
        }

        /* the bus is as good as before */
        log->fail = 0;
        log->n_calls = 1;
        p = test_peer_new(&bus, 2);
        assert_valid(&bus);
        check_peers(&bus, (Peer *[]){ a, p }, 2);
        assert_true(p->id > a->id);

        a = peer_free(a);
        p = peer_free(p);
        assert_valid(&bus);
        bus_deinit(&bus);
        test_free(log);
}

/* peers can be freed in any order, nodes outliving their owners */
static void test_free_in_any_order(void **state) {
        uint64_t ab, ac, ba, bc, ca;
        Peer *a, *b, *c;
        Bus bus;

        bus_init(&bus);
        a = test_peer_new(&bus, 1);
        b = test_peer_new(&bus, 2);
        c = test_peer_new(&bus, 3);
        assert_valid(&bus);

        ab = test_transfer(b, 0x100, a);
        ac = test_transfer(c, 0x100, a);
        ba = test_transfer(a, 0x100, b);
        bc = test_transfer(c, 0x100, b);
        ca = test_transfer(a, 0x100, c);
        assert_valid(&bus);
        assert_int_equal(test_send(a, 0, &ab, 1, NULL, "a to b", 6, &ac, 1, NULL), 0);
        assert_int_equal(test_send(b, 0, &bc, 1, NULL, "b to c", 6, &ba, 1, NULL), 0);
        assert_int_equal(test_send(c, 0, &ca, 1, NULL, "c to a", 6, NULL, 0, NULL), 0);
        assert_valid(&bus);

        b = peer_free(b);
        assert_valid(&bus);
        check_peers(&bus, (Peer *[]){ a, c }, 2);
        a = peer_free(a);
        assert_valid(&bus);
        c = peer_free(c);
        assert_valid(&bus);
        check_peers(&bus, NULL, 0);
        bus_deinit(&bus);
}

/* break one counter by @delta, see bus_validate() fail, restore it, see it pass */
static void break_and_restore(Bus *bus, uint64_t *field, uint64_t delta) {
        *field += delta;
        assert_int_equal(bus_validate(bus), -1);
        *field -= delta;
        assert_valid(bus);
}

/* bus_validate() detects broken invariants, so the checker can fail */
static void test_validate_detects_broken_invariants(void **state) {
        uint64_t ba, ab;
        Handle *h;
        Peer *a, *b;
        FdList *fds;
        int fd[1];
        Bus bus;

        bus_init(&bus);
        a = test_peer_new(&bus, 1);
        b = test_peer_new(&bus, 2);
        assert_valid(&bus);
        ba = test_transfer(a, 0x100, b);
        ab = test_transfer(b, 0x100, a);
        fd[0] = eventfd(0, EFD_CLOEXEC);
        assert_true(fd[0] >= 0);
        assert_int_equal(fdlist_new(&fds, fd, 1), 0);
        assert_int_equal(test_send(b, 0, &ba, 1, NULL, "x", 1, &ab, 0, fds), 0);
        fdlist_unref(fds);
        assert_valid(&bus);

        break_and_restore(&bus, &a->n_handle_refs, 1);
        break_and_restore(&bus, &a->n_handle_refs, UINT64_MAX);
        break_and_restore(&bus, &bus.n_peers, 1);
        break_and_restore(&bus, &a->n_handles, 1);
        break_and_restore(&bus, &b->n_nodes, 1);
        break_and_restore(&bus, &a->queue.n_entries, 1);
        break_and_restore(&bus, &a->n_inflight_fds, 1);
        break_and_restore(&bus, &a->n_handle_reserved, 1);

        h = handle_find(b, ba);
        assert_non_null(h);
        break_and_restore(&bus, &h->n_user, 1);
        break_and_restore(&bus, &h->node->n_user_refs, 1);
        break_and_restore(&bus, &h->node->n_refs, 1);

        /* a live node's owner handle without its pin */
        h = handle_find(a, 0x100);
        assert_non_null(h);
        h->node->n_user_refs -= h->n_user;
        a->n_handle_refs -= h->n_user;
        h->n_user = 0;
        assert_int_equal(bus_validate(&bus), -1);
        h->n_user = 1;
        a->n_handle_refs += 1;
        h->node->n_user_refs += 1;
        assert_valid(&bus);

        a = peer_free(a);
        b = peer_free(b);
        assert_valid(&bus);
        bus_deinit(&bus);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_init_defaults),
                cmocka_unit_test(test_new_peer_takes_bus_defaults),
                cmocka_unit_test(test_tick_strictly_increasing),
                cmocka_unit_test(test_peer_ids_unique_increasing),
                cmocka_unit_test(test_peers_list_tracks_peers),
                cmocka_unit_test(test_pool_setup_custom),
                cmocka_unit_test(test_pool_setup_failure),
                cmocka_unit_test(test_free_in_any_order),
                cmocka_unit_test(test_validate_detects_broken_invariants),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
