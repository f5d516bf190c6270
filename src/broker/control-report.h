/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Control reports: the JSON bodies of STATUS, PEERS, PEER and QUOTA
 *
 * Each report is written into a JsonWriter bounded by PROTO_CTL_BYTES_MAX
 * and shows only what the caller may see (control.h); control_report()
 * picks the report and finishes the body. The totals over the visible
 * peers serve STATUS here and the gauges of METRICS (metrics.c).
 */

#include <stdbool.h>
#include <stdint.h>

typedef struct Connection Connection;
typedef struct Control Control;
typedef struct JsonWriter JsonWriter;

/* what the peers a caller may see hold, summed */
typedef struct ControlTotals {
        uint64_t n_peers;
        uint64_t n_control;     /* control connections, listed as no peer */
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

void control_report_totals(Control *control, uint32_t caller_uid, ControlTotals *t);

void control_report_status(Control *control, JsonWriter *w, Connection *caller);
void control_report_peers(Control *control, JsonWriter *w, uint32_t caller_uid,
                          bool *truncatedp);
int control_report_peer(Control *control, JsonWriter *w, uint32_t caller_uid, uint64_t id,
                        bool *truncatedp);
int control_report_quota(Control *control, JsonWriter *w, uint32_t caller_uid, uint64_t arg,
                         bool *truncatedp);
