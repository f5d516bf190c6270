/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bench-fairness: a victim's round trips while other clients flood the broker
 *
 * The victim is the loop of tests/integration/test-hostile-connection.c,
 * through the 2016 UAPI: peer a owns a node and gives peer b a handle to it
 * (HANDLE_TRANSFER); each round trip is b's SEND of 4 bytes to that node,
 * a poll(2) of a, a's RECV and its SLICE_RELEASE, timed on its own. It runs
 * in this process while N = 0 (idle), 1, 4 and 16 flooding clients hammer
 * the same broker, for two kinds of flood:
 *
 *  - sendrecv: each flooder is a pair of peers running the victim's loop
 *    as fast as it can;
 *  - multicast256: each flooder holds handles to 256 nodes that its other
 *    peer owns, sends 4 bytes to all 256 at once and drains the 256
 *    entries, again and again.
 *
 * Flooders are forked processes, started afresh for each row and killed
 * after it. Run as root, they become UID 65534 (setgroups, setgid, setuid)
 * before they connect, so the broker charges them to that UID, and the
 * broker's private socket directory and socket are opened up for it
 * (0711, 0666); a probe flooder checks this works before anything is
 * measured. Not as root, or if the probe fails, flooders run as the
 * victim's UID and a '#' line says that the fairness between UIDs is not
 * exercised.
 *
 * Each row waits until every flooder has set up and done one iteration,
 * lets the flood run FAIR_SETTLE_MS, warms the victim up (FAIR_WARMUP round
 * trips and a tenth of the budget), then takes at least FAIR_SAMPLES round
 * trips and goes on until $BENCH_TIME_MS (default 300) is spent;
 * $BENCH_STEPS=N takes exactly N, without warm-up. Each kind runs on a
 * broker of its own and has its own idle row.
 *
 * Output, per kind K and flooder count N: fair-K-p50, fair-K-p99 and
 * fair-K-max (ns per round trip); for N > 0 also fair-K-ratio (p99 over
 * the idle p99 of the same broker, ratio) and fair-K-flood (what the
 * flooders got through during the measurement, messages received per
 * second). Then a table in microseconds, unless --no-table (bench/run
 * passes it), with the fairness target (docs/limits.md): with 1, 4 and 16
 * flooding clients of another UID, the victim's p99 is at most
 * FAIR_TARGET times its idle p99. That is reported, never asserted: the
 * exit status is 0 unless a call failed or a flooder died (bench_die()).
 * An exit handler, and a handler of SIGINT, SIGTERM and SIGHUP, kill and
 * reap every flooder and the broker on every path.
 *
 * Usage: bench-fairness [--no-table] [CASE...]  (sendrecv, multicast256)
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench-util.h"
#include "bus1/uapi.h"

#define FAIR_UID_OTHER          65534U          /* the flooders' UID (and GID), as root */
#define FAIR_NODE               0x100ULL        /* the node of a send-recv pair */
#define FAIR_FANOUT             256U            /* destinations of a multicast flooder */
#define FAIR_FLOODERS_MAX       16U
#define FAIR_SAMPLES            2000U           /* round trips a row takes at least */
#define FAIR_SAMPLES_MAX        (1U << 20)
#define FAIR_WARMUP             200U            /* warm-up round trips, at least */
#define FAIR_WALL_MAX_NS        (30ULL * 1000 * 1000 * 1000)
#define FAIR_SETTLE_MS          50U
#define FAIR_TIMEOUT_MSEC       10000
#define FAIR_TARGET             5.0             /* p99 under flood / idle p99 */
#define FAIR_COUNTER_STRIDE     8U              /* u64s per flooder counter: a cache line */

static const unsigned int fair_counts[] = { 0, 1, 4, 16 };

typedef enum FairKind {
        FAIR_SENDRECV,
        FAIR_MULTICAST,
        _FAIR_KIND_N,
} FairKind;

static const char *const fair_kind_names[_FAIR_KIND_N] = {
        [FAIR_SENDRECV] = "sendrecv",
        [FAIR_MULTICAST] = "multicast256",
};

#define FAIR_N_COUNTS (sizeof(fair_counts) / sizeof(*fair_counts))
#define FAIR_ROWS_MAX (_FAIR_KIND_N * FAIR_N_COUNTS)

typedef struct FairRow {
        FairKind kind;
        unsigned int n;         /* flooders */
        size_t samples;
        uint64_t p50, p99, max; /* ns */
        double ratio;           /* p99 / the idle p99 of the same kind */
        double flood_rate;      /* messages received by the flooders per second */
} FairRow;

/* what a flooder (or the probe) reports once it is set up, or failed to */
typedef struct FloodReport {
        int32_t error;          /* 0, or a negative errno */
        char what[60];          /* the call that failed */
} FloodReport;

/*
 * What the exit path cleans up. Only the main process cleans up; flooders
 * inherit the handlers and leave at once.
 */
static pid_t fair_main_pid;
static BenchBroker fair_broker;         /* pid > 0 while running */
static pid_t fair_flooders[FAIR_FLOODERS_MAX];
static pid_t fair_probe_pid;

/* who the flooders are */
static uid_t fair_flood_uid;
static bool fair_other_uid;

/* flooder i's messages received, at fair_counters[i * FAIR_COUNTER_STRIDE] */
static uint64_t *fair_counters;

static FairRow fair_rows[FAIR_ROWS_MAX];
static size_t fair_n_rows;

/* async-signal-safe: kill, waitpid, unlink and rmdir only */
static void fair_kill_all(void) {
        if (getpid() != fair_main_pid)
                return;
        if (fair_probe_pid > 0) {
                kill(fair_probe_pid, SIGKILL);
                waitpid(fair_probe_pid, NULL, 0);
                fair_probe_pid = 0;
        }
        for (size_t i = 0; i < FAIR_FLOODERS_MAX; ++i) {
                if (fair_flooders[i] <= 0)
                        continue;
                kill(fair_flooders[i], SIGKILL);
                waitpid(fair_flooders[i], NULL, 0);
                fair_flooders[i] = 0;
        }
        if (fair_broker.pid > 0) {
                kill(fair_broker.pid, SIGKILL);
                waitpid(fair_broker.pid, NULL, 0);
                fair_broker.pid = 0;
                unlink(fair_broker.path);
                rmdir(fair_broker.dir);
        }
}

static void fair_exit(void) {
        /* a broker that never got ready leaves bench-util's notify socket behind */
        if (getpid() == fair_main_pid && fair_broker.pid > 0) {
                char notify[sizeof(fair_broker.dir) + 8];

                snprintf(notify, sizeof(notify), "%s/notify", fair_broker.dir);
                unlink(notify);
        }
        fair_kill_all();
}

/* SA_RESETHAND: the raised signal, delivered once we return, ends us */
static void fair_signal(int sig) {
        int saved = errno;

        fair_kill_all();
        raise(sig);
        errno = saved;
}

static void fair_handle_signals(void) {
        static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
        struct sigaction sa = { .sa_handler = fair_signal, .sa_flags = SA_RESETHAND };

        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < sizeof(sigs) / sizeof(*sigs); ++i)
                sigaddset(&sa.sa_mask, sigs[i]);
        for (size_t i = 0; i < sizeof(sigs) / sizeof(*sigs); ++i)
                if (sigaction(sigs[i], &sa, NULL) < 0)
                        bench_die("sigaction: %m");
}

static void fair_sleep_ms(unsigned int ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* the peers, the loop and its checks: shared by the victim and the flooders */

/* which call failed, for the message */
static const char *fair_what = "";

static int fair_fail(const char *what, int error) {
        fair_what = what;
        return error;
}

/* wait until @fd is readable; 0, or a negative errno (-ETIME: nothing came) */
static int fair_wait(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r;

        do
                r = poll(&p, 1, FAIR_TIMEOUT_MSEC);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return fair_fail("poll", -errno);
        if (r == 0)
                return fair_fail("poll: no entry within the timeout", -ETIME);
        if (p.revents & (POLLHUP | POLLNVAL | POLLERR))
                return fair_fail("poll: the peer hung up", -ESHUTDOWN);
        return 0;
}

/* RECV one 4-byte DATA entry and release its slice; @wait: poll first */
static int fair_recv(int fd, bool wait) {
        struct bus1_cmd_recv r;
        int e;

        if (wait) {
                e = fair_wait(fd);
                if (e < 0)
                        return e;
        }
        for (;;) {
                r = (struct bus1_cmd_recv){ .max_offset = UINT64_MAX };
                e = bus1_uapi_ioctl(fd, BUS1_CMD_RECV, &r);
                if (e != -EAGAIN)
                        break;
                e = fair_wait(fd);
                if (e < 0)
                        return e;
        }
        if (e < 0)
                return fair_fail("RECV", e);
        if (r.msg.type != BUS1_MSG_DATA || r.msg.n_bytes != 4)
                return fair_fail("RECV: not the 4-byte DATA entry sent", -EBADMSG);
        e = bus1_uapi_ioctl(fd, BUS1_CMD_SLICE_RELEASE, &r.msg.offset);
        if (e < 0)
                return fair_fail("SLICE_RELEASE", e);
        return 0;
}

/* a send-recv pair: @a owns the node, @b sends to it */
typedef struct FairPair {
        int a, b;
        uint64_t dst;
        struct iovec vec;
        struct bus1_cmd_send send;
} FairPair;

static int fair_pair_open(FairPair *p) {
        struct bus1_cmd_handle_transfer t;
        int e;

        *p = (FairPair){ .a = -1, .b = -1 };
        p->a = bus1_uapi_open(NULL);
        if (p->a < 0)
                return fair_fail("bus1_uapi_open", p->a);
        p->b = bus1_uapi_open(NULL);
        if (p->b < 0)
                return fair_fail("bus1_uapi_open", p->b);
        t = (struct bus1_cmd_handle_transfer){ .src_handle = FAIR_NODE, .dst_fd = (uint64_t)p->b };
        e = bus1_uapi_ioctl(p->a, BUS1_CMD_HANDLE_TRANSFER, &t);
        if (e < 0)
                return fair_fail("HANDLE_TRANSFER", e);
        p->dst = t.dst_handle;
        p->vec = (struct iovec){ .iov_base = (void *)"ping", .iov_len = 4 };
        p->send = (struct bus1_cmd_send){ .ptr_destinations = (uintptr_t)&p->dst,
                                          .n_destinations = 1, .ptr_vecs = (uintptr_t)&p->vec,
                                          .n_vecs = 1 };
        return 0;
}

static void fair_pair_close(FairPair *p) {
        if (p->b >= 0)
                bus1_uapi_close(p->b);
        if (p->a >= 0)
                bus1_uapi_close(p->a);
        p->a = p->b = -1;
}

/* victim_check()'s round trip: b SENDs, a polls, RECVs, releases */
static int fair_round_trip(FairPair *p) {
        int e;

        e = bus1_uapi_ioctl(p->b, BUS1_CMD_SEND, &p->send);
        if (e < 0)
                return fair_fail("SEND", e);
        return fair_recv(p->a, true);
}

/* flooders ------------------------------------------------------------------ */

static _Noreturn void flood_exit(int report_fd, int error, const char *what) {
        FloodReport report = { .error = error };

        snprintf(report.what, sizeof(report.what), "%s", what);
        if (report_fd >= 0)
                (void)!write(report_fd, &report, sizeof(report));
        _exit(error < 0);
}

static int flood_become(uid_t uid) {
        if (uid == geteuid())
                return 0;
        if (setgroups(0, NULL) < 0)
                return fair_fail("setgroups", -errno);
        if (setgid((gid_t)uid) < 0)
                return fair_fail("setgid", -errno);
        if (setuid(uid) < 0)
                return fair_fail("setuid", -errno);
        if (getuid() != uid || geteuid() != uid || getgid() != (gid_t)uid)
                return fair_fail("setuid: credentials did not change", -EPERM);
        return 0;
}

/* what a flooder floods with */
typedef struct Flood {
        FairKind kind;
        FairPair pair;                  /* sendrecv */
        int tx, rx;                     /* multicast256: tx sends to rx's nodes */
        uint64_t dst[FAIR_FANOUT];
        struct iovec vec;
        struct bus1_cmd_send send;
} Flood;

static int flood_setup(Flood *f, FairKind kind) {
        int e;

        *f = (Flood){ .kind = kind, .pair = { .a = -1, .b = -1 }, .tx = -1, .rx = -1 };
        if (kind == FAIR_SENDRECV)
                return fair_pair_open(&f->pair);

        f->rx = bus1_uapi_open(NULL);
        if (f->rx < 0)
                return fair_fail("bus1_uapi_open", f->rx);
        f->tx = bus1_uapi_open(NULL);
        if (f->tx < 0)
                return fair_fail("bus1_uapi_open", f->tx);
        /* rx owns FAIR_FANOUT nodes (new IDs, both low bits clear), tx holds a handle to each */
        for (size_t i = 0; i < FAIR_FANOUT; ++i) {
                struct bus1_cmd_handle_transfer t = {
                        .src_handle = (uint64_t)(i + 1) << 4,
                        .dst_fd = (uint64_t)f->tx,
                };

                e = bus1_uapi_ioctl(f->rx, BUS1_CMD_HANDLE_TRANSFER, &t);
                if (e < 0)
                        return fair_fail("HANDLE_TRANSFER", e);
                f->dst[i] = t.dst_handle;
        }
        f->vec = (struct iovec){ .iov_base = (void *)"ping", .iov_len = 4 };
        f->send = (struct bus1_cmd_send){ .ptr_destinations = (uintptr_t)f->dst,
                                          .n_destinations = FAIR_FANOUT,
                                          .ptr_vecs = (uintptr_t)&f->vec, .n_vecs = 1 };
        return 0;
}

/* one iteration; returns the messages received (> 0), or a negative errno */
static int flood_once(Flood *f) {
        int e;

        if (f->kind == FAIR_SENDRECV) {
                e = fair_round_trip(&f->pair);
                return e < 0 ? e : 1;
        }
        e = bus1_uapi_ioctl(f->tx, BUS1_CMD_SEND, &f->send);
        if (e < 0)
                return fair_fail("SEND", e);
        for (size_t i = 0; i < FAIR_FANOUT; ++i) {
                e = fair_recv(f->rx, false);
                if (e < 0)
                        return e;
        }
        return FAIR_FANOUT;
}

/*
 * A flooder: becomes @uid, connects, sets up, does one iteration, reports
 * on @report_fd, then floods until it is killed; a probe (@counter NULL)
 * exits after its report. A failure after the report goes to stderr and
 * ends the flooder with status 1, which the parent notices.
 */
static _Noreturn void flood_child(FairKind kind, uid_t uid, int report_fd, uint64_t *counter) {
        FloodReport report = {};
        uint64_t n = 0;
        Flood f;
        int e;

        /* a change of credentials clears the parent-death signal: set it after */
        e = flood_become(uid);
        if (e < 0)
                flood_exit(report_fd, e, fair_what);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != fair_main_pid)
                _exit(1);

        /* the first iteration is part of the set-up: once we report, we flood */
        e = flood_setup(&f, kind);
        if (e >= 0)
                e = flood_once(&f);
        if (e < 0 || !counter)
                flood_exit(report_fd, e < 0 ? e : 0, e < 0 ? fair_what : "");
        n = (uint64_t)e;
        __atomic_store_n(counter, n, __ATOMIC_RELAXED);
        if (write(report_fd, &report, sizeof(report)) != sizeof(report))
                _exit(1);
        close(report_fd);

        for (;;) {
                e = flood_once(&f);
                if (e < 0) {
                        fprintf(stderr, "flooder %d (%s): %s: %s\n", (int)getpid(),
                                fair_kind_names[kind], fair_what, strerror(-e));
                        _exit(1);
                }
                n += (uint64_t)e;
                __atomic_store_n(counter, n, __ATOMIC_RELAXED);
        }
}

/*
 * Fork a flooder (or the probe: @counter NULL) and wait for its report.
 * Return: its pid with @report filled in; a child that dies without a
 * report ends the program.
 */
static pid_t flood_fork(FairKind kind, uid_t uid, uint64_t *counter, FloodReport *report) {
        struct pollfd p;
        int fds[2], r;
        ssize_t l;
        pid_t pid;

        if (pipe2(fds, O_CLOEXEC) < 0)
                bench_die("pipe2: %m");
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid < 0)
                bench_die("fork: %m");
        if (pid == 0) {
                close(fds[0]);
                flood_child(kind, uid, fds[1], counter);
        }
        close(fds[1]);
        p = (struct pollfd){ .fd = fds[0], .events = POLLIN };
        do
                r = poll(&p, 1, 3 * FAIR_TIMEOUT_MSEC);
        while (r < 0 && errno == EINTR);
        if (r == 0)
                bench_die("%s flooder %d did not report within %d ms", fair_kind_names[kind],
                          (int)pid, 3 * FAIR_TIMEOUT_MSEC);
        do
                l = read(fds[0], report, sizeof(*report));
        while (l < 0 && errno == EINTR);
        close(fds[0]);
        if (l != sizeof(*report))
                bench_die("%s flooder %d died before it reported", fair_kind_names[kind],
                          (int)pid);
        report->what[sizeof(report->what) - 1] = 0;
        return pid;
}

/* a '#' line, once per program run (each kind has a broker of its own) */
static void fair_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fair_note(const char *fmt, ...) {
        static char last[512];
        char line[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (!strcmp(line, last))
                return;
        memcpy(last, line, sizeof(last));
        printf("# %s\n", line);
        fflush(stdout);
}

/*
 * As root: open the broker's private directory and its socket to
 * FAIR_UID_OTHER and check, with a probe that sets up a send-recv flooder
 * and runs one round trip, that a flooder of that UID works. Otherwise:
 * flooders are of our UID.
 */
static void flood_choose_uid(const BenchBroker *broker) {
        FloodReport report;
        int status;

        fair_flood_uid = geteuid();
        fair_other_uid = false;
        if (geteuid() != 0) {
                fair_note("flooders run as UID %u, the victim's (not root): the fairness between "
                          "UIDs is not exercised", (unsigned int)fair_flood_uid);
                return;
        }
        if (chmod(broker->dir, 0711) < 0 || chmod(broker->path, 0666) < 0) {
                fair_note("cannot open %s to UID %u (chmod: %s): flooders run as UID 0, the "
                          "victim's: the fairness between UIDs is not exercised", broker->path,
                          FAIR_UID_OTHER, strerror(errno));
                return;
        }
        fair_probe_pid = flood_fork(FAIR_SENDRECV, FAIR_UID_OTHER, NULL, &report);
        if (waitpid(fair_probe_pid, &status, 0) < 0)
                bench_die("waitpid: %m");
        fair_probe_pid = 0;
        if (report.error < 0) {
                fair_note("a flooder cannot run as UID %u (%s: %s): flooders run as UID 0, the "
                          "victim's: the fairness between UIDs is not exercised", FAIR_UID_OTHER,
                          report.what, strerror(-report.error));
                return;
        }
        fair_flood_uid = FAIR_UID_OTHER;
        fair_other_uid = true;
        fair_note("flooders run as UID %u, the victim as UID %u", (unsigned int)fair_flood_uid,
                  (unsigned int)geteuid());
}

static uint64_t flood_count(unsigned int n) {
        uint64_t sum = 0;

        for (unsigned int i = 0; i < n; ++i)
                sum += __atomic_load_n(&fair_counters[i * FAIR_COUNTER_STRIDE], __ATOMIC_RELAXED);
        return sum;
}

static void flood_start(FairKind kind, unsigned int n) {
        for (unsigned int i = 0; i < n; ++i) {
                uint64_t *counter = &fair_counters[i * FAIR_COUNTER_STRIDE];
                FloodReport report;

                __atomic_store_n(counter, 0, __ATOMIC_RELAXED);
                fair_flooders[i] = flood_fork(kind, fair_flood_uid, counter, &report);
                if (report.error < 0)
                        bench_die("%s flooder %u of %u: %s: %s", fair_kind_names[kind], i + 1, n,
                                  report.what, strerror(-report.error));
        }
}

/* every flooder must still be flooding */
static void flood_check(FairKind kind) {
        for (size_t i = 0; i < FAIR_FLOODERS_MAX; ++i) {
                int status;
                pid_t r;

                if (fair_flooders[i] <= 0)
                        continue;
                r = waitpid(fair_flooders[i], &status, WNOHANG);
                if (r < 0)
                        bench_die("waitpid: %m");
                if (r > 0) {
                        fair_flooders[i] = 0;
                        bench_die("%s flooder %d ended during the measurement (%s %d)",
                                  fair_kind_names[kind], (int)r,
                                  WIFSIGNALED(status) ? "signal" : "exit status",
                                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                }
        }
}

static void flood_stop(void) {
        for (size_t i = 0; i < FAIR_FLOODERS_MAX; ++i)
                if (fair_flooders[i] > 0)
                        kill(fair_flooders[i], SIGKILL);
        for (size_t i = 0; i < FAIR_FLOODERS_MAX; ++i) {
                if (fair_flooders[i] <= 0)
                        continue;
                if (waitpid(fair_flooders[i], NULL, 0) < 0)
                        bench_die("waitpid: %m");
                fair_flooders[i] = 0;
        }
}

/* the victim ------------------------------------------------------------------ */

static uint64_t fair_steps(void) {
        const char *e = getenv("BENCH_STEPS");

        return e ? strtoull(e, NULL, 10) : 0;
}

static uint64_t victim_round_trip(FairPair *victim) {
        uint64_t start = bench_now_ns();
        int e;

        e = fair_round_trip(victim);
        if (e < 0)
                bench_die("victim: %s: %s", fair_what, strerror(-e));
        return bench_now_ns() - start;
}

static int fair_cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

/* nearest rank: the smallest sample with at least @pct percent at or below it */
static uint64_t fair_percentile(const uint64_t *sorted, size_t n, unsigned int pct) {
        size_t k = (n * pct + 99) / 100;

        return sorted[k ? k - 1 : 0];
}

/* the victim's samples with the flood running; fills in samples, p50, p99, max */
static void victim_measure(FairPair *victim, uint64_t *rtt, FairRow *row) {
        uint64_t budget = bench_time_budget_ns(), steps = fair_steps(), start;
        size_t n = 0;

        if (steps) {
                if (steps > FAIR_SAMPLES_MAX)
                        steps = FAIR_SAMPLES_MAX;
                for (; n < steps; ++n)
                        rtt[n] = victim_round_trip(victim);
        } else {
                start = bench_now_ns();
                for (unsigned int i = 0; i < FAIR_WARMUP || bench_now_ns() - start < budget / 10;
                     ++i)
                        victim_round_trip(victim);

                start = bench_now_ns();
                for (;;) {
                        uint64_t elapsed;

                        rtt[n++] = victim_round_trip(victim);
                        if (n == FAIR_SAMPLES_MAX)
                                break;
                        elapsed = bench_now_ns() - start;
                        if (n >= FAIR_SAMPLES && elapsed >= budget)
                                break;
                        if (elapsed >= FAIR_WALL_MAX_NS && n >= FAIR_SAMPLES / 10) {
                                printf("# %s %u: only %zu round trips in %llu s\n",
                                       fair_kind_names[row->kind], row->n, n,
                                       (unsigned long long)(FAIR_WALL_MAX_NS / 1000000000ULL));
                                break;
                        }
                }
        }
        qsort(rtt, n, sizeof(*rtt), fair_cmp_u64);
        row->samples = n;
        row->p50 = fair_percentile(rtt, n, 50);
        row->p99 = fair_percentile(rtt, n, 99);
        row->max = rtt[n - 1];
}

static void fair_case(FairKind kind, uint64_t *rtt) {
        const char *name = fair_kind_names[kind];
        char metric_name[64];
        uint64_t idle_p99 = 0;
        FairPair victim;
        int e;

        bench_broker_start(&fair_broker, NULL);
        flood_choose_uid(&fair_broker);
        e = fair_pair_open(&victim);
        if (e < 0)
                bench_die("victim: %s: %s", fair_what, strerror(-e));

        for (size_t i = 0; i < FAIR_N_COUNTS; ++i) {
                FairRow *row = &fair_rows[fair_n_rows++];
                uint64_t c0, c1, t0, t1;

                *row = (FairRow){ .kind = kind, .n = fair_counts[i] };
                flood_start(kind, row->n);
                if (row->n)
                        fair_sleep_ms(FAIR_SETTLE_MS);
                c0 = flood_count(row->n);
                t0 = bench_now_ns();
                victim_measure(&victim, rtt, row);
                c1 = flood_count(row->n);
                t1 = bench_now_ns();
                flood_check(kind);
                flood_stop();
                /* the broker takes the flooders' hang-ups before the next row */
                fair_sleep_ms(FAIR_SETTLE_MS);
                victim_round_trip(&victim);

                if (row->n == 0)
                        idle_p99 = row->p99;
                row->ratio = idle_p99 ? (double)row->p99 / (double)idle_p99 : 0;
                row->flood_rate = t1 > t0 ? (double)(c1 - c0) * 1e9 / (double)(t1 - t0) : 0;

                snprintf(metric_name, sizeof(metric_name), "fair-%s-p50", name);
                bench_print(metric_name, row->n, "ns", (double)row->p50);
                snprintf(metric_name, sizeof(metric_name), "fair-%s-p99", name);
                bench_print(metric_name, row->n, "ns", (double)row->p99);
                snprintf(metric_name, sizeof(metric_name), "fair-%s-max", name);
                bench_print(metric_name, row->n, "ns", (double)row->max);
                if (row->n) {
                        snprintf(metric_name, sizeof(metric_name), "fair-%s-ratio", name);
                        bench_print(metric_name, row->n, "ratio", row->ratio);
                        snprintf(metric_name, sizeof(metric_name), "fair-%s-flood", name);
                        bench_print(metric_name, row->n, "msgs/s", row->flood_rate);
                }
        }

        fair_pair_close(&victim);
        bench_broker_stop(&fair_broker);
}

static void fair_table(void) {
        bool all_met = true;

        printf("\nbench-fairness: the victim's round trip (4-byte SEND, poll, RECV, "
               "SLICE_RELEASE) while N clients flood the broker\n");
        if (fair_other_uid)
                printf("flooders: UID %u; victim: UID %u\n", (unsigned int)fair_flood_uid,
                       (unsigned int)geteuid());
        else
                printf("flooders: UID %u, the victim's: the fairness between UIDs is NOT "
                       "exercised\n", (unsigned int)fair_flood_uid);
        printf("target: with 1, 4 and 16 flooding clients of another UID, victim p99 <= "
               "%.0fx idle p99 (reported, not asserted)\n\n", FAIR_TARGET);
        printf("%-13s %7s %8s %13s %9s %9s %10s %9s  %s\n", "flood", "clients", "samples",
               "flood msgs/s", "p50 us", "p99 us", "max us", "p99/idle", "target");
        for (size_t i = 0; i < fair_n_rows; ++i) {
                const FairRow *row = &fair_rows[i];
                const char *verdict = "(idle)";

                if (row->n) {
                        verdict = row->ratio <= FAIR_TARGET ? "met" : "MISSED";
                        all_met = all_met && row->ratio <= FAIR_TARGET;
                }
                printf("%-13s %7u %8zu %13.0f %9.1f %9.1f %10.1f %9.2f  %s\n",
                       fair_kind_names[row->kind], row->n, row->samples, row->flood_rate,
                       (double)row->p50 / 1000, (double)row->p99 / 1000, (double)row->max / 1000,
                       row->ratio, verdict);
        }
        printf("\ntarget %s%s\n", all_met ? "met in every row" : "MISSED in some rows",
               fair_other_uid ? "" : " (flooders of the victim's own UID)");
        fflush(stdout);
}

int main(int argc, char **argv) {
        bool table = true;
        uint64_t *rtt;

        for (int i = 1; i < argc; ++i) {
                if (!strcmp(argv[i], "--no-table"))
                        table = false;
                else if (argv[i][0] == '-')
                        bench_die("usage: %s [--no-table] [sendrecv] [multicast256]", argv[0]);
        }

        fair_main_pid = getpid();
        if (atexit(fair_exit) != 0)
                bench_die("atexit failed");
        fair_handle_signals();

        fair_counters = mmap(NULL, FAIR_FLOODERS_MAX * FAIR_COUNTER_STRIDE * sizeof(uint64_t),
                             PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (fair_counters == MAP_FAILED)
                bench_die("mmap: %m");
        rtt = calloc(FAIR_SAMPLES_MAX, sizeof(*rtt));
        if (!rtt)
                bench_die("out of memory");

        for (FairKind kind = 0; kind < _FAIR_KIND_N; ++kind)
                if (bench_selected(argc, argv, fair_kind_names[kind]))
                        fair_case(kind, rtt);
        if (table && fair_n_rows)
                fair_table();

        free(rtt);
        munmap(fair_counters, FAIR_FLOODERS_MAX * FAIR_COUNTER_STRIDE * sizeof(uint64_t));
        return 0;
}
