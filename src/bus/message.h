/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Message: one delivery of a transaction's payload to one receiving peer
 *
 * A send creates one Message per destination node (and a seed is a Message
 * the peer keeps for itself). The message owns its slice in the receiver's
 * pool until it is received; from then on the slice belongs to the peer
 * until SLICE_RELEASE. It holds one in-flight reference on the receiver's
 * handle for each handle entry it carries (NULL for entries that arrive as
 * BUS1_HANDLE_INVALID) and a reference on the shared FdList.
 *
 * Slice layout (offsets from the slice start, all 8-byte aligned):
 * payload at 0, handle IDs (u64) at ALIGN8(n_bytes), fd numbers (int) at
 * + ALIGN8(8 * n_handles), security context at + ALIGN8(4 * n_fds).
 */

#include <stdbool.h>
#include <stdint.h>
#include "bus/queue.h"
#include "util/list.h"

typedef struct FdList FdList;
typedef struct Handle Handle;
typedef struct Message Message;
typedef struct Node Node;
typedef struct Peer Peer;
typedef struct PoolSlice PoolSlice;

/* credentials of the sending peer, as read from SO_PEERCRED at connect */
typedef struct PeerCreds {
        uint32_t uid;
        uint32_t gid;
        uint32_t pid;
        uint32_t tid;
} PeerCreds;

struct Message {
        QueueEntry entry;       /* in receiver->queue (not for the seed) */
        uint64_t id;            /* bus-unique, from Bus.n_message_ids when queued; 0: seed */
        Peer *receiver;
        Node *node;             /* destination node (pinned), NULL for the seed */
        List node_link;         /* in node->messages */
        uint64_t destination;   /* receiver's ID of the destination node */
        PoolSlice *slice;       /* owned until received */
        uint64_t n_bytes;
        uint64_t n_secctx;
        uint64_t secctx_at;     /* where the secctx sits in the slice now */
        FdList *fds;
        PeerCreds creds;
        uint64_t sender_id;     /* the sending peer's ID, for introspection */
        uint32_t actor;         /* UID of the sender, who holds a share */
        bool reusable;          /* allocated without handle slots: may be cached */
        uint64_t share[4];      /* the share (USER_*), returned at dequeue */
        uint64_t n_handles;
        Handle *handles[];      /* receiver's handles, NULL = INVALID */
};

/* size of the slice a message needs, or UINT64_MAX on overflow */
uint64_t message_slice_size(uint64_t n_bytes, uint64_t n_handles, uint64_t n_fds,
                            uint64_t n_secctx);
/* offset of the fd area in a slice */
uint64_t message_fd_offset(uint64_t n_bytes, uint64_t n_handles);

int message_new(Message **messagep, Peer *receiver, uint64_t n_handles);
void message_free(Message *message, uint64_t seq);
uint64_t message_n_fds(const Message *message);
