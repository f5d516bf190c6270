/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Node: an object owned by exactly one peer, forever
 *
 * Invariants:
 *  - a live node is on its owner's node list and has an owner handle with
 *    at least one user reference (the pin);
 *  - NODE_RELEASE is queued iff the node is alive and n_user_refs == 1
 *    (only the pin is left) and it fell there since the owner last
 *    dequeued it; NODE_RELEASE never stays queued on a destroyed node;
 *  - n_refs counts the Handle objects on node->handles plus the messages on
 *    node->messages, and the node is freed when it reaches zero.
 *
 * Destroying a node costs O(holders): one NODE_DESTROY per handle.
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include "bus/bus.h"
#include "bus/handle.h"
#include "bus/message.h"
#include "bus/node.h"
#include "bus/peer.h"

/**
 * node_new() - create a live node
 * @nodep:      out: the node, with one reference for the caller
 * @owner:      owning peer
 *
 * The caller creates the owner handle right after and then drops its own
 * reference.
 *
 * Return: 0, or -ENOMEM.
 */
int node_new(Node **nodep, Peer *owner) {
        Node *node;

        node = calloc(1, sizeof(*node));
        if (!node)
                return -ENOMEM;

        node->id = ++owner->bus->n_node_ids;
        node->n_refs = 1;
        node->owner = owner;
        list_init(&node->handles);
        list_init(&node->messages);
        list_init(&node->stage_link);
        queue_entry_init(&node->release, QUEUE_ENTRY_NODE_RELEASE);
        list_link_tail(&owner->nodes, &node->owner_link);
        ++owner->n_nodes;

        *nodep = node;
        return 0;
}

/**
 * node_ref() - take an object reference
 * @node:       node
 *
 * Return: @node.
 */
Node *node_ref(Node *node) {
        ++node->n_refs;
        return node;
}

/**
 * node_unref() - drop an object reference, freeing the node with the last
 * @node:       node, or NULL
 *
 * Return: NULL.
 */
Node *node_unref(Node *node) {
        if (!node || --node->n_refs > 0)
                return NULL;

        assert(list_is_empty(&node->handles));
        assert(list_is_empty(&node->messages));
        assert(!list_is_linked(&node->stage_link));

        if (node->owner) {
                queue_remove(&node->owner->queue, &node->release);
                list_unlink(&node->owner_link);
                if (node->destroyed)
                        --node->owner->n_destroyed_nodes;
                else
                        --node->owner->n_nodes;
        }
        assert(!queue_entry_is_queued(&node->release));
        free(node);
        return NULL;
}

/**
 * node_refs_add() - the node's reference count rises
 * @node:       node
 * @n:          how much
 *
 * A NODE_RELEASE the owner has not dequeued yet is withdrawn.
 */
void node_refs_add(Node *node, uint64_t n) {
        node->n_user_refs += n;
        if (node->n_user_refs > 1 && queue_entry_is_queued(&node->release))
                queue_remove(&node->owner->queue, &node->release);
}

/**
 * node_refs_sub() - the node's reference count falls
 * @node:       node
 * @n:          how much
 * @seq:        sequence number of the transaction causing it
 *
 * When nothing but the owner's pin is left on a live node, a NODE_RELEASE
 * is queued on the owner.
 */
void node_refs_sub(Node *node, uint64_t n, uint64_t seq) {
        assert(node->n_user_refs >= n);
        node->n_user_refs -= n;

        if (n && node->n_user_refs == 1 && !node->destroyed && node->owner &&
            !queue_entry_is_queued(&node->release)) {
                queue_push(&node->owner->queue, &node->release, seq);
                bus_observe(node->owner->bus, &(BusEvent){
                        .type = BUS_EVENT_RELEASE,
                        .seq = seq,
                        .peer = bus_event_peer(node->owner),
                        .target = bus_event_peer(NULL),
                        .node = node->id,
                });
        }
}

/**
 * node_destroy() - destroy a live node
 * @node:       node, alive
 * @seq:        sequence number of the destroying transaction
 *
 * Queues a NODE_DESTROY on every holder, owner included (not on holders
 * that released their handle to zero before), and withdraws a
 * pending NODE_RELEASE. The owner's pin becomes an ordinary reference. The
 * node stays on its owner's list until it is freed.
 */
void node_destroy(Node *node, uint64_t seq) {
        Handle *handle;

        assert(!node->destroyed && node->owner);
        node->destroyed = true;
        --node->owner->n_nodes;
        ++node->owner->n_destroyed_nodes;
        queue_remove(&node->owner->queue, &node->release);

        /*
         * A holder that released its handle to zero (detached, kept only by
         * queued entries) released it before this: it never sees it.
         */
        list_for_each_entry(handle, &node->handles, node_link)
                if (!handle_is_detached(handle))
                        queue_push(&handle->holder->queue, &handle->destroy, seq);

        bus_observe(node->owner->bus, &(BusEvent){
                .type = BUS_EVENT_DESTROY,
                .seq = seq,
                .peer = bus_event_peer(node->owner),
                .target = bus_event_peer(NULL),
                .node = node->id,
        });
}

/**
 * node_drop_messages() - drop every message still queued for a node
 * @node:       node
 * @seq:        sequence number of the transaction causing it
 *
 * Used once the owner of a destroyed node has released every handle to it:
 * nothing more is delivered for the node.
 */
void node_drop_messages(Node *node, uint64_t seq) {
        Message *message;

        node_ref(node);
        while ((message = list_entry(list_first(&node->messages), Message, node_link)))
                message_free(message, seq);
        node_unref(node);
}
