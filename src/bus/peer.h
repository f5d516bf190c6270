/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Peer: the anchor of a set of nodes and handles, one queue and one pool
 *
 * A peer is created for each connection and lives as long as it. Its
 * operations are the bus1 commands (peer_*() here, peer_send() in tx.h);
 * each takes validated arguments and returns 0 or a negative errno from
 * docs/model.md §9, and queues whatever entries it causes. None of them does
 * socket I/O.
 *
 * After peer_disconnect() the peer holds nothing (no node, handle, queued
 * entry or slice) and every operation fails with -ESHUTDOWN; the object
 * stays until its connection is closed (peer_free()).
 */

#include <stdbool.h>
#include <stdint.h>
#include "bus/message.h"
#include "bus/pool.h"
#include "bus/queue.h"
#include "bus/user.h"
#include "util/list.h"
#include "util/macro.h"
#include "util/rbtree.h"

typedef struct Bus Bus;
typedef struct FdList FdList;
typedef struct Peer Peer;

/* the limits of PEER_QUERY / PEER_RESET */
typedef struct PeerLimits {
        uint32_t max_slices;
        uint32_t max_handles;
        uint32_t max_inflight_bytes;
        uint32_t max_inflight_fds;
} PeerLimits;

#define PEER_LIMIT_MAX ((uint32_t)INT32_MAX)
#define PEER_LIMIT_KEEP UINT32_MAX

struct Peer {
        Bus *bus;
        User *user;             /* the UID it connected with; charged for it */
        uint64_t id;            /* bus-unique, for introspection only */
        List bus_link;          /* in bus->peers */
        List user_link;         /* in user->peers */
        PeerCreds creds;
        char *secctx;           /* security context (SO_PEERSEC), may be NULL */
        uint64_t n_secctx;
        bool disconnected;

        uint64_t peer_flags;    /* BUS1_PEER_FLAG_* */
        PeerLimits limits;

        RBTree handles_by_id;
        RBTree handles_by_node;
        uint64_t n_handle_ids;  /* last n of an assigned ID (n << 3) */
        uint64_t n_handles;     /* Handle objects */
        uint64_t n_handle_refs; /* user + in-flight references: the handle limit */
        uint64_t n_handle_reserved; /* references a send in progress will add */
        uint64_t n_inflight_fds;
        List nodes;             /* nodes owned that still exist, live or destroyed */
        uint64_t n_nodes;       /* live nodes owned */
        uint64_t n_destroyed_nodes; /* destroyed ones still on `nodes` */
        uint64_t n_detached;    /* times a handle queued entries carry was released */

        Queue queue;
        Pool pool;
        Message *seed;
        uint64_t drain_seq;     /* the send that last drained this peer (tx.c) */
        void *userdata;         /* the I/O layer's (its Connection) */
};

/* what a RECV reports; fds are handed over only by a dequeuing INSTALL_FDS */
typedef struct PeerRecv {
        uint64_t type;
        uint64_t flags;
        uint64_t destination;
        PeerCreds creds;
        uint64_t offset;
        uint64_t n_bytes;
        uint64_t n_handles;
        uint64_t n_fds;
        uint64_t n_secctx;
        uint64_t entry_id;
        FdList *fds;            /* owned by the caller, if set */
} PeerRecv;

int peer_new(Peer **peerp, Bus *bus, const PeerCreds *creds);
Peer *peer_free(Peer *peer);
DEFINE_CLEANUP(Peer *, peer_free);

int peer_disconnect(Peer *peer);
int peer_query(Peer *peer, uint64_t flags, uint64_t *peer_flagsp, PeerLimits *limitsp);
int peer_reset(Peer *peer, uint64_t flags, uint64_t peer_flags, const PeerLimits *limits);
int peer_handle_release(Peer *peer, uint64_t id);
int peer_handle_transfer(Peer *peer, uint64_t flags, uint64_t src_id, Peer *dst,
                         uint64_t *dst_idp);
int peer_nodes_destroy(Peer *peer, uint64_t flags, const uint64_t *ids, uint64_t n_ids);
int peer_slice_release(Peer *peer, uint64_t offset);
int peer_recv(Peer *peer, uint64_t flags, uint64_t max_offset, PeerRecv *recvp);
void peer_recv_deinit(PeerRecv *recv);
FdList *peer_recv_fds(Peer *peer, uint64_t flags, uint64_t *entry_idp);
void peer_describe_entry(Peer *peer, QueueEntry *entry, PeerRecv *recvp);
bool peer_entry_needs_sync(Peer *peer, QueueEntry *entry);

/* internal helpers shared by the model's modules */
int peer_resolve(Peer *peer, uint64_t id, Handle **handlep, List *staged);
void peer_unstage(Peer *peer, List *staged);
void peer_commit_staged(List *staged);
int peer_check_handles(Peer *peer, uint64_t n);
int peer_check_charge(Peer *peer, uint32_t actor, const uint64_t charge[_USER_N]);
