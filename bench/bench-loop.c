/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bench-loop: the 2016 bus1 test-io shape on bus1d
 *
 * One thread holds two peers of one broker: the receiver owns a node, the
 * sender holds a handle to it. Each step sends one message of the given
 * size to the node and receives it on the receiver, then releases its
 * slice; the kernel-UAPI layer (bus1_uapi_ioctl) and the native API
 * (bus1_peer_send/recv) are measured separately.
 *
 * Cases: send-recv-uapi and send-recv-native, sizes 0, 64, 1 KiB, 4 KiB,
 * 64 KiB and 1 MiB; metric ns per message.
 *
 * Usage: bench-loop [CASE...]; $BENCH_SIZES (e.g. "0 1024") limits the sizes.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include "bench-util.h"
#include "bus1/client.h"
#include "bus1/uapi.h"

static const size_t loop_sizes[] = { 0, 64, 1024, 4096, 65536, 1048576 };

/* $BENCH_SIZES, if set, names the sizes to run */
static bool loop_size_selected(size_t size) {
        const char *e = getenv("BENCH_SIZES");
        char *end;

        if (!e)
                return true;
        while (*e) {
                unsigned long long v = strtoull(e, &end, 10);

                if (end == e)
                        break;
                if (v == size)
                        return true;
                e = end;
                while (*e == ' ' || *e == ',')
                        ++e;
        }
        return false;
}

typedef struct UapiLoop {
        int sender, receiver;
        uint64_t dst;
        struct iovec vec;
} UapiLoop;

static void uapi_step(void *userdata) {
        UapiLoop *l = userdata;
        struct bus1_cmd_send s = {
                .ptr_destinations = (uintptr_t)&l->dst,
                .n_destinations = 1,
                .ptr_vecs = (uintptr_t)&l->vec,
                .n_vecs = l->vec.iov_len ? 1 : 0,
        };
        struct bus1_cmd_recv r = { .max_offset = UINT64_MAX };
        int e;

        e = bus1_uapi_ioctl(l->sender, BUS1_CMD_SEND, &s);
        if (e < 0)
                bench_die("SEND: %s", strerror(-e));
        e = bus1_uapi_ioctl(l->receiver, BUS1_CMD_RECV, &r);
        if (e < 0)
                bench_die("RECV: %s", strerror(-e));
        if (r.msg.type != BUS1_MSG_DATA || r.msg.n_bytes != l->vec.iov_len)
                bench_die("RECV: unexpected entry type %llu size %llu",
                          (unsigned long long)r.msg.type, (unsigned long long)r.msg.n_bytes);
        e = bus1_uapi_ioctl(l->receiver, BUS1_CMD_SLICE_RELEASE, &r.msg.offset);
        if (e < 0)
                bench_die("SLICE_RELEASE: %s", strerror(-e));
}

static void uapi_loop(const void *buf) {
        UapiLoop l = {};
        struct bus1_cmd_handle_transfer t = {};
        int e;

        l.sender = bus1_uapi_open(NULL);
        l.receiver = bus1_uapi_open(NULL);
        if (l.sender < 0 || l.receiver < 0)
                bench_die("bus1_uapi_open: %s", strerror(-(l.sender < 0 ? l.sender : l.receiver)));
        t.src_handle = 0x100;
        t.dst_fd = (uint64_t)l.sender;
        e = bus1_uapi_ioctl(l.receiver, BUS1_CMD_HANDLE_TRANSFER, &t);
        if (e < 0)
                bench_die("HANDLE_TRANSFER: %s", strerror(-e));
        l.dst = t.dst_handle;
        for (size_t i = 0; i < sizeof(loop_sizes) / sizeof(*loop_sizes); ++i) {
                if (!loop_size_selected(loop_sizes[i]))
                        continue;
                l.vec = (struct iovec){ .iov_base = (void *)buf, .iov_len = loop_sizes[i] };
                bench_print("send-recv-uapi", loop_sizes[i], "ns", bench_run(uapi_step, &l));
        }
        bus1_uapi_close(l.sender);
        bus1_uapi_close(l.receiver);
}

typedef struct NativeLoop {
        Bus1Peer *sender, *receiver;
        uint64_t dst;
        struct iovec vec;
} NativeLoop;

static void native_step(void *userdata) {
        NativeLoop *l = userdata;
        Bus1Message *m;
        int e;

        e = bus1_peer_send(l->sender, 0, &l->dst, 1, NULL, &l->vec, l->vec.iov_len ? 1 : 0,
                           NULL, 0, NULL, 0);
        if (e < 0)
                bench_die("bus1_peer_send: %s", strerror(-e));
        e = bus1_peer_recv(l->receiver, 0, &m);
        if (e < 0)
                bench_die("bus1_peer_recv: %s", strerror(-e));
        bus1_message_unref(m);
}

static void native_loop(const void *buf) {
        NativeLoop l = {};
        int e;

        e = bus1_peer_new(&l.sender, NULL);
        if (e >= 0)
                e = bus1_peer_new(&l.receiver, NULL);
        if (e < 0)
                bench_die("bus1_peer_new: %s", strerror(-e));
        e = bus1_peer_handle_transfer(l.receiver, 0x100, l.sender, &l.dst);
        if (e < 0)
                bench_die("bus1_peer_handle_transfer: %s", strerror(-e));
        for (size_t i = 0; i < sizeof(loop_sizes) / sizeof(*loop_sizes); ++i) {
                if (!loop_size_selected(loop_sizes[i]))
                        continue;
                l.vec = (struct iovec){ .iov_base = (void *)buf, .iov_len = loop_sizes[i] };
                bench_print("send-recv-native", loop_sizes[i], "ns", bench_run(native_step, &l));
        }
        bus1_peer_unref(l.sender);
        bus1_peer_unref(l.receiver);
}

int main(int argc, char **argv) {
        BenchBroker broker;
        void *buf;

        buf = calloc(1, loop_sizes[sizeof(loop_sizes) / sizeof(*loop_sizes) - 1]);
        if (!buf)
                bench_die("out of memory");
        bench_broker_start(&broker, NULL);
        if (bench_selected(argc, argv, "send-recv-uapi"))
                uapi_loop(buf);
        if (bench_selected(argc, argv, "send-recv-native"))
                native_loop(buf);
        bench_broker_stop(&broker);
        free(buf);
        return 0;
}
