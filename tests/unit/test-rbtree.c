/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for the intrusive red-black tree
 *
 * Every test builds its own tree of `Item`s on the stack (or in a local
 * array) and, after each operation, checks the tree with rbtree_validate()
 * plus an in-order walk that must be sorted and as long as the validator's
 * count. The randomized test compares the tree against a plain presence
 * array over tens of thousands of seeded, reproducible operations. Finally,
 * hand-broken trees check that the validator itself can fail.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include "util/rbtree.h"

typedef struct Item Item;

struct Item {
        int key;
        RBNode rb;
};

static int item_compare(const RBNode *n, const void *k) {
        int key = *(const int *)k, node_key = rbnode_entry(n, Item, rb)->key;

        return (key > node_key) - (key < node_key);
}

static Item *item_of(const RBNode *n) {
        return rbnode_entry((RBNode *)n, Item, rb);
}

static void item_init(Item *item, int key) {
        item->key = key;
        rbnode_init(&item->rb);
}

/* insert @item via find_slot + add; return 0, or -1 if the key was present */
static int tree_insert(RBTree *t, Item *item) {
        RBNode *parent, **slot;

        slot = rbtree_find_slot(t, item_compare, &item->key, &parent);
        if (!slot)
                return -1;
        rbtree_add(t, parent, slot, &item->rb);
        return 0;
}

/*
 * Validate @t, walk it forwards and backwards, and check that both walks are
 * strictly increasing/decreasing and visit exactly @expected nodes.
 */
static void tree_check(const RBTree *t, long expected) {
        const RBNode *n;
        long count;
        int prev_key = 0;

        assert_int_equal(rbtree_validate(t), expected);
        assert_int_equal(rbtree_is_empty(t), expected == 0);

        count = 0;
        for (n = rbtree_first(t); n; n = rbnode_next(n)) {
                if (count > 0)
                        assert_true(item_of(n)->key > prev_key);
                prev_key = item_of(n)->key;
                ++count;
        }
        assert_int_equal(count, expected);

        count = 0;
        for (n = rbtree_last(t); n; n = rbnode_prev(n)) {
                if (count > 0)
                        assert_true(item_of(n)->key < prev_key);
                prev_key = item_of(n)->key;
                ++count;
        }
        assert_int_equal(count, expected);
}

static void tree_remove(RBTree *t, Item *item) {
        rbtree_remove(t, &item->rb);
        assert_false(rbnode_is_linked(&item->rb));
        assert_null(item->rb.left);
        assert_null(item->rb.right);
        assert_null(rbnode_parent(&item->rb));
        assert_null(rbtree_find(t, item_compare, &item->key));
}

/* paint a node without touching its parent pointer (to break trees on purpose) */
static void node_paint(RBNode *n, bool black) {
        n->__parent_and_color = (n->__parent_and_color & ~(uintptr_t)1) | (black ? 1 : 0);
}

static bool node_is_black(const RBNode *n) {
        return n->__parent_and_color & 1;
}

/*
 * Small deterministic PRNG (xorshift64*), so the randomized test does the
 * same operations on every libc and platform.
 */
static uint64_t rng_next(uint64_t *state) {
        uint64_t x = *state;

        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        return x * UINT64_C(2685821657736338717);
}

static unsigned int rng_below(uint64_t *state, unsigned int bound) {
        return (unsigned int)((rng_next(state) >> 32) % bound);
}

static void test_init(void **state) {
        RBTree t = RBTREE_INIT, t2;
        Item a = { .key = 1, .rb = RBNODE_INIT(a.rb) }, b;

        assert_true(rbtree_is_empty(&t));
        assert_null(rbtree_first(&t));
        assert_null(rbtree_last(&t));
        assert_int_equal(rbtree_validate(&t), 0);

        t2.root = &a.rb;
        rbtree_init(&t2);
        assert_true(rbtree_is_empty(&t2));

        item_init(&b, 2);
        assert_false(rbnode_is_linked(&a.rb));
        assert_false(rbnode_is_linked(&b.rb));
        assert_null(a.rb.left);
        assert_null(a.rb.right);

        /* unlinked nodes have no neighbours and no parent */
        assert_null(rbnode_parent(&a.rb));
        assert_null(rbnode_next(&a.rb));
        assert_null(rbnode_prev(&a.rb));

        /* removing an unlinked node is harmless */
        rbtree_remove(&t, &a.rb);
        assert_false(rbnode_is_linked(&a.rb));
        tree_check(&t, 0);
}

static void test_single(void **state) {
        RBTree t = RBTREE_INIT;
        Item a;

        item_init(&a, 42);
        assert_int_equal(tree_insert(&t, &a), 0);
        tree_check(&t, 1);

        assert_true(rbnode_is_linked(&a.rb));
        assert_ptr_equal(t.root, &a.rb);
        assert_true(node_is_black(&a.rb));
        assert_null(rbnode_parent(&a.rb));
        assert_ptr_equal(rbtree_first(&t), &a.rb);
        assert_ptr_equal(rbtree_last(&t), &a.rb);
        assert_null(rbnode_next(&a.rb));
        assert_null(rbnode_prev(&a.rb));

        /* the root, which is also a leaf */
        tree_remove(&t, &a);
        assert_null(t.root);
        tree_check(&t, 0);

        /* a removed node can be linked again */
        assert_int_equal(tree_insert(&t, &a), 0);
        tree_check(&t, 1);
        tree_remove(&t, &a);
        tree_check(&t, 0);
}

static void test_find_slot(void **state) {
        RBTree t = RBTREE_INIT;
        RBNode *parent, **slot;
        Item items[3], dup;
        int i, key;

        /* empty tree: the slot is the root and there is no parent */
        key = 2;
        parent = &items[0].rb;
        slot = rbtree_find_slot(&t, item_compare, &key, &parent);
        assert_ptr_equal(slot, &t.root);
        assert_null(parent);

        item_init(&items[0], 2);
        rbtree_add(&t, parent, slot, &items[0].rb);
        tree_check(&t, 1);

        /* smaller keys go to the left, larger to the right */
        key = 1;
        slot = rbtree_find_slot(&t, item_compare, &key, &parent);
        assert_ptr_equal(parent, &items[0].rb);
        assert_ptr_equal(slot, &items[0].rb.left);
        item_init(&items[1], 1);
        rbtree_add(&t, parent, slot, &items[1].rb);
        tree_check(&t, 2);

        key = 3;
        slot = rbtree_find_slot(&t, item_compare, &key, &parent);
        assert_ptr_equal(parent, &items[0].rb);
        assert_ptr_equal(slot, &items[0].rb.right);
        item_init(&items[2], 3);
        rbtree_add(&t, parent, slot, &items[2].rb);
        tree_check(&t, 3);

        /* an existing key yields no slot, and the match as parent */
        for (i = 0; i < 3; ++i) {
                key = items[i].key;
                slot = rbtree_find_slot(&t, item_compare, &key, &parent);
                assert_null(slot);
                assert_ptr_equal(parent, &items[i].rb);
                assert_ptr_equal(rbtree_find(&t, item_compare, &key), &items[i].rb);
        }

        item_init(&dup, 2);
        assert_int_equal(tree_insert(&t, &dup), -1);
        assert_false(rbnode_is_linked(&dup.rb));
        tree_check(&t, 3);

        key = 0;
        assert_null(rbtree_find(&t, item_compare, &key));
        key = 4;
        assert_null(rbtree_find(&t, item_compare, &key));
}

static void test_parent(void **state) {
        RBTree t = RBTREE_INIT;
        Item items[3];
        int i;

        /* ascending inserts force a rotation: the middle key ends up as root */
        for (i = 0; i < 3; ++i) {
                item_init(&items[i], i + 1);
                assert_int_equal(tree_insert(&t, &items[i]), 0);
                tree_check(&t, i + 1);
        }

        assert_ptr_equal(t.root, &items[1].rb);
        assert_null(rbnode_parent(&items[1].rb));
        assert_ptr_equal(rbnode_parent(&items[0].rb), &items[1].rb);
        assert_ptr_equal(rbnode_parent(&items[2].rb), &items[1].rb);
        assert_ptr_equal(items[1].rb.left, &items[0].rb);
        assert_ptr_equal(items[1].rb.right, &items[2].rb);
        assert_true(node_is_black(&items[1].rb));
        assert_false(node_is_black(&items[0].rb));
        assert_false(node_is_black(&items[2].rb));

        /* every node's parent pointer is consistent with the child links */
        for (i = 0; i < 3; ++i) {
                RBNode *p = rbnode_parent(&items[i].rb);

                if (p)
                        assert_true(p->left == &items[i].rb || p->right == &items[i].rb);
        }
}

static void test_iterate(void **state) {
        enum { N = 257 };
        RBTree t = RBTREE_INIT;
        Item items[N];
        uint64_t rng = 7;
        const RBNode *n;
        int order[N], i, j, tmp;

        for (i = 0; i < N; ++i)
                order[i] = i;
        for (i = N - 1; i > 0; --i) {
                j = (int)rng_below(&rng, (unsigned int)i + 1);
                tmp = order[i];
                order[i] = order[j];
                order[j] = tmp;
        }

        for (i = 0; i < N; ++i) {
                item_init(&items[order[i]], order[i] * 2);
                assert_int_equal(tree_insert(&t, &items[order[i]]), 0);
                tree_check(&t, i + 1);
        }

        assert_ptr_equal(rbtree_first(&t), &items[0].rb);
        assert_ptr_equal(rbtree_last(&t), &items[N - 1].rb);

        /* next/prev step exactly one key, and stop at either end */
        i = 0;
        for (n = rbtree_first(&t); n; n = rbnode_next(n))
                assert_int_equal(item_of(n)->key, 2 * i++);
        assert_int_equal(i, N);

        for (n = rbtree_last(&t); n; n = rbnode_prev(n))
                assert_int_equal(item_of(n)->key, 2 * --i);
        assert_int_equal(i, 0);

        for (i = 0; i < N; ++i) {
                assert_ptr_equal(rbnode_next(&items[i].rb), i + 1 < N ? &items[i + 1].rb : NULL);
                assert_ptr_equal(rbnode_prev(&items[i].rb), i > 0 ? &items[i - 1].rb : NULL);
        }
}

static void test_remove_leaf(void **state) {
        RBTree t = RBTREE_INIT;
        Item items[7];
        int i, key;

        for (i = 0; i < 7; ++i) {
                item_init(&items[i], i);
                assert_int_equal(tree_insert(&t, &items[i]), 0);
        }
        tree_check(&t, 7);

        /* remove leaves until only the root is left */
        for (i = 6; i > 0; --i) {
                RBNode *leaf = rbtree_first(&t);

                while (leaf->left || leaf->right)
                        leaf = leaf->left ? leaf->left : leaf->right;
                key = item_of(leaf)->key;
                tree_remove(&t, item_of(leaf));
                tree_check(&t, i);
                assert_null(rbtree_find(&t, item_compare, &key));
        }
        assert_null(t.root->left);
        assert_null(t.root->right);
}

static void test_remove_root(void **state) {
        enum { N = 64 };
        RBTree t = RBTREE_INIT;
        Item items[N];
        RBNode *root;
        int i;

        for (i = 0; i < N; ++i) {
                item_init(&items[i], i);
                assert_int_equal(tree_insert(&t, &items[i]), 0);
        }
        tree_check(&t, N);

        /* removing the root repeatedly exercises every shape of it */
        for (i = N - 1; i >= 0; --i) {
                root = t.root;
                tree_remove(&t, item_of(root));
                tree_check(&t, i);
                assert_true(t.root != root);
                if (t.root)
                        assert_null(rbnode_parent(t.root));
        }
        assert_null(t.root);
}

static void test_remove_two_children(void **state) {
        enum { N = 31 };
        RBTree t = RBTREE_INIT;
        Item items[N];
        RBNode *n, *pred, *succ;
        int i, removed = 0;

        for (i = 0; i < N; ++i) {
                item_init(&items[i], i);
                assert_int_equal(tree_insert(&t, &items[i]), 0);
        }
        tree_check(&t, N);

        /*
         * Keep removing some non-root node with two children; its in-order
         * successor must take its place in the walk.
         */
        for (;;) {
                n = NULL;
                for (i = 0; i < N; ++i) {
                        RBNode *c = &items[i].rb;

                        if (rbnode_is_linked(c) && c != t.root && c->left && c->right) {
                                n = c;
                                break;
                        }
                }
                if (!n)
                        break;

                pred = rbnode_prev(n);
                succ = rbnode_next(n);
                assert_non_null(pred);
                assert_non_null(succ);
                tree_remove(&t, item_of(n));
                ++removed;
                tree_check(&t, N - removed);
                assert_ptr_equal(rbnode_next(pred), succ);
                assert_ptr_equal(rbnode_prev(succ), pred);
        }
        assert_true(removed > 0);

        /* and the root itself with two children */
        n = t.root;
        if (n->left && n->right) {
                succ = rbnode_next(n);
                tree_remove(&t, item_of(n));
                ++removed;
                tree_check(&t, N - removed);
                assert_ptr_equal(t.root, succ);
        }
}

static void test_reinsert(void **state) {
        enum { N = 50 };
        RBTree t = RBTREE_INIT;
        Item items[N];
        int i, round;

        for (i = 0; i < N; ++i)
                item_init(&items[i], i);

        /* nodes removed from a tree are fully reset and can be reused */
        for (round = 0; round < 3; ++round) {
                for (i = 0; i < N; ++i) {
                        assert_false(rbnode_is_linked(&items[i].rb));
                        assert_int_equal(tree_insert(&t, &items[i]), 0);
                        assert_true(rbnode_is_linked(&items[i].rb));
                }
                tree_check(&t, N);
                for (i = 0; i < N; i += 2)
                        tree_remove(&t, &items[i]);
                tree_check(&t, N / 2);
                for (i = 0; i < N; i += 2) {
                        /* a second remove is a no-op */
                        rbtree_remove(&t, &items[i].rb);
                        assert_false(rbnode_is_linked(&items[i].rb));
                }
                tree_check(&t, N / 2);
                for (i = 1; i < N; i += 2)
                        tree_remove(&t, &items[i]);
                tree_check(&t, 0);
        }
}

static void test_random(void **state) {
        enum { N_KEYS = 2048, N_OPS = 60000 };
        RBTree t = RBTREE_INIT;
        Item *items;
        uint64_t rng = UINT64_C(0x9e3779b97f4a7c15);
        unsigned int key, grow;
        long count = 0;
        int op;

        items = calloc(N_KEYS, sizeof(*items));
        assert_non_null(items);
        for (key = 0; key < N_KEYS; ++key)
                item_init(&items[key], (int)key);

        for (op = 0; op < N_OPS; ++op) {
                /*
                 * Alternate long phases that favour inserts with phases that
                 * favour removals, so the tree repeatedly grows large and
                 * shrinks to (nearly) nothing, hitting all rebalancing cases
                 * at many sizes.
                 */
                grow = ((op / 6000) % 2) ? 20 : 80;
                key = rng_below(&rng, N_KEYS);

                if (rng_below(&rng, 100) < grow) {
                        if (rbnode_is_linked(&items[key].rb)) {
                                assert_int_equal(tree_insert(&t, &items[key]), -1);
                                continue;
                        }
                        assert_int_equal(tree_insert(&t, &items[key]), 0);
                        ++count;
                } else {
                        if (!rbnode_is_linked(&items[key].rb)) {
                                assert_null(rbtree_find(&t, item_compare, &items[key].key));
                                continue;
                        }
                        assert_ptr_equal(rbtree_find(&t, item_compare, &items[key].key),
                                         &items[key].rb);
                        tree_remove(&t, &items[key]);
                        --count;
                }
                tree_check(&t, count);
        }

        /* drain in node order, checking after every step */
        while (t.root) {
                tree_remove(&t, item_of(rbtree_first(&t)));
                tree_check(&t, --count);
        }
        assert_int_equal(count, 0);
        free(items);
}

/* build a perfect 7-node tree: keys 1..7, root 4, all black except leaves red */
static void tree_build7(RBTree *t, Item items[7]) {
        int i, order[7] = { 4, 2, 6, 1, 3, 5, 7 };

        rbtree_init(t);
        for (i = 0; i < 7; ++i) {
                item_init(&items[order[i] - 1], order[i]);
                assert_int_equal(tree_insert(t, &items[order[i] - 1]), 0);
        }
        tree_check(t, 7);
        assert_ptr_equal(t->root, &items[3].rb);
        assert_true(node_is_black(&items[1].rb));
        assert_true(node_is_black(&items[5].rb));
        assert_false(node_is_black(&items[0].rb));
}

static void test_validate_detects(void **state) {
        RBTree t;
        Item items[7], extra;

        /* red root */
        tree_build7(&t, items);
        node_paint(&items[3].rb, false);
        assert_int_equal(rbtree_validate(&t), -1);

        /* red node with a red child */
        tree_build7(&t, items);
        node_paint(&items[1].rb, false);
        assert_int_equal(rbtree_validate(&t), -1);

        /* unequal black heights: one leaf painted black */
        tree_build7(&t, items);
        node_paint(&items[0].rb, true);
        assert_int_equal(rbtree_validate(&t), -1);

        /*
         * Unequal black heights below the root, each subtree being valid on
         * its own: first a legal recolouring that the checker must accept,
         * then the left subtree gains a level that the right one lacks.
         */
        tree_build7(&t, items);
        node_paint(&items[5].rb, false);
        node_paint(&items[4].rb, true);
        node_paint(&items[6].rb, true);
        assert_int_equal(rbtree_validate(&t), 7);
        node_paint(&items[0].rb, true);
        node_paint(&items[2].rb, true);
        assert_int_equal(rbtree_validate(&t), -1);

        /* root with a parent */
        tree_build7(&t, items);
        t.root->__parent_and_color = (uintptr_t)&items[0].rb | 1;
        assert_int_equal(rbtree_validate(&t), -1);

        /* child whose parent pointer names the wrong node */
        tree_build7(&t, items);
        items[0].rb.__parent_and_color = (uintptr_t)&items[5].rb;
        assert_int_equal(rbtree_validate(&t), -1);

        /* child that looks unlinked */
        tree_build7(&t, items);
        rbnode_init(&items[6].rb);
        assert_int_equal(rbtree_validate(&t), -1);

        /* a subtree reachable twice */
        tree_build7(&t, items);
        items[6].rb.left = &items[0].rb;
        assert_int_equal(rbtree_validate(&t), -1);

        /* cycles must be reported, not followed forever */
        tree_build7(&t, items);
        items[0].rb.left = &items[0].rb;
        assert_int_equal(rbtree_validate(&t), -1);
        tree_build7(&t, items);
        items[6].rb.right = t.root;
        assert_int_equal(rbtree_validate(&t), -1);

        /* an extra red leaf under a red node */
        tree_build7(&t, items);
        rbnode_init(&extra.rb);
        extra.key = 8;
        items[6].rb.right = &extra.rb;
        extra.rb.__parent_and_color = (uintptr_t)&items[6].rb;
        assert_int_equal(rbtree_validate(&t), -1);
        /* the same leaf painted black unbalances the black heights instead */
        node_paint(&extra.rb, true);
        assert_int_equal(rbtree_validate(&t), -1);
}

static void test_validate_deep_chain(void **state) {
        enum { N = 200000 };
        RBTree t = RBTREE_INIT;
        RBNode *chain;
        int i;

        /*
         * A right-leaning chain of black nodes with consistent parent
         * pointers. It is only wrong in its black heights, which the checker
         * compares on the way back up, so without its depth cap it would have
         * to recurse all the way down first.
         */
        chain = calloc(N, sizeof(*chain));
        assert_non_null(chain);
        for (i = 0; i < N; ++i) {
                chain[i].__parent_and_color = (uintptr_t)(i ? &chain[i - 1] : NULL) | 1;
                chain[i].right = i + 1 < N ? &chain[i + 1] : NULL;
        }
        t.root = &chain[0];
        assert_int_equal(rbtree_validate(&t), -1);
        free(chain);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_init),
                cmocka_unit_test(test_single),
                cmocka_unit_test(test_find_slot),
                cmocka_unit_test(test_parent),
                cmocka_unit_test(test_iterate),
                cmocka_unit_test(test_remove_leaf),
                cmocka_unit_test(test_remove_root),
                cmocka_unit_test(test_remove_two_children),
                cmocka_unit_test(test_reinsert),
                cmocka_unit_test(test_random),
                cmocka_unit_test(test_validate_detects),
                cmocka_unit_test(test_validate_deep_chain),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
