/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Quota and hostile clients: per-UID accounting end to end
 *
 * Each test starts its own bus1d (some with a small or large
 * RLIMIT_NOFILE) and talks to it through the UAPI layer of libbus1-client:
 *  - two UIDs: a peer of one UID hands its connection to another process,
 *    which transfers a handle into it;
 *  - two UIDs: a foreign UID floods a peer that never reads; the count that
 *    gets through is the one the charging rule gives (computed here by
 *    quota_expect(), an independent restatement of the rule), only the
 *    sender sees EDQUOT, siblings and a third UID are unaffected, nothing is
 *    lost, and the sender may send again once the receiver has read;
 *  - notifications (NODE_DESTROY, NODE_RELEASE) reach peers whose quota is
 *    exhausted;
 *  - the broker with RLIMIT_NOFILE 64 survives 1,000 connection attempts;
 *  - the held-fd quota: 2048 fds for a lone receiver, 1024 for a sibling,
 *    and the broker's descriptor count returns to its baseline;
 *  - a kill loop of client processes leaves no charge, no descriptor, and
 *    a broker that answers;
 *  - 1,000,000 node/handle create-release cycles do not grow the broker.
 *
 * Peers of another UID: SO_PEERCRED records the effective UID at connect(),
 * so the parent connects such a peer with seteuid(), passes it the handles
 * it needs, and forks a child that drops to that UID for good
 * (setresgid/setresuid) and takes the peer over; the parent then drops its
 * copy and never uses it again (the pattern of test-uapi-order.c). That
 * works whatever the UAPI layer accepts as a transfer destination; the
 * other way to meet, a connection passed between unrelated processes and
 * named as HANDLE_TRANSFER's dst_fd, has a case of its own.
 * Children never call cmocka: they answer over a control socket and report
 * failures in their exit status and a text.
 *
 * Every case but the first needs root, as CI runs it, and is skipped with
 * a message otherwise: besides setresuid(), counting the broker's
 * descriptors needs /proc/PID/fd, which the non-dumpable bus1d only shows
 * to root.
 */

#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include "util-uapi.h"

#if defined(__SANITIZE_ADDRESS__)
#define QUOTA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QUOTA_ASAN 1
#endif
#endif
#ifndef QUOTA_ASAN
#define QUOTA_ASAN 0
#endif

/* the broker's default per-UID limits (docs/model.md §8) */
#define LIMIT_SLICES 16384ULL
#define LIMIT_HANDLES 65536ULL
#define LIMIT_BYTES (16ULL * 1024 * 1024)
#define LIMIT_FDS 4096ULL

/* the foreign UIDs of the two-UID tests */
#define UID_B 65534U
#define UID_C 65533U

#define CHILDREN_MAX 16
#define CTL_TIMEOUT_MS 60000

/* ---- the charging rule, restated ---------------------------------------- */

/*
 * One receiving peer and one actor, for one resource: what the peer's UID
 * may hold (@limit), what its other peers hold (@used_others), what the
 * receiving peer holds (@held), its own limit (@peer_limit); if the actor is
 * another UID (@foreign), what it already holds of the receiving UID
 * (@share) and how many other foreign UIDs hold a share (@n_actors).
 */
typedef struct Quota {
        uint64_t limit;
        uint64_t used_others;
        uint64_t held;
        uint64_t peer_limit;
        bool foreign;
        uint64_t share;
        uint64_t n_actors;
} Quota;

/*
 * How many charges of @c fit one after another:
 *  - a foreign actor: (c + share) * (n + 1) - share <= remaining, n the
 *    number of actors holding a share after the charge; the UID itself:
 *    c <= remaining;
 *  - every charge: (c + held) * 2 - held <= remaining;
 *  - the peer's own limit.
 */
static uint64_t quota_expect(Quota q, uint64_t c) {
        uint64_t n = 0;

        for (;;) {
                uint64_t used = q.used_others + q.held;
                uint64_t remaining = q.limit > used ? q.limit - used : 0;

                if (q.foreign) {
                        if ((c + q.share) * (q.n_actors + 2) - q.share > remaining)
                                break;
                } else if (c > remaining) {
                        break;
                }
                if ((c + q.held) * 2 - q.held > remaining)
                        break;
                if (q.held + c > q.peer_limit)
                        break;
                q.held += c;
                if (q.foreign)
                        q.share += c;
                ++n;
        }
        return n;
}

/* small messages: one slice and 8 bytes each; the binding resource decides */
static uint64_t quota_expect_small(Quota slices) {
        Quota bytes = slices;
        uint64_t a, b;

        bytes.limit = LIMIT_BYTES;
        bytes.peer_limit = LIMIT_BYTES;
        bytes.used_others *= 8;
        bytes.held *= 8;
        bytes.share *= 8;
        a = quota_expect(slices, 1);
        b = quota_expect(bytes, 8);
        return a < b ? a : b;
}

static void test_quota_expect_vectors(void **state) {
        /* worked examples of docs/limits.md, limit 1024 */
        assert_int_equal(quota_expect((Quota){ .limit = 1024, .peer_limit = 1024,
                                               .foreign = true }, 512), 1);
        assert_int_equal(quota_expect((Quota){ .limit = 1024, .peer_limit = 1024,
                                               .foreign = true }, 513), 0);
        /* a second foreign UID, once the first holds 512 (in a sibling) */
        assert_int_equal(quota_expect((Quota){ .limit = 1024, .used_others = 512,
                                               .peer_limit = 1024, .foreign = true,
                                               .n_actors = 1 }, 170), 1);
        assert_int_equal(quota_expect((Quota){ .limit = 1024, .used_others = 512,
                                               .peer_limit = 1024, .foreign = true,
                                               .n_actors = 1 }, 171), 0);
        /* per peer: a lone peer 512, a second one then 256 */
        assert_int_equal(quota_expect((Quota){ .limit = 1024, .peer_limit = 1024 }, 1), 512);
        assert_int_equal(quota_expect((Quota){ .limit = 1024, .used_others = 512,
                                               .peer_limit = 1024 }, 1), 256);
        /* the defaults */
        assert_int_equal(quota_expect_small((Quota){ .limit = LIMIT_SLICES,
                                                     .peer_limit = LIMIT_SLICES,
                                                     .foreign = true }), 8192);
        assert_int_equal(quota_expect((Quota){ .limit = LIMIT_FDS, .peer_limit = LIMIT_FDS },
                                      256), 8);
}

/* ---- fixture ------------------------------------------------------------- */

typedef struct QuotaFixture {
        UapiFixture u;
        pid_t children[CHILDREN_MAX];
        int ctls[CHILDREN_MAX];
} QuotaFixture;

static bool quota_is_root(void) {
        return geteuid() == 0;
}

/*
 * test_broker_start() with the broker's RLIMIT_NOFILE set to @nofile (soft
 * and hard: bus1d raises soft to hard at start), unchanged if 0, and under
 * ASan a small quarantine (RSS measurements). The socket and its directory
 * are opened to every UID. (It runs in a setup, which no teardown follows
 * if it fails: a broker that does not come up is killed at once.)
 */
static void quota_broker_start(TestBroker *broker, rlim_t nofile) {
        const char *old = getenv("ASAN_OPTIONS");
        char asan[1024];
        const char *env[] = { asan, NULL };

        snprintf(asan, sizeof(asan), "ASAN_OPTIONS=%s%squarantine_size_mb=4", old ? old : "",
                 old && *old ? ":" : "");
        test_broker_spawn(broker, &(TestBrokerOptions){
                .env = QUOTA_ASAN ? env : NULL,
                .nofile = nofile,
                .open_to_all = true,
        });
}

/*
 * Not root: nothing can run. The two-UID cases need setresuid(), and every
 * case counts the broker's descriptors in /proc/PID/fd, which bus1d (being
 * non-dumpable) only shows to root.
 */
static const char *quota_not_root =
        "needs root: peers of other UIDs need setresuid(), and bus1d is non-dumpable, so "
        "only root can count its descriptors in /proc/PID/fd; run the suite as root, as "
        "CI does";

static int quota_setup_nofile(void **state, rlim_t nofile) {
        QuotaFixture *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        for (size_t i = 0; i < UAPI_PEERS_MAX; ++i)
                f->u.peers[i] = -1;
        for (size_t i = 0; i < CHILDREN_MAX; ++i)
                f->ctls[i] = -1;
        *state = f;
        if (!quota_is_root())
                return 0;
        quota_broker_start(&f->u.broker, nofile);
        f->u.running = true;
        f->u.n_fds = test_count_fds(0);
        return 0;
}

/* every case starts with this: skip when the fixture could not run a broker */
static void quota_require(QuotaFixture *f) {
        if (!f->u.running) {
                print_message("[  SKIP    ] %s\n", quota_not_root);
                skip();
        }
}

static int quota_setup(void **state) {
        return quota_setup_nofile(state, 0);
}

/* the fd exhaustion test: soft and hard RLIMIT_NOFILE 64 */
static int quota_setup_small(void **state) {
        return quota_setup_nofile(state, 64);
}

/* the held-fd test: room for 3072 fds in flight and then some */
static int quota_setup_large(void **state) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return -1;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 8192 && quota_is_root())
                return quota_setup_nofile(state, 65536);
        return quota_setup_nofile(state, 0);
}

static int quota_teardown(void **state) {
        QuotaFixture *f = *state;

        if (!f)
                return 0;
        for (size_t i = 0; i < CHILDREN_MAX; ++i) {
                if (f->children[i] > 0) {
                        kill(f->children[i], SIGKILL);
                        waitpid(f->children[i], NULL, 0);
                }
                if (f->ctls[i] >= 0)
                        close(f->ctls[i]);
        }
        /* uapi_teardown() frees the fixture; f->u is its first member */
        return uapi_teardown(state);
}

/* ---- helpers ------------------------------------------------------------- */

/*
 * Open a peer whose connection carries @uid (SO_PEERCRED takes the euid at
 * connect()) and map its pool like uapi_peer(). Nothing fails while the
 * euid is not ours.
 */
static int quota_peer_as(QuotaFixture *f, uid_t uid) {
        const uint8_t *pool;
        int peer, r = 0;
        size_t i;

        if (uid == geteuid())
                return uapi_peer(&f->u);

        for (i = 0; i < UAPI_PEERS_MAX && f->u.peers[i] >= 0; ++i)
                ;
        assert_true(i < UAPI_PEERS_MAX);
        if (setegid(uid) < 0 || seteuid(uid) < 0)
                r = -errno;
        peer = r < 0 ? r : bus1_uapi_open(NULL);
        if (seteuid(0) < 0 || setegid(0) < 0)
                abort();        /* the rest of the suite must not run as @uid */
        if (peer < 0)
                fail_msg("cannot open a peer as uid %u: %s", (unsigned)uid, strerror(-peer));
        f->u.peers[i] = peer;

        pool = mmap(NULL, UAPI_POOL_SIZE, PROT_READ, MAP_SHARED, bus1_uapi_pool_fd(peer), 0);
        assert_true(pool != MAP_FAILED);
        f->u.pools[i] = pool;
        return peer;
}

/* the payload of every small message */
typedef struct Tag {
        uint32_t tag;
        uint32_t seq;
} Tag;

/* SEND to one destination with handles and fds */
static int send_full(int from, uint64_t dst, const void *data, size_t len,
                     const uint64_t *handles, size_t n_handles, const int *fds, size_t n_fds) {
        struct iovec vec = { .iov_base = (void *)data, .iov_len = len };
        struct bus1_cmd_send s = {
                .ptr_destinations = (uintptr_t)&dst,
                .n_destinations = 1,
                .ptr_vecs = (uintptr_t)&vec,
                .n_vecs = len ? 1 : 0,
                .ptr_handles = (uintptr_t)handles,
                .n_handles = n_handles,
                .ptr_fds = (uintptr_t)fds,
                .n_fds = n_fds,
        };

        return bus1_uapi_ioctl(from, BUS1_CMD_SEND, &s);
}

static int send_tag(int from, uint64_t dst, uint32_t tag, uint32_t seq) {
        Tag t = { .tag = tag, .seq = seq };

        return send_full(from, dst, &t, sizeof(t), NULL, 0, NULL, 0);
}

/* send tagged messages until one fails (or @max went through, if not 0) */
static uint64_t flood(int from, uint64_t dst, uint32_t tag, uint32_t first, uint64_t max,
                      int *errp) {
        uint64_t n = 0;
        int r = 0;

        while (!max || n < max) {
                r = send_tag(from, dst, tag, first + (uint32_t)n);
                if (r < 0)
                        break;
                ++n;
        }
        *errp = r;
        return n;
}

/* receive @n tagged messages in order from @uid, releasing their slices */
static void drain(QuotaFixture *f, int peer, uint64_t n, uint32_t uid, uint32_t tag,
                  uint32_t first) {
        const uint8_t *pool = uapi_pool(&f->u, peer);

        for (uint64_t i = 0; i < n; ++i) {
                struct bus1_cmd_recv r;
                Tag t;
                int res;

                res = uapi_recv(peer, 0, &r);
                if (res < 0)
                        fail_msg("message %llu of %llu (tag %c): %s", (unsigned long long)i,
                                 (unsigned long long)n, (char)tag, strerror(-res));
                assert_int_equal(r.msg.type, BUS1_MSG_DATA);
                assert_int_equal(r.msg.uid, uid);
                assert_int_equal(r.msg.n_bytes, sizeof(t));
                memcpy(&t, pool + r.msg.offset, sizeof(t));
                if (t.tag != tag || t.seq != first + i)
                        fail_msg("message %llu: got %c%u, expected %c%u (lost, duplicated "
                                 "or reordered)", (unsigned long long)i, (char)t.tag, t.seq,
                                 (char)tag, (unsigned)(first + i));
                assert_int_equal(uapi_slice_release(peer, r.msg.offset), 0);
        }
}

/*
 * The broker's descriptor count once it is @expected, or after 5 s: the
 * broker closes client fds on a thread of their own, a moment later.
 */
static unsigned int broker_fds_settle(QuotaFixture *f, unsigned int expected) {
        return test_broker_fds_settle(&f->u.broker, expected, 5000);
}

/*
 * The broker's descriptor count once it stopped changing (the same for
 * 100 ms, or after 5 s): earlier clients' fds may still be closing.
 */
static unsigned int broker_fds_stable(QuotaFixture *f) {
        unsigned int n = test_count_fds(f->u.broker.pid), same = 0;

        for (int i = 0; i < 250 && same < 5; ++i) {
                unsigned int m;

                nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
                m = test_count_fds(f->u.broker.pid);
                same = m == n ? same + 1 : 0;
                n = m;
        }
        return n;
}

static void broker_assert_alive(QuotaFixture *f) {
        int status;

        if (waitpid(f->u.broker.pid, &status, WNOHANG) == f->u.broker.pid) {
                f->u.running = false;
                fail_msg("bus1d died (status 0x%x)", status);
        }
}

/* kB of resident memory of a process */
static uint64_t rss_kb(pid_t pid) {
        char path[64], line[256];
        uint64_t kb = 0;
        FILE *file;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        file = fopen(path, "re");
        assert_non_null(file);
        while (fgets(line, sizeof(line), file))
                if (sscanf(line, "VmRSS: %" SCNu64, &kb) == 1)
                        break;
        fclose(file);
        assert_true(kb > 0);
        return kb;
}

/* the soft RLIMIT_NOFILE of a process */
static uint64_t nofile_of(pid_t pid) {
        char path[64], line[256];
        unsigned long long soft = 0;
        FILE *file;

        snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
        file = fopen(path, "re");
        assert_non_null(file);
        while (fgets(line, sizeof(line), file))
                if (sscanf(line, "Max open files %llu", &soft) == 1)
                        break;
        fclose(file);
        assert_true(soft > 0);
        return soft;
}

/* ---- children ------------------------------------------------------------ */

enum {
        CTL_OK,
        CTL_FAIL,
        CTL_FLOOD,      /* a: destination, b: tag, c: first seq, d: max (0: no limit) */
        CTL_SEND,       /* a: destination, b: tag, c: seq */
        CTL_QUERY,
        CTL_DRAIN,      /* a: count, b: tag, c: first seq, d: sender UID */
        CTL_EXIT,
};

typedef struct Ctl {
        uint64_t op, a, b, c, d;
        char text[160];
} Ctl;

static int ctl_write(int sock, const Ctl *m) {
        return send(sock, m, sizeof(*m), MSG_NOSIGNAL) == sizeof(*m) ? 0 : -EPIPE;
}

static int ctl_read(int sock, Ctl *m, int timeout_ms) {
        struct pollfd p = { .fd = sock, .events = POLLIN };
        ssize_t l;
        int r;

        do {
                r = poll(&p, 1, timeout_ms);
        } while (r < 0 && errno == EINTR);
        if (r == 0)
                return -ETIMEDOUT;
        l = recv(sock, m, sizeof(*m), 0);
        return l == sizeof(*m) ? 0 : -EPIPE;
}

static int child_ctl = -1;

/* a child's failure: tell the parent, exit non-zero */
static _Noreturn void child_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void child_fail(const char *fmt, ...) {
        Ctl m = { .op = CTL_FAIL };
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(m.text, sizeof(m.text), fmt, ap);
        va_end(ap);
        if (child_ctl >= 0)
                ctl_write(child_ctl, &m);
        _exit(3);
}

/* close every descriptor but stdio and @keep (sorted ascending, < 0 ignored) */
static void child_close_others(const int *keep, size_t n_keep) {
        unsigned int from = 3;

        for (size_t i = 0; i < n_keep; ++i) {
                if (keep[i] < (int)from)
                        continue;
                if ((unsigned int)keep[i] > from)
                        close_range(from, (unsigned int)keep[i] - 1, 0);
                from = (unsigned int)keep[i] + 1;
        }
        close_range(from, ~0U, 0);
}

static int int_cmp(const void *a, const void *b) {
        return *(const int *)a - *(const int *)b;
}

typedef void (*ChildFn)(int ctl, void *userdata);

/*
 * Fork a child that keeps only stdio, its control socket and the peers in
 * @peers (with their pool descriptors), runs as @uid (unchanged if it is
 * ours) and calls @fn. Returns its slot in the fixture.
 */
static size_t child_spawn(QuotaFixture *f, uid_t uid, const int *peers, size_t n_peers,
                          ChildFn fn, void *userdata) {
        int sp[2], keep[2 * 8 + 1];
        size_t slot, n_keep = 0;
        pid_t pid;

        for (slot = 0; slot < CHILDREN_MAX && f->children[slot] > 0; ++slot)
                ;
        assert_true(slot < CHILDREN_MAX);
        assert_true(n_peers <= 8);
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);

        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                child_ctl = sp[1];
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                for (size_t i = 0; i < n_peers; ++i) {
                        keep[n_keep++] = peers[i];
                        keep[n_keep++] = bus1_uapi_pool_fd(peers[i]);
                }
                keep[n_keep++] = sp[1];
                qsort(keep, n_keep, sizeof(int), int_cmp);
                child_close_others(keep, n_keep);
                if (uid != geteuid()) {
                        if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
                            setresuid(uid, uid, uid) < 0)
                                child_fail("cannot become uid %u: %m", (unsigned)uid);
                        if (getuid() != uid || geteuid() != uid)
                                child_fail("still uid %u", (unsigned)getuid());
                }
                fn(sp[1], userdata);
                _exit(0);
        }
        close(sp[1]);
        f->children[slot] = pid;
        f->ctls[slot] = sp[0];
        return slot;
}

/* one request to a child and its answer */
static Ctl child_call(QuotaFixture *f, size_t slot, Ctl m) {
        Ctl reply;
        int r;

        assert_int_equal(ctl_write(f->ctls[slot], &m), 0);
        r = ctl_read(f->ctls[slot], &reply, CTL_TIMEOUT_MS);
        if (r < 0)
                fail_msg("child %zu did not answer: %s", slot, strerror(-r));
        if (reply.op == CTL_FAIL)
                fail_msg("child %zu: %s", slot, reply.text);
        assert_int_equal(reply.op, CTL_OK);
        return reply;
}

/* reap a child; @killed: it was sent SIGKILL, else it must have exited 0 */
static int child_reap(QuotaFixture *f, size_t slot, bool killed) {
        int status;

        if (killed)
                kill(f->children[slot], SIGKILL);
        assert_int_equal(waitpid(f->children[slot], &status, 0), f->children[slot]);
        f->children[slot] = 0;
        close(f->ctls[slot]);
        f->ctls[slot] = -1;
        if (!killed && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
                fail_msg("child %zu failed (status 0x%x)", slot, status);
        return status;
}

static void child_exit(QuotaFixture *f, size_t slot) {
        Ctl m = { .op = CTL_EXIT };

        assert_int_equal(ctl_write(f->ctls[slot], &m), 0);
        child_reap(f, slot, false);
}

/* a child that sends and receives on its one peer as told */
static void child_server(int ctl, void *userdata) {
        int peer = *(const int *)userdata;
        const uint8_t *pool;

        pool = mmap(NULL, UAPI_POOL_SIZE, PROT_READ, MAP_SHARED, bus1_uapi_pool_fd(peer), 0);
        if (pool == MAP_FAILED)
                child_fail("mmap: %m");

        for (;;) {
                Ctl m, reply = { .op = CTL_OK };
                int r;

                r = ctl_read(ctl, &m, -1);
                if (r < 0)
                        _exit(0);

                switch (m.op) {
                case CTL_FLOOD: {
                        int err;

                        reply.a = flood(peer, m.a, (uint32_t)m.b, (uint32_t)m.c, m.d, &err);
                        reply.b = (uint64_t)-err;
                        break;
                }
                case CTL_SEND:
                        reply.b = (uint64_t)-send_tag(peer, m.a, (uint32_t)m.b, (uint32_t)m.c);
                        break;
                case CTL_QUERY: {
                        struct bus1_cmd_peer_reset q;

                        reply.b = (uint64_t)-uapi_query(peer, &q);
                        reply.c = q.max_slices;
                        break;
                }
                case CTL_DRAIN:
                        for (uint64_t i = 0; i < m.a; ++i) {
                                struct bus1_cmd_recv rv;
                                Tag t;

                                r = uapi_recv(peer, 0, &rv);
                                if (r < 0)
                                        child_fail("drain: message %llu: %s",
                                                   (unsigned long long)i, strerror(-r));
                                memcpy(&t, pool + rv.msg.offset, sizeof(t));
                                if (rv.msg.type != BUS1_MSG_DATA || rv.msg.uid != m.d ||
                                    rv.msg.n_bytes != sizeof(t) || t.tag != m.b ||
                                    t.seq != m.c + i)
                                        child_fail("drain: message %llu: type %llu uid %u "
                                                   "%c%u, expected %c%llu",
                                                   (unsigned long long)i,
                                                   (unsigned long long)rv.msg.type,
                                                   rv.msg.uid, (char)t.tag, t.seq,
                                                   (char)m.b, (unsigned long long)(m.c + i));
                                r = uapi_slice_release(peer, rv.msg.offset);
                                if (r < 0)
                                        child_fail("drain: release: %s", strerror(-r));
                                ++reply.a;
                        }
                        reply.b = (uint64_t)-uapi_recv(peer, 0, &(struct bus1_cmd_recv){});
                        break;
                case CTL_EXIT:
                        bus1_uapi_close(peer);
                        _exit(0);
                default:
                        child_fail("unknown request %llu", (unsigned long long)m.op);
                }
                if (ctl_write(ctl, &reply) < 0)
                        _exit(0);
        }
}

/* send one fd over a socket */
static int send_fd(int sock, int fd) {
        union {
                struct cmsghdr cmsg;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = "F", .iov_len = 1 };
        struct msghdr msg = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };

        control.cmsg.cmsg_level = SOL_SOCKET;
        control.cmsg.cmsg_type = SCM_RIGHTS;
        control.cmsg.cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(&control.cmsg), &fd, sizeof(int));
        return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

/* receive one fd over a socket; -errno if none came */
static int recv_fd(int sock) {
        union {
                struct cmsghdr cmsg;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        char c;
        struct iovec iov = { .iov_base = &c, .iov_len = 1 };
        struct msghdr msg = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        int fd;

        if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
                return -EPIPE;
        if (!CMSG_FIRSTHDR(&msg) || control.cmsg.cmsg_type != SCM_RIGHTS ||
            control.cmsg.cmsg_len != CMSG_LEN(sizeof(int)))
                return -EBADMSG;
        memcpy(&fd, CMSG_DATA(&control.cmsg), sizeof(int));
        return fd;
}

/* a child_server() on a peer the child connects itself; its connection goes to the parent */
static void child_server_connect(int ctl, void *userdata) {
        int peer = bus1_uapi_open(NULL);

        if (peer < 0)
                child_fail("open: %s", strerror(-peer));
        if (send_fd(ctl, peer) < 0)
                child_fail("cannot pass the connection: %m");
        child_server(ctl, &peer);
}

/* a peer of @uid, taken over by a forked child_server() running as @uid */
static size_t spawn_server(QuotaFixture *f, int peer, uid_t uid) {
        size_t slot = child_spawn(f, uid, &peer, 1, child_server, &peer);

        /* the child has it now; drop the parent's copy (the connection stays) */
        assert_int_equal(uapi_close(&f->u, peer), 0);
        return slot;
}

/* ---- 1. two UIDs end to end ---------------------------------------------- */

#define NODE_A1 0x100ULL
#define NODE_A2 0x200ULL
#define NODE_A3 0x300ULL

static void test_two_uids_flood(void **state) {
        QuotaFixture *f = *state;
        struct bus1_cmd_peer_reset q;
        uint64_t b_a1, c_a1, c_a2, a3_a1, a2_a3, a3_a2, expected, n;
        size_t b, c;
        int a1, a2, a3, pb, pc, err;
        Ctl m;

        quota_require(f);


        /* A is this process's UID (root); A1 never reads while flooded */
        a1 = uapi_peer(&f->u);
        a2 = uapi_peer(&f->u);
        a3 = uapi_peer(&f->u);
        pb = quota_peer_as(f, UID_B);
        pc = quota_peer_as(f, UID_C);

        b_a1 = uapi_give(a1, NODE_A1, pb);
        c_a1 = uapi_give(a1, NODE_A1, pc);
        c_a2 = uapi_give(a2, NODE_A2, pc);
        a3_a1 = uapi_give(a1, NODE_A1, a3);
        a2_a3 = uapi_give(a3, NODE_A3, a2);
        a3_a2 = uapi_give(a2, NODE_A2, a3);
        b = spawn_server(f, pb, UID_B);
        c = spawn_server(f, pc, UID_C);

        /*
         * Phase 1: B is the only foreign UID and A holds nothing: both
         * layers allow half of A's 16384 slices (8 bytes each is far
         * below the byte limit), so exactly 8192.
         */
        expected = quota_expect_small((Quota){ .limit = LIMIT_SLICES, .peer_limit = LIMIT_SLICES,
                                               .foreign = true });
        assert_int_equal(expected, 8192);
        m = child_call(f, b, (Ctl){ .op = CTL_FLOOD, .a = b_a1, .b = 'B', .c = 0 });
        n = m.a;
        if (m.b != EDQUOT || n != expected)
                fail_msg("UID B got %llu messages through, then %s; expected %llu, then "
                         "EDQUOT", (unsigned long long)n, strerror((int)m.b),
                         (unsigned long long)expected);

        /* still refused, but B itself is fine */
        m = child_call(f, b, (Ctl){ .op = CTL_SEND, .a = b_a1, .b = 'B', .c = (uint32_t)n });
        assert_int_equal(m.b, EDQUOT);
        m = child_call(f, b, (Ctl){ .op = CTL_QUERY });
        assert_int_equal(m.b, 0);

        /* the receiver is not disconnected: it answers and does not hang up */
        assert_int_equal(uapi_query(a1, &q), 0);
        assert_int_equal(uapi_poll(a1, POLLIN, 0) & (POLLHUP | POLLERR), 0);

        /* A's other peers still talk to each other */
        assert_int_equal(uapi_send_str(a2, a2_a3, "ping"), 0);
        uapi_expect_str(&f->u, a3, NODE_A3, "ping");
        assert_int_equal(uapi_send_str(a3, a3_a2, "pong"), 0);
        uapi_expect_str(&f->u, a2, NODE_A2, "pong");

        /* ... and receive from UID C */
        m = child_call(f, c, (Ctl){ .op = CTL_SEND, .a = c_a2, .b = 'C', .c = 0 });
        assert_int_equal(m.b, 0);
        drain(f, a2, 1, UID_C, 'C', 0);

        /* A1 itself holds half of its UID: nothing more, from anyone */
        assert_int_equal(quota_expect_small((Quota){ .limit = LIMIT_SLICES, .held = n,
                                                     .peer_limit = LIMIT_SLICES,
                                                     .foreign = true, .n_actors = 1 }), 0);
        m = child_call(f, c, (Ctl){ .op = CTL_SEND, .a = c_a1, .b = 'C', .c = 0 });
        assert_int_equal(m.b, EDQUOT);
        assert_int_equal(send_tag(a3, a3_a1, 'A', 0), -EDQUOT);

        /* A1 reads: every message once, in order, nothing else */
        drain(f, a1, n, UID_B, 'B', 0);
        uapi_expect_empty(a1);

        /* and B may send again */
        m = child_call(f, b, (Ctl){ .op = CTL_SEND, .a = b_a1, .b = 'B', .c = (uint32_t)n });
        assert_int_equal(m.b, 0);
        drain(f, a1, 1, UID_B, 'B', (uint32_t)n);

        /*
         * Phase 2: C holds a share of A (100 slices parked in A2): B is one
         * of two foreign UIDs, and the layer between UIDs binds before
         * A1's own half.
         */
        m = child_call(f, c, (Ctl){ .op = CTL_FLOOD, .a = c_a2, .b = 'C', .c = 1, .d = 100 });
        assert_int_equal(m.a, 100);
        expected = quota_expect_small((Quota){ .limit = LIMIT_SLICES, .used_others = 100,
                                               .peer_limit = LIMIT_SLICES, .foreign = true,
                                               .n_actors = 1 });
        assert_true(expected < quota_expect((Quota){ .limit = LIMIT_SLICES, .used_others = 100,
                                                     .peer_limit = LIMIT_SLICES }, 1));
        m = child_call(f, b, (Ctl){ .op = CTL_FLOOD, .a = b_a1, .b = 'b', .c = 0 });
        if (m.b != EDQUOT || m.a != expected)
                fail_msg("phase 2: UID B got %llu through, then %s; expected %llu, then "
                         "EDQUOT", (unsigned long long)m.a, strerror((int)m.b),
                         (unsigned long long)expected);
        drain(f, a1, m.a, UID_B, 'b', 0);
        drain(f, a2, 100, UID_C, 'C', 1);
        uapi_expect_empty(a1);
        uapi_expect_empty(a2);

        /*
         * Phase 3: A1 already holds 1000 slices from its own UID (A3): the
         * per-peer layer binds before B's half of what A has left.
         */
        n = flood(a3, a3_a1, 'A', 0, 1000, &err);
        assert_int_equal(n, 1000);
        expected = quota_expect_small((Quota){ .limit = LIMIT_SLICES, .held = 1000,
                                               .peer_limit = LIMIT_SLICES, .foreign = true });
        assert_true(expected < quota_expect((Quota){ .limit = LIMIT_SLICES, .used_others = 1000,
                                                     .peer_limit = LIMIT_SLICES,
                                                     .foreign = true }, 1));
        m = child_call(f, b, (Ctl){ .op = CTL_FLOOD, .a = b_a1, .b = 'x', .c = 0 });
        if (m.b != EDQUOT || m.a != expected)
                fail_msg("phase 3: UID B got %llu through, then %s; expected %llu, then "
                         "EDQUOT", (unsigned long long)m.a, strerror((int)m.b),
                         (unsigned long long)expected);
        drain(f, a1, 1000, 0, 'A', 0);
        drain(f, a1, m.a, UID_B, 'x', 0);
        uapi_expect_empty(a1);

        /* all returned: B gets its full half again */
        m = child_call(f, b, (Ctl){ .op = CTL_FLOOD, .a = b_a1, .b = 'y', .c = 0 });
        assert_int_equal(m.b, EDQUOT);
        assert_int_equal(m.a, 8192);
        drain(f, a1, m.a, UID_B, 'y', 0);

        child_exit(f, b);
        child_exit(f, c);
        uapi_finish(&f->u);
}

/*
 * The way two processes of different UIDs meet without a shared parent: B
 * connects its own peer and passes the connection over a socket; A proves
 * it holds it by naming that descriptor as HANDLE_TRANSFER's dst_fd
 * (docs/model.md §6.5; the kernel took any descriptor of a bus1 peer).
 */
static void test_two_uids_passed_connection(void **state) {
        QuotaFixture *f = *state;
        uint64_t id = BUS1_HANDLE_INVALID;
        size_t b;
        int a1, conn, r;
        Ctl m;

        quota_require(f);

        a1 = uapi_peer(&f->u);
        b = child_spawn(f, UID_B, NULL, 0, child_server_connect, NULL);
        conn = recv_fd(f->ctls[b]);
        assert_true(conn >= 0);

        r = uapi_transfer(a1, NODE_A1, conn, &id);
        close(conn);
        if (r < 0)
                fail_msg("HANDLE_TRANSFER to the connection of another process (uid %u) "
                         "failed: %s", UID_B, strerror(-r));
        assert_int_equal(id & 7, UAPI_REMOTE_BITS);

        m = child_call(f, b, (Ctl){ .op = CTL_SEND, .a = id, .b = 'P', .c = 0 });
        assert_int_equal(m.b, 0);
        drain(f, a1, 1, UID_B, 'P', 0);

        child_exit(f, b);
        uapi_finish(&f->u);
}

/* ---- 2. notifications under a full quota --------------------------------- */

/* create nodes on @peer (new IDs from @base on) until refused; returns how many */
static uint64_t fill_nodes(int peer, uint64_t base, uint64_t **idsp) {
        uint64_t *ids = NULL, n = 0;
        size_t batch = 8192;

        while (batch) {
                uint64_t *p = realloc(ids, (n + batch) * sizeof(*ids));
                int r;

                assert_non_null(p);
                ids = p;
                for (size_t i = 0; i < batch; ++i)
                        ids[n + i] = (base + n + i) << 3;
                r = uapi_send(peer, NULL, 0, 0, NULL, NULL, 0, ids + n, batch);
                if (r == 0) {
                        n += batch;
                } else {
                        assert_int_equal(r, -EDQUOT);
                        batch /= 2;
                }
        }
        *idsp = ids;
        return n;
}

static void destroy_nodes(int peer, const uint64_t *ids, uint64_t n) {
        for (uint64_t i = 0; i < n; i += 8192) {
                uint64_t k = n - i < 8192 ? n - i : 8192;

                assert_int_equal(uapi_destroy(peer, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES,
                                              ids + i, k), 0);
        }
}

static void test_notifications_full_quota(void **state) {
        QuotaFixture *f = *state;
        uint64_t h_n1, h_n2, o_h, id, n, expected, *ids;
        int o, h, err;

        quota_require(f);

        o = uapi_peer(&f->u);
        h = uapi_peer(&f->u);

        /* H holds handles to two nodes of O; O may send to H's node */
        h_n1 = uapi_give(o, 0x100, h);
        h_n2 = uapi_give(o, 0x200, h);
        o_h = uapi_give(h, 0x300, o);

        /* H's slices: half of what the UID has */
        n = flood(o, o_h, 'S', 0, 0, &err);
        assert_int_equal(err, -EDQUOT);
        expected = quota_expect_small((Quota){ .limit = LIMIT_SLICES,
                                               .peer_limit = LIMIT_SLICES });
        assert_int_equal(n, expected);

        /*
         * H's handles: it holds 3 references (two handles, one owner
         * handle), O holds 3 (two owner handles, one handle); H creates
         * nodes until the per-peer layer refuses.
         */
        expected = quota_expect((Quota){ .limit = LIMIT_HANDLES, .used_others = 3, .held = 3,
                                         .peer_limit = LIMIT_HANDLES }, 1);
        assert_int_equal(fill_nodes(h, 0x1000, &ids), expected);

        /* H can take nothing more: no message, no handle */
        assert_int_equal(send_tag(o, o_h, 'S', (uint32_t)n), -EDQUOT);
        assert_int_equal(uapi_transfer(o, 0x400, h, &id), -EDQUOT);
        assert_int_equal(uapi_transfer(o, 0x100, h, &id), -EDQUOT);

        /* NODE_RELEASE to O while its UID is at the same limits */
        assert_int_equal(uapi_release(h, h_n2), 0);
        uapi_expect_notification(o, BUS1_MSG_NODE_RELEASE, 0x200);

        /* NODE_DESTROY to H (and to O, the owner) */
        assert_int_equal(uapi_destroy(o, 0, (uint64_t[]){ 0x100 }, 1), 0);
        uapi_expect_notification(o, BUS1_MSG_NODE_DESTROY, 0x100);

        /* H dequeues its messages (keeping their slices), then the destroy */
        for (uint64_t i = 0; i < n; ++i) {
                struct bus1_cmd_recv r;

                assert_int_equal(uapi_recv(h, 0, &r), 0);
                assert_int_equal(r.msg.type, BUS1_MSG_DATA);
        }
        assert_int_equal(send_tag(o, o_h, 'S', 0), -EDQUOT);
        uapi_expect_notification(h, BUS1_MSG_NODE_DESTROY, h_n1);
        uapi_expect_empty(h);
        uapi_expect_empty(o);

        destroy_nodes(h, ids, expected);
        free(ids);
        uapi_expect_empty(h);
        uapi_finish(&f->u);
}

/* ---- 3. fd exhaustion ---------------------------------------------------- */

#define FLOOD_ATTEMPTS 1000

static int sendfds_n(int from, uint64_t dst, int fd, size_t n) {
        int *fds = malloc(n * sizeof(int));
        int r;

        assert_non_null(fds);
        for (size_t i = 0; i < n; ++i)
                fds[i] = fd;
        r = send_full(from, dst, "f", 1, NULL, 0, fds, n);
        free(fds);
        return r;
}

/* receive one message with its fds installed; close them; returns n_fds */
static uint64_t recv_close_fds(QuotaFixture *f, int peer) {
        const uint8_t *pool = uapi_pool(&f->u, peer);
        struct bus1_cmd_recv r;
        uint64_t at;

        assert_int_equal(uapi_recv(peer, BUS1_RECV_FLAG_INSTALL_FDS, &r), 0);
        assert_int_equal(r.msg.type, BUS1_MSG_DATA);
        at = r.msg.offset + uapi_align8(r.msg.n_bytes) + 8 * r.msg.n_handles;
        for (uint64_t i = 0; i < r.msg.n_fds; ++i) {
                int fd;

                memcpy(&fd, pool + at + 4 * i, sizeof(fd));
                assert_true(fd >= 0);
                assert_int_equal(close(fd), 0);
        }
        assert_int_equal(uapi_slice_release(peer, r.msg.offset), 0);
        return r.msg.n_fds;
}

/* a new peer in a child, which gives up after @timeout_ms: 0 opened, else not */
static int try_open_elsewhere(int timeout_ms) {
        int status;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int peer;

                child_close_others(NULL, 0);
                alarm((unsigned int)(timeout_ms + 999) / 1000);
                peer = bus1_uapi_open(NULL);
                if (peer >= 0) {
                        struct bus1_cmd_peer_reset q;

                        _exit(uapi_query(peer, &q) == 0 ? 0 : 2);
                }
                _exit(1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return -1;      /* hung until the alarm: not accepted */
}

static void test_fd_exhaustion(void **state) {
        QuotaFixture *f = *state;
        unsigned int idle = f->u.broker.n_fds_idle, base, n_free, n;
        size_t n_conn = 0, n_eagain = 0, n_other = 0, n_hup, n_alive, n_accepted;
        uint64_t ticks;
        int *flood_fds, a, b, fd, r;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct rlimit rl, saved;
        uint64_t b_a, a_b;

        quota_require(f);

        /* this process keeps the flood open: room for it */
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
        rl = saved;
        if (rl.rlim_cur < FLOOD_ATTEMPTS + 256) {
                rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 4096
                                      ? 4096 : rl.rlim_max;
                if (rl.rlim_cur < FLOOD_ATTEMPTS + 256) {
                        print_message("[  SKIP    ] RLIMIT_NOFILE hard limit %llu is too low "
                                      "for %d connections\n", (unsigned long long)rl.rlim_max,
                                      FLOOD_ATTEMPTS);
                        skip();
                }
                assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
        }

        a = uapi_peer(&f->u);
        b = uapi_peer(&f->u);
        b_a = uapi_give(a, 0x100, b);
        a_b = uapi_give(b, 0x100, a);
        base = broker_fds_settle(f, idle + 4);
        assert_int_equal(base, idle + 4);
        assert_true(base < 64);

        /* fds within the broker's table work; what would fill it is refused */
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(sendfds_n(b, b_a, fd, 4), 0);
        assert_int_equal(recv_close_fds(f, a), 4);
        /* the broker closes its copies on its closing thread: let it */
        assert_int_equal(broker_fds_settle(f, base), base);
        n_free = 64 - base;
        assert_int_equal(sendfds_n(b, b_a, fd, n_free - 2), -EDQUOT);
        assert_int_equal(broker_fds_settle(f, base), base);
        assert_int_equal(send_tag(b, b_a, 'x', 0), 0);
        drain(f, a, 1, geteuid(), 'x', 0);

        /*
         * More fds than the broker's table can take at all: recvmsg() cuts
         * them off (MSG_CTRUNC). That costs the sender its request or its
         * connection, nobody else anything, and no descriptor stays.
         */
        {
                int c = uapi_peer(&f->u), res;
                uint64_t c_a = uapi_give(a, 0x300, c);

                assert_int_equal(broker_fds_settle(f, base + 2), base + 2);
                res = sendfds_n(c, c_a, fd, 200);
                print_message("200 fds to a broker with %u free descriptors: %s\n",
                              64 - base - 2, strerror(-res));
                assert_true(res == -EDQUOT || res == -ESHUTDOWN);
                if (res == -ESHUTDOWN) {
                        assert_int_equal(send_tag(c, c_a, 'c', 0), -ESHUTDOWN);
                        assert_int_equal(broker_fds_settle(f, base), base);
                } else {
                        assert_int_equal(broker_fds_settle(f, base + 2), base + 2);
                }
                broker_assert_alive(f);
                assert_int_equal(uapi_close(&f->u, c), 0);
                assert_int_equal(broker_fds_settle(f, base), base);
                /* a lost its handle holder: the node is unreferenced again */
                uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, 0x300);
                assert_int_equal(uapi_destroy(a, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES,
                                              (uint64_t[]){ 0x300 }, 1), 0);
                uapi_expect_empty(a);
                assert_int_equal(send_tag(b, b_a, 'x', 1), 0);
                drain(f, a, 1, geteuid(), 'x', 1);
        }

        /* the flood: 1000 non-blocking connects, kept open while they last */
        flood_fds = calloc(FLOOD_ATTEMPTS, sizeof(int));
        assert_non_null(flood_fds);
        memcpy(sa.sun_path, f->u.broker.path, strlen(f->u.broker.path) + 1);
        for (size_t i = 0; i < FLOOD_ATTEMPTS; ++i) {
                int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

                assert_true(s >= 0);
                if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        flood_fds[n_conn++] = s;
                        continue;
                }
                if (errno == EAGAIN)
                        ++n_eagain;
                else
                        ++n_other;
                close(s);
        }
        print_message("flood: %zu connected, %zu EAGAIN, %zu other errors\n", n_conn,
                      n_eagain, n_other);
        assert_int_equal(n_other, 0);
        assert_int_equal(n_conn + n_eagain, FLOOD_ATTEMPTS);

        /* let the broker work through its backlog: count who it hung up on */
        n_hup = 0;
        for (int round = 0, stable = 0; round < 400 && stable < 20; ++round) {
                struct timespec ts = { .tv_nsec = 10 * 1000 * 1000 };
                size_t last = n_hup;

                n_hup = 0;
                for (size_t i = 0; i < n_conn; ++i) {
                        struct pollfd p = { .fd = flood_fds[i], .events = POLLIN };

                        if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLIN)))
                                ++n_hup;
                }
                stable = n_hup == last ? stable + 1 : 0;
                nanosleep(&ts, NULL);
        }
        /* every connection costs the broker its socket and its pool */
        broker_assert_alive(f);
        n = test_count_fds(f->u.broker.pid);
        assert_true(n >= base && n <= 64);
        n_accepted = (n - base) / 2;
        n_alive = n_conn - n_hup;
        print_message("flood: broker holds %zu, hung up on %zu, %zu wait in the backlog\n",
                      n_accepted, n_hup, n_alive - n_accepted);

        /* it survived, holds no more than its table allows, refused the rest */
        assert_true(n_accepted <= n_alive);
        assert_true(2 + n_accepted <= (64 - idle) / 2);
        assert_true(n_accepted < n_conn);

        /* refusing costs it nothing while the load stays: no busy loop */
        ticks = test_broker_cpu_ticks(&f->u.broker);
        nanosleep(&(struct timespec){ .tv_nsec = 500 * 1000 * 1000 }, NULL);
        ticks = test_broker_cpu_ticks(&f->u.broker) - ticks;
        print_message("flood: broker used %llu ticks in 500 ms while refusing\n",
                      (unsigned long long)ticks);
        assert_true(ticks * 10 <= (uint64_t)sysconf(_SC_CLK_TCK) / 2);

        /* a client that arrives now is not served (refused, or never accepted) */
        r = try_open_elsewhere(3000);
        assert_int_not_equal(r, 0);

        /* the peers from before keep working, both ways, handles included */
        assert_int_equal(send_tag(b, b_a, 'y', 0), 0);
        assert_int_equal(send_tag(a, a_b, 'z', 0), 0);
        drain(f, a, 1, geteuid(), 'y', 0);
        drain(f, b, 1, geteuid(), 'z', 0);
        assert_int_equal(uapi_release(b, uapi_give(a, 0x200, b)), 0);
        uapi_expect_notification(a, BUS1_MSG_NODE_RELEASE, 0x200);

        /* the load stops: the broker lets go and accepts again */
        for (size_t i = 0; i < n_conn; ++i)
                close(flood_fds[i]);
        free(flood_fds);
        assert_int_equal(broker_fds_settle(f, base), base);
        for (int i = 0; i < 200 && (r = try_open_elsewhere(3000)) != 0; ++i)
                nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
        assert_int_equal(r, 0);
        {
                int more[8];

                /* not just one: every slot the load took is free again */
                for (size_t i = 0; i < 8; ++i) {
                        more[i] = bus1_uapi_open(NULL);
                        assert_true(more[i] >= 0);
                }
                for (size_t i = 0; i < 8; ++i)
                        assert_int_equal(bus1_uapi_close(more[i]), 0);
        }
        assert_int_equal(sendfds_n(b, b_a, fd, 4), 0);
        assert_int_equal(recv_close_fds(f, a), 4);
        close(fd);

        assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
        uapi_finish(&f->u);
}

/* ---- 4. held-fd quota ---------------------------------------------------- */

static void test_held_fds(void **state) {
        QuotaFixture *f = *state;
        unsigned int base;
        uint64_t r_dst, r2_dst, expected;
        struct stat st_null, st;
        int r, r2, s, fd;

        quota_require(f);

        /* the broker must be able to hold them (quota_setup_large() raised it if root) */
        if (nofile_of(f->u.broker.pid) < 4096) {
                print_message("[  SKIP    ] the broker's RLIMIT_NOFILE is %llu: too low for "
                              "3072 fds in flight, and only root may raise it\n",
                              (unsigned long long)nofile_of(f->u.broker.pid));
                skip();
        }

        r = uapi_peer(&f->u);
        r2 = uapi_peer(&f->u);
        s = uapi_peer(&f->u);
        r_dst = uapi_give(r, 0x100, s);
        r2_dst = uapi_give(r2, 0x100, s);
        base = broker_fds_settle(f, f->u.broker.n_fds_idle + 6);
        assert_int_equal(base, f->u.broker.n_fds_idle + 6);

        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st_null), 0);

        /* a lone receiver: exactly half of its UID's 4096 */
        expected = quota_expect((Quota){ .limit = LIMIT_FDS, .peer_limit = LIMIT_FDS }, 256);
        assert_int_equal(expected, 8);
        for (uint64_t i = 0; i < expected; ++i)
                assert_int_equal(sendfds_n(s, r_dst, fd, 256), 0);
        assert_int_equal(broker_fds_settle(f, base + 2048), base + 2048);
        assert_int_equal(quota_expect((Quota){ .limit = LIMIT_FDS, .held = 2048,
                                               .peer_limit = LIMIT_FDS }, 1), 0);
        assert_int_equal(sendfds_n(s, r_dst, fd, 1), -EDQUOT);
        /* only fds are exhausted */
        assert_int_equal(send_tag(s, r_dst, 'n', 0), 0);

        /* a sibling of the same UID then takes half of what is left */
        expected = quota_expect((Quota){ .limit = LIMIT_FDS, .used_others = 2048,
                                         .peer_limit = LIMIT_FDS }, 256);
        assert_int_equal(expected, 4);
        for (uint64_t i = 0; i < expected; ++i)
                assert_int_equal(sendfds_n(s, r2_dst, fd, 256), 0);
        assert_int_equal(sendfds_n(s, r2_dst, fd, 1), -EDQUOT);
        assert_int_equal(broker_fds_settle(f, base + 3072), base + 3072);

        /* received: the fds move to this process, the broker lets go */
        for (uint64_t i = 0; i < 8; ++i) {
                const uint8_t *pool = uapi_pool(&f->u, r);
                struct bus1_cmd_recv rv;
                uint64_t at;

                assert_int_equal(uapi_recv(r, BUS1_RECV_FLAG_INSTALL_FDS, &rv), 0);
                assert_int_equal(rv.msg.n_fds, 256);
                at = rv.msg.offset + uapi_align8(rv.msg.n_bytes);
                for (uint64_t j = 0; j < 256; ++j) {
                        int got;

                        memcpy(&got, pool + at + 4 * j, sizeof(got));
                        assert_int_equal(fstat(got, &st), 0);
                        assert_int_equal(st.st_rdev, st_null.st_rdev);
                        assert_int_equal(close(got), 0);
                }
                assert_int_equal(uapi_slice_release(r, rv.msg.offset), 0);
        }
        drain(f, r, 1, geteuid(), 'n', 0);
        assert_int_equal(broker_fds_settle(f, base + 1024), base + 1024);

        /* dropped (flush): the broker closes them */
        assert_int_equal(uapi_reset(r2, BUS1_PEER_RESET_FLAG_FLUSH, UAPI_KEEP64, UAPI_KEEP32,
                                    UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32), 0);
        assert_int_equal(broker_fds_settle(f, base), base);

        /* everything returned: the lone receiver gets its 2048 again */
        for (uint64_t i = 0; i < 8; ++i)
                assert_int_equal(sendfds_n(s, r_dst, fd, 256), 0);
        assert_int_equal(sendfds_n(s, r_dst, fd, 1), -EDQUOT);
        assert_int_equal(broker_fds_settle(f, base + 2048), base + 2048);

        /* dropped (disconnect) */
        assert_int_equal(uapi_close(&f->u, r), 0);
        assert_int_equal(broker_fds_settle(f, base - 2), base - 2);
        close(fd);
        uapi_finish(&f->u);
}

/* ---- the whole budget of a fresh peer ------------------------------------ */

/*
 * @rx and @tx are peers of this UID, the only ones it has; @tx holds
 * @dst, a handle to @rx's node 0x100 (so @rx holds 1 handle reference and
 * @tx 1). @rx must get exactly its half of every resource.
 */
static void check_budget(QuotaFixture *f, int rx, int tx, uint64_t dst) {
        static uint8_t big[1024 * 1024];
        unsigned int base = broker_fds_stable(f);
        uint64_t n, expected, *ids;
        int err, fd;

        /* slices */
        expected = quota_expect_small((Quota){ .limit = LIMIT_SLICES,
                                               .peer_limit = LIMIT_SLICES });
        n = flood(tx, dst, 's', 0, 0, &err);
        if (err != -EDQUOT || n != expected)
                fail_msg("slices: %llu got through, then %s; expected %llu, then EDQUOT",
                         (unsigned long long)n, strerror(-err), (unsigned long long)expected);
        drain(f, rx, n, geteuid(), 's', 0);
        uapi_expect_empty(rx);

        /* bytes */
        expected = quota_expect((Quota){ .limit = LIMIT_BYTES, .peer_limit = LIMIT_BYTES },
                                sizeof(big));
        for (n = 0; (err = send_full(tx, dst, big, sizeof(big), NULL, 0, NULL, 0)) == 0; ++n)
                ;
        if (err != -EDQUOT || n != expected)
                fail_msg("bytes: %llu MiB got through, then %s; expected %llu, then EDQUOT",
                         (unsigned long long)n, strerror(-err), (unsigned long long)expected);
        for (uint64_t i = 0; i < n; ++i) {
                struct bus1_cmd_recv r;

                assert_int_equal(uapi_recv(rx, 0, &r), 0);
                assert_int_equal(r.msg.n_bytes, sizeof(big));
                assert_int_equal(uapi_slice_release(rx, r.msg.offset), 0);
        }
        uapi_expect_empty(rx);

        /* fds */
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        expected = quota_expect((Quota){ .limit = LIMIT_FDS, .peer_limit = LIMIT_FDS }, 256);
        for (n = 0; (err = sendfds_n(tx, dst, fd, 256)) == 0; ++n)
                ;
        if (err != -EDQUOT || n != expected)
                fail_msg("fds: %llu x 256 got through, then %s; expected %llu, then EDQUOT",
                         (unsigned long long)n, strerror(-err), (unsigned long long)expected);
        assert_int_equal(sendfds_n(tx, dst, fd, 1), -EDQUOT);
        close(fd);
        assert_int_equal(broker_fds_settle(f, base + 256 * n), base + 256 * n);
        for (uint64_t i = 0; i < n; ++i) {
                struct bus1_cmd_recv r;

                /* without INSTALL_FDS: dropped */
                assert_int_equal(uapi_recv(rx, 0, &r), 0);
                assert_int_equal(r.msg.n_fds, 0);
                assert_int_equal(uapi_slice_release(rx, r.msg.offset), 0);
        }
        uapi_expect_empty(rx);
        assert_int_equal(broker_fds_settle(f, base), base);

        /* handles: rx creates nodes until its half is reached */
        expected = quota_expect((Quota){ .limit = LIMIT_HANDLES, .used_others = 1, .held = 1,
                                         .peer_limit = LIMIT_HANDLES }, 1);
        n = fill_nodes(rx, 0x100000, &ids);
        if (n != expected)
                fail_msg("handles: %llu nodes created; expected %llu", (unsigned long long)n,
                         (unsigned long long)expected);
        destroy_nodes(rx, ids, n);
        free(ids);
        uapi_expect_empty(rx);
        uapi_expect_empty(tx);
}

/* ---- 5. kill loop -------------------------------------------------------- */

#define KILL_CHILDREN 200
#define KILL_PARALLEL 4
#define KILL_MAX_MS 40
#define HUB_NODE 0x100ULL

/* what the chaos children got done, counted in a shared mapping */
enum {
        CHAOS_STARTED,
        CHAOS_TRANSFER,
        CHAOS_SEND,
        CHAOS_SEND_CARRIERS,    /* 256 fds: FDS carrier, then the SEND */
        CHAOS_RECV,
        CHAOS_RELEASE,
        CHAOS_DESTROY,
        CHAOS_FLUSH,
        _CHAOS_N,
};

static const char *const chaos_names[_CHAOS_N] = {
        "started", "transfers", "sends", "sends with 256 fds", "receives", "releases",
        "destroys", "flushes",
};

typedef struct Chaos {
        int p1, p2;
        uint64_t hub;   /* p1's handle to the hub */
        uint64_t *counts;       /* shared: _CHAOS_N counters */
} Chaos;

static void chaos_count(const Chaos *c, unsigned int what, int r) {
        if (r == 0)
                __atomic_fetch_add(&c->counts[what], 1, __ATOMIC_RELAXED);
}

/* read the handle IDs and installed fds of a received message; drop them */
static void chaos_consume(int peer, const uint8_t *pool, const struct bus1_cmd_recv *r,
                          bool release) {
        uint64_t at = r->msg.offset + uapi_align8(r->msg.n_bytes);

        if (r->msg.type != BUS1_MSG_DATA)
                return;
        for (uint64_t i = 0; i < r->msg.n_handles; ++i) {
                uint64_t id;

                memcpy(&id, pool + at + 8 * i, sizeof(id));
                if (release && id != BUS1_HANDLE_INVALID)
                        uapi_release(peer, id);
        }
        at += 8 * r->msg.n_handles;
        for (uint64_t i = 0; i < r->msg.n_fds; ++i) {
                int fd;

                memcpy(&fd, pool + at + 4 * i, sizeof(fd));
                if (fd > 2)
                        close(fd);
        }
        if (release)
                uapi_slice_release(peer, r->msg.offset);
}

/* sends, receives and transfers at random until killed */
static void child_chaos(int ctl, void *userdata) {
        const Chaos *c = userdata;
        int peers[3] = { c->p1, c->p2, -1 }, fds[256], pipe_fds[2];
        const uint8_t *pools[3];
        uint64_t held[3][64] = {}, next_id = 1;
        size_t n_held[3] = {};
        uint8_t payload[4096] = { 1 };

        srand((unsigned int)getpid());
        if (pipe2(pipe_fds, O_CLOEXEC) < 0)
                child_fail("pipe: %m");
        for (size_t i = 0; i < 256; ++i)
                fds[i] = (i & 1) ? pipe_fds[0] : pipe_fds[1];

        /* a peer of its own, connected from here */
        peers[2] = bus1_uapi_open(NULL);
        if (peers[2] < 0)
                child_fail("open: %s", strerror(-peers[2]));
        for (size_t i = 0; i < 3; ++i) {
                pools[i] = mmap(NULL, UAPI_POOL_SIZE, PROT_READ, MAP_SHARED,
                                bus1_uapi_pool_fd(peers[i]), 0);
                if (pools[i] == MAP_FAILED)
                        child_fail("mmap: %m");
        }
        held[0][n_held[0]++] = c->hub;
        chaos_count(c, CHAOS_STARTED, 0);

        for (;;) {
                size_t from = (size_t)rand() % 3, to = (size_t)rand() % 3;
                struct bus1_cmd_recv rv;
                uint64_t id, handles[2];
                size_t n_fds;
                int r;

                switch (rand() % 9) {
                case 0: /* a new node of @from, handed to @to */
                        r = uapi_transfer(peers[from], (next_id++) << 3, peers[to], &id);
                        chaos_count(c, CHAOS_TRANSFER, r);
                        if (r == 0 && n_held[to] < 64)
                                held[to][n_held[to]++] = id;
                        break;
                case 1: /* a handle @from holds, passed on */
                        if (!n_held[from])
                                break;
                        r = uapi_transfer(peers[from], held[from][rand() % n_held[from]],
                                          peers[to], &id);
                        chaos_count(c, CHAOS_TRANSFER, r);
                        if (r == 0 && n_held[to] < 64)
                                held[to][n_held[to]++] = id;
                        break;
                case 2: /* a message with handles and fds (carriers for 256) */
                case 3:
                        if (!n_held[from])
                                break;
                        handles[0] = held[from][rand() % n_held[from]];
                        handles[1] = (next_id++) << 3;
                        n_fds = (size_t)(rand() % 4 == 0 ? 256 : rand() % 4);
                        r = send_full(peers[from], handles[0], payload,
                                      1 + (size_t)rand() % sizeof(payload), handles, 2, fds,
                                      n_fds);
                        chaos_count(c, n_fds == 256 ? CHAOS_SEND_CARRIERS : CHAOS_SEND, r);
                        break;
                case 4: /* receive, keeping or releasing */
                case 5: {
                        uint64_t flags = rand() % 2 ? BUS1_RECV_FLAG_INSTALL_FDS : 0;

                        if (rand() % 8 == 0)
                                flags |= BUS1_RECV_FLAG_PEEK;
                        r = uapi_recv(peers[from], flags, &rv);
                        chaos_count(c, CHAOS_RECV, r);
                        if (r == 0 && !(flags & BUS1_RECV_FLAG_PEEK))
                                chaos_consume(peers[from], pools[from], &rv, rand() % 4 != 0);
                        break;
                }
                case 6: /* let go of a handle */
                        if (n_held[from]) {
                                size_t k = (size_t)rand() % n_held[from];

                                chaos_count(c, CHAOS_RELEASE,
                                            uapi_release(peers[from], held[from][k]));
                                held[from][k] = held[from][--n_held[from]];
                        }
                        break;
                case 7: /* destroy some own nodes */
                        id = (1 + (uint64_t)rand() % next_id) << 3;
                        r = uapi_destroy(peers[from], rand() % 2 ?
                                         BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES : 0, &id, 1);
                        chaos_count(c, CHAOS_DESTROY, r);
                        break;
                case 8: /* rarely: flush */
                        if (rand() % 16 == 0)
                                chaos_count(c, CHAOS_FLUSH,
                                            uapi_reset(peers[from], BUS1_PEER_RESET_FLAG_FLUSH,
                                                       UAPI_KEEP64, UAPI_KEEP32, UAPI_KEEP32,
                                                       UAPI_KEEP32, UAPI_KEEP32));
                        break;
                }
        }
}

/* receive whatever the hub has; returns how many entries */
static uint64_t hub_drain(QuotaFixture *f, int hub, uint64_t max) {
        const uint8_t *pool = uapi_pool(&f->u, hub);
        uint64_t n = 0;

        while (n < max) {
                uint64_t flags = n % 2 ? BUS1_RECV_FLAG_INSTALL_FDS : 0;
                struct bus1_cmd_recv r;
                int res;

                res = uapi_recv(hub, flags, &r);
                if (res == -EAGAIN)
                        break;
                assert_int_equal(res, 0);
                ++n;
                if (r.msg.type == BUS1_MSG_DATA) {
                        uint64_t at = r.msg.offset + uapi_align8(r.msg.n_bytes);

                        for (uint64_t i = 0; i < r.msg.n_handles; ++i) {
                                uint64_t id;

                                memcpy(&id, pool + at + 8 * i, sizeof(id));
                                if (id != BUS1_HANDLE_INVALID)
                                        assert_int_equal(uapi_release(hub, id), 0);
                        }
                        at += 8 * r.msg.n_handles;
                        for (uint64_t i = 0; i < r.msg.n_fds; ++i) {
                                int fd;

                                memcpy(&fd, pool + at + 4 * i, sizeof(fd));
                                assert_int_equal(close(fd), 0);
                        }
                        assert_int_equal(uapi_slice_release(hub, r.msg.offset), 0);
                } else if (r.msg.type == BUS1_MSG_NODE_DESTROY) {
                        assert_int_not_equal(r.msg.destination, HUB_NODE);
                } else {
                        assert_int_equal(r.msg.type, BUS1_MSG_NODE_RELEASE);
                        assert_int_equal(r.msg.destination, HUB_NODE);
                }
        }
        return n;
}

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_kill_loop(void **state) {
        QuotaFixture *f = *state;
        uid_t uid = quota_is_root() ? UID_B : geteuid();
        uint64_t deadline[CHILDREN_MAX] = {}, n_entries = 0, start = now_ms();
        size_t spawned = 0, active = 0, slots[CHILDREN_MAX];
        unsigned int idle = f->u.broker.n_fds_idle;
        uint64_t dst, *counts;
        int hub, f1, f2;

        quota_require(f);
        counts = mmap(NULL, _CHAOS_N * sizeof(*counts), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        assert_true(counts != MAP_FAILED);

        srand(12345);
        hub = uapi_peer(&f->u);

        while (spawned < KILL_CHILDREN || active) {
                /* keep a few running */
                while (spawned < KILL_CHILDREN && active < KILL_PARALLEL) {
                        Chaos c;
                        size_t slot;

                        c.p1 = quota_peer_as(f, uid);
                        c.p2 = quota_peer_as(f, uid);
                        c.hub = uapi_give(hub, HUB_NODE, c.p1);
                        c.counts = counts;
                        slot = child_spawn(f, uid, (int[]){ c.p1, c.p2 }, 2, child_chaos, &c);
                        assert_int_equal(uapi_close(&f->u, c.p1), 0);
                        assert_int_equal(uapi_close(&f->u, c.p2), 0);
                        deadline[slot] = now_ms() + (uint64_t)(rand() % (KILL_MAX_MS + 1));
                        slots[active++] = slot;
                        ++spawned;
                }

                n_entries += hub_drain(f, hub, 256);

                /* SIGKILL those whose time has come, wherever they are */
                for (size_t i = 0; i < active;) {
                        size_t slot = slots[i];
                        int status;

                        if (now_ms() < deadline[slot]) {
                                ++i;
                                continue;
                        }
                        {
                                Ctl m;

                                if (ctl_read(f->ctls[slot], &m, 0) == 0 && m.op == CTL_FAIL)
                                        fail_msg("chaos child: %s", m.text);
                        }
                        status = child_reap(f, slot, true);
                        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
                                fail_msg("a chaos child ended by itself (status 0x%x)", status);
                        slots[i] = slots[--active];
                }
                uapi_poll(hub, POLLIN, 1);
        }
        print_message("kill loop: %d clients killed in %llu ms; hub got %llu entries\n",
                      KILL_CHILDREN, (unsigned long long)(now_ms() - start),
                      (unsigned long long)n_entries);
        for (unsigned int i = 0; i < _CHAOS_N; ++i)
                print_message("kill loop: %llu %s\n", (unsigned long long)counts[i],
                              chaos_names[i]);
        /* most got going before they died, and did all of it */
        assert_true(counts[CHAOS_STARTED] >= KILL_CHILDREN / 2);
        for (unsigned int i = 0; i < _CHAOS_N; ++i)
                assert_true(counts[i] > 0);
        assert_true(n_entries > 0);
        munmap(counts, _CHAOS_N * sizeof(*counts));

        /* the broker answers, and what the dead sent is still delivered */
        broker_assert_alive(f);
        for (int quiet = 0; quiet < 5;) {
                if (hub_drain(f, hub, UINT64_MAX))
                        quiet = 0;
                else
                        ++quiet;
                uapi_poll(hub, POLLIN, 50);
        }
        uapi_expect_empty(hub);

        /* no descriptor held for anyone but the hub, then none at all */
        assert_int_equal(broker_fds_settle(f, idle + 2), idle + 2);
        assert_int_equal(uapi_close(&f->u, hub), 0);
        assert_int_equal(broker_fds_settle(f, idle), idle);

        /* every charge is back: fresh peers get their whole half of everything */
        f1 = uapi_peer(&f->u);
        f2 = uapi_peer(&f->u);
        dst = uapi_give(f1, 0x100, f2);
        check_budget(f, f1, f2, dst);

        if (uid != geteuid()) {
                uint64_t b_f1, f2_b;
                size_t b;
                int pb;
                Ctl m;

                /* ... and the shares of the killed UID in ours are gone */
                pb = quota_peer_as(f, uid);
                b_f1 = uapi_give(f1, 0x100, pb);
                f2_b = uapi_give(pb, 0x100, f2);
                b = spawn_server(f, pb, uid);
                m = child_call(f, b, (Ctl){ .op = CTL_FLOOD, .a = b_f1, .b = 'K', .c = 0 });
                if (m.b != EDQUOT || m.a != 8192)
                        fail_msg("uid %u got %llu through to a fresh peer, then %s; expected "
                                 "8192, then EDQUOT", (unsigned)uid, (unsigned long long)m.a,
                                 strerror((int)m.b));
                drain(f, f1, m.a, uid, 'K', 0);

                /* ... and the killed UID's own charges are gone */
                {
                        int err;

                        n_entries = flood(f2, f2_b, 'k', 0, 0, &err);
                        assert_int_equal(err, -EDQUOT);
                        assert_int_equal(n_entries, 8192);
                }
                m = child_call(f, b, (Ctl){ .op = CTL_DRAIN, .a = n_entries, .b = 'k', .c = 0,
                                            .d = geteuid() });
                assert_int_equal(m.a, n_entries);
                assert_int_equal(m.b, EAGAIN);
                child_exit(f, b);
        }
        uapi_finish(&f->u);
}

/* ---- 6. a million node/handle cycles ------------------------------------- */

#define CYCLE_BATCH 256

/*
 * CYCLE_BATCH cycles: p1 creates a node and hands p2 a handle to it
 * (HANDLE_TRANSFER of a new ID), then both go again, one of three ways:
 *  0: p2 releases first (a NODE_RELEASE is queued on p1), p1 destroys the
 *     node and releases its owner handle (withdrawing the NODE_RELEASE);
 *  1: p1 destroys first, p2 receives every NODE_DESTROY and releases;
 *  2: p1 destroys first, p2 drops everything with PEER_RESET FLUSH.
 */
static void cycle_batch(int p1, int p2, uint64_t first, unsigned int how) {
        uint64_t ids[CYCLE_BATCH], rids[CYCLE_BATCH];
        uint8_t seen[CYCLE_BATCH] = {};
        int r;

        for (size_t j = 0; j < CYCLE_BATCH; ++j) {
                ids[j] = (0x10000 + ((first + j) & 0xffff)) << 3;
                r = uapi_transfer(p1, ids[j], p2, &rids[j]);
                if (r < 0)
                        fail_msg("cycle %llu: transfer: %s",
                                 (unsigned long long)(first + j), strerror(-r));
                assert_int_equal(rids[j] & 7, UAPI_REMOTE_BITS);
        }

        if (how == 0)
                for (size_t j = 0; j < CYCLE_BATCH; ++j)
                        assert_int_equal(uapi_release(p2, rids[j]), 0);
        r = uapi_destroy(p1, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, ids, CYCLE_BATCH);
        if (r < 0)
                fail_msg("cycle %llu: destroy: %s", (unsigned long long)first, strerror(-r));

        if (how == 1) {
                /* one transaction: every entry but the last continues */
                for (size_t j = 0; j < CYCLE_BATCH; ++j) {
                        struct bus1_cmd_recv rv;
                        uint64_t k;

                        assert_int_equal(uapi_recv(p2, 0, &rv), 0);
                        uapi_assert_notification(&rv, BUS1_MSG_NODE_DESTROY,
                                                 rv.msg.destination);
                        assert_int_equal(rv.msg.flags,
                                         j + 1 < CYCLE_BATCH ? BUS1_MSG_FLAG_CONTINUE : 0);
                        k = (rv.msg.destination - rids[0]) >> 3;
                        assert_true(rv.msg.destination >= rids[0] && k < CYCLE_BATCH &&
                                    rids[k] == rv.msg.destination && !seen[k]);
                        seen[k] = 1;
                }
                for (size_t j = 0; j < CYCLE_BATCH; ++j)
                        assert_int_equal(uapi_release(p2, rids[j]), 0);
        } else if (how == 2) {
                assert_int_equal(uapi_reset(p2, BUS1_PEER_RESET_FLAG_FLUSH, UAPI_KEEP64,
                                            UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32,
                                            UAPI_KEEP32), 0);
        }
}

#define CYCLE_BULK 8192

/*
 * CYCLE_BULK cycles at once: one SEND of p1 to p3's node creates
 * CYCLE_BULK nodes of p1 and carries a handle to each to p3; p1 destroys
 * them and releases its owner handles; p3 drops its handles with PEER_RESET
 * FLUSH (its own node is pinned by its seed). Three orders: p3 receives the
 * message before the destroy, after it, or never (the flush drops it).
 */
static void cycle_bulk(QuotaFixture *f, int p1, int p3, uint64_t p1_n3, unsigned int how) {
        static uint64_t ids[CYCLE_BULK];
        struct bus1_cmd_recv rv;
        int r;

        for (size_t j = 0; j < CYCLE_BULK; ++j)
                ids[j] = (0x40000 + j) << 3;
        r = uapi_send(p1, &p1_n3, 1, 0, NULL, NULL, 0, ids, CYCLE_BULK);
        if (r < 0)
                fail_msg("bulk send: %s", strerror(-r));

        if (how == 0) {
                const uint8_t *pool = uapi_pool(&f->u, p3);
                uint64_t prev = 0;

                assert_int_equal(uapi_recv(p3, 0, &rv), 0);
                assert_int_equal(rv.msg.type, BUS1_MSG_DATA);
                assert_int_equal(rv.msg.n_handles, CYCLE_BULK);
                for (size_t j = 0; j < CYCLE_BULK; ++j) {
                        uint64_t id = uapi_slice_handle(pool, &rv, j);

                        /* a fresh handle for each node */
                        assert_true((id & 7) == UAPI_REMOTE_BITS && id > prev);
                        prev = id;
                }
        }
        r = uapi_destroy(p1, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, ids, CYCLE_BULK);
        if (r < 0)
                fail_msg("bulk destroy: %s", strerror(-r));
        if (how == 1) {
                assert_int_equal(uapi_recv(p3, 0, &rv), 0);
                assert_int_equal(rv.msg.type, BUS1_MSG_DATA);
                assert_int_equal(rv.msg.n_handles, CYCLE_BULK);
        }
        assert_int_equal(uapi_reset(p3, BUS1_PEER_RESET_FLAG_FLUSH, UAPI_KEEP64, UAPI_KEEP32,
                                    UAPI_KEEP32, UAPI_KEEP32, UAPI_KEEP32), 0);
}

static void test_million_cycles(void **state) {
        QuotaFixture *f = *state;
        uint64_t cycles = 1000000, rss0 = 0, rss1, dst, p1_n3, start, done, round;
        struct bus1_cmd_peer_reset q0[2], q1[2];
        const char *env = getenv("BUS1D_TEST_CYCLES");
        int p1, p2, p3;

        quota_require(f);

        if (env)
                cycles = strtoull(env, NULL, 0);
        print_message("%llu node/handle cycles\n", (unsigned long long)cycles);

        p1 = uapi_peer(&f->u);
        p2 = uapi_peer(&f->u);
        dst = uapi_give(p1, 0x100, p2);
        assert_int_equal(uapi_query(p1, &q0[0]), 0);
        assert_int_equal(uapi_query(p2, &q0[1]), 0);
        check_budget(f, p1, p2, dst);

        /* the cycles' partner: a node of its own, pinned by its seed */
        p3 = uapi_peer(&f->u);
        p1_n3 = uapi_give(p3, 0x100, p1);
        assert_int_equal(uapi_send(p3, NULL, 0, BUS1_SEND_FLAG_SEED, NULL, "seed", 4,
                                   (uint64_t[]){ 0x100 }, 1), 0);

        start = now_ms();
        for (done = 0, round = 0; done < cycles; ++round) {
                /* the first round warms the broker's allocator up */
                if (round == 1)
                        rss0 = rss_kb(f->u.broker.pid);
                cycle_bulk(f, p1, p3, p1_n3, (unsigned int)(round % 3));
                for (unsigned int k = 0; k < 4; ++k)
                        cycle_batch(p1, p3, (4 * round + k) * CYCLE_BATCH,
                                    (unsigned int)((round + k) % 3));
                done += CYCLE_BULK + 4 * CYCLE_BATCH;
                if (round % 16 == 0) {
                        /* nothing piles up: withdrawn, received or flushed */
                        uapi_expect_empty(p1);
                        uapi_expect_empty(p3);
                }
        }
        rss1 = rss_kb(f->u.broker.pid);
        print_message("%llu node/handle cycles in %llu ms; broker VmRSS %llu kB -> %llu kB\n",
                      (unsigned long long)done, (unsigned long long)(now_ms() - start),
                      (unsigned long long)rss0, (unsigned long long)rss1);
        assert_true(rss1 < rss0 + 2048);
        uapi_expect_empty(p1);
        uapi_expect_empty(p2);
        uapi_expect_empty(p3);

        /*
         * p3 goes: p1 learns its node is gone and lets go of it. The broker
         * hears of a close asynchronously (docs/model.md §11.2), so p1
         * waits for the notification rather than asking at once.
         */
        assert_int_equal(uapi_close(&f->u, p3), 0);
        {
                struct pollfd p = { .fd = p1, .events = POLLIN };

                assert_int_equal(poll(&p, 1, 10000), 1);
        }
        uapi_expect_notification(p1, BUS1_MSG_NODE_DESTROY, p1_n3);
        assert_int_equal(uapi_release(p1, p1_n3), 0);

        /* the peers are as they were: limits, and the whole budget */
        assert_int_equal(uapi_query(p1, &q1[0]), 0);
        assert_int_equal(uapi_query(p2, &q1[1]), 0);
        assert_memory_equal(q0, q1, sizeof(q0));
        check_budget(f, p1, p2, dst);
        uapi_finish(&f->u);
}

/* an optional argument selects tests by name (cmocka's pattern, e.g. "test_held*") */
int main(int argc, char **argv) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_quota_expect_vectors),
                cmocka_unit_test_setup_teardown(test_two_uids_flood, quota_setup,
                                                quota_teardown),
                cmocka_unit_test_setup_teardown(test_two_uids_passed_connection, quota_setup,
                                                quota_teardown),
                cmocka_unit_test_setup_teardown(test_notifications_full_quota, quota_setup,
                                                quota_teardown),
                cmocka_unit_test_setup_teardown(test_fd_exhaustion, quota_setup_small,
                                                quota_teardown),
                cmocka_unit_test_setup_teardown(test_held_fds, quota_setup_large,
                                                quota_teardown),
                cmocka_unit_test_setup_teardown(test_kill_loop, quota_setup, quota_teardown),
                cmocka_unit_test_setup_teardown(test_million_cycles, quota_setup,
                                                quota_teardown),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
