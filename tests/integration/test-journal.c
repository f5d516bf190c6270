/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Journal logging: structured entries when the journal is there
 *
 * Each broker runs in a mount namespace of its own whose /run is an empty
 * tmpfs; for the cases with a journal, the test's own datagram socket is
 * bind-mounted to /run/systemd/journal/socket there, so the test receives
 * exactly what sd_journal_sendv() sends (the journal's native protocol) and
 * the host's journal, if any, sees nothing. Checked:
 *  - --log-target=journal: MESSAGE=, PRIORITY=, CODE_FUNC=,
 *    SYSLOG_IDENTIFIER=, and the fields of a quota refusal (BUS1_UID=,
 *    BUS1_RECEIVER_UID=, BUS1_RESOURCE=) provoked by a peer of a second UID;
 *    nothing goes to stderr;
 *  - the default target picks the journal exactly when $JOURNAL_STREAM
 *    names the device and inode of stderr, as systemd sets it, and stderr
 *    otherwise;
 *  - --log-target=journal without a journal socket falls back to stderr.
 *
 * Needs root (skipped otherwise): for the mount namespace, and for the
 * second UID's peer (seteuid() around connect(), as test-quota.c does).
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "util-broker.h"
#include "util-uapi.h"

#define JOURNAL_UID_B 65534

typedef enum JournalStream {
        JOURNAL_STREAM_UNSET,
        JOURNAL_STREAM_STDERR,  /* $JOURNAL_STREAM names stderr, as under systemd */
        JOURNAL_STREAM_OTHER,   /* inherited from a parent whose stderr it was */
} JournalStream;

/* the broker, and the test's "journal": a socket bound to jdir/socket */
typedef struct JournalBroker {
        TestBroker broker;
        char jdir[64];          /* bind-mounted to /run/systemd/journal */
        int jfd;
} JournalBroker;

static JournalBroker journal_broker = { .jfd = -1 };

/* what the broker's child does before the exec */
typedef struct JournalChild {
        const char *jdir;       /* bind-mounted to /run/systemd/journal, or NULL */
        JournalStream stream;
} JournalChild;

/* in the child: a private /run, with the test's journal in it if @jdir */
static int journal_child_mounts(const char *jdir) {
        if (unshare(CLONE_NEWNS) < 0)
                return -errno;
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0 ||
            mkdir("/run/systemd", 0755) < 0 || mkdir("/run/systemd/journal", 0755) < 0)
                return -errno;
        if (jdir && mount(jdir, "/run/systemd/journal", NULL, MS_BIND, NULL) < 0)
                return -errno;
        return 0;
}

/* in the child, its stderr a pipe already: the mounts and $JOURNAL_STREAM; 77: no namespace */
static int journal_child_setup(const TestBroker *broker, const char *exe, void *userdata) {
        const JournalChild *child = userdata;
        char value[64];
        struct stat st;

        if (journal_child_mounts(child->jdir) < 0)
                return 77;
        unsetenv("JOURNAL_STREAM");
        if (child->stream == JOURNAL_STREAM_STDERR && fstat(STDERR_FILENO, &st) == 0) {
                snprintf(value, sizeof(value), "%llu:%llu",
                         (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
                setenv("JOURNAL_STREAM", value, 1);
        } else if (child->stream == JOURNAL_STREAM_OTHER) {
                setenv("JOURNAL_STREAM", "1:1", 1);
        }
        return 0;
}

/*
 * Start bus1d --listen=DIR/socket @args with stderr to a pipe and
 * $NOTIFY_SOCKET, in its own mount namespace, with the test's journal
 * socket as its /run/systemd/journal/socket if @journal. Returns false
 * (after saying why) if this system cannot make one, and the test is to be
 * skipped.
 */
static bool journal_start(JournalBroker *b, bool journal, JournalStream stream,
                          const char *const *args) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        JournalChild child = { .jdir = journal ? b->jdir : NULL, .stream = stream };
        TestBrokerOptions opts = {
                .args = args,
                .capture_stderr = true,
                .child_setup = journal_child_setup,
                .userdata = &child,
                .wait = TEST_BROKER_WAIT_READY_OR_EXIT,
                /* peers of the second UID connect too */
                .open_to_all = true,
                .no_fd_baseline = true,
        };
        int status;

        snprintf(b->jdir, sizeof(b->jdir), "/tmp/bus1d-journal-XXXXXX");
        assert_non_null(mkdtemp(b->jdir));
        assert_int_equal(chmod(b->jdir, 0755), 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/socket", b->jdir);
        b->jfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(b->jfd >= 0);
        assert_int_equal(bind(b->jfd, (struct sockaddr *)&sa, sizeof(sa)), 0);

        if (test_broker_spawn(&b->broker, &opts))
                return true;
        status = b->broker.status;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
                print_message("cannot make a mount namespace here; skipping\n");
                return false;
        }
        fail_msg("bus1d exited at start (status 0x%x)", status);
        return false;
}

/* SIGTERM, exit 0, and everything it wrote to stderr */
static void journal_stop(JournalBroker *b, char *out, size_t size) {
        int status = test_broker_terminate(&b->broker);

        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        unsetenv("BUS1_ADDRESS");
        test_broker_read_err(&b->broker, out, size);
}

static int journal_teardown(void **state) {
        JournalBroker *b = &journal_broker;
        char path[96];

        test_broker_kill(&b->broker);
        if (b->jfd >= 0)
                close(b->jfd);
        if (b->jdir[0]) {
                snprintf(path, sizeof(path), "%s/socket", b->jdir);
                unlink(path);
                rmdir(b->jdir);
        }
        unsetenv("BUS1_ADDRESS");
        *b = (JournalBroker){ .jfd = -1 };
        return 0;
}

/* one journal entry, split into fields */
typedef struct Entry {
        char buf[8192];
        size_t n_fields;
        const char *names[32];
        const char *values[32];
} Entry;

/*
 * Receive one datagram of the native protocol: "NAME=value\n" per field, or
 * "NAME\n", a 64-bit little-endian length and the value then "\n" for
 * values with newlines. Returns false if none came within @timeout_ms.
 */
static bool entry_recv(int fd, Entry *e, int timeout_ms) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        size_t len, pos = 0;
        ssize_t l;

        if (poll(&p, 1, timeout_ms) != 1)
                return false;
        l = recv(fd, e->buf, sizeof(e->buf) - 1, MSG_TRUNC);
        assert_true(l > 0 && (size_t)l < sizeof(e->buf));
        len = (size_t)l;
        e->buf[len] = 0;
        e->n_fields = 0;

        while (pos < len) {
                char *line = e->buf + pos, *end = memchr(line, '\n', len - pos), *eq;

                assert_non_null(end);
                assert_true(e->n_fields < 32);
                *end = 0;
                eq = strchr(line, '=');
                e->names[e->n_fields] = line;
                if (eq) {
                        *eq = 0;
                        e->values[e->n_fields++] = eq + 1;
                        pos = (size_t)(end - e->buf) + 1;
                        continue;
                }
                /* binary: the length follows the name's newline */
                {
                        uint64_t n;
                        char *value = end + 1 + 8;

                        memcpy(&n, end + 1, 8);
                        assert_true((size_t)(value - e->buf) + n < len);
                        value[n] = 0;
                        e->values[e->n_fields++] = value;
                        pos = (size_t)(value - e->buf) + n + 1;
                }
        }
        return true;
}

static const char *entry_get(const Entry *e, const char *name) {
        for (size_t i = 0; i < e->n_fields; ++i)
                if (strcmp(e->names[i], name) == 0)
                        return e->values[i];
        return NULL;
}

static void entry_expect(const Entry *e, const char *name, const char *value) {
        const char *v = entry_get(e, name);

        if (!v)
                fail_msg("journal entry has no %s= (MESSAGE=%s)", name,
                         entry_get(e, "MESSAGE") ?: "(none)");
        if (strcmp(v, value) != 0)
                fail_msg("journal entry has %s=%s, expected %s", name, v, value);
}

/* the broker's "listening on" notice, its first message at the default level */
static void expect_listening(JournalBroker *b, const Entry *e) {
        char text[512];

        snprintf(text, sizeof(text), "listening on %s (clients: BUS1_ADDRESS=%s)",
                 b->broker.path, b->broker.path);
        entry_expect(e, "MESSAGE", text);
        entry_expect(e, "PRIORITY", "5");
        entry_expect(e, "CODE_FUNC", "main_serve");
        entry_expect(e, "SYSLOG_IDENTIFIER", "bus1d");
}

static bool journal_is_root(void) {
        if (geteuid() == 0)
                return true;
        print_message("needs root (a mount namespace, a peer of another UID); skipping\n");
        return false;
}

/* open a peer whose SO_PEERCRED says @uid */
static int peer_as(uid_t uid) {
        int peer;

        assert_int_equal(setegid(uid), 0);
        assert_int_equal(seteuid(uid), 0);
        peer = bus1_uapi_open(NULL);
        if (seteuid(0) < 0 || setegid(0) < 0)
                abort();        /* nothing else may run as @uid */
        assert_true(peer >= 0);
        return peer;
}

static void test_journal_fields(void **state) {
        static const char *const args[] = { "--log-target=journal", "--max-slices=16", NULL };
        JournalBroker *b = &journal_broker;
        char out[4096];
        uint64_t h;
        Entry e;
        int a, bp, r = 0;

        if (!journal_is_root() || !journal_start(b, true, JOURNAL_STREAM_UNSET, args))
                skip();

        assert_true(entry_recv(b->jfd, &e, 5000));
        expect_listening(b, &e);

        /* a peer of another UID fills uid 0's slices until it is refused */
        a = peer_as(0);
        bp = peer_as(JOURNAL_UID_B);
        h = uapi_give(a, 0x100, bp);
        for (int i = 0; i < 64 && r == 0; ++i)
                r = uapi_send_str(bp, h, "fill");
        assert_int_equal(r, -EDQUOT);

        assert_true(entry_recv(b->jfd, &e, 5000));
        entry_expect(&e, "PRIORITY", "5");
        entry_expect(&e, "CODE_FUNC", "broker_on_refusal");
        entry_expect(&e, "SYSLOG_IDENTIFIER", "bus1d");
        entry_expect(&e, "BUS1_UID", "65534");
        entry_expect(&e, "BUS1_RECEIVER_UID", "0");
        entry_expect(&e, "BUS1_RESOURCE", "slices");
        entry_expect(&e, "BUS1_AMOUNT", "1");
        assert_non_null(entry_get(&e, "MESSAGE"));
        assert_ptr_equal(strstr(entry_get(&e, "MESSAGE"), "quota: uid 65534 refused 1 slices "
                                                          "for uid 0 "),
                         entry_get(&e, "MESSAGE"));

        /* further refusals of the pair are counted, not logged */
        assert_int_equal(uapi_send_str(bp, h, "fill"), -EDQUOT);

        assert_int_equal(bus1_uapi_close(bp), 0);
        assert_int_equal(bus1_uapi_close(a), 0);
        journal_stop(b, out, sizeof(out));
        assert_false(entry_recv(b->jfd, &e, 0));
        if (out[0])
                fail_msg("with the journal, bus1d wrote to stderr:\n%s", out);
}

/*
 * A client that connects, is refused and disconnects in a loop: its pair is
 * logged once, not once per connection (the users' accounting, which
 * counts refusals, goes away with their last peers every time).
 */
static void test_journal_refusal_reconnects(void **state) {
        static const char *const args[] = { "--log-target=journal", "--max-slices=16", NULL };
        JournalBroker *b = &journal_broker;
        char out[4096];
        Entry e;

        if (!journal_is_root() || !journal_start(b, true, JOURNAL_STREAM_UNSET, args))
                skip();

        assert_true(entry_recv(b->jfd, &e, 5000));
        expect_listening(b, &e);

        for (int cycle = 0; cycle < 5; ++cycle) {
                int a = peer_as(0), bp = peer_as(JOURNAL_UID_B), r = 0;
                uint64_t h = uapi_give(a, 0x100, bp);

                for (int i = 0; i < 64 && r == 0; ++i)
                        r = uapi_send_str(bp, h, "fill");
                assert_int_equal(r, -EDQUOT);
                assert_int_equal(bus1_uapi_close(bp), 0);
                assert_int_equal(bus1_uapi_close(a), 0);
        }

        /* exactly one line for the pair */
        assert_true(entry_recv(b->jfd, &e, 5000));
        entry_expect(&e, "CODE_FUNC", "broker_on_refusal");
        entry_expect(&e, "BUS1_UID", "65534");
        journal_stop(b, out, sizeof(out));
        assert_false(entry_recv(b->jfd, &e, 0));
        if (out[0])
                fail_msg("with the journal, bus1d wrote to stderr:\n%s", out);
}

static void test_journal_stream_detection(void **state) {
        JournalBroker *b = &journal_broker;
        char out[4096], text[2048];
        Entry e;

        if (!journal_is_root() || !journal_start(b, true, JOURNAL_STREAM_STDERR, NULL))
                skip();

        /* stderr is the stream $JOURNAL_STREAM names: entries, not lines */
        assert_true(entry_recv(b->jfd, &e, 5000));
        expect_listening(b, &e);
        journal_stop(b, out, sizeof(out));
        assert_string_equal(out, "");
        journal_teardown(state);

        /* a $JOURNAL_STREAM that is not our stderr means nothing */
        assert_true(journal_start(b, true, JOURNAL_STREAM_OTHER, NULL));
        journal_stop(b, out, sizeof(out));
        assert_false(entry_recv(b->jfd, &e, 0));
        snprintf(text, sizeof(text), "<5>bus1d: listening on %s (clients: BUS1_ADDRESS=%s)\n",
                 b->broker.path, b->broker.path);
        assert_string_equal(out, text);
        journal_teardown(state);

        /* --log-target=stderr wins over a matching $JOURNAL_STREAM */
        {
                static const char *const args[] = { "--log-target=stderr", NULL };

                assert_true(journal_start(b, true, JOURNAL_STREAM_STDERR, args));
                journal_stop(b, out, sizeof(out));
                assert_false(entry_recv(b->jfd, &e, 0));
                snprintf(text, sizeof(text),
                         "<5>bus1d: listening on %s (clients: BUS1_ADDRESS=%s)\n",
                         b->broker.path, b->broker.path);
                assert_string_equal(out, text);
        }
}

static void test_journal_missing(void **state) {
        static const char *const args[] = { "--log-target=journal", NULL };
        JournalBroker *b = &journal_broker;
        char out[4096], text[2048];

        /* no journal socket in the broker's /run: every message still gets out */
        if (!journal_is_root() || !journal_start(b, false, JOURNAL_STREAM_UNSET, args))
                skip();
        journal_stop(b, out, sizeof(out));
        snprintf(text, sizeof(text),
                 "<4>bus1d: no journal at /run/systemd/journal/socket; logging to stderr\n"
                 "<5>bus1d: listening on %s (clients: BUS1_ADDRESS=%s)\n", b->broker.path,
                 b->broker.path);
        assert_string_equal(out, text);
}

static void test_bad_log_target(void **state) {
        static const char *const args[] = { "--log-target=syslog", NULL };
        char out[4096], err[4096];
        int status;

        status = test_bus1d_run(NULL, args, out, sizeof(out), err, sizeof(err));
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_journal_fields, journal_teardown),
                cmocka_unit_test_teardown(test_journal_refusal_reconnects, journal_teardown),
                cmocka_unit_test_teardown(test_journal_stream_detection, journal_teardown),
                cmocka_unit_test_teardown(test_journal_missing, journal_teardown),
                cmocka_unit_test(test_bad_log_target),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
