/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UAPI conformance: the ioctl entry point and argument handling, checked
 * against the 2016 kernel module (ipc/bus1/peer.c bus1_peer_ioctl(),
 * main.c bus1_fops): the command is a 32-bit number, PEER_DISCONNECT takes
 * the argument value 0, a disconnected peer answers ESHUTDOWN to everything
 * else before looking at anything, unknown commands are ENOTTY, a NULL
 * argument is EFAULT, descriptors that are not peers are EBADF/ENOTTY, and
 * a failure also sets errno.
 */

#include "util-uapi-conformance.h"

static const unsigned long known_cmds[] = {
        BUS1_CMD_PEER_QUERY,
        BUS1_CMD_PEER_RESET,
        BUS1_CMD_HANDLE_RELEASE,
        BUS1_CMD_HANDLE_TRANSFER,
        BUS1_CMD_NODES_DESTROY,
        BUS1_CMD_SLICE_RELEASE,
        BUS1_CMD_SEND,
        BUS1_CMD_RECV,
};

static const unsigned long unknown_cmds[] = {
        0,
        _IOWR(BUS1_IOCTL_MAGIC, 0x03, __u64),
        _IOWR(BUS1_IOCTL_MAGIC, 0x01, __u64),   /* PEER_QUERY's number, wrong size */
        _IOWR(BUS1_IOCTL_MAGIC, 0x40, __u64),   /* SEND's number, wrong size */
        _IOWR(0x97, 0x01, struct bus1_cmd_peer_reset),
        FIONREAD,
};

/*
 * main.c bus1_fops.unlocked_ioctl = bus1_peer_ioctl(file, unsigned int cmd,
 * arg): the command is 32 bits, so a sign-extended number and one with
 * garbage above bit 31 select the same command.
 */
static void test_cmd_is_32bit(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q;
        struct bus1_cmd_handle_transfer t;
        struct bus1_cmd_nodes_destroy d;
        struct bus1_cmd_recv r;
        struct iovec vec = { .iov_base = "x", .iov_len = 1 };
        struct bus1_cmd_send s;
        uint64_t id, dst = 0x100, node = 0x200;
        unsigned long (*mangle[2])(unsigned long) = { conf_cmd_sext, conf_cmd_high };
        int a;

        a = uapi_peer(f);

        for (size_t i = 0; i < 2; ++i) {
                /* PEER_QUERY */
                q = (struct bus1_cmd_peer_reset){};
                assert_int_equal(bus1_uapi_ioctl(a, mangle[i](BUS1_CMD_PEER_QUERY), &q), 0);
                assert_int_equal(q.max_slices, i ? 1000 : 16384);
                assert_int_equal(q.max_handles, 65536);

                /* PEER_RESET */
                q = (struct bus1_cmd_peer_reset){
                        .peer_flags = UAPI_KEEP64, .max_slices = 1000 + i,
                        .max_handles = UAPI_KEEP32, .max_inflight_bytes = UAPI_KEEP32,
                        .max_inflight_fds = UAPI_KEEP32,
                };
                assert_int_equal(bus1_uapi_ioctl(a, mangle[i](BUS1_CMD_PEER_RESET), &q), 0);
                assert_int_equal(uapi_query(a, &q), 0);
                assert_int_equal(q.max_slices, 1000 + i);

                /* HANDLE_TRANSFER to itself creates node 0x100 */
                t = (struct bus1_cmd_handle_transfer){ .src_handle = 0x100,
                                                       .dst_fd = UINT64_MAX };
                assert_int_equal(bus1_uapi_ioctl(a, mangle[i](BUS1_CMD_HANDLE_TRANSFER), &t),
                                 0);
                assert_int_equal(t.dst_handle, 0x100);

                /* SEND to it, RECV, SLICE_RELEASE */
                s = (struct bus1_cmd_send){
                        .ptr_destinations = (uintptr_t)&dst, .n_destinations = 1,
                        .ptr_vecs = (uintptr_t)&vec, .n_vecs = 1,
                };
                assert_int_equal(bus1_uapi_ioctl(a, mangle[i](BUS1_CMD_SEND), &s), 0);
                r = (struct bus1_cmd_recv){ .max_offset = UAPI_POOL_SIZE };
                assert_int_equal(bus1_uapi_ioctl(a, mangle[i](BUS1_CMD_RECV), &r), 0);
                assert_int_equal(r.msg.type, BUS1_MSG_DATA);
                assert_int_equal(r.msg.destination, 0x100);
                assert_int_equal(r.msg.n_bytes, 1);
                id = r.msg.offset;
                assert_int_equal(bus1_uapi_ioctl(a, mangle[i](BUS1_CMD_SLICE_RELEASE), &id), 0);
                assert_int_equal(uapi_slice_release(a, r.msg.offset), -ENXIO);

                /*
                 * HANDLE_RELEASE of the reference the transfer added: the
                 * last strong one, so the owner is told (handle.c
                 * bus1_handle_release_locked())
                 */
                id = 0x100;
                assert_int_equal(bus1_uapi_ioctl(a, mangle[i](BUS1_CMD_HANDLE_RELEASE), &id),
                                 0);
                assert_int_equal(uapi_release(a, 0x100), -EBUSY);
                uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, 0x100);

                /* NODES_DESTROY of a fresh node, with its handle */
                d = (struct bus1_cmd_nodes_destroy){
                        .flags = BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES,
                        .ptr_nodes = (uintptr_t)&node, .n_nodes = 1,
                };
                assert_int_equal(bus1_uapi_ioctl(a, mangle[i](BUS1_CMD_NODES_DESTROY), &d), 0);
                /* its NODE_DESTROY is dropped: the handle is gone (bus1_peer_peek()) */
                uapi_expect_empty(a);
        }

        /* PEER_DISCONNECT, sign-extended */
        assert_int_equal(bus1_uapi_ioctl(a, conf_cmd_sext(BUS1_CMD_PEER_DISCONNECT), NULL), 0);
        assert_int_equal(bus1_uapi_ioctl(a, conf_cmd_high(BUS1_CMD_PEER_DISCONNECT), NULL),
                         -ESHUTDOWN);
        assert_int_equal(uapi_poll(a, POLLIN | POLLOUT, 0), POLLHUP);

        uapi_finish(f);
}

/*
 * peer.c bus1_peer_ioctl(): the inner switch's default is ENOTTY, reached
 * before any argument is read, so an unknown command is ENOTTY whatever
 * its argument (NULL included) and changes nothing.
 */
static void test_unknown_cmd(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q, before;
        int a;

        a = uapi_peer(f);

        for (size_t i = 0; i < sizeof(unknown_cmds) / sizeof(*unknown_cmds); ++i) {
                unsigned long cmd = unknown_cmds[i];

                assert_int_equal(bus1_uapi_ioctl(a, cmd, NULL), -ENOTTY);
                conf_fill(&q, sizeof(q));
                before = q;
                assert_int_equal(bus1_uapi_ioctl(a, cmd, &q), -ENOTTY);
                assert_memory_equal(&q, &before, sizeof(q));
                assert_int_equal(bus1_uapi_ioctl(a, conf_cmd_sext(cmd), NULL), -ENOTTY);
                assert_int_equal(bus1_uapi_ioctl(a, conf_cmd_high(cmd), &q), -ENOTTY);
        }
        /* a pointer that must not be read */
        assert_int_equal(conf_ioctl_guarded(f, a, _IOWR(BUS1_IOCTL_MAGIC, 0x03, __u64), (void *)1),
                         -ENOTTY);

        /* the peer is fine */
        assert_int_equal(uapi_query(a, &q), 0);
        assert_int_equal(q.max_slices, 16384);
        assert_true(uapi_poll(a, POLLOUT, 0) & POLLOUT);

        uapi_finish(f);
}

/*
 * peer.c bus1_peer_ioctl_*(): every handler starts with copy_from_user()
 * or get_user() of its argument, which fails with EFAULT for NULL.
 */
static void test_null_arg(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q;
        int a;

        a = uapi_peer(f);

        for (size_t i = 0; i < sizeof(known_cmds) / sizeof(*known_cmds); ++i) {
                assert_int_equal(bus1_uapi_ioctl(a, known_cmds[i], NULL), -EFAULT);
                assert_int_equal(bus1_uapi_ioctl(a, conf_cmd_high(known_cmds[i]), NULL),
                                 -EFAULT);
        }

        assert_int_equal(uapi_query(a, &q), 0);
        uapi_expect_empty(a);

        uapi_finish(f);
}

/*
 * peer.c bus1_peer_ioctl(): PEER_DISCONNECT checks "if (arg) return
 * -EINVAL" on the argument VALUE before anything, never dereferencing it,
 * also on a peer that is already disconnected; bus1_peer_disconnect() of a
 * disconnected peer is ESHUTDOWN.
 */
static void test_disconnect_arg(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q;
        uint64_t zero = 0;
        int a;

        a = uapi_peer(f);

        /* a non-NULL argument, even one pointing at 0, is EINVAL */
        assert_int_equal(conf_ioctl_guarded(f, a, BUS1_CMD_PEER_DISCONNECT, (void *)1), -EINVAL);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_DISCONNECT, &zero), -EINVAL);
        assert_int_equal(zero, 0);
        /* and did not disconnect */
        assert_int_equal(uapi_query(a, &q), 0);
        assert_true(uapi_poll(a, POLLOUT, 0) & POLLOUT);

        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_DISCONNECT, NULL), 0);
        assert_int_equal(uapi_poll(a, POLLIN | POLLOUT, 0), POLLHUP);

        /* disconnected: EINVAL still comes first, then ESHUTDOWN */
        assert_int_equal(conf_ioctl_guarded(f, a, BUS1_CMD_PEER_DISCONNECT, (void *)1), -EINVAL);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_DISCONNECT, &zero), -EINVAL);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_DISCONNECT, NULL), -ESHUTDOWN);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_DISCONNECT, NULL), -ESHUTDOWN);

        uapi_finish(f);
}

/*
 * peer.c bus1_peer_ioctl(): every command but PEER_DISCONNECT first takes
 * an active reference (bus1_peer_acquire()) and returns ESHUTDOWN without
 * it: before the command is looked up and before the argument is read.
 */
static void test_disconnected_shutdown_first(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q = { .flags = 1 }, before_q;
        struct bus1_cmd_handle_transfer t = { .flags = 1, .src_handle = CONF_ID_UNKNOWN,
                                             .dst_fd = 1000 };
        struct bus1_cmd_nodes_destroy d = { .flags = 1ULL << 63, .n_nodes = UINT64_MAX };
        struct bus1_cmd_send s = { .flags = 1ULL << 63, .n_vecs = UINT64_MAX,
                                   .n_fds = UINT64_MAX, .n_destinations = UINT64_MAX };
        struct bus1_cmd_recv r;
        uint64_t id = CONF_ID_UNKNOWN;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        assert_int_equal(conf_disconnect(a), 0);

        /* a NULL argument */
        for (size_t i = 0; i < sizeof(known_cmds) / sizeof(*known_cmds); ++i)
                assert_int_equal(bus1_uapi_ioctl(a, known_cmds[i], NULL), -ESHUTDOWN);
        /* an unknown command */
        for (size_t i = 0; i < sizeof(unknown_cmds) / sizeof(*unknown_cmds); ++i) {
                assert_int_equal(bus1_uapi_ioctl(a, unknown_cmds[i], NULL), -ESHUTDOWN);
                assert_int_equal(bus1_uapi_ioctl(a, unknown_cmds[i], &q), -ESHUTDOWN);
        }
        /* bad fields everywhere; the structs stay as they were */
        before_q = q;
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_QUERY, &q), -ESHUTDOWN);
        assert_memory_equal(&q, &before_q, sizeof(q));
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_RESET, &q), -ESHUTDOWN);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_HANDLE_TRANSFER, &t), -ESHUTDOWN);
        assert_int_equal(t.dst_handle, 0);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_NODES_DESTROY, &d), -ESHUTDOWN);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_SEND, &s), -ESHUTDOWN);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_HANDLE_RELEASE, &id), -ESHUTDOWN);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_SLICE_RELEASE, &id), -ESHUTDOWN);
        conf_fill(&r, sizeof(r));
        r.flags = 1ULL << 63;
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), -ESHUTDOWN);
        assert_int_equal(bus1_uapi_ioctl(a, conf_cmd_sext(BUS1_CMD_RECV), &r), -ESHUTDOWN);
        assert_int_equal(bus1_uapi_ioctl(a, conf_cmd_high(BUS1_CMD_SEND), &s), -ESHUTDOWN);
        /* even a bogus pointer is not read */
        assert_int_equal(conf_ioctl_guarded(f, a, BUS1_CMD_SEND, (void *)1), -ESHUTDOWN);
        assert_int_equal(conf_ioctl_guarded(f, a, BUS1_CMD_RECV, (void *)1), -ESHUTDOWN);

        /* the other peer is unaffected */
        assert_int_equal(uapi_query(b, &q), 0);

        uapi_finish(f);
}

/*
 * ioctl(2) itself: a descriptor that is not open is EBADF; one that is open
 * but not a bus1 peer (its f_op is not bus1_fops) is ENOTTY, whatever the
 * command and argument.
 */
static void test_not_a_peer(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q;
        int a, p[2], closed, pool_fd, gone;

        a = uapi_peer(f);
        gone = uapi_peer(f);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        closed = conf_closed_fd();
        pool_fd = bus1_uapi_pool_fd(a);
        assert_true(pool_fd >= 0);

        for (size_t i = 0; i < sizeof(known_cmds) / sizeof(*known_cmds); ++i) {
                assert_int_equal(bus1_uapi_ioctl(closed, known_cmds[i], &q), -EBADF);
                assert_int_equal(bus1_uapi_ioctl(closed, known_cmds[i], NULL), -EBADF);
                assert_int_equal(bus1_uapi_ioctl(-1, known_cmds[i], &q), -EBADF);
                assert_int_equal(bus1_uapi_ioctl(p[0], known_cmds[i], &q), -ENOTTY);
                assert_int_equal(bus1_uapi_ioctl(p[1], known_cmds[i], NULL), -ENOTTY);
                assert_int_equal(bus1_uapi_ioctl(pool_fd, known_cmds[i], &q), -ENOTTY);
        }
        assert_int_equal(bus1_uapi_ioctl(closed, BUS1_CMD_PEER_DISCONNECT, NULL), -EBADF);
        assert_int_equal(bus1_uapi_ioctl(p[0], BUS1_CMD_PEER_DISCONNECT, NULL), -ENOTTY);
        assert_int_equal(bus1_uapi_ioctl(closed, 0, NULL), -EBADF);
        assert_int_equal(bus1_uapi_ioctl(p[0], 0, NULL), -ENOTTY);
        assert_int_equal(bus1_uapi_ioctl(p[0], _IOWR(BUS1_IOCTL_MAGIC, 0x03, __u64), NULL),
                         -ENOTTY);

        /* a peer closed with bus1_uapi_close(): its number is no longer open */
        assert_int_equal(uapi_close(f, gone), 0);
        assert_int_equal(bus1_uapi_ioctl(gone, BUS1_CMD_PEER_QUERY, &q), -EBADF);
        assert_int_equal(bus1_uapi_ioctl(gone, BUS1_CMD_PEER_DISCONNECT, NULL), -EBADF);

        /* the pipe still works */
        assert_int_equal(write(p[1], "x", 1), 1);
        assert_int_equal(uapi_query(a, &q), 0);

        close(p[0]);
        close(p[1]);
        uapi_finish(f);
}

static void expect_errno(int r, int err) {
        int saved = errno;

        assert_int_equal(r, -err);
        assert_int_equal(saved, err);
}

/*
 * ioctl(2) returns -1 with errno set to the handler's error (every
 * bus1_peer_ioctl() error path): bus1_uapi_ioctl() returns the negative
 * errno and sets errno too, so wrappers written for ioctl(2) work.
 */
static void test_errno_set(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q = { .flags = 1 };
        struct bus1_cmd_recv r = { .max_offset = UAPI_POOL_SIZE };
        uint64_t id = CONF_ID_UNKNOWN;
        int a, p[2], closed;

        a = uapi_peer(f);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        closed = conf_closed_fd();

        errno = 0;
        expect_errno(bus1_uapi_ioctl(closed, BUS1_CMD_PEER_QUERY, &q), EBADF);
        errno = 0;
        expect_errno(bus1_uapi_ioctl(p[0], BUS1_CMD_PEER_QUERY, &q), ENOTTY);
        errno = 0;
        expect_errno(bus1_uapi_ioctl(a, 0, &q), ENOTTY);
        errno = 0;
        expect_errno(bus1_uapi_ioctl(a, BUS1_CMD_RECV, NULL), EFAULT);
        errno = 0;
        expect_errno(bus1_uapi_ioctl(a, BUS1_CMD_PEER_QUERY, &q), EINVAL);
        errno = 0;
        expect_errno(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), EAGAIN);
        errno = 0;
        expect_errno(bus1_uapi_ioctl(a, BUS1_CMD_HANDLE_RELEASE, &id), ENXIO);
        id = 0x100;
        errno = 0;
        expect_errno(bus1_uapi_ioctl(a, BUS1_CMD_HANDLE_RELEASE, &id), EBUSY);
        assert_int_equal(conf_disconnect(a), 0);
        errno = 0;
        expect_errno(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), ESHUTDOWN);
        errno = 0;
        expect_errno(conf_disconnect(a), ESHUTDOWN);

        close(p[0]);
        close(p[1]);
        uapi_finish(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_cmd_is_32bit, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_unknown_cmd, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_null_arg, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_disconnect_arg, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_disconnected_shutdown_first, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_not_a_peer, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_errno_set, uapi_setup, uapi_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
