/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Offset-set: open addressing, linear probing, backward-shift deletion
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "util/offset-set.h"

#define OFFSET_SET_EMPTY UINT64_MAX

static size_t offset_set_hash(uint64_t value, size_t n_slots) {
        /* Fibonacci hashing: offsets are multiples of 8 and cluster */
        return (size_t)((value * 0x9E3779B97F4A7C15ULL) >> 32) & (n_slots - 1);
}

/* the slot holding @value, or the empty slot where it would go */
static size_t offset_set_find(const OffsetSet *set, uint64_t value) {
        size_t i = offset_set_hash(value, set->n_slots);

        while (set->slots[i] != OFFSET_SET_EMPTY && set->slots[i] != value)
                i = (i + 1) & (set->n_slots - 1);
        return i;
}

static int offset_set_grow(OffsetSet *set) {
        size_t n = set->n_slots ? set->n_slots * 2 : 64;
        uint64_t *old = set->slots, *slots;
        size_t n_old = set->n_slots;

        if (n < set->n_slots || n > SIZE_MAX / sizeof(*slots))
                return -ENOMEM;
        slots = malloc(n * sizeof(*slots));
        if (!slots)
                return -ENOMEM;
        memset(slots, 0xff, n * sizeof(*slots));
        set->slots = slots;
        set->n_slots = n;
        for (size_t i = 0; i < n_old; ++i)
                if (old[i] != OFFSET_SET_EMPTY)
                        set->slots[offset_set_find(set, old[i])] = old[i];
        free(old);
        return 0;
}

/**
 * offset_set_clear() - remove everything and free the table
 * @set:        set
 */
void offset_set_clear(OffsetSet *set) {
        free(set->slots);
        *set = OFFSET_SET_INIT;
}

/**
 * offset_set_add() - add a value
 * @set:        set
 * @value:      any value but UINT64_MAX
 *
 * Return: 1 added, 0 already there, -EINVAL for UINT64_MAX, -ENOMEM.
 */
int offset_set_add(OffsetSet *set, uint64_t value) {
        size_t i;
        int r;

        if (value == OFFSET_SET_EMPTY)
                return -EINVAL;
        if ((set->n_items + 1) * 2 > set->n_slots) {
                r = offset_set_grow(set);
                if (r < 0)
                        return r;
        }
        i = offset_set_find(set, value);
        if (set->slots[i] == value)
                return 0;
        set->slots[i] = value;
        ++set->n_items;
        return 1;
}

/**
 * offset_set_remove() - remove a value
 * @set:        set
 * @value:      value
 *
 * Return: true if it was there.
 */
bool offset_set_remove(OffsetSet *set, uint64_t value) {
        size_t i, j, mask = set->n_slots - 1;

        if (!set->n_items || value == OFFSET_SET_EMPTY)
                return false;
        i = offset_set_find(set, value);
        if (set->slots[i] != value)
                return false;

        /* shift later members of the cluster back over the hole */
        for (j = (i + 1) & mask; set->slots[j] != OFFSET_SET_EMPTY; j = (j + 1) & mask) {
                size_t home = offset_set_hash(set->slots[j], set->n_slots);

                /* move j to i unless its home lies cyclically in (i, j] */
                if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
                        set->slots[i] = set->slots[j];
                        i = j;
                }
        }
        set->slots[i] = OFFSET_SET_EMPTY;
        --set->n_items;
        return true;
}

/**
 * offset_set_contains() - whether a value is in the set
 * @set:        set
 * @value:      value
 *
 * Return: true if it is.
 */
bool offset_set_contains(const OffsetSet *set, uint64_t value) {
        if (!set->n_items || value == OFFSET_SET_EMPTY)
                return false;
        return set->slots[offset_set_find(set, value)] == value;
}
