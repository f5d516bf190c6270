/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Util-broker: run the real bus1d for one test
 *
 * Failures abort the test through cmocka's fail_msg(): a test that cannot
 * start its broker fails, it never skips.
 */

#include <dirent.h>
#include <errno.h>
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
#include "util-broker.h"

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
        if (!dir)
                fail_msg("opendir(%s): %s", path, strerror(errno));
        while ((d = readdir(dir)))
                if (d->d_name[0] != '.')
                        ++n;
        closedir(dir);
        /* opendir's own descriptor */
        return pid ? n : n - 1;
}

static bool test_broker_ready(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd, r;

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        close(fd);
        return r == 0;
}

/* at most this many extra arguments to test_broker_start_args() */
#define TEST_BROKER_ARGS_MAX 16

/**
 * test_broker_start() - start a private broker
 * @broker:     filled in
 */
void test_broker_start(TestBroker *broker) {
        test_broker_start_args(broker, NULL);
}

/**
 * test_broker_start_args() - start a private broker with extra arguments
 * @broker:     filled in
 * @args:       NULL-terminated arguments after --listen, or NULL for none
 *
 * The broker must come up: extra arguments that make it exit fail the test.
 */
void test_broker_start_args(TestBroker *broker, const char *const *args) {
        const char *exe = getenv("BUS1D_TEST_BROKER");
        struct timespec ts = { .tv_nsec = 2 * 1000 * 1000 };

        if (!exe)
                fail_msg("$BUS1D_TEST_BROKER is not set (run through meson test)");

        memset(broker, 0, sizeof(*broker));
        snprintf(broker->dir, sizeof(broker->dir), "/tmp/bus1d-test-XXXXXX");
        if (!mkdtemp(broker->dir))
                fail_msg("mkdtemp: %s", strerror(errno));
        snprintf(broker->path, sizeof(broker->path), "%s/socket", broker->dir);

        broker->pid = fork();
        if (broker->pid < 0)
                fail_msg("fork: %s", strerror(errno));
        if (broker->pid == 0) {
                const char *argv[TEST_BROKER_ARGS_MAX + 3] = { exe };
                size_t n = 1;
                char arg[160];

                snprintf(arg, sizeof(arg), "--listen=%s", broker->path);
                argv[n++] = arg;
                for (size_t i = 0; args && args[i] && i < TEST_BROKER_ARGS_MAX; ++i)
                        argv[n++] = args[i];
                argv[n] = NULL;
                execv(exe, (char *const *)argv);
                _exit(127);
        }

        /* the connect probe costs the broker one peer, which goes again */
        for (int i = 0; i < 5000 && !test_broker_ready(broker->path); ++i) {
                int status;

                if (waitpid(broker->pid, &status, WNOHANG) == broker->pid)
                        fail_msg("bus1d exited at start (status %d)", status);
                nanosleep(&ts, NULL);
        }
        if (!test_broker_ready(broker->path))
                fail_msg("bus1d did not come up on %s", broker->path);

        setenv("BUS1_ADDRESS", broker->path, 1);

        /* wait until the probe connections are gone, then take the baseline */
        for (int i = 0; i < 500; ++i) {
                unsigned int n = test_count_fds(broker->pid);

                nanosleep(&ts, NULL);
                if (n == test_count_fds(broker->pid)) {
                        broker->n_fds_idle = n;
                        break;
                }
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

        /* the broker notices closed clients asynchronously */
        for (int i = 0; i < 1000; ++i) {
                n = test_count_fds(broker->pid);
                if (n <= broker->n_fds_idle)
                        break;
                nanosleep(&ts, NULL);
        }
        assert_int_equal(n, broker->n_fds_idle);

        kill(broker->pid, SIGTERM);
        if (waitpid(broker->pid, &status, 0) != broker->pid)
                fail_msg("waitpid: %s", strerror(errno));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("bus1d did not exit cleanly (status 0x%x)", status);

        unlink(broker->path);
        rmdir(broker->dir);
        unsetenv("BUS1_ADDRESS");
}
