/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Pool: best-fit slice allocator over one peer's payload region
 *
 * The region [0, max_size) is cut into extents, each either a busy slice
 * (handed out by pool_alloc()) or a free hole. Every extent is a PoolSlice
 * object, linked three ways:
 *
 *  - `extents`: all extents in address order, so that a freed slice finds
 *    its neighbours in O(1) and merges with the free ones;
 *  - `busy`: busy slices keyed by offset, for pool_find() and
 *    pool_release_published() on an offset the peer sends us;
 *  - `free`: free extents keyed by (size, offset), so that the leftmost
 *    extent of at least the wanted size is the best fit: the smallest hole
 *    that fits, the lowest offset among holes of that size.
 *
 * A slice is always carved from the start of its hole; the rest of the hole
 * stays free in place. All operations are O(log n) in the number of extents.
 *
 * Invariants (checked by pool_validate()):
 *  - the extents tile [0, max_size) exactly, in order and without gaps;
 *  - no two free extents are adjacent (frees merge at once), so each free
 *    extent is a maximal hole;
 *  - an extent is in `busy` iff it is busy and in `free` iff it is free;
 *  - offsets are 8-byte aligned; busy sizes are multiples of 8, at least
 *    POOL_SLICE_MIN (only the last free extent may have an odd size, when
 *    max_size is not a multiple of 8);
 *  - n_busy and busy_bytes are the count and byte sum of busy slices;
 *  - every busy slice ends within backed_size, and backed_size <= max_size.
 *
 * The extent list starts out empty, and the single free extent covering the
 * region is created by the first pool_alloc(): this keeps pool_init() free
 * of allocations, so it cannot fail. Once created, an extent list is never
 * empty again until pool_deinit(). An empty list therefore means "nothing
 * allocated yet, all of the region free".
 *
 * The backing grows geometrically (at least doubling, in page multiples,
 * capped at max_size), so a peer receiving many messages costs O(log n)
 * grow calls; it never shrinks while the pool lives.
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "bus/pool.h"
#include "util/freelist.h"
#include "util/list.h"
#include "util/macro.h"
#include "util/rbtree.h"

/* the backing grows in multiples of this */
#define POOL_GROW_ALIGN 4096ULL
/* freed PoolSlice objects kept for reuse, process-wide */

typedef struct PoolFreeKey {
        uint64_t size;
        uint64_t offset;
} PoolFreeKey;

static PoolSlice *pool_slice_from_extent(List *link) {
        return list_entry(link, PoolSlice, extent_link);
}

static int pool_busy_compare(const RBNode *n, const void *key) {
        const PoolSlice *slice = container_of(n, PoolSlice, offset_node);
        uint64_t offset = *(const uint64_t *)key;

        if (offset < slice->offset)
                return -1;
        return offset > slice->offset;
}

static int pool_free_compare(const RBNode *n, const void *key) {
        const PoolSlice *slice = container_of(n, PoolSlice, free_node);
        const PoolFreeKey *k = key;

        if (k->size != slice->size)
                return k->size < slice->size ? -1 : 1;
        if (k->offset != slice->offset)
                return k->offset < slice->offset ? -1 : 1;
        return 0;
}

static void pool_busy_link(Pool *pool, PoolSlice *slice) {
        RBNode *parent, **slot;

        slot = rbtree_find_slot(&pool->busy, pool_busy_compare, &slice->offset, &parent);
        assert(slot);
        rbtree_add(&pool->busy, parent, slot, &slice->offset_node);
}

static void pool_free_link(Pool *pool, PoolSlice *slice) {
        PoolFreeKey key = { .size = slice->size, .offset = slice->offset };
        RBNode *parent, **slot;

        slot = rbtree_find_slot(&pool->free, pool_free_compare, &key, &parent);
        assert(slot);
        rbtree_add(&pool->free, parent, slot, &slice->free_node);
}

/* a slice object goes back to the owner's cache (pool->cache), or is freed */
static void pool_slice_drop(Pool *pool, PoolSlice *slice) {
        if (pool->cache)
                freelist_push(pool->cache, slice);
        else
                free(slice);
}

static PoolSlice *pool_slice_new(Pool *pool, uint64_t offset, uint64_t size) {
        PoolSlice *slice = pool->cache ? freelist_pop(pool->cache) : NULL;

        if (!slice)
                slice = malloc(sizeof(*slice));
        if (!slice)
                return NULL;

        *slice = (PoolSlice){
                .pool = pool,
                .extent_link = LIST_INIT(slice->extent_link),
                .offset_node = RBNODE_INIT(slice->offset_node),
                .free_node = RBNODE_INIT(slice->free_node),
                .offset = offset,
                .size = size,
        };
        return slice;
}

/* create the free extent covering the whole region, unless extents exist */
static int pool_extents_ensure(Pool *pool) {
        PoolSlice *slice;

        if (!list_is_empty(&pool->extents) || pool->max_size == 0)
                return 0;

        slice = pool_slice_new(pool, 0, pool->max_size);
        if (!slice)
                return -ENOMEM;

        list_link_tail(&pool->extents, &slice->extent_link);
        pool_free_link(pool, slice);
        return 0;
}

/* the leftmost free extent of at least @size bytes: lower bound of (size, 0) */
static PoolSlice *pool_find_fit(Pool *pool, uint64_t size) {
        PoolSlice *best = NULL, *slice;
        RBNode *n = pool->free.root;

        while (n) {
                slice = container_of(n, PoolSlice, free_node);
                if (slice->size >= size) {
                        best = slice;
                        n = n->left;
                } else {
                        n = n->right;
                }
        }
        return best;
}

/* what to back for a slice ending at @end: page-aligned, at least doubling */
static uint64_t pool_grow_target(const Pool *pool, uint64_t end) {
        uint64_t target, twice;

        if (__builtin_add_overflow(end, POOL_GROW_ALIGN - 1, &target))
                target = UINT64_MAX;
        else
                target &= ~(POOL_GROW_ALIGN - 1);

        if (__builtin_mul_overflow(pool->backed_size, (uint64_t)2, &twice))
                twice = UINT64_MAX;

        return MIN(MAX(target, twice), pool->max_size);
}

static int pool_grow(Pool *pool, uint64_t end) {
        uint64_t target;
        int r;

        if (!pool->ops || !pool->ops->grow) {
                pool->backed_size = pool->max_size;
                return 0;
        }

        target = pool_grow_target(pool, end);
        r = pool->ops->grow(pool, target);
        if (r < 0)
                return r;

        pool->backed_size = target;
        return 0;
}

/**
 * pool_init() - initialise a pool over a caller-provided region
 * @pool:       pool to initialise
 * @base:       writable region of at least @max_size bytes (may be NULL if
 *              nothing is ever written)
 * @max_size:   size of the region; offsets are [0, max_size)
 * @ops:        how the owner backs the region (see PoolOps), or NULL if all
 *              of it is backed and nothing is to be released
 * @userdata:   stored in @pool->userdata for the owner of the backing
 *
 * With a grow callback the pool starts with nothing backed (backed_size
 * 0); an owner that backs some of the region up front may raise
 * @pool->backed_size right after this call. Without one, the whole region
 * counts as backed. No allocation happens here: the initial free extent is
 * created by the first pool_alloc().
 */
void pool_init(Pool *pool, uint8_t *base, uint64_t max_size, const PoolOps *ops,
               void *userdata) {
        *pool = (Pool){
                .base = base,
                .max_size = max_size,
                .backed_size = ops && ops->grow ? 0 : max_size,
                .ops = ops,
                .userdata = userdata,
                .extents = LIST_INIT(pool->extents),
                .busy = RBTREE_INIT,
                .free = RBTREE_INIT,
        };
}

static void pool_heap_release(Pool *pool) {
        free(pool->base);
}

static const PoolOps pool_heap_ops = {
        .release = pool_heap_release,
};

/**
 * pool_init_heap() - initialise a pool over zeroed memory of its own
 * @pool:       pool to initialise
 * @max_size:   size of the region
 *
 * Allocates @max_size zeroed bytes (large allocations are mapped lazily by
 * the allocator, so untouched pages cost nothing) and uses them as base,
 * all of it backed. pool_deinit() frees them. A @max_size of 0 gives an
 * empty pool without a region. On failure @pool is left initialised as an
 * empty pool, so pool_deinit() on it is harmless.
 *
 * Return: 0 on success,
 *         -ENOMEM if the region cannot be allocated.
 */
int pool_init_heap(Pool *pool, uint64_t max_size) {
        void *p;

        pool_init(pool, NULL, 0, NULL, NULL);
        if (max_size == 0)
                return 0;
        if (max_size > SIZE_MAX)
                return -ENOMEM;

        p = calloc(1, (size_t)max_size);
        if (!p)
                return -ENOMEM;

        pool_init(pool, p, max_size, &pool_heap_ops, NULL);
        return 0;
}

/**
 * pool_deinit() - free every extent and release the region
 * @pool:       pool to tear down
 *
 * Gives the pages of the pool back first (pool_trim(): a descriptor the
 * peer kept must not keep them), frees all extent objects, busy slices
 * included (pointers to them are dangling afterwards), lets the owner
 * release the region (PoolOps.release) and leaves @pool as an empty pool of
 * size 0, so a second call is harmless.
 */
void pool_deinit(Pool *pool) {
        PoolSlice *slice, *next;

        list_for_each_entry_safe(slice, next, &pool->extents, extent_link) {
                list_unlink(&slice->extent_link);
                pool_slice_drop(pool, slice);
        }
        pool->n_busy = 0;
        pool->busy_bytes = 0;
        pool_trim(pool);

        if (pool->ops && pool->ops->release)
                pool->ops->release(pool);

        pool_init(pool, NULL, 0, NULL, NULL);
}

/**
 * pool_trim() - give the pages of an idle pool back
 * @pool:       pool
 *
 * A pool with no busy slice asks its owner to give back everything it
 * backed (PoolOps.trim), and starts backing afresh with the next slice. A
 * pool that holds slices, or whose owner has nothing to give back, is left
 * alone.
 *
 * Return: true if pages were given back.
 */
bool pool_trim(Pool *pool) {
        if (!pool->ops || !pool->ops->trim || pool->n_busy || !pool->backed_size)
                return false;
        if (!pool->ops->trim(pool, pool->backed_size))
                return false;
        pool->backed_size = 0;
        return true;
}

/**
 * pool_alloc() - reserve a slice
 * @pool:       pool to allocate from
 * @slicep:     out: the new slice, written only on success
 * @size:       bytes wanted; the slice is pool_slice_size(@size) bytes
 *
 * Places the slice best fit: at the start of the smallest free extent that
 * can hold it, the lowest-offset one among extents of that size. If the
 * slice ends beyond what is backed, the pool's grow callback is asked to
 * back more first. The slice is busy and not published. On failure the pool
 * is as it was.
 *
 * Return: 0 on success,
 *         -EMSGSIZE if no slice of @size could fit even in an empty pool,
 *         -EXFULL if no free extent is large enough right now,
 *         -ENOMEM if an extent object cannot be allocated,
 *         or the negative errno the grow callback returned.
 */
int pool_alloc(Pool *pool, PoolSlice **slicep, uint64_t size) {
        _cleanup_(freep) PoolSlice *rest = NULL;
        PoolSlice *slice;
        uint64_t need, end;
        int r;

        if (align8_overflows(size) || pool_slice_size(size) > pool->max_size)
                return -EMSGSIZE;
        need = pool_slice_size(size);

        r = pool_extents_ensure(pool);
        if (r < 0)
                return r;

        slice = pool_find_fit(pool, need);
        if (!slice)
                return -EXFULL;

        /* everything that can fail comes before the first change to the pool */
        end = slice->offset + need;
        if (slice->size > need) {
                rest = pool_slice_new(pool, end, slice->size - need);
                if (!rest)
                        return -ENOMEM;
        }

        if (end > pool->backed_size) {
                r = pool_grow(pool, end);
                if (r < 0)
                        return r;
        }

        /* the free key changes with the size, so unlink before shrinking */
        rbtree_remove(&pool->free, &slice->free_node);
        if (rest) {
                list_link_after(&slice->extent_link, &rest->extent_link);
                pool_free_link(pool, rest);
                rest = NULL;
        }

        slice->size = need;
        slice->busy = true;
        slice->published = false;
        pool_busy_link(pool, slice);
        ++pool->n_busy;
        ++pool->n_allocs;
        pool->busy_bytes += need;

        *slicep = slice;
        return 0;
}

/**
 * pool_free() - return a busy slice to the pool
 * @pool:       pool the slice belongs to
 * @slice:      busy slice, or NULL
 *
 * Marks the slice free and merges it with free neighbours, so @slice may be
 * freed and must not be used afterwards. Whether it was published does not
 * matter; the broker frees unpublished slices when it drops a message.
 */
void pool_free(Pool *pool, PoolSlice *slice) {
        PoolSlice *prev, *next;

        if (!slice)
                return;

        assert(slice->pool == pool);
        assert(slice->busy);

        rbtree_remove(&pool->busy, &slice->offset_node);
        --pool->n_busy;
        pool->busy_bytes -= slice->size;
        slice->busy = false;
        slice->published = false;

        prev = pool_slice_from_extent(list_prev(&pool->extents, &slice->extent_link));
        if (prev && !prev->busy) {
                rbtree_remove(&pool->free, &prev->free_node);
                prev->size += slice->size;
                list_unlink(&slice->extent_link);
                pool_slice_drop(pool, slice);
                slice = prev;
        }

        next = pool_slice_from_extent(list_next(&pool->extents, &slice->extent_link));
        if (next && !next->busy) {
                rbtree_remove(&pool->free, &next->free_node);
                slice->size += next->size;
                list_unlink(&next->extent_link);
                free(next);
        }

        pool_free_link(pool, slice);
}

/**
 * pool_find() - look up a busy slice by its offset
 * @pool:       pool to search
 * @offset:     offset the slice must start at
 *
 * Return: the busy slice starting exactly at @offset, or NULL.
 */
PoolSlice *pool_find(Pool *pool, uint64_t offset) {
        RBNode *n;

        n = rbtree_find(&pool->busy, pool_busy_compare, &offset);
        return rbnode_entry(n, PoolSlice, offset_node);
}

/**
 * pool_release_published() - free a slice on the peer's request
 * @pool:       pool of the peer
 * @offset:     offset the peer released
 *
 * SLICE_RELEASE: frees the busy slice at @offset, but only once it was
 * published (its message received); the peer cannot know other offsets.
 *
 * Return: 0 on success,
 *         -ENXIO if no busy slice starts at @offset or it is not published.
 */
int pool_release_published(Pool *pool, uint64_t offset) {
        PoolSlice *slice;

        slice = pool_find(pool, offset);
        if (!slice || !slice->published)
                return -ENXIO;

        pool_free(pool, slice);
        return 0;
}

/**
 * pool_write() - copy bytes into a slice
 * @pool:       pool the slice belongs to
 * @slice:      busy slice
 * @at:         offset within the slice
 * @data:       bytes to copy
 * @len:        number of bytes
 *
 * Copies to base + slice offset + @at, after checking that
 * [@at, @at + @len) lies within the slice. Nothing is written on failure.
 *
 * Return: 0 on success,
 *         -EINVAL if the range overflows or does not lie within the slice.
 */
int pool_write(Pool *pool, PoolSlice *slice, uint64_t at, const void *data, size_t len) {
        uint64_t end;

        assert(slice->pool == pool);
        assert(slice->busy);

        if (__builtin_add_overflow(at, (uint64_t)len, &end) || end > slice->size)
                return -EINVAL;

        /* memcpy() with a NULL pointer is undefined even for 0 bytes */
        if (len > 0)
                memcpy(pool->base + slice->offset + at, data, len);
        return 0;
}

/**
 * pool_fill() - let a writer fill part of a slice
 * @pool:       pool the slice belongs to
 * @slice:      busy slice
 * @at:         offset within the slice
 * @len:        bytes to fill
 * @fn:         writes them, straight into the pool's memory
 * @userdata:   passed to @fn
 *
 * For a payload the broker reads from a file: no copy in between.
 *
 * Return: 0, or -EINVAL if the range is not within the slice.
 */
int pool_fill(Pool *pool, PoolSlice *slice, uint64_t at, uint64_t len, PoolFillFn fn,
              void *userdata) {
        uint64_t end;

        assert(slice->pool == pool);
        assert(slice->busy);

        if (__builtin_add_overflow(at, len, &end) || end > slice->size)
                return -EINVAL;
        if (len > 0)
                fn(pool->base + slice->offset + at, len, userdata);
        return 0;
}

/**
 * pool_write_iovec() - copy a vector of buffers into a slice, back to back
 * @pool:       pool the slice belongs to
 * @slice:      busy slice
 * @at:         offset within the slice of the first byte
 * @vecs:       buffers to copy, in order
 * @n_vecs:     number of buffers
 *
 * Checks the total length against the slice before copying anything, so
 * the slice is either written completely or not at all.
 *
 * Return: 0 on success,
 *         -EINVAL if the total length overflows or the range does not lie
 *         within the slice.
 */
int pool_write_iovec(Pool *pool, PoolSlice *slice, uint64_t at,
                     const struct iovec *vecs, size_t n_vecs) {
        uint64_t end = at;
        size_t i;

        assert(slice->pool == pool);
        assert(slice->busy);

        for (i = 0; i < n_vecs; ++i)
                if (__builtin_add_overflow(end, (uint64_t)vecs[i].iov_len, &end))
                        return -EINVAL;
        if (end > slice->size)
                return -EINVAL;

        for (i = 0; i < n_vecs; ++i) {
                if (vecs[i].iov_len == 0)
                        continue;
                memcpy(pool->base + slice->offset + at, vecs[i].iov_base, vecs[i].iov_len);
                at += vecs[i].iov_len;
        }
        return 0;
}

/* one extent on its own; @prev is the extent before it or NULL */
static int pool_validate_extent(Pool *pool, const PoolSlice *slice, const PoolSlice *prev,
                                uint64_t pos) {
        if (slice->pool != pool || slice->offset != pos || slice->size == 0)
                return -1;
        if (slice->offset % 8 != 0 || slice->size > pool->max_size - slice->offset)
                return -1;
        if (prev && !prev->busy && !slice->busy)
                return -1;
        if (slice->busy != rbnode_is_linked(&slice->offset_node))
                return -1;
        if (slice->busy == rbnode_is_linked(&slice->free_node))
                return -1;
        if (!slice->busy)
                return slice->published ? -1 : 0;

        if (slice->size % 8 != 0 || slice->size < POOL_SLICE_MIN)
                return -1;
        if (slice->offset + slice->size > pool->backed_size)
                return -1;
        return 0;
}

/* the busy tree holds exactly the busy slices, in strictly increasing order */
static int pool_validate_busy_tree(Pool *pool, uint64_t n_busy) {
        const PoolSlice *slice, *prev = NULL;
        uint64_t n = 0;
        RBNode *node;

        if (rbtree_validate(&pool->busy) != (long)n_busy)
                return -1;

        for (node = rbtree_first(&pool->busy); node; node = rbnode_next(node), ++n) {
                slice = container_of(node, PoolSlice, offset_node);
                if (slice->pool != pool || !slice->busy)
                        return -1;
                if (prev && prev->offset >= slice->offset)
                        return -1;
                prev = slice;
        }
        return n == n_busy ? 0 : -1;
}

/* the free tree holds exactly the free extents, in strictly increasing order */
static int pool_validate_free_tree(Pool *pool, uint64_t n_free) {
        const PoolSlice *slice, *prev = NULL;
        PoolFreeKey key;
        uint64_t n = 0;
        RBNode *node;

        if (rbtree_validate(&pool->free) != (long)n_free)
                return -1;

        for (node = rbtree_first(&pool->free); node; node = rbnode_next(node), ++n) {
                slice = container_of(node, PoolSlice, free_node);
                if (slice->pool != pool || slice->busy)
                        return -1;
                key = (PoolFreeKey){ .size = slice->size, .offset = slice->offset };
                if (prev && pool_free_compare(&prev->free_node, &key) <= 0)
                        return -1;
                prev = slice;
        }
        return n == n_free ? 0 : -1;
}

/**
 * pool_validate() - check every invariant of the allocator
 * @pool:       pool to check
 *
 * Meant for tests: walks all extents and both trees, O(n). Checks that the
 * extents tile [0, max_size) in order (or that there are none and nothing is
 * busy), that no two free extents are adjacent, that tree membership matches
 * each extent's busy flag, that both trees are valid red-black trees in key
 * order, that busy slices are aligned, within the backing and at least
 * POOL_SLICE_MIN bytes, and that n_busy and busy_bytes are exact.
 *
 * Return: 0 if all invariants hold, -1 if any is broken.
 */
int pool_validate(Pool *pool) {
        const PoolSlice *slice, *prev = NULL;
        uint64_t pos = 0, n_busy = 0, n_free = 0, busy_bytes = 0;

        if (pool->backed_size > pool->max_size)
                return -1;

        list_for_each_entry(slice, &pool->extents, extent_link) {
                if (pool_validate_extent(pool, slice, prev, pos) < 0)
                        return -1;
                if (slice->busy) {
                        ++n_busy;
                        busy_bytes += slice->size;
                } else {
                        ++n_free;
                }
                pos += slice->size;
                prev = slice;
        }

        if (prev && pos != pool->max_size)
                return -1;
        if (n_busy != pool->n_busy || busy_bytes != pool->busy_bytes)
                return -1;
        if (pool_validate_busy_tree(pool, n_busy) < 0)
                return -1;
        if (pool_validate_free_tree(pool, n_free) < 0)
                return -1;
        return 0;
}
