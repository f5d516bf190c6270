/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for the protocol decoder
 *
 * Each test builds its own table of valid sample records, one or more per
 * record kind, and mutates them: sizes, header fields, every flag bit, every
 * reserved byte, every count against its limit and against the size, fd
 * counts, and finally every byte of every record. Offsets are written as
 * numbers, the ones docs/protocol.md gives, not taken from proto.h, so a
 * layout change that the document does not follow makes these tests fail.
 *
 * decode_kind() is the consistency checker run on every decode: it decodes
 * from an exactly sized heap copy (so ASan sees any read past the record),
 * checks that a failing decoder left its output untouched, and re-encodes
 * every record that decoded, requiring the very same bytes back. So whatever
 * a decoder accepts is exactly what the encoder would have written for the
 * decoded values: no byte of an accepted record goes unchecked.
 */

#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <cmocka.h>
#include "proto/proto.h"
#include "util/macro.h"

typedef enum Kind {
        KIND_HELLO,
        KIND_FDS,
        KIND_ACK,
        KIND_PEER_DISCONNECT,
        KIND_PEER_QUERY,
        KIND_PEER_RESET,
        KIND_HANDLE_RELEASE,
        KIND_HANDLE_TRANSFER,
        KIND_NODES_DESTROY,
        KIND_SLICE_RELEASE,
        KIND_SLICE_FDS,
        KIND_SEND,
        KIND_RECV,
        KIND_REPLY,
        KIND_REPLY_HELLO,
        KIND_REPLY_PEER_QUERY,
        KIND_REPLY_HANDLE_TRANSFER,
        KIND_REPLY_SEND,
        KIND_REPLY_RECV,
        KIND_ENTRY,
        KIND_RETRACT,
        KIND_WAKE,
        KIND_RESYNC,
        _KIND_N,
} Kind;

/* the samples every test starts from */
enum {
        S_HELLO,
        S_FDS,
        S_PUSH_FDS,
        S_ACK,
        S_PEER_DISCONNECT,
        S_PEER_QUERY,
        S_PEER_RESET,
        S_HANDLE_RELEASE,
        S_HANDLE_TRANSFER_SELF,
        S_HANDLE_TRANSFER_FD,
        S_NODES_DESTROY,
        S_NODES_DESTROY_EMPTY,
        S_SLICE_RELEASE,
        S_SLICE_FDS_ONE,
        S_SLICE_FDS_TWO,
        S_SLICE_FDS,
        S_SEND_INLINE,
        S_SEND_MEMFD,
        S_SEND_EMPTY,
        S_RECV,
        S_REPLY,
        S_REPLY_ERROR,
        S_REPLY_HELLO,
        S_REPLY_HELLO_ERROR,
        S_REPLY_PEER_QUERY,
        S_REPLY_HANDLE_TRANSFER,
        S_REPLY_SEND,
        S_REPLY_SEND_EMPTY,
        S_REPLY_SEND_ERROR,
        S_REPLY_RECV,
        S_REPLY_RECV_ERROR,
        S_ENTRY_DATA,
        S_ENTRY_DESTROY,
        S_ENTRY_RELEASE,
        S_ENTRY_SYNC,
        S_RETRACT,
        S_RETRACT_CONTINUES,
        S_WAKE,
        S_RESYNC,
        _S_N,
};

typedef struct Sample {
        Kind kind;
        size_t n_fds;
        size_t len;
        uint8_t *buf;
} Sample;

typedef struct Samples {
        Sample s[_S_N];
} Samples;

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

static uint64_t get64(const uint8_t *buf, size_t off) {
        uint64_t v;

        memcpy(&v, buf + off, sizeof(v));
        return le64toh(v);
}

/* the header type a kind is decoded from */
static uint16_t kind_type(Kind kind) {
        static const uint16_t types[_KIND_N] = {
                [KIND_HELLO] = PROTO_TYPE_HELLO,
                [KIND_FDS] = PROTO_TYPE_FDS,
                [KIND_ACK] = PROTO_TYPE_ACK,
                [KIND_PEER_DISCONNECT] = PROTO_TYPE_PEER_DISCONNECT,
                [KIND_PEER_QUERY] = PROTO_TYPE_PEER_QUERY,
                [KIND_PEER_RESET] = PROTO_TYPE_PEER_RESET,
                [KIND_HANDLE_RELEASE] = PROTO_TYPE_HANDLE_RELEASE,
                [KIND_HANDLE_TRANSFER] = PROTO_TYPE_HANDLE_TRANSFER,
                [KIND_NODES_DESTROY] = PROTO_TYPE_NODES_DESTROY,
                [KIND_SLICE_RELEASE] = PROTO_TYPE_SLICE_RELEASE,
                [KIND_SLICE_FDS] = PROTO_TYPE_SLICE_FDS,
                [KIND_SEND] = PROTO_TYPE_SEND,
                [KIND_RECV] = PROTO_TYPE_RECV,
                [KIND_REPLY] = PROTO_TYPE_REPLY,
                [KIND_REPLY_HELLO] = PROTO_TYPE_REPLY,
                [KIND_REPLY_PEER_QUERY] = PROTO_TYPE_REPLY,
                [KIND_REPLY_HANDLE_TRANSFER] = PROTO_TYPE_REPLY,
                [KIND_REPLY_SEND] = PROTO_TYPE_REPLY,
                [KIND_REPLY_RECV] = PROTO_TYPE_REPLY,
                [KIND_ENTRY] = PROTO_TYPE_ENTRY,
                [KIND_RETRACT] = PROTO_TYPE_RETRACT,
                [KIND_WAKE] = PROTO_TYPE_WAKE,
                [KIND_RESYNC] = PROTO_TYPE_RESYNC,
        };

        return types[kind];
}

/* a re-encoded record must be byte for byte the decoded one */
static void expect_same_record(const uint8_t *buf, size_t len, const uint8_t *out, int n) {
        assert_int_equal(n, (int)len);
        assert_memory_equal(out, buf, len);
}

static void expect_untouched(const void *p, size_t n) {
        const uint8_t *b = p;
        size_t i;

        for (i = 0; i < n; ++i)
                assert_int_equal(b[i], 0xa5);
}

static uint64_t *u64_array_dup(const void *array, size_t n) {
        uint64_t *v = calloc(n ? n : 1, sizeof(*v));
        size_t i;

        assert_non_null(v);
        for (i = 0; i < n; ++i)
                v[i] = proto_u64_at(array, i);
        return v;
}

/* the decoded form of any kind */
typedef union Decoded {
        ProtoHello hello;
        ProtoFds fds;
        ProtoAck ack;
        ProtoPeerDisconnect peer_disconnect;
        ProtoPeerQuery peer_query;
        ProtoPeerReset peer_reset;
        ProtoHandleRelease handle_release;
        ProtoHandleTransfer handle_transfer;
        ProtoNodesDestroy nodes_destroy;
        ProtoSliceRelease slice_release;
        ProtoSliceFds slice_fds;
        ProtoSend send;
        ProtoRecv recv;
        ProtoReply reply;
        ProtoReplyHello reply_hello;
        ProtoReplyPeerQuery reply_peer_query;
        ProtoReplyHandleTransfer reply_handle_transfer;
        ProtoReplySend reply_send;
        ProtoReplyRecv reply_recv;
        ProtoEntry entry;
        ProtoRetract retract;
} Decoded;

static int decode_into(Kind kind, Decoded *v, const uint8_t *buf, size_t len, size_t n_fds) {
        switch (kind) {
        case KIND_HELLO:
                return proto_decode_hello(&v->hello, buf, len, n_fds);
        case KIND_FDS:
                return proto_decode_fds(&v->fds, buf, len, n_fds);
        case KIND_ACK:
                return proto_decode_ack(&v->ack, buf, len, n_fds);
        case KIND_PEER_DISCONNECT:
                return proto_decode_peer_disconnect(&v->peer_disconnect, buf, len, n_fds);
        case KIND_PEER_QUERY:
                return proto_decode_peer_query(&v->peer_query, buf, len, n_fds);
        case KIND_PEER_RESET:
                return proto_decode_peer_reset(&v->peer_reset, buf, len, n_fds);
        case KIND_HANDLE_RELEASE:
                return proto_decode_handle_release(&v->handle_release, buf, len, n_fds);
        case KIND_HANDLE_TRANSFER:
                return proto_decode_handle_transfer(&v->handle_transfer, buf, len, n_fds);
        case KIND_NODES_DESTROY:
                return proto_decode_nodes_destroy(&v->nodes_destroy, buf, len, n_fds);
        case KIND_SLICE_RELEASE:
                return proto_decode_slice_release(&v->slice_release, buf, len, n_fds);
        case KIND_SLICE_FDS:
                return proto_decode_slice_fds(&v->slice_fds, buf, len, n_fds);
        case KIND_SEND:
                return proto_decode_send(&v->send, buf, len, n_fds);
        case KIND_RECV:
                return proto_decode_recv(&v->recv, buf, len, n_fds);
        case KIND_REPLY:
                return proto_decode_reply(&v->reply, buf, len, n_fds);
        case KIND_REPLY_HELLO:
                return proto_decode_reply_hello(&v->reply_hello, buf, len, n_fds);
        case KIND_REPLY_PEER_QUERY:
                return proto_decode_reply_peer_query(&v->reply_peer_query, buf, len, n_fds);
        case KIND_REPLY_HANDLE_TRANSFER:
                return proto_decode_reply_handle_transfer(&v->reply_handle_transfer, buf, len,
                                                          n_fds);
        case KIND_REPLY_SEND:
                return proto_decode_reply_send(&v->reply_send, buf, len, n_fds);
        case KIND_REPLY_RECV:
                return proto_decode_reply_recv(&v->reply_recv, buf, len, n_fds);
        case KIND_ENTRY:
                return proto_decode_entry(&v->entry, buf, len, n_fds);
        case KIND_RETRACT:
                return proto_decode_retract(&v->retract, buf, len, n_fds);
        case KIND_WAKE:
                return proto_decode_wake(buf, len, n_fds);
        case KIND_RESYNC:
                return proto_decode_resync(buf, len, n_fds);
        default:
                fail();
                return 0;
        }
}

static int encode_send_from(uint8_t *out, const ProtoSend *v) {
        ProtoSendArgs args = {
                .cookie = v->cookie,
                .flags = v->flags,
                .n_destinations = v->n_destinations,
                .n_handles = v->n_handles,
                .n_fds = v->n_fds,
                .payload_mode = v->payload_mode,
                .n_bytes = v->n_bytes,
                .memfd_offset = v->memfd_offset,
        };
        struct iovec vec;
        uint64_t *dests, *handles;
        int n;

        dests = u64_array_dup(v->destinations, v->n_destinations);
        handles = u64_array_dup(v->handles, v->n_handles);
        args.destinations = dests;
        args.handles = handles;
        if (v->payload_mode == PROTO_PAYLOAD_INLINE) {
                assert_non_null(v->payload);
                vec = (struct iovec){ .iov_base = (void *)v->payload, .iov_len = v->n_bytes };
                args.vecs = &vec;
                args.n_vecs = 1;
        } else {
                assert_null(v->payload);
        }
        n = proto_encode_send(out, PROTO_RECORD_MAX, &args);
        free(dests);
        free(handles);
        return n;
}

static int encode_nodes_destroy_from(uint8_t *out, const ProtoNodesDestroy *v) {
        uint64_t *ids = u64_array_dup(v->ids, v->n_nodes);
        int n;

        n = proto_encode_nodes_destroy(out, PROTO_RECORD_MAX, v->cookie, v->flags, ids,
                                       v->n_nodes);
        free(ids);
        return n;
}

static int encode_slice_fds_from(uint8_t *out, const ProtoSliceFds *v) {
        int *fds = calloc(v->n_fds ? v->n_fds : 1, sizeof(*fds));
        size_t i;
        int n;

        assert_non_null(fds);
        for (i = 0; i < v->n_fds; ++i)
                fds[i] = proto_s32_at(v->fds, i);
        n = proto_encode_slice_fds(out, PROTO_RECORD_MAX, v->cookie, v->offset, fds, v->n_fds);
        free(fds);
        return n;
}

static int encode_reply_send_from(uint8_t *out, const ProtoReplySend *v) {
        ProtoReply reply = { .cookie = v->cookie, .error = v->error };
        uint64_t *errors;
        int n;

        if (v->error != 0) {
                assert_int_equal(v->n_errors, 0);
                return proto_encode_reply(out, PROTO_RECORD_MAX, &reply);
        }
        errors = u64_array_dup(v->errors, v->n_errors);
        n = proto_encode_reply_send(out, PROTO_RECORD_MAX, v->cookie, errors, v->n_errors);
        free(errors);
        return n;
}

/* encode a decoded record again */
static int encode_from(Kind kind, const Decoded *v, uint8_t *out) {
        const size_t cap = PROTO_RECORD_MAX;

        switch (kind) {
        case KIND_HELLO:
                return proto_encode_hello(out, cap, &v->hello);
        case KIND_FDS:
                return proto_encode_fds(out, cap, &v->fds);
        case KIND_ACK:
                return proto_encode_ack(out, cap, &v->ack);
        case KIND_PEER_DISCONNECT:
                return proto_encode_peer_disconnect(out, cap, &v->peer_disconnect);
        case KIND_PEER_QUERY:
                return proto_encode_peer_query(out, cap, &v->peer_query);
        case KIND_PEER_RESET:
                return proto_encode_peer_reset(out, cap, &v->peer_reset);
        case KIND_HANDLE_RELEASE:
                return proto_encode_handle_release(out, cap, &v->handle_release);
        case KIND_HANDLE_TRANSFER:
                return proto_encode_handle_transfer(out, cap, &v->handle_transfer);
        case KIND_NODES_DESTROY:
                return encode_nodes_destroy_from(out, &v->nodes_destroy);
        case KIND_SLICE_RELEASE:
                return proto_encode_slice_release(out, cap, &v->slice_release);
        case KIND_SLICE_FDS:
                return encode_slice_fds_from(out, &v->slice_fds);
        case KIND_SEND:
                return encode_send_from(out, &v->send);
        case KIND_RECV:
                return proto_encode_recv(out, cap, &v->recv);
        case KIND_REPLY:
                return proto_encode_reply(out, cap, &v->reply);
        case KIND_REPLY_HELLO:
                return proto_encode_reply_hello(out, cap, &v->reply_hello);
        case KIND_REPLY_PEER_QUERY:
                return proto_encode_reply_peer_query(out, cap, &v->reply_peer_query);
        case KIND_REPLY_HANDLE_TRANSFER:
                return proto_encode_reply_handle_transfer(out, cap, &v->reply_handle_transfer);
        case KIND_REPLY_SEND:
                return encode_reply_send_from(out, &v->reply_send);
        case KIND_REPLY_RECV:
                return proto_encode_reply_recv(out, cap, &v->reply_recv);
        case KIND_ENTRY:
                return proto_encode_entry(out, cap, &v->entry);
        case KIND_RETRACT:
                return proto_encode_retract(out, cap, &v->retract);
        case KIND_WAKE:
                return proto_encode_wake(out, cap);
        case KIND_RESYNC:
                return proto_encode_resync(out, cap);
        default:
                fail();
                return 0;
        }
}

/*
 * Decode @buf as @kind; a failing decoder must leave its output untouched, a
 * succeeding one must give values the encoder turns into the same bytes.
 */
static int check_kind(Kind kind, const uint8_t *buf, size_t len, size_t n_fds) {
        Decoded v;
        uint8_t *out;
        int r;

        memset(&v, 0xa5, sizeof(v));
        r = decode_into(kind, &v, buf, len, n_fds);
        if (r < 0) {
                expect_untouched(&v, sizeof(v));
                return r;
        }
        assert_int_equal(r, 0);
        if (kind == KIND_SEND)
                assert_int_equal(n_fds, proto_send_n_fds(&v.send));
        out = malloc(PROTO_RECORD_MAX);
        assert_non_null(out);
        expect_same_record(buf, len, out, encode_from(kind, &v, out));
        free(out);
        return 0;
}

/*
 * The consistency checker: decode @len bytes of @buf as @kind from an exactly
 * sized heap copy at an odd address (so neither a read past the end nor an
 * aligned load goes unnoticed under ASan and UBSan), and on success require
 * the re-encoded record to be identical.
 */
static int decode_kind(Kind kind, const uint8_t *buf, size_t len, size_t n_fds) {
        uint8_t *copy;
        int r;

        copy = malloc(len + 1);
        assert_non_null(copy);
        memcpy(copy + 1, buf, len);
        r = check_kind(kind, copy + 1, len, n_fds);
        free(copy);
        return r;
}

static int decode_sample(const Sample *s) {
        return decode_kind(s->kind, s->buf, s->len, s->n_fds);
}

/* a modifiable copy of a sample, @extra zero bytes longer */
static uint8_t *sample_dup(const Sample *s, size_t extra) {
        uint8_t *b = calloc(1, s->len + extra + 1);

        assert_non_null(b);
        memcpy(b, s->buf, s->len);
        return b;
}

static void sample_set(Sample *s, Kind kind, size_t n_fds, const uint8_t *buf, int len) {
        assert_true(len > 0);
        s->kind = kind;
        s->n_fds = n_fds;
        s->len = (size_t)len;
        s->buf = malloc((size_t)len);
        assert_non_null(s->buf);
        memcpy(s->buf, buf, (size_t)len);
}

static const ProtoMessage msg_data = {
        .type = BUS1_MSG_DATA,
        .flags = BUS1_MSG_FLAG_HAS_SECCTX,
        .destination = 0x100,
        .uid = 1000,
        .gid = 1001,
        .pid = 4242,
        .tid = 4243,
        .offset = 4096,
        .n_bytes = 13,
        .n_handles = 2,
        .n_fds = 1,
        .n_secctx = 17,
};

static const ProtoMessage msg_destroy = {
        .type = BUS1_MSG_NODE_DESTROY,
        .destination = 0x100,
        .uid = UINT32_MAX,
        .gid = UINT32_MAX,
        .offset = BUS1_OFFSET_INVALID,
};

/* a DATA entry the client must dequeue with a RECV */
static const ProtoMessage msg_sync = {
        .type = BUS1_MSG_DATA,
        .flags = BUS1_MSG_FLAG_CONTINUE | PROTO_MSG_FLAG_SYNC,
        .destination = 0x200,
        .uid = 1000,
        .gid = 1000,
        .pid = 1,
        .tid = 1,
        .offset = 8,
        .n_handles = 1,
        .n_fds = 1,
};

static void samples_build_requests(Samples *S, uint8_t *b) {
        static const uint64_t ids[] = { 0x100, 0x0b, 0x7 };
        static const uint64_t dests[] = { 0x0b, 0x13 };
        static const uint64_t handles[] = { 0x200 };
        static const char payload[] = "hello";
        static const int slice_fds[] = { 3, 0, INT32_MAX };
        struct iovec vec = { .iov_base = (void *)payload, .iov_len = 5 };
        const size_t cap = PROTO_RECORD_MAX;

        sample_set(&S->s[S_HELLO], KIND_HELLO, 0, b, proto_encode_hello(b, cap,
                   &(ProtoHello){ .cookie = 0x0102030405060708, .version_min = 1,
                                  .version_max = 1 }));
        sample_set(&S->s[S_FDS], KIND_FDS, 3, b, proto_encode_fds(b, cap,
                   &(ProtoFds){ .type = PROTO_TYPE_FDS, .n_fds = 3 }));
        sample_set(&S->s[S_PUSH_FDS], KIND_FDS, 253, b, proto_encode_fds(b, cap,
                   &(ProtoFds){ .type = PROTO_TYPE_PUSH_FDS, .n_fds = 253 }));
        sample_set(&S->s[S_ACK], KIND_ACK, 0, b,
                   proto_encode_ack(b, cap, &(ProtoAck){ .entry_id = 0x0102030405 }));
        sample_set(&S->s[S_PEER_DISCONNECT], KIND_PEER_DISCONNECT, 0, b,
                   proto_encode_peer_disconnect(b, cap, &(ProtoPeerDisconnect){ .cookie = 2 }));
        sample_set(&S->s[S_PEER_QUERY], KIND_PEER_QUERY, 0, b,
                   proto_encode_peer_query(b, cap, &(ProtoPeerQuery){ .cookie = 3 }));
        sample_set(&S->s[S_PEER_RESET], KIND_PEER_RESET, 0, b, proto_encode_peer_reset(b, cap,
                   &(ProtoPeerReset){ .cookie = 4, .flags = BUS1_PEER_RESET_FLAG_FLUSH,
                                      .peer_flags = BUS1_PEER_FLAG_WANT_SECCTX,
                                      .max_slices = 1, .max_handles = 2,
                                      .max_inflight_bytes = 3, .max_inflight_fds = 4 }));
        sample_set(&S->s[S_HANDLE_RELEASE], KIND_HANDLE_RELEASE, 0, b,
                   proto_encode_handle_release(b, cap,
                                               &(ProtoHandleRelease){ .cookie = 5, .id = 9 }));
        sample_set(&S->s[S_HANDLE_TRANSFER_SELF], KIND_HANDLE_TRANSFER, 0, b,
                   proto_encode_handle_transfer(b, cap, &(ProtoHandleTransfer){
                           .cookie = 6, .src_handle = 0x100, .dst_mode = PROTO_DST_SELF }));
        sample_set(&S->s[S_HANDLE_TRANSFER_FD], KIND_HANDLE_TRANSFER, 1, b,
                   proto_encode_handle_transfer(b, cap, &(ProtoHandleTransfer){
                           .cookie = 7, .src_handle = 0x0b, .dst_mode = PROTO_DST_FD }));
        sample_set(&S->s[S_NODES_DESTROY], KIND_NODES_DESTROY, 0, b,
                   proto_encode_nodes_destroy(b, cap, 8, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES,
                                              ids, 3));
        sample_set(&S->s[S_NODES_DESTROY_EMPTY], KIND_NODES_DESTROY, 0, b,
                   proto_encode_nodes_destroy(b, cap, 9, 0, NULL, 0));
        sample_set(&S->s[S_SLICE_RELEASE], KIND_SLICE_RELEASE, 0, b,
                   proto_encode_slice_release(b, cap,
                                              &(ProtoSliceRelease){ .cookie = 10,
                                                                    .offset = 4096 }));
        sample_set(&S->s[S_SLICE_FDS_ONE], KIND_SLICE_FDS, 0, b,
                   proto_encode_slice_fds(b, cap, 15, 4096, slice_fds, 1));
        sample_set(&S->s[S_SLICE_FDS_TWO], KIND_SLICE_FDS, 0, b,
                   proto_encode_slice_fds(b, cap, 16, 0, slice_fds, 2));
        sample_set(&S->s[S_SLICE_FDS], KIND_SLICE_FDS, 0, b,
                   proto_encode_slice_fds(b, cap, 17, 1 << 20, slice_fds, 3));
        sample_set(&S->s[S_SEND_INLINE], KIND_SEND, 2, b, proto_encode_send(b, cap,
                   &(ProtoSendArgs){ .cookie = 11, .flags = BUS1_SEND_FLAG_CONTINUE,
                                     .destinations = dests, .n_destinations = 2,
                                     .handles = handles, .n_handles = 1, .n_fds = 2,
                                     .vecs = &vec, .n_vecs = 1 }));
        sample_set(&S->s[S_SEND_MEMFD], KIND_SEND, 1, b, proto_encode_send(b, cap,
                   &(ProtoSendArgs){ .cookie = 12, .destinations = dests, .n_destinations = 1,
                                     .payload_mode = PROTO_PAYLOAD_MEMFD,
                                     .n_bytes = 1 << 20, .memfd_offset = 4096 }));
        sample_set(&S->s[S_SEND_EMPTY], KIND_SEND, 0, b,
                   proto_encode_send(b, cap, &(ProtoSendArgs){ .cookie = 13 }));
        sample_set(&S->s[S_RECV], KIND_RECV, 0, b, proto_encode_recv(b, cap,
                   &(ProtoRecv){ .cookie = 14, .flags = BUS1_RECV_FLAG_PEEK,
                                 .max_offset = 1 << 20 }));
}

static void samples_build_replies(Samples *S, uint8_t *b) {
        static const uint64_t errors[] = { 0, EHOSTUNREACH, EXFULL };
        const size_t cap = PROTO_RECORD_MAX;

        sample_set(&S->s[S_REPLY], KIND_REPLY, 0, b,
                   proto_encode_reply(b, cap, &(ProtoReply){ .cookie = 20 }));
        sample_set(&S->s[S_REPLY_ERROR], KIND_REPLY, 0, b,
                   proto_encode_reply(b, cap, &(ProtoReply){ .cookie = 21, .error = ENXIO }));
        sample_set(&S->s[S_REPLY_HELLO], KIND_REPLY_HELLO, 2, b, proto_encode_reply_hello(b, cap,
                   &(ProtoReplyHello){ .cookie = 22, .version = 1, .peer_id = 77,
                                       .pool_size = 1 << 24 }));
        sample_set(&S->s[S_REPLY_HELLO_ERROR], KIND_REPLY_HELLO, 0, b,
                   proto_encode_reply(b, cap,
                                      &(ProtoReply){ .cookie = 23, .error = EPROTONOSUPPORT }));
        sample_set(&S->s[S_REPLY_PEER_QUERY], KIND_REPLY_PEER_QUERY, 0, b,
                   proto_encode_reply_peer_query(b, cap, &(ProtoReplyPeerQuery){
                           .cookie = 24, .peer_flags = BUS1_PEER_FLAG_WANT_SECCTX,
                           .max_slices = 16384, .max_handles = 65536,
                           .max_inflight_bytes = 16 << 20, .max_inflight_fds = 4096 }));
        sample_set(&S->s[S_REPLY_HANDLE_TRANSFER], KIND_REPLY_HANDLE_TRANSFER, 0, b,
                   proto_encode_reply_handle_transfer(b, cap, &(ProtoReplyHandleTransfer){
                           .cookie = 25, .dst_handle = (1 << 3) | 3 }));
        sample_set(&S->s[S_REPLY_SEND], KIND_REPLY_SEND, 0, b,
                   proto_encode_reply_send(b, cap, 26, errors, 3));
        sample_set(&S->s[S_REPLY_SEND_EMPTY], KIND_REPLY_SEND, 0, b,
                   proto_encode_reply_send(b, cap, 27, NULL, 0));
        sample_set(&S->s[S_REPLY_SEND_ERROR], KIND_REPLY_SEND, 0, b,
                   proto_encode_reply(b, cap, &(ProtoReply){ .cookie = 28, .error = EINVAL }));
        sample_set(&S->s[S_REPLY_RECV], KIND_REPLY_RECV, 1, b, proto_encode_reply_recv(b, cap,
                   &(ProtoReplyRecv){ .cookie = 29, .entry = { .entry_id = 5,
                                                               .msg = msg_data } }));
        sample_set(&S->s[S_REPLY_RECV_ERROR], KIND_REPLY_RECV, 0, b,
                   proto_encode_reply(b, cap, &(ProtoReply){ .cookie = 30, .error = EAGAIN }));
        sample_set(&S->s[S_ENTRY_DATA], KIND_ENTRY, 0, b, proto_encode_entry(b, cap,
                   &(ProtoEntry){ .entry_id = 6, .msg = msg_data }));
        sample_set(&S->s[S_ENTRY_DESTROY], KIND_ENTRY, 0, b, proto_encode_entry(b, cap,
                   &(ProtoEntry){ .entry_id = 7, .msg = msg_destroy }));
        sample_set(&S->s[S_ENTRY_RELEASE], KIND_ENTRY, 0, b, proto_encode_entry(b, cap,
                   &(ProtoEntry){ .entry_id = 8, .msg = {
                           .type = BUS1_MSG_NODE_RELEASE, .flags = BUS1_MSG_FLAG_CONTINUE,
                           .destination = 0x100, .uid = UINT32_MAX, .gid = UINT32_MAX,
                           .offset = BUS1_OFFSET_INVALID } }));
        sample_set(&S->s[S_ENTRY_SYNC], KIND_ENTRY, 0, b, proto_encode_entry(b, cap,
                   &(ProtoEntry){ .entry_id = 9, .msg = msg_sync }));
        sample_set(&S->s[S_RETRACT], KIND_RETRACT, 0, b,
                   proto_encode_retract(b, cap, &(ProtoRetract){ .entry_id = 7 }));
        sample_set(&S->s[S_RETRACT_CONTINUES], KIND_RETRACT, 0, b, proto_encode_retract(b, cap,
                   &(ProtoRetract){ .entry_id = 10,
                                    .flags = PROTO_RETRACT_FLAG_PREV_CONTINUES }));
        sample_set(&S->s[S_WAKE], KIND_WAKE, 0, b, proto_encode_wake(b, cap));
        sample_set(&S->s[S_RESYNC], KIND_RESYNC, 0, b, proto_encode_resync(b, cap));
}

static void samples_build(Samples *S) {
        uint8_t *b = malloc(PROTO_RECORD_MAX);
        size_t i;

        assert_non_null(b);
        memset(S, 0, sizeof(*S));
        samples_build_requests(S, b);
        samples_build_replies(S, b);
        free(b);
        for (i = 0; i < _S_N; ++i)
                assert_non_null(S->s[i].buf);
}

static void samples_free(Samples *S) {
        size_t i;

        for (i = 0; i < _S_N; ++i)
                free(S->s[i].buf);
}

/* decode sample @i after setting a field; the field helpers restore nothing */
static int decode_with16(const Sample *s, size_t off, uint16_t v) {
        uint8_t *b = sample_dup(s, 0);
        int r;

        put16(b, off, v);
        r = decode_kind(s->kind, b, s->len, s->n_fds);
        free(b);
        return r;
}

static int decode_with32(const Sample *s, size_t off, uint32_t v) {
        uint8_t *b = sample_dup(s, 0);
        int r;

        put32(b, off, v);
        r = decode_kind(s->kind, b, s->len, s->n_fds);
        free(b);
        return r;
}

static int decode_with64(const Sample *s, size_t off, uint64_t v) {
        uint8_t *b = sample_dup(s, 0);
        int r;

        put64(b, off, v);
        r = decode_kind(s->kind, b, s->len, s->n_fds);
        free(b);
        return r;
}

/* decode @s cut or extended (with zeros) to @len, the header size set to match */
static int decode_resized(const Sample *s, size_t len) {
        uint8_t *b = calloc(1, len > s->len ? len : s->len);
        int r;

        assert_non_null(b);
        memcpy(b, s->buf, s->len);
        if (len >= 4)
                put32(b, 0, (uint32_t)len);
        r = decode_kind(s->kind, b, len, s->n_fds);
        free(b);
        return r;
}

static void test_samples_valid(void **state) {
        Samples S;
        size_t i;

        samples_build(&S);
        for (i = 0; i < _S_N; ++i)
                assert_int_equal(decode_sample(&S.s[i]), 0);
        samples_free(&S);
}

static void test_header(void **state) {
        Samples S;
        ProtoHeader hdr, sentinel;
        size_t i;

        samples_build(&S);
        for (i = 0; i < _S_N; ++i) {
                assert_int_equal(proto_decode_header(&hdr, S.s[i].buf, S.s[i].len), 0);
                assert_int_equal(hdr.size, S.s[i].len);
                assert_int_equal(hdr.version, 1);
                assert_int_equal(hdr.type, i == S_PUSH_FDS ? PROTO_TYPE_PUSH_FDS :
                                           kind_type(S.s[i].kind));
                assert_int_equal(hdr.cookie, get64(S.s[i].buf, 8));
        }
        assert_int_equal(get64(S.s[S_HELLO].buf, 8), 0x0102030405060708);

        /* output untouched on failure */
        memset(&hdr, 0xa5, sizeof(hdr));
        sentinel = hdr;
        assert_int_equal(proto_decode_header(&hdr, S.s[S_HELLO].buf, 8), -EBADMSG);
        assert_memory_equal(&hdr, &sentinel, sizeof(hdr));

        /* a size that is no multiple of 8, even if the header agrees */
        for (i = 17; i < 24; ++i) {
                uint8_t b[24] = {};

                memcpy(b, S.s[S_WAKE].buf, 16);
                put32(b, 0, (uint32_t)i);
                assert_int_equal(proto_decode_header(&hdr, b, i), -EBADMSG);
                put32(b, 0, 24);
                assert_int_equal(proto_decode_header(&hdr, b, 24), 0);
        }
        assert_int_equal(hdr.size, 24);
        samples_free(&S);
}

static void test_size_mismatch(void **state) {
        static const size_t fixed[] = { 0, 1, 4, 7, 8, 15, 16, 17, 23, 24, 31, 32,
                                        PROTO_RECORD_MAX, PROTO_RECORD_MAX + 8 };
        static const ssize_t delta[] = { -16, -8, -1, 1, 7, 8, 16 };
        Samples S;
        size_t i, j;

        samples_build(&S);
        for (i = 0; i < _S_N; ++i) {
                const Sample *s = &S.s[i];

                for (j = 0; j < ARRAY_SIZE(fixed); ++j)
                        if (fixed[j] != s->len)
                                assert_int_equal(decode_resized(s, fixed[j]), -EBADMSG);
                for (j = 0; j < ARRAY_SIZE(delta); ++j)
                        if ((ssize_t)s->len + delta[j] >= 0)
                                assert_int_equal(decode_resized(s, s->len + delta[j]),
                                                 -EBADMSG);
        }
        samples_free(&S);
}

static void test_size_field(void **state) {
        static const int64_t delta[] = { -8, -1, 1, 8 };
        Samples S;
        size_t i, j;

        samples_build(&S);
        for (i = 0; i < _S_N; ++i) {
                const Sample *s = &S.s[i];

                for (j = 0; j < ARRAY_SIZE(delta); ++j)
                        assert_int_equal(decode_with32(s, 0, (uint32_t)(s->len + delta[j])),
                                         -EBADMSG);
                assert_int_equal(decode_with32(s, 0, 0), -EBADMSG);
                assert_int_equal(decode_with32(s, 0, UINT32_MAX), -EBADMSG);
                assert_int_equal(decode_with32(s, 0, (uint32_t)s->len << 8), -EBADMSG);
        }
        samples_free(&S);
}

static void test_version(void **state) {
        static const uint16_t versions[] = { 0, 2, 3, 0x0100, 0x8001, UINT16_MAX };
        Samples S;
        size_t i, j;

        samples_build(&S);
        for (i = 0; i < _S_N; ++i)
                for (j = 0; j < ARRAY_SIZE(versions); ++j)
                        assert_int_equal(decode_with16(&S.s[i], 4, versions[j]), -EBADMSG);
        samples_free(&S);
}

/* every type but a sample's own is refused by its decoder */
static void test_wrong_type(void **state) {
        Samples S;
        uint32_t t;
        size_t i;
        uint8_t *b;

        samples_build(&S);
        for (i = 0; i < _S_N; ++i) {
                const Sample *s = &S.s[i];

                b = sample_dup(s, 0);
                for (t = 0; t <= UINT16_MAX; ++t) {
                        if (t == kind_type(s->kind) ||
                            (s->kind == KIND_FDS && t == PROTO_TYPE_PUSH_FDS))
                                continue;
                        put16(b, 6, (uint16_t)t);
                        assert_int_equal(check_kind(s->kind, b, s->len, s->n_fds), -EBADMSG);
                }
                free(b);
        }
        samples_free(&S);
}

static void test_request_type(void **state) {
        static const uint16_t defined[] = {
                PROTO_TYPE_HELLO, PROTO_TYPE_FDS, PROTO_TYPE_ACK, PROTO_TYPE_PEER_DISCONNECT,
                PROTO_TYPE_PEER_QUERY, PROTO_TYPE_PEER_RESET, PROTO_TYPE_HANDLE_RELEASE,
                PROTO_TYPE_HANDLE_TRANSFER, PROTO_TYPE_NODES_DESTROY,
                PROTO_TYPE_SLICE_RELEASE, PROTO_TYPE_SLICE_FDS, PROTO_TYPE_SEND,
                PROTO_TYPE_RECV, PROTO_TYPE_CTL_STATUS, PROTO_TYPE_CTL_PEERS,
                PROTO_TYPE_CTL_PEER, PROTO_TYPE_CTL_QUOTA, PROTO_TYPE_CTL_METRICS,
                PROTO_TYPE_CTL_MONITOR,
        };
        size_t i, n_defined = 0, n_enotty = 0, n_ebadmsg = 0;
        uint32_t t;
        int r, expected;

        for (t = 0; t <= UINT16_MAX; ++t) {
                expected = (t == 0 || t >= 0x8000) ? -EBADMSG : -ENOTTY;
                for (i = 0; i < ARRAY_SIZE(defined); ++i)
                        if (defined[i] == t)
                                expected = 0;
                r = proto_check_request_type((uint16_t)t);
                assert_int_equal(r, expected);
                n_defined += r == 0;
                n_enotty += r == -ENOTTY;
                n_ebadmsg += r == -EBADMSG;
        }
        assert_int_equal(n_defined, 19);
        assert_int_equal(n_ebadmsg, 1 + 0x8000);
        assert_int_equal(n_enotty, 0x7fff - 19);
        assert_int_equal(proto_check_request_type(0x0003), 0);
        assert_int_equal(proto_check_request_type(0x0131), 0);
        assert_int_equal(proto_check_request_type(0x0004), -ENOTTY);
        assert_int_equal(proto_check_request_type(0x0132), -ENOTTY);
        /* the rest of the control range and the future range are answered */
        assert_int_equal(proto_check_request_type(0x1000), 0);
        assert_int_equal(proto_check_request_type(0x1005), 0);
        assert_int_equal(proto_check_request_type(0x1006), -ENOTTY);
        assert_int_equal(proto_check_request_type(0x1fff), -ENOTTY);
        assert_int_equal(proto_check_request_type(0x7fff), -ENOTTY);
        assert_int_equal(proto_check_request_type(PROTO_TYPE_REPLY), -EBADMSG);
        assert_int_equal(proto_check_request_type(PROTO_TYPE_PUSH_FDS), -EBADMSG);
        assert_int_equal(proto_check_request_type(PROTO_TYPE_RESYNC), -EBADMSG);
        assert_true(proto_error_is_fatal(-EBADMSG));
        assert_false(proto_error_is_fatal(-ENOTTY));
        assert_false(proto_error_is_fatal(-EINVAL));
        assert_false(proto_error_is_fatal(0));
}

typedef struct FlagField {
        int sample;
        size_t offset;
        uint64_t mask;
        int r_all;              /* result with every bit of @mask set */
        uint64_t layout;        /* bits of @mask that drop the sample's IDs: -EBADMSG */
} FlagField;

/* every flags field; bits in @mask decode, every other bit is -EINVAL */
static void test_flag_bits(void **state) {
        static const FlagField fields[] = {
                { S_HELLO, 16, 0 },
                { S_PEER_DISCONNECT, 16, 0 },
                { S_PEER_QUERY, 16, 0 },
                { S_PEER_RESET, 16, BUS1_PEER_RESET_FLAG_FLUSH |
                                    BUS1_PEER_RESET_FLAG_FLUSH_SEED },
                { S_PEER_RESET, 24, BUS1_PEER_FLAG_WANT_SECCTX },
                { S_HANDLE_TRANSFER_SELF, 16, 0 },
                /* EFAULT: the count stays, the IDs go; this sample has some */
                { S_NODES_DESTROY, 16, PROTO_NODES_DESTROY_FLAGS, -EBADMSG,
                  PROTO_NODES_DESTROY_FLAG_EFAULT },
                { S_NODES_DESTROY_EMPTY, 16, PROTO_NODES_DESTROY_FLAGS },
                /* SEED with CONTINUE or destinations is the broker's to refuse */
                { S_SEND_EMPTY, 16, PROTO_SEND_FLAGS },
                { S_SEND_INLINE, 16, PROTO_SEND_FLAGS, -EBADMSG,
                  PROTO_SEND_FLAG_DESTINATIONS_EFAULT },
                { S_RECV, 16, BUS1_RECV_FLAG_PEEK | BUS1_RECV_FLAG_SEED |
                              BUS1_RECV_FLAG_INSTALL_FDS },
                { S_REPLY_PEER_QUERY, 24, 0 },
                { S_REPLY_PEER_QUERY, 32, BUS1_PEER_FLAG_WANT_SECCTX },
                /* SYNC only where the entry is pushed, never in a RECV reply */
                { S_REPLY_RECV, 40, BUS1_MSG_FLAG_HAS_SECCTX | BUS1_MSG_FLAG_CONTINUE },
                { S_ENTRY_DATA, 32, BUS1_MSG_FLAG_HAS_SECCTX | BUS1_MSG_FLAG_CONTINUE |
                                    (1ULL << 63) },
                { S_ENTRY_DESTROY, 32, BUS1_MSG_FLAG_CONTINUE | (1ULL << 63) },
                { S_ENTRY_RELEASE, 32, BUS1_MSG_FLAG_CONTINUE | (1ULL << 63) },
                { S_ENTRY_SYNC, 32, BUS1_MSG_FLAG_HAS_SECCTX | BUS1_MSG_FLAG_CONTINUE |
                                    (1ULL << 63) },
                { S_RETRACT, 24, 1 },
                { S_RETRACT_CONTINUES, 24, 1 },
        };
        size_t i, n_valid;
        Samples S;
        int bit;

        samples_build(&S);
        for (i = 0; i < ARRAY_SIZE(fields); ++i) {
                const FlagField *f = &fields[i];

                n_valid = 0;
                for (bit = 0; bit < 64; ++bit) {
                        uint64_t flags = (uint64_t)1 << bit;
                        int r = decode_with64(&S.s[f->sample], f->offset, flags);

                        assert_int_equal(r, (flags & f->layout) ? -EBADMSG
                                            : (flags & f->mask) ? 0 : -EINVAL);
                        n_valid += r == 0 || (flags & f->layout);
                }
                assert_int_equal(n_valid, __builtin_popcountll(f->mask));
                assert_int_equal(decode_with64(&S.s[f->sample], f->offset, f->mask), f->r_all);
                assert_int_equal(decode_with64(&S.s[f->sample], f->offset, UINT64_MAX),
                                 f->offset == 24 && f->sample == S_PEER_RESET ? 0 : -EINVAL);
        }
        samples_free(&S);
}

typedef struct Reserved {
        int sample;
        size_t offset;
        size_t n;
} Reserved;

/* every reserved byte, and the cookie of pushed records and carriers */
static void test_reserved(void **state) {
        static const Reserved fields[] = {
                { S_FDS, 20, 4 },
                { S_PUSH_FDS, 20, 4 },
                { S_FDS, 8, 8 },
                { S_PUSH_FDS, 8, 8 },
                { S_ACK, 8, 8 },
                { S_SLICE_FDS_ONE, 28, 4 },
                { S_SLICE_FDS_TWO, 28, 4 },
                { S_SLICE_FDS, 28, 4 },
                { S_HANDLE_TRANSFER_SELF, 36, 4 },
                { S_HANDLE_TRANSFER_FD, 36, 4 },
                { S_REPLY, 20, 4 },
                { S_REPLY_ERROR, 20, 4 },
                { S_REPLY_HELLO, 20, 4 },
                { S_REPLY_HELLO_ERROR, 20, 4 },
                { S_REPLY_PEER_QUERY, 20, 4 },
                { S_REPLY_HANDLE_TRANSFER, 20, 4 },
                { S_REPLY_SEND, 20, 4 },
                { S_REPLY_SEND_EMPTY, 20, 4 },
                { S_REPLY_SEND_ERROR, 20, 4 },
                { S_REPLY_RECV, 20, 4 },
                { S_REPLY_RECV_ERROR, 20, 4 },
                { S_ENTRY_DATA, 8, 8 },
                { S_ENTRY_DESTROY, 8, 8 },
                { S_ENTRY_RELEASE, 8, 8 },
                { S_ENTRY_SYNC, 8, 8 },
                { S_RETRACT, 8, 8 },
                { S_RETRACT_CONTINUES, 8, 8 },
                { S_WAKE, 8, 8 },
                { S_RESYNC, 8, 8 },
        };
        static const uint8_t values[] = { 0x01, 0x80, 0xff };
        size_t i, j, k;
        Samples S;
        uint8_t *b;

        samples_build(&S);
        for (i = 0; i < ARRAY_SIZE(fields); ++i) {
                const Sample *s = &S.s[fields[i].sample];

                for (j = 0; j < fields[i].n; ++j) {
                        for (k = 0; k < ARRAY_SIZE(values); ++k) {
                                b = sample_dup(s, 0);
                                b[fields[i].offset + j] = values[k];
                                assert_int_equal(decode_kind(s->kind, b, s->len, s->n_fds),
                                                 -EBADMSG);
                                free(b);
                        }
                }
        }
        samples_free(&S);
}

/* the inline payload's padding must be zero, byte by byte */
static void test_send_padding(void **state) {
        Samples S;
        const Sample *s;
        size_t i;
        uint8_t *b;

        samples_build(&S);
        s = &S.s[S_SEND_INLINE];
        /* 56 + 2 * 8 + 1 * 8 = 80, payload "hello" at 80..84, padding 85..87 */
        assert_int_equal(s->len, 88);
        assert_memory_equal(s->buf + 80, "hello\0\0\0", 8);
        for (i = 85; i < 88; ++i) {
                b = sample_dup(s, 0);
                b[i] = 0x20;
                assert_int_equal(decode_kind(s->kind, b, s->len, s->n_fds), -EBADMSG);
                free(b);
        }
        /* payload bytes themselves may be anything */
        for (i = 80; i < 85; ++i) {
                b = sample_dup(s, 0);
                b[i] = 0;
                assert_int_equal(decode_kind(s->kind, b, s->len, s->n_fds), 0);
                free(b);
        }
        samples_free(&S);
}

/* one fd more or less than a record accounts for is a framing error */
static void test_fd_count(void **state) {
        Samples S;
        size_t i;

        samples_build(&S);
        for (i = 0; i < _S_N; ++i) {
                const Sample *s = &S.s[i];

                assert_int_equal(decode_kind(s->kind, s->buf, s->len, s->n_fds + 1), -EBADMSG);
                assert_int_equal(decode_kind(s->kind, s->buf, s->len, s->n_fds + 256),
                                 -EBADMSG);
                /* a RECV reply may also come without its fds (PEEK) */
                if (s->n_fds > 1 || (s->n_fds == 1 && s->kind != KIND_REPLY_RECV))
                        assert_int_equal(decode_kind(s->kind, s->buf, s->len, s->n_fds - 1),
                                         -EBADMSG);
                if (s->n_fds > 0 && s->kind == KIND_REPLY_RECV)
                        assert_int_equal(decode_kind(s->kind, s->buf, s->len, 0), 0);
        }
        /* entries never bring fds, whatever n_fds says will come with a RECV */
        assert_int_equal(decode_with64(&S.s[S_ENTRY_DATA], 88, 0), 0);
        assert_int_equal(decode_with64(&S.s[S_ENTRY_DATA], 88, 2), 0);
        assert_int_equal(decode_kind(KIND_ENTRY, S.s[S_ENTRY_DATA].buf, S.s[S_ENTRY_DATA].len, 1),
                         -EBADMSG);
        samples_free(&S);
}

static void test_fds_carrier(void **state) {
        Samples S;
        const Sample *s;
        uint8_t *b;

        samples_build(&S);
        s = &S.s[S_FDS];
        assert_int_equal(decode_with32(s, 16, 0), -EBADMSG);
        assert_int_equal(decode_kind(s->kind, s->buf, s->len, 0), -EBADMSG);
        /* an empty carrier is refused even when no fd came with it */
        b = sample_dup(s, 0);
        put32(b, 16, 0);
        assert_int_equal(decode_kind(s->kind, b, s->len, 0), -EBADMSG);
        put32(b, 16, 1);
        assert_int_equal(decode_kind(s->kind, b, s->len, 1), 0);
        free(b);
        s = &S.s[S_PUSH_FDS];
        assert_int_equal(decode_with32(s, 16, 254), -EBADMSG);
        assert_int_equal(decode_kind(s->kind, s->buf, s->len, 254), -EBADMSG);
        assert_int_equal(decode_with32(s, 16, UINT32_MAX), -EBADMSG);
        samples_free(&S);
}

static void test_hello_versions(void **state) {
        static const struct {
                uint32_t min, max;
                int r;
        } cases[] = {
                { 1, 1, 0 },
                { 1, 7, 0 },
                { 1, UINT32_MAX, 0 },
                { 0, 0, -EINVAL },
                { 0, 1, -EINVAL },
                { 2, 1, -EINVAL },
                { UINT32_MAX, 1, -EINVAL },
                { 2, 2, -EPROTONOSUPPORT },
                { 2, 9, -EPROTONOSUPPORT },
        };
        Samples S;
        size_t i;
        uint8_t *b;

        samples_build(&S);
        for (i = 0; i < ARRAY_SIZE(cases); ++i) {
                b = sample_dup(&S.s[S_HELLO], 0);
                put32(b, 24, cases[i].min);
                put32(b, 28, cases[i].max);
                assert_int_equal(decode_kind(KIND_HELLO, b, 32, 0), cases[i].r);
                free(b);
        }
        samples_free(&S);
}

static void test_peer_reset_limits(void **state) {
        static const struct {
                uint32_t v;
                int r;
        } cases[] = {
                { 0, 0 },
                { INT32_MAX, 0 },
                { UINT32_MAX, 0 },
                { (uint32_t)INT32_MAX + 1, -EINVAL },
                { UINT32_MAX - 1, -EINVAL },
        };
        Samples S;
        size_t i, off;

        samples_build(&S);
        for (off = 32; off < 48; off += 4)
                for (i = 0; i < ARRAY_SIZE(cases); ++i)
                        assert_int_equal(decode_with32(&S.s[S_PEER_RESET], off, cases[i].v),
                                         cases[i].r);
        /* a query reports values: all ones is no "keep" there */
        for (off = 40; off < 56; off += 4) {
                assert_int_equal(decode_with32(&S.s[S_REPLY_PEER_QUERY], off, INT32_MAX), 0);
                assert_int_equal(decode_with32(&S.s[S_REPLY_PEER_QUERY], off, UINT32_MAX),
                                 -EINVAL);
        }
        assert_int_equal(decode_with64(&S.s[S_PEER_RESET], 24, UINT64_MAX), 0);
        assert_int_equal(decode_with64(&S.s[S_REPLY_PEER_QUERY], 32, UINT64_MAX), -EINVAL);
        samples_free(&S);
}

static void test_handle_transfer_mode(void **state) {
        Samples S;
        uint8_t *b;
        uint32_t mode;

        samples_build(&S);
        for (mode = 2; mode < 64; ++mode)
                assert_int_equal(decode_with32(&S.s[S_HANDLE_TRANSFER_SELF], 32, mode),
                                 -EINVAL);
        assert_int_equal(decode_with32(&S.s[S_HANDLE_TRANSFER_SELF], 32, UINT32_MAX), -EINVAL);
        /* mode 1 needs exactly the one fd, mode 0 none */
        b = sample_dup(&S.s[S_HANDLE_TRANSFER_SELF], 0);
        put32(b, 32, PROTO_DST_FD);
        assert_int_equal(decode_kind(KIND_HANDLE_TRANSFER, b, 40, 0), -EBADMSG);
        assert_int_equal(decode_kind(KIND_HANDLE_TRANSFER, b, 40, 1), 0);
        put32(b, 32, PROTO_DST_SELF);
        assert_int_equal(decode_kind(KIND_HANDLE_TRANSFER, b, 40, 1), -EBADMSG);
        free(b);
        samples_free(&S);
}

/* a NODES_DESTROY with @n_nodes in the count field and @n_ids IDs present */
static int decode_nodes_destroy(uint64_t n_nodes, size_t n_ids) {
        size_t len = 32 + n_ids * 8, i;
        uint8_t *b = calloc(1, len);
        int r;

        assert_non_null(b);
        put32(b, 0, (uint32_t)len);
        put16(b, 4, 1);
        put16(b, 6, PROTO_TYPE_NODES_DESTROY);
        put64(b, 24, n_nodes);
        for (i = 0; i < n_ids; ++i)
                put64(b, 32 + i * 8, i);
        r = decode_kind(KIND_NODES_DESTROY, b, len, 0);
        free(b);
        return r;
}

static void test_nodes_destroy_counts(void **state) {
        assert_int_equal(decode_nodes_destroy(0, 0), 0);
        assert_int_equal(decode_nodes_destroy(1, 1), 0);
        assert_int_equal(decode_nodes_destroy(PROTO_NODES_MAX, PROTO_NODES_MAX), 0);
        /* over the limit, with a size that matches: answered */
        assert_int_equal(decode_nodes_destroy(PROTO_NODES_MAX + 1, PROTO_NODES_MAX + 1),
                         -EINVAL);
        /* count and size disagree: framing */
        assert_int_equal(decode_nodes_destroy(2, 1), -EBADMSG);
        assert_int_equal(decode_nodes_destroy(0, 1), -EBADMSG);
        assert_int_equal(decode_nodes_destroy(1, 0), -EBADMSG);
        assert_int_equal(decode_nodes_destroy(PROTO_NODES_MAX, 3), -EBADMSG);
        /* counts whose size overflows 32 and 64 bit arithmetic never reach a read */
        assert_int_equal(decode_nodes_destroy((uint64_t)1 << 29, 2), -EINVAL);
        assert_int_equal(decode_nodes_destroy(((uint64_t)1 << 61) + 1, 1), -EINVAL);
        assert_int_equal(decode_nodes_destroy(UINT64_MAX, 3), -EINVAL);
        assert_int_equal(decode_nodes_destroy(UINT64_MAX / 8 + 1, 0), -EINVAL);
}

typedef struct SendFields {
        uint64_t flags;
        uint32_t n_destinations;
        uint32_t n_handles;
        uint32_t n_fds;
        uint32_t payload_mode;
        uint64_t n_bytes;
        uint64_t memfd_offset;
        size_t n_u64;           /* le64s actually present after the fixed part */
        size_t n_payload;       /* payload and padding bytes actually present */
        size_t n_attached;      /* fds passed to the decoder */
} SendFields;

/* a SEND written field by field, independent of the encoder */
static int decode_send_fields(const SendFields *f) {
        size_t len = 56 + f->n_u64 * 8 + f->n_payload, i;
        uint8_t *b = calloc(1, len);
        int r;

        assert_non_null(b);
        put32(b, 0, (uint32_t)len);
        put16(b, 4, 1);
        put16(b, 6, PROTO_TYPE_SEND);
        put64(b, 8, 99);
        put64(b, 16, f->flags);
        put32(b, 24, f->n_destinations);
        put32(b, 28, f->n_handles);
        put32(b, 32, f->n_fds);
        put32(b, 36, f->payload_mode);
        put64(b, 40, f->n_bytes);
        put64(b, 48, f->memfd_offset);
        for (i = 0; i < f->n_u64; ++i)
                put64(b, 56 + i * 8, 0x100 + i * 8);
        for (i = 0; i < f->n_payload && i < f->n_bytes; ++i)
                b[56 + f->n_u64 * 8 + i] = (uint8_t)(i + 1);
        r = decode_kind(KIND_SEND, b, len, f->n_attached);
        free(b);
        return r;
}

static void test_send_counts(void **state) {
        SendFields f;

        /* 2 destinations, 1 handle, 3 bytes of payload padded to 8 */
        f = (SendFields){ .n_destinations = 2, .n_handles = 1, .n_bytes = 3, .n_u64 = 3,
                          .n_payload = 8 };
        assert_int_equal(decode_send_fields(&f), 0);

        /* counts that disagree with the size */
        f.n_destinations = 3;
        assert_int_equal(decode_send_fields(&f), -EBADMSG);
        f.n_destinations = 1;
        assert_int_equal(decode_send_fields(&f), -EBADMSG);
        f.n_destinations = 2;
        f.n_bytes = 9;
        assert_int_equal(decode_send_fields(&f), -EBADMSG);
        f.n_bytes = 0;
        assert_int_equal(decode_send_fields(&f), -EBADMSG);
        f.n_bytes = 8;
        assert_int_equal(decode_send_fields(&f), 0);
        /* truncated arrays, trailing bytes */
        f.n_payload = 0;
        assert_int_equal(decode_send_fields(&f), -EBADMSG);
        f.n_payload = 8;
        f.n_u64 = 2;
        assert_int_equal(decode_send_fields(&f), -EBADMSG);
        f.n_u64 = 4;
        assert_int_equal(decode_send_fields(&f), -EBADMSG);
        f.n_u64 = 3;
        f.n_payload = 16;
        assert_int_equal(decode_send_fields(&f), -EBADMSG);

        /* limits, each with a size that would match */
        f = (SendFields){ .n_destinations = PROTO_DESTINATIONS_MAX,
                          .n_u64 = PROTO_DESTINATIONS_MAX };
        assert_int_equal(decode_send_fields(&f), 0);
        f.n_destinations++;
        f.n_u64++;
        assert_int_equal(decode_send_fields(&f), -EINVAL);
        f = (SendFields){ .n_handles = PROTO_HANDLES_MAX, .n_u64 = PROTO_HANDLES_MAX };
        assert_int_equal(decode_send_fields(&f), 0);
        f.n_handles++;
        f.n_u64++;
        assert_int_equal(decode_send_fields(&f), -EMSGSIZE);
        f = (SendFields){ .n_fds = BUS1_FD_MAX, .n_attached = BUS1_FD_MAX };
        assert_int_equal(decode_send_fields(&f), 0);
        f.n_fds++;
        f.n_attached++;
        assert_int_equal(decode_send_fields(&f), -EMSGSIZE);
        f.n_fds = UINT32_MAX;
        assert_int_equal(decode_send_fields(&f), -EMSGSIZE);

        /* destinations and handles both at their limit exceed the record */
        f = (SendFields){ .n_destinations = PROTO_DESTINATIONS_MAX,
                          .n_handles = PROTO_HANDLES_MAX, .n_u64 = 2 * PROTO_HANDLES_MAX - 8 };
        assert_int_equal(decode_send_fields(&f), -EBADMSG);

        /* the largest inline payload that fits a record */
        f = (SendFields){ .n_bytes = PROTO_RECORD_MAX - 56,
                          .n_payload = PROTO_RECORD_MAX - 56 };
        assert_int_equal(decode_send_fields(&f), 0);
}

static void test_send_overflow(void **state) {
        SendFields f;

        /* n * 8 overflows 32-bit arithmetic: refused by the limit, never read */
        f = (SendFields){ .n_destinations = 0x20000000, .n_u64 = 1 };
        assert_int_equal(decode_send_fields(&f), -EINVAL);
        f = (SendFields){ .n_destinations = UINT32_MAX, .n_u64 = 0 };
        assert_int_equal(decode_send_fields(&f), -EINVAL);
        f = (SendFields){ .n_handles = 0x20000000, .n_u64 = 1 };
        assert_int_equal(decode_send_fields(&f), -EMSGSIZE);
        f = (SendFields){ .n_handles = UINT32_MAX };
        assert_int_equal(decode_send_fields(&f), -EMSGSIZE);

        /* payload sizes near UINT64_MAX, where align8() would wrap */
        f = (SendFields){ .n_bytes = UINT64_MAX, .n_payload = 8 };
        assert_int_equal(decode_send_fields(&f), -EMSGSIZE);
        f.n_bytes = UINT64_MAX - 6;
        assert_int_equal(decode_send_fields(&f), -EMSGSIZE);
        f.n_bytes = UINT64_MAX - 7;
        assert_int_equal(decode_send_fields(&f), -EMSGSIZE);
        f.n_bytes = PROTO_BYTES_MAX + 1;
        assert_int_equal(decode_send_fields(&f), -EMSGSIZE);
        /* 2 GiB exactly is allowed, but only from a memfd */
        f.n_bytes = PROTO_BYTES_MAX;
        assert_int_equal(decode_send_fields(&f), -EBADMSG);
        f = (SendFields){ .payload_mode = PROTO_PAYLOAD_MEMFD, .n_bytes = PROTO_BYTES_MAX,
                          .n_attached = 1 };
        assert_int_equal(decode_send_fields(&f), 0);
        f.n_bytes = PROTO_BYTES_MAX + 1;
        assert_int_equal(decode_send_fields(&f), -EMSGSIZE);

        /* memfd ranges */
        f = (SendFields){ .payload_mode = PROTO_PAYLOAD_MEMFD, .n_bytes = 4096,
                          .memfd_offset = (uint64_t)INT64_MAX - 4096, .n_attached = 1 };
        assert_int_equal(decode_send_fields(&f), 0);
        f.memfd_offset++;
        assert_int_equal(decode_send_fields(&f), -EMSGSIZE);
        f.memfd_offset = UINT64_MAX;
        assert_int_equal(decode_send_fields(&f), -EMSGSIZE);
        f = (SendFields){ .payload_mode = PROTO_PAYLOAD_MEMFD, .n_bytes = UINT64_MAX,
                          .memfd_offset = 1, .n_attached = 1 };
        assert_int_equal(decode_send_fields(&f), -EMSGSIZE);
}

static void test_send_arguments(void **state) {
        SendFields f;
        uint32_t mode;

        /* payload_mode */
        for (mode = 2; mode < 34; ++mode) {
                f = (SendFields){ .payload_mode = mode };
                assert_int_equal(decode_send_fields(&f), -EINVAL);
        }
        f = (SendFields){ .payload_mode = UINT32_MAX };
        assert_int_equal(decode_send_fields(&f), -EINVAL);
        /* memfd_offset only with a memfd */
        f = (SendFields){ .memfd_offset = 8 };
        assert_int_equal(decode_send_fields(&f), -EINVAL);
        /* the memfd is one more fd, after the message's */
        f = (SendFields){ .payload_mode = PROTO_PAYLOAD_MEMFD, .n_fds = 2, .n_attached = 2 };
        assert_int_equal(decode_send_fields(&f), -EBADMSG);
        f.n_attached = 3;
        assert_int_equal(decode_send_fields(&f), 0);
        f = (SendFields){ .payload_mode = PROTO_PAYLOAD_MEMFD, .n_fds = BUS1_FD_MAX,
                          .n_attached = BUS1_FD_MAX + 1 };
        assert_int_equal(decode_send_fields(&f), 0);
        /* a memfd payload has no inline bytes */
        f = (SendFields){ .payload_mode = PROTO_PAYLOAD_MEMFD, .n_bytes = 8, .n_payload = 8,
                          .n_attached = 1 };
        assert_int_equal(decode_send_fields(&f), -EBADMSG);

        /*
         * SEED with destinations or CONTINUE decodes: the broker refuses it
         * after the handles and fds, where the kernel did
         */
        f = (SendFields){ .flags = BUS1_SEND_FLAG_SEED };
        assert_int_equal(decode_send_fields(&f), 0);
        f.flags |= PROTO_SEND_FLAG_ERRORS;
        assert_int_equal(decode_send_fields(&f), 0);
        f.flags |= BUS1_SEND_FLAG_CONTINUE;
        assert_int_equal(decode_send_fields(&f), 0);
        f = (SendFields){ .flags = BUS1_SEND_FLAG_SEED, .n_destinations = 1, .n_u64 = 1 };
        assert_int_equal(decode_send_fields(&f), 0);
        f = (SendFields){ .flags = BUS1_SEND_FLAG_SEED, .n_handles = 1, .n_u64 = 1 };
        assert_int_equal(decode_send_fields(&f), 0);

        /* unknown flags come first, before a count over its limit */
        f = (SendFields){ .flags = 1ULL << 5, .n_fds = 999 };
        assert_int_equal(decode_send_fields(&f), -EINVAL);
}

static void test_send_output(void **state) {
        static const uint8_t golden[] = {
                /* header: size 80, version 1, type 0x0140, cookie 0x1122 */
                0x50, 0, 0, 0, 1, 0, 0x40, 0x01, 0x22, 0x11, 0, 0, 0, 0, 0, 0,
                /* flags: CONTINUE | ERRORS */
                0x01, 0, 0, 0, 0, 0, 0, 0x80,
                /* n_destinations 1, n_handles 1 */
                1, 0, 0, 0, 1, 0, 0, 0,
                /* n_fds 0, payload_mode 0 */
                0, 0, 0, 0, 0, 0, 0, 0,
                /* n_bytes 2, memfd_offset 0 */
                2, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 0, 0, 0, 0,
                /* destinations[0] = 0x0b, handles[0] = 0x0102030405060708 */
                0x0b, 0, 0, 0, 0, 0, 0, 0,
                0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
                /* payload "hi", padding */
                'h', 'i', 0, 0, 0, 0, 0, 0,
        };
        ProtoSend v;

        assert_int_equal(decode_kind(KIND_SEND, golden, sizeof(golden), 0), 0);
        assert_int_equal(proto_decode_send(&v, golden, sizeof(golden), 0), 0);
        assert_int_equal(v.cookie, 0x1122);
        assert_int_equal(v.flags, BUS1_SEND_FLAG_CONTINUE | PROTO_SEND_FLAG_ERRORS);
        assert_int_equal(v.n_destinations, 1);
        assert_int_equal(v.n_handles, 1);
        assert_int_equal(v.n_fds, 0);
        assert_int_equal(v.payload_mode, PROTO_PAYLOAD_INLINE);
        assert_int_equal(v.n_bytes, 2);
        assert_int_equal(v.memfd_offset, 0);
        assert_ptr_equal(v.destinations, golden + 56);
        assert_ptr_equal(v.handles, golden + 64);
        assert_ptr_equal(v.payload, golden + 72);
        assert_int_equal(proto_u64_at(v.destinations, 0), 0x0b);
        assert_int_equal(proto_u64_at(v.handles, 0), 0x0102030405060708);
        assert_memory_equal(v.payload, "hi", 2);
}

static void test_reply_send(void **state) {
        Samples S;
        const Sample *s;
        ProtoReplySend v;
        uint8_t *b;

        samples_build(&S);
        s = &S.s[S_REPLY_SEND];
        assert_int_equal(proto_decode_reply_send(&v, s->buf, s->len, 0), 0);
        assert_int_equal(v.n_errors, 3);
        assert_int_equal(proto_u64_at(v.errors, 1), EHOSTUNREACH);
        assert_int_equal(proto_u64_at(v.errors, 2), EXFULL);
        /* each entry within the errno range */
        assert_int_equal(decode_with64(s, 32, PROTO_ERRNO_MAX), 0);
        assert_int_equal(decode_with64(s, 40, PROTO_ERRNO_MAX + 1), -EINVAL);
        assert_int_equal(decode_with64(s, 48, UINT64_MAX), -EINVAL);
        assert_int_equal(decode_with64(s, 48, (uint64_t)ENXIO << 32), -EINVAL);
        /* count against size and limit */
        assert_int_equal(decode_with64(s, 24, 2), -EBADMSG);
        assert_int_equal(decode_with64(s, 24, 4), -EBADMSG);
        assert_int_equal(decode_with64(s, 24, PROTO_DESTINATIONS_MAX + 1), -EMSGSIZE);
        assert_int_equal(decode_with64(s, 24, UINT64_MAX), -EMSGSIZE);
        assert_int_equal(decode_with64(s, 24, (uint64_t)1 << 61), -EMSGSIZE);
        /* an error reply has no body */
        b = sample_dup(&S.s[S_REPLY_SEND_EMPTY], 0);
        put32(b, 16, EINVAL);
        assert_int_equal(decode_kind(KIND_REPLY_SEND, b, 32, 0), -EBADMSG);
        free(b);
        samples_free(&S);
}

static void test_reply_errors(void **state) {
        static const int kinds[] = { S_REPLY, S_REPLY_HELLO, S_REPLY_PEER_QUERY,
                                     S_REPLY_HANDLE_TRANSFER, S_REPLY_SEND,
                                     S_REPLY_RECV };
        ProtoReplyRecv recv_reply;
        ProtoReplyHello hello;
        Samples S;
        size_t i;
        uint8_t *b;

        samples_build(&S);
        for (i = 0; i < ARRAY_SIZE(kinds); ++i) {
                const Sample *s = &S.s[kinds[i]];

                assert_int_equal(decode_with32(s, 16, PROTO_ERRNO_MAX + 1), -EINVAL);
                assert_int_equal(decode_with32(s, 16, UINT32_MAX), -EINVAL);
                /* an error with the success body attached */
                if (s->len > 24)
                        assert_int_equal(decode_with32(s, 16, ENXIO), -EBADMSG);
                /* the bare error reply decodes as every reply kind, without fds */
                b = sample_dup(&S.s[S_REPLY_ERROR], 0);
                assert_int_equal(decode_kind(s->kind, b, 24, 0), 0);
                assert_int_equal(decode_kind(s->kind, b, 24, 1), -EBADMSG);
                /* and error 0 without a body is a success reply only where none is due */
                put32(b, 16, 0);
                assert_int_equal(decode_kind(s->kind, b, 24, 0),
                                 s->kind == KIND_REPLY ? 0 : -EBADMSG);
                free(b);
        }
        assert_int_equal(proto_decode_reply_hello(&hello, S.s[S_REPLY_HELLO_ERROR].buf, 24, 0),
                         0);
        assert_int_equal(hello.error, EPROTONOSUPPORT);
        assert_int_equal(hello.cookie, 23);
        assert_int_equal(hello.peer_id, 0);
        assert_int_equal(hello.pool_size, 0);
        assert_int_equal(proto_decode_reply_recv(&recv_reply, S.s[S_REPLY_RECV_ERROR].buf, 24, 0),
                         0);
        assert_int_equal(recv_reply.error, EAGAIN);
        assert_int_equal(recv_reply.entry.msg.type, 0);
        samples_free(&S);
}

static void test_reply_hello(void **state) {
        Samples S;
        const Sample *s;
        ProtoReplyHello v;

        samples_build(&S);
        s = &S.s[S_REPLY_HELLO];
        assert_int_equal(proto_decode_reply_hello(&v, s->buf, s->len, 2), 0);
        assert_int_equal(v.peer_id, 77);
        assert_int_equal(v.pool_size, 1 << 24);
        assert_int_equal(v.version, 1);
        assert_int_equal(decode_with32(s, 40, 0), -EPROTONOSUPPORT);
        assert_int_equal(decode_with32(s, 40, 2), -EPROTONOSUPPORT);
        assert_int_equal(decode_with64(s, 32, 0), -EINVAL);
        assert_int_equal(decode_with64(s, 32, (uint64_t)INT64_MAX + 1), -EINVAL);
        assert_int_equal(decode_with64(s, 32, 1), 0);
        /* the pool fd and the ring fd are mandatory on success */
        assert_int_equal(decode_kind(KIND_REPLY_HELLO, s->buf, s->len, 0), -EBADMSG);
        assert_int_equal(decode_kind(KIND_REPLY_HELLO, s->buf, s->len, 1), -EBADMSG);
        assert_int_equal(decode_kind(KIND_REPLY_HELLO, s->buf, s->len, 3), -EBADMSG);
        samples_free(&S);
}

/* the fields of a notification are fixed; each deviation is refused */
static void test_entry_notification(void **state) {
        static const struct {
                size_t offset;
                int width;
                uint64_t value;
        } cases[] = {
                { 48, 4, 0 },                   /* uid */
                { 52, 4, 1000 },                /* gid */
                { 56, 4, 1 },                   /* pid */
                { 60, 4, 1 },                   /* tid */
                { 64, 8, 0 },                   /* offset */
                { 64, 8, 4096 },
                { 72, 8, 1 },                   /* n_bytes */
                { 80, 8, 1 },                   /* n_handles */
                { 88, 8, 1 },                   /* n_fds */
                { 96, 8, 1 },                   /* n_secctx */
                { 32, 8, BUS1_MSG_FLAG_HAS_SECCTX },
        };
        Samples S;
        size_t i;
        int j;

        samples_build(&S);
        for (j = S_ENTRY_DESTROY; j <= S_ENTRY_RELEASE; ++j) {
                for (i = 0; i < ARRAY_SIZE(cases); ++i) {
                        const Sample *s = &S.s[j];
                        int r = cases[i].width == 4 ?
                                decode_with32(s, cases[i].offset, (uint32_t)cases[i].value) :
                                decode_with64(s, cases[i].offset, cases[i].value);

                        /* an n_fds of 1 also disagrees with the 0 fds attached */
                        assert_true(r == -EINVAL);
                }
        }
        samples_free(&S);
}

static void test_entry_data(void **state) {
        Samples S;
        const Sample *s;
        ProtoEntry v;
        uint64_t type;

        samples_build(&S);
        s = &S.s[S_ENTRY_DATA];
        assert_int_equal(proto_decode_entry(&v, s->buf, s->len, 0), 0);
        assert_int_equal(v.entry_id, 6);
        assert_memory_equal(&v.msg, &msg_data, sizeof(v.msg));

        assert_int_equal(decode_with64(s, 16, 0), -EINVAL);           /* entry_id */
        assert_int_equal(decode_with64(s, 16, UINT64_MAX), 0);
        for (type = 4; type < 70; ++type)
                assert_int_equal(decode_with64(s, 24, type), -EINVAL);
        assert_int_equal(decode_with64(s, 24, 0), -EINVAL);
        assert_int_equal(decode_with64(s, 24, UINT64_MAX), -EINVAL);
        /* offset: aligned, within PROTO_OFFSET_MAX */
        assert_int_equal(decode_with64(s, 64, 4097), -EINVAL);
        assert_int_equal(decode_with64(s, 64, 4100), -EINVAL);
        assert_int_equal(decode_with64(s, 64, 0), 0);
        assert_int_equal(decode_with64(s, 64, (uint64_t)INT64_MAX - 7), 0);
        assert_int_equal(decode_with64(s, 64, (uint64_t)INT64_MAX + 1), -EINVAL);
        assert_int_equal(decode_with64(s, 64, BUS1_OFFSET_INVALID), -EINVAL);
        /* counts */
        assert_int_equal(decode_with64(s, 72, PROTO_BYTES_MAX), 0);
        assert_int_equal(decode_with64(s, 72, PROTO_BYTES_MAX + 1), -EMSGSIZE);
        assert_int_equal(decode_with64(s, 72, UINT64_MAX), -EMSGSIZE);
        assert_int_equal(decode_with64(s, 80, PROTO_HANDLES_MAX), 0);
        assert_int_equal(decode_with64(s, 80, PROTO_HANDLES_MAX + 1), -EMSGSIZE);
        assert_int_equal(decode_with64(s, 88, BUS1_FD_MAX + 1), -EMSGSIZE);
        assert_int_equal(decode_with64(s, 88, UINT64_MAX), -EMSGSIZE);
        assert_int_equal(decode_with64(s, 96, PROTO_SECCTX_MAX), 0);
        assert_int_equal(decode_with64(s, 96, PROTO_SECCTX_MAX + 1), -EMSGSIZE);
        /* the same entry in a RECV reply, 8 bytes further */
        s = &S.s[S_REPLY_RECV];
        assert_int_equal(decode_with64(s, 24, 0), 0);                  /* the seed */
        assert_int_equal(decode_with64(s, 32, 4), -EINVAL);
        assert_int_equal(decode_with64(s, 72, 12), -EINVAL);
        assert_int_equal(decode_with64(s, 96, 257), -EMSGSIZE);
        samples_free(&S);
}

/* SYNC may come with a pushed entry only; the RECV reply has dequeued it already */
static void test_entry_sync(void **state) {
        Samples S;
        const Sample *s;
        ProtoEntry v;
        ProtoReplyRecv reply;
        uint64_t flags;

        samples_build(&S);
        s = &S.s[S_ENTRY_SYNC];
        assert_int_equal(proto_decode_entry(&v, s->buf, s->len, 0), 0);
        assert_int_equal(v.entry_id, 9);
        assert_int_equal(v.msg.flags, BUS1_MSG_FLAG_CONTINUE | PROTO_MSG_FLAG_SYNC);
        assert_int_equal(get64(s->buf, 32), BUS1_MSG_FLAG_CONTINUE | (1ULL << 63));
        /* SYNC does not relax anything else */
        assert_int_equal(decode_with64(s, 32, (1ULL << 63) | (1ULL << 62)), -EINVAL);
        assert_int_equal(decode_with64(s, 16, 0), -EINVAL);
        /* notifications may carry it too */
        assert_int_equal(decode_with64(&S.s[S_ENTRY_DESTROY], 32, 1ULL << 63), 0);
        assert_int_equal(decode_with64(&S.s[S_ENTRY_RELEASE], 32,
                                       BUS1_MSG_FLAG_CONTINUE | (1ULL << 63)), 0);

        /* the same entry as a RECV reply: refused with every other flag combination */
        s = &S.s[S_REPLY_RECV];
        for (flags = 0; flags < 4; ++flags) {
                assert_int_equal(decode_with64(s, 40, flags), 0);
                assert_int_equal(decode_with64(s, 40, flags | (1ULL << 63)), -EINVAL);
        }
        assert_int_equal(proto_decode_reply_recv(&reply, s->buf, s->len, 1), 0);
        assert_int_equal(reply.entry.msg.flags & PROTO_MSG_FLAG_SYNC, 0);
        samples_free(&S);
}

static void test_retract(void **state) {
        Samples S;
        const Sample *s;
        ProtoRetract v;
        uint8_t *b;

        samples_build(&S);
        s = &S.s[S_RETRACT];
        assert_int_equal(s->len, 32);
        assert_int_equal(proto_decode_retract(&v, s->buf, 32, 0), 0);
        assert_int_equal(v.entry_id, 7);
        assert_int_equal(v.flags, 0);
        assert_int_equal(decode_with64(s, 16, 0), -EINVAL);
        assert_int_equal(decode_with64(s, 16, UINT64_MAX), 0);
        s = &S.s[S_RETRACT_CONTINUES];
        assert_int_equal(proto_decode_retract(&v, s->buf, 32, 0), 0);
        assert_int_equal(v.entry_id, 10);
        assert_int_equal(v.flags, PROTO_RETRACT_FLAG_PREV_CONTINUES);
        assert_int_equal(get64(s->buf, 24), 1);
        assert_int_equal(decode_with64(s, 24, 0), 0);
        assert_int_equal(decode_with64(s, 24, 3), -EINVAL);
        assert_int_equal(decode_with64(s, 24, UINT64_MAX), -EINVAL);
        /* unknown flags and entry_id 0 together: still an answerable -EINVAL */
        b = sample_dup(s, 0);
        put64(b, 16, 0);
        put64(b, 24, 2);
        assert_int_equal(decode_kind(KIND_RETRACT, b, 32, 0), -EINVAL);
        free(b);
        /* the version-1 layout without flags is too short now */
        assert_int_equal(decode_resized(s, 24), -EBADMSG);
        samples_free(&S);
}

static void test_resync(void **state) {
        static const uint8_t golden[] = {
                /* header: size 16, version 1, type 0x8005, cookie 0 */
                0x10, 0, 0, 0, 1, 0, 0x05, 0x80, 0, 0, 0, 0, 0, 0, 0, 0,
        };
        uint8_t b[24] = {};

        assert_int_equal(decode_kind(KIND_RESYNC, golden, sizeof(golden), 0), 0);
        assert_int_equal(proto_decode_resync(golden, sizeof(golden), 0), 0);
        assert_int_equal(proto_decode_resync(golden, sizeof(golden), 1), -EBADMSG);
        /* a WAKE is no RESYNC, nor the other way round */
        assert_int_equal(proto_decode_wake(golden, sizeof(golden), 0), -EBADMSG);
        /* no body allowed */
        memcpy(b, golden, sizeof(golden));
        put32(b, 0, 24);
        assert_int_equal(decode_kind(KIND_RESYNC, b, 24, 0), -EBADMSG);
        /* a cookie is a framing error: nobody answers a RESYNC */
        memcpy(b, golden, sizeof(golden));
        put64(b, 8, 1);
        assert_int_equal(decode_kind(KIND_RESYNC, b, 16, 0), -EBADMSG);
}

static void test_ack(void **state) {
        static const uint8_t golden[] = {
                /* header: size 24, version 1, type 0x0003, cookie 0 */
                0x18, 0, 0, 0, 1, 0, 0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
                /* entry_id 0x0102030405 */
                0x05, 0x04, 0x03, 0x02, 0x01, 0, 0, 0,
        };
        Samples S;
        const Sample *s;
        ProtoAck v;
        ProtoHeader hdr;
        int r;

        assert_int_equal(decode_kind(KIND_ACK, golden, sizeof(golden), 0), 0);
        assert_int_equal(proto_decode_ack(&v, golden, sizeof(golden), 0), 0);
        assert_int_equal(v.entry_id, 0x0102030405);

        samples_build(&S);
        s = &S.s[S_ACK];
        assert_memory_equal(s->buf, golden, sizeof(golden));
        assert_int_equal(decode_with64(s, 16, 1), 0);
        assert_int_equal(decode_with64(s, 16, UINT64_MAX), 0);
        /* nobody answers an ACK, so even its argument error is fatal */
        r = decode_with64(s, 16, 0);
        assert_int_equal(r, -EBADMSG);
        assert_true(proto_error_is_fatal(r));
        assert_int_equal(decode_with64(s, 8, 1), -EBADMSG);
        assert_int_equal(decode_with64(s, 8, UINT64_MAX), -EBADMSG);
        assert_int_equal(decode_kind(KIND_ACK, s->buf, s->len, 1), -EBADMSG);
        /* still a request type the broker dispatches on */
        assert_int_equal(proto_decode_header(&hdr, s->buf, s->len), 0);
        assert_int_equal(proto_check_request_type(hdr.type), 0);
        samples_free(&S);
}

/* a SLICE_FDS with @n_fds in the count field, @n_numbers le32 numbers and @n_pad padding bytes */
static int decode_slice_fds(uint32_t n_fds, const int32_t *numbers, size_t n_numbers,
                            size_t n_pad, size_t n_attached) {
        size_t len = 32 + n_numbers * 4 + n_pad, i;
        uint8_t *b = calloc(1, len ? len : 1);
        int r;

        assert_non_null(b);
        put32(b, 0, (uint32_t)len);
        put16(b, 4, 1);
        put16(b, 6, PROTO_TYPE_SLICE_FDS);
        put64(b, 8, 77);
        put64(b, 16, 4096);
        put32(b, 24, n_fds);
        for (i = 0; i < n_numbers; ++i)
                put32(b, 32 + i * 4, (uint32_t)(numbers ? numbers[i] : (int32_t)i));
        r = decode_kind(KIND_SLICE_FDS, b, len, n_attached);
        free(b);
        return r;
}

static void test_slice_fds_counts(void **state) {
        /* exactly sized, padded to 8 where the count is odd */
        assert_int_equal(decode_slice_fds(1, NULL, 1, 4, 0), 0);
        assert_int_equal(decode_slice_fds(2, NULL, 2, 0, 0), 0);
        assert_int_equal(decode_slice_fds(3, NULL, 3, 4, 0), 0);
        assert_int_equal(decode_slice_fds(BUS1_FD_MAX, NULL, BUS1_FD_MAX, 0, 0), 0);
        assert_int_equal(decode_slice_fds(BUS1_FD_MAX - 1, NULL, BUS1_FD_MAX - 1, 4, 0), 0);

        /* a count of 0: the client could not install the fds (the entry stays queued) */
        assert_int_equal(decode_slice_fds(0, NULL, 0, 0, 0), 0);
        /* counts above BUS1_FD_MAX, each with a size that would match: answered */
        assert_int_equal(decode_slice_fds(BUS1_FD_MAX + 1, NULL, BUS1_FD_MAX + 1, 4, 0),
                         -EINVAL);
        assert_int_equal(decode_slice_fds(BUS1_FD_MAX + 2, NULL, BUS1_FD_MAX + 2, 0, 0),
                         -EINVAL);
        /* counts whose size overflows: refused by the limit, never read */
        assert_int_equal(decode_slice_fds(UINT32_MAX, NULL, 1, 4, 0), -EINVAL);
        assert_int_equal(decode_slice_fds(0x40000000, NULL, 0, 0, 0), -EINVAL);
        assert_int_equal(decode_slice_fds(0, NULL, 1, 4, 0), -EBADMSG);
        assert_int_equal(decode_slice_fds(0x80000000, NULL, 2, 0, 0), -EINVAL);

        /* count and size disagree: framing */
        assert_int_equal(decode_slice_fds(3, NULL, 2, 0, 0), -EBADMSG);
        assert_int_equal(decode_slice_fds(2, NULL, 3, 4, 0), -EBADMSG);
        assert_int_equal(decode_slice_fds(1, NULL, 1, 12, 0), -EBADMSG);
        assert_int_equal(decode_slice_fds(1, NULL, 0, 0, 0), -EBADMSG);
        assert_int_equal(decode_slice_fds(BUS1_FD_MAX, NULL, 2, 0, 0), -EBADMSG);
        /* trailing bytes: a whole le64 more */
        assert_int_equal(decode_slice_fds(2, NULL, 2, 8, 0), -EBADMSG);
        assert_int_equal(decode_slice_fds(BUS1_FD_MAX, NULL, BUS1_FD_MAX, 8, 0), -EBADMSG);

        /* the record carries numbers, never fds */
        assert_int_equal(decode_slice_fds(1, NULL, 1, 4, 1), -EBADMSG);
        assert_int_equal(decode_slice_fds(2, NULL, 2, 0, 2), -EBADMSG);
}

static void test_slice_fds_numbers(void **state) {
        static const int32_t good[] = { 0, 1, 2, INT32_MAX };
        static const int32_t bad[] = { -1, -2, INT32_MIN, -100 };
        int32_t numbers[BUS1_FD_MAX];
        size_t i, j;

        assert_int_equal(decode_slice_fds(4, good, 4, 0, 0), 0);
        /* any negative number, at any position */
        for (i = 0; i < ARRAY_SIZE(bad); ++i) {
                for (j = 0; j < 4; ++j) {
                        int32_t v[4];

                        memcpy(v, good, sizeof(v));
                        v[j] = bad[i];
                        assert_int_equal(decode_slice_fds(4, v, 4, 0, 0), -EINVAL);
                        assert_int_equal(decode_slice_fds((uint32_t)j + 1, v, j + 1,
                                                          (j + 1) % 2 ? 4 : 0, 0), -EINVAL);
                }
        }
        /* the last of BUS1_FD_MAX is looked at too */
        for (i = 0; i < BUS1_FD_MAX; ++i)
                numbers[i] = (int32_t)i + 3;
        assert_int_equal(decode_slice_fds(BUS1_FD_MAX, numbers, BUS1_FD_MAX, 0, 0), 0);
        numbers[BUS1_FD_MAX - 1] = -1;
        assert_int_equal(decode_slice_fds(BUS1_FD_MAX, numbers, BUS1_FD_MAX, 0, 0), -EINVAL);
        /* numbers are read only once the size is right */
        assert_int_equal(decode_slice_fds(5, bad, 4, 0, 0), -EBADMSG);
}

/* the padding after an odd count is zero, byte by byte; checked after the numbers */
static void test_slice_fds_padding(void **state) {
        Samples S;
        const Sample *s;
        size_t i;
        uint8_t *b;

        samples_build(&S);
        s = &S.s[S_SLICE_FDS];
        /* 32 + 3 * 4 = 44, padded to 48 */
        assert_int_equal(s->len, 48);
        for (i = 44; i < 48; ++i) {
                b = sample_dup(s, 0);
                b[i] = 0x01;
                assert_int_equal(decode_kind(s->kind, b, s->len, s->n_fds), -EBADMSG);
                /* a negative number is answered before the padding is looked at */
                put32(b, 32, UINT32_MAX);
                assert_int_equal(decode_kind(s->kind, b, s->len, s->n_fds), -EINVAL);
                free(b);
        }
        s = &S.s[S_SLICE_FDS_ONE];
        assert_int_equal(s->len, 40);
        for (i = 36; i < 40; ++i) {
                b = sample_dup(s, 0);
                b[i] = 0x80;
                assert_int_equal(decode_kind(s->kind, b, s->len, s->n_fds), -EBADMSG);
                free(b);
        }
        /* with an even count the same bytes are a number */
        s = &S.s[S_SLICE_FDS_TWO];
        assert_int_equal(s->len, 40);
        assert_int_equal(decode_with32(s, 36, 1), 0);
        assert_int_equal(decode_with32(s, 36, 0x80000000), -EINVAL);
        samples_free(&S);
}

static void test_slice_fds_output(void **state) {
        static const uint8_t golden[] = {
                /* header: size 48, version 1, type 0x0131, cookie 0x42 */
                0x30, 0, 0, 0, 1, 0, 0x31, 0x01, 0x42, 0, 0, 0, 0, 0, 0, 0,
                /* offset 0x2000 */
                0, 0x20, 0, 0, 0, 0, 0, 0,
                /* n_fds 3, reserved */
                3, 0, 0, 0, 0, 0, 0, 0,
                /* fds 7, 0, 0x7fffffff, padding */
                7, 0, 0, 0, 0, 0, 0, 0,
                0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0,
        };
        ProtoSliceFds v;

        assert_int_equal(decode_kind(KIND_SLICE_FDS, golden, sizeof(golden), 0), 0);
        assert_int_equal(proto_decode_slice_fds(&v, golden, sizeof(golden), 0), 0);
        assert_int_equal(v.cookie, 0x42);
        assert_int_equal(v.offset, 0x2000);
        assert_int_equal(v.n_fds, 3);
        assert_ptr_equal(v.fds, golden + 32);
        assert_int_equal(proto_s32_at(v.fds, 0), 7);
        assert_int_equal(proto_s32_at(v.fds, 1), 0);
        assert_int_equal(proto_s32_at(v.fds, 2), INT32_MAX);
        assert_int_equal(proto_u32_at(v.fds, 2), 0x7fffffff);
        assert_int_equal(proto_u32_at(golden, 0), 48);
}

/* any offset is well formed; whether it is the last RECV's is the broker's question */
static void test_slice_fds_offset(void **state) {
        static const uint64_t offsets[] = { 0, 3, 4096, (uint64_t)INT64_MAX + 1,
                                            BUS1_OFFSET_INVALID };
        Samples S;
        size_t i;

        samples_build(&S);
        for (i = 0; i < ARRAY_SIZE(offsets); ++i)
                assert_int_equal(decode_with64(&S.s[S_SLICE_FDS], 16, offsets[i]), 0);
        samples_free(&S);
}

/* a record decoded from an unaligned buffer, every kind */
static void test_unaligned(void **state) {
        Samples S;
        uint8_t *b;
        size_t i, shift;

        samples_build(&S);
        for (i = 0; i < _S_N; ++i) {
                for (shift = 1; shift < 8; ++shift) {
                        b = malloc(S.s[i].len + shift);
                        assert_non_null(b);
                        memcpy(b + shift, S.s[i].buf, S.s[i].len);
                        assert_int_equal(check_kind(S.s[i].kind, b + shift, S.s[i].len,
                                                    S.s[i].n_fds), 0);
                        free(b);
                }
        }
        samples_free(&S);
}

/*
 * Every byte of every sample, set to a few values: the decoder returns one
 * of the documented errnos or succeeds, and decode_kind() then proves the
 * accepted record is exactly what the encoder makes of the decoded values.
 */
static void test_every_byte(void **state) {
        static const uint8_t xors[] = { 0x01, 0x02, 0x10, 0x80, 0xff };
        size_t i, pos, k, n_accepted = 0, n_refused = 0;
        Samples S;
        uint8_t *b;
        int r;

        samples_build(&S);
        for (i = 0; i < _S_N; ++i) {
                const Sample *s = &S.s[i];

                for (pos = 0; pos < s->len; ++pos) {
                        for (k = 0; k < ARRAY_SIZE(xors); ++k) {
                                b = sample_dup(s, 0);
                                b[pos] ^= xors[k];
                                r = decode_kind(s->kind, b, s->len, s->n_fds);
                                assert_true(r == 0 || r == -EBADMSG || r == -EINVAL ||
                                            r == -EMSGSIZE || r == -EPROTONOSUPPORT);
                                n_accepted += r == 0;
                                n_refused += r < 0;
                                free(b);
                        }
                }
        }
        /* cookies, IDs and payload bytes are free; everything else is not */
        assert_true(n_accepted > 0);
        assert_true(n_refused > n_accepted);
        samples_free(&S);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_samples_valid),
                cmocka_unit_test(test_header),
                cmocka_unit_test(test_size_mismatch),
                cmocka_unit_test(test_size_field),
                cmocka_unit_test(test_version),
                cmocka_unit_test(test_wrong_type),
                cmocka_unit_test(test_request_type),
                cmocka_unit_test(test_flag_bits),
                cmocka_unit_test(test_reserved),
                cmocka_unit_test(test_send_padding),
                cmocka_unit_test(test_fd_count),
                cmocka_unit_test(test_fds_carrier),
                cmocka_unit_test(test_hello_versions),
                cmocka_unit_test(test_peer_reset_limits),
                cmocka_unit_test(test_handle_transfer_mode),
                cmocka_unit_test(test_nodes_destroy_counts),
                cmocka_unit_test(test_send_counts),
                cmocka_unit_test(test_send_overflow),
                cmocka_unit_test(test_send_arguments),
                cmocka_unit_test(test_send_output),
                cmocka_unit_test(test_reply_send),
                cmocka_unit_test(test_reply_errors),
                cmocka_unit_test(test_reply_hello),
                cmocka_unit_test(test_entry_notification),
                cmocka_unit_test(test_entry_data),
                cmocka_unit_test(test_entry_sync),
                cmocka_unit_test(test_retract),
                cmocka_unit_test(test_resync),
                cmocka_unit_test(test_ack),
                cmocka_unit_test(test_slice_fds_counts),
                cmocka_unit_test(test_slice_fds_numbers),
                cmocka_unit_test(test_slice_fds_padding),
                cmocka_unit_test(test_slice_fds_output),
                cmocka_unit_test(test_slice_fds_offset),
                cmocka_unit_test(test_unaligned),
                cmocka_unit_test(test_every_byte),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
