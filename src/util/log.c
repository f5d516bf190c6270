/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Log: leveled, rate-limited messages with optional structured fields
 *
 * A message is filtered by level, then by the rate limiter (not debug
 * messages), formatted once and handed to the sink. The stderr sink writes
 * one line per message: `<prio>bus1d: text` (the prefix tells systemd's
 * stream logging the priority), or on a terminal `bus1d: text`, with
 * `error: ` or `warning: ` before the text of those; it ignores the
 * function and the fields, which only the journal keeps. A sink that fails hands the message to
 * stderr. Logging never changes errno, so `log_error(...); return -errno;`
 * stays correct.
 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "util/log.h"

int log_max_level = LOG_NOTICE;

static LogSinkFn log_sink = log_sink_stderr;
static LogRatelimit log_ratelimit = LOG_RATELIMIT_INIT(LOG_RATELIMIT_INTERVAL_USEC,
                                                       LOG_RATELIMIT_BURST);

/**
 * log_ratelimit_test() - may one more message pass?
 * @rl:                 limiter
 * @now_usec:           the current time on a monotonic clock
 * @n_suppressedp:      out: messages held back in the window that just
 *                      ended, to report before this one; 0 if none ended
 *
 * Windows are fixed: the first message after a window of @rl->interval_usec
 * has run out opens the next one. Within a window the first @rl->burst
 * messages pass and the rest are counted. A clock that went backwards
 * opens a new window too.
 *
 * Return: true if the message may pass.
 */
bool log_ratelimit_test(LogRatelimit *rl, uint64_t now_usec, unsigned int *n_suppressedp) {
        *n_suppressedp = 0;

        /* every window counts its first message, so two zeros mean no window yet */
        if ((rl->n_passed == 0 && rl->n_suppressed == 0) || now_usec < rl->begin_usec ||
            now_usec - rl->begin_usec >= rl->interval_usec) {
                *n_suppressedp = rl->n_suppressed;
                rl->begin_usec = now_usec;
                rl->n_passed = 0;
                rl->n_suppressed = 0;
        }

        if (rl->n_passed >= rl->burst) {
                if (rl->n_suppressed < UINT_MAX)
                        ++rl->n_suppressed;
                return false;
        }
        ++rl->n_passed;
        return true;
}

/**
 * log_set_sink() - send messages somewhere other than stderr
 * @sink:       the sink, or NULL for stderr again
 */
void log_set_sink(LogSinkFn sink) {
        log_sink = sink ? sink : log_sink_stderr;
}

/**
 * log_sink_stderr() - the default sink: one line on stderr
 * @level:      syslog priority
 * @func:       ignored
 * @fields:     ignored
 * @n_fields:   ignored
 * @message:    the text
 *
 * Return: 0, or -EIO if stderr failed.
 */
int log_sink_stderr(int level, const char *func, const LogField *fields, size_t n_fields,
                    const char *message) {
        static int tty = -1;
        int r;

        if (tty < 0)
                tty = isatty(STDERR_FILENO);
        /* one call per line, so that lines of concurrent writers do not mix */
        if (!tty)
                r = fprintf(stderr, "<%d>bus1d: %s\n", level, message);
        else
                r = fprintf(stderr, "bus1d: %s%s\n",
                            level <= LOG_ERR ? "error: " : level == LOG_WARNING ? "warning: " : "",
                            message);
        return r < 0 ? -EIO : 0;
}

static void log_emit(int level, const char *func, const LogField *fields, size_t n_fields,
                     const char *message) {
        if (log_sink(level, func, fields, n_fields, message) < 0 && log_sink != log_sink_stderr)
                log_sink_stderr(level, func, fields, n_fields, message);
}

static uint64_t log_now_usec(void) {
        struct timespec ts;

        if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
                return 0;
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void log_dispatch(int level, const char *func, const LogField *fields, size_t n_fields,
                         const char *fmt, va_list ap) {
        char message[LOG_MESSAGE_MAX];
        unsigned int n_suppressed = 0;

        if (level > log_max_level)
                return;
        if (level < LOG_DEBUG &&
            !log_ratelimit_test(&log_ratelimit, log_now_usec(), &n_suppressed))
                return;

        if (n_suppressed > 0) {
                snprintf(message, sizeof(message),
                         "suppressed %u messages (more than %u in %llu s)", n_suppressed,
                         log_ratelimit.burst,
                         (unsigned long long)(log_ratelimit.interval_usec / 1000000));
                log_emit(LOG_WARNING, __func__, NULL, 0, message);
        }

        vsnprintf(message, sizeof(message), fmt, ap);
        log_emit(level, func, fields, MIN(n_fields, (size_t)LOG_FIELDS_MAX), message);
}

/* callers read errno after logging it: `log_error(...); return -errno;` */
static void log_structv(int level, const char *func, const LogField *fields, size_t n_fields,
                        const char *fmt, va_list ap) {
        int saved_errno = errno;

        log_dispatch(level, func, fields, n_fields, fmt, ap);
        errno = saved_errno;
}

/**
 * log_internal() - log one message if its level is enabled and the rate allows
 * @level:      syslog priority
 * @func:       function the message comes from
 * @fmt:        printf format
 *
 * Leaves errno as it was.
 */
void log_internal(int level, const char *func, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_structv(level, func, NULL, 0, fmt, ap);
        va_end(ap);
}

/**
 * log_struct_internal() - log one message with structured fields
 * @level:      syslog priority
 * @func:       function the message comes from
 * @fields:     fields for sinks that keep them (the journal)
 * @n_fields:   number of @fields; beyond LOG_FIELDS_MAX they are dropped
 * @fmt:        printf format of the text
 *
 * Like log_internal(); use it through log_struct().
 */
void log_struct_internal(int level, const char *func, const LogField *fields, size_t n_fields,
                         const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        log_structv(level, func, fields, n_fields, fmt, ap);
        va_end(ap);
}
