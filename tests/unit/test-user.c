/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for per-UID accounting (docs/model.md §8)
 *
 * The first half drives a UserRegistry alone, the way the model does:
 * user_check() with what the receiving peer holds, then user_add() and
 * user_share_add() if it fits; user_share_sub() at dequeue and user_sub()
 * when the peer lets go. A SimPeer stands for a receiving peer (its user and
 * what it holds). assert_registry() checks the registry's own invariants
 * (tree shapes and order, n_actors, no empty usage) after every step. The
 * vectors are worked examples, with a limit of 1024:
 *
 *  - between users, (c + share) * (n + 1) - share <= remaining: a first
 *    foreign UID 512 and not 513, a second one then 170 and not 171, a third
 *    85 and not 86; once the first's share is back (dequeue) and its receiver
 *    let go (release), the second grows to 512 in total;
 *  - within the receiving user, (c + held) * 2 - held <= remaining: a lone
 *    peer 512 and not 513, a second peer of the UID then 256 and not 257;
 *  - 1024 (= the limit) is refused by the half rules (EDQUOT), 1025, 2048,
 *    UINT32_MAX and UINT64_MAX could never fit (EMSGSIZE); shares and held
 *    amounts near UINT64_MAX are refused, never wrapped.
 *
 * The second half runs real sends on a Bus on the stack, with a receiving
 * UID whose limits are lowered by an override before its peers exist, and
 * calls the model's consistency checker (assert_valid(), which compares each
 * user's `used` with what its peers hold and each share with the queued
 * messages') after every step. Expected counts follow from the formulas;
 * each test's comment gives the arithmetic.
 */

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "model-util.h"
#include "bus/handle.h"
#include "bus/node.h"
#include "bus/user.h"
#include "util/fdlist.h"
#include "util/macro.h"
#include "util/rbtree.h"

/* the receiving UID, and foreign actors */
#define UID_A 1000U
#define UID_B 2000U
#define UID_C 3000U
#define UID_D 4000U
#define UID_E 5000U

/* --- registry-level helpers ---------------------------------------------- */

/* a receiving peer, as far as accounting sees it */
typedef struct SimPeer {
        User *user;
        uint64_t held[_USER_N];
} SimPeer;

static UserLimits limits_all(uint64_t max) {
        UserLimits l = { .max_peers = USER_DEFAULT_MAX_PEERS };

        for (unsigned int r = 0; r < _USER_N; ++r)
                l.max[r] = max;
        return l;
}

static void registry_setup(UserRegistry *reg, uint32_t uid, uint64_t max) {
        UserLimits l = limits_all(max);

        user_registry_init(reg);
        assert_int_equal(user_registry_set_override(reg, uid, &l), 0);
}

static User *get_user(UserRegistry *reg, uint32_t uid) {
        User *user = NULL;

        assert_int_equal(user_get(&user, reg, uid), 0);
        assert_non_null(user);
        assert_int_equal(user->uid, uid);
        return user;
}

static SimPeer sim_peer(User *user) {
        return (SimPeer){ .user = user_ref(user) };
}

static void sim_peer_drop(SimPeer *p) {
        for (unsigned int r = 0; r < _USER_N; ++r)
                assert_int_equal(p->held[r], 0);
        p->user = user_unref(p->user);
}

static uint64_t n_usages(User *user) {
        long n = rbtree_validate(&user->usages);

        assert_true(n >= 0);
        return (uint64_t)n;
}

/* the registry's invariants */
static void assert_registry(UserRegistry *reg) {
        uint64_t n_users = 0;
        uint32_t last_uid = 0;
        RBNode *n, *u;

        assert_int_equal(rbtree_validate(&reg->users), (long)reg->n_users);
        for (n = rbtree_first(&reg->users); n; n = rbnode_next(n), ++n_users) {
                User *user = container_of(n, User, registry_node);
                uint64_t n_actors[_USER_N] = {};
                uint32_t last_actor = 0;
                bool first = true;

                assert_ptr_equal(user->registry, reg);
                assert_true(user->n_refs > 0);
                if (n_users)
                        assert_true(user->uid > last_uid);
                last_uid = user->uid;

                assert_true(rbtree_validate(&user->usages) >= 0);
                for (u = rbtree_first(&user->usages); u; u = rbnode_next(u)) {
                        UserUsage *usage = container_of(u, UserUsage, user_node);
                        bool any = false;

                        assert_ptr_equal(usage->user, user);
                        if (!first)
                                assert_true(usage->actor > last_actor);
                        first = false;
                        last_actor = usage->actor;
                        for (unsigned int r = 0; r < _USER_N; ++r) {
                                n_actors[r] += !!usage->share[r];
                                any |= !!usage->share[r];
                        }
                        /* a usage lives for a share or a remembered refusal */
                        assert_true(any || usage->n_refusals);
                }
                for (unsigned int r = 0; r < _USER_N; ++r)
                        assert_int_equal(n_actors[r], user->n_actors[r]);
        }
        assert_int_equal(n_users, reg->n_users);
}

/*
 * charge @c of @res to @p's user on behalf of @actor, as the model stages a
 * message: check with what @p holds, then charge and record the share
 */
static int sim_charge(SimPeer *p, uint32_t actor, unsigned int res, uint64_t c) {
        uint64_t charge[_USER_N] = {};
        int r;

        charge[res] = c;
        r = user_check(p->user, actor, p->held, charge);
        if (r < 0)
                return r;
        user_add(p->user, res, c);
        assert_int_equal(user_share_add(p->user, actor, charge), 0);
        p->held[res] += c;
        return 0;
}

/* the message was dequeued: @actor's share comes back, @p still holds it */
static void sim_dequeue(SimPeer *p, uint32_t actor, unsigned int res, uint64_t c) {
        uint64_t charge[_USER_N] = {};

        charge[res] = c;
        user_share_sub(p->user, actor, charge);
}

/* @p lets go of what it held (SLICE_RELEASE, HANDLE_RELEASE) */
static void sim_release(SimPeer *p, unsigned int res, uint64_t c) {
        assert_true(p->held[res] >= c);
        user_sub(p->user, res, c);
        p->held[res] -= c;
}

/* @user's state for @res: used, @actor's share, number of actors */
static void assert_state(UserRegistry *reg, User *user, unsigned int res, uint32_t actor,
                         uint64_t used, uint64_t share, uint64_t n_actors) {
        assert_registry(reg);
        assert_int_equal(user->used[res], used);
        assert_int_equal(user_share_of(user, actor, res), share);
        assert_int_equal(user->n_actors[res], n_actors);
        /* nothing leaks into the other resources */
        for (unsigned int r = 0; r < _USER_N; ++r) {
                if (r == res)
                        continue;
                assert_int_equal(user->used[r], 0);
                assert_int_equal(user->n_actors[r], 0);
        }
}

/* --- registry: defaults, lookups, overrides ------------------------------ */

/* the defaults of docs/model.md §8 */
static void test_defaults(void **state) {
        UserRegistry reg;
        User *user;

        user_registry_init(&reg);
        assert_int_equal(reg.defaults.max[USER_SLICES], 16384);
        assert_int_equal(reg.defaults.max[USER_HANDLES], 65536);
        assert_int_equal(reg.defaults.max[USER_BYTES], 16 * 1024 * 1024);
        assert_int_equal(reg.defaults.max[USER_FDS], 4096);
        assert_int_equal(reg.defaults.max_peers, USER_DEFAULT_MAX_PEERS);
        assert_int_equal(reg.n_users, 0);
        assert_registry(&reg);

        /* a UID without override gets them */
        user = get_user(&reg, UID_A);
        assert_memory_equal(&user->limits, &reg.defaults, sizeof(UserLimits));
        for (unsigned int r = 0; r < _USER_N; ++r) {
                assert_int_equal(user->used[r], 0);
                assert_int_equal(user->n_actors[r], 0);
        }
        assert_int_equal(user->n_peers, 0);
        assert_registry(&reg);
        user_unref(user);
        assert_registry(&reg);

        assert_string_equal(user_resource_name(USER_SLICES), "slices");
        assert_string_equal(user_resource_name(USER_HANDLES), "handles");
        assert_string_equal(user_resource_name(USER_BYTES), "bytes");
        assert_string_equal(user_resource_name(USER_FDS), "fds");
        assert_string_equal(user_resource_name(_USER_N), "?");
        user_registry_deinit(&reg);
}

/* one User per UID, looked up by UID, reference counted, freed with the last */
static void test_lookup_refcount(void **state) {
        static const uint32_t uids[] = { 7, 0, UINT32_MAX, 1000, 3, 65534, 999, 1001, 2, 1 };
        User *users[ARRAY_SIZE(uids)];
        UserRegistry reg;

        user_registry_init(&reg);
        for (size_t i = 0; i < ARRAY_SIZE(uids); ++i) {
                users[i] = get_user(&reg, uids[i]);
                assert_int_equal(users[i]->n_refs, 1);
                assert_int_equal(reg.n_users, i + 1);
                assert_registry(&reg);
        }

        /* the same UID gives the same User, with one more reference */
        for (size_t i = 0; i < ARRAY_SIZE(uids); ++i) {
                User *again = get_user(&reg, uids[i]);

                assert_ptr_equal(again, users[i]);
                assert_int_equal(again->n_refs, 2);
                assert_int_equal(reg.n_users, ARRAY_SIZE(uids));
                assert_registry(&reg);
        }
        assert_ptr_equal(user_ref(users[0]), users[0]);
        assert_int_equal(users[0]->n_refs, 3);
        assert_null(user_unref(users[0]));
        assert_int_equal(users[0]->n_refs, 2);
        assert_null(user_unref(NULL));

        /* the first unref of each keeps it */
        for (size_t i = 0; i < ARRAY_SIZE(uids); ++i) {
                assert_null(user_unref(users[i]));
                assert_int_equal(users[i]->n_refs, 1);
                assert_int_equal(reg.n_users, ARRAY_SIZE(uids));
                assert_registry(&reg);
        }
        /* the last frees it; the others are still found */
        for (size_t i = 0; i < ARRAY_SIZE(uids); ++i) {
                assert_null(user_unref(users[i]));
                assert_int_equal(reg.n_users, ARRAY_SIZE(uids) - i - 1);
                assert_registry(&reg);
                for (size_t j = i + 1; j < ARRAY_SIZE(uids); ++j) {
                        User *again = get_user(&reg, uids[j]);

                        assert_ptr_equal(again, users[j]);
                        user_unref(again);
                }
        }
        assert_true(rbtree_is_empty(&reg.users));

        /* a UID looked up again after its User went is a fresh one */
        users[0] = get_user(&reg, uids[0]);
        assert_int_equal(users[0]->n_refs, 1);
        assert_int_equal(reg.n_users, 1);
        user_unref(users[0]);
        assert_int_equal(reg.n_users, 0);
        user_registry_deinit(&reg);
}

/* an override gives one UID its own limits; existing users keep theirs */
static void test_override(void **state) {
        UserLimits mine = {
                .max = { [USER_SLICES] = 10, [USER_HANDLES] = 20, [USER_BYTES] = 30,
                         [USER_FDS] = 40 },
                .max_peers = 3,
        };
        UserLimits other = limits_all(100);
        UserRegistry reg;
        SimPeer p, q;
        User *a, *b;

        user_registry_init(&reg);
        assert_int_equal(user_registry_set_override(&reg, UID_A, &mine), 0);
        assert_int_equal(reg.n_overrides, 1);

        a = get_user(&reg, UID_A);
        b = get_user(&reg, UID_B);
        assert_memory_equal(&a->limits, &mine, sizeof(mine));
        assert_memory_equal(&b->limits, &reg.defaults, sizeof(UserLimits));
        assert_int_equal(a->limits.max_peers, 3);
        assert_int_equal(b->limits.max_peers, USER_DEFAULT_MAX_PEERS);

        /* the overridden limits are the ones charges are checked against */
        p = sim_peer(a);
        q = sim_peer(b);
        assert_int_equal(sim_charge(&p, UID_C, USER_SLICES, 6), -EDQUOT);
        assert_int_equal(sim_charge(&p, UID_C, USER_SLICES, 5), 0);
        assert_int_equal(sim_charge(&p, UID_C, USER_FDS, 21), -EDQUOT);
        assert_int_equal(sim_charge(&p, UID_C, USER_FDS, 20), 0);
        assert_int_equal(user_check(a, UID_C, p.held,
                                    (uint64_t[_USER_N]){ [USER_BYTES] = 31 }), -EMSGSIZE);
        assert_int_equal(sim_charge(&q, UID_C, USER_SLICES, 8193), -EDQUOT);
        assert_int_equal(sim_charge(&q, UID_C, USER_SLICES, 8192), 0);
        assert_registry(&reg);

        /* replacing an override replaces, and leaves the existing user alone */
        assert_int_equal(user_registry_set_override(&reg, UID_A, &other), 0);
        assert_int_equal(reg.n_overrides, 1);
        assert_memory_equal(&a->limits, &mine, sizeof(mine));
        {
                User *again = get_user(&reg, UID_A);

                assert_ptr_equal(again, a);
                assert_memory_equal(&again->limits, &mine, sizeof(mine));
                user_unref(again);
        }
        /* an override for an existing user waits for the next User as well */
        assert_int_equal(user_registry_set_override(&reg, UID_B, &other), 0);
        assert_int_equal(reg.n_overrides, 2);
        assert_memory_equal(&b->limits, &reg.defaults, sizeof(UserLimits));

        sim_dequeue(&p, UID_C, USER_SLICES, 5);
        sim_release(&p, USER_SLICES, 5);
        sim_dequeue(&p, UID_C, USER_FDS, 20);
        sim_release(&p, USER_FDS, 20);
        sim_dequeue(&q, UID_C, USER_SLICES, 8192);
        sim_release(&q, USER_SLICES, 8192);
        sim_peer_drop(&p);
        sim_peer_drop(&q);
        user_unref(a);
        user_unref(b);
        assert_int_equal(reg.n_users, 0);

        /* the next Users get the new limits */
        a = get_user(&reg, UID_A);
        b = get_user(&reg, UID_B);
        assert_memory_equal(&a->limits, &other, sizeof(other));
        assert_memory_equal(&b->limits, &other, sizeof(other));
        p = sim_peer(a);
        assert_int_equal(sim_charge(&p, UID_C, USER_SLICES, 51), -EDQUOT);
        assert_int_equal(sim_charge(&p, UID_C, USER_SLICES, 50), 0);
        sim_dequeue(&p, UID_C, USER_SLICES, 50);
        sim_release(&p, USER_SLICES, 50);
        sim_peer_drop(&p);
        user_unref(a);
        user_unref(b);

        /* another UID still gets the defaults */
        b = get_user(&reg, UID_C);
        assert_memory_equal(&b->limits, &reg.defaults, sizeof(UserLimits));
        user_unref(b);
        assert_registry(&reg);
        user_registry_deinit(&reg);
}

/* --- registry: the quota rules -------------------------------------------- */

/*
 * Between users, limit 1024, for each resource:
 *   B -> p1: 2c <= 1024: 512, not 513;
 *   C -> p2: 3c <= 1024 - 512: 170, not 171;
 *   D -> p3: 4c <= 1024 - 682: 85, not 86 (then taken back);
 *   B's message dequeued, p1 still holds 512: C (c + 170) * 2 - 170 <= 342:
 *   86 more, not 87; p1 releases: (c + 256) * 2 - 256 <= 768: 256 more,
 *   not 257, so C holds 512 in total.
 */
static void test_foreign_vectors(void **state) {
        for (unsigned int res = 0; res < _USER_N; ++res) {
                SimPeer p1, p2, p3;
                UserRegistry reg;
                User *a;

                registry_setup(&reg, UID_A, 1024);
                a = get_user(&reg, UID_A);
                p1 = sim_peer(a);
                p2 = sim_peer(a);
                p3 = sim_peer(a);

                /* a first foreign UID: half of what the user has left */
                assert_int_equal(sim_charge(&p1, UID_B, res, 513), -EDQUOT);
                assert_state(&reg, a, res, UID_B, 0, 0, 0);
                assert_int_equal(sim_charge(&p1, UID_B, res, 512), 0);
                assert_state(&reg, a, res, UID_B, 512, 512, 1);
                assert_int_equal(sim_charge(&p1, UID_B, res, 1), -EDQUOT);
                assert_state(&reg, a, res, UID_B, 512, 512, 1);
                /* its share counts across the user's peers */
                assert_int_equal(sim_charge(&p2, UID_B, res, 1), -EDQUOT);
                assert_state(&reg, a, res, UID_B, 512, 512, 1);

                /* a second: a third of what is left */
                assert_int_equal(sim_charge(&p2, UID_C, res, 171), -EDQUOT);
                assert_state(&reg, a, res, UID_C, 512, 0, 1);
                assert_int_equal(sim_charge(&p2, UID_C, res, 170), 0);
                assert_state(&reg, a, res, UID_C, 682, 170, 2);
                assert_int_equal(user_share_of(a, UID_B, res), 512);

                /* a third: a quarter */
                assert_int_equal(sim_charge(&p3, UID_D, res, 86), -EDQUOT);
                assert_state(&reg, a, res, UID_D, 682, 0, 2);
                assert_int_equal(sim_charge(&p3, UID_D, res, 85), 0);
                assert_state(&reg, a, res, UID_D, 767, 85, 3);
                sim_dequeue(&p3, UID_D, res, 85);
                assert_state(&reg, a, res, UID_D, 767, 0, 2);
                sim_release(&p3, res, 85);
                assert_state(&reg, a, res, UID_D, 682, 0, 2);

                /* B's message is dequeued: its share is back, p1 still holds */
                sim_dequeue(&p1, UID_B, res, 512);
                assert_state(&reg, a, res, UID_B, 682, 0, 1);
                assert_int_equal(sim_charge(&p2, UID_C, res, 87), -EDQUOT);
                assert_int_equal(sim_charge(&p2, UID_C, res, 86), 0);
                assert_state(&reg, a, res, UID_C, 768, 256, 1);
                assert_int_equal(sim_charge(&p2, UID_C, res, 1), -EDQUOT);

                /* p1 lets go too: C may grow to 512 */
                sim_release(&p1, res, 512);
                assert_state(&reg, a, res, UID_C, 256, 256, 1);
                assert_int_equal(sim_charge(&p2, UID_C, res, 257), -EDQUOT);
                assert_int_equal(sim_charge(&p2, UID_C, res, 256), 0);
                assert_state(&reg, a, res, UID_C, 512, 512, 1);
                assert_int_equal(sim_charge(&p2, UID_C, res, 1), -EDQUOT);
                assert_state(&reg, a, res, UID_C, 512, 512, 1);

                sim_dequeue(&p2, UID_C, res, 512);
                sim_release(&p2, res, 512);
                assert_state(&reg, a, res, UID_C, 0, 0, 0);

                sim_peer_drop(&p1);
                sim_peer_drop(&p2);
                sim_peer_drop(&p3);
                user_unref(a);
                assert_int_equal(reg.n_users, 0);
                user_registry_deinit(&reg);
        }
}

/*
 * A user's own charges take no share and are not divided among actors: with
 * limit 1024, its peers take 512, 256, 128 (the per-peer layer alone), and
 * with two foreign actors holding 512 and 170, a third peer still takes
 * half of the 342 left (171, not 172), where a third foreign UID gets 85.
 */
static void test_own_charges(void **state) {
        for (unsigned int res = 0; res < _USER_N; ++res) {
                SimPeer p1, p2, p3;
                UserRegistry reg;
                User *a;

                registry_setup(&reg, UID_A, 1024);
                a = get_user(&reg, UID_A);
                p1 = sim_peer(a);
                p2 = sim_peer(a);
                p3 = sim_peer(a);

                assert_int_equal(sim_charge(&p1, UID_A, res, 513), -EDQUOT);
                assert_state(&reg, a, res, UID_A, 0, 0, 0);
                assert_int_equal(sim_charge(&p1, UID_A, res, 512), 0);
                assert_state(&reg, a, res, UID_A, 512, 0, 0);
                assert_int_equal(sim_charge(&p2, UID_A, res, 257), -EDQUOT);
                assert_int_equal(sim_charge(&p2, UID_A, res, 256), 0);
                assert_state(&reg, a, res, UID_A, 768, 0, 0);
                assert_int_equal(sim_charge(&p3, UID_A, res, 129), -EDQUOT);
                assert_int_equal(sim_charge(&p3, UID_A, res, 128), 0);
                assert_state(&reg, a, res, UID_A, 896, 0, 0);
                /* no share was recorded for the user itself */
                assert_int_equal(user_share_of(a, UID_A, res), 0);


                sim_release(&p1, res, 512);
                sim_release(&p2, res, 256);
                sim_release(&p3, res, 128);
                assert_state(&reg, a, res, UID_A, 0, 0, 0);

                /* two foreign actors hold shares; the user's own are not divided */
                assert_int_equal(sim_charge(&p1, UID_B, res, 512), 0);
                assert_int_equal(sim_charge(&p2, UID_C, res, 170), 0);
                assert_state(&reg, a, res, UID_C, 682, 170, 2);
                assert_int_equal(sim_charge(&p3, UID_D, res, 86), -EDQUOT);
                assert_int_equal(sim_charge(&p3, UID_A, res, 172), -EDQUOT);
                assert_int_equal(sim_charge(&p3, UID_A, res, 171), 0);
                assert_state(&reg, a, res, UID_C, 853, 170, 2);
                assert_int_equal(user_share_of(a, UID_A, res), 0);

                sim_dequeue(&p1, UID_B, res, 512);
                sim_release(&p1, res, 512);
                sim_dequeue(&p2, UID_C, res, 170);
                sim_release(&p2, res, 170);
                sim_release(&p3, res, 171);
                assert_state(&reg, a, res, UID_C, 0, 0, 0);

                sim_peer_drop(&p1);
                sim_peer_drop(&p2);
                sim_peer_drop(&p3);
                user_unref(a);
                user_registry_deinit(&reg);
        }
}

/*
 * Within the receiving user, (c + held) * 2 - held <= remaining, on every
 * charge: a lone peer 512 and not 513, a second peer then 256 and not 257;
 * a peer already holding 300 grows by 212 (not 213) to 512; a foreign
 * actor into a peer holding 400 gets 112, not 113, though its share rule
 * alone would allow 312; into an empty peer its share rule binds again.
 */
static void test_peer_layer(void **state) {
        for (unsigned int res = 0; res < _USER_N; ++res) {
                SimPeer p1, p2;
                UserRegistry reg;
                User *a;

                registry_setup(&reg, UID_A, 1024);
                a = get_user(&reg, UID_A);
                p1 = sim_peer(a);
                p2 = sim_peer(a);

                /* same-UID and foreign senders alike */
                assert_int_equal(sim_charge(&p1, UID_B, res, 513), -EDQUOT);
                assert_int_equal(sim_charge(&p1, UID_A, res, 513), -EDQUOT);
                assert_int_equal(sim_charge(&p1, UID_A, res, 512), 0);
                assert_state(&reg, a, res, UID_B, 512, 0, 0);
                assert_int_equal(sim_charge(&p1, UID_A, res, 1), -EDQUOT);
                assert_int_equal(sim_charge(&p2, UID_A, res, 257), -EDQUOT);
                assert_int_equal(sim_charge(&p2, UID_B, res, 257), -EDQUOT);
                assert_int_equal(sim_charge(&p2, UID_A, res, 256), 0);
                assert_state(&reg, a, res, UID_B, 768, 0, 0);
                assert_int_equal(sim_charge(&p2, UID_A, res, 1), -EDQUOT);
                /* p2 letting go does not let p1 beyond half */
                sim_release(&p2, res, 256);
                assert_int_equal(sim_charge(&p1, UID_A, res, 1), -EDQUOT);
                assert_state(&reg, a, res, UID_B, 512, 0, 0);
                sim_release(&p1, res, 512);

                /* what the peer holds counts: 300 + 212 = 512 */
                assert_int_equal(sim_charge(&p1, UID_A, res, 300), 0);
                assert_int_equal(sim_charge(&p1, UID_A, res, 213), -EDQUOT);
                assert_int_equal(sim_charge(&p1, UID_A, res, 212), 0);
                assert_state(&reg, a, res, UID_B, 512, 0, 0);
                sim_release(&p1, res, 512);

                /* it binds foreign actors too */
                assert_int_equal(sim_charge(&p1, UID_A, res, 400), 0);
                assert_int_equal(sim_charge(&p1, UID_B, res, 113), -EDQUOT);
                assert_int_equal(sim_charge(&p1, UID_B, res, 112), 0);
                assert_state(&reg, a, res, UID_B, 512, 112, 1);
                /* into an empty peer, the share rule binds: (c + 112) * 2 - 112 <= 512 */
                assert_int_equal(sim_charge(&p2, UID_B, res, 201), -EDQUOT);
                assert_int_equal(sim_charge(&p2, UID_B, res, 200), 0);
                assert_state(&reg, a, res, UID_B, 712, 312, 1);

                sim_dequeue(&p1, UID_B, res, 112);
                sim_dequeue(&p2, UID_B, res, 200);
                sim_release(&p1, res, 512);
                sim_release(&p2, res, 200);
                assert_state(&reg, a, res, UID_B, 0, 0, 0);

                sim_peer_drop(&p1);
                sim_peer_drop(&p2);
                user_unref(a);
                user_registry_deinit(&reg);
        }
}

/*
 * 1024 (= the limit) is refused by the half rules, anything larger could
 * never fit; nothing is charged either way, with or without shares held
 */
static void test_overflow_vectors(void **state) {
        static const struct {
                uint64_t c;
                int r;
        } vectors[] = {
                { 1024, -EDQUOT },
                { 1025, -EMSGSIZE },
                { 2048, -EMSGSIZE },
                { UINT32_MAX, -EMSGSIZE },
                { (uint64_t)UINT32_MAX + 1, -EMSGSIZE },
                { UINT64_MAX / 2 + 1, -EMSGSIZE },
                { UINT64_MAX - 1, -EMSGSIZE },
                { UINT64_MAX, -EMSGSIZE },
        };
        static const uint32_t actors[] = { UID_B, UID_A };

        for (unsigned int res = 0; res < _USER_N; ++res) {
                UserRegistry reg;
                SimPeer p1, p2;
                User *a;

                registry_setup(&reg, UID_A, 1024);
                a = get_user(&reg, UID_A);
                p1 = sim_peer(a);
                p2 = sim_peer(a);

                for (size_t i = 0; i < ARRAY_SIZE(vectors); ++i)
                        for (size_t j = 0; j < ARRAY_SIZE(actors); ++j) {
                                assert_int_equal(sim_charge(&p1, actors[j], res, vectors[i].c),
                                                 vectors[i].r);
                                assert_state(&reg, a, res, UID_B, 0, 0, 0);
                                assert_int_equal(p1.held[res], 0);
                        }

                /* the same with a share and a holding in place */
                assert_int_equal(sim_charge(&p1, UID_B, res, 100), 0);
                for (size_t i = 0; i < ARRAY_SIZE(vectors); ++i)
                        for (size_t j = 0; j < ARRAY_SIZE(actors); ++j) {
                                assert_int_equal(sim_charge(&p1, actors[j], res, vectors[i].c),
                                                 vectors[i].r);
                                assert_int_equal(sim_charge(&p2, actors[j], res, vectors[i].c),
                                                 vectors[i].r);
                                assert_state(&reg, a, res, UID_B, 100, 100, 1);
                                assert_int_equal(p1.held[res], 100);
                                assert_int_equal(p2.held[res], 0);
                        }
                sim_dequeue(&p1, UID_B, res, 100);
                sim_release(&p1, res, 100);
                assert_state(&reg, a, res, UID_B, 0, 0, 0);

                sim_peer_drop(&p1);
                sim_peer_drop(&p2);
                user_unref(a);
                user_registry_deinit(&reg);
        }
}

/*
 * Amounts near UINT64_MAX in the products are refusals, never wrapped
 * values: a wrapping (c + x) * k - x comes out small and would be accepted.
 */
static void test_overflow_no_wrap(void **state) {
        static const uint64_t big_held[] = {
                UINT64_MAX, UINT64_MAX - 1, UINT64_MAX / 2 + 1, UINT64_MAX / 2,
        };

        for (unsigned int res = 0; res < _USER_N; ++res) {
                uint64_t held[_USER_N] = {}, one[_USER_N] = {};
                UserLimits huge = limits_all(UINT64_MAX);
                UserRegistry reg;
                SimPeer p, p2;
                User *a, *z;

                one[res] = 1;
                registry_setup(&reg, UID_A, 1024);
                assert_int_equal(user_registry_set_override(&reg, UID_E, &huge), 0);
                a = get_user(&reg, UID_A);

                /* what the receiving peer holds, near the top */
                for (size_t i = 0; i < ARRAY_SIZE(big_held); ++i) {
                        held[res] = big_held[i];
                        assert_int_equal(user_check(a, UID_B, held, one), -EDQUOT);
                        assert_int_equal(user_check(a, UID_A, held, one), -EDQUOT);
                        assert_state(&reg, a, res, UID_B, 0, 0, 0);
                }

                /* an actor's share, near the top */
                held[res] = 0;
                for (size_t i = 0; i < ARRAY_SIZE(big_held); ++i) {
                        uint64_t share[_USER_N] = {};

                        share[res] = big_held[i];
                        assert_int_equal(user_share_add(a, UID_B, share), 0);
                        assert_state(&reg, a, res, UID_B, 0, big_held[i], 1);
                        assert_int_equal(user_check(a, UID_B, held, one), -EDQUOT);
                        assert_state(&reg, a, res, UID_B, 0, big_held[i], 1);
                        user_share_sub(a, UID_B, share);
                        assert_state(&reg, a, res, UID_B, 0, 0, 0);
                }

                /* the user holds more than its limit: nothing is left, not 2^64 - x */
                user_add(a, res, 2000);
                assert_int_equal(user_check(a, UID_B, held, one), -EDQUOT);
                assert_int_equal(user_check(a, UID_A, held, one), -EDQUOT);
                user_sub(a, res, 2000);
                user_add(a, res, 1024);
                assert_int_equal(user_check(a, UID_B, held, one), -EDQUOT);
                assert_int_equal(user_check(a, UID_A, held, one), -EDQUOT);
                user_sub(a, res, 1024);
                assert_state(&reg, a, res, UID_B, 0, 0, 0);

                /* a limit of UINT64_MAX: 2c overflows from c = 2^63 on */
                z = get_user(&reg, UID_E);
                p = sim_peer(z);
                p2 = sim_peer(z);
                assert_int_equal(sim_charge(&p, UID_B, res, UINT64_MAX / 2 + 1), -EDQUOT);
                assert_int_equal(sim_charge(&p, UID_E, res, UINT64_MAX / 2 + 1), -EDQUOT);
                assert_int_equal(sim_charge(&p, UID_B, res, UINT64_MAX), -EDQUOT);
                assert_state(&reg, z, res, UID_B, 0, 0, 0);
                assert_int_equal(sim_charge(&p, UID_B, res, UINT64_MAX / 2), 0);
                assert_state(&reg, z, res, UID_B, UINT64_MAX / 2, UINT64_MAX / 2, 1);
                /* B at 2^63 - 1: (1 + share) * 2 overflows */
                assert_int_equal(sim_charge(&p, UID_B, res, 1), -EDQUOT);
                /* ... and so does p's held amount for anyone */
                assert_int_equal(sim_charge(&p, UID_C, res, 1), -EDQUOT);
                /* C into another peer: 3c <= 2^63 */
                assert_int_equal(sim_charge(&p2, UID_C, res, UINT64_MAX / 4), -EDQUOT);
                assert_int_equal(sim_charge(&p2, UID_C, res, 1), 0);
                assert_state(&reg, z, res, UID_C, UINT64_MAX / 2 + 1, 1, 2);
                sim_dequeue(&p2, UID_C, res, 1);
                sim_release(&p2, res, 1);
                sim_dequeue(&p, UID_B, res, UINT64_MAX / 2);
                sim_release(&p, res, UINT64_MAX / 2);
                assert_state(&reg, z, res, UID_B, 0, 0, 0);
                assert_int_equal(sim_charge(&p, UID_E, res, UINT64_MAX / 2), 0);
                assert_state(&reg, z, res, UID_B, UINT64_MAX / 2, 0, 0);
                sim_release(&p, res, UINT64_MAX / 2);

                sim_peer_drop(&p);
                sim_peer_drop(&p2);
                user_unref(z);
                user_unref(a);
                user_registry_deinit(&reg);
        }
}

/*
 * One check covers all resources: a charge that fits in one and not in
 * another is refused as a whole, and one amount that could never fit makes
 * it EMSGSIZE whatever the other resources' state (it will never fit, so
 * the sender must not be told to retry).
 */
static void test_check_all_resources(void **state) {
        uint64_t held[_USER_N] = {};
        UserRegistry reg;
        User *a;

        registry_setup(&reg, UID_A, 1024);
        a = get_user(&reg, UID_A);

        assert_int_equal(user_check(a, UID_B, held, (uint64_t[_USER_N]){
                [USER_SLICES] = 1, [USER_HANDLES] = 2, [USER_BYTES] = 512, [USER_FDS] = 3,
        }), 0);
        assert_int_equal(user_check(a, UID_B, held, (uint64_t[_USER_N]){
                [USER_SLICES] = 1, [USER_HANDLES] = 2, [USER_BYTES] = 8, [USER_FDS] = 513,
        }), -EDQUOT);
        assert_int_equal(user_check(a, UID_B, held, (uint64_t[_USER_N]){
                [USER_SLICES] = 1, [USER_FDS] = 1025,
        }), -EMSGSIZE);
        assert_int_equal(user_check(a, UID_A, held, (uint64_t[_USER_N]){
                [USER_SLICES] = 513, [USER_BYTES] = 8,
        }), -EDQUOT);
        assert_int_equal(user_check(a, UID_B, held, (uint64_t[_USER_N]){}), 0);
        assert_registry(&reg);

        /* slices exhausted, bytes beyond the limit: it could never fit */
        user_add(a, USER_SLICES, 1024);
        held[USER_SLICES] = 1024;
        assert_int_equal(user_check(a, UID_B, held, (uint64_t[_USER_N]){
                [USER_SLICES] = 1, [USER_BYTES] = 2048,
        }), -EMSGSIZE);
        assert_int_equal(user_check(a, UID_A, held, (uint64_t[_USER_N]){
                [USER_SLICES] = 1, [USER_BYTES] = 2048,
        }), -EMSGSIZE);
        user_sub(a, USER_SLICES, 1024);

        for (unsigned int r = 0; r < _USER_N; ++r) {
                assert_int_equal(a->used[r], 0);
                assert_int_equal(a->n_actors[r], 0);
        }
        assert_registry(&reg);
        user_unref(a);
        user_registry_deinit(&reg);
}

/* n_actors counts the foreign actors holding a share, per resource */
static void test_n_actors(void **state) {
        uint64_t slices10[_USER_N] = { [USER_SLICES] = 10 };
        uint64_t slices5[_USER_N] = { [USER_SLICES] = 5 };
        uint64_t bytes3[_USER_N] = { [USER_BYTES] = 3 };
        uint64_t mixed[_USER_N] = { [USER_SLICES] = 1, [USER_HANDLES] = 2, [USER_FDS] = 4 };
        UserRegistry reg;
        User *a;

        registry_setup(&reg, UID_A, 1024);
        a = get_user(&reg, UID_A);

        assert_int_equal(user_share_add(a, UID_B, slices10), 0);
        assert_int_equal(a->n_actors[USER_SLICES], 1);
        assert_int_equal(a->n_actors[USER_BYTES], 0);
        assert_int_equal(n_usages(a), 1);
        /* more of the same actor is not another actor */
        assert_int_equal(user_share_add(a, UID_B, slices5), 0);
        assert_int_equal(a->n_actors[USER_SLICES], 1);
        assert_int_equal(user_share_of(a, UID_B, USER_SLICES), 15);
        assert_int_equal(user_share_add(a, UID_B, bytes3), 0);
        assert_int_equal(a->n_actors[USER_BYTES], 1);
        assert_int_equal(user_share_of(a, UID_B, USER_BYTES), 3);
        assert_int_equal(n_usages(a), 1);
        assert_registry(&reg);

        /* another actor, several resources at once */
        assert_int_equal(user_share_add(a, UID_C, mixed), 0);
        assert_int_equal(a->n_actors[USER_SLICES], 2);
        assert_int_equal(a->n_actors[USER_HANDLES], 1);
        assert_int_equal(a->n_actors[USER_BYTES], 1);
        assert_int_equal(a->n_actors[USER_FDS], 1);
        assert_int_equal(user_share_of(a, UID_C, USER_HANDLES), 2);
        assert_int_equal(user_share_of(a, UID_C, USER_FDS), 4);
        assert_int_equal(user_share_of(a, UID_C, USER_BYTES), 0);
        assert_int_equal(n_usages(a), 2);
        assert_registry(&reg);

        /* the user itself is no actor and holds no share */
        assert_int_equal(user_share_add(a, UID_A, slices10), 0);
        assert_int_equal(a->n_actors[USER_SLICES], 2);
        assert_int_equal(user_share_of(a, UID_A, USER_SLICES), 0);
        assert_int_equal(n_usages(a), 2);
        user_share_sub(a, UID_A, slices10);
        assert_int_equal(a->n_actors[USER_SLICES], 2);
        /* unknown actors hold nothing */
        assert_int_equal(user_share_of(a, UID_D, USER_SLICES), 0);
        user_share_sub(a, UID_D, (uint64_t[_USER_N]){});
        assert_int_equal(n_usages(a), 2);
        assert_registry(&reg);

        /* a share that falls to zero is no actor any more */
        user_share_sub(a, UID_B, slices10);
        assert_int_equal(a->n_actors[USER_SLICES], 2);
        assert_int_equal(user_share_of(a, UID_B, USER_SLICES), 5);
        user_share_sub(a, UID_B, slices5);
        assert_int_equal(a->n_actors[USER_SLICES], 1);
        assert_int_equal(a->n_actors[USER_BYTES], 1);
        assert_int_equal(n_usages(a), 2);
        assert_registry(&reg);
        user_share_sub(a, UID_B, bytes3);
        assert_int_equal(a->n_actors[USER_BYTES], 0);
        assert_int_equal(user_share_of(a, UID_B, USER_BYTES), 0);
        /* nothing left to remember of B */
        assert_int_equal(n_usages(a), 1);
        assert_registry(&reg);

        user_share_sub(a, UID_C, mixed);
        for (unsigned int r = 0; r < _USER_N; ++r)
                assert_int_equal(a->n_actors[r], 0);
        assert_int_equal(n_usages(a), 0);
        assert_registry(&reg);
        user_unref(a);
        user_registry_deinit(&reg);
}

typedef struct RefusalLog {
        unsigned int n;
        UserRefusal seen[8];
} RefusalLog;

static void log_refusal(UserRegistry *registry, const UserRefusal *refusal) {
        RefusalLog *log = registry->userdata;

        assert_true(log->n < ARRAY_SIZE(log->seen));
        log->seen[log->n++] = *refusal;
}

static void assert_refusal(const UserRefusal *r, uint32_t receiver, uint32_t actor,
                           unsigned int resource, uint64_t amount, uint64_t remaining) {
        assert_int_equal(r->receiver, receiver);
        assert_int_equal(r->actor, actor);
        assert_int_equal(r->resource, resource);
        assert_int_equal(r->amount, amount);
        assert_int_equal(r->remaining, remaining);
}

/* the registry hears of the first refusal of each (receiver, actor) pair */
static void test_refusal_callback(void **state) {
        UserLimits e_limits = limits_all(2048);
        SimPeer p1, p2, p3, q;
        RefusalLog log = {};
        UserRegistry reg;
        User *a, *e;

        registry_setup(&reg, UID_A, 1024);
        assert_int_equal(user_registry_set_override(&reg, UID_E, &e_limits), 0);
        reg.on_refusal = log_refusal;
        reg.userdata = &log;
        a = get_user(&reg, UID_A);
        e = get_user(&reg, UID_E);
        p1 = sim_peer(a);
        p2 = sim_peer(a);
        p3 = sim_peer(a);
        q = sim_peer(e);

        assert_int_equal(sim_charge(&p1, UID_B, USER_SLICES, 512), 0);
        assert_int_equal(log.n, 0);
        assert_int_equal(sim_charge(&p1, UID_B, USER_SLICES, 1), -EDQUOT);
        assert_int_equal(log.n, 1);
        assert_refusal(&log.seen[0], UID_A, UID_B, USER_SLICES, 1, 512);
        assert_registry(&reg);

        /* the same pair again: other resource, other peer, after the share is back */
        assert_int_equal(sim_charge(&p1, UID_B, USER_BYTES, 600), -EDQUOT);
        assert_int_equal(sim_charge(&p2, UID_B, USER_SLICES, 300), -EDQUOT);
        sim_dequeue(&p1, UID_B, USER_SLICES, 512);
        sim_release(&p1, USER_SLICES, 512);
        assert_registry(&reg);
        assert_int_equal(sim_charge(&p1, UID_B, USER_FDS, 513), -EDQUOT);
        assert_int_equal(log.n, 1);

        /* another actor into the same user */
        assert_int_equal(sim_charge(&p2, UID_C, USER_BYTES, 513), -EDQUOT);
        assert_int_equal(log.n, 2);
        assert_refusal(&log.seen[1], UID_A, UID_C, USER_BYTES, 513, 1024);
        assert_int_equal(sim_charge(&p2, UID_C, USER_BYTES, 513), -EDQUOT);
        assert_int_equal(log.n, 2);

        /* the same actor into another user */
        assert_int_equal(sim_charge(&q, UID_B, USER_FDS, 1025), -EDQUOT);
        assert_int_equal(log.n, 3);
        assert_refusal(&log.seen[2], UID_E, UID_B, USER_FDS, 1025, 2048);

        /* refused by the per-peer layer: the amount and what the user has left */
        assert_int_equal(sim_charge(&p3, UID_A, USER_HANDLES, 400), 0);
        assert_int_equal(sim_charge(&p3, UID_D, USER_HANDLES, 113), -EDQUOT);
        assert_int_equal(log.n, 4);
        assert_refusal(&log.seen[3], UID_A, UID_D, USER_HANDLES, 113, 624);
        assert_int_equal(sim_charge(&p3, UID_D, USER_HANDLES, 112), 0);
        assert_int_equal(log.n, 4);
        assert_registry(&reg);

        /* accepted charges are never reported */
        assert_int_equal(sim_charge(&p2, UID_C, USER_BYTES, 200), 0);
        assert_int_equal(log.n, 4);

        /* without a callback, a refusal is still a refusal */
        reg.on_refusal = NULL;
        assert_int_equal(sim_charge(&p2, UID_E, USER_SLICES, 1000), -EDQUOT);
        assert_int_equal(log.n, 4);
        assert_registry(&reg);

        sim_dequeue(&p3, UID_D, USER_HANDLES, 112);
        sim_release(&p3, USER_HANDLES, 512);
        sim_dequeue(&p2, UID_C, USER_BYTES, 200);
        sim_release(&p2, USER_BYTES, 200);
        sim_peer_drop(&p1);
        sim_peer_drop(&p2);
        sim_peer_drop(&p3);
        sim_peer_drop(&q);
        user_unref(a);
        user_unref(e);
        assert_int_equal(reg.n_users, 0);
        user_registry_deinit(&reg);
}

/*
 * A user's own refusals leave no usage of itself: usages are foreign
 * actors' (user.h, and bus_validate() checks it)
 */
static void test_own_refusal_no_self_usage(void **state) {
        UserRegistry reg;
        SimPeer p;
        User *a;

        registry_setup(&reg, UID_A, 1024);
        a = get_user(&reg, UID_A);
        p = sim_peer(a);

        assert_int_equal(sim_charge(&p, UID_A, USER_SLICES, 513), -EDQUOT);
        assert_registry(&reg);
        for (RBNode *n = rbtree_first(&a->usages); n; n = rbnode_next(n))
                assert_int_not_equal(container_of(n, UserUsage, user_node)->actor, UID_A);

        sim_peer_drop(&p);
        user_unref(a);
        user_registry_deinit(&reg);
}

/* --- model helpers --------------------------------------------------------- */

/* a bus whose user @uid has these limits (its peers must come after this) */
static void model_setup(Bus *bus, uint32_t uid, uint64_t slices, uint64_t handles,
                        uint64_t bytes, uint64_t fds) {
        UserLimits l = {
                .max = {
                        [USER_SLICES] = slices,
                        [USER_HANDLES] = handles,
                        [USER_BYTES] = bytes,
                        [USER_FDS] = fds,
                },
                .max_peers = USER_DEFAULT_MAX_PEERS,
        };

        bus_init(bus);
        assert_int_equal(user_registry_set_override(&bus->users, uid, &l), 0);
        assert_valid(bus);
}

static void model_free(Bus *bus, Peer **peers, size_t n_peers) {
        for (size_t i = 0; i < n_peers; ++i) {
                peers[i] = peer_free(peers[i]);
                assert_valid(bus);
        }
        assert_int_equal(bus->users.n_users, 0);
        assert_int_equal(bus->n_inflight_fds, 0);
        bus_deinit(bus);
}

static void assert_used(Bus *bus, User *user, uint64_t slices, uint64_t handles,
                        uint64_t bytes, uint64_t fds) {
        assert_valid(bus);
        assert_int_equal(user->used[USER_SLICES], slices);
        assert_int_equal(user->used[USER_HANDLES], handles);
        assert_int_equal(user->used[USER_BYTES], bytes);
        assert_int_equal(user->used[USER_FDS], fds);
}

/* every share of @user is back */
static void assert_no_shares(Bus *bus, User *user) {
        assert_valid(bus);
        for (unsigned int r = 0; r < _USER_N; ++r)
                assert_int_equal(user->n_actors[r], 0);
        for (RBNode *n = rbtree_first(&user->usages); n; n = rbnode_next(n))
                for (unsigned int r = 0; r < _USER_N; ++r)
                        assert_int_equal(container_of(n, UserUsage, user_node)->share[r], 0);
}

static int send_len(Peer *sender, uint64_t dst, size_t len) {
        static const char buf[4096];

        assert_true(len <= sizeof(buf));
        return test_send(sender, 0, &dst, 1, NULL, buf, len, NULL, 0, NULL);
}

static int send_handles(Peer *sender, uint64_t dst, const uint64_t *handles, uint64_t n) {
        return test_send(sender, 0, &dst, 1, NULL, "h", 1, handles, n, NULL);
}

static int send_fds(Peer *sender, uint64_t dst, FdList *fds) {
        return test_send(sender, 0, &dst, 1, NULL, "f", 1, NULL, 0, fds);
}

static FdList *make_fds(size_t n) {
        FdList *list = NULL;
        int fds[64];

        assert_true(n <= ARRAY_SIZE(fds));
        for (size_t i = 0; i < n; ++i) {
                fds[i] = eventfd(0, EFD_CLOEXEC);
                assert_true(fds[i] >= 0);
        }
        assert_int_equal(fdlist_new(&list, fds, n), 0);
        return list;
}

static unsigned int count_open_fds(void) {
        unsigned int n = 0;
        struct dirent *de;
        DIR *d;

        d = opendir("/proc/self/fd");
        assert_non_null(d);
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

/* dequeue the next DATA entry of @peer (its slice stays the peer's) */
static void recv_data(Peer *peer, uint64_t flags, PeerRecv *r) {
        assert_int_equal(test_recv(peer, flags, r), 0);
        assert_int_equal(r->type, BUS1_MSG_DATA);
}

/* new IDs the sending peer chooses (MANAGED and REMOTE clear) */
static uint64_t new_id(unsigned int i) {
        return 0x10000ULL + 8ULL * i;
}

/* --- model: per-resource charging ------------------------------------------ */

/*
 * Slices, limit 16, B alternating between two peers R1, R2 of A (so the
 * per-peer layer, 2 + 2 h1 + h2 <= 16, does not bind): B's share s is all A
 * uses, 2 + s <= 16 - s: 8 messages, the 9th EDQUOT. Two RECVs (no release)
 * bring s to 6 while A still uses 8: 2 + 6 <= 8, one more fits; releasing
 * the two received slices: 2 + 7 <= 9, one more again.
 */
static void test_model_slices(void **state) {
        Peer *r1, *r2, *s;
        PeerRecv rv1, rv2, peek;
        uint64_t id1, id2;
        User *a;
        Bus bus;

        model_setup(&bus, UID_A, 16, 1024, 1 << 20, 64);
        r1 = test_peer_new(&bus, UID_A);
        r2 = test_peer_new(&bus, UID_A);
        s = test_peer_new(&bus, UID_B);
        a = r1->user;
        assert_ptr_equal(r2->user, a);
        assert_int_equal(r1->limits.max_slices, 16);
        id1 = test_transfer(r1, 0x100, s);
        id2 = test_transfer(r2, 0x100, s);
        assert_used(&bus, a, 0, 2, 0, 0);

        for (unsigned int i = 0; i < 8; ++i) {
                assert_int_equal(send_len(s, i % 2 ? id2 : id1, 0), 0);
                assert_used(&bus, a, i + 1, 2, 8 * (i + 1), 0);
                assert_int_equal(user_share_of(a, UID_B, USER_SLICES), i + 1);
                assert_int_equal(user_share_of(a, UID_B, USER_BYTES), 8 * (i + 1));
                assert_int_equal(a->n_actors[USER_SLICES], 1);
        }
        assert_int_equal(send_len(s, id1, 0), -EDQUOT);
        assert_int_equal(send_len(s, id2, 0), -EDQUOT);
        assert_used(&bus, a, 8, 2, 64, 0);
        assert_int_equal(user_share_of(a, UID_B, USER_SLICES), 8);
        assert_int_equal(r1->queue.n_entries, 4);
        assert_int_equal(r2->queue.n_entries, 4);

        /* a PEEK changes nothing */
        assert_int_equal(test_recv(r1, BUS1_RECV_FLAG_PEEK, &peek), 0);
        assert_int_equal(user_share_of(a, UID_B, USER_SLICES), 8);
        assert_int_equal(send_len(s, id1, 0), -EDQUOT);
        assert_valid(&bus);

        /* one dequeue: share 7, A uses 8: 2 + 7 > 8 */
        recv_data(r1, 0, &rv1);
        assert_used(&bus, a, 8, 2, 64, 0);
        assert_int_equal(user_share_of(a, UID_B, USER_SLICES), 7);
        assert_int_equal(send_len(s, id1, 0), -EDQUOT);
        assert_valid(&bus);
        /* two: share 6, 2 + 6 <= 8 */
        recv_data(r2, 0, &rv2);
        assert_used(&bus, a, 8, 2, 64, 0);
        assert_int_equal(user_share_of(a, UID_B, USER_SLICES), 6);
        assert_int_equal(send_len(s, id1, 0), 0);
        assert_used(&bus, a, 9, 2, 72, 0);
        assert_int_equal(user_share_of(a, UID_B, USER_SLICES), 7);
        assert_int_equal(send_len(s, id2, 0), -EDQUOT);
        assert_valid(&bus);

        /* the receivers' own charges stay until SLICE_RELEASE */
        assert_int_equal(peer_slice_release(r1, rv1.offset), 0);
        assert_used(&bus, a, 8, 2, 64, 0);
        assert_int_equal(peer_slice_release(r2, rv2.offset), 0);
        assert_used(&bus, a, 7, 2, 56, 0);
        assert_int_equal(user_share_of(a, UID_B, USER_SLICES), 7);
        assert_int_equal(send_len(s, id2, 0), 0);
        assert_used(&bus, a, 8, 2, 64, 0);
        assert_int_equal(send_len(s, id1, 0), -EDQUOT);
        assert_int_equal(send_len(s, id2, 0), -EDQUOT);
        assert_used(&bus, a, 8, 2, 64, 0);

        /* everything received and released: all back */
        while (test_recv(r1, 0, &rv1) == 0) {
                assert_int_equal(peer_slice_release(r1, rv1.offset), 0);
                assert_valid(&bus);
        }
        while (test_recv(r2, 0, &rv2) == 0) {
                assert_int_equal(peer_slice_release(r2, rv2.offset), 0);
                assert_valid(&bus);
        }
        assert_used(&bus, a, 0, 2, 0, 0);
        assert_no_shares(&bus, a);

        model_free(&bus, (Peer *[]){ s, r1, r2 }, 3);
}

/*
 * Bytes, limit 1024 (slices in 8-byte steps): B -> R1 513 bytes (a 520-byte
 * slice) EDQUOT, 512 fine, then 8 more EDQUOT; C -> R2: 3c <= 512, 168
 * fine, 176 EDQUOT; R1 receives B's message (share back, 680 still used):
 * (c + 168) * 2 - 168 <= 344, 88 more; R1 releases its slice: 256 more,
 * C's total is 512. 1025 bytes could never fit (EMSGSIZE), 1024 is EDQUOT.
 */
static void test_model_bytes(void **state) {
        Peer *r1, *r2, *s, *t;
        uint64_t id1, id2;
        PeerRecv rv;
        User *a;
        Bus bus;

        model_setup(&bus, UID_A, 1024, 1024, 1024, 64);
        r1 = test_peer_new(&bus, UID_A);
        r2 = test_peer_new(&bus, UID_A);
        s = test_peer_new(&bus, UID_B);
        t = test_peer_new(&bus, UID_C);
        a = r1->user;
        id1 = test_transfer(r1, 0x100, s);
        id2 = test_transfer(r2, 0x100, t);
        assert_used(&bus, a, 0, 2, 0, 0);

        assert_int_equal(send_len(s, id1, 1025), -EMSGSIZE);
        assert_int_equal(send_len(s, id1, 1024), -EDQUOT);
        assert_int_equal(send_len(s, id1, 513), -EDQUOT);
        assert_used(&bus, a, 0, 2, 0, 0);
        assert_int_equal(send_len(s, id1, 512), 0);
        assert_used(&bus, a, 1, 2, 512, 0);
        assert_int_equal(user_share_of(a, UID_B, USER_BYTES), 512);
        assert_int_equal(send_len(s, id1, 1), -EDQUOT);
        assert_int_equal(send_len(s, id1, 0), -EDQUOT);
        assert_used(&bus, a, 1, 2, 512, 0);

        assert_int_equal(send_len(t, id2, 169), -EDQUOT);
        assert_used(&bus, a, 1, 2, 512, 0);
        assert_int_equal(send_len(t, id2, 168), 0);
        assert_used(&bus, a, 2, 2, 680, 0);
        assert_int_equal(user_share_of(a, UID_C, USER_BYTES), 168);
        assert_int_equal(a->n_actors[USER_BYTES], 2);
        assert_int_equal(send_len(t, id2, 1), -EDQUOT);
        assert_used(&bus, a, 2, 2, 680, 0);

        /* B's message dequeued, its slice still R1's */
        recv_data(r1, 0, &rv);
        assert_used(&bus, a, 2, 2, 680, 0);
        assert_int_equal(user_share_of(a, UID_B, USER_BYTES), 0);
        assert_int_equal(a->n_actors[USER_BYTES], 1);
        assert_int_equal(send_len(t, id2, 89), -EDQUOT);
        assert_int_equal(send_len(t, id2, 88), 0);
        assert_used(&bus, a, 3, 2, 768, 0);
        assert_int_equal(send_len(t, id2, 1), -EDQUOT);

        /* R1 lets go: C may grow to 512 */
        assert_int_equal(peer_slice_release(r1, rv.offset), 0);
        assert_used(&bus, a, 2, 2, 256, 0);
        assert_int_equal(send_len(t, id2, 257), -EDQUOT);
        assert_int_equal(send_len(t, id2, 256), 0);
        assert_used(&bus, a, 3, 2, 512, 0);
        assert_int_equal(user_share_of(a, UID_C, USER_BYTES), 512);
        assert_int_equal(send_len(t, id2, 1), -EDQUOT);
        assert_used(&bus, a, 3, 2, 512, 0);

        model_free(&bus, (Peer *[]){ s, t, r1, r2 }, 4);
}

/*
 * Handles, limit 16; R holds its node's pin (1): B attaching k handles
 * needs 2k <= 15 (share) and (k + 1) * 2 - 1 <= 15 (R): 7, not 8. After
 * R receives them the share is back but R holds 8: (1 + 8) * 2 - 8 > 8, so
 * the per-peer layer refuses even one, until R releases them.
 */
static void test_model_handles(void **state) {
        uint64_t ids[8], got[7], out;
        Peer *r, *s;
        uint64_t idr;
        PeerRecv rv;
        User *a, *b;
        Bus bus;

        model_setup(&bus, UID_A, 1024, 16, 1 << 20, 64);
        r = test_peer_new(&bus, UID_A);
        s = test_peer_new(&bus, UID_B);
        a = r->user;
        b = s->user;
        idr = test_transfer(r, 0x100, s);
        assert_used(&bus, a, 0, 1, 0, 0);
        assert_used(&bus, b, 0, 1, 0, 0);
        for (unsigned int i = 0; i < ARRAY_SIZE(ids); ++i)
                ids[i] = new_id(i);

        /* refused: the nodes the send would have created are gone again */
        assert_int_equal(send_handles(s, idr, ids, 8), -EDQUOT);
        assert_used(&bus, a, 0, 1, 0, 0);
        assert_used(&bus, b, 0, 1, 0, 0);
        assert_int_equal(s->n_nodes, 0);
        assert_int_equal(send_handles(s, idr, ids, 7), 0);
        assert_used(&bus, a, 1, 8, 64, 0);
        assert_int_equal(user_share_of(a, UID_B, USER_HANDLES), 7);
        assert_used(&bus, b, 0, 8, 0, 0);
        assert_int_equal(send_handles(s, idr, ids, 1), -EDQUOT);
        assert_used(&bus, a, 1, 8, 64, 0);

        recv_data(r, 0, &rv);
        assert_int_equal(rv.n_handles, 7);
        assert_used(&bus, a, 1, 8, 64, 0);
        assert_int_equal(user_share_of(a, UID_B, USER_HANDLES), 0);
        assert_int_equal(a->n_actors[USER_HANDLES], 0);
        assert_int_equal(peer_slice_release(r, rv.offset), 0);
        assert_used(&bus, a, 0, 8, 0, 0);
        assert_int_equal(send_handles(s, idr, ids, 1), -EDQUOT);
        assert_int_equal(peer_handle_transfer(s, 0, ids[0], r, &out), -EDQUOT);
        assert_used(&bus, a, 0, 8, 0, 0);

        /* the handles stay charged until released, one by one */
        for (unsigned int i = 0; i < 7; ++i) {
                got[i] = test_slice_handle(r, &rv, i);
                assert_int_equal(peer_handle_release(r, got[i]), 0);
                assert_used(&bus, a, 0, 7 - i, 0, 0);
        }
        assert_no_shares(&bus, a);

        /* transfers are charged the same way, with no share (nothing is queued) */
        for (unsigned int i = 0; i < 7; ++i) {
                assert_int_equal(peer_handle_transfer(s, 0, ids[i], r, &out), 0);
                assert_used(&bus, a, 0, 2 + i, 0, 0);
                assert_int_equal(user_share_of(a, UID_B, USER_HANDLES), 0);
        }
        assert_int_equal(peer_handle_transfer(s, 0, ids[7], r, &out), -EDQUOT);
        assert_used(&bus, a, 0, 8, 0, 0);
        assert_int_equal(s->n_nodes, 7);

        model_free(&bus, (Peer *[]){ r, s }, 2);
}

/*
 * In-flight fds, limit 16: B -> R1: 9 EDQUOT, 8 fine, 1 more EDQUOT; the
 * charge goes at dequeue (the fds leave the broker), not at SLICE_RELEASE.
 * Nothing is held once all is received: the process has its fds back.
 */
static void test_model_fds(void **state) {
        unsigned int baseline = count_open_fds();
        FdList *nine, *eight, *one;
        uint64_t id1, id2;
        Peer *r1, *r2, *s;
        PeerRecv rv;
        User *a;
        Bus bus;

        model_setup(&bus, UID_A, 1024, 1024, 1 << 20, 16);
        r1 = test_peer_new(&bus, UID_A);
        r2 = test_peer_new(&bus, UID_A);
        s = test_peer_new(&bus, UID_B);
        a = r1->user;
        id1 = test_transfer(r1, 0x100, s);
        id2 = test_transfer(r2, 0x100, s);
        nine = make_fds(9);
        eight = make_fds(8);
        one = make_fds(1);

        assert_int_equal(send_fds(s, id1, nine), -EDQUOT);
        assert_used(&bus, a, 0, 2, 0, 0);
        assert_int_equal(nine->n_refs, 1);
        assert_int_equal(send_fds(s, id1, eight), 0);
        assert_used(&bus, a, 1, 2, 8 + 32, 8);
        assert_int_equal(user_share_of(a, UID_B, USER_FDS), 8);
        assert_int_equal(bus.n_inflight_fds, 8);
        assert_int_equal(send_fds(s, id1, one), -EDQUOT);
        assert_int_equal(send_fds(s, id2, one), -EDQUOT);
        assert_used(&bus, a, 1, 2, 40, 8);

        /* dequeued: the fds are handed over and no longer charged */
        recv_data(r1, BUS1_RECV_FLAG_INSTALL_FDS, &rv);
        assert_non_null(rv.fds);
        assert_int_equal(rv.fds->n_fds, 8);
        assert_used(&bus, a, 1, 2, 40, 0);
        assert_int_equal(user_share_of(a, UID_B, USER_FDS), 0);
        assert_int_equal(bus.n_inflight_fds, 0);
        peer_recv_deinit(&rv);
        assert_int_equal(send_fds(s, id2, one), 0);
        assert_used(&bus, a, 2, 2, 56, 1);
        assert_int_equal(peer_slice_release(r1, rv.offset), 0);
        assert_used(&bus, a, 1, 2, 16, 1);

        /* without INSTALL_FDS they are closed, the charge goes just the same */
        recv_data(r2, 0, &rv);
        assert_null(rv.fds);
        assert_used(&bus, a, 1, 2, 16, 0);
        assert_int_equal(peer_slice_release(r2, rv.offset), 0);
        assert_used(&bus, a, 0, 2, 0, 0);
        assert_no_shares(&bus, a);

        nine = fdlist_unref(nine);
        eight = fdlist_unref(eight);
        one = fdlist_unref(one);
        assert_int_equal(count_open_fds(), baseline);
        model_free(&bus, (Peer *[]){ r1, r2, s }, 3);
}

/*
 * Senders of the receiving UID take no share, but the per-peer layer holds
 * them too: Q -> R1 (slices 16): (1 + k) * 2 - k <= 16 - k, 8 messages;
 * then R2: 4 (2 + 2k <= 8); fds likewise (limit 16, R1 8, R2 then 4).
 */
static void test_model_same_uid(void **state) {
        Peer *r1, *r2, *q;
        uint64_t id1, id2;
        FdList *four, *five;
        User *a;
        Bus bus;

        model_setup(&bus, UID_A, 16, 1024, 1 << 20, 16);
        r1 = test_peer_new(&bus, UID_A);
        r2 = test_peer_new(&bus, UID_A);
        q = test_peer_new(&bus, UID_A);
        a = r1->user;
        id1 = test_transfer(r1, 0x100, q);
        id2 = test_transfer(r2, 0x100, q);
        assert_used(&bus, a, 0, 4, 0, 0);

        for (unsigned int i = 0; i < 8; ++i) {
                assert_int_equal(send_len(q, id1, 0), 0);
                assert_used(&bus, a, i + 1, 4, 8 * (i + 1), 0);
        }
        assert_int_equal(send_len(q, id1, 0), -EDQUOT);
        assert_used(&bus, a, 8, 4, 64, 0);
        for (unsigned int i = 0; i < 4; ++i) {
                assert_int_equal(send_len(q, id2, 0), 0);
                assert_used(&bus, a, 9 + i, 4, 72 + 8 * i, 0);
        }
        assert_int_equal(send_len(q, id2, 0), -EDQUOT);
        assert_used(&bus, a, 12, 4, 96, 0);
        assert_no_shares(&bus, a);

        test_flush(r1);
        test_flush(r2);
        assert_int_equal(peer_handle_release(q, id1), 0);
        assert_int_equal(peer_handle_release(q, id2), 0);
        assert_used(&bus, a, 0, 0, 0, 0);
        id1 = test_transfer(r1, 0x100, q);
        id2 = test_transfer(r2, 0x100, q);

        four = make_fds(4);
        five = make_fds(5);
        for (unsigned int i = 0; i < 2; ++i) {
                assert_int_equal(send_fds(q, id1, four), 0);
                assert_used(&bus, a, i + 1, 4, 24 * (i + 1), 4 * (i + 1));
        }
        assert_int_equal(send_fds(q, id1, four), -EDQUOT);
        assert_int_equal(send_fds(q, id2, five), -EDQUOT);
        assert_int_equal(send_fds(q, id2, four), 0);
        assert_used(&bus, a, 3, 4, 72, 12);
        assert_no_shares(&bus, a);
        fdlist_unref(four);
        fdlist_unref(five);

        model_free(&bus, (Peer *[]){ r1, r2, q }, 3);
}

/*
 * A message larger than the receiving user's limit could never fit: bytes
 * 1025 > 1024, 17 fds or handles > 16; EMSGSIZE, also with CONTINUE, and
 * nothing charged.
 */
static void test_model_msgsize(void **state) {
        uint64_t ids[17], err = 0, idr;
        FdList *fds;
        Peer *r, *s, *q;
        User *a, *b;
        Bus bus;

        model_setup(&bus, UID_A, 1024, 16, 1024, 16);
        r = test_peer_new(&bus, UID_A);
        s = test_peer_new(&bus, UID_B);
        q = test_peer_new(&bus, UID_A);
        a = r->user;
        b = s->user;
        idr = test_transfer(r, 0x100, s);
        test_transfer(r, 0x100, q);
        for (unsigned int i = 0; i < ARRAY_SIZE(ids); ++i)
                ids[i] = new_id(i);
        assert_used(&bus, a, 0, 2, 0, 0);

        assert_int_equal(send_len(s, idr, 1025), -EMSGSIZE);
        assert_int_equal(test_send(s, BUS1_SEND_FLAG_CONTINUE, &idr, 1, &err,
                                   (char[1100]){}, 1100, NULL, 0, NULL), -EMSGSIZE);
        assert_used(&bus, a, 0, 2, 0, 0);

        fds = make_fds(17);
        assert_int_equal(send_fds(s, idr, fds), -EMSGSIZE);
        assert_int_equal(fds->n_refs, 1);
        fdlist_unref(fds);
        assert_used(&bus, a, 0, 2, 0, 0);

        assert_int_equal(send_handles(s, idr, ids, 17), -EMSGSIZE);
        assert_used(&bus, a, 0, 2, 0, 0);
        assert_used(&bus, b, 0, 1, 0, 0);
        assert_int_equal(s->n_nodes, 0);
        assert_no_shares(&bus, a);

        model_free(&bus, (Peer *[]){ r, s, q }, 3);
}

/*
 * A multicast stages on every destination before it commits: at B's share
 * 7 of A's 16 slices, R1's copy fits (2 + 7 <= 9) and R2's does not
 * (2 + 8 > 8); the send fails as a whole and R1's staged charges, handle
 * reservations and the node the send named as a new ID are all back. With
 * CONTINUE, R1's copy is delivered and R2's is EDQUOT.
 */
static void test_model_multicast_unwind(void **state) {
        uint64_t dsts[2], errors[2], handle = new_id(0);
        Peer *r1, *r2, *s;
        User *a, *b;
        Bus bus;

        model_setup(&bus, UID_A, 16, 1024, 1 << 20, 64);
        r1 = test_peer_new(&bus, UID_A);
        r2 = test_peer_new(&bus, UID_A);
        s = test_peer_new(&bus, UID_B);
        a = r1->user;
        b = s->user;
        dsts[0] = test_transfer(r1, 0x100, s);
        dsts[1] = test_transfer(r2, 0x100, s);

        for (unsigned int i = 0; i < 3; ++i) {
                assert_int_equal(test_send(s, 0, dsts, 2, NULL, "", 0, NULL, 0, NULL), 0);
                assert_used(&bus, a, 2 * (i + 1), 2, 16 * (i + 1), 0);
        }
        assert_int_equal(send_len(s, dsts[0], 0), 0);
        assert_used(&bus, a, 7, 2, 56, 0);
        assert_int_equal(user_share_of(a, UID_B, USER_SLICES), 7);

        assert_int_equal(test_send(s, 0, dsts, 2, NULL, "x", 1, &handle, 1, NULL), -EDQUOT);
        assert_used(&bus, a, 7, 2, 56, 0);
        assert_used(&bus, b, 0, 2, 0, 0);
        assert_int_equal(user_share_of(a, UID_B, USER_SLICES), 7);
        assert_int_equal(user_share_of(a, UID_B, USER_HANDLES), 0);
        assert_int_equal(r1->queue.n_entries, 4);
        assert_int_equal(r2->queue.n_entries, 3);
        assert_int_equal(s->n_nodes, 0);

        assert_int_equal(test_send(s, BUS1_SEND_FLAG_CONTINUE, dsts, 2, errors, "x", 1,
                                   &handle, 1, NULL), 0);
        assert_int_equal(errors[0], 0);
        assert_int_equal(errors[1], EDQUOT);
        assert_used(&bus, a, 8, 3, 72, 0);
        assert_int_equal(user_share_of(a, UID_B, USER_SLICES), 8);
        assert_int_equal(user_share_of(a, UID_B, USER_HANDLES), 1);
        assert_int_equal(r1->queue.n_entries, 5);
        assert_int_equal(r2->queue.n_entries, 3);

        model_free(&bus, (Peer *[]){ r1, r2, s }, 3);
}

/* what R's user is charged in test_model_drop_*: queued and received messages */
static void fill_for_drop(Bus *bus, Peer *r, Peer *s, Peer *t, Peer *q, uint64_t ids, uint64_t idt,
                          uint64_t idq) {
        uint64_t hs[2] = { new_id(0), new_id(1) }, ht = new_id(2);
        FdList *fds = make_fds(3);
        PeerRecv rv;

        assert_int_equal(send_handles(s, ids, hs, 2), 0);
        assert_valid(bus);
        assert_int_equal(send_fds(s, ids, fds), 0);
        assert_valid(bus);
        assert_int_equal(send_len(s, ids, 100), 0);
        assert_valid(bus);
        assert_int_equal(send_handles(t, idt, &ht, 1), 0);
        assert_valid(bus);
        assert_int_equal(send_fds(t, idt, fds), 0);
        assert_valid(bus);
        assert_int_equal(send_len(q, idq, 40), 0);
        assert_valid(bus);
        assert_int_equal(send_fds(q, idq, fds), 0);
        assert_valid(bus);
        fdlist_unref(fds);
        /* R's seed: its own charge */
        assert_int_equal(test_send(r, BUS1_SEND_FLAG_SEED, NULL, 0, NULL, "seed", 4,
                                   NULL, 0, NULL), 0);
        assert_valid(bus);

        /* R receives S's first two (handles; fds closed), keeping the slices */
        recv_data(r, 0, &rv);
        assert_int_equal(rv.n_handles, 2);
        assert_valid(bus);
        recv_data(r, 0, &rv);
        assert_valid(bus);
}

/*
 * PEER_RESET FLUSH drops every queued message and received slice and
 * releases every handle: the user is charged nothing but the seed, every
 * share is back. Then DISCONNECT drops the seed: nothing left.
 */
static void test_model_drop_flush(void **state) {
        uint64_t ids, idt, idq;
        Peer *r, *s, *t, *q;
        User *a;
        Bus bus;

        model_setup(&bus, UID_A, 64, 64, 4096, 64);
        r = test_peer_new(&bus, UID_A);
        s = test_peer_new(&bus, UID_B);
        t = test_peer_new(&bus, UID_C);
        q = test_peer_new(&bus, UID_A);
        a = r->user;
        ids = test_transfer(r, 0x100, s);
        idt = test_transfer(r, 0x100, t);
        idq = test_transfer(r, 0x100, q);
        assert_used(&bus, a, 0, 2, 0, 0);

        fill_for_drop(&bus, r, s, t, q, ids, idt, idq);
        assert_true(a->used[USER_SLICES] > 1);
        assert_true(a->used[USER_HANDLES] > 2);
        assert_true(a->used[USER_FDS] > 0);
        assert_int_equal(a->n_actors[USER_SLICES], 2);

        test_flush(r);
        /* the seed (one 8-byte slice) and Q's handle to R's (destroyed) node */
        assert_used(&bus, a, 1, 1, 8, 0);
        assert_no_shares(&bus, a);
        assert_int_equal(bus.n_inflight_fds, 0);

        assert_int_equal(peer_disconnect(r), 0);
        assert_used(&bus, a, 0, 1, 0, 0);
        test_expect_notification(q, BUS1_MSG_NODE_DESTROY, idq, 0);
        assert_int_equal(peer_handle_release(q, idq), 0);
        assert_used(&bus, a, 0, 0, 0, 0);
        assert_no_shares(&bus, a);
        assert_int_equal(n_usages(a), 0);

        model_free(&bus, (Peer *[]){ r, s, t, q }, 4);
}

/* PEER_DISCONNECT, or peer_free() alone, returns every charge too */
static void test_model_drop_disconnect(void **state) {
        for (unsigned int variant = 0; variant < 2; ++variant) {
                uint64_t ids, idt, idq, n_users;
                Peer *r, *s, *t, *q;
                User *a;
                Bus bus;

                model_setup(&bus, UID_A, 64, 64, 4096, 64);
                r = test_peer_new(&bus, UID_A);
                s = test_peer_new(&bus, UID_B);
                t = test_peer_new(&bus, UID_C);
                q = test_peer_new(&bus, UID_A);
                a = r->user;
                ids = test_transfer(r, 0x100, s);
                idt = test_transfer(r, 0x100, t);
                idq = test_transfer(r, 0x100, q);
                fill_for_drop(&bus, r, s, t, q, ids, idt, idq);
                n_users = bus.users.n_users;

                if (variant == 0)
                        assert_int_equal(peer_disconnect(r), 0);
                else
                        r = peer_free(r);
                /* only Q's handle to R's destroyed node is left */
                assert_used(&bus, a, 0, 1, 0, 0);
                assert_no_shares(&bus, a);
                assert_int_equal(n_usages(a), 0);
                assert_int_equal(bus.n_inflight_fds, 0);
                assert_int_equal(bus.users.n_users, n_users);

                /* Q goes too: A's user is gone with its last peer */
                if (variant == 1) {
                        q = peer_free(q);
                        assert_valid(&bus);
                        assert_int_equal(bus.users.n_users, n_users - 1);
                }
                model_free(&bus, (Peer *[]){ r, s, t, q }, 4);
        }
}

/*
 * Messages a sender leaves behind keep its share until they are dequeued;
 * a destroyed node whose owner lets go of it drops its queued messages, and
 * every charge with them.
 */
static void test_model_drop_sender_and_node(void **state) {
        uint64_t ids, n100 = 0x100;
        Peer *r, *s;
        PeerRecv rv;
        User *a;
        Bus bus;

        model_setup(&bus, UID_A, 64, 64, 4096, 64);
        r = test_peer_new(&bus, UID_A);
        s = test_peer_new(&bus, UID_B);
        a = r->user;
        ids = test_transfer(r, 0x100, s);
        assert_int_equal(send_len(s, ids, 10), 0);
        assert_int_equal(send_len(s, ids, 20), 0);
        assert_used(&bus, a, 2, 1, 40, 0);

        /* the sender goes: its messages, and its share, stay */
        s = peer_free(s);
        assert_used(&bus, a, 2, 1, 40, 0);
        assert_int_equal(user_share_of(a, UID_B, USER_SLICES), 2);
        assert_int_equal(user_share_of(a, UID_B, USER_BYTES), 40);
        recv_data(r, 0, &rv);
        assert_int_equal(user_share_of(a, UID_B, USER_SLICES), 1);
        assert_int_equal(peer_slice_release(r, rv.offset), 0);
        assert_used(&bus, a, 1, 1, 24, 0);

        /* destroying the node and releasing its owner handle drops the rest */
        s = test_peer_new(&bus, UID_B);
        ids = test_transfer(r, 0x100, s);
        assert_int_equal(send_len(s, ids, 30), 0);
        assert_used(&bus, a, 2, 1, 56, 0);
        assert_int_equal(peer_nodes_destroy(r, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES,
                                            &n100, 1), 0);
        assert_used(&bus, a, 0, 0, 0, 0);
        assert_no_shares(&bus, a);
        assert_int_equal(n_usages(a), 0);

        model_free(&bus, (Peer *[]){ r, s }, 2);
}

/* a UID has at most max_peers peers; a peer that goes makes room */
static void test_model_max_peers(void **state) {
        UserLimits l = limits_all(1024);
        Peer *p[3], *other, *extra = NULL;
        PeerCreds creds = { .uid = UID_A, .gid = UID_A, .pid = 1, .tid = 1 };
        Bus bus;

        bus_init(&bus);
        l.max_peers = 2;
        assert_int_equal(user_registry_set_override(&bus.users, UID_A, &l), 0);
        p[0] = test_peer_new(&bus, UID_A);
        p[1] = test_peer_new(&bus, UID_A);
        assert_int_equal(p[0]->user->n_peers, 2);
        assert_valid(&bus);

        assert_int_equal(peer_new(&extra, &bus, &creds), -EDQUOT);
        assert_null(extra);
        assert_int_equal(bus.n_peers, 2);
        assert_int_equal(p[0]->user->n_peers, 2);
        assert_int_equal(p[0]->user->n_refs, 2);
        assert_valid(&bus);

        /* another UID is not affected */
        other = test_peer_new(&bus, UID_B);
        assert_valid(&bus);

        p[1] = peer_free(p[1]);
        assert_valid(&bus);
        assert_int_equal(p[0]->user->n_peers, 1);
        p[2] = test_peer_new(&bus, UID_A);
        assert_ptr_equal(p[2]->user, p[0]->user);
        assert_valid(&bus);
        assert_int_equal(peer_new(&extra, &bus, &creds), -EDQUOT);
        assert_null(extra);
        assert_valid(&bus);

        model_free(&bus, (Peer *[]){ p[0], p[2], other }, 3);
}

/*
 * Notifications are paid for when the handle or node is created: with A's
 * handle quota (16) exhausted (R holds 8: its pin and 7 of B's nodes; R2
 * holds 4; neither may take one more), NODE_DESTROY and NODE_RELEASE still
 * arrive.
 */
static void test_model_notifications_under_quota(void **state) {
        uint64_t in_r[7], in_r2[4], out, nid, idr;
        Peer *r, *r2, *s;
        User *a;
        Bus bus;

        model_setup(&bus, UID_A, 1024, 16, 1 << 20, 64);
        r = test_peer_new(&bus, UID_A);
        r2 = test_peer_new(&bus, UID_A);
        s = test_peer_new(&bus, UID_B);
        a = r->user;
        idr = test_transfer(r, 0x100, s);
        assert_used(&bus, a, 0, 1, 0, 0);

        for (unsigned int i = 0; i < 7; ++i) {
                in_r[i] = test_transfer(s, new_id(i), r);
                assert_used(&bus, a, 0, 2 + i, 0, 0);
        }
        assert_int_equal(peer_handle_transfer(s, 0, new_id(7), r, &out), -EDQUOT);
        for (unsigned int i = 0; i < 4; ++i) {
                in_r2[i] = test_transfer(s, new_id(i), r2);
                assert_used(&bus, a, 0, 9 + i, 0, 0);
        }
        assert_int_equal(peer_handle_transfer(s, 0, new_id(4), r2, &out), -EDQUOT);
        assert_int_equal(peer_handle_transfer(s, 0, new_id(6), r, &out), -EDQUOT);
        assert_int_equal(send_handles(s, idr, &(uint64_t){ new_id(0) }, 1), -EDQUOT);
        assert_used(&bus, a, 0, 12, 0, 0);

        /* B destroys node 0, which R and R2 hold */
        nid = new_id(0);
        assert_int_equal(peer_nodes_destroy(s, 0, &nid, 1), 0);
        assert_valid(&bus);
        test_expect_notification(r, BUS1_MSG_NODE_DESTROY, in_r[0], 0);
        assert_valid(&bus);
        test_expect_notification(r2, BUS1_MSG_NODE_DESTROY, in_r2[0], 0);
        assert_valid(&bus);
        assert_used(&bus, a, 0, 12, 0, 0);

        /* B lets go of R's node: R learns it */
        assert_int_equal(peer_handle_release(s, idr), 0);
        assert_valid(&bus);
        test_expect_notification(r, BUS1_MSG_NODE_RELEASE, 0x100, 0);
        assert_valid(&bus);
        test_expect_empty(r);
        test_expect_empty(r2);

        /* and a NODE_DESTROY of every node at once (B disconnects) */
        assert_int_equal(peer_disconnect(s), 0);
        assert_valid(&bus);
        /* one transaction: CONTINUE on all but the last */
        for (unsigned int i = 1; i < 7; ++i) {
                test_expect_notification(r, BUS1_MSG_NODE_DESTROY, in_r[i],
                                         i < 6 ? BUS1_MSG_FLAG_CONTINUE : 0);
                assert_valid(&bus);
        }
        for (unsigned int i = 1; i < 4; ++i) {
                test_expect_notification(r2, BUS1_MSG_NODE_DESTROY, in_r2[i],
                                         i < 3 ? BUS1_MSG_FLAG_CONTINUE : 0);
                assert_valid(&bus);
        }
        assert_used(&bus, a, 0, 12, 0, 0);

        model_free(&bus, (Peer *[]){ r, r2, s }, 3);
}

/* --- model: many cycles ---------------------------------------------------- */

typedef struct Counters {
        uint64_t used_a[_USER_N], used_b[_USER_N];
        uint64_t n_actors_a[_USER_N], n_actors_b[_USER_N];
        uint64_t n_usages_a, n_usages_b, n_users;
        uint64_t r_handles, r_refs, r_nodes, r_entries, r_busy, r_bytes;
        uint64_t s_handles, s_refs, s_nodes, s_entries, s_busy, s_bytes;
        uint64_t inflight_fds;
} Counters;

static Counters counters(Bus *bus, Peer *r, Peer *s) {
        Counters c = {
                .n_usages_a = n_usages(r->user),
                .n_usages_b = n_usages(s->user),
                .n_users = bus->users.n_users,
                .r_handles = r->n_handles, .r_refs = r->n_handle_refs, .r_nodes = r->n_nodes,
                .r_entries = r->queue.n_entries, .r_busy = r->pool.n_busy,
                .r_bytes = r->pool.busy_bytes,
                .s_handles = s->n_handles, .s_refs = s->n_handle_refs, .s_nodes = s->n_nodes,
                .s_entries = s->queue.n_entries, .s_busy = s->pool.n_busy,
                .s_bytes = s->pool.busy_bytes,
                .inflight_fds = bus->n_inflight_fds,
        };

        memcpy(c.used_a, r->user->used, sizeof(c.used_a));
        memcpy(c.used_b, s->user->used, sizeof(c.used_b));
        memcpy(c.n_actors_a, r->user->n_actors, sizeof(c.n_actors_a));
        memcpy(c.n_actors_b, s->user->n_actors, sizeof(c.n_actors_b));
        return c;
}

/*
 * The cycle count: 1,000,000; BUS1_TEST_CYCLES may lower
 * it (e.g. in slow sanitizer builds); the counters are compared with their
 * start every 4096 cycles and at the end, the full checker runs as often.
 */
static unsigned long cycle_count(void) {
        const char *e = getenv("BUS1_TEST_CYCLES");

        if (e && *e) {
                char *end;
                unsigned long n = strtoul(e, &end, 10);

                if (!*end && n > 0)
                        return n;
        }
        return 1000000UL;
}

/*
 * 1,000,000 node/handle create-release cycles, each: B transfers a new
 * ID to A's R (a new node and a new handle), sends R a message carrying
 * it, R receives (share back), releases the slice and both references, B
 * receives the NODE_RELEASE and destroys the node with its handle. A's
 * handle limit is 16, so a single leaked reference per cycle would fail
 * within a few cycles; all counters end where they started.
 */
static void test_model_cycles(void **state) {
        unsigned long n = cycle_count();
        Counters start, now;
        Peer *r, *s;
        uint64_t idr;
        Bus bus;

        model_setup(&bus, UID_A, 16, 16, 1024, 16);
        r = test_peer_new(&bus, UID_A);
        s = test_peer_new(&bus, UID_B);
        idr = test_transfer(r, 0x100, s);
        start = counters(&bus, r, s);

        for (unsigned long i = 0; i < n; ++i) {
                uint64_t id = new_id(i % 8), h, h2;
                PeerRecv rv;

                h = test_transfer(s, id, r);
                assert_int_equal(send_handles(s, idr, &id, 1), 0);
                assert_int_equal(test_recv(r, 0, &rv), 0);
                h2 = test_slice_handle(r, &rv, 0);
                if (h2 != h)
                        fail_msg("cycle %lu: received %llx, holds %llx", i,
                                 (unsigned long long)h2, (unsigned long long)h);
                assert_int_equal(peer_slice_release(r, rv.offset), 0);
                assert_int_equal(peer_handle_release(r, h), 0);
                assert_int_equal(peer_handle_release(r, h), 0);
                assert_int_equal(test_recv(s, 0, &rv), 0);
                assert_int_equal(rv.type, BUS1_MSG_NODE_RELEASE);
                assert_int_equal(rv.destination, id);
                assert_int_equal(peer_nodes_destroy(s, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES,
                                                    &id, 1), 0);
                if (i % 4096 == 0 || i + 1 == n) {
                        assert_valid(&bus);
                        now = counters(&bus, r, s);
                        if (memcmp(&now, &start, sizeof(now)))
                                fail_msg("cycle %lu: counters moved", i);
                }
        }
        now = counters(&bus, r, s);
        assert_memory_equal(&now, &start, sizeof(now));
        assert_used(&bus, r->user, 0, 1, 0, 0);
        assert_used(&bus, s->user, 0, 1, 0, 0);
        assert_no_shares(&bus, r->user);
        assert_no_shares(&bus, s->user);

        model_free(&bus, (Peer *[]){ r, s }, 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_lookup_refcount),
                cmocka_unit_test(test_override),
                cmocka_unit_test(test_foreign_vectors),
                cmocka_unit_test(test_own_charges),
                cmocka_unit_test(test_peer_layer),
                cmocka_unit_test(test_overflow_vectors),
                cmocka_unit_test(test_overflow_no_wrap),
                cmocka_unit_test(test_check_all_resources),
                cmocka_unit_test(test_n_actors),
                cmocka_unit_test(test_refusal_callback),
                cmocka_unit_test(test_own_refusal_no_self_usage),
                cmocka_unit_test(test_model_slices),
                cmocka_unit_test(test_model_bytes),
                cmocka_unit_test(test_model_handles),
                cmocka_unit_test(test_model_fds),
                cmocka_unit_test(test_model_same_uid),
                cmocka_unit_test(test_model_msgsize),
                cmocka_unit_test(test_model_multicast_unwind),
                cmocka_unit_test(test_model_drop_flush),
                cmocka_unit_test(test_model_drop_disconnect),
                cmocka_unit_test(test_model_drop_sender_and_node),
                cmocka_unit_test(test_model_max_peers),
                cmocka_unit_test(test_model_notifications_under_quota),
                cmocka_unit_test(test_model_cycles),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
