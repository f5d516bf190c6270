/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Peer: the native API's handle on one bus1 peer
 *
 * Each bus1_peer_*() call is a thin wrapper: it checks the arguments the
 * Client would otherwise turn into a broken connection (an fd that is not
 * open would fail sendmsg(2) after the request was half written), takes
 * client->lock for the one Client call, and maps the result.
 *
 * Invariants:
 *  - peer->client is set for the whole life of the peer;
 *  - every Bus1Message received on a peer holds a reference on it, so the
 *    pool a message points into stays mapped while the message lives;
 *  - the lock is never held while user code runs, so a handler may call
 *    back into the peer, and a message may be unreferenced anywhere;
 *  - a connection that ended (the broker exited or closed it) is
 *    -ECONNRESET for every later call, whatever the socket said (EPIPE
 *    included); -ESHUTDOWN only ever means that the program disconnected
 *    the peer itself. Only the first failure may report what broke it
 *    (-EPROTO for a broker that violated the protocol).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include "bus1/client.h"
#include "client/client.h"
#include "client/message.h"
#include "client/peer.h"
#include "util/macro.h"

/* the library's limit on iovecs, as the kernel's UIO_MAXIOV */
#define PEER_VECS_MAX 1024

/**
 * peer_result() - map a Client result to what the native API returns
 * @r:          0 or a negative errno from a client_*() call
 *
 * Return: @r, except that a connection torn down under the peer is always
 *         -ECONNRESET (never -EPIPE).
 */
int peer_result(int r) {
        return r == -EPIPE ? -ECONNRESET : r;
}

static void peer_lock(Bus1Peer *peer) {
        pthread_mutex_lock(&peer->client->lock);
}

static void peer_unlock(Bus1Peer *peer) {
        pthread_mutex_unlock(&peer->client->lock);
}

static int peer_alloc(Bus1Peer **peerp, Client *client) {
        Bus1Peer *peer;

        peer = calloc(1, sizeof(*peer));
        if (!peer)
                return -ENOMEM;
        peer->n_refs = 1;
        peer->client = client;
        *peerp = peer;
        return 0;
}

/**
 * bus1_peer_new() - connect a new peer
 * @peerp:      out: the peer, with one reference
 * @address:    broker socket path; NULL means $BUS1_ADDRESS, else
 *              $XDG_RUNTIME_DIR/bus1/socket
 *
 * Connects, says HELLO and maps the pool the broker hands out. The peer
 * costs two descriptors, the connection and the pool, both O_CLOEXEC.
 *
 * Return: 0, -EINVAL @peerp is NULL, -ENOENT if no address is known,
 *         -ENAMETOOLONG, -ENOMEM, or the errno of socket(2), connect(2) or
 *         mmap(2).
 */
_public_ int bus1_peer_new(Bus1Peer **peerp, const char *address) {
        Client *client;
        int r;

        if (!peerp)
                return -EINVAL;
        r = client_new(&client, address);
        if (r < 0)
                return r;
        r = peer_alloc(peerp, client);
        if (r < 0)
                client_free(client);
        return r;
}

/**
 * bus1_peer_new_from_fd() - adopt an inherited connection as the same peer
 * @peerp:      out: the peer
 * @fd:         a peer connection this process inherited (for example across
 *              fork and exec); owned by the peer on success
 *
 * Says HELLO again on @fd: the broker hands out the pool again and re-sends
 * every entry still queued. On success @fd is made O_CLOEXEC again, so that
 * it is not passed on to further programs by accident. On failure the
 * caller keeps @fd.
 *
 * Return: 0, -EINVAL @peerp is NULL, -ENOTSOCK if @fd is not a
 *         SOCK_SEQPACKET socket, -ENOMEM, or the errno of mmap(2) or of
 *         the connection (-ECONNRESET if the broker closed it, -EPROTO if
 *         it is not a bus1d connection that answers HELLO correctly).
 */
_public_ int bus1_peer_new_from_fd(Bus1Peer **peerp, int fd) {
        Client *client;
        int r, flags;

        if (!peerp)
                return -EINVAL;
        r = client_new_from_fd(&client, fd);
        if (r < 0)
                return r;
        r = peer_alloc(peerp, client);
        if (r < 0) {
                /* the caller keeps @fd on failure */
                client->fd = -1;
                client_free(client);
                return r;
        }
        flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC))
                (void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        return 0;
}

/**
 * bus1_peer_ref() - take a reference
 * @peer:       peer, or NULL
 *
 * Return: @peer.
 */
_public_ Bus1Peer *bus1_peer_ref(Bus1Peer *peer) {
        if (peer)
                __atomic_add_fetch(&peer->n_refs, 1, __ATOMIC_RELAXED);
        return peer;
}

/**
 * bus1_peer_unref() - drop a reference
 * @peer:       peer, or NULL
 *
 * With the last reference the event source (if any) is detached and the
 * connection closed, which disconnects the peer unless another process
 * still holds the connection (a child that inherited it). Every message
 * holds a reference, so the last one is dropped only after the last
 * message of the peer is gone.
 *
 * Return: NULL.
 */
_public_ Bus1Peer *bus1_peer_unref(Bus1Peer *peer) {
        if (!peer)
                return NULL;
        if (__atomic_sub_fetch(&peer->n_refs, 1, __ATOMIC_ACQ_REL) > 0)
                return NULL;

        bus1_peer_detach_event(peer);
        client_free(peer->client);
        free(peer);
        return NULL;
}

/**
 * bus1_peer_get_fd() - the pollable descriptor of a peer
 * @peer:       peer
 *
 * Readable when an entry is ready, writable while connected, only POLLHUP
 * after bus1_peer_disconnect(); the number stays the same for the life of
 * the peer. It belongs to the peer: do not close it.
 *
 * Return: the descriptor.
 */
_public_ int bus1_peer_get_fd(Bus1Peer *peer) {
        int fd;

        peer_lock(peer);
        fd = peer->client->fd;
        peer_unlock(peer);
        return fd;
}

/**
 * bus1_peer_get_pool() - the peer's pool, mapped read-only
 * @peer:       peer
 * @sizep:      out: the size of the mapping (may be NULL)
 *
 * The mapping covers the whole pool and stays valid while the peer lives
 * (messages pin it).
 *
 * Return: the base of the mapping.
 */
_public_ const void *bus1_peer_get_pool(Bus1Peer *peer, size_t *sizep) {
        const void *pool;

        peer_lock(peer);
        pool = peer->client->pool;
        if (sizep)
                *sizep = (size_t)peer->client->pool_size;
        peer_unlock(peer);
        return pool;
}

/**
 * bus1_peer_disconnect() - destroy all nodes and release everything
 * @peer:       peer
 *
 * After success the descriptor only polls POLLHUP, an attached event
 * source is disabled, and every call but this one's unref fails with
 * -ESHUTDOWN. Messages received earlier stay readable.
 *
 * Return: 0, -ESHUTDOWN if already disconnected, -ECONNRESET if the
 *         connection to the broker ended, -ENOMEM.
 */
_public_ int bus1_peer_disconnect(Bus1Peer *peer) {
        bool enabled;
        int r;

        /*
         * Take the descriptor out of epoll while it still names the
         * socket: the disconnect replaces it with a hung-up pipe, and a
         * registration of the old socket would outlive the source if
         * another process shares the socket.
         */
        enabled = peer_event_pause(peer);

        peer_lock(peer);
        r = peer_result(client_disconnect(peer->client));
        peer_unlock(peer);

        if (r < 0 && r != -ESHUTDOWN)
                peer_event_resume(peer, enabled);
        return r;
}

/**
 * bus1_peer_query() - read the peer's flags and limits
 * @peer:       peer
 * @peer_flagsp: out: BUS1_PEER_FLAG_* (may be NULL)
 * @limitsp:    out: limits (may be NULL)
 *
 * Return: 0, -ESHUTDOWN, -ECONNRESET, -ENOMEM.
 */
_public_ int bus1_peer_query(Bus1Peer *peer, uint64_t *peer_flagsp, Bus1PeerLimits *limitsp) {
        ProtoReplyPeerQuery q;
        int r;

        peer_lock(peer);
        r = peer_result(client_query(peer->client, 0, &q));
        peer_unlock(peer);
        if (r < 0)
                return r;

        if (peer_flagsp)
                *peer_flagsp = q.peer_flags;
        if (limitsp)
                *limitsp = (Bus1PeerLimits){
                        .max_slices = q.max_slices,
                        .max_handles = q.max_handles,
                        .max_inflight_bytes = q.max_inflight_bytes,
                        .max_inflight_fds = q.max_inflight_fds,
                };
        return 0;
}

/**
 * bus1_peer_reset() - set flags and limits, optionally flush
 * @peer:       peer
 * @flags:      BUS1_PEER_RESET_FLAG_FLUSH and/or _FLUSH_SEED
 * @peer_flags: BUS1_PEER_FLAG_WANT_SECCTX or 0; UINT64_MAX keeps the flags
 * @limits:     new limits (UINT32_MAX fields keep theirs), or NULL to keep
 *              all of them
 *
 * A flush drops every queued entry and every slice: slices of messages
 * still referenced become invalid (their later release is ignored).
 *
 * Return: 0, -EINVAL (unknown flags, a limit above INT_MAX), -ESHUTDOWN, -ECONNRESET,
 *         -ENOMEM.
 */
_public_ int bus1_peer_reset(Bus1Peer *peer, uint64_t flags, uint64_t peer_flags,
                             const Bus1PeerLimits *limits) {
        ProtoPeerReset reset = {
                .flags = flags,
                .peer_flags = peer_flags,
                .max_slices = limits ? limits->max_slices : UINT32_MAX,
                .max_handles = limits ? limits->max_handles : UINT32_MAX,
                .max_inflight_bytes = limits ? limits->max_inflight_bytes : UINT32_MAX,
                .max_inflight_fds = limits ? limits->max_inflight_fds : UINT32_MAX,
        };
        int r;

        peer_lock(peer);
        r = peer_result(client_reset(peer->client, &reset));
        peer_unlock(peer);
        return r;
}

/* what the broker would refuse anyway, but only after a broken stream */
static int peer_check_send(uint64_t flags, const uint64_t *destinations, size_t n_destinations,
                           const struct iovec *vecs, size_t n_vecs, const uint64_t *handles,
                           size_t n_handles, const int *fds, size_t n_fds) {
        if (flags & ~(uint64_t)(BUS1_SEND_FLAG_CONTINUE | BUS1_SEND_FLAG_SEED))
                return -EINVAL;
        if ((n_destinations && !destinations) || (n_vecs && !vecs) ||
            (n_handles && !handles) || (n_fds && !fds))
                return -EINVAL;
        if (n_destinations > PROTO_DESTINATIONS_MAX)
                return -EINVAL;
        if (n_vecs > PEER_VECS_MAX || n_handles > PROTO_HANDLES_MAX || n_fds > BUS1_FD_MAX)
                return -EMSGSIZE;
        for (size_t i = 0; i < n_vecs; ++i)
                if (!vecs[i].iov_base && vecs[i].iov_len)
                        return -EINVAL;
        /* sendmsg(2) would fail after the request started: check first */
        for (size_t i = 0; i < n_fds; ++i)
                if (fds[i] < 0 || fcntl(fds[i], F_GETFD) < 0)
                        return -EBADF;
        return 0;
}

/**
 * bus1_peer_send() - send one message to any number of nodes
 * @peer:               sender
 * @flags:              BUS1_SEND_FLAG_CONTINUE, BUS1_SEND_FLAG_SEED
 * @destinations:       handle IDs of the destination nodes
 * @n_destinations:     their number (0 is a valid no-op)
 * @errors:             NULL, or n_destinations slots for per-destination
 *                      errors (0 or a positive errno)
 * @vecs:               payload
 * @n_vecs:             number of iovecs (at most 1024)
 * @handles:            handle IDs to pass along (new IDs create nodes)
 * @n_handles:          their number
 * @fds:                fds to pass along; they travel with SCM_RIGHTS,
 *                      which duplicates them, so the caller keeps its own
 * @n_fds:              their number (at most BUS1_FD_MAX)
 *
 * Returns once the broker applied the send. With BUS1_SEND_FLAG_SEED (and
 * no destinations) the message replaces the peer's seed instead.
 *
 * Return: 0, -EINVAL (bad flags, a NULL array with a count, too many
 *         destinations, SEED with destinations), -ENXIO, -ENOTUNIQ,
 *         -EMSGSIZE, -EBADF (an fd that is not open), -EOPNOTSUPP,
 *         -EHOSTUNREACH, -ESHUTDOWN, -ECONNRESET, -EDQUOT, -EXFULL, -ENOMEM.
 */
_public_ int bus1_peer_send(Bus1Peer *peer, uint64_t flags,
                            const uint64_t *destinations, size_t n_destinations,
                            uint64_t *errors,
                            const struct iovec *vecs, size_t n_vecs,
                            const uint64_t *handles, size_t n_handles,
                            const int *fds, size_t n_fds) {
        ClientSend s = {
                .flags = flags,
                .destinations = destinations,
                .n_destinations = n_destinations,
                .errors = n_destinations ? errors : NULL,
                .vecs = vecs,
                .n_vecs = n_vecs,
                .handles = handles,
                .n_handles = n_handles,
                .fds = fds,
                .n_fds = n_fds,
        };
        int r;

        r = peer_check_send(flags, destinations, n_destinations, vecs, n_vecs, handles,
                            n_handles, fds, n_fds);
        if (r < 0)
                return r;

        peer_lock(peer);
        r = peer_result(client_send(peer->client, &s));
        peer_unlock(peer);
        return r;
}

/**
 * bus1_peer_recv() - receive the next message or notification
 * @peer:       peer
 * @flags:      0, BUS1_RECV_FLAG_PEEK and/or BUS1_RECV_FLAG_SEED
 *              (BUS1_RECV_FLAG_INSTALL_FDS is implied and accepted)
 * @messagep:   out: the message, with one reference
 *
 * Receives with BUS1_RECV_FLAG_INSTALL_FDS and the whole pool mapped, so
 * every fd of a dequeued message is installed and owned by the message.
 * A dequeued DATA message (the seed included) owns its slice until the
 * last reference goes; a peeked one points into a slice the peer does not
 * own yet, which stays valid only while the entry stays queued, and has
 * no fds installed.
 *
 * Return: 0, -EINVAL unknown flags or @messagep NULL, -EAGAIN if nothing is
 *         queued (or no seed is set with BUS1_RECV_FLAG_SEED), -ESHUTDOWN, -ECONNRESET,
 *         -ENOMEM, -EPROTO the broker broke the protocol.
 */
_public_ int bus1_peer_recv(Bus1Peer *peer, uint64_t flags, Bus1Message **messagep) {
        Bus1Message *message;
        ClientRecv recv;
        int r;

        if (!messagep)
                return -EINVAL;
        if (flags & ~(uint64_t)(BUS1_RECV_FLAG_PEEK | BUS1_RECV_FLAG_SEED |
                                BUS1_RECV_FLAG_INSTALL_FDS))
                return -EINVAL;
        flags |= BUS1_RECV_FLAG_INSTALL_FDS;

        /* nothing may fail once an entry is dequeued: allocate first */
        r = message_new(&message);
        if (r < 0)
                return r;

        peer_lock(peer);
        r = peer_result(client_recv(peer->client, flags, peer->client->pool_size, &recv));
        peer_unlock(peer);
        if (r < 0) {
                message_free(message);
                return r;
        }

        r = message_fill(message, peer, flags, &recv);
        if (r < 0) {
                message_free(message);
                return r;
        }
        *messagep = message;
        return 0;
}

/**
 * bus1_peer_handle_release() - drop one reference of a handle
 * @peer:       peer
 * @id:         handle ID
 *
 * Return: 0, -ENXIO unknown handle, -EBUSY for the last reference of a live
 *         node's owner handle, -ESHUTDOWN, -ECONNRESET, -ENOMEM.
 */
_public_ int bus1_peer_handle_release(Bus1Peer *peer, uint64_t id) {
        int r;

        peer_lock(peer);
        r = peer_result(client_handle_release(peer->client, id));
        peer_unlock(peer);
        return r;
}

/**
 * bus1_peer_handle_transfer() - give another peer of this process a handle
 * @peer:       peer holding @src
 * @src:        the handle (a new ID creates a node)
 * @dst:        destination peer, or NULL (or @peer) for @peer itself
 * @dst_idp:    out: the ID the destination holds (BUS1_HANDLE_INVALID if
 *              the node was destroyed)
 *
 * The broker learns which peer @dst is from its connection, which goes
 * along as an fd: holding the connection is the proof of holding the
 * peer. The two peers are never locked at once, so transfers in both
 * directions from two threads cannot deadlock.
 *
 * Return: 0, -EINVAL @dst_idp is NULL or a bad ID, -ENXIO, -ESHUTDOWN, -ECONNRESET
 *         (either peer disconnected), -EDQUOT, -ENOMEM.
 */
_public_ int bus1_peer_handle_transfer(Bus1Peer *peer, uint64_t src, Bus1Peer *dst,
                                       uint64_t *dst_idp) {
        int dst_fd = -1, r;
        uint64_t id;

        if (!dst_idp)
                return -EINVAL;
        if (dst && dst != peer) {
                peer_lock(dst);
                if (dst->client->disconnected || dst->client->broken)
                        r = -ESHUTDOWN;
                else
                        r = 0;
                dst_fd = dst->client->fd;
                peer_unlock(dst);
                if (r < 0)
                        return r;
        }

        peer_lock(peer);
        r = peer_result(client_handle_transfer(peer->client, 0, src, NULL, dst_fd, &id));
        peer_unlock(peer);
        if (r < 0)
                return r;
        *dst_idp = id;
        return 0;
}

/**
 * bus1_peer_nodes_destroy() - destroy own nodes, all or nothing
 * @peer:       owner
 * @flags:      0 or BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES
 * @ids:        owner handle IDs (a new ID creates and destroys a node)
 * @n_ids:      their number
 *
 * Every holder of a handle to one of the nodes, @peer included, gets a
 * NODE_DESTROY.
 *
 * Return: 0, -ENXIO, -EREMOTE, -ESTALE, -ENOTUNIQ, -EINVAL (bad flags, a
 *         NULL array with a count, more than 8192 IDs), -ESHUTDOWN, -ECONNRESET,
 *         -ENOMEM.
 */
_public_ int bus1_peer_nodes_destroy(Bus1Peer *peer, uint64_t flags, const uint64_t *ids,
                                     size_t n_ids) {
        int r;

        if ((n_ids && !ids) || n_ids > PROTO_NODES_MAX)
                return -EINVAL;

        peer_lock(peer);
        r = peer_result(client_nodes_destroy(peer->client, flags, ids, n_ids));
        peer_unlock(peer);
        return r;
}
