/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Event: dispatching a peer's entries from an sd-event loop
 *
 * bus1_peer_attach_event() adds one io source on the peer's descriptor
 * (EPOLLIN, level triggered). Each wakeup receives and calls the peer's
 * handler once per entry, until the queue is empty (-EAGAIN) or
 * EVENT_DISPATCH_MAX (64) entries were handled: a peer that is sent to
 * faster than it handles cannot keep the loop from its other sources
 * (sd-event dispatches one source per iteration, so they get their turn
 * in between).
 *
 * What is left after a bounded round needs no help to come back: the
 * descriptor stays readable while anything is left. Entries still in the
 * socket keep it readable themselves; entries the library already read
 * into its buffer (entries.c, while it waited for a reply) are covered by
 * the WAKE the broker sends after such a reply, which the library waits
 * for before the call returns and leaves in the socket until the buffer
 * is empty; entries the broker could not push yet (the socket was full)
 * are pushed as soon as the library reads and frees room. So the level-
 * triggered source fires again at the next iteration, and no defer source
 * is needed. A spurious wakeup costs one RECV that answers -EAGAIN.
 *
 * Outcomes of one wakeup:
 *  - a handler error ends the loop with it (sd_event_exit());
 *  - a handler that asks the loop to exit, detaches or disconnects ends the
 *    round; what is left stays queued for the next dispatch;
 *  - after EVENT_DISPATCH_MAX entries the round ends, and the rest comes
 *    with the next dispatch, in order;
 *  - a peer the program disconnected (-ESHUTDOWN) disables the source:
 *    there is nothing more to receive, and a level-triggered hang-up would
 *    otherwise spin;
 *  - a connection to the broker that ended (-ECONNRESET, -EPROTO, or a
 *    hang-up) disables the source too, and the program hears of it at
 *    once: its disconnect handler is called, or without one the loop
 *    exits with the error;
 *  - any other receive error (-ENOMEM) ends the loop with it.
 *
 * Invariants:
 *  - peer->io is set iff the peer is attached, and then peer->event holds
 *    a reference on its loop;
 *  - the callback pins the peer and the loop for its whole run: a handler
 *    may drop the last user reference of the peer, detach it, or
 *    disconnect it; the callback notices and stops (sd-event defers freeing
 *    a source that is being dispatched).
 */

#include <errno.h>
#include <sys/epoll.h>
#include <systemd/sd-event.h>
#include "bus1/client.h"
#include "client/peer.h"
#include "util/macro.h"

/* entries one wakeup hands to the handler at most; the rest waits for the next */
#define EVENT_DISPATCH_MAX 64U

/* how a round goes on after one entry */
typedef enum EventStep {
        EVENT_STEP_NEXT,        /* handled: on to the next entry */
        EVENT_STEP_DRAINED,     /* nothing left to receive (-EAGAIN) */
        EVENT_STEP_STOP,        /* the round ends here */
} EventStep;

static void event_peer_unrefp(Bus1Peer **peerp) {
        bus1_peer_unref(*peerp);
}

static void event_unrefp(sd_event **eventp) {
        sd_event_unref(*eventp);
}

/* still attached through @source, and enabled */
static bool event_peer_active(Bus1Peer *peer, sd_event_source *source) {
        int enabled = SD_EVENT_OFF;

        if (peer->io != source)
                return false;
        return sd_event_source_get_enabled(source, &enabled) >= 0 && enabled != SD_EVENT_OFF;
}

/*
 * The connection to the broker ended: nothing more will come. Tell the
 * program (its handler, else the loop exits with @error).
 */
static void event_peer_lost(Bus1Peer *peer, sd_event_source *source, sd_event *event,
                            int error) {
        int r = error;

        sd_event_source_set_enabled(source, SD_EVENT_OFF);
        if (peer->disconnect_handler)
                r = peer->disconnect_handler(peer, error, peer->disconnect_userdata);
        if (r < 0)
                sd_event_exit(event, r);
}

/* receive one entry and hand it to the handler */
static EventStep event_peer_step(Bus1Peer *peer, sd_event_source *source, sd_event *event) {
        Bus1Message *message;
        int exit_code, r;

        r = bus1_peer_recv(peer, 0, &message);
        if (r == -EAGAIN)
                return EVENT_STEP_DRAINED;
        if (r == -ESHUTDOWN) {
                /* disconnected by the program: do not spin on the hang-up */
                sd_event_source_set_enabled(source, SD_EVENT_OFF);
                return EVENT_STEP_STOP;
        }
        if (r == -ECONNRESET || r == -EPROTO) {
                event_peer_lost(peer, source, event, r);
                return EVENT_STEP_STOP;
        }
        if (r < 0) {
                sd_event_exit(event, r);
                return EVENT_STEP_STOP;
        }

        r = peer->handler ? peer->handler(peer, message, peer->userdata) : 0;
        bus1_message_unref(message);
        if (r < 0) {
                sd_event_exit(event, r);
                return EVENT_STEP_STOP;
        }
        /*
         * The handler may have detached, disabled or disconnected, or asked
         * the loop to exit: what is left stays queued (and the descriptor
         * readable) for the next dispatch.
         */
        if (!event_peer_active(peer, source) || sd_event_get_exit_code(event, &exit_code) >= 0)
                return EVENT_STEP_STOP;
        return EVENT_STEP_NEXT;
}

static int event_peer_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        _cleanup_(event_peer_unrefp) Bus1Peer *peer = bus1_peer_ref(userdata);
        _cleanup_(event_unrefp) sd_event *event = sd_event_ref(sd_event_source_get_event(source));
        EventStep step = EVENT_STEP_NEXT;

        /* bounded: what is left keeps the descriptor readable (see the top) */
        for (unsigned int n = 0; n < EVENT_DISPATCH_MAX && step == EVENT_STEP_NEXT; ++n)
                step = event_peer_step(peer, source, event);

        /* a hang-up with nothing left to receive: the broker is gone */
        if (step == EVENT_STEP_DRAINED && (revents & (EPOLLHUP | EPOLLERR)))
                event_peer_lost(peer, source, event, -ECONNRESET);
        return 0;
}

/**
 * bus1_peer_set_disconnect_handler() - hear of the broker going away
 * @peer:       peer
 * @handler:    called once when the connection to the broker ends while
 *              the peer is attached to an event loop, or NULL
 * @userdata:   passed to @handler
 *
 * Without a handler, an attached event loop exits with -ECONNRESET (or
 * -EPROTO for a broker that broke the protocol) as soon as the connection
 * ends, since a program whose bus is gone should not sit idle. A handler
 * returning a negative errno ends the loop with it; returning 0 keeps the
 * loop running (the peer's source is disabled either way).
 */
_public_ void bus1_peer_set_disconnect_handler(Bus1Peer *peer, Bus1DisconnectHandler handler,
                                               void *userdata) {
        peer->disconnect_handler = handler;
        peer->disconnect_userdata = userdata;
}

/**
 * bus1_peer_set_handler() - set the handler for attached event loops
 * @peer:       peer
 * @handler:    handler, or NULL (entries are then received and dropped)
 * @userdata:   passed to @handler
 *
 * The handler runs from the event loop, without any lock held: it may call
 * any function on the peer, keep the message with bus1_message_ref(), or
 * detach the peer.
 */
_public_ void bus1_peer_set_handler(Bus1Peer *peer, Bus1MessageHandler handler, void *userdata) {
        peer->handler = handler;
        peer->userdata = userdata;
}

/**
 * bus1_peer_attach_event() - dispatch incoming entries from an sd-event loop
 * @peer:       peer
 * @event:      event loop, or NULL for the default one of the thread
 * @priority:   priority of the io source (SD_EVENT_PRIORITY_NORMAL is 0)
 *
 * Adds an io source (described as "bus1-peer") on the peer's descriptor.
 * Whenever it is readable, what is queued is received and handed to the
 * handler, one entry per call, at most EVENT_DISPATCH_MAX (64) entries per
 * dispatch; the rest comes with the next one. A handler error ends the loop with that
 * error (sd_event_exit()). If the peer is disconnected or the broker goes
 * away, the source is disabled; bus1_peer_detach_event() removes it.
 *
 * Return: 0, -EBUSY if already attached, or the errno of sd-event.
 */
_public_ int bus1_peer_attach_event(Bus1Peer *peer, sd_event *event, int64_t priority) {
        _cleanup_(event_unrefp) sd_event *e = NULL;
        _cleanup_(sd_event_source_unrefp) sd_event_source *io = NULL;
        int r;

        if (peer->io)
                return -EBUSY;

        if (event) {
                e = sd_event_ref(event);
        } else {
                r = sd_event_default(&e);
                if (r < 0)
                        return r;
        }

        r = sd_event_add_io(e, &io, bus1_peer_get_fd(peer), EPOLLIN, event_peer_io, peer);
        if (r < 0)
                return r;
        r = sd_event_source_set_priority(io, priority);
        if (r < 0)
                return r;
        (void)sd_event_source_set_description(io, "bus1-peer");

        peer->io = TAKE_PTR(io);
        peer->event = TAKE_PTR(e);
        return 0;
}

/**
 * bus1_peer_detach_event() - stop dispatching from the event loop
 * @peer:       peer
 *
 * Removes the io source; safe from within the handler, and a no-op if the
 * peer is not attached.
 */
_public_ void bus1_peer_detach_event(Bus1Peer *peer) {
        if (!peer->io)
                return;
        peer->io = sd_event_source_disable_unref(peer->io);
        peer->event = sd_event_unref(peer->event);
}

/**
 * peer_event_pause() - turn the io source off for a moment
 * @peer:       peer
 *
 * Return: whether it was enabled, for peer_event_resume().
 */
bool peer_event_pause(Bus1Peer *peer) {
        int enabled = SD_EVENT_OFF;

        if (!peer->io || sd_event_source_get_enabled(peer->io, &enabled) < 0)
                return false;
        if (enabled != SD_EVENT_OFF)
                sd_event_source_set_enabled(peer->io, SD_EVENT_OFF);
        return enabled != SD_EVENT_OFF;
}

/**
 * peer_event_resume() - undo peer_event_pause()
 * @peer:       peer
 * @was_enabled: what peer_event_pause() returned
 */
void peer_event_resume(Bus1Peer *peer, bool was_enabled) {
        if (peer->io && was_enabled)
                sd_event_source_set_enabled(peer->io, SD_EVENT_ON);
}
