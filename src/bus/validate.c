/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Validate: the object model's consistency checker
 *
 * Each check that fails prints what failed to stderr and makes
 * bus_validate() return -1, so a test shows the first broken invariant
 * instead of a later crash.
 */

#include <inttypes.h>
#include <stdio.h>
#include "bus1/uapi.h"
#include "bus/bus.h"
#include "bus/handle.h"
#include "bus/message.h"
#include "bus/node.h"
#include "bus/peer.h"
#include "bus/pool.h"
#include "bus/queue.h"
#include "bus/user.h"
#include "bus/validate.h"
#include "util/fdlist.h"

#define CHECK(_cond, ...)                                                       \
        do {                                                                    \
                if (!(_cond)) {                                                 \
                        fprintf(stderr, "bus_validate: %s:%d: %s: ",            \
                                __func__, __LINE__, #_cond);                    \
                        fprintf(stderr, __VA_ARGS__);                           \
                        fprintf(stderr, "\n");                                  \
                        ok = false;                                             \
                }                                                               \
        } while (0)

static bool validate_message(Peer *peer, Message *m, bool is_seed) {
        bool ok = true;

        CHECK(m->receiver == peer, "peer %" PRIu64, peer->id);
        CHECK(m->slice && m->slice->busy && !m->slice->published,
              "peer %" PRIu64 " message slice", peer->id);
        if (is_seed) {
                CHECK(!m->node, "seed has a node");
        } else {
                bool found = false;
                Message *o;

                CHECK(m->node, "message without node");
                if (m->node) {
                        list_for_each_entry(o, &m->node->messages, node_link)
                                found |= o == m;
                        CHECK(found, "message not on its node's list");
                        CHECK(m->node->owner == peer, "message to a node of another peer");
                }
        }
        for (uint64_t i = 0; i < m->n_handles; ++i) {
                Handle *h = m->handles[i];

                if (!h)
                        continue;
                CHECK(h->holder == peer, "handle entry of another peer");
                if (handle_is_detached(h)) {
                        CHECK(!h->n_user && h->n_inflight, "detached handle %" PRIx64, h->id);
                        CHECK(handle_find_by_node(peer, h->node) != h, "detached but found");
                }
                /* count, checked against n_inflight below */
                h->mark += 1ULL << 40;
        }
        return ok;
}

static bool validate_handles(Peer *peer, uint64_t *n_refsp) {
        uint64_t n = 0, refs = 0;
        bool ok = true;
        RBNode *rb;

        CHECK(rbtree_validate(&peer->handles_by_id) == (long)peer->n_handles,
              "peer %" PRIu64 " id tree", peer->id);
        CHECK(rbtree_validate(&peer->handles_by_node) == (long)peer->n_handles,
              "peer %" PRIu64 " node tree", peer->id);

        for (rb = rbtree_first(&peer->handles_by_id); rb; rb = rbnode_next(rb), ++n) {
                Handle *h = container_of(rb, Handle, id_node), *o;
                bool found = false;

                CHECK(h->holder == peer, "holder");
                CHECK(handle_find_by_node(peer, h->node) == h, "by-node lookup");
                CHECK(h->n_user || h->n_inflight, "handle %" PRIx64 " without refs", h->id);
                list_for_each_entry(o, &h->node->handles, node_link)
                        found |= o == h;
                CHECK(found, "handle %" PRIx64 " not on its node's list", h->id);

                if (handle_is_owner(h)) {
                        CHECK(handle_id_is_new(h->id), "owner handle ID %" PRIx64, h->id);
                        CHECK(h->node->owner == peer, "owner handle of a foreign node");
                } else {
                        CHECK(handle_id_is_managed(h->id), "ID %" PRIx64, h->id);
                        CHECK(!!(h->id & BUS1_HANDLE_FLAG_REMOTE) == (h->node->owner != peer),
                              "REMOTE bit of %" PRIx64, h->id);
                        CHECK((h->id >> 3) <= peer->n_handle_ids,
                              "ID %" PRIx64 " beyond the counter", h->id);
                }
                if (queue_entry_is_queued(&h->destroy))
                        CHECK(h->node->destroyed, "NODE_DESTROY of a live node");
                refs += h->n_user + h->n_inflight;
                h->mark = 0;
        }
        CHECK(n == peer->n_handles, "handle count");
        *n_refsp = refs;
        return ok;
}

static bool validate_node(Node *node) {
        uint64_t n_handles = 0, n_messages = 0, refs = 0;
        bool ok = true;
        Handle *h;
        Message *m;

        list_for_each_entry(h, &node->handles, node_link) {
                ++n_handles;
                refs += h->n_user + h->n_inflight;
        }
        list_for_each_entry(m, &node->messages, node_link)
                ++n_messages;

        CHECK(node->n_refs == n_handles + n_messages, "node refs %" PRIu64, node->n_refs);
        CHECK(node->n_user_refs == refs, "node user refs %" PRIu64 " != %" PRIu64,
              node->n_user_refs, refs);
        if (!node->destroyed) {
                CHECK(node->owner && node->owner_handle, "live node without owner");
                if (node->owner_handle)
                        CHECK(node->owner_handle->n_user >= 1, "live node unpinned");
        }
        if (queue_entry_is_queued(&node->release))
                CHECK(!node->destroyed && node->n_user_refs == 1,
                      "NODE_RELEASE queued with %" PRIu64 " refs", node->n_user_refs);
        return ok;
}

static bool validate_queue(Peer *peer, uint64_t *n_unpublishedp, uint64_t *n_fdsp) {
        uint64_t n = 0, last_seq = 0, last_id = 0, n_msgs = 0, n_fds = 0;
        QueueEntry *e;
        bool ok = true;

        list_for_each_entry(e, &peer->queue.entries, link) {
                ++n;
                CHECK(e->seq >= last_seq, "queue out of order");
                CHECK(e->id > last_id, "entry ids not increasing");
                last_seq = e->seq;
                last_id = e->id;

                if (e->type == QUEUE_ENTRY_DATA) {
                        Message *m = container_of(e, Message, entry);

                        ok &= validate_message(peer, m, false);
                        ++n_msgs;
                        n_fds += message_n_fds(m);
                } else if (e->type == QUEUE_ENTRY_NODE_DESTROY) {
                        Handle *h = container_of(e, Handle, destroy);

                        CHECK(h->holder == peer, "NODE_DESTROY on a foreign queue");
                } else {
                        Node *node = container_of(e, Node, release);

                        CHECK(e->type == QUEUE_ENTRY_NODE_RELEASE, "entry type");
                        CHECK(node->owner == peer, "NODE_RELEASE on a foreign queue");
                }
        }
        CHECK(n == peer->queue.n_entries, "queue count");
        CHECK(n_msgs == peer->queue.n_messages, "queue message count");

        if (peer->seed) {
                ok &= validate_message(peer, peer->seed, true);
                ++n_msgs;
                n_fds += message_n_fds(peer->seed);
        }
        *n_unpublishedp = n_msgs;
        *n_fdsp = n_fds;
        return ok;
}

/* add the references of the detached handles a message carries, once each */
static bool validate_detached(Message *m, uint64_t *refsp) {
        bool ok = true;

        for (uint64_t i = 0; i < m->n_handles; ++i) {
                Handle *h = m->handles[i];

                if (!h || !handle_is_detached(h) || !h->mark)
                        continue;
                CHECK((h->mark >> 40) == h->n_inflight, "detached %" PRIx64 " in-flight %"
                      PRIu64 " != %" PRIu64, h->id, h->n_inflight, h->mark >> 40);
                *refsp += h->n_inflight;
                h->mark = 0;
                ok &= validate_node(h->node);
        }
        return ok;
}

static bool validate_peer(Peer *peer) {
        uint64_t refs = 0, n_unpublished = 0, n_fds = 0, n_live = 0, n_destroyed = 0, busy = 0;
        QueueEntry *e;
        bool ok = true;
        RBNode *rb;
        Node *node;

        if (peer->disconnected) {
                CHECK(!peer->n_handles && !peer->n_nodes && !peer->n_destroyed_nodes &&
                      !peer->queue.n_entries &&
                      !peer->seed && list_is_empty(&peer->nodes),
                      "disconnected peer %" PRIu64 " holds objects", peer->id);
                return ok;
        }

        CHECK(pool_validate(&peer->pool) == 0, "peer %" PRIu64 " pool", peer->id);
        ok &= validate_handles(peer, &refs);
        CHECK(!peer->n_handle_reserved, "reservation left");

        ok &= validate_queue(peer, &n_unpublished, &n_fds);
        CHECK(n_fds == peer->n_inflight_fds, "peer %" PRIu64 " fds", peer->id);

        /* every in-flight reference is a handle entry of a queued message */
        for (rb = rbtree_first(&peer->handles_by_id); rb; rb = rbnode_next(rb)) {
                Handle *h = container_of(rb, Handle, id_node);

                CHECK((h->mark >> 40) == h->n_inflight, "handle %" PRIx64 " in-flight %"
                      PRIu64 " != %" PRIu64, h->id, h->n_inflight, h->mark >> 40);
                h->mark = 0;
                ok &= validate_node(h->node);
        }

        /* detached handles: only queued entries know them */
        list_for_each_entry(e, &peer->queue.entries, link)
                if (e->type == QUEUE_ENTRY_DATA)
                        ok &= validate_detached(container_of(e, Message, entry), &refs);
        if (peer->seed)
                ok &= validate_detached(peer->seed, &refs);
        CHECK(refs == peer->n_handle_refs, "peer %" PRIu64 " handle refs with detached %"
              PRIu64 " != %" PRIu64, peer->id, peer->n_handle_refs, refs);

        for (rb = rbtree_first(&peer->pool.busy); rb; rb = rbnode_next(rb))
                busy += !container_of(rb, PoolSlice, offset_node)->published;
        CHECK(busy == n_unpublished, "peer %" PRIu64 " unpublished slices %" PRIu64
              " != messages %" PRIu64, peer->id, busy, n_unpublished);

        list_for_each_entry(node, &peer->nodes, owner_link) {
                CHECK(node->owner == peer, "node on a foreign owner list");
                n_destroyed += node->destroyed;
                if (!node->destroyed) {
                        ++n_live;
                        CHECK(node->owner_handle && node->owner_handle->holder == peer,
                              "live node's owner handle");
                }
        }
        CHECK(n_live == peer->n_nodes, "peer %" PRIu64 " live nodes", peer->id);
        CHECK(n_destroyed == peer->n_destroyed_nodes, "peer %" PRIu64 " destroyed nodes",
              peer->id);
        return ok;
}

/* share[r] a foreign actor holds of @user, summed over queued messages */
static uint64_t validate_message_shares(Bus *bus, User *user, uint32_t actor, unsigned int r) {
        uint64_t sum = 0;
        Peer *peer;
        QueueEntry *e;

        list_for_each_entry(peer, &bus->peers, bus_link) {
                if (peer->user != user || peer->disconnected)
                        continue;
                list_for_each_entry(e, &peer->queue.entries, link)
                        if (e->type == QUEUE_ENTRY_DATA &&
                            container_of(e, Message, entry)->actor == actor)
                                sum += container_of(e, Message, entry)->share[r];
                if (peer->seed && peer->seed->actor == actor)
                        sum += peer->seed->share[r];
        }
        return sum;
}

/* every user's `used` is what its peers hold; shares are the messages' */
static bool validate_users(Bus *bus) {
        bool ok = true;
        RBNode *n;

        for (n = rbtree_first(&bus->users.users); n; n = rbnode_next(n)) {
                User *user = container_of(n, User, registry_node);
                uint64_t held[_USER_N] = {}, n_peers = 0, n_actors[_USER_N] = {}, n_usages;
                Peer *peer;
                RBNode *u;

                list_for_each_entry(peer, &bus->peers, bus_link) {
                        if (peer->user != user)
                                continue;
                        ++n_peers;
                        if (peer->disconnected)
                                continue;
                        held[USER_SLICES] += peer->pool.n_busy;
                        held[USER_HANDLES] += peer->n_handle_refs + peer->n_handle_reserved;
                        held[USER_BYTES] += peer->pool.busy_bytes;
                        held[USER_FDS] += peer->n_inflight_fds;
                }
                CHECK(n_peers == user->n_peers, "user %u peers", user->uid);
                n_peers = 0;
                list_for_each_entry(peer, &user->peers, user_link)
                        n_peers += peer->user == user;
                CHECK(n_peers == user->n_peers, "user %u peer list", user->uid);
                for (unsigned int r = 0; r < _USER_N; ++r)
                        CHECK(held[r] == user->used[r], "user %u %s used %" PRIu64
                              " != held %" PRIu64, user->uid, user_resource_name(r),
                              user->used[r], held[r]);

                n_usages = 0;
                for (u = rbtree_first(&user->usages); u; u = rbnode_next(u)) {
                        UserUsage *usage = container_of(u, UserUsage, user_node);

                        ++n_usages;
                        CHECK(usage->actor != user->uid, "user %u usage of itself", user->uid);
                        for (unsigned int r = 0; r < _USER_N; ++r) {
                                n_actors[r] += !!usage->share[r];
                                CHECK(usage->share[r] == validate_message_shares(bus, user,
                                                                                 usage->actor, r),
                                      "user %u share of %u in %s", user->uid, usage->actor,
                                      user_resource_name(r));
                        }
                }
                CHECK(n_usages == user->n_usages, "user %u usages", user->uid);
                for (unsigned int r = 0; r < _USER_N; ++r)
                        CHECK(n_actors[r] == user->n_actors[r], "user %u actors of %s",
                              user->uid, user_resource_name(r));
        }
        return ok;
}

/**
 * bus_validate() - check every invariant of the object model
 * @bus:        bus, between two operations
 *
 * Return: 0 if all hold, -1 if any does not (each is printed to stderr).
 */
int bus_validate(Bus *bus) {
        uint64_t n = 0;
        bool ok = true;
        Peer *peer;

        list_for_each_entry(peer, &bus->peers, bus_link) {
                ++n;
                CHECK(peer->bus == bus, "peer on a foreign bus");
                ok &= validate_peer(peer);
        }
        CHECK(n == bus->n_peers, "peer count");
        ok &= validate_users(bus);
        return ok ? 0 : -1;
}
