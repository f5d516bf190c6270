/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus1-example-client: the client bus1-example-service starts
 *
 * Usage: bus1-example-client FD
 *
 * FD is a peer connection this process inherited. The client adopts it
 * (bus1_peer_new_from_fd()), so it is the very peer the service prepared,
 * and reads the seed the service left on it: a description and a handle to
 * the service's node. Then it
 *
 *  - sends "ping" to that node, passing the write end of a pipe and a
 *    handle to a new node of its own, 0x200, for the reply;
 *  - reads the answer from the pipe;
 *  - waits, with poll(2) on the peer's descriptor, for the reply on 0x200,
 *    for NODE_RELEASE of 0x200 (the service let go of it) and for
 *    NODE_DESTROY of the service's node, which ends the conversation.
 *
 * It exits with 0 if all of that happened, in that order.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bus1/client.h>

#define CLIENT_REPLY_NODE 0x200
#define CLIENT_TIMEOUT_MSEC 10000

typedef struct ExampleClient {
        Bus1Peer *peer;
        uint64_t service;       /* our handle to the service's node */
        bool replied;
        bool released;
        bool destroyed;
} ExampleClient;

static int client_fail(const char *what, int r) {
        fprintf(stderr, "client: %s: %s\n", what, strerror(r < 0 ? -r : r));
        return 1;
}

/* the seed: who to talk to */
static int client_bootstrap(ExampleClient *c) {
        Bus1Message *seed;
        const char *text;
        size_t size;
        int r;

        r = bus1_peer_recv(c->peer, BUS1_RECV_FLAG_SEED, &seed);
        if (r < 0)
                return r;
        text = bus1_message_get_data(seed, &size);
        if (bus1_message_get_n_handles(seed) != 1) {
                bus1_message_unref(seed);
                return -EBADMSG;
        }
        c->service = bus1_message_get_handle(seed, 0);
        printf("client: seed says \"%.*s\", service node is handle 0x%" PRIx64 "\n",
               (int)size, text, c->service);
        bus1_message_unref(seed);

        /* the service's transfer gave us one reference, the seed another */
        return bus1_peer_handle_release(c->peer, c->service);
}

static int client_request(ExampleClient *c) {
        static const char text[] = "ping";
        struct iovec vec = { .iov_base = (void *)text, .iov_len = sizeof(text) - 1 };
        uint64_t reply_node = CLIENT_REPLY_NODE;
        char buf[128];
        size_t n = 0;
        int p[2], r;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        /* naming the new ID 0x200 creates the reply node */
        r = bus1_peer_send(c->peer, 0, &c->service, 1, NULL, &vec, 1, &reply_node, 1, &p[1], 1);
        /* the message carries its own copy of the write end */
        close(p[1]);
        if (r < 0) {
                close(p[0]);
                return r;
        }
        printf("client: sent \"ping\" with a pipe and reply node 0x%x\n", CLIENT_REPLY_NODE);

        /* EOF once the service closed its copy */
        for (;;) {
                ssize_t l = read(p[0], buf + n, sizeof(buf) - 1 - n);

                if (l < 0 && errno == EINTR)
                        continue;
                if (l < 0) {
                        r = -errno;
                        close(p[0]);
                        return r;
                }
                if (l == 0 || (n += (size_t)l) == sizeof(buf) - 1)
                        break;
        }
        close(p[0]);
        buf[n] = 0;
        printf("client: pipe says \"%s\"\n", buf);
        return n ? 0 : -EPIPE;
}

static int client_dispatch(ExampleClient *c, Bus1Message *m) {
        uint64_t dst = bus1_message_get_destination(m);
        const char *text;
        size_t size;

        switch (bus1_message_get_type(m)) {
        case BUS1_MSG_DATA:
                if (dst != CLIENT_REPLY_NODE)
                        return -EBADMSG;
                text = bus1_message_get_data(m, &size);
                printf("client: reply node says \"%.*s\"\n", (int)size, text);
                c->replied = true;
                return 0;
        case BUS1_MSG_NODE_RELEASE:
                if (dst != CLIENT_REPLY_NODE || !c->replied)
                        return -EBADMSG;
                printf("client: saw NODE_RELEASE of 0x%" PRIx64 ": nobody else holds it\n",
                       dst);
                c->released = true;
                return 0;
        case BUS1_MSG_NODE_DESTROY:
                if (dst != c->service || !c->released)
                        return -EBADMSG;
                printf("client: saw NODE_DESTROY of the service node 0x%" PRIx64 "\n", dst);
                c->destroyed = true;
                return 0;
        default:
                return -EBADMSG;
        }
}

static int client_wait(ExampleClient *c) {
        struct pollfd pfd = { .fd = bus1_peer_get_fd(c->peer), .events = POLLIN };
        Bus1Message *m;
        int r;

        while (!c->destroyed) {
                r = bus1_peer_recv(c->peer, 0, &m);
                if (r == -EAGAIN) {
                        r = poll(&pfd, 1, CLIENT_TIMEOUT_MSEC);
                        if (r < 0 && errno != EINTR)
                                return -errno;
                        if (r == 0)
                                return -ETIMEDOUT;
                        continue;
                }
                if (r < 0)
                        return r;
                r = client_dispatch(c, m);
                bus1_message_unref(m);
                if (r < 0)
                        return r;
        }
        return 0;
}

int main(int argc, char **argv) {
        ExampleClient c = {};
        uint64_t node = CLIENT_REPLY_NODE;
        char *end;
        long fd;
        int r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        if (argc != 2) {
                fprintf(stderr, "usage: %s FD (started by bus1-example-service)\n", argv[0]);
                return 2;
        }
        errno = 0;
        fd = strtol(argv[1], &end, 10);
        if (errno || *end || fd < 0 || fd > INT32_MAX)
                return client_fail("bad FD argument", EINVAL);

        r = bus1_peer_new_from_fd(&c.peer, (int)fd);
        if (r < 0)
                return client_fail("adopt the connection", r);
        printf("client: adopted peer connection fd %ld\n", fd);

        r = client_bootstrap(&c);
        if (r < 0)
                return client_fail("bootstrap", r);
        r = client_request(&c);
        if (r < 0)
                return client_fail("request", r);
        r = client_wait(&c);
        if (r < 0)
                return client_fail("wait", r);

        /* tidy up: the handle outlived the node, the reply node is ours */
        r = bus1_peer_handle_release(c.peer, c.service);
        if (r < 0)
                return client_fail("release", r);
        r = bus1_peer_nodes_destroy(c.peer, BUS1_NODES_DESTROY_FLAG_RELEASE_HANDLES, &node, 1);
        if (r < 0)
                return client_fail("destroy reply node", r);
        bus1_peer_unref(c.peer);
        printf("client: done\n");
        return 0;
}
