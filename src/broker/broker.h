/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Broker: the running bus1d
 *
 * Owns the event loop, the listeners, every connection and the object model
 * (Bus). Built from parsed arguments by broker_new() and run by
 * broker_run() until SIGTERM or SIGINT.
 *
 * The loop is the broker's own: one epoll instance holds every connection
 * (edge-triggered) and sd-event's descriptor, behind which sd-event keeps
 * the listeners, timers and signals. Connections that reported events are
 * served one request per turn, in the order the scheduler gives (fair
 * between UIDs, see scheduler.h); new events are collected between turns
 * at least every BROKER_HARVEST_NSEC, and sd-event runs whenever its
 * descriptor is readable. Work per wakeup is proportional to the events
 * it brings, never to the number of connections.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>
#include "bus/bus.h"
#include "broker/control.h"
#include "broker/refusal-log.h"
#include "broker/scheduler.h"
#include "proto/proto.h"
#include "util/list.h"
#include "util/macro.h"
#include "util/rbtree.h"

typedef struct Broker Broker;
typedef struct Connection Connection;
typedef struct Listener Listener;

#define BROKER_LISTENERS_MAX 16
/* descriptors kept free for the event loop, listeners, sock_diag and logging */
#define BROKER_FD_RESERVE 32
/*
 * A UID whose turns cost more than this (ns of broker time) passes its
 * next turns while others wait, until its credit is positive again.
 */
#define BROKER_QUANTUM_NSEC (50LL * 1000)
/* while requests wait, new events are collected at least this often (ns) */
#define BROKER_HARVEST_NSEC (20ULL * 1000)
/* events collected by one epoll_wait(2) */
#define BROKER_EVENTS_MAX 256
/* how often idle pools are looked for, to give their pages back */
#define BROKER_SWEEP_USEC (1000ULL * 1000)

struct Broker {
        sd_event *event;        /* listeners, timers, signals: one fd in epfd */
        bool event_armed;       /* sd_event_prepare() was called, no sd_event_wait() yet */
        int epfd;               /* the connections (edge-triggered) and sd-event's fd */
        Scheduler sched;        /* connections with work, served in turns fair between UIDs */
        sd_event_source *sweep;         /* gives idle pools' pages back, every second */
        Bus bus;
        Control control;        /* bus1ctl's requests, counters and monitors */
        RefusalLog refusals;    /* quota refusals logged lately */
        Listener *listeners[BROKER_LISTENERS_MAX];
        unsigned int n_listeners;
        List connections;               /* Connection.broker_link */
        RBTree by_inode;        /* connections by the inode of their socket */
        List dirty;             /* connections with entries to push */
        uint64_t n_connections;
        uint64_t fd_limit;      /* RLIMIT_NOFILE, as raised at start */
        uint8_t *rx_buf;        /* one receive buffer: the broker is single-threaded */
        int rx_fds[PROTO_RECORD_FDS_MAX];       /* the fds of the request being handled */
        size_t rx_size;
};

int broker_new(Broker **brokerp);
Broker *broker_free(Broker *broker);
DEFINE_CLEANUP(Broker *, broker_free);

int broker_listen_path(Broker *broker, const char *path, mode_t mode);
int broker_listen_activated(Broker *broker, int n_fds);
int broker_iterate(Broker *broker, bool block);
int broker_run(Broker *broker);

void broker_connection_closed(Broker *broker);
void broker_index_connection(Broker *broker, Connection *conn);
void broker_unindex_connection(Broker *broker, Connection *conn);
Connection *broker_find_connection(Broker *broker, uint64_t inode);
