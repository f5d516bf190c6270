/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * FdList: a shared, reference-counted array of file descriptors
 *
 * Invariant: while an FdList exists, it owns every fd in it; nobody else
 * closes them. fdlist_new() takes ownership even when it fails, so a caller
 * never has to work out who closes what on an error path.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "util/closer.h"
#include "util/fdlist.h"

/**
 * fdlist_new() - wrap fds into a new list
 * @listp:      out: the new list, with one reference
 * @fds:        the fds, owned by the list from now on (closed on failure)
 * @n_fds:      number of fds
 *
 * Return: 0, or -ENOMEM (then every fd in @fds has been closed).
 */
int fdlist_new(FdList **listp, const int *fds, size_t n_fds) {
        FdList *list;

        list = malloc(sizeof(*list) + n_fds * sizeof(int));
        if (!list) {
                for (size_t i = 0; i < n_fds; ++i)
                        closer_close(fds[i]);
                return -ENOMEM;
        }

        list->n_refs = 1;
        list->n_fds = n_fds;
        if (n_fds)
                memcpy(list->fds, fds, n_fds * sizeof(int));
        *listp = list;
        return 0;
}

/**
 * fdlist_ref() - take a reference
 * @list:       list, or NULL
 *
 * Return: @list.
 */
FdList *fdlist_ref(FdList *list) {
        if (list)
                ++list->n_refs;
        return list;
}

/**
 * fdlist_unref() - drop a reference, closing the fds with the last one
 * @list:       list, or NULL
 *
 * Return: NULL.
 */
FdList *fdlist_unref(FdList *list) {
        if (!list || --list->n_refs > 0)
                return NULL;

        /* a client's fd may block in close(2) (a FUSE file): the closer does it */
        for (size_t i = 0; i < list->n_fds; ++i)
                closer_close(list->fds[i]);
        free(list);
        return NULL;
}
