/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Clock: the current time of a clock, in one unit, in one place
 *
 * clock_gettime(2) through the vDSO: cheap enough for every turn of the
 * event loop. A clock that cannot be read (it always can, for the ones
 * used here) reads as 0.
 */

#include <stdint.h>
#include <time.h>

/* @clock now, in nanoseconds */
static inline uint64_t clock_now_nsec(clockid_t clock) {
        struct timespec ts;

        if (clock_gettime(clock, &ts) < 0)
                return 0;
        return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* @clock now, in microseconds */
static inline uint64_t clock_now_usec(clockid_t clock) {
        return clock_now_nsec(clock) / 1000ULL;
}
