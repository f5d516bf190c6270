/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UAPI conformance: BUS1_CMD_RECV and BUS1_CMD_SLICE_RELEASE, checked
 * against the 2016 kernel module (ipc/bus1/peer.c bus1_peer_ioctl_recv(),
 * bus1_peer_peek(), bus1_peer_ioctl_slice_release(), message.c
 * bus1_message_install(), util/pool.c bus1_pool_release_user()): flags,
 * EAGAIN, ERANGE, PEEK, SEED, fd installation, and that the argument is
 * written back only on success.
 */

#include "util-uapi-conformance.h"

/* RECV with a sentinel-filled struct; on failure it must come back as it went */
static int recv_checked(int peer, uint64_t flags, uint64_t max_offset, struct bus1_cmd_recv *r) {
        struct bus1_cmd_recv before;
        int res;

        conf_fill(r, sizeof(*r));
        r->flags = flags;
        r->max_offset = max_offset;
        before = *r;
        res = bus1_uapi_ioctl(peer, BUS1_CMD_RECV, r);
        if (res < 0) {
                assert_memory_equal(r, &before, sizeof(*r));
        } else {
                /* flags and max_offset are copied back unchanged */
                assert_int_equal(r->flags, flags);
                assert_int_equal(r->max_offset, max_offset);
        }
        return res;
}

/*
 * peer.c bus1_peer_ioctl_recv(): flags other than PEEK, SEED and
 * INSTALL_FDS are EINVAL, checked before the queue (so before EAGAIN);
 * nothing is copied back on failure.
 */
static void test_flags(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        uint64_t hb;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);

        assert_int_equal(recv_checked(a, 1ULL << 3, UAPI_POOL_SIZE, &r), -EINVAL);
        assert_int_equal(recv_checked(a, 1ULL << 63, UAPI_POOL_SIZE, &r), -EINVAL);
        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_SEED | (1ULL << 4), UAPI_POOL_SIZE, &r),
                         -EINVAL);

        /* with an entry queued: still EINVAL, and the entry stays */
        hb = uapi_give(a, 0x100, b);
        assert_int_equal(uapi_send_str(b, hb, "x"), 0);
        assert_int_equal(recv_checked(a, 1ULL << 3, UAPI_POOL_SIZE, &r), -EINVAL);
        assert_int_equal(recv_checked(a, 1ULL << 3, 0, &r), -EINVAL);
        uapi_expect_str(f, a, 0x100, "x");

        /* every known flag at once is accepted (empty queue, no seed) */
        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_PEEK | BUS1_RECV_FLAG_SEED |
                                      BUS1_RECV_FLAG_INSTALL_FDS, UAPI_POOL_SIZE, &r), -EAGAIN);

        uapi_finish(f);
}

/*
 * peer.c bus1_peer_peek(): an empty queue is EAGAIN; with SEED, no seed
 * is EAGAIN (queued messages do not count); the struct is not written.
 */
static void test_eagain(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        uint64_t hb;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);

        assert_int_equal(recv_checked(a, 0, UAPI_POOL_SIZE, &r), -EAGAIN);
        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_PEEK, UAPI_POOL_SIZE, &r), -EAGAIN);
        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_INSTALL_FDS, 0, &r), -EAGAIN);
        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_SEED, UAPI_POOL_SIZE, &r), -EAGAIN);
        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK,
                                      UAPI_POOL_SIZE, &r), -EAGAIN);

        /* a queued message is no seed */
        hb = uapi_give(a, 0x100, b);
        assert_int_equal(uapi_send_str(b, hb, "queued"), 0);
        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_SEED, UAPI_POOL_SIZE, &r), -EAGAIN);
        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK,
                                      UAPI_POOL_SIZE, &r), -EAGAIN);
        uapi_expect_str(f, a, 0x100, "queued");
        assert_int_equal(recv_checked(a, 0, UAPI_POOL_SIZE, &r), -EAGAIN);

        uapi_finish(f);
}

/*
 * peer.c bus1_peer_ioctl_recv(): a DATA entry whose slice ends beyond
 * max_offset is ERANGE, before anything is installed; the entry stays at
 * the front and the struct is not written. Notifications have no slice.
 */
static void test_erange(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        uint64_t hb, offset;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);

        /* 16 bytes of payload: a slice of 16 */
        assert_int_equal(uapi_send(b, &hb, 1, 0, NULL, "0123456789abcdef", 16, NULL, 0), 0);
        assert_int_equal(uapi_send_str(b, hb, "second"), 0);

        assert_int_equal(recv_checked(a, 0, 0, &r), -ERANGE);
        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_PEEK, 0, &r), -ERANGE);
        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_INSTALL_FDS, 0, &r), -ERANGE);

        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_PEEK, UAPI_POOL_SIZE, &r), 0);
        offset = r.msg.offset;
        assert_int_equal(recv_checked(a, 0, offset + 15, &r), -ERANGE);
        /* exactly the end is enough */
        assert_int_equal(recv_checked(a, 0, offset + 16, &r), 0);
        uapi_assert_data(&r, 0x100, 16);
        assert_int_equal(r.msg.offset, offset);
        assert_int_equal(r.msg.flags, 0);
        assert_int_equal(uapi_slice_release(a, offset), 0);
        uapi_expect_str(f, a, 0x100, "second");

        /* a notification is delivered whatever max_offset says */
        assert_int_equal(uapi_release(b, hb), 0);
        assert_int_equal(recv_checked(a, 0, 0, &r), 0);
        uapi_assert_notification(&r, BUS1_MSG_NODE_RELEASE, 0x100);
        uapi_expect_empty(a);

        uapi_finish(f);
}

/*
 * peer.c bus1_peer_ioctl_recv(): on success the whole struct is copied
 * back: every msg field is written (the sentinel is gone), flags and
 * max_offset are unchanged. BUS1_MSG_FLAG_CONTINUE is set when the next
 * entry belongs to the same transaction (util/queue.c bus1_queue_peek()
 * *morep: same timestamp and group), not merely when more are queued.
 */
static void test_written_on_success(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        uint64_t hb[2];
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb[0] = uapi_give(a, 0x100, b);
        hb[1] = uapi_give(a, 0x200, b);

        /* two sends: two transactions */
        assert_int_equal(uapi_send_str(b, hb[0], "one"), 0);
        assert_int_equal(uapi_send_str(b, hb[0], "two"), 0);
        for (int i = 0; i < 2; ++i) {
                assert_int_equal(recv_checked(a, 0, UAPI_POOL_SIZE, &r), 0);
                uapi_assert_data(&r, 0x100, 3);
                assert_int_equal(r.msg.flags, 0);
                assert_int_equal(r.msg.n_handles, 0);
                assert_int_equal(r.msg.n_fds, 0);
                assert_int_equal(r.msg.n_secctx, 0);
                assert_memory_equal(uapi_pool(f, a) + r.msg.offset, i ? "two" : "one", 3);
                assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        }

        /* one multicast reaching A twice: the first entry continues */
        assert_int_equal(uapi_send(b, hb, 2, 0, NULL, "mc", 2, NULL, 0), 0);
        assert_int_equal(recv_checked(a, 0, UAPI_POOL_SIZE, &r), 0);
        assert_int_equal(r.msg.flags, BUS1_MSG_FLAG_CONTINUE);
        assert_true(r.msg.destination == 0x100 || r.msg.destination == 0x200);
        uapi_assert_data(&r, r.msg.destination, 2);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        assert_int_equal(recv_checked(a, 0, UAPI_POOL_SIZE, &r), 0);
        assert_int_equal(r.msg.flags, 0);
        assert_true(r.msg.destination == 0x100 || r.msg.destination == 0x200);
        uapi_assert_data(&r, r.msg.destination, 2);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);

        /* a notification: every field set, nothing left of the sentinel */
        assert_int_equal(uapi_release(b, hb[0]), 0);
        assert_int_equal(recv_checked(a, 0, UAPI_POOL_SIZE, &r), 0);
        uapi_assert_notification(&r, BUS1_MSG_NODE_RELEASE, 0x100);
        assert_int_equal(r.msg.flags, 0);
        uapi_expect_empty(a);

        uapi_finish(f);
}

/*
 * peer.c bus1_peer_peek()/bus1_peer_ioctl_recv(): PEEK returns the front
 * entry without dequeuing it, for data and notifications alike; the next
 * RECV returns the same entry.
 */
static void test_peek(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r, p;
        uint64_t hb;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);

        assert_int_equal(uapi_send_str(b, hb, "front"), 0);
        assert_int_equal(uapi_send_str(b, hb, "back"), 0);

        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_PEEK, UAPI_POOL_SIZE, &p), 0);
        uapi_assert_data(&p, 0x100, 5);
        assert_int_equal(p.msg.flags, 0);
        assert_memory_equal(uapi_pool(f, a) + p.msg.offset, "front", 5);
        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_PEEK, UAPI_POOL_SIZE, &r), 0);
        assert_int_equal(r.msg.offset, p.msg.offset);
        assert_int_equal(r.msg.n_bytes, 5);
        assert_true(uapi_poll(a, POLLIN, 0) & POLLIN);

        assert_int_equal(recv_checked(a, 0, UAPI_POOL_SIZE, &r), 0);
        assert_int_equal(r.msg.offset, p.msg.offset);
        assert_memory_equal(uapi_pool(f, a) + r.msg.offset, "front", 5);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        uapi_expect_str(f, a, 0x100, "back");

        /* a notification */
        assert_int_equal(uapi_release(b, hb), 0);
        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_PEEK, UAPI_POOL_SIZE, &r), 0);
        uapi_assert_notification(&r, BUS1_MSG_NODE_RELEASE, 0x100);
        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_PEEK, UAPI_POOL_SIZE, &r), 0);
        uapi_assert_notification(&r, BUS1_MSG_NODE_RELEASE, 0x100);
        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, 0x100);
        uapi_expect_empty(a);

        uapi_finish(f);
}

/*
 * message.c bus1_message_install(): fds are installed only with
 * INSTALL_FDS, their numbers written after the handle IDs (at
 * ALIGN8(n_bytes) + ALIGN8(8 * n_handles)). Without the flag, the
 * project's rule: n_fds reads 0 and no descriptor appears.
 */
static void test_install_fds(void **state) {
        UapiFixture *f = *state;
        struct iovec vec = { .iov_base = "abc", .iov_len = 3 };
        uint64_t hb, handle = 0x200;
        struct bus1_cmd_recv r;
        int a, b, p[2], fds[2], got[2];
        unsigned int before;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        fds[0] = p[0];
        fds[1] = p[1];

        /* without INSTALL_FDS */
        assert_int_equal(conf_send(b, 0, &hb, 1, NULL, &vec, 1, &handle, 1, fds, 2), 0);
        before = test_count_fds(0);
        assert_int_equal(recv_checked(a, 0, UAPI_POOL_SIZE, &r), 0);
        uapi_assert_data(&r, 0x100, 3);
        assert_int_equal(r.msg.n_handles, 1);
        assert_int_equal(r.msg.n_fds, 0);
        assert_int_equal(test_count_fds(0), before);
        assert_int_equal(uapi_release(a, uapi_slice_handle(uapi_pool(f, a), &r, 0)), 0);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);

        /* with it */
        assert_int_equal(conf_send(b, 0, &hb, 1, NULL, &vec, 1, &handle, 1, fds, 2), 0);
        assert_int_equal(recv_checked(a, BUS1_RECV_FLAG_INSTALL_FDS, UAPI_POOL_SIZE, &r), 0);
        uapi_assert_data(&r, 0x100, 3);
        assert_int_equal(r.msg.n_handles, 1);
        assert_int_equal(r.msg.n_fds, 2);
        memcpy(got, uapi_pool(f, a) + r.msg.offset + 8 + 8, sizeof(got));
        assert_true(got[0] >= 0 && got[1] >= 0);
        assert_true(got[0] != p[0] && got[1] != p[1]);
        /* the installed pair is the pipe: write one end, read the other */
        assert_int_equal(write(got[1], "z", 1), 1);
        {
                char c = 0;

                assert_int_equal(read(p[0], &c, 1), 1);
                assert_int_equal(c, 'z');
                assert_int_equal(write(p[1], "w", 1), 1);
                assert_int_equal(read(got[0], &c, 1), 1);
                assert_int_equal(c, 'w');
        }
        /* close-on-exec, as get_unused_fd_flags(O_CLOEXEC) gives them */
        assert_true(fcntl(got[0], F_GETFD) & FD_CLOEXEC);
        assert_true(fcntl(got[1], F_GETFD) & FD_CLOEXEC);
        close(got[0]);
        close(got[1]);
        assert_int_equal(uapi_release(a, uapi_slice_handle(uapi_pool(f, a), &r, 0)), 0);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);

        close(p[0]);
        close(p[1]);
        uapi_finish(f);
}

/*
 * peer.c bus1_peer_ioctl_slice_release() → util/pool.c
 * bus1_pool_release_user(): an offset that is not the start of a slice the
 * caller was given is ENXIO, and so is a second release; the u64 argument
 * is never written.
 */
static void test_slice_release(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        uint64_t hb, off;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);

        assert_int_equal(uapi_slice_release(a, 0), -ENXIO);
        assert_int_equal(uapi_slice_release(a, 8), -ENXIO);
        assert_int_equal(uapi_slice_release(a, UINT64_MAX), -ENXIO);
        assert_int_equal(uapi_slice_release(a, UAPI_POOL_SIZE), -ENXIO);

        assert_int_equal(uapi_send(b, &hb, 1, 0, NULL, "0123456789abcdef", 16, NULL, 0), 0);
        assert_int_equal(uapi_recv(a, 0, &r), 0);
        /* inside the slice, or past it */
        assert_int_equal(uapi_slice_release(a, r.msg.offset + 8), -ENXIO);
        assert_int_equal(uapi_slice_release(a, r.msg.offset + 1), -ENXIO);
        assert_int_equal(uapi_slice_release(a, r.msg.offset + 16), -ENXIO);
        off = r.msg.offset;
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_SLICE_RELEASE, &off), 0);
        assert_int_equal(off, r.msg.offset);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_SLICE_RELEASE, &off), -ENXIO);
        assert_int_equal(off, r.msg.offset);
        /* another peer's slice offsets mean nothing here */
        assert_int_equal(uapi_slice_release(b, r.msg.offset), -ENXIO);

        uapi_finish(f);
}

/*
 * message.c bus1_message_install() runs for PEEK too: it publishes the
 * slice (bus1_pool_publish() gives it a user reference), so the peeked
 * offset can be released with SLICE_RELEASE (RFC tree; the later tree
 * dropped PEEK).
 */
static void test_peek_publishes_slice(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        uint64_t hb;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);

        assert_int_equal(uapi_send_str(b, hb, "peeked"), 0);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), -ENXIO);
        /* the entry is still queued and is published again when received */
        uapi_expect_str(f, a, 0x100, "peeked");
        uapi_expect_empty(a);

        uapi_finish(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_flags, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_eagain, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_erange, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_written_on_success, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_peek, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_install_fds, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_slice_release, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_peek_publishes_slice, uapi_setup,
                                                uapi_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
