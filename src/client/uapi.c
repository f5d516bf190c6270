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
 * Argument handling follows the kernel's bus1_peer_ioctl() and its
 * handlers: the command is a 32-bit number, PEER_DISCONNECT's argument is a
 * value (0) and never a pointer, a disconnected peer answers ESHUTDOWN
 * before anything else is looked at, and within a command the errors come
 * in the kernel's order. Errors the library finds in the caller's arrays
 * (a NULL array with a non-zero count, an fd that is not open) travel to the
 * broker with the request when the kernel would have met them after checks
 * only the broker can make (the handles, the fds' types), so the same
 * errno wins. A wild non-NULL pointer faults like any library call would:
 * the library cannot check readability without a system call per array.
 *
 * Invariants:
 *  - uapi_clients[fd] is NULL or the client whose socket is descriptor fd;
 *    the array changes only under uapi_lock;
 *  - locks are taken in one order, uapi_lock before a client's lock; a
 *    second client is only ever try-locked (uapi_try_get()), so two calls
 *    never wait for each other;
 *  - every Client call runs under that client's lock (client.h);
 *    bus1_uapi_close() frees a client only once it left the registry and
 *    no call holds it (one the program closed with close(2) is freed when
 *    its number is registered again).
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

/*
 * The client behind @fd, locked, without waiting for its lock: *busyp is
 * set if another call holds it (the caller holds a lock of its own, and two
 * threads transferring between the same two peers in opposite directions
 * would otherwise wait for each other for ever). NULL if @fd is not ours
 * or busy.
 */
static Client *uapi_try_get(int fd, bool *busyp) {
        Client *client = NULL;

        *busyp = false;
        pthread_mutex_lock(&uapi_lock);
        if (fd >= 0 && (size_t)fd < uapi_n_clients)
                client = uapi_clients[fd];
        if (client && pthread_mutex_trylock(&client->lock) != 0) {
                client = NULL;
                *busyp = true;
        }
        pthread_mutex_unlock(&uapi_lock);
        return client;
}

static void uapi_put(Client *client) {
        pthread_mutex_unlock(&client->lock);
}

/*
 * A peer the program closed with close(2) instead of bus1_uapi_close(): its
 * number was free again, and now names a new peer. Free what the old one
 * held, without touching the number (it is the new peer's socket now).
 */
static void uapi_forget_stale(Client *stale) {
        client_free_closed(stale);
}

static int uapi_register(Client *client) {
        size_t fd = (size_t)client->fd;
        Client *stale = NULL;
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
        stale = uapi_clients[fd];
        uapi_clients[fd] = client;
out:
        pthread_mutex_unlock(&uapi_lock);
        uapi_forget_stale(stale);
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

/* the end of the user address space (the kernel's TASK_SIZE) */
#if defined(__x86_64__)
#define UAPI_ADDRESS_END ((uint64_t)0x7ffffffff000)
#else
#define UAPI_ADDRESS_END ((uint64_t)UINTPTR_MAX)
#endif
/* the kernel's UIO_MAXIOV and MAX_RW_COUNT (INT_MAX rounded down to a page) */
#define UAPI_VECS_MAX 1024U
#define UAPI_BYTES_MAX ((uint64_t)0x7ffff000)

static bool uapi_bad_ptr(uint64_t ptr, uint64_t n) {
        return n && !ptr;
}

static int uapi_peer_reset(Client *client, uint32_t cmd, struct bus1_cmd_peer_reset *arg) {
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

/*
 * peer.c bus1_peer_ioctl_handle_transfer(): flags, then dst_fd (the kernel
 * passes it to fdget() as an unsigned int: only its low 32 bits count; -1
 * in all 64 is the caller), then the transfer itself.
 */
static int uapi_handle_transfer(Client *client, struct bus1_cmd_handle_transfer *arg) {
        Client *dst = NULL;
        int dst_fd = -1, r;
        uint64_t id;

        if (arg->flags)
                return -EINVAL;
        if (arg->dst_fd != (__u64)-1) {
                uint32_t fd = (uint32_t)arg->dst_fd;

                if (fd > INT32_MAX)
                        return -EBADF;
                dst_fd = (int)fd;
                if (dst_fd == client->fd) {
                        dst = client;
                } else {
                        bool busy;

                        /*
                         * Another peer of this process: check it is still
                         * there. If a call holds it right now, the broker
                         * judges it instead (it knows a peer that is gone).
                         */
                        dst = uapi_try_get(dst_fd, &busy);
                        if (busy)
                                goto transfer;
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
                        r = client_usable(dst);
                        uapi_put(dst);
                        if (r < 0)
                                return r == -EBADFD ? r : -ESHUTDOWN;
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

/*
 * util.c bus1_import_vecs(): each length in turn must be non-negative as an
 * ssize_t (EMSGSIZE), lie in the user address space (EFAULT) and keep the
 * total within MAX_RW_COUNT (EMSGSIZE). Decided on the lengths alone: no
 * payload byte is read here.
 */
static int uapi_check_vecs(const struct iovec *vecs, uint64_t n_vecs) {
        uint64_t total = 0;

        if (uapi_bad_ptr((uintptr_t)vecs, n_vecs))
                return -EFAULT;
        for (uint64_t i = 0; i < n_vecs; ++i) {
                uint64_t base = (uintptr_t)vecs[i].iov_base, len = vecs[i].iov_len, end;

                if (len > INT64_MAX)
                        return -EMSGSIZE;
                if (__builtin_add_overflow(base, len, &end) || end > UAPI_ADDRESS_END)
                        return -EFAULT;
                if (len > UAPI_BYTES_MAX - total)
                        return -EMSGSIZE;
                total += len;
        }
        /* the kernel faulted on these only while copying; the library cannot read them */
        for (uint64_t i = 0; i < n_vecs; ++i)
                if (!vecs[i].iov_base && vecs[i].iov_len)
                        return -EFAULT;
        return 0;
}

/*
 * The fds to attach: the count of those that are open, in order, and in
 * @faultp the error of the first that is not (EFAULT for an unreadable
 * array), which the broker returns after it checked the handles and the
 * fds before it (peer.c, message.c bus1_factory_new(), util.c
 * bus1_import_fd()).
 */
static size_t uapi_check_fds(const int *fds, uint64_t n_fds, int *faultp) {
        *faultp = 0;
        if (uapi_bad_ptr((uintptr_t)fds, n_fds)) {
                *faultp = -EFAULT;
                return 0;
        }
        for (uint64_t i = 0; i < n_fds; ++i)
                if (fds[i] < 0 || fcntl(fds[i], F_GETFD) < 0) {
                        *faultp = -EBADF;
                        return (size_t)i;
                }
        return (size_t)n_fds;
}

/*
 * peer.c bus1_peer_ioctl_send() and message.c bus1_factory_new(), in their
 * order: flags; the counts; the destination count (the broker holds the
 * user's limit; one request names at most PROTO_DESTINATIONS_MAX); the
 * iovecs; the handles (the broker: ENXIO); the fds; SEED's own rules; the
 * destinations.
 */
static int uapi_send(Client *client, struct bus1_cmd_send *arg) {
        const struct iovec *uvecs = (const struct iovec *)(uintptr_t)arg->ptr_vecs;
        ClientSend s;
        int r;

        if (arg->flags & ~(BUS1_SEND_FLAG_CONTINUE | BUS1_SEND_FLAG_SEED))
                return -EINVAL;
        if (arg->n_destinations > INT32_MAX || arg->n_vecs > UAPI_VECS_MAX ||
            arg->n_fds > BUS1_FD_MAX)
                return -EMSGSIZE;
        /*
         * The user's handle limit bounds the destinations. An unreadable
         * array travels as its count alone; one request names at most
         * PROTO_DESTINATIONS_MAX of them.
         */
        if (arg->n_destinations > client->user_max_handles ||
            (arg->ptr_destinations && arg->n_destinations > PROTO_DESTINATIONS_MAX))
                return -EINVAL;
        r = uapi_check_vecs(uvecs, arg->n_vecs);
        if (r < 0)
                return r;
        if (uapi_bad_ptr(arg->ptr_handles, arg->n_handles))
                return -EFAULT;
        if (arg->n_handles > PROTO_HANDLES_MAX)
                return -EMSGSIZE;

        s = (ClientSend){
                .flags = arg->flags,
                .destinations = (const uint64_t *)(uintptr_t)arg->ptr_destinations,
                .n_destinations = arg->n_destinations,
                .errors = (uint64_t *)(uintptr_t)arg->ptr_errors,
                .vecs = uvecs,
                .n_vecs = arg->n_vecs,
                .handles = (const uint64_t *)(uintptr_t)arg->ptr_handles,
                .n_handles = arg->n_handles,
                .fds = (const int *)(uintptr_t)arg->ptr_fds,
                .destinations_fault = uapi_bad_ptr(arg->ptr_destinations,
                                                   arg->n_destinations),
        };
        s.n_fds = uapi_check_fds(s.fds, arg->n_fds, &s.fds_fault);
        if (!arg->n_destinations)
                s.errors = NULL;
        return client_send(client, &s);
}

/*
 * peer.c bus1_peer_ioctl_nodes_destroy(): flags, the count (the broker
 * holds the user's limit; one request names at most PROTO_NODES_MAX), then
 * the array.
 */
static int uapi_nodes_destroy(Client *client, const struct bus1_cmd_nodes_destroy *arg) {
        if (arg->flags & ~(__u64)BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES)
                return -EINVAL;
        /* the user's handle limit bounds the IDs; one request names PROTO_NODES_MAX */
        if (arg->n_nodes > client->user_max_handles ||
            (arg->ptr_nodes && arg->n_nodes > PROTO_NODES_MAX))
                return -EINVAL;
        return client_nodes_destroy(client, arg->flags,
                                    (const uint64_t *)(uintptr_t)arg->ptr_nodes, arg->n_nodes);
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

/* a command of the 2016 UAPI other than PEER_DISCONNECT */
static bool uapi_known(uint32_t cmd) {
        switch (cmd) {
        case BUS1_CMD_PEER_QUERY:
        case BUS1_CMD_PEER_RESET:
        case BUS1_CMD_HANDLE_RELEASE:
        case BUS1_CMD_HANDLE_TRANSFER:
        case BUS1_CMD_NODES_DESTROY:
        case BUS1_CMD_SLICE_RELEASE:
        case BUS1_CMD_SEND:
        case BUS1_CMD_RECV:
                return true;
        default:
                return false;
        }
}

/*
 * peer.c bus1_peer_ioctl(): PEER_DISCONNECT takes its argument as a value
 * and needs no live peer; everything else needs one (ESHUTDOWN first), then
 * a known command (ENOTTY), then an argument to read (EFAULT).
 */
static int uapi_dispatch(Client *client, uint32_t cmd, void *arg) {
        int r;

        if (cmd == BUS1_CMD_PEER_DISCONNECT)
                return arg ? -EINVAL : client_disconnect(client);
        r = client_usable(client);
        if (r < 0)
                return r;
        if (!uapi_known(cmd))
                return -ENOTTY;
        if (!arg)
                return -EFAULT;

        switch (cmd) {
        case BUS1_CMD_PEER_QUERY:
        case BUS1_CMD_PEER_RESET:
                return uapi_peer_reset(client, cmd, arg);
        case BUS1_CMD_HANDLE_RELEASE:
                return client_handle_release(client, *(const __u64 *)arg);
        case BUS1_CMD_HANDLE_TRANSFER:
                return uapi_handle_transfer(client, arg);
        case BUS1_CMD_NODES_DESTROY:
                return uapi_nodes_destroy(client, arg);
        case BUS1_CMD_SLICE_RELEASE:
                return client_slice_release(client, *(const __u64 *)arg);
        case BUS1_CMD_SEND:
                return uapi_send(client, arg);
        default:
                return uapi_recv(client, arg);
        }
}

/**
 * bus1_uapi_ioctl() - issue a bus1 command
 * @peer:       descriptor from bus1_uapi_open()
 * @cmd:        BUS1_CMD_*; only the low 32 bits count, as for ioctl(2)
 * @arg:        the command's argument, as for the kernel's ioctl(2); for
 *              BUS1_CMD_PEER_DISCONNECT the value itself, which must be 0
 *
 * Same semantics as the kernel command, errors in the kernel's order. In
 * HANDLE_TRANSFER, dst_fd is another descriptor from bus1_uapi_open(), or
 * (u64)-1 for @peer itself.
 *
 * Return: 0 on success, a negative errno on failure (never a positive
 *         value), which is also stored in errno (positive), so wrappers
 *         written for ioctl(2) work unchanged: -EBADF @peer is not open,
 *         -ENOTTY @peer is no peer or the command is unknown, -EBADFD
 *         a forked child of this process took the peer over,
 *         -ESHUTDOWN the peer is disconnected or its connection to the
 *         broker ended, -EFAULT NULL argument, and the command's own errors.
 */
_public_ int bus1_uapi_ioctl(int peer, unsigned long cmd, void *arg) {
        Client *client;
        int r;

        client = uapi_get(peer);
        if (!client) {
                r = fcntl(peer, F_GETFD) < 0 ? -EBADF : -ENOTTY;
        } else {
                r = uapi_dispatch(client, (uint32_t)cmd, arg);
                uapi_put(client);
        }

        /* a broken connection reads as the peer being gone */
        if (r == -ECONNRESET || r == -EPIPE)
                r = -ESHUTDOWN;
        if (r < 0)
                errno = -r;
        return r;
}
