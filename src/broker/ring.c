/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Ring: the client-written release ring of one connection
 */

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "broker/ring.h"
#include "proto/proto.h"
#include "util/macro.h"

/**
 * ring_init() - create a ring
 * @ring:       ring to set up
 * @fdp:        out: the memfd, for the client (the caller closes it)
 *
 * The page is sparse until first written or read.
 *
 * Return: 0, or the negative errno of memfd_create(), ftruncate(),
 *         fcntl() or mmap().
 */
int ring_init(Ring *ring, int *fdp) {
        _cleanup_(closep) int fd = -1;
        void *p;

        *ring = RING_NULL;
        fd = memfd_create("bus1-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, PROTO_RING_SIZE) < 0)
                return -errno;
        /* the client may write but never resize: the mapping cannot fault */
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
                return -errno;
        p = mmap(NULL, PROTO_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        ring->map = p;
        *fdp = TAKE_FD(fd);
        return 0;
}

/**
 * ring_retire() - tell the ring's writer it was replaced
 * @ring:       ring, or one that was never set up
 *
 * A process that adopted the connection (a later HELLO) has a ring of its
 * own; a process still holding this one (the parent of a fork) learns from
 * this word that the peer is no longer its to use. Unmaps the ring.
 */
void ring_retire(Ring *ring) {
        if (ring->map)
                __atomic_store_n(proto_ring_word(ring->map, PROTO_RING_RETIRED), htole64(1),
                                 __ATOMIC_RELEASE);
        ring_deinit(ring);
}

/**
 * ring_deinit() - unmap a ring
 * @ring:       ring, or one that was never set up
 */
void ring_deinit(Ring *ring) {
        if (ring->map)
                munmap(ring->map, PROTO_RING_SIZE);
        *ring = RING_NULL;
}

/**
 * ring_drain() - apply every value the client appended, in order
 * @ring:       ring (nothing happens without a mapping)
 * @fn:         called with each value; a negative return stops the drain
 * @userdata:   passed to @fn
 *
 * The head advances past each value @fn was called with, also the one it
 * failed on, and is published for the client.
 *
 * Return: 0, -EBADMSG if the client's tail is not within one ring of the
 *         head (nothing is applied then), or what @fn returned.
 */
int ring_drain(Ring *ring, RingFn fn, void *userdata) {
        uint64_t tail;
        int r = 0;

        if (!ring->map)
                return 0;
        tail = le64toh(__atomic_load_n(proto_ring_word(ring->map, PROTO_RING_TAIL),
                                       __ATOMIC_ACQUIRE));
        if (tail == ring->head)
                return 0;
        if (tail - ring->head > PROTO_RING_N_SLOTS)
                return -EBADMSG;

        while (ring->head != tail) {
                uint64_t *slot = proto_ring_word(ring->map, proto_ring_slot(ring->head));
                uint64_t value = le64toh(__atomic_load_n(slot, __ATOMIC_RELAXED));

                ++ring->head;
                r = fn(value, userdata);
                if (r < 0)
                        break;
        }
        __atomic_store_n(proto_ring_word(ring->map, PROTO_RING_HEAD), htole64(ring->head),
                         __ATOMIC_RELEASE);
        return r;
}
