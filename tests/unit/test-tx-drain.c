/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for the drain hook (BusDrainFn) during a send
 *
 * The broker's hook applies a client's release ring: its releases and its
 * ACKs, and an ACK dequeues entries (peer_recv()). bus.h allows the hook to
 * change the peer's pool, queue and charges, and tx.c calls it while a
 * send is being staged: before each message is placed in a receiver's pool
 * (tx_drain()) and, on EDQUOT, for every peer of the receiver's user
 * (tx_drain_user()). A client writes its ring whenever it likes, from its
 * own process, so a receiver drained twice in one send (two of its nodes
 * among the destinations, or a sibling's EDQUOT after it was staged) can
 * have new ACKs at the second drain. These tests play such a client with a
 * hook that dequeues the receiver's front entry at its second drain within
 * the send, exactly what connection_apply_ack() does for an ACK that
 * arrived in between.
 *
 * The interesting entry carries a handle its receiver had released to zero
 * (detached, handle.c): dequeuing it attaches the reference to the handle
 * the receiver holds for the node now, which may be one the send staged for
 * it (tx->created). When the send then fails, unwinding must not free a
 * handle that has gained a reference.
 *
 * Each scenario runs in a process of its own (this program, run again with
 * --scenario NAME), so an assertion of the model that breaks fails that
 * test with a message instead of killing the test program.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "bus/handle.h"
#include "model-util.h"

/* the hook's script: dequeue @victim's front entry at its @at-th drain */
typedef struct DrainScript {
        Peer *victim;
        unsigned int at;
        unsigned int n_drains;
        bool dequeued;
} DrainScript;

static DrainScript script;

static void drain_hook(Bus *bus, Peer *peer) {
        PeerRecv r;

        if (peer != script.victim || ++script.n_drains != script.at)
                return;
        /* the client dequeued it locally and wrote the ACK just now */
        if (peer_recv(peer, 0, UINT64_MAX, &r) == 0) {
                script.dequeued = true;
                peer_recv_deinit(&r);
        }
}

typedef struct Setup {
        Bus bus;
        Peer *a, *b, *d, *s;
        uint64_t s_to_n;        /* s's handle to a's node N */
        uint64_t s_to_b1, s_to_b2;      /* s's handles to b's nodes */
        uint64_t s_to_d;        /* s's handle to d's node */
} Setup;

/*
 * a owns N; b receives a message carrying N and then releases its own
 * handle to N to zero, so the queued entry holds a detached handle; d is a
 * peer of b's user that refuses everything (max_slices 0).
 */
static void setup(Setup *t) {
        PeerLimits none = {
                .max_slices = 0,
                .max_handles = PEER_LIMIT_KEEP,
                .max_inflight_bytes = PEER_LIMIT_KEEP,
                .max_inflight_fds = PEER_LIMIT_KEEP,
        };
        uint64_t b_to_n;

        bus_init(&t->bus);
        t->bus.drain = drain_hook;
        t->a = test_peer_new(&t->bus, 1);
        t->b = test_peer_new(&t->bus, 2);
        t->d = test_peer_new(&t->bus, 2);
        t->s = test_peer_new(&t->bus, 3);

        t->s_to_n = test_transfer(t->a, 0x100, t->s);
        b_to_n = test_transfer(t->a, 0x100, t->b);
        t->s_to_b1 = test_transfer(t->b, 0x200, t->s);
        t->s_to_b2 = test_transfer(t->b, 0x300, t->s);
        t->s_to_d = test_transfer(t->d, 0x400, t->s);
        assert_int_equal(test_send(t->s, 0, &t->s_to_b1, 1, NULL, "m1", 2, &t->s_to_n, 1,
                                   NULL), 0);
        assert_int_equal(peer_handle_release(t->b, b_to_n), 0);
        assert_int_equal(peer_reset(t->d, 0, UINT64_MAX, &none), 0);
        assert_valid(&t->bus);
        script = (DrainScript){ .victim = t->b };
}

/* b dequeues what is left; the handle ID in m1's slice is one b holds for N */
static void finish(Setup *t) {
        PeerRecv r;

        if (!script.dequeued) {
                assert_int_equal(test_recv(t->b, 0, &r), 0);
                assert_int_equal(r.n_handles, 1);
        } else {
                memset(&r, 0, sizeof(r));
        }
        assert_valid(&t->bus);
        t->s = peer_free(t->s);
        assert_valid(&t->bus);
        t->d = peer_free(t->d);
        assert_valid(&t->bus);
        t->b = peer_free(t->b);
        assert_valid(&t->bus);
        t->a = peer_free(t->a);
        assert_valid(&t->bus);
        bus_deinit(&t->bus);
}

/*
 * Run scenario @name in a fresh process (this program with --scenario): a
 * failed check there, or the model dying of an assertion, fails the test
 * here with the child's output above it.
 */
static void run_scenario(const char *name) {
        char self[4096];
        ssize_t l;
        int status;
        pid_t pid;

        l = readlink("/proc/self/exe", self, sizeof(self) - 1);
        assert_true(l > 0);
        self[l] = 0;
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                execl(self, self, "--scenario", name, (char *)NULL);
                _exit(127);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFSIGNALED(status))
                fail_msg("scenario %s: the model died of signal %d", name, WTERMSIG(status));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("scenario %s failed (exit status %d)", name, WEXITSTATUS(status));
}

/*
 * EDQUOT of a sibling after b was staged: tx_drain_user() drains b a
 * second time; the send fails and unwinds.
 */
static void scenario_sibling_quota(void **state) {
        Setup t;
        uint64_t dst[2];

        setup(&t);
        dst[0] = t.s_to_b1;
        dst[1] = t.s_to_d;
        script.at = 2;
        assert_int_equal(test_send(t.s, 0, dst, 2, NULL, "m2", 2, &t.s_to_n, 1, NULL),
                         -EDQUOT);
        assert_valid(&t.bus);
        finish(&t);
}

static void test_sibling_quota(void **state) {
        run_scenario("sibling-quota");
}

/*
 * Two nodes of b, then a destroyed node: b is drained twice by
 * tx_drain(), and the third destination fails the send.
 */
static void scenario_two_nodes_then_error(void **state) {
        uint64_t dst[3], s_to_dead;
        Setup t;

        setup(&t);
        s_to_dead = test_transfer(t.d, 0x500, t.s);
        assert_int_equal(peer_nodes_destroy(t.d, 0, (uint64_t[]){ 0x500 }, 1), 0);
        dst[0] = t.s_to_b1;
        dst[1] = t.s_to_b2;
        dst[2] = s_to_dead;
        script.at = 2;
        assert_int_equal(test_send(t.s, 0, dst, 3, NULL, "m2", 2, &t.s_to_n, 1, NULL),
                         -EHOSTUNREACH);
        assert_valid(&t.bus);
        finish(&t);
}

static void test_two_nodes_then_error(void **state) {
        run_scenario("two-nodes-then-error");
}

/* the same, and the send succeeds: b ends up with one handle to N */
static void scenario_two_nodes(void **state) {
        uint64_t dst[2];
        PeerRecv r;
        Setup t;

        setup(&t);
        dst[0] = t.s_to_b1;
        dst[1] = t.s_to_b2;
        script.at = 2;
        assert_int_equal(test_send(t.s, 0, dst, 2, NULL, "m2", 2, &t.s_to_n, 1, NULL), 0);
        assert_valid(&t.bus);
        /* m2 twice, each naming the same handle of b to N */
        if (!script.dequeued) {
                assert_int_equal(test_recv(t.b, 0, &r), 0);
                script.dequeued = true;
        }
        {
                uint64_t ids[2];

                for (size_t i = 0; i < 2; ++i) {
                        assert_int_equal(test_recv(t.b, 0, &r), 0);
                        assert_int_equal(r.n_handles, 1);
                        ids[i] = test_slice_handle(t.b, &r, 0);
                        assert_valid(&t.bus);
                }
                assert_int_equal(ids[0], ids[1]);
        }
        finish(&t);
}

static void test_two_nodes(void **state) {
        run_scenario("two-nodes");
}

int main(int argc, char **argv) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_two_nodes),
                cmocka_unit_test(test_sibling_quota),
                cmocka_unit_test(test_two_nodes_then_error),
        };
        static const struct {
                const char *name;
                struct CMUnitTest test;
        } scenarios[] = {
                { "two-nodes", cmocka_unit_test(scenario_two_nodes) },
                { "sibling-quota", cmocka_unit_test(scenario_sibling_quota) },
                { "two-nodes-then-error", cmocka_unit_test(scenario_two_nodes_then_error) },
        };

        if (argc == 3 && !strcmp(argv[1], "--scenario")) {
                for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); ++i)
                        if (!strcmp(argv[2], scenarios[i].name))
                                return _cmocka_run_group_tests(scenarios[i].name,
                                                               &scenarios[i].test, 1,
                                                               NULL, NULL) ? 1 : 0;
                return 2;
        }
        return cmocka_run_group_tests(tests, NULL, NULL);
}
