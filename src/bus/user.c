/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * User: per-UID accounting and the fair-share quota
 *
 * See user.h for the rules. Invariants:
 *  - used[r] never exceeds what the model's peers of the user hold of r
 *    (bus_validate() checks equality);
 *  - a UserUsage exists for every actor holding a share or having been
 *    refused; n_actors[r] counts the foreign actors with share[r] > 0;
 *  - a user lives while its peers reference it; usages name actors by UID
 *    only, so users never keep each other alive; user_unref() of the last
 *    reference asserts that nothing is charged any more.
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "bus/user.h"
#include "util/macro.h"

static int user_compare(const RBNode *n, const void *key) {
        const User *user = container_of(n, User, registry_node);
        uint32_t uid = *(const uint32_t *)key;

        if (uid < user->uid)
                return -1;
        return uid > user->uid;
}

static int user_usage_compare(const RBNode *n, const void *key) {
        const UserUsage *usage = container_of(n, UserUsage, user_node);
        uint32_t uid = *(const uint32_t *)key;

        if (uid < usage->actor)
                return -1;
        return uid > usage->actor;
}

/**
 * user_registry_init() - an empty registry with the default limits
 * @registry:   registry
 *
 * Defaults: USER_DEFAULT_MAX_* (16384 slices, 65536 handles, 16 MiB,
 * 4096 fds, 1024 connections per user).
 */
void user_registry_init(UserRegistry *registry) {
        *registry = (UserRegistry){
                .defaults = {
                        .max = {
                                [USER_SLICES] = USER_DEFAULT_MAX_SLICES,
                                [USER_HANDLES] = USER_DEFAULT_MAX_HANDLES,
                                [USER_BYTES] = USER_DEFAULT_MAX_BYTES,
                                [USER_FDS] = USER_DEFAULT_MAX_FDS,
                        },
                        .max_peers = USER_DEFAULT_MAX_PEERS,
                },
        };
}

/**
 * user_registry_deinit() - release a registry
 * @registry:   registry without users
 */
void user_registry_deinit(UserRegistry *registry) {
        assert(rbtree_is_empty(&registry->users));
        free(registry->overrides);
        registry->overrides = NULL;
        registry->n_overrides = 0;
}

/**
 * user_registry_set_override() - give one UID limits of its own
 * @registry:   registry
 * @uid:        the UID
 * @limits:     its limits
 *
 * Applies to users looked up afterwards; an existing user keeps its limits
 * until all its peers are gone.
 *
 * Return: 0, -ENOMEM.
 */
int user_registry_set_override(UserRegistry *registry, uint32_t uid, const UserLimits *limits) {
        UserOverride *o;

        for (size_t i = 0; i < registry->n_overrides; ++i)
                if (registry->overrides[i].uid == uid) {
                        registry->overrides[i].limits = *limits;
                        return 0;
                }

        o = realloc(registry->overrides, (registry->n_overrides + 1) * sizeof(*o));
        if (!o)
                return -ENOMEM;
        registry->overrides = o;
        registry->overrides[registry->n_overrides++] = (UserOverride){
                .uid = uid,
                .limits = *limits,
        };
        return 0;
}

static const UserLimits *user_registry_limits(UserRegistry *registry, uint32_t uid) {
        for (size_t i = 0; i < registry->n_overrides; ++i)
                if (registry->overrides[i].uid == uid)
                        return &registry->overrides[i].limits;
        return &registry->defaults;
}

/**
 * user_get() - the user of a UID, created if needed
 * @userp:      out: the user, with a new reference
 * @registry:   registry
 * @uid:        UID
 *
 * Return: 0, -ENOMEM.
 */
int user_get(User **userp, UserRegistry *registry, uint32_t uid) {
        RBNode **slot, *parent;
        User *user;

        slot = rbtree_find_slot(&registry->users, user_compare, &uid, &parent);
        if (!slot) {
                *userp = user_ref(container_of(parent, User, registry_node));
                return 0;
        }

        user = calloc(1, sizeof(*user));
        if (!user)
                return -ENOMEM;
        user->registry = registry;
        user->n_refs = 1;
        user->uid = uid;
        user->limits = *user_registry_limits(registry, uid);
        rbtree_init(&user->usages);
        list_init(&user->peers);
        rbnode_init(&user->registry_node);
        rbtree_add(&registry->users, parent, slot, &user->registry_node);
        ++registry->n_users;

        *userp = user;
        return 0;
}

/**
 * user_ref() - take a reference
 * @user:       user
 *
 * Return: @user.
 */
User *user_ref(User *user) {
        ++user->n_refs;
        return user;
}

static void user_usage_free(UserUsage *usage) {
        rbtree_remove(&usage->user->usages, &usage->user_node);
        --usage->user->n_usages;
        free(usage);
}

/**
 * user_unref() - drop a reference, freeing the user with the last
 * @user:       user, or NULL
 *
 * Return: NULL.
 */
User *user_unref(User *user) {
        RBNode *n;

        if (!user || --user->n_refs > 0)
                return NULL;

        /* only refusal records can be left: shares keep their peers alive */
        while ((n = rbtree_first(&user->usages))) {
                UserUsage *usage = container_of(n, UserUsage, user_node);

                for (unsigned int r = 0; r < _USER_N; ++r)
                        assert(!usage->share[r]);
                user_usage_free(usage);
        }
        for (unsigned int r = 0; r < _USER_N; ++r)
                assert(!user->used[r] && !user->n_actors[r]);
        assert(!user->n_peers);

        rbtree_remove(&user->registry->users, &user->registry_node);
        --user->registry->n_users;
        free(user);
        return NULL;
}

static UserUsage *user_find_usage(User *user, uint32_t actor) {
        return rbnode_entry(rbtree_find(&user->usages, user_usage_compare, &actor),
                            UserUsage, user_node);
}

static int user_get_usage(UserUsage **usagep, User *user, uint32_t actor) {
        RBNode **slot, *parent;
        UserUsage *usage;

        slot = rbtree_find_slot(&user->usages, user_usage_compare, &actor, &parent);
        if (!slot) {
                *usagep = container_of(parent, UserUsage, user_node);
                return 0;
        }
        usage = calloc(1, sizeof(*usage));
        if (!usage)
                return -ENOMEM;
        usage->user = user;
        usage->actor = actor;
        rbnode_init(&usage->user_node);
        rbtree_add(&user->usages, parent, slot, &usage->user_node);
        ++user->n_usages;
        *usagep = usage;
        return 0;
}

/* a usage with nothing to remember goes */
static void user_usage_maybe_free(UserUsage *usage) {
        for (unsigned int r = 0; r < _USER_N; ++r)
                if (usage->share[r])
                        return;
        if (usage->n_refusals)
                return;
        user_usage_free(usage);
}

/* (c + base) * factor - base <= remaining, overflow being a refusal */
static bool user_fits(uint64_t c, uint64_t base, uint64_t factor, uint64_t remaining) {
        uint64_t v;

        if (__builtin_add_overflow(c, base, &v) || __builtin_mul_overflow(v, factor, &v))
                return false;
        return v - base <= remaining;
}

static void user_refused(User *user, uint32_t actor, unsigned int resource, uint64_t amount,
                         uint64_t remaining) {
        UserRegistry *registry = user->registry;
        UserRefusal refusal = {
                .receiver = user->uid,
                .actor = actor,
                .resource = resource,
                .amount = amount,
                .remaining = remaining,
        };
        uint64_t *n_refusals;
        UserUsage *usage;

        ++registry->n_refusals[resource];
        if (registry->clock)
                refusal.time = registry->clock(registry);

        /* usages are foreign actors' only: the user's own refusals are counted apart */
        if (actor == user->uid) {
                n_refusals = &user->n_own_refusals;
                user->last_own_refusal = refusal;
        } else {
                /* diagnosis is best effort: without memory, nothing is remembered */
                if (user_get_usage(&usage, user, actor) < 0)
                        return;
                n_refusals = &usage->n_refusals;
                usage->last_refusal = refusal;
        }
        if ((*n_refusals)++ == 0 && registry->on_refusal)
                registry->on_refusal(registry, &refusal);
}

/**
 * user_check() - whether a charge fits both quota layers
 * @user:       the receiving user
 * @actor:      UID on whose behalf it is charged (may be @user's)
 * @held:       what the receiving peer holds of each resource
 * @charge:     the amounts to charge
 *
 * Checks only; user_add() and user_share_add() charge. The first refusal
 * of each (receiver, actor) pair is reported to the registry's callback.
 *
 * Return: 0 if it fits, -EMSGSIZE if an amount exceeds the user's limit
 *         (it could never fit), -EDQUOT if it does not fit now.
 */
int user_check(User *user, uint32_t actor, const uint64_t held[_USER_N],
               const uint64_t charge[_USER_N]) {
        /* what could never fit is EMSGSIZE, whatever else is in use now */
        for (unsigned int r = 0; r < _USER_N; ++r)
                if (charge[r] > user->limits.max[r])
                        return -EMSGSIZE;

        for (unsigned int r = 0; r < _USER_N; ++r) {
                uint64_t c = charge[r], remaining, share = 0, n = 0;

                if (!c)
                        continue;

                remaining = user->limits.max[r] > user->used[r]
                                    ? user->limits.max[r] - user->used[r] : 0;

                if (actor != user->uid) {
                        UserUsage *usage = user_find_usage(user, actor);

                        share = usage ? usage->share[r] : 0;
                        n = user->n_actors[r] + (share ? 0 : 1);
                        if (!user_fits(c, share, n + 1, remaining)) {
                                user_refused(user, actor, r, c, remaining);
                                return -EDQUOT;
                        }
                } else if (c > remaining) {
                        user_refused(user, actor, r, c, remaining);
                        return -EDQUOT;
                }

                if (!user_fits(c, held[r], 2, remaining)) {
                        user_refused(user, actor, r, c, remaining);
                        return -EDQUOT;
                }
        }
        return 0;
}

/**
 * user_share_add() - record an actor's share in a receiving user
 * @user:       receiving user
 * @actor:      acting UID; nothing is recorded when it is @user's
 * @charge:     amounts
 *
 * Return: 0, -ENOMEM.
 */
int user_share_add(User *user, uint32_t actor, const uint64_t charge[_USER_N]) {
        UserUsage *usage;
        int r;

        if (actor == user->uid)
                return 0;
        r = user_get_usage(&usage, user, actor);
        if (r < 0)
                return r;
        for (unsigned int i = 0; i < _USER_N; ++i) {
                if (!charge[i])
                        continue;
                if (!usage->share[i])
                        ++user->n_actors[i];
                usage->share[i] += charge[i];
        }
        return 0;
}

/**
 * user_share_sub() - return an actor's share (the message was dequeued)
 * @user:       receiving user
 * @actor:      acting UID; nothing happens when it is @user's
 * @charge:     amounts recorded by user_share_add()
 */
void user_share_sub(User *user, uint32_t actor, const uint64_t charge[_USER_N]) {
        UserUsage *usage;

        if (actor == user->uid)
                return;
        usage = user_find_usage(user, actor);
        if (!usage) {
                /* nothing was recorded: all amounts must be zero */
                for (unsigned int i = 0; i < _USER_N; ++i)
                        assert(!charge[i]);
                return;
        }
        for (unsigned int i = 0; i < _USER_N; ++i) {
                if (!charge[i])
                        continue;
                assert(usage->share[i] >= charge[i]);
                usage->share[i] -= charge[i];
                if (!usage->share[i])
                        --user->n_actors[i];
        }
        user_usage_maybe_free(usage);
}

/**
 * user_share_of() - what an actor holds of a receiving user's resource
 * @user:       receiving user
 * @actor:      acting UID
 * @resource:   USER_*
 *
 * Return: the share (0 for the user itself).
 */
uint64_t user_share_of(User *user, uint32_t actor, unsigned int resource) {
        UserUsage *usage = actor == user->uid ? NULL : user_find_usage(user, actor);

        return usage ? usage->share[resource] : 0;
}

/**
 * user_add() - a peer of the user holds more of a resource
 * @user:       user
 * @resource:   USER_*
 * @n:          amount
 */
void user_add(User *user, unsigned int resource, uint64_t n) {
        user->used[resource] += n;
}

/**
 * user_sub() - a peer of the user holds less of a resource
 * @user:       user
 * @resource:   USER_*
 * @n:          amount
 */
void user_sub(User *user, unsigned int resource, uint64_t n) {
        assert(user->used[resource] >= n);
        user->used[resource] -= n;
}

/**
 * user_resource_name() - the name of a resource, for messages
 * @resource:   USER_*
 *
 * Return: "slices", "handles", "bytes" or "fds".
 */
const char *user_resource_name(unsigned int resource) {
        static const char *const names[_USER_N] = {
                [USER_SLICES] = "slices",
                [USER_HANDLES] = "handles",
                [USER_BYTES] = "bytes",
                [USER_FDS] = "fds",
        };

        return resource < _USER_N ? names[resource] : "?";
}
