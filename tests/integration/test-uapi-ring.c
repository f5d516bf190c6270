/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The release ring end to end (docs/protocol.md section 8a)
 *
 * libbus1-client hands the releases of slices it received, and the ACKs of
 * its local dequeues, to the broker through a shared page instead of
 * records. These tests run the real bus1d and check that such a release is
 * exactly as effective as a SLICE_RELEASE the broker had answered, at every
 * point where it can be observed, and that a client which writes nonsense
 * there loses only its own connection:
 *  - placement: a slice released through the ring is reused by the very
 *    next message, at the lowest offset that fits (docs/model.md §5), 1,000
 *    times in a row, and best fit sees a hole the ring freed;
 *  - space: a pool filled to the peer's quota takes a message of exactly
 *    the released size once a slice was released through the ring, sent by
 *    another peer with no request of the receiver in between; and at the
 *    user level, a sibling's ring releases count before EDQUOT is decided;
 *  - ENXIO stays the broker's: a second release, an unknown or unaligned
 *    offset, a peeked one, one after PEER_RESET with FLUSH;
 *  - a full ring: 600 releases in a row, 256 at a time through the ring
 *    and one round trip each time it is full; all the space comes back; and
 *    a local dequeue whose ACK found the ring full still reaches the broker
 *    before the release of its slice (in the ring once there is room, or
 *    as an ACK record ahead of the SLICE_RELEASE request);
 *  - adoption: the old ring is drained when a child adopts the connection,
 *    the child's releases of the parent's slices take the round trip (0,
 *    then ENXIO), and the child's own ring works;
 *  - hostile rings, written by a client speaking the wire protocol by hand
 *    (as fuzz/fuzz-dispatch.c does) and by corrupting the library's own
 *    ring: a bad tag, an offset never received, a double release, ACK 0, a
 *    tail 1,000 ahead or behind, each noticed at the client's own request,
 *    at another peer's send to it, at an EDQUOT of a sibling, and at a
 *    bus1ctl report. Each time only that client's connection ends, the
 *    other peers go on, and the broker closes every descriptor;
 *  - bus1ctl's quota and peer reports include releases and dequeues still
 *    in a ring.
 *
 * Releases in the ring are proved to be there, not taken by a round trip:
 * the tests find each peer's ring in /proc/self/maps (the library maps the
 * memfd it got with the HELLO reply, "bus1-ring") and read its tail and
 * head: a release the library made without a request is in the ring and
 * not yet consumed (tail ahead of head) until the broker drains it.
 */

#include <endian.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "bus1/client.h"
#include "proto/proto.h"
#include "util-uapi.h"
#include "util/json.h"

#define RING_MAPS_MAX 64
#define RING_TIMEOUT_MS 5000
#define RING_COOKIE_RAW 0x7000000000000000ULL   /* far from the library's cookies */

/* ---- fixture --------------------------------------------------------------- */

/* uapi_setup() with extra broker arguments */
static int ring_setup_args(void **state, const char *const *args) {
        UapiFixture *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        for (size_t i = 0; i < UAPI_PEERS_MAX; ++i)
                f->peers[i] = -1;
        test_broker_start_args(&f->broker, args);
        f->running = true;
        f->n_fds = test_count_fds(0);
        *state = f;
        return 0;
}

/* pools of 64 KiB: a peer alone may hold 32 KiB (docs/model.md §8) */
static int ring_setup_small_pool(void **state) {
        return ring_setup_args(state, (const char *const[]){ "--max-inflight-bytes=64K", NULL });
}

/* 1300 slices per UID: a peer alone may hold 650 */
#define RING_SLICES 1300U

static int ring_setup_slices(void **state) {
        return ring_setup_args(state, (const char *const[]){ "--max-slices=1300", NULL });
}

/* ---- finding the library's rings ------------------------------------------ */

/*
 * The start addresses of the release rings mapped in this process, at most
 * RING_MAPS_MAX. Return: their number, or -1. (No cmocka: children use it.)
 */
static int ring_list_maps(uintptr_t *addrs) {
        char *line = NULL;
        size_t cap = 0;
        FILE *maps;
        int n = 0;

        maps = fopen("/proc/self/maps", "re");
        if (!maps)
                return -1;
        while (getline(&line, &cap, maps) > 0) {
                unsigned long start;

                if (!strstr(line, "bus1-ring") || sscanf(line, "%lx-", &start) != 1)
                        continue;
                if (n == RING_MAPS_MAX) {
                        n = -1;
                        break;
                }
                addrs[n++] = start;
        }
        free(line);
        fclose(maps);
        return n;
}

/* the one ring mapped since @before was listed, or NULL */
static uint8_t *ring_find_new(const uintptr_t *before, int n_before) {
        uintptr_t after[RING_MAPS_MAX], found = 0;
        int n_after = ring_list_maps(after), n_found = 0;

        for (int i = 0; i < n_after; ++i) {
                bool old = false;

                for (int j = 0; j < n_before; ++j)
                        old = old || after[i] == before[j];
                if (!old) {
                        found = after[i];
                        ++n_found;
                }
        }
        return n_found == 1 ? (uint8_t *)found : NULL;
}

static size_t ring_list(uintptr_t *addrs) {
        int n = ring_list_maps(addrs);

        assert_true(n >= 0);
        return (size_t)n;
}

static uint8_t *ring_new_since(const uintptr_t *before, size_t n_before) {
        uint8_t *ring = ring_find_new(before, (int)n_before);

        if (!ring)
                fail_msg("not exactly one new release ring is mapped");
        return ring;
}

/* uapi_peer(), and the release ring its client mapped */
static int ring_peer(UapiFixture *f, uint8_t **ringp) {
        uintptr_t before[RING_MAPS_MAX];
        size_t n = ring_list(before);
        int peer;

        peer = uapi_peer(f);
        *ringp = ring_new_since(before, n);
        return peer;
}

static uint64_t ring_word(const uint8_t *ring, size_t offset) {
        return le64toh(__atomic_load_n((const uint64_t *)(const void *)(ring + offset),
                                       __ATOMIC_ACQUIRE));
}

static void ring_set_word(uint8_t *ring, size_t offset, uint64_t v) {
        __atomic_store_n((uint64_t *)(void *)(ring + offset), htole64(v), __ATOMIC_RELEASE);
}

static uint64_t ring_tail(const uint8_t *ring) {
        return ring_word(ring, PROTO_RING_TAIL);
}

static uint64_t ring_head(const uint8_t *ring) {
        return ring_word(ring, PROTO_RING_HEAD);
}

/* value number @n */
static uint64_t ring_slot(const uint8_t *ring, uint64_t n) {
        return ring_word(ring, PROTO_RING_SLOTS + 8 * (n % PROTO_RING_N_SLOTS));
}

/* the last value appended is this release, and the broker has not consumed it */
static void ring_assert_pending_release(const uint8_t *ring, uint64_t offset) {
        uint64_t tail = ring_tail(ring), head = ring_head(ring);

        assert_true(tail > head);
        assert_true(tail - head <= PROTO_RING_N_SLOTS);
        assert_int_equal(ring_slot(ring, tail - 1), offset | PROTO_RING_RELEASE);
}

/* the broker consumed everything */
static void ring_assert_drained(const uint8_t *ring) {
        assert_int_equal(ring_head(ring), ring_tail(ring));
}

/* ---- short-hands ------------------------------------------------------------ */

static uint8_t ring_payload[64 * 1024];

/* a payload of @len bytes that depends on @tag */
static const void *ring_fill(size_t len, unsigned int tag) {
        assert_true(len <= sizeof(ring_payload));
        for (size_t i = 0; i < len; ++i)
                ring_payload[i] = (uint8_t)(tag * 31 + i * 7 + (i >> 8));
        return ring_payload;
}

static int ring_send(int from, uint64_t dst, size_t len, unsigned int tag) {
        return uapi_send(from, &dst, 1, 0, NULL, ring_fill(len, tag), len, NULL, 0);
}

/* receive a DATA entry of @len bytes sent with @tag; returns its offset */
static uint64_t ring_recv(UapiFixture *f, int peer, uint64_t destination, size_t len,
                          unsigned int tag) {
        struct bus1_cmd_recv r;

        assert_int_equal(uapi_recv(peer, 0, &r), 0);
        uapi_assert_data(&r, destination, len);
        assert_memory_equal(uapi_pool(f, peer) + r.msg.offset, ring_fill(len, tag), len);
        return r.msg.offset;
}

/* receive the next entry, waiting up to RING_TIMEOUT_MS for one to arrive */
static void ring_recv_wait(int peer, struct bus1_cmd_recv *rv) {
        for (int i = 0; i < RING_TIMEOUT_MS / 10; ++i) {
                int r = uapi_recv(peer, 0, rv);

                if (r != -EAGAIN) {
                        assert_int_equal(r, 0);
                        return;
                }
                (void)uapi_poll(peer, POLLIN, 10);
        }
        fail_msg("nothing arrived for peer %d", peer);
}

/* the next entry is NODE_DESTROY for @id: release it */
static void ring_expect_destroy(int peer, uint64_t id) {
        struct bus1_cmd_recv rv;

        ring_recv_wait(peer, &rv);
        uapi_assert_notification(&rv, BUS1_MSG_NODE_DESTROY, id);
        assert_int_equal(uapi_release(peer, id), 0);
}

/* ---- placement ----------------------------------------------------------- */

/*
 * Receive at offset 0, release through the ring, send again: the message
 * lands at 0 again, because the send drained the receiver's ring before
 * placing the slice. The receiver makes no request in between; 1,000 times
 * (the ring wraps many times: its head must come back for the client to
 * keep using it).
 */
static void test_placement_reuse(void **state) {
        UapiFixture *f = *state;
        uint64_t dst, tail0, n_ring;
        uint8_t *ring;
        int r, s;

        r = ring_peer(f, &ring);
        s = uapi_peer(f);
        dst = uapi_give(r, 0x100, s);
        tail0 = ring_tail(ring);

        for (unsigned int i = 0; i < 1000; ++i) {
                size_t len = 1 + (i * 37) % 300;

                assert_int_equal(ring_send(s, dst, len, i), 0);
                /* the send consumed the previous release */
                ring_assert_drained(ring);
                assert_int_equal(ring_recv(f, r, 0x100, len, i), 0);
                assert_int_equal(uapi_slice_release(r, 0), 0);
                ring_assert_pending_release(ring, 0);
        }
        /* one release per round at least, so they all went through the ring */
        n_ring = ring_tail(ring) - tail0;
        assert_true(n_ring >= 1000);
        assert_true(n_ring <= 2000);

        /* a request of the receiver drains its ring too */
        {
                struct bus1_cmd_peer_reset q;

                assert_int_equal(uapi_query(r, &q), 0);
                ring_assert_drained(ring);
        }
        uapi_finish(f);
}

/* best fit sees a hole the ring freed: the smallest that fits, else the lowest */
static void test_placement_best_fit(void **state) {
        UapiFixture *f = *state;
        uint64_t dst, off[4];
        uint8_t *ring;
        int r, s;

        r = ring_peer(f, &ring);
        s = uapi_peer(f);
        dst = uapi_give(r, 0x100, s);

        /* slices of 256, 64, 128 and 64 bytes at 0, 256, 320, 448 */
        assert_int_equal(ring_send(s, dst, 256, 0), 0);
        assert_int_equal(ring_send(s, dst, 64, 1), 0);
        assert_int_equal(ring_send(s, dst, 128, 2), 0);
        assert_int_equal(ring_send(s, dst, 64, 3), 0);
        off[0] = ring_recv(f, r, 0x100, 256, 0);
        off[1] = ring_recv(f, r, 0x100, 64, 1);
        off[2] = ring_recv(f, r, 0x100, 128, 2);
        off[3] = ring_recv(f, r, 0x100, 64, 3);
        assert_int_equal(off[0], 0);
        assert_int_equal(off[1], 256);
        assert_int_equal(off[2], 320);
        assert_int_equal(off[3], 448);

        /* holes of 256 at 0 and 128 at 320, through the ring */
        assert_int_equal(uapi_slice_release(r, off[0]), 0);
        assert_int_equal(uapi_slice_release(r, off[2]), 0);
        ring_assert_pending_release(ring, off[2]);
        assert_int_equal(ring_slot(ring, ring_tail(ring) - 2), off[0] | PROTO_RING_RELEASE);

        /* 100 bytes: the smallest hole that fits is the one at 320 */
        assert_int_equal(ring_send(s, dst, 100, 4), 0);
        ring_assert_drained(ring);
        assert_int_equal(ring_recv(f, r, 0x100, 100, 4), 320);
        /* 200 bytes: only the hole at 0 */
        assert_int_equal(ring_send(s, dst, 200, 5), 0);
        assert_int_equal(ring_recv(f, r, 0x100, 200, 5), 0);
        /* holes of 56 at 200 and 24 at 424: 8 bytes take the smaller, 40 the other */
        assert_int_equal(ring_send(s, dst, 8, 6), 0);
        assert_int_equal(ring_recv(f, r, 0x100, 8, 6), 424);
        assert_int_equal(ring_send(s, dst, 40, 7), 0);
        assert_int_equal(ring_recv(f, r, 0x100, 40, 7), 200);
        uapi_finish(f);
}

/* ---- space ------------------------------------------------------------------ */

#define RING_CHUNK 8192U

/*
 * The receiver fills its share of a 64 KiB pool (32 KiB, four slices of
 * 8 KiB) from one peer, releases one through the ring and makes no further
 * request: another peer's send of exactly 8 KiB fits, in the released
 * hole, and 8 more bytes do not.
 */
static void test_space_peer(void **state) {
        UapiFixture *f = *state;
        uint64_t dst1, dst2, off[4];
        uint8_t *ring;
        int r, s1, s2;

        r = ring_peer(f, &ring);
        s1 = uapi_peer(f);
        s2 = uapi_peer(f);
        dst1 = uapi_give(r, 0x100, s1);
        dst2 = uapi_give(r, 0x100, s2);

        for (unsigned int i = 0; i < 4; ++i)
                assert_int_equal(ring_send(s1, dst1, RING_CHUNK, i), 0);
        assert_int_equal(ring_send(s1, dst1, RING_CHUNK, 4), -EDQUOT);
        assert_int_equal(ring_send(s2, dst2, 8, 4), -EDQUOT);
        for (unsigned int i = 0; i < 4; ++i) {
                off[i] = ring_recv(f, r, 0x100, RING_CHUNK, i);
                assert_int_equal(off[i], i * RING_CHUNK);
        }
        /* received, not released: still full */
        assert_int_equal(ring_send(s2, dst2, 8, 4), -EDQUOT);

        assert_int_equal(uapi_slice_release(r, off[1]), 0);
        ring_assert_pending_release(ring, off[1]);

        assert_int_equal(ring_send(s2, dst2, RING_CHUNK, 5), 0);
        ring_assert_drained(ring);
        assert_int_equal(ring_send(s2, dst2, 8, 6), -EDQUOT);
        assert_int_equal(ring_send(s1, dst1, 8, 6), -EDQUOT);
        /* best fit: the released hole, not the free half after the slices */
        assert_int_equal(ring_recv(f, r, 0x100, RING_CHUNK, 5), off[1]);
        uapi_finish(f);
}

/*
 * Two peers of one UID: A holds the 32 KiB a lone peer may, so B may take
 * at most 16 KiB ((64 - 32) / 2). A releases two 8 KiB slices through the
 * ring and makes no request: a 24 KiB send to B, which fits only if both
 * releases count, succeeds. Only the EDQUOT path drains A here (the send
 * is to B), so this is the drain of every peer of the receiving user.
 */
static void test_space_user(void **state) {
        UapiFixture *f = *state;
        uint64_t dst_a, dst_b, off[4], tail;
        uint8_t *ring_a, *ring_b;
        int a, b, s;

        a = ring_peer(f, &ring_a);
        b = ring_peer(f, &ring_b);
        s = uapi_peer(f);
        dst_a = uapi_give(a, 0x100, s);
        dst_b = uapi_give(b, 0x100, s);

        for (unsigned int i = 0; i < 4; ++i)
                assert_int_equal(ring_send(s, dst_a, RING_CHUNK, i), 0);
        assert_int_equal(ring_send(s, dst_a, 8, 9), -EDQUOT);
        for (unsigned int i = 0; i < 4; ++i)
                off[i] = ring_recv(f, a, 0x100, RING_CHUNK, i);
        assert_int_equal(ring_send(s, dst_b, 2 * RING_CHUNK + 8, 9), -EDQUOT);

        assert_int_equal(uapi_slice_release(a, off[0]), 0);
        assert_int_equal(uapi_slice_release(a, off[2]), 0);
        ring_assert_pending_release(ring_a, off[2]);
        tail = ring_tail(ring_a);
        assert_int_equal(ring_slot(ring_a, tail - 2), off[0] | PROTO_RING_RELEASE);

        assert_int_equal(ring_send(s, dst_b, 3 * RING_CHUNK, 10), 0);
        ring_assert_drained(ring_a);
        assert_int_equal(ring_tail(ring_a), tail);

        /* exactly: with A at 16 KiB and B empty again, B may hold 24 KiB, not 8 more */
        assert_int_equal(ring_recv(f, b, 0x100, 3 * RING_CHUNK, 10), 0);
        assert_int_equal(uapi_slice_release(b, 0), 0);
        ring_assert_pending_release(ring_b, 0);
        assert_int_equal(ring_send(s, dst_b, 3 * RING_CHUNK + 8, 11), -EDQUOT);
        ring_assert_drained(ring_b);
        assert_int_equal(ring_send(s, dst_b, 3 * RING_CHUNK, 12), 0);
        /* and A, holding 16 KiB with B at 24 KiB: (16 + c) * 2 - 16 <= 64 - 40, c <= 4 KiB */
        assert_int_equal(ring_send(s, dst_a, 4096 + 8, 13), -EDQUOT);
        assert_int_equal(ring_send(s, dst_a, 4096, 14), 0);
        uapi_finish(f);
}

/* ---- ENXIO is the broker's ------------------------------------------------------ */

static void test_double_release(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q;
        struct bus1_cmd_recv rv;
        uint64_t dst, x_a, x_b, x_c, x_d;
        uint8_t *ring;
        int r, s;

        r = ring_peer(f, &ring);
        s = uapi_peer(f);
        dst = uapi_give(r, 0x100, s);
        for (unsigned int i = 0; i < 4; ++i)
                assert_int_equal(ring_send(s, dst, 16, i), 0);

        /* the second release of an offset goes to the broker, which drained the first */
        x_a = ring_recv(f, r, 0x100, 16, 0);
        assert_int_equal(uapi_slice_release(r, x_a), 0);
        ring_assert_pending_release(ring, x_a);
        assert_int_equal(uapi_slice_release(r, x_a), -ENXIO);
        ring_assert_drained(ring);
        assert_int_equal(uapi_slice_release(r, x_a), -ENXIO);

        /* offsets never received, unaligned or invalid */
        assert_int_equal(uapi_slice_release(r, 4096), -ENXIO);
        assert_int_equal(uapi_slice_release(r, 8 * 1000), -ENXIO);
        assert_int_equal(uapi_slice_release(r, 3), -ENXIO);
        assert_int_equal(uapi_slice_release(r, 9), -ENXIO);
        assert_int_equal(uapi_slice_release(r, BUS1_OFFSET_INVALID), -ENXIO);
        assert_int_equal(uapi_slice_release(r, UINT64_MAX - 7), -ENXIO);
        ring_assert_drained(ring);

        /*
         * peeked is not received: one release succeeds and changes nothing
         * (the kernel's PEEK published the slice), a second is ENXIO, and
         * the real one works after the RECV
         */
        assert_int_equal(uapi_recv(r, BUS1_RECV_FLAG_PEEK, &rv), 0);
        x_b = rv.msg.offset;
        assert_int_equal(uapi_slice_release(r, x_b), 0);
        assert_int_equal(uapi_slice_release(r, x_b), -ENXIO);
        assert_int_equal(ring_recv(f, r, 0x100, 16, 1), x_b);
        assert_int_equal(uapi_slice_release(r, x_b), 0);
        ring_assert_pending_release(ring, x_b);
        assert_int_equal(uapi_slice_release(r, x_b), -ENXIO);

        /* a flush drops received slices: both one released in the ring and one not */
        x_c = ring_recv(f, r, 0x100, 16, 2);
        x_d = ring_recv(f, r, 0x100, 16, 3);
        assert_int_equal(uapi_slice_release(r, x_d), 0);
        ring_assert_pending_release(ring, x_d);
        assert_int_equal(uapi_reset(r, BUS1_PEER_RESET_FLAG_FLUSH, UAPI_KEEP64, UAPI_KEEP32,
                                    UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32), 0);
        ring_assert_drained(ring);
        assert_int_equal(uapi_slice_release(r, x_c), -ENXIO);
        assert_int_equal(uapi_slice_release(r, x_d), -ENXIO);

        /* the connection is fine and the pool empty: the next message is at 0 */
        assert_int_equal(uapi_query(r, &q), 0);
        dst = uapi_give(r, 0x100, s);
        assert_int_equal(ring_send(s, dst, 24, 4), 0);
        assert_int_equal(ring_recv(f, r, 0x100, 24, 4), 0);
        assert_int_equal(uapi_slice_release(r, 0), 0);
        ring_assert_pending_release(ring, 0);

        /* after PEER_DISCONNECT a release is ESHUTDOWN, in the ring or not */
        assert_int_equal(ring_send(s, dst, 24, 5), 0);
        x_a = ring_recv(f, r, 0x100, 24, 5);
        assert_int_equal(bus1_uapi_ioctl(r, BUS1_CMD_PEER_DISCONNECT, NULL), 0);
        assert_int_equal(uapi_slice_release(r, x_a), -ESHUTDOWN);
        assert_int_equal(uapi_slice_release(r, 4096), -ESHUTDOWN);
        uapi_finish(f);
}

/* ---- a full ring -------------------------------------------------------------- */

#define RING_N_FULL 600U

/*
 * 600 releases without another request: the first 256 fill the ring, the
 * 257th finds it full and takes the round trip, before which the broker
 * drains all 256; the next 256 go through the ring again, and so on. Then
 * all the space is back: the peer can hold its full share (650 slices) of
 * 8-byte messages again, placed from offset 0 up without a gap.
 */
static void test_ring_full(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q;
        uint64_t dst, tail0, off[RING_N_FULL];
        unsigned int n;
        uint8_t *ring;
        int r, s;

        r = ring_peer(f, &ring);
        s = uapi_peer(f);
        dst = uapi_give(r, 0x100, s);

        for (unsigned int i = 0; i < RING_N_FULL; ++i)
                assert_int_equal(ring_send(s, dst, 8, i), 0);
        for (unsigned int i = 0; i < RING_N_FULL; ++i) {
                off[i] = ring_recv(f, r, 0x100, 8, i);
                assert_int_equal(off[i], 8 * i);
        }
        /* every ACK reaches the broker, and the ring is empty */
        assert_int_equal(uapi_query(r, &q), 0);
        ring_assert_drained(ring);

        tail0 = ring_tail(ring);
        for (unsigned int i = 0; i < RING_N_FULL; ++i) {
                /* release in a scattered order: holes merge in every pattern */
                unsigned int k = (i * 7) % RING_N_FULL;

                assert_int_equal(uapi_slice_release(r, off[k]), 0);
                assert_true(ring_tail(ring) - ring_head(ring) <= PROTO_RING_N_SLOTS);
        }
        /* two round trips, at the 257th and the 514th release */
        assert_int_equal(ring_tail(ring) - tail0, RING_N_FULL - 2);
        assert_int_equal(ring_tail(ring) - ring_head(ring), RING_N_FULL - 2 - 512);
        /* every release happened once: the broker knows none of them */
        for (unsigned int i = 0; i < RING_N_FULL; i += 37)
                assert_int_equal(uapi_slice_release(r, off[i]), -ENXIO);
        ring_assert_drained(ring);

        /* all back: the full share, from 0 up, then EDQUOT */
        for (n = 0; n < RING_SLICES; ++n) {
                int res = ring_send(s, dst, 8, 1000 + n);

                if (res == -EDQUOT)
                        break;
                assert_int_equal(res, 0);
        }
        assert_int_equal(n, RING_SLICES / 2);
        for (unsigned int i = 0; i < n; ++i)
                assert_int_equal(ring_recv(f, r, 0x100, 8, 1000 + i), 8 * i);
        uapi_expect_empty(r);
        uapi_finish(f);
}

/*
 * A local dequeue while the ring is full of releases: its ACK cannot go
 * into the ring. A release of that slice must still reach the broker after
 * the ACK: through the ring once the broker drained it (ACK, then the
 * release), or with the round trip while it is still full (the ACK record,
 * then SLICE_RELEASE).
 */
static void test_ring_full_ack(void **state) {
        UapiFixture *f = *state;
        uint64_t dst, off[PROTO_RING_N_SLOTS], tail, m;
        struct bus1_cmd_peer_reset q;
        unsigned int tag = 0;
        uint8_t *ring;
        int r, s;

        r = ring_peer(f, &ring);
        s = uapi_peer(f);
        dst = uapi_give(r, 0x100, s);

        for (unsigned int round = 0; round < 2; ++round) {
                /* 256 received slices, and the ring empty */
                for (unsigned int i = 0; i < PROTO_RING_N_SLOTS; ++i)
                        assert_int_equal(ring_send(s, dst, 8, tag + i), 0);
                for (unsigned int i = 0; i < PROTO_RING_N_SLOTS; ++i)
                        off[i] = ring_recv(f, r, 0x100, 8, tag + i);
                tag += PROTO_RING_N_SLOTS;
                assert_int_equal(uapi_query(r, &q), 0);
                ring_assert_drained(ring);

                /* one more is pushed; then the ring fills with releases */
                assert_int_equal(ring_send(s, dst, 16, tag), 0);
                assert_int_equal(uapi_poll(r, POLLIN, RING_TIMEOUT_MS) & POLLIN, POLLIN);
                for (unsigned int i = 0; i < PROTO_RING_N_SLOTS; ++i)
                        assert_int_equal(uapi_slice_release(r, off[i]), 0);
                assert_int_equal(ring_tail(ring) - ring_head(ring), PROTO_RING_N_SLOTS);

                /* received locally, from the socket: no room for its ACK */
                tail = ring_tail(ring);
                m = ring_recv(f, r, 0x100, 16, tag++);
                assert_int_equal(ring_tail(ring), tail);
                assert_int_equal(ring_head(ring) + PROTO_RING_N_SLOTS, tail);

                if (round == 0) {
                        /* another peer's send drains the ring: ACK and release fit now */
                        assert_int_equal(ring_send(s, dst, 8, tag), 0);
                        ring_assert_drained(ring);
                        assert_int_equal(uapi_slice_release(r, m), 0);
                        assert_int_equal(ring_tail(ring), tail + 2);
                        assert_int_equal(ring_slot(ring, tail) & PROTO_RING_TAG_MASK,
                                         PROTO_RING_ACK);
                        ring_assert_pending_release(ring, m);
                        assert_int_equal(uapi_slice_release(r, ring_recv(f, r, 0x100, 8, tag++)),
                                         0);
                } else {
                        /* still full: the ACK record, then the SLICE_RELEASE request */
                        assert_int_equal(uapi_slice_release(r, m), 0);
                        assert_int_equal(ring_tail(ring), tail);
                        ring_assert_drained(ring);
                }
                assert_int_equal(uapi_slice_release(r, m), -ENXIO);
                assert_int_equal(uapi_query(r, &q), 0);
                ring_assert_drained(ring);
        }
        /* nothing left: the next slice is at 0 */
        assert_int_equal(ring_send(s, dst, 8, tag), 0);
        assert_int_equal(ring_recv(f, r, 0x100, 8, tag), 0);
        uapi_finish(f);
}

/* ---- a client on the wire protocol ----------------------------------------------- */

/*
 * These helpers never call cmocka: forked children use them too. They
 * return 0 or a negative errno.
 */

static uint8_t raw_buf[PROTO_RECORD_MAX + 64];

static int raw_write(int fd, const void *buf, size_t len, const int *fds, size_t n_fds) {
        union {
                struct cmsghdr cmsg;
                uint8_t buf[CMSG_SPACE(sizeof(int) * 4)];
        } control = {};
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (n_fds > 4)
                return -EINVAL;
        if (n_fds) {
                msg.msg_control = &control;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                control.cmsg.cmsg_level = SOL_SOCKET;
                control.cmsg.cmsg_type = SCM_RIGHTS;
                control.cmsg.cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(&control.cmsg), fds, sizeof(int) * n_fds);
        }
        if (sendmsg(fd, &msg, MSG_NOSIGNAL) < 0)
                return -errno;
        return 0;
}

/*
 * Read one packet into raw_buf, waiting up to RING_TIMEOUT_MS. Return: its
 * length, 0 at EOF, or a negative errno (-ETIMEDOUT). Fds that came with it
 * go to @fds (up to 4, the rest closed), their number to @n_fdsp.
 */
static ssize_t raw_read(int fd, int *fds, size_t *n_fdsp) {
        union {
                struct cmsghdr cmsg;
                uint8_t buf[CMSG_SPACE(sizeof(int) * 256)];
        } control;
        struct iovec iov = { .iov_base = raw_buf, .iov_len = sizeof(raw_buf) };
        struct msghdr msg = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        struct pollfd p = { .fd = fd, .events = POLLIN };
        size_t n = 0;
        ssize_t l;
        int r;

        do {
                r = poll(&p, 1, RING_TIMEOUT_MS);
        } while (r < 0 && errno == EINTR);
        if (r < 0)
                return -errno;
        if (r == 0)
                return -ETIMEDOUT;
        l = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
        if (l < 0)
                return -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                int *in = (int *)(void *)CMSG_DATA(c);

                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                for (size_t i = 0; i < k; ++i) {
                        if (fds && n < 4)
                                fds[n++] = in[i];
                        else
                                close(in[i]);
                }
        }
        if (n_fdsp)
                *n_fdsp = n;
        return l;
}

/* what a raw client saw pushed */
typedef struct RawEntries {
        uint64_t ids[16];
        uint64_t offsets[16];
        size_t n;
} RawEntries;

/*
 * Write a request and read until its REPLY, which stays in raw_buf; ENTRY
 * records on the way go to @entries (may be NULL). Return: the REPLY's
 * length, or a negative errno (-EPIPE at EOF).
 */
static ssize_t raw_call(int fd, uint64_t cookie, const void *req, size_t len, const int *fds,
                        size_t n_fds, RawEntries *entries, int *rfds, size_t *n_rfdsp) {
        ProtoHeader hdr;
        ssize_t l;
        int r;

        r = raw_write(fd, req, len, fds, n_fds);
        if (r < 0)
                return r;
        for (;;) {
                size_t n_rfds = 0;
                int got[4];

                l = raw_read(fd, got, &n_rfds);
                if (l == 0)
                        return -EPIPE;
                if (l < 0)
                        return l;
                if (proto_decode_header(&hdr, raw_buf, (size_t)l) < 0)
                        return -EBADMSG;
                if (hdr.type == PROTO_TYPE_REPLY && hdr.cookie == cookie) {
                        for (size_t i = 0; i < n_rfds; ++i) {
                                if (rfds && i < 2)
                                        rfds[i] = got[i];
                                else
                                        close(got[i]);
                        }
                        if (n_rfdsp)
                                *n_rfdsp = n_rfds < 2 ? n_rfds : 2;
                        return l;
                }
                for (size_t i = 0; i < n_rfds; ++i)
                        close(got[i]);
                if (hdr.type == PROTO_TYPE_ENTRY && entries && entries->n < 16) {
                        ProtoEntry e;

                        if (proto_decode_entry(&e, raw_buf, (size_t)l, 0) == 0) {
                                entries->ids[entries->n] = e.entry_id;
                                entries->offsets[entries->n] = e.msg.offset;
                                ++entries->n;
                        }
                }
        }
}

/* the errno a plain REPLY carries, or a negative errno of the call */
static int raw_call_simple(int fd, uint64_t cookie, const void *req, int len,
                           const int *fds, size_t n_fds, RawEntries *entries) {
        ProtoReply reply;
        ssize_t l;

        if (len < 0)
                return len;
        l = raw_call(fd, cookie, req, (size_t)len, fds, n_fds, entries, NULL, NULL);
        if (l < 0)
                return (int)l;
        if (proto_decode_reply(&reply, raw_buf, (size_t)l, 0) < 0)
                return -EBADMSG;
        return (int)reply.error;
}

static int raw_slice_release(int fd, uint64_t cookie, uint64_t offset) {
        uint8_t req[PROTO_SIZE_SLICE_RELEASE];
        ProtoSliceRelease rel = { .cookie = cookie, .offset = offset };

        return raw_call_simple(fd, cookie, req,
                               proto_encode_slice_release(req, sizeof(req), &rel), NULL, 0, NULL);
}

static int raw_query(int fd, uint64_t cookie, RawEntries *entries) {
        uint8_t req[PROTO_SIZE_PEER_QUERY];
        ProtoPeerQuery q = { .cookie = cookie };
        ProtoReplyPeerQuery reply;
        int len;
        ssize_t l;

        len = proto_encode_peer_query(req, sizeof(req), &q);
        if (len < 0)
                return len;
        l = raw_call(fd, cookie, req, (size_t)len, NULL, 0, entries, NULL, NULL);
        if (l < 0)
                return (int)l;
        if (proto_decode_reply_peer_query(&reply, raw_buf, (size_t)l, 0) < 0)
                return -EBADMSG;
        return (int)reply.error;
}

/* HELLO on @fd: the pool fd and the mapped ring */
static int raw_hello(int fd, uint64_t cookie, int *pool_fdp, uint8_t **ringp,
                     RawEntries *entries) {
        uint8_t req[PROTO_SIZE_HELLO];
        ProtoHello hello = { .cookie = cookie, .version_min = 1, .version_max = 1 };
        ProtoReplyHello reply;
        int len, fds[2] = { -1, -1 };
        size_t n_fds = 0;
        ssize_t l;
        void *p;

        len = proto_encode_hello(req, sizeof(req), &hello);
        if (len < 0)
                return len;
        l = raw_call(fd, cookie, req, (size_t)len, NULL, 0, entries, fds, &n_fds);
        if (l < 0)
                return (int)l;
        if (proto_decode_reply_hello(&reply, raw_buf, (size_t)l, n_fds) < 0 || reply.error ||
            n_fds != 2) {
                for (size_t i = 0; i < n_fds; ++i)
                        close(fds[i]);
                return reply.error ? -(int)reply.error : -EBADMSG;
        }
        p = mmap(NULL, PROTO_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
        close(fds[1]);
        if (p == MAP_FAILED) {
                close(fds[0]);
                return -ENOMEM;
        }
        *pool_fdp = fds[0];
        *ringp = p;
        return 0;
}

/* a raw client of the test's broker */
typedef struct RawClient {
        int fd;
        int pool_fd;
        uint8_t *ring;
        uint64_t cookie;
        uint64_t tail;
        RawEntries entries;
} RawClient;

static void raw_connect(UapiFixture *f, RawClient *c) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        *c = (RawClient){ .fd = -1, .pool_fd = -1, .cookie = RING_COOKIE_RAW };
        assert_true(strlen(f->broker.path) < sizeof(sa.sun_path));
        memcpy(sa.sun_path, f->broker.path, strlen(f->broker.path) + 1);
        c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        assert_true(c->fd >= 0);
        assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(raw_hello(c->fd, ++c->cookie, &c->pool_fd, &c->ring, &c->entries), 0);
        assert_int_equal(ring_tail(c->ring), 0);
        assert_int_equal(ring_head(c->ring), 0);
}

static void raw_close(RawClient *c) {
        if (c->ring)
                munmap(c->ring, PROTO_RING_SIZE);
        if (c->pool_fd >= 0)
                close(c->pool_fd);
        if (c->fd >= 0)
                close(c->fd);
        *c = (RawClient){ .fd = -1, .pool_fd = -1 };
}

/* append a value the way the library does: the slot, then the tail */
static void raw_ring_push(RawClient *c, uint64_t value) {
        ring_set_word(c->ring, PROTO_RING_SLOTS + 8 * (c->tail % PROTO_RING_N_SLOTS), value);
        ++c->tail;
        ring_set_word(c->ring, PROTO_RING_TAIL, c->tail);
}

/* node @id of @c, and a handle to it for the UAPI peer @to; returns its ID there */
static uint64_t raw_give(RawClient *c, uint64_t id, int to) {
        uint8_t req[PROTO_SIZE_HANDLE_TRANSFER];
        ProtoHandleTransfer t = {
                .cookie = ++c->cookie,
                .src_handle = id,
                .dst_mode = PROTO_DST_FD,
        };
        ProtoReplyHandleTransfer reply;
        int len;
        ssize_t l;

        len = proto_encode_handle_transfer(req, sizeof(req), &t);
        assert_true(len > 0);
        l = raw_call(c->fd, t.cookie, req, (size_t)len, &to, 1, &c->entries, NULL, NULL);
        assert_true(l > 0);
        assert_int_equal(proto_decode_reply_handle_transfer(&reply, raw_buf, (size_t)l, 0), 0);
        assert_int_equal(reply.error, 0);
        return reply.dst_handle;
}

/* the broker ends the connection: EOF (or a reset), whatever was queued before it */
static void raw_expect_closed(RawClient *c) {
        for (unsigned int i = 0; i < 1000; ++i) {
                ssize_t l = raw_read(c->fd, NULL, NULL);

                if (l == 0 || l == -ECONNRESET)
                        return;
                if (l < 0)
                        fail_msg("the broker did not close the connection: %s",
                                 strerror((int)-l));
        }
        fail_msg("the broker keeps writing to a connection it should close");
}

/* ---- adoption ----------------------------------------------------------------------- */

static uint64_t native_offset(Bus1Peer *peer, Bus1Message *m) {
        const uint8_t *pool = bus1_peer_get_pool(peer, NULL);
        const uint8_t *data = bus1_message_get_data(m, NULL);

        return (uint64_t)(data - pool);
}

/*
 * The child of test_adopt(): adopts @fd through the library, receives the
 * message still queued and releases it (its own ring), then tells the
 * broker by hand about the parent's slices. Exit codes name the failing step.
 */
static int adopt_child(int fd, uint64_t x1, uint64_t x2, const char *text) {
        uint64_t cookie = RING_COOKIE_RAW;
        uintptr_t before[RING_MAPS_MAX];
        Bus1Message *m;
        Bus1Peer *peer;
        const void *data;
        uint8_t *ring;
        uint64_t x3;
        size_t size;
        int n;

        n = ring_list_maps(before);
        if (n < 0)
                return 9;
        if (bus1_peer_new_from_fd(&peer, fd) < 0)
                return 10;
        /* a ring of its own */
        ring = ring_find_new(before, n);
        if (!ring)
                return 18;
        /*
         * The parent's ACKs went through its ring before the adoption: had
         * the broker not drained that ring at the HELLO, the two messages
         * the parent received would be pushed again here.
         */
        if (bus1_peer_recv(peer, 0, &m) < 0)
                return 11;
        data = bus1_message_get_data(m, &size);
        if (size != strlen(text) || memcmp(data, text, size))
                return 12;
        x3 = native_offset(peer, m);
        /* a slice this process received: its own ring */
        bus1_message_unref(m);

        if (ring_tail(ring) == 0 || ring_head(ring) != 0)
                return 19;

        /* the release in the new ring is applied before this request: ENXIO */
        if (raw_slice_release(fd, ++cookie, x3) != ENXIO)
                return 13;
        if (ring_head(ring) != ring_tail(ring))
                return 20;
        /* the parent's unreleased slice: the broker's to judge, once */
        if (raw_slice_release(fd, ++cookie, x2) != 0)
                return 14;
        if (raw_slice_release(fd, ++cookie, x2) != ENXIO)
                return 15;
        /* the parent released this one in its ring before the adoption */
        if (raw_slice_release(fd, ++cookie, x1) != ENXIO)
                return 16;
        if (raw_query(fd, ++cookie, NULL) != 0)
                return 17;
        return 0;
}

static void test_adopt(void **state) {
        UapiFixture *f = *state;
        uintptr_t before[RING_MAPS_MAX];
        Bus1Peer *p, *s;
        Bus1Message *m1, *m2, *m;
        uint64_t dst, x1, x2;
        uint8_t *ring;
        size_t n_before;
        int status;
        pid_t pid;

        n_before = ring_list(before);
        assert_int_equal(bus1_peer_new(&p, NULL), 0);
        ring = ring_new_since(before, n_before);
        assert_int_equal(bus1_peer_new(&s, NULL), 0);
        assert_int_equal(bus1_peer_handle_transfer(p, 0x100, s, &dst), 0);

        for (unsigned int i = 0; i < 2; ++i) {
                struct iovec v = { .iov_base = (void *)(i ? "two" : "one"), .iov_len = 3 };

                assert_int_equal(bus1_peer_send(s, 0, &dst, 1, NULL, &v, 1, NULL, 0, NULL, 0),
                                 0);
        }
        assert_int_equal(bus1_peer_recv(p, 0, &m1), 0);
        assert_int_equal(bus1_peer_recv(p, 0, &m2), 0);
        x1 = native_offset(p, m1);
        x2 = native_offset(p, m2);
        assert_int_not_equal(x1, x2);
        /* the parent releases one slice, in its ring */
        bus1_message_unref(m1);
        ring_assert_pending_release(ring, x1);

        /* queued for the child */
        {
                struct iovec v = { .iov_base = "three", .iov_len = 5 };

                assert_int_equal(bus1_peer_send(s, 0, &dst, 1, NULL, &v, 1, NULL, 0, NULL, 0),
                                 0);
        }

        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(adopt_child(bus1_peer_get_fd(p), x1, x2, "three"));
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);

        /*
         * The broker consumed the old ring at the adoption, never reads it
         * again, and marked it retired: the parent's calls fail from now on,
         * so it cannot receive what the child received.
         */
        ring_assert_drained(ring);
        assert_int_equal(ring_word(ring, PROTO_RING_RETIRED), 1);
        assert_int_equal(bus1_peer_query(p, NULL, NULL), -EBADFD);
        bus1_message_unref(m2);
        ring_assert_drained(ring);
        bus1_peer_unref(p);

        /* the peer is gone with its connection: s is told */
        assert_true(uapi_poll(bus1_peer_get_fd(s), POLLIN, RING_TIMEOUT_MS) & POLLIN);
        assert_int_equal(bus1_peer_recv(s, 0, &m), 0);
        assert_int_equal(bus1_message_get_type(m), BUS1_MSG_NODE_DESTROY);
        assert_int_equal(bus1_message_get_destination(m), dst);
        bus1_message_unref(m);
        assert_int_equal(bus1_peer_handle_release(s, dst), 0);
        bus1_peer_unref(s);
        uapi_finish(f);
}

/* ---- hostile rings ------------------------------------------------------------------ */

typedef enum RingAbuse {
        RING_ABUSE_TAG,         /* tags 2..7 */
        RING_ABUSE_OFFSET,      /* a release of an offset never received */
        RING_ABUSE_ACK0,
        RING_ABUSE_AHEAD,       /* the tail 1000 ahead */
        RING_ABUSE_BEHIND,      /* the tail behind the head */
        _RING_ABUSE_MAX,
} RingAbuse;

typedef enum RingTrigger {
        RING_TRIGGER_OWN,       /* the client's own next request */
        RING_TRIGGER_SEND,      /* another peer sends to it */
        RING_TRIGGER_QUOTA,     /* EDQUOT on a peer of the same UID */
        RING_TRIGGER_CTL,       /* a bus1ctl report */
        _RING_TRIGGER_MAX,
} RingTrigger;

static void ring_abuse(RawClient *c, RingAbuse abuse, unsigned int variant) {
        switch (abuse) {
        case RING_ABUSE_TAG:
                /* a release first, valid-looking, then the bad tag */
                raw_ring_push(c, (8 * variant) | (2 + variant % 6));
                break;
        case RING_ABUSE_OFFSET:
                raw_ring_push(c, 4096 * (variant + 1));
                break;
        case RING_ABUSE_ACK0:
                raw_ring_push(c, PROTO_RING_ACK);
                break;
        case RING_ABUSE_AHEAD:
                c->tail += 1000;
                ring_set_word(c->ring, PROTO_RING_TAIL, c->tail);
                break;
        case RING_ABUSE_BEHIND:
                c->tail = UINT64_MAX - variant;
                ring_set_word(c->ring, PROTO_RING_TAIL, c->tail);
                break;
        case _RING_ABUSE_MAX:
                break;
        }
}

/* run bus1ctl ARGS against the test's broker; its stdout (free it), NULL if it failed */
static char *ring_ctl(UapiFixture *f, const char *const *args) {
        const char *path = getenv("BUS1CTL_TEST_PATH");
        int out, status;
        struct stat st;
        char *buf;
        pid_t pid;

        if (!path)
                fail_msg("$BUS1CTL_TEST_PATH is not set (run through meson test)");
        out = memfd_create("bus1ctl-out", MFD_CLOEXEC);
        assert_true(out >= 0);
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                const char *argv[16] = { path };
                char address[200];
                size_t n = 1;

                snprintf(address, sizeof(address), "--address=%s", f->broker.path);
                argv[n++] = address;
                for (size_t i = 0; args[i] && n < 15; ++i)
                        argv[n++] = args[i];
                if (dup2(out, 1) < 0)
                        _exit(126);
                execv(path, (char *const *)argv);
                _exit(127);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_int_equal(fstat(out, &st), 0);
        buf = calloc(1, (size_t)st.st_size + 1);
        assert_non_null(buf);
        assert_int_equal(pread(out, buf, (size_t)st.st_size, 0), st.st_size);
        close(out);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

static JsonValue *ring_ctl_json(UapiFixture *f, const char *const *args) {
        JsonValue *v = NULL;
        char *out;

        out = ring_ctl(f, args);
        assert_non_null(out);
        if (json_parse(&v, out, strlen(out)) < 0)
                fail_msg("bus1ctl %s printed no JSON: %s", args[1], out);
        free(out);
        return v;
}

/* g1 and g2 still talk: g1 owns 0x100, g2 holds @to_g1 */
static void ring_assert_others_fine(UapiFixture *f, int g1, int g2, uint64_t to_g1,
                                    unsigned int tag) {
        struct bus1_cmd_recv rv;

        assert_int_equal(ring_send(g2, to_g1, 40, tag), 0);
        ring_recv_wait(g1, &rv);
        uapi_assert_data(&rv, 0x100, 40);
        assert_memory_equal(uapi_pool(f, g1) + rv.msg.offset, ring_fill(40, tag), 40);
        assert_int_equal(uapi_slice_release(g1, rv.msg.offset), 0);
}

/*
 * Every abuse, noticed at every kind of drain: the abuser's connection ends,
 * nobody else notices anything. g1 and g2 are well-behaved peers; g3 is a
 * peer of the same UID that refuses everything (max_slices 0), so a send to
 * it ends in EDQUOT, which drains every peer of the UID.
 */
static void test_hostile_raw(void **state) {
        UapiFixture *f = *state;
        uint64_t to_g1, to_g3;
        unsigned int tag = 0;
        int g1, g2, g3;

        g1 = uapi_peer(f);
        g2 = uapi_peer(f);
        g3 = uapi_peer(f);
        to_g1 = uapi_give(g1, 0x100, g2);
        to_g3 = uapi_give(g3, 0x100, g1);
        assert_int_equal(uapi_reset(g3, 0, UAPI_KEEP64, 0, UAPI_KEEP32, UAPI_KEEP32,
                                    UAPI_KEEP32), 0);

        for (unsigned int abuse = 0; abuse < _RING_ABUSE_MAX; ++abuse) {
                for (unsigned int trigger = 0; trigger < _RING_TRIGGER_MAX; ++trigger) {
                        uint64_t to_h = BUS1_HANDLE_INVALID;
                        RawClient h;
                        int res;

                        raw_connect(f, &h);
                        if (trigger == RING_TRIGGER_SEND)
                                to_h = raw_give(&h, 0x100, g1);
                        ring_abuse(&h, abuse, tag % 6);

                        switch (trigger) {
                        case RING_TRIGGER_OWN:
                                /* no reply: the connection ends first */
                                res = raw_query(h.fd, ++h.cookie, NULL);
                                assert_true(res == -EPIPE || res == -ECONNRESET);
                                break;
                        case RING_TRIGGER_SEND:
                                /* the sender's request completes as if nothing happened */
                                assert_int_equal(ring_send(g1, to_h, 16, tag), 0);
                                break;
                        case RING_TRIGGER_QUOTA:
                                assert_int_equal(ring_send(g1, to_g3, 16, tag), -EDQUOT);
                                break;
                        case RING_TRIGGER_CTL: {
                                char *out = ring_ctl(f, (const char *const[]){ "status",
                                                                              NULL });

                                assert_non_null(out);
                                free(out);
                                break;
                        }
                        }
                        raw_expect_closed(&h);
                        raw_close(&h);

                        /* its node went with it */
                        if (trigger == RING_TRIGGER_SEND)
                                ring_expect_destroy(g1, to_h);
                        ring_assert_others_fine(f, g1, g2, to_g1, tag++);
                }
        }
        uapi_expect_empty(g1);
        uapi_expect_empty(g2);
        uapi_finish(f);
}

/*
 * A raw client that plays by the rules keeps its connection: its ACK and
 * release are applied before its next request. One that releases the same
 * slice twice in its ring, or releases before its ACK, loses it, and the
 * values before the bad one were applied.
 */
static void test_hostile_raw_sequences(void **state) {
        UapiFixture *f = *state;
        uint64_t to_h, id, x;
        RawClient h;
        int g, res;

        g = uapi_peer(f);

        /* by the rules */
        raw_connect(f, &h);
        to_h = raw_give(&h, 0x100, g);
        assert_int_equal(ring_send(g, to_h, 32, 1), 0);
        assert_int_equal(raw_query(h.fd, ++h.cookie, &h.entries), 0);
        assert_int_equal(h.entries.n, 1);
        id = h.entries.ids[0];
        x = h.entries.offsets[0];
        raw_ring_push(&h, (id << 3) | PROTO_RING_ACK);
        raw_ring_push(&h, x | PROTO_RING_RELEASE);
        assert_int_equal(raw_query(h.fd, ++h.cookie, NULL), 0);
        assert_int_equal(ring_head(h.ring), 2);
        assert_int_equal(raw_slice_release(h.fd, ++h.cookie, x), ENXIO);
        /* an ACK that covers nothing new is harmless */
        raw_ring_push(&h, (id << 3) | PROTO_RING_ACK);
        assert_int_equal(raw_query(h.fd, ++h.cookie, NULL), 0);

        /* the same slice twice: the first release counts, the second ends it */
        assert_int_equal(ring_send(g, to_h, 32, 2), 0);
        h.entries.n = 0;
        assert_int_equal(raw_query(h.fd, ++h.cookie, &h.entries), 0);
        assert_int_equal(h.entries.n, 1);
        id = h.entries.ids[0];
        x = h.entries.offsets[0];
        raw_ring_push(&h, (id << 3) | PROTO_RING_ACK);
        raw_ring_push(&h, x | PROTO_RING_RELEASE);
        raw_ring_push(&h, x | PROTO_RING_RELEASE);
        res = raw_query(h.fd, ++h.cookie, NULL);
        assert_true(res == -EPIPE || res == -ECONNRESET);
        raw_expect_closed(&h);
        /* the broker got as far as the bad value and published that */
        assert_int_equal(ring_head(h.ring), ring_tail(h.ring));
        raw_close(&h);
        ring_expect_destroy(g, to_h);

        /* a release before the ACK of its dequeue is a release of a queued slice */
        raw_connect(f, &h);
        to_h = raw_give(&h, 0x100, g);
        assert_int_equal(ring_send(g, to_h, 32, 3), 0);
        assert_int_equal(raw_query(h.fd, ++h.cookie, &h.entries), 0);
        assert_int_equal(h.entries.n, 1);
        raw_ring_push(&h, h.entries.offsets[0] | PROTO_RING_RELEASE);
        assert_int_equal(ring_send(g, to_h, 32, 4), 0);
        raw_expect_closed(&h);
        raw_close(&h);
        ring_expect_destroy(g, to_h);

        uapi_expect_empty(g);
        uapi_finish(f);
}

/*
 * The library's own ring, scribbled over by the program that uses it: the
 * peer's next call fails as a lost connection (ESHUTDOWN), another peer of
 * the same process is unaffected.
 */
static void test_hostile_library(void **state) {
        UapiFixture *f = *state;
        struct bus1_cmd_peer_reset q;
        uint8_t *ring;
        uint64_t to_g, dst;
        int bad, g, s;

        bad = ring_peer(f, &ring);
        g = uapi_peer(f);
        s = uapi_peer(f);
        to_g = uapi_give(g, 0x100, s);
        dst = uapi_give(bad, 0x100, s);
        assert_int_equal(ring_send(s, dst, 8, 0), 0);
        assert_int_equal(uapi_slice_release(bad, ring_recv(f, bad, 0x100, 8, 0)), 0);
        assert_int_equal(uapi_query(bad, &q), 0);
        ring_assert_drained(ring);

        /* a tag the library never writes, in the next slot */
        ring_set_word(ring, PROTO_RING_SLOTS + 8 * (ring_tail(ring) % PROTO_RING_N_SLOTS),
                      (64 << 3) | 5);
        ring_set_word(ring, PROTO_RING_TAIL, ring_tail(ring) + 1);
        assert_int_equal(uapi_query(bad, &q), -ESHUTDOWN);
        assert_int_equal(uapi_query(bad, &q), -ESHUTDOWN);
        assert_int_equal(uapi_slice_release(bad, 0), -ESHUTDOWN);
        /* its node is gone: s hears of it */
        ring_expect_destroy(s, dst);
        assert_int_equal(uapi_close(f, bad), 0);

        assert_int_equal(ring_send(s, to_g, 8, 1), 0);
        assert_int_equal(uapi_slice_release(g, ring_recv(f, g, 0x100, 8, 1)), 0);
        uapi_finish(f);
}

/* ---- bus1ctl's view --------------------------------------------------------------- */

/* the peer IDs bus1ctl reports, in connect order */
static void ring_ctl_peer_ids(UapiFixture *f, uint64_t *ids, size_t n) {
        const JsonValue *peers;
        JsonValue *v;

        v = ring_ctl_json(f, (const char *const[]){ "--json", "peers", NULL });
        peers = json_get_array(v, "peers");
        assert_non_null(peers);
        assert_int_equal(peers->n_children, n);
        for (size_t i = 0; i < n; ++i)
                ids[i] = json_get_u64(&peers->children[i], "id", 0);
        json_free(v);
}

/* what bus1ctl quota says this UID uses */
static void ring_ctl_used(UapiFixture *f, uint64_t *slicesp, uint64_t *bytesp) {
        const JsonValue *users, *used;
        char uid[32];
        JsonValue *v;

        snprintf(uid, sizeof(uid), "%u", (unsigned int)getuid());
        v = ring_ctl_json(f, (const char *const[]){ "--json", "quota", uid, NULL });
        users = json_get_array(v, "users");
        assert_non_null(users);
        assert_int_equal(users->n_children, 1);
        used = json_get(&users->children[0], "used");
        assert_non_null(used);
        *slicesp = json_get_u64(used, "slices", UINT64_MAX);
        *bytesp = json_get_u64(used, "bytes", UINT64_MAX);
        json_free(v);
}

/* bus1ctl peer ID: the number of queued entries and of slices in each state */
static void ring_ctl_peer(UapiFixture *f, uint64_t id, size_t *n_queuedp, size_t *n_receivedp,
                          size_t *n_slices_queuedp) {
        const JsonValue *queue, *slices;
        char arg[32];
        JsonValue *v;

        snprintf(arg, sizeof(arg), "%" PRIu64, id);
        v = ring_ctl_json(f, (const char *const[]){ "--json", "peer", arg, NULL });
        queue = json_get_array(v, "queue");
        slices = json_get_array(v, "slices");
        assert_non_null(queue);
        assert_non_null(slices);
        *n_queuedp = queue->n_children;
        *n_receivedp = 0;
        *n_slices_queuedp = 0;
        for (size_t i = 0; i < slices->n_children; ++i) {
                const char *st = json_get_string(&slices->children[i], "state", "");

                if (!strcmp(st, "received"))
                        ++*n_receivedp;
                else if (!strcmp(st, "queued"))
                        ++*n_slices_queuedp;
                else
                        fail_msg("slice state \"%s\"", st);
        }
        json_free(v);
}

static void test_ctl_view(void **state) {
        UapiFixture *f = *state;
        size_t n_queued, n_received, n_slices_queued;
        uint64_t ids[2], dst, off[5], slices, bytes;
        struct bus1_cmd_peer_reset q;
        uint8_t *ring;
        int r, s;

        r = ring_peer(f, &ring);
        s = uapi_peer(f);
        ring_ctl_peer_ids(f, ids, 2);
        dst = uapi_give(r, 0x100, s);
        for (unsigned int i = 0; i < 5; ++i)
                assert_int_equal(ring_send(s, dst, 100, i), 0);

        /* receive two, locally as far as the entries were pushed, then no request */
        assert_int_equal(uapi_poll(r, POLLIN, RING_TIMEOUT_MS) & POLLIN, POLLIN);
        off[0] = ring_recv(f, r, 0x100, 100, 0);
        off[1] = ring_recv(f, r, 0x100, 100, 1);
        /* whatever the library did, the broker sees both dequeues */
        ring_ctl_peer(f, ids[0], &n_queued, &n_received, &n_slices_queued);
        ring_assert_drained(ring);
        assert_int_equal(n_queued, 3);
        assert_int_equal(n_received, 2);
        assert_int_equal(n_slices_queued, 3);
        ring_ctl_used(f, &slices, &bytes);
        assert_int_equal(slices, 5);
        assert_int_equal(bytes, 5 * 104);

        /* releases in the ring only: the report counts them */
        assert_int_equal(uapi_slice_release(r, off[0]), 0);
        ring_assert_pending_release(ring, off[0]);
        ring_ctl_used(f, &slices, &bytes);
        ring_assert_drained(ring);
        assert_int_equal(slices, 4);
        assert_int_equal(bytes, 4 * 104);

        assert_int_equal(uapi_slice_release(r, off[1]), 0);
        ring_assert_pending_release(ring, off[1]);
        ring_ctl_peer(f, ids[0], &n_queued, &n_received, &n_slices_queued);
        ring_assert_drained(ring);
        assert_int_equal(n_received, 0);
        assert_int_equal(n_slices_queued, 3);

        /* all of them: receive and release the rest with no request in between */
        assert_int_equal(uapi_query(r, &q), 0);
        for (unsigned int i = 2; i < 5; ++i)
                off[i] = ring_recv(f, r, 0x100, 100, i);
        for (unsigned int i = 2; i < 5; ++i)
                assert_int_equal(uapi_slice_release(r, off[i]), 0);
        ring_assert_pending_release(ring, off[4]);
        ring_ctl_used(f, &slices, &bytes);
        assert_int_equal(slices, 0);
        assert_int_equal(bytes, 0);
        ring_ctl_peer(f, ids[0], &n_queued, &n_received, &n_slices_queued);
        assert_int_equal(n_queued, 0);
        assert_int_equal(n_received + n_slices_queued, 0);
        ring_assert_drained(ring);
        uapi_finish(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_placement_reuse, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_placement_best_fit, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_space_peer, ring_setup_small_pool,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_space_user, ring_setup_small_pool,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_double_release, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_ring_full, ring_setup_slices,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_ring_full_ack, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_adopt, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_hostile_raw, uapi_setup, uapi_teardown),
                cmocka_unit_test_setup_teardown(test_hostile_raw_sequences, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_hostile_library, uapi_setup,
                                                uapi_teardown),
                cmocka_unit_test_setup_teardown(test_ctl_view, uapi_setup, uapi_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
