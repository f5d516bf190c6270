/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Native API: <bus1/client.h> against a real broker
 *
 * Every public function of the native API is called here at least once:
 * peers and their limits, sending with every kind of attachment, the
 * message accessors (read back against the slice layout of docs/model.md
 * §5.3), fd stealing, PEEK, seeds, handles and nodes, sd-event dispatch
 * (handler errors, detaching, disconnecting and unreferencing from inside
 * the handler, at most 64 entries per dispatch, a broker that goes away),
 * threads sharing a peer, adopting
 * a connection in a child that this binary re-executes, and the two
 * example programs running end to end.
 *
 * Delivery (as test-uapi-delivery.c does through the UAPI): a receive whose
 * fds do not fit the descriptor table is -EMFILE and dequeues nothing, and
 * the same message arrives once descriptors are free; and a peer used
 * across fork() belongs to one process at a time. In a forked child, the
 * first call on an inherited peer adopts the connection: the child then
 * sees every entry still queued at the broker, including entries the
 * parent's library had read ahead but not delivered. From then on every
 * call of the parent on that peer fails with -EBADFD, so the parent never
 * receives what the child received. A child that never touches a peer
 * leaves it to the parent.
 *
 * Each test starts its own broker (util-broker.c) and ends with
 * native_finish(), which drops every peer, checks that the test process
 * holds the descriptors it had at the start, and stops the broker, which
 * must have closed everything too.
 *
 * Invoked as `test-native --adopt FD` the binary is the child of
 * test_adopt_child() instead.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <systemd/sd-event.h>
#include "bus1/client.h"
#include "util-broker.h"
#include "util-delivery.h"

#define NATIVE_PEERS_MAX 16
#define NATIVE_REMOTE_BITS (BUS1_HANDLE_FLAG_MANAGED | BUS1_HANDLE_FLAG_REMOTE)

typedef struct NativeFixture {
        TestBroker broker;
        bool running;
        unsigned int n_fds;
        Bus1Peer *peers[NATIVE_PEERS_MAX];
} NativeFixture;

static uint64_t native_align8(uint64_t v) {
        return (v + 7) & ~(uint64_t)7;
}

static int native_setup(void **state) {
        NativeFixture *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        test_broker_start(&f->broker);
        f->running = true;
        f->n_fds = test_count_fds(0);
        *state = f;
        return 0;
}

/* only does anything if the test failed before native_finish() */
static int native_teardown(void **state) {
        NativeFixture *f = *state;
        int status;

        if (!f)
                return 0;
        for (size_t i = 0; i < NATIVE_PEERS_MAX; ++i)
                f->peers[i] = bus1_peer_unref(f->peers[i]);
        if (f->running) {
                kill(f->broker.pid, SIGKILL);
                waitpid(f->broker.pid, &status, 0);
                unlink(f->broker.path);
                rmdir(f->broker.dir);
                unsetenv("BUS1_ADDRESS");
        }
        free(f);
        *state = NULL;
        return 0;
}

/* a new peer on the test's broker, dropped by native_finish() */
static Bus1Peer *native_peer(NativeFixture *f) {
        size_t i;

        for (i = 0; i < NATIVE_PEERS_MAX && f->peers[i]; ++i)
                ;
        assert_true(i < NATIVE_PEERS_MAX);
        assert_int_equal(bus1_peer_new(&f->peers[i], NULL), 0);
        return f->peers[i];
}

/* forget @peer: the caller has dropped (or will drop) its reference */
static void native_forget(NativeFixture *f, Bus1Peer *peer) {
        for (size_t i = 0; i < NATIVE_PEERS_MAX; ++i)
                if (f->peers[i] == peer)
                        f->peers[i] = NULL;
}

static void native_finish(NativeFixture *f) {
        for (size_t i = 0; i < NATIVE_PEERS_MAX; ++i)
                f->peers[i] = bus1_peer_unref(f->peers[i]);
        assert_int_equal(test_count_fds(0), f->n_fds);
        test_broker_stop(&f->broker);
        f->running = false;
}

/* a transfer that must succeed; returns the ID @to got */
static uint64_t native_give(Bus1Peer *from, uint64_t src, Bus1Peer *to) {
        uint64_t id = 0;

        assert_int_equal(bus1_peer_handle_transfer(from, src, to, &id), 0);
        return id;
}

static int native_send(Bus1Peer *from, uint64_t dst, const char *text, const uint64_t *handles,
                       size_t n_handles, const int *fds, size_t n_fds) {
        struct iovec vec = { .iov_base = (void *)text, .iov_len = text ? strlen(text) : 0 };

        return bus1_peer_send(from, 0, &dst, 1, NULL, &vec, text ? 1 : 0, handles, n_handles,
                              fds, n_fds);
}

static Bus1Message *native_recv(Bus1Peer *peer, uint64_t flags) {
        Bus1Message *m = NULL;

        assert_int_equal(bus1_peer_recv(peer, flags, &m), 0);
        assert_non_null(m);
        return m;
}

static void native_expect_empty(Bus1Peer *peer) {
        Bus1Message *m = NULL;

        assert_int_equal(bus1_peer_recv(peer, 0, &m), -EAGAIN);
        assert_null(m);
}

/* a DATA message to @dst with payload @text; returns it */
static Bus1Message *native_expect_data(Bus1Peer *peer, uint64_t flags, uint64_t dst,
                                       const char *text) {
        Bus1Message *m = native_recv(peer, flags);
        const void *data;
        size_t size;

        assert_int_equal(bus1_message_get_type(m), BUS1_MSG_DATA);
        assert_int_equal(bus1_message_get_destination(m), dst);
        data = bus1_message_get_data(m, &size);
        assert_int_equal(size, strlen(text));
        assert_memory_equal(data, text, size);
        return m;
}

static void native_expect_notification(Bus1Peer *peer, unsigned int type, uint64_t dst) {
        Bus1Message *m = native_recv(peer, 0);
        uid_t uid;
        gid_t gid;
        pid_t pid, tid;
        size_t size = 1;

        assert_int_equal(bus1_message_get_type(m), type);
        assert_int_equal(bus1_message_get_destination(m), dst);
        bus1_message_get_creds(m, &uid, &gid, &pid, &tid);
        assert_int_equal(uid, (uid_t)-1);
        assert_int_equal(gid, (gid_t)-1);
        assert_int_equal(pid, 0);
        assert_int_equal(tid, 0);
        assert_null(bus1_message_get_data(m, &size));
        assert_int_equal(size, 0);
        assert_int_equal(bus1_message_get_n_handles(m), 0);
        assert_int_equal(bus1_message_get_n_fds(m), 0);
        assert_null(bus1_message_get_secctx(m, NULL));
        bus1_message_unref(m);
}

/* the slice offset of a DATA message, from its payload pointer */
static uint64_t native_offset(Bus1Peer *peer, Bus1Message *m) {
        const uint8_t *pool = bus1_peer_get_pool(peer, NULL);

        return (uint64_t)((const uint8_t *)bus1_message_get_data(m, NULL) - pool);
}

static bool native_fd_is_open(int fd) {
        return fcntl(fd, F_GETFD) >= 0;
}

static void test_peer_lifecycle(void **state) {
        NativeFixture *f = *state;
        Bus1PeerLimits limits, defaults;
        Bus1Message *m = NULL;
        struct pollfd pfd;
        uint64_t peer_flags = 0xdead, id;
        Bus1Peer *a, *b, *c;
        size_t size = 0;

        /* explicit address, and NULL for $BUS1_ADDRESS */
        assert_int_equal(bus1_peer_new(&f->peers[0], f->broker.path), 0);
        a = f->peers[0];
        b = native_peer(f);
        assert_int_equal(bus1_peer_new(&c, "/nonexistent/bus1/socket"), -ENOENT);
        assert_int_equal(bus1_peer_new(NULL, NULL), -EINVAL);

        /* references */
        assert_ptr_equal(bus1_peer_ref(a), a);
        assert_null(bus1_peer_unref(a));
        assert_null(bus1_peer_ref(NULL));
        assert_null(bus1_peer_unref(NULL));

        /* the pool is mapped whole; the descriptor is writable, not readable */
        assert_non_null(bus1_peer_get_pool(a, &size));
        assert_true(size > 0);
        assert_non_null(bus1_peer_get_pool(a, NULL));
        pfd = (struct pollfd){ .fd = bus1_peer_get_fd(a), .events = POLLIN | POLLOUT };
        assert_true(pfd.fd >= 0);
        assert_int_equal(poll(&pfd, 1, 0), 1);
        assert_int_equal(pfd.revents, POLLOUT);
        assert_true(fcntl(pfd.fd, F_GETFD) & FD_CLOEXEC);

        /* query and reset */
        assert_int_equal(bus1_peer_query(a, NULL, NULL), 0);
        assert_int_equal(bus1_peer_query(a, &peer_flags, &defaults), 0);
        assert_int_equal(peer_flags, 0);
        assert_true(defaults.max_slices > 0 && defaults.max_slices <= INT_MAX);
        assert_true(defaults.max_handles > 0 && defaults.max_inflight_bytes > 0);
        assert_true(defaults.max_inflight_fds > 0);

        limits = (Bus1PeerLimits){ UINT32_MAX, 100, UINT32_MAX, 7 };
        assert_int_equal(bus1_peer_reset(a, 0, BUS1_PEER_FLAG_WANT_SECCTX, &limits), 0);
        assert_int_equal(bus1_peer_query(a, &peer_flags, &limits), 0);
        assert_int_equal(peer_flags, BUS1_PEER_FLAG_WANT_SECCTX);
        assert_int_equal(limits.max_slices, defaults.max_slices);
        assert_int_equal(limits.max_handles, 100);
        assert_int_equal(limits.max_inflight_bytes, defaults.max_inflight_bytes);
        assert_int_equal(limits.max_inflight_fds, 7);
        /* UINT64_MAX and NULL keep everything */
        assert_int_equal(bus1_peer_reset(a, 0, UINT64_MAX, NULL), 0);
        assert_int_equal(bus1_peer_query(a, &peer_flags, &limits), 0);
        assert_int_equal(peer_flags, BUS1_PEER_FLAG_WANT_SECCTX);
        assert_int_equal(limits.max_handles, 100);
        assert_int_equal(bus1_peer_reset(a, 0, 0, NULL), 0);
        assert_int_equal(bus1_peer_query(a, &peer_flags, NULL), 0);
        assert_int_equal(peer_flags, 0);
        /* bad flags and limits */
        limits = (Bus1PeerLimits){ (uint32_t)INT_MAX + 1, UINT32_MAX, UINT32_MAX, UINT32_MAX };
        assert_int_equal(bus1_peer_reset(a, 0, UINT64_MAX, &limits), -EINVAL);
        assert_int_equal(bus1_peer_reset(a, 4, UINT64_MAX, NULL), -EINVAL);
        assert_int_equal(bus1_peer_reset(a, 0, 2, NULL), -EINVAL);
        assert_int_equal(bus1_peer_query(a, NULL, &limits), 0);
        assert_int_equal(limits.max_handles, 100);

        /* a limit the broker enforces: one slice */
        limits = (Bus1PeerLimits){ 1, UINT32_MAX, UINT32_MAX, UINT32_MAX };
        assert_int_equal(bus1_peer_reset(a, 0, UINT64_MAX, &limits), 0);
        id = native_give(a, 0x100, b);
        assert_int_equal(native_send(b, id, "1", NULL, 0, NULL, 0), 0);
        assert_int_equal(native_send(b, id, "2", NULL, 0, NULL, 0), -EDQUOT);
        /* FLUSH drops the queued message, which frees the slice */
        assert_int_equal(bus1_peer_reset(a, BUS1_PEER_RESET_FLAG_FLUSH, UINT64_MAX, NULL), 0);
        native_expect_empty(a);

        /* disconnect: everything after it is ESHUTDOWN, the fd only hangs up */
        assert_int_equal(bus1_peer_disconnect(a), 0);
        assert_int_equal(bus1_peer_disconnect(a), -ESHUTDOWN);
        assert_int_equal(bus1_peer_query(a, NULL, NULL), -ESHUTDOWN);
        assert_int_equal(bus1_peer_reset(a, 0, UINT64_MAX, NULL), -ESHUTDOWN);
        assert_int_equal(bus1_peer_recv(a, 0, &m), -ESHUTDOWN);
        assert_int_equal(bus1_peer_handle_release(a, 0x100), -ESHUTDOWN);
        assert_int_equal(native_send(a, 0x100, "x", NULL, 0, NULL, 0), -ESHUTDOWN);
        assert_int_equal(bus1_peer_nodes_destroy(a, 0, NULL, 0), -ESHUTDOWN);
        assert_int_equal(bus1_peer_handle_transfer(a, 0x200, NULL, &id), -ESHUTDOWN);
        assert_int_equal(bus1_peer_handle_transfer(b, 0x200, a, &id), -ESHUTDOWN);
        assert_int_equal(bus1_peer_get_fd(a), pfd.fd);
        pfd.revents = 0;
        assert_int_equal(poll(&pfd, 1, 0), 1);
        assert_int_equal(pfd.revents, POLLHUP);

        /* b's handle outlived the node a destroyed by disconnecting */
        native_expect_notification(b, BUS1_MSG_NODE_DESTROY, id);
        assert_int_equal(native_send(b, id, "3", NULL, 0, NULL, 0), -ESHUTDOWN);
        assert_int_equal(bus1_peer_handle_release(b, id), 0);
        native_expect_empty(b);

        native_finish(f);
}

static void test_message_accessors(void **state) {
        NativeFixture *f = *state;
        static const char part1[] = "hello, ", part2[] = "native world";
        struct iovec vecs[2] = {
                { .iov_base = (void *)part1, .iov_len = sizeof(part1) - 1 },
                { .iov_base = (void *)part2, .iov_len = sizeof(part2) - 1 },
        };
        uint64_t dst, handles[2] = { 0x200, 0x300 }, h0, h1, offset;
        const uint8_t *data;
        unsigned int n_fds_before;
        int p[2], q[2], fd, fd1, area[2];
        char buf[16];
        Bus1Message *m, *m2;
        Bus1Peer *a, *b;
        size_t size;
        uid_t uid;
        gid_t gid;
        pid_t pid, tid;

        a = native_peer(f);
        b = native_peer(f);
        dst = native_give(a, 0x100, b);
        assert_int_equal(dst & 7, NATIVE_REMOTE_BITS);

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(pipe2(q, O_CLOEXEC), 0);
        n_fds_before = test_count_fds(0);

        /* two iovecs, two new nodes of b, two fds; b keeps its own fds */
        {
                int fds[2] = { p[1], q[0] };

                assert_int_equal(bus1_peer_send(b, 0, &dst, 1, NULL, vecs, 2, handles, 2, fds,
                                                2), 0);
        }
        assert_true(native_fd_is_open(p[1]) && native_fd_is_open(q[0]));

        m = native_expect_data(a, 0, 0x100, "hello, native world");
        assert_int_equal(bus1_message_get_flags(m) & BUS1_MSG_FLAG_CONTINUE, 0);
        bus1_message_get_creds(m, &uid, &gid, &pid, &tid);
        assert_int_equal(uid, getuid());
        assert_int_equal(gid, getgid());
        assert_int_equal(pid, getpid());
        bus1_message_get_creds(m, NULL, NULL, NULL, NULL);
        assert_null(bus1_message_get_secctx(m, &size));
        assert_int_equal(size, 0);

        /* the handles: a's new IDs for b's nodes, in the slice after the payload */
        assert_int_equal(bus1_message_get_n_handles(m), 2);
        h0 = bus1_message_get_handle(m, 0);
        h1 = bus1_message_get_handle(m, 1);
        assert_int_equal(h0 & 7, NATIVE_REMOTE_BITS);
        assert_int_equal(h1 & 7, NATIVE_REMOTE_BITS);
        assert_true(h0 != h1);
        assert_int_equal(bus1_message_get_handle(m, 2), BUS1_HANDLE_INVALID);
        data = bus1_message_get_data(m, &size);
        offset = native_offset(a, m);
        assert_int_equal(offset % 8, 0);
        {
                uint64_t in_slice;

                memcpy(&in_slice, data + native_align8(size) + 8, sizeof(in_slice));
                assert_int_equal(in_slice, h1);
        }

        /* the fds: installed, O_CLOEXEC, their numbers in the slice's fd area */
        assert_int_equal(bus1_message_get_n_fds(m), 2);
        fd = bus1_message_get_fd(m, 0);
        fd1 = bus1_message_get_fd(m, 1);
        assert_true(fd >= 0 && fd1 >= 0);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        assert_int_equal(bus1_message_get_fd(m, 2), -1);
        memcpy(area, data + native_align8(size) + native_align8(8 * 2), sizeof(area));
        assert_int_equal(area[0], fd);
        assert_int_equal(area[1], fd1);
        assert_int_equal(test_count_fds(0), n_fds_before + 2);

        /* steal the first: it is ours now and works */
        assert_int_equal(bus1_message_steal_fd(m, 0), fd);
        assert_int_equal(bus1_message_steal_fd(m, 0), -1);
        assert_int_equal(bus1_message_get_fd(m, 0), -1);
        assert_int_equal(bus1_message_steal_fd(m, 5), -1);
        assert_int_equal(write(fd, "ok", 2), 2);
        close(fd);
        assert_int_equal(read(p[0], buf, sizeof(buf)), 2);
        assert_memory_equal(buf, "ok", 2);

        /* a second reference keeps everything; the last closes the other fd */
        assert_ptr_equal(bus1_message_ref(m), m);
        assert_null(bus1_message_unref(m));
        assert_true(native_fd_is_open(fd1));
        assert_null(bus1_message_unref(m));
        assert_null(bus1_message_unref(NULL));
        assert_null(bus1_message_ref(NULL));
        assert_int_equal(test_count_fds(0), n_fds_before);

        /* the slice went back: the next message takes the same offset */
        assert_int_equal(native_send(b, dst, "again", NULL, 0, NULL, 0), 0);
        m2 = native_expect_data(a, 0, 0x100, "again");
        assert_int_equal(native_offset(a, m2), offset);
        assert_int_equal(bus1_message_get_n_handles(m2), 0);
        assert_int_equal(bus1_message_get_n_fds(m2), 0);
        assert_int_equal(bus1_message_get_fd(m2, 0), -1);
        bus1_message_unref(m2);

        /* the handles are a's references: a can use and release them */
        assert_int_equal(native_send(a, h1, "to 0x300", NULL, 0, NULL, 0), 0);
        m2 = native_expect_data(b, 0, 0x300, "to 0x300");
        bus1_message_unref(m2);
        assert_int_equal(bus1_peer_handle_release(a, h0), 0);
        assert_int_equal(bus1_peer_handle_release(a, h0), -ENXIO);
        native_expect_notification(b, BUS1_MSG_NODE_RELEASE, 0x200);
        assert_int_equal(bus1_peer_handle_release(a, h1), 0);
        native_expect_notification(b, BUS1_MSG_NODE_RELEASE, 0x300);
        native_expect_empty(a);
        native_expect_empty(b);

        /* an empty message still has a slice, and no payload */
        assert_int_equal(native_send(b, dst, NULL, NULL, 0, NULL, 0), 0);
        m2 = native_recv(a, 0);
        assert_int_equal(bus1_message_get_type(m2), BUS1_MSG_DATA);
        assert_non_null(bus1_message_get_data(m2, &size));
        assert_int_equal(size, 0);
        bus1_message_unref(m2);

        close(p[0]);
        close(p[1]);
        close(q[0]);
        close(q[1]);
        native_finish(f);
}

static void test_send_errors(void **state) {
        NativeFixture *f = *state;
        uint64_t dst, dsts[2], errors[2] = { 99, 99 }, gone, node = 0x100;
        struct iovec vec = { .iov_base = "x", .iov_len = 1 };
        int sp[2], bad = 9999, fd;
        Bus1Peer *a, *b, *c;

        a = native_peer(f);
        b = native_peer(f);
        c = native_peer(f);
        dst = native_give(a, 0x100, b);

        /* zero destinations is a no-op, but creates the nodes it names */
        assert_int_equal(bus1_peer_send(b, 0, NULL, 0, errors, NULL, 0, &node, 1, NULL, 0), 0);
        assert_int_equal(bus1_peer_nodes_destroy(b, 0, &node, 1), 0);
        native_expect_notification(b, BUS1_MSG_NODE_DESTROY, 0x100);
        assert_int_equal(bus1_peer_handle_release(b, 0x100), 0);

        /* argument errors, found before anything is sent */
        assert_int_equal(bus1_peer_send(b, 4, &dst, 1, NULL, &vec, 1, NULL, 0, NULL, 0), -EINVAL);
        assert_int_equal(bus1_peer_send(b, 0, NULL, 1, NULL, &vec, 1, NULL, 0, NULL, 0), -EINVAL);
        assert_int_equal(bus1_peer_send(b, 0, &dst, 1, NULL, NULL, 1, NULL, 0, NULL, 0), -EINVAL);
        assert_int_equal(bus1_peer_send(b, 0, &dst, 1, NULL, &vec, 1, NULL, 1, NULL, 0), -EINVAL);
        assert_int_equal(bus1_peer_send(b, 0, &dst, 1, NULL, &vec, 1, NULL, 0, NULL, 1), -EINVAL);
        assert_int_equal(bus1_peer_send(b, 0, &dst, 1, NULL, &vec, 1025, NULL, 0, NULL, 0),
                         -EMSGSIZE);
        assert_int_equal(bus1_peer_send(b, 0, &dst, 1, NULL, &vec, 1, NULL, 0, &bad,
                                        BUS1_FD_MAX + 1), -EMSGSIZE);
        assert_int_equal(bus1_peer_send(b, BUS1_SEND_FLAG_SEED, &dst, 1, NULL, &vec, 1, NULL, 0,
                                        NULL, 0), -EINVAL);
        assert_int_equal(bus1_peer_send(b, BUS1_SEND_FLAG_SEED | BUS1_SEND_FLAG_CONTINUE, NULL, 0,
                                        NULL, &vec, 1, NULL, 0, NULL, 0), -EINVAL);
        /* an fd that is not open must not break the connection */
        assert_int_equal(native_send(b, dst, "x", NULL, 0, &bad, 1), -EBADF);

        /* the broker's errors */
        assert_int_equal(native_send(b, 0x1000 | NATIVE_REMOTE_BITS, "x", NULL, 0, NULL, 0),
                         -ENXIO);
        dsts[0] = dst;
        dsts[1] = dst;
        assert_int_equal(bus1_peer_send(b, 0, dsts, 2, NULL, &vec, 1, NULL, 0, NULL, 0),
                         -ENOTUNIQ);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        assert_int_equal(native_send(b, dst, "x", NULL, 0, &sp[0], 1), -EOPNOTSUPP);
        fd = bus1_peer_get_fd(c);
        assert_int_equal(native_send(b, dst, "x", NULL, 0, &fd, 1), -EOPNOTSUPP);
        close(sp[0]);
        close(sp[1]);
        native_expect_empty(a);

        /* atomic by default; CONTINUE keeps receiver-side errors per destination */
        gone = native_give(c, 0x100, b);
        assert_int_equal(bus1_peer_nodes_destroy(c, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES,
                                                 &node, 1), 0);
        dsts[0] = gone;
        dsts[1] = dst;
        assert_int_equal(bus1_peer_send(b, 0, dsts, 2, errors, &vec, 1, NULL, 0, NULL, 0),
                         -EHOSTUNREACH);
        native_expect_empty(a);
        assert_int_equal(bus1_peer_send(b, BUS1_SEND_FLAG_CONTINUE, dsts, 2, errors, &vec, 1,
                                        NULL, 0, NULL, 0), 0);
        assert_int_equal(errors[0], EHOSTUNREACH);
        assert_int_equal(errors[1], 0);
        bus1_message_unref(native_expect_data(a, 0, 0x100, "x"));
        native_expect_notification(b, BUS1_MSG_NODE_DESTROY, gone);

        /* a large payload (beyond one record) arrives whole */
        {
                size_t len = 300 * 1024;
                char *big = malloc(len);
                struct iovec bv = { .iov_base = big, .iov_len = len };
                Bus1Message *m;
                size_t size;

                assert_non_null(big);
                for (size_t i = 0; i < len; ++i)
                        big[i] = (char)(i * 7);
                assert_int_equal(bus1_peer_send(b, 0, &dst, 1, NULL, &bv, 1, NULL, 0, NULL, 0),
                                 0);
                m = native_recv(a, 0);
                assert_memory_equal(bus1_message_get_data(m, &size), big, len);
                assert_int_equal(size, len);
                bus1_message_unref(m);
                free(big);
        }

        native_finish(f);
}

static void test_peek(void **state) {
        NativeFixture *f = *state;
        Bus1Message *m, *p1, *p2;
        uint64_t dst, offset;
        int p[2];
        Bus1Peer *a, *b;

        a = native_peer(f);
        b = native_peer(f);
        dst = native_give(a, 0x100, b);
        assert_int_equal(bus1_peer_recv(a, BUS1_RECV_FLAG_PEEK, &m), -EAGAIN);
        assert_int_equal(bus1_peer_recv(a, 8, &m), -EINVAL);
        assert_int_equal(bus1_peer_recv(a, 0, NULL), -EINVAL);

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(native_send(b, dst, "first", NULL, 0, &p[1], 1), 0);
        assert_int_equal(native_send(b, dst, "second", NULL, 0, NULL, 0), 0);

        /* peeking twice shows the same entry, without fds, and owns nothing */
        p1 = native_expect_data(a, BUS1_RECV_FLAG_PEEK, 0x100, "first");
        p2 = native_expect_data(a, BUS1_RECV_FLAG_PEEK, 0x100, "first");
        assert_int_equal(bus1_message_get_n_fds(p1), 1);
        assert_int_equal(bus1_message_get_fd(p1, 0), -1);
        assert_int_equal(bus1_message_steal_fd(p1, 0), -1);
        offset = native_offset(a, p1);
        assert_int_equal(native_offset(a, p2), offset);
        bus1_message_unref(p2);
        bus1_message_unref(p1);

        /* the entry is still there, with its slice and its fd */
        m = native_expect_data(a, 0, 0x100, "first");
        assert_int_equal(native_offset(a, m), offset);
        assert_true(bus1_message_get_fd(m, 0) >= 0);
        bus1_message_unref(m);

        p1 = native_expect_data(a, BUS1_RECV_FLAG_PEEK | BUS1_RECV_FLAG_INSTALL_FDS, 0x100,
                                "second");
        bus1_message_unref(p1);
        bus1_message_unref(native_expect_data(a, 0, 0x100, "second"));
        native_expect_empty(a);

        close(p[0]);
        close(p[1]);
        native_finish(f);
}

static void test_seed(void **state) {
        NativeFixture *f = *state;
        struct iovec vec = { .iov_base = "I am a", .iov_len = 6 };
        uint64_t node = 0x300, id;
        Bus1Message *m;
        size_t size;
        int p[2];
        char c;
        Bus1Peer *a, *b;

        a = native_peer(f);
        b = native_peer(f);
        assert_int_equal(bus1_peer_recv(a, BUS1_RECV_FLAG_SEED, &m), -EAGAIN);
        assert_int_equal(bus1_peer_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, &m),
                         -EAGAIN);

        /* the seed pins a new node of a */
        assert_int_equal(bus1_peer_send(a, BUS1_SEND_FLAG_SEED, NULL, 0, NULL, &vec, 1, &node, 1,
                                        NULL, 0), 0);
        for (int i = 0; i < 2; ++i) {
                m = native_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK);
                assert_int_equal(bus1_message_get_type(m), BUS1_MSG_DATA);
                assert_memory_equal(bus1_message_get_data(m, &size), "I am a", 6);
                assert_int_equal(size, 6);
                assert_int_equal(bus1_message_get_n_handles(m), 1);
                assert_int_equal(bus1_message_get_handle(m, 0), 0x300);
                bus1_message_unref(m);
        }
        /* the seed is not on the queue */
        native_expect_empty(a);

        /* FLUSH keeps what the seed pins; the node is alive */
        assert_int_equal(bus1_peer_reset(a, BUS1_PEER_RESET_FLAG_FLUSH, UINT64_MAX, NULL), 0);
        id = native_give(a, 0x300, b);
        assert_int_equal(native_send(b, id, "to seed node", NULL, 0, NULL, 0), 0);
        bus1_message_unref(native_expect_data(a, 0, 0x300, "to seed node"));

        /* receiving it without PEEK takes it: the handle becomes a's reference */
        m = native_recv(a, BUS1_RECV_FLAG_SEED);
        assert_int_equal(bus1_message_get_handle(m, 0), 0x300);
        bus1_message_unref(m);
        assert_int_equal(bus1_peer_recv(a, BUS1_RECV_FLAG_SEED, &m), -EAGAIN);

        /* a seed with an fd: installed when the seed is taken */
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(bus1_peer_send(b, BUS1_SEND_FLAG_SEED, NULL, 0, NULL, &vec, 1, NULL, 0,
                                        &p[1], 1), 0);
        close(p[1]);
        m = native_recv(b, BUS1_RECV_FLAG_SEED);
        assert_int_equal(bus1_message_get_n_fds(m), 1);
        assert_true(bus1_message_get_fd(m, 0) >= 0);
        assert_int_equal(write(bus1_message_get_fd(m, 0), "s", 1), 1);
        assert_int_equal(read(p[0], &c, 1), 1);
        bus1_message_unref(m);
        /* the last copy of the write end went with the message */
        assert_int_equal(read(p[0], &c, 1), 0);
        close(p[0]);

        /* FLUSH_SEED drops it */
        assert_int_equal(bus1_peer_send(b, BUS1_SEND_FLAG_SEED, NULL, 0, NULL, &vec, 1, NULL, 0,
                                        NULL, 0), 0);
        assert_int_equal(bus1_peer_reset(b, BUS1_PEER_RESET_FLAG_FLUSH_SEED, UINT64_MAX, NULL), 0);
        assert_int_equal(bus1_peer_recv(b, BUS1_RECV_FLAG_SEED, &m), -EAGAIN);

        native_finish(f);
}

/*
 * PEEK of a seed that carries fds: the RECV goes to the broker, which
 * reports the message's fd count but (rightly) installs nothing, and the
 * reply must still decode.
 */
static void test_seed_peek_fds(void **state) {
        NativeFixture *f = *state;
        struct iovec vec = { .iov_base = "fd seed", .iov_len = 7 };
        Bus1Message *m;
        Bus1Peer *a;
        int p[2];

        a = native_peer(f);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(bus1_peer_send(a, BUS1_SEND_FLAG_SEED, NULL, 0, NULL, &vec, 1, NULL, 0,
                                        &p[1], 1), 0);
        m = native_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK);
        assert_memory_equal(bus1_message_get_data(m, NULL), "fd seed", 7);
        assert_int_equal(bus1_message_get_n_fds(m), 1);
        assert_int_equal(bus1_message_get_fd(m, 0), -1);
        bus1_message_unref(m);
        m = native_recv(a, BUS1_RECV_FLAG_SEED);
        assert_int_equal(bus1_message_get_n_fds(m), 1);
        assert_true(bus1_message_get_fd(m, 0) >= 0);
        bus1_message_unref(m);
        close(p[0]);
        close(p[1]);
        native_finish(f);
}

static void test_handles_and_nodes(void **state) {
        NativeFixture *f = *state;
        uint64_t ids[3], self, id_b, id_c, gone, n;
        Bus1Peer *a, *b, *c;

        a = native_peer(f);
        b = native_peer(f);
        c = native_peer(f);

        /* to itself: the owner gets its own ID; NULL and @peer both mean self */
        assert_int_equal(bus1_peer_handle_transfer(a, 0x100, NULL, NULL), -EINVAL);
        assert_int_equal(bus1_peer_handle_transfer(a, 0x100, NULL, &self), 0);
        assert_int_equal(self, 0x100);
        assert_int_equal(bus1_peer_handle_transfer(a, 0x100, a, &self), 0);
        assert_int_equal(self, 0x100);
        assert_int_equal(bus1_peer_handle_release(a, 0x100), 0);
        assert_int_equal(bus1_peer_handle_release(a, 0x100), 0);
        /* the pinned reference of a live node; nobody else holds it now */
        assert_int_equal(bus1_peer_handle_release(a, 0x100), -EBUSY);
        native_expect_notification(a, BUS1_MSG_NODE_RELEASE, 0x100);
        assert_int_equal(bus1_peer_handle_release(a, 0x8 | NATIVE_REMOTE_BITS), -ENXIO);
        assert_int_equal(bus1_peer_handle_transfer(a, 0x9 | BUS1_HANDLE_FLAG_MANAGED, b, &n),
                         -ENXIO);

        /* passing on: b gives c its handle to a's node */
        id_b = native_give(a, 0x100, b);
        id_c = native_give(b, id_b, c);
        assert_int_equal(id_c & 7, NATIVE_REMOTE_BITS);
        assert_int_equal(native_give(b, id_b, c), id_c);
        assert_int_equal(native_send(c, id_c, "via c", NULL, 0, NULL, 0), 0);
        bus1_message_unref(native_expect_data(a, 0, 0x100, "via c"));

        /* destroy errors */
        ids[0] = 0x100;
        ids[1] = 0x100;
        assert_int_equal(bus1_peer_nodes_destroy(a, 0, ids, 2), -ENOTUNIQ);
        assert_int_equal(bus1_peer_nodes_destroy(a, 2, ids, 1), -EINVAL);
        assert_int_equal(bus1_peer_nodes_destroy(a, 0, NULL, 1), -EINVAL);
        assert_int_equal(bus1_peer_nodes_destroy(b, 0, &id_b, 1), -EREMOTE);
        ids[1] = 0x18 | NATIVE_REMOTE_BITS;
        assert_int_equal(bus1_peer_nodes_destroy(a, 0, ids, 2), -ENXIO);
        /* a new ID is created and destroyed at once */
        ids[1] = 0x200;
        assert_int_equal(bus1_peer_nodes_destroy(a, 0, ids, 2), 0);
        assert_int_equal(bus1_peer_nodes_destroy(a, 0, ids, 1), -ESTALE);

        /* everybody holding a handle hears of it, the owner included */
        {
                uint64_t seen = 0;

                /* one transaction: the order of a's two entries is unspecified */
                for (int i = 0; i < 2; ++i) {
                        Bus1Message *m = native_recv(a, 0);

                        assert_int_equal(bus1_message_get_type(m), BUS1_MSG_NODE_DESTROY);
                        assert_int_equal(bus1_message_get_flags(m) & BUS1_MSG_FLAG_CONTINUE,
                                         i == 0 ? BUS1_MSG_FLAG_CONTINUE : 0);
                        seen |= bus1_message_get_destination(m);
                        bus1_message_unref(m);
                }
                assert_int_equal(seen, 0x100 | 0x200);
        }
        native_expect_notification(b, BUS1_MSG_NODE_DESTROY, id_b);
        native_expect_notification(c, BUS1_MSG_NODE_DESTROY, id_c);
        assert_int_equal(native_send(c, id_c, "late", NULL, 0, NULL, 0), -EHOSTUNREACH);
        /* a destroyed handle transfers as INVALID */
        assert_int_equal(bus1_peer_handle_transfer(b, id_b, c, &gone), 0);
        assert_int_equal(gone, BUS1_HANDLE_INVALID);
        assert_int_equal(bus1_peer_handle_release(a, 0x100), 0);
        assert_int_equal(bus1_peer_handle_release(a, 0x200), 0);
        assert_int_equal(bus1_peer_handle_release(b, id_b), 0);
        assert_int_equal(bus1_peer_handle_release(c, id_c), 0);
        assert_int_equal(bus1_peer_handle_release(c, id_c), 0);
        assert_int_equal(bus1_peer_handle_release(c, id_c), -ENXIO);

        /* NODE_RELEASE when the last foreign reference goes */
        id_b = native_give(a, 0x400, b);
        assert_int_equal(bus1_peer_handle_release(b, id_b), 0);
        native_expect_notification(a, BUS1_MSG_NODE_RELEASE, 0x400);
        /* RELEASE_HANDLES: the owner lets go and never sees NODE_DESTROY */
        n = 0x400;
        assert_int_equal(bus1_peer_nodes_destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, &n,
                                                 1), 0);
        /* the handle is gone: an unmanaged ID a does not hold */
        assert_int_equal(bus1_peer_handle_release(a, 0x400), -EBUSY);
        native_expect_empty(a);
        native_expect_empty(b);
        native_expect_empty(c);

        /* several nodes of one peer in one send: CONTINUE links the entries */
        {
                uint64_t d[2];
                Bus1Message *m;

                d[0] = native_give(a, 0x500, b);
                d[1] = native_give(a, 0x600, b);
                assert_int_equal(bus1_peer_send(b, 0, d, 2, NULL, NULL, 0, NULL, 0, NULL, 0), 0);
                m = native_recv(a, 0);
                assert_int_equal(bus1_message_get_flags(m) & BUS1_MSG_FLAG_CONTINUE,
                                 BUS1_MSG_FLAG_CONTINUE);
                bus1_message_unref(m);
                m = native_recv(a, 0);
                assert_int_equal(bus1_message_get_flags(m) & BUS1_MSG_FLAG_CONTINUE, 0);
                bus1_message_unref(m);
        }

        /* a transfer into a disconnected peer */
        assert_int_equal(bus1_peer_disconnect(c), 0);
        assert_int_equal(bus1_peer_handle_transfer(a, 0x500, c, &n), -ESHUTDOWN);

        native_finish(f);
}

typedef struct Dispatch {
        sd_event *event;
        unsigned int n;                 /* entries handled */
        unsigned int exit_at;           /* sd_event_exit(0) after this many */
        int fail_with;                  /* return this from the handler */
        bool disconnect;                /* disconnect the peer from the handler */
        bool detach;                    /* detach from the handler */
        bool unref;                     /* drop the last reference from the handler */
        Bus1Peer *peer;
        Bus1Message *kept;
        char texts[8][16];
} Dispatch;

static int dispatch_handler(Bus1Peer *peer, Bus1Message *m, void *userdata) {
        Dispatch *d = userdata;
        const char *data;
        size_t size;

        assert_ptr_equal(peer, d->peer);
        if (bus1_message_get_type(m) == BUS1_MSG_DATA && d->n < 8) {
                data = bus1_message_get_data(m, &size);
                snprintf(d->texts[d->n], sizeof(d->texts[0]), "%.*s", (int)size, data);
        }
        if (!d->kept)
                d->kept = bus1_message_ref(m);
        ++d->n;
        if (d->fail_with)
                return d->fail_with;
        if (d->disconnect)
                assert_int_equal(bus1_peer_disconnect(peer), 0);
        if (d->detach) {
                bus1_peer_detach_event(peer);
                bus1_peer_detach_event(peer);
        }
        if (d->unref) {
                d->unref = false;
                bus1_peer_unref(peer);
        }
        if (d->n == d->exit_at)
                return sd_event_exit(d->event, 0);
        return 0;
}

/* attach @peer to a fresh loop (a loop that exited cannot run again) */
static sd_event *dispatch_loop(Bus1Peer *peer, Dispatch *d) {
        sd_event *event = NULL;

        bus1_peer_detach_event(peer);
        assert_int_equal(sd_event_new(&event), 0);
        *d = (Dispatch){ .event = event, .peer = peer };
        bus1_peer_set_handler(peer, dispatch_handler, d);
        assert_int_equal(bus1_peer_attach_event(peer, event, 0), 0);
        return event;
}

static void test_event_dispatch(void **state) {
        NativeFixture *f = *state;
        sd_event *event, *def = NULL;
        Dispatch d;
        uint64_t dst;
        size_t size;
        Bus1Peer *a, *b;
        char text[8];

        a = native_peer(f);
        b = native_peer(f);
        dst = native_give(a, 0x100, b);

        /* entries arrive in order, one handler call each */
        event = dispatch_loop(a, &d);
        d.exit_at = 3;
        assert_int_equal(bus1_peer_attach_event(a, event, 0), -EBUSY);
        for (int i = 0; i < 4; ++i) {
                snprintf(text, sizeof(text), "m%d", i);
                assert_int_equal(native_send(b, dst, text, NULL, 0, NULL, 0), 0);
        }
        assert_int_equal(sd_event_loop(event), 0);
        /* the round stopped when the handler asked the loop to exit */
        assert_int_equal(d.n, 3);
        assert_string_equal(d.texts[0], "m0");
        assert_string_equal(d.texts[1], "m1");
        assert_string_equal(d.texts[2], "m2");
        /* a kept message stays readable */
        assert_non_null(d.kept);
        assert_memory_equal(bus1_message_get_data(d.kept, &size), "m0", 2);
        assert_int_equal(size, 2);
        d.kept = bus1_message_unref(d.kept);
        event = sd_event_unref(event);

        /* the rest comes with the next loop */
        event = dispatch_loop(a, &d);
        assert_int_equal(sd_event_run(event, 1000000), 1);
        assert_int_equal(d.n, 1);
        assert_string_equal(d.texts[0], "m3");
        d.kept = bus1_message_unref(d.kept);
        native_expect_empty(a);
        /* nothing queued: a run dispatches nothing */
        assert_int_equal(sd_event_run(event, 0), 0);

        /* detached, nothing is dispatched; attached again, it is */
        bus1_peer_detach_event(a);
        bus1_peer_detach_event(a);
        assert_int_equal(native_send(b, dst, "m4", NULL, 0, NULL, 0), 0);
        assert_int_equal(sd_event_run(event, 0), 0);
        assert_int_equal(d.n, 1);
        assert_int_equal(bus1_peer_attach_event(a, event, 10), 0);
        assert_int_equal(sd_event_run(event, 1000000), 1);
        assert_int_equal(d.n, 2);
        assert_string_equal(d.texts[1], "m4");
        d.kept = bus1_message_unref(d.kept);

        /* detaching from the handler stops the round */
        d.detach = true;
        assert_int_equal(native_send(b, dst, "m5", NULL, 0, NULL, 0), 0);
        assert_int_equal(native_send(b, dst, "m6", NULL, 0, NULL, 0), 0);
        assert_int_equal(sd_event_run(event, 1000000), 1);
        assert_int_equal(d.n, 3);
        assert_int_equal(sd_event_run(event, 0), 0);
        bus1_message_unref(native_expect_data(a, 0, 0x100, "m6"));
        d.kept = bus1_message_unref(d.kept);

        /* without a handler entries are received and dropped */
        bus1_peer_set_handler(a, NULL, NULL);
        assert_int_equal(bus1_peer_attach_event(a, event, 0), 0);
        assert_int_equal(native_send(b, dst, "m7", NULL, 0, NULL, 0), 0);
        assert_int_equal(sd_event_run(event, 1000000), 1);
        native_expect_empty(a);
        event = sd_event_unref(event);

        /* a handler error ends the loop with it */
        event = dispatch_loop(a, &d);
        d.fail_with = -EIO;
        assert_int_equal(native_send(b, dst, "m8", NULL, 0, NULL, 0), 0);
        assert_int_equal(sd_event_loop(event), -EIO);
        assert_int_equal(d.n, 1);
        d.kept = bus1_message_unref(d.kept);
        native_expect_empty(a);
        event = sd_event_unref(event);

        /* the thread's default loop */
        bus1_peer_detach_event(a);
        assert_true(sd_event_default(&def) >= 0);
        d = (Dispatch){ .event = def, .peer = a };
        bus1_peer_set_handler(a, dispatch_handler, &d);
        assert_int_equal(bus1_peer_attach_event(a, NULL, 0), 0);
        assert_int_equal(native_send(b, dst, "m9", NULL, 0, NULL, 0), 0);
        assert_int_equal(sd_event_run(def, 1000000), 1);
        assert_int_equal(d.n, 1);
        d.kept = bus1_message_unref(d.kept);
        def = sd_event_unref(def);

        /*
         * An entry the peer queues on itself outside the handler: the
         * library reads it while it waits for the SEND's reply, so only the
         * broker's WAKE keeps the descriptor readable (no lost wake-up).
         */
        event = dispatch_loop(a, &d);
        assert_int_equal(native_send(a, 0x100, "self", NULL, 0, NULL, 0), 0);
        assert_int_equal(sd_event_run(event, 1000000), 1);
        assert_int_equal(d.n, 1);
        assert_string_equal(d.texts[0], "self");
        d.kept = bus1_message_unref(d.kept);
        event = sd_event_unref(event);

        /* disconnecting from the handler disables the source: no spinning */
        event = dispatch_loop(a, &d);
        d.disconnect = true;
        assert_int_equal(native_send(b, dst, "m10", NULL, 0, NULL, 0), 0);
        assert_int_equal(sd_event_run(event, 1000000), 1);
        assert_int_equal(d.n, 1);
        assert_int_equal(sd_event_run(event, 0), 0);
        assert_int_equal(sd_event_run(event, 0), 0);
        d.kept = bus1_message_unref(d.kept);
        native_expect_notification(b, BUS1_MSG_NODE_DESTROY, dst);
        assert_int_equal(bus1_peer_handle_release(b, dst), 0);
        event = sd_event_unref(event);

        /* dropping the last reference from the handler */
        a = native_peer(f);
        native_forget(f, a);
        dst = native_give(a, 0x100, b);
        event = dispatch_loop(a, &d);
        d.unref = true;
        assert_int_equal(native_send(b, dst, "m11", NULL, 0, NULL, 0), 0);
        assert_int_equal(native_send(b, dst, "m12", NULL, 0, NULL, 0), 0);
        assert_int_equal(sd_event_run(event, 1000000), 1);
        /* the round went on: the callback pinned the peer */
        assert_int_equal(d.n, 2);
        /* the kept message pins the peer until now; then unref detaches */
        d.kept = bus1_message_unref(d.kept);
        assert_int_equal(sd_event_run(event, 0), 0);
        native_expect_notification(b, BUS1_MSG_NODE_DESTROY, dst);
        assert_int_equal(bus1_peer_handle_release(b, dst), 0);
        event = sd_event_unref(event);

        native_finish(f);
}

/* entries one dispatch hands to the handler at most (bus1_peer_attach_event.3) */
#define NATIVE_DISPATCH_MAX 64U
#define NATIVE_BOUNDED_N 200U

/* a handler that checks every entry is the next one sent */
static int bounded_handler(Bus1Peer *peer, Bus1Message *m, void *userdata) {
        unsigned int *n = userdata;
        char text[16];
        const char *data;
        size_t size;

        snprintf(text, sizeof(text), "b%u", *n);
        assert_int_equal(bus1_message_get_type(m), BUS1_MSG_DATA);
        data = bus1_message_get_data(m, &size);
        assert_int_equal(size, strlen(text));
        assert_memory_equal(data, text, size);
        ++*n;
        return 0;
}

/* bytes waiting in the peer's socket (for SOCK_SEQPACKET: all its records) */
static int native_socket_bytes(Bus1Peer *peer) {
        int n = -1;

        assert_int_equal(ioctl(bus1_peer_get_fd(peer), FIONREAD, &n), 0);
        return n;
}

/*
 * Dispatch NATIVE_BOUNDED_N entries: every dispatch hands exactly
 * NATIVE_DISPATCH_MAX of them to the handler, or what is left, in order.
 * With @buffered, all of them are in the library's buffer and the socket
 * holds only the broker's WAKE (16 bytes), which alone must keep the source
 * firing: each dispatch then runs without waiting (timeout 0).
 */
static void native_dispatch_bounded(Bus1Peer *a, Bus1Peer *b, uint64_t dst, bool buffered) {
        sd_event *event = NULL;
        unsigned int n = 0, prev;
        char text[16];

        for (unsigned int i = 0; i < NATIVE_BOUNDED_N; ++i) {
                snprintf(text, sizeof(text), "b%u", i);
                assert_int_equal(native_send(b, dst, text, NULL, 0, NULL, 0), 0);
        }
        /*
         * A call reads every record ahead of its reply into the buffer; the
         * broker pushes what did not fit the socket once there is room, so
         * call until nothing but the WAKE after the last reply is left.
         */
        for (unsigned int i = 0; buffered && native_socket_bytes(a) != 16; ++i) {
                assert_true(i < 1000);
                if (i)
                        usleep(1000);
                assert_int_equal(bus1_peer_query(a, NULL, NULL), 0);
        }

        assert_int_equal(sd_event_new(&event), 0);
        bus1_peer_set_handler(a, bounded_handler, &n);
        assert_int_equal(bus1_peer_attach_event(a, event, 0), 0);
        while (n < NATIVE_BOUNDED_N) {
                prev = n;
                assert_int_equal(sd_event_run(event, buffered ? 0 : 5000000), 1);
                assert_int_equal(n - prev, NATIVE_BOUNDED_N - prev < NATIVE_DISPATCH_MAX
                                                   ? NATIVE_BOUNDED_N - prev : NATIVE_DISPATCH_MAX);
                /* the rest is still only in the library's buffer */
                if (buffered && n < NATIVE_BOUNDED_N)
                        assert_int_equal(native_socket_bytes(a), 16);
        }
        /* all handled: the last round ended on an empty queue */
        assert_int_equal(sd_event_run(event, 0), 0);
        native_expect_empty(a);
        bus1_peer_detach_event(a);
        sd_event_unref(event);
}

static void test_event_bounded(void **state) {
        NativeFixture *f = *state;
        Bus1Peer *a, *b;
        uint64_t dst;

        a = native_peer(f);
        b = native_peer(f);
        dst = native_give(a, 0x100, b);

        /* the entries wait in the socket (or at the broker, if it filled up) */
        native_dispatch_bounded(a, b, dst, false);
        /* the entries wait in the library's buffer, behind one WAKE */
        native_dispatch_bounded(a, b, dst, true);

        native_finish(f);
}

/* the broker goes away under an attached peer: the source turns off */
/* the broker dies under the fixture: SIGKILL, its socket and directory gone */
static void native_kill_broker(NativeFixture *f) {
        int status;

        kill(f->broker.pid, SIGKILL);
        assert_int_equal(waitpid(f->broker.pid, &status, 0), f->broker.pid);
        f->running = false;
        unlink(f->broker.path);
        rmdir(f->broker.dir);
        unsetenv("BUS1_ADDRESS");
}

/* a loop that has not ended within 5 s ends with -ETIMEDOUT */
static int native_loop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), -ETIMEDOUT);
}

static void native_loop_guard(sd_event *event) {
        assert_int_equal(sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC,
                                                    5 * 1000 * 1000, 0, native_loop_timeout,
                                                    NULL),
                         0);
}

typedef struct Lost {
        Bus1Peer *peer;
        int n;
        int error;
        sd_event *event;
} Lost;

static int native_on_lost(Bus1Peer *peer, int error, void *userdata) {
        Lost *l = userdata;

        assert_ptr_equal(peer, l->peer);
        ++l->n;
        l->error = error;
        /* the program decides: here, end the loop with its own code */
        return sd_event_exit(l->event, 42);
}

/*
 * The broker dies while a peer is attached: without a disconnect handler
 * the loop exits with -ECONNRESET at once; every later call says
 * -ECONNRESET, which bus1_strerror() words as the broker connection
 * ending. With a handler, it is called once and the program decides.
 */
static void test_event_broker_gone(void **state) {
        NativeFixture *f = *state;
        sd_event *event;
        Dispatch d;
        Bus1Peer *a, *b;
        Bus1Message *m;
        Lost lost;

        a = native_peer(f);
        native_forget(f, a);
        b = native_peer(f);
        native_forget(f, b);
        event = dispatch_loop(a, &d);
        native_loop_guard(event);

        native_kill_broker(f);
        assert_int_equal(sd_event_loop(event), -ECONNRESET);
        assert_int_equal(d.n, 0);
        assert_int_equal(bus1_peer_recv(a, 0, &m), -ECONNRESET);
        assert_int_equal(native_send(a, 0x100, "x", NULL, 0, NULL, 0), -ECONNRESET);
        assert_non_null(strstr(bus1_strerror(-ECONNRESET), "connection to the broker ended"));
        assert_non_null(strstr(bus1_strerror(ECONNRESET), "broker"));
        assert_string_equal(bus1_strerror(EINVAL), strerror(EINVAL));
        event = sd_event_unref(event);

        /* with a handler: called once, and it decides how the loop ends */
        event = dispatch_loop(b, &d);
        native_loop_guard(event);
        lost = (Lost){ .peer = b, .event = event };
        bus1_peer_set_disconnect_handler(b, native_on_lost, &lost);
        assert_int_equal(sd_event_loop(event), 42);
        assert_int_equal(lost.n, 1);
        assert_int_equal(lost.error, -ECONNRESET);
        assert_int_equal(bus1_peer_disconnect(b), -ECONNRESET);

        bus1_peer_unref(a);
        bus1_peer_unref(b);
        sd_event_unref(event);
        assert_int_equal(test_count_fds(0), f->n_fds);
}

typedef struct Sender {
        Bus1Peer *peer;
        uint64_t dst;
        int n;
        int r;
} Sender;

static void *sender_thread(void *userdata) {
        Sender *s = userdata;

        for (int i = 0; i < s->n && s->r == 0; ++i)
                s->r = native_send(s->peer, s->dst, "t", NULL, 0, NULL, 0);
        return NULL;
}

/* two threads share one sending peer; the receiver sees every message */
static void test_threads(void **state) {
        NativeFixture *f = *state;
        Sender s[2];
        pthread_t t[2];
        Bus1Message *m;
        Bus1Peer *a, *b;
        uint64_t dst;
        int n = 0, r;

        a = native_peer(f);
        b = native_peer(f);
        dst = native_give(a, 0x100, b);
        for (int i = 0; i < 2; ++i) {
                s[i] = (Sender){ .peer = b, .dst = dst, .n = 200 };
                assert_int_equal(pthread_create(&t[i], NULL, sender_thread, &s[i]), 0);
        }
        for (int i = 0; i < 2; ++i) {
                assert_int_equal(pthread_join(t[i], NULL), 0);
                assert_int_equal(s[i].r, 0);
        }
        while ((r = bus1_peer_recv(a, 0, &m)) == 0) {
                ++n;
                bus1_message_unref(m);
        }
        assert_int_equal(r, -EAGAIN);
        assert_int_equal(n, 400);
        native_finish(f);
}

/* the child of test_adopt_child(): exit codes name the failing step */
static int adopt_child(const char *arg) {
        struct iovec vec = { .iov_base = "hello from the child", .iov_len = 20 };
        Bus1Message *m;
        Bus1Peer *peer;
        uint64_t parent;
        const char *data;
        size_t size;
        int fd = atoi(arg), p[2];

        if (bus1_peer_new_from_fd(&peer, fd) < 0)
                return 10;
        if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC) || bus1_peer_get_fd(peer) != fd)
                return 11;

        /* what the parent queued before exec is pushed again */
        if (bus1_peer_recv(peer, 0, &m) < 0)
                return 12;
        data = bus1_message_get_data(m, &size);
        if (bus1_message_get_destination(m) != 0x200 || size != 6 || memcmp(data, "queued", 6))
                return 13;
        bus1_message_unref(m);

        /* the seed the parent set on this peer names the parent's node */
        if (bus1_peer_recv(peer, BUS1_RECV_FLAG_SEED, &m) < 0)
                return 14;
        if (bus1_message_get_n_handles(m) != 1)
                return 15;
        parent = bus1_message_get_handle(m, 0);
        bus1_message_unref(m);

        /* answer with a pipe whose read end carries a word */
        if (pipe2(p, O_CLOEXEC) < 0 || write(p[1], "via fd", 6) != 6)
                return 16;
        close(p[1]);
        if (bus1_peer_send(peer, 0, &parent, 1, NULL, &vec, 1, NULL, 0, &p[0], 1) < 0)
                return 17;
        close(p[0]);
        bus1_peer_unref(peer);
        return 0;
}

static void test_adopt_child(void **state) {
        NativeFixture *f = *state;
        struct iovec vec = { .iov_base = "seed", .iov_len = 4 };
        char self[PATH_MAX], arg[16], buf[16];
        uint64_t to_parent, to_child;
        Bus1Message *m;
        Bus1Peer *a, *c;
        ssize_t l;
        pid_t pid, cpid;
        int status, p[2], fd;

        a = native_peer(f);
        c = native_peer(f);

        /* not a connection: refused, and the caller keeps the fd */
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(bus1_peer_new_from_fd(&f->peers[5], p[0]), -ENOTSOCK);
        assert_null(f->peers[5]);
        assert_true(native_fd_is_open(p[0]));
        close(p[0]);
        close(p[1]);
        assert_int_equal(bus1_peer_new_from_fd(NULL, 0), -EINVAL);

        /* prepare the child's peer: a handle, a seed, a queued message */
        to_parent = native_give(a, 0x100, c);
        to_child = native_give(c, 0x200, a);
        assert_int_equal(bus1_peer_send(c, BUS1_SEND_FLAG_SEED, NULL, 0, NULL, &vec, 1,
                                        &to_parent, 1, NULL, 0), 0);
        assert_int_equal(native_send(a, to_child, "queued", NULL, 0, NULL, 0), 0);

        l = readlink("/proc/self/exe", self, sizeof(self) - 1);
        assert_true(l > 0);
        self[l] = 0;
        fd = bus1_peer_get_fd(c);
        snprintf(arg, sizeof(arg), "%d", fd);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (fcntl(fd, F_SETFD, 0) < 0)
                        _exit(126);
                execl(self, self, "--adopt", arg, (char *)NULL);
                _exit(127);
        }
        /* the child holds the connection; the parent lets go of its copy */
        native_forget(f, c);
        bus1_peer_unref(c);

        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);

        /* the child's message stays queued after its peer went away */
        m = native_expect_data(a, 0, 0x100, "hello from the child");
        bus1_message_get_creds(m, NULL, NULL, &cpid, NULL);
        /* credentials are the connecting process's: this one */
        assert_int_equal(cpid, getpid());
        fd = bus1_message_steal_fd(m, 0);
        assert_true(fd >= 0);
        bus1_message_unref(m);
        assert_int_equal(read(fd, buf, sizeof(buf)), 6);
        assert_memory_equal(buf, "via fd", 6);
        close(fd);
        /* the child's peer went: its node is destroyed, its handle released */
        {
                unsigned int seen = 0;

                for (int i = 0; i < 2; ++i) {
                        m = native_recv(a, 0);
                        if (bus1_message_get_type(m) == BUS1_MSG_NODE_DESTROY)
                                assert_int_equal(bus1_message_get_destination(m), to_child);
                        else
                                assert_int_equal(bus1_message_get_destination(m), 0x100);
                        seen |= 1U << bus1_message_get_type(m);
                        bus1_message_unref(m);
                }
                assert_int_equal(seen, (1U << BUS1_MSG_NODE_DESTROY) |
                                       (1U << BUS1_MSG_NODE_RELEASE));
        }
        assert_int_equal(bus1_peer_handle_release(a, to_child), 0);
        native_expect_empty(a);

        native_finish(f);
}

/* bus1-example-service starts bus1-example-client; both must succeed */
static void test_examples(void **state) {
        NativeFixture *f = *state;
        const char *service = getenv("BUS1_TEST_EXAMPLE_SERVICE");
        static const char *const expect[] = {
                "client: adopted peer connection",
                "client: seed says",
                "service: request \"ping\"",
                "client: pipe says \"pong, through the pipe\"",
                "client: reply node says \"pong, through your reply node\"",
                "client: saw NODE_RELEASE of 0x200",
                "client: saw NODE_DESTROY of the service node",
                "service: saw NODE_DESTROY of its node 0x100",
                "client: done",
                "service: client exited with status 0",
                "service: done",
        };
        char out[8192];
        ssize_t l, n = 0;
        int p[2], status;
        pid_t pid;

        if (!service)
                fail_msg("$BUS1_TEST_EXAMPLE_SERVICE is not set (run through meson test)");

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                dup2(p[1], STDOUT_FILENO);
                execl(service, service, (char *)NULL);
                _exit(127);
        }
        close(p[1]);
        while (n + 1 < (ssize_t)sizeof(out) &&
               (l = read(p[0], out + n, sizeof(out) - 1 - (size_t)n)) > 0)
                n += l;
        out[n] = 0;
        close(p[0]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        print_message("%s", out);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); ++i)
                if (!strstr(out, expect[i]))
                        fail_msg("missing from the examples' output: %s", expect[i]);

        native_finish(f);
}

/* ---- delivery: EMFILE ---- */

/* @n memfds with their index as content; their inodes in @ino */
static void native_memfds(int *fds, ino_t *ino, size_t n) {
        struct stat st;
        char buf[16];
        int l;

        for (size_t i = 0; i < n; ++i) {
                fds[i] = memfd_create("test-native", MFD_CLOEXEC);
                assert_true(fds[i] >= 0);
                l = snprintf(buf, sizeof(buf), "fd-%zu", i);
                assert_int_equal(write(fds[i], buf, (size_t)l), l);
                assert_int_equal(fstat(fds[i], &st), 0);
                ino[i] = st.st_ino;
        }
}

/*
 * B sends @n memfds and a handle to A's node 0x100; A's receive with only
 * @spare free descriptors is -EMFILE (twice), A stays healthy, and with
 * descriptors back the same message arrives once, owning the fds.
 */
static void native_emfile_roundtrip(Bus1Peer *a, Bus1Peer *b, uint64_t h, size_t n,
                                    unsigned int spare, bool peek_first) {
        Bus1Message *m, *m1 = NULL, *m2 = NULL;
        int fds[BUS1_FD_MAX], res[3] = { 1, 1, 1 }, sq;
        ino_t ino[BUS1_FD_MAX];
        unsigned int n0;
        struct stat st;
        char buf[16], want[16];
        short ev = 0;
        int l;

        native_memfds(fds, ino, n);
        assert_int_equal(native_send(b, h, "emfile", &h, 1, fds, n), 0);
        for (size_t i = 0; i < n; ++i)
                close(fds[i]);

        n0 = test_count_fds(0);
        if (peek_first) {
                /* a PEEK installs nothing */
                m = native_expect_data(a, BUS1_RECV_FLAG_PEEK, 0x100, "emfile");
                assert_int_equal(bus1_message_get_fd(m, 0), -1);
                bus1_message_unref(m);
                assert_int_equal(test_count_fds(0), n0);
        }

        sq = delivery_squeeze(spare);
        if (sq == 0) {
                res[0] = bus1_peer_recv(a, 0, &m1);
                res[1] = bus1_peer_recv(a, 0, &m2);
                res[2] = bus1_peer_query(a, NULL, NULL);
                ev = delivery_poll(bus1_peer_get_fd(a), POLLIN, 0);
                delivery_unsqueeze();
        }
        assert_int_equal(sq, 0);
        assert_int_equal(res[0], -EMFILE);
        assert_null(m1);
        assert_int_equal(res[1], -EMFILE);
        assert_null(m2);
        assert_int_equal(res[2], 0);
        assert_true(ev > 0 && (ev & POLLIN));
        assert_int_equal(test_count_fds(0), n0);

        m = native_expect_data(a, 0, 0x100, "emfile");
        assert_int_equal(bus1_message_get_n_handles(m), 1);
        assert_int_equal(bus1_message_get_handle(m, 0), 0x100);
        assert_int_equal(bus1_message_get_n_fds(m), n);
        assert_int_equal(test_count_fds(0), n0 + n);
        for (size_t i = 0; i < n; ++i) {
                int fd = bus1_message_get_fd(m, i);

                assert_true(fd >= 0);
                assert_int_equal(fstat(fd, &st), 0);
                assert_int_equal(st.st_ino, ino[i]);
                l = snprintf(want, sizeof(want), "fd-%zu", i);
                assert_int_equal(pread(fd, buf, sizeof(buf), 0), l);
                assert_memory_equal(buf, want, (size_t)l);
        }
        bus1_message_unref(m);
        assert_int_equal(test_count_fds(0), n0);
        /* the reference the message brought */
        assert_int_equal(bus1_peer_handle_release(a, 0x100), 0);
        native_expect_empty(a);
}

/* 1 and 3 fds with none free, 3 with one free, after a PEEK, 256 with 254 free */
static void test_emfile(void **state) {
        NativeFixture *f = *state;
        Bus1Peer *a, *b;
        uint64_t h;

        a = native_peer(f);
        b = native_peer(f);
        h = native_give(a, 0x100, b);
        native_emfile_roundtrip(a, b, h, 1, 0, false);
        native_emfile_roundtrip(a, b, h, 3, 0, false);
        native_emfile_roundtrip(a, b, h, 3, 1, false);
        native_emfile_roundtrip(a, b, h, 3, 0, true);
        native_emfile_roundtrip(a, b, h, BUS1_FD_MAX, BUS1_FD_MAX - 2, false);
        native_finish(f);
}

/* 256 fds (more than one sendmsg() carries) with none and with one free */
static void test_emfile_max(void **state) {
        NativeFixture *f = *state;
        Bus1Peer *a, *b;
        uint64_t h;

        a = native_peer(f);
        b = native_peer(f);
        h = native_give(a, 0x100, b);
        native_emfile_roundtrip(a, b, h, BUS1_FD_MAX, 0, false);
        native_emfile_roundtrip(a, b, h, BUS1_FD_MAX, 1, false);
        native_finish(f);
}

/* ---- delivery: fork ---- */

typedef struct NativeForkCtx {
        Bus1Peer *a, *b;
        uint64_t h;
} NativeForkCtx;

/* in a child: the next entry of @peer is the string @text to @dst */
static void native_child_expect(Bus1Peer *peer, uint64_t dst, const char *text) {
        Bus1Message *m = NULL;
        const void *data;
        size_t size = 0;

        CHILD_EQ(bus1_peer_recv(peer, 0, &m), 0);
        CHILD_CHECK(m);
        CHILD_EQ(bus1_message_get_type(m), BUS1_MSG_DATA);
        CHILD_EQ(bus1_message_get_destination(m), dst);
        data = bus1_message_get_data(m, &size);
        CHILD_EQ(size, strlen(text));
        CHILD_CHECK(!memcmp(data, text, size));
        bus1_message_unref(m);
}

static void native_child_expect_empty(Bus1Peer *peer) {
        Bus1Message *m = NULL;

        CHILD_EQ(bus1_peer_recv(peer, 0, &m), -EAGAIN);
        CHILD_CHECK(!m);
}

/* @peer becomes readable within 5 s */
static void native_wait_readable(Bus1Peer *peer) {
        short ev = delivery_poll(bus1_peer_get_fd(peer), POLLIN, 5000);

        assert_true(ev > 0 && (ev & POLLIN));
}

/* every call of the parent on a peer a child adopted is -EBADFD */
static void native_assert_locked_out(Bus1Peer *a, uint64_t h) {
        Bus1Message *m = NULL;
        uint64_t id = 0x100, dst = 0;

        assert_int_equal(bus1_peer_recv(a, 0, &m), -EBADFD);
        assert_null(m);
        assert_int_equal(bus1_peer_recv(a, BUS1_RECV_FLAG_PEEK, &m), -EBADFD);
        assert_null(m);
        assert_int_equal(bus1_peer_query(a, NULL, NULL), -EBADFD);
        assert_int_equal(bus1_peer_reset(a, 0, UINT64_MAX, NULL), -EBADFD);
        assert_int_equal(native_send(a, h, "x", NULL, 0, NULL, 0), -EBADFD);
        assert_int_equal(bus1_peer_handle_transfer(a, 0x100, NULL, &dst), -EBADFD);
        assert_int_equal(bus1_peer_handle_release(a, h), -EBADFD);
        assert_int_equal(bus1_peer_nodes_destroy(a, 0, &id, 1), -EBADFD);
        assert_int_equal(bus1_peer_disconnect(a), -EBADFD);
}

/* adopts A: "2" and "3" (read ahead by the parent), in order, then nothing */
static int native_child_readahead(void *userdata) {
        NativeForkCtx *c = userdata;

        native_child_expect(c->a, 0x100, "2");
        native_child_expect(c->a, 0x100, "3");
        native_child_expect_empty(c->a);
        return 0;
}

/*
 * The parent received "1" and its library read "2" and "3" ahead; the child
 * gets exactly those two, the parent is locked out afterwards.
 */
static void test_fork_readahead(void **state) {
        NativeFixture *f = *state;
        NativeForkCtx c;
        Bus1Message *m;
        pid_t pid;

        c.a = native_peer(f);
        c.b = native_peer(f);
        c.h = native_give(c.a, 0x100, c.b);
        assert_int_equal(native_send(c.b, c.h, "1", NULL, 0, NULL, 0), 0);
        assert_int_equal(native_send(c.b, c.h, "2", NULL, 0, NULL, 0), 0);
        assert_int_equal(native_send(c.b, c.h, "3", NULL, 0, NULL, 0), 0);
        /* a round trip: the library reads every pushed entry ahead */
        assert_int_equal(bus1_peer_query(c.a, NULL, NULL), 0);
        m = native_expect_data(c.a, 0, 0x100, "1");
        bus1_message_unref(m);

        pid = delivery_fork(native_child_readahead, &c);
        assert_true(pid > 0);
        delivery_reap(pid);

        native_assert_locked_out(c.a, c.h);
        assert_int_equal(bus1_peer_query(c.b, NULL, NULL), 0);
        native_expect_empty(c.b);
        native_finish(f);
}

static int native_child_idle(void *userdata) {
        (void)userdata;
        return 0;
}

/* a child that never touches A: the parent keeps receiving on it normally */
static void test_fork_untouched(void **state) {
        NativeFixture *f = *state;
        NativeForkCtx c;
        Bus1Message *m;
        pid_t pid;

        c.a = native_peer(f);
        c.b = native_peer(f);
        c.h = native_give(c.a, 0x100, c.b);
        assert_int_equal(native_send(c.b, c.h, "1", NULL, 0, NULL, 0), 0);
        assert_int_equal(native_send(c.b, c.h, "2", NULL, 0, NULL, 0), 0);
        assert_int_equal(bus1_peer_query(c.a, NULL, NULL), 0);
        m = native_expect_data(c.a, 0, 0x100, "1");
        bus1_message_unref(m);

        pid = delivery_fork(native_child_idle, &c);
        assert_true(pid > 0);
        delivery_reap(pid);

        m = native_expect_data(c.a, 0, 0x100, "2");
        bus1_message_unref(m);
        assert_int_equal(native_send(c.b, c.h, "3", NULL, 0, NULL, 0), 0);
        m = native_expect_data(c.a, 0, 0x100, "3");
        bus1_message_unref(m);
        native_expect_empty(c.a);
        assert_int_equal(bus1_peer_query(c.a, NULL, NULL), 0);
        assert_int_equal(bus1_peer_query(c.b, NULL, NULL), 0);
        native_finish(f);
}

/* adopts A, sends to B's node and to itself, receives */
static int native_child_sends(void *userdata) {
        NativeForkCtx *c = userdata;

        CHILD_EQ(native_send(c->a, c->h, "child to b", NULL, 0, NULL, 0), 0);
        CHILD_EQ(native_send(c->a, 0x100, "child to itself", NULL, 0, NULL, 0), 0);
        CHILD_EQ(bus1_peer_query(c->a, NULL, NULL), 0);
        native_child_expect(c->a, 0x100, "child to itself");
        native_child_expect_empty(c->a);
        return 0;
}

/*
 * The child adopts A and uses it; the parent is locked out, and its last
 * unref of A still releases everything (the child being gone, the peer
 * ends: B sees A's handle released).
 */
static void test_fork_child_sends(void **state) {
        NativeFixture *f = *state;
        NativeForkCtx c;
        Bus1Message *m;
        pid_t pid;

        c.a = native_peer(f);
        c.b = native_peer(f);
        c.h = native_give(c.b, 0x200, c.a);

        pid = delivery_fork(native_child_sends, &c);
        assert_true(pid > 0);
        delivery_reap(pid);

        native_assert_locked_out(c.a, c.h);
        m = native_expect_data(c.b, 0, 0x200, "child to b");
        bus1_message_unref(m);
        native_expect_empty(c.b);

        native_forget(f, c.a);
        bus1_peer_unref(c.a);
        native_wait_readable(c.b);
        native_expect_notification(c.b, BUS1_MSG_NODE_RELEASE, 0x200);
        native_expect_empty(c.b);
        native_finish(f);
}

/* adopts A and disconnects it */
static int native_child_disconnects(void *userdata) {
        NativeForkCtx *c = userdata;

        CHILD_EQ(bus1_peer_disconnect(c->a), 0);
        CHILD_EQ(bus1_peer_query(c->a, NULL, NULL), -ESHUTDOWN);
        CHILD_EQ(bus1_peer_disconnect(c->a), -ESHUTDOWN);
        return 0;
}

/*
 * The child's disconnect of A is the peer's: B sees A's node destroyed and
 * A's handle released, sends to A's node are -ESHUTDOWN, the parent's calls
 * on A are -EBADFD.
 */
static void test_fork_child_disconnects(void **state) {
        NativeFixture *f = *state;
        NativeForkCtx c;
        unsigned int seen = 0;
        Bus1Message *m;
        uint64_t ha;
        pid_t pid;

        c.a = native_peer(f);
        c.b = native_peer(f);
        ha = native_give(c.a, 0x100, c.b);
        c.h = native_give(c.b, 0x200, c.a);

        pid = delivery_fork(native_child_disconnects, &c);
        assert_true(pid > 0);
        delivery_reap(pid);

        native_wait_readable(c.b);
        for (int i = 0; i < 2; ++i) {
                m = native_recv(c.b, 0);
                if (bus1_message_get_type(m) == BUS1_MSG_NODE_DESTROY)
                        assert_int_equal(bus1_message_get_destination(m), ha);
                else
                        assert_int_equal(bus1_message_get_destination(m), 0x200);
                seen |= 1U << bus1_message_get_type(m);
                bus1_message_unref(m);
        }
        assert_int_equal(seen, (1U << BUS1_MSG_NODE_DESTROY) | (1U << BUS1_MSG_NODE_RELEASE));
        native_expect_empty(c.b);
        assert_int_equal(native_send(c.b, ha, "x", NULL, 0, NULL, 0), -ESHUTDOWN);

        native_assert_locked_out(c.a, c.h);
        native_finish(f);
}

static int native_delivery_teardown(void **state) {
        delivery_cleanup();
        return native_teardown(state);
}

int main(int argc, char **argv) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_peer_lifecycle, native_setup,
                                                native_teardown),
                cmocka_unit_test_setup_teardown(test_message_accessors, native_setup,
                                                native_teardown),
                cmocka_unit_test_setup_teardown(test_send_errors, native_setup, native_teardown),
                cmocka_unit_test_setup_teardown(test_peek, native_setup, native_teardown),
                cmocka_unit_test_setup_teardown(test_seed, native_setup, native_teardown),
                cmocka_unit_test_setup_teardown(test_seed_peek_fds, native_setup,
                                                native_teardown),
                cmocka_unit_test_setup_teardown(test_handles_and_nodes, native_setup,
                                                native_teardown),
                cmocka_unit_test_setup_teardown(test_event_dispatch, native_setup,
                                                native_teardown),
                cmocka_unit_test_setup_teardown(test_event_bounded, native_setup,
                                                native_teardown),
                cmocka_unit_test_setup_teardown(test_event_broker_gone, native_setup,
                                                native_teardown),
                cmocka_unit_test_setup_teardown(test_threads, native_setup, native_teardown),
                cmocka_unit_test_setup_teardown(test_adopt_child, native_setup, native_teardown),
                cmocka_unit_test_setup_teardown(test_examples, native_setup, native_teardown),
                cmocka_unit_test_setup_teardown(test_emfile, native_setup,
                                                native_delivery_teardown),
                cmocka_unit_test_setup_teardown(test_emfile_max, native_setup,
                                                native_delivery_teardown),
                cmocka_unit_test_setup_teardown(test_fork_readahead, native_setup,
                                                native_delivery_teardown),
                cmocka_unit_test_setup_teardown(test_fork_untouched, native_setup,
                                                native_delivery_teardown),
                cmocka_unit_test_setup_teardown(test_fork_child_sends, native_setup,
                                                native_delivery_teardown),
                cmocka_unit_test_setup_teardown(test_fork_child_disconnects, native_setup,
                                                native_delivery_teardown),
        };

        if (argc == 3 && !strcmp(argv[1], "--adopt"))
                return adopt_child(argv[2]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
