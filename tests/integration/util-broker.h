/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Util-broker: run the real bus1d for one test
 *
 * test_broker_start() makes a private directory (mkdtemp), starts the
 * broker binary Meson names in $BUS1D_TEST_BROKER with --listen on a socket
 * there, waits until it accepts connections, and points $BUS1_ADDRESS at
 * it. test_broker_start_args() does the same with extra bus1d arguments
 * (--config=PATH, --max-slices=N, ...). test_broker_stop() sends SIGTERM, reaps it (a non-zero exit fails the
 * test), checks the broker closed every descriptor it had (by comparing
 * /proc/PID/fd before it exits with the baseline), and removes the
 * directory.
 */

#include <stdbool.h>
#include <sys/types.h>

typedef struct TestBroker {
        pid_t pid;
        char dir[64];
        char path[128];
        unsigned int n_fds_idle;        /* broker fds with no client */
} TestBroker;

void test_broker_start(TestBroker *broker);
void test_broker_start_args(TestBroker *broker, const char *const *args);
void test_broker_stop(TestBroker *broker);
unsigned int test_count_fds(pid_t pid);
