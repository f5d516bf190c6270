/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Handle: one peer's reference to a node, and the peer's handle table
 *
 * Invariants (checked by the tests' consistency checker):
 *  - a peer holds at most one handle per node (handles_by_node is keyed by
 *    the node), and each handle is in both of its holder's trees;
 *  - an assigned ID is `(n << 3) | MANAGED | REMOTE-if-not-owner` with n
 *    taken from a counter that only grows, so no assigned ID is reused;
 *  - a handle exists iff n_user + n_inflight > 0, except for the instant
 *    between handle_new() and the first acquire;
 *  - a handle is in its holder's table iff it has user references (or is
 *    new); one released to zero that queued entries still carry is
 *    detached until received again;
 *  - holder->n_handle_refs is the sum of n_user + n_inflight over the
 *    holder's handles, and node->n_user_refs the same sum over the node's;
 *  - a live node's owner handle has n_user >= 1 (the pin);
 *  - a handle's NODE_DESTROY is queued only on its holder's queue, and is
 *    removed when the handle goes away.
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include "bus1/uapi.h"
#include "bus/handle.h"
#include "bus/node.h"
#include "bus/peer.h"
#include "bus/user.h"

static int handle_compare_id(const RBNode *n, const void *key) {
        const Handle *handle = container_of(n, Handle, id_node);
        uint64_t id = *(const uint64_t *)key;

        if (id < handle->id)
                return -1;
        return id > handle->id;
}

static int handle_compare_node(const RBNode *n, const void *key) {
        const Handle *handle = container_of(n, Handle, node_node);
        uintptr_t node = (uintptr_t)key;

        if (node < (uintptr_t)handle->node)
                return -1;
        return node > (uintptr_t)handle->node;
}

/**
 * handle_is_owner() - whether a handle is its node's owner handle
 * @handle:     handle
 *
 * Return: true for the owner's handle.
 */
bool handle_is_owner(const Handle *handle) {
        return handle->node->owner_handle == handle;
}

/* the next assigned ID of @holder for a handle to @node */
static uint64_t handle_next_id(Peer *holder, Node *node) {
        uint64_t id = (++holder->n_handle_ids << 3) | BUS1_HANDLE_FLAG_MANAGED;

        if (node->owner != holder)
                id |= BUS1_HANDLE_FLAG_REMOTE;
        return id;
}

/* put a handle into its holder's table, under its current ID */
static void handle_link(Handle *handle) {
        Peer *holder = handle->holder;
        RBNode **slot, *parent;

        slot = rbtree_find_slot(&holder->handles_by_id, handle_compare_id, &handle->id,
                                &parent);
        assert(slot);
        rbtree_add(&holder->handles_by_id, parent, slot, &handle->id_node);

        slot = rbtree_find_slot(&holder->handles_by_node, handle_compare_node, handle->node,
                                &parent);
        assert(slot);
        rbtree_add(&holder->handles_by_node, parent, slot, &handle->node_node);
        ++holder->n_handles;
}

/* take a handle out of its holder's table: its ID and node slot are free */
static void handle_unlink(Handle *handle) {
        Peer *holder = handle->holder;

        if (!rbnode_is_linked(&handle->id_node))
                return;
        rbtree_remove(&holder->handles_by_id, &handle->id_node);
        rbtree_remove(&holder->handles_by_node, &handle->node_node);
        --holder->n_handles;
}

/**
 * handle_is_detached() - whether a handle only lives on for queued entries
 * @handle:     handle
 *
 * A handle released to zero user references while queued messages still
 * carry it leaves its holder's table: its ID is gone (an owner-chosen one
 * can name a new node) and a handle arriving for the node meanwhile is a new
 * one with a fresh ID. Receiving such an entry reattaches it
 * (handle_receive()).
 *
 * Return: true if detached.
 */
bool handle_is_detached(const Handle *handle) {
        return !rbnode_is_linked(&handle->id_node);
}

/**
 * handle_receive() - a received handle entry becomes a user reference
 * @handle:     the entry's handle, with an in-flight reference
 *
 * The in-flight reference turns into a user reference. If the holder had
 * released the handle to zero meanwhile (it is detached), the reference
 * goes to the handle the holder now has for the node, or else the detached
 * handle comes back with a fresh ID, as a handle received after a full
 * release must. Counts that matter for limits and NODE_RELEASE do not
 * change. Never fails.
 *
 * Return: the handle the holder now has (its ID is what the entry reports).
 */
Handle *handle_receive(Handle *handle) {
        Handle *current;

        if (!handle_is_detached(handle)) {
                handle_inflight_to_user(handle, 1);
                return handle;
        }

        current = handle_find_by_node(handle->holder, handle->node);
        if (current) {
                --handle->n_inflight;
                ++current->n_user;
                handle_maybe_free(handle);
                return current;
        }

        handle->id = handle_next_id(handle->holder, handle->node);
        handle_link(handle);
        handle_inflight_to_user(handle, 1);
        return handle;
}

/**
 * handle_peek() - the handle a received entry would give its holder
 * @handle:     the entry's handle
 *
 * What handle_receive() will hand the holder, without moving the reference:
 * for a detached handle, the holder's current handle to the node if it has
 * one; otherwise the detached handle comes back now under a fresh ID, with
 * only in-flight references (like a handle a send created for a receiver),
 * so that a PEEK reports the ID the dequeuing RECV will.
 *
 * Return: the handle whose ID the entry reports.
 */
Handle *handle_peek(Handle *handle) {
        Handle *current;

        if (!handle_is_detached(handle))
                return handle;
        current = handle_find_by_node(handle->holder, handle->node);
        if (current)
                return current;
        handle->id = handle_next_id(handle->holder, handle->node);
        handle_link(handle);
        return handle;
}

/**
 * handle_find() - look a handle up by ID
 * @peer:       holder
 * @id:         handle ID
 *
 * This finds handles with only in-flight references too; callers acting on
 * behalf of the peer check n_user.
 *
 * Return: the handle, or NULL. O(log n).
 */
Handle *handle_find(Peer *peer, uint64_t id) {
        return rbnode_entry(rbtree_find(&peer->handles_by_id, handle_compare_id, &id),
                            Handle, id_node);
}

/**
 * handle_find_by_node() - the handle a peer holds to a node
 * @peer:       holder
 * @node:       node
 *
 * Return: the handle, or NULL. O(log n).
 */
Handle *handle_find_by_node(Peer *peer, Node *node) {
        return rbnode_entry(rbtree_find(&peer->handles_by_node, handle_compare_node, node),
                            Handle, node_node);
}

/**
 * handle_new() - create a handle and link it into the holder's table
 * @handlep:    out: the new handle, with no references yet
 * @holder:     peer that will hold it
 * @node:       node it refers to (gets a reference)
 * @id:         owner-chosen ID, or BUS1_HANDLE_INVALID to assign one
 *
 * The caller guarantees that @holder holds no handle to @node and, for an
 * owner-chosen @id, that the ID is free. The caller must acquire a reference
 * right away; a handle without references is freed by handle_maybe_free().
 *
 * Return: 0, or -ENOMEM.
 */
int handle_new(Handle **handlep, Peer *holder, Node *node, uint64_t id) {
        Handle *handle;

        handle = calloc(1, sizeof(*handle));
        if (!handle)
                return -ENOMEM;

        if (id == BUS1_HANDLE_INVALID)
                id = handle_next_id(holder, node);

        handle->holder = holder;
        handle->node = node_ref(node);
        handle->id = id;
        rbnode_init(&handle->id_node);
        rbnode_init(&handle->node_node);
        list_init(&handle->node_link);
        queue_entry_init(&handle->destroy, QUEUE_ENTRY_NODE_DESTROY);

        list_link_tail(&node->handles, &handle->node_link);
        handle_link(handle);

        *handlep = handle;
        return 0;
}

/**
 * handle_get() - the holder's handle to a node, created if needed
 * @handlep:    out: the handle
 * @holder:     peer
 * @node:       node
 *
 * A new handle gets an assigned ID (an owner getting its own node back finds
 * its owner handle, as long as that exists). The caller acquires a
 * reference right away.
 *
 * Return: 0, or -ENOMEM.
 */
int handle_get(Handle **handlep, Peer *holder, Node *node) {
        Handle *handle;

        handle = handle_find_by_node(holder, node);
        if (handle) {
                *handlep = handle;
                return 0;
        }
        return handle_new(handlep, holder, node, BUS1_HANDLE_INVALID);
}

/**
 * handle_free() - unlink and free a handle
 * @handle:     handle with no references left
 *
 * Removes its pending NODE_DESTROY and drops its node reference. When the
 * owner handle goes, the node forgets it.
 */
void handle_free(Handle *handle) {
        Peer *holder = handle->holder;
        Node *node = handle->node;

        assert(!handle->n_user && !handle->n_inflight);

        queue_remove(&holder->queue, &handle->destroy);
        handle_unlink(handle);
        list_unlink(&handle->node_link);

        if (node->owner_handle == handle)
                node->owner_handle = NULL;

        free(handle);
        node_unref(node);
}

/**
 * handle_maybe_free() - free a handle that has no references left
 * @handle:     handle
 */
void handle_maybe_free(Handle *handle) {
        if (!handle->n_user && !handle->n_inflight)
                handle_free(handle);
}

/**
 * handle_acquire() - add user references
 * @handle:     handle
 * @n:          number of references
 *
 * The caller has checked the holder's handle limit. Raising the node's count
 * may withdraw a pending NODE_RELEASE.
 */
void handle_acquire(Handle *handle, uint64_t n) {
        if (!n)
                return;
        handle->n_user += n;
        handle->holder->n_handle_refs += n;
        user_add(handle->holder->user, USER_HANDLES, n);
        node_refs_add(handle->node, n);
}

/**
 * handle_release() - drop user references
 * @handle:     handle, with at least @n user references
 * @n:          number of references
 * @seq:        sequence number of the transaction (for NODE_RELEASE)
 *
 * When the last user reference goes, a pending NODE_DESTROY is dropped (the
 * holder never sees it), and if this was the owner handle of a destroyed
 * node, so is every message still queued for the node. The handle is freed
 * if no in-flight reference keeps it. The handle may be gone on return.
 */
void handle_release(Handle *handle, uint64_t n, uint64_t seq) {
        Node *node = handle->node;

        assert(handle->n_user >= n);
        if (!n)
                return;

        handle->n_user -= n;
        handle->holder->n_handle_refs -= n;
        user_sub(handle->holder->user, USER_HANDLES, n);
        node_ref(node);

        if (!handle->n_user) {
                queue_remove(&handle->holder->queue, &handle->destroy);
                if (node->owner_handle == handle) {
                        /*
                         * Only a destroyed node's owner handle gets here: the
                         * owner released every handle to it, so nothing more
                         * is delivered for it. The messages dropped may carry
                         * this very handle; a guard reference keeps it.
                         */
                        node->owner_handle = NULL;
                        ++handle->n_inflight;
                        node_drop_messages(node, seq);
                        --handle->n_inflight;
                }
                /* queued entries keep it alive, but its ID is gone */
                if (handle->n_inflight) {
                        handle_unlink(handle);
                        ++handle->holder->n_detached;
                }
        }

        /* the node's count falls after the handle's state is final */
        node_refs_sub(node, n, seq);
        handle_maybe_free(handle);
        node_unref(node);
}

/**
 * handle_acquire_inflight() - add references for queued handle entries
 * @handle:     handle
 * @n:          number of references
 */
void handle_acquire_inflight(Handle *handle, uint64_t n) {
        if (!n)
                return;
        handle->n_inflight += n;
        handle->holder->n_handle_refs += n;
        user_add(handle->holder->user, USER_HANDLES, n);
        node_refs_add(handle->node, n);
}

/**
 * handle_release_inflight() - drop references of dropped handle entries
 * @handle:     handle, with at least @n in-flight references
 * @n:          number of references
 * @seq:        sequence number of the transaction (for NODE_RELEASE)
 *
 * The handle may be gone on return.
 */
void handle_release_inflight(Handle *handle, uint64_t n, uint64_t seq) {
        Node *node = handle->node;

        assert(handle->n_inflight >= n);
        if (!n)
                return;

        handle->n_inflight -= n;
        handle->holder->n_handle_refs -= n;
        user_sub(handle->holder->user, USER_HANDLES, n);

        node_ref(node);
        node_refs_sub(node, n, seq);
        handle_maybe_free(handle);
        node_unref(node);
}

/**
 * handle_inflight_to_user() - turn in-flight references into user references
 * @handle:     handle, with at least @n in-flight references
 * @n:          number of references
 *
 * This is what receiving a message does: the counts that matter for limits
 * and for NODE_RELEASE do not change.
 */
void handle_inflight_to_user(Handle *handle, uint64_t n) {
        assert(handle->n_inflight >= n);
        handle->n_inflight -= n;
        handle->n_user += n;
}
