/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Monitor: a control connection that streams bus events (MONITOR)
 *
 * See monitor.h for what a monitor sees. Invariants:
 *  - every monitor is on control->monitors, and n_monitors counts them;
 *  - a monitor holds at most CONTROL_MONITOR_RING events; it drops an event
 *    only when its ring has no room for it (while a loss is pending: for a
 *    LOST and it), counting each in n_lost and in the broker's
 *    n_events_lost; the LOST that reports them goes into the ring before any
 *    later event, so the stream says where events were lost and how many;
 *  - a monitor gets only events its caller may see, redacted for an
 *    unprivileged one (monitor_redact()) before they reach the ring.
 *
 * A bus event costs O(monitors); a monitor's ring is one allocation made
 * when it starts.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "broker/broker.h"
#include "broker/connection.h"
#include "broker/control.h"
#include "broker/monitor.h"
#include "bus/bus.h"
#include "bus/peer.h"
#include "util/clock.h"
#include "util/macro.h"

/*
 * A secret for an unprivileged monitor's message IDs. getrandom(2) never
 * blocks here: the broker must not wait for the entropy pool at boot, and
 * what the key protects (how busy other users are) is worth less than that.
 */
static void monitor_make_key(uint8_t key[SIPHASH_KEY_SIZE]) {
        static uint64_t n_keys;
        uint64_t mix[4];

#ifdef GRND_INSECURE
        if (getrandom(key, SIPHASH_KEY_SIZE, GRND_INSECURE) == SIPHASH_KEY_SIZE)
                return;
#endif
        if (getrandom(key, SIPHASH_KEY_SIZE, GRND_NONBLOCK) == SIPHASH_KEY_SIZE)
                return;
        /* no entropy yet (an old kernel early at boot): what differs anyway */
        mix[0] = clock_now_nsec(CLOCK_MONOTONIC);
        mix[1] = (uint64_t)getpid();
        mix[2] = ++n_keys;
        mix[3] = (uint64_t)(uintptr_t)key;
        for (unsigned int i = 0; i < 2; ++i) {
                uint64_t h = siphash24((const uint8_t[SIPHASH_KEY_SIZE]){ (uint8_t)i }, mix,
                                       sizeof(mix));

                memcpy(key + 8 * i, &h, 8);
        }
}

/*
 * The message ID an unprivileged monitor sees: the bus's, through a
 * four-round Feistel permutation of its low 52 bits keyed by the monitor's
 * secret (SipHash as the round function). A permutation keeps IDs unique,
 * so SEND and DELIVER of one message still pair, while the values no longer
 * count messages: the gaps between its own would tell how many other users
 * send. 52 bits keep the IDs exact in JSON readers that use doubles; IDs
 * are 1..2^52 (0 stays "none"), the bus's beyond that keep their high bits.
 */
#define MONITOR_ID_HALF_BITS 26U
#define MONITOR_ID_HALF_MASK ((UINT64_C(1) << MONITOR_ID_HALF_BITS) - 1)
#define MONITOR_ID_MASK ((UINT64_C(1) << (2 * MONITOR_ID_HALF_BITS)) - 1)

static uint64_t monitor_message_id(const Monitor *monitor, uint64_t id) {
        uint64_t x, l, r;

        if (!id)
                return 0;
        x = id - 1;
        l = (x & MONITOR_ID_MASK) >> MONITOR_ID_HALF_BITS;
        r = x & MONITOR_ID_HALF_MASK;
        for (uint64_t round = 0; round < 4; ++round) {
                uint64_t in[2] = { round, r }, f;

                f = siphash24(monitor->key, in, sizeof(in)) & MONITOR_ID_HALF_MASK;
                in[0] = l ^ f;
                l = r;
                r = in[0];
        }
        return ((x & ~MONITOR_ID_MASK) | (l << MONITOR_ID_HALF_BITS) | r) + 1;
}

/* whether @uid may start one more monitor */
static bool monitor_slot_free(Control *control, uint32_t uid) {
        uint64_t n_uid = 0, n_unprivileged = 0;
        Monitor *monitor;

        if (control->n_monitors >= CONTROL_MONITORS_MAX)
                return false;
        list_for_each_entry(monitor, &control->monitors, link) {
                n_uid += monitor->caller_uid == uid;
                n_unprivileged += !monitor->privileged;
        }
        if (control_is_privileged(control, uid))
                return true;
        return n_uid < CONTROL_MONITORS_PER_UID &&
               n_unprivileged < CONTROL_MONITORS_MAX - CONTROL_MONITORS_RESERVED;
}

/**
 * monitor_new() - make a connection a monitor
 * @monitorp:   out: the monitor
 * @control:    control state
 * @conn:       the connection that sent MONITOR
 * @req:        the request, with its filter
 *
 * Return: 0, -EBUSY if no slot is left for the caller (CONTROL_MONITORS_MAX;
 *         for an unprivileged caller also CONTROL_MONITORS_PER_UID of its
 *         UID, and CONTROL_MONITORS_RESERVED kept for privileged ones),
 *         -ENOMEM.
 */
int monitor_new(Monitor **monitorp, Control *control, Connection *conn,
                const ProtoCtlMonitor *req) {
        Monitor *monitor;

        if (!monitor_slot_free(control, conn->peer->creds.uid))
                return -EBUSY;
        monitor = calloc(1, sizeof(*monitor));
        if (!monitor)
                return -ENOMEM;
        monitor->events = calloc(CONTROL_MONITOR_RING, sizeof(*monitor->events));
        monitor->wire = malloc(PROTO_RECORD_MAX);
        if (!monitor->events || !monitor->wire) {
                free(monitor->wire);
                free(monitor->events);
                free(monitor);
                return -ENOMEM;
        }
        monitor->control = control;
        monitor->conn = conn;
        monitor->caller_uid = conn->peer->creds.uid;
        monitor->privileged = control_is_privileged(control, monitor->caller_uid);
        monitor->types = req->types;
        monitor->peer = req->peer;
        monitor->node = req->node;
        monitor->uid = req->uid;
        if (!monitor->privileged)
                monitor_make_key(monitor->key);
        list_link_tail(&control->monitors, &monitor->link);
        ++control->n_monitors;
        *monitorp = monitor;
        return 0;
}

/**
 * monitor_free() - stop monitoring
 * @monitor:    monitor, or NULL
 *
 * Return: NULL.
 */
Monitor *monitor_free(Monitor *monitor) {
        if (!monitor)
                return NULL;
        list_unlink(&monitor->link);
        --monitor->control->n_monitors;
        free(monitor->wire);
        free(monitor->events);
        free(monitor);
        return NULL;
}

/*
 * Whether the event involves the peer the monitor filters on, on a side
 * it may see (an unprivileged monitor cannot probe for another UID's peer
 * IDs with its filter).
 */
static bool monitor_names_peer(Monitor *monitor, const ProtoEvent *e) {
        bool own = monitor->privileged || e->uid == monitor->caller_uid;
        bool own_target = monitor->privileged || e->target_uid == monitor->caller_uid;

        return (own && e->peer == monitor->peer) || (own_target && e->target == monitor->peer);
}

/* whether a monitor may see an event, and wants to */
static bool monitor_wants(Monitor *monitor, const ProtoEvent *e) {
        if (!monitor->privileged && e->uid != monitor->caller_uid &&
            e->target_uid != monitor->caller_uid)
                return false;
        if (monitor->types && !(monitor->types & (UINT64_C(1) << e->type)))
                return false;
        if (monitor->uid != PROTO_CTL_UID_ANY && e->uid != monitor->uid &&
            e->target_uid != monitor->uid)
                return false;
        if (monitor->peer && !monitor_names_peer(monitor, e))
                return false;
        if (monitor->node && e->node != monitor->node)
                return false;
        return true;
}

static void monitor_append(Monitor *monitor, const ProtoEvent *e) {
        monitor->events[(monitor->head + monitor->n_events) % CONTROL_MONITOR_RING] = *e;
        ++monitor->n_events;
}

/* a LOST event, if events were dropped and there is room for it */
static void monitor_report_lost(Monitor *monitor, uint64_t seq, uint64_t time) {
        if (!monitor->n_lost || monitor->n_events >= CONTROL_MONITOR_RING)
                return;
        monitor_append(monitor, &(ProtoEvent){
                .seq = seq,
                .time = time,
                .type = PROTO_EVENT_LOST,
                .uid = UINT32_MAX,
                .target_uid = UINT32_MAX,
                .count = monitor->n_lost,
        });
        monitor->n_lost = 0;
}

/*
 * What an unprivileged monitor may see of an event: of another UID's peer
 * its UID only, a seq of its own and message IDs through its permutation
 * (the bus's clock and message count would tell how much other users do).
 */
static ProtoEvent monitor_redact(Monitor *monitor, const ProtoEvent *e) {
        ProtoEvent r = *e;

        if (monitor->privileged)
                return r;
        r.seq = ++monitor->n_numbered;
        r.message = monitor_message_id(monitor, e->message);
        if (r.uid != monitor->caller_uid) {
                r.peer = 0;
                r.pid = 0;
        }
        if (r.target_uid != monitor->caller_uid) {
                r.target = 0;
                r.target_pid = 0;
        }
        return r;
}

static void monitor_push(Monitor *monitor, const ProtoEvent *event) {
        ProtoEvent e = monitor_redact(monitor, event);

        /* what was lost comes first, then this, and only if both fit */
        if (monitor->n_lost && monitor->n_events + 2 <= CONTROL_MONITOR_RING)
                monitor_report_lost(monitor, e.seq, e.time);
        if (monitor->n_lost || monitor->n_events >= CONTROL_MONITOR_RING) {
                ++monitor->n_lost;
                ++monitor->control->counters.n_events_lost;
                return;
        }
        monitor_append(monitor, &e);
}

/**
 * monitor_peek() - the oldest buffered events
 * @monitor:    monitor
 * @eventsp:    out: the oldest events, contiguous in the ring
 * @max:        at most this many
 *
 * When the ring is empty and events were lost, a LOST event is queued
 * first, so the monitor learns of it even if nothing else happens. Fewer
 * than are buffered may be returned where the ring wraps; call again after
 * monitor_consume().
 *
 * Return: the number of events at *@eventsp.
 */
size_t monitor_peek(Monitor *monitor, const ProtoEvent **eventsp, size_t max) {
        size_t n;

        if (!monitor->n_events && monitor->n_lost)
                monitor_report_lost(monitor,
                                    monitor->privileged ? monitor->control->broker->bus.clock
                                                        : monitor->n_numbered,
                                    clock_now_nsec(CLOCK_REALTIME));
        n = MIN(max, monitor->n_events);
        n = MIN(n, CONTROL_MONITOR_RING - monitor->head);
        *eventsp = &monitor->events[monitor->head];
        return n;
}

/**
 * monitor_consume() - drop events that were written to the socket
 * @monitor:    monitor
 * @n:          how many, at most what monitor_peek() returned
 */
void monitor_consume(Monitor *monitor, size_t n) {
        n = MIN(n, monitor->n_events);
        monitor->head = (monitor->head + n) % CONTROL_MONITOR_RING;
        monitor->n_events -= n;
}

static uint32_t monitor_event_type(unsigned int type) {
        switch (type) {
        case BUS_EVENT_SEND:
                return PROTO_EVENT_SEND;
        case BUS_EVENT_DELIVER:
                return PROTO_EVENT_DELIVER;
        case BUS_EVENT_DESTROY:
                return PROTO_EVENT_DESTROY;
        case BUS_EVENT_RELEASE:
                return PROTO_EVENT_RELEASE;
        case BUS_EVENT_TRANSFER:
                return PROTO_EVENT_TRANSFER;
        }
        return PROTO_EVENT_REFUSAL;
}

/**
 * monitor_broadcast() - hand a bus event to every monitor that wants it
 * @control:    control state
 * @event:      what happened
 *
 * Each monitor whose caller may see the event and whose filter matches it
 * gets a copy (redacted for an unprivileged one), or counts it as lost.
 */
void monitor_broadcast(Control *control, const BusEvent *event) {
        Monitor *monitor;
        ProtoEvent e;

        if (list_is_empty(&control->monitors))
                return;

        e = (ProtoEvent){
                .seq = event->seq,
                .time = clock_now_nsec(CLOCK_REALTIME),
                .type = monitor_event_type(event->type),
                .error = event->type == BUS_EVENT_REFUSAL ? (uint32_t)event->error : 0,
                .peer = event->peer.id,
                .uid = event->peer.uid,
                .pid = event->peer.pid,
                .target = event->target.id,
                .target_uid = event->target.uid,
                .target_pid = event->target.pid,
                .node = event->node,
                .message = event->message,
                .n_bytes = event->n_bytes,
                .n_handles = (uint32_t)MIN(event->n_handles, (uint64_t)UINT32_MAX),
                .n_fds = (uint32_t)MIN(event->n_fds, (uint64_t)UINT32_MAX),
        };
        /* a REFUSAL always carries its errno on the wire */
        if (e.type == PROTO_EVENT_REFUSAL && (e.error == 0 || e.error > PROTO_ERRNO_MAX))
                e.error = EIO;
        list_for_each_entry(monitor, &control->monitors, link)
                if (monitor_wants(monitor, &e))
                        monitor_push(monitor, &e);
}
