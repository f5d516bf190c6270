/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Entries: what the broker pushed to a client, buffered until received
 *
 * The broker pushes every entry queued on the peer (ENTRY records), and
 * withdraws or resends them (RETRACT, RESYNC); WAKE only makes the socket
 * readable. The transport (client.c) hands every such record it reads
 * while it waits for a reply to entries_handle_push(); RECV
 * (client_recv()) then answers from the buffer, or from the next record in
 * the socket, and reports what it dequeued locally with the next ACK.
 *
 * client_recv() and client_slice_size() keep the Client's prefix: they are
 * the RECV of the Client interface that peer.c and uapi.c call. Everything
 * here runs under the client's lock, like the rest of the Client.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "proto/proto.h"

typedef struct Client Client;
typedef struct ClientPacket ClientPacket;

/* a ring of pushed entries, in queue order (msg.flags may hold PROTO_MSG_FLAG_SYNC) */
typedef struct Entries {
        ProtoEntry *ring;
        size_t head;            /* index of the first entry */
        size_t n;               /* how many */
        size_t cap;             /* slots in @ring */
} Entries;

/* what a RECV returns */
typedef struct ClientRecv {
        ProtoEntry entry;       /* msg.n_fds as reported to the caller */
        int *fds;               /* installed fds (INSTALL_FDS), caller owns */
        size_t n_fds;
} ClientRecv;

/* the buffer, for the transport (client.c) */
int entries_handle_push(Client *client, const ClientPacket *pkt);
void entries_drop(Client *client);
void entries_free(Client *client);
bool entries_ring_ack(Client *client);
int entries_flush_ack(Client *client);
void entries_await_wake(Client *client);

/* RECV */
int client_recv(Client *client, uint64_t flags, uint64_t max_offset, ClientRecv *recvp);
uint64_t client_slice_size(const ProtoMessage *msg);
