/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz util: helpers of every fuzz target, in libFuzzer and replay builds
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "fuzz/fuzz.h"

/**
 * fuzz_fail() - report a broken property and abort
 * @fmt:        printf format of what broke
 *
 * libFuzzer saves the input that got here; a replay run dies with SIGABRT.
 */
void fuzz_fail(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        fprintf(stderr, "fuzz: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
        abort();
}
