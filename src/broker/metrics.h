/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Metrics: the broker's counters and gauges (METRICS)
 *
 * The counters grow with the bus events control.c hands to
 * metrics_count(); the gauges are the totals over every peer at the time
 * of the request. One list of families is built per request and written
 * either as OpenMetrics text (the default, for scrapers) or as JSON
 * (PROTO_CTL_FLAG_JSON, for bus1ctl): both forms carry the same families,
 * in the same order, with the same samples (docs/protocol.md, 15.4).
 */

#include <stddef.h>
#include <stdint.h>

typedef struct BusEvent BusEvent;
typedef struct Control Control;
typedef struct JsonWriter JsonWriter;

typedef struct MetricsCounters {
        uint64_t n_sent;
        uint64_t n_sent_bytes;
        uint64_t n_delivered;
        uint64_t n_destroyed;
        uint64_t n_released;
        uint64_t n_transfers;
        uint64_t n_refused_quota;       /* destinations refused with EDQUOT */
        uint64_t n_refused_full;        /* and with EXFULL */
        uint64_t n_events_lost;         /* by monitors that did not read */
} MetricsCounters;

void metrics_count(MetricsCounters *counters, const BusEvent *event);
int metrics_openmetrics(Control *control, char **bodyp, size_t *lenp);
void metrics_json(Control *control, JsonWriter *w);
