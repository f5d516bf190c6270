/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Bench-util: what every benchmark program shares
 *
 * Output: one line per case, "name size metric value" (bench_print()),
 * which bench/run collects over rounds. Timing: bench_run() calls a step
 * function in batches until a time budget ($BENCH_TIME_MS, default 300 ms,
 * after a warm-up of a tenth of it) is spent and returns nanoseconds per
 * step; $BENCH_STEPS=N runs exactly N steps instead (for strace -c and
 * callgrind). Brokers: bench_broker_start() runs the bus1d that Meson built
 * ($BUS1D, else the path compiled in) on a private socket, waits for its
 * READY=1, and points $BUS1_ADDRESS at it.
 *
 * A benchmark never asserts on time; failures of the calls it measures end
 * the program with a message and exit status 1 (bench_die()).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct BenchBroker {
        pid_t pid;
        char dir[64];
        char path[128];
} BenchBroker;

typedef void (*BenchStep)(void *userdata);

_Noreturn void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t bench_now_ns(void);
uint64_t bench_time_budget_ns(void);
double bench_run(BenchStep step, void *userdata);
void bench_print(const char *name, uint64_t size, const char *metric, double value);
bool bench_selected(int argc, char **argv, const char *name);

void bench_broker_start(BenchBroker *broker, const char *const *args);
void bench_broker_stop(BenchBroker *broker);
size_t bench_rss_anon_bytes(pid_t pid);
