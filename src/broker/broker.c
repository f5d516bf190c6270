/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Broker: the running bus1d
 *
 * Invariants: every connection on `connections` is open and owned by the
 * broker; `by_inode` indexes them by the inode of the broker's socket end,
 * which is how a connection fd a client passes (HANDLE_TRANSFER) is matched
 * to its peer. The event loop ends on SIGTERM/SIGINT or when a listener
 * fails.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <systemd/sd-daemon.h>
#include "broker/broker.h"
#include "broker/connection.h"
#include "broker/listener.h"
#include "bus/pool.h"
#include "broker/pool-memfd.h"
#include "proto/proto.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/clock.h"

/* BusDrainFn: the peer's connection applies its client's release ring */
static void broker_drain(Bus *bus, Peer *peer) {
        if (peer->userdata)
                connection_drain(peer->userdata);
}

static int broker_pool_setup(Bus *bus, Peer *peer, Pool *pool, uint64_t size) {
        return pool_memfd_init(pool, size);
}

/*
 * The first refusal of each (receiver, actor) pair is worth a line, once
 * per REFUSAL_LOG_INTERVAL_USEC however often its users come and go; in
 * the journal its fields let `journalctl BUS1_UID=1000` find who was
 * refused.
 */
static void broker_on_refusal(UserRegistry *registry, const UserRefusal *refusal) {
        Broker *broker = container_of(registry, Broker, bus.users);
        char actor[16], receiver[16], amount[24];

        if (!refusal_log_admit(&broker->refusals, refusal->receiver, refusal->actor,
                               clock_now_usec(CLOCK_MONOTONIC)))
                return;

        snprintf(actor, sizeof(actor), "%u", refusal->actor);
        snprintf(receiver, sizeof(receiver), "%u", refusal->receiver);
        snprintf(amount, sizeof(amount), "%llu", (unsigned long long)refusal->amount);
        log_struct(LOG_NOTICE,
                   ((const LogField[]){
                           { "BUS1_UID", actor },
                           { "BUS1_RECEIVER_UID", receiver },
                           { "BUS1_RESOURCE", user_resource_name(refusal->resource) },
                           { "BUS1_AMOUNT", amount },
                   }),
                   "quota: uid %u refused %llu %s for uid %u (%llu left); "
                   "further refusals of this pair are counted, not logged",
                   refusal->actor, (unsigned long long)refusal->amount,
                   user_resource_name(refusal->resource), refusal->receiver,
                   (unsigned long long)refusal->remaining);
}

/*
 * The descriptor table is shared by everything: every connection costs two
 * (socket and pool), every fd in flight one. What is left after the
 * connections, with a reserve for the broker's own needs, is what messages
 * may hold.
 */
static void broker_update_fd_budget(Broker *broker) {
        uint64_t used = 2 * broker->n_connections + BROKER_FD_RESERVE;

        broker->bus.fd_budget = broker->fd_limit > used ? broker->fd_limit - used : 0;
}

/*
 * Every second: a pool that was idle (no slice queued or held) at two
 * sweeps in a row, with no slice placed in between, gives its pages back,
 * so a peer that filled its pool once does not keep that memory for ever.
 * At most one hole punch per pool and second; pools in use are left alone.
 */
static int broker_sweep_fn(sd_event_source *s, uint64_t usec, void *userdata) {
        Broker *broker = userdata;
        Connection *conn, *tmp;

        list_for_each_entry(conn, &broker->connections, broker_link) {
                Pool *pool = &conn->peer->pool;

                /* releases the client wrote into its ring count as made */
                connection_drain(conn);
                if (pool->n_busy) {
                        conn->pool_idle = false;
                        continue;
                }
                if (conn->pool_idle && conn->pool_allocs == pool->n_allocs)
                        pool_trim(pool);
                conn->pool_idle = true;
                conn->pool_allocs = pool->n_allocs;
        }
        /* the ACKs among them may have queued notifications */
        list_for_each_entry_safe(conn, tmp, &broker->dirty, dirty_link)
                connection_push(conn);
        return sd_event_source_set_time_relative(s, BROKER_SWEEP_USEC);
}

/**
 * broker_new() - create a broker with an event loop and an empty bus
 * @brokerp:    out: the broker
 *
 * Return: 0, -ENOMEM, or the errno of sd-event.
 */
int broker_new(Broker **brokerp) {
        _cleanup_(broker_freep) Broker *broker = NULL;
        int r;

        broker = calloc(1, sizeof(*broker));
        if (!broker)
                return -ENOMEM;
        broker->epfd = -1;

        bus_init(&broker->bus);
        broker->bus.pool_setup = broker_pool_setup;
        broker->bus.drain = broker_drain;
        broker->bus.pool_size = 0;      /* each peer's pool covers its user's byte limit */
        /* a peer starts with its user's limits, whatever they are configured to */
        broker->bus.limits = (PeerLimits){
                .max_slices = PEER_LIMIT_MAX,
                .max_handles = PEER_LIMIT_MAX,
                .max_inflight_bytes = PEER_LIMIT_MAX,
                .max_inflight_fds = PEER_LIMIT_MAX,
        };
        broker->bus.users.on_refusal = broker_on_refusal;
        broker->bus.userdata = broker;
        control_init(&broker->control, broker);
        list_init(&broker->connections);
        list_init(&broker->dirty);
        rbtree_init(&broker->by_inode);

        /* room for the largest record and the trailing byte that shows MSG_TRUNC */
        broker->rx_size = PROTO_RECORD_MAX + 8;
        broker->rx_buf = malloc(broker->rx_size);
        if (!broker->rx_buf)
                return -ENOMEM;

        {
                struct rlimit rl;

                broker->fd_limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
                                   rl.rlim_cur != RLIM_INFINITY ? rl.rlim_cur : 1024;
        }
        broker_update_fd_budget(broker);

        scheduler_init(&broker->sched, BROKER_QUANTUM_NSEC);
        broker->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (broker->epfd < 0)
                return -errno;

        r = sd_event_new(&broker->event);
        if (r < 0)
                return r;
        {
                /* data.ptr NULL: sd-event's own descriptor */
                struct epoll_event ev = { .events = EPOLLIN };

                if (epoll_ctl(broker->epfd, EPOLL_CTL_ADD, sd_event_get_fd(broker->event),
                              &ev) < 0)
                        return -errno;
        }
        r = sd_event_set_signal_exit(broker->event, true);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(broker->event, &broker->sweep, CLOCK_MONOTONIC,
                                       BROKER_SWEEP_USEC, 0, broker_sweep_fn, broker);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(broker->sweep, SD_EVENT_ON);
        if (r < 0)
                return r;

        *brokerp = TAKE_PTR(broker);
        return 0;
}

/**
 * broker_free() - close every connection and listener, free the broker
 * @broker:     broker, or NULL
 *
 * Return: NULL.
 */
Broker *broker_free(Broker *broker) {
        Connection *conn;

        if (!broker)
                return NULL;

        while ((conn = list_entry(list_first(&broker->connections), Connection, broker_link)))
                connection_free(conn);
        for (unsigned int i = 0; i < broker->n_listeners; ++i)
                listener_free(broker->listeners[i]);
        control_deinit(&broker->control);
        bus_deinit(&broker->bus);
        sd_event_source_disable_unref(broker->sweep);
        sd_event_unref(broker->event);
        scheduler_deinit(&broker->sched);
        safe_close(broker->epfd);
        free(broker->rx_buf);
        free(broker);
        return NULL;
}

static int broker_accept_fn(Listener *listener, int fd, void *userdata) {
        Broker *broker = userdata;
        Connection *conn;
        int r;

        /* a connection must leave room for the fds already in flight */
        if (2 * (broker->n_connections + 1) + BROKER_FD_RESERVE + broker->bus.n_inflight_fds +
            broker->bus.n_parked_fds > broker->fd_limit) {
                safe_close(fd);
                return -EMFILE;
        }
        r = connection_new(&conn, broker, fd);
        broker_update_fd_budget(broker);
        return r;
}

static int broker_add_listener(Broker *broker, Listener *listener) {
        if (broker->n_listeners >= BROKER_LISTENERS_MAX) {
                listener_free(listener);
                return -EMFILE;
        }
        broker->listeners[broker->n_listeners++] = listener;
        return 0;
}

/**
 * broker_listen_path() - listen on a socket path
 * @broker:     broker
 * @path:       socket path
 * @mode:       permissions of the socket file, 0 for the umask's
 *
 * Return: 0, or what listener_new_path() returns.
 */
int broker_listen_path(Broker *broker, const char *path, mode_t mode) {
        Listener *listener;
        int r;

        r = listener_new_path(&listener, broker->event, path, mode, broker_accept_fn,
                              broker);
        if (r < 0)
                return r;
        return broker_add_listener(broker, listener);
}

/**
 * broker_listen_activated() - listen on the sockets systemd passed
 * @broker:     broker
 * @n_fds:      what sd_listen_fds() returned before anything else opened
 *              a descriptor (the sockets are SD_LISTEN_FDS_START onwards)
 *
 * Return: 0, or a negative errno (-EINVAL for a passed fd that is not a
 *         listening SOCK_SEQPACKET AF_UNIX socket).
 */
int broker_listen_activated(Broker *broker, int n_fds) {
        int r;

        for (int i = 0; i < n_fds; ++i) {
                Listener *listener;

                r = listener_new_fd(&listener, broker->event, SD_LISTEN_FDS_START + i,
                                    broker_accept_fn, broker);
                if (r < 0)
                        return r;
                r = broker_add_listener(broker, listener);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool broker_finished(Broker *broker) {
        return sd_event_get_state(broker->event) == SD_EVENT_FINISHED;
}

/*
 * Let sd-event run what is pending until it has nothing to do now, then arm
 * it (timers) for the wait; not once the loop was told to exit and has
 * finished. Return: the number of dispatches, or a negative errno.
 */
static int broker_settle_event(Broker *broker) {
        int n = 0, r;

        while (!broker->event_armed && !broker_finished(broker)) {
                r = sd_event_prepare(broker->event);
                if (r < 0)
                        return r;
                if (r == 0) {
                        broker->event_armed = true;
                        break;
                }
                r = sd_event_dispatch(broker->event);
                if (r < 0)
                        return r;
                ++n;
        }
        return n;
}

/*
 * Collect what epoll has, waiting up to @timeout ms: connections are woken
 * (their turn comes), sd-event runs what its descriptor announced. Return:
 * the number of events, or a negative errno.
 */
static int broker_harvest(Broker *broker, int timeout) {
        struct epoll_event events[BROKER_EVENTS_MAX];
        bool event_ready = false;
        int n, r;

        n = epoll_wait(broker->epfd, events, BROKER_EVENTS_MAX, timeout);
        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        for (int i = 0; i < n; ++i) {
                if (events[i].data.ptr)
                        connection_wake(events[i].data.ptr, events[i].events);
                else
                        event_ready = true;
        }
        if (event_ready && broker->event_armed) {
                broker->event_armed = false;
                r = sd_event_wait(broker->event, 0);
                if (r > 0)
                        r = sd_event_dispatch(broker->event);
                if (r < 0)
                        return r;
        }
        return n;
}

/*
 * Serve turns, each charged with the time it took, until none is left or
 * BROKER_HARVEST_NSEC passed (then new events are collected first).
 * Return: the number of turns.
 */
static int broker_serve(Broker *broker) {
        uint64_t start, begin, end;
        SchedEntry *entry;
        int n = 0;

        start = begin = clock_now_nsec(CLOCK_MONOTONIC);
        while ((entry = scheduler_next(&broker->sched))) {
                connection_turn(container_of(entry, Connection, sched));
                end = clock_now_nsec(CLOCK_MONOTONIC);
                scheduler_charge(&broker->sched, end - begin);
                ++n;
                if (end - start >= BROKER_HARVEST_NSEC)
                        break;
                begin = end;
        }
        return n;
}

/**
 * broker_iterate() - one round of the event loop
 * @broker:     broker
 * @block:      wait for events if nothing is ready
 *
 * Runs what sd-event has pending, collects events (waiting only if @block
 * and no connection waits for its turn), and serves turns for up to
 * BROKER_HARVEST_NSEC. broker_run() calls it until the loop is told to
 * exit; tests call it without @block until it returns 0.
 *
 * Return: 1 if anything was done, 0 if nothing was to be done (or the
 *         loop finished), or a negative errno.
 */
int broker_iterate(Broker *broker, bool block) {
        int n_events, n_turns, n_dispatched;

        n_dispatched = broker_settle_event(broker);
        if (n_dispatched < 0)
                return n_dispatched;
        if (broker_finished(broker))
                return n_dispatched > 0;
        n_events = broker_harvest(broker, block && !scheduler_busy(&broker->sched) ? -1 : 0);
        if (n_events < 0)
                return n_events;
        n_turns = broker_serve(broker);
        return n_dispatched + n_events + n_turns > 0;
}

/**
 * broker_run() - run the event loop until told to stop
 * @broker:     broker
 *
 * Return: 0 after SIGTERM/SIGINT, or the negative errno that ended the loop.
 */
int broker_run(Broker *broker) {
        int code = 0, r;

        while (!broker_finished(broker)) {
                r = broker_iterate(broker, true);
                if (r < 0)
                        return r;
        }
        /* the exit code a failing listener set (an errno), or 0 for a signal */
        r = sd_event_get_exit_code(broker->event, &code);
        if (r < 0)
                return r;
        return code > 0 ? -code : code;
}

/**
 * broker_connection_closed() - a connection went away
 * @broker:     broker
 *
 * A descriptor is free again: listeners that ran out resume.
 */
void broker_connection_closed(Broker *broker) {
        broker_update_fd_budget(broker);
        for (unsigned int i = 0; i < broker->n_listeners; ++i)
                listener_resume(broker->listeners[i]);
}

static int broker_compare_inode(const RBNode *n, const void *key) {
        const Connection *conn = container_of(n, Connection, inode_node);
        uint64_t ino = *(const uint64_t *)key;

        if (ino < conn->inode)
                return -1;
        return ino > conn->inode;
}

/**
 * broker_index_connection() - make a connection findable by its inode
 * @broker:     broker
 * @conn:       connection, not indexed yet
 */
void broker_index_connection(Broker *broker, Connection *conn) {
        RBNode **slot, *parent;

        slot = rbtree_find_slot(&broker->by_inode, broker_compare_inode, &conn->inode, &parent);
        if (slot)
                rbtree_add(&broker->by_inode, parent, slot, &conn->inode_node);
}

/**
 * broker_unindex_connection() - forget a connection's inode
 * @broker:     broker
 * @conn:       connection
 */
void broker_unindex_connection(Broker *broker, Connection *conn) {
        rbtree_remove(&broker->by_inode, &conn->inode_node);
}

/**
 * broker_find_connection() - the connection whose socket has an inode
 * @broker:     broker
 * @inode:      inode of the broker's end of the socket
 *
 * Return: the connection, or NULL. O(log n).
 */
Connection *broker_find_connection(Broker *broker, uint64_t inode) {
        return rbnode_entry(rbtree_find(&broker->by_inode, broker_compare_inode, &inode),
                            Connection, inode_node);
}
