/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Mirror: the peer's queue as its client sees it
 *
 * Entries are pushed to the client as they are queued (ENTRY records, up
 * to SCM_BATCH_MAX per system call); entries withdrawn by the peer's own
 * request are retracted (RETRACT), or everything is pushed again (RESYNC)
 * when too much changed; WAKE keeps the descriptor readable while the
 * client holds pushed entries; the client's ACKs and its release ring say
 * what it dequeued locally. A request's reply goes out after the entries it
 * queued for other peers: when a sender learns its send is done, every
 * receiver's entry is already in that receiver's socket (or, if its socket
 * is full, in the model queue where a RECV round trip finds it).
 *
 * Invariants:
 *  - entries with an id <= push_cursor have been written to the socket;
 *    entries are pushed in queue order and the cursor only moves forward,
 *    except on RESYNC, which pushes everything again;
 *  - pushed entries only disappear from the queue while this connection's
 *    own request runs (see queue_remove() callers), so a RETRACT or RESYNC
 *    always reaches the client before the reply to that request.
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

void connection_mark_dirty(Connection *conn) {
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

const QueueHooks connection_queue_hooks = {
        .on_push = connection_queue_on_push,
        .on_remove = connection_queue_on_remove,
};

void connection_entry_to_proto(const PeerRecv *r, ProtoEntry *e) {
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
                r = connection_write_now(conn, buf, (size_t)r, NULL, 0, NULL);
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
void connection_push_dirty(Broker *broker, Connection *skip) {
        Connection *conn, *tmp;
        Monitor *monitor;

        list_for_each_entry_safe(conn, tmp, &broker->dirty, dirty_link)
                if (conn != skip)
                        connection_push(conn);
        list_for_each_entry(monitor, &broker->control.monitors, link)
                connection_flush_monitor(monitor->conn);
}

/* answer a request; @fds (a reference) or @own_fd travel with it */
void connection_reply(Connection *conn, const void *data, size_t len, FdList *fds,
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

void connection_reply_error(Connection *conn, uint64_t cookie, int error) {
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

int connection_handle_ack(Connection *conn, const void *buf, size_t len, size_t n_fds) {
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
