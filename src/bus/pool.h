/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Pool: the slice allocator of one peer's payload region
 *
 * A pool manages the offsets [0, max_size) of one region that the broker
 * writes and the peer maps read-only. It hands out slices (8-byte aligned
 * offset and size, at least POOL_SLICE_MIN bytes), placed best fit: the
 * smallest free extent that fits, the lowest offset among equal sizes; freed
 * slices merge with free neighbours. Every operation is O(log n) in the
 * number of extents.
 *
 * The region behind the offsets is abstract: a pool writes through `base`,
 * a writable region of at least max_size bytes, and its owner's PoolOps
 * back it: `grow` backs more of it before a slice that ends beyond what is
 * backed is handed out, `trim` gives the pages of an idle pool back, and
 * `release` frees the region at pool_deinit(). The model itself does no
 * I/O: pool_init_heap() backs a pool with zeroed heap memory (tests and
 * anything that needs no file behind the pool); the broker's backing, a
 * sealed memfd its peer maps read-only, is broker/pool-memfd.c.
 *
 * A slice is "published" once its message was received; only published
 * slices can be released by the peer (pool_release_published()), which is
 * what makes SLICE_RELEASE of a not yet received offset fail with ENXIO.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include "util/freelist.h"
#include "util/list.h"
#include "util/rbtree.h"

typedef struct Pool Pool;
typedef struct PoolSlice PoolSlice;

#define POOL_SLICE_MIN 8ULL
/* slice objects a cache (Pool.cache) keeps for reuse */
#define POOL_SLICE_CACHE_MAX 256U

struct PoolSlice {
        Pool *pool;
        List extent_link;       /* in pool->extents, address order */
        RBNode offset_node;     /* busy: in pool->busy (by offset) */
        RBNode free_node;       /* free: in pool->free (by size, offset) */
        uint64_t offset;
        uint64_t size;
        bool busy : 1;
        bool published : 1;
};

/**
 * struct PoolOps - how the owner of a pool's region backs it (all optional)
 * @grow:       back [0, size) of the region; 0 or a negative errno, which
 *              pool_alloc() returns unchanged. NULL: all of it is backed.
 * @trim:       give back the pages of [0, size), the pool holding no slice;
 *              true if it did. NULL: nothing to give back.
 * @release:    the pool is deinitialised: free the region and whatever
 *              backs it (pool->userdata included).
 */
typedef struct PoolOps {
        int (*grow)(Pool *pool, uint64_t size);
        bool (*trim)(Pool *pool, uint64_t size);
        void (*release)(Pool *pool);
} PoolOps;

struct Pool {
        uint8_t *base;          /* writable region of max_size bytes */
        uint64_t max_size;      /* the region: offsets [0, max_size) */
        uint64_t backed_size;   /* bytes from 0 that the backing holds */
        const PoolOps *ops;     /* NULL: all backed, nothing to trim or release */
        void *userdata;         /* for the owner of the backing */
        FreeList *cache;        /* freed slice objects go here for reuse, or NULL */

        List extents;           /* every extent, busy and free, by offset */
        RBTree busy;            /* busy slices by offset */
        RBTree free;            /* free extents by (size, offset) */
        uint64_t n_busy;        /* number of busy slices */
        uint64_t n_allocs;      /* slices ever allocated: tells a pool that was used */
        uint64_t busy_bytes;    /* bytes in busy slices */
};

#define POOL_NULL(_pool) { .extents = LIST_INIT((_pool).extents) }

void pool_init(Pool *pool, uint8_t *base, uint64_t max_size, const PoolOps *ops,
               void *userdata);
int pool_init_heap(Pool *pool, uint64_t max_size);
void pool_deinit(Pool *pool);
bool pool_trim(Pool *pool);

int pool_alloc(Pool *pool, PoolSlice **slicep, uint64_t size);
void pool_free(Pool *pool, PoolSlice *slice);

PoolSlice *pool_find(Pool *pool, uint64_t offset);
int pool_release_published(Pool *pool, uint64_t offset);

int pool_write(Pool *pool, PoolSlice *slice, uint64_t at, const void *data, size_t len);
/* writes @len bytes at @dst; never fails (what it cannot get, it zeroes) */
typedef void (*PoolFillFn)(void *dst, uint64_t len, void *userdata);

int pool_fill(Pool *pool, PoolSlice *slice, uint64_t at, uint64_t len, PoolFillFn fn,
              void *userdata);
int pool_write_iovec(Pool *pool, PoolSlice *slice, uint64_t at,
                     const struct iovec *vecs, size_t n_vecs);

/*
 * bytes the smallest slice for @size occupies: ALIGN8(size), at least 8;
 * wraps if align8_overflows(@size), which pool_alloc() checks first
 */
static inline uint64_t pool_slice_size(uint64_t size) {
        uint64_t s = (size + 7) & ~(uint64_t)7;

        return s < POOL_SLICE_MIN ? POOL_SLICE_MIN : s;
}

/* check the allocator's invariants (for tests); 0 if they hold, else -1 */
int pool_validate(Pool *pool);
