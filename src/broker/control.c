/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Control: what bus1ctl asks the broker, and the monitor
 *
 * See control.h for the access rules. This file holds what ties the
 * reports (control-report.c), the metrics (metrics.c) and the monitors
 * (monitor.c) together. Invariants:
 *  - the broker's bus has control_observe() as its observer from
 *    control_init() on: every bus event is counted once and offered to
 *    every monitor;
 *  - a reply body is at most PROTO_CTL_BYTES_MAX and in the format the
 *    reply names: JSON for STATUS, PEERS, PEER and QUOTA, and for METRICS
 *    with PROTO_CTL_FLAG_JSON; OpenMetrics text for METRICS without it;
 *  - METRICS is answered to privileged callers only.
 */

#include <errno.h>
#include <time.h>
#include <unistd.h>
#include "broker/broker.h"
#include "broker/connection.h"
#include "broker/control-report.h"
#include "broker/control.h"
#include "broker/metrics.h"
#include "broker/monitor.h"
#include "bus/bus.h"
#include "bus/peer.h"
#include "bus/user.h"
#include "util/clock.h"
#include "util/json.h"

static Control *control_from_bus(Bus *bus) {
        return &((Broker *)bus->userdata)->control;
}

/* the bus observer: count, and hand a copy to every monitor that wants it */
static void control_observe(Bus *bus, const BusEvent *event) {
        Control *control = control_from_bus(bus);

        metrics_count(&control->counters, event);
        monitor_broadcast(control, event);
}

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

/* the JSON body of @req into @w */
static int control_report_json(Control *control, Connection *caller, const ProtoCtl *req,
                               JsonWriter *w, bool *truncatedp) {
        uint32_t caller_uid = caller->peer->creds.uid;

        switch (req->type) {
        case PROTO_TYPE_CTL_STATUS:
                control_report_status(control, w, caller);
                return 0;
        case PROTO_TYPE_CTL_PEERS:
                control_report_peers(control, w, caller_uid, truncatedp);
                return 0;
        case PROTO_TYPE_CTL_PEER:
                return control_report_peer(control, w, caller_uid, req->arg, truncatedp);
        case PROTO_TYPE_CTL_QUOTA:
                return control_report_quota(control, w, caller_uid, req->arg, truncatedp);
        case PROTO_TYPE_CTL_METRICS:
                metrics_json(control, w);
                return 0;
        }
        return -EINVAL;
}

/**
 * control_report() - build the body of a control reply
 * @control:    control state
 * @caller:     the asking connection
 * @req:        the request (STATUS, PEERS, PEER, QUOTA or METRICS)
 * @bodyp:      out: the body, NUL-terminated, to free()
 * @lenp:       out: its length (without the NUL), at most PROTO_CTL_BYTES_MAX
 * @formatp:    out: PROTO_CTL_FORMAT_*: OPENMETRICS for METRICS without
 *              PROTO_CTL_FLAG_JSON, else JSON
 * @flagsp:     out: PROTO_CTL_REPLY_FLAG_TRUNCATED if lists were cut short
 *
 * Return: 0, -ENXIO for a PEER the caller cannot see (or that does not
 *         exist), -EPERM for METRICS or another UID's QUOTA asked by an
 *         unprivileged caller, -ENOMEM.
 */
int control_report(Control *control, Connection *caller, const ProtoCtl *req, char **bodyp,
                   size_t *lenp, uint32_t *formatp, uint32_t *flagsp) {
        bool truncated = false;
        JsonWriter w;
        int r;

        if (req->type == PROTO_TYPE_CTL_METRICS) {
                if (!control_is_privileged(control, caller->peer->creds.uid))
                        return -EPERM;
                if (!(req->flags & PROTO_CTL_FLAG_JSON)) {
                        r = metrics_openmetrics(control, bodyp, lenp);
                        if (r < 0)
                                return r;
                        *formatp = PROTO_CTL_FORMAT_OPENMETRICS;
                        *flagsp = 0;
                        return 0;
                }
        }

        json_writer_init(&w, PROTO_CTL_BYTES_MAX, NULL);
        r = control_report_json(control, caller, req, &w, &truncated);
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
