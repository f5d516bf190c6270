/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/**
 * DOC: libbus1-client, the native API
 *
 * A Bus1Peer is one peer on a bus1d broker: it owns nodes, holds handles to
 * nodes (its own and other peers'), and receives messages and notifications
 * on one queue. Handles are 64-bit IDs local to the peer (see bus1(7)); a
 * new ID of the caller's choosing with the two low bits clear (0, 0x100,
 * ...) creates a node wherever a handle is named.
 *
 * Sending is bus1_peer_send(); receiving is bus1_peer_recv(), which returns
 * a Bus1Message that owns the received slice of the pool and any fds until
 * it is unreferenced. bus1_peer_get_fd() is pollable (readable when an entry
 * is ready), and bus1_peer_attach_event() dispatches incoming messages to a
 * handler from an sd-event loop.
 *
 * Functions returning int return 0 (or a documented non-negative value) on
 * success and a negative errno on failure; the errno values are the bus1
 * ones (docs/model.md §9 / bus1(7)), and -ECONNRESET when the connection to
 * the broker ended (-ESHUTDOWN only means the peer was disconnected; see
 * bus1_strerror()). Objects are reference counted; *_unref()
 * accepts NULL and returns NULL. A peer may be used from several threads;
 * its calls are serialised.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <bus1/uapi.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Bus1Peer Bus1Peer;
typedef struct Bus1Message Bus1Message;
typedef struct sd_event sd_event;

/**
 * struct Bus1PeerLimits - a peer's resource limits (PEER_QUERY/PEER_RESET)
 * @max_slices:         pool slices
 * @max_handles:        handle references
 * @max_inflight_bytes: bytes in the pool
 * @max_inflight_fds:   fds in flight
 *
 * In bus1_peer_reset(), a field of UINT32_MAX keeps the current value.
 */
typedef struct Bus1PeerLimits {
        uint32_t max_slices;
        uint32_t max_handles;
        uint32_t max_inflight_bytes;
        uint32_t max_inflight_fds;
} Bus1PeerLimits;

/**
 * bus1_peer_new() - connect a new peer
 * @peerp:      out: the peer, with one reference
 * @address:    broker socket path; NULL means $BUS1_ADDRESS, else
 *              $XDG_RUNTIME_DIR/bus1/socket
 *
 * Return: 0, -ENOENT if no address is known, or the errno of connecting.
 */
int bus1_peer_new(Bus1Peer **peerp, const char *address);

/**
 * bus1_peer_new_from_fd() - adopt an inherited connection as the same peer
 * @peerp:      out: the peer
 * @fd:         a peer connection this process inherited (for example across
 *              fork and exec); owned by the peer on success
 *
 * The broker hands out the pool again and re-sends every entry still
 * queued, so the adopting process continues where the parent left off.
 * The parent must not use the connection any more.
 *
 * Return: 0, -ENOTSOCK if @fd is not a peer connection, or a connection
 *         error.
 */
int bus1_peer_new_from_fd(Bus1Peer **peerp, int fd);

/** bus1_peer_ref() - take a reference; returns @peer */
Bus1Peer *bus1_peer_ref(Bus1Peer *peer);

/**
 * bus1_peer_unref() - drop a reference
 * @peer:       peer, or NULL
 *
 * With the last reference the connection is closed, which disconnects the
 * peer (its nodes are destroyed and its handles released).
 *
 * Return: NULL.
 */
Bus1Peer *bus1_peer_unref(Bus1Peer *peer);

/**
 * bus1_peer_get_fd() - the pollable descriptor of a peer
 * @peer:       peer
 *
 * Readable (POLLIN) when an entry is ready to be received (a receive may
 * still find nothing: spurious wake-ups happen, lost ones never), writable
 * while connected, only POLLHUP after bus1_peer_disconnect(). The
 * descriptor belongs to the peer; it is also what another peer of this
 * process passes to prove it holds this one (bus1_peer_handle_transfer()),
 * and what a child inherits to adopt it.
 *
 * Return: the descriptor.
 */
int bus1_peer_get_fd(Bus1Peer *peer);

/**
 * bus1_peer_get_pool() - the peer's pool, mapped read-only
 * @peer:       peer
 * @sizep:      out: the size of the mapping (may be NULL)
 *
 * Return: the base of the mapping; messages point into it.
 */
const void *bus1_peer_get_pool(Bus1Peer *peer, size_t *sizep);

/**
 * bus1_peer_disconnect() - destroy all nodes and release everything
 * @peer:       peer
 *
 * Return: 0, -ESHUTDOWN if already disconnected, -ECONNRESET if the
 *         connection to the broker ended.
 */
int bus1_peer_disconnect(Bus1Peer *peer);

/**
 * bus1_peer_query() - read the peer's flags and limits
 * @peer:       peer
 * @peer_flagsp: out: BUS1_PEER_FLAG_* (may be NULL)
 * @limitsp:    out: limits (may be NULL)
 *
 * Return: 0, -ESHUTDOWN, -ECONNRESET.
 */
int bus1_peer_query(Bus1Peer *peer, uint64_t *peer_flagsp, Bus1PeerLimits *limitsp);

/**
 * bus1_peer_reset() - set flags and limits, optionally flush
 * @peer:       peer
 * @flags:      BUS1_PEER_RESET_FLAG_FLUSH and/or _FLUSH_SEED
 * @peer_flags: BUS1_PEER_FLAG_WANT_SECCTX or 0; UINT64_MAX keeps the flags
 * @limits:     new limits (UINT32_MAX fields keep theirs), or NULL
 *
 * Return: 0, -EINVAL (unknown flags, a limit above INT_MAX), -ESHUTDOWN, -ECONNRESET.
 */
int bus1_peer_reset(Bus1Peer *peer, uint64_t flags, uint64_t peer_flags,
                    const Bus1PeerLimits *limits);

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
 * @handles:            handle IDs to pass along
 * @n_handles:          their number
 * @fds:                fds to pass along (duplicated; the caller keeps its own)
 * @n_fds:              their number (at most BUS1_FD_MAX)
 *
 * All destinations get the message or none does, unless
 * BUS1_SEND_FLAG_CONTINUE keeps receiver-side failures per destination.
 * The call returns once the broker applied the send.
 *
 * Return: 0, or -EINVAL, -ENXIO, -ENOTUNIQ, -EMSGSIZE, -EBADF, -EOPNOTSUPP,
 *         -EHOSTUNREACH, -ESHUTDOWN, -ECONNRESET, -EDQUOT, -EXFULL, -ENOMEM.
 */
int bus1_peer_send(Bus1Peer *peer, uint64_t flags,
                   const uint64_t *destinations, size_t n_destinations, uint64_t *errors,
                   const struct iovec *vecs, size_t n_vecs,
                   const uint64_t *handles, size_t n_handles,
                   const int *fds, size_t n_fds);

/**
 * bus1_peer_recv() - receive the next message or notification
 * @peer:       peer
 * @flags:      0, BUS1_RECV_FLAG_PEEK and/or BUS1_RECV_FLAG_SEED
 * @messagep:   out: the message, with one reference
 *
 * Without PEEK the entry is dequeued: the handles it carries become the
 * peer's, its fds are installed (O_CLOEXEC) and owned by the message, and
 * its slice stays valid until the message is unreferenced. With PEEK the
 * entry stays queued, no fd is installed, and the message points into a
 * slice that is valid only while the entry stays queued.
 *
 * Return: 0, -EINVAL unknown flags, -EAGAIN if nothing is queued (or no
 *         seed is set with BUS1_RECV_FLAG_SEED), -ESHUTDOWN, -ECONNRESET, -ENOMEM.
 */
int bus1_peer_recv(Bus1Peer *peer, uint64_t flags, Bus1Message **messagep);

/**
 * bus1_peer_handle_release() - drop one reference of a handle
 * @peer:       peer
 * @id:         handle ID
 *
 * Return: 0, -ENXIO unknown handle, -EBUSY for the last reference of a live
 *         node's owner handle, -ESHUTDOWN, -ECONNRESET.
 */
int bus1_peer_handle_release(Bus1Peer *peer, uint64_t id);

/**
 * bus1_peer_handle_transfer() - give another peer of this process a handle
 * @peer:       peer holding @src
 * @src:        the handle (a new ID creates a node)
 * @dst:        destination peer, or NULL for @peer itself
 * @dst_idp:    out: the ID the destination holds (BUS1_HANDLE_INVALID if
 *              the node was destroyed)
 *
 * Return: 0, -ENXIO, -ESHUTDOWN, -ECONNRESET, -EDQUOT, -ENOMEM, -EINVAL (@dst_idp NULL),
 *         -EOPNOTSUPP (@dst is connected to another broker).
 */
int bus1_peer_handle_transfer(Bus1Peer *peer, uint64_t src, Bus1Peer *dst,
                              uint64_t *dst_idp);

/**
 * bus1_peer_nodes_destroy() - destroy own nodes, all or nothing
 * @peer:       owner
 * @flags:      0 or BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES
 * @ids:        owner handle IDs
 * @n_ids:      their number
 *
 * Return: 0, -ENXIO, -EREMOTE, -ESTALE, -ENOTUNIQ, -EINVAL, -ESHUTDOWN, -ECONNRESET,
 *         -EDQUOT (a new ID needs a handle the quota does not allow).
 */
int bus1_peer_nodes_destroy(Bus1Peer *peer, uint64_t flags, const uint64_t *ids,
                            size_t n_ids);

/**
 * typedef Bus1MessageHandler - called for each entry an event loop receives
 * @peer:       the peer
 * @message:    the entry; the handler may keep it with bus1_message_ref()
 * @userdata:   as given to bus1_peer_set_handler()
 *
 * Return: 0, or a negative errno, which ends the event loop with it.
 */
typedef int (*Bus1MessageHandler)(Bus1Peer *peer, Bus1Message *message, void *userdata);

/**
 * typedef Bus1DisconnectHandler - called when the connection to the broker ends
 * @peer:       the peer
 * @error:      -ECONNRESET (the broker exited or closed the connection), or
 *              -EPROTO (it broke the protocol)
 * @userdata:   as given to bus1_peer_set_disconnect_handler()
 *
 * Return: 0 to keep the event loop running, or a negative errno to end it
 *         with.
 */
typedef int (*Bus1DisconnectHandler)(Bus1Peer *peer, int error, void *userdata);

/**
 * bus1_peer_set_disconnect_handler() - hear of the broker going away
 * @peer:       peer
 * @handler:    handler, or NULL: then an attached event loop exits with the
 *              error as soon as the connection to the broker ends
 * @userdata:   passed to @handler
 */
void bus1_peer_set_disconnect_handler(Bus1Peer *peer, Bus1DisconnectHandler handler,
                                      void *userdata);

/**
 * bus1_strerror() - what an error of this library means
 * @error:      an errno, negative or positive
 *
 * Return: a static string: bus1's meaning of the errors the library gives
 *         a meaning of its own (ECONNRESET: the connection to the broker
 *         ended; ESHUTDOWN: the peer was disconnected; EBADFD: another
 *         process took the peer over; ...), else strerror()'s text.
 */
const char *bus1_strerror(int error);

/**
 * bus1_peer_set_handler() - set the handler for attached event loops
 * @peer:       peer
 * @handler:    handler, or NULL
 * @userdata:   passed to @handler
 */
void bus1_peer_set_handler(Bus1Peer *peer, Bus1MessageHandler handler, void *userdata);

/**
 * bus1_peer_attach_event() - dispatch incoming entries from an sd-event loop
 * @peer:       peer
 * @event:      event loop, or NULL for the default one of the thread
 * @priority:   priority of the io source
 *
 * Whenever the peer's descriptor is readable, the loop receives what is
 * queued and calls the handler once per entry, for at most 64 entries per
 * dispatch; the rest comes with the next one, in order. If the peer is
 * disconnected or the broker goes away, the source is disabled.
 *
 * Return: 0, -EBUSY if already attached, or the errno of sd-event.
 */
int bus1_peer_attach_event(Bus1Peer *peer, sd_event *event, int64_t priority);

/**
 * bus1_peer_detach_event() - stop dispatching from the event loop
 * @peer:       peer
 */
void bus1_peer_detach_event(Bus1Peer *peer);

/** bus1_message_ref() - take a reference; returns @message */
Bus1Message *bus1_message_ref(Bus1Message *message);

/**
 * bus1_message_unref() - drop a reference
 * @message:    message, or NULL
 *
 * With the last reference the slice is released and every fd that was not
 * stolen is closed.
 *
 * Return: NULL.
 */
Bus1Message *bus1_message_unref(Bus1Message *message);

/** bus1_message_get_type() - BUS1_MSG_DATA, _NODE_DESTROY or _NODE_RELEASE */
unsigned int bus1_message_get_type(Bus1Message *message);

/** bus1_message_get_flags() - BUS1_MSG_FLAG_CONTINUE, _HAS_SECCTX */
uint64_t bus1_message_get_flags(Bus1Message *message);

/** bus1_message_get_destination() - the peer's own handle ID it was sent to */
uint64_t bus1_message_get_destination(Bus1Message *message);

/**
 * bus1_message_get_creds() - the sender's credentials
 * @message:    message
 * @uidp:       out (may be NULL); (uid_t)-1 for notifications
 * @gidp:       out (may be NULL); (gid_t)-1 for notifications
 * @pidp:       out (may be NULL); 0 for notifications
 * @tidp:       out (may be NULL); 0 for notifications
 */
void bus1_message_get_creds(Bus1Message *message, uid_t *uidp, gid_t *gidp, pid_t *pidp,
                            pid_t *tidp);

/**
 * bus1_message_get_data() - the payload
 * @message:    message
 * @sizep:      out: its size
 *
 * Return: a pointer into the peer's read-only pool (NULL for notifications).
 */
const void *bus1_message_get_data(Bus1Message *message, size_t *sizep);

/** bus1_message_get_n_handles() - number of handles the message carries */
size_t bus1_message_get_n_handles(Bus1Message *message);

/**
 * bus1_message_get_handle() - a handle the message carries
 * @message:    message
 * @i:          index below bus1_message_get_n_handles()
 *
 * Return: the peer's ID of the handle, or BUS1_HANDLE_INVALID if its node
 *         was destroyed before the message was sent.
 */
uint64_t bus1_message_get_handle(Bus1Message *message, size_t i);

/** bus1_message_get_n_fds() - number of fds the message carries */
size_t bus1_message_get_n_fds(Bus1Message *message);

/**
 * bus1_message_get_fd() - an fd the message carries, still owned by it
 * @message:    message
 * @i:          index below bus1_message_get_n_fds()
 *
 * Return: the fd, or -1 if it was stolen or not installed (PEEK).
 */
int bus1_message_get_fd(Bus1Message *message, size_t i);

/**
 * bus1_message_steal_fd() - take over an fd the message carries
 * @message:    message
 * @i:          index below bus1_message_get_n_fds()
 *
 * Return: the fd, now owned by the caller, or -1 if already stolen or not
 *         installed (PEEK).
 */
int bus1_message_steal_fd(Bus1Message *message, size_t i);

/**
 * bus1_message_get_secctx() - the sender's security context
 * @message:    message
 * @sizep:      out: its size
 *
 * Only with BUS1_PEER_FLAG_WANT_SECCTX and an LSM that labels the sender.
 *
 * Return: a pointer into the pool, or NULL.
 */
const void *bus1_message_get_secctx(Bus1Message *message, size_t *sizep);

#ifdef __cplusplus
}
#endif
