/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bench-refs: the references every bus1d figure is compared with
 *
 * uds-direct: one thread writes a SEQPACKET record to one end of a
 * socketpair and reads it back from the other end, the 2016 bus1 test-io
 * baseline: two syscalls and one copy in, one copy out, no other process.
 *
 * relay-floor: the cheapest broker shape with synchronous sends. A forked
 * relay (the "broker") multiplexes two SEQPACKET connections to the client
 * with epoll, as any broker serving many clients must. Per step the client
 * writes a request (a 16-byte header and the payload) on connection 1 and
 * blocks on the relay's 16-byte ack there; the relay wakes in epoll_wait(),
 * reads the whole record into its own buffer (recvmsg, MSG_DONTWAIT),
 * writes it out on connection 2 (sendmsg), then writes the ack on
 * connection 1; the client then reads the forwarded record on connection
 * 2. That is four syscalls in the client, four in the relay (epoll_wait,
 * recvmsg and two sendmsg: one recvmsg per wake-up, since epoll is level
 * triggered and a synchronous client has only one request in flight) and
 * four copies of the payload. No splice, no MSG_PEEK, no shared memory:
 * bus1d must do at least this work for a send it acknowledges.
 *
 * Record size: an AF_UNIX SEQPACKET record must fit the sender's send
 * buffer, so every socket asks for REFS_SOCKET_BUFFER bytes (the *FORCE
 * options first, which root may use beyond net.core.[rw]mem_max). A size
 * that still cannot travel as one record is reported on a "# ..." line
 * with the largest record this machine takes, never dropped silently;
 * bus1d moves such payloads in a sealed memfd, which the references do
 * not emulate.
 *
 * Cases: uds-direct and relay-floor, sizes 0, 64, 1 KiB, 4 KiB, 64 KiB and
 * 1 MiB; metric ns per message.
 *
 * Usage: bench-refs [CASE...]
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench-util.h"

#define REFS_HEADER_SIZE 16
#define REFS_SOCKET_BUFFER (4 * 1024 * 1024)
#define REFS_N_SIZES (sizeof(refs_sizes) / sizeof(*refs_sizes))

static const size_t refs_sizes[] = { 0, 64, 1024, 4096, 65536, 1048576 };

/* the request and ack header: the payload size and a sequence number */
typedef struct RefsHeader {
        uint64_t size;
        uint64_t seq;
} RefsHeader;

_Static_assert(sizeof(RefsHeader) == REFS_HEADER_SIZE, "header is 16 bytes");

/* ask for a large buffer in direction @force/@plain, as root first */
static void refs_socket_buffer(int fd, int force, int plain) {
        int v = REFS_SOCKET_BUFFER;

        if (setsockopt(fd, SOL_SOCKET, force, &v, sizeof(v)) < 0 &&
            setsockopt(fd, SOL_SOCKET, plain, &v, sizeof(v)) < 0)
                bench_die("setsockopt buffer size: %m");
}

/* a SEQPACKET socketpair with large send and receive buffers on both ends */
static void refs_socketpair(int fds[2]) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
                bench_die("socketpair: %m");
        for (int i = 0; i < 2; ++i) {
                refs_socket_buffer(fds[i], SO_SNDBUFFORCE, SO_SNDBUF);
                refs_socket_buffer(fds[i], SO_RCVBUFFORCE, SO_RCVBUF);
        }
}

/* whether a send failure means "this record is too large here" */
static bool refs_errno_too_large(int e) {
        return e == EMSGSIZE || e == ENOBUFS;
}

/*
 * The largest record, up to @limit bytes, that one sendmsg() takes on a
 * socketpair set up like the measured ones: a binary search over real
 * sends, each drained again, so it is whatever this kernel and its memory
 * allow right now.
 */
static size_t refs_record_max(const void *buf, size_t limit) {
        size_t lo = 0, hi = limit;
        int fds[2];
        char c;

        refs_socketpair(fds);
        while (lo < hi) {
                size_t mid = lo + (hi - lo + 1) / 2;
                ssize_t l = send(fds[0], buf, mid, MSG_DONTWAIT | MSG_NOSIGNAL);

                if (l < 0) {
                        if (!refs_errno_too_large(errno))
                                bench_die("send %zu bytes: %m", mid);
                        hi = mid - 1;
                        continue;
                }
                if (recv(fds[1], &c, sizeof(c), MSG_TRUNC) < 0)
                        bench_die("recv: %m");
                lo = mid;
        }
        close(fds[0]);
        close(fds[1]);
        return lo;
}

/*
 * Whether a record of @record bytes fits in one sendmsg(); if not, print
 * the "# NAME SIZE skipped" line for @name and @size and return false.
 * The limit is probed once, on the first call, and kept in *@record_maxp
 * (SIZE_MAX: not probed yet).
 */
static bool refs_record_fits(const char *name, size_t size, size_t record, const void *buf,
                             size_t *record_maxp) {
        if (*record_maxp == SIZE_MAX)
                *record_maxp = refs_record_max(buf, REFS_HEADER_SIZE + refs_sizes[REFS_N_SIZES - 1]);
        if (record <= *record_maxp)
                return true;
        printf("# %s %zu skipped: one record carries at most %zu bytes here\n", name, size,
               *record_maxp);
        fflush(stdout);
        return false;
}

typedef struct RefsDirect {
        int fds[2];
        const void *buf;
        void *rbuf;
        size_t size;
        size_t rsize;
} RefsDirect;

/* uds-direct step: write one record on one end, read it on the other */
static void refs_direct_step(void *userdata) {
        RefsDirect *d = userdata;
        ssize_t l;

        l = send(d->fds[0], d->buf, d->size, MSG_NOSIGNAL);
        if (l < 0)
                bench_die("uds-direct: send %zu bytes: %m", d->size);
        l = recv(d->fds[1], d->rbuf, d->rsize, 0);
        if (l < 0)
                bench_die("uds-direct: recv: %m");
        if ((size_t)l != d->size)
                bench_die("uds-direct: received %zd bytes, sent %zu", l, d->size);
}

/* the uds-direct case over every size */
static void refs_direct(const void *buf, size_t *record_maxp) {
        RefsDirect d = { .buf = buf, .rsize = refs_sizes[REFS_N_SIZES - 1] + 1 };

        d.rbuf = malloc(d.rsize);
        if (!d.rbuf)
                bench_die("out of memory");
        refs_socketpair(d.fds);
        for (size_t i = 0; i < REFS_N_SIZES; ++i) {
                d.size = refs_sizes[i];
                if (!refs_record_fits("uds-direct", d.size, d.size, buf, record_maxp))
                        continue;
                bench_print("uds-direct", d.size, "ns", bench_run(refs_direct_step, &d));
        }
        close(d.fds[0]);
        close(d.fds[1]);
        free(d.rbuf);
}

/*
 * The relay process: an epoll loop over connection 1 (requests in, acks
 * out) and connection 2 (forwarded records out). Each wake-up reads one
 * request, forwards it and acks it. Returns the exit status: 0 when the
 * client closed connection 1, 1 on any failure (reported on stderr).
 */
static int refs_relay_run(int conn1, int conn2, size_t buffer_size) {
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = conn1 };
        RefsHeader ack = {};
        int ep, status = 1;
        void *buf;

        buf = malloc(buffer_size);
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (!buf || ep < 0) {
                fprintf(stderr, "relay: set-up failed\n");
                goto out;
        }
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conn1, &ev) < 0) {
                fprintf(stderr, "relay: epoll_ctl: %m\n");
                goto out;
        }
        /* connection 2 only carries output; watch it for the client's hang-up */
        ev = (struct epoll_event){ .events = 0, .data.fd = conn2 };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conn2, &ev) < 0) {
                fprintf(stderr, "relay: epoll_ctl: %m\n");
                goto out;
        }

        for (;;) {
                struct iovec v = { .iov_base = buf, .iov_len = buffer_size };
                struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };
                RefsHeader h;
                ssize_t l;
                int n;

                n = epoll_wait(ep, &ev, 1, -1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        fprintf(stderr, "relay: epoll_wait: %m\n");
                        goto out;
                }
                if (ev.data.fd == conn2)
                        break;

                l = recvmsg(conn1, &m, MSG_DONTWAIT);
                if (l < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (l < 0) {
                        fprintf(stderr, "relay: recvmsg: %m\n");
                        goto out;
                }
                if (l == 0)
                        break;
                /* validate the framing, as a broker must before forwarding */
                memcpy(&h, buf, sizeof(h));
                if ((m.msg_flags & MSG_TRUNC) || (size_t)l < sizeof(h) ||
                    h.size != (size_t)l - sizeof(h)) {
                        fprintf(stderr, "relay: malformed record of %zd bytes\n", l);
                        goto out;
                }

                /* forward first, then ack: the ack promises the record is queued */
                v.iov_len = (size_t)l;
                if (sendmsg(conn2, &m, MSG_DONTWAIT | MSG_NOSIGNAL) != l) {
                        fprintf(stderr, "relay: sendmsg forward %zd bytes: %m\n", l);
                        goto out;
                }
                ack.seq = h.seq;
                v = (struct iovec){ .iov_base = &ack, .iov_len = sizeof(ack) };
                if (sendmsg(conn1, &m, MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof(ack)) {
                        fprintf(stderr, "relay: sendmsg ack: %m\n");
                        goto out;
                }
        }
        status = 0;
out:
        if (ep >= 0)
                close(ep);
        free(buf);
        return status;
}

typedef struct RefsRelay {
        pid_t pid;
        int conn1, conn2;
        RefsHeader header;
        const void *buf;
        void *rbuf;
        size_t rsize;
} RefsRelay;

/* relay-floor step: request on connection 1, wait for the ack, read connection 2 */
static void refs_relay_step(void *userdata) {
        RefsRelay *r = userdata;
        struct iovec v[2] = {
                { .iov_base = &r->header, .iov_len = sizeof(r->header) },
                { .iov_base = (void *)r->buf, .iov_len = r->header.size },
        };
        struct msghdr m = { .msg_iov = v, .msg_iovlen = r->header.size ? 2 : 1 };
        RefsHeader ack;
        ssize_t l;

        ++r->header.seq;
        l = sendmsg(r->conn1, &m, MSG_NOSIGNAL);
        if (l < 0)
                bench_die("relay-floor: sendmsg %zu bytes: %m",
                          (size_t)(sizeof(r->header) + r->header.size));
        l = recv(r->conn1, &ack, sizeof(ack), 0);
        if (l != sizeof(ack) || ack.seq != r->header.seq)
                bench_die("relay-floor: no ack (%zd bytes%s%s)", l, l < 0 ? ": " : "",
                          l < 0 ? strerror(errno) : "");
        l = recv(r->conn2, r->rbuf, r->rsize, 0);
        if (l < 0)
                bench_die("relay-floor: recv: %m");
        if ((size_t)l != sizeof(r->header) + r->header.size)
                bench_die("relay-floor: received %zd bytes, sent %zu", l,
                          (size_t)(sizeof(r->header) + r->header.size));
}

/* fork the relay on two fresh connections; the client keeps one end of each */
static void refs_relay_start(RefsRelay *r) {
        int c1[2], c2[2];

        refs_socketpair(c1);
        refs_socketpair(c2);
        fflush(stdout);
        r->pid = fork();
        if (r->pid < 0)
                bench_die("fork: %m");
        if (r->pid == 0) {
                close(c1[0]);
                close(c2[0]);
                _exit(refs_relay_run(c1[1], c2[1], r->rsize));
        }
        close(c1[1]);
        close(c2[1]);
        r->conn1 = c1[0];
        r->conn2 = c2[0];
}

/* close both connections, which ends the relay, and reap it */
static void refs_relay_stop(RefsRelay *r) {
        int status;

        close(r->conn1);
        close(r->conn2);
        if (waitpid(r->pid, &status, 0) < 0)
                bench_die("waitpid relay: %m");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                bench_die("relay did not exit cleanly");
}

/* the relay-floor case over every size */
static void refs_relay(const void *buf, size_t *record_maxp) {
        RefsRelay r = { .buf = buf, .rsize = REFS_HEADER_SIZE + refs_sizes[REFS_N_SIZES - 1] + 1 };

        r.rbuf = malloc(r.rsize);
        if (!r.rbuf)
                bench_die("out of memory");
        refs_relay_start(&r);
        for (size_t i = 0; i < REFS_N_SIZES; ++i) {
                size_t size = refs_sizes[i];

                if (!refs_record_fits("relay-floor", size, REFS_HEADER_SIZE + size, buf,
                                      record_maxp))
                        continue;
                r.header.size = size;
                bench_print("relay-floor", size, "ns", bench_run(refs_relay_step, &r));
        }
        refs_relay_stop(&r);
        free(r.rbuf);
}

/* run the selected cases; no arguments run both */
int main(int argc, char **argv) {
        size_t record_max = SIZE_MAX, max = refs_sizes[REFS_N_SIZES - 1] + REFS_HEADER_SIZE;
        void *buf;

        /* touch every page, so no size reads the shared zero page */
        buf = malloc(max);
        if (!buf)
                bench_die("out of memory");
        memset(buf, 0xa5, max);
        if (bench_selected(argc, argv, "uds-direct"))
                refs_direct(buf, &record_max);
        if (bench_selected(argc, argv, "relay-floor"))
                refs_relay(buf, &record_max);
        free(buf);
        return 0;
}
