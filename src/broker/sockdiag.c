/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Sockdiag: which socket is the other end of an AF_UNIX socket
 *
 * One netlink round trip per query, on a socket opened for the query: a
 * HANDLE_TRANSFER to another peer is rare enough that keeping a netlink
 * socket open for it is not worth a descriptor.
 */

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "broker/sockdiag.h"
#include "util/macro.h"

/**
 * sockdiag_peer_inode() - the inode of the peer of an AF_UNIX socket
 * @fd:         a connected AF_UNIX socket
 * @inodep:     out: the inode of the socket it is connected to
 *
 * Return: 0, -EOPNOTSUPP if @fd is not a connected AF_UNIX socket, or the
 *         errno of the netlink exchange.
 */
int sockdiag_peer_inode(int fd, uint64_t *inodep) {
        _cleanup_(closep) int nl = -1;
        struct {
                struct nlmsghdr nlh;
                struct unix_diag_req req;
        } request = {
                .nlh = {
                        .nlmsg_len = sizeof(request),
                        .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                        .nlmsg_flags = NLM_F_REQUEST,
                        .nlmsg_seq = 1,
                },
                .req = {
                        .sdiag_family = AF_UNIX,
                        .udiag_states = ~0U,
                        .udiag_show = UDIAG_SHOW_PEER,
                        .udiag_cookie = { ~0U, ~0U },
                },
        };
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
        union {
                struct nlmsghdr nlh;
                uint8_t bytes[4096];
        } reply;
        socklen_t dlen = sizeof(int);
        int domain = 0;
        struct stat st;
        ssize_t len;

        /*
         * A client's fd: fstat(2) of a FUSE file asks its server and may
         * wait for ever. Only a socket's is answered by the kernel alone,
         * and getsockopt(2) tells a socket without asking any file system.
         */
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) < 0)
                return errno == ENOTSOCK ? -EOPNOTSUPP : -errno;
        if (domain != AF_UNIX)
                return -EOPNOTSUPP;
        if (fstat(fd, &st) < 0)
                return -errno;
        request.req.udiag_ino = (uint32_t)st.st_ino;

        nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (nl < 0)
                return -errno;
        if (sendto(nl, &request, sizeof(request), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;

        len = recv(nl, &reply, sizeof(reply), 0);
        if (len < 0)
                return -errno;

        for (struct nlmsghdr *h = &reply.nlh; NLMSG_OK(h, (size_t)len); h = NLMSG_NEXT(h, len)) {
                struct unix_diag_msg *msg;
                struct rtattr *attr;
                size_t attrlen;

                if (h->nlmsg_type == NLMSG_ERROR) {
                        struct nlmsgerr *err = NLMSG_DATA(h);

                        return err->error ? (err->error == -ENOENT ? -EOPNOTSUPP : err->error)
                                          : -EOPNOTSUPP;
                }
                if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
                        continue;

                msg = NLMSG_DATA(h);
                if (msg->udiag_ino != request.req.udiag_ino)
                        continue;

                attrlen = h->nlmsg_len - NLMSG_LENGTH(sizeof(*msg));
                for (attr = (struct rtattr *)(msg + 1); RTA_OK(attr, attrlen);
                     attr = RTA_NEXT(attr, attrlen)) {
                        uint32_t peer;

                        if (attr->rta_type != UNIX_DIAG_PEER ||
                            RTA_PAYLOAD(attr) < sizeof(peer))
                                continue;
                        memcpy(&peer, RTA_DATA(attr), sizeof(peer));
                        *inodep = peer;
                        return 0;
                }
        }
        return -EOPNOTSUPP;
}
