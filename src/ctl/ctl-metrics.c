/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CtlMetrics: the broker's metrics as OpenMetrics text
 *
 * bus1ctl asks for METRICS as JSON (PROTO_CTL_FLAG_JSON): {"families":
 * [{"name", "type", "help", "samples": [{"name", "labels": {...},
 * "value"}]}]}, printed as is with --json and rendered here as text
 * otherwise. Invariants:
 *  - the text is what the broker writes for the same families when asked
 *    for OpenMetrics (src/broker/metrics.c): "# TYPE" and "# HELP" before
 *    each family's samples, labels in the order given, help and label
 *    values escaped alike, "# EOF" last;
 *  - whatever the reply holds, each line is a well-formed OpenMetrics line:
 *    a name that is no metric or label name, a type OpenMetrics does not
 *    know, a value that is no number, or a string with a NUL refuses the
 *    whole reply, and strings are escaped (that the families make sense,
 *    their samples' names and labels included, is the broker's business);
 *  - the text is printed whole or not at all.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ctl/ctl-render.h"
#include "util/json.h"
#include "util/macro.h"
#include "util/openmetrics.h"

/* a string without NUL bytes, or NULL */
static const char *ctl_metrics_text(const JsonValue *v) {
        if (!v || v->type != JSON_STRING || strlen(v->string) != v->n_string)
                return NULL;
        return v->string;
}

static const char *ctl_metrics_string(const JsonValue *object, const char *key) {
        return ctl_metrics_text(json_get(object, key));
}

/* a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), or a label name (no colons) */
static bool ctl_metrics_name_ok(const char *s, bool label) {
        if (!s || !*s)
                return false;
        for (size_t i = 0; s[i]; ++i) {
                char c = s[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                      (c == ':' && !label) || (i > 0 && c >= '0' && c <= '9')))
                        return false;
        }
        return true;
}

static bool ctl_metrics_type_ok(const char *type) {
        static const char *const types[] = {
                "counter", "gauge", "info", "stateset", "histogram", "gaugehistogram",
                "summary", "unknown",
        };

        for (size_t i = 0; type && i < ARRAY_SIZE(types); ++i)
                if (strcmp(type, types[i]) == 0)
                        return true;
        return false;
}

/* {name="value",...}, nothing for no labels */
static int ctl_metrics_write_labels(FILE *f, const JsonValue *labels) {
        if (!labels || labels->type != JSON_OBJECT)
                return -EBADMSG;
        for (size_t i = 0; i < labels->n_children; ++i) {
                const JsonValue *l = &labels->children[i];

                if (!ctl_metrics_name_ok(l->key, true) || !ctl_metrics_text(l))
                        return -EBADMSG;
                fprintf(f, "%s%s=\"", i ? "," : "{", l->key);
                openmetrics_write_escaped(f, l->string);
                fputc('"', f);
        }
        if (labels->n_children)
                fputc('}', f);
        return 0;
}

static int ctl_metrics_write_sample(FILE *f, const JsonValue *sample) {
        const char *name = ctl_metrics_string(sample, "name");
        const JsonValue *value = json_get(sample, "value");
        int r;

        if (!ctl_metrics_name_ok(name, false) || !value || value->type != JSON_NUMBER)
                return -EBADMSG;
        fputs(name, f);
        r = ctl_metrics_write_labels(f, json_get(sample, "labels"));
        if (r < 0)
                return r;
        /* the broker's values are integers; another number keeps its JSON text */
        if (value->is_u64)
                fprintf(f, " %" PRIu64 "\n", value->u64);
        else
                fprintf(f, " %s\n", value->string);
        return 0;
}

static int ctl_metrics_write_family(FILE *f, const JsonValue *family) {
        const char *name = ctl_metrics_string(family, "name");
        const char *type = ctl_metrics_string(family, "type");
        const char *help = ctl_metrics_string(family, "help");
        const JsonValue *samples = json_get_array(family, "samples");
        int r;

        if (!ctl_metrics_name_ok(name, false) || !ctl_metrics_type_ok(type) || !help || !samples)
                return -EBADMSG;
        fprintf(f, "# TYPE %s %s\n# HELP %s ", name, type, name);
        openmetrics_write_escaped(f, help);
        fputc('\n', f);
        for (size_t i = 0; i < samples->n_children; ++i) {
                r = ctl_metrics_write_sample(f, &samples->children[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* the whole text, "# EOF" included, into a buffer to free() */
static int ctl_metrics_format(const JsonValue *v, char **textp, size_t *lenp) {
        const JsonValue *families = json_get_array(v, "families");
        char *text = NULL;
        size_t len = 0;
        FILE *f;
        int r = 0;

        if (!families)
                return -EBADMSG;
        f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < families->n_children && r >= 0; ++i)
                r = ctl_metrics_write_family(f, &families->children[i]);
        fputs("# EOF\n", f);
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0) {
                free(text);
                return r;
        }
        *textp = text;
        *lenp = len;
        return 0;
}

/**
 * ctl_render_openmetrics() - print the broker's metrics as OpenMetrics text
 * @v:          the METRICS report, asked for as JSON
 *
 * Return: 0, -EBADMSG for a report that is not the families the broker
 *         sends, -ENOMEM, -EIO; each failure reported on stderr.
 */
int ctl_render_openmetrics(const JsonValue *v) {
        _cleanup_(freep) char *text = NULL;
        size_t len;
        int r;

        r = ctl_metrics_format(v, &text, &len);
        if (r == -EBADMSG) {
                fprintf(stderr, "Failed to render the broker's metrics: not the families it "
                        "sends.\n");
                return r;
        }
        if (r < 0) {
                fprintf(stderr, "Failed to render the broker's metrics: %s\n", strerror(-r));
                return r;
        }
        if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
                fprintf(stderr, "Failed to write output: %m\n");
                return -EIO;
        }
        return 0;
}
