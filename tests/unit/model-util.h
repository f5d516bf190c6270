/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Shared helpers for the object model's unit tests: a bus with peers on
 * the stack, short wrappers around the commands, and assert_valid(), which
 * runs the model's consistency checker. Every test calls assert_valid()
 * after each step.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <cmocka.h>
#include "bus1/uapi.h"
#include "daemon/bus.h"
#include "daemon/peer.h"
#include "daemon/tx.h"
#include "daemon/validate.h"
#include "util/fdlist.h"

#define assert_valid(_bus) assert_int_equal(bus_validate(_bus), 0)

static inline Peer *test_peer_new(Bus *bus, uint32_t uid) {
        PeerCreds creds = { .uid = uid, .gid = uid, .pid = 100 + uid, .tid = 100 + uid };
        Peer *peer = NULL;

        assert_int_equal(peer_new(&peer, bus, &creds), 0);
        return peer;
}

/* send @len bytes of @data to the listed destinations, attaching handles */
static inline int test_send(Peer *sender, uint64_t flags, const uint64_t *dsts, uint64_t n_dsts,
                            uint64_t *errors, const void *data, size_t len,
                            const uint64_t *handles, uint64_t n_handles, FdList *fds) {
        struct iovec vec = { .iov_base = (void *)data, .iov_len = len };
        TxArgs args = {
                .flags = flags,
                .destinations = dsts,
                .n_destinations = n_dsts,
                .errors = errors,
                .vecs = &vec,
                .n_vecs = data ? 1 : 0,
                .handles = handles,
                .n_handles = n_handles,
                .fds = fds,
        };

        return peer_send(sender, &args);
}

/* unicast without handles or fds */
static inline int test_send1(Peer *sender, uint64_t dst, const char *text) {
        return test_send(sender, 0, &dst, 1, NULL, text, text ? strlen(text) : 0,
                         NULL, 0, NULL);
}

/* receive (dequeue) with everything mapped */
static inline int test_recv(Peer *peer, uint64_t flags, PeerRecv *r) {
        memset(r, 0, sizeof(*r));
        return peer_recv(peer, flags, UINT64_MAX, r);
}

/* the pool bytes of a received slice */
static inline const void *test_slice(Peer *peer, uint64_t offset) {
        return peer->pool.base + offset;
}

/* the u64 handle IDs of a received DATA entry */
static inline uint64_t test_slice_handle(Peer *peer, const PeerRecv *r, uint64_t i) {
        uint64_t id;

        memcpy(&id, peer->pool.base + r->offset + align8(r->n_bytes) + 8 * i, sizeof(id));
        return id;
}

/* transfer @id from @src into @dst (NULL: itself); returns the new ID */
static inline uint64_t test_transfer(Peer *src, uint64_t id, Peer *dst) {
        uint64_t out = 0;

        assert_int_equal(peer_handle_transfer(src, 0, id, dst, &out), 0);
        return out;
}
