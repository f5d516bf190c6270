/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hostile fds: no client can freeze the broker with a descriptor
 *
 * The broker runs one event loop for everybody. It used to fstat(2) and
 * close(2) descriptors clients sent on that loop; on a FUSE file whose
 * server never answers FLUSH, close(2) blocks uninterruptibly, so a single
 * record carrying such a descriptor froze the broker for every client.
 * Now it never fstat()s a client's descriptor and hands every one it
 * closes to a background thread (src/util/closer.c). These tests play the
 * attack against the real bus1d with a file from fuse-stall.c, each way the
 * broker comes to close such a descriptor:
 *  a. a raw connection, no HELLO, sends an FDS carrier with the file and
 *     closes: the broker drops the carried descriptor;
 *  b. a peer SENDs the file to another peer, which closes unreceived: the
 *     broker drops the message and its descriptor;
 *  c. the file named as HANDLE_TRANSFER's dst_fd: the broker finds it is no
 *     connection (EOPNOTSUPP, within a second) and closes it.
 * Each time the test waits until a thread of bus1d is stuck in close(2)
 * (the FUSE server saw its FLUSH), then a victim, two other peers, makes
 * 20 send/recv round trips: each must complete, none in a second or more.
 * When the FUSE server is killed the stuck close returns, and the broker
 * must end with exactly the descriptors it had at the start.
 *
 * Nothing may hang the test when the broker does freeze: attacker and
 * victim are forked children with alarm(CHILD_ALARM_S), reporting over a
 * pipe the parent polls with a timeout, so a regression fails within about
 * ten seconds. The stalled file must never be closed (in any process) while
 * its server lives: the test process keeps its copy until after
 * fuse_stall_stop(), the victim is forked before the file is opened, and
 * the attacker, which inherits it, is reaped only after the server died
 * (its exit blocks on FLUSH until then).
 *
 * Mounting FUSE needs root and /dev/fuse; without them each case is skipped
 * with the reason.
 */

#include <fcntl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include "fuse-stall.h"
#include "proto/proto.h"
#include "util-hostile.h"
#include "util-uapi.h"

#define ROUND_TRIPS 20
#define ROUND_TRIP_MAX_NS 1000000000ULL
#define TRANSFER_MAX_NS 1000000000ULL
/* a child that gets no answer for this long is killed by SIGALRM */
#define CHILD_ALARM_S 10
/* the parent waits this long for a child's report */
#define CHILD_WAIT_MS 15000
/* how long the broker may take to get around to closing the file */
#define FLUSH_WAIT_MS 2000
/* each peer's node */
#define NODE 0x100

/* what a child reports to the parent */
typedef struct Report {
        int error;                      /* 0: all went well, see text otherwise */
        int result;                     /* an attack's return value */
        uint64_t ns;                    /* the attack's time, or the worst round trip */
        unsigned int n;                 /* round trips done */
        char text[200];
} Report;

typedef struct Child {
        pid_t pid;                      /* 0: none */
        int go;                         /* write one byte: start */
        int result;                     /* a Report, or EOF if it died */
} Child;

typedef struct HostileFixture {
        TestBroker broker;
        bool running;
        unsigned int n_fds;             /* descriptors of the test process at start */
        FuseStall fuse;
        int fuse_r;                     /* fuse_stall_start() */
        int fd;                         /* the stalled file, -1: none */
        Child victim;
        Child attacker;
} HostileFixture;

typedef void (*ChildFn)(int fd, Report *rep);

/* a child's failure, in its report */
static void report_fail(Report *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report_fail(Report *rep, const char *fmt, ...) {
        va_list ap;

        rep->error = 1;
        va_start(ap, fmt);
        vsnprintf(rep->text, sizeof(rep->text), fmt, ap);
        va_end(ap);
}

/* ---- children -------------------------------------------------------------- */

/* qsort() order of descriptors */
static int int_cmp(const void *a, const void *b) {
        return *(const int *)a - *(const int *)b;
}

/* close every descriptor but stdio and the @n in @keep (< 0: ignored) */
static void child_keep_only(int *keep, size_t n) {
        unsigned int from = 3;

        qsort(keep, n, sizeof(*keep), int_cmp);
        for (size_t i = 0; i < n; ++i) {
                if (keep[i] < (int)from)
                        continue;
                if ((unsigned int)keep[i] > from)
                        close_range(from, (unsigned int)keep[i] - 1, 0);
                from = (unsigned int)keep[i] + 1;
        }
        close_range(from, ~0U, 0);
}

/* the child's end of its result pipe */
static int child_result = -1;

/*
 * The alarm: no answer in time. Close the result pipe first: the exit
 * closes descriptors in ascending order and stops at the stalled file (an
 * attacker's, opened before the pipe) until its server dies, so the parent
 * would not see the pipe's end otherwise.
 */
static void child_on_alarm(int sig) {
        (void)sig;
        close(child_result);
        _exit(4);
}

/* the child's side: wait for the go, run @fn under an alarm, report, exit */
static _Noreturn void child_main(int go, int result, int fd, ChildFn fn) {
        struct sigaction sa = { .sa_handler = child_on_alarm };
        Report rep = {};
        char c;

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        child_keep_only((int[]){ go, result, fd }, 3);
        child_result = result;
        if (read(go, &c, 1) != 1 || sigaction(SIGALRM, &sa, NULL) < 0)
                _exit(2);
        alarm(CHILD_ALARM_S);
        fn(fd, &rep);
        if (write(result, &rep, sizeof(rep)) != sizeof(rep))
                _exit(2);
        _exit(rep.error ? 1 : 0);
}

/* fork a child that runs @fn(@fd) once told to go; it keeps only @fd */
static void child_spawn(Child *child, int fd, ChildFn fn) {
        int go[2], result[2];

        assert_int_equal(pipe2(go, O_CLOEXEC), 0);
        assert_int_equal(pipe2(result, O_CLOEXEC), 0);
        fflush(NULL);
        child->pid = fork();
        assert_true(child->pid >= 0);
        if (child->pid == 0)
                child_main(go[0], result[1], fd, fn);
        close(go[0]);
        close(result[1]);
        child->go = go[1];
        child->result = result[0];
}

/* tell a spawned child to start */
static void child_go(Child *child) {
        assert_int_equal(write(child->go, "g", 1), 1);
}

/*
 * The child's report; fails the test if it has none within CHILD_WAIT_MS
 * (its alarm fired: the broker did not answer it) or reports a failure.
 */
static void child_report(Child *child, const char *who, Report *rep) {
        struct pollfd p = { .fd = child->result, .events = POLLIN };
        ssize_t l;
        int r;

        do {
                r = poll(&p, 1, CHILD_WAIT_MS);
        } while (r < 0 && errno == EINTR);
        if (r == 0)
                fail_msg("%s: no report in %d ms (the broker froze)", who, CHILD_WAIT_MS);
        l = read(child->result, rep, sizeof(*rep));
        if (l != sizeof(*rep))
                fail_msg("%s died without a report: the broker did not answer it within "
                         "%d s (frozen?)", who, CHILD_ALARM_S);
        if (rep->error)
                fail_msg("%s: %s", who, rep->text);
}

/* SIGKILL a child, if any (it may only be reaped once nothing blocks its exit) */
static void child_kill(Child *child) {
        if (child->pid > 0)
                kill(child->pid, SIGKILL);
}

/* reap a child and close its pipes; returns its status (0 if there was none) */
static int child_reap(Child *child) {
        int status = 0;

        if (child->pid <= 0)
                return 0;
        waitpid(child->pid, &status, 0);
        close(child->go);
        close(child->result);
        child->pid = 0;
        return status;
}

/* ---- the victim ------------------------------------------------------------ */

/* wait up to a second for @peer to become readable (no cmocka: a child) */
static void victim_wait(int peer) {
        struct pollfd p = { .fd = peer, .events = POLLIN };

        (void)poll(&p, 1, 1000);
}

/* receive on @peer, waiting for the entry if it is not there yet; 0 or -errno */
static int victim_recv(int peer, Report *rep) {
        struct bus1_cmd_recv r;
        int res;

        while ((res = uapi_recv(peer, 0, &r)) == -EAGAIN)
                victim_wait(peer);
        if (res < 0) {
                report_fail(rep, "RECV: %s", strerror(-res));
                return res;
        }
        if (r.msg.type != BUS1_MSG_DATA || r.msg.n_bytes != 4) {
                report_fail(rep, "RECV: entry type %llu, %llu bytes; expected a DATA of 4",
                            (unsigned long long)r.msg.type, (unsigned long long)r.msg.n_bytes);
                return -EBADMSG;
        }
        res = uapi_slice_release(peer, r.msg.offset);
        if (res < 0)
                report_fail(rep, "SLICE_RELEASE: %s", strerror(-res));
        return res;
}

/* one round trip: @a to @b's node, then back; 0 or -errno */
static int victim_round_trip(int a, uint64_t a_to_b, int b, uint64_t b_to_a, Report *rep) {
        int r;

        r = uapi_send_str(a, a_to_b, "ping");
        if (r < 0) {
                report_fail(rep, "SEND ping: %s", strerror(-r));
                return r;
        }
        r = victim_recv(b, rep);
        if (r < 0)
                return r;
        r = uapi_send_str(b, b_to_a, "pong");
        if (r < 0) {
                report_fail(rep, "SEND pong: %s", strerror(-r));
                return r;
        }
        return victim_recv(a, rep);
}

/* two fresh peers, handles to each other's node, ROUND_TRIPS round trips */
static void victim_run(int fd, Report *rep) {
        uint64_t a_to_b = 0, b_to_a = 0;
        int a, b;

        (void)fd;
        a = bus1_uapi_open(NULL);
        b = bus1_uapi_open(NULL);
        if (a < 0 || b < 0) {
                report_fail(rep, "bus1_uapi_open: %s", strerror(-(a < 0 ? a : b)));
                return;
        }
        if (uapi_transfer(b, NODE, a, &a_to_b) < 0 || uapi_transfer(a, NODE, b, &b_to_a) < 0) {
                report_fail(rep, "HANDLE_TRANSFER between the victim's peers failed");
                return;
        }
        for (rep->n = 0; rep->n < ROUND_TRIPS; ++rep->n) {
                uint64_t t = now_ns();

                if (victim_round_trip(a, a_to_b, b, b_to_a, rep) < 0)
                        return;
                t = now_ns() - t;
                if (t > rep->ns)
                        rep->ns = t;
        }
        bus1_uapi_close(a);
        bus1_uapi_close(b);
}

/* ---- the attacks (in a child that holds the stalled file) ------------------ */

/* send @len bytes on @sock with @fd attached (SCM_RIGHTS); 0 or -errno */
static int send_with_fd(int sock, const void *buf, size_t len, int fd) {
        union {
                struct cmsghdr h;
                char b[CMSG_SPACE(sizeof(int))];
        } c = {};
        struct iovec v = { .iov_base = (void *)buf, .iov_len = len };
        struct msghdr m = {
                .msg_iov = &v,
                .msg_iovlen = 1,
                .msg_control = &c,
                .msg_controllen = sizeof(c),
        };
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);

        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(h), &fd, sizeof(int));
        return sendmsg(sock, &m, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

/* a raw connection to the broker's socket ($BUS1_ADDRESS); -errno on failure */
static int connect_raw(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *path = getenv("BUS1_ADDRESS");
        int s;

        if (!path)
                return -ENOENT;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (s < 0)
                return -errno;
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;

                close(s);
                return r;
        }
        return s;
}

/* a: no HELLO, one FDS carrier with the file, then close */
static void attack_carrier(int fd, Report *rep) {
        uint8_t buf[PROTO_SIZE_FDS];
        int s, l, r;

        s = connect_raw();
        if (s < 0) {
                report_fail(rep, "connect: %s", strerror(-s));
                return;
        }
        l = proto_encode_fds(buf, sizeof(buf), &(ProtoFds){ .type = PROTO_TYPE_FDS,
                                                            .n_fds = 1 });
        r = l < 0 ? l : send_with_fd(s, buf, (size_t)l, fd);
        if (r < 0)
                report_fail(rep, "sending the carrier: %s", strerror(-r));
        close(s);
}

/* b: the file in a SEND to another peer, which then closes without receiving */
static void attack_send(int fd, Report *rep) {
        struct bus1_cmd_send s = { .n_destinations = 1, .n_fds = 1 };
        uint64_t to_receiver = 0;
        int receiver, sender, r;

        receiver = bus1_uapi_open(NULL);
        sender = bus1_uapi_open(NULL);
        if (receiver < 0 || sender < 0) {
                report_fail(rep, "bus1_uapi_open: %s",
                            strerror(-(receiver < 0 ? receiver : sender)));
                return;
        }
        r = uapi_transfer(receiver, NODE, sender, &to_receiver);
        if (r < 0) {
                report_fail(rep, "HANDLE_TRANSFER: %s", strerror(-r));
                return;
        }
        s.ptr_destinations = (uintptr_t)&to_receiver;
        s.ptr_fds = (uintptr_t)&fd;
        rep->result = bus1_uapi_ioctl(sender, BUS1_CMD_SEND, &s);
        if (rep->result < 0)
                report_fail(rep, "SEND with the file: %s", strerror(-rep->result));
        bus1_uapi_close(receiver);
        bus1_uapi_close(sender);
}

/* c: the file as HANDLE_TRANSFER's destination: EOPNOTSUPP, promptly */
static void attack_transfer(int fd, Report *rep) {
        struct bus1_cmd_handle_transfer t = { .src_handle = NODE, .dst_fd = (uint64_t)fd };
        int peer;

        peer = bus1_uapi_open(NULL);
        if (peer < 0) {
                report_fail(rep, "bus1_uapi_open: %s", strerror(-peer));
                return;
        }
        rep->ns = now_ns();
        rep->result = bus1_uapi_ioctl(peer, BUS1_CMD_HANDLE_TRANSFER, &t);
        rep->ns = now_ns() - rep->ns;
        if (rep->result != -EOPNOTSUPP)
                report_fail(rep, "HANDLE_TRANSFER to the file: %s, expected EOPNOTSUPP",
                            rep->result < 0 ? strerror(-rep->result) : "success");
        else if (rep->ns >= TRANSFER_MAX_NS)
                report_fail(rep, "HANDLE_TRANSFER to the file took %llu ms",
                            (unsigned long long)(rep->ns / 1000000));
        bus1_uapi_close(peer);
}

/* ---- fixture --------------------------------------------------------------- */

/* the case's broker (as root) and FUSE server; no file open yet */
static int hostile_setup(void **state) {
        HostileFixture *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        f->fd = -1;
        *state = f;
        f->n_fds = test_count_fds(0);
        /*
         * Only root may mount FUSE (and count a broker's descriptors): as
         * anybody else the case skips, with no broker to start.
         */
        if (geteuid() == 0) {
                test_broker_start(&f->broker);
                f->running = true;
        }
        f->fuse_r = fuse_stall_start(&f->fuse);
        return 0;
}

/*
 * After a failure: nothing may be left blocked or running. The server dies
 * first, so that every close of the file (the broker's, the attacker's
 * exit, ours) returns.
 */
static int hostile_teardown(void **state) {
        HostileFixture *f = *state;

        if (!f)
                return 0;
        child_kill(&f->victim);
        child_kill(&f->attacker);
        fuse_stall_stop(&f->fuse);
        if (f->fd >= 0)
                close(f->fd);
        child_reap(&f->victim);
        child_reap(&f->attacker);
        if (f->running) {
                test_broker_kill(&f->broker);
                unsetenv("BUS1_ADDRESS");
        }
        free(f);
        *state = NULL;
        return 0;
}

/* skip the case, saying why, if FUSE is unavailable here */
static void hostile_require_fuse(HostileFixture *f) {
        if (f->fuse_r == -EOPNOTSUPP) {
                print_message("skipped: FUSE unavailable: %s\n", f->fuse.error);
                skip();
        }
        if (f->fuse_r < 0)
                fail_msg("fuse_stall_start: %s", strerror(-f->fuse_r));
}

/* a thread of bus1d that sent FLUSH (is stuck in close(2)), or 0 */
static pid_t broker_stuck_thread(HostileFixture *f) {
        pid_t tids[FUSE_STALL_FLUSHES_MAX];
        unsigned int n;
        char path[64];

        n = fuse_stall_flushes(&f->fuse, tids, FUSE_STALL_FLUSHES_MAX);
        for (unsigned int i = 0; i < n && i < FUSE_STALL_FLUSHES_MAX; ++i) {
                snprintf(path, sizeof(path), "/proc/%d/task/%d", (int)f->broker.pid,
                         (int)tids[i]);
                if (tids[i] > 0 && access(path, F_OK) == 0)
                        return tids[i];
        }
        return 0;
}

/* wait until bus1d is stuck closing the file: the attack has landed */
static void hostile_wait_stuck(HostileFixture *f) {
        struct timespec ts = { .tv_nsec = 5 * 1000 * 1000 };
        pid_t tid = 0;

        for (int i = 0; i < FLUSH_WAIT_MS / 5 && !tid; ++i) {
                tid = broker_stuck_thread(f);
                if (!tid)
                        nanosleep(&ts, NULL);
        }
        if (!tid)
                fail_msg("bus1d did not close the file within %d ms (%u FLUSH requests, "
                         "none from bus1d): the attack did not land", FLUSH_WAIT_MS,
                         fuse_stall_flushes(&f->fuse, NULL, 0));
        print_message("bus1d thread %d (%s) is stuck in close(2) on the FUSE file\n",
                      (int)tid, tid == f->broker.pid ? "the main thread" : "not the main one");
}

/*
 * One case: the victim is forked before the file is opened (it never holds
 * it), the attacker after (it inherits it); once bus1d is stuck closing the
 * file, the victim must get ROUND_TRIPS round trips through.
 */
static void hostile_run(HostileFixture *f, ChildFn attack, Report *attack_rep) {
        Report rep;

        hostile_require_fuse(f);
        child_spawn(&f->victim, -1, victim_run);
        f->fd = fuse_stall_open(&f->fuse);
        if (f->fd < 0)
                fail_msg("opening %s: %s", f->fuse.path, strerror(-f->fd));

        child_spawn(&f->attacker, f->fd, attack);
        child_go(&f->attacker);
        child_report(&f->attacker, "attacker", attack_rep);
        hostile_wait_stuck(f);

        child_go(&f->victim);
        child_report(&f->victim, "victim", &rep);
        print_message("victim: %u round trips, the slowest %llu us\n", rep.n,
                      (unsigned long long)(rep.ns / 1000));
        assert_int_equal(rep.n, ROUND_TRIPS);
        if (rep.ns >= ROUND_TRIP_MAX_NS)
                fail_msg("a round trip took %llu ms", (unsigned long long)(rep.ns / 1000000));
}

/*
 * The end of a case that passed: the server dies (the stuck close returns),
 * then our copy is closed, the children reaped; nothing may leak, here or
 * in the broker.
 */
static void hostile_finish(HostileFixture *f) {
        fuse_stall_stop(&f->fuse);
        /* the connection is aborted now: the close returns at once */
        close(f->fd);
        f->fd = -1;
        assert_int_equal(child_reap(&f->attacker), 0);
        assert_int_equal(child_reap(&f->victim), 0);
        assert_int_equal(test_count_fds(0), f->n_fds);
        /* test_broker_stop() waits (up to 2 s) for the closer to catch up */
        test_broker_stop(&f->broker);
        f->running = false;
}

/* ---- the cases ------------------------------------------------------------- */

/* a: an FDS carrier on a connection that never said HELLO */
static void test_carrier_without_hello(void **state) {
        HostileFixture *f = *state;
        Report rep;

        hostile_run(f, attack_carrier, &rep);
        hostile_finish(f);
}

/* b: a message with the file, dropped with its receiver */
static void test_send_dropped_unreceived(void **state) {
        HostileFixture *f = *state;
        Report rep;

        hostile_run(f, attack_send, &rep);
        hostile_finish(f);
}

/* c: the file as a transfer destination, which the broker must refuse promptly */
static void test_transfer_destination(void **state) {
        HostileFixture *f = *state;
        Report rep;

        hostile_run(f, attack_transfer, &rep);
        print_message("HANDLE_TRANSFER to the file: EOPNOTSUPP in %llu us\n",
                      (unsigned long long)(rep.ns / 1000));
        hostile_finish(f);
}

/* an optional argument selects tests by name (cmocka's pattern) */
int main(int argc, char **argv) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_carrier_without_hello, hostile_setup,
                                                hostile_teardown),
                cmocka_unit_test_setup_teardown(test_send_dropped_unreceived, hostile_setup,
                                                hostile_teardown),
                cmocka_unit_test_setup_teardown(test_transfer_destination, hostile_setup,
                                                hostile_teardown),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
