/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for SEND: one message transaction (docs/model.md §4, 5 and 8)
 *
 * Every test gets its own Bus with peers (the TestBus fixture of
 * model-util.h, or one it builds), and runs the model's consistency checker
 * (assert_valid()) after every step, so reference counts, queue order,
 * slice ownership and fd charges are checked throughout, not only where a
 * test looks. A failed transaction must leave
 * no trace: the tests snapshot the counters of every peer involved (queue
 * length, busy slices and bytes, handles and their references, in-flight
 * fds, nodes) and compare them after the failure, check that a node the
 * failed send named as a new ID does not exist, and that the FdList it was
 * given holds no reference from it (the fds close with the caller's last
 * reference).
 *
 * A message whose fds are dropped by a RECV without INSTALL_FDS is always
 * followed by another fd-carrying message to the same peer, so that a
 * wrong in-flight fd count shows up as a checker failure rather than as an
 * assertion abort inside the model, which would end the whole run.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "model-util.h"
#include "bus/handle.h"
#include "bus/node.h"

/* node IDs the tests choose (new IDs: MANAGED and REMOTE clear) */
#define ID_N1 0x100ULL
#define ID_N2 0x200ULL
#define ID_N3 0x300ULL
#define ID_NEW 0x800ULL
#define ID_NEW2 0x808ULL
/* IDs nobody was ever given */
#define ID_UNKNOWN_REMOTE ((99ULL << 3) | BUS1_HANDLE_FLAG_MANAGED | BUS1_HANDLE_FLAG_REMOTE)
#define ID_UNKNOWN_OWNED ((99ULL << 3) | BUS1_HANDLE_FLAG_MANAGED)

/* --- helpers ------------------------------------------------------------ */

static void set_limits(Bus *bus, Peer *peer, uint32_t max_slices, uint32_t max_handles,
                       uint32_t max_inflight_bytes, uint32_t max_inflight_fds) {
        PeerLimits limits = {
                .max_slices = max_slices,
                .max_handles = max_handles,
                .max_inflight_bytes = max_inflight_bytes,
                .max_inflight_fds = max_inflight_fds,
        };

        assert_int_equal(peer_reset(peer, 0, UINT64_MAX, &limits), 0);
        assert_valid(bus);
}

static void want_secctx(Bus *bus, Peer *peer) {
        PeerLimits keep = {
                .max_slices = PEER_LIMIT_KEEP,
                .max_handles = PEER_LIMIT_KEEP,
                .max_inflight_bytes = PEER_LIMIT_KEEP,
                .max_inflight_fds = PEER_LIMIT_KEEP,
        };

        assert_int_equal(peer_reset(peer, 0, BUS1_PEER_FLAG_WANT_SECCTX, &keep), 0);
        assert_valid(bus);
}

static void set_secctx(Peer *peer, const char *label) {
        peer->secctx = strdup(label);
        assert_non_null(peer->secctx);
        peer->n_secctx = strlen(label) + 1;
}

/* a peer whose pool region has @pool_size bytes */
static Peer *peer_new_with_pool(Bus *bus, uint32_t uid, uint64_t pool_size) {
        uint64_t saved = bus->pool_size;
        Peer *peer;

        bus->pool_size = pool_size;
        peer = test_peer_new(bus, uid);
        bus->pool_size = saved;
        return peer;
}

static bool fd_is_open(int fd) {
        return fcntl(fd, F_GETFD) >= 0;
}

static unsigned int count_open_fds(void) {
        struct dirent *de;
        unsigned int n = 0;
        DIR *dir;

        dir = opendir("/proc/self/fd");
        assert_non_null(dir);
        while ((de = readdir(dir)))
                n += de->d_name[0] != '.';
        closedir(dir);
        return n;
}

/* @n fresh eventfds in a new FdList (which owns them); their numbers in @fds */
static FdList *make_fdlist(int *fds, size_t n) {
        FdList *list = NULL;

        for (size_t i = 0; i < n; ++i) {
                fds[i] = eventfd(0, EFD_CLOEXEC);
                assert_true(fds[i] >= 0);
        }
        assert_int_equal(fdlist_new(&list, fds, n), 0);
        return list;
}

/* send @len bytes and a fresh FdList of @n_fds fds; the caller's reference is dropped */
static int send_with_fds(Peer *sender, uint64_t flags, const uint64_t *dsts, uint64_t n_dsts,
                         const char *text, const uint64_t *handles, uint64_t n_handles,
                         int *fds, size_t n_fds) {
        FdList *list = make_fdlist(fds, n_fds);
        int r;

        r = test_send(sender, flags, dsts, n_dsts, NULL, text, strlen(text), handles, n_handles,
                      list);
        fdlist_unref(list);
        return r;
}

static int send_bytes(Peer *sender, uint64_t dst, char fill, size_t len) {
        char buf[4096];

        assert_true(len <= sizeof(buf));
        memset(buf, fill, len);
        return test_send(sender, 0, &dst, 1, NULL, buf, len, NULL, 0, NULL);
}

/* what a failed send must leave unchanged on a peer */
typedef struct Counts {
        uint64_t n_entries;
        uint64_t n_busy;
        uint64_t busy_bytes;
        uint64_t n_handles;
        uint64_t n_handle_refs;
        uint64_t n_inflight_fds;
        uint64_t n_nodes;
        uint64_t n_handle_ids;  /* a failed send leaves no gap in assigned IDs */
} Counts;

static Counts counts_of(const Peer *peer) {
        return (Counts){
                .n_entries = peer->queue.n_entries,
                .n_busy = peer->pool.n_busy,
                .busy_bytes = peer->pool.busy_bytes,
                .n_handles = peer->n_handles,
                .n_handle_refs = peer->n_handle_refs,
                .n_inflight_fds = peer->n_inflight_fds,
                .n_nodes = peer->n_nodes,
                .n_handle_ids = peer->n_handle_ids,
        };
}

static void assert_counts(const Peer *peer, const Counts *before) {
        Counts now = counts_of(peer);

        assert_int_equal(now.n_entries, before->n_entries);
        assert_int_equal(now.n_busy, before->n_busy);
        assert_int_equal(now.busy_bytes, before->busy_bytes);
        assert_int_equal(now.n_handles, before->n_handles);
        assert_int_equal(now.n_handle_refs, before->n_handle_refs);
        assert_int_equal(now.n_inflight_fds, before->n_inflight_fds);
        assert_int_equal(now.n_nodes, before->n_nodes);
        assert_int_equal(now.n_handle_ids, before->n_handle_ids);
}

/* the node @peer's handle @id refers to */
static Node *node_of(Peer *peer, uint64_t id) {
        Handle *h = handle_find(peer, id);

        assert_non_null(h);
        return h->node;
}

/* dequeue the next DATA entry with fds installed and check the basics */
static void recv_data_fds(Peer *peer, uint64_t destination, const char *text, uint64_t n_fds,
                          PeerRecv *r) {
        memset(r, 0, sizeof(*r));
        assert_int_equal(peer_recv(peer, BUS1_RECV_FLAG_INSTALL_FDS, UINT64_MAX, r), 0);
        assert_int_equal(r->type, BUS1_MSG_DATA);
        assert_int_equal(r->destination, destination);
        assert_int_equal(r->n_bytes, strlen(text));
        assert_memory_equal(test_slice(peer, r->offset), text, strlen(text));
        assert_int_equal(r->n_fds, n_fds);
        if (n_fds) {
                assert_non_null(r->fds);
                assert_int_equal(r->fds->n_fds, n_fds);
        } else {
                assert_null(r->fds);
        }
}

static void free_peers(Bus *bus, Peer **peers, size_t n) {
        for (size_t i = 0; i < n; ++i) {
                peers[i] = peer_free(peers[i]);
                assert_valid(bus);
        }
        bus_deinit(bus);
}

/* --- unicast and the slice --------------------------------------------- */

/* docs/model.md §4/§5: payload at the returned offset, n_bytes, destination, sender creds */
static void test_unicast_payload_and_metadata(void **state) {
        static const char text[] = "hello, bus1";
        PeerCreds creds = { .uid = 1000, .gid = 1001, .pid = 4242, .tid = 4243 };
        Peer *peers[2] = {}, *a, *b;
        uint64_t to_n1, to_n2;
        PeerRecv r;
        Bus bus;

        bus_init(&bus);
        assert_int_equal(peer_new(&peers[0], &bus, &creds), 0);
        a = peers[0];
        b = peers[1] = test_peer_new(&bus, 2);
        to_n1 = test_transfer(b, ID_N1, a);
        to_n2 = test_transfer(b, ID_N2, a);
        assert_valid(&bus);
        assert_int_not_equal(to_n1, ID_N1);

        assert_int_equal(test_send1(a, to_n2, text), 0);
        assert_valid(&bus);
        assert_int_equal(test_send1(a, to_n1, "second"), 0);
        assert_valid(&bus);

        assert_int_equal(test_recv(b, 0, &r), 0);
        assert_valid(&bus);
        assert_int_equal(r.type, BUS1_MSG_DATA);
        assert_int_equal(r.flags, 0);
        /* the receiver's own ID of the node, not the sender's */
        assert_int_equal(r.destination, ID_N2);
        assert_int_equal(r.creds.uid, 1000);
        assert_int_equal(r.creds.gid, 1001);
        assert_int_equal(r.creds.pid, 4242);
        assert_int_equal(r.creds.tid, 4243);
        assert_int_equal(r.n_bytes, strlen(text));
        assert_int_equal(r.n_handles, 0);
        assert_int_equal(r.n_fds, 0);
        assert_int_equal(r.n_secctx, 0);
        assert_null(r.fds);
        assert_int_equal(r.offset % 8, 0);
        assert_memory_equal(test_slice(b, r.offset), text, strlen(text));
        /* the slice is now the receiver's */
        assert_int_equal(peer_slice_release(b, r.offset), 0);
        assert_valid(&bus);

        test_expect_data(b, ID_N1, "second", 0, &r);
        assert_valid(&bus);
        assert_int_equal(r.creds.uid, 1000);
        assert_int_equal(peer_slice_release(b, r.offset), 0);
        assert_valid(&bus);
        assert_int_equal(b->pool.n_busy, 0);

        free_peers(&bus, peers, 2);
}

/* docs/model.md §4: the payload is the concatenation of the iovecs, empty ones included */
static void test_unicast_iovecs_concatenated(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer **peers = t->peers;
        struct iovec vecs[] = {
                { .iov_base = (void *)"abc", .iov_len = 3 },
                { .iov_base = NULL, .iov_len = 0 },
                { .iov_base = (void *)"defgh", .iov_len = 5 },
                { .iov_base = (void *)"i", .iov_len = 1 },
        };
        uint64_t to_b;
        TxArgs args = {};
        PeerRecv r;

        to_b = test_transfer(peers[1], ID_N1, peers[0]);
        assert_valid(bus);

        args.destinations = &to_b;
        args.n_destinations = 1;
        args.vecs = vecs;
        args.n_vecs = ARRAY_SIZE(vecs);
        assert_int_equal(peer_send(peers[0], &args), 0);
        assert_valid(bus);

        test_expect_data(peers[1], ID_N1, "abcdefghi", 0, &r);
        assert_valid(bus);
}

/*
 * docs/model.md §5 slice layout: payload at 0, the u64 handle IDs as the receiver sees
 * them at ALIGN8(n_bytes) (a destroyed node's as BUS1_HANDLE_INVALID, still
 * counted; the receiver's own node as its owner ID), and a slice of exactly
 * ALIGN8(n_bytes) + 8 * n_handles bytes
 */
static void test_slice_layout_handles(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        static const char text[] = "thirteen byte";     /* 13 bytes: padded to 16 */
        uint64_t to_b, to_c1, to_c2, handles[4], id;
        uint64_t id_c2 = ID_N2;
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        to_c1 = test_transfer(c, ID_N1, a);
        to_c2 = test_transfer(c, ID_N2, a);
        assert_int_equal(peer_nodes_destroy(c, 0, &id_c2, 1), 0);
        assert_valid(bus);

        handles[0] = ID_NEW;    /* a new node of the sender */
        handles[1] = to_c1;     /* a third peer's node */
        handles[2] = to_c2;     /* a destroyed node */
        handles[3] = to_b;      /* the receiver's own node */
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, text, 13, handles, 4, NULL), 0);
        assert_valid(bus);
        /* reserved at send time: 16 bytes of payload, 4 * 8 of handle IDs */
        assert_int_equal(b->pool.n_busy, 1);
        assert_int_equal(b->pool.busy_bytes, 16 + 32);

        test_expect_data(b, ID_N1, text, 4, &r);
        assert_valid(bus);
        assert_int_equal(r.offset % 8, 0);

        id = test_slice_handle(b, &r, 0);
        assert_int_equal(id & 7, BUS1_HANDLE_FLAG_MANAGED | BUS1_HANDLE_FLAG_REMOTE);
        assert_ptr_equal(node_of(b, id), node_of(a, ID_NEW));

        id = test_slice_handle(b, &r, 1);
        assert_int_equal(id & 7, BUS1_HANDLE_FLAG_MANAGED | BUS1_HANDLE_FLAG_REMOTE);
        assert_ptr_equal(node_of(b, id), node_of(c, ID_N1));
        assert_int_not_equal(id, test_slice_handle(b, &r, 0));

        assert_int_equal(test_slice_handle(b, &r, 2), BUS1_HANDLE_INVALID);
        assert_int_equal(test_slice_handle(b, &r, 3), ID_N1);

        assert_int_equal(peer_slice_release(b, r.offset), 0);
        assert_valid(bus);
}

/* docs/model.md §5: an empty message still takes an 8-byte slice that needs SLICE_RELEASE */
static void test_empty_message_takes_slice(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t to_b;
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        assert_valid(bus);

        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, NULL, 0, NULL, 0, NULL), 0);
        assert_valid(bus);
        assert_int_equal(b->pool.n_busy, 1);
        assert_int_equal(b->pool.busy_bytes, 8);

        test_expect_data(b, ID_N1, NULL, 0, &r);
        assert_valid(bus);
        assert_int_not_equal(r.offset, BUS1_OFFSET_INVALID);
        assert_int_equal(b->pool.n_busy, 1);
        assert_int_equal(b->pool.busy_bytes, 8);

        assert_int_equal(peer_slice_release(b, r.offset), 0);
        assert_valid(bus);
        assert_int_equal(b->pool.n_busy, 0);
        assert_int_equal(peer_slice_release(b, r.offset), -ENXIO);
        assert_valid(bus);
}

/* docs/model.md §2: a new ID as destination creates the node, and the owner receives on it */
static void test_new_id_destination_creates_node(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0];
        uint64_t dsts[2] = { ID_N1, ID_UNKNOWN_REMOTE };
        PeerRecv r;

        assert_int_equal(test_send1(a, ID_N1, "to myself"), 0);
        assert_valid(bus);
        assert_int_equal(a->n_nodes, 1);
        assert_int_equal(handle_find(a, ID_N1)->n_user, 1);
        test_expect_data(a, ID_N1, "to myself", 0, &r);
        assert_valid(bus);

        /* a failing send creates nothing */
        dsts[0] = ID_N2;
        assert_int_equal(test_send(a, 0, dsts, 2, NULL, "x", 1, NULL, 0, NULL), -ENXIO);
        assert_valid(bus);
        assert_null(handle_find(a, ID_N2));
        assert_int_equal(a->n_nodes, 1);
}

/* --- multicast: atomic, or per destination with CONTINUE ---------------- */

enum {
        FAIL_DESTROYED,         /* destination node destroyed: EHOSTUNREACH */
        FAIL_DISCONNECTED,      /* its owner disconnected: ESHUTDOWN */
        FAIL_QUOTA,             /* the owner's slice limit is 0: EDQUOT */
        FAIL_FULL,              /* the owner's pool is full: EXFULL */
};

static const int fail_errno[] = {
        [FAIL_DESTROYED] = EHOSTUNREACH,
        [FAIL_DISCONNECTED] = ESHUTDOWN,
        [FAIL_QUOTA] = EDQUOT,
        [FAIL_FULL] = EXFULL,
};

/*
 * Sender A and receivers B, C, D, each owning node ID_N1; A holds a handle
 * to each. C's destination is made to fail as @kind says (C's pool holds
 * only 64 bytes, filled up for FAIL_FULL).
 */
typedef struct Multicast {
        Peer *peers[4];         /* A, B, C, D */
        uint64_t dsts[3];       /* A's IDs of B's, C's, D's node */
} Multicast;

static void multicast_make_fail(Bus *bus, Multicast *m, Peer *victim, uint64_t dst, int kind) {
        uint64_t id = ID_N1;

        switch (kind) {
        case FAIL_DESTROYED:
                assert_int_equal(peer_nodes_destroy(victim, 0, &id, 1), 0);
                break;
        case FAIL_DISCONNECTED:
                assert_int_equal(peer_disconnect(victim), 0);
                break;
        case FAIL_QUOTA:
                set_limits(bus, victim, 0, PEER_LIMIT_KEEP, PEER_LIMIT_KEEP, PEER_LIMIT_KEEP);
                break;
        case FAIL_FULL:
                assert_int_equal(victim->pool.max_size, 64);
                assert_int_equal(send_bytes(m->peers[0], dst, 'f', 64), 0);
                assert_int_equal(victim->pool.busy_bytes, 64);
                break;
        }
        assert_valid(bus);
}

static void multicast_setup(Bus *bus, Multicast *m, int kind) {
        bus_init(bus);
        m->peers[0] = test_peer_new(bus, 1);
        m->peers[1] = test_peer_new(bus, 2);
        m->peers[2] = peer_new_with_pool(bus, 3, 64);
        m->peers[3] = test_peer_new(bus, 4);
        for (size_t i = 0; i < 3; ++i)
                m->dsts[i] = test_transfer(m->peers[i + 1], ID_N1, m->peers[0]);
        assert_valid(bus);
        multicast_make_fail(bus, m, m->peers[2], m->dsts[1], kind);
}

/* docs/model.md §4: atomic by default: one failing destination and nobody gets anything */
static void multicast_atomic_run(int kind) {
        uint64_t handles[1] = { ID_NEW };
        Counts before[4];
        Multicast m;
        FdList *fds;
        PeerRecv r;
        int fd;
        Bus bus;

        multicast_setup(&bus, &m, kind);
        for (size_t i = 0; i < 4; ++i)
                before[i] = counts_of(m.peers[i]);

        fds = make_fdlist(&fd, 1);
        assert_int_equal(test_send(m.peers[0], 0, m.dsts, 3, NULL, "payload", 7, handles, 1,
                                   fds),
                         -fail_errno[kind]);
        assert_valid(&bus);
        fds = fdlist_unref(fds);
        /* the failed send kept no reference on the fds */
        assert_false(fd_is_open(fd));

        for (size_t i = 0; i < 4; ++i)
                assert_counts(m.peers[i], &before[i]);
        /* the node it named as a new ID was never created */
        assert_null(handle_find(m.peers[0], ID_NEW));
        test_expect_empty(m.peers[1]);
        test_expect_empty(m.peers[3]);
        assert_valid(&bus);

        /* docs/model.md §2: the failed send used up no ID: B's first assigned one has n = 1 */
        assert_int_equal(test_send(m.peers[0], 0, m.dsts, 1, NULL, "again", 5, handles, 1,
                                   NULL),
                         0);
        assert_valid(&bus);
        test_expect_data(m.peers[1], ID_N1, "again", 1, &r);
        assert_valid(&bus);
        assert_int_equal(test_slice_handle(m.peers[1], &r, 0),
                         (1 << 3) | BUS1_HANDLE_FLAG_MANAGED | BUS1_HANDLE_FLAG_REMOTE);

        free_peers(&bus, m.peers, 4);
}

static void test_multicast_atomic_destroyed(void **state) {
        multicast_atomic_run(FAIL_DESTROYED);
}

static void test_multicast_atomic_disconnected(void **state) {
        multicast_atomic_run(FAIL_DISCONNECTED);
}

static void test_multicast_atomic_quota(void **state) {
        multicast_atomic_run(FAIL_QUOTA);
}

static void test_multicast_atomic_full(void **state) {
        multicast_atomic_run(FAIL_FULL);
}

/*
 * docs/model.md §4: with CONTINUE a receiver-side error stays with its destination,
 * the others are delivered (handles, fds and all), and ptr_errors has 0 for
 * them
 */
static void multicast_continue_run(int kind) {
        uint64_t handles[1] = { ID_NEW }, errors[3] = { 77, 77, 77 };
        Counts before;
        Multicast m;
        FdList *fds;
        PeerRecv r;
        int fd;
        Bus bus;

        multicast_setup(&bus, &m, kind);
        before = counts_of(m.peers[2]);

        fds = make_fdlist(&fd, 1);
        assert_int_equal(test_send(m.peers[0], BUS1_SEND_FLAG_CONTINUE, m.dsts, 3, errors,
                                   "payload", 7, handles, 1, fds),
                         0);
        assert_valid(&bus);
        fds = fdlist_unref(fds);
        assert_int_equal(errors[0], 0);
        assert_int_equal(errors[1], fail_errno[kind]);
        assert_int_equal(errors[2], 0);
        assert_counts(m.peers[2], &before);
        /* the new node was created and went out */
        assert_non_null(handle_find(m.peers[0], ID_NEW));

        for (size_t i = 1; i < 4; i += 2) {
                Peer *p = m.peers[i];
                uint64_t id;

                assert_true(fd_is_open(fd));
                recv_data_fds(p, ID_N1, "payload", 1, &r);
                assert_valid(&bus);
                assert_int_equal(r.n_handles, 1);
                assert_int_equal(r.fds->fds[0], fd);
                id = test_slice_handle(p, &r, 0);
                assert_ptr_equal(node_of(p, id), node_of(m.peers[0], ID_NEW));
                peer_recv_deinit(&r);
                test_expect_empty(p);
                assert_valid(&bus);
        }
        /* both deliveries shared the fds, closed with the last one */
        assert_false(fd_is_open(fd));

        free_peers(&bus, m.peers, 4);
}

static void test_continue_destroyed(void **state) {
        multicast_continue_run(FAIL_DESTROYED);
}

static void test_continue_disconnected(void **state) {
        multicast_continue_run(FAIL_DISCONNECTED);
}

static void test_continue_quota(void **state) {
        multicast_continue_run(FAIL_QUOTA);
}

static void test_continue_full(void **state) {
        multicast_continue_run(FAIL_FULL);
}

/* docs/model.md §4: atomic failure returns the first failing destination's error */
static void test_multicast_first_error(void **state) {
        uint64_t dsts[3], errors[3] = { 77, 77, 77 };
        Counts before[4];
        Multicast m;
        PeerRecv r;
        Bus bus;

        /* C's node destroyed, D's slice limit 0 */
        multicast_setup(&bus, &m, FAIL_DESTROYED);
        multicast_make_fail(&bus, &m, m.peers[3], m.dsts[2], FAIL_QUOTA);
        for (size_t i = 0; i < 4; ++i)
                before[i] = counts_of(m.peers[i]);

        dsts[0] = m.dsts[0];
        dsts[1] = m.dsts[1];
        dsts[2] = m.dsts[2];
        assert_int_equal(test_send(m.peers[0], 0, dsts, 3, NULL, "x", 1, NULL, 0, NULL),
                         -EHOSTUNREACH);
        assert_valid(&bus);
        dsts[1] = m.dsts[2];
        dsts[2] = m.dsts[1];
        assert_int_equal(test_send(m.peers[0], 0, dsts, 3, NULL, "x", 1, NULL, 0, NULL),
                         -EDQUOT);
        assert_valid(&bus);
        for (size_t i = 0; i < 4; ++i)
                assert_counts(m.peers[i], &before[i]);

        /* with CONTINUE each gets its own */
        assert_int_equal(test_send(m.peers[0], BUS1_SEND_FLAG_CONTINUE, dsts, 3, errors,
                                   "x", 1, NULL, 0, NULL),
                         0);
        assert_valid(&bus);
        assert_int_equal(errors[0], 0);
        assert_int_equal(errors[1], EDQUOT);
        assert_int_equal(errors[2], EHOSTUNREACH);
        test_expect_data(m.peers[1], ID_N1, "x", 0, &r);
        assert_valid(&bus);
        test_expect_empty(m.peers[1]);

        free_peers(&bus, m.peers, 4);
}

/* docs/model.md §4: CONTINUE without an errors array still delivers to the others */
static void test_continue_without_errors_array(void **state) {
        Multicast m;
        PeerRecv r;
        Bus bus;

        multicast_setup(&bus, &m, FAIL_DESTROYED);
        assert_int_equal(test_send(m.peers[0], BUS1_SEND_FLAG_CONTINUE, m.dsts, 3, NULL,
                                   "y", 1, NULL, 0, NULL),
                         0);
        assert_valid(&bus);
        test_expect_data(m.peers[1], ID_N1, "y", 0, &r);
        assert_valid(&bus);
        test_expect_data(m.peers[3], ID_N1, "y", 0, &r);
        assert_valid(&bus);

        free_peers(&bus, m.peers, 4);
}

/* docs/model.md §4: a successful send writes 0 for every destination into ptr_errors */
static void test_errors_array_all_delivered(void **state) {
        uint64_t errors[3] = { 77, 77, 77 };
        Multicast m;
        PeerRecv r;
        Bus bus;

        bus_init(&bus);
        m.peers[0] = test_peer_new(&bus, 1);
        for (size_t i = 1; i < 4; ++i)
                m.peers[i] = test_peer_new(&bus, 1 + i);
        for (size_t i = 0; i < 3; ++i)
                m.dsts[i] = test_transfer(m.peers[i + 1], ID_N1, m.peers[0]);
        assert_valid(&bus);

        assert_int_equal(test_send(m.peers[0], 0, m.dsts, 3, errors, "z", 1, NULL, 0, NULL),
                         0);
        assert_valid(&bus);
        for (size_t i = 0; i < 3; ++i) {
                assert_int_equal(errors[i], 0);
                test_expect_data(m.peers[i + 1], ID_N1, "z", 0, &r);
                assert_valid(&bus);
        }

        free_peers(&bus, m.peers, 4);
}

/*
 * Sender-side errors fail the whole call even with CONTINUE: sender A,
 * receivers B (default pool) and C (64-byte pool); A holds handles to their
 * ID_N1 nodes. Each check sends with a new node ID_NEW attached and then
 * verifies that nothing happened.
 */
typedef struct SenderErr {
        Bus bus;
        Peer *peers[3];
        uint64_t to_b, to_c;
        Counts before[3];
} SenderErr;

/* the fixture of the sender-error cases */
static int sender_err_setup(void **state) {
        SenderErr *s = calloc(1, sizeof(*s));

        assert_non_null(s);
        *state = s;
        bus_init(&s->bus);
        s->peers[0] = test_peer_new(&s->bus, 1);
        s->peers[1] = test_peer_new(&s->bus, 2);
        s->peers[2] = peer_new_with_pool(&s->bus, 3, 64);
        s->to_b = test_transfer(s->peers[1], ID_N1, s->peers[0]);
        s->to_c = test_transfer(s->peers[2], ID_N1, s->peers[0]);
        assert_valid(&s->bus);
        for (size_t i = 0; i < 3; ++i)
                s->before[i] = counts_of(s->peers[i]);
        return 0;
}

static int sender_err_teardown(void **state) {
        SenderErr *s = *state;

        free_peers(&s->bus, s->peers, 3);
        free(s);
        return 0;
}

static void sender_err_check_nothing(SenderErr *s) {
        assert_valid(&s->bus);
        for (size_t i = 0; i < 3; ++i)
                assert_counts(s->peers[i], &s->before[i]);
        assert_null(handle_find(s->peers[0], ID_NEW));
        test_expect_empty(s->peers[1]);
        test_expect_empty(s->peers[2]);
}

static int sender_err_send(SenderErr *s, uint64_t flags, const uint64_t *dsts, uint64_t n_dsts,
                           const uint64_t *handles, uint64_t n_handles) {
        uint64_t errors[4] = {};

        assert_true(n_dsts <= 4);
        return test_send(s->peers[0], flags, dsts, n_dsts, errors, "msg", 3, handles,
                         n_handles, NULL);
}

/* docs/model.md §4/§9: EINVAL (bad flags, too many destinations) is never per destination */
static void test_continue_einval_fails_call(void **state) {
        SenderErr *s = *state;
        uint64_t handles[1] = { ID_NEW };
        uint64_t dsts[2];

        dsts[0] = s->to_b;
        dsts[1] = s->to_c;

        assert_int_equal(sender_err_send(s, BUS1_SEND_FLAG_CONTINUE | 4, dsts, 2, handles, 1),
                         -EINVAL);
        sender_err_check_nothing(s);

        /* more destinations than the user's handle limit (the kernel's bound) */
        s->peers[0]->user->limits.max[USER_HANDLES] = 1;
        s->before[0] = counts_of(s->peers[0]);
        assert_int_equal(sender_err_send(s, BUS1_SEND_FLAG_CONTINUE, dsts, 2, handles, 1),
                         -EINVAL);
        sender_err_check_nothing(s);
}

/* docs/model.md §4/§9: ENXIO (unknown destination or attached handle) fails the whole call */
static void test_continue_enxio_fails_call(void **state) {
        SenderErr *s = *state;
        uint64_t handles[2] = { ID_NEW, ID_UNKNOWN_REMOTE };
        uint64_t dsts[3];

        dsts[0] = s->to_b;
        dsts[1] = ID_UNKNOWN_REMOTE;
        dsts[2] = s->to_c;

        assert_int_equal(sender_err_send(s, BUS1_SEND_FLAG_CONTINUE, dsts, 3, handles, 1),
                         -ENXIO);
        sender_err_check_nothing(s);

        dsts[1] = s->to_c;
        assert_int_equal(sender_err_send(s, BUS1_SEND_FLAG_CONTINUE, dsts, 2, handles, 2),
                         -ENXIO);
        sender_err_check_nothing(s);
}

/*
 * docs/model.md §4/§9: EMSGSIZE fails the whole call, also when only one receiver's
 * pool is too small for the slice
 */
static void test_continue_emsgsize_fails_call(void **state) {
        SenderErr *s = *state;
        uint64_t handles[1] = { ID_NEW };
        struct iovec vecs[TX_VECS_MAX + 1];
        char big[100];
        uint64_t dsts[2];
        TxArgs args = {};

        dsts[0] = s->to_b;
        dsts[1] = s->to_c;

        /* 100 bytes fit B's pool but not C's 64 */
        memset(big, 'b', sizeof(big));
        assert_int_equal(test_send(s->peers[0], BUS1_SEND_FLAG_CONTINUE, dsts, 2, NULL, big,
                                   sizeof(big), handles, 1, NULL),
                         -EMSGSIZE);
        sender_err_check_nothing(s);

        for (size_t i = 0; i < ARRAY_SIZE(vecs); ++i)
                vecs[i] = (struct iovec){ .iov_base = big, .iov_len = 0 };
        args.flags = BUS1_SEND_FLAG_CONTINUE;
        args.destinations = dsts;
        args.n_destinations = 2;
        args.vecs = vecs;
        args.n_vecs = ARRAY_SIZE(vecs);
        args.handles = handles;
        args.n_handles = 1;
        assert_int_equal(peer_send(s->peers[0], &args), -EMSGSIZE);
        sender_err_check_nothing(s);
}

/* docs/model.md §4/§9: ENOTUNIQ fails the whole call */
static void test_continue_enotuniq_fails_call(void **state) {
        SenderErr *s = *state;
        uint64_t handles[1] = { ID_NEW };
        uint64_t dsts[3];

        dsts[0] = s->to_b;
        dsts[1] = s->to_c;
        dsts[2] = s->to_b;

        assert_int_equal(sender_err_send(s, BUS1_SEND_FLAG_CONTINUE, dsts, 3, handles, 1),
                         -ENOTUNIQ);
        sender_err_check_nothing(s);
}

/* --- argument errors ----------------------------------------------------- */

/* docs/model.md §4: the same destination twice is ENOTUNIQ, a new ID twice included */
static void test_duplicate_destination_enotuniq(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer **peers = t->peers, *a = peers[0];
        uint64_t dsts[3];
        PeerRecv r;

        dsts[0] = test_transfer(peers[1], ID_N1, a);
        dsts[1] = test_transfer(peers[2], ID_N1, a);
        dsts[2] = dsts[0];
        assert_valid(bus);

        assert_int_equal(test_send(a, 0, dsts, 3, NULL, "d", 1, NULL, 0, NULL), -ENOTUNIQ);
        assert_valid(bus);
        test_expect_empty(peers[1]);
        test_expect_empty(peers[2]);

        /* a new ID named twice: still the same node, and it is not created */
        dsts[0] = ID_NEW;
        dsts[2] = ID_NEW;
        assert_int_equal(test_send(a, 0, dsts, 3, NULL, "d", 1, NULL, 0, NULL), -ENOTUNIQ);
        assert_valid(bus);
        assert_null(handle_find(a, ID_NEW));
        test_expect_empty(a);
        test_expect_empty(peers[2]);

        /* the same handle twice in the handle list is fine */
        dsts[2] = dsts[1];
        assert_int_equal(test_send(a, 0, &dsts[1], 1, NULL, "d", 1, dsts, 3, NULL), 0);
        assert_valid(bus);
        test_expect_data(peers[2], ID_N1, "d", 3, &r);
        assert_valid(bus);
}

/* docs/model.md §4: zero destinations is a no-op returning 0 that still creates named nodes */
static void test_zero_destinations(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer **peers = t->peers, *a = peers[0];
        uint64_t handles[2] = { ID_NEW, ID_NEW2 };
        Counts before;

        (void)test_transfer(peers[1], ID_N1, a);
        assert_valid(bus);
        before = counts_of(peers[1]);

        assert_int_equal(test_send(a, 0, NULL, 0, NULL, "nobody", 6, handles, 2, NULL), 0);
        assert_valid(bus);
        assert_int_equal(a->n_nodes, 2);
        assert_int_equal(handle_find(a, ID_NEW)->n_user, 1);
        assert_int_equal(handle_find(a, ID_NEW2)->n_user, 1);
        assert_true(handle_is_owner(handle_find(a, ID_NEW)));
        /* nothing was queued or reserved anywhere */
        assert_int_equal(a->queue.n_entries, 0);
        assert_int_equal(a->pool.n_busy, 0);
        assert_counts(peers[1], &before);
        assert_null(a->seed);

        /* and without anything at all */
        assert_int_equal(test_send(a, 0, NULL, 0, NULL, NULL, 0, NULL, 0, NULL), 0);
        assert_valid(bus);
        assert_int_equal(a->pool.n_busy, 0);
}

/* docs/model.md §4: SEED with destinations or with CONTINUE is EINVAL */
static void test_seed_flag_einval(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer **peers = t->peers, *a = peers[0];
        uint64_t to_b;

        to_b = test_transfer(peers[1], ID_N1, a);
        assert_valid(bus);

        assert_int_equal(test_send(a, BUS1_SEND_FLAG_SEED, &to_b, 1, NULL, "s", 1, NULL, 0,
                                   NULL),
                         -EINVAL);
        assert_valid(bus);
        assert_int_equal(test_send(a, BUS1_SEND_FLAG_SEED | BUS1_SEND_FLAG_CONTINUE, NULL, 0,
                                   NULL, "s", 1, NULL, 0, NULL),
                         -EINVAL);
        assert_valid(bus);
        assert_null(a->seed);
        test_expect_empty(peers[1]);
        assert_int_equal(a->pool.n_busy, 0);

        /* without either it is a seed */
        assert_int_equal(test_send(a, BUS1_SEND_FLAG_SEED, NULL, 0, NULL, "s", 1, NULL, 0,
                                   NULL),
                         0);
        assert_valid(bus);
        assert_non_null(a->seed);
}

/* docs/model.md §9: unknown SEND flags are EINVAL */
static void test_unknown_flags_einval(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer **peers = t->peers, *a = peers[0];
        static const uint64_t bad[] = { 4, 8, 1ULL << 32, 1ULL << 63 };
        uint64_t to_b;

        to_b = test_transfer(peers[1], ID_N1, a);
        assert_valid(bus);

        for (size_t i = 0; i < ARRAY_SIZE(bad); ++i) {
                assert_int_equal(test_send(a, bad[i], &to_b, 1, NULL, "f", 1, NULL, 0, NULL),
                                 -EINVAL);
                assert_valid(bus);
        }
        test_expect_empty(peers[1]);
}

/*
 * More destinations than the caller's user may hold handles is EINVAL (the
 * kernel's bus1_peer_ioctl_send() bounds the work by the user's limit); a
 * peer that lowered its own limit still multicasts to the handles it holds.
 */
static void test_too_many_destinations_einval(void **state) {
        Peer *peers[4] = {}, *a;
        uint64_t dsts[3];
        PeerRecv r;
        Bus bus;

        bus_init(&bus);
        a = peers[0] = test_peer_new(&bus, 1);
        for (size_t i = 1; i < 4; ++i) {
                peers[i] = test_peer_new(&bus, 1 + i);
                dsts[i - 1] = test_transfer(peers[i], ID_N1, a);
        }
        set_limits(&bus, a, PEER_LIMIT_KEEP, 1, PEER_LIMIT_KEEP, PEER_LIMIT_KEEP);
        assert_int_equal(test_send(a, 0, dsts, 3, NULL, "m", 1, NULL, 0, NULL), 0);
        assert_valid(&bus);
        for (size_t i = 1; i < 4; ++i) {
                test_expect_data(peers[i], ID_N1, "m", 0, &r);
                assert_valid(&bus);
        }

        a->user->limits.max[USER_HANDLES] = 2;
        assert_int_equal(test_send(a, 0, dsts, 3, NULL, "m", 1, NULL, 0, NULL), -EINVAL);
        assert_valid(&bus);
        for (size_t i = 1; i < 4; ++i)
                test_expect_empty(peers[i]);

        /* exactly the limit is fine */
        assert_int_equal(test_send(a, 0, dsts, 2, NULL, "m", 1, NULL, 0, NULL), 0);
        assert_valid(&bus);
        test_expect_data(peers[1], ID_N1, "m", 0, &r);
        assert_valid(&bus);
        test_expect_data(peers[2], ID_N1, "m", 0, &r);
        assert_valid(&bus);

        free_peers(&bus, peers, 4);
}

/* docs/model.md §2/§9: unknown, released, or not yet received handle IDs are ENXIO */
static void test_unknown_id_enxio(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t to_a, to_b, to_c, a_to_c, guess;
        Handle *pending;
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        assert_valid(bus);

        assert_int_equal(test_send1(a, ID_UNKNOWN_REMOTE, "u"), -ENXIO);
        assert_valid(bus);
        assert_int_equal(test_send1(a, ID_UNKNOWN_OWNED, "u"), -ENXIO);
        assert_valid(bus);
        guess = ID_UNKNOWN_REMOTE;
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, "u", 1, &guess, 1, NULL), -ENXIO);
        assert_valid(bus);
        test_expect_empty(b);

        /* a handle released to zero */
        to_c = test_transfer(c, ID_N1, b);
        a_to_c = test_transfer(b, to_c, a);
        assert_int_equal(peer_handle_release(a, a_to_c), 0);
        assert_valid(bus);
        assert_int_equal(test_send1(a, a_to_c, "u"), -ENXIO);
        assert_valid(bus);

        /* a handle that only a queued message carries: its ID is not usable yet */
        to_a = test_transfer(a, ID_N1, b);
        assert_int_equal(test_send(b, 0, &to_a, 1, NULL, "h", 1, &to_c, 1, NULL), 0);
        assert_valid(bus);
        pending = handle_find_by_node(a, node_of(c, ID_N1));
        assert_non_null(pending);
        assert_int_equal(pending->n_user, 0);
        guess = pending->id;
        assert_int_not_equal(guess, a_to_c);
        assert_int_equal(test_send1(a, guess, "u"), -ENXIO);
        assert_valid(bus);
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, "u", 1, &guess, 1, NULL), -ENXIO);
        assert_valid(bus);
        test_expect_empty(b);
        test_expect_empty(c);

        /* once received, it is */
        test_expect_data(a, ID_N1, "h", 1, &r);
        assert_valid(bus);
        assert_int_equal(test_slice_handle(a, &r, 0), guess);
        assert_int_equal(test_send1(a, guess, "u"), 0);
        assert_valid(bus);
        test_expect_data(c, ID_N1, "u", 0, &r);
        assert_valid(bus);
}

/* --- several nodes of one peer ------------------------------------------- */

/*
 * docs/model.md §4: a peer gets one message per destination node; every entry with
 * another of the same transaction right behind it carries CONTINUE, the last
 * does not, and nothing of another transaction does
 */
static void test_several_nodes_one_peer(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t dsts[4], seen = 0;
        PeerRecv r;

        dsts[0] = test_transfer(b, ID_N1, a);
        dsts[1] = test_transfer(c, ID_N1, a);
        dsts[2] = test_transfer(b, ID_N2, a);
        dsts[3] = test_transfer(b, ID_N3, a);
        assert_valid(bus);

        assert_int_equal(test_send(a, 0, dsts, 4, NULL, "multi", 5, NULL, 0, NULL), 0);
        assert_valid(bus);
        assert_int_equal(test_send1(a, dsts[0], "next"), 0);
        assert_valid(bus);
        assert_int_equal(b->queue.n_entries, 4);
        assert_int_equal(b->pool.n_busy, 4);

        /* one entry per node, in an unspecified order */
        for (size_t i = 0; i < 3; ++i) {
                assert_int_equal(test_recv(b, 0, &r), 0);
                assert_valid(bus);
                assert_int_equal(r.type, BUS1_MSG_DATA);
                assert_int_equal(r.n_bytes, 5);
                assert_memory_equal(test_slice(b, r.offset), "multi", 5);
                assert_int_equal(r.flags, i < 2 ? BUS1_MSG_FLAG_CONTINUE : 0);
                assert_true(r.destination == ID_N1 || r.destination == ID_N2 ||
                            r.destination == ID_N3);
                assert_int_equal(seen & (1U << (r.destination >> 8)), 0);
                seen |= 1U << (r.destination >> 8);
        }
        assert_int_equal(seen, 2 | 4 | 8);
        test_expect_data(b, ID_N1, "next", 0, &r);
        assert_valid(bus);
        assert_int_equal(r.flags, 0);

        test_expect_data(c, ID_N1, "multi", 0, &r);
        assert_valid(bus);
        assert_int_equal(r.flags, 0);
}

/* --- size limits --------------------------------------------------------- */

/* docs/model.md §4: more than 1024 iovecs is EMSGSIZE; 1024 is fine */
static void test_too_many_iovecs_emsgsize(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        static struct iovec vecs[TX_VECS_MAX + 1];
        static char data[TX_VECS_MAX + 1];
        TxArgs args = {};
        uint64_t to_b;
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        assert_valid(bus);

        for (size_t i = 0; i < ARRAY_SIZE(vecs); ++i) {
                data[i] = 'a' + i % 26;
                vecs[i] = (struct iovec){ .iov_base = &data[i], .iov_len = 1 };
        }
        args.destinations = &to_b;
        args.n_destinations = 1;
        args.vecs = vecs;
        args.n_vecs = TX_VECS_MAX + 1;
        assert_int_equal(peer_send(a, &args), -EMSGSIZE);
        assert_valid(bus);
        test_expect_empty(b);
        assert_int_equal(b->pool.n_busy, 0);

        args.n_vecs = TX_VECS_MAX;
        assert_int_equal(peer_send(a, &args), 0);
        assert_valid(bus);
        assert_int_equal(test_recv(b, 0, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.n_bytes, TX_VECS_MAX);
        assert_memory_equal(test_slice(b, r.offset), data, TX_VECS_MAX);
}

/* docs/model.md §4: more than BUS1_FD_MAX fds is EMSGSIZE (and closes nothing early); 256 is fine */
static void test_too_many_fds_emsgsize(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        int fds[BUS1_FD_MAX + 1];
        unsigned int n_open;
        FdList *list;
        uint64_t to_b;
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        assert_valid(bus);
        n_open = count_open_fds();

        list = make_fdlist(fds, BUS1_FD_MAX + 1);
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, "f", 1, NULL, 0, list), -EMSGSIZE);
        assert_valid(bus);
        for (size_t i = 0; i < ARRAY_SIZE(fds); ++i)
                assert_true(fd_is_open(fds[i]));
        list = fdlist_unref(list);
        assert_int_equal(count_open_fds(), n_open);
        test_expect_empty(b);
        assert_int_equal(b->n_inflight_fds, 0);

        assert_int_equal(send_with_fds(a, 0, &to_b, 1, "f", NULL, 0, fds, BUS1_FD_MAX), 0);
        assert_valid(bus);
        assert_int_equal(b->n_inflight_fds, BUS1_FD_MAX);
        recv_data_fds(b, ID_N1, "f", BUS1_FD_MAX, &r);
        assert_valid(bus);
        peer_recv_deinit(&r);
        assert_int_equal(count_open_fds(), n_open);
}

/* docs/model.md §4: a payload over 2 GiB, or one whose length overflows, is EMSGSIZE */
static void test_payload_over_2gib_emsgsize(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        static char byte;
        struct iovec vecs[3] = {
                { .iov_base = &byte, .iov_len = 1ULL << 30 },
                { .iov_base = &byte, .iov_len = 1ULL << 30 },
                { .iov_base = &byte, .iov_len = 1 },
        };
        TxArgs args = {};
        uint64_t to_b;

        to_b = test_transfer(b, ID_N1, a);
        assert_valid(bus);

        /* nothing is read: the lengths alone decide */
        args.destinations = &to_b;
        args.n_destinations = 1;
        args.vecs = vecs;
        args.n_vecs = 3;
        assert_int_equal(peer_send(a, &args), -EMSGSIZE);
        assert_valid(bus);

        /* with zero destinations too: the payload itself is refused, not a pool */
        args.n_destinations = 0;
        assert_int_equal(peer_send(a, &args), -EMSGSIZE);
        assert_valid(bus);

        vecs[0].iov_len = SIZE_MAX;
        vecs[1].iov_len = 2;
        args.n_vecs = 2;
        assert_int_equal(peer_send(a, &args), -EMSGSIZE);
        assert_valid(bus);
        args.n_destinations = 1;
        assert_int_equal(peer_send(a, &args), -EMSGSIZE);
        assert_valid(bus);

        test_expect_empty(b);
        assert_int_equal(b->pool.n_busy, 0);
}

/*
 * docs/model.md §4/§5/8: a slice larger than the receiver's pool can ever hold is
 * EMSGSIZE (handle IDs count, and it is EMSGSIZE even when the pool is
 * full); one that fits exactly is fine
 */
static void test_slice_larger_than_pool_emsgsize(void **state) {
        uint64_t handles[1] = { ID_NEW };
        char buf[257];
        Peer *peers[2] = {}, *a, *b;
        uint64_t to_b;
        PeerRecv r;
        Bus bus;

        bus_init(&bus);
        a = peers[0] = test_peer_new(&bus, 1);
        b = peers[1] = peer_new_with_pool(&bus, 2, 256);
        to_b = test_transfer(b, ID_N1, a);
        assert_valid(&bus);
        memset(buf, 'p', sizeof(buf));

        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, buf, 257, NULL, 0, NULL), -EMSGSIZE);
        assert_valid(&bus);
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, buf, 249, handles, 1, NULL),
                         -EMSGSIZE);
        assert_valid(&bus);
        assert_null(handle_find(a, ID_NEW));
        assert_int_equal(b->pool.n_busy, 0);

        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, buf, 248, handles, 1, NULL), 0);
        assert_valid(&bus);
        assert_int_equal(b->pool.busy_bytes, 256);
        /* the pool is full, but a slice too large for any pool is still EMSGSIZE */
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, buf, 257, NULL, 0, NULL), -EMSGSIZE);
        assert_valid(&bus);
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, buf, 1, NULL, 0, NULL), -EXFULL);
        assert_valid(&bus);

        assert_int_equal(test_recv(b, 0, &r), 0);
        assert_valid(&bus);
        assert_int_equal(r.n_bytes, 248);
        assert_int_equal(r.n_handles, 1);
        assert_int_equal(r.offset, 0);

        free_peers(&bus, peers, 2);
}

/* --- per-peer limits (PEER_RESET) -> EDQUOT ------------------------------ */

/* docs/model.md §8: max_slices counts queued and received-but-unreleased slices */
static void test_limit_max_slices_edquot(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t to_b, offset;
        Counts before;
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        set_limits(bus, b, 2, PEER_LIMIT_KEEP, PEER_LIMIT_KEEP, PEER_LIMIT_KEEP);

        assert_int_equal(test_send1(a, to_b, "1"), 0);
        assert_valid(bus);
        assert_int_equal(test_send1(a, to_b, "2"), 0);
        assert_valid(bus);
        before = counts_of(b);
        assert_int_equal(test_send1(a, to_b, "3"), -EDQUOT);
        assert_valid(bus);
        assert_counts(b, &before);

        /* a received slice stays charged until SLICE_RELEASE */
        test_expect_data(b, ID_N1, "1", 0, &r);
        assert_valid(bus);
        offset = r.offset;
        assert_int_equal(test_send1(a, to_b, "3"), -EDQUOT);
        assert_valid(bus);
        assert_int_equal(peer_slice_release(b, offset), 0);
        assert_valid(bus);
        assert_int_equal(test_send1(a, to_b, "3"), 0);
        assert_valid(bus);

        test_expect_data(b, ID_N1, "2", 0, &r);
        assert_valid(bus);
        test_expect_data(b, ID_N1, "3", 0, &r);
        assert_valid(bus);
}

/*
 * docs/model.md §8: max_handles counts the receiver's user references plus the handle
 * entries of its queued messages; entries for destroyed nodes add nothing
 */
static void test_limit_max_handles_edquot(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t to_b, handles[2] = { ID_NEW, ID_NEW2 }, dead, id_c = ID_N1, got;
        Counts before;
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        dead = test_transfer(c, ID_N1, a);
        assert_int_equal(peer_nodes_destroy(c, 0, &id_c, 1), 0);
        assert_valid(bus);
        /* B holds its owner handle (one reference) and may hold 3 */
        set_limits(bus, b, PEER_LIMIT_KEEP, 3, PEER_LIMIT_KEEP, PEER_LIMIT_KEEP);
        assert_int_equal(b->n_handle_refs, 1);

        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, "h", 1, handles, 2, NULL), 0);
        assert_valid(bus);
        before = counts_of(b);
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, "h", 1, handles, 1, NULL), -EDQUOT);
        assert_valid(bus);
        assert_counts(b, &before);
        /* an entry that arrives as BUS1_HANDLE_INVALID takes no reference */
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, "i", 1, &dead, 1, NULL), 0);
        assert_valid(bus);

        /* received, the references stay charged until released */
        test_expect_data(b, ID_N1, "h", 2, &r);
        assert_valid(bus);
        got = test_slice_handle(b, &r, 1);
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, "h", 1, handles, 1, NULL), -EDQUOT);
        assert_valid(bus);
        assert_int_equal(peer_handle_release(b, got), 0);
        assert_valid(bus);
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, "h", 1, handles, 1, NULL), 0);
        assert_valid(bus);

        test_expect_data(b, ID_N1, "i", 1, &r);
        assert_valid(bus);
        assert_int_equal(test_slice_handle(b, &r, 0), BUS1_HANDLE_INVALID);
        test_expect_data(b, ID_N1, "h", 1, &r);
        assert_valid(bus);
}

/* docs/model.md §8: max_inflight_bytes counts slice bytes until SLICE_RELEASE */
static void test_limit_max_inflight_bytes_edquot(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t to_b, offset;
        Counts before;
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        set_limits(bus, b, PEER_LIMIT_KEEP, PEER_LIMIT_KEEP, 32, PEER_LIMIT_KEEP);

        assert_int_equal(send_bytes(a, to_b, 'x', 20), 0);     /* slice of 24 */
        assert_valid(bus);
        before = counts_of(b);
        assert_int_equal(send_bytes(a, to_b, 'y', 9), -EDQUOT);        /* 24 + 16 > 32 */
        assert_valid(bus);
        assert_counts(b, &before);
        assert_int_equal(send_bytes(a, to_b, 'z', 8), 0);      /* 24 + 8 == 32 */
        assert_valid(bus);
        assert_int_equal(b->pool.busy_bytes, 32);
        /* even an empty message takes 8 bytes */
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, NULL, 0, NULL, 0, NULL), -EDQUOT);
        assert_valid(bus);

        assert_int_equal(test_recv(b, 0, &r), 0);
        assert_valid(bus);
        offset = r.offset;
        assert_int_equal(send_bytes(a, to_b, 'w', 1), -EDQUOT);
        assert_valid(bus);
        assert_int_equal(peer_slice_release(b, offset), 0);
        assert_valid(bus);
        assert_int_equal(send_bytes(a, to_b, 'w', 24), 0);
        assert_valid(bus);
}

/* docs/model.md §8: max_inflight_fds counts the fds of queued messages */
static void test_limit_max_inflight_fds_edquot(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        int fds[2], more[2];
        Counts before;
        uint64_t to_b;
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        set_limits(bus, b, PEER_LIMIT_KEEP, PEER_LIMIT_KEEP, PEER_LIMIT_KEEP, 2);

        assert_int_equal(send_with_fds(a, 0, &to_b, 1, "two", NULL, 0, fds, 2), 0);
        assert_valid(bus);
        assert_int_equal(b->n_inflight_fds, 2);
        before = counts_of(b);
        assert_int_equal(send_with_fds(a, 0, &to_b, 1, "one", NULL, 0, more, 1), -EDQUOT);
        assert_valid(bus);
        assert_counts(b, &before);
        assert_false(fd_is_open(more[0]));
        /* a message without fds is not affected */
        assert_int_equal(test_send1(a, to_b, "none"), 0);
        assert_valid(bus);

        /* once dequeued (installed), the fds are no longer in flight */
        recv_data_fds(b, ID_N1, "two", 2, &r);
        assert_valid(bus);
        assert_int_equal(b->n_inflight_fds, 0);
        peer_recv_deinit(&r);
        assert_false(fd_is_open(fds[0]));
        assert_int_equal(send_with_fds(a, 0, &to_b, 1, "again", NULL, 0, more, 2), 0);
        assert_valid(bus);
}

/* --- EXFULL: quotas allow, the pool has no room --------------------------- */

/* docs/model.md §5/§8: a full pool is EXFULL while the limits (far above the pool) allow more */
static void test_exfull_pool_full(void **state) {
        Peer *peers[2] = {}, *a, *b;
        uint64_t to_b;
        Counts before;
        PeerRecv r;
        Bus bus;

        bus_init(&bus);
        a = peers[0] = test_peer_new(&bus, 1);
        b = peers[1] = peer_new_with_pool(&bus, 2, 64);
        to_b = test_transfer(b, ID_N1, a);
        assert_valid(&bus);

        assert_int_equal(send_bytes(a, to_b, 'a', 40), 0);
        assert_valid(&bus);
        assert_int_equal(send_bytes(a, to_b, 'b', 24), 0);
        assert_valid(&bus);
        before = counts_of(b);
        assert_int_equal(test_send(a, 0, &to_b, 1, NULL, NULL, 0, NULL, 0, NULL), -EXFULL);
        assert_valid(&bus);
        assert_counts(b, &before);

        /* receiving is not enough, releasing the slice is */
        assert_int_equal(test_recv(b, 0, &r), 0);
        assert_valid(&bus);
        assert_int_equal(send_bytes(a, to_b, 'c', 8), -EXFULL);
        assert_valid(&bus);
        assert_int_equal(peer_slice_release(b, r.offset), 0);
        assert_valid(&bus);
        assert_int_equal(send_bytes(a, to_b, 'c', 40), 0);
        assert_valid(&bus);

        free_peers(&bus, peers, 2);
}

/* docs/model.md §5: free bytes that are not contiguous do not make room: EXFULL */
static void test_exfull_fragmented_pool(void **state) {
        uint64_t to_b, offsets[4];
        Peer *peers[2] = {}, *a, *b;
        Counts before;
        PeerRecv r;
        Bus bus;

        bus_init(&bus);
        a = peers[0] = test_peer_new(&bus, 1);
        b = peers[1] = peer_new_with_pool(&bus, 2, 64);
        to_b = test_transfer(b, ID_N1, a);
        assert_valid(&bus);

        for (size_t i = 0; i < 4; ++i) {
                assert_int_equal(send_bytes(a, to_b, 'a' + i, 16), 0);
                assert_valid(&bus);
        }
        for (size_t i = 0; i < 4; ++i) {
                assert_int_equal(test_recv(b, 0, &r), 0);
                assert_valid(&bus);
                offsets[i] = r.offset;
        }
        /* free two 16-byte holes that are not neighbours */
        assert_int_equal(peer_slice_release(b, offsets[1]), 0);
        assert_valid(&bus);
        assert_int_equal(peer_slice_release(b, offsets[3]), 0);
        assert_valid(&bus);
        assert_int_equal(b->pool.busy_bytes, 32);

        before = counts_of(b);
        assert_int_equal(send_bytes(a, to_b, 'x', 24), -EXFULL);
        assert_valid(&bus);
        assert_counts(b, &before);
        assert_int_equal(send_bytes(a, to_b, 'x', 16), 0);
        assert_valid(&bus);
        assert_int_equal(send_bytes(a, to_b, 'y', 16), 0);
        assert_valid(&bus);
        assert_int_equal(send_bytes(a, to_b, 'z', 1), -EXFULL);
        assert_valid(&bus);

        free_peers(&bus, peers, 2);
}

/* --- fds ------------------------------------------------------------------ */

/*
 * docs/model.md §5: with INSTALL_FDS, RECV reports n_fds and hands the fds over; the
 * slice has room for them after the handle IDs
 */
static void test_fds_installed_with_flag(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t handles[1] = { ID_NEW };
        uint64_t to_b;
        int fds[3];
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        assert_valid(bus);

        assert_int_equal(send_with_fds(a, 0, &to_b, 1, "fives", handles, 1, fds, 3), 0);
        assert_valid(bus);
        assert_int_equal(b->n_inflight_fds, 3);
        /* ALIGN8(5) + 8 * 1 + ALIGN8(4 * 3) */
        assert_int_equal(b->pool.busy_bytes, 8 + 8 + 16);

        recv_data_fds(b, ID_N1, "fives", 3, &r);
        assert_valid(bus);
        assert_int_equal(r.n_handles, 1);
        for (size_t i = 0; i < 3; ++i) {
                assert_int_equal(r.fds->fds[i], fds[i]);
                assert_true(fd_is_open(fds[i]));
        }
        assert_int_equal(b->n_inflight_fds, 0);

        peer_recv_deinit(&r);
        assert_null(r.fds);
        for (size_t i = 0; i < 3; ++i)
                assert_false(fd_is_open(fds[i]));
        assert_valid(bus);
}

/* docs/model.md §5: without INSTALL_FDS, n_fds is 0 and the fds are closed */
static void test_fds_closed_without_flag(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        int fds[2], behind[2];
        unsigned int n_open;
        uint64_t to_b;
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        assert_valid(bus);
        n_open = count_open_fds();

        assert_int_equal(send_with_fds(a, 0, &to_b, 1, "first", NULL, 0, fds, 2), 0);
        assert_valid(bus);
        assert_int_equal(send_with_fds(a, 0, &to_b, 1, "behind", NULL, 0, behind, 2), 0);
        assert_valid(bus);
        assert_int_equal(b->n_inflight_fds, 4);

        test_expect_data(b, ID_N1, "first", 0, &r);
        assert_int_equal(r.n_fds, 0);
        assert_null(r.fds);
        assert_false(fd_is_open(fds[0]));
        assert_false(fd_is_open(fds[1]));
        assert_true(fd_is_open(behind[0]));
        /* only the queued message's fds are still in flight */
        assert_int_equal(b->n_inflight_fds, 2);
        assert_valid(bus);

        recv_data_fds(b, ID_N1, "behind", 2, &r);
        assert_valid(bus);
        peer_recv_deinit(&r);
        assert_int_equal(count_open_fds(), n_open);
}

/*
 * docs/model.md §4/§5: a multicast's receivers share the fds; one receiver dropping
 * them does not close them for the other
 */
static void test_fds_multicast_shared(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        int fds[2], behind[2];
        uint64_t dsts[2];
        unsigned int n_open;
        PeerRecv r;

        dsts[0] = test_transfer(b, ID_N1, a);
        dsts[1] = test_transfer(c, ID_N1, a);
        assert_valid(bus);
        n_open = count_open_fds();

        assert_int_equal(send_with_fds(a, 0, dsts, 2, "shared", NULL, 0, fds, 2), 0);
        assert_valid(bus);
        assert_int_equal(send_with_fds(a, 0, dsts, 1, "behind", NULL, 0, behind, 2), 0);
        assert_valid(bus);
        assert_int_equal(b->n_inflight_fds, 4);
        assert_int_equal(c->n_inflight_fds, 2);

        test_expect_data(b, ID_N1, "shared", 0, &r);
        assert_int_equal(r.n_fds, 0);
        assert_int_equal(b->n_inflight_fds, 2);
        assert_valid(bus);
        assert_true(fd_is_open(fds[0]));
        assert_true(fd_is_open(fds[1]));

        recv_data_fds(c, ID_N1, "shared", 2, &r);
        assert_valid(bus);
        assert_int_equal(r.fds->fds[0], fds[0]);
        assert_true(fd_is_open(fds[0]));
        peer_recv_deinit(&r);
        assert_false(fd_is_open(fds[0]));
        assert_false(fd_is_open(fds[1]));

        recv_data_fds(b, ID_N1, "behind", 2, &r);
        assert_valid(bus);
        peer_recv_deinit(&r);
        assert_int_equal(count_open_fds(), n_open);
}

/* docs/model.md §6: fds of messages still queued on a peer that disconnects are closed */
static void test_fds_dropped_on_disconnect(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        unsigned int n_open;
        uint64_t to_b;
        int fds[3];

        to_b = test_transfer(b, ID_N1, a);
        assert_valid(bus);
        n_open = count_open_fds();

        assert_int_equal(send_with_fds(a, 0, &to_b, 1, "lost", NULL, 0, fds, 3), 0);
        assert_valid(bus);
        assert_true(fd_is_open(fds[2]));
        assert_int_equal(peer_disconnect(b), 0);
        assert_valid(bus);
        assert_int_equal(count_open_fds(), n_open);
}

/* --- security context ----------------------------------------------------- */

static const char label[] = "system_u:system_r:bus1_test_t:s0";

/*
 * docs/model.md §5: a receiver with WANT_SECCTX gets HAS_SECCTX, n_secctx and the
 * bytes after the fd area; one without gets none of it (and no room for it)
 */
static void test_secctx_with_want_flag(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1], *c = t->peers[2];
        uint64_t handles[1] = { ID_NEW }, dsts[2];
        PeerRecv r;

        dsts[0] = test_transfer(b, ID_N1, a);
        dsts[1] = test_transfer(c, ID_N1, a);
        set_secctx(a, label);
        want_secctx(bus, b);

        assert_int_equal(test_send(a, 0, dsts, 2, NULL, "abcde", 5, handles, 1, NULL), 0);
        assert_valid(bus);
        /* ALIGN8(5) + 8 + ALIGN8(sizeof(label)) */
        assert_int_equal(b->pool.busy_bytes, 8 + 8 + align8(sizeof(label)));
        assert_int_equal(c->pool.busy_bytes, 8 + 8);

        test_expect_data(b, ID_N1, "abcde", 1, &r);
        assert_valid(bus);
        assert_int_equal(r.flags, BUS1_MSG_FLAG_HAS_SECCTX);
        assert_int_equal(r.n_secctx, sizeof(label));
        assert_int_equal(r.n_fds, 0);
        assert_memory_equal(test_slice(b, r.offset + 8 + 8), label, sizeof(label));

        test_expect_data(c, ID_N1, "abcde", 1, &r);
        assert_valid(bus);
        assert_int_equal(r.flags, 0);
        assert_int_equal(r.n_secctx, 0);
}

/* docs/model.md §5: the security context follows the fd area of installed fds */
static void test_secctx_after_fd_area(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t handles[1] = { ID_NEW };
        uint64_t to_b;
        int fds[3];
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        set_secctx(a, label);
        want_secctx(bus, b);

        assert_int_equal(send_with_fds(a, 0, &to_b, 1, "abc", handles, 1, fds, 3), 0);
        assert_valid(bus);
        recv_data_fds(b, ID_N1, "abc", 3, &r);
        assert_valid(bus);
        assert_int_equal(r.flags, BUS1_MSG_FLAG_HAS_SECCTX);
        assert_int_equal(r.n_secctx, sizeof(label));
        /* ALIGN8(3) + ALIGN8(8 * 1) + ALIGN8(4 * 3) */
        assert_memory_equal(test_slice(b, r.offset + 8 + 8 + 16), label, sizeof(label));
        peer_recv_deinit(&r);
        assert_valid(bus);
}

/*
 * docs/model.md §5: without INSTALL_FDS the RECV reports n_fds = 0 and no fd area is
 * written, so the security context must be where the layout puts it for the
 * reported counts: right after the handle IDs
 */
static void test_secctx_without_installed_fds(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t handles[1] = { ID_NEW };
        int fds[3], behind[3];
        uint64_t to_b, at;
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        set_secctx(a, label);
        want_secctx(bus, b);

        assert_int_equal(send_with_fds(a, 0, &to_b, 1, "abc", handles, 1, fds, 3), 0);
        assert_valid(bus);
        assert_int_equal(send_with_fds(a, 0, &to_b, 1, "behind", NULL, 0, behind, 3), 0);
        assert_valid(bus);

        test_expect_data(b, ID_N1, "abc", 1, &r);
        assert_int_equal(r.flags, BUS1_MSG_FLAG_HAS_SECCTX);
        assert_int_equal(r.n_fds, 0);
        assert_int_equal(r.n_secctx, sizeof(label));
        at = r.offset + align8(r.n_bytes) + align8(8 * r.n_handles) + align8(4 * r.n_fds);
        assert_memory_equal(test_slice(b, at), label, sizeof(label));
        assert_valid(bus);

        recv_data_fds(b, ID_N1, "behind", 3, &r);
        assert_valid(bus);
        peer_recv_deinit(&r);
}

/*
 * docs/model.md §5: the security context is where the answer's own counts put it, so
 * a PEEK without INSTALL_FDS followed by an installing RECV (and the other
 * way round) finds it each time
 */
static void test_secctx_follows_reported_fds(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        int fds[3], more[3];
        uint64_t to_b;
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        set_secctx(a, label);
        want_secctx(bus, b);

        assert_int_equal(send_with_fds(a, 0, &to_b, 1, "abc", NULL, 0, fds, 3), 0);
        assert_valid(bus);
        assert_int_equal(send_with_fds(a, 0, &to_b, 1, "def", NULL, 0, more, 3), 0);
        assert_valid(bus);

        /* peek with, receive without INSTALL_FDS: 8 + 16, then 8 + 0 */
        memset(&r, 0, sizeof(r));
        assert_int_equal(peer_recv(b, BUS1_RECV_FLAG_PEEK | BUS1_RECV_FLAG_INSTALL_FDS,
                                   UINT64_MAX, &r),
                         0);
        assert_valid(bus);
        assert_null(r.fds);
        assert_memory_equal(test_slice(b, r.offset + 8 + 16), label, sizeof(label));
        test_expect_data(b, ID_N1, "abc", 0, &r);
        assert_valid(bus);
        assert_int_equal(r.n_fds, 0);
        assert_int_equal(r.flags, BUS1_MSG_FLAG_HAS_SECCTX);
        assert_memory_equal(test_slice(b, r.offset + 8), label, sizeof(label));
        assert_false(fd_is_open(fds[0]));

        /* peek without, receive with: 8 + 0, then 8 + 16 */
        assert_int_equal(test_recv(b, BUS1_RECV_FLAG_PEEK, &r), 0);
        assert_valid(bus);
        assert_int_equal(r.n_fds, 0);
        assert_memory_equal(test_slice(b, r.offset + 8), label, sizeof(label));
        recv_data_fds(b, ID_N1, "def", 3, &r);
        assert_valid(bus);
        assert_int_equal(r.flags, BUS1_MSG_FLAG_HAS_SECCTX);
        assert_memory_equal(test_slice(b, r.offset + 8 + 16), label, sizeof(label));
        peer_recv_deinit(&r);
        assert_false(fd_is_open(more[0]));
        assert_valid(bus);
}

/* docs/model.md §5: a sender without a security context sets no HAS_SECCTX */
static void test_secctx_sender_without_context(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t to_b;
        PeerRecv r;

        to_b = test_transfer(b, ID_N1, a);
        want_secctx(bus, b);

        assert_int_equal(test_send1(a, to_b, "plain"), 0);
        assert_valid(bus);
        assert_int_equal(b->pool.busy_bytes, 8);
        test_expect_data(b, ID_N1, "plain", 0, &r);
        assert_valid(bus);
        assert_int_equal(r.flags, 0);
        assert_int_equal(r.n_secctx, 0);
}

/* --- the sender's state ---------------------------------------------------- */

/* docs/model.md §6: a disconnected sender gets ESHUTDOWN, whatever it sends */
static void test_disconnected_sender_eshutdown(void **state) {
        TestBus *t = *state;
        Bus *bus = &t->bus;
        Peer *a = t->peers[0], *b = t->peers[1];
        uint64_t handles[1] = { ID_NEW };
        uint64_t to_b;

        to_b = test_transfer(b, ID_N1, a);
        assert_int_equal(peer_disconnect(a), 0);
        assert_valid(bus);

        assert_int_equal(test_send1(a, to_b, "late"), -ESHUTDOWN);
        assert_valid(bus);
        assert_int_equal(test_send(a, 0, NULL, 0, NULL, NULL, 0, handles, 1, NULL), -ESHUTDOWN);
        assert_valid(bus);
        assert_int_equal(test_send(a, BUS1_SEND_FLAG_SEED, NULL, 0, NULL, "s", 1, NULL, 0,
                                   NULL),
                         -ESHUTDOWN);
        assert_valid(bus);
        assert_int_equal(a->n_nodes, 0);
        /* B only learns that A's handle is gone */
        test_expect_notification(b, BUS1_MSG_NODE_RELEASE, ID_N1, 0);
        assert_valid(bus);
        test_expect_empty(b);
}

/* the drain hook's calls, by peer: which peers a send asked to drain */
static Peer *drain_counted[64];
static unsigned int drain_counts[64];

static void drain_count(Bus *bus, Peer *peer) {
        for (size_t i = 0; i < 64; ++i)
                if (drain_counted[i] == peer)
                        ++drain_counts[i];
}

/*
 * A multicast refused by every destination drains the peers of the
 * refusing user (their releases may make room), each once, and never
 * the unrelated peers of the bus: a send costs what it touches, not what
 * the bus holds.
 */
static void test_refusals_drain_the_user_once(void **state) {
        Peer *peers[64] = {}, *s, *r;
        uint64_t dsts[8], errors[8];
        Bus bus;

        bus_init(&bus);
        bus.drain = drain_count;
        s = peers[0] = test_peer_new(&bus, 1);
        r = peers[1] = test_peer_new(&bus, 2);
        for (size_t i = 0; i < 8; ++i)
                dsts[i] = test_transfer(r, (0x100 + i) << 3, s);
        set_limits(&bus, r, 0, PEER_LIMIT_KEEP, PEER_LIMIT_KEEP, PEER_LIMIT_KEEP);
        /* three siblings of the refusing user, and forty bystanders */
        for (size_t i = 2; i < 5; ++i)
                peers[i] = test_peer_new(&bus, 2);
        for (size_t i = 5; i < 45; ++i)
                peers[i] = test_peer_new(&bus, 3);
        memcpy(drain_counted, peers, sizeof(peers));
        memset(drain_counts, 0, sizeof(drain_counts));

        assert_int_equal(test_send(s, BUS1_SEND_FLAG_CONTINUE, dsts, 8, errors, "x", 1, NULL, 0,
                                   NULL), 0);
        assert_valid(&bus);
        for (size_t i = 0; i < 8; ++i)
                assert_int_equal(errors[i], EDQUOT);
        for (size_t i = 1; i < 5; ++i)
                assert_int_equal(drain_counts[i], 1);
        for (size_t i = 5; i < 45; ++i)
                assert_int_equal(drain_counts[i], 0);

        free_peers(&bus, peers, 45);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_unicast_payload_and_metadata),
                test_bus_unit_test_checked(test_unicast_iovecs_concatenated, 2),
                test_bus_unit_test_checked(test_slice_layout_handles, 3),
                test_bus_unit_test_checked(test_empty_message_takes_slice, 2),
                test_bus_unit_test_checked(test_new_id_destination_creates_node, 1),
                cmocka_unit_test(test_multicast_atomic_destroyed),
                cmocka_unit_test(test_multicast_atomic_disconnected),
                cmocka_unit_test(test_multicast_atomic_quota),
                cmocka_unit_test(test_multicast_atomic_full),
                cmocka_unit_test(test_multicast_first_error),
                cmocka_unit_test(test_continue_destroyed),
                cmocka_unit_test(test_continue_disconnected),
                cmocka_unit_test(test_continue_quota),
                cmocka_unit_test(test_continue_full),
                cmocka_unit_test(test_continue_without_errors_array),
                cmocka_unit_test(test_errors_array_all_delivered),
                cmocka_unit_test_setup_teardown(test_continue_einval_fails_call, sender_err_setup,
                                                sender_err_teardown),
                cmocka_unit_test_setup_teardown(test_continue_enxio_fails_call, sender_err_setup,
                                                sender_err_teardown),
                cmocka_unit_test_setup_teardown(test_continue_emsgsize_fails_call, sender_err_setup,
                                                sender_err_teardown),
                cmocka_unit_test_setup_teardown(test_continue_enotuniq_fails_call, sender_err_setup,
                                                sender_err_teardown),
                test_bus_unit_test_checked(test_duplicate_destination_enotuniq, 3),
                test_bus_unit_test_checked(test_zero_destinations, 2),
                test_bus_unit_test_checked(test_seed_flag_einval, 2),
                test_bus_unit_test_checked(test_unknown_flags_einval, 2),
                cmocka_unit_test(test_too_many_destinations_einval),
                cmocka_unit_test(test_refusals_drain_the_user_once),
                test_bus_unit_test_checked(test_unknown_id_enxio, 3),
                test_bus_unit_test_checked(test_several_nodes_one_peer, 3),
                test_bus_unit_test_checked(test_too_many_iovecs_emsgsize, 2),
                test_bus_unit_test_checked(test_too_many_fds_emsgsize, 2),
                test_bus_unit_test_checked(test_payload_over_2gib_emsgsize, 2),
                cmocka_unit_test(test_slice_larger_than_pool_emsgsize),
                test_bus_unit_test_checked(test_limit_max_slices_edquot, 2),
                test_bus_unit_test_checked(test_limit_max_handles_edquot, 3),
                test_bus_unit_test_checked(test_limit_max_inflight_bytes_edquot, 2),
                test_bus_unit_test_checked(test_limit_max_inflight_fds_edquot, 2),
                cmocka_unit_test(test_exfull_pool_full),
                cmocka_unit_test(test_exfull_fragmented_pool),
                test_bus_unit_test_checked(test_fds_installed_with_flag, 2),
                test_bus_unit_test_checked(test_fds_closed_without_flag, 2),
                test_bus_unit_test_checked(test_fds_multicast_shared, 3),
                test_bus_unit_test_checked(test_fds_dropped_on_disconnect, 2),
                test_bus_unit_test_checked(test_secctx_with_want_flag, 3),
                test_bus_unit_test_checked(test_secctx_after_fd_area, 2),
                test_bus_unit_test_checked(test_secctx_without_installed_fds, 2),
                test_bus_unit_test_checked(test_secctx_follows_reported_fds, 2),
                test_bus_unit_test_checked(test_secctx_sender_without_context, 2),
                test_bus_unit_test_checked(test_disconnected_sender_eshutdown, 2),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
