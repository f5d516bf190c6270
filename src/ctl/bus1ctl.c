/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus1ctl: inspect a running bus1d
 *
 * Parses argv into arg_*, connects to the broker (a control connection: no
 * HELLO, so it is listed as no peer), sends one control request and prints
 * the reply: as aligned text, or with --json as JSON (one object; one object
 * per line for monitor). The broker builds every report; bus1ctl checks it
 * (src/proto for the records, util/json for the body) and renders it.
 *
 * Exit status, as systemd's tools: 0 on success, 1 (EXIT_FAILURE) on any
 * failure, a usage error included, with a "Failed to ...: <error>" line on
 * stderr. monitor runs until SIGINT or SIGTERM and then exits 0.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "ctl/ctl-client.h"
#include "ctl/ctl-table.h"
#include "proto/proto.h"
#include "util/json.h"
#include "util/macro.h"

#define CTL_SYSTEM_ADDRESS "/run/bus1/system_bus_socket"

typedef enum CtlJson {
        CTL_JSON_OFF,
        CTL_JSON_SHORT,
        CTL_JSON_PRETTY,
} CtlJson;

static const char *arg_address = NULL;
static bool arg_system = false;
static CtlJson arg_json = CTL_JSON_OFF;
static bool arg_legend = true;
static uint64_t arg_types = 0;
static uint64_t arg_peer = 0;
static uint64_t arg_node = 0;
static uint32_t arg_uid = PROTO_CTL_UID_ANY;
static bool arg_filter = false;

static volatile sig_atomic_t ctl_quit = 0;

static const char *const ctl_event_names[_PROTO_EVENT_N] = {
        [PROTO_EVENT_SEND] = "send",
        [PROTO_EVENT_DELIVER] = "deliver",
        [PROTO_EVENT_DESTROY] = "destroy",
        [PROTO_EVENT_RELEASE] = "release",
        [PROTO_EVENT_TRANSFER] = "transfer",
        [PROTO_EVENT_REFUSAL] = "refusal",
        [PROTO_EVENT_LOST] = "lost",
};

static void ctl_help(void) {
        printf("Usage: bus1ctl [OPTION]... [COMMAND]\n"
               "Inspect the peers, nodes, handles, queues and quotas of a running bus1d.\n\n"
               "Commands:\n"
               "  status                  broker version, uptime, address, totals and limits\n"
               "  peers                   one line per peer (the default command)\n"
               "  peer ID                 a peer's nodes, handles, queue, pool slices, limits\n"
               "  quota [USER]            per UID: limits, use, shares of other UIDs, refusals\n"
               "  monitor                 print bus events as they happen, until SIGINT\n"
               "  metrics                 the broker's counters as OpenMetrics text\n\n"
               "Options:\n"
               "  -h, --help              show this help and exit\n"
               "      --version           show the version and exit\n"
               "  -A, --address=PATH      connect to the broker at PATH instead of\n"
               "                          $BUS1_ADDRESS or $XDG_RUNTIME_DIR/bus1/socket\n"
               "      --system            connect to the system broker (" CTL_SYSTEM_ADDRESS ")\n"
               "      --user              connect to the user's broker (the default)\n"
               "      --json[=MODE]       print JSON; MODE is short (the default) or pretty\n"
               "      --no-legend         print no table headers\n\n"
               "Options of monitor (each may be repeated by naming a list):\n"
               "      --uid=USER          only events a peer of USER (a name or UID) takes\n"
               "                          part in\n"
               "      --peer=ID           only events peer ID takes part in\n"
               "      --node=ID           only events about node ID\n"
               "      --type=TYPE[,...]   only these events: send, deliver, destroy,\n"
               "                          release, transfer, refusal\n\n"
               "A caller sees the peers of its own UID; root and the broker's own UID see\n"
               "all, and only they may read metrics.\n");
}

static int ctl_parse_u64(const char *s, uint64_t *vp) {
        char *end;
        unsigned long long v;

        if (!*s || *s == '-' || *s == '+')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *vp = v;
        return 0;
}

/*
 * A user as a UID: all digits are the UID itself, anything else a user name
 * (getpwnam_r(3)). Prints why it failed: "no such user: NAME" for a name
 * the user database does not know.
 */
static int ctl_parse_user(const char *s, uint32_t *uidp) {
        _cleanup_(freep) char *buf = NULL;
        struct passwd pw, *result = NULL;
        long max = sysconf(_SC_GETPW_R_SIZE_MAX);
        size_t size = max > 0 ? (size_t)max : 4096;
        uint64_t v;
        int r;

        if (*s && s[strspn(s, "0123456789")] == 0) {
                if (ctl_parse_u64(s, &v) < 0 || v >= UINT32_MAX) {
                        fprintf(stderr, "Failed to parse UID '%s'.\n", s);
                        return -EINVAL;
                }
                *uidp = (uint32_t)v;
                return 0;
        }
        if (!*s) {
                fprintf(stderr, "Failed to parse user: the name is empty.\n");
                return -EINVAL;
        }
        for (;;) {
                free(buf);
                buf = malloc(size);
                if (!buf)
                        return -ENOMEM;
                r = getpwnam_r(s, &pw, buf, size, &result);
                if (r != ERANGE || size >= 1024 * 1024)
                        break;
                size *= 2;
        }
        /* "not found" is 0 with no result; some NSS modules say ENOENT and the like */
        if (!result && (r == 0 || r == ENOENT || r == ESRCH || r == EBADF || r == EPERM)) {
                fprintf(stderr, "Failed to look up user: no such user: %s\n", s);
                return -ENOENT;
        }
        if (!result) {
                fprintf(stderr, "Failed to look up user '%s': %s\n", s, strerror(r));
                return -r;
        }
        if (pw.pw_uid >= UINT32_MAX) {
                fprintf(stderr, "Failed to look up user '%s': it has no valid UID.\n", s);
                return -EINVAL;
        }
        *uidp = (uint32_t)pw.pw_uid;
        return 0;
}

static int ctl_parse_types(const char *s, uint64_t *typesp) {
        _cleanup_(freep) char *copy = strdup(s);
        char *save = NULL, *word;

        if (!copy)
                return -ENOMEM;
        for (word = strtok_r(copy, ",", &save); word; word = strtok_r(NULL, ",", &save)) {
                unsigned int t;

                for (t = PROTO_EVENT_SEND; t < PROTO_EVENT_LOST; ++t)
                        if (strcmp(word, ctl_event_names[t]) == 0)
                                break;
                if (t == PROTO_EVENT_LOST)
                        return -EINVAL;
                *typesp |= UINT64_C(1) << t;
        }
        return 0;
}

enum {
        ARG_VERSION = 0x100,
        ARG_SYSTEM,
        ARG_USER,
        ARG_JSON,
        ARG_NO_LEGEND,
        ARG_UID,
        ARG_PEER,
        ARG_NODE,
        ARG_TYPE,
};

/* Return: 1 to go on, 0 to exit successfully (--help), -EINVAL (reported) */
static int ctl_parse_argv(int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "address", required_argument, NULL, 'A' },
                { "system", no_argument, NULL, ARG_SYSTEM },
                { "user", no_argument, NULL, ARG_USER },
                { "json", optional_argument, NULL, ARG_JSON },
                { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
                { "uid", required_argument, NULL, ARG_UID },
                { "peer", required_argument, NULL, ARG_PEER },
                { "node", required_argument, NULL, ARG_NODE },
                { "type", required_argument, NULL, ARG_TYPE },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "hA:", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        ctl_help();
                        return 0;
                case ARG_VERSION:
                        printf("bus1ctl %s\n", PACKAGE_VERSION);
                        return 0;
                case 'A':
                        arg_address = optarg;
                        break;
                case ARG_SYSTEM:
                        arg_system = true;
                        break;
                case ARG_USER:
                        arg_system = false;
                        break;
                case ARG_JSON:
                        if (!optarg || strcmp(optarg, "short") == 0)
                                arg_json = CTL_JSON_SHORT;
                        else if (strcmp(optarg, "pretty") == 0)
                                arg_json = CTL_JSON_PRETTY;
                        else {
                                fprintf(stderr, "Unknown JSON mode '%s': use short or pretty.\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_NO_LEGEND:
                        arg_legend = false;
                        break;
                case ARG_UID:
                        if (ctl_parse_user(optarg, &arg_uid) < 0)
                                return -EINVAL;
                        arg_filter = true;
                        break;
                case ARG_PEER:
                case ARG_NODE:
                        if (ctl_parse_u64(optarg, c == ARG_PEER ? &arg_peer : &arg_node) < 0 ||
                            (c == ARG_PEER ? arg_peer : arg_node) == 0) {
                                fprintf(stderr, "Failed to parse %s ID '%s'.\n",
                                        c == ARG_PEER ? "peer" : "node", optarg);
                                return -EINVAL;
                        }
                        arg_filter = true;
                        break;
                case ARG_TYPE:
                        if (ctl_parse_types(optarg, &arg_types) < 0) {
                                fprintf(stderr, "Failed to parse event type '%s': use send, "
                                        "deliver, destroy, release, transfer or refusal.\n",
                                        optarg);
                                return -EINVAL;
                        }
                        arg_filter = true;
                        break;
                default:
                        /* getopt_long() printed the reason */
                        return -EINVAL;
                }
        }
        return 1;
}

/* the socket to connect to; NULL with a message if there is none */
static const char *ctl_address(char *buf, size_t size) {
        const char *runtime;

        if (arg_address)
                return arg_address;
        if (arg_system)
                return CTL_SYSTEM_ADDRESS;
        if (getenv("BUS1_ADDRESS") && *getenv("BUS1_ADDRESS"))
                return getenv("BUS1_ADDRESS");
        runtime = getenv("XDG_RUNTIME_DIR");
        if (!runtime || !*runtime) {
                fprintf(stderr, "Failed to find the broker: neither --address, $BUS1_ADDRESS "
                        "nor $XDG_RUNTIME_DIR is set (use --system for the system broker).\n");
                return NULL;
        }
        if ((size_t)snprintf(buf, size, "%s/bus1/socket", runtime) >= size) {
                fprintf(stderr, "Failed to find the broker: $XDG_RUNTIME_DIR is too long.\n");
                return NULL;
        }
        return buf;
}

/* formatting */

/* the form of a noun that goes with @n: "1 peer", "0 peers", "2 peers" */
static const char *ctl_noun(uint64_t n, const char *one, const char *many) {
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

static const char *ctl_errno_name(int e) {
        const char *name = e > 0 ? strerrorname_np(e) : NULL;

        return name ?: "E?";
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

static void ctl_json_init(JsonWriter *w, bool line) {
        json_writer_init(w, SIZE_MAX / 2, arg_json == CTL_JSON_PRETTY && !line ? "  " : NULL);
}

static int ctl_json_finish(JsonWriter *w) {
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
                /* the reader went away (a closed pipe): the caller ends quietly */
                if (errno == EPIPE)
                        return -EPIPE;
                fprintf(stderr, "Failed to write output: %m\n");
                return -EIO;
        }
        return 0;
}

static int ctl_print_json(const JsonValue *v) {
        JsonWriter w;

        ctl_json_init(&w, false);
        ctl_json_write(&w, v);
        return ctl_json_finish(&w);
}

static int ctl_print_table(CtlTable *table) {
        int r;

        r = ctl_table_print(table, stdout, arg_legend);
        if (r < 0)
                fprintf(stderr, "Failed to print table: %s\n", strerror(-r));
        return r;
}

static const JsonValue *ctl_child(const JsonValue *array, size_t i) {
        return &array->children[i];
}

static size_t ctl_count(const JsonValue *array) {
        return array ? array->n_children : 0;
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

/* commands */

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

static int ctl_show_peers(const JsonValue *v) {
        static const char *const header[] = {
                "ID",     "PID",  "UID",      "NODES",   "HANDLES",
                "QUEUED", "SLICES", "POOL", "RESIDENT", "COMMAND",
        };
        const JsonValue *peers = json_get_array(v, "peers");
        CtlTable t;
        char b[32];
        int r;

        r = ctl_table_init(&t, ARRAY_SIZE(header), header);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ctl_count(peers); ++i) {
                const JsonValue *p = ctl_child(peers, i);
                const JsonValue *usage = json_get(p, "usage");

                ctl_table_addf(&t, "%" PRIu64, json_get_u64(p, "id", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(p, "pid", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(p, "uid", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(p, "n_nodes", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(p, "n_handles", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(p, "n_queued", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(usage, "slices", 0));
                ctl_table_add(&t, ctl_bytes(b, sizeof(b), json_get_u64(usage, "bytes", 0)));
                ctl_table_add(&t, ctl_bytes(b, sizeof(b), json_get_u64(p, "pool_resident", 0)));
                ctl_table_add(&t, json_get_string(p, "cmdline", NULL));
        }
        r = ctl_print_table(&t);
        if (r >= 0 && arg_legend) {
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

static int ctl_show_nodes(const JsonValue *v) {
        static const char *const header[] = {
                "NODE", "HANDLE", "STATE", "HOLDERS", "REFERENCES", "QUEUED",
        };
        const JsonValue *nodes = json_get_array(v, "nodes");
        CtlTable t;
        int r;

        r = ctl_table_init(&t, ARRAY_SIZE(header), header);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ctl_count(nodes); ++i) {
                const JsonValue *n = ctl_child(nodes, i);
                const JsonValue *handle = json_get(n, "handle");

                ctl_table_addf(&t, "%" PRIu64, json_get_u64(n, "id", 0));
                if (handle && handle->is_u64)
                        ctl_table_addf(&t, "0x%" PRIx64, handle->u64);
                else
                        ctl_table_add(&t, NULL);
                ctl_table_add(&t, json_get_bool(n, "destroyed", false) ? "destroyed" : "live");
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(n, "holders", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(n, "references", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(n, "queued", 0));
        }
        /* the list holds the live nodes and the destroyed ones still referenced */
        ctl_print_heading("Nodes", ctl_table_rows(&t),
                          json_get_u64(v, "n_nodes", 0) + json_get_u64(v, "n_destroyed_nodes", 0));
        if (ctl_table_rows(&t))
                r = ctl_print_table(&t);
        ctl_table_deinit(&t);
        return r;
}

static int ctl_show_handles(const JsonValue *v) {
        static const char *const header[] = {
                "HANDLE", "NODE", "OWNER", "OWNER-UID", "REFERENCES", "INFLIGHT", "STATE",
        };
        const JsonValue *handles = json_get_array(v, "handles");
        CtlTable t;
        int r;

        r = ctl_table_init(&t, ARRAY_SIZE(header), header);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ctl_count(handles); ++i) {
                const JsonValue *h = ctl_child(handles, i);
                const JsonValue *owner_uid = json_get(h, "owner_uid");
                uint64_t owner = json_get_u64(h, "owner", 0);

                ctl_table_addf(&t, "0x%" PRIx64, json_get_u64(h, "id", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(h, "node", 0));
                if (json_get_bool(h, "own", false))
                        ctl_table_add(&t, "self");
                else if (owner)
                        ctl_table_addf(&t, "%" PRIu64, owner);
                else
                        ctl_table_add(&t, "gone");
                if (owner_uid && owner_uid->is_u64)
                        ctl_table_addf(&t, "%" PRIu64, owner_uid->u64);
                else
                        ctl_table_add(&t, NULL);
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(h, "references", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(h, "inflight", 0));
                ctl_table_add(&t, json_get_bool(h, "destroyed", false) ? "destroyed" : "live");
        }
        ctl_print_heading("Handles", ctl_table_rows(&t), json_get_u64(v, "n_handles", 0));
        if (ctl_table_rows(&t))
                r = ctl_print_table(&t);
        ctl_table_deinit(&t);
        return r;
}

static int ctl_show_queue(const JsonValue *v) {
        static const char *const header[] = {
                "ENTRY", "SEQ", "TYPE", "DESTINATION", "NODE", "SIZE", "HANDLES", "FDS",
                "SENDER", "SENDER-UID", "SENDER-PID",
        };
        const JsonValue *queue = json_get_array(v, "queue");
        CtlTable t;
        char b[32];
        int r;

        r = ctl_table_init(&t, ARRAY_SIZE(header), header);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ctl_count(queue); ++i) {
                const JsonValue *e = ctl_child(queue, i);
                bool data = strcmp(json_get_string(e, "type", ""), "data") == 0;

                ctl_table_addf(&t, "%" PRIu64, json_get_u64(e, "entry", 0));
                /* only privileged callers get the bus-wide number */
                if (json_get(e, "seq"))
                        ctl_table_addf(&t, "%" PRIu64, json_get_u64(e, "seq", 0));
                else
                        ctl_table_add(&t, "-");
                ctl_table_add(&t, json_get_string(e, "type", NULL));
                ctl_table_addf(&t, "0x%" PRIx64, json_get_u64(e, "destination", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(e, "node", 0));
                if (data) {
                        ctl_table_add(&t, ctl_bytes(b, sizeof(b), json_get_u64(e, "bytes", 0)));
                        ctl_table_addf(&t, "%" PRIu64, json_get_u64(e, "handles", 0));
                        ctl_table_addf(&t, "%" PRIu64, json_get_u64(e, "fds", 0));
                        ctl_table_addf(&t, "%" PRIu64, json_get_u64(e, "sender", 0));
                        ctl_table_addf(&t, "%" PRIu64, json_get_u64(e, "sender_uid", 0));
                        ctl_table_addf(&t, "%" PRIu64, json_get_u64(e, "sender_pid", 0));
                } else {
                        for (int k = 0; k < 6; ++k)
                                ctl_table_add(&t, NULL);
                }
        }
        ctl_print_heading("Queue", ctl_table_rows(&t), json_get_u64(v, "n_queued", 0));
        if (ctl_table_rows(&t))
                r = ctl_print_table(&t);
        ctl_table_deinit(&t);
        return r;
}

static int ctl_show_slices(const JsonValue *v) {
        static const char *const header[] = { "OFFSET", "SIZE", "STATE" };
        const JsonValue *slices = json_get_array(v, "slices");
        CtlTable t;
        int r;

        r = ctl_table_init(&t, ARRAY_SIZE(header), header);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ctl_count(slices); ++i) {
                const JsonValue *s = ctl_child(slices, i);

                ctl_table_addf(&t, "%" PRIu64, json_get_u64(s, "offset", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(s, "size", 0));
                ctl_table_add(&t, json_get_string(s, "state", NULL));
        }
        ctl_print_heading("Pool slices", ctl_table_rows(&t), json_get_u64(v, "n_slices", 0));
        if (ctl_table_rows(&t))
                r = ctl_print_table(&t);
        ctl_table_deinit(&t);
        return r;
}

static int ctl_show_peer(const JsonValue *v) {
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

        r = ctl_show_nodes(v);
        if (r >= 0)
                r = ctl_show_handles(v);
        if (r >= 0)
                r = ctl_show_queue(v);
        if (r >= 0)
                r = ctl_show_slices(v);
        ctl_print_truncated(v);
        return r;
}

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

static int ctl_show_user(const JsonValue *u) {
        static const char *const res_header[] = { "RESOURCE", "LIMIT", "USED" };
        static const char *const actor_header[] = {
                "ACTOR-UID", "SLICES", "HANDLES", "BYTES", "FDS", "REFUSALS", "LAST REFUSAL",
        };
        static const char *const holder_header[] = {
                "PEER", "PID", "SLICES", "HANDLES", "BYTES", "FDS", "COMMAND",
        };
        static const char *const resources[] = { "slices", "handles", "bytes", "fds" };
        const JsonValue *limits = json_get(u, "limits"), *used = json_get(u, "used");
        const JsonValue *actors = json_get_array(u, "actors");
        const JsonValue *holders = json_get_array(u, "holders");
        char b[200], b2[32];
        CtlTable t;
        int r;

        printf("UID %" PRIu64 ": %" PRIu64 " %s (at most %" PRIu64 ")\n",
               json_get_u64(u, "uid", 0), json_get_u64(u, "peers", 0),
               ctl_noun(json_get_u64(u, "peers", 0), "peer", "peers"),
               json_get_u64(limits, "connections", 0));

        r = ctl_table_init(&t, ARRAY_SIZE(res_header), res_header);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ARRAY_SIZE(resources); ++i) {
                bool bytes = strcmp(resources[i], "bytes") == 0;

                ctl_table_add(&t, resources[i]);
                if (bytes) {
                        ctl_table_add(&t, ctl_bytes(b2, sizeof(b2),
                                                    json_get_u64(limits, resources[i], 0)));
                        ctl_table_add(&t, ctl_bytes(b2, sizeof(b2),
                                                    json_get_u64(used, resources[i], 0)));
                } else {
                        ctl_table_addf(&t, "%" PRIu64, json_get_u64(limits, resources[i], 0));
                        ctl_table_addf(&t, "%" PRIu64, json_get_u64(used, resources[i], 0));
                }
        }
        r = ctl_print_table(&t);
        ctl_table_deinit(&t);
        if (r < 0)
                return r;
        printf("Pool memory of its peers: %s resident\n",
               ctl_bytes(b2, sizeof(b2), json_get_u64(u, "pool_resident", 0)));
        printf("Refusals of its own charges: %" PRIu64 ", last: %s\n",
               json_get_u64(u, "own_refusals", 0),
               ctl_refusal(b, sizeof(b), json_get(u, "last_own_refusal")));

        ctl_print_heading("Shares held by other UIDs", ctl_count(actors),
                          json_get_u64(u, "n_actors", 0));
        r = ctl_table_init(&t, ARRAY_SIZE(actor_header), actor_header);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ctl_count(actors); ++i) {
                const JsonValue *a = ctl_child(actors, i), *share = json_get(a, "share");

                ctl_table_addf(&t, "%" PRIu64, json_get_u64(a, "uid", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(share, "slices", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(share, "handles", 0));
                ctl_table_add(&t, ctl_bytes(b2, sizeof(b2), json_get_u64(share, "bytes", 0)));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(share, "fds", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(a, "refusals", 0));
                ctl_table_add(&t, ctl_refusal(b, sizeof(b), json_get(a, "last_refusal")));
        }
        if (ctl_table_rows(&t))
                r = ctl_print_table(&t);
        ctl_table_deinit(&t);
        if (r < 0)
                return r;

        /* one holder per peer of the UID */
        ctl_print_heading("Held by its peers", ctl_count(holders), json_get_u64(u, "peers", 0));
        r = ctl_table_init(&t, ARRAY_SIZE(holder_header), holder_header);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ctl_count(holders); ++i) {
                const JsonValue *h = ctl_child(holders, i), *usage = json_get(h, "usage");

                ctl_table_addf(&t, "%" PRIu64 "%s", json_get_u64(h, "peer", 0),
                               json_get_bool(h, "control", false) ? " (control)" : "");
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(h, "pid", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(usage, "slices", 0));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(usage, "handles", 0));
                ctl_table_add(&t, ctl_bytes(b2, sizeof(b2), json_get_u64(usage, "bytes", 0)));
                ctl_table_addf(&t, "%" PRIu64, json_get_u64(usage, "fds", 0));
                ctl_table_add(&t, json_get_string(h, "cmdline", NULL));
        }
        if (ctl_table_rows(&t))
                r = ctl_print_table(&t);
        ctl_table_deinit(&t);
        return r;
}

static int ctl_show_quota(const JsonValue *v) {
        const JsonValue *users = json_get_array(v, "users");
        int r = 0;

        if (!ctl_count(users))
                printf("No UID with peers to show.\n");
        for (size_t i = 0; i < ctl_count(users) && r >= 0; ++i) {
                if (i)
                        printf("\n");
                r = ctl_show_user(ctl_child(users, i));
        }
        ctl_print_truncated(v);
        return r;
}

/*
 * OpenMetrics text to JSON: {"families": [{"name", "type", "help",
 * "samples": [{"name", "labels": {...}, "value"}]}]}. The broker's text is
 * simple (no escapes in label values, integer values), so this reads that
 * and refuses anything else.
 */
static int ctl_metrics_sample(JsonWriter *w, char *line) {
        char *labels = strchr(line, '{'), *value, *end;
        uint64_t v;

        value = strrchr(line, ' ');
        if (!value)
                return -EINVAL;
        *value++ = 0;
        json_begin_object(w);
        if (labels) {
                *labels++ = 0;
                end = strrchr(labels, '}');
                if (!end || end[1])
                        return -EINVAL;
                *end = 0;
        }
        json_pair_string(w, "name", line);
        json_key(w, "labels");
        json_begin_object(w);
        while (labels && *labels) {
                char *eq = strchr(labels, '='), *close;

                if (!eq || eq[1] != '"')
                        return -EINVAL;
                *eq = 0;
                close = strchr(eq + 2, '"');
                if (!close)
                        return -EINVAL;
                *close = 0;
                json_pair_string(w, labels, eq + 2);
                labels = close + 1;
                if (*labels == ',')
                        ++labels;
                else if (*labels)
                        return -EINVAL;
        }
        json_end_object(w);
        json_key(w, "value");
        if (ctl_parse_u64(value, &v) == 0)
                json_u64(w, v);
        else
                json_string(w, value);
        json_end_object(w);
        return 0;
}

static int ctl_metrics_json(char *text) {
        char *save = NULL, *line;
        bool in_family = false, eof = false;
        JsonWriter w;
        int r;

        ctl_json_init(&w, false);
        json_begin_object(&w);
        json_key(&w, "families");
        json_begin_array(&w);
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (eof)
                        goto bad;
                if (strcmp(line, "# EOF") == 0) {
                        eof = true;
                        continue;
                }
                if (strncmp(line, "# TYPE ", 7) == 0) {
                        char *type = strchr(line + 7, ' ');

                        if (!type)
                                goto bad;
                        *type++ = 0;
                        if (in_family) {
                                json_end_array(&w);
                                json_end_object(&w);
                        }
                        json_begin_object(&w);
                        json_pair_string(&w, "name", line + 7);
                        json_pair_string(&w, "type", type);
                        in_family = true;
                        continue;
                }
                if (!in_family)
                        goto bad;
                if (strncmp(line, "# HELP ", 7) == 0) {
                        char *help = strchr(line + 7, ' ');

                        json_pair_string(&w, "help", help ? help + 1 : "");
                        json_key(&w, "samples");
                        json_begin_array(&w);
                        continue;
                }
                r = ctl_metrics_sample(&w, line);
                if (r < 0)
                        goto bad;
        }
        if (!eof)
                goto bad;
        if (in_family) {
                json_end_array(&w);
                json_end_object(&w);
        }
        json_end_array(&w);
        json_end_object(&w);
        return ctl_json_finish(&w);

bad:
        json_writer_deinit(&w);
        fprintf(stderr, "Failed to parse the broker's metrics: not the OpenMetrics it sends.\n");
        return -EBADMSG;
}

/* monitor */

static void ctl_on_signal(int sig) {
        ctl_quit = 1;
}

static int ctl_print_event_json(const ProtoEvent *e) {
        JsonWriter w;

        ctl_json_init(&w, true);
        json_begin_object(&w);
        json_pair_string(&w, "type", ctl_event_names[e->type]);
        json_pair_u64(&w, "seq", e->seq);
        json_pair_u64(&w, "time", e->time / 1000);
        if (e->type == PROTO_EVENT_LOST) {
                json_pair_u64(&w, "count", e->count);
        } else {
                /* of a message: peer is the sender, target the receiver, for every type */
                if (e->message)
                        json_pair_u64(&w, "message", e->message);
                json_pair_u64(&w, "peer", e->peer);
                json_pair_u64(&w, "uid", e->uid);
                json_pair_u64(&w, "pid", e->pid);
                if (e->target) {
                        json_pair_u64(&w, "target", e->target);
                        json_pair_u64(&w, "target_uid", e->target_uid);
                        json_pair_u64(&w, "target_pid", e->target_pid);
                }
                json_pair_u64(&w, "node", e->node);
                if (e->type == PROTO_EVENT_SEND || e->type == PROTO_EVENT_DELIVER ||
                    e->type == PROTO_EVENT_REFUSAL) {
                        json_pair_u64(&w, "bytes", e->n_bytes);
                        json_pair_u64(&w, "handles", e->n_handles);
                        json_pair_u64(&w, "fds", e->n_fds);
                }
                if (e->type == PROTO_EVENT_REFUSAL)
                        json_pair_string(&w, "error", ctl_errno_name((int)e->error));
        }
        json_end_object(&w);
        return ctl_json_finish(&w);
}

/* one line, flushed at once (a pipe sees each event as it happens) */
static int ctl_print_event_text(const ProtoEvent *e) {
        time_t t = (time_t)(e->time / 1000000000);
        char when[32] = "-", msg[24] = "-", peer[48], target[48] = "-", detail[96] = "";
        struct tm tm;

        if (localtime_r(&t, &tm))
                strftime(when, sizeof(when), "%H:%M:%S", &tm);
        if (e->type == PROTO_EVENT_LOST) {
                printf("%s.%06u  -- %" PRIu64 " %s lost: this monitor did not read fast "
                       "enough --\n", when, (unsigned int)(e->time / 1000 % 1000000), e->count,
                       ctl_noun(e->count, "event", "events"));
                return fflush(stdout) != 0 ? -errno : 0;
        }
        if (e->message)
                snprintf(msg, sizeof(msg), "%" PRIu64, e->message);
        snprintf(peer, sizeof(peer), "%" PRIu64 " (uid %u)", e->peer, e->uid);
        if (e->target)
                snprintf(target, sizeof(target), "%" PRIu64 " (uid %u)", e->target,
                         e->target_uid);
        if (e->type == PROTO_EVENT_SEND || e->type == PROTO_EVENT_DELIVER ||
            e->type == PROTO_EVENT_REFUSAL)
                snprintf(detail, sizeof(detail), "%" PRIu64 " %s, %u %s, %u %s%s%s",
                         e->n_bytes, ctl_noun(e->n_bytes, "byte", "bytes"), e->n_handles,
                         ctl_noun(e->n_handles, "handle", "handles"), e->n_fds,
                         ctl_noun(e->n_fds, "fd", "fds"),
                         e->type == PROTO_EVENT_REFUSAL ? ": " : "",
                         e->type == PROTO_EVENT_REFUSAL ? ctl_errno_name((int)e->error) : "");
        printf("%s.%06u  %-8" PRIu64 " %-9s %-8s %-16s %-16s %-6" PRIu64 " %s\n", when,
               (unsigned int)(e->time / 1000 % 1000000), e->seq, ctl_event_names[e->type], msg,
               peer, target, e->node, detail);
        return fflush(stdout) != 0 ? -errno : 0;
}

static int ctl_monitor(CtlClient *client) {
        _cleanup_(freep) ProtoEvent *events = NULL;
        ProtoCtlMonitor filter = {
                .types = arg_types,
                .peer = arg_peer,
                .node = arg_node,
                .uid = arg_uid,
        };
        struct sigaction sa = { .sa_handler = ctl_on_signal };
        size_t n;
        int r;

        events = calloc(PROTO_EVENTS_MAX, sizeof(*events));
        if (!events)
                return -ENOMEM;

        /* no SA_RESTART: a signal ends the blocking receive with EINTR */
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);

        r = ctl_client_monitor(client, &filter);
        if (r < 0) {
                fprintf(stderr, "Failed to start monitoring: %s\n", strerror(-r));
                return r;
        }
        if (!arg_json && arg_legend) {
                printf("%-15s  %-8s %-9s %-8s %-16s %-16s %-6s %s\n", "TIME", "SEQ", "EVENT",
                       "MSG", "PEER", "TARGET", "NODE", "DETAIL");
                fflush(stdout);
        }
        while (!ctl_quit) {
                r = ctl_client_read_events(client, events, &n);
                if (r == -EINTR)
                        continue;
                if (r < 0) {
                        fprintf(stderr, "Failed to read events: %s\n",
                                r == -ECONNRESET ? "the broker closed the connection"
                                                 : strerror(-r));
                        return r;
                }
                for (size_t i = 0; i < n; ++i) {
                        r = arg_json ? ctl_print_event_json(&events[i])
                                     : ctl_print_event_text(&events[i]);
                        /* whoever read the events is gone: so is the monitor */
                        if (r == -EPIPE)
                                return 0;
                        if (r < 0) {
                                if (!arg_json)
                                        fprintf(stderr, "Failed to write output: %s\n",
                                                strerror(-r));
                                return r;
                        }
                }
        }
        return 0;
}

/* run one command that has a body */
static int ctl_run(CtlClient *client, const char *verb, uint16_t type, uint64_t arg) {
        _cleanup_(freep) char *body = NULL;
        uint32_t format = 0, flags = 0;
        JsonValue *v = NULL;
        size_t len = 0;
        int r;

        r = ctl_client_call(client, type, arg, &body, &len, &format, &flags);
        if (r == -ENXIO && type == PROTO_TYPE_CTL_PEER) {
                fprintf(stderr, "Failed to show peer %" PRIu64 ": no such peer, or not one of "
                        "this UID's.\n", arg);
                return r;
        }
        if (r == -ENOTTY) {
                fprintf(stderr, "Failed to %s: the broker does not know control requests.\n",
                        verb);
                return r;
        }
        if (r < 0) {
                fprintf(stderr, "Failed to %s: %s\n", verb,
                        r == -EBADMSG ? "the broker's reply breaks the protocol"
                                      : strerror(-r));
                return r;
        }

        if (type == PROTO_TYPE_CTL_METRICS) {
                if (format != PROTO_CTL_FORMAT_OPENMETRICS || !body) {
                        fprintf(stderr, "Failed to %s: unexpected reply format.\n", verb);
                        return -EBADMSG;
                }
                if (arg_json)
                        return ctl_metrics_json(body);
                if (fwrite(body, 1, len, stdout) != len || fflush(stdout) != 0) {
                        fprintf(stderr, "Failed to write output: %m\n");
                        return -EIO;
                }
                return 0;
        }

        if (format != PROTO_CTL_FORMAT_JSON || !body) {
                fprintf(stderr, "Failed to %s: unexpected reply format.\n", verb);
                return -EBADMSG;
        }
        r = json_parse(&v, body, len);
        if (r < 0 || v->type != JSON_OBJECT) {
                fprintf(stderr, "Failed to %s: the broker's reply is not a JSON object.\n", verb);
                json_free(v);
                return -EBADMSG;
        }

        if (arg_json)
                r = ctl_print_json(v);
        else if (type == PROTO_TYPE_CTL_STATUS)
                r = ctl_show_status(v);
        else if (type == PROTO_TYPE_CTL_PEERS)
                r = ctl_show_peers(v);
        else if (type == PROTO_TYPE_CTL_PEER)
                r = ctl_show_peer(v);
        else
                r = ctl_show_quota(v);
        json_free(v);
        if (r >= 0 && fflush(stdout) != 0) {
                fprintf(stderr, "Failed to write output: %m\n");
                r = -EIO;
        }
        return r;
}

static int ctl_dispatch(int argc, char **argv) {
        CtlClient client = CTL_CLIENT_NULL;
        const char *verb = optind < argc ? argv[optind] : "peers";
        int n_args = optind < argc ? argc - optind - 1 : 0;
        char **args = argv + optind + 1;
        char buf[256];
        const char *address;
        uint16_t type;
        uint64_t arg = 0;
        int r, max_args = 0, min_args = 0;

        if (strcmp(verb, "status") == 0) {
                type = PROTO_TYPE_CTL_STATUS;
        } else if (strcmp(verb, "peers") == 0 || strcmp(verb, "list") == 0) {
                type = PROTO_TYPE_CTL_PEERS;
        } else if (strcmp(verb, "peer") == 0) {
                type = PROTO_TYPE_CTL_PEER;
                min_args = max_args = 1;
        } else if (strcmp(verb, "quota") == 0) {
                type = PROTO_TYPE_CTL_QUOTA;
                max_args = 1;
                arg = PROTO_CTL_UID_ALL;
        } else if (strcmp(verb, "metrics") == 0) {
                type = PROTO_TYPE_CTL_METRICS;
        } else if (strcmp(verb, "monitor") == 0) {
                type = PROTO_TYPE_CTL_MONITOR;
        } else {
                fprintf(stderr, "Unknown command verb '%s'; see bus1ctl --help.\n", verb);
                return -EINVAL;
        }
        if (n_args < min_args) {
                fprintf(stderr, "Too few arguments for '%s'; see bus1ctl --help.\n", verb);
                return -EINVAL;
        }
        if (n_args > max_args) {
                fprintf(stderr, "Too many arguments for '%s'; see bus1ctl --help.\n", verb);
                return -EINVAL;
        }
        if (arg_filter && type != PROTO_TYPE_CTL_MONITOR) {
                fprintf(stderr, "--uid, --peer, --node and --type are options of monitor.\n");
                return -EINVAL;
        }
        if (type == PROTO_TYPE_CTL_PEER && (ctl_parse_u64(args[0], &arg) < 0 || arg == 0)) {
                fprintf(stderr, "Failed to parse peer ID '%s'.\n", args[0]);
                return -EINVAL;
        }
        if (type == PROTO_TYPE_CTL_QUOTA && n_args) {
                uint32_t uid;

                r = ctl_parse_user(args[0], &uid);
                if (r < 0)
                        return r;
                arg = uid;
        }

        address = ctl_address(buf, sizeof(buf));
        if (!address)
                return -ENOENT;
        r = ctl_client_connect(&client, address);
        if (r < 0) {
                fprintf(stderr, "Failed to connect to bus1d at %s: %s\n", address, strerror(-r));
                return r;
        }

        if (type == PROTO_TYPE_CTL_MONITOR)
                r = ctl_monitor(&client);
        else if (strcmp(verb, "list") == 0)
                r = ctl_run(&client, "list peers", type, arg);
        else
                r = ctl_run(&client, type == PROTO_TYPE_CTL_STATUS ? "get the broker's status"
                                     : type == PROTO_TYPE_CTL_PEERS  ? "list peers"
                                     : type == PROTO_TYPE_CTL_PEER   ? "show the peer"
                                     : type == PROTO_TYPE_CTL_QUOTA  ? "show quotas"
                                                                     : "get metrics",
                            type, arg);
        ctl_client_close(&client);
        return r;
}

int main(int argc, char **argv) {
        int r;

        r = ctl_parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        /* a closed pipe is a write error, not a death */
        signal(SIGPIPE, SIG_IGN);
        r = ctl_dispatch(argc, argv);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
