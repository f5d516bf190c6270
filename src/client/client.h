/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Client: the library's side of one peer connection
 *
 * Everything both public APIs (the native one in <bus1/client.h> and the
 * kernel-UAPI compatibility layer in <bus1/uapi.h>) need. Two files
 * implement it:
 *  - client.c, the transport: connecting and adopting connections, records
 *    and their fd carriers, one request/reply exchange at a time, the
 *    release ring, and every request but RECV;
 *  - entries.c (entries.h), the buffer of entries the broker pushed, and
 *    the RECV that answers from it without a round trip whenever
 *    docs/model.md §10 allows (docs/protocol.md, "Pushed entries and local
 *    receive").
 *
 * A Client costs two descriptors (the socket and the pool memfd) and one
 * receive buffer. Every call on a client, and every use of its members,
 * happens under its mutex (peer.c and uapi.c take it), so threads may
 * share it; the receive buffer in particular is only read or written under
 * the lock, and a reply left in it is decoded before the lock is dropped.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include "client/entries.h"
#include "proto/proto.h"
#include "util/offset-set.h"

typedef struct Client Client;
typedef struct ClientPacket ClientPacket;

/* the receive buffer of a client: a record never exceeds PROTO_RECORD_MAX */
#define CLIENT_RX_SIZE (PROTO_RECORD_MAX + 8U)

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
        uint8_t *rx;            /* CLIENT_RX_SIZE bytes: the last record read */

        /* entries.c */
        Entries entries;        /* pushed, not yet dequeued */
        uint64_t dequeued_upto; /* highest entry id dequeued, locally or not */
        uint64_t acked;         /* highest id reported, in the ring or with ACK */

        uint8_t *ring;          /* the release ring (PROTO_RING_SIZE), shared */
        uint64_t ring_tail;     /* values written to it */
        OffsetSet slices;       /* offsets received and not released yet */
        uint64_t peeked;        /* the slice the last RECV showed with PEEK, or
                                 * BUS1_OFFSET_INVALID: one SLICE_RELEASE of it
                                 * succeeds and changes nothing */
};

/* one packet read from the connection: a record and its fds */
struct ClientPacket {
        const uint8_t *data;    /* the record, in client->rx */
        size_t len;
        ProtoHeader hdr;
        int fds[PROTO_RECORD_FDS_MAX];
        size_t n_fds;
        bool fds_lost;          /* fds were cut off: this process had no free descriptor */
};

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

/* connections and requests (client.c); RECV is in entries.h */
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

/* the transport (client.c), for entries.c */
void client_close_fds(int *fds, size_t n_fds);
int client_fail(Client *client, int r);
int client_write(Client *client, const void *data, size_t len, const int *fds, size_t n_fds);
int client_read(Client *client, ClientPacket *pkt, bool nonblock, bool peek);
int client_call(Client *client, const void *req, size_t len, const int *fds, size_t n_fds,
                uint64_t cookie, ClientPacket *pkt);
int client_call_simple(Client *client, const void *req, size_t len, const int *fds,
                       size_t n_fds, uint64_t cookie);
bool client_ring_push(Client *client, uint64_t value);
