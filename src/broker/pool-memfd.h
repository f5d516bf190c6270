/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Pool-memfd: the broker's backing of a peer's pool
 *
 * A memfd of the pool's size, mapped shared and writable by the broker and
 * sealed against shrinking and growing (F_SEAL_SHRINK | F_SEAL_GROW |
 * F_SEAL_SEAL), so the broker's stores never fault; its mode is 0400, so
 * the read-only descriptor a peer gets (pool_memfd_open_readonly()) cannot
 * be re-opened for writing through /proc (but by root). There is no write
 * seal: it would keep the broker from punching holes into an idle pool
 * (pool_trim()); a root peer that writes its pool can only scribble on what
 * it receives itself. Pages are allocated as slices are placed (fallocate)
 * and given back when the pool is trimmed and when it goes.
 */

#include <stdint.h>
#include "bus/pool.h"

int pool_memfd_init(Pool *pool, uint64_t max_size);
int pool_memfd_fd(const Pool *pool);
int pool_memfd_open_readonly(const Pool *pool, int *fdp);
