/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CtlMonitor: bus1ctl monitor, the broker's events as they happen
 *
 * Invariants: every event the broker sent is printed, in order, as one
 * line flushed at once; a LOST event says how many the broker dropped; a
 * write to a reader that went away (EPIPE) ends the monitor quietly and
 * successfully, as SIGINT and SIGTERM do. The signal handlers are
 * installed without SA_RESTART, so a signal ends the blocking receive.
 */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ctl/ctl-client.h"
#include "ctl/ctl-monitor.h"
#include "ctl/ctl-render.h"
#include "proto/proto.h"
#include "util/json.h"
#include "util/macro.h"

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

/**
 * ctl_monitor_parse_types() - event types, as --type names them
 * @s:          a comma-separated list: send, deliver, destroy, release,
 *              transfer, refusal
 * @typesp:     in/out: the mask of 1 << PROTO_EVENT_* the names are added to
 *
 * Return: 0, -EINVAL for a name that is no event type, -ENOMEM.
 */
int ctl_monitor_parse_types(const char *s, uint64_t *typesp) {
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

static const char *ctl_errno_name(int e) {
        const char *name = e > 0 ? strerrorname_np(e) : NULL;

        return name ?: "E?";
}

static void ctl_on_signal(int sig) {
        ctl_quit = 1;
}

static int ctl_print_event_json(const CtlOutput *out, const ProtoEvent *e) {
        JsonWriter w;

        ctl_json_init(&w, out, true);
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

/**
 * ctl_monitor() - print the broker's events until told to stop
 * @client:     connected client, a monitor from here on
 * @out:        the output options
 * @filter:     the events to see
 *
 * Return: 0 once SIGINT or SIGTERM came, or the reader of the output went
 *         away; a negative errno, reported on stderr, if monitoring could
 *         not start or the broker's stream ended.
 */
int ctl_monitor(CtlClient *client, const CtlOutput *out, const ProtoCtlMonitor *filter) {
        _cleanup_(freep) ProtoEvent *events = NULL;
        struct sigaction sa = { .sa_handler = ctl_on_signal };
        size_t n;
        int r;

        events = calloc(PROTO_EVENTS_MAX, sizeof(*events));
        if (!events)
                return -ENOMEM;

        /* no SA_RESTART: a signal ends the blocking receive with EINTR */
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);

        r = ctl_client_monitor(client, filter);
        if (r < 0) {
                fprintf(stderr, "Failed to start monitoring: %s\n", strerror(-r));
                return r;
        }
        if (!out->json && out->legend) {
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
                        r = out->json ? ctl_print_event_json(out, &events[i])
                                      : ctl_print_event_text(&events[i]);
                        /* whoever read the events is gone: so is the monitor */
                        if (r == -EPIPE)
                                return 0;
                        if (r < 0) {
                                if (!out->json)
                                        fprintf(stderr, "Failed to write output: %s\n",
                                                strerror(-r));
                                return r;
                        }
                }
        }
        return 0;
}
