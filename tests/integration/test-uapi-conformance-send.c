/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UAPI conformance: BUS1_CMD_SEND, checked against the 2016 kernel module
 * (ipc/bus1/peer.c bus1_peer_ioctl_send() and bus1_peer_new_message(),
 * message.c bus1_factory_new(), util.c bus1_import_vecs() and
 * bus1_import_fd()): each errno, the order in which faults are found
 * (flags, counts, payload size, destination count, vecs, handles, fds,
 * destinations), that the argument is never written, the SEED rules, and
 * per-destination errors with CONTINUE.
 */

#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "util-uapi-conformance.h"

/* SEND with the whole struct given; checks that the call did not write it */
static int send_struct(int from, struct bus1_cmd_send *s) {
        struct bus1_cmd_send before = *s;
        int r;

        r = bus1_uapi_ioctl(from, BUS1_CMD_SEND, s);
        assert_memory_equal(s, &before, sizeof(*s));
        return r;
}

/*
 * peer.c bus1_peer_ioctl_send(): unknown flags are EINVAL right after the
 * copy_from_user(), before the counts, pointers and everything else.
 */
static void test_flags_first(void **state) {
        UapiFixture *f = *state;
        uint64_t unknown = CONF_ID_UNKNOWN, dst = 0x100;
        struct iovec vec = { .iov_base = "x", .iov_len = 1 };
        struct bus1_cmd_send s;
        int a, fd = -1;

        a = uapi_peer(f);

        s = (struct bus1_cmd_send){ .flags = 1ULL << 2 };
        assert_int_equal(send_struct(a, &s), -EINVAL);
        s = (struct bus1_cmd_send){ .flags = 1ULL << 63 };
        assert_int_equal(send_struct(a, &s), -EINVAL);

        /* with every other fault present */
        s = (struct bus1_cmd_send){
                .flags = BUS1_SEND_FLAG_CONTINUE | (1ULL << 5),
                .ptr_destinations = 0, .n_destinations = UINT64_MAX,
                .ptr_vecs = 0, .n_vecs = UINT64_MAX,
                .ptr_handles = 0, .n_handles = UINT64_MAX,
                .ptr_fds = 0, .n_fds = UINT64_MAX,
        };
        assert_int_equal(send_struct(a, &s), -EINVAL);
        s = (struct bus1_cmd_send){
                .flags = 1ULL << 2,
                .ptr_destinations = (uintptr_t)&unknown, .n_destinations = 1,
                .ptr_vecs = (uintptr_t)&vec, .n_vecs = 1,
                .ptr_handles = (uintptr_t)&unknown, .n_handles = 1,
                .ptr_fds = (uintptr_t)&fd, .n_fds = 1,
        };
        assert_int_equal(send_struct(a, &s), -EINVAL);

        /* nothing was sent */
        s = (struct bus1_cmd_send){ .flags = 1ULL << 2,
                                    .ptr_destinations = (uintptr_t)&dst, .n_destinations = 1,
                                    .ptr_vecs = (uintptr_t)&vec, .n_vecs = 1 };
        assert_int_equal(send_struct(a, &s), -EINVAL);
        uapi_expect_empty(a);

        uapi_finish(f);
}

/*
 * peer.c bus1_peer_ioctl_send(): "check basic limits" - n_vecs >
 * UIO_MAXIOV (1024) or n_fds > BUS1_FD_MAX (256) is EMSGSIZE, before any
 * pointer is used and before the destination count is compared with the
 * user's handle limit.
 */
static void test_counts(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_send s;
        int a;

        a = uapi_peer(f);

        s = (struct bus1_cmd_send){ .n_vecs = 1025 };
        assert_int_equal(send_struct(a, &s), -EMSGSIZE);
        s = (struct bus1_cmd_send){ .n_vecs = UINT64_MAX };
        assert_int_equal(send_struct(a, &s), -EMSGSIZE);
        s = (struct bus1_cmd_send){ .n_fds = BUS1_FD_MAX + 1 };
        assert_int_equal(send_struct(a, &s), -EMSGSIZE);
        s = (struct bus1_cmd_send){ .n_fds = 1ULL << 32 };
        assert_int_equal(send_struct(a, &s), -EMSGSIZE);

        /* before NULL arrays with non-zero counts */
        s = (struct bus1_cmd_send){ .n_vecs = 1025, .n_handles = 1, .n_fds = 1,
                                    .n_destinations = 1 };
        assert_int_equal(send_struct(a, &s), -EMSGSIZE);
        s = (struct bus1_cmd_send){ .n_vecs = 1, .n_fds = 257, .n_handles = 1,
                                    .n_destinations = 1 };
        assert_int_equal(send_struct(a, &s), -EMSGSIZE);

        /* before the destination count */
        s = (struct bus1_cmd_send){ .n_vecs = 1025, .n_destinations = 65537 };
        assert_int_equal(send_struct(a, &s), -EMSGSIZE);
        s = (struct bus1_cmd_send){ .n_fds = 257, .n_destinations = 65537 };
        assert_int_equal(send_struct(a, &s), -EMSGSIZE);

        /* at the limits, the NULL arrays are what is wrong */
        s = (struct bus1_cmd_send){ .n_vecs = 1024 };
        assert_int_equal(send_struct(a, &s), -EFAULT);
        s = (struct bus1_cmd_send){ .n_fds = BUS1_FD_MAX };
        assert_int_equal(send_struct(a, &s), -EFAULT);

        uapi_expect_empty(a);
        uapi_finish(f);
}

/*
 * peer.c bus1_peer_ioctl_send(): n_destinations greater than the user's
 * handle limit (peer->user->limits.max_handles, 65536 by default) is
 * EINVAL, before the factory reads the vecs, handles and fds, and before
 * the destination array.
 */
static void test_destination_count(void **state) {
        UapiFixture *f = *state;
        uint64_t unknown = CONF_ID_UNKNOWN;
        struct iovec vec = { .iov_base = "x", .iov_len = 1 };
        struct bus1_cmd_send s;
        int a, fd = -1;

        a = uapi_peer(f);

        s = (struct bus1_cmd_send){ .n_destinations = 65537 };
        assert_int_equal(send_struct(a, &s), -EINVAL);
        s = (struct bus1_cmd_send){ .n_destinations = 65537, .n_vecs = 1, .n_handles = 1,
                                    .n_fds = 1 };
        assert_int_equal(send_struct(a, &s), -EINVAL);
        s = (struct bus1_cmd_send){
                .ptr_destinations = (uintptr_t)&unknown, .n_destinations = 65537,
                .ptr_vecs = (uintptr_t)&vec, .n_vecs = 1,
                .ptr_handles = (uintptr_t)&unknown, .n_handles = 1,
                .ptr_fds = (uintptr_t)&fd, .n_fds = 1,
        };
        assert_int_equal(send_struct(a, &s), -EINVAL);
        /* SEED does not change that */
        s = (struct bus1_cmd_send){ .flags = BUS1_SEND_FLAG_SEED, .n_destinations = 65537 };
        assert_int_equal(send_struct(a, &s), -EINVAL);

        /* 65536 is allowed: the NULL array is what is wrong */
        s = (struct bus1_cmd_send){ .n_destinations = 65536 };
        assert_int_equal(send_struct(a, &s), -EFAULT);

        /* the user's limit, not the peer's: lowered, it changes nothing */
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, 1, UAPI_KEEP32,
                                    UAPI_KEEP32), 0);
        s = (struct bus1_cmd_send){ .n_destinations = 2 };
        assert_int_equal(send_struct(a, &s), -EFAULT);
        s = (struct bus1_cmd_send){ .n_destinations = 65536 };
        assert_int_equal(send_struct(a, &s), -EFAULT);

        uapi_expect_empty(a);
        uapi_finish(f);
}

/*
 * util.c bus1_import_vecs(): a vec length with the sign bit set, or a
 * running total above MAX_RW_COUNT, is EMSGSIZE. It is decided on the
 * lengths alone (access_ok() checks only the address range), so bogus
 * non-NULL bases are never read. The vecs are imported (bus1_factory_new())
 * before handles, fds and destinations, so EMSGSIZE wins over their faults.
 */
static void test_payload_size(void **state) {
        UapiFixture *f = *state;
        uint64_t dst = 0x100, unknown = CONF_ID_UNKNOWN, dst_unknown = CONF_ID_UNKNOWN_OWN;
        struct iovec big[3];
        struct bus1_cmd_send s;
        int a, fd = -1;

        a = uapi_peer(f);

        /* one vec just over the limit */
        big[0] = (struct iovec){ .iov_base = (void *)0x10000, .iov_len = CONF_MAX_RW_COUNT + 1 };
        s = (struct bus1_cmd_send){ .ptr_destinations = (uintptr_t)&dst, .n_destinations = 1,
                                    .ptr_vecs = (uintptr_t)big, .n_vecs = 1 };
        assert_int_equal(conf_ioctl_guarded(f, a, BUS1_CMD_SEND, &s), -EMSGSIZE);

        /* two vecs, each fine, too long together */
        big[0] = (struct iovec){ .iov_base = (void *)0x10000, .iov_len = 0x40000000 };
        big[1] = (struct iovec){ .iov_base = (void *)0x20000, .iov_len = 0x40000000 };
        s.n_vecs = 2;
        assert_int_equal(conf_ioctl_guarded(f, a, BUS1_CMD_SEND, &s), -EMSGSIZE);

        /* a length that is negative as ssize_t, and SIZE_MAX */
        big[0] = (struct iovec){ .iov_base = (void *)0x10000, .iov_len = (size_t)1 << 63 };
        s.n_vecs = 1;
        assert_int_equal(conf_ioctl_guarded(f, a, BUS1_CMD_SEND, &s), -EMSGSIZE);
        big[0] = (struct iovec){ .iov_base = (void *)0x10000, .iov_len = SIZE_MAX };
        assert_int_equal(conf_ioctl_guarded(f, a, BUS1_CMD_SEND, &s), -EMSGSIZE);

        /* a wrap-around to a small total is caught too */
        big[0] = (struct iovec){ .iov_base = (void *)0x10000, .iov_len = 0x7ffff000 };
        big[1] = (struct iovec){ .iov_base = (void *)0x20000, .iov_len = 0x7ffff000 };
        big[2] = (struct iovec){ .iov_base = (void *)0x30000,
                                 .iov_len = (size_t)0 - 2 * (size_t)0x7ffff000 + 8 };
        s.n_vecs = 3;
        assert_int_equal(conf_ioctl_guarded(f, a, BUS1_CMD_SEND, &s), -EMSGSIZE);

        /* before handles, fds and destinations */
        big[0] = (struct iovec){ .iov_base = (void *)0x10000, .iov_len = CONF_MAX_RW_COUNT + 1 };
        s = (struct bus1_cmd_send){
                .ptr_destinations = (uintptr_t)&dst_unknown, .n_destinations = 1,
                .ptr_vecs = (uintptr_t)big, .n_vecs = 1,
                .ptr_handles = (uintptr_t)&unknown, .n_handles = 1,
                .ptr_fds = (uintptr_t)&fd, .n_fds = 1,
        };
        assert_int_equal(conf_ioctl_guarded(f, a, BUS1_CMD_SEND, &s), -EMSGSIZE);
        s.ptr_handles = 0;
        s.ptr_fds = 0;
        s.ptr_destinations = 0;
        assert_int_equal(conf_ioctl_guarded(f, a, BUS1_CMD_SEND, &s), -EMSGSIZE);

        /* nothing arrived, the peer is fine */
        uapi_expect_empty(a);
        assert_int_equal(uapi_send_str(a, dst, "ok"), 0);
        uapi_expect_str(f, a, 0x100, "ok");

        uapi_finish(f);
}

/*
 * message.c bus1_factory_new() imports vecs, then handles (get_user(),
 * bus1_handle_import()), then fds (get_user(), bus1_import_fd()); peer.c
 * bus1_peer_ioctl_send() reads the destinations only after that. A NULL
 * array with a non-zero count is EFAULT only when its turn comes.
 */
static void test_order(void **state) {
        UapiFixture *f = *state;
        uint64_t unknown = CONF_ID_UNKNOWN, dst_unknown = CONF_ID_UNKNOWN_OWN, hb, handle = 0x200;
        struct iovec vec = { .iov_base = "x", .iov_len = 1 };
        int a, b, bad_fd = -1, good_fd;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(b, 0x100, a);
        good_fd = dup(0);
        assert_true(good_fd >= 0);

        /* vecs before handles */
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, NULL, 1, &unknown, 1, &bad_fd, 1),
                         -EFAULT);
        /* handles before fds */
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, &unknown, 1, &bad_fd, 1),
                         -ENXIO);
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, &unknown, 1, NULL, 1), -ENXIO);
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, NULL, 1, &bad_fd, 1), -EFAULT);
        /* fds before destinations */
        assert_int_equal(conf_send(a, 0, &dst_unknown, 1, NULL, &vec, 1, &handle, 1, &bad_fd,
                                   1), -EBADF);
        assert_int_equal(conf_send(a, 0, &dst_unknown, 1, NULL, &vec, 1, &handle, 1, NULL, 1),
                         -EFAULT);
        assert_int_equal(conf_send(a, 0, NULL, 1, NULL, &vec, 1, &handle, 1, &bad_fd, 1),
                         -EBADF);
        /* the destinations last */
        assert_int_equal(conf_send(a, 0, &dst_unknown, 1, NULL, &vec, 1, &handle, 1, &good_fd,
                                   1), -ENXIO);
        assert_int_equal(conf_send(a, 0, NULL, 1, NULL, &vec, 1, &handle, 1, &good_fd, 1),
                         -EFAULT);
        /* a NULL ptr_errors is fine, and a NULL array with a zero count too */
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, NULL, 0, NULL, 0, NULL, 0), 0);

        /* nothing but the last one arrived */
        {
                struct bus1_cmd_recv r;

                assert_int_equal(uapi_recv(b, 0, &r), 0);
                uapi_assert_data(&r, 0x100, 0);
                assert_int_equal(r.msg.n_handles, 0);
                assert_int_equal(r.msg.n_fds, 0);
                assert_int_equal(uapi_slice_release(b, r.msg.offset), 0);
        }
        uapi_expect_empty(b);
        uapi_expect_empty(a);

        close(good_fd);
        uapi_finish(f);
}

/*
 * handle.c bus1_handle_import(): an ID not in the peer's map is ENXIO if it
 * has BUS1_HANDLE_FLAG_MANAGED or BUS1_HANDLE_FLAG_REMOTE set; the first
 * bad entry of ptr_handles decides (message.c bus1_factory_new() loop).
 */
static void test_handles(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, ids[3];
        struct iovec vec = { .iov_base = "x", .iov_len = 1 };
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(b, 0x100, a);

        ids[0] = 0x1;
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, ids, 1, NULL, 0), -ENXIO);
        ids[0] = 0x2;
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, ids, 1, NULL, 0), -ENXIO);
        ids[0] = CONF_ID_UNKNOWN_OWN;
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, ids, 1, NULL, 0), -ENXIO);
        /* a good entry, then an unknown one */
        ids[0] = hb;
        ids[1] = CONF_ID_UNKNOWN;
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, ids, 2, NULL, 0), -ENXIO);
        /* the first entry that is wrong, even with a NULL fd array behind */
        ids[0] = 0x200;
        ids[1] = CONF_ID_UNKNOWN;
        ids[2] = 0x300;
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, ids, 3, NULL, 1), -ENXIO);
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, ids, 2, NULL, 0), -ENXIO);
        uapi_expect_empty(b);

        uapi_finish(f);
}

/* a unix socket bound at a fresh path, and that path */
static int bound_socket(char *path, size_t size) {
        static unsigned int n;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        snprintf(path, size, "/tmp/bus1-conf-%d-%u.sock", (int)getpid(), n++);
        unlink(path);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_true(strlen(path) < sizeof(sa.sun_path));
        memcpy(sa.sun_path, path, strlen(path) + 1);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        return fd;
}

/*
 * util.c bus1_import_fd(): a negative or closed fd is EBADF; an AF_UNIX
 * socket (and a bus1 peer) is EOPNOTSUPP; an O_PATH descriptor is always
 * allowed, even one of a socket; any other file is allowed. The fds are
 * imported in order, so the first bad one decides.
 */
static void test_fds(void **state) {
        UapiFixture *f = *state;
        struct iovec vec = { .iov_base = "x", .iov_len = 1 };
        int a, b, sv[2], p[2], fds[3], opath, sock, closed;
        struct bus1_cmd_recv r;
        char path[108];
        uint64_t hb;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(b, 0x100, a);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        sock = bound_socket(path, sizeof(path));
        opath = open(path, O_PATH | O_CLOEXEC);
        assert_true(opath >= 0);
        closed = conf_closed_fd();

        fds[0] = -1;
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, NULL, 0, fds, 1), -EBADF);
        fds[0] = INT32_MIN;
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, NULL, 0, fds, 1), -EBADF);
        fds[0] = closed;
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, NULL, 0, fds, 1), -EBADF);
        fds[0] = sv[0];
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, NULL, 0, fds, 1), -EOPNOTSUPP);
        fds[0] = sock;
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, NULL, 0, fds, 1), -EOPNOTSUPP);
        fds[0] = b;     /* a peer */
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, NULL, 0, fds, 1), -EOPNOTSUPP);
        fds[0] = a;     /* the sender itself */
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, NULL, 0, fds, 1), -EOPNOTSUPP);

        /* in order: the first bad one decides */
        fds[0] = p[0];
        fds[1] = sv[1];
        fds[2] = -1;
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, NULL, 0, fds, 3), -EOPNOTSUPP);
        fds[1] = -1;
        fds[2] = sv[1];
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, NULL, 0, fds, 3), -EBADF);
        uapi_expect_empty(b);

        /* O_PATH of a socket, and a pipe: fine */
        fds[0] = opath;
        fds[1] = p[1];
        assert_int_equal(conf_send(a, 0, &hb, 1, NULL, &vec, 1, NULL, 0, fds, 2), 0);
        assert_int_equal(uapi_recv(b, BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        uapi_assert_data(&r, 0x100, 1);
        assert_int_equal(r.msg.n_fds, 2);
        {
                int got[2];
                struct stat st1, st2;

                memcpy(got, uapi_pool(f, b) + r.msg.offset + 8, sizeof(got));
                assert_int_equal(fstat(got[0], &st1), 0);
                assert_int_equal(stat(path, &st2), 0);
                assert_int_equal(st1.st_ino, st2.st_ino);
                assert_true(S_ISSOCK(st1.st_mode));
                assert_int_equal(write(got[1], "y", 1), 1);
                close(got[0]);
                close(got[1]);
        }
        assert_int_equal(uapi_slice_release(b, r.msg.offset), 0);

        close(opath);
        close(sock);
        unlink(path);
        close(sv[0]);
        close(sv[1]);
        close(p[0]);
        close(p[1]);
        uapi_finish(f);
}

/*
 * peer.c bus1_peer_new_message(): each destination is imported
 * (bus1_handle_import(): unknown managed/remote ID → ENXIO), then checked
 * for a duplicate (h->tlink → ENOTUNIQ), in array order; the first bad
 * entry decides and nothing is sent.
 */
static void test_destinations(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, hc, dst[4];
        struct iovec vec = { .iov_base = "x", .iov_len = 1 };
        int a, b, c;

        a = uapi_peer(f);
        b = uapi_peer(f);
        c = uapi_peer(f);
        hb = uapi_give(b, 0x100, a);
        hc = uapi_give(c, 0x100, a);

        dst[0] = CONF_ID_UNKNOWN;
        assert_int_equal(conf_send(a, 0, dst, 1, NULL, &vec, 1, NULL, 0, NULL, 0), -ENXIO);
        dst[0] = 0x1;
        assert_int_equal(conf_send(a, 0, dst, 1, NULL, &vec, 1, NULL, 0, NULL, 0), -ENXIO);
        dst[0] = 0x2;
        assert_int_equal(conf_send(a, 0, dst, 1, NULL, &vec, 1, NULL, 0, NULL, 0), -ENXIO);

        dst[0] = hb;
        dst[1] = hb;
        assert_int_equal(conf_send(a, 0, dst, 2, NULL, &vec, 1, NULL, 0, NULL, 0), -ENOTUNIQ);
        dst[0] = hb;
        dst[1] = hc;
        dst[2] = hb;
        dst[3] = CONF_ID_UNKNOWN;
        assert_int_equal(conf_send(a, 0, dst, 4, NULL, &vec, 1, NULL, 0, NULL, 0), -ENOTUNIQ);
        dst[2] = CONF_ID_UNKNOWN_OWN;
        dst[3] = hb;
        assert_int_equal(conf_send(a, 0, dst, 4, NULL, &vec, 1, NULL, 0, NULL, 0), -ENXIO);
        /* an own node given twice */
        dst[0] = 0x300;
        dst[1] = 0x300;
        assert_int_equal(conf_send(a, 0, dst, 2, NULL, &vec, 1, NULL, 0, NULL, 0), -ENOTUNIQ);
        /* ... even with CONTINUE: these are the sender's errors */
        dst[0] = hb;
        dst[1] = hb;
        assert_int_equal(conf_send(a, BUS1_SEND_FLAG_CONTINUE, dst, 2, NULL, &vec, 1, NULL, 0,
                                   NULL, 0), -ENOTUNIQ);
        dst[1] = CONF_ID_UNKNOWN;
        assert_int_equal(conf_send(a, BUS1_SEND_FLAG_CONTINUE, dst, 2, NULL, &vec, 1, NULL, 0,
                                   NULL, 0), -ENXIO);

        /* nobody got anything */
        uapi_expect_empty(a);
        uapi_expect_empty(b);
        uapi_expect_empty(c);

        /* the same three, once each, is a multicast */
        dst[0] = hb;
        dst[1] = hc;
        dst[2] = 0x300;
        assert_int_equal(conf_send(a, 0, dst, 3, NULL, &vec, 1, NULL, 0, NULL, 0), 0);
        uapi_expect_str(f, b, 0x100, "x");
        uapi_expect_str(f, c, 0x100, "x");
        uapi_expect_str(f, a, 0x300, "x");

        uapi_finish(f);
}

/*
 * peer.c bus1_peer_ioctl_send(): SEED with CONTINUE or with destinations
 * is EINVAL; the check comes after bus1_factory_new() imported vecs,
 * handles and fds, so their faults win over it.
 */
static void test_seed(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, unknown = CONF_ID_UNKNOWN;
        struct iovec vec = { .iov_base = "s", .iov_len = 1 };
        struct bus1_cmd_recv r;
        int a, b, bad_fd = -1;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(b, 0x100, a);

        assert_int_equal(conf_send(a, BUS1_SEND_FLAG_SEED | BUS1_SEND_FLAG_CONTINUE, NULL, 0,
                                   NULL, &vec, 1, NULL, 0, NULL, 0), -EINVAL);
        assert_int_equal(conf_send(a, BUS1_SEND_FLAG_SEED, &hb, 1, NULL, &vec, 1, NULL, 0,
                                   NULL, 0), -EINVAL);
        assert_int_equal(conf_send(a, BUS1_SEND_FLAG_SEED | BUS1_SEND_FLAG_CONTINUE, &hb, 1,
                                   NULL, &vec, 1, NULL, 0, NULL, 0), -EINVAL);
        /* the factory's faults come first */
        assert_int_equal(conf_send(a, BUS1_SEND_FLAG_SEED | BUS1_SEND_FLAG_CONTINUE, NULL, 0,
                                   NULL, NULL, 1, NULL, 0, NULL, 0), -EFAULT);
        assert_int_equal(conf_send(a, BUS1_SEND_FLAG_SEED, &hb, 1, NULL, &vec, 1, &unknown, 1,
                                   NULL, 0), -ENXIO);
        assert_int_equal(conf_send(a, BUS1_SEND_FLAG_SEED | BUS1_SEND_FLAG_CONTINUE, NULL, 0,
                                   NULL, &vec, 1, NULL, 0, &bad_fd, 1), -EBADF);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED, &r), -EAGAIN);
        uapi_expect_empty(b);

        /* a seed, then another that replaces it */
        assert_int_equal(conf_send(a, BUS1_SEND_FLAG_SEED, NULL, 0, NULL, &vec, 1, NULL, 0,
                                   NULL, 0), 0);
        vec.iov_base = "second";
        vec.iov_len = 6;
        assert_int_equal(conf_send(a, BUS1_SEND_FLAG_SEED, NULL, 0, NULL, &vec, 1, NULL, 0,
                                   NULL, 0), 0);
        uapi_expect_empty(a);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED, &r), 0);
        assert_int_equal(r.msg.type, BUS1_MSG_DATA);
        assert_int_equal(r.msg.n_bytes, 6);
        assert_int_equal(r.msg.n_handles, 0);
        assert_memory_equal(uapi_pool(f, a) + r.msg.offset, "second", 6);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED, &r), -EAGAIN);

        uapi_finish(f);
}

/*
 * A destination whose node was destroyed before the send: the man page's
 * rule (the RFC kernel stages it and bus1_peer_peek() drops it at RECV):
 * EHOSTUNREACH for that destination; without CONTINUE the whole send fails
 * and nobody gets the message; with CONTINUE the others get it and
 * ptr_errors holds 0 or the positive errno per destination.
 */
static void test_destroyed_destination(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, hc, dst[2], errors[2], node = 0x100;
        struct iovec vec = { .iov_base = "x", .iov_len = 1 };
        int a, b, c;

        a = uapi_peer(f);
        b = uapi_peer(f);
        c = uapi_peer(f);
        hb = uapi_give(b, 0x100, a);
        hc = uapi_give(c, 0x100, a);
        assert_int_equal(uapi_destroy(b, 0, &node, 1), 0);
        uapi_expect_notification(b, BUS1_MSG_NODE_DESTROY, 0x100);
        uapi_expect_notification(a, BUS1_MSG_NODE_DESTROY, hb);

        dst[0] = hb;
        assert_int_equal(conf_send(a, 0, dst, 1, NULL, &vec, 1, NULL, 0, NULL, 0),
                         -EHOSTUNREACH);
        dst[0] = hc;
        dst[1] = hb;
        assert_int_equal(conf_send(a, 0, dst, 2, NULL, &vec, 1, NULL, 0, NULL, 0),
                         -EHOSTUNREACH);
        uapi_expect_empty(c);

        /* with CONTINUE: C gets it, the error is recorded for B's node */
        conf_fill(errors, sizeof(errors));
        assert_int_equal(conf_send(a, BUS1_SEND_FLAG_CONTINUE, dst, 2, errors, &vec, 1, NULL, 0,
                                   NULL, 0), 0);
        assert_int_equal(errors[0], 0);
        assert_int_equal(errors[1], EHOSTUNREACH);
        uapi_expect_str(f, c, 0x100, "x");
        uapi_expect_empty(b);
        /* and without an errors array */
        assert_int_equal(conf_send(a, BUS1_SEND_FLAG_CONTINUE, dst, 2, NULL, &vec, 1, NULL, 0,
                                   NULL, 0), 0);
        uapi_expect_str(f, c, 0x100, "x");
        /* the destination array itself is never written */
        assert_int_equal(dst[0], hc);
        assert_int_equal(dst[1], hb);

        uapi_expect_empty(a);
        uapi_expect_empty(b);
        uapi_finish(f);
}

/*
 * peer.c bus1_peer_ioctl_send() never copies anything back: the argument
 * and the arrays it points to are the same after success and failure.
 */
static void test_argument_not_written(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, dst[1], handles[1] = { 0x200 }, copy[3];
        struct iovec vec[1] = { { .iov_base = "abc", .iov_len = 3 } }, vcopy;
        struct bus1_cmd_send s;
        struct bus1_cmd_recv r;
        int a, b, fds[1];

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(b, 0x100, a);
        dst[0] = hb;
        fds[0] = dup(0);
        assert_true(fds[0] >= 0);
        copy[0] = dst[0];
        copy[1] = handles[0];
        copy[2] = (uint64_t)fds[0];
        vcopy = vec[0];

        s = (struct bus1_cmd_send){
                .ptr_destinations = (uintptr_t)dst, .n_destinations = 1,
                .ptr_vecs = (uintptr_t)vec, .n_vecs = 1,
                .ptr_handles = (uintptr_t)handles, .n_handles = 1,
                .ptr_fds = (uintptr_t)fds, .n_fds = 1,
        };
        assert_int_equal(send_struct(a, &s), 0);
        assert_int_equal(dst[0], copy[0]);
        assert_int_equal(handles[0], copy[1]);
        assert_int_equal(fds[0], (int)copy[2]);
        assert_memory_equal(&vec[0], &vcopy, sizeof(vcopy));
        assert_int_equal(uapi_recv(b, 0, &r), 0);
        assert_int_equal(uapi_slice_release(b, r.msg.offset), 0);

        /* a failing one (a duplicate destination needs two) */
        s.flags = 1ULL << 7;
        assert_int_equal(send_struct(a, &s), -EINVAL);
        s.flags = 0;
        handles[0] = CONF_ID_UNKNOWN;
        assert_int_equal(send_struct(a, &s), -ENXIO);
        assert_int_equal(handles[0], CONF_ID_UNKNOWN);
        assert_int_equal(dst[0], copy[0]);

        uapi_expect_empty(b);
        close(fds[0]);
        uapi_finish(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_flags_first, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_counts, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_destination_count, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_payload_size, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_order, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_handles, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_fds, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_destinations, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_seed, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_destroyed_destination, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_argument_not_written, uapi_setup,
                                                uapi_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
