/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Broker config: bus1d's configuration files and limit options end to end
 *
 * `bus1d --check-config` on good and bad files (exit status, the effective
 * limits it prints, errors naming file:line:column), layering of several
 * files and options, the per-user path (as root, checked in a child that
 * switched to an unprivileged UID), and a broker started with --config:
 * a UID override for the test's own UID shows in a new peer's PEER_QUERY
 * limits, and MaxConnections refuses the connection beyond it.
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "bus1/uapi.h"
#include "util-broker.h"

/* what one run of bus1d printed, and how it ended */
typedef struct Run {
        int status;
        char out[16384];
        char err[16384];
} Run;

/* how to run it: extra environment and credentials of the child */
typedef struct RunOptions {
        const char *xdg_config_home;    /* NULL: unset */
        uid_t uid;                      /* 0: keep the test's */
} RunOptions;

static const char *broker_exe(void) {
        const char *exe = getenv("BUS1D_TEST_BROKER");

        if (!exe)
                fail_msg("$BUS1D_TEST_BROKER is not set (run through meson test)");
        return exe;
}

/* read both pipes to their end, whichever the child fills first */
static void run_collect(Run *run, int out_fd, int err_fd) {
        struct pollfd p[2] = { { .fd = out_fd, .events = POLLIN },
                               { .fd = err_fd, .events = POLLIN } };
        char *bufs[2] = { run->out, run->err };
        size_t n[2] = {}, size = sizeof(run->out);

        while (p[0].fd >= 0 || p[1].fd >= 0) {
                assert_true(poll(p, 2, 10000) > 0);
                for (int i = 0; i < 2; ++i) {
                        ssize_t l;

                        if (p[i].fd < 0 || !p[i].revents)
                                continue;
                        l = read(p[i].fd, bufs[i] + n[i], size - 1 - n[i]);
                        if (l <= 0) {
                                close(p[i].fd);
                                p[i].fd = -1;
                                continue;
                        }
                        n[i] += (size_t)l;
                        assert_true(n[i] < size - 1);
                }
        }
        run->out[n[0]] = '\0';
        run->err[n[1]] = '\0';
}

/* bus1d with @args (NULL-terminated), to its exit */
static void run_bus1d(Run *run, const RunOptions *opts, const char *const *args) {
        const char *argv[32] = { broker_exe() };
        int out[2], err[2];
        size_t n = 1;
        pid_t pid;

        for (size_t i = 0; args[i]; ++i) {
                assert_true(n + 1 < sizeof(argv) / sizeof(argv[0]));
                argv[n++] = args[i];
        }
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        assert_int_equal(pipe2(err, O_CLOEXEC), 0);

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (dup2(out[1], STDOUT_FILENO) < 0 || dup2(err[1], STDERR_FILENO) < 0)
                        _exit(126);
                if (opts && opts->xdg_config_home)
                        setenv("XDG_CONFIG_HOME", opts->xdg_config_home, 1);
                else
                        unsetenv("XDG_CONFIG_HOME");
                if (opts && opts->uid && (setgroups(0, NULL) < 0 ||
                                          setresgid(opts->uid, opts->uid, opts->uid) < 0 ||
                                          setresuid(opts->uid, opts->uid, opts->uid) < 0))
                        _exit(125);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        close(out[1]);
        close(err[1]);
        run_collect(run, out[0], err[0]);
        assert_int_equal(waitpid(pid, &run->status, 0), pid);
}

static bool run_exited(const Run *run, int code) {
        return WIFEXITED(run->status) && WEXITSTATUS(run->status) == code;
}

static void assert_exit(const Run *run, int code) {
        if (!run_exited(run, code))
                fail_msg("bus1d: status 0x%x, expected exit %d\nstdout:\n%s\nstderr:\n%s",
                         run->status, code, run->out, run->err);
}

static void assert_contains(const char *text, const char *what) {
        if (!strstr(text, what))
                fail_msg("expected '%s' in:\n%s", what, text);
}

/* a private directory for files, world-readable so that another UID can read it */
typedef struct TestDir {
        char path[64];
        char files[8][PATH_MAX];
        unsigned int n_files;
} TestDir;

static void test_dir_make(TestDir *dir) {
        memset(dir, 0, sizeof(*dir));
        snprintf(dir->path, sizeof(dir->path), "/tmp/bus1d-test-config-XXXXXX");
        assert_non_null(mkdtemp(dir->path));
        assert_int_equal(chmod(dir->path, 0755), 0);
}

/* write @text to @name (which may contain one subdirectory) in @dir */
static const char *test_dir_file(TestDir *dir, const char *name, const char *text) {
        char base[sizeof(dir->path)], *path, *slash;
        FILE *f;

        assert_true(dir->n_files < 8);
        memcpy(base, dir->path, sizeof(base));
        path = dir->files[dir->n_files++];
        snprintf(path, PATH_MAX, "%s/%s", base, name);
        slash = strrchr(path, '/');
        *slash = '\0';
        if (mkdir(path, 0755) < 0)
                assert_int_equal(errno, EEXIST);
        *slash = '/';

        f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, true);
        assert_int_equal(fclose(f), 0);
        return path;
}

static void test_dir_remove(TestDir *dir) {
        while (dir->n_files > 0) {
                char *path = dir->files[--dir->n_files], *slash;

                unlink(path);
                /* a subdirectory goes once it is empty */
                slash = strrchr(path, '/');
                *slash = '\0';
                if (strcmp(path, dir->path))
                        rmdir(path);
        }
        assert_int_equal(rmdir(dir->path), 0);
}

static void test_check_good(void **state) {
        char arg[PATH_MAX + 16], text[512], expect[256];
        const char *path;
        TestDir dir;
        Run run;

        test_dir_make(&dir);
        snprintf(text, sizeof(text),
                 "# bus1d limits\n"
                 "[Limits]\n"
                 "MaxSlices=100\n"
                 "MaxInflightBytes=4M\n"
                 "\n"
                 "[UID %u]\n"
                 "MaxSlices=7\n"
                 "MaxConnections=3\n"
                 "[User root]\n"
                 "MaxHandles=99\n",
                 (unsigned int)getuid());
        path = test_dir_file(&dir, "bus1d.conf", text);
        snprintf(arg, sizeof(arg), "--config=%s", path);

        run_bus1d(&run, NULL, (const char *[]){ arg, "--check-config", NULL });
        assert_exit(&run, 0);
        assert_string_equal(run.err, "");
        snprintf(expect, sizeof(expect), "# %s: read\n", path);
        assert_contains(run.out, expect);
        assert_contains(run.out, "[Limits]\nMaxSlices=100\nMaxHandles=65536\n"
                                 "MaxInflightBytes=4194304\nMaxInflightFds=4096\n"
                                 "MaxConnections=1024\n");
        /* the override takes what it does not set from [Limits] */
        snprintf(expect, sizeof(expect), "[UID %u]\nMaxSlices=7\n", (unsigned int)getuid());
        assert_contains(run.out, expect);
        assert_contains(run.out, "MaxInflightBytes=4194304\nMaxInflightFds=4096\n"
                                 "MaxConnections=3\n");
        assert_contains(run.out, "MaxHandles=99\n");

        /* the output is itself a valid configuration */
        path = test_dir_file(&dir, "printed.conf", run.out);
        snprintf(arg, sizeof(arg), "--config=%s", path);
        run_bus1d(&run, NULL, (const char *[]){ arg, "--check-config", NULL });
        assert_exit(&run, 0);
        assert_contains(run.out, "[Limits]\nMaxSlices=100\n");

        test_dir_remove(&dir);
}

typedef struct BadVector {
        const char *text;
        const char *where;      /* after the path */
        const char *message;
} BadVector;

static void test_check_bad(void **state) {
        static const BadVector vectors[] = {
                { "[Limits]\nMaxSlices=100\n\nMaxSlice=5\n", ":4:1: ", "unknown key 'MaxSlice'" },
                { "# x\n[Limit]\n", ":2:2: ", "unknown section '[Limit]'" },
                { "MaxSlices=5\n", ":1:1: ", "outside a section" },
                { "[Limits]\nMaxInflightBytes=2G\n", ":2:18: ", "out of range" },
                { "[Limits]\nMaxSlices=0\n", ":2:11: ", "out of range" },
                { "[Limits]\nMaxHandles=99999999999999999999\n", ":2:12: ", "out of range" },
                { "[Limits]\nMaxConnections=ten\n", ":2:16: ", "not a decimal number" },
                { "[UID x]\n", ":1:6: ", "invalid UID" },
                { "[User no-such-user-bus1-test]\n", ":1:7: ", "unknown user" },
                { "[Limits]\nMaxSlices\n", ":2:1: ", "expected 'Key=value'" },
        };
        char arg[PATH_MAX + 16], expect[PATH_MAX + 32];
        TestDir dir;
        Run run;

        test_dir_make(&dir);
        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); ++i) {
                const char *path = test_dir_file(&dir, "bad.conf", vectors[i].text);

                snprintf(arg, sizeof(arg), "--config=%s", path);
                run_bus1d(&run, NULL, (const char *[]){ arg, "--check-config", NULL });
                assert_exit(&run, 1);
                snprintf(expect, sizeof(expect), "bus1d: %s%s", path, vectors[i].where);
                assert_contains(run.err, expect);
                assert_contains(run.err, vectors[i].message);
                /* nothing that looks like limits */
                assert_null(strstr(run.out, "[Limits]"));

                /* and a broker does not start on it, logging the same */
                run_bus1d(&run, NULL, (const char *[]){ arg, "--listen=/nonexistent/socket",
                                                        NULL });
                assert_exit(&run, 1);
                assert_contains(run.err, expect + strlen("bus1d: "));
                assert_contains(run.err, vectors[i].message);
                assert_null(strstr(run.err, "cannot listen"));
                test_dir_remove(&dir);
                test_dir_make(&dir);
        }
        test_dir_remove(&dir);
}

static void test_check_bad_options(void **state) {
        static const char *const bad[][2] = {
                { "--max-slices=0", "out of range" },
                { "--max-handles=2147483648", "out of range" },
                { "--max-inflight-fds=-1", "not a decimal number" },
                { "--max-connections=1K", "not a decimal number" },
                { "--max-inflight-bytes=2G", "out of range" },
                { "--max-inflight-bytes=1X", "suffix" },
                { "--config=/nonexistent/bus1d.conf", "/nonexistent/bus1d.conf: " },
                { "--config=/tmp", "/tmp: " },
        };
        Run run;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
                run_bus1d(&run, NULL, (const char *[]){ bad[i][0], "--check-config", NULL });
                assert_exit(&run, 1);
                assert_contains(run.err, bad[i][1]);
        }

        run_bus1d(&run, NULL, (const char *[]){ "--help", NULL });
        assert_exit(&run, 0);
        assert_contains(run.out, "--check-config");
        assert_contains(run.out, "--config=PATH");
        assert_contains(run.out, "--max-slices=N");
        assert_contains(run.out, "--max-handles=N");
        assert_contains(run.out, "--max-inflight-bytes=N");
        assert_contains(run.out, "--max-inflight-fds=N");
        assert_contains(run.out, "--max-connections=N");
}

/* several files and options: later files override key by key, options last */
static void test_check_layering(void **state) {
        char arg1[PATH_MAX + 16], arg2[PATH_MAX + 16];
        TestDir dir;
        Run run;

        test_dir_make(&dir);
        snprintf(arg1, sizeof(arg1), "--config=%s",
                 test_dir_file(&dir, "a.conf", "[Limits]\nMaxSlices=10\nMaxHandles=20\n"
                                               "[UID 4242]\nMaxSlices=11\nMaxHandles=21\n"));
        snprintf(arg2, sizeof(arg2), "--config=%s",
                 test_dir_file(&dir, "b.conf", "[Limits]\nMaxHandles=30\n"
                                               "[UID 4242]\nMaxHandles=31\n"));

        run_bus1d(&run, NULL, (const char *[]){ arg1, arg2, "--max-slices=40",
                                                "--max-inflight-fds=50", "--check-config",
                                                NULL });
        assert_exit(&run, 0);
        assert_contains(run.out, "[Limits]\nMaxSlices=40\nMaxHandles=30\n"
                                 "MaxInflightBytes=16777216\nMaxInflightFds=50\n");
        /* the per-UID section keeps what it sets, options included */
        assert_contains(run.out, "[UID 4242]\nMaxSlices=11\nMaxHandles=31\n"
                                 "MaxInflightBytes=16777216\nMaxInflightFds=50\n");
        test_dir_remove(&dir);
}

/*
 * Without --config: /etc/bus1/bus1d.conf, and $XDG_CONFIG_HOME's file
 * unless root. As root, also run the check as an unprivileged UID.
 */
static void test_check_default_paths(void **state) {
        RunOptions opts = {};
        char expect[PATH_MAX + 32];
        const char *user_file;
        TestDir dir;
        Run run;

        test_dir_make(&dir);
        user_file = test_dir_file(&dir, "bus1/bus1d.conf", "[Limits]\nMaxInflightFds=77\n");
        opts.xdg_config_home = dir.path;

        run_bus1d(&run, &opts, (const char *[]){ "--check-config", NULL });
        assert_exit(&run, 0);
        assert_contains(run.out, "# /etc/bus1/bus1d.conf: ");
        if (getuid() == 0) {
                /* root runs the system bus: no per-user file */
                assert_null(strstr(run.out, user_file));
                assert_null(strstr(run.out, "MaxInflightFds=77"));
                opts.uid = 65534;
                run_bus1d(&run, &opts, (const char *[]){ "--check-config", NULL });
                if (WIFEXITED(run.status) && WEXITSTATUS(run.status) >= 125) {
                        /* the build tree may be closed to other users */
                        print_message("cannot run bus1d as UID 65534 (exit %d); "
                                      "not checking the per-user file\n",
                                      WEXITSTATUS(run.status));
                        test_dir_remove(&dir);
                        return;
                }
        }
        assert_exit(&run, 0);
        snprintf(expect, sizeof(expect), "# %s: read\n", user_file);
        assert_contains(run.out, expect);
        assert_contains(run.out, "MaxInflightFds=77\n");

        /* --config replaces both */
        snprintf(expect, sizeof(expect), "--config=%s", user_file);
        run_bus1d(&run, &opts, (const char *[]){ expect, "--check-config", NULL });
        assert_exit(&run, 0);
        assert_null(strstr(run.out, "/etc/bus1/bus1d.conf"));
        assert_contains(run.out, "MaxInflightFds=77\n");

        test_dir_remove(&dir);
}

static int query(int peer, struct bus1_cmd_peer_reset *q) {
        memset(q, 0, sizeof(*q));
        return bus1_uapi_ioctl(peer, BUS1_CMD_PEER_QUERY, q);
}

/* a UID override for our own UID reaches a new peer's limits */
static void test_override_reaches_peer(void **state) {
        struct bus1_cmd_peer_reset q;
        char arg[PATH_MAX + 16], text[256];
        TestBroker broker;
        TestDir dir;
        int peer;

        test_dir_make(&dir);
        snprintf(text, sizeof(text),
                 "[Limits]\nMaxSlices=1000\n"
                 "[UID %u]\n"
                 "MaxSlices=7\n"
                 /* above the built-in default: the bus must not cap it */
                 "MaxHandles=100000\n",
                 (unsigned int)getuid());
        snprintf(arg, sizeof(arg), "--config=%s", test_dir_file(&dir, "bus1d.conf", text));

        test_broker_start_args(&broker, (const char *[]){ arg, "--max-inflight-fds=5",
                                                          "--max-inflight-bytes=1M", NULL });
        peer = bus1_uapi_open(NULL);
        assert_true(peer >= 0);
        assert_int_equal(query(peer, &q), 0);
        assert_int_equal(q.max_slices, 7);
        assert_int_equal(q.max_handles, 100000);
        assert_int_equal(q.max_inflight_bytes, 1024 * 1024);
        assert_int_equal(q.max_inflight_fds, 5);
        assert_int_equal(bus1_uapi_close(peer), 0);
        test_broker_stop(&broker);

        /* an override for another UID leaves ours at the defaults */
        snprintf(text, sizeof(text), "[UID %u]\nMaxSlices=7\n", (unsigned int)getuid() + 1);
        snprintf(arg, sizeof(arg), "--config=%s", test_dir_file(&dir, "other.conf", text));
        test_broker_start_args(&broker, (const char *[]){ arg, NULL });
        peer = bus1_uapi_open(NULL);
        assert_true(peer >= 0);
        assert_int_equal(query(peer, &q), 0);
        assert_int_equal(q.max_slices, 16384);
        assert_int_equal(q.max_handles, 65536);
        assert_int_equal(q.max_inflight_bytes, 16 * 1024 * 1024);
        assert_int_equal(q.max_inflight_fds, 4096);
        assert_int_equal(bus1_uapi_close(peer), 0);
        test_broker_stop(&broker);

        test_dir_remove(&dir);
}

/* bus1_uapi_open(), retried while the broker still counts a closed client */
static int open_retry(void) {
        struct timespec ts = { .tv_nsec = 2 * 1000 * 1000 };
        int peer = -1;

        for (int i = 0; i < 1000 && peer < 0; ++i) {
                peer = bus1_uapi_open(NULL);
                if (peer < 0)
                        nanosleep(&ts, NULL);
        }
        return peer;
}

/* MaxConnections: the connection beyond it is refused, and only that one */
static void test_max_connections(void **state) {
        struct bus1_cmd_peer_reset q;
        char arg[PATH_MAX + 16], text[128];
        TestBroker broker;
        TestDir dir;
        int a, b, c;

        test_dir_make(&dir);
        snprintf(text, sizeof(text), "[UID %u]\nMaxConnections=2\n", (unsigned int)getuid());
        snprintf(arg, sizeof(arg), "--config=%s", test_dir_file(&dir, "bus1d.conf", text));
        test_broker_start_args(&broker, (const char *[]){ arg, NULL });

        /* the start-up probe may still hold a connection for a moment */
        a = open_retry();
        assert_true(a >= 0);
        b = open_retry();
        assert_true(b >= 0);

        c = bus1_uapi_open(NULL);
        assert_true(c < 0);

        /* the two that fit still work */
        assert_int_equal(query(a, &q), 0);
        assert_int_equal(query(b, &q), 0);

        /* once one goes, a new one fits again */
        assert_int_equal(bus1_uapi_close(a), 0);
        c = open_retry();
        assert_true(c >= 0);
        assert_int_equal(query(c, &q), 0);

        assert_int_equal(bus1_uapi_close(b), 0);
        assert_int_equal(bus1_uapi_close(c), 0);
        test_broker_stop(&broker);
        test_dir_remove(&dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_check_good),
                cmocka_unit_test(test_check_bad),
                cmocka_unit_test(test_check_bad_options),
                cmocka_unit_test(test_check_layering),
                cmocka_unit_test(test_check_default_paths),
                cmocka_unit_test(test_override_reaches_peer),
                cmocka_unit_test(test_max_connections),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
