/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Control: what bus1ctl asks the broker, and the monitor
 *
 * See control.h for the access rules and the monitor's ring. Invariants:
 *  - a report lists only peers the caller may see, each list at most
 *    CONTROL_LIST_MAX entries, and a body never exceeds PROTO_CTL_BYTES_MAX:
 *    what does not fit is left out and the reply says "truncated";
 *  - every monitor is on control->monitors, holds at most
 *    CONTROL_MONITOR_RING events, and loses events only while its ring is
 *    full, counting each one in n_lost until a LOST event reports them;
 *  - the counters only grow.
 *
 * Building a report walks the visible peers and their objects once:
 * O(what is shown), bounded by the list limits.
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "broker/broker.h"
#include "bus/bus.h"
#include "broker/connection.h"
#include "broker/control.h"
#include "bus/handle.h"
#include "broker/listener.h"
#include "bus/message.h"
#include "bus/node.h"
#include "bus/peer.h"
#include "bus/pool.h"
#include "broker/pool-memfd.h"
#include "bus/queue.h"
#include "bus/user.h"
#include "util/fdlist.h"
#include "util/json.h"
#include "util/macro.h"
#include "util/clock.h"

/* room kept free in a report for the item being written and the closing brackets */
#define CONTROL_ITEM_RESERVE (64U * 1024U)

static Control *control_from_bus(Bus *bus) {
        return &((Broker *)bus->userdata)->control;
}

static void control_observe(Bus *bus, const BusEvent *event);

static uint64_t control_user_clock(UserRegistry *registry) {
        return clock_now_usec(CLOCK_REALTIME);
}

/**
 * control_init() - set up the control state of a broker
 * @control:    control state, embedded in @broker
 * @broker:     the broker, whose bus it observes from now on
 */
void control_init(Control *control, Broker *broker) {
        *control = (Control){
                .broker = broker,
                .start_time = clock_now_usec(CLOCK_REALTIME),
                .uid = geteuid(),
        };
        list_init(&control->monitors);
        broker->bus.observer = control_observe;
        broker->bus.users.clock = control_user_clock;
}

/**
 * control_deinit() - release the control state
 * @control:    control state; its monitors are gone with their connections
 */
void control_deinit(Control *control) {
        Monitor *monitor, *tmp;

        list_for_each_entry_safe(monitor, tmp, &control->monitors, link)
                monitor_free(monitor);
}

/**
 * control_is_privileged() - whether a caller sees everything
 * @control:    control state
 * @uid:        the caller's UID
 *
 * Return: true for root and for the UID the broker runs as.
 */
bool control_is_privileged(Control *control, uint32_t uid) {
        return uid == 0 || uid == (uint32_t)control->uid;
}

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

typedef struct ControlTotals {
        uint64_t n_peers;
        uint64_t n_control;
        uint64_t n_nodes;
        uint64_t n_handles;
        uint64_t n_handle_refs;
        uint64_t n_queued;
        uint64_t n_messages;
        uint64_t n_slices;
        uint64_t n_bytes;
        uint64_t n_fds;
        uint64_t n_pool_resident;
} ControlTotals;

static void control_sum(Control *control, uint32_t caller_uid, ControlTotals *t) {
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

static void control_report_status(Control *control, JsonWriter *w, uint32_t caller_uid,
                                  Connection *caller) {
        Broker *broker = control->broker;
        bool privileged = control_is_privileged(control, caller_uid);
        const UserLimits *limits = &broker->bus.users.defaults;
        ControlTotals t;
        Connection *conn;

        control_sum(control, caller_uid, &t);
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

static void control_report_peers(Control *control, JsonWriter *w, uint32_t caller_uid,
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

static int control_report_peer(Control *control, JsonWriter *w, uint32_t caller_uid,
                               uint64_t id, bool *truncatedp) {
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

static int control_report_quota(Control *control, JsonWriter *w, uint32_t caller_uid,
                                 uint64_t arg, bool *truncatedp) {
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

/* OpenMetrics: one family with one sample */
static void control_metric(FILE *f, const char *name, const char *type, const char *help,
                           uint64_t v) {
        fprintf(f, "# TYPE %s %s\n# HELP %s %s\n", name, type, name, help);
        fprintf(f, "%s%s %llu\n", name, strcmp(type, "counter") == 0 ? "_total" : "",
                (unsigned long long)v);
}

static int control_report_metrics(Control *control, char **bodyp, size_t *lenp) {
        Broker *broker = control->broker;
        UserRegistry *registry = &broker->bus.users;
        char *body = NULL;
        size_t len = 0;
        ControlTotals t;
        FILE *f;

        f = open_memstream(&body, &len);
        if (!f)
                return -ENOMEM;

        control_sum(control, 0, &t);
        fprintf(f, "# TYPE bus1d_build info\n# HELP bus1d_build Version of the broker.\n"
                   "bus1d_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
        control_metric(f, "bus1d_start_time_seconds", "gauge",
                       "When the broker started, in seconds since the epoch.",
                       control->start_time / 1000000);
        control_metric(f, "bus1d_peers", "gauge", "Connected peers.", t.n_peers);
        control_metric(f, "bus1d_control_connections", "gauge",
                       "Connections used for control requests only.", t.n_control);
        control_metric(f, "bus1d_monitors", "gauge", "Monitors.", control->n_monitors);
        control_metric(f, "bus1d_users", "gauge", "UIDs with peers.", registry->n_users);
        control_metric(f, "bus1d_nodes", "gauge", "Live nodes.", t.n_nodes);
        control_metric(f, "bus1d_handles", "gauge", "Handles held by peers.", t.n_handles);
        control_metric(f, "bus1d_handle_references", "gauge",
                       "Handle references (user and in flight).", t.n_handle_refs);
        control_metric(f, "bus1d_queued_entries", "gauge",
                       "Queued entries (messages and notifications).", t.n_queued);
        control_metric(f, "bus1d_queued_messages", "gauge", "Queued messages.", t.n_messages);
        control_metric(f, "bus1d_inflight_slices", "gauge", "Pool slices in use.", t.n_slices);
        control_metric(f, "bus1d_inflight_bytes", "gauge", "Pool bytes in use.", t.n_bytes);
        control_metric(f, "bus1d_inflight_fds", "gauge", "File descriptors in flight.",
                       t.n_fds);
        control_metric(f, "bus1d_pool_resident_bytes", "gauge",
                       "Memory the peers' pools take now (pages not given back yet).",
                       t.n_pool_resident);
        control_metric(f, "bus1d_connections", "counter", "Connections accepted.",
                       broker->bus.n_peer_ids);
        control_metric(f, "bus1d_nodes_created", "counter", "Nodes created.",
                       broker->bus.n_node_ids);
        control_metric(f, "bus1d_messages_sent", "counter", "Messages queued on receivers.",
                       control->n_sent);
        control_metric(f, "bus1d_bytes_sent", "counter", "Payload bytes queued on receivers.",
                       control->n_sent_bytes);
        control_metric(f, "bus1d_messages_delivered", "counter",
                       "Messages dequeued by receivers.", control->n_delivered);
        control_metric(f, "bus1d_nodes_destroyed", "counter", "Nodes destroyed.",
                       control->n_destroyed);
        control_metric(f, "bus1d_node_releases", "counter", "NODE_RELEASE notifications queued.",
                       control->n_released);
        control_metric(f, "bus1d_handle_transfers", "counter",
                       "Handles transferred into another peer.", control->n_transfers);
        fprintf(f, "# TYPE bus1d_send_refusals counter\n"
                   "# HELP bus1d_send_refusals Destinations that refused a message.\n"
                   "bus1d_send_refusals_total{error=\"EDQUOT\"} %llu\n"
                   "bus1d_send_refusals_total{error=\"EXFULL\"} %llu\n",
                (unsigned long long)control->n_refused_quota,
                (unsigned long long)control->n_refused_full);
        fprintf(f, "# TYPE bus1d_quota_refusals counter\n"
                   "# HELP bus1d_quota_refusals Charges the per-UID quota refused.\n");
        for (unsigned int r = 0; r < _USER_N; ++r)
                fprintf(f, "bus1d_quota_refusals_total{resource=\"%s\"} %llu\n",
                        user_resource_name(r), (unsigned long long)registry->n_refusals[r]);
        control_metric(f, "bus1d_monitor_events_lost", "counter",
                       "Events monitors lost because they did not read.",
                       control->n_events_lost);
        fprintf(f, "# EOF\n");

        if (fclose(f) != 0) {
                free(body);
                return -ENOMEM;
        }
        *bodyp = body;
        *lenp = len;
        return 0;
}

/**
 * control_report() - build the body of a control reply
 * @control:    control state
 * @caller:     the asking connection
 * @req:        the request (STATUS, PEERS, PEER, QUOTA or METRICS)
 * @bodyp:      out: the body, NUL-terminated, to free()
 * @lenp:       out: its length (without the NUL), at most PROTO_CTL_BYTES_MAX
 * @formatp:    out: PROTO_CTL_FORMAT_*
 * @flagsp:     out: PROTO_CTL_REPLY_FLAG_TRUNCATED if lists were cut short
 *
 * Return: 0, -ENXIO for a PEER the caller cannot see (or that does not
 *         exist), -EPERM for METRICS or another UID's QUOTA asked by an
 *         unprivileged caller, -ENOMEM.
 */
int control_report(Control *control, Connection *caller, const ProtoCtl *req, char **bodyp,
                   size_t *lenp, uint32_t *formatp, uint32_t *flagsp) {
        uint32_t caller_uid = caller->peer->creds.uid;
        bool truncated = false;
        JsonWriter w;
        int r = 0;

        if (req->type == PROTO_TYPE_CTL_METRICS) {
                if (!control_is_privileged(control, caller_uid))
                        return -EPERM;
                r = control_report_metrics(control, bodyp, lenp);
                if (r < 0)
                        return r;
                *formatp = PROTO_CTL_FORMAT_OPENMETRICS;
                *flagsp = 0;
                return 0;
        }

        json_writer_init(&w, PROTO_CTL_BYTES_MAX, NULL);
        switch (req->type) {
        case PROTO_TYPE_CTL_STATUS:
                control_report_status(control, &w, caller_uid, caller);
                break;
        case PROTO_TYPE_CTL_PEERS:
                control_report_peers(control, &w, caller_uid, &truncated);
                break;
        case PROTO_TYPE_CTL_PEER:
                r = control_report_peer(control, &w, caller_uid, req->arg, &truncated);
                break;
        case PROTO_TYPE_CTL_QUOTA:
                r = control_report_quota(control, &w, caller_uid, req->arg, &truncated);
                break;
        default:
                r = -EINVAL;
                break;
        }
        if (r < 0) {
                json_writer_deinit(&w);
                return r;
        }
        r = json_writer_finish(&w, bodyp, lenp);
        /* the reserve keeps every report within the limit: -EMSGSIZE is a bug */
        if (r < 0)
                return r == -EMSGSIZE ? -ENOMEM : r;
        *formatp = PROTO_CTL_FORMAT_JSON;
        *flagsp = truncated ? PROTO_CTL_REPLY_FLAG_TRUNCATED : 0;
        return 0;
}

/* monitors */

/*
 * A secret for an unprivileged monitor's message IDs. getrandom(2) never
 * blocks here: the broker must not wait for the entropy pool at boot, and
 * what the key protects (how busy other users are) is worth less than that.
 */
static void monitor_make_key(uint8_t key[SIPHASH_KEY_SIZE]) {
        static uint64_t n_keys;
        uint64_t mix[4];

#ifdef GRND_INSECURE
        if (getrandom(key, SIPHASH_KEY_SIZE, GRND_INSECURE) == SIPHASH_KEY_SIZE)
                return;
#endif
        if (getrandom(key, SIPHASH_KEY_SIZE, GRND_NONBLOCK) == SIPHASH_KEY_SIZE)
                return;
        /* no entropy yet (an old kernel early at boot): what differs anyway */
        mix[0] = clock_now_nsec(CLOCK_MONOTONIC);
        mix[1] = (uint64_t)getpid();
        mix[2] = ++n_keys;
        mix[3] = (uint64_t)(uintptr_t)key;
        for (unsigned int i = 0; i < 2; ++i) {
                uint64_t h = siphash24((const uint8_t[SIPHASH_KEY_SIZE]){ (uint8_t)i }, mix,
                                       sizeof(mix));

                memcpy(key + 8 * i, &h, 8);
        }
}

/*
 * The message ID an unprivileged monitor sees: the bus's, through a
 * four-round Feistel permutation of its low 52 bits keyed by the monitor's
 * secret (SipHash as the round function). A permutation keeps IDs unique,
 * so SEND and DELIVER of one message still pair, while the values no longer
 * count messages: the gaps between its own would tell how many other users
 * send. 52 bits keep the IDs exact in JSON readers that use doubles; IDs
 * are 1..2^52 (0 stays "none"), the bus's beyond that keep their high bits.
 */
#define MONITOR_ID_HALF_BITS 26U
#define MONITOR_ID_HALF_MASK ((UINT64_C(1) << MONITOR_ID_HALF_BITS) - 1)
#define MONITOR_ID_MASK ((UINT64_C(1) << (2 * MONITOR_ID_HALF_BITS)) - 1)

static uint64_t monitor_message_id(const Monitor *monitor, uint64_t id) {
        uint64_t x, l, r;

        if (!id)
                return 0;
        x = id - 1;
        l = (x & MONITOR_ID_MASK) >> MONITOR_ID_HALF_BITS;
        r = x & MONITOR_ID_HALF_MASK;
        for (uint64_t round = 0; round < 4; ++round) {
                uint64_t in[2] = { round, r }, f;

                f = siphash24(monitor->key, in, sizeof(in)) & MONITOR_ID_HALF_MASK;
                in[0] = l ^ f;
                l = r;
                r = in[0];
        }
        return ((x & ~MONITOR_ID_MASK) | (l << MONITOR_ID_HALF_BITS) | r) + 1;
}

/* whether @uid may start one more monitor */
static bool monitor_slot_free(Control *control, uint32_t uid) {
        uint64_t n_uid = 0, n_unprivileged = 0;
        Monitor *monitor;

        if (control->n_monitors >= CONTROL_MONITORS_MAX)
                return false;
        list_for_each_entry(monitor, &control->monitors, link) {
                n_uid += monitor->caller_uid == uid;
                n_unprivileged += !monitor->privileged;
        }
        if (control_is_privileged(control, uid))
                return true;
        return n_uid < CONTROL_MONITORS_PER_UID &&
               n_unprivileged < CONTROL_MONITORS_MAX - CONTROL_MONITORS_RESERVED;
}

/**
 * monitor_new() - make a connection a monitor
 * @monitorp:   out: the monitor
 * @control:    control state
 * @conn:       the connection that sent MONITOR
 * @req:        the request, with its filter
 *
 * Return: 0, -EBUSY if no slot is left for the caller (CONTROL_MONITORS_MAX;
 *         for an unprivileged caller also CONTROL_MONITORS_PER_UID of its
 *         UID, and CONTROL_MONITORS_RESERVED kept for privileged ones),
 *         -ENOMEM.
 */
int monitor_new(Monitor **monitorp, Control *control, Connection *conn,
                const ProtoCtlMonitor *req) {
        Monitor *monitor;

        if (!monitor_slot_free(control, conn->peer->creds.uid))
                return -EBUSY;
        monitor = calloc(1, sizeof(*monitor));
        if (!monitor)
                return -ENOMEM;
        monitor->events = calloc(CONTROL_MONITOR_RING, sizeof(*monitor->events));
        monitor->wire = malloc(PROTO_RECORD_MAX);
        if (!monitor->events || !monitor->wire) {
                free(monitor->wire);
                free(monitor->events);
                free(monitor);
                return -ENOMEM;
        }
        monitor->control = control;
        monitor->conn = conn;
        monitor->caller_uid = conn->peer->creds.uid;
        monitor->privileged = control_is_privileged(control, monitor->caller_uid);
        monitor->types = req->types;
        monitor->peer = req->peer;
        monitor->node = req->node;
        monitor->uid = req->uid;
        if (!monitor->privileged)
                monitor_make_key(monitor->key);
        list_link_tail(&control->monitors, &monitor->link);
        ++control->n_monitors;
        *monitorp = monitor;
        return 0;
}

/**
 * monitor_free() - stop monitoring
 * @monitor:    monitor, or NULL
 *
 * Return: NULL.
 */
Monitor *monitor_free(Monitor *monitor) {
        if (!monitor)
                return NULL;
        list_unlink(&monitor->link);
        --monitor->control->n_monitors;
        free(monitor->wire);
        free(monitor->events);
        free(monitor);
        return NULL;
}

/*
 * Whether the event involves the peer the monitor filters on, on a side
 * it may see (an unprivileged monitor cannot probe for another UID's peer
 * IDs with its filter).
 */
static bool monitor_names_peer(Monitor *monitor, const ProtoEvent *e) {
        bool own = monitor->privileged || e->uid == monitor->caller_uid;
        bool own_target = monitor->privileged || e->target_uid == monitor->caller_uid;

        return (own && e->peer == monitor->peer) || (own_target && e->target == monitor->peer);
}

/* whether a monitor may see an event, and wants to */
static bool monitor_wants(Monitor *monitor, const ProtoEvent *e) {
        if (!monitor->privileged && e->uid != monitor->caller_uid &&
            e->target_uid != monitor->caller_uid)
                return false;
        if (monitor->types && !(monitor->types & (UINT64_C(1) << e->type)))
                return false;
        if (monitor->uid != PROTO_CTL_UID_ANY && e->uid != monitor->uid &&
            e->target_uid != monitor->uid)
                return false;
        if (monitor->peer && !monitor_names_peer(monitor, e))
                return false;
        if (monitor->node && e->node != monitor->node)
                return false;
        return true;
}

static void monitor_append(Monitor *monitor, const ProtoEvent *e) {
        monitor->events[(monitor->head + monitor->n_events) % CONTROL_MONITOR_RING] = *e;
        ++monitor->n_events;
}

/* a LOST event, if events were dropped and there is room for it */
static void monitor_report_lost(Monitor *monitor, uint64_t seq, uint64_t time) {
        if (!monitor->n_lost || monitor->n_events >= CONTROL_MONITOR_RING)
                return;
        monitor_append(monitor, &(ProtoEvent){
                .seq = seq,
                .time = time,
                .type = PROTO_EVENT_LOST,
                .uid = UINT32_MAX,
                .target_uid = UINT32_MAX,
                .count = monitor->n_lost,
        });
        monitor->n_lost = 0;
}

/*
 * What an unprivileged monitor may see of an event: of another UID's peer
 * its UID only, a seq of its own and message IDs through its permutation
 * (the bus's clock and message count would tell how much other users do).
 */
static ProtoEvent monitor_redact(Monitor *monitor, const ProtoEvent *e) {
        ProtoEvent r = *e;

        if (monitor->privileged)
                return r;
        r.seq = ++monitor->n_numbered;
        r.message = monitor_message_id(monitor, e->message);
        if (r.uid != monitor->caller_uid) {
                r.peer = 0;
                r.pid = 0;
        }
        if (r.target_uid != monitor->caller_uid) {
                r.target = 0;
                r.target_pid = 0;
        }
        return r;
}

static void monitor_push(Monitor *monitor, const ProtoEvent *event) {
        ProtoEvent e = monitor_redact(monitor, event);

        /* what was lost comes first, then this, and only if both fit */
        if (monitor->n_lost && monitor->n_events + 2 <= CONTROL_MONITOR_RING)
                monitor_report_lost(monitor, e.seq, e.time);
        if (monitor->n_lost || monitor->n_events >= CONTROL_MONITOR_RING) {
                ++monitor->n_lost;
                ++monitor->control->n_events_lost;
                return;
        }
        monitor_append(monitor, &e);
}

/**
 * monitor_peek() - the oldest buffered events
 * @monitor:    monitor
 * @eventsp:    out: the oldest events, contiguous in the ring
 * @max:        at most this many
 *
 * When the ring is empty and events were lost, a LOST event is queued
 * first, so the monitor learns of it even if nothing else happens. Fewer
 * than are buffered may be returned where the ring wraps; call again after
 * monitor_consume().
 *
 * Return: the number of events at *@eventsp.
 */
size_t monitor_peek(Monitor *monitor, const ProtoEvent **eventsp, size_t max) {
        size_t n;

        if (!monitor->n_events && monitor->n_lost)
                monitor_report_lost(monitor,
                                    monitor->privileged ? monitor->control->broker->bus.clock
                                                        : monitor->n_numbered,
                                    clock_now_nsec(CLOCK_REALTIME));
        n = MIN(max, monitor->n_events);
        n = MIN(n, CONTROL_MONITOR_RING - monitor->head);
        *eventsp = &monitor->events[monitor->head];
        return n;
}

/**
 * monitor_consume() - drop events that were written to the socket
 * @monitor:    monitor
 * @n:          how many, at most what monitor_peek() returned
 */
void monitor_consume(Monitor *monitor, size_t n) {
        n = MIN(n, monitor->n_events);
        monitor->head = (monitor->head + n) % CONTROL_MONITOR_RING;
        monitor->n_events -= n;
}

static uint32_t control_event_type(unsigned int type) {
        switch (type) {
        case BUS_EVENT_SEND:
                return PROTO_EVENT_SEND;
        case BUS_EVENT_DELIVER:
                return PROTO_EVENT_DELIVER;
        case BUS_EVENT_DESTROY:
                return PROTO_EVENT_DESTROY;
        case BUS_EVENT_RELEASE:
                return PROTO_EVENT_RELEASE;
        case BUS_EVENT_TRANSFER:
                return PROTO_EVENT_TRANSFER;
        }
        return PROTO_EVENT_REFUSAL;
}

/* the bus observer: count, and hand a copy to every monitor that wants it */
static void control_observe(Bus *bus, const BusEvent *event) {
        Control *control = control_from_bus(bus);
        Monitor *monitor;
        ProtoEvent e;

        switch (event->type) {
        case BUS_EVENT_SEND:
                ++control->n_sent;
                control->n_sent_bytes += event->n_bytes;
                break;
        case BUS_EVENT_DELIVER:
                ++control->n_delivered;
                break;
        case BUS_EVENT_DESTROY:
                ++control->n_destroyed;
                break;
        case BUS_EVENT_RELEASE:
                ++control->n_released;
                break;
        case BUS_EVENT_TRANSFER:
                ++control->n_transfers;
                break;
        case BUS_EVENT_REFUSAL:
                if (event->error == EDQUOT)
                        ++control->n_refused_quota;
                else if (event->error == EXFULL)
                        ++control->n_refused_full;
                break;
        }

        if (list_is_empty(&control->monitors))
                return;

        e = (ProtoEvent){
                .seq = event->seq,
                .time = clock_now_nsec(CLOCK_REALTIME),
                .type = control_event_type(event->type),
                .error = event->type == BUS_EVENT_REFUSAL ? (uint32_t)event->error : 0,
                .peer = event->peer.id,
                .uid = event->peer.uid,
                .pid = event->peer.pid,
                .target = event->target.id,
                .target_uid = event->target.uid,
                .target_pid = event->target.pid,
                .node = event->node,
                .message = event->message,
                .n_bytes = event->n_bytes,
                .n_handles = (uint32_t)MIN(event->n_handles, (uint64_t)UINT32_MAX),
                .n_fds = (uint32_t)MIN(event->n_fds, (uint64_t)UINT32_MAX),
        };
        /* a REFUSAL always carries its errno on the wire */
        if (e.type == PROTO_EVENT_REFUSAL && (e.error == 0 || e.error > PROTO_ERRNO_MAX))
                e.error = EIO;
        list_for_each_entry(monitor, &control->monitors, link)
                if (monitor_wants(monitor, &e))
                        monitor_push(monitor, &e);
}
