/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Proto encoder: from arguments to a record in a caller's buffer
 *
 * Each proto_encode_<type>() checks its arguments with the same check.c
 * functions the decoder uses, computes the record size, and only then writes:
 * the whole record is zeroed first (so reserved fields and padding are zero)
 * and the fields are stored little endian. On failure the buffer is left
 * untouched. The return value is the record size, which is what sendmsg()
 * must send as one packet; it never exceeds PROTO_RECORD_MAX.
 *
 * Whatever an encoder produces, the matching decoder accepts, with the same
 * values back: the tests check this for every record type. An encoder never
 * writes a record the decoder would refuse, so argument errors surface on
 * the sending side with the errno the receiver would have answered. FDS and
 * ACK are the exception: nobody answers them, so their decoders say -EBADMSG
 * where the encoders refuse the argument with -EINVAL.
 */

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include "proto/check.h"
#include "proto/proto.h"
#include "util/macro.h"

static uint8_t *proto_at(void *buf, size_t offset) {
        return (uint8_t *)buf + offset;
}

/*
 * Start a record of @size bytes: refuse a buffer too small, else zero the
 * record and write its header. Every caller has checked its arguments before,
 * so after this nothing can fail any more.
 */
static int proto_encode_begin(void *buf, size_t cap, size_t size, uint16_t type,
                              uint64_t cookie) {
        ProtoWireHeader w = {
                .size = htole32((uint32_t)size),
                .version = htole16(BUS1_PROTO_VERSION),
                .type = htole16(type),
                .cookie = htole64(cookie),
        };

        if (cap < size)
                return -ENOBUFS;
        memset(buf, 0, size);
        memcpy(buf, &w, sizeof(w));
        return 0;
}

/* store @n host-order u64s as le64 at @p */
static void proto_write_u64s(uint8_t *p, const uint64_t *v, size_t n) {
        uint64_t le;
        size_t i;

        for (i = 0; i < n; ++i) {
                le = htole64(v[i]);
                memcpy(p + i * sizeof(le), &le, sizeof(le));
        }
}

/* store @n host-order ints as le32 at @p */
static void proto_write_s32s(uint8_t *p, const int *v, size_t n) {
        uint32_t le;
        size_t i;

        for (i = 0; i < n; ++i) {
                le = htole32((uint32_t)v[i]);
                memcpy(p + i * sizeof(le), &le, sizeof(le));
        }
}

/* a record of header plus one fixed body */
static int proto_encode_fixed(void *buf, size_t cap, uint16_t type, uint64_t cookie,
                              const void *body, size_t n_body) {
        int r;

        r = proto_encode_begin(buf, cap, PROTO_SIZE_HEADER + n_body, type, cookie);
        if (r < 0)
                return r;
        memcpy(proto_at(buf, PROTO_SIZE_HEADER), body, n_body);
        return (int)(PROTO_SIZE_HEADER + n_body);
}

/**
 * proto_encode_hello() - write a HELLO request
 * @buf:        destination buffer
 * @cap:        its size
 * @hello:      the request
 *
 * Return: the record size on success, -EINVAL for unknown flags or a bad
 *         version range, -EPROTONOSUPPORT for a range holding no version
 *         this implementation speaks, -ENOBUFS if @cap is too small.
 */
int proto_encode_hello(void *buf, size_t cap, const ProtoHello *hello) {
        ProtoWireHello w = {
                .flags = htole64(hello->flags),
                .version_min = htole32(hello->version_min),
                .version_max = htole32(hello->version_max),
        };
        int r;

        r = proto_check_hello(hello);
        if (r < 0)
                return r;
        return proto_encode_fixed(buf, cap, PROTO_TYPE_HELLO, hello->cookie, &w, sizeof(w));
}

/**
 * proto_encode_fds() - write an FDS or PUSH_FDS carrier
 * @buf:        destination buffer
 * @cap:        its size
 * @fds:        type (PROTO_TYPE_FDS or PROTO_TYPE_PUSH_FDS) and fd count
 *
 * The sender attaches exactly @fds->n_fds fds to this packet and sends the
 * record they belong to right after it.
 *
 * Return: the record size on success, -EINVAL for another type or a count
 *         outside 1..PROTO_PACKET_FDS_MAX, -ENOBUFS if @cap is too small.
 */
int proto_encode_fds(void *buf, size_t cap, const ProtoFds *fds) {
        ProtoWireFds w = {
                .n_fds = htole32(fds->n_fds),
        };

        if (fds->type != PROTO_TYPE_FDS && fds->type != PROTO_TYPE_PUSH_FDS)
                return -EINVAL;
        if (fds->n_fds < 1 || fds->n_fds > PROTO_PACKET_FDS_MAX)
                return -EINVAL;
        return proto_encode_fixed(buf, cap, fds->type, 0, &w, sizeof(w));
}

/**
 * proto_encode_ack() - write an ACK
 * @buf:        destination buffer
 * @cap:        its size
 * @ack:        the highest entry ID the client has dequeued locally
 *
 * The client sends this before its next request whenever it has dequeued
 * pushed entries locally; it gets no reply. The cookie is 0.
 *
 * Return: the record size on success, -EINVAL for entry_id 0, -ENOBUFS if
 *         @cap is too small.
 */
int proto_encode_ack(void *buf, size_t cap, const ProtoAck *ack) {
        ProtoWireId w = { .id = htole64(ack->entry_id) };
        int r;

        r = proto_check_entry_id(ack->entry_id);
        if (r < 0)
                return r;
        return proto_encode_fixed(buf, cap, PROTO_TYPE_ACK, 0, &w, sizeof(w));
}

/**
 * proto_encode_peer_disconnect() - write a PEER_DISCONNECT request
 * @buf:        destination buffer
 * @cap:        its size
 * @disconnect: the request
 *
 * Return: the record size on success, -EINVAL for nonzero flags, -ENOBUFS if
 *         @cap is too small.
 */
int proto_encode_peer_disconnect(void *buf, size_t cap, const ProtoPeerDisconnect *disconnect) {
        ProtoWireFlags w = { .flags = htole64(disconnect->flags) };
        int r;

        r = proto_check_flags(disconnect->flags, PROTO_PEER_DISCONNECT_FLAGS);
        if (r < 0)
                return r;
        return proto_encode_fixed(buf, cap, PROTO_TYPE_PEER_DISCONNECT, disconnect->cookie,
                                  &w, sizeof(w));
}

/**
 * proto_encode_peer_query() - write a PEER_QUERY request
 * @buf:        destination buffer
 * @cap:        its size
 * @query:      the request
 *
 * Return: the record size on success, -EINVAL for nonzero flags, -ENOBUFS if
 *         @cap is too small.
 */
int proto_encode_peer_query(void *buf, size_t cap, const ProtoPeerQuery *query) {
        ProtoWireFlags w = { .flags = htole64(query->flags) };
        int r;

        r = proto_check_flags(query->flags, PROTO_PEER_QUERY_FLAGS);
        if (r < 0)
                return r;
        return proto_encode_fixed(buf, cap, PROTO_TYPE_PEER_QUERY, query->cookie, &w, sizeof(w));
}

/**
 * proto_encode_peer_reset() - write a PEER_RESET request
 * @buf:        destination buffer
 * @cap:        its size
 * @reset:      the request
 *
 * Return: the record size on success, -EINVAL for unknown flags or peer
 *         flags or a limit above INT_MAX that is not all ones, -ENOBUFS if
 *         @cap is too small.
 */
int proto_encode_peer_reset(void *buf, size_t cap, const ProtoPeerReset *reset) {
        ProtoWirePeerReset w = {
                .flags = htole64(reset->flags),
                .peer_flags = htole64(reset->peer_flags),
                .max_slices = htole32(reset->max_slices),
                .max_handles = htole32(reset->max_handles),
                .max_inflight_bytes = htole32(reset->max_inflight_bytes),
                .max_inflight_fds = htole32(reset->max_inflight_fds),
        };
        int r;

        r = proto_check_peer_reset(reset);
        if (r < 0)
                return r;
        return proto_encode_fixed(buf, cap, PROTO_TYPE_PEER_RESET, reset->cookie, &w, sizeof(w));
}

/**
 * proto_encode_handle_release() - write a HANDLE_RELEASE request
 * @buf:        destination buffer
 * @cap:        its size
 * @release:    the request
 *
 * Return: the record size on success, -ENOBUFS if @cap is too small.
 */
int proto_encode_handle_release(void *buf, size_t cap, const ProtoHandleRelease *release) {
        ProtoWireId w = { .id = htole64(release->id) };

        return proto_encode_fixed(buf, cap, PROTO_TYPE_HANDLE_RELEASE, release->cookie,
                                  &w, sizeof(w));
}

/**
 * proto_encode_handle_transfer() - write a HANDLE_TRANSFER request
 * @buf:        destination buffer
 * @cap:        its size
 * @transfer:   the request; with PROTO_DST_FD the destination's connection fd
 *              must be attached to the packet
 *
 * Return: the record size on success, -EINVAL for unknown flags or an
 *         unknown dst_mode, -ENOBUFS if @cap is too small.
 */
int proto_encode_handle_transfer(void *buf, size_t cap, const ProtoHandleTransfer *transfer) {
        ProtoWireHandleTransfer w = {
                .flags = htole64(transfer->flags),
                .src_handle = htole64(transfer->src_handle),
                .dst_mode = htole32(transfer->dst_mode),
        };
        int r;

        r = proto_check_handle_transfer(transfer);
        if (r < 0)
                return r;
        return proto_encode_fixed(buf, cap, PROTO_TYPE_HANDLE_TRANSFER, transfer->cookie,
                                  &w, sizeof(w));
}

/**
 * proto_encode_nodes_destroy() - write a NODES_DESTROY request
 * @buf:        destination buffer
 * @cap:        its size
 * @cookie:     the request's cookie
 * @flags:      BUS1_NODES_DESTROY_FLAG_*
 * @ids:        owner handle IDs, host order (none are written with
 *              PROTO_NODES_DESTROY_FLAG_EFAULT)
 * @n_ids:      number of IDs
 *
 * Return: the record size on success, -EINVAL for unknown flags or more than
 *         PROTO_NODES_MAX IDs written, -EFAULT for a NULL @ids with IDs to write,
 *         -ENOBUFS if @cap is too small.
 */
int proto_encode_nodes_destroy(void *buf, size_t cap, uint64_t cookie, uint64_t flags,
                               const uint64_t *ids, size_t n_ids) {
        ProtoWireNodesDestroy w = {
                .flags = htole64(flags),
                .n_nodes = htole64((uint64_t)n_ids),
        };
        size_t size, n_written;
        int r;

        r = proto_check_nodes_destroy(flags, n_ids);
        if (r < 0)
                return r;
        n_written = proto_nodes_destroy_n_ids(flags, n_ids);
        if (!ids && n_written > 0)
                return -EFAULT;
        /* PROTO_NODES_MAX IDs always fit a record */
        r = proto_size_nodes_destroy(&size, n_written);
        if (r < 0)
                return r;
        r = proto_encode_begin(buf, cap, size, PROTO_TYPE_NODES_DESTROY, cookie);
        if (r < 0)
                return r;
        memcpy(proto_at(buf, PROTO_SIZE_HEADER), &w, sizeof(w));
        proto_write_u64s(proto_at(buf, PROTO_SIZE_NODES_DESTROY_MIN), ids, n_written);
        return (int)size;
}

/**
 * proto_encode_slice_release() - write a SLICE_RELEASE request
 * @buf:        destination buffer
 * @cap:        its size
 * @release:    the request
 *
 * Return: the record size on success, -ENOBUFS if @cap is too small.
 */
int proto_encode_slice_release(void *buf, size_t cap, const ProtoSliceRelease *release) {
        ProtoWireId w = { .id = htole64(release->offset) };

        return proto_encode_fixed(buf, cap, PROTO_TYPE_SLICE_RELEASE, release->cookie,
                                  &w, sizeof(w));
}

/**
 * proto_encode_slice_fds() - write a SLICE_FDS request
 * @buf:        destination buffer
 * @cap:        its size
 * @cookie:     the request's cookie
 * @offset:     the slice offset the RECV returned
 * @fds:        the fd numbers the RECV's fds got in this process, in order
 * @n_fds:      their number, the RECV's msg.n_fds; 0 if the client could
 *              not install them (the broker then leaves the entry queued)
 *
 * No fd is attached: the record carries the numbers only.
 *
 * Return: the record size on success, -EINVAL for a count above
 *         BUS1_FD_MAX or a negative fd number, -EFAULT for a NULL @fds
 *         with a non-zero count,
 *         -ENOBUFS if @cap is too small.
 */
int proto_encode_slice_fds(void *buf, size_t cap, uint64_t cookie, uint64_t offset,
                           const int *fds, size_t n_fds) {
        ProtoWireSliceFds w;
        size_t size, i;
        int r;

        r = proto_check_slice_fds(n_fds);
        if (r < 0)
                return r;
        if (!fds && n_fds)
                return -EFAULT;
        for (i = 0; i < n_fds; ++i) {
                r = proto_check_slice_fd(fds[i]);
                if (r < 0)
                        return r;
        }
        /* BUS1_FD_MAX numbers always fit a record */
        r = proto_size_slice_fds(&size, n_fds);
        if (r < 0)
                return r;
        r = proto_encode_begin(buf, cap, size, PROTO_TYPE_SLICE_FDS, cookie);
        if (r < 0)
                return r;
        w = (ProtoWireSliceFds){
                .offset = htole64(offset),
                .n_fds = htole32((uint32_t)n_fds),
        };
        memcpy(proto_at(buf, PROTO_SIZE_HEADER), &w, sizeof(w));
        proto_write_s32s(proto_at(buf, PROTO_SIZE_SLICE_FDS_MIN), fds, n_fds);
        return (int)size;
}

/* the total of @vecs, saturated at UINT64_MAX; -EFAULT for a NULL base */
static int proto_vecs_total(uint64_t *totalp, const struct iovec *vecs, size_t n_vecs) {
        uint64_t total = 0;
        size_t i;

        if (!vecs && n_vecs > 0)
                return -EFAULT;
        for (i = 0; i < n_vecs; ++i) {
                if (!vecs[i].iov_base && vecs[i].iov_len > 0)
                        return -EFAULT;
                if (__builtin_add_overflow(total, (uint64_t)vecs[i].iov_len, &total))
                        total = UINT64_MAX;
        }
        *totalp = total;
        return 0;
}

/* a count narrowed to a le32 field, saturated so that the limit checks still see it */
static uint32_t proto_count32(size_t n) {
        return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/**
 * proto_encode_send() - write a SEND request
 * @buf:        destination buffer
 * @cap:        its size
 * @args:       the request; see ProtoSendArgs
 *
 * With PROTO_PAYLOAD_INLINE the iovecs are gathered into the record; if the
 * record would then exceed PROTO_RECORD_MAX this fails with -EMSGSIZE and
 * the caller retries with PROTO_PAYLOAD_MEMFD (proto_size_send() answers the
 * question up front). With PROTO_PAYLOAD_MEMFD the caller attaches the
 * memfd after the message's fds.
 *
 * Return: the record size on success; -EINVAL for unknown flags, an unknown
 *         payload_mode, a memfd_offset with an inline payload, or more than
 *         PROTO_DESTINATIONS_MAX destination IDs; -EMSGSIZE for more than PROTO_HANDLES_MAX handles,
 *         more than BUS1_FD_MAX fds, over 2 GiB of payload, a memfd range
 *         beyond PROTO_OFFSET_MAX, or a record beyond PROTO_RECORD_MAX;
 *         -EFAULT for a NULL array or iovec base with a nonzero length;
 *         -ENOBUFS if @cap is too small.
 */
int proto_encode_send(void *buf, size_t cap, const ProtoSendArgs *args) {
        ProtoSend send_req = {
                .cookie = args->cookie,
                .flags = args->flags,
                .n_destinations = proto_count32(args->n_destinations),
                .n_handles = proto_count32(args->n_handles),
                .n_fds = proto_count32(args->n_fds),
                .payload_mode = args->payload_mode,
                .n_bytes = args->n_bytes,
                .memfd_offset = args->memfd_offset,
        };
        ProtoWireSend w;
        size_t size, i;
        uint32_t n_ids;
        uint8_t *p;
        int r;

        if (args->payload_mode == PROTO_PAYLOAD_INLINE) {
                r = proto_vecs_total(&send_req.n_bytes, args->vecs, args->n_vecs);
                if (r < 0)
                        return r;
        }
        r = proto_check_send(&send_req);
        if (r < 0)
                return r;
        n_ids = proto_send_n_destination_ids(send_req.flags, send_req.n_destinations);
        if ((!args->destinations && n_ids > 0) || (!args->handles && args->n_handles > 0))
                return -EFAULT;
        r = proto_size_send(&size, n_ids, send_req.n_handles, send_req.payload_mode,
                            send_req.n_bytes);
        if (r < 0)
                return r;
        r = proto_encode_begin(buf, cap, size, PROTO_TYPE_SEND, send_req.cookie);
        if (r < 0)
                return r;

        w = (ProtoWireSend){
                .flags = htole64(send_req.flags),
                .n_destinations = htole32(send_req.n_destinations),
                .n_handles = htole32(send_req.n_handles),
                .n_fds = htole32(send_req.n_fds),
                .payload_mode = htole32(send_req.payload_mode),
                .n_bytes = htole64(send_req.n_bytes),
                .memfd_offset = htole64(send_req.memfd_offset),
        };
        memcpy(proto_at(buf, PROTO_SIZE_HEADER), &w, sizeof(w));
        p = proto_at(buf, PROTO_SIZE_SEND_MIN);
        proto_write_u64s(p, args->destinations, n_ids);
        p += (size_t)n_ids * sizeof(uint64_t);
        proto_write_u64s(p, args->handles, send_req.n_handles);
        p += (size_t)send_req.n_handles * sizeof(uint64_t);
        if (send_req.payload_mode == PROTO_PAYLOAD_INLINE) {
                for (i = 0; i < args->n_vecs; ++i) {
                        if (args->vecs[i].iov_len == 0)
                                continue;
                        memcpy(p, args->vecs[i].iov_base, args->vecs[i].iov_len);
                        p += args->vecs[i].iov_len;
                }
        }
        return (int)size;
}

/**
 * proto_encode_recv() - write a RECV request
 * @buf:        destination buffer
 * @cap:        its size
 * @recv_req:   the request
 *
 * Return: the record size on success, -EINVAL for unknown flags, -ENOBUFS if
 *         @cap is too small.
 */
int proto_encode_recv(void *buf, size_t cap, const ProtoRecv *recv_req) {
        ProtoWireRecv w = {
                .flags = htole64(recv_req->flags),
                .max_offset = htole64(recv_req->max_offset),
        };
        int r;

        r = proto_check_recv(recv_req);
        if (r < 0)
                return r;
        return proto_encode_fixed(buf, cap, PROTO_TYPE_RECV, recv_req->cookie, &w, sizeof(w));
}

/*
 * Start a REPLY: its {error, reserved} part, then a body of @n_body bytes
 * that the caller writes at PROTO_SIZE_REPLY.
 */
static int proto_encode_reply_begin(void *buf, size_t cap, uint64_t cookie, uint32_t error,
                                    size_t n_body) {
        ProtoWireReply w = { .error = htole32(error) };
        int r;

        r = proto_encode_begin(buf, cap, PROTO_SIZE_REPLY + n_body, PROTO_TYPE_REPLY, cookie);
        if (r < 0)
                return r;
        memcpy(proto_at(buf, PROTO_SIZE_HEADER), &w, sizeof(w));
        return 0;
}

/**
 * proto_encode_reply() - write a REPLY without a body
 * @buf:        destination buffer
 * @cap:        its size
 * @reply:      cookie of the request and its result: 0 or a positive errno
 *
 * Answers any request but FDS and ACK with an error, and PEER_DISCONNECT,
 * PEER_RESET, HANDLE_RELEASE, NODES_DESTROY, SLICE_RELEASE and SLICE_FDS
 * with success.
 *
 * Return: the record size on success, -EINVAL for an error above
 *         PROTO_ERRNO_MAX, -ENOBUFS if @cap is too small.
 */
int proto_encode_reply(void *buf, size_t cap, const ProtoReply *reply) {
        int r;

        r = proto_check_error(reply->error);
        if (r < 0)
                return r;
        r = proto_encode_reply_begin(buf, cap, reply->cookie, reply->error, 0);
        if (r < 0)
                return r;
        return (int)PROTO_SIZE_REPLY;
}

/* a reply with a nonzero error has no body, whatever the other fields hold */
static int proto_encode_reply_error(void *buf, size_t cap, uint64_t cookie, uint32_t error) {
        ProtoReply reply = { .cookie = cookie, .error = error };

        return proto_encode_reply(buf, cap, &reply);
}

/**
 * proto_encode_reply_hello() - write the REPLY to a HELLO
 * @buf:        destination buffer
 * @cap:        its size
 * @reply:      the reply; with a nonzero error only cookie and error are used
 *
 * On success the broker attaches the pool fd to the packet.
 *
 * Return: the record size on success, -EINVAL for a bad error value or a
 *         pool size of 0 or beyond PROTO_OFFSET_MAX, -EPROTONOSUPPORT for a
 *         version this implementation does not speak, -ENOBUFS if @cap is
 *         too small.
 */
int proto_encode_reply_hello(void *buf, size_t cap, const ProtoReplyHello *reply) {
        ProtoWireReplyHello w = {
                .peer_id = htole64(reply->peer_id),
                .pool_size = htole64(reply->pool_size),
                .version = htole32(reply->version),
                .user_max_handles = htole32(reply->user_max_handles),
        };
        int r;

        if (reply->error != 0)
                return proto_encode_reply_error(buf, cap, reply->cookie, reply->error);
        r = proto_check_reply_hello(reply);
        if (r < 0)
                return r;
        r = proto_encode_reply_begin(buf, cap, reply->cookie, 0, sizeof(w));
        if (r < 0)
                return r;
        memcpy(proto_at(buf, PROTO_SIZE_REPLY), &w, sizeof(w));
        return (int)PROTO_SIZE_REPLY_HELLO;
}

/**
 * proto_encode_reply_peer_query() - write the REPLY to a PEER_QUERY
 * @buf:        destination buffer
 * @cap:        its size
 * @reply:      the reply; with a nonzero error only cookie and error are used
 *
 * Return: the record size on success, -EINVAL for a bad error value, nonzero
 *         flags, unknown peer flags or a limit above INT_MAX, -ENOBUFS if
 *         @cap is too small.
 */
int proto_encode_reply_peer_query(void *buf, size_t cap, const ProtoReplyPeerQuery *reply) {
        ProtoWirePeerReset w = {
                .flags = htole64(reply->flags),
                .peer_flags = htole64(reply->peer_flags),
                .max_slices = htole32(reply->max_slices),
                .max_handles = htole32(reply->max_handles),
                .max_inflight_bytes = htole32(reply->max_inflight_bytes),
                .max_inflight_fds = htole32(reply->max_inflight_fds),
        };
        int r;

        if (reply->error != 0)
                return proto_encode_reply_error(buf, cap, reply->cookie, reply->error);
        r = proto_check_reply_peer_query(reply);
        if (r < 0)
                return r;
        r = proto_encode_reply_begin(buf, cap, reply->cookie, 0, sizeof(w));
        if (r < 0)
                return r;
        memcpy(proto_at(buf, PROTO_SIZE_REPLY), &w, sizeof(w));
        return (int)PROTO_SIZE_REPLY_PEER_QUERY;
}

/**
 * proto_encode_reply_handle_transfer() - write the REPLY to a HANDLE_TRANSFER
 * @buf:        destination buffer
 * @cap:        its size
 * @reply:      the reply; with a nonzero error only cookie and error are used
 *
 * Return: the record size on success, -EINVAL for a bad error value,
 *         -ENOBUFS if @cap is too small.
 */
int proto_encode_reply_handle_transfer(void *buf, size_t cap,
                                       const ProtoReplyHandleTransfer *reply) {
        ProtoWireId w = { .id = htole64(reply->dst_handle) };
        int r;

        if (reply->error != 0)
                return proto_encode_reply_error(buf, cap, reply->cookie, reply->error);
        r = proto_encode_reply_begin(buf, cap, reply->cookie, 0, sizeof(w));
        if (r < 0)
                return r;
        memcpy(proto_at(buf, PROTO_SIZE_REPLY), &w, sizeof(w));
        return (int)PROTO_SIZE_REPLY_HANDLE_TRANSFER;
}

/**
 * proto_encode_reply_send() - write the successful REPLY to a SEND
 * @buf:        destination buffer
 * @cap:        its size
 * @cookie:     the request's cookie
 * @errors:     per-destination results (0 or a positive errno), host order
 * @n_errors:   0 unless the request had PROTO_SEND_FLAG_ERRORS, then its
 *              n_destinations
 *
 * A failed SEND is answered with proto_encode_reply().
 *
 * Return: the record size on success, -EMSGSIZE for more than
 *         PROTO_DESTINATIONS_MAX entries, -EINVAL for an entry above
 *         PROTO_ERRNO_MAX, -EFAULT for a NULL @errors with a nonzero count,
 *         -ENOBUFS if @cap is too small.
 */
int proto_encode_reply_send(void *buf, size_t cap, uint64_t cookie, const uint64_t *errors,
                            size_t n_errors) {
        ProtoWireReplySend w = { .n_errors = htole64((uint64_t)n_errors) };
        size_t size, i;
        int r;

        r = proto_check_reply_send(n_errors);
        if (r < 0)
                return r;
        if (!errors && n_errors > 0)
                return -EFAULT;
        for (i = 0; i < n_errors; ++i) {
                r = proto_check_error(errors[i]);
                if (r < 0)
                        return r;
        }
        r = proto_size_reply_send(&size, n_errors);
        if (r < 0)
                return r;
        r = proto_encode_reply_begin(buf, cap, cookie, 0, size - PROTO_SIZE_REPLY);
        if (r < 0)
                return r;
        memcpy(proto_at(buf, PROTO_SIZE_REPLY), &w, sizeof(w));
        proto_write_u64s(proto_at(buf, PROTO_SIZE_REPLY_SEND_MIN), errors, n_errors);
        return (int)size;
}

/* store an entry as ENTRY and the RECV reply carry it */
static void proto_write_entry(uint8_t *p, const ProtoEntry *entry) {
        ProtoWireEntry w = {
                .entry_id = htole64(entry->entry_id),
                .msg = {
                        .type = htole64(entry->msg.type),
                        .flags = htole64(entry->msg.flags),
                        .destination = htole64(entry->msg.destination),
                        .uid = htole32(entry->msg.uid),
                        .gid = htole32(entry->msg.gid),
                        .pid = htole32(entry->msg.pid),
                        .tid = htole32(entry->msg.tid),
                        .offset = htole64(entry->msg.offset),
                        .n_bytes = htole64(entry->msg.n_bytes),
                        .n_handles = htole64(entry->msg.n_handles),
                        .n_fds = htole64(entry->msg.n_fds),
                        .n_secctx = htole64(entry->msg.n_secctx),
                },
        };

        memcpy(p, &w, sizeof(w));
}

/**
 * proto_encode_reply_recv() - write the REPLY to a RECV
 * @buf:        destination buffer
 * @cap:        its size
 * @reply:      the reply; with a nonzero error only cookie and error are used
 *
 * On success the broker attaches the entry's msg.n_fds fds. The entry is
 * dequeued by this reply, so it may not carry PROTO_MSG_FLAG_SYNC.
 *
 * Return: the record size on success, -EINVAL or -EMSGSIZE for an entry
 *         proto_check_message() refuses (SYNC included), -EINVAL for a bad
 *         error value, -ENOBUFS if @cap is too small.
 */
int proto_encode_reply_recv(void *buf, size_t cap, const ProtoReplyRecv *reply) {
        int r;

        if (reply->error != 0)
                return proto_encode_reply_error(buf, cap, reply->cookie, reply->error);
        r = proto_check_message(&reply->entry.msg, PROTO_MSG_FLAGS);
        if (r < 0)
                return r;
        r = proto_encode_reply_begin(buf, cap, reply->cookie, 0, sizeof(ProtoWireEntry));
        if (r < 0)
                return r;
        proto_write_entry(proto_at(buf, PROTO_SIZE_REPLY), &reply->entry);
        return (int)PROTO_SIZE_REPLY_RECV;
}

/**
 * proto_encode_entry() - write a pushed ENTRY
 * @buf:        destination buffer
 * @cap:        its size
 * @entry:      the entry; the broker attaches its msg.n_fds fds
 *
 * msg.flags may include PROTO_MSG_FLAG_SYNC, telling the client to dequeue
 * this entry with a RECV only.
 *
 * Return: the record size on success, -EINVAL for entry_id 0, -EINVAL or
 *         -EMSGSIZE for an entry proto_check_message() refuses, -ENOBUFS if
 *         @cap is too small.
 */
int proto_encode_entry(void *buf, size_t cap, const ProtoEntry *entry) {
        int r;

        r = proto_check_entry_id(entry->entry_id);
        if (r < 0)
                return r;
        r = proto_check_message(&entry->msg, PROTO_ENTRY_MSG_FLAGS);
        if (r < 0)
                return r;
        r = proto_encode_begin(buf, cap, PROTO_SIZE_ENTRY, PROTO_TYPE_ENTRY, 0);
        if (r < 0)
                return r;
        proto_write_entry(proto_at(buf, PROTO_SIZE_HEADER), entry);
        return (int)PROTO_SIZE_ENTRY;
}

/**
 * proto_encode_retract() - write a RETRACT
 * @buf:        destination buffer
 * @cap:        its size
 * @retract:    the ID of the pushed entry that was withdrawn, and with
 *              PROTO_RETRACT_FLAG_PREV_CONTINUES whether the entry before it
 *              now carries BUS1_MSG_FLAG_CONTINUE
 *
 * Return: the record size on success, -EINVAL for unknown flags or entry_id
 *         0, -ENOBUFS if @cap is too small.
 */
int proto_encode_retract(void *buf, size_t cap, const ProtoRetract *retract) {
        ProtoWireRetract w = {
                .entry_id = htole64(retract->entry_id),
                .flags = htole64(retract->flags),
        };
        int r;

        r = proto_check_retract(retract);
        if (r < 0)
                return r;
        return proto_encode_fixed(buf, cap, PROTO_TYPE_RETRACT, 0, &w, sizeof(w));
}

/* WAKE and RESYNC: a bare header with cookie 0 */
static int proto_encode_bare(void *buf, size_t cap, uint16_t type) {
        int r;

        r = proto_encode_begin(buf, cap, PROTO_SIZE_HEADER, type, 0);
        if (r < 0)
                return r;
        return (int)PROTO_SIZE_HEADER;
}

/**
 * proto_encode_wake() - write a WAKE
 * @buf:        destination buffer
 * @cap:        its size
 *
 * Return: the record size on success, -ENOBUFS if @cap is too small.
 */
int proto_encode_wake(void *buf, size_t cap) {
        return proto_encode_bare(buf, cap, PROTO_TYPE_WAKE);
}

/**
 * proto_encode_resync() - write a RESYNC
 * @buf:        destination buffer
 * @cap:        its size
 *
 * The broker sends it while handling one of the client's requests, before
 * that request's REPLY, and then pushes every entry still queued again.
 *
 * Return: the record size on success, -ENOBUFS if @cap is too small.
 */
int proto_encode_resync(void *buf, size_t cap) {
        return proto_encode_bare(buf, cap, PROTO_TYPE_RESYNC);
}

/**
 * proto_encode_ctl() - write a control request other than MONITOR
 * @buf:        destination buffer
 * @cap:        its size
 * @ctl:        the request; @ctl->type is STATUS, PEERS, PEER, QUOTA or METRICS
 *
 * Return: the record size on success, -EINVAL for another type or
 *         arguments proto_check_ctl() refuses, -ENOBUFS if @cap is too small.
 */
int proto_encode_ctl(void *buf, size_t cap, const ProtoCtl *ctl) {
        ProtoWireCtl w = {
                .flags = htole64(ctl->flags),
                .arg = htole64(ctl->arg),
        };
        int r;

        r = proto_check_ctl(ctl);
        if (r < 0)
                return r;
        return proto_encode_fixed(buf, cap, ctl->type, ctl->cookie, &w, sizeof(w));
}

/**
 * proto_encode_ctl_monitor() - write a MONITOR request
 * @buf:        destination buffer
 * @cap:        its size
 * @monitor:    the request
 *
 * Return: the record size on success, -EINVAL for unknown flags or event
 *         types, -ENOBUFS if @cap is too small.
 */
int proto_encode_ctl_monitor(void *buf, size_t cap, const ProtoCtlMonitor *monitor) {
        ProtoWireCtlMonitor w = {
                .flags = htole64(monitor->flags),
                .types = htole64(monitor->types),
                .peer = htole64(monitor->peer),
                .node = htole64(monitor->node),
                .uid = htole32(monitor->uid),
        };
        int r;

        r = proto_check_ctl_monitor(monitor);
        if (r < 0)
                return r;
        return proto_encode_fixed(buf, cap, PROTO_TYPE_CTL_MONITOR, monitor->cookie, &w,
                                  sizeof(w));
}

/**
 * proto_encode_reply_ctl() - write the REPLY to a control request
 * @buf:        destination buffer
 * @cap:        its size
 * @reply:      the reply; with a nonzero error only cookie and error are used
 *
 * The body itself travels ahead of the reply, in CTL_DATA records
 * (proto_encode_ctl_data()) that add up to @reply->n_bytes.
 *
 * Return: the record size on success, -EINVAL for a bad error value, format
 *         or flags, -EMSGSIZE for a body over PROTO_CTL_BYTES_MAX, -ENOBUFS
 *         if @cap is too small.
 */
int proto_encode_reply_ctl(void *buf, size_t cap, const ProtoReplyCtl *reply) {
        ProtoWireReplyCtl w = {
                .n_bytes = htole64(reply->n_bytes),
                .format = htole32(reply->format),
                .flags = htole32(reply->flags),
        };
        int r;

        if (reply->error != 0)
                return proto_encode_reply_error(buf, cap, reply->cookie, reply->error);
        r = proto_check_reply_ctl(reply);
        if (r < 0)
                return r;
        r = proto_encode_reply_begin(buf, cap, reply->cookie, 0, sizeof(w));
        if (r < 0)
                return r;
        memcpy(proto_at(buf, PROTO_SIZE_REPLY), &w, sizeof(w));
        return (int)PROTO_SIZE_REPLY_CTL;
}

/**
 * proto_encode_ctl_data() - write a CTL_DATA record
 * @buf:        destination buffer
 * @cap:        its size
 * @cookie:     the cookie of the control request being answered
 * @bytes:      the next part of the reply's body
 * @n_bytes:    its size, 1..PROTO_CTL_DATA_MAX
 *
 * Return: the record size on success, -EINVAL for an empty or too large
 *         part or one holding a NUL byte, -ENOBUFS if @cap is too small.
 */
int proto_encode_ctl_data(void *buf, size_t cap, uint64_t cookie, const void *bytes,
                          size_t n_bytes) {
        ProtoWireCtlData w = { .n_bytes = htole32((uint32_t)n_bytes) };
        size_t size;
        int r;

        r = proto_check_ctl_data(bytes, n_bytes);
        if (r < 0)
                return r;
        r = proto_size_ctl_data(&size, n_bytes);
        if (r < 0)
                return r;
        r = proto_encode_begin(buf, cap, size, PROTO_TYPE_CTL_DATA, cookie);
        if (r < 0)
                return r;
        memcpy(proto_at(buf, PROTO_SIZE_HEADER), &w, sizeof(w));
        memcpy(proto_at(buf, PROTO_SIZE_CTL_DATA_MIN), bytes, n_bytes);
        return (int)size;
}

/**
 * proto_encode_events() - write an EVENTS record
 * @buf:        destination buffer
 * @cap:        its size
 * @events:     the events, in the order they happened
 * @n_events:   their number, 1..PROTO_EVENTS_MAX
 *
 * Return: the record size on success, -EINVAL for a count out of range or
 *         an event proto_check_event() refuses, -ENOBUFS if @cap is too
 *         small.
 */
int proto_encode_events(void *buf, size_t cap, const ProtoEvent *events, size_t n_events) {
        ProtoWireEvents w = { .n_events = htole32((uint32_t)n_events) };
        size_t size;
        int r;

        r = proto_check_events(n_events);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_events; ++i) {
                r = proto_check_event(&events[i]);
                if (r < 0)
                        return r;
        }
        r = proto_size_events(&size, n_events);
        if (r < 0)
                return r;
        r = proto_encode_begin(buf, cap, size, PROTO_TYPE_EVENTS, 0);
        if (r < 0)
                return r;
        memcpy(proto_at(buf, PROTO_SIZE_HEADER), &w, sizeof(w));
        for (size_t i = 0; i < n_events; ++i) {
                const ProtoEvent *e = &events[i];
                ProtoWireEvent we = {
                        .seq = htole64(e->seq),
                        .time = htole64(e->time),
                        .type = htole32(e->type),
                        .error = htole32(e->error),
                        .peer = htole64(e->peer),
                        .uid = htole32(e->uid),
                        .pid = htole32(e->pid),
                        .target = htole64(e->target),
                        .target_uid = htole32(e->target_uid),
                        .target_pid = htole32(e->target_pid),
                        .node = htole64(e->node),
                        .n_bytes = htole64(e->n_bytes),
                        .n_handles = htole32(e->n_handles),
                        .n_fds = htole32(e->n_fds),
                        .count = htole64(e->count),
                        .message = htole64(e->message),
                };

                memcpy(proto_at(buf, PROTO_SIZE_EVENTS_MIN + i * sizeof(we)), &we, sizeof(we));
        }
        return (int)size;
}
