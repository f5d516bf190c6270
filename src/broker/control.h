/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Control: what bus1ctl asks the broker, and the monitor
 *
 * Builds the bodies of the control replies (docs/protocol.md, section 15)
 * from the broker's state: a JSON object for STATUS, PEERS, PEER and QUOTA
 * (control-report.c), OpenMetrics text or, on request, JSON for METRICS
 * (metrics.c). It observes the bus (Bus.observer) to keep the counters
 * METRICS reports and to feed monitors (monitor.c). Nothing here touches a
 * socket: requests.c sends what is built here, and mirror.c drains each
 * monitor's event ring into EVENTS records.
 *
 * This file ties those together: the Control object a broker embeds, who
 * is privileged, which report a request gets in which format, and the
 * observer hook that hands every bus event to the counters and the
 * monitors.
 *
 * Access: the caller is the UID its connection had at connect (SO_PEERCRED).
 * A privileged caller (root, or the UID the broker runs as) sees every peer;
 * any other sees the peers of its own UID only, and the events in which one
 * of them takes part. METRICS, whose counters cover the whole bus, is for
 * privileged callers. IDs shown are not capabilities: nothing here lets a
 * caller send to or transfer anything. monitor.h says what a monitor sees.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "broker/metrics.h"
#include "broker/monitor.h"
#include "proto/proto.h"
#include "util/list.h"

typedef struct Broker Broker;
typedef struct Connection Connection;
typedef struct Control Control;

/* entries of one list in a report (peers, nodes, handles, queue, slices, actors) */
#define CONTROL_LIST_MAX 4096U
/* output queued for one UID's connections beyond which no report is built */
#define CONTROL_OUT_PER_UID (32U * 1024 * 1024)
/* bytes of a command line kept per connection */
#define CONTROL_CMDLINE_MAX 4096U

struct Control {
        Broker *broker;
        uint64_t start_time;    /* CLOCK_REALTIME, microseconds */
        uid_t uid;              /* the broker's effective UID */
        List monitors;          /* Monitor.link */
        uint64_t n_monitors;
        MetricsCounters counters;       /* what METRICS counts, over the broker's life */
};

void control_init(Control *control, Broker *broker);
void control_deinit(Control *control);

bool control_is_privileged(Control *control, uint32_t uid);
int control_report(Control *control, Connection *caller, const ProtoCtl *req, char **bodyp,
                   size_t *lenp, uint32_t *formatp, uint32_t *flagsp);
