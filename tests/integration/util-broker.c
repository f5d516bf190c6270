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
 * Every process started here is killed when the test process exits, if it
 * still runs: a check that failed half-way (cmocka goes on with the next
 * case) must not leave a broker holding the test's stdout, which would
 * keep meson waiting until its timeout. A start that fails kills its
 * broker at once.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

/* at most this many arguments for bus1d */
#define TEST_BROKER_ARGS_MAX 32

static const char *test_broker_exe(void) {
        const char *exe = getenv("BUS1D_TEST_BROKER");

        if (!exe)
                fail_msg("$BUS1D_TEST_BROKER is not set (run through meson test)");
        return exe;
}

/* a datagram socket bound to @path, or -errno */
static int test_bind_dgram(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        return fd;
}

/* copy @from to @to, mode 0755; -errno on failure */
static int test_copy_exe(const char *from, const char *to) {
        char buf[65536];
        int in, out, r = 0;
        ssize_t l;

        in = open(from, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return -errno;
        out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
        if (out < 0) {
                r = -errno;
                close(in);
                return r;
        }
        while ((l = read(in, buf, sizeof(buf))) > 0) {
                if (write(out, buf, (size_t)l) != l) {
                        r = -EIO;
                        break;
                }
        }
        if (l < 0)
                r = -errno;
        close(in);
        if (close(out) < 0 && r == 0)
                r = -errno;
        return r;
}

/* in the child: set up as @opts says and exec; never returns */
static void test_broker_child(const TestBroker *broker, const TestBrokerOptions *opts,
                              const char *exe, int out_fd, int err_fd) {
        const char *argv[TEST_BROKER_ARGS_MAX + 3] = { exe };
        char listen[160];
        size_t n = 1;
        int r;

        if ((out_fd >= 0 && dup2(out_fd, STDOUT_FILENO) < 0) ||
            (err_fd >= 0 && dup2(err_fd, STDERR_FILENO) < 0))
                _exit(126);
        if (opts->stdio_only && close_range(3, ~0U, 0) < 0)
                _exit(126);

        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDNAMES");
        if (broker->notify[0])
                setenv("NOTIFY_SOCKET", broker->notify, 1);
        else
                unsetenv("NOTIFY_SOCKET");
        for (size_t i = 0; opts->env && opts->env[i]; ++i) {
                const char *eq = strchr(opts->env[i], '=');
                char name[128];

                if (!eq) {
                        unsetenv(opts->env[i]);
                        continue;
                }
                snprintf(name, sizeof(name), "%.*s", (int)(eq - opts->env[i]), opts->env[i]);
                setenv(name, eq + 1, 1);
        }
        if (opts->nofile) {
                struct rlimit rl = { .rlim_cur = opts->nofile, .rlim_max = opts->nofile };

                if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        _exit(126);
        }
        if (opts->child_setup) {
                r = opts->child_setup(broker, exe, opts->userdata);
                if (r)
                        _exit(r);
        }
        if (opts->uid && (setgroups(0, NULL) < 0 ||
                          setresgid(opts->uid, opts->uid, opts->uid) < 0 ||
                          setresuid(opts->uid, opts->uid, opts->uid) < 0))
                _exit(125);

        if (!opts->no_listen) {
                snprintf(listen, sizeof(listen), "--listen=%s", broker->path);
                argv[n++] = listen;
        }
        for (size_t i = 0; opts->args && opts->args[i]; ++i)
                argv[n++] = opts->args[i];
        argv[n] = NULL;
        execv(exe, (char *const *)argv);
        _exit(127);
}

/* kill a broker that failed to start and remove what it had; then fail */
static void test_broker_give_up(TestBroker *broker, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void test_broker_give_up(TestBroker *broker, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        /* (the message may name what test_broker_kill() removes) */
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        test_broker_kill(broker);
        fail_msg("%s", msg);
}

/*
 * READY=1 on the notify socket, or the broker's exit (then false, with
 * broker->status). 10 s at most.
 */
static bool test_broker_wait_ready(TestBroker *broker) {
        struct pollfd p = { .fd = broker->notify_fd, .events = POLLIN };
        char buf[256];

        for (int i = 0; i < 1000; ++i) {
                int r = poll(&p, 1, 10);

                if (r < 0 && errno != EINTR)
                        test_broker_give_up(broker, "poll: %s", strerror(errno));
                if (r > 0) {
                        ssize_t l = recv(broker->notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

                        if (l > 0) {
                                buf[l] = 0;
                                if (strstr(buf, "READY=1"))
                                        return true;
                        }
                        continue;
                }
                if (waitpid(broker->pid, &broker->status, WNOHANG) == broker->pid) {
                        broker->reaped = true;
                        return false;
                }
        }
        test_broker_give_up(broker, "bus1d did not signal READY=1 on %s", broker->path);
        return false;
}

/* the broker's idle descriptors, before any client connected */
static void test_broker_count_idle(TestBroker *broker) {
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

/* test_broker_spawn(), with stderr into the stdout pipe if @merge_stderr */
static bool test_broker_spawn_internal(TestBroker *broker, const TestBrokerOptions *opts,
                                       bool merge_stderr) {
        static const TestBrokerOptions defaults = {};
        const char *exe = test_broker_exe(), *status_path;
        bool open;
        int out[2] = { -1, -1 }, err[2] = { -1, -1 }, r;

        if (!opts)
                opts = &defaults;
        open = opts->open_to_all || opts->uid;
        for (size_t i = 0; opts->args && opts->args[i]; ++i)
                if (i >= TEST_BROKER_ARGS_MAX)
                        fail_msg("more than %d arguments for bus1d", TEST_BROKER_ARGS_MAX);

        memset(broker, 0, sizeof(*broker));
        broker->out_fd = broker->err_fd = broker->notify_fd = -1;
        snprintf(broker->dir, sizeof(broker->dir), "/tmp/bus1d-test-XXXXXX");
        if (!mkdtemp(broker->dir)) {
                broker->dir[0] = 0;
                fail_msg("mkdtemp: %s", strerror(errno));
        }
        /* a broker of another UID binds its socket there */
        if ((open && chmod(broker->dir, 0755) < 0) ||
            (opts->uid && chown(broker->dir, opts->uid, opts->uid) < 0))
                test_broker_give_up(broker, "%s: %s", broker->dir, strerror(errno));
        if (snprintf(broker->path, sizeof(broker->path), "%s",
                     opts->path ? opts->path : "") >= (int)sizeof(broker->path))
                test_broker_give_up(broker, "socket path too long: %s", opts->path);
        if (!opts->path)
                snprintf(broker->path, sizeof(broker->path), "%s/socket", broker->dir);
        /* another UID must be able to run it: the build tree may be private (0700) */
        if (opts->uid) {
                snprintf(broker->exe, sizeof(broker->exe), "%s/bus1d", broker->dir);
                r = test_copy_exe(exe, broker->exe);
                if (r < 0)
                        test_broker_give_up(broker, "copying %s: %s", exe, strerror(-r));
                exe = broker->exe;
        }
        if (opts->wait != TEST_BROKER_WAIT_NONE || opts->keep_notify) {
                snprintf(broker->notify, sizeof(broker->notify), "%s/notify", broker->dir);
                broker->notify_fd = test_bind_dgram(broker->notify);
                if (broker->notify_fd < 0)
                        test_broker_give_up(broker, "binding %s: %s", broker->notify,
                                            strerror(-broker->notify_fd));
                /* the broker may have become another user before it notifies */
                if (open && chmod(broker->notify, 0777) < 0)
                        test_broker_give_up(broker, "%s: %s", broker->notify, strerror(errno));
        }
        if (opts->capture_stdout && pipe2(out, O_CLOEXEC) < 0)
                test_broker_give_up(broker, "pipe2: %s", strerror(errno));
        broker->out_fd = out[0];
        if (opts->capture_stderr && !merge_stderr && pipe2(err, O_CLOEXEC) < 0) {
                if (out[1] >= 0)
                        close(out[1]);
                test_broker_give_up(broker, "pipe2: %s", strerror(errno));
        }
        broker->err_fd = err[0];

        fflush(NULL);
        broker->pid = fork();
        if (broker->pid < 0) {
                broker->pid = 0;
                test_broker_give_up(broker, "fork: %s", strerror(errno));
        }
        if (broker->pid == 0)
                test_broker_child(broker, opts, exe, out[1], merge_stderr ? out[1] : err[1]);
        if (out[1] >= 0)
                close(out[1]);
        if (err[1] >= 0)
                close(err[1]);

        /* the last --listen= wins, as in getopt */
        status_path = broker->path;
        for (size_t i = 0; opts->args && opts->args[i]; ++i)
                if (strncmp(opts->args[i], "--listen=", 9) == 0)
                        status_path = opts->args[i] + 9;
        test_broker_remember(broker, status_path);

        if (opts->wait == TEST_BROKER_WAIT_NONE)
                return true;

        /*
         * READY=1 on the notify socket: the broker listens. Waiting for it
         * (rather than probing with a connection) leaves the broker with no
         * connection ever made, so its descriptor count is the exact
         * baseline.
         */
        if (!test_broker_wait_ready(broker)) {
                if (opts->wait == TEST_BROKER_WAIT_READY_OR_EXIT)
                        return false;
                test_broker_give_up(broker, "bus1d exited at start (status 0x%x)",
                                    broker->status);
        }
        if (!opts->keep_notify) {
                close(broker->notify_fd);
                broker->notify_fd = -1;
                unlink(broker->notify);
                broker->notify[0] = 0;
        }
        if (opts->open_to_all && chmod(broker->path, 0777) < 0)
                test_broker_give_up(broker, "%s: %s", broker->path, strerror(errno));

        setenv("BUS1_ADDRESS", broker->path, 1);
        if (!opts->no_fd_baseline)
                test_broker_count_idle(broker);
        return true;
}

/**
 * test_broker_spawn() - start a private broker as @opts says
 * @broker:     filled in
 * @opts:       how; NULL (or all zero) is test_broker_start()
 *
 * A broker that does not come up fails the test, killed, unless @opts
 * waits for READY_OR_EXIT: then the broker that exited at start is reaped.
 *
 * Return: true once it runs (ready, if waited for), false if it exited.
 */
bool test_broker_spawn(TestBroker *broker, const TestBrokerOptions *opts) {
        return test_broker_spawn_internal(broker, opts, false);
}

/**
 * test_broker_start() - start a private broker
 * @broker:     filled in
 */
void test_broker_start(TestBroker *broker) {
        test_broker_spawn(broker, NULL);
}

/**
 * test_broker_start_args() - start a private broker with extra arguments
 * @broker:     filled in
 * @args:       NULL-terminated arguments after --listen, or NULL for none
 *
 * The broker must come up: extra arguments that make it exit fail the test.
 */
void test_broker_start_args(TestBroker *broker, const char *const *args) {
        test_broker_spawn(broker, &(TestBrokerOptions){ .args = args });
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
                waitpid(broker->pid, &broker->status, 0);
                broker->reaped = true;
                test_broker_remove(broker);
                fail_msg("bus1d held %u descriptors at the end, %u when idle", n,
                         broker->n_fds_idle);
        }

        kill(broker->pid, SIGTERM);
        if (waitpid(broker->pid, &status, 0) != broker->pid)
                fail_msg("waitpid: %s", strerror(errno));
        broker->reaped = true;
        broker->status = status;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("bus1d did not exit cleanly (status 0x%x)", status);

        test_broker_remove(broker);
        unsetenv("BUS1_ADDRESS");
}

/**
 * test_broker_terminate() - SIGTERM, and wait for the broker's exit
 * @broker:     a broker test_broker_spawn() started
 *
 * Unlike test_broker_stop(), neither its descriptors nor its exit status
 * are checked, and its directory stays (test_broker_kill() removes it).
 *
 * Return: its wait status.
 */
int test_broker_terminate(TestBroker *broker) {
        if (kill(broker->pid, SIGTERM) < 0)
                fail_msg("kill(%d): %s", (int)broker->pid, strerror(errno));
        return test_broker_wait(broker);
}

/**
 * test_broker_wait() - wait for the broker to exit by itself
 * @broker:     a broker test_broker_spawn() started
 *
 * Return: its wait status.
 */
int test_broker_wait(TestBroker *broker) {
        if (broker->reaped)
                return broker->status;
        if (waitpid(broker->pid, &broker->status, 0) != broker->pid)
                fail_msg("waitpid(%d): %s", (int)broker->pid, strerror(errno));
        broker->reaped = true;
        return broker->status;
}

/**
 * test_broker_read_err() - what the broker wrote to stderr, to its end
 * @broker:     started with capture_stderr, and exited
 * @out:        NUL-terminated text
 * @size:       of @out; what does not fit is left unread
 *
 * Return: its length.
 */
size_t test_broker_read_err(TestBroker *broker, char *out, size_t size) {
        size_t n = 0;
        ssize_t l;

        if (broker->err_fd < 0)
                fail_msg("bus1d's stderr was not captured");
        while (n + 1 < size && (l = read(broker->err_fd, out + n, size - 1 - n)) != 0) {
                if (l < 0 && errno == EINTR)
                        continue;
                if (l < 0)
                        fail_msg("reading bus1d's stderr: %s", strerror(errno));
                n += (size_t)l;
        }
        out[n] = 0;
        return n;
}

/**
 * test_broker_remove() - close and remove what test_broker_spawn() made
 * @broker:     a broker that exited (or a never started, zeroed one)
 *
 * Closes the pipes and the notify socket, removes the socket, the notify
 * socket, the copy of bus1d and the directory, and unsets $BUS1_ADDRESS if
 * it still names this broker. Does nothing a second time.
 *
 * Return: 0, or what rmdir(2) of the directory failed with (a negative
 * errno): something else the test or the broker left there.
 */
int test_broker_remove(TestBroker *broker) {
        const char *address = getenv("BUS1_ADDRESS");
        int r = 0;

        if (!broker->dir[0])
                return 0;
        if (broker->out_fd >= 0)
                close(broker->out_fd);
        if (broker->err_fd >= 0)
                close(broker->err_fd);
        if (broker->notify_fd >= 0)
                close(broker->notify_fd);
        broker->out_fd = broker->err_fd = broker->notify_fd = -1;
        if (broker->notify[0])
                unlink(broker->notify);
        if (broker->exe[0])
                unlink(broker->exe);
        if (broker->path[0])
                unlink(broker->path);
        if (rmdir(broker->dir) < 0)
                r = -errno;
        if (address && strcmp(address, broker->path) == 0)
                unsetenv("BUS1_ADDRESS");
        broker->dir[0] = 0;
        return r;
}

/**
 * test_broker_kill() - the teardown's end of a broker, however far it got
 * @broker:     started, stopped, half-way through either, or zeroed
 *
 * SIGKILL if it still runs as our child, then test_broker_remove().
 */
void test_broker_kill(TestBroker *broker) {
        /* (reaped already, by us or the test: then it is no child of ours) */
        if (broker->pid > 0 && !broker->reaped &&
            waitpid(broker->pid, &broker->status, WNOHANG) == 0) {
                kill(broker->pid, SIGKILL);
                waitpid(broker->pid, &broker->status, 0);
        }
        if (broker->pid > 0)
                broker->reaped = true;
        test_broker_remove(broker);
}

/**
 * test_broker_fds_settle() - the broker's descriptor count once it is @expected
 * @broker:     a running broker
 * @expected:   the count to wait for
 * @timeout_ms: how long at most
 *
 * Return: the last count, @expected unless the time ran out.
 */
unsigned int test_broker_fds_settle(const TestBroker *broker, unsigned int expected,
                                    unsigned int timeout_ms) {
        struct timespec ts = { .tv_nsec = 5 * 1000 * 1000 };
        unsigned int n = 0;

        for (unsigned int i = 0; i < timeout_ms / 5; ++i) {
                n = test_count_fds(broker->pid);
                if (n == expected)
                        break;
                nanosleep(&ts, NULL);
        }
        return n;
}

/**
 * test_broker_cpu_ticks() - the CPU time (user and system) the broker used
 * @broker:     a running broker
 *
 * Return: clock ticks (sysconf(_SC_CLK_TCK) a second), from /proc/PID/stat.
 */
uint64_t test_broker_cpu_ticks(const TestBroker *broker) {
        unsigned long long utime = 0, stime = 0;
        char path[64], buf[1024], *p;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)broker->pid);
        f = fopen(path, "re");
        assert_non_null(f);
        assert_non_null(fgets(buf, sizeof(buf), f));
        fclose(f);
        /* fields 14 and 15, after the command name, which may contain anything */
        p = strrchr(buf, ')');
        assert_non_null(p);
        assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                                &utime, &stime), 2);
        return utime + stime;
}

/**
 * test_broker_cpu_ms() - the CPU time (user and system) the broker used
 * @broker:     a running broker
 *
 * Return: milliseconds.
 */
uint64_t test_broker_cpu_ms(const TestBroker *broker) {
        return test_broker_cpu_ticks(broker) * 1000 / (uint64_t)sysconf(_SC_CLK_TCK);
}

/* read more of @fd into @buf (@*n so far): 0 at EOF, -1 when it does not fit */
static int test_run_read(int fd, char *buf, size_t size, size_t *n) {
        ssize_t l;

        l = read(fd, buf + *n, size - 1 - *n);
        if (l < 0 && errno == EINTR)
                return 1;
        if (l <= 0)
                return 0;
        *n += (size_t)l;
        buf[*n] = 0;
        return *n < size - 1 ? 1 : -1;
}

/**
 * test_bus1d_run() - run bus1d to its exit and collect what it wrote
 * @opts:       environment and credentials (.env, .uid, ...), or NULL
 * @args:       its arguments, NULL-terminated (no --listen= is added)
 * @out:        its stdout, NUL-terminated
 * @out_size:   size of @out
 * @err:        its stderr, or NULL: stderr goes to @out as well
 * @err_size:   size of @err
 *
 * One that has not exited after 10 s without a word is killed and fails
 * the test (a broker that should have refused to start must not hang the
 * suite), and so does more output than the buffers hold.
 *
 * Return: its wait status.
 */
int test_bus1d_run(const TestBrokerOptions *opts, const char *const *args, char *out,
                   size_t out_size, char *err, size_t err_size) {
        TestBrokerOptions o = opts ? *opts : (TestBrokerOptions){};
        struct pollfd p[2];
        size_t n[2] = {};
        TestBroker b;
        int status;

        o.args = args;
        o.no_listen = true;
        o.wait = TEST_BROKER_WAIT_NONE;
        o.keep_notify = false;
        o.capture_stdout = true;
        o.capture_stderr = true;
        test_broker_spawn_internal(&b, &o, !err);
        out[0] = 0;
        if (err)
                err[0] = 0;

        p[0] = (struct pollfd){ .fd = b.out_fd, .events = POLLIN };
        p[1] = (struct pollfd){ .fd = err ? b.err_fd : -1, .events = POLLIN };
        while (p[0].fd >= 0 || p[1].fd >= 0) {
                int r = poll(p, 2, 10000);

                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        test_broker_give_up(&b, "bus1d %s did not exit within 10 s", args[0] ?
                                            args[0] : "");
                for (int i = 0; i < 2; ++i) {
                        if (p[i].fd < 0 || !p[i].revents)
                                continue;
                        r = test_run_read(p[i].fd, i ? err : out, i ? err_size : out_size,
                                          &n[i]);
                        if (r < 0)
                                test_broker_give_up(&b, "bus1d wrote more to %s than the "
                                                    "test reads", i ? "stderr" : "stdout");
                        if (r == 0)
                                p[i].fd = -1;
                }
        }
        status = test_broker_wait(&b);
        test_broker_remove(&b);
        return status;
}
