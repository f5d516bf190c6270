/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Caps: give up every privilege once the broker listens
 *
 * bus1d needs no capability to serve: its sockets are bound (or passed in by
 * systemd) before caps_drop() runs, and every later operation is one an
 * ordinary user may do. Whatever it was started with (root from a system
 * unit without User=, file or ambient capabilities) is dropped from the
 * effective, permitted, inheritable and ambient sets and, when the process
 * may (CAP_SETPCAP), from the bounding set; PR_SET_NO_NEW_PRIVS makes sure
 * nothing it might execute gets any back. Optionally a root broker first
 * becomes another user.
 */

int caps_drop(const char *user);
