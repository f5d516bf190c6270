/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Client: the transport of one peer connection
 *
 * Connecting (HELLO) and adopting a connection, in a forked child too;
 * writing records, with the fds beyond one packet's on FDS carriers ahead
 * (scm_send_carried()); reading records into the client's receive buffer,
 * collecting PUSH_FDS carriers; one request and its reply at a time
 * (client_call()), handing every pushed record met on the way to the entry
 * buffer (entries.c); the release ring; and every request but RECV, which
 * entries.c implements on top of this.
 *
 * Invariants:
 *  - everything here runs under client->lock; client->rx holds the last
 *    record read, and a reply left there by client_call() is decoded
 *    before the lock is dropped (no other call can overwrite it);
 *  - before each request, the dequeues the entry buffer made locally are
 *    reported (entries_flush_ack()), and after its reply the call waits
 *    for the WAKE that keeps the descriptor readable while entries are
 *    buffered (entries_await_wake()); a RECV does so itself, once it knows
 *    what it dequeued;
 *  - a failed stream (a malformed record, a lost connection) leaves the
 *    client broken, and every later call fails (client_fail());
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
#include "client/entries.h"
#include "util/macro.h"
#include "util/scm.h"
#include "util/unix-address.h"

_Static_assert(PROTO_PACKET_FDS_MAX == SCM_FDS_MAX, "one packet carries SCM_FDS_MAX fds");
_Static_assert(PROTO_SIZE_FDS <= SCM_CARRIER_SIZE_MAX, "an FDS carrier fits scm_send_carried()");

/**
 * client_close_fds() - close the fds of a packet
 * @fds:        fds
 * @n_fds:      their number
 */
void client_close_fds(int *fds, size_t n_fds) {
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

        entries_drop(client);
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
        /* the connection's own receive buffer, used under client->lock */
        client->rx = malloc(CLIENT_RX_SIZE);
        if (!client->rx) {
                free(client);
                return -ENOMEM;
        }
        pthread_once(&client_once, client_watch_forks);
        pthread_mutex_init(&client->lock, NULL);
        client->generation = __atomic_load_n(&client_generation, __ATOMIC_RELAXED);
        client->peeked = BUS1_OFFSET_INVALID;
        client->fd = -1;
        client->pool_fd = -1;
        *clientp = client;
        return 0;
}

/* an FDS carrier (ScmCarrierEncode) */
static int client_carrier(void *buf, size_t size, size_t n_fds) {
        ProtoFds f = { .type = PROTO_TYPE_FDS, .n_fds = (uint32_t)n_fds };

        return proto_encode_fds(buf, size, &f);
}

/**
 * client_write() - send a record with any number of fds
 * @client:     client
 * @data:       the record
 * @len:        its length
 * @fds:        fds to attach; those beyond one packet's go ahead on FDS
 *              carriers
 * @n_fds:      their number
 *
 * Waits while the socket is full, even if the program made it
 * non-blocking.
 *
 * Return: 0, or the negative errno of sendmsg(2).
 */
int client_write(Client *client, const void *data, size_t len, const int *fds, size_t n_fds) {
        return scm_send_carried(client->fd, data, len, fds, n_fds, client_carrier, 0, NULL);
}

/**
 * client_read() - read one packet into the client's receive buffer
 * @client:     client
 * @pkt:        out: the record (@pkt->data points into client->rx) and its
 *              fds, which the caller closes or hands on
 * @nonblock:   return 0 instead of waiting for a packet
 * @peek:       leave the packet in the socket (only for records without fds)
 *
 * fds the kernel could not install (no free descriptor: MSG_CTRUNC) set
 * @pkt->fds_lost; the record itself is intact.
 *
 * Return: 1 read, 0 nothing there (only with @nonblock), negative errno
 *         (-ECONNRESET for end of stream, -EBADMSG for a truncated or
 *         malformed record, whose fds are closed).
 */
int client_read(Client *client, ClientPacket *pkt, bool nonblock, bool peek) {
        int flags = (peek ? MSG_PEEK : 0) | (nonblock ? MSG_DONTWAIT : 0), msg_flags = 0;
        ssize_t l;

        for (;;) {
                l = scm_recv(client->fd, client->rx, CLIENT_RX_SIZE, flags, pkt->fds,
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
        if ((msg_flags & MSG_TRUNC) || proto_decode_header(&pkt->hdr, client->rx, (size_t)l) < 0) {
                client_close_fds(pkt->fds, pkt->n_fds);
                pkt->n_fds = 0;
                return -EBADMSG;
        }
        pkt->data = client->rx;
        pkt->len = (size_t)l;
        return 1;
}

/**
 * client_fail() - the stream cannot be trusted any more
 * @client:     client
 * @r:          the error that broke it
 *
 * Marks the client broken (every later call fails), except for -ENOMEM,
 * after which the stream is still intact.
 *
 * Return: @r, with -EBADMSG (a malformed record) turned into -EPROTO.
 */
int client_fail(Client *client, int r) {
        if (r == -ENOMEM)
                return r;
        /* the stream cannot be trusted any more */
        client->broken = true;
        return r == -EBADMSG ? -EPROTO : r;
}

/**
 * client_ring_push() - append a value to the release ring
 * @client:     client
 * @value:      an ACK or a slice release (docs/protocol.md section 8a)
 *
 * Return: false if there is no ring or it is full; the caller then tells
 *         the broker with a record instead.
 */
bool client_ring_push(Client *client, uint64_t value) {
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

/**
 * client_call() - one request, one reply
 * @client:     client
 * @req:        the request record
 * @len:        its length
 * @fds:        fds to send along
 * @n_fds:      their number
 * @cookie:     the request's cookie, which the reply must carry
 * @pkt:        out: the reply, left in client->rx, with its fds (carriers
 *              included) in @pkt
 *
 * Records the broker pushes meanwhile go to the entry buffer. Only a RECV
 * (or its SLICE_FDS) copes with fds the process could not take.
 *
 * Return: 0, -EMFILE (the reply's fds were lost; not for a RECV), -ENOMEM
 *         (no room to buffer a pushed entry), or a connection error (the
 *         client is broken then).
 */
int client_call(Client *client, const void *req, size_t len, const int *fds, size_t n_fds,
                uint64_t cookie, ClientPacket *pkt) {
        int carried[PROTO_RECORD_FDS_MAX];
        size_t n_carried = 0;
        ProtoHeader req_hdr;
        bool is_recv, lost = false;
        int r;

        if (client->broken)
                return -ECONNRESET;
        /* a RECV (and its SLICE_FDS) may dequeue the front: entries.c waits */
        is_recv = proto_decode_header(&req_hdr, req, len) == 0 &&
                  (req_hdr.type == PROTO_TYPE_RECV || req_hdr.type == PROTO_TYPE_SLICE_FDS);

        r = entries_flush_ack(client);
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
                        r = proto_decode_fds(&f, pkt->data, pkt->len,
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
                                entries_await_wake(client);
                        return 0;
                }

                r = entries_handle_push(client, pkt);
                client_close_fds(pkt->fds, pkt->n_fds);
                if (r < 0)
                        goto fail;
        }

fail:
        client_close_fds(carried, n_carried);
        return client_fail(client, r);
}

/**
 * client_call_simple() - a request whose reply has no body
 * @client:     client
 * @req:        the request record
 * @len:        its length
 * @fds:        fds to send along
 * @n_fds:      their number
 * @cookie:     the request's cookie
 *
 * Return: the broker's answer (0 or a negative errno), or a connection
 *         error.
 */
int client_call_simple(Client *client, const void *req, size_t len, const int *fds,
                       size_t n_fds, uint64_t cookie) {
        ClientPacket pkt;
        ProtoReply reply;
        int r;

        r = client_call(client, req, len, fds, n_fds, cookie, &pkt);
        if (r < 0)
                return r;
        r = proto_decode_reply(&reply, pkt.data, pkt.len, pkt.n_fds);
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
        entries_drop(client);

        r = proto_decode_reply_hello(&reply, pkt.data, pkt.len, pkt.n_fds);
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
        entries_free(client);
        free(client->rx);
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
        entries_drop(client);
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
        r = proto_decode_reply_peer_query(replyp, pkt.data, pkt.len, pkt.n_fds);
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
        r = proto_decode_reply_handle_transfer(&reply, pkt.data, pkt.len, pkt.n_fds);
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
        if (offset_set_remove(&client->slices, offset) && entries_ring_ack(client) &&
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

/*
 * Check the payload's size and apply what the caller's call could not
 * give: an unreadable array makes the broker fail the send with that error
 * where the kernel would have met it, and the payload is not needed for
 * that. Return: 0, or -EMSGSIZE.
 */
static int client_send_args(const ClientSend *s, ProtoSendArgs *args) {
        uint64_t n_bytes = 0;

        if (s->n_fds > BUS1_FD_MAX)
                return -EMSGSIZE;
        for (size_t i = 0; i < s->n_vecs; ++i)
                if (__builtin_add_overflow(n_bytes, s->vecs[i].iov_len, &n_bytes))
                        return -EMSGSIZE;
        if (n_bytes > PROTO_BYTES_MAX)
                return -EMSGSIZE;
        args->n_bytes = n_bytes;

        if (s->fds_fault || s->destinations_fault) {
                args->flags |= s->fds_fault == -EFAULT ? PROTO_SEND_FLAG_FDS_EFAULT
                               : s->fds_fault ? PROTO_SEND_FLAG_FDS_EBADF : 0;
                if (s->destinations_fault) {
                        args->flags |= PROTO_SEND_FLAG_DESTINATIONS_EFAULT;
                        args->destinations = NULL;
                }
                args->flags &= ~PROTO_SEND_FLAG_ERRORS;
                args->vecs = NULL;
                args->n_vecs = 0;
                args->n_bytes = 0;
        }
        return 0;
}

/* the reply to a SEND: its error, or the per-destination errors in @s->errors */
static int client_send_reply(Client *client, const ClientSend *s, ClientPacket *pkt) {
        ProtoReplySend reply;
        int r;

        r = proto_decode_reply_send(&reply, pkt->data, pkt->len, pkt->n_fds);
        client_close_fds(pkt->fds, pkt->n_fds);
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
        ClientPacket pkt;
        size_t size, n_ids, n_fds = s->n_fds;
        uint8_t *buf = stack;
        int r;

        r = client_usable(client);
        if (r < 0)
                return r;
        r = client_send_args(s, &args);
        if (r < 0)
                return r;

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
        return client_send_reply(client, s, &pkt);
}
