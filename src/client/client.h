/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Client: the library's side of one peer connection
 *
 * Everything both public APIs (the native one in <bus1/client.h> and the
 * kernel-UAPI compatibility layer in <bus1/uapi.h>) need: connecting and
 * adopting connections, one request/reply exchange at a time, the buffer of
 * entries the broker pushed, and the local RECV that answers from it
 * without a round trip whenever docs/model.md §10 allows (docs/protocol.md,
 * "Pushed entries and local receive").
 *
 * A Client costs two descriptors: the socket and the pool memfd. Calls on
 * one client are serialised by its mutex, so threads may share it.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include "proto/proto.h"
#include "util/offset-set.h"

typedef struct Client Client;
typedef struct ClientEntry ClientEntry;

struct ClientEntry {
        ProtoEntry e;           /* as pushed; msg.flags may hold PROTO_MSG_FLAG_SYNC */
};

struct Client {
        pthread_mutex_t lock;
        int fd;                 /* the connection; a hung-up pipe once disconnected */
        int pool_fd;
        uint64_t pool_dev;      /* the pool memfd's identity, to tell it from a */
        uint64_t pool_ino;      /* number reused after the program closed it */
        const uint8_t *pool;
        uint64_t pool_size;
        uint64_t peer_id;
        uint64_t user_max_handles;      /* bounds destinations and NODES_DESTROY IDs */
        uint64_t n_cookies;
        bool disconnected;      /* PEER_DISCONNECT succeeded */
        bool broken;            /* the connection failed: every call fails */
        unsigned long generation;       /* forks seen when it was opened */

        ClientEntry *entries;   /* pushed, not yet dequeued: a ring */
        size_t n_entries;
        size_t entries_head;
        size_t entries_cap;

        uint64_t dequeued_upto; /* highest entry id dequeued, locally or not */
        uint64_t acked;         /* highest id reported, in the ring or with ACK */

        uint8_t *ring;          /* the release ring (PROTO_RING_SIZE), shared */
        uint64_t ring_tail;     /* values written to it */
        OffsetSet slices;       /* offsets received and not released yet */
        uint64_t peeked;        /* the slice the last RECV showed with PEEK, or
                                 * BUS1_OFFSET_INVALID: one SLICE_RELEASE of it
                                 * succeeds and changes nothing */
};

/* what a RECV returns */
typedef struct ClientRecv {
        ProtoEntry entry;       /* msg.n_fds as reported to the caller */
        int *fds;               /* installed fds (INSTALL_FDS), caller owns */
        size_t n_fds;
} ClientRecv;

/* a SEND, in host terms */
typedef struct ClientSend {
        uint64_t flags;         /* BUS1_SEND_FLAG_* */
        const uint64_t *destinations;
        size_t n_destinations;
        uint64_t *errors;       /* NULL or n_destinations */
        const struct iovec *vecs;
        size_t n_vecs;
        const uint64_t *handles;
        size_t n_handles;
        const int *fds;
        size_t n_fds;
        int fds_fault;          /* 0, or -EBADF (the fd after @fds is not open) or
                                 * -EFAULT (the fd array is unreadable) */
        bool destinations_fault;        /* the destination array is unreadable */
} ClientSend;

int client_address(char *buf, size_t size, const char *address);
int client_new(Client **clientp, const char *address);
int client_new_from_fd(Client **clientp, int fd);
Client *client_free(Client *client);
Client *client_free_closed(Client *client);

int client_usable(Client *client);
int client_disconnect(Client *client);
int client_query(Client *client, uint64_t flags, ProtoReplyPeerQuery *replyp);
int client_reset(Client *client, const ProtoPeerReset *reset);
int client_handle_release(Client *client, uint64_t id);
int client_handle_transfer(Client *client, uint64_t flags, uint64_t src, Client *dst,
                           int dst_fd, uint64_t *dst_idp);
int client_nodes_destroy(Client *client, uint64_t flags, const uint64_t *ids, size_t n_ids);
int client_slice_release(Client *client, uint64_t offset);
int client_send(Client *client, const ClientSend *send_args);
int client_recv(Client *client, uint64_t flags, uint64_t max_offset, ClientRecv *recvp);
uint64_t client_slice_size(const ProtoMessage *msg);
