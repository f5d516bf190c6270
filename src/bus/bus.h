/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Bus: the whole object model of one broker
 *
 * The bus owns every peer, hands out the global sequence numbers that order
 * all transactions (bus_tick()), and holds the defaults new peers start
 * with. It does no I/O: the broker's I/O layer, or a test, creates peers on
 * it and calls their operations. How a peer's pool is backed is the
 * `pool_setup` callback's business (zeroed heap memory by default, a
 * sealed memfd in the broker).
 *
 * An observer (bus->observer) hears of what happens on the bus, for the
 * broker's monitor and counters: every message queued (SEND) and dequeued
 * (DELIVER), every node destroyed (DESTROY), every NODE_RELEASE queued
 * (RELEASE), every HANDLE_TRANSFER into another peer (TRANSFER) and every
 * destination that refused a message (REFUSAL). It is called in the middle
 * of the model's operations, so it must not call back into the model; it
 * only gets copies of IDs and numbers.
 */

#include <stdint.h>
#include "bus/peer.h"
#include "bus/user.h"
#include "util/freelist.h"
#include "util/list.h"

typedef struct Bus Bus;
typedef struct BusEvent BusEvent;

/* freed messages kept for reuse */
#define BUS_MESSAGE_CACHE_MAX           256U

/**
 * typedef BusPoolSetupFn - back a new peer's pool
 * @bus:        bus
 * @peer:       the new peer
 * @pool:       its pool, to be initialised
 * @size:       region size to provide
 *
 * Return: 0 or a negative errno, which peer_new() returns.
 */
typedef int (*BusPoolSetupFn)(Bus *bus, Peer *peer, Pool *pool, uint64_t size);

/**
 * typedef BusDrainFn - apply what a peer's client did without telling yet
 * @bus:        bus
 * @peer:       peer
 *
 * A client may release slices and dequeue pushed entries ahead of telling
 * the broker (the release ring, docs/protocol.md section 8a). The model
 * calls this hook before anything that could observe those releases: before
 * placing a slice in @peer's pool and before refusing a charge to @peer's
 * user. Optional; the hook may release @peer's slices and dequeue entries
 * that need no SYNC (peer_entry_needs_sync() false: their dequeue changes
 * no handle), but never frees a peer.
 */
typedef void (*BusDrainFn)(Bus *bus, Peer *peer);

enum {
        BUS_EVENT_SEND = 1,             /* a message was queued on a receiver */
        BUS_EVENT_DELIVER,              /* a receiver dequeued a message */
        BUS_EVENT_DESTROY,              /* a node was destroyed */
        BUS_EVENT_RELEASE,              /* a NODE_RELEASE was queued on a node's owner */
        BUS_EVENT_TRANSFER,             /* a handle was transferred into another peer */
        BUS_EVENT_REFUSAL,              /* a destination refused a message */
        _BUS_EVENT_N,
};

/* a peer as an event names it; it may be gone by the time anyone looks */
typedef struct BusEventPeer {
        uint64_t id;                    /* 0: none */
        uint32_t uid;                   /* UINT32_MAX: none */
        uint32_t pid;
} BusEventPeer;

/**
 * struct BusEvent - something that happened on the bus
 * @type:       BUS_EVENT_*
 * @error:      REFUSAL: the positive errno the destination failed with
 * @seq:        sequence number of the transaction (the clock, for DELIVER)
 * @peer:       the acting peer: sender (SEND, DELIVER, REFUSAL), owner
 *              (DESTROY, RELEASE), source (TRANSFER)
 * @target:     the other one: receiver (SEND, DELIVER, REFUSAL), destination
 *              (TRANSFER)
 * @message:    SEND, DELIVER: the message's ID (Message.id), bus-unique; else 0
 * @node:       the node's ID (Node.id): destination, destroyed, released or
 *              transferred; 0 for none
 * @n_bytes:    SEND, DELIVER, REFUSAL: payload bytes
 * @n_handles:  SEND, DELIVER, REFUSAL: handles attached
 * @n_fds:      SEND, DELIVER, REFUSAL: fds attached
 */
struct BusEvent {
        unsigned int type;
        int error;
        uint64_t seq;
        BusEventPeer peer;
        BusEventPeer target;
        uint64_t message;
        uint64_t node;
        uint64_t n_bytes;
        uint64_t n_handles;
        uint64_t n_fds;
};

typedef void (*BusObserverFn)(Bus *bus, const BusEvent *event);

struct Bus {
        uint64_t clock;         /* sequence number of the last transaction */
        uint64_t n_peer_ids;    /* last peer id handed out */
        uint64_t n_node_ids;    /* last node id handed out */
        uint64_t n_message_ids; /* last message id handed out */
        List peers;
        uint64_t n_peers;
        UserRegistry users;     /* per-UID accounting */
        PeerLimits limits;      /* caps on what a new peer starts with */
        uint64_t pool_size;     /* pool region of a new peer; 0: its user's byte limit */
        uint64_t n_inflight_fds;        /* fds all queued messages hold */
        uint64_t n_parked_fds;  /* fds on FDS carriers awaiting their record (I/O layer) */
        uint64_t n_unread_fds;  /* fds of HELLO replies behind a connection's latest,
                                 * maybe unread (I/O layer): at most fd_budget / 2 */
        uint64_t fd_budget;     /* inflight and parked together at most; set by the broker */
        BusPoolSetupFn pool_setup;
        BusDrainFn drain;       /* optional */
        FreeList message_cache; /* freed messages without handles, for reuse */
        FreeList slice_cache;   /* freed pool slice objects of every pool, for reuse */
        BusObserverFn observer; /* optional */
        void *userdata;
};

void bus_init(Bus *bus);
void bus_deinit(Bus *bus);

/**
 * bus_tick() - take the next transaction sequence number
 * @bus:        bus
 *
 * Return: a number larger than every one handed out before.
 */
static inline uint64_t bus_tick(Bus *bus) {
        return ++bus->clock;
}

/* a peer as events name it */
static inline BusEventPeer bus_event_peer(const Peer *peer) {
        if (!peer)
                return (BusEventPeer){ .uid = UINT32_MAX };
        return (BusEventPeer){ .id = peer->id, .uid = peer->creds.uid, .pid = peer->creds.pid };
}

/**
 * bus_observe() - tell the observer, if there is one
 * @bus:        bus
 * @event:      what happened
 */
static inline void bus_observe(Bus *bus, const BusEvent *event) {
        if (bus->observer)
                bus->observer(bus, event);
}
