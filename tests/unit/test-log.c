/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for the logger: the rate limiter and the sink interface
 *
 * LogRatelimit takes the time as an argument, so its windows are tested on
 * a made-up clock: after every step check() compares the whole state with
 * what the rule says. The logger itself runs on the real clock with a
 * window of 10 s, far longer than this test: it is checked through a sink
 * that records what reaches it. Those tests share the process's one
 * limiter, so they run in the order listed and count what they use of it.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "util/log.h"

static void check(const LogRatelimit *rl, uint64_t begin, unsigned int n_passed,
                  unsigned int n_suppressed) {
        assert_int_equal(rl->begin_usec, begin);
        assert_int_equal(rl->n_passed, n_passed);
        assert_int_equal(rl->n_suppressed, n_suppressed);
        assert_true(rl->n_passed <= rl->burst);
}

static void test_ratelimit_burst_then_suppress(void **state) {
        LogRatelimit rl = LOG_RATELIMIT_INIT(1000, 3);
        unsigned int n;

        /* the first message opens a window, even at time 0 */
        assert_true(log_ratelimit_test(&rl, 0, &n));
        assert_int_equal(n, 0);
        check(&rl, 0, 1, 0);
        assert_true(log_ratelimit_test(&rl, 10, &n));
        assert_true(log_ratelimit_test(&rl, 999, &n));
        assert_int_equal(n, 0);
        check(&rl, 0, 3, 0);

        /* over the burst: counted, not passed, until the window ends */
        for (unsigned int i = 0; i < 5; ++i) {
                assert_false(log_ratelimit_test(&rl, 999, &n));
                assert_int_equal(n, 0);
                check(&rl, 0, 3, i + 1);
        }

        /* exactly one interval later: a new window, reporting what was held back */
        assert_true(log_ratelimit_test(&rl, 1000, &n));
        assert_int_equal(n, 5);
        check(&rl, 1000, 1, 0);

        /* a window without suppression reports nothing */
        assert_true(log_ratelimit_test(&rl, 5000, &n));
        assert_int_equal(n, 0);
        check(&rl, 5000, 1, 0);
}

static void test_ratelimit_fixed_window(void **state) {
        LogRatelimit rl = LOG_RATELIMIT_INIT(100, 2);
        unsigned int n;

        assert_true(log_ratelimit_test(&rl, 50, &n));
        assert_true(log_ratelimit_test(&rl, 149, &n));
        assert_false(log_ratelimit_test(&rl, 149, &n));
        check(&rl, 50, 2, 1);

        /* the window starts at its first message, not at the last one */
        assert_true(log_ratelimit_test(&rl, 150, &n));
        assert_int_equal(n, 1);
        check(&rl, 150, 1, 0);

        /* a clock that went backwards opens a new window */
        assert_true(log_ratelimit_test(&rl, 151, &n));
        assert_false(log_ratelimit_test(&rl, 151, &n));
        assert_true(log_ratelimit_test(&rl, 20, &n));
        assert_int_equal(n, 1);
        check(&rl, 20, 1, 0);
}

static void test_ratelimit_burst_zero(void **state) {
        LogRatelimit rl = LOG_RATELIMIT_INIT(10, 0);
        unsigned int n;

        /* nothing passes; a new window still starts after the interval */
        assert_false(log_ratelimit_test(&rl, 0, &n));
        assert_false(log_ratelimit_test(&rl, 5, &n));
        assert_false(log_ratelimit_test(&rl, 20, &n));
        assert_int_equal(n, 2);
}

/* what the recording sink saw */
typedef struct Seen {
        unsigned int n;
        int level;
        char func[64];
        char message[LOG_MESSAGE_MAX];
        size_t n_fields;
        char fields[LOG_FIELDS_MAX][64];
        int r;                  /* what the sink returns */
} Seen;

static Seen seen;

static int record_sink(int level, const char *func, const LogField *fields, size_t n_fields,
                       const char *message) {
        ++seen.n;
        seen.level = level;
        snprintf(seen.func, sizeof(seen.func), "%s", func);
        snprintf(seen.message, sizeof(seen.message), "%s", message);
        seen.n_fields = n_fields;
        for (size_t i = 0; i < n_fields; ++i)
                snprintf(seen.fields[i], sizeof(seen.fields[i]), "%s=%s", fields[i].name,
                         fields[i].value);
        /* a sink may clobber errno; the caller must not notice */
        errno = EBADMSG;
        return seen.r;
}

static int sink_setup(void **state) {
        memset(&seen, 0, sizeof(seen));
        log_set_sink(record_sink);
        log_max_level = LOG_NOTICE;
        return 0;
}

static int sink_teardown(void **state) {
        log_set_sink(NULL);
        return 0;
}

static int capture_file = -1, capture_saved = -1;

static void capture_stderr_begin(void) {
        FILE *f = tmpfile();

        assert_non_null(f);
        capture_file = dup(fileno(f));
        fclose(f);
        fflush(stderr);
        capture_saved = dup(STDERR_FILENO);
        assert_true(capture_file >= 0 && capture_saved >= 0);
        assert_int_equal(dup2(capture_file, STDERR_FILENO), STDERR_FILENO);
}

static void capture_stderr_end(char *buf, size_t size) {
        ssize_t l;

        fflush(stderr);
        assert_int_equal(dup2(capture_saved, STDERR_FILENO), STDERR_FILENO);
        l = pread(capture_file, buf, size - 1, 0);
        assert_true(l >= 0);
        buf[l] = 0;
        close(capture_file);
        close(capture_saved);
}

static void test_log_fields_and_errno(void **state) {
        char text[256];

        errno = ENOENT;
        log_struct(LOG_NOTICE,
                   ((const LogField[]){ { "BUS1_UID", "1000" }, { "BUS1_RESOURCE", "slices" } }),
                   "refused %d", 7);
        assert_int_equal(errno, ENOENT);
        assert_int_equal(seen.n, 1);
        assert_int_equal(seen.level, LOG_NOTICE);
        assert_string_equal(seen.func, "test_log_fields_and_errno");
        assert_string_equal(seen.message, "refused 7");
        assert_int_equal(seen.n_fields, 2);
        assert_string_equal(seen.fields[0], "BUS1_UID=1000");
        assert_string_equal(seen.fields[1], "BUS1_RESOURCE=slices");

        log_warning("plain %s", "text");
        assert_int_equal(seen.n, 2);
        assert_int_equal(seen.n_fields, 0);
        assert_string_equal(seen.message, "plain text");

        /* a failing sink hands over to stderr, still without touching errno */
        seen.r = -EIO;
        errno = EAGAIN;
        capture_stderr_begin();
        log_error("to stderr instead");
        capture_stderr_end(text, sizeof(text));
        assert_int_equal(errno, EAGAIN);
        assert_int_equal(seen.n, 3);
        assert_string_equal(text, "<3>bus1d: to stderr instead\n");
        seen.r = 0;
}

static void test_log_level_filter(void **state) {
        log_info("not at the default level");
        log_debug("nor this");
        assert_int_equal(seen.n, 0);

        /* -vv: debug messages pass, and they do not use up the rate */
        log_max_level = LOG_DEBUG;
        for (unsigned int i = 0; i < 3 * LOG_RATELIMIT_BURST; ++i)
                log_debug("debug %u", i);
        assert_int_equal(seen.n, 3 * LOG_RATELIMIT_BURST);
        assert_int_equal(seen.level, LOG_DEBUG);
}

static void test_log_ratelimited(void **state) {
        /* the earlier tests passed 3 messages through the limiter */
        const unsigned int used = 3;

        for (unsigned int i = 0; i < 2 * LOG_RATELIMIT_BURST; ++i)
                log_notice("flood %u", i);
        assert_int_equal(seen.n, LOG_RATELIMIT_BURST - used);
        assert_string_equal(seen.message, "flood 96");

        /* errors are limited too: a flood of them is still a flood */
        log_error("one more");
        assert_int_equal(seen.n, LOG_RATELIMIT_BURST - used);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ratelimit_burst_then_suppress),
                cmocka_unit_test(test_ratelimit_fixed_window),
                cmocka_unit_test(test_ratelimit_burst_zero),
                /* in this order: they share the process's limiter */
                cmocka_unit_test_setup_teardown(test_log_fields_and_errno, sink_setup,
                                                sink_teardown),
                cmocka_unit_test_setup_teardown(test_log_level_filter, sink_setup,
                                                sink_teardown),
                cmocka_unit_test_setup_teardown(test_log_ratelimited, sink_setup,
                                                sink_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
