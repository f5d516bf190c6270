/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for the offset set (util/offset-set.c)
 *
 * The set is an open-addressing table with linear probing and backward-shift
 * deletion; the client library keeps the slice offsets it received in it. A
 * wrong shift does not crash: it leaves a member behind an empty slot, where
 * lookups no longer find it, and the library then sends a release through
 * the ring that the broker never sees, or refuses one it should send. So
 * every test checks the whole table after each step with set_check(): the
 * count, the load factor, no duplicates, and that every member sits in the
 * unbroken probe run that starts at its home slot.
 *
 * The home slot is restated here (set_home(), Fibonacci hashing as in
 * offset-set.c), which lets the cluster tests place values exactly: runs
 * that wrap from the last slot to the first, and deletions whose shifts
 * cross the wrap. The randomized tests compare against a sorted array over
 * 100,000 seeded operations, one over a wide value range (the table grows
 * to thousands of slots) and one over values whose homes all lie in eight
 * slots around the wrap of a 64-slot table.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "util/offset-set.h"

#define SET_EMPTY UINT64_MAX
#define SET_SLOTS_FIRST 64      /* the first table offset_set_add() allocates */

/* the home slot of @value in a table of @n_slots (offset-set.c, restated) */
static size_t set_home(uint64_t value, size_t n_slots) {
        return (size_t)((value * 0x9E3779B97F4A7C15ULL) >> 32) & (n_slots - 1);
}

/*
 * Check every invariant of @set: n_slots is 0 or a power of two, at most
 * half full, n_items counts the occupied slots, no value twice, and each
 * member is reachable: no empty slot lies between its home and its slot.
 */
static int set_compare_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return (x > y) - (x < y);
}

static void set_check(const OffsetSet *set) {
        size_t n = 0, mask = set->n_slots - 1;
        uint64_t *members;

        if (!set->n_slots) {
                assert_null(set->slots);
                assert_int_equal(set->n_items, 0);
                return;
        }
        assert_non_null(set->slots);
        assert_int_equal(set->n_slots & mask, 0);
        assert_true(set->n_items * 2 <= set->n_slots);

        members = calloc(set->n_slots, sizeof(*members));
        assert_non_null(members);
        for (size_t i = 0; i < set->n_slots; ++i) {
                uint64_t v = set->slots[i];

                if (v == SET_EMPTY)
                        continue;
                members[n++] = v;
                for (size_t j = set_home(v, set->n_slots); j != i; j = (j + 1) & mask)
                        if (set->slots[j] == SET_EMPTY)
                                fail_msg("%llu in slot %zu is cut off from its home %zu "
                                         "by the empty slot %zu", (unsigned long long)v, i,
                                         set_home(v, set->n_slots), j);
                assert_true(offset_set_contains(set, v));
        }
        assert_int_equal(n, set->n_items);
        qsort(members, n, sizeof(*members), set_compare_u64);
        for (size_t i = 1; i < n; ++i)
                if (members[i] == members[i - 1])
                        fail_msg("%llu is in the table twice", (unsigned long long)members[i]);
        free(members);
}

/* the slot holding @value, or -1 */
static long set_slot_of(const OffsetSet *set, uint64_t value) {
        for (size_t i = 0; i < set->n_slots; ++i)
                if (set->slots[i] == value)
                        return (long)i;
        return -1;
}

/* the first @n multiples of 8 from @from on whose home in a 64-slot table is @home */
static void set_find_homed(uint64_t *out, size_t n, size_t home, uint64_t *from) {
        uint64_t v = *from;

        for (size_t i = 0; i < n; v += 8) {
                if (set_home(v, SET_SLOTS_FIRST) == home)
                        out[i++] = v;
        }
        *from = v;
}

static void test_empty(void **state) {
        OffsetSet set = OFFSET_SET_INIT;

        set_check(&set);
        assert_false(offset_set_contains(&set, 0));
        assert_false(offset_set_contains(&set, 8));
        assert_false(offset_set_remove(&set, 0));
        assert_false(offset_set_remove(&set, SET_EMPTY));
        /* clearing an empty set is harmless, twice too */
        offset_set_clear(&set);
        offset_set_clear(&set);
        set_check(&set);
}

static void test_add_remove(void **state) {
        OffsetSet set = OFFSET_SET_INIT;

        /* 0 is a value like any other: the first slice of a pool is there */
        assert_int_equal(offset_set_add(&set, 0), 1);
        set_check(&set);
        assert_int_equal(set.n_slots, SET_SLOTS_FIRST);
        assert_true(offset_set_contains(&set, 0));
        assert_false(offset_set_contains(&set, 8));
        /* a second add finds it */
        assert_int_equal(offset_set_add(&set, 0), 0);
        assert_int_equal(set.n_items, 1);

        assert_int_equal(offset_set_add(&set, 8), 1);
        assert_int_equal(offset_set_add(&set, UINT64_MAX - 1), 1);
        assert_int_equal(offset_set_add(&set, 4096), 1);
        set_check(&set);
        assert_int_equal(set.n_items, 4);

        assert_true(offset_set_remove(&set, 8));
        assert_false(offset_set_remove(&set, 8));
        assert_false(offset_set_contains(&set, 8));
        assert_false(offset_set_remove(&set, 16));
        set_check(&set);
        assert_int_equal(set.n_items, 3);
        assert_true(offset_set_contains(&set, 0));
        assert_true(offset_set_contains(&set, UINT64_MAX - 1));
        assert_true(offset_set_contains(&set, 4096));

        /* emptied by removals, the table stays allocated and usable */
        assert_true(offset_set_remove(&set, 0));
        assert_true(offset_set_remove(&set, UINT64_MAX - 1));
        assert_true(offset_set_remove(&set, 4096));
        set_check(&set);
        assert_int_equal(set.n_items, 0);
        assert_false(offset_set_contains(&set, 0));
        assert_false(offset_set_remove(&set, 0));
        assert_int_equal(offset_set_add(&set, 0), 1);
        set_check(&set);
        offset_set_clear(&set);
}

/* UINT64_MAX marks an empty slot: it can never be a member */
static void test_max_rejected(void **state) {
        OffsetSet set = OFFSET_SET_INIT;

        assert_int_equal(offset_set_add(&set, UINT64_MAX), -EINVAL);
        /* the refusal allocates nothing */
        set_check(&set);
        assert_int_equal(set.n_slots, 0);

        assert_int_equal(offset_set_add(&set, 16), 1);
        assert_int_equal(offset_set_add(&set, UINT64_MAX), -EINVAL);
        assert_false(offset_set_contains(&set, UINT64_MAX));
        assert_false(offset_set_remove(&set, UINT64_MAX));
        set_check(&set);
        assert_int_equal(set.n_items, 1);
        assert_true(offset_set_contains(&set, 16));
        offset_set_clear(&set);
}

static void test_clear(void **state) {
        OffsetSet set = OFFSET_SET_INIT;

        for (uint64_t v = 0; v < 1000 * 8; v += 8)
                assert_int_equal(offset_set_add(&set, v), 1);
        set_check(&set);
        offset_set_clear(&set);
        set_check(&set);
        assert_int_equal(set.n_slots, 0);
        for (uint64_t v = 0; v < 1000 * 8; v += 8)
                assert_false(offset_set_contains(&set, v));
        assert_false(offset_set_remove(&set, 0));

        /* usable again after a clear */
        assert_int_equal(offset_set_add(&set, 0), 1);
        assert_int_equal(offset_set_add(&set, 8), 1);
        set_check(&set);
        assert_int_equal(set.n_items, 2);
        offset_set_clear(&set);
        offset_set_clear(&set);
}

/* growing keeps every member and the load at most 1/2 */
static void test_grow(void **state) {
        OffsetSet set = OFFSET_SET_INIT;
        size_t n_slots = 0;

        for (uint64_t i = 0; i < 20000; ++i) {
                assert_int_equal(offset_set_add(&set, i * 8), 1);
                if (set.n_slots != n_slots) {
                        /* it doubles when the next add would pass half */
                        assert_int_equal(set.n_slots, n_slots ? 2 * n_slots : SET_SLOTS_FIRST);
                        assert_int_equal((i + 1) * 2 > n_slots, true);
                        n_slots = set.n_slots;
                        set_check(&set);
                }
        }
        set_check(&set);
        assert_int_equal(set.n_items, 20000);
        for (uint64_t i = 0; i < 20000; ++i)
                assert_true(offset_set_contains(&set, i * 8));
        assert_false(offset_set_contains(&set, 20000 * 8));
        for (uint64_t i = 0; i < 20000; i += 2)
                assert_true(offset_set_remove(&set, i * 8));
        set_check(&set);
        for (uint64_t i = 0; i < 20000; ++i)
                assert_int_equal(offset_set_contains(&set, i * 8), i % 2 == 1);
        offset_set_clear(&set);
}

/*
 * A run that wraps: three values homed in the last slot fill slots 63, 0
 * and 1; a value homed in slot 0 goes to slot 2. Removing the first of the
 * run must shift the whole run back across the wrap, each member to the
 * earliest slot its home allows.
 */
static void test_wrap_cluster(void **state) {
        OffsetSet set = OFFSET_SET_INIT;
        uint64_t last[3], first[1], from = 0;

        set_find_homed(last, 3, SET_SLOTS_FIRST - 1, &from);
        from = 0;
        set_find_homed(first, 1, 0, &from);

        for (size_t i = 0; i < 3; ++i)
                assert_int_equal(offset_set_add(&set, last[i]), 1);
        assert_int_equal(offset_set_add(&set, first[0]), 1);
        set_check(&set);
        assert_int_equal(set.n_slots, SET_SLOTS_FIRST);
        assert_int_equal(set_slot_of(&set, last[0]), 63);
        assert_int_equal(set_slot_of(&set, last[1]), 0);
        assert_int_equal(set_slot_of(&set, last[2]), 1);
        assert_int_equal(set_slot_of(&set, first[0]), 2);

        /* the hole at 63: last[1] crosses the wrap back, the rest follow */
        assert_true(offset_set_remove(&set, last[0]));
        set_check(&set);
        assert_int_equal(set_slot_of(&set, last[1]), 63);
        assert_int_equal(set_slot_of(&set, last[2]), 0);
        assert_int_equal(set_slot_of(&set, first[0]), 1);
        assert_int_equal(set.slots[2], SET_EMPTY);

        /* the hole at 0: last[2] may not move before its home; first[0] moves to 0 */
        assert_true(offset_set_remove(&set, last[2]));
        set_check(&set);
        assert_int_equal(set_slot_of(&set, last[1]), 63);
        assert_int_equal(set_slot_of(&set, first[0]), 0);
        assert_int_equal(set.slots[1], SET_EMPTY);

        assert_true(offset_set_remove(&set, last[1]));
        set_check(&set);
        assert_int_equal(set_slot_of(&set, first[0]), 0);
        assert_int_equal(set.slots[63], SET_EMPTY);
        offset_set_clear(&set);
}

/*
 * A run from slot 61 over the wrap, with members homed in 61, 62, 63, 0 and
 * 1, removed in every order of a few permutations; a member homed after the
 * hole, in the cyclic sense, must stay where it is.
 */
static void test_wrap_shift_rules(void **state) {
        static const size_t homes[] = { 61, 61, 63, 62, 0, 63, 1, 0, 61 };
        uint64_t values[sizeof(homes) / sizeof(homes[0])];
        const size_t n = sizeof(homes) / sizeof(homes[0]);
        uint64_t cursor[SET_SLOTS_FIRST] = {};

        /* distinct values: each home has a cursor of its own */
        for (size_t i = 0; i < n; ++i) {
                uint64_t v = cursor[homes[i]];

                while (set_home(v, SET_SLOTS_FIRST) != homes[i])
                        v += 8;
                values[i] = v;
                cursor[homes[i]] = v + 8;
        }

        for (unsigned int seed = 0; seed < 200; ++seed) {
                OffsetSet set = OFFSET_SET_INIT;
                size_t order[sizeof(homes) / sizeof(homes[0])];
                bool present[sizeof(homes) / sizeof(homes[0])] = {};

                for (size_t i = 0; i < n; ++i) {
                        assert_int_equal(offset_set_add(&set, values[i]), 1);
                        present[i] = true;
                        order[i] = i;
                }
                set_check(&set);
                assert_int_equal(set.n_slots, SET_SLOTS_FIRST);
                /* the run covers 61..63 and wraps into 0..5 */
                for (size_t s = 61; s != 6; s = (s + 1) % SET_SLOTS_FIRST)
                        assert_true(set.slots[s] != SET_EMPTY);

                srand(seed);
                for (size_t i = n - 1; i > 0; --i) {
                        size_t j = (size_t)rand() % (i + 1), t = order[i];

                        order[i] = order[j];
                        order[j] = t;
                }
                for (size_t i = 0; i < n; ++i) {
                        assert_true(offset_set_remove(&set, values[order[i]]));
                        present[order[i]] = false;
                        set_check(&set);
                        for (size_t k = 0; k < n; ++k)
                                assert_int_equal(offset_set_contains(&set, values[k]),
                                                 present[k]);
                }
                assert_int_equal(set.n_items, 0);
                offset_set_clear(&set);
        }
}

/* the reference: a sorted array */
typedef struct Ref {
        uint64_t *v;
        size_t n;
} Ref;

static size_t ref_lower(const Ref *ref, uint64_t x) {
        size_t lo = 0, hi = ref->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (ref->v[mid] < x)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static bool ref_contains(const Ref *ref, uint64_t x) {
        size_t i = ref_lower(ref, x);

        return i < ref->n && ref->v[i] == x;
}

static bool ref_add(Ref *ref, uint64_t x) {
        size_t i = ref_lower(ref, x);

        if (i < ref->n && ref->v[i] == x)
                return false;
        memmove(ref->v + i + 1, ref->v + i, (ref->n - i) * sizeof(*ref->v));
        ref->v[i] = x;
        ++ref->n;
        return true;
}

static bool ref_remove(Ref *ref, uint64_t x) {
        size_t i = ref_lower(ref, x);

        if (i >= ref->n || ref->v[i] != x)
                return false;
        memmove(ref->v + i, ref->v + i + 1, (ref->n - i - 1) * sizeof(*ref->v));
        --ref->n;
        return true;
}

static uint64_t rng_next(uint64_t *s) {
        /* xorshift64*: reproducible, no libc state */
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 0x2545F4914F6CDD1DULL;
}

/*
 * @n_ops random adds, removes and lookups of values @pick() draws, compared
 * with the reference after each; the whole table is checked every
 * @check_every operations, and at the end.
 */
static void set_random(uint64_t seed, size_t n_ops, size_t max_items,
                       uint64_t (*pick)(uint64_t *rng), size_t check_every) {
        OffsetSet set = OFFSET_SET_INIT;
        Ref ref = { .v = calloc(n_ops + 1, sizeof(uint64_t)) };
        uint64_t rng = seed;
        size_t n_add = 0, n_remove = 0;

        assert_non_null(ref.v);
        for (size_t i = 0; i < n_ops; ++i) {
                uint64_t r = rng_next(&rng), x = pick(&rng);
                /* lean towards adds while small, towards removes near the cap */
                bool add = ref.n < max_items / 2 ? r % 3 != 0 : ref.n < max_items && r % 2;

                switch (r >> 61) {
                case 0:
                        /* a lookup of a value in the set, then of one drawn */
                        if (ref.n)
                                assert_true(offset_set_contains(&set,
                                                                ref.v[(r >> 8) % ref.n]));
                        assert_int_equal(offset_set_contains(&set, x), ref_contains(&ref, x));
                        break;
                case 1:
                        /* remove a member, so removals hit inside clusters */
                        if (ref.n) {
                                x = ref.v[(r >> 8) % ref.n];
                                assert_true(offset_set_remove(&set, x));
                                assert_true(ref_remove(&ref, x));
                                ++n_remove;
                        }
                        break;
                default:
                        if (add) {
                                bool added = ref_add(&ref, x);

                                assert_int_equal(offset_set_add(&set, x), added ? 1 : 0);
                                n_add += added;
                        } else {
                                bool removed = ref_remove(&ref, x);

                                assert_int_equal(offset_set_remove(&set, x), removed);
                                n_remove += removed;
                        }
                        break;
                }
                assert_int_equal(set.n_items, ref.n);
                if (i % check_every == 0)
                        set_check(&set);
        }
        set_check(&set);
        for (size_t i = 0; i < ref.n; ++i)
                assert_true(offset_set_contains(&set, ref.v[i]));
        /* the run did what it is for */
        assert_true(n_add > n_ops / 10);
        assert_true(n_remove > n_ops / 10);

        /* drain it completely, in random order */
        while (ref.n) {
                uint64_t x = ref.v[rng_next(&rng) % ref.n];

                assert_true(offset_set_remove(&set, x));
                assert_true(ref_remove(&ref, x));
                if (ref.n % check_every == 0)
                        set_check(&set);
        }
        set_check(&set);
        assert_int_equal(set.n_items, 0);
        offset_set_clear(&set);
        free(ref.v);
}

/* offsets as a pool hands them out: 8-aligned, below 64 KiB, many repeats */
static uint64_t pick_offset(uint64_t *rng) {
        return (rng_next(rng) % 8192) * 8;
}

static void test_random_offsets(void **state) {
        set_random(0x5eed, 100000, 3000, pick_offset, 97);
}

/* values homed in slots 60..63 and 0..3 of the first table: wrapping clusters */
static uint64_t wrap_values[32];

static uint64_t pick_wrap(uint64_t *rng) {
        return wrap_values[rng_next(rng) % 32];
}

static void test_random_wrap_clusters(void **state) {
        size_t n = 0;

        for (uint64_t v = 0; n < 32; v += 8) {
                size_t h = set_home(v, SET_SLOTS_FIRST);

                if (h >= 60 || h < 4)
                        wrap_values[n++] = v;
        }
        /* at most 32 members: the table stays at 64 slots, the runs wrap */
        set_random(0xc1a5, 100000, 32, pick_wrap, 1);
}

/* arbitrary 64-bit values (not only offsets), UINT64_MAX excluded */
static uint64_t pick_any(uint64_t *rng) {
        uint64_t x = rng_next(rng);

        return x == UINT64_MAX ? 0 : (x & 1 ? x : x % 4096);
}

static void test_random_any(void **state) {
        set_random(42, 20000, 500, pick_any, 13);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_add_remove),
                cmocka_unit_test(test_max_rejected),
                cmocka_unit_test(test_clear),
                cmocka_unit_test(test_grow),
                cmocka_unit_test(test_wrap_cluster),
                cmocka_unit_test(test_wrap_shift_rules),
                cmocka_unit_test(test_random_offsets),
                cmocka_unit_test(test_random_wrap_clusters),
                cmocka_unit_test(test_random_any),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
