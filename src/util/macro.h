/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Small helpers used everywhere: cleanup attributes, alignment, overflow
 * checked arithmetic, container_of. Destructors in this project return the
 * invalid value of their type (NULL, -1), so `p = foo_free(p)` is the idiom,
 * and DEFINE_CLEANUP() builds the `foo_freep()` wrapper that
 * `_cleanup_(foo_freep)` needs.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(_x) __attribute__((__cleanup__(_x)))
#define _unused_ __attribute__((__unused__))
#define _likely_(_x) (__builtin_expect(!!(_x), 1))
#define _unlikely_(_x) (__builtin_expect(!!(_x), 0))
#define _public_ __attribute__((__visibility__("default")))
#define _warn_unused_result_ __attribute__((__warn_unused_result__))

#define ARRAY_SIZE(_a) (sizeof(_a) / sizeof((_a)[0]))

#define container_of(_ptr, _type, _member) \
        ((_type *)((char *)(_ptr) - offsetof(_type, _member)))

/* like container_of(), but maps NULL to NULL */
#define container_of_safe(_ptr, _type, _member) \
        ({ __typeof__(_ptr) __p = (_ptr); __p ? container_of(__p, _type, _member) : NULL; })

#define MIN(_a, _b) ((_a) < (_b) ? (_a) : (_b))
#define MAX(_a, _b) ((_a) > (_b) ? (_a) : (_b))

/**
 * DEFINE_CLEANUP() - define `<func>p()`, calling `<func>(*p)`
 * @_type:      pointer type the destructor takes
 * @_func:      destructor returning the invalid value
 */
#define DEFINE_CLEANUP(_type, _func)                            \
        static inline void _func ## p(_type *p) {               \
                if (*p)                                         \
                        _func(*p);                              \
        }                                                       \
        struct __useless_struct_to_allow_trailing_semicolon__

static inline uint64_t align8(uint64_t v) {
        return (v + 7) & ~(uint64_t)7;
}

/* true if aligning @v to 8 would overflow */
static inline bool align8_overflows(uint64_t v) {
        return v > UINT64_MAX - 7;
}

static inline void freep(void *p) {
        free(*(void **)p);
}

/**
 * safe_close() - close an fd if it is valid
 * @fd: fd or -1
 *
 * Return: -1, always, so that `fd = safe_close(fd)` resets the variable.
 */
static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;

                close(fd);
                errno = saved;
        }
        return -1;
}

static inline void closep(int *fd) {
        safe_close(*fd);
}

/* steal a pointer out of a cleanup variable */
#define TAKE_PTR(_p) ({ __typeof__(_p) __t = (_p); (_p) = NULL; __t; })
#define TAKE_FD(_fd) ({ int __t = (_fd); (_fd) = -1; __t; })
