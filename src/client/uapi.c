/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UAPI: the 2016 kernel interface over bus1d
 *
 * Programs written against <linux/bus1.h> open /dev/bus1, issue ioctls and
 * close the descriptor. Here they call bus1_uapi_open(), bus1_uapi_ioctl()
 * and bus1_uapi_close() instead, with the same structs and the same
 * semantics. The descriptor bus1_uapi_open() returns is the connection to
 * the broker itself, so it polls like the kernel's: readable when an entry
 * is ready, writable while connected, and only POLLHUP once disconnected.
 *
 * The registry maps descriptor numbers to clients. It is an array indexed
 * by the descriptor (O(1)), grown on demand, under one mutex; each client
 * has its own lock for its calls.
 *
 * Pointers in the command structs are the caller's; a NULL pointer with a
 * non-zero count is EFAULT, but a wild pointer faults like any library
 * call would (the library cannot check readability without a syscall per
 * array).
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include "bus1/uapi.h"
#include "client/client.h"
#include "util/macro.h"

static pthread_mutex_t uapi_lock = PTHREAD_MUTEX_INITIALIZER;
static Client **uapi_clients;
static size_t uapi_n_clients;

/* the client behind @fd, locked; NULL if @fd is not ours */
static Client *uapi_get(int fd) {
        Client *client = NULL;

        pthread_mutex_lock(&uapi_lock);
        if (fd >= 0 && (size_t)fd < uapi_n_clients)
                client = uapi_clients[fd];
        if (client)
                pthread_mutex_lock(&client->lock);
        pthread_mutex_unlock(&uapi_lock);
        return client;
}

static void uapi_put(Client *client) {
        pthread_mutex_unlock(&client->lock);
}

static int uapi_register(Client *client) {
        size_t fd = (size_t)client->fd;
        int r = 0;

        pthread_mutex_lock(&uapi_lock);
        if (fd >= uapi_n_clients) {
                size_t n = MAX(fd + 1, uapi_n_clients * 2);
                Client **c = realloc(uapi_clients, n * sizeof(*c));

                if (!c) {
                        r = -ENOMEM;
                        goto out;
                }
                memset(c + uapi_n_clients, 0, (n - uapi_n_clients) * sizeof(*c));
                uapi_clients = c;
                uapi_n_clients = n;
        }
        uapi_clients[fd] = client;
out:
        pthread_mutex_unlock(&uapi_lock);
        return r;
}

/**
 * bus1_uapi_open() - create a new peer
 * @address:    socket path of the broker, or NULL for $BUS1_ADDRESS, else
 *              $XDG_RUNTIME_DIR/bus1/socket
 *
 * The kernel's open("/dev/bus1"). The peer costs two descriptors: the one
 * returned and the pool's (bus1_uapi_pool_fd()).
 *
 * Return: a pollable descriptor (>= 0) naming the peer, or a negative
 *         errno (-ENOENT no address, the errno of connect(2), ...).
 */
_public_ int bus1_uapi_open(const char *address) {
        Client *client;
        int r;

        r = client_new(&client, address);
        if (r < 0)
                return r;
        r = uapi_register(client);
        if (r < 0) {
                client_free(client);
                return r;
        }
        return client->fd;
}

/**
 * bus1_uapi_pool_fd() - the descriptor to map a peer's pool from
 * @peer:       descriptor from bus1_uapi_open()
 *
 * Map it with mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0); writable
 * mappings are refused. The descriptor belongs to the library: never close
 * it; bus1_uapi_close() does.
 *
 * Return: the descriptor, or -EBADF if @peer is not a peer.
 */
_public_ int bus1_uapi_pool_fd(int peer) {
        Client *client = uapi_get(peer);
        int fd;

        if (!client)
                return -EBADF;
        fd = client->pool_fd;
        uapi_put(client);
        return fd;
}

/**
 * bus1_uapi_close() - release a peer and everything it used
 * @peer:       descriptor from bus1_uapi_open()
 *
 * The kernel's close(2): the peer disconnects, its descriptors are closed
 * and its pool is unmapped (mappings the caller made of the pool fd stay
 * valid until the caller unmaps them).
 *
 * Return: 0, or -EBADF if @peer is not a peer.
 */
_public_ int bus1_uapi_close(int peer) {
        Client *client;

        pthread_mutex_lock(&uapi_lock);
        client = (peer >= 0 && (size_t)peer < uapi_n_clients) ? uapi_clients[peer] : NULL;
        if (client)
                uapi_clients[peer] = NULL;
        pthread_mutex_unlock(&uapi_lock);
        if (!client)
                return -EBADF;

        /* wait for a call another thread may be making on it */
        pthread_mutex_lock(&client->lock);
        pthread_mutex_unlock(&client->lock);
        client_free(client);
        return 0;
}

static bool uapi_bad_ptr(uint64_t ptr, uint64_t n) {
        return n && !ptr;
}

static int uapi_peer_reset(Client *client, unsigned long cmd, struct bus1_cmd_peer_reset *arg) {
        ProtoReplyPeerQuery q;
        int r;

        if (cmd == BUS1_CMD_PEER_QUERY) {
                r = client_query(client, arg->flags, &q);
                if (r < 0)
                        return r;
                arg->peer_flags = q.peer_flags;
                arg->max_slices = q.max_slices;
                arg->max_handles = q.max_handles;
                arg->max_inflight_bytes = q.max_inflight_bytes;
                arg->max_inflight_fds = q.max_inflight_fds;
                return 0;
        }

        return client_reset(client, &(ProtoPeerReset){
                .flags = arg->flags,
                .peer_flags = arg->peer_flags,
                .max_slices = arg->max_slices,
                .max_handles = arg->max_handles,
                .max_inflight_bytes = arg->max_inflight_bytes,
                .max_inflight_fds = arg->max_inflight_fds,
        });
}

static int uapi_handle_transfer(Client *client, struct bus1_cmd_handle_transfer *arg) {
        Client *dst = NULL;
        int dst_fd = -1, r;
        uint64_t id;

        if (arg->dst_fd != (__u64)-1) {
                if (arg->dst_fd > INT32_MAX)
                        return -EBADF;
                dst_fd = (int)arg->dst_fd;
                if (dst_fd == client->fd) {
                        dst = client;
                } else {
                        /* another peer of this process: check it is still there */
                        dst = uapi_get(dst_fd);
                        if (!dst) {
                                /*
                                 * Not one of ours: maybe a connection another
                                 * process passed us. The broker decides
                                 * (EOPNOTSUPP if it is no peer).
                                 */
                                if (fcntl(dst_fd, F_GETFD) < 0)
                                        return -EBADF;
                                goto transfer;
                        }
                        if (dst->disconnected || dst->broken) {
                                uapi_put(dst);
                                return -ESHUTDOWN;
                        }
                        uapi_put(dst);
                        dst = NULL;
                }
        }

transfer:
        r = client_handle_transfer(client, arg->flags, arg->src_handle, dst,
                                   dst ? -1 : dst_fd, &id);
        if (r >= 0)
                arg->dst_handle = id;
        return r;
}

static int uapi_send(Client *client, struct bus1_cmd_send *arg) {
        const struct iovec *uvecs = (const struct iovec *)(uintptr_t)arg->ptr_vecs;
        const int *fds = (const int *)(uintptr_t)arg->ptr_fds;
        ClientSend s;

        if (uapi_bad_ptr(arg->ptr_destinations, arg->n_destinations) ||
            uapi_bad_ptr(arg->ptr_vecs, arg->n_vecs) ||
            uapi_bad_ptr(arg->ptr_handles, arg->n_handles) ||
            uapi_bad_ptr(arg->ptr_fds, arg->n_fds))
                return -EFAULT;
        if (arg->flags & ~(BUS1_SEND_FLAG_CONTINUE | BUS1_SEND_FLAG_SEED))
                return -EINVAL;
        if (arg->n_vecs > 1024 || arg->n_fds > BUS1_FD_MAX)
                return -EMSGSIZE;
        if (arg->n_destinations > PROTO_DESTINATIONS_MAX || arg->n_handles > PROTO_HANDLES_MAX)
                return arg->n_destinations > PROTO_DESTINATIONS_MAX ? -EINVAL : -EMSGSIZE;

        for (uint64_t i = 0; i < arg->n_fds; ++i)
                if (fds[i] < 0 || fcntl(fds[i], F_GETFD) < 0)
                        return -EBADF;
        for (uint64_t i = 0; i < arg->n_vecs; ++i)
                if (!uvecs[i].iov_base && uvecs[i].iov_len)
                        return -EFAULT;

        s = (ClientSend){
                .flags = arg->flags,
                .destinations = (const uint64_t *)(uintptr_t)arg->ptr_destinations,
                .n_destinations = arg->n_destinations,
                .errors = (uint64_t *)(uintptr_t)arg->ptr_errors,
                .vecs = uvecs,
                .n_vecs = arg->n_vecs,
                .handles = (const uint64_t *)(uintptr_t)arg->ptr_handles,
                .n_handles = arg->n_handles,
                .fds = fds,
                .n_fds = arg->n_fds,
        };
        if (!arg->n_destinations)
                s.errors = NULL;
        return client_send(client, &s);
}

static int uapi_recv(Client *client, struct bus1_cmd_recv *arg) {
        ClientRecv r;
        int res;

        res = client_recv(client, arg->flags, arg->max_offset, &r);
        if (res < 0)
                return res;

        arg->msg.type = r.entry.msg.type;
        arg->msg.flags = r.entry.msg.flags;
        arg->msg.destination = r.entry.msg.destination;
        arg->msg.uid = r.entry.msg.uid;
        arg->msg.gid = r.entry.msg.gid;
        arg->msg.pid = r.entry.msg.pid;
        arg->msg.tid = r.entry.msg.tid;
        arg->msg.offset = r.entry.msg.offset;
        arg->msg.n_bytes = r.entry.msg.n_bytes;
        arg->msg.n_handles = r.entry.msg.n_handles;
        arg->msg.n_fds = r.entry.msg.n_fds;
        arg->msg.n_secctx = r.entry.msg.n_secctx;
        /* the fds are installed; their numbers are in the slice */
        free(r.fds);
        return 0;
}

/**
 * bus1_uapi_ioctl() - issue a bus1 command
 * @peer:       descriptor from bus1_uapi_open()
 * @cmd:        BUS1_CMD_*
 * @arg:        the command's argument, as for the kernel's ioctl(2)
 *
 * Same semantics as the kernel command. In HANDLE_TRANSFER, dst_fd is
 * another descriptor from bus1_uapi_open(), or (u64)-1 for @peer itself.
 *
 * Return: 0 on success, a negative errno on failure (never a positive
 *         value): -EBADF @peer is not a peer, -ENOTTY unknown command,
 *         -EFAULT NULL argument, and the command's own errors.
 */
_public_ int bus1_uapi_ioctl(int peer, unsigned long cmd, void *arg) {
        Client *client;
        int r;

        client = uapi_get(peer);
        if (!client)
                return fcntl(peer, F_GETFD) < 0 ? -EBADF : -ENOTTY;
        if (!arg) {
                uapi_put(client);
                return -EFAULT;
        }

        switch (cmd) {
        case BUS1_CMD_PEER_DISCONNECT:
                r = *(const __u64 *)arg ? -EINVAL : client_disconnect(client);
                break;
        case BUS1_CMD_PEER_QUERY:
        case BUS1_CMD_PEER_RESET:
                r = uapi_peer_reset(client, cmd, arg);
                break;
        case BUS1_CMD_HANDLE_RELEASE:
                r = client_handle_release(client, *(const __u64 *)arg);
                break;
        case BUS1_CMD_HANDLE_TRANSFER:
                r = uapi_handle_transfer(client, arg);
                break;
        case BUS1_CMD_NODES_DESTROY: {
                struct bus1_cmd_nodes_destroy *d = arg;

                if (uapi_bad_ptr(d->ptr_nodes, d->n_nodes))
                        r = -EFAULT;
                else if (d->n_nodes > PROTO_NODES_MAX)
                        r = -EINVAL;
                else
                        r = client_nodes_destroy(client, d->flags,
                                                 (const uint64_t *)(uintptr_t)d->ptr_nodes,
                                                 d->n_nodes);
                break;
        }
        case BUS1_CMD_SLICE_RELEASE:
                r = client_slice_release(client, *(const __u64 *)arg);
                break;
        case BUS1_CMD_SEND:
                r = uapi_send(client, arg);
                break;
        case BUS1_CMD_RECV:
                r = uapi_recv(client, arg);
                break;
        default:
                r = -ENOTTY;
                break;
        }

        uapi_put(client);
        /* a broken connection reads as the peer being gone */
        return r == -ECONNRESET || r == -EPIPE ? -ESHUTDOWN : r;
}
