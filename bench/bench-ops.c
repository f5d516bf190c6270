/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bench-ops: fan-out, two-process and capability operations on bus1d
 *
 * Every case goes through the native API on one private broker:
 *
 *  - multicast: one sender holds handles to 256 nodes, each owned by its own
 *    receiver peer; one 0-byte message to the first N (1, 2, 4 .. 256), which
 *    every one of them receives. ns per multicast, and a least-squares fit
 *    base + N * per-dest over all N (multicast-base, multicast-per-dest,
 *    multicast-per-dest-ratio = per-dest / the N = 1 figure).
 *  - pingpong: round trip between two processes, 0 B and 1 KiB; every round
 *    trip is timed on its own, p50 and p99 in ns.
 *  - stream: one process sends as fast as the broker acknowledges, another
 *    receives; msgs/s and MB/s (10^6 bytes) as the receiver counted them,
 *    and how often the sender found the receiver's pool or quota full
 *    (stream-retries, a count).
 *  - handle-transfer: HANDLE_TRANSFER of a node's handle to a peer that
 *    already holds it, then that peer's release (so no notification).
 *  - handle-in-message: a 0-byte send carrying one handle, its receive and
 *    the release of the received reference.
 *  - node-destroy: NODES_DESTROY of a node with N holders (1, 16, 256) until
 *    every holder received its NODE_DESTROY and released its handle; giving
 *    the handles out is not timed.
 *  - release-notification: a holder releases its last handle until the
 *    owner received the NODE_RELEASE; giving the handle is not timed.
 *  - fds: 0-byte send-recv with K fds (0, 1, 4, 16, 64, 253), closed again
 *    by dropping the message; ns per message and a least-squares fd-cost.
 *
 * The two-process cases prepare both peers here, then fork: the child
 * adopts its connection (bus1_peer_new_from_fd()), counts or echoes what
 * arrives on its data node, and answers requests on its control node with
 * what it counted. Every received entry is checked (type, destination,
 * size, handles, fds); anything unexpected ends the program (bench_die()),
 * and an exit handler kills and reaps the child and stops the broker on
 * every path. A wait for an entry gives up after OPS_TIMEOUT_MSEC so a lost
 * wake-up is reported rather than hangs; no figure is ever checked.
 *
 * Usage: bench-ops [CASE...]
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench-util.h"
#include "bus1/client.h"

#define OPS_TIMEOUT_MSEC        10000
#define OPS_PEERS_MAX           256
#define OPS_PINGPONG_SAMPLES    20000
#define OPS_NODE                0x100ULL        /* a node of a peer's own choosing */
#define OPS_NODE_CTL            0x200ULL        /* the child's control node */
#define OPS_PAYLOAD_MAX         65536

static const size_t ops_pingpong_sizes[] = { 0, 1024 };
static const size_t ops_stream_sizes[] = { 0, 64, 1024, 4096, 65536 };
static const size_t ops_destroy_holders[] = { 1, 16, 256 };
static const size_t ops_fd_counts[] = { 0, 1, 4, 16, 64, 253 };

/* what every message carries: zeros, never written */
static const uint8_t ops_payload[OPS_PAYLOAD_MAX];

/*
 * What the exit handler cleans up when bench_die() ends the program: the
 * process that set it up, its broker and the child of the running case.
 */
static pid_t ops_main_pid;
static pid_t ops_child_pid;
static BenchBroker ops_broker;

static void ops_exit(void) {
        if (getpid() != ops_main_pid)
                return;
        if (ops_child_pid > 0) {
                kill(ops_child_pid, SIGKILL);
                waitpid(ops_child_pid, NULL, 0);
                ops_child_pid = 0;
        }
        if (ops_broker.pid > 0) {
                kill(ops_broker.pid, SIGTERM);
                waitpid(ops_broker.pid, NULL, 0);
                unlink(ops_broker.path);
                rmdir(ops_broker.dir);
                ops_broker.pid = 0;
        }
}

/* $BENCH_STEPS for the loops that do not go through bench_run(), else 0 */
static uint64_t ops_steps(void) {
        const char *e = getenv("BENCH_STEPS");

        return e ? strtoull(e, NULL, 10) : 0;
}

static size_t ops_count_fds(void) {
        struct dirent *d;
        size_t n = 0;
        DIR *dir;

        dir = opendir("/proc/self/fd");
        if (!dir)
                bench_die("opendir /proc/self/fd: %m");
        while ((d = readdir(dir)))
                if (d->d_name[0] != '.')
                        ++n;
        closedir(dir);
        return n;
}

/* least squares y = base + slope * x */
static void ops_fit(double *basep, double *slopep, const double *x, const double *y, size_t n) {
        double mx = 0, my = 0, sxx = 0, sxy = 0;

        for (size_t i = 0; i < n; ++i) {
                mx += x[i];
                my += y[i];
        }
        mx /= (double)n;
        my /= (double)n;
        for (size_t i = 0; i < n; ++i) {
                sxx += (x[i] - mx) * (x[i] - mx);
                sxy += (x[i] - mx) * (y[i] - my);
        }
        *slopep = sxx > 0 ? sxy / sxx : 0;
        *basep = my - *slopep * mx;
}

static Bus1Peer *ops_peer_new(void) {
        Bus1Peer *peer;
        int r;

        r = bus1_peer_new(&peer, NULL);
        if (r < 0)
                bench_die("bus1_peer_new: %s", strerror(-r));
        return peer;
}

/* give @dst a handle to @owner's node @id (created if new); returns @dst's ID */
static uint64_t ops_give(Bus1Peer *owner, uint64_t id, Bus1Peer *dst) {
        uint64_t dst_id;
        int r;

        r = bus1_peer_handle_transfer(owner, id, dst, &dst_id);
        if (r < 0)
                bench_die("bus1_peer_handle_transfer: %s", strerror(-r));
        if (dst_id == BUS1_HANDLE_INVALID)
                bench_die("bus1_peer_handle_transfer: node 0x%llx is gone",
                          (unsigned long long)id);
        return dst_id;
}

static void ops_release(Bus1Peer *peer, uint64_t id) {
        int r;

        r = bus1_peer_handle_release(peer, id);
        if (r < 0)
                bench_die("bus1_peer_handle_release 0x%llx: %s", (unsigned long long)id,
                          strerror(-r));
}

static void ops_send(Bus1Peer *peer, const uint64_t *dst, size_t n_dst, size_t size,
                     const uint64_t *handles, size_t n_handles, const int *fds, size_t n_fds) {
        struct iovec vec = { .iov_base = (void *)ops_payload, .iov_len = size };
        int r;

        r = bus1_peer_send(peer, 0, dst, n_dst, NULL, &vec, size ? 1 : 0, handles, n_handles,
                           fds, n_fds);
        if (r < 0)
                bench_die("bus1_peer_send: %s", strerror(-r));
}

/*
 * Send to a receiver that may be behind: a full pool or quota is waited
 * out. Return: how many times it was full.
 */
static uint64_t ops_send_retry(Bus1Peer *peer, uint64_t dst, const void *data, size_t size) {
        struct iovec vec = { .iov_base = (void *)data, .iov_len = size };
        struct timespec pause = { .tv_nsec = 20000 };
        uint64_t n_full = 0;
        int r;

        for (;;) {
                r = bus1_peer_send(peer, 0, &dst, 1, NULL, &vec, size ? 1 : 0, NULL, 0, NULL, 0);
                if (r == 0)
                        return n_full;
                if (r != -EXFULL && r != -EDQUOT)
                        bench_die("bus1_peer_send: %s", strerror(-r));
                ++n_full;
                nanosleep(&pause, NULL);
        }
}

/* the next entry of @peer, waiting with poll(2) while there is none */
static Bus1Message *ops_recv(Bus1Peer *peer) {
        Bus1Message *m;
        int r;

        for (;;) {
                struct pollfd p = { .fd = bus1_peer_get_fd(peer), .events = POLLIN };

                r = bus1_peer_recv(peer, 0, &m);
                if (r == 0)
                        return m;
                if (r != -EAGAIN)
                        bench_die("bus1_peer_recv: %s", strerror(-r));
                r = poll(&p, 1, OPS_TIMEOUT_MSEC);
                if (r < 0 && errno != EINTR)
                        bench_die("poll: %m");
                if (r == 0)
                        bench_die("no entry arrived within %d ms", OPS_TIMEOUT_MSEC);
                if (p.revents & POLLNVAL)
                        bench_die("poll: the peer's descriptor is not open");
        }
}

static const char *ops_type_name(unsigned int type) {
        switch (type) {
        case BUS1_MSG_DATA:
                return "DATA";
        case BUS1_MSG_NODE_DESTROY:
                return "NODE_DESTROY";
        case BUS1_MSG_NODE_RELEASE:
                return "NODE_RELEASE";
        default:
                return "unknown";
        }
}

/* check an entry: type, destination, and for DATA size, handles and fds */
static void ops_expect(Bus1Message *m, const char *what, unsigned int type, uint64_t destination,
                       size_t size, size_t n_handles, size_t n_fds) {
        unsigned int t = bus1_message_get_type(m);
        uint64_t d = bus1_message_get_destination(m);
        size_t s = 0;

        if (t != type || d != destination)
                bench_die("%s: got %s to 0x%llx, expected %s to 0x%llx", what, ops_type_name(t),
                          (unsigned long long)d, ops_type_name(type),
                          (unsigned long long)destination);
        if (type != BUS1_MSG_DATA)
                return;
        bus1_message_get_data(m, &s);
        if (s != size || bus1_message_get_n_handles(m) != n_handles ||
            bus1_message_get_n_fds(m) != n_fds)
                bench_die("%s: got %zu bytes, %zu handles, %zu fds; expected %zu, %zu, %zu", what,
                          s, bus1_message_get_n_handles(m), bus1_message_get_n_fds(m), size,
                          n_handles, n_fds);
}

typedef uint64_t (*OpsTimedStep)(void *userdata);

/*
 * Like bench_run(), for steps that set themselves up: @step returns the
 * nanoseconds of its timed part, and the budget counts wall time. Return:
 * mean timed nanoseconds per step.
 */
static double ops_run_timed(OpsTimedStep step, void *userdata) {
        uint64_t budget = bench_time_budget_ns(), steps = ops_steps(), start, sum = 0, n = 0;

        if (steps) {
                for (n = 0; n < steps; ++n)
                        sum += step(userdata);
                return (double)sum / (double)n;
        }

        start = bench_now_ns();
        do
                step(userdata);
        while (bench_now_ns() - start < budget / 10);

        start = bench_now_ns();
        do {
                sum += step(userdata);
                ++n;
        } while (bench_now_ns() - start < budget);
        return (double)sum / (double)n;
}

/* multicast ---------------------------------------------------------------- */

typedef struct OpsMulticast {
        Bus1Peer *sender;
        Bus1Peer *receivers[OPS_PEERS_MAX];
        uint64_t dst[OPS_PEERS_MAX];
        size_t n_dst;
} OpsMulticast;

static void ops_multicast_step(void *userdata) {
        OpsMulticast *mc = userdata;

        ops_send(mc->sender, mc->dst, mc->n_dst, 0, NULL, 0, NULL, 0);
        for (size_t i = 0; i < mc->n_dst; ++i) {
                Bus1Message *m = ops_recv(mc->receivers[i]);

                ops_expect(m, "multicast", BUS1_MSG_DATA, OPS_NODE, 0, 0, 0);
                bus1_message_unref(m);
        }
}

static void ops_multicast(void) {
        double x[16], y[16], base, slope;
        OpsMulticast *mc;
        size_t n = 0;

        mc = calloc(1, sizeof(*mc));
        if (!mc)
                bench_die("out of memory");
        mc->sender = ops_peer_new();
        for (size_t i = 0; i < OPS_PEERS_MAX; ++i) {
                mc->receivers[i] = ops_peer_new();
                mc->dst[i] = ops_give(mc->receivers[i], OPS_NODE, mc->sender);
        }
        for (mc->n_dst = 1; mc->n_dst <= OPS_PEERS_MAX; mc->n_dst *= 2, ++n) {
                x[n] = (double)mc->n_dst;
                y[n] = bench_run(ops_multicast_step, mc);
                bench_print("multicast", mc->n_dst, "ns", y[n]);
        }
        ops_fit(&base, &slope, x, y, n);
        bench_print("multicast-base", 0, "ns", base);
        bench_print("multicast-per-dest", 0, "ns", slope);
        bench_print("multicast-per-dest-ratio", 0, "ratio", slope / y[0]);

        bus1_peer_unref(mc->sender);
        for (size_t i = 0; i < OPS_PEERS_MAX; ++i)
                bus1_peer_unref(mc->receivers[i]);
        free(mc);
}

/* the child of the two-process cases --------------------------------------- */

typedef enum OpsChildMode {
        OPS_CHILD_COUNT,        /* count and drop what arrives */
        OPS_CHILD_ECHO,         /* answer each message with one of its size */
} OpsChildMode;

/* the child's answer to a control request */
typedef struct OpsChildReport {
        uint64_t n_messages;
        uint64_t n_bytes;
} OpsChildReport;

/* the parent's side of a child */
typedef struct OpsChild {
        pid_t pid;
        Bus1Peer *peer;         /* the parent's peer */
        uint64_t data;          /* its handle to the child's data node */
        uint64_t ctl;           /* its handle to the child's control node */
} OpsChild;

/*
 * The child's loop: data on OPS_NODE is counted (and echoed to @parent),
 * a request on OPS_NODE_CTL is answered with the counts, which start
 * afresh: 'S' to go on, 'Q' to end.
 */
static void ops_child_run(Bus1Peer *peer, uint64_t parent, OpsChildMode mode) {
        OpsChildReport report = {};

        for (;;) {
                Bus1Message *m = ops_recv(peer);
                const char *data;
                size_t size;

                if (bus1_message_get_type(m) != BUS1_MSG_DATA)
                        bench_die("child: got %s to 0x%llx",
                                  ops_type_name(bus1_message_get_type(m)),
                                  (unsigned long long)bus1_message_get_destination(m));
                data = bus1_message_get_data(m, &size);
                if (bus1_message_get_destination(m) == OPS_NODE) {
                        ops_expect(m, "child", BUS1_MSG_DATA, OPS_NODE, size, 0, 0);
                        ++report.n_messages;
                        report.n_bytes += size;
                        bus1_message_unref(m);
                        if (mode == OPS_CHILD_ECHO)
                                ops_send(peer, &parent, 1, size, NULL, 0, NULL, 0);
                        continue;
                }

                ops_expect(m, "child", BUS1_MSG_DATA, OPS_NODE_CTL, 1, 0, 0);
                if (data[0] != 'S' && data[0] != 'Q')
                        bench_die("child: unknown request '%c'", data[0]);
                ops_send_retry(peer, parent, &report, sizeof(report));
                report = (OpsChildReport){};
                if (data[0] == 'Q') {
                        bus1_message_unref(m);
                        return;
                }
                bus1_message_unref(m);
        }
}

static void ops_child_start(OpsChild *c, OpsChildMode mode) {
        pid_t parent_pid = getpid();
        Bus1Peer *child;
        uint64_t parent;
        int fd, r;

        c->peer = ops_peer_new();
        child = ops_peer_new();
        c->data = ops_give(child, OPS_NODE, c->peer);
        c->ctl = ops_give(child, OPS_NODE_CTL, c->peer);
        parent = ops_give(c->peer, OPS_NODE, child);

        /* the child keeps only this copy of its connection and adopts it */
        fd = fcntl(bus1_peer_get_fd(child), F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                bench_die("fcntl F_DUPFD_CLOEXEC: %m");
        fflush(stdout);
        c->pid = fork();
        if (c->pid < 0)
                bench_die("fork: %m");
        if (c->pid == 0) {
                Bus1Peer *peer;

                /* end with the parent, however it ends */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent_pid)
                        _exit(1);
                /* closes this process's copies only: no message goes out */
                bus1_peer_unref(c->peer);
                bus1_peer_unref(child);
                r = bus1_peer_new_from_fd(&peer, fd);
                if (r < 0)
                        bench_die("child: bus1_peer_new_from_fd: %s", strerror(-r));
                ops_child_run(peer, parent, mode);
                bus1_peer_unref(peer);
                _exit(0);
        }
        ops_child_pid = c->pid;
        close(fd);
        bus1_peer_unref(child);
}

/* send a control request and read the child's counts */
static OpsChildReport ops_child_request(OpsChild *c, char request) {
        OpsChildReport report;
        Bus1Message *m;
        const void *data;
        size_t size;

        ops_send_retry(c->peer, c->ctl, &request, 1);
        m = ops_recv(c->peer);
        ops_expect(m, "child report", BUS1_MSG_DATA, OPS_NODE, sizeof(report), 0, 0);
        data = bus1_message_get_data(m, &size);
        memcpy(&report, data, sizeof(report));
        bus1_message_unref(m);
        return report;
}

static void ops_child_stop(OpsChild *c) {
        uint64_t start = bench_now_ns();
        int status;
        pid_t r;

        ops_child_request(c, 'Q');
        for (;;) {
                struct timespec pause = { .tv_nsec = 1000000 };

                r = waitpid(c->pid, &status, WNOHANG);
                if (r == c->pid)
                        break;
                if (r < 0 && errno != EINTR)
                        bench_die("waitpid: %m");
                if (bench_now_ns() - start > OPS_TIMEOUT_MSEC * 1000000ULL)
                        bench_die("the child did not exit within %d ms", OPS_TIMEOUT_MSEC);
                nanosleep(&pause, NULL);
        }
        ops_child_pid = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                bench_die("the child failed (status 0x%x)", status);
        bus1_peer_unref(c->peer);
        c->peer = NULL;
}

/* pingpong ------------------------------------------------------------------ */

static int ops_compare_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

static uint64_t ops_roundtrip(OpsChild *c, size_t size) {
        uint64_t start = bench_now_ns();
        Bus1Message *m;

        ops_send(c->peer, &c->data, 1, size, NULL, 0, NULL, 0);
        m = ops_recv(c->peer);
        ops_expect(m, "pingpong", BUS1_MSG_DATA, OPS_NODE, size, 0, 0);
        bus1_message_unref(m);
        return bench_now_ns() - start;
}

/* nearest rank: the smallest sample that @pct percent are not above */
static uint64_t ops_percentile(const uint64_t *sorted, size_t n, unsigned int pct) {
        size_t rank = (n * pct + 99) / 100;

        return sorted[rank ? rank - 1 : 0];
}

static void ops_pingpong(void) {
        uint64_t budget = bench_time_budget_ns(), steps = ops_steps(), max, *samples, start;
        OpsChild c = {};

        max = steps ? steps : OPS_PINGPONG_SAMPLES;
        samples = calloc(max, sizeof(*samples));
        if (!samples)
                bench_die("out of memory");
        ops_child_start(&c, OPS_CHILD_ECHO);
        for (size_t i = 0; i < sizeof(ops_pingpong_sizes) / sizeof(*ops_pingpong_sizes); ++i) {
                size_t size = ops_pingpong_sizes[i], n = 0;
                OpsChildReport report;

                if (!steps) {
                        start = bench_now_ns();
                        while (bench_now_ns() - start < budget / 10)
                                ops_roundtrip(&c, size);
                }
                ops_child_request(&c, 'S');
                start = bench_now_ns();
                do
                        samples[n++] = ops_roundtrip(&c, size);
                while (n < max && (steps || bench_now_ns() - start < budget));

                report = ops_child_request(&c, 'S');
                if (report.n_messages != n || report.n_bytes != n * size)
                        bench_die("pingpong: the child saw %llu messages, %llu bytes; sent %zu",
                                  (unsigned long long)report.n_messages,
                                  (unsigned long long)report.n_bytes, n);
                qsort(samples, n, sizeof(*samples), ops_compare_u64);
                bench_print("pingpong-p50", size, "ns", (double)ops_percentile(samples, n, 50));
                bench_print("pingpong-p99", size, "ns", (double)ops_percentile(samples, n, 99));
        }
        ops_child_stop(&c);
        free(samples);
}

/* stream -------------------------------------------------------------------- */

static void ops_stream(void) {
        uint64_t budget = bench_time_budget_ns(), steps = ops_steps();
        OpsChild c = {};

        ops_child_start(&c, OPS_CHILD_COUNT);
        for (size_t i = 0; i < sizeof(ops_stream_sizes) / sizeof(*ops_stream_sizes); ++i) {
                size_t size = ops_stream_sizes[i];
                uint64_t start, end, n = 0, n_full = 0;
                OpsChildReport report;

                if (!steps) {
                        start = bench_now_ns();
                        while (bench_now_ns() - start < budget / 10)
                                ops_send_retry(c.peer, c.data, ops_payload, size);
                }
                ops_child_request(&c, 'S');

                /* the report comes after the child received all of it */
                start = bench_now_ns();
                do {
                        n_full += ops_send_retry(c.peer, c.data, ops_payload, size);
                        ++n;
                } while (steps ? n < steps : bench_now_ns() - start < budget);
                report = ops_child_request(&c, 'S');
                end = bench_now_ns();

                if (report.n_messages != n || report.n_bytes != n * size)
                        bench_die("stream: the child saw %llu messages, %llu bytes; sent %llu",
                                  (unsigned long long)report.n_messages,
                                  (unsigned long long)report.n_bytes, (unsigned long long)n);
                bench_print("stream", size, "msgs/s",
                            (double)report.n_messages * 1e9 / (double)(end - start));
                bench_print("stream", size, "MB/s",
                            (double)report.n_bytes * 1e3 / (double)(end - start));
                bench_print("stream-retries", size, "count", (double)n_full);
        }
        ops_child_stop(&c);
}

/* handle-transfer, handle-in-message ---------------------------------------- */

typedef struct OpsHandles {
        Bus1Peer *owner, *holder;
        uint64_t dst;           /* owner's handle to the holder's node */
        uint64_t held;          /* holder's handle to the owner's node */
} OpsHandles;

/* the holder keeps one reference throughout, so no NODE_RELEASE is queued */
static void ops_handle_transfer_step(void *userdata) {
        OpsHandles *h = userdata;

        if (ops_give(h->owner, OPS_NODE, h->holder) != h->held)
                bench_die("handle-transfer: the holder got a new ID");
        ops_release(h->holder, h->held);
}

static void ops_handle_in_message_step(void *userdata) {
        OpsHandles *h = userdata;
        uint64_t node = OPS_NODE;
        Bus1Message *m;

        ops_send(h->owner, &h->dst, 1, 0, &node, 1, NULL, 0);
        m = ops_recv(h->holder);
        ops_expect(m, "handle-in-message", BUS1_MSG_DATA, OPS_NODE, 0, 1, 0);
        if (bus1_message_get_handle(m, 0) != h->held)
                bench_die("handle-in-message: got handle 0x%llx, expected 0x%llx",
                          (unsigned long long)bus1_message_get_handle(m, 0),
                          (unsigned long long)h->held);
        bus1_message_unref(m);
        ops_release(h->holder, h->held);
}

static void ops_handles(const char *name, BenchStep step) {
        OpsHandles h = {};
        Bus1Message *m;
        int r;

        h.owner = ops_peer_new();
        h.holder = ops_peer_new();
        h.held = ops_give(h.owner, OPS_NODE, h.holder);
        h.dst = ops_give(h.holder, OPS_NODE, h.owner);
        bench_print(name, 0, "ns", bench_run(step, &h));

        /* no notification on the way: the holder's reference never went */
        r = bus1_peer_recv(h.owner, 0, &m);
        if (r != -EAGAIN)
                bench_die("%s: the owner has an entry queued (%d)", name, r);
        bus1_peer_unref(h.owner);
        bus1_peer_unref(h.holder);
}

/* node-destroy -------------------------------------------------------------- */

typedef struct OpsDestroy {
        Bus1Peer *owner;
        Bus1Peer *holders[OPS_PEERS_MAX];
        uint64_t held[OPS_PEERS_MAX];
        size_t n_holders;
} OpsDestroy;

static uint64_t ops_node_destroy_step(void *userdata) {
        OpsDestroy *d = userdata;
        uint64_t node = OPS_NODE, start, end;
        Bus1Message *m;
        int r;

        /*
         * The owner's ID is free again once its handle went with the
         * destruction (RELEASE_HANDLES), so each step makes a new node.
         */
        for (size_t i = 0; i < d->n_holders; ++i)
                d->held[i] = ops_give(d->owner, node, d->holders[i]);

        start = bench_now_ns();
        r = bus1_peer_nodes_destroy(d->owner, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, &node, 1);
        if (r < 0)
                bench_die("bus1_peer_nodes_destroy: %s", strerror(-r));
        for (size_t i = 0; i < d->n_holders; ++i) {
                m = ops_recv(d->holders[i]);
                ops_expect(m, "node-destroy", BUS1_MSG_NODE_DESTROY, d->held[i], 0, 0, 0);
                bus1_message_unref(m);
                ops_release(d->holders[i], d->held[i]);
        }
        end = bench_now_ns();

        /* the owner released its handle with the destruction: it sees nothing */
        r = bus1_peer_recv(d->owner, 0, &m);
        if (r != -EAGAIN)
                bench_die("node-destroy: the owner has an entry queued (%d)", r);
        return end - start;
}

static void ops_node_destroy(void) {
        OpsDestroy *d;

        d = calloc(1, sizeof(*d));
        if (!d)
                bench_die("out of memory");
        d->owner = ops_peer_new();
        for (size_t i = 0; i < OPS_PEERS_MAX; ++i)
                d->holders[i] = ops_peer_new();
        for (size_t i = 0; i < sizeof(ops_destroy_holders) / sizeof(*ops_destroy_holders); ++i) {
                d->n_holders = ops_destroy_holders[i];
                bench_print("node-destroy", d->n_holders, "ns",
                            ops_run_timed(ops_node_destroy_step, d));
        }
        bus1_peer_unref(d->owner);
        for (size_t i = 0; i < OPS_PEERS_MAX; ++i)
                bus1_peer_unref(d->holders[i]);
        free(d);
}

/* release-notification ------------------------------------------------------ */

static uint64_t ops_release_notification_step(void *userdata) {
        OpsHandles *h = userdata;
        uint64_t start, end;
        Bus1Message *m;

        h->held = ops_give(h->owner, OPS_NODE, h->holder);

        start = bench_now_ns();
        ops_release(h->holder, h->held);
        m = ops_recv(h->owner);
        end = bench_now_ns();

        ops_expect(m, "release-notification", BUS1_MSG_NODE_RELEASE, OPS_NODE, 0, 0, 0);
        bus1_message_unref(m);
        return end - start;
}

static void ops_release_notification(void) {
        OpsHandles h = {};

        h.owner = ops_peer_new();
        h.holder = ops_peer_new();
        bench_print("release-notification", 0, "ns",
                    ops_run_timed(ops_release_notification_step, &h));
        bus1_peer_unref(h.owner);
        bus1_peer_unref(h.holder);
}

/* fds ----------------------------------------------------------------------- */

typedef struct OpsFds {
        Bus1Peer *sender, *receiver;
        uint64_t dst;
        int fds[BUS1_FD_MAX];
        size_t n_fds;
} OpsFds;

static void ops_fds_step(void *userdata) {
        OpsFds *f = userdata;
        Bus1Message *m;

        ops_send(f->sender, &f->dst, 1, 0, NULL, 0, f->fds, f->n_fds);
        m = ops_recv(f->receiver);
        ops_expect(m, "fds", BUS1_MSG_DATA, OPS_NODE, 0, 0, f->n_fds);
        for (size_t i = 0; i < f->n_fds; ++i)
                if (bus1_message_get_fd(m, i) < 0)
                        bench_die("fds: fd %zu of %zu was not installed", i, f->n_fds);
        bus1_message_unref(m);
}

static void ops_fds(void) {
        size_t n_counts = sizeof(ops_fd_counts) / sizeof(*ops_fd_counts);
        double x[sizeof(ops_fd_counts) / sizeof(*ops_fd_counts)];
        double y[sizeof(ops_fd_counts) / sizeof(*ops_fd_counts)];
        double base, slope;
        OpsFds f = {};
        int p[2];

        if (pipe2(p, O_CLOEXEC) < 0)
                bench_die("pipe2: %m");
        for (size_t i = 0; i < ops_fd_counts[n_counts - 1]; ++i) {
                f.fds[i] = fcntl(p[0], F_DUPFD_CLOEXEC, 3);
                if (f.fds[i] < 0)
                        bench_die("fcntl F_DUPFD_CLOEXEC: %m");
        }
        f.sender = ops_peer_new();
        f.receiver = ops_peer_new();
        f.dst = ops_give(f.receiver, OPS_NODE, f.sender);
        for (size_t i = 0; i < n_counts; ++i) {
                f.n_fds = ops_fd_counts[i];
                x[i] = (double)f.n_fds;
                y[i] = bench_run(ops_fds_step, &f);
                bench_print("fds", f.n_fds, "ns", y[i]);
        }
        ops_fit(&base, &slope, x, y, n_counts);
        bench_print("fd-cost", 0, "ns", slope);

        bus1_peer_unref(f.sender);
        bus1_peer_unref(f.receiver);
        for (size_t i = 0; i < ops_fd_counts[n_counts - 1]; ++i)
                close(f.fds[i]);
        close(p[0]);
        close(p[1]);
}

/* main ---------------------------------------------------------------------- */

typedef struct OpsCase {
        const char *name;
        void (*run)(void);
} OpsCase;

static void ops_handle_transfer(void) {
        ops_handles("handle-transfer", ops_handle_transfer_step);
}

static void ops_handle_in_message(void) {
        ops_handles("handle-in-message", ops_handle_in_message_step);
}

static const OpsCase ops_cases[] = {
        { "multicast", ops_multicast },
        { "pingpong", ops_pingpong },
        { "stream", ops_stream },
        { "handle-transfer", ops_handle_transfer },
        { "handle-in-message", ops_handle_in_message },
        { "node-destroy", ops_node_destroy },
        { "release-notification", ops_release_notification },
        { "fds", ops_fds },
};

int main(int argc, char **argv) {
        BenchBroker broker;
        struct rlimit rl;

        /* 257 peers at two descriptors each, and 2 x 253 passed fds */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
        signal(SIGPIPE, SIG_IGN);
        ops_main_pid = getpid();
        if (atexit(ops_exit) != 0)
                bench_die("atexit failed");

        bench_broker_start(&ops_broker, NULL);
        for (size_t i = 0; i < sizeof(ops_cases) / sizeof(*ops_cases); ++i) {
                size_t n_fds;

                if (!bench_selected(argc, argv, ops_cases[i].name))
                        continue;
                n_fds = ops_count_fds();
                ops_cases[i].run();
                if (ops_count_fds() != n_fds)
                        bench_die("%s: %zu descriptors open before, %zu after",
                                  ops_cases[i].name, n_fds, ops_count_fds());
        }
        /* a broker that fails to stop was reaped already: not the exit handler's */
        broker = ops_broker;
        ops_broker.pid = 0;
        bench_broker_stop(&broker);
        return 0;
}
