/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UAPI pushing early: the docs/model.md §10 rules that depend on when an entry
 * is dequeued, with the broker pushing entries ahead of RECV
 *
 * The broker writes every entry into the receiver's socket as it is queued,
 * and the library answers RECV from there. Whatever was pushed, the caller
 * must see exactly what the kernel would have shown: a NODE_RELEASE withdrawn
 * when the count rises again, a NODE_DESTROY never seen by a holder that
 * released first, nothing old after a FLUSH, PEEK returning the front
 * without dequeuing, CONTINUE right when a neighbour is withdrawn, a
 * descriptor that polls readable whenever an entry is ready, and a peer that
 * stopped reading loses and repeats nothing.
 *
 * Most cases run in three modes, which leave the pushed entries in different
 * places of the library: still in the socket (QUIET), read into the
 * library's buffer by an unrelated call that waited for its reply (BUFFERED),
 * or looked at with PEEK (PEEKED).
 */

#include <fcntl.h>
#include <stdio.h>
#include "util-uapi.h"

#define NODE 0x100ULL

enum {
        MODE_QUIET,
        MODE_BUFFERED,
        MODE_PEEKED,
        _MODE_N,
};

/* leave the entries the broker pushed to @peer where @mode says */
static void apply_mode(int peer, int mode) {
        struct bus1_cmd_peer_reset q;
        struct bus1_cmd_recv r;

        switch (mode) {
        case MODE_BUFFERED:
                /* a request: the library reads every push ahead of its reply */
                assert_int_equal(uapi_query(peer, &q), 0);
                break;
        case MODE_PEEKED:
                assert_int_equal(uapi_recv(peer, BUS1_RECV_FLAG_PEEK, &r), 0);
                break;
        default:
                break;
        }
}

static bool readable(int peer) {
        return uapi_poll(peer, POLLIN, 0) & POLLIN;
}

/* receive a DATA entry for @destination carrying @str; release its slice */
static void expect_data(UapiFixture *f, int peer, uint64_t destination, const char *str,
                        uint64_t flags) {
        struct bus1_cmd_recv r;

        assert_int_equal(uapi_recv(peer, 0, &r), 0);
        uapi_assert_data(&r, destination, strlen(str));
        assert_int_equal(r.msg.flags, flags);
        assert_memory_equal(uapi_pool(f, peer) + r.msg.offset, str, strlen(str));
        assert_int_equal(uapi_slice_release(peer, r.msg.offset), 0);
}

/*
 * NODE_RELEASE withdrawn by the owner's own SEND carrying the node: the
 * entry was already pushed, and RECV must not return it. Then (a fresh round
 * each time) the same with HANDLE_TRANSFER, and finally a release that
 * stands is received.
 */
static void test_push_release_withdrawn(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        uint64_t h, hb, node = NODE;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        hb = uapi_give(b, 0x200, a);    /* a can send to b */

        for (int round = 0; round < 2 * _MODE_N; ++round) {
                int mode = round % _MODE_N;
                bool by_send = round < _MODE_N;

                /* b lets go: a NODE_RELEASE is queued and pushed to a */
                assert_int_equal(uapi_release(b, h), 0);
                assert_true(uapi_poll(a, POLLIN, 2000) & POLLIN);
                apply_mode(a, mode);

                /* a raises the count again before dequeuing it */
                if (by_send) {
                        assert_int_equal(uapi_send(a, &hb, 1, 0, NULL, "take", 4, &node, 1), 0);
                        uapi_expect_empty(a);
                        assert_int_equal(uapi_recv(b, 0, &r), 0);
                        uapi_assert_data(&r, 0x200, 4);
                        assert_int_equal(r.msg.n_handles, 1);
                        h = uapi_slice_handle(uapi_pool(f, b), &r, 0);
                        assert_int_equal(uapi_slice_release(b, r.msg.offset), 0);
                } else {
                        h = uapi_give(a, NODE, b);
                        uapi_expect_empty(a);
                }
                assert_int_equal(h & 7, UAPI_REMOTE_BITS);
                uapi_expect_empty(a);
        }

        /* this time a receives it */
        assert_int_equal(uapi_release(b, h), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, NODE);
        uapi_expect_empty(a);
        uapi_expect_empty(b);
        uapi_finish(f);
}

/*
 * A NODE_RELEASE the owner dequeued locally is not withdrawn afterwards: the
 * owner's next request must not take back what RECV already returned, and a
 * later release is reported again.
 */
static void test_push_release_after_local_dequeue(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        uint64_t h, hb, node = NODE;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        hb = uapi_give(b, 0x200, a);

        for (int i = 0; i < 3; ++i) {
                assert_int_equal(uapi_release(b, h), 0);
                uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, NODE);
                assert_int_equal(uapi_send(a, &hb, 1, 0, NULL, "again", 5, &node, 1), 0);
                assert_int_equal(uapi_recv(b, 0, &r), 0);
                assert_int_equal(r.msg.n_handles, 1);
                h = uapi_slice_handle(uapi_pool(f, b), &r, 0);
                assert_int_equal(uapi_slice_release(b, r.msg.offset), 0);
                uapi_expect_empty(a);
        }
        assert_int_equal(uapi_release(b, h), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, NODE);
        uapi_expect_empty(a);
        uapi_finish(f);
}

/* a holder that releases its handle before dequeuing NODE_DESTROY never sees it */
static void test_push_destroy_released_first(void **state) {
        UapiFixture *f = *state;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);

        for (int mode = 0; mode < _MODE_N; ++mode) {
                uint64_t node = NODE + 8 * (uint64_t)mode, h;

                h = uapi_give(a, node, b);
                assert_int_equal(uapi_destroy(a, 0, &node, 1), 0);
                assert_true(uapi_poll(b, POLLIN, 2000) & POLLIN);
                apply_mode(b, mode);
                assert_int_equal(uapi_release(b, h), 0);
                uapi_expect_empty(b);

                /* the owner still gets its own */
                uapi_expect_notification(a, BUS1_MSG_NODE_DESTROY, node);
                assert_int_equal(uapi_release(a, node), 0);
                uapi_expect_empty(a);
        }
        uapi_finish(f);
}

/*
 * Once the owner released every handle to a destroyed node, nothing more is
 * delivered for it: messages already pushed to it are withdrawn.
 */
static void test_push_owner_release_drops(void **state) {
        UapiFixture *f = *state;
        uint64_t node = NODE, h;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);

        for (int mode = 0; mode < _MODE_N; ++mode) {
                h = uapi_give(a, node, b);
                assert_int_equal(uapi_send_str(b, h, "one"), 0);
                assert_int_equal(uapi_send_str(b, h, "two"), 0);
                assert_int_equal(uapi_send_str(b, h, "three"), 0);
                assert_int_equal(uapi_destroy(a, 0, &node, 1), 0);
                apply_mode(a, mode);

                /* ordered before the destruction: delivered */
                expect_data(f, a, node, "one", 0);
                /* the owner lets go: "two", "three" and its NODE_DESTROY are gone */
                assert_int_equal(uapi_release(a, node), 0);
                uapi_expect_empty(a);

                uapi_expect_notification(b, BUS1_MSG_NODE_DESTROY, h);
                assert_int_equal(uapi_release(b, h), 0);
                uapi_expect_empty(b);
        }
        uapi_finish(f);
}

/*
 * FLUSH drops every queued entry, also those already pushed, and every
 * slice; nothing old is returned after it. A few entries are withdrawn one
 * by one, many at once (the broker may resynchronise the client).
 */
static void test_push_flush(void **state) {
        static const unsigned int counts[] = { 5, 200 };
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        uint64_t h, kept;
        char msg[32];
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);

        for (size_t c = 0; c < 2; ++c) {
                for (int mode = 0; mode < _MODE_N; ++mode) {
                        h = uapi_give(a, NODE, b);
                        for (unsigned int i = 0; i < counts[c]; ++i) {
                                snprintf(msg, sizeof(msg), "old %u", i);
                                assert_int_equal(uapi_send_str(b, h, msg), 0);
                        }
                        apply_mode(a, mode);
                        /* one received and kept: its slice goes with the flush */
                        assert_int_equal(uapi_recv(a, 0, &r), 0);
                        assert_memory_equal(uapi_pool(f, a) + r.msg.offset, "old 0", 5);
                        kept = r.msg.offset;

                        assert_int_equal(uapi_reset(a, BUS1_PEER_RESET_FLAG_FLUSH, UAPI_KEEP64,
                                                    UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32,
                                                    UAPI_KEEP32), 0);
                        uapi_expect_empty(a);
                        assert_int_equal(uapi_slice_release(a, kept), -ENXIO);

                        /* the flush destroyed the node: b learns it */
                        uapi_expect_notification(b, BUS1_MSG_NODE_DESTROY, h);
                        assert_int_equal(uapi_send_str(b, h, "late"), -EHOSTUNREACH);
                        assert_int_equal(uapi_release(b, h), 0);
                        uapi_expect_empty(b);

                        /* new traffic flows, and only that */
                        h = uapi_give(a, NODE, b);
                        assert_int_equal(uapi_send_str(b, h, "new"), 0);
                        expect_data(f, a, NODE, "new", 0);
                        uapi_expect_empty(a);
                        assert_int_equal(uapi_release(b, h), 0);
                        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, NODE);
                        assert_int_equal(uapi_destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES,
                                                      &(uint64_t){ NODE }, 1), 0);
                        uapi_expect_empty(a);
                }
        }
        uapi_finish(f);
}

/* PEEK returns the front without dequeuing it, twice; RECV then returns it */
static void test_push_peek(void **state) {
        static const char *const msgs[] = { "m0", "m1", "m2" };
        UapiFixture *f = *state;
        struct bus1_cmd_recv r, p1, p2;
        int a, b;
        uint64_t h;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);

        for (int mode = 0; mode < _MODE_N; ++mode) {
                for (size_t i = 0; i < 3; ++i)
                        assert_int_equal(uapi_send_str(b, h, msgs[i]), 0);
                apply_mode(a, mode);

                for (size_t i = 0; i < 3; ++i) {
                        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &p1), 0);
                        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &p2), 0);
                        assert_memory_equal(&p1.msg, &p2.msg, sizeof(p1.msg));
                        assert_int_equal(uapi_recv(a, 0, &r), 0);
                        assert_memory_equal(&p1.msg, &r.msg, sizeof(r.msg));
                        uapi_assert_data(&r, NODE, 2);
                        assert_memory_equal(uapi_pool(f, a) + r.msg.offset, msgs[i], 2);
                        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
                }
                assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), -EAGAIN);
                uapi_expect_empty(a);
        }
        uapi_finish(f);
}

/*
 * PEEK adds no handle reference: the handle a message carries is only the
 * receiver's after the RECV that dequeues it.
 */
static void test_push_peek_handles(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        uint64_t h, hc, node = 0x300, id;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        hc = uapi_give(b, node, b);     /* b's own node, b holds it twice */
        assert_int_equal(hc, node);

        assert_int_equal(uapi_send(b, &h, 1, 0, NULL, "hnd", 3, &node, 1), 0);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_int_equal(r.msg.n_handles, 1);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), 0);

        /* b drops its extra reference: the queued message still counts */
        assert_int_equal(uapi_release(b, node), 0);
        uapi_expect_empty(b);

        assert_int_equal(uapi_recv(a, 0, &r), 0);
        assert_int_equal(r.msg.n_handles, 1);
        id = uapi_slice_handle(uapi_pool(f, a), &r, 0);
        assert_int_equal(id & 7, UAPI_REMOTE_BITS);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        /* exactly one reference */
        assert_int_equal(uapi_release(a, id), 0);
        assert_int_equal(uapi_release(a, id), -ENXIO);
        uapi_expect_notification(b, BUS1_MSG_NODE_RELEASE, node);
        uapi_expect_empty(b);
        uapi_finish(f);
}

/*
 * The accepted difference of docs/model.md §10: a peer releases a handle to
 * zero while an entry carrying it was already pushed. The entry may revive
 * the same ID instead of a fresh one, but whichever ID the received slice
 * names must be the peer's handle, hold exactly the reference the message
 * brought, and stay what the slice says after the RECV returned.
 */
static void test_push_handle_released_while_pushed(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q;
        struct bus1_cmd_recv r;
        uint64_t h, hb, id, again, node = NODE;
        int a, b, res, not_ready = -1;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        hb = uapi_give(b, 0x200, a);

        for (int mode = 0; mode < _MODE_N; ++mode) {
                /* a hands b its node again; the entry is pushed to b at once */
                assert_int_equal(uapi_send(a, &hb, 1, 0, NULL, "yours", 5, &node, 1), 0);
                assert_true(uapi_poll(b, POLLIN, 2000) & POLLIN);
                apply_mode(b, mode);
                /* b lets go of its handle before receiving the entry */
                assert_int_equal(uapi_release(b, h), 0);
                /* the entry is still ready (checked at the end) */
                if (!readable(b) && not_ready < 0)
                        not_ready = mode;
                uapi_expect_empty(a);

                assert_int_equal(uapi_recv(b, 0, &r), 0);
                uapi_assert_data(&r, 0x200, 5);
                assert_int_equal(r.msg.n_handles, 1);
                id = uapi_slice_handle(uapi_pool(f, b), &r, 0);
                assert_int_equal(id & 7, UAPI_REMOTE_BITS);

                /* another request: the slice the caller owns does not change */
                assert_int_equal(uapi_query(b, &q), 0);
                again = uapi_slice_handle(uapi_pool(f, b), &r, 0);
                if (again != id)
                        fail_msg("mode %d: the slice said handle 0x%llx, then 0x%llx", mode,
                                 (unsigned long long)id, (unsigned long long)again);

                /* the ID works: b can send to it */
                res = uapi_send_str(b, id, "back");
                if (res != 0)
                        fail_msg("mode %d: sending to the received handle 0x%llx: %s", mode,
                                 (unsigned long long)id, strerror(-res));
                expect_data(f, a, NODE, "back", 0);
                assert_int_equal(uapi_slice_release(b, r.msg.offset), 0);
                h = id;
        }

        /* exactly one reference: releasing it reaches the owner */
        assert_int_equal(uapi_release(b, h), 0);
        assert_int_equal(uapi_release(b, h), -ENXIO);
        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, NODE);
        uapi_expect_empty(a);
        uapi_expect_empty(b);
        if (not_ready >= 0)
                fail_msg("mode %d: an entry was ready but b did not poll readable", not_ready);
        uapi_finish(f);
}

/* PEEK installs no fd, even with INSTALL_FDS; the dequeuing RECV does */
static void test_push_peek_fds(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        struct iovec vec = { .iov_base = "fds", .iov_len = 3 };
        struct bus1_cmd_send s;
        int a, b, p[2], got;
        uint64_t h;
        unsigned int n;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        s = (struct bus1_cmd_send){
                .ptr_destinations = (uintptr_t)&h,
                .n_destinations = 1,
                .ptr_vecs = (uintptr_t)&vec,
                .n_vecs = 1,
                .ptr_fds = (uintptr_t)&p[1],
                .n_fds = 1,
        };
        assert_int_equal(bus1_uapi_ioctl(b, BUS1_CMD_SEND, &s), 0);
        close(p[1]);

        n = test_count_fds(0);
        for (int i = 0; i < 2; ++i) {
                assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK | BUS1_RECV_FLAG_INSTALL_FDS,
                                           &r), 0);
                uapi_assert_data(&r, NODE, 3);
                assert_int_equal(test_count_fds(0), n);
                assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), 0);
                assert_int_equal(r.msg.n_fds, 0);
                assert_int_equal(test_count_fds(0), n);
        }
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        uapi_assert_data(&r, NODE, 3);
        assert_int_equal(r.msg.n_fds, 1);
        assert_int_equal(test_count_fds(0), n + 1);
        memcpy(&got, uapi_pool(f, a) + r.msg.offset + 8, sizeof(got));
        assert_int_equal(write(got, "w", 1), 1);
        close(got);
        close(p[0]);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        uapi_expect_empty(a);
        uapi_finish(f);
}

/*
 * Entries that arrived while a waited for the reply of its own SEND sit in
 * the library, not in the socket: the descriptor must still poll readable
 * while RECV has entries, and RECV until EAGAIN drains them all.
 */
static void test_push_poll_buffered(void **state) {
        UapiFixture *f = *state;
        uint64_t h, hb;
        char msg[16];
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        hb = uapi_give(b, 0x200, a);

        for (int round = 0; round < 3; ++round) {
                for (int i = 0; i < 4; ++i) {
                        snprintf(msg, sizeof(msg), "msg %d", i);
                        assert_int_equal(uapi_send_str(b, h, msg), 0);
                }
                /* a's own SEND reads those four ahead of its reply */
                assert_int_equal(uapi_send_str(a, hb, "mine"), 0);
                expect_data(f, b, 0x200, "mine", 0);

                for (int i = 0; i < 4; ++i) {
                        if (!readable(a))
                                fail_msg("round %d: not readable with %d entries left",
                                         round, 4 - i);
                        assert_true(uapi_poll(a, POLLOUT, 0) & POLLOUT);
                        snprintf(msg, sizeof(msg), "msg %d", i);
                        if (round == 2 && i == 2) {
                                /* another request in between changes nothing */
                                assert_int_equal(uapi_send_str(a, hb, "mid"), 0);
                                expect_data(f, b, 0x200, "mid", 0);
                                assert_true(readable(a));
                        }
                        expect_data(f, a, NODE, msg, 0);
                }
                uapi_expect_empty(a);
        }
        uapi_finish(f);
}

/*
 * Entries a peer's own request queues on itself are ready when the request
 * returns: its descriptor polls readable at once (a message to its own node,
 * its own NODE_DESTROY, its own NODE_RELEASE).
 */
static void test_push_poll_own_entries(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        uint64_t node = NODE;
        int a;

        a = uapi_peer(f);
        assert_false(readable(a));

        /* a message to itself */
        assert_int_equal(uapi_give(a, node, -1), node);
        assert_int_equal(uapi_send_str(a, node, "self"), 0);
        assert_true(readable(a));
        expect_data(f, a, node, "self", 0);

        /* its own NODE_RELEASE: the second reference goes */
        assert_int_equal(uapi_release(a, node), 0);
        assert_true(readable(a));
        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, node);

        /* its own NODE_DESTROY */
        assert_int_equal(uapi_destroy(a, 0, &node, 1), 0);
        assert_true(readable(a));
        assert_int_equal(uapi_recv(a, 0, &r), 0);
        uapi_assert_notification(&r, BUS1_MSG_NODE_DESTROY, node);
        assert_int_equal(uapi_release(a, node), 0);
        uapi_expect_empty(a);
        uapi_finish(f);
}

/*
 * Many pushed entries withdrawn at once (the broker may resynchronise the
 * client): the entries that stay queued are still ready, poll says so, and
 * RECV returns them in order.
 */
static void test_push_poll_after_mass_withdrawal(void **state) {
        UapiFixture *f = *state;
        uint64_t n1 = NODE, n2 = 0x108, h1, h2;
        char msg[16];
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h1 = uapi_give(a, n1, b);
        h2 = uapi_give(a, n2, b);

        for (int i = 0; i < 100; ++i)
                assert_int_equal(uapi_send_str(b, h1, "doomed"), 0);
        for (int i = 0; i < 3; ++i) {
                snprintf(msg, sizeof(msg), "kept %d", i);
                assert_int_equal(uapi_send_str(b, h2, msg), 0);
        }
        apply_mode(a, MODE_BUFFERED);

        /* destroying n1 and dropping its owner handle drops its 100 messages */
        assert_int_equal(uapi_destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, &n1, 1), 0);
        assert_true(readable(a));
        for (int i = 0; i < 3; ++i) {
                snprintf(msg, sizeof(msg), "kept %d", i);
                expect_data(f, a, n2, msg, 0);
        }
        uapi_expect_empty(a);

        uapi_expect_notification(b, BUS1_MSG_NODE_DESTROY, h1);
        assert_int_equal(uapi_release(b, h1), 0);
        assert_int_equal(uapi_release(b, h2), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, n2);
        uapi_expect_empty(a);
        uapi_expect_empty(b);
        uapi_finish(f);
}

/*
 * CONTINUE stays right when a pushed neighbour is withdrawn: one
 * NODES_DESTROY of several nodes b holds queues one NODE_DESTROY each on b,
 * every one but the last with CONTINUE (their order is unspecified, so PEEK
 * tells which one is in front). b releasing a handle withdraws its entry.
 */
static void test_push_continue_withdrawn(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        uint64_t nodes[3], held[3];
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);

        /*
         * case 0: two nodes, b releases the one behind the front;
         * case 1: two nodes, b releases the front one;
         * case 2: two nodes, b releases the second it got without looking;
         * case 3: three nodes, b releases one behind the front.
         */
        for (int c = 0; c < 4; ++c) {
                size_t n = c == 3 ? 3 : 2, front = 0, gone, left;

                for (int mode = 0; mode < 2; ++mode) {
                        for (size_t i = 0; i < n; ++i) {
                                nodes[i] = NODE + 8 * i;
                                held[i] = uapi_give(a, nodes[i], b);
                        }
                        assert_int_equal(uapi_destroy(a, 0, nodes, n), 0);
                        if (mode)
                                apply_mode(b, MODE_BUFFERED);

                        if (c != 2) {
                                assert_int_equal(uapi_recv(b, BUS1_RECV_FLAG_PEEK, &r), 0);
                                assert_int_equal(r.msg.type, BUS1_MSG_NODE_DESTROY);
                                assert_int_equal(r.msg.flags, BUS1_MSG_FLAG_CONTINUE);
                                for (front = 0; front < n && held[front] != r.msg.destination;
                                     ++front)
                                        ;
                                assert_true(front < n);
                        }
                        gone = c == 1 ? front : c == 2 ? 1 : (front + 1) % n;
                        assert_int_equal(uapi_release(b, held[gone]), 0);

                        if (c == 3) {
                                /* the front still has a successor of its transaction */
                                assert_int_equal(uapi_recv(b, 0, &r), 0);
                                uapi_assert_notification(&r, BUS1_MSG_NODE_DESTROY,
                                                         held[front]);
                                assert_int_equal(r.msg.flags, BUS1_MSG_FLAG_CONTINUE);
                                left = 3 - front - gone;
                        } else {
                                left = 1 - gone;
                        }
                        /* the last one left ends the transaction */
                        uapi_expect_notification(b, BUS1_MSG_NODE_DESTROY, held[left]);
                        uapi_expect_empty(b);
                        for (size_t i = 0; i < n; ++i)
                                if (i != gone)
                                        assert_int_equal(uapi_release(b, held[i]), 0);

                        /* the owner's own entries: CONTINUE on all but the last */
                        for (size_t i = 0; i < n; ++i) {
                                assert_int_equal(uapi_recv(a, 0, &r), 0);
                                assert_int_equal(r.msg.type, BUS1_MSG_NODE_DESTROY);
                                assert_int_equal(r.msg.flags,
                                                 i + 1 < n ? BUS1_MSG_FLAG_CONTINUE : 0);
                        }
                        for (size_t i = 0; i < n; ++i)
                                assert_int_equal(uapi_release(a, nodes[i]), 0);
                        uapi_expect_empty(a);
                }
        }
        uapi_finish(f);
}

/*
 * CONTINUE on DATA and NODE_RELEASE entries: a message to two nodes of one
 * peer is two entries of one transaction, and so are the NODE_RELEASEs of a
 * peer that disconnects holding handles to two nodes. Withdrawing one of
 * them (dropping the messages of a destroyed node; raising the count again)
 * leaves the other one without CONTINUE.
 */
static void test_push_continue_data_release(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        uint64_t nodes[2] = { NODE, 0x108 }, held[2], hc;
        int a, b, c;

        a = uapi_peer(f);
        c = uapi_peer(f);
        hc = uapi_give(c, 0x200, a);

        for (int mode = 0; mode < _MODE_N; ++mode) {
                b = uapi_peer(f);
                for (size_t i = 0; i < 2; ++i)
                        held[i] = uapi_give(a, nodes[i], b);

                /* one message to both of a's nodes */
                assert_int_equal(uapi_send(b, held, 2, 0, NULL, "both", 4, NULL, 0), 0);
                apply_mode(a, mode);
                /* a destroys the second node and lets go of it: its entry goes */
                assert_int_equal(uapi_destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES,
                                              &nodes[1], 1), 0);
                expect_data(f, a, nodes[0], "both", 0);
                uapi_expect_empty(a);
                uapi_expect_notification(b, BUS1_MSG_NODE_DESTROY, held[1]);

                /* b goes away holding handles to both nodes (nodes[1] anew) */
                held[1] = uapi_give(a, nodes[1], b);
                assert_int_equal(uapi_close(f, b), 0);
                assert_true(uapi_poll(a, POLLIN, 2000) & POLLIN);
                apply_mode(a, mode);
                assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), 0);
                uapi_assert_notification(&r, BUS1_MSG_NODE_RELEASE, r.msg.destination);
                assert_int_equal(r.msg.flags, BUS1_MSG_FLAG_CONTINUE);
                /* a passes the other node on: that NODE_RELEASE is withdrawn */
                {
                        uint64_t other = r.msg.destination == nodes[0] ? nodes[1] : nodes[0];
                        uint64_t front = r.msg.destination;

                        assert_int_equal(uapi_send(a, &hc, 1, 0, NULL, "keep", 4, &other, 1), 0);
                        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, front);
                        uapi_expect_empty(a);
                        assert_int_equal(uapi_recv(c, 0, &r), 0);
                        assert_int_equal(r.msg.n_handles, 1);
                        assert_int_equal(uapi_release(c, uapi_slice_handle(uapi_pool(f, c), &r,
                                                                           0)), 0);
                        assert_int_equal(uapi_slice_release(c, r.msg.offset), 0);
                        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, other);
                }
                assert_int_equal(uapi_destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, nodes,
                                              2), 0);
                uapi_expect_empty(a);
        }
        uapi_finish(f);
}

/*
 * A receiver that does not read while a sender floods it: its socket fills
 * up and the broker keeps the rest queued. Draining with RECV then returns
 * every message once, in send order, with more traffic arriving meanwhile.
 */
static void test_push_flood(void **state) {
        UapiFixture *f = *state;
        const unsigned int n_flood = 5000, n_late = 100;
        struct bus1_cmd_recv r, p;
        uint64_t pending[7];
        size_t n_pending = 0;
        uint32_t v;
        uint64_t h;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);

        for (uint32_t i = 0; i < n_flood; ++i)
                assert_int_equal(uapi_send(b, &h, 1, 0, NULL, &i, sizeof(i), NULL, 0), 0);

        for (uint32_t i = 0; i < n_flood + n_late; ++i) {
                if (i == n_flood / 2)
                        for (uint32_t j = n_flood; j < n_flood + n_late; ++j)
                                assert_int_equal(uapi_send(b, &h, 1, 0, NULL, &j, sizeof(j),
                                                           NULL, 0), 0);
                /* now and then PEEK first: wherever the entry is, it is the same */
                if (i % 50 == 0)
                        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &p), 0);
                assert_int_equal(uapi_recv(a, 0, &r), 0);
                if (i % 50 == 0)
                        assert_memory_equal(&p.msg, &r.msg, sizeof(r.msg));
                assert_int_equal(r.msg.type, BUS1_MSG_DATA);
                assert_int_equal(r.msg.n_bytes, sizeof(v));
                memcpy(&v, uapi_pool(f, a) + r.msg.offset, sizeof(v));
                if (v != i)
                        fail_msg("message %u arrived as number %u", v, i);
                /* release in bursts: runs of local receives between requests */
                pending[n_pending++] = r.msg.offset;
                if (n_pending == sizeof(pending) / sizeof(pending[0])) {
                        for (size_t k = 0; k < n_pending; ++k)
                                assert_int_equal(uapi_slice_release(a, pending[k]), 0);
                        n_pending = 0;
                }
        }
        for (size_t k = 0; k < n_pending; ++k)
                assert_int_equal(uapi_slice_release(a, pending[k]), 0);
        uapi_expect_empty(a);
        uapi_finish(f);
}

#define T(_fn) cmocka_unit_test_setup_teardown(_fn, uapi_setup, uapi_teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_push_release_withdrawn),
                T(test_push_release_after_local_dequeue),
                T(test_push_destroy_released_first),
                T(test_push_owner_release_drops),
                T(test_push_flush),
                T(test_push_peek),
                T(test_push_peek_handles),
                T(test_push_handle_released_while_pushed),
                T(test_push_peek_fds),
                T(test_push_poll_buffered),
                T(test_push_poll_own_entries),
                T(test_push_poll_after_mass_withdrawal),
                T(test_push_continue_withdrawn),
                T(test_push_continue_data_release),
                T(test_push_flood),
        };

        /* TEST_FILTER=test_name runs one test (cmocka pattern) */
        if (getenv("TEST_FILTER"))
                cmocka_set_test_filter(getenv("TEST_FILTER"));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
