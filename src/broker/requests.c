/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Requests: one handler per request type
 *
 * connection_dispatch_request() admits a request (a known type; before
 * HELLO only control requests; right after a RECV that handed fds over,
 * only the SLICE_FDS that confirms them) and calls the handler of its type.
 * Each handler decodes the request, makes one call into the model (or the
 * control layer) and answers it itself, or returns the errno the
 * dispatcher answers with a plain REPLY; a fatal error closes the
 * connection.
 *
 * Invariant: every request but ACK (and FDS, a transport record) gets
 * exactly one REPLY, in the order the requests came.
 */

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "broker/broker.h"
#include "broker/connection.h"
#include "broker/connection-internal.h"
#include "broker/control.h"
#include "bus/message.h"
#include "bus/peer.h"
#include "bus/pool.h"
#include "broker/pool-memfd.h"
#include "bus/queue.h"
#include "broker/sockdiag.h"
#include "bus/tx.h"
#include "util/closer.h"
#include "util/fdlist.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/scm.h"
#include "util/clock.h"

#if __BYTE_ORDER != __LITTLE_ENDIAN
#error "the broker uses little-endian arrays of requests in place"
#endif

/* HELLO replies found no longer in the socket: their fds are not in flight */
void connection_forget_hellos(Connection *conn) {
        if (conn->n_hellos_unread)
                conn->peer->bus->n_unread_fds -= 2 * (conn->n_hellos_unread - 1);
        conn->n_hellos_unread = 0;
}

/*
 * Whether a HELLO may be answered with two more fds. Each reply's fds stay
 * in flight, charged by the kernel to the broker's UID, until the client
 * reads it; a client that pipelines HELLOs and never reads would pile them
 * up until every sendmsg() with fds of the broker fails. The replies of a
 * connection whose socket holds nothing unread (SIOCOUTQ) were read; else
 * at most CONNECTION_HELLOS_UNREAD_MAX may be. A connection's latest reply
 * is what any client has in flight for a moment; the ones before it count
 * in Bus.n_unread_fds, which stays within half the descriptor budget.
 * Return: 0, or -EBUSY.
 */
static int connection_check_hello_fds(Connection *conn) {
        Bus *bus = conn->peer->bus;
        int unread = 0;

        if (conn->n_hellos_unread && ioctl(conn->fd, SIOCOUTQ, &unread) == 0 && unread == 0)
                connection_forget_hellos(conn);
        if (conn->n_hellos_unread >= CONNECTION_HELLOS_UNREAD_MAX)
                return -EBUSY;
        if (conn->n_hellos_unread && bus->n_unread_fds + 2 > bus->fd_budget / 2)
                return -EBUSY;
        return 0;
}

static int connection_handle_hello(Connection *conn, const void *buf, size_t len, int *fds,
                                   size_t n_fds) {
        uint8_t out[PROTO_SIZE_REPLY_HELLO];
        ProtoReplyHello reply = {};
        FdList *fds_reply = NULL;
        int r, len_out, fds_out[2];
        ProtoHello hello;
        Ring ring;

        r = proto_decode_hello(&hello, buf, len, n_fds);
        if (r < 0)
                return r;
        reply.cookie = hello.cookie;
        if (hello.version_min > PROTO_VERSION_MAX || hello.version_max < PROTO_VERSION_MIN)
                return -EPROTONOSUPPORT;

        if (conn->peer->disconnected)
                return -ESHUTDOWN;
        r = connection_check_hello_fds(conn);
        if (r < 0)
                return r;
        r = pool_memfd_open_readonly(&conn->peer->pool, &fds_out[0]);
        if (r < 0)
                return r;
        /* the adopting process gets a ring of its own (the old one was drained) */
        r = ring_init(&ring, &fds_out[1]);
        if (r < 0) {
                safe_close(fds_out[0]);
                return r;
        }

        reply.version = PROTO_VERSION_MAX < hello.version_max ? PROTO_VERSION_MAX
                                                               : hello.version_max;
        reply.peer_id = conn->peer->id;
        reply.pool_size = conn->peer->pool.max_size;
        reply.user_max_handles = conn->peer->user->limits.max[USER_HANDLES];
        r = proto_encode_reply_hello(out, sizeof(out), &reply);
        len_out = r;
        if (r >= 0)
                r = fdlist_new(&fds_reply, fds_out, 2);
        else {
                safe_close(fds_out[0]);
                safe_close(fds_out[1]);
        }
        if (r < 0) {
                ring_deinit(&ring);
                return r;
        }

        /*
         * A HELLO on an established connection is a process adopting it
         * (a child that inherited it): the stream starts afresh, and every
         * queued entry is pushed again after the reply.
         */
        ring_retire(&conn->ring);
        conn->ring = ring;
        conn->hello = true;
        conn->push_cursor = 0;
        conn->push_blocked = false;
        conn->fd_pending = false;
        /* its two fds are in flight until the client is seen to have read it */
        if (conn->n_hellos_unread++)
                conn->peer->bus->n_unread_fds += 2;
        connection_write(conn, out, (size_t)len_out, fds_reply, -1);
        connection_mark_dirty(conn);
        return 0;
}

/*
 * Whether a client may pass this fd: not an AF_UNIX socket unless O_PATH
 * (util.c bus1_import_fd() of the kernel). Never fstat(2): on a FUSE file
 * that asks the file's server and may wait for ever; getsockopt(2) tells a
 * socket from anything else without asking a file system.
 */
int connection_check_fd(int fd) {
        int flags, domain;
        socklen_t len = sizeof(domain);

        if (fd == CONNECTION_FD_REFUSED)
                return -EOPNOTSUPP;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return -EBADF;
        if (flags & O_PATH)
                return 0;
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
                return errno == ENOTSOCK ? 0 : -EBADF;
        return domain == AF_UNIX ? -EOPNOTSUPP : 0;
}

/* where a PROTO_PAYLOAD_MEMFD send's payload is */
typedef struct PayloadFile {
        int fd;
        uint64_t offset;
} PayloadFile;

/*
 * Check a PROTO_PAYLOAD_MEMFD payload: a memfd (only shmem has seals: no
 * other file system is asked anything) that cannot shrink under us, with
 * the range inside it.
 */
static int connection_check_payload(int fd, uint64_t offset, uint64_t n_bytes) {
        struct stat st;
        uint64_t end;
        int seals;

        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0)
                return -EBADF;
        if (!(seals & F_SEAL_SHRINK))
                return -EINVAL;
        if (fstat(fd, &st) < 0)
                return -EBADF;
        if (__builtin_add_overflow(offset, n_bytes, &end) || end > (uint64_t)st.st_size)
                return -EFAULT;
        return 0;
}

/*
 * Copy a memfd payload into a slice (PoolFillFn). pread(2) reads holes as
 * zeros without giving them pages, so a sparse memfd costs the broker
 * nothing; a mapping would fault a page in for every one. A memfd sealed
 * against shrinking always has the range; should a read fail anyway, the
 * rest is zeroes.
 */
static void connection_fill_payload(void *dst, uint64_t len, void *userdata) {
        const PayloadFile *f = userdata;
        uint8_t *p = dst;
        uint64_t done = 0;

        while (done < len) {
                ssize_t l = pread(f->fd, p + done, len - done, (off_t)(f->offset + done));

                if (l < 0 && errno == EINTR)
                        continue;
                if (l <= 0)
                        break;
                done += (uint64_t)l;
        }
        if (done < len)
                memset(p + done, 0, len - done);
}

static int connection_handle_send(Connection *conn, uint64_t *cookiep, const void *buf,
                                  size_t len, int *fds, size_t n_fds) {
        _cleanup_(fdlist_unrefp) FdList *fdlist = NULL;
        _cleanup_(freep) uint64_t *errors = NULL;
        uint8_t small[PROTO_SIZE_REPLY_SEND_MIN];
        _cleanup_(freep) uint8_t *out = NULL;
        PayloadFile payload_file = { .fd = -1 };
        size_t out_len;
        struct iovec vec;
        int fd_error = 0;
        ProtoSend s;
        TxArgs args;
        int r;

        r = proto_decode_send(&s, buf, len, n_fds);
        if (r < 0)
                return r;
        *cookiep = s.cookie;

        /* an fd the kernel would refuse fails the send at its turn (peer_send()) */
        for (size_t i = 0; i < s.n_fds && !fd_error; ++i)
                fd_error = connection_check_fd(fds[i]);
        if (!fd_error && (s.flags & PROTO_SEND_FLAG_FDS_EBADF))
                fd_error = -EBADF;
        if (!fd_error && (s.flags & PROTO_SEND_FLAG_FDS_EFAULT))
                fd_error = -EFAULT;

        vec = (struct iovec){ .iov_base = (void *)s.payload, .iov_len = s.n_bytes };
        if (s.payload_mode == PROTO_PAYLOAD_MEMFD) {
                r = connection_check_payload(fds[s.n_fds], s.memfd_offset, s.n_bytes);
                if (r < 0)
                        return r;
                payload_file = (PayloadFile){ .fd = fds[s.n_fds], .offset = s.memfd_offset };
                vec.iov_base = NULL;
        }

        if (s.n_fds) {
                r = fdlist_new(&fdlist, fds, s.n_fds);
                /* the list owns (or has closed) them now */
                for (size_t i = 0; i < s.n_fds; ++i)
                        fds[i] = -1;
                if (r < 0)
                        return r;
        }

        if (s.flags & PROTO_SEND_FLAG_ERRORS) {
                errors = calloc(s.n_destinations ?: 1, sizeof(*errors));
                if (!errors) {
                        return -ENOMEM;
                }
        }

        args = (TxArgs){
                .flags = s.flags & ~(PROTO_SEND_FLAG_ERRORS | PROTO_SEND_FLAGS_FAULT),
                .destinations = (const uint64_t *)s.destinations,
                .n_destinations = s.n_destinations,
                .errors = errors,
                .vecs = &vec,
                .n_vecs = s.n_bytes ? 1 : 0,
                .handles = (const uint64_t *)s.handles,
                .n_handles = s.n_handles,
                .fds = fdlist,
                .fill = payload_file.fd >= 0 ? connection_fill_payload : NULL,
                .fill_userdata = &payload_file,
                .fd_error = fd_error,
                .destinations_fault = s.flags & PROTO_SEND_FLAG_DESTINATIONS_EFAULT,
        };
        r = peer_send(conn->peer, &args);
        if (r < 0)
                return r;

        r = proto_size_reply_send(&out_len, errors ? s.n_destinations : 0);
        if (r < 0)
                return r;
        if (out_len > sizeof(small)) {
                out = malloc(out_len);
                if (!out) {
                        return -ENOMEM;
                }
        }
        r = proto_encode_reply_send(out ?: small, out_len, s.cookie, errors,
                                    errors ? s.n_destinations : 0);
        if (r < 0)
                return r;

        connection_push_dirty(conn->broker, conn);
        connection_reply(conn, out ?: small, (size_t)r, NULL, -1);
        return 0;
}

/*
 * RECV. An entry whose fds are to be installed is only described: the reply
 * hands the fds over and the entry stays queued until the client's
 * SLICE_FDS says it holds them all, so a client without free descriptors
 * loses nothing (docs/protocol.md 7.15).
 */
static int connection_handle_recv(Connection *conn, uint64_t *cookiep, const void *buf,
                                  size_t len, size_t n_fds) {
        uint8_t out[PROTO_SIZE_REPLY_RECV];
        ProtoReplyRecv reply = {};
        FdList *fds = NULL;
        PeerRecv r_entry;
        uint64_t entry_id = 0;
        ProtoRecv req;
        int r;

        r = proto_decode_recv(&req, buf, len, n_fds);
        if (r < 0)
                return r;
        *cookiep = req.cookie;

        if (!conn->peer->disconnected && (req.flags & BUS1_RECV_FLAG_INSTALL_FDS) &&
            !(req.flags & BUS1_RECV_FLAG_PEEK))
                fds = peer_recv_fds(conn->peer, req.flags, &entry_id);

        if (fds) {
                r = peer_recv(conn->peer, req.flags | BUS1_RECV_FLAG_PEEK, req.max_offset,
                              &r_entry);
                if (r < 0)
                        return r;
                r_entry.entry_id = entry_id;
        } else {
                conn->dequeuing = true;
                r = peer_recv(conn->peer, req.flags, req.max_offset, &r_entry);
                conn->dequeuing = false;
                if (r < 0)
                        return r;
                /* no fds to install: nothing is handed over */
                peer_recv_deinit(&r_entry);
        }

        reply.cookie = req.cookie;
        connection_entry_to_proto(&r_entry, &reply.entry);
        r = proto_encode_reply_recv(out, sizeof(out), &reply);
        if (r < 0)
                return r;

        if (fds) {
                conn->fd_pending = true;
                conn->fd_flags = req.flags;
                conn->fd_entry_id = entry_id;
                conn->fd_offset = r_entry.offset;
                conn->fd_count = fds->n_fds;
                fds = fdlist_ref(fds);
        }
        connection_push_dirty(conn->broker, conn);
        connection_reply(conn, out, (size_t)r, fds, -1);
        return 0;
}

/*
 * SLICE_FDS: the client holds the fds the last RECV handed over (or, with
 * none named, could not take them). Only now is the entry dequeued, and
 * the numbers the fds got go into its slice.
 */
static int connection_handle_slice_fds(Connection *conn, uint64_t *cookiep, const void *buf,
                                       size_t len, size_t n_fds) {
        ProtoSliceFds req;
        PeerRecv r_entry;
        PoolSlice *slice;
        uint64_t entry_id = 0, at;
        bool pending = conn->fd_pending;
        int r;

        conn->fd_pending = false;
        r = proto_decode_slice_fds(&req, buf, len, n_fds);
        if (r < 0)
                return r;
        *cookiep = req.cookie;

        if (conn->peer->disconnected)
                return -ESHUTDOWN;
        if (!pending || req.offset != conn->fd_offset ||
            (req.n_fds && req.n_fds != conn->fd_count))
                return -EINVAL;
        /* the client could not install them: the entry stays queued */
        if (!req.n_fds)
                return 0;
        /* nothing but this client's requests dequeues: still the same entry */
        if (!peer_recv_fds(conn->peer, conn->fd_flags, &entry_id) ||
            entry_id != conn->fd_entry_id)
                return -EINVAL;

        conn->dequeuing = true;
        r = peer_recv(conn->peer, conn->fd_flags, UINT64_MAX, &r_entry);
        conn->dequeuing = false;
        if (r < 0)
                return r;
        at = message_fd_offset(r_entry.n_bytes, r_entry.n_handles);
        peer_recv_deinit(&r_entry);

        slice = pool_find(&conn->peer->pool, req.offset);
        if (!slice || !slice->published)
                return -EINVAL;
        for (uint32_t i = 0; i < req.n_fds; ++i) {
                int32_t v = (int32_t)proto_u32_at(req.fds, i);

                r = pool_write(&conn->peer->pool, slice, at + 4 * i, &v, sizeof(v));
                if (r < 0)
                        return -EINVAL;
        }
        return 0;
}

static int connection_handle_transfer(Connection *conn, uint64_t *cookiep, const void *buf,
                                      size_t len, int *fds, size_t n_fds,
                                      uint64_t *dst_idp) {
        ProtoHandleTransfer req;
        Peer *dst = NULL;
        int r;

        r = proto_decode_handle_transfer(&req, buf, len, n_fds);
        if (r < 0)
                return r;
        *cookiep = req.cookie;

        if (req.dst_mode == PROTO_DST_FD) {
                Connection *other;
                uint64_t ino;

                /* the fd proves the caller holds that connection */
                r = sockdiag_peer_inode(fds[0], &ino);
                connection_close_fds(fds, 1);
                if (r < 0)
                        return -EOPNOTSUPP;
                other = broker_find_connection(conn->broker, ino);
                if (!other)
                        return -EOPNOTSUPP;
                dst = other->peer;
        }
        return peer_handle_transfer(conn->peer, req.flags, req.src_handle, dst, dst_idp);
}

/* answer a control request: the body in CTL_DATA records, then the REPLY */
static void connection_reply_ctl(Connection *conn, uint64_t cookie, const char *body,
                                 size_t len, uint32_t format, uint32_t flags) {
        uint8_t out[PROTO_SIZE_REPLY_CTL];
        ProtoReplyCtl reply = {
                .cookie = cookie,
                .format = format,
                .flags = flags,
                .n_bytes = len,
        };
        _cleanup_(freep) uint8_t *buf = NULL;
        size_t pos, n;
        int r;

        if (len) {
                buf = malloc(PROTO_RECORD_MAX);
                if (!buf) {
                        connection_reply_error(conn, cookie, ENOMEM);
                        return;
                }
        }
        /* the parts are queued in order: the reply cannot overtake them */
        for (pos = 0; pos < len; pos += n) {
                n = MIN(len - pos, (size_t)PROTO_CTL_DATA_MAX);
                r = proto_encode_ctl_data(buf, PROTO_RECORD_MAX, cookie, body + pos, n);
                if (r < 0) {
                        /* the broker built a body it cannot send: a bug, not the client's */
                        log_error("cannot encode control reply: %s", strerror(-r));
                        connection_fail(conn);
                        return;
                }
                connection_write(conn, buf, (size_t)r, NULL, -1);
        }
        r = proto_encode_reply_ctl(out, sizeof(out), &reply);
        if (r < 0) {
                connection_fail(conn);
                return;
        }
        connection_reply(conn, out, (size_t)r, NULL, -1);
}

/* STATUS, PEERS, PEER, QUOTA, METRICS */
static int connection_handle_ctl(Connection *conn, uint64_t *cookiep, const void *buf,
                                 size_t len, size_t n_fds) {
        _cleanup_(freep) char *body = NULL;
        uint32_t format, flags;
        size_t n_body;
        ProtoCtl req;
        int r;

        r = proto_decode_ctl(&req, buf, len, n_fds);
        if (r < 0)
                return r;
        *cookiep = req.cookie;

        /*
         * A report is built whole (up to PROTO_CTL_BYTES_MAX): one at a time
         * per connection, asked for only once the last one left for the
         * socket, and none while the UID's connections have
         * CONTROL_OUT_PER_UID queued, so a client that never reads holds
         * little of the broker's memory.
         */
        if (conn->n_out_bytes || conn->peer->user->n_out_bytes >= CONTROL_OUT_PER_UID)
                return -EBUSY;

        /* usage as it is: every release a client made counts */
        {
                Connection *c;

                list_for_each_entry(c, &conn->broker->connections, broker_link)
                        connection_drain(c);
        }
        r = control_report(&conn->broker->control, conn, &req, &body, &n_body, &format, &flags);
        if (r < 0)
                return r;
        connection_push_dirty(conn->broker, conn);
        connection_reply_ctl(conn, req.cookie, body, n_body, format, flags);
        return 0;
}

static int connection_handle_monitor(Connection *conn, uint64_t *cookiep, const void *buf,
                                     size_t len, size_t n_fds) {
        ProtoCtlMonitor req;
        int r;

        r = proto_decode_ctl_monitor(&req, buf, len, n_fds);
        if (r < 0)
                return r;
        *cookiep = req.cookie;

        /* a peer's stream of entries and a monitor's events do not mix */
        if (conn->hello || conn->monitor)
                return -EBUSY;
        r = monitor_new(&conn->monitor, &conn->broker->control, conn, &req);
        if (r < 0)
                return r;
        connection_push_dirty(conn->broker, conn);
        connection_reply_ctl(conn, req.cookie, NULL, 0, PROTO_CTL_FORMAT_NONE, 0);
        return 0;
}

/* apply one request and answer it; a fatal error closes the connection */
/*
 * One request being handled. A handler either answers it itself and
 * returns CONNECTION_REPLIED, or returns 0 or a negative errno, which the
 * dispatcher answers with a plain REPLY (a fatal one closes the
 * connection). Handlers that decode the request may correct the cookie.
 */
typedef struct Request {
        const void *buf;
        size_t len;
        int *fds;
        size_t n_fds;
        uint64_t cookie;
} Request;

#define CONNECTION_REPLIED 1

static int connection_do_hello(Connection *conn, Request *req) {
        int r;

        if (conn->monitor)
                return -EBUSY;
        r = connection_handle_hello(conn, req->buf, req->len, req->fds, req->n_fds);
        if (r < 0)
                return r;
        conn->control = false;
        return CONNECTION_REPLIED;
}

/* ACK is never answered; only a fatal error (the connection closes) counts */
static int connection_do_ack(Connection *conn, Request *req) {
        int r = connection_handle_ack(conn, req->buf, req->len, req->n_fds);

        if (r < 0 && proto_error_is_fatal(r))
                connection_fail(conn);
        return CONNECTION_REPLIED;
}

static int connection_do_disconnect(Connection *conn, Request *req) {
        ProtoPeerDisconnect d;
        int r = proto_decode_peer_disconnect(&d, req->buf, req->len, req->n_fds);

        return r < 0 ? r : peer_disconnect(conn->peer);
}

static int connection_do_query(Connection *conn, Request *req) {
        uint8_t out[PROTO_SIZE_REPLY_PEER_QUERY];
        ProtoReplyPeerQuery reply = { .cookie = req->cookie };
        ProtoPeerQuery q;
        PeerLimits l;
        int r;

        r = proto_decode_peer_query(&q, req->buf, req->len, req->n_fds);
        if (r >= 0)
                r = peer_query(conn->peer, q.flags, &reply.peer_flags, &l);
        if (r < 0)
                return r;
        reply.max_slices = l.max_slices;
        reply.max_handles = l.max_handles;
        reply.max_inflight_bytes = l.max_inflight_bytes;
        reply.max_inflight_fds = l.max_inflight_fds;
        r = proto_encode_reply_peer_query(out, sizeof(out), &reply);
        if (r < 0)
                return r;
        connection_push_dirty(conn->broker, conn);
        connection_reply(conn, out, (size_t)r, NULL, -1);
        return CONNECTION_REPLIED;
}

static int connection_do_reset(Connection *conn, Request *req) {
        ProtoPeerReset q;
        PeerLimits l;
        int r;

        r = proto_decode_peer_reset(&q, req->buf, req->len, req->n_fds);
        if (r < 0)
                return r;
        l = (PeerLimits){
                .max_slices = q.max_slices,
                .max_handles = q.max_handles,
                .max_inflight_bytes = q.max_inflight_bytes,
                .max_inflight_fds = q.max_inflight_fds,
        };
        return peer_reset(conn->peer, q.flags, q.peer_flags, &l);
}

static int connection_do_release(Connection *conn, Request *req) {
        ProtoHandleRelease q;
        int r = proto_decode_handle_release(&q, req->buf, req->len, req->n_fds);

        return r < 0 ? r : peer_handle_release(conn->peer, q.id);
}

static int connection_do_transfer(Connection *conn, Request *req) {
        uint8_t out[PROTO_SIZE_REPLY_HANDLE_TRANSFER];
        ProtoReplyHandleTransfer reply = { .cookie = req->cookie };
        int r;

        r = connection_handle_transfer(conn, &req->cookie, req->buf, req->len, req->fds,
                                       req->n_fds, &reply.dst_handle);
        if (r < 0)
                return r;
        reply.cookie = req->cookie;
        r = proto_encode_reply_handle_transfer(out, sizeof(out), &reply);
        if (r < 0)
                return r;
        connection_push_dirty(conn->broker, conn);
        connection_reply(conn, out, (size_t)r, NULL, -1);
        return CONNECTION_REPLIED;
}

static int connection_do_destroy(Connection *conn, Request *req) {
        ProtoNodesDestroy q;
        int r;

        r = proto_decode_nodes_destroy(&q, req->buf, req->len, req->n_fds);
        if (r < 0)
                return r;
        /* little-endian and 8-aligned in the receive buffer: used in place */
        return peer_nodes_destroy(conn->peer, q.flags & ~PROTO_NODES_DESTROY_FLAG_EFAULT,
                                  (const uint64_t *)q.ids, q.n_nodes);
}

static int connection_do_slice_release(Connection *conn, Request *req) {
        ProtoSliceRelease q;
        int r = proto_decode_slice_release(&q, req->buf, req->len, req->n_fds);

        return r < 0 ? r : peer_slice_release(conn->peer, q.offset);
}

static int connection_do_slice_fds(Connection *conn, Request *req) {
        return connection_handle_slice_fds(conn, &req->cookie, req->buf, req->len, req->n_fds);
}

/* the handlers below answer success themselves (0), errors through the dispatcher */
static int connection_replied(int r) {
        return r == 0 ? CONNECTION_REPLIED : r;
}

static int connection_do_send(Connection *conn, Request *req) {
        return connection_replied(connection_handle_send(conn, &req->cookie, req->buf, req->len,
                                                         req->fds, req->n_fds));
}

static int connection_do_recv(Connection *conn, Request *req) {
        return connection_replied(connection_handle_recv(conn, &req->cookie, req->buf, req->len,
                                                         req->n_fds));
}

static int connection_do_ctl(Connection *conn, Request *req) {
        return connection_replied(connection_handle_ctl(conn, &req->cookie, req->buf, req->len,
                                                        req->n_fds));
}

static int connection_do_monitor(Connection *conn, Request *req) {
        return connection_replied(connection_handle_monitor(conn, &req->cookie, req->buf,
                                                            req->len, req->n_fds));
}

/*
 * Whether the connection may make this request now: a known type; before
 * HELLO only control requests (then it is no peer to list); and right after
 * a RECV handed fds over, only the SLICE_FDS that confirms them (pipelining
 * RECVs would hand the same fds over again and again) or an ACK.
 */
static int connection_admit(Connection *conn, uint16_t type) {
        int r = proto_check_request_type(type);

        if (r < 0)
                return r;
        if (!conn->hello && proto_type_is_control(type))
                conn->control = true;
        else if (!conn->hello && type != PROTO_TYPE_HELLO)
                return -EBADMSG;
        if (conn->fd_pending && type != PROTO_TYPE_SLICE_FDS && type != PROTO_TYPE_ACK)
                return -EBADMSG;
        return 0;
}

static int connection_handle(Connection *conn, uint16_t type, Request *req) {
        switch (type) {
        case PROTO_TYPE_HELLO:          return connection_do_hello(conn, req);
        case PROTO_TYPE_ACK:            return connection_do_ack(conn, req);
        case PROTO_TYPE_PEER_DISCONNECT: return connection_do_disconnect(conn, req);
        case PROTO_TYPE_PEER_QUERY:     return connection_do_query(conn, req);
        case PROTO_TYPE_PEER_RESET:     return connection_do_reset(conn, req);
        case PROTO_TYPE_HANDLE_RELEASE: return connection_do_release(conn, req);
        case PROTO_TYPE_HANDLE_TRANSFER: return connection_do_transfer(conn, req);
        case PROTO_TYPE_NODES_DESTROY:  return connection_do_destroy(conn, req);
        case PROTO_TYPE_SLICE_RELEASE:  return connection_do_slice_release(conn, req);
        case PROTO_TYPE_SLICE_FDS:      return connection_do_slice_fds(conn, req);
        case PROTO_TYPE_SEND:           return connection_do_send(conn, req);
        case PROTO_TYPE_RECV:           return connection_do_recv(conn, req);
        case PROTO_TYPE_CTL_STATUS:
        case PROTO_TYPE_CTL_PEERS:
        case PROTO_TYPE_CTL_PEER:
        case PROTO_TYPE_CTL_QUOTA:
        case PROTO_TYPE_CTL_METRICS:    return connection_do_ctl(conn, req);
        case PROTO_TYPE_CTL_MONITOR:    return connection_do_monitor(conn, req);
        default:                        return -ENOTTY; /* a type of a later version */
        }
}

void connection_dispatch_request(Connection *conn, const ProtoHeader *hdr,
                                        const void *buf, size_t len, int *fds,
                                        size_t n_fds) {
        Request req = { .buf = buf, .len = len, .fds = fds, .n_fds = n_fds,
                        .cookie = hdr->cookie };
        int r;

        r = connection_admit(conn, hdr->type);
        if (r == 0)
                r = connection_handle(conn, hdr->type, &req);
        if (r == CONNECTION_REPLIED)
                return;
        if (proto_error_is_fatal(r)) {
                connection_fail(conn);
                return;
        }
        connection_push_dirty(conn->broker, conn);
        connection_reply_error(conn, req.cookie, r < 0 ? -r : 0);
}
