/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bus: the whole object model of one broker
 *
 * Invariants: every peer on `peers` was created on this bus and not freed;
 * the clock only grows. A bus can only be deinitialised once all its peers
 * are gone.
 */

#include <assert.h>
#include "bus/bus.h"

static int bus_pool_setup_heap(Bus *bus, Peer *peer, Pool *pool, uint64_t size) {
        return pool_init_heap(pool, size);
}

/**
 * bus_init() - initialise an empty bus with the default limits
 * @bus:        bus
 */
void bus_init(Bus *bus) {
        *bus = (Bus){
                .limits = {
                        .max_slices = USER_DEFAULT_MAX_SLICES,
                        .max_handles = USER_DEFAULT_MAX_HANDLES,
                        .max_inflight_bytes = USER_DEFAULT_MAX_BYTES,
                        .max_inflight_fds = USER_DEFAULT_MAX_FDS,
                },
                .pool_size = USER_DEFAULT_MAX_BYTES,
                .fd_budget = UINT64_MAX,
                .pool_setup = bus_pool_setup_heap,
        };
        bus->message_cache = (FreeList)FREELIST_INIT(BUS_MESSAGE_CACHE_MAX);
        bus->slice_cache = (FreeList)FREELIST_INIT(POOL_SLICE_CACHE_MAX);
        list_init(&bus->peers);
        user_registry_init(&bus->users);
}

/**
 * bus_deinit() - release a bus
 * @bus:        bus, with no peers left
 */
void bus_deinit(Bus *bus) {
        assert(list_is_empty(&bus->peers));
        assert(bus->n_peers == 0);
        freelist_clear(&bus->message_cache);
        freelist_clear(&bus->slice_cache);
        user_registry_deinit(&bus->users);
}
