/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UAPI delivery: no message is lost or delivered twice when the receiver is
 * out of descriptors, or when a peer is used across fork()
 *
 * EMFILE. In the kernel, bus1_message_install() installs a message's fds
 * before the message leaves the queue; when the process has no free
 * descriptor it fails with EMFILE and the message stays queued, untouched.
 * The tests lower RLIMIT_NOFILE and fill the descriptor table
 * (util-delivery.h), then RECV with BUS1_RECV_FLAG_INSTALL_FDS a message
 * carrying 1, 3 or 256 fds (256 > 253, the most one sendmsg() carries, so
 * the broker hands them over on FDS carrier records too), also with some but
 * not all of them fitting: RECV is EMFILE (as often as it is tried), the peer
 * stays healthy (PEER_QUERY works, it still polls POLLIN), no descriptor
 * appears in the process, and once descriptors are free again the very same
 * message arrives exactly once: its payload, its handle, its n_fds, and fd
 * numbers in the slice's fd area (after the handle IDs) that name the files
 * sent. Entries without fds ahead of it are received while out of
 * descriptors; entries behind it wait for it; a PEEK before changes nothing.
 *
 * fork(). A peer belongs to one process at a time. In a forked child, the
 * first call on an inherited peer adopts the connection: the child then
 * sees every entry still queued at the broker, including entries the
 * parent's library had read ahead but not delivered, and nothing the parent
 * already received. From then on every call of the parent on that peer
 * fails with EBADFD, so the parent can never receive what the child
 * received; bus1_uapi_close() still works for it and releases everything. A
 * parent that keeps using a peer and a child that never touches it do not
 * disturb each other. The children report through their exit status.
 *
 * Every test runs on its own broker (util-uapi.h) and ends by checking that
 * neither the test process nor the broker kept a descriptor.
 */

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include "util-uapi.h"
#include "util-delivery.h"

#define NODE 0x100ULL
#define PAYLOAD "delivery-test"         /* 13 bytes: the fd area is at 16 + 8 */

/* the files a test sends: memfds, each with its index as content */
typedef struct Files {
        size_t n;
        int fds[BUS1_FD_MAX];
        ino_t ino[BUS1_FD_MAX];
} Files;

static void files_make(Files *fl, size_t n) {
        struct stat st;
        char buf[16];
        int l;

        assert_true(n <= BUS1_FD_MAX);
        fl->n = n;
        for (size_t i = 0; i < n; ++i) {
                fl->fds[i] = memfd_create("test-uapi-delivery", MFD_CLOEXEC);
                assert_true(fl->fds[i] >= 0);
                l = snprintf(buf, sizeof(buf), "fd-%zu", i);
                assert_int_equal(write(fl->fds[i], buf, (size_t)l), l);
                assert_int_equal(fstat(fl->fds[i], &st), 0);
                fl->ino[i] = st.st_ino;
        }
}

static void files_close(Files *fl) {
        for (size_t i = 0; i < fl->n; ++i)
                close(fl->fds[i]);
}

/* SEND of PAYLOAD with one handle and the files */
static int send_files(int from, uint64_t dst, const char *payload, uint64_t handle,
                      const Files *fl) {
        struct iovec vec = { .iov_base = (void *)payload, .iov_len = strlen(payload) };
        struct bus1_cmd_send s = {
                .ptr_destinations = (uintptr_t)&dst,
                .n_destinations = 1,
                .ptr_vecs = (uintptr_t)&vec,
                .n_vecs = 1,
                .ptr_handles = (uintptr_t)&handle,
                .n_handles = 1,
                .ptr_fds = (uintptr_t)fl->fds,
                .n_fds = fl->n,
        };

        return bus1_uapi_ioctl(from, BUS1_CMD_SEND, &s);
}

/*
 * The message send_files() sent arrived, with @fl's files: check it, close
 * the fds, release the slice and the handle reference it brought.
 */
static void expect_files(UapiFixture *f, int peer, const struct bus1_cmd_recv *r,
                         const char *payload, const Files *fl) {
        const uint8_t *pool = uapi_pool(f, peer);
        int got[BUS1_FD_MAX];
        struct stat st;
        char buf[16], want[16];
        int l;

        uapi_assert_data(r, NODE, strlen(payload));
        assert_int_equal(r->msg.flags, 0);
        assert_memory_equal(pool + r->msg.offset, payload, strlen(payload));
        assert_int_equal(r->msg.n_handles, 1);
        assert_int_equal(uapi_slice_handle(pool, r, 0), NODE);
        assert_int_equal(r->msg.n_fds, fl->n);
        /* the fd area follows the payload (8-aligned) and the handle IDs */
        memcpy(got, pool + r->msg.offset + uapi_align8(r->msg.n_bytes) + 8 * r->msg.n_handles,
               sizeof(int) * fl->n);
        for (size_t i = 0; i < fl->n; ++i) {
                assert_true(got[i] >= 0);
                assert_true(fcntl(got[i], F_GETFD) & FD_CLOEXEC);
                for (size_t j = 0; j < i; ++j)
                        assert_true(got[i] != got[j]);
                assert_int_equal(fstat(got[i], &st), 0);
                assert_int_equal(st.st_ino, fl->ino[i]);
                l = snprintf(want, sizeof(want), "fd-%zu", i);
                assert_int_equal(pread(got[i], buf, sizeof(buf), 0), l);
                assert_memory_equal(buf, want, (size_t)l);
        }
        for (size_t i = 0; i < fl->n; ++i)
                close(got[i]);
        assert_int_equal(uapi_slice_release(peer, r->msg.offset), 0);
        assert_int_equal(uapi_release(peer, NODE), 0);
}

/*
 * RECV (INSTALL_FDS) twice while the process has only @spare free
 * descriptors, the front entry carrying more fds than that: both are
 * EMFILE, the peer answers PEER_QUERY and polls readable, and no descriptor
 * appeared or went.
 */
static void recv_emfile(int peer, unsigned int spare) {
        struct bus1_cmd_peer_reset q;
        struct bus1_cmd_recv r;
        int res[2] = { 1, 1 }, rq = 1, sq;
        short ev = 0;
        unsigned int n;

        n = test_count_fds(0);
        sq = delivery_squeeze(spare);
        if (sq == 0) {
                res[0] = uapi_recv(peer, BUS1_RECV_FLAG_INSTALL_FDS, &r);
                res[1] = uapi_recv(peer, BUS1_RECV_FLAG_INSTALL_FDS, &r);
                rq = uapi_query(peer, &q);
                ev = delivery_poll(peer, POLLIN, 0);
                delivery_unsqueeze();
        }
        assert_int_equal(sq, 0);
        assert_int_equal(res[0], -EMFILE);
        assert_int_equal(res[1], -EMFILE);
        assert_int_equal(rq, 0);
        assert_true(ev > 0 && (ev & POLLIN));
        assert_int_equal(test_count_fds(0), n);
        /* and with descriptors back, before the RECV that gets it */
        assert_int_equal(uapi_query(peer, &q), 0);
        assert_true(uapi_poll(peer, POLLIN, 0) & POLLIN);
}

/* @n_fds fds, @spare free descriptors: EMFILE, then the same message once */
static void emfile_roundtrip(void **state, size_t n_fds, unsigned int spare) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        Files fl;
        unsigned int n;
        uint64_t h;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        files_make(&fl, n_fds);
        assert_int_equal(send_files(b, h, PAYLOAD, h, &fl), 0);
        files_close(&fl);

        recv_emfile(a, spare);

        n = test_count_fds(0);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        assert_int_equal(test_count_fds(0), n + n_fds);
        expect_files(f, a, &r, PAYLOAD, &fl);
        assert_int_equal(test_count_fds(0), n);
        /* exactly once */
        uapi_expect_empty(a);
        uapi_finish(f);
}

/* one fd, no free descriptor */
static void test_emfile_one(void **state) {
        emfile_roundtrip(state, 1, 0);
}

/* three fds, no free descriptor */
static void test_emfile_three(void **state) {
        emfile_roundtrip(state, 3, 0);
}

/* three fds, one free descriptor: some fit, not all; none is kept */
static void test_emfile_partial(void **state) {
        emfile_roundtrip(state, 3, 1);
}

/* 256 fds (carrier records), no free descriptor */
static void test_emfile_max(void **state) {
        emfile_roundtrip(state, BUS1_FD_MAX, 0);
}

/* 256 fds, one free descriptor */
static void test_emfile_max_one_free(void **state) {
        emfile_roundtrip(state, BUS1_FD_MAX, 1);
}

/* 256 fds, 100 free */
static void test_emfile_max_some_free(void **state) {
        emfile_roundtrip(state, BUS1_FD_MAX, 100);
}

/* 256 fds, 254 free: more than one sendmsg() carries fit, not all */
static void test_emfile_max_partial(void **state) {
        emfile_roundtrip(state, BUS1_FD_MAX, BUS1_FD_MAX - 2);
}

/*
 * The message with fds is not the first: the entry without fds ahead of it
 * is received while out of descriptors, the one behind it waits, in order.
 */
static void test_emfile_not_first(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        int a, b, res = 1, sq;
        Files fl;
        uint64_t h;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        files_make(&fl, 3);
        assert_int_equal(uapi_send_str(b, h, "ahead"), 0);
        assert_int_equal(send_files(b, h, PAYLOAD, h, &fl), 0);
        assert_int_equal(uapi_send_str(b, h, "behind"), 0);
        files_close(&fl);

        sq = delivery_squeeze(0);
        if (sq == 0) {
                res = uapi_recv(a, BUS1_RECV_FLAG_INSTALL_FDS, &r);
                delivery_unsqueeze();
        }
        assert_int_equal(sq, 0);
        assert_int_equal(res, 0);
        uapi_assert_data(&r, NODE, 5);
        assert_int_equal(r.msg.n_fds, 0);
        assert_memory_equal(uapi_pool(f, a) + r.msg.offset, "ahead", 5);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);

        /* "behind" does not overtake it, however often it is tried */
        recv_emfile(a, 0);
        recv_emfile(a, 2);

        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        expect_files(f, a, &r, PAYLOAD, &fl);
        uapi_expect_str(f, a, NODE, "behind");
        uapi_expect_empty(a);
        uapi_finish(f);
}

/* PEEK, then an EMFILE RECV, then the RECV that gets it, in the same slice */
static void test_emfile_after_peek(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        uint64_t h, off;
        unsigned int n;
        Files fl;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        files_make(&fl, 3);
        assert_int_equal(send_files(b, h, PAYLOAD, h, &fl), 0);
        files_close(&fl);

        n = test_count_fds(0);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK | BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        uapi_assert_data(&r, NODE, strlen(PAYLOAD));
        assert_int_equal(r.msg.n_handles, 1);
        assert_memory_equal(uapi_pool(f, a) + r.msg.offset, PAYLOAD, strlen(PAYLOAD));
        off = r.msg.offset;
        /* a PEEK installs nothing */
        assert_int_equal(test_count_fds(0), n);

        recv_emfile(a, 0);

        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_int_equal(r.msg.offset, off);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        assert_int_equal(r.msg.offset, off);
        expect_files(f, a, &r, PAYLOAD, &fl);
        uapi_expect_empty(a);
        uapi_finish(f);
}

/*
 * The fds are the receiver's quota until the message is dequeued; an EMFILE
 * RECV dequeues nothing, so the sender still cannot exceed it, and the
 * successful RECV returns it.
 */
static void test_emfile_quota_kept(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        Files fl, one;
        uint64_t h;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        h = uapi_give(a, NODE, b);
        /* a holds at most one fd in flight */
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32, 1),
                         0);
        files_make(&fl, 1);
        files_make(&one, 1);
        assert_int_equal(send_files(b, h, PAYLOAD, h, &fl), 0);
        assert_int_equal(send_files(b, h, "more", h, &one), -EDQUOT);

        recv_emfile(a, 0);
        assert_int_equal(send_files(b, h, "more", h, &one), -EDQUOT);

        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        expect_files(f, a, &r, PAYLOAD, &fl);
        assert_int_equal(send_files(b, h, "more", h, &one), 0);
        files_close(&fl);
        files_close(&one);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        expect_files(f, a, &r, "more", &one);
        uapi_expect_empty(a);
        uapi_finish(f);
}

/* ---- fork ---- */

typedef struct ForkCtx {
        UapiFixture *f;
        int a, b;
        uint64_t h;             /* a handle of a's peer to a node of b's, or of b's to a's */
} ForkCtx;

/* in a child: the next entry of @peer is the string @str to @dst */
static void child_expect_str(const uint8_t *pool, int peer, uint64_t dst, const char *str) {
        struct bus1_cmd_recv r;

        CHILD_EQ(uapi_recv(peer, 0, &r), 0);
        CHILD_EQ(r.msg.type, BUS1_MSG_DATA);
        CHILD_EQ(r.msg.destination, dst);
        CHILD_EQ(r.msg.n_bytes, strlen(str));
        CHILD_CHECK(r.msg.offset + r.msg.n_bytes <= UAPI_POOL_SIZE);
        CHILD_CHECK(!memcmp(pool + r.msg.offset, str, strlen(str)));
        CHILD_EQ(uapi_slice_release(peer, r.msg.offset), 0);
}

/*
 * The parent received "1" and read "2" and "3" ahead (a round trip buffers
 * every entry pushed before its reply). The child's first call adopts A: it
 * gets "2" and "3", in order, then nothing. The pool mapping inherited from
 * the parent shows the child's slices (it is the same pool).
 */
static int child_readahead(void *userdata) {
        ForkCtx *c = userdata;
        struct bus1_cmd_recv r;
        const uint8_t *pool = uapi_pool(c->f, c->a);

        child_expect_str(pool, c->a, NODE, "2");
        child_expect_str(pool, c->a, NODE, "3");
        CHILD_EQ(uapi_recv(c->a, 0, &r), -EAGAIN);
        return 0;
}

/* every call of the parent on a peer a child adopted is EBADFD */
static void assert_parent_locked_out(int a, uint64_t h) {
        struct bus1_cmd_peer_reset q;
        struct bus1_cmd_recv r;
        uint64_t id = NODE;

        assert_int_equal(uapi_recv(a, 0, &r), -EBADFD);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_INSTALL_FDS, &r), -EBADFD);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), -EBADFD);
        assert_int_equal(uapi_query(a, &q), -EBADFD);
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32,
                                    UAPI_KEEP32), -EBADFD);
        assert_int_equal(uapi_send_str(a, h, "x"), -EBADFD);
        assert_int_equal(uapi_transfer(a, NODE, -1, NULL), -EBADFD);
        assert_int_equal(uapi_release(a, h), -EBADFD);
        assert_int_equal(uapi_destroy(a, 0, &id, 1), -EBADFD);
        assert_int_equal(uapi_slice_release(a, 0), -EBADFD);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_DISCONNECT, NULL), -EBADFD);
}

static void test_fork_readahead(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q;
        ForkCtx c = { .f = f };
        pid_t pid;

        c.a = uapi_peer(f);
        c.b = uapi_peer(f);
        c.h = uapi_give(c.a, NODE, c.b);
        assert_int_equal(uapi_send_str(c.b, c.h, "1"), 0);
        assert_int_equal(uapi_send_str(c.b, c.h, "2"), 0);
        assert_int_equal(uapi_send_str(c.b, c.h, "3"), 0);
        /* a round trip: the library reads every pushed entry ahead */
        assert_int_equal(uapi_query(c.a, &q), 0);
        uapi_expect_str(f, c.a, NODE, "1");

        pid = delivery_fork(child_readahead, &c);
        assert_true(pid > 0);
        delivery_reap(pid);

        /* the parent gets neither "2" nor "3" (nor "1" again): the peer is the child's */
        assert_parent_locked_out(c.a, c.h);
        assert_parent_locked_out(c.a, c.h);
        /* B is still the parent's and reaches A's node (A's connection is open) */
        assert_int_equal(uapi_send_str(c.b, c.h, "4"), 0);
        assert_int_equal(uapi_query(c.b, &q), 0);
        uapi_expect_empty(c.b);
        assert_int_equal(uapi_close(f, c.a), 0);
        uapi_finish(f);
}

/* touches nothing inherited */
static int child_idle(void *userdata) {
        (void)userdata;
        return 0;
}

/* adopts B only: sends on it, never touches A */
static int child_uses_b(void *userdata) {
        ForkCtx *c = userdata;
        struct bus1_cmd_peer_reset q;

        CHILD_EQ(uapi_send_str(c->b, c->h, "from the child"), 0);
        CHILD_EQ(uapi_query(c->b, &q), 0);
        return 0;
}

/*
 * A child that never touches A: the parent keeps receiving on A normally,
 * what it had read ahead and what comes later. A child that adopts B takes
 * only B.
 */
static void test_fork_untouched(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q;
        struct bus1_cmd_recv r;
        ForkCtx c = { .f = f };
        pid_t pid;

        c.a = uapi_peer(f);
        c.b = uapi_peer(f);
        c.h = uapi_give(c.a, NODE, c.b);
        assert_int_equal(uapi_send_str(c.b, c.h, "1"), 0);
        assert_int_equal(uapi_send_str(c.b, c.h, "2"), 0);
        assert_int_equal(uapi_query(c.a, &q), 0);
        uapi_expect_str(f, c.a, NODE, "1");

        pid = delivery_fork(child_idle, &c);
        assert_true(pid > 0);
        delivery_reap(pid);

        uapi_expect_str(f, c.a, NODE, "2");
        assert_int_equal(uapi_send_str(c.b, c.h, "3"), 0);
        uapi_expect_str(f, c.a, NODE, "3");
        uapi_expect_empty(c.a);
        assert_int_equal(uapi_send_str(c.b, c.h, "4"), 0);
        assert_int_equal(uapi_query(c.a, &q), 0);

        /* now a child that adopts B: A stays the parent's, B is lost to it */
        pid = delivery_fork(child_uses_b, &c);
        assert_true(pid > 0);
        delivery_reap(pid);

        uapi_expect_str(f, c.a, NODE, "4");
        /* sent by the child through B (credentials: not asserted here) */
        assert_int_equal(uapi_recv(c.a, 0, &r), 0);
        assert_int_equal(r.msg.type, BUS1_MSG_DATA);
        assert_int_equal(r.msg.destination, NODE);
        assert_int_equal(r.msg.n_bytes, 14);
        assert_memory_equal(uapi_pool(f, c.a) + r.msg.offset, "from the child", 14);
        assert_int_equal(uapi_slice_release(c.a, r.msg.offset), 0);
        uapi_expect_empty(c.a);
        assert_int_equal(uapi_query(c.b, &q), -EBADFD);
        assert_int_equal(uapi_send_str(c.b, c.h, "x"), -EBADFD);
        assert_int_equal(uapi_close(f, c.b), 0);
        uapi_finish(f);
}

/* adopts A, sends to B's node and to itself, receives, queries */
static int child_sends(void *userdata) {
        ForkCtx *c = userdata;
        struct bus1_cmd_peer_reset q;
        struct bus1_cmd_recv r;
        const uint8_t *pool = uapi_pool(c->f, c->a);
        uint64_t self = NODE;

        CHILD_EQ(uapi_send_str(c->a, c->h, "child to b"), 0);
        CHILD_EQ(uapi_send_str(c->a, self, "child to itself"), 0);
        CHILD_EQ(uapi_query(c->a, &q), 0);
        child_expect_str(pool, c->a, NODE, "child to itself");
        CHILD_EQ(uapi_recv(c->a, 0, &r), -EAGAIN);
        return 0;
}

/*
 * The child adopts A and uses it; the parent is locked out, and its
 * bus1_uapi_close() of A still works, leaks nothing, and (the child being
 * gone) ends the peer: B sees A's handle released.
 */
static void test_fork_child_sends(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        ForkCtx c = { .f = f };
        pid_t pid;

        c.a = uapi_peer(f);
        c.b = uapi_peer(f);
        c.h = uapi_give(c.b, 0x200, c.a);

        pid = delivery_fork(child_sends, &c);
        assert_true(pid > 0);
        delivery_reap(pid);

        assert_parent_locked_out(c.a, c.h);
        assert_int_equal(uapi_recv(c.b, 0, &r), 0);
        assert_int_equal(r.msg.type, BUS1_MSG_DATA);
        assert_int_equal(r.msg.destination, 0x200);
        assert_int_equal(r.msg.n_bytes, 10);
        assert_memory_equal(uapi_pool(f, c.b) + r.msg.offset, "child to b", 10);
        assert_int_equal(uapi_slice_release(c.b, r.msg.offset), 0);
        uapi_expect_empty(c.b);

        assert_int_equal(uapi_close(f, c.a), 0);
        assert_true(uapi_poll(c.b, POLLIN, 5000) & POLLIN);
        uapi_expect_notification(c.b, BUS1_MSG_NODE_RELEASE, 0x200);
        uapi_expect_empty(c.b);
        uapi_finish(f);
}

/* adopts A and disconnects it */
static int child_disconnects(void *userdata) {
        ForkCtx *c = userdata;
        struct bus1_cmd_peer_reset q;

        CHILD_EQ(bus1_uapi_ioctl(c->a, BUS1_CMD_PEER_DISCONNECT, NULL), 0);
        CHILD_EQ(uapi_query(c->a, &q), -ESHUTDOWN);
        CHILD_EQ(bus1_uapi_ioctl(c->a, BUS1_CMD_PEER_DISCONNECT, NULL), -ESHUTDOWN);
        return 0;
}

/*
 * The child's PEER_DISCONNECT of A is the peer's: B sees A's node destroyed
 * and A's handle released, sends to A's node are ESHUTDOWN, and the
 * parent's calls on A are EBADFD.
 */
static void test_fork_child_disconnects(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r1, r2;
        ForkCtx c = { .f = f };
        uint64_t ha;
        pid_t pid;

        c.a = uapi_peer(f);
        c.b = uapi_peer(f);
        ha = uapi_give(c.a, NODE, c.b);
        c.h = uapi_give(c.b, 0x200, c.a);
        assert_int_equal(uapi_send_str(c.b, ha, "before"), 0);

        pid = delivery_fork(child_disconnects, &c);
        assert_true(pid > 0);
        delivery_reap(pid);

        assert_true(uapi_poll(c.b, POLLIN, 5000) & POLLIN);
        assert_int_equal(uapi_recv(c.b, 0, &r1), 0);
        assert_int_equal(uapi_recv(c.b, 0, &r2), 0);
        if (r1.msg.type == BUS1_MSG_NODE_DESTROY) {
                uapi_assert_notification(&r1, BUS1_MSG_NODE_DESTROY, ha);
                uapi_assert_notification(&r2, BUS1_MSG_NODE_RELEASE, 0x200);
        } else {
                uapi_assert_notification(&r1, BUS1_MSG_NODE_RELEASE, 0x200);
                uapi_assert_notification(&r2, BUS1_MSG_NODE_DESTROY, ha);
        }
        assert_int_equal(r2.msg.flags, 0);
        uapi_expect_empty(c.b);
        assert_int_equal(uapi_send_str(c.b, ha, "x"), -ESHUTDOWN);

        assert_parent_locked_out(c.a, c.h);
        assert_int_equal(uapi_close(f, c.a), 0);
        uapi_finish(f);
}

/*
 * The child adopts A (the parent had already met EMFILE on the entry), and
 * is out of descriptors too: EMFILE there, then the entry, once.
 */
static int child_emfile(void *userdata) {
        ForkCtx *c = userdata;
        struct bus1_cmd_recv r;
        const uint8_t *pool = uapi_pool(c->f, c->a);
        struct bus1_cmd_peer_reset q;
        int res[2] = { 1, 1 }, got, sq;

        /* adopt first: the HELLO's reply brings the pool and ring fds */
        CHILD_EQ(uapi_query(c->a, &q), 0);
        sq = delivery_squeeze(0);
        if (sq == 0) {
                res[0] = uapi_recv(c->a, BUS1_RECV_FLAG_INSTALL_FDS, &r);
                res[1] = uapi_recv(c->a, BUS1_RECV_FLAG_INSTALL_FDS, &r);
                delivery_unsqueeze();
        }
        CHILD_EQ(sq, 0);
        CHILD_EQ(res[0], -EMFILE);
        CHILD_EQ(res[1], -EMFILE);
        CHILD_EQ(uapi_recv(c->a, BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        CHILD_EQ(r.msg.n_bytes, strlen(PAYLOAD));
        CHILD_CHECK(!memcmp(pool + r.msg.offset, PAYLOAD, strlen(PAYLOAD)));
        CHILD_EQ(r.msg.n_fds, 1);
        memcpy(&got, pool + r.msg.offset + uapi_align8(r.msg.n_bytes) + 8 * r.msg.n_handles,
               sizeof(got));
        CHILD_CHECK(got >= 0 && fcntl(got, F_GETFD) >= 0);
        close(got);
        CHILD_EQ(uapi_recv(c->a, 0, &r), -EAGAIN);
        return 0;
}

static void test_fork_emfile(void **state) {
        UapiFixture *f = *state;
        ForkCtx c = { .f = f };
        Files fl;
        pid_t pid;

        c.a = uapi_peer(f);
        c.b = uapi_peer(f);
        c.h = uapi_give(c.a, NODE, c.b);
        files_make(&fl, 1);
        assert_int_equal(send_files(c.b, c.h, PAYLOAD, c.h, &fl), 0);
        files_close(&fl);
        recv_emfile(c.a, 0);

        pid = delivery_fork(child_emfile, &c);
        assert_true(pid > 0);
        delivery_reap(pid);
        assert_parent_locked_out(c.a, c.h);
        uapi_finish(f);
}

static int delivery_teardown(void **state) {
        delivery_cleanup();
        return uapi_teardown(state);
}

#define T(_fn) cmocka_unit_test_setup_teardown(_fn, uapi_setup, delivery_teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_emfile_one),
                T(test_emfile_three),
                T(test_emfile_partial),
                T(test_emfile_max),
                T(test_emfile_max_one_free),
                T(test_emfile_max_some_free),
                T(test_emfile_max_partial),
                T(test_emfile_not_first),
                T(test_emfile_after_peek),
                T(test_emfile_quota_kept),
                T(test_fork_readahead),
                T(test_fork_untouched),
                T(test_fork_child_sends),
                T(test_fork_child_disconnects),
                T(test_fork_emfile),
        };

        /* TEST_FILTER=test_name runs one test (cmocka pattern) */
        if (getenv("TEST_FILTER"))
                cmocka_set_test_filter(getenv("TEST_FILTER"));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
