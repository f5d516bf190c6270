/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus1d: the bus1 broker daemon
 *
 * Parses argv into main_arg_*, builds one Broker and runs it. The address
 * is, in this order: --listen=PATH; the sockets passed by systemd socket
 * activation; $XDG_RUNTIME_DIR/bus1/socket (the directory made 0700).
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include "daemon/broker.h"
#include "util/log.h"

static const char *main_arg_listen = NULL;

static void main_help(void) {
        printf("Usage: bus1d [OPTION]...\n"
               "Run the bus1 broker.\n\n"
               "  -h, --help          show this help and exit\n"
               "      --version       show the version and exit\n"
               "  -l, --listen=PATH   listen on PATH instead of the socket-activated\n"
               "                      sockets or $XDG_RUNTIME_DIR/bus1/socket\n"
               "  -v, --verbose       log more (repeat for debug messages)\n");
}

static int main_parse_argv(int argc, char **argv) {
        enum { ARG_VERSION = 0x100 };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "listen", required_argument, NULL, 'l' },
                { "verbose", no_argument, NULL, 'v' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "hl:v", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        main_help();
                        return 1;
                case ARG_VERSION:
                        printf("bus1d %s\n", PACKAGE_VERSION);
                        return 1;
                case 'l':
                        main_arg_listen = optarg;
                        break;
                case 'v':
                        log_max_level = log_max_level < LOG_INFO ? LOG_INFO : LOG_DEBUG;
                        break;
                default:
                        fprintf(stderr, "Try 'bus1d --help'.\n");
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "bus1d: unexpected argument '%s'\nTry 'bus1d --help'.\n",
                        argv[optind]);
                return -EINVAL;
        }
        return 0;
}

/* $XDG_RUNTIME_DIR/bus1/socket, creating the directory 0700 */
static int main_default_address(char *buf, size_t size) {
        const char *runtime = getenv("XDG_RUNTIME_DIR");
        int n;

        if (!runtime || runtime[0] != '/') {
                fprintf(stderr, "bus1d: $XDG_RUNTIME_DIR is not set to an absolute path; "
                        "use --listen=PATH\n");
                return -ENXIO;
        }
        n = snprintf(buf, size, "%s/bus1", runtime);
        if (n < 0 || (size_t)n >= size)
                return -ENAMETOOLONG;
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                return -errno;
        n = snprintf(buf, size, "%s/bus1/socket", runtime);
        if (n < 0 || (size_t)n >= size)
                return -ENAMETOOLONG;
        return 0;
}

static void main_setup_process(void) {
        struct rlimit rl;

        /*
         * Same-UID processes could otherwise open our writable pool memfds
         * through /proc/<pid>/fd; pool growth must never raise SIGXFSZ.
         */
        prctl(PR_SET_DUMPABLE, 0);
        signal(SIGXFSZ, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);

        /* every peer costs descriptors: take the hard limit */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
}

int main(int argc, char **argv) {
        _cleanup_(broker_freep) Broker *broker = NULL;
        char path[PATH_MAX];
        int r, n_activated;

        r = main_parse_argv(argc, argv);
        if (r)
                return r > 0 ? EXIT_SUCCESS : EXIT_FAILURE;

        /*
         * Claim the activated sockets before anything opens a descriptor,
         * and check they are there: a stale $LISTEN_FDS must not make us
         * take our own event loop's descriptors for sockets.
         */
        n_activated = main_arg_listen ? 0 : sd_listen_fds(true);
        if (n_activated < 0) {
                log_error("socket activation: %s", strerror(-n_activated));
                return EXIT_FAILURE;
        }
        for (int i = 0; i < n_activated; ++i)
                if (fcntl(SD_LISTEN_FDS_START + i, F_GETFD) < 0) {
                        log_error("socket activation: fd %d is not open",
                                  SD_LISTEN_FDS_START + i);
                        return EXIT_FAILURE;
                }

        main_setup_process();

        r = broker_new(&broker);
        if (r < 0) {
                log_error("cannot set up the broker: %s", strerror(-r));
                return EXIT_FAILURE;
        }

        if (main_arg_listen) {
                r = broker_listen_path(broker, main_arg_listen);
        } else if (n_activated > 0) {
                r = broker_listen_activated(broker, n_activated);
        } else {
                r = main_default_address(path, sizeof(path));
                if (r >= 0)
                        r = broker_listen_path(broker, path);
                main_arg_listen = path;
        }
        if (r < 0) {
                log_error("cannot listen on %s: %s",
                          main_arg_listen ? main_arg_listen : "the activated sockets",
                          strerror(-r));
                return EXIT_FAILURE;
        }

        if (main_arg_listen)
                log_notice("listening on %s (clients: BUS1_ADDRESS=%s)", main_arg_listen,
                           main_arg_listen);
        sd_notify(0, "READY=1");

        r = broker_run(broker);
        sd_notify(0, "STOPPING=1");
        if (r < 0) {
                log_error("event loop failed: %s", strerror(-r));
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
