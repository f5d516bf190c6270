/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Metrics: the broker's counters and gauges (METRICS)
 *
 * A request collects the families once (metrics_collect()) and writes them
 * in the format asked for. Invariants:
 *  - the counters only grow, and each bus event adds to at most one of them
 *    (metrics_count());
 *  - the OpenMetrics text and the JSON are written from the same
 *    MetricsSet, so they hold the same families, in the same order, with
 *    the same samples and values;
 *  - the text is valid OpenMetrics: "# TYPE" and "# HELP" before each
 *    family's samples, counter samples named NAME_total, info samples
 *    NAME_info, label values and help escaped, integer values, "# EOF" last.
 *    Scrapers read it byte for byte, so the families, their order and their
 *    texts only change on purpose.
 *
 * Collecting walks every connection once (control_report_totals()).
 */

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "broker/broker.h"
#include "broker/control-report.h"
#include "broker/control.h"
#include "broker/metrics.h"
#include "bus/bus.h"
#include "bus/user.h"
#include "util/json.h"
#include "util/openmetrics.h"

typedef enum MetricsType {
        METRICS_GAUGE,
        METRICS_COUNTER,
        METRICS_INFO,
        _METRICS_TYPE_N,
} MetricsType;

/* OpenMetrics names the types, and suffixes the samples of some */
static const char *const metrics_type_names[_METRICS_TYPE_N] = {
        [METRICS_GAUGE] = "gauge",
        [METRICS_COUNTER] = "counter",
        [METRICS_INFO] = "info",
};
static const char *const metrics_sample_suffix[_METRICS_TYPE_N] = {
        [METRICS_GAUGE] = "",
        [METRICS_COUNTER] = "_total",
        [METRICS_INFO] = "_info",
};

/* a family has one label at most, and a sample per value of it */
#define METRICS_SAMPLES_MAX ((size_t)_USER_N)
#define METRICS_FAMILIES_MAX 32U
/* a sample's name: the family's, and its suffix */
#define METRICS_NAME_MAX 128U

typedef struct MetricsSample {
        const char *label_value;        /* NULL for a family without a label */
        uint64_t value;
} MetricsSample;

typedef struct MetricsFamily {
        const char *name;               /* without its samples' suffix */
        MetricsType type;
        const char *help;
        const char *label;              /* the label's name, or NULL */
        size_t n_samples;
        MetricsSample samples[METRICS_SAMPLES_MAX];
} MetricsFamily;

typedef struct MetricsSet {
        size_t n_families;
        MetricsFamily families[METRICS_FAMILIES_MAX];
} MetricsSet;

_Static_assert(_USER_N >= 2, "send refusals have two samples");

/**
 * metrics_count() - count one bus event
 * @counters:   the broker's counters
 * @event:      what happened
 */
void metrics_count(MetricsCounters *counters, const BusEvent *event) {
        switch (event->type) {
        case BUS_EVENT_SEND:
                ++counters->n_sent;
                counters->n_sent_bytes += event->n_bytes;
                break;
        case BUS_EVENT_DELIVER:
                ++counters->n_delivered;
                break;
        case BUS_EVENT_DESTROY:
                ++counters->n_destroyed;
                break;
        case BUS_EVENT_RELEASE:
                ++counters->n_released;
                break;
        case BUS_EVENT_TRANSFER:
                ++counters->n_transfers;
                break;
        case BUS_EVENT_REFUSAL:
                if (event->error == EDQUOT)
                        ++counters->n_refused_quota;
                else if (event->error == EXFULL)
                        ++counters->n_refused_full;
                break;
        }
}

static MetricsFamily *metrics_family(MetricsSet *set, const char *name, MetricsType type,
                                     const char *help, const char *label) {
        MetricsFamily *f;

        /* the families are fixed below: more is a bug */
        assert(set->n_families < METRICS_FAMILIES_MAX);
        f = &set->families[set->n_families++];
        *f = (MetricsFamily){ .name = name, .type = type, .help = help, .label = label };
        return f;
}

static void metrics_sample(MetricsFamily *f, const char *label_value, uint64_t value) {
        assert(f->n_samples < METRICS_SAMPLES_MAX);
        f->samples[f->n_samples++] = (MetricsSample){ .label_value = label_value, .value = value };
}

/* a family of one sample without labels */
static void metrics_one(MetricsSet *set, const char *name, MetricsType type, const char *help,
                        uint64_t value) {
        metrics_sample(metrics_family(set, name, type, help, NULL), NULL, value);
}

static void metrics_collect_gauges(Control *control, MetricsSet *set) {
        ControlTotals t;

        /* caller 0: every peer, and every control connection */
        control_report_totals(control, 0, &t);
        metrics_one(set, "bus1d_start_time_seconds", METRICS_GAUGE,
                    "When the broker started, in seconds since the epoch.",
                    control->start_time / 1000000);
        metrics_one(set, "bus1d_peers", METRICS_GAUGE, "Connected peers.", t.n_peers);
        metrics_one(set, "bus1d_control_connections", METRICS_GAUGE,
                    "Connections used for control requests only.", t.n_control);
        metrics_one(set, "bus1d_monitors", METRICS_GAUGE, "Monitors.", control->n_monitors);
        metrics_one(set, "bus1d_users", METRICS_GAUGE, "UIDs with peers.",
                    control->broker->bus.users.n_users);
        metrics_one(set, "bus1d_nodes", METRICS_GAUGE, "Live nodes.", t.n_nodes);
        metrics_one(set, "bus1d_handles", METRICS_GAUGE, "Handles held by peers.", t.n_handles);
        metrics_one(set, "bus1d_handle_references", METRICS_GAUGE,
                    "Handle references (user and in flight).", t.n_handle_refs);
        metrics_one(set, "bus1d_queued_entries", METRICS_GAUGE,
                    "Queued entries (messages and notifications).", t.n_queued);
        metrics_one(set, "bus1d_queued_messages", METRICS_GAUGE, "Queued messages.",
                    t.n_messages);
        metrics_one(set, "bus1d_inflight_slices", METRICS_GAUGE, "Pool slices in use.",
                    t.n_slices);
        metrics_one(set, "bus1d_inflight_bytes", METRICS_GAUGE, "Pool bytes in use.", t.n_bytes);
        metrics_one(set, "bus1d_inflight_fds", METRICS_GAUGE, "File descriptors in flight.",
                    t.n_fds);
        metrics_one(set, "bus1d_pool_resident_bytes", METRICS_GAUGE,
                    "Memory the peers' pools take now (pages not given back yet).",
                    t.n_pool_resident);
}

static void metrics_collect_counters(Control *control, MetricsSet *set) {
        const MetricsCounters *c = &control->counters;
        const Bus *bus = &control->broker->bus;
        MetricsFamily *f;

        metrics_one(set, "bus1d_connections", METRICS_COUNTER, "Connections accepted.",
                    bus->n_peer_ids);
        metrics_one(set, "bus1d_nodes_created", METRICS_COUNTER, "Nodes created.",
                    bus->n_node_ids);
        metrics_one(set, "bus1d_messages_sent", METRICS_COUNTER,
                    "Messages queued on receivers.", c->n_sent);
        metrics_one(set, "bus1d_bytes_sent", METRICS_COUNTER,
                    "Payload bytes queued on receivers.", c->n_sent_bytes);
        metrics_one(set, "bus1d_messages_delivered", METRICS_COUNTER,
                    "Messages dequeued by receivers.", c->n_delivered);
        metrics_one(set, "bus1d_nodes_destroyed", METRICS_COUNTER, "Nodes destroyed.",
                    c->n_destroyed);
        metrics_one(set, "bus1d_node_releases", METRICS_COUNTER,
                    "NODE_RELEASE notifications queued.", c->n_released);
        metrics_one(set, "bus1d_handle_transfers", METRICS_COUNTER,
                    "Handles transferred into another peer.", c->n_transfers);
        f = metrics_family(set, "bus1d_send_refusals", METRICS_COUNTER,
                           "Destinations that refused a message.", "error");
        metrics_sample(f, "EDQUOT", c->n_refused_quota);
        metrics_sample(f, "EXFULL", c->n_refused_full);
        f = metrics_family(set, "bus1d_quota_refusals", METRICS_COUNTER,
                           "Charges the per-UID quota refused.", "resource");
        for (unsigned int r = 0; r < _USER_N; ++r)
                metrics_sample(f, user_resource_name(r), bus->users.n_refusals[r]);
        metrics_one(set, "bus1d_monitor_events_lost", METRICS_COUNTER,
                    "Events monitors lost because they did not read.", c->n_events_lost);
}

/* every family, in the order of docs/protocol.md 15.4 */
static void metrics_collect(Control *control, MetricsSet *set) {
        *set = (MetricsSet){};
        metrics_sample(metrics_family(set, "bus1d_build", METRICS_INFO, "Version of the broker.",
                                      "version"),
                       PACKAGE_VERSION, 1);
        metrics_collect_gauges(control, set);
        metrics_collect_counters(control, set);
}

static void metrics_write_family(FILE *f, const MetricsFamily *family) {
        fprintf(f, "# TYPE %s %s\n# HELP %s ", family->name, metrics_type_names[family->type],
                family->name);
        openmetrics_write_escaped(f, family->help);
        fputc('\n', f);
        for (size_t i = 0; i < family->n_samples; ++i) {
                const MetricsSample *sample = &family->samples[i];

                fprintf(f, "%s%s", family->name, metrics_sample_suffix[family->type]);
                if (family->label) {
                        fprintf(f, "{%s=\"", family->label);
                        openmetrics_write_escaped(f, sample->label_value);
                        fputs("\"}", f);
                }
                fprintf(f, " %llu\n", (unsigned long long)sample->value);
        }
}

/**
 * metrics_openmetrics() - the counters as OpenMetrics text
 * @control:    control state
 * @bodyp:      out: the text, NUL-terminated, to free()
 * @lenp:       out: its length (without the NUL)
 *
 * Return: 0, -ENOMEM.
 */
int metrics_openmetrics(Control *control, char **bodyp, size_t *lenp) {
        char *body = NULL;
        size_t len = 0;
        MetricsSet set;
        FILE *f;

        f = open_memstream(&body, &len);
        if (!f)
                return -ENOMEM;
        metrics_collect(control, &set);
        for (size_t i = 0; i < set.n_families; ++i)
                metrics_write_family(f, &set.families[i]);
        fputs("# EOF\n", f);
        if (fclose(f) != 0) {
                free(body);
                return -ENOMEM;
        }
        *bodyp = body;
        *lenp = len;
        return 0;
}

static void metrics_json_family(JsonWriter *w, const MetricsFamily *family) {
        char name[METRICS_NAME_MAX];

        snprintf(name, sizeof(name), "%s%s", family->name, metrics_sample_suffix[family->type]);
        json_begin_object(w);
        json_pair_string(w, "name", family->name);
        json_pair_string(w, "type", metrics_type_names[family->type]);
        json_pair_string(w, "help", family->help);
        json_key(w, "samples");
        json_begin_array(w);
        for (size_t i = 0; i < family->n_samples; ++i) {
                json_begin_object(w);
                json_pair_string(w, "name", name);
                json_key(w, "labels");
                json_begin_object(w);
                if (family->label)
                        json_pair_string(w, family->label, family->samples[i].label_value);
                json_end_object(w);
                json_pair_u64(w, "value", family->samples[i].value);
                json_end_object(w);
        }
        json_end_array(w);
        json_end_object(w);
}

/**
 * metrics_json() - the counters as JSON
 * @control:    control state
 * @w:          writer: gets {"families": [...]}, each family its name, type,
 *              help and samples (name, labels, value), as in the text
 */
void metrics_json(Control *control, JsonWriter *w) {
        MetricsSet set;

        metrics_collect(control, &set);
        json_begin_object(w);
        json_key(w, "families");
        json_begin_array(w);
        for (size_t i = 0; i < set.n_families; ++i)
                metrics_json_family(w, &set.families[i]);
        json_end_array(w);
        json_end_object(w);
}
