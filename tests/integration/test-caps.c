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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "bus1/uapi.h"
#include "util-broker.h"

/* the broker of the running case, killed by the teardown if the case failed */
static TestBroker caps_broker;

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
 * to (the broker may have become another user before it notifies); as
 * @as_uid, if not 0, from a copy of bus1d that user can run. Returns -1
 * once it is ready, or its exit status if it exited instead.
 */
static int caps_start(TestBroker *b, const char *const *args, uid_t as_uid) {
        TestBrokerOptions opts = {
                .args = args,
                .uid = as_uid,
                .capture_stderr = true,
                .wait = TEST_BROKER_WAIT_READY_OR_EXIT,
                .open_to_all = true,
                .no_fd_baseline = true,
        };

        return test_broker_spawn(b, &opts) ? -1 : b->status;
}

/* SIGTERM: it exits 0 */
static void caps_stop(TestBroker *b) {
        int status = test_broker_terminate(b);

        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static int caps_teardown(void **state) {
        test_broker_kill(&caps_broker);
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
        TestBroker *b = &caps_broker;
        char value[64], out[8192];

        if (!caps_is_root())
                skip();
        /* the precondition: there is something to drop */
        status_field(getpid(), "CapEff", value, sizeof(value));
        if (strcmp(value, "0000000000000000") == 0) {
                print_message("this root has no capabilities to drop; skipping\n");
                skip();
        }

        assert_int_equal(caps_start(b, args, 0), -1);
        assert_no_caps(b->pid);
        status_field(b->pid, "Uid", value, sizeof(value));
        assert_string_equal(value, "0\t0\t0\t0");
        assert_serves(b->path);
        caps_stop(b);

        /* -vv says what went */
        test_broker_read_err(b, out, sizeof(out));
        if (!strstr(out, "dropped capabilities: ") || !strstr(out, "sys_admin") ||
            !strstr(out, "bounding set cleared"))
                fail_msg("no debug line about the dropped capabilities in:\n%s", out);
}

static void test_switch_user(void **state) {
        static const char *const args[] = { "--user=nobody", NULL };
        TestBroker *b = &caps_broker;
        char value[64], expect[64];
        struct passwd *pw;

        if (!caps_is_root())
                skip();
        pw = getpwnam("nobody");
        if (!pw) {
                print_message("no user nobody; skipping\n");
                skip();
        }

        assert_int_equal(caps_start(b, args, 0), -1);
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
        TestBroker *b = &caps_broker;
        char out[4096];
        int status;

        if (!caps_is_root())
                skip();

        status = caps_start(b, unknown, 0);
        assert_true(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1);
        test_broker_read_err(b, out, sizeof(out));
        /* said as such, not as "No such process" */
        if (!strstr(out, "--user=bus1d-no-such-user: no such user"))
                fail_msg("unexpected stderr:\n%s", out);
        caps_teardown(state);

        /* not root: there is nothing to switch with */
        status = caps_start(b, to_root, 65534);
        assert_true(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1);
        test_broker_read_err(b, out, sizeof(out));
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
