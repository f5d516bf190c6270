/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Freelist: a bounded stack of freed objects of one size, for reuse
 *
 * The broker's hot path allocates a message and a pool slice per delivery;
 * keeping a few freed ones spares malloc() and free() there. The list
 * threads through the objects' first word. Under AddressSanitizer it holds
 * nothing, so every use after free is still reported.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

typedef struct FreeList {
        void *head;
        size_t n;
        size_t max;
} FreeList;

/* an initializer: FreeList l = FREELIST_INIT(64); */
#if defined(__SANITIZE_ADDRESS__)
#define FREELIST_INIT(_max) { .max = 0 }
#else
#define FREELIST_INIT(_max) { .max = (_max) }
#endif

/* a freed object, or NULL if none is kept */
static inline void *freelist_pop(FreeList *l) {
        void *p = l->head;

        if (p) {
                l->head = *(void **)p;
                --l->n;
        }
        return p;
}

/* keep @p (an object of at least pointer size), or free() it if full */
static inline void freelist_push(FreeList *l, void *p) {
        if (!p)
                return;
        if (l->n >= l->max) {
                free(p);
                return;
        }
        *(void **)p = l->head;
        l->head = p;
        ++l->n;
}

/* free() every object kept */
static inline void freelist_clear(FreeList *l) {
        void *p;

        while ((p = freelist_pop(l)))
                free(p);
}
