/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Log: leveled messages to stderr
 *
 * The broker logs where an error starts (function and errno) and is quiet
 * in normal operation. Messages carry a syslog-style `<N>` prefix, which the
 * journal turns into the priority when stderr goes there. The level is the
 * one mutable global besides parsed argv (STYLE "Avoid").
 */

#include <stdarg.h>
#include <syslog.h>

extern int log_max_level;

void log_internal(int level, const char *func, const char *fmt, ...)
        __attribute__((__format__(__printf__, 3, 4)));

#define log_error(...) log_internal(LOG_ERR, __func__, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, __func__, __VA_ARGS__)
#define log_notice(...) log_internal(LOG_NOTICE, __func__, __VA_ARGS__)
#define log_info(...) log_internal(LOG_INFO, __func__, __VA_ARGS__)
#define log_debug(...) log_internal(LOG_DEBUG, __func__, __VA_ARGS__)
