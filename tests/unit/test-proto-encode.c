/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for the protocol encoder
 *
 * Three things are pinned here. The layout: encoded records are compared
 * with the bytes docs/protocol.md describes, written out at numeric offsets
 * (or in hex) rather than through proto.h. The round trip: every record type
 * is encoded and decoded again, giving back the values it was built from.
 * The refusals: an encoder fails, without touching the buffer, on every
 * argument the decoder would refuse (with the same errno) and on a buffer
 * too small (-ENOBUFS).
 *
 * check_record() is the consistency checker run on every encoded record:
 * the size is the return value, a multiple of 8 within PROTO_RECORD_MAX, the
 * header holds version 1, the expected type and cookie, and
 * proto_decode_header() accepts it. Buffers start filled with FILL, so tests
 * also see that nothing before or past a record is written.
 */

#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <cmocka.h>
#include "proto/proto.h"
#include "util/macro.h"

#define FILL 0xee

static void put16(uint8_t *buf, size_t off, uint16_t v) {
        v = htole16(v);
        memcpy(buf + off, &v, sizeof(v));
}

static void put32(uint8_t *buf, size_t off, uint32_t v) {
        v = htole32(v);
        memcpy(buf + off, &v, sizeof(v));
}

static void put64(uint8_t *buf, size_t off, uint64_t v) {
        v = htole64(v);
        memcpy(buf + off, &v, sizeof(v));
}

/* a buffer of PROTO_RECORD_MAX + 64 bytes filled with FILL */
static uint8_t *buf_new(void) {
        uint8_t *b = malloc(PROTO_RECORD_MAX + 64);

        assert_non_null(b);
        memset(b, FILL, PROTO_RECORD_MAX + 64);
        return b;
}

static void expect_fill(const uint8_t *b, size_t from, size_t to) {
        size_t i;

        for (i = from; i < to; ++i)
                assert_int_equal(b[i], FILL);
}

/* the consistency checker: see the head comment */
static void check_record(const uint8_t *b, int n, uint16_t type, uint64_t cookie) {
        ProtoHeader hdr;

        assert_true(n >= 16);
        assert_int_equal(n % 8, 0);
        assert_true(n <= (int)PROTO_RECORD_MAX);
        assert_int_equal(proto_decode_header(&hdr, b, (size_t)n), 0);
        assert_int_equal(hdr.size, n);
        assert_int_equal(hdr.version, 1);
        assert_int_equal(hdr.type, type);
        assert_int_equal(hdr.cookie, cookie);
}

/* a zeroed expected record with its header */
static uint8_t *expected_new(size_t size, uint16_t type, uint64_t cookie) {
        uint8_t *e = calloc(1, size);

        assert_non_null(e);
        put32(e, 0, (uint32_t)size);
        put16(e, 4, 1);
        put16(e, 6, type);
        put64(e, 8, cookie);
        return e;
}

static void expect_bytes(const uint8_t *b, int n, uint8_t *expected, size_t size) {
        assert_int_equal(n, (int)size);
        assert_memory_equal(b, expected, size);
        free(expected);
}

static void test_golden_hex(void **state) {
        static const uint8_t hello[] = {
                0x20, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
                0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        };
        static const uint8_t wake[] = {
                0x10, 0x00, 0x00, 0x00, 0x01, 0x00, 0x03, 0x80,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        };
        static const uint8_t reply_error[] = {
                0x18, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x80,
                0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        };
        static const uint8_t resync[] = {
                0x10, 0x00, 0x00, 0x00, 0x01, 0x00, 0x05, 0x80,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        };
        static const uint8_t ack[] = {
                0x18, 0x00, 0x00, 0x00, 0x01, 0x00, 0x03, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x2a, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        };
        static const uint8_t slice_fds[] = {
                0x28, 0x00, 0x00, 0x00, 0x01, 0x00, 0x31, 0x01,
                0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        };
        static const uint8_t retract[] = {
                0x20, 0x00, 0x00, 0x00, 0x01, 0x00, 0x02, 0x80,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        };
        static const int fd5 = 5;
        uint8_t *b = buf_new();
        int n;

        n = proto_encode_hello(b, PROTO_RECORD_MAX, &(ProtoHello){
                .cookie = 0x1122334455667788, .version_min = 1, .version_max = 1 });
        assert_int_equal(n, sizeof(hello));
        assert_memory_equal(b, hello, sizeof(hello));
        check_record(b, n, PROTO_TYPE_HELLO, 0x1122334455667788);

        memset(b, FILL, PROTO_RECORD_MAX + 64);
        n = proto_encode_wake(b, PROTO_RECORD_MAX);
        assert_int_equal(n, sizeof(wake));
        assert_memory_equal(b, wake, sizeof(wake));
        check_record(b, n, PROTO_TYPE_WAKE, 0);

        memset(b, FILL, PROTO_RECORD_MAX + 64);
        n = proto_encode_reply(b, PROTO_RECORD_MAX, &(ProtoReply){ .cookie = 42,
                                                                   .error = ENXIO });
        assert_int_equal(n, sizeof(reply_error));
        assert_memory_equal(b, reply_error, sizeof(reply_error));
        check_record(b, n, PROTO_TYPE_REPLY, 42);

        memset(b, FILL, PROTO_RECORD_MAX + 64);
        n = proto_encode_resync(b, PROTO_RECORD_MAX);
        assert_int_equal(n, sizeof(resync));
        assert_memory_equal(b, resync, sizeof(resync));
        check_record(b, n, PROTO_TYPE_RESYNC, 0);

        memset(b, FILL, PROTO_RECORD_MAX + 64);
        n = proto_encode_ack(b, PROTO_RECORD_MAX, &(ProtoAck){ .entry_id = 0x12a });
        assert_int_equal(n, sizeof(ack));
        assert_memory_equal(b, ack, sizeof(ack));
        check_record(b, n, PROTO_TYPE_ACK, 0);

        memset(b, FILL, PROTO_RECORD_MAX + 64);
        n = proto_encode_slice_fds(b, PROTO_RECORD_MAX, 12, 4096, &fd5, 1);
        assert_int_equal(n, sizeof(slice_fds));
        assert_memory_equal(b, slice_fds, sizeof(slice_fds));
        check_record(b, n, PROTO_TYPE_SLICE_FDS, 12);

        memset(b, FILL, PROTO_RECORD_MAX + 64);
        n = proto_encode_retract(b, PROTO_RECORD_MAX, &(ProtoRetract){
                .entry_id = 7, .flags = PROTO_RETRACT_FLAG_PREV_CONTINUES });
        assert_int_equal(n, sizeof(retract));
        assert_memory_equal(b, retract, sizeof(retract));
        check_record(b, n, PROTO_TYPE_RETRACT, 0);
        expect_fill(b, sizeof(retract), PROTO_RECORD_MAX + 64);
        free(b);
}

static void test_golden_requests(void **state) {
        static const uint64_t ids[] = { 0x100, 0x0b };
        static const int fds[] = { 3, 0, INT32_MAX };
        uint8_t *b = buf_new(), *e;
        int n;

        n = proto_encode_fds(b, PROTO_RECORD_MAX, &(ProtoFds){ .type = PROTO_TYPE_FDS,
                                                               .n_fds = 253 });
        e = expected_new(24, 0x0002, 0);
        put32(e, 16, 253);
        expect_bytes(b, n, e, 24);

        n = proto_encode_peer_disconnect(b, PROTO_RECORD_MAX, &(ProtoPeerDisconnect){
                .cookie = 1 });
        expect_bytes(b, n, expected_new(24, 0x0100, 1), 24);

        n = proto_encode_peer_query(b, PROTO_RECORD_MAX, &(ProtoPeerQuery){ .cookie = 2 });
        expect_bytes(b, n, expected_new(24, 0x0101, 2), 24);

        n = proto_encode_peer_reset(b, PROTO_RECORD_MAX, &(ProtoPeerReset){
                .cookie = 3, .flags = 3, .peer_flags = UINT64_MAX, .max_slices = 10,
                .max_handles = UINT32_MAX, .max_inflight_bytes = 30, .max_inflight_fds = 40 });
        e = expected_new(48, 0x0102, 3);
        put64(e, 16, 3);
        put64(e, 24, UINT64_MAX);
        put32(e, 32, 10);
        put32(e, 36, UINT32_MAX);
        put32(e, 40, 30);
        put32(e, 44, 40);
        expect_bytes(b, n, e, 48);

        n = proto_encode_handle_release(b, PROTO_RECORD_MAX, &(ProtoHandleRelease){
                .cookie = 4, .id = 0x1b });
        e = expected_new(24, 0x0110, 4);
        put64(e, 16, 0x1b);
        expect_bytes(b, n, e, 24);

        n = proto_encode_handle_transfer(b, PROTO_RECORD_MAX, &(ProtoHandleTransfer){
                .cookie = 5, .src_handle = 0x100, .dst_mode = PROTO_DST_FD });
        e = expected_new(40, 0x0111, 5);
        put64(e, 24, 0x100);
        put32(e, 32, 1);
        expect_bytes(b, n, e, 40);

        n = proto_encode_nodes_destroy(b, PROTO_RECORD_MAX, 6, 1, ids, 2);
        e = expected_new(48, 0x0120, 6);
        put64(e, 16, 1);
        put64(e, 24, 2);
        put64(e, 32, 0x100);
        put64(e, 40, 0x0b);
        expect_bytes(b, n, e, 48);

        n = proto_encode_slice_release(b, PROTO_RECORD_MAX, &(ProtoSliceRelease){
                .cookie = 7, .offset = 8192 });
        e = expected_new(24, 0x0130, 7);
        put64(e, 16, 8192);
        expect_bytes(b, n, e, 24);

        n = proto_encode_recv(b, PROTO_RECORD_MAX, &(ProtoRecv){
                .cookie = 8, .flags = BUS1_RECV_FLAG_INSTALL_FDS, .max_offset = 1 << 16 });
        e = expected_new(32, 0x0150, 8);
        put64(e, 16, 4);
        put64(e, 24, 1 << 16);
        expect_bytes(b, n, e, 32);

        n = proto_encode_ack(b, PROTO_RECORD_MAX, &(ProtoAck){ .entry_id = UINT64_MAX });
        e = expected_new(24, 0x0003, 0);
        put64(e, 16, UINT64_MAX);
        expect_bytes(b, n, e, 24);

        /* an even count has no padding, an odd one 4 zero bytes */
        n = proto_encode_slice_fds(b, PROTO_RECORD_MAX, 9, 0x10000, fds, 2);
        e = expected_new(40, 0x0131, 9);
        put64(e, 16, 0x10000);
        put32(e, 24, 2);
        put32(e, 32, 3);
        put32(e, 36, 0);
        expect_bytes(b, n, e, 40);

        n = proto_encode_slice_fds(b, PROTO_RECORD_MAX, 10, 8, fds, 3);
        e = expected_new(48, 0x0131, 10);
        put64(e, 16, 8);
        put32(e, 24, 3);
        put32(e, 32, 3);
        put32(e, 36, 0);
        put32(e, 40, INT32_MAX);
        expect_bytes(b, n, e, 48);
        free(b);
}

static void test_golden_send(void **state) {
        static const uint64_t dests[] = { 0x0b, 0x13 };
        static const uint64_t handles[] = { 0x100 };
        struct iovec vecs[] = {
                { .iov_base = (void *)"abc", .iov_len = 3 },
                { .iov_base = NULL, .iov_len = 0 },
                { .iov_base = (void *)"defgh", .iov_len = 5 },
                { .iov_base = (void *)"i", .iov_len = 1 },
        };
        uint8_t *b = buf_new(), *e;
        int n;

        n = proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .cookie = 9, .flags = BUS1_SEND_FLAG_CONTINUE | PROTO_SEND_FLAG_ERRORS,
                .destinations = dests, .n_destinations = 2, .handles = handles,
                .n_handles = 1, .n_fds = 3, .vecs = vecs, .n_vecs = 4 });
        /* 56 + 3 * 8 = 80, then 9 payload bytes padded to 16 */
        e = expected_new(96, 0x0140, 9);
        put64(e, 16, 1 | (1ULL << 63));
        put32(e, 24, 2);
        put32(e, 28, 1);
        put32(e, 32, 3);
        put32(e, 36, 0);
        put64(e, 40, 9);
        put64(e, 48, 0);
        put64(e, 56, 0x0b);
        put64(e, 64, 0x13);
        put64(e, 72, 0x100);
        memcpy(e + 80, "abcdefghi", 9);
        expect_bytes(b, n, e, 96);
        check_record(b, n, PROTO_TYPE_SEND, 9);

        memset(b, FILL, PROTO_RECORD_MAX + 64);
        n = proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .cookie = 10, .destinations = dests, .n_destinations = 1,
                .payload_mode = PROTO_PAYLOAD_MEMFD, .n_bytes = 1 << 20,
                .memfd_offset = 4096,
                .vecs = vecs, .n_vecs = 4 /* not read with a memfd */ });
        e = expected_new(64, 0x0140, 10);
        put32(e, 24, 1);
        put32(e, 36, 1);
        put64(e, 40, 1 << 20);
        put64(e, 48, 4096);
        put64(e, 56, 0x0b);
        expect_bytes(b, n, e, 64);
        check_record(b, n, PROTO_TYPE_SEND, 10);
        free(b);
}

static const ProtoMessage msg_data = {
        .type = BUS1_MSG_DATA,
        .flags = BUS1_MSG_FLAG_CONTINUE,
        .destination = 0x100,
        .uid = 1000,
        .gid = 100,
        .pid = 77,
        .tid = 78,
        .offset = 64,
        .n_bytes = 9,
        .n_handles = 1,
        .n_fds = 2,
        .n_secctx = 0,
};

/* a pushed entry the client must dequeue with a RECV */
static const ProtoMessage msg_sync = {
        .type = BUS1_MSG_DATA,
        .flags = BUS1_MSG_FLAG_CONTINUE | PROTO_MSG_FLAG_SYNC,
        .destination = 0x200,
        .uid = 0,
        .gid = 0,
        .pid = 1,
        .tid = 2,
        .offset = 0,
        .n_bytes = 0,
        .n_handles = 3,
        .n_fds = 0,
        .n_secctx = 0,
};

/* the message fields at @off, as ENTRY and the RECV reply place them */
static void put_message(uint8_t *e, size_t off, const ProtoMessage *m) {
        put64(e, off + 0, m->type);
        put64(e, off + 8, m->flags);
        put64(e, off + 16, m->destination);
        put32(e, off + 24, m->uid);
        put32(e, off + 28, m->gid);
        put32(e, off + 32, m->pid);
        put32(e, off + 36, m->tid);
        put64(e, off + 40, m->offset);
        put64(e, off + 48, m->n_bytes);
        put64(e, off + 56, m->n_handles);
        put64(e, off + 64, m->n_fds);
        put64(e, off + 72, m->n_secctx);
}

static void test_golden_replies(void **state) {
        static const uint64_t errors[] = { 0, EXFULL };
        uint8_t *b = buf_new(), *e;
        int n;

        n = proto_encode_reply(b, PROTO_RECORD_MAX, &(ProtoReply){ .cookie = 1 });
        expect_bytes(b, n, expected_new(24, 0x8000, 1), 24);

        n = proto_encode_reply_hello(b, PROTO_RECORD_MAX, &(ProtoReplyHello){
                .cookie = 2, .version = 1, .peer_id = 5, .pool_size = 1 << 22 });
        e = expected_new(48, 0x8000, 2);
        put64(e, 24, 5);
        put64(e, 32, 1 << 22);
        put32(e, 40, 1);
        expect_bytes(b, n, e, 48);

        n = proto_encode_reply_peer_query(b, PROTO_RECORD_MAX, &(ProtoReplyPeerQuery){
                .cookie = 3, .peer_flags = 1, .max_slices = 1, .max_handles = 2,
                .max_inflight_bytes = 3, .max_inflight_fds = 4 });
        e = expected_new(56, 0x8000, 3);
        put64(e, 32, 1);
        put32(e, 40, 1);
        put32(e, 44, 2);
        put32(e, 48, 3);
        put32(e, 52, 4);
        expect_bytes(b, n, e, 56);

        n = proto_encode_reply_handle_transfer(b, PROTO_RECORD_MAX, &(ProtoReplyHandleTransfer){
                .cookie = 4, .dst_handle = BUS1_HANDLE_INVALID });
        e = expected_new(32, 0x8000, 4);
        put64(e, 24, BUS1_HANDLE_INVALID);
        expect_bytes(b, n, e, 32);

        n = proto_encode_reply_send(b, PROTO_RECORD_MAX, 5, errors, 2);
        e = expected_new(48, 0x8000, 5);
        put64(e, 24, 2);
        put64(e, 32, 0);
        put64(e, 40, EXFULL);
        expect_bytes(b, n, e, 48);

        n = proto_encode_reply_recv(b, PROTO_RECORD_MAX, &(ProtoReplyRecv){
                .cookie = 6, .entry = { .entry_id = 3, .msg = msg_data } });
        e = expected_new(112, 0x8000, 6);
        put64(e, 24, 3);
        put_message(e, 32, &msg_data);
        expect_bytes(b, n, e, 112);

        n = proto_encode_entry(b, PROTO_RECORD_MAX, &(ProtoEntry){ .entry_id = 9,
                                                                    .msg = msg_data });
        e = expected_new(104, 0x8001, 0);
        put64(e, 16, 9);
        put_message(e, 24, &msg_data);
        expect_bytes(b, n, e, 104);

        n = proto_encode_entry(b, PROTO_RECORD_MAX, &(ProtoEntry){ .entry_id = 10,
                                                                    .msg = msg_sync });
        e = expected_new(104, 0x8001, 0);
        put64(e, 16, 10);
        put_message(e, 24, &msg_sync);
        assert_int_equal(e[24 + 8 + 7], 0x80);          /* SYNC is bit 63 of msg.flags */
        expect_bytes(b, n, e, 104);

        n = proto_encode_retract(b, PROTO_RECORD_MAX, &(ProtoRetract){ .entry_id = 9 });
        e = expected_new(32, 0x8002, 0);
        put64(e, 16, 9);
        expect_bytes(b, n, e, 32);

        n = proto_encode_retract(b, PROTO_RECORD_MAX, &(ProtoRetract){
                .entry_id = 11, .flags = PROTO_RETRACT_FLAG_PREV_CONTINUES });
        e = expected_new(32, 0x8002, 0);
        put64(e, 16, 11);
        put64(e, 24, 1);
        expect_bytes(b, n, e, 32);

        n = proto_encode_resync(b, PROTO_RECORD_MAX);
        expect_bytes(b, n, expected_new(16, 0x8005, 0), 16);

        n = proto_encode_fds(b, PROTO_RECORD_MAX, &(ProtoFds){ .type = PROTO_TYPE_PUSH_FDS,
                                                               .n_fds = 1 });
        e = expected_new(24, 0x8004, 0);
        put32(e, 16, 1);
        expect_bytes(b, n, e, 24);
        free(b);
}

static void test_round_trip_requests(void **state) {
        const ProtoHello hello = { .cookie = 1, .version_min = 1, .version_max = 3 };
        const ProtoFds fds = { .type = PROTO_TYPE_FDS, .n_fds = 17 };
        const ProtoPeerDisconnect disconnect = { .cookie = 2 };
        const ProtoPeerQuery query = { .cookie = 3 };
        const ProtoPeerReset reset = {
                .cookie = 4, .flags = BUS1_PEER_RESET_FLAG_FLUSH_SEED, .peer_flags = 0,
                .max_slices = INT32_MAX, .max_handles = 0, .max_inflight_bytes = UINT32_MAX,
                .max_inflight_fds = 7 };
        const ProtoHandleRelease release = { .cookie = 5, .id = UINT64_MAX };
        const ProtoHandleTransfer transfer = { .cookie = 6, .src_handle = 0,
                                               .dst_mode = PROTO_DST_SELF };
        const ProtoSliceRelease slice = { .cookie = 7, .offset = BUS1_OFFSET_INVALID };
        const ProtoRecv recv_req = { .cookie = UINT64_MAX, .flags = PROTO_RECV_FLAGS,
                                     .max_offset = 0 };
        const ProtoAck ack = { .entry_id = 0x8000000000000001 };
        ProtoAck ack2;
        ProtoHello hello2;
        ProtoFds fds2;
        ProtoPeerDisconnect disconnect2;
        ProtoPeerQuery query2;
        ProtoPeerReset reset2;
        ProtoHandleRelease release2;
        ProtoHandleTransfer transfer2;
        ProtoSliceRelease slice2;
        ProtoRecv recv2;
        uint8_t *b = buf_new();
        int n;

        n = proto_encode_hello(b, PROTO_RECORD_MAX, &hello);
        check_record(b, n, PROTO_TYPE_HELLO, 1);
        assert_int_equal(proto_decode_hello(&hello2, b, n, 0), 0);
        assert_memory_equal(&hello, &hello2, sizeof(hello));

        n = proto_encode_fds(b, PROTO_RECORD_MAX, &fds);
        check_record(b, n, PROTO_TYPE_FDS, 0);
        assert_int_equal(proto_decode_fds(&fds2, b, n, 17), 0);
        assert_int_equal(fds2.type, fds.type);
        assert_int_equal(fds2.n_fds, fds.n_fds);

        n = proto_encode_peer_disconnect(b, PROTO_RECORD_MAX, &disconnect);
        check_record(b, n, PROTO_TYPE_PEER_DISCONNECT, 2);
        assert_int_equal(proto_decode_peer_disconnect(&disconnect2, b, n, 0), 0);
        assert_memory_equal(&disconnect, &disconnect2, sizeof(disconnect));

        n = proto_encode_peer_query(b, PROTO_RECORD_MAX, &query);
        check_record(b, n, PROTO_TYPE_PEER_QUERY, 3);
        assert_int_equal(proto_decode_peer_query(&query2, b, n, 0), 0);
        assert_memory_equal(&query, &query2, sizeof(query));

        n = proto_encode_peer_reset(b, PROTO_RECORD_MAX, &reset);
        check_record(b, n, PROTO_TYPE_PEER_RESET, 4);
        assert_int_equal(proto_decode_peer_reset(&reset2, b, n, 0), 0);
        assert_memory_equal(&reset, &reset2, sizeof(reset));

        n = proto_encode_handle_release(b, PROTO_RECORD_MAX, &release);
        check_record(b, n, PROTO_TYPE_HANDLE_RELEASE, 5);
        assert_int_equal(proto_decode_handle_release(&release2, b, n, 0), 0);
        assert_memory_equal(&release, &release2, sizeof(release));

        n = proto_encode_handle_transfer(b, PROTO_RECORD_MAX, &transfer);
        check_record(b, n, PROTO_TYPE_HANDLE_TRANSFER, 6);
        assert_int_equal(proto_decode_handle_transfer(&transfer2, b, n, 0), 0);
        assert_int_equal(transfer2.cookie, 6);
        assert_int_equal(transfer2.flags, 0);
        assert_int_equal(transfer2.src_handle, 0);
        assert_int_equal(transfer2.dst_mode, PROTO_DST_SELF);
        assert_int_equal(proto_handle_transfer_n_fds(&transfer2), 0);

        n = proto_encode_slice_release(b, PROTO_RECORD_MAX, &slice);
        check_record(b, n, PROTO_TYPE_SLICE_RELEASE, 7);
        assert_int_equal(proto_decode_slice_release(&slice2, b, n, 0), 0);
        assert_memory_equal(&slice, &slice2, sizeof(slice));

        n = proto_encode_recv(b, PROTO_RECORD_MAX, &recv_req);
        check_record(b, n, PROTO_TYPE_RECV, UINT64_MAX);
        assert_int_equal(proto_decode_recv(&recv2, b, n, 0), 0);
        assert_memory_equal(&recv_req, &recv2, sizeof(recv_req));

        n = proto_encode_ack(b, PROTO_RECORD_MAX, &ack);
        check_record(b, n, PROTO_TYPE_ACK, 0);
        assert_int_equal(proto_decode_ack(&ack2, b, n, 0), 0);
        assert_memory_equal(&ack, &ack2, sizeof(ack));
        free(b);
}

static void test_round_trip_slice_fds(void **state) {
        static const size_t counts[] = { 1, 2, 3, 7, BUS1_FD_MAX - 1, BUS1_FD_MAX };
        int fds[BUS1_FD_MAX];
        ProtoSliceFds v;
        uint8_t *b = buf_new();
        size_t i, j, size;
        int n;

        for (i = 0; i < BUS1_FD_MAX; ++i)
                fds[i] = i % 3 == 0 ? (int)i : INT32_MAX - (int)i;
        for (i = 0; i < ARRAY_SIZE(counts); ++i) {
                memset(b, FILL, PROTO_RECORD_MAX + 64);
                n = proto_encode_slice_fds(b, PROTO_RECORD_MAX, i + 100, i * 4096, fds,
                                           counts[i]);
                check_record(b, n, PROTO_TYPE_SLICE_FDS, i + 100);
                assert_int_equal(proto_size_slice_fds(&size, counts[i]), 0);
                assert_int_equal(n, size);
                assert_int_equal(n, 32 + ((4 * counts[i] + 7) & ~(size_t)7));
                expect_fill(b, (size_t)n, PROTO_RECORD_MAX + 64);
                assert_int_equal(proto_decode_slice_fds(&v, b, n, 0), 0);
                assert_int_equal(v.cookie, i + 100);
                assert_int_equal(v.offset, i * 4096);
                assert_int_equal(v.n_fds, counts[i]);
                for (j = 0; j < counts[i]; ++j)
                        assert_int_equal(proto_s32_at(v.fds, j), fds[j]);
        }
        free(b);
}

static void test_round_trip_nodes_destroy(void **state) {
        static const size_t counts[] = { 0, 1, 2, 100, PROTO_NODES_MAX };
        uint64_t *ids = malloc(PROTO_NODES_MAX * sizeof(*ids));
        ProtoNodesDestroy v;
        uint8_t *b = buf_new();
        size_t i, j;
        int n;

        assert_non_null(ids);
        for (i = 0; i < PROTO_NODES_MAX; ++i)
                ids[i] = i * 0x0101010101010101ULL;
        for (i = 0; i < ARRAY_SIZE(counts); ++i) {
                memset(b, FILL, PROTO_RECORD_MAX + 64);
                n = proto_encode_nodes_destroy(b, PROTO_RECORD_MAX, i, i & 1, ids, counts[i]);
                check_record(b, n, PROTO_TYPE_NODES_DESTROY, i);
                assert_int_equal(n, 32 + 8 * counts[i]);
                assert_int_equal(proto_decode_nodes_destroy(&v, b, n, 0), 0);
                assert_int_equal(v.cookie, i);
                assert_int_equal(v.flags, i & 1);
                assert_int_equal(v.n_nodes, counts[i]);
                for (j = 0; j < counts[i]; ++j)
                        assert_int_equal(proto_u64_at(v.ids, j), ids[j]);
        }
        free(ids);
        free(b);
}

/* encode @args, decode, and compare with what @args said */
static void round_trip_send(const ProtoSendArgs *args, const uint8_t *payload, uint64_t n_bytes) {
        ProtoSend v;
        uint8_t *b = buf_new();
        size_t i, size;
        int n;

        n = proto_encode_send(b, PROTO_RECORD_MAX, args);
        check_record(b, n, PROTO_TYPE_SEND, args->cookie);
        assert_int_equal(proto_size_send(&size, args->n_destinations, args->n_handles,
                                         args->payload_mode, n_bytes), 0);
        assert_int_equal(n, size);
        assert_int_equal(proto_decode_send(&v, b, n, args->n_fds +
                                           (args->payload_mode == PROTO_PAYLOAD_MEMFD)), 0);
        assert_int_equal(v.cookie, args->cookie);
        assert_int_equal(v.flags, args->flags);
        assert_int_equal(v.n_destinations, args->n_destinations);
        assert_int_equal(v.n_handles, args->n_handles);
        assert_int_equal(v.n_fds, args->n_fds);
        assert_int_equal(v.payload_mode, args->payload_mode);
        assert_int_equal(v.n_bytes, n_bytes);
        for (i = 0; i < args->n_destinations; ++i)
                assert_int_equal(proto_u64_at(v.destinations, i), args->destinations[i]);
        for (i = 0; i < args->n_handles; ++i)
                assert_int_equal(proto_u64_at(v.handles, i), args->handles[i]);
        if (args->payload_mode == PROTO_PAYLOAD_INLINE) {
                assert_int_equal(v.memfd_offset, 0);
                if (n_bytes > 0)
                        assert_memory_equal(v.payload, payload, n_bytes);
        } else {
                assert_int_equal(v.memfd_offset, args->memfd_offset);
                assert_null(v.payload);
        }
        free(b);
}

static void test_round_trip_send(void **state) {
        static const uint64_t ids[] = { 0x0b, 0x13, 0x1b, 0x100, 0 };
        uint8_t *payload = malloc(PROTO_RECORD_MAX);
        uint64_t *many = calloc(PROTO_DESTINATIONS_MAX, sizeof(*many));
        struct iovec vecs[8];
        size_t i, len;

        assert_non_null(payload);
        assert_non_null(many);
        for (i = 0; i < PROTO_RECORD_MAX; ++i)
                payload[i] = (uint8_t)(i * 7 + 3);
        for (i = 0; i < PROTO_DESTINATIONS_MAX; ++i)
                many[i] = (i << 3) | 3;

        /* every payload length over a padding cycle, split over several iovecs */
        for (len = 0; len <= 17; ++len) {
                vecs[0] = (struct iovec){ .iov_base = payload, .iov_len = len / 3 };
                vecs[1] = (struct iovec){ .iov_base = NULL, .iov_len = 0 };
                vecs[2] = (struct iovec){ .iov_base = payload + len / 3,
                                          .iov_len = len - len / 3 };
                round_trip_send(&(ProtoSendArgs){
                        .cookie = len, .flags = BUS1_SEND_FLAG_CONTINUE,
                        .destinations = ids, .n_destinations = len % 5,
                        .handles = ids, .n_handles = 5 - len % 5, .n_fds = len,
                        .vecs = vecs, .n_vecs = 3 }, payload, len);
        }
        /* no payload, no iovecs at all; a seed */
        round_trip_send(&(ProtoSendArgs){ .flags = BUS1_SEND_FLAG_SEED | PROTO_SEND_FLAG_ERRORS,
                                          .handles = ids, .n_handles = 2 }, NULL, 0);
        /* memfd payloads, up to 2 GiB */
        round_trip_send(&(ProtoSendArgs){ .cookie = 1, .payload_mode = PROTO_PAYLOAD_MEMFD,
                                          .n_bytes = PROTO_BYTES_MAX, .memfd_offset = 8,
                                          .n_fds = BUS1_FD_MAX },
                        NULL, PROTO_BYTES_MAX);
        round_trip_send(&(ProtoSendArgs){ .cookie = 2, .payload_mode = PROTO_PAYLOAD_MEMFD },
                        NULL, 0);
        /* the most destinations, the most handles */
        round_trip_send(&(ProtoSendArgs){ .cookie = 3, .destinations = many,
                                          .n_destinations = PROTO_DESTINATIONS_MAX },
                        NULL, 0);
        round_trip_send(&(ProtoSendArgs){ .cookie = 4, .handles = many,
                                          .n_handles = PROTO_HANDLES_MAX }, NULL, 0);
        /* the largest inline payload */
        vecs[0] = (struct iovec){ .iov_base = payload, .iov_len = PROTO_RECORD_MAX - 56 };
        round_trip_send(&(ProtoSendArgs){ .cookie = 5, .vecs = vecs, .n_vecs = 1 },
                        payload, PROTO_RECORD_MAX - 56);
        vecs[0].iov_len = PROTO_RECORD_MAX - 56 - 7;
        round_trip_send(&(ProtoSendArgs){ .cookie = 6, .vecs = vecs, .n_vecs = 1 },
                        payload, PROTO_RECORD_MAX - 56 - 7);
        free(many);
        free(payload);
}

static void test_round_trip_replies(void **state) {
        const ProtoReplyHello hello = { .cookie = 1, .version = 1, .peer_id = UINT64_MAX,
                                        .pool_size = (uint64_t)INT64_MAX };
        const ProtoReplyPeerQuery query = { .cookie = 2, .peer_flags = 1,
                                            .max_slices = INT32_MAX, .max_handles = 0,
                                            .max_inflight_bytes = 1,
                                            .max_inflight_fds = 4096 };
        const ProtoReplyHandleTransfer transfer = { .cookie = 3, .dst_handle = 0x1b };
        const ProtoReplyRecv recv_reply = { .cookie = 4, .entry = { .entry_id = 0,
                                                                   .msg = msg_data } };
        ProtoReplyHello hello2;
        ProtoReplyPeerQuery query2;
        ProtoReplyHandleTransfer transfer2;
        ProtoReplyRecv recv2;
        ProtoReply reply;
        uint8_t *b = buf_new();
        int n;

        n = proto_encode_reply_hello(b, PROTO_RECORD_MAX, &hello);
        check_record(b, n, PROTO_TYPE_REPLY, 1);
        assert_int_equal(proto_decode_reply_hello(&hello2, b, n, 2), 0);
        assert_memory_equal(&hello, &hello2, sizeof(hello));

        n = proto_encode_reply_peer_query(b, PROTO_RECORD_MAX, &query);
        check_record(b, n, PROTO_TYPE_REPLY, 2);
        assert_int_equal(proto_decode_reply_peer_query(&query2, b, n, 0), 0);
        assert_int_equal(query2.cookie, query.cookie);
        assert_int_equal(query2.error, 0);
        assert_int_equal(query2.flags, 0);
        assert_int_equal(query2.peer_flags, query.peer_flags);
        assert_int_equal(query2.max_slices, query.max_slices);
        assert_int_equal(query2.max_handles, query.max_handles);
        assert_int_equal(query2.max_inflight_bytes, query.max_inflight_bytes);
        assert_int_equal(query2.max_inflight_fds, query.max_inflight_fds);

        n = proto_encode_reply_handle_transfer(b, PROTO_RECORD_MAX, &transfer);
        check_record(b, n, PROTO_TYPE_REPLY, 3);
        assert_int_equal(proto_decode_reply_handle_transfer(&transfer2, b, n, 0), 0);
        assert_int_equal(transfer2.cookie, transfer.cookie);
        assert_int_equal(transfer2.error, 0);
        assert_int_equal(transfer2.dst_handle, transfer.dst_handle);

        n = proto_encode_reply_recv(b, PROTO_RECORD_MAX, &recv_reply);
        check_record(b, n, PROTO_TYPE_REPLY, 4);
        assert_int_equal(proto_decode_reply_recv(&recv2, b, n, msg_data.n_fds), 0);
        assert_int_equal(recv2.cookie, recv_reply.cookie);
        assert_int_equal(recv2.error, 0);
        assert_memory_equal(&recv2.entry, &recv_reply.entry, sizeof(recv2.entry));

        n = proto_encode_reply(b, PROTO_RECORD_MAX, &(ProtoReply){ .cookie = 5,
                                                                   .error = PROTO_ERRNO_MAX });
        check_record(b, n, PROTO_TYPE_REPLY, 5);
        assert_int_equal(proto_decode_reply(&reply, b, n, 0), 0);
        assert_int_equal(reply.cookie, 5);
        assert_int_equal(reply.error, PROTO_ERRNO_MAX);
        free(b);
}

static void test_round_trip_reply_send(void **state) {
        static const size_t counts[] = { 0, 1, 3, PROTO_DESTINATIONS_MAX };
        uint64_t *errors = malloc(PROTO_DESTINATIONS_MAX * sizeof(*errors));
        ProtoReplySend v;
        uint8_t *b = buf_new();
        size_t i, j, size;
        int n;

        assert_non_null(errors);
        for (i = 0; i < PROTO_DESTINATIONS_MAX; ++i)
                errors[i] = i % (PROTO_ERRNO_MAX + 1);
        for (i = 0; i < ARRAY_SIZE(counts); ++i) {
                n = proto_encode_reply_send(b, PROTO_RECORD_MAX, i, errors, counts[i]);
                check_record(b, n, PROTO_TYPE_REPLY, i);
                assert_int_equal(proto_size_reply_send(&size, counts[i]), 0);
                assert_int_equal(n, size);
                assert_int_equal(proto_decode_reply_send(&v, b, n, 0), 0);
                assert_int_equal(v.cookie, i);
                assert_int_equal(v.error, 0);
                assert_int_equal(v.n_errors, counts[i]);
                for (j = 0; j < counts[i]; ++j)
                        assert_int_equal(proto_u64_at(v.errors, j), errors[j]);
        }
        free(errors);
        free(b);
}

static void test_round_trip_pushed(void **state) {
        const ProtoMessage notifications[] = {
                { .type = BUS1_MSG_NODE_DESTROY, .destination = 0x100, .uid = UINT32_MAX,
                  .gid = UINT32_MAX, .offset = BUS1_OFFSET_INVALID },
                { .type = BUS1_MSG_NODE_RELEASE, .flags = BUS1_MSG_FLAG_CONTINUE,
                  .destination = 0, .uid = UINT32_MAX, .gid = UINT32_MAX,
                  .offset = BUS1_OFFSET_INVALID },
        };
        ProtoEntry entry = { .entry_id = UINT64_MAX, .msg = msg_data }, entry2;
        ProtoRetract retract, retract2;
        uint8_t *b = buf_new();
        size_t i;
        int n;

        n = proto_encode_entry(b, PROTO_RECORD_MAX, &entry);
        check_record(b, n, PROTO_TYPE_ENTRY, 0);
        assert_int_equal(proto_decode_entry(&entry2, b, n, 0), 0);
        assert_memory_equal(&entry, &entry2, sizeof(entry));

        for (i = 0; i < ARRAY_SIZE(notifications); ++i) {
                entry = (ProtoEntry){ .entry_id = i + 1, .msg = notifications[i] };
                n = proto_encode_entry(b, PROTO_RECORD_MAX, &entry);
                check_record(b, n, PROTO_TYPE_ENTRY, 0);
                assert_int_equal(proto_decode_entry(&entry2, b, n, 0), 0);
                assert_memory_equal(&entry, &entry2, sizeof(entry));
        }

        entry = (ProtoEntry){ .entry_id = 5, .msg = msg_sync };
        n = proto_encode_entry(b, PROTO_RECORD_MAX, &entry);
        check_record(b, n, PROTO_TYPE_ENTRY, 0);
        assert_int_equal(proto_decode_entry(&entry2, b, n, 0), 0);
        assert_memory_equal(&entry, &entry2, sizeof(entry));
        assert_int_equal(entry2.msg.flags & PROTO_MSG_FLAG_SYNC, PROTO_MSG_FLAG_SYNC);

        for (i = 0; i < 2; ++i) {
                retract = (ProtoRetract){ .entry_id = i + 1,
                                          .flags = i ? PROTO_RETRACT_FLAG_PREV_CONTINUES : 0 };
                n = proto_encode_retract(b, PROTO_RECORD_MAX, &retract);
                check_record(b, n, PROTO_TYPE_RETRACT, 0);
                assert_int_equal(proto_decode_retract(&retract2, b, n, 0), 0);
                assert_memory_equal(&retract, &retract2, sizeof(retract));
        }

        n = proto_encode_wake(b, PROTO_RECORD_MAX);
        check_record(b, n, PROTO_TYPE_WAKE, 0);
        assert_int_equal(proto_decode_wake(b, n, 0), 0);
        assert_int_equal(proto_decode_resync(b, n, 0), -EBADMSG);

        n = proto_encode_resync(b, PROTO_RECORD_MAX);
        check_record(b, n, PROTO_TYPE_RESYNC, 0);
        assert_int_equal(proto_decode_resync(b, n, 0), 0);
        assert_int_equal(proto_decode_wake(b, n, 0), -EBADMSG);
        free(b);
}

/* an error reply carries no body, whatever the per-command struct held */
static void test_error_replies(void **state) {
        ProtoReplyHello hello;
        ProtoReplyPeerQuery query;
        ProtoReplyHandleTransfer transfer;
        ProtoReplyRecv recv_reply;
        uint8_t *b = buf_new();
        int n;

        n = proto_encode_reply_hello(b, PROTO_RECORD_MAX, &(ProtoReplyHello){
                .cookie = 1, .error = EPROTONOSUPPORT, .version = 99, .pool_size = 0 });
        check_record(b, n, PROTO_TYPE_REPLY, 1);
        assert_int_equal(n, 24);
        assert_int_equal(proto_decode_reply_hello(&hello, b, n, 0), 0);
        assert_int_equal(hello.error, EPROTONOSUPPORT);
        assert_int_equal(hello.version, 0);

        n = proto_encode_reply_peer_query(b, PROTO_RECORD_MAX, &(ProtoReplyPeerQuery){
                .cookie = 2, .error = ESHUTDOWN, .flags = 5 });
        assert_int_equal(n, 24);
        assert_int_equal(proto_decode_reply_peer_query(&query, b, n, 0), 0);
        assert_int_equal(query.error, ESHUTDOWN);
        assert_int_equal(query.flags, 0);

        n = proto_encode_reply_handle_transfer(b, PROTO_RECORD_MAX, &(ProtoReplyHandleTransfer){
                .cookie = 3, .error = EOPNOTSUPP, .dst_handle = 8 });
        assert_int_equal(n, 24);
        assert_int_equal(proto_decode_reply_handle_transfer(&transfer, b, n, 0), 0);
        assert_int_equal(transfer.error, EOPNOTSUPP);
        assert_int_equal(transfer.dst_handle, 0);

        n = proto_encode_reply_recv(b, PROTO_RECORD_MAX, &(ProtoReplyRecv){
                .cookie = 4, .error = ERANGE, .entry = { .msg = { .type = 99 } } });
        assert_int_equal(n, 24);
        assert_int_equal(proto_decode_reply_recv(&recv_reply, b, n, 0), 0);
        assert_int_equal(recv_reply.error, ERANGE);
        assert_int_equal(recv_reply.entry.msg.type, 0);

        /* but the errno must fit */
        memset(b, FILL, PROTO_RECORD_MAX + 64);
        assert_int_equal(proto_encode_reply_hello(b, PROTO_RECORD_MAX, &(ProtoReplyHello){
                .error = PROTO_ERRNO_MAX + 1 }), -EINVAL);
        assert_int_equal(proto_encode_reply(b, PROTO_RECORD_MAX, &(ProtoReply){
                .error = UINT32_MAX }), -EINVAL);
        expect_fill(b, 0, PROTO_RECORD_MAX + 64);
        free(b);
}

/*
 * One encoder call per record type, writing into @b with capacity @cap; the
 * ENOBUFS test runs each with every capacity below its size.
 */
static int encode_sample(int i, uint8_t *b, size_t cap) {
        static const uint64_t u64s[] = { 1, 2, 3 };
        static struct iovec vec = { .iov_base = (void *)"xyz", .iov_len = 3 };
        static const int fds[] = { 0, 1, 2 };

        switch (i) {
        case 0:
                return proto_encode_hello(b, cap, &(ProtoHello){ .version_min = 1,
                                                                 .version_max = 1 });
        case 1:
                return proto_encode_fds(b, cap, &(ProtoFds){ .type = PROTO_TYPE_FDS,
                                                             .n_fds = 1 });
        case 2:
                return proto_encode_peer_disconnect(b, cap, &(ProtoPeerDisconnect){});
        case 3:
                return proto_encode_peer_query(b, cap, &(ProtoPeerQuery){});
        case 4:
                return proto_encode_peer_reset(b, cap, &(ProtoPeerReset){});
        case 5:
                return proto_encode_handle_release(b, cap, &(ProtoHandleRelease){});
        case 6:
                return proto_encode_handle_transfer(b, cap, &(ProtoHandleTransfer){});
        case 7:
                return proto_encode_nodes_destroy(b, cap, 0, 0, u64s, 3);
        case 8:
                return proto_encode_slice_release(b, cap, &(ProtoSliceRelease){});
        case 9:
                return proto_encode_send(b, cap, &(ProtoSendArgs){
                        .destinations = u64s, .n_destinations = 2, .handles = u64s,
                        .n_handles = 1, .vecs = &vec, .n_vecs = 1 });
        case 10:
                return proto_encode_recv(b, cap, &(ProtoRecv){});
        case 11:
                return proto_encode_reply(b, cap, &(ProtoReply){ .error = 1 });
        case 12:
                return proto_encode_reply_hello(b, cap, &(ProtoReplyHello){
                        .version = 1, .pool_size = 8 });
        case 13:
                return proto_encode_reply_peer_query(b, cap, &(ProtoReplyPeerQuery){});
        case 14:
                return proto_encode_reply_handle_transfer(b, cap, &(ProtoReplyHandleTransfer){});
        case 15:
                return proto_encode_reply_send(b, cap, 0, u64s, 3);
        case 16:
                return proto_encode_reply_recv(b, cap, &(ProtoReplyRecv){
                        .entry = { .msg = msg_data } });
        case 17:
                return proto_encode_entry(b, cap, &(ProtoEntry){ .entry_id = 1,
                                                                 .msg = msg_data });
        case 18:
                return proto_encode_retract(b, cap, &(ProtoRetract){ .entry_id = 1 });
        case 19:
                return proto_encode_wake(b, cap);
        case 20:
                return proto_encode_ack(b, cap, &(ProtoAck){ .entry_id = 1 });
        case 21:
                return proto_encode_slice_fds(b, cap, 0, 0, fds, 3);
        case 22:
                return proto_encode_slice_fds(b, cap, 0, 0, fds, 2);
        case 23:
                return proto_encode_resync(b, cap);
        case 24:
                return proto_encode_entry(b, cap, &(ProtoEntry){ .entry_id = 1,
                                                                 .msg = msg_sync });
        default:
                return -ENOENT;
        }
}

static void test_enobufs(void **state) {
        static const int sizes[] = { 32, 24, 24, 24, 48, 24, 40, 56, 24, 88, 32,
                                     24, 48, 56, 32, 56, 112, 104, 32, 16,
                                     24, 48, 40, 16, 104 };
        uint8_t *b = buf_new();
        size_t cap;
        int i, n;

        for (i = 0; encode_sample(i, b, 0) != -ENOENT; ++i) {
                assert_true(i < (int)ARRAY_SIZE(sizes));
                for (cap = 0; cap < (size_t)sizes[i]; ++cap) {
                        memset(b, FILL, PROTO_RECORD_MAX + 64);
                        assert_int_equal(encode_sample(i, b, cap), -ENOBUFS);
                        expect_fill(b, 0, PROTO_RECORD_MAX + 64);
                }
                memset(b, FILL, PROTO_RECORD_MAX + 64);
                n = encode_sample(i, b, sizes[i]);
                assert_int_equal(n, sizes[i]);
                expect_fill(b, (size_t)n, PROTO_RECORD_MAX + 64);
        }
        assert_int_equal(i, ARRAY_SIZE(sizes));
        free(b);
}

/* every flag bit an encoder does not know is refused, and nothing is written */
static void test_flag_bits(void **state) {
        uint8_t *b = buf_new();
        uint64_t flag;
        int bit;

        for (bit = 0; bit < 64; ++bit) {
                flag = (uint64_t)1 << bit;
                assert_int_equal(proto_encode_hello(b, PROTO_RECORD_MAX, &(ProtoHello){
                        .flags = flag, .version_min = 1, .version_max = 1 }), -EINVAL);
                assert_int_equal(proto_encode_peer_disconnect(b, PROTO_RECORD_MAX,
                        &(ProtoPeerDisconnect){ .flags = flag }), -EINVAL);
                assert_int_equal(proto_encode_peer_query(b, PROTO_RECORD_MAX,
                        &(ProtoPeerQuery){ .flags = flag }), -EINVAL);
                assert_int_equal(proto_encode_handle_transfer(b, PROTO_RECORD_MAX,
                        &(ProtoHandleTransfer){ .flags = flag }), -EINVAL);
                assert_int_equal(proto_encode_reply_peer_query(b, PROTO_RECORD_MAX,
                        &(ProtoReplyPeerQuery){ .flags = flag }), -EINVAL);
                assert_int_equal(proto_encode_peer_reset(b, PROTO_RECORD_MAX,
                        &(ProtoPeerReset){ .flags = flag }),
                        (flag & PROTO_PEER_RESET_FLAGS) ? 24 + 24 : -EINVAL);
                assert_int_equal(proto_encode_peer_reset(b, PROTO_RECORD_MAX,
                        &(ProtoPeerReset){ .peer_flags = flag }),
                        (flag & PROTO_PEER_FLAGS) ? 48 : -EINVAL);
                assert_int_equal(proto_encode_reply_peer_query(b, PROTO_RECORD_MAX,
                        &(ProtoReplyPeerQuery){ .peer_flags = flag }),
                        (flag & PROTO_PEER_FLAGS) ? 56 : -EINVAL);
                assert_int_equal(proto_encode_nodes_destroy(b, PROTO_RECORD_MAX, 0, flag,
                                                            NULL, 0),
                        (flag & PROTO_NODES_DESTROY_FLAGS) ? 32 : -EINVAL);
                assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX,
                        &(ProtoSendArgs){ .flags = flag }),
                        (flag & PROTO_SEND_FLAGS) ? 56 : -EINVAL);
                assert_int_equal(proto_encode_recv(b, PROTO_RECORD_MAX,
                        &(ProtoRecv){ .flags = flag }),
                        (flag & PROTO_RECV_FLAGS) ? 32 : -EINVAL);
                assert_int_equal(proto_encode_entry(b, PROTO_RECORD_MAX, &(ProtoEntry){
                        .entry_id = 1, .msg = { .type = BUS1_MSG_DATA, .flags = flag } }),
                        (flag & PROTO_ENTRY_MSG_FLAGS) ? 104 : -EINVAL);
                /* the RECV reply's entry is dequeued already: no SYNC there */
                assert_int_equal(proto_encode_reply_recv(b, PROTO_RECORD_MAX, &(ProtoReplyRecv){
                        .entry = { .msg = { .type = BUS1_MSG_DATA, .flags = flag } } }),
                        (flag & PROTO_MSG_FLAGS) ? 112 : -EINVAL);
                assert_int_equal(proto_encode_retract(b, PROTO_RECORD_MAX, &(ProtoRetract){
                        .entry_id = 1, .flags = flag }),
                        (flag & PROTO_RETRACT_FLAGS) ? 32 : -EINVAL);
        }
        assert_int_equal(PROTO_ENTRY_MSG_FLAGS, 3 | (1ULL << 63));
        assert_int_equal(PROTO_MSG_FLAGS, 3);
        assert_int_equal(PROTO_RETRACT_FLAGS, 1);
        memset(b, FILL, PROTO_RECORD_MAX + 64);
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .flags = 1ULL << 59 }), -EINVAL);
        expect_fill(b, 0, PROTO_RECORD_MAX + 64);
        free(b);
}

static void test_send_refused(void **state) {
        static const uint64_t ids[] = { 1 };
        struct iovec huge[] = {
                { .iov_base = (void *)"a", .iov_len = SIZE_MAX },
                { .iov_base = (void *)"b", .iov_len = SIZE_MAX },
        };
        struct iovec null_base = { .iov_base = NULL, .iov_len = 1 };
        struct iovec big = { .iov_base = (void *)"c", .iov_len = PROTO_RECORD_MAX - 55 };
        uint8_t *b = buf_new();

        /* limits, counts beyond the le32 fields included */
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .destinations = ids, .n_destinations = PROTO_DESTINATIONS_MAX + 1 }), -EINVAL);
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .destinations = ids, .n_destinations = SIZE_MAX }), -EINVAL);
#if SIZE_MAX > UINT32_MAX
        /* counts that a le32 field would wrap to something small */
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .destinations = ids, .n_destinations = (size_t)UINT32_MAX + 2 }), -EINVAL);
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .handles = ids, .n_handles = (size_t)UINT32_MAX + 2 }), -EMSGSIZE);
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .n_fds = (size_t)UINT32_MAX + 1 }), -EMSGSIZE);
#endif
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .handles = ids, .n_handles = PROTO_HANDLES_MAX + 1 }), -EMSGSIZE);
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .handles = ids, .n_handles = SIZE_MAX }), -EMSGSIZE);
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .n_fds = BUS1_FD_MAX + 1 }), -EMSGSIZE);
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .n_fds = SIZE_MAX }), -EMSGSIZE);
        /* payload sizes: iovec totals that overflow, over 2 GiB, over a record */
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .vecs = huge, .n_vecs = 2 }), -EMSGSIZE);
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .vecs = huge, .n_vecs = 1 }), -EMSGSIZE);
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .vecs = &big, .n_vecs = 1 }), -EMSGSIZE);
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .payload_mode = PROTO_PAYLOAD_MEMFD, .n_bytes = PROTO_BYTES_MAX + 1 }),
                -EMSGSIZE);
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .payload_mode = PROTO_PAYLOAD_MEMFD, .n_bytes = 1,
                .memfd_offset = (uint64_t)INT64_MAX }), -EMSGSIZE);
        /* both arrays at their limit exceed a record */
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .destinations = ids, .n_destinations = PROTO_DESTINATIONS_MAX,
                .handles = ids, .n_handles = PROTO_HANDLES_MAX }), -EMSGSIZE);
        /* arguments */
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .payload_mode = 2 }), -EINVAL);
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .memfd_offset = 8 }), -EINVAL);
        /* pointers */
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .n_destinations = 1 }), -EFAULT);
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .n_handles = 1 }), -EFAULT);
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .n_vecs = 1 }), -EFAULT);
        assert_int_equal(proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){
                .vecs = &null_base, .n_vecs = 1 }), -EFAULT);
        expect_fill(b, 0, PROTO_RECORD_MAX + 64);
        free(b);
}

static void test_arguments_refused(void **state) {
        uint8_t *b = buf_new();
        uint64_t id = 1;

        /* HELLO version ranges */
        assert_int_equal(proto_encode_hello(b, PROTO_RECORD_MAX, &(ProtoHello){}), -EINVAL);
        assert_int_equal(proto_encode_hello(b, PROTO_RECORD_MAX, &(ProtoHello){
                .version_min = 2, .version_max = 1 }), -EINVAL);
        assert_int_equal(proto_encode_hello(b, PROTO_RECORD_MAX, &(ProtoHello){
                .version_min = 2, .version_max = 2 }), -EPROTONOSUPPORT);
        /* carriers */
        assert_int_equal(proto_encode_fds(b, PROTO_RECORD_MAX, &(ProtoFds){
                .type = PROTO_TYPE_FDS, .n_fds = 0 }), -EINVAL);
        assert_int_equal(proto_encode_fds(b, PROTO_RECORD_MAX, &(ProtoFds){
                .type = PROTO_TYPE_FDS, .n_fds = PROTO_PACKET_FDS_MAX + 1 }), -EINVAL);
        assert_int_equal(proto_encode_fds(b, PROTO_RECORD_MAX, &(ProtoFds){
                .type = PROTO_TYPE_SEND, .n_fds = 1 }), -EINVAL);
        /* PEER_RESET limits */
        assert_int_equal(proto_encode_peer_reset(b, PROTO_RECORD_MAX, &(ProtoPeerReset){
                .max_slices = (uint32_t)INT32_MAX + 1 }), -EINVAL);
        assert_int_equal(proto_encode_peer_reset(b, PROTO_RECORD_MAX, &(ProtoPeerReset){
                .max_inflight_fds = UINT32_MAX - 1 }), -EINVAL);
        assert_int_equal(proto_encode_reply_peer_query(b, PROTO_RECORD_MAX,
                &(ProtoReplyPeerQuery){ .max_handles = UINT32_MAX }), -EINVAL);
        /* HANDLE_TRANSFER mode */
        assert_int_equal(proto_encode_handle_transfer(b, PROTO_RECORD_MAX,
                &(ProtoHandleTransfer){ .dst_mode = 2 }), -EINVAL);
        /* NODES_DESTROY */
        assert_int_equal(proto_encode_nodes_destroy(b, PROTO_RECORD_MAX, 0, 0, &id,
                                                    PROTO_NODES_MAX + 1), -EINVAL);
        assert_int_equal(proto_encode_nodes_destroy(b, PROTO_RECORD_MAX, 0, 0, NULL, 1),
                         -EFAULT);
        /* replies */
        assert_int_equal(proto_encode_reply_hello(b, PROTO_RECORD_MAX, &(ProtoReplyHello){
                .version = 2, .pool_size = 8 }), -EPROTONOSUPPORT);
        assert_int_equal(proto_encode_reply_hello(b, PROTO_RECORD_MAX, &(ProtoReplyHello){
                .version = 1, .pool_size = 0 }), -EINVAL);
        assert_int_equal(proto_encode_reply_send(b, PROTO_RECORD_MAX, 0, &id,
                                                 PROTO_DESTINATIONS_MAX + 1), -EMSGSIZE);
        assert_int_equal(proto_encode_reply_send(b, PROTO_RECORD_MAX, 0, NULL, 1), -EFAULT);
        id = PROTO_ERRNO_MAX + 1;
        assert_int_equal(proto_encode_reply_send(b, PROTO_RECORD_MAX, 0, &id, 1), -EINVAL);
        /* entries */
        assert_int_equal(proto_encode_entry(b, PROTO_RECORD_MAX, &(ProtoEntry){
                .entry_id = 0, .msg = msg_data }), -EINVAL);
        assert_int_equal(proto_encode_entry(b, PROTO_RECORD_MAX, &(ProtoEntry){
                .entry_id = 1, .msg = { .type = BUS1_MSG_NONE } }), -EINVAL);
        assert_int_equal(proto_encode_entry(b, PROTO_RECORD_MAX, &(ProtoEntry){
                .entry_id = 1, .msg = { .type = BUS1_MSG_DATA, .offset = 4 } }), -EINVAL);
        assert_int_equal(proto_encode_entry(b, PROTO_RECORD_MAX, &(ProtoEntry){
                .entry_id = 1, .msg = { .type = BUS1_MSG_DATA, .n_fds = 257 } }), -EMSGSIZE);
        assert_int_equal(proto_encode_entry(b, PROTO_RECORD_MAX, &(ProtoEntry){
                .entry_id = 1, .msg = { .type = BUS1_MSG_NODE_DESTROY } }), -EINVAL);
        assert_int_equal(proto_encode_reply_recv(b, PROTO_RECORD_MAX, &(ProtoReplyRecv){
                .entry = { .msg = { .type = 4 } } }), -EINVAL);
        assert_int_equal(proto_encode_retract(b, PROTO_RECORD_MAX, &(ProtoRetract){}), -EINVAL);
        assert_int_equal(proto_encode_retract(b, PROTO_RECORD_MAX, &(ProtoRetract){
                .flags = PROTO_RETRACT_FLAG_PREV_CONTINUES }), -EINVAL);
        assert_int_equal(proto_encode_retract(b, PROTO_RECORD_MAX, &(ProtoRetract){
                .entry_id = 1, .flags = 2 }), -EINVAL);
        assert_int_equal(proto_encode_reply_recv(b, PROTO_RECORD_MAX, &(ProtoReplyRecv){
                .entry = { .entry_id = 1, .msg = msg_sync } }), -EINVAL);
        /* ACK: the decoder calls entry_id 0 a violation, the encoder refuses it */
        assert_int_equal(proto_encode_ack(b, PROTO_RECORD_MAX, &(ProtoAck){}), -EINVAL);
        expect_fill(b, 0, PROTO_RECORD_MAX + 64);
        free(b);
}

static void test_slice_fds_refused(void **state) {
        int fds[BUS1_FD_MAX + 1];
        uint8_t *b = buf_new();
        size_t i;

        for (i = 0; i < ARRAY_SIZE(fds); ++i)
                fds[i] = (int)i;
        /* counts: 0..BUS1_FD_MAX (0: the fds could not be installed), not beyond */
        assert_int_equal(proto_encode_slice_fds(b, PROTO_RECORD_MAX, 0, 0, fds,
                                                BUS1_FD_MAX + 1), -EINVAL);
        assert_int_equal(proto_encode_slice_fds(b, PROTO_RECORD_MAX, 0, 0, fds, SIZE_MAX),
                         -EINVAL);
#if SIZE_MAX > UINT32_MAX
        assert_int_equal(proto_encode_slice_fds(b, PROTO_RECORD_MAX, 0, 0, fds,
                                                (size_t)UINT32_MAX + 2), -EINVAL);
#endif
        /* pointer */
        assert_int_equal(proto_encode_slice_fds(b, PROTO_RECORD_MAX, 0, 0, NULL, 1), -EFAULT);
        /* negative numbers, first or last */
        fds[0] = -1;
        assert_int_equal(proto_encode_slice_fds(b, PROTO_RECORD_MAX, 0, 0, fds, 3), -EINVAL);
        fds[0] = 0;
        fds[BUS1_FD_MAX - 1] = INT32_MIN;
        assert_int_equal(proto_encode_slice_fds(b, PROTO_RECORD_MAX, 0, 0, fds, BUS1_FD_MAX),
                         -EINVAL);
        /* ... but a bad number past the count is not looked at: 255 numbers pad to 256 */
        assert_int_equal(proto_encode_slice_fds(b, PROTO_RECORD_MAX, 0, 0, fds,
                                                BUS1_FD_MAX - 1), 32 + 4 * 256);
        memset(b, FILL, PROTO_RECORD_MAX + 64);
        fds[1] = -1;
        assert_int_equal(proto_encode_slice_fds(b, 0, 0, 0, fds, 2), -EINVAL);
        expect_fill(b, 0, PROTO_RECORD_MAX + 64);
        free(b);
}

static void test_size_helpers(void **state) {
        size_t size = 12345;

        /* SEND */
        assert_int_equal(proto_size_send(&size, 0, 0, PROTO_PAYLOAD_INLINE, 0), 0);
        assert_int_equal(size, 56);
        assert_int_equal(proto_size_send(&size, 2, 1, PROTO_PAYLOAD_INLINE, 5), 0);
        assert_int_equal(size, 88);
        assert_int_equal(proto_size_send(&size, 2, 1, PROTO_PAYLOAD_INLINE, 8), 0);
        assert_int_equal(size, 88);
        assert_int_equal(proto_size_send(&size, 2, 1, PROTO_PAYLOAD_INLINE, 9), 0);
        assert_int_equal(size, 96);
        assert_int_equal(proto_size_send(&size, 1, 0, PROTO_PAYLOAD_MEMFD, UINT64_MAX), 0);
        assert_int_equal(size, 64);
        assert_int_equal(proto_size_send(&size, 0, 0, PROTO_PAYLOAD_INLINE,
                                         PROTO_RECORD_MAX - 56), 0);
        assert_int_equal(size, PROTO_RECORD_MAX);

        size = 12345;
        assert_int_equal(proto_size_send(&size, 0, 0, PROTO_PAYLOAD_INLINE,
                                         PROTO_RECORD_MAX - 55), -EMSGSIZE);
        assert_int_equal(proto_size_send(&size, 0, 0, 2, 0), -EINVAL);
        assert_int_equal(proto_size_send(&size, 0, 0, PROTO_PAYLOAD_INLINE, UINT64_MAX),
                         -EMSGSIZE);
        assert_int_equal(proto_size_send(&size, 0, 0, PROTO_PAYLOAD_INLINE, UINT64_MAX - 7),
                         -EMSGSIZE);
        assert_int_equal(proto_size_send(&size, UINT64_MAX, 1, PROTO_PAYLOAD_MEMFD, 0),
                         -EMSGSIZE);
        assert_int_equal(proto_size_send(&size, (uint64_t)1 << 61, (uint64_t)1 << 61,
                                         PROTO_PAYLOAD_MEMFD, 0), -EMSGSIZE);
        assert_int_equal(proto_size_send(&size, (uint64_t)1 << 29, 0, PROTO_PAYLOAD_MEMFD, 0),
                         -EMSGSIZE);
        assert_int_equal(proto_size_send(&size, (uint64_t)1 << 60, 0, PROTO_PAYLOAD_MEMFD, 0),
                         -EMSGSIZE);
        assert_int_equal(proto_size_send(&size, 8192, 8192, PROTO_PAYLOAD_MEMFD, 0),
                         -EMSGSIZE);
        assert_int_equal(size, 12345);

        /* NODES_DESTROY and SEND reply */
        assert_int_equal(proto_size_nodes_destroy(&size, 0), 0);
        assert_int_equal(size, 32);
        assert_int_equal(proto_size_nodes_destroy(&size, PROTO_NODES_MAX), 0);
        assert_int_equal(size, 32 + 8 * PROTO_NODES_MAX);
        assert_int_equal(proto_size_nodes_destroy(&size, (PROTO_RECORD_MAX - 32) / 8), 0);
        assert_int_equal(size, PROTO_RECORD_MAX);
        assert_int_equal(proto_size_reply_send(&size, 3), 0);
        assert_int_equal(size, 56);
        assert_int_equal(proto_size_reply_send(&size, (PROTO_RECORD_MAX - 32) / 8), 0);
        assert_int_equal(size, PROTO_RECORD_MAX);

        size = 12345;
        assert_int_equal(proto_size_nodes_destroy(&size, (PROTO_RECORD_MAX - 32) / 8 + 1),
                         -EMSGSIZE);
        assert_int_equal(proto_size_nodes_destroy(&size, UINT64_MAX), -EMSGSIZE);
        assert_int_equal(proto_size_nodes_destroy(&size, (uint64_t)1 << 61), -EMSGSIZE);
        assert_int_equal(proto_size_nodes_destroy(&size, (uint64_t)1 << 29), -EMSGSIZE);
        assert_int_equal(proto_size_reply_send(&size, UINT64_MAX / 8 + 1), -EMSGSIZE);
        assert_int_equal(proto_size_reply_send(&size, (PROTO_RECORD_MAX - 32) / 8 + 1),
                         -EMSGSIZE);
        assert_int_equal(size, 12345);

        /* SLICE_FDS: le32 numbers padded to 8 */
        assert_int_equal(proto_size_slice_fds(&size, 0), 0);
        assert_int_equal(size, 32);
        assert_int_equal(proto_size_slice_fds(&size, 1), 0);
        assert_int_equal(size, 40);
        assert_int_equal(proto_size_slice_fds(&size, 2), 0);
        assert_int_equal(size, 40);
        assert_int_equal(proto_size_slice_fds(&size, 3), 0);
        assert_int_equal(size, 48);
        assert_int_equal(proto_size_slice_fds(&size, BUS1_FD_MAX), 0);
        assert_int_equal(size, 32 + 4 * BUS1_FD_MAX);
        assert_int_equal(proto_size_slice_fds(&size, (PROTO_RECORD_MAX - 32) / 4), 0);
        assert_int_equal(size, PROTO_RECORD_MAX);

        size = 12345;
        assert_int_equal(proto_size_slice_fds(&size, (PROTO_RECORD_MAX - 32) / 4 + 1),
                         -EMSGSIZE);
        assert_int_equal(proto_size_slice_fds(&size, UINT64_MAX), -EMSGSIZE);
        assert_int_equal(proto_size_slice_fds(&size, UINT64_MAX / 4), -EMSGSIZE);
        assert_int_equal(proto_size_slice_fds(&size, UINT64_MAX / 4 + 1), -EMSGSIZE);
        assert_int_equal(proto_size_slice_fds(&size, (uint64_t)1 << 62), -EMSGSIZE);
        assert_int_equal(proto_size_slice_fds(&size, (uint64_t)1 << 30), -EMSGSIZE);
        assert_int_equal(size, 12345);
}

/* reserved fields and padding come out zero whatever the buffer held */
static void test_zeroed(void **state) {
        struct iovec vec = { .iov_base = (void *)"x", .iov_len = 1 };
        const int fd = 9;
        uint8_t *b = malloc(PROTO_RECORD_MAX);
        size_t i;
        int n;

        assert_non_null(b);
        memset(b, 0xff, PROTO_RECORD_MAX);
        n = proto_encode_send(b, PROTO_RECORD_MAX, &(ProtoSendArgs){ .vecs = &vec,
                                                                      .n_vecs = 1 });
        assert_int_equal(n, 64);
        assert_int_equal(b[56], 'x');
        for (i = 57; i < 64; ++i)
                assert_int_equal(b[i], 0);

        memset(b, 0xff, PROTO_RECORD_MAX);
        n = proto_encode_handle_transfer(b, PROTO_RECORD_MAX, &(ProtoHandleTransfer){});
        assert_int_equal(n, 40);
        for (i = 8; i < 40; ++i)
                assert_int_equal(b[i], 0);

        memset(b, 0xff, PROTO_RECORD_MAX);
        n = proto_encode_reply_hello(b, PROTO_RECORD_MAX, &(ProtoReplyHello){
                .version = 1, .pool_size = UINT32_MAX });
        assert_int_equal(n, 48);
        for (i = 16; i < 24; ++i)
                assert_int_equal(b[i], 0);
        for (i = 44; i < 48; ++i)
                assert_int_equal(b[i], 0);

        memset(b, 0xff, PROTO_RECORD_MAX);
        n = proto_encode_slice_fds(b, PROTO_RECORD_MAX, 0, 0, &fd, 1);
        assert_int_equal(n, 40);
        for (i = 8; i < 24; ++i)
                assert_int_equal(b[i], 0);
        for (i = 28; i < 32; ++i)
                assert_int_equal(b[i], 0);
        assert_int_equal(b[32], 9);
        for (i = 33; i < 40; ++i)
                assert_int_equal(b[i], 0);

        memset(b, 0xff, PROTO_RECORD_MAX);
        n = proto_encode_retract(b, PROTO_RECORD_MAX, &(ProtoRetract){ .entry_id = 1 });
        assert_int_equal(n, 32);
        for (i = 8; i < 32; ++i)
                assert_int_equal(b[i], i == 16);

        memset(b, 0xff, PROTO_RECORD_MAX);
        n = proto_encode_fds(b, PROTO_RECORD_MAX, &(ProtoFds){ .type = PROTO_TYPE_PUSH_FDS,
                                                               .n_fds = 2 });
        assert_int_equal(n, 24);
        for (i = 8; i < 16; ++i)
                assert_int_equal(b[i], 0);
        for (i = 20; i < 24; ++i)
                assert_int_equal(b[i], 0);
        free(b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_golden_hex),
                cmocka_unit_test(test_golden_requests),
                cmocka_unit_test(test_golden_send),
                cmocka_unit_test(test_golden_replies),
                cmocka_unit_test(test_round_trip_requests),
                cmocka_unit_test(test_round_trip_slice_fds),
                cmocka_unit_test(test_round_trip_nodes_destroy),
                cmocka_unit_test(test_round_trip_send),
                cmocka_unit_test(test_round_trip_replies),
                cmocka_unit_test(test_round_trip_reply_send),
                cmocka_unit_test(test_round_trip_pushed),
                cmocka_unit_test(test_error_replies),
                cmocka_unit_test(test_enobufs),
                cmocka_unit_test(test_flag_bits),
                cmocka_unit_test(test_send_refused),
                cmocka_unit_test(test_arguments_refused),
                cmocka_unit_test(test_slice_fds_refused),
                cmocka_unit_test(test_size_helpers),
                cmocka_unit_test(test_zeroed),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
