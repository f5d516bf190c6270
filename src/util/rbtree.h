/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Intrusive red-black tree
 *
 * An `RBNode` is embedded in the user's struct; an `RBTree` is the root. The
 * tree knows nothing of keys: callers find the slot with rbtree_find_slot()
 * (one descent serves both "find" and "insert"), then link the new node with
 * rbtree_add() at that slot. All operations are O(log n).
 *
 * A node that is not linked has its parent pointer pointing at itself
 * (RBNODE_INIT() / rbnode_init()), so rbnode_is_linked() works and
 * rbtree_remove() re-initialises the node.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/macro.h"

typedef struct RBNode RBNode;
typedef struct RBTree RBTree;

struct RBNode {
        uintptr_t __parent_and_color;   /* parent pointer | color bit (1 = black) */
        RBNode *left;
        RBNode *right;
};

struct RBTree {
        RBNode *root;
};

#define RBNODE_INIT(_var) { .__parent_and_color = (uintptr_t)&(_var) }
#define RBTREE_INIT { .root = NULL }

static inline void rbnode_init(RBNode *n) {
        *n = (RBNode){ .__parent_and_color = (uintptr_t)n };
}

static inline bool rbnode_is_linked(const RBNode *n) {
        return n->__parent_and_color != (uintptr_t)n;
}

static inline void rbtree_init(RBTree *t) {
        t->root = NULL;
}

static inline bool rbtree_is_empty(const RBTree *t) {
        return !t->root;
}

/* the parent of a linked node, NULL for the root */
RBNode *rbnode_parent(const RBNode *n);

RBNode *rbtree_first(const RBTree *t);
RBNode *rbtree_last(const RBTree *t);
RBNode *rbnode_next(const RBNode *n);
RBNode *rbnode_prev(const RBNode *n);

void rbtree_add(RBTree *t, RBNode *parent, RBNode **slot, RBNode *n);
void rbtree_remove(RBTree *t, RBNode *n);

/**
 * rbtree_validate() - check every red-black and linkage invariant
 * @t: tree to check
 *
 * Meant for tests: walks the whole tree.
 *
 * Return: number of nodes (>= 0) if the tree is valid, -1 if not.
 */
long rbtree_validate(const RBTree *t);

/* compare @key with the node; < 0 means key sorts before the node */
typedef int (*RBCompareFn)(const RBNode *n, const void *key);

/**
 * rbtree_find_slot() - find where a key is, or would be inserted
 * @t:          tree
 * @cmp:        comparator
 * @key:        key passed to @cmp
 * @parentp:    out: the parent for a later rbtree_add()
 *
 * Return: NULL if the key exists (then *parentp is the matching node),
 *         else the slot to pass to rbtree_add() together with *parentp.
 */
static inline RBNode **rbtree_find_slot(RBTree *t, RBCompareFn cmp, const void *key,
                                        RBNode **parentp) {
        RBNode **slot = &t->root, *parent = NULL;
        int c;

        while (*slot) {
                parent = *slot;
                c = cmp(parent, key);
                if (c < 0)
                        slot = &parent->left;
                else if (c > 0)
                        slot = &parent->right;
                else {
                        *parentp = parent;
                        return NULL;
                }
        }
        *parentp = parent;
        return slot;
}

/* find the node matching @key, or NULL */
static inline RBNode *rbtree_find(const RBTree *t, RBCompareFn cmp, const void *key) {
        RBNode *n = t->root;
        int c;

        while (n) {
                c = cmp(n, key);
                if (c < 0)
                        n = n->left;
                else if (c > 0)
                        n = n->right;
                else
                        return n;
        }
        return NULL;
}

#define rbnode_entry(_n, _type, _member) container_of_safe((_n), _type, _member)
