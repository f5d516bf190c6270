/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UAPI conformance: the peer itself, checked against the 2016 kernel module
 * (ipc/bus1/peer.c bus1_peer_ioctl_peer_query(),
 * bus1_peer_ioctl_peer_reset(), bus1_peer_disconnect(); user.c
 * bus1_user_charge(); main.c bus1_fop_poll(), bus1_fop_mmap(); util/pool.c
 * bus1_pool_mmap()): QUERY and RESET arguments and write-back, accounting
 * after limits are lowered, poll readiness, and the pool mapping rules.
 */

#include "util-uapi-conformance.h"

static void assert_defaults(int peer) {
        struct bus1_cmd_peer_reset q;

        assert_int_equal(uapi_query(peer, &q), 0);
        assert_int_equal(q.flags, 0);
        assert_int_equal(q.peer_flags, 0);
        assert_int_equal(q.max_slices, 16384);
        assert_int_equal(q.max_handles, 65536);
        assert_int_equal(q.max_inflight_bytes, 16 * 1024 * 1024);
        assert_int_equal(q.max_inflight_fds, 4096);
}

/*
 * peer.c bus1_peer_ioctl_peer_query(): flags must be 0 (EINVAL, nothing
 * written); on success every field is written and flags stays 0.
 */
static void test_query(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q, before;
        int a;

        a = uapi_peer(f);

        for (unsigned int bit = 0; bit < 64; bit += 7) {
                conf_fill(&q, sizeof(q));
                q.flags = 1ULL << bit;
                before = q;
                assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_QUERY, &q), -EINVAL);
                assert_memory_equal(&q, &before, sizeof(q));
        }

        conf_fill(&q, sizeof(q));
        q.flags = 0;
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_QUERY, &q), 0);
        assert_int_equal(q.flags, 0);
        assert_int_equal(q.peer_flags, 0);
        assert_int_equal(q.max_slices, 16384);
        assert_int_equal(q.max_handles, 65536);
        assert_int_equal(q.max_inflight_bytes, 16 * 1024 * 1024);
        assert_int_equal(q.max_inflight_fds, 4096);

        uapi_finish(f);
}

/* PEER_RESET with the struct checked to be unchanged afterwards */
static int reset_checked(int peer, const struct bus1_cmd_peer_reset *in) {
        struct bus1_cmd_peer_reset r = *in;
        int res;

        res = bus1_uapi_ioctl(peer, BUS1_CMD_PEER_RESET, &r);
        assert_memory_equal(&r, in, sizeof(r));
        return res;
}

/*
 * peer.c bus1_peer_ioctl_peer_reset(): unknown flags, peer_flags other
 * than all-ones or a subset of WANT_SECCTX, and a limit above INT_MAX other
 * than all-ones are EINVAL; everything is checked before anything is
 * applied (a valid field next to a bad one changes nothing, a FLUSH next to
 * a bad field flushes nothing); the struct is never copied back.
 */
static void test_reset_args(void **state) {
        UapiFixture *f = *state;
        const struct bus1_cmd_peer_reset keep = {
                .peer_flags = UINT64_MAX, .max_slices = UINT32_MAX, .max_handles = UINT32_MAX,
                .max_inflight_bytes = UINT32_MAX, .max_inflight_fds = UINT32_MAX,
        };
        struct bus1_cmd_peer_reset r;
        uint64_t hb;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);

        r = keep;
        r.flags = 1ULL << 2;
        assert_int_equal(reset_checked(a, &r), -EINVAL);
        r.flags = 1ULL << 63;
        assert_int_equal(reset_checked(a, &r), -EINVAL);

        r = keep;
        r.peer_flags = 1ULL << 1;
        assert_int_equal(reset_checked(a, &r), -EINVAL);
        r.peer_flags = BUS1_PEER_FLAG_WANT_SECCTX | (1ULL << 63);
        assert_int_equal(reset_checked(a, &r), -EINVAL);
        r.peer_flags = UINT32_MAX;      /* not all ones in 64 bits */
        assert_int_equal(reset_checked(a, &r), -EINVAL);
        r.peer_flags = UINT64_MAX - 1;
        assert_int_equal(reset_checked(a, &r), -EINVAL);

        r = keep;
        r.max_slices = 0x80000000u;
        assert_int_equal(reset_checked(a, &r), -EINVAL);
        r = keep;
        r.max_handles = UINT32_MAX - 1;
        assert_int_equal(reset_checked(a, &r), -EINVAL);
        r = keep;
        r.max_inflight_bytes = 0x80000000u;
        assert_int_equal(reset_checked(a, &r), -EINVAL);
        r = keep;
        r.max_inflight_fds = 0xfffffff0u;
        assert_int_equal(reset_checked(a, &r), -EINVAL);

        /* valid fields next to a bad one: nothing is applied */
        r = (struct bus1_cmd_peer_reset){
                .peer_flags = BUS1_PEER_FLAG_WANT_SECCTX, .max_slices = 5, .max_handles = 6,
                .max_inflight_bytes = 7, .max_inflight_fds = 0x80000000u,
        };
        assert_int_equal(reset_checked(a, &r), -EINVAL);
        assert_defaults(a);

        /* a FLUSH next to a bad field: the queue is untouched */
        hb = uapi_give(a, 0x100, b);
        assert_int_equal(uapi_send_str(b, hb, "kept"), 0);
        r = keep;
        r.flags = BUS1_PEER_RESET_FLAG_FLUSH | BUS1_PEER_RESET_FLAG_FLUSH_SEED;
        r.max_slices = 0x80000000u;
        assert_int_equal(reset_checked(a, &r), -EINVAL);
        uapi_expect_str(f, a, 0x100, "kept");

        /* the edges that are fine; the struct comes back as it went */
        r = (struct bus1_cmd_peer_reset){
                .peer_flags = BUS1_PEER_FLAG_WANT_SECCTX, .max_slices = 0x7fffffff,
                .max_handles = 0, .max_inflight_bytes = 0x7fffffff, .max_inflight_fds = 0,
        };
        assert_int_equal(reset_checked(a, &r), 0);
        r = keep;
        r.flags = BUS1_PEER_RESET_FLAG_FLUSH_SEED;
        assert_int_equal(reset_checked(a, &r), 0);
        {
                struct bus1_cmd_peer_reset q;

                assert_int_equal(uapi_query(a, &q), 0);
                assert_int_equal(q.peer_flags, BUS1_PEER_FLAG_WANT_SECCTX);
                assert_int_equal(q.max_slices, 0x7fffffff);
                assert_int_equal(q.max_handles, 0);
                assert_int_equal(q.max_inflight_bytes, 0x7fffffff);
                assert_int_equal(q.max_inflight_fds, 0);
        }

        uapi_finish(f);
}

/*
 * user.c bus1_user_charge(): a charge of 0 always succeeds, so after
 * PEER_RESET lowered max_handles below what the peer holds (the remaining
 * count goes negative), it still receives messages that carry no handles,
 * multicasts to handles it holds (no new handle is charged; the count
 * bound is the user's limit, peer.c bus1_peer_ioctl_send()), and destroys
 * nodes it owns (bus1_peer_ioctl_nodes_destroy() charges only new ones).
 * A message that carries a handle to it is EDQUOT
 * (message.c bus1_factory_instantiate()).
 */
static void test_lowered_handle_limit(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, hc, hd, ha_b, dst[3], node[2] = { 0x100, 0x200 }, handle = 0x700;
        int a, b, c, d;

        a = uapi_peer(f);
        b = uapi_peer(f);
        c = uapi_peer(f);
        d = uapi_peer(f);
        hb = uapi_give(b, 0x100, a);
        hc = uapi_give(c, 0x100, a);
        hd = uapi_give(d, 0x100, a);
        ha_b = uapi_give(a, 0x100, b);
        assert_int_equal(uapi_give(a, 0x200, c) & 7, UAPI_REMOTE_BITS);

        /* A holds 5 handles; its limit drops to 1 */
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, 1, UAPI_KEEP32,
                                    UAPI_KEEP32), 0);

        /* receiving a message without handles */
        assert_int_equal(uapi_send_str(b, ha_b, "plain"), 0);
        uapi_expect_str(f, a, 0x100, "plain");

        /* multicast to held handles */
        dst[0] = hb;
        dst[1] = hc;
        dst[2] = hd;
        assert_int_equal(uapi_send(a, dst, 3, 0, NULL, "m", 1, NULL, 0), 0);
        uapi_expect_str(f, b, 0x100, "m");
        uapi_expect_str(f, c, 0x100, "m");
        uapi_expect_str(f, d, 0x100, "m");

        /* a message with a handle for A: over A's quota */
        assert_int_equal(uapi_send(b, &ha_b, 1, 0, NULL, "h", 1, &handle, 1), -EDQUOT);
        uapi_expect_empty(a);

        /* destroying owned nodes */
        assert_int_equal(uapi_destroy(a, 0, node, 2), 0);

        uapi_finish(f);
}

/*
 * user.c bus1_user_charge(): with max_inflight_fds lowered to 0 the peer
 * still receives messages that carry no fds (a zero charge).
 */
static void test_lowered_fd_limit(void **state) {
        UapiFixture *f = *state;
        uint64_t hb;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);

        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32,
                                    0), 0);
        assert_int_equal(uapi_send_str(b, hb, "no fds"), 0);
        uapi_expect_str(f, a, 0x100, "no fds");
        /* and no handles, with max_handles 0 too */
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, 0, UAPI_KEEP32,
                                    UAPI_KEEP32), 0);
        assert_int_equal(uapi_send_str(b, hb, "nothing"), 0);
        uapi_expect_str(f, a, 0x100, "nothing");

        uapi_finish(f);
}

/*
 * main.c bus1_fop_poll(): POLLOUT|POLLWRNORM while connected, POLLIN when
 * the queue's front is ready, and only POLLHUP once deactivated, whatever
 * is queued and whatever events were asked for.
 */
static void test_poll(void **state) {
        UapiFixture *f = *state;
        uint64_t hb;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);

        assert_int_equal(uapi_poll(a, POLLIN | POLLOUT, 0), POLLOUT);
        assert_int_equal(uapi_poll(a, POLLOUT | POLLWRNORM, 0), POLLOUT | POLLWRNORM);
        assert_int_equal(uapi_poll(a, POLLIN, 0), 0);

        assert_int_equal(uapi_send_str(b, hb, "x"), 0);
        assert_int_equal(uapi_poll(a, POLLIN | POLLOUT, 0), POLLIN | POLLOUT);
        assert_int_equal(uapi_poll(a, POLLIN | POLLRDNORM, 0), POLLIN | POLLRDNORM);
        uapi_expect_str(f, a, 0x100, "x");
        assert_int_equal(uapi_poll(a, POLLIN | POLLOUT, 0), POLLOUT);

        /* disconnected with an entry queued: POLLHUP only, even unasked */
        assert_int_equal(uapi_send_str(b, hb, "y"), 0);
        assert_int_equal(conf_disconnect(a), 0);
        assert_int_equal(uapi_poll(a, POLLIN | POLLOUT, 0), POLLHUP);
        assert_int_equal(uapi_poll(a, POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM, 0), POLLHUP);
        assert_int_equal(uapi_poll(a, 0, 0), POLLHUP);
        assert_int_equal(uapi_poll(a, POLLIN, 100), POLLHUP);
        assert_int_equal(uapi_recv(a, 0, &(struct bus1_cmd_recv){}), -ESHUTDOWN);

        /* B is unaffected */
        assert_int_equal(uapi_poll(b, POLLIN | POLLOUT, 0) & (POLLOUT | POLLHUP), POLLOUT);

        uapi_finish(f);
}

/*
 * util/pool.c bus1_pool_mmap(): a mapping with VM_WRITE is EPERM (the
 * brief also allows EACCES); a read-only shared mapping works and clears
 * VM_MAYWRITE, so mprotect() to writable fails (EACCES).
 */
static void test_pool_mapping(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        const uint8_t *map;
        uint64_t hb;
        void *p;
        int a, b, fd;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);
        fd = bus1_uapi_pool_fd(a);
        assert_true(fd >= 0);

        /* writable and shared: refused */
        errno = 0;
        p = mmap(NULL, UAPI_POOL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        assert_true(p == MAP_FAILED);
        assert_true(errno == EPERM || errno == EACCES);
        errno = 0;
        p = mmap(NULL, 4096, PROT_WRITE, MAP_SHARED, fd, 0);
        assert_true(p == MAP_FAILED);
        assert_true(errno == EPERM || errno == EACCES);

        /* read-only and shared: fine, and it cannot be made writable */
        map = mmap(NULL, UAPI_POOL_SIZE, PROT_READ, MAP_SHARED, fd, 0);
        assert_true(map != MAP_FAILED);
        errno = 0;
        assert_int_equal(mprotect((void *)map, UAPI_POOL_SIZE, PROT_READ | PROT_WRITE), -1);
        assert_int_equal(errno, EACCES);

        /* what the broker writes shows in every mapping */
        assert_int_equal(uapi_send_str(b, hb, "visible"), 0);
        assert_int_equal(uapi_recv(a, 0, &r), 0);
        assert_memory_equal(map + r.msg.offset, "visible", 7);
        assert_memory_equal(uapi_pool(f, a) + r.msg.offset, "visible", 7);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);

        /* a smaller mapping at an offset works too */
        p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 4096);
        assert_true(p != MAP_FAILED);
        munmap(p, 4096);

        munmap((void *)map, UAPI_POOL_SIZE);
        uapi_finish(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_query, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_reset_args, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_lowered_handle_limit, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_lowered_fd_limit, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_poll, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_pool_mapping, uapi_setup, uapi_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
