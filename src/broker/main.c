/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus1d: the bus1 broker daemon
 *
 * Parses argv into main_arg_*, builds one Broker and runs it. The address
 * is, in this order: --listen=PATH; the sockets passed by systemd socket
 * activation; $XDG_RUNTIME_DIR/bus1/socket (the directory made 0700).
 *
 * The limits come from configuration files (config.h), read in this order
 * with later ones overriding earlier ones key by key: SYSCONFDIR/bus1/bus1d.conf,
 * then, unless running as root, $XDG_CONFIG_HOME/bus1/bus1d.conf (default
 * ~/.config/bus1/bus1d.conf); or instead only the --config=PATH files. The
 * --max-*= options come last: they set the defaults for every UID, over
 * the files' [Limits] but not over their per-UID sections.
 * --check-config reads all of it, prints the effective limits and exits.
 *
 * Once it listens, the broker drops every capability (caps.h), after
 * switching to --user=NAME if given, starts the thread that closes client
 * descriptors (util/closer.h), and only then tells systemd it is ready. Logs go to the journal's native protocol when stderr is the
 * journal (or --log-target=journal), else to stderr (util/log.h).
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
#include <unistd.h>
#include "broker/broker.h"
#include "broker/caps.h"
#include "broker/config.h"
#include "broker/journal.h"
#include "util/closer.h"
#include "util/log.h"

/* --config may be repeated; the files are read in order */
#define MAIN_CONFIG_MAX 16
/* at exit, how long to wait for client descriptors still being closed */
#define MAIN_CLOSE_TIMEOUT_MS 2000

static const char *main_arg_listen = NULL;
static const char *main_arg_config[MAIN_CONFIG_MAX];
static unsigned int main_arg_n_config = 0;
static bool main_arg_check_config = false;
static uint64_t main_arg_limits[_CONFIG_KEY_N];        /* 0: not given */
static const char *main_arg_user = NULL;
static mode_t main_arg_socket_mode = 0;        /* 0: what the umask gives */

typedef enum MainLogTarget {
        MAIN_LOG_AUTO,          /* the journal if stderr is connected to it */
        MAIN_LOG_JOURNAL,
        MAIN_LOG_STDERR,
} MainLogTarget;
static MainLogTarget main_arg_log_target = MAIN_LOG_AUTO;

static void main_help(void) {
        printf("Usage: bus1d [OPTION]...\n"
               "Run the bus1 broker.\n\n"
               "  -h, --help                  show this help and exit\n"
               "      --version               show the version and exit\n"
               "  -l, --listen=PATH           listen on PATH instead of the socket-activated\n"
               "                              sockets or $XDG_RUNTIME_DIR/bus1/socket\n"
               "  -v, --verbose               log more (repeat for debug messages)\n"
               "      --log-target=TARGET     auto (the journal if stderr is connected to\n"
               "                              it, else stderr), journal or stderr\n"
               "      --socket-mode=MODE      permissions of the --listen socket, in octal\n"
               "                              (e.g. 0666 for a system bus; default: the umask's)\n"
               "      --user=NAME             when started as root, become user NAME once\n"
               "                              listening (every capability is dropped anyway)\n"
               "\n"
               "Configuration (see bus1.conf(5)):\n"
               "      --config=PATH           read PATH (may be repeated) instead of\n"
               "                              " CONFIG_SYSTEM_PATH " and\n"
               "                              $XDG_CONFIG_HOME/" CONFIG_USER_PATH "\n"
               "      --check-config          read and check the configuration, print the\n"
               "                              effective limits, exit 0 if valid, 1 if not\n"
               "      --max-slices=N          pool slices per UID (default 16384, at least 2)\n"
               "      --max-handles=N         handle references per UID (default 65536,\n"
               "                              at least 2)\n"
               "      --max-inflight-bytes=N  pool bytes per UID, suffix K, M or G allowed\n"
               "                              (default 16M, at least 4096)\n"
               "      --max-inflight-fds=N    fds in flight per UID (default 4096, at least 2)\n"
               "      --max-connections=N     connections per UID (default 1024, at least 1)\n"
               "The --max-* options set the defaults for every UID (N up to\n"
               "2147483647); they override [Limits] of the configuration files, not\n"
               "their [UID n] and [User name] sections.\n");
}

/* --max-slices=N and the like: validated now, applied after the files */
static int main_parse_limit(ConfigKey key, const char *option, const char *value) {
        const char *reason;

        if (config_parse_value(&main_arg_limits[key], key, value, strlen(value), &reason) < 0) {
                fprintf(stderr, "bus1d: --%s=%s: %s\n", option, value, reason);
                return -EINVAL;
        }
        return 0;
}

/* --log-target=auto|journal|stderr */
static int main_parse_log_target(const char *value) {
        if (strcmp(value, "auto") == 0)
                main_arg_log_target = MAIN_LOG_AUTO;
        else if (strcmp(value, "journal") == 0)
                main_arg_log_target = MAIN_LOG_JOURNAL;
        else if (strcmp(value, "stderr") == 0)
                main_arg_log_target = MAIN_LOG_STDERR;
        else {
                fprintf(stderr, "bus1d: --log-target=%s: expected auto, journal or stderr\n",
                        value);
                return -EINVAL;
        }
        return 0;
}

/* --socket-mode=MODE, octal */
static int main_parse_socket_mode(const char *value) {
        unsigned long mode;
        char *end;

        errno = 0;
        mode = strtoul(value, &end, 8);
        if (errno || end == value || *end || mode == 0 || mode > 07777) {
                fprintf(stderr, "bus1d: --socket-mode=%s: expected an octal mode from 1 to "
                        "7777, such as 0666\n", value);
                return -EINVAL;
        }
        main_arg_socket_mode = (mode_t)mode;
        return 0;
}

static int main_parse_argv(int argc, char **argv) {
        enum {
                ARG_VERSION = 0x100,
                ARG_CONFIG,
                ARG_CHECK_CONFIG,
                ARG_LOG_TARGET,
                ARG_USER,
                ARG_SOCKET_MODE,
                /* one per ConfigKey, in its order */
                ARG_LIMIT,
                ARG_LIMIT_LAST = ARG_LIMIT + _CONFIG_KEY_N - 1,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "listen", required_argument, NULL, 'l' },
                { "verbose", no_argument, NULL, 'v' },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "check-config", no_argument, NULL, ARG_CHECK_CONFIG },
                { "log-target", required_argument, NULL, ARG_LOG_TARGET },
                { "user", required_argument, NULL, ARG_USER },
                { "socket-mode", required_argument, NULL, ARG_SOCKET_MODE },
                { "max-slices", required_argument, NULL, ARG_LIMIT + CONFIG_MAX_SLICES },
                { "max-handles", required_argument, NULL, ARG_LIMIT + CONFIG_MAX_HANDLES },
                { "max-inflight-bytes", required_argument, NULL,
                  ARG_LIMIT + CONFIG_MAX_INFLIGHT_BYTES },
                { "max-inflight-fds", required_argument, NULL,
                  ARG_LIMIT + CONFIG_MAX_INFLIGHT_FDS },
                { "max-connections", required_argument, NULL,
                  ARG_LIMIT + CONFIG_MAX_CONNECTIONS },
                {}
        };
        int c, i = 0, r;

        while ((c = getopt_long(argc, argv, "hl:v", options, &i)) >= 0) {
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
                case ARG_CONFIG:
                        if (main_arg_n_config >= MAIN_CONFIG_MAX) {
                                fprintf(stderr, "bus1d: at most %d --config options\n",
                                        MAIN_CONFIG_MAX);
                                return -EINVAL;
                        }
                        main_arg_config[main_arg_n_config++] = optarg;
                        break;
                case ARG_CHECK_CONFIG:
                        main_arg_check_config = true;
                        break;
                case ARG_LOG_TARGET:
                        r = main_parse_log_target(optarg);
                        if (r < 0)
                                return r;
                        break;
                case ARG_USER:
                        main_arg_user = optarg;
                        break;
                case ARG_SOCKET_MODE:
                        r = main_parse_socket_mode(optarg);
                        if (r < 0)
                                return r;
                        break;
                case ARG_LIMIT ... ARG_LIMIT_LAST:
                        r = main_parse_limit(c - ARG_LIMIT, options[i].name, optarg);
                        if (r < 0)
                                return r;
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

/* $XDG_RUNTIME_DIR/bus1/socket, creating the directory 0700; says why not */
static int main_default_address(char *buf, size_t size) {
        const char *runtime = getenv("XDG_RUNTIME_DIR");
        int n;

        if (!runtime || runtime[0] != '/') {
                log_error("no address: $XDG_RUNTIME_DIR is not set to an absolute path and "
                          "no socket was passed; use --listen=PATH");
                return -ENXIO;
        }
        n = snprintf(buf, size, "%s/bus1/socket", runtime);
        if (n < 0 || (size_t)n >= size) {
                log_error("no address: $XDG_RUNTIME_DIR is too long for a socket path; "
                          "use --listen=PATH");
                return -ENAMETOOLONG;
        }
        n = snprintf(buf, size, "%s/bus1", runtime);
        if (mkdir(buf, 0700) < 0 && errno != EEXIST) {
                log_error("cannot create %s: %s", buf, strerror(errno));
                return -errno;
        }
        snprintf(buf, size, "%s/bus1/socket", runtime);
        return 0;
}

/*
 * "path:line:column: message", leaving out what the error does not have;
 * a warning (something ignored) says "warning: " before the message, and
 * is logged as one
 */
static void main_config_error(const ConfigError *err, bool check, bool warning) {
        char where[PATH_MAX + 64];
        int n = 0;

        if (err->path)
                n = snprintf(where, sizeof(where), "%s: ", err->path);
        if (err->path && err->line)
                n = snprintf(where, sizeof(where), err->column ? "%s:%u:%u: " : "%s:%u: ",
                             err->path, err->line, err->column);
        if (n <= 0)
                where[0] = '\0';

        if (check)
                fprintf(stderr, "bus1d: %s%s%s\n", where, warning ? "warning: " : "",
                        err->message);
        else if (warning)
                log_warning("configuration: %s%s", where, err->message);
        else
                log_error("configuration: %s%s", where, err->message);
}

/*
 * Read the configuration files and the --max-* options into @config. With
 * @check, say on stdout which files were read, as comments. What a file
 * has that is ignored (unknown keys and sections) is a warning, printed
 * (or logged) as soon as the file is read, before an error in it; it does
 * not fail.
 */
static int main_load_config(Config *config, bool check) {
        const char *paths[MAIN_CONFIG_MAX];
        char user_path[PATH_MAX];
        unsigned int n_paths = 0;
        size_t n_warned = config->n_warnings;
        ConfigError err = {};
        int r;

        if (main_arg_n_config > 0) {
                for (unsigned int i = 0; i < main_arg_n_config; ++i)
                        paths[n_paths++] = main_arg_config[i];
        } else {
                paths[n_paths++] = CONFIG_SYSTEM_PATH;
                /* root runs the system bus: its home has no say */
                if (getuid() != 0 && config_user_path(user_path, sizeof(user_path)) >= 0)
                        paths[n_paths++] = user_path;
        }

        for (unsigned int i = 0; i < n_paths; ++i) {
                bool unreadable = false;

                r = config_load_file(config, paths[i], &err);
                for (; n_warned < config->n_warnings; ++n_warned)
                        main_config_error(&config->warnings[n_warned], check, true);
                /*
                 * The user's own file where the user cannot even look (a
                 * $HOME of someone else's): as if there were none, said
                 */
                if (r == -EACCES && main_arg_n_config == 0 && paths[i] == user_path) {
                        err.message[0] = 0;
                        snprintf(err.message, sizeof(err.message),
                                 "cannot read it (%s); ignored", strerror(EACCES));
                        err.line = err.column = 0;
                        main_config_error(&err, check, true);
                        unreadable = true;
                        r = 0;
                }
                if (r == 0 && main_arg_n_config > 0) {
                        /* a file named on the command line must be there */
                        err = (ConfigError){ .path = paths[i] };
                        snprintf(err.message, sizeof(err.message), "%s", strerror(ENOENT));
                        r = -ENOENT;
                }
                if (r < 0) {
                        main_config_error(&err, check, false);
                        return r;
                }
                if (check)
                        printf("# %s: %s\n", paths[i],
                               r > 0 ? "read" : unreadable ? "not readable" : "not found");
                else if (r > 0)
                        log_info("configuration: read %s", paths[i]);
        }
        if (config->n_warnings_dropped > 0) {
                err = (ConfigError){};
                snprintf(err.message, sizeof(err.message),
                         "%zu more warnings not shown (unknown keys or sections, ignored)",
                         config->n_warnings_dropped);
                main_config_error(&err, check, true);
        }

        for (ConfigKey k = 0; k < _CONFIG_KEY_N; ++k)
                if (main_arg_limits[k])
                        config_set_default(config, k, main_arg_limits[k]);
        return 0;
}

/* --check-config: the limits a broker would start with, as configuration text */
static int main_check_config(void) {
        UserRegistry registry;
        Config config;
        char *text = NULL;
        int r;

        config_init(&config);
        user_registry_init(&registry);
        r = main_load_config(&config, true);
        if (r >= 0)
                r = config_apply(&config, &registry);
        if (r >= 0)
                r = config_format(&text, &registry);
        if (r >= 0)
                fputs(text, stdout);
        else if (r == -ENOMEM)
                fprintf(stderr, "bus1d: %s\n", strerror(-r));
        free(text);
        user_registry_deinit(&registry);
        config_deinit(&config);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
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

/* the journal if asked for, or if stderr goes there (--log-target) */
static void main_setup_log(void) {
        if (main_arg_log_target == MAIN_LOG_JOURNAL ||
            (main_arg_log_target == MAIN_LOG_AUTO && journal_stderr_is_journal())) {
                if (journal_available())
                        log_set_sink(journal_send);
                else if (main_arg_log_target == MAIN_LOG_JOURNAL)
                        log_warning("no journal at " JOURNAL_SOCKET_PATH "; logging to stderr");
        }
}

/*
 * Claim the activated sockets before anything opens a descriptor, and
 * check they are there: a stale $LISTEN_FDS must not make us take our own
 * event loop's descriptors for sockets. Return: their number, or -1.
 */
static int main_claim_activated(void) {
        int n = main_arg_listen ? 0 : sd_listen_fds(true);

        if (n < 0) {
                log_error("socket activation: %s", strerror(-n));
                return -1;
        }
        for (int i = 0; i < n; ++i)
                if (fcntl(SD_LISTEN_FDS_START + i, F_GETFD) < 0) {
                        log_error("socket activation: fd %d is not open",
                                  SD_LISTEN_FDS_START + i);
                        return -1;
                }
        return n;
}

/*
 * The configured limits. Before any listener exists, so no user is looked
 * up with the built-in limits. A new peer's limits start equal to its
 * user's, so the bus's own caps on them must not be lower than what the
 * configuration allows a user.
 */
static int main_apply_config(Broker *broker, const Config *config) {
        int r = config_apply(config, &broker->bus.users);

        if (r < 0) {
                log_error("cannot apply the configuration: %s", strerror(-r));
                return r;
        }
        broker->bus.limits = (PeerLimits){
                .max_slices = PEER_LIMIT_MAX,
                .max_handles = PEER_LIMIT_MAX,
                .max_inflight_bytes = PEER_LIMIT_MAX,
                .max_inflight_fds = PEER_LIMIT_MAX,
        };
        return 0;
}

/* --listen, the activated sockets, or the default address; says why not */
static int main_listen(Broker *broker, int n_activated, char *path, size_t size) {
        int r;

        if (!main_arg_listen && n_activated == 0) {
                /* it says why it cannot */
                if (main_default_address(path, size) < 0)
                        return -1;
                main_arg_listen = path;
        }
        if (main_arg_listen)
                r = broker_listen_path(broker, main_arg_listen, main_arg_socket_mode);
        else
                r = broker_listen_activated(broker, n_activated);
        if (r == -EADDRINUSE)
                log_error("cannot listen on %s: address in use, a broker (or another program) "
                          "accepts connections there", main_arg_listen);
        else if (r == -EEXIST)
                log_error("cannot listen on %s: it exists and is not a socket", main_arg_listen);
        else if (r < 0)
                log_error("cannot listen on %s: %s",
                          main_arg_listen ? main_arg_listen : "the activated sockets",
                          strerror(-r));
        return r;
}

/* binding may have needed privileges; serving needs none */
static int main_drop_privileges(void) {
        int r = caps_drop(main_arg_user);

        if (r == -ESRCH)
                log_error("--user=%s: no such user", main_arg_user);
        else if (r < 0)
                log_error("cannot drop privileges%s%s: %s", main_arg_user ? " to user " : "",
                          main_arg_user ? main_arg_user : "", strerror(-r));
        return r;
}

/* serve until SIGTERM/SIGINT; the broker is freed here */
static int main_serve(Broker *broker) {
        int r;

        /* the event loop never close(2)s a client's fd itself: that may block */
        r = closer_start();
        if (r < 0) {
                log_error("cannot start the closing thread: %s", strerror(-r));
                return EXIT_FAILURE;
        }
        if (main_arg_listen)
                log_notice("listening on %s (clients: BUS1_ADDRESS=%s)", main_arg_listen,
                           main_arg_listen);
        sd_notify(0, "READY=1");

        r = broker_run(broker);
        sd_notify(0, "STOPPING=1");
        if (r < 0)
                log_error("event loop failed: %s", strerror(-r));
        broker_free(broker);
        /* an fd whose close(2) never returns must not keep the broker from exiting */
        if (!closer_flush(MAIN_CLOSE_TIMEOUT_MS))
                log_warning("%zu client descriptors still closing at exit", closer_pending());
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

int main(int argc, char **argv) {
        _cleanup_(broker_freep) Broker *broker = NULL;
        _cleanup_(config_deinit) Config config = {};
        char path[PATH_MAX];
        int r, n_activated;

        r = main_parse_argv(argc, argv);
        if (r)
                return r > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
        if (main_arg_check_config)
                return main_check_config();
        main_setup_log();

        n_activated = main_claim_activated();
        if (n_activated < 0)
                return EXIT_FAILURE;
        /* after the activation check: user lookups may open descriptors */
        if (main_load_config(&config, false) < 0)
                return EXIT_FAILURE;
        main_setup_process();

        r = broker_new(&broker);
        if (r < 0) {
                log_error("cannot set up the broker: %s", strerror(-r));
                return EXIT_FAILURE;
        }
        if (main_apply_config(broker, &config) < 0 ||
            main_listen(broker, n_activated, path, sizeof(path)) < 0 ||
            main_drop_privileges() < 0)
                return EXIT_FAILURE;
        return main_serve(TAKE_PTR(broker));
}
