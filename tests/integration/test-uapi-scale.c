/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UAPI scale: many peers in one process
 *
 * A program may hold hundreds of peers at once and multicast to all of
 * them, and may open and close thousands in a row. Each peer costs the
 * process at most two descriptors (the connection and the pool), however
 * it is used, and closing it gives both back; the broker returns to its
 * idle descriptor count once the peers are gone (test_broker_stop()).
 *
 * These tests manage their peers themselves (more than util-uapi.h tracks)
 * and map only the first page of each pool, passing max_offset to match.
 */

#include <fcntl.h>
#include <stdio.h>
#include "util-uapi.h"

#define NODE 0x100ULL
#define MAP_SMALL 4096

typedef struct ScalePeer {
        int fd;
        const uint8_t *pool;
} ScalePeer;

static void scale_open(ScalePeer *p) {
        p->fd = bus1_uapi_open(NULL);
        if (p->fd < 0)
                fail_msg("bus1_uapi_open: %s", strerror(-p->fd));
        p->pool = mmap(NULL, MAP_SMALL, PROT_READ, MAP_SHARED, bus1_uapi_pool_fd(p->fd), 0);
        assert_true(p->pool != MAP_FAILED);
}

static void scale_close(ScalePeer *p) {
        munmap((void *)p->pool, MAP_SMALL);
        assert_int_equal(bus1_uapi_close(p->fd), 0);
        p->fd = -1;
}

static int scale_recv(const ScalePeer *p, uint64_t flags, struct bus1_cmd_recv *r) {
        *r = (struct bus1_cmd_recv){ .flags = flags, .max_offset = MAP_SMALL };
        return bus1_uapi_ioctl(p->fd, BUS1_CMD_RECV, r);
}

/* one peer holds a handle to each of 256 others and multicasts to all */
static void test_scale_multicast_256(void **state) {
        enum { N = BUS1_FD_MAX + 1 };
        UapiFixture *f = *state;
        static ScalePeer peers[N];
        static uint64_t dst[N - 1], errors[N - 1];
        struct bus1_cmd_recv r;
        unsigned int n0;

        n0 = test_count_fds(0);
        for (size_t i = 0; i < N; ++i)
                scale_open(&peers[i]);
        assert_true(test_count_fds(0) <= n0 + 2 * N);

        for (size_t i = 1; i < N; ++i) {
                dst[i - 1] = uapi_give(peers[i].fd, NODE, peers[0].fd);
                assert_int_equal(dst[i - 1] & 7, UAPI_REMOTE_BITS);
                for (size_t j = 0; j + 1 < i; ++j)
                        assert_true(dst[j] != dst[i - 1]);
        }
        for (size_t i = 0; i < N - 1; ++i)
                errors[i] = 99;
        assert_int_equal(uapi_send(peers[0].fd, dst, N - 1, 0, errors, "to all", 6, NULL, 0),
                         0);
        for (size_t i = 0; i < N - 1; ++i)
                assert_int_equal(errors[i], 0);

        for (size_t i = 1; i < N; ++i) {
                assert_int_equal(scale_recv(&peers[i], 0, &r), 0);
                uapi_assert_data(&r, NODE, 6);
                assert_memory_equal(peers[i].pool + r.msg.offset, "to all", 6);
                assert_int_equal(uapi_slice_release(peers[i].fd, r.msg.offset), 0);
                assert_int_equal(scale_recv(&peers[i], 0, &r), -EAGAIN);
        }
        assert_int_equal(scale_recv(&peers[0], 0, &r), -EAGAIN);
        assert_true(test_count_fds(0) <= n0 + 2 * N);

        /* the sender goes first: every receiver learns its node is released */
        scale_close(&peers[0]);
        for (size_t i = 1; i < N; ++i) {
                assert_true(uapi_poll(peers[i].fd, POLLIN, 5000) & POLLIN);
                assert_int_equal(scale_recv(&peers[i], 0, &r), 0);
                uapi_assert_notification(&r, BUS1_MSG_NODE_RELEASE, NODE);
                scale_close(&peers[i]);
        }
        assert_int_equal(test_count_fds(0), n0);
        uapi_finish(f);
}

/* 3000 peers opened and closed in a row; some of them used first */
static void test_scale_open_close(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        unsigned int n0;
        int first = -1;

        n0 = test_count_fds(0);
        for (int i = 0; i < 3000; ++i) {
                ScalePeer p;

                scale_open(&p);
                /* the same numbers come back: nothing is left behind */
                if (i == 0)
                        first = p.fd;
                assert_int_equal(p.fd, first);
                if (i % 10 == 0) {
                        assert_int_equal(uapi_give(p.fd, NODE, -1), NODE);
                        assert_int_equal(uapi_send_str(p.fd, NODE, "me"), 0);
                        assert_int_equal(scale_recv(&p, 0, &r), 0);
                        assert_int_equal(r.msg.n_bytes, 2);
                }
                scale_close(&p);
                if (i % 500 == 499)
                        assert_int_equal(test_count_fds(0), n0);
        }
        assert_int_equal(test_count_fds(0), n0);
        uapi_finish(f);
}

/* a peer costs at most two descriptors, used or not, and closing returns them */
static void test_scale_fd_cost(void **state) {
        enum { N = 16 };
        UapiFixture *f = *state;
        ScalePeer peers[N];
        struct bus1_cmd_recv r;
        struct bus1_cmd_peer_reset q;
        unsigned int n0, n1, n;
        uint64_t h;

        n0 = test_count_fds(0);
        scale_open(&peers[0]);
        n1 = test_count_fds(0);
        assert_true(n1 <= n0 + 2);
        assert_true(n1 > n0);
        for (size_t i = 1; i < N; ++i)
                scale_open(&peers[i]);
        n = test_count_fds(0);
        assert_true(n <= n0 + 2 * N);
        assert_int_equal(n, n0 + N * (n1 - n0));

        /* using them costs nothing more */
        for (size_t i = 1; i < N; ++i) {
                h = uapi_give(peers[i].fd, NODE, peers[0].fd);
                assert_int_equal(uapi_send_str(peers[0].fd, h, "cost"), 0);
                assert_int_equal(scale_recv(&peers[i], BUS1_RECV_FLAG_PEEK, &r), 0);
                assert_int_equal(scale_recv(&peers[i], 0, &r), 0);
                assert_int_equal(uapi_query(peers[i].fd, &q), 0);
                assert_int_equal(uapi_slice_release(peers[i].fd, r.msg.offset), 0);
                assert_int_equal(uapi_release(peers[0].fd, h), 0);
                assert_int_equal(scale_recv(&peers[i], 0, &r), 0);
                assert_int_equal(r.msg.type, BUS1_MSG_NODE_RELEASE);
        }
        assert_int_equal(test_count_fds(0), n);

        /* PEER_DISCONNECT keeps the descriptor (it hangs up) but not more */
        assert_int_equal(bus1_uapi_ioctl(peers[1].fd, BUS1_CMD_PEER_DISCONNECT, NULL),
                         0);
        assert_true(test_count_fds(0) <= n);

        for (size_t i = 0; i < N; ++i)
                scale_close(&peers[i]);
        assert_int_equal(test_count_fds(0), n0);
        uapi_finish(f);
}

#define T(_fn) cmocka_unit_test_setup_teardown(_fn, uapi_setup, uapi_teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_scale_multicast_256),
                T(test_scale_open_close),
                T(test_scale_fd_cost),
        };

        /* TEST_FILTER=test_name runs one test (cmocka pattern) */
        if (getenv("TEST_FILTER"))
                cmocka_set_test_filter(getenv("TEST_FILTER"));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
