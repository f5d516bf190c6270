/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Ring: the release ring of one connection
 *
 * A page of shared memory the client writes and the broker reads
 * (docs/protocol.md section 8a): the client appends slice releases and
 * ACKs without a system call, and the broker applies them in order before
 * anything that could observe them: before each request of that client,
 * before placing a slice in its pool, before refusing anything for quota,
 * before reporting usage. Everything in the page is untrusted: the broker
 * keeps its own head, reads the client's tail once per drain, reads each
 * value once, and treats any inconsistency as a protocol violation.
 *
 * The memfd is sealed against shrinking and growing, so the client cannot
 * make the broker's mapping fault; the broker closes its descriptor once
 * the client has it (the mapping stays).
 */

#include <stdint.h>

typedef struct Ring {
        uint8_t *map;           /* PROTO_RING_SIZE bytes, or NULL: no ring */
        uint64_t head;          /* values consumed: the broker's own count */
} Ring;

#define RING_NULL ((Ring){})

typedef int (*RingFn)(uint64_t value, void *userdata);

int ring_init(Ring *ring, int *fdp);
void ring_retire(Ring *ring);
void ring_deinit(Ring *ring);
int ring_drain(Ring *ring, RingFn fn, void *userdata);
