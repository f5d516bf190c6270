/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Handle: one peer's reference to a node, and the peer's handle table
 *
 * A peer never holds two handles to one node: the table is indexed both by
 * ID and by node, so a handle passed to a peer that already holds one adds a
 * reference to the existing handle. IDs are either owner-chosen (MANAGED and
 * REMOTE clear; only owner handles) or broker-assigned as
 * `(n << 3) | MANAGED | REMOTE-if-not-owner` from a per-peer counter that is
 * never reset, so assigned IDs are never reused.
 *
 * A handle has user references (the holder's own: from creating the node,
 * transfers, and received messages) and in-flight references (handle
 * entries of messages queued to the holder, and of its seed). It exists
 * while either count is non-zero. Operations by ID only see handles with
 * user references; a handle that only has in-flight references keeps its ID
 * for the message that will revive it.
 */

#include <stdbool.h>
#include <stdint.h>
#include "bus/queue.h"
#include "util/list.h"
#include "util/rbtree.h"

typedef struct Handle Handle;
typedef struct Node Node;
typedef struct Peer Peer;

struct Handle {
        Peer *holder;
        Node *node;
        uint64_t id;
        RBNode id_node;         /* in holder->handles_by_id */
        RBNode node_node;       /* in holder->handles_by_node */
        List node_link;         /* in node->handles */
        uint64_t n_user;        /* user references */
        uint64_t n_inflight;    /* references of queued message entries */
        uint64_t mark;          /* transaction-local mark (duplicate checks) */
        Handle *stage_next;     /* in a send's list of handles it created */
        QueueEntry destroy;     /* NODE_DESTROY, queued on the holder */
};

static inline bool handle_id_is_managed(uint64_t id) {
        return id & 1;
}

static inline bool handle_id_is_new(uint64_t id) {
        return !(id & 3);
}

bool handle_is_owner(const Handle *handle);

Handle *handle_find(Peer *peer, uint64_t id);
Handle *handle_find_by_node(Peer *peer, Node *node);
int handle_new(Handle **handlep, Peer *holder, Node *node, uint64_t id);
int handle_get(Handle **handlep, Peer *holder, Node *node);
void handle_free(Handle *handle);

void handle_acquire(Handle *handle, uint64_t n);
void handle_release(Handle *handle, uint64_t n, uint64_t seq);
void handle_acquire_inflight(Handle *handle, uint64_t n);
void handle_release_inflight(Handle *handle, uint64_t n, uint64_t seq);
void handle_inflight_to_user(Handle *handle, uint64_t n);
void handle_maybe_free(Handle *handle);
bool handle_is_detached(const Handle *handle);
Handle *handle_receive(Handle *handle);
Handle *handle_peek(Handle *handle);
