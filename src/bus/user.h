/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * User: per-UID accounting and the fair-share quota
 *
 * Every peer belongs to the User of the UID it connected with. A user has a
 * limit and a `used` count for each of four resources: pool slices, handle
 * references, in-flight bytes (pool bytes in slices) and in-flight fds.
 * `used` is exactly what the user's peers hold, kept in step by the model
 * wherever a peer's own counters change (user_add()/user_sub()).
 *
 * Whatever a message makes a receiver hold is charged to the receiving user
 * on behalf of an actor, the sending user. Two checks decide whether a
 * charge `c` fits (user_check()), both overflow-checked, an overflow being
 * a refusal:
 *
 *  - Between users: an actor that is not the receiving user holds a share
 *    of the receiver's resource. With `share` what it already holds, `n`
 *    the number of actors holding a share after this charge and
 *    `remaining` what the receiving user has left, the charge is allowed iff
 *        (c + share) * (n + 1) - share <= remaining.
 *    A lone foreign actor gets half of what is left, and less as more
 *    actors hold shares, so late-comers keep a guaranteed part. A user's
 *    own charges are bounded by what it has left only.
 *  - Within the receiving user, on every charge: the receiving peer, which
 *    holds `held` of the resource, may grow to at most half of what its
 *    user has that no other of its peers holds:
 *        (c + held) * 2 - held <= remaining.
 *    So one stuck receiver cannot take its user's whole budget.
 *
 * Shares are returned when the message is dequeued (user_share_sub()); what
 * the receiver holds stays charged (`used`) until it lets go of it.
 *
 * The UserRegistry owns the users (looked up by UID, O(log n)), the
 * default limits and per-UID overrides, and reports the first refusal of
 * each (receiver, actor) pair for diagnosis. For introspection it counts
 * refusals by resource, and each pair keeps its count and its last refusal
 * (stamped by the registry's optional clock, which keeps the model free of
 * system calls).
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "util/list.h"
#include "util/rbtree.h"

typedef struct User User;
typedef struct UserRegistry UserRegistry;
typedef struct UserUsage UserUsage;

enum {
        USER_SLICES,
        USER_HANDLES,
        USER_BYTES,
        USER_FDS,
        _USER_N,
};

/* what one user may hold, and how many connections it may have */
typedef struct UserLimits {
        uint64_t max[_USER_N];
        uint64_t max_peers;
} UserLimits;

/* the default limits of every user (docs/model.md §8), defined here only */
#define USER_DEFAULT_MAX_SLICES         16384U
#define USER_DEFAULT_MAX_HANDLES        65536U
#define USER_DEFAULT_MAX_BYTES          (16U * 1024U * 1024U)
#define USER_DEFAULT_MAX_FDS            4096U
#define USER_DEFAULT_MAX_PEERS          1024U

/* a refusal, for diagnosis */
typedef struct UserRefusal {
        uint32_t receiver;
        uint32_t actor;
        unsigned int resource;
        uint64_t amount;
        uint64_t remaining;
        uint64_t time;          /* registry->clock() when it happened, 0 without one */
} UserRefusal;

typedef void (*UserRefusalFn)(UserRegistry *registry, const UserRefusal *refusal);
typedef uint64_t (*UserClockFn)(UserRegistry *registry);

struct UserUsage {
        User *user;             /* the receiving user */
        uint32_t actor;         /* UID of the actor */
        RBNode user_node;       /* in user->usages, by actor UID */
        uint64_t share[_USER_N];
        uint64_t n_refusals;
        UserRefusal last_refusal;       /* valid if n_refusals > 0 */
};

struct User {
        UserRegistry *registry;
        RBNode registry_node;   /* in registry->users, by UID */
        uint64_t n_refs;
        uint32_t uid;
        uint64_t n_peers;
        List peers;             /* Peer.user_link: the user's peers, n_peers of them */
        uint64_t drain_seq;     /* the send that last drained all of them (tx.c) */
        UserLimits limits;
        uint64_t used[_USER_N];
        uint64_t n_out_bytes;   /* output queued for the user's connections, not yet
                                 * taken by their sockets (the I/O layer's) */
        uint64_t n_parked_fds;  /* fds of the user's FDS carriers whose record has
                                 * not come yet (the I/O layer's; within max[USER_FDS]
                                 * together with used[USER_FDS]) */
        RBTree usages;          /* UserUsage of foreign actors, by actor UID */
        uint64_t n_usages;      /* of them */
        uint64_t n_actors[_USER_N];     /* actors with a share > 0 */
        uint64_t n_own_refusals;        /* refusals of the user's own charges */
        UserRefusal last_own_refusal;   /* valid if n_own_refusals > 0 */
};

typedef struct UserOverride {
        uint32_t uid;
        UserLimits limits;
} UserOverride;

struct UserRegistry {
        RBTree users;
        uint64_t n_users;
        UserLimits defaults;
        UserOverride *overrides;
        size_t n_overrides;
        UserRefusalFn on_refusal;
        UserClockFn clock;      /* optional: timestamps of refusals */
        uint64_t n_refusals[_USER_N];   /* every refusal ever, by resource */
        void *userdata;
};

void user_registry_init(UserRegistry *registry);
void user_registry_deinit(UserRegistry *registry);
int user_registry_set_override(UserRegistry *registry, uint32_t uid, const UserLimits *limits);

int user_get(User **userp, UserRegistry *registry, uint32_t uid);
User *user_ref(User *user);
User *user_unref(User *user);

int user_check(User *user, uint32_t actor, const uint64_t held[_USER_N],
               const uint64_t charge[_USER_N]);
int user_share_add(User *user, uint32_t actor, const uint64_t charge[_USER_N]);
void user_share_sub(User *user, uint32_t actor, const uint64_t charge[_USER_N]);
uint64_t user_share_of(User *user, uint32_t actor, unsigned int resource);

void user_add(User *user, unsigned int resource, uint64_t n);
void user_sub(User *user, unsigned int resource, uint64_t n);

const char *user_resource_name(unsigned int resource);
