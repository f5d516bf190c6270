/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pool-memfd: the broker's backing of a peer's pool (see pool-memfd.h)
 *
 * Invariant: a pool set up here has pool->userdata pointing to its
 * PoolMemfd (the descriptor and the mapping's size) until release.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "broker/pool-memfd.h"
#include "util/macro.h"

typedef struct PoolMemfd {
        int fd;
} PoolMemfd;

/* back [0, size) of the memfd, allocating the pages now */
static int pool_memfd_grow(Pool *pool, uint64_t size) {
        PoolMemfd *m = pool->userdata;
        uint64_t old = pool->backed_size;

        /*
         * The file has its full size from the start (sparse); backing more
         * of it means allocating the pages now, which turns a later
         * out-of-memory into this error instead of a SIGBUS on the store.
         * fallocate() within the size is allowed under F_SEAL_GROW.
         */
        if (fallocate(m->fd, 0, (off_t)old, (off_t)(size - old)) < 0 && errno != EOPNOTSUPP)
                return -EXFULL;
        return 0;
}

/* punch a hole over [0, size): the pages go back to the system */
static bool pool_memfd_trim(Pool *pool, uint64_t size) {
        PoolMemfd *m = pool->userdata;

        return fallocate(m->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)size) == 0;
}

static void pool_memfd_release(Pool *pool) {
        PoolMemfd *m = pool->userdata;

        if (pool->base)
                munmap(pool->base, (size_t)pool->max_size);
        safe_close(m->fd);
        free(m);
}

static const PoolOps pool_memfd_ops = {
        .grow = pool_memfd_grow,
        .trim = pool_memfd_trim,
        .release = pool_memfd_release,
};

/**
 * pool_memfd_init() - initialise a pool over a new sealed memfd
 * @pool:       pool to initialise
 * @max_size:   size of the region
 *
 * Creates a memfd of @max_size bytes (sparse: no page is allocated yet),
 * maps it shared and writable, makes it mode 0400 and seals it. On failure
 * @pool is an empty pool.
 *
 * Return: 0 on success,
 *         -ENOMEM if the region cannot be mapped,
 *         or the negative errno of memfd_create() or the sealing (-EMFILE
 *         and -ENFILE when out of descriptors).
 */
int pool_memfd_init(Pool *pool, uint64_t max_size) {
        _cleanup_(closep) int fd = -1;
        PoolMemfd *m;
        void *p;

        pool_init(pool, NULL, 0, NULL, NULL);
        if (max_size == 0 || max_size > SIZE_MAX || max_size > INT64_MAX)
                return -ENOMEM;

        fd = memfd_create("bus1-pool", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t)max_size) < 0)
                return -errno == -EFBIG ? -ENOMEM : -errno;

        p = mmap(NULL, (size_t)max_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                 fd, 0);
        if (p == MAP_FAILED)
                return -ENOMEM;

        /*
         * Read-only for everybody: no descriptor can be re-opened for writing
         * through /proc (this mapping and fd stay writable); root excepted.
         */
        m = malloc(sizeof(*m));
        if (!m || fchmod(fd, 0400) < 0 ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
                int r = m ? -errno : -ENOMEM;

                free(m);
                munmap(p, (size_t)max_size);
                return r;
        }
        m->fd = TAKE_FD(fd);
        pool_init(pool, p, max_size, &pool_memfd_ops, m);
        return 0;
}

/**
 * pool_memfd_fd() - the memfd behind a pool
 * @pool:       pool
 *
 * Return: the descriptor, or -1 if the pool is not backed by pool_memfd_init().
 */
int pool_memfd_fd(const Pool *pool) {
        if (pool->ops != &pool_memfd_ops)
                return -1;
        return ((const PoolMemfd *)pool->userdata)->fd;
}

/**
 * pool_memfd_open_readonly() - a new read-only descriptor of a pool's memfd
 * @pool:       pool set up by pool_memfd_init()
 * @fdp:        out: the descriptor (O_RDONLY, O_CLOEXEC), owned by the caller
 *
 * The memfd is re-opened through /proc/self/fd, which gives a descriptor
 * of its own with read-only access: write(2) and fallocate(2) are EBADF,
 * ftruncate(2) EINVAL, a writable shared mapping EACCES.
 *
 * Return: 0, -EBADF for a pool without memfd, or the errno of open(2).
 */
int pool_memfd_open_readonly(const Pool *pool, int *fdp) {
        char path[sizeof("/proc/self/fd/") + 3 * sizeof(int)];
        int fd = pool_memfd_fd(pool);

        if (fd < 0)
                return -EBADF;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        *fdp = fd;
        return 0;
}
