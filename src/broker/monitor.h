/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Monitor: a control connection that streams bus events (MONITOR)
 *
 * control.c hands every bus event to monitor_broadcast(); each monitor
 * whose filter wants it, and whose caller may see it, keeps a copy in its
 * ring, and mirror.c drains the ring into EVENTS records (monitor_peek(),
 * monitor_consume()).
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
#include <stddef.h>
#include <stdint.h>
#include "proto/proto.h"
#include "util/list.h"
#include "util/siphash.h"

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

int monitor_new(Monitor **monitorp, Control *control, Connection *conn,
                const ProtoCtlMonitor *req);
Monitor *monitor_free(Monitor *monitor);
size_t monitor_peek(Monitor *monitor, const ProtoEvent **eventsp, size_t max);
void monitor_consume(Monitor *monitor, size_t n);

void monitor_broadcast(Control *control, const BusEvent *event);
