/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Config: the broker's configuration file
 *
 * A Config holds the limits that configuration files and command-line
 * options set: one section of defaults for every UID ([Limits]) and one
 * section per overridden UID ([UID 1000], or [User name] resolved to its
 * UID). A section remembers which keys were set, so that reading several
 * files into one Config, and command-line options after them, overrides
 * key by key: the last value of a key wins, and a key nobody set keeps the
 * built-in default. config_apply() then turns it into the UserRegistry's
 * defaults and per-UID overrides; an override section takes every key it
 * does not set from the effective defaults.
 *
 * The format (docs/limits.md and bus1.conf(5) document it for users):
 *
 *     # a comment: a whole line starting with '#' or ';'
 *     [Limits]
 *     MaxSlices=16384
 *     MaxInflightBytes=16M
 *     [UID 1000]
 *     MaxConnections=64
 *     [User monitor]
 *     MaxHandles=262144
 *
 * Keys and section names are case-sensitive; blanks (space, tab) around a
 * line, a section name, '=' and a value are ignored. Every value is a
 * decimal integer from config_key_min() of its key (the smallest value with
 * which the bus is of any use: CONFIG_MIN_*) to CONFIG_VALUE_MAX;
 * MaxInflightBytes alone takes a suffix K, M or G (powers of 1024).
 *
 * An unknown key, and an unknown section with everything in it, is ignored
 * with a warning (as systemd and dbus-broker do) that names its line and
 * column and the nearest valid name, if one is close (config_key_suggest()):
 * the warnings are kept in the Config. Anything else (a malformed line, a
 * key before the first section, a bad or missing value, a bad [UID n] or
 * [User name]) is an error naming its line and column.
 *
 * config_parse() works on a buffer and does no I/O except through the
 * optional resolve_user hook. config_load_file() reads a file and resolves
 * user names with getpwnam(3).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Config Config;
typedef struct ConfigError ConfigError;
typedef struct ConfigSection ConfigSection;
typedef struct UserRegistry UserRegistry;

/*
 * SYSCONFDIR/bus1/bus1d.conf: meson's <prefix>/<sysconfdir>, where it installs
 * the file (/etc/bus1/bus1d.conf for a prefix of /usr, and
 * /usr/local/etc/bus1/bus1d.conf for the default /usr/local)
 */
#ifndef SYSCONFDIR
#  error "SYSCONFDIR is not defined: build with meson (it is in the generated config.h)"
#endif
#define CONFIG_SYSTEM_PATH SYSCONFDIR "/bus1/bus1d.conf"
/* relative to $XDG_CONFIG_HOME, or ~/.config */
#define CONFIG_USER_PATH "bus1/bus1d.conf"

/* the UAPI carries the four bus1 limits as u32 limited to INT_MAX */
#define CONFIG_VALUE_MAX 2147483647ULL
/* larger files are refused (-EFBIG) */
#define CONFIG_FILE_MAX (1024 * 1024)
/* longest user name in [User name] */
#define CONFIG_USER_NAME_MAX 256
/* warnings a Config keeps; later ones are only counted */
#define CONFIG_WARNINGS_MAX 32

/*
 * The smallest useful value of each key (config_key_min()). A peer may hold
 * at most half of what its UID has left (user.h), so delivering one message
 * needs 2 slices, and holding one handle or one fd needs 2 of them; a pool
 * is memory in pages, and a page is the least it costs, so a smaller byte
 * limit saves nothing and only shrinks the largest message (half a page).
 */
#define CONFIG_MIN_SLICES 2ULL
#define CONFIG_MIN_HANDLES 2ULL
#define CONFIG_MIN_INFLIGHT_BYTES 4096ULL
#define CONFIG_MIN_INFLIGHT_FDS 2ULL
#define CONFIG_MIN_CONNECTIONS 1ULL

typedef enum ConfigKey {
        CONFIG_MAX_SLICES,
        CONFIG_MAX_HANDLES,
        CONFIG_MAX_INFLIGHT_BYTES,
        CONFIG_MAX_INFLIGHT_FDS,
        CONFIG_MAX_CONNECTIONS,
        _CONFIG_KEY_N,
        _CONFIG_KEY_INVALID = -1,
} ConfigKey;

/**
 * typedef ConfigResolveFn - map a user name to its UID
 * @uidp:       out: the UID
 * @name:       user name (NUL-terminated)
 * @userdata:   the Config's userdata
 *
 * Return: 0, -ESRCH for an unknown user, or another negative errno.
 */
typedef int (*ConfigResolveFn)(uint32_t *uidp, const char *name, void *userdata);

/* what one section sets */
typedef struct ConfigValues {
        uint64_t value[_CONFIG_KEY_N];
        bool set[_CONFIG_KEY_N];
} ConfigValues;

struct ConfigSection {
        uint32_t uid;
        ConfigValues values;
};

/* where a parse or load failed, or what it ignored, and why */
struct ConfigError {
        const char *path;               /* the file, or NULL (a buffer, an option) */
        unsigned int line;              /* 1-based; 0: not about a line */
        unsigned int column;            /* 1-based byte column; 0: the whole line */
        char message[256];
};

struct Config {
        ConfigValues defaults;          /* [Limits] */
        ConfigSection *sections;        /* [UID n] and [User name], by first appearance */
        size_t n_sections;
        ConfigResolveFn resolve_user;   /* NULL: [User name] is an error */
        void *userdata;
        /*
         * What the texts had that was ignored (unknown keys and sections),
         * in order, at most CONFIG_WARNINGS_MAX; the path of a warning is
         * the string given to config_load_file() (NULL for config_parse()).
         */
        ConfigError *warnings;
        size_t n_warnings;
        size_t n_warnings_dropped;      /* beyond CONFIG_WARNINGS_MAX (or without memory) */
};

void config_init(Config *config);
void config_deinit(Config *config);

int config_parse(Config *config, const char *text, size_t len, ConfigError *err);
int config_load_file(Config *config, const char *path, ConfigError *err);
int config_user_path(char *buf, size_t size);
int config_resolve_passwd(uint32_t *uidp, const char *name, void *userdata);

ConfigKey config_key_from_name(const char *name, size_t len);
ConfigKey config_key_suggest(const char *name, size_t len);
const char *config_key_name(ConfigKey key);
uint64_t config_key_min(ConfigKey key);
int config_parse_value(uint64_t *valuep, ConfigKey key, const char *text, size_t len,
                       const char **reasonp);
void config_set_default(Config *config, ConfigKey key, uint64_t value);

int config_apply(const Config *config, UserRegistry *registry);
int config_format(char **textp, const UserRegistry *registry);
