/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Connection: one client socket, and the peer it is
 *
 * Reads requests (recvmsg with SCM_RIGHTS), decodes them with src/proto,
 * makes one call into the object model per request and queues the reply.
 * It also mirrors the peer's queue to the client: entries are pushed as
 * they are queued, RETRACT/RESYNC records tell the client about entries
 * withdrawn by its own requests, and WAKE keeps the socket readable while
 * the client holds pushed entries (see docs/protocol.md). All socket I/O is
 * non-blocking; what cannot be written now waits in an output queue.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include "broker/ring.h"
#include "broker/scheduler.h"
#include "proto/proto.h"
#include "util/list.h"
#include "util/rbtree.h"

typedef struct Broker Broker;
typedef struct Connection Connection;
typedef struct Monitor Monitor;
typedef struct Peer Peer;

struct Connection {
        Broker *broker;
        List broker_link;       /* in broker->connections */
        List dirty_link;        /* in broker->dirty: has entries to push */
        RBNode inode_node;      /* in broker->by_inode */
        uint64_t inode;         /* inode of our socket end */
        int fd;
        SchedEntry sched;       /* its turns (broker->sched), in its UID's group */
        uint32_t epoll_events;  /* what broker->epfd watches for it */
        uint32_t revents;       /* reported since its last turn */
        bool rx_ready;          /* a record may be waiting: read until EAGAIN */
        bool hup;               /* the client hung up (EPOLLHUP or EPOLLERR) */
        Peer *peer;
        char *cmdline;          /* of the connecting process, for bus1ctl; may be NULL */
        uint64_t connect_time;  /* CLOCK_REALTIME, microseconds */
        Monitor *monitor;       /* a MONITOR was answered: events stream to it */

        bool hello;             /* HELLO answered: pushing is on */
        bool dead;              /* to be closed at its next turn (connection_fail()) */
        bool control;           /* control requests before any HELLO: not listed as a peer */
        bool push_blocked;      /* the socket was full: push again on EPOLLOUT */
        bool own_request;       /* a request of this connection is being applied */
        bool dequeuing;         /* the client dequeues (RECV, ACK): no RETRACT */
        bool resync;            /* too much changed: RESYNC before the reply */
        unsigned int n_retracts;
        uint64_t n_detached_seen;       /* peer->n_detached at the last reply */

        List out;               /* OutRecord: not yet written */
        uint64_t n_out_bytes;
        uint64_t push_cursor;   /* entries up to this id were pushed */

        int *carried;           /* fds of FDS carriers so far (PROTO_RECORD_FDS_MAX), or NULL;
                                 * CONNECTION_FD_REFUSED for one closed at arrival */
        size_t n_carried;
        uint64_t n_parked;      /* of those, open and charged (user, bus) */
        int carried_error;      /* a carrier was refused: the record fails with it */
        unsigned int n_hellos_unread;   /* HELLO replies maybe not read yet (2 fds each) */
        bool pool_idle;         /* the pool had no busy slice at the last sweep */
        uint64_t pool_allocs;   /* its n_allocs then */

        Ring ring;              /* the client's release ring, from the HELLO on */
        bool ring_broken;       /* the client broke it: close at the next wakeup */

        /*
         * A RECV handed fds over: the entry stays queued until the client's
         * SLICE_FDS, its next request, says it holds them (or could not
         * take them). Any other request drops this.
         */
        bool fd_pending;
        uint64_t fd_flags;      /* the RECV's flags, to dequeue with */
        uint64_t fd_entry_id;   /* the entry (0: the seed) */
        uint64_t fd_offset;     /* its slice */
        uint64_t fd_count;
};

/* in place of a carried fd closed at arrival: an AF_UNIX socket (EOPNOTSUPP) */
#define CONNECTION_FD_REFUSED (-EOPNOTSUPP)

int connection_new(Connection **connp, Broker *broker, int fd);
Connection *connection_free(Connection *conn);
void connection_wake(Connection *conn, uint32_t revents);
void connection_turn(Connection *conn);
void connection_push(Connection *conn);
void connection_drain(Connection *conn);
void connection_flush_monitor(Connection *conn);
