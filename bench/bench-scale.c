/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bench-scale: the send-recv loop at scale, and what the broker's memory
 * grows by
 *
 * The loop is the 0-byte native loop of bench-loop: a sender peer sends to
 * a node of a receiver peer, which receives the message and releases it.
 *
 * Cases:
 *  - scale-peers: the loop while N = 0, 100 and 10000 other peers are
 *    connected to the same broker and idle. The idle peers are held by
 *    forked children (SCALE_PEERS_PER_CHILD each, two descriptors per peer)
 *    and are connected (HELLO answered) before anything is measured.
 *    Metric ns per message, and scale-peers-ratio V(10000) / V(0).
 *  - scale-handles: the loop while its sender owns M = 0 and 1000000 nodes
 *    and its receiver holds a handle to each. The nodes are created by
 *    sends of SCALE_SEND_HANDLES new IDs to the receiver's node. Metric ns
 *    per message, and scale-handles-ratio V(1000000) / V(0).
 *  - memory: the growth of the broker's anonymous RSS (pool pages are
 *    shared memory and not counted): per node created with its owner handle
 *    (mem-node), per handle another peer receives to an existing node
 *    (mem-handle), and per idle peer (mem-idle-peer, 2000 and 10000 peers).
 *    Metric bytes.
 *
 * Each point of the loop is timed SCALE_RUNS times and the fastest run
 * counts, so that a ratio is not one point's bad luck on a shared machine.
 * Every case runs on a broker of its own, with limits large enough for it.
 * With CAP_SYS_RESOURCE the hard RLIMIT_NOFILE is raised to SCALE_NOFILE
 * before the brokers start (they inherit it; each connection costs the
 * broker two descriptors). Otherwise a count the broker cannot take is
 * skipped with a '#' line that says why, followed by '#' lines with the
 * figures at the largest count it took.
 *
 * Usage: bench-scale [CASE...]  (scale-peers, scale-handles, memory)
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench-util.h"
#include "bus1/client.h"
#include "bus1/uapi.h"

#define SCALE_NOFILE 65536ULL           /* the descriptor table we want */
#define SCALE_PEERS_PER_CHILD 2500U     /* idle peers one child holds */
#define SCALE_CHILDREN_MAX 16U
#define SCALE_SEND_HANDLES 8192U        /* handles one SEND may carry */
#define SCALE_MEM_CHUNK 1024U           /* handles per SEND in the memory case */
#define SCALE_NODE 0x100ULL             /* the receiver's node */
#define SCALE_RUNS 3U                   /* timings per point; the fastest counts */

static pid_t scale_main_pid;
static int scale_nofile_error;          /* why the hard limit could not be raised */
static BenchBroker *scale_broker;       /* the running broker, for the exit path */

/*
 * Idle peers, held by children: each child connects its share, reports
 * how many it connected and the first error, then blocks on the hold pipe
 * until the parent closes it (or dies), and disconnects.
 */
typedef struct IdleSet {
        int hold[2];
        pid_t pids[SCALE_CHILDREN_MAX];
        size_t n_children;
        size_t n_peers;         /* connected, in all children */
        int error;              /* first connect error (negative errno), or 0 */
} IdleSet;

typedef struct IdleReport {
        uint32_t n_peers;
        int32_t error;
} IdleReport;

static IdleSet *scale_idle;             /* for the exit path */

static void idle_init(IdleSet *set) {
        *set = (IdleSet){};
        if (pipe2(set->hold, O_CLOEXEC) < 0)
                bench_die("pipe2: %m");
        scale_idle = set;
}

static _Noreturn void idle_child(IdleSet *set, int report_fd, size_t n) {
        IdleReport report = {};
        Bus1Peer **peers;
        char c;
        ssize_t l;

        close(set->hold[1]);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != scale_main_pid)
                _exit(1);
        peers = calloc(n, sizeof(*peers));
        if (!peers)
                _exit(1);
        while (report.n_peers < n) {
                int e = bus1_peer_new(&peers[report.n_peers], NULL);

                if (e < 0) {
                        report.error = e;
                        break;
                }
                ++report.n_peers;
        }
        if (write(report_fd, &report, sizeof(report)) != sizeof(report))
                _exit(1);
        close(report_fd);
        do
                l = read(set->hold[0], &c, 1);
        while (l < 0 && errno == EINTR);
        for (size_t i = 0; i < report.n_peers; ++i)
                bus1_peer_unref(peers[i]);
        free(peers);
        _exit(0);
}

/* connect @n more idle peers; stops at the first refusal (set->error) */
static void idle_add(IdleSet *set, size_t n) {
        while (n > 0 && !set->error) {
                size_t k = n < SCALE_PEERS_PER_CHILD ? n : SCALE_PEERS_PER_CHILD;
                IdleReport report;
                int report_pipe[2];
                ssize_t l;
                pid_t pid;

                if (set->n_children == SCALE_CHILDREN_MAX)
                        bench_die("idle peers: more than %u children", SCALE_CHILDREN_MAX);
                if (pipe2(report_pipe, O_CLOEXEC) < 0)
                        bench_die("pipe2: %m");
                fflush(stdout);
                fflush(stderr);
                pid = fork();
                if (pid < 0)
                        bench_die("fork: %m");
                if (pid == 0) {
                        close(report_pipe[0]);
                        idle_child(set, report_pipe[1], k);
                }
                set->pids[set->n_children++] = pid;
                close(report_pipe[1]);
                do
                        l = read(report_pipe[0], &report, sizeof(report));
                while (l < 0 && errno == EINTR);
                close(report_pipe[0]);
                if (l != sizeof(report))
                        bench_die("idle peers: child %d died before reporting", (int)pid);
                set->n_peers += report.n_peers;
                set->error = report.error;
                n -= report.n_peers;
        }
}

/* let the children disconnect their peers and exit, and reap them */
static void idle_release(IdleSet *set) {
        if (set->hold[1] >= 0)
                close(set->hold[1]);
        set->hold[1] = -1;
        for (size_t i = 0; i < set->n_children; ++i) {
                int status;

                if (waitpid(set->pids[i], &status, 0) < 0)
                        bench_die("waitpid: %m");
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        bench_die("idle peers: child %d failed", (int)set->pids[i]);
        }
        set->n_children = 0;
        close(set->hold[0]);
        set->hold[0] = -1;
        scale_idle = NULL;
}

/* on bench_die(): nothing must outlive us */
static void scale_cleanup(void) {
        if (getpid() != scale_main_pid)
                return;
        if (scale_idle) {
                for (size_t i = 0; i < scale_idle->n_children; ++i) {
                        kill(scale_idle->pids[i], SIGKILL);
                        waitpid(scale_idle->pids[i], NULL, 0);
                }
                scale_idle->n_children = 0;
        }
        if (scale_broker && scale_broker->pid > 0) {
                kill(scale_broker->pid, SIGKILL);
                waitpid(scale_broker->pid, NULL, 0);
                scale_broker->pid = 0;
                unlink(scale_broker->path);
                rmdir(scale_broker->dir);
        }
}

static void scale_broker_start(BenchBroker *broker, const char *const *args) {
        bench_broker_start(broker, args);
        scale_broker = broker;
}

static void scale_broker_stop(BenchBroker *broker) {
        bench_broker_stop(broker);
        scale_broker = NULL;
}

/*
 * The hard limit is what the broker's descriptor budget comes from (and
 * 1024 if it is unlimited); raise it if we may, and take all of it.
 */
static void scale_raise_nofile(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                bench_die("getrlimit: %m");
        if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max < SCALE_NOFILE) {
                struct rlimit want = { .rlim_cur = SCALE_NOFILE, .rlim_max = SCALE_NOFILE };

                if (setrlimit(RLIMIT_NOFILE, &want) == 0)
                        return;
                scale_nofile_error = errno;
        }
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                bench_die("setrlimit: %m");
}

static uint64_t scale_nofile(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                bench_die("getrlimit: %m");
        return rl.rlim_max == RLIM_INFINITY ? 1024 : (uint64_t)rl.rlim_max;
}

typedef struct Loop {
        Bus1Peer *sender, *receiver;
        uint64_t dst;
} Loop;

static void loop_open(Loop *l) {
        int e;

        *l = (Loop){};
        e = bus1_peer_new(&l->sender, NULL);
        if (e >= 0)
                e = bus1_peer_new(&l->receiver, NULL);
        if (e < 0)
                bench_die("bus1_peer_new: %s", strerror(-e));
        e = bus1_peer_handle_transfer(l->receiver, SCALE_NODE, l->sender, &l->dst);
        if (e < 0)
                bench_die("bus1_peer_handle_transfer: %s", strerror(-e));
}

static void loop_close(Loop *l) {
        l->sender = bus1_peer_unref(l->sender);
        l->receiver = bus1_peer_unref(l->receiver);
}

static void loop_step(void *userdata) {
        Loop *l = userdata;
        Bus1Message *m;
        int e;

        e = bus1_peer_send(l->sender, 0, &l->dst, 1, NULL, NULL, 0, NULL, 0, NULL, 0);
        if (e < 0)
                bench_die("bus1_peer_send: %s", strerror(-e));
        e = bus1_peer_recv(l->receiver, 0, &m);
        if (e < 0)
                bench_die("bus1_peer_recv: %s", strerror(-e));
        if (bus1_message_get_type(m) != BUS1_MSG_DATA)
                bench_die("bus1_peer_recv: unexpected entry type %u", bus1_message_get_type(m));
        bus1_message_unref(m);
}

/*
 * The machine is shared with whatever else runs: time a point SCALE_RUNS
 * times and keep the fastest, so that a ratio compares like with like.
 */
static double scale_time(Loop *l) {
        double best = 0;

        for (unsigned int i = 0; i < SCALE_RUNS; ++i) {
                double v = bench_run(loop_step, l);

                if (i == 0 || v < best)
                        best = v;
        }
        return best;
}

/* one round trip per peer, so the broker has applied everything, then a pause */
static void scale_settle(Bus1Peer *a, Bus1Peer *b) {
        struct timespec ts = { .tv_nsec = 50 * 1000 * 1000 };
        int e;

        e = bus1_peer_query(a, NULL, NULL);
        if (e >= 0 && b)
                e = bus1_peer_query(b, NULL, NULL);
        if (e < 0)
                bench_die("bus1_peer_query: %s", strerror(-e));
        nanosleep(&ts, NULL);
}

/* the receiver must find nothing queued */
static void scale_expect_empty(Bus1Peer *peer, const char *who) {
        Bus1Message *m;
        int e;

        e = bus1_peer_recv(peer, 0, &m);
        if (e != -EAGAIN)
                bench_die("%s: expected an empty queue, got %s", who,
                          e < 0 ? strerror(-e) : "an entry");
}

/* receive one DATA message carrying @n handles, check them, release it */
static void scale_recv_handles(Bus1Peer *peer, size_t n) {
        Bus1Message *m;
        int e;

        e = bus1_peer_recv(peer, 0, &m);
        if (e < 0)
                bench_die("bus1_peer_recv: %s", strerror(-e));
        if (bus1_message_get_type(m) != BUS1_MSG_DATA || bus1_message_get_n_handles(m) != n)
                bench_die("bus1_peer_recv: entry type %u with %zu handles, expected %zu",
                          bus1_message_get_type(m), bus1_message_get_n_handles(m), n);
        for (size_t i = 0; i < n; ++i) {
                uint64_t id = bus1_message_get_handle(m, i);

                if (id == BUS1_HANDLE_INVALID ||
                    (id & (BUS1_HANDLE_FLAG_MANAGED | BUS1_HANDLE_FLAG_REMOTE)) !=
                    (BUS1_HANDLE_FLAG_MANAGED | BUS1_HANDLE_FLAG_REMOTE))
                        bench_die("received handle %zu is %#llx, not a remote handle", i,
                                  (unsigned long long)id);
        }
        bus1_message_unref(m);
}

/* the owner-chosen ID of the i-th node a case creates: both low bits clear */
static uint64_t scale_node_id(size_t i) {
        return (uint64_t)(i + 1) << 4;
}

/* the '#' lines for a count of idle peers the broker did not take */
static void scale_peers_skipped(const char *name, size_t n, const IdleSet *idle) {
        uint64_t nofile = scale_nofile();

        printf("# %s %zu skipped: the broker refused idle peer %zu (%s); its descriptor "
               "budget, RLIMIT_NOFILE %llu = 2 per connection + 32, allows about %llu "
               "connections", name, n, idle->n_peers + 1, strerror(-idle->error),
               (unsigned long long)nofile, (unsigned long long)((nofile - 32) / 2));
        if (scale_nofile_error)
                printf(", and the hard limit cannot be raised to %llu (setrlimit: %s; "
                       "needs CAP_SYS_RESOURCE)", SCALE_NOFILE, strerror(scale_nofile_error));
        printf("\n");
        fflush(stdout);
}

static void scale_peers(void) {
        static const size_t counts[] = { 0, 100, 10000 };
        const size_t n_counts = sizeof(counts) / sizeof(*counts);
        const char *args[] = { "--max-connections=1000000", NULL };
        BenchBroker broker;
        IdleSet idle;
        double v0 = 0;
        Loop l;

        scale_broker_start(&broker, args);
        loop_open(&l);
        idle_init(&idle);
        for (size_t i = 0; i < n_counts; ++i) {
                bool reached;
                double v;

                idle_add(&idle, counts[i] - idle.n_peers);
                reached = idle.n_peers == counts[i];
                if (!reached)
                        scale_peers_skipped("scale-peers", counts[i], &idle);
                scale_settle(l.sender, l.receiver);
                v = scale_time(&l);
                if (i == 0)
                        v0 = v;
                if (!reached) {
                        /* the largest N this machine allows, under its own number */
                        bench_print("scale-peers", idle.n_peers, "ns", v);
                        bench_print("scale-peers-ratio", idle.n_peers, "ratio", v / v0);
                        break;
                }
                bench_print("scale-peers", counts[i], "ns", v);
                if (i == n_counts - 1)
                        bench_print("scale-peers-ratio", counts[i], "ratio", v / v0);
        }
        scale_expect_empty(l.receiver, "scale-peers receiver");

        /*
         * Stop the broker before the idle peers go: it closes every
         * connection at once, where thousands of hang-ups would take it
         * seconds to process one by one.
         */
        scale_broker_stop(&broker);
        idle_release(&idle);
        loop_close(&l);
}

static void scale_handles(void) {
        const size_t m_max = 1000000;
        const char *args[] = { "--max-handles=8000000", NULL };
        uint64_t *ids;
        double v0, v1;
        BenchBroker broker;
        Loop l;

        ids = calloc(SCALE_SEND_HANDLES, sizeof(*ids));
        if (!ids)
                bench_die("out of memory");
        scale_broker_start(&broker, args);
        loop_open(&l);

        scale_settle(l.sender, l.receiver);
        v0 = scale_time(&l);
        bench_print("scale-handles", 0, "ns", v0);

        /* new IDs make the sender own m_max nodes; the receiver gets a handle to each */
        for (size_t done = 0; done < m_max;) {
                size_t k = m_max - done < SCALE_SEND_HANDLES ? m_max - done : SCALE_SEND_HANDLES;
                int e;

                for (size_t j = 0; j < k; ++j)
                        ids[j] = scale_node_id(done + j);
                e = bus1_peer_send(l.sender, 0, &l.dst, 1, NULL, NULL, 0, ids, k, NULL, 0);
                if (e < 0)
                        bench_die("bus1_peer_send of %zu new handles after %zu: %s", k, done,
                                  strerror(-e));
                scale_recv_handles(l.receiver, k);
                done += k;
        }
        scale_expect_empty(l.sender, "scale-handles sender");

        scale_settle(l.sender, l.receiver);
        v1 = scale_time(&l);
        bench_print("scale-handles", m_max, "ns", v1);
        bench_print("scale-handles-ratio", m_max, "ratio", v1 / v0);
        scale_expect_empty(l.receiver, "scale-handles receiver");

        /*
         * Stop the broker first: a disconnect of either peer would queue a
         * million notifications on the other.
         */
        scale_broker_stop(&broker);
        loop_close(&l);
        free(ids);
}

static double scale_rss_delta(const BenchBroker *broker, size_t before, size_t n) {
        size_t after = bench_rss_anon_bytes(broker->pid);

        return after > before && n ? (double)(after - before) / (double)n : 0;
}

/* per node and per handle, on a broker of their own */
static void memory_objects(void) {
        const size_t h = 100000;
        const char *args[] = { "--max-handles=4000000", NULL };
        BenchBroker broker;
        uint64_t *ids;
        size_t rss;
        Loop l;

        ids = calloc(h, sizeof(*ids));
        if (!ids)
                bench_die("out of memory");
        for (size_t i = 0; i < h; ++i)
                ids[i] = scale_node_id(i);
        scale_broker_start(&broker, args);
        loop_open(&l);

        /* warm the path (and the heap) with one message */
        loop_step(&l);
        scale_settle(l.sender, l.receiver);
        rss = bench_rss_anon_bytes(broker.pid);

        /* nodes with their owner handles: a SEND without destinations creates them */
        for (size_t done = 0; done < h; done += SCALE_MEM_CHUNK) {
                size_t k = h - done < SCALE_MEM_CHUNK ? h - done : SCALE_MEM_CHUNK;
                int e;

                e = bus1_peer_send(l.sender, 0, NULL, 0, NULL, NULL, 0, ids + done, k, NULL, 0);
                if (e < 0)
                        bench_die("bus1_peer_send of %zu new nodes after %zu: %s", k, done,
                                  strerror(-e));
        }
        scale_settle(l.sender, l.receiver);
        scale_expect_empty(l.sender, "mem-node owner");
        bench_print("mem-node", h, "bytes", scale_rss_delta(&broker, rss, h));

        /* handles of another peer to those existing nodes */
        rss = bench_rss_anon_bytes(broker.pid);
        for (size_t done = 0; done < h; done += SCALE_MEM_CHUNK) {
                size_t k = h - done < SCALE_MEM_CHUNK ? h - done : SCALE_MEM_CHUNK;
                int e;

                e = bus1_peer_send(l.sender, 0, &l.dst, 1, NULL, NULL, 0, ids + done, k, NULL, 0);
                if (e < 0)
                        bench_die("bus1_peer_send of %zu handles after %zu: %s", k, done,
                                  strerror(-e));
                scale_recv_handles(l.receiver, k);
        }
        scale_settle(l.sender, l.receiver);
        scale_expect_empty(l.sender, "mem-handle owner");
        scale_expect_empty(l.receiver, "mem-handle holder");
        bench_print("mem-handle", h, "bytes", scale_rss_delta(&broker, rss, h));

        /* a million-ish notifications would follow a disconnect: stop the broker first */
        scale_broker_stop(&broker);
        loop_close(&l);
        free(ids);
}

/* per idle peer, on a broker of its own */
static void memory_peers(void) {
        static const size_t counts[] = { 2000, 10000 };
        const char *args[] = { "--max-connections=1000000", NULL };
        BenchBroker broker;
        IdleSet idle;
        size_t rss;
        Loop l;

        scale_broker_start(&broker, args);
        loop_open(&l);
        loop_step(&l);
        idle_init(&idle);

        /* one idle peer first, so that one-time allocations are not counted */
        idle_add(&idle, 1);
        if (idle.n_peers != 1)
                bench_die("mem-idle-peer: cannot connect an idle peer: %s",
                          strerror(-idle.error));
        scale_settle(l.sender, l.receiver);
        rss = bench_rss_anon_bytes(broker.pid);
        for (size_t i = 0; i < sizeof(counts) / sizeof(*counts); ++i) {
                idle_add(&idle, counts[i] + 1 - idle.n_peers);
                scale_settle(l.sender, l.receiver);
                if (idle.n_peers < counts[i] + 1) {
                        scale_peers_skipped("mem-idle-peer", counts[i], &idle);
                        printf("# mem-idle-peer %zu bytes %.3f (largest N reached)\n",
                               idle.n_peers - 1, scale_rss_delta(&broker, rss, idle.n_peers - 1));
                        fflush(stdout);
                        break;
                }
                bench_print("mem-idle-peer", counts[i], "bytes",
                            scale_rss_delta(&broker, rss, counts[i]));
        }
        /* the broker first, as in scale_peers() */
        scale_broker_stop(&broker);
        idle_release(&idle);
        loop_close(&l);
}

int main(int argc, char **argv) {
        scale_main_pid = getpid();
        if (atexit(scale_cleanup) != 0)
                bench_die("atexit failed");
        scale_raise_nofile();
        if (bench_selected(argc, argv, "scale-peers"))
                scale_peers();
        if (bench_selected(argc, argv, "scale-handles"))
                scale_handles();
        if (bench_selected(argc, argv, "memory")) {
                memory_objects();
                memory_peers();
        }
        return 0;
}
