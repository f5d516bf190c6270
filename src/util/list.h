/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Intrusive circular doubly-linked list
 *
 * A `List` is both the head of a list and the link embedded in each member.
 * Heads and links are initialised to point at themselves (LIST_INIT() or
 * list_init()), so an unlinked link is always recognisable
 * (list_is_linked()) and unlinking twice is harmless: list_unlink()
 * re-initialises the link.
 */

#include <stdbool.h>
#include <stddef.h>
#include "util/macro.h"

typedef struct List List;

struct List {
        List *prev;
        List *next;
};

#define LIST_INIT(_var) { .prev = &(_var), .next = &(_var) }

static inline void list_init(List *l) {
        l->prev = l;
        l->next = l;
}

static inline bool list_is_empty(const List *head) {
        return head->next == head;
}

/* a link is linked if it is part of some list */
static inline bool list_is_linked(const List *link) {
        return link->next != link;
}

static inline void list_link_between(List *prev, List *next, List *link) {
        link->prev = prev;
        link->next = next;
        prev->next = link;
        next->prev = link;
}

static inline void list_link_tail(List *head, List *link) {
        list_link_between(head->prev, head, link);
}

static inline void list_link_front(List *head, List *link) {
        list_link_between(head, head->next, link);
}

/* link @link right after @pos */
static inline void list_link_after(List *pos, List *link) {
        list_link_between(pos, pos->next, link);
}

static inline void list_unlink(List *link) {
        link->prev->next = link->next;
        link->next->prev = link->prev;
        list_init(link);
}

static inline List *list_first(const List *head) {
        return list_is_empty(head) ? NULL : head->next;
}

static inline List *list_last(const List *head) {
        return list_is_empty(head) ? NULL : head->prev;
}

/* the link after @link, or NULL if @link is the last before @head */
static inline List *list_next(const List *head, const List *link) {
        return link->next == head ? NULL : link->next;
}

static inline List *list_prev(const List *head, const List *link) {
        return link->prev == head ? NULL : link->prev;
}

#define list_entry(_link, _type, _member) container_of_safe((_link), _type, _member)

#define list_for_each(_l, _head) \
        for (List *_l = (_head)->next; _l != (_head); _l = _l->next)

#define list_for_each_entry(_e, _head, _member)                                 \
        for (_e = container_of((_head)->next, __typeof__(*_e), _member);        \
             &(_e)->_member != (_head);                                         \
             _e = container_of((_e)->_member.next, __typeof__(*_e), _member))

/* like list_for_each_entry(), but @_e may be unlinked inside the loop */
#define list_for_each_entry_safe(_e, _n, _head, _member)                        \
        for (_e = container_of((_head)->next, __typeof__(*_e), _member),        \
             _n = container_of((_e)->_member.next, __typeof__(*_e), _member);   \
             &(_e)->_member != (_head);                                         \
             _e = _n, _n = container_of((_n)->_member.next, __typeof__(*_e), _member))

static inline size_t list_count(const List *head) {
        size_t n = 0;

        for (const List *l = head->next; l != head; l = l->next)
                ++n;
        return n;
}
