/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for the queue: the module itself, global order (docs/model.md §7),
 * BUS1_MSG_FLAG_CONTINUE, and what RECV does with the front entry (PEEK,
 * EAGAIN, ERANGE; docs/model.md §5)
 *
 * The module tests drive a Queue on the stack with entries on the stack and
 * check after every step, with queue_check(), that the list holds exactly
 * the expected entries in order, that n_entries matches, and that ids
 * increase and sequence numbers never decrease from front to back. The
 * model tests get their own Bus with peers (the TestBus fixture of
 * model-util.h, or one they build) and run the model's consistency checker
 * after every step.
 *
 * Where the model (docs/model.md §4.5) leaves the order of one transaction's entries on a queue open
 * (several nodes of one peer, several notifications), the tests only rely
 * on what is specified: the set of entries, and CONTINUE on every entry
 * with another of the same transaction right behind it.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "model-util.h"
#include "bus/handle.h"
#include "bus/node.h"
#include "bus/queue.h"

#define ID_N1 0x100ULL
#define ID_N2 0x200ULL
#define ID_N3 0x300ULL

/* --- the queue module ------------------------------------------------------ */

/* check that @queue holds exactly @expect[0..n) in this order */
static void queue_check(Queue *queue, QueueEntry **expect, size_t n) {
        uint64_t last_id = 0, last_seq = 0;
        QueueEntry *e;
        size_t i = 0;

        assert_int_equal(queue->n_entries, n);
        list_for_each_entry(e, &queue->entries, link) {
                assert_true(i < n);
                assert_ptr_equal(e, expect[i]);
                assert_true(queue_entry_is_queued(e));
                assert_true(e->id > last_id);
                assert_true(e->seq >= last_seq);
                last_id = e->id;
                last_seq = e->seq;
                ++i;
        }
        assert_int_equal(i, n);
        assert_ptr_equal(queue_first(queue), n ? expect[0] : NULL);
}

/* an empty queue has no front; entries start unqueued with their type */
static void test_queue_empty(void **state) {
        Queue q = QUEUE_INIT(q), q2;
        QueueEntry e = QUEUE_ENTRY_INIT(e, QUEUE_ENTRY_NODE_DESTROY), f;

        queue_check(&q, NULL, 0);
        assert_null(queue_first(&q));
        queue_init(&q2);
        queue_check(&q2, NULL, 0);

        assert_false(queue_entry_is_queued(&e));
        assert_int_equal(e.type, QUEUE_ENTRY_NODE_DESTROY);
        queue_entry_init(&f, QUEUE_ENTRY_NODE_RELEASE);
        assert_false(queue_entry_is_queued(&f));
        assert_int_equal(f.type, QUEUE_ENTRY_NODE_RELEASE);

        queue_deinit(&q);
        queue_deinit(&q2);
}

/* push appends in order, records seq, and hands out increasing ids */
static void test_queue_push_order_and_ids(void **state) {
        QueueEntry e[4];
        Queue q;

        queue_init(&q);
        for (size_t i = 0; i < 4; ++i)
                queue_entry_init(&e[i], QUEUE_ENTRY_DATA);

        queue_push(&q, &e[0], 1);
        queue_check(&q, (QueueEntry *[]){ &e[0] }, 1);
        queue_push(&q, &e[1], 1);
        queue_check(&q, (QueueEntry *[]){ &e[0], &e[1] }, 2);
        queue_push(&q, &e[2], 5);
        queue_push(&q, &e[3], 9);
        queue_check(&q, (QueueEntry *[]){ &e[0], &e[1], &e[2], &e[3] }, 4);

        assert_int_equal(e[0].seq, 1);
        assert_int_equal(e[1].seq, 1);
        assert_int_equal(e[2].seq, 5);
        assert_int_equal(e[3].seq, 9);
        assert_true(e[0].id < e[1].id && e[1].id < e[2].id && e[2].id < e[3].id);
        assert_int_equal(e[0].type, QUEUE_ENTRY_DATA);

        for (size_t i = 0; i < 4; ++i)
                queue_remove(&q, &e[i]);
        queue_check(&q, NULL, 0);
        queue_deinit(&q);
}

/* remove unlinks from anywhere, is a no-op for an unqueued entry; ids are never reused */
static void test_queue_remove(void **state) {
        QueueEntry e[4];
        uint64_t old_id;
        Queue q;

        queue_init(&q);
        for (size_t i = 0; i < 4; ++i) {
                queue_entry_init(&e[i], QUEUE_ENTRY_DATA);
                queue_push(&q, &e[i], 1 + i);
        }

        queue_remove(&q, &e[1]);
        assert_false(queue_entry_is_queued(&e[1]));
        queue_check(&q, (QueueEntry *[]){ &e[0], &e[2], &e[3] }, 3);

        /* not queued: nothing happens */
        queue_remove(&q, &e[1]);
        queue_check(&q, (QueueEntry *[]){ &e[0], &e[2], &e[3] }, 3);

        queue_remove(&q, &e[0]);
        queue_check(&q, (QueueEntry *[]){ &e[2], &e[3] }, 2);
        queue_remove(&q, &e[3]);
        queue_check(&q, (QueueEntry *[]){ &e[2] }, 1);

        /* pushed again, an entry goes to the back with a new, larger id */
        old_id = e[0].id;
        queue_push(&q, &e[0], 7);
        queue_check(&q, (QueueEntry *[]){ &e[2], &e[0] }, 2);
        assert_true(e[0].id > old_id);
        assert_true(e[0].id > e[3].id);

        queue_remove(&q, &e[2]);
        queue_remove(&q, &e[0]);
        queue_check(&q, NULL, 0);
        queue_push(&q, &e[1], 8);
        assert_true(e[1].id > e[0].id);
        queue_remove(&q, &e[1]);
        queue_deinit(&q);
}

/* continues: the entry right behind has the same seq; recomputed after removal */
static void test_queue_continues(void **state) {
        static const uint64_t seqs[6] = { 1, 1, 1, 2, 3, 3 };
        static const bool expect[6] = { true, true, false, false, true, false };
        QueueEntry e[6];
        Queue q;

        queue_init(&q);
        for (size_t i = 0; i < 6; ++i) {
                queue_entry_init(&e[i], QUEUE_ENTRY_DATA);
                queue_push(&q, &e[i], seqs[i]);
        }
        for (size_t i = 0; i < 6; ++i)
                assert_int_equal(queue_entry_continues(&q, &e[i]), expect[i]);

        /* the middle of three goes: the first still has one behind it */
        queue_remove(&q, &e[1]);
        assert_true(queue_entry_continues(&q, &e[0]));
        /* the last of the transaction goes: the first is alone now */
        queue_remove(&q, &e[2]);
        assert_false(queue_entry_continues(&q, &e[0]));
        /* the tail of a pair goes */
        queue_remove(&q, &e[5]);
        assert_false(queue_entry_continues(&q, &e[4]));
        /* a same-seq entry pushed right behind continues it again */
        queue_push(&q, &e[5], 3);
        assert_true(queue_entry_continues(&q, &e[4]));
        queue_check(&q, (QueueEntry *[]){ &e[0], &e[3], &e[4], &e[5] }, 4);

        for (size_t i = 0; i < 6; ++i)
                queue_remove(&q, &e[i]);
        queue_check(&q, NULL, 0);
        queue_deinit(&q);
}

/* what the mirror hooks saw */
typedef struct HookLog {
        QueueEntry *pushed[8];
        QueueEntry *removed[8];
        size_t n_pushed, n_removed;
        Queue *queue;
} HookLog;

static void hook_on_push(Queue *queue, QueueEntry *entry, void *userdata) {
        HookLog *log = userdata;

        assert_ptr_equal(queue, log->queue);
        /* called after the append: the entry is the queued tail */
        assert_true(queue_entry_is_queued(entry));
        assert_ptr_equal(list_entry(list_last(&queue->entries), QueueEntry, link), entry);
        assert_true(log->n_pushed < ARRAY_SIZE(log->pushed));
        log->pushed[log->n_pushed++] = entry;
}

static void hook_on_remove(Queue *queue, QueueEntry *entry, void *userdata) {
        HookLog *log = userdata;

        assert_ptr_equal(queue, log->queue);
        /* called before the unlink: the entry is still queued */
        assert_true(queue_entry_is_queued(entry));
        assert_true(log->n_removed < ARRAY_SIZE(log->removed));
        log->removed[log->n_removed++] = entry;
}

/* the mirror hooks see every push (after) and every real removal (before) */
static void test_queue_hooks(void **state) {
        static const QueueHooks hooks = { .on_push = hook_on_push, .on_remove = hook_on_remove };
        static const QueueHooks push_only = { .on_push = hook_on_push };
        HookLog log = {};
        QueueEntry e[3];
        Queue q;

        queue_init(&q);
        log.queue = &q;
        for (size_t i = 0; i < 3; ++i)
                queue_entry_init(&e[i], QUEUE_ENTRY_DATA);

        /* without hooks nothing is called */
        queue_push(&q, &e[0], 1);
        queue_remove(&q, &e[0]);
        assert_int_equal(log.n_pushed + log.n_removed, 0);

        queue_set_hooks(&q, &hooks, &log);
        queue_push(&q, &e[0], 2);
        queue_push(&q, &e[1], 2);
        queue_check(&q, (QueueEntry *[]){ &e[0], &e[1] }, 2);
        assert_int_equal(log.n_pushed, 2);
        assert_ptr_equal(log.pushed[0], &e[0]);
        assert_ptr_equal(log.pushed[1], &e[1]);

        queue_remove(&q, &e[1]);
        /* removing an entry that is not queued is no removal */
        queue_remove(&q, &e[1]);
        queue_remove(&q, &e[2]);
        assert_int_equal(log.n_removed, 1);
        assert_ptr_equal(log.removed[0], &e[1]);

        /* one hook alone is fine */
        queue_set_hooks(&q, &push_only, &log);
        queue_push(&q, &e[2], 3);
        queue_remove(&q, &e[0]);
        assert_int_equal(log.n_pushed, 3);
        assert_int_equal(log.n_removed, 1);

        queue_set_hooks(&q, NULL, NULL);
        queue_remove(&q, &e[2]);
        queue_check(&q, NULL, 0);
        assert_int_equal(log.n_removed, 1);
        queue_deinit(&q);
}

/* --- model helpers ---------------------------------------------------------- */

static void free_peers(Bus *bus, Peer **peers, size_t n) {
        for (size_t i = 0; i < n; ++i) {
                peers[i] = peer_free(peers[i]);
                assert_valid(bus);
        }
        bus_deinit(bus);
}

/* peek at the front entry (everything mapped) */
static void peek(Peer *peer, PeerRecv *r) {
        assert_int_equal(test_recv(peer, BUS1_RECV_FLAG_PEEK, r), 0);
}

/* dequeue a DATA entry and return its payload as a number */
static unsigned int recv_number(Peer *peer, uint64_t *flagsp) {
        char buf[32];
        PeerRecv r;

        assert_int_equal(test_recv(peer, 0, &r), 0);
        assert_int_equal(r.type, BUS1_MSG_DATA);
        assert_true(r.n_bytes > 0 && r.n_bytes < sizeof(buf));
        memcpy(buf, test_slice(peer, r.offset), r.n_bytes);
        buf[r.n_bytes] = 0;
        assert_int_equal(peer_slice_release(peer, r.offset), 0);
        if (flagsp)
                *flagsp = r.flags;
        return (unsigned int)strtoul(buf, NULL, 10);
}

/* dequeue a notification of @type and return its destination and flags */
static uint64_t recv_notification(Peer *peer, uint64_t type, uint64_t *flagsp) {
        PeerRecv r;

        assert_int_equal(test_recv(peer, 0, &r), 0);
        assert_int_equal(r.type, type);
        *flagsp = r.flags;
        return r.destination;
}

/* --- global order (docs/model.md §7) -------------------------------------------------- */

/* two messages from one peer arrive in send order, across nodes of the receiver */
static void test_order_one_sender(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t to[2], flags;
        char text[16];
        PeerRecv r;

        to[0] = test_transfer(b, ID_N1, a);
        to[1] = test_transfer(b, ID_N2, a);
        assert_valid(bus);

        for (unsigned int i = 0; i < 20; ++i) {
                snprintf(text, sizeof(text), "%u", i);
                assert_int_equal(test_send1(a, to[i % 3 == 0], text), 0);
                assert_valid(bus);
        }
        for (unsigned int i = 0; i < 20; ++i) {
                peek(b, &r);
                assert_int_equal(r.destination, i % 3 == 0 ? ID_N2 : ID_N1);
                assert_int_equal(recv_number(b, &flags), i);
                assert_int_equal(flags, 0);
                assert_valid(bus);
        }
        test_expect_empty(b);
}

/* a multicast to B and C, then B sends to C: C gets the multicast first */
static void test_order_multicast_then_forward(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dsts[2], b_to_c;
        PeerRecv r;

        dsts[0] = test_transfer(b, ID_N1, a);
        dsts[1] = test_transfer(c, ID_N1, a);
        b_to_c = test_transfer(c, ID_N1, b);
        assert_valid(bus);

        /* B sends before it even looked at the multicast */
        assert_int_equal(test_send(a, 0, dsts, 2, NULL, "multicast", 9, NULL, 0, NULL), 0);
        assert_valid(bus);
        assert_int_equal(test_send1(b, b_to_c, "from b"), 0);
        assert_valid(bus);

        /* and after B received it, forwarding what it got */
        assert_int_equal(test_send(a, 0, dsts, 2, NULL, "second", 6, NULL, 0, NULL), 0);
        assert_valid(bus);
        test_expect_data(b, ID_N1, "multicast", 0, &r);
        assert_valid(bus);
        test_expect_data(b, ID_N1, "second", 0, &r);
        assert_valid(bus);
        assert_int_equal(test_send1(b, b_to_c, "forward"), 0);
        assert_valid(bus);

        test_expect_data(c, ID_N1, "multicast", 0, &r);
        assert_valid(bus);
        assert_int_equal(r.creds.uid, 1);
        test_expect_data(c, ID_N1, "from b", 0, &r);
        assert_valid(bus);
        assert_int_equal(r.creds.uid, 2);
        test_expect_data(c, ID_N1, "second", 0, &r);
        assert_valid(bus);
        test_expect_data(c, ID_N1, "forward", 0, &r);
        assert_valid(bus);
        test_expect_empty(c);
}

/*
 * an event that completed before another began is ordered first, even if
 * the two senders only synchronise outside the bus (here: the test itself)
 */
static void test_order_side_channel(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t a_to_c, b_to_c;
        PeerRecv r;

        /* B got its handle first, A's node is the older one: neither matters */
        b_to_c = test_transfer(c, ID_N2, b);
        a_to_c = test_transfer(c, ID_N1, a);
        assert_valid(bus);

        for (unsigned int i = 0; i < 5; ++i) {
                assert_int_equal(test_send1(a, a_to_c, "a"), 0);
                assert_valid(bus);
                assert_int_equal(test_send1(b, b_to_c, "b"), 0);
                assert_valid(bus);
        }
        for (unsigned int i = 0; i < 5; ++i) {
                test_expect_data(c, ID_N1, "a", 0, &r);
                assert_valid(bus);
                test_expect_data(c, ID_N2, "b", 0, &r);
                assert_valid(bus);
        }
}

/*
 * multicasts from two senders to the same two receivers arrive in the same
 * order at both, however they interleave and whatever the order of the
 * destinations in each call; receiving in between changes nothing
 */
static void test_order_concurrent_multicasts(void **state) {
        enum { N = 300 };
        unsigned int got[2][N], n_got[2] = {}, seed = 12345;
        Peer *peers[4] = {}, *s[2], *rcv[2];
        uint64_t to[2][2], flags;
        char text[16];
        Bus bus;

        bus_init(&bus);
        s[0] = peers[0] = test_peer_new(&bus, 1);
        s[1] = peers[1] = test_peer_new(&bus, 2);
        rcv[0] = peers[2] = test_peer_new(&bus, 3);
        rcv[1] = peers[3] = test_peer_new(&bus, 4);
        for (size_t i = 0; i < 2; ++i)
                for (size_t j = 0; j < 2; ++j)
                        to[i][j] = test_transfer(rcv[j], ID_N1, s[i]);
        assert_valid(&bus);

        for (unsigned int i = 0; i < N; ++i) {
                unsigned int who, first;
                uint64_t dsts[2];

                seed = seed * 1103515245U + 12345U;
                who = (seed >> 16) & 1;
                first = (seed >> 17) & 1;
                dsts[0] = to[who][first];
                dsts[1] = to[who][!first];
                snprintf(text, sizeof(text), "%u", i);
                assert_int_equal(test_send(s[who], 0, dsts, 2, NULL, text, strlen(text), NULL,
                                           0, NULL),
                                 0);
                assert_valid(&bus);

                /* now and then one receiver drains a bit */
                if (((seed >> 20) & 7) == 0) {
                        unsigned int k = (seed >> 23) & 1;

                        while (rcv[k]->queue.n_entries > (seed >> 24) % 4) {
                                got[k][n_got[k]++] = recv_number(rcv[k], &flags);
                                assert_int_equal(flags, 0);
                                assert_valid(&bus);
                        }
                }
        }
        for (size_t k = 0; k < 2; ++k) {
                while (rcv[k]->queue.n_entries) {
                        got[k][n_got[k]++] = recv_number(rcv[k], &flags);
                        assert_int_equal(flags, 0);
                        assert_valid(&bus);
                }
                assert_int_equal(n_got[k], N);
        }
        for (unsigned int i = 0; i < N; ++i) {
                assert_int_equal(got[0][i], got[1][i]);
                assert_int_equal(got[0][i], i);
        }

        free_peers(&bus, peers, 4);
}

/*
 * messages and notifications share one order: a message sent before a
 * destruction is delivered before its NODE_DESTROY, one sent after arrives
 * after it (and a send to the destroyed node fails)
 */
static void test_order_message_then_destroy(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t a_to_b, c_to_b, a_to_c, b_to_c, id = ID_N1;
        PeerRecv r;

        a_to_b = test_transfer(b, ID_N1, a);
        c_to_b = test_transfer(b, ID_N1, c);
        a_to_c = test_transfer(c, ID_N2, a);
        b_to_c = test_transfer(c, ID_N2, b);
        assert_valid(bus);

        assert_int_equal(test_send1(a, a_to_b, "before"), 0);
        assert_valid(bus);
        assert_int_equal(test_send1(a, a_to_c, "a to c"), 0);
        assert_valid(bus);
        assert_int_equal(peer_nodes_destroy(b, 0, &id, 1), 0);
        assert_valid(bus);
        assert_int_equal(test_send1(a, a_to_b, "after"), -EHOSTUNREACH);
        assert_valid(bus);
        assert_int_equal(test_send1(b, b_to_c, "b to c"), 0);
        assert_valid(bus);

        /* the owner: the message ordered before the destruction is still delivered */
        test_expect_data(b, ID_N1, "before", 0, &r);
        assert_valid(bus);
        test_expect_notification(b, BUS1_MSG_NODE_DESTROY, ID_N1, 0);
        assert_valid(bus);
        test_expect_empty(b);

        test_expect_notification(a, BUS1_MSG_NODE_DESTROY, a_to_b, 0);
        assert_valid(bus);
        test_expect_empty(a);

        test_expect_data(c, ID_N2, "a to c", 0, &r);
        assert_valid(bus);
        test_expect_notification(c, BUS1_MSG_NODE_DESTROY, c_to_b, 0);
        assert_valid(bus);
        test_expect_data(c, ID_N2, "b to c", 0, &r);
        assert_valid(bus);
        test_expect_empty(c);
}

/* a message sent before a handle release is ahead of the NODE_RELEASE it causes */
static void test_order_message_then_release(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t b_to_n1, b_to_n2;
        PeerRecv r;

        b_to_n1 = test_transfer(a, ID_N1, b);
        b_to_n2 = test_transfer(a, ID_N2, b);
        assert_valid(bus);

        assert_int_equal(test_send1(b, b_to_n2, "x"), 0);
        assert_valid(bus);
        assert_int_equal(peer_handle_release(b, b_to_n1), 0);
        assert_valid(bus);
        assert_int_equal(test_send1(b, b_to_n2, "y"), 0);
        assert_valid(bus);
        assert_int_equal(peer_handle_release(b, b_to_n2), 0);
        assert_valid(bus);

        test_expect_data(a, ID_N2, "x", 0, &r);
        assert_valid(bus);
        assert_int_equal(r.flags, 0);
        test_expect_notification(a, BUS1_MSG_NODE_RELEASE, ID_N1, 0);
        assert_valid(bus);
        test_expect_data(a, ID_N2, "y", 0, &r);
        assert_valid(bus);
        test_expect_notification(a, BUS1_MSG_NODE_RELEASE, ID_N2, 0);
        assert_valid(bus);
        test_expect_empty(a);
}

/* --- CONTINUE ---------------------------------------------------------------- */

/* A owns N1..N3, B holds a handle to each; returns B's IDs in @to */
static void three_nodes_setup(Bus *bus, Peer **peers, uint64_t *to) {
        static const uint64_t ids[3] = { ID_N1, ID_N2, ID_N3 };

        bus_init(bus);
        peers[0] = test_peer_new(bus, 1);
        peers[1] = test_peer_new(bus, 2);
        for (size_t i = 0; i < 3; ++i)
                to[i] = test_transfer(peers[0], ids[i], peers[1]);
        assert_valid(bus);
}

/* which of @ids (n of them) is @id; fails if none */
static size_t index_of(const uint64_t *ids, size_t n, uint64_t id) {
        for (size_t i = 0; i < n; ++i)
                if (ids[i] == id)
                        return i;
        fail_msg("unexpected destination %llx", (unsigned long long)id);
        return n;
}

/*
 * one NODES_DESTROY of three nodes: every holder gets three NODE_DESTROY
 * entries, each but the last with CONTINUE
 */
static void test_continue_notifications(void **state) {
        static const uint64_t owned[3] = { ID_N1, ID_N2, ID_N3 };
        Peer *peers[2] = {};
        uint64_t to[3], flags;
        unsigned int seen;
        Bus bus;

        three_nodes_setup(&bus, peers, to);
        assert_int_equal(peer_nodes_destroy(peers[0], 0, owned, 3), 0);
        assert_valid(&bus);
        /* another transaction right behind: its entry does not count */
        assert_int_equal(test_send1(peers[0], ID_N1 + 0x1000, "later"), 0);
        assert_valid(&bus);

        seen = 0;
        for (size_t i = 0; i < 3; ++i) {
                size_t k = index_of(to, 3, recv_notification(peers[1], BUS1_MSG_NODE_DESTROY,
                                                             &flags));

                assert_valid(&bus);
                assert_int_equal(flags, i < 2 ? BUS1_MSG_FLAG_CONTINUE : 0);
                assert_false(seen & (1U << k));
                seen |= 1U << k;
        }
        test_expect_empty(peers[1]);

        /* the owner holds handles too */
        seen = 0;
        for (size_t i = 0; i < 3; ++i) {
                size_t k = index_of(owned, 3, recv_notification(peers[0],
                                                                BUS1_MSG_NODE_DESTROY, &flags));

                assert_valid(&bus);
                assert_int_equal(flags, i < 2 ? BUS1_MSG_FLAG_CONTINUE : 0);
                assert_false(seen & (1U << k));
                seen |= 1U << k;
        }
        assert_int_equal(recv_number(peers[0], &flags), 0);
        assert_int_equal(flags, 0);
        assert_valid(&bus);

        free_peers(&bus, peers, 2);
}

/* separate transactions never carry CONTINUE, to one node or several */
static void test_continue_not_across_transactions(void **state) {
        static const uint64_t owned[3] = { ID_N1, ID_N2, ID_N3 };
        Peer *peers[2] = {};
        uint64_t to[3], flags;
        Bus bus;

        three_nodes_setup(&bus, peers, to);
        for (size_t i = 0; i < 3; ++i) {
                assert_int_equal(test_send1(peers[1], to[i], "1"), 0);
                assert_valid(&bus);
                assert_int_equal(test_send1(peers[1], to[i], "2"), 0);
                assert_valid(&bus);
        }
        for (size_t i = 0; i < 3; ++i) {
                assert_int_equal(peer_nodes_destroy(peers[0], 0, &owned[i], 1), 0);
                assert_valid(&bus);
        }
        for (size_t i = 0; i < 6; ++i) {
                (void)recv_number(peers[0], &flags);
                assert_valid(&bus);
                assert_int_equal(flags, 0);
        }
        while (peers[0]->queue.n_entries) {
                (void)recv_notification(peers[0], BUS1_MSG_NODE_DESTROY, &flags);
                assert_valid(&bus);
                assert_int_equal(flags, 0);
        }

        free_peers(&bus, peers, 2);
}

/*
 * CONTINUE is recomputed when an entry is withdrawn: NODE_DESTROY entries
 * vanish when their holder releases the handle, and the entry in front of
 * the last one left loses its CONTINUE
 */
static void test_continue_withdrawn_destroy(void **state) {
        static const uint64_t owned[3] = { ID_N1, ID_N2, ID_N3 };
        Peer *peers[2] = {}, *b;
        uint64_t to[3], other;
        PeerRecv r, r2;
        Bus bus;

        three_nodes_setup(&bus, peers, to);
        b = peers[1];
        assert_int_equal(peer_nodes_destroy(peers[0], 0, owned, 3), 0);
        assert_valid(&bus);
        assert_int_equal(b->queue.n_entries, 3);

        /* drop one that is not the front: two left, the front still continues */
        peek(b, &r);
        other = to[(index_of(to, 3, r.destination) + 1) % 3];
        assert_int_equal(peer_handle_release(b, other), 0);
        assert_valid(&bus);
        assert_int_equal(b->queue.n_entries, 2);
        peek(b, &r2);
        assert_int_equal(r2.entry_id, r.entry_id);
        assert_int_equal(r2.flags, BUS1_MSG_FLAG_CONTINUE);

        /* drop the one behind the front: the front is alone */
        for (size_t i = 0; i < 3; ++i)
                if (to[i] != other && to[i] != r.destination)
                        other = to[i];
        assert_int_equal(peer_handle_release(b, other), 0);
        assert_valid(&bus);
        assert_int_equal(b->queue.n_entries, 1);
        peek(b, &r2);
        assert_int_equal(r2.entry_id, r.entry_id);
        assert_int_equal(r2.flags, 0);

        test_expect_notification(b, BUS1_MSG_NODE_DESTROY, r.destination, 0);
        assert_valid(&bus);
        test_expect_empty(b);

        free_peers(&bus, peers, 2);
}

/*
 * the same for NODE_RELEASE: B's disconnect releases two handles in one
 * transaction; when one NODE_RELEASE is withdrawn (the count rises again),
 * the other loses CONTINUE
 */
static void test_continue_withdrawn_release(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t owned[2] = { ID_N1, ID_N2 }, again;
        PeerRecv r, r2;

        (void)test_transfer(a, ID_N1, b);
        (void)test_transfer(a, ID_N2, b);
        assert_valid(bus);

        assert_int_equal(peer_disconnect(b), 0);
        assert_valid(bus);
        assert_int_equal(a->queue.n_entries, 2);
        peek(a, &r);
        assert_int_equal(r.type, BUS1_MSG_NODE_RELEASE);
        assert_int_equal(r.flags, BUS1_MSG_FLAG_CONTINUE);

        /* the node behind the front gets a holder again */
        again = owned[!index_of(owned, 2, r.destination)];
        (void)test_transfer(a, again, c);
        assert_valid(bus);
        assert_int_equal(a->queue.n_entries, 1);
        peek(a, &r2);
        assert_int_equal(r2.entry_id, r.entry_id);
        assert_int_equal(r2.flags, 0);

        test_expect_notification(a, BUS1_MSG_NODE_RELEASE, r.destination, 0);
        assert_valid(bus);
        test_expect_empty(a);
}

/* CONTINUE links entries of one transaction whatever their kind */
static void test_continue_mixed_kinds(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t a_to_b, flags[2], dst[2], type[2];
        PeerRecv r;

        a_to_b = test_transfer(b, ID_N1, a);
        (void)test_transfer(a, ID_N1, b);
        assert_valid(bus);

        /* one transaction: B's node is destroyed, B's handle to A's node released */
        assert_int_equal(peer_disconnect(b), 0);
        assert_valid(bus);
        assert_int_equal(a->queue.n_entries, 2);
        for (size_t i = 0; i < 2; ++i) {
                assert_int_equal(test_recv(a, 0, &r), 0);
                assert_valid(bus);
                flags[i] = r.flags;
                dst[i] = r.destination;
                type[i] = r.type;
        }
        assert_int_equal(flags[0], BUS1_MSG_FLAG_CONTINUE);
        assert_int_equal(flags[1], 0);
        assert_int_not_equal(type[0], type[1]);
        for (size_t i = 0; i < 2; ++i)
                assert_int_equal(dst[i], type[i] == BUS1_MSG_NODE_DESTROY ? a_to_b : ID_N1);
}

/* --- RECV: PEEK, EAGAIN, ERANGE ------------------------------------------------- */

/* PEEK returns the front without dequeuing it, as often as asked */
static void test_peek_returns_front(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t to_b;
        PeerRecv r1, r2, r3;

        to_b = test_transfer(b, ID_N1, a);
        assert_int_equal(test_send1(a, to_b, "one"), 0);
        assert_int_equal(test_send1(a, to_b, "two"), 0);
        assert_valid(bus);

        peek(b, &r1);
        assert_valid(bus);
        peek(b, &r2);
        assert_valid(bus);
        assert_int_equal(b->queue.n_entries, 2);
        assert_int_equal(r1.entry_id, r2.entry_id);
        assert_int_equal(r1.type, BUS1_MSG_DATA);
        assert_int_equal(r1.offset, r2.offset);
        assert_int_equal(r1.n_bytes, 3);
        assert_memory_equal(test_slice(b, r1.offset), "one", 3);
        assert_int_equal(r1.destination, ID_N1);
        assert_int_equal(r1.creds.uid, 1);

        test_expect_data(b, ID_N1, "one", 0, &r3);
        assert_valid(bus);
        assert_int_equal(r3.entry_id, r1.entry_id);
        assert_int_equal(r3.offset, r1.offset);

        peek(b, &r2);
        assert_int_not_equal(r2.entry_id, r1.entry_id);
        assert_true(r2.entry_id > r1.entry_id);
        assert_memory_equal(test_slice(b, r2.offset), "two", 3);
        test_expect_data(b, ID_N1, "two", 0, &r3);
        assert_valid(bus);
        test_expect_empty(b);
}

/*
 * PEEK adds no handle references and publishes nothing: the handle the
 * message carries cannot be used or released, and its slice cannot be
 * released, until a RECV dequeues it
 */
static void test_peek_takes_no_references(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t to_b, to_c, id, refs;
        Handle *h;
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        to_c = test_transfer(c, ID_N1, a);
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, "h", 1, &to_c, 1, NULL), 0);
        assert_valid(bus);
        refs = b->n_handle_refs;

        for (size_t i = 0; i < 2; ++i) {
                peek(b, &r);
                assert_valid(bus);
                assert_int_equal(r.n_handles, 1);
                id = test_slice_handle(b, &r, 0);
                h = handle_find(b, id);
                assert_non_null(h);
                assert_int_equal(h->n_user, 0);
                assert_int_equal(b->n_handle_refs, refs);
                assert_int_equal(peer_handle_release(b, id), -ENXIO);
                assert_int_equal(test_send1(b, id, "no"), -ENXIO);
                assert_int_equal(peer_slice_release(b, r.offset), -ENXIO);
                assert_valid(bus);
        }
        test_expect_empty(c);

        test_expect_data(b, ID_N1, "h", 1, &r);
        assert_valid(bus);
        assert_int_equal(test_slice_handle(b, &r, 0), id);
        assert_int_equal(handle_find(b, id)->n_user, 1);
        assert_int_equal(b->n_handle_refs, refs);
        assert_int_equal(test_send1(b, id, "yes"), 0);
        assert_valid(bus);
        assert_int_equal(peer_slice_release(b, r.offset), 0);
        assert_valid(bus);
        test_expect_data(c, ID_N1, "yes", 0, &r);
        assert_valid(bus);
}

/* PEEK installs no fds, even with INSTALL_FDS; the dequeuing RECV does */
static void test_peek_installs_no_fds(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        FdList *list = NULL;
        uint64_t to_b;
        int fds[2];
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        for (size_t i = 0; i < 2; ++i) {
                fds[i] = eventfd(0, EFD_CLOEXEC);
                assert_true(fds[i] >= 0);
        }
        assert_int_equal(fdlist_new(&list, fds, 2), 0);
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, "fd", 2, NULL, 0, list), 0);
        list = fdlist_unref(list);
        assert_valid(bus);

        for (size_t i = 0; i < 2; ++i) {
                memset(&r, 0, sizeof(r));
                assert_int_equal(peer_recv(b, BUS1_RECV_FLAG_PEEK | BUS1_RECV_FLAG_INSTALL_FDS,
                                           UINT64_MAX, &r),
                                 0);
                assert_valid(bus);
                assert_int_equal(r.type, BUS1_MSG_DATA);
                assert_null(r.fds);
                assert_int_equal(b->n_inflight_fds, 2);
                assert_int_equal(b->queue.n_entries, 1);
                assert_true(fcntl(fds[0], F_GETFD) >= 0);
        }

        memset(&r, 0, sizeof(r));
        assert_int_equal(peer_recv(b, BUS1_RECV_FLAG_INSTALL_FDS, UINT64_MAX, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.n_fds, 2);
        assert_non_null(r.fds);
        assert_int_equal(r.fds->fds[1], fds[1]);
        peer_recv_deinit(&r);
        assert_true(fcntl(fds[0], F_GETFD) < 0);
        assert_valid(bus);
}

/* PEEK of a notification leaves it queued too */
static void test_peek_notification(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t to_b, id = ID_N1;
        PeerRecv r1, r2;

        to_b = test_transfer(b, ID_N1, a);
        assert_int_equal(peer_nodes_destroy(b, 0, &id, 1), 0);
        assert_valid(bus);

        peek(a, &r1);
        assert_valid(bus);
        peek(a, &r2);
        assert_valid(bus);
        assert_int_equal(r1.type, BUS1_MSG_NODE_DESTROY);
        assert_int_equal(r1.entry_id, r2.entry_id);
        assert_int_equal(r1.destination, to_b);
        assert_int_equal(a->queue.n_entries, 1);

        test_expect_notification(a, BUS1_MSG_NODE_DESTROY, to_b, 0);
        assert_valid(bus);
        test_expect_empty(a);
}

/* an empty queue is EAGAIN, for PEEK too, and again once drained or withdrawn */
static void test_recv_eagain(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t b_to_a;
        PeerRecv r;

        assert_int_equal(test_recv(a, 0, &r), -EAGAIN);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_PEEK, &r), -EAGAIN);
        assert_int_equal(peer_recv(a, 0, 0, &r), -EAGAIN);
        assert_valid(bus);

        b_to_a = test_transfer(a, ID_N1, b);
        assert_int_equal(test_send1(b, b_to_a, "x"), 0);
        assert_valid(bus);
        test_expect_data(a, ID_N1, "x", 0, &r);
        assert_valid(bus);
        assert_int_equal(test_recv(a, 0, &r), -EAGAIN);
        assert_valid(bus);

        /* a NODE_RELEASE that is withdrawn before it is read leaves nothing */
        assert_int_equal(peer_handle_release(b, b_to_a), 0);
        assert_valid(bus);
        assert_int_equal(a->queue.n_entries, 1);
        (void)test_transfer(a, ID_N1, c);
        assert_valid(bus);
        assert_int_equal(test_recv(a, 0, &r), -EAGAIN);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_PEEK, &r), -EAGAIN);
        assert_valid(bus);
}

/*
 * ERANGE when offset + slice size is beyond max_offset (the whole slice,
 * not only the payload); the entry stays queued, for PEEK as well, and a
 * RECV with enough max_offset gets it
 */
static void test_recv_erange_keeps_entry(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t to_b, handles[1] = { 0x800 }, id;
        PeerRecv r, r2;

        to_b = test_transfer(b, ID_N1, a);
        assert_valid(bus);

        /* an empty message still has an 8-byte slice: max_offset 0 is too small */
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, NULL, 0, NULL, 0, NULL), 0);
        assert_valid(bus);
        assert_int_equal(peer_recv(b, 0, 0, &r), -ERANGE);
        assert_valid(bus);
        assert_int_equal(peer_recv(b, 0, 7, &r), -ERANGE);
        assert_valid(bus);
        memset(&r, 0, sizeof(r));
        assert_int_equal(peer_recv(b, 0, 8, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.offset, 0);
        assert_int_equal(r.n_bytes, 0);

        /* 5 payload bytes and one handle: a 16-byte slice at offset 8 */
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, "abcde", 5, handles, 1, NULL), 0);
        assert_valid(bus);
        assert_int_equal(test_send1(a, to_b, "next"), 0);
        assert_valid(bus);
        peek(b, &r);
        assert_int_equal(r.offset, 8);
        id = r.entry_id;

        /* payload and handle area: covering only the payload is not enough */
        assert_int_equal(peer_recv(b, 0, 8 + 8, &r2), -ERANGE);
        assert_valid(bus);
        assert_int_equal(peer_recv(b, 0, 8 + 15, &r2), -ERANGE);
        assert_valid(bus);
        assert_int_equal(peer_recv(b, BUS1_RECV_FLAG_PEEK, 8 + 15, &r2), -ERANGE);
        assert_valid(bus);
        assert_int_equal(b->queue.n_entries, 2);
        /* nothing was handed over */
        assert_int_equal(handle_find(a, 0x800)->node->n_user_refs, 2);
        assert_int_equal(peer_slice_release(b, 8), -ENXIO);
        peek(b, &r2);
        assert_int_equal(r2.entry_id, id);

        memset(&r2, 0, sizeof(r2));
        assert_int_equal(peer_recv(b, 0, 8 + 16, &r2), 0);
        assert_valid(bus);
        assert_int_equal(r2.entry_id, id);
        assert_int_equal(r2.n_bytes, 5);
        assert_int_equal(r2.n_handles, 1);
        assert_memory_equal(test_slice(b, r2.offset), "abcde", 5);

        test_expect_data(b, ID_N1, "next", 0, &r2);
        assert_valid(bus);
}

/* ERANGE on the front entry is not skipped for a later one that would fit */
static void test_recv_erange_front_blocks(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        char big[64];
        uint64_t to_b;
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        memset(big, 'g', sizeof(big));
        assert_valid(bus);

        /* leave an 8-byte hole at 0 behind a 64-byte slice */
        assert_int_equal(test_send1(a, to_b, "hole"), 0);
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, big, 64, NULL, 0, NULL), 0);
        assert_valid(bus);
        test_expect_data(b, ID_N1, "hole", 0, &r);
        assert_int_equal(r.offset, 0);
        assert_int_equal(peer_slice_release(b, 0), 0);
        assert_valid(bus);
        assert_int_equal(test_recv(b, 0, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.offset, 8);

        /* a big one lands at 72, then a small one in the hole at 0 */
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, big, 64, NULL, 0, NULL), 0);
        assert_int_equal(test_send1(a, to_b, "small"), 0);
        assert_valid(bus);

        assert_int_equal(peer_recv(b, 0, 16, &r), -ERANGE);
        assert_valid(bus);
        assert_int_equal(b->queue.n_entries, 2);

        memset(&r, 0, sizeof(r));
        assert_int_equal(peer_recv(b, 0, 72 + 64, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.offset, 72);
        assert_int_equal(r.n_bytes, 64);
        memset(&r, 0, sizeof(r));
        assert_int_equal(peer_recv(b, 0, 16, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.offset, 0);
        assert_memory_equal(test_slice(b, 0), "small", 5);
}

/* notifications have no slice: never ERANGE, even with max_offset 0 */
static void test_recv_notifications_never_erange(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t a_to_b, b_to_a, id = ID_N1;
        PeerRecv r;

        a_to_b = test_transfer(b, ID_N1, a);
        b_to_a = test_transfer(a, ID_N2, b);
        assert_valid(bus);

        assert_int_equal(peer_nodes_destroy(b, 0, &id, 1), 0);
        assert_valid(bus);
        assert_int_equal(peer_handle_release(b, b_to_a), 0);
        assert_valid(bus);

        for (size_t i = 0; i < 2; ++i) {
                memset(&r, 0, sizeof(r));
                assert_int_equal(peer_recv(a, i ? 0 : BUS1_RECV_FLAG_PEEK, 0, &r), 0);
                assert_valid(bus);
                assert_int_equal(r.type, BUS1_MSG_NODE_DESTROY);
                assert_int_equal(r.destination, a_to_b);
                assert_int_equal(r.offset, BUS1_OFFSET_INVALID);
                assert_int_equal(r.creds.uid, UINT32_MAX);
                assert_int_equal(r.creds.gid, UINT32_MAX);
                assert_int_equal(r.creds.pid, 0);
                assert_int_equal(r.creds.tid, 0);
                assert_int_equal(r.n_bytes + r.n_handles + r.n_fds + r.n_secctx, 0);
        }
        memset(&r, 0, sizeof(r));
        assert_int_equal(peer_recv(a, 0, 0, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.type, BUS1_MSG_NODE_RELEASE);
        assert_int_equal(r.destination, ID_N2);
        assert_int_equal(r.offset, BUS1_OFFSET_INVALID);
        assert_int_equal(r.creds.uid, UINT32_MAX);
        assert_int_equal(r.n_bytes + r.n_handles + r.n_fds + r.n_secctx, 0);
        assert_int_equal(peer_recv(a, 0, 0, &r), -EAGAIN);
        assert_valid(bus);
        test_expect_empty(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_queue_empty),
                cmocka_unit_test(test_queue_push_order_and_ids),
                cmocka_unit_test(test_queue_remove),
                cmocka_unit_test(test_queue_continues),
                cmocka_unit_test(test_queue_hooks),
                test_bus_unit_test_checked(test_order_one_sender, 2),
                test_bus_unit_test_checked(test_order_multicast_then_forward, 3),
                test_bus_unit_test_checked(test_order_side_channel, 3),
                cmocka_unit_test(test_order_concurrent_multicasts),
                test_bus_unit_test_checked(test_order_message_then_destroy, 3),
                test_bus_unit_test_checked(test_order_message_then_release, 2),
                cmocka_unit_test(test_continue_notifications),
                cmocka_unit_test(test_continue_not_across_transactions),
                cmocka_unit_test(test_continue_withdrawn_destroy),
                test_bus_unit_test_checked(test_continue_withdrawn_release, 3),
                test_bus_unit_test_checked(test_continue_mixed_kinds, 2),
                test_bus_unit_test_checked(test_peek_returns_front, 2),
                test_bus_unit_test_checked(test_peek_takes_no_references, 3),
                test_bus_unit_test_checked(test_peek_installs_no_fds, 2),
                test_bus_unit_test_checked(test_peek_notification, 2),
                test_bus_unit_test_checked(test_recv_eagain, 3),
                test_bus_unit_test_checked(test_recv_erange_keeps_entry, 2),
                test_bus_unit_test_checked(test_recv_erange_front_blocks, 2),
                test_bus_unit_test_checked(test_recv_notifications_never_erange, 3),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
