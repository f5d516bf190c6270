/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Proto checks: the argument rules of every record
 *
 * Each function takes the decoded, host-order form of a record (or the few
 * scalars that matter) and returns 0 or the errno the client is answered
 * with. Within one function the checks run in a fixed order, flags first,
 * then enumerations and combinations, then counts against their limits, so
 * a record with several bad fields always gets the same errno;
 * docs/protocol.md relies on that order.
 *
 * Only rules that hold whatever the broker's state are here: flag bits,
 * enumerations, limits that are constants of the protocol, and combinations
 * of fields of the same record. Whether a handle exists, whether a quota
 * allows a message, or whether a limit exceeds the user's is the model's.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include "proto/check.h"
#include "proto/proto.h"

/**
 * proto_check_hello() - check the arguments of a HELLO
 * @hello:      decoded request
 *
 * The client offers the versions [version_min, version_max]; the broker picks
 * the highest one it speaks. This fails if there is none.
 *
 * Return: 0 on success, -EINVAL for unknown flags or an empty or zero
 *         version range, -EPROTONOSUPPORT if no offered version is one this
 *         implementation speaks.
 */
int proto_check_hello(const ProtoHello *hello) {
        int r;

        r = proto_check_flags(hello->flags, PROTO_HELLO_FLAGS);
        if (r < 0)
                return r;
        if (hello->version_min < 1 || hello->version_min > hello->version_max)
                return -EINVAL;
        if (hello->version_min > PROTO_VERSION_MAX || hello->version_max < PROTO_VERSION_MIN)
                return -EPROTONOSUPPORT;
        return 0;
}

/* a PEER_RESET limit is all ones (keep) or at most INT_MAX */
static bool proto_limit_is_valid(uint32_t limit) {
        return limit == UINT32_MAX || limit <= PROTO_LIMIT_MAX;
}

/**
 * proto_check_peer_reset() - check the arguments of a PEER_RESET
 * @reset:      decoded request
 *
 * Return: 0 on success, -EINVAL for unknown flags, unknown peer flags (unless
 *         all ones, which keeps them) or a limit above INT_MAX that is not
 *         all ones.
 */
int proto_check_peer_reset(const ProtoPeerReset *reset) {
        int r;

        r = proto_check_flags(reset->flags, PROTO_PEER_RESET_FLAGS);
        if (r < 0)
                return r;
        if (reset->peer_flags != UINT64_MAX) {
                r = proto_check_flags(reset->peer_flags, PROTO_PEER_FLAGS);
                if (r < 0)
                        return r;
        }
        if (!proto_limit_is_valid(reset->max_slices) ||
            !proto_limit_is_valid(reset->max_handles) ||
            !proto_limit_is_valid(reset->max_inflight_bytes) ||
            !proto_limit_is_valid(reset->max_inflight_fds))
                return -EINVAL;
        return 0;
}

/**
 * proto_check_handle_transfer() - check the arguments of a HANDLE_TRANSFER
 * @transfer:   decoded request
 *
 * Return: 0 on success, -EINVAL for unknown flags or an unknown dst_mode.
 */
int proto_check_handle_transfer(const ProtoHandleTransfer *transfer) {
        int r;

        r = proto_check_flags(transfer->flags, PROTO_HANDLE_TRANSFER_FLAGS);
        if (r < 0)
                return r;
        if (transfer->dst_mode != PROTO_DST_SELF && transfer->dst_mode != PROTO_DST_FD)
                return -EINVAL;
        return 0;
}

/**
 * proto_check_nodes_destroy() - check the arguments of a NODES_DESTROY
 * @flags:      the request's flags
 * @n_nodes:    the request's node count
 *
 * Return: 0 on success, -EINVAL for unknown flags or more than
 *         PROTO_NODES_MAX node IDs.
 */
int proto_check_nodes_destroy(uint64_t flags, uint64_t n_nodes) {
        int r;

        r = proto_check_flags(flags, PROTO_NODES_DESTROY_FLAGS);
        if (r < 0)
                return r;
        if (proto_nodes_destroy_n_ids(flags, n_nodes) > PROTO_NODES_MAX)
                return -EINVAL;
        return 0;
}

/**
 * proto_check_slice_fds() - check the fd count of a SLICE_FDS
 * @n_fds:      the request's fd count
 *
 * A SLICE_FDS reports the fds a RECV installed (at most what one message can
 * carry), or with a count of 0 that the client could not install them, so
 * the entry stays queued. Whether the count is that of the RECV the broker
 * answered last is the broker's question.
 *
 * Return: 0 on success, -EINVAL for more than BUS1_FD_MAX.
 */
int proto_check_slice_fds(uint64_t n_fds) {
        if (n_fds > PROTO_FDS_MAX)
                return -EINVAL;
        return 0;
}

/**
 * proto_check_slice_fd() - check one fd number of a SLICE_FDS
 * @fd:         the number the fd got in the client's process
 *
 * Return: 0 on success, -EINVAL for a negative number, which no installed fd
 *         has.
 */
int proto_check_slice_fd(int32_t fd) {
        return fd < 0 ? -EINVAL : 0;
}

/**
 * proto_check_send() - check the scalar arguments of a SEND
 * @send_req:   decoded request; its array pointers are not looked at
 *
 * Checks, in this order: flags, payload_mode, memfd_offset zero for an
 * inline payload, then the counts against their limits, then that a memfd
 * payload's range fits an off_t. SEED combined with destinations or
 * CONTINUE is the broker's EINVAL, at the point the kernel checked it
 * (after the handles and fds).
 *
 * Return: 0 on success, -EINVAL for unknown flags, an unknown payload_mode,
 *         a nonzero memfd_offset with an inline payload, or more than
 *         PROTO_DESTINATIONS_MAX
 *         destinations; -EMSGSIZE for more than PROTO_HANDLES_MAX handles,
 *         more than BUS1_FD_MAX fds, more than 2 GiB of payload, or a memfd
 *         range ending beyond PROTO_OFFSET_MAX.
 */
int proto_check_send(const ProtoSend *send_req) {
        int r;

        r = proto_check_flags(send_req->flags, PROTO_SEND_FLAGS);
        if (r < 0)
                return r;
        if (send_req->payload_mode != PROTO_PAYLOAD_INLINE &&
            send_req->payload_mode != PROTO_PAYLOAD_MEMFD)
                return -EINVAL;
        if (send_req->payload_mode == PROTO_PAYLOAD_INLINE && send_req->memfd_offset != 0)
                return -EINVAL;
        if (proto_send_n_destination_ids(send_req->flags, send_req->n_destinations) >
            PROTO_DESTINATIONS_MAX)
                return -EINVAL;
        if (send_req->n_handles > PROTO_HANDLES_MAX)
                return -EMSGSIZE;
        if (send_req->n_fds > PROTO_FDS_MAX)
                return -EMSGSIZE;
        if (send_req->n_bytes > PROTO_BYTES_MAX)
                return -EMSGSIZE;
        /* n_bytes is bounded now, so the subtraction cannot wrap */
        if (send_req->payload_mode == PROTO_PAYLOAD_MEMFD &&
            send_req->memfd_offset > PROTO_OFFSET_MAX - send_req->n_bytes)
                return -EMSGSIZE;
        return 0;
}

/**
 * proto_check_recv() - check the arguments of a RECV
 * @recv_req:   decoded request
 *
 * Return: 0 on success, -EINVAL for unknown flags.
 */
int proto_check_recv(const ProtoRecv *recv_req) {
        return proto_check_flags(recv_req->flags, PROTO_RECV_FLAGS);
}

/**
 * proto_check_error() - check an errno carried in a REPLY or a SEND reply
 * @error:      0 or a positive errno
 *
 * Return: 0 on success, -EINVAL if @error is above PROTO_ERRNO_MAX.
 */
int proto_check_error(uint64_t error) {
        return error > PROTO_ERRNO_MAX ? -EINVAL : 0;
}

/**
 * proto_check_reply_hello() - check the body of a successful HELLO reply
 * @reply:      decoded reply
 *
 * Return: 0 on success, -EPROTONOSUPPORT for a version this implementation
 *         does not speak, -EINVAL for a pool size of 0 or beyond
 *         PROTO_OFFSET_MAX, or a user handle limit beyond PROTO_LIMIT_MAX.
 */
int proto_check_reply_hello(const ProtoReplyHello *reply) {
        if (reply->version < PROTO_VERSION_MIN || reply->version > PROTO_VERSION_MAX)
                return -EPROTONOSUPPORT;
        if (reply->pool_size == 0 || reply->pool_size > PROTO_OFFSET_MAX)
                return -EINVAL;
        if (reply->user_max_handles > PROTO_LIMIT_MAX)
                return -EINVAL;
        return 0;
}

/**
 * proto_check_reply_peer_query() - check the body of a successful PEER_QUERY reply
 * @reply:      decoded reply
 *
 * A query reports actual values, so nothing here may be "all ones: keep".
 *
 * Return: 0 on success, -EINVAL for nonzero flags, unknown peer flags, or a
 *         limit above INT_MAX.
 */
int proto_check_reply_peer_query(const ProtoReplyPeerQuery *reply) {
        int r;

        r = proto_check_flags(reply->flags, 0);
        if (r < 0)
                return r;
        r = proto_check_flags(reply->peer_flags, PROTO_PEER_FLAGS);
        if (r < 0)
                return r;
        if (reply->max_slices > PROTO_LIMIT_MAX ||
            reply->max_handles > PROTO_LIMIT_MAX ||
            reply->max_inflight_bytes > PROTO_LIMIT_MAX ||
            reply->max_inflight_fds > PROTO_LIMIT_MAX)
                return -EINVAL;
        return 0;
}

/**
 * proto_check_reply_send() - check the error count of a successful SEND reply
 * @n_errors:   0, or the request's n_destinations
 *
 * Return: 0 on success, -EMSGSIZE for more than PROTO_DESTINATIONS_MAX.
 */
int proto_check_reply_send(uint64_t n_errors) {
        return n_errors > PROTO_DESTINATIONS_MAX ? -EMSGSIZE : 0;
}

/* a notification carries no sender and no slice */
static int proto_check_notification(const ProtoMessage *msg) {
        if (msg->flags & BUS1_MSG_FLAG_HAS_SECCTX)
                return -EINVAL;
        if (msg->uid != UINT32_MAX || msg->gid != UINT32_MAX || msg->pid != 0 || msg->tid != 0)
                return -EINVAL;
        if (msg->offset != BUS1_OFFSET_INVALID)
                return -EINVAL;
        if (msg->n_bytes != 0 || msg->n_handles != 0 || msg->n_fds != 0 || msg->n_secctx != 0)
                return -EINVAL;
        return 0;
}

/**
 * proto_check_message() - check a queue entry as ENTRY and RECV replies carry it
 * @msg:        decoded entry
 * @flags:      the message flags the record may carry: PROTO_ENTRY_MSG_FLAGS
 *              in a pushed ENTRY, PROTO_MSG_FLAGS in a RECV reply (which
 *              never carries PROTO_MSG_FLAG_SYNC)
 *
 * A DATA entry names an 8-byte aligned slice offset within PROTO_OFFSET_MAX
 * and counts within the protocol's limits. A notification (NODE_DESTROY,
 * NODE_RELEASE) has uid = gid = (u32)-1, pid = tid = 0, offset
 * BUS1_OFFSET_INVALID, all counts 0, and no HAS_SECCTX. Any type may carry
 * SYNC where @flags allows it.
 *
 * Return: 0 on success, -EINVAL for an unknown type, flags outside @flags, a
 *         bad offset, or a notification with any other field value;
 *         -EMSGSIZE for a DATA count beyond its limit (2 GiB of payload,
 *         PROTO_HANDLES_MAX handles, BUS1_FD_MAX fds, PROTO_SECCTX_MAX bytes
 *         of security context).
 */
int proto_check_message(const ProtoMessage *msg, uint64_t flags) {
        int r;

        if (msg->type != BUS1_MSG_DATA && msg->type != BUS1_MSG_NODE_DESTROY &&
            msg->type != BUS1_MSG_NODE_RELEASE)
                return -EINVAL;
        r = proto_check_flags(msg->flags, flags);
        if (r < 0)
                return r;
        if (msg->type != BUS1_MSG_DATA)
                return proto_check_notification(msg);
        if (msg->offset > PROTO_OFFSET_MAX || msg->offset % 8 != 0)
                return -EINVAL;
        if (msg->n_bytes > PROTO_BYTES_MAX || msg->n_handles > PROTO_HANDLES_MAX ||
            msg->n_fds > PROTO_FDS_MAX || msg->n_secctx > PROTO_SECCTX_MAX)
                return -EMSGSIZE;
        return 0;
}

/**
 * proto_check_entry_id() - check the ID of a pushed entry
 * @entry_id:   ID from an ENTRY, RETRACT or ACK
 *
 * Return: 0 on success, -EINVAL for 0, which no pushed entry has.
 */
int proto_check_entry_id(uint64_t entry_id) {
        return entry_id == 0 ? -EINVAL : 0;
}

/**
 * proto_check_retract() - check a RETRACT
 * @retract:    decoded record
 *
 * Return: 0 on success, -EINVAL for unknown flags or entry_id 0.
 */
int proto_check_retract(const ProtoRetract *retract) {
        int r;

        r = proto_check_flags(retract->flags, PROTO_RETRACT_FLAGS);
        if (r < 0)
                return r;
        return proto_check_entry_id(retract->entry_id);
}

/**
 * proto_check_ctl() - check a control request other than MONITOR
 * @ctl:        decoded request
 *
 * STATUS, PEERS and METRICS take no argument; PEER takes any peer ID (an
 * unknown or invisible one is the broker's -ENXIO); QUOTA takes a UID or
 * PROTO_CTL_UID_ALL. METRICS alone takes a flag: PROTO_CTL_FLAG_JSON.
 *
 * Return: 0 on success, -EINVAL for unknown flags, an argument where none
 *         is taken, or a QUOTA argument that is neither a UID nor all ones.
 */
int proto_check_ctl(const ProtoCtl *ctl) {
        int r;

        r = proto_check_flags(ctl->flags, ctl->type == PROTO_TYPE_CTL_METRICS
                                                  ? PROTO_CTL_METRICS_FLAGS
                                                  : PROTO_CTL_FLAGS);
        if (r < 0)
                return r;
        switch (ctl->type) {
        case PROTO_TYPE_CTL_PEER:
                return 0;
        case PROTO_TYPE_CTL_QUOTA:
                /* (uid_t)-1 is no UID */
                if (ctl->arg != PROTO_CTL_UID_ALL && ctl->arg >= UINT32_MAX)
                        return -EINVAL;
                return 0;
        case PROTO_TYPE_CTL_STATUS:
        case PROTO_TYPE_CTL_PEERS:
        case PROTO_TYPE_CTL_METRICS:
                return ctl->arg ? -EINVAL : 0;
        }
        return -EINVAL;
}

/**
 * proto_check_ctl_monitor() - check a MONITOR request
 * @monitor:    decoded request
 *
 * Return: 0 on success, -EINVAL for unknown flags or event types outside
 *         PROTO_EVENT_TYPES.
 */
int proto_check_ctl_monitor(const ProtoCtlMonitor *monitor) {
        int r;

        r = proto_check_flags(monitor->flags, PROTO_CTL_MONITOR_FLAGS);
        if (r < 0)
                return r;
        return proto_check_flags(monitor->types, PROTO_EVENT_TYPES);
}

/**
 * proto_check_reply_ctl() - check the body of a successful control reply
 * @reply:      decoded reply
 *
 * Return: 0 on success, -EINVAL for an unknown format or flags, or a body
 *         size that does not go with the format (0 exactly for
 *         PROTO_CTL_FORMAT_NONE); -EMSGSIZE for a body over
 *         PROTO_CTL_BYTES_MAX.
 */
int proto_check_reply_ctl(const ProtoReplyCtl *reply) {
        int r;

        if (reply->format != PROTO_CTL_FORMAT_NONE && reply->format != PROTO_CTL_FORMAT_JSON &&
            reply->format != PROTO_CTL_FORMAT_OPENMETRICS)
                return -EINVAL;
        r = proto_check_flags(reply->flags, PROTO_CTL_REPLY_FLAGS);
        if (r < 0)
                return r;
        if ((reply->format == PROTO_CTL_FORMAT_NONE) != (reply->n_bytes == 0))
                return -EINVAL;
        if (reply->n_bytes > PROTO_CTL_BYTES_MAX)
                return -EMSGSIZE;
        return 0;
}

/**
 * proto_check_ctl_data() - check the part of a control body a CTL_DATA carries
 * @bytes:      the part
 * @n_bytes:    its size
 *
 * Bodies are text (JSON or OpenMetrics): a part is never empty and holds no
 * NUL byte, so a receiver may treat the joined body as a C string.
 *
 * Return: 0 on success, -EINVAL for 0 bytes, more than PROTO_CTL_DATA_MAX,
 *         or a NUL byte.
 */
int proto_check_ctl_data(const void *bytes, uint64_t n_bytes) {
        if (n_bytes < 1 || n_bytes > PROTO_CTL_DATA_MAX)
                return -EINVAL;
        if (bytes && memchr(bytes, 0, (size_t)n_bytes))
                return -EINVAL;
        return 0;
}

/**
 * proto_check_events() - check the event count of an EVENTS record
 * @n_events:   the count
 *
 * Return: 0 on success, -EINVAL for 0 or more than PROTO_EVENTS_MAX.
 */
int proto_check_events(uint64_t n_events) {
        return n_events < 1 || n_events > PROTO_EVENTS_MAX ? -EINVAL : 0;
}

/**
 * proto_check_event() - check one monitor event
 * @event:      decoded event
 *
 * Only a REFUSAL carries an errno, and it always does; only a LOST carries
 * a count, and it always does; only a SEND and a DELIVER carry a message
 * ID, and they always do.
 *
 * Return: 0 on success, -EINVAL for an unknown type, an errno above
 *         PROTO_ERRNO_MAX, or an errno, count or message ID where the type
 *         has none (or none where it has one).
 */
int proto_check_event(const ProtoEvent *event) {
        if (event->type < PROTO_EVENT_SEND || event->type >= _PROTO_EVENT_N)
                return -EINVAL;
        if (event->error > PROTO_ERRNO_MAX)
                return -EINVAL;
        if ((event->error != 0) != (event->type == PROTO_EVENT_REFUSAL))
                return -EINVAL;
        if ((event->count != 0) != (event->type == PROTO_EVENT_LOST))
                return -EINVAL;
        if ((event->message != 0) !=
            (event->type == PROTO_EVENT_SEND || event->type == PROTO_EVENT_DELIVER))
                return -EINVAL;
        return 0;
}
