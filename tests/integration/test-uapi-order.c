/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UAPI ordering across processes (docs/model.md §7)
 *
 * Every event on the bus behaves as if it happened in one total order that
 * respects causality, including causality through side channels the bus
 * never sees. With the broker pushing entries ahead of RECV, that must
 * still hold for processes that run at once:
 *  - two concurrent multicasts to the same two receivers arrive in the same
 *    order at both;
 *  - A sends to C, then tells B through a pipe, then B sends to C: C gets
 *    A's message first;
 *  - a message multicast to B and C, after which B sends to C, reaches C
 *    first;
 *  - two messages of one sender arrive in send order.
 *
 * All peers are created (and their handles passed) in the parent before it
 * forks; each child then uses only its own peers, and the parent never uses
 * a peer a child took over. Children report through their exit status and a
 * shared mapping, never through cmocka, and give up after a timeout rather
 * than hang on a lost wake-up.
 */

#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include "util-uapi.h"

#define NODE 0x100ULL
#define WAIT_MS 10000

/* the payload of every message here */
typedef struct Tag {
        uint32_t sender;
        uint32_t seq;
} Tag;

/* what a child reports on failure (first half; the parent uses the second) */
static char *child_error;

static void *shared_map(size_t size) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

        assert_true(p != MAP_FAILED);
        memset(p, 0, size);
        return p;
}

static void child_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void child_fail(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        if (child_error && !child_error[0])
                vsnprintf(child_error, 128, fmt, ap);
        va_end(ap);
        _exit(1);
}

static int send_tag(int from, const uint64_t *dst, size_t n_dst, uint32_t sender,
                    uint32_t seq) {
        Tag t = { .sender = sender, .seq = seq };

        return uapi_send(from, dst, n_dst, 0, NULL, &t, sizeof(t), NULL, 0);
}

/*
 * Receive the next DATA entry and release its slice, waiting up to WAIT_MS
 * for one. Return: 0 and the tag, -ETIMEDOUT, or the RECV error.
 */
static int recv_tag(int peer, const uint8_t *pool, Tag *tag) {
        struct bus1_cmd_recv r;
        int res;

        for (;;) {
                struct pollfd p = { .fd = peer, .events = POLLIN };

                res = uapi_recv(peer, 0, &r);
                if (res == 0)
                        break;
                if (res != -EAGAIN)
                        return res;
                do {
                        res = poll(&p, 1, WAIT_MS);
                } while (res < 0 && errno == EINTR);
                if (res == 0)
                        return -ETIMEDOUT;
        }
        if (r.msg.type != BUS1_MSG_DATA || r.msg.n_bytes != sizeof(*tag))
                return -EBADMSG;
        memcpy(tag, pool + r.msg.offset, sizeof(*tag));
        return uapi_slice_release(peer, r.msg.offset);
}

/* in a child: @n tags, to be stored in @out */
static void child_receive(int peer, const uint8_t *pool, Tag *out, size_t n) {
        for (size_t i = 0; i < n; ++i) {
                int r = recv_tag(peer, pool, &out[i]);

                if (r < 0)
                        child_fail("receiver: message %zu: %s", i, strerror(-r));
        }
        _exit(0);
}

static pid_t fork_child(void) {
        pid_t pid;

        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        return pid;
}

/* reap @n children; all must have exited 0 */
static void wait_children(const pid_t *pids, size_t n) {
        for (size_t i = 0; i < n; ++i) {
                int status;

                assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        fail_msg("child %zu failed (status 0x%x): %s", i, status,
                                 child_error[0] ? child_error : "?");
        }
}

/* the parent is done with a peer a child took over: drop its copy */
static void hand_over(UapiFixture *f, int peer) {
        assert_int_equal(uapi_close(f, peer), 0);
}

/*
 * Two children multicast many messages each, at the same time, to the same
 * two receivers, which two more children drain meanwhile: both receivers
 * must see one identical order, and each sender's messages in send order.
 */
static void test_order_concurrent_multicasts(void **state) {
        const uint32_t n = 2000;
        UapiFixture *f = *state;
        const uint8_t *pools[2];
        uint64_t dst[2][2];
        int rcv[2], snd[2], go[2];
        pid_t pids[4];
        Tag *seen;

        child_error = shared_map(256);
        seen = shared_map(2 * 2 * n * sizeof(*seen));
        for (size_t i = 0; i < 2; ++i) {
                rcv[i] = uapi_peer(f);
                pools[i] = uapi_pool(f, rcv[i]);
        }
        for (size_t s = 0; s < 2; ++s) {
                snd[s] = uapi_peer(f);
                for (size_t i = 0; i < 2; ++i)
                        dst[s][i] = uapi_give(rcv[i], NODE, snd[s]);
        }
        assert_int_equal(pipe2(go, O_CLOEXEC), 0);

        for (size_t i = 0; i < 2; ++i) {
                pids[i] = fork_child();
                if (pids[i] == 0) {
                        /* the senders start when every writer of @go is gone */
                        close(go[0]);
                        close(go[1]);
                        child_receive(rcv[i], pools[i], seen + i * 2 * n, 2 * n);
                }
        }
        for (size_t s = 0; s < 2; ++s) {
                pids[2 + s] = fork_child();
                if (pids[2 + s] == 0) {
                        char c;

                        /* start together: the parent closes the pipe */
                        close(go[1]);
                        if (read(go[0], &c, 1) != 0)
                                child_fail("sender %zu: start signal", s);
                        for (uint32_t k = 0; k < n; ++k) {
                                int r = send_tag(snd[s], dst[s], 2, (uint32_t)s, k);

                                if (r < 0)
                                        child_fail("sender %zu: send %u: %s", s, k,
                                                   strerror(-r));
                        }
                        _exit(0);
                }
        }
        for (size_t i = 0; i < 2; ++i) {
                hand_over(f, rcv[i]);
                hand_over(f, snd[i]);
        }
        close(go[0]);
        close(go[1]);
        wait_children(pids, 4);

        for (size_t i = 0; i < 2; ++i) {
                uint32_t next[2] = { 0, 0 };

                for (size_t k = 0; k < 2 * n; ++k) {
                        const Tag *t = &seen[i * 2 * n + k];

                        if (t->sender > 1 || t->seq != next[t->sender])
                                fail_msg("receiver %zu, message %zu: sender %u #%u, expected #%u",
                                         i, k, t->sender, t->seq,
                                         t->sender > 1 ? 0 : next[t->sender]);
                        ++next[t->sender];
                }
        }
        for (size_t k = 0; k < 2 * n; ++k)
                if (memcmp(&seen[k], &seen[2 * n + k], sizeof(Tag)))
                        fail_msg("the receivers disagree at message %zu: %u#%u and %u#%u", k,
                                 seen[k].sender, seen[k].seq, seen[2 * n + k].sender,
                                 seen[2 * n + k].seq);

        munmap(seen, 2 * 2 * n * sizeof(*seen));
        munmap(child_error, 256);
        uapi_finish(f);
}

/*
 * Side-channel causality: A sends to C, then writes the round number into a
 * pipe; B reads it and only then sends to C. C, receiving meanwhile, must
 * always get A's message of a round before B's.
 */
static void test_order_side_channel(void **state) {
        const uint32_t n = 3000;
        UapiFixture *f = *state;
        uint32_t next[2] = { 0, 0 };
        uint64_t ha, hb;
        int a, b, c, ab[2];
        const uint8_t *pool;
        pid_t pids[2];
        Tag t;

        child_error = shared_map(256);
        c = uapi_peer(f);
        a = uapi_peer(f);
        b = uapi_peer(f);
        ha = uapi_give(c, NODE, a);
        hb = uapi_give(c, NODE, b);
        pool = uapi_pool(f, c);
        assert_int_equal(pipe2(ab, O_CLOEXEC), 0);

        pids[0] = fork_child();
        if (pids[0] == 0) {
                close(ab[0]);
                for (uint32_t k = 0; k < n; ++k) {
                        int r = send_tag(a, &ha, 1, 0, k);

                        if (r < 0)
                                child_fail("A: send %u: %s", k, strerror(-r));
                        if (write(ab[1], &k, sizeof(k)) != sizeof(k))
                                child_fail("A: pipe");
                }
                _exit(0);
        }
        pids[1] = fork_child();
        if (pids[1] == 0) {
                close(ab[1]);
                for (uint32_t k = 0; k < n; ++k) {
                        uint32_t v;
                        int r;

                        if (read(ab[0], &v, sizeof(v)) != sizeof(v) || v != k)
                                child_fail("B: pipe at %u", k);
                        r = send_tag(b, &hb, 1, 1, k);
                        if (r < 0)
                                child_fail("B: send %u: %s", k, strerror(-r));
                }
                _exit(0);
        }
        hand_over(f, a);
        hand_over(f, b);
        close(ab[0]);
        close(ab[1]);

        /* C: no cmocka assertion while the children run */
        for (uint32_t k = 0; k < 2 * n; ++k) {
                int r = recv_tag(c, pool, &t);

                if (r < 0) {
                        snprintf(child_error + 128, 128, "C: message %u: %s", k, strerror(-r));
                        break;
                }
                if (t.sender > 1 || t.seq != next[t.sender]) {
                        snprintf(child_error + 128, 128, "C: message %u is %u#%u, expected #%u",
                                 k, t.sender, t.seq, t.sender > 1 ? 0 : next[t.sender]);
                        break;
                }
                /* B's message of a round never before A's */
                if (t.sender == 1 && next[0] <= t.seq) {
                        snprintf(child_error + 128, 128,
                                 "C: B#%u arrived before A#%u (message %u)", t.seq, t.seq, k);
                        break;
                }
                ++next[t.sender];
        }
        if (child_error[128]) {
                /* stop the children before failing */
                kill(pids[0], SIGKILL);
                kill(pids[1], SIGKILL);
                waitpid(pids[0], NULL, 0);
                waitpid(pids[1], NULL, 0);
                fail_msg("%s", child_error + 128);
        }
        wait_children(pids, 2);
        /* both senders are gone, and with them the last handles to c's node */
        assert_true(uapi_poll(c, POLLIN, WAIT_MS) & POLLIN);
        uapi_expect_notification(c, BUS1_MSG_NODE_RELEASE, NODE);
        uapi_expect_empty(c);

        munmap(child_error, 256);
        uapi_finish(f);
}

/*
 * A multicasts to B and C; B receives it and only then sends to C. C must
 * get the multicast first, every round.
 */
static void test_order_multicast_then_forward(void **state) {
        const uint32_t n = 2000;
        UapiFixture *f = *state;
        uint32_t next[2] = { 0, 0 };
        uint64_t bc[2], hc;
        int a, b, c;
        const uint8_t *pool, *bpool;
        pid_t pids[2];
        Tag t;

        child_error = shared_map(256);
        c = uapi_peer(f);
        b = uapi_peer(f);
        a = uapi_peer(f);
        bc[0] = uapi_give(b, NODE, a);
        bc[1] = uapi_give(c, NODE, a);
        hc = uapi_give(c, NODE, b);
        pool = uapi_pool(f, c);
        bpool = uapi_pool(f, b);

        pids[0] = fork_child();
        if (pids[0] == 0) {
                for (uint32_t k = 0; k < n; ++k) {
                        int r = send_tag(a, bc, 2, 0, k);

                        if (r < 0)
                                child_fail("A: send %u: %s", k, strerror(-r));
                }
                _exit(0);
        }
        pids[1] = fork_child();
        if (pids[1] == 0) {
                for (uint32_t k = 0; k < n; ++k) {
                        Tag got;
                        int r;

                        r = recv_tag(b, bpool, &got);
                        if (r < 0)
                                child_fail("B: receive %u: %s", k, strerror(-r));
                        if (got.sender != 0 || got.seq != k)
                                child_fail("B: got %u#%u, expected A#%u", got.sender, got.seq,
                                           k);
                        r = send_tag(b, &hc, 1, 1, k);
                        if (r < 0)
                                child_fail("B: send %u: %s", k, strerror(-r));
                }
                _exit(0);
        }
        hand_over(f, a);
        hand_over(f, b);

        for (uint32_t k = 0; k < 2 * n; ++k) {
                int r = recv_tag(c, pool, &t);

                if (r < 0) {
                        snprintf(child_error + 128, 128, "C: message %u: %s", k, strerror(-r));
                        break;
                }
                if (t.sender > 1 || t.seq != next[t.sender]) {
                        snprintf(child_error + 128, 128, "C: message %u is %u#%u, expected #%u",
                                 k, t.sender, t.seq, t.sender > 1 ? 0 : next[t.sender]);
                        break;
                }
                if (t.sender == 1 && next[0] <= t.seq) {
                        snprintf(child_error + 128, 128,
                                 "C: B#%u arrived before the multicast A#%u (message %u)",
                                 t.seq, t.seq, k);
                        break;
                }
                ++next[t.sender];
        }
        if (child_error[128]) {
                kill(pids[0], SIGKILL);
                kill(pids[1], SIGKILL);
                waitpid(pids[0], NULL, 0);
                waitpid(pids[1], NULL, 0);
                fail_msg("%s", child_error + 128);
        }
        wait_children(pids, 2);
        /* both senders are gone, and with them the last handles to c's node */
        assert_true(uapi_poll(c, POLLIN, WAIT_MS) & POLLIN);
        uapi_expect_notification(c, BUS1_MSG_NODE_RELEASE, NODE);
        uapi_expect_empty(c);

        munmap(child_error, 256);
        uapi_finish(f);
}

/*
 * The same within one process, deterministically, with the pushed entries
 * at every place the library may hold them: C has read nothing, has
 * buffered everything, or peeked at the front.
 */
static void test_order_multicast_then_forward_local(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q;
        struct bus1_cmd_recv r;
        uint64_t bc[2], hc;
        int a, b, c;
        Tag t;

        a = uapi_peer(f);
        b = uapi_peer(f);
        c = uapi_peer(f);
        bc[0] = uapi_give(b, NODE, a);
        bc[1] = uapi_give(c, NODE, a);
        hc = uapi_give(c, NODE, b);

        for (uint32_t k = 0; k < 30; ++k) {
                assert_int_equal(send_tag(a, bc, 2, 0, k), 0);
                if (k % 3 == 1)
                        assert_int_equal(uapi_query(c, &q), 0);
                if (k % 3 == 2)
                        assert_int_equal(uapi_recv(c, BUS1_RECV_FLAG_PEEK, &r), 0);
                assert_int_equal(recv_tag(b, uapi_pool(f, b), &t), 0);
                assert_int_equal(t.seq, k);
                assert_int_equal(send_tag(b, &hc, 1, 1, k), 0);

                assert_int_equal(recv_tag(c, uapi_pool(f, c), &t), 0);
                assert_int_equal(t.sender, 0);
                assert_int_equal(t.seq, k);
                assert_int_equal(recv_tag(c, uapi_pool(f, c), &t), 0);
                assert_int_equal(t.sender, 1);
                assert_int_equal(t.seq, k);
        }
        uapi_expect_empty(b);
        uapi_expect_empty(c);
        uapi_finish(f);
}

#define T(_fn) cmocka_unit_test_setup_teardown(_fn, uapi_setup, uapi_teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_order_concurrent_multicasts),
                T(test_order_side_channel),
                T(test_order_multicast_then_forward),
                T(test_order_multicast_then_forward_local),
        };

        /* TEST_FILTER=test_name runs one test (cmocka pattern) */
        if (getenv("TEST_FILTER"))
                cmocka_set_test_filter(getenv("TEST_FILTER"));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
