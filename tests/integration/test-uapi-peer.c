/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UAPI peer lifecycle: query, reset and flush, the seed, RECV corner cases,
 * disconnect and close, poll readiness, and the ioctl entry point itself
 * (docs/model.md §5, §6) through a real broker
 */

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include "util-uapi.h"

/* the kernel's PEER_DISCONNECT takes the value 0 as its argument, not a pointer */
static int disconnect(int peer) {
        return bus1_uapi_ioctl(peer, BUS1_CMD_PEER_DISCONNECT, NULL);
}

static void assert_limits(int peer, uint64_t peer_flags, uint32_t slices, uint32_t handles,
                          uint32_t bytes, uint32_t fds) {
        struct bus1_cmd_peer_reset q;

        assert_int_equal(uapi_query(peer, &q), 0);
        assert_int_equal(q.flags, 0);
        assert_int_equal(q.peer_flags, peer_flags);
        assert_int_equal(q.max_slices, slices);
        assert_int_equal(q.max_handles, handles);
        assert_int_equal(q.max_inflight_bytes, bytes);
        assert_int_equal(q.max_inflight_fds, fds);
}

/* PEER_QUERY: the defaults; flags must be 0 */
static void test_query(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q;
        int a;

        a = uapi_peer(f);
        assert_limits(a, 0, 16384, 65536, 16 * 1024 * 1024, 4096);

        q = (struct bus1_cmd_peer_reset){ .flags = 1 };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_QUERY, &q), -EINVAL);
        q = (struct bus1_cmd_peer_reset){ .flags = 1ULL << 63 };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_QUERY, &q), -EINVAL);

        /* the fields in the argument are outputs only */
        q = (struct bus1_cmd_peer_reset){ .peer_flags = 7, .max_slices = 3 };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_QUERY, &q), 0);
        assert_int_equal(q.peer_flags, 0);
        assert_int_equal(q.max_slices, 16384);

        uapi_finish(f);
}

/* PEER_RESET: all ones keeps a field; bad values change nothing */
static void test_reset_limits(void **state) {
        UapiFixture *f = *state;
        int a;

        a = uapi_peer(f);

        /* all ones everywhere: nothing changes */
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32,
                                    UAPI_KEEP32), 0);
        assert_limits(a, 0, 16384, 65536, 16 * 1024 * 1024, 4096);

        /* one field at a time */
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, 10, UAPI_KEEP32, UAPI_KEEP32,
                                    UAPI_KEEP32), 0);
        assert_limits(a, 0, 10, 65536, 16 * 1024 * 1024, 4096);
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, 20, UAPI_KEEP32,
                                    UAPI_KEEP32), 0);
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, UAPI_KEEP32, 30,
                                    UAPI_KEEP32), 0);
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32,
                                    40), 0);
        assert_limits(a, 0, 10, 20, 30, 40);
        /* INT_MAX is the largest limit; 0 is a limit too */
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, 0x7fffffff, 0, UAPI_KEEP32,
                                    UAPI_KEEP32), 0);
        assert_limits(a, 0, 0x7fffffff, 0, 30, 40);

        /* above INT_MAX (and not all ones): EINVAL, and nothing changes */
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, 0x80000000U, 1, 1, 1), -EINVAL);
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, 1, 0x80000000U, 1, 1), -EINVAL);
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, 1, 1, 0xfffffffeU, 1), -EINVAL);
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, 1, 1, 1, 0x80000001U), -EINVAL);
        assert_limits(a, 0, 0x7fffffff, 0, 30, 40);

        /* unknown flags or peer flags: EINVAL, and nothing changes */
        assert_int_equal(uapi_reset(a, 1ULL << 2, UAPI_KEEP64, 1, 1, 1, 1), -EINVAL);
        assert_int_equal(uapi_reset(a, 1ULL << 63, UAPI_KEEP64, 1, 1, 1, 1), -EINVAL);
        assert_int_equal(uapi_reset(a, 0, 2, 1, 1, 1, 1), -EINVAL);
        assert_int_equal(uapi_reset(a, 0, BUS1_PEER_FLAG_WANT_SECCTX | (1ULL << 40), 1, 1, 1,
                                    1), -EINVAL);
        assert_limits(a, 0, 0x7fffffff, 0, 30, 40);

        /* WANT_SECCTX is the one peer flag; all ones keeps it */
        assert_int_equal(uapi_reset(a, 0, BUS1_PEER_FLAG_WANT_SECCTX, UAPI_KEEP32,
                                    UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32), 0);
        assert_limits(a, BUS1_PEER_FLAG_WANT_SECCTX, 0x7fffffff, 0, 30, 40);
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32,
                                    UAPI_KEEP32), 0);
        assert_limits(a, BUS1_PEER_FLAG_WANT_SECCTX, 0x7fffffff, 0, 30, 40);
        assert_int_equal(uapi_reset(a, 0, 0, UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32,
                                    UAPI_KEEP32), 0);
        assert_limits(a, 0, 0x7fffffff, 0, 30, 40);

        uapi_finish(f);
}

/* the security label this process's peers have, if an LSM provides one */
static size_t own_secctx(char *buf, size_t size) {
        socklen_t l = (socklen_t)size;
        int sv[2];
        int r;

        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        r = getsockopt(sv[0], SOL_SOCKET, SO_PEERSEC, buf, &l);
        close(sv[0]);
        close(sv[1]);
        if (r < 0)
                return 0;
        while (l > 0 && buf[l - 1] == '\0')
                --l;
        return l;
}

/* WANT_SECCTX: the sender's label follows the payload (where there is one) */
static void test_want_secctx(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_recv r;
        char label[4096];
        size_t n_label;
        uint64_t hb;
        int a, b;

        n_label = own_secctx(label, sizeof(label));
        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);

        /* without the flag: never a context */
        assert_int_equal(uapi_send_str(b, hb, "plain"), 0);
        assert_int_equal(uapi_recv(a, 0, &r), 0);
        uapi_assert_data(&r, 0x100, 5);
        assert_int_equal(r.msg.flags, 0);
        assert_int_equal(r.msg.n_secctx, 0);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);

        assert_int_equal(uapi_reset(a, 0, BUS1_PEER_FLAG_WANT_SECCTX, UAPI_KEEP32,
                                    UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32), 0);
        assert_int_equal(uapi_send_str(b, hb, "labelled"), 0);
        assert_int_equal(uapi_recv(a, 0, &r), 0);
        uapi_assert_data(&r, 0x100, 8);
        assert_memory_equal(uapi_pool(f, a) + r.msg.offset, "labelled", 8);
        if (n_label) {
                assert_int_equal(r.msg.flags, BUS1_MSG_FLAG_HAS_SECCTX);
                assert_int_equal(r.msg.n_secctx, n_label);
                assert_memory_equal(uapi_pool(f, a) + r.msg.offset + 8, label, n_label);
        } else {
                /* no LSM label on this system */
                assert_int_equal(r.msg.flags, 0);
                assert_int_equal(r.msg.n_secctx, 0);
        }
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);

        uapi_finish(f);
}

/*
 * FLUSH: nodes the seed does not pin are destroyed, every handle released,
 * the queue and every slice dropped.
 */
static void test_reset_flush(void **state) {
        UapiFixture *f = *state;
        uint64_t hb1, hb2, hc, handle = 0x200, old_offset;
        struct bus1_cmd_recv r;
        int a, b, c;

        a = uapi_peer(f);
        b = uapi_peer(f);
        c = uapi_peer(f);

        hb1 = uapi_give(a, 0x100, b);
        hb2 = uapi_give(a, 0x200, b);
        hc = uapi_give(c, 0x300, a);
        /* a second reference on 0x100, and the seed pins 0x200 */
        assert_int_equal(uapi_give(a, 0x100, -1), 0x100);
        assert_int_equal(uapi_send(a, NULL, 0, BUS1_SEND_FLAG_SEED, NULL, "seed", 4, &handle,
                                   1), 0);

        /* a received slice not released yet, and a queued message */
        assert_int_equal(uapi_send_str(b, hb1, "received"), 0);
        assert_int_equal(uapi_recv(a, 0, &r), 0);
        old_offset = r.msg.offset;
        assert_int_equal(uapi_send_str(b, hb1, "queued"), 0);

        assert_int_equal(uapi_reset(a, BUS1_PEER_RESET_FLAG_FLUSH, UAPI_KEEP64, UAPI_KEEP32,
                                    UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32), 0);

        /* the queue is empty and the old slice gone */
        uapi_expect_empty(a);
        assert_int_equal(uapi_slice_release(a, old_offset), -ENXIO);

        /* 0x100 was destroyed (B is told), and A's handles were released */
        uapi_expect_notification(b, BUS1_MSG_NODE_DESTROY, hb1);
        uapi_expect_empty(b);
        assert_int_equal(uapi_send_str(b, hb1, "x"), -EHOSTUNREACH);
        assert_int_equal(uapi_release(a, 0x100), -EBUSY);       /* no such handle */
        assert_int_equal(uapi_release(a, hc), -ENXIO);
        uapi_expect_notification(c, BUS1_MSG_NODE_RELEASE, 0x300);
        uapi_expect_empty(c);

        /* 0x200 lives on, pinned by the seed, with only its pinned reference */
        assert_int_equal(uapi_send_str(b, hb2, "still here"), 0);
        uapi_expect_str(f, a, 0x200, "still here");
        assert_int_equal(uapi_release(a, 0x200), -EBUSY);
        /* and the seed is still there */
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_int_equal(r.msg.n_bytes, 4);
        assert_memory_equal(uapi_pool(f, a) + r.msg.offset, "seed", 4);

        /* a flush of an empty peer is fine */
        assert_int_equal(uapi_reset(a, BUS1_PEER_RESET_FLAG_FLUSH, UAPI_KEEP64, UAPI_KEEP32,
                                    UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32), 0);
        uapi_expect_empty(a);

        uapi_finish(f);
}

/* FLUSH_SEED drops the seed; with FLUSH, the nodes it pinned go too */
static void test_reset_flush_seed(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, handle = 0x100;
        struct bus1_cmd_recv r;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);
        assert_int_equal(uapi_send(a, NULL, 0, BUS1_SEND_FLAG_SEED, NULL, "seed", 4, &handle,
                                   1), 0);

        /* FLUSH_SEED alone: the seed goes, the node stays */
        assert_int_equal(uapi_reset(a, BUS1_PEER_RESET_FLAG_FLUSH_SEED, UAPI_KEEP64,
                                    UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32), 0);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, &r), -EAGAIN);
        assert_int_equal(uapi_send_str(b, hb, "alive"), 0);
        uapi_expect_str(f, a, 0x100, "alive");

        /* seed again, then both flags: nothing pins 0x100 any more */
        assert_int_equal(uapi_send(a, NULL, 0, BUS1_SEND_FLAG_SEED, NULL, "seed", 4, &handle,
                                   1), 0);
        assert_int_equal(uapi_reset(a, BUS1_PEER_RESET_FLAG_FLUSH |
                                    BUS1_PEER_RESET_FLAG_FLUSH_SEED, UAPI_KEEP64,
                                    UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32), 0);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED, &r), -EAGAIN);
        uapi_expect_notification(b, BUS1_MSG_NODE_DESTROY, hb);
        assert_int_equal(uapi_send_str(b, hb, "gone"), -EHOSTUNREACH);
        uapi_expect_empty(a);

        uapi_finish(f);
}

/* the seed: set by SEND SEED, read by RECV SEED (with or without PEEK) */
static void test_seed(void **state) {
        UapiFixture *f = *state;
        uint64_t handles[2] = { 0x100, 0 };
        struct bus1_cmd_recv r;
        uint64_t peek_offset, seed_offset;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        handles[1] = uapi_give(b, 0x500, a);

        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED, &r), -EAGAIN);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, &r), -EAGAIN);

        /* SEED needs no destinations and no CONTINUE */
        assert_int_equal(uapi_send(a, &handles[1], 1, BUS1_SEND_FLAG_SEED, NULL, "s", 1, NULL,
                                   0), -EINVAL);
        assert_int_equal(uapi_send(a, NULL, 0, BUS1_SEND_FLAG_SEED | BUS1_SEND_FLAG_CONTINUE,
                                   NULL, "s", 1, NULL, 0), -EINVAL);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED, &r), -EAGAIN);

        assert_int_equal(uapi_send(a, NULL, 0, BUS1_SEND_FLAG_SEED, NULL, "first seed", 10,
                                   handles, 2), 0);
        /* the seed is not a queued message, for anyone */
        uapi_expect_empty(a);
        uapi_expect_empty(b);

        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_int_equal(r.msg.type, BUS1_MSG_DATA);
        assert_int_equal(r.msg.n_bytes, 10);
        assert_int_equal(r.msg.n_handles, 2);
        assert_int_equal(r.msg.uid, (uint32_t)geteuid());
        assert_int_equal(r.msg.pid, (uint32_t)getpid());
        assert_memory_equal(uapi_pool(f, a) + r.msg.offset, "first seed", 10);
        peek_offset = r.msg.offset;
        /* PEEK again: still there */
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_int_equal(r.msg.offset, peek_offset);
        /*
         * The kernel's PEEK published the slice (message.c
         * bus1_message_install()): one SLICE_RELEASE succeeds and changes
         * nothing, the seed stays
         */
        assert_int_equal(uapi_slice_release(a, peek_offset), 0);
        assert_int_equal(uapi_slice_release(a, peek_offset), -ENXIO);

        /* a new seed replaces it */
        assert_int_equal(uapi_send(a, NULL, 0, BUS1_SEND_FLAG_SEED, NULL, "second", 6,
                                   handles, 1), 0);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_int_equal(r.msg.n_bytes, 6);
        assert_int_equal(r.msg.n_handles, 1);
        assert_memory_equal(uapi_pool(f, a) + r.msg.offset, "second", 6);

        /* RECV SEED without PEEK takes it: handles and slice become A's */
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED, &r), 0);
        assert_int_equal(r.msg.type, BUS1_MSG_DATA);
        assert_int_equal(r.msg.n_bytes, 6);
        assert_memory_equal(uapi_pool(f, a) + r.msg.offset, "second", 6);
        assert_int_equal(uapi_slice_handle(uapi_pool(f, a), &r, 0), 0x100);
        seed_offset = r.msg.offset;
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED, &r), -EAGAIN);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, &r), -EAGAIN);
        uapi_expect_empty(a);
        assert_int_equal(uapi_slice_release(a, seed_offset), 0);
        assert_int_equal(uapi_slice_release(a, seed_offset), -ENXIO);
        /* 0x100 got the seed's reference: two in all */
        assert_int_equal(uapi_release(a, 0x100), 0);
        assert_int_equal(uapi_release(a, 0x100), -EBUSY);

        uapi_finish(f);
}

/* RECV: EAGAIN on an empty queue, PEEK does not dequeue */
static void test_recv_peek(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, handle, id;
        struct bus1_cmd_recv r;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);

        uapi_expect_empty(a);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), -EAGAIN);
        /* unknown flags */
        assert_int_equal(uapi_recv(a, 1ULL << 3, &r), -EINVAL);
        assert_int_equal(uapi_recv(a, 1ULL << 63, &r), -EINVAL);

        /* B attaches a handle to its node 0x300 */
        handle = 0x300;
        assert_int_equal(uapi_send(b, &hb, 1, 0, NULL, "one", 3, &handle, 1), 0);
        assert_int_equal(uapi_send_str(b, hb, "two"), 0);

        for (int i = 0; i < 2; ++i) {
                assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), 0);
                uapi_assert_data(&r, 0x100, 3);
                assert_int_equal(r.msg.n_handles, 1);
                assert_memory_equal(uapi_pool(f, a) + r.msg.offset, "one", 3);
        }
        /*
         * PEEK added no handle reference; its slice may be released once
         * (the kernel's PEEK published it), which leaves the entry queued
         */
        id = uapi_slice_handle(uapi_pool(f, a), &r, 0);
        assert_int_equal(uapi_release(a, id), -ENXIO);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), -ENXIO);

        assert_int_equal(uapi_recv(a, 0, &r), 0);
        uapi_assert_data(&r, 0x100, 3);
        id = uapi_slice_handle(uapi_pool(f, a), &r, 0);
        assert_int_equal(id & 7, UAPI_REMOTE_BITS);
        assert_int_equal(uapi_slice_release(a, r.msg.offset), 0);

        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_memory_equal(uapi_pool(f, a) + r.msg.offset, "two", 3);
        uapi_expect_str(f, a, 0x100, "two");
        uapi_expect_empty(a);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), -EAGAIN);

        /* the received handle is A's now: one reference */
        assert_int_equal(uapi_release(a, id), 0);
        assert_int_equal(uapi_release(a, id), -ENXIO);

        uapi_finish(f);
}

/* ERANGE: the slice must lie wholly below max_offset; the entry stays */
static void test_recv_erange(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, handle = 0x300, offset, end;
        struct bus1_cmd_recv r;
        char payload[100];
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);
        memset(payload, 'e', sizeof(payload));

        /* a slice of ALIGN8(100) + 8 = 112 bytes */
        assert_int_equal(uapi_send(b, &hb, 1, 0, NULL, payload, 100, &handle, 1), 0);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), 0);
        offset = r.msg.offset;
        end = offset + 112;

        r = (struct bus1_cmd_recv){ .max_offset = 0 };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), -ERANGE);
        r = (struct bus1_cmd_recv){ .max_offset = offset + 100 };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), -ERANGE);
        r = (struct bus1_cmd_recv){ .max_offset = end - 1 };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), -ERANGE);
        r = (struct bus1_cmd_recv){ .flags = BUS1_RECV_FLAG_PEEK, .max_offset = end - 1 };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), -ERANGE);

        /* the entry is still first in line */
        r = (struct bus1_cmd_recv){ .max_offset = end };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), 0);
        uapi_assert_data(&r, 0x100, 100);
        assert_int_equal(r.msg.offset, offset);
        assert_int_equal(r.msg.n_handles, 1);
        assert_int_equal(uapi_slice_release(a, offset), 0);
        uapi_expect_empty(a);

        /* notifications never fail with ERANGE */
        assert_int_equal(uapi_release(b, hb), 0);
        r = (struct bus1_cmd_recv){ .max_offset = 0 };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), 0);
        uapi_assert_notification(&r, BUS1_MSG_NODE_RELEASE, 0x100);
        uapi_expect_empty(a);

        uapi_finish(f);
}

/* PEER_DISCONNECT: then every command is ESHUTDOWN, for it and towards it */
static void test_disconnect(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q;
        struct bus1_cmd_handle_transfer t;
        struct bus1_cmd_recv r;
        uint64_t ha, hc, hb_of_a, arg, id = 0x100;
        int a, b, c;

        a = uapi_peer(f);
        b = uapi_peer(f);
        c = uapi_peer(f);
        ha = uapi_give(a, 0x100, b);
        hc = uapi_give(c, 0x300, a);
        hb_of_a = uapi_give(b, 0x200, a);

        /* the argument value must be 0 (a pointer, even to 0, is not); it is never read */
        arg = 0;
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_DISCONNECT, &arg), -EINVAL);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_DISCONNECT, (void *)1), -EINVAL);
        assert_int_equal(uapi_query(a, &q), 0);

        /* A sends before it goes: those messages stay queued */
        assert_int_equal(uapi_send_str(a, hc, "last words"), 0);
        assert_int_equal(uapi_send_str(a, hb_of_a, "to b"), 0);

        assert_int_equal(disconnect(a), 0);

        /* every command of A */
        assert_int_equal(disconnect(a), -ESHUTDOWN);
        assert_int_equal(uapi_query(a, &q), -ESHUTDOWN);
        assert_int_equal(uapi_reset(a, 0, UAPI_KEEP64, UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32,
                                    UAPI_KEEP32), -ESHUTDOWN);
        assert_int_equal(uapi_release(a, hc), -ESHUTDOWN);
        assert_int_equal(uapi_transfer(a, 0x100, b, NULL), -ESHUTDOWN);
        assert_int_equal(uapi_transfer(a, 0x400, -1, NULL), -ESHUTDOWN);
        assert_int_equal(uapi_destroy(a, 0, &id, 1), -ESHUTDOWN);
        assert_int_equal(uapi_slice_release(a, 0), -ESHUTDOWN);
        assert_int_equal(uapi_send_str(a, hc, "x"), -ESHUTDOWN);
        assert_int_equal(uapi_send(a, NULL, 0, 0, NULL, "x", 1, NULL, 0), -ESHUTDOWN);
        assert_int_equal(uapi_recv(a, 0, &r), -ESHUTDOWN);
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_SEED, &r), -ESHUTDOWN);

        /* towards A: sends to its nodes and transfers into it */
        assert_int_equal(uapi_send_str(b, ha, "x"), -ESHUTDOWN);
        assert_int_equal(uapi_transfer(b, 0x200, a, NULL), -ESHUTDOWN);
        assert_int_equal(uapi_transfer(c, 0x300, a, NULL), -ESHUTDOWN);
        t = (struct bus1_cmd_handle_transfer){ .src_handle = 0x900, .dst_fd = (uint64_t)a };
        assert_int_equal(bus1_uapi_ioctl(b, BUS1_CMD_HANDLE_TRANSFER, &t), -ESHUTDOWN);

        /* B: "to b" (sent before), then A's node destroyed, then A let go of 0x200 */
        uapi_expect_str(f, b, 0x200, "to b");
        {
                struct bus1_cmd_recv r1, r2;

                assert_int_equal(uapi_recv(b, 0, &r1), 0);
                assert_int_equal(uapi_recv(b, 0, &r2), 0);
                if (r1.msg.type == BUS1_MSG_NODE_DESTROY) {
                        uapi_assert_notification(&r1, BUS1_MSG_NODE_DESTROY, ha);
                        uapi_assert_notification(&r2, BUS1_MSG_NODE_RELEASE, 0x200);
                } else {
                        uapi_assert_notification(&r1, BUS1_MSG_NODE_RELEASE, 0x200);
                        uapi_assert_notification(&r2, BUS1_MSG_NODE_DESTROY, ha);
                }
                assert_int_equal(r2.msg.flags, 0);
        }
        uapi_expect_empty(b);

        /* C: A's last message arrives, with A's credentials, then the release */
        uapi_expect_str(f, c, 0x300, "last words");
        uapi_expect_notification(c, BUS1_MSG_NODE_RELEASE, 0x300);
        uapi_expect_empty(c);

        /* the descriptor stays until closed */
        assert_int_equal(uapi_close(f, a), 0);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_QUERY, &q), -EBADF);

        uapi_finish(f);
}

/* poll: POLLIN when an entry is ready, POLLOUT while connected, only POLLHUP after */
static void test_poll(void **state) {
        UapiFixture *f = *state;
        const short io = POLLIN | POLLOUT;
        struct bus1_cmd_recv r;
        uint64_t hb, id;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);

        assert_true(uapi_poll(a, io, 0) & POLLOUT);
        assert_int_equal(uapi_poll(a, io, 0) & (POLLHUP | POLLERR | POLLNVAL), 0);

        /* right after the send returned, A is readable */
        assert_int_equal(uapi_send_str(b, hb, "ping"), 0);
        assert_int_equal(uapi_poll(a, io, 0), POLLIN | POLLOUT);
        assert_int_equal(uapi_poll(a, POLLIN, 0), POLLIN);
        uapi_expect_str(f, a, 0x100, "ping");

        /* a notification makes it readable too */
        assert_int_equal(uapi_release(b, hb), 0);
        assert_true(uapi_poll(a, POLLIN, 0) & POLLIN);
        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, 0x100);

        /* entries queued by A's own commands: to itself, and its own NODE_DESTROY */
        id = 0x200;
        assert_int_equal(uapi_send_str(a, id, "self"), 0);
        assert_true(uapi_poll(a, POLLIN, 0) & POLLIN);
        uapi_expect_str(f, a, 0x200, "self");
        assert_int_equal(uapi_destroy(a, 0, &id, 1), 0);
        assert_true(uapi_poll(a, POLLIN, 0) & POLLIN);
        uapi_expect_notification(a, BUS1_MSG_NODE_DESTROY, 0x200);

        /* several entries: readable until the last is received */
        hb = uapi_give(a, 0x100, b);
        assert_int_equal(uapi_send_str(b, hb, "1"), 0);
        assert_int_equal(uapi_send_str(b, hb, "2"), 0);
        assert_true(uapi_poll(a, POLLIN, 0) & POLLIN);
        uapi_expect_str(f, a, 0x100, "1");
        assert_true(uapi_poll(a, POLLIN, 0) & POLLIN);
        /* a PEEK leaves it readable */
        assert_int_equal(uapi_recv(a, BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_true(uapi_poll(a, POLLIN, 0) & POLLIN);
        /* entries buffered while A waited for a reply still wake it */
        assert_int_equal(uapi_send_str(b, hb, "3"), 0);
        assert_int_equal(uapi_transfer(a, 0x100, b, NULL), 0);
        assert_true(uapi_poll(a, POLLIN, 0) & POLLIN);
        uapi_expect_str(f, a, 0x100, "2");
        assert_true(uapi_poll(a, POLLIN, 0) & POLLIN);
        uapi_expect_str(f, a, 0x100, "3");

        /* after DISCONNECT: POLLHUP and nothing else */
        assert_int_equal(disconnect(a), 0);
        assert_int_equal(uapi_poll(a, io, 0), POLLHUP);
        assert_int_equal(uapi_poll(a, POLLIN, 0), POLLHUP);
        assert_int_equal(uapi_poll(a, POLLOUT, 0), POLLHUP);
        assert_int_equal(uapi_poll(a, io, 1000), POLLHUP);

        uapi_finish(f);
}

/* closing the connection does what PEER_DISCONNECT does */
static void test_close(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, hb2, hc;
        struct bus1_cmd_recv r1, r2;
        int a, b, c;

        a = uapi_peer(f);
        b = uapi_peer(f);
        c = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);
        hb2 = uapi_give(a, 0x200, b);
        hc = uapi_give(c, 0x300, a);

        assert_int_equal(uapi_send_str(a, hc, "before close"), 0);
        assert_int_equal(uapi_close(f, a), 0);
        assert_int_equal(bus1_uapi_close(a), -EBADF);

        /* the broker notices the close on its own time: wait for B's entries */
        assert_true(uapi_poll(b, POLLIN, 5000) & POLLIN);
        assert_int_equal(uapi_recv(b, 0, &r1), 0);
        assert_int_equal(uapi_recv(b, 0, &r2), 0);
        /* both nodes in one transaction */
        assert_int_equal(r1.msg.type, BUS1_MSG_NODE_DESTROY);
        assert_int_equal(r2.msg.type, BUS1_MSG_NODE_DESTROY);
        assert_true((r1.msg.destination == hb && r2.msg.destination == hb2) ||
                    (r1.msg.destination == hb2 && r2.msg.destination == hb));
        uapi_assert_notification(&r1, BUS1_MSG_NODE_DESTROY, r1.msg.destination);
        uapi_assert_notification(&r2, BUS1_MSG_NODE_DESTROY, r2.msg.destination);
        assert_int_equal(r1.msg.flags, BUS1_MSG_FLAG_CONTINUE);
        assert_int_equal(r2.msg.flags, 0);
        uapi_expect_empty(b);

        assert_int_equal(uapi_send_str(b, hb, "x"), -ESHUTDOWN);
        assert_int_equal(uapi_send_str(b, hb2, "x"), -ESHUTDOWN);

        /* what A sent is still delivered; A's handle is released */
        uapi_expect_str(f, c, 0x300, "before close");
        uapi_expect_notification(c, BUS1_MSG_NODE_RELEASE, 0x300);
        uapi_expect_empty(c);

        uapi_finish(f);
}

/* the ioctl entry point: non-peer descriptors, unknown commands, NULL */
static void test_ioctl(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q;
        int a, p[2], pool_fd;

        a = uapi_peer(f);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pool_fd = bus1_uapi_pool_fd(a);

        /* a descriptor that is not a peer: ENOTTY; a closed one: EBADF */
        assert_int_equal(bus1_uapi_ioctl(p[0], BUS1_CMD_PEER_QUERY, &q), -ENOTTY);
        assert_int_equal(bus1_uapi_ioctl(pool_fd, BUS1_CMD_PEER_QUERY, &q), -ENOTTY);
        assert_int_equal(bus1_uapi_ioctl(1000, BUS1_CMD_PEER_QUERY, &q), -EBADF);
        assert_int_equal(bus1_uapi_ioctl(-1, BUS1_CMD_PEER_QUERY, &q), -EBADF);
        assert_int_equal(bus1_uapi_pool_fd(p[0]), -EBADF);
        assert_int_equal(bus1_uapi_close(p[0]), -EBADF);
        /* the pipe is untouched */
        assert_int_equal(write(p[1], "x", 1), 1);

        /* unknown commands, including a known number with another size */
        assert_int_equal(bus1_uapi_ioctl(a, _IOWR(BUS1_IOCTL_MAGIC, 0x60, __u64), &q), -ENOTTY);
        assert_int_equal(bus1_uapi_ioctl(a, _IOWR(BUS1_IOCTL_MAGIC, 0x01, __u64), &q), -ENOTTY);
        assert_int_equal(bus1_uapi_ioctl(a, _IOWR(0x97, 0x01, struct bus1_cmd_peer_reset), &q),
                         -ENOTTY);
        assert_int_equal(bus1_uapi_ioctl(a, 0, &q), -ENOTTY);
        assert_int_equal(bus1_uapi_ioctl(a, FIONREAD, &q), -ENOTTY);

        /* a NULL argument */
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_PEER_QUERY, NULL), -EFAULT);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_SEND, NULL), -EFAULT);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, NULL), -EFAULT);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_HANDLE_RELEASE, NULL), -EFAULT);

        /* none of it hurt the peer */
        assert_int_equal(uapi_query(a, &q), 0);
        assert_int_equal(q.max_slices, 16384);

        close(p[0]);
        close(p[1]);
        uapi_finish(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_query, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_reset_limits, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_want_secctx, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_reset_flush, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_reset_flush_seed, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_seed, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_recv_peek, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_recv_erange, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_disconnect, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_poll, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_close, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_ioctl, uapi_setup, uapi_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
