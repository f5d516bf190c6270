/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for the intrusive doubly-linked list
 *
 * Each test builds a head and a few `Item`s on the stack. After every change
 * list_check() walks the ring both ways, checks that each link's neighbours
 * point back at it, and compares the member values in order against what the
 * test expects, so any broken prev/next pointer is caught at the step that
 * broke it.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "util/list.h"

typedef struct Item Item;

struct Item {
        int value;
        List link;
};

static void item_init(Item *item, int value) {
        item->value = value;
        list_init(&item->link);
}

/*
 * Check the ring at @head: consistent in both directions and holding exactly
 * the values in @expected, in order.
 */
static void list_check(const List *head, const int *expected, size_t n_expected) {
        const List *l;
        size_t i;

        assert_ptr_equal(head->next->prev, head);
        assert_ptr_equal(head->prev->next, head);

        i = 0;
        for (l = head->next; l != head; l = l->next) {
                assert_true(i < n_expected);
                assert_ptr_equal(l->next->prev, l);
                assert_ptr_equal(l->prev->next, l);
                assert_true(list_is_linked(l));
                assert_int_equal(list_entry(l, Item, link)->value, expected[i]);
                ++i;
        }
        assert_int_equal(i, n_expected);

        for (l = head->prev; l != head; l = l->prev)
                assert_int_equal(list_entry(l, Item, link)->value, expected[--i]);
        assert_int_equal(i, 0);

        assert_int_equal(list_count(head), n_expected);
        assert_int_equal(list_is_empty(head), n_expected == 0);
}

static void test_init(void **state) {
        List head = LIST_INIT(head), head2;
        Item a = { .value = 1, .link = LIST_INIT(a.link) }, b;

        assert_ptr_equal(head.next, &head);
        assert_ptr_equal(head.prev, &head);
        assert_true(list_is_empty(&head));
        assert_false(list_is_linked(&head));
        assert_null(list_first(&head));
        assert_null(list_last(&head));
        assert_int_equal(list_count(&head), 0);
        list_check(&head, NULL, 0);

        head2.next = NULL;
        head2.prev = NULL;
        list_init(&head2);
        assert_ptr_equal(head2.next, &head2);
        assert_ptr_equal(head2.prev, &head2);
        assert_true(list_is_empty(&head2));

        item_init(&b, 2);
        assert_false(list_is_linked(&a.link));
        assert_false(list_is_linked(&b.link));

        /* list_entry() maps NULL to NULL, so list_first() results can be passed in */
        assert_null(list_entry(list_first(&head), Item, link));
        assert_ptr_equal(list_entry(&a.link, Item, link), &a);
}

static void test_link_tail(void **state) {
        List head = LIST_INIT(head);
        Item items[3];
        int i;

        for (i = 0; i < 3; ++i) {
                item_init(&items[i], i);
                list_link_tail(&head, &items[i].link);
                assert_true(list_is_linked(&items[i].link));
                assert_false(list_is_empty(&head));
                list_check(&head, (const int[]){ 0, 1, 2 }, (size_t)i + 1);
                assert_ptr_equal(list_last(&head), &items[i].link);
                assert_ptr_equal(list_first(&head), &items[0].link);
        }
}

static void test_link_front(void **state) {
        List head = LIST_INIT(head);
        Item items[3];
        int i;

        for (i = 0; i < 3; ++i) {
                item_init(&items[i], i);
                list_link_front(&head, &items[i].link);
                assert_ptr_equal(list_first(&head), &items[i].link);
                assert_ptr_equal(list_last(&head), &items[0].link);
        }
        list_check(&head, (const int[]){ 2, 1, 0 }, 3);
}

static void test_link_after(void **state) {
        List head = LIST_INIT(head);
        Item a, b, c, d;

        item_init(&a, 1);
        item_init(&b, 2);
        item_init(&c, 3);
        item_init(&d, 4);

        /* after the head is the front */
        list_link_after(&head, &a.link);
        list_check(&head, (const int[]){ 1 }, 1);

        /* after the last member is the tail */
        list_link_after(&a.link, &c.link);
        list_check(&head, (const int[]){ 1, 3 }, 2);
        assert_ptr_equal(list_last(&head), &c.link);

        /* in the middle */
        list_link_after(&a.link, &b.link);
        list_check(&head, (const int[]){ 1, 2, 3 }, 3);

        list_link_after(&c.link, &d.link);
        list_check(&head, (const int[]){ 1, 2, 3, 4 }, 4);
}

static void test_link_between(void **state) {
        List head = LIST_INIT(head);
        Item a, b, c;

        item_init(&a, 1);
        item_init(&b, 2);
        item_init(&c, 3);

        list_link_between(&head, &head, &a.link);
        list_check(&head, (const int[]){ 1 }, 1);
        list_link_between(&a.link, &head, &c.link);
        list_check(&head, (const int[]){ 1, 3 }, 2);
        list_link_between(&a.link, &c.link, &b.link);
        list_check(&head, (const int[]){ 1, 2, 3 }, 3);
}

static void test_unlink(void **state) {
        List head = LIST_INIT(head);
        Item a, b, c;

        item_init(&a, 1);
        item_init(&b, 2);
        item_init(&c, 3);
        list_link_tail(&head, &a.link);
        list_link_tail(&head, &b.link);
        list_link_tail(&head, &c.link);
        list_check(&head, (const int[]){ 1, 2, 3 }, 3);

        /* middle: neighbours are joined, the link points at itself again */
        list_unlink(&b.link);
        assert_false(list_is_linked(&b.link));
        assert_ptr_equal(b.link.next, &b.link);
        assert_ptr_equal(b.link.prev, &b.link);
        list_check(&head, (const int[]){ 1, 3 }, 2);

        /* a second unlink touches nothing but the link itself */
        list_unlink(&b.link);
        assert_false(list_is_linked(&b.link));
        list_check(&head, (const int[]){ 1, 3 }, 2);

        /* front, then the last remaining member */
        list_unlink(&a.link);
        list_check(&head, (const int[]){ 3 }, 1);
        list_unlink(&c.link);
        list_check(&head, NULL, 0);
        list_unlink(&c.link);
        list_check(&head, NULL, 0);

        /* unlinked links can be linked again */
        list_link_front(&head, &b.link);
        list_link_front(&head, &a.link);
        list_check(&head, (const int[]){ 1, 2 }, 2);
}

static void test_navigate(void **state) {
        List head = LIST_INIT(head);
        Item items[4];
        List *l;
        int i;

        for (i = 0; i < 4; ++i) {
                item_init(&items[i], i);
                list_link_tail(&head, &items[i].link);
        }
        list_check(&head, (const int[]){ 0, 1, 2, 3 }, 4);

        assert_ptr_equal(list_first(&head), &items[0].link);
        assert_ptr_equal(list_last(&head), &items[3].link);

        /* next/prev return NULL instead of the head at either end */
        for (i = 0; i < 4; ++i) {
                assert_ptr_equal(list_next(&head, &items[i].link),
                                 i < 3 ? &items[i + 1].link : NULL);
                assert_ptr_equal(list_prev(&head, &items[i].link),
                                 i > 0 ? &items[i - 1].link : NULL);
        }

        i = 0;
        for (l = list_first(&head); l; l = list_next(&head, l))
                assert_int_equal(list_entry(l, Item, link)->value, i++);
        assert_int_equal(i, 4);

        for (l = list_last(&head); l; l = list_prev(&head, l))
                assert_int_equal(list_entry(l, Item, link)->value, --i);
        assert_int_equal(i, 0);

        /* a single member is both first and last */
        list_unlink(&items[0].link);
        list_unlink(&items[1].link);
        list_unlink(&items[3].link);
        assert_ptr_equal(list_first(&head), &items[2].link);
        assert_ptr_equal(list_last(&head), &items[2].link);
        assert_null(list_next(&head, &items[2].link));
        assert_null(list_prev(&head, &items[2].link));
}

static void test_for_each(void **state) {
        List head = LIST_INIT(head);
        Item items[5];
        int i;

        /* an empty list runs no iteration */
        list_for_each(l, &head)
                fail();

        for (i = 0; i < 5; ++i) {
                item_init(&items[i], i * 10);
                list_link_tail(&head, &items[i].link);
        }

        i = 0;
        list_for_each(l, &head)
                assert_ptr_equal(l, &items[i++].link);
        assert_int_equal(i, 5);
}

static void test_for_each_entry(void **state) {
        List head = LIST_INIT(head);
        Item items[5], *item;
        int i;

        list_for_each_entry(item, &head, link)
                fail();

        for (i = 0; i < 5; ++i) {
                item_init(&items[i], i * 10);
                list_link_tail(&head, &items[i].link);
        }

        i = 0;
        list_for_each_entry(item, &head, link) {
                assert_ptr_equal(item, &items[i]);
                assert_int_equal(item->value, i * 10);
                ++i;
        }
        assert_int_equal(i, 5);
}

static void test_for_each_entry_safe(void **state) {
        List head = LIST_INIT(head);
        Item items[6], *item, *next;
        int i;

        list_for_each_entry_safe(item, next, &head, link)
                fail();

        for (i = 0; i < 6; ++i) {
                item_init(&items[i], i);
                list_link_tail(&head, &items[i].link);
        }

        /* unlink every other member while walking: the rest must still be visited */
        i = 0;
        list_for_each_entry_safe(item, next, &head, link) {
                assert_int_equal(item->value, i++);
                if (item->value % 2 == 0) {
                        list_unlink(&item->link);
                        assert_false(list_is_linked(&item->link));
                }
        }
        assert_int_equal(i, 6);
        list_check(&head, (const int[]){ 1, 3, 5 }, 3);

        /* and then all of them, which empties the list */
        i = 0;
        list_for_each_entry_safe(item, next, &head, link) {
                list_unlink(&item->link);
                ++i;
        }
        assert_int_equal(i, 3);
        list_check(&head, NULL, 0);
        for (i = 0; i < 6; ++i)
                assert_false(list_is_linked(&items[i].link));
}

static void test_count(void **state) {
        List head = LIST_INIT(head);
        Item items[10];
        int i;

        assert_int_equal(list_count(&head), 0);
        for (i = 0; i < 10; ++i) {
                item_init(&items[i], i);
                list_link_tail(&head, &items[i].link);
                assert_int_equal(list_count(&head), (size_t)i + 1);
        }
        for (i = 0; i < 10; i += 3)
                list_unlink(&items[i].link);
        assert_int_equal(list_count(&head), 6);
        list_check(&head, (const int[]){ 1, 2, 4, 5, 7, 8 }, 6);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_init),
                cmocka_unit_test(test_link_tail),
                cmocka_unit_test(test_link_front),
                cmocka_unit_test(test_link_after),
                cmocka_unit_test(test_link_between),
                cmocka_unit_test(test_unlink),
                cmocka_unit_test(test_navigate),
                cmocka_unit_test(test_for_each),
                cmocka_unit_test(test_for_each_entry),
                cmocka_unit_test(test_for_each_entry_safe),
                cmocka_unit_test(test_count),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
