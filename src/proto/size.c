/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Proto sizes: the size of each variable-length record
 *
 * A variable record is its fixed part plus le64 arrays plus, for an inline
 * SEND payload, the bytes padded to 8; a SLICE_FDS is its fixed part plus
 * le32 fd numbers padded to 8. Counts come from untrusted records,
 * so every product and sum goes through __builtin_*_overflow() in 64 bits
 * before anything is compared with a buffer, and any result above
 * PROTO_RECORD_MAX is refused: a size these helpers return always fits a
 * record, a size_t and an int, on 32-bit hosts too. The decoder calls them
 * to find the size a record must have, the encoder to size what it writes,
 * and callers to size their buffers.
 */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include "proto/proto.h"
#include "util/macro.h"

/* @base plus @n_u64 le64 fields, or -EMSGSIZE past the record limit */
static int proto_size_array(size_t *sizep, uint64_t base, uint64_t n_u64) {
        uint64_t size;

        if (__builtin_mul_overflow(n_u64, (uint64_t)sizeof(uint64_t), &size) ||
            __builtin_add_overflow(size, base, &size) ||
            size > PROTO_RECORD_MAX)
                return -EMSGSIZE;
        *sizep = (size_t)size;
        return 0;
}

/**
 * proto_size_nodes_destroy() - size of a NODES_DESTROY record
 * @sizep:      output: the record size in bytes
 * @n_nodes:    number of node IDs
 *
 * Return: 0 on success, -EMSGSIZE if the record would exceed
 *         PROTO_RECORD_MAX (or the arithmetic overflows).
 */
int proto_size_nodes_destroy(size_t *sizep, uint64_t n_nodes) {
        return proto_size_array(sizep, PROTO_SIZE_NODES_DESTROY_MIN, n_nodes);
}

/**
 * proto_size_slice_fds() - size of a SLICE_FDS record
 * @sizep:      output: the record size in bytes
 * @n_fds:      number of fd numbers
 *
 * The le32 fd numbers are zero padded to a multiple of 8, so 1 and 2 fds
 * give the same size.
 *
 * Return: 0 on success, -EMSGSIZE if the record would exceed
 *         PROTO_RECORD_MAX (or the arithmetic overflows).
 */
int proto_size_slice_fds(size_t *sizep, uint64_t n_fds) {
        uint64_t size;

        if (__builtin_mul_overflow(n_fds, (uint64_t)sizeof(uint32_t), &size) ||
            align8_overflows(size))
                return -EMSGSIZE;
        size = align8(size);
        if (size > PROTO_RECORD_MAX - PROTO_SIZE_SLICE_FDS_MIN)
                return -EMSGSIZE;
        *sizep = PROTO_SIZE_SLICE_FDS_MIN + (size_t)size;
        return 0;
}

/**
 * proto_size_reply_send() - size of a successful SEND reply
 * @sizep:      output: the record size in bytes
 * @n_errors:   number of per-destination errors (0 if not asked)
 *
 * Return: 0 on success, -EMSGSIZE if the record would exceed
 *         PROTO_RECORD_MAX (or the arithmetic overflows).
 */
int proto_size_reply_send(size_t *sizep, uint64_t n_errors) {
        return proto_size_array(sizep, PROTO_SIZE_REPLY_SEND_MIN, n_errors);
}

/**
 * proto_size_send() - size of a SEND record
 * @sizep:              output: the record size in bytes
 * @n_destinations:     number of destination IDs
 * @n_handles:          number of attached handle IDs
 * @payload_mode:       PROTO_PAYLOAD_INLINE or PROTO_PAYLOAD_MEMFD
 * @n_bytes:            payload size; counts only for an inline payload
 *
 * A client calls this with PROTO_PAYLOAD_INLINE first; -EMSGSIZE tells it to
 * put the payload in a memfd instead.
 *
 * Return: 0 on success, -EINVAL for an unknown @payload_mode, -EMSGSIZE if
 *         the record would exceed PROTO_RECORD_MAX (or the arithmetic
 *         overflows).
 */
int proto_size_send(size_t *sizep, uint64_t n_destinations, uint64_t n_handles,
                    uint32_t payload_mode, uint64_t n_bytes) {
        uint64_t n_u64, payload = 0;
        size_t size;
        int r;

        if (payload_mode != PROTO_PAYLOAD_INLINE && payload_mode != PROTO_PAYLOAD_MEMFD)
                return -EINVAL;
        if (payload_mode == PROTO_PAYLOAD_INLINE) {
                if (align8_overflows(n_bytes))
                        return -EMSGSIZE;
                payload = align8(n_bytes);
        }
        if (__builtin_add_overflow(n_destinations, n_handles, &n_u64))
                return -EMSGSIZE;
        r = proto_size_array(&size, PROTO_SIZE_SEND_MIN, n_u64);
        if (r < 0)
                return r;
        /* size is at most PROTO_RECORD_MAX here, so only payload can push it over */
        if (payload > PROTO_RECORD_MAX - size)
                return -EMSGSIZE;
        *sizep = size + (size_t)payload;
        return 0;
}

/**
 * proto_size_ctl_data() - size of a CTL_DATA record
 * @sizep:      output: the record size in bytes
 * @n_bytes:    body bytes it carries, padded to 8 on the wire
 *
 * Return: 0 on success, -EMSGSIZE if the record would exceed
 *         PROTO_RECORD_MAX.
 */
int proto_size_ctl_data(size_t *sizep, uint64_t n_bytes) {
        if (n_bytes > PROTO_RECORD_MAX - PROTO_SIZE_CTL_DATA_MIN)
                return -EMSGSIZE;
        *sizep = PROTO_SIZE_CTL_DATA_MIN + (size_t)align8(n_bytes);
        return 0;
}

/**
 * proto_size_events() - size of an EVENTS record
 * @sizep:      output: the record size in bytes
 * @n_events:   number of events
 *
 * Return: 0 on success, -EMSGSIZE if the record would exceed
 *         PROTO_RECORD_MAX (or the arithmetic overflows).
 */
int proto_size_events(size_t *sizep, uint64_t n_events) {
        uint64_t size;

        if (__builtin_mul_overflow(n_events, (uint64_t)sizeof(ProtoWireEvent), &size) ||
            __builtin_add_overflow(size, (uint64_t)PROTO_SIZE_EVENTS_MIN, &size) ||
            size > PROTO_RECORD_MAX)
                return -EMSGSIZE;
        *sizep = (size_t)size;
        return 0;
}
