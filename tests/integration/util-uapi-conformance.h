/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Util-uapi-conformance: short-hands shared by the UAPI conformance tests
 * (test-uapi-conformance-*.c), on top of util-uapi.h.
 *
 * The conformance tests check bus1_uapi_ioctl() against the 2016 bus1 kernel
 * module (ipc/bus1/ of the October 2016 RFC): which errno each fault gives,
 * which fault wins when several are present, and what is written back into
 * the caller's structs. Two helpers make that checkable:
 *
 *  - conf_fill() fills memory with a sentinel pattern, so a struct that a
 *    failed call must leave alone can be compared byte for byte afterwards;
 *  - conf_ioctl_guarded() issues a call whose argument must not be
 *    dereferenced (or holds bogus pointers): a crash is reported as a test
 *    failure instead of taking the test program down with it.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include "util-uapi.h"

#define CONF_SENTINEL 0xa5

/*
 * IDs no peer of a test holds: a managed remote ID and a managed owner ID
 * with an index far beyond what the broker hands out in a test
 */
#define CONF_ID_UNKNOWN         ((UINT64_C(0xfffff) << 3) | BUS1_HANDLE_FLAG_MANAGED | \
                                 BUS1_HANDLE_FLAG_REMOTE)
#define CONF_ID_UNKNOWN_OWN     ((UINT64_C(0xffffe) << 3) | BUS1_HANDLE_FLAG_MANAGED)

/* the largest payload the kernel takes (MAX_RW_COUNT on x86-64) */
#define CONF_MAX_RW_COUNT 0x7ffff000ULL

/* fill @n bytes at @p with the sentinel pattern */
static inline void conf_fill(void *p, size_t n) {
        memset(p, CONF_SENTINEL, n);
}

/* a command number as a 64-bit caller might pass it: sign-extended */
static inline unsigned long conf_cmd_sext(unsigned long cmd) {
        return (unsigned long)(long)(int)(unsigned int)cmd;
}

/* a command number with garbage in the upper 32 bits */
static inline unsigned long conf_cmd_high(unsigned long cmd) {
        return (unsigned long)(unsigned int)cmd | (0xdeadbeefUL << 32);
}

static sigjmp_buf conf_jmp;

static inline void conf_on_fault(int sig) {
        siglongjmp(conf_jmp, sig);
}

/*
 * bus1_uapi_ioctl() with an argument that must not be dereferenced (or that
 * holds bogus pointers). A crash (SIGSEGV, SIGBUS) fails the test instead of
 * killing the program. The library may have crashed holding the peer's
 * lock, so the peer is then abandoned (neither closed nor unmapped by the
 * fixture; the teardown kills the broker). A forked child cannot make the
 * call instead: a peer belongs to the process that opened it.
 */
static inline int conf_ioctl_guarded(UapiFixture *f, int peer, unsigned long cmd, void *arg) {
        struct sigaction sa = { .sa_handler = conf_on_fault }, old_segv, old_bus;
        volatile int r = 0;
        int sig;

        sigemptyset(&sa.sa_mask);
        assert_int_equal(sigaction(SIGSEGV, &sa, &old_segv), 0);
        assert_int_equal(sigaction(SIGBUS, &sa, &old_bus), 0);
        sig = sigsetjmp(conf_jmp, 1);
        if (sig == 0)
                r = bus1_uapi_ioctl(peer, cmd, arg);
        sigaction(SIGSEGV, &old_segv, NULL);
        sigaction(SIGBUS, &old_bus, NULL);
        if (sig != 0) {
                for (size_t i = 0; i < UAPI_PEERS_MAX; ++i)
                        if (f->peers[i] == peer) {
                                f->peers[i] = -1;
                                f->pools[i] = NULL;
                        }
                fail_msg("bus1_uapi_ioctl(cmd %#lx, %p) crashed with signal %d", cmd, arg, sig);
        }
        return r;
}

/* a descriptor number that is certainly not open */
static inline int conf_closed_fd(void) {
        int fd = dup(0);

        assert_true(fd >= 0);
        close(fd);
        return fd;
}

/* PEER_DISCONNECT as the kernel wants it: the argument value 0 */
static inline int conf_disconnect(int peer) {
        return bus1_uapi_ioctl(peer, BUS1_CMD_PEER_DISCONNECT, NULL);
}

/* SEND with every field given */
static inline int conf_send(int from, uint64_t flags, const uint64_t *dst, uint64_t n_dst,
                            uint64_t *errors, const struct iovec *vecs, uint64_t n_vecs,
                            const uint64_t *handles, uint64_t n_handles, const int *fds,
                            uint64_t n_fds) {
        struct bus1_cmd_send s = {
                .flags = flags,
                .ptr_destinations = (uintptr_t)dst,
                .ptr_errors = (uintptr_t)errors,
                .n_destinations = n_dst,
                .ptr_vecs = (uintptr_t)vecs,
                .n_vecs = n_vecs,
                .ptr_handles = (uintptr_t)handles,
                .n_handles = n_handles,
                .ptr_fds = (uintptr_t)fds,
                .n_fds = n_fds,
        };

        return bus1_uapi_ioctl(from, BUS1_CMD_SEND, &s);
}
