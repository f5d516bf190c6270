/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Offset-set: a set of 64-bit values that are never UINT64_MAX
 *
 * Open addressing with linear probing and backward-shift deletion, so no
 * tombstones pile up; the table doubles at 1/2 load. The client library
 * keeps the slice offsets it received in one, to tell a release it may hand
 * to the ring from one the broker must judge.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct OffsetSet {
        uint64_t *slots;        /* UINT64_MAX: empty */
        size_t n_slots;         /* 0 or a power of two */
        size_t n_items;
} OffsetSet;

#define OFFSET_SET_INIT ((OffsetSet){})

void offset_set_clear(OffsetSet *set);
int offset_set_add(OffsetSet *set, uint64_t value);
bool offset_set_remove(OffsetSet *set, uint64_t value);
bool offset_set_contains(const OffsetSet *set, uint64_t value);
