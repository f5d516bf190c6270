/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus1ctl: inspect a running bus1d
 *
 * Parses argv into arg_*, connects to the broker (a control connection: no
 * HELLO, so it is listed as no peer), sends one control request and hands
 * the reply to a renderer (ctl-render.c, ctl-metrics.c), or streams events
 * (ctl-monitor.c). The broker builds every report, METRICS included (asked
 * for as JSON); bus1ctl checks it (src/proto for the records, util/json for
 * the body) and renders it: as aligned text, or with --json as JSON (one
 * object; one object per line for monitor).
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
#include <unistd.h>
#include "ctl/ctl-client.h"
#include "ctl/ctl-monitor.h"
#include "ctl/ctl-render.h"
#include "proto/proto.h"
#include "util/json.h"
#include "util/macro.h"

#define CTL_SYSTEM_ADDRESS "/run/bus1/system_bus_socket"

static const char *arg_address = NULL;
static bool arg_system = false;
static CtlOutput arg_output = { .json = CTL_JSON_OFF, .legend = true };
static uint64_t arg_types = 0;
static uint64_t arg_peer = 0;
static uint64_t arg_node = 0;
static uint32_t arg_uid = PROTO_CTL_UID_ANY;
static bool arg_filter = false;

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
                                arg_output.json = CTL_JSON_SHORT;
                        else if (strcmp(optarg, "pretty") == 0)
                                arg_output.json = CTL_JSON_PRETTY;
                        else {
                                fprintf(stderr, "Unknown JSON mode '%s': use short or pretty.\n",
                                        optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_NO_LEGEND:
                        arg_output.legend = false;
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
                        if (ctl_monitor_parse_types(optarg, &arg_types) < 0) {
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

/* the commands: a verb, the request it sends, and what it does, for errors */
typedef struct CtlVerb {
        const char *name;
        uint16_t type;
        int min_args;
        int max_args;
        const char *action;     /* "Failed to <action>: ..." */
} CtlVerb;

static const CtlVerb ctl_verbs[] = {
        { "status", PROTO_TYPE_CTL_STATUS, 0, 0, "get the broker's status" },
        { "peers", PROTO_TYPE_CTL_PEERS, 0, 0, "list peers" },
        { "list", PROTO_TYPE_CTL_PEERS, 0, 0, "list peers" },
        { "peer", PROTO_TYPE_CTL_PEER, 1, 1, "show the peer" },
        { "quota", PROTO_TYPE_CTL_QUOTA, 0, 1, "show quotas" },
        { "metrics", PROTO_TYPE_CTL_METRICS, 0, 0, "get metrics" },
        { "monitor", PROTO_TYPE_CTL_MONITOR, 0, 0, "monitor" },
};

/* why a request failed, on stderr; returns @r */
static int ctl_request_failed(const CtlVerb *verb, const ProtoCtl *req, int r) {
        if (r == -ENXIO && req->type == PROTO_TYPE_CTL_PEER)
                fprintf(stderr, "Failed to show peer %" PRIu64 ": no such peer, or not one of "
                        "this UID's.\n", req->arg);
        else if (r == -ENOTTY)
                fprintf(stderr, "Failed to %s: the broker does not know control requests.\n",
                        verb->action);
        else
                fprintf(stderr, "Failed to %s: %s\n", verb->action,
                        r == -EBADMSG ? "the broker's reply breaks the protocol"
                                      : strerror(-r));
        return r;
}

/*
 * A broker older than the JSON flag of METRICS refuses it (EINVAL) and
 * sends OpenMetrics text only: that text is what `bus1ctl metrics` prints,
 * so it is passed through as it is; --json cannot be served.
 */
static int ctl_metrics_fallback(CtlClient *client, const CtlVerb *verb) {
        _cleanup_(freep) char *body = NULL;
        ProtoCtl req = { .type = PROTO_TYPE_CTL_METRICS };
        uint32_t format = 0;
        size_t len = 0;
        int r;

        if (arg_output.json) {
                fprintf(stderr, "Failed to %s: the broker cannot send them as JSON (is it "
                        "older than bus1ctl?).\n", verb->action);
                return -EINVAL;
        }
        r = ctl_client_request(client, &req, &body, &len, &format, NULL);
        if (r < 0)
                return ctl_request_failed(verb, &req, r);
        if (format != PROTO_CTL_FORMAT_OPENMETRICS || !body) {
                fprintf(stderr, "Failed to %s: unexpected reply format.\n", verb->action);
                return -EBADMSG;
        }
        if (fwrite(body, 1, len, stdout) != len || fflush(stdout) != 0) {
                fprintf(stderr, "Failed to write output: %m\n");
                return -EIO;
        }
        return 0;
}

/* run one command that has a body: METRICS is asked for as JSON too */
static int ctl_run(CtlClient *client, const CtlVerb *verb, uint64_t arg) {
        _cleanup_(freep) char *body = NULL;
        ProtoCtl req = {
                .type = verb->type,
                .flags = verb->type == PROTO_TYPE_CTL_METRICS ? PROTO_CTL_FLAG_JSON : 0,
                .arg = arg,
        };
        uint32_t format = 0;
        JsonValue *v = NULL;
        size_t len = 0;
        int r;

        r = ctl_client_request(client, &req, &body, &len, &format, NULL);
        if (r == -EINVAL && req.type == PROTO_TYPE_CTL_METRICS)
                return ctl_metrics_fallback(client, verb);
        if (r < 0)
                return ctl_request_failed(verb, &req, r);
        if (format != PROTO_CTL_FORMAT_JSON || !body) {
                fprintf(stderr, "Failed to %s: unexpected reply format.\n", verb->action);
                return -EBADMSG;
        }
        r = json_parse(&v, body, len);
        if (r < 0 || v->type != JSON_OBJECT) {
                fprintf(stderr, "Failed to %s: the broker's reply is not a JSON object.\n",
                        verb->action);
                json_free(v);
                return -EBADMSG;
        }
        r = ctl_render_report(&arg_output, verb->type, v);
        json_free(v);
        return r;
}

/* the verb and its argument, checked; every failure reported */
static int ctl_parse_command(int argc, char **argv, const CtlVerb **verbp, uint64_t *argp) {
        const char *name = optind < argc ? argv[optind] : "peers";
        int n_args = optind < argc ? argc - optind - 1 : 0;
        char **args = argv + optind + 1;
        const CtlVerb *verb = NULL;
        uint32_t uid;
        int r;

        for (size_t i = 0; i < ARRAY_SIZE(ctl_verbs) && !verb; ++i)
                if (strcmp(name, ctl_verbs[i].name) == 0)
                        verb = &ctl_verbs[i];
        if (!verb) {
                fprintf(stderr, "Unknown command verb '%s'; see bus1ctl --help.\n", name);
                return -EINVAL;
        }
        if (n_args < verb->min_args || n_args > verb->max_args) {
                fprintf(stderr, "Too %s arguments for '%s'; see bus1ctl --help.\n",
                        n_args < verb->min_args ? "few" : "many", name);
                return -EINVAL;
        }
        if (arg_filter && verb->type != PROTO_TYPE_CTL_MONITOR) {
                fprintf(stderr, "--uid, --peer, --node and --type are options of monitor.\n");
                return -EINVAL;
        }
        *verbp = verb;
        *argp = verb->type == PROTO_TYPE_CTL_QUOTA ? PROTO_CTL_UID_ALL : 0;
        if (verb->type == PROTO_TYPE_CTL_PEER && (ctl_parse_u64(args[0], argp) < 0 || !*argp)) {
                fprintf(stderr, "Failed to parse peer ID '%s'.\n", args[0]);
                return -EINVAL;
        }
        if (verb->type == PROTO_TYPE_CTL_QUOTA && n_args) {
                r = ctl_parse_user(args[0], &uid);
                if (r < 0)
                        return r;
                *argp = uid;
        }
        return 0;
}

static int ctl_dispatch(int argc, char **argv) {
        CtlClient client = CTL_CLIENT_NULL;
        const CtlVerb *verb;
        const char *address;
        uint64_t arg;
        char buf[256];
        int r;

        r = ctl_parse_command(argc, argv, &verb, &arg);
        if (r < 0)
                return r;
        address = ctl_address(buf, sizeof(buf));
        if (!address)
                return -ENOENT;
        r = ctl_client_connect(&client, address);
        if (r < 0) {
                fprintf(stderr, "Failed to connect to bus1d at %s: %s\n", address, strerror(-r));
                return r;
        }

        if (verb->type == PROTO_TYPE_CTL_MONITOR) {
                ProtoCtlMonitor filter = {
                        .types = arg_types,
                        .peer = arg_peer,
                        .node = arg_node,
                        .uid = arg_uid,
                };

                r = ctl_monitor(&client, &arg_output, &filter);
        } else {
                r = ctl_run(&client, verb, arg);
        }
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
