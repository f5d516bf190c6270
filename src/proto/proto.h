/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Proto: the bus1d wire protocol
 *
 * Broker and clients exchange records over an AF_UNIX SOCK_SEQPACKET
 * connection: one record per packet, file descriptors attached with
 * SCM_RIGHTS. This header holds everything both sides need to agree on:
 * record types, the fixed wire layouts, flag masks, limits, and the decoded
 * (host order, checked) form of every record. decode.c turns a received
 * packet into a decoded struct, encode.c writes one into a caller buffer;
 * neither touches a socket. docs/protocol.md is the prose specification.
 *
 * Invariants of the format:
 *  - Every record starts with a 16-byte ProtoWireHeader; `size` is the whole
 *    record and equals the packet length; `version` is BUS1_PROTO_VERSION.
 *  - All integers are little endian. Every le64 and every array sits at an
 *    8-byte aligned offset and every record size is a multiple of 8.
 *    Reserved fields and padding are zero.
 *  - Types 0x0001-0x7fff travel client to broker (requests), types
 *    0x8000-0xffff broker to client. 0x1000-0x1fff is reserved for control
 *    requests (bus1ctl); 0x2000-0x7fff for later requests.
 *  - Every request except FDS and ACK is answered by exactly one REPLY that
 *    echoes its cookie, in request order. FDS and ACK are never answered and
 *    carry cookie 0, and so do pushed records (ENTRY, RETRACT, WAKE,
 *    PUSH_FDS, RESYNC, EVENTS). The body of a control reply travels ahead
 *    of it in CTL_DATA records that carry the request's cookie too.
 *  - A record has exactly the fds its decoded form accounts for
 *    (proto_*_n_fds() below); fds beyond the SCM_MAX_FD a kernel lets one
 *    sendmsg() carry travel ahead on FDS/PUSH_FDS carrier records.
 *
 * Error policy, decided here once for broker and client alike. A decoder
 * returns one of:
 *  - -EBADMSG: a framing error. The record cannot have come from a correct
 *    peer: short, long or mismatched size, bad version, a type that does
 *    not belong there, a nonzero reserved field or padding byte, counts that
 *    do not match the size, trailing bytes, or a wrong number of attached
 *    fds. The broker treats it as a protocol violation and closes that
 *    connection without a reply; a client closes its connection.
 *    proto_error_is_fatal() says exactly this. A record that is never
 *    answered (FDS, ACK) cannot have an answerable error either: every
 *    error in one is -EBADMSG.
 *  - -EINVAL (unknown flag bits, bad enumeration values, bad argument
 *    combinations, too many destinations or nodes, a SLICE_FDS fd count or
 *    fd number out of range), -EMSGSIZE (too many fds or handles in a
 *    message, payload over 2 GiB), -ENOTTY (undefined request type, from
 *    proto_check_request_type()) and -EPROTONOSUPPORT (HELLO without a
 *    common version): argument errors of a well-framed request. The broker
 *    answers them with a REPLY carrying the positive errno; the connection
 *    stays up. The cookie for that reply comes from proto_decode_header(),
 *    which succeeds for any well-framed record.
 * Every record a client receives comes from the broker, so a client treats
 * any decode failure as fatal. Checks run in a fixed order (framing of the
 * header, size of the fixed part, reserved fields, arguments, size computed
 * from the counts, array entries, padding, attached fds), so every malformed
 * record has exactly one errno; docs/protocol.md lists them.
 */

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include "bus1/uapi.h"

#ifndef BUS1_PROTO_VERSION
#define BUS1_PROTO_VERSION 1
#endif

/* the versions this implementation speaks; HELLO negotiates within them */
#define PROTO_VERSION_MIN 1U
#define PROTO_VERSION_MAX 1U

/* record types */
enum {
        PROTO_TYPE_INVALID              = 0x0000,

        /* client to broker */
        PROTO_TYPE_HELLO                = 0x0001,
        PROTO_TYPE_FDS                  = 0x0002,
        PROTO_TYPE_ACK                  = 0x0003,
        PROTO_TYPE_PEER_DISCONNECT      = 0x0100,
        PROTO_TYPE_PEER_QUERY           = 0x0101,
        PROTO_TYPE_PEER_RESET           = 0x0102,
        PROTO_TYPE_HANDLE_RELEASE       = 0x0110,
        PROTO_TYPE_HANDLE_TRANSFER      = 0x0111,
        PROTO_TYPE_NODES_DESTROY        = 0x0120,
        PROTO_TYPE_SLICE_RELEASE        = 0x0130,
        PROTO_TYPE_SLICE_FDS            = 0x0131,
        PROTO_TYPE_SEND                 = 0x0140,
        PROTO_TYPE_RECV                 = 0x0150,
        PROTO_TYPE_CTL_STATUS           = 0x1000,       /* control requests (bus1ctl) */
        PROTO_TYPE_CTL_PEERS            = 0x1001,
        PROTO_TYPE_CTL_PEER             = 0x1002,
        PROTO_TYPE_CTL_QUOTA            = 0x1003,
        PROTO_TYPE_CTL_METRICS          = 0x1004,
        PROTO_TYPE_CTL_MONITOR          = 0x1005,
        PROTO_TYPE_REQUEST_FIRST        = 0x0001,
        PROTO_TYPE_CONTROL_FIRST        = 0x1000,       /* reserved for bus1ctl */
        PROTO_TYPE_CONTROL_LAST         = 0x1fff,
        PROTO_TYPE_REQUEST_LAST         = 0x7fff,

        /* broker to client */
        PROTO_TYPE_REPLY                = 0x8000,
        PROTO_TYPE_ENTRY                = 0x8001,
        PROTO_TYPE_RETRACT              = 0x8002,
        PROTO_TYPE_WAKE                 = 0x8003,
        PROTO_TYPE_PUSH_FDS             = 0x8004,
        PROTO_TYPE_RESYNC               = 0x8005,
        PROTO_TYPE_CTL_DATA             = 0x8006,       /* part of a control reply's body */
        PROTO_TYPE_EVENTS               = 0x8007,       /* monitor events */
};

/* whether a request type is one of the control range (bus1ctl) */
static inline bool proto_type_is_control(uint16_t type) {
        return type >= PROTO_TYPE_CONTROL_FIRST && type <= PROTO_TYPE_CONTROL_LAST;
}

/* HANDLE_TRANSFER dst_mode */
enum {
        PROTO_DST_SELF                  = 0,    /* the caller itself, no fd */
        PROTO_DST_FD                    = 1,    /* the peer whose connection is the one fd */
};

/* SEND payload_mode */
enum {
        PROTO_PAYLOAD_INLINE            = 0,    /* bytes follow the arrays */
        PROTO_PAYLOAD_MEMFD             = 1,    /* bytes are in the last attached fd */
};

/*
 * NODES_DESTROY flag of the protocol itself: the UAPI call's ID array was
 * unreadable. n_nodes still counts the IDs (the broker checks it against the
 * user's handle limit, where the kernel did, then answers EFAULT) but none
 * follows, and PROTO_NODES_MAX does not apply.
 */
#define PROTO_NODES_DESTROY_FLAG_EFAULT (((uint64_t)1) << 63)

/* node IDs a NODES_DESTROY record carries: none when the array was unreadable */
static inline uint64_t proto_nodes_destroy_n_ids(uint64_t flags, uint64_t n_nodes) {
        return (flags & PROTO_NODES_DESTROY_FLAG_EFAULT) ? 0 : n_nodes;
}

/* SEND flag of the protocol itself: the REPLY carries per-destination errors */
#define PROTO_SEND_FLAG_ERRORS          (((uint64_t)1) << 63)

/*
 * SEND flags of the protocol itself: the client could not read an array of
 * the UAPI call, and the broker answers with that error where the kernel
 * would meet it (after the handles, after the attached fds). FDS_EBADF: the
 * fd after the n_fds attached ones is not open. FDS_EFAULT: the fd array is
 * unreadable (no fds are attached). DESTINATIONS_EFAULT: the destination
 * array is unreadable: n_destinations still counts the destinations (the
 * broker checks it against the user's handle limit) but no ID follows, and
 * PROTO_DESTINATIONS_MAX does not apply. Such a send always fails; its
 * payload may be left out.
 */
#define PROTO_SEND_FLAG_FDS_EBADF       (((uint64_t)1) << 62)
#define PROTO_SEND_FLAG_FDS_EFAULT      (((uint64_t)1) << 61)
#define PROTO_SEND_FLAG_DESTINATIONS_EFAULT (((uint64_t)1) << 60)
#define PROTO_SEND_FLAGS_FAULT          (PROTO_SEND_FLAG_FDS_EBADF | PROTO_SEND_FLAG_FDS_EFAULT | \
                                         PROTO_SEND_FLAG_DESTINATIONS_EFAULT)

/*
 * Message flag of the protocol itself, in ENTRY only: the client must not
 * dequeue this entry locally but with a RECV, because the broker has to act
 * at the moment of dequeue. It never reaches the UAPI's msg.flags.
 */
#define PROTO_MSG_FLAG_SYNC             (((uint64_t)1) << 63)

/*
 * RETRACT flag: after the entry is removed, the entry right before it (if
 * the client has it buffered) carries BUS1_MSG_FLAG_CONTINUE iff this is set.
 */
#define PROTO_RETRACT_FLAG_PREV_CONTINUES (((uint64_t)1) << 0)

/*
 * The defined bits of each flags field; any other bit is -EINVAL.
 * PROTO_MSG_FLAGS is what a RECV reply's entry may carry, PROTO_ENTRY_MSG_FLAGS
 * what a pushed ENTRY may carry.
 */
#define PROTO_HELLO_FLAGS               ((uint64_t)0)
#define PROTO_PEER_DISCONNECT_FLAGS     ((uint64_t)0)
#define PROTO_PEER_QUERY_FLAGS          ((uint64_t)0)
#define PROTO_PEER_RESET_FLAGS          (BUS1_PEER_RESET_FLAG_FLUSH | \
                                         BUS1_PEER_RESET_FLAG_FLUSH_SEED)
#define PROTO_PEER_FLAGS                (BUS1_PEER_FLAG_WANT_SECCTX)
#define PROTO_HANDLE_TRANSFER_FLAGS     ((uint64_t)0)
#define PROTO_NODES_DESTROY_FLAGS       (BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES | \
                                         PROTO_NODES_DESTROY_FLAG_EFAULT)
#define PROTO_SEND_FLAGS                (BUS1_SEND_FLAG_CONTINUE | BUS1_SEND_FLAG_SEED | \
                                         PROTO_SEND_FLAG_ERRORS | PROTO_SEND_FLAGS_FAULT)
#define PROTO_RECV_FLAGS                (BUS1_RECV_FLAG_PEEK | BUS1_RECV_FLAG_SEED | \
                                         BUS1_RECV_FLAG_INSTALL_FDS)
#define PROTO_MSG_FLAGS                 (BUS1_MSG_FLAG_HAS_SECCTX | BUS1_MSG_FLAG_CONTINUE)
#define PROTO_ENTRY_MSG_FLAGS           (PROTO_MSG_FLAGS | PROTO_MSG_FLAG_SYNC)
#define PROTO_RETRACT_FLAGS             (PROTO_RETRACT_FLAG_PREV_CONTINUES)

/*
 * Control requests and their replies (docs/protocol.md, section 15). A
 * control REPLY names the format of its body, which travels ahead of it in
 * CTL_DATA records carrying the request's cookie. A MONITOR reply has no
 * body; EVENTS records follow it for as long as the connection lives.
 */
enum {
        PROTO_CTL_FORMAT_NONE           = 0,    /* no body (MONITOR) */
        PROTO_CTL_FORMAT_JSON           = 1,    /* one JSON object (RFC 8259), UTF-8 */
        PROTO_CTL_FORMAT_OPENMETRICS    = 2,    /* OpenMetrics text, ending in "# EOF" */
};

/*
 * CTL_METRICS flag: the counters as JSON (PROTO_CTL_FORMAT_JSON) instead of
 * OpenMetrics text; the other requests are answered in JSON anyway and
 * take no flag
 */
#define PROTO_CTL_FLAG_JSON             (((uint64_t)1) << 0)

/* CTL_QUOTA arg: every UID the caller may see */
#define PROTO_CTL_UID_ALL               UINT64_MAX
/* CTL_MONITOR uid: any UID */
#define PROTO_CTL_UID_ANY               UINT32_MAX
/* the control reply's body was cut at PROTO_CTL_BYTES_MAX or a list limit */
#define PROTO_CTL_REPLY_FLAG_TRUNCATED  (((uint64_t)1) << 0)

#define PROTO_CTL_FLAGS                 ((uint64_t)0)
#define PROTO_CTL_METRICS_FLAGS         (PROTO_CTL_FLAG_JSON)
#define PROTO_CTL_MONITOR_FLAGS         ((uint64_t)0)
#define PROTO_CTL_REPLY_FLAGS           (PROTO_CTL_REPLY_FLAG_TRUNCATED)

/* monitor event types; a MONITOR's `types` is a mask of (1 << type) */
enum {
        PROTO_EVENT_SEND                = 1,    /* a message was queued on a receiver */
        PROTO_EVENT_DELIVER             = 2,    /* a receiver dequeued a message */
        PROTO_EVENT_DESTROY             = 3,    /* a node was destroyed */
        PROTO_EVENT_RELEASE             = 4,    /* a NODE_RELEASE was queued on the owner */
        PROTO_EVENT_TRANSFER            = 5,    /* HANDLE_TRANSFER into another peer */
        PROTO_EVENT_REFUSAL             = 6,    /* a destination refused a message */
        PROTO_EVENT_LOST                = 7,    /* `count` events were dropped here */
        _PROTO_EVENT_N,
};

/* the types a MONITOR may select (LOST is always delivered) */
#define PROTO_EVENT_TYPES               (((uint64_t)0x3f) << 1)

/*
 * Limits. A record never exceeds PROTO_RECORD_MAX bytes, which fits the
 * default AF_UNIX send buffer; a larger payload goes in a memfd. One packet
 * carries at most PROTO_PACKET_FDS_MAX fds (the kernel's SCM_MAX_FD); one
 * record accounts for at most PROTO_RECORD_FDS_MAX (a message's fds plus the
 * payload memfd), the excess travelling ahead on FDS/PUSH_FDS carriers.
 */
#define PROTO_RECORD_MAX                (128U * 1024U)
#define PROTO_FDS_MAX                   ((uint64_t)BUS1_FD_MAX)
#define PROTO_RECORD_FDS_MAX            (BUS1_FD_MAX + 1U)
/* a decoder's @n_fds when the receiver lost some of them (MSG_CTRUNC) */
#define PROTO_FDS_LOST                  SIZE_MAX
#define PROTO_PACKET_FDS_MAX            253U
#define PROTO_DESTINATIONS_MAX          ((uint64_t)8192)
#define PROTO_HANDLES_MAX               ((uint64_t)8192)
#define PROTO_NODES_MAX                 ((uint64_t)8192)
#define PROTO_BYTES_MAX                 ((uint64_t)1 << 31)
#define PROTO_SECCTX_MAX                ((uint64_t)4096)
#define PROTO_LIMIT_MAX                 ((uint32_t)INT32_MAX)  /* PEER_RESET limits */
#define PROTO_ERRNO_MAX                 4095U
#define PROTO_OFFSET_MAX                ((uint64_t)INT64_MAX)  /* pool and memfd offsets */
#define PROTO_CTL_BYTES_MAX             ((uint64_t)16 * 1024 * 1024)    /* control reply body */

/*
 * Wire layouts. Fields are little endian; the structs only fix offsets and
 * sizes (the code reads and writes them with memcpy() and le*toh()/htole*(),
 * so no record buffer needs to be aligned for correctness).
 */

typedef struct ProtoWireHeader {
        uint32_t size;                  /* whole record, header included */
        uint16_t version;               /* BUS1_PROTO_VERSION */
        uint16_t type;                  /* PROTO_TYPE_* */
        uint64_t cookie;                /* request: client's; REPLY: echoed; push: 0 */
} ProtoWireHeader;

typedef struct ProtoWireHello {
        uint64_t flags;                 /* 0 */
        uint32_t version_min;           /* lowest version the client speaks, >= 1 */
        uint32_t version_max;           /* highest, >= version_min */
} ProtoWireHello;

typedef struct ProtoWireFds {
        uint32_t n_fds;                 /* fds carried by this packet, 1..253 */
        uint32_t reserved;
} ProtoWireFds;

typedef struct ProtoWireFlags {
        uint64_t flags;                 /* PEER_DISCONNECT, PEER_QUERY: 0 */
} ProtoWireFlags;

typedef struct ProtoWirePeerReset {
        uint64_t flags;
        uint64_t peer_flags;
        uint32_t max_slices;
        uint32_t max_handles;
        uint32_t max_inflight_bytes;
        uint32_t max_inflight_fds;
} ProtoWirePeerReset;

typedef struct ProtoWireId {
        uint64_t id;                    /* HANDLE_RELEASE: handle; SLICE_RELEASE: offset;
                                           ACK: entry ID */
} ProtoWireId;

typedef struct ProtoWireHandleTransfer {
        uint64_t flags;
        uint64_t src_handle;
        uint32_t dst_mode;              /* PROTO_DST_* */
        uint32_t reserved;
} ProtoWireHandleTransfer;

typedef struct ProtoWireNodesDestroy {
        uint64_t flags;
        uint64_t n_nodes;
        /* followed by le64 ids[n_nodes] */
} ProtoWireNodesDestroy;

typedef struct ProtoWireSend {
        uint64_t flags;
        uint32_t n_destinations;
        uint32_t n_handles;
        uint32_t n_fds;
        uint32_t payload_mode;          /* PROTO_PAYLOAD_* */
        uint64_t n_bytes;
        uint64_t memfd_offset;          /* 0 unless PROTO_PAYLOAD_MEMFD */
        /*
         * followed by le64 destinations[n_destinations], le64
         * handles[n_handles], and with PROTO_PAYLOAD_INLINE the n_bytes
         * payload bytes, zero padded to a multiple of 8
         */
} ProtoWireSend;

typedef struct ProtoWireSliceFds {
        uint64_t offset;                /* the slice the last RECV returned */
        uint32_t n_fds;                 /* 1..BUS1_FD_MAX */
        uint32_t reserved;
        /* followed by le32 fds[n_fds], zero padded to a multiple of 8 */
} ProtoWireSliceFds;

typedef struct ProtoWireRecv {
        uint64_t flags;
        uint64_t max_offset;
} ProtoWireRecv;

typedef struct ProtoWireReply {
        uint32_t error;                 /* 0 or a positive errno */
        uint32_t reserved;
        /* followed by the per-command body if error is 0 */
} ProtoWireReply;

typedef struct ProtoWireReplyHello {
        uint64_t peer_id;
        uint64_t pool_size;
        uint32_t version;               /* the negotiated version */
        uint32_t user_max_handles;      /* the peer's user's handle limit */
} ProtoWireReplyHello;

typedef struct ProtoWireReplySend {
        uint64_t n_errors;              /* 0, or n_destinations with ERRORS */
        /* followed by le64 errors[n_errors] */
} ProtoWireReplySend;

typedef struct ProtoWireMessage {
        uint64_t type;                  /* BUS1_MSG_* */
        uint64_t flags;                 /* BUS1_MSG_FLAG_* */
        uint64_t destination;
        uint32_t uid;
        uint32_t gid;
        uint32_t pid;
        uint32_t tid;
        uint64_t offset;
        uint64_t n_bytes;
        uint64_t n_handles;
        uint64_t n_fds;
        uint64_t n_secctx;
} ProtoWireMessage;

typedef struct ProtoWireEntry {
        uint64_t entry_id;
        ProtoWireMessage msg;
} ProtoWireEntry;

typedef struct ProtoWireRetract {
        uint64_t entry_id;
        uint64_t flags;                 /* PROTO_RETRACT_FLAG_* */
} ProtoWireRetract;

typedef struct ProtoWireCtl {
        uint64_t flags;                 /* METRICS: PROTO_CTL_FLAG_JSON or 0; else 0 */
        uint64_t arg;                   /* PEER: peer ID; QUOTA: UID or all ones; else 0 */
} ProtoWireCtl;

typedef struct ProtoWireCtlMonitor {
        uint64_t flags;                 /* 0 */
        uint64_t types;                 /* mask of 1 << PROTO_EVENT_*, 0: all */
        uint64_t peer;                  /* peer ID, 0: any */
        uint64_t node;                  /* node ID, 0: any */
        uint32_t uid;                   /* UID, all ones: any */
        uint32_t reserved;
} ProtoWireCtlMonitor;

typedef struct ProtoWireReplyCtl {
        uint64_t n_bytes;               /* body bytes the CTL_DATA records carried */
        uint32_t format;                /* PROTO_CTL_FORMAT_* */
        uint32_t flags;                 /* PROTO_CTL_REPLY_FLAG_* */
} ProtoWireReplyCtl;

typedef struct ProtoWireCtlData {
        uint32_t n_bytes;               /* 1..PROTO_CTL_DATA_MAX */
        uint32_t reserved;
        /* followed by n_bytes of the body, zero padded to a multiple of 8 */
} ProtoWireCtlData;

typedef struct ProtoWireEvent {
        uint64_t seq;                   /* bus sequence number (the clock) */
        uint64_t time;                  /* CLOCK_REALTIME, nanoseconds */
        uint32_t type;                  /* PROTO_EVENT_* */
        uint32_t error;                 /* REFUSAL: the errno; else 0 */
        uint64_t peer;                  /* the acting peer (the sender of a message), 0: none */
        uint32_t uid;                   /* its UID, all ones: none */
        uint32_t pid;
        uint64_t target;                /* the other peer (the receiver of a message), 0: none */
        uint32_t target_uid;
        uint32_t target_pid;
        uint64_t node;                  /* node ID, 0: none */
        uint64_t n_bytes;
        uint32_t n_handles;
        uint32_t n_fds;
        uint64_t count;                 /* LOST: events dropped; else 0 */
        uint64_t message;               /* SEND, DELIVER: the message's ID, never 0; else 0 */
} ProtoWireEvent;

typedef struct ProtoWireEvents {
        uint32_t n_events;              /* 1..PROTO_EVENTS_MAX */
        uint32_t reserved;
        /* followed by ProtoWireEvent events[n_events] */
} ProtoWireEvents;

_Static_assert(sizeof(ProtoWireHeader) == 16, "header layout");
_Static_assert(sizeof(ProtoWireCtl) == 16, "control request layout");
_Static_assert(sizeof(ProtoWireCtlMonitor) == 40, "MONITOR layout");
_Static_assert(sizeof(ProtoWireReplyCtl) == 16, "control reply layout");
_Static_assert(sizeof(ProtoWireCtlData) == 8, "CTL_DATA layout");
_Static_assert(sizeof(ProtoWireEvent) == 96, "event layout");
_Static_assert(sizeof(ProtoWireEvents) == 8, "EVENTS layout");
_Static_assert(sizeof(ProtoWireHello) == 16, "HELLO layout");
_Static_assert(sizeof(ProtoWireFds) == 8, "FDS layout");
_Static_assert(sizeof(ProtoWireFlags) == 8, "flags layout");
_Static_assert(sizeof(ProtoWirePeerReset) == 32, "PEER_RESET layout");
_Static_assert(sizeof(ProtoWireId) == 8, "id layout");
_Static_assert(sizeof(ProtoWireHandleTransfer) == 24, "HANDLE_TRANSFER layout");
_Static_assert(sizeof(ProtoWireNodesDestroy) == 16, "NODES_DESTROY layout");
_Static_assert(sizeof(ProtoWireSliceFds) == 16, "SLICE_FDS layout");
_Static_assert(sizeof(ProtoWireSend) == 40, "SEND layout");
_Static_assert(offsetof(ProtoWireSend, n_bytes) == 24, "SEND n_bytes alignment");
_Static_assert(sizeof(ProtoWireRecv) == 16, "RECV layout");
_Static_assert(sizeof(ProtoWireReply) == 8, "REPLY layout");
_Static_assert(sizeof(ProtoWireReplyHello) == 24, "HELLO reply layout");
_Static_assert(sizeof(ProtoWireReplySend) == 8, "SEND reply layout");
_Static_assert(sizeof(ProtoWireMessage) == 80, "message layout");
_Static_assert(offsetof(ProtoWireMessage, offset) == 40, "message offset alignment");
_Static_assert(sizeof(ProtoWireEntry) == 88, "entry layout");
_Static_assert(sizeof(ProtoWireRetract) == 16, "RETRACT layout");
_Static_assert(sizeof(int) == sizeof(uint32_t), "fd numbers travel as le32");
_Static_assert(sizeof(ProtoWireMessage) == sizeof(((struct bus1_cmd_recv *)0)->msg),
               "message mirrors the UAPI");
_Static_assert(sizeof(ProtoWirePeerReset) == sizeof(struct bus1_cmd_peer_reset),
               "PEER_RESET mirrors the UAPI");
_Static_assert(PROTO_RECORD_MAX % 8 == 0, "record limit is aligned");

/* record sizes; the variable ones are the size without their arrays */
#define PROTO_SIZE_HEADER               sizeof(ProtoWireHeader)
#define PROTO_SIZE_HELLO                (PROTO_SIZE_HEADER + sizeof(ProtoWireHello))
#define PROTO_SIZE_FDS                  (PROTO_SIZE_HEADER + sizeof(ProtoWireFds))
#define PROTO_SIZE_ACK                  (PROTO_SIZE_HEADER + sizeof(ProtoWireId))
#define PROTO_SIZE_PEER_DISCONNECT      (PROTO_SIZE_HEADER + sizeof(ProtoWireFlags))
#define PROTO_SIZE_PEER_QUERY           (PROTO_SIZE_HEADER + sizeof(ProtoWireFlags))
#define PROTO_SIZE_PEER_RESET           (PROTO_SIZE_HEADER + sizeof(ProtoWirePeerReset))
#define PROTO_SIZE_HANDLE_RELEASE       (PROTO_SIZE_HEADER + sizeof(ProtoWireId))
#define PROTO_SIZE_HANDLE_TRANSFER      (PROTO_SIZE_HEADER + sizeof(ProtoWireHandleTransfer))
#define PROTO_SIZE_NODES_DESTROY_MIN    (PROTO_SIZE_HEADER + sizeof(ProtoWireNodesDestroy))
#define PROTO_SIZE_SLICE_RELEASE        (PROTO_SIZE_HEADER + sizeof(ProtoWireId))
#define PROTO_SIZE_SLICE_FDS_MIN        (PROTO_SIZE_HEADER + sizeof(ProtoWireSliceFds))
#define PROTO_SIZE_SEND_MIN             (PROTO_SIZE_HEADER + sizeof(ProtoWireSend))
#define PROTO_SIZE_RECV                 (PROTO_SIZE_HEADER + sizeof(ProtoWireRecv))
#define PROTO_SIZE_REPLY                (PROTO_SIZE_HEADER + sizeof(ProtoWireReply))
#define PROTO_SIZE_REPLY_HELLO          (PROTO_SIZE_REPLY + sizeof(ProtoWireReplyHello))
#define PROTO_SIZE_REPLY_PEER_QUERY     (PROTO_SIZE_REPLY + sizeof(ProtoWirePeerReset))
#define PROTO_SIZE_REPLY_HANDLE_TRANSFER (PROTO_SIZE_REPLY + sizeof(ProtoWireId))
#define PROTO_SIZE_REPLY_SEND_MIN       (PROTO_SIZE_REPLY + sizeof(ProtoWireReplySend))
#define PROTO_SIZE_REPLY_RECV           (PROTO_SIZE_REPLY + sizeof(ProtoWireEntry))
#define PROTO_SIZE_ENTRY                (PROTO_SIZE_HEADER + sizeof(ProtoWireEntry))
#define PROTO_SIZE_RETRACT              (PROTO_SIZE_HEADER + sizeof(ProtoWireRetract))
#define PROTO_SIZE_WAKE                 PROTO_SIZE_HEADER
#define PROTO_SIZE_RESYNC               PROTO_SIZE_HEADER
#define PROTO_SIZE_CTL                  (PROTO_SIZE_HEADER + sizeof(ProtoWireCtl))
#define PROTO_SIZE_CTL_MONITOR          (PROTO_SIZE_HEADER + sizeof(ProtoWireCtlMonitor))
#define PROTO_SIZE_REPLY_CTL            (PROTO_SIZE_REPLY + sizeof(ProtoWireReplyCtl))
#define PROTO_SIZE_CTL_DATA_MIN         (PROTO_SIZE_HEADER + sizeof(ProtoWireCtlData))
#define PROTO_SIZE_EVENTS_MIN           (PROTO_SIZE_HEADER + sizeof(ProtoWireEvents))

/* body bytes one CTL_DATA record carries at most, events one EVENTS record */
#define PROTO_CTL_DATA_MAX              (PROTO_RECORD_MAX - PROTO_SIZE_CTL_DATA_MIN)
#define PROTO_EVENTS_MAX                ((PROTO_RECORD_MAX - PROTO_SIZE_EVENTS_MIN) / \
                                         sizeof(ProtoWireEvent))

/*
 * Decoded records: host byte order, every field checked. Array members point
 * into the decoded buffer and stay little endian; read them with
 * proto_u64_at() (le64 arrays) or proto_s32_at() (the le32 fd numbers of
 * SLICE_FDS). A reply struct with a nonzero @error has every other field
 * zero (an error reply has no body).
 */

typedef struct ProtoHeader {
        uint32_t size;
        uint16_t version;
        uint16_t type;
        uint64_t cookie;
} ProtoHeader;

typedef struct ProtoHello {
        uint64_t cookie;
        uint64_t flags;
        uint32_t version_min;
        uint32_t version_max;
} ProtoHello;

typedef struct ProtoFds {
        uint16_t type;                  /* PROTO_TYPE_FDS or PROTO_TYPE_PUSH_FDS */
        uint32_t n_fds;
} ProtoFds;

/*
 * The release ring (docs/protocol.md section 8a): one page of shared
 * memory per peer, created by the broker and handed over with the HELLO
 * reply (its second fd). The client appends le64 values at the tail, the
 * broker consumes them at the head. A value is tagged in its low three
 * bits: PROTO_RING_RELEASE is a SLICE_RELEASE of the (8-aligned) offset,
 * PROTO_RING_ACK an ACK of the entry ID in the upper 61 bits.
 */
#define PROTO_RING_SIZE         4096U
#define PROTO_RING_TAIL         0U      /* le64: values written; the client's */
#define PROTO_RING_HEAD         64U     /* le64: values consumed; the broker's */
#define PROTO_RING_RETIRED      128U    /* le64: 1 once another process adopted the
                                         * connection (a later HELLO); the broker's */
#define PROTO_RING_SLOTS        2048U   /* le64[PROTO_RING_N_SLOTS] */
#define PROTO_RING_N_SLOTS      256U
#define PROTO_RING_TAG_MASK     7ULL
#define PROTO_RING_RELEASE      0ULL
#define PROTO_RING_ACK          1ULL
#define PROTO_RING_ACK_MAX      (UINT64_MAX >> 3)

/* a le64 word of a mapped ring, at one of the offsets above */
static inline uint64_t *proto_ring_word(uint8_t *ring, size_t offset) {
        return (uint64_t *)(void *)(ring + offset);
}

/* the offset of the slot that holds value number @n */
static inline size_t proto_ring_slot(uint64_t n) {
        return PROTO_RING_SLOTS + 8 * (size_t)(n % PROTO_RING_N_SLOTS);
}

typedef struct ProtoAck {
        uint64_t entry_id;              /* >= 1; the cookie is always 0 */
} ProtoAck;

typedef struct ProtoPeerDisconnect {
        uint64_t cookie;
        uint64_t flags;
} ProtoPeerDisconnect;

typedef struct ProtoPeerQuery {
        uint64_t cookie;
        uint64_t flags;
} ProtoPeerQuery;

typedef struct ProtoPeerReset {
        uint64_t cookie;
        uint64_t flags;
        uint64_t peer_flags;            /* all ones: keep */
        uint32_t max_slices;            /* all ones: keep (and so on) */
        uint32_t max_handles;
        uint32_t max_inflight_bytes;
        uint32_t max_inflight_fds;
} ProtoPeerReset;

typedef struct ProtoHandleRelease {
        uint64_t cookie;
        uint64_t id;
} ProtoHandleRelease;

typedef struct ProtoHandleTransfer {
        uint64_t cookie;
        uint64_t flags;
        uint64_t src_handle;
        uint32_t dst_mode;
} ProtoHandleTransfer;

typedef struct ProtoNodesDestroy {
        uint64_t cookie;
        uint64_t flags;
        uint64_t n_nodes;
        const void *ids;                /* le64[n_nodes] in the buffer */
} ProtoNodesDestroy;

typedef struct ProtoSliceRelease {
        uint64_t cookie;
        uint64_t offset;
} ProtoSliceRelease;

typedef struct ProtoSliceFds {
        uint64_t cookie;
        uint64_t offset;
        uint32_t n_fds;                 /* 1..BUS1_FD_MAX */
        const void *fds;                /* le32[n_fds] in the buffer, each >= 0 */
} ProtoSliceFds;

typedef struct ProtoSend {
        uint64_t cookie;
        uint64_t flags;
        uint32_t n_destinations;
        uint32_t n_handles;
        uint32_t n_fds;
        uint32_t payload_mode;
        uint64_t n_bytes;
        uint64_t memfd_offset;
        const void *destinations;       /* le64[n_destinations] in the buffer */
        const void *handles;            /* le64[n_handles] in the buffer */
        const void *payload;            /* n_bytes in the buffer; NULL with a memfd */
} ProtoSend;

typedef struct ProtoRecv {
        uint64_t cookie;
        uint64_t flags;
        uint64_t max_offset;
} ProtoRecv;

typedef struct ProtoMessage {
        uint64_t type;
        uint64_t flags;
        uint64_t destination;
        uint32_t uid;
        uint32_t gid;
        uint32_t pid;
        uint32_t tid;
        uint64_t offset;
        uint64_t n_bytes;
        uint64_t n_handles;
        uint64_t n_fds;
        uint64_t n_secctx;
} ProtoMessage;

typedef struct ProtoEntry {
        uint64_t entry_id;              /* ENTRY: >= 1; RECV reply: 0 for the seed */
        ProtoMessage msg;               /* flags: PROTO_MSG_FLAG_SYNC in ENTRY only */
} ProtoEntry;

typedef struct ProtoRetract {
        uint64_t entry_id;
        uint64_t flags;                 /* PROTO_RETRACT_FLAG_* */
} ProtoRetract;

typedef struct ProtoReply {
        uint64_t cookie;
        uint32_t error;
} ProtoReply;

typedef struct ProtoReplyHello {
        uint64_t cookie;
        uint32_t error;
        uint32_t version;
        uint64_t peer_id;
        uint64_t pool_size;
        uint32_t user_max_handles;      /* bounds a SEND's destinations and NODES_DESTROY */
} ProtoReplyHello;

typedef struct ProtoReplyPeerQuery {
        uint64_t cookie;
        uint32_t error;
        uint64_t flags;                 /* always 0 */
        uint64_t peer_flags;
        uint32_t max_slices;
        uint32_t max_handles;
        uint32_t max_inflight_bytes;
        uint32_t max_inflight_fds;
} ProtoReplyPeerQuery;

typedef struct ProtoReplyHandleTransfer {
        uint64_t cookie;
        uint32_t error;
        uint64_t dst_handle;
} ProtoReplyHandleTransfer;

typedef struct ProtoReplySend {
        uint64_t cookie;
        uint32_t error;
        uint64_t n_errors;
        const void *errors;             /* le64[n_errors] in the buffer */
} ProtoReplySend;

typedef struct ProtoReplyRecv {
        uint64_t cookie;
        uint32_t error;
        ProtoEntry entry;
} ProtoReplyRecv;

/* STATUS, PEERS, PEER, QUOTA, METRICS */
typedef struct ProtoCtl {
        uint16_t type;                  /* PROTO_TYPE_CTL_* but MONITOR */
        uint64_t cookie;
        uint64_t flags;                 /* METRICS: PROTO_CTL_METRICS_FLAGS; else 0 */
        uint64_t arg;                   /* PEER: peer ID; QUOTA: UID or PROTO_CTL_UID_ALL */
} ProtoCtl;

typedef struct ProtoCtlMonitor {
        uint64_t cookie;
        uint64_t flags;
        uint64_t types;                 /* 0: all */
        uint64_t peer;                  /* 0: any */
        uint64_t node;                  /* 0: any */
        uint32_t uid;                   /* PROTO_CTL_UID_ANY: any */
} ProtoCtlMonitor;

typedef struct ProtoReplyCtl {
        uint64_t cookie;
        uint32_t error;
        uint32_t format;                /* PROTO_CTL_FORMAT_* */
        uint32_t flags;                 /* PROTO_CTL_REPLY_FLAG_* */
        uint64_t n_bytes;
} ProtoReplyCtl;

typedef struct ProtoCtlData {
        uint64_t cookie;                /* the control request's */
        uint32_t n_bytes;
        const void *bytes;              /* in the buffer */
} ProtoCtlData;

typedef struct ProtoEvent {
        uint64_t seq;
        uint64_t time;
        uint32_t type;
        uint32_t error;
        uint64_t peer;
        uint32_t uid;
        uint32_t pid;
        uint64_t target;
        uint32_t target_uid;
        uint32_t target_pid;
        uint64_t node;
        uint64_t n_bytes;
        uint32_t n_handles;
        uint32_t n_fds;
        uint64_t count;
        uint64_t message;
} ProtoEvent;

typedef struct ProtoEvents {
        uint32_t n_events;
        const void *events;             /* ProtoWireEvent[n_events] in the buffer, checked;
                                           read with proto_event_at() */
} ProtoEvents;

/*
 * What proto_encode_send() sends. Arrays are in host order. @vecs is read
 * only with PROTO_PAYLOAD_INLINE (n_bytes is their total), @n_bytes and
 * @memfd_offset only with PROTO_PAYLOAD_MEMFD.
 */
typedef struct ProtoSendArgs {
        uint64_t cookie;
        uint64_t flags;
        const uint64_t *destinations;
        size_t n_destinations;
        const uint64_t *handles;
        size_t n_handles;
        size_t n_fds;
        uint32_t payload_mode;
        const struct iovec *vecs;
        size_t n_vecs;
        uint64_t n_bytes;
        uint64_t memfd_offset;
} ProtoSendArgs;

/**
 * proto_u64_at() - read entry @i of a little-endian u64 array
 * @array:      array inside a decoded record (need not be aligned)
 * @i:          index, below the count the decoder checked
 *
 * Return: the entry in host byte order.
 */
static inline uint64_t proto_u64_at(const void *array, size_t i) {
        uint64_t v;

        memcpy(&v, (const uint8_t *)array + i * sizeof(v), sizeof(v));
        return le64toh(v);
}

/**
 * proto_u32_at() - read entry @i of a little-endian u32 array
 * @array:      array inside a decoded record (need not be aligned)
 * @i:          index, below the count the decoder checked
 *
 * Return: the entry in host byte order.
 */
static inline uint32_t proto_u32_at(const void *array, size_t i) {
        uint32_t v;

        memcpy(&v, (const uint8_t *)array + i * sizeof(v), sizeof(v));
        return le32toh(v);
}

/**
 * proto_s32_at() - read entry @i of a little-endian s32 array
 * @array:      array inside a decoded record, such as ProtoSliceFds.fds
 * @i:          index, below the count the decoder checked
 *
 * Return: the entry in host byte order, as the signed value it encodes.
 */
static inline int32_t proto_s32_at(const void *array, size_t i) {
        return (int32_t)proto_u32_at(array, i);
}

/**
 * proto_error_is_fatal() - tell a protocol violation from an answerable error
 * @r:          return value of a proto_decode_*() function
 *
 * Return: true if @r means the connection must be closed (-EBADMSG), false
 *         for success and for argument errors that get a REPLY.
 */
static inline bool proto_error_is_fatal(int r) {
        return r == -EBADMSG;
}

/* fds a decoded record comes with (carriers included) */
/* destination IDs a SEND record carries: none when the array was unreadable */
static inline uint32_t proto_send_n_destination_ids(uint64_t flags, uint32_t n_destinations) {
        return (flags & PROTO_SEND_FLAG_DESTINATIONS_EFAULT) ? 0 : n_destinations;
}

static inline size_t proto_send_n_fds(const ProtoSend *send_req) {
        return (size_t)send_req->n_fds + (send_req->payload_mode == PROTO_PAYLOAD_MEMFD);
}

static inline size_t proto_handle_transfer_n_fds(const ProtoHandleTransfer *transfer) {
        return transfer->dst_mode == PROTO_DST_FD;
}

/* size helpers */
int proto_size_nodes_destroy(size_t *sizep, uint64_t n_nodes);
int proto_size_slice_fds(size_t *sizep, uint64_t n_fds);
int proto_size_send(size_t *sizep, uint64_t n_destinations, uint64_t n_handles,
                    uint32_t payload_mode, uint64_t n_bytes);
int proto_size_reply_send(size_t *sizep, uint64_t n_errors);
int proto_size_ctl_data(size_t *sizep, uint64_t n_bytes);
int proto_size_events(size_t *sizep, uint64_t n_events);

/* decoding */
int proto_decode_header(ProtoHeader *hdrp, const void *buf, size_t len);
int proto_check_request_type(uint16_t type);

int proto_decode_hello(ProtoHello *hellop, const void *buf, size_t len, size_t n_fds);
int proto_decode_fds(ProtoFds *fdsp, const void *buf, size_t len, size_t n_fds);
int proto_decode_ack(ProtoAck *ackp, const void *buf, size_t len, size_t n_fds);
int proto_decode_peer_disconnect(ProtoPeerDisconnect *disconnectp, const void *buf, size_t len,
                                 size_t n_fds);
int proto_decode_peer_query(ProtoPeerQuery *queryp, const void *buf, size_t len, size_t n_fds);
int proto_decode_peer_reset(ProtoPeerReset *resetp, const void *buf, size_t len, size_t n_fds);
int proto_decode_handle_release(ProtoHandleRelease *releasep, const void *buf, size_t len,
                                size_t n_fds);
int proto_decode_handle_transfer(ProtoHandleTransfer *transferp, const void *buf, size_t len,
                                 size_t n_fds);
int proto_decode_nodes_destroy(ProtoNodesDestroy *destroyp, const void *buf, size_t len,
                               size_t n_fds);
int proto_decode_slice_release(ProtoSliceRelease *releasep, const void *buf, size_t len,
                               size_t n_fds);
int proto_decode_slice_fds(ProtoSliceFds *slice_fdsp, const void *buf, size_t len,
                           size_t n_fds);
int proto_decode_send(ProtoSend *sendp, const void *buf, size_t len, size_t n_fds);
int proto_decode_recv(ProtoRecv *recvp, const void *buf, size_t len, size_t n_fds);

int proto_decode_reply(ProtoReply *replyp, const void *buf, size_t len, size_t n_fds);
int proto_decode_reply_hello(ProtoReplyHello *replyp, const void *buf, size_t len, size_t n_fds);
int proto_decode_reply_peer_query(ProtoReplyPeerQuery *replyp, const void *buf, size_t len,
                                  size_t n_fds);
int proto_decode_reply_handle_transfer(ProtoReplyHandleTransfer *replyp, const void *buf,
                                       size_t len, size_t n_fds);
int proto_decode_reply_send(ProtoReplySend *replyp, const void *buf, size_t len, size_t n_fds);
int proto_decode_reply_recv(ProtoReplyRecv *replyp, const void *buf, size_t len, size_t n_fds);
int proto_decode_entry(ProtoEntry *entryp, const void *buf, size_t len, size_t n_fds);
int proto_decode_retract(ProtoRetract *retractp, const void *buf, size_t len, size_t n_fds);
int proto_decode_wake(const void *buf, size_t len, size_t n_fds);
int proto_decode_resync(const void *buf, size_t len, size_t n_fds);

int proto_decode_ctl(ProtoCtl *ctlp, const void *buf, size_t len, size_t n_fds);
int proto_decode_ctl_monitor(ProtoCtlMonitor *monitorp, const void *buf, size_t len,
                             size_t n_fds);
int proto_decode_reply_ctl(ProtoReplyCtl *replyp, const void *buf, size_t len, size_t n_fds);
int proto_decode_ctl_data(ProtoCtlData *datap, const void *buf, size_t len, size_t n_fds);
int proto_decode_events(ProtoEvents *eventsp, const void *buf, size_t len, size_t n_fds);
void proto_event_at(ProtoEvent *eventp, const ProtoEvents *events, size_t i);

/* encoding: each returns the record size or a negative errno */
int proto_encode_hello(void *buf, size_t cap, const ProtoHello *hello);
int proto_encode_fds(void *buf, size_t cap, const ProtoFds *fds);
int proto_encode_ack(void *buf, size_t cap, const ProtoAck *ack);
int proto_encode_peer_disconnect(void *buf, size_t cap, const ProtoPeerDisconnect *disconnect);
int proto_encode_peer_query(void *buf, size_t cap, const ProtoPeerQuery *query);
int proto_encode_peer_reset(void *buf, size_t cap, const ProtoPeerReset *reset);
int proto_encode_handle_release(void *buf, size_t cap, const ProtoHandleRelease *release);
int proto_encode_handle_transfer(void *buf, size_t cap, const ProtoHandleTransfer *transfer);
int proto_encode_nodes_destroy(void *buf, size_t cap, uint64_t cookie, uint64_t flags,
                               const uint64_t *ids, size_t n_ids);
int proto_encode_slice_release(void *buf, size_t cap, const ProtoSliceRelease *release);
int proto_encode_slice_fds(void *buf, size_t cap, uint64_t cookie, uint64_t offset,
                           const int *fds, size_t n_fds);
int proto_encode_send(void *buf, size_t cap, const ProtoSendArgs *args);
int proto_encode_recv(void *buf, size_t cap, const ProtoRecv *recv_req);

int proto_encode_reply(void *buf, size_t cap, const ProtoReply *reply);
int proto_encode_reply_hello(void *buf, size_t cap, const ProtoReplyHello *reply);
int proto_encode_reply_peer_query(void *buf, size_t cap, const ProtoReplyPeerQuery *reply);
int proto_encode_reply_handle_transfer(void *buf, size_t cap,
                                       const ProtoReplyHandleTransfer *reply);
int proto_encode_reply_send(void *buf, size_t cap, uint64_t cookie, const uint64_t *errors,
                            size_t n_errors);
int proto_encode_reply_recv(void *buf, size_t cap, const ProtoReplyRecv *reply);
int proto_encode_entry(void *buf, size_t cap, const ProtoEntry *entry);
int proto_encode_retract(void *buf, size_t cap, const ProtoRetract *retract);
int proto_encode_wake(void *buf, size_t cap);
int proto_encode_resync(void *buf, size_t cap);

int proto_encode_ctl(void *buf, size_t cap, const ProtoCtl *ctl);
int proto_encode_ctl_monitor(void *buf, size_t cap, const ProtoCtlMonitor *monitor);
int proto_encode_reply_ctl(void *buf, size_t cap, const ProtoReplyCtl *reply);
int proto_encode_ctl_data(void *buf, size_t cap, uint64_t cookie, const void *bytes,
                          size_t n_bytes);
int proto_encode_events(void *buf, size_t cap, const ProtoEvent *events, size_t n_events);
