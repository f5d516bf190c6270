/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UAPI handles and nodes: IDs, reference counts and notifications
 * (docs/model.md §2, §3) through a real broker
 *
 * Handles travel between three peers of this process by HANDLE_TRANSFER
 * and inside messages; the tests check the IDs each peer sees, the user
 * reference counts (through HANDLE_RELEASE and NODE_RELEASE), node creation
 * from new IDs, NODES_DESTROY and what happens to messages and handles
 * around a destruction.
 */

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include "util-uapi.h"

/* receive a DATA entry carrying @n handles and return their IDs */
static void recv_handles(UapiFixture *f, int peer, uint64_t destination, uint64_t *ids,
                         uint64_t n) {
        struct bus1_cmd_recv r;

        assert_int_equal(uapi_recv(peer, 0, &r), 0);
        uapi_assert_data(&r, destination, 1);
        assert_int_equal(r.msg.n_handles, n);
        for (uint64_t i = 0; i < n; ++i)
                ids[i] = uapi_slice_handle(uapi_pool(f, peer), &r, i);
        assert_int_equal(uapi_slice_release(peer, r.msg.offset), 0);
}

/*
 * The next two entries are these notifications, in either order (one
 * operation may queue both, in one transaction or two); nothing of their
 * transaction follows the second.
 */
static void expect_two_notifications(int peer, uint64_t t1, uint64_t d1, uint64_t t2,
                                     uint64_t d2) {
        struct bus1_cmd_recv r1, r2;

        assert_int_equal(uapi_recv(peer, 0, &r1), 0);
        assert_int_equal(uapi_recv(peer, 0, &r2), 0);
        if (r1.msg.type == t1 && r1.msg.destination == d1) {
                uapi_assert_notification(&r2, t2, d2);
        } else {
                uapi_assert_notification(&r1, t2, d2);
                uapi_assert_notification(&r2, t1, d1);
        }
        assert_int_equal(r2.msg.flags, 0);
}

/*
 * A handle travels A → B (transfer) → C (message); each holder has its own
 * ID and its own references, and the owner hears when the last one goes.
 */
static void test_three_peers_refcounts(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, hb2, hc_node, hc, ids[2];
        int a, b, c;

        a = uapi_peer(f);
        b = uapi_peer(f);
        c = uapi_peer(f);

        hb = uapi_give(a, 0x100, b);
        assert_int_equal(hb & 7, UAPI_REMOTE_BITS);
        /* a second transfer adds a reference to the same handle */
        hb2 = uapi_give(a, 0x100, b);
        assert_int_equal(hb2, hb);

        /* C's node for B to write to */
        hc_node = uapi_give(c, 0x200, b);

        /* B passes its handle to C in a message: C gets its own ID */
        assert_int_equal(uapi_send(b, &hc_node, 1, 0, NULL, "h", 1, &hb, 1), 0);
        recv_handles(f, c, 0x200, &hc, 1);
        assert_int_equal(hc & 7, UAPI_REMOTE_BITS);

        /* B holds two references: both go, the third release is ENXIO */
        assert_int_equal(uapi_release(b, hb), 0);
        assert_int_equal(uapi_release(b, hb), 0);
        assert_int_equal(uapi_release(b, hb), -ENXIO);
        /* C still holds one: no notification yet */
        uapi_expect_empty(a);

        /* C gets the same handle twice in one message: +2 on its handle */
        {
                uint64_t hb_c = uapi_give(c, hc, b);

                ids[0] = ids[1] = hb_c;
                /* B's handle is new after its full release: a fresh ID */
                assert_true(hb_c != hb);
                assert_int_equal(hb_c & 7, UAPI_REMOTE_BITS);
                assert_int_equal(uapi_send(b, &hc_node, 1, 0, NULL, "h", 1, ids, 2), 0);
                assert_int_equal(uapi_release(b, hb_c), 0);
                assert_int_equal(uapi_release(b, hb_c), -ENXIO);
        }
        recv_handles(f, c, 0x200, ids, 2);
        assert_int_equal(ids[0], hc);
        assert_int_equal(ids[1], hc);

        /* C now has three references: two releases leave it alive */
        assert_int_equal(uapi_release(c, hc), 0);
        assert_int_equal(uapi_release(c, hc), 0);
        uapi_expect_empty(a);
        assert_int_equal(uapi_release(c, hc), 0);
        assert_int_equal(uapi_release(c, hc), -ENXIO);

        /* the last reference is gone: NODE_RELEASE to the owner, once */
        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, 0x100);
        uapi_expect_empty(a);
        uapi_expect_empty(b);
        uapi_expect_empty(c);

        uapi_finish(f);
}

/*
 * IDs are (n << 3) | MANAGED | REMOTE with a per-peer counter from 1 that
 * is never reused; an owner gets its own ID back.
 */
static void test_id_format(void **state) {
        UapiFixture *f = *state;
        uint64_t h1, h2, h3, id, ids[2], hnode;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);

        h1 = uapi_give(a, 0x100, b);
        h2 = uapi_give(a, 0x200, b);
        assert_int_equal(h1, (1 << 3) | UAPI_REMOTE_BITS);
        assert_int_equal(h2, (2 << 3) | UAPI_REMOTE_BITS);
        /* the same node again: the same ID, no counter step */
        assert_int_equal(uapi_give(a, 0x100, b), h1);
        assert_int_equal(uapi_release(b, h1), 0);

        /* a fully released handle received again gets a fresh ID */
        assert_int_equal(uapi_release(b, h1), 0);
        assert_int_equal(uapi_release(b, h1), -ENXIO);
        h3 = uapi_give(a, 0x100, b);
        assert_int_equal(h3, (3 << 3) | UAPI_REMOTE_BITS);

        /* A's counter is its own: A's first assigned ID is n = 1 */
        hnode = uapi_give(b, 0x0, a);
        assert_int_equal(hnode, (1 << 3) | UAPI_REMOTE_BITS);

        /* the owner gets its own ID back, by transfer ... */
        assert_int_equal(uapi_transfer(b, h2, a, &id), 0);
        assert_int_equal(id, 0x200);
        /* ... and in a message (B's node 0x0 is A's hnode) */
        ids[0] = h2;
        ids[1] = h3;
        {
                uint64_t to_a = uapi_give(b, 0x0, b);

                /* a peer transferring its own node to itself keeps its ID */
                assert_int_equal(to_a, 0x0);
        }
        assert_int_equal(uapi_transfer(a, hnode, b, &id), 0);
        assert_int_equal(id, 0x0);
        {
                uint64_t a_node = uapi_give(a, 0x300, b);

                assert_int_equal(a_node, (4 << 3) | UAPI_REMOTE_BITS);
                assert_int_equal(uapi_send(b, &a_node, 1, 0, NULL, "x", 1, ids, 2), 0);
                recv_handles(f, a, 0x300, ids, 2);
                assert_int_equal(ids[0], 0x200);
                assert_int_equal(ids[1], 0x100);
        }

        /* the owner's references rose: 0x100 has 2 and can lose 1, not 2 */
        assert_int_equal(uapi_release(a, 0x100), 0);
        assert_int_equal(uapi_release(a, 0x100), -EBUSY);

        uapi_finish(f);
}

/* a new ID names a new node wherever an ID is accepted */
static void test_new_id_creation(void **state) {
        UapiFixture *f = *state;
        uint64_t id, hnode, handle, ids[1];
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);

        /* by transfer; 0 is a valid new ID */
        id = uapi_give(a, 0x0, b);
        assert_int_equal(id & 7, UAPI_REMOTE_BITS);
        assert_int_equal(uapi_send_str(b, id, "zero"), 0);
        uapi_expect_str(f, a, 0x0, "zero");

        /* by a SEND destination: the message goes to the new node */
        id = 0x200;
        assert_int_equal(uapi_send_str(a, id, "self"), 0);
        uapi_expect_str(f, a, 0x200, "self");

        /* by a SEND handle entry */
        hnode = uapi_give(b, 0x100, a);
        handle = 0x300;
        assert_int_equal(uapi_send(a, &hnode, 1, 0, NULL, "h", 1, &handle, 1), 0);
        recv_handles(f, b, 0x100, ids, 1);
        assert_int_equal(ids[0] & 7, UAPI_REMOTE_BITS);
        assert_int_equal(uapi_send_str(b, ids[0], "to 0x300"), 0);
        uapi_expect_str(f, a, 0x300, "to 0x300");
        assert_int_equal(uapi_release(b, ids[0]), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, 0x300);

        /* by NODES_DESTROY: created and destroyed at once */
        id = 0x400;
        assert_int_equal(uapi_destroy(a, 0, &id, 1), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_DESTROY, 0x400);
        /* the owner handle of a destroyed node may go; then the ID is free */
        assert_int_equal(uapi_release(a, 0x400), 0);
        assert_int_equal(uapi_release(a, 0x400), -EBUSY);

        /* an unknown ID with MANAGED or REMOTE set never creates anything */
        assert_int_equal(uapi_transfer(a, 0x501, b, NULL), -ENXIO);
        assert_int_equal(uapi_transfer(a, 0x502, b, NULL), -ENXIO);
        assert_int_equal(uapi_transfer(a, 0x503, b, NULL), -ENXIO);
        id = 0x511;
        assert_int_equal(uapi_send_str(a, id, "x"), -ENXIO);
        handle = 0x512;
        assert_int_equal(uapi_send(a, &hnode, 1, 0, NULL, "h", 1, &handle, 1), -ENXIO);
        id = 0x513;
        assert_int_equal(uapi_destroy(a, 0, &id, 1), -ENXIO);
        assert_int_equal(uapi_release(a, 0x501), -ENXIO);

        uapi_expect_empty(a);
        uapi_expect_empty(b);
        uapi_finish(f);
}

/* a command that fails creates no node */
static void test_no_creation_on_failure(void **state) {
        UapiFixture *f = *state;
        uint64_t unknown = (99 << 3) | UAPI_REMOTE_BITS, ids[2], hnode, id;
        struct bus1_cmd_handle_transfer t;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hnode = uapi_give(b, 0x100, a);         /* a holds 1 reference */

        /* a may hold 2 references: exactly one more node */
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, 2, UAPI_KEEP32,
                                    UAPI_KEEP32), 0);

        /* failed SEND: new destination, then an unknown one */
        ids[0] = 0x200;
        ids[1] = unknown;
        assert_int_equal(uapi_send(a, ids, 2, 0, NULL, "x", 1, NULL, 0), -ENXIO);
        /* failed SEND: new handle entry, unknown destination */
        id = 0x300;
        assert_int_equal(uapi_send(a, &unknown, 1, 0, NULL, "x", 1, &id, 1), -ENXIO);
        /* failed SEND: new handle entry, duplicate destination */
        ids[0] = hnode;
        ids[1] = hnode;
        assert_int_equal(uapi_send(a, ids, 2, 0, NULL, "x", 1, &id, 1), -ENOTUNIQ);
        /* failed NODES_DESTROY: a new ID before an unknown one */
        ids[0] = 0x400;
        ids[1] = unknown;
        assert_int_equal(uapi_destroy(a, 0, ids, 2), -ENXIO);
        /* failed HANDLE_TRANSFER: bad flags */
        t = (struct bus1_cmd_handle_transfer){ .flags = 1, .src_handle = 0x500,
                                               .dst_fd = (uint64_t)b };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_HANDLE_TRANSFER, &t), -EINVAL);
        uapi_expect_empty(b);

        /* nothing was left behind: one node can still be created, not two */
        id = uapi_give(a, 0x600, b);
        assert_int_equal(uapi_transfer(a, 0x700, b, NULL), -EDQUOT);
        /* and none of the failed IDs exists: b got nothing for them */
        uapi_expect_empty(b);
        uapi_expect_empty(a);
        assert_int_equal(uapi_send_str(b, id, "0x600"), 0);
        uapi_expect_str(f, a, 0x600, "0x600");

        uapi_finish(f);
}

/* EBUSY: the pinned reference of a live node, and unheld new IDs */
static void test_ebusy(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, hb_new, id = 0x100;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);

        assert_int_equal(uapi_release(a, 0x100), -EBUSY);
        /* transferring to itself adds a reference, which may go */
        assert_int_equal(uapi_give(a, 0x100, -1), 0x100);
        assert_int_equal(uapi_release(a, 0x100), 0);
        assert_int_equal(uapi_release(a, 0x100), -EBUSY);
        /* a new ID it does not hold: EBUSY, a managed unknown one: ENXIO */
        assert_int_equal(uapi_release(a, 0x998), -EBUSY);
        assert_int_equal(uapi_release(a, 0x999), -ENXIO);
        assert_int_equal(uapi_release(a, 0x99b), -ENXIO);

        /* destroyed: the owner may release it like any handle */
        assert_int_equal(uapi_destroy(a, 0, &id, 1), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_DESTROY, 0x100);
        assert_int_equal(uapi_release(a, 0x100), 0);
        assert_int_equal(uapi_release(a, 0x100), -EBUSY);

        /* 0x100 is free again: it names a new node, not the old one */
        hb_new = uapi_give(a, 0x100, b);
        assert_true(hb_new != hb);
        assert_int_equal(uapi_send_str(b, hb, "old"), -EHOSTUNREACH);
        assert_int_equal(uapi_send_str(b, hb_new, "new"), 0);
        uapi_expect_str(f, a, 0x100, "new");
        uapi_expect_empty(a);

        uapi_finish(f);
}

typedef struct Crossing {
        int from, to;
        uint64_t node;
        int r;
} Crossing;

#define CROSSING_ROUNDS 20000

static void *crossing_thread(void *userdata) {
        Crossing *c = userdata;

        for (int i = 0; i < CROSSING_ROUNDS && c->r == 0; ++i) {
                uint64_t id;

                c->r = uapi_transfer(c->from, c->node, c->to, &id);
        }
        return NULL;
}

/*
 * Two threads transfer handles between the same two peers in opposite
 * directions at once: each call holds its own peer, and must not wait for
 * the other's (that was a deadlock). A hang ends the process after 30 s,
 * killing the broker first, rather than the suite's timeout.
 */
static void test_crossing_transfers(void **state) {
        UapiFixture *f = *state;
        Crossing ab, ba;
        pthread_t t1, t2;
        struct timespec deadline;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        ab = (Crossing){ .from = a, .to = b, .node = 0x100 };
        ba = (Crossing){ .from = b, .to = a, .node = 0x200 };
        assert_int_equal(pthread_create(&t1, NULL, crossing_thread, &ab), 0);
        assert_int_equal(pthread_create(&t2, NULL, crossing_thread, &ba), 0);

        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 30;
        if (pthread_timedjoin_np(t1, NULL, &deadline) != 0 ||
            pthread_timedjoin_np(t2, NULL, &deadline) != 0) {
                print_message("crossing transfers hang (deadlock)\n");
                kill(f->broker.pid, SIGKILL);
                _exit(1);
        }
        assert_int_equal(ab.r, 0);
        assert_int_equal(ba.r, 0);
        uapi_finish(f);
}

/* NODE_RELEASE: its fields, recurrence, withdrawal */
static void test_release_notification(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        uint64_t hb;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);

        /* the owner's own extra reference counts too */
        hb = uapi_give(a, 0x100, -1);
        assert_int_equal(hb, 0x100);
        uapi_expect_empty(a);
        assert_int_equal(uapi_release(a, 0x100), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, 0x100);
        uapi_expect_empty(a);

        hb = uapi_give(a, 0x100, b);
        uapi_expect_empty(a);
        assert_int_equal(uapi_release(b, hb), 0);

        assert_int_equal(uapi_recv(a, 0, &r), 0);
        uapi_assert_notification(&r, BUS1_MSG_NODE_RELEASE, 0x100);
        assert_int_equal(r.msg.flags, 0);
        uapi_expect_empty(a);
        uapi_expect_empty(b);

        /* again: each time the count falls to zero */
        hb = uapi_give(a, 0x100, b);
        assert_int_equal(uapi_release(b, hb), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, 0x100);
        uapi_expect_empty(a);

        /* withdrawn when the count rises before the owner dequeues it */
        hb = uapi_give(a, 0x100, b);
        assert_int_equal(uapi_release(b, hb), 0);
        hb = uapi_give(a, 0x100, b);
        uapi_expect_empty(a);

        /* and queued only once more when it falls again */
        assert_int_equal(uapi_release(b, hb), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, 0x100);
        uapi_expect_empty(a);

        /* withdrawn by a message carrying the handle, too */
        {
                uint64_t hnode = uapi_give(b, 0x200, a), handle = 0x100;

                hb = uapi_give(a, 0x100, b);
                assert_int_equal(uapi_release(b, hb), 0);
                assert_int_equal(uapi_send(a, &hnode, 1, 0, NULL, "h", 1, &handle, 1), 0);
                uapi_expect_empty(a);
                /* B has not received it: the queued entry holds it */
                assert_int_equal(uapi_recv(b, 0, &r), 0);
                hb = uapi_slice_handle(uapi_pool(f, b), &r, 0);
                assert_int_equal(uapi_slice_release(b, r.msg.offset), 0);
                uapi_expect_empty(a);
                assert_int_equal(uapi_release(b, hb), 0);
                uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, 0x100);
                uapi_expect_empty(a);
        }

        uapi_finish(f);
}

/* handle entries of queued messages count: they hold NODE_RELEASE off */
static void test_release_held_by_queued_message(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, hc_node, hc, handle = 0x100;
        int a, b, c;

        a = uapi_peer(f);
        b = uapi_peer(f);
        c = uapi_peer(f);
        hc_node = uapi_give(c, 0x200, b);

        /* B sends its handle to C and lets go before C receives */
        hb = uapi_give(a, 0x100, b);
        assert_int_equal(uapi_send(b, &hc_node, 1, 0, NULL, "h", 1, &hb, 1), 0);
        assert_int_equal(uapi_release(b, hb), 0);
        uapi_expect_empty(a);
        /* receiving turns the entry into C's reference: still nothing */
        recv_handles(f, c, 0x200, &hc, 1);
        uapi_expect_empty(a);
        assert_int_equal(uapi_release(c, hc), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, 0x100);

        /* the owner's own send: the queued entry counts until C drops it */
        {
                uint64_t a_to_c = uapi_give(c, 0x300, a);

                assert_int_equal(uapi_send(a, &a_to_c, 1, 0, NULL, "h", 1, &handle, 1), 0);
                uapi_expect_empty(a);
                /* C never receives it: its flush drops the entry, and the count */
                assert_int_equal(uapi_reset(c, BUS1_PEER_RESET_FLAG_FLUSH, UAPI_KEEP64,
                                            UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32,
                                            UAPI_KEEP32), 0);
                /* ... and destroys 0x300, which A holds */
                expect_two_notifications(a, BUS1_MSG_NODE_RELEASE, 0x100,
                                         BUS1_MSG_NODE_DESTROY, a_to_c);
                uapi_expect_empty(a);
        }

        /* a disconnecting receiver drops it too */
        {
                uint64_t hnode = uapi_give(b, 0x400, a);

                assert_int_equal(uapi_send(a, &hnode, 1, 0, NULL, "h", 1, &handle, 1), 0);
                uapi_expect_empty(a);
                assert_int_equal(bus1_uapi_ioctl(b, BUS1_CMD_PEER_DISCONNECT, NULL), 0);
                /* B's node destroyed, A's node released */
                expect_two_notifications(a, BUS1_MSG_NODE_RELEASE, 0x100,
                                         BUS1_MSG_NODE_DESTROY, hnode);
                uapi_expect_empty(a);
        }

        uapi_finish(f);
}

/* no NODE_RELEASE for a destroyed node; destroying removes a pending one */
static void test_release_and_destroy(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, id = 0x100;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);

        hb = uapi_give(a, 0x100, b);
        assert_int_equal(uapi_release(b, hb), 0);
        /* pending NODE_RELEASE, then the node is destroyed */
        assert_int_equal(uapi_destroy(a, 0, &id, 1), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_DESTROY, 0x100);
        uapi_expect_empty(a);

        /* a holder letting go of a destroyed node: no NODE_RELEASE either */
        id = 0x200;
        hb = uapi_give(a, 0x200, b);
        assert_int_equal(uapi_destroy(a, 0, &id, 1), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_DESTROY, 0x200);
        uapi_expect_notification(b, BUS1_MSG_NODE_DESTROY, hb);
        assert_int_equal(uapi_release(b, hb), 0);
        uapi_expect_empty(a);

        uapi_finish(f);
}

/* NODES_DESTROY notifies every holder, owner included, with its own ID */
static void test_destroy_notifications(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, hc, hb2, hb3, ids[2];
        struct bus1_cmd_recv r1, r2;
        int a, b, c;

        a = uapi_peer(f);
        b = uapi_peer(f);
        c = uapi_peer(f);

        hb = uapi_give(a, 0x100, b);
        hc = uapi_give(a, 0x100, c);
        ids[0] = 0x100;
        assert_int_equal(uapi_destroy(a, 0, ids, 1), 0);

        uapi_expect_notification(a, BUS1_MSG_NODE_DESTROY, 0x100);
        uapi_expect_notification(b, BUS1_MSG_NODE_DESTROY, hb);
        uapi_expect_notification(c, BUS1_MSG_NODE_DESTROY, hc);
        uapi_expect_empty(a);
        uapi_expect_empty(b);
        uapi_expect_empty(c);

        /* two nodes in one call: one transaction, CONTINUE on the first */
        hb2 = uapi_give(a, 0x200, b);
        hb3 = uapi_give(a, 0x300, b);
        ids[0] = 0x200;
        ids[1] = 0x300;
        assert_int_equal(uapi_destroy(a, 0, ids, 2), 0);
        for (int i = 0; i < 2; ++i) {
                int peer = i ? b : a;
                uint64_t d2 = i ? hb2 : 0x200, d3 = i ? hb3 : 0x300;

                assert_int_equal(uapi_recv(peer, 0, &r1), 0);
                assert_int_equal(uapi_recv(peer, 0, &r2), 0);
                if (r1.msg.destination == d2) {
                        uapi_assert_notification(&r1, BUS1_MSG_NODE_DESTROY, d2);
                        uapi_assert_notification(&r2, BUS1_MSG_NODE_DESTROY, d3);
                } else {
                        uapi_assert_notification(&r1, BUS1_MSG_NODE_DESTROY, d3);
                        uapi_assert_notification(&r2, BUS1_MSG_NODE_DESTROY, d2);
                }
                assert_int_equal(r1.msg.flags, BUS1_MSG_FLAG_CONTINUE);
                assert_int_equal(r2.msg.flags, 0);
                uapi_expect_empty(peer);
        }

        /* sends to destroyed nodes fail; transfers of them give INVALID */
        assert_int_equal(uapi_send_str(b, hb, "x"), -EHOSTUNREACH);
        assert_int_equal(uapi_send_str(b, hb2, "x"), -EHOSTUNREACH);
        {
                uint64_t id = 0;

                assert_int_equal(uapi_transfer(b, hb, c, &id), 0);
                assert_int_equal(id, BUS1_HANDLE_INVALID);
                assert_int_equal(uapi_transfer(a, 0x300, b, &id), 0);
                assert_int_equal(id, BUS1_HANDLE_INVALID);
        }
        uapi_expect_empty(c);

        uapi_finish(f);
}

/* NODES_DESTROY errors, all or nothing */
static void test_destroy_errors(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, ha, ids[3], unknown = (42 << 3) | BUS1_HANDLE_FLAG_MANAGED;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);
        ha = uapi_give(b, 0x900, a);
        ids[0] = 0x200;
        assert_int_equal(uapi_destroy(a, 0, ids, 1), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_DESTROY, 0x200);

        /* each error alone */
        assert_int_equal(uapi_destroy(a, 0, &unknown, 1), -ENXIO);
        assert_int_equal(uapi_destroy(a, 0, &ha, 1), -EREMOTE);
        assert_int_equal(uapi_destroy(b, 0, &hb, 1), -EREMOTE);
        ids[0] = 0x200;
        assert_int_equal(uapi_destroy(a, 0, ids, 1), -ESTALE);
        ids[0] = 0x100;
        ids[1] = 0x100;
        assert_int_equal(uapi_destroy(a, 0, ids, 2), -ENOTUNIQ);
        assert_int_equal(uapi_destroy(a, 1ULL << 1, ids, 1), -EINVAL);
        assert_int_equal(uapi_destroy(a, 1ULL << 63, ids, 1), -EINVAL);

        /* all or nothing: 0x100 (live) first, then a bad one */
        ids[0] = 0x100;
        ids[1] = unknown;
        assert_int_equal(uapi_destroy(a, 0, ids, 2), -ENXIO);
        ids[1] = ha;
        assert_int_equal(uapi_destroy(a, 0, ids, 2), -EREMOTE);
        ids[1] = 0x200;
        assert_int_equal(uapi_destroy(a, 0, ids, 2), -ESTALE);
        /* a new ID ahead of a bad one is not created either */
        ids[0] = 0x300;
        ids[1] = unknown;
        assert_int_equal(uapi_destroy(a, 0, ids, 2), -ENXIO);

        /*
         * A lowered handle limit does not bound the count (the user's limit
         * does: peer.c bus1_peer_ioctl_nodes_destroy()), but the two new
         * nodes need handles the peer cannot take: EDQUOT.
         */
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, 2, UAPI_KEEP32,
                                    UAPI_KEEP32), 0);
        ids[0] = 0x100;
        ids[1] = 0x400;
        ids[2] = 0x500;
        assert_int_equal(uapi_destroy(a, 0, ids, 3), -EDQUOT);
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, 100, UAPI_KEEP32,
                                    UAPI_KEEP32), 0);

        /* nothing happened: 0x100 is alive, no notification anywhere */
        uapi_expect_empty(a);
        uapi_expect_empty(b);
        assert_int_equal(uapi_send_str(b, hb, "alive"), 0);
        uapi_expect_str(f, a, 0x100, "alive");
        assert_int_equal(uapi_release(a, 0x100), -EBUSY);

        uapi_finish(f);
}

/* RELEASE_HANDLES: the owner handles lose one reference after destruction */
static void test_destroy_release_handles(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, ids[2] = { 0x100, 0x200 };
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);
        /* 0x200 has a second reference */
        assert_int_equal(uapi_give(a, 0x200, -1), 0x200);

        assert_int_equal(uapi_destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, ids, 2), 0);

        /* B is told */
        uapi_expect_notification(b, BUS1_MSG_NODE_DESTROY, hb);
        /* A released 0x100 before dequeuing its notification: never sees it */
        uapi_expect_notification(a, BUS1_MSG_NODE_DESTROY, 0x200);
        uapi_expect_empty(a);

        /* 0x100 is gone; 0x200 has one reference left */
        assert_int_equal(uapi_release(a, 0x100), -EBUSY);
        assert_int_equal(uapi_release(a, 0x200), 0);
        assert_int_equal(uapi_release(a, 0x200), -EBUSY);

        uapi_finish(f);
}

/*
 * Messages ordered before a destruction are delivered (before the
 * NODE_DESTROY); sends after it fail; handles to the node in later
 * messages arrive as BUS1_HANDLE_INVALID.
 */
static void test_destroy_ordering(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, hc_node, ids[2], id = 0x100, hc;
        struct bus1_cmd_recv r;
        int a, b, c;

        a = uapi_peer(f);
        b = uapi_peer(f);
        c = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);
        hc_node = uapi_give(c, 0x200, b);

        assert_int_equal(uapi_send_str(b, hb, "before"), 0);
        /* B passes the handle on to C before the destruction */
        assert_int_equal(uapi_send(b, &hc_node, 1, 0, NULL, "h", 1, &hb, 1), 0);

        assert_int_equal(uapi_destroy(a, 0, &id, 1), 0);
        assert_int_equal(uapi_send_str(b, hb, "after"), -EHOSTUNREACH);
        /* after it: the handle entry is INVALID, but still counted */
        ids[0] = hb;
        ids[1] = hc_node;
        assert_int_equal(uapi_send(b, &hc_node, 1, 0, NULL, "h", 1, ids, 2), 0);

        /* A: the message, then the notification */
        uapi_expect_str(f, a, 0x100, "before");
        uapi_expect_notification(a, BUS1_MSG_NODE_DESTROY, 0x100);
        uapi_expect_empty(a);

        /* B: the notification */
        uapi_expect_notification(b, BUS1_MSG_NODE_DESTROY, hb);
        uapi_expect_empty(b);

        /* C: the first message has a valid handle, then its NODE_DESTROY, then the second */
        recv_handles(f, c, 0x200, &hc, 1);
        assert_int_equal(hc & 7, UAPI_REMOTE_BITS);
        uapi_expect_notification(c, BUS1_MSG_NODE_DESTROY, hc);
        assert_int_equal(uapi_recv(c, 0, &r), 0);
        uapi_assert_data(&r, 0x200, 1);
        assert_int_equal(r.msg.n_handles, 2);
        assert_int_equal(uapi_slice_handle(uapi_pool(f, c), &r, 0), BUS1_HANDLE_INVALID);
        /* C's own node comes back under its owner ID */
        assert_int_equal(uapi_slice_handle(uapi_pool(f, c), &r, 1), 0x200);
        assert_int_equal(uapi_slice_release(c, r.msg.offset), 0);
        uapi_expect_empty(c);

        /* C's handle to the destroyed node is still its to release */
        assert_int_equal(uapi_release(c, hc), 0);
        assert_int_equal(uapi_release(c, hc), -ENXIO);

        uapi_finish(f);
}

/* a holder that lets go before dequeuing NODE_DESTROY never sees it */
static void test_release_before_destroy_dequeue(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, hc, id = 0x100;
        int a, b, c;

        a = uapi_peer(f);
        b = uapi_peer(f);
        c = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);
        hc = uapi_give(a, 0x100, c);

        /* a message for the node is queued when it is destroyed */
        assert_int_equal(uapi_send_str(b, hb, "queued"), 0);
        assert_int_equal(uapi_destroy(a, 0, &id, 1), 0);

        /* B lets go first: nothing for B */
        assert_int_equal(uapi_release(b, hb), 0);
        uapi_expect_empty(b);
        /* C has not: C sees it */
        uapi_expect_notification(c, BUS1_MSG_NODE_DESTROY, hc);

        /* the owner lets go of every handle: nothing more for the node */
        assert_int_equal(uapi_release(a, 0x100), 0);
        uapi_expect_empty(a);

        uapi_finish(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_three_peers_refcounts, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_id_format, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_new_id_creation, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_no_creation_on_failure, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_ebusy, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_crossing_transfers, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_release_notification, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_release_held_by_queued_message,
                                                uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_release_and_destroy, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_destroy_notifications, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_destroy_errors, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_destroy_release_handles, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_destroy_ordering, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_release_before_destroy_dequeue,
                                                uapi_setup, uapi_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
