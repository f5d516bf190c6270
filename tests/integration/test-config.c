/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Broker config: bus1d's configuration files and limit options end to end
 *
 * `bus1d --check-config` on good and bad files (exit status, the effective
 * limits it prints, errors naming file:line:column, values below a key's
 * smallest useful value), unknown keys and sections (warnings with the
 * nearest valid name, exit 0), layering of several files and options, the
 * system path (SYSCONFDIR from meson) and the per-user path (as root,
 * checked in a child that switched to an unprivileged UID), and a broker
 * started with --config: it starts despite an unknown key and logs the
 * warning, it refuses MaxInflightBytes=1, it works at every minimum, a UID
 * override for the test's own UID shows in a new peer's PEER_QUERY limits,
 * and MaxConnections refuses the connection beyond it.
 *
 * Every bus1d a test starts is recorded; the teardown kills what a failed
 * test left running.
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
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "bus1/uapi.h"
#include "broker/config.h"
#include "util-broker.h"

/*
 * What a test started and has not stopped yet, for the teardown to kill.
 * The TestBroker, TestDir and Spawned these point to are static in their
 * test, so that they outlive a failed test's stack frame.
 */
static TestBroker *test_broker = NULL;
/* and what it has not removed yet: its files, a spawned broker */
static void test_leftovers_remove(void);

static int teardown_kill(void **state) {
        test_leftovers_remove();
        if (test_broker) {
                test_broker_kill(test_broker);
                unsetenv("BUS1_ADDRESS");
                test_broker = NULL;
        }
        return 0;
}

/* test_broker_start_args(), recorded for the teardown (also if it fails) */
static void broker_start(TestBroker *broker, const char *const *args) {
        memset(broker, 0, sizeof(*broker));
        test_broker = broker;
        test_broker_start_args(broker, args);
}

static void broker_stop(TestBroker *broker) {
        test_broker_stop(broker);
        test_broker = NULL;
}

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

/* bus1d with @args (NULL-terminated), to its exit */
static void run_bus1d(Run *run, const RunOptions *opts, const char *const *args) {
        char xdg[PATH_MAX + 32];
        const char *env[] = { "XDG_CONFIG_HOME", NULL };

        if (opts && opts->xdg_config_home) {
                snprintf(xdg, sizeof(xdg), "XDG_CONFIG_HOME=%s", opts->xdg_config_home);
                env[0] = xdg;
        }
        run->status = test_bus1d_run(&(TestBrokerOptions){ .env = env,
                                                           .uid = opts ? opts->uid : 0 },
                                     args, run->out, sizeof(run->out), run->err,
                                     sizeof(run->err));
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

static int query(int peer, struct bus1_cmd_peer_reset *q) {
        memset(q, 0, sizeof(*q));
        return bus1_uapi_ioctl(peer, BUS1_CMD_PEER_QUERY, q);
}

/* a private directory for files, world-readable so that another UID can read it */
typedef struct TestDir {
        char path[64];
        char files[8][PATH_MAX];
        unsigned int n_files;
} TestDir;

/* the directory a test has not removed yet, for the teardown */
static TestDir *test_dir_live = NULL;

static void test_dir_make(TestDir *dir) {
        memset(dir, 0, sizeof(*dir));
        snprintf(dir->path, sizeof(dir->path), "/tmp/bus1d-test-config-XXXXXX");
        assert_non_null(mkdtemp(dir->path));
        test_dir_live = dir;
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

/* remove the files and the directory; rmdir(2)'s result */
static int test_dir_clean(TestDir *dir) {
        while (dir->n_files > 0) {
                char *path = dir->files[--dir->n_files], *slash;

                unlink(path);
                /* a subdirectory goes once it is empty */
                slash = strrchr(path, '/');
                *slash = '\0';
                if (strcmp(path, dir->path))
                        rmdir(path);
        }
        return rmdir(dir->path);
}

static void test_dir_remove(TestDir *dir) {
        test_dir_live = NULL;
        assert_int_equal(test_dir_clean(dir), 0);
}

static void test_check_good(void **state) {
        char arg[PATH_MAX + 16], text[512], expect[256];
        const char *path;
        static TestDir dir;
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
                { "MaxSlices=5\n", ":1:1: ", "outside a section" },
                { "[Limits]\nMaxInflightBytes=2G\n", ":2:18: ", "out of range" },
                { "[Limits]\nMaxSlices=0\n", ":2:11: ",
                  "MaxSlices=0 is below the smallest useful value 2 (one message: " },
                { "[Limits]\nMaxInflightBytes=1\n", ":2:18: ",
                  "MaxInflightBytes=1 is below the smallest useful value 4096 (one page: " },
                { "[UID 5]\nMaxHandles=1\n", ":2:12: ",
                  "MaxHandles=1 is below the smallest useful value 2 (one handle: " },
                { "[Limits]\nMaxInflightFds=1\n", ":2:16: ",
                  "MaxInflightFds=1 is below the smallest useful value 2 (one fd: " },
                { "[Limits]\nMaxConnections=0\n", ":2:16: ",
                  "MaxConnections=0 is below the smallest useful value 1 (one connection)" },
                /* an unknown key or section before it does not hide the error */
                { "[Limit]\n[Limits]\nFoo=1\nMaxSlices=x\n", ":4:11: ", "invalid value 'x'" },
                { "[Limits]\n[Limits\n", ":2:1: ", "missing ']'" },
                { "[Limits]\nMaxHandles=99999999999999999999\n", ":2:12: ", "out of range" },
                { "[Limits]\nMaxConnections=ten\n", ":2:16: ", "not a decimal number" },
                { "[UID x]\n", ":1:6: ", "invalid UID" },
                { "[User no-such-user-bus1-test]\n", ":1:7: ", "unknown user" },
                { "[Limits]\nMaxSlices\n", ":2:1: ", "expected 'Key=value'" },
        };
        char arg[PATH_MAX + 16], expect[PATH_MAX + 32];
        static TestDir dir;
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
                { "--max-slices=0", "--max-slices=0: below the smallest useful value 2 (" },
                { "--max-slices=1", "--max-slices=1: below the smallest useful value 2 (" },
                { "--max-handles=1", "--max-handles=1: below the smallest useful value 2 (" },
                { "--max-inflight-bytes=1",
                  "--max-inflight-bytes=1: below the smallest useful value 4096 (one page" },
                { "--max-inflight-bytes=3K", "below the smallest useful value 4096" },
                { "--max-inflight-fds=1",
                  "--max-inflight-fds=1: below the smallest useful value 2 (" },
                { "--max-connections=0",
                  "--max-connections=0: below the smallest useful value 1 (" },
                { "--max-slices=2147483648", "out of range (2 to 2147483647)" },
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

        /* the minimums are minimums */
        run_bus1d(&run, NULL, (const char *[]){ "--max-slices=2", "--max-handles=2",
                                                "--max-inflight-bytes=4K",
                                                "--max-inflight-fds=2", "--max-connections=1",
                                                "--config=/dev/null", "--check-config", NULL });
        assert_exit(&run, 0);
        assert_contains(run.out, "[Limits]\nMaxSlices=2\nMaxHandles=2\nMaxInflightBytes=4096\n"
                                 "MaxInflightFds=2\nMaxConnections=1\n");

        run_bus1d(&run, NULL, (const char *[]){ "--help", NULL });
        assert_exit(&run, 0);
        /* the system file it reads, where meson installs it */
        assert_contains(run.out, " " SYSCONFDIR "/bus1/bus1d.conf and\n");
        assert_contains(run.out, "--check-config");
        assert_contains(run.out, "--config=PATH");
        assert_contains(run.out, "--max-slices=N");
        assert_contains(run.out, "--max-handles=N");
        assert_contains(run.out, "--max-inflight-bytes=N");
        assert_contains(run.out, "--max-inflight-fds=N");
        assert_contains(run.out, "--max-connections=N");
}

typedef struct WarnVector {
        const char *text;
        const char *warning;    /* after the path */
} WarnVector;

/*
 * Unknown keys and sections: --check-config says so on stderr, as warnings
 * naming file, line, column and the nearest valid name, applies the rest
 * and exits 0.
 */
static void test_check_warnings(void **state) {
        static const WarnVector vectors[] = {
                { "[Limits]\nMaxSlices=100\n\nMaxSlice=5\n",
                  ":4:1: warning: unknown key 'MaxSlice' ignored; did you mean MaxSlices?\n" },
                { "[Limits]\nMaxSlices=100\nMaxInflightByte=1M\n",
                  ":3:1: warning: unknown key 'MaxInflightByte' ignored; "
                  "did you mean MaxInflightBytes?\n" },
                { "[Limits]\nMaxSlices=100\nFoo=1\n",
                  ":3:1: warning: unknown key 'Foo' ignored (keys: MaxSlices, " },
                { "# x\n[Limit]\nMaxSlices=7\n[Limits]\nMaxSlices=100\n",
                  ":2:2: warning: unknown section '[Limit]' ignored with its keys; "
                  "did you mean [Limits]?\n" },
        };
        char arg[PATH_MAX + 16], expect[PATH_MAX + 128], text[2048];
        static TestDir dir;
        Run run;
        size_t n;

        test_dir_make(&dir);
        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); ++i) {
                const char *path = test_dir_file(&dir, "warn.conf", vectors[i].text);

                snprintf(arg, sizeof(arg), "--config=%s", path);
                run_bus1d(&run, NULL, (const char *[]){ arg, "--check-config", NULL });
                assert_exit(&run, 0);
                snprintf(expect, sizeof(expect), "bus1d: %s%s", path, vectors[i].warning);
                assert_contains(run.err, expect);
                /* one line: the warning */
                assert_null(strchr(strchr(run.err, '\n') + 1, '\n'));
                /* the rest of the file counts */
                assert_contains(run.out, "[Limits]\nMaxSlices=100\nMaxHandles=65536\n");
                test_dir_remove(&dir);
                test_dir_make(&dir);
        }

        /* a file full of them: CONFIG_WARNINGS_MAX lines, then how many more */
        n = (size_t)snprintf(text, sizeof(text), "[Limits]\n");
        for (unsigned int i = 0; i < CONFIG_WARNINGS_MAX + 3; ++i)
                n += (size_t)snprintf(text + n, sizeof(text) - n, "Foo%u=1\n", i);
        assert_true(n < sizeof(text));
        snprintf(arg, sizeof(arg), "--config=%s", test_dir_file(&dir, "many.conf", text));
        run_bus1d(&run, NULL, (const char *[]){ arg, "--check-config", NULL });
        assert_exit(&run, 0);
        assert_contains(run.err, "unknown key 'Foo0' ignored");
        assert_null(strstr(run.err, "'Foo32'"));
        assert_contains(run.err, "bus1d: warning: 3 more warnings not shown");
        test_dir_remove(&dir);
}

/* a broker started by hand: its stderr in a pipe, and what it wrote so far */
typedef struct Spawned {
        TestBroker broker;
        char err[16384];
        size_t n_err;
} Spawned;

/* the broker spawn_broker() started and spawned_reap() has not reaped */
static Spawned *test_spawned = NULL;

static void test_leftovers_remove(void) {
        if (test_dir_live) {
                test_dir_clean(test_dir_live);
                test_dir_live = NULL;
        }
        if (test_spawned) {
                test_broker_kill(&test_spawned->broker);
                test_spawned = NULL;
        }
}

/* bus1d --listen=DIR/socket --log-target=stderr @args, not waited for */
static void spawn_broker(Spawned *b, const char *const *args) {
        const char *argv[16] = { "--log-target=stderr" };
        size_t n = 1;

        for (size_t i = 0; args[i]; ++i) {
                assert_true(n + 1 < sizeof(argv) / sizeof(argv[0]));
                argv[n++] = args[i];
        }
        memset(b, 0, sizeof(*b));
        test_spawned = b;
        test_broker_spawn(&b->broker, &(TestBrokerOptions){
                .args = argv,
                .capture_stderr = true,
                .wait = TEST_BROKER_WAIT_NONE,
        });
}

/*
 * Read the broker's stderr until it says @what (true), or closes it
 * (false, with @what NULL: read to the end); 10 s at most.
 */
static bool spawned_read_until(Spawned *b, const char *what) {
        struct pollfd p = { .fd = b->broker.err_fd, .events = POLLIN };

        while (!what || !strstr(b->err, what)) {
                ssize_t l;
                int r = poll(&p, 1, 10000);

                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        fail_msg("bus1d wrote nothing for 10 s; so far:\n%s", b->err);
                l = read(b->broker.err_fd, b->err + b->n_err, sizeof(b->err) - 1 - b->n_err);
                if (l < 0 && errno == EINTR)
                        continue;
                if (l <= 0)
                        return false;
                b->n_err += (size_t)l;
                b->err[b->n_err] = '\0';
                assert_true(b->n_err < sizeof(b->err) - 1);
        }
        return true;
}

/* the broker exits (or is stopped with SIGTERM first); its status */
static int spawned_reap(Spawned *b, bool terminate) {
        int status;

        if (terminate)
                assert_int_equal(kill(b->broker.pid, SIGTERM), 0);
        spawned_read_until(b, NULL);
        status = test_broker_wait(&b->broker);
        test_spawned = NULL;
        /* nothing else left in its directory */
        assert_int_equal(test_broker_remove(&b->broker), 0);
        return status;
}

/*
 * An unknown key does not stop the broker: it logs a warning with the
 * file, line and the key it probably meant, applies the rest and serves.
 */
static void test_broker_unknown_key_starts(void **state) {
        struct bus1_cmd_peer_reset q;
        char arg[PATH_MAX + 16], expect[PATH_MAX + 128];
        const char *path;
        static Spawned b;
        static TestDir dir;
        int peer, status;

        test_dir_make(&dir);
        path = test_dir_file(&dir, "bus1d.conf",
                             "[Limits]\nMaxInflightByte=1M\nMaxSlices=100\n[Limit]\n");
        snprintf(arg, sizeof(arg), "--config=%s", path);
        spawn_broker(&b, (const char *[]){ arg, NULL });

        if (!spawned_read_until(&b, "listening on"))
                fail_msg("bus1d exited instead of listening:\n%s", b.err);
        /* <4>: logged as a warning */
        snprintf(expect, sizeof(expect),
                 "<4>bus1d: configuration: %s:2:1: unknown key 'MaxInflightByte' ignored; "
                 "did you mean MaxInflightBytes?\n", path);
        assert_contains(b.err, expect);
        snprintf(expect, sizeof(expect),
                 "<4>bus1d: configuration: %s:4:2: unknown section '[Limit]' ignored with "
                 "its keys; did you mean [Limits]?\n", path);
        assert_contains(b.err, expect);
        assert_null(strstr(b.err, "<3>"));

        /* it serves, with what the rest of the file says */
        setenv("BUS1_ADDRESS", b.broker.path, 1);
        peer = bus1_uapi_open(NULL);
        assert_true(peer >= 0);
        assert_int_equal(query(peer, &q), 0);
        assert_int_equal(q.max_slices, 100);
        assert_int_equal(q.max_inflight_bytes, 16 * 1024 * 1024);
        assert_int_equal(bus1_uapi_close(peer), 0);
        unsetenv("BUS1_ADDRESS");

        status = spawned_reap(&b, true);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("bus1d: status 0x%x after SIGTERM:\n%s", status, b.err);
        test_dir_remove(&dir);
}

/* a value below a key's minimum stops the broker before it listens, saying the minimum */
static void test_broker_below_minimum_exits(void **state) {
        char arg[PATH_MAX + 16], expect[PATH_MAX + 128];
        const char *path;
        static Spawned b;
        static TestDir dir;
        int status;

        test_dir_make(&dir);
        path = test_dir_file(&dir, "bus1d.conf", "[Limits]\nMaxInflightBytes=1\n");
        snprintf(arg, sizeof(arg), "--config=%s", path);
        spawn_broker(&b, (const char *[]){ arg, NULL });

        if (spawned_read_until(&b, "listening on"))
                fail_msg("bus1d started with MaxInflightBytes=1:\n%s", b.err);
        status = spawned_reap(&b, false);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 1)
                fail_msg("bus1d: status 0x%x, expected exit 1:\n%s", status, b.err);
        snprintf(expect, sizeof(expect),
                 "<3>bus1d: configuration: %s:2:18: MaxInflightBytes=1 is below the "
                 "smallest useful value 4096 (one page: ", path);
        assert_contains(b.err, expect);

        /* the same as an option */
        spawn_broker(&b, (const char *[]){ "--max-inflight-bytes=1", NULL });
        status = spawned_reap(&b, false);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 1)
                fail_msg("bus1d: status 0x%x, expected exit 1:\n%s", status, b.err);
        assert_contains(b.err, "--max-inflight-bytes=1: below the smallest useful value 4096");
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

/*
 * At every minimum the bus is of use: a peer (the only connection its UID
 * may have) owns a node, and sends itself one message of half a page (2040
 * bytes and the 8 of its fd area) with an fd, which it receives; a slice
 * any larger would not fit.
 */
static void test_broker_at_minimums(void **state) {
        static char data[2049];
        struct bus1_cmd_recv recv = { .max_offset = 4096 };
        uint64_t node = 0x100;
        struct iovec vec = { .iov_base = data, .iov_len = sizeof(data) };
        struct bus1_cmd_send send = {
                .ptr_destinations = (uintptr_t)&node,
                .n_destinations = 1,
                .ptr_vecs = (uintptr_t)&vec,
                .n_vecs = 1,
        };
        static TestBroker broker;
        int peer, fd;

        broker_start(&broker, (const char *[]){ "--max-slices=2", "--max-handles=2",
                                                "--max-inflight-bytes=4096",
                                                "--max-inflight-fds=2", "--max-connections=1",
                                                "--config=/dev/null", NULL });
        /* the one connection allowed: a probe of the start (not root) may still hold it */
        peer = open_retry();
        assert_true(peer >= 0);

        /* 2049 bytes take a slice of 2056, more than half of 4096 */
        assert_int_equal(bus1_uapi_ioctl(peer, BUS1_CMD_SEND, &send), -EDQUOT);

        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        vec.iov_len = 2040;
        send.ptr_fds = (uintptr_t)&fd;
        send.n_fds = 1;
        assert_int_equal(bus1_uapi_ioctl(peer, BUS1_CMD_SEND, &send), 0);
        close(fd);

        assert_int_equal(bus1_uapi_ioctl(peer, BUS1_CMD_RECV, &recv), 0);
        assert_int_equal(recv.msg.type, BUS1_MSG_DATA);
        assert_int_equal(recv.msg.destination, node);
        assert_int_equal(recv.msg.n_bytes, 2040);
        assert_int_equal(bus1_uapi_ioctl(peer, BUS1_CMD_SLICE_RELEASE, &recv.msg.offset), 0);

        assert_int_equal(bus1_uapi_close(peer), 0);
        broker_stop(&broker);
}

/* several files and options: later files override key by key, options last */
static void test_check_layering(void **state) {
        char arg1[PATH_MAX + 16], arg2[PATH_MAX + 16];
        static TestDir dir;
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
 * Without --config: SYSCONFDIR/bus1/bus1d.conf, and $XDG_CONFIG_HOME's file
 * unless root. As root, also run the check as an unprivileged UID.
 */
static void test_check_default_paths(void **state) {
        RunOptions opts = {};
        char expect[PATH_MAX + 32];
        const char *user_file;
        static TestDir dir;
        Run run;

        test_dir_make(&dir);
        user_file = test_dir_file(&dir, "bus1/bus1d.conf", "[Limits]\nMaxInflightFds=77\n");
        opts.xdg_config_home = dir.path;

        run_bus1d(&run, &opts, (const char *[]){ "--check-config", NULL });
        assert_exit(&run, 0);
        assert_contains(run.out, "# " SYSCONFDIR "/bus1/bus1d.conf: ");
        assert_contains(run.out, "# " CONFIG_SYSTEM_PATH ": ");
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
        assert_null(strstr(run.out, CONFIG_SYSTEM_PATH));
        assert_contains(run.out, "MaxInflightFds=77\n");

        test_dir_remove(&dir);
}

/*
 * The user's own file where the user cannot look (a configuration folder
 * of someone else's, as with a $HOME of root's): a warning, and the broker
 * goes on as if there were none. Needs root, to be someone else.
 */
static void test_user_file_unreadable(void **state) {
        RunOptions opts = {};
        static TestDir dir;
        Run run;

        if (getuid() != 0) {
                print_message("not root: cannot make a folder the user cannot read; skipping\n");
                skip();
        }
        test_dir_make(&dir);
        test_dir_file(&dir, "bus1/bus1d.conf", "[Limits]\nMaxInflightFds=77\n");
        assert_int_equal(chmod(dir.path, 0700), 0);
        opts.xdg_config_home = dir.path;
        opts.uid = 65534;
        run_bus1d(&run, &opts, (const char *[]){ "--check-config", NULL });
        if (WIFEXITED(run.status) && WEXITSTATUS(run.status) >= 125) {
                print_message("cannot run bus1d as UID 65534 (exit %d); skipping\n",
                              WEXITSTATUS(run.status));
                test_dir_remove(&dir);
                skip();
        }
        assert_exit(&run, 0);
        assert_contains(run.err, "warning: cannot read it (Permission denied); ignored");
        assert_contains(run.out, ": not readable\n");
        assert_null(strstr(run.out, "MaxInflightFds=77"));
        test_dir_remove(&dir);
}

/* a UID override for our own UID reaches a new peer's limits */
static void test_override_reaches_peer(void **state) {
        struct bus1_cmd_peer_reset q;
        char arg[PATH_MAX + 16], text[256];
        static TestBroker broker;
        static TestDir dir;
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

        broker_start(&broker, (const char *[]){ arg, "--max-inflight-fds=5",
                                                "--max-inflight-bytes=1M", NULL });
        peer = bus1_uapi_open(NULL);
        assert_true(peer >= 0);
        assert_int_equal(query(peer, &q), 0);
        assert_int_equal(q.max_slices, 7);
        assert_int_equal(q.max_handles, 100000);
        assert_int_equal(q.max_inflight_bytes, 1024 * 1024);
        assert_int_equal(q.max_inflight_fds, 5);
        assert_int_equal(bus1_uapi_close(peer), 0);
        broker_stop(&broker);

        /* an override for another UID leaves ours at the defaults */
        snprintf(text, sizeof(text), "[UID %u]\nMaxSlices=7\n", (unsigned int)getuid() + 1);
        snprintf(arg, sizeof(arg), "--config=%s", test_dir_file(&dir, "other.conf", text));
        broker_start(&broker, (const char *[]){ arg, NULL });
        peer = bus1_uapi_open(NULL);
        assert_true(peer >= 0);
        assert_int_equal(query(peer, &q), 0);
        assert_int_equal(q.max_slices, 16384);
        assert_int_equal(q.max_handles, 65536);
        assert_int_equal(q.max_inflight_bytes, 16 * 1024 * 1024);
        assert_int_equal(q.max_inflight_fds, 4096);
        assert_int_equal(bus1_uapi_close(peer), 0);
        broker_stop(&broker);

        test_dir_remove(&dir);
}

/* MaxConnections: the connection beyond it is refused, and only that one */
static void test_max_connections(void **state) {
        struct bus1_cmd_peer_reset q;
        char arg[PATH_MAX + 16], text[128];
        static TestBroker broker;
        static TestDir dir;
        int a, b, c;

        test_dir_make(&dir);
        snprintf(text, sizeof(text), "[UID %u]\nMaxConnections=2\n", (unsigned int)getuid());
        snprintf(arg, sizeof(arg), "--config=%s", test_dir_file(&dir, "bus1d.conf", text));
        broker_start(&broker, (const char *[]){ arg, NULL });

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
        broker_stop(&broker);
        test_dir_remove(&dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_check_good, teardown_kill),
                cmocka_unit_test_teardown(test_check_bad, teardown_kill),
                cmocka_unit_test_teardown(test_check_bad_options, teardown_kill),
                cmocka_unit_test_teardown(test_check_warnings, teardown_kill),
                cmocka_unit_test_teardown(test_broker_unknown_key_starts, teardown_kill),
                cmocka_unit_test_teardown(test_broker_below_minimum_exits, teardown_kill),
                cmocka_unit_test_teardown(test_broker_at_minimums, teardown_kill),
                cmocka_unit_test_teardown(test_check_layering, teardown_kill),
                cmocka_unit_test_teardown(test_check_default_paths, teardown_kill),
                cmocka_unit_test_teardown(test_user_file_unreadable, teardown_kill),
                cmocka_unit_test_teardown(test_override_reaches_peer, teardown_kill),
                cmocka_unit_test_teardown(test_max_connections, teardown_kill),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
