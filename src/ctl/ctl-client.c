/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CtlClient: bus1ctl's connection to the broker
 *
 * Blocking I/O on one SOCK_SEQPACKET socket. A control reply is assembled
 * from the CTL_DATA records that carry the request's cookie, up to
 * PROTO_CTL_BYTES_MAX, and must add up to exactly what the REPLY says.
 * Nothing the broker sends is trusted beyond what src/proto checked.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "ctl/ctl-client.h"
#include "util/macro.h"
#include "util/scm.h"
#include "util/unix-address.h"

/**
 * ctl_client_connect() - connect to the broker's socket
 * @client:     client, CTL_CLIENT_NULL
 * @path:       socket path
 *
 * Return: 0, -ENAMETOOLONG, -ENOMEM, or the errno of socket(2) or
 *         connect(2).
 */
int ctl_client_connect(CtlClient *client, const char *path) {
        struct sockaddr_un sa;
        socklen_t salen;
        int r;

        r = unix_address(&sa, path, &salen);
        if (r < 0)
                return r;

        client->rx = malloc(PROTO_RECORD_MAX + 8);
        if (!client->rx)
                return -ENOMEM;
        client->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (client->fd < 0) {
                r = -errno;
                ctl_client_close(client);
                return r;
        }
        if (connect(client->fd, (struct sockaddr *)&sa, salen) < 0) {
                r = -errno;
                ctl_client_close(client);
                return r;
        }
        return 0;
}

/**
 * ctl_client_close() - close the connection
 * @client:     client
 */
void ctl_client_close(CtlClient *client) {
        client->fd = safe_close(client->fd);
        free(client->rx);
        client->rx = NULL;
}

/*
 * Receive one record and its header. No record the broker sends a control
 * connection carries fds, so any fd is a violation (and is closed).
 * Return: its length, -ECONNRESET on EOF, -EINTR, -EBADMSG, or -errno.
 */
static ssize_t ctl_client_recv(CtlClient *client, ProtoHeader *hdr) {
        int fds[SCM_FDS_MAX];
        size_t n_fds = 0;
        int msg_flags = 0, r;
        ssize_t l;

        l = scm_recv(client->fd, client->rx, PROTO_RECORD_MAX + 8, 0, fds, SCM_FDS_MAX,
                     &n_fds, &msg_flags);
        for (size_t i = 0; i < n_fds; ++i)
                safe_close(fds[i]);
        if (l < 0)
                return l;
        if (l == 0)
                return -ECONNRESET;
        if (n_fds || (msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
                return -EBADMSG;
        r = proto_decode_header(hdr, client->rx, (size_t)l);
        if (r < 0)
                return r;
        return l;
}

static int ctl_client_send(CtlClient *client, const void *buf, size_t len) {
        int r;

        do
                r = scm_send(client->fd, buf, len, NULL, 0, 0);
        while (r == -EINTR);
        return r;
}

/* read the body and the reply of the request just sent */
static int ctl_client_read_reply(CtlClient *client, char **bodyp, size_t *lenp,
                                 uint32_t *formatp, uint32_t *flagsp) {
        _cleanup_(freep) char *body = NULL;
        size_t n_body = 0;
        ProtoReplyCtl reply;
        ProtoHeader hdr;
        ssize_t l;
        int r;

        for (;;) {
                l = ctl_client_recv(client, &hdr);
                if (l == -EINTR)
                        continue;
                if (l < 0)
                        return (int)l;

                if (hdr.type == PROTO_TYPE_CTL_DATA) {
                        ProtoCtlData data;
                        char *p;

                        r = proto_decode_ctl_data(&data, client->rx, (size_t)l, 0);
                        if (r < 0 || data.cookie != client->cookie ||
                            n_body + data.n_bytes > PROTO_CTL_BYTES_MAX)
                                return -EBADMSG;
                        p = realloc(body, n_body + data.n_bytes + 1);
                        if (!p)
                                return -ENOMEM;
                        body = p;
                        memcpy(body + n_body, data.bytes, data.n_bytes);
                        n_body += data.n_bytes;
                        body[n_body] = 0;
                        continue;
                }
                if (hdr.type != PROTO_TYPE_REPLY)
                        return -EBADMSG;
                r = proto_decode_reply_ctl(&reply, client->rx, (size_t)l, 0);
                if (r < 0 || reply.cookie != client->cookie)
                        return -EBADMSG;
                if (reply.error)
                        return n_body ? -EBADMSG : -(int)reply.error;
                if (reply.n_bytes != n_body)
                        return -EBADMSG;
                break;
        }

        if (bodyp)
                *bodyp = TAKE_PTR(body);
        if (lenp)
                *lenp = n_body;
        if (formatp)
                *formatp = reply.format;
        if (flagsp)
                *flagsp = reply.flags;
        return 0;
}

/**
 * ctl_client_request() - one control request and its reply
 * @client:     connected client
 * @req:        the request: type STATUS, PEERS, PEER, QUOTA or METRICS, its
 *              flags and arg (its cookie is set here)
 * @bodyp:      out: the body, NUL-terminated, to free() (NULL if empty)
 * @lenp:       out: its length
 * @formatp:    out: PROTO_CTL_FORMAT_*
 * @flagsp:     out: PROTO_CTL_REPLY_FLAG_*
 *
 * Return: 0; the broker's error (-ENXIO, -EPERM, -ENOTTY from a broker
 *         that does not know the request, -EINVAL from one that does not
 *         know a flag, ...); -EBADMSG for a reply that breaks the protocol;
 *         -ECONNRESET if the broker closed; -errno.
 */
int ctl_client_request(CtlClient *client, const ProtoCtl *req, char **bodyp, size_t *lenp,
                       uint32_t *formatp, uint32_t *flagsp) {
        uint8_t buf[PROTO_SIZE_CTL];
        ProtoCtl sent = *req;
        int r;

        sent.cookie = ++client->cookie;
        r = proto_encode_ctl(buf, sizeof(buf), &sent);
        if (r < 0)
                return r;
        r = ctl_client_send(client, buf, (size_t)r);
        if (r < 0)
                return r;
        return ctl_client_read_reply(client, bodyp, lenp, formatp, flagsp);
}

/**
 * ctl_client_call() - one control request without flags, and its reply
 * @client:     connected client
 * @type:       PROTO_TYPE_CTL_STATUS, _PEERS, _PEER, _QUOTA or _METRICS
 * @arg:        PEER: the peer ID; QUOTA: a UID or PROTO_CTL_UID_ALL; else 0
 * @bodyp:      out: the body, NUL-terminated, to free() (NULL if empty)
 * @lenp:       out: its length
 * @formatp:    out: PROTO_CTL_FORMAT_*
 * @flagsp:     out: PROTO_CTL_REPLY_FLAG_*
 *
 * Return: as ctl_client_request().
 */
int ctl_client_call(CtlClient *client, uint16_t type, uint64_t arg, char **bodyp,
                    size_t *lenp, uint32_t *formatp, uint32_t *flagsp) {
        ProtoCtl req = {
                .type = type,
                .arg = arg,
        };

        return ctl_client_request(client, &req, bodyp, lenp, formatp, flagsp);
}

/**
 * ctl_client_monitor() - turn the connection into a monitor
 * @client:     connected client
 * @filter:     what to see (its cookie is set here)
 *
 * Return: 0, the broker's error (-EBUSY: too many monitors), -EBADMSG,
 *         -ECONNRESET, -errno.
 */
int ctl_client_monitor(CtlClient *client, const ProtoCtlMonitor *filter) {
        uint8_t buf[PROTO_SIZE_CTL_MONITOR];
        ProtoCtlMonitor req = *filter;
        uint32_t format;
        size_t len;
        int r;

        req.cookie = ++client->cookie;
        r = proto_encode_ctl_monitor(buf, sizeof(buf), &req);
        if (r < 0)
                return r;
        r = ctl_client_send(client, buf, (size_t)r);
        if (r < 0)
                return r;
        r = ctl_client_read_reply(client, NULL, &len, &format, NULL);
        if (r < 0)
                return r;
        return format == PROTO_CTL_FORMAT_NONE && len == 0 ? 0 : -EBADMSG;
}

/**
 * ctl_client_read_events() - wait for the next EVENTS record
 * @client:     a monitor
 * @events:     out: room for PROTO_EVENTS_MAX events
 * @n_eventsp:  out: how many arrived
 *
 * Return: 0, -EINTR if a signal came first, -ECONNRESET if the broker
 *         closed, -EBADMSG, -errno.
 */
int ctl_client_read_events(CtlClient *client, ProtoEvent *events, size_t *n_eventsp) {
        ProtoEvents e;
        ProtoHeader hdr;
        ssize_t l;
        int r;

        l = ctl_client_recv(client, &hdr);
        if (l < 0)
                return (int)l;
        if (hdr.type != PROTO_TYPE_EVENTS)
                return -EBADMSG;
        r = proto_decode_events(&e, client->rx, (size_t)l, 0);
        if (r < 0)
                return -EBADMSG;
        for (size_t i = 0; i < e.n_events; ++i)
                proto_event_at(&events[i], &e, i);
        *n_eventsp = e.n_events;
        return 0;
}
