/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Journal: the log sink for systemd's journal
 *
 * journal_send() is a LogSinkFn (util/log.h) that sends each message over
 * the journal's native protocol (sd_journal_sendv()) with MESSAGE=,
 * PRIORITY=, CODE_FUNC=, SYSLOG_IDENTIFIER=bus1d and the message's own
 * fields (BUS1_UID= and the like). The daemon installs it when stderr is
 * the journal's stream ($JOURNAL_STREAM, journal_stderr_is_journal()) or
 * when asked to (--log-target=journal), provided the journal's socket
 * exists (journal_available()): sd_journal_sendv() would drop messages
 * silently without it.
 */

#include <stdbool.h>
#include <stddef.h>
#include "util/log.h"

/* where sd_journal_sendv() sends (systemd's journal-send.c) */
#define JOURNAL_SOCKET_PATH "/run/systemd/journal/socket"

bool journal_available(void);
bool journal_stderr_is_journal(void);
int journal_send(int level, const char *func, const LogField *fields, size_t n_fields,
                 const char *message);
