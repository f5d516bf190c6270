/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Util-broker: run the real bus1d for one test
 *
 * test_broker_start() makes a private directory (mkdtemp), starts the
 * broker binary Meson names in $BUS1D_TEST_BROKER with --listen on a socket
 * there, waits until it accepts connections, and points $BUS1_ADDRESS at
 * it. test_broker_start_args() does the same with extra bus1d arguments
 * (--config=PATH, --max-slices=N, ...). test_broker_stop() sends SIGTERM,
 * reaps it (a non-zero exit fails the test), checks the broker closed every
 * descriptor it had (by comparing /proc/PID/fd before it exits with the
 * baseline), and removes the directory.
 *
 * test_broker_spawn() is the one spawner behind them, for the tests that
 * need the broker started otherwise (TestBrokerOptions: another UID, extra
 * environment, its stderr, an address of its own, a broker that is to fail
 * at start, a program of their own in its place such as a socket
 * activator). test_broker_terminate() stops such a broker without the
 * descriptor check, test_broker_kill() is for teardowns: it kills whatever
 * still runs and removes the directory. test_bus1d_run() runs bus1d to its
 * exit (--help, --check-config, a refused start) and collects its output.
 *
 * Every process started here is killed when the test program exits, if it
 * still runs, whichever check failed on the way.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

typedef struct TestBroker {
        pid_t pid;
        char dir[64];
        char path[128];
        unsigned int n_fds_idle;        /* broker fds with no client */
        /* with TestBrokerOptions; -1 (or "") where not asked for */
        int out_fd;                     /* read end of its stdout */
        int err_fd;                     /* read end of its stderr */
        int notify_fd;                  /* the socket $NOTIFY_SOCKET names, kept open */
        char notify[128];               /* its path */
        char exe[128];                  /* the copy of bus1d another UID runs */
        bool reaped;                    /* waited for here: @status says how it ended */
        int status;
} TestBroker;

typedef enum TestBrokerWait {
        /* READY=1 on $NOTIFY_SOCKET; exiting instead fails the test */
        TEST_BROKER_WAIT_READY,
        /* READY=1, or its exit: then test_broker_spawn() returns false */
        TEST_BROKER_WAIT_READY_OR_EXIT,
        /* none: return once it runs (it may never be ready, or only later) */
        TEST_BROKER_WAIT_NONE,
} TestBrokerWait;

/* how test_broker_spawn() runs it; all zero is test_broker_start() */
typedef struct TestBrokerOptions {
        /* bus1d --listen=PATH ARGS... */
        const char *const *args;        /* NULL-terminated, or NULL for none */
        const char *path;               /* where it listens, if not DIR/socket */
        bool no_listen;                 /* no --listen=: it finds its address itself
                                         * ($XDG_RUNTIME_DIR, LISTEN_FDS), @path says where */
        /* the child */
        const char *const *env;         /* "NAME=value" to set, "NAME" to unset */
        uid_t uid;                      /* run as this UID and GID, no supplementary
                                         * groups, from a copy of bus1d in DIR (which it
                                         * owns); 0: as the test */
        rlim_t nofile;                  /* RLIMIT_NOFILE, soft and hard; 0: inherited */
        bool stdio_only;                /* inherit nothing but stdio (as from systemd) */
        bool capture_stdout;            /* to a pipe: out_fd */
        bool capture_stderr;            /* to a pipe: err_fd */
        /*
         * In the child, last before the UID change and exec: a non-zero
         * return is its exit status. It may exec a program of its own
         * instead of bus1d (a socket activator): @exe is bus1d.
         */
        int (*child_setup)(const TestBroker *broker, const char *exe, void *userdata);
        void *userdata;
        /* the parent */
        TestBrokerWait wait;
        bool keep_notify;               /* $NOTIFY_SOCKET stays open: notify_fd */
        bool open_to_all;               /* DIR 0755, its sockets 0777: clients of any UID */
        bool no_fd_baseline;            /* n_fds_idle not counted (no test_broker_stop()) */
} TestBrokerOptions;

void test_broker_start(TestBroker *broker);
void test_broker_start_args(TestBroker *broker, const char *const *args);
void test_broker_stop(TestBroker *broker);
unsigned int test_count_fds(pid_t pid);

bool test_broker_spawn(TestBroker *broker, const TestBrokerOptions *opts);
int test_broker_terminate(TestBroker *broker);
int test_broker_wait(TestBroker *broker);
size_t test_broker_read_err(TestBroker *broker, char *out, size_t size);
int test_broker_remove(TestBroker *broker);
void test_broker_kill(TestBroker *broker);
unsigned int test_broker_fds_settle(const TestBroker *broker, unsigned int expected,
                                    unsigned int timeout_ms);
uint64_t test_broker_cpu_ticks(const TestBroker *broker);
uint64_t test_broker_cpu_ms(const TestBroker *broker);

int test_bus1d_run(const TestBrokerOptions *opts, const char *const *args, char *out,
                   size_t out_size, char *err, size_t err_size);
