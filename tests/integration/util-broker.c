/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Util-broker: run the real bus1d for one test
 *
 * Failures abort the test through cmocka's fail_msg(): a test that cannot
 * start its broker fails, it never skips.
 *
 * The broker's descriptors are counted in /proc/PID/fd. bus1d makes itself
 * non-dumpable, so for a test that is not root that directory is closed:
 * then the count comes from the broker's STATUS report (`open_fds`, which
 * leaves out the asking connection's own), asked on the address of the
 * broker this process started with that PID.
 *
 * Every broker started here is killed when the test process exits, if it
 * still runs: a check that failed half-way (cmocka goes on with the next
 * case) must not leave a broker holding the test's stdout, which would
 * keep meson waiting until its timeout.
 */

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "ctl/ctl-client.h"
#include "proto/proto.h"
#include "util/json.h"
#include "util-broker.h"

/* the brokers this process started, to ask one its descriptor count */
#define TEST_BROKERS_MAX 16
static struct {
        pid_t pid;
        char path[128];
} test_brokers[TEST_BROKERS_MAX];

/* at exit: kill and reap the brokers we started that still run */
static void test_brokers_kill(void) {
        for (size_t i = 0; i < TEST_BROKERS_MAX; ++i) {
                pid_t pid = test_brokers[i].pid;

                if (pid > 0 && waitpid(pid, NULL, WNOHANG) == 0) {
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                }
                test_brokers[i].pid = 0;
        }
}

/* remember @broker, listening on @path (its own, or a --listen= of its arguments) */
static void test_broker_remember(const TestBroker *broker, const char *path) {
        static bool registered;
        size_t slot = 0;

        if (!registered && atexit(test_brokers_kill) == 0)
                registered = true;
        for (size_t i = 0; i < TEST_BROKERS_MAX; ++i) {
                if (test_brokers[i].pid == broker->pid || test_brokers[i].pid == 0 ||
                    kill(test_brokers[i].pid, 0) < 0) {
                        slot = i;
                        break;
                }
        }
        test_brokers[slot].pid = broker->pid;
        snprintf(test_brokers[slot].path, sizeof(test_brokers[slot].path), "%s", path);
}

/*
 * The open_fds of the STATUS report of the broker we started as @pid, or
 * UINT_MAX if it refused the connection (the UID is at its MaxConnections
 * until the broker has seen the test's last close): callers count again.
 */
static unsigned int test_count_fds_by_status(pid_t pid) {
        CtlClient client = CTL_CLIENT_NULL;
        JsonValue *v = NULL;
        const char *path = NULL;
        char *body = NULL;
        uint32_t format, flags;
        uint64_t n = UINT64_MAX;
        size_t len;
        int r;

        for (size_t i = 0; i < TEST_BROKERS_MAX; ++i)
                if (test_brokers[i].pid == pid)
                        path = test_brokers[i].path;
        if (!path)
                fail_msg("cannot read /proc/%d/fd, and no broker of ours has that PID", (int)pid);
        r = ctl_client_connect(&client, path);
        if (r >= 0)
                r = ctl_client_call(&client, PROTO_TYPE_CTL_STATUS, 0, &body, &len, &format,
                                    &flags);
        ctl_client_close(&client);
        if (r >= 0)
                r = json_parse(&v, body, len);
        if (r >= 0)
                n = json_get_u64(v, "open_fds", UINT64_MAX);
        json_free(v);
        free(body);
        if (r == -ECONNRESET || r == -EPIPE)
                return UINT_MAX;
        if (r < 0 || n == UINT64_MAX)
                fail_msg("no open_fds in the STATUS of the broker at %s: %s", path,
                         r < 0 ? strerror(-r) : "not reported");
        return (unsigned int)n;
}

/**
 * test_count_fds() - number of open descriptors of a process
 * @pid:        process, 0 for the caller
 *
 * Return: the count of entries in /proc/PID/fd.
 */
unsigned int test_count_fds(pid_t pid) {
        char path[64];
        struct dirent *d;
        unsigned int n = 0;
        DIR *dir;

        if (pid)
                snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
        else
                snprintf(path, sizeof(path), "/proc/self/fd");
        dir = opendir(path);
        if (!dir && pid && errno == EACCES)
                return test_count_fds_by_status(pid);
        if (!dir)
                fail_msg("opendir(%s): %s", path, strerror(errno));
        while ((d = readdir(dir)))
                if (d->d_name[0] != '.')
                        ++n;
        closedir(dir);
        /* opendir's own descriptor */
        return pid ? n : n - 1;
}

/**
 * test_broker_start() - start a private broker
 * @broker:     filled in
 */
void test_broker_start(TestBroker *broker) {
        test_broker_start_args(broker, NULL);
}

/* at most this many extra arguments to test_broker_start_args() */
#define TEST_BROKER_ARGS_MAX 16

/**
 * test_broker_start_args() - start a private broker with extra arguments
 * @broker:     filled in
 * @args:       NULL-terminated arguments after --listen, or NULL for none
 *
 * The broker must come up: extra arguments that make it exit fail the test.
 */
void test_broker_start_args(TestBroker *broker, const char *const *args) {
        char notify_path[96];
        int notify_fd;
        const char *exe = getenv("BUS1D_TEST_BROKER");

        if (!exe)
                fail_msg("$BUS1D_TEST_BROKER is not set (run through meson test)");

        memset(broker, 0, sizeof(*broker));
        snprintf(broker->dir, sizeof(broker->dir), "/tmp/bus1d-test-XXXXXX");
        if (!mkdtemp(broker->dir))
                fail_msg("mkdtemp: %s", strerror(errno));
        snprintf(broker->path, sizeof(broker->path), "%s/socket", broker->dir);
        snprintf(notify_path, sizeof(notify_path), "%s/notify", broker->dir);

        notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (notify_fd < 0)
                fail_msg("socket: %s", strerror(errno));
        {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };

                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", notify_path);
                if (bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                        fail_msg("bind: %s", strerror(errno));
        }

        broker->pid = fork();
        if (broker->pid < 0)
                fail_msg("fork: %s", strerror(errno));
        if (broker->pid > 0) {
                const char *path = broker->path;

                /* the last --listen= wins, as in getopt */
                for (size_t i = 0; args && args[i] && i < TEST_BROKER_ARGS_MAX; ++i)
                        if (strncmp(args[i], "--listen=", 9) == 0)
                                path = args[i] + 9;
                test_broker_remember(broker, path);
        }
        if (broker->pid == 0) {
                const char *argv[TEST_BROKER_ARGS_MAX + 3] = { exe };
                size_t n = 1;
                char arg[160];

                snprintf(arg, sizeof(arg), "--listen=%s", broker->path);
                argv[n++] = arg;
                for (size_t i = 0; args && args[i] && i < TEST_BROKER_ARGS_MAX; ++i)
                        argv[n++] = args[i];
                argv[n] = NULL;
                setenv("NOTIFY_SOCKET", notify_path, 1);
                execv(exe, (char *const *)argv);
                _exit(127);
        }

        /*
         * READY=1 on the notify socket: the broker listens. Waiting for it
         * (rather than probing with a connection) leaves the broker with no
         * connection ever made, so its descriptor count is the exact
         * baseline.
         */
        {
                struct pollfd p = { .fd = notify_fd, .events = POLLIN };
                char buf[256];
                ssize_t l;

                for (;;) {
                        int r = poll(&p, 1, 10000);

                        if (r < 0 && errno == EINTR)
                                continue;
                        if (r <= 0)
                                fail_msg("bus1d did not signal READY=1 on %s", broker->path);
                        l = recv(notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
                        if (l < 0)
                                continue;
                        buf[l] = 0;
                        if (strstr(buf, "READY=1"))
                                break;
                }
                close(notify_fd);
                unlink(notify_path);
        }

        setenv("BUS1_ADDRESS", broker->path, 1);

        /*
         * The broker may still be closing the socket it sent READY=1 with
         * (for long, when a loaded machine descheduled it right then): the
         * baseline is the least count over 100 ms, and over at least ten
         * samples (no client has connected yet).
         */
        broker->n_fds_idle = test_count_fds(broker->pid);
        for (int i = 0; i < 20; ++i) {
                struct timespec ts = { .tv_nsec = 5 * 1000 * 1000 };
                unsigned int n;

                nanosleep(&ts, NULL);
                n = test_count_fds(broker->pid);
                if (n < broker->n_fds_idle)
                        broker->n_fds_idle = n;
        }
}

/**
 * test_broker_stop() - stop the broker and check it leaked no descriptor
 * @broker:     a started broker; every client must be closed already
 */
void test_broker_stop(TestBroker *broker) {
        struct timespec ts = { .tv_nsec = 2 * 1000 * 1000 };
        unsigned int n = 0;
        int status;

        /*
         * The broker notices closed clients asynchronously, and closes the
         * fds they sent on a thread of its own: allow it 10 s on a loaded
         * machine (a leak never settles).
         */
        for (int i = 0; i < 5000; ++i) {
                n = test_count_fds(broker->pid);
                if (n <= broker->n_fds_idle)
                        break;
                nanosleep(&ts, NULL);
        }
        /*
         * A failed check must not leave the broker running (it holds our
         * stdout). Fewer than the baseline is no leak: a descriptor the
         * broker held for a moment at start (the socket it sent READY=1
         * with, on a loaded machine) was counted in it.
         */
        if (n > broker->n_fds_idle) {
                kill(broker->pid, SIGKILL);
                waitpid(broker->pid, &status, 0);
                unlink(broker->path);
                rmdir(broker->dir);
                fail_msg("bus1d held %u descriptors at the end, %u when idle", n,
                         broker->n_fds_idle);
        }

        kill(broker->pid, SIGTERM);
        if (waitpid(broker->pid, &status, 0) != broker->pid)
                fail_msg("waitpid: %s", strerror(errno));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("bus1d did not exit cleanly (status 0x%x)", status);

        unlink(broker->path);
        rmdir(broker->dir);
        unsetenv("BUS1_ADDRESS");
}
