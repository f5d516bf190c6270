/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Bus: the whole object model of one broker
 *
 * The bus owns every peer, hands out the global sequence numbers that order
 * all transactions (bus_tick()), and holds the defaults new peers start
 * with. It does no I/O: the broker's I/O layer, or a test, creates peers on
 * it and calls their operations. How a peer's pool is backed is the
 * `pool_setup` callback's business (an anonymous mapping by default, a
 * sealed memfd in the broker).
 */

#include <stdint.h>
#include "daemon/peer.h"
#include "daemon/user.h"
#include "util/list.h"

typedef struct Bus Bus;

/* defaults of SPEC section 8 */
#define BUS_DEFAULT_MAX_SLICES          16384U
#define BUS_DEFAULT_MAX_HANDLES         65536U
#define BUS_DEFAULT_MAX_INFLIGHT_BYTES  (16U * 1024U * 1024U)
#define BUS_DEFAULT_MAX_INFLIGHT_FDS    4096U

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

struct Bus {
        uint64_t clock;         /* sequence number of the last transaction */
        uint64_t n_peer_ids;    /* last peer id handed out */
        List peers;
        uint64_t n_peers;
        UserRegistry users;     /* per-UID accounting */
        PeerLimits limits;      /* caps on what a new peer starts with */
        uint64_t pool_size;     /* pool region of a new peer; 0: its user's byte limit */
        uint64_t n_inflight_fds;        /* fds all queued messages hold */
        uint64_t fd_budget;     /* at most this many; set by the broker */
        BusPoolSetupFn pool_setup;
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
