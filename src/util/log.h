/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Log: leveled, rate-limited messages with optional structured fields
 *
 * The broker logs where an error starts (function and errno) and is quiet
 * in normal operation. A message goes to the sink: by default stderr, one
 * line with a syslog-style `<N>` prefix (which the journal turns into the
 * priority when stderr goes there), or on a terminal plain text with
 * `error: ` or `warning: ` where it applies; the daemon may install another sink,
 * such as the journal's native protocol (broker/journal.h), which also
 * receives the structured fields of log_struct(). util/ stays free of
 * libsystemd that way.
 *
 * Rate limit: at most LOG_RATELIMIT_BURST messages per
 * LOG_RATELIMIT_INTERVAL_USEC pass, whoever sends them; the rest are
 * counted, and the first message after the interval is preceded by one
 * "suppressed N messages" line. Debug messages are exempt: they are only
 * printed when asked for. LogRatelimit is a plain struct on a given clock,
 * so it can be tested without waiting.
 *
 * Mutable globals: the level, the sink and the limiter's state. They are
 * set from argv at start (STYLE "Avoid": parsed argv and the log level).
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>
#include "util/macro.h"

#define LOG_RATELIMIT_INTERVAL_USEC (10ULL * 1000 * 1000)
#define LOG_RATELIMIT_BURST 100U
/* longest message text; longer ones are cut */
#define LOG_MESSAGE_MAX 2048
/* structured fields per message */
#define LOG_FIELDS_MAX 8

/**
 * LogField - one structured field of a message
 * @name:       journal field name: uppercase letters, digits and '_', not
 *              starting with '_' (those are trusted fields the journal sets)
 * @value:      its value, a string without NUL
 */
typedef struct LogField {
        const char *name;
        const char *value;
} LogField;

/**
 * LogSinkFn - deliver one message
 * @level:      syslog priority
 * @func:       function the message comes from
 * @fields:     structured fields, or NULL
 * @n_fields:   number of @fields, at most LOG_FIELDS_MAX
 * @message:    the formatted text, without newline
 *
 * Return: 0, or a negative errno; the message then goes to stderr instead.
 */
typedef int (*LogSinkFn)(int level, const char *func, const LogField *fields, size_t n_fields,
                         const char *message);

/**
 * LogRatelimit - a fixed-window limiter
 * @interval_usec:      window length
 * @burst:              messages allowed per window
 * @begin_usec:         start of the current window (0: none yet)
 * @n_passed:           messages let through in the current window
 * @n_suppressed:       messages held back in the current window
 */
typedef struct LogRatelimit {
        uint64_t interval_usec;
        unsigned int burst;
        uint64_t begin_usec;
        unsigned int n_passed;
        unsigned int n_suppressed;
} LogRatelimit;

#define LOG_RATELIMIT_INIT(_interval, _burst) { .interval_usec = (_interval), .burst = (_burst) }

extern int log_max_level;

bool log_ratelimit_test(LogRatelimit *rl, uint64_t now_usec, unsigned int *n_suppressedp);

void log_set_sink(LogSinkFn sink);
int log_sink_stderr(int level, const char *func, const LogField *fields, size_t n_fields,
                    const char *message);

void log_internal(int level, const char *func, const char *fmt, ...)
        __attribute__((__format__(__printf__, 3, 4)));
void log_struct_internal(int level, const char *func, const LogField *fields, size_t n_fields,
                         const char *fmt, ...)
        __attribute__((__format__(__printf__, 5, 6)));

#define log_error(...) log_internal(LOG_ERR, __func__, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, __func__, __VA_ARGS__)
#define log_notice(...) log_internal(LOG_NOTICE, __func__, __VA_ARGS__)
#define log_info(...) log_internal(LOG_INFO, __func__, __VA_ARGS__)
#define log_debug(...) log_internal(LOG_DEBUG, __func__, __VA_ARGS__)

/*
 * log_struct(LOG_NOTICE, ((const LogField[]){ { "BUS1_UID", uid } }), "fmt", ...):
 * a message with fields an array literal gives.
 */
#define log_struct(_level, _fields, ...) \
        log_struct_internal((_level), __func__, (_fields), ARRAY_SIZE(_fields), __VA_ARGS__)
