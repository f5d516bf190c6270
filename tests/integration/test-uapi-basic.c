/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UAPI basics: two peers of one process talk through a real broker
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/uio.h>
#include <cmocka.h>
#include "bus1/uapi.h"
#include "util-broker.h"

#define POOL_MAP (16ULL * 1024 * 1024)

static void test_transfer_send_recv(void **state) {
        struct bus1_cmd_handle_transfer transfer = {
                .src_handle = 0x100,
                .dst_fd = 0,
        };
        struct bus1_cmd_recv recv = { .max_offset = POOL_MAP };
        struct bus1_cmd_send send;
        struct iovec vec = { .iov_base = "hello", .iov_len = 5 };
        unsigned int fds_before;
        TestBroker broker;
        const uint8_t *pool;
        uint64_t dst, offset;
        int a, b;

        test_broker_start(&broker);
        fds_before = test_count_fds(0);

        a = bus1_uapi_open(NULL);
        b = bus1_uapi_open(NULL);
        assert_true(a >= 0);
        assert_true(b >= 0);

        /* a creates node 0x100 and gives b a handle to it */
        transfer.dst_fd = (uint64_t)b;
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_HANDLE_TRANSFER, &transfer), 0);
        dst = transfer.dst_handle;
        assert_int_equal(dst & 7, BUS1_HANDLE_FLAG_MANAGED | BUS1_HANDLE_FLAG_REMOTE);

        send = (struct bus1_cmd_send){
                .ptr_destinations = (uintptr_t)&dst,
                .n_destinations = 1,
                .ptr_vecs = (uintptr_t)&vec,
                .n_vecs = 1,
        };
        assert_int_equal(bus1_uapi_ioctl(b, BUS1_CMD_SEND, &send), 0);

        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &recv), 0);
        assert_int_equal(recv.msg.type, BUS1_MSG_DATA);
        assert_int_equal(recv.msg.destination, 0x100);
        assert_int_equal(recv.msg.n_bytes, 5);
        pool = mmap(NULL, POOL_MAP, PROT_READ, MAP_SHARED, bus1_uapi_pool_fd(a), 0);
        assert_true(pool != MAP_FAILED);
        assert_memory_equal(pool + recv.msg.offset, "hello", 5);

        offset = recv.msg.offset;
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_SLICE_RELEASE, &offset), 0);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_SLICE_RELEASE, &offset), -ENXIO);

        recv = (struct bus1_cmd_recv){ .max_offset = POOL_MAP };
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &recv), -EAGAIN);

        /* b lets go: a learns the node is unreferenced */
        assert_int_equal(bus1_uapi_ioctl(b, BUS1_CMD_HANDLE_RELEASE, &dst), 0);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_RECV, &recv), 0);
        assert_int_equal(recv.msg.type, BUS1_MSG_NODE_RELEASE);
        assert_int_equal(recv.msg.destination, 0x100);

        munmap((void *)pool, POOL_MAP);
        assert_int_equal(bus1_uapi_close(a), 0);
        assert_int_equal(bus1_uapi_close(b), 0);
        assert_int_equal(bus1_uapi_close(b), -EBADF);
        assert_int_equal(test_count_fds(0), fds_before);
        test_broker_stop(&broker);
}

/* HANDLE_TRANSFER needs the destination's connection: nothing else proves it */
static void test_transfer_proof(void **state) {
        struct bus1_cmd_handle_transfer transfer = { .src_handle = 0x100 };
        unsigned int fds_before;
        TestBroker broker;
        int a, b, sp[2], p[2];

        test_broker_start(&broker);
        fds_before = test_count_fds(0);
        a = bus1_uapi_open(NULL);
        b = bus1_uapi_open(NULL);
        assert_true(a >= 0 && b >= 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);

        /* a socket connected to something else, a pipe, the pool fd: no peer */
        transfer.dst_fd = (uint64_t)sp[0];
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_HANDLE_TRANSFER, &transfer), -EOPNOTSUPP);
        transfer.dst_fd = (uint64_t)p[0];
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_HANDLE_TRANSFER, &transfer), -EOPNOTSUPP);
        transfer.dst_fd = (uint64_t)bus1_uapi_pool_fd(b);
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_HANDLE_TRANSFER, &transfer), -EOPNOTSUPP);
        /* a descriptor that is not open */
        transfer.dst_fd = 999;
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_HANDLE_TRANSFER, &transfer), -EBADF);
        /* the failed calls created no node: 0x100 is still unheld */
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_HANDLE_RELEASE,
                                         &(uint64_t){ 0x100 }), -EBUSY);

        /* b's connection proves b */
        transfer.dst_fd = (uint64_t)b;
        assert_int_equal(bus1_uapi_ioctl(a, BUS1_CMD_HANDLE_TRANSFER, &transfer), 0);
        assert_int_equal(transfer.dst_handle & 3, 3);

        close(sp[0]);
        close(sp[1]);
        close(p[0]);
        close(p[1]);
        assert_int_equal(bus1_uapi_close(a), 0);
        assert_int_equal(bus1_uapi_close(b), 0);
        assert_int_equal(test_count_fds(0), fds_before);
        test_broker_stop(&broker);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_transfer_send_recv),
                cmocka_unit_test(test_transfer_proof),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
