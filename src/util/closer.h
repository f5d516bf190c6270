/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Closer: close(2) off the caller's thread
 *
 * A descriptor a client handed over may name a file whose close(2) waits
 * for somebody else: a FUSE file waits for its server's answer to FLUSH
 * (for ever, if the server never answers), a TCP socket with SO_LINGER for
 * its peer. An event loop that closed such a descriptor itself would stop
 * serving everybody. closer_close() hands the descriptor to one background
 * thread instead, which closes descriptors in the order they came; a close
 * that blocks holds up only later closes, never the caller.
 *
 * Without closer_start() (unit tests, tools), closer_close() closes at
 * once. The closer is process-wide: one broker, one closer.
 *
 * Invariants:
 *  - every descriptor given to closer_close() is closed exactly once, by
 *    the thread or, if the queue cannot grow, by the caller;
 *  - closer_pending() counts descriptors handed over and not yet closed.
 */

#include <stdbool.h>
#include <stddef.h>

int closer_start(void);
void closer_close(int fd);
size_t closer_pending(void);
bool closer_flush(unsigned int timeout_ms);
