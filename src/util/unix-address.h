/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Unix-address: a filesystem AF_UNIX address from a path, in one place
 *
 * The path must fit sun_path with its terminating NUL; the length returned
 * covers exactly that, as bind(2) and connect(2) want it.
 */

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/**
 * unix_address() - fill an AF_UNIX address with @path
 * @sa:         out: the address
 * @path:       filesystem path
 * @lenp:       out: the address length to pass to bind(2) or connect(2)
 *
 * Return: 0, or -ENAMETOOLONG for an empty path or one that does not fit.
 */
static inline int unix_address(struct sockaddr_un *sa, const char *path, socklen_t *lenp) {
        size_t len = strlen(path);

        if (len == 0 || len >= sizeof(sa->sun_path))
                return -ENAMETOOLONG;
        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        memcpy(sa->sun_path, path, len + 1);
        *lenp = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
        return 0;
}
