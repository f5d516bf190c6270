/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Broker process: command line, addresses, readiness, shutdown, bad input
 *
 * These tests run bus1d the ways a user and systemd do: with --listen, on
 * the default address under $XDG_RUNTIME_DIR, socket-activated
 * (LISTEN_FDS), and with a NOTIFY_SOCKET to see READY=1. They also throw
 * malformed records at it and check that only the offending connection
 * goes and that no descriptor leaks. A second broker on a live address is
 * refused while the first keeps serving; a stale socket (its broker was
 * killed) is taken over; a broker that exits leaves a socket another
 * broker put at its path alone.
 */

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
#include "bus1/uapi.h"
#include "util-broker.h"

/* the broker of a case that starts one by hand, killed by the teardown if the case failed */
static TestBroker process_broker;

static int process_teardown(void **state) {
        test_broker_kill(&process_broker);
        return 0;
}

/*
 * Run bus1d with @args to its exit, collecting its stdout and stderr; one
 * that has not exited after 10 s is killed and fails the test (a broker
 * that should have refused to start must not hang the suite).
 */
static int run_status(const char *const *args, char *out, size_t size) {
        return test_bus1d_run(NULL, args, out, size, NULL, 0);
}

static void test_help_and_version(void **state) {
        char out[4096];
        int status;

        status = run_status((const char *[]){ "--help", NULL }, out, sizeof(out));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_non_null(strstr(out, "--listen"));

        status = run_status((const char *[]){ "--version", NULL }, out, sizeof(out));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_non_null(strstr(out, "bus1d "));

        status = run_status((const char *[]){ "--no-such-option", NULL }, out, sizeof(out));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

/* SIGTERM: it exits 0 */
static void stop(TestBroker *broker) {
        int status = test_broker_terminate(broker);

        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_default_address_and_notify(void **state) {
        char runtime[] = "/tmp/bus1d-test-XXXXXX", sock[96], env_runtime[64], buf[256];
        const char *env[] = { env_runtime, NULL };
        TestBroker *broker = &process_broker;
        struct stat st;
        int peer;

        assert_non_null(mkdtemp(runtime));
        snprintf(sock, sizeof(sock), "%s/bus1/socket", runtime);
        snprintf(env_runtime, sizeof(env_runtime), "XDG_RUNTIME_DIR=%s", runtime);

        /* no --listen: READY=1 arrives once the broker listens */
        test_broker_spawn(broker, &(TestBrokerOptions){
                .path = sock,
                .no_listen = true,
                .env = env,
                .no_fd_baseline = true,
        });

        /* the directory is private, and clients find the broker there */
        assert_int_equal(stat(sock, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        snprintf(buf, sizeof(buf), "%s/bus1", runtime);
        assert_int_equal(stat(buf, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);

        unsetenv("BUS1_ADDRESS");
        setenv("XDG_RUNTIME_DIR", runtime, 1);
        peer = bus1_uapi_open(NULL);
        assert_true(peer >= 0);
        assert_int_equal(bus1_uapi_close(peer), 0);

        stop(broker);
        /* a clean shutdown removes the socket it bound */
        assert_int_equal(stat(sock, &st), -1);
        test_broker_kill(broker);
        rmdir(buf);
        rmdir(runtime);
}

/* in the child: the listening socket as fd 3, exactly what systemd does for a socket unit */
static int socket_activation_setup(const TestBroker *broker, const char *exe, void *userdata) {
        int lfd = *(const int *)userdata;
        char n[32];

        if (lfd == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(lfd, 3) < 0)
                return 126;
        snprintf(n, sizeof(n), "%d", (int)getpid());
        setenv("LISTEN_PID", n, 1);
        setenv("LISTEN_FDS", "1", 1);
        return 0;
}

static void test_socket_activation(void **state) {
        static const char *const env[] = { "XDG_RUNTIME_DIR", NULL };
        char dir[] = "/tmp/bus1d-test-XXXXXX", path[64];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct bus1_cmd_peer_reset q = {};
        TestBroker *broker = &process_broker;
        int lfd, peer;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/socket", dir);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);

        lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        assert_true(lfd >= 0);
        assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(lfd, 16), 0);

        /* no --listen, LISTEN_FDS=1; the first client connects before it runs */
        test_broker_spawn(broker, &(TestBrokerOptions){
                .path = path,
                .no_listen = true,
                .env = env,
                .child_setup = socket_activation_setup,
                .userdata = &lfd,
                .wait = TEST_BROKER_WAIT_NONE,
        });
        close(lfd);

        peer = bus1_uapi_open(path);
        assert_true(peer >= 0);
        assert_int_equal(bus1_uapi_ioctl(peer, BUS1_CMD_PEER_QUERY, &q), 0);
        assert_int_equal(q.max_slices, 16384);
        assert_int_equal(bus1_uapi_close(peer), 0);

        stop(broker);
        test_broker_kill(broker);
        rmdir(dir);
}

static int raw_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        return fd;
}

/* the broker hangs up on @fd: read until EOF */
static void expect_hangup(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        char buf[256];

        for (;;) {
                ssize_t l;

                assert_int_equal(poll(&p, 1, 10000), 1);
                l = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (l == 0 || (l < 0 && errno == ECONNRESET))
                        return;
                assert_true(l > 0 || errno == EAGAIN);
        }
}

static void send_with_fds(int fd, const void *data, size_t len, int n_fds) {
        union {
                struct cmsghdr cmsg;
                char buf[CMSG_SPACE(sizeof(int) * 8)];
        } control = {};
        struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        int fds[8];

        for (int i = 0; i < n_fds; ++i)
                fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (n_fds) {
                msg.msg_control = &control;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                control.cmsg.cmsg_level = SOL_SOCKET;
                control.cmsg.cmsg_type = SCM_RIGHTS;
                control.cmsg.cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(&control.cmsg), fds, sizeof(int) * n_fds);
        }
        assert_true(sendmsg(fd, &msg, MSG_NOSIGNAL) >= 0);
        for (int i = 0; i < n_fds; ++i)
                close(fds[i]);
}

static void test_bad_input(void **state) {
        static uint8_t big[256 * 1024];
        uint8_t garbage[64];
        TestBroker broker;
        int fd, good;

        test_broker_start(&broker);

        /* a well-behaved peer must not notice any of this */
        good = bus1_uapi_open(NULL);
        assert_true(good >= 0);

        /* garbage with fds attached: disconnect, fds closed */
        for (size_t i = 0; i < sizeof(garbage); ++i)
                garbage[i] = (uint8_t)(i * 37 + 11);
        fd = raw_connect(broker.path);
        send_with_fds(fd, garbage, sizeof(garbage), 5);
        expect_hangup(fd);
        close(fd);

        /* a record longer than any the protocol allows (MSG_TRUNC) */
        fd = raw_connect(broker.path);
        memset(big, 0xab, sizeof(big));
        send_with_fds(fd, big, 200 * 1024, 2);
        expect_hangup(fd);
        close(fd);

        /* an empty record, then hang up ourselves mid-way */
        fd = raw_connect(broker.path);
        send_with_fds(fd, garbage, 0, 0);
        close(fd);

        /* a valid-looking header with a wrong size */
        fd = raw_connect(broker.path);
        {
                uint8_t h[24] = { 24, 0, 0, 0, 1, 0, 0x40, 0x01 };

                send_with_fds(fd, h, sizeof(h), 1);
        }
        expect_hangup(fd);
        close(fd);

        {
                struct bus1_cmd_peer_reset q = {};

                assert_int_equal(bus1_uapi_ioctl(good, BUS1_CMD_PEER_QUERY, &q), 0);
        }
        assert_int_equal(bus1_uapi_close(good), 0);
        /* every fd that arrived with bad records was closed */
        test_broker_stop(&broker);
}

/* brokers of the address tests, killed by the teardown if a check failed */
static TestBroker address_brokers[2];

static int address_teardown(void **state) {
        for (size_t i = 0; i < sizeof(address_brokers) / sizeof(address_brokers[0]); ++i) {
                test_broker_kill(&address_brokers[i]);
                address_brokers[i].pid = 0;
        }
        return 0;
}

static void address_stop(TestBroker *broker) {
        test_broker_stop(broker);
        broker->pid = 0;
}

/* a peer on @path works: open, query, close */
static void expect_served(const char *path) {
        struct bus1_cmd_peer_reset q = {};
        int peer;

        setenv("BUS1_ADDRESS", path, 1);
        peer = bus1_uapi_open(NULL);
        assert_true(peer >= 0);
        assert_int_equal(bus1_uapi_ioctl(peer, BUS1_CMD_PEER_QUERY, &q), 0);
        assert_int_equal(bus1_uapi_close(peer), 0);
}

/* a second broker on a live address fails, saying so; the first serves on */
static void test_address_in_use(void **state) {
        TestBroker *a = &address_brokers[0];
        char arg[160], out[4096];
        struct stat before, after;
        int status;

        test_broker_start(a);
        assert_int_equal(stat(a->path, &before), 0);
        snprintf(arg, sizeof(arg), "--listen=%s", a->path);
        status = run_status((const char *[]){ arg, NULL }, out, sizeof(out));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
        if (!strstr(out, "address in use"))
                fail_msg("no 'address in use' in: %s", out);

        /* the same socket file, and the first broker behind it */
        assert_int_equal(stat(a->path, &after), 0);
        assert_int_equal(before.st_ino, after.st_ino);
        expect_served(a->path);
        address_stop(a);
}

/* a socket whose broker was killed is taken over; the new broker removes it */
static void test_stale_socket(void **state) {
        TestBroker *a = &address_brokers[0], *b = &address_brokers[1];
        const char *args[2] = { NULL, NULL };
        char arg[160];
        struct stat st;

        test_broker_start(a);
        kill(a->pid, SIGKILL);
        assert_int_equal(waitpid(a->pid, NULL, 0), a->pid);
        a->pid = 0;
        assert_int_equal(stat(a->path, &st), 0);

        snprintf(arg, sizeof(arg), "--listen=%s", a->path);
        args[0] = arg;
        test_broker_start_args(b, args);
        expect_served(a->path);
        test_broker_stop(b);
        b->pid = 0;
        assert_int_equal(stat(a->path, &st), -1);
        assert_int_equal(errno, ENOENT);
        rmdir(a->dir);
}

/* a broker exits: the socket another broker bound at its path since stays */
static void test_exit_keeps_foreign_socket(void **state) {
        TestBroker *a = &address_brokers[0], *b = &address_brokers[1];
        const char *args[2] = { NULL, NULL };
        char arg[160];
        struct stat st;

        test_broker_start(a);
        assert_int_equal(unlink(a->path), 0);
        snprintf(arg, sizeof(arg), "--listen=%s", a->path);
        args[0] = arg;
        test_broker_start_args(b, args);

        /* the first broker's directory must stay for the second one's socket */
        kill(a->pid, SIGTERM);
        assert_int_equal(waitpid(a->pid, NULL, 0), a->pid);
        a->pid = 0;
        assert_int_equal(stat(a->path, &st), 0);
        expect_served(a->path);

        address_stop(b);
        assert_int_equal(stat(a->path, &st), -1);
        rmdir(a->dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_help_and_version),
                cmocka_unit_test_teardown(test_default_address_and_notify, process_teardown),
                cmocka_unit_test_teardown(test_socket_activation, process_teardown),
                cmocka_unit_test(test_bad_input),
                cmocka_unit_test_teardown(test_address_in_use, address_teardown),
                cmocka_unit_test_teardown(test_stale_socket, address_teardown),
                cmocka_unit_test_teardown(test_exit_keeps_foreign_socket, address_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
