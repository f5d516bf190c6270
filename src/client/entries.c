/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Entries: what the broker pushed to a client, buffered until received
 *
 * The broker pushes every entry queued on the peer. While the library
 * waits for a reply it reads those pushes into client->entries, and a RECV
 * answers from there, or from the next record in the socket, without
 * asking the broker. Locally dequeued entries are reported with one ACK
 * (in the release ring, else a record) ahead of the next request, which is
 * before anything else this peer does can depend on them. A RECV goes to
 * the broker when the broker must act at the moment of the dequeue: the
 * seed, fds to install, entries marked SYNC, and when nothing is buffered
 * or in the socket (the broker may hold entries it could not push yet).
 *
 * Invariants:
 *  - client->entries holds pushed entries in queue order, all with ids
 *    above dequeued_upto; the first one is the peer's next entry;
 *  - acked <= dequeued_upto: every id up to acked has been reported to the
 *    broker (ring or ACK record), and one ACK reports all below it;
 *  - whenever client->entries is not empty, the socket is readable: the
 *    records in it were read while waiting for a reply, and the broker
 *    follows such a reply with a WAKE, which the call waits for
 *    (entries_await_wake()); a RECV never reads the last record of the
 *    socket unless it dequeues what it read (it peeks otherwise). A
 *    caller polling the descriptor (event.c) therefore never misses an
 *    entry the buffer holds;
 *  - the fds of every record read are installed (O_CLOEXEC) and either
 *    handed to the caller or closed.
 */

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include "client/client.h"
#include "client/entries.h"
#include "util/macro.h"

static ProtoEntry *entries_at(Entries *entries, size_t i) {
        return &entries->ring[(entries->head + i) % entries->cap];
}

static ProtoEntry *entries_front(Entries *entries) {
        return entries->n ? entries_at(entries, 0) : NULL;
}

static void entries_pop_front(Entries *entries) {
        entries->head = (entries->head + 1) % entries->cap;
        --entries->n;
}

static int entries_push_back(Entries *entries, const ProtoEntry *e) {
        if (entries->n == entries->cap) {
                size_t cap = entries->cap ? entries->cap * 2 : 16;
                ProtoEntry *ring = malloc(cap * sizeof(*ring));

                if (!ring)
                        return -ENOMEM;
                for (size_t i = 0; i < entries->n; ++i)
                        ring[i] = *entries_at(entries, i);
                free(entries->ring);
                entries->ring = ring;
                entries->cap = cap;
                entries->head = 0;
        }
        *entries_at(entries, entries->n++) = *e;
        return 0;
}

/* drop an entry the broker withdrew; fix its predecessor's CONTINUE */
static void entries_retract(Entries *entries, const ProtoRetract *retract) {
        size_t i;

        for (i = 0; i < entries->n; ++i)
                if (entries_at(entries, i)->entry_id == retract->entry_id)
                        break;
        if (i == entries->n)
                return;

        if (i > 0) {
                ProtoMessage *prev = &entries_at(entries, i - 1)->msg;

                if (retract->flags & PROTO_RETRACT_FLAG_PREV_CONTINUES)
                        prev->flags |= BUS1_MSG_FLAG_CONTINUE;
                else
                        prev->flags &= ~(uint64_t)BUS1_MSG_FLAG_CONTINUE;
        }
        for (; i + 1 < entries->n; ++i)
                *entries_at(entries, i) = *entries_at(entries, i + 1);
        --entries->n;
}

/**
 * entries_handle_push() - act on a record the broker pushed
 * @client:     client
 * @pkt:        the record (ENTRY, RETRACT, RESYNC or WAKE), read by the
 *              transport; its fds stay the caller's to close
 *
 * An ENTRY is buffered unless a RECV round trip dequeued it already; a
 * RETRACT drops one buffered entry, a RESYNC all of them; a WAKE does
 * nothing (reading it was the point).
 *
 * Return: 0, -ENOMEM, or -EBADMSG for any other record, a malformed one,
 *         or one whose fds were cut off: the caller breaks the connection.
 */
int entries_handle_push(Client *client, const ClientPacket *pkt) {
        ProtoRetract retract;
        ProtoEntry e;
        int r;

        if (pkt->fds_lost)
                return -EBADMSG;

        switch (pkt->hdr.type) {
        case PROTO_TYPE_ENTRY:
                r = proto_decode_entry(&e, pkt->data, pkt->len, pkt->n_fds);
                if (r < 0)
                        return r;
                /* a copy of what a RECV round trip already dequeued */
                if (e.entry_id <= client->dequeued_upto)
                        return 0;
                return entries_push_back(&client->entries, &e);
        case PROTO_TYPE_RETRACT:
                r = proto_decode_retract(&retract, pkt->data, pkt->len, pkt->n_fds);
                if (r < 0)
                        return r;
                entries_retract(&client->entries, &retract);
                return 0;
        case PROTO_TYPE_RESYNC:
                r = proto_decode_resync(pkt->data, pkt->len, pkt->n_fds);
                if (r < 0)
                        return r;
                entries_drop(client);
                return 0;
        case PROTO_TYPE_WAKE:
                return proto_decode_wake(pkt->data, pkt->len, pkt->n_fds);
        default:
                return -EBADMSG;
        }
}

/**
 * entries_drop() - forget every buffered entry
 * @client:     client
 *
 * For a new stream (a HELLO, a fork adopting the connection, a RESYNC) and
 * after PEER_DISCONNECT; what the broker still has queued it pushes again.
 */
void entries_drop(Client *client) {
        client->entries.n = 0;
        client->entries.head = 0;
}

/**
 * entries_free() - release the buffer's memory
 * @client:     client being freed
 */
void entries_free(Client *client) {
        free(client->entries.ring);
        client->entries = (Entries){};
}

/**
 * entries_ring_ack() - report local dequeues through the release ring
 * @client:     client
 *
 * Return: true if the broker will know of every one before anything
 *         written after (ring or socket); false if the ring is full or
 *         missing, and an ACK record is needed (entries_flush_ack()).
 */
bool entries_ring_ack(Client *client) {
        if (client->dequeued_upto <= client->acked)
                return true;
        if (!client_ring_push(client, (client->dequeued_upto << 3) | PROTO_RING_ACK))
                return false;
        client->acked = client->dequeued_upto;
        return true;
}

/**
 * entries_flush_ack() - report local dequeues ahead of the next request
 * @client:     client about to send a request
 *
 * Through the ring if it has room (the broker drains it before it reads
 * the request), else with an ACK record.
 *
 * Return: 0, or the error of writing the ACK.
 */
int entries_flush_ack(Client *client) {
        uint8_t buf[PROTO_SIZE_HEADER + 8];
        ProtoAck ack = { .entry_id = client->dequeued_upto };
        int r;

        if (entries_ring_ack(client))
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

/**
 * entries_await_wake() - keep the descriptor readable for buffered entries
 * @client:     client whose call just got its reply
 *
 * The broker follows a reply with a WAKE while the client holds entries it
 * pushed (read while waiting for the reply, so no longer in the socket).
 * Wait for it: when the call returns, the descriptor must poll readable as
 * long as RECV has entries.
 */
void entries_await_wake(Client *client) {
        struct pollfd p = { .fd = client->fd, .events = POLLIN };

        if (!client->entries.n || client->broken)
                return;
        while (poll(&p, 1, -1) < 0 && errno == EINTR)
                ;
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
static int entries_recv_confirm(Client *client, ClientPacket *pkt, uint64_t offset) {
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

/* the broker dequeued @e for a RECV without PEEK or SEED: forget the pushed copy */
static void entries_dequeued_remote(Client *client, const ProtoEntry *e) {
        ProtoEntry *front = entries_front(&client->entries);

        if (front && front->entry_id == e->entry_id)
                entries_pop_front(&client->entries);
        if (e->entry_id > client->dequeued_upto)
                client->dequeued_upto = e->entry_id;
        /* no room to remember it: its release takes the round trip */
        if (e->msg.type == BUS1_MSG_DATA)
                (void)offset_set_add(&client->slices, e->msg.offset);
}

/* hand a RECV reply's entry and fds to the caller (the entry is received either way) */
static int entries_recv_out(ClientRecv *out, const ProtoEntry *e, ClientPacket *pkt) {
        out->entry = *e;
        out->fds = NULL;
        out->n_fds = 0;
        if (!pkt->n_fds)
                return 0;
        out->fds = malloc(pkt->n_fds * sizeof(int));
        if (!out->fds) {
                /* received all the same: the fds are closed, the slice names them */
                client_close_fds(pkt->fds, pkt->n_fds);
                return -ENOMEM;
        }
        memcpy(out->fds, pkt->fds, pkt->n_fds * sizeof(int));
        out->n_fds = pkt->n_fds;
        return 0;
}

/*
 * RECV through the broker. An entry with fds to install is dequeued only
 * once this process holds them all (entries_recv_confirm()).
 */
static int entries_recv_remote(Client *client, uint64_t flags, uint64_t max_offset,
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
        r = proto_decode_reply_recv(&reply, pkt.data, pkt.len, pkt.fds_lost ? 0 : pkt.n_fds);
        if (r < 0) {
                client_close_fds(pkt.fds, pkt.n_fds);
                return client_fail(client, r);
        }
        if (reply.error) {
                entries_await_wake(client);
                return -(int)reply.error;
        }
        if (pkt.n_fds || pkt.fds_lost) {
                r = entries_recv_confirm(client, &pkt, reply.entry.msg.offset);
                if (r < 0) {
                        entries_await_wake(client);
                        return r;
                }
        }

        if (!(flags & BUS1_RECV_FLAG_PEEK) && !(flags & BUS1_RECV_FLAG_SEED))
                entries_dequeued_remote(client, &reply.entry);
        /* only now is it known which buffered entries the broker still has */
        entries_await_wake(client);

        return entries_recv_out(out, &reply.entry, &pkt);
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
static int entries_next(Client *client, bool consume, ProtoEntry *ep, bool *from_socketp) {
        ProtoEntry *front;
        ClientPacket pkt;
        int r;

        for (;;) {
                front = entries_front(&client->entries);
                if (front) {
                        *ep = *front;
                        *from_socketp = false;
                        return 1;
                }

                if (!consume) {
                        r = client_read(client, &pkt, true, true);
                        if (r <= 0)
                                return r == 0 ? 0 : client_fail(client, r);

                        if (pkt.hdr.type == PROTO_TYPE_ENTRY && pkt.n_fds == 0) {
                                r = proto_decode_entry(ep, pkt.data, pkt.len, 0);
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
                        r = entries_handle_push(client, &pkt);
                        client_close_fds(pkt.fds, pkt.n_fds);
                        if (r < 0)
                                return client_fail(client, r);
                } else {
                        /* a stale copy of an entry already dequeued */
                        client_close_fds(pkt.fds, pkt.n_fds);
                }
        }
}

/* dequeue @e locally; the broker learns it from the next ACK */
static int entries_dequeue_local(Client *client, const ProtoEntry *e, bool from_socket) {
        ClientPacket pkt;
        int r;

        if (from_socket) {
                r = client_read(client, &pkt, true, false);
                if (r <= 0)
                        return r == 0 ? client_fail(client, -EBADMSG) : client_fail(client, r);
                client_close_fds(pkt.fds, pkt.n_fds);
        } else {
                entries_pop_front(&client->entries);
        }
        client->dequeued_upto = e->entry_id;
        if (e->msg.type == BUS1_MSG_DATA)
                (void)offset_set_add(&client->slices, e->msg.offset);
        /* tell the broker now, without a system call, if the ring has room */
        (void)entries_ring_ack(client);
        return 0;
}

/* RECV, without the bookkeeping of PEEK (client_recv()) */
static int entries_recv(Client *client, uint64_t flags, uint64_t max_offset, ClientRecv *recvp) {
        ProtoEntry e;
        bool from_socket;
        int r;

        r = client_usable(client);
        if (r < 0)
                return r;
        if (flags & ~(uint64_t)PROTO_RECV_FLAGS)
                return -EINVAL;
        if (flags & BUS1_RECV_FLAG_SEED)
                return entries_recv_remote(client, flags, max_offset, recvp);

        /*
         * A plain dequeue that cannot meet ERANGE reads the entry in one
         * recvmsg(); otherwise it is peeked first (see entries_next()).
         */
        r = entries_next(client, !(flags & BUS1_RECV_FLAG_PEEK) && max_offset >= client->pool_size,
                         &e, &from_socket);
        if (r < 0)
                return r;
        /* nothing here: the broker may hold entries it could not push yet */
        if (r == 0)
                return entries_recv_remote(client, flags, max_offset, recvp);

        if ((e.msg.flags & PROTO_MSG_FLAG_SYNC) ||
            ((flags & BUS1_RECV_FLAG_INSTALL_FDS) && e.msg.n_fds &&
             !(flags & BUS1_RECV_FLAG_PEEK)))
                return entries_recv_remote(client, flags, max_offset, recvp);

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
        return entries_dequeue_local(client, &e, from_socket);
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

        r = entries_recv(client, flags, max_offset, recvp);
        if (r == 0)
                client->peeked = (flags & BUS1_RECV_FLAG_PEEK) &&
                                 recvp->entry.msg.type == BUS1_MSG_DATA
                                         ? recvp->entry.msg.offset : BUS1_OFFSET_INVALID;
        return r;
}
