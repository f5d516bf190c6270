/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for handle IDs and the handle table (docs/model.md §2 and 3)
 *
 * Each test gets its own Bus with a few peers (the TestBus fixture of
 * model-util.h) and drives it only through the peer commands (SEND, RECV,
 * HANDLE_TRANSFER, HANDLE_RELEASE, NODES_DESTROY, PEER_RESET), as a client
 * would; the model's consistency checker runs after every step. What a client can
 * observe (IDs, error codes, received entries) is what is asserted; the
 * peer's counters (n_nodes, n_handles, n_handle_refs) are read to show that
 * a failed call left nothing behind.
 *
 * Conventions: A, B and C are peers; A usually owns the node under test
 * (owner-chosen ID 0x100); the n-th ID assigned to a peer is
 * assigned_id(n, REMOTE) for another peer's node, assigned_id(n, LOCAL) for
 * its own.
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

#define REMOTE true
#define LOCAL false

/* the n-th ID a peer is assigned */
static uint64_t assigned_id(uint64_t n, bool remote) {
        return (n << 3) | BUS1_HANDLE_FLAG_MANAGED | (remote ? BUS1_HANDLE_FLAG_REMOTE : 0);
}

/* the node behind a handle the peer holds (with user references) */
static Node *node_of(Peer *peer, uint64_t id) {
        Handle *h = handle_find(peer, id);

        assert_non_null(h);
        assert_true(h->n_user > 0);
        return h->node;
}

/* @id names a live node owned by @peer through exactly that owner handle */
static void assert_owner_id(Peer *peer, uint64_t id) {
        Node *node = node_of(peer, id);

        assert_ptr_equal(node->owner, peer);
        assert_false(node->destroyed);
        assert_ptr_equal(node->owner_handle, handle_find(peer, id));
        assert_int_equal(node->owner_handle->id, id);
}

/* create a node named @id on @peer through a send without destinations */
static void create_node(Peer *peer, uint64_t id) {
        assert_int_equal(test_send(peer, 0, NULL, 0, NULL, NULL, 0, &id, 1, NULL), 0);
        assert_valid(peer->bus);
        assert_owner_id(peer, id);
}

/* @peer holds nothing at all */
static void assert_holds_nothing(Peer *peer) {
        assert_int_equal(peer->n_nodes, 0);
        assert_int_equal(peer->n_handles, 0);
        assert_int_equal(peer->n_handle_refs, 0);
}

/* release @id exactly @n times, then it is gone (ENXIO) */
static void release_n_then_enxio(Peer *peer, uint64_t id, unsigned int n) {
        for (unsigned int i = 0; i < n; ++i) {
                assert_int_equal(peer_handle_release(peer, id), 0);
                assert_valid(peer->bus);
        }
        assert_int_equal(peer_handle_release(peer, id), -ENXIO);
        assert_valid(peer->bus);
}

/* a new ID as HANDLE_TRANSFER source creates a node with that owner ID */
static void test_new_id_transfer_source(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t out = 0;

        assert_int_equal(peer_handle_transfer(a, 0, 0x100, b, &out), 0);
        assert_valid(bus);
        assert_int_equal(out, assigned_id(1, REMOTE));
        assert_int_equal(a->n_nodes, 1);
        assert_owner_id(a, 0x100);
        assert_int_equal(handle_find(a, 0x100)->n_user, 1);
        assert_ptr_equal(node_of(b, out), node_of(a, 0x100));

        /* ID 0 is a valid new ID too; transferred to the caller itself */
        assert_int_equal(peer_handle_transfer(a, 0, 0, NULL, &out), 0);
        assert_valid(bus);
        assert_int_equal(out, 0);
        assert_int_equal(a->n_nodes, 2);
        assert_owner_id(a, 0);
        assert_true(node_of(a, 0) != node_of(a, 0x100));
}

/* a new ID as SEND destination creates the node, which gets the message */
static void test_new_id_send_destination(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0];
        uint64_t dsts[] = { 0, 0x100 };
        PeerRecv r;

        assert_int_equal(test_send(a, 0, dsts, 2, NULL, "x", 1, NULL, 0, NULL), 0);
        assert_valid(bus);
        assert_int_equal(a->n_nodes, 2);
        assert_owner_id(a, 0);
        assert_owner_id(a, 0x100);

        /* one message per node, each addressed by its owner ID */
        test_expect_data(a, 0, "x", 0, &r);
        assert_valid(bus);
        test_expect_data(a, 0x100, "x", 0, &r);
        assert_valid(bus);
        test_expect_empty(a);
}

/* a new ID in a SEND's handle list creates the node; the receiver gets it */
static void test_new_id_send_handle(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t handles[] = { 0, 0x100 }, dst;
        PeerRecv r;

        dst = test_transfer(b, 0x100, a);
        assert_valid(bus);
        assert_int_equal(dst, assigned_id(1, REMOTE));

        assert_int_equal(test_send(a, 0, &dst, 1, NULL, "h", 1, handles, 2, NULL), 0);
        assert_valid(bus);
        assert_int_equal(a->n_nodes, 2);
        assert_owner_id(a, 0);
        assert_owner_id(a, 0x100);

        test_expect_data(b, 0x100, "h", 2, &r);
        assert_valid(bus);
        assert_int_equal(test_slice_handle(b, &r, 0), assigned_id(1, REMOTE));
        assert_int_equal(test_slice_handle(b, &r, 1), assigned_id(2, REMOTE));
        assert_ptr_equal(node_of(b, assigned_id(1, REMOTE)), node_of(a, 0));
        assert_ptr_equal(node_of(b, assigned_id(2, REMOTE)), node_of(a, 0x100));

        /* a send without destinations still creates the nodes it names */
        handles[0] = 0x200;
        assert_int_equal(test_send(a, 0, NULL, 0, NULL, NULL, 0, handles, 1, NULL), 0);
        assert_valid(bus);
        assert_int_equal(a->n_nodes, 3);
        assert_owner_id(a, 0x200);
}

/* a new ID in NODES_DESTROY is created and destroyed at once */
static void test_new_id_nodes_destroy(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0];
        uint64_t id = 0x100;
        Handle *h;

        assert_int_equal(peer_nodes_destroy(a, 0, &id, 1), 0);
        assert_valid(bus);
        assert_int_equal(a->n_nodes, 0);
        assert_int_equal(a->n_handles, 1);
        h = handle_find(a, 0x100);
        assert_non_null(h);
        assert_true(handle_is_owner(h));
        assert_true(h->node->destroyed);

        test_expect_notification(a, BUS1_MSG_NODE_DESTROY, 0x100, 0);
        assert_valid(bus);
        assert_int_equal(test_send1(a, 0x100, "late"), -EHOSTUNREACH);
        assert_valid(bus);

        /* and ID 0 */
        id = 0;
        assert_int_equal(peer_nodes_destroy(a, 0, &id, 1), 0);
        assert_valid(bus);
        assert_int_equal(a->n_nodes, 0);
        assert_int_equal(a->n_handles, 2);
        h = handle_find(a, 0);
        assert_non_null(h);
        assert_true(handle_is_owner(h));
        assert_true(h->node->destroyed);
        test_expect_notification(a, BUS1_MSG_NODE_DESTROY, 0, 0);
        assert_valid(bus);
        test_expect_empty(a);
}

/* no call that fails creates a node, whatever made it fail */
static void test_failed_call_creates_no_node(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dsts[2], handles[2], ids[3], out = 7, dst_b, dst_c;

        /* A holds handles to a node of B and to a destroyed node of C */
        dst_b = test_transfer(b, 0x100, a);
        assert_valid(bus);
        dst_c = test_transfer(c, 0x100, a);
        assert_valid(bus);
        ids[0] = 0x100;
        assert_int_equal(peer_nodes_destroy(c, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, ids, 1),
                         0);
        assert_valid(bus);
        test_expect_notification(a, BUS1_MSG_NODE_DESTROY, dst_c, 0);
        assert_valid(bus);
        assert_int_equal(a->n_nodes, 0);
        assert_int_equal(a->n_handles, 2);
        assert_int_equal(a->n_handle_refs, 2);

        /* new destination, then an unknown one */
        dsts[0] = 0x300;
        dsts[1] = assigned_id(9, REMOTE);
        assert_int_equal(test_send(a, 0, dsts, 2, NULL, "x", 1, NULL, 0, NULL), -ENXIO);
        assert_valid(bus);

        /* new handle entry, then an unknown one */
        handles[0] = 0x300;
        handles[1] = assigned_id(9, LOCAL);
        assert_int_equal(test_send(a, 0, &dst_b, 1, NULL, "x", 1, handles, 2, NULL), -ENXIO);
        assert_valid(bus);

        /* new handle entry, then an unknown destination */
        dsts[0] = dst_b;
        assert_int_equal(test_send(a, 0, dsts, 2, NULL, "x", 1, handles, 1, NULL), -ENXIO);
        assert_valid(bus);

        /* new destination, then a destroyed one */
        dsts[0] = 0x300;
        dsts[1] = dst_c;
        assert_int_equal(test_send(a, 0, dsts, 2, NULL, "x", 1, NULL, 0, NULL),
                         -EHOSTUNREACH);
        assert_valid(bus);

        /* two new IDs, then an unknown one */
        ids[0] = 0x300;
        ids[1] = 0x400;
        ids[2] = assigned_id(9, LOCAL);
        assert_int_equal(peer_nodes_destroy(a, 0, ids, 3), -ENXIO);
        assert_valid(bus);

        /* new source, destination over its handle limit */
        test_set_max_handles(b, 1);
        assert_valid(bus);
        assert_int_equal(peer_handle_transfer(a, 0, 0x300, b, &out), -EDQUOT);
        assert_valid(bus);
        assert_int_equal(out, 7);

        /* nothing was created: A still holds its two handles only */
        assert_int_equal(a->n_nodes, 0);
        assert_int_equal(a->n_handles, 2);
        assert_int_equal(a->n_handle_refs, 2);
        assert_null(handle_find(a, 0x300));
        assert_null(handle_find(a, 0x400));
        assert_int_equal(peer_handle_release(a, 0x300), -EBUSY);
        assert_valid(bus);
        assert_int_equal(peer_handle_release(a, 0x400), -EBUSY);
        assert_valid(bus);
        test_expect_empty(a);
        test_expect_empty(b);
        test_expect_empty(c);

        /* and the IDs still create nodes */
        assert_int_equal(test_transfer(a, 0x300, NULL), 0x300);
        assert_valid(bus);
        assert_int_equal(a->n_nodes, 1);
        assert_owner_id(a, 0x300);
}

/* a failed multicast leaves no handle (and no reference) with a receiver */
static void test_failed_send_leaves_no_receiver_handle(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dsts[2], id = 0x100;

        dsts[0] = test_transfer(b, 0x100, a);
        assert_valid(bus);
        dsts[1] = test_transfer(c, 0x100, a);
        assert_valid(bus);
        assert_int_equal(peer_nodes_destroy(c, 0, &id, 1), 0);
        assert_valid(bus);

        /* B's destination is staged first, C's destroyed one fails the call */
        assert_int_equal(test_send(a, 0, dsts, 2, NULL, "x", 1, &id, 1, NULL),
                         -EHOSTUNREACH);
        assert_valid(bus);
        assert_int_equal(a->n_nodes, 0);
        assert_null(handle_find(a, 0x100));
        assert_int_equal(b->n_handles, 1);
        assert_int_equal(b->n_handle_refs, 1);
        test_expect_empty(b);
}

/*
 * a failed send assigns no ID either: the transaction fails as if it never
 * happened, so the receiver's next ID is still n = 1
 */
static void test_failed_send_assigns_no_id(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dsts[2], id = 0x100;

        dsts[0] = test_transfer(b, 0x100, a);
        assert_valid(bus);
        dsts[1] = test_transfer(c, 0x100, a);
        assert_valid(bus);
        assert_int_equal(peer_nodes_destroy(c, 0, &id, 1), 0);
        assert_valid(bus);
        create_node(a, 0x200);

        id = 0x200;
        assert_int_equal(test_send(a, 0, dsts, 2, NULL, "x", 1, &id, 1, NULL),
                         -EHOSTUNREACH);
        assert_valid(bus);

        assert_int_equal(test_transfer(a, 0x200, b), assigned_id(1, REMOTE));
        assert_valid(bus);
}

/* an unknown ID with MANAGED or REMOTE set is ENXIO for every command */
static void test_unknown_id_enxio(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        static const uint64_t unknown[] = {
                BUS1_HANDLE_FLAG_MANAGED,
                BUS1_HANDLE_FLAG_REMOTE,
                BUS1_HANDLE_FLAG_MANAGED | BUS1_HANDLE_FLAG_REMOTE,
                0x101, 0x102, 0x103,
                (1 << 3) | BUS1_HANDLE_FLAG_MANAGED,
                (1 << 3) | BUS1_HANDLE_FLAG_REMOTE,
                (1 << 3) | BUS1_HANDLE_FLAG_MANAGED | BUS1_HANDLE_FLAG_REMOTE,
                (2 << 3) | BUS1_HANDLE_FLAG_MANAGED | BUS1_HANDLE_FLAG_REMOTE,
                BUS1_HANDLE_INVALID,
        };
        uint64_t dst, out;

        /* A holds one handle, assigned_id(1, REMOTE), so assigned_id(2, REMOTE) is unknown */
        dst = test_transfer(b, 0x100, a);
        assert_valid(bus);
        assert_int_equal(dst, assigned_id(1, REMOTE));

        for (size_t i = 0; i < ARRAY_SIZE(unknown); ++i) {
                uint64_t id = unknown[i];

                if (id == dst)
                        continue;

                assert_int_equal(peer_handle_release(a, id), -ENXIO);
                assert_valid(bus);

                out = 7;
                assert_int_equal(peer_handle_transfer(a, 0, id, b, &out), -ENXIO);
                assert_valid(bus);
                assert_int_equal(peer_handle_transfer(a, 0, id, NULL, &out), -ENXIO);
                assert_valid(bus);
                assert_int_equal(out, 7);

                assert_int_equal(test_send1(a, id, "x"), -ENXIO);
                assert_valid(bus);

                assert_int_equal(test_send(a, 0, &dst, 1, NULL, "x", 1, &id, 1, NULL), -ENXIO);
                assert_valid(bus);
                assert_int_equal(test_send(a, 0, NULL, 0, NULL, NULL, 0, &id, 1, NULL), -ENXIO);
                assert_valid(bus);

                assert_int_equal(peer_nodes_destroy(a, 0, &id, 1), -ENXIO);
                assert_valid(bus);
        }

        assert_int_equal(a->n_nodes, 0);
        assert_int_equal(a->n_handles, 1);
        assert_int_equal(a->n_handle_refs, 1);
        test_expect_empty(a);
        test_expect_empty(b);
}

/* assigned IDs are (n << 3) | MANAGED | REMOTE, n = 1, 2, ... per peer */
static void test_assigned_id_format(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dst, handles[3] = { 0x100, 0x200, 0x300 };
        PeerRecv r;

        /* transfers count up in B */
        assert_int_equal(test_transfer(a, 0x100, b), assigned_id(1, REMOTE));
        assert_valid(bus);
        assert_int_equal(test_transfer(a, 0x200, b), assigned_id(2, REMOTE));
        assert_valid(bus);

        /* C has a counter of its own */
        assert_int_equal(test_transfer(a, 0x300, c), assigned_id(1, REMOTE));
        assert_valid(bus);
        assert_int_equal(test_transfer(a, 0x200, c), assigned_id(2, REMOTE));
        assert_valid(bus);

        /* messages draw from the same counter; known nodes keep their ID */
        dst = test_transfer(b, 0x100, c);
        assert_valid(bus);
        assert_int_equal(dst, assigned_id(3, REMOTE));
        assert_int_equal(test_send(a, 0, NULL, 0, NULL, NULL, 0, &handles[0], 1, NULL), 0);
        assert_valid(bus);
        handles[0] = 0x400;
        assert_int_equal(test_send(a, 0, NULL, 0, NULL, NULL, 0, handles, 1, NULL), 0);
        assert_valid(bus);
        handles[0] = 0x100;
        handles[2] = 0x400;
        assert_int_equal(test_transfer(b, 0x100, a), assigned_id(1, REMOTE));
        assert_valid(bus);
        dst = assigned_id(1, REMOTE);
        assert_int_equal(test_send(a, 0, &dst, 1, NULL, "ids", 3, handles, 3, NULL), 0);
        assert_valid(bus);

        test_expect_data(b, 0x100, "ids", 3, &r);
        assert_valid(bus);
        assert_int_equal(test_slice_handle(b, &r, 0), assigned_id(1, REMOTE));
        assert_int_equal(test_slice_handle(b, &r, 1), assigned_id(2, REMOTE));
        assert_int_equal(test_slice_handle(b, &r, 2), assigned_id(3, REMOTE));
}

/* assigned IDs are never reused, not even across PEER_RESET (with FLUSH) */
static void test_assigned_id_never_reused(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        PeerLimits keep = {
                PEER_LIMIT_KEEP, PEER_LIMIT_KEEP, PEER_LIMIT_KEEP, PEER_LIMIT_KEEP,
        };

        assert_int_equal(test_transfer(a, 0x100, b), assigned_id(1, REMOTE));
        assert_valid(bus);
        release_n_then_enxio(b, assigned_id(1, REMOTE), 1);
        assert_int_equal(test_transfer(a, 0x100, b), assigned_id(2, REMOTE));
        assert_valid(bus);
        release_n_then_enxio(b, assigned_id(2, REMOTE), 1);

        /* a plain reset keeps the counter */
        assert_int_equal(peer_reset(b, 0, UINT64_MAX, &keep), 0);
        assert_valid(bus);
        assert_int_equal(test_transfer(a, 0x100, b), assigned_id(3, REMOTE));
        assert_valid(bus);

        /* so does a flush, which releases ID 3 */
        test_flush(b);
        assert_valid(bus);
        assert_int_equal(peer_handle_release(b, assigned_id(3, REMOTE)), -ENXIO);
        assert_valid(bus);
        assert_int_equal(test_transfer(a, 0x100, b), assigned_id(4, REMOTE));
        assert_valid(bus);

        /* and a flush of everything, seed included */
        assert_int_equal(peer_reset(b, BUS1_PEER_RESET_FLAG_FLUSH |
                                    BUS1_PEER_RESET_FLAG_FLUSH_SEED, UINT64_MAX, &keep), 0);
        assert_valid(bus);
        assert_int_equal(test_transfer(a, 0x200, b), assigned_id(5, REMOTE));
        assert_valid(bus);
        assert_int_equal(test_transfer(a, 0x100, b), assigned_id(6, REMOTE));
        assert_valid(bus);
}

/* a handle released to zero and later received in a message gets a fresh ID */
static void test_released_handle_received_fresh_id(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dst, id;
        PeerRecv r;

        assert_int_equal(test_transfer(a, 0x100, b), assigned_id(1, REMOTE));
        assert_valid(bus);
        release_n_then_enxio(b, assigned_id(1, REMOTE), 1);

        /* C sends A's node to B's node */
        id = test_transfer(a, 0x100, c);
        assert_valid(bus);
        dst = test_transfer(b, 0x200, c);
        assert_valid(bus);
        assert_int_equal(test_send(c, 0, &dst, 1, NULL, "again", 5, &id, 1, NULL), 0);
        assert_valid(bus);

        test_expect_data(b, 0x200, "again", 1, &r);
        assert_valid(bus);
        assert_int_equal(test_slice_handle(b, &r, 0), assigned_id(2, REMOTE));
        assert_ptr_equal(node_of(b, assigned_id(2, REMOTE)), node_of(a, 0x100));
        assert_int_equal(peer_handle_release(b, assigned_id(1, REMOTE)), -ENXIO);
        assert_valid(bus);
        release_n_then_enxio(b, assigned_id(2, REMOTE), 1);
}

/*
 * a handle whose user references fell to zero is gone even while a queued
 * message still carries it: its ID is not handed out again by a transfer
 */
static void test_released_id_not_revived_by_transfer(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dst, id;

        assert_int_equal(test_transfer(a, 0x100, b), assigned_id(1, REMOTE));
        assert_valid(bus);
        id = test_transfer(a, 0x100, c);
        assert_valid(bus);
        dst = test_transfer(b, 0x200, c);
        assert_valid(bus);
        assert_int_equal(test_send(c, 0, &dst, 1, NULL, "q", 1, &id, 1, NULL), 0);
        assert_valid(bus);

        /* B drops its handle while the message carrying the node is queued */
        release_n_then_enxio(b, assigned_id(1, REMOTE), 1);
        assert_int_equal(test_transfer(a, 0x100, b), assigned_id(2, REMOTE));
        assert_valid(bus);
}

/* ... nor by receiving that queued message: it arrives with a fresh ID */
static void test_released_id_not_revived_by_receive(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dst, id;
        PeerRecv r;

        assert_int_equal(test_transfer(a, 0x100, b), assigned_id(1, REMOTE));
        assert_valid(bus);
        id = test_transfer(a, 0x100, c);
        assert_valid(bus);
        dst = test_transfer(b, 0x200, c);
        assert_valid(bus);
        assert_int_equal(test_send(c, 0, &dst, 1, NULL, "q", 1, &id, 1, NULL), 0);
        assert_valid(bus);

        release_n_then_enxio(b, assigned_id(1, REMOTE), 1);

        test_expect_data(b, 0x200, "q", 1, &r);
        assert_valid(bus);
        assert_int_equal(test_slice_handle(b, &r, 0), assigned_id(2, REMOTE));
        assert_int_equal(peer_handle_release(b, assigned_id(1, REMOTE)), -ENXIO);
        assert_valid(bus);
        release_n_then_enxio(b, assigned_id(2, REMOTE), 1);
}

/* an owner-chosen ID is free again once its handle is gone */
static void test_owner_id_free_after_release(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t id = 0x100, old;

        old = test_transfer(a, 0x100, b);
        assert_valid(bus);
        assert_int_equal(peer_nodes_destroy(a, 0, &id, 1), 0);
        assert_valid(bus);
        assert_int_equal(peer_handle_release(a, 0x100), 0);
        assert_valid(bus);
        assert_int_equal(a->n_handles, 0);
        assert_int_equal(peer_handle_release(a, 0x100), -EBUSY);
        assert_valid(bus);

        /* the same ID names a new, live node; B's old handle is unaffected */
        assert_int_equal(test_transfer(a, 0x100, b), assigned_id(2, REMOTE));
        assert_valid(bus);
        assert_int_equal(a->n_nodes, 1);
        assert_owner_id(a, 0x100);
        assert_true(node_of(b, old)->destroyed);
        assert_false(node_of(b, assigned_id(2, REMOTE))->destroyed);
        assert_int_equal(test_send1(b, assigned_id(2, REMOTE), "new"), 0);
        assert_valid(bus);
        assert_int_equal(test_send1(b, old, "old"), -EHOSTUNREACH);
        assert_valid(bus);
}

/*
 * the owner handle of a destroyed node is gone once its user references are,
 * even while a queued message still carries the node: the owner-chosen ID
 * creates a new node, and the message brings the old node back under a
 * fresh assigned ID without REMOTE
 */
static void test_owner_id_free_while_entry_queued(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t id = 0x100, dst;
        PeerRecv r;

        /* B sends A's node 0x100 to A's node 0x200, then A destroys 0x100 */
        create_node(a, 0x200);
        dst = test_transfer(a, 0x200, b);
        assert_valid(bus);
        id = test_transfer(a, 0x100, b);
        assert_valid(bus);
        assert_int_equal(test_send(b, 0, &dst, 1, NULL, "n", 1, &id, 1, NULL), 0);
        assert_valid(bus);
        id = 0x100;
        assert_int_equal(peer_nodes_destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, &id, 1),
                         0);
        assert_valid(bus);
        assert_int_equal(peer_handle_release(a, 0x100), -EBUSY);
        assert_valid(bus);

        /* 0x100 names a new node */
        assert_int_equal(test_transfer(a, 0x100, NULL), 0x100);
        assert_valid(bus);
        assert_owner_id(a, 0x100);

        /* the old node arrives under A's first assigned ID */
        test_expect_data(a, 0x200, "n", 1, &r);
        assert_valid(bus);
        assert_int_equal(test_slice_handle(a, &r, 0), assigned_id(1, LOCAL));
        assert_true(node_of(a, assigned_id(1, LOCAL))->destroyed);
        assert_ptr_equal(node_of(a, assigned_id(1, LOCAL))->owner, a);
}

/* a peer holds one handle per node: the same node always has the same ID */
static void test_one_handle_per_node(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dst, ids[2];
        PeerRecv r;

        /* two transfers: one handle with two references */
        assert_int_equal(test_transfer(a, 0x100, b), assigned_id(1, REMOTE));
        assert_valid(bus);
        assert_int_equal(test_transfer(a, 0x100, b), assigned_id(1, REMOTE));
        assert_valid(bus);
        assert_int_equal(b->n_handles, 1);
        assert_int_equal(b->n_handle_refs, 2);

        /* two messages carrying it to C, then a transfer: still one handle */
        dst = test_transfer(c, 0x100, b);
        assert_valid(bus);
        ids[0] = assigned_id(1, REMOTE);
        assert_int_equal(test_send(b, 0, &dst, 1, NULL, "1", 1, ids, 1, NULL), 0);
        assert_valid(bus);
        assert_int_equal(test_send(b, 0, &dst, 1, NULL, "2", 1, ids, 1, NULL), 0);
        assert_valid(bus);
        test_expect_data(c, 0x100, "1", 1, &r);
        assert_valid(bus);
        ids[1] = test_slice_handle(c, &r, 0);
        assert_int_equal(ids[1], assigned_id(1, REMOTE));
        test_expect_data(c, 0x100, "2", 1, &r);
        assert_valid(bus);
        assert_int_equal(test_slice_handle(c, &r, 0), ids[1]);
        assert_int_equal(test_transfer(a, 0x100, c), ids[1]);
        assert_valid(bus);
        assert_int_equal(c->n_handles, 2);
        release_n_then_enxio(c, ids[1], 3);
}

/* an owner that gets its own node back receives its owner ID */
static void test_owner_gets_own_id(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t dst, id;
        PeerRecv r;

        id = test_transfer(a, 0x100, b);
        assert_valid(bus);
        dst = test_transfer(a, 0x200, b);
        assert_valid(bus);

        /* by transfer, and to itself */
        assert_int_equal(test_transfer(b, id, a), 0x100);
        assert_valid(bus);
        assert_int_equal(test_transfer(a, 0x100, NULL), 0x100);
        assert_valid(bus);

        /* by message */
        assert_int_equal(test_send(b, 0, &dst, 1, NULL, "own", 3, &id, 1, NULL), 0);
        assert_valid(bus);
        test_expect_data(a, 0x200, "own", 1, &r);
        assert_valid(bus);
        assert_int_equal(test_slice_handle(a, &r, 0), 0x100);
        assert_int_equal(a->n_handles, 2);

        /* 1 + 3 references: three can go, the pin stays */
        for (unsigned int i = 0; i < 3; ++i) {
                assert_int_equal(peer_handle_release(a, 0x100), 0);
                assert_valid(bus);
        }
        assert_int_equal(peer_handle_release(a, 0x100), -EBUSY);
        assert_valid(bus);
        assert_owner_id(a, 0x100);
}

/* each transfer adds one user reference; HANDLE_RELEASE drops one */
static void test_user_refs_transfer(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];

        for (unsigned int i = 0; i < 3; ++i) {
                assert_int_equal(test_transfer(a, 0x100, b), assigned_id(1, REMOTE));
                assert_valid(bus);
                assert_int_equal(b->n_handle_refs, i + 1);
        }
        for (unsigned int i = 0; i < 3; ++i) {
                assert_int_equal(peer_handle_release(b, assigned_id(1, REMOTE)), 0);
                assert_valid(bus);
                assert_int_equal(b->n_handle_refs, 2 - i);
        }
        assert_int_equal(peer_handle_release(b, assigned_id(1, REMOTE)), -ENXIO);
        assert_valid(bus);
        assert_holds_nothing(b);

        /* a transfer of a held handle into its own holder adds one too */
        assert_int_equal(test_transfer(a, 0x100, b), assigned_id(2, REMOTE));
        assert_valid(bus);
        assert_int_equal(test_transfer(b, assigned_id(2, REMOTE), b), assigned_id(2, REMOTE));
        assert_valid(bus);
        release_n_then_enxio(b, assigned_id(2, REMOTE), 2);
}

/*
 * each handle entry of a received message adds one user reference, the same
 * handle listed twice adds two; only the dequeuing RECV adds them
 */
static void test_user_refs_message_entries(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dst, ids[3];
        PeerRecv r;

        ids[0] = test_transfer(a, 0x100, b);
        assert_valid(bus);
        ids[1] = ids[0];
        ids[2] = test_transfer(a, 0x200, b);
        assert_valid(bus);
        dst = test_transfer(c, 0x100, b);
        assert_valid(bus);
        assert_int_equal(test_send(b, 0, &dst, 1, NULL, "2x", 2, ids, 3, NULL), 0);
        assert_valid(bus);

        /* nothing usable before the dequeuing RECV, not even after a PEEK */
        assert_int_equal(peer_handle_release(c, assigned_id(1, REMOTE)), -ENXIO);
        assert_valid(bus);
        assert_int_equal(test_recv(c, BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_valid(bus);
        assert_int_equal(peer_handle_release(c, assigned_id(1, REMOTE)), -ENXIO);
        assert_valid(bus);
        assert_int_equal(peer_handle_transfer(c, 0, assigned_id(2, REMOTE), NULL, &dst), -ENXIO);
        assert_valid(bus);

        test_expect_data(c, 0x100, "2x", 3, &r);
        assert_valid(bus);
        assert_int_equal(test_slice_handle(c, &r, 0), assigned_id(1, REMOTE));
        assert_int_equal(test_slice_handle(c, &r, 1), assigned_id(1, REMOTE));
        assert_int_equal(test_slice_handle(c, &r, 2), assigned_id(2, REMOTE));
        assert_int_equal(peer_slice_release(c, r.offset), 0);
        assert_valid(bus);

        release_n_then_enxio(c, assigned_id(1, REMOTE), 2);
        release_n_then_enxio(c, assigned_id(2, REMOTE), 1);

        /* the sender kept its own references */
        release_n_then_enxio(b, ids[0], 1);
        release_n_then_enxio(b, ids[2], 1);
}

/* the last reference of a live node's owner handle is pinned: EBUSY */
static void test_owner_pin_ebusy(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0];

        create_node(a, 0x100);
        assert_int_equal(peer_handle_release(a, 0x100), -EBUSY);
        assert_valid(bus);
        assert_owner_id(a, 0x100);

        /* extra references go, the pin does not */
        assert_int_equal(test_transfer(a, 0x100, NULL), 0x100);
        assert_valid(bus);
        assert_int_equal(test_transfer(a, 0x100, NULL), 0x100);
        assert_valid(bus);
        assert_int_equal(peer_handle_release(a, 0x100), 0);
        assert_valid(bus);
        assert_int_equal(peer_handle_release(a, 0x100), 0);
        assert_valid(bus);
        assert_int_equal(peer_handle_release(a, 0x100), -EBUSY);
        assert_valid(bus);
        assert_int_equal(a->n_nodes, 1);
        assert_int_equal(a->n_handle_refs, 1);
        assert_owner_id(a, 0x100);
}

/* releasing an unmanaged ID the peer does not hold is EBUSY, creates nothing */
static void test_release_unheld_unmanaged_ebusy(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0];
        static const uint64_t ids[] = { 0, 0x100, 0x1f8, (uint64_t)INT64_MAX - 3 };

        for (size_t i = 0; i < ARRAY_SIZE(ids); ++i) {
                assert_int_equal(peer_handle_release(a, ids[i] & ~(uint64_t)3), -EBUSY);
                assert_valid(bus);
        }
        assert_holds_nothing(a);
        test_expect_empty(a);
}

/* after the node is destroyed the owner releases its handle like any other */
static void test_owner_release_after_destroy(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0];
        uint64_t id = 0x100;

        create_node(a, 0x100);
        assert_int_equal(test_transfer(a, 0x100, NULL), 0x100);
        assert_valid(bus);
        assert_int_equal(peer_nodes_destroy(a, 0, &id, 1), 0);
        assert_valid(bus);
        assert_int_equal(a->n_nodes, 0);

        assert_int_equal(peer_handle_release(a, 0x100), 0);
        assert_valid(bus);
        assert_int_equal(peer_handle_release(a, 0x100), 0);
        assert_valid(bus);
        assert_holds_nothing(a);

        /* gone: an unmanaged ID the peer does not hold */
        assert_int_equal(peer_handle_release(a, 0x100), -EBUSY);
        assert_valid(bus);
        test_expect_empty(a);
}

/* HANDLE_TRANSFER with flags is EINVAL and does nothing */
static void test_transfer_bad_flags(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t out = 7;

        assert_int_equal(peer_handle_transfer(a, 1, 0x100, b, &out), -EINVAL);
        assert_valid(bus);
        assert_int_equal(peer_handle_transfer(a, UINT64_MAX, 0x100, NULL, &out), -EINVAL);
        assert_valid(bus);
        create_node(a, 0x200);
        assert_int_equal(peer_handle_transfer(a, 1ULL << 63, 0x200, b, &out), -EINVAL);
        assert_valid(bus);

        assert_int_equal(out, 7);
        assert_int_equal(a->n_nodes, 1);
        assert_null(handle_find(a, 0x100));
        assert_holds_nothing(b);
}

/* transferring a handle to a destroyed node succeeds with HANDLE_INVALID */
static void test_transfer_destroyed_source(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t id = 0x100, held, out = 7;

        held = test_transfer(a, 0x100, b);
        assert_valid(bus);
        assert_int_equal(peer_nodes_destroy(a, 0, &id, 1), 0);
        assert_valid(bus);

        assert_int_equal(peer_handle_transfer(b, 0, held, c, &out), 0);
        assert_valid(bus);
        assert_int_equal(out, BUS1_HANDLE_INVALID);
        assert_holds_nothing(c);

        out = 7;
        assert_int_equal(peer_handle_transfer(b, 0, held, NULL, &out), 0);
        assert_valid(bus);
        assert_int_equal(out, BUS1_HANDLE_INVALID);
        assert_int_equal(b->n_handle_refs, 1);

        out = 7;
        assert_int_equal(peer_handle_transfer(a, 0, 0x100, c, &out), 0);
        assert_valid(bus);
        assert_int_equal(out, BUS1_HANDLE_INVALID);
        assert_holds_nothing(c);
        test_expect_empty(c);

        /* the sources are untouched */
        release_n_then_enxio(b, held, 1);
}

/* HANDLE_TRANSFER into a disconnected peer is ESHUTDOWN, creates nothing */
static void test_transfer_dst_disconnected(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t out = 7;

        create_node(a, 0x200);
        assert_int_equal(peer_disconnect(b), 0);
        assert_valid(bus);

        assert_int_equal(peer_handle_transfer(a, 0, 0x200, b, &out), -ESHUTDOWN);
        assert_valid(bus);
        assert_int_equal(peer_handle_transfer(a, 0, 0x100, b, &out), -ESHUTDOWN);
        assert_valid(bus);
        assert_int_equal(out, 7);
        assert_int_equal(a->n_nodes, 1);
        assert_int_equal(a->n_handle_refs, 1);
        assert_null(handle_find(a, 0x100));
}

/* HANDLE_TRANSFER by a disconnected peer is ESHUTDOWN */
static void test_transfer_caller_disconnected(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t id, out = 7;

        id = test_transfer(a, 0x100, b);
        assert_valid(bus);
        assert_int_equal(peer_disconnect(b), 0);
        assert_valid(bus);

        assert_int_equal(peer_handle_transfer(b, 0, id, a, &out), -ESHUTDOWN);
        assert_valid(bus);
        assert_int_equal(peer_handle_transfer(b, 0, 0x100, NULL, &out), -ESHUTDOWN);
        assert_valid(bus);
        assert_int_equal(out, 7);
        assert_int_equal(a->n_handle_refs, 1);
}

/* HANDLE_TRANSFER beyond the destination's handle limit is EDQUOT */
static void test_transfer_edquot(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t out = 7;

        test_set_max_handles(b, 2);
        assert_valid(bus);
        assert_int_equal(test_transfer(a, 0x100, b), assigned_id(1, REMOTE));
        assert_valid(bus);
        assert_int_equal(test_transfer(a, 0x200, b), assigned_id(2, REMOTE));
        assert_valid(bus);

        /* another node, another reference to a held node, a new node */
        assert_int_equal(peer_handle_transfer(a, 0, 0x300, b, &out), -EDQUOT);
        assert_valid(bus);
        assert_int_equal(peer_handle_transfer(a, 0, 0x100, b, &out), -EDQUOT);
        assert_valid(bus);
        assert_int_equal(peer_handle_transfer(b, 0, assigned_id(1, REMOTE), NULL, &out), -EDQUOT);
        assert_valid(bus);
        assert_int_equal(out, 7);
        assert_int_equal(a->n_nodes, 2);
        assert_null(handle_find(a, 0x300));
        assert_int_equal(b->n_handles, 2);
        assert_int_equal(b->n_handle_refs, 2);

        /* the caller's own limit: B cannot create a node either */
        assert_int_equal(peer_handle_transfer(b, 0, 0x100, a, &out), -EDQUOT);
        assert_valid(bus);
        assert_int_equal(b->n_nodes, 0);
        assert_null(handle_find(b, 0x100));

        /* room again after a release */
        assert_int_equal(peer_handle_release(b, assigned_id(2, REMOTE)), 0);
        assert_valid(bus);
        assert_int_equal(test_transfer(a, 0x300, b), assigned_id(3, REMOTE));
        assert_valid(bus);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_bus_unit_test(test_new_id_transfer_source, 2),
                test_bus_unit_test(test_new_id_send_destination, 1),
                test_bus_unit_test(test_new_id_send_handle, 2),
                test_bus_unit_test(test_new_id_nodes_destroy, 1),
                test_bus_unit_test(test_failed_call_creates_no_node, 3),
                test_bus_unit_test(test_failed_send_leaves_no_receiver_handle, 3),
                test_bus_unit_test(test_failed_send_assigns_no_id, 3),
                test_bus_unit_test(test_unknown_id_enxio, 2),
                test_bus_unit_test(test_assigned_id_format, 3),
                test_bus_unit_test(test_assigned_id_never_reused, 2),
                test_bus_unit_test(test_released_handle_received_fresh_id, 3),
                test_bus_unit_test(test_released_id_not_revived_by_transfer, 3),
                test_bus_unit_test(test_released_id_not_revived_by_receive, 3),
                test_bus_unit_test(test_owner_id_free_after_release, 2),
                test_bus_unit_test(test_owner_id_free_while_entry_queued, 2),
                test_bus_unit_test(test_one_handle_per_node, 3),
                test_bus_unit_test(test_owner_gets_own_id, 2),
                test_bus_unit_test(test_user_refs_transfer, 2),
                test_bus_unit_test(test_user_refs_message_entries, 3),
                test_bus_unit_test(test_owner_pin_ebusy, 1),
                test_bus_unit_test(test_release_unheld_unmanaged_ebusy, 1),
                test_bus_unit_test(test_owner_release_after_destroy, 1),
                test_bus_unit_test(test_transfer_bad_flags, 2),
                test_bus_unit_test(test_transfer_destroyed_source, 3),
                test_bus_unit_test(test_transfer_dst_disconnected, 2),
                test_bus_unit_test(test_transfer_caller_disconnected, 2),
                test_bus_unit_test(test_transfer_edquot, 2),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
