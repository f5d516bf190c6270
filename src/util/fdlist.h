/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * FdList: a shared, reference-counted array of file descriptors
 *
 * The fds attached to one message are received once and may go to many
 * destinations (multicast); every queued copy of the message holds one
 * reference on the same FdList. The fds are closed when the last reference
 * goes. The list owns its fds from fdlist_new() on.
 */

#include <stddef.h>
#include <stdint.h>
#include "util/macro.h"

typedef struct FdList FdList;

struct FdList {
        uint64_t n_refs;
        size_t n_fds;
        int fds[];
};

int fdlist_new(FdList **listp, const int *fds, size_t n_fds);
FdList *fdlist_ref(FdList *list);
FdList *fdlist_unref(FdList *list);

DEFINE_CLEANUP(FdList *, fdlist_unref);
