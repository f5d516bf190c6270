/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Fuzz: what every fuzz target shares
 *
 * A target defines LLVMFuzzerTestOneInput(). Built with clang and
 * -fsanitize=fuzzer it is a libFuzzer binary (tools/fuzz); built with any
 * compiler and fuzz-replay.c it is a replay program that runs the inputs
 * named on its command line once each, which is how the test suite replays
 * the seed corpus. A target reports a broken property with fuzz_fail(),
 * which aborts, so libFuzzer saves the input and a replay test fails.
 */

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void fuzz_fail(const char *fmt, ...) __attribute__((__format__(__printf__, 1, 2), __noreturn__));
