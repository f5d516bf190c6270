/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UAPI fds and pool: file descriptors in messages (docs/model.md §4 and 5)
 * and the read-only pool
 *
 * fds travel with SCM_RIGHTS through the broker. With
 * BUS1_RECV_FLAG_INSTALL_FDS the receiver gets its own descriptors, O_CLOEXEC,
 * whose numbers it reads from the slice's fd area at
 * ALIGN8(n_bytes) + ALIGN8(8 * n_handles); without it n_fds is 0, nothing
 * appears in the process and the fds are closed. AF_UNIX sockets are refused
 * unless opened O_PATH, a bad fd is EBADF, at most BUS1_FD_MAX (256) fit one
 * message. The pool can be mapped read-only and never written, shrunk or
 * grown by the peer; a slice not wholly below max_offset is ERANGE and stays
 * queued.
 *
 * Every test runs on its own broker (util-uapi.h) and ends by checking that
 * neither the test process nor the broker kept a descriptor.
 */

#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "util-uapi.h"

#define NODE 0x100ULL

/* SEND with fds (and maybe handles) to @n_dst destinations */
static int send_fds(int from, const uint64_t *dst, size_t n_dst, uint64_t *errors,
                    const void *data, size_t len, const uint64_t *handles, size_t n_handles,
                    const int *fds, size_t n_fds) {
        struct iovec vec = { .iov_base = (void *)data, .iov_len = len };
        struct bus1_cmd_send s = {
                .ptr_destinations = (uintptr_t)dst,
                .ptr_errors = (uintptr_t)errors,
                .n_destinations = n_dst,
                .ptr_vecs = (uintptr_t)&vec,
                .n_vecs = 1,
                .ptr_handles = (uintptr_t)handles,
                .n_handles = n_handles,
                .ptr_fds = (uintptr_t)fds,
                .n_fds = n_fds,
        };

        return bus1_uapi_ioctl(from, BUS1_CMD_SEND, &s);
}

/* the fd numbers of a received message, from its slice */
static void slice_fds(const uint8_t *pool, const struct bus1_cmd_recv *r, int *fds) {
        uint64_t at = r->msg.offset + uapi_align8(r->msg.n_bytes) +
                      uapi_align8(8 * r->msg.n_handles);

        memcpy(fds, pool + at, sizeof(int) * r->msg.n_fds);
}

static void assert_cloexec(int fd) {
        int flags = fcntl(fd, F_GETFD);

        assert_true(flags >= 0);
        assert_true(flags & FD_CLOEXEC);
}

static int memfd_with(const char *content) {
        int fd = memfd_create("test-uapi-fds", MFD_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
        return fd;
}

/* the pipe's last writer is gone: POLLHUP, and read(2) sees end of file */
static void assert_pipe_hung_up(int rfd) {
        char c;

        if (!(uapi_poll(rfd, POLLIN, 2000) & POLLHUP))
                fail_msg("a copy of the pipe's write end is still open somewhere");
        assert_int_equal(read(rfd, &c, 1), 0);
}

/*
 * INSTALL_FDS: a pipe read end and a memfd, behind one handle; the numbers
 * are in the fd area after the handle area, both work and are O_CLOEXEC.
 */
static void test_fds_install(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        struct stat st_sent, st_got;
        char buf[16] = {};
        int a, b, p[2], m, fds[2], got[2];
        uint64_t h;
        unsigned int n;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        m = memfd_with("memfd-data");
        fds[0] = p[0];
        fds[1] = m;
        /* 3 bytes and one handle: the fd area is at 8 + 8 */
        assert_int_equal(send_fds(b, &h, 1, NULL, "fd!", 3, &h, 1, fds, 2), 0);
        close(p[0]);
        close(m);

        n = test_count_fds(0);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        uapi_assert_data(&r, NODE, 3);
        assert_int_equal(r.msg.flags, 0);
        assert_int_equal(r.msg.n_handles, 1);
        assert_int_equal(r.msg.n_fds, 2);
        assert_memory_equal(uapi_pool(f, a) + r.msg.offset, "fd!", 3);
        /* the owner gets its own node back under its own ID */
        assert_int_equal(uapi_slice_handle(uapi_pool(f, a), &r, 0), NODE);

        /* exactly the two fds appeared */
        assert_int_equal(test_count_fds(0), n + 2);
        slice_fds(uapi_pool(f, a), &r, got);
        assert_true(got[0] >= 0);
        assert_true(got[1] >= 0);
        assert_true(got[0] != got[1]);
        assert_true(got[0] != p[1]);
        assert_cloexec(got[0]);
        assert_cloexec(got[1]);

        /* the sender writes the pipe, the receiver reads it */
        assert_int_equal(fstat(p[1], &st_sent), 0);
        assert_int_equal(fstat(got[0], &st_got), 0);
        assert_int_equal(st_sent.st_ino, st_got.st_ino);
        assert_int_equal(write(p[1], "ping", 4), 4);
        assert_int_equal(read(got[0], buf, sizeof(buf)), 4);
        assert_memory_equal(buf, "ping", 4);
        assert_int_equal(pread(got[1], buf, sizeof(buf), 0), 10);
        assert_memory_equal(buf, "memfd-data", 10);

        close(got[0]);
        close(got[1]);
        close(p[1]);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        /* the reference the message added to the owner handle */
        assert_int_equal(uapi_release(a, NODE), 0);
        uapi_expect_empty(a);
        uapi_finish(f);
}

/*
 * Without INSTALL_FDS: n_fds is 0, no descriptor appears, the fd area is not
 * written, and the fds are closed (the pipe's only writer goes away).
 */
static void test_fds_no_install(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        int32_t area = -1;
        int a, b, p[2], fds[2];
        uint64_t h;
        unsigned int n;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        fds[0] = p[1];
        fds[1] = p[1];
        /* the same fd twice is two fds */
        assert_int_equal(send_fds(b, &h, 1, NULL, "no-fds!!", 8, NULL, 0, fds, 2), 0);
        close(p[1]);

        n = test_count_fds(0);
        assert_int_equal(uapi_recv(a, 0, &r), 0);
        uapi_assert_data(&r, NODE, 8);
        assert_int_equal(r.msg.n_fds, 0);
        assert_int_equal(r.msg.n_handles, 0);
        assert_int_equal(test_count_fds(0), n);
        /* a fresh pool: the first slice is at 0 and its fd area still zero */
        assert_int_equal(r.msg.offset, 0);
        memcpy(&area, uapi_pool(f, a) + r.msg.offset + 8, sizeof(area));
        assert_int_equal(area, 0);
        memcpy(&area, uapi_pool(f, a) + r.msg.offset + 12, sizeof(area));
        assert_int_equal(area, 0);

        /* the RECV closed them: nobody holds the write end any more */
        assert_pipe_hung_up(p[0]);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        assert_int_equal(test_count_fds(0), n);
        close(p[0]);
        uapi_expect_empty(a);
        uapi_finish(f);
}

/* AF_UNIX sockets are EOPNOTSUPP, peer connections included; nothing is sent */
static void test_fds_unix_refused(void **state) {
        UapiFixture *f = *state;
        static const int types[] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };
        int a, b, sv[2], p[2], fds[2];
        uint64_t h;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);

        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); ++i) {
                assert_int_equal(socketpair(AF_UNIX, types[i] | SOCK_CLOEXEC, 0, sv), 0);
                assert_int_equal(send_fds(b, &h, 1, NULL, "x", 1, NULL, 0, &sv[0], 1),
                                 -EOPNOTSUPP);
                /* a good fd first changes nothing: the whole send fails */
                fds[0] = p[0];
                fds[1] = sv[1];
                assert_int_equal(send_fds(b, &h, 1, NULL, "x", 1, NULL, 0, fds, 2),
                                 -EOPNOTSUPP);
                close(sv[0]);
                close(sv[1]);
        }

        /* a peer's connection is an AF_UNIX socket: the receiver's and the sender's */
        assert_int_equal(send_fds(b, &h, 1, NULL, "x", 1, NULL, 0, &a, 1), -EOPNOTSUPP);
        assert_int_equal(send_fds(b, &h, 1, NULL, "x", 1, NULL, 0, &b, 1), -EOPNOTSUPP);

        close(p[0]);
        close(p[1]);
        uapi_expect_empty(a);
        uapi_finish(f);
}

/* an AF_UNIX socket opened O_PATH is accepted, and so is a non-AF_UNIX socket */
static void test_fds_unix_opath(void **state) {
        UapiFixture *f = *state;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct bus1_cmd_recv r;
        char proc[64];
        int a, b, s, sv[2], fds[3], got[3], domain;
        socklen_t len = sizeof(domain);
        struct stat st;
        uint64_t h;
        unsigned int n;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);

        /* a bound socket, opened by path */
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/opath", f->broker.dir);
        s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(s >= 0);
        assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
        fds[0] = open(sa.sun_path, O_PATH | O_CLOEXEC);
        /* the O_PATH descriptor outlives the name; leave nothing behind */
        unlink(sa.sun_path);
        assert_true(fds[0] >= 0);

        /* an unbound one, re-opened O_PATH through /proc */
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", sv[0]);
        fds[1] = open(proc, O_PATH | O_CLOEXEC);
        assert_true(fds[1] >= 0);

        /* a socket of another family */
        fds[2] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(fds[2] >= 0);

        assert_int_equal(send_fds(b, &h, 1, NULL, "opath", 5, NULL, 0, fds, 3), 0);
        for (size_t i = 0; i < 3; ++i)
                close(fds[i]);

        n = test_count_fds(0);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        uapi_assert_data(&r, NODE, 5);
        assert_int_equal(r.msg.n_fds, 3);
        assert_int_equal(test_count_fds(0), n + 3);
        slice_fds(uapi_pool(f, a), &r, got);
        for (size_t i = 0; i < 2; ++i) {
                assert_true(fcntl(got[i], F_GETFL) & O_PATH);
                assert_int_equal(fstat(got[i], &st), 0);
                assert_true(S_ISSOCK(st.st_mode));
                assert_cloexec(got[i]);
        }
        assert_int_equal(getsockopt(got[2], SOL_SOCKET, SO_DOMAIN, &domain, &len), 0);
        assert_int_equal(domain, AF_INET);
        assert_cloexec(got[2]);
        for (size_t i = 0; i < 3; ++i)
                close(got[i]);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);

        close(s);
        close(sv[0]);
        close(sv[1]);
        uapi_expect_empty(a);
        uapi_finish(f);
}

/* a descriptor that is not open is EBADF; nothing is sent */
static void test_fds_bad(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_send s;
        int a, b, p[2], fds[2];
        uint64_t h;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        close(p[1]);    /* p[1] is now a number nobody has open */

        fds[0] = -1;
        assert_int_equal(send_fds(b, &h, 1, NULL, "x", 1, NULL, 0, fds, 1), -EBADF);
        fds[0] = p[1];
        assert_int_equal(send_fds(b, &h, 1, NULL, "x", 1, NULL, 0, fds, 1), -EBADF);
        fds[0] = p[0];
        fds[1] = p[1];
        assert_int_equal(send_fds(b, &h, 1, NULL, "x", 1, NULL, 0, fds, 2), -EBADF);
        fds[0] = INT32_MAX;
        assert_int_equal(send_fds(b, &h, 1, NULL, "x", 1, NULL, 0, fds, 1), -EBADF);

        /* fds counted but no array */
        s = (struct bus1_cmd_send){
                .ptr_destinations = (uintptr_t)&h,
                .n_destinations = 1,
                .n_fds = 1,
        };
        assert_int_equal(bus1_uapi_ioctl(b, BUS1_CMD_SEND, &s), -EFAULT);

        close(p[0]);
        uapi_expect_empty(a);
        uapi_finish(f);
}

/* BUS1_FD_MAX fds fit one message and all work; one more is EMSGSIZE */
static void test_fds_max(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        int fds[BUS1_FD_MAX + 2], got[BUS1_FD_MAX];
        int a, b;
        uint64_t h;
        unsigned int n;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);

        /* 129 pipes: read end at even, write end at odd indices */
        for (size_t i = 0; i < BUS1_FD_MAX + 2; i += 2)
                assert_int_equal(pipe2(fds + i, O_CLOEXEC), 0);

        assert_int_equal(send_fds(b, &h, 1, NULL, "257", 3, NULL, 0, fds, BUS1_FD_MAX + 1),
                         -EMSGSIZE);
        uapi_expect_empty(a);
        assert_int_equal(send_fds(b, &h, 1, NULL, "256", 3, NULL, 0, fds, BUS1_FD_MAX), 0);
        for (size_t i = 0; i < BUS1_FD_MAX + 2; ++i)
                close(fds[i]);

        n = test_count_fds(0);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        uapi_assert_data(&r, NODE, 3);
        assert_int_equal(r.msg.n_fds, BUS1_FD_MAX);
        assert_int_equal(test_count_fds(0), n + BUS1_FD_MAX);
        slice_fds(uapi_pool(f, a), &r, got);

        for (size_t i = 0; i < BUS1_FD_MAX; ++i) {
                assert_true(got[i] >= 0);
                assert_cloexec(got[i]);
                for (size_t j = 0; j < i; ++j)
                        assert_true(got[i] != got[j]);
        }
        /* every pipe works, in slice order */
        for (size_t i = 0; i < BUS1_FD_MAX; i += 2) {
                uint8_t c = (uint8_t)i, d = 0;

                assert_int_equal(write(got[i + 1], &c, 1), 1);
                assert_int_equal(read(got[i], &d, 1), 1);
                assert_int_equal(d, c);
        }
        for (size_t i = 0; i < BUS1_FD_MAX; ++i)
                close(got[i]);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        uapi_expect_empty(a);
        uapi_finish(f);
}

/* one message with fds to three receivers: each gets working fds of its own */
static void test_fds_multicast(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        struct stat st;
        uint64_t dst[3], errors[3] = { 99, 99, 99 };
        int s, rcv[3], p[2], fds[2], got[3][2];
        ino_t memfd_ino = 0;
        char buf[8] = {};
        unsigned int n;

        s = uapi_peer(f);
        for (size_t i = 0; i < 3; ++i) {
                rcv[i] = uapi_peer(f);
                dst[i] = uapi_give(rcv[i], NODE, s);
        }

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        fds[0] = memfd_with("shared");
        fds[1] = p[1];
        assert_int_equal(send_fds(s, dst, 3, errors, "multi", 5, NULL, 0, fds, 2), 0);
        for (size_t i = 0; i < 3; ++i)
                assert_int_equal(errors[i], 0);
        close(fds[0]);
        close(p[1]);

        n = test_count_fds(0);
        for (size_t i = 0; i < 3; ++i) {
                assert_int_equal(uapi_recv(rcv[i], BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
                uapi_assert_data(&r, NODE, 5);
                assert_memory_equal(uapi_pool(f, rcv[i]) + r.msg.offset, "multi", 5);
                assert_int_equal(r.msg.n_fds, 2);
                assert_int_equal(test_count_fds(0), n + 2 * (i + 1));
                slice_fds(uapi_pool(f, rcv[i]), &r, got[i]);
                for (size_t j = 0; j < 2; ++j) {
                        assert_cloexec(got[i][j]);
                        for (size_t k = 0; k < i; ++k)
                                assert_true(got[i][j] != got[k][0] && got[i][j] != got[k][1]);
                }
                assert_int_equal(fstat(got[i][0], &st), 0);
                if (i == 0)
                        memfd_ino = st.st_ino;
                assert_int_equal(st.st_ino, memfd_ino);
                assert_int_equal(pread(got[i][0], buf, sizeof(buf), 0), 6);
                assert_memory_equal(buf, "shared", 6);
                assert_int_equal(write(got[i][1], &"abc"[i], 1), 1);
                assert_int_equal(uapi_slice_release(rcv[i], r.msg.offset), 0);
        }

        assert_int_equal(read(p[0], buf, sizeof(buf)), 3);
        assert_memory_equal(buf, "abc", 3);
        for (size_t i = 0; i < 3; ++i) {
                close(got[i][0]);
                close(got[i][1]);
        }
        assert_int_equal(test_count_fds(0), n);
        /* the broker kept no copy once everybody received */
        assert_pipe_hung_up(p[0]);
        close(p[0]);
        for (size_t i = 0; i < 3; ++i)
                uapi_expect_empty(rcv[i]);
        uapi_finish(f);
}

/*
 * In-flight fds are charged to the receiver until it dequeues the message
 * (docs/model.md §8), and dequeuing is the RECV (docs/model.md §10: quota returned at dequeue,
 * and section 7 across side channels): once a's RECV returned, b's next
 * send of an fd fits again, with or without INSTALL_FDS.
 */
static void test_fds_quota_at_dequeue(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        int a, b, p[2], got;
        uint64_t h;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        /* a holds at most one fd in flight */
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32, 1),
                         0);

        assert_int_equal(send_fds(b, &h, 1, NULL, "one", 3, NULL, 0, &p[0], 1), 0);
        assert_int_equal(send_fds(b, &h, 1, NULL, "two", 3, NULL, 0, &p[0], 1), -EDQUOT);
        for (int i = 0; i < 4; ++i) {
                uint64_t flags = i % 2 ? BUS1_RECV_FLAG_INSTALL_FDS : 0;
                int res;

                assert_int_equal(uapi_recv(a, flags, &r), 0);
                uapi_assert_data(&r, NODE, 3);
                assert_int_equal(r.msg.n_fds, i % 2 ? 1 : 0);
                /* a received it, and does nothing else: b may send the next fd */
                res = send_fds(b, &h, 1, NULL, "one", 3, NULL, 0, &p[0], 1);
                if (res != 0)
                        fail_msg("round %d (%s): the send after a's RECV: %s", i,
                                 i % 2 ? "INSTALL_FDS" : "no INSTALL_FDS", strerror(-res));
                if (i % 2) {
                        slice_fds(uapi_pool(f, a), &r, &got);
                        close(got);
                }
                assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        }
        assert_int_equal(uapi_recv(a, 0, &r), 0);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        close(p[0]);
        close(p[1]);
        uapi_expect_empty(a);
        uapi_finish(f);
}

/*
 * The descriptor of bus1_uapi_pool_fd(): a writable shared mapping fails,
 * write(2) and ftruncate(2) fail and change nothing, a read-only shared
 * mapping works, sees what the broker writes, and cannot be made writable.
 *
 * The kernel gave EPERM for a writable mapping; the client here has a
 * read-only descriptor, for which Linux answers EACCES (bus1(7)
 * DIFFERENCES). Either is accepted.
 */
static void test_pool_readonly(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        struct stat st0, st1;
        const uint8_t *map;
        int a, b, pool_fd;
        uint64_t h;
        void *p;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        pool_fd = bus1_uapi_pool_fd(a);
        assert_true(pool_fd >= 0);
        assert_int_equal(bus1_uapi_pool_fd(pool_fd), -EBADF);
        assert_int_equal(fstat(pool_fd, &st0), 0);

        errno = 0;
        p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, pool_fd, 0);
        assert_true(p == MAP_FAILED);
        assert_true(errno == EPERM || errno == EACCES);
        errno = 0;
        p = mmap(NULL, 4096, PROT_WRITE, MAP_SHARED, pool_fd, 0);
        assert_true(p == MAP_FAILED);
        assert_true(errno == EPERM || errno == EACCES);

        /* the read-only descriptor (EBADF) or the seal (EPERM) */
        errno = 0;
        assert_int_equal(write(pool_fd, "x", 1), -1);
        assert_true(errno == EBADF || errno == EPERM);
        errno = 0;
        assert_int_equal(pwrite(pool_fd, "x", 1, 0), -1);
        assert_true(errno == EBADF || errno == EPERM);
        /* not writable (EINVAL) or sealed (EPERM): no shrinking, no growing */
        errno = 0;
        assert_int_equal(ftruncate(pool_fd, 0), -1);
        assert_true(errno == EINVAL || errno == EPERM);
        errno = 0;
        assert_int_equal(ftruncate(pool_fd, st0.st_size + 1024 * 1024), -1);
        assert_true(errno == EINVAL || errno == EPERM);
        assert_int_equal(fstat(pool_fd, &st1), 0);
        assert_int_equal(st1.st_size, st0.st_size);

        /* the read-only map sees the broker's writes */
        map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, pool_fd, 0);
        assert_true(map != MAP_FAILED);
        assert_int_equal(uapi_send_str(b, h, "visible"), 0);
        r = (struct bus1_cmd_recv){ .max_offset = 4096 };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), 0);
        assert_int_equal(r.msg.n_bytes, 7);
        assert_memory_equal(map + r.msg.offset, "visible", 7);
        errno = 0;
        assert_int_equal(mprotect((void *)map, 4096, PROT_READ | PROT_WRITE), -1);
        assert_int_equal(errno, EACCES);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        munmap((void *)map, 4096);
        uapi_finish(f);
}

/*
 * The pool can be re-opened through /proc. Its mode (0400) refuses a
 * writable descriptor to everybody but root; root can write it (no write
 * seal: the broker punches holes into idle pools), but nobody can shrink
 * or grow it.
 */
static void test_pool_reopen(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        struct stat st0, st1;
        char path[64];
        int a, b, fd;
        uint64_t h;
        void *p;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        /* the pool file has pages now */
        assert_int_equal(uapi_send_str(b, h, "in the pool"), 0);
        assert_int_equal(fstat(bus1_uapi_pool_fd(a), &st0), 0);
        assert_true(st0.st_size > 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", bus1_uapi_pool_fd(a));
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
                /* refused outright: nothing more to try */
                assert_true(errno == EACCES || errno == EPERM);
                uapi_finish(f);
                return;
        }

        /* only root gets this far (CAP_DAC_OVERRIDE) */
        assert_int_equal(geteuid(), 0);
        p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED)
                munmap(p, 4096);
        errno = 0;
        assert_int_equal(ftruncate(fd, 0), -1);
        assert_int_equal(errno, EPERM);
        errno = 0;
        assert_int_equal(ftruncate(fd, (off_t)UAPI_POOL_SIZE * 2), -1);
        assert_int_equal(errno, EPERM);
        assert_int_equal(fstat(fd, &st1), 0);
        assert_int_equal(st1.st_size, st0.st_size);
        close(fd);

        /* the broker's data is intact and the pool still serves */
        assert_int_equal(uapi_recv(a, 0, &r), 0);
        assert_memory_equal(uapi_pool(f, a) + r.msg.offset, "in the pool", 11);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        uapi_finish(f);
}

/*
 * ERANGE: a peer that maps only the first 16 KiB receives small messages;
 * a slice reaching past max_offset is ERANGE (RECV and PEEK), stays queued,
 * and is received once max_offset covers the whole slice, to the byte.
 * Notifications are never ERANGE.
 */
static void test_pool_erange(void **state) {
        UapiFixture *f = *state;
        static uint8_t big[20000];
        struct bus1_cmd_recv r;
        const uint8_t *map;
        uint64_t h, off, big_off;
        char msg[100];
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        map = mmap(NULL, 16384, PROT_READ, MAP_SHARED, bus1_uapi_pool_fd(a), 0);
        assert_true(map != MAP_FAILED);

        for (int i = 0; i < 20; ++i) {
                memset(msg, 'a' + i, sizeof(msg));
                assert_int_equal(uapi_send(b, &h, 1, 0, NULL, msg, sizeof(msg), NULL, 0), 0);
        }
        for (int i = 0; i < 20; ++i) {
                r = (struct bus1_cmd_recv){ .max_offset = 16384 };
                assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), 0);
                assert_int_equal(r.msg.n_bytes, sizeof(msg));
                assert_true(r.msg.offset + 104 <= 16384);
                memset(msg, 'a' + i, sizeof(msg));
                assert_memory_equal(map + r.msg.offset, msg, sizeof(msg));
                assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        }

        memset(big, 'B', sizeof(big));
        assert_int_equal(uapi_send(b, &h, 1, 0, NULL, big, sizeof(big), NULL, 0), 0);
        assert_int_equal(uapi_send_str(b, h, "small"), 0);

        for (int i = 0; i < 2; ++i) {
                r = (struct bus1_cmd_recv){ .max_offset = 16384 };
                assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), -ERANGE);
                r = (struct bus1_cmd_recv){ .flags = BUS1_RECV_FLAG_PEEK, .max_offset = 16384 };
                assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), -ERANGE);
        }

        /* the big one is still first; to the byte */
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_int_equal(r.msg.n_bytes, sizeof(big));
        off = big_off = r.msg.offset;
        r = (struct bus1_cmd_recv){ .max_offset = off + sizeof(big) - 1 };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), -ERANGE);
        r = (struct bus1_cmd_recv){ .max_offset = off + sizeof(big) };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), 0);
        assert_int_equal(r.msg.offset, off);
        assert_int_equal(r.msg.n_bytes, sizeof(big));
        assert_memory_equal(uapi_pool(f, a) + off, big, sizeof(big));

        /* "small" takes an 8-byte slice */
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), 0);
        off = r.msg.offset;
        r = (struct bus1_cmd_recv){ .max_offset = off + 7 };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), -ERANGE);
        r = (struct bus1_cmd_recv){ .max_offset = off + 8 };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), 0);
        assert_int_equal(r.msg.n_bytes, 5);
        assert_memory_equal(uapi_pool(f, a) + off, "small", 5);
        assert_int_equal(uapi_slice_release(a, off), 0);
        assert_int_equal(uapi_slice_release(a, big_off), 0);

        /* a notification with nothing mapped */
        assert_int_equal(uapi_release(b, h), 0);
        r = (struct bus1_cmd_recv){ .max_offset = 0 };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), 0);
        uapi_assert_notification(&r, BUS1_MSG_NODE_RELEASE, NODE);

        munmap((void *)map, 16384);
        uapi_expect_empty(a);
        uapi_finish(f);
}

/* the slice of a message with fds includes its fd area: ERANGE counts it */
static void test_pool_erange_fds(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        int a, b, p[2], got;
        uint64_t h, off;
        unsigned int n;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(send_fds(b, &h, 1, NULL, "abc", 3, NULL, 0, &p[1], 1), 0);
        close(p[1]);

        /* 8 payload bytes + 8 for one fd number */
        off = 0;
        n = test_count_fds(0);
        for (int i = 0; i < 2; ++i) {
                r = (struct bus1_cmd_recv){ .flags = BUS1_RECV_FLAG_INSTALL_FDS,
                                            .max_offset = off + 15 };
                assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), -ERANGE);
                r = (struct bus1_cmd_recv){ .max_offset = off + 15 };
                assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), -ERANGE);
                assert_int_equal(test_count_fds(0), n);
        }
        r = (struct bus1_cmd_recv){ .flags = BUS1_RECV_FLAG_INSTALL_FDS, .max_offset = off + 16 };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), 0);
        assert_int_equal(r.msg.offset, off);
        assert_int_equal(r.msg.n_fds, 1);
        assert_int_equal(test_count_fds(0), n + 1);
        slice_fds(uapi_pool(f, a), &r, &got);
        close(got);
        assert_int_equal(uapi_slice_release(a, off), 0);
        assert_pipe_hung_up(p[0]);
        close(p[0]);
        uapi_expect_empty(a);
        uapi_finish(f);
}

#define T(_fn) cmocka_unit_test_setup_teardown(_fn, uapi_setup, uapi_teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_fds_install),
                T(test_fds_no_install),
                T(test_fds_unix_refused),
                T(test_fds_unix_opath),
                T(test_fds_bad),
                T(test_fds_max),
                T(test_fds_multicast),
                T(test_fds_quota_at_dequeue),
                T(test_pool_readonly),
                T(test_pool_reopen),
                T(test_pool_erange),
                T(test_pool_erange_fds),
        };

        /* TEST_FILTER=test_name runs one test (cmocka pattern) */
        if (getenv("TEST_FILTER"))
                cmocka_set_test_filter(getenv("TEST_FILTER"));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
