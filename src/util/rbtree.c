/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Intrusive red-black tree
 *
 * The tree is made of `RBNode`s embedded in the caller's objects and knows
 * nothing about keys: the caller descends with rbtree_find_slot() and hands the
 * resulting (parent, slot) pair to rbtree_add(). This file only restores the
 * red-black shape after a link or an unlink, and walks the tree in order.
 *
 * Invariants of a linked tree, all checked by rbtree_validate():
 *  - the root has no parent and is black;
 *  - every child's parent pointer names the node it hangs off;
 *  - a red node has no red child;
 *  - every path from a node down to a NULL leaf passes the same number of
 *    black nodes (the black height).
 * Together they bound the height to 2 * log2(n + 1), which is what makes
 * insert, remove, first/last and lookup O(log n).
 *
 * The parent pointer and the color share one word, `__parent_and_color`: an
 * RBNode holds pointers, so its address is at least pointer-aligned and bit 0
 * of a parent pointer is always free to hold the color (1 = black, 0 = red).
 * A node that is not in any tree stores its own address there (no color bit),
 * which no linked node can ever store, since a node is never its own parent.
 * rbtree_remove() restores that state so that unlinking twice is harmless.
 */

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/rbtree.h"

#define RBNODE_BLACK ((uintptr_t)1)
#define RBNODE_COLOR_MASK ((uintptr_t)1)

/*
 * A valid tree of n nodes is at most 2 * log2(n + 1) levels deep and n can
 * never exceed the address space, so anything deeper than twice the pointer
 * width is broken; rbtree_validate() gives up there instead of recursing on.
 */
#define RBTREE_DEPTH_MAX (2 * 8 * sizeof(void *))

static RBNode *rbnode_get_parent(const RBNode *n) {
        return (RBNode *)(n->__parent_and_color & ~RBNODE_COLOR_MASK);
}

/* NULL leaves count as black; that is what makes the rebalancing cases uniform */
static bool rbnode_is_black(const RBNode *n) {
        return !n || (n->__parent_and_color & RBNODE_BLACK);
}

static bool rbnode_is_red(const RBNode *n) {
        return !rbnode_is_black(n);
}

static void rbnode_set_parent_and_color(RBNode *n, RBNode *parent, bool black) {
        n->__parent_and_color = (uintptr_t)parent | (black ? RBNODE_BLACK : 0);
}

static void rbnode_set_parent(RBNode *n, RBNode *parent) {
        rbnode_set_parent_and_color(n, parent, rbnode_is_black(n));
}

static void rbnode_set_black(RBNode *n, bool black) {
        rbnode_set_parent_and_color(n, rbnode_get_parent(n), black);
}

/* make whatever pointed at @old (its parent's link, or the root) point at @new */
static void rbtree_replace_child(RBTree *t, RBNode *parent, RBNode *old, RBNode *new) {
        if (!parent)
                t->root = new;
        else if (parent->left == old)
                parent->left = new;
        else
                parent->right = new;
}

/*
 * Rotate @n down to the left: its right child takes its place and @n becomes
 * that child's left child. In-order sequence and colors are untouched; the
 * callers fix colors themselves because each case needs something different.
 */
static void rbtree_rotate_left(RBTree *t, RBNode *n) {
        RBNode *pivot = n->right, *parent = rbnode_get_parent(n);

        n->right = pivot->left;
        if (n->right)
                rbnode_set_parent(n->right, n);
        pivot->left = n;
        rbnode_set_parent(pivot, parent);
        rbtree_replace_child(t, parent, n, pivot);
        rbnode_set_parent(n, pivot);
}

/* mirror image of rbtree_rotate_left() */
static void rbtree_rotate_right(RBTree *t, RBNode *n) {
        RBNode *pivot = n->left, *parent = rbnode_get_parent(n);

        n->left = pivot->right;
        if (n->left)
                rbnode_set_parent(n->left, n);
        pivot->right = n;
        rbnode_set_parent(pivot, parent);
        rbtree_replace_child(t, parent, n, pivot);
        rbnode_set_parent(n, pivot);
}

static RBNode *rbnode_leftmost(RBNode *n) {
        while (n->left)
                n = n->left;
        return n;
}

static RBNode *rbnode_rightmost(RBNode *n) {
        while (n->right)
                n = n->right;
        return n;
}

/**
 * rbnode_parent() - parent of a node
 * @n:          node to query
 *
 * Return: the parent of @n, or NULL if @n is the root or is not linked.
 */
RBNode *rbnode_parent(const RBNode *n) {
        if (!rbnode_is_linked(n))
                return NULL;
        return rbnode_get_parent(n);
}

/**
 * rbtree_first() - leftmost (smallest) node of a tree
 * @t:          tree to query
 *
 * Return: the first node in order, or NULL if @t is empty.
 */
RBNode *rbtree_first(const RBTree *t) {
        return t->root ? rbnode_leftmost(t->root) : NULL;
}

/**
 * rbtree_last() - rightmost (largest) node of a tree
 * @t:          tree to query
 *
 * Return: the last node in order, or NULL if @t is empty.
 */
RBNode *rbtree_last(const RBTree *t) {
        return t->root ? rbnode_rightmost(t->root) : NULL;
}

/**
 * rbnode_next() - in-order successor
 * @n:          node to start from
 *
 * Amortised O(1) over a full walk, O(log n) worst case for a single step.
 *
 * Return: the node following @n, or NULL if @n is the last node or is not
 *         linked.
 */
RBNode *rbnode_next(const RBNode *n) {
        RBNode *parent;

        if (!rbnode_is_linked(n))
                return NULL;
        if (n->right)
                return rbnode_leftmost(n->right);

        /*
         * No right subtree: the successor is the first ancestor that we reach
         * from its left side, i.e. the first one that is still greater.
         */
        while ((parent = rbnode_get_parent(n)) && n == parent->right)
                n = parent;
        return parent;
}

/**
 * rbnode_prev() - in-order predecessor
 * @n:          node to start from
 *
 * Mirror image of rbnode_next().
 *
 * Return: the node preceding @n, or NULL if @n is the first node or is not
 *         linked.
 */
RBNode *rbnode_prev(const RBNode *n) {
        RBNode *parent;

        if (!rbnode_is_linked(n))
                return NULL;
        if (n->left)
                return rbnode_rightmost(n->left);

        while ((parent = rbnode_get_parent(n)) && n == parent->left)
                n = parent;
        return parent;
}

/*
 * Restore the invariants after @n was linked red. The only one that can be
 * broken is "no red node has a red child", between @n and its parent; each
 * round either fixes it for good or pushes it two levels up.
 */
static void rbtree_add_fixup(RBTree *t, RBNode *n) {
        RBNode *parent, *grandparent, *uncle;

        for (;;) {
                parent = rbnode_get_parent(n);
                if (!parent) {
                        /* painting the root black adds one to every path alike */
                        rbnode_set_black(n, true);
                        return;
                }
                if (rbnode_is_black(parent))
                        return;

                /* the parent is red, so it is not the root: a grandparent exists */
                grandparent = rbnode_get_parent(parent);
                uncle = (parent == grandparent->left) ? grandparent->right : grandparent->left;

                if (rbnode_is_red(uncle)) {
                        /*
                         * Move the grandparent's blackness down to both its
                         * children: black heights below are unchanged, but the
                         * now red grandparent may clash with its own parent.
                         */
                        rbnode_set_black(parent, true);
                        rbnode_set_black(uncle, true);
                        rbnode_set_black(grandparent, false);
                        n = grandparent;
                        continue;
                }

                /*
                 * Black uncle: rotations can finish the job. If @n is an inner
                 * grandchild, first rotate it into the outer position so that
                 * a single rotation at the grandparent suffices.
                 */
                if (parent == grandparent->left) {
                        if (n == parent->right) {
                                rbtree_rotate_left(t, parent);
                                parent = n;
                        }
                        rbtree_rotate_right(t, grandparent);
                } else {
                        if (n == parent->left) {
                                rbtree_rotate_right(t, parent);
                                parent = n;
                        }
                        rbtree_rotate_left(t, grandparent);
                }

                /*
                 * @parent now sits where the black grandparent was; keep that
                 * spot black and let the old grandparent, now its child, turn
                 * red, so every path keeps its black count.
                 */
                rbnode_set_black(parent, true);
                rbnode_set_black(grandparent, false);
                return;
        }
}

/**
 * rbtree_add() - link a node at a slot and rebalance
 * @t:          tree to link into
 * @parent:     parent returned by rbtree_find_slot(), NULL for an empty tree
 * @slot:       slot returned by rbtree_find_slot() (&@parent->left,
 *              &@parent->right, or &@t->root)
 * @n:          unlinked node to add
 *
 * The slot must be freshly obtained from rbtree_find_slot() on @t, with no
 * change to @t in between, because rebalancing moves other nodes around.
 */
void rbtree_add(RBTree *t, RBNode *parent, RBNode **slot, RBNode *n) {
        assert(!rbnode_is_linked(n));
        assert(slot && !*slot);
        assert(parent ? (slot == &parent->left || slot == &parent->right) : slot == &t->root);

        /* a new red leaf leaves every black height as it was */
        n->left = NULL;
        n->right = NULL;
        rbnode_set_parent_and_color(n, parent, false);
        *slot = n;

        rbtree_add_fixup(t, n);
}

/*
 * Restore the black heights after a black node was unlinked below @parent.
 * The subtree @n (possibly NULL) that took its place, on the side of @parent
 * it occupies, is one black node short of its sibling.
 */
static void rbtree_remove_fixup(RBTree *t, RBNode *parent, RBNode *n) {
        RBNode *sibling;

        /*
         * A red @n can simply turn black and absorb the missing black. At the
         * root nothing is missing: every path lost one black alike.
         */
        while (parent && rbnode_is_black(n)) {
                /*
                 * @n may be NULL, but then its sibling cannot be NULL (it has
                 * a black height of at least one), so comparing against the
                 * left link still tells the two sides apart.
                 */
                if (n == parent->left) {
                        sibling = parent->right;

                        if (rbnode_is_red(sibling)) {
                                /*
                                 * Make the sibling black by rotating it above
                                 * @parent; @n gets one of its black children
                                 * as new sibling, which the cases below handle.
                                 */
                                rbtree_rotate_left(t, parent);
                                rbnode_set_black(sibling, true);
                                rbnode_set_black(parent, false);
                                sibling = parent->right;
                        }

                        if (rbnode_is_black(sibling->left) && rbnode_is_black(sibling->right)) {
                                /*
                                 * Take one black off the sibling's side too,
                                 * so @parent's whole subtree is now short by
                                 * one; carry the deficit one level up.
                                 */
                                rbnode_set_black(sibling, false);
                                n = parent;
                                parent = rbnode_get_parent(n);
                                continue;
                        }

                        if (rbnode_is_black(sibling->right)) {
                                /* get a red child onto the far side for the final rotation */
                                rbtree_rotate_right(t, sibling);
                                rbnode_set_black(sibling, false);
                                sibling = parent->right;
                                rbnode_set_black(sibling, true);
                        }

                        /*
                         * The sibling moves up into @parent's place and color,
                         * @parent turns black on @n's side (the missing black)
                         * and the red far nephew turns black to keep the
                         * sibling's old side even.
                         */
                        rbtree_rotate_left(t, parent);
                        rbnode_set_black(sibling, rbnode_is_black(parent));
                        rbnode_set_black(parent, true);
                        rbnode_set_black(sibling->right, true);
                        return;
                } else {
                        sibling = parent->left;

                        if (rbnode_is_red(sibling)) {
                                rbtree_rotate_right(t, parent);
                                rbnode_set_black(sibling, true);
                                rbnode_set_black(parent, false);
                                sibling = parent->left;
                        }

                        if (rbnode_is_black(sibling->left) && rbnode_is_black(sibling->right)) {
                                rbnode_set_black(sibling, false);
                                n = parent;
                                parent = rbnode_get_parent(n);
                                continue;
                        }

                        if (rbnode_is_black(sibling->left)) {
                                rbtree_rotate_left(t, sibling);
                                rbnode_set_black(sibling, false);
                                sibling = parent->left;
                                rbnode_set_black(sibling, true);
                        }

                        rbtree_rotate_right(t, parent);
                        rbnode_set_black(sibling, rbnode_is_black(parent));
                        rbnode_set_black(parent, true);
                        rbnode_set_black(sibling->left, true);
                        return;
                }
        }

        if (n)
                rbnode_set_black(n, true);
}

/**
 * rbtree_remove() - unlink a node and rebalance
 * @t:          tree @n is linked in
 * @n:          node to unlink
 *
 * Afterwards @n is re-initialised as by rbnode_init(), so rbnode_is_linked()
 * is false and removing it again does nothing.
 */
void rbtree_remove(RBTree *t, RBNode *n) {
        RBNode *parent, *child, *succ, *fix_parent;
        bool removed_black;

        if (!rbnode_is_linked(n))
                return;

        parent = rbnode_get_parent(n);

        if (!n->left || !n->right) {
                /*
                 * At most one child. By the black-height rule a lone child
                 * must be a red leaf under a black @n: it takes @n's place and
                 * color, and nothing else changes.
                 */
                child = n->left ? n->left : n->right;
                removed_black = rbnode_is_black(n);
                rbtree_replace_child(t, parent, n, child);
                if (child)
                        rbnode_set_parent_and_color(child, parent, removed_black);
                else if (removed_black)
                        rbtree_remove_fixup(t, parent, NULL);
                rbnode_init(n);
                return;
        }

        /*
         * Two children: the successor (leftmost in the right subtree) has no
         * left child, so it is easy to unlink from its own spot. It then takes
         * over @n's place, children and color; in effect the node that
         * disappears is the successor at its old position, and that is where
         * any black deficit arises.
         */
        succ = rbnode_leftmost(n->right);
        child = succ->right;
        removed_black = rbnode_is_black(succ);

        if (succ == n->right) {
                /* @succ keeps its right subtree and the deficit is below it */
                fix_parent = succ;
        } else {
                fix_parent = rbnode_get_parent(succ);
                fix_parent->left = child;
                if (child)
                        rbnode_set_parent(child, fix_parent);
                succ->right = n->right;
                rbnode_set_parent(succ->right, succ);
        }

        succ->left = n->left;
        rbnode_set_parent(succ->left, succ);
        rbnode_set_parent_and_color(succ, parent, rbnode_is_black(n));
        rbtree_replace_child(t, parent, n, succ);

        /* as in the one-child case, a red leaf can take over the lost black */
        if (child)
                rbnode_set_black(child, true);
        else if (removed_black)
                rbtree_remove_fixup(t, fix_parent, NULL);

        rbnode_init(n);
}

/*
 * Check the subtree at @n, whose parent should be @parent. Return its black
 * height (NULL leaves count as 0), or -1 on any violation; add each node seen
 * to *@countp.
 */
static long rbtree_validate_subtree(const RBNode *n, const RBNode *parent, size_t depth,
                                    long *countp) {
        long left, right;

        if (!n)
                return 0;

        /*
         * Checking the parent pointer before descending also rules out cycles
         * and shared subtrees: a node has one parent pointer, so it can only
         * be reached from one place. Black heights, though, are only compared
         * on the way back up, so a long broken chain would recurse all the way
         * down first; the depth cap stops that early.
         */
        if (depth > RBTREE_DEPTH_MAX)
                return -1;
        if (!rbnode_is_linked(n) || rbnode_get_parent(n) != parent)
                return -1;
        if (rbnode_is_red(n) && (rbnode_is_red(n->left) || rbnode_is_red(n->right)))
                return -1;

        left = rbtree_validate_subtree(n->left, n, depth + 1, countp);
        if (left < 0)
                return -1;
        right = rbtree_validate_subtree(n->right, n, depth + 1, countp);
        if (right < 0 || right != left)
                return -1;

        ++*countp;
        return left + (rbnode_is_black(n) ? 1 : 0);
}

/**
 * rbtree_validate() - check every red-black and linkage invariant
 * @t:          tree to check
 *
 * Meant for tests: walks the whole tree, O(n). Checks that the root has no
 * parent and is black, that every child points back at its parent, that no
 * red node has a red child, and that all paths have the same black height.
 * Key order is not checked, since the tree does not know the keys.
 *
 * Return: number of nodes (>= 0) if the tree is valid, -1 if not.
 */
long rbtree_validate(const RBTree *t) {
        long count = 0;

        if (!t->root)
                return 0;
        if (!rbnode_is_black(t->root))
                return -1;
        if (rbtree_validate_subtree(t->root, NULL, 1, &count) < 0)
                return -1;
        return count;
}
