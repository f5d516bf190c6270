/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Connection: one client socket, and the peer it is (the transport)
 *
 * The socket is edge-triggered in the broker's epoll: a connection that
 * reported input takes turns (broker/scheduler.h), reading one record per
 * turn, until a read finds nothing. A record is either an FDS carrier,
 * whose fds are parked (and charged) until their record comes, or a
 * request, handed with its fds to connection_dispatch_request()
 * (requests.c). What cannot be written at once waits in the output queue;
 * while that holds CONNECTION_OUT_MAX bytes, the connection takes no turns
 * (nothing is read until the client reads). The mirror of the peer's queue
 * in the client is mirror.c.
 *
 * Invariants:
 *  - every fd received is either stored in the model (FdList), parked and
 *    charged (carriers), or closed before the dispatch of its record ends,
 *    on the closing thread (util/closer.h): never in the event loop;
 *  - n_out_bytes is the size of the output queue, and is charged to the
 *    peer's user (n_out_bytes) as well;
 *  - a dead connection is ready in the scheduler, and freed at its turn,
 *    never in the middle of another connection's request.
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

typedef struct OutRecord {
        List link;
        FdList *fds;            /* fds to attach (a reference) */
        int own_fd;             /* or one fd owned by the record */
        size_t n_fds_sent;      /* of those, sent ahead on carriers already */
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
void connection_fail(Connection *conn) {
        conn->dead = true;
        sched_entry_ready(&conn->broker->sched, &conn->sched);
}

/*
 * Input is edge-triggered: a connection that may have a record waiting
 * (rx_ready) takes turns until a read finds none, except while its output
 * backlog is full (it takes none then: nothing is read until the client
 * reads). EPOLLOUT is watched only while something waits to be written.
 */
void connection_update_events(Connection *conn) {
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

/* a PUSH_FDS carrier (ScmCarrierEncode) */
static int connection_carrier(void *buf, size_t size, size_t n_fds) {
        ProtoFds f = { .type = PROTO_TYPE_PUSH_FDS, .n_fds = (uint32_t)n_fds };

        return proto_encode_fds(buf, size, &f);
}

/*
 * Write a record now, with its fds (more than fit one packet go ahead on
 * PUSH_FDS carriers, scm_send_carried()). @n_sentp (or NULL: none) counts
 * the fds that carriers took already, also across calls for the same
 * record. Return: 0 written, -EAGAIN socket full (the record is not
 * written; carriers that went out are counted), other negative errno: the
 * connection is broken.
 */
int connection_write_now(Connection *conn, const void *data, size_t len, const int *fds,
                         size_t n_fds, size_t *n_sentp) {
        return scm_send_carried(conn->fd, data, len, fds, n_fds, connection_carrier,
                                MSG_DONTWAIT, n_sentp);
}

/*
 * Send a record, in order after everything queued before. What cannot be
 * written now is queued. The record takes over @fds (a reference) and
 * @own_fd either way.
 */
void connection_write(Connection *conn, const void *data, size_t len, FdList *fds,
                             int own_fd) {
        size_t n_sent = 0;
        OutRecord *rec;
        int r = -EAGAIN;

        if (conn->dead)
                goto drop;

        if (list_is_empty(&conn->out)) {
                if (own_fd >= 0)
                        r = connection_write_now(conn, data, len, &own_fd, 1, &n_sent);
                else
                        r = connection_write_now(conn, data, len, fds ? fds->fds : NULL,
                                                 fds ? fds->n_fds : 0, &n_sent);
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
        rec->n_fds_sent = n_sent;
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
                        r = connection_write_now(conn, rec->data, rec->len, &rec->own_fd, 1,
                                                 &rec->n_fds_sent);
                else
                        r = connection_write_now(conn, rec->data, rec->len,
                                                 rec->fds ? rec->fds->fds : NULL,
                                                 rec->fds ? rec->fds->n_fds : 0,
                                                 &rec->n_fds_sent);
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

/* fds a client sent: closing one may block (a FUSE file), so the closer does it */
void connection_close_fds(int *fds, size_t n_fds) {
        for (size_t i = 0; i < n_fds; ++i) {
                closer_close(fds[i]);
                fds[i] = -1;
        }
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
