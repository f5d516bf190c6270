/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Proto checks: the argument rules shared by encoder and decoder
 *
 * Everything a record may hold beyond its framing (flag bits, enumerations,
 * counts against their limits, argument combinations) is decided by one
 * function here, called by the decoder on what arrived and by the encoder on
 * what it is asked to write. That is what makes the decoders accept exactly
 * what the encoders produce: there is no second copy of a rule to drift.
 * The functions see host-order decoded structs only; sizes, reserved fields
 * and padding are the framing code's business in decode.c and encode.c.
 */

#include <stdint.h>
#include "proto/proto.h"

/* -EINVAL if @flags has a bit outside @mask */
static inline int proto_check_flags(uint64_t flags, uint64_t mask) {
        return (flags & ~mask) ? -EINVAL : 0;
}

int proto_check_hello(const ProtoHello *hello);
int proto_check_peer_reset(const ProtoPeerReset *reset);
int proto_check_handle_transfer(const ProtoHandleTransfer *transfer);
int proto_check_nodes_destroy(uint64_t flags, uint64_t n_nodes);
int proto_check_slice_fds(uint64_t n_fds);
int proto_check_slice_fd(int32_t fd);
int proto_check_send(const ProtoSend *send_req);
int proto_check_recv(const ProtoRecv *recv_req);
int proto_check_error(uint64_t error);
int proto_check_reply_hello(const ProtoReplyHello *reply);
int proto_check_reply_peer_query(const ProtoReplyPeerQuery *reply);
int proto_check_reply_send(uint64_t n_errors);
int proto_check_message(const ProtoMessage *msg, uint64_t flags);
int proto_check_entry_id(uint64_t entry_id);
int proto_check_retract(const ProtoRetract *retract);
int proto_check_ctl(const ProtoCtl *ctl);
int proto_check_ctl_monitor(const ProtoCtlMonitor *monitor);
int proto_check_reply_ctl(const ProtoReplyCtl *reply);
int proto_check_ctl_data(const void *bytes, uint64_t n_bytes);
int proto_check_events(uint64_t n_events);
int proto_check_event(const ProtoEvent *event);
