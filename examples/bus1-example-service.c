/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus1-example-service: offer a node to a client it starts itself
 *
 * bus1 has no names and no registry: a peer can only reach a node it holds
 * a handle to. So this service bootstraps its client by hand:
 *
 *  1. It connects two peers: its own, and the one the client will be.
 *  2. It creates its node 0x100 by transferring a handle to it into the
 *     client's peer (a new ID of its own choosing creates the node).
 *  3. It sets the client peer's seed: a message that carries the handle
 *     and a short description. Only a peer sets its own seed, and the
 *     service still holds the client's peer, so it sends the seed on it.
 *  4. It starts bus1-example-client with that peer's connection inherited
 *     (the descriptor number in argv[1]) and drops its own copy.
 *
 * Then it serves from an sd-event loop (bus1_peer_attach_event()): the
 * client's request carries a pipe and a handle to a reply node the client
 * created; the service answers through both, lets go of the reply handle
 * (the client sees NODE_RELEASE) and destroys its node (the client sees
 * NODE_DESTROY). It exits with 0 once the client exited with 0.
 *
 * The broker is the one $BUS1_ADDRESS names (else the default address).
 * The client binary is $BUS1_EXAMPLE_CLIENT, else bus1-example-client next
 * to this program.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-event.h>
#include <bus1/client.h>

#define SERVICE_NODE 0x100
#define SERVICE_TIMEOUT_USEC (10ULL * 1000 * 1000)

typedef struct Service {
        Bus1Peer *peer;
        sd_event *event;
        bool answered;          /* the request was served */
        bool destroyed;         /* and the node is gone */
} Service;

static int service_fail(const char *what, int r) {
        fprintf(stderr, "service: %s: %s\n", what, strerror(-r));
        return r;
}

/* answer through the pipe, then through the reply node */
static int service_answer(Service *svc, Bus1Message *message) {
        static const char pipe_text[] = "pong, through the pipe";
        static const char node_text[] = "pong, through your reply node";
        struct iovec vec = { .iov_base = (void *)node_text, .iov_len = sizeof(node_text) - 1 };
        uint64_t reply, node = SERVICE_NODE;
        const char *data;
        size_t size;
        pid_t pid;
        int fd, r;

        data = bus1_message_get_data(message, &size);
        bus1_message_get_creds(message, NULL, NULL, &pid, NULL);
        /* credentials are the connecting process's: we connected the client's peer */
        printf("service: request \"%.*s\" (peer connected by pid %d), %zu handle(s), %zu fd(s)\n",
               (int)size, data, (int)pid, bus1_message_get_n_handles(message),
               bus1_message_get_n_fds(message));
        if (bus1_message_get_n_handles(message) != 1 || bus1_message_get_n_fds(message) != 1)
                return service_fail("request", -EBADMSG);

        fd = bus1_message_steal_fd(message, 0);
        if (write(fd, pipe_text, sizeof(pipe_text) - 1) != (ssize_t)sizeof(pipe_text) - 1) {
                r = -errno;
                close(fd);
                return service_fail("write", r);
        }
        close(fd);

        reply = bus1_message_get_handle(message, 0);
        r = bus1_peer_send(svc->peer, 0, &reply, 1, NULL, &vec, 1, NULL, 0, NULL, 0);
        if (r < 0)
                return service_fail("send reply", r);
        printf("service: answered through the pipe and through handle 0x%" PRIx64 "\n", reply);

        /* the client sees NODE_RELEASE: nobody but it holds its node now */
        r = bus1_peer_handle_release(svc->peer, reply);
        if (r < 0)
                return service_fail("release reply handle", r);

        /* and NODE_DESTROY, as do we: the service is closing */
        r = bus1_peer_nodes_destroy(svc->peer, 0, &node, 1);
        if (r < 0)
                return service_fail("destroy node", r);
        printf("service: destroyed node 0x%x\n", SERVICE_NODE);
        svc->answered = true;
        return 0;
}

static int service_handle(Bus1Peer *peer, Bus1Message *message, void *userdata) {
        Service *svc = userdata;

        switch (bus1_message_get_type(message)) {
        case BUS1_MSG_DATA:
                if (bus1_message_get_destination(message) != SERVICE_NODE || svc->answered)
                        return service_fail("unexpected message", -EBADMSG);
                return service_answer(svc, message);
        case BUS1_MSG_NODE_DESTROY:
                printf("service: saw NODE_DESTROY of its node 0x%" PRIx64 "\n",
                       bus1_message_get_destination(message));
                svc->destroyed = true;
                /*
                 * The owner handle outlives its node until released (had we
                 * destroyed with RELEASE_HANDLES, we would not see this).
                 */
                return bus1_peer_handle_release(peer, bus1_message_get_destination(message));
        default:
                /* NODE_RELEASE: the client let go of 0x100; harmless */
                return 0;
        }
}

static int service_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Service *svc = userdata;
        bool ok = si->si_code == CLD_EXITED && si->si_status == 0;

        if (si->si_code == CLD_EXITED)
                printf("service: client exited with status %d\n", si->si_status);
        else
                printf("service: client killed by signal %d\n", si->si_status);
        if (ok && !(svc->answered && svc->destroyed)) {
                fprintf(stderr, "service: client finished before it was served\n");
                ok = false;
        }
        return sd_event_exit(svc->event, ok ? 0 : 1);
}

static int service_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Service *svc = userdata;

        fprintf(stderr, "service: timed out\n");
        return sd_event_exit(svc->event, 1);
}

/* bus1-example-client next to /proc/self/exe, unless the environment says */
static int service_client_path(char *buf, size_t size) {
        const char *env = getenv("BUS1_EXAMPLE_CLIENT");
        char self[PATH_MAX];
        ssize_t l;
        char *slash;

        if (env && *env)
                return snprintf(buf, size, "%s", env) < (int)size ? 0 : -ENAMETOOLONG;
        l = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (l < 0)
                return -errno;
        self[l] = 0;
        slash = strrchr(self, '/');
        if (!slash)
                return -ENOENT;
        *slash = 0;
        return snprintf(buf, size, "%s/bus1-example-client", self) < (int)size ? 0
                                                                             : -ENAMETOOLONG;
}

/* fork and exec the client with @fd inherited; returns its pid */
static pid_t service_spawn(const char *path, int fd, const sigset_t *oldmask) {
        char arg[16];
        pid_t pid;

        pid = fork();
        if (pid != 0)
                return pid;

        /* the connection is O_CLOEXEC: let exactly this one through */
        if (fcntl(fd, F_SETFD, 0) < 0)
                _exit(126);
        sigprocmask(SIG_SETMASK, oldmask, NULL);
        snprintf(arg, sizeof(arg), "%d", fd);
        execl(path, path, arg, (char *)NULL);
        fprintf(stderr, "service: exec %s: %s\n", path, strerror(errno));
        _exit(127);
}

/* everything until the client runs; the client's peer is dropped after */
static int service_setup(Service *svc, const char *client_path, const sigset_t *oldmask) {
        static const char self_text[] = "bus1-example-service: one node, 0x100";
        static const char seed_text[] = "bus1-example-service: ping the handle I carry";
        struct iovec self_vec = { .iov_base = (void *)self_text, .iov_len = sizeof(self_text) - 1 };
        struct iovec seed_vec = { .iov_base = (void *)seed_text, .iov_len = sizeof(seed_text) - 1 };
        uint64_t node = SERVICE_NODE, client_node;
        Bus1Peer *client = NULL;
        pid_t pid;
        int r;

        r = bus1_peer_new(&svc->peer, NULL);
        if (r < 0)
                return service_fail("connect", r);
        r = bus1_peer_new(&client, NULL);
        if (r < 0)
                return service_fail("connect the client's peer", r);

        /* the new ID 0x100 creates the node; the client's peer gets a handle */
        r = bus1_peer_handle_transfer(svc->peer, node, client, &client_node);
        if (r < 0)
                goto out;
        printf("service: created node 0x%" PRIx64 ", the client holds it as 0x%" PRIx64 "\n",
               node, client_node);

        /* describe ourselves (our own seed) and bootstrap the client (its seed) */
        r = bus1_peer_send(svc->peer, BUS1_SEND_FLAG_SEED, NULL, 0, NULL, &self_vec, 1, &node, 1,
                           NULL, 0);
        if (r < 0)
                goto out;
        r = bus1_peer_send(client, BUS1_SEND_FLAG_SEED, NULL, 0, NULL, &seed_vec, 1,
                           &client_node, 1, NULL, 0);
        if (r < 0)
                goto out;

        bus1_peer_set_handler(svc->peer, service_handle, svc);
        r = bus1_peer_attach_event(svc->peer, svc->event, 0);
        if (r < 0)
                goto out;

        pid = service_spawn(client_path, bus1_peer_get_fd(client), oldmask);
        if (pid < 0) {
                r = -errno;
                goto out;
        }
        printf("service: started %s (pid %d) on connection fd %d\n", client_path, (int)pid,
               bus1_peer_get_fd(client));
        fflush(stdout);

        /* the client's process holds the connection now; ours would only leak */
        r = sd_event_add_child(svc->event, NULL, pid, WEXITED, service_child, svc);
out:
        bus1_peer_unref(client);
        return r < 0 ? service_fail("setup", r) : 0;
}

int main(int argc, char **argv) {
        Service svc = {};
        char client_path[PATH_MAX];
        sigset_t mask, oldmask;
        int r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        r = service_client_path(client_path, sizeof(client_path));
        if (r < 0)
                return service_fail("client path", r), 1;

        /* sd-event watches the child through SIGCHLD, which must be blocked */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, &oldmask);

        r = sd_event_default(&svc.event);
        if (r < 0)
                return service_fail("sd_event_default", r), 1;
        r = sd_event_add_time_relative(svc.event, NULL, CLOCK_MONOTONIC, SERVICE_TIMEOUT_USEC, 0,
                                       service_timeout, &svc);
        if (r < 0)
                return service_fail("timer", r), 1;

        r = service_setup(&svc, client_path, &oldmask);
        if (r >= 0)
                r = sd_event_loop(svc.event);
        if (r < 0)
                service_fail("event loop", r);

        bus1_peer_unref(svc.peer);
        sd_event_unref(svc.event);
        if (r == 0)
                printf("service: done\n");
        return r == 0 ? 0 : 1;
}
