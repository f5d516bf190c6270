/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Connection: one client socket, and the peer it is
 *
 * One wakeup reads one record: a client almost always has exactly one
 * request outstanding, so reading on until EAGAIN would cost a recvmsg()
 * per request for nothing, and the level-triggered event loop comes back
 * at once for a client that sent more (which also keeps one busy client
 * from starving the others). Each request is decoded, applied to the
 * model, and answered; then the entries it queued are pushed: to the other
 * peers first, then this one's reply, then this peer's own new entries.
 * Writing the others' entries before the reply is what makes side-channel
 * causality hold: when a sender learns its send is done, every receiver's
 * entry is already in that receiver's socket (or, if its socket is full, in
 * the model queue where a RECV round trip finds it).
 *
 * Invariants:
 *  - entries with an id <= push_cursor have been written to the socket;
 *    entries are pushed in queue order and the cursor only moves forward,
 *    except on RESYNC, which pushes everything again;
 *  - pushed entries only disappear from the queue while this connection's
 *    own request runs (see queue_remove() callers), so a RETRACT or RESYNC
 *    always reaches the client before the reply to that request;
 *  - every fd received is either stored in the model (FdList) or closed
 *    before the dispatch of its record ends.
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

/* stop reading requests while this much output waits */
#define CONNECTION_OUT_MAX (1024 * 1024)
/* HELLO replies (two fds each) a client may leave unread */
#define CONNECTION_HELLOS_UNREAD_MAX 8
/* past this many RETRACTs in one request, RESYNC instead */
#define CONNECTION_RETRACTS_MAX 64

typedef struct OutRecord {
        List link;
        FdList *fds;            /* fds to attach (a reference) */
        int own_fd;             /* or one fd owned by the record */
        size_t len;
        uint8_t data[];
} OutRecord;

static OutRecord *out_record_free(OutRecord *rec) {
        list_unlink(&rec->link);
        fdlist_unref(rec->fds);
        safe_close(rec->own_fd);
        free(rec);
        return NULL;
}

/*
 * The connection has to be closed: at its next turn, never in the middle
 * of another connection's request.
 */
static void connection_fail(Connection *conn) {
        conn->dead = true;
        sched_entry_ready(&conn->broker->sched, &conn->sched);
}

/*
 * Input is edge-triggered: a connection that may have a record waiting
 * (rx_ready) takes turns until a read finds none, except while its output
 * backlog is full (it takes none then: nothing is read until the client
 * reads). EPOLLOUT is watched only while something waits to be written.
 */
static void connection_update_events(Connection *conn) {
        uint32_t events = EPOLLIN | EPOLLET;
        Scheduler *sched = &conn->broker->sched;

        if (!list_is_empty(&conn->out) || conn->push_blocked)
                events |= EPOLLOUT;
        if (events != conn->epoll_events) {
                struct epoll_event ev = { .events = events, .data.ptr = conn };

                if (epoll_ctl(conn->broker->epfd, EPOLL_CTL_MOD, conn->fd, &ev) < 0)
                        connection_fail(conn);
                else
                        conn->epoll_events = events;
        }
        if (conn->dead || conn->revents ||
            (conn->rx_ready && conn->n_out_bytes < CONNECTION_OUT_MAX))
                sched_entry_ready(sched, &conn->sched);
        else
                sched_entry_idle(sched, &conn->sched);
}

/* one packet: the record and up to PROTO_PACKET_FDS_MAX fds */
static int connection_sendmsg(Connection *conn, const void *data, size_t len, const int *fds,
                              size_t n_fds) {
        return scm_send(conn->fd, data, len, fds, n_fds, MSG_DONTWAIT);
}

/*
 * Write a record now, with its fds (more than fit one packet go ahead on
 * PUSH_FDS carriers). Return: 0 written, -EAGAIN socket full (nothing
 * written), other negative errno: the connection is broken.
 */
static int connection_write_now(Connection *conn, const void *data, size_t len,
                                const int *fds, size_t n_fds) {
        uint8_t carrier[PROTO_SIZE_FDS];
        int r;

        while (n_fds > PROTO_PACKET_FDS_MAX) {
                size_t n = n_fds - PROTO_PACKET_FDS_MAX < PROTO_PACKET_FDS_MAX
                                   ? n_fds - PROTO_PACKET_FDS_MAX : PROTO_PACKET_FDS_MAX;
                ProtoFds f = { .type = PROTO_TYPE_PUSH_FDS, .n_fds = (uint32_t)n };

                r = proto_encode_fds(carrier, sizeof(carrier), &f);
                if (r < 0)
                        return r;
                r = connection_sendmsg(conn, carrier, (size_t)r, fds, n);
                if (r < 0)
                        return r;
                fds += n;
                n_fds -= n;
        }
        return connection_sendmsg(conn, data, len, fds, n_fds);
}

/*
 * Send a record, in order after everything queued before. What cannot be
 * written now is queued. The record takes over @fds (a reference) and
 * @own_fd either way.
 */
static void connection_write(Connection *conn, const void *data, size_t len, FdList *fds,
                             int own_fd) {
        OutRecord *rec;
        int r = -EAGAIN;

        if (conn->dead)
                goto drop;

        if (list_is_empty(&conn->out)) {
                if (own_fd >= 0)
                        r = connection_write_now(conn, data, len, &own_fd, 1);
                else
                        r = connection_write_now(conn, data, len, fds ? fds->fds : NULL,
                                                 fds ? fds->n_fds : 0);
                if (r == 0)
                        goto drop;
                if (r != -EAGAIN) {
                        connection_fail(conn);
                        goto drop;
                }
        }

        rec = malloc(sizeof(*rec) + len);
        if (!rec) {
                /* a lost record would desynchronise the client */
                log_warning("out of memory; closing connection of peer %llu",
                            (unsigned long long)conn->peer->id);
                connection_fail(conn);
                goto drop;
        }
        memcpy(rec->data, data, len);
        rec->len = len;
        rec->fds = fds;
        rec->own_fd = own_fd;
        list_link_tail(&conn->out, &rec->link);
        conn->n_out_bytes += len;
        conn->peer->user->n_out_bytes += len;
        connection_update_events(conn);
        return;

drop:
        fdlist_unref(fds);
        safe_close(own_fd);
}

/* write out what waits; true if the queue is empty afterwards */
static bool connection_flush_out(Connection *conn) {
        OutRecord *rec;
        int r;

        while ((rec = list_entry(list_first(&conn->out), OutRecord, link))) {
                if (rec->own_fd >= 0)
                        r = connection_write_now(conn, rec->data, rec->len, &rec->own_fd, 1);
                else
                        r = connection_write_now(conn, rec->data, rec->len,
                                                 rec->fds ? rec->fds->fds : NULL,
                                                 rec->fds ? rec->fds->n_fds : 0);
                if (r == -EAGAIN)
                        return false;
                if (r < 0) {
                        connection_fail(conn);
                        return false;
                }
                conn->n_out_bytes -= rec->len;
                conn->peer->user->n_out_bytes -= rec->len;
                out_record_free(rec);
        }
        return true;
}

static void connection_mark_dirty(Connection *conn) {
        if (!list_is_linked(&conn->dirty_link))
                list_link_tail(&conn->broker->dirty, &conn->dirty_link);
}

static void connection_queue_on_push(Queue *queue, QueueEntry *entry, void *userdata) {
        Connection *conn = userdata;

        if (conn->hello)
                connection_mark_dirty(conn);
}

static void connection_queue_on_remove(Queue *queue, QueueEntry *entry, void *userdata) {
        Connection *conn = userdata;
        uint8_t buf[PROTO_SIZE_RETRACT];
        QueueEntry *prev, *next;
        ProtoRetract retract = { .entry_id = entry->id };
        int r;

        if (!conn->hello || entry->id > conn->push_cursor || conn->dequeuing || conn->resync)
                return;

        /* only the peer's own requests withdraw pushed entries */
        if (!conn->own_request || ++conn->n_retracts > CONNECTION_RETRACTS_MAX) {
                conn->resync = true;
                return;
        }

        prev = list_entry(list_prev(&queue->entries, &entry->link), QueueEntry, link);
        next = list_entry(list_next(&queue->entries, &entry->link), QueueEntry, link);
        if (prev && next && prev->seq == next->seq)
                retract.flags |= PROTO_RETRACT_FLAG_PREV_CONTINUES;

        r = proto_encode_retract(buf, sizeof(buf), &retract);
        if (r < 0) {
                conn->resync = true;
                return;
        }
        connection_write(conn, buf, (size_t)r, NULL, -1);
}

static const QueueHooks connection_queue_hooks = {
        .on_push = connection_queue_on_push,
        .on_remove = connection_queue_on_remove,
};

static void connection_entry_to_proto(const PeerRecv *r, ProtoEntry *e) {
        *e = (ProtoEntry){
                .entry_id = r->entry_id,
                .msg = {
                        .type = r->type,
                        .flags = r->flags,
                        .destination = r->destination,
                        .uid = r->creds.uid,
                        .gid = r->creds.gid,
                        .pid = r->creds.pid,
                        .tid = r->creds.tid,
                        .offset = r->offset,
                        .n_bytes = r->n_bytes,
                        .n_handles = r->n_handles,
                        .n_fds = r->n_fds,
                        .n_secctx = r->n_secctx,
                },
        };
}

/*
 * Write encoded entries (@ids their entry IDs) in one system call. Return:
 * true if all went; false if the socket filled up (push_blocked: EPOLLOUT
 * resumes) or broke (the connection fails). push_cursor follows what went.
 */
static bool connection_push_batch(Connection *conn, const struct iovec *packets,
                                  const uint64_t *ids, size_t n) {
        int r;

        r = scm_send_batch(conn->fd, packets, n, MSG_DONTWAIT);
        if (r == -EAGAIN)
                r = 0;
        if (r < 0) {
                connection_fail(conn);
                return false;
        }
        if (r > 0)
                conn->push_cursor = ids[r - 1];
        if ((size_t)r < n) {
                conn->push_blocked = true;
                connection_update_events(conn);
                return false;
        }
        return true;
}

/**
 * connection_push() - write the entries queued since the last push
 * @conn:       connection
 *
 * Writes up to SCM_BATCH_MAX entries per system call, and stops when the
 * socket is full; EPOLLOUT resumes. Entries that stay unpushed are still
 * in the model queue, where a RECV round trip finds them, so a client that
 * does not read costs the broker no memory here.
 */
void connection_push(Connection *conn) {
        uint8_t bufs[SCM_BATCH_MAX][PROTO_SIZE_ENTRY];
        struct iovec packets[SCM_BATCH_MAX];
        uint64_t ids[SCM_BATCH_MAX];
        QueueEntry *entry, *prev;
        Queue *queue = &conn->peer->queue;
        size_t n = 0;
        int r;

        list_unlink(&conn->dirty_link);
        if (!conn->hello || conn->dead || conn->push_blocked || !list_is_empty(&conn->out))
                return;

        /* the first unpushed entry: walk back over the new ones */
        entry = NULL;
        for (prev = list_entry(list_last(&queue->entries), QueueEntry, link);
             prev && prev->id > conn->push_cursor;
             prev = list_entry(list_prev(&queue->entries, &prev->link), QueueEntry, link))
                entry = prev;

        for (; entry; entry = list_entry(list_next(&queue->entries, &entry->link),
                                         QueueEntry, link)) {
                PeerRecv desc;
                ProtoEntry e;

                peer_describe_entry(conn->peer, entry, &desc);
                connection_entry_to_proto(&desc, &e);
                if (peer_entry_needs_sync(conn->peer, entry))
                        e.msg.flags |= PROTO_MSG_FLAG_SYNC;

                r = proto_encode_entry(bufs[n], sizeof(bufs[n]), &e);
                if (r < 0) {
                        log_error("cannot encode entry: %s", strerror(-r));
                        connection_fail(conn);
                        return;
                }
                packets[n] = (struct iovec){ .iov_base = bufs[n], .iov_len = (size_t)r };
                ids[n] = entry->id;
                if (++n == SCM_BATCH_MAX) {
                        if (!connection_push_batch(conn, packets, ids, n))
                                return;
                        n = 0;
                }
        }
        connection_push_batch(conn, packets, ids, n);
}

/**
 * connection_flush_monitor() - write what a monitor has buffered
 * @conn:       connection, a monitor or not
 *
 * Writes EVENTS records while the socket takes them; what it does not take
 * stays in the monitor's ring (which loses events when it is full, never
 * blocks), and EPOLLOUT resumes.
 */
void connection_flush_monitor(Connection *conn) {
        const ProtoEvent *events;
        uint8_t *buf;
        size_t n;
        int r;

        if (!conn->monitor || conn->dead || conn->push_blocked || !list_is_empty(&conn->out))
                return;
        buf = conn->monitor->wire;
        while ((n = monitor_peek(conn->monitor, &events, PROTO_EVENTS_MAX)) > 0) {
                r = proto_encode_events(buf, PROTO_RECORD_MAX, events, n);
                if (r < 0) {
                        log_error("cannot encode events: %s", strerror(-r));
                        connection_fail(conn);
                        return;
                }
                r = connection_write_now(conn, buf, (size_t)r, NULL, 0);
                if (r == -EAGAIN) {
                        conn->push_blocked = true;
                        connection_update_events(conn);
                        return;
                }
                if (r < 0) {
                        connection_fail(conn);
                        return;
                }
                monitor_consume(conn->monitor, n);
        }
}

/* push to every connection with new entries, but @skip, and feed the monitors */
static void connection_push_dirty(Broker *broker, Connection *skip) {
        Connection *conn, *tmp;
        Monitor *monitor;

        list_for_each_entry_safe(conn, tmp, &broker->dirty, dirty_link)
                if (conn != skip)
                        connection_push(conn);
        list_for_each_entry(monitor, &broker->control.monitors, link)
                connection_flush_monitor(monitor->conn);
}

/* answer a request; @fds (a reference) or @own_fd travel with it */
static void connection_reply(Connection *conn, const void *data, size_t len, FdList *fds,
                             int own_fd) {
        uint8_t buf[PROTO_SIZE_HEADER];
        QueueEntry *first;
        int r;

        /*
         * A handle that pushed entries carry was released meanwhile: those
         * entries now need the broker at dequeue (fresh IDs), so they are
         * pushed again, marked SYNC.
         */
        if (conn->peer->n_detached != conn->n_detached_seen) {
                conn->n_detached_seen = conn->peer->n_detached;
                if (conn->hello && conn->push_cursor)
                        conn->resync = true;
        }

        if (conn->resync) {
                /* the client drops what it holds; everything comes again */
                r = proto_encode_resync(buf, sizeof(buf));
                if (r >= 0)
                        connection_write(conn, buf, (size_t)r, NULL, -1);
                conn->push_cursor = 0;
                conn->push_blocked = false;
                connection_mark_dirty(conn);
        }

        /*
         * What this request queued on the peer itself (everything again
         * after a RESYNC) goes ahead of the reply: it must be ready, and the
         * descriptor readable, as soon as the call returns.
         */
        connection_push(conn);
        connection_write(conn, data, len, fds, own_fd);

        /*
         * Entries the client read before this reply and holds: keep the
         * descriptor readable (the client waits for this WAKE).
         */
        first = queue_first(&conn->peer->queue);
        if (first && first->id <= conn->push_cursor) {
                r = proto_encode_wake(buf, sizeof(buf));
                if (r >= 0)
                        connection_write(conn, buf, (size_t)r, NULL, -1);
        }
        conn->resync = false;
        conn->n_retracts = 0;
}

static void connection_reply_error(Connection *conn, uint64_t cookie, int error) {
        uint8_t buf[PROTO_SIZE_REPLY];
        ProtoReply reply = { .cookie = cookie, .error = (uint32_t)error };
        int r;

        r = proto_encode_reply(buf, sizeof(buf), &reply);
        if (r < 0) {
                connection_fail(conn);
                return;
        }
        connection_reply(conn, buf, (size_t)r, NULL, -1);
}

/* fds a client sent: closing one may block (a FUSE file), so the closer does it */
static void connection_close_fds(int *fds, size_t n_fds) {
        for (size_t i = 0; i < n_fds; ++i) {
                closer_close(fds[i]);
                fds[i] = -1;
        }
}

/* HELLO replies found no longer in the socket: their fds are not in flight */
static void connection_forget_hellos(Connection *conn) {
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
static int connection_check_fd(int fd) {
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

/*
 * The client dequeued entries up to @entry_id locally: dequeue them here
 * too. The library never dequeues an entry marked SYNC locally, and an
 * entry that needs SYNC now needed it when it was pushed (fds and the
 * sender's UID do not change, and a handle is detached only by a request of
 * this client, which the ring is drained before). So an ACK covering such
 * an entry is a protocol violation; refusing it also keeps a drain in the
 * middle of another peer's send from dequeuing an entry whose handles would
 * be re-attached to ones that send is staging. Return: 0, or -EBADMSG.
 */
static int connection_apply_ack(Connection *conn, uint64_t entry_id) {
        QueueEntry *entry;
        PeerRecv r;
        int res = 0;

        /* the client can only have dequeued what it was pushed */
        if (entry_id > conn->push_cursor)
                return -EBADMSG;

        conn->dequeuing = true;
        while ((entry = queue_first(&conn->peer->queue)) && entry->id <= entry_id &&
               entry->id <= conn->push_cursor) {
                if (peer_entry_needs_sync(conn->peer, entry)) {
                        res = -EBADMSG;
                        break;
                }
                if (peer_recv(conn->peer, 0, UINT64_MAX, &r) < 0)
                        break;
                peer_recv_deinit(&r);
        }
        conn->dequeuing = false;
        return res;
}

static int connection_handle_ack(Connection *conn, const void *buf, size_t len, size_t n_fds) {
        ProtoAck ack;
        int res;

        res = proto_decode_ack(&ack, buf, len, n_fds);
        if (res < 0)
                return res;
        /* the client dequeued these locally; apply it before its next request */
        return connection_apply_ack(conn, ack.entry_id);
}

/* one value of the release ring */
static int connection_ring_apply(uint64_t value, void *userdata) {
        Connection *conn = userdata;

        /* after PEER_DISCONNECT nothing is left to release */
        if (conn->peer->disconnected)
                return 0;

        switch (value & PROTO_RING_TAG_MASK) {
        case PROTO_RING_RELEASE:
                /* the library only writes slices it received: anything else is a lie */
                return peer_slice_release(conn->peer, value) < 0 ? -EBADMSG : 0;
        case PROTO_RING_ACK:
                if (value >> 3 == 0)
                        return -EBADMSG;
                return connection_apply_ack(conn, value >> 3);
        default:
                return -EBADMSG;
        }
}

/**
 * connection_drain() - apply the client's release ring
 * @conn:       connection
 *
 * Called before each request of the client and through the bus's drain
 * hook (BusDrainFn). A client that broke the ring is shut down: its socket
 * reports a hang-up and the connection is closed at its next turn, never
 * in the middle of another client's request.
 */
void connection_drain(Connection *conn) {
        int r;

        if (conn->ring_broken)
                return;
        r = ring_drain(&conn->ring, connection_ring_apply, conn);
        if (r < 0) {
                log_warning("peer %llu wrote an invalid release ring; closing its connection",
                            (unsigned long long)conn->peer->id);
                conn->ring_broken = true;
                shutdown(conn->fd, SHUT_RDWR);
                connection_fail(conn);
        }
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

static void connection_dispatch_request(Connection *conn, const ProtoHeader *hdr,
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

/* receive one packet; returns its length, 0 on EOF, -EAGAIN, or -errno */
static ssize_t connection_recv(Connection *conn, int *fds, size_t *n_fdsp) {
        int msg_flags = 0;
        ssize_t l;

        /* every fd that arrived is taken before the packet is judged */
        l = scm_recv(conn->fd, conn->broker->rx_buf, conn->broker->rx_size, MSG_DONTWAIT, fds,
                     PROTO_PACKET_FDS_MAX, n_fdsp, &msg_flags);
        if (l < 0)
                return l;
        if ((msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)l > PROTO_RECORD_MAX) {
                connection_close_fds(fds, *n_fdsp);
                *n_fdsp = 0;
                return -EBADMSG;
        }
        return l;
}

/*
 * Park the fds of an FDS carrier until their record comes. They count
 * against the user's fd limit and the broker's descriptor budget as fds in
 * flight do. An AF_UNIX socket is closed at once (no record may pass one,
 * and one naming this very connection would keep it open for ever); its
 * place says CONNECTION_FD_REFUSED. Return: 0, or -EDQUOT (the fds are
 * closed, and the record they were for fails with it).
 */
static int connection_park_fds(Connection *conn, int *fds, size_t n_fds) {
        User *user = conn->peer->user;
        Bus *bus = conn->peer->bus;
        uint64_t n_open = 0;

        for (size_t i = 0; i < n_fds; ++i) {
                if (connection_check_fd(fds[i]) == -EOPNOTSUPP) {
                        closer_close(fds[i]);
                        fds[i] = CONNECTION_FD_REFUSED;
                } else {
                        ++n_open;
                }
        }
        if (user->used[USER_FDS] + user->n_parked_fds + n_open > user->limits.max[USER_FDS] ||
            bus->n_inflight_fds + bus->n_parked_fds + n_open > bus->fd_budget) {
                connection_close_fds(fds, n_fds);
                return -EDQUOT;
        }
        user->n_parked_fds += n_open;
        bus->n_parked_fds += n_open;
        conn->n_parked += n_open;
        memcpy(conn->carried + conn->n_carried, fds, n_fds * sizeof(int));
        conn->n_carried += n_fds;
        return 0;
}

/* the carried fds go to their record (or are closed): no longer parked */
static void connection_unpark_fds(Connection *conn) {
        if (conn->n_parked) {
                conn->peer->user->n_parked_fds -= conn->n_parked;
                conn->peer->bus->n_parked_fds -= conn->n_parked;
        }
        conn->n_parked = 0;
        conn->n_carried = 0;
        conn->carried_error = 0;
        free(conn->carried);
        conn->carried = NULL;
}

/* handle one packet: a carrier, or a request with the carried fds */
static void connection_dispatch_packet(Connection *conn, size_t len, int *pkt_fds,
                                       size_t n_pkt_fds) {
        const uint8_t *buf = conn->broker->rx_buf;
        int *fds = conn->broker->rx_fds;
        ProtoHeader hdr;
        size_t n_fds;
        int r;

        r = proto_decode_header(&hdr, buf, len);
        if (r < 0) {
                connection_close_fds(pkt_fds, n_pkt_fds);
                connection_fail(conn);
                return;
        }

        if (hdr.type == PROTO_TYPE_FDS) {
                ProtoFds f;

                r = proto_decode_fds(&f, buf, len, n_pkt_fds);
                if (r < 0 || conn->n_carried + n_pkt_fds > PROTO_RECORD_FDS_MAX) {
                        connection_close_fds(pkt_fds, n_pkt_fds);
                        connection_fail(conn);
                        return;
                }
                /* only a connection that passes many fds pays for the array */
                if (!conn->carried) {
                        conn->carried = malloc(PROTO_RECORD_FDS_MAX * sizeof(int));
                        if (!conn->carried) {
                                connection_close_fds(pkt_fds, n_pkt_fds);
                                connection_fail(conn);
                                return;
                        }
                }
                if (!conn->carried_error)
                        conn->carried_error = connection_park_fds(conn, pkt_fds, n_pkt_fds);
                else
                        connection_close_fds(pkt_fds, n_pkt_fds);
                return;
        }

        if (conn->n_carried + n_pkt_fds > PROTO_RECORD_FDS_MAX) {
                connection_close_fds(pkt_fds, n_pkt_fds);
                connection_fail(conn);
                return;
        }
        /* a refused carrier: its record fails (a request is answered), nothing else */
        if (conn->carried_error) {
                int error = conn->carried_error;

                connection_close_fds(pkt_fds, n_pkt_fds);
                connection_close_fds(conn->carried, conn->n_carried);
                connection_unpark_fds(conn);
                if (hdr.type != PROTO_TYPE_ACK && proto_check_request_type(hdr.type) == 0)
                        connection_reply_error(conn, hdr.cookie, -error);
                connection_push_dirty(conn->broker, NULL);
                return;
        }
        /* carried fds come first; the request's fds are in one broker-wide array */
        if (conn->n_carried)
                memcpy(fds, conn->carried, conn->n_carried * sizeof(int));
        memcpy(fds + conn->n_carried, pkt_fds, n_pkt_fds * sizeof(int));
        n_fds = conn->n_carried + n_pkt_fds;
        connection_unpark_fds(conn);

        /* what the client released and dequeued before this request comes first */
        connection_drain(conn);

        conn->own_request = true;
        connection_dispatch_request(conn, &hdr, buf, len, fds, n_fds);
        conn->own_request = false;

        /*
         * Replies push the others' entries before and this peer's own
         * entries with the reply (connection_reply()); an unanswered record
         * (ACK) may have queued entries too.
         */
        connection_push_dirty(conn->broker, NULL);

        /* whatever the request did not keep */
        connection_close_fds(fds, n_fds);
}

/**
 * connection_wake() - what epoll reported for the connection's socket
 * @conn:       connection
 * @revents:    the events
 *
 * Only notes them: the connection acts on them at its turn.
 */
void connection_wake(Connection *conn, uint32_t revents) {
        conn->revents |= revents;
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                conn->rx_ready = true;
        sched_entry_ready(&conn->broker->sched, &conn->sched);
}

/* EPOLLOUT: write what waits, then what could not be pushed */
static void connection_resume_output(Connection *conn) {
        if (connection_flush_out(conn)) {
                conn->push_blocked = false;
                connection_push(conn);
                connection_flush_monitor(conn);
        }
}

/* read and apply one record, if one is waiting */
static void connection_serve_one(Connection *conn) {
        int fds[PROTO_PACKET_FDS_MAX];
        size_t n_fds = 0;
        ssize_t l;

        l = connection_recv(conn, fds, &n_fds);
        if (l > 0) {
                connection_dispatch_packet(conn, (size_t)l, fds, n_fds);
        } else if (l == -EAGAIN) {
                conn->rx_ready = false;
        } else if (l != -EINTR) {
                /*
                 * EOF, a reset, or a truncated packet; an empty record
                 * (which reads like EOF) may still have brought fds.
                 */
                connection_close_fds(fds, n_fds);
                connection_fail(conn);
        }
}

/**
 * connection_turn() - the connection's turn: output, then one request
 * @conn:       connection, freed if it is dead by the end of the turn
 */
void connection_turn(Connection *conn) {
        Broker *broker = conn->broker;
        uint32_t revents = conn->revents;

        conn->revents = 0;
        if (revents & EPOLLOUT)
                connection_resume_output(conn);
        if (revents & (EPOLLHUP | EPOLLERR))
                conn->hup = true;

        /*
         * A client that hung up with a full backlog will never read it:
         * nothing more can be done for it.
         */
        if (conn->hup && conn->n_out_bytes >= CONNECTION_OUT_MAX)
                connection_fail(conn);
        if (!conn->dead && conn->rx_ready && conn->n_out_bytes < CONNECTION_OUT_MAX)
                connection_serve_one(conn);
        if (conn->ring_broken)
                connection_fail(conn);

        if (conn->dead) {
                connection_free(conn);
                /* the peer's end may have queued notifications elsewhere */
                connection_push_dirty(broker, NULL);
                return;
        }
        connection_update_events(conn);
}

/*
 * The command line of the connecting process, for bus1ctl: best effort (the
 * process may be gone, or in another PID namespace), at most
 * CONTROL_CMDLINE_MAX bytes, arguments joined by spaces. It is what the
 * process says about itself, never a credential.
 */
static char *connection_read_cmdline(pid_t pid) {
        char path[64], buf[CONTROL_CMDLINE_MAX + 1];
        ssize_t n;
        int fd;

        if (pid <= 0)
                return NULL;
        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return NULL;
        n = read(fd, buf, CONTROL_CMDLINE_MAX);
        safe_close(fd);
        if (n <= 0)
                return NULL;
        while (n > 0 && buf[n - 1] == '\0')
                --n;
        for (ssize_t i = 0; i < n; ++i)
                if (buf[i] == '\0')
                        buf[i] = ' ';
        buf[n] = '\0';
        /* kept for the connection's lifetime: only as long as it is */
        return strdup(buf);
}

/**
 * connection_new() - set up a connection and its peer
 * @connp:      out: the connection
 * @broker:     broker
 * @fd:         accepted socket, owned from now on (closed on failure)
 *
 * Reads the credentials (SO_PEERCRED) and the security label (SO_PEERSEC,
 * where an LSM provides one), creates the peer and its pool.
 *
 * Return: 0, -ENOMEM, or the errno of getsockopt(2), fstat(2), the pool
 *         (-EMFILE when out of descriptors) or sd-event.
 */
int connection_new(Connection **connp, Broker *broker, int fd) {
        Connection *conn;
        struct ucred ucred;
        socklen_t len = sizeof(ucred);
        PeerCreds creds;
        struct stat st;
        int r;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &ucred, &len) < 0 || fstat(fd, &st) < 0) {
                r = -errno;
                safe_close(fd);
                return r;
        }

        conn = calloc(1, sizeof(*conn));
        if (!conn) {
                safe_close(fd);
                return -ENOMEM;
        }
        conn->broker = broker;
        conn->fd = fd;
        conn->inode = st.st_ino;
        list_init(&conn->broker_link);
        list_init(&conn->dirty_link);
        list_init(&conn->out);
        rbnode_init(&conn->inode_node);

        conn->connect_time = clock_now_usec(CLOCK_REALTIME);
        conn->cmdline = connection_read_cmdline(ucred.pid);

        /* one connection is one peer; credentials are those at connect() */
        creds = (PeerCreds){
                .uid = ucred.uid,
                .gid = ucred.gid,
                .pid = (uint32_t)ucred.pid,
                .tid = (uint32_t)ucred.pid,
        };
        r = peer_new(&conn->peer, &broker->bus, &creds);
        if (r < 0)
                goto error;
        queue_set_hooks(&conn->peer->queue, &connection_queue_hooks, conn);
        conn->peer->userdata = conn;

        {
                char label[4096];
                socklen_t l = sizeof(label);

                if (getsockopt(fd, SOL_SOCKET, SO_PEERSEC, label, &l) == 0 && l > 0) {
                        while (l > 0 && label[l - 1] == '\0')
                                --l;
                        conn->peer->secctx = malloc(l ?: 1);
                        if (conn->peer->secctx) {
                                memcpy(conn->peer->secctx, label, l);
                                conn->peer->n_secctx = l;
                        }
                }
        }

        r = sched_entry_attach(&broker->sched, &conn->sched, ucred.uid);
        if (r < 0)
                goto error;
        {
                struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = conn };

                if (epoll_ctl(broker->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                        r = -errno;
                        goto error;
                }
                conn->epoll_events = ev.events;
        }

        list_link_tail(&broker->connections, &conn->broker_link);
        ++broker->n_connections;
        broker_index_connection(broker, conn);

        *connp = conn;
        return 0;

error:
        connection_free(conn);
        return r;
}

/**
 * connection_free() - close a connection; its peer disconnects
 * @conn:       connection, or NULL
 *
 * Return: NULL.
 */
Connection *connection_free(Connection *conn) {
        OutRecord *rec;
        Broker *broker;

        if (!conn)
                return NULL;
        broker = conn->broker;

        /* closed right below: no event can come for it any more */
        if (conn->epoll_events)
                epoll_ctl(broker->epfd, EPOLL_CTL_DEL, conn->fd, NULL);
        sched_entry_detach(&broker->sched, &conn->sched);
        if (list_is_linked(&conn->broker_link)) {
                list_unlink(&conn->broker_link);
                --broker->n_connections;
                broker_unindex_connection(broker, conn);
        }
        list_unlink(&conn->dirty_link);

        conn->monitor = monitor_free(conn->monitor);
        /* parked fds are charged to the peer's user */
        if (conn->carried)
                connection_close_fds(conn->carried, conn->n_carried);
        connection_unpark_fds(conn);
        while ((rec = list_entry(list_first(&conn->out), OutRecord, link))) {
                conn->peer->user->n_out_bytes -= rec->len;
                out_record_free(rec);
        }
        if (conn->peer) {
                connection_forget_hellos(conn);
                queue_set_hooks(&conn->peer->queue, NULL, NULL);
                peer_free(conn->peer);
        }
        ring_deinit(&conn->ring);
        free(conn->cmdline);
        safe_close(conn->fd);
        free(conn);

        broker_connection_closed(broker);
        return NULL;
}
