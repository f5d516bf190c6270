/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Capabilities: a broker started as root keeps none of them
 *
 * The broker is started as root with every capability the test itself has
 * (a system unit without User=), with $NOTIFY_SOCKET so that READY=1 marks
 * the moment it serves. From then on /proc/PID/status must show empty
 * CapInh, CapPrm, CapEff, CapBnd and CapAmb and NoNewPrivs 1, and the
 * broker must still serve clients. With --user=nobody it also runs as that
 * user (uid, gid, no supplementary groups). --user fails cleanly for an
 * unknown user and for a broker that is not root.
 *
 * Needs root (skipped otherwise): only root has capabilities to lose, and
 * only root can read the descriptors of the non-dumpable broker.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "bus1/uapi.h"

typedef struct CapsBroker {
        char dir[32];
        char path[64];
        char notify[64];
        char exe[64];           /* a copy of bus1d another UID can run, or "" */
        int nfd;                /* bound to @notify */
        int err;                /* read end of the broker's stderr */
        pid_t pid;
} CapsBroker;

static CapsBroker caps_broker = { .nfd = -1, .err = -1, .pid = -1 };

static bool caps_is_root(void) {
        if (geteuid() == 0)
                return true;
        print_message("needs root: only root has capabilities for bus1d to drop; skipping\n");
        return false;
}

/* the value of @key in /proc/PID/status, as text */
static void status_field(pid_t pid, const char *key, char *value, size_t size) {
        char path[64], line[512];
        size_t len = strlen(key);
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                fail_msg("%s: %s", path, strerror(errno));
        value[0] = 0;
        while (fgets(line, sizeof(line), f)) {
                if (strncmp(line, key, len) != 0 || line[len] != ':')
                        continue;
                snprintf(value, size, "%s", line + len + 1 + strspn(line + len + 1, " \t"));
                value[strcspn(value, "\n")] = 0;
                break;
        }
        fclose(f);
        if (!value[0] && strcmp(key, "Groups") != 0)
                fail_msg("no %s in %s", key, path);
}

/*
 * Start bus1d with --listen in a private directory, the given extra
 * arguments, stderr to a pipe, and a NOTIFY_SOCKET that any user may write
 * to (the broker may have become another user before it notifies).
 */
/*
 * Copy @from to @to (mode 0755): a broker started as another UID must be
 * able to run it, and the build tree may lie in a private (0700) folder.
 */
static void caps_copy_exe(const char *from, const char *to) {
        char buf[65536];
        int in, out;
        ssize_t l;

        in = open(from, O_RDONLY | O_CLOEXEC);
        assert_true(in >= 0);
        out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
        assert_true(out >= 0);
        while ((l = read(in, buf, sizeof(buf))) > 0)
                assert_int_equal(write(out, buf, (size_t)l), l);
        assert_true(l == 0);
        close(in);
        assert_int_equal(close(out), 0);
}

static void caps_start(CapsBroker *b, const char *const *args, uid_t as_uid) {
        const char *exe = getenv("BUS1D_TEST_BROKER");
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int err[2];

        assert_non_null(exe);
        snprintf(b->dir, sizeof(b->dir), "/tmp/bus1d-test-XXXXXX");
        assert_non_null(mkdtemp(b->dir));
        assert_int_equal(chmod(b->dir, 0755), 0);
        /* a broker started as another user binds its socket there */
        if (as_uid != 0)
                assert_int_equal(chown(b->dir, as_uid, as_uid), 0);
        snprintf(b->path, sizeof(b->path), "%s/socket", b->dir);
        snprintf(b->notify, sizeof(b->notify), "%s/notify", b->dir);
        b->exe[0] = '\0';
        if (as_uid != 0) {
                snprintf(b->exe, sizeof(b->exe), "%s/bus1d", b->dir);
                caps_copy_exe(exe, b->exe);
                exe = b->exe;
        }

        b->nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(b->nfd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", b->notify);
        assert_int_equal(bind(b->nfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(chmod(b->notify, 0777), 0);
        assert_int_equal(pipe2(err, O_CLOEXEC), 0);

        b->pid = fork();
        assert_true(b->pid >= 0);
        if (b->pid == 0) {
                const char *argv[16] = { exe };
                char listen[96];
                size_t n = 1;

                if (dup2(err[1], STDERR_FILENO) < 0)
                        _exit(126);
                if (as_uid != 0 && (setresgid(as_uid, as_uid, as_uid) < 0 ||
                                    setresuid(as_uid, as_uid, as_uid) < 0))
                        _exit(126);
                snprintf(listen, sizeof(listen), "--listen=%s", b->path);
                argv[n++] = listen;
                for (size_t i = 0; args && args[i] && n < 15; ++i)
                        argv[n++] = args[i];
                argv[n] = NULL;
                setenv("NOTIFY_SOCKET", b->notify, 1);
                unsetenv("LISTEN_FDS");
                execv(exe, (char *const *)argv);
                _exit(127);
        }
        close(err[1]);
        b->err = err[0];
}

/* READY=1 arrives, or the broker exits: returns the exit status, or -1 if ready */
static int caps_wait_ready(CapsBroker *b) {
        struct pollfd p = { .fd = b->nfd, .events = POLLIN };
        char buf[256];
        int status;

        for (int i = 0; i < 1000; ++i) {
                ssize_t l;

                if (poll(&p, 1, 10) == 1) {
                        l = recv(b->nfd, buf, sizeof(buf) - 1, 0);
                        assert_true(l > 0);
                        buf[l] = 0;
                        assert_non_null(strstr(buf, "READY=1"));
                        return -1;
                }
                if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
                        b->pid = -1;
                        return status;
                }
        }
        fail_msg("bus1d neither became ready nor exited");
        return 0;
}

/* everything the broker wrote to stderr, once it exited */
static void caps_read_err(CapsBroker *b, char *out, size_t size) {
        size_t n = 0;
        ssize_t l;

        while (n + 1 < size && (l = read(b->err, out + n, size - 1 - n)) > 0)
                n += (size_t)l;
        out[n] = 0;
}

static void caps_stop(CapsBroker *b) {
        int status;

        assert_int_equal(kill(b->pid, SIGTERM), 0);
        assert_int_equal(waitpid(b->pid, &status, 0), b->pid);
        b->pid = -1;
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static int caps_teardown(void **state) {
        CapsBroker *b = &caps_broker;
        int status;

        if (b->pid > 0) {
                kill(b->pid, SIGKILL);
                waitpid(b->pid, &status, 0);
        }
        if (b->nfd >= 0)
                close(b->nfd);
        if (b->err >= 0)
                close(b->err);
        if (b->dir[0]) {
                unlink(b->path);
                unlink(b->notify);
                if (b->exe[0])
                        unlink(b->exe);
                rmdir(b->dir);
        }
        *b = (CapsBroker){ .nfd = -1, .err = -1, .pid = -1 };
        return 0;
}

static void assert_no_caps(pid_t pid) {
        static const char *const keys[] = { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" };
        char value[64];

        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); ++i) {
                status_field(pid, keys[i], value, sizeof(value));
                if (strcmp(value, "0000000000000000") != 0)
                        fail_msg("bus1d still has %s %s", keys[i], value);
        }
        status_field(pid, "NoNewPrivs", value, sizeof(value));
        assert_string_equal(value, "1");
}

/* a client can still connect and query */
static void assert_serves(const char *path) {
        struct bus1_cmd_peer_reset q = {};
        int peer;

        peer = bus1_uapi_open(path);
        assert_true(peer >= 0);
        assert_int_equal(bus1_uapi_ioctl(peer, BUS1_CMD_PEER_QUERY, &q), 0);
        assert_int_equal(bus1_uapi_close(peer), 0);
}

static void test_root_drops_everything(void **state) {
        static const char *const args[] = { "-vv", NULL };
        CapsBroker *b = &caps_broker;
        char value[64], out[8192];

        if (!caps_is_root())
                skip();
        /* the precondition: there is something to drop */
        status_field(getpid(), "CapEff", value, sizeof(value));
        if (strcmp(value, "0000000000000000") == 0) {
                print_message("this root has no capabilities to drop; skipping\n");
                skip();
        }

        caps_start(b, args, 0);
        assert_int_equal(caps_wait_ready(b), -1);
        assert_no_caps(b->pid);
        status_field(b->pid, "Uid", value, sizeof(value));
        assert_string_equal(value, "0\t0\t0\t0");
        assert_serves(b->path);
        caps_stop(b);

        /* -vv says what went */
        caps_read_err(b, out, sizeof(out));
        if (!strstr(out, "dropped capabilities: ") || !strstr(out, "sys_admin") ||
            !strstr(out, "bounding set cleared"))
                fail_msg("no debug line about the dropped capabilities in:\n%s", out);
}

static void test_switch_user(void **state) {
        static const char *const args[] = { "--user=nobody", NULL };
        CapsBroker *b = &caps_broker;
        char value[64], expect[64];
        struct passwd *pw;

        if (!caps_is_root())
                skip();
        pw = getpwnam("nobody");
        if (!pw) {
                print_message("no user nobody; skipping\n");
                skip();
        }

        caps_start(b, args, 0);
        assert_int_equal(caps_wait_ready(b), -1);
        assert_no_caps(b->pid);
        snprintf(expect, sizeof(expect), "%u\t%u\t%u\t%u", (unsigned)pw->pw_uid,
                 (unsigned)pw->pw_uid, (unsigned)pw->pw_uid, (unsigned)pw->pw_uid);
        status_field(b->pid, "Uid", value, sizeof(value));
        assert_string_equal(value, expect);
        snprintf(expect, sizeof(expect), "%u\t%u\t%u\t%u", (unsigned)pw->pw_gid,
                 (unsigned)pw->pw_gid, (unsigned)pw->pw_gid, (unsigned)pw->pw_gid);
        status_field(b->pid, "Gid", value, sizeof(value));
        assert_string_equal(value, expect);
        status_field(b->pid, "Groups", value, sizeof(value));
        assert_string_equal(value, "");
        /* still not dumpable: a same-UID process must not open the pools */
        {
                char path[64];
                struct stat st;

                snprintf(path, sizeof(path), "/proc/%d/fd", (int)b->pid);
                assert_int_equal(stat(path, &st), 0);
                assert_int_equal(st.st_uid, 0);
        }
        assert_serves(b->path);
        caps_stop(b);
}

static void test_user_refused(void **state) {
        static const char *const unknown[] = { "--user=bus1d-no-such-user", NULL };
        /* root's ~/.config is not readable by uid 65534 */
        static const char *const to_root[] = { "--user=root", "--config=/dev/null", NULL };
        CapsBroker *b = &caps_broker;
        char out[4096];
        int status;

        if (!caps_is_root())
                skip();

        caps_start(b, unknown, 0);
        status = caps_wait_ready(b);
        assert_true(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1);
        caps_read_err(b, out, sizeof(out));
        /* said as such, not as "No such process" */
        if (!strstr(out, "--user=bus1d-no-such-user: no such user"))
                fail_msg("unexpected stderr:\n%s", out);
        caps_teardown(state);

        /* not root: there is nothing to switch with */
        caps_start(b, to_root, 65534);
        status = caps_wait_ready(b);
        assert_true(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1);
        caps_read_err(b, out, sizeof(out));
        if (!strstr(out, "cannot drop privileges to user root: ") ||
            !strstr(out, strerror(EPERM)))
                fail_msg("unexpected stderr:\n%s", out);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_root_drops_everything, caps_teardown),
                cmocka_unit_test_teardown(test_switch_user, caps_teardown),
                cmocka_unit_test_teardown(test_user_refused, caps_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
