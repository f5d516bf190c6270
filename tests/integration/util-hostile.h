/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Util-hostile: the small helpers the hostile-client tests share
 *
 * Time in nanoseconds (util/clock.h), a sleep in milliseconds, and the
 * comparison that sorts round trips for their percentiles.
 */

#include <stdint.h>
#include <time.h>
#include "util/clock.h"

/* CLOCK_MONOTONIC in nanoseconds */
static inline uint64_t now_ns(void) {
        return clock_now_nsec(CLOCK_MONOTONIC);
}

static inline void sleep_ms(unsigned int ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

        nanosleep(&ts, NULL);
}

/* qsort(3) order of uint64_t */
static inline int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}
