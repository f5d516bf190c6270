/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Broker: the running bus1d
 *
 * Owns the event loop, the listeners, every connection and the object model
 * (Bus). Built from parsed arguments by broker_new() and run by
 * broker_run() until SIGTERM or SIGINT.
 */

#include <stdint.h>
#include <systemd/sd-event.h>
#include "daemon/bus.h"
#include "daemon/control.h"
#include "daemon/refusal-log.h"
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
/* how often idle pools are looked for, to give their pages back */
#define BROKER_SWEEP_USEC (1000ULL * 1000)

struct Broker {
        sd_event *event;
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

int broker_listen_path(Broker *broker, const char *path);
int broker_listen_activated(Broker *broker, int n_fds);
int broker_run(Broker *broker);

void broker_connection_closed(Broker *broker);
void broker_index_connection(Broker *broker, Connection *conn);
void broker_unindex_connection(Broker *broker, Connection *conn);
Connection *broker_find_connection(Broker *broker, uint64_t inode);
