/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Socket activation: bus1d started the way bus1.socket starts it
 *
 * systemd-socket-activate (Meson passes its path in
 * $BUS1D_TEST_SOCKET_ACTIVATE; without it the test is skipped) binds the
 * SOCK_SEQPACKET socket, waits for the first connection and then execs
 * bus1d in its own place with LISTEN_FDS=1, exactly like a socket unit
 * with Accept=no. The test then checks what the units rely on:
 *  - the first client's connection, made before bus1d ran, is served;
 *  - READY=1 reaches $NOTIFY_SOCKET (Type=notify), STOPPING=1 at SIGTERM;
 *  - clients exchange messages through it;
 *  - with no client left, the broker holds exactly its baseline
 *    descriptors: stdio, the activated socket (fd 3), the epoll and the
 *    signalfd of sd-event, the same set before and after a burst of
 *    clients;
 *  - SIGTERM makes it exit 0, and it leaves the activated socket in place
 *    (it belongs to systemd, which keeps listening);
 *  - it wrote nothing at all to stderr: quiet in normal operation.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "util-broker.h"
#include "util-uapi.h"

#define ACTIVATION_FDS_MAX 64
#define ACTIVATION_CLIENTS 8

typedef struct FdEntry {
        int fd;
        char target[128];
} FdEntry;

static int fd_entry_compare(const void *a, const void *b) {
        return ((const FdEntry *)a)->fd - ((const FdEntry *)b)->fd;
}

/* the descriptors of @pid, sorted, with what they point to; SIZE_MAX if closed to us */
static size_t fd_list(pid_t pid, FdEntry *out) {
        char path[64];
        struct dirent *d;
        size_t n = 0;
        DIR *dir;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
        dir = opendir(path);
        /* not root: the broker is non-dumpable, its fd directory is root's */
        if (!dir && errno == EACCES)
                return SIZE_MAX;
        if (!dir)
                fail_msg("opendir(%s): %s", path, strerror(errno));
        while ((d = readdir(dir))) {
                char link[sizeof(path) + sizeof(d->d_name)];
                ssize_t l;

                if (d->d_name[0] == '.')
                        continue;
                assert_true(n < ACTIVATION_FDS_MAX);
                out[n].fd = atoi(d->d_name);
                snprintf(link, sizeof(link), "%s/%s", path, d->d_name);
                l = readlink(link, out[n].target, sizeof(out[n].target) - 1);
                out[n].target[l < 0 ? 0 : l] = 0;
                ++n;
        }
        closedir(dir);
        qsort(out, n, sizeof(*out), fd_entry_compare);
        return n;
}

static void fd_print(const char *what, const FdEntry *fds, size_t n) {
        print_message("%s:\n", what);
        for (size_t i = 0; i < n; ++i)
                print_message("  %d -> %s\n", fds[i].fd, fds[i].target);
}

/*
 * The idle broker's set: stdio, the activated socket at fd 3, and exactly
 * two epolls (the broker's, holding the connections, and sd-event's) and
 * one signalfd (sd-event). Anything else is a leak or a
 * descriptor the units' LimitNOFILE= reasoning does not know about.
 */
static bool fd_is_baseline(const FdEntry *fds, size_t n) {
        unsigned int n_epoll = 0, n_signal = 0, n_listen = 0, n_timer = 0;

        for (size_t i = 0; i < n; ++i) {
                if (fds[i].fd <= 2)
                        continue;
                if (fds[i].fd == 3 && strncmp(fds[i].target, "socket:[", 8) == 0)
                        ++n_listen;
                else if (strcmp(fds[i].target, "anon_inode:[eventpoll]") == 0)
                        ++n_epoll;
                else if (strcmp(fds[i].target, "anon_inode:[signalfd]") == 0)
                        ++n_signal;
                else if (strcmp(fds[i].target, "anon_inode:[timerfd]") == 0)
                        ++n_timer;      /* the sweep that trims idle pools */
                else
                        return false;
        }
        return n_listen == 1 && n_epoll == 2 && n_signal == 1 && n_timer == 1;
}

/*
 * Whether a socket bound to @path listens, from /proc/net/unix (its Flags
 * column has __SO_ACCEPTCON, 0x10000, once listen(2) was called). Asking by
 * connecting would be the first connection, which starts the broker.
 */
static bool activation_listening(const char *path) {
        char line[512];
        bool found = false;
        FILE *f;

        f = fopen("/proc/net/unix", "re");
        if (!f)
                fail_msg("/proc/net/unix: %s", strerror(errno));
        while (!found && fgets(line, sizeof(line), f)) {
                unsigned long flags = 0;
                size_t n = strlen(line), m = strlen(path);

                while (n > 0 && line[n - 1] == '\n')
                        line[--n] = 0;
                if (n < m + 1 || strcmp(line + n - m, path) != 0 || line[n - m - 1] != ' ')
                        continue;
                /* "Num: RefCount Protocol Flags Type St Inode Path" */
                if (sscanf(line, "%*s %*s %*s %lx", &flags) == 1 && (flags & 0x10000))
                        found = true;
        }
        fclose(f);
        return found;
}

/*
 * Wait (the broker sees hang-ups asynchronously) until @pid holds its
 * baseline. Not root, its descriptors cannot be listed: the check is
 * skipped, with a line (0 returned).
 */
static size_t fd_wait_baseline(pid_t pid, FdEntry *fds) {
        struct timespec ts = { .tv_nsec = 5 * 1000 * 1000 };
        size_t n = 0;

        for (int i = 0; i < 1000; ++i) {
                n = fd_list(pid, fds);
                if (n == SIZE_MAX) {
                        print_message("not root: bus1d's descriptors cannot be listed "
                                      "(it is non-dumpable); baseline check skipped\n");
                        return 0;
                }
                if (fd_is_baseline(fds, n))
                        return n;
                nanosleep(&ts, NULL);
        }
        fd_print("bus1d holds more than its baseline", fds, n);
        fail_msg("bus1d did not return to its baseline descriptors");
        return 0;
}

static bool fd_equal(const FdEntry *a, size_t n_a, const FdEntry *b, size_t n_b) {
        if (n_a != n_b)
                return false;
        for (size_t i = 0; i < n_a; ++i)
                if (a[i].fd != b[i].fd || strcmp(a[i].target, b[i].target) != 0)
                        return false;
        return true;
}

/* the next notification, which must contain @what */
static void expect_notify(int nfd, const char *what) {
        struct pollfd p = { .fd = nfd, .events = POLLIN };
        char buf[512];
        ssize_t l;

        assert_int_equal(poll(&p, 1, 10000), 1);
        l = recv(nfd, buf, sizeof(buf) - 1, 0);
        assert_true(l > 0);
        buf[l] = 0;
        if (!strstr(buf, what))
                fail_msg("expected %s on $NOTIFY_SOCKET, got \"%s\"", what, buf);
}

/* the process under test, killed by the teardown if the test failed half-way */
static TestBroker activation_broker;

static int activation_teardown(void **state) {
        test_broker_kill(&activation_broker);
        return 0;
}

/* in the child: the activator in the broker's place, which execs bus1d at the first client */
static int activation_exec(const TestBroker *broker, const char *exe, void *userdata) {
        const char *activate = userdata;

        execl(activate, activate, "--seqpacket", "-l", broker->path, "-E", "NOTIFY_SOCKET", exe,
              (char *)NULL);
        return 127;
}

static void test_activated_like_the_unit(void **state) {
        /* the activator's own chatter is not the broker's */
        static const char *const env[] = { "SYSTEMD_LOG_LEVEL=warning", NULL };
        const char *activate = getenv("BUS1D_TEST_SOCKET_ACTIVATE");
        const char *exe = getenv("BUS1D_TEST_BROKER");
        TestBroker *broker = &activation_broker;
        struct timespec ts = { .tv_nsec = 2 * 1000 * 1000 };
        FdEntry before[ACTIVATION_FDS_MAX], after[ACTIVATION_FDS_MAX];
        UapiFixture f = {};
        size_t n_before, n_after;
        char out[4096];
        int a, status;
        struct stat st;
        const char *path;
        uint64_t ha;
        ssize_t l;
        pid_t pid;

        if (!activate) {
                print_message("systemd-socket-activate not found (Debian package systemd); "
                              "skipping\n");
                skip();
        }
        assert_non_null(exe);
        for (size_t i = 0; i < UAPI_PEERS_MAX; ++i)
                f.peers[i] = -1;

        /*
         * What systemd gives a service: stdio and nothing else, and
         * $NOTIFY_SOCKET; no waiting for READY=1, which only comes once a
         * client connected.
         */
        test_broker_spawn(broker, &(TestBrokerOptions){
                .env = env,
                .stdio_only = true,
                .capture_stderr = true,
                .child_setup = activation_exec,
                .userdata = (void *)activate,
                .wait = TEST_BROKER_WAIT_NONE,
                .keep_notify = true,
        });
        pid = broker->pid;
        path = broker->path;

        /*
         * The activator listens; bus1d does not run yet. The socket file
         * appears at bind(2), before listen(2): a connect in between would
         * be refused, so wait for the listening state itself.
         */
        for (int i = 0; i < 5000 && !activation_listening(path); ++i) {
                if (waitpid(pid, &status, WNOHANG) == pid)
                        fail_msg("systemd-socket-activate exited (status 0x%x)", status);
                nanosleep(&ts, NULL);
        }
        assert_true(activation_listening(path));
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));

        /* the first client's connect starts the broker, which serves it */
        setenv("BUS1_ADDRESS", path, 1);
        a = uapi_peer(&f);
        expect_notify(broker->notify_fd, "READY=1");
        {
                char cmdline[256] = "";
                int fd;

                snprintf(out, sizeof(out), "/proc/%d/cmdline", (int)pid);
                fd = open(out, O_RDONLY | O_CLOEXEC);
                assert_true(fd >= 0);
                l = read(fd, cmdline, sizeof(cmdline) - 1);
                close(fd);
                assert_true(l > 0);
                /* the activator exec'd the broker in its own place */
                assert_string_equal(cmdline, exe);
        }

        /* clients talk through it */
        {
                int b = uapi_peer(&f);

                ha = uapi_give(a, 0x100, b);
                assert_int_equal(uapi_send_str(b, ha, "hello"), 0);
                uapi_expect_str(&f, a, 0x100, "hello");
                assert_int_equal(uapi_close(&f, b), 0);
        }
        assert_int_equal(uapi_close(&f, a), 0);

        n_before = fd_wait_baseline(pid, before);

        /* a burst of clients, each sending to the first, then all gone */
        a = uapi_peer(&f);
        for (int i = 0; i < ACTIVATION_CLIENTS; ++i) {
                int b = uapi_peer(&f);

                ha = uapi_give(a, 0x100 + 0x100 * (uint64_t)i, b);
                assert_int_equal(uapi_send_str(b, ha, "burst"), 0);
        }
        for (int i = 0; i < ACTIVATION_CLIENTS; ++i)
                uapi_expect_str(&f, a, 0x100 + 0x100 * (uint64_t)i, "burst");
        for (size_t i = 0; i < UAPI_PEERS_MAX; ++i)
                if (f.peers[i] >= 0)
                        assert_int_equal(uapi_close(&f, f.peers[i]), 0);

        n_after = fd_wait_baseline(pid, after);
        if (!fd_equal(before, n_before, after, n_after)) {
                fd_print("before the clients", before, n_before);
                fd_print("after the clients", after, n_after);
                fail_msg("the idle broker's descriptors changed");
        }

        assert_int_equal(kill(pid, SIGTERM), 0);
        expect_notify(broker->notify_fd, "STOPPING=1");
        status = test_broker_wait(broker);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);

        /* quiet: not one line at the default level */
        if (test_broker_read_err(broker, out, sizeof(out)))
                fail_msg("bus1d wrote to stderr in normal operation:\n%s", out);

        /* systemd's socket stays; unlinking it is not the broker's business */
        assert_int_equal(stat(path, &st), 0);
        unsetenv("BUS1_ADDRESS");
        test_broker_kill(broker);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_activated_like_the_unit, activation_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
