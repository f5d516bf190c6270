/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Util-uapi: a per-test fixture and short-hands for the UAPI tests
 *
 * Every test runs as cmocka_unit_test_setup_teardown(test, uapi_setup,
 * uapi_teardown). The setup starts a private broker and records how many
 * descriptors the test process has. Peers are opened with uapi_peer(),
 * which also maps the peer's whole pool read-only (uapi_pool()). A test that
 * gets to its end calls uapi_finish(): it closes the peers still open
 * (expecting success), checks that the process holds exactly the descriptors
 * it had at the start, and stops the broker with test_broker_stop() (which
 * checks that the broker closed every descriptor it had). If a test fails
 * half-way, the teardown closes what is left and kills the broker, so the
 * next test starts clean and no bus1d outlives the test program.
 *
 * Header-only (static inline) so each test file stays one translation unit
 * next to util-broker.c.
 */

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "bus1/uapi.h"
#include "util-broker.h"

/* the broker's default pool size (16 MiB), mapped whole */
#define UAPI_POOL_SIZE (16ULL * 1024 * 1024)
#define UAPI_PEERS_MAX 16

/* the ID bits of a handle the broker assigned to a non-owner */
#define UAPI_REMOTE_BITS (BUS1_HANDLE_FLAG_MANAGED | BUS1_HANDLE_FLAG_REMOTE)

typedef struct UapiFixture {
        TestBroker broker;
        bool running;
        unsigned int n_fds;             /* descriptors of the test process at start */
        int peers[UAPI_PEERS_MAX];      /* -1: free slot */
        const uint8_t *pools[UAPI_PEERS_MAX];
} UapiFixture;

static inline uint64_t uapi_align8(uint64_t v) {
        return (v + 7) & ~(uint64_t)7;
}

static inline int uapi_setup(void **state) {
        UapiFixture *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        for (size_t i = 0; i < UAPI_PEERS_MAX; ++i)
                f->peers[i] = -1;
        test_broker_start(&f->broker);
        f->running = true;
        f->n_fds = test_count_fds(0);
        *state = f;
        return 0;
}

static inline void uapi_unmap(UapiFixture *f, size_t i) {
        if (f->pools[i])
                munmap((void *)f->pools[i], UAPI_POOL_SIZE);
        f->pools[i] = NULL;
        f->peers[i] = -1;
}

/* only does anything if the test failed before uapi_finish() */
static inline int uapi_teardown(void **state) {
        UapiFixture *f = *state;

        if (!f)
                return 0;
        for (size_t i = 0; i < UAPI_PEERS_MAX; ++i) {
                if (f->peers[i] >= 0)
                        bus1_uapi_close(f->peers[i]);
                uapi_unmap(f, i);
        }
        if (f->running) {
                test_broker_kill(&f->broker);
                unsetenv("BUS1_ADDRESS");
        }
        free(f);
        *state = NULL;
        return 0;
}

static inline size_t uapi_slot(UapiFixture *f, int peer) {
        for (size_t i = 0; i < UAPI_PEERS_MAX; ++i)
                if (f->peers[i] == peer && peer >= 0)
                        return i;
        fail_msg("descriptor %d is not a peer of this test", peer);
        return 0;
}

/* open a peer on the test's broker and map its pool */
static inline int uapi_peer(UapiFixture *f) {
        const uint8_t *pool;
        size_t i;
        int peer, pool_fd;

        for (i = 0; i < UAPI_PEERS_MAX && f->peers[i] >= 0; ++i)
                ;
        assert_true(i < UAPI_PEERS_MAX);

        peer = bus1_uapi_open(NULL);
        assert_true(peer >= 0);
        f->peers[i] = peer;

        pool_fd = bus1_uapi_pool_fd(peer);
        assert_true(pool_fd >= 0);
        pool = mmap(NULL, UAPI_POOL_SIZE, PROT_READ, MAP_SHARED, pool_fd, 0);
        assert_true(pool != MAP_FAILED);
        f->pools[i] = pool;
        return peer;
}

static inline const uint8_t *uapi_pool(UapiFixture *f, int peer) {
        return f->pools[uapi_slot(f, peer)];
}

/* bus1_uapi_close() a peer now; returns what it returned */
static inline int uapi_close(UapiFixture *f, int peer) {
        size_t i = uapi_slot(f, peer);

        uapi_unmap(f, i);
        return bus1_uapi_close(peer);
}

/* the normal end of a test: nothing may leak, in the test or the broker */
static inline void uapi_finish(UapiFixture *f) {
        for (size_t i = 0; i < UAPI_PEERS_MAX; ++i) {
                int peer = f->peers[i];

                if (peer < 0)
                        continue;
                uapi_unmap(f, i);
                assert_int_equal(bus1_uapi_close(peer), 0);
        }
        assert_int_equal(test_count_fds(0), f->n_fds);
        test_broker_stop(&f->broker);
        f->running = false;
}

/* HANDLE_TRANSFER of @src from @from to @to (-1: @from itself) */
static inline int uapi_transfer(int from, uint64_t src, int to, uint64_t *idp) {
        struct bus1_cmd_handle_transfer t = {
                .src_handle = src,
                .dst_fd = to < 0 ? (uint64_t)-1 : (uint64_t)to,
                .dst_handle = 0xdeadbeef,
        };
        int r;

        r = bus1_uapi_ioctl(from, BUS1_CMD_HANDLE_TRANSFER, &t);
        if (r == 0 && idp)
                *idp = t.dst_handle;
        return r;
}

/* a transfer that must succeed; returns the ID @to got */
static inline uint64_t uapi_give(int from, uint64_t src, int to) {
        uint64_t id = 0;

        assert_int_equal(uapi_transfer(from, src, to, &id), 0);
        return id;
}

/* SEND of one buffer to @n_dst destinations, attaching @n_handles handles */
static inline int uapi_send(int from, const uint64_t *dst, size_t n_dst, uint64_t flags,
                            uint64_t *errors, const void *data, size_t len,
                            const uint64_t *handles, size_t n_handles) {
        struct iovec vec = { .iov_base = (void *)data, .iov_len = len };
        struct bus1_cmd_send s = {
                .flags = flags,
                .ptr_destinations = (uintptr_t)dst,
                .ptr_errors = (uintptr_t)errors,
                .n_destinations = n_dst,
                .ptr_vecs = (uintptr_t)&vec,
                .n_vecs = data ? 1 : 0,
                .ptr_handles = (uintptr_t)handles,
                .n_handles = n_handles,
        };

        return bus1_uapi_ioctl(from, BUS1_CMD_SEND, &s);
}

/* a plain unicast of a string */
static inline int uapi_send_str(int from, uint64_t dst, const char *str) {
        return uapi_send(from, &dst, 1, 0, NULL, str, strlen(str), NULL, 0);
}

/* RECV with the whole pool mapped */
static inline int uapi_recv(int peer, uint64_t flags, struct bus1_cmd_recv *r) {
        *r = (struct bus1_cmd_recv){ .flags = flags, .max_offset = UAPI_POOL_SIZE };
        return bus1_uapi_ioctl(peer, BUS1_CMD_RECV, r);
}

static inline int uapi_release(int peer, uint64_t id) {
        return bus1_uapi_ioctl(peer, BUS1_CMD_HANDLE_RELEASE, &id);
}

static inline int uapi_slice_release(int peer, uint64_t offset) {
        return bus1_uapi_ioctl(peer, BUS1_CMD_SLICE_RELEASE, &offset);
}

static inline int uapi_destroy(int peer, uint64_t flags, const uint64_t *ids, size_t n) {
        struct bus1_cmd_nodes_destroy d = {
                .flags = flags,
                .ptr_nodes = (uintptr_t)ids,
                .n_nodes = n,
        };

        return bus1_uapi_ioctl(peer, BUS1_CMD_NODES_DESTROY, &d);
}

static inline int uapi_query(int peer, struct bus1_cmd_peer_reset *q) {
        *q = (struct bus1_cmd_peer_reset){};
        return bus1_uapi_ioctl(peer, BUS1_CMD_PEER_QUERY, q);
}

/* PEER_RESET changing only what is not all ones */
static inline int uapi_reset(int peer, uint64_t flags, uint64_t peer_flags, uint32_t slices,
                             uint32_t handles, uint32_t bytes, uint32_t fds) {
        struct bus1_cmd_peer_reset r = {
                .flags = flags,
                .peer_flags = peer_flags,
                .max_slices = slices,
                .max_handles = handles,
                .max_inflight_bytes = bytes,
                .max_inflight_fds = fds,
        };

        return bus1_uapi_ioctl(peer, BUS1_CMD_PEER_RESET, &r);
}

#define UAPI_KEEP32 UINT32_MAX
#define UAPI_KEEP64 UINT64_MAX

/* the @i-th handle ID of a received DATA entry, read from its slice */
static inline uint64_t uapi_slice_handle(const uint8_t *pool, const struct bus1_cmd_recv *r,
                                         uint64_t i) {
        uint64_t id;

        assert_true(i < r->msg.n_handles);
        memcpy(&id, pool + r->msg.offset + uapi_align8(r->msg.n_bytes) + 8 * i, sizeof(id));
        return id;
}

/* a notification has exactly these fields */
static inline void uapi_assert_notification(const struct bus1_cmd_recv *r, uint64_t type,
                                            uint64_t destination) {
        assert_int_equal(r->msg.type, type);
        assert_int_equal(r->msg.flags & ~BUS1_MSG_FLAG_CONTINUE, 0);
        assert_int_equal(r->msg.destination, destination);
        assert_int_equal(r->msg.uid, (uint32_t)-1);
        assert_int_equal(r->msg.gid, (uint32_t)-1);
        assert_int_equal(r->msg.pid, 0);
        assert_int_equal(r->msg.tid, 0);
        assert_int_equal(r->msg.offset, BUS1_OFFSET_INVALID);
        assert_int_equal(r->msg.n_bytes, 0);
        assert_int_equal(r->msg.n_handles, 0);
        assert_int_equal(r->msg.n_fds, 0);
        assert_int_equal(r->msg.n_secctx, 0);
}

/* the next entry must be this notification, and not be followed by one of its tx */
static inline void uapi_expect_notification(int peer, uint64_t type, uint64_t destination) {
        struct bus1_cmd_recv r;

        assert_int_equal(uapi_recv(peer, 0, &r), 0);
        uapi_assert_notification(&r, type, destination);
        assert_int_equal(r.msg.flags, 0);
}

/* the next entry must be a DATA entry sent by this process */
static inline void uapi_assert_data(const struct bus1_cmd_recv *r, uint64_t destination,
                                    uint64_t n_bytes) {
        assert_int_equal(r->msg.type, BUS1_MSG_DATA);
        assert_int_equal(r->msg.destination, destination);
        assert_int_equal(r->msg.uid, (uint32_t)geteuid());
        assert_int_equal(r->msg.gid, (uint32_t)getegid());
        assert_int_equal(r->msg.pid, (uint32_t)getpid());
        assert_int_equal(r->msg.tid, (uint32_t)syscall(SYS_gettid));
        assert_int_equal(r->msg.n_bytes, n_bytes);
        assert_int_equal(r->msg.offset % 8, 0);
        assert_true(r->msg.offset < UAPI_POOL_SIZE);
}

/* receive a string message to @destination and release its slice */
static inline void uapi_expect_str(UapiFixture *f, int peer, uint64_t destination,
                                   const char *str) {
        struct bus1_cmd_recv r;

        assert_int_equal(uapi_recv(peer, 0, &r), 0);
        uapi_assert_data(&r, destination, strlen(str));
        assert_int_equal(r.msg.flags, 0);
        assert_int_equal(r.msg.n_handles, 0);
        assert_memory_equal(uapi_pool(f, peer) + r.msg.offset, str, strlen(str));
        assert_int_equal(uapi_slice_release(peer, r.msg.offset), 0);
}

static inline void uapi_expect_empty(int peer) {
        struct bus1_cmd_recv r;

        assert_int_equal(uapi_recv(peer, 0, &r), -EAGAIN);
}

/* poll one descriptor; returns revents */
static inline short uapi_poll(int fd, short events, int timeout_ms) {
        struct pollfd p = { .fd = fd, .events = events };
        int r;

        do {
                r = poll(&p, 1, timeout_ms);
        } while (r < 0 && errno == EINTR);
        assert_true(r >= 0);
        return r ? p.revents : 0;
}
