/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz seeds: write the seed corpus of the fuzz targets
 *
 * Usage: fuzz-seeds decode|dispatch DIR. Writes one file per seed into DIR
 * (seed-<name>), the files fuzz/corpus/<target>/seed-* are made of:
 *  - decode: a valid record of every type, made with the encoders, behind
 *    the fd count byte of fuzz-decode.c;
 *  - dispatch: op sequences in the format of fuzz-dispatch.h that transfer
 *    handles, send (inline, memfd, fds, handles, multicast, seed), receive
 *    (locally with ACK, with installed fds and SLICE_FDS), destroy, release,
 *    reset, disconnect, close and reconnect, and write the release ring as
 *    the library does and as it never would.
 * tools/fuzz --seeds runs it. Running it again gives the same files.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz/fuzz-dispatch.h"
#include "proto/proto.h"
#include "util/macro.h"

typedef struct Seed {
        unsigned char data[4096];
        size_t len;
} Seed;

static const char *seeds_dir;

static void seed_write(const char *name, const void *data, size_t len) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/seed-%s", seeds_dir, name);
        f = fopen(path, "we");
        if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                exit(1);
        }
}

/* decode: the fd count byte, then the record */
static void seed_record(const char *name, uint8_t n_fds, const uint8_t *rec, int len) {
        uint8_t buf[1 + PROTO_RECORD_MAX];

        if (len < 0) {
                fprintf(stderr, "seed %s: cannot encode: %s\n", name, strerror(-len));
                exit(1);
        }
        buf[0] = n_fds;
        memcpy(buf + 1, rec, (size_t)len);
        seed_write(name, buf, (size_t)len + 1);
}

static void seeds_decode(void) {
        static uint8_t b[PROTO_RECORD_MAX];
        const size_t cap = sizeof(b);
        const uint64_t ids[] = { 0x100, 0x101, 0x8 };
        const int fds[] = { 3, 4, 5 };
        const uint64_t errors[] = { 0, ENXIO };
        const struct iovec vec = { .iov_base = (void *)"hello", .iov_len = 5 };
        const ProtoMessage data = {
                .type = BUS1_MSG_DATA, .flags = BUS1_MSG_FLAG_CONTINUE, .destination = 0x100,
                .uid = 1000, .gid = 1000, .pid = 42, .tid = 42, .offset = 64, .n_bytes = 5,
                .n_handles = 1, .n_fds = 2,
        };
        const ProtoMessage destroy = {
                .type = BUS1_MSG_NODE_DESTROY, .destination = 0x100, .uid = UINT32_MAX,
                .gid = UINT32_MAX, .offset = BUS1_OFFSET_INVALID,
        };
        ProtoMessage release = destroy;

        release.type = BUS1_MSG_NODE_RELEASE;
        release.flags = PROTO_MSG_FLAG_SYNC;

        seed_record("hello", 0, b, proto_encode_hello(b, cap, &(ProtoHello){
                .cookie = 1, .version_min = 1, .version_max = 1 }));
        seed_record("fds", 3, b, proto_encode_fds(b, cap, &(ProtoFds){
                .type = PROTO_TYPE_FDS, .n_fds = 3 }));
        seed_record("push-fds", 1, b, proto_encode_fds(b, cap, &(ProtoFds){
                .type = PROTO_TYPE_PUSH_FDS, .n_fds = 1 }));
        seed_record("ack", 0, b, proto_encode_ack(b, cap, &(ProtoAck){ .entry_id = 7 }));
        seed_record("peer-disconnect", 0, b, proto_encode_peer_disconnect(b, cap,
                &(ProtoPeerDisconnect){ .cookie = 2 }));
        seed_record("peer-query", 0, b, proto_encode_peer_query(b, cap,
                &(ProtoPeerQuery){ .cookie = 3 }));
        seed_record("peer-reset", 0, b, proto_encode_peer_reset(b, cap, &(ProtoPeerReset){
                .cookie = 4, .flags = BUS1_PEER_RESET_FLAG_FLUSH, .peer_flags = UINT64_MAX,
                .max_slices = 16, .max_handles = UINT32_MAX, .max_inflight_bytes = 4096,
                .max_inflight_fds = 0 }));
        seed_record("handle-release", 0, b, proto_encode_handle_release(b, cap,
                &(ProtoHandleRelease){ .cookie = 5, .id = 0x100 }));
        seed_record("handle-transfer-self", 0, b, proto_encode_handle_transfer(b, cap,
                &(ProtoHandleTransfer){ .cookie = 6, .src_handle = 0x100 }));
        seed_record("handle-transfer-fd", 1, b, proto_encode_handle_transfer(b, cap,
                &(ProtoHandleTransfer){ .cookie = 7, .src_handle = 0x101,
                                        .dst_mode = PROTO_DST_FD }));
        seed_record("nodes-destroy", 0, b, proto_encode_nodes_destroy(b, cap, 8,
                BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, ids, ARRAY_SIZE(ids)));
        seed_record("slice-release", 0, b, proto_encode_slice_release(b, cap,
                &(ProtoSliceRelease){ .cookie = 9, .offset = 64 }));
        seed_record("slice-fds", 0, b, proto_encode_slice_fds(b, cap, 10, 64, fds,
                                                              ARRAY_SIZE(fds)));
        seed_record("send-inline", 2, b, proto_encode_send(b, cap, &(ProtoSendArgs){
                .cookie = 11, .flags = BUS1_SEND_FLAG_CONTINUE | PROTO_SEND_FLAG_ERRORS,
                .destinations = ids, .n_destinations = 2, .handles = ids + 2, .n_handles = 1,
                .n_fds = 2, .vecs = &vec, .n_vecs = 1 }));
        seed_record("send-memfd", 1, b, proto_encode_send(b, cap, &(ProtoSendArgs){
                .cookie = 12, .destinations = ids, .n_destinations = 1,
                .payload_mode = PROTO_PAYLOAD_MEMFD, .n_bytes = 200000, .memfd_offset = 8 }));
        seed_record("send-seed", 0, b, proto_encode_send(b, cap, &(ProtoSendArgs){
                .cookie = 13, .flags = BUS1_SEND_FLAG_SEED, .vecs = &vec, .n_vecs = 1 }));
        seed_record("recv", 0, b, proto_encode_recv(b, cap, &(ProtoRecv){
                .cookie = 14, .flags = BUS1_RECV_FLAG_INSTALL_FDS, .max_offset = UINT64_MAX }));
        seed_record("reply-error", 0, b, proto_encode_reply(b, cap, &(ProtoReply){
                .cookie = 15, .error = ENXIO }));
        seed_record("reply", 0, b, proto_encode_reply(b, cap, &(ProtoReply){ .cookie = 16 }));
        seed_record("reply-hello", 1, b, proto_encode_reply_hello(b, cap, &(ProtoReplyHello){
                .cookie = 17, .version = 1, .peer_id = 1, .pool_size = 1 << 24 }));
        seed_record("reply-peer-query", 0, b, proto_encode_reply_peer_query(b, cap,
                &(ProtoReplyPeerQuery){ .cookie = 18, .peer_flags = 1, .max_slices = 16384,
                                        .max_handles = 65536, .max_inflight_bytes = 1 << 24,
                                        .max_inflight_fds = 4096 }));
        seed_record("reply-handle-transfer", 0, b, proto_encode_reply_handle_transfer(b, cap,
                &(ProtoReplyHandleTransfer){ .cookie = 19, .dst_handle = 0x8 }));
        seed_record("reply-send", 0, b, proto_encode_reply_send(b, cap, 20, errors,
                                                                ARRAY_SIZE(errors)));
        seed_record("reply-recv", 2, b, proto_encode_reply_recv(b, cap, &(ProtoReplyRecv){
                .cookie = 21, .entry = { .entry_id = 3, .msg = data } }));
        seed_record("entry-data", 0, b, proto_encode_entry(b, cap, &(ProtoEntry){
                .entry_id = 4, .msg = data }));
        seed_record("entry-destroy", 0, b, proto_encode_entry(b, cap, &(ProtoEntry){
                .entry_id = 5, .msg = destroy }));
        seed_record("entry-release-sync", 0, b, proto_encode_entry(b, cap, &(ProtoEntry){
                .entry_id = 6, .msg = release }));
        seed_record("retract", 0, b, proto_encode_retract(b, cap, &(ProtoRetract){
                .entry_id = 6, .flags = PROTO_RETRACT_FLAG_PREV_CONTINUES }));
        seed_record("wake", 0, b, proto_encode_wake(b, cap));
        seed_record("resync", 0, b, proto_encode_resync(b, cap));
}

/* dispatch: ops appended to a seed */

static void seed_bytes(Seed *s, size_t n, ...) {
        va_list ap;

        va_start(ap, n);
        for (size_t i = 0; i < n && s->len < sizeof(s->data); ++i)
                s->data[s->len++] = (unsigned char)va_arg(ap, int);
        va_end(ap);
}

static void seed_op(Seed *s, FuzzOp op, unsigned int client) {
        seed_bytes(s, 1, fuzz_op_byte(op, client));
}

/* the ID bytes of fuzz_pick_id(): 0x100 and the client's first received ID */
#define ID_0x100 0
#define ID_0x101 1
#define ID_RECEIVED(_i) (FUZZ_ID_FIXED + (_i))
#define OFFSET_RECEIVED(_i) (FUZZ_ID_FIXED + (_i))

static void seed_transfer(Seed *s, unsigned int from, unsigned int id, unsigned int to) {
        seed_op(s, FUZZ_OP_TRANSFER, from);
        seed_bytes(s, 2, id, to + 1);
}

/* a SEND to one destination, inline payload of @size bytes, no handles or fds */
static void seed_send(Seed *s, unsigned int from, unsigned int flags, unsigned int dst,
                      unsigned int size) {
        seed_op(s, FUZZ_OP_SEND, from);
        seed_bytes(s, 7, flags, 1, 0, 0, dst, 0, size);
}

static void seed_recv(Seed *s, unsigned int client, unsigned int flags) {
        seed_op(s, FUZZ_OP_RECV, client);
        seed_bytes(s, 2, flags, 0);
}

/* FUZZ_OP_RING with the first variant byte that means @ring */
static void seed_ring(Seed *s, unsigned int client, FuzzRing ring) {
        unsigned int b = 0;

        while (fuzz_ring_variant((uint8_t)b) != ring)
                ++b;
        seed_op(s, FUZZ_OP_RING, client);
        seed_bytes(s, 1, b);
}

static void seed_start(Seed *s, uint8_t config) {
        s->len = 0;
        seed_bytes(s, 1, config);
}

static void seed_done(Seed *s, const char *name) {
        seed_write(name, s->data, s->len);
}

static void seeds_dispatch(void) {
        Seed s;

        /* a handle goes to peer 1, which sends to it; peer 0 receives and releases */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_send(&s, 1, 4, ID_RECEIVED(0), 16);
        seed_recv(&s, 0, BUS1_RECV_FLAG_INSTALL_FDS);
        seed_op(&s, FUZZ_OP_SLICE_RELEASE, 0);
        seed_bytes(&s, 1, OFFSET_RECEIVED(0));
        seed_done(&s, "transfer-send-recv");

        /* fds: installed by RECV, their numbers reported with SLICE_FDS */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_op(&s, FUZZ_OP_SEND, 1);
        seed_bytes(&s, 9, 0, 1, 0, 2, ID_RECEIVED(0), FUZZ_FD_EVENTFD, FUZZ_FD_PIPE, 0, 24);
        seed_recv(&s, 0, BUS1_RECV_FLAG_INSTALL_FDS);
        seed_op(&s, FUZZ_OP_SLICE_FDS, 0);
        seed_bytes(&s, 1, 0);
        seed_op(&s, FUZZ_OP_SLICE_RELEASE, 0);
        seed_bytes(&s, 1, OFFSET_RECEIVED(0));
        seed_done(&s, "send-fds-install");

        /* fds the broker must refuse: AF_UNIX sockets, another connection */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_op(&s, FUZZ_OP_SEND, 1);
        seed_bytes(&s, 10, 0, 1, 0, 3, ID_RECEIVED(0), FUZZ_FD_UNIX, FUZZ_FD_OPATH,
                   FUZZ_FD_CLIENT, 0, 8);
        seed_op(&s, FUZZ_OP_SEND, 1);
        seed_bytes(&s, 8, 0, 1, 0, 1, ID_RECEIVED(0), FUZZ_FD_OPATH, 0, 8);
        seed_transfer(&s, 1, ID_RECEIVED(0), 3);        /* an AF_UNIX socket of no broker */
        seed_transfer(&s, 1, ID_RECEIVED(0), 4);        /* an eventfd */
        seed_recv(&s, 0, BUS1_RECV_FLAG_INSTALL_FDS);
        seed_done(&s, "refused-fds");

        /* destroy: every holder gets NODE_DESTROY */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_transfer(&s, 0, ID_0x100, 2);
        seed_send(&s, 2, 0, ID_RECEIVED(0), 8);
        seed_op(&s, FUZZ_OP_DESTROY, 0);
        seed_bytes(&s, 2, 1, ID_0x100);
        seed_recv(&s, 1, 0);
        seed_recv(&s, 2, 0);
        seed_op(&s, FUZZ_OP_RELEASE, 1);
        seed_bytes(&s, 1, ID_RECEIVED(0));
        seed_recv(&s, 0, 0);
        seed_done(&s, "destroy");

        /* release: the owner gets NODE_RELEASE, then destroys and releases */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_op(&s, FUZZ_OP_RELEASE, 1);
        seed_bytes(&s, 1, ID_RECEIVED(0));
        seed_recv(&s, 0, BUS1_RECV_FLAG_PEEK);
        seed_recv(&s, 0, 0);
        seed_op(&s, FUZZ_OP_DESTROY, 0);
        seed_bytes(&s, 2, 1 | 8, ID_0x100);
        seed_op(&s, FUZZ_OP_RELEASE, 0);
        seed_bytes(&s, 1, ID_0x100);
        seed_done(&s, "release-notify");

        /* handles travel in messages; the receiver sends to what it got */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_op(&s, FUZZ_OP_TRANSFER, 1);               /* to itself: a node of its own */
        seed_bytes(&s, 2, ID_0x100, 0);
        seed_op(&s, FUZZ_OP_SEND, 1);
        seed_bytes(&s, 9, 4, 1, 2, 0, ID_RECEIVED(0), ID_0x100, ID_RECEIVED(0), 0, 32);
        seed_recv(&s, 0, 0);
        seed_op(&s, FUZZ_OP_SEND, 0);
        seed_bytes(&s, 7, 4, 1, 0, 0, ID_RECEIVED(1), 0, 8);
        seed_recv(&s, 1, 0);
        seed_op(&s, FUZZ_OP_RELEASE, 0);
        seed_bytes(&s, 1, ID_RECEIVED(1));
        seed_op(&s, FUZZ_OP_DESTROY, 1);
        seed_bytes(&s, 2, 1, ID_0x100);
        seed_recv(&s, 0, 0);
        seed_recv(&s, 1, 0);
        seed_done(&s, "handles-in-messages");

        /* PEER_RESET: flush, limits, query */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_send(&s, 1, 1, ID_RECEIVED(0), 8);
        seed_send(&s, 1, 1, ID_RECEIVED(0), 8);
        seed_send(&s, 1, 0, ID_RECEIVED(0), 8);
        seed_op(&s, FUZZ_OP_RESET, 0);
        seed_bytes(&s, 3, 1, 0, 0);
        seed_op(&s, FUZZ_OP_QUERY, 0);
        seed_recv(&s, 0, 0);
        seed_op(&s, FUZZ_OP_RESET, 0);
        seed_bytes(&s, 3, 2 | 8, 3 | 3 << 3, 2 | 2 << 3);
        seed_send(&s, 1, 0, ID_RECEIVED(0), 8);
        seed_send(&s, 1, 0, ID_RECEIVED(0), 8);
        seed_send(&s, 1, 0, ID_RECEIVED(0), 8);
        seed_op(&s, FUZZ_OP_QUERY, 0);
        seed_done(&s, "reset-limits");

        /* PEER_DISCONNECT while others hold handles and messages are queued */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_transfer(&s, 1, ID_0x101, 0);
        seed_send(&s, 1, 0, ID_RECEIVED(0), 8);
        seed_op(&s, FUZZ_OP_DISCONNECT, 0);
        seed_send(&s, 1, 4, ID_RECEIVED(0), 8);
        seed_recv(&s, 1, 0);
        seed_op(&s, FUZZ_OP_QUERY, 0);
        seed_done(&s, "disconnect");

        /* the client closes; a new connection takes its place */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_transfer(&s, 1, ID_0x101, 0);
        seed_send(&s, 0, 0, ID_RECEIVED(0), 8);
        seed_op(&s, FUZZ_OP_CLOSE, 0);
        seed_recv(&s, 1, 0);
        seed_op(&s, FUZZ_OP_RECONNECT, 0);
        seed_op(&s, FUZZ_OP_QUERY, 0);
        seed_transfer(&s, 1, ID_0x101, 1);
        seed_done(&s, "close-reconnect");

        /* local receive: ACK of pushed entries, then RECV */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_send(&s, 1, 0, ID_RECEIVED(0), 8);
        seed_send(&s, 1, 0, ID_RECEIVED(0), 16);
        seed_op(&s, FUZZ_OP_ACK_RECV, 0);
        seed_bytes(&s, 2, 0, 0);
        seed_op(&s, FUZZ_OP_ACK, 0);
        seed_bytes(&s, 1, 0);
        seed_op(&s, FUZZ_OP_SLICE_RELEASE, 0);
        seed_bytes(&s, 1, OFFSET_RECEIVED(0));
        seed_done(&s, "ack-local-receive");

        /* payload in a memfd, sealed and not, at an offset */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_op(&s, FUZZ_OP_SEND, 1);
        seed_bytes(&s, 7, 4, 1, 0, 0, ID_RECEIVED(0), 0x80 | 0x10 | 3, 200);
        seed_op(&s, FUZZ_OP_SEND, 1);
        seed_bytes(&s, 7, 4, 1, 0, 0, ID_RECEIVED(0), 0x80 | 0x20, 8);
        seed_op(&s, FUZZ_OP_SEND, 1);
        seed_bytes(&s, 7, 4, 1, 0, 0, ID_RECEIVED(0), 0x40, 200);
        seed_recv(&s, 0, 0);
        seed_recv(&s, 0, 0);
        seed_done(&s, "send-memfd");

        /* the seed message */
        seed_start(&s, 0);
        seed_op(&s, FUZZ_OP_SEND, 0);
        seed_bytes(&s, 6, 2, 0, 0, 0, 0, 40);
        seed_recv(&s, 0, BUS1_RECV_FLAG_SEED | BUS1_RECV_FLAG_PEEK);
        seed_recv(&s, 0, BUS1_RECV_FLAG_SEED);
        seed_op(&s, FUZZ_OP_RESET, 0);
        seed_bytes(&s, 3, 2, 0, 0);
        seed_done(&s, "seed-message");

        /* fds ahead of their record on an FDS carrier */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_op(&s, FUZZ_OP_CARRIER, 1);
        seed_bytes(&s, 2, 2, 0);
        seed_op(&s, FUZZ_OP_SEND, 1);
        seed_bytes(&s, 8, 0, 1, 0, 1, ID_RECEIVED(0), FUZZ_FD_EVENTFD, 0, 8);
        seed_recv(&s, 0, BUS1_RECV_FLAG_INSTALL_FDS);
        seed_op(&s, FUZZ_OP_SLICE_FDS, 0);
        seed_bytes(&s, 1, 0);
        seed_op(&s, FUZZ_OP_CARRIER, 2);
        seed_bytes(&s, 2, 1, 1);
        seed_done(&s, "carrier");

        /* 256 fds: 253 on a carrier, 3 on the SEND; RECV needs a PUSH_FDS carrier */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_op(&s, FUZZ_OP_CARRIER, 1);
        seed_bytes(&s, 2, 0, 0);
        seed_op(&s, FUZZ_OP_SEND, 1);
        seed_bytes(&s, 10, 0, 1, 0, 3, ID_RECEIVED(0), FUZZ_FD_EVENTFD, FUZZ_FD_MEMFD,
                   FUZZ_FD_PIPE, 0, 8);
        seed_recv(&s, 0, BUS1_RECV_FLAG_INSTALL_FDS);
        seed_op(&s, FUZZ_OP_SLICE_FDS, 0);
        seed_bytes(&s, 1, 0);
        seed_done(&s, "carrier-max");

        /* a flush withdraws more pushed entries than RETRACT may: RESYNC */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        for (unsigned int i = 0; i < 70; ++i)
                seed_send(&s, 1, 0, ID_RECEIVED(0), 8);
        seed_op(&s, FUZZ_OP_RESET, 0);
        seed_bytes(&s, 3, 1, 0, 0);
        seed_recv(&s, 0, 0);
        seed_done(&s, "flush-many");

        /* multicast with per-destination errors, and a transaction */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 2);
        seed_transfer(&s, 1, ID_0x100, 2);
        seed_op(&s, FUZZ_OP_SEND, 2);
        seed_bytes(&s, 9, 4, 3, 0, 0, ID_RECEIVED(0), ID_RECEIVED(1), ID_0x101, 0, 12);
        seed_send(&s, 2, 1, ID_RECEIVED(0), 8);
        seed_send(&s, 2, 0, ID_RECEIVED(1), 8);
        seed_recv(&s, 0, 0);
        seed_recv(&s, 1, 0);
        seed_done(&s, "multicast");

        /* a lazy receiver with a small socket buffer: pushing blocks */
        seed_start(&s, FUZZ_CONFIG_LAZY(0) | FUZZ_CONFIG_SMALL_SNDBUF(0));
        seed_op(&s, FUZZ_OP_DRAIN, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_op(&s, FUZZ_OP_DRAIN, 0);
        for (unsigned int i = 0; i < 24; ++i)
                seed_send(&s, 1, 0, ID_RECEIVED(0), 100);
        seed_recv(&s, 0, 0);
        seed_op(&s, FUZZ_OP_DRAIN, 0);
        seed_recv(&s, 0, 0);
        seed_op(&s, FUZZ_OP_DRAIN, 0);
        seed_done(&s, "lazy-receiver");

        /* pipelined requests, HELLO again, undefined types */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_op(&s, FUZZ_OP_BATCH, 0);
        seed_bytes(&s, 1, 6);
        for (unsigned int i = 0; i < 4; ++i)
                seed_send(&s, 1, 0, ID_RECEIVED(0), 8);
        seed_recv(&s, 0, 0);
        seed_op(&s, FUZZ_OP_HELLO, 0);
        seed_bytes(&s, 1, 0);
        seed_recv(&s, 0, 0);
        seed_op(&s, FUZZ_OP_UNKNOWN, 1);
        seed_bytes(&s, 1, 0);
        seed_op(&s, FUZZ_OP_UNKNOWN, 1);
        seed_bytes(&s, 1, 1);
        seed_op(&s, FUZZ_OP_HELLO, 1);
        seed_bytes(&s, 1, 1 | 3 << 2);
        seed_op(&s, FUZZ_OP_UNKNOWN, 2);
        seed_bytes(&s, 1, 2);
        seed_done(&s, "pipeline-hello-unknown");

        /* HELLO over and over by a client that does not read: EBUSY past 8 */
        seed_start(&s, FUZZ_CONFIG_LAZY(0));
        for (unsigned int i = 0; i < 12; ++i) {
                seed_op(&s, FUZZ_OP_HELLO, 0);
                seed_bytes(&s, 1, 0);
        }
        seed_op(&s, FUZZ_OP_DRAIN, 0);
        seed_op(&s, FUZZ_OP_HELLO, 0);
        seed_bytes(&s, 1, 0);
        seed_op(&s, FUZZ_OP_DRAIN, 0);
        seed_done(&s, "hello-unread");

        /* requests whose replies are never read: the backlog fills, reading stops */
        seed_start(&s, FUZZ_CONFIG_LAZY(1) | FUZZ_CONFIG_SMALL_SNDBUF(1));
        for (unsigned int i = 0; i < 64; ++i)
                seed_op(&s, FUZZ_OP_QUERY, 1);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_op(&s, FUZZ_OP_DRAIN, 1);
        seed_op(&s, FUZZ_OP_QUERY, 1);
        seed_done(&s, "replies-unread");

        /* carriers whose record never comes: the client goes, or comes back */
        seed_start(&s, 0);
        seed_op(&s, FUZZ_OP_CARRIER, 1);
        seed_bytes(&s, 2, 0, 0);
        seed_op(&s, FUZZ_OP_CARRIER, 1);
        seed_bytes(&s, 2, 3, 0);
        seed_op(&s, FUZZ_OP_CLOSE, 1);
        seed_op(&s, FUZZ_OP_CARRIER, 2);
        seed_bytes(&s, 2, 2, 0);
        seed_op(&s, FUZZ_OP_RECONNECT, 2);
        seed_op(&s, FUZZ_OP_CARRIER, 0);
        seed_bytes(&s, 2, 1, 0);
        seed_op(&s, FUZZ_OP_QUERY, 0);
        seed_done(&s, "carriers-no-record");

        /*
         * The release ring as the library writes it: ACK and release after a
         * local receive, applied before a send places the next slice (which
         * reuses the offset) and before the client's own next request.
         */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_send(&s, 1, 0, ID_RECEIVED(0), 24);
        seed_send(&s, 1, 0, ID_RECEIVED(0), 8);
        seed_op(&s, FUZZ_OP_DRAIN, 0);
        seed_ring(&s, 0, FUZZ_RING_ACK_RELEASE);
        seed_send(&s, 1, 0, ID_RECEIVED(0), 8);
        seed_ring(&s, 0, FUZZ_RING_ACK);
        seed_ring(&s, 0, FUZZ_RING_RELEASE);
        seed_bytes(&s, 1, OFFSET_RECEIVED(0));
        seed_op(&s, FUZZ_OP_QUERY, 0);
        seed_ring(&s, 0, FUZZ_RING_RELEASES);
        seed_bytes(&s, 2, 0, OFFSET_RECEIVED(2));
        seed_recv(&s, 0, 0);
        seed_op(&s, FUZZ_OP_SLICE_RELEASE, 0);
        seed_bytes(&s, 1, OFFSET_RECEIVED(2));
        seed_done(&s, "ring-release");

        /*
         * What the library never writes: a bad tag, an offset never
         * received, ACK 0, a tail ahead or behind; noticed at the client's
         * own request, at a send to it, or when its sibling refuses for quota.
         */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_ring(&s, 0, FUZZ_RING_SMALL);
        seed_bytes(&s, 1, 0x42);
        seed_op(&s, FUZZ_OP_QUERY, 0);
        seed_op(&s, FUZZ_OP_RECONNECT, 0);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_ring(&s, 0, FUZZ_RING_RELEASE);
        seed_bytes(&s, 1, 0xc0 + 40);                   /* offset 320 */
        seed_send(&s, 1, 4, ID_RECEIVED(1), 8);
        seed_op(&s, FUZZ_OP_RECONNECT, 0);
        seed_ring(&s, 0, FUZZ_RING_ACK_ID);
        seed_bytes(&s, 1, 0);
        seed_op(&s, FUZZ_OP_RESET, 2);                  /* max_slices 0: EDQUOT */
        seed_bytes(&s, 3, 0, 1 | 0 << 3, 0);
        seed_transfer(&s, 2, ID_0x100, 1);
        seed_send(&s, 1, 4, ID_RECEIVED(2), 8);
        seed_op(&s, FUZZ_OP_RECONNECT, 0);
        seed_ring(&s, 0, FUZZ_RING_AHEAD);              /* 257: one more than fits */
        seed_bytes(&s, 1, 255);
        seed_ring(&s, 0, FUZZ_RING_AHEAD);
        seed_bytes(&s, 1, 0);
        seed_op(&s, FUZZ_OP_QUERY, 0);
        seed_ring(&s, 1, FUZZ_RING_BACK);
        seed_bytes(&s, 1, 0);
        seed_op(&s, FUZZ_OP_QUERY, 1);
        seed_ring(&s, 2, FUZZ_RING_TAIL);
        seed_bytes(&s, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
        seed_op(&s, FUZZ_OP_QUERY, 2);
        seed_done(&s, "ring-hostile");

        /*
         * A client writing its ring while the broker works: the ACK of the
         * message it got lands between two drains of it within one send to
         * two of its nodes (the entry carries a handle it released meanwhile).
         */
        seed_start(&s, 0);
        seed_transfer(&s, 0, ID_0x100, 2);
        seed_transfer(&s, 0, ID_0x100, 1);
        seed_transfer(&s, 1, ID_0x100, 2);
        seed_op(&s, FUZZ_OP_TRANSFER, 1);               /* a second node of client 1 */
        seed_bytes(&s, 2, 0xc0 + 8, 3);                /* ID 0x40 */
        seed_op(&s, FUZZ_OP_SEND, 2);
        seed_bytes(&s, 8, 0, 1, 1, 0, ID_RECEIVED(1), ID_RECEIVED(0), 0, 8);
        seed_op(&s, FUZZ_OP_RELEASE, 1);
        seed_bytes(&s, 1, ID_RECEIVED(0));
        seed_ring(&s, 1, FUZZ_RING_LATE);
        seed_bytes(&s, 1, 1);                           /* at the second drain */
        seed_op(&s, FUZZ_OP_SEND, 2);
        seed_bytes(&s, 10, 0, 2, 1, 0, ID_RECEIVED(1), ID_RECEIVED(2), ID_RECEIVED(0), 0,
                   8);
        seed_recv(&s, 1, 0);
        seed_recv(&s, 1, 0);
        seed_recv(&s, 1, 0);
        seed_done(&s, "ring-late");

        /* no automatic HELLO: a request first is a violation */
        seed_start(&s, FUZZ_CONFIG_NO_HELLO);
        seed_op(&s, FUZZ_OP_QUERY, 0);
        seed_op(&s, FUZZ_OP_HELLO, 1);
        seed_bytes(&s, 1, 0x10 | 0x20 | 1 | 1 << 2);
        seed_op(&s, FUZZ_OP_HELLO, 1);
        seed_bytes(&s, 1, 0);
        seed_op(&s, FUZZ_OP_RAW, 1);                    /* too long: MSG_TRUNC */
        seed_bytes(&s, 4, 0, 3, 0x01, 0x01);
        seed_op(&s, FUZZ_OP_RAW, 2);                    /* a HELLO by hand, the input's end */
        seed_bytes(&s, 6, 4, 1, 0x01, 0x00, 0, 0);
        seed_done(&s, "no-hello");
}

int main(int argc, char **argv) {
        if (argc != 3) {
                fprintf(stderr, "usage: %s decode|dispatch DIR\n", argv[0]);
                return 2;
        }
        seeds_dir = argv[2];
        if (strcmp(argv[1], "decode") == 0)
                seeds_decode();
        else if (strcmp(argv[1], "dispatch") == 0)
                seeds_dispatch();
        else
                return 2;
        return 0;
}
