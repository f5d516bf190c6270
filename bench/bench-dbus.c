/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bench-dbus: the send-recv loop through a D-Bus broker, with sd-bus
 *
 * The D-Bus reference for bench-loop: one thread opens two connections to
 * a running bus (bench/dbus-start starts a private dbus-daemon or
 * dbus-broker), a sender and a receiver. The receiver adds a match for the
 * benchmark signal; each step the sender emits one signal carrying the
 * payload as "ay", unicast to the receiver's unique name, and the receiver
 * dispatches until its match callback has read it. Unlike a bus1 send, the
 * sender gets no acknowledgement: a D-Bus signal is fire-and-forget.
 *
 * Before a size is timed, one untimed probe checks that the bus delivers
 * it. If the bus refuses it (it closes a connection, or the message does
 * not arrive within DBUS_PROBE_TIMEOUT_USEC), a "# ... skipped: reason"
 * line is printed instead of the figure and both connections are opened
 * afresh for the next size. The timeout only guards against a bus that
 * drops the message silently; nothing is ever judged by the time it took.
 *
 * Cases: send-recv-NAME, sizes 0, 64, 1 KiB, 4 KiB, 64 KiB and 1 MiB;
 * metric ns per message.
 *
 * Usage: bench-dbus --address=unix:path=... --name=NAME [CASE...]
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include "bench-util.h"

#define DBUS_PATH "/org/bus1/Bench"
#define DBUS_INTERFACE "org.bus1.Bench"
#define DBUS_MEMBER "Payload"
#define DBUS_PROBE_TIMEOUT_USEC (10ULL * 1000 * 1000)
#define DBUS_N_SIZES (sizeof(dbus_sizes) / sizeof(*dbus_sizes))

static const size_t dbus_sizes[] = { 0, 64, 1024, 4096, 65536, 1048576 };

typedef struct DbusLoop {
        const char *address;
        sd_bus *sender, *receiver;
        sd_bus_slot *match;
        const char *destination;
        const void *buf;
        size_t size;
        uint64_t n_received;
        size_t received_size;
        int received_error;
} DbusLoop;

/* match callback on the receiver: read the payload and count the message */
static int dbus_on_payload(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        DbusLoop *l = userdata;
        const void *p;
        size_t n = 0;
        int r;

        r = sd_bus_message_read_array(m, 'y', &p, &n);
        l->received_error = r < 0 ? r : 0;
        l->received_size = n;
        ++l->n_received;
        return 1;
}

/* open one bus connection to @address, registered with Hello() */
static sd_bus *dbus_connect(const char *address) {
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_new(&bus);
        if (r >= 0)
                r = sd_bus_set_address(bus, address);
        if (r >= 0)
                r = sd_bus_set_bus_client(bus, 1);
        if (r >= 0)
                r = sd_bus_start(bus);
        if (r < 0)
                bench_die("connecting to %s: %s", address, strerror(-r));
        return bus;
}

/* open the sender and the receiver, and add the receiver's match */
static void dbus_open(DbusLoop *l) {
        int r;

        l->sender = dbus_connect(l->address);
        l->receiver = dbus_connect(l->address);
        r = sd_bus_match_signal(l->receiver, &l->match, NULL, DBUS_PATH, DBUS_INTERFACE,
                                DBUS_MEMBER, dbus_on_payload, l);
        if (r < 0)
                bench_die("sd_bus_match_signal: %s", strerror(-r));
        r = sd_bus_get_unique_name(l->receiver, &l->destination);
        if (r < 0)
                bench_die("sd_bus_get_unique_name: %s", strerror(-r));
}

/* drop the match and both connections */
static void dbus_close(DbusLoop *l) {
        l->match = sd_bus_slot_unref(l->match);
        l->sender = sd_bus_flush_close_unref(l->sender);
        l->receiver = sd_bus_flush_close_unref(l->receiver);
        l->destination = NULL;
}

/* emit one signal of l->size bytes to the receiver and write it out */
static int dbus_send(DbusLoop *l) {
        sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_signal(l->sender, &m, DBUS_PATH, DBUS_INTERFACE, DBUS_MEMBER);
        if (r >= 0)
                r = sd_bus_message_set_destination(m, l->destination);
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', l->buf, l->size);
        if (r >= 0)
                r = sd_bus_send(l->sender, m, NULL);
        sd_bus_message_unref(m);
        /* a large message may not fit the socket at once; this is free when it did */
        if (r >= 0)
                r = sd_bus_flush(l->sender);
        return r;
}

/* check what the match callback saw for the message just received */
static int dbus_check(DbusLoop *l) {
        if (l->received_error < 0)
                return l->received_error;
        if (l->received_size != l->size)
                return -EBADMSG;
        return 0;
}

/* bench step: send one signal, dispatch the receiver until it has arrived */
static void dbus_step(void *userdata) {
        DbusLoop *l = userdata;
        uint64_t n = l->n_received;
        int r;

        r = dbus_send(l);
        if (r < 0)
                bench_die("send %zu bytes: %s", l->size, strerror(-r));
        while (l->n_received == n) {
                r = sd_bus_process(l->receiver, NULL);
                if (r < 0)
                        bench_die("sd_bus_process: %s", strerror(-r));
                if (r > 0)
                        continue;
                r = sd_bus_wait(l->receiver, UINT64_MAX);
                if (r < 0)
                        bench_die("sd_bus_wait: %s", strerror(-r));
        }
        r = dbus_check(l);
        if (r < 0)
                bench_die("received a bad payload (%zu bytes, sent %zu): %s", l->received_size,
                          l->size, strerror(-r));
}

/*
 * Untimed probe of one size: send one signal and wait for it while
 * watching the sender's connection too, since a bus that refuses a message
 * usually closes the sender's connection. Returns 0 when it arrived intact;
 * otherwise a negative errno and the reason in @reason.
 */
static int dbus_probe(DbusLoop *l, const char **reasonp) {
        uint64_t n = l->n_received, deadline = bench_now_ns() + DBUS_PROBE_TIMEOUT_USEC * 1000;
        int r;

        r = dbus_send(l);
        if (r < 0) {
                *reasonp = "sending failed";
                return r;
        }
        while (l->n_received == n) {
                struct pollfd p[2];
                uint64_t now;

                r = sd_bus_process(l->receiver, NULL);
                if (r < 0) {
                        *reasonp = "the receiver's connection failed";
                        return r;
                }
                if (r > 0)
                        continue;
                now = bench_now_ns();
                if (now >= deadline) {
                        *reasonp = "not delivered within the probe's time limit";
                        return -ETIMEDOUT;
                }
                p[0] = (struct pollfd){ .fd = sd_bus_get_fd(l->receiver),
                                        .events = (short)sd_bus_get_events(l->receiver) };
                /* only a hang-up: the sender's unread input keeps POLLIN set */
                p[1] = (struct pollfd){ .fd = sd_bus_get_fd(l->sender), .events = POLLRDHUP };
                r = poll(p, 2, (int)((deadline - now) / 1000000 + 1));
                if (r < 0 && errno != EINTR)
                        bench_die("poll: %m");
                if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
                        *reasonp = "the bus closed the sender's connection";
                        return -ECONNRESET;
                }
        }
        r = dbus_check(l);
        if (r < 0)
                *reasonp = "the payload arrived damaged";
        return r;
}

/* the send-recv-NAME case over every size */
static void dbus_loop(const char *address, const char *name, const void *buf) {
        DbusLoop l = { .address = address, .buf = buf };

        dbus_open(&l);
        for (size_t i = 0; i < DBUS_N_SIZES; ++i) {
                const char *reason = NULL;
                int r;

                l.size = dbus_sizes[i];
                r = dbus_probe(&l, &reason);
                if (r < 0) {
                        printf("# %s %zu skipped: %s (%s)\n", name, l.size, reason, strerror(-r));
                        fflush(stdout);
                        /* start over: the bus may have closed either connection */
                        dbus_close(&l);
                        dbus_open(&l);
                        continue;
                }
                bench_print(name, l.size, "ns", bench_run(dbus_step, &l));
        }
        dbus_close(&l);
}

/* parse --address and --name, then run send-recv-NAME if selected */
int main(int argc, char **argv) {
        const char *address = NULL, *bus_name = NULL;
        char name[128];
        size_t max = dbus_sizes[DBUS_N_SIZES - 1];
        void *buf;

        for (int i = 1; i < argc; ++i) {
                if (!strncmp(argv[i], "--address=", 10))
                        address = argv[i] + 10;
                else if (!strncmp(argv[i], "--name=", 7))
                        bus_name = argv[i] + 7;
                else if (argv[i][0] == '-')
                        bench_die("unknown option %s", argv[i]);
        }
        if (!address || !*address || !bus_name || !*bus_name)
                bench_die("usage: %s --address=unix:path=... --name=NAME [CASE...]", argv[0]);
        snprintf(name, sizeof(name), "send-recv-%s", bus_name);
        if (!bench_selected(argc, argv, name))
                return 0;

        /* touch every page, so no size reads the shared zero page */
        buf = malloc(max);
        if (!buf)
                bench_die("out of memory");
        memset(buf, 0xa5, max);
        dbus_loop(address, name, buf);
        free(buf);
        return 0;
}
