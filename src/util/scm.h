/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Scm: one packet with file descriptors over an AF_UNIX socket
 *
 * The single place where a packet and its SCM_RIGHTS are put together and
 * taken apart, for the broker and the client library alike. scm_recv()
 * always uses MSG_CMSG_CLOEXEC and hands back every fd that arrived (closing
 * those beyond the caller's array), so no error path can leak one.
 * scm_send_batch() writes several packets without fds in one system call.
 * scm_send_carried() sends a record with more fds than one packet carries:
 * the excess goes ahead on carrier packets, which the caller encodes (the
 * carrier is a record of the caller's protocol; this file knows none).
 */

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* fds one sendmsg() may carry (the kernel's SCM_MAX_FD) */
#define SCM_FDS_MAX 253U
/* packets one scm_send_batch() writes at most */
#define SCM_BATCH_MAX 64U
/* bytes of one carrier packet (scm_send_carried()) at most */
#define SCM_CARRIER_SIZE_MAX 64U

/*
 * Write into @buf (@size bytes) the carrier packet that goes ahead of a
 * record and takes @n_fds (1..SCM_FDS_MAX) of its fds. Return: the packet's
 * length, or a negative errno.
 */
typedef int (*ScmCarrierEncode)(void *buf, size_t size, size_t n_fds);

int scm_send(int fd, const void *data, size_t len, const int *fds, size_t n_fds, int flags);
int scm_send_batch(int fd, const struct iovec *packets, size_t n, int flags);
int scm_send_carried(int fd, const void *data, size_t len, const int *fds, size_t n_fds,
                     ScmCarrierEncode encode_carrier, int flags, size_t *n_sentp);
ssize_t scm_recv(int fd, void *buf, size_t size, int flags, int *fds, size_t max_fds,
                 size_t *n_fdsp, int *msg_flagsp);
