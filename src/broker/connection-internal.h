/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Connection-internal: what the connection's three parts share
 *
 * The transport (connection.c), the mirror of the peer's queue
 * (mirror.c) and the request handlers (requests.c) are one object's
 * implementation; this header is for them only.
 */

#include <stddef.h>
#include <stdint.h>
#include "broker/connection.h"
#include "bus/peer.h"
#include "bus/queue.h"
#include "proto/proto.h"
#include "util/fdlist.h"

/* stop reading requests while this much output waits */
#define CONNECTION_OUT_MAX (1024 * 1024)
/* HELLO replies (two fds each) a client may leave unread */
#define CONNECTION_HELLOS_UNREAD_MAX 8
/* past this many RETRACTs in one request, RESYNC instead */
#define CONNECTION_RETRACTS_MAX 64

void connection_fail(Connection *conn);
void connection_update_events(Connection *conn);
int connection_write_now(Connection *conn, const void *data, size_t len, const int *fds,
                         size_t n_fds, size_t *n_sentp);
void connection_write(Connection *conn, const void *data, size_t len, FdList *fds, int own_fd);
void connection_close_fds(int *fds, size_t n_fds);
void connection_mark_dirty(Connection *conn);
void connection_entry_to_proto(const PeerRecv *r, ProtoEntry *e);
void connection_push_dirty(Broker *broker, Connection *skip);
void connection_reply(Connection *conn, const void *data, size_t len, FdList *fds, int own_fd);
void connection_reply_error(Connection *conn, uint64_t cookie, int error);
int connection_handle_ack(Connection *conn, const void *buf, size_t len, size_t n_fds);
extern const QueueHooks connection_queue_hooks;
void connection_forget_hellos(Connection *conn);
int connection_check_fd(int fd);
void connection_dispatch_request(Connection *conn, const ProtoHeader *hdr, const void *buf, size_t len, int *fds, size_t n_fds);
