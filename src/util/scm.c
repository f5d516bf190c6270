/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Scm: one packet with file descriptors over an AF_UNIX socket
 *
 * Invariant: after scm_recv() returns, every fd the kernel installed for
 * the packet is either in the caller's array or closed.
 */

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include "util/closer.h"
#include "util/macro.h"
#include "util/scm.h"

/**
 * scm_send() - send one packet, with up to SCM_FDS_MAX fds
 * @fd:         socket
 * @data:       the packet
 * @len:        its length
 * @fds:        fds to attach (duplicated by the kernel)
 * @n_fds:      their number, at most SCM_FDS_MAX
 * @flags:      sendmsg(2) flags (MSG_NOSIGNAL is always added)
 *
 * Return: 0, or the negative errno of sendmsg(2) (-EINVAL for too many
 *         fds).
 */
int scm_send(int fd, const void *data, size_t len, const int *fds, size_t n_fds, int flags) {
        union {
                struct cmsghdr cmsg;
                uint8_t buf[CMSG_SPACE(sizeof(int) * SCM_FDS_MAX)];
        } control;
        struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (n_fds > SCM_FDS_MAX)
                return -EINVAL;
        /* send(2) spares the kernel importing a msghdr and an iovec */
        if (!n_fds)
                return send(fd, data, len, flags | MSG_NOSIGNAL) < 0 ? -errno : 0;

        memset(&control, 0, sizeof(control));
        msg.msg_control = &control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        control.cmsg.cmsg_level = SOL_SOCKET;
        control.cmsg.cmsg_type = SCM_RIGHTS;
        control.cmsg.cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(&control.cmsg), fds, sizeof(int) * n_fds);
        if (sendmsg(fd, &msg, flags | MSG_NOSIGNAL) < 0)
                return -errno;
        return 0;
}

/**
 * scm_send_batch() - send packets without fds, in order, in one system call
 * @fd:         socket
 * @packets:    one iovec per packet
 * @n:          how many, at most SCM_BATCH_MAX
 * @flags:      send flags (MSG_NOSIGNAL is added)
 *
 * Return: how many packets were sent (fewer than @n when the socket filled
 *         up after the first), or a negative errno if none was (-EAGAIN: the
 *         socket is full).
 */
int scm_send_batch(int fd, const struct iovec *packets, size_t n, int flags) {
        struct mmsghdr msgs[SCM_BATCH_MAX];
        int r;

        if (n > SCM_BATCH_MAX)
                return -EINVAL;
        if (n == 0)
                return 0;
        for (size_t i = 0; i < n; ++i)
                msgs[i] = (struct mmsghdr){
                        .msg_hdr = { .msg_iov = (struct iovec *)&packets[i], .msg_iovlen = 1 },
                };
        r = sendmmsg(fd, msgs, (unsigned int)n, flags | MSG_NOSIGNAL);
        return r < 0 ? -errno : r;
}

/*
 * One packet of scm_send_carried(). Without MSG_DONTWAIT it waits while the
 * socket is full, even if its owner made it non-blocking: a record whose
 * carriers went out must follow them.
 */
static int scm_send_one(int fd, const void *data, size_t len, const int *fds, size_t n_fds,
                        int flags) {
        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLOUT };
                int r = scm_send(fd, data, len, fds, n_fds, flags);

                if (r == -EINTR)
                        continue;
                if (r != -EAGAIN || (flags & MSG_DONTWAIT))
                        return r;
                if (poll(&p, 1, -1) < 0 && errno != EINTR)
                        return -errno;
        }
}

/**
 * scm_send_carried() - send a record with any number of fds
 * @fd:         socket
 * @data:       the record
 * @len:        its length
 * @fds:        fds to attach (duplicated by the kernel), in order
 * @n_fds:      their number
 * @encode_carrier: writes a carrier packet (see ScmCarrierEncode)
 * @flags:      send flags (MSG_NOSIGNAL is added)
 * @n_sentp:    in/out: how many of @fds already went out on carriers of an
 *              earlier, interrupted call for this record (they are not sent
 *              again), or NULL for none
 *
 * The record carries the last SCM_FDS_MAX fds at most; the ones before go
 * ahead, in order, on as many carrier packets as needed (SCM_FDS_MAX each,
 * but the first, which takes the remainder), so a receiver that puts the
 * carriers' fds ahead of the record's gets @fds back in order. Without
 * MSG_DONTWAIT every packet is waited for (interrupted sends are retried).
 *
 * Return: 0, or a negative errno: the encoder's, or sendmsg(2)'s. With
 *         MSG_DONTWAIT, -EAGAIN says the socket is full: the carriers that
 *         went out are counted in *@n_sentp, and the next call for the
 *         same record goes on from there.
 */
int scm_send_carried(int fd, const void *data, size_t len, const int *fds, size_t n_fds,
                     ScmCarrierEncode encode_carrier, int flags, size_t *n_sentp) {
        uint8_t carrier[SCM_CARRIER_SIZE_MAX] __attribute__((__aligned__(8)));
        size_t n_sent = n_sentp ? *n_sentp : 0;
        int r;

        if (n_sent > n_fds)
                return -EINVAL;
        /* never an offset on a NULL array (none has fds to skip) */
        if (n_sent) {
                fds += n_sent;
                n_fds -= n_sent;
        }

        while (n_fds > SCM_FDS_MAX) {
                size_t n = MIN(n_fds - SCM_FDS_MAX, (size_t)SCM_FDS_MAX);

                r = encode_carrier(carrier, sizeof(carrier), n);
                if (r < 0)
                        return r;
                r = scm_send_one(fd, carrier, (size_t)r, fds, n, flags);
                if (r < 0)
                        return r;
                fds += n;
                n_fds -= n;
                if (n_sentp)
                        *n_sentp += n;
        }
        return scm_send_one(fd, data, len, fds, n_fds, flags);
}

/**
 * scm_recv() - receive one packet and its fds
 * @fd:         socket
 * @buf:        buffer for the packet
 * @size:       its size
 * @flags:      recvmsg(2) flags (MSG_CMSG_CLOEXEC is always added)
 * @fds:        array for the fds that arrived
 * @max_fds:    its size; fds beyond it are closed
 * @n_fdsp:     out: number of fds stored in @fds
 * @msg_flagsp: out: the packet's msg_flags (MSG_TRUNC, MSG_CTRUNC)
 *
 * Return: the packet length (0 at end of stream, or for an empty packet),
 *         or the negative errno of recvmsg(2), with no fd stored.
 */
ssize_t scm_recv(int fd, void *buf, size_t size, int flags, int *fds, size_t max_fds,
                 size_t *n_fdsp, int *msg_flagsp) {
        union {
                struct cmsghdr cmsg;
                uint8_t buf[CMSG_SPACE(sizeof(int) * SCM_FDS_MAX)];
        } control;
        struct iovec iov = { .iov_base = buf, .iov_len = size };
        struct msghdr msg = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        size_t n_fds = 0;
        ssize_t l;

        l = recvmsg(fd, &msg, flags | MSG_CMSG_CLOEXEC);
        if (l < 0) {
                *n_fdsp = 0;
                return -errno;
        }

        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
                size_t n;

                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < n; ++i) {
                        int f;

                        memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (n_fds < max_fds)
                                fds[n_fds++] = f;
                        else
                                closer_close(f);        /* a sender's: may block */
                }
        }
        *n_fdsp = n_fds;
        *msg_flagsp = msg.msg_flags;
        return l;
}
