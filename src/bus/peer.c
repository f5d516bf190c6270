/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Peer: the anchor of a set of nodes and handles, one queue and one pool
 *
 * Invariants:
 *  - every handle the peer holds is in both of its trees; n_handles counts
 *    them and n_handle_refs sums their user and in-flight references;
 *  - `nodes` lists the nodes the peer owns that still exist; n_nodes counts
 *    the live ones, each of which has an owner handle in this peer, and
 *    n_destroyed_nodes the destroyed ones;
 *  - every DATA entry on the queue is a Message whose slice is busy and
 *    unpublished in this peer's pool; so is the seed's; every other busy
 *    slice is published (received, awaiting SLICE_RELEASE);
 *  - n_inflight_fds is the number of fds of queued messages and the seed;
 *  - after peer_disconnect() all of the above are empty.
 *
 * A disconnect costs O(the peer's own objects): its nodes, its handles, its
 * queue and its slices.
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "bus1/uapi.h"
#include "bus/bus.h"
#include "bus/handle.h"
#include "bus/message.h"
#include "bus/node.h"
#include "bus/peer.h"
#include "bus/pool.h"
#include "bus/user.h"
#include "util/fdlist.h"

/* a peer limit: at most @cap, at most the user's limit, at most INT_MAX */
static uint32_t peer_limit_clamp(uint32_t cap, uint64_t user_max) {
        uint64_t v = MIN((uint64_t)cap, user_max);

        return (uint32_t)MIN(v, (uint64_t)PEER_LIMIT_MAX);
}

/**
 * peer_new() - create a peer on a bus
 * @peerp:      out: the new peer
 * @bus:        bus
 * @creds:      credentials of the connecting process
 *
 * The peer is charged to the user of @creds->uid. Its limits start equal
 * to its user's (each at most INT_MAX, and at most the bus's), and its pool
 * covers the user's byte limit (or the bus's pool_size, if set), backed by
 * the bus's pool_setup callback.
 *
 * Return: 0, -ENOMEM, -EDQUOT if the user has as many peers as it may, or
 *         what pool_setup returns.
 */
int peer_new(Peer **peerp, Bus *bus, const PeerCreds *creds) {
        uint64_t pool_size;
        User *user;
        Peer *peer;
        int r;

        r = user_get(&user, &bus->users, creds->uid);
        if (r < 0)
                return r;
        if (user->n_peers >= user->limits.max_peers) {
                user_unref(user);
                return -EDQUOT;
        }

        peer = calloc(1, sizeof(*peer));
        if (!peer) {
                user_unref(user);
                return -ENOMEM;
        }

        peer->bus = bus;
        peer->user = user;
        peer->creds = *creds;
        peer->limits = (PeerLimits){
                .max_slices = peer_limit_clamp(bus->limits.max_slices,
                                               user->limits.max[USER_SLICES]),
                .max_handles = peer_limit_clamp(bus->limits.max_handles,
                                                user->limits.max[USER_HANDLES]),
                .max_inflight_bytes = peer_limit_clamp(bus->limits.max_inflight_bytes,
                                                       user->limits.max[USER_BYTES]),
                .max_inflight_fds = peer_limit_clamp(bus->limits.max_inflight_fds,
                                                     user->limits.max[USER_FDS]),
        };
        rbtree_init(&peer->handles_by_id);
        rbtree_init(&peer->handles_by_node);
        list_init(&peer->nodes);
        list_init(&peer->bus_link);
        list_init(&peer->user_link);
        queue_init(&peer->queue);

        pool_size = bus->pool_size ?: user->limits.max[USER_BYTES];
        r = bus->pool_setup(bus, peer, &peer->pool, pool_size);
        if (r < 0) {
                user_unref(user);
                free(peer);
                return r;
        }
        peer->pool.cache = &bus->slice_cache;
        ++user->n_peers;
        list_link_tail(&user->peers, &peer->user_link);

        peer->id = ++bus->n_peer_ids;
        list_link_tail(&bus->peers, &peer->bus_link);
        ++bus->n_peers;

        *peerp = peer;
        return 0;
}

static void peer_drop_queue(Peer *peer, uint64_t seq) {
        QueueEntry *entry;

        /*
         * Dropping a message releases handle entries, which may free handles
         * and with them their NODE_DESTROY entries on this very queue, so
         * always restart from the front.
         */
        while ((entry = queue_first(&peer->queue))) {
                if (entry->type == QUEUE_ENTRY_DATA)
                        message_free(container_of(entry, Message, entry), seq);
                else
                        queue_remove(&peer->queue, entry);
        }
}

static void peer_drop_seed(Peer *peer, uint64_t seq) {
        Message *seed = peer->seed;

        peer->seed = NULL;
        message_free(seed, seq);
}

/* drop every user reference, but the pin of live owned nodes */
static void peer_release_handles(Peer *peer, uint64_t seq) {
        RBNode *n, *next;

        for (n = rbtree_first(&peer->handles_by_id); n; n = next) {
                Handle *handle = container_of(n, Handle, id_node);
                uint64_t keep = 0;

                /* releasing one handle never frees another of this peer */
                next = rbnode_next(n);
                if (handle_is_owner(handle) && !handle->node->destroyed)
                        keep = 1;
                handle_release(handle, handle->n_user - keep, seq);
        }
}

/* release every slice the peer received, keeping those messages own */
static void peer_drop_published(Peer *peer) {
        RBNode *n, *next;

        for (n = rbtree_first(&peer->pool.busy); n; n = next) {
                PoolSlice *slice = container_of(n, PoolSlice, offset_node);

                next = rbnode_next(n);
                if (slice->published) {
                        user_sub(peer->user, USER_SLICES, 1);
                        user_sub(peer->user, USER_BYTES, slice->size);
                        pool_free(&peer->pool, slice);
                }
        }
}

/**
 * peer_disconnect() - PEER_DISCONNECT: give up everything
 * @peer:       peer
 *
 * Destroys all the peer's nodes in one transaction, drops its queue and
 * seed, releases every handle and slice, and releases the pool. Messages
 * it sent stay queued elsewhere. Everything after that is -ESHUTDOWN.
 *
 * Return: 0, or -ESHUTDOWN if already disconnected.
 */
int peer_disconnect(Peer *peer) {
        uint64_t seq;
        Node *node, *tmp;

        if (peer->disconnected)
                return -ESHUTDOWN;

        seq = bus_tick(peer->bus);
        list_for_each_entry(node, &peer->nodes, owner_link)
                if (!node->destroyed)
                        node_destroy(node, seq);

        peer_drop_queue(peer, seq);
        peer_drop_seed(peer, seq);
        peer_release_handles(peer, seq);
        peer_drop_queue(peer, seq);     /* nothing can be left, but be exact */
        peer_drop_published(peer);

        /* nodes that remote handles keep alive outlive their owner */
        list_for_each_entry_safe(node, tmp, &peer->nodes, owner_link) {
                list_unlink(&node->owner_link);
                node->owner = NULL;
        }
        peer->n_destroyed_nodes = 0;

        assert(rbtree_is_empty(&peer->handles_by_id));
        assert(!peer->n_handles && !peer->n_handle_refs && !peer->n_nodes);
        assert(!peer->n_inflight_fds && !peer->queue.n_entries);
        assert(!peer->pool.n_busy);

        pool_deinit(&peer->pool);
        peer->disconnected = true;
        return 0;
}

/**
 * peer_free() - disconnect (if needed) and free a peer
 * @peer:       peer, or NULL
 *
 * Return: NULL.
 */
Peer *peer_free(Peer *peer) {
        if (!peer)
                return NULL;

        if (!peer->disconnected)
                peer_disconnect(peer);

        list_unlink(&peer->bus_link);
        list_unlink(&peer->user_link);
        --peer->bus->n_peers;
        --peer->user->n_peers;
        peer->user = user_unref(peer->user);
        queue_deinit(&peer->queue);
        free(peer->secctx);
        free(peer);
        return NULL;
}

/**
 * peer_query() - PEER_QUERY
 * @peer:               peer
 * @flags:              must be 0
 * @peer_flagsp:        out: BUS1_PEER_FLAG_*
 * @limitsp:            out: the peer's limits
 *
 * Return: 0, -ESHUTDOWN, -EINVAL for non-zero flags.
 */
int peer_query(Peer *peer, uint64_t flags, uint64_t *peer_flagsp, PeerLimits *limitsp) {
        if (peer->disconnected)
                return -ESHUTDOWN;
        if (flags)
                return -EINVAL;

        *peer_flagsp = peer->peer_flags;
        *limitsp = peer->limits;
        return 0;
}

static int peer_limit_check(uint32_t v) {
        return (v != PEER_LIMIT_KEEP && v > PEER_LIMIT_MAX) ? -EINVAL : 0;
}

/*
 * A new limit is stored as given, so PEER_QUERY reports what the program
 * set, as the kernel did. It can never let the peer exceed its user: every
 * charge is also checked against the user's limit (user_check()), so a
 * value above the user's limit acts as the user's limit.
 */
static void peer_limit_apply(uint32_t *limit, uint32_t v) {
        if (v != PEER_LIMIT_KEEP)
                *limit = v;
}

/* mark the owner handles of nodes the seed pins with @mark */
static void peer_mark_seed_nodes(Peer *peer, uint64_t mark) {
        if (!peer->seed)
                return;

        for (uint64_t i = 0; i < peer->seed->n_handles; ++i) {
                Handle *h = peer->seed->handles[i];

                if (h && h->node->owner == peer && h->node->owner_handle)
                        h->node->owner_handle->mark = mark;
        }
}

/**
 * peer_reset() - PEER_RESET: new limits and flags, optionally a flush
 * @peer:       peer
 * @flags:      BUS1_PEER_RESET_FLAG_*
 * @peer_flags: BUS1_PEER_FLAG_* to set, or all ones to keep
 * @limits:     new limits; a field of all ones keeps its value
 *
 * With BUS1_PEER_RESET_FLAG_FLUSH_SEED the seed is dropped. With
 * BUS1_PEER_RESET_FLAG_FLUSH every node the seed does not pin is destroyed
 * (one transaction), every handle released (live nodes keep their pin),
 * and every queued message and received slice dropped.
 *
 * Return: 0, -ESHUTDOWN, -EINVAL for unknown flags, unknown peer flags or
 *         a limit above INT_MAX.
 */
int peer_reset(Peer *peer, uint64_t flags, uint64_t peer_flags, const PeerLimits *limits) {
        uint64_t seq;
        Node *node;
        int r = 0;

        if (peer->disconnected)
                return -ESHUTDOWN;
        if (flags & ~(BUS1_PEER_RESET_FLAG_FLUSH | BUS1_PEER_RESET_FLAG_FLUSH_SEED))
                return -EINVAL;
        if (peer_flags != UINT64_MAX && (peer_flags & ~BUS1_PEER_FLAG_WANT_SECCTX))
                return -EINVAL;
        r = r ?: peer_limit_check(limits->max_slices);
        r = r ?: peer_limit_check(limits->max_handles);
        r = r ?: peer_limit_check(limits->max_inflight_bytes);
        r = r ?: peer_limit_check(limits->max_inflight_fds);
        if (r < 0)
                return r;

        seq = bus_tick(peer->bus);

        if (flags & BUS1_PEER_RESET_FLAG_FLUSH_SEED)
                peer_drop_seed(peer, seq);

        if (flags & BUS1_PEER_RESET_FLAG_FLUSH) {
                peer_mark_seed_nodes(peer, seq);
                list_for_each_entry(node, &peer->nodes, owner_link)
                        if (!node->destroyed && node->owner_handle->mark != seq)
                                node_destroy(node, seq);

                peer_drop_queue(peer, seq);
                peer_release_handles(peer, seq);
                /* releases may have queued notifications about the seed's nodes */
                peer_drop_queue(peer, seq);
                peer_drop_published(peer);
        }

        if (peer_flags != UINT64_MAX)
                peer->peer_flags = peer_flags;
        peer_limit_apply(&peer->limits.max_slices, limits->max_slices);
        peer_limit_apply(&peer->limits.max_handles, limits->max_handles);
        peer_limit_apply(&peer->limits.max_inflight_bytes, limits->max_inflight_bytes);
        peer_limit_apply(&peer->limits.max_inflight_fds, limits->max_inflight_fds);
        return 0;
}

/**
 * peer_check_handles() - whether the peer may take more handle references
 * @peer:       peer
 * @n:          references to add
 *
 * Counts references held and those a send in progress reserved.
 *
 * Return: 0, or -EDQUOT.
 */
int peer_check_handles(Peer *peer, uint64_t n) {
        uint64_t total;

        /* taking nothing always fits, even above a limit the peer lowered */
        if (!n)
                return 0;

        if (__builtin_add_overflow(peer->n_handle_refs, peer->n_handle_reserved, &total) ||
            __builtin_add_overflow(total, n, &total) ||
            total > peer->limits.max_handles)
                return -EDQUOT;
        return 0;
}

/**
 * peer_check_charge() - whether the peer's user may be charged more
 * @peer:       receiving peer
 * @actor:      UID on whose behalf (the sender's, or the peer's own)
 * @charge:     amounts per USER_* resource
 *
 * Applies both layers of user_check() with what the peer holds now
 * (including handle references a send in progress reserved).
 *
 * Return: 0, -EDQUOT, -EMSGSIZE.
 */
int peer_check_charge(Peer *peer, uint32_t actor, const uint64_t charge[_USER_N]) {
        uint64_t held[_USER_N] = {
                [USER_SLICES] = peer->pool.n_busy,
                [USER_HANDLES] = peer->n_handle_refs + peer->n_handle_reserved,
                [USER_BYTES] = peer->pool.busy_bytes,
                [USER_FDS] = peer->n_inflight_fds,
        };

        return user_check(peer->user, actor, held, charge);
}

/**
 * peer_resolve() - look up a handle ID on behalf of the peer
 * @peer:       peer
 * @id:         handle ID
 * @handlep:    out: the handle
 * @staged:     list to put a node on that a new ID creates, or NULL to
 *              refuse new IDs
 *
 * A new ID (MANAGED and REMOTE clear) that the peer does not hold creates a
 * node owned by the peer, with an owner handle of that ID; it is linked on
 * @staged so that the caller can take it back (peer_unstage()) if the
 * command fails, or keep it (peer_commit_staged()).
 *
 * Return: 0, -ENXIO for an unknown ID, -EDQUOT if the peer cannot hold
 *         another handle reference, -ENOMEM.
 */
int peer_resolve(Peer *peer, uint64_t id, Handle **handlep, List *staged) {
        Handle *handle;
        Node *node;
        int r;

        handle = handle_find(peer, id);
        if (handle && handle->n_user) {
                *handlep = handle;
                return 0;
        }
        if (handle || !handle_id_is_new(id) || !staged)
                return -ENXIO;

        r = peer_check_handles(peer, 1);
        if (r < 0)
                return r;
        r = peer_check_charge(peer, peer->user->uid, (uint64_t[_USER_N]){ [USER_HANDLES] = 1 });
        if (r < 0)
                return r == -EMSGSIZE ? -EDQUOT : r;

        r = node_new(&node, peer);
        if (r < 0)
                return r;

        r = handle_new(&handle, peer, node, id);
        if (r < 0) {
                list_unlink(&node->owner_link);
                --peer->n_nodes;
                node->owner = NULL;
                node_unref(node);
                return r;
        }

        node->owner_handle = handle;
        handle_acquire(handle, 1);
        node_unref(node);       /* the handle keeps it */
        list_link_tail(staged, &node->stage_link);

        *handlep = handle;
        return 0;
}

/**
 * peer_unstage() - take back the nodes a failed command created
 * @peer:       peer
 * @staged:     the command's list of new nodes
 *
 * Nothing but the owner's pin refers to a staged node, so this queues no
 * notification.
 */
void peer_unstage(Peer *peer, List *staged) {
        Node *node;

        while ((node = list_entry(list_last(staged), Node, stage_link))) {
                Handle *handle = node->owner_handle;

                list_unlink(&node->stage_link);
                assert(handle && handle->n_user == 1 && !handle->n_inflight);
                handle->n_user = 0;
                --peer->n_handle_refs;
                user_sub(peer->user, USER_HANDLES, 1);
                --node->n_user_refs;
                handle_free(handle);
        }
}

/**
 * peer_commit_staged() - keep the nodes a successful command created
 * @staged:     the command's list of new nodes
 */
void peer_commit_staged(List *staged) {
        Node *node;

        while ((node = list_entry(list_first(staged), Node, stage_link)))
                list_unlink(&node->stage_link);
}

/**
 * peer_handle_release() - HANDLE_RELEASE: drop one user reference
 * @peer:       peer
 * @id:         handle ID
 *
 * Return: 0, -ESHUTDOWN, -ENXIO unknown ID, -EBUSY for the pinned last
 *         reference of a live node's owner handle, and for a new (unmanaged)
 *         ID the peer does not hold (which would create a node and release
 *         its pin).
 */
int peer_handle_release(Peer *peer, uint64_t id) {
        Handle *handle;

        if (peer->disconnected)
                return -ESHUTDOWN;

        handle = handle_find(peer, id);
        if (!handle || !handle->n_user)
                return handle_id_is_new(id) ? -EBUSY : -ENXIO;
        if (handle_is_owner(handle) && !handle->node->destroyed && handle->n_user == 1)
                return -EBUSY;

        handle_release(handle, 1, bus_tick(peer->bus));
        return 0;
}

/**
 * peer_handle_transfer() - HANDLE_TRANSFER: copy a handle into a peer
 * @peer:       calling peer
 * @flags:      must be 0
 * @src_id:     the caller's handle (a new ID creates a node)
 * @dst:        destination peer (proven by the caller), NULL for @peer
 * @dst_idp:    out: the ID the destination holds
 *
 * The destination's handle gains one user reference. A destroyed node is
 * not transferred: the call succeeds with BUS1_HANDLE_INVALID.
 *
 * Return: 0, -ESHUTDOWN caller or destination disconnected, -EINVAL bad
 *         flags, -ENXIO unknown ID, -EDQUOT the destination's handle
 *         limit, -ENOMEM.
 */
int peer_handle_transfer(Peer *peer, uint64_t flags, uint64_t src_id, Peer *dst,
                         uint64_t *dst_idp) {
        List staged = LIST_INIT(staged);
        Handle *src, *h;
        int r;

        if (peer->disconnected)
                return -ESHUTDOWN;
        if (flags)
                return -EINVAL;
        if (!dst)
                dst = peer;
        if (dst->disconnected)
                return -ESHUTDOWN;

        r = peer_resolve(peer, src_id, &src, &staged);
        if (r < 0)
                return r;

        if (src->node->destroyed) {
                *dst_idp = BUS1_HANDLE_INVALID;
                return 0;
        }

        r = peer_check_handles(dst, 1);
        if (r < 0)
                goto error;
        r = peer_check_charge(dst, peer->user->uid, (uint64_t[_USER_N]){ [USER_HANDLES] = 1 });
        if (r < 0) {
                r = r == -EMSGSIZE ? -EDQUOT : r;
                bus_observe(peer->bus, &(BusEvent){
                        .type = BUS_EVENT_REFUSAL,
                        .error = -r,
                        .seq = peer->bus->clock,
                        .peer = bus_event_peer(peer),
                        .target = bus_event_peer(dst),
                        .node = src->node->id,
                        .n_handles = 1,
                });
                goto error;
        }
        r = handle_get(&h, dst, src->node);
        if (r < 0)
                goto error;

        handle_acquire(h, 1);
        peer_commit_staged(&staged);
        *dst_idp = h->id;
        if (dst != peer)
                bus_observe(peer->bus, &(BusEvent){
                        .type = BUS_EVENT_TRANSFER,
                        .seq = peer->bus->clock,
                        .peer = bus_event_peer(peer),
                        .target = bus_event_peer(dst),
                        .node = src->node->id,
                });
        return 0;

error:
        peer_unstage(peer, &staged);
        return r;
}

/**
 * peer_nodes_destroy() - NODES_DESTROY: destroy own nodes, all or nothing
 * @peer:       peer
 * @flags:      BUS1_NODES_DESTROY_FLAG_*
 * @ids:        owner handle IDs (new IDs create a node and destroy it), or
 *              NULL if the caller could not read them
 * @n_ids:      number of IDs
 *
 * All nodes are destroyed in one transaction: every holder of each gets a
 * NODE_DESTROY. With BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES each owner
 * handle loses one user reference afterwards. Errors come in the kernel's
 * order: flags, the count (bounded by the user's handle limit, not the
 * peer's own), the array, then each ID.
 *
 * Return: 0, -ESHUTDOWN, -EINVAL bad flags or more IDs than the user's
 *         handle limit, -EFAULT a NULL @ids with IDs, -ENXIO unknown ID, -EREMOTE not an owner handle, -ESTALE
 *         already destroyed, -ENOTUNIQ the same ID twice, -EDQUOT, -ENOMEM.
 */
int peer_nodes_destroy(Peer *peer, uint64_t flags, const uint64_t *ids, uint64_t n_ids) {
        List staged = LIST_INIT(staged);
        uint64_t seq;
        Handle *h;
        int r;

        if (peer->disconnected)
                return -ESHUTDOWN;
        if (flags & ~BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES)
                return -EINVAL;
        /* the kernel bounds the work by the user's limit, not the peer's own */
        if (n_ids > peer->user->limits.max[USER_HANDLES])
                return -EINVAL;
        /* the caller could not read its array (NULL): the kernel faulted here */
        if (!ids && n_ids)
                return -EFAULT;

        seq = bus_tick(peer->bus);
        for (uint64_t i = 0; i < n_ids; ++i) {
                r = peer_resolve(peer, ids[i], &h, &staged);
                if (r < 0)
                        goto error;
                if (!handle_is_owner(h)) {
                        r = -EREMOTE;
                        goto error;
                }
                if (h->node->destroyed) {
                        r = -ESTALE;
                        goto error;
                }
                if (h->mark == seq) {
                        r = -ENOTUNIQ;
                        goto error;
                }
                h->mark = seq;
        }

        peer_commit_staged(&staged);
        for (uint64_t i = 0; i < n_ids; ++i)
                node_destroy(handle_find(peer, ids[i])->node, seq);

        if (flags & BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES)
                for (uint64_t i = 0; i < n_ids; ++i)
                        handle_release(handle_find(peer, ids[i]), 1, seq);
        return 0;

error:
        peer_unstage(peer, &staged);
        return r;
}

/**
 * peer_slice_release() - SLICE_RELEASE
 * @peer:       peer
 * @offset:     offset of a received slice
 *
 * Return: 0, -ESHUTDOWN, -ENXIO for an unknown or not yet received offset.
 */
int peer_slice_release(Peer *peer, uint64_t offset) {
        PoolSlice *slice;

        if (peer->disconnected)
                return -ESHUTDOWN;
        slice = pool_find(&peer->pool, offset);
        if (!slice || !slice->published)
                return -ENXIO;
        user_sub(peer->user, USER_SLICES, 1);
        user_sub(peer->user, USER_BYTES, slice->size);
        return pool_release_published(&peer->pool, offset);
}

/*
 * The security context follows the fd area, which is only there when the
 * fds are installed: put it where this answer's n_fds says it is.
 */
static void peer_place_secctx(Peer *peer, Message *m, uint64_t n_fds) {
        uint8_t *slice;
        uint64_t at;

        if (!m->n_secctx)
                return;
        at = message_fd_offset(m->n_bytes, m->n_handles) + align8(4 * n_fds);
        if (at == m->secctx_at)
                return;
        slice = peer->pool.base + m->slice->offset;
        memmove(slice + at, slice + m->secctx_at, m->n_secctx);
        m->secctx_at = at;
}

/*
 * A PEEK shows the handle IDs the dequeuing RECV will: a handle released
 * since the entry was written has a new ID, or none yet (handle_peek()).
 */
static void peer_peek_handles(Peer *peer, Message *m) {
        for (uint64_t i = 0; i < m->n_handles; ++i) {
                uint64_t id;
                int res;

                if (!m->handles[i])
                        continue;
                id = handle_peek(m->handles[i])->id;
                res = pool_write(&peer->pool, m->slice, align8(m->n_bytes) + 8 * i, &id,
                                 sizeof(id));
                assert(res >= 0);
                (void)res;
        }
}

static void peer_recv_message(Peer *peer, Message *m, uint64_t flags, PeerRecv *r) {
        r->type = BUS1_MSG_DATA;
        r->destination = m->destination;
        r->creds = m->creds;
        r->offset = m->slice->offset;
        r->n_bytes = m->n_bytes;
        r->n_handles = m->n_handles;
        r->n_fds = (flags & BUS1_RECV_FLAG_INSTALL_FDS) ? message_n_fds(m) : 0;
        r->n_secctx = m->n_secctx;
        peer_place_secctx(peer, m, r->n_fds);
        if (m->n_secctx)
                r->flags |= BUS1_MSG_FLAG_HAS_SECCTX;
}

/* a received message: its slice, handles and (maybe) fds go to the peer */
static void peer_dequeue_message(Peer *peer, Message *m, uint64_t flags, PeerRecv *r) {
        if (m->node)
                bus_observe(peer->bus, &(BusEvent){
                        .type = BUS_EVENT_DELIVER,
                        .seq = peer->bus->clock,
                        /* as for SEND: the sender acts, the receiver is the target */
                        .peer = {
                                .id = m->sender_id,
                                .uid = m->creds.uid,
                                .pid = m->creds.pid,
                        },
                        .target = bus_event_peer(peer),
                        .message = m->id,
                        .node = m->node->id,
                        .n_bytes = m->n_bytes,
                        .n_handles = m->n_handles,
                        .n_fds = message_n_fds(m),
                });

        /* dequeued: the sender's quota share comes back (docs/model.md §8) */
        user_share_sub(peer->user, m->actor, m->share);
        memset(m->share, 0, sizeof(m->share));
        queue_remove(&peer->queue, &m->entry);
        list_unlink(&m->node_link);
        m->node = node_unref(m->node);

        for (uint64_t i = 0; i < m->n_handles; ++i) {
                Handle *h = m->handles[i];
                uint64_t id;
                int res;

                if (!h)
                        continue;
                /*
                 * A handle released meanwhile comes back under a new ID, so
                 * the entry is (re)written; storing an unchanged ID again
                 * is harmless.
                 */
                h = handle_receive(h);
                id = h->id;
                res = pool_write(&peer->pool, m->slice, align8(m->n_bytes) + 8 * i,
                                 &id, sizeof(id));
                assert(res >= 0);
                (void)res;
        }
        m->n_handles = 0;

        m->slice->published = true;
        m->slice = NULL;

        if (m->fds) {
                peer->n_inflight_fds -= m->fds->n_fds;
                peer->bus->n_inflight_fds -= m->fds->n_fds;
                user_sub(peer->user, USER_FDS, m->fds->n_fds);
                if (flags & BUS1_RECV_FLAG_INSTALL_FDS)
                        r->fds = TAKE_PTR(m->fds);
                else
                        m->fds = fdlist_unref(m->fds);
        }
        message_free(m, 0);
}

static void peer_recv_notification(QueueEntry *entry, PeerRecv *r) {
        r->type = entry->type == QUEUE_ENTRY_NODE_DESTROY ? BUS1_MSG_NODE_DESTROY
                                                          : BUS1_MSG_NODE_RELEASE;
        if (entry->type == QUEUE_ENTRY_NODE_DESTROY)
                r->destination = container_of(entry, Handle, destroy)->id;
        else
                r->destination = container_of(entry, Node, release)->owner_handle->id;
        r->creds = (PeerCreds){ .uid = UINT32_MAX, .gid = UINT32_MAX };
        r->offset = BUS1_OFFSET_INVALID;
}

/**
 * peer_describe_entry() - what a RECV of a queued entry would report
 * @peer:       peer
 * @entry:      an entry on the peer's queue
 * @recvp:      out: the entry's fields; n_fds is the number of fds attached
 *
 * Changes nothing: this is how the broker describes entries it pushes to
 * the client ahead of the RECV. The slice layout of the description is the
 * one with the fds installed.
 */
void peer_describe_entry(Peer *peer, QueueEntry *entry, PeerRecv *recvp) {
        PeerRecv r = { .entry_id = entry->id };

        if (queue_entry_continues(&peer->queue, entry))
                r.flags |= BUS1_MSG_FLAG_CONTINUE;
        if (entry->type == QUEUE_ENTRY_DATA) {
                Message *m = container_of(entry, Message, entry);

                r.type = BUS1_MSG_DATA;
                r.destination = m->destination;
                r.creds = m->creds;
                r.offset = m->slice->offset;
                r.n_bytes = m->n_bytes;
                r.n_handles = m->n_handles;
                r.n_fds = message_n_fds(m);
                r.n_secctx = m->n_secctx;
                if (m->n_secctx)
                        r.flags |= BUS1_MSG_FLAG_HAS_SECCTX;
        } else {
                peer_recv_notification(entry, &r);
        }
        *recvp = r;
}

/**
 * peer_entry_needs_sync() - whether only the broker may dequeue an entry
 * @peer:       peer
 * @entry:      an entry on the peer's queue
 *
 * Some entries change at the moment they are received: a handle entry the
 * peer released meanwhile gets a fresh ID written into the slice, and a
 * security context moves when the fds are not installed. The dequeue of a
 * message from another user returns that user's quota share, which the
 * other user can observe. A client that buffers pushed entries must receive
 * those through the broker.
 *
 * Return: true if the entry must be dequeued by a RECV the broker executes.
 */
bool peer_entry_needs_sync(Peer *peer, QueueEntry *entry) {
        Message *m;

        if (entry->type != QUEUE_ENTRY_DATA)
                return false;
        m = container_of(entry, Message, entry);
        /*
         * fds are closed (or installed) and their in-flight charge returned
         * at the dequeue itself, which others can observe.
         */
        if (m->actor != peer->user->uid || message_n_fds(m))
                return true;
        for (uint64_t i = 0; i < m->n_handles; ++i)
                if (m->handles[i] && handle_is_detached(m->handles[i]))
                        return true;
        return false;
}

/**
 * peer_recv() - RECV: the next entry of the queue, or the seed
 * @peer:       peer
 * @flags:      BUS1_RECV_FLAG_*
 * @max_offset: how much of the pool the caller has mapped
 * @recvp:      out: the entry; with INSTALL_FDS and without PEEK, @recvp->fds
 *              holds the message's fds (release with peer_recv_deinit())
 *
 * Without PEEK the entry is dequeued: its slice becomes the peer's (to
 * SLICE_RELEASE), its handle entries become user references, and its fds are
 * handed over (INSTALL_FDS) or closed. A message whose slice does not lie
 * wholly below @max_offset stays queued.
 *
 * Return: 0, -ESHUTDOWN, -EINVAL bad flags, -EAGAIN nothing to receive,
 *         -ERANGE the slice is beyond @max_offset.
 */
int peer_recv(Peer *peer, uint64_t flags, uint64_t max_offset, PeerRecv *recvp) {
        PeerRecv r = {};
        QueueEntry *entry;
        Message *m;

        if (peer->disconnected)
                return -ESHUTDOWN;
        if (flags & ~(BUS1_RECV_FLAG_PEEK | BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_INSTALL_FDS))
                return -EINVAL;

        if (flags & BUS1_RECV_FLAG_SEED) {
                m = peer->seed;
                if (!m)
                        return -EAGAIN;
                if (m->slice->offset + m->slice->size > max_offset)
                        return -ERANGE;
                peer_recv_message(peer, m, flags, &r);
                if (flags & BUS1_RECV_FLAG_PEEK)
                        peer_peek_handles(peer, m);
                if (!(flags & BUS1_RECV_FLAG_PEEK)) {
                        peer->seed = NULL;
                        peer_dequeue_message(peer, m, flags, &r);
                }
                *recvp = r;
                return 0;
        }

        entry = queue_first(&peer->queue);
        if (!entry)
                return -EAGAIN;

        r.entry_id = entry->id;
        if (queue_entry_continues(&peer->queue, entry))
                r.flags |= BUS1_MSG_FLAG_CONTINUE;

        if (entry->type != QUEUE_ENTRY_DATA) {
                peer_recv_notification(entry, &r);
                if (!(flags & BUS1_RECV_FLAG_PEEK))
                        queue_remove(&peer->queue, entry);
                *recvp = r;
                return 0;
        }

        m = container_of(entry, Message, entry);
        if (m->slice->offset + m->slice->size > max_offset)
                return -ERANGE;
        peer_recv_message(peer, m, flags, &r);
        if (flags & BUS1_RECV_FLAG_PEEK)
                peer_peek_handles(peer, m);
        else
                peer_dequeue_message(peer, m, flags, &r);
        *recvp = r;
        return 0;
}

/**
 * peer_recv_fds() - the fds a RECV with INSTALL_FDS would hand over
 * @peer:       peer
 * @flags:      the RECV's flags; BUS1_RECV_FLAG_SEED selects the seed
 * @entry_idp:  out: the entry they belong to (0 for the seed)
 *
 * Changes nothing. A RECV that hands fds over must not dequeue before the
 * receiver holds them all (it may have no free descriptor), so the I/O layer
 * hands them over first and dequeues with peer_recv() once the receiver
 * confirmed; this names what it hands over and, called again at the
 * confirmation, proves the entry is still the one handed over.
 *
 * Return: the entry's fd list (no new reference), or NULL if the next entry
 *         carries no fds or there is none.
 */
FdList *peer_recv_fds(Peer *peer, uint64_t flags, uint64_t *entry_idp) {
        QueueEntry *entry;
        Message *m;

        if (flags & BUS1_RECV_FLAG_SEED) {
                m = peer->seed;
        } else {
                entry = queue_first(&peer->queue);
                if (!entry || entry->type != QUEUE_ENTRY_DATA)
                        return NULL;
                m = container_of(entry, Message, entry);
        }
        if (!m || !message_n_fds(m))
                return NULL;
        *entry_idp = (flags & BUS1_RECV_FLAG_SEED) ? 0 : m->entry.id;
        return m->fds;
}

/**
 * peer_recv_deinit() - release what a RECV handed over
 * @recv:       the result of peer_recv()
 */
void peer_recv_deinit(PeerRecv *recv) {
        recv->fds = fdlist_unref(recv->fds);
}
