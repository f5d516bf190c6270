/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Tx: one message transaction (SEND)
 *
 * A send stages, then commits. Staging resolves every ID (creating the nodes
 * that new IDs name), checks every destination, charges the receivers'
 * limits, reserves a slice in each receiver's pool and creates the handles
 * receivers will get. Any failure unwinds all of that and the call fails as
 * if it never happened, unless BUS1_SEND_FLAG_CONTINUE keeps receiver-side
 * failures per destination. The commit takes one sequence number, fills the
 * slices and queues one message per destination; it neither allocates nor
 * fails.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include "bus/pool.h"

typedef struct FdList FdList;
typedef struct Peer Peer;

#define TX_VECS_MAX 1024U
/* the kernel's MAX_RW_COUNT (INT_MAX rounded down to a 4 KiB page) */
#define TX_BYTES_MAX (0x7fffffffULL & ~0xfffULL)

/**
 * struct TxArgs - a validated SEND
 * @flags:              BUS1_SEND_FLAG_*
 * @destinations:       destination handle IDs
 * @n_destinations:     their number
 * @errors:             NULL, or n_destinations slots for per-destination errors
 * @vecs:               payload
 * @n_vecs:             number of iovecs
 * @handles:            handle IDs to attach
 * @n_handles:          their number
 * @fds:                fds to attach, or NULL; the transaction takes references
 * @fd_error:           0, or the negative errno of an fd that could not be
 *                      attached (after @fds): the send fails with it where the
 *                      kernel imported fds, after the handles
 * @destinations_fault: the destination array could not be read: the send
 *                      fails with -EFAULT where the kernel read it
 * @fill:               NULL, or what writes the payload into each slice in
 *                      place of copying @vecs (which then only give its
 *                      length: their bases are not read)
 * @fill_userdata:      passed to @fill
 */
typedef struct TxArgs {
        uint64_t flags;
        const uint64_t *destinations;
        uint64_t n_destinations;
        uint64_t *errors;
        const struct iovec *vecs;
        uint64_t n_vecs;
        const uint64_t *handles;
        uint64_t n_handles;
        FdList *fds;
        int fd_error;
        bool destinations_fault;
        PoolFillFn fill;
        void *fill_userdata;
} TxArgs;

int peer_send(Peer *sender, const TxArgs *args);
