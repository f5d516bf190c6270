/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for the peer lifecycle: PEER_DISCONNECT, PEER_QUERY, PEER_RESET, the
 * seed, RECV, SLICE_RELEASE and fd passing (docs/model.md §5 and 6)
 *
 * Every test gets its own Bus with a few peers (A, B, C, with UIDs 1, 2, 3; the
 * TestBus fixture of model-util.h, or built by the test), drives them through
 * the model's commands and calls assert_valid() after each step, so the
 * consistency checker sees every intermediate state. Notifications of one
 * transaction are checked as a set (their order on a queue is unspecified),
 * with BUS1_MSG_FLAG_CONTINUE on every entry but the last. Fds are eventfds
 * (and dups of them) whose numbers are checked with fcntl(F_GETFD) to see
 * whether the model closed them; no test opens a new fd between a drop and that
 * check, so a number cannot be reused in between.
 */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <cmocka.h>
#include "bus1/uapi.h"
#include "bus/bus.h"
#include "bus/peer.h"
#include "bus/pool.h"
#include "bus/tx.h"
#include "model-util.h"
#include "util/fdlist.h"

#define KEEP PEER_LIMIT_KEEP

typedef struct Expect {
        uint64_t type;
        uint64_t destination;
} Expect;

/* the ID the @n-th handle a peer is assigned gets (docs/model.md §2) */
static uint64_t assigned_id(uint64_t n, bool remote) {
        return (n << 3) | BUS1_HANDLE_FLAG_MANAGED | (remote ? BUS1_HANDLE_FLAG_REMOTE : 0);
}

static uint64_t transfer(Peer *src, uint64_t id, Peer *dst) {
        uint64_t out = test_transfer(src, id, dst);

        assert_valid(src->bus);
        return out;
}

static void send_text(Peer *sender, uint64_t dst, const char *text) {
        assert_int_equal(test_send1(sender, dst, text), 0);
        assert_valid(sender->bus);
}

static void send_full(Peer *sender, uint64_t dst, const char *text, const uint64_t *handles,
                      uint64_t n_handles, FdList *fds) {
        assert_int_equal(test_send(sender, 0, &dst, 1, NULL, text, strlen(text), handles,
                                   n_handles, fds), 0);
        assert_valid(sender->bus);
}

static void set_seed(Peer *peer, const char *text, const uint64_t *handles, uint64_t n_handles,
                     FdList *fds) {
        assert_int_equal(test_send(peer, BUS1_SEND_FLAG_SEED, NULL, 0, NULL, text,
                                   strlen(text), handles, n_handles, fds), 0);
        assert_valid(peer->bus);
}

static int reset(Peer *peer, uint64_t flags, uint64_t peer_flags, uint32_t max_slices,
                 uint32_t max_handles, uint32_t max_inflight_bytes, uint32_t max_inflight_fds) {
        PeerLimits limits = {
                .max_slices = max_slices,
                .max_handles = max_handles,
                .max_inflight_bytes = max_inflight_bytes,
                .max_inflight_fds = max_inflight_fds,
        };
        int r;

        r = peer_reset(peer, flags, peer_flags, &limits);
        assert_valid(peer->bus);
        return r;
}

static int flush(Peer *peer, uint64_t flags) {
        return reset(peer, flags, UINT64_MAX, KEEP, KEEP, KEEP, KEEP);
}

static void query(Peer *peer, uint64_t *peer_flagsp, PeerLimits *limitsp) {
        assert_int_equal(peer_query(peer, 0, peer_flagsp, limitsp), 0);
        assert_valid(peer->bus);
}

static void assert_limits(Peer *peer, uint64_t peer_flags, uint32_t max_slices,
                          uint32_t max_handles, uint32_t max_inflight_bytes,
                          uint32_t max_inflight_fds) {
        PeerLimits l;
        uint64_t f;

        query(peer, &f, &l);
        assert_int_equal(f, peer_flags);
        assert_int_equal(l.max_slices, max_slices);
        assert_int_equal(l.max_handles, max_handles);
        assert_int_equal(l.max_inflight_bytes, max_inflight_bytes);
        assert_int_equal(l.max_inflight_fds, max_inflight_fds);
}

static void expect_empty(Peer *peer) {
        PeerRecv r;

        assert_int_equal(test_recv(peer, 0, &r), -EAGAIN);
        assert_valid(peer->bus);
}

static void check_notification_fields(const PeerRecv *r) {
        assert_int_equal(r->creds.uid, UINT32_MAX);
        assert_int_equal(r->creds.gid, UINT32_MAX);
        assert_int_equal(r->creds.pid, 0);
        assert_int_equal(r->creds.tid, 0);
        assert_int_equal(r->offset, BUS1_OFFSET_INVALID);
        assert_int_equal(r->n_bytes, 0);
        assert_int_equal(r->n_handles, 0);
        assert_int_equal(r->n_fds, 0);
        assert_int_equal(r->n_secctx, 0);
        assert_null(r->fds);
}

/*
 * Dequeue the @n notifications of one transaction: in any order, each but the
 * last carrying BUS1_MSG_FLAG_CONTINUE.
 */
static void expect_notifications(Peer *peer, const Expect *expect, size_t n) {
        bool seen[16] = {};

        assert_true(n <= ARRAY_SIZE(seen));
        for (size_t i = 0; i < n; ++i) {
                PeerRecv r;
                size_t j;

                assert_int_equal(test_recv(peer, 0, &r), 0);
                assert_valid(peer->bus);
                check_notification_fields(&r);
                assert_int_equal(r.flags, i + 1 < n ? BUS1_MSG_FLAG_CONTINUE : 0);
                for (j = 0; j < n; ++j)
                        if (!seen[j] && expect[j].type == r.type &&
                            expect[j].destination == r.destination)
                                break;
                if (j == n)
                        fail_msg("unexpected entry type %llu destination %#llx",
                                 (unsigned long long)r.type,
                                 (unsigned long long)r.destination);
                seen[j] = true;
        }
}

static void expect_one(Peer *peer, uint64_t type, uint64_t destination) {
        Expect e = { type, destination };

        expect_notifications(peer, &e, 1);
}

/* check a DATA entry's payload and sender (@sender's test_peer_new() creds) */
static void check_data(Peer *peer, const PeerRecv *r, uint32_t sender_uid, const char *text) {
        assert_int_equal(r->type, BUS1_MSG_DATA);
        assert_int_equal(r->creds.uid, sender_uid);
        assert_int_equal(r->creds.gid, sender_uid);
        assert_int_equal(r->creds.pid, 100 + sender_uid);
        assert_int_equal(r->creds.tid, 100 + sender_uid);
        assert_int_equal(r->n_bytes, strlen(text));
        assert_int_equal(r->n_secctx, 0);
        assert_int_equal(r->offset % 8, 0);
        if (*text)
                assert_memory_equal(test_slice(peer, r->offset), text, strlen(text));
}

/* dequeue a DATA entry to @destination with @text (no fds installed) */
static PeerRecv expect_data(Peer *peer, uint64_t destination, uint32_t sender_uid,
                            const char *text) {
        PeerRecv r;

        assert_int_equal(test_recv(peer, 0, &r), 0);
        assert_valid(peer->bus);
        check_data(peer, &r, sender_uid, text);
        assert_int_equal(r.destination, destination);
        assert_null(r.fds);
        return r;
}

static void handle_release_ok(Peer *peer, uint64_t id) {
        assert_int_equal(peer_handle_release(peer, id), 0);
        assert_valid(peer->bus);
}

static void handle_release_fails(Peer *peer, uint64_t id, int err) {
        assert_int_equal(peer_handle_release(peer, id), err);
        assert_valid(peer->bus);
}

static void slice_release_ok(Peer *peer, uint64_t offset) {
        assert_int_equal(peer_slice_release(peer, offset), 0);
        assert_valid(peer->bus);
}

static void slice_release_fails(Peer *peer, uint64_t offset) {
        assert_int_equal(peer_slice_release(peer, offset), -ENXIO);
        assert_valid(peer->bus);
}

static bool fd_is_open(int fd) {
        return fcntl(fd, F_GETFD) != -1;
}

/* an FdList of an eventfd and @n - 1 dups of it; their numbers go to @fds */
static FdList *fdlist_make(int *fds, size_t n) {
        FdList *list = NULL;

        assert_true(n >= 1);
        fds[0] = eventfd(0, EFD_CLOEXEC);
        assert_true(fds[0] >= 0);
        for (size_t i = 1; i < n; ++i) {
                fds[i] = fcntl(fds[0], F_DUPFD_CLOEXEC, 0);
                assert_true(fds[i] >= 0);
        }
        assert_int_equal(fdlist_new(&list, fds, n), 0);
        return list;
}

static void free_peers(Bus *bus, Peer **peers, size_t n) {
        for (size_t i = 0; i < n; ++i) {
                peers[i] = peer_free(peers[i]);
                assert_valid(bus);
        }
        bus_deinit(bus);
}

/*
 * PEER_DISCONNECT destroys all the peer's nodes in one transaction: every
 * holder gets a NODE_DESTROY with its own ID, several on one queue linked by
 * CONTINUE, after what was queued before.
 */
static void test_disconnect_destroys_nodes(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t b1, b2, b3, c2, ab;

        b1 = transfer(a, 0x100, b);
        b2 = transfer(a, 0x200, b);
        b3 = transfer(a, 0x300, b);
        c2 = transfer(a, 0x200, c);
        assert_int_equal(transfer(a, 0x400, NULL), 0x400);     /* A alone holds it */
        assert_int_equal(a->n_nodes, 4);

        /* queued before the disconnect: stays in front, not linked to it */
        ab = transfer(b, 0x100, a);
        send_text(a, ab, "before");

        assert_int_equal(peer_disconnect(a), 0);
        assert_valid(bus);
        assert_int_equal(a->n_nodes, 0);

        expect_data(b, 0x100, 1, "before");
        expect_notifications(b, (Expect[]){
                { BUS1_MSG_NODE_DESTROY, b1 },
                { BUS1_MSG_NODE_DESTROY, b2 },
                { BUS1_MSG_NODE_DESTROY, b3 },
                { BUS1_MSG_NODE_RELEASE, 0x100 },       /* A's handle went too */
        }, 4);
        expect_empty(b);
        expect_one(c, BUS1_MSG_NODE_DESTROY, c2);
        expect_empty(c);

        /* the holders keep their handles to the destroyed nodes */
        handle_release_ok(b, b1);
        handle_release_fails(b, b1, -ENXIO);
        handle_release_ok(c, c2);
        expect_empty(b);
}

/*
 * PEER_DISCONNECT releases all the peer's handles, user and in-flight
 * references alike: an owner gets NODE_RELEASE when that was the last
 * reference, not while another peer still holds one.
 */
static void test_disconnect_releases_handles(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t a1, c2, c3, ca;

        a1 = transfer(b, 0x100, a);
        assert_int_equal(transfer(b, 0x100, a), a1);           /* two references */
        transfer(b, 0x200, a);
        c2 = transfer(b, 0x200, c);

        /* A holds B's node 0x300 only through a queued message's handle entry */
        c3 = transfer(b, 0x300, c);
        ca = transfer(a, 0x100, c);
        send_full(c, ca, "carrier", &c3, 1, NULL);
        handle_release_ok(c, c3);
        expect_empty(b);

        assert_int_equal(peer_disconnect(a), 0);
        assert_valid(bus);

        expect_notifications(b, (Expect[]){
                { BUS1_MSG_NODE_RELEASE, 0x100 },
                { BUS1_MSG_NODE_RELEASE, 0x300 },
        }, 2);
        expect_empty(b);        /* C still holds 0x200 */
        expect_one(c, BUS1_MSG_NODE_DESTROY, ca);

        handle_release_ok(c, c2);
        expect_one(b, BUS1_MSG_NODE_RELEASE, 0x200);
        expect_empty(b);
}

/* PEER_DISCONNECT drops the peer's queue, its seed, its slices and its pool */
static void test_disconnect_drops_queue_and_pool(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ba;

        ba = transfer(a, 0x100, b);
        send_text(b, ba, "one");
        send_text(b, ba, "two");
        send_text(b, ba, "three");
        expect_data(a, 0x100, 2, "one");        /* a received, unreleased slice */
        set_seed(a, "seed", NULL, 0, NULL);
        handle_release_ok(b, ba);               /* queues a NODE_RELEASE on A */
        assert_int_equal(a->queue.n_entries, 3);
        assert_int_equal(a->pool.n_busy, 4);

        assert_int_equal(peer_disconnect(a), 0);
        assert_valid(bus);
        assert_int_equal(a->queue.n_entries, 0);
        assert_null(a->seed);
        assert_int_equal(a->pool.n_busy, 0);
        assert_int_equal(a->pool.busy_bytes, 0);
        assert_int_equal(a->pool.max_size, 0);
        assert_null(a->pool.base);
        assert_int_equal(a->n_handles, 0);
        assert_int_equal(a->n_handle_refs, 0);
        expect_empty(b);
}

/* after PEER_DISCONNECT every operation of the peer is ESHUTDOWN */
static void test_disconnect_later_ops_eshutdown(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t id, flags = 0xdead, out = 0xdead;
        PeerLimits limits = { 1, 2, 3, 4 };
        PeerRecv r = { .type = 0xdead };
        uint64_t ids[] = { 0x100 };
        int fd;
        FdList *fds;

        id = transfer(b, 0x100, a);
        assert_int_equal(transfer(a, 0x100, NULL), 0x100);
        assert_int_equal(peer_disconnect(a), 0);
        assert_valid(bus);

        assert_int_equal(peer_disconnect(a), -ESHUTDOWN);
        assert_valid(bus);
        assert_int_equal(peer_query(a, 0, &flags, &limits), -ESHUTDOWN);
        assert_int_equal(flags, 0xdead);
        assert_int_equal(limits.max_slices, 1);
        assert_int_equal(flush(a, 0), -ESHUTDOWN);
        assert_int_equal(flush(a, BUS1_PEER_RESET_FLAG_FLUSH), -ESHUTDOWN);
        assert_int_equal(peer_handle_release(a, id), -ESHUTDOWN);
        assert_int_equal(peer_handle_release(a, 0x100), -ESHUTDOWN);
        assert_int_equal(peer_handle_transfer(a, 0, id, b, &out), -ESHUTDOWN);
        assert_int_equal(peer_handle_transfer(a, 0, 0x200, NULL, &out), -ESHUTDOWN);
        assert_int_equal(out, 0xdead);
        assert_int_equal(peer_nodes_destroy(a, 0, ids, 1), -ESHUTDOWN);
        assert_int_equal(peer_slice_release(a, 0), -ESHUTDOWN);
        assert_int_equal(test_send1(a, id, "x"), -ESHUTDOWN);
        assert_int_equal(test_send(a, BUS1_SEND_FLAG_SEED, NULL, 0, NULL, "x", 1, NULL, 0,
                                   NULL), -ESHUTDOWN);
        fds = fdlist_make(&fd, 1);
        assert_int_equal(test_send(a, 0, &id, 1, NULL, "x", 1, NULL, 0, fds), -ESHUTDOWN);
        fdlist_unref(fds);
        assert_false(fd_is_open(fd));
        assert_int_equal(test_recv(a, 0, &r), -ESHUTDOWN);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED, &r), -ESHUTDOWN);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_PEEK, &r), -ESHUTDOWN);
        assert_int_equal(a->n_nodes, 0);
        assert_int_equal(a->n_handles, 0);
        assert_valid(bus);
}

/*
 * Sends of other peers to a disconnected peer's nodes fail with ESHUTDOWN:
 * atomically by default, per destination with CONTINUE.
 */
static void test_disconnect_sends_to_its_nodes_eshutdown(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t ba, bc, dsts[2], errors[2];

        ba = transfer(a, 0x100, b);
        bc = transfer(c, 0x100, b);
        assert_int_equal(peer_disconnect(a), 0);
        assert_valid(bus);

        assert_int_equal(test_send1(b, ba, "x"), -ESHUTDOWN);
        assert_valid(bus);

        dsts[0] = bc;
        dsts[1] = ba;
        assert_int_equal(test_send(b, 0, dsts, 2, NULL, "x", 1, NULL, 0, NULL), -ESHUTDOWN);
        assert_valid(bus);
        expect_empty(c);

        errors[0] = errors[1] = 0xdead;
        assert_int_equal(test_send(b, BUS1_SEND_FLAG_CONTINUE, dsts, 2, errors, "y", 1,
                                   NULL, 0, NULL), 0);
        assert_valid(bus);
        assert_int_equal(errors[0], 0);
        assert_int_equal(errors[1], ESHUTDOWN);
        expect_data(c, 0x100, 2, "y");
        expect_empty(c);

        /* still ESHUTDOWN once B has seen the NODE_DESTROY */
        expect_one(b, BUS1_MSG_NODE_DESTROY, ba);
        assert_int_equal(test_send1(b, ba, "z"), -ESHUTDOWN);
        assert_valid(bus);
}

/* HANDLE_TRANSFER into a disconnected peer is ESHUTDOWN and creates nothing */
static void test_disconnect_transfer_into_eshutdown(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t out = 0xdead;

        assert_int_equal(transfer(b, 0x100, NULL), 0x100);
        assert_int_equal(peer_disconnect(a), 0);
        assert_valid(bus);

        assert_int_equal(peer_handle_transfer(b, 0, 0x100, a, &out), -ESHUTDOWN);
        assert_valid(bus);
        assert_int_equal(peer_handle_transfer(b, 0, 0x200, a, &out), -ESHUTDOWN);
        assert_valid(bus);
        assert_int_equal(out, 0xdead);
        assert_int_equal(b->n_nodes, 1);        /* 0x200 was not created */
        handle_release_fails(b, 0x200, -EBUSY);
        expect_empty(b);
}

/*
 * Messages a peer sent before disconnecting stay queued and are received
 * intact: payload, sender credentials, handles (its own destroyed node
 * included, as ordered before the destruction) and fds.
 */
static void test_disconnect_sent_messages_stay(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t ab, ac, handles[2], b_a, b_c;
        PeerRecv r;
        FdList *fds;
        int fd[2];

        ab = transfer(b, 0x100, a);
        ac = transfer(c, 0x100, a);
        handles[0] = 0x200;     /* a new node of A */
        handles[1] = ac;
        fds = fdlist_make(fd, 2);
        send_full(a, ab, "intact payload", handles, 2, fds);
        fds = fdlist_unref(fds);

        assert_int_equal(peer_disconnect(a), 0);
        assert_valid(bus);
        assert_true(fd_is_open(fd[0]) && fd_is_open(fd[1]));
        expect_empty(c);        /* B's queued entry still holds C's node */

        assert_int_equal(test_recv(b, BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        assert_valid(bus);
        check_data(b, &r, 1, "intact payload");
        assert_int_equal(r.destination, 0x100);
        assert_int_equal(r.flags, 0);
        assert_int_equal(r.n_handles, 2);
        b_a = test_slice_handle(b, &r, 0);
        b_c = test_slice_handle(b, &r, 1);
        assert_int_equal(b_a, assigned_id(1, true));
        assert_int_equal(b_c, assigned_id(2, true));
        assert_int_equal(r.n_fds, 2);
        assert_non_null(r.fds);
        assert_int_equal(r.fds->n_fds, 2);
        assert_int_equal(r.fds->fds[0], fd[0]);
        assert_int_equal(r.fds->fds[1], fd[1]);
        assert_true(fd_is_open(fd[0]) && fd_is_open(fd[1]));
        peer_recv_deinit(&r);
        assert_false(fd_is_open(fd[0]) || fd_is_open(fd[1]));

        /* the disconnect came after: A's node is destroyed, B's node released */
        expect_notifications(b, (Expect[]){
                { BUS1_MSG_NODE_DESTROY, b_a },
                { BUS1_MSG_NODE_RELEASE, 0x100 },
        }, 2);
        expect_empty(b);

        handle_release_ok(b, b_c);
        expect_one(c, BUS1_MSG_NODE_RELEASE, 0x100);
        handle_release_ok(b, b_a);
        slice_release_ok(b, r.offset);
        assert_int_equal(b->pool.n_busy, 0);
}

/* peer_free() without PEER_DISCONNECT does all a disconnect does */
static void test_free_without_disconnect(void **state) {
        uint64_t ba, ab;
        Peer *a, *b;
        FdList *fds;
        int fd;
        Bus bus;

        bus_init(&bus);
        a = test_peer_new(&bus, 1);
        b = test_peer_new(&bus, 2);
        assert_valid(&bus);

        ba = transfer(a, 0x100, b);
        ab = transfer(b, 0x100, a);
        send_text(a, ab, "bye");
        fds = fdlist_make(&fd, 1);
        send_full(b, ba, "queued on A", NULL, 0, fds);
        fdlist_unref(fds);
        assert_int_equal(bus.n_peers, 2);

        a = peer_free(a);
        assert_valid(&bus);
        assert_int_equal(bus.n_peers, 1);
        assert_false(fd_is_open(fd));

        expect_data(b, 0x100, 1, "bye");
        expect_notifications(b, (Expect[]){
                { BUS1_MSG_NODE_DESTROY, ba },
                { BUS1_MSG_NODE_RELEASE, 0x100 },
        }, 2);
        expect_empty(b);
        assert_int_equal(test_send1(b, ba, "x"), -ESHUTDOWN);
        assert_valid(&bus);
        handle_release_ok(b, ba);

        free_peers(&bus, (Peer *[]){ b }, 1);
}

/* PEER_QUERY returns the peer flags and the default limits */
static void test_query_defaults(void **state) {
        TestBus *t = *state;
        Peer *a = t->peers[0];

        assert_limits(a, 0, 16384, 65536, 16 * 1024 * 1024, 4096);
}

/* PEER_QUERY with non-zero flags is EINVAL and writes nothing */
static void test_query_flags_einval(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0];
        PeerLimits limits = { 1, 2, 3, 4 };
        uint64_t flags = 0xdead;

        assert_int_equal(peer_query(a, 1, &flags, &limits), -EINVAL);
        assert_int_equal(peer_query(a, BUS1_PEER_RESET_FLAG_FLUSH_SEED, &flags, &limits),
                         -EINVAL);
        assert_int_equal(peer_query(a, UINT64_MAX, &flags, &limits), -EINVAL);
        assert_valid(bus);
        assert_int_equal(flags, 0xdead);
        assert_int_equal(limits.max_slices, 1);
        assert_int_equal(limits.max_handles, 2);
        assert_int_equal(limits.max_inflight_bytes, 3);
        assert_int_equal(limits.max_inflight_fds, 4);
}

/* PEER_RESET: an all-ones field keeps its value, others are set */
static void test_reset_all_ones_keeps(void **state) {
        TestBus *t = *state;
        Peer *a = t->peers[0];

        assert_int_equal(flush(a, 0), 0);
        assert_limits(a, 0, 16384, 65536, 16 * 1024 * 1024, 4096);

        assert_int_equal(reset(a, 0, BUS1_PEER_FLAG_WANT_SECCTX, 10, 20, 30, 40), 0);
        assert_limits(a, BUS1_PEER_FLAG_WANT_SECCTX, 10, 20, 30, 40);

        assert_int_equal(reset(a, 0, UINT64_MAX, KEEP, 21, KEEP, KEEP), 0);
        assert_limits(a, BUS1_PEER_FLAG_WANT_SECCTX, 10, 21, 30, 40);
        assert_int_equal(reset(a, 0, UINT64_MAX, 11, KEEP, KEEP, 0), 0);
        assert_limits(a, BUS1_PEER_FLAG_WANT_SECCTX, 11, 21, 30, 0);
        assert_int_equal(reset(a, 0, UINT64_MAX, KEEP, KEEP, 31, KEEP), 0);
        assert_limits(a, BUS1_PEER_FLAG_WANT_SECCTX, 11, 21, 31, 0);
}

/*
 * PEER_RESET: a limit above INT_MAX (but not all ones) is EINVAL, and the
 * whole call then changes nothing; INT_MAX itself is fine.
 */
static void test_reset_limit_above_int_max(void **state) {
        TestBus *t = *state;
        Peer *a = t->peers[0], *b = t->peers[1];
        const uint32_t bad[] = { (uint32_t)INT32_MAX + 1, UINT32_MAX - 1 };
        uint64_t ba;

        ba = transfer(a, 0x100, b);
        send_text(b, ba, "stays");

        for (size_t i = 0; i < ARRAY_SIZE(bad); ++i) {
                uint32_t v = bad[i];

                assert_int_equal(reset(a, BUS1_PEER_RESET_FLAG_FLUSH, 1, v, 5, 5, 5), -EINVAL);
                assert_int_equal(reset(a, BUS1_PEER_RESET_FLAG_FLUSH, 1, 5, v, 5, 5), -EINVAL);
                assert_int_equal(reset(a, BUS1_PEER_RESET_FLAG_FLUSH, 1, 5, 5, v, 5), -EINVAL);
                assert_int_equal(reset(a, BUS1_PEER_RESET_FLAG_FLUSH, 1, 5, 5, 5, v), -EINVAL);
                assert_limits(a, 0, 16384, 65536, 16 * 1024 * 1024, 4096);
        }
        /* nothing was flushed */
        assert_int_equal(a->n_nodes, 1);
        expect_data(a, 0x100, 2, "stays");

        assert_int_equal(reset(a, 0, UINT64_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX),
                         0);
        assert_limits(a, 0, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX);
}

/* PEER_RESET: peer_flags may only hold WANT_SECCTX; all ones keeps them */
static void test_reset_peer_flags(void **state) {
        TestBus *t = *state;
        Peer *a = t->peers[0];
        const uint64_t bad[] = {
                2, 3, 4, 1ULL << 63, UINT64_MAX - 1, UINT64_MAX >> 1,
        };

        assert_int_equal(reset(a, 0, BUS1_PEER_FLAG_WANT_SECCTX, KEEP, KEEP, KEEP, KEEP), 0);
        assert_limits(a, BUS1_PEER_FLAG_WANT_SECCTX, 16384, 65536, 16 * 1024 * 1024, 4096);
        assert_int_equal(reset(a, 0, UINT64_MAX, KEEP, KEEP, KEEP, KEEP), 0);
        assert_limits(a, BUS1_PEER_FLAG_WANT_SECCTX, 16384, 65536, 16 * 1024 * 1024, 4096);

        for (size_t i = 0; i < ARRAY_SIZE(bad); ++i) {
                assert_int_equal(reset(a, 0, bad[i], 7, KEEP, KEEP, KEEP), -EINVAL);
                assert_limits(a, BUS1_PEER_FLAG_WANT_SECCTX, 16384, 65536,
                              16 * 1024 * 1024, 4096);
        }

        assert_int_equal(reset(a, 0, 0, KEEP, KEEP, KEEP, KEEP), 0);
        assert_limits(a, 0, 16384, 65536, 16 * 1024 * 1024, 4096);
}

/* PEER_RESET with unknown flags is EINVAL and neither flushes nor sets anything */
static void test_reset_unknown_flags(void **state) {
        TestBus *t = *state;
        Peer *a = t->peers[0], *b = t->peers[1];
        const uint64_t bad[] = {
                4, BUS1_PEER_RESET_FLAG_FLUSH | 4, BUS1_PEER_RESET_FLAG_FLUSH_SEED | 8,
                1ULL << 63, UINT64_MAX,
        };
        uint64_t ba;
        PeerRecv r;

        ba = transfer(a, 0x100, b);
        send_text(b, ba, "stays");
        set_seed(a, "seed", NULL, 0, NULL);

        for (size_t i = 0; i < ARRAY_SIZE(bad); ++i)
                assert_int_equal(reset(a, bad[i], 1, 7, 7, 7, 7), -EINVAL);

        assert_limits(a, 0, 16384, 65536, 16 * 1024 * 1024, 4096);
        assert_int_equal(a->n_nodes, 1);
        expect_empty(b);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, &r), 0);
        expect_data(a, 0x100, 2, "stays");
}

/*
 * FLUSH destroys, in one transaction, every node the seed does not pin; a
 * flushed owner-chosen ID is free again afterwards (it names a new node).
 */
static void test_reset_flush_destroys_unpinned_nodes(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t b1, b2, b3, seed_handles[] = { 0x100 };

        b1 = transfer(a, 0x100, b);
        b2 = transfer(a, 0x200, b);
        b3 = transfer(a, 0x300, b);
        assert_int_equal(transfer(a, 0x400, NULL), 0x400);
        set_seed(a, "seed", seed_handles, 1, NULL);
        assert_int_equal(a->n_nodes, 4);

        assert_int_equal(flush(a, BUS1_PEER_RESET_FLAG_FLUSH), 0);
        assert_int_equal(a->n_nodes, 1);

        expect_notifications(b, (Expect[]){
                { BUS1_MSG_NODE_DESTROY, b2 },
                { BUS1_MSG_NODE_DESTROY, b3 },
        }, 2);
        expect_empty(b);
        expect_empty(a);        /* A's own NODE_DESTROYs went with the flush */

        /* the pinned node lives on, the others are gone */
        send_text(b, b1, "alive");
        expect_data(a, 0x100, 2, "alive");
        assert_int_equal(test_send1(b, b2, "x"), -EHOSTUNREACH);
        assert_valid(bus);
        handle_release_fails(a, 0x100, -EBUSY);

        /* 0x200 is no longer held: it names a new node */
        handle_release_fails(a, 0x200, -EBUSY);
        assert_int_not_equal(transfer(a, 0x200, b), b2);
        assert_int_equal(a->n_nodes, 2);
}

/*
 * FLUSH releases every handle reference: owners get NODE_RELEASE, and a live
 * (seed-pinned) node's owner handle keeps only its pin.
 */
static void test_reset_flush_releases_handles(void **state) {
        TestBus *t = *state;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t ab, ac, seed_handles[] = { 0x200 };

        ab = transfer(b, 0x100, a);
        assert_int_equal(transfer(b, 0x100, a), ab);
        ac = transfer(c, 0x100, a);
        transfer(c, 0x100, b);                  /* B holds C's node too */
        assert_int_equal(transfer(a, 0x200, NULL), 0x200);
        assert_int_equal(transfer(a, 0x200, NULL), 0x200);
        set_seed(a, "seed", seed_handles, 1, NULL);

        assert_int_equal(flush(a, BUS1_PEER_RESET_FLAG_FLUSH), 0);

        expect_one(b, BUS1_MSG_NODE_RELEASE, 0x100);
        expect_empty(b);
        expect_empty(c);        /* B still holds C's node */
        handle_release_fails(a, ab, -ENXIO);
        handle_release_fails(a, ac, -ENXIO);
        handle_release_fails(a, 0x200, -EBUSY);
        assert_int_equal(a->n_nodes, 1);
        assert_int_equal(a->n_handles, 1);
}

/*
 * FLUSH drops every queued entry (returning the in-flight handle references
 * it carried) and every received slice; only the seed's slice is left.
 */
static void test_reset_flush_drops_queue_and_slices(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t ba, bc, seed_offset;
        PeerRecv r, seed;

        ba = transfer(a, 0x100, b);
        bc = transfer(c, 0x100, b);
        set_seed(a, "seed", NULL, 0, NULL);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, &seed), 0);
        seed_offset = seed.offset;

        send_text(b, ba, "one");
        r = expect_data(a, 0x100, 2, "one");
        send_text(b, ba, "two");
        send_full(b, ba, "three", &bc, 1, NULL);
        handle_release_ok(b, bc);               /* A's queued entry still holds it */
        handle_release_ok(b, ba);               /* NODE_RELEASE queued on A */
        expect_empty(c);
        assert_int_equal(a->queue.n_entries, 3);
        assert_int_equal(a->pool.n_busy, 4);

        assert_int_equal(flush(a, BUS1_PEER_RESET_FLAG_FLUSH), 0);

        expect_empty(a);
        assert_int_equal(a->queue.n_entries, 0);
        slice_release_fails(a, r.offset);
        assert_int_equal(a->pool.n_busy, 1);
        assert_int_equal(a->pool.busy_bytes, 8);
        assert_non_null(pool_find(&a->pool, seed_offset));
        expect_one(c, BUS1_MSG_NODE_RELEASE, 0x100);
        expect_empty(b);

        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED, &r), 0);
        assert_valid(bus);
        check_data(a, &r, 1, "seed");
        assert_int_equal(r.offset, seed_offset);
}

/*
 * FLUSH_SEED drops the seed (RECV SEED is EAGAIN), its slice, its fds and its
 * handle references; it leaves the nodes and the queue alone.
 */
static void test_reset_flush_seed(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ab, ba, handles[2];
        PeerRecv r;
        FdList *fds;
        int fd;

        ab = transfer(b, 0x100, a);
        handles[0] = ab;
        handles[1] = 0x200;
        fds = fdlist_make(&fd, 1);
        set_seed(a, "seed", handles, 2, fds);
        fdlist_unref(fds);
        handle_release_ok(a, ab);       /* only the seed holds it now */
        expect_empty(b);
        ba = transfer(a, 0x200, b);
        send_text(b, ba, "queued");

        assert_int_equal(flush(a, BUS1_PEER_RESET_FLAG_FLUSH_SEED), 0);

        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED, &r), -EAGAIN);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, &r), -EAGAIN);
        assert_valid(bus);
        assert_false(fd_is_open(fd));
        assert_int_equal(a->pool.n_busy, 1);    /* the queued message's */
        expect_one(b, BUS1_MSG_NODE_RELEASE, 0x100);
        expect_empty(b);

        /* nodes and queue are untouched */
        assert_int_equal(a->n_nodes, 1);
        handle_release_fails(a, 0x200, -EBUSY);
        expect_data(a, 0x200, 2, "queued");
        send_text(b, ba, "alive");
        expect_data(a, 0x200, 2, "alive");
}

/* FLUSH together with FLUSH_SEED: the dropped seed pins nothing */
static void test_reset_flush_with_seed(void **state) {
        TestBus *t = *state;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ba, seed_handles[] = { 0x100 };
        PeerRecv r;

        ba = transfer(a, 0x100, b);
        set_seed(a, "seed", seed_handles, 1, NULL);

        assert_int_equal(flush(a, BUS1_PEER_RESET_FLAG_FLUSH | BUS1_PEER_RESET_FLAG_FLUSH_SEED),
                         0);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED, &r), -EAGAIN);
        assert_int_equal(a->n_nodes, 0);
        assert_int_equal(a->n_handles, 0);
        assert_int_equal(a->pool.n_busy, 0);
        expect_one(b, BUS1_MSG_NODE_DESTROY, ba);
        expect_empty(a);
}

/*
 * Limits lowered with PEER_RESET apply to the next send (EDQUOT), even below
 * what the peer already holds; raising them again lets sends through.
 */
static void test_reset_lowered_limits_apply(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ba, own = 0x200;
        uint32_t fd_limit;
        FdList *fds;
        int fd;

        ba = transfer(a, 0x100, b);
        assert_int_equal(transfer(b, own, NULL), own);

        /* slices: A holds one */
        send_text(b, ba, "1");
        assert_int_equal(reset(a, 0, UINT64_MAX, 1, KEEP, KEEP, KEEP), 0);
        assert_int_equal(test_send1(b, ba, "2"), -EDQUOT);
        assert_valid(bus);
        assert_int_equal(a->queue.n_entries, 1);
        assert_int_equal(reset(a, 0, UINT64_MAX, 0, KEEP, KEEP, KEEP), 0);
        assert_int_equal(test_send1(b, ba, "2"), -EDQUOT);
        assert_valid(bus);
        assert_int_equal(reset(a, 0, UINT64_MAX, 2, KEEP, KEEP, KEEP), 0);
        send_text(b, ba, "2");

        /* in-flight bytes: A holds two 8-byte slices */
        assert_int_equal(a->pool.busy_bytes, 16);
        assert_int_equal(reset(a, 0, UINT64_MAX, 100, KEEP, 24, KEEP), 0);
        assert_int_equal(test_send1(b, ba, "sixteen bytes..."), -EDQUOT);
        assert_valid(bus);
        send_text(b, ba, "eight");
        assert_int_equal(test_send1(b, ba, "x"), -EDQUOT);
        assert_valid(bus);
        assert_int_equal(a->queue.n_entries, 3);
        assert_int_equal(reset(a, 0, UINT64_MAX, KEEP, KEEP, USER_DEFAULT_MAX_BYTES,
                               KEEP), 0);

        /* handles: A holds one reference (its pin) */
        assert_int_equal(a->n_handle_refs, 1);
        assert_int_equal(reset(a, 0, UINT64_MAX, KEEP, 1, KEEP, KEEP), 0);
        assert_int_equal(test_send(b, 0, &ba, 1, NULL, "h", 1, &own, 1, NULL), -EDQUOT);
        assert_valid(bus);
        send_text(b, ba, "no handle");
        assert_int_equal(reset(a, 0, UINT64_MAX, KEEP, 2, KEEP, KEEP), 0);
        assert_int_equal(test_send(b, 0, &ba, 1, NULL, "h", 1, &own, 1, NULL), 0);
        assert_valid(bus);
        assert_int_equal(test_send(b, 0, &ba, 1, NULL, "h", 1, &own, 1, NULL), -EDQUOT);
        assert_valid(bus);

        /* fds */
        for (fd_limit = 0; fd_limit <= 1; ++fd_limit) {
                assert_int_equal(reset(a, 0, UINT64_MAX, KEEP, KEEP, KEEP, fd_limit), 0);
                fds = fdlist_make(&fd, 1);
                assert_int_equal(test_send(b, 0, &ba, 1, NULL, "f", 1, NULL, 0, fds),
                                 fd_limit ? 0 : -EDQUOT);
                assert_valid(bus);
                fdlist_unref(fds);
                assert_int_equal(fd_is_open(fd), !!fd_limit);
        }
        assert_int_equal(a->n_inflight_fds, 1);
}

/*
 * A SEED send sets the seed; RECV SEED with PEEK returns it (payload, sender,
 * handles as the peer's own IDs) and keeps it, without PEEK removes it, after
 * which its slice can be released and its handle references are the
 * peer's.
 */
static void test_seed_set_and_recv(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ab, fresh, handles[3];
        PeerRecv r, p;

        ab = transfer(b, 0x100, a);
        handles[0] = 0x200;     /* a new node */
        handles[1] = ab;
        handles[2] = ab;
        set_seed(a, "bootstrap", handles, 3, NULL);
        assert_int_equal(a->n_nodes, 1);
        expect_empty(a);        /* the seed is not on the queue */

        for (int i = 0; i < 2; ++i) {
                assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, &p),
                                 0);
                assert_valid(bus);
                check_data(a, &p, 1, "bootstrap");
                assert_int_equal(p.n_handles, 3);
                assert_int_equal(test_slice_handle(a, &p, 0), 0x200);
                assert_int_equal(test_slice_handle(a, &p, 1), ab);
                assert_int_equal(test_slice_handle(a, &p, 2), ab);
                slice_release_fails(a, p.offset);
        }
        /* PEEK added no references */
        handle_release_fails(a, 0x200, -EBUSY);
        handle_release_ok(a, ab);
        handle_release_fails(a, ab, -ENXIO);
        expect_empty(b);        /* the seed's entries still count */

        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED, &r), 0);
        assert_valid(bus);
        check_data(a, &r, 1, "bootstrap");
        assert_int_equal(r.offset, p.offset);
        assert_int_equal(r.n_handles, 3);
        assert_null(a->seed);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED, &p), -EAGAIN);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, &p), -EAGAIN);
        assert_valid(bus);

        /* released to zero before, so received again under a fresh ID (docs/model.md §2) */
        fresh = test_slice_handle(a, &r, 1);
        assert_int_equal(test_slice_handle(a, &r, 2), fresh);
        assert_int_not_equal(fresh, ab);
        assert_int_equal(fresh & 7, BUS1_HANDLE_FLAG_MANAGED | BUS1_HANDLE_FLAG_REMOTE);
        handle_release_fails(a, ab, -ENXIO);

        /* the dequeuing RECV added one reference per entry */
        handle_release_ok(a, 0x200);
        handle_release_fails(a, 0x200, -EBUSY);
        handle_release_ok(a, fresh);
        expect_empty(b);
        handle_release_ok(a, fresh);
        handle_release_fails(a, fresh, -ENXIO);
        expect_one(b, BUS1_MSG_NODE_RELEASE, 0x100);

        slice_release_ok(a, r.offset);
        slice_release_fails(a, r.offset);
        assert_int_equal(a->pool.n_busy, 0);
}

/* RECV SEED without a seed is EAGAIN, with and without PEEK */
static void test_seed_none_eagain(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0];
        PeerRecv r;

        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED, &r), -EAGAIN);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, &r), -EAGAIN);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_INSTALL_FDS, &r),
                         -EAGAIN);
        assert_valid(bus);
}

/* a SEED send with destinations or with CONTINUE is EINVAL and sets nothing */
static void test_seed_flags_einval(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ba;
        PeerRecv r;

        ba = transfer(a, 0x100, b);

        assert_int_equal(test_send(b, BUS1_SEND_FLAG_SEED, &ba, 1, NULL, "s", 1, NULL, 0,
                                   NULL), -EINVAL);
        assert_valid(bus);
        assert_int_equal(test_send(b, BUS1_SEND_FLAG_SEED | BUS1_SEND_FLAG_CONTINUE, NULL, 0,
                                   NULL, "s", 1, NULL, 0, NULL), -EINVAL);
        assert_valid(bus);
        assert_int_equal(test_recv(b, BUS1_RECV_FLAG_SEED, &r), -EAGAIN);
        expect_empty(a);
}

/* a SEED send replaces the older seed, whose slice and references go */
static void test_seed_replace(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ab;
        PeerRecv r;

        ab = transfer(b, 0x100, a);
        set_seed(a, "first seed", &ab, 1, NULL);
        handle_release_ok(a, ab);
        expect_empty(b);
        assert_int_equal(a->pool.n_busy, 1);

        set_seed(a, "second", NULL, 0, NULL);
        assert_int_equal(a->pool.n_busy, 1);
        assert_int_equal(a->pool.busy_bytes, 8);
        expect_one(b, BUS1_MSG_NODE_RELEASE, 0x100);

        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED, &r), 0);
        assert_valid(bus);
        check_data(a, &r, 1, "second");
        assert_int_equal(r.n_handles, 0);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED, &r), -EAGAIN);
}

/*
 * The seed's handles pin what it names across FLUSH: the peer's own nodes
 * stay alive, and handles to other peers' nodes stay held (no NODE_RELEASE)
 * with the same IDs.
 */
static void test_seed_pins_across_flush(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ba, ab, handles[2];
        PeerRecv r;

        ba = transfer(a, 0x100, b);
        ab = transfer(b, 0x100, a);
        handles[0] = 0x100;
        handles[1] = ab;
        set_seed(a, "seed", handles, 2, NULL);

        assert_int_equal(flush(a, BUS1_PEER_RESET_FLAG_FLUSH), 0);
        expect_empty(b);        /* neither NODE_DESTROY nor NODE_RELEASE */
        handle_release_fails(a, ab, -ENXIO);    /* no user reference left */
        send_text(b, ba, "still here");
        expect_data(a, 0x100, 2, "still here");

        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED, &r), 0);
        assert_valid(bus);
        assert_int_equal(test_slice_handle(a, &r, 0), 0x100);
        /* FLUSH released it to zero: received again under a fresh ID (docs/model.md §2) */
        assert_int_not_equal(test_slice_handle(a, &r, 1), ab);
        handle_release_ok(a, test_slice_handle(a, &r, 1));
        expect_one(b, BUS1_MSG_NODE_RELEASE, 0x100);
}

/* only the peer itself sees its seed */
static void test_seed_private(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ba;
        PeerRecv r;

        ba = transfer(a, 0x100, b);

        set_seed(a, "mine", NULL, 0, NULL);
        assert_int_equal(test_recv(b, BUS1_RECV_FLAG_SEED, &r), -EAGAIN);
        assert_int_equal(test_recv(b, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, &r), -EAGAIN);
        assert_valid(bus);
        expect_empty(b);
        expect_empty(a);

        /* B's seed does not replace A's */
        set_seed(b, "other", &ba, 1, NULL);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_SEED, &r), 0);
        assert_valid(bus);
        check_data(a, &r, 1, "mine");
        assert_int_equal(test_recv(b, BUS1_RECV_FLAG_SEED, &r), 0);
        assert_valid(bus);
        check_data(b, &r, 2, "other");
}

/* RECV on an empty queue is EAGAIN, with or without PEEK */
static void test_recv_empty_eagain(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ba;
        PeerRecv r;

        expect_empty(a);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_PEEK, &r), -EAGAIN);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_INSTALL_FDS, &r), -EAGAIN);
        assert_valid(bus);

        ba = transfer(a, 0x100, b);
        send_text(b, ba, "x");
        expect_data(a, 0x100, 2, "x");
        expect_empty(a);
}

/* RECV with unknown flags is EINVAL and leaves the entry queued */
static void test_recv_unknown_flags_einval(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        const uint64_t bad[] = { 8, BUS1_RECV_FLAG_PEEK | 16, 1ULL << 63, UINT64_MAX };
        uint64_t ba;
        PeerRecv r;

        ba = transfer(a, 0x100, b);
        send_text(b, ba, "x");

        for (size_t i = 0; i < ARRAY_SIZE(bad); ++i) {
                assert_int_equal(test_recv(a, bad[i], &r), -EINVAL);
                assert_valid(bus);
        }
        assert_int_equal(a->queue.n_entries, 1);
        expect_data(a, 0x100, 2, "x");
}

/*
 * RECV fails with ERANGE when the whole slice does not lie below max_offset
 * (payload, handle and fd areas counted), and the entry stays; never for
 * notifications. The seed follows the same rule.
 */
static void test_recv_erange(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ba, own = 0x200;
        PeerRecv r;

        ba = transfer(a, 0x100, b);
        assert_int_equal(transfer(b, own, NULL), own);

        /* "hello" and one handle: a 16-byte slice at 0; then "x" at 16 */
        assert_int_equal(test_send(b, 0, &ba, 1, NULL, "hello", 5, &own, 1, NULL), 0);
        assert_valid(bus);
        send_text(b, ba, "x");

        assert_int_equal(peer_recv(a, 0, 0, &r), -ERANGE);
        assert_int_equal(peer_recv(a, 0, 5, &r), -ERANGE);
        assert_int_equal(peer_recv(a, 0, 8, &r), -ERANGE);
        assert_int_equal(peer_recv(a, 0, 15, &r), -ERANGE);
        assert_int_equal(peer_recv(a, BUS1_RECV_FLAG_PEEK, 15, &r), -ERANGE);
        assert_valid(bus);
        assert_int_equal(a->queue.n_entries, 2);
        handle_release_fails(a, assigned_id(1, true), -ENXIO);
        slice_release_fails(a, 0);

        memset(&r, 0, sizeof(r));
        assert_int_equal(peer_recv(a, 0, 16, &r), 0);
        assert_valid(bus);
        check_data(a, &r, 2, "hello");
        assert_int_equal(r.offset, 0);

        assert_int_equal(peer_recv(a, 0, 23, &r), -ERANGE);
        assert_valid(bus);
        memset(&r, 0, sizeof(r));
        assert_int_equal(peer_recv(a, 0, 24, &r), 0);
        assert_valid(bus);
        check_data(a, &r, 2, "x");
        assert_int_equal(r.offset, 16);

        /* notifications never fail with ERANGE */
        handle_release_ok(b, ba);
        memset(&r, 0, sizeof(r));
        assert_int_equal(peer_recv(a, 0, 0, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.type, BUS1_MSG_NODE_RELEASE);

        /* the seed lands at 24 */
        set_seed(a, "seed", NULL, 0, NULL);
        assert_int_equal(peer_recv(a, BUS1_RECV_FLAG_SEED, 31, &r), -ERANGE);
        assert_int_equal(peer_recv(a, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK, 31, &r),
                         -ERANGE);
        assert_valid(bus);
        assert_non_null(a->seed);
        memset(&r, 0, sizeof(r));
        assert_int_equal(peer_recv(a, BUS1_RECV_FLAG_SEED, 32, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.offset, 24);
}

/*
 * PEEK returns the front entry without dequeuing it: the slice is not yet
 * releasable and no handle reference is added (the handle's ID is unknown to
 * HANDLE_RELEASE, its node is not released); the dequeuing RECV adds them,
 * one per entry.
 */
static void test_recv_peek(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t ba, bc, handles[2], id;
        PeerRecv p, r;

        ba = transfer(a, 0x100, b);
        bc = transfer(c, 0x100, b);
        handles[0] = handles[1] = bc;
        send_full(b, ba, "peek", handles, 2, NULL);
        handle_release_ok(b, bc);
        expect_empty(c);

        for (int i = 0; i < 3; ++i) {
                assert_int_equal(test_recv(a, BUS1_RECV_FLAG_PEEK, &p), 0);
                assert_valid(bus);
                check_data(a, &p, 2, "peek");
                assert_int_equal(p.destination, 0x100);
                assert_int_equal(p.n_handles, 2);
                assert_int_equal(a->queue.n_entries, 1);
        }
        id = test_slice_handle(a, &p, 0);
        assert_int_equal(id, assigned_id(1, true));
        assert_int_equal(test_slice_handle(a, &p, 1), id);
        handle_release_fails(a, id, -ENXIO);
        slice_release_fails(a, p.offset);
        expect_empty(c);

        assert_int_equal(test_recv(a, 0, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.entry_id, p.entry_id);
        assert_int_equal(r.offset, p.offset);
        assert_int_equal(a->queue.n_entries, 0);
        handle_release_ok(a, id);
        expect_empty(c);
        handle_release_ok(a, id);
        handle_release_fails(a, id, -ENXIO);

        /* PEEK of a notification keeps it too */
        assert_int_equal(test_recv(c, BUS1_RECV_FLAG_PEEK, &p), 0);
        assert_valid(bus);
        assert_int_equal(p.type, BUS1_MSG_NODE_RELEASE);
        assert_int_equal(p.destination, 0x100);
        check_notification_fields(&p);
        assert_int_equal(test_recv(c, BUS1_RECV_FLAG_PEEK, &p), 0);
        assert_valid(bus);
        expect_one(c, BUS1_MSG_NODE_RELEASE, 0x100);
        expect_empty(c);

        slice_release_ok(a, r.offset);
}

/* what RECV reports for DATA and for notifications */
static void test_recv_fields(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ba, ab, dsts[2], seen = 0;
        PeerRecv r;

        ba = transfer(a, 0x100, b);
        transfer(a, 0x200, NULL);
        ab = transfer(a, 0x200, b);
        dsts[0] = ba;
        dsts[1] = ab;

        /* two nodes of A in one transaction: two entries linked by CONTINUE */
        assert_int_equal(test_send(b, 0, dsts, 2, NULL, "multi", 5, NULL, 0, NULL), 0);
        assert_valid(bus);
        for (int i = 0; i < 2; ++i) {
                assert_int_equal(test_recv(a, 0, &r), 0);
                assert_valid(bus);
                check_data(a, &r, 2, "multi");
                assert_int_equal(r.flags, i ? 0 : BUS1_MSG_FLAG_CONTINUE);
                assert_int_equal(r.n_handles, 0);
                assert_int_equal(r.n_fds, 0);
                seen |= r.destination;
                slice_release_ok(a, r.offset);
        }
        assert_int_equal(seen, 0x100 | 0x200);

        handle_release_ok(b, ba);
        expect_one(a, BUS1_MSG_NODE_RELEASE, 0x100);
        expect_empty(a);
}

/* where a DATA entry's security context starts, as a client computes it */
static const void *secctx_of(Peer *peer, const PeerRecv *r) {
        return test_slice(peer, r->offset + align8(r->n_bytes) + align8(8 * r->n_handles) +
                                align8(4 * r->n_fds));
}

/*
 * The sender's security context reaches only receivers that set
 * BUS1_PEER_FLAG_WANT_SECCTX (PEER_RESET): HAS_SECCTX, n_secctx and the
 * bytes after the payload, handle and fd areas.
 */
static void test_recv_secctx(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        static const char label[] = "system_u:object_r:bus1_t";
        uint64_t ba, own = 0x200;
        PeerRecv r;
        FdList *fds;
        int fd;

        b->secctx = strdup(label);
        assert_non_null(b->secctx);
        b->n_secctx = sizeof(label) - 1;
        assert_valid(bus);
        ba = transfer(a, 0x100, b);
        assert_int_equal(transfer(b, own, NULL), own);

        send_text(b, ba, "plain");
        r = expect_data(a, 0x100, 2, "plain");
        assert_int_equal(r.flags, 0);
        assert_int_equal(r.n_secctx, 0);

        assert_int_equal(reset(a, 0, BUS1_PEER_FLAG_WANT_SECCTX, KEEP, KEEP, KEEP, KEEP), 0);
        send_text(b, ba, "labelled");
        assert_int_equal(test_recv(a, 0, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.flags, BUS1_MSG_FLAG_HAS_SECCTX);
        assert_int_equal(r.n_secctx, sizeof(label) - 1);
        assert_memory_equal(test_slice(a, r.offset), "labelled", 8);
        assert_memory_equal(secctx_of(a, &r), label, sizeof(label) - 1);

        /* behind a handle area and an installed fd area */
        fds = fdlist_make(&fd, 1);
        assert_int_equal(test_send(b, 0, &ba, 1, NULL, "h+f", 3, &own, 1, fds), 0);
        assert_valid(bus);
        fds = fdlist_unref(fds);
        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.flags, BUS1_MSG_FLAG_HAS_SECCTX);
        assert_int_equal(r.n_handles, 1);
        assert_int_equal(r.n_fds, 1);
        assert_int_equal(r.n_secctx, sizeof(label) - 1);
        assert_memory_equal(secctx_of(a, &r), label, sizeof(label) - 1);
        peer_recv_deinit(&r);

        /* the flag can be cleared again */
        assert_int_equal(reset(a, 0, 0, KEEP, KEEP, KEEP, KEEP), 0);
        send_text(b, ba, "plain");
        r = expect_data(a, 0x100, 2, "plain");
        assert_int_equal(r.flags, 0);
        assert_int_equal(r.n_secctx, 0);
}

/*
 * Without INSTALL_FDS, n_fds is 0 and no fd area is written, so the security
 * context must sit where a client computes it with n_fds 0 (docs/model.md §5
 * slice layout).
 */
static void test_recv_secctx_without_install_fds(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        static const char label[] = "unconfined";
        uint64_t ba;
        PeerRecv r;
        FdList *fds;
        int fd[2];

        b->secctx = strdup(label);
        assert_non_null(b->secctx);
        b->n_secctx = sizeof(label) - 1;
        assert_valid(bus);
        ba = transfer(a, 0x100, b);
        assert_int_equal(reset(a, 0, BUS1_PEER_FLAG_WANT_SECCTX, KEEP, KEEP, KEEP, KEEP), 0);

        fds = fdlist_make(fd, 2);
        send_full(b, ba, "fds", NULL, 0, fds);
        fds = fdlist_unref(fds);
        assert_int_equal(test_recv(a, 0, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.n_fds, 0);
        assert_int_equal(r.flags, BUS1_MSG_FLAG_HAS_SECCTX);
        assert_int_equal(r.n_secctx, sizeof(label) - 1);
        assert_memory_equal(secctx_of(a, &r), label, sizeof(label) - 1);
}

/* SLICE_RELEASE of an offset that starts no slice is ENXIO */
static void test_slice_release_unknown(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        const uint64_t bad[] = { 0, 1, 8, 16, 4096, UINT64_MAX };
        uint64_t ba, own = 0x200;
        PeerRecv r;

        for (size_t i = 0; i < ARRAY_SIZE(bad); ++i)
                slice_release_fails(a, bad[i]);

        /* a received 16-byte slice at 0: its inside is no slice */
        ba = transfer(a, 0x100, b);
        assert_int_equal(transfer(b, own, NULL), own);
        assert_int_equal(test_send(b, 0, &ba, 1, NULL, "hello", 5, &own, 1, NULL), 0);
        assert_valid(bus);
        assert_int_equal(test_recv(a, 0, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.offset, 0);
        slice_release_fails(a, 8);
        slice_release_fails(a, 4);
        slice_release_fails(a, 16);
        slice_release_ok(a, 0);
}

/*
 * SLICE_RELEASE of a queued, not yet received message's offset is ENXIO;
 * once received it succeeds once, then ENXIO again.
 */
static void test_slice_release_unreceived(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ba;
        PeerRecv p, r;

        ba = transfer(a, 0x100, b);
        send_text(b, ba, "queued");

        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_PEEK, &p), 0);
        assert_valid(bus);
        slice_release_fails(a, p.offset);
        assert_int_equal(a->queue.n_entries, 1);
        assert_int_equal(a->pool.n_busy, 1);

        r = expect_data(a, 0x100, 2, "queued");
        assert_int_equal(r.offset, p.offset);
        slice_release_ok(a, r.offset);
        slice_release_fails(a, r.offset);
        assert_int_equal(a->pool.n_busy, 0);
}

/* SLICE_RELEASE returns the slice's bytes to the pool, to be reused */
static void test_slice_release_returns_bytes(void **state) {
        TestBus *t = *state;
        Peer *a = t->peers[0], *b = t->peers[1];
        PeerRecv r1, r2, r3, r4;
        uint64_t ba;

        ba = transfer(a, 0x100, b);

        send_text(b, ba, "one");
        send_text(b, ba, "twelve bytes");
        send_text(b, ba, "three");
        r1 = expect_data(a, 0x100, 2, "one");
        r2 = expect_data(a, 0x100, 2, "twelve bytes");
        r3 = expect_data(a, 0x100, 2, "three");
        assert_int_equal(a->pool.n_busy, 3);
        assert_int_equal(a->pool.busy_bytes, 8 + 16 + 8);

        slice_release_ok(a, r2.offset);
        assert_int_equal(a->pool.n_busy, 2);
        assert_int_equal(a->pool.busy_bytes, 16);

        /* the hole is reused */
        send_text(b, ba, "sixteen bytes!!!");
        r4 = expect_data(a, 0x100, 2, "sixteen bytes!!!");
        assert_int_equal(r4.offset, r2.offset);

        slice_release_ok(a, r1.offset);
        slice_release_ok(a, r3.offset);
        slice_release_ok(a, r4.offset);
        assert_int_equal(a->pool.n_busy, 0);
        assert_int_equal(a->pool.busy_bytes, 0);
}

/*
 * With INSTALL_FDS a dequeuing RECV hands the message's fds over (n_fds and
 * PeerRecv.fds); a PEEK hands nothing over.
 */
static void test_fds_install(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ba;
        PeerRecv r;
        FdList *fds;
        int fd[2];

        ba = transfer(a, 0x100, b);

        fds = fdlist_make(fd, 2);
        send_full(b, ba, "fds", NULL, 0, fds);
        fds = fdlist_unref(fds);
        assert_int_equal(a->n_inflight_fds, 2);

        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_PEEK | BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        assert_valid(bus);
        assert_null(r.fds);
        assert_int_equal(a->queue.n_entries, 1);
        assert_true(fd_is_open(fd[0]) && fd_is_open(fd[1]));

        assert_int_equal(test_recv(a, BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        assert_valid(bus);
        check_data(a, &r, 2, "fds");
        assert_int_equal(r.n_fds, 2);
        assert_non_null(r.fds);
        assert_int_equal(r.fds->n_fds, 2);
        assert_int_equal(r.fds->fds[0], fd[0]);
        assert_int_equal(r.fds->fds[1], fd[1]);
        assert_int_equal(a->n_inflight_fds, 0);
        assert_true(fd_is_open(fd[0]) && fd_is_open(fd[1]));

        peer_recv_deinit(&r);
        assert_null(r.fds);
        assert_false(fd_is_open(fd[0]) || fd_is_open(fd[1]));
}

/* without INSTALL_FDS, RECV reports n_fds 0 and closes the fds */
static void test_fds_closed_without_install(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t ba;
        PeerRecv r;
        FdList *fds;
        int fd[2];

        ba = transfer(a, 0x100, b);

        fds = fdlist_make(fd, 2);
        send_full(b, ba, "fds", NULL, 0, fds);
        fds = fdlist_unref(fds);
        assert_true(fd_is_open(fd[0]) && fd_is_open(fd[1]));

        assert_int_equal(test_recv(a, 0, &r), 0);
        assert_valid(bus);
        check_data(a, &r, 2, "fds");
        assert_int_equal(r.n_fds, 0);
        assert_null(r.fds);
        assert_int_equal(a->n_inflight_fds, 0);
        assert_false(fd_is_open(fd[0]) || fd_is_open(fd[1]));
}

/*
 * PEER_DISCONNECT closes the fds of the messages it drops (queued and seed),
 * once no other receiver's copy holds them.
 */
static void test_fds_closed_on_disconnect(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t ba, bc, dsts[2];
        int fd[2], seed_fd;
        FdList *fds;

        ba = transfer(a, 0x100, b);
        bc = transfer(c, 0x100, b);
        dsts[0] = ba;
        dsts[1] = bc;

        fds = fdlist_make(fd, 2);
        assert_int_equal(test_send(b, 0, dsts, 2, NULL, "fds", 3, NULL, 0, fds), 0);
        assert_valid(bus);
        fds = fdlist_unref(fds);
        fds = fdlist_make(&seed_fd, 1);
        set_seed(a, "seed", NULL, 0, fds);
        fds = fdlist_unref(fds);

        assert_int_equal(peer_disconnect(a), 0);
        assert_valid(bus);
        assert_false(fd_is_open(seed_fd));
        assert_true(fd_is_open(fd[0]) && fd_is_open(fd[1]));    /* C's copy */

        assert_int_equal(peer_disconnect(c), 0);
        assert_valid(bus);
        assert_false(fd_is_open(fd[0]) || fd_is_open(fd[1]));
}

/*
 * FLUSH closes the fds of the queued messages it drops; the seed's fds stay
 * until FLUSH_SEED.
 */
static void test_fds_closed_on_flush(void **state) {
        TestBus *t = *state;
        Peer *a = t->peers[0], *b = t->peers[1];
        int fd[2], seed_fd;
        uint64_t ba;
        FdList *fds;

        ba = transfer(a, 0x100, b);

        fds = fdlist_make(&seed_fd, 1);
        set_seed(a, "seed", NULL, 0, fds);
        fds = fdlist_unref(fds);
        fds = fdlist_make(fd, 2);
        send_full(b, ba, "fds", NULL, 0, fds);
        fds = fdlist_unref(fds);
        assert_int_equal(a->n_inflight_fds, 3);

        assert_int_equal(flush(a, BUS1_PEER_RESET_FLAG_FLUSH), 0);
        assert_false(fd_is_open(fd[0]) || fd_is_open(fd[1]));
        assert_true(fd_is_open(seed_fd));
        assert_int_equal(a->n_inflight_fds, 1);

        assert_int_equal(flush(a, BUS1_PEER_RESET_FLAG_FLUSH_SEED), 0);
        assert_false(fd_is_open(seed_fd));
        assert_int_equal(a->n_inflight_fds, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_bus_unit_test_checked(test_disconnect_destroys_nodes, 3),
                test_bus_unit_test_checked(test_disconnect_releases_handles, 3),
                test_bus_unit_test_checked(test_disconnect_drops_queue_and_pool, 2),
                test_bus_unit_test_checked(test_disconnect_later_ops_eshutdown, 2),
                test_bus_unit_test_checked(test_disconnect_sends_to_its_nodes_eshutdown, 3),
                test_bus_unit_test_checked(test_disconnect_transfer_into_eshutdown, 2),
                test_bus_unit_test_checked(test_disconnect_sent_messages_stay, 3),
                cmocka_unit_test(test_free_without_disconnect),
                test_bus_unit_test_checked(test_query_defaults, 1),
                test_bus_unit_test_checked(test_query_flags_einval, 1),
                test_bus_unit_test_checked(test_reset_all_ones_keeps, 1),
                test_bus_unit_test_checked(test_reset_limit_above_int_max, 2),
                test_bus_unit_test_checked(test_reset_peer_flags, 1),
                test_bus_unit_test_checked(test_reset_unknown_flags, 2),
                test_bus_unit_test_checked(test_reset_flush_destroys_unpinned_nodes, 2),
                test_bus_unit_test_checked(test_reset_flush_releases_handles, 3),
                test_bus_unit_test_checked(test_reset_flush_drops_queue_and_slices, 3),
                test_bus_unit_test_checked(test_reset_flush_seed, 2),
                test_bus_unit_test_checked(test_reset_flush_with_seed, 2),
                test_bus_unit_test_checked(test_reset_lowered_limits_apply, 2),
                test_bus_unit_test_checked(test_seed_set_and_recv, 2),
                test_bus_unit_test_checked(test_seed_none_eagain, 1),
                test_bus_unit_test_checked(test_seed_flags_einval, 2),
                test_bus_unit_test_checked(test_seed_replace, 2),
                test_bus_unit_test_checked(test_seed_pins_across_flush, 2),
                test_bus_unit_test_checked(test_seed_private, 2),
                test_bus_unit_test_checked(test_recv_empty_eagain, 2),
                test_bus_unit_test_checked(test_recv_unknown_flags_einval, 2),
                test_bus_unit_test_checked(test_recv_erange, 2),
                test_bus_unit_test_checked(test_recv_peek, 3),
                test_bus_unit_test_checked(test_recv_fields, 2),
                test_bus_unit_test_checked(test_recv_secctx, 2),
                test_bus_unit_test_checked(test_slice_release_unknown, 2),
                test_bus_unit_test_checked(test_slice_release_unreceived, 2),
                test_bus_unit_test_checked(test_slice_release_returns_bytes, 2),
                test_bus_unit_test_checked(test_fds_install, 2),
                test_bus_unit_test_checked(test_fds_closed_on_disconnect, 3),
                test_bus_unit_test_checked(test_fds_closed_on_flush, 2),
                /* last: these two dequeue fds without INSTALL_FDS */
                test_bus_unit_test_checked(test_fds_closed_without_install, 2),
                test_bus_unit_test_checked(test_recv_secctx_without_install_fds, 2),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
