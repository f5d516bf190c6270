/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for node lifetime: NODE_RELEASE, NODES_DESTROY and what destruction
 * does to messages and handles (docs/model.md §3)
 *
 * Each test gets its own Bus with a few peers (the TestBus fixture of
 * model-util.h) and drives it only through the peer commands, as a client
 * would; the model's consistency checker runs after every step. What is
 * asserted is what the peers can observe: the entries they receive (type,
 * destination, flags, the fixed fields of notifications), the handle IDs in
 * received slices, and error codes. "Nothing queued" is checked with a peeking
 * RECV answering EAGAIN.
 *
 * Conventions: A owns the nodes under test (owner-chosen IDs 0x100, 0x200,
 * ...); B and C hold handles to them; the n-th ID assigned to a peer is
 * remote_id(n).
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "bus1/uapi.h"
#include "bus/bus.h"
#include "bus/handle.h"
#include "bus/node.h"
#include "bus/peer.h"
#include "model-util.h"

/* the n-th ID assigned to a peer, for another peer's node */
static uint64_t remote_id(uint64_t n) {
        return (n << 3) | BUS1_HANDLE_FLAG_MANAGED | BUS1_HANDLE_FLAG_REMOTE;
}

static void release(Peer *peer, uint64_t id) {
        assert_int_equal(peer_handle_release(peer, id), 0);
        assert_valid(peer->bus);
}

static uint64_t transfer(Peer *src, uint64_t id, Peer *dst) {
        uint64_t out = test_transfer(src, id, dst);

        assert_valid(src->bus);
        return out;
}

static void destroy(Peer *peer, uint64_t flags, const uint64_t *ids, uint64_t n_ids) {
        assert_int_equal(peer_nodes_destroy(peer, flags, ids, n_ids), 0);
        assert_valid(peer->bus);
}

static void destroy1(Peer *peer, uint64_t id) {
        destroy(peer, 0, &id, 1);
}

static void expect_release(Peer *owner, uint64_t id) {
        test_expect_notification(owner, BUS1_MSG_NODE_RELEASE, id, 0);
        assert_valid(owner->bus);
}

static void expect_destroy(Peer *holder, uint64_t id, uint64_t flags) {
        test_expect_notification(holder, BUS1_MSG_NODE_DESTROY, id, flags);
        assert_valid(holder->bus);
}

static void expect_data(Peer *peer, uint64_t destination, const char *text,
                        uint64_t n_handles, PeerRecv *r) {
        test_expect_data(peer, destination, text, n_handles, r);
        assert_valid(peer->bus);
}

/*
 * the next two entries are the NODE_DESTROYs of one transaction for @id1 and
 * @id2, in either order: the first carries CONTINUE, the second does not
 */
static void expect_destroy_pair(Peer *holder, uint64_t id1, uint64_t id2) {
        PeerRecv r;

        assert_int_equal(test_recv(holder, BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_true(r.destination == id1 || r.destination == id2);
        if (r.destination == id2) {
                id2 = id1;
                id1 = r.destination;
        }
        expect_destroy(holder, id1, BUS1_MSG_FLAG_CONTINUE);
        expect_destroy(holder, id2, 0);
}

/* @owner's node @id is alive */
static void assert_alive(Peer *owner, uint64_t id) {
        Handle *h = handle_find(owner, id);

        assert_non_null(h);
        assert_true(handle_is_owner(h));
        assert_false(h->node->destroyed);
}

/* creating a node queues nothing; holding handles to it queues nothing */
static void test_release_not_on_create(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];

        assert_int_equal(test_transfer(a, 0x100, NULL), 0x100);
        assert_valid(bus);
        test_expect_empty(a);
        transfer(a, 0x200, b);
        test_expect_empty(a);
        test_expect_empty(b);
}

/*
 * when the last reference but the owner's pin goes, the owner gets a
 * NODE_RELEASE to its owner ID, with the fixed notification fields
 */
static void test_release_fields(void **state) {
        TestBus *t = *state;
        Peer *a = t->peers[0], *b = t->peers[1];

        assert_int_equal(transfer(a, 0x100, b), remote_id(1));
        release(b, remote_id(1));
        test_expect_empty(b);
        expect_release(a, 0x100);
        test_expect_empty(a);
        assert_alive(a, 0x100);
}

/* every user reference of every holder counts */
static void test_release_counts_every_holder(void **state) {
        TestBus *t = *state;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];

        transfer(a, 0x100, b);
        transfer(a, 0x100, b);
        transfer(a, 0x100, c);

        release(b, remote_id(1));
        test_expect_empty(a);
        release(c, remote_id(1));
        test_expect_empty(a);
        release(b, remote_id(1));
        expect_release(a, 0x100);
        test_expect_empty(a);
}

/* the owner's own references beyond the pin count too */
static void test_release_counts_owner_extra_refs(void **state) {
        TestBus *t = *state;
        Peer *a = t->peers[0], *b = t->peers[1];

        /* only the owner */
        assert_int_equal(transfer(a, 0x100, NULL), 0x100);
        test_expect_empty(a);
        release(a, 0x100);
        expect_release(a, 0x100);

        /* the owner and B */
        assert_int_equal(transfer(a, 0x100, NULL), 0x100);
        transfer(a, 0x100, b);
        release(b, remote_id(1));
        test_expect_empty(a);
        release(a, 0x100);
        expect_release(a, 0x100);
        test_expect_empty(a);
}

/* a queued message carrying a handle to the node keeps NODE_RELEASE back */
static void test_release_held_off_by_queued_entry(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dst, id;
        PeerRecv r;

        id = transfer(a, 0x100, b);
        dst = transfer(c, 0x100, b);
        assert_int_equal(test_send(b, 0, &dst, 1, NULL, "n", 1, &id, 1, NULL), 0);
        assert_valid(bus);

        release(b, id);
        test_expect_empty(a);

        expect_data(c, 0x100, "n", 1, &r);
        test_expect_empty(a);

        release(c, test_slice_handle(c, &r, 0));
        expect_release(a, 0x100);
        test_expect_empty(a);
}

/* a handle entry queued to the owner itself counts, and so does receiving it */
static void test_release_held_off_by_entry_to_owner(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t dst, id;
        PeerRecv r;

        id = transfer(a, 0x100, b);
        dst = transfer(a, 0x200, b);
        assert_int_equal(test_send(b, 0, &dst, 1, NULL, "own", 3, &id, 1, NULL), 0);
        assert_valid(bus);

        release(b, id);
        expect_data(a, 0x200, "own", 1, &r);
        assert_int_equal(test_slice_handle(a, &r, 0), 0x100);
        test_expect_empty(a);

        release(a, 0x100);
        expect_release(a, 0x100);
        test_expect_empty(a);
}

/* the same handle listed twice in a message counts twice */
static void test_release_entry_listed_twice(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dst, ids[2];
        PeerRecv r;

        ids[0] = ids[1] = transfer(a, 0x100, b);
        dst = transfer(c, 0x100, b);
        assert_int_equal(test_send(b, 0, &dst, 1, NULL, "2", 1, ids, 2, NULL), 0);
        assert_valid(bus);
        release(b, ids[0]);
        test_expect_empty(a);

        expect_data(c, 0x100, "2", 2, &r);
        release(c, test_slice_handle(c, &r, 0));
        test_expect_empty(a);
        release(c, test_slice_handle(c, &r, 1));
        expect_release(a, 0x100);
}

/* a pending NODE_RELEASE is withdrawn when the count rises before dequeue */
static void test_release_withdrawn(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dst, id = 0x100;
        PeerRecv r;

        dst = transfer(b, 0x100, a);
        assert_int_equal(transfer(a, 0x100, b), remote_id(1));
        release(b, remote_id(1));
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.type, BUS1_MSG_NODE_RELEASE);

        /* by a transfer */
        transfer(a, 0x100, c);
        test_expect_empty(a);

        /* by a message carrying the handle, even after a PEEK */
        release(c, remote_id(1));
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.type, BUS1_MSG_NODE_RELEASE);
        assert_int_equal(test_send(a, 0, &dst, 1, NULL, "m", 1, &id, 1, NULL), 0);
        assert_valid(bus);
        test_expect_empty(a);

        /* by a transfer into the owner itself */
        expect_data(b, 0x100, "m", 1, &r);
        release(b, test_slice_handle(b, &r, 0));
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.type, BUS1_MSG_NODE_RELEASE);
        assert_int_equal(transfer(a, 0x100, NULL), 0x100);
        test_expect_empty(a);

        release(a, 0x100);
        expect_release(a, 0x100);
        test_expect_empty(a);
}

/* NODE_RELEASE happens again each time the count falls to zero */
static void test_release_recurs(void **state) {
        TestBus *t = *state;
        Peer *a = t->peers[0], *b = t->peers[1];

        for (unsigned int i = 1; i <= 3; ++i) {
                assert_int_equal(transfer(a, 0x100, b), remote_id(i));
                test_expect_empty(a);
                release(b, remote_id(i));
                expect_release(a, 0x100);
                test_expect_empty(a);
        }

        /* rising and falling again without a dequeue in between: one entry */
        transfer(a, 0x100, b);
        release(b, remote_id(4));
        transfer(a, 0x100, b);
        release(b, remote_id(5));
        expect_release(a, 0x100);
        test_expect_empty(a);
}

/* no NODE_RELEASE for a destroyed node */
static void test_release_never_for_destroyed(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dst, id;

        id = transfer(a, 0x100, b);
        transfer(a, 0x100, c);
        assert_int_equal(transfer(a, 0x100, NULL), 0x100);
        dst = transfer(c, 0x200, b);
        assert_int_equal(test_send(b, 0, &dst, 1, NULL, "n", 1, &id, 1, NULL), 0);
        assert_valid(bus);
        destroy1(a, 0x100);

        /* by release, by receiver disconnect, by the owner's extra reference */
        release(b, id);
        assert_int_equal(peer_disconnect(c), 0);
        assert_valid(bus);
        release(a, 0x100);
        expect_destroy(a, 0x100, 0);
        test_expect_empty(a);
}

/* destroying a node removes its pending NODE_RELEASE */
static void test_destroy_removes_pending_release(void **state) {
        TestBus *t = *state;
        Peer *a = t->peers[0], *b = t->peers[1];

        transfer(a, 0x100, b);
        release(b, remote_id(1));
        destroy1(a, 0x100);
        expect_destroy(a, 0x100, 0);
        test_expect_empty(a);
}

/*
 * dropping a queued message that carries the handle releases its entry:
 * the receiver disconnects
 */
static void test_release_on_receiver_disconnect(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dst, id;

        id = transfer(a, 0x100, b);
        dst = transfer(c, 0x100, b);
        assert_int_equal(test_send(b, 0, &dst, 1, NULL, "n", 1, &id, 1, NULL), 0);
        assert_valid(bus);
        release(b, id);
        test_expect_empty(a);

        assert_int_equal(peer_disconnect(c), 0);
        assert_valid(bus);
        expect_release(a, 0x100);
        test_expect_empty(a);
}

/* ... or the receiver flushes its queue (PEER_RESET with FLUSH) */
static void test_release_on_receiver_flush(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dst, id;

        id = transfer(a, 0x100, b);
        dst = transfer(c, 0x100, b);
        assert_int_equal(test_send(b, 0, &dst, 1, NULL, "n", 1, &id, 1, NULL), 0);
        assert_valid(bus);
        release(b, id);
        test_expect_empty(a);

        test_flush(c);
        assert_valid(bus);
        expect_release(a, 0x100);
        test_expect_empty(a);
}

/* a holder's disconnect or flush releases its references */
static void test_release_on_holder_disconnect_or_flush(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];

        transfer(a, 0x100, b);
        transfer(a, 0x100, b);
        transfer(a, 0x100, c);

        assert_int_equal(peer_disconnect(b), 0);
        assert_valid(bus);
        test_expect_empty(a);
        test_flush(c);
        assert_valid(bus);
        expect_release(a, 0x100);
        test_expect_empty(a);
}

/* every holder, owner included, gets NODE_DESTROY to its own ID */
static void test_destroy_notifies_every_holder(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t id;

        transfer(a, 0x200, c);
        assert_int_equal(transfer(a, 0x100, b), remote_id(1));
        assert_int_equal(transfer(a, 0x100, c), remote_id(2));
        id = transfer(c, remote_id(2), NULL);
        assert_int_equal(id, remote_id(2));

        destroy1(a, 0x100);
        assert_int_equal(a->n_nodes, 1);
        assert_true(handle_find(a, 0x100)->node->destroyed);

        expect_destroy(a, 0x100, 0);
        expect_destroy(b, remote_id(1), 0);
        expect_destroy(c, remote_id(2), 0);
        test_expect_empty(a);
        test_expect_empty(b);
        test_expect_empty(c);

        /* the handles stay until released */
        release(a, 0x100);
        release(b, remote_id(1));
        release(c, remote_id(2));
        release(c, remote_id(2));
        assert_int_equal(peer_handle_release(c, remote_id(2)), -ENXIO);
        assert_valid(bus);
        assert_alive(a, 0x200);
}

/* nodes destroyed in one call are one transaction: CONTINUE on each queue */
static void test_destroy_one_transaction(void **state) {
        TestBus *t = *state;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t ids[] = { 0x100, 0x200, 0x300 };

        for (size_t i = 0; i < ARRAY_SIZE(ids); ++i)
                assert_int_equal(transfer(a, ids[i], b), remote_id(i + 1));
        assert_int_equal(transfer(a, 0x200, c), remote_id(1));

        destroy(a, 0, ids, 2);
        destroy(a, 0, ids + 2, 1);
        assert_int_equal(a->n_nodes, 0);

        expect_destroy_pair(a, 0x100, 0x200);
        expect_destroy(a, 0x300, 0);
        expect_destroy_pair(b, remote_id(1), remote_id(2));
        expect_destroy(b, remote_id(3), 0);
        expect_destroy(c, remote_id(1), 0);
        test_expect_empty(a);
        test_expect_empty(b);
        test_expect_empty(c);
}

/*
 * NODES_DESTROY error fixture: A owns 0x100 and 0x200, B holds both (remote_id(1),
 * remote_id(2)); A holds B's node as remote_id(1), and its own destroyed node 0x300
 */
static void destroy_fixture(Bus *bus, Peer **ap, Peer **bp) {
        Peer *a, *b;

        bus_init(bus);
        a = test_peer_new(bus, 1);
        b = test_peer_new(bus, 2);
        assert_valid(bus);

        assert_int_equal(transfer(a, 0x100, b), remote_id(1));
        assert_int_equal(transfer(a, 0x200, b), remote_id(2));
        assert_int_equal(transfer(b, 0x100, a), remote_id(1));
        transfer(a, 0x300, NULL);
        destroy1(a, 0x300);
        expect_destroy(a, 0x300, 0);
        test_expect_empty(a);
        test_expect_empty(b);

        *ap = a;
        *bp = b;
}

/* a failed NODES_DESTROY destroyed nothing and created nothing */
static void assert_nothing_destroyed(Peer *a, Peer *b) {
        uint64_t dsts[] = { remote_id(1), remote_id(2) };
        PeerRecv r;

        assert_int_equal(a->n_nodes, 2);
        assert_alive(a, 0x100);
        assert_alive(a, 0x200);
        assert_null(handle_find(a, 0x500));
        test_expect_empty(a);
        test_expect_empty(b);

        /* both nodes still take messages */
        assert_int_equal(test_send(b, 0, dsts, 2, NULL, "alive", 5, NULL, 0, NULL), 0);
        assert_valid(a->bus);
        assert_int_equal(test_recv(a, 0, &r), 0);
        assert_valid(a->bus);
        assert_int_equal(r.type, BUS1_MSG_DATA);
        assert_int_equal(test_recv(a, 0, &r), 0);
        assert_valid(a->bus);
        assert_int_equal(r.type, BUS1_MSG_DATA);
        test_expect_empty(a);
}

static void destroy_fixture_free(Bus *bus, Peer *a, Peer *b) {
        peer_free(b);
        peer_free(a);
        assert_valid(bus);
        bus_deinit(bus);
}

/* NODES_DESTROY of an unknown ID: ENXIO, all or nothing */
static void test_destroy_enxio(void **state) {
        uint64_t ids[] = { 0x100, 0x500, 0x200, remote_id(7) };
        Bus bus;
        Peer *a, *b;

        destroy_fixture(&bus, &a, &b);
        assert_int_equal(peer_nodes_destroy(a, 0, ids, 4), -ENXIO);
        assert_valid(&bus);
        ids[3] = BUS1_HANDLE_FLAG_MANAGED | 0x500;
        assert_int_equal(peer_nodes_destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, ids, 4),
                         -ENXIO);
        assert_valid(&bus);
        assert_nothing_destroyed(a, b);
        destroy_fixture_free(&bus, a, b);
}

/* NODES_DESTROY of a handle to another peer's node: EREMOTE */
static void test_destroy_eremote(void **state) {
        uint64_t ids[] = { 0x100, 0x500, 0x200, remote_id(1) };
        Bus bus;
        Peer *a, *b;

        destroy_fixture(&bus, &a, &b);
        assert_int_equal(peer_nodes_destroy(a, 0, ids, 4), -EREMOTE);
        assert_valid(&bus);
        assert_int_equal(peer_nodes_destroy(b, 0, ids + 3, 1), -EREMOTE);
        assert_valid(&bus);
        assert_nothing_destroyed(a, b);
        assert_int_equal(b->n_nodes, 1);
        destroy_fixture_free(&bus, a, b);
}

/* NODES_DESTROY of a node already destroyed: ESTALE */
static void test_destroy_estale(void **state) {
        uint64_t ids[] = { 0x100, 0x500, 0x200, 0x300 };
        Bus bus;
        Peer *a, *b;

        destroy_fixture(&bus, &a, &b);
        assert_int_equal(peer_nodes_destroy(a, 0, ids, 4), -ESTALE);
        assert_valid(&bus);
        assert_int_equal(peer_nodes_destroy(a, 0, ids + 3, 1), -ESTALE);
        assert_valid(&bus);
        assert_nothing_destroyed(a, b);
        destroy_fixture_free(&bus, a, b);
}

/* NODES_DESTROY naming an ID twice: ENOTUNIQ */
static void test_destroy_enotuniq(void **state) {
        uint64_t ids[] = { 0x100, 0x500, 0x200, 0x100 };
        Bus bus;
        Peer *a, *b;

        destroy_fixture(&bus, &a, &b);
        assert_int_equal(peer_nodes_destroy(a, 0, ids, 4), -ENOTUNIQ);
        assert_valid(&bus);
        ids[3] = 0x500;
        assert_int_equal(peer_nodes_destroy(a, 0, ids, 4), -ENOTUNIQ);
        assert_valid(&bus);
        assert_nothing_destroyed(a, b);
        destroy_fixture_free(&bus, a, b);
}

/* NODES_DESTROY with unknown flags: EINVAL */
static void test_destroy_einval_flags(void **state) {
        uint64_t ids[] = { 0x100, 0x500, 0x200 };
        Bus bus;
        Peer *a, *b;

        destroy_fixture(&bus, &a, &b);
        assert_int_equal(peer_nodes_destroy(a, 2, ids, 3), -EINVAL);
        assert_valid(&bus);
        assert_int_equal(peer_nodes_destroy(a, UINT64_MAX, ids, 3), -EINVAL);
        assert_valid(&bus);
        assert_int_equal(peer_nodes_destroy(a, 1ULL << 63, ids, 3), -EINVAL);
        assert_valid(&bus);
        assert_nothing_destroyed(a, b);
        destroy_fixture_free(&bus, a, b);
}

/*
 * NODES_DESTROY with more IDs than the caller's user may hold handles:
 * EINVAL (the kernel's bus1_peer_ioctl_nodes_destroy() bounds the work by the
 * user's limit). A peer that lowered its own limit below what it holds still
 * destroys the nodes it owns: they cost no new handle.
 */
static void test_destroy_einval_too_many(void **state) {
        uint64_t ids[] = { 0x100, 0x200, 0x500 };
        uint64_t max = 0;
        Bus bus;
        Peer *a, *b;

        destroy_fixture(&bus, &a, &b);
        max = a->user->limits.max[USER_HANDLES];
        a->user->limits.max[USER_HANDLES] = 2;
        assert_int_equal(peer_nodes_destroy(a, 0, ids, 3), -EINVAL);
        assert_valid(&bus);
        a->user->limits.max[USER_HANDLES] = max;
        assert_nothing_destroyed(a, b);

        /* the peer's own lowered limit bounds nothing here */
        test_set_max_handles(a, 1);
        assert_valid(&bus);
        destroy(a, 0, ids, 2);
        assert_int_equal(a->n_nodes, 0);
        destroy_fixture_free(&bus, a, b);
}

/* RELEASE_HANDLES drops one owner reference per node after destroying */
static void test_destroy_release_handles(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ids[] = { 0x100, 0x200 };

        transfer(a, 0x100, b);
        transfer(a, 0x200, b);
        assert_int_equal(transfer(a, 0x200, NULL), 0x200);

        destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, ids, 2);
        assert_int_equal(a->n_nodes, 0);

        /* 0x100 is gone before A saw its NODE_DESTROY; 0x200 keeps one ref */
        assert_null(handle_find(a, 0x100));
        assert_int_equal(a->n_handles, 1);
        assert_int_equal(a->n_handle_refs, 1);
        expect_destroy(a, 0x200, 0);
        test_expect_empty(a);
        release(a, 0x200);
        assert_int_equal(peer_handle_release(a, 0x200), -EBUSY);
        assert_valid(bus);
        assert_int_equal(a->n_handles, 0);

        expect_destroy_pair(b, remote_id(1), remote_id(2));
        test_expect_empty(b);
}

/* a new ID in the list is created and destroyed in the same transaction */
static void test_destroy_new_id(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ids[] = { 0x100, 0x200 };

        transfer(a, 0x100, b);
        destroy(a, 0, ids, 2);
        assert_int_equal(a->n_nodes, 0);
        assert_int_equal(a->n_handles, 2);
        expect_destroy_pair(a, 0x100, 0x200);
        expect_destroy(b, remote_id(1), 0);
        assert_int_equal(test_send1(a, 0x200, "late"), -EHOSTUNREACH);
        assert_valid(bus);

        /* with RELEASE_HANDLES nothing at all is left of it */
        ids[0] = 0x300;
        destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, ids, 1);
        assert_null(handle_find(a, 0x300));
        assert_int_equal(a->n_handles, 2);
        test_expect_empty(a);
        test_expect_empty(b);
}

/* a disconnect destroys all the peer's nodes in one transaction */
static void test_disconnect_destroys_in_one_transaction(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];

        transfer(a, 0x100, b);
        transfer(a, 0x200, b);
        assert_int_equal(peer_disconnect(a), 0);
        assert_valid(bus);

        expect_destroy_pair(b, remote_id(1), remote_id(2));
        test_expect_empty(b);
        assert_int_equal(test_send1(b, remote_id(1), "gone"), -ESHUTDOWN);
        assert_valid(bus);
        release(b, remote_id(1));
        release(b, remote_id(2));
        assert_int_equal(b->n_handles, 0);
}

/* messages ordered before a destruction are delivered, before NODE_DESTROY */
static void test_destroy_delivers_earlier_messages(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        PeerRecv r;

        transfer(a, 0x100, b);
        assert_int_equal(test_send1(b, remote_id(1), "one"), 0);
        assert_valid(bus);
        assert_int_equal(test_send1(b, remote_id(1), "two"), 0);
        assert_valid(bus);
        destroy1(a, 0x100);

        expect_data(a, 0x100, "one", 0, &r);
        assert_int_equal(r.creds.uid, 2);
        expect_data(a, 0x100, "two", 0, &r);
        expect_destroy(a, 0x100, 0);
        test_expect_empty(a);
        expect_destroy(b, remote_id(1), 0);
}

/* a send ordered after the destruction fails with EHOSTUNREACH */
static void test_send_after_destroy_ehostunreach(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t dsts[2], errors[2] = { 7, 7 };
        PeerRecv r;

        dsts[0] = transfer(a, 0x100, b);
        dsts[1] = transfer(a, 0x200, b);
        destroy1(a, 0x100);
        expect_destroy(a, 0x100, 0);

        assert_int_equal(test_send1(b, dsts[0], "late"), -EHOSTUNREACH);
        assert_valid(bus);
        assert_int_equal(test_send1(a, 0x100, "late"), -EHOSTUNREACH);
        assert_valid(bus);

        /* atomic: the live node gets nothing either */
        assert_int_equal(test_send(b, 0, dsts, 2, NULL, "m", 1, NULL, 0, NULL),
                         -EHOSTUNREACH);
        assert_valid(bus);
        test_expect_empty(a);

        /* per destination with CONTINUE */
        assert_int_equal(test_send(b, BUS1_SEND_FLAG_CONTINUE, dsts, 2, errors, "m", 1,
                                   NULL, 0, NULL), 0);
        assert_valid(bus);
        assert_int_equal(errors[0], EHOSTUNREACH);
        assert_int_equal(errors[1], 0);
        expect_data(a, 0x200, "m", 0, &r);
        test_expect_empty(a);
}

/*
 * a handle to a destroyed node in a message sent after the destruction
 * arrives as HANDLE_INVALID, still counted in n_handles
 */
static void test_destroyed_handle_in_later_message(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dst, ids[3];
        PeerRecv r;

        ids[0] = transfer(a, 0x100, b);
        dst = transfer(c, 0x100, b);
        ids[1] = dst;
        ids[2] = ids[0];
        destroy1(a, 0x100);

        assert_int_equal(test_send(b, 0, &dst, 1, NULL, "late", 4, ids, 3, NULL), 0);
        assert_valid(bus);
        expect_data(c, 0x100, "late", 3, &r);
        assert_int_equal(test_slice_handle(c, &r, 0), BUS1_HANDLE_INVALID);
        assert_int_equal(test_slice_handle(c, &r, 1), 0x100);
        assert_int_equal(test_slice_handle(c, &r, 2), BUS1_HANDLE_INVALID);

        /* C got no handle to the destroyed node, only one more on its own */
        assert_int_equal(c->n_handles, 1);
        assert_int_equal(c->n_handle_refs, 2);
        assert_int_equal(peer_handle_release(c, remote_id(1)), -ENXIO);
        assert_valid(bus);
        test_expect_empty(c);
}

/*
 * a handle in a message sent before the destruction arrives as a handle,
 * and its NODE_DESTROY follows the message
 */
static void test_destroyed_handle_in_earlier_message(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dst, id;
        PeerRecv r;

        id = transfer(a, 0x100, b);
        dst = transfer(c, 0x100, b);
        assert_int_equal(test_send(b, 0, &dst, 1, NULL, "early", 5, &id, 1, NULL), 0);
        assert_valid(bus);
        destroy1(a, 0x100);

        expect_data(c, 0x100, "early", 1, &r);
        assert_int_equal(test_slice_handle(c, &r, 0), remote_id(1));
        assert_true(handle_find(c, remote_id(1))->node->destroyed);
        expect_destroy(c, remote_id(1), 0);
        test_expect_empty(c);
        release(c, remote_id(1));
        assert_int_equal(c->n_handles, 1);
}

/* a holder that releases its handle before dequeuing NODE_DESTROY never sees it */
static void test_release_hides_pending_destroy(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dst, id;
        PeerRecv r;

        transfer(a, 0x100, b);
        transfer(a, 0x100, c);
        transfer(a, 0x100, c);
        assert_int_equal(test_send1(b, remote_id(1), "before"), 0);
        assert_valid(bus);
        destroy1(a, 0x100);

        /* B's last reference goes: nothing left to see */
        release(b, remote_id(1));
        test_expect_empty(b);

        /* C keeps one: it still sees it */
        release(c, remote_id(1));
        expect_destroy(c, remote_id(1), 0);
        test_expect_empty(c);

        /*
         * B's handle to a second node is also carried by a message queued to
         * B: releasing the last user reference still hides the NODE_DESTROY,
         * even though the queued message keeps the node in B's reach
         */
        dst = transfer(b, 0x100, c);
        id = transfer(a, 0x200, c);
        assert_int_equal(transfer(a, 0x200, b), remote_id(2));
        assert_int_equal(test_send(c, 0, &dst, 1, NULL, "n", 1, &id, 1, NULL), 0);
        assert_valid(bus);
        destroy1(a, 0x200);
        release(b, remote_id(2));
        expect_data(b, 0x100, "n", 1, &r);
        test_expect_empty(b);
}

/*
 * once the owner released its handle to a destroyed node, nothing more is
 * delivered for it: messages still queued to it vanish
 */
static void test_owner_release_drops_queued(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t n, m;
        PeerRecv r;

        n = transfer(a, 0x100, b);
        m = transfer(a, 0x200, b);
        assert_int_equal(test_send1(b, n, "x"), 0);
        assert_valid(bus);
        assert_int_equal(test_send1(b, m, "y"), 0);
        assert_valid(bus);
        assert_int_equal(test_send1(b, n, "z"), 0);
        assert_valid(bus);
        destroy1(a, 0x100);
        assert_int_equal(a->pool.n_busy, 3);

        release(a, 0x100);
        assert_int_equal(a->pool.n_busy, 1);
        expect_data(a, 0x200, "y", 0, &r);
        test_expect_empty(a);

        /* B still holds its handle, and still cannot send */
        assert_int_equal(test_send1(b, n, "late"), -EHOSTUNREACH);
        assert_valid(bus);
        test_expect_empty(a);
        expect_destroy(b, n, 0);
}

/*
 * ... including a message to the node that carries the node itself, whose
 * entry is the only other reference the owner's handle has
 */
static void test_owner_release_drops_queued_self_carrier(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t n;

        n = transfer(a, 0x100, b);
        assert_int_equal(test_send(b, 0, &n, 1, NULL, "self", 4, &n, 1, NULL), 0);
        assert_valid(bus);
        destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, (uint64_t[]){ 0x100 }, 1);

        assert_int_equal(a->n_handles, 0);
        assert_int_equal(a->n_handle_refs, 0);
        assert_int_equal(a->pool.n_busy, 0);
        test_expect_empty(a);
        expect_destroy(b, n, 0);
        release(b, n);
        assert_int_equal(b->n_handles, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_bus_unit_test(test_release_not_on_create, 2),
                test_bus_unit_test(test_release_fields, 2),
                test_bus_unit_test(test_release_counts_every_holder, 3),
                test_bus_unit_test(test_release_counts_owner_extra_refs, 2),
                test_bus_unit_test(test_release_held_off_by_queued_entry, 3),
                test_bus_unit_test(test_release_held_off_by_entry_to_owner, 2),
                test_bus_unit_test(test_release_entry_listed_twice, 3),
                test_bus_unit_test(test_release_withdrawn, 3),
                test_bus_unit_test(test_release_recurs, 2),
                test_bus_unit_test(test_release_never_for_destroyed, 3),
                test_bus_unit_test(test_destroy_removes_pending_release, 2),
                test_bus_unit_test(test_release_on_receiver_disconnect, 3),
                test_bus_unit_test(test_release_on_receiver_flush, 3),
                test_bus_unit_test(test_release_on_holder_disconnect_or_flush, 3),
                test_bus_unit_test(test_destroy_notifies_every_holder, 3),
                test_bus_unit_test(test_destroy_one_transaction, 3),
                cmocka_unit_test(test_destroy_enxio),
                cmocka_unit_test(test_destroy_eremote),
                cmocka_unit_test(test_destroy_estale),
                cmocka_unit_test(test_destroy_enotuniq),
                cmocka_unit_test(test_destroy_einval_flags),
                cmocka_unit_test(test_destroy_einval_too_many),
                test_bus_unit_test(test_destroy_release_handles, 2),
                test_bus_unit_test(test_destroy_new_id, 2),
                test_bus_unit_test(test_disconnect_destroys_in_one_transaction, 2),
                test_bus_unit_test(test_destroy_delivers_earlier_messages, 2),
                test_bus_unit_test(test_send_after_destroy_ehostunreach, 2),
                test_bus_unit_test(test_destroyed_handle_in_later_message, 3),
                test_bus_unit_test(test_destroyed_handle_in_earlier_message, 3),
                test_bus_unit_test(test_release_hides_pending_destroy, 3),
                test_bus_unit_test(test_owner_release_drops_queued, 2),
                test_bus_unit_test(test_owner_release_drops_queued_self_carrier, 2),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
