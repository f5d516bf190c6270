/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Sockdiag: which socket is the other end of an AF_UNIX socket
 *
 * A client proves that it holds another peer's connection by passing that
 * connection's fd. The broker asks the kernel (NETLINK_SOCK_DIAG,
 * UDIAG_SHOW_PEER) for the inode of the passed socket's peer, which is the
 * broker's own end of that connection. Nothing the client says is trusted.
 */

#include <stdint.h>

int sockdiag_peer_inode(int fd, uint64_t *inodep);
