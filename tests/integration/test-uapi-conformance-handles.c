/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UAPI conformance: BUS1_CMD_HANDLE_RELEASE, BUS1_CMD_HANDLE_TRANSFER and
 * BUS1_CMD_NODES_DESTROY, checked against the 2016 kernel module
 * (ipc/bus1/peer.c bus1_peer_ioctl_handle_release(),
 * bus1_peer_ioctl_handle_transfer(), bus1_peer_transfer(),
 * bus1_peer_ioctl_nodes_destroy(); handle.c bus1_handle_import()): each
 * errno, the order of the checks, atomicity, and what is written back.
 */

#include "util-uapi-conformance.h"

/* the next two entries are NODE_DESTROY for @x and @y, in either order */
static void expect_two_destroys(int peer, uint64_t x, uint64_t y) {
        struct bus1_cmd_recv r1, r2;

        assert_int_equal(uapi_recv(peer, 0, &r1), 0);
        assert_int_equal(uapi_recv(peer, 0, &r2), 0);
        assert_int_equal(r1.msg.type, BUS1_MSG_NODE_DESTROY);
        assert_int_equal(r2.msg.type, BUS1_MSG_NODE_DESTROY);
        assert_true((r1.msg.destination == x && r2.msg.destination == y) ||
                    (r1.msg.destination == y && r2.msg.destination == x));
}

/* HANDLE_TRANSFER with a sentinel dst_handle; returns the result, *t as left */
static int transfer_checked(int from, uint64_t flags, uint64_t src, uint64_t dst_fd,
                            struct bus1_cmd_handle_transfer *t) {
        struct bus1_cmd_handle_transfer before;
        int r;

        conf_fill(t, sizeof(*t));
        t->flags = flags;
        t->src_handle = src;
        t->dst_fd = dst_fd;
        before = *t;
        r = bus1_uapi_ioctl(from, BUS1_CMD_HANDLE_TRANSFER, t);
        /* the inputs are never changed; dst_handle only on success */
        assert_int_equal(t->flags, before.flags);
        assert_int_equal(t->src_handle, before.src_handle);
        assert_int_equal(t->dst_fd, before.dst_fd);
        if (r < 0)
                assert_memory_equal(t, &before, sizeof(*t));
        return r;
}

/*
 * peer.c bus1_peer_ioctl_handle_release(): bus1_handle_import() of an
 * unknown managed (or remote) ID is ENXIO; an unmanaged ID the peer does
 * not hold is lazily created, then forgotten, EBUSY; the owner's last
 * reference to a live node is EBUSY; to a destroyed node it may go.
 */
static void test_handle_release(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, id, node = 0x100;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);

        assert_int_equal(uapi_release(a, CONF_ID_UNKNOWN), -ENXIO);
        assert_int_equal(uapi_release(a, CONF_ID_UNKNOWN_OWN), -ENXIO);
        assert_int_equal(uapi_release(a, 0x1), -ENXIO);
        assert_int_equal(uapi_release(a, 0x2), -ENXIO);
        assert_int_equal(uapi_release(a, UINT64_MAX), -ENXIO);

        /* unmanaged and not held: EBUSY, every time (nothing is kept) */
        assert_int_equal(uapi_release(a, 0x100), -EBUSY);
        assert_int_equal(uapi_release(a, 0x100), -EBUSY);
        assert_int_equal(uapi_release(a, 0), -EBUSY);
        assert_int_equal(uapi_release(a, 0x4), -EBUSY);
        uapi_expect_empty(a);

        /* the owner's last reference to a live node */
        hb = uapi_give(a, 0x100, b);
        assert_int_equal(uapi_release(a, 0x100), -EBUSY);
        /* the holder's reference goes, then the ID is unknown */
        assert_int_equal(uapi_release(b, hb), 0);
        assert_int_equal(uapi_release(b, hb), -ENXIO);
        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, 0x100);
        assert_int_equal(uapi_release(a, 0x100), -EBUSY);

        /* destroyed: the owner's last reference may go; then 0x100 is free */
        assert_int_equal(uapi_destroy(a, 0, &node, 1), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_DESTROY, 0x100);
        assert_int_equal(uapi_release(a, 0x100), 0);
        assert_int_equal(uapi_release(a, 0x100), -EBUSY);

        /* the argument is not written */
        id = CONF_ID_UNKNOWN;
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_HANDLE_RELEASE, &id), -ENXIO);
        assert_int_equal(id, CONF_ID_UNKNOWN);
        uapi_expect_empty(a);
        uapi_expect_empty(b);

        uapi_finish(f);
}

/*
 * peer.c bus1_peer_ioctl_handle_transfer(): flags (EINVAL) first, then
 * dst_fd: fdget() fails → EBADF, not a bus1 file → EOPNOTSUPP, a
 * disconnected peer → ESHUTDOWN; only then the source handle
 * (bus1_handle_import(): ENXIO). Nothing is copied back on failure.
 */
static void test_transfer_order(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_handle_transfer t;
        int a, b, gone, p[2], closed;

        a = uapi_peer(f);
        b = uapi_peer(f);
        gone = uapi_peer(f);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        closed = conf_closed_fd();
        assert_int_equal(conf_disconnect(gone), 0);

        /* flags first */
        assert_int_equal(transfer_checked(a, 1, 0x100, (uint64_t)b, &t), -EINVAL);
        assert_int_equal(transfer_checked(a, 1ULL << 63, CONF_ID_UNKNOWN, (uint64_t)closed, &t),
                         -EINVAL);
        assert_int_equal(transfer_checked(a, 2, CONF_ID_UNKNOWN, (uint64_t)p[0], &t), -EINVAL);
        assert_int_equal(transfer_checked(a, 4, CONF_ID_UNKNOWN, (uint64_t)gone, &t), -EINVAL);

        /* then the destination */
        assert_int_equal(transfer_checked(a, 0, 0x100, (uint64_t)closed, &t), -EBADF);
        assert_int_equal(transfer_checked(a, 0, CONF_ID_UNKNOWN, (uint64_t)closed, &t), -EBADF);
        assert_int_equal(transfer_checked(a, 0, 0x100, 0xffffffffULL, &t), -EBADF);
        assert_int_equal(transfer_checked(a, 0, 0x100, (uint64_t)p[0], &t), -EOPNOTSUPP);
        assert_int_equal(transfer_checked(a, 0, CONF_ID_UNKNOWN, (uint64_t)p[1], &t),
                         -EOPNOTSUPP);
        assert_int_equal(transfer_checked(a, 0, 0x100, (uint64_t)bus1_uapi_pool_fd(a), &t),
                         -EOPNOTSUPP);
        assert_int_equal(transfer_checked(a, 0, 0x100, (uint64_t)gone, &t), -ESHUTDOWN);
        assert_int_equal(transfer_checked(a, 0, CONF_ID_UNKNOWN, (uint64_t)gone, &t),
                         -ESHUTDOWN);

        /* then the source */
        assert_int_equal(transfer_checked(a, 0, CONF_ID_UNKNOWN, (uint64_t)b, &t), -ENXIO);
        assert_int_equal(transfer_checked(a, 0, CONF_ID_UNKNOWN_OWN, UINT64_MAX, &t), -ENXIO);
        assert_int_equal(transfer_checked(a, 0, 0x2, UINT64_MAX, &t), -ENXIO);

        /* nothing happened: 0x100 is not a node of A's, B holds nothing */
        assert_int_equal(uapi_release(a, 0x100), -EBUSY);
        uapi_expect_empty(a);
        uapi_expect_empty(b);

        close(p[0]);
        close(p[1]);
        uapi_finish(f);
}

/*
 * peer.c bus1_peer_transfer(): on success the struct is copied back with
 * dst_handle set (bus1_handle_identify()); to the peer itself (dst_fd -1,
 * or its own descriptor) the owner keeps its ID; a second transfer to the
 * same peer gives the same ID.
 */
static void test_transfer_success(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_handle_transfer t;
        uint64_t hb, hb2;
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);

        assert_int_equal(transfer_checked(a, 0, 0x100, (uint64_t)b, &t), 0);
        hb = t.dst_handle;
        assert_int_equal(hb & 7, UAPI_REMOTE_BITS);
        assert_int_equal(transfer_checked(a, 0, 0x100, (uint64_t)b, &t), 0);
        assert_int_equal(t.dst_handle, hb);
        /* B passes it on to itself: same ID */
        assert_int_equal(transfer_checked(b, 0, hb, UINT64_MAX, &t), 0);
        assert_int_equal(t.dst_handle, hb);
        assert_int_equal(transfer_checked(b, 0, hb, (uint64_t)b, &t), 0);
        assert_int_equal(t.dst_handle, hb);
        /* the owner to itself, by -1 and by its own descriptor */
        assert_int_equal(transfer_checked(a, 0, 0x100, UINT64_MAX, &t), 0);
        assert_int_equal(t.dst_handle, 0x100);
        assert_int_equal(transfer_checked(a, 0, 0x100, (uint64_t)a, &t), 0);
        assert_int_equal(t.dst_handle, 0x100);
        /* B back to A: A's own ID */
        assert_int_equal(transfer_checked(b, 0, hb, (uint64_t)a, &t), 0);
        assert_int_equal(t.dst_handle, 0x100);

        /* B holds four references: four releases */
        for (int i = 0; i < 4; ++i)
                assert_int_equal(uapi_release(b, hb), 0);
        assert_int_equal(uapi_release(b, hb), -ENXIO);
        /* a new transfer to B gives a new ID */
        assert_int_equal(transfer_checked(a, 0, 0x100, (uint64_t)b, &t), 0);
        hb2 = t.dst_handle;
        assert_true(hb2 != hb);

        uapi_finish(f);
}

/*
 * peer.c bus1_peer_transfer(): a source whose node is destroyed is no
 * error: dst_handle is BUS1_HANDLE_INVALID and the call succeeds, for the
 * owner and for a holder.
 */
static void test_transfer_destroyed(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_handle_transfer t;
        uint64_t hb, node = 0x100;
        int a, b, c;

        a = uapi_peer(f);
        b = uapi_peer(f);
        c = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);
        assert_int_equal(uapi_destroy(a, 0, &node, 1), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_DESTROY, 0x100);
        uapi_expect_notification(b, BUS1_MSG_NODE_DESTROY, hb);

        assert_int_equal(transfer_checked(b, 0, hb, (uint64_t)c, &t), 0);
        assert_int_equal(t.dst_handle, BUS1_HANDLE_INVALID);
        assert_int_equal(transfer_checked(b, 0, hb, UINT64_MAX, &t), 0);
        assert_int_equal(t.dst_handle, BUS1_HANDLE_INVALID);
        assert_int_equal(transfer_checked(a, 0, 0x100, (uint64_t)c, &t), 0);
        assert_int_equal(t.dst_handle, BUS1_HANDLE_INVALID);
        assert_int_equal(transfer_checked(a, 0, 0x100, UINT64_MAX, &t), 0);
        assert_int_equal(t.dst_handle, BUS1_HANDLE_INVALID);

        /* nobody got anything: B still has one reference, C none */
        assert_int_equal(uapi_release(b, hb), 0);
        assert_int_equal(uapi_release(b, hb), -ENXIO);
        uapi_expect_empty(a);
        uapi_expect_empty(b);
        uapi_expect_empty(c);

        uapi_finish(f);
}

/*
 * peer.c bus1_peer_ioctl_nodes_destroy(): flags (EINVAL), then n_nodes
 * above the user's handle limit (EINVAL), then the array: a NULL one
 * with n_nodes > 0 is EFAULT; n_nodes 0 is a no-op.
 */
static void test_destroy_args(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_nodes_destroy d, before;
        uint64_t node = 0x100;
        int a;

        a = uapi_peer(f);

        d = (struct bus1_cmd_nodes_destroy){ .flags = 1ULL << 1, .ptr_nodes = (uintptr_t)&node,
                                             .n_nodes = 1 };
        before = d;
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_NODES_DESTROY, &d), -EINVAL);
        assert_memory_equal(&d, &before, sizeof(d));
        assert_int_equal(uapi_destroy(a, 1ULL << 63, NULL, UINT64_MAX), -EINVAL);
        assert_int_equal(uapi_destroy(a, 1ULL << 2, NULL, 1), -EINVAL);

        /* the count: above 65536 */
        assert_int_equal(uapi_destroy(a, 0, NULL, 65537), -EINVAL);
        assert_int_equal(uapi_destroy(a, 0, NULL, UINT64_MAX), -EINVAL);
        assert_int_equal(uapi_destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, NULL,
                                     1ULL << 32), -EINVAL);
        /* at the limit, the NULL array is what is wrong */
        assert_int_equal(uapi_destroy(a, 0, NULL, 65536), -EFAULT);
        assert_int_equal(uapi_destroy(a, 0, NULL, 1), -EFAULT);
        /* nothing to do */
        assert_int_equal(uapi_destroy(a, 0, NULL, 0), 0);
        assert_int_equal(uapi_destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, NULL, 0), 0);

        /* the argument and the array are never written */
        d = (struct bus1_cmd_nodes_destroy){ .ptr_nodes = (uintptr_t)&node, .n_nodes = 1 };
        before = d;
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_NODES_DESTROY, &d), 0);
        assert_memory_equal(&d, &before, sizeof(d));
        assert_int_equal(node, 0x100);
        uapi_expect_notification(a, BUS1_MSG_NODE_DESTROY, 0x100);
        uapi_expect_empty(a);

        uapi_finish(f);
}

/*
 * peer.c bus1_peer_ioctl_nodes_destroy(): the loop checks each entry in
 * array order: import (ENXIO), duplicate (ENOTUNIQ), not an anchor
 * (EREMOTE), not live (ESTALE); the first bad entry decides, and nothing
 * is destroyed unless every entry passed.
 */
static void test_destroy_entries(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, hc, ids[4], dead = 0x300;
        int a, b, c;

        a = uapi_peer(f);
        b = uapi_peer(f);
        c = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);            /* A owns 0x100, B holds hb */
        hc = uapi_give(c, 0x200, a);            /* A holds hc, a remote */
        assert_int_equal(uapi_give(a, 0x300, b) & 7, UAPI_REMOTE_BITS);
        assert_int_equal(uapi_destroy(a, 0, &dead, 1), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_DESTROY, 0x300);
        {
                struct bus1_cmd_recv r;

                assert_int_equal(uapi_recv(b, 0, &r), 0);
                assert_int_equal(r.msg.type, BUS1_MSG_NODE_DESTROY);
        }

        /* one bad entry each */
        ids[0] = CONF_ID_UNKNOWN;
        assert_int_equal(uapi_destroy(a, 0, ids, 1), -ENXIO);
        ids[0] = CONF_ID_UNKNOWN_OWN;
        assert_int_equal(uapi_destroy(a, 0, ids, 1), -ENXIO);
        ids[0] = 0x100;
        ids[1] = 0x100;
        assert_int_equal(uapi_destroy(a, 0, ids, 2), -ENOTUNIQ);
        ids[0] = hc;
        assert_int_equal(uapi_destroy(a, 0, ids, 1), -EREMOTE);
        ids[0] = 0x300;
        assert_int_equal(uapi_destroy(a, 0, ids, 1), -ESTALE);

        /* the first one found wins */
        ids[0] = 0x100;
        ids[1] = hc;
        ids[2] = CONF_ID_UNKNOWN;
        assert_int_equal(uapi_destroy(a, 0, ids, 3), -EREMOTE);
        ids[1] = CONF_ID_UNKNOWN;
        ids[2] = hc;
        assert_int_equal(uapi_destroy(a, 0, ids, 3), -ENXIO);
        ids[1] = 0x300;
        ids[2] = hc;
        assert_int_equal(uapi_destroy(a, 0, ids, 3), -ESTALE);
        ids[1] = 0x100;
        ids[2] = 0x300;
        assert_int_equal(uapi_destroy(a, 0, ids, 3), -ENOTUNIQ);
        /* a duplicate is noticed before the entry's own kind */
        ids[0] = hc;
        ids[1] = hc;
        assert_int_equal(uapi_destroy(a, 0, ids, 2), -EREMOTE);
        ids[0] = 0x300;
        ids[1] = 0x300;
        assert_int_equal(uapi_destroy(a, 0, ids, 2), -ESTALE);
        ids[0] = 0x400;         /* new, would be created */
        ids[1] = 0x400;
        assert_int_equal(uapi_destroy(a, 0, ids, 2), -ENOTUNIQ);
        /* RELEASE_HANDLES changes nothing about the checks */
        ids[0] = 0x100;
        ids[1] = hc;
        assert_int_equal(uapi_destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, ids, 2),
                         -EREMOTE);

        /* none of it destroyed 0x100, and 0x400 was not created */
        assert_int_equal(uapi_send_str(b, hb, "alive"), 0);
        uapi_expect_str(f, a, 0x100, "alive");
        assert_int_equal(uapi_release(a, 0x400), -EBUSY);
        uapi_expect_empty(a);
        uapi_expect_empty(b);
        uapi_expect_empty(c);

        uapi_finish(f);
}

/*
 * peer.c bus1_peer_ioctl_nodes_destroy(): a new unmanaged ID is created
 * and destroyed at once. With RELEASE_HANDLES the owner's handle goes too:
 * the owner's NODE_DESTROY entries are then dropped at RECV
 * (bus1_peer_peek() skips entries whose handle is no longer public), while
 * holders still get theirs, and the IDs name new nodes afterwards. Without
 * it the owner keeps a handle to the destroyed node, is told, and the next
 * destroy is ESTALE.
 */
static void test_destroy_release_handles(void **state) {
        UapiFixture *f = *state;
        uint64_t hb, ids[2] = { 0x100, 0x200 };
        int a, b;

        a = uapi_peer(f);
        b = uapi_peer(f);
        hb = uapi_give(a, 0x100, b);

        assert_int_equal(uapi_destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, ids, 2), 0);
        uapi_expect_notification(b, BUS1_MSG_NODE_DESTROY, hb);
        uapi_expect_empty(a);
        assert_int_equal(uapi_send_str(b, hb, "x"), -EHOSTUNREACH);

        /* the IDs are free: destroying them again makes new nodes */
        assert_int_equal(uapi_destroy(a, 0, ids, 2), 0);
        expect_two_destroys(a, 0x100, 0x200);
        /* kept this time: ESTALE */
        assert_int_equal(uapi_destroy(a, 0, ids, 2), -ESTALE);
        assert_int_equal(uapi_destroy(a, 0, &ids[1], 1), -ESTALE);
        uapi_expect_empty(a);
        uapi_expect_empty(b);

        uapi_finish(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_handle_release, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_transfer_order, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_transfer_success, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_transfer_destroyed, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_destroy_args, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_destroy_entries, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_destroy_release_handles, uapi_setup,
                                                uapi_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
