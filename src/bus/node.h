/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Node: an object owned by exactly one peer, forever
 *
 * A node is reached through handles (see handle.h); the owner's handle is
 * created with the node. While the node is alive, the owner handle carries
 * one pinned user reference, which is why releasing it fails with EBUSY.
 *
 * Two counts are kept:
 *  - n_refs pins the object: one for each Handle that points at it and one
 *    for each queued message sent to it. The node is freed at zero.
 *  - n_user_refs is the sum of user and in-flight references of every handle
 *    to it (queued message handle entries included). NODE_RELEASE is about
 *    n_user_refs - 1 (the owner's pin excluded): when that falls to zero
 *    while the node is alive, a NODE_RELEASE is queued on the owner; when it
 *    rises again before the owner dequeued it, it is withdrawn.
 */

#include <stdbool.h>
#include <stdint.h>
#include "bus/queue.h"
#include "util/list.h"

typedef struct Handle Handle;
typedef struct Node Node;
typedef struct Peer Peer;

struct Node {
        uint64_t id;            /* bus-unique, never reused; for introspection only */
        uint64_t n_refs;        /* handles + queued messages to this node */
        uint64_t n_user_refs;   /* user + in-flight references of all handles */
        Peer *owner;            /* owning peer; NULL once the owner is gone */
        Handle *owner_handle;   /* the owner's handle; NULL once released */
        List owner_link;        /* in owner->nodes, live or destroyed, while owner is set */
        List handles;           /* every Handle to this node (holders) */
        List messages;          /* queued messages sent to this node */
        List stage_link;        /* in a transaction's list of new nodes */
        QueueEntry release;     /* NODE_RELEASE, queued on the owner */
        bool destroyed;
};

int node_new(Node **nodep, Peer *owner);
Node *node_ref(Node *node);
Node *node_unref(Node *node);

void node_refs_add(Node *node, uint64_t n);
void node_refs_sub(Node *node, uint64_t n, uint64_t seq);
void node_destroy(Node *node, uint64_t seq);
void node_drop_messages(Node *node, uint64_t seq);
