/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Randomized model test
 *
 * Several seeds of a deterministic PRNG (splitmix64), each: one Bus with 4-6
 * peers and a few thousand random commands whose arguments are drawn so that
 * they collide: owner-chosen IDs from a tiny set (0, 8, 0x100), IDs the peer
 * holds, stale and garbage managed IDs, low limits and small pools. After
 * every command the model's own checker runs (bus_validate()), and then a
 * shadow model that knows what the commands should have done from the model (docs/model.md),
 * not from the model's structures:
 *  - per peer, the user references it must hold on each of its IDs (+1 for a
 *    node it creates, a transfer into it, each received handle entry; -1 per
 *    release; FLUSH and DISCONNECT), compared with every Handle's n_user;
 *  - every broker-assigned ID a peer ever held and the node it named
 *    (owner peer, owner ID, creation): assigned IDs grow, never name a second
 *    node, and never come back once their handle is gone;
 *  - each receiver's queued messages, in order, compared entry by entry with
 *    the model's queue (nothing lost, nothing extra, global order), and what
 *    a RECV reports: payload, handle entries, fds, credentials, security
 *    context, CONTINUE;
 *  - per destroyed node and holder: one NODE_DESTROY for every peer that held
 *    it with user references, unless it released, flushed or disconnected
 *    first; never twice, never to a peer that did not hold it;
 *  - a NODE_RELEASE queued whenever a node's count fell back to its pin;
 *  - the exact return code of every command where the model fixes it (limits
 *    and the per-UID fair share of user.h included; EXFULL only where the
 *    allocator's placement decides), and one the model lists for that command
 *    otherwise.
 * Each seed ends by dropping the seeds, draining every queue and releasing
 * every slice; then every pool must be empty. The fds open at the end of each
 * test equal those at its start. After the random tests come short fixed
 * sequences, minimised from random failures.
 *
 * Environment:
 *  - BUS1_RANDOM_SEED=<n>: run only that seed;
 *  - BUS1_RANDOM_SEEDS=<n>: seeds per configuration (a soak run);
 *  - BUS1_RANDOM_STEPS=<n>: steps per seed;
 *  - BUS1_RANDOM_TRACE=1: print every command.
 * A failure prints the seed, the step, the last commands and how to rerun.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "bus/handle.h"
#include "bus/message.h"
#include "bus/node.h"
#include "bus/pool.h"
#include "bus/queue.h"
#include "bus/user.h"
#include "model-util.h"

#define SLOTS_MAX 6U
#define DSTS_MAX 4U
#define ATTACH_MAX 5U
#define IDS_MAX 4U
#define NEW_MAX (ATTACH_MAX + DSTS_MAX)
#define RING 10U
#define NONE UINT64_MAX

enum {
        OP_SEND,
        OP_RECV,
        OP_SLICE_RELEASE,
        OP_HANDLE_RELEASE,
        OP_TRANSFER,
        OP_NODES_DESTROY,
        OP_RESET,
        OP_DISCONNECT,
        OP_QUERY,
        OP_REPLACE,
        _OP_MAX,
};

static const char *const op_names[_OP_MAX] = {
        [OP_SEND] = "SEND",
        [OP_RECV] = "RECV",
        [OP_SLICE_RELEASE] = "SLICE_RELEASE",
        [OP_HANDLE_RELEASE] = "HANDLE_RELEASE",
        [OP_TRANSFER] = "HANDLE_TRANSFER",
        [OP_NODES_DESTROY] = "NODES_DESTROY",
        [OP_RESET] = "PEER_RESET",
        [OP_DISCONNECT] = "PEER_DISCONNECT",
        [OP_QUERY] = "PEER_QUERY",
        [OP_REPLACE] = "(replace peer)",
};

/* every errno a command may return, docs/model.md §9; index 0 is success */
static const int known_errors[] = {
        0, EINVAL, EMSGSIZE, ENXIO, ENOTUNIQ, EHOSTUNREACH, ESHUTDOWN, EDQUOT, EXFULL,
        EAGAIN, ERANGE, EBUSY, EREMOTE, ESTALE,
};
#define N_KNOWN_ERRORS (sizeof(known_errors) / sizeof(known_errors[0]))

/* what each command may return at all (docs/model.md §3-6, 8, 9) */
static const int allowed_send[] = { 0, EINVAL, EMSGSIZE, ENXIO, ENOTUNIQ, EHOSTUNREACH,
                                    ESHUTDOWN, EDQUOT, EXFULL, -1 };
static const int allowed_recv[] = { 0, EINVAL, EAGAIN, ERANGE, ESHUTDOWN, -1 };
static const int allowed_slice_release[] = { 0, ENXIO, ESHUTDOWN, -1 };
static const int allowed_handle_release[] = { 0, ENXIO, EBUSY, ESHUTDOWN, -1 };
static const int allowed_transfer[] = { 0, EINVAL, ENXIO, ESHUTDOWN, EDQUOT, -1 };
static const int allowed_nodes_destroy[] = { 0, EINVAL, ENXIO, EREMOTE, ESTALE, ENOTUNIQ,
                                             ESHUTDOWN, EDQUOT, -1 };
static const int allowed_reset[] = { 0, EINVAL, ESHUTDOWN, -1 };
static const int allowed_disconnect[] = { 0, ESHUTDOWN, -1 };
static const int allowed_query[] = { 0, EINVAL, ESHUTDOWN, -1 };
static const int allowed_replace[] = { 0, -1 };

static const int *const allowed_by_op[_OP_MAX] = {
        [OP_SEND] = allowed_send,
        [OP_RECV] = allowed_recv,
        [OP_SLICE_RELEASE] = allowed_slice_release,
        [OP_HANDLE_RELEASE] = allowed_handle_release,
        [OP_TRANSFER] = allowed_transfer,
        [OP_NODES_DESTROY] = allowed_nodes_destroy,
        [OP_RESET] = allowed_reset,
        [OP_DISCONNECT] = allowed_disconnect,
        [OP_QUERY] = allowed_query,
        [OP_REPLACE] = allowed_replace,
};

/* NODE_DESTROY state of one (node, holder) */
enum {
        DS_NONE,        /* did not hold the node when it was destroyed */
        DS_MAYBE,       /* held it with in-flight references only: queued or not */
        DS_PENDING,     /* must be queued until received */
        DS_RECEIVED,    /* got it; must not get another */
        DS_EXEMPT,      /* released, flushed or disconnected first: must not get it */
};

enum { HIST_UNSEEN, HIST_EXISTS, HIST_GONE };
enum { PEND_QUEUED, PEND_DROPPED, PEND_RECEIVED };
enum { OUT_OK, OUT_ERR, OUT_MAYBE };

/* the shadow of one node, from creation on; never freed before the seed ends */
typedef struct Rec {
        uint64_t idx;
        Node *node;                     /* NULL once the model freed it */
        unsigned owner_slot;
        uint64_t owner_peer;            /* owner's peer id */
        uint64_t owner_id;              /* owner's handle ID */
        uint64_t created_step;
        uint64_t destroyed_step;
        bool destroyed;
        bool owner_handle_gone;         /* the owner's handle no longer exists */
        bool owner_gone;                /* destroyed and released by its owner: nothing delivered */
        bool release_expected;          /* count rose above the pin since the last NODE_RELEASE */
        bool expect_destroy;            /* the current command must destroy it */
        uint64_t snap_step;             /* holders before a destroying command */
        uint32_t snap_any, snap_user;
        bool seen;                      /* per scan: */
        bool owner_seen;
        uint32_t has, det;              /*   holders: in the table, detached */
        uint32_t dq, dq_det;            /*   their NODE_DESTROY is queued */
        uint64_t user[SLOTS_MAX];       /*   n_user per holder */
        uint64_t linked_id[SLOTS_MAX];  /*   ID in the table */
        /*
         * NODE_DESTROY state per holder and handle lifetime: a handle released
         * while queued entries carry it leaves the table (detached) and comes
         * back under a fresh ID when received: a new lifetime. Its entry,
         * queued if it existed at destruction, then belongs to the new ID.
         */
        uint64_t life_id[SLOTS_MAX];
        uint32_t had_user;              /* the lifetime had user references since destruction */
        uint8_t dstate[SLOTS_MAX];
        uint64_t shadow_refs;           /* scan_refs(): what n_user_refs must be */
} Rec;

typedef struct Held {
        uint64_t id;
        uint64_t n;
} Held;

typedef struct Hist {
        uint64_t id;
        uint64_t rec;
        uint8_t state;
} Hist;

typedef struct Pend {
        uint64_t serial;                /* index in ctx->sent */
        uint64_t rec;                   /* destination node */
        Message *msg;                   /* valid while queued */
        bool secctx;
        uint8_t state;
} Pend;

/* what one successful SEND carried */
typedef struct Sent {
        unsigned sender;
        PeerCreds creds;
        char secctx[64];
        uint64_t n_secctx;
        bool seed_secctx;               /* seeds: whether it carries the context */
        uint64_t len;
        uint64_t n_handles;
        uint64_t handle_rec[ATTACH_MAX]; /* NONE: destroyed at send time */
        uint64_t n_fds;
        FdList *fds;
} Sent;

typedef struct Slot {
        unsigned idx;
        Peer *peer;
        uint32_t uid;
        bool down;
        uint64_t down_step;
        PeerLimits limits;
        uint64_t peer_flags;
        Held *held;
        size_t n_held, cap_held;
        uint64_t *pub;
        size_t n_pub, cap_pub;
        Pend *pend;
        size_t n_pend, cap_pend, pend_head;
        Hist *hist;
        size_t cap_hist;
        uint64_t max_n;
        uint64_t *exist;
        size_t n_exist, cap_exist;
        uint64_t *exist_new;
        size_t cap_exist_new;
        uint64_t seed;
} Slot;

typedef struct Config {
        const char *name;
        uint64_t first_seed;
        uint64_t n_seeds;
        uint64_t steps;
        uint64_t pool_sizes[4];
        unsigned n_pool_sizes;
        PeerLimits limits;
        unsigned n_uids;                /* peers share this many UIDs; 0: one each */
        uint64_t user_max[_USER_N];     /* per-UID limits; 0: the registry's defaults */
} Config;

typedef struct Stats {
        uint64_t ret[_OP_MAX][N_KNOWN_ERRORS];
        uint64_t delivered, received_data, received_seed, received_destroy;
        uint64_t received_release, fds_installed, nodes, destroyed;
        uint64_t soft_zero_user_destroy;
} Stats;

typedef struct Ctx {
        const Config *cfg;
        uint64_t seed;
        uint64_t rng;
        uint64_t step;
        bool trace;
        Bus bus;
        unsigned n_slots;
        Slot slots[SLOTS_MAX];
        unsigned n_generations;
        Rec **recs;
        size_t n_recs, cap_recs;
        uint64_t *live;
        size_t n_live, cap_live;
        Sent *sent;
        size_t n_sent, cap_sent;
        uint8_t *buf;
        size_t buf_size;
        int base_fd;

        /* the current command */
        int op_kind;
        unsigned actor;
        int op_r;
        uint64_t clock_before;
        uint64_t op_flags;
        uint64_t new_ids[NEW_MAX];
        size_t n_new_ids;
        uint64_t last_id;               /* HANDLE_TRANSFER's dst_handle */
        char ring[RING][400];
        uint64_t ring_step[RING];
        unsigned ring_pos;

        Stats *stats;
} Ctx;

/* ---- PRNG, memory, failure reporting ---- */

static uint64_t rnd(Ctx *c) {
        uint64_t z = (c->rng += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static uint64_t rnd_below(Ctx *c, uint64_t n) {
        return n ? rnd(c) % n : 0;
}

static bool chance(Ctx *c, unsigned per_mille) {
        return rnd_below(c, 1000) < per_mille;
}

static void *xgrow(void *p, size_t *cap, size_t need, size_t size) {
        size_t n = *cap ? *cap : 16;

        if (need <= *cap)
                return p;
        while (n < need)
                n *= 2;
        p = realloc(p, n * size);
        assert_non_null(p);
        memset((char *)p + *cap * size, 0, (n - *cap) * size);
        *cap = n;
        return p;
}

static void ctx_dump(Ctx *c) {
        fprintf(stderr, "\n*** randomized model test (%s): seed %" PRIu64 ", step %" PRIu64 "\n",
                c->cfg ? c->cfg->name : "sequence", c->seed, c->step);
        fprintf(stderr, "*** last commands (P<slot>[peer id]):\n");
        for (unsigned i = 0; i < RING; ++i) {
                unsigned k = (c->ring_pos + i) % RING;

                if (c->ring[k][0])
                        fprintf(stderr, "***   #%" PRIu64 " %s\n", c->ring_step[k], c->ring[k]);
        }
        fprintf(stderr, "*** rerun: BUS1_RANDOM_SEED=%" PRIu64 " BUS1_RANDOM_TRACE=1\n", c->seed);
}

static void check_failed(Ctx *c, int line, const char *cond, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void check_failed(Ctx *c, int line, const char *cond, const char *fmt, ...) {
        va_list ap;

        ctx_dump(c);
        fprintf(stderr, "*** check failed (line %d): %s\n***   ", line, cond);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n");
        fail();
}

#define CHECK(_c, _cond, ...)                                                   \
        do {                                                                    \
                if (!(_cond))                                                   \
                        check_failed((_c), __LINE__, #_cond, __VA_ARGS__);      \
        } while (0)

static const char *errname(int r) {
        static char buf[4][32];
        static unsigned k;
        int e = r < 0 ? -r : r;

        switch (e) {
        case 0: return "0";
        case EINVAL: return "EINVAL";
        case EMSGSIZE: return "EMSGSIZE";
        case ENXIO: return "ENXIO";
        case ENOTUNIQ: return "ENOTUNIQ";
        case EHOSTUNREACH: return "EHOSTUNREACH";
        case ESHUTDOWN: return "ESHUTDOWN";
        case EDQUOT: return "EDQUOT";
        case EXFULL: return "EXFULL";
        case EAGAIN: return "EAGAIN";
        case ERANGE: return "ERANGE";
        case EBUSY: return "EBUSY";
        case EREMOTE: return "EREMOTE";
        case ESTALE: return "ESTALE";
        case ENOMEM: return "ENOMEM";
        default:
                k = (k + 1) % 4;
                snprintf(buf[k], sizeof(buf[k]), "errno %d", e);
                return buf[k];
        }
}

/* bit of an errno (positive) in a set */
static uint32_t ebit(int e) {
        for (size_t i = 0; i < N_KNOWN_ERRORS; ++i)
                if (known_errors[i] == e)
                        return 1U << i;
        return 0;
}

static void errset_str(char *buf, size_t size, uint32_t set) {
        size_t at = 0;

        buf[0] = 0;
        for (size_t i = 0; i < N_KNOWN_ERRORS; ++i)
                if (set & (1U << i))
                        at += snprintf(buf + at, at < size ? size - at : 0, "%s%s",
                                       at ? "|" : "", errname(known_errors[i]));
}

/* ---- shadow helpers ---- */

static Slot *slot_of_peer(Ctx *c, Peer *peer) {
        for (unsigned i = 0; i < c->n_slots; ++i)
                if (c->slots[i].peer == peer && !c->slots[i].down)
                        return &c->slots[i];
        return NULL;
}

static uint64_t held_get(Slot *s, uint64_t id) {
        for (size_t i = 0; i < s->n_held; ++i)
                if (s->held[i].id == id)
                        return s->held[i].n;
        return 0;
}

static void held_add(Ctx *c, Slot *s, uint64_t id, int64_t delta) {
        size_t i;

        for (i = 0; i < s->n_held; ++i)
                if (s->held[i].id == id)
                        break;
        if (i == s->n_held) {
                CHECK(c, delta > 0, "P%u: releasing ID %" PRIx64 " it does not hold", s->idx, id);
                s->held = xgrow(s->held, &s->cap_held, s->n_held + 1, sizeof(*s->held));
                s->held[s->n_held++] = (Held){ .id = id };
        }
        CHECK(c, delta >= 0 || s->held[i].n >= (uint64_t)-delta,
              "P%u: shadow count of %" PRIx64 " below zero", s->idx, id);
        s->held[i].n += delta;
        if (!s->held[i].n)
                s->held[i] = s->held[--s->n_held];
}

static bool pub_take(Slot *s, uint64_t offset) {
        for (size_t i = 0; i < s->n_pub; ++i)
                if (s->pub[i] == offset) {
                        s->pub[i] = s->pub[--s->n_pub];
                        return true;
                }
        return false;
}

static bool pub_has(Slot *s, uint64_t offset) {
        for (size_t i = 0; i < s->n_pub; ++i)
                if (s->pub[i] == offset)
                        return true;
        return false;
}

static Hist *hist_at(Slot *s, uint64_t n) {
        s->hist = xgrow(s->hist, &s->cap_hist, n + 1, sizeof(*s->hist));
        return &s->hist[n];
}

static bool owner_alive(Ctx *c, const Rec *r) {
        const Slot *o = &c->slots[r->owner_slot];

        return !o->down && o->peer->id == r->owner_peer;
}

static const char *rec_str(const Rec *r) {
        static char buf[4][80];
        static unsigned k;

        if (!r)
                return "(no node)";
        k = (k + 1) % 4;
        snprintf(buf[k], sizeof(buf[k]), "node#%" PRIu64 "(P%u[%" PRIu64 "]:%" PRIx64 "%s)",
                 r->idx, r->owner_slot, r->owner_peer, r->owner_id,
                 r->destroyed ? ",destroyed" : "");
        return buf[k];
}

static Rec *rec_find(Ctx *c, const Node *node) {
        for (size_t i = 0; i < c->n_live; ++i)
                if (c->recs[c->live[i]]->node == node)
                        return c->recs[c->live[i]];
        return NULL;
}

/* the node a peer's ID names, as the shadow knows it (NULL: none) */
static Rec *rec_of_id(Ctx *c, Slot *s, uint64_t id) {
        if (handle_id_is_managed(id)) {
                uint64_t n = id >> 3;

                if (n < s->cap_hist && s->hist[n].state == HIST_EXISTS && s->hist[n].id == id)
                        return c->recs[s->hist[n].rec];
                return NULL;
        }
        if (!handle_id_is_new(id))
                return NULL;
        for (size_t i = 0; i < c->n_live; ++i) {
                Rec *r = c->recs[c->live[i]];

                if (r->owner_slot == s->idx && r->owner_peer == s->peer->id &&
                    r->owner_id == id && !r->owner_handle_gone)
                        return r;
        }
        return NULL;
}

static uint8_t pattern(uint64_t serial, uint64_t i) {
        return (uint8_t)((serial * 131) ^ (i * 7) ^ (i >> 8) ^ 0x5a);
}

static uint64_t slice_size(uint64_t len, uint64_t n_handles, uint64_t n_fds, uint64_t n_secctx) {
        uint64_t size = align8(len) + align8(8 * n_handles) + align8(4 * n_fds) + align8(n_secctx);

        return size < 8 ? 8 : size;
}

static uint64_t pool_largest_free(Pool *pool) {
        PoolSlice *sl;
        uint64_t best = 0;

        if (list_is_empty(&pool->extents))
                return pool->max_size;
        list_for_each_entry(sl, &pool->extents, extent_link)
                if (!sl->busy && sl->size > best)
                        best = sl->size;
        return best;
}

static void ids_str(char *buf, size_t size, const uint64_t *ids, uint64_t n) {
        size_t at = 0;

        buf[0] = 0;
        for (uint64_t i = 0; i < n; ++i)
                at += snprintf(buf + at, at < size ? size - at : 0, "%s%" PRIx64,
                               i ? "," : "", ids[i]);
}

/* ---- command bookkeeping ---- */

static void op_begin(Ctx *c, int kind, unsigned actor, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void op_begin(Ctx *c, int kind, unsigned actor, const char *fmt, ...) {
        char *d = c->ring[c->ring_pos];
        va_list ap;
        int n;

        ++c->step;
        c->op_kind = kind;
        c->actor = actor;
        c->op_r = 0;
        c->op_flags = 0;
        c->n_new_ids = 0;
        c->clock_before = c->bus.clock;
        for (size_t i = 0; i < c->n_live; ++i)
                c->recs[c->live[i]]->expect_destroy = false;

        n = snprintf(d, sizeof(c->ring[0]), "P%u[%" PRIu64 "%s] %s ", actor,
                     c->slots[actor].peer->id, c->slots[actor].down ? ",down" : "",
                     op_names[kind]);
        va_start(ap, fmt);
        vsnprintf(d + n, sizeof(c->ring[0]) - n, fmt, ap);
        va_end(ap);
        c->ring_step[c->ring_pos] = c->step;
}

static void op_note(Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void op_note(Ctx *c, const char *fmt, ...) {
        char *d = c->ring[c->ring_pos];
        size_t n = strlen(d);
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(d + n, sizeof(c->ring[0]) - n, fmt, ap);
        va_end(ap);
}

static void scan_nodes(Ctx *c);

/* record the result, check it is one the model (docs/model.md §9) allows for the command at all */
static void op_result(Ctx *c, int r, uint32_t expected) {
        const int *allowed = allowed_by_op[c->op_kind];
        bool ok = false;
        char want[160];

        c->op_r = r;
        op_note(c, " -> %s", errname(r));
        if (c->trace)
                fprintf(stderr, "#%" PRIu64 " %s\n", c->step, c->ring[c->ring_pos]);
        c->ring_pos = (c->ring_pos + 1) % RING;

        for (size_t i = 0; allowed[i] >= 0; ++i)
                ok |= allowed[i] == -r;
        CHECK(c, ok, "%s returned %s, which the model does not list for it",
              op_names[c->op_kind], errname(r));
        for (size_t i = 0; i < N_KNOWN_ERRORS; ++i)
                if (known_errors[i] == -r)
                        ++c->stats->ret[c->op_kind][i];

        errset_str(want, sizeof(want), expected);
        CHECK(c, expected & ebit(-r), "%s returned %s, expected %s", op_names[c->op_kind],
              errname(r), want);

        CHECK(c, bus_validate(&c->bus) == 0, "bus_validate() failed after %s",
              op_names[c->op_kind]);

        if (r < 0) {
                /* a failed command queues nothing */
                for (unsigned i = 0; i < c->n_slots; ++i) {
                        Slot *s = &c->slots[i];
                        QueueEntry *last;

                        if (s->down)
                                continue;
                        last = list_entry(list_last(&s->peer->queue.entries), QueueEntry, link);
                        CHECK(c, !last || last->seq <= c->clock_before,
                              "failed %s queued an entry on P%u", op_names[c->op_kind], i);
                }
        }
        scan_nodes(c);
}

/* ---- scanning the model ---- */

static Rec *rec_discover(Ctx *c, Node *node) {
        Slot *s = &c->slots[c->actor];
        bool allowed = false;
        Rec *r;

        CHECK(c, node->owner && node->owner_handle, "unknown node %p without owner or owner "
              "handle (destroyed %d, owner peer %" PRIu64 ", refs %" PRIu64 "/%" PRIu64 ")",
              (void *)node, node->destroyed, node->owner ? node->owner->id : 0, node->n_refs,
              node->n_user_refs);
        for (size_t i = 0; i < c->n_new_ids; ++i)
                allowed |= c->new_ids[i] == node->owner_handle->id;
        CHECK(c, c->op_r == 0 && node->owner == s->peer && allowed,
              "%s (result %s) created a node it must not create: owner peer %" PRIu64
              ", owner ID %" PRIx64, op_names[c->op_kind], errname(c->op_r), node->owner->id,
              node->owner_handle->id);

        r = calloc(1, sizeof(*r));
        assert_non_null(r);
        *r = (Rec){
                .idx = c->n_recs,
                .node = node,
                .owner_slot = s->idx,
                .owner_peer = s->peer->id,
                .owner_id = node->owner_handle->id,
                .created_step = c->step,
        };
        c->recs = xgrow(c->recs, &c->cap_recs, c->n_recs + 1, sizeof(*c->recs));
        c->recs[c->n_recs++] = r;
        c->live = xgrow(c->live, &c->cap_live, c->n_live + 1, sizeof(*c->live));
        c->live[c->n_live++] = r->idx;
        ++c->stats->nodes;
        return r;
}

static void rec_destroyed(Ctx *c, Rec *r) {
        Slot *a = &c->slots[c->actor];
        bool by_op = c->op_r == 0 &&
                     (c->op_kind == OP_NODES_DESTROY || c->op_kind == OP_DISCONNECT ||
                      (c->op_kind == OP_RESET && (c->op_flags & BUS1_PEER_RESET_FLAG_FLUSH)));
        uint32_t any, user = 0;

        CHECK(c, by_op && r->owner_slot == c->actor && r->owner_peer == a->peer->id &&
                 (r->expect_destroy || r->created_step == c->step),
              "%s destroyed by %s (result %s), which must not destroy it", rec_str(r),
              op_names[c->op_kind], errname(c->op_r));

        r->destroyed = true;
        r->destroyed_step = c->step;
        ++c->stats->destroyed;

        if (r->snap_step == c->step) {
                any = r->snap_any;
                user = r->snap_user;
        } else {
                /* created by this very command: only the owner can hold it */
                any = r->has | r->det | (1U << r->owner_slot);
                user = 1U << r->owner_slot;
        }
        for (unsigned i = 0; i < c->n_slots; ++i) {
                uint32_t bit = 1U << i;

                r->life_id[i] = r->linked_id[i];
                if (user & bit) {
                        r->dstate[i] = DS_PENDING;
                        r->had_user |= bit;
                } else if (any & bit) {
                        r->dstate[i] = DS_MAYBE;
                }
        }
}

/* a managed ID seen in a peer's table: the same node for ever, never back once gone */
static void hist_see(Ctx *c, Slot *s, Handle *h, Rec *r, uint64_t max_before) {
        uint64_t n = h->id >> 3;
        Hist *e = hist_at(s, n);

        if (e->state == HIST_UNSEEN) {
                CHECK(c, n > max_before, "P%u: new handle to %s got ID %" PRIx64
                      ", not above the IDs assigned before (n %" PRIu64 ")", s->idx, rec_str(r),
                      h->id, max_before);
                *e = (Hist){ .id = h->id, .rec = r->idx, .state = HIST_EXISTS };
                if (n > s->max_n)
                        s->max_n = n;
        } else {
                CHECK(c, e->state == HIST_EXISTS, "P%u: ID %" PRIx64 " is back (%s) after its "
                      "handle was gone", s->idx, h->id, rec_str(r));
                CHECK(c, e->id == h->id && e->rec == r->idx, "P%u: ID %" PRIx64 " now names %s, "
                      "before %s", s->idx, h->id, rec_str(r), rec_str(c->recs[e->rec]));
        }
}

static void scan_message(Ctx *c, Slot *s, Message *m) {
        uint32_t bit = 1U << s->idx;

        if (m->node) {
                Rec *d = rec_find(c, m->node);

                CHECK(c, d && d->owner_slot == s->idx, "P%u: queued message to %s", s->idx,
                      rec_str(d));
        }
        for (uint64_t i = 0; i < m->n_handles; ++i) {
                Handle *h = m->handles[i];
                Rec *r;

                if (!h || !handle_is_detached(h))
                        continue;
                r = rec_find(c, h->node);
                if (!r)
                        r = rec_discover(c, h->node);
                CHECK(c, !h->n_user && h->n_inflight, "P%u: detached handle of %s with %" PRIu64
                      "/%" PRIu64 " references", s->idx, rec_str(r), h->n_user, h->n_inflight);
                r->seen = true;
                r->det |= bit;
                if (queue_entry_is_queued(&h->destroy))
                        r->dq_det |= bit;
        }
}

static void scan_slot(Ctx *c, Slot *s) {
        uint64_t max_before = s->max_n;
        size_t n_new = 0, j = 0;
        QueueEntry *e;
        uint64_t *tmp;
        size_t tcap;

        for (RBNode *rb = rbtree_first(&s->peer->handles_by_id); rb; rb = rbnode_next(rb)) {
                Handle *h = container_of(rb, Handle, id_node);
                uint32_t bit = 1U << s->idx;
                Rec *r;

                r = rec_find(c, h->node);
                if (!r)
                        r = rec_discover(c, h->node);
                r->seen = true;
                r->has |= bit;
                r->user[s->idx] = h->n_user;
                r->linked_id[s->idx] = h->id;
                if (queue_entry_is_queued(&h->destroy))
                        r->dq |= bit;

                if (h->node->owner_handle == h) {
                        CHECK(c, r->owner_slot == s->idx && r->owner_peer == s->peer->id &&
                                 r->owner_id == h->id,
                              "P%u: owner handle %" PRIx64 " of %s", s->idx, h->id, rec_str(r));
                        r->owner_seen = true;
                }
                if (handle_id_is_managed(h->id)) {
                        hist_see(c, s, h, r, max_before);
                        s->exist_new = xgrow(s->exist_new, &s->cap_exist_new, n_new + 1,
                                             sizeof(*s->exist_new));
                        s->exist_new[n_new++] = h->id >> 3;
                }
        }

        /*
         * Handles released to zero while queued entries carry them leave the
         * table (their ID is gone); only those entries still know them.
         */
        list_for_each_entry(e, &s->peer->queue.entries, link)
                if (e->type == QUEUE_ENTRY_DATA)
                        scan_message(c, s, container_of(e, Message, entry));
        if (s->peer->seed)
                scan_message(c, s, s->peer->seed);

        /* both lists are sorted: whatever existed before and is missing now is gone */
        for (size_t i = 0; i < s->n_exist; ++i) {
                while (j < n_new && s->exist_new[j] < s->exist[i])
                        ++j;
                if (j < n_new && s->exist_new[j] == s->exist[i])
                        continue;
                s->hist[s->exist[i]].state = HIST_GONE;
        }

        tmp = s->exist;
        tcap = s->cap_exist;
        s->exist = s->exist_new;
        s->cap_exist = s->cap_exist_new;
        s->n_exist = n_new;
        s->exist_new = tmp;
        s->cap_exist_new = tcap;
}

/*
 * Walk the model after a command: discover new nodes, notice destroyed and
 * freed ones, and record who holds what. The shadow's own bookkeeping for
 * the command runs after this, then scan_check().
 */
static void scan_nodes(Ctx *c) {
        for (size_t i = 0; i < c->n_live; ++i) {
                Rec *r = c->recs[c->live[i]];

                r->seen = false;
                r->owner_seen = false;
                r->has = 0;
                r->det = 0;
                r->dq = 0;
                r->dq_det = 0;
                memset(r->user, 0, sizeof(r->user));
                memset(r->linked_id, 0xff, sizeof(r->linked_id));
        }

        for (unsigned i = 0; i < c->n_slots; ++i)
                if (!c->slots[i].down)
                        scan_slot(c, &c->slots[i]);

        for (size_t k = 0; k < c->n_live;) {
                Rec *r = c->recs[c->live[k]];

                if (r->seen) {
                        ++k;
                        continue;
                }
                /* freed: only a destroyed node can lose every handle */
                if (!r->destroyed)
                        rec_destroyed(c, r);
                r->node = NULL;
                r->owner_handle_gone = true;
                r->owner_gone = true;
                for (unsigned i = 0; i < c->n_slots; ++i)
                        if (r->dstate[i] == DS_PENDING || r->dstate[i] == DS_MAYBE)
                                r->dstate[i] = DS_EXEMPT;
                c->live[k] = c->live[--c->n_live];
        }

        for (size_t k = 0; k < c->n_live; ++k) {
                Rec *r = c->recs[c->live[k]];
                Node *n = r->node;

                if (n->owner)
                        CHECK(c, n->owner->id == r->owner_peer, "%s changed owner", rec_str(r));
                if (!r->owner_seen) {
                        CHECK(c, !n->owner_handle, "%s: owner handle not in the owner's table",
                              rec_str(r));
                        r->owner_handle_gone = true;
                } else {
                        CHECK(c, !r->owner_handle_gone, "%s: owner handle is back", rec_str(r));
                }
                CHECK(c, n->destroyed || !r->destroyed, "%s came back to life", rec_str(r));
                if (n->destroyed && !r->destroyed)
                        rec_destroyed(c, r);
        }
}

static void check_queue(Ctx *c, Slot *s) {
        size_t k = s->pend_head;
        QueueEntry *e;

        list_for_each_entry(e, &s->peer->queue.entries, link) {
                if (e->type == QUEUE_ENTRY_DATA) {
                        Message *m = container_of(e, Message, entry);

                        while (k < s->n_pend && s->pend[k].state != PEND_QUEUED)
                                ++k;
                        CHECK(c, k < s->n_pend, "P%u: queued message to %s that the shadow does "
                              "not expect", s->idx, rec_str(rec_find(c, m->node)));
                        CHECK(c, s->pend[k].msg == m, "P%u: queued message to %s is not the next "
                              "one expected (send #%" PRIu64 " to %s)", s->idx,
                              rec_str(rec_find(c, m->node)), s->pend[k].serial,
                              rec_str(c->recs[s->pend[k].rec]));
                        ++k;
                } else if (e->type == QUEUE_ENTRY_NODE_DESTROY) {
                        Handle *h = container_of(e, Handle, destroy);
                        Rec *r = rec_find(c, h->node);

                        /* a detached handle's entry goes with it (see Rec.life_id) */
                        CHECK(c, r && (handle_is_detached(h) || r->dstate[s->idx] == DS_PENDING),
                              "P%u: NODE_DESTROY of %s queued (state %u)", s->idx, rec_str(r),
                              r ? r->dstate[s->idx] : 0);
                } else {
                        Node *n = container_of(e, Node, release);
                        Rec *r = rec_find(c, n);

                        CHECK(c, e->type == QUEUE_ENTRY_NODE_RELEASE, "entry type %u", e->type);
                        CHECK(c, r && r->owner_slot == s->idx && !r->destroyed,
                              "P%u: NODE_RELEASE of %s queued", s->idx, rec_str(r));
                }
        }
        while (k < s->n_pend && s->pend[k].state != PEND_QUEUED)
                ++k;
        CHECK(c, k == s->n_pend, "P%u: message (send #%" PRIu64 ") missing from the queue",
              s->idx, s->pend[k < s->n_pend ? k : 0].serial);
        while (s->pend_head < s->n_pend && s->pend[s->pend_head].state != PEND_QUEUED)
                ++s->pend_head;
}

static void check_destroy_state(Ctx *c, Rec *r) {
        for (unsigned i = 0; i < c->n_slots; ++i) {
                uint32_t bit = 1U << i;
                uint8_t *st = &r->dstate[i];

                if (c->slots[i].down)
                        continue;
                if ((r->has & bit) && r->linked_id[i] != r->life_id[i]) {
                        /* a detached handle came back: its entry (if any) is this ID's now */
                        r->life_id[i] = r->linked_id[i];
                        r->had_user &= ~bit;
                        *st = (r->dq & bit) ? DS_PENDING : DS_NONE;
                }
                if ((r->has & bit) && r->user[i])
                        r->had_user |= bit;
                if (*st == DS_MAYBE)
                        *st = (r->dq & bit) ? DS_PENDING : DS_EXEMPT;
                if (*st == DS_PENDING) {
                        if (!(r->has & bit))
                                *st = DS_EXEMPT;
                        else if (!r->user[i] && (r->had_user & bit))
                                *st = DS_EXEMPT;
                        else
                                CHECK(c, r->dq & bit, "P%u holds %s (n_user %" PRIu64 ") but "
                                      "its NODE_DESTROY is not queued", i, rec_str(r), r->user[i]);
                }
                if (*st != DS_PENDING)
                        CHECK(c, !(r->dq & bit), "P%u: NODE_DESTROY of %s queued in state %u",
                              i, rec_str(r), *st);
        }
}

static void count_entries(Ctx *c, uint64_t serial) {
        const Sent *t = &c->sent[serial];

        for (uint64_t j = 0; j < t->n_handles; ++j)
                if (t->handle_rec[j] != NONE)
                        ++c->recs[t->handle_rec[j]]->shadow_refs;
}

/*
 * A node's count (docs/model.md §3, node.h n_user_refs) from the shadow alone: the user
 * references every peer holds on it, plus one per handle entry of a message
 * queued to, or a seed of, a peer.
 */
static void scan_refs(Ctx *c) {
        for (size_t k = 0; k < c->n_live; ++k)
                c->recs[c->live[k]]->shadow_refs = 0;
        for (unsigned i = 0; i < c->n_slots; ++i) {
                Slot *s = &c->slots[i];

                if (s->down)
                        continue;
                for (size_t k = 0; k < s->n_held; ++k) {
                        Rec *r = rec_of_id(c, s, s->held[k].id);

                        CHECK(c, r, "P%u holds ID %" PRIx64 " of no node", i, s->held[k].id);
                        r->shadow_refs += s->held[k].n;
                }
                for (size_t k = s->pend_head; k < s->n_pend; ++k)
                        if (s->pend[k].state == PEND_QUEUED)
                                count_entries(c, s->pend[k].serial);
                if (s->seed != NONE)
                        count_entries(c, s->seed);
        }
        for (size_t k = 0; k < c->n_live; ++k) {
                Rec *r = c->recs[c->live[k]];

                CHECK(c, r->shadow_refs == r->node->n_user_refs,
                      "%s has %" PRIu64 " references, the shadow counts %" PRIu64, rec_str(r),
                      r->node->n_user_refs, r->shadow_refs);
        }
}

/* compare the shadow with the model after a command and its bookkeeping */
static void scan_check(Ctx *c) {
        for (unsigned i = 0; i < c->n_slots; ++i) {
                Slot *s = &c->slots[i];
                size_t n_user = 0;

                if (s->down) {
                        CHECK(c, !s->n_held && !s->n_pub, "P%u down with shadow state", i);
                        continue;
                }
                for (RBNode *rb = rbtree_first(&s->peer->handles_by_id); rb; rb = rbnode_next(rb)) {
                        Handle *h = container_of(rb, Handle, id_node);

                        CHECK(c, held_get(s, h->id) == h->n_user, "P%u: ID %" PRIx64 " (%s) has %"
                              PRIu64 " user references, expected %" PRIu64, i, h->id,
                              rec_str(rec_find(c, h->node)), h->n_user, held_get(s, h->id));
                        n_user += !!h->n_user;
                }
                CHECK(c, n_user == s->n_held, "P%u holds %zu IDs, expected %zu", i, n_user,
                      s->n_held);
        }

        for (size_t k = 0; k < c->n_live; ++k) {
                Rec *r = c->recs[c->live[k]];

                if (r->destroyed && !r->owner_gone &&
                    (!owner_alive(c, r) || r->owner_handle_gone ||
                     !held_get(&c->slots[r->owner_slot], r->owner_id)))
                        r->owner_gone = true;

                if (r->destroyed) {
                        check_destroy_state(c, r);
                } else if (r->node->n_user_refs > 1) {
                        r->release_expected = true;
                } else if (r->release_expected) {
                        CHECK(c, queue_entry_is_queued(&r->node->release),
                              "%s fell back to its pin, but no NODE_RELEASE is queued",
                              rec_str(r));
                }
        }

        for (unsigned i = 0; i < c->n_slots; ++i) {
                Slot *s = &c->slots[i];
                uint64_t n_published = 0;

                for (size_t k = s->pend_head; k < s->n_pend; ++k)
                        if (s->pend[k].state == PEND_QUEUED && c->recs[s->pend[k].rec]->owner_gone)
                                s->pend[k].state = PEND_DROPPED;
                if (s->down)
                        continue;

                check_queue(c, s);

                for (RBNode *rb = rbtree_first(&s->peer->pool.busy); rb; rb = rbnode_next(rb))
                        n_published += container_of(rb, PoolSlice, offset_node)->published;
                CHECK(c, n_published == s->n_pub, "P%u has %" PRIu64 " received slices, "
                      "expected %zu", i, n_published, s->n_pub);
                for (size_t k = 0; k < s->n_pub; ++k) {
                        PoolSlice *sl = pool_find(&s->peer->pool, s->pub[k]);

                        CHECK(c, sl && sl->published, "P%u: received slice %" PRIx64 " is gone",
                              i, s->pub[k]);
                }
                CHECK(c, (s->seed != NONE) == !!s->peer->seed, "P%u: seed %s, expected %s", i,
                      s->peer->seed ? "set" : "unset", s->seed != NONE ? "set" : "unset");
        }
        scan_refs(c);
}

/* remember who holds each live node of @s before a command that may destroy it */
static void snapshot_owned(Ctx *c, Slot *s) {
        for (size_t k = 0; k < c->n_live; ++k) {
                Rec *r = c->recs[c->live[k]];
                Handle *h;

                if (r->owner_slot != s->idx || r->owner_peer != s->peer->id || r->destroyed)
                        continue;
                r->snap_step = c->step;
                r->snap_any = r->snap_user = 0;
                list_for_each_entry(h, &r->node->handles, node_link) {
                        Slot *hs = slot_of_peer(c, h->holder);

                        CHECK(c, hs, "handle of %s held by an unknown peer", rec_str(r));
                        r->snap_any |= 1U << hs->idx;
                        if (h->n_user)
                                r->snap_user |= 1U << hs->idx;
                }
        }
}

/* ---- ID choice ---- */

static const uint64_t owner_ids[] = { 0, 8, 0x100 };

#define NOISE 350U              /* per mille of stale, foreign and garbage IDs */
#define NOISE_SEND 80U          /* the same for SEND, which names up to 9 IDs */

static uint64_t pick_garbage(Ctx *c) {
        switch (rnd_below(c, 6)) {
        case 0: return ((1 + rnd_below(c, 40)) << 3) | 3;
        case 1: return ((1 + rnd_below(c, 40)) << 3) | 1;
        case 2: return ((rnd_below(c, 40)) << 3) | 2;   /* REMOTE without MANAGED */
        case 3: return BUS1_HANDLE_INVALID;
        case 4: return 0x100 | 2;
        default: return (rnd(c) << 3) | 3;
        }
}

/* an ID for @s: mostly owner-chosen or held ones, with @noise per mille of the rest */
static uint64_t pick_id(Ctx *c, Slot *s, unsigned noise) {
        uint64_t k = rnd_below(c, 1000) < noise ? 30 + rnd_below(c, 70) : rnd_below(c, 75);

        if (k < 30)
                return owner_ids[rnd_below(c, 3)];
        if (k < 75 && s->n_held)
                return s->held[rnd_below(c, s->n_held)].id;
        if (k < 87 && s->max_n) {
                uint64_t n = 1 + rnd_below(c, s->max_n);

                if (n < s->cap_hist && s->hist[n].state != HIST_UNSEEN)
                        return s->hist[n].id;
                return (n << 3) | 1 | (rnd(c) & 2);
        }
        if (k < 93) {
                Slot *o = &c->slots[rnd_below(c, c->n_slots)];

                if (!o->down && o->n_held)
                        return o->held[rnd_below(c, o->n_held)].id;
        }
        return pick_garbage(c);
}

/* how resolving @id for @s goes: 1 held (rec, NULL if created by this command), 0 creates, <0 */
static int sim_resolve(Ctx *c, Slot *s, uint64_t id, const uint64_t *created, size_t n_created,
                       Rec **recp) {
        *recp = NULL;
        for (size_t k = 0; k < n_created; ++k)
                if (created[k] == id)
                        return 1;
        if (held_get(s, id)) {
                *recp = rec_of_id(c, s, id);
                CHECK(c, *recp, "P%u holds ID %" PRIx64 " of no known node", s->idx, id);
                return 1;
        }
        if (handle_id_is_new(id))
                return 0;
        return -ENXIO;
}

/*
 * The per-UID quota as user.h documents it, evaluated on the accounting the
 * model holds before the command (bus_validate() checks that accounting):
 * @extra counts what this command charged the receiving user before, @held
 * what the receiving peer holds. Return: 0, -EDQUOT or -EMSGSIZE.
 */
static int user_predict(Peer *receiver, uint32_t actor, const uint64_t held[_USER_N],
                        const uint64_t charge[_USER_N], const uint64_t extra[_USER_N]) {
        User *u = receiver->user;

        for (unsigned r = 0; r < _USER_N; ++r) {
                uint64_t ch = charge[r], used = u->used[r] + extra[r], remaining, v;

                if (!ch)
                        continue;
                if (ch > u->limits.max[r])
                        return -EMSGSIZE;
                remaining = u->limits.max[r] > used ? u->limits.max[r] - used : 0;
                if (actor != u->uid) {
                        uint64_t share = user_share_of(u, actor, r);
                        uint64_t n = u->n_actors[r] + (share ? 0 : 1);

                        if (__builtin_add_overflow(ch, share, &v) ||
                            __builtin_mul_overflow(v, n + 1, &v) || v - share > remaining)
                                return -EDQUOT;
                } else if (ch > remaining) {
                        return -EDQUOT;
                }
                if (__builtin_add_overflow(ch, held[r], &v) ||
                    __builtin_mul_overflow(v, 2, &v) || v - held[r] > remaining)
                        return -EDQUOT;
        }
        return 0;
}

/* whether @s may create its (@n_created + 1)th node in this command */
static bool create_refused(Slot *s, uint64_t n_created) {
        Peer *p = s->peer;
        uint64_t held[_USER_N] = { [USER_HANDLES] = p->n_handle_refs + n_created };
        uint64_t charge[_USER_N] = { [USER_HANDLES] = 1 };
        uint64_t extra[_USER_N] = { [USER_HANDLES] = n_created };

        return p->n_handle_refs + n_created + 1 > s->limits.max_handles ||
               user_predict(p, p->user->uid, held, charge, extra) < 0;
}

/* ---- SEND ---- */

typedef struct SendArgs {
        uint64_t flags;
        uint64_t dsts[DSTS_MAX];
        uint64_t n_dsts;
        bool errors;
        uint64_t handles[ATTACH_MAX];
        uint64_t n_handles;
        uint64_t n_fds;
        uint64_t len;
        unsigned n_vecs;
} SendArgs;

typedef struct Stage {
        uint64_t n, bytes, handles, fds;
        bool uncertain;
} Stage;

typedef struct SendPlan {
        Rec *hrec[ATTACH_MAX];
        Rec *drec[DSTS_MAX];
        int out[DSTS_MAX];
        int err[DSTS_MAX];
        uint64_t new_ids[NEW_MAX];
        size_t n_new;
        uint64_t n_valid;
        Stage st[SLOTS_MAX];
        uint32_t users_staged[SLOTS_MAX];
        unsigned n_users_staged;
} SendPlan;

static uint64_t send_secctx(Slot *sender, Slot *receiver) {
        if ((receiver->peer_flags & BUS1_PEER_FLAG_WANT_SECCTX) && sender->peer->secctx)
                return sender->peer->n_secctx;
        return 0;
}

/* what staging a message to @R does: OUT_OK, OUT_ERR (*errp) or OUT_MAYBE */
static int stage_predict(Ctx *c, Slot *s, Slot *R, const SendArgs *a, SendPlan *pl, int *errp) {
        Stage *st = &pl->st[R->idx];
        Peer *p = R->peer;
        uint64_t size, refs;

        size = slice_size(a->len, a->n_handles, a->n_fds, send_secctx(s, R));
        if (size > p->pool.max_size) {
                *errp = EMSGSIZE;
                return OUT_ERR;
        }

        /* the receiving user's quota comes first; EMSGSIZE if it can never fit */
        {
                uint64_t charge[_USER_N] = { 1, pl->n_valid, size, a->n_fds };
                uint64_t held[_USER_N] = {
                        p->pool.n_busy,
                        p->n_handle_refs + (R == s ? pl->n_new : 0),
                        p->pool.busy_bytes,
                        p->n_inflight_fds,
                };
                uint64_t extra[_USER_N] = {
                        [USER_HANDLES] = R->uid == s->uid ? pl->n_new : 0,
                };
                bool staged = false, never = false;

                for (unsigned k = 0; k < pl->n_users_staged; ++k)
                        staged |= pl->users_staged[k] == R->uid;
                for (unsigned k = 0; k < _USER_N; ++k)
                        never |= charge[k] > p->user->limits.max[k];
                if (never) {
                        *errp = EMSGSIZE;
                        return OUT_ERR;
                }
                if (staged || st->uncertain) {
                        /* earlier slices of this send changed what the user holds */
                        st->uncertain = true;
                        return OUT_MAYBE;
                }
                if (user_predict(p, s->uid, held, charge, extra) < 0) {
                        *errp = EDQUOT;
                        return OUT_ERR;
                }
        }

        refs = p->n_handle_refs + (R == s ? pl->n_new : 0);
        if (p->pool.n_busy + st->n + 1 > R->limits.max_slices ||
            p->pool.busy_bytes + st->bytes + size > R->limits.max_inflight_bytes ||
            /* a charge of zero always fits, even above a lowered limit */
            (pl->n_valid && refs + st->handles + pl->n_valid > R->limits.max_handles) ||
            (a->n_fds && p->n_inflight_fds + st->fds + a->n_fds > R->limits.max_inflight_fds) ||
            (a->n_fds && c->bus.n_inflight_fds + a->n_fds > c->bus.fd_budget)) {
                *errp = EDQUOT;
                return OUT_ERR;
        }
        if (st->n) {
                /* where earlier slices of this send went is the allocator's business */
                st->uncertain = true;
                return OUT_MAYBE;
        }
        if (pool_largest_free(&p->pool) < size) {
                *errp = EXFULL;
                return OUT_ERR;
        }
        pl->users_staged[pl->n_users_staged++] = R->uid;
        st->n += 1;
        st->bytes += size;
        st->handles += pl->n_valid;
        st->fds += a->n_fds;
        return OUT_OK;
}

static uint32_t send_predict(Ctx *c, Slot *s, const SendArgs *a, SendPlan *pl) {
        uint32_t allowed = 0;
        int r, err;

        if (s->down)
                return ebit(ESHUTDOWN);
        /* the kernel's order: counts, the user's bound, handles, SEED's rules, destinations */
        if (a->n_fds > BUS1_FD_MAX)
                return ebit(EMSGSIZE);
        if (a->n_dsts > s->peer->user->limits.max[USER_HANDLES])
                return ebit(EINVAL);

        for (uint64_t j = 0; j < a->n_handles; ++j) {
                r = sim_resolve(c, s, a->handles[j], pl->new_ids, pl->n_new, &pl->hrec[j]);
                if (r < 0)
                        return ebit(-r);
                if (r == 0) {
                        if (create_refused(s, pl->n_new))
                                return ebit(EDQUOT);
                        pl->new_ids[pl->n_new++] = a->handles[j];
                }
        }
        if ((a->flags & BUS1_SEND_FLAG_SEED) &&
            (a->n_dsts || (a->flags & BUS1_SEND_FLAG_CONTINUE)))
                return ebit(EINVAL);
        for (uint64_t i = 0; i < a->n_dsts; ++i) {
                r = sim_resolve(c, s, a->dsts[i], pl->new_ids, pl->n_new, &pl->drec[i]);
                if (r < 0)
                        return ebit(-r);
                if (r == 0) {
                        if (create_refused(s, pl->n_new))
                                return ebit(EDQUOT);
                        pl->new_ids[pl->n_new++] = a->dsts[i];
                }
                for (uint64_t k = 0; k < i; ++k)
                        if (a->dsts[k] == a->dsts[i])
                                return ebit(ENOTUNIQ);
        }

        pl->n_valid = 0;
        for (uint64_t j = 0; j < a->n_handles; ++j)
                pl->n_valid += !pl->hrec[j] || !pl->hrec[j]->destroyed;

        if (a->flags & BUS1_SEND_FLAG_SEED) {
                r = stage_predict(c, s, s, a, pl, &err);
                if (r == OUT_OK)
                        return ebit(0);
                if (r == OUT_ERR)
                        return ebit(err);
                return ebit(0) | ebit(EDQUOT) | ebit(EXFULL);
        }

        for (uint64_t i = 0; i < a->n_dsts; ++i) {
                Rec *d = pl->drec[i];

                err = 0;
                if (d && !owner_alive(c, d)) {
                        r = OUT_ERR;
                        err = ESHUTDOWN;
                } else if (d && d->destroyed) {
                        r = OUT_ERR;
                        err = EHOSTUNREACH;
                } else {
                        r = stage_predict(c, s, d ? &c->slots[d->owner_slot] : s, a, pl, &err);
                }
                pl->out[i] = r;
                pl->err[i] = err;
                if (r == OUT_ERR &&
                    (err == EMSGSIZE || !(a->flags & BUS1_SEND_FLAG_CONTINUE)))
                        return allowed | ebit(err);
                if (r == OUT_MAYBE && !(a->flags & BUS1_SEND_FLAG_CONTINUE))
                        allowed |= ebit(EDQUOT) | ebit(EXFULL);
        }
        return allowed | ebit(0);
}

static FdList *make_fds(Ctx *c, uint64_t n) {
        int *fds = calloc(n, sizeof(int));
        FdList *list = NULL;

        assert_non_null(fds);
        for (uint64_t i = 0; i < n; ++i) {
                if (n < 8 && chance(c, 500))
                        fds[i] = eventfd(0, EFD_CLOEXEC);
                else
                        fds[i] = fcntl(c->base_fd, F_DUPFD_CLOEXEC, 3);
                CHECK(c, fds[i] >= 0, "cannot create fd: %m");
        }
        CHECK(c, fdlist_new(&list, fds, n) == 0, "fdlist_new");
        free(fds);
        return list;
}

/* the DATA entries a send queued, by receiver, matched with its destinations */
static void send_collect(Ctx *c, Slot *s, const SendArgs *a, SendPlan *pl, const uint64_t *errors,
                         uint64_t serial) {
        uint64_t seq = c->clock_before + 1;
        bool matched[DSTS_MAX] = {};
        uint64_t drec[DSTS_MAX];

        for (uint64_t i = 0; i < a->n_dsts; ++i) {
                Rec *d = pl->drec[i] ? pl->drec[i] : rec_of_id(c, s, a->dsts[i]);

                CHECK(c, d, "destination %" PRIx64 " of no known node", a->dsts[i]);
                drec[i] = d->idx;
        }

        for (unsigned k = 0; k < c->n_slots; ++k) {
                Slot *R = &c->slots[k];
                QueueEntry *e, *first = NULL;

                if (R->down)
                        continue;
                for (e = list_entry(list_last(&R->peer->queue.entries), QueueEntry, link);
                     e && e->seq == seq;
                     e = list_entry(list_prev(&R->peer->queue.entries, &e->link), QueueEntry, link))
                        first = e;
                for (e = first; e; e = list_entry(list_next(&R->peer->queue.entries, &e->link),
                                                  QueueEntry, link)) {
                        Message *m = container_of(e, Message, entry);
                        Rec *d;
                        uint64_t i;

                        CHECK(c, e->type == QUEUE_ENTRY_DATA, "send queued a notification on P%u",
                              k);
                        d = rec_find(c, m->node);
                        for (i = 0; i < a->n_dsts; ++i)
                                if (!matched[i] && drec[i] == (d ? d->idx : NONE))
                                        break;
                        CHECK(c, i < a->n_dsts, "P%u got a message to %s, not a destination", k,
                              rec_str(d));
                        CHECK(c, d->owner_slot == k, "message to %s queued on P%u", rec_str(d), k);
                        matched[i] = true;
                        R->pend = xgrow(R->pend, &R->cap_pend, R->n_pend + 1, sizeof(*R->pend));
                        R->pend[R->n_pend++] = (Pend){
                                .serial = serial,
                                .rec = d->idx,
                                .msg = m,
                                .secctx = !!send_secctx(s, R),
                        };
                        ++c->stats->delivered;
                }
        }

        for (uint64_t i = 0; i < a->n_dsts; ++i) {
                switch (pl->out[i]) {
                case OUT_OK:
                        CHECK(c, matched[i], "destination %" PRIu64 " (%s) not delivered", i,
                              rec_str(c->recs[drec[i]]));
                        CHECK(c, !errors || !errors[i], "errors[%" PRIu64 "] = %s for a delivery",
                              i, errname((int)errors[i]));
                        break;
                case OUT_ERR:
                        CHECK(c, !matched[i], "destination %" PRIu64 " delivered despite %s", i,
                              errname(pl->err[i]));
                        CHECK(c, !errors || errors[i] == (uint64_t)pl->err[i],
                              "errors[%" PRIu64 "] = %s, expected %s", i,
                              errname((int)errors[i]), errname(pl->err[i]));
                        break;
                default:
                        CHECK(c, matched[i] || (a->flags & BUS1_SEND_FLAG_CONTINUE),
                              "destination %" PRIu64 " not delivered", i);
                        if (errors)
                                CHECK(c, (matched[i] && !errors[i]) ||
                                         (!matched[i] && (errors[i] == EDQUOT ||
                                                          errors[i] == EXFULL)),
                                      "errors[%" PRIu64 "] = %s, delivered %d", i,
                                      errname((int)errors[i]), matched[i]);
                        break;
                }
        }
}

static int do_send(Ctx *c, unsigned si, const SendArgs *a) {
        Slot *s = &c->slots[si];
        SendPlan pl = {};
        uint64_t errors[DSTS_MAX];
        struct iovec vecs[3];
        char dbuf[128], hbuf[128];
        FdList *fds = NULL;
        uint64_t serial = c->n_sent;
        uint32_t expected;
        TxArgs args;
        uint64_t at = 0;
        int r;

        ids_str(dbuf, sizeof(dbuf), a->dsts, a->n_dsts);
        ids_str(hbuf, sizeof(hbuf), a->handles, a->n_handles);
        op_begin(c, OP_SEND, si, "flags=%" PRIx64 " dst=[%s] handles=[%s] fds=%" PRIu64
                 " len=%" PRIu64 " vecs=%u%s", a->flags, dbuf, hbuf, a->n_fds, a->len, a->n_vecs,
                 a->errors ? " errors" : "");

        expected = send_predict(c, s, a, &pl);
        memcpy(c->new_ids, pl.new_ids, sizeof(pl.new_ids));
        c->n_new_ids = pl.n_new;

        for (uint64_t i = 0; i < a->len; ++i)
                c->buf[i] = pattern(serial, i);
        for (unsigned v = 0; v < a->n_vecs; ++v) {
                uint64_t part = v + 1 == a->n_vecs ? a->len - at : (a->len - at) / 2;

                vecs[v] = (struct iovec){ .iov_base = c->buf + at, .iov_len = part };
                at += part;
        }
        if (a->n_fds)
                fds = make_fds(c, a->n_fds);
        for (uint64_t i = 0; i < DSTS_MAX; ++i)
                errors[i] = 0xdead;

        args = (TxArgs){
                .flags = a->flags,
                .destinations = a->dsts,
                .n_destinations = a->n_dsts,
                .errors = a->errors ? errors : NULL,
                .vecs = vecs,
                .n_vecs = a->n_vecs,
                .handles = a->handles,
                .n_handles = a->n_handles,
                .fds = fds,
        };
        r = peer_send(s->peer, &args);
        if (r == 0 && a->errors && a->n_dsts) {
                char ebuf[128];
                size_t n = 0;

                for (uint64_t i = 0; i < a->n_dsts; ++i)
                        n += snprintf(ebuf + n, sizeof(ebuf) - n, "%s%s", i ? "," : "",
                                      errname((int)errors[i]));
                op_note(c, " errors=[%s]", ebuf);
        }
        op_result(c, r, expected);

        if (r == 0) {
                Sent *t;

                c->sent = xgrow(c->sent, &c->cap_sent, c->n_sent + 1, sizeof(*c->sent));
                t = &c->sent[c->n_sent++];
                *t = (Sent){
                        .sender = si,
                        .creds = s->peer->creds,
                        .len = a->len,
                        .n_handles = a->n_handles,
                        .n_fds = a->n_fds,
                        .fds = fds,
                        .seed_secctx = !!send_secctx(s, s),
                };
                if (s->peer->secctx) {
                        t->n_secctx = s->peer->n_secctx;
                        memcpy(t->secctx, s->peer->secctx, t->n_secctx);
                }
                for (uint64_t j = 0; j < a->n_handles; ++j) {
                        Rec *h = pl.hrec[j] ? pl.hrec[j] : rec_of_id(c, s, a->handles[j]);

                        CHECK(c, h, "attached ID %" PRIx64 " of no known node", a->handles[j]);
                        t->handle_rec[j] = h->destroyed ? NONE : h->idx;
                }
                for (size_t k = 0; k < pl.n_new; ++k)
                        held_add(c, s, pl.new_ids[k], 1);

                if (a->flags & BUS1_SEND_FLAG_SEED)
                        s->seed = serial;
                else
                        send_collect(c, s, a, &pl, a->errors ? errors : NULL, serial);
        }
        fdlist_unref(fds);
        scan_check(c);
        return r;
}

static void gen_send(Ctx *c, Slot *s, SendArgs *a) {
        uint64_t pool = c->bus.pool_size;
        uint64_t k;

        *a = (SendArgs){};
        if (chance(c, 400))
                a->flags |= BUS1_SEND_FLAG_CONTINUE;
        if (chance(c, 60)) {
                a->flags |= BUS1_SEND_FLAG_SEED;
                if (chance(c, 850))
                        a->flags &= ~BUS1_SEND_FLAG_CONTINUE;
        }

        k = rnd_below(c, 100);
        if ((a->flags & BUS1_SEND_FLAG_SEED) && chance(c, 850))
                a->n_dsts = 0;
        else
                a->n_dsts = k < 8 ? 0 : k < 55 ? 1 : 2 + rnd_below(c, DSTS_MAX - 1);
        for (uint64_t i = 0; i < a->n_dsts; ++i)
                a->dsts[i] = pick_id(c, s, NOISE_SEND);

        a->n_handles = chance(c, 450) ? 0 : 1 + rnd_below(c, ATTACH_MAX);
        for (uint64_t j = 0; j < a->n_handles; ++j)
                a->handles[j] = pick_id(c, s, NOISE_SEND);

        if (chance(c, 3))
                a->n_fds = BUS1_FD_MAX + 1;
        else if (chance(c, 120))
                a->n_fds = 1 + rnd_below(c, 3);

        a->errors = chance(c, 500);

        k = rnd_below(c, 100);
        if (k < 25)
                a->len = rnd_below(c, 8);
        else if (k < 80)
                a->len = 8 + rnd_below(c, 249);
        else if (k < 95)
                a->len = 257 + rnd_below(c, pool <= 65536 ? pool / 2 : 2800);
        else if (k < 99)
                a->len = pool - 64 + rnd_below(c, 128);
        else
                a->len = rnd_below(c, pool / 2 + 1);
        if (a->len > c->buf_size)
                a->len = c->buf_size;
        a->n_vecs = a->len ? 1 + (unsigned)rnd_below(c, 3) : (unsigned)rnd_below(c, 2);
}

/* ---- RECV ---- */

typedef struct RecvArgs {
        uint64_t flags;
        uint64_t max_offset;
} RecvArgs;

static size_t pend_next(Slot *s, size_t from) {
        while (from < s->n_pend && s->pend[from].state != PEND_QUEUED)
                ++from;
        return from;
}

/* check a received (or peeked) DATA entry or seed against what was sent */
static void verify_data(Ctx *c, Slot *s, const PeerRecv *r, uint64_t serial, size_t pi,
                        uint64_t flags) {
        const Sent *t = &c->sent[serial];
        Pool *pool = &s->peer->pool;
        bool peek = flags & BUS1_RECV_FLAG_PEEK;
        bool install = flags & BUS1_RECV_FLAG_INSTALL_FDS;
        bool seed = pi == SIZE_MAX;
        bool secctx = seed ? t->seed_secctx : s->pend[pi].secctx;
        uint64_t n_secctx = secctx ? t->n_secctx : 0, size, at;
        PoolSlice *sl;

        CHECK(c, r->type == BUS1_MSG_DATA, "type %" PRIu64 ", expected DATA", r->type);
        if (!seed) {
                const Rec *d = c->recs[s->pend[pi].rec];
                size_t next = pend_next(s, pi + 1);
                bool cont = next < s->n_pend && s->pend[next].serial == serial;

                CHECK(c, r->destination == d->owner_id, "destination %" PRIx64 ", expected %s",
                      r->destination, rec_str(d));
                CHECK(c, !!(r->flags & BUS1_MSG_FLAG_CONTINUE) == cont,
                      "CONTINUE %s, but the next entry is %sof the same send",
                      (r->flags & BUS1_MSG_FLAG_CONTINUE) ? "set" : "clear", cont ? "" : "not ");
        } else {
                CHECK(c, !(r->flags & BUS1_MSG_FLAG_CONTINUE), "seed with CONTINUE");
        }
        CHECK(c, !(r->flags & ~(uint64_t)(BUS1_MSG_FLAG_CONTINUE | BUS1_MSG_FLAG_HAS_SECCTX)),
              "flags %" PRIx64, r->flags);
        CHECK(c, !memcmp(&r->creds, &t->creds, sizeof(t->creds)),
              "credentials %u/%u/%u/%u, sender's %u/%u/%u/%u", r->creds.uid, r->creds.gid,
              r->creds.pid, r->creds.tid, t->creds.uid, t->creds.gid, t->creds.pid, t->creds.tid);
        CHECK(c, r->n_bytes == t->len && r->n_handles == t->n_handles,
              "%" PRIu64 " bytes %" PRIu64 " handles, sent %" PRIu64 "/%" PRIu64, r->n_bytes,
              r->n_handles, t->len, t->n_handles);
        CHECK(c, r->n_secctx == n_secctx && !!(r->flags & BUS1_MSG_FLAG_HAS_SECCTX) == secctx,
              "n_secctx %" PRIu64 " flags %" PRIx64 ", expected %" PRIu64, r->n_secctx, r->flags,
              n_secctx);

        size = slice_size(t->len, t->n_handles, t->n_fds, n_secctx);
        CHECK(c, r->offset % 8 == 0 && r->offset + size <= pool->max_size,
              "offset %" PRIx64 " size %" PRIu64, r->offset, size);
        sl = pool_find(pool, r->offset);
        CHECK(c, sl && sl->busy && sl->size == size && sl->published == !peek,
              "slice at %" PRIx64 ": size %" PRIu64 ", expected %" PRIu64 ", published %d",
              r->offset, sl ? sl->size : 0, size, sl ? sl->published : -1);

        for (uint64_t i = 0; i < t->len; ++i)
                CHECK(c, pool->base[r->offset + i] == pattern(serial, i),
                      "payload byte %" PRIu64 " of send #%" PRIu64 " corrupt", i, serial);

        for (uint64_t j = 0; j < t->n_handles; ++j) {
                uint64_t id;
                Rec *h;

                memcpy(&id, pool->base + r->offset + align8(t->len) + 8 * j, sizeof(id));
                if (t->handle_rec[j] == NONE) {
                        CHECK(c, id == BUS1_HANDLE_INVALID, "handle entry %" PRIu64 " = %" PRIx64
                              ", expected INVALID (destroyed before the send)", j, id);
                        continue;
                }
                h = rec_of_id(c, s, id);
                CHECK(c, h && h->idx == t->handle_rec[j], "handle entry %" PRIu64 " = %" PRIx64
                      " names %s, expected %s (send #%" PRIu64 " by P%u, %s; ID history %u, "
                      "holders %x/%x)", j, id, rec_str(h), rec_str(c->recs[t->handle_rec[j]]),
                      serial, t->sender, peek ? "peek" : "dequeued",
                      handle_id_is_managed(id) && (id >> 3) < s->cap_hist ?
                      s->hist[id >> 3].state : 9, c->recs[t->handle_rec[j]]->has,
                      c->recs[t->handle_rec[j]]->det);
                if (h->owner_slot == s->idx && h->owner_peer == s->peer->id &&
                    !h->owner_handle_gone)
                        CHECK(c, id == h->owner_id, "owner got its own %s as %" PRIx64,
                              rec_str(h), id);
                else if (h->owner_slot == s->idx && h->owner_peer == s->peer->id)
                        CHECK(c, handle_id_is_managed(id) && !(id & BUS1_HANDLE_FLAG_REMOTE),
                              "owner got its own %s back as %" PRIx64, rec_str(h), id);
                else
                        CHECK(c, handle_id_is_managed(id) && (id & BUS1_HANDLE_FLAG_REMOTE),
                              "remote handle entry %" PRIx64, id);
        }

        if (install && !peek) {
                CHECK(c, r->n_fds == t->n_fds, "n_fds %" PRIu64 ", sent %" PRIu64, r->n_fds,
                      t->n_fds);
                if (t->n_fds) {
                        CHECK(c, r->fds == t->fds && r->fds->n_fds == t->n_fds,
                              "installed fds are not the ones sent");
                        for (size_t i = 0; i < r->fds->n_fds; ++i)
                                CHECK(c, fcntl(r->fds->fds[i], F_GETFD) >= 0,
                                      "installed fd %d invalid", r->fds->fds[i]);
                        c->stats->fds_installed += t->n_fds;
                } else {
                        CHECK(c, !r->fds, "fds without fds sent");
                }
        } else {
                CHECK(c, !r->fds, "fds handed over without a dequeuing INSTALL_FDS");
                CHECK(c, install ? (r->n_fds == 0 || r->n_fds == t->n_fds) : r->n_fds == 0,
                      "n_fds %" PRIu64 " without installing", r->n_fds);
        }

        if (n_secctx) {
                /* docs/model.md §5: the context follows the fd area of the n_fds reported */
                at = r->offset + align8(t->len) + align8(8 * t->n_handles) + align8(4 * r->n_fds);
                CHECK(c, !memcmp(pool->base + at, t->secctx, n_secctx),
                      "security context not at slice offset %" PRIu64 " (n_fds reported %"
                      PRIu64 ", sent %" PRIu64 ")", at - r->offset, r->n_fds, t->n_fds);
        }
}

/* a dequeued DATA entry or seed: its handles and slice are the peer's now */
static void recv_apply(Ctx *c, Slot *s, const PeerRecv *r, uint64_t serial) {
        const Sent *t = &c->sent[serial];

        for (uint64_t j = 0; j < t->n_handles; ++j) {
                uint64_t id;

                memcpy(&id, s->peer->pool.base + r->offset + align8(t->len) + 8 * j, sizeof(id));
                if (id != BUS1_HANDLE_INVALID)
                        held_add(c, s, id, 1);
        }
        CHECK(c, !pub_has(s, r->offset), "slice %" PRIx64 " received twice", r->offset);
        s->pub = xgrow(s->pub, &s->cap_pub, s->n_pub + 1, sizeof(*s->pub));
        s->pub[s->n_pub++] = r->offset;
}

static void verify_notification(Ctx *c, Slot *s, const PeerRecv *r, unsigned type, bool peek) {
        Rec *d;

        CHECK(c, r->type == (type == QUEUE_ENTRY_NODE_DESTROY ? BUS1_MSG_NODE_DESTROY
                                                               : BUS1_MSG_NODE_RELEASE),
              "type %" PRIu64 ", front entry type %u", r->type, type);
        CHECK(c, r->creds.uid == UINT32_MAX && r->creds.gid == UINT32_MAX && !r->creds.pid &&
                 !r->creds.tid && r->offset == BUS1_OFFSET_INVALID && !r->n_bytes &&
                 !r->n_handles && !r->n_fds && !r->n_secctx && !r->fds &&
                 !(r->flags & ~(uint64_t)BUS1_MSG_FLAG_CONTINUE),
              "notification fields");

        d = rec_of_id(c, s, r->destination);
        CHECK(c, d, "notification to ID %" PRIx64 ", which names no node", r->destination);
        if (r->type == BUS1_MSG_NODE_DESTROY) {
                CHECK(c, d->destroyed, "NODE_DESTROY of live %s", rec_str(d));
                CHECK(c, r->destination == d->life_id[s->idx], "NODE_DESTROY to %" PRIx64
                      ", but the handle is %" PRIx64, r->destination, d->life_id[s->idx]);
                CHECK(c, d->dstate[s->idx] == DS_PENDING, "NODE_DESTROY of %s in state %u",
                      rec_str(d), d->dstate[s->idx]);
                if (!peek) {
                        d->dstate[s->idx] = DS_RECEIVED;
                        if (!d->user[s->idx])
                                ++c->stats->soft_zero_user_destroy;
                        ++c->stats->received_destroy;
                }
        } else {
                CHECK(c, d->owner_slot == s->idx && d->owner_peer == s->peer->id &&
                         r->destination == d->owner_id && !d->destroyed &&
                         d->node->n_user_refs == 1,
                      "NODE_RELEASE of %s (count %" PRIu64 ")", rec_str(d),
                      d->node ? d->node->n_user_refs : 0);
                if (!peek) {
                        d->release_expected = false;
                        ++c->stats->received_release;
                }
        }
}

static int do_recv(Ctx *c, unsigned si, const RecvArgs *a) {
        Slot *s = &c->slots[si];
        bool peek = a->flags & BUS1_RECV_FLAG_PEEK;
        unsigned front_type = 0;
        bool skipped = false;
        size_t pi = SIZE_MAX;
        Message *m = NULL;
        PeerRecv r = {};
        int expect = 0, ret;

        op_begin(c, OP_RECV, si, "flags=%s%s%s%s max_offset=%" PRIx64,
                 peek ? "PEEK|" : "", (a->flags & BUS1_RECV_FLAG_SEED) ? "SEED|" : "",
                 (a->flags & BUS1_RECV_FLAG_INSTALL_FDS) ? "INSTALL_FDS|" : "",
                 (a->flags & ~(uint64_t)7) ? "bad" : "", a->max_offset);

        if (s->down) {
                expect = -ESHUTDOWN;
        } else if (a->flags & ~(uint64_t)(BUS1_RECV_FLAG_PEEK | BUS1_RECV_FLAG_SEED |
                                          BUS1_RECV_FLAG_INSTALL_FDS)) {
                expect = -EINVAL;
        } else if (a->flags & BUS1_RECV_FLAG_SEED) {
                m = s->peer->seed;
                if (s->seed == NONE)
                        expect = -EAGAIN;
                else if (m && m->slice->offset + m->slice->size > a->max_offset)
                        expect = -ERANGE;
        } else {
                QueueEntry *front = queue_first(&s->peer->queue);

                /*
                 * The NODE_DESTROY of a detached handle at the front can only
                 * name a released ID: the model may withdraw it.
                 */
                while (front && front->type == QUEUE_ENTRY_NODE_DESTROY &&
                       handle_is_detached(container_of(front, Handle, destroy))) {
                        front = list_entry(list_next(&s->peer->queue.entries, &front->link),
                                           QueueEntry, link);
                        skipped = true;
                }
                pi = pend_next(s, s->pend_head);
                if (!front) {
                        CHECK(c, pi == s->n_pend, "queue empty, but send #%" PRIu64
                              " is expected", s->pend[pi].serial);
                        expect = -EAGAIN;
                } else if (front->type == QUEUE_ENTRY_DATA) {
                        m = container_of(front, Message, entry);
                        CHECK(c, pi < s->n_pend && s->pend[pi].msg == m,
                              "front message is not the one expected");
                        if (m->slice->offset + m->slice->size > a->max_offset)
                                expect = -ERANGE;
                }
                if (front)
                        front_type = front->type;
        }
        if (expect == -ERANGE)
                op_note(c, " (slice ends at %" PRIx64 ")", m->slice->offset + m->slice->size);

        ret = peer_recv(s->peer, a->flags, a->max_offset, &r);
        if (ret == 0)
                op_note(c, " type=%" PRIu64 " dst=%" PRIx64 " flags=%" PRIx64, r.type,
                        r.destination, r.flags);
        op_result(c, ret, ebit(-expect) | (skipped ? ebit(0) : 0));

        if (ret == 0 && !(a->flags & BUS1_RECV_FLAG_SEED) && r.type != BUS1_MSG_DATA)
                front_type = r.type == BUS1_MSG_NODE_DESTROY ? QUEUE_ENTRY_NODE_DESTROY
                                                             : QUEUE_ENTRY_NODE_RELEASE;
        else if (ret == 0 && !(a->flags & BUS1_RECV_FLAG_SEED))
                CHECK(c, front_type == QUEUE_ENTRY_DATA && expect == 0,
                      "RECV returned DATA, expected %s", front_type ? "a notification"
                                                                    : errname(expect));

        if (ret == 0 && (a->flags & BUS1_RECV_FLAG_SEED)) {
                uint64_t serial = s->seed;

                verify_data(c, s, &r, serial, SIZE_MAX, a->flags);
                if (!peek) {
                        s->seed = NONE;
                        recv_apply(c, s, &r, serial);
                        ++c->stats->received_seed;
                }
        } else if (ret == 0 && front_type == QUEUE_ENTRY_DATA) {
                uint64_t serial = s->pend[pi].serial;

                verify_data(c, s, &r, serial, pi, a->flags);
                if (!peek) {
                        s->pend[pi].state = PEND_RECEIVED;
                        recv_apply(c, s, &r, serial);
                        ++c->stats->received_data;
                }
        } else if (ret == 0) {
                verify_notification(c, s, &r, front_type, peek);
        }
        peer_recv_deinit(&r);
        scan_check(c);
        return ret;
}

static void gen_recv(Ctx *c, Slot *s, RecvArgs *a) {
        *a = (RecvArgs){ .max_offset = UINT64_MAX };
        if (chance(c, 250))
                a->flags |= BUS1_RECV_FLAG_PEEK;
        if (chance(c, 600))
                a->flags |= BUS1_RECV_FLAG_INSTALL_FDS;
        if (chance(c, 80))
                a->flags |= BUS1_RECV_FLAG_SEED;
        if (chance(c, 8))
                a->flags |= 8;
        if (chance(c, 100))
                a->max_offset = rnd_below(c, c->bus.pool_size + 64);
        else if (chance(c, 100))
                a->max_offset = rnd_below(c, 4096);
}

/* ---- SLICE_RELEASE, HANDLE_RELEASE, HANDLE_TRANSFER ---- */

static int do_slice_release(Ctx *c, unsigned si, uint64_t offset) {
        Slot *s = &c->slots[si];
        int expect, r;

        op_begin(c, OP_SLICE_RELEASE, si, "offset=%" PRIx64, offset);
        if (s->down)
                expect = -ESHUTDOWN;
        else
                expect = pub_has(s, offset) ? 0 : -ENXIO;
        r = peer_slice_release(s->peer, offset);
        op_result(c, r, ebit(-expect));
        if (r == 0)
                pub_take(s, offset);
        scan_check(c);
        return r;
}

static void gen_slice_release(Ctx *c, Slot *s, uint64_t *offset) {
        if (s->n_pub && chance(c, 650)) {
                *offset = s->pub[rnd_below(c, s->n_pub)];
                return;
        }
        *offset = rnd_below(c, c->bus.pool_size + 16);
        if (chance(c, 700))
                *offset &= ~(uint64_t)7;
}

static int do_handle_release(Ctx *c, unsigned si, uint64_t id) {
        Slot *s = &c->slots[si];
        int expect = 0, r;
        uint64_t n;

        op_begin(c, OP_HANDLE_RELEASE, si, "id=%" PRIx64, id);
        if (s->down) {
                expect = -ESHUTDOWN;
        } else if (!(n = held_get(s, id))) {
                expect = handle_id_is_new(id) ? -EBUSY : -ENXIO;
        } else {
                Rec *d = rec_of_id(c, s, id);

                CHECK(c, d, "held ID %" PRIx64 " of no known node", id);
                if (!handle_id_is_managed(id) && !d->destroyed && n == 1)
                        expect = -EBUSY;
        }
        r = peer_handle_release(s->peer, id);
        op_result(c, r, ebit(-expect));
        if (r == 0)
                held_add(c, s, id, -1);
        scan_check(c);
        return r;
}

/* whether @d may take the reference @s transfers (after creating the node, if @created) */
static bool transfer_refused(Slot *s, Slot *d, bool created) {
        uint64_t held[_USER_N] = {
                [USER_HANDLES] = d->peer->n_handle_refs + (created && d == s),
        };
        uint64_t charge[_USER_N] = { [USER_HANDLES] = 1 };
        uint64_t extra[_USER_N] = { [USER_HANDLES] = created && d->uid == s->uid };

        return held[USER_HANDLES] + 1 > d->limits.max_handles ||
               user_predict(d->peer, s->uid, held, charge, extra) < 0;
}

typedef struct TransferArgs {
        uint64_t flags;
        uint64_t id;
        int dst;                /* slot, or -1: the caller itself (NULL) */
} TransferArgs;

static int do_transfer(Ctx *c, unsigned si, const TransferArgs *a) {
        Slot *s = &c->slots[si];
        Slot *d = a->dst < 0 ? s : &c->slots[a->dst];
        uint64_t out = 0x5555, want = NONE;
        bool created = false;
        Rec *src = NULL;
        int expect = 0, r;

        op_begin(c, OP_TRANSFER, si, "flags=%" PRIx64 " id=%" PRIx64 " dst=%s%d", a->flags,
                 a->id, a->dst < 0 ? "self" : "P", a->dst < 0 ? (int)si : a->dst);

        if (s->down) {
                expect = -ESHUTDOWN;
        } else if (a->flags) {
                expect = -EINVAL;
        } else if (d->down) {
                expect = -ESHUTDOWN;
        } else {
                r = sim_resolve(c, s, a->id, NULL, 0, &src);
                if (r < 0) {
                        expect = r;
                } else if (r == 0) {
                        if (create_refused(s, 0)) {
                                expect = -EDQUOT;
                        } else if (transfer_refused(s, d, true)) {
                                expect = -EDQUOT;
                        } else {
                                created = true;
                                c->new_ids[c->n_new_ids++] = a->id;
                                if (d == s)
                                        want = a->id;
                        }
                } else if (src->destroyed) {
                        want = BUS1_HANDLE_INVALID;
                } else if (transfer_refused(s, d, false)) {
                        expect = -EDQUOT;
                } else if (src->owner_slot == d->idx && src->owner_peer == d->peer->id) {
                        want = src->owner_id;
                } else {
                        Handle *h = handle_find_by_node(d->peer, src->node);

                        if (h)
                                want = h->id;
                }
        }

        r = peer_handle_transfer(s->peer, a->flags, a->id, a->dst < 0 ? NULL : d->peer, &out);
        if (r == 0)
                op_note(c, " dst_id=%" PRIx64, out);
        c->last_id = out;
        op_result(c, r, ebit(-expect));

        if (r == 0) {
                if (created)
                        held_add(c, s, a->id, 1);
                if (want != NONE)
                        CHECK(c, out == want, "dst_handle %" PRIx64 ", expected %" PRIx64, out,
                              want);
                if (out == BUS1_HANDLE_INVALID) {
                        CHECK(c, src && src->destroyed, "INVALID for a live node");
                } else {
                        Rec *n = rec_of_id(c, d, out);
                        Rec *o = src ? src : rec_of_id(c, s, a->id);

                        CHECK(c, n && n == o, "dst_handle %" PRIx64 " names %s, source %s", out,
                              rec_str(n), rec_str(o));
                        if (!(n->owner_slot == d->idx && n->owner_peer == d->peer->id))
                                CHECK(c, handle_id_is_managed(out) &&
                                         (out & BUS1_HANDLE_FLAG_REMOTE),
                                      "remote handle ID %" PRIx64, out);
                        held_add(c, d, out, 1);
                }
        }
        scan_check(c);
        return r;
}

static void gen_transfer(Ctx *c, Slot *s, TransferArgs *a) {
        *a = (TransferArgs){ .id = pick_id(c, s, NOISE) };
        a->dst = chance(c, 200) ? -1 : (int)rnd_below(c, c->n_slots);
        if (chance(c, 10))
                a->flags = 1;
}

/* ---- NODES_DESTROY ---- */

typedef struct DestroyArgs {
        uint64_t flags;
        uint64_t ids[IDS_MAX];
        uint64_t n_ids;
} DestroyArgs;

static int do_nodes_destroy(Ctx *c, unsigned si, const DestroyArgs *a) {
        Slot *s = &c->slots[si];
        Rec *named[IDS_MAX] = {};
        uint64_t created[IDS_MAX];
        size_t n_created = 0;
        char ibuf[128];
        int expect = 0, r;

        ids_str(ibuf, sizeof(ibuf), a->ids, a->n_ids);
        op_begin(c, OP_NODES_DESTROY, si, "flags=%" PRIx64 " ids=[%s]", a->flags, ibuf);

        if (s->down) {
                expect = -ESHUTDOWN;
        } else if (a->flags & ~(uint64_t)BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES) {
                expect = -EINVAL;
        } else if (a->n_ids > s->peer->user->limits.max[USER_HANDLES]) {
                expect = -EINVAL;
        } else {
                for (uint64_t i = 0; i < a->n_ids && !expect; ++i) {
                        uint64_t id = a->ids[i];

                        r = sim_resolve(c, s, id, created, n_created, &named[i]);
                        if (r < 0) {
                                expect = r;
                        } else if (r == 0) {
                                if (create_refused(s, n_created))
                                        expect = -EDQUOT;
                                else
                                        created[n_created++] = id;
                        } else if (named[i] && handle_id_is_managed(id)) {
                                expect = -EREMOTE;
                        } else if (named[i] && named[i]->destroyed) {
                                expect = -ESTALE;
                        } else {
                                for (uint64_t k = 0; k < i; ++k)
                                        if (a->ids[k] == id)
                                                expect = -ENOTUNIQ;
                        }
                }
                if (!expect) {
                        for (uint64_t i = 0; i < a->n_ids; ++i)
                                if (named[i])
                                        named[i]->expect_destroy = true;
                        memcpy(c->new_ids, created, n_created * sizeof(*created));
                        c->n_new_ids = n_created;
                }
                snapshot_owned(c, s);
        }

        c->op_flags = a->flags;
        r = peer_nodes_destroy(s->peer, a->flags, a->ids, a->n_ids);
        op_result(c, r, ebit(-expect));

        if (r == 0) {
                for (size_t k = 0; k < n_created; ++k)
                        held_add(c, s, created[k], 1);
                for (uint64_t i = 0; i < a->n_ids; ++i) {
                        if (named[i])
                                CHECK(c, named[i]->destroyed, "%s not destroyed",
                                      rec_str(named[i]));
                        if (a->flags & BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES)
                                held_add(c, s, a->ids[i], -1);
                }
        }
        scan_check(c);
        return r;
}

static void gen_nodes_destroy(Ctx *c, Slot *s, DestroyArgs *a) {
        uint64_t k = rnd_below(c, 100);

        *a = (DestroyArgs){};
        a->n_ids = k < 8 ? 0 : k < 68 ? 1 : 2 + rnd_below(c, IDS_MAX - 1);
        for (uint64_t i = 0; i < a->n_ids; ++i)
                a->ids[i] = chance(c, 600) ? owner_ids[rnd_below(c, 3)] : pick_id(c, s, NOISE);
        if (chance(c, 500))
                a->flags |= BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES;
        if (chance(c, 20))
                a->flags |= 2;
}

/* ---- PEER_RESET, PEER_DISCONNECT, PEER_QUERY, replacing a peer ---- */

typedef struct ResetArgs {
        uint64_t flags;
        uint64_t peer_flags;
        PeerLimits limits;
} ResetArgs;

static bool limit_bad(uint32_t v) {
        return v != PEER_LIMIT_KEEP && v > PEER_LIMIT_MAX;
}

static void limit_apply(uint32_t *l, uint32_t v) {
        if (v != PEER_LIMIT_KEEP)
                *l = v;
}

/* drop what a flush or disconnect drops from the shadow of @s */
static void shadow_flush(Ctx *c, Slot *s) {
        for (size_t k = s->pend_head; k < s->n_pend; ++k)
                if (s->pend[k].state == PEND_QUEUED)
                        s->pend[k].state = PEND_DROPPED;
        s->n_pub = 0;
        for (size_t k = 0; k < c->n_live; ++k) {
                Rec *r = c->recs[c->live[k]];

                if (r->dstate[s->idx] == DS_PENDING || r->dstate[s->idx] == DS_MAYBE)
                        r->dstate[s->idx] = DS_EXEMPT;
        }
}

static int do_reset(Ctx *c, unsigned si, const ResetArgs *a) {
        Slot *s = &c->slots[si];
        const PeerLimits *l = &a->limits;
        bool flush = a->flags & BUS1_PEER_RESET_FLAG_FLUSH;
        int expect = 0, r;

        op_begin(c, OP_RESET, si, "flags=%" PRIx64 " peer_flags=%" PRIx64 " limits=%x/%x/%x/%x",
                 a->flags, a->peer_flags, l->max_slices, l->max_handles,
                 l->max_inflight_bytes, l->max_inflight_fds);

        if (s->down)
                expect = -ESHUTDOWN;
        else if (a->flags & ~(uint64_t)(BUS1_PEER_RESET_FLAG_FLUSH |
                                        BUS1_PEER_RESET_FLAG_FLUSH_SEED))
                expect = -EINVAL;
        else if (a->peer_flags != UINT64_MAX &&
                 (a->peer_flags & ~(uint64_t)BUS1_PEER_FLAG_WANT_SECCTX))
                expect = -EINVAL;
        else if (limit_bad(l->max_slices) || limit_bad(l->max_handles) ||
                 limit_bad(l->max_inflight_bytes) || limit_bad(l->max_inflight_fds))
                expect = -EINVAL;

        if (!expect && flush) {
                bool keep_seed = !(a->flags & BUS1_PEER_RESET_FLAG_FLUSH_SEED) &&
                                 s->seed != NONE;

                for (size_t k = 0; k < c->n_live; ++k) {
                        Rec *d = c->recs[c->live[k]];
                        bool pinned = false;

                        if (d->owner_slot != si || d->owner_peer != s->peer->id || d->destroyed)
                                continue;
                        for (uint64_t j = 0; keep_seed && j < c->sent[s->seed].n_handles; ++j)
                                pinned |= c->sent[s->seed].handle_rec[j] == d->idx;
                        d->expect_destroy = !pinned;
                }
                snapshot_owned(c, s);
        }

        c->op_flags = a->flags;
        r = peer_reset(s->peer, a->flags, a->peer_flags, l);
        op_result(c, r, ebit(-expect));

        if (r == 0) {
                if (a->peer_flags != UINT64_MAX)
                        s->peer_flags = a->peer_flags;
                limit_apply(&s->limits.max_slices, l->max_slices);
                limit_apply(&s->limits.max_handles, l->max_handles);
                limit_apply(&s->limits.max_inflight_bytes, l->max_inflight_bytes);
                limit_apply(&s->limits.max_inflight_fds, l->max_inflight_fds);
                if (a->flags & BUS1_PEER_RESET_FLAG_FLUSH_SEED)
                        s->seed = NONE;
        }
        if (r == 0 && flush) {
                /* every handle released, but the pin of the live nodes the seed kept */
                for (size_t k = 0; k < s->n_held;) {
                        Rec *d = rec_of_id(c, s, s->held[k].id);

                        if (!handle_id_is_managed(s->held[k].id) && d && !d->destroyed) {
                                s->held[k++].n = 1;
                                continue;
                        }
                        s->held[k] = s->held[--s->n_held];
                }
                for (size_t k = 0; k < c->n_live; ++k) {
                        Rec *d = c->recs[c->live[k]];

                        if (d->expect_destroy)
                                CHECK(c, d->destroyed, "FLUSH did not destroy %s", rec_str(d));
                }
                shadow_flush(c, s);
        }
        scan_check(c);
        return r;
}

static uint32_t gen_limit(Ctx *c, uint32_t low, uint32_t high, uint32_t def) {
        uint64_t k = rnd_below(c, 100);

        if (k < 65)
                return PEER_LIMIT_KEEP;
        if (k < 80)
                return low + (uint32_t)rnd_below(c, high - low + 1);
        if (k < 98)
                return def;
        return (uint32_t)PEER_LIMIT_MAX + 1 + (uint32_t)rnd_below(c, 100);
}

static void gen_reset(Ctx *c, Slot *s, ResetArgs *a) {
        const PeerLimits *def = &c->bus.limits;
        uint64_t k = rnd_below(c, 100);

        *a = (ResetArgs){ .peer_flags = UINT64_MAX };
        if (chance(c, 350))
                a->flags |= BUS1_PEER_RESET_FLAG_FLUSH;
        if (chance(c, 300))
                a->flags |= BUS1_PEER_RESET_FLAG_FLUSH_SEED;
        if (chance(c, 20))
                a->flags |= 4;
        if (k >= 60)
                a->peer_flags = k < 80 ? 0 : k < 98 ? BUS1_PEER_FLAG_WANT_SECCTX : 2;
        a->limits.max_slices = gen_limit(c, 1, 6, def->max_slices);
        a->limits.max_handles = gen_limit(c, 1, 20, def->max_handles);
        a->limits.max_inflight_bytes = gen_limit(c, 8, 4096, def->max_inflight_bytes);
        a->limits.max_inflight_fds = gen_limit(c, 0, 4, def->max_inflight_fds);
}

static int do_disconnect(Ctx *c, unsigned si) {
        Slot *s = &c->slots[si];
        int expect = 0, r;

        op_begin(c, OP_DISCONNECT, si, "%s", "");
        if (s->down) {
                expect = -ESHUTDOWN;
        } else {
                for (size_t k = 0; k < c->n_live; ++k) {
                        Rec *d = c->recs[c->live[k]];

                        if (d->owner_slot == si && d->owner_peer == s->peer->id && !d->destroyed)
                                d->expect_destroy = true;
                }
                snapshot_owned(c, s);
        }
        r = peer_disconnect(s->peer);
        if (r == 0) {
                /* the model no longer shows this peer's handles to the scan */
                s->down = true;
                s->down_step = c->step;
        }
        op_result(c, r, ebit(-expect));
        if (r == 0) {
                for (size_t k = 0; k < c->n_live; ++k) {
                        Rec *d = c->recs[c->live[k]];

                        if (d->expect_destroy)
                                CHECK(c, d->destroyed, "DISCONNECT did not destroy %s",
                                      rec_str(d));
                }
                shadow_flush(c, s);
                s->n_held = 0;
                s->seed = NONE;
                s->n_exist = 0;
        }
        scan_check(c);
        return r;
}

static int do_query(Ctx *c, unsigned si, uint64_t flags) {
        Slot *s = &c->slots[si];
        uint64_t pf = 0;
        PeerLimits l = {};
        int expect = 0, r;

        op_begin(c, OP_QUERY, si, "flags=%" PRIx64, flags);
        if (s->down)
                expect = -ESHUTDOWN;
        else if (flags)
                expect = -EINVAL;
        r = peer_query(s->peer, flags, &pf, &l);
        op_result(c, r, ebit(-expect));
        if (r == 0)
                CHECK(c, pf == s->peer_flags && !memcmp(&l, &s->limits, sizeof(l)),
                      "query: flags %" PRIx64 " limits %x/%x/%x/%x, expected %" PRIx64
                      " %x/%x/%x/%x", pf, l.max_slices, l.max_handles, l.max_inflight_bytes,
                      l.max_inflight_fds, s->peer_flags, s->limits.max_slices,
                      s->limits.max_handles, s->limits.max_inflight_bytes,
                      s->limits.max_inflight_fds);
        scan_check(c);
        return r;
}

static void slot_connect(Ctx *c, Slot *s) {
        char buf[64];

        if (c->cfg && c->cfg->n_uids)
                s->uid = 1000 + s->idx % c->cfg->n_uids;
        else
                s->uid = 1000 + 10 * s->idx + (c->n_generations++ % 10);
        s->peer = test_peer_new(&c->bus, s->uid);
        if (chance(c, 500)) {
                int n = snprintf(buf, sizeof(buf), "ctx_t:peer%" PRIu64 ":%u", s->peer->id,
                                 (unsigned)rnd_below(c, 100000));

                s->peer->secctx = strdup(buf);
                assert_non_null(s->peer->secctx);
                s->peer->n_secctx = (uint64_t)n;
        }
        s->down = false;
        /* docs/model.md §8: a peer's limits start equal to its user's (the bus may cap them) */
        s->limits = (PeerLimits){
                .max_slices = (uint32_t)MIN(MIN((uint64_t)c->bus.limits.max_slices,
                                                s->peer->user->limits.max[USER_SLICES]),
                                            (uint64_t)PEER_LIMIT_MAX),
                .max_handles = (uint32_t)MIN(MIN((uint64_t)c->bus.limits.max_handles,
                                                 s->peer->user->limits.max[USER_HANDLES]),
                                             (uint64_t)PEER_LIMIT_MAX),
                .max_inflight_bytes = (uint32_t)MIN(MIN((uint64_t)c->bus.limits.max_inflight_bytes,
                                                        s->peer->user->limits.max[USER_BYTES]),
                                                    (uint64_t)PEER_LIMIT_MAX),
                .max_inflight_fds = (uint32_t)MIN(MIN((uint64_t)c->bus.limits.max_inflight_fds,
                                                      s->peer->user->limits.max[USER_FDS]),
                                                  (uint64_t)PEER_LIMIT_MAX),
        };
        s->peer_flags = 0;
        s->n_held = 0;
        s->n_pub = 0;
        s->n_pend = s->pend_head = 0;
        if (s->hist)
                memset(s->hist, 0, s->cap_hist * sizeof(*s->hist));
        s->max_n = 0;
        s->n_exist = 0;
        s->seed = NONE;
        for (size_t k = 0; k < c->n_live; ++k) {
                Rec *r = c->recs[c->live[k]];

                r->dstate[s->idx] = DS_NONE;
                r->had_user &= ~(1U << s->idx);
        }
}

static void do_replace(Ctx *c, unsigned si) {
        Slot *s = &c->slots[si];

        op_begin(c, OP_REPLACE, si, "after %" PRIu64 " steps", c->step - s->down_step);
        s->peer = peer_free(s->peer);
        slot_connect(c, s);
        op_note(c, " new peer %" PRIu64 "%s", s->peer->id, s->peer->secctx ? " (secctx)" : "");
        op_result(c, 0, ebit(0));
        scan_check(c);
}

/* ---- driving a seed ---- */

static void random_step(Ctx *c) {
        unsigned si = (unsigned)rnd_below(c, c->n_slots);
        Slot *s = &c->slots[si];
        uint64_t k;

        if (s->down && c->step - s->down_step > 8 && chance(c, 300)) {
                do_replace(c, si);
                return;
        }

        k = rnd_below(c, 1000);
        if (k < 320) {
                SendArgs a;

                gen_send(c, s, &a);
                do_send(c, si, &a);
        } else if (k < 580) {
                RecvArgs a;

                gen_recv(c, s, &a);
                do_recv(c, si, &a);
        } else if (k < 680) {
                uint64_t offset;

                gen_slice_release(c, s, &offset);
                do_slice_release(c, si, offset);
        } else if (k < 770) {
                uint64_t id = s->n_held && chance(c, 650) ? s->held[rnd_below(c, s->n_held)].id
                                                          : pick_id(c, s, NOISE);

                do_handle_release(c, si, id);
        } else if (k < 890) {
                TransferArgs a;

                gen_transfer(c, s, &a);
                do_transfer(c, si, &a);
        } else if (k < 940) {
                DestroyArgs a;

                gen_nodes_destroy(c, s, &a);
                do_nodes_destroy(c, si, &a);
        } else if (k < 980) {
                ResetArgs a;

                gen_reset(c, s, &a);
                do_reset(c, si, &a);
        } else if (k < 986) {
                do_disconnect(c, si);
        } else {
                do_query(c, si, chance(c, 100) ? 1 : 0);
        }
}

static void ctx_init(Ctx *c, const Config *cfg, uint64_t seed, unsigned n_peers,
                     uint64_t pool_size, Stats *stats) {
        *c = (Ctx){ .cfg = cfg, .seed = seed, .rng = seed * 0x2545f4914f6cdd1dULL + 1,
                    .stats = stats };
        c->trace = getenv("BUS1_RANDOM_TRACE") && *getenv("BUS1_RANDOM_TRACE") == '1';

        bus_init(&c->bus);
        c->bus.pool_size = pool_size;
        if (cfg)
                c->bus.limits = cfg->limits;
        for (unsigned k = 0; cfg && k < _USER_N; ++k)
                if (cfg->user_max[k])
                        c->bus.users.defaults.max[k] = cfg->user_max[k];

        c->buf_size = pool_size + 256;
        c->buf = malloc(c->buf_size);
        assert_non_null(c->buf);
        c->base_fd = eventfd(0, EFD_CLOEXEC);
        assert_true(c->base_fd >= 0);

        c->n_slots = n_peers;
        for (unsigned i = 0; i < n_peers; ++i) {
                c->slots[i].idx = i;
                slot_connect(c, &c->slots[i]);
        }
        assert_int_equal(bus_validate(&c->bus), 0);
}

/* drop the seeds, drain every queue, release every slice, check, free everything */
static void ctx_finish(Ctx *c) {
        const PeerLimits keep = {
                .max_slices = PEER_LIMIT_KEEP,
                .max_handles = PEER_LIMIT_KEEP,
                .max_inflight_bytes = PEER_LIMIT_KEEP,
                .max_inflight_fds = PEER_LIMIT_KEEP,
        };
        const ResetArgs drop_seed = {
                .flags = BUS1_PEER_RESET_FLAG_FLUSH_SEED,
                .peer_flags = UINT64_MAX,
                .limits = keep,
        };
        const RecvArgs recv = { .flags = BUS1_RECV_FLAG_INSTALL_FDS, .max_offset = UINT64_MAX };

        for (unsigned i = 0; i < c->n_slots; ++i)
                if (!c->slots[i].down)
                        do_reset(c, i, &drop_seed);
        for (unsigned i = 0; i < c->n_slots; ++i)
                while (!c->slots[i].down && do_recv(c, i, &recv) == 0)
                        ;
        for (unsigned i = 0; i < c->n_slots; ++i)
                while (!c->slots[i].down && c->slots[i].n_pub)
                        do_slice_release(c, i, c->slots[i].pub[0]);

        for (unsigned i = 0; i < c->n_slots; ++i) {
                Slot *s = &c->slots[i];

                if (s->down)
                        continue;
                CHECK(c, !s->peer->queue.n_entries && !s->peer->seed,
                      "P%u: queue or seed left after draining", i);
                CHECK(c, s->peer->pool.n_busy == 0 && s->peer->pool.busy_bytes == 0,
                      "P%u: %" PRIu64 " busy slices left", i, s->peer->pool.n_busy);
                CHECK(c, !s->peer->n_inflight_fds, "P%u: in-flight fds left", i);
                CHECK(c, pend_next(s, s->pend_head) == s->n_pend, "P%u: messages not received", i);
        }

        for (unsigned i = 0; i < c->n_slots; ++i) {
                Slot *s = &c->slots[i];

                s->peer = peer_free(s->peer);
                CHECK(c, bus_validate(&c->bus) == 0, "bus_validate() after freeing P%u", i);
                free(s->held);
                free(s->pub);
                free(s->pend);
                free(s->hist);
                free(s->exist);
                free(s->exist_new);
        }
        bus_deinit(&c->bus);

        for (size_t i = 0; i < c->n_recs; ++i)
                free(c->recs[i]);
        free(c->recs);
        free(c->live);
        free(c->sent);
        free(c->buf);
        close(c->base_fd);
}

static uint64_t env_u64(const char *name, uint64_t def) {
        const char *v = getenv(name);

        return v && *v ? strtoull(v, NULL, 0) : def;
}

static int count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int n = 0;

        assert_non_null(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        ++n;
        closedir(d);
        return n;
}

static void stats_print(const Config *cfg, const Stats *st, uint64_t steps) {
        printf("[ %s ] %" PRIu64 " steps; nodes %" PRIu64 " (destroyed %" PRIu64 "), "
               "deliveries %" PRIu64 ", received: data %" PRIu64 ", seeds %" PRIu64
               ", NODE_DESTROY %" PRIu64 ", NODE_RELEASE %" PRIu64 ", fds %" PRIu64 "\n",
               cfg->name, steps, st->nodes, st->destroyed, st->delivered, st->received_data,
               st->received_seed, st->received_destroy, st->received_release,
               st->fds_installed);
        for (int op = 0; op < _OP_MAX; ++op) {
                char line[512];
                size_t n = 0;

                n += snprintf(line + n, sizeof(line) - n, "    %-16s", op_names[op]);
                for (size_t i = 0; i < N_KNOWN_ERRORS; ++i)
                        if (st->ret[op][i])
                                n += snprintf(line + n, sizeof(line) - n, " %s:%" PRIu64,
                                              errname(known_errors[i]), st->ret[op][i]);
                printf("%s\n", line);
        }
        if (st->soft_zero_user_destroy)
                printf("    note: NODE_DESTROY dequeued for a handle with no user references: %"
                       PRIu64 "\n", st->soft_zero_user_destroy);
}

static void run_config(const Config *cfg) {
        uint64_t only = env_u64("BUS1_RANDOM_SEED", NONE);
        uint64_t steps = env_u64("BUS1_RANDOM_STEPS", cfg->steps);
        uint64_t n_seeds = env_u64("BUS1_RANDOM_SEEDS", cfg->n_seeds);
        uint64_t total = 0;

        /* a seed asked for by number runs even beyond n_seeds (configurations 100000 apart) */
        if (only != NONE && only >= cfg->first_seed && only < cfg->first_seed + 100000)
                n_seeds = only - cfg->first_seed + 1;
        Stats stats = {};
        int fds_before = count_fds();

        for (uint64_t seed = cfg->first_seed; seed < cfg->first_seed + n_seeds; ++seed) {
                uint64_t pick = seed * 0x9e3779b97f4a7c15ULL;
                unsigned n_peers = 4 + (unsigned)((pick >> 20) % 3);
                uint64_t pool = cfg->pool_sizes[(pick >> 40) % cfg->n_pool_sizes];
                Ctx c;

                if (only != NONE && seed != only)
                        continue;
                ctx_init(&c, cfg, seed, n_peers, pool, &stats);
                while (c.step < steps)
                        random_step(&c);
                total += c.step;
                ctx_finish(&c);
        }
        stats_print(cfg, &stats, total);
        fflush(stdout);
        assert_int_equal(count_fds(), fds_before);
}

/* ---- tests ---- */

#define DEFAULT_LIMITS { USER_DEFAULT_MAX_SLICES, USER_DEFAULT_MAX_HANDLES, \
                         USER_DEFAULT_MAX_BYTES, USER_DEFAULT_MAX_FDS }

/* roomy pools, default limits: long queues, many handles, few quota errors */
static void test_random_default(void **state) {
        static const Config cfg = {
                .name = "default limits",
                .first_seed = 1,
                .n_seeds = 3,
                .steps = 2500,
                .pool_sizes = { 1024 * 1024, 256 * 1024 },
                .n_pool_sizes = 2,
                .limits = DEFAULT_LIMITS,
        };

        run_config(&cfg);
}

/* pools of a few KiB: EXFULL, EMSGSIZE and ERANGE are common */
static void test_random_small_pools(void **state) {
        static const Config cfg = {
                .name = "small pools",
                .first_seed = 100001,
                .n_seeds = 3,
                .steps = 2500,
                .pool_sizes = { 4096, 8192, 16384 },
                .n_pool_sizes = 3,
                .limits = DEFAULT_LIMITS,
        };

        run_config(&cfg);
}

/* low default limits for every peer: EDQUOT everywhere */
static void test_random_low_limits(void **state) {
        static const Config cfg = {
                .name = "low limits",
                .first_seed = 200001,
                .n_seeds = 2,
                .steps = 2500,
                .pool_sizes = { 65536, 16384 },
                .n_pool_sizes = 2,
                .limits = { 24, 40, 16384, 6 },
        };

        run_config(&cfg);
}

/* ---- deterministic sequences (minimised from random runs) ---- */

static const Config seq_cfg = {
        .name = "sequence",
        .limits = DEFAULT_LIMITS,
};

static void seq_begin(Ctx *c, Stats *st, unsigned n_peers) {
        ctx_init(c, &seq_cfg, 0, n_peers, 65536, st);
        c->trace = true;
        for (unsigned i = 0; i < n_peers; ++i)
                if (c->slots[i].peer->secctx)
                        c->slots[i].peer->secctx[0] = 'x';
}

static void seq_send(Ctx *c, unsigned si, uint64_t flags, const uint64_t *dsts, uint64_t n_dsts,
                     const uint64_t *handles, uint64_t n_handles, uint64_t n_fds, int expect) {
        SendArgs a = { .flags = flags, .n_dsts = n_dsts, .n_handles = n_handles,
                       .n_fds = n_fds, .len = 16, .n_vecs = 1, .errors = true };

        for (uint64_t i = 0; i < n_dsts; ++i)
                a.dsts[i] = dsts[i];
        for (uint64_t j = 0; j < n_handles; ++j)
                a.handles[j] = handles[j];
        CHECK(c, do_send(c, si, &a) == expect, "sequence: unexpected SEND result");
}

static void seq_destroy(Ctx *c, unsigned si, uint64_t flags, uint64_t id, int expect) {
        DestroyArgs a = { .flags = flags, .ids = { id }, .n_ids = 1 };

        CHECK(c, do_nodes_destroy(c, si, &a) == expect,
              "sequence: unexpected NODES_DESTROY result");
}

static void seq_recv(Ctx *c, unsigned si, uint64_t flags, int expect) {
        RecvArgs a = { .flags = flags, .max_offset = UINT64_MAX };
        int r = do_recv(c, si, &a);

        CHECK(c, r == expect, "sequence: RECV returned %s, expected %s", errname(r),
              errname(expect));
}

static uint64_t seq_transfer(Ctx *c, unsigned si, uint64_t id, int dst, int expect) {
        TransferArgs a = { .id = id, .dst = dst };

        CHECK(c, do_transfer(c, si, &a) == expect, "sequence: unexpected TRANSFER result");
        return c->last_id;
}

static void seq_release(Ctx *c, unsigned si, uint64_t id, int expect) {
        CHECK(c, do_handle_release(c, si, id) == expect, "sequence: unexpected RELEASE result");
}

/* a released handle a seed still carries, then its node is destroyed */
static void test_seq_seed_detached_destroy(void **state) {
        Stats st = {};
        uint64_t x;
        Ctx c;

        seq_begin(&c, &st, 2);
        x = seq_transfer(&c, 0, 8, 1, 0);
        seq_send(&c, 1, BUS1_SEND_FLAG_SEED, NULL, 0, (uint64_t[]){ x }, 1, 0, 0);
        seq_release(&c, 1, x, 0);
        seq_destroy(&c, 0, 0, 8, 0);
        /* docs/model.md §3: released before the destruction, so never seen */
        seq_recv(&c, 1, 0, -EAGAIN);
        seq_recv(&c, 1, BUS1_RECV_FLAG_SEED, 0);
        seq_recv(&c, 1, 0, -EAGAIN);
        ctx_finish(&c);
}

/* PEEK of a message carrying an owner handle released meanwhile, ID reused */
static void test_seq_peek_reused_owner_id(void **state) {
        Stats st = {};
        Ctx c;

        seq_begin(&c, &st, 1);
        seq_send(&c, 0, 0, (uint64_t[]){ 0x100 }, 1, (uint64_t[]){ 8 }, 1, 0, 0);
        seq_destroy(&c, 0, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, 8, 0);
        seq_transfer(&c, 0, 8, -1, 0);
        seq_recv(&c, 0, BUS1_RECV_FLAG_PEEK, 0);
        seq_recv(&c, 0, 0, 0);
        ctx_finish(&c);
}

/* a user's own charge refused by its quota */
static void test_seq_own_charge_refused(void **state) {
        static const Config cfg = {
                .name = "sequence",
                .limits = DEFAULT_LIMITS,
                .user_max = { 0, 2, 0, 0 },
        };
        Stats st = {};
        Ctx c;

        ctx_init(&c, &cfg, 0, 1, 65536, &st);
        c.trace = true;
        /* the second node would make the peer hold more than half of its user's 2 */
        seq_send(&c, 0, 0, NULL, 0, (uint64_t[]){ 0, 8 }, 2, 0, -EDQUOT);
        ctx_finish(&c);
}

/* a message larger than the receiving user's byte limit, while its slices are used up */
static void test_seq_never_fits(void **state) {
        static const Config cfg = {
                .name = "sequence",
                .limits = DEFAULT_LIMITS,
                .user_max = { 4, 0, 4096, 0 },
        };
        Stats st = {};
        SendArgs big = { .flags = BUS1_SEND_FLAG_CONTINUE, .n_dsts = 1, .len = 8192,
                         .n_vecs = 1, .errors = true };
        uint64_t x;
        Ctx c;

        ctx_init(&c, &cfg, 0, 2, 65536, &st);
        c.trace = true;
        x = seq_transfer(&c, 1, 0, 0, 0);
        /* P0 (another UID) may make P1 hold two of its user's four slices */
        seq_send(&c, 0, 0, (uint64_t[]){ x }, 1, NULL, 0, 0, 0);
        seq_send(&c, 0, 0, (uint64_t[]){ x }, 1, NULL, 0, 0, 0);
        seq_send(&c, 0, 0, (uint64_t[]){ x }, 1, NULL, 0, 0, -EDQUOT);
        /* 8 KiB can never fit P1's 4 KiB: EMSGSIZE fails the whole call (docs/model.md §4, 8) */
        big.dsts[0] = x;
        CHECK(&c, do_send(&c, 0, &big) == -EMSGSIZE, "sequence: unexpected SEND result");
        ctx_finish(&c);
}

static void test_seq_owner_handle_inflight(void **state) {
        Stats st = {};
        Ctx c;

        seq_begin(&c, &st, 2);
        seq_send(&c, 0, 0, (uint64_t[]){ 8, 0x100, 0 }, 3, (uint64_t[]){ 8, 0x100 }, 2, 0, 0);
        seq_destroy(&c, 0, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, 0, 0);
        seq_destroy(&c, 0, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, 8, 0);
        seq_recv(&c, 0, 0, 0);
        ctx_finish(&c);
}

/* peers share three UIDs with low per-UID limits: the fair-share quota decides */
static void test_random_shared_users(void **state) {
        static const Config cfg = {
                .name = "shared users",
                .first_seed = 300001,
                .n_seeds = 2,
                .steps = 2500,
                .pool_sizes = { 65536, 16384 },
                .n_pool_sizes = 2,
                .limits = DEFAULT_LIMITS,
                .n_uids = 3,
                .user_max = { 40, 60, 24576, 8 },
        };

        run_config(&cfg);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_seq_owner_handle_inflight),
                cmocka_unit_test(test_seq_seed_detached_destroy),
                cmocka_unit_test(test_seq_peek_reused_owner_id),
                cmocka_unit_test(test_seq_own_charge_refused),
                cmocka_unit_test(test_seq_never_fits),
                cmocka_unit_test(test_random_default),
                cmocka_unit_test(test_random_small_pools),
                cmocka_unit_test(test_random_low_limits),
                cmocka_unit_test(test_random_shared_users),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
