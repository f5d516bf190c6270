/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Fuzz dispatch: the input format of fuzz-dispatch.c
 *
 * Shared with fuzz-seeds.c, which writes the seed corpus in this format.
 *
 * Byte 0 configures the run (FUZZ_CONFIG_*). Every following op starts
 * with one byte: its low 5 bits pick the op (FuzzOp, modulo _FUZZ_OP_MAX),
 * its high 3 bits the client (modulo FUZZ_CLIENTS). The op reads its
 * arguments from the bytes after it; an input that ends early reads zeros.
 *
 * Argument bytes shared by the ops:
 *  - an ID byte (fuzz_pick_id()): 0-4 pick 0x100, 0x101, 0x102, 0x103 and
 *    0; 5-0xbf pick one of the IDs the client received (dst_handle of a
 *    transfer, ENTRY destinations, handle IDs read from received slices);
 *    0xc0-0xef give (b - 0xc0) << 3 | (b & 7); 0xf0-0xff read a raw le64;
 *  - an offset byte (fuzz_pick_offset()): the same scheme over 0, 8,
 *    BUS1_OFFSET_INVALID and the slice offsets the client received;
 *  - an fd kind byte (FuzzFdKind, modulo _FUZZ_FD_MAX).
 */

#include <stdint.h>

#define FUZZ_CLIENTS 3

/* byte 0 */
#define FUZZ_CONFIG_SMALL_SNDBUF(_i)    (1U << (_i))            /* broker's end of client i */
#define FUZZ_CONFIG_LAZY(_i)            (1U << (3 + (_i)))      /* drained by OP_DRAIN only */
#define FUZZ_CONFIG_NO_HELLO            (1U << 6)               /* no automatic HELLO */

typedef enum FuzzOp {
        FUZZ_OP_HELLO,          /* u8 variant: bits 0-1 version_min, 2-3 version_max, 4 raw */
        FUZZ_OP_ACK,            /* u8 variant: 0 the highest ENTRY id seen, 1 the last of
                                   this stream, else u8 id */
        FUZZ_OP_DISCONNECT,     /* PEER_DISCONNECT */
        FUZZ_OP_QUERY,          /* PEER_QUERY */
        FUZZ_OP_RESET,          /* u8 flags (bits 0-1 flags, 2 want-secctx, 3 keep peer flags),
                                   u8 u8 limits (3 bits each from a table) */
        FUZZ_OP_RELEASE,        /* HANDLE_RELEASE: id */
        FUZZ_OP_TRANSFER,       /* id, u8 destination: 0 self, 1-3 client (d-1), 4 an AF_UNIX
                                   socket of no broker, 5 an eventfd, 6 our own end */
        FUZZ_OP_DESTROY,        /* NODES_DESTROY: u8 (bits 0-2 n, 3 RELEASE_HANDLES), n ids */
        FUZZ_OP_SLICE_RELEASE,  /* offset */
        FUZZ_OP_SLICE_FDS,      /* u8 variant: 0 what the last RECV installed, else
                                   offset, u8 n (1-4), n u8 fd numbers */
        FUZZ_OP_SEND,           /* u8 flags (0 CONTINUE, 1 SEED, 2 ERRORS), u8 n_dst (0-3),
                                   u8 n_handles (0-3), u8 n_fds (0-3), ids, fd kinds,
                                   u8 payload (bit 7 memfd, bit 6 large, bit 5 unsealed,
                                   bit 4 memfd offset, bits 0-3 size), u8 size */
        FUZZ_OP_RECV,           /* u8 flags (bits 0-2), u8 max_offset (0 all, 1 none,
                                   2 pool size, else * 64) */
        FUZZ_OP_RAW,            /* u8 len/8, u8 kind (0 raw, 1 framed, 2 framed + fd,
                                   3 framed and too long), le16 type, len bytes */
        FUZZ_OP_CARRIER,        /* FDS carrier: u8 n (0: 253, else n % 4 + 1), u8 wrong count */
        FUZZ_OP_CLOSE,          /* the client closes its end */
        FUZZ_OP_RECONNECT,      /* a new connection in place of the client's */
        FUZZ_OP_DRAIN,          /* read what the broker wrote to this client */
        FUZZ_OP_UNKNOWN,        /* u8: 0 control request, 1 later request, 2 broker type */
        FUZZ_OP_BATCH,          /* u8 n: the next n % 8 + 1 ops are written before the
                                   broker runs */
        FUZZ_OP_ACK_RECV,       /* ACK of the last ENTRY, then RECV: the local receive */
        FUZZ_OP_RING,           /* u8 variant (fuzz_ring_variant()), then its arguments:
                                   values appended to the release ring, or its tail
                                   moved */
        _FUZZ_OP_MAX,
} FuzzOp;

/*
 * What FUZZ_OP_RING writes into the client's release ring. The first ones
 * are what libbus1-client writes (only while the ring has room, as the
 * library checks the head); the rest are what it never would.
 */
typedef enum FuzzRing {
        FUZZ_RING_ACK,          /* ACK of the last ENTRY of the stream (if any) */
        FUZZ_RING_RELEASE,      /* offset byte: a release */
        FUZZ_RING_ACK_RELEASE,  /* ACK of the last ENTRY, then a release of the last
                                   offset the client saw: the library's local receive */
        FUZZ_RING_ACK_ID,       /* u8 id: ACK of it (0 is a violation) */
        FUZZ_RING_RELEASES,     /* u8 n: n % 16 + 1 releases, each an offset byte */
        FUZZ_RING_LATE,         /* u8 n, then FUZZ_RING_ACK (n bit 2 clear) or
                                   FUZZ_RING_ACK_RELEASE (set), both computed now but
                                   written by a client running concurrently with the
                                   broker: right before the broker's (n % 4 + 1)-th drain
                                   of this peer from inside the model (a send placing a
                                   slice, an EDQUOT), whichever request that is in */
        FUZZ_RING_RAW,          /* le64 value, any tag */
        FUZZ_RING_SMALL,        /* u8 v: (v << 3) | (v & 7), any tag */
        FUZZ_RING_AHEAD,        /* u8 n: the tail moves n + 1 ahead, slots unwritten */
        FUZZ_RING_BACK,         /* u8 n: the tail moves n % 4 + 1 back */
        FUZZ_RING_TAIL,         /* le64: the tail */
        _FUZZ_RING_MAX,
} FuzzRing;

/* FUZZ_RING_* of a variant byte: the library's writes three times as often */
static inline FuzzRing fuzz_ring_variant(uint8_t b) {
        static const FuzzRing map[16] = {
                FUZZ_RING_ACK, FUZZ_RING_ACK, FUZZ_RING_RELEASE, FUZZ_RING_RELEASE,
                FUZZ_RING_RELEASE, FUZZ_RING_ACK_RELEASE, FUZZ_RING_ACK_RELEASE,
                FUZZ_RING_ACK_RELEASE, FUZZ_RING_RELEASES, FUZZ_RING_LATE,
                FUZZ_RING_ACK_ID, FUZZ_RING_RAW, FUZZ_RING_SMALL, FUZZ_RING_AHEAD,
                FUZZ_RING_BACK, FUZZ_RING_TAIL,
        };

        return map[b % 16];
}

typedef enum FuzzFdKind {
        FUZZ_FD_EVENTFD,
        FUZZ_FD_UNIX,           /* an AF_UNIX socket: refused */
        FUZZ_FD_OPATH,          /* O_PATH of / */
        FUZZ_FD_PIPE,
        FUZZ_FD_MEMFD,
        FUZZ_FD_CLIENT,         /* another client's end: AF_UNIX, refused */
        _FUZZ_FD_MAX,
} FuzzFdKind;

#define FUZZ_ID_FIXED 5
#define FUZZ_ID_RECEIVED_LAST 0xbf
#define FUZZ_ID_SMALL_LAST 0xef

/* the op byte for @op on client @client */
static inline unsigned char fuzz_op_byte(FuzzOp op, unsigned int client) {
        return (unsigned char)(op | (client << 5));
}
