/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * CtlRender: how bus1ctl prints what the broker reports
 *
 * Every report arrives as one JSON object, checked by util/json. With
 * --json it is printed again, compact or indented; else it is rendered as
 * text: aligned fields and tables for STATUS, PEERS, PEER and QUOTA, and
 * OpenMetrics text for METRICS (ctl-metrics.c). Output goes to stdout; a
 * failure is reported on stderr as "Failed to ...".
 */

#include <stdbool.h>
#include <stdint.h>
#include "util/json.h"

typedef enum CtlJson {
        CTL_JSON_OFF,
        CTL_JSON_SHORT,
        CTL_JSON_PRETTY,
} CtlJson;

/* what the options ask of the output */
typedef struct CtlOutput {
        CtlJson json;
        bool legend;            /* table headers and summary lines */
} CtlOutput;

const char *ctl_noun(uint64_t n, const char *one, const char *many);

void ctl_json_init(JsonWriter *w, const CtlOutput *out, bool line);
int ctl_json_finish(JsonWriter *w);

int ctl_render_report(const CtlOutput *out, uint16_t type, const JsonValue *v);

/* ctl-metrics.c */
int ctl_render_openmetrics(const JsonValue *v);
