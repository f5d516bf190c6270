/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Control: what bus1ctl asks the broker, and the monitor
 *
 * Builds the bodies of the control replies (docs/protocol.md, section 15)
 * from the broker's state: a JSON object for STATUS, PEERS, PEER and QUOTA,
 * OpenMetrics text for METRICS. It observes the bus (Bus.observer) to keep
 * the counters METRICS reports and to feed monitors. Nothing here touches a
 * socket: connection.c sends what is built here, and drains each monitor's
 * event ring into EVENTS records.
 *
 * Access: the caller is the UID its connection had at connect (SO_PEERCRED).
 * A privileged caller (root, or the UID the broker runs as) sees every peer;
 * any other sees the peers of its own UID only, and the events in which one
 * of them takes part. METRICS, whose counters cover the whole bus, is for
 * privileged callers. IDs shown are not capabilities: nothing here lets a
 * caller send to or transfer anything.
 *
 * A monitor never slows the bus: each has a ring of CONTROL_MONITOR_RING
 * events. When it is full, further events are dropped and counted, and a
 * LOST event with the count goes into the ring as soon as there is room.
 * An unprivileged monitor sees of the other party of an event (another
 * UID's peer) its UID only, not its peer ID or PID, and its events are
 * numbered by the monitor itself, not by the bus's clock, whose jumps would
 * tell how busy other users are; for the same reason the message IDs it
 * sees are the bus's passed through a permutation keyed by a secret of the
 * monitor (monitor_message_id()): still one per message, the same in its
 * SEND and DELIVER, but they do not count. An unprivileged UID holds at most
 * CONTROL_MONITORS_PER_UID monitors, and unprivileged UIDs together at most
 * CONTROL_MONITORS_MAX - CONTROL_MONITORS_RESERVED, so root and the broker's
 * UID always find one.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "proto/proto.h"
#include "util/list.h"
#include "util/siphash.h"

typedef struct Broker Broker;
typedef struct BusEvent BusEvent;
typedef struct Connection Connection;
typedef struct Control Control;
typedef struct Monitor Monitor;

/* events a monitor buffers before it loses some */
#define CONTROL_MONITOR_RING 4096U
/* monitors a broker serves at once; per UID; kept for privileged callers */
#define CONTROL_MONITORS_MAX 64U
#define CONTROL_MONITORS_PER_UID 4U
#define CONTROL_MONITORS_RESERVED 8U
/* entries of one list in a report (peers, nodes, handles, queue, slices, actors) */
#define CONTROL_LIST_MAX 4096U
/* output queued for one UID's connections beyond which no report is built */
#define CONTROL_OUT_PER_UID (32U * 1024 * 1024)
/* bytes of a command line kept per connection */
#define CONTROL_CMDLINE_MAX 4096U

struct Monitor {
        Control *control;
        Connection *conn;
        List link;              /* in control->monitors */
        uint32_t caller_uid;
        bool privileged;
        /* the filter; 0 (and PROTO_CTL_UID_ANY) match everything */
        uint64_t types;
        uint64_t peer;
        uint64_t node;
        uint32_t uid;
        /* the ring: n_events events from head on */
        ProtoEvent *events;
        size_t head;
        size_t n_events;
        uint64_t n_lost;        /* dropped since the last LOST went into the ring */
        uint64_t n_numbered;    /* unprivileged: the seq of the last event it got */
        uint8_t key[SIPHASH_KEY_SIZE];  /* unprivileged: permutes message IDs */
        uint8_t *wire;          /* PROTO_RECORD_MAX bytes to encode EVENTS records in */
};

struct Control {
        Broker *broker;
        uint64_t start_time;    /* CLOCK_REALTIME, microseconds */
        uid_t uid;              /* the broker's effective UID */
        List monitors;
        uint64_t n_monitors;
        /* what METRICS counts, over the broker's life */
        uint64_t n_sent;
        uint64_t n_sent_bytes;
        uint64_t n_delivered;
        uint64_t n_destroyed;
        uint64_t n_released;
        uint64_t n_transfers;
        uint64_t n_refused_quota;       /* destinations refused with EDQUOT */
        uint64_t n_refused_full;        /* and with EXFULL */
        uint64_t n_events_lost;
};

void control_init(Control *control, Broker *broker);
void control_deinit(Control *control);

bool control_is_privileged(Control *control, uint32_t uid);
int control_report(Control *control, Connection *caller, const ProtoCtl *req, char **bodyp,
                   size_t *lenp, uint32_t *formatp, uint32_t *flagsp);

int monitor_new(Monitor **monitorp, Control *control, Connection *conn,
                const ProtoCtlMonitor *req);
Monitor *monitor_free(Monitor *monitor);
size_t monitor_peek(Monitor *monitor, const ProtoEvent **eventsp, size_t max);
void monitor_consume(Monitor *monitor, size_t n);
