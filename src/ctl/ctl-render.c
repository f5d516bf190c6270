/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CtlRender: how bus1ctl prints what the broker reports
 *
 * Invariants:
 *  - a renderer only reads the report: a member that is missing or of
 *    another type shows as "-" (or its fallback), never as a failure, so a
 *    newer broker's report with more members prints as well;
 *  - the tables of a report are described by column lists (CtlColumn), one
 *    row per element of the report's list; a list's heading gives its
 *    length, and the full length beside it when the broker cut it;
 *  - nothing is printed to stdout but the rendering; errors go to stderr.
 */

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ctl/ctl-render.h"
#include "ctl/ctl-table.h"
#include "proto/proto.h"
#include "util/json.h"
#include "util/macro.h"

/* formatting */

/**
 * ctl_noun() - the form of a noun that goes with a count
 * @n:          the count
 * @one:        the singular
 * @many:       the plural
 *
 * Return: @one for 1 ("1 peer"), else @many ("0 peers", "2 peers").
 */
const char *ctl_noun(uint64_t n, const char *one, const char *many) {
        return n == 1 ? one : many;
}

/*
 * The heading of a list of a report: "Queue (2):", or, when the broker cut
 * the list at its limit, "Queue (4096 shown of 8192):" with @total the
 * length of the whole list (the report's count of it).
 */
static void ctl_print_heading(const char *title, size_t shown, uint64_t total) {
        if (total > shown)
                printf("\n%s (%zu shown of %" PRIu64 "):\n", title, shown, total);
        else
                printf("\n%s (%zu):\n", title, shown);
}

static const char *ctl_bytes(char *buf, size_t size, uint64_t v) {
        static const char units[] = "KMGTPE";
        double d = (double)v;
        unsigned int i = 0;

        if (v < 1024) {
                snprintf(buf, size, "%" PRIu64 "B", v);
                return buf;
        }
        d /= 1024;
        while (d >= 1024 && i + 1 < sizeof(units) - 1) {
                d /= 1024;
                ++i;
        }
        snprintf(buf, size, "%.1f%c", d, units[i]);
        return buf;
}

static const char *ctl_time(char *buf, size_t size, uint64_t usec) {
        time_t t = (time_t)(usec / 1000000);
        struct tm tm;

        if (!usec || !localtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%S %Z", &tm))
                snprintf(buf, size, "-");
        return buf;
}

static const char *ctl_span(char *buf, size_t size, uint64_t usec) {
        uint64_t s = usec / 1000000;

        if (s >= 86400)
                snprintf(buf, size, "%" PRIu64 "d %" PRIu64 "h %" PRIu64 "min", s / 86400,
                         s % 86400 / 3600, s % 3600 / 60);
        else if (s >= 3600)
                snprintf(buf, size, "%" PRIu64 "h %" PRIu64 "min %" PRIu64 "s", s / 3600,
                         s % 3600 / 60, s % 60);
        else if (s >= 60)
                snprintf(buf, size, "%" PRIu64 "min %" PRIu64 "s", s / 60, s % 60);
        else
                snprintf(buf, size, "%" PRIu64 "s", s);
        return buf;
}

/* JSON output */

static void ctl_json_write(JsonWriter *w, const JsonValue *v) {
        switch (v->type) {
        case JSON_NULL:
                json_null(w);
                break;
        case JSON_BOOL:
                json_bool(w, v->boolean);
                break;
        case JSON_NUMBER:
                if (v->is_u64)
                        json_u64(w, v->u64);
                else if (v->is_i64)
                        json_i64(w, v->i64);
                else
                        /* a number we did not write: keep it as text */
                        json_string(w, v->string);
                break;
        case JSON_STRING:
                json_string_n(w, v->string, v->n_string);
                break;
        case JSON_ARRAY:
                json_begin_array(w);
                for (size_t i = 0; i < v->n_children; ++i)
                        ctl_json_write(w, &v->children[i]);
                json_end_array(w);
                break;
        case JSON_OBJECT:
                json_begin_object(w);
                for (size_t i = 0; i < v->n_children; ++i) {
                        json_key(w, v->children[i].key);
                        ctl_json_write(w, &v->children[i]);
                }
                json_end_object(w);
                break;
        }
}

/**
 * ctl_json_init() - a writer for what bus1ctl prints as JSON
 * @w:          writer
 * @out:        the output options: --json=pretty indents
 * @line:       one object per line (monitor): never indented
 */
void ctl_json_init(JsonWriter *w, const CtlOutput *out, bool line) {
        json_writer_init(w, SIZE_MAX / 2, out->json == CTL_JSON_PRETTY && !line ? "  " : NULL);
}

/**
 * ctl_json_finish() - print what was written, and a newline
 * @w:          writer, deinitialized here
 *
 * Return: 0, -EPIPE if the reader went away (nothing reported: the caller
 *         ends quietly), another negative errno (reported on stderr).
 */
int ctl_json_finish(JsonWriter *w) {
        _cleanup_(freep) char *text = NULL;
        size_t len;
        int r;

        r = json_writer_finish(w, &text, &len);
        if (r < 0) {
                fprintf(stderr, "Failed to format JSON: %s\n", strerror(-r));
                return r;
        }
        if (fwrite(text, 1, len, stdout) != len || fputc('\n', stdout) == EOF ||
            fflush(stdout) != 0) {
                if (errno == EPIPE)
                        return -EPIPE;
                fprintf(stderr, "Failed to write output: %m\n");
                return -EIO;
        }
        return 0;
}

static int ctl_print_json(const CtlOutput *out, const JsonValue *v) {
        JsonWriter w;

        ctl_json_init(&w, out, false);
        ctl_json_write(&w, v);
        return ctl_json_finish(&w);
}

/* tables */

static const JsonValue *ctl_child(const JsonValue *array, size_t i) {
        return &array->children[i];
}

static size_t ctl_count(const JsonValue *array) {
        return array ? array->n_children : 0;
}

typedef enum CtlCell {
        CTL_CELL_U64,           /* a number */
        CTL_CELL_HEX,           /* a handle ID: 0x100 */
        CTL_CELL_BYTES,         /* a size: 16B, 4.0K */
        CTL_CELL_STRING,
        CTL_CELL_STATE,         /* a "destroyed" flag: destroyed or live */
        CTL_CELL_CUSTOM,
} CtlCell;

/* a column: its header, and what each row shows in it */
typedef struct CtlColumn {
        const char *header;
        CtlCell cell;
        const char *object;     /* the member object @key is in ("usage"), or NULL */
        const char *key;
        void (*custom)(CtlTable *t, const JsonValue *row);     /* CTL_CELL_CUSTOM */
} CtlColumn;

/* one cell; a value that is missing, null or of another type shows as "-" */
static void ctl_add_cell(CtlTable *t, const CtlColumn *c, const JsonValue *row) {
        const JsonValue *v;
        char b[32];

        if (c->cell == CTL_CELL_CUSTOM) {
                c->custom(t, row);
                return;
        }
        if (c->object)
                row = json_get(row, c->object);
        if (c->cell == CTL_CELL_STRING) {
                ctl_table_add(t, json_get_string(row, c->key, NULL));
                return;
        }
        if (c->cell == CTL_CELL_STATE) {
                ctl_table_add(t, json_get_bool(row, c->key, false) ? "destroyed" : "live");
                return;
        }
        v = json_get(row, c->key);
        if (!v || v->type != JSON_NUMBER || !v->is_u64)
                ctl_table_add(t, NULL);
        else if (c->cell == CTL_CELL_HEX)
                ctl_table_addf(t, "0x%" PRIx64, v->u64);
        else if (c->cell == CTL_CELL_BYTES)
                ctl_table_add(t, ctl_bytes(b, sizeof(b), v->u64));
        else
                ctl_table_addf(t, "%" PRIu64, v->u64);
}

/* a table of @columns with one row per element of @rows (may be NULL) */
static int ctl_table_fill(CtlTable *t, const CtlColumn *columns, size_t n_columns,
                          const JsonValue *rows) {
        const char *header[16];
        int r;

        assert(n_columns <= ARRAY_SIZE(header));
        for (size_t c = 0; c < n_columns; ++c)
                header[c] = columns[c].header;
        r = ctl_table_init(t, n_columns, header);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ctl_count(rows); ++i)
                for (size_t c = 0; c < n_columns; ++c)
                        ctl_add_cell(t, &columns[c], ctl_child(rows, i));
        return 0;
}

static int ctl_print_table(const CtlOutput *out, CtlTable *table) {
        int r;

        r = ctl_table_print(table, stdout, out->legend);
        if (r < 0)
                fprintf(stderr, "Failed to print table: %s\n", strerror(-r));
        return r;
}

/*
 * A list of a report: its heading with @total, the length of the whole
 * list, then its table, if it has rows.
 */
static int ctl_print_list(const CtlOutput *out, const char *title, uint64_t total,
                          const CtlColumn *columns, size_t n_columns, const JsonValue *rows) {
        CtlTable t;
        int r;

        r = ctl_table_fill(&t, columns, n_columns, rows);
        if (r < 0)
                return r;
        ctl_print_heading(title, ctl_table_rows(&t), total);
        if (ctl_table_rows(&t))
                r = ctl_print_table(out, &t);
        ctl_table_deinit(&t);
        return r;
}

/* "16384 slices, 65536 handles, 16.0M, 4096 fds" from a resources object */
static const char *ctl_resources(char *buf, size_t size, const JsonValue *o) {
        uint64_t slices = json_get_u64(o, "slices", 0), handles = json_get_u64(o, "handles", 0);
        uint64_t fds = json_get_u64(o, "fds", 0);
        char b[32];

        snprintf(buf, size, "%" PRIu64 " %s, %" PRIu64 " %s, %s, %" PRIu64 " %s", slices,
                 ctl_noun(slices, "slice", "slices"), handles,
                 ctl_noun(handles, "handle", "handles"),
                 ctl_bytes(b, sizeof(b), json_get_u64(o, "bytes", 0)), fds,
                 ctl_noun(fds, "fd", "fds"));
        return buf;
}

static void ctl_print_truncated(const JsonValue *v) {
        if (json_get_bool(v, "truncated", false))
                printf("(lists cut short at the broker's limit)\n");
}

/* STATUS */

static int ctl_show_status(const JsonValue *v) {
        const JsonValue *addresses = json_get_array(v, "addresses");
        uint64_t start = json_get_u64(v, "start_time", 0), now = json_get_u64(v, "now", 0);
        uint64_t n_control = json_get_u64(v, "control_connections", 0);
        uint64_t n_monitors = json_get_u64(v, "monitors", 0);
        uint64_t n_refs = json_get_u64(v, "handle_references", 0);
        uint64_t n_queued = json_get_u64(v, "queued", 0);
        uint64_t n_messages = json_get_u64(v, "queued_messages", 0);
        uint64_t n_slices = json_get_u64(v, "inflight_slices", 0);
        uint64_t n_fds = json_get_u64(v, "inflight_fds", 0);
        uint64_t n_conns = json_get_u64(json_get(v, "limits"), "connections", 0);
        char b1[64], b2[64], b3[160];

        printf("       Version: %s (protocol %" PRIu64 ")\n", json_get_string(v, "version", "?"),
               json_get_u64(v, "protocol", 0));
        printf("           PID: %" PRIu64 " (UID %" PRIu64 ")\n", json_get_u64(v, "pid", 0),
               json_get_u64(v, "uid", 0));
        printf("       Started: %s (up %s)\n", ctl_time(b1, sizeof(b1), start),
               ctl_span(b2, sizeof(b2), now > start ? now - start : 0));
        printf("     Addresses:");
        for (size_t i = 0; i < ctl_count(addresses); ++i)
                if (ctl_child(addresses, i)->type == JSON_STRING)
                        printf(" %s", ctl_child(addresses, i)->string);
        printf("%s\n", ctl_count(addresses) ? "" : " (socket-activated)");
        if (strcmp(json_get_string(v, "scope", ""), "all") == 0)
                printf("         Scope: all peers\n");
        else
                printf("         Scope: peers of UID %" PRIu64 "\n",
                       json_get_u64(v, "caller_uid", 0));
        printf("         Peers: %" PRIu64 "\n", json_get_u64(v, "peers", 0));
        printf("       Control: %" PRIu64 " %s, %" PRIu64 " %s\n", n_control,
               ctl_noun(n_control, "connection", "connections"), n_monitors,
               ctl_noun(n_monitors, "monitor", "monitors"));
        printf("         Users: %" PRIu64 "\n", json_get_u64(v, "users", 0));
        printf("         Nodes: %" PRIu64 "\n", json_get_u64(v, "nodes", 0));
        printf("       Handles: %" PRIu64 " (%" PRIu64 " %s)\n", json_get_u64(v, "handles", 0),
               n_refs, ctl_noun(n_refs, "reference", "references"));
        printf("        Queued: %" PRIu64 " %s, %" PRIu64 " %s\n", n_queued,
               ctl_noun(n_queued, "entry", "entries"), n_messages,
               ctl_noun(n_messages, "message", "messages"));
        printf("     In flight: %" PRIu64 " %s, %s, %" PRIu64 " %s\n", n_slices,
               ctl_noun(n_slices, "slice", "slices"),
               ctl_bytes(b1, sizeof(b1), json_get_u64(v, "inflight_bytes", 0)), n_fds,
               ctl_noun(n_fds, "fd", "fds"));
        printf("  Pool memory: %s resident\n",
               ctl_bytes(b1, sizeof(b1), json_get_u64(v, "pool_resident_bytes", 0)));
        printf("Limits per UID: %s, %" PRIu64 " %s\n",
               ctl_resources(b3, sizeof(b3), json_get(v, "limits")), n_conns,
               ctl_noun(n_conns, "connection", "connections"));
        return 0;
}

/* PEERS */

static const CtlColumn ctl_peer_columns[] = {
        { "ID", CTL_CELL_U64, NULL, "id" },
        { "PID", CTL_CELL_U64, NULL, "pid" },
        { "UID", CTL_CELL_U64, NULL, "uid" },
        { "NODES", CTL_CELL_U64, NULL, "n_nodes" },
        { "HANDLES", CTL_CELL_U64, NULL, "n_handles" },
        { "QUEUED", CTL_CELL_U64, NULL, "n_queued" },
        { "SLICES", CTL_CELL_U64, "usage", "slices" },
        { "POOL", CTL_CELL_BYTES, "usage", "bytes" },
        { "RESIDENT", CTL_CELL_BYTES, NULL, "pool_resident" },
        { "COMMAND", CTL_CELL_STRING, NULL, "cmdline" },
};

static int ctl_show_peers(const CtlOutput *out, const JsonValue *v) {
        CtlTable t;
        int r;

        r = ctl_table_fill(&t, ctl_peer_columns, ARRAY_SIZE(ctl_peer_columns),
                           json_get_array(v, "peers"));
        if (r < 0)
                return r;
        r = ctl_print_table(out, &t);
        if (r >= 0 && out->legend) {
                size_t rows = ctl_table_rows(&t);
                uint64_t total = json_get_u64(v, "n_peers", rows);

                if (total > rows)
                        printf("\n%zu shown of %" PRIu64 " peers.\n", rows, total);
                else
                        printf("\n%zu %s listed.\n", rows, ctl_noun(rows, "peer", "peers"));
        }
        ctl_table_deinit(&t);
        ctl_print_truncated(v);
        return r;
}

/* PEER */

static void ctl_cell_owner(CtlTable *t, const JsonValue *handle) {
        uint64_t owner = json_get_u64(handle, "owner", 0);

        if (json_get_bool(handle, "own", false))
                ctl_table_add(t, "self");
        else if (owner)
                ctl_table_addf(t, "%" PRIu64, owner);
        else
                ctl_table_add(t, "gone");
}

static const CtlColumn ctl_node_columns[] = {
        { "NODE", CTL_CELL_U64, NULL, "id" },
        { "HANDLE", CTL_CELL_HEX, NULL, "handle" },
        { "STATE", CTL_CELL_STATE, NULL, "destroyed" },
        { "HOLDERS", CTL_CELL_U64, NULL, "holders" },
        { "REFERENCES", CTL_CELL_U64, NULL, "references" },
        { "QUEUED", CTL_CELL_U64, NULL, "queued" },
};

static const CtlColumn ctl_handle_columns[] = {
        { "HANDLE", CTL_CELL_HEX, NULL, "id" },
        { "NODE", CTL_CELL_U64, NULL, "node" },
        { "OWNER", CTL_CELL_CUSTOM, .custom = ctl_cell_owner },
        { "OWNER-UID", CTL_CELL_U64, NULL, "owner_uid" },
        { "REFERENCES", CTL_CELL_U64, NULL, "references" },
        { "INFLIGHT", CTL_CELL_U64, NULL, "inflight" },
        { "STATE", CTL_CELL_STATE, NULL, "destroyed" },
};

/*
 * The queue: only privileged callers get an entry's bus-wide seq, and only
 * DATA entries have the columns from SIZE on; the others show "-" there.
 */
static const CtlColumn ctl_queue_columns[] = {
        { "ENTRY", CTL_CELL_U64, NULL, "entry" },
        { "SEQ", CTL_CELL_U64, NULL, "seq" },
        { "TYPE", CTL_CELL_STRING, NULL, "type" },
        { "DESTINATION", CTL_CELL_HEX, NULL, "destination" },
        { "NODE", CTL_CELL_U64, NULL, "node" },
        { "SIZE", CTL_CELL_BYTES, NULL, "bytes" },
        { "HANDLES", CTL_CELL_U64, NULL, "handles" },
        { "FDS", CTL_CELL_U64, NULL, "fds" },
        { "SENDER", CTL_CELL_U64, NULL, "sender" },
        { "SENDER-UID", CTL_CELL_U64, NULL, "sender_uid" },
        { "SENDER-PID", CTL_CELL_U64, NULL, "sender_pid" },
};

static const CtlColumn ctl_slice_columns[] = {
        { "OFFSET", CTL_CELL_U64, NULL, "offset" },
        { "SIZE", CTL_CELL_U64, NULL, "size" },
        { "STATE", CTL_CELL_STRING, NULL, "state" },
};

static int ctl_show_peer(const CtlOutput *out, const JsonValue *v) {
        char b1[64], b2[160], b3[64];
        int r;

        printf("      Peer: %" PRIu64 "%s%s\n", json_get_u64(v, "id", 0),
               json_get_bool(v, "disconnected", false) ? " (disconnected)" : "",
               json_get_bool(v, "hello", false) ? "" : " (no HELLO yet)");
        printf("   Command: %s\n", json_get_string(v, "cmdline", "-"));
        printf("       PID: %" PRIu64 "\n", json_get_u64(v, "pid", 0));
        printf("   UID/GID: %" PRIu64 "/%" PRIu64 "\n", json_get_u64(v, "uid", 0),
               json_get_u64(v, "gid", 0));
        printf(" Connected: %s\n", ctl_time(b1, sizeof(b1), json_get_u64(v, "connected", 0)));
        printf(" Pool size: %s, %s resident%s\n",
               ctl_bytes(b1, sizeof(b1), json_get_u64(v, "pool_size", 0)),
               ctl_bytes(b3, sizeof(b3), json_get_u64(v, "pool_resident", 0)),
               json_get_bool(v, "seed", false) ? " (has a seed)" : "");
        printf("     Usage: %s\n", ctl_resources(b2, sizeof(b2), json_get(v, "usage")));
        printf("    Limits: %s\n", ctl_resources(b2, sizeof(b2), json_get(v, "limits")));

        /* the node list holds the live nodes and the destroyed ones still referenced */
        r = ctl_print_list(out, "Nodes",
                           json_get_u64(v, "n_nodes", 0) + json_get_u64(v, "n_destroyed_nodes", 0),
                           ctl_node_columns, ARRAY_SIZE(ctl_node_columns),
                           json_get_array(v, "nodes"));
        if (r >= 0)
                r = ctl_print_list(out, "Handles", json_get_u64(v, "n_handles", 0),
                                   ctl_handle_columns, ARRAY_SIZE(ctl_handle_columns),
                                   json_get_array(v, "handles"));
        if (r >= 0)
                r = ctl_print_list(out, "Queue", json_get_u64(v, "n_queued", 0),
                                   ctl_queue_columns, ARRAY_SIZE(ctl_queue_columns),
                                   json_get_array(v, "queue"));
        if (r >= 0)
                r = ctl_print_list(out, "Pool slices", json_get_u64(v, "n_slices", 0),
                                   ctl_slice_columns, ARRAY_SIZE(ctl_slice_columns),
                                   json_get_array(v, "slices"));
        ctl_print_truncated(v);
        return r;
}

/* QUOTA */

static const char *ctl_refusal(char *buf, size_t size, const JsonValue *refusal) {
        const char *resource;
        uint64_t amount;
        size_t len;
        char b1[64], b2[32];

        if (!refusal || refusal->type != JSON_OBJECT)
                return "-";
        amount = json_get_u64(refusal, "amount", 0);
        resource = json_get_string(refusal, "resource", "?");
        /* the resources are plural nouns (slices, handles, bytes, fds): 1 slice */
        len = strlen(resource);
        if (amount == 1 && len > 1 && resource[len - 1] == 's')
                --len;
        snprintf(buf, size, "%" PRIu64 " %.*s at %s (%s left)", amount, (int)len, resource,
                 ctl_time(b1, sizeof(b1), json_get_u64(refusal, "time", 0)),
                 ctl_bytes(b2, sizeof(b2), json_get_u64(refusal, "remaining", 0)));
        /* the remaining amount is in the resource's unit: bytes only for bytes */
        if (strcmp(resource, "bytes") != 0)
                snprintf(buf, size, "%" PRIu64 " %.*s at %s (%" PRIu64 " left)", amount,
                         (int)len, resource, b1, json_get_u64(refusal, "remaining", 0));
        return buf;
}

static void ctl_cell_last_refusal(CtlTable *t, const JsonValue *actor) {
        char b[200];

        ctl_table_add(t, ctl_refusal(b, sizeof(b), json_get(actor, "last_refusal")));
}

static void ctl_cell_holder(CtlTable *t, const JsonValue *holder) {
        ctl_table_addf(t, "%" PRIu64 "%s", json_get_u64(holder, "peer", 0),
                       json_get_bool(holder, "control", false) ? " (control)" : "");
}

static const CtlColumn ctl_actor_columns[] = {
        { "ACTOR-UID", CTL_CELL_U64, NULL, "uid" },
        { "SLICES", CTL_CELL_U64, "share", "slices" },
        { "HANDLES", CTL_CELL_U64, "share", "handles" },
        { "BYTES", CTL_CELL_BYTES, "share", "bytes" },
        { "FDS", CTL_CELL_U64, "share", "fds" },
        { "REFUSALS", CTL_CELL_U64, NULL, "refusals" },
        { "LAST REFUSAL", CTL_CELL_CUSTOM, .custom = ctl_cell_last_refusal },
};

static const CtlColumn ctl_holder_columns[] = {
        { "PEER", CTL_CELL_CUSTOM, .custom = ctl_cell_holder },
        { "PID", CTL_CELL_U64, NULL, "pid" },
        { "SLICES", CTL_CELL_U64, "usage", "slices" },
        { "HANDLES", CTL_CELL_U64, "usage", "handles" },
        { "BYTES", CTL_CELL_BYTES, "usage", "bytes" },
        { "FDS", CTL_CELL_U64, "usage", "fds" },
        { "COMMAND", CTL_CELL_STRING, NULL, "cmdline" },
};

/* a UID's limits and use, one row per resource */
static int ctl_show_user_resources(const CtlOutput *out, const JsonValue *u) {
        static const char *const header[] = { "RESOURCE", "LIMIT", "USED" };
        static const char *const resources[] = { "slices", "handles", "bytes", "fds" };
        const JsonValue *limits = json_get(u, "limits"), *used = json_get(u, "used");
        CtlTable t;
        char b[32];
        int r;

        r = ctl_table_init(&t, ARRAY_SIZE(header), header);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ARRAY_SIZE(resources); ++i) {
                uint64_t limit = json_get_u64(limits, resources[i], 0);
                uint64_t use = json_get_u64(used, resources[i], 0);

                ctl_table_add(&t, resources[i]);
                if (strcmp(resources[i], "bytes") == 0) {
                        ctl_table_add(&t, ctl_bytes(b, sizeof(b), limit));
                        ctl_table_add(&t, ctl_bytes(b, sizeof(b), use));
                } else {
                        ctl_table_addf(&t, "%" PRIu64, limit);
                        ctl_table_addf(&t, "%" PRIu64, use);
                }
        }
        r = ctl_print_table(out, &t);
        ctl_table_deinit(&t);
        return r;
}

static int ctl_show_user(const CtlOutput *out, const JsonValue *u) {
        char b[200], b2[32];
        int r;

        printf("UID %" PRIu64 ": %" PRIu64 " %s (at most %" PRIu64 ")\n",
               json_get_u64(u, "uid", 0), json_get_u64(u, "peers", 0),
               ctl_noun(json_get_u64(u, "peers", 0), "peer", "peers"),
               json_get_u64(json_get(u, "limits"), "connections", 0));
        r = ctl_show_user_resources(out, u);
        if (r < 0)
                return r;
        printf("Pool memory of its peers: %s resident\n",
               ctl_bytes(b2, sizeof(b2), json_get_u64(u, "pool_resident", 0)));
        printf("Refusals of its own charges: %" PRIu64 ", last: %s\n",
               json_get_u64(u, "own_refusals", 0),
               ctl_refusal(b, sizeof(b), json_get(u, "last_own_refusal")));

        r = ctl_print_list(out, "Shares held by other UIDs", json_get_u64(u, "n_actors", 0),
                           ctl_actor_columns, ARRAY_SIZE(ctl_actor_columns),
                           json_get_array(u, "actors"));
        if (r < 0)
                return r;
        /* one holder per peer of the UID */
        return ctl_print_list(out, "Held by its peers", json_get_u64(u, "peers", 0),
                              ctl_holder_columns, ARRAY_SIZE(ctl_holder_columns),
                              json_get_array(u, "holders"));
}

static int ctl_show_quota(const CtlOutput *out, const JsonValue *v) {
        const JsonValue *users = json_get_array(v, "users");
        int r = 0;

        if (!ctl_count(users))
                printf("No UID with peers to show.\n");
        for (size_t i = 0; i < ctl_count(users) && r >= 0; ++i) {
                if (i)
                        printf("\n");
                r = ctl_show_user(out, ctl_child(users, i));
        }
        ctl_print_truncated(v);
        return r;
}

/**
 * ctl_render_report() - print a report
 * @out:        the output options
 * @type:       the request it answers: PROTO_TYPE_CTL_STATUS, _PEERS, _PEER,
 *              _QUOTA or _METRICS (asked for as JSON)
 * @v:          the report, a JSON object
 *
 * Return: 0, -EBADMSG for metrics that are not what the broker sends, or
 *         another negative errno; each failure reported on stderr.
 */
int ctl_render_report(const CtlOutput *out, uint16_t type, const JsonValue *v) {
        int r;

        if (out->json)
                return ctl_print_json(out, v);
        switch (type) {
        case PROTO_TYPE_CTL_STATUS:
                r = ctl_show_status(v);
                break;
        case PROTO_TYPE_CTL_PEERS:
                r = ctl_show_peers(out, v);
                break;
        case PROTO_TYPE_CTL_PEER:
                r = ctl_show_peer(out, v);
                break;
        case PROTO_TYPE_CTL_QUOTA:
                r = ctl_show_quota(out, v);
                break;
        case PROTO_TYPE_CTL_METRICS:
                return ctl_render_openmetrics(v);
        default:
                return -EINVAL;
        }
        if (r >= 0 && fflush(stdout) != 0) {
                fprintf(stderr, "Failed to write output: %m\n");
                r = -EIO;
        }
        return r;
}
