/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hostile load: many busy clients of one UID against the real bus1d, each
 * case while a victim pair of peers (the test's UID) measures its round
 * trips.
 *
 *  - a ready storm: 1000 raw connections that each keep exactly one cheap
 *    request (PEER_QUERY) in flight all the time, so the broker always has
 *    a thousand ready connections; dispatching them must not cost the
 *    victim more than any other client (a dispatch that walks every ready
 *    connection for each one it serves is O(n^2), and the victim waited
 *    132-158 ms per round trip behind it);
 *  - a mass hang-up: 5000 HELLO'd connections closed at once (their process
 *    exits) while the victim measures; the broker's descriptors are back to
 *    the idle count within 10 s, and dropping them costs it under a second
 *    of CPU (about 150 ms; the O(n^2) dispatch took 1.7-3 s, and the
 *    victim's round trip that waited behind it 1-2.8 s);
 *  - expensive multicasts: 16 processes, each with a sender holding handles
 *    to 256 nodes of a receiver of its own, SEND to all 256 with a small
 *    payload in a loop while the receiver drains (RECV, SLICE_RELEASE), so
 *    quotas never stop the flood.
 *
 * The attackers are forked children that run as UID 65534 when the test
 * runs as root (as CI does: setgroups/setresgid/setresuid, the way
 * test-quota.c drops), else as the test's own UID (a line says so). They
 * speak the wire protocol by hand (src/proto) or through the UAPI layer,
 * report over a socket the parent polls with a timeout, die with their
 * parent (PR_SET_PDEATHSIG) or after CHILD_ALARM_S, and are killed and
 * reaped by the teardown after a failed assertion, which SIGKILLs the
 * broker too. A watchdog (alarm) kills everything if a case hangs.
 *
 * The victim, two peers of the test's UID, makes send-recv round trips
 * for 2 s (at least 50) under a steady attack, or from the moment the
 * attackers leave until the broker has dropped them. It must stay served:
 * p50 under 20 ms and no round trip over 1 s (a thousand times the idle
 * figures, so a loaded machine never flakes, while a broker that starves
 * one client for the others always fails).
 * Every case ends with test_broker_stop(), which checks the broker's
 * descriptors are back to where they were before any client came.
 *
 * RLIMIT_NOFILE is raised to the hard limit before any broker starts (the
 * broker and the attackers inherit it); with a hard limit too low for a
 * case, its connections are scaled down, and a line says so.
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "bus1/uapi.h"
#include "proto/proto.h"
#include "util-broker.h"
#include "util-hostile.h"

#define VICTIM_ROUNDS 50
#define VICTIM_P50_MAX_NS (20ULL * 1000 * 1000)
#define VICTIM_WORST_MAX_NS (1000ULL * 1000 * 1000)
/* under a steady load, the victim measures for at least this long */
#define VICTIM_WINDOW_NS (2000ULL * 1000 * 1000)
/* at most this many round trips are counted (2 MiB of figures) */
#define VICTIM_ROUNDS_MAX (1U << 18)

#define ATTACKER_UID 65534
#define ATTACKERS_MAX 16
/* a child that is not done by then dies (SIGALRM) */
#define CHILD_ALARM_S 120
/* how long the parent waits for a child's report */
#define CHILD_WAIT_MS 60000
/* a whole case that takes longer kills everything and fails */
#define WATCHDOG_S 240

#define STORM_CONNECTIONS 1000
#define HANGUP_CONNECTIONS 5000
#define MULTICAST_ATTACKERS 16
#define MULTICAST_NODES 256
/* broker descriptors besides its connections' (BROKER_FD_RESERVE and some) */
#define FD_RESERVE 128

/* ---- the fixture ------------------------------------------------------------ */

typedef struct Attacker {
        pid_t pid;                      /* 0: none */
        int ctl;                        /* its end of the report socket */
} Attacker;

typedef struct Hostile {
        TestBroker broker;
        bool running;
        Attacker attackers[ATTACKERS_MAX];
        int victim[2];                  /* the victim's peers, -1: none */
} Hostile;

static Hostile hostile = {
        .victim = { -1, -1 },
};
static uid_t attacker_uid;
static rlim_t nofile_max;

/* a case that hangs: kill what it started and end the test program (async-signal-safe) */
static void watchdog_fn(int sig) {
        static const char msg[] = "hostile load: watchdog: a case hung, killing everything\n";

        (void)sig;
        for (size_t i = 0; i < ATTACKERS_MAX; ++i)
                if (hostile.attackers[i].pid > 0)
                        kill(hostile.attackers[i].pid, SIGKILL);
        if (hostile.running && hostile.broker.pid > 0)
                kill(hostile.broker.pid, SIGKILL);
        if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
                /* nothing to do */
        }
        _exit(1);
}

/* start a broker with extra arguments (NULL-terminated), or none */
static void hostile_start(const char *const *args) {
        for (size_t i = 0; i < ATTACKERS_MAX; ++i)
                hostile.attackers[i] = (Attacker){ .ctl = -1 };
        hostile.victim[0] = hostile.victim[1] = -1;
        signal(SIGALRM, watchdog_fn);
        alarm(WATCHDOG_S);
        /* the teardown kills the broker even if its start fails half-way */
        hostile.running = true;
        test_broker_spawn(&hostile.broker, &(TestBrokerOptions){
                .args = args,
                /* attackers of another UID connect too */
                .open_to_all = attacker_uid != geteuid(),
        });
}

/* SIGKILL and reap every attacker (each within 5 s) */
static void attackers_kill(void) {
        for (size_t i = 0; i < ATTACKERS_MAX; ++i)
                if (hostile.attackers[i].pid > 0)
                        kill(hostile.attackers[i].pid, SIGKILL);
        for (size_t i = 0; i < ATTACKERS_MAX; ++i) {
                Attacker *a = &hostile.attackers[i];

                for (int k = 0; a->pid > 0 && k < 5000; ++k) {
                        if (waitpid(a->pid, NULL, WNOHANG) != 0)
                                break;
                        sleep_ms(1);
                }
                a->pid = 0;
                if (a->ctl >= 0)
                        close(a->ctl);
                a->ctl = -1;
        }
}

/* after a failed assertion: leave nothing behind for the next case */
static int hostile_teardown(void **state) {
        (void)state;
        attackers_kill();
        if (hostile.running)
                test_broker_kill(&hostile.broker);
        hostile.running = false;
        /* the broker is gone: these return at once */
        for (size_t i = 0; i < 2; ++i) {
                if (hostile.victim[i] >= 0)
                        bus1_uapi_close(hostile.victim[i]);
                hostile.victim[i] = -1;
        }
        alarm(0);
        return 0;
}

static void hostile_stop(void) {
        test_broker_stop(&hostile.broker);
        hostile.running = false;
        alarm(0);
}

/* the broker's descriptor count once it is @expected, or after 10 s */
static unsigned int broker_fds_settle(unsigned int expected) {
        return test_broker_fds_settle(&hostile.broker, expected, 10000);
}

/* the broker's CPU time (user + system) in ms */
static uint64_t broker_cpu_ms(void) {
        return test_broker_cpu_ms(&hostile.broker);
}

/*
 * How many connections a case may make when it wants @want: the broker
 * takes two descriptors for each, the attacker one.
 */
static unsigned int connections_fit(const char *what, unsigned int want) {
        rlim_t fit = nofile_max > 2 * FD_RESERVE ? (nofile_max - 2 * FD_RESERVE) / 2 : 0;

        if (fit >= want)
                return want;
        print_message("%s: RLIMIT_NOFILE hard limit %llu: %llu connections, not %u\n", what,
                      (unsigned long long)nofile_max, (unsigned long long)fit, want);
        assert_true(fit >= 64);
        return (unsigned int)fit;
}

/* ---- the victim ----------------------------------------------------------------- */

typedef struct VictimFigures {
        uint64_t p50_ns;
        uint64_t worst_ns;
} VictimFigures;

static struct bus1_cmd_handle_transfer victim_transfer;

/* the victim's two peers, @b holding a handle to a node of @a */
static void victim_open(void) {
        hostile.victim[0] = bus1_uapi_open(NULL);
        hostile.victim[1] = bus1_uapi_open(NULL);
        assert_true(hostile.victim[0] >= 0 && hostile.victim[1] >= 0);
        victim_transfer = (struct bus1_cmd_handle_transfer){
                .src_handle = 0x100, .dst_fd = (uint64_t)hostile.victim[1] };
        assert_int_equal(bus1_uapi_ioctl(hostile.victim[0], BUS1_CMD_HANDLE_TRANSFER,
                                         &victim_transfer), 0);
}

static void victim_close(void) {
        assert_int_equal(bus1_uapi_close(hostile.victim[1]), 0);
        hostile.victim[1] = -1;
        assert_int_equal(bus1_uapi_close(hostile.victim[0]), 0);
        hostile.victim[0] = -1;
}

/*
 * Send-recv round trips of the open victim: at least VICTIM_ROUNDS, for at
 * least @min_ns and, if @until is given, until it returns true (asked every
 * 50 ms); at most VICTIM_ROUNDS_MAX rounds or 20 s. Printed, not judged.
 */
static VictimFigures victim_measure(const char *what, uint64_t min_ns, bool (*until)(void)) {
        static uint64_t rtt[VICTIM_ROUNDS_MAX];
        struct iovec v = { .iov_base = "ping", .iov_len = 4 };
        struct bus1_cmd_send s = {
                .ptr_destinations = (uintptr_t)&victim_transfer.dst_handle,
                .n_destinations = 1,
                .ptr_vecs = (uintptr_t)&v,
                .n_vecs = 1,
        };
        struct bus1_cmd_recv r;
        int a = hostile.victim[0], b = hostile.victim[1];
        uint64_t t0 = now_ns(), t_asked = t0;
        bool done = false;
        size_t n = 0;

        while (n < VICTIM_ROUNDS_MAX && (n < VICTIM_ROUNDS || !done)) {
                uint64_t start = now_ns();
                struct pollfd p = { .fd = a, .events = POLLIN };

                assert_int_equal(bus1_uapi_ioctl(b, BUS1_CMD_SEND, &s), 0);
                assert_int_equal(poll(&p, 1, 5000), 1);
                r = (struct bus1_cmd_recv){ .max_offset = UINT64_MAX };
                assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &r), 0);
                assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_SLICE_RELEASE, &r.msg.offset), 0);
                rtt[n++] = now_ns() - start;
                if (!done && now_ns() - t_asked >= 50ULL * 1000000) {
                        done = (now_ns() - t0 >= min_ns && (!until || until())) ||
                               now_ns() - t0 >= 20ULL * 1000000000;
                        t_asked = now_ns();
                }
        }
        qsort(rtt, n, sizeof(rtt[0]), cmp_u64);
        print_message("%s: victim %zu rounds in %llu ms: p50 %llu us, p90 %llu us, "
                      "worst %llu us\n", what, n, (unsigned long long)(now_ns() - t0) / 1000000,
                      (unsigned long long)rtt[n / 2] / 1000,
                      (unsigned long long)rtt[n * 9 / 10] / 1000,
                      (unsigned long long)rtt[n - 1] / 1000);
        return (VictimFigures){ .p50_ns = rtt[n / 2], .worst_ns = rtt[n - 1] };
}

/* the bounds: p50 under 20 ms, none over 1 s */
static void victim_assert(VictimFigures fig) {
        assert_true(fig.p50_ns < VICTIM_P50_MAX_NS);
        assert_true(fig.worst_ns < VICTIM_WORST_MAX_NS);
}

/* a fresh victim measures for VICTIM_WINDOW_NS and goes */
static VictimFigures victim_check(const char *what) {
        VictimFigures fig;

        victim_open();
        fig = victim_measure(what, VICTIM_WINDOW_NS, NULL);
        victim_close();
        return fig;
}

/* ---- attacker processes (no cmocka in there) ------------------------------------------ */

enum {
        REPORT_READY = 1,               /* the attack runs */
        REPORT_DONE,                    /* stopped as told; figures in a, b, c */
        REPORT_FAIL,                    /* text says why */
};

enum {
        CMD_STOP = 1,
};

typedef struct Report {
        uint32_t op;
        uint64_t a, b, c;
        char text[240];
} Report;

typedef void (*AttackerFn)(const void *userdata);

static int child_ctl = -1;

static void child_report(uint32_t op, uint64_t a, uint64_t b, uint64_t c) {
        Report m = { .op = op, .a = a, .b = b, .c = c };

        if (send(child_ctl, &m, sizeof(m), MSG_NOSIGNAL) != sizeof(m))
                _exit(2);
}

__attribute__((format(printf, 1, 2), noreturn))
static void child_fail(const char *fmt, ...) {
        Report m = { .op = REPORT_FAIL };
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(m.text, sizeof(m.text), fmt, ap);
        va_end(ap);
        (void)send(child_ctl, &m, sizeof(m), MSG_NOSIGNAL);
        _exit(1);
}

/* a command from the parent, 0 if none within @timeout_ms; EOF reads as CMD_STOP */
static uint32_t child_command(int timeout_ms) {
        struct pollfd p = { .fd = child_ctl, .events = POLLIN };
        uint32_t cmd = 0;
        int r;

        r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno != EINTR)
                child_fail("poll: %m");
        if (r <= 0)
                return 0;
        if (recv(child_ctl, &cmd, sizeof(cmd), 0) != sizeof(cmd))
                return CMD_STOP;
        return cmd;
}

/*
 * Fork an attacker that keeps only stdio and its report socket, runs as
 * attacker_uid and calls @fn. Returns its slot.
 */
static size_t attacker_spawn(AttackerFn fn, const void *userdata) {
        pid_t parent = getpid(), pid;
        int sp[2];
        size_t slot;

        for (slot = 0; slot < ATTACKERS_MAX && hostile.attackers[slot].pid > 0; ++slot)
                ;
        assert_true(slot < ATTACKERS_MAX);
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* the report socket on fd 3, nothing else inherited */
                if (dup2(sp[1], 3) != 3)
                        _exit(2);
                child_ctl = 3;
                close_range(4, ~0U, 0);
                signal(SIGALRM, SIG_DFL);
                if (attacker_uid != geteuid()) {
                        if (setgroups(0, NULL) < 0 || setresgid(attacker_uid, attacker_uid,
                                                                attacker_uid) < 0 ||
                            setresuid(attacker_uid, attacker_uid, attacker_uid) < 0)
                                child_fail("cannot become uid %u: %m", (unsigned)attacker_uid);
                        if (getuid() != attacker_uid || geteuid() != attacker_uid)
                                child_fail("still uid %u", (unsigned)getuid());
                }
                /* after the UID change, which clears it */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(2);
                alarm(CHILD_ALARM_S);
                fn(userdata);
                _exit(0);
        }
        close(sp[1]);
        hostile.attackers[slot] = (Attacker){ .pid = pid, .ctl = sp[0] };
        return slot;
}

/* the next report of attacker @slot, which must be @op */
static Report attacker_wait(size_t slot, uint32_t op) {
        struct pollfd p = { .fd = hostile.attackers[slot].ctl, .events = POLLIN };
        Report m = {};
        ssize_t l;
        int r;

        do {
                r = poll(&p, 1, CHILD_WAIT_MS);
        } while (r < 0 && errno == EINTR);
        if (r == 0)
                fail_msg("attacker %zu: no report in %d ms", slot, CHILD_WAIT_MS);
        l = recv(hostile.attackers[slot].ctl, &m, sizeof(m), 0);
        if (l != sizeof(m))
                fail_msg("attacker %zu is gone without a report", slot);
        if (m.op == REPORT_FAIL)
                fail_msg("attacker %zu: %s", slot, m.text);
        assert_int_equal(m.op, op);
        return m;
}

static void attacker_tell(size_t slot, uint32_t cmd) {
        assert_int_equal(send(hostile.attackers[slot].ctl, &cmd, sizeof(cmd), MSG_NOSIGNAL),
                         sizeof(cmd));
}

/* reap attacker @slot if it exited (it must have exited 0); true if it did */
static bool attacker_try_reap(size_t slot) {
        Attacker *a = &hostile.attackers[slot];
        int status = 0;
        pid_t r;

        if (a->pid <= 0)
                return true;
        r = waitpid(a->pid, &status, WNOHANG);
        if (r == 0)
                return false;
        assert_int_equal(r, a->pid);
        a->pid = 0;
        close(a->ctl);
        a->ctl = -1;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("attacker %zu failed (status 0x%x)", slot, status);
        return true;
}

/* reap attacker @slot, which must exit 0 within @timeout_ms */
static void attacker_reap(size_t slot, unsigned int timeout_ms) {
        for (unsigned int i = 0; !attacker_try_reap(slot); ++i) {
                if (i >= timeout_ms)
                        fail_msg("attacker %zu did not exit within %u ms", slot, timeout_ms);
                sleep_ms(1);
        }
}

/* a raw connection to @path */
static int child_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                child_fail("socket: %m");
        if (strlen(path) >= sizeof(sa.sun_path))
                child_fail("socket path too long");
        memcpy(sa.sun_path, path, strlen(path) + 1);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                child_fail("connect: %m");
        return fd;
}

static void child_send(int fd, const void *buf, size_t len) {
        ssize_t l = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (l != (ssize_t)len)
                child_fail("send: %s", l < 0 ? strerror(errno) : "short");
}

/* one packet, without waiting; its fds closed and counted; -errno, 0 at EOF */
static ssize_t child_recv(int fd, uint8_t *buf, size_t size, size_t *n_fdsp) {
        union {
                struct cmsghdr cmsg;
                uint8_t buf[CMSG_SPACE(sizeof(int) * PROTO_PACKET_FDS_MAX)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = size };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                              .msg_controllen = sizeof(control) };
        ssize_t l;

        *n_fdsp = 0;
        l = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (l < 0)
                return -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
                size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                for (size_t i = 0; i < n; ++i) {
                        int f;

                        memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        close(f);
                }
                *n_fdsp += n;
        }
        if (msg.msg_flags & MSG_TRUNC)
                child_fail("a truncated packet");
        return l;
}

/* @n raw connections to @path, each HELLO'd (64 at a time) */
static void child_connect_hello(int *fds, unsigned int n, const char *path) {
        static uint8_t buf[PROTO_RECORD_MAX];

        for (unsigned int first = 0; first < n; first += 64) {
                unsigned int end = first + 64 < n ? first + 64 : n;

                for (unsigned int i = first; i < end; ++i) {
                        int r;

                        fds[i] = child_connect(path);
                        r = proto_encode_hello(buf, sizeof(buf), &(ProtoHello){
                                .cookie = 1, .version_min = PROTO_VERSION_MIN,
                                .version_max = PROTO_VERSION_MAX });
                        if (r <= 0)
                                child_fail("proto_encode_hello: %d", r);
                        child_send(fds[i], buf, (size_t)r);
                }
                for (unsigned int i = first; i < end; ++i) {
                        struct pollfd p = { .fd = fds[i], .events = POLLIN };
                        ProtoReplyHello reply;
                        size_t n_fds;
                        ssize_t l;

                        if (poll(&p, 1, 10000) != 1)
                                child_fail("connection %u: no HELLO reply in 10 s", i);
                        l = child_recv(fds[i], buf, sizeof(buf), &n_fds);
                        if (l <= 0)
                                child_fail("connection %u: the broker hung up at HELLO (%s)",
                                           i, l < 0 ? strerror((int)-l) : "EOF");
                        if (proto_decode_reply_hello(&reply, buf, (size_t)l, n_fds) < 0)
                                child_fail("connection %u: not a HELLO reply", i);
                        if (reply.error)
                                child_fail("connection %u: HELLO: %s", i,
                                           strerror((int)reply.error));
                }
        }
}

static void child_raise_nofile(unsigned int n) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                child_fail("getrlimit: %m");
        if (rl.rlim_cur < n + 16)
                child_fail("RLIMIT_NOFILE %llu, %u connections wanted",
                           (unsigned long long)rl.rlim_cur, n);
}

typedef struct RawArgs {
        const char *path;
        unsigned int n;
} RawArgs;

static void child_query(int fd, uint64_t cookie) {
        uint8_t buf[PROTO_SIZE_PEER_QUERY];
        int r;

        r = proto_encode_peer_query(buf, sizeof(buf), &(ProtoPeerQuery){ .cookie = cookie });
        if (r <= 0)
                child_fail("proto_encode_peer_query: %d", r);
        child_send(fd, buf, (size_t)r);
}

/*
 * The ready storm: @n connections, each with one PEER_QUERY in flight all
 * the time. READY once every connection had an answer; on CMD_STOP, DONE
 * with the answers (a) in ns (b) since READY.
 */
static void attacker_storm(const void *userdata) {
        const RawArgs *args = userdata;
        static uint8_t buf[PROTO_RECORD_MAX];
        struct epoll_event events[256];
        uint64_t n_replies = 0, t_ready = 0, cookie = 1;
        unsigned int n_answered = 0;
        uint8_t *answered;
        int *fds, ep;

        child_raise_nofile(args->n);
        fds = calloc(args->n, sizeof(*fds));
        answered = calloc(args->n, 1);
        if (!fds || !answered)
                child_fail("out of memory");
        child_connect_hello(fds, args->n, args->path);

        ep = epoll_create1(EPOLL_CLOEXEC);
        if (ep < 0)
                child_fail("epoll_create1: %m");
        for (unsigned int i = 0; i <= args->n; ++i) {
                struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };

                if (epoll_ctl(ep, EPOLL_CTL_ADD, i < args->n ? fds[i] : child_ctl, &ev) < 0)
                        child_fail("epoll_ctl: %m");
        }
        for (unsigned int i = 0; i < args->n; ++i)
                child_query(fds[i], cookie++);

        for (;;) {
                int n = epoll_wait(ep, events, 256, 10000);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        child_fail("epoll_wait: %m");
                if (n == 0)
                        child_fail("no answer on any connection for 10 s");
                for (int k = 0; k < n; ++k) {
                        unsigned int i = events[k].data.u32;

                        if (i == args->n) {
                                if (child_command(0) == CMD_STOP) {
                                        child_report(REPORT_DONE, n_replies,
                                                     now_ns() - t_ready, 0);
                                        _exit(0);
                                }
                                continue;
                        }
                        for (;;) {
                                ProtoReplyPeerQuery reply;
                                ProtoHeader hdr;
                                size_t n_fds;
                                ssize_t l;

                                l = child_recv(fds[i], buf, sizeof(buf), &n_fds);
                                if (l == -EAGAIN)
                                        break;
                                if (l <= 0)
                                        child_fail("connection %u: the broker hung up (%s)", i,
                                                   l < 0 ? strerror((int)-l) : "EOF");
                                if (proto_decode_header(&hdr, buf, (size_t)l) < 0)
                                        child_fail("connection %u: a bad record", i);
                                if (hdr.type != PROTO_TYPE_REPLY)
                                        continue;
                                if (proto_decode_reply_peer_query(&reply, buf, (size_t)l,
                                                                  n_fds) < 0)
                                        child_fail("connection %u: not a PEER_QUERY reply", i);
                                if (reply.error)
                                        child_fail("connection %u: PEER_QUERY: %s", i,
                                                   strerror((int)reply.error));
                                ++n_replies;
                                if (!answered[i]) {
                                        answered[i] = 1;
                                        if (++n_answered == args->n) {
                                                t_ready = now_ns();
                                                n_replies = 0;
                                                child_report(REPORT_READY, 0, 0, 0);
                                        }
                                }
                                child_query(fds[i], cookie++);
                        }
                }
        }
}

/* @n HELLO'd connections, READY, then exit (closing them all at once) when told */
static void attacker_hangup(const void *userdata) {
        const RawArgs *args = userdata;
        int *fds;

        child_raise_nofile(args->n);
        fds = calloc(args->n, sizeof(*fds));
        if (!fds)
                child_fail("out of memory");
        child_connect_hello(fds, args->n, args->path);
        child_report(REPORT_READY, 0, 0, 0);
        (void)child_command(CHILD_WAIT_MS);
        _exit(0);
}

/*
 * A sender holding handles to MULTICAST_NODES nodes of a receiver, both
 * this process's: SEND to all, drain the receiver, again. READY after the
 * first round; on CMD_STOP, DONE with the SENDs (a), the EDQUOTs (b) and
 * the ns (c) since READY.
 */
static void attacker_multicast(const void *userdata) {
        static uint64_t dst[MULTICAST_NODES];
        struct iovec v = { .iov_base = "flood!!!", .iov_len = 8 };
        struct bus1_cmd_send s = {
                .ptr_destinations = (uintptr_t)dst,
                .n_destinations = MULTICAST_NODES,
                .ptr_vecs = (uintptr_t)&v,
                .n_vecs = 1,
        };
        uint64_t n_sends = 0, n_edquot = 0, t_ready = 0;
        int sender, receiver, r;

        (void)userdata;
        sender = bus1_uapi_open(NULL);
        if (sender < 0)
                child_fail("bus1_uapi_open: %s", strerror(-sender));
        receiver = bus1_uapi_open(NULL);
        if (receiver < 0)
                child_fail("bus1_uapi_open: %s", strerror(-receiver));
        for (size_t i = 0; i < MULTICAST_NODES; ++i) {
                struct bus1_cmd_handle_transfer t = {
                        .src_handle = (uint64_t)(i + 1) << 8, .dst_fd = (uint64_t)sender };

                r = bus1_uapi_ioctl(receiver, BUS1_CMD_HANDLE_TRANSFER, &t);
                if (r < 0)
                        child_fail("HANDLE_TRANSFER %zu: %s", i, strerror(-r));
                dst[i] = t.dst_handle;
        }

        for (;;) {
                if (n_sends && child_command(0) == CMD_STOP) {
                        child_report(REPORT_DONE, n_sends, n_edquot, now_ns() - t_ready);
                        _exit(0);
                }
                r = bus1_uapi_ioctl(sender, BUS1_CMD_SEND, &s);
                if (r == -EDQUOT) {
                        /* (only if the drain below did not keep up) */
                        ++n_edquot;
                        sleep_ms(1);
                        continue;
                }
                if (r < 0)
                        child_fail("SEND: %s", strerror(-r));
                for (size_t n = 0; n < MULTICAST_NODES;) {
                        struct bus1_cmd_recv rv = { .max_offset = UINT64_MAX };
                        struct pollfd p = { .fd = receiver, .events = POLLIN };

                        r = bus1_uapi_ioctl(receiver, BUS1_CMD_RECV, &rv);
                        if (r == -EAGAIN) {
                                if (poll(&p, 1, 10000) != 1)
                                        child_fail("message %zu of SEND %llu did not come in "
                                                   "10 s", n, (unsigned long long)n_sends);
                                continue;
                        }
                        if (r < 0)
                                child_fail("RECV: %s", strerror(-r));
                        if (rv.msg.type != BUS1_MSG_DATA || rv.msg.n_bytes != v.iov_len)
                                child_fail("RECV: type %llu, %llu bytes",
                                           (unsigned long long)rv.msg.type,
                                           (unsigned long long)rv.msg.n_bytes);
                        r = bus1_uapi_ioctl(receiver, BUS1_CMD_SLICE_RELEASE, &rv.msg.offset);
                        if (r < 0)
                                child_fail("SLICE_RELEASE: %s", strerror(-r));
                        ++n;
                }
                if (++n_sends == 1) {
                        t_ready = now_ns();
                        child_report(REPORT_READY, 0, 0, 0);
                }
        }
}

/* ---- the cases -------------------------------------------------------------------- */

/*
 * A thousand connections always ready: the victim is served as if they
 * were not there.
 */
static void test_ready_storm(void **state) {
        RawArgs args;
        VictimFigures fig;
        uint64_t cpu, t;
        Report done;
        size_t slot;

        (void)state;
        hostile_start(NULL);
        args = (RawArgs){ .path = hostile.broker.path,
                          .n = connections_fit("storm", STORM_CONNECTIONS) };
        t = now_ns();
        slot = attacker_spawn(attacker_storm, &args);
        attacker_wait(slot, REPORT_READY);
        print_message("storm: %u connections busy after %llu ms\n", args.n,
                      (unsigned long long)(now_ns() - t) / 1000000);

        cpu = broker_cpu_ms();
        t = now_ns();
        fig = victim_check("storm");
        t = now_ns() - t;
        cpu = broker_cpu_ms() - cpu;
        print_message("storm: broker CPU %llu ms in the victim's %llu ms\n",
                      (unsigned long long)cpu, (unsigned long long)t / 1000000);

        attacker_tell(slot, CMD_STOP);
        done = attacker_wait(slot, REPORT_DONE);
        attacker_reap(slot, 10000);
        print_message("storm: %llu queries answered in %llu ms (%llu/s)\n",
                      (unsigned long long)done.a, (unsigned long long)done.b / 1000000,
                      (unsigned long long)(done.b ? done.a * 1000000000ULL / done.b : 0));
        assert_int_equal(broker_fds_settle(hostile.broker.n_fds_idle),
                         hostile.broker.n_fds_idle);
        victim_assert(fig);
        hostile_stop();
}

static size_t hangup_slot;
static unsigned int hangup_fds;

/* the attacker is gone and the broker has dropped its connections */
static bool hangup_done(void) {
        return attacker_try_reap(hangup_slot) &&
               test_count_fds(hostile.broker.pid) <= hangup_fds;
}

/*
 * Five thousand connections gone at once: the victim keeps being served
 * while the broker drops them (it measures from the moment the attacker is
 * told to exit until the broker holds no more than the victim's
 * descriptors), every descriptor is back within 10 s, and the broker spent
 * less than a second of CPU on it.
 */
static void test_mass_hangup(void **state) {
        char max_connections[64];
        const char *broker_args[] = { max_connections, NULL };
        unsigned int n_fds, n_fds_full;
        uint64_t cpu, t, t_settled;
        VictimFigures fig;
        RawArgs args;

        (void)state;
        args.n = connections_fit("hangup", HANGUP_CONNECTIONS);
        /* the default is 1024 per UID; the victim's two come on top when it is ours */
        snprintf(max_connections, sizeof(max_connections), "--max-connections=%u",
                 args.n + 16);
        hostile_start(broker_args);
        args.path = hostile.broker.path;
        t = now_ns();
        hangup_slot = attacker_spawn(attacker_hangup, &args);
        attacker_wait(hangup_slot, REPORT_READY);
        n_fds_full = test_count_fds(hostile.broker.pid);
        print_message("hangup: %u connections up after %llu ms, broker holds %u fds "
                      "(%u when idle)\n", args.n,
                      (unsigned long long)(now_ns() - t) / 1000000, n_fds_full,
                      hostile.broker.n_fds_idle);
        victim_open();
        /* what the broker holds once the attacker's connections are gone */
        hangup_fds = hostile.broker.n_fds_idle + test_count_fds(hostile.broker.pid) - n_fds_full;

        cpu = broker_cpu_ms();
        t = now_ns();
        attacker_tell(hangup_slot, CMD_STOP);
        fig = victim_measure("hangup", 0, hangup_done);
        victim_close();
        attacker_reap(hangup_slot, 10000);
        n_fds = broker_fds_settle(hostile.broker.n_fds_idle);
        t_settled = now_ns() - t;
        cpu = broker_cpu_ms() - cpu;
        print_message("hangup: broker CPU %llu ms, fds %u after %llu ms (%u when idle)\n",
                      (unsigned long long)cpu, n_fds,
                      (unsigned long long)t_settled / 1000000, hostile.broker.n_fds_idle);
        assert_int_equal(n_fds, hostile.broker.n_fds_idle);
        assert_true(t_settled < 10ULL * 1000000000ULL);
        assert_true(cpu < 1000);
        victim_assert(fig);
        hostile_stop();
}

/*
 * Sixteen processes multicasting to 256 destinations as fast as they can
 * drain: the victim's one-destination round trips stay fast.
 */
static void test_expensive_multicasts(void **state) {
        size_t slots[MULTICAST_ATTACKERS];
        uint64_t n_sends = 0, n_edquot = 0, rate = 0, cpu, t;
        VictimFigures fig;

        (void)state;
        hostile_start(NULL);
        /* every attacker before the victim opens: none inherits its peers */
        for (size_t i = 0; i < MULTICAST_ATTACKERS; ++i)
                slots[i] = attacker_spawn(attacker_multicast, NULL);
        for (size_t i = 0; i < MULTICAST_ATTACKERS; ++i)
                attacker_wait(slots[i], REPORT_READY);

        cpu = broker_cpu_ms();
        t = now_ns();
        fig = victim_check("multicasts");
        t = now_ns() - t;
        cpu = broker_cpu_ms() - cpu;

        for (size_t i = 0; i < MULTICAST_ATTACKERS; ++i)
                attacker_tell(slots[i], CMD_STOP);
        for (size_t i = 0; i < MULTICAST_ATTACKERS; ++i) {
                Report done = attacker_wait(slots[i], REPORT_DONE);

                n_sends += done.a;
                n_edquot += done.b;
                rate += done.c ? done.a * 1000000000ULL / done.c : 0;
                attacker_reap(slots[i], 10000);
        }
        print_message("multicasts: broker CPU %llu ms in the victim's %llu ms\n",
                      (unsigned long long)cpu, (unsigned long long)t / 1000000);
        print_message("multicasts: %llu SENDs to %u destinations (%llu/s, %llu deliveries/s), "
                      "%llu EDQUOT\n", (unsigned long long)n_sends, MULTICAST_NODES,
                      (unsigned long long)rate, (unsigned long long)rate * MULTICAST_NODES,
                      (unsigned long long)n_edquot);
        assert_int_equal(broker_fds_settle(hostile.broker.n_fds_idle),
                         hostile.broker.n_fds_idle);
        victim_assert(fig);
        hostile_stop();
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_ready_storm, hostile_teardown),
                cmocka_unit_test_teardown(test_mass_hangup, hostile_teardown),
                cmocka_unit_test_teardown(test_expensive_multicasts, hostile_teardown),
        };
        struct rlimit rl;

        /* the broker and the attackers inherit it */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
                if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur < rl.rlim_max) {
                        rl.rlim_cur = rl.rlim_max;
                        (void)setrlimit(RLIMIT_NOFILE, &rl);
                }
                nofile_max = rl.rlim_cur;
        }
        if (geteuid() == 0) {
                attacker_uid = ATTACKER_UID;
        } else {
                attacker_uid = geteuid();
                print_message("not root: the attackers run as UID %u, the victim's own\n",
                              (unsigned)attacker_uid);
        }
        return cmocka_run_group_tests(tests, NULL, NULL);
}
