/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for the broker's turn scheduler (broker/scheduler.c)
 *
 *  - nothing ready: no turn; an entry made ready twice waits once;
 *  - UIDs take turns: one UID with many ready entries and another with one
 *    alternate turn by turn, and the many take their turns round robin;
 *  - deficit round robin: a UID whose turns cost ten quanta gets one turn
 *    while a cheap UID gets about ten, and alone it is served at once;
 *  - idle and detached entries take no turns; an entry detached during its
 *    own turn is charged without harm and its group goes away;
 *  - many groups all in debt are caught up without spinning.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "broker/scheduler.h"

#define QUANTUM 1000

static void test_empty(void **state) {
        Scheduler s;
        SchedEntry a;

        (void)state;
        scheduler_init(&s, QUANTUM);
        assert_null(scheduler_next(&s));
        assert_int_equal(sched_entry_attach(&s, &a, 1), 0);
        assert_false(scheduler_busy(&s));
        assert_null(scheduler_next(&s));

        sched_entry_ready(&s, &a);
        sched_entry_ready(&s, &a);
        assert_true(sched_entry_is_ready(&a));
        assert_int_equal(s.n_ready, 1);
        assert_ptr_equal(scheduler_next(&s), &a);
        scheduler_charge(&s, 1);
        sched_entry_idle(&s, &a);
        assert_false(scheduler_busy(&s));
        assert_null(scheduler_next(&s));

        sched_entry_detach(&s, &a);
        sched_entry_detach(&s, &a);
        scheduler_deinit(&s);
}

static void test_uids_alternate(void **state) {
        Scheduler s;
        SchedEntry many[4], one;
        SchedEntry *e;

        (void)state;
        scheduler_init(&s, QUANTUM);
        for (size_t i = 0; i < 4; ++i) {
                assert_int_equal(sched_entry_attach(&s, &many[i], 100), 0);
                sched_entry_ready(&s, &many[i]);
        }
        assert_int_equal(sched_entry_attach(&s, &one, 200), 0);
        sched_entry_ready(&s, &one);

        /* the busy UID's entries in order, the other UID between each */
        for (size_t round = 0; round < 8; ++round) {
                e = scheduler_next(&s);
                assert_ptr_equal(e, &many[round % 4]);
                scheduler_charge(&s, 10);
                e = scheduler_next(&s);
                assert_ptr_equal(e, &one);
                scheduler_charge(&s, 10);
        }

        for (size_t i = 0; i < 4; ++i)
                sched_entry_detach(&s, &many[i]);
        sched_entry_detach(&s, &one);
        scheduler_deinit(&s);
}

static void test_deficit(void **state) {
        Scheduler s;
        SchedEntry costly, cheap;
        unsigned int n_costly = 0, n_cheap = 0;

        (void)state;
        scheduler_init(&s, QUANTUM);
        assert_int_equal(sched_entry_attach(&s, &costly, 1), 0);
        assert_int_equal(sched_entry_attach(&s, &cheap, 2), 0);
        sched_entry_ready(&s, &costly);
        sched_entry_ready(&s, &cheap);

        for (unsigned int i = 0; i < 220; ++i) {
                SchedEntry *e = scheduler_next(&s);

                if (e == &costly) {
                        ++n_costly;
                        scheduler_charge(&s, 10 * QUANTUM);
                } else {
                        assert_ptr_equal(e, &cheap);
                        ++n_cheap;
                        scheduler_charge(&s, QUANTUM / 100);
                }
        }
        /* one expensive turn per ten or eleven cheap ones */
        assert_int_equal(n_costly + n_cheap, 220);
        assert_in_range(n_cheap / n_costly, 9, 11);

        /* alone, a group in debt is served at once */
        sched_entry_idle(&s, &cheap);
        for (unsigned int i = 0; i < 5; ++i) {
                assert_ptr_equal(scheduler_next(&s), &costly);
                scheduler_charge(&s, 1000 * QUANTUM);
        }

        sched_entry_detach(&s, &costly);
        sched_entry_detach(&s, &cheap);
        scheduler_deinit(&s);
}

static void test_detach_in_turn(void **state) {
        Scheduler s;
        SchedEntry a, b;

        (void)state;
        scheduler_init(&s, QUANTUM);
        assert_int_equal(sched_entry_attach(&s, &a, 7), 0);
        assert_int_equal(sched_entry_attach(&s, &b, 8), 0);
        sched_entry_ready(&s, &a);
        sched_entry_ready(&s, &b);
        assert_ptr_equal(scheduler_next(&s), &a);
        /* the connection closed during its turn: its group outlives the turn */
        sched_entry_detach(&s, &a);
        scheduler_charge(&s, 5);
        assert_ptr_equal(scheduler_next(&s), &b);
        scheduler_charge(&s, 5);
        assert_ptr_equal(scheduler_next(&s), &b);
        scheduler_charge(&s, 5);

        /* a new entry of that UID starts a new group, behind the busy one */
        assert_int_equal(sched_entry_attach(&s, &a, 7), 0);
        sched_entry_ready(&s, &a);
        assert_ptr_equal(scheduler_next(&s), &b);
        scheduler_charge(&s, 5);
        assert_ptr_equal(scheduler_next(&s), &a);
        scheduler_charge(&s, 5);

        sched_entry_detach(&s, &a);
        sched_entry_detach(&s, &b);
        scheduler_deinit(&s);
}

static void test_all_in_debt(void **state) {
        enum { N = 64 };
        Scheduler s;
        SchedEntry e[N];

        (void)state;
        scheduler_init(&s, 1);
        for (size_t i = 0; i < N; ++i) {
                assert_int_equal(sched_entry_attach(&s, &e[i], (uint32_t)i), 0);
                sched_entry_ready(&s, &e[i]);
        }
        /* each turn a second's debt with a quantum of 1 ns: still one pass each */
        for (size_t i = 0; i < 4 * N; ++i) {
                assert_ptr_equal(scheduler_next(&s), &e[i % N]);
                scheduler_charge(&s, 1000ULL * 1000 * 1000);
        }
        for (size_t i = 0; i < N; ++i)
                sched_entry_detach(&s, &e[i]);
        scheduler_deinit(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_uids_alternate),
                cmocka_unit_test(test_deficit),
                cmocka_unit_test(test_detach_in_turn),
                cmocka_unit_test(test_all_in_debt),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
