/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Control reports: the JSON bodies of STATUS, PEERS, PEER and QUOTA
 *
 * See control.h for the access rules. Invariants:
 *  - a report lists only peers the caller may see (control_shows()): a
 *    control connection is never one, and an unprivileged caller sees the
 *    peers of its own UID only; PEER of an invisible peer is -ENXIO, as for
 *    one that does not exist;
 *  - each list holds at most CONTROL_LIST_MAX entries, and a report leaves
 *    CONTROL_ITEM_RESERVE of PROTO_CTL_BYTES_MAX free before each entry, so
 *    the body never exceeds the limit: what does not fit is left out, and
 *    the report says "truncated" while its counts still give the full
 *    lengths;
 *  - nothing here changes the bus: a report only reads.
 *
 * Building a report walks the visible peers and their objects once:
 * O(what is shown), bounded by the list limits.
 */

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "broker/broker.h"
#include "broker/connection.h"
#include "broker/control-report.h"
#include "broker/control.h"
#include "broker/listener.h"
#include "broker/pool-memfd.h"
#include "bus/bus.h"
#include "bus/handle.h"
#include "bus/message.h"
#include "bus/node.h"
#include "bus/peer.h"
#include "bus/pool.h"
#include "bus/queue.h"
#include "bus/user.h"
#include "util/clock.h"
#include "util/json.h"
#include "util/macro.h"

/* room kept free in a report for the item being written and the closing brackets */
#define CONTROL_ITEM_RESERVE (64U * 1024U)

/* a connection a caller may see in a report */
static bool control_shows(Control *control, Connection *conn, uint32_t caller_uid) {
        if (conn->control)
                return false;
        return control_is_privileged(control, caller_uid) || conn->peer->creds.uid == caller_uid;
}

/* whether the writer has room for one more item */
static bool control_has_room(JsonWriter *w) {
        return w->len < PROTO_CTL_BYTES_MAX - CONTROL_ITEM_RESERVE;
}

static void control_write_resources(JsonWriter *w, const char *key, const uint64_t v[_USER_N]) {
        json_key(w, key);
        json_begin_object(w);
        for (unsigned int r = 0; r < _USER_N; ++r)
                json_pair_u64(w, user_resource_name(r), v[r]);
        json_end_object(w);
}

static void control_write_peer_limits(JsonWriter *w, const PeerLimits *l) {
        json_key(w, "limits");
        json_begin_object(w);
        json_pair_u64(w, "slices", l->max_slices);
        json_pair_u64(w, "handles", l->max_handles);
        json_pair_u64(w, "bytes", l->max_inflight_bytes);
        json_pair_u64(w, "fds", l->max_inflight_fds);
        json_end_object(w);
}

static void control_write_user_limits(JsonWriter *w, const UserLimits *l) {
        json_key(w, "limits");
        json_begin_object(w);
        for (unsigned int r = 0; r < _USER_N; ++r)
                json_pair_u64(w, user_resource_name(r), l->max[r]);
        json_pair_u64(w, "connections", l->max_peers);
        json_end_object(w);
}

/*
 * The memory a pool's pages take now (its memfd's allocated blocks): what
 * slices placed since the pool was last trimmed left behind, up to the
 * pool's size. The memfd is the broker's own, so fstat(2) cannot block.
 */
static uint64_t control_pool_resident(const Pool *pool) {
        struct stat st;

        if (pool_memfd_fd(pool) < 0 || fstat(pool_memfd_fd(pool), &st) < 0)
                return 0;
        return (uint64_t)st.st_blocks * 512;
}

/* what a peer holds, in the units of its limits */
static void control_peer_usage(const Peer *peer, uint64_t usage[_USER_N]) {
        usage[USER_SLICES] = peer->pool.n_busy;
        usage[USER_HANDLES] = peer->n_handle_refs;
        usage[USER_BYTES] = peer->pool.busy_bytes;
        usage[USER_FDS] = peer->n_inflight_fds;
}

static void control_write_cmdline(JsonWriter *w, Connection *conn) {
        json_key(w, "cmdline");
        if (conn->cmdline)
                json_string(w, conn->cmdline);
        else
                json_null(w);
}

/* the fields of a peer that both PEERS and PEER show */
static void control_write_peer_head(JsonWriter *w, Connection *conn) {
        Peer *peer = conn->peer;
        uint64_t usage[_USER_N];

        json_pair_u64(w, "id", peer->id);
        json_pair_u64(w, "pid", peer->creds.pid);
        json_pair_u64(w, "uid", peer->creds.uid);
        json_pair_u64(w, "gid", peer->creds.gid);
        control_write_cmdline(w, conn);
        json_pair_u64(w, "connected", conn->connect_time);
        json_pair_bool(w, "hello", conn->hello);
        json_pair_bool(w, "disconnected", peer->disconnected);
        json_pair_bool(w, "monitor", conn->monitor != NULL);
        json_pair_u64(w, "n_nodes", peer->n_nodes);
        json_pair_u64(w, "n_handles", peer->n_handles);
        json_pair_u64(w, "n_queued", peer->queue.n_entries);
        control_peer_usage(peer, usage);
        control_write_resources(w, "usage", usage);
        json_pair_u64(w, "pool_resident", control_pool_resident(&peer->pool));
}

/**
 * control_report_totals() - sum what the peers a caller may see hold
 * @control:    control state
 * @caller_uid: the caller's UID; a privileged one (0 for METRICS) sees all
 * @t:          out: the totals; n_control counts the caller's (or, if it is
 *              privileged, every) control connection
 */
void control_report_totals(Control *control, uint32_t caller_uid, ControlTotals *t) {
        Broker *broker = control->broker;
        Connection *conn;

        *t = (ControlTotals){};
        list_for_each_entry(conn, &broker->connections, broker_link) {
                Peer *peer = conn->peer;
                if (conn->control) {
                        t->n_control += control_is_privileged(control, caller_uid) ||
                                        peer->creds.uid == caller_uid;
                        continue;
                }
                if (!control_shows(control, conn, caller_uid))
                        continue;
                ++t->n_peers;
                t->n_nodes += peer->n_nodes;
                t->n_handles += peer->n_handles;
                t->n_handle_refs += peer->n_handle_refs;
                t->n_queued += peer->queue.n_entries;
                t->n_messages += peer->queue.n_messages;
                t->n_slices += peer->pool.n_busy;
                t->n_bytes += peer->pool.busy_bytes;
                t->n_fds += peer->n_inflight_fds;
                t->n_pool_resident += control_pool_resident(&peer->pool);
        }
}

/*
 * The broker's open descriptors, but those of the asking connection (its
 * socket and pool), so the figure is what the broker holds without it.
 * Its own /proc directory: cheap, and nothing a client controls.
 */
static uint64_t control_count_fds(Connection *caller) {
        uint64_t n = 0, own = 1 + (pool_memfd_fd(&caller->peer->pool) >= 0);
        struct dirent *d;
        DIR *dir;

        dir = opendir("/proc/self/fd");
        if (!dir)
                return 0;
        while ((d = readdir(dir)))
                n += d->d_name[0] != '.';
        closedir(dir);
        /* opendir's own descriptor */
        return n > own + 1 ? n - own - 1 : 0;
}

/**
 * control_report_status() - the body of STATUS
 * @control:    control state
 * @w:          writer
 * @caller:     the asking connection: its UID decides the scope, and its own
 *              descriptors are left out of open_fds
 */
void control_report_status(Control *control, JsonWriter *w, Connection *caller) {
        Broker *broker = control->broker;
        uint32_t caller_uid = caller->peer->creds.uid;
        bool privileged = control_is_privileged(control, caller_uid);
        const UserLimits *limits = &broker->bus.users.defaults;
        ControlTotals t;
        Connection *conn;

        control_report_totals(control, caller_uid, &t);
        /* the limits the caller's peers get: its user's, if it has peers */
        list_for_each_entry(conn, &broker->connections, broker_link)
                if (conn->peer->creds.uid == caller_uid) {
                        limits = &conn->peer->user->limits;
                        break;
                }

        json_begin_object(w);
        json_pair_string(w, "version", PACKAGE_VERSION);
        json_pair_u64(w, "protocol", BUS1_PROTO_VERSION);
        json_pair_u64(w, "pid", (uint64_t)getpid());
        json_pair_u64(w, "uid", (uint64_t)control->uid);
        json_pair_u64(w, "start_time", control->start_time);
        json_pair_u64(w, "now", clock_now_usec(CLOCK_REALTIME));
        json_key(w, "addresses");
        json_begin_array(w);
        for (unsigned int i = 0; i < broker->n_listeners; ++i)
                if (broker->listeners[i]->path)
                        json_string(w, broker->listeners[i]->path);
        json_end_array(w);
        json_pair_u64(w, "caller_uid", caller_uid);
        json_pair_string(w, "scope", privileged ? "all" : "uid");
        json_pair_u64(w, "peers", t.n_peers);
        json_pair_u64(w, "control_connections", t.n_control);
        json_pair_u64(w, "monitors", privileged ? control->n_monitors : 0);
        json_pair_u64(w, "users", privileged ? broker->bus.users.n_users : 1);
        json_pair_u64(w, "nodes", t.n_nodes);
        json_pair_u64(w, "handles", t.n_handles);
        json_pair_u64(w, "handle_references", t.n_handle_refs);
        json_pair_u64(w, "queued", t.n_queued);
        json_pair_u64(w, "queued_messages", t.n_messages);
        json_pair_u64(w, "inflight_slices", t.n_slices);
        json_pair_u64(w, "inflight_bytes", t.n_bytes);
        json_pair_u64(w, "inflight_fds", t.n_fds);
        json_pair_u64(w, "pool_resident_bytes", t.n_pool_resident);
        if (privileged) {
                json_pair_u64(w, "open_fds", control_count_fds(caller));
                json_pair_u64(w, "fd_limit", broker->fd_limit);
        }
        control_write_user_limits(w, limits);
        json_end_object(w);
}

/**
 * control_report_peers() - the body of PEERS
 * @control:    control state
 * @w:          writer
 * @caller_uid: the caller's UID
 * @truncatedp: in/out: set if the list was cut (n_peers still counts all)
 */
void control_report_peers(Control *control, JsonWriter *w, uint32_t caller_uid,
                          bool *truncatedp) {
        Broker *broker = control->broker;
        Connection *conn;
        uint64_t n_peers = 0;
        unsigned int n = 0;

        json_begin_object(w);
        json_key(w, "peers");
        json_begin_array(w);
        list_for_each_entry(conn, &broker->connections, broker_link) {
                if (!control_shows(control, conn, caller_uid))
                        continue;
                /* past the limit, only counted: n_peers is the whole list */
                ++n_peers;
                if (*truncatedp)
                        continue;
                if (n++ >= CONTROL_LIST_MAX || !control_has_room(w)) {
                        *truncatedp = true;
                        continue;
                }
                json_begin_object(w);
                control_write_peer_head(w, conn);
                json_end_object(w);
        }
        json_end_array(w);
        json_pair_u64(w, "n_peers", n_peers);
        json_pair_bool(w, "truncated", *truncatedp);
        json_end_object(w);
}

/* one more entry of a list, if it may and fits */
static bool control_list_next(JsonWriter *w, unsigned int *n, bool *truncatedp) {
        if (*n >= CONTROL_LIST_MAX || !control_has_room(w)) {
                *truncatedp = true;
                return false;
        }
        ++*n;
        return true;
}

static void control_write_nodes(JsonWriter *w, Peer *peer, bool *truncatedp) {
        unsigned int n = 0;
        Node *node;

        json_key(w, "nodes");
        json_begin_array(w);
        list_for_each_entry(node, &peer->nodes, owner_link) {
                uint64_t n_holders = 0, n_messages = 0;
                Handle *h;
                Message *m;

                if (!control_list_next(w, &n, truncatedp))
                        break;
                list_for_each_entry(h, &node->handles, node_link)
                        ++n_holders;
                list_for_each_entry(m, &node->messages, node_link)
                        ++n_messages;
                json_begin_object(w);
                json_pair_u64(w, "id", node->id);
                json_key(w, "handle");
                if (node->owner_handle)
                        json_u64(w, node->owner_handle->id);
                else
                        json_null(w);
                json_pair_bool(w, "destroyed", node->destroyed);
                json_pair_u64(w, "holders", n_holders);
                /* every reference but the owner's pin: NODE_RELEASE comes at 0 */
                json_pair_u64(w, "references",
                              node->n_user_refs - (node->destroyed || !node->n_user_refs ? 0 : 1));
                json_pair_u64(w, "queued", n_messages);
                json_end_object(w);
        }
        json_end_array(w);
}

static void control_write_handles(JsonWriter *w, Peer *peer, bool *truncatedp) {
        unsigned int n = 0;
        RBNode *rb;

        json_key(w, "handles");
        json_begin_array(w);
        for (rb = rbtree_first(&peer->handles_by_id); rb; rb = rbnode_next(rb)) {
                Handle *h = container_of(rb, Handle, id_node);
                Peer *owner = h->node->owner;

                if (!control_list_next(w, &n, truncatedp))
                        break;
                json_begin_object(w);
                json_pair_u64(w, "id", h->id);
                json_pair_u64(w, "node", h->node->id);
                json_pair_u64(w, "owner", owner ? owner->id : 0);
                json_key(w, "owner_uid");
                if (owner)
                        json_u64(w, owner->creds.uid);
                else
                        json_null(w);
                json_pair_bool(w, "own", owner == peer);
                json_pair_bool(w, "destroyed", h->node->destroyed);
                json_pair_u64(w, "references", h->n_user);
                json_pair_u64(w, "inflight", h->n_inflight);
                json_end_object(w);
        }
        json_end_array(w);
}

static const char *control_entry_type(unsigned int type) {
        switch (type) {
        case QUEUE_ENTRY_DATA:
                return "data";
        case QUEUE_ENTRY_NODE_DESTROY:
                return "node_destroy";
        case QUEUE_ENTRY_NODE_RELEASE:
                return "node_release";
        }
        return "unknown";
}

/*
 * One queue entry. Its seq is the bus-wide transaction counter: only a
 * privileged caller sees it, since its jumps count other users' traffic.
 */
static void control_write_entry(JsonWriter *w, QueueEntry *entry, bool privileged) {
        json_begin_object(w);
        json_pair_u64(w, "entry", entry->id);
        if (privileged)
                json_pair_u64(w, "seq", entry->seq);
        json_pair_string(w, "type", control_entry_type(entry->type));
        if (entry->type == QUEUE_ENTRY_DATA) {
                Message *m = container_of(entry, Message, entry);

                json_pair_u64(w, "destination", m->destination);
                json_pair_u64(w, "node", m->node ? m->node->id : 0);
                json_pair_u64(w, "size", m->slice ? m->slice->size : 0);
                json_pair_u64(w, "bytes", m->n_bytes);
                json_pair_u64(w, "handles", m->n_handles);
                json_pair_u64(w, "fds", message_n_fds(m));
                json_pair_u64(w, "sender", m->sender_id);
                json_pair_u64(w, "sender_uid", m->creds.uid);
                json_pair_u64(w, "sender_pid", m->creds.pid);
        } else if (entry->type == QUEUE_ENTRY_NODE_DESTROY) {
                Handle *h = container_of(entry, Handle, destroy);

                json_pair_u64(w, "destination", h->id);
                json_pair_u64(w, "node", h->node->id);
        } else {
                Node *node = container_of(entry, Node, release);

                json_pair_u64(w, "destination", node->owner_handle ? node->owner_handle->id : 0);
                json_pair_u64(w, "node", node->id);
        }
        json_end_object(w);
}

static void control_write_queue(JsonWriter *w, Peer *peer, bool privileged, bool *truncatedp) {
        unsigned int n = 0;
        QueueEntry *entry;

        json_key(w, "queue");
        json_begin_array(w);
        list_for_each_entry(entry, &peer->queue.entries, link) {
                if (!control_list_next(w, &n, truncatedp))
                        break;
                control_write_entry(w, entry, privileged);
        }
        json_end_array(w);
}

static void control_write_slices(JsonWriter *w, Peer *peer, bool *truncatedp) {
        unsigned int n = 0;
        RBNode *rb;

        json_key(w, "slices");
        json_begin_array(w);
        for (rb = rbtree_first(&peer->pool.busy); rb; rb = rbnode_next(rb)) {
                PoolSlice *slice = container_of(rb, PoolSlice, offset_node);

                if (!control_list_next(w, &n, truncatedp))
                        break;
                json_begin_object(w);
                json_pair_u64(w, "offset", slice->offset);
                json_pair_u64(w, "size", slice->size);
                /* a published slice was received and waits for SLICE_RELEASE */
                json_pair_string(w, "state", slice->published ? "received" : "queued");
                json_end_object(w);
        }
        json_end_array(w);
}

/**
 * control_report_peer() - the body of PEER
 * @control:    control state
 * @w:          writer; untouched on failure
 * @caller_uid: the caller's UID
 * @id:         the peer ID asked for
 * @truncatedp: in/out: set if one of its lists was cut
 *
 * Return: 0, -ENXIO for a peer that does not exist or the caller may not see.
 */
int control_report_peer(Control *control, JsonWriter *w, uint32_t caller_uid, uint64_t id,
                        bool *truncatedp) {
        Broker *broker = control->broker;
        Connection *conn = NULL, *c;
        Peer *peer;

        /* an invisible peer is as unknown as a missing one */
        list_for_each_entry(c, &broker->connections, broker_link)
                if (c->peer->id == id && control_shows(control, c, caller_uid)) {
                        conn = c;
                        break;
                }
        if (!conn)
                return -ENXIO;
        peer = conn->peer;

        json_begin_object(w);
        control_write_peer_head(w, conn);
        /* the lengths of the lists in full, however much of them is shown */
        json_pair_u64(w, "n_destroyed_nodes", peer->n_destroyed_nodes);
        json_pair_u64(w, "n_slices", peer->pool.n_busy);
        json_pair_u64(w, "pool_size", peer->pool.max_size);
        json_pair_bool(w, "seed", peer->seed != NULL);
        json_pair_bool(w, "want_secctx", peer->peer_flags & BUS1_PEER_FLAG_WANT_SECCTX);
        control_write_peer_limits(w, &peer->limits);
        control_write_nodes(w, peer, truncatedp);
        control_write_handles(w, peer, truncatedp);
        control_write_queue(w, peer, control_is_privileged(control, caller_uid), truncatedp);
        control_write_slices(w, peer, truncatedp);
        json_pair_bool(w, "truncated", *truncatedp);
        json_end_object(w);
        return 0;
}

static void control_write_refusal(JsonWriter *w, const char *key, uint64_t n,
                                  const UserRefusal *refusal) {
        json_key(w, key);
        if (!n) {
                json_null(w);
                return;
        }
        json_begin_object(w);
        json_pair_string(w, "resource", user_resource_name(refusal->resource));
        json_pair_u64(w, "amount", refusal->amount);
        json_pair_u64(w, "remaining", refusal->remaining);
        json_pair_u64(w, "time", refusal->time);
        json_end_object(w);
}

/* the peers of @user and what each holds: who eats the user's quota */
static void control_write_holders(Control *control, JsonWriter *w, User *user,
                                  bool *truncatedp) {
        unsigned int n = 0;
        Connection *conn;

        json_key(w, "holders");
        json_begin_array(w);
        list_for_each_entry(conn, &control->broker->connections, broker_link) {
                uint64_t usage[_USER_N];

                if (conn->peer->user != user)
                        continue;
                if (!control_list_next(w, &n, truncatedp))
                        break;
                control_peer_usage(conn->peer, usage);
                json_begin_object(w);
                json_pair_u64(w, "peer", conn->peer->id);
                json_pair_u64(w, "pid", conn->peer->creds.pid);
                control_write_cmdline(w, conn);
                json_pair_bool(w, "control", conn->control);
                control_write_resources(w, "usage", usage);
                json_end_object(w);
        }
        json_end_array(w);
}

static void control_write_user(Control *control, JsonWriter *w, User *user, bool *truncatedp) {
        uint64_t resident = 0;
        unsigned int n = 0;
        Peer *peer;
        RBNode *rb;

        list_for_each_entry(peer, &user->peers, user_link)
                resident += control_pool_resident(&peer->pool);

        json_begin_object(w);
        json_pair_u64(w, "uid", user->uid);
        json_pair_u64(w, "peers", user->n_peers);
        control_write_user_limits(w, &user->limits);
        control_write_resources(w, "used", user->used);
        json_pair_u64(w, "pool_resident", resident);
        json_pair_u64(w, "own_refusals", user->n_own_refusals);
        control_write_refusal(w, "last_own_refusal", user->n_own_refusals,
                              &user->last_own_refusal);
        json_pair_u64(w, "n_actors", user->n_usages);
        json_key(w, "actors");
        json_begin_array(w);
        for (rb = rbtree_first(&user->usages); rb; rb = rbnode_next(rb)) {
                UserUsage *usage = container_of(rb, UserUsage, user_node);

                if (!control_list_next(w, &n, truncatedp))
                        break;
                json_begin_object(w);
                json_pair_u64(w, "uid", usage->actor);
                control_write_resources(w, "share", usage->share);
                json_pair_u64(w, "refusals", usage->n_refusals);
                control_write_refusal(w, "last_refusal", usage->n_refusals,
                                      &usage->last_refusal);
                json_end_object(w);
        }
        json_end_array(w);
        control_write_holders(control, w, user, truncatedp);
        json_end_object(w);
}

/**
 * control_report_quota() - the body of QUOTA
 * @control:    control state
 * @w:          writer; untouched on failure
 * @caller_uid: the caller's UID
 * @arg:        a UID, or PROTO_CTL_UID_ALL for every UID the caller may see
 * @truncatedp: in/out: set if a list was cut
 *
 * Return: 0, -EPERM for another UID asked by an unprivileged caller.
 */
int control_report_quota(Control *control, JsonWriter *w, uint32_t caller_uid, uint64_t arg,
                         bool *truncatedp) {
        bool privileged = control_is_privileged(control, caller_uid);
        UserRegistry *registry = &control->broker->bus.users;
        unsigned int n = 0;
        RBNode *rb;

        if (!privileged && arg != PROTO_CTL_UID_ALL && arg != caller_uid)
                return -EPERM;

        json_begin_object(w);
        json_key(w, "users");
        json_begin_array(w);
        for (rb = rbtree_first(&registry->users); rb; rb = rbnode_next(rb)) {
                User *user = container_of(rb, User, registry_node);

                if (arg != PROTO_CTL_UID_ALL && user->uid != arg)
                        continue;
                if (!privileged && user->uid != caller_uid)
                        continue;
                if (!control_list_next(w, &n, truncatedp))
                        break;
                control_write_user(control, w, user, truncatedp);
        }
        json_end_array(w);
        json_pair_bool(w, "truncated", *truncatedp);
        json_end_object(w);
        return 0;
}
