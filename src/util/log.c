/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Log: leveled messages to stderr
 *
 * One line per message: `<prio>bus1d: function: text`. Errors and
 * warnings name the function where they started.
 */

#include <stdio.h>
#include "util/log.h"

int log_max_level = LOG_NOTICE;

/**
 * log_internal() - print one message if its level is enabled
 * @level:      syslog priority
 * @func:       function the message comes from
 * @fmt:        printf format
 */
void log_internal(int level, const char *func, const char *fmt, ...) {
        va_list ap;

        if (level > log_max_level)
                return;

        va_start(ap, fmt);
        fprintf(stderr, "<%d>bus1d: ", level);
        if (level <= LOG_WARNING)
                fprintf(stderr, "%s: ", func);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}
