/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Proto decoder: from a received packet to a checked record
 *
 * Each proto_decode_<type>() takes one packet exactly as recvmsg() returned
 * it (@buf, @len) plus the number of fds that came with it (those of the
 * FDS/PUSH_FDS carriers ahead of it included), and either fills its output
 * struct or returns an errno without writing anything. Nothing is allocated
 * and no socket is touched: array members of the output point into @buf.
 *
 * Every byte of the record is looked at before success is returned: header
 * fields, every reserved field and padding byte, every flag bit and value.
 * The checks run in one fixed order: the header (proto_decode_header()), the
 * record type, the size of the fixed part, reserved fields, the arguments
 * (check.c), the size computed from the counts (size.c), the entries of
 * arrays whose values are checked, padding, and last the number of attached
 * fds. Reads use memcpy(), so a buffer of any
 * alignment is safe, and no read happens beyond @len: the fixed part is read
 * only after len was found to hold it, arrays only after the size computed
 * from their counts was found to equal len.
 *
 * Framing errors are -EBADMSG and close the connection; argument errors are
 * answered. The records nobody answers, FDS and ACK, turn every error into
 * -EBADMSG. proto.h describes the policy.
 */

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "proto/check.h"
#include "proto/proto.h"

static const uint8_t *proto_at(const void *buf, size_t offset) {
        return (const uint8_t *)buf + offset;
}

static bool proto_is_zero(const void *p, size_t n) {
        const uint8_t *b = p;
        size_t i;

        for (i = 0; i < n; ++i)
                if (b[i])
                        return false;
        return true;
}

/**
 * proto_decode_header() - check the framing of a packet and read its header
 * @hdrp:       output: the header in host byte order
 * @buf:        the packet
 * @len:        its length, as recvmsg() returned it
 *
 * Checks what every record shares: at least a header, at most
 * PROTO_RECORD_MAX, a multiple of 8, the header's size equal to @len, and the
 * version BUS1_PROTO_VERSION. The type is not judged here (see
 * proto_check_request_type()), so a receiver can learn the cookie of any
 * well-framed request and answer it.
 *
 * Return: 0 on success, -EBADMSG for a framing error.
 */
int proto_decode_header(ProtoHeader *hdrp, const void *buf, size_t len) {
        ProtoWireHeader w;
        ProtoHeader hdr;

        if (len < sizeof(w) || len > PROTO_RECORD_MAX || len % 8 != 0)
                return -EBADMSG;
        memcpy(&w, buf, sizeof(w));
        hdr.size = le32toh(w.size);
        hdr.version = le16toh(w.version);
        hdr.type = le16toh(w.type);
        hdr.cookie = le64toh(w.cookie);
        if (hdr.size != len || hdr.version != BUS1_PROTO_VERSION)
                return -EBADMSG;
        *hdrp = hdr;
        return 0;
}

/**
 * proto_check_request_type() - classify the type of a record sent to the broker
 * @type:       type from proto_decode_header()
 *
 * Return: 0 for a defined request type (the control requests STATUS to
 *         MONITOR, 0x1000-0x1005, included); -ENOTTY for an undefined one in
 *         the request range 0x0001-0x7fff (the rest of the control range
 *         0x1000-0x1fff included), answered like any argument error; -EBADMSG for 0 and for
 *         the broker-to-client range 0x8000-0xffff, a protocol violation.
 */
int proto_check_request_type(uint16_t type) {
        switch (type) {
        case PROTO_TYPE_HELLO:
        case PROTO_TYPE_FDS:
        case PROTO_TYPE_ACK:
        case PROTO_TYPE_PEER_DISCONNECT:
        case PROTO_TYPE_PEER_QUERY:
        case PROTO_TYPE_PEER_RESET:
        case PROTO_TYPE_HANDLE_RELEASE:
        case PROTO_TYPE_HANDLE_TRANSFER:
        case PROTO_TYPE_NODES_DESTROY:
        case PROTO_TYPE_SLICE_RELEASE:
        case PROTO_TYPE_SLICE_FDS:
        case PROTO_TYPE_SEND:
        case PROTO_TYPE_RECV:
        case PROTO_TYPE_CTL_STATUS:
        case PROTO_TYPE_CTL_PEERS:
        case PROTO_TYPE_CTL_PEER:
        case PROTO_TYPE_CTL_QUOTA:
        case PROTO_TYPE_CTL_METRICS:
        case PROTO_TYPE_CTL_MONITOR:
                return 0;
        }
        if (type >= PROTO_TYPE_REQUEST_FIRST && type <= PROTO_TYPE_REQUEST_LAST)
                return -ENOTTY;
        return -EBADMSG;
}

/*
 * Decode the header, require @type, and a size of exactly @size (@exact) or
 * at least @size. Returns the cookie.
 */
static int proto_decode_frame(uint64_t *cookiep, const void *buf, size_t len, uint16_t type,
                              size_t size, bool exact) {
        ProtoHeader hdr;
        int r;

        r = proto_decode_header(&hdr, buf, len);
        if (r < 0)
                return r;
        if (hdr.type != type)
                return -EBADMSG;
        if (len < size || (exact && len != size))
                return -EBADMSG;
        *cookiep = hdr.cookie;
        return 0;
}

/*
 * Like proto_decode_frame(), for the records nobody answers, whose cookie is
 * always 0: pushed records and ACK.
 */
static int proto_decode_frame_no_cookie(const void *buf, size_t len, uint16_t type,
                                        size_t size) {
        uint64_t cookie;
        int r;

        r = proto_decode_frame(&cookie, buf, len, type, size, true);
        if (r < 0)
                return r;
        return cookie == 0 ? 0 : -EBADMSG;
}

/* the one check that comes last everywhere */
static int proto_check_n_fds(size_t n_fds, size_t expected) {
        return n_fds == expected ? 0 : -EBADMSG;
}

/**
 * proto_decode_hello() - decode a HELLO request
 * @hellop:     output: the decoded request
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Return: 0 on success, -EBADMSG for a framing error, -EINVAL for unknown
 *         flags or a bad version range, -EPROTONOSUPPORT if the range holds
 *         no version this implementation speaks.
 */
int proto_decode_hello(ProtoHello *hellop, const void *buf, size_t len, size_t n_fds) {
        ProtoWireHello w;
        ProtoHello hello;
        int r;

        r = proto_decode_frame(&hello.cookie, buf, len, PROTO_TYPE_HELLO, PROTO_SIZE_HELLO, true);
        if (r < 0)
                return r;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        hello.flags = le64toh(w.flags);
        hello.version_min = le32toh(w.version_min);
        hello.version_max = le32toh(w.version_max);
        r = proto_check_hello(&hello);
        if (r < 0)
                return r;
        r = proto_check_n_fds(n_fds, 0);
        if (r < 0)
                return r;
        *hellop = hello;
        return 0;
}

/**
 * proto_decode_fds() - decode an FDS or PUSH_FDS carrier
 * @fdsp:       output: the decoded carrier
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with this packet, or PROTO_FDS_LOST if the
 *              receiver could not take them all (MSG_CTRUNC)
 *
 * A carrier holds fds for the next record that is not a carrier; its own
 * count must be between 1 and PROTO_PACKET_FDS_MAX and equal @n_fds. The
 * receiver keeps the fds and adds them in front of those of that next
 * record; checking that the total stays within PROTO_RECORD_FDS_MAX is the
 * receiver's, as it holds the state.
 *
 * Return: 0 on success, -EBADMSG for anything wrong: a carrier is never
 *         answered.
 */
int proto_decode_fds(ProtoFds *fdsp, const void *buf, size_t len, size_t n_fds) {
        ProtoWireFds w;
        ProtoHeader hdr;
        ProtoFds fds;
        int r;

        r = proto_decode_header(&hdr, buf, len);
        if (r < 0)
                return r;
        if (hdr.type != PROTO_TYPE_FDS && hdr.type != PROTO_TYPE_PUSH_FDS)
                return -EBADMSG;
        if (len != PROTO_SIZE_FDS || hdr.cookie != 0)
                return -EBADMSG;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        if (w.reserved != 0)
                return -EBADMSG;
        fds.type = hdr.type;
        fds.n_fds = le32toh(w.n_fds);
        if (fds.n_fds < 1 || fds.n_fds > PROTO_PACKET_FDS_MAX)
                return -EBADMSG;
        if (n_fds != PROTO_FDS_LOST) {
                r = proto_check_n_fds(n_fds, fds.n_fds);
                if (r < 0)
                        return r;
        }
        *fdsp = fds;
        return 0;
}

/**
 * proto_decode_ack() - decode an ACK
 * @ackp:       output: the decoded record
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * The client reports that it has dequeued locally every pushed entry up to
 * @ackp->entry_id that it did not dequeue with a RECV. Whether the broker
 * pushed that entry is the broker's to check.
 *
 * Return: 0 on success, -EBADMSG for anything wrong, entry_id 0 included:
 *         an ACK is never answered.
 */
int proto_decode_ack(ProtoAck *ackp, const void *buf, size_t len, size_t n_fds) {
        ProtoWireId w;
        ProtoAck ack;
        int r;

        r = proto_decode_frame_no_cookie(buf, len, PROTO_TYPE_ACK, PROTO_SIZE_ACK);
        if (r < 0)
                return r;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        ack.entry_id = le64toh(w.id);
        /* no REPLY could carry an argument error, so it is a violation */
        if (proto_check_entry_id(ack.entry_id) < 0)
                return -EBADMSG;
        r = proto_check_n_fds(n_fds, 0);
        if (r < 0)
                return r;
        *ackp = ack;
        return 0;
}

/* PEER_DISCONNECT and PEER_QUERY: a flags field that must be 0 */
static int proto_decode_flags_only(uint64_t *cookiep, uint64_t *flagsp, const void *buf,
                                   size_t len, size_t n_fds, uint16_t type) {
        ProtoWireFlags w;
        uint64_t cookie, flags;
        int r;

        r = proto_decode_frame(&cookie, buf, len, type, PROTO_SIZE_HEADER + sizeof(w), true);
        if (r < 0)
                return r;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        flags = le64toh(w.flags);
        r = proto_check_flags(flags, 0);
        if (r < 0)
                return r;
        r = proto_check_n_fds(n_fds, 0);
        if (r < 0)
                return r;
        *cookiep = cookie;
        *flagsp = flags;
        return 0;
}

/**
 * proto_decode_peer_disconnect() - decode a PEER_DISCONNECT request
 * @disconnectp: output: the decoded request
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Return: 0 on success, -EBADMSG for a framing error, -EINVAL for nonzero
 *         flags.
 */
int proto_decode_peer_disconnect(ProtoPeerDisconnect *disconnectp, const void *buf, size_t len,
                                 size_t n_fds) {
        ProtoPeerDisconnect disconnect;
        int r;

        r = proto_decode_flags_only(&disconnect.cookie, &disconnect.flags, buf, len, n_fds,
                                    PROTO_TYPE_PEER_DISCONNECT);
        if (r < 0)
                return r;
        *disconnectp = disconnect;
        return 0;
}

/**
 * proto_decode_peer_query() - decode a PEER_QUERY request
 * @queryp:     output: the decoded request
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Return: 0 on success, -EBADMSG for a framing error, -EINVAL for nonzero
 *         flags.
 */
int proto_decode_peer_query(ProtoPeerQuery *queryp, const void *buf, size_t len, size_t n_fds) {
        ProtoPeerQuery query;
        int r;

        r = proto_decode_flags_only(&query.cookie, &query.flags, buf, len, n_fds,
                                    PROTO_TYPE_PEER_QUERY);
        if (r < 0)
                return r;
        *queryp = query;
        return 0;
}

/**
 * proto_decode_peer_reset() - decode a PEER_RESET request
 * @resetp:     output: the decoded request
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Return: 0 on success, -EBADMSG for a framing error, -EINVAL for unknown
 *         flags or peer flags, or a limit above INT_MAX that is not all ones.
 */
int proto_decode_peer_reset(ProtoPeerReset *resetp, const void *buf, size_t len, size_t n_fds) {
        ProtoWirePeerReset w;
        ProtoPeerReset reset;
        int r;

        r = proto_decode_frame(&reset.cookie, buf, len, PROTO_TYPE_PEER_RESET,
                               PROTO_SIZE_PEER_RESET, true);
        if (r < 0)
                return r;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        reset.flags = le64toh(w.flags);
        reset.peer_flags = le64toh(w.peer_flags);
        reset.max_slices = le32toh(w.max_slices);
        reset.max_handles = le32toh(w.max_handles);
        reset.max_inflight_bytes = le32toh(w.max_inflight_bytes);
        reset.max_inflight_fds = le32toh(w.max_inflight_fds);
        r = proto_check_peer_reset(&reset);
        if (r < 0)
                return r;
        r = proto_check_n_fds(n_fds, 0);
        if (r < 0)
                return r;
        *resetp = reset;
        return 0;
}

/* HANDLE_RELEASE and SLICE_RELEASE: one u64 of any value */
static int proto_decode_id(uint64_t *cookiep, uint64_t *idp, const void *buf, size_t len,
                           size_t n_fds, uint16_t type) {
        ProtoWireId w;
        uint64_t cookie;
        int r;

        r = proto_decode_frame(&cookie, buf, len, type, PROTO_SIZE_HEADER + sizeof(w), true);
        if (r < 0)
                return r;
        r = proto_check_n_fds(n_fds, 0);
        if (r < 0)
                return r;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        *cookiep = cookie;
        *idp = le64toh(w.id);
        return 0;
}

/**
 * proto_decode_handle_release() - decode a HANDLE_RELEASE request
 * @releasep:   output: the decoded request
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Any ID is well-formed; whether the caller holds it is the model's question.
 *
 * Return: 0 on success, -EBADMSG for a framing error.
 */
int proto_decode_handle_release(ProtoHandleRelease *releasep, const void *buf, size_t len,
                                size_t n_fds) {
        ProtoHandleRelease release;
        int r;

        r = proto_decode_id(&release.cookie, &release.id, buf, len, n_fds,
                            PROTO_TYPE_HANDLE_RELEASE);
        if (r < 0)
                return r;
        *releasep = release;
        return 0;
}

/**
 * proto_decode_handle_transfer() - decode a HANDLE_TRANSFER request
 * @transferp:  output: the decoded request
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it: 1 with PROTO_DST_FD, else 0
 *
 * Return: 0 on success, -EBADMSG for a framing error (nonzero reserved
 *         field, wrong number of fds), -EINVAL for unknown flags or an
 *         unknown dst_mode.
 */
int proto_decode_handle_transfer(ProtoHandleTransfer *transferp, const void *buf, size_t len,
                                 size_t n_fds) {
        ProtoWireHandleTransfer w;
        ProtoHandleTransfer transfer;
        int r;

        r = proto_decode_frame(&transfer.cookie, buf, len, PROTO_TYPE_HANDLE_TRANSFER,
                               PROTO_SIZE_HANDLE_TRANSFER, true);
        if (r < 0)
                return r;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        if (w.reserved != 0)
                return -EBADMSG;
        transfer.flags = le64toh(w.flags);
        transfer.src_handle = le64toh(w.src_handle);
        transfer.dst_mode = le32toh(w.dst_mode);
        r = proto_check_handle_transfer(&transfer);
        if (r < 0)
                return r;
        r = proto_check_n_fds(n_fds, proto_handle_transfer_n_fds(&transfer));
        if (r < 0)
                return r;
        *transferp = transfer;
        return 0;
}

/**
 * proto_decode_nodes_destroy() - decode a NODES_DESTROY request
 * @destroyp:   output: the decoded request, @ids pointing into @buf
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Return: 0 on success, -EBADMSG for a framing error (size other than
 *         exactly n_nodes IDs), -EINVAL for unknown flags or more than
 *         PROTO_NODES_MAX nodes.
 */
int proto_decode_nodes_destroy(ProtoNodesDestroy *destroyp, const void *buf, size_t len,
                               size_t n_fds) {
        ProtoWireNodesDestroy w;
        ProtoNodesDestroy destroy;
        uint64_t n_ids;
        size_t size;
        int r;

        r = proto_decode_frame(&destroy.cookie, buf, len, PROTO_TYPE_NODES_DESTROY,
                               PROTO_SIZE_NODES_DESTROY_MIN, false);
        if (r < 0)
                return r;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        destroy.flags = le64toh(w.flags);
        destroy.n_nodes = le64toh(w.n_nodes);
        r = proto_check_nodes_destroy(destroy.flags, destroy.n_nodes);
        if (r < 0)
                return r;
        n_ids = proto_nodes_destroy_n_ids(destroy.flags, destroy.n_nodes);
        r = proto_size_nodes_destroy(&size, n_ids);
        if (r < 0 || size != len)
                return -EBADMSG;
        r = proto_check_n_fds(n_fds, 0);
        if (r < 0)
                return r;
        destroy.ids = n_ids ? proto_at(buf, PROTO_SIZE_NODES_DESTROY_MIN) : NULL;
        *destroyp = destroy;
        return 0;
}

/**
 * proto_decode_slice_release() - decode a SLICE_RELEASE request
 * @releasep:   output: the decoded request
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Any offset is well-formed; an unknown one is the model's -ENXIO.
 *
 * Return: 0 on success, -EBADMSG for a framing error.
 */
int proto_decode_slice_release(ProtoSliceRelease *releasep, const void *buf, size_t len,
                               size_t n_fds) {
        ProtoSliceRelease release;
        int r;

        r = proto_decode_id(&release.cookie, &release.offset, buf, len, n_fds,
                            PROTO_TYPE_SLICE_RELEASE);
        if (r < 0)
                return r;
        *releasep = release;
        return 0;
}

/**
 * proto_decode_slice_fds() - decode a SLICE_FDS request
 * @slice_fdsp: output: the decoded request, fds pointing into @buf
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0: the record carries fd
 *              numbers, not fds)
 *
 * Whether offset and count are those of the RECV the broker answered last is
 * the broker's question (-EINVAL otherwise).
 *
 * Return: 0 on success, -EBADMSG for a framing error (nonzero reserved
 *         field, size other than exactly n_fds numbers padded to 8, nonzero
 *         padding, attached fds), -EINVAL for a count of 0 or above
 *         BUS1_FD_MAX or a negative fd number.
 */
int proto_decode_slice_fds(ProtoSliceFds *slice_fdsp, const void *buf, size_t len,
                           size_t n_fds) {
        ProtoWireSliceFds w;
        ProtoSliceFds slice_fds;
        size_t size, pos, i;
        int r;

        r = proto_decode_frame(&slice_fds.cookie, buf, len, PROTO_TYPE_SLICE_FDS,
                               PROTO_SIZE_SLICE_FDS_MIN, false);
        if (r < 0)
                return r;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        if (w.reserved != 0)
                return -EBADMSG;
        slice_fds.offset = le64toh(w.offset);
        slice_fds.n_fds = le32toh(w.n_fds);
        r = proto_check_slice_fds(slice_fds.n_fds);
        if (r < 0)
                return r;
        r = proto_size_slice_fds(&size, slice_fds.n_fds);
        if (r < 0 || size != len)
                return -EBADMSG;

        /* size == len, so the numbers and the padding lie within the buffer */
        slice_fds.fds = proto_at(buf, PROTO_SIZE_SLICE_FDS_MIN);
        for (i = 0; i < slice_fds.n_fds; ++i) {
                r = proto_check_slice_fd(proto_s32_at(slice_fds.fds, i));
                if (r < 0)
                        return r;
        }
        pos = PROTO_SIZE_SLICE_FDS_MIN + (size_t)slice_fds.n_fds * sizeof(uint32_t);
        if (!proto_is_zero(proto_at(buf, pos), len - pos))
                return -EBADMSG;

        r = proto_check_n_fds(n_fds, 0);
        if (r < 0)
                return r;
        *slice_fdsp = slice_fds;
        return 0;
}

/**
 * proto_decode_send() - decode a SEND request
 * @sendp:      output: the decoded request, arrays and payload pointing into @buf
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it: n_fds, plus 1 (the payload memfd, last)
 *              with PROTO_PAYLOAD_MEMFD
 *
 * Return: 0 on success; -EBADMSG for a framing error (size other than
 *         exactly what the counts and the inline payload need, nonzero
 *         padding, wrong number of fds); -EINVAL for unknown flags, an
 *         unknown payload_mode, a memfd_offset with an inline payload, SEED
 *         with destinations or CONTINUE, or more than PROTO_DESTINATIONS_MAX
 *         destinations; -EMSGSIZE for more than PROTO_HANDLES_MAX handles,
 *         more than BUS1_FD_MAX fds, over 2 GiB of payload, or a memfd range
 *         beyond PROTO_OFFSET_MAX.
 */
int proto_decode_send(ProtoSend *sendp, const void *buf, size_t len, size_t n_fds) {
        ProtoWireSend w;
        ProtoSend send_req;
        size_t size, pos;
        uint32_t n_ids;
        int r;

        r = proto_decode_frame(&send_req.cookie, buf, len, PROTO_TYPE_SEND, PROTO_SIZE_SEND_MIN,
                               false);
        if (r < 0)
                return r;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        send_req.flags = le64toh(w.flags);
        send_req.n_destinations = le32toh(w.n_destinations);
        send_req.n_handles = le32toh(w.n_handles);
        send_req.n_fds = le32toh(w.n_fds);
        send_req.payload_mode = le32toh(w.payload_mode);
        send_req.n_bytes = le64toh(w.n_bytes);
        send_req.memfd_offset = le64toh(w.memfd_offset);
        r = proto_check_send(&send_req);
        if (r < 0)
                return r;
        n_ids = proto_send_n_destination_ids(send_req.flags, send_req.n_destinations);
        r = proto_size_send(&size, n_ids, send_req.n_handles, send_req.payload_mode,
                            send_req.n_bytes);
        if (r < 0 || size != len)
                return -EBADMSG;

        /* size == len, so every position below lies within the buffer */
        pos = PROTO_SIZE_SEND_MIN;
        send_req.destinations = n_ids ? proto_at(buf, pos) : NULL;
        pos += (size_t)n_ids * sizeof(uint64_t);
        send_req.handles = proto_at(buf, pos);
        pos += (size_t)send_req.n_handles * sizeof(uint64_t);
        send_req.payload = NULL;
        if (send_req.payload_mode == PROTO_PAYLOAD_INLINE) {
                send_req.payload = proto_at(buf, pos);
                pos += (size_t)send_req.n_bytes;
                if (!proto_is_zero(proto_at(buf, pos), len - pos))
                        return -EBADMSG;
        }

        r = proto_check_n_fds(n_fds, proto_send_n_fds(&send_req));
        if (r < 0)
                return r;
        *sendp = send_req;
        return 0;
}

/**
 * proto_decode_recv() - decode a RECV request
 * @recvp:      output: the decoded request
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Return: 0 on success, -EBADMSG for a framing error, -EINVAL for unknown
 *         flags.
 */
int proto_decode_recv(ProtoRecv *recvp, const void *buf, size_t len, size_t n_fds) {
        ProtoWireRecv w;
        ProtoRecv recv_req;
        int r;

        r = proto_decode_frame(&recv_req.cookie, buf, len, PROTO_TYPE_RECV, PROTO_SIZE_RECV, true);
        if (r < 0)
                return r;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        recv_req.flags = le64toh(w.flags);
        recv_req.max_offset = le64toh(w.max_offset);
        r = proto_check_recv(&recv_req);
        if (r < 0)
                return r;
        r = proto_check_n_fds(n_fds, 0);
        if (r < 0)
                return r;
        *recvp = recv_req;
        return 0;
}

/*
 * The part every REPLY shares. An error reply is exactly the header and
 * {error, reserved} with no fds, and gives 1; a success reply must hold
 * @size bytes (exactly, if @exact) and gives 0.
 */
static int proto_decode_reply_frame(ProtoReply *replyp, const void *buf, size_t len,
                                    size_t n_fds, size_t size, bool exact) {
        ProtoWireReply w;
        ProtoReply reply;
        int r;

        r = proto_decode_frame(&reply.cookie, buf, len, PROTO_TYPE_REPLY, PROTO_SIZE_REPLY,
                               false);
        if (r < 0)
                return r;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        if (w.reserved != 0)
                return -EBADMSG;
        reply.error = le32toh(w.error);
        r = proto_check_error(reply.error);
        if (r < 0)
                return r;
        if (reply.error != 0) {
                if (len != PROTO_SIZE_REPLY || n_fds != 0)
                        return -EBADMSG;
                *replyp = reply;
                return 1;
        }
        if (len < size || (exact && len != size))
                return -EBADMSG;
        *replyp = reply;
        return 0;
}

/**
 * proto_decode_reply() - decode a REPLY without a body
 * @replyp:     output: cookie and error
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * For error replies to any request, and for the successful replies to
 * PEER_DISCONNECT, PEER_RESET, HANDLE_RELEASE, NODES_DESTROY, SLICE_RELEASE
 * and SLICE_FDS, which have no body.
 *
 * Return: 0 on success, -EBADMSG for a framing error (a body included),
 *         -EINVAL for an error above PROTO_ERRNO_MAX.
 */
int proto_decode_reply(ProtoReply *replyp, const void *buf, size_t len, size_t n_fds) {
        ProtoReply reply;
        int r;

        r = proto_decode_reply_frame(&reply, buf, len, n_fds, PROTO_SIZE_REPLY, true);
        if (r < 0)
                return r;
        r = proto_check_n_fds(n_fds, 0);
        if (r < 0)
                return r;
        *replyp = reply;
        return 0;
}

/**
 * proto_decode_reply_hello() - decode the REPLY to a HELLO
 * @replyp:     output: the decoded reply; body fields 0 if it carries an error
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it: the pool fd and the release ring's
 *              on success, none on error
 *
 * Return: 0 on success, -EBADMSG for a framing error, -EINVAL for a bad
 *         error value or pool size, -EPROTONOSUPPORT for a version this
 *         implementation does not speak.
 */
int proto_decode_reply_hello(ProtoReplyHello *replyp, const void *buf, size_t len,
                             size_t n_fds) {
        ProtoReplyHello reply = {};
        ProtoWireReplyHello w;
        ProtoReply frame;
        int r;

        r = proto_decode_reply_frame(&frame, buf, len, n_fds, PROTO_SIZE_REPLY_HELLO, true);
        if (r < 0)
                return r;
        reply.cookie = frame.cookie;
        reply.error = frame.error;
        if (r == 0) {
                memcpy(&w, proto_at(buf, PROTO_SIZE_REPLY), sizeof(w));
                reply.peer_id = le64toh(w.peer_id);
                reply.pool_size = le64toh(w.pool_size);
                reply.version = le32toh(w.version);
                reply.user_max_handles = le32toh(w.user_max_handles);
                r = proto_check_reply_hello(&reply);
                if (r < 0)
                        return r;
                r = proto_check_n_fds(n_fds, 2);
                if (r < 0)
                        return r;
        }
        *replyp = reply;
        return 0;
}

/**
 * proto_decode_reply_peer_query() - decode the REPLY to a PEER_QUERY
 * @replyp:     output: the decoded reply; body fields 0 if it carries an error
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Return: 0 on success, -EBADMSG for a framing error, -EINVAL for a bad
 *         error value, nonzero flags, unknown peer flags or a limit above
 *         INT_MAX.
 */
int proto_decode_reply_peer_query(ProtoReplyPeerQuery *replyp, const void *buf, size_t len,
                                  size_t n_fds) {
        ProtoReplyPeerQuery reply = {};
        ProtoWirePeerReset w;
        ProtoReply frame;
        int r;

        r = proto_decode_reply_frame(&frame, buf, len, n_fds, PROTO_SIZE_REPLY_PEER_QUERY, true);
        if (r < 0)
                return r;
        reply.cookie = frame.cookie;
        reply.error = frame.error;
        if (r == 0) {
                memcpy(&w, proto_at(buf, PROTO_SIZE_REPLY), sizeof(w));
                reply.flags = le64toh(w.flags);
                reply.peer_flags = le64toh(w.peer_flags);
                reply.max_slices = le32toh(w.max_slices);
                reply.max_handles = le32toh(w.max_handles);
                reply.max_inflight_bytes = le32toh(w.max_inflight_bytes);
                reply.max_inflight_fds = le32toh(w.max_inflight_fds);
                r = proto_check_reply_peer_query(&reply);
                if (r < 0)
                        return r;
                r = proto_check_n_fds(n_fds, 0);
                if (r < 0)
                        return r;
        }
        *replyp = reply;
        return 0;
}

/**
 * proto_decode_reply_handle_transfer() - decode the REPLY to a HANDLE_TRANSFER
 * @replyp:     output: the decoded reply; dst_handle 0 if it carries an error
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Return: 0 on success, -EBADMSG for a framing error, -EINVAL for a bad
 *         error value.
 */
int proto_decode_reply_handle_transfer(ProtoReplyHandleTransfer *replyp, const void *buf,
                                       size_t len, size_t n_fds) {
        ProtoReplyHandleTransfer reply = {};
        ProtoReply frame;
        ProtoWireId w;
        int r;

        r = proto_decode_reply_frame(&frame, buf, len, n_fds, PROTO_SIZE_REPLY_HANDLE_TRANSFER,
                                     true);
        if (r < 0)
                return r;
        reply.cookie = frame.cookie;
        reply.error = frame.error;
        if (r == 0) {
                r = proto_check_n_fds(n_fds, 0);
                if (r < 0)
                        return r;
                memcpy(&w, proto_at(buf, PROTO_SIZE_REPLY), sizeof(w));
                reply.dst_handle = le64toh(w.id);
        }
        *replyp = reply;
        return 0;
}

/*
 * The body of a successful SEND reply; @reply already has cookie and
 * error. The counts are checked before the size, the size before any error.
 */
static int proto_decode_reply_send_body(ProtoReplySend *reply, const void *buf, size_t len,
                                        size_t n_fds) {
        ProtoWireReplySend w;
        size_t size;
        uint64_t i;
        int r;

        memcpy(&w, proto_at(buf, PROTO_SIZE_REPLY), sizeof(w));
        reply->n_errors = le64toh(w.n_errors);
        r = proto_check_reply_send(reply->n_errors);
        if (r < 0)
                return r;
        r = proto_size_reply_send(&size, reply->n_errors);
        if (r < 0 || size != len)
                return -EBADMSG;
        reply->errors = proto_at(buf, PROTO_SIZE_REPLY_SEND_MIN);
        for (i = 0; i < reply->n_errors; ++i) {
                r = proto_check_error(proto_u64_at(reply->errors, i));
                if (r < 0)
                        return r;
        }
        return proto_check_n_fds(n_fds, 0);
}

/**
 * proto_decode_reply_send() - decode the REPLY to a SEND
 * @replyp:     output: the decoded reply, errors pointing into @buf; n_errors
 *              0 if it carries an error
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Whether n_errors matches the request (0, or n_destinations with
 * PROTO_SEND_FLAG_ERRORS) is the caller's to check: it holds the request.
 *
 * Return: 0 on success, -EBADMSG for a framing error (size other than
 *         exactly n_errors entries), -EINVAL for an error value above
 *         PROTO_ERRNO_MAX, in the reply or in any entry, -EMSGSIZE for more
 *         than PROTO_DESTINATIONS_MAX entries.
 */
int proto_decode_reply_send(ProtoReplySend *replyp, const void *buf, size_t len, size_t n_fds) {
        ProtoReplySend reply = {};
        ProtoReply frame;
        int r;

        r = proto_decode_reply_frame(&frame, buf, len, n_fds, PROTO_SIZE_REPLY_SEND_MIN, false);
        if (r < 0)
                return r;
        reply.cookie = frame.cookie;
        reply.error = frame.error;
        if (r == 0) {
                r = proto_decode_reply_send_body(&reply, buf, len, n_fds);
                if (r < 0)
                        return r;
        }
        *replyp = reply;
        return 0;
}

/* an entry as ENTRY and the RECV reply carry it */
static void proto_read_entry(ProtoEntry *entry, const void *p) {
        ProtoWireEntry w;

        memcpy(&w, p, sizeof(w));
        entry->entry_id = le64toh(w.entry_id);
        entry->msg.type = le64toh(w.msg.type);
        entry->msg.flags = le64toh(w.msg.flags);
        entry->msg.destination = le64toh(w.msg.destination);
        entry->msg.uid = le32toh(w.msg.uid);
        entry->msg.gid = le32toh(w.msg.gid);
        entry->msg.pid = le32toh(w.msg.pid);
        entry->msg.tid = le32toh(w.msg.tid);
        entry->msg.offset = le64toh(w.msg.offset);
        entry->msg.n_bytes = le64toh(w.msg.n_bytes);
        entry->msg.n_handles = le64toh(w.msg.n_handles);
        entry->msg.n_fds = le64toh(w.msg.n_fds);
        entry->msg.n_secctx = le64toh(w.msg.n_secctx);
}

/**
 * proto_decode_reply_recv() - decode the REPLY to a RECV
 * @replyp:     output: the decoded reply; entry all 0 if it carries an error
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it: msg.n_fds, or 0 (a PEEK with
 *              BUS1_RECV_FLAG_INSTALL_FDS reports the count, installs none)
 *
 * The entry_id is that of the queue entry (so a client can drop a pushed
 * copy), or 0 for the seed. The entry never carries PROTO_MSG_FLAG_SYNC: it
 * is dequeued already.
 *
 * Return: 0 on success, -EBADMSG for a framing error, -EINVAL or -EMSGSIZE
 *         for an entry proto_check_message() refuses (SYNC included),
 *         -EINVAL for a bad error value.
 */
int proto_decode_reply_recv(ProtoReplyRecv *replyp, const void *buf, size_t len, size_t n_fds) {
        ProtoReplyRecv reply = {};
        ProtoReply frame;
        int r;

        r = proto_decode_reply_frame(&frame, buf, len, n_fds, PROTO_SIZE_REPLY_RECV, true);
        if (r < 0)
                return r;
        reply.cookie = frame.cookie;
        reply.error = frame.error;
        if (r == 0) {
                proto_read_entry(&reply.entry, proto_at(buf, PROTO_SIZE_REPLY));
                r = proto_check_message(&reply.entry.msg, PROTO_MSG_FLAGS);
                if (r < 0)
                        return r;
                /* a PEEK reports the fds without handing them over */
                if (n_fds)
                        r = proto_check_n_fds(n_fds, reply.entry.msg.n_fds);
                if (r < 0)
                        return r;
        }
        *replyp = reply;
        return 0;
}

/**
 * proto_decode_entry() - decode a pushed ENTRY
 * @entryp:     output: the decoded entry
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it: always 0, msg.n_fds only says how
 *              many fds a RECV with BUS1_RECV_FLAG_INSTALL_FDS will bring
 *
 * Unlike a RECV reply, a pushed entry may carry PROTO_MSG_FLAG_SYNC.
 *
 * Return: 0 on success, -EBADMSG for a framing error (nonzero cookie
 *         included), -EINVAL for entry_id 0, -EINVAL or -EMSGSIZE for an
 *         entry proto_check_message() refuses.
 */
int proto_decode_entry(ProtoEntry *entryp, const void *buf, size_t len, size_t n_fds) {
        ProtoEntry entry;
        int r;

        r = proto_decode_frame_no_cookie(buf, len, PROTO_TYPE_ENTRY, PROTO_SIZE_ENTRY);
        if (r < 0)
                return r;
        proto_read_entry(&entry, proto_at(buf, PROTO_SIZE_HEADER));
        r = proto_check_entry_id(entry.entry_id);
        if (r < 0)
                return r;
        r = proto_check_message(&entry.msg, PROTO_ENTRY_MSG_FLAGS);
        if (r < 0)
                return r;
        /* ENTRY describes the fds; they come only with a RECV reply */
        r = proto_check_n_fds(n_fds, 0);
        if (r < 0)
                return r;
        *entryp = entry;
        return 0;
}

/**
 * proto_decode_retract() - decode a RETRACT
 * @retractp:   output: the decoded record
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Return: 0 on success, -EBADMSG for a framing error (nonzero cookie
 *         included), -EINVAL for unknown flags or entry_id 0.
 */
int proto_decode_retract(ProtoRetract *retractp, const void *buf, size_t len, size_t n_fds) {
        ProtoWireRetract w;
        ProtoRetract retract;
        int r;

        r = proto_decode_frame_no_cookie(buf, len, PROTO_TYPE_RETRACT, PROTO_SIZE_RETRACT);
        if (r < 0)
                return r;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        retract.entry_id = le64toh(w.entry_id);
        retract.flags = le64toh(w.flags);
        r = proto_check_retract(&retract);
        if (r < 0)
                return r;
        r = proto_check_n_fds(n_fds, 0);
        if (r < 0)
                return r;
        *retractp = retract;
        return 0;
}

/* WAKE and RESYNC: a bare header with cookie 0 and no fds */
static int proto_decode_bare(const void *buf, size_t len, size_t n_fds, uint16_t type) {
        int r;

        r = proto_decode_frame_no_cookie(buf, len, type, PROTO_SIZE_HEADER);
        if (r < 0)
                return r;
        return proto_check_n_fds(n_fds, 0);
}

/**
 * proto_decode_wake() - decode a WAKE
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Return: 0 on success, -EBADMSG for anything but a bare header of type
 *         WAKE with cookie 0 and no fds.
 */
int proto_decode_wake(const void *buf, size_t len, size_t n_fds) {
        return proto_decode_bare(buf, len, n_fds, PROTO_TYPE_WAKE);
}

/**
 * proto_decode_resync() - decode a RESYNC
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * The client drops every entry it buffered from earlier pushes (closing
 * their fds): each one still queued is pushed again after this record.
 *
 * Return: 0 on success, -EBADMSG for anything but a bare header of type
 *         RESYNC with cookie 0 and no fds.
 */
int proto_decode_resync(const void *buf, size_t len, size_t n_fds) {
        return proto_decode_bare(buf, len, n_fds, PROTO_TYPE_RESYNC);
}

/**
 * proto_decode_ctl() - decode a control request other than MONITOR
 * @ctlp:       output: the decoded request, its type included
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * STATUS, PEERS, PEER, QUOTA and METRICS share one layout: flags and one
 * argument.
 *
 * Return: 0 on success, -EBADMSG for a framing error (another type
 *         included), -EINVAL for arguments proto_check_ctl() refuses.
 */
int proto_decode_ctl(ProtoCtl *ctlp, const void *buf, size_t len, size_t n_fds) {
        ProtoHeader hdr;
        ProtoWireCtl w;
        ProtoCtl ctl;
        int r;

        r = proto_decode_header(&hdr, buf, len);
        if (r < 0)
                return r;
        if (hdr.type != PROTO_TYPE_CTL_STATUS && hdr.type != PROTO_TYPE_CTL_PEERS &&
            hdr.type != PROTO_TYPE_CTL_PEER && hdr.type != PROTO_TYPE_CTL_QUOTA &&
            hdr.type != PROTO_TYPE_CTL_METRICS)
                return -EBADMSG;
        if (len != PROTO_SIZE_CTL)
                return -EBADMSG;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        ctl.type = hdr.type;
        ctl.cookie = hdr.cookie;
        ctl.flags = le64toh(w.flags);
        ctl.arg = le64toh(w.arg);
        r = proto_check_ctl(&ctl);
        if (r < 0)
                return r;
        r = proto_check_n_fds(n_fds, 0);
        if (r < 0)
                return r;
        *ctlp = ctl;
        return 0;
}

/**
 * proto_decode_ctl_monitor() - decode a MONITOR request
 * @monitorp:   output: the decoded request
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Return: 0 on success, -EBADMSG for a framing error (nonzero reserved
 *         field included), -EINVAL for unknown flags or event types.
 */
int proto_decode_ctl_monitor(ProtoCtlMonitor *monitorp, const void *buf, size_t len,
                             size_t n_fds) {
        ProtoWireCtlMonitor w;
        ProtoCtlMonitor monitor;
        int r;

        r = proto_decode_frame(&monitor.cookie, buf, len, PROTO_TYPE_CTL_MONITOR,
                               PROTO_SIZE_CTL_MONITOR, true);
        if (r < 0)
                return r;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        if (w.reserved != 0)
                return -EBADMSG;
        monitor.flags = le64toh(w.flags);
        monitor.types = le64toh(w.types);
        monitor.peer = le64toh(w.peer);
        monitor.node = le64toh(w.node);
        monitor.uid = le32toh(w.uid);
        r = proto_check_ctl_monitor(&monitor);
        if (r < 0)
                return r;
        r = proto_check_n_fds(n_fds, 0);
        if (r < 0)
                return r;
        *monitorp = monitor;
        return 0;
}

/**
 * proto_decode_reply_ctl() - decode the REPLY to a control request
 * @replyp:     output: the decoded reply; body fields 0 if it carries an error
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Whether the CTL_DATA records ahead of it carried exactly n_bytes is the
 * receiver's to check: it joined them.
 *
 * Return: 0 on success, -EBADMSG for a framing error, -EINVAL for a bad
 *         error value or a body proto_check_reply_ctl() refuses, -EMSGSIZE
 *         for a body over PROTO_CTL_BYTES_MAX.
 */
int proto_decode_reply_ctl(ProtoReplyCtl *replyp, const void *buf, size_t len, size_t n_fds) {
        ProtoReplyCtl reply = {};
        ProtoWireReplyCtl w;
        ProtoReply frame;
        int r;

        r = proto_decode_reply_frame(&frame, buf, len, n_fds, PROTO_SIZE_REPLY_CTL, true);
        if (r < 0)
                return r;
        reply.cookie = frame.cookie;
        reply.error = frame.error;
        if (r == 0) {
                memcpy(&w, proto_at(buf, PROTO_SIZE_REPLY), sizeof(w));
                reply.n_bytes = le64toh(w.n_bytes);
                reply.format = le32toh(w.format);
                reply.flags = le32toh(w.flags);
                r = proto_check_reply_ctl(&reply);
                if (r < 0)
                        return r;
                r = proto_check_n_fds(n_fds, 0);
                if (r < 0)
                        return r;
        }
        *replyp = reply;
        return 0;
}

/**
 * proto_decode_ctl_data() - decode a CTL_DATA record
 * @datap:      output: the decoded record, bytes pointing into @buf
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Unlike the other records from the broker, CTL_DATA carries the cookie of
 * the control request whose body it is part of.
 *
 * Return: 0 on success, -EBADMSG for a framing error (nonzero reserved
 *         field, a size other than n_bytes padded to 8, nonzero padding),
 *         -EINVAL for a count of 0, more than PROTO_CTL_DATA_MAX, or a NUL
 *         byte in the body.
 */
int proto_decode_ctl_data(ProtoCtlData *datap, const void *buf, size_t len, size_t n_fds) {
        ProtoWireCtlData w;
        ProtoCtlData data;
        size_t size, pos;
        int r;

        r = proto_decode_frame(&data.cookie, buf, len, PROTO_TYPE_CTL_DATA,
                               PROTO_SIZE_CTL_DATA_MIN, false);
        if (r < 0)
                return r;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        if (w.reserved != 0)
                return -EBADMSG;
        data.n_bytes = le32toh(w.n_bytes);
        r = proto_check_ctl_data(NULL, data.n_bytes);
        if (r < 0)
                return r;
        r = proto_size_ctl_data(&size, data.n_bytes);
        if (r < 0 || size != len)
                return -EBADMSG;

        /* size == len, so the bytes and the padding lie within the buffer */
        data.bytes = proto_at(buf, PROTO_SIZE_CTL_DATA_MIN);
        r = proto_check_ctl_data(data.bytes, data.n_bytes);
        if (r < 0)
                return r;
        pos = PROTO_SIZE_CTL_DATA_MIN + data.n_bytes;
        if (!proto_is_zero(proto_at(buf, pos), len - pos))
                return -EBADMSG;
        r = proto_check_n_fds(n_fds, 0);
        if (r < 0)
                return r;
        *datap = data;
        return 0;
}

/* one event as the wire holds it, in host order */
static void proto_read_event(ProtoEvent *event, const void *p) {
        ProtoWireEvent w;

        memcpy(&w, p, sizeof(w));
        *event = (ProtoEvent){
                .seq = le64toh(w.seq),
                .time = le64toh(w.time),
                .type = le32toh(w.type),
                .error = le32toh(w.error),
                .peer = le64toh(w.peer),
                .uid = le32toh(w.uid),
                .pid = le32toh(w.pid),
                .target = le64toh(w.target),
                .target_uid = le32toh(w.target_uid),
                .target_pid = le32toh(w.target_pid),
                .node = le64toh(w.node),
                .n_bytes = le64toh(w.n_bytes),
                .n_handles = le32toh(w.n_handles),
                .n_fds = le32toh(w.n_fds),
                .count = le64toh(w.count),
                .message = le64toh(w.message),
        };
}

/**
 * proto_decode_events() - decode an EVENTS record
 * @eventsp:    output: the count and the events, pointing into @buf
 * @buf:        the packet
 * @len:        its length
 * @n_fds:      fds that came with it (must be 0)
 *
 * Every event is checked (proto_check_event()) before success is returned;
 * read them with proto_event_at().
 *
 * Return: 0 on success, -EBADMSG for a framing error (nonzero cookie or
 *         reserved field, a size other than n_events events), -EINVAL for
 *         a count of 0 or above PROTO_EVENTS_MAX, or an event
 *         proto_check_event() refuses.
 */
int proto_decode_events(ProtoEvents *eventsp, const void *buf, size_t len, size_t n_fds) {
        ProtoWireEvents w;
        ProtoEvents events;
        uint64_t cookie;
        size_t size;
        int r;

        r = proto_decode_frame(&cookie, buf, len, PROTO_TYPE_EVENTS, PROTO_SIZE_EVENTS_MIN,
                               false);
        if (r < 0)
                return r;
        if (cookie != 0)
                return -EBADMSG;
        memcpy(&w, proto_at(buf, PROTO_SIZE_HEADER), sizeof(w));
        if (w.reserved != 0)
                return -EBADMSG;
        events.n_events = le32toh(w.n_events);
        r = proto_check_events(events.n_events);
        if (r < 0)
                return r;
        r = proto_size_events(&size, events.n_events);
        if (r < 0 || size != len)
                return -EBADMSG;

        events.events = proto_at(buf, PROTO_SIZE_EVENTS_MIN);
        for (size_t i = 0; i < events.n_events; ++i) {
                ProtoEvent event;

                proto_event_at(&event, &events, i);
                r = proto_check_event(&event);
                if (r < 0)
                        return r;
        }
        r = proto_check_n_fds(n_fds, 0);
        if (r < 0)
                return r;
        *eventsp = events;
        return 0;
}

/**
 * proto_event_at() - read event @i of a decoded EVENTS record
 * @eventp:     output: the event in host order
 * @events:     what proto_decode_events() returned
 * @i:          index, below events->n_events
 */
void proto_event_at(ProtoEvent *eventp, const ProtoEvents *events, size_t i) {
        proto_read_event(eventp, proto_at(events->events, i * sizeof(ProtoWireEvent)));
}
