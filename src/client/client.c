/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Client: the library's side of one peer connection
 *
 * The broker pushes every entry queued on the peer. While the library
 * waits for a reply it reads those pushes into `entries`, and a RECV
 * answers from there, or from the next record in the socket, without
 * asking the broker. Locally dequeued entries are reported with one ACK
 * record sent ahead of the next request, which is before anything else this
 * peer does can depend on them. A RECV goes to the broker when the broker
 * must act at the moment of the dequeue: the seed, fds to install, entries
 * marked SYNC, and when nothing is buffered or in the socket (the broker
 * may hold entries it could not push yet).
 *
 * Invariants:
 *  - `entries` holds pushed entries in queue order, all with ids above
 *    dequeued_upto; the first one is the peer's next entry;
 *  - whenever `entries` is not empty, the socket is readable: the records
 *    in it were read while waiting for a reply, and the broker follows such
 *    a reply with a WAKE; a RECV never reads the last record of the socket
 *    unless it dequeues what it read (it peeks otherwise);
 *  - the fds of every record read are installed (O_CLOEXEC) and either
 *    handed to the caller or closed.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "client/client.h"
#include "util/macro.h"
#include "util/scm.h"
#include "util/unix-address.h"

/* one receive buffer per thread: replies and pushes are small */
static __thread uint8_t client_rx[PROTO_RECORD_MAX + 8] __attribute__((__aligned__(8)));

typedef struct ClientPacket {
        size_t len;
        ProtoHeader hdr;
        int fds[PROTO_RECORD_FDS_MAX];
        size_t n_fds;
        bool fds_lost;          /* fds were cut off: this process had no free descriptor */
} ClientPacket;

static void client_close_fds(int *fds, size_t n_fds) {
        for (size_t i = 0; i < n_fds; ++i)
                safe_close(fds[i]);
}

/*
 * Forks seen by this process. A child's copy of a client is not yet the
 * peer's: the parent's library may hold entries it read ahead. The child's
 * first call adopts the connection (client_adopt()); from then on the
 * broker marks the parent's ring retired and the parent's calls fail, so no
 * entry is ever delivered to both.
 */
static unsigned long client_generation;
static pthread_once_t client_once = PTHREAD_ONCE_INIT;

static void client_forked(void) {
        ++client_generation;
}

static void client_watch_forks(void) {
        (void)pthread_atfork(NULL, NULL, client_forked);
}

static int client_hello(Client *client);

/*
 * This process is a fork of the one that set the client up: take the peer
 * over as client_new_from_fd() does. What the parent buffered is dropped
 * (the broker pushes every entry still queued again); what it dequeued stays
 * dequeued; slices it received are released by request (the broker judges).
 */
static int client_adopt(Client *client) {
        int r;

        client->n_entries = 0;
        client->entries_head = 0;
        offset_set_clear(&client->slices);
        if (client->disconnected || client->broken) {
                client->generation = __atomic_load_n(&client_generation, __ATOMIC_RELAXED);
                return 0;
        }
        /* this process's copies of the parent's mappings; the HELLO maps anew */
        if (client->ring)
                munmap(client->ring, PROTO_RING_SIZE);
        client->ring = NULL;
        if (client->pool)
                munmap((void *)client->pool, (size_t)client->pool_size);
        client->pool = NULL;
        client->pool_fd = safe_close(client->pool_fd);
        r = client_hello(client);
        /* out of memory or descriptors: the next call adopts again */
        if (r == -ENOMEM || r == -EMFILE)
                return r;
        client->generation = __atomic_load_n(&client_generation, __ATOMIC_RELAXED);
        if (r < 0)
                client->broken = true;
        return r;
}

/**
 * client_usable() - whether a client may issue a call
 * @client:     client
 *
 * In a forked child, the first call adopts the connection.
 *
 * Return: 0, -EBADFD if another process (a forked child) adopted the peer,
 *         -ESHUTDOWN after PEER_DISCONNECT, -ECONNRESET if the connection
 *         failed, or the error of the adoption.
 */
int client_usable(Client *client) {
        int r;

        if (client->generation != __atomic_load_n(&client_generation, __ATOMIC_RELAXED)) {
                r = client_adopt(client);
                if (r < 0)
                        return r;
        }
        if (client->ring &&
            __atomic_load_n(proto_ring_word(client->ring, PROTO_RING_RETIRED), __ATOMIC_ACQUIRE))
                return -EBADFD;
        if (client->disconnected)
                return -ESHUTDOWN;
        if (client->broken)
                return -ECONNRESET;
        return 0;
}

/**
 * client_address() - the socket path to connect to
 * @buf:        buffer for the path
 * @size:       its size
 * @address:    explicit address, or NULL for $BUS1_ADDRESS, else the default
 *              $XDG_RUNTIME_DIR/bus1/socket
 *
 * Return: 0, -ENOENT if no address is known, -ENAMETOOLONG.
 */
int client_address(char *buf, size_t size, const char *address) {
        const char *runtime;
        int n;

        if (!address)
                address = getenv("BUS1_ADDRESS");
        if (address && *address) {
                n = snprintf(buf, size, "%s", address);
        } else {
                runtime = getenv("XDG_RUNTIME_DIR");
                if (!runtime || !*runtime)
                        return -ENOENT;
                n = snprintf(buf, size, "%s/bus1/socket", runtime);
        }
        if (n < 0 || (size_t)n >= size)
                return -ENAMETOOLONG;
        return 0;
}

static int client_alloc(Client **clientp) {
        Client *client;

        client = calloc(1, sizeof(*client));
        if (!client)
                return -ENOMEM;
        pthread_once(&client_once, client_watch_forks);
        pthread_mutex_init(&client->lock, NULL);
        client->generation = __atomic_load_n(&client_generation, __ATOMIC_RELAXED);
        client->peeked = BUS1_OFFSET_INVALID;
        client->fd = -1;
        client->pool_fd = -1;
        *clientp = client;
        return 0;
}

/* send one packet, waiting while a non-blocking socket is full */
static int client_sendmsg(Client *client, const void *data, size_t len, const int *fds,
                          size_t n_fds) {
        for (;;) {
                int r = scm_send(client->fd, data, len, fds, n_fds, 0);

                if (r != -EINTR && r != -EAGAIN)
                        return r;
                if (r == -EAGAIN) {
                        /* the caller made the socket non-blocking */
                        struct pollfd p = { .fd = client->fd, .events = POLLOUT };

                        if (poll(&p, 1, -1) < 0 && errno != EINTR)
                                return -errno;
                }
        }
}

/* a record with any number of fds: the excess goes ahead on FDS carriers */
static int client_write(Client *client, const void *data, size_t len, const int *fds,
                        size_t n_fds) {
        uint8_t carrier[PROTO_SIZE_FDS];
        int r;

        while (n_fds > PROTO_PACKET_FDS_MAX) {
                size_t n = MIN(n_fds - PROTO_PACKET_FDS_MAX, (size_t)PROTO_PACKET_FDS_MAX);
                ProtoFds f = { .type = PROTO_TYPE_FDS, .n_fds = (uint32_t)n };

                r = proto_encode_fds(carrier, sizeof(carrier), &f);
                if (r < 0)
                        return r;
                r = client_sendmsg(client, carrier, (size_t)r, fds, n);
                if (r < 0)
                        return r;
                fds += n;
                n_fds -= n;
        }
        return client_sendmsg(client, data, len, fds, n_fds);
}

/*
 * Read one packet into client_rx. With @peek the packet stays in the
 * socket (only for records without fds). fds the kernel could not install
 * (no free descriptor: MSG_CTRUNC) set @pkt->fds_lost; the record itself is
 * intact. Return: 1 read, 0 nothing there (only with @nonblock), negative
 * errno (-ECONNRESET for end of stream).
 */
static int client_read(Client *client, ClientPacket *pkt, bool nonblock, bool peek) {
        int flags = (peek ? MSG_PEEK : 0) | (nonblock ? MSG_DONTWAIT : 0), msg_flags = 0;
        ssize_t l;

        for (;;) {
                l = scm_recv(client->fd, client_rx, sizeof(client_rx), flags, pkt->fds,
                             PROTO_RECORD_FDS_MAX, &pkt->n_fds, &msg_flags);
                if (l >= 0)
                        break;
                if (l == -EINTR)
                        continue;
                if (l == -EAGAIN) {
                        struct pollfd p = { .fd = client->fd, .events = POLLIN };

                        if (nonblock)
                                return 0;
                        if (poll(&p, 1, -1) < 0 && errno != EINTR)
                                return -errno;
                        continue;
                }
                return (int)l;
        }

        if (l == 0)
                return -ECONNRESET;
        pkt->fds_lost = msg_flags & MSG_CTRUNC;
        if ((msg_flags & MSG_TRUNC) || proto_decode_header(&pkt->hdr, client_rx, (size_t)l) < 0) {
                client_close_fds(pkt->fds, pkt->n_fds);
                pkt->n_fds = 0;
                return -EBADMSG;
        }
        pkt->len = (size_t)l;
        return 1;
}

static ClientEntry *client_entry_at(Client *client, size_t i) {
        return &client->entries[(client->entries_head + i) % client->entries_cap];
}

static ClientEntry *client_front(Client *client) {
        return client->n_entries ? client_entry_at(client, 0) : NULL;
}

static void client_pop_front(Client *client) {
        client->entries_head = (client->entries_head + 1) % client->entries_cap;
        --client->n_entries;
}

static int client_push_back(Client *client, const ProtoEntry *e) {
        if (client->n_entries == client->entries_cap) {
                size_t cap = client->entries_cap ? client->entries_cap * 2 : 16;
                ClientEntry *n = malloc(cap * sizeof(*n));

                if (!n)
                        return -ENOMEM;
                for (size_t i = 0; i < client->n_entries; ++i)
                        n[i] = *client_entry_at(client, i);
                free(client->entries);
                client->entries = n;
                client->entries_cap = cap;
                client->entries_head = 0;
        }
        client_entry_at(client, client->n_entries++)->e = *e;
        return 0;
}

/* drop an entry the broker withdrew; fix its predecessor's CONTINUE */
static void client_retract(Client *client, const ProtoRetract *retract) {
        size_t i;

        for (i = 0; i < client->n_entries; ++i)
                if (client_entry_at(client, i)->e.entry_id == retract->entry_id)
                        break;
        if (i == client->n_entries)
                return;

        if (i > 0) {
                ProtoMessage *prev = &client_entry_at(client, i - 1)->e.msg;

                if (retract->flags & PROTO_RETRACT_FLAG_PREV_CONTINUES)
                        prev->flags |= BUS1_MSG_FLAG_CONTINUE;
                else
                        prev->flags &= ~(uint64_t)BUS1_MSG_FLAG_CONTINUE;
        }
        for (; i + 1 < client->n_entries; ++i)
                *client_entry_at(client, i) = *client_entry_at(client, i + 1);
        --client->n_entries;
}

/* act on a record the broker pushed; fatal errors break the connection */
static int client_handle_push(Client *client, ClientPacket *pkt) {
        int r;

        if (pkt->fds_lost)
                return -EBADMSG;

        switch (pkt->hdr.type) {
        case PROTO_TYPE_ENTRY: {
                ProtoEntry e;

                r = proto_decode_entry(&e, client_rx, pkt->len, pkt->n_fds);
                if (r < 0)
                        return r;
                /* a copy of what a RECV round trip already dequeued */
                if (e.entry_id <= client->dequeued_upto)
                        return 0;
                return client_push_back(client, &e);
        }
        case PROTO_TYPE_RETRACT: {
                ProtoRetract retract;

                r = proto_decode_retract(&retract, client_rx, pkt->len, pkt->n_fds);
                if (r < 0)
                        return r;
                client_retract(client, &retract);
                return 0;
        }
        case PROTO_TYPE_RESYNC:
                r = proto_decode_resync(client_rx, pkt->len, pkt->n_fds);
                if (r < 0)
                        return r;
                client->n_entries = 0;
                return 0;
        case PROTO_TYPE_WAKE:
                return proto_decode_wake(client_rx, pkt->len, pkt->n_fds);
        default:
                return -EBADMSG;
        }
}

static int client_fail(Client *client, int r) {
        if (r == -ENOMEM)
                return r;
        /* the stream cannot be trusted any more */
        client->broken = true;
        return r == -EBADMSG ? -EPROTO : r;
}

/*
 * Append a value to the release ring (docs/protocol.md section 8a).
 * Return: false if there is no ring or it is full; the caller then tells
 * the broker with a record instead.
 */
static bool client_ring_push(Client *client, uint64_t value) {
        uint64_t head;

        if (!client->ring)
                return false;
        head = le64toh(__atomic_load_n(proto_ring_word(client->ring, PROTO_RING_HEAD),
                                       __ATOMIC_ACQUIRE));
        if (client->ring_tail - head >= PROTO_RING_N_SLOTS)
                return false;
        __atomic_store_n(proto_ring_word(client->ring, proto_ring_slot(client->ring_tail)),
                         htole64(value), __ATOMIC_RELAXED);
        ++client->ring_tail;
        __atomic_store_n(proto_ring_word(client->ring, PROTO_RING_TAIL),
                         htole64(client->ring_tail), __ATOMIC_RELEASE);
        return true;
}

/*
 * Report local dequeues through the ring. Return: true if the broker will
 * know of every one before anything written after (ring or socket).
 */
static bool client_ring_ack(Client *client) {
        if (client->dequeued_upto <= client->acked)
                return true;
        if (!client_ring_push(client, (client->dequeued_upto << 3) | PROTO_RING_ACK))
                return false;
        client->acked = client->dequeued_upto;
        return true;
}

/* report locally dequeued entries ahead of the next request */
static int client_flush_ack(Client *client) {
        uint8_t buf[PROTO_SIZE_HEADER + 8];
        ProtoAck ack = { .entry_id = client->dequeued_upto };
        int r;

        /* the broker drains the ring before it reads the request */
        if (client_ring_ack(client))
                return 0;
        r = proto_encode_ack(buf, sizeof(buf), &ack);
        if (r < 0)
                return r;
        r = client_write(client, buf, (size_t)r, NULL, 0);
        if (r < 0)
                return r;
        client->acked = client->dequeued_upto;
        return 0;
}

/*
 * The broker follows a reply with a WAKE while the client holds entries it
 * pushed (read while waiting for the reply, so no longer in the socket).
 * Wait for it: when the call returns, the descriptor must poll readable as
 * long as RECV has entries.
 */
static void client_await_wake(Client *client) {
        struct pollfd p = { .fd = client->fd, .events = POLLIN };

        if (!client->n_entries || client->broken)
                return;
        while (poll(&p, 1, -1) < 0 && errno == EINTR)
                ;
}

/*
 * One request, one reply. The reply is left in client_rx (@pkt->len bytes)
 * with its fds (carriers included) in @pkt. Pushes read meanwhile are
 * buffered.
 */
static int client_call(Client *client, const void *req, size_t len, const int *fds,
                       size_t n_fds, uint64_t cookie, ClientPacket *pkt) {
        int carried[PROTO_RECORD_FDS_MAX];
        size_t n_carried = 0;
        ProtoHeader req_hdr;
        bool is_recv, lost = false;
        int r;

        if (client->broken)
                return -ECONNRESET;
        /* a RECV (and its SLICE_FDS) may dequeue the front: client_recv_remote() waits */
        is_recv = proto_decode_header(&req_hdr, req, len) == 0 &&
                  (req_hdr.type == PROTO_TYPE_RECV || req_hdr.type == PROTO_TYPE_SLICE_FDS);

        r = client_flush_ack(client);
        if (r < 0)
                return client_fail(client, r);
        r = client_write(client, req, len, fds, n_fds);
        if (r < 0)
                return client_fail(client, r);

        for (;;) {
                r = client_read(client, pkt, false, false);
                if (r < 0)
                        goto fail;

                if (pkt->hdr.type == PROTO_TYPE_PUSH_FDS) {
                        ProtoFds f;

                        /* fds the process could not take: the RECV reply reports it */
                        r = proto_decode_fds(&f, client_rx, pkt->len,
                                             pkt->fds_lost ? PROTO_FDS_LOST : pkt->n_fds);
                        if (r < 0 || n_carried + pkt->n_fds > PROTO_RECORD_FDS_MAX) {
                                client_close_fds(pkt->fds, pkt->n_fds);
                                r = -EBADMSG;
                                goto fail;
                        }
                        memcpy(carried + n_carried, pkt->fds, pkt->n_fds * sizeof(int));
                        n_carried += pkt->n_fds;
                        lost |= pkt->fds_lost;
                        continue;
                }

                if (pkt->hdr.type == PROTO_TYPE_REPLY) {
                        if (pkt->hdr.cookie != cookie ||
                            n_carried + pkt->n_fds > PROTO_RECORD_FDS_MAX) {
                                client_close_fds(pkt->fds, pkt->n_fds);
                                r = -EBADMSG;
                                goto fail;
                        }
                        /* carried fds come first */
                        memmove(pkt->fds + n_carried, pkt->fds, pkt->n_fds * sizeof(int));
                        memcpy(pkt->fds, carried, n_carried * sizeof(int));
                        pkt->n_fds += n_carried;
                        pkt->fds_lost |= lost;
                        /* only a RECV copes with fds it could not take */
                        if (pkt->fds_lost && !is_recv) {
                                client_close_fds(pkt->fds, pkt->n_fds);
                                pkt->n_fds = 0;
                                return -EMFILE;
                        }
                        /* not for HELLO: a new stream starts after its reply */
                        if (!is_recv && client->pool)
                                client_await_wake(client);
                        return 0;
                }

                r = client_handle_push(client, pkt);
                client_close_fds(pkt->fds, pkt->n_fds);
                if (r < 0)
                        goto fail;
        }

fail:
        client_close_fds(carried, n_carried);
        return client_fail(client, r);
}

/* a request whose reply has no body; returns the broker's answer */
static int client_call_simple(Client *client, const void *req, size_t len, const int *fds,
                              size_t n_fds, uint64_t cookie) {
        ClientPacket pkt;
        ProtoReply reply;
        int r;

        r = client_call(client, req, len, fds, n_fds, cookie, &pkt);
        if (r < 0)
                return r;
        r = proto_decode_reply(&reply, client_rx, pkt.len, pkt.n_fds);
        client_close_fds(pkt.fds, pkt.n_fds);
        if (r < 0)
                return client_fail(client, r);
        return -(int)reply.error;
}

static int client_hello(Client *client) {
        uint8_t buf[PROTO_SIZE_HELLO];
        ProtoHello hello = {
                .cookie = ++client->n_cookies,
                .version_min = PROTO_VERSION_MIN,
                .version_max = PROTO_VERSION_MAX,
        };
        ProtoReplyHello reply;
        ClientPacket pkt;
        void *p, *ring;
        struct stat st;
        int r;

        r = proto_encode_hello(buf, sizeof(buf), &hello);
        if (r < 0)
                return r;
        r = client_call(client, buf, (size_t)r, NULL, 0, hello.cookie, &pkt);
        if (r < 0)
                return r;

        /* whatever arrived before the reply belongs to an earlier stream */
        client->n_entries = 0;

        r = proto_decode_reply_hello(&reply, client_rx, pkt.len, pkt.n_fds);
        if (r < 0) {
                client_close_fds(pkt.fds, pkt.n_fds);
                return client_fail(client, r);
        }
        if (reply.error)
                return -(int)reply.error;
        if (pkt.n_fds != 2 || reply.pool_size > SIZE_MAX) {
                client_close_fds(pkt.fds, pkt.n_fds);
                return client_fail(client, -EBADMSG);
        }

        ring = mmap(NULL, PROTO_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, pkt.fds[1], 0);
        if (ring == MAP_FAILED) {
                r = -errno;
                client_close_fds(pkt.fds, pkt.n_fds);
                return r;
        }
        safe_close(pkt.fds[1]);
        p = mmap(NULL, (size_t)reply.pool_size, PROT_READ, MAP_SHARED, pkt.fds[0], 0);
        if (p == MAP_FAILED) {
                r = -errno;
                safe_close(pkt.fds[0]);
                munmap(ring, PROTO_RING_SIZE);
                return r;
        }
        if (client->ring)
                munmap(client->ring, PROTO_RING_SIZE);
        client->ring = ring;
        client->ring_tail = 0;
        if (client->pool)
                munmap((void *)client->pool, (size_t)client->pool_size);
        safe_close(client->pool_fd);
        client->pool = p;
        client->pool_fd = pkt.fds[0];
        if (fstat(client->pool_fd, &st) == 0) {
                client->pool_dev = st.st_dev;
                client->pool_ino = st.st_ino;
        }
        client->pool_size = reply.pool_size;
        client->peer_id = reply.peer_id;
        client->user_max_handles = reply.user_max_handles;
        return 0;
}

/**
 * client_new() - connect a new peer to the broker
 * @clientp:    out: the client
 * @address:    socket path, or NULL (see client_address())
 *
 * Return: 0, or a negative errno: -ENOENT no address known, the errno of
 *         socket(2)/connect(2)/mmap(2), or what the broker answered.
 */
int client_new(Client **clientp, const char *address) {
        char path[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
        struct sockaddr_un sa;
        socklen_t salen;
        Client *client;
        int r;

        r = client_address(path, sizeof(path), address);
        if (r >= 0)
                r = unix_address(&sa, path, &salen);
        if (r < 0)
                return r;
        r = client_alloc(&client);
        if (r < 0)
                return r;

        client->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (client->fd < 0) {
                r = -errno;
                goto error;
        }
        if (connect(client->fd, (struct sockaddr *)&sa, salen) < 0) {
                r = -errno;
                goto error;
        }
        r = client_hello(client);
        if (r < 0)
                goto error;

        *clientp = client;
        return 0;

error:
        client_free(client);
        return r;
}

/**
 * client_new_from_fd() - adopt an inherited connection as the same peer
 * @clientp:    out: the client
 * @fd:         a connection to the broker (e.g. inherited across exec),
 *              owned by the client from now on
 *
 * The broker starts the stream afresh and hands out the pool again, so the
 * adopting process sees every entry still queued on the peer.
 *
 * Return: 0, -ENOTSOCK if @fd is not a SOCK_SEQPACKET socket, or what
 *         client_new() returns.
 */
int client_new_from_fd(Client **clientp, int fd) {
        Client *client;
        int type = 0, r;
        socklen_t len = sizeof(type);

        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
                return -ENOTSOCK;
        r = client_alloc(&client);
        if (r < 0)
                return r;
        client->fd = fd;
        r = client_hello(client);
        if (r < 0) {
                client->fd = -1;        /* the caller keeps it on failure */
                client_free(client);
                return r;
        }
        *clientp = client;
        return 0;
}

/**
 * client_free() - close the connection and unmap the pool
 * @client:     client, or NULL
 *
 * The broker disconnects the peer when the connection closes.
 *
 * Return: NULL.
 */
Client *client_free(Client *client) {
        if (!client)
                return NULL;
        if (client->pool)
                munmap((void *)client->pool, (size_t)client->pool_size);
        if (client->ring)
                munmap(client->ring, PROTO_RING_SIZE);
        offset_set_clear(&client->slices);
        safe_close(client->pool_fd);
        safe_close(client->fd);
        free(client->entries);
        pthread_mutex_destroy(&client->lock);
        free(client);
        return NULL;
}

/**
 * client_free_closed() - free a client whose socket the program closed
 * @client:     client, or NULL
 *
 * The program closed the socket with close(2) (its number may name
 * something else by now) and perhaps the pool's descriptor too: only a pool
 * descriptor that still names the pool is closed.
 *
 * Return: NULL.
 */
Client *client_free_closed(Client *client) {
        struct stat st;

        if (!client)
                return NULL;
        client->fd = -1;
        if (client->pool_fd >= 0 &&
            (fstat(client->pool_fd, &st) < 0 || st.st_dev != client->pool_dev ||
             st.st_ino != client->pool_ino))
                client->pool_fd = -1;
        return client_free(client);
}

/* after PEER_DISCONNECT: the descriptor keeps its number but only hangs up */
static void client_hang_up(Client *client) {
        int p[2];

        client->disconnected = true;
        client->n_entries = 0;
        if (pipe2(p, O_CLOEXEC) < 0)
                return;
        safe_close(p[1]);
        /* a pipe whose writer is gone polls POLLHUP, and nothing else */
        if (dup3(p[0], client->fd, O_CLOEXEC) < 0)
                shutdown(client->fd, SHUT_RDWR);
        safe_close(p[0]);
}

/**
 * client_disconnect() - PEER_DISCONNECT
 * @client:     client
 *
 * Return: 0, -ESHUTDOWN if already disconnected, or a connection error.
 */
int client_disconnect(Client *client) {
        uint8_t buf[PROTO_SIZE_PEER_DISCONNECT];
        ProtoPeerDisconnect req = { .cookie = ++client->n_cookies };
        int r;

        r = client_usable(client);
        if (r < 0)
                return r;
        r = proto_encode_peer_disconnect(buf, sizeof(buf), &req);
        if (r < 0)
                return r;
        r = client_call_simple(client, buf, (size_t)r, NULL, 0, req.cookie);
        if (r == 0 || r == -ESHUTDOWN)
                client_hang_up(client);
        return r;
}

/**
 * client_query() - PEER_QUERY
 * @client:     client
 * @flags:      must be 0
 * @replyp:     out: flags and limits
 *
 * Return: 0, -ESHUTDOWN, -EINVAL, or a connection error.
 */
int client_query(Client *client, uint64_t flags, ProtoReplyPeerQuery *replyp) {
        uint8_t buf[PROTO_SIZE_PEER_QUERY];
        ProtoPeerQuery req = { .cookie = ++client->n_cookies, .flags = flags };
        ClientPacket pkt;
        int r;

        r = client_usable(client);
        if (r < 0)
                return r;
        r = proto_encode_peer_query(buf, sizeof(buf), &req);
        if (r < 0)
                return r;
        r = client_call(client, buf, (size_t)r, NULL, 0, req.cookie, &pkt);
        if (r < 0)
                return r;
        r = proto_decode_reply_peer_query(replyp, client_rx, pkt.len, pkt.n_fds);
        client_close_fds(pkt.fds, pkt.n_fds);
        if (r < 0)
                return client_fail(client, r);
        return -(int)replyp->error;
}

/**
 * client_reset() - PEER_RESET
 * @client:     client
 * @reset:      the command (cookie is filled in)
 *
 * Return: 0, -ESHUTDOWN, -EINVAL, or a connection error.
 */
int client_reset(Client *client, const ProtoPeerReset *reset) {
        uint8_t buf[PROTO_SIZE_PEER_RESET];
        ProtoPeerReset req = *reset;
        int r;

        r = client_usable(client);
        if (r < 0)
                return r;
        req.cookie = ++client->n_cookies;
        r = proto_encode_peer_reset(buf, sizeof(buf), &req);
        if (r < 0)
                return r;
        r = client_call_simple(client, buf, (size_t)r, NULL, 0, req.cookie);
        /* a flush released every slice */
        if (r == 0 && (reset->flags & BUS1_PEER_RESET_FLAG_FLUSH))
                offset_set_clear(&client->slices);
        return r;
}

/**
 * client_handle_release() - HANDLE_RELEASE
 * @client:     client
 * @id:         handle ID
 *
 * Return: 0, or the errno the broker answered (-ENXIO, -EBUSY, ...).
 */
int client_handle_release(Client *client, uint64_t id) {
        uint8_t buf[PROTO_SIZE_HANDLE_RELEASE];
        ProtoHandleRelease req = { .cookie = ++client->n_cookies, .id = id };
        int r;

        r = client_usable(client);
        if (r < 0)
                return r;
        r = proto_encode_handle_release(buf, sizeof(buf), &req);
        if (r < 0)
                return r;
        return client_call_simple(client, buf, (size_t)r, NULL, 0, req.cookie);
}

/**
 * client_handle_transfer() - HANDLE_TRANSFER
 * @client:     calling peer
 * @flags:      must be 0
 * @src:        the caller's handle
 * @dst:        destination client of this process, or NULL
 * @dst_fd:     with @dst NULL: a descriptor naming the destination
 *              connection, or -1 for the caller itself
 * @dst_idp:    out: the destination's handle ID
 *
 * The destination is proven by passing its connection's descriptor to the
 * broker, which matches it to the peer.
 *
 * Return: 0, or -ESHUTDOWN, -EINVAL, -ENXIO, -EOPNOTSUPP, -EDQUOT as the
 *         broker answers, or a connection error.
 */
int client_handle_transfer(Client *client, uint64_t flags, uint64_t src, Client *dst,
                           int dst_fd, uint64_t *dst_idp) {
        uint8_t buf[PROTO_SIZE_HANDLE_TRANSFER];
        ProtoHandleTransfer req = { .cookie = ++client->n_cookies, .flags = flags,
                                    .src_handle = src, .dst_mode = PROTO_DST_SELF };
        ProtoReplyHandleTransfer reply;
        ClientPacket pkt;
        int r;

        r = client_usable(client);
        if (r < 0)
                return r;
        if (dst) {
                if (dst->disconnected || dst->broken)
                        return -ESHUTDOWN;
                if (dst != client)
                        dst_fd = dst->fd;
                else
                        dst_fd = -1;
        }
        if (dst_fd >= 0)
                req.dst_mode = PROTO_DST_FD;

        r = proto_encode_handle_transfer(buf, sizeof(buf), &req);
        if (r < 0)
                return r;
        r = client_call(client, buf, (size_t)r, dst_fd >= 0 ? &dst_fd : NULL,
                        dst_fd >= 0 ? 1 : 0, req.cookie, &pkt);
        if (r < 0)
                return r;
        r = proto_decode_reply_handle_transfer(&reply, client_rx, pkt.len, pkt.n_fds);
        client_close_fds(pkt.fds, pkt.n_fds);
        if (r < 0)
                return client_fail(client, r);
        if (reply.error)
                return -(int)reply.error;
        *dst_idp = reply.dst_handle;
        return 0;
}

/**
 * client_nodes_destroy() - NODES_DESTROY
 * @client:     client
 * @flags:      BUS1_NODES_DESTROY_FLAG_*
 * @ids:        owner handle IDs
 * @n_ids:      their number
 *
 * Return: 0, or the broker's errno, or -EINVAL for more IDs than one
 *         request carries (PROTO_NODES_MAX).
 */
int client_nodes_destroy(Client *client, uint64_t flags, const uint64_t *ids, size_t n_ids) {
        _cleanup_(freep) uint8_t *buf = NULL;
        uint64_t cookie = ++client->n_cookies;
        size_t size;
        int r;

        r = client_usable(client);
        if (r < 0)
                return r;
        /* an unreadable array travels as its count: the broker answers in turn */
        if (!ids && n_ids)
                flags |= PROTO_NODES_DESTROY_FLAG_EFAULT;
        r = proto_size_nodes_destroy(&size, proto_nodes_destroy_n_ids(flags, n_ids));
        if (r < 0)
                return r;
        buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        r = proto_encode_nodes_destroy(buf, size, cookie, flags, ids, n_ids);
        if (r < 0)
                return r;
        return client_call_simple(client, buf, (size_t)r, NULL, 0, cookie);
}

/**
 * client_slice_release() - SLICE_RELEASE
 * @client:     client
 * @offset:     offset of a received slice
 *
 * Return: 0, -ENXIO, -ESHUTDOWN, or a connection error.
 */
int client_slice_release(Client *client, uint64_t offset) {
        uint8_t buf[PROTO_SIZE_SLICE_RELEASE];
        ProtoSliceRelease req = { .offset = offset };
        int r;

        r = client_usable(client);
        if (r < 0)
                return r;

        /*
         * A slice this client received goes through the ring, behind the
         * ACK of its dequeue; anything else (an offset it never received,
         * one received before it adopted the connection, a full ring) is
         * the broker's to judge.
         */
        if (offset_set_remove(&client->slices, offset) && client_ring_ack(client) &&
            client_ring_push(client, offset | PROTO_RING_RELEASE))
                return 0;
        /*
         * The kernel's PEEK published the slice (message.c
         * bus1_message_install()), so releasing it once succeeds; the entry
         * stays queued and its RECV shows the slice again.
         */
        if (client->peeked != BUS1_OFFSET_INVALID && offset == client->peeked) {
                client->peeked = BUS1_OFFSET_INVALID;
                return 0;
        }

        req.cookie = ++client->n_cookies;
        r = proto_encode_slice_release(buf, sizeof(buf), &req);
        if (r < 0)
                return r;
        return client_call_simple(client, buf, (size_t)r, NULL, 0, req.cookie);
}

/* a payload too large for one record travels in a sealed memfd */
static int client_payload_memfd(const struct iovec *vecs, size_t n_vecs, int *fdp) {
        _cleanup_(closep) int fd = -1;
        size_t done = 0;

        fd = memfd_create("bus1-payload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        for (size_t i = 0; i < n_vecs; ++i) {
                const uint8_t *p = vecs[i].iov_base;
                size_t left = vecs[i].iov_len;

                while (left) {
                        ssize_t l = pwrite(fd, p, left, (off_t)done);

                        if (l < 0) {
                                if (errno == EINTR)
                                        continue;
                                return errno == EFAULT ? -EFAULT : -ENOMEM;
                        }
                        p += l;
                        left -= (size_t)l;
                        done += (size_t)l;
                }
        }
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        *fdp = TAKE_FD(fd);
        return 0;
}

/**
 * client_send() - SEND
 * @client:     client
 * @s:          the message
 *
 * Return: 0 (per-destination errors in @s->errors), or the first error of
 *         an atomic send, or a local argument error (-EMSGSIZE, -EINVAL,
 *         -EFAULT), or a connection error.
 */
int client_send(Client *client, const ClientSend *s) {
        int fds[BUS1_FD_MAX + 1];
        ProtoSendArgs args = {
                .cookie = ++client->n_cookies,
                .flags = s->flags | (s->errors ? PROTO_SEND_FLAG_ERRORS : 0),
                .destinations = s->destinations,
                .n_destinations = s->n_destinations,
                .handles = s->handles,
                .n_handles = s->n_handles,
                .n_fds = s->n_fds,
                .payload_mode = PROTO_PAYLOAD_INLINE,
                .vecs = s->vecs,
                .n_vecs = s->n_vecs,
        };
        _cleanup_(freep) uint8_t *heap = NULL;
        _cleanup_(closep) int memfd = -1;
        uint8_t stack[4096] __attribute__((__aligned__(8)));
        ProtoReplySend reply;
        ClientPacket pkt;
        uint64_t n_bytes = 0;
        size_t size, n_ids, n_fds = s->n_fds;
        uint8_t *buf = stack;
        int r;

        r = client_usable(client);
        if (r < 0)
                return r;
        if (s->n_fds > BUS1_FD_MAX)
                return -EMSGSIZE;
        for (size_t i = 0; i < s->n_vecs; ++i)
                if (__builtin_add_overflow(n_bytes, s->vecs[i].iov_len, &n_bytes))
                        return -EMSGSIZE;
        if (n_bytes > PROTO_BYTES_MAX)
                return -EMSGSIZE;
        args.n_bytes = n_bytes;

        /*
         * An array the caller's call could not give: the broker fails the
         * send with that error where the kernel would have met it. The
         * payload is not needed for that.
         */
        if (s->fds_fault || s->destinations_fault) {
                args.flags |= s->fds_fault == -EFAULT ? PROTO_SEND_FLAG_FDS_EFAULT
                              : s->fds_fault ? PROTO_SEND_FLAG_FDS_EBADF : 0;
                if (s->destinations_fault) {
                        args.flags |= PROTO_SEND_FLAG_DESTINATIONS_EFAULT;
                        args.destinations = NULL;
                }
                args.flags &= ~PROTO_SEND_FLAG_ERRORS;
                args.vecs = NULL;
                args.n_vecs = 0;
                args.n_bytes = 0;
        }

        n_ids = (args.flags & PROTO_SEND_FLAG_DESTINATIONS_EFAULT) ? 0 : s->n_destinations;
        r = proto_size_send(&size, n_ids, s->n_handles, PROTO_PAYLOAD_INLINE, args.n_bytes);
        if (r < 0 || size > PROTO_RECORD_MAX) {
                r = client_payload_memfd(s->vecs, s->n_vecs, &memfd);
                if (r < 0)
                        return r;
                args.payload_mode = PROTO_PAYLOAD_MEMFD;
                args.vecs = NULL;
                args.n_vecs = 0;
                r = proto_size_send(&size, n_ids, s->n_handles, PROTO_PAYLOAD_MEMFD,
                                    args.n_bytes);
                if (r < 0)
                        return r;
        }
        if (size > sizeof(stack)) {
                heap = malloc(size);
                if (!heap)
                        return -ENOMEM;
                buf = heap;
        }
        r = proto_encode_send(buf, size, &args);
        if (r < 0)
                return r;

        if (n_fds)
                memcpy(fds, s->fds, n_fds * sizeof(int));
        if (memfd >= 0)
                fds[n_fds++] = memfd;

        r = client_call(client, buf, (size_t)r, fds, n_fds, args.cookie, &pkt);
        if (r < 0)
                return r;
        r = proto_decode_reply_send(&reply, client_rx, pkt.len, pkt.n_fds);
        client_close_fds(pkt.fds, pkt.n_fds);
        if (r < 0)
                return client_fail(client, r);
        if (reply.error)
                return -(int)reply.error;
        if (s->errors) {
                if (reply.n_errors != s->n_destinations)
                        return client_fail(client, -EBADMSG);
                for (size_t i = 0; i < s->n_destinations; ++i)
                        s->errors[i] = proto_u64_at(reply.errors, i);
        }
        return 0;
}

/**
 * client_slice_size() - bytes of the slice an entry occupies
 * @msg:        a DATA entry as pushed (n_fds: the fds attached)
 *
 * Return: the slice size, which is what ERANGE is checked against.
 */
uint64_t client_slice_size(const ProtoMessage *msg) {
        uint64_t size = align8(msg->n_bytes) + 8 * msg->n_handles + align8(4 * msg->n_fds) +
                        align8(msg->n_secctx);

        return size < 8 ? 8 : size;
}

/*
 * Answer the fds a RECV reply handed over with SLICE_FDS: their numbers,
 * which also dequeues the entry at the broker, or none if some could not be
 * installed (this process is out of descriptors), which leaves it queued.
 * Return: 0 (the caller owns @pkt's fds), -EMFILE (nothing was received),
 * or another error (the fds are closed).
 */
static int client_recv_confirm(Client *client, ClientPacket *pkt, uint64_t offset) {
        uint8_t buf[PROTO_SIZE_SLICE_FDS_MIN + 4 * BUS1_FD_MAX + 8];
        uint64_t cookie = ++client->n_cookies;
        bool lost = pkt->fds_lost;
        int r;

        if (lost) {
                client_close_fds(pkt->fds, pkt->n_fds);
                pkt->n_fds = 0;
        }
        r = proto_encode_slice_fds(buf, sizeof(buf), cookie, offset, pkt->fds, pkt->n_fds);
        if (r >= 0)
                r = client_call_simple(client, buf, (size_t)r, NULL, 0, cookie);
        if (r < 0) {
                client_close_fds(pkt->fds, pkt->n_fds);
                pkt->n_fds = 0;
                return r;
        }
        return lost ? -EMFILE : 0;
}

/*
 * RECV through the broker. An entry with fds to install is dequeued only
 * once this process holds them all (client_recv_confirm()).
 */
static int client_recv_remote(Client *client, uint64_t flags, uint64_t max_offset,
                              ClientRecv *out) {
        uint8_t buf[PROTO_SIZE_RECV];
        ProtoRecv req = { .cookie = ++client->n_cookies, .flags = flags,
                          .max_offset = max_offset };
        ProtoReplyRecv reply;
        ClientPacket pkt;
        int r;

        r = proto_encode_recv(buf, sizeof(buf), &req);
        if (r < 0)
                return r;
        r = client_call(client, buf, (size_t)r, NULL, 0, req.cookie, &pkt);
        if (r < 0)
                return r;
        r = proto_decode_reply_recv(&reply, client_rx, pkt.len, pkt.fds_lost ? 0 : pkt.n_fds);
        if (r < 0) {
                client_close_fds(pkt.fds, pkt.n_fds);
                return client_fail(client, r);
        }
        if (reply.error) {
                client_await_wake(client);
                return -(int)reply.error;
        }
        if (pkt.n_fds || pkt.fds_lost) {
                r = client_recv_confirm(client, &pkt, reply.entry.msg.offset);
                if (r < 0) {
                        client_await_wake(client);
                        return r;
                }
        }

        if (!(flags & BUS1_RECV_FLAG_PEEK) && !(flags & BUS1_RECV_FLAG_SEED)) {
                ClientEntry *front = client_front(client);

                /* the broker dequeued its front: drop the pushed copy */
                if (front && front->e.entry_id == reply.entry.entry_id)
                        client_pop_front(client);
                if (reply.entry.entry_id > client->dequeued_upto)
                        client->dequeued_upto = reply.entry.entry_id;
                /* no room to remember it: its release takes the round trip */
                if (reply.entry.msg.type == BUS1_MSG_DATA)
                        (void)offset_set_add(&client->slices, reply.entry.msg.offset);
        }
        /* only now is it known which buffered entries the broker still has */
        client_await_wake(client);

        out->entry = reply.entry;
        out->fds = NULL;
        out->n_fds = 0;
        if (pkt.n_fds) {
                out->fds = malloc(pkt.n_fds * sizeof(int));
                if (!out->fds) {
                        /* received all the same: the fds are closed, the slice names them */
                        client_close_fds(pkt.fds, pkt.n_fds);
                        return -ENOMEM;
                }
                memcpy(out->fds, pkt.fds, pkt.n_fds * sizeof(int));
                out->n_fds = pkt.n_fds;
        }
        return 0;
}

/*
 * Make the next entry available: from the buffer, or from the socket.
 * Without @consume the socket's record is only peeked, so the descriptor
 * stays readable if the caller does not dequeue it (PEEK, ERANGE). With
 * @consume the record is read and buffered in one recvmsg(); the caller
 * must then either dequeue it or leave it to a RECV round trip, whose
 * reply the broker follows with a WAKE while entries stay outstanding.
 * Return: 1 and the entry in @ep (from_socket set if it is still in the
 * socket), 0 nothing here, negative errno.
 */
static int client_next(Client *client, bool consume, ProtoEntry *ep, bool *from_socketp) {
        ClientEntry *front;
        ClientPacket pkt;
        int r;

        for (;;) {
                front = client_front(client);
                if (front) {
                        *ep = front->e;
                        *from_socketp = false;
                        return 1;
                }

                if (!consume) {
                        r = client_read(client, &pkt, true, true);
                        if (r <= 0)
                                return r == 0 ? 0 : client_fail(client, r);

                        if (pkt.hdr.type == PROTO_TYPE_ENTRY && pkt.n_fds == 0) {
                                r = proto_decode_entry(ep, client_rx, pkt.len, 0);
                                if (r < 0)
                                        return client_fail(client, r);
                                if (ep->entry_id > client->dequeued_upto) {
                                        *from_socketp = true;
                                        return 1;
                                }
                        }
                }

                /* consume: an entry is buffered, anything else acted on */
                r = client_read(client, &pkt, true, false);
                if (r <= 0)
                        return r == 0 ? 0 : client_fail(client, r);
                if (pkt.hdr.type != PROTO_TYPE_ENTRY || consume) {
                        r = client_handle_push(client, &pkt);
                        client_close_fds(pkt.fds, pkt.n_fds);
                        if (r < 0)
                                return client_fail(client, r);
                } else {
                        /* a stale copy of an entry already dequeued */
                        client_close_fds(pkt.fds, pkt.n_fds);
                }
        }
}

/* RECV, without the bookkeeping of PEEK (client_recv()) */
static int client_recv_entry(Client *client, uint64_t flags, uint64_t max_offset,
                             ClientRecv *recvp) {
        ClientPacket pkt;
        ProtoEntry e;
        bool from_socket;
        int r;

        r = client_usable(client);
        if (r < 0)
                return r;
        if (flags & ~(uint64_t)PROTO_RECV_FLAGS)
                return -EINVAL;
        if (flags & BUS1_RECV_FLAG_SEED)
                return client_recv_remote(client, flags, max_offset, recvp);

        /*
         * A plain dequeue that cannot meet ERANGE reads the entry in one
         * recvmsg(); otherwise it is peeked first (see client_next()).
         */
        r = client_next(client, !(flags & BUS1_RECV_FLAG_PEEK) && max_offset >= client->pool_size,
                        &e, &from_socket);
        if (r < 0)
                return r;
        /* nothing here: the broker may hold entries it could not push yet */
        if (r == 0)
                return client_recv_remote(client, flags, max_offset, recvp);

        if ((e.msg.flags & PROTO_MSG_FLAG_SYNC) ||
            ((flags & BUS1_RECV_FLAG_INSTALL_FDS) && e.msg.n_fds &&
             !(flags & BUS1_RECV_FLAG_PEEK)))
                return client_recv_remote(client, flags, max_offset, recvp);

        if (e.msg.type == BUS1_MSG_DATA) {
                uint64_t end;

                if (__builtin_add_overflow(e.msg.offset, client_slice_size(&e.msg), &end) ||
                    end > max_offset)
                        return -ERANGE;
        }

        e.msg.flags &= ~PROTO_MSG_FLAG_SYNC;
        if (!(flags & BUS1_RECV_FLAG_INSTALL_FDS))
                e.msg.n_fds = 0;
        *recvp = (ClientRecv){ .entry = e };
        if (flags & BUS1_RECV_FLAG_PEEK)
                return 0;

        /* dequeue locally; the broker learns it from the next ACK */
        if (from_socket) {
                r = client_read(client, &pkt, true, false);
                if (r <= 0)
                        return r == 0 ? client_fail(client, -EBADMSG) : client_fail(client, r);
                client_close_fds(pkt.fds, pkt.n_fds);
        } else {
                client_pop_front(client);
        }
        client->dequeued_upto = e.entry_id;
        if (e.msg.type == BUS1_MSG_DATA)
                (void)offset_set_add(&client->slices, e.msg.offset);
        /* tell the broker now, without a system call, if the ring has room */
        (void)client_ring_ack(client);
        return 0;
}

/**
 * client_recv() - RECV
 * @client:     client
 * @flags:      BUS1_RECV_FLAG_*
 * @max_offset: how much of the pool the caller has mapped
 * @recvp:      out: the entry; fds installed with INSTALL_FDS belong to the
 *              caller (free @recvp->fds)
 *
 * An entry leaves the queue only once this process holds all of it: with
 * INSTALL_FDS and no free descriptor for every fd, nothing is received.
 *
 * Return: 0, -EAGAIN nothing to receive, -ERANGE, -EINVAL, -EMFILE (the
 *         entry stays queued), what client_usable() returns, or a
 *         connection error.
 */
int client_recv(Client *client, uint64_t flags, uint64_t max_offset, ClientRecv *recvp) {
        int r;

        r = client_recv_entry(client, flags, max_offset, recvp);
        if (r == 0)
                client->peeked = (flags & BUS1_RECV_FLAG_PEEK) &&
                                 recvp->entry.msg.type == BUS1_MSG_DATA
                                         ? recvp->entry.msg.offset : BUS1_OFFSET_INVALID;
        return r;
}
