/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for the pool slice allocator
 *
 * Every test builds its own pool (over a local buffer, a calloc()ed one with
 * a grow callback, or zeroed heap memory) and calls pool_validate() after
 * each step, so the extent list, both trees and the counters are checked
 * throughout. Placement is checked by hand for small layouts (best fit,
 * lowest offset among equal holes, merging) and, in the randomized test,
 * against a brute-force model: a map of the region in 8-byte units, scanned
 * for the smallest, then lowest, maximal hole on every allocation. Each
 * slice is filled with its own tag on allocation and checked on free, so
 * overlapping slices or misplaced writes show up as corrupted tags.
 * Leaks (e.g. on a failed grow) are left to the ASan build to catch.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <cmocka.h>
#include "bus/pool.h"
#include "util/list.h"
#include "util/macro.h"

#define assert_pool_valid(_pool) assert_int_equal(pool_validate(_pool), 0)

/* a grow callback that records its calls and can be told to fail */
typedef struct GrowLog {
        uint64_t sizes[64];
        size_t n_calls;
        int fail;               /* returned instead of growing, if non-zero */
} GrowLog;

static int grow_log_grow(Pool *pool, uint64_t size) {
        GrowLog *log = pool->userdata;

        assert_true(size > pool->backed_size);
        assert_true(size <= pool->max_size);
        if (log->fail)
                return log->fail;
        assert_true(log->n_calls < sizeof(log->sizes) / sizeof(log->sizes[0]));
        log->sizes[log->n_calls++] = size;
        return 0;
}

static const PoolOps grow_log_ops = {
        .grow = grow_log_grow,
};

static PoolSlice *alloc_ok(Pool *pool, uint64_t size) {
        PoolSlice *slice = NULL;

        assert_int_equal(pool_alloc(pool, &slice, size), 0);
        assert_non_null(slice);
        assert_true(slice->busy);
        assert_false(slice->published);
        assert_int_equal(slice->size, pool_slice_size(size));
        assert_int_equal(slice->offset % 8, 0);
        assert_pool_valid(pool);
        return slice;
}

/* pool_alloc() fails with @err and leaves the output parameter alone */
static void alloc_fails(Pool *pool, uint64_t size, int err) {
        PoolSlice *sentinel = (PoolSlice *)(uintptr_t)0x1, *slice = sentinel;

        assert_int_equal(pool_alloc(pool, &slice, size), err);
        assert_ptr_equal(slice, sentinel);
        assert_pool_valid(pool);
}

static void free_ok(Pool *pool, PoolSlice *slice) {
        pool_free(pool, slice);
        assert_pool_valid(pool);
}

static size_t count_free_extents(Pool *pool) {
        PoolSlice *slice;
        size_t n = 0;

        list_for_each_entry(slice, &pool->extents, extent_link)
                n += !slice->busy;
        return n;
}

/* the free extent starting at @offset must exist with @size bytes */
static void assert_free_extent(Pool *pool, uint64_t offset, uint64_t size) {
        PoolSlice *slice;

        list_for_each_entry(slice, &pool->extents, extent_link) {
                if (slice->offset != offset)
                        continue;
                assert_false(slice->busy);
                assert_int_equal(slice->size, size);
                return;
        }
        fail_msg("no extent at offset %llu", (unsigned long long)offset);
}

static void test_slice_size(void **state) {
        Pool pool;
        PoolSlice *a, *b, *c, *d;

        assert_int_equal(pool_slice_size(0), 8);
        assert_int_equal(pool_slice_size(1), 8);
        assert_int_equal(pool_slice_size(7), 8);
        assert_int_equal(pool_slice_size(8), 8);
        assert_int_equal(pool_slice_size(9), 16);
        assert_int_equal(pool_slice_size(16), 16);
        assert_int_equal(pool_slice_size(17), 24);

        assert_int_equal(pool_init_heap(&pool, 4096), 0);
        assert_pool_valid(&pool);
        assert_int_equal(pool.backed_size, 4096);
        assert_non_null(pool.ops);
        assert_null(pool.ops->grow);

        /* an empty message still takes a slice of POOL_SLICE_MIN bytes */
        a = alloc_ok(&pool, 0);
        b = alloc_ok(&pool, 1);
        c = alloc_ok(&pool, 9);
        d = alloc_ok(&pool, 24);
        assert_int_equal(a->offset, 0);
        assert_int_equal(a->size, 8);
        assert_int_equal(b->offset, 8);
        assert_int_equal(b->size, 8);
        assert_int_equal(c->offset, 16);
        assert_int_equal(c->size, 16);
        assert_int_equal(d->offset, 32);
        assert_int_equal(d->size, 24);
        assert_int_equal(pool.n_busy, 4);
        assert_int_equal(pool.busy_bytes, 8 + 8 + 16 + 24);

        free_ok(&pool, c);
        assert_int_equal(pool.n_busy, 3);
        assert_int_equal(pool.busy_bytes, 8 + 8 + 24);

        pool_deinit(&pool);
        assert_pool_valid(&pool);
}

static void test_best_fit(void **state) {
        uint8_t buf[4096];
        PoolSlice *s[6], *x;
        Pool pool;

        pool_init(&pool, buf, sizeof(buf), NULL, NULL);
        assert_pool_valid(&pool);
        assert_int_equal(pool.backed_size, sizeof(buf));

        /* holes of 32 at 0, 16 at 40, 64 at 64, and the tail from 136 */
        s[0] = alloc_ok(&pool, 32);
        s[1] = alloc_ok(&pool, 8);
        s[2] = alloc_ok(&pool, 16);
        s[3] = alloc_ok(&pool, 8);
        s[4] = alloc_ok(&pool, 64);
        s[5] = alloc_ok(&pool, 8);
        assert_int_equal(s[5]->offset, 128);
        free_ok(&pool, s[0]);
        free_ok(&pool, s[2]);
        free_ok(&pool, s[4]);
        assert_int_equal(count_free_extents(&pool), 4);

        /* 16 bytes: the 16-byte hole, though lower holes are bigger */
        x = alloc_ok(&pool, 10);
        assert_int_equal(x->offset, 40);

        /* 24 bytes: the 32-byte hole, whose rest stays free in place */
        x = alloc_ok(&pool, 20);
        assert_int_equal(x->offset, 0);
        assert_free_extent(&pool, 24, 8);

        /* exactly the 8 bytes left there, not the 64-byte hole */
        x = alloc_ok(&pool, 8);
        assert_int_equal(x->offset, 24);

        /* 40 bytes: the 64-byte hole rather than the tail */
        x = alloc_ok(&pool, 40);
        assert_int_equal(x->offset, 64);
        assert_free_extent(&pool, 104, 24);

        /* too big for any hole but the tail */
        x = alloc_ok(&pool, 100);
        assert_int_equal(x->offset, 136);

        pool_deinit(&pool);
        assert_pool_valid(&pool);
}

static void test_equal_holes_lowest_offset(void **state) {
        uint8_t buf[1024];
        PoolSlice *s[10], *x;
        Pool pool;
        size_t i;

        pool_init(&pool, buf, sizeof(buf), NULL, NULL);
        for (i = 0; i < 10; ++i)
                s[i] = alloc_ok(&pool, 16);

        /* 16-byte holes at 128, 64, 96, freed in that order */
        free_ok(&pool, s[8]);
        free_ok(&pool, s[4]);
        free_ok(&pool, s[6]);
        /* and a 32-byte hole at 16, lower but bigger */
        free_ok(&pool, s[1]);
        free_ok(&pool, s[2]);
        assert_free_extent(&pool, 16, 32);
        assert_int_equal(count_free_extents(&pool), 5);

        /* equal sizes: lowest offset first, whatever the order of freeing */
        x = alloc_ok(&pool, 16);
        assert_int_equal(x->offset, 64);
        x = alloc_ok(&pool, 9);
        assert_int_equal(x->offset, 96);
        x = alloc_ok(&pool, 16);
        assert_int_equal(x->offset, 128);

        /* only the 32-byte hole and the tail are left: 32 wins */
        x = alloc_ok(&pool, 16);
        assert_int_equal(x->offset, 16);
        assert_free_extent(&pool, 32, 16);

        /* the rest of a split hole is a hole like any other */
        free_ok(&pool, s[9]);
        assert_free_extent(&pool, 144, sizeof(buf) - 144);
        free_ok(&pool, s[7]);
        assert_free_extent(&pool, 112, 16);
        x = alloc_ok(&pool, 16);
        assert_int_equal(x->offset, 32);
        x = alloc_ok(&pool, 16);
        assert_int_equal(x->offset, 112);

        pool_deinit(&pool);
        assert_pool_valid(&pool);
}

static void test_merge(void **state) {
        uint8_t buf[256];
        PoolSlice *s[6];
        Pool pool;
        size_t i;

        pool_init(&pool, buf, sizeof(buf), NULL, NULL);
        for (i = 0; i < 6; ++i)
                s[i] = alloc_ok(&pool, 16);
        assert_int_equal(list_count(&pool.extents), 7);

        /* free with busy neighbours: a new hole */
        free_ok(&pool, s[1]);
        assert_int_equal(list_count(&pool.extents), 7);
        assert_free_extent(&pool, 16, 16);

        /* free right of a hole: merges with its left neighbour */
        free_ok(&pool, s[2]);
        assert_int_equal(list_count(&pool.extents), 6);
        assert_free_extent(&pool, 16, 32);

        /* free left of a hole: merges with its right neighbour */
        free_ok(&pool, s[0]);
        assert_int_equal(list_count(&pool.extents), 5);
        assert_free_extent(&pool, 0, 48);

        /* free between two holes: all three merge */
        free_ok(&pool, s[4]);
        assert_free_extent(&pool, 64, 16);
        free_ok(&pool, s[3]);
        assert_int_equal(list_count(&pool.extents), 3);
        assert_free_extent(&pool, 0, 80);

        /* free the last one: one free extent covers the region again */
        free_ok(&pool, s[5]);
        assert_int_equal(list_count(&pool.extents), 1);
        assert_free_extent(&pool, 0, sizeof(buf));
        assert_int_equal(pool.n_busy, 0);
        assert_int_equal(pool.busy_bytes, 0);

        /* pool_free(NULL) is a no-op */
        free_ok(&pool, NULL);

        pool_deinit(&pool);
        assert_pool_valid(&pool);
}

static void test_exfull_fragmented(void **state) {
        uint8_t buf[64];
        PoolSlice *s[8];
        Pool pool;
        size_t i;

        pool_init(&pool, buf, sizeof(buf), NULL, NULL);
        for (i = 0; i < 8; ++i)
                s[i] = alloc_ok(&pool, 8);

        /* completely full */
        alloc_fails(&pool, 0, -EXFULL);

        /* 32 bytes free, but in holes of 8: 16 does not fit */
        for (i = 0; i < 8; i += 2)
                free_ok(&pool, s[i]);
        assert_int_equal(pool.busy_bytes, 32);
        alloc_fails(&pool, 16, -EXFULL);
        alloc_fails(&pool, 9, -EXFULL);
        assert_int_equal(count_free_extents(&pool), 4);

        /* 8 still fits, in the lowest hole */
        s[0] = alloc_ok(&pool, 8);
        assert_int_equal(s[0]->offset, 0);

        pool_deinit(&pool);
        assert_pool_valid(&pool);
}

static void test_emsgsize(void **state) {
        Pool pool;
        PoolSlice *slice;

        assert_int_equal(pool_init_heap(&pool, 4096), 0);
        alloc_fails(&pool, 4097, -EMSGSIZE);
        alloc_fails(&pool, UINT64_MAX, -EMSGSIZE);
        alloc_fails(&pool, UINT64_MAX - 6, -EMSGSIZE);
        alloc_fails(&pool, UINT64_MAX - 7, -EMSGSIZE);
        slice = alloc_ok(&pool, 4096);
        assert_int_equal(slice->offset, 0);
        /* a full pool still says EMSGSIZE for what could never fit */
        alloc_fails(&pool, 4097, -EMSGSIZE);
        alloc_fails(&pool, 1, -EXFULL);
        pool_deinit(&pool);

        /* a region ending unaligned: the slice, not the size, must fit */
        pool_init(&pool, NULL, 20, NULL, NULL);
        alloc_fails(&pool, 17, -EMSGSIZE);
        slice = alloc_ok(&pool, 16);
        alloc_fails(&pool, 1, -EXFULL);
        free_ok(&pool, slice);
        slice = alloc_ok(&pool, 1);
        slice = alloc_ok(&pool, 1);
        assert_int_equal(slice->offset, 8);
        assert_free_extent(&pool, 16, 4);
        alloc_fails(&pool, 1, -EXFULL);
        pool_deinit(&pool);

        /* the largest region: only the alignment overflow is left to catch */
        pool_init(&pool, NULL, UINT64_MAX, NULL, NULL);
        alloc_fails(&pool, UINT64_MAX, -EMSGSIZE);
        alloc_fails(&pool, UINT64_MAX - 6, -EMSGSIZE);
        slice = alloc_ok(&pool, UINT64_MAX - 7);
        assert_int_equal(slice->size, UINT64_MAX - 7);
        assert_free_extent(&pool, UINT64_MAX - 7, 7);
        alloc_fails(&pool, 0, -EXFULL);
        pool_deinit(&pool);

        /* an empty region */
        assert_int_equal(pool_init_heap(&pool, 0), 0);
        assert_pool_valid(&pool);
        alloc_fails(&pool, 0, -EMSGSIZE);
        pool_deinit(&pool);
        assert_pool_valid(&pool);
}

static void test_find_release(void **state) {
        PoolSlice *a, *b, *c;
        uint8_t buf[512];
        Pool pool;

        pool_init(&pool, buf, sizeof(buf), NULL, NULL);
        assert_null(pool_find(&pool, 0));
        assert_int_equal(pool_release_published(&pool, 0), -ENXIO);
        assert_pool_valid(&pool);

        a = alloc_ok(&pool, 16);
        b = alloc_ok(&pool, 32);
        c = alloc_ok(&pool, 8);
        assert_ptr_equal(pool_find(&pool, 0), a);
        assert_ptr_equal(pool_find(&pool, 16), b);
        assert_ptr_equal(pool_find(&pool, 48), c);
        /* inside a slice, in the free tail, beyond the region */
        assert_null(pool_find(&pool, 8));
        assert_null(pool_find(&pool, 24));
        assert_null(pool_find(&pool, 56));
        assert_null(pool_find(&pool, UINT64_MAX));

        /* unknown offsets */
        assert_int_equal(pool_release_published(&pool, 8), -ENXIO);
        assert_int_equal(pool_release_published(&pool, 56), -ENXIO);
        assert_int_equal(pool_release_published(&pool, UINT64_MAX), -ENXIO);
        assert_pool_valid(&pool);

        /* not yet published: refused, and the slice stays busy */
        assert_int_equal(pool_release_published(&pool, 16), -ENXIO);
        assert_pool_valid(&pool);
        assert_ptr_equal(pool_find(&pool, 16), b);
        assert_int_equal(pool.n_busy, 3);

        b->published = true;
        assert_pool_valid(&pool);
        assert_int_equal(pool_release_published(&pool, 16), 0);
        assert_pool_valid(&pool);
        assert_null(pool_find(&pool, 16));
        assert_int_equal(pool.n_busy, 2);
        assert_int_equal(pool.busy_bytes, 24);

        /* released twice */
        assert_int_equal(pool_release_published(&pool, 16), -ENXIO);
        assert_pool_valid(&pool);

        /* a reused offset is unpublished again */
        b = alloc_ok(&pool, 32);
        assert_int_equal(b->offset, 16);
        assert_int_equal(pool_release_published(&pool, 16), -ENXIO);
        assert_pool_valid(&pool);

        a->published = true;
        c->published = true;
        assert_int_equal(pool_release_published(&pool, 0), 0);
        assert_pool_valid(&pool);
        assert_int_equal(pool_release_published(&pool, 48), 0);
        assert_pool_valid(&pool);
        free_ok(&pool, b);
        assert_int_equal(list_count(&pool.extents), 1);

        pool_deinit(&pool);
        assert_pool_valid(&pool);
}

static void test_grow(void **state) {
        const uint64_t max = 100000;
        PoolSlice *a, *b, *c, *d, *e, *f, *g, *slice, *sentinel = (PoolSlice *)(uintptr_t)0x1;
        GrowLog log = {};
        size_t n_extents;
        uint8_t *buf;
        Pool pool;

        buf = calloc(1, max);
        assert_non_null(buf);
        pool_init(&pool, buf, max, &grow_log_ops, &log);
        assert_pool_valid(&pool);
        assert_int_equal(pool.backed_size, 0);
        assert_ptr_equal(pool.userdata, &log);

        /* the first slice backs one page */
        a = alloc_ok(&pool, 8);
        assert_int_equal(log.n_calls, 1);
        assert_int_equal(log.sizes[0], 4096);
        assert_int_equal(pool.backed_size, 4096);

        /* within what is backed: no call */
        b = alloc_ok(&pool, 4000);
        assert_int_equal(b->offset, 8);
        assert_int_equal(log.n_calls, 1);

        /* ends at 12000: the page-rounded end beats doubling */
        c = alloc_ok(&pool, 7992);
        assert_int_equal(c->offset, 4008);
        assert_int_equal(log.n_calls, 2);
        assert_int_equal(log.sizes[1], 12288);
        assert_int_equal(pool.backed_size, 12288);

        /* ends at 12400: doubling beats the page-rounded end */
        d = alloc_ok(&pool, 400);
        assert_int_equal(d->offset, 12000);
        assert_int_equal(log.n_calls, 3);
        assert_int_equal(log.sizes[2], 24576);

        /* a failing grow is passed on, and nothing changes */
        log.fail = -ENOSPC;
        n_extents = list_count(&pool.extents);
        slice = sentinel;
        assert_int_equal(pool_alloc(&pool, &slice, 20000), -ENOSPC);
        assert_ptr_equal(slice, sentinel);
        assert_pool_valid(&pool);
        /* ...also when the whole rest of the region would be taken */
        assert_int_equal(pool_alloc(&pool, &slice, max - 12400), -ENOSPC);
        assert_ptr_equal(slice, sentinel);
        assert_pool_valid(&pool);
        assert_int_equal(list_count(&pool.extents), n_extents);
        assert_int_equal(pool.backed_size, 24576);
        assert_int_equal(pool.n_busy, 4);
        assert_int_equal(pool.busy_bytes, 8 + 4000 + 7992 + 400);
        assert_int_equal(log.n_calls, 3);

        /* what fits in the backing does not need the callback */
        e = alloc_ok(&pool, 3000);
        assert_int_equal(e->offset, 12400);
        free_ok(&pool, e);

        log.fail = 0;
        e = alloc_ok(&pool, 20000);
        assert_int_equal(e->offset, 12400);
        assert_int_equal(log.n_calls, 4);
        assert_int_equal(log.sizes[3], 49152);
        f = alloc_ok(&pool, 60000);
        assert_int_equal(f->offset, 32400);
        assert_int_equal(log.n_calls, 5);
        assert_int_equal(log.sizes[4], 98304);

        /* growth is capped at max_size */
        g = alloc_ok(&pool, 7000);
        assert_int_equal(g->offset, 92400);
        assert_int_equal(log.n_calls, 6);
        assert_int_equal(log.sizes[5], max);
        assert_int_equal(pool.backed_size, max);

        /* all backed: no more calls */
        free_ok(&pool, g);
        g = alloc_ok(&pool, max - 92400);
        assert_int_equal(log.n_calls, 6);

        /* the sizes only ever grew, and the backing never shrinks */
        for (size_t i = 1; i < log.n_calls; ++i)
                assert_true(log.sizes[i] > log.sizes[i - 1]);
        free_ok(&pool, a);
        free_ok(&pool, b);
        free_ok(&pool, c);
        free_ok(&pool, d);
        free_ok(&pool, e);
        free_ok(&pool, f);
        free_ok(&pool, g);
        assert_int_equal(list_count(&pool.extents), 1);
        assert_int_equal(pool.backed_size, max);

        pool_deinit(&pool);
        assert_pool_valid(&pool);
        free(buf);
}

static void test_grow_fails_first(void **state) {
        GrowLog log = { .fail = -ENOMEM };
        uint8_t buf[128];
        Pool pool;

        /* failing on the very first allocation, with the region still lazy */
        pool_init(&pool, buf, sizeof(buf), &grow_log_ops, &log);
        alloc_fails(&pool, 8, -ENOMEM);
        alloc_fails(&pool, sizeof(buf), -ENOMEM);
        assert_int_equal(pool.backed_size, 0);
        assert_int_equal(pool.n_busy, 0);

        log.fail = 0;
        (void)alloc_ok(&pool, sizeof(buf));
        assert_int_equal(log.n_calls, 1);
        assert_int_equal(log.sizes[0], sizeof(buf));

        pool_deinit(&pool);
        assert_pool_valid(&pool);
}

static void test_write(void **state) {
        static const uint8_t pattern[] = "0123456789abcdefghijklmnopqrstuv";
        uint8_t buf[256], expect[256];
        PoolSlice *a, *b;
        struct iovec vecs[3];
        Pool pool;

        memset(buf, 0xaa, sizeof(buf));
        memset(expect, 0xaa, sizeof(expect));
        pool_init(&pool, buf, sizeof(buf), NULL, NULL);
        a = alloc_ok(&pool, 16);
        b = alloc_ok(&pool, 20);
        assert_int_equal(b->offset, 16);
        assert_int_equal(b->size, 24);

        /* data lands at base + offset + at */
        assert_int_equal(pool_write(&pool, b, 0, pattern, 24), 0);
        memcpy(expect + 16, pattern, 24);
        assert_memory_equal(buf, expect, sizeof(buf));
        assert_int_equal(pool_write(&pool, b, 5, "XY", 2), 0);
        memcpy(expect + 16 + 5, "XY", 2);
        assert_memory_equal(buf, expect, sizeof(buf));
        assert_pool_valid(&pool);

        /* bounds: to the last byte, empty at the end, then past it */
        assert_int_equal(pool_write(&pool, a, 15, "Z", 1), 0);
        expect[15] = 'Z';
        assert_int_equal(pool_write(&pool, a, 16, NULL, 0), 0);
        assert_int_equal(pool_write(&pool, a, 15, "ZZ", 2), -EINVAL);
        assert_int_equal(pool_write(&pool, a, 0, pattern, 17), -EINVAL);
        assert_int_equal(pool_write(&pool, a, 17, NULL, 0), -EINVAL);
        assert_int_equal(pool_write(&pool, a, UINT64_MAX, "Z", 1), -EINVAL);
        assert_int_equal(pool_write(&pool, a, 8, pattern, SIZE_MAX), -EINVAL);
        assert_memory_equal(buf, expect, sizeof(buf));
        assert_pool_valid(&pool);

        /* iovecs land back to back, empty ones included */
        vecs[0] = (struct iovec){ .iov_base = (void *)pattern, .iov_len = 3 };
        vecs[1] = (struct iovec){ .iov_base = NULL, .iov_len = 0 };
        vecs[2] = (struct iovec){ .iov_base = (void *)(pattern + 10), .iov_len = 5 };
        assert_int_equal(pool_write_iovec(&pool, a, 2, vecs, 3), 0);
        memcpy(expect + 2, pattern, 3);
        memcpy(expect + 5, pattern + 10, 5);
        assert_memory_equal(buf, expect, sizeof(buf));
        assert_int_equal(pool_write_iovec(&pool, a, 16, vecs, 0), 0);
        assert_int_equal(pool_write_iovec(&pool, a, 8, vecs, 3), 0);
        memcpy(expect + 8, pattern, 3);
        memcpy(expect + 11, pattern + 10, 5);
        assert_memory_equal(buf, expect, sizeof(buf));

        /* too long in total, or overflowing: nothing at all is written */
        assert_int_equal(pool_write_iovec(&pool, a, 9, vecs, 3), -EINVAL);
        vecs[1] = (struct iovec){ .iov_base = (void *)pattern, .iov_len = SIZE_MAX };
        assert_int_equal(pool_write_iovec(&pool, a, 0, vecs, 3), -EINVAL);
        assert_int_equal(pool_write_iovec(&pool, a, UINT64_MAX, vecs, 1), -EINVAL);
        assert_memory_equal(buf, expect, sizeof(buf));
        assert_pool_valid(&pool);

        pool_deinit(&pool);
        assert_pool_valid(&pool);
}

static void test_heap_deinit(void **state) {
        Pool pool = POOL_NULL(pool);
        PoolSlice *a, *b;

        /* a POOL_NULL pool is valid, empty and can be deinitialised */
        assert_pool_valid(&pool);
        pool_deinit(&pool);
        assert_pool_valid(&pool);

        assert_int_equal(pool_init_heap(&pool, 1 << 20), 0);
        assert_non_null(pool.base);
        a = alloc_ok(&pool, 1000);
        b = alloc_ok(&pool, 500000);
        assert_int_equal(pool_write(&pool, b, b->size - 4, "tail", 4), 0);
        assert_memory_equal(pool.base + b->offset + b->size - 4, "tail", 4);
        free_ok(&pool, a);

        /* busy slices are freed along with the pool, twice is harmless */
        pool_deinit(&pool);
        assert_pool_valid(&pool);
        assert_null(pool.base);
        assert_null(pool.ops);
        assert_int_equal(pool.max_size, 0);
        pool_deinit(&pool);
        assert_pool_valid(&pool);

        /* and the pool can be set up again */
        assert_int_equal(pool_init_heap(&pool, 4096), 0);
        a = alloc_ok(&pool, 4096);
        pool_deinit(&pool);
        assert_pool_valid(&pool);
}

/*
 * Randomized test against a brute-force model
 */

#define RANDOM_UNIT 8
#define RANDOM_MAX_SIZE (32 * 1024)
#define RANDOM_UNITS (RANDOM_MAX_SIZE / RANDOM_UNIT)
#define RANDOM_STEPS 20000
#define RANDOM_LIVE_MAX 512

typedef struct RandomLive {
        PoolSlice *slice;
        uint64_t offset;
        uint64_t size;
        uint8_t tag;
} RandomLive;

typedef struct RandomModel {
        uint8_t used[RANDOM_UNITS];     /* 1 if the 8-byte unit is busy */
        RandomLive live[RANDOM_LIVE_MAX];
        size_t n_live;
        uint64_t busy_bytes;
} RandomModel;

static uint64_t random_next(uint64_t *s) {
        /* xorshift64*: reproducible, independent of libc's rand() */
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 0x2545F4914F6CDD1DULL;
}

static uint64_t random_size(uint64_t *s) {
        uint64_t kind = random_next(s) % 100;

        if (kind < 50)
                return random_next(s) % 65;
        if (kind < 80)
                return 65 + random_next(s) % 960;
        if (kind < 95)
                return 1025 + random_next(s) % 3072;
        return 4097 + random_next(s) % (RANDOM_MAX_SIZE + 4096 - 4097);
}

/* brute force: smallest maximal hole of at least @units, lowest first; -1 if none */
static int64_t random_model_fit(const RandomModel *m, uint64_t units) {
        uint64_t best_len = UINT64_MAX, start, u = 0;
        int64_t best = -1;

        while (u < RANDOM_UNITS) {
                if (m->used[u]) {
                        ++u;
                        continue;
                }
                start = u;
                while (u < RANDOM_UNITS && !m->used[u])
                        ++u;
                if (u - start >= units && u - start < best_len) {
                        best_len = u - start;
                        best = (int64_t)start;
                }
        }
        return best;
}

static void random_model_mark(RandomModel *m, uint64_t offset, uint64_t size, uint8_t v) {
        for (uint64_t u = offset / RANDOM_UNIT; u < (offset + size) / RANDOM_UNIT; ++u) {
                assert_int_not_equal(m->used[u], v);
                m->used[u] = v;
        }
}

static void random_check_tag(Pool *pool, const RandomLive *l) {
        for (uint64_t i = 0; i < l->size; ++i)
                assert_int_equal(pool->base[l->offset + i], l->tag);
}

static void random_alloc(Pool *pool, RandomModel *m, uint64_t *s, uint8_t tag) {
        uint64_t size = random_size(s), need = pool_slice_size(size);
        PoolSlice *slice = NULL;
        RandomLive *l;
        uint8_t fill[4096];
        int64_t expect;
        int r;

        r = pool_alloc(pool, &slice, size);
        assert_pool_valid(pool);
        if (need > RANDOM_MAX_SIZE) {
                assert_int_equal(r, -EMSGSIZE);
                return;
        }

        expect = random_model_fit(m, need / RANDOM_UNIT);
        if (expect < 0) {
                assert_int_equal(r, -EXFULL);
                assert_null(slice);
                return;
        }

        assert_int_equal(r, 0);
        assert_int_equal(slice->offset, (uint64_t)expect * RANDOM_UNIT);
        assert_int_equal(slice->size, need);
        assert_ptr_equal(pool_find(pool, slice->offset), slice);

        random_model_mark(m, slice->offset, need, 1);
        m->busy_bytes += need;
        l = &m->live[m->n_live++];
        *l = (RandomLive){ .slice = slice, .offset = slice->offset, .size = need, .tag = tag };

        memset(fill, tag, sizeof(fill));
        for (uint64_t at = 0; at < need; at += sizeof(fill))
                assert_int_equal(pool_write(pool, slice, at, fill,
                                            MIN(sizeof(fill), need - at)), 0);
        assert_pool_valid(pool);
}

static void random_free(Pool *pool, RandomModel *m, uint64_t *s) {
        size_t i = random_next(s) % m->n_live;
        RandomLive l = m->live[i];
        uint64_t how = random_next(s) % 3;

        /* every freed slice still holds its own tag: nothing overlapped it */
        random_check_tag(pool, &l);
        m->live[i] = m->live[--m->n_live];
        random_model_mark(m, l.offset, l.size, 0);
        m->busy_bytes -= l.size;

        if (how == 0) {
                pool_free(pool, l.slice);
        } else if (how == 1) {
                assert_int_equal(pool_release_published(pool, l.offset), -ENXIO);
                assert_pool_valid(pool);
                l.slice->published = true;
                assert_int_equal(pool_release_published(pool, l.offset), 0);
        } else {
                l.slice->published = true;
                assert_int_equal(pool_release_published(pool, l.offset), 0);
        }
        assert_pool_valid(pool);
        assert_null(pool_find(pool, l.offset));
}

/* offsets not starting a live slice are never found nor released */
static void random_probe(Pool *pool, RandomModel *m, uint64_t *s) {
        uint64_t offset = (random_next(s) % (RANDOM_UNITS + 8)) * RANDOM_UNIT;
        const RandomLive *found = NULL;

        for (size_t i = 0; i < m->n_live; ++i)
                if (m->live[i].offset == offset)
                        found = &m->live[i];

        if (found) {
                assert_ptr_equal(pool_find(pool, offset), found->slice);
                return;
        }
        assert_null(pool_find(pool, offset));
        assert_int_equal(pool_release_published(pool, offset), -ENXIO);
        assert_pool_valid(pool);
}

static void random_run(uint64_t seed, bool with_grow) {
        RandomModel *m;
        GrowLog log = {};
        uint8_t *buf = NULL;
        uint64_t s = seed;
        Pool pool;

        m = calloc(1, sizeof(*m));
        assert_non_null(m);
        if (with_grow) {
                buf = calloc(1, RANDOM_MAX_SIZE);
                assert_non_null(buf);
                pool_init(&pool, buf, RANDOM_MAX_SIZE, &grow_log_ops, &log);
        } else {
                assert_int_equal(pool_init_heap(&pool, RANDOM_MAX_SIZE), 0);
        }
        assert_pool_valid(&pool);

        for (unsigned int step = 0; step < RANDOM_STEPS; ++step) {
                uint64_t op = random_next(&s) % 100;

                if (op < 5)
                        random_probe(&pool, m, &s);
                else if (m->n_live > 0 && (op < 50 || m->n_live == RANDOM_LIVE_MAX))
                        random_free(&pool, m, &s);
                else
                        random_alloc(&pool, m, &s, (uint8_t)(step % 251 + 1));

                assert_int_equal(pool.n_busy, m->n_live);
                assert_int_equal(pool.busy_bytes, m->busy_bytes);
        }

        if (with_grow)
                for (size_t i = 1; i < log.n_calls; ++i)
                        assert_true(log.sizes[i] > log.sizes[i - 1]);

        /* free about half, deinit the rest while busy */
        while (m->n_live > 0 && random_next(&s) % 2)
                random_free(&pool, m, &s);
        pool_deinit(&pool);
        assert_pool_valid(&pool);
        free(buf);
        free(m);
}

static void test_random(void **state) {
        random_run(0x6a09e667f3bcc908ULL, false);
        random_run(0xbb67ae8584caa73bULL, false);
        random_run(0x3c6ef372fe94f82bULL, true);
        random_run(0xa54ff53a5f1d36f1ULL, true);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_slice_size),
                cmocka_unit_test(test_best_fit),
                cmocka_unit_test(test_equal_holes_lowest_offset),
                cmocka_unit_test(test_merge),
                cmocka_unit_test(test_exfull_fragmented),
                cmocka_unit_test(test_emsgsize),
                cmocka_unit_test(test_find_release),
                cmocka_unit_test(test_grow),
                cmocka_unit_test(test_grow_fails_first),
                cmocka_unit_test(test_write),
                cmocka_unit_test(test_heap_deinit),
                cmocka_unit_test(test_random),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
