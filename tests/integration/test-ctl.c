/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus1ctl against a real broker
 *
 * Each test starts its own bus1d, puts peers in known states through the
 * UAPI layer of libbus1-client, and runs the real bus1ctl (its path comes
 * from $BUS1CTL_TEST_PATH) with stdout and stderr in memfds. Every command
 * is checked in text and with --json, whose output is parsed with util/json
 * (the strict RFC 8259 parser bus1ctl itself uses), and METRICS is checked
 * line by line against the OpenMetrics text format: the broker's own text,
 * which scrapers read, and the text bus1ctl renders from the JSON the
 * broker sends it, which must be the same.
 *
 * The access test needs root: it switches UIDs in forked children (one
 * holds a peer as nobody, others run bus1ctl as nobody) and is skipped
 * with a message otherwise. The monitor tests check the filters, and that
 * a monitor which stops reading loses events, is told how many, and never
 * slows the bus down: the sends complete while it is stopped.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "bus1/uapi.h"
#include "ctl/ctl-client.h"
#include "proto/proto.h"
#include "util-broker.h"
#include "util/json.h"

#define CTL_NOBODY 65534
#define CTL_ARGS_MAX 16
#define POOL_MAP (16ULL * 1024 * 1024)

typedef struct CtlRun {
        pid_t pid;
        int out_fd;             /* memfds the child wrote */
        int err_fd;
        int status;
        char *out;
        char *err;
} CtlRun;

static TestBroker ctl_broker;

/*
 * Children a case started and has not reaped: a failed assertion leaves
 * them (a monitor runs until told to stop), and the teardown kills them so
 * that nothing waits for them.
 */
#define CTL_CHILDREN_MAX 64
static pid_t ctl_children[CTL_CHILDREN_MAX];

static void ctl_child_add(pid_t pid) {
        for (size_t i = 0; i < CTL_CHILDREN_MAX; ++i) {
                if (!ctl_children[i]) {
                        ctl_children[i] = pid;
                        return;
                }
        }
}

static void ctl_child_forget(pid_t pid) {
        for (size_t i = 0; i < CTL_CHILDREN_MAX; ++i)
                if (ctl_children[i] == pid)
                        ctl_children[i] = 0;
}

static void ctl_children_kill(void) {
        for (size_t i = 0; i < CTL_CHILDREN_MAX; ++i) {
                if (!ctl_children[i])
                        continue;
                kill(ctl_children[i], SIGKILL);
                waitpid(ctl_children[i], NULL, 0);
                ctl_children[i] = 0;
        }
}

static const char *ctl_path(void) {
        const char *p = getenv("BUS1CTL_TEST_PATH");

        if (!p)
                fail_msg("$BUS1CTL_TEST_PATH is not set (run through meson test)");
        return p;
}

/*
 * Whether @uid can run bus1ctl where it was built: a clone in a private
 * (0700) folder keeps other users out of the build tree, bus1ctl and the
 * library it loads included.
 */
static bool ctl_runnable_by(uid_t uid) {
        int status;
        pid_t pid;

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
                    setresuid(uid, uid, uid) < 0)
                        _exit(2);
                _exit(access(ctl_path(), X_OK) == 0 ? 0 : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* skip a case that runs bus1ctl as @uid if that cannot work here */
static void ctl_require_uid(const char *test, uid_t uid) {
        if (geteuid() != 0) {
                print_message("%s: skipped, switching UIDs needs root\n", test);
                skip();
        }
        if (!ctl_runnable_by(uid)) {
                print_message("%s: skipped, UID %u cannot reach the build tree (a private "
                              "folder)\n", test, (unsigned)uid);
                skip();
        }
}

static char *ctl_read_fd(int fd) {
        struct stat st;
        char *buf;
        ssize_t n;

        assert_int_equal(fstat(fd, &st), 0);
        buf = calloc(1, (size_t)st.st_size + 1);
        assert_non_null(buf);
        n = pread(fd, buf, (size_t)st.st_size, 0);
        assert_int_equal(n, st.st_size);
        return buf;
}

/* start bus1ctl --address=... ARGS, as @uid unless it is (uid_t)-1 */
static void ctl_spawn(CtlRun *run, uid_t uid, const char *const *args) {
        *run = (CtlRun){ .out_fd = memfd_create("out", 0), .err_fd = memfd_create("err", 0) };
        assert_true(run->out_fd >= 0 && run->err_fd >= 0);

        run->pid = fork();
        assert_true(run->pid >= 0);
        if (run->pid > 0)
                ctl_child_add(run->pid);
        if (run->pid == 0) {
                const char *argv[CTL_ARGS_MAX + 3] = { ctl_path() };
                char address[200];
                size_t n = 1;

                snprintf(address, sizeof(address), "--address=%s", ctl_broker.path);
                argv[n++] = address;
                for (size_t i = 0; args[i] && i < CTL_ARGS_MAX; ++i)
                        argv[n++] = args[i];
                if (dup2(run->out_fd, 1) < 0 || dup2(run->err_fd, 2) < 0)
                        _exit(126);
                if (uid != (uid_t)-1 &&
                    (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
                     setresuid(uid, uid, uid) < 0))
                        _exit(125);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
}

static void ctl_wait(CtlRun *run) {
        assert_int_equal(waitpid(run->pid, &run->status, 0), run->pid);
        ctl_child_forget(run->pid);
        run->out = ctl_read_fd(run->out_fd);
        run->err = ctl_read_fd(run->err_fd);
        close(run->out_fd);
        close(run->err_fd);
}

static void ctl_free(CtlRun *run) {
        free(run->out);
        free(run->err);
        *run = (CtlRun){};
}

/* run to completion; the exit status must be @code */
static void ctl_expect(CtlRun *run, uid_t uid, int code, const char *const *args) {
        ctl_spawn(run, uid, args);
        ctl_wait(run);
        if (!WIFEXITED(run->status) || WEXITSTATUS(run->status) != code)
                fail_msg("bus1ctl %s: status 0x%x, expected exit %d; stderr: %s", args[0],
                         run->status, code, run->err);
        /* a failure says why, on stderr, as systemd's tools do */
        if (code != 0)
                assert_true(strlen(run->err) > 0);
}

#define CTL_ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* @out contains @what, or the failure shows what it was */
static void ctl_assert_has(const char *out, const char *what) {
        if (!strstr(out, what))
                fail_msg("\"%s\" is not in the output:\n%s", what, out);
}

static JsonValue *ctl_json(uid_t uid, const char *const *args) {
        JsonValue *v = NULL;
        CtlRun run;
        int r;

        ctl_expect(&run, uid, 0, args);
        r = json_parse(&v, run.out, strlen(run.out));
        if (r < 0)
                fail_msg("bus1ctl %s --json printed no JSON (%d): %s", args[0], r, run.out);
        assert_int_equal(v->type, JSON_OBJECT);
        ctl_free(&run);
        return v;
}

static const JsonValue *ctl_at(const JsonValue *array, size_t i) {
        assert_non_null(array);
        assert_true(i < array->n_children);
        return &array->children[i];
}

/* peers: a makes node 0x100 and gives b a handle; b sends it two messages */
typedef struct CtlPeers {
        int a, b;
        uint64_t id_a, id_b;    /* broker peer IDs, from bus1ctl */
        uint64_t node;          /* the node's ID */
        uint64_t handle_b;      /* b's handle ID */
} CtlPeers;

static uint64_t ctl_transfer(int from, uint64_t src, int to) {
        struct bus1_cmd_handle_transfer t = {
                .src_handle = src,
                .dst_fd = to < 0 ? (uint64_t)-1 : (uint64_t)to,
        };

        assert_int_equal(bus1_uapi_ioctl(from, BUS1_CMD_HANDLE_TRANSFER, &t), 0);
        return t.dst_handle;
}

static int ctl_send(int from, uint64_t dst, const char *text) {
        struct iovec vec = { .iov_base = (void *)text, .iov_len = strlen(text) };
        struct bus1_cmd_send send = {
                .ptr_destinations = (uintptr_t)&dst,
                .n_destinations = 1,
                .ptr_vecs = (uintptr_t)&vec,
                .n_vecs = 1,
        };

        return bus1_uapi_ioctl(from, BUS1_CMD_SEND, &send);
}

static void ctl_recv_release(int peer) {
        struct bus1_cmd_recv recv = { .max_offset = POOL_MAP };

        assert_int_equal(bus1_uapi_ioctl(peer, BUS1_CMD_RECV, &recv), 0);
        if (recv.msg.type == BUS1_MSG_DATA)
                assert_int_equal(bus1_uapi_ioctl(peer, BUS1_CMD_SLICE_RELEASE,
                                                 &recv.msg.offset), 0);
}

static void ctl_peers_setup(CtlPeers *p) {
        const JsonValue *peers, *nodes;
        JsonValue *v, *detail;

        p->a = bus1_uapi_open(NULL);
        p->b = bus1_uapi_open(NULL);
        assert_true(p->a >= 0 && p->b >= 0);
        p->handle_b = ctl_transfer(p->a, 0x100, p->b);
        assert_int_equal(ctl_send(p->b, p->handle_b, "one"), 0);
        assert_int_equal(ctl_send(p->b, p->handle_b, "two!"), 0);

        /* IDs go up in connect order: a, then b */
        v = ctl_json((uid_t)-1, CTL_ARGS("--json", "peers"));
        peers = json_get_array(v, "peers");
        assert_non_null(peers);
        if (peers->n_children != 2)
                fail_msg("%zu peers, not 2", peers->n_children);
        p->id_a = json_get_u64(ctl_at(peers, 0), "id", 0);
        p->id_b = json_get_u64(ctl_at(peers, 1), "id", 0);
        assert_true(p->id_a > 0 && p->id_b > p->id_a);
        json_free(v);

        {
                char id[32];

                snprintf(id, sizeof(id), "%" PRIu64, p->id_a);
                detail = ctl_json((uid_t)-1, CTL_ARGS("peer", id, "--json"));
        }
        nodes = json_get_array(detail, "nodes");
        if (!nodes || !nodes->n_children)
                fail_msg("peer %" PRIu64 " has no nodes (b %" PRIu64 ")", p->id_a, p->id_b);
        p->node = json_get_u64(ctl_at(nodes, 0), "id", 0);
        assert_true(p->node > 0);
        json_free(detail);
}

static void ctl_peers_close(CtlPeers *p) {
        assert_int_equal(bus1_uapi_close(p->a), 0);
        assert_int_equal(bus1_uapi_close(p->b), 0);
}

static int ctl_setup(void **state) {
        test_broker_start(&ctl_broker);
        return 0;
}

static int ctl_teardown(void **state) {
        ctl_children_kill();
        test_broker_stop(&ctl_broker);
        return 0;
}

static void test_usage(void **state) {
        CtlRun run;

        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("--help"));
        assert_non_null(strstr(run.out, "Usage: bus1ctl"));
        assert_non_null(strstr(run.out, "monitor"));
        ctl_free(&run);
        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("--version"));
        assert_true(strncmp(run.out, "bus1ctl ", 8) == 0);
        ctl_free(&run);

        ctl_expect(&run, (uid_t)-1, 1, CTL_ARGS("frobnicate"));
        assert_non_null(strstr(run.err, "frobnicate"));
        ctl_free(&run);
        ctl_expect(&run, (uid_t)-1, 1, CTL_ARGS("peer"));
        ctl_free(&run);
        ctl_expect(&run, (uid_t)-1, 1, CTL_ARGS("peer", "x1"));
        ctl_free(&run);
        ctl_expect(&run, (uid_t)-1, 1, CTL_ARGS("status", "extra"));
        ctl_free(&run);
        ctl_expect(&run, (uid_t)-1, 1, CTL_ARGS("--json=fancy", "status"));
        ctl_free(&run);
        ctl_expect(&run, (uid_t)-1, 1, CTL_ARGS("--uid=0", "peers"));
        ctl_free(&run);
        ctl_expect(&run, (uid_t)-1, 1, CTL_ARGS("--type=bogus", "monitor"));
        ctl_free(&run);
        ctl_expect(&run, (uid_t)-1, 1, CTL_ARGS("--no-such-option"));
        ctl_free(&run);
        /* no broker there: a clear failure */
        ctl_expect(&run, (uid_t)-1, 1, CTL_ARGS("--address=/nonexistent/socket", "status"));
        assert_non_null(strstr(run.err, "Failed to connect"));
        ctl_free(&run);
}

static void test_status(void **state) {
        CtlPeers p;
        JsonValue *v;
        CtlRun run;

        ctl_peers_setup(&p);
        v = ctl_json((uid_t)-1, CTL_ARGS("status", "--json"));
        assert_string_equal(json_get_string(v, "version", ""), PACKAGE_VERSION);
        assert_int_equal(json_get_u64(v, "pid", 0), ctl_broker.pid);
        assert_string_equal(ctl_at(json_get_array(v, "addresses"), 0)->string, ctl_broker.path);
        assert_int_equal(json_get_u64(v, "peers", 0), 2);
        assert_int_equal(json_get_u64(v, "nodes", 0), 1);
        assert_int_equal(json_get_u64(v, "handles", 0), 2);
        assert_int_equal(json_get_u64(v, "queued_messages", 0), 2);
        assert_int_equal(json_get_u64(v, "inflight_slices", 0), 2);
        assert_int_equal(json_get_u64(v, "inflight_fds", 0), 0);
        /* the bus1ctl connection itself is no peer */
        assert_int_equal(json_get_u64(v, "control_connections", 0), 1);
        assert_int_equal(json_get_u64(json_get(v, "limits"), "slices", 0), 16384);
        assert_true(json_get_u64(v, "now", 0) >= json_get_u64(v, "start_time", 1));
        json_free(v);

        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("status"));
        assert_non_null(strstr(run.out, "Peers: 2"));
        assert_non_null(strstr(run.out, "Nodes: 1"));
        assert_non_null(strstr(run.out, ctl_broker.path));
        assert_non_null(strstr(run.out, PACKAGE_VERSION));
        ctl_free(&run);

        /* pretty JSON is JSON too */
        json_free(ctl_json((uid_t)-1, CTL_ARGS("status", "--json=pretty")));
        ctl_peers_close(&p);
}

static void test_peers(void **state) {
        const JsonValue *peers, *a, *b;
        char line[64];
        CtlPeers p;
        JsonValue *v;
        CtlRun run;

        ctl_peers_setup(&p);
        v = ctl_json((uid_t)-1, CTL_ARGS("--json", "peers"));
        peers = json_get_array(v, "peers");
        a = ctl_at(peers, 0);
        b = ctl_at(peers, 1);
        assert_int_equal(json_get_u64(a, "pid", 0), getpid());
        assert_int_equal(json_get_u64(a, "uid", 1), getuid());
        assert_int_equal(json_get_u64(a, "n_nodes", 0), 1);
        assert_int_equal(json_get_u64(a, "n_handles", 0), 1);
        assert_int_equal(json_get_u64(a, "n_queued", 0), 2);
        assert_int_equal(json_get_u64(json_get(a, "usage"), "slices", 0), 2);
        assert_int_equal(json_get_u64(b, "n_nodes", 1), 0);
        assert_int_equal(json_get_u64(b, "n_handles", 0), 1);
        assert_int_equal(json_get_u64(b, "n_queued", 1), 0);
        assert_true(json_get_bool(b, "hello", false));
        /* the command line is the test program's */
        assert_non_null(strstr(json_get_string(a, "cmdline", ""), "test-ctl"));
        assert_false(json_get_bool(v, "truncated", true));
        assert_int_equal(json_get_u64(v, "n_peers", 0), 2);
        json_free(v);

        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("peers"));
        assert_true(strncmp(run.out, "ID ", 3) == 0);
        assert_non_null(strstr(run.out, "COMMAND"));
        snprintf(line, sizeof(line), "\n%" PRIu64 " ", p.id_a);
        assert_non_null(strstr(run.out, line));
        assert_non_null(strstr(run.out, "2 peers listed."));
        ctl_free(&run);

        /* no legend: exactly one line per peer */
        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("--no-legend", "peers"));
        assert_int_equal(strchr(strchr(run.out, '\n') + 1, '\n')[1], 0);
        ctl_free(&run);
        ctl_peers_close(&p);
}

static void test_peer(void **state) {
        const JsonValue *nodes, *handles, *queue, *slices, *e;
        char id_a[32], id_b[32];
        JsonValue *v;
        CtlPeers p;
        CtlRun run;

        ctl_peers_setup(&p);
        snprintf(id_a, sizeof(id_a), "%" PRIu64, p.id_a);
        snprintf(id_b, sizeof(id_b), "%" PRIu64, p.id_b);

        v = ctl_json((uid_t)-1, CTL_ARGS("--json", "peer", id_a));
        assert_int_equal(json_get_u64(v, "id", 0), p.id_a);
        nodes = json_get_array(v, "nodes");
        assert_int_equal(nodes->n_children, 1);
        assert_int_equal(json_get_u64(ctl_at(nodes, 0), "handle", 0), 0x100);
        assert_int_equal(json_get_u64(ctl_at(nodes, 0), "holders", 0), 2);
        assert_int_equal(json_get_u64(ctl_at(nodes, 0), "queued", 0), 2);
        assert_false(json_get_bool(ctl_at(nodes, 0), "destroyed", true));
        handles = json_get_array(v, "handles");
        assert_int_equal(handles->n_children, 1);
        assert_true(json_get_bool(ctl_at(handles, 0), "own", false));
        queue = json_get_array(v, "queue");
        assert_int_equal(queue->n_children, 2);
        for (size_t i = 0; i < 2; ++i) {
                e = ctl_at(queue, i);
                assert_string_equal(json_get_string(e, "type", ""), "data");
                assert_int_equal(json_get_u64(e, "sender", 0), p.id_b);
                assert_int_equal(json_get_u64(e, "sender_pid", 0), getpid());
                assert_int_equal(json_get_u64(e, "sender_uid", 1), getuid());
                assert_int_equal(json_get_u64(e, "destination", 0), 0x100);
                assert_int_equal(json_get_u64(e, "node", 0), p.node);
                assert_int_equal(json_get_u64(e, "bytes", 0), i ? 4 : 3);
        }
        assert_true(json_get_u64(ctl_at(queue, 0), "seq", 0) <
                    json_get_u64(ctl_at(queue, 1), "seq", 0));
        slices = json_get_array(v, "slices");
        assert_int_equal(slices->n_children, 2);
        assert_string_equal(json_get_string(ctl_at(slices, 0), "state", ""), "queued");
        assert_int_equal(json_get_u64(json_get(v, "limits"), "handles", 0), 65536);
        /* each list's length in full: here all of it is shown */
        assert_int_equal(json_get_u64(v, "n_nodes", 0), 1);
        assert_int_equal(json_get_u64(v, "n_destroyed_nodes", 1), 0);
        assert_int_equal(json_get_u64(v, "n_handles", 0), 1);
        assert_int_equal(json_get_u64(v, "n_queued", 0), 2);
        assert_int_equal(json_get_u64(v, "n_slices", 0), 2);
        json_free(v);

        v = ctl_json((uid_t)-1, CTL_ARGS("--json", "peer", id_b));
        handles = json_get_array(v, "handles");
        assert_int_equal(handles->n_children, 1);
        assert_int_equal(json_get_u64(ctl_at(handles, 0), "id", 0), p.handle_b);
        assert_int_equal(json_get_u64(ctl_at(handles, 0), "node", 0), p.node);
        assert_int_equal(json_get_u64(ctl_at(handles, 0), "owner", 0), p.id_a);
        assert_false(json_get_bool(ctl_at(handles, 0), "own", true));
        assert_int_equal(json_get_array(v, "queue")->n_children, 0);
        json_free(v);

        /* a received slice waits for SLICE_RELEASE */
        {
                struct bus1_cmd_recv recv = { .max_offset = POOL_MAP };
                struct bus1_cmd_peer_reset query = {};

                assert_int_equal(bus1_uapi_ioctl(p.a, BUS1_CMD_RECV, &recv), 0);
                /*
                 * The library may have answered from a pushed entry: the
                 * broker learns of that dequeue before the peer's next
                 * request, and bus1ctl shows the broker's view.
                 */
                assert_int_equal(bus1_uapi_ioctl(p.a, BUS1_CMD_PEER_QUERY, &query), 0);
                v = ctl_json((uid_t)-1, CTL_ARGS("--json", "peer", id_a));
                slices = json_get_array(v, "slices");
                assert_string_equal(json_get_string(ctl_at(slices, 0), "state", ""),
                                    "received");
                assert_int_equal(json_get_array(v, "queue")->n_children, 1);
                json_free(v);
        }

        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("peer", id_a));
        assert_non_null(strstr(run.out, "Nodes (1):"));
        assert_non_null(strstr(run.out, "Handles (1):"));
        assert_non_null(strstr(run.out, "Queue (1):"));
        assert_non_null(strstr(run.out, "Pool slices (2):"));
        assert_non_null(strstr(run.out, "0x100"));
        ctl_free(&run);

        ctl_expect(&run, (uid_t)-1, 1, CTL_ARGS("peer", "999999"));
        assert_non_null(strstr(run.err, "Failed to show peer 999999"));
        ctl_free(&run);
        ctl_peers_close(&p);
}

static void test_quota(void **state) {
        const JsonValue *users, *u = NULL, *holders;
        char uid[32];
        JsonValue *v;
        CtlPeers p;
        CtlRun run;

        ctl_peers_setup(&p);
        snprintf(uid, sizeof(uid), "%u", (unsigned int)getuid());
        v = ctl_json((uid_t)-1, CTL_ARGS("--json", "quota", uid));
        users = json_get_array(v, "users");
        assert_int_equal(users->n_children, 1);
        u = ctl_at(users, 0);
        assert_int_equal(json_get_u64(u, "uid", 1), getuid());
        /* two peers and this bus1ctl */
        assert_int_equal(json_get_u64(u, "peers", 0), 3);
        assert_int_equal(json_get_u64(json_get(u, "used"), "slices", 0), 2);
        assert_int_equal(json_get_u64(json_get(u, "limits"), "fds", 0), 4096);
        holders = json_get_array(u, "holders");
        assert_int_equal(holders->n_children, 3);
        assert_int_equal(json_get_u64(ctl_at(holders, 0), "peer", 0), p.id_a);
        assert_int_equal(json_get_u64(json_get(ctl_at(holders, 0), "usage"), "slices", 0), 2);
        assert_non_null(json_get_array(u, "actors"));
        assert_int_equal(json_get(u, "last_own_refusal")->type, JSON_NULL);
        json_free(v);

        /* all UIDs: the same one here */
        v = ctl_json((uid_t)-1, CTL_ARGS("--json", "quota"));
        assert_int_equal(json_get_array(v, "users")->n_children, 1);
        json_free(v);

        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("quota"));
        assert_non_null(strstr(run.out, "RESOURCE"));
        assert_non_null(strstr(run.out, "Held by its peers (3):"));
        ctl_free(&run);

        /* a UID without peers has nothing to show */
        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("quota", "4242"));
        assert_non_null(strstr(run.out, "No UID"));
        ctl_free(&run);

        /* a user name is as good as its UID */
        {
                struct passwd *pw = getpwuid(getuid());
                char name[256];

                assert_non_null(pw);
                snprintf(name, sizeof(name), "%s", pw->pw_name);
                v = ctl_json((uid_t)-1, CTL_ARGS("--json", "quota", name));
                users = json_get_array(v, "users");
                assert_int_equal(users->n_children, 1);
                assert_int_equal(json_get_u64(ctl_at(users, 0), "uid", 1), getuid());
                assert_int_equal(json_get_u64(ctl_at(users, 0), "n_actors", 1), 0);
                json_free(v);
                ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("quota", name));
                snprintf(uid, sizeof(uid), "UID %u: 3 peers", (unsigned int)getuid());
                assert_non_null(strstr(run.out, uid));
                ctl_free(&run);
        }
        /* root is UID 0 everywhere: both name the same user */
        {
                JsonValue *by_uid = ctl_json((uid_t)-1, CTL_ARGS("--json", "quota", "0"));

                v = ctl_json((uid_t)-1, CTL_ARGS("--json", "quota", "root"));
                assert_int_equal(json_get_array(v, "users")->n_children,
                                 json_get_array(by_uid, "users")->n_children);
                json_free(by_uid);
                json_free(v);
        }
        /* a name nobody has is a clear failure, before any connection */
        ctl_expect(&run, (uid_t)-1, 1, CTL_ARGS("quota", "no-such-user-bus1ctl"));
        assert_non_null(strstr(run.err, "no such user: no-such-user-bus1ctl"));
        assert_string_equal(run.out, "");
        ctl_free(&run);
        ctl_expect(&run, (uid_t)-1, 1, CTL_ARGS("monitor", "--uid=no-such-user-bus1ctl"));
        assert_non_null(strstr(run.err, "no such user: no-such-user-bus1ctl"));
        ctl_free(&run);
        ctl_expect(&run, (uid_t)-1, 1, CTL_ARGS("quota", "4294967295"));
        assert_non_null(strstr(run.err, "Failed to parse UID"));
        ctl_free(&run);
        ctl_peers_close(&p);
}

/*
 * A list the broker cuts at its limit (4096 entries) says how long it
 * is: a peer with 8192 queued messages (and as many slices) heads its
 * queue "Queue (4096 shown of 8192)", and --json has the full count
 * beside the cut list.
 */
static void test_peer_cut(void **state) {
        const unsigned int n_msgs = 8192;
        char id_a[32], id_b[32];
        JsonValue *v;
        CtlPeers p;
        CtlRun run;

        ctl_peers_setup(&p);
        /* two are queued already */
        for (unsigned int i = 2; i < n_msgs; ++i)
                assert_int_equal(ctl_send(p.b, p.handle_b, "x"), 0);
        snprintf(id_a, sizeof(id_a), "%" PRIu64, p.id_a);
        snprintf(id_b, sizeof(id_b), "%" PRIu64, p.id_b);

        v = ctl_json((uid_t)-1, CTL_ARGS("--json", "peer", id_a));
        assert_true(json_get_bool(v, "truncated", false));
        assert_int_equal(json_get_u64(v, "n_queued", 0), n_msgs);
        assert_int_equal(json_get_array(v, "queue")->n_children, 4096);
        assert_int_equal(json_get_u64(v, "n_slices", 0), n_msgs);
        assert_int_equal(json_get_array(v, "slices")->n_children, 4096);
        assert_int_equal(json_get_u64(v, "n_nodes", 0), 1);
        assert_int_equal(json_get_array(v, "nodes")->n_children, 1);
        json_free(v);

        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("peer", id_a));
        ctl_assert_has(run.out, "Queue (4096 shown of 8192):");
        ctl_assert_has(run.out, "Pool slices (4096 shown of 8192):");
        /* lists that were not cut keep the plain count */
        ctl_assert_has(run.out, "Nodes (1):");
        ctl_assert_has(run.out, "Handles (1):");
        assert_null(strstr(run.out, "Queue (4096):"));
        ctl_assert_has(run.out, "cut short");
        ctl_free(&run);

        /* the sender's lists are short: nothing is said to be cut */
        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("peer", id_b));
        ctl_assert_has(run.out, "Queue (0):");
        assert_null(strstr(run.out, "shown of"));
        assert_null(strstr(run.out, "cut short"));
        ctl_free(&run);

        /* the whole queue is there, only not listed */
        v = ctl_json((uid_t)-1, CTL_ARGS("--json", "status"));
        assert_int_equal(json_get_u64(v, "queued_messages", 0), n_msgs);
        json_free(v);
        ctl_peers_close(&p);
}

static bool ctl_metric_name_ok(const char *s, size_t n) {
        for (size_t i = 0; i < n; ++i) {
                char c = s[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                      c == ':' || (i > 0 && c >= '0' && c <= '9')))
                        return false;
        }
        return n > 0;
}

/*
 * The OpenMetrics text format, as much as the broker uses of it: families
 * declared by "# TYPE name type" before their samples, types known, counter
 * samples named NAME_total, info samples NAME_info, label sets well formed,
 * integer values, and "# EOF" as the last line. Return the value of @want.
 */
static uint64_t ctl_check_openmetrics(const char *text, const char *want) {
        char family[128] = "", type[32] = "";
        uint64_t found = UINT64_MAX;
        const char *line = text, *end;
        bool eof = false;

        assert_true(strlen(text) > 6);
        assert_string_equal(text + strlen(text) - 6, "# EOF\n");
        for (; *line; line = end + 1) {
                char name[160], rest[200];
                unsigned long long v;
                size_t n;

                end = strchr(line, '\n');
                assert_non_null(end);
                assert_false(eof);
                n = (size_t)(end - line);
                assert_true(n > 0 && n < sizeof(rest));
                if (strncmp(line, "# EOF", n) == 0 && n == 5) {
                        eof = true;
                        continue;
                }
                if (strncmp(line, "# TYPE ", 7) == 0) {
                        assert_int_equal(sscanf(line, "# TYPE %127s %31s", family, type), 2);
                        assert_true(ctl_metric_name_ok(family, strlen(family)));
                        assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                                    strcmp(type, "info") == 0);
                        /* a counter family is named without its _total */
                        assert_null(strstr(family, "_total"));
                        continue;
                }
                if (strncmp(line, "# HELP ", 7) == 0) {
                        assert_true(strncmp(line + 7, family, strlen(family)) == 0);
                        continue;
                }
                assert_true(line[0] != '#');
                assert_true(family[0] != 0);
                n = strcspn(line, "{ ");
                assert_true(n < sizeof(name));
                memcpy(name, line, n);
                name[n] = 0;
                assert_true(ctl_metric_name_ok(name, n));
                if (strcmp(type, "counter") == 0)
                        snprintf(rest, sizeof(rest), "%s_total", family);
                else if (strcmp(type, "info") == 0)
                        snprintf(rest, sizeof(rest), "%s_info", family);
                else
                        snprintf(rest, sizeof(rest), "%s", family);
                assert_string_equal(name, rest);
                if (line[n] == '{') {
                        const char *close = strchr(line + n, '}');

                        assert_true(close && close < end);
                        assert_non_null(strstr(line + n, "=\""));
                        n = (size_t)(close - line) + 1;
                }
                assert_int_equal(line[n], ' ');
                assert_int_equal(sscanf(line + n + 1, "%llu", &v), 1);
                if (strncmp(line, want, strlen(want)) == 0 && line[strlen(want)] == ' ')
                        found = v;
        }
        assert_true(eof);
        return found;
}

static void test_metrics(void **state) {
        const JsonValue *families;
        JsonValue *v;
        CtlPeers p;
        CtlRun run;

        ctl_peers_setup(&p);
        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("metrics"));
        assert_int_equal(ctl_check_openmetrics(run.out, "bus1d_peers"), 2);
        assert_int_equal(ctl_check_openmetrics(run.out, "bus1d_nodes"), 1);
        assert_int_equal(ctl_check_openmetrics(run.out, "bus1d_messages_sent_total"), 2);
        assert_int_equal(ctl_check_openmetrics(run.out, "bus1d_bytes_sent_total"), 7);
        assert_int_equal(ctl_check_openmetrics(run.out, "bus1d_queued_messages"), 2);
        assert_int_equal(ctl_check_openmetrics(run.out,
                                               "bus1d_quota_refusals_total{resource=\"bytes\"}"),
                         0);
        ctl_free(&run);

        v = ctl_json((uid_t)-1, CTL_ARGS("--json", "metrics"));
        families = json_get_array(v, "families");
        assert_non_null(families);
        assert_true(families->n_children > 10);
        for (size_t i = 0; i < families->n_children; ++i) {
                const JsonValue *f = ctl_at(families, i);

                assert_non_null(json_get_string(f, "name", NULL));
                assert_non_null(json_get_string(f, "type", NULL));
                assert_true(json_get_array(f, "samples")->n_children >= 1);
        }
        json_free(v);
        ctl_peers_close(&p);
}

/* the broker's METRICS body on @client: without flags OpenMetrics, with PROTO_CTL_FLAG_JSON JSON */
static char *ctl_broker_metrics(CtlClient *client, uint64_t flags, uint32_t format) {
        ProtoCtl req = { .type = PROTO_TYPE_CTL_METRICS, .flags = flags };
        uint32_t got_format = 0, got_flags = 0;
        char *body = NULL;
        size_t len = 0;

        assert_int_equal(ctl_client_request(client, &req, &body, &len, &got_format, &got_flags),
                         0);
        assert_int_equal(got_format, format);
        assert_int_equal(got_flags, 0);
        assert_non_null(body);
        assert_int_equal(strlen(body), len);
        return body;
}

/* a string of the broker's metrics: nothing OpenMetrics would have to escape */
static const char *ctl_plain(const char *s) {
        assert_non_null(s);
        assert_null(strpbrk(s, "\\\"\n"));
        return s;
}

/*
 * The OpenMetrics text of METRICS as JSON, written here independently of
 * the broker and of bus1ctl: {"families": [{"name", "type", "help",
 * "samples": [{"name", "labels", "value"}]}]}.
 */
static char *ctl_metrics_text_of(const JsonValue *v) {
        const JsonValue *families = json_get_array(v, "families");
        char *text = NULL;
        size_t len = 0;
        FILE *f;

        assert_non_null(families);
        f = open_memstream(&text, &len);
        assert_non_null(f);
        for (size_t i = 0; i < families->n_children; ++i) {
                const JsonValue *family = ctl_at(families, i);
                const JsonValue *samples = json_get_array(family, "samples");
                const char *name = ctl_plain(json_get_string(family, "name", NULL));

                fprintf(f, "# TYPE %s %s\n", name,
                        ctl_plain(json_get_string(family, "type", NULL)));
                fprintf(f, "# HELP %s %s\n", name,
                        ctl_plain(json_get_string(family, "help", NULL)));
                assert_non_null(samples);
                for (size_t j = 0; j < samples->n_children; ++j) {
                        const JsonValue *sample = ctl_at(samples, j);
                        const JsonValue *labels = json_get(sample, "labels");
                        const JsonValue *value = json_get(sample, "value");

                        fputs(ctl_plain(json_get_string(sample, "name", NULL)), f);
                        assert_non_null(labels);
                        assert_int_equal(labels->type, JSON_OBJECT);
                        for (size_t k = 0; k < labels->n_children; ++k)
                                fprintf(f, "%s%s=\"%s\"", k ? "," : "{",
                                        labels->children[k].key,
                                        ctl_plain(labels->children[k].string));
                        if (labels->n_children)
                                fputc('}', f);
                        assert_true(value && value->is_u64);
                        fprintf(f, " %" PRIu64 "\n", value->u64);
                }
        }
        fputs("# EOF\n", f);
        assert_int_equal(fclose(f), 0);
        return text;
}

/*
 * @got is @want line for line, byte for byte, but for the values of the
 * samples named in @varying: each is its value in @want plus one if
 * @one_more, else at least its value in @want.
 */
static void ctl_assert_metrics_like(const char *got, const char *want,
                                    const char *const *varying, bool one_more) {
        const char *g = got, *w = want;

        while (*g && *w) {
                size_t n_g = strcspn(g, "\n"), n_w = strcspn(w, "\n");
                bool varies = false;

                for (size_t i = 0; varying[i]; ++i) {
                        size_t n = strlen(varying[i]);

                        if (strncmp(w, varying[i], n) == 0 && w[n] == ' ' &&
                            strncmp(g, varying[i], n) == 0 && g[n] == ' ') {
                                uint64_t v_g = strtoull(g + n + 1, NULL, 10);
                                uint64_t v_w = strtoull(w + n + 1, NULL, 10);

                                if (one_more ? v_g != v_w + 1 : v_g < v_w)
                                        fail_msg("%s: %" PRIu64 " where the broker said %"
                                                 PRIu64, varying[i], v_g, v_w);
                                varies = true;
                        }
                }
                if (!varies && (n_g != n_w || memcmp(g, w, n_g) != 0))
                        fail_msg("\"%.*s\" where the broker says \"%.*s\"", (int)n_g, g,
                                 (int)n_w, w);
                g += n_g + (g[n_g] == '\n');
                w += n_w + (w[n_w] == '\n');
        }
        if (*g || *w)
                fail_msg("the metrics differ in length: \"%s\" against \"%s\"", g, w);
}

/*
 * METRICS in both formats: the broker's OpenMetrics text (what scrapers
 * read) and its JSON carry the same families, samples and values (asked on
 * one connection with nothing in between), and the text bus1ctl renders
 * from the JSON, as well as its --json, is the broker's text, byte for
 * byte, but for bus1ctl's own connection: one more accepted and one more
 * open (for the second bus1ctl, at least as many: the broker may not have
 * seen the first one go yet).
 */
static void test_metrics_formats(void **state) {
        static const char *const varying[] = {
                "bus1d_connections_total", "bus1d_control_connections", NULL,
        };
        CtlClient client = CTL_CLIENT_NULL;
        char *text, *json, *rendered;
        JsonValue *v = NULL;
        CtlRun run;

        assert_int_equal(ctl_client_connect(&client, ctl_broker.path), 0);
        text = ctl_broker_metrics(&client, 0, PROTO_CTL_FORMAT_OPENMETRICS);
        json = ctl_broker_metrics(&client, PROTO_CTL_FLAG_JSON, PROTO_CTL_FORMAT_JSON);
        assert_int_equal(ctl_check_openmetrics(text, "bus1d_control_connections"), 1);
        assert_int_equal(json_parse(&v, json, strlen(json)), 0);
        rendered = ctl_metrics_text_of(v);
        assert_string_equal(rendered, text);
        free(rendered);
        json_free(v);

        /* bus1ctl, while the connection above stays open */
        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("metrics"));
        ctl_check_openmetrics(run.out, "bus1d_peers");
        ctl_assert_metrics_like(run.out, text, varying, true);
        ctl_free(&run);
        v = ctl_json((uid_t)-1, CTL_ARGS("--json", "metrics"));
        rendered = ctl_metrics_text_of(v);
        ctl_assert_metrics_like(rendered, text, varying, false);
        free(rendered);
        json_free(v);

        free(json);
        free(text);
        ctl_client_close(&client);
}

/* STATUS's pool_resident_bytes, or after 6 s of waiting for @want */
static uint64_t ctl_pool_resident_settle(bool (*want)(uint64_t)) {
        uint64_t n = 0;

        for (int i = 0; i < 60; ++i) {
                JsonValue *v = ctl_json((uid_t)-1, CTL_ARGS("status", "--json"));

                n = json_get_u64(v, "pool_resident_bytes", UINT64_MAX);
                json_free(v);
                if (want(n))
                        break;
                usleep(100 * 1000);
        }
        return n;
}

static bool ctl_is_zero(uint64_t n) {
        return n == 0;
}

/*
 * Pool pages are visible: the receiver's pool takes memory while messages
 * are queued (STATUS, PEERS, PEER, QUOTA and METRICS say how much), and
 * once everything is released the idle pool gives it back within a few
 * seconds.
 */
static void test_pool_resident(void **state) {
        const JsonValue *peers, *users;
        JsonValue *v;
        CtlPeers p;
        CtlRun run;
        char id[32];

        ctl_peers_setup(&p);
        v = ctl_json((uid_t)-1, CTL_ARGS("status", "--json"));
        assert_true(json_get_u64(v, "pool_resident_bytes", 0) >= 4096);
        json_free(v);

        v = ctl_json((uid_t)-1, CTL_ARGS("peers", "--json"));
        peers = json_get_array(v, "peers");
        assert_non_null(peers);
        assert_true(json_get_u64(ctl_at(peers, 0), "pool_resident", 0) >= 4096);
        assert_int_equal(json_get_u64(ctl_at(peers, 1), "pool_resident", 1), 0);
        json_free(v);

        snprintf(id, sizeof(id), "%" PRIu64, p.id_a);
        v = ctl_json((uid_t)-1, CTL_ARGS("peer", id, "--json"));
        assert_true(json_get_u64(v, "pool_resident", 0) >= 4096);
        json_free(v);

        v = ctl_json((uid_t)-1, CTL_ARGS("quota", "--json"));
        users = json_get_array(v, "users");
        assert_non_null(users);
        assert_true(json_get_u64(ctl_at(users, 0), "pool_resident", 0) >= 4096);
        json_free(v);

        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("metrics"));
        assert_true(ctl_check_openmetrics(run.out, "bus1d_pool_resident_bytes") >= 4096);
        ctl_free(&run);

        ctl_recv_release(p.a);
        ctl_recv_release(p.a);
        assert_int_equal(ctl_pool_resident_settle(ctl_is_zero), 0);
        ctl_peers_close(&p);
}

/* a child holding a peer as @uid, with one node of its own, until told to go */
typedef struct CtlForeign {
        pid_t pid;
        int release;            /* closing it ends the child */
} CtlForeign;

static void ctl_foreign_start(CtlForeign *f, uid_t uid) {
        int ready[2], release[2];
        char c;

        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        assert_int_equal(pipe2(release, O_CLOEXEC), 0);
        f->pid = fork();
        assert_true(f->pid >= 0);
        if (f->pid == 0) {
                struct bus1_cmd_handle_transfer t = { .src_handle = 0x100, .dst_fd = -1 };
                int peer;

                if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
                    setresuid(uid, uid, uid) < 0)
                        _exit(2);
                peer = bus1_uapi_open(NULL);
                if (peer < 0 || bus1_uapi_ioctl(peer, BUS1_CMD_HANDLE_TRANSFER, &t) < 0)
                        _exit(3);
                if (write(ready[1], "x", 1) != 1)
                        _exit(4);
                close(release[1]);
                while (read(release[0], &c, 1) > 0)
                        ;
                bus1_uapi_close(peer);
                _exit(0);
        }
        ctl_child_add(f->pid);
        close(ready[1]);
        close(release[0]);
        f->release = release[1];
        assert_int_equal(read(ready[0], &c, 1), 1);
        close(ready[0]);
}

static void ctl_foreign_stop(CtlForeign *f) {
        int status;

        close(f->release);
        assert_int_equal(waitpid(f->pid, &status, 0), f->pid);
        ctl_child_forget(f->pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_access(void **state) {
        const JsonValue *peers, *users;
        char id_a[32], id_c[32];
        CtlForeign nobody;
        JsonValue *v;
        CtlPeers p;
        CtlRun run;
        uint64_t id_nobody;

        ctl_require_uid("test_access", CTL_NOBODY);
        /* nobody must reach the socket in the private directory */
        assert_int_equal(chmod(ctl_broker.dir, 0755), 0);
        assert_int_equal(chmod(ctl_broker.path, 0666), 0);

        ctl_peers_setup(&p);
        ctl_foreign_start(&nobody, CTL_NOBODY);
        snprintf(id_a, sizeof(id_a), "%" PRIu64, p.id_a);

        /* root sees all three */
        v = ctl_json((uid_t)-1, CTL_ARGS("--json", "peers"));
        peers = json_get_array(v, "peers");
        assert_int_equal(peers->n_children, 3);
        id_nobody = json_get_u64(ctl_at(peers, 2), "id", 0);
        assert_int_equal(json_get_u64(ctl_at(peers, 2), "uid", 0), CTL_NOBODY);
        json_free(v);
        snprintf(id_c, sizeof(id_c), "%" PRIu64, id_nobody);

        /* nobody sees its own peer only */
        v = ctl_json(CTL_NOBODY, CTL_ARGS("--json", "peers"));
        peers = json_get_array(v, "peers");
        assert_int_equal(peers->n_children, 1);
        assert_int_equal(json_get_u64(ctl_at(peers, 0), "id", 0), id_nobody);
        json_free(v);

        v = ctl_json(CTL_NOBODY, CTL_ARGS("--json", "status"));
        assert_string_equal(json_get_string(v, "scope", ""), "uid");
        assert_int_equal(json_get_u64(v, "peers", 0), 1);
        assert_int_equal(json_get_u64(v, "nodes", 0), 1);
        assert_int_equal(json_get_u64(v, "queued_messages", 1), 0);
        json_free(v);

        v = ctl_json(CTL_NOBODY, CTL_ARGS("--json", "peer", id_c));
        assert_int_equal(json_get_array(v, "nodes")->n_children, 1);
        json_free(v);

        /* root's peers are as unknown to nobody as missing ones */
        ctl_expect(&run, CTL_NOBODY, 1, CTL_ARGS("peer", id_a));
        ctl_free(&run);
        ctl_expect(&run, CTL_NOBODY, 1, CTL_ARGS("quota", "0"));
        assert_non_null(strstr(run.err, "Operation not permitted"));
        ctl_free(&run);
        ctl_expect(&run, CTL_NOBODY, 1, CTL_ARGS("metrics"));
        assert_non_null(strstr(run.err, "Operation not permitted"));
        ctl_free(&run);
        ctl_expect(&run, CTL_NOBODY, 1, CTL_ARGS("--json", "metrics"));
        assert_non_null(strstr(run.err, "Operation not permitted"));
        ctl_free(&run);

        v = ctl_json(CTL_NOBODY, CTL_ARGS("--json", "quota"));
        users = json_get_array(v, "users");
        assert_int_equal(users->n_children, 1);
        assert_int_equal(json_get_u64(ctl_at(users, 0), "uid", 0), CTL_NOBODY);
        json_free(v);

        /* root sees nobody's quota too */
        v = ctl_json((uid_t)-1, CTL_ARGS("--json", "quota"));
        assert_true(json_get_array(v, "users")->n_children >= 2);
        json_free(v);

        ctl_foreign_stop(&nobody);
        ctl_peers_close(&p);
}

/* wait until the broker serves @n monitors */
static void ctl_wait_monitors(uint64_t n) {
        for (int i = 0; i < 500; ++i) {
                JsonValue *v = ctl_json((uid_t)-1, CTL_ARGS("--json", "status"));
                uint64_t m = json_get_u64(v, "monitors", 0);

                json_free(v);
                if (m == n)
                        return;
                usleep(10000);
        }
        fail_msg("the broker never had %" PRIu64 " monitors", n);
}

/* wait until a running bus1ctl's output contains @what (NULL: stops growing) */
static void ctl_wait_output(CtlRun *run, const char *what) {
        off_t last = -1;
        int still = 0;

        for (int i = 0; i < 1000; ++i) {
                struct stat st;

                assert_int_equal(fstat(run->out_fd, &st), 0);
                if (what) {
                        char *out = ctl_read_fd(run->out_fd);
                        bool found = strstr(out, what) != NULL;

                        free(out);
                        if (found)
                                return;
                } else if (st.st_size == last && ++still >= 20) {
                        return;
                } else if (st.st_size != last) {
                        still = 0;
                }
                last = st.st_size;
                usleep(10000);
        }
        if (what)
                fail_msg("bus1ctl never printed \"%s\"", what);
}

/* stop a monitor and parse its lines: one JSON object each */
static JsonValue **ctl_monitor_stop(CtlRun *run, size_t *np) {
        JsonValue **lines = NULL;
        char *line, *save = NULL;
        size_t n = 0;

        /* what the broker wrote may still be on its way to the output */
        ctl_wait_output(run, NULL);
        kill(run->pid, SIGINT);
        ctl_wait(run);
        assert_true(WIFEXITED(run->status));
        assert_int_equal(WEXITSTATUS(run->status), 0);
        for (line = strtok_r(run->out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                lines = realloc(lines, (n + 1) * sizeof(*lines));
                assert_non_null(lines);
                if (json_parse(&lines[n], line, strlen(line)) < 0)
                        fail_msg("monitor line is no JSON: %s", line);
                assert_int_equal(lines[n]->type, JSON_OBJECT);
                ++n;
        }
        *np = n;
        return lines;
}

static void ctl_lines_free(JsonValue **lines, size_t n) {
        for (size_t i = 0; i < n; ++i)
                json_free(lines[i]);
        free(lines);
}

static size_t ctl_count_type(JsonValue **lines, size_t n, const char *type) {
        size_t c = 0;

        for (size_t i = 0; i < n; ++i)
                c += strcmp(json_get_string(lines[i], "type", ""), type) == 0;
        return c;
}

/* a line from @fd within 5 s, into @buf; false at EOF */
static bool ctl_read_line(int fd, char *buf, size_t size) {
        size_t n = 0;

        while (n + 1 < size) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t l;

                if (poll(&p, 1, 5000) != 1)
                        fail_msg("no line from the monitor within 5 s (got \"%.*s\")",
                                 (int)n, buf);
                l = read(fd, buf + n, 1);
                if (l <= 0)
                        return false;
                if (buf[n] == '\n')
                        break;
                ++n;
        }
        buf[n] = 0;
        return true;
}

/*
 * bus1ctl monitor into a pipe (as in `bus1ctl monitor | grep send`): each
 * event line comes as it happens, not when a buffer fills; once the pipe's
 * reader is gone, the next event ends the monitor quietly with status 0.
 */
static void test_monitor_pipe(void **state) {
        CtlRun run = { .err_fd = -1 };
        char line[512];
        CtlPeers p;
        int pipefd[2], status = 0;

        ctl_peers_setup(&p);
        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        run.err_fd = memfd_create("err", 0);
        assert_true(run.err_fd >= 0);
        run.pid = fork();
        assert_true(run.pid >= 0);
        if (run.pid == 0) {
                char address[200];

                snprintf(address, sizeof(address), "--address=%s", ctl_broker.path);
                if (dup2(pipefd[1], 1) < 0 || dup2(run.err_fd, 2) < 0)
                        _exit(126);
                execl(ctl_path(), ctl_path(), address, "monitor", "--no-legend", (char *)NULL);
                _exit(127);
        }
        ctl_child_add(run.pid);
        close(pipefd[1]);
        ctl_wait_monitors(1);

        assert_int_equal(ctl_send(p.b, p.handle_b, "piped"), 0);
        assert_true(ctl_read_line(pipefd[0], line, sizeof(line)));
        if (!strstr(line, "send"))
                fail_msg("first monitor line is not the send: %s", line);

        /* the reader goes; the next event's line finds no reader */
        close(pipefd[0]);
        assert_int_equal(ctl_send(p.b, p.handle_b, "unread"), 0);
        for (int i = 0; i < 500; ++i) {
                if (waitpid(run.pid, &status, WNOHANG) == run.pid)
                        break;
                usleep(10000);
                if (i == 499)
                        fail_msg("the monitor did not end after its pipe closed");
        }
        ctl_child_forget(run.pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        run.err = ctl_read_fd(run.err_fd);
        assert_string_equal(run.err, "");
        close(run.err_fd);
        free(run.err);
        ctl_peers_close(&p);
}

/*
 * Traffic for the monitor filters: a receives the two queued messages
 * (deliver), a new peer c gets a handle from a (transfer) and sends to a
 * node of its own; b releases its handle (release on a's node), a destroys
 * its node. Return: c.
 */
static int ctl_filter_traffic(CtlPeers *p) {
        int c;

        c = bus1_uapi_open(NULL);
        assert_true(c >= 0);
        ctl_recv_release(p->a);
        ctl_recv_release(p->a);
        {
                uint64_t own = ctl_transfer(c, 0x200, -1);
                uint64_t id = ctl_transfer(p->a, 0x100, c);

                assert_int_equal(ctl_send(c, own, "self"), 0);
                assert_int_equal(bus1_uapi_ioctl(c, BUS1_CMD_HANDLE_RELEASE, &id), 0);
        }
        assert_int_equal(bus1_uapi_ioctl(p->b, BUS1_CMD_HANDLE_RELEASE, &p->handle_b), 0);
        {
                uint64_t ids[1] = { 0x100 };
                struct bus1_cmd_nodes_destroy d = {
                        .ptr_nodes = (uintptr_t)ids,
                        .n_nodes = 1,
                };

                assert_int_equal(bus1_uapi_ioctl(p->a, BUS1_CMD_NODES_DESTROY, &d), 0);
        }
        return c;
}

static void test_monitor_filters(void **state) {
        CtlRun all, sends, by_peer, by_node, by_uid, other_uid, text;
        JsonValue **lines;
        char peer[32], node[32], uid[32];
        CtlPeers p;
        size_t n;
        int c;

        ctl_peers_setup(&p);
        snprintf(peer, sizeof(peer), "--peer=%" PRIu64, p.id_a);
        snprintf(node, sizeof(node), "--node=%" PRIu64, p.node);
        snprintf(uid, sizeof(uid), "--uid=%u", (unsigned int)getuid());
        ctl_spawn(&all, (uid_t)-1, CTL_ARGS("--json", "monitor"));
        ctl_spawn(&sends, (uid_t)-1, CTL_ARGS("--json", "monitor", "--type=send,refusal"));
        ctl_spawn(&by_peer, (uid_t)-1, CTL_ARGS("--json", "monitor", peer));
        ctl_spawn(&by_node, (uid_t)-1, CTL_ARGS("--json", "monitor", node));
        ctl_spawn(&by_uid, (uid_t)-1, CTL_ARGS("--json", "monitor", uid));
        ctl_spawn(&other_uid, (uid_t)-1, CTL_ARGS("--json", "monitor", "--uid=4242"));
        ctl_spawn(&text, (uid_t)-1, CTL_ARGS("monitor"));
        ctl_wait_monitors(7);

        c = ctl_filter_traffic(&p);
        /* the last event: every monitor that wants it has it once it shows */
        ctl_wait_output(&all, "\"destroy\"");
        ctl_wait_output(&text, " destroy ");

        lines = ctl_monitor_stop(&all, &n);
        assert_true(ctl_count_type(lines, n, "deliver") >= 2);
        assert_int_equal(ctl_count_type(lines, n, "send"), 1);
        assert_int_equal(ctl_count_type(lines, n, "transfer"), 1);
        assert_int_equal(ctl_count_type(lines, n, "release"), 1);
        assert_int_equal(ctl_count_type(lines, n, "destroy"), 1);
        assert_int_equal(ctl_count_type(lines, n, "lost"), 0);
        for (size_t i = 1; i < n; ++i)
                assert_true(json_get_u64(lines[i], "seq", 0) >=
                            json_get_u64(lines[i - 1], "seq", 0));
        for (size_t i = 0; i < n; ++i)
                assert_true(json_get_u64(lines[i], "time", 0) > 0);
        ctl_lines_free(lines, n);
        ctl_free(&all);

        lines = ctl_monitor_stop(&sends, &n);
        assert_int_equal(n, 1);
        assert_string_equal(json_get_string(lines[0], "type", ""), "send");
        assert_int_equal(json_get_u64(lines[0], "bytes", 0), 4);
        ctl_lines_free(lines, n);
        ctl_free(&sends);

        lines = ctl_monitor_stop(&by_peer, &n);
        assert_true(n >= 4);
        for (size_t i = 0; i < n; ++i)
                assert_true(json_get_u64(lines[i], "peer", 0) == p.id_a ||
                            json_get_u64(lines[i], "target", 0) == p.id_a);
        ctl_lines_free(lines, n);
        ctl_free(&by_peer);

        lines = ctl_monitor_stop(&by_node, &n);
        assert_true(n >= 5);
        for (size_t i = 0; i < n; ++i)
                assert_int_equal(json_get_u64(lines[i], "node", 0), p.node);
        assert_int_equal(ctl_count_type(lines, n, "send"), 0);
        ctl_lines_free(lines, n);
        ctl_free(&by_node);

        lines = ctl_monitor_stop(&by_uid, &n);
        assert_true(n >= 6);
        ctl_lines_free(lines, n);
        ctl_free(&by_uid);

        lines = ctl_monitor_stop(&other_uid, &n);
        assert_int_equal(n, 0);
        ctl_lines_free(lines, n);
        ctl_free(&other_uid);

        ctl_wait_output(&text, NULL);
        kill(text.pid, SIGINT);
        ctl_wait(&text);
        assert_true(WIFEXITED(text.status) && WEXITSTATUS(text.status) == 0);
        assert_true(strncmp(text.out, "TIME", 4) == 0);
        assert_non_null(strstr(text.out, " send "));
        assert_non_null(strstr(text.out, " destroy "));
        ctl_free(&text);

        assert_int_equal(bus1_uapi_close(c), 0);
        ctl_peers_close(&p);
}

/* one of everything: every count bus1ctl prints takes the singular noun */
static void test_plurals(void **state) {
        CtlRun mon, run;
        uint64_t own;
        int x;

        x = bus1_uapi_open(NULL);
        assert_true(x >= 0);
        own = ctl_transfer(x, 0x100, -1);
        ctl_spawn(&mon, (uid_t)-1, CTL_ARGS("monitor"));
        ctl_wait_monitors(1);
        assert_int_equal(ctl_send(x, own, "1"), 0);
        ctl_wait_output(&mon, " send ");

        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("status"));
        /* the monitor and this bus1ctl */
        ctl_assert_has(run.out, "Control: 2 connections, 1 monitor\n");
        ctl_assert_has(run.out, "Handles: 1 (2 references)\n");
        ctl_assert_has(run.out, "Queued: 1 entry, 1 message\n");
        ctl_assert_has(run.out, "In flight: 1 slice, ");
        ctl_assert_has(run.out, " 0 fds\n");
        ctl_free(&run);
        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("peers"));
        ctl_assert_has(run.out, "\n1 peer listed.\n");
        ctl_free(&run);

        ctl_wait_output(&mon, NULL);
        kill(mon.pid, SIGINT);
        ctl_wait(&mon);
        assert_true(WIFEXITED(mon.status) && WEXITSTATUS(mon.status) == 0);
        ctl_assert_has(mon.out, "1 byte, 0 handles, 0 fds");
        ctl_free(&mon);
        ctl_wait_monitors(0);

        /* and the plural where it belongs */
        ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("status"));
        ctl_assert_has(run.out, "Control: 1 connection, 0 monitors\n");
        ctl_free(&run);
        assert_int_equal(bus1_uapi_close(x), 0);
}

/* wait until a running bus1ctl printed @what @count times */
static void ctl_wait_count(CtlRun *run, const char *what, size_t count) {
        size_t n = 0;

        for (int i = 0; i < 1000; ++i) {
                char *out = ctl_read_fd(run->out_fd);
                const char *at = out;

                n = 0;
                while ((at = strstr(at, what))) {
                        ++n;
                        at += strlen(what);
                }
                free(out);
                if (n >= count)
                        return;
                usleep(10000);
        }
        fail_msg("bus1ctl printed \"%s\" %zu times, not %zu", what, n, count);
}

/* a send or deliver line of the text monitor: its MSG, PEER and TARGET columns */
typedef struct CtlTextEvent {
        char type[16];
        uint64_t message, peer, target;
} CtlTextEvent;

static size_t ctl_text_events(const char *out, CtlTextEvent *events, size_t max) {
        const char *line = out, *end;
        size_t n = 0;

        for (; *line; line = end + 1) {
                CtlTextEvent e = {};

                end = strchr(line, '\n');
                assert_non_null(end);
                /* TIME SEQ EVENT MSG PEER (uid U) TARGET (uid U) NODE DETAIL */
                if (sscanf(line, "%*s %*s %15s %" SCNu64 " %" SCNu64 " (uid %*u) %" SCNu64,
                           e.type, &e.message, &e.peer, &e.target) != 4)
                        continue;
                if (strcmp(e.type, "send") != 0 && strcmp(e.type, "deliver") != 0)
                        continue;
                assert_true(n < max);
                events[n++] = e;
        }
        return n;
}

/* the line of @type with message ID @message, or NULL */
static const JsonValue *ctl_find_message(JsonValue **lines, size_t n, const char *type,
                                         uint64_t message) {
        for (size_t i = 0; i < n; ++i)
                if (strcmp(json_get_string(lines[i], "type", ""), type) == 0 &&
                    json_get_u64(lines[i], "message", 0) == message)
                        return lines[i];
        return NULL;
}

/*
 * The JSON lines of test_monitor_messages: three sends of @texts from b to
 * a and five delivers, each send paired with its deliver by a message ID
 * (stored in @ids), the two delivers of older messages with IDs below.
 */
static void ctl_check_message_lines(JsonValue **lines, size_t n, const CtlPeers *p,
                                    const char *const texts[3], uint64_t ids[3]) {
        assert_int_equal(ctl_count_type(lines, n, "send"), 3);
        assert_int_equal(ctl_count_type(lines, n, "deliver"), 5);
        for (size_t i = 0, k = 0; i < n; ++i) {
                const JsonValue *l = lines[i];

                /* the sender acts, the receiver is the target, whatever the type */
                assert_int_equal(json_get_u64(l, "peer", 0), p->id_b);
                assert_int_equal(json_get_u64(l, "target", 0), p->id_a);
                assert_int_equal(json_get_u64(l, "uid", 1), getuid());
                assert_int_equal(json_get_u64(l, "target_uid", 1), getuid());
                assert_int_equal(json_get_u64(l, "pid", 0), getpid());
                assert_int_equal(json_get_u64(l, "node", 0), p->node);
                assert_true(json_get_u64(l, "message", 0) > 0);
                if (strcmp(json_get_string(l, "type", ""), "send") == 0) {
                        assert_true(k < 3);
                        assert_int_equal(json_get_u64(l, "bytes", 0), strlen(texts[k]));
                        ids[k++] = json_get_u64(l, "message", 0);
                }
        }
        assert_true(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
        for (size_t k = 0; k < 3; ++k) {
                const JsonValue *send = ctl_find_message(lines, n, "send", ids[k]);
                const JsonValue *deliver = ctl_find_message(lines, n, "deliver", ids[k]);
                size_t n_same = 0;

                assert_non_null(send);
                assert_non_null(deliver);
                assert_true(json_get_u64(deliver, "seq", 0) >= json_get_u64(send, "seq", 1));
                assert_int_equal(json_get_u64(deliver, "bytes", 0), strlen(texts[k]));
                for (size_t i = 0; i < n; ++i)
                        n_same += json_get_u64(lines[i], "message", 0) == ids[k];
                assert_int_equal(n_same, 2);
        }
        /* the two sent before the monitor started: IDs of their own, below the later ones */
        {
                uint64_t old[2] = {};
                size_t n_old = 0;

                for (size_t i = 0; i < n; ++i) {
                        uint64_t m = json_get_u64(lines[i], "message", 0);

                        if (m == ids[0] || m == ids[1] || m == ids[2])
                                continue;
                        assert_string_equal(json_get_string(lines[i], "type", ""), "deliver");
                        assert_true(n_old < 2);
                        assert_true(m < ids[0]);
                        old[n_old++] = m;
                }
                assert_int_equal(n_old, 2);
                assert_true(old[0] != old[1]);
        }
}

/*
 * Every message has an ID that its send and its deliver line both show,
 * and in both PEER is the sender and TARGET the receiver: b sends three
 * messages to a, a receives them and the two queued before the monitors
 * started. Each of the three sends pairs with exactly one deliver.
 */
static void test_monitor_messages(void **state) {
        const char *const texts[] = { "m1", "m22", "m333" };
        uint64_t ids[3];
        CtlTextEvent tev[16];
        JsonValue **lines;
        CtlRun json, text;
        CtlPeers p;
        size_t n, n_tev;

        ctl_peers_setup(&p);
        ctl_spawn(&json, (uid_t)-1, CTL_ARGS("--json", "monitor"));
        ctl_spawn(&text, (uid_t)-1, CTL_ARGS("monitor", "--type=send,deliver"));
        ctl_wait_monitors(2);
        for (size_t i = 0; i < 3; ++i)
                assert_int_equal(ctl_send(p.b, p.handle_b, texts[i]), 0);
        for (size_t i = 0; i < 5; ++i)
                ctl_recv_release(p.a);
        {
                /* a request: the broker learns of receives the library made locally */
                struct bus1_cmd_peer_reset query = {};

                assert_int_equal(bus1_uapi_ioctl(p.a, BUS1_CMD_PEER_QUERY, &query), 0);
        }
        ctl_wait_count(&json, "\"deliver\"", 5);
        ctl_wait_count(&text, " deliver ", 5);

        lines = ctl_monitor_stop(&json, &n);
        ctl_check_message_lines(lines, n, &p, texts, ids);
        ctl_lines_free(lines, n);
        ctl_free(&json);

        /* the text: a MSG column, and the same pairs with the same columns */
        ctl_wait_output(&text, NULL);
        kill(text.pid, SIGINT);
        ctl_wait(&text);
        assert_true(WIFEXITED(text.status) && WEXITSTATUS(text.status) == 0);
        assert_non_null(strstr(text.out, " EVENT     MSG "));
        n_tev = ctl_text_events(text.out, tev, sizeof(tev) / sizeof(tev[0]));
        assert_int_equal(n_tev, 8);
        for (size_t i = 0; i < n_tev; ++i) {
                assert_int_equal(tev[i].peer, p.id_b);
                assert_int_equal(tev[i].target, p.id_a);
        }
        for (size_t k = 0; k < 3; ++k) {
                size_t n_send = 0, n_deliver = 0;

                for (size_t i = 0; i < n_tev; ++i) {
                        if (tev[i].message != ids[k])
                                continue;
                        n_send += strcmp(tev[i].type, "send") == 0;
                        n_deliver += strcmp(tev[i].type, "deliver") == 0;
                }
                assert_int_equal(n_send, 1);
                assert_int_equal(n_deliver, 1);
        }
        ctl_free(&text);
        ctl_peers_close(&p);
}

/* a peer of @uid in a child, whose connection comes back through @sock */
static pid_t ctl_foreign_connection(uid_t uid, int *connp, int *releasep) {
        union {
                struct cmsghdr cmsg;
                uint8_t buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        int sp[2], release[2], peer;
        char c = 'x';
        struct iovec iov = { .iov_base = &c, .iov_len = 1 };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                              .msg_controllen = sizeof(control) };
        pid_t pid;

        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        assert_int_equal(pipe2(release, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
                    setresuid(uid, uid, uid) < 0)
                        _exit(2);
                peer = bus1_uapi_open(NULL);
                if (peer < 0)
                        _exit(3);
                control.cmsg.cmsg_level = SOL_SOCKET;
                control.cmsg.cmsg_type = SCM_RIGHTS;
                control.cmsg.cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(&control.cmsg), &peer, sizeof(int));
                if (sendmsg(sp[1], &msg, 0) != 1)
                        _exit(4);
                close(release[1]);
                while (read(release[0], &c, 1) > 0)
                        ;
                _exit(0);
        }
        close(sp[1]);
        close(release[0]);
        assert_int_equal(recvmsg(sp[0], &msg, MSG_CMSG_CLOEXEC), 1);
        memcpy(connp, CMSG_DATA(&control.cmsg), sizeof(int));
        close(sp[0]);
        *releasep = release[1];
        return pid;
}

/*
 * Two peers of @uid in a child: one makes a node, the other gets a handle
 * to it and sends one message there, which the first receives.
 */
static void ctl_own_traffic(uid_t uid) {
        int status;
        pid_t pid;

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct bus1_cmd_peer_reset query = {};
                struct bus1_cmd_recv recv = { .max_offset = POOL_MAP };
                struct bus1_cmd_handle_transfer t = { .src_handle = 0x100 };
                const char text[] = "own";
                struct iovec vec = { .iov_base = (void *)text, .iov_len = 3 };
                struct bus1_cmd_send send = {
                        .ptr_destinations = (uintptr_t)&t.dst_handle,
                        .n_destinations = 1,
                        .ptr_vecs = (uintptr_t)&vec,
                        .n_vecs = 1,
                };
                int x, y;

                if (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
                    setresuid(uid, uid, uid) < 0)
                        _exit(2);
                x = bus1_uapi_open(NULL);
                y = bus1_uapi_open(NULL);
                if (x < 0 || y < 0)
                        _exit(3);
                t.dst_fd = (uint64_t)y;
                if (bus1_uapi_ioctl(x, BUS1_CMD_HANDLE_TRANSFER, &t) < 0 ||
                    bus1_uapi_ioctl(y, BUS1_CMD_SEND, &send) < 0)
                        _exit(4);
                if (bus1_uapi_ioctl(x, BUS1_CMD_RECV, &recv) < 0 ||
                    recv.msg.type != BUS1_MSG_DATA ||
                    bus1_uapi_ioctl(x, BUS1_CMD_SLICE_RELEASE, &recv.msg.offset) < 0 ||
                    bus1_uapi_ioctl(x, BUS1_CMD_PEER_QUERY, &query) < 0)
                        _exit(5);
                bus1_uapi_close(x);
                bus1_uapi_close(y);
                _exit(0);
        }
        ctl_child_add(pid);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        ctl_child_forget(pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("the peers of UID %u failed: status 0x%x", (unsigned)uid, status);
}

/*
 * nobody's own message: its send and deliver pair by a message ID of
 * nobody's monitor @mon, which is not the bus's count of messages that
 * root's monitor shows. @mon is stopped and freed.
 */
static void ctl_check_unprivileged_message(CtlRun *mon) {
        uint64_t bus_id, id;
        CtlRun root_mon;
        JsonValue **lines;
        size_t n;

        ctl_spawn(&root_mon, (uid_t)-1, CTL_ARGS("--json", "monitor", "--type=send,deliver"));
        ctl_wait_monitors(4);
        ctl_own_traffic(CTL_NOBODY);
        ctl_wait_output(mon, "\"deliver\"");
        ctl_wait_output(&root_mon, "\"deliver\"");
        lines = ctl_monitor_stop(&root_mon, &n);
        assert_int_equal(n, 2);
        bus_id = json_get_u64(lines[0], "message", 0);
        assert_true(bus_id > 20);
        assert_int_equal(json_get_u64(lines[1], "message", 0), bus_id);
        ctl_lines_free(lines, n);
        ctl_free(&root_mon);
        lines = ctl_monitor_stop(mon, &n);
        assert_int_equal(ctl_count_type(lines, n, "send"), 1);
        assert_int_equal(ctl_count_type(lines, n, "deliver"), 1);
        {
                const JsonValue *send = NULL, *deliver = NULL;

                for (size_t i = 0; i < n; ++i) {
                        const char *type = json_get_string(lines[i], "type", "");

                        if (strcmp(type, "send") == 0)
                                send = lines[i];
                        else if (strcmp(type, "deliver") == 0)
                                deliver = lines[i];
                }
                id = json_get_u64(send, "message", 0);
                assert_true(id > 0 && id <= (UINT64_C(1) << 52));
                assert_true(id != bus_id);
                assert_int_equal(json_get_u64(deliver, "message", 0), id);
                /* both its own peers: it sees both, sender first */
                assert_int_equal(json_get_u64(send, "peer", 0),
                                 json_get_u64(deliver, "peer", 1));
                assert_int_equal(json_get_u64(send, "target", 0),
                                 json_get_u64(deliver, "target", 1));
                assert_true(json_get_u64(send, "peer", 0) > 0);
                assert_true(json_get_u64(send, "target", 0) > 0);
                assert_int_equal(json_get_u64(send, "uid", 0), CTL_NOBODY);
        }
        ctl_lines_free(lines, n);
        ctl_free(mon);
}

/*
 * An unprivileged monitor: at most CONTROL_MONITORS_PER_UID (4) per UID,
 * while root still gets one; of another UID's peer it sees the UID only
 * (no peer ID, no PID); and its events are numbered by itself, so the
 * bus's traffic in between does not show.
 */
static void test_monitor_unprivileged(void **state) {
        CtlRun mon[4], fifth, root_mon;
        JsonValue **lines;
        int conn, release, status;
        CtlPeers p;
        pid_t child;
        size_t n;

        ctl_require_uid("test_monitor_unprivileged", CTL_NOBODY);
        assert_int_equal(chmod(ctl_broker.dir, 0755), 0);
        assert_int_equal(chmod(ctl_broker.path, 0666), 0);
        ctl_peers_setup(&p);

        for (size_t i = 0; i < 4; ++i)
                ctl_spawn(&mon[i], CTL_NOBODY, CTL_ARGS("--json", "monitor"));
        ctl_wait_monitors(4);
        /* a fifth must be refused at once: never wait for a monitor that runs */
        ctl_spawn(&fifth, CTL_NOBODY, CTL_ARGS("--json", "monitor"));
        for (int i = 0; i < 500 && waitpid(fifth.pid, &status, WNOHANG) == 0; ++i)
                nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
        if (waitpid(fifth.pid, &status, WNOHANG) == 0)
                fail_msg("a fifth monitor of one unprivileged UID was not refused");
        ctl_child_forget(fifth.pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
        close(fifth.out_fd);
        close(fifth.err_fd);
        ctl_spawn(&root_mon, (uid_t)-1, CTL_ARGS("--json", "monitor"));
        ctl_wait_monitors(5);

        /* bus traffic nobody takes part in, then a transfer from root's a to nobody */
        for (int i = 0; i < 20; ++i)
                assert_int_equal(ctl_send(p.b, p.handle_b, "busy"), 0);
        child = ctl_foreign_connection(CTL_NOBODY, &conn, &release);
        ctl_child_add(child);
        (void)ctl_transfer(p.a, 0x100, conn);
        close(conn);
        ctl_wait_output(&root_mon, "\"transfer\"");
        ctl_wait_output(&mon[0], "\"transfer\"");

        lines = ctl_monitor_stop(&mon[0], &n);
        assert_int_equal(n, 1);
        assert_string_equal(json_get_string(lines[0], "type", ""), "transfer");
        assert_int_equal(json_get_u64(lines[0], "seq", 0), 1);
        assert_int_equal(json_get_u64(lines[0], "uid", 1), 0);
        assert_int_equal(json_get_u64(lines[0], "peer", 1), 0);
        assert_int_equal(json_get_u64(lines[0], "pid", 1), 0);
        assert_int_equal(json_get_u64(lines[0], "target_uid", 0), CTL_NOBODY);
        assert_true(json_get_u64(lines[0], "target", 0) > 0);
        ctl_lines_free(lines, n);
        ctl_free(&mon[0]);
        /* root sees both sides and the bus's clock */
        lines = ctl_monitor_stop(&root_mon, &n);
        assert_true(n >= 21);
        assert_int_equal(json_get_u64(lines[n - 1], "peer", 0), p.id_a);
        assert_true(json_get_u64(lines[n - 1], "seq", 0) > 20);
        ctl_lines_free(lines, n);
        ctl_free(&root_mon);
        ctl_check_unprivileged_message(&mon[1]);
        for (size_t i = 2; i < 4; ++i) {
                lines = ctl_monitor_stop(&mon[i], &n);
                ctl_lines_free(lines, n);
                ctl_free(&mon[i]);
        }

        close(release);
        assert_int_equal(waitpid(child, &status, 0), child);
        ctl_child_forget(child);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        ctl_peers_close(&p);
}

static double ctl_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* a monitor that does not read loses events, never blocks the bus, and is told */
static void test_monitor_loss(void **state) {
        const unsigned int n_msgs = 20000;
        uint64_t seen = 0, lost = 0, n_lost_lines = 0;
        JsonValue **lines;
        CtlRun stalled, text;
        CtlPeers p;
        double t0, t1;
        size_t n;

        ctl_peers_setup(&p);
        ctl_recv_release(p.a);
        ctl_recv_release(p.a);
        ctl_spawn(&stalled, (uid_t)-1, CTL_ARGS("--json", "monitor", "--type=send"));
        ctl_spawn(&text, (uid_t)-1, CTL_ARGS("monitor", "--type=send"));
        ctl_wait_monitors(2);
        kill(stalled.pid, SIGSTOP);
        kill(text.pid, SIGSTOP);

        /* the sends go through while both monitors sleep */
        t0 = ctl_now();
        for (unsigned int i = 0; i < n_msgs; ++i) {
                assert_int_equal(ctl_send(p.b, p.handle_b, "x"), 0);
                ctl_recv_release(p.a);
        }
        t1 = ctl_now();
        print_message("%u sends with two stalled monitors: %.2f s\n", n_msgs, t1 - t0);

        kill(stalled.pid, SIGCONT);
        kill(text.pid, SIGCONT);
        /* wait until the monitor has everything: seen + lost adds up */
        for (int i = 0; i < 1000; ++i) {
                struct stat st;

                assert_int_equal(fstat(stalled.out_fd, &st), 0);
                if (st.st_size > 0) {
                        char *out = ctl_read_fd(stalled.out_fd);
                        char *line, *save = NULL;

                        seen = lost = 0;
                        for (line = strtok_r(out, "\n", &save); line;
                             line = strtok_r(NULL, "\n", &save)) {
                                if (strstr(line, "\"lost\""))
                                        lost += strtoull(strstr(line, "\"count\":") + 8, NULL,
                                                         10);
                                else
                                        ++seen;
                        }
                        free(out);
                        if (seen + lost == n_msgs)
                                break;
                }
                usleep(10000);
        }

        lines = ctl_monitor_stop(&stalled, &n);
        seen = lost = 0;
        for (size_t i = 0; i < n; ++i) {
                if (strcmp(json_get_string(lines[i], "type", ""), "lost") == 0) {
                        lost += json_get_u64(lines[i], "count", 0);
                        ++n_lost_lines;
                } else {
                        assert_string_equal(json_get_string(lines[i], "type", ""), "send");
                        ++seen;
                }
        }
        print_message("monitor: %" PRIu64 " events seen, %" PRIu64 " lost in %" PRIu64
                      " reports\n", seen, lost, n_lost_lines);
        assert_int_equal(seen + lost, n_msgs);
        assert_true(lost > 0);
        assert_true(n_lost_lines >= 1);
        /* what it saw is in order, each seq after the one before */
        for (size_t i = 1; i < n; ++i)
                assert_true(json_get_u64(lines[i], "seq", 0) >=
                            json_get_u64(lines[i - 1], "seq", 0));
        ctl_lines_free(lines, n);
        ctl_free(&stalled);

        ctl_wait_output(&text, "events lost");
        kill(text.pid, SIGINT);
        ctl_wait(&text);
        assert_true(WIFEXITED(text.status) && WEXITSTATUS(text.status) == 0);
        assert_non_null(strstr(text.out, "events lost"));
        ctl_free(&text);

        /* the broker counts what monitors lost */
        {
                CtlRun run;

                ctl_expect(&run, (uid_t)-1, 0, CTL_ARGS("metrics"));
                assert_true(ctl_check_openmetrics(run.out, "bus1d_monitor_events_lost_total") >=
                            lost);
                ctl_free(&run);
        }
        ctl_peers_close(&p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_usage, ctl_setup, ctl_teardown),
                cmocka_unit_test_setup_teardown(test_status, ctl_setup, ctl_teardown),
                cmocka_unit_test_setup_teardown(test_peers, ctl_setup, ctl_teardown),
                cmocka_unit_test_setup_teardown(test_peer, ctl_setup, ctl_teardown),
                cmocka_unit_test_setup_teardown(test_quota, ctl_setup, ctl_teardown),
                cmocka_unit_test_setup_teardown(test_peer_cut, ctl_setup, ctl_teardown),
                cmocka_unit_test_setup_teardown(test_plurals, ctl_setup, ctl_teardown),
                cmocka_unit_test_setup_teardown(test_metrics, ctl_setup, ctl_teardown),
                cmocka_unit_test_setup_teardown(test_metrics_formats, ctl_setup, ctl_teardown),
                cmocka_unit_test_setup_teardown(test_pool_resident, ctl_setup, ctl_teardown),
                cmocka_unit_test_setup_teardown(test_access, ctl_setup, ctl_teardown),
                cmocka_unit_test_setup_teardown(test_monitor_filters, ctl_setup, ctl_teardown),
                cmocka_unit_test_setup_teardown(test_monitor_messages, ctl_setup, ctl_teardown),
                cmocka_unit_test_setup_teardown(test_monitor_loss, ctl_setup, ctl_teardown),
                cmocka_unit_test_setup_teardown(test_monitor_pipe, ctl_setup, ctl_teardown),
                cmocka_unit_test_setup_teardown(test_monitor_unprivileged, ctl_setup,
                                                ctl_teardown),
        };

        /* children are reaped by the tests; a closed pipe must not kill us */
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
