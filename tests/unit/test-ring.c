/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for the broker's side of the release ring (broker/ring.c)
 *
 * Each test creates a ring with ring_init() and maps the memfd it returns a
 * second time, read-write and shared, as the client does: that mapping is
 * "the client" here. The client side is written by hand, following
 * docs/protocol.md section 8a (value n in slot n mod 256, le64 tail at 0,
 * le64 head at 64), so the tests pin the layout as well as the behaviour:
 *  - the memfd is sealed against shrinking, growing and further seals, and
 *    is exactly one page;
 *  - a drain calls the callback with every value between the broker's head
 *    and the client's tail, in order, across the wrap of the slots, and
 *    publishes the new head at PROTO_RING_HEAD; an empty ring calls nothing;
 *  - a callback error stops the drain after that value, returns the error,
 *    and the head (past the failed value) is still published;
 *  - a tail more than 256 ahead of the head, or behind it, is -EBADMSG with
 *    nothing applied and the head unchanged; exactly 256 ahead is a full
 *    ring, which is fine;
 *  - the broker keeps its own head: a client overwriting the head field
 *    changes nothing.
 */

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "broker/ring.h"
#include "proto/proto.h"

#define SEEN_MAX 2048

/* a ring and the client's view of it */
typedef struct TestRing {
        Ring ring;
        int fd;
        uint8_t *client;        /* the second mapping */
        uint64_t tail;          /* what the client wrote so far */

        uint64_t seen[SEEN_MAX];        /* values the callback got */
        size_t n_seen;
        size_t fail_at;         /* the callback fails on this call (1-based), 0 never */
        int fail_with;
} TestRing;

static void test_ring_open(TestRing *t) {
        memset(t, 0, sizeof(*t));
        assert_int_equal(ring_init(&t->ring, &t->fd), 0);
        assert_true(t->fd >= 0);
        assert_non_null(t->ring.map);
        assert_int_equal(t->ring.head, 0);
        t->client = mmap(NULL, PROTO_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
        assert_true(t->client != MAP_FAILED);
}

static void test_ring_close(TestRing *t) {
        ring_deinit(&t->ring);
        assert_null(t->ring.map);
        munmap(t->client, PROTO_RING_SIZE);
        close(t->fd);
}

static uint64_t test_ring_word(TestRing *t, size_t offset) {
        uint64_t v;

        memcpy(&v, t->client + offset, sizeof(v));
        return le64toh(v);
}

static void test_ring_set_word(TestRing *t, size_t offset, uint64_t value) {
        uint64_t v = htole64(value);

        memcpy(t->client + offset, &v, sizeof(v));
}

/* the head as the broker published it */
static uint64_t test_ring_head(TestRing *t) {
        return test_ring_word(t, PROTO_RING_HEAD);
}

/* write @value into the slot of value number @n (no tail update) */
static void test_ring_put(TestRing *t, uint64_t n, uint64_t value) {
        test_ring_set_word(t, PROTO_RING_SLOTS + 8 * (n % PROTO_RING_N_SLOTS), value);
}

static void test_ring_set_tail(TestRing *t, uint64_t tail) {
        test_ring_set_word(t, PROTO_RING_TAIL, tail);
}

/* append values as the client library does: slot first, then the tail */
static void test_ring_append(TestRing *t, uint64_t value) {
        test_ring_put(t, t->tail, value);
        ++t->tail;
        test_ring_set_tail(t, t->tail);
}

static int test_ring_fn(uint64_t value, void *userdata) {
        TestRing *t = userdata;

        assert_true(t->n_seen < SEEN_MAX);
        t->seen[t->n_seen++] = value;
        if (t->fail_at && t->n_seen == t->fail_at)
                return t->fail_with;
        return 0;
}

static int test_ring_drain(TestRing *t) {
        return ring_drain(&t->ring, test_ring_fn, t);
}

/* a value like the ones the library writes: release @n * 8, or ACK of @n */
static uint64_t test_value(uint64_t n) {
        return n % 3 ? (n * 8) | PROTO_RING_RELEASE : (n << 3) | PROTO_RING_ACK;
}

static void test_layout(void **state) {
        /* docs/protocol.md section 8a; the client library hard-codes none of it */
        assert_int_equal(PROTO_RING_SIZE, 4096);
        assert_int_equal(PROTO_RING_TAIL, 0);
        assert_int_equal(PROTO_RING_HEAD, 64);
        assert_int_equal(PROTO_RING_SLOTS, 2048);
        assert_int_equal(PROTO_RING_N_SLOTS, 256);
        assert_int_equal(PROTO_RING_SLOTS + 8 * PROTO_RING_N_SLOTS, PROTO_RING_SIZE);
        assert_int_equal(PROTO_RING_TAG_MASK, 7);
        assert_int_equal(PROTO_RING_RELEASE, 0);
        assert_int_equal(PROTO_RING_ACK, 1);
}

static void test_init_sealed(void **state) {
        struct stat st;
        TestRing t;
        int seals, flags;

        test_ring_open(&t);

        assert_int_equal(fstat(t.fd, &st), 0);
        assert_int_equal(st.st_size, PROTO_RING_SIZE);
        flags = fcntl(t.fd, F_GETFD);
        assert_true(flags >= 0 && (flags & FD_CLOEXEC));

        seals = fcntl(t.fd, F_GET_SEALS);
        assert_int_equal(seals, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
        /* the client can neither resize it nor seal it further (or unseal) */
        assert_int_equal(ftruncate(t.fd, 0), -1);
        assert_int_equal(errno, EPERM);
        assert_int_equal(ftruncate(t.fd, PROTO_RING_SIZE / 2), -1);
        assert_int_equal(errno, EPERM);
        assert_int_equal(ftruncate(t.fd, 2 * PROTO_RING_SIZE), -1);
        assert_int_equal(errno, EPERM);
        assert_int_equal(fcntl(t.fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
        assert_int_equal(errno, EPERM);
        assert_int_equal(fcntl(t.fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), -1);
        assert_int_equal(errno, EPERM);
        /* writing past the end would grow it */
        assert_int_equal(pwrite(t.fd, "x", 1, PROTO_RING_SIZE), -1);
        assert_int_equal(errno, EPERM);
        assert_int_equal(fstat(t.fd, &st), 0);
        assert_int_equal(st.st_size, PROTO_RING_SIZE);

        /* but it is the client's to write, and both mappings see one page */
        assert_int_equal(test_ring_head(&t), 0);
        assert_int_equal(test_ring_word(&t, PROTO_RING_TAIL), 0);
        t.client[PROTO_RING_SIZE - 1] = 0x5a;
        assert_int_equal(t.ring.map[PROTO_RING_SIZE - 1], 0x5a);
        assert_int_equal(pwrite(t.fd, "y", 1, 100), 1);
        assert_int_equal(t.ring.map[100], 'y');

        test_ring_close(&t);
}

/* rings are independent: two of them share nothing */
static void test_init_independent(void **state) {
        TestRing a, b;

        test_ring_open(&a);
        test_ring_open(&b);
        assert_ptr_not_equal(a.ring.map, b.ring.map);
        test_ring_append(&a, 8);
        assert_int_equal(test_ring_drain(&b), 0);
        assert_int_equal(b.n_seen, 0);
        assert_int_equal(test_ring_drain(&a), 0);
        assert_int_equal(a.n_seen, 1);
        test_ring_close(&a);
        test_ring_close(&b);
}

static void test_deinit(void **state) {
        Ring ring = RING_NULL;
        TestRing t;

        /* no mapping: nothing to drain, nothing to unmap */
        assert_int_equal(ring_drain(&ring, test_ring_fn, NULL), 0);
        ring_deinit(&ring);
        ring_deinit(&ring);
        assert_null(ring.map);

        test_ring_open(&t);
        test_ring_append(&t, 8);
        ring_deinit(&t.ring);
        /* after deinit the ring drains nothing, and a second deinit is harmless */
        assert_int_equal(test_ring_drain(&t), 0);
        assert_int_equal(t.n_seen, 0);
        ring_deinit(&t.ring);
        /* the client's mapping outlives the broker's */
        assert_int_equal(test_ring_word(&t, PROTO_RING_TAIL), 1);
        munmap(t.client, PROTO_RING_SIZE);
        close(t.fd);
}

static void test_drain_empty(void **state) {
        TestRing t;

        test_ring_open(&t);
        assert_int_equal(test_ring_drain(&t), 0);
        assert_int_equal(test_ring_drain(&t), 0);
        assert_int_equal(t.n_seen, 0);
        assert_int_equal(t.ring.head, 0);
        assert_int_equal(test_ring_head(&t), 0);

        /* values in the slots without a tail are not there yet */
        test_ring_put(&t, 0, 8);
        test_ring_put(&t, 1, 16);
        assert_int_equal(test_ring_drain(&t), 0);
        assert_int_equal(t.n_seen, 0);
        assert_int_equal(t.ring.head, 0);
        test_ring_close(&t);
}

static void test_drain_in_order(void **state) {
        TestRing t;

        test_ring_open(&t);
        test_ring_append(&t, 64);
        test_ring_append(&t, (7 << 3) | PROTO_RING_ACK);
        test_ring_append(&t, 0);
        test_ring_append(&t, 4096);
        test_ring_append(&t, (UINT64_C(1) << 60) | PROTO_RING_ACK);
        assert_int_equal(test_ring_drain(&t), 0);
        assert_int_equal(t.n_seen, 5);
        assert_int_equal(t.seen[0], 64);
        assert_int_equal(t.seen[1], (7 << 3) | PROTO_RING_ACK);
        assert_int_equal(t.seen[2], 0);
        assert_int_equal(t.seen[3], 4096);
        assert_int_equal(t.seen[4], (UINT64_C(1) << 60) | PROTO_RING_ACK);
        /* the head is the broker's count, and published for the client */
        assert_int_equal(t.ring.head, 5);
        assert_int_equal(test_ring_head(&t), 5);

        /* a second drain applies nothing again */
        assert_int_equal(test_ring_drain(&t), 0);
        assert_int_equal(t.n_seen, 5);

        /* values the ring does not judge: any tag goes to the callback */
        for (uint64_t tag = 0; tag <= PROTO_RING_TAG_MASK; ++tag)
                test_ring_append(&t, (tag << 3) | tag);
        assert_int_equal(test_ring_drain(&t), 0);
        assert_int_equal(t.n_seen, 13);
        for (uint64_t tag = 0; tag <= PROTO_RING_TAG_MASK; ++tag)
                assert_int_equal(t.seen[5 + tag], (tag << 3) | tag);
        assert_int_equal(test_ring_head(&t), 13);
        test_ring_close(&t);
}

/* many values, in batches of every size up to a full ring, across many wraps */
static void test_drain_wraps(void **state) {
        uint64_t n = 0, batch = 1;
        TestRing t;

        test_ring_open(&t);
        while (n < 10 * PROTO_RING_N_SLOTS) {
                t.n_seen = 0;
                for (uint64_t i = 0; i < batch; ++i)
                        test_ring_append(&t, test_value(n + i));
                assert_int_equal(test_ring_drain(&t), 0);
                assert_int_equal(t.n_seen, batch);
                for (uint64_t i = 0; i < batch; ++i)
                        assert_int_equal(t.seen[i], test_value(n + i));
                n += batch;
                assert_int_equal(t.ring.head, n);
                assert_int_equal(test_ring_head(&t), n);
                batch = batch % PROTO_RING_N_SLOTS + 1;
                if (batch % 7 == 0)
                        batch = PROTO_RING_N_SLOTS;
        }
        test_ring_close(&t);
}

/* exactly 256 ahead: a full ring, every slot read once, in order */
static void test_drain_full(void **state) {
        TestRing t;

        test_ring_open(&t);
        /* start mid-way so the full ring wraps */
        for (uint64_t i = 0; i < 100; ++i)
                test_ring_append(&t, test_value(i));
        assert_int_equal(test_ring_drain(&t), 0);
        t.n_seen = 0;

        for (uint64_t i = 0; i < PROTO_RING_N_SLOTS; ++i)
                test_ring_append(&t, test_value(100 + i));
        assert_int_equal(t.tail - t.ring.head, PROTO_RING_N_SLOTS);
        assert_int_equal(test_ring_drain(&t), 0);
        assert_int_equal(t.n_seen, PROTO_RING_N_SLOTS);
        for (uint64_t i = 0; i < PROTO_RING_N_SLOTS; ++i)
                assert_int_equal(t.seen[i], test_value(100 + i));
        assert_int_equal(test_ring_head(&t), 100 + PROTO_RING_N_SLOTS);
        test_ring_close(&t);
}

static void test_drain_callback_error(void **state) {
        TestRing t;

        test_ring_open(&t);
        for (uint64_t i = 0; i < 6; ++i)
                test_ring_append(&t, test_value(i));
        t.fail_at = 3;
        t.fail_with = -EIO;
        assert_int_equal(test_ring_drain(&t), -EIO);
        /* stopped right after the third value, which counts as consumed */
        assert_int_equal(t.n_seen, 3);
        for (uint64_t i = 0; i < 3; ++i)
                assert_int_equal(t.seen[i], test_value(i));
        assert_int_equal(t.ring.head, 3);
        assert_int_equal(test_ring_head(&t), 3);

        /* the next drain goes on with the fourth */
        t.fail_at = 0;
        assert_int_equal(test_ring_drain(&t), 0);
        assert_int_equal(t.n_seen, 6);
        for (uint64_t i = 3; i < 6; ++i)
                assert_int_equal(t.seen[i], test_value(i));
        assert_int_equal(test_ring_head(&t), 6);

        /* an error on the first and on the last value */
        test_ring_append(&t, 8);
        test_ring_append(&t, 16);
        t.n_seen = 0;
        t.fail_at = 1;
        t.fail_with = -EBADMSG;
        assert_int_equal(test_ring_drain(&t), -EBADMSG);
        assert_int_equal(t.n_seen, 1);
        assert_int_equal(test_ring_head(&t), 7);
        t.n_seen = 0;
        t.fail_at = 1;
        assert_int_equal(test_ring_drain(&t), -EBADMSG);
        assert_int_equal(t.n_seen, 1);
        assert_int_equal(t.seen[0], 16);
        assert_int_equal(test_ring_head(&t), 8);
        test_ring_close(&t);
}

/* more than a ring ahead: nothing is applied, the head stays */
static void test_drain_tail_too_far(void **state) {
        TestRing t;

        test_ring_open(&t);
        for (uint64_t i = 0; i < 10; ++i)
                test_ring_append(&t, test_value(i));
        assert_int_equal(test_ring_drain(&t), 0);
        t.n_seen = 0;

        for (uint64_t i = 0; i < PROTO_RING_N_SLOTS; ++i)
                test_ring_put(&t, 10 + i, test_value(10 + i));
        test_ring_set_tail(&t, 10 + PROTO_RING_N_SLOTS + 1);
        assert_int_equal(test_ring_drain(&t), -EBADMSG);
        assert_int_equal(t.n_seen, 0);
        assert_int_equal(t.ring.head, 10);
        assert_int_equal(test_ring_head(&t), 10);

        /* far ahead, and the largest distance */
        test_ring_set_tail(&t, 10 + 1000);
        assert_int_equal(test_ring_drain(&t), -EBADMSG);
        test_ring_set_tail(&t, UINT64_MAX);
        assert_int_equal(test_ring_drain(&t), -EBADMSG);
        assert_int_equal(t.n_seen, 0);
        assert_int_equal(t.ring.head, 10);

        /* the ring itself holds no grudge: a sane tail drains again */
        test_ring_set_tail(&t, 10 + PROTO_RING_N_SLOTS);
        assert_int_equal(test_ring_drain(&t), 0);
        assert_int_equal(t.n_seen, PROTO_RING_N_SLOTS);
        assert_int_equal(test_ring_head(&t), 10 + PROTO_RING_N_SLOTS);
        test_ring_close(&t);
}

/* a tail behind the head (the client moved it back): nothing is applied */
static void test_drain_tail_behind(void **state) {
        TestRing t;

        test_ring_open(&t);
        for (uint64_t i = 0; i < 20; ++i)
                test_ring_append(&t, test_value(i));
        assert_int_equal(test_ring_drain(&t), 0);
        t.n_seen = 0;

        /* one behind: tail - head wraps to UINT64_MAX */
        test_ring_set_tail(&t, 19);
        assert_int_equal(test_ring_drain(&t), -EBADMSG);
        test_ring_set_tail(&t, 0);
        assert_int_equal(test_ring_drain(&t), -EBADMSG);
        /* behind by exactly what would look like a full ring modulo 2^64 */
        test_ring_set_tail(&t, 20 - PROTO_RING_N_SLOTS);
        assert_int_equal(test_ring_drain(&t), -EBADMSG);
        assert_int_equal(t.n_seen, 0);
        assert_int_equal(t.ring.head, 20);
        assert_int_equal(test_ring_head(&t), 20);
        test_ring_close(&t);
}

/* a head near 2^64: the counts wrap, the slots follow value number mod 256 */
static void test_drain_counter_wrap(void **state) {
        TestRing t;

        test_ring_open(&t);
        t.ring.head = UINT64_MAX - 2;
        t.tail = UINT64_MAX - 2;
        for (uint64_t i = 0; i < 6; ++i)
                test_ring_append(&t, test_value(i));
        assert_int_equal(t.tail, 3);
        assert_int_equal(test_ring_drain(&t), 0);
        assert_int_equal(t.n_seen, 6);
        for (uint64_t i = 0; i < 6; ++i)
                assert_int_equal(t.seen[i], test_value(i));
        assert_int_equal(test_ring_head(&t), 3);
        test_ring_close(&t);
}

/* the head field is only the broker's report: overwriting it changes nothing */
static void test_drain_own_head(void **state) {
        TestRing t;

        test_ring_open(&t);
        for (uint64_t i = 0; i < 4; ++i)
                test_ring_append(&t, test_value(i));
        assert_int_equal(test_ring_drain(&t), 0);

        test_ring_set_word(&t, PROTO_RING_HEAD, 1000);
        test_ring_append(&t, test_value(4));
        t.n_seen = 0;
        assert_int_equal(test_ring_drain(&t), 0);
        assert_int_equal(t.n_seen, 1);
        assert_int_equal(t.seen[0], test_value(4));
        /* and the report is put right */
        assert_int_equal(test_ring_head(&t), 5);

        /* nor does scribbling over the rest of the page, outside the slots read */
        memset(t.client + 8, 0xff, PROTO_RING_HEAD - 8);
        memset(t.client + PROTO_RING_HEAD + 8, 0xff, PROTO_RING_SLOTS - PROTO_RING_HEAD - 8);
        test_ring_append(&t, test_value(5));
        t.n_seen = 0;
        assert_int_equal(test_ring_drain(&t), 0);
        assert_int_equal(t.n_seen, 1);
        assert_int_equal(t.seen[0], test_value(5));
        test_ring_close(&t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_layout),
                cmocka_unit_test(test_init_sealed),
                cmocka_unit_test(test_init_independent),
                cmocka_unit_test(test_deinit),
                cmocka_unit_test(test_drain_empty),
                cmocka_unit_test(test_drain_in_order),
                cmocka_unit_test(test_drain_wraps),
                cmocka_unit_test(test_drain_full),
                cmocka_unit_test(test_drain_callback_error),
                cmocka_unit_test(test_drain_tail_too_far),
                cmocka_unit_test(test_drain_tail_behind),
                cmocka_unit_test(test_drain_counter_wrap),
                cmocka_unit_test(test_drain_own_head),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
