/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz decode: a libFuzzer target over every wire decoder of src/proto
 *
 * Input: byte 0 says how many fds come with the packet (its low 7 bits:
 * 0-122 as they are, 123-127 for 253, 254, 256, 257 and SIZE_MAX) and
 * whether the packet sits at an odd address (bit 7); the rest is the
 * packet. The packet is copied into a heap buffer that ends
 * exactly where the packet ends, so ASan reports any read past it.
 *
 * Every decoder runs on the packet, whatever its type, and must keep the
 * promises of proto.h and decode.c; anything else aborts:
 *  - the result is 0 or a negative errno the decoder documents, and FDS,
 *    ACK, WAKE and RESYNC know no error but -EBADMSG;
 *  - a failed decode leaves the output untouched;
 *  - a decoder accepts only its own record type;
 *  - an error other than -EBADMSG implies that proto_decode_header()
 *    succeeds, since the broker answers it with the header's cookie;
 *  - a record accepted with n fds is refused (-EBADMSG) with n - 1 and
 *    n + 1: every record accounts for an exact number of fds, except that
 *    a RECV reply may come with none (the reply to a PEEK);
 *  - the matching encoder, given the decoded form, writes the packet again
 *    byte for byte (every byte was checked, so the encoding is canonical),
 *    and the decoder accepts that copy again;
 *  - an error REPLY decodes with every body field 0.
 * proto_check_request_type() must agree with the decoders of requests.
 *
 * Then the same bytes are read as the arguments of every encoder
 * (fuzz_encode_all()): an encoder fails with an errno it documents and
 * leaves the buffer untouched, or writes a record that its decoder accepts
 * with the fds the record accounts for, and that encodes back the same.
 * Finally the size helpers of size.c get counts from the input and must
 * answer a size within the record limit, a multiple of 8, or -EMSGSIZE.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz/fuzz.h"
#include "proto/proto.h"
#include "util/macro.h"

/* errnos a function may return, besides -EBADMSG for decoders */
enum {
        ERR_INVAL               = 1 << 0,
        ERR_MSGSIZE             = 1 << 1,
        ERR_PROTONOSUPPORT      = 1 << 2,
        ERR_FAULT               = 1 << 3,
};

/* output buffers: big enough for any record, and a sentinel area for untouched checks */
#define FUZZ_OUT_SIZE           PROTO_RECORD_MAX
#define FUZZ_SENTINEL_SIZE      512
#define FUZZ_POISON             0xa5

/* arrays the encoder pass points into: IDs, fd numbers and a payload of any legal size */
#define FUZZ_ARENA_SIZE         (2 * PROTO_RECORD_MAX)

typedef struct Codec {
        const char *name;
        uint16_t type;          /* record type it decodes (FDS also takes PUSH_FDS) */
        size_t size;            /* size of the decoded struct */
        unsigned int errors;    /* decode errnos besides -EBADMSG */
        unsigned int enc_errors; /* encode errnos */
        int (*decode)(void *out, const void *buf, size_t len, size_t n_fds);
        int (*encode)(void *buf, size_t cap, const void *in);
        size_t (*n_fds)(const void *in);        /* fds the record accounts for */
        bool or_no_fds;         /* accepted with none too (a RECV reply to a PEEK) */
        void (*fix)(void *in, const uint8_t *arena);    /* point arrays at the arena */
        bool (*error_has_no_body)(const void *in);      /* replies: error means no body */
} Codec;

static uint8_t fuzz_out[FUZZ_OUT_SIZE];
static uint8_t fuzz_out2[FUZZ_OUT_SIZE];

static bool fuzz_errno_allowed(int r, unsigned int errors) {
        switch (r) {
        case -EINVAL:
                return errors & ERR_INVAL;
        case -EMSGSIZE:
                return errors & ERR_MSGSIZE;
        case -EPROTONOSUPPORT:
                return errors & ERR_PROTONOSUPPORT;
        case -EFAULT:
                return errors & ERR_FAULT;
        default:
                return false;
        }
}

/* le64 array -> a fresh host array of @n entries (at least one, so never NULL) */
static uint64_t *fuzz_u64s(const void *le, size_t n) {
        uint64_t *v = calloc(n ?: 1, sizeof(*v));

        if (!v)
                fuzz_fail("out of memory");
        for (size_t i = 0; i < n; ++i)
                v[i] = proto_u64_at(le, i);
        return v;
}

/* decoders with one signature */

static int decode_hello(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_hello(out, buf, len, n_fds);
}

static int decode_fds(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_fds(out, buf, len, n_fds);
}

static int decode_ack(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_ack(out, buf, len, n_fds);
}

static int decode_peer_disconnect(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_peer_disconnect(out, buf, len, n_fds);
}

static int decode_peer_query(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_peer_query(out, buf, len, n_fds);
}

static int decode_peer_reset(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_peer_reset(out, buf, len, n_fds);
}

static int decode_handle_release(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_handle_release(out, buf, len, n_fds);
}

static int decode_handle_transfer(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_handle_transfer(out, buf, len, n_fds);
}

static int decode_nodes_destroy(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_nodes_destroy(out, buf, len, n_fds);
}

static int decode_slice_release(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_slice_release(out, buf, len, n_fds);
}

static int decode_slice_fds(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_slice_fds(out, buf, len, n_fds);
}

static int decode_send(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_send(out, buf, len, n_fds);
}

static int decode_recv(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_recv(out, buf, len, n_fds);
}

static int decode_reply(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_reply(out, buf, len, n_fds);
}

static int decode_reply_hello(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_reply_hello(out, buf, len, n_fds);
}

static int decode_reply_peer_query(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_reply_peer_query(out, buf, len, n_fds);
}

static int decode_reply_handle_transfer(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_reply_handle_transfer(out, buf, len, n_fds);
}

static int decode_reply_send(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_reply_send(out, buf, len, n_fds);
}

static int decode_reply_recv(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_reply_recv(out, buf, len, n_fds);
}

static int decode_entry(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_entry(out, buf, len, n_fds);
}

static int decode_retract(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_retract(out, buf, len, n_fds);
}

static int decode_wake(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_wake(buf, len, n_fds);
}

static int decode_resync(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_resync(buf, len, n_fds);
}

static int decode_ctl(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_ctl(out, buf, len, n_fds);
}

static int decode_ctl_monitor(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_ctl_monitor(out, buf, len, n_fds);
}

static int decode_reply_ctl(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_reply_ctl(out, buf, len, n_fds);
}

static int decode_ctl_data(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_ctl_data(out, buf, len, n_fds);
}

static int decode_events(void *out, const void *buf, size_t len, size_t n_fds) {
        return proto_decode_events(out, buf, len, n_fds);
}

/* encoders taking the decoded form */

static int encode_hello(void *buf, size_t cap, const void *in) {
        return proto_encode_hello(buf, cap, in);
}

static int encode_fds(void *buf, size_t cap, const void *in) {
        return proto_encode_fds(buf, cap, in);
}

static int encode_ack(void *buf, size_t cap, const void *in) {
        return proto_encode_ack(buf, cap, in);
}

static int encode_peer_disconnect(void *buf, size_t cap, const void *in) {
        return proto_encode_peer_disconnect(buf, cap, in);
}

static int encode_peer_query(void *buf, size_t cap, const void *in) {
        return proto_encode_peer_query(buf, cap, in);
}

static int encode_peer_reset(void *buf, size_t cap, const void *in) {
        return proto_encode_peer_reset(buf, cap, in);
}

static int encode_handle_release(void *buf, size_t cap, const void *in) {
        return proto_encode_handle_release(buf, cap, in);
}

static int encode_handle_transfer(void *buf, size_t cap, const void *in) {
        return proto_encode_handle_transfer(buf, cap, in);
}

static int encode_nodes_destroy(void *buf, size_t cap, const void *in) {
        const ProtoNodesDestroy *v = in;
        /* more than the limit is refused before the IDs are read; EFAULT carries none */
        uint64_t n_ids = proto_nodes_destroy_n_ids(v->flags, v->n_nodes);
        size_t n = n_ids > PROTO_NODES_MAX ? PROTO_NODES_MAX : (size_t)n_ids;
        uint64_t *ids = fuzz_u64s(v->ids, v->ids ? n : 0);
        int r;

        r = proto_encode_nodes_destroy(buf, cap, v->cookie, v->flags, ids, (size_t)v->n_nodes);
        free(ids);
        return r;
}

static int encode_slice_release(void *buf, size_t cap, const void *in) {
        return proto_encode_slice_release(buf, cap, in);
}

static int encode_slice_fds(void *buf, size_t cap, const void *in) {
        const ProtoSliceFds *v = in;
        size_t n = v->n_fds > PROTO_FDS_MAX ? PROTO_FDS_MAX : v->n_fds;
        int *fds = calloc(n ?: 1, sizeof(*fds));
        int r;

        if (!fds)
                fuzz_fail("out of memory");
        for (size_t i = 0; i < n; ++i)
                fds[i] = proto_s32_at(v->fds, i);
        r = proto_encode_slice_fds(buf, cap, v->cookie, v->offset, fds, v->n_fds);
        free(fds);
        return r;
}

static int encode_send(void *buf, size_t cap, const void *in) {
        const ProtoSend *v = in;
        uint32_t n_ids = proto_send_n_destination_ids(v->flags, v->n_destinations);
        size_t n_dst = !v->destinations ? 0
                       : n_ids > PROTO_DESTINATIONS_MAX ? PROTO_DESTINATIONS_MAX : n_ids;
        size_t n_handles = v->n_handles > PROTO_HANDLES_MAX ? PROTO_HANDLES_MAX : v->n_handles;
        uint64_t *dst = fuzz_u64s(v->destinations, n_dst);
        uint64_t *handles = fuzz_u64s(v->handles, n_handles);
        struct iovec vec = { .iov_base = (void *)v->payload, .iov_len = (size_t)v->n_bytes };
        ProtoSendArgs args = {
                .cookie = v->cookie,
                .flags = v->flags,
                .destinations = dst,
                .n_destinations = v->n_destinations,
                .handles = handles,
                .n_handles = v->n_handles,
                .n_fds = v->n_fds,
                .payload_mode = v->payload_mode,
                .vecs = &vec,
                .n_vecs = v->payload_mode == PROTO_PAYLOAD_INLINE ? 1 : 0,
                .n_bytes = v->n_bytes,
                .memfd_offset = v->memfd_offset,
        };
        int r;

        r = proto_encode_send(buf, cap, &args);
        free(handles);
        free(dst);
        return r;
}

static int encode_recv(void *buf, size_t cap, const void *in) {
        return proto_encode_recv(buf, cap, in);
}

static int encode_reply(void *buf, size_t cap, const void *in) {
        return proto_encode_reply(buf, cap, in);
}

static int encode_reply_hello(void *buf, size_t cap, const void *in) {
        return proto_encode_reply_hello(buf, cap, in);
}

static int encode_reply_peer_query(void *buf, size_t cap, const void *in) {
        return proto_encode_reply_peer_query(buf, cap, in);
}

static int encode_reply_handle_transfer(void *buf, size_t cap, const void *in) {
        return proto_encode_reply_handle_transfer(buf, cap, in);
}

static int encode_reply_send(void *buf, size_t cap, const void *in) {
        const ProtoReplySend *v = in;
        size_t n = v->n_errors > PROTO_DESTINATIONS_MAX ? PROTO_DESTINATIONS_MAX
                                                        : (size_t)v->n_errors;
        uint64_t *errors;
        int r;

        /* an error reply has no body: the encoder wants just the error */
        if (v->error) {
                ProtoReply reply = { .cookie = v->cookie, .error = v->error };

                return proto_encode_reply(buf, cap, &reply);
        }
        errors = fuzz_u64s(v->errors, n);
        r = proto_encode_reply_send(buf, cap, v->cookie, errors, (size_t)v->n_errors);
        free(errors);
        return r;
}

static int encode_reply_recv(void *buf, size_t cap, const void *in) {
        return proto_encode_reply_recv(buf, cap, in);
}

static int encode_entry(void *buf, size_t cap, const void *in) {
        return proto_encode_entry(buf, cap, in);
}

static int encode_retract(void *buf, size_t cap, const void *in) {
        return proto_encode_retract(buf, cap, in);
}

static int encode_wake(void *buf, size_t cap, const void *in) {
        return proto_encode_wake(buf, cap);
}

static int encode_resync(void *buf, size_t cap, const void *in) {
        return proto_encode_resync(buf, cap);
}

static int encode_ctl(void *buf, size_t cap, const void *in) {
        return proto_encode_ctl(buf, cap, in);
}

static int encode_ctl_monitor(void *buf, size_t cap, const void *in) {
        return proto_encode_ctl_monitor(buf, cap, in);
}

static int encode_reply_ctl(void *buf, size_t cap, const void *in) {
        return proto_encode_reply_ctl(buf, cap, in);
}

static int encode_ctl_data(void *buf, size_t cap, const void *in) {
        const ProtoCtlData *v = in;

        return proto_encode_ctl_data(buf, cap, v->cookie, v->bytes, v->n_bytes);
}

static int encode_events(void *buf, size_t cap, const void *in) {
        const ProtoEvents *v = in;
        /* more than the limit is refused before the events are read */
        size_t n = v->n_events > PROTO_EVENTS_MAX ? PROTO_EVENTS_MAX : v->n_events;
        ProtoEvent *events = calloc(n ?: 1, sizeof(*events));
        int r;

        if (!events)
                fuzz_fail("out of memory");
        for (size_t i = 0; i < n; ++i)
                proto_event_at(&events[i], v, i);
        r = proto_encode_events(buf, cap, events, v->n_events);
        free(events);
        return r;
}

/* fds each record accounts for */

static size_t n_fds_none(const void *in) {
        return 0;
}

static size_t n_fds_fds(const void *in) {
        return ((const ProtoFds *)in)->n_fds;
}

static size_t n_fds_transfer(const void *in) {
        return proto_handle_transfer_n_fds(in);
}

static size_t n_fds_send(const void *in) {
        return proto_send_n_fds(in);
}

static size_t n_fds_reply_hello(const void *in) {
        return ((const ProtoReplyHello *)in)->error ? 0 : 2;
}

static size_t n_fds_reply_recv(const void *in) {
        const ProtoReplyRecv *v = in;

        return v->error ? 0 : (size_t)v->entry.msg.n_fds;
}

/* point the arrays of an argument struct filled from raw bytes at the arena */

static void fix_nodes_destroy(void *in, const uint8_t *arena) {
        ((ProtoNodesDestroy *)in)->ids = arena;
}

static void fix_slice_fds(void *in, const uint8_t *arena) {
        ((ProtoSliceFds *)in)->fds = arena;
}

static void fix_send(void *in, const uint8_t *arena) {
        ProtoSend *v = in;

        v->destinations = arena;
        v->handles = arena + PROTO_DESTINATIONS_MAX * sizeof(uint64_t);
        v->payload = arena;
}

static void fix_reply_send(void *in, const uint8_t *arena) {
        ((ProtoReplySend *)in)->errors = arena;
}

static void fix_ctl_data(void *in, const uint8_t *arena) {
        ProtoCtlData *v = in;

        /* at most what the arena holds; more is refused before it is read */
        v->bytes = arena;
}

static void fix_events(void *in, const uint8_t *arena) {
        ((ProtoEvents *)in)->events = arena;
}

/* a decoded reply with a nonzero error has every other field 0 */

static bool no_body_reply_ctl(const void *in) {
        const ProtoReplyCtl *v = in;

        return !v->error || (!v->format && !v->flags && !v->n_bytes);
}

static bool no_body_reply_hello(const void *in) {
        const ProtoReplyHello *v = in;

        return !v->error || (!v->version && !v->peer_id && !v->pool_size);
}

static bool no_body_reply_peer_query(const void *in) {
        const ProtoReplyPeerQuery *v = in;

        return !v->error || (!v->flags && !v->peer_flags && !v->max_slices &&
                             !v->max_handles && !v->max_inflight_bytes &&
                             !v->max_inflight_fds);
}

static bool no_body_reply_handle_transfer(const void *in) {
        const ProtoReplyHandleTransfer *v = in;

        return !v->error || !v->dst_handle;
}

static bool no_body_reply_send(const void *in) {
        const ProtoReplySend *v = in;

        return !v->error || (!v->n_errors && !v->errors);
}

static bool no_body_reply_recv(const void *in) {
        const ProtoReplyRecv *v = in;
        const ProtoMessage *m = &v->entry.msg;

        return !v->error || (!v->entry.entry_id && !m->type && !m->flags && !m->destination &&
                             !m->uid && !m->gid && !m->pid && !m->tid && !m->offset &&
                             !m->n_bytes && !m->n_handles && !m->n_fds && !m->n_secctx);
}

static const Codec codecs[] = {
        { "HELLO", PROTO_TYPE_HELLO, sizeof(ProtoHello), ERR_INVAL | ERR_PROTONOSUPPORT,
          ERR_INVAL | ERR_PROTONOSUPPORT, decode_hello, encode_hello, n_fds_none },
        { "FDS", PROTO_TYPE_FDS, sizeof(ProtoFds), 0, ERR_INVAL,
          decode_fds, encode_fds, n_fds_fds },
        { "ACK", PROTO_TYPE_ACK, sizeof(ProtoAck), 0, ERR_INVAL,
          decode_ack, encode_ack, n_fds_none },
        { "PEER_DISCONNECT", PROTO_TYPE_PEER_DISCONNECT, sizeof(ProtoPeerDisconnect),
          ERR_INVAL, ERR_INVAL, decode_peer_disconnect, encode_peer_disconnect, n_fds_none },
        { "PEER_QUERY", PROTO_TYPE_PEER_QUERY, sizeof(ProtoPeerQuery), ERR_INVAL, ERR_INVAL,
          decode_peer_query, encode_peer_query, n_fds_none },
        { "PEER_RESET", PROTO_TYPE_PEER_RESET, sizeof(ProtoPeerReset), ERR_INVAL, ERR_INVAL,
          decode_peer_reset, encode_peer_reset, n_fds_none },
        { "HANDLE_RELEASE", PROTO_TYPE_HANDLE_RELEASE, sizeof(ProtoHandleRelease), 0, 0,
          decode_handle_release, encode_handle_release, n_fds_none },
        { "HANDLE_TRANSFER", PROTO_TYPE_HANDLE_TRANSFER, sizeof(ProtoHandleTransfer),
          ERR_INVAL, ERR_INVAL, decode_handle_transfer, encode_handle_transfer,
          n_fds_transfer },
        { "NODES_DESTROY", PROTO_TYPE_NODES_DESTROY, sizeof(ProtoNodesDestroy), ERR_INVAL,
          ERR_INVAL | ERR_FAULT, decode_nodes_destroy, encode_nodes_destroy, n_fds_none, false,
          fix_nodes_destroy },
        { "SLICE_RELEASE", PROTO_TYPE_SLICE_RELEASE, sizeof(ProtoSliceRelease), 0, 0,
          decode_slice_release, encode_slice_release, n_fds_none },
        { "SLICE_FDS", PROTO_TYPE_SLICE_FDS, sizeof(ProtoSliceFds), ERR_INVAL,
          ERR_INVAL | ERR_FAULT, decode_slice_fds, encode_slice_fds, n_fds_none, false,
          fix_slice_fds },
        { "SEND", PROTO_TYPE_SEND, sizeof(ProtoSend), ERR_INVAL | ERR_MSGSIZE,
          ERR_INVAL | ERR_MSGSIZE | ERR_FAULT, decode_send, encode_send, n_fds_send, false,
          fix_send },
        { "RECV", PROTO_TYPE_RECV, sizeof(ProtoRecv), ERR_INVAL, ERR_INVAL,
          decode_recv, encode_recv, n_fds_none },
        { "REPLY", PROTO_TYPE_REPLY, sizeof(ProtoReply), ERR_INVAL, ERR_INVAL,
          decode_reply, encode_reply, n_fds_none },
        { "REPLY(HELLO)", PROTO_TYPE_REPLY, sizeof(ProtoReplyHello),
          ERR_INVAL | ERR_PROTONOSUPPORT, ERR_INVAL | ERR_PROTONOSUPPORT,
          decode_reply_hello, encode_reply_hello, n_fds_reply_hello, false, NULL,
          no_body_reply_hello },
        { "REPLY(PEER_QUERY)", PROTO_TYPE_REPLY, sizeof(ProtoReplyPeerQuery), ERR_INVAL,
          ERR_INVAL, decode_reply_peer_query, encode_reply_peer_query, n_fds_none, false,
          NULL, no_body_reply_peer_query },
        { "REPLY(HANDLE_TRANSFER)", PROTO_TYPE_REPLY, sizeof(ProtoReplyHandleTransfer),
          ERR_INVAL, ERR_INVAL, decode_reply_handle_transfer, encode_reply_handle_transfer,
          n_fds_none, false, NULL, no_body_reply_handle_transfer },
        { "REPLY(SEND)", PROTO_TYPE_REPLY, sizeof(ProtoReplySend), ERR_INVAL | ERR_MSGSIZE,
          ERR_INVAL | ERR_MSGSIZE | ERR_FAULT, decode_reply_send, encode_reply_send,
          n_fds_none, false, fix_reply_send, no_body_reply_send },
        { "REPLY(RECV)", PROTO_TYPE_REPLY, sizeof(ProtoReplyRecv), ERR_INVAL | ERR_MSGSIZE,
          ERR_INVAL | ERR_MSGSIZE, decode_reply_recv, encode_reply_recv, n_fds_reply_recv,
          true, NULL, no_body_reply_recv },
        { "ENTRY", PROTO_TYPE_ENTRY, sizeof(ProtoEntry), ERR_INVAL | ERR_MSGSIZE,
          ERR_INVAL | ERR_MSGSIZE, decode_entry, encode_entry, n_fds_none },
        { "RETRACT", PROTO_TYPE_RETRACT, sizeof(ProtoRetract), ERR_INVAL, ERR_INVAL,
          decode_retract, encode_retract, n_fds_none },
        { "WAKE", PROTO_TYPE_WAKE, 0, 0, 0, decode_wake, encode_wake, n_fds_none },
        { "RESYNC", PROTO_TYPE_RESYNC, 0, 0, 0, decode_resync, encode_resync, n_fds_none },
        /* STATUS stands for STATUS, PEERS, PEER, QUOTA and METRICS (codec_takes_type()) */
        { "CTL", PROTO_TYPE_CTL_STATUS, sizeof(ProtoCtl), ERR_INVAL, ERR_INVAL,
          decode_ctl, encode_ctl, n_fds_none },
        { "CTL_MONITOR", PROTO_TYPE_CTL_MONITOR, sizeof(ProtoCtlMonitor), ERR_INVAL, ERR_INVAL,
          decode_ctl_monitor, encode_ctl_monitor, n_fds_none },
        { "REPLY(CTL)", PROTO_TYPE_REPLY, sizeof(ProtoReplyCtl), ERR_INVAL | ERR_MSGSIZE,
          ERR_INVAL | ERR_MSGSIZE, decode_reply_ctl, encode_reply_ctl, n_fds_none, false,
          NULL, no_body_reply_ctl },
        { "CTL_DATA", PROTO_TYPE_CTL_DATA, sizeof(ProtoCtlData), ERR_INVAL, ERR_INVAL,
          decode_ctl_data, encode_ctl_data, n_fds_none, false, fix_ctl_data },
        { "EVENTS", PROTO_TYPE_EVENTS, sizeof(ProtoEvents), ERR_INVAL, ERR_INVAL,
          decode_events, encode_events, n_fds_none, false, fix_events },
};

static bool codec_takes_type(const Codec *c, uint16_t type) {
        if (c->type == PROTO_TYPE_CTL_STATUS)
                return type >= PROTO_TYPE_CTL_STATUS && type <= PROTO_TYPE_CTL_METRICS;
        return type == c->type || (c->type == PROTO_TYPE_FDS && type == PROTO_TYPE_PUSH_FDS);
}

/* byte 0 -> the number of fds said to come with the packet */
static size_t fuzz_n_fds(uint8_t b) {
        static const size_t special[] = { 253, 254, 256, 257, SIZE_MAX };
        uint8_t v = b & 0x7f;

        if (v >= 128 - ARRAY_SIZE(special))
                return special[v - (128 - ARRAY_SIZE(special))];
        return v;
}

/*
 * The decoded form @out of @buf must encode back to @buf exactly, and that
 * copy must decode again.
 */
static void fuzz_reencode(const Codec *c, const void *out, const uint8_t *buf, size_t len,
                          size_t n_fds) {
        _Alignas(max_align_t) uint8_t again[256];
        int r;

        r = c->encode(fuzz_out, sizeof(fuzz_out), out);
        if (r < 0)
                fuzz_fail("%s: decoded record does not encode again: %d", c->name, r);
        if ((size_t)r != len || memcmp(fuzz_out, buf, len) != 0)
                fuzz_fail("%s: decoded record encodes to other bytes (%d, was %zu)",
                          c->name, r, len);
        r = c->decode(again, fuzz_out, len, n_fds);
        if (r != 0)
                fuzz_fail("%s: re-encoded record does not decode: %d", c->name, r);
}

/* run one decoder on the packet and check everything it promises */
static void fuzz_decode_one(const Codec *c, const uint8_t *buf, size_t len, size_t n_fds,
                            const ProtoHeader *hdr, bool framed) {
        _Alignas(max_align_t) uint8_t out[256], poison[256], other[256];
        size_t accounted;
        int r;

        memset(out, FUZZ_POISON, sizeof(out));
        memset(poison, FUZZ_POISON, sizeof(poison));
        r = c->decode(out, buf, len, n_fds);
        if (r < 0) {
                if (memcmp(out, poison, sizeof(out)) != 0)
                        fuzz_fail("%s: failed with %d but wrote its output", c->name, r);
                if (r != -EBADMSG && !fuzz_errno_allowed(r, c->errors))
                        fuzz_fail("%s: undocumented error %d", c->name, r);
                if (r != -EBADMSG && (!framed || !codec_takes_type(c, hdr->type)))
                        fuzz_fail("%s: %d for a record it does not decode", c->name, r);
                return;
        }
        if (r != 0)
                fuzz_fail("%s: returned %d", c->name, r);
        if (!framed)
                fuzz_fail("%s: accepted a packet proto_decode_header() refuses", c->name);
        if (!codec_takes_type(c, hdr->type))
                fuzz_fail("%s: accepted type 0x%04x", c->name, hdr->type);
        if (c->size && memcmp(out + c->size, poison, sizeof(out) - c->size) != 0)
                fuzz_fail("%s: wrote beyond its output", c->name);

        accounted = c->n_fds(out);
        if (accounted != n_fds && !(c->or_no_fds && n_fds == 0))
                fuzz_fail("%s: accepted %zu fds for a record with %zu", c->name, n_fds,
                          accounted);
        if (c->decode(other, buf, len, accounted + 1) != -EBADMSG)
                fuzz_fail("%s: accepted one fd too many", c->name);
        if (accounted > 1 && c->decode(other, buf, len, accounted - 1) != -EBADMSG)
                fuzz_fail("%s: accepted one fd too few", c->name);
        if (accounted == 1 && (c->decode(other, buf, len, 0) == 0) != c->or_no_fds)
                fuzz_fail("%s: %s without its fd", c->name,
                          c->or_no_fds ? "refused" : "accepted");

        if (c->error_has_no_body && !c->error_has_no_body(out))
                fuzz_fail("%s: error reply with a body", c->name);

        fuzz_reencode(c, out, buf, len, n_fds);
}

/* proto_check_request_type() against the table of decoders */
static void fuzz_request_type(uint16_t type) {
        bool defined = false;
        int r;

        for (size_t i = 0; i < ARRAY_SIZE(codecs); ++i)
                if (codec_takes_type(&codecs[i], type) && type <= PROTO_TYPE_REQUEST_LAST)
                        defined = true;
        r = proto_check_request_type(type);
        if (defined ? r != 0
                    : r != (type >= PROTO_TYPE_REQUEST_FIRST && type <= PROTO_TYPE_REQUEST_LAST
                                    ? -ENOTTY : -EBADMSG))
                fuzz_fail("proto_check_request_type(0x%04x) = %d", type, r);
}

static void fuzz_decode_all(const uint8_t *buf, size_t len, size_t n_fds) {
        ProtoHeader hdr = {};
        bool framed;

        framed = proto_decode_header(&hdr, buf, len) == 0;
        if (framed)
                fuzz_request_type(hdr.type);
        for (size_t i = 0; i < ARRAY_SIZE(codecs); ++i)
                fuzz_decode_one(&codecs[i], buf, len, n_fds, &hdr, framed);
}

/*
 * One encoder on arguments read from @raw: it fails with a documented errno
 * and writes nothing, or writes a record that decodes and encodes back to
 * the same bytes.
 */
static void fuzz_encode_one(const Codec *c, const uint8_t *raw, size_t n_raw,
                            const uint8_t *arena) {
        _Alignas(max_align_t) uint8_t in[256], out[256];
        uint8_t sentinel[FUZZ_SENTINEL_SIZE];
        ProtoHeader hdr;
        size_t len, n_fds;
        int r;

        memset(in, 0, sizeof(in));
        memcpy(in, raw, n_raw < c->size ? n_raw : c->size);
        if (c->fix)
                c->fix(in, arena);

        memset(fuzz_out2, FUZZ_POISON, sizeof(sentinel));
        memset(sentinel, FUZZ_POISON, sizeof(sentinel));
        r = c->encode(fuzz_out2, sizeof(fuzz_out2), in);
        if (r < 0) {
                if (!fuzz_errno_allowed(r, c->enc_errors))
                        fuzz_fail("encode %s: undocumented error %d", c->name, r);
                if (memcmp(fuzz_out2, sentinel, sizeof(sentinel)) != 0)
                        fuzz_fail("encode %s: failed with %d but wrote", c->name, r);
                return;
        }
        if (r < (int)PROTO_SIZE_HEADER || (size_t)r > PROTO_RECORD_MAX || r % 8 != 0)
                fuzz_fail("encode %s: record size %d", c->name, r);

        len = (size_t)r;
        n_fds = c->n_fds(in);
        r = c->decode(out, fuzz_out2, len, n_fds);
        if (r != 0)
                fuzz_fail("encode %s: the decoder refuses the record: %d", c->name, r);
        if (proto_decode_header(&hdr, fuzz_out2, len) < 0)
                fuzz_fail("encode %s: the record is not framed", c->name);
        fuzz_decode_one(c, fuzz_out2, len, n_fds, &hdr, true);
}

static void fuzz_encode_all(const uint8_t *raw, size_t n_raw) {
        static uint8_t *arena;

        /* zero beyond what the input gives; the largest legal arrays fit */
        if (!arena) {
                arena = calloc(1, FUZZ_ARENA_SIZE);
                if (!arena)
                        fuzz_fail("out of memory");
        }
        memcpy(arena, raw, n_raw < FUZZ_ARENA_SIZE ? n_raw : FUZZ_ARENA_SIZE);
        for (size_t i = 0; i < ARRAY_SIZE(codecs); ++i)
                fuzz_encode_one(&codecs[i], raw, n_raw, arena);
        memset(arena, 0, n_raw < FUZZ_ARENA_SIZE ? n_raw : FUZZ_ARENA_SIZE);
}

static uint64_t fuzz_u64(const uint8_t *raw, size_t n_raw, size_t i) {
        uint64_t v = 0;

        if (n_raw >= (i + 1) * sizeof(v))
                memcpy(&v, raw + i * sizeof(v), sizeof(v));
        return v;
}

static void fuzz_check_size(const char *name, int r, size_t size, size_t min) {
        if (r == -EMSGSIZE)
                return;
        if (r != 0 || size < min || size > PROTO_RECORD_MAX || size % 8 != 0)
                fuzz_fail("%s: %d, size %zu", name, r, size);
}

/* the size helpers on counts from the input */
static void fuzz_sizes(const uint8_t *raw, size_t n_raw) {
        uint64_t a = fuzz_u64(raw, n_raw, 0), b = fuzz_u64(raw, n_raw, 1);
        uint64_t bytes = fuzz_u64(raw, n_raw, 2);
        uint32_t mode = (uint32_t)fuzz_u64(raw, n_raw, 3) & 1;
        size_t size = 0;
        int r;

        r = proto_size_nodes_destroy(&size, a);
        fuzz_check_size("proto_size_nodes_destroy", r, size, PROTO_SIZE_NODES_DESTROY_MIN);
        r = proto_size_slice_fds(&size, a);
        fuzz_check_size("proto_size_slice_fds", r, size, PROTO_SIZE_SLICE_FDS_MIN);
        r = proto_size_reply_send(&size, a);
        fuzz_check_size("proto_size_reply_send", r, size, PROTO_SIZE_REPLY_SEND_MIN);
        r = proto_size_send(&size, a, b, mode, bytes);
        fuzz_check_size("proto_size_send", r, size, PROTO_SIZE_SEND_MIN);
        r = proto_size_ctl_data(&size, a);
        fuzz_check_size("proto_size_ctl_data", r, size, PROTO_SIZE_CTL_DATA_MIN);
        r = proto_size_events(&size, a);
        fuzz_check_size("proto_size_events", r, size, PROTO_SIZE_EVENTS_MIN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t *copy, *buf;
        size_t len, n_fds;
        bool odd;

        if (size < 1)
                return 0;
        n_fds = fuzz_n_fds(data[0]);
        odd = data[0] & 0x80;
        len = size - 1;

        /* the packet ends where the allocation ends */
        copy = malloc((len + odd) ?: 1);
        if (!copy)
                return 0;
        buf = copy + odd;
        memcpy(buf, data + 1, len);

        fuzz_decode_all(buf, len, n_fds);
        fuzz_encode_all(buf, len);
        fuzz_sizes(buf, len);

        free(copy);
        return 0;
}
