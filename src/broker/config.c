/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Config: the broker's configuration file
 *
 * See config.h for the format. The parser takes a buffer (which may hold
 * NUL bytes; they are an error) and walks it line by line; each line is a
 * blank or comment line, a section header or one assignment, and nothing
 * of one line carries over to the next except the current section.
 *
 * Invariants:
 *  - a value stored in a ConfigValues is in config_key_min()..CONFIG_VALUE_MAX
 *    and its `set` flag is true; an unset value is 0;
 *  - what the parser ignores (an unknown key, an unknown section and all
 *    its lines) never changes a ConfigValues; it only adds a warning;
 *  - `sections` holds at most one section per UID ([UID n] and a
 *    [User name] naming the same UID share it), in order of first
 *    appearance;
 *  - on failure the Config keeps whatever the text set before the error;
 *    callers discard it.
 */

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "broker/config.h"
#include "bus/user.h"
#include "util/macro.h"

/* the longest text quoted back in an error message */
#define CONFIG_QUOTE_MAX 64
/* names longer than this are compared with no valid name (their distance is too large anyway) */
#define CONFIG_SUGGEST_LEN_MAX 64

static const char *const config_key_names[_CONFIG_KEY_N] = {
        [CONFIG_MAX_SLICES] = "MaxSlices",
        [CONFIG_MAX_HANDLES] = "MaxHandles",
        [CONFIG_MAX_INFLIGHT_BYTES] = "MaxInflightBytes",
        [CONFIG_MAX_INFLIGHT_FDS] = "MaxInflightFds",
        [CONFIG_MAX_CONNECTIONS] = "MaxConnections",
};

/*
 * The smallest useful value of each key and why, as config_parse_value()
 * words it; the range it gives when a value is too large
 */
static const struct {
        uint64_t min;
        const char *below;
        const char *range;
} config_key_mins[_CONFIG_KEY_N] = {
        [CONFIG_MAX_SLICES] = {
                CONFIG_MIN_SLICES,
                "below the smallest useful value 2 (one message: a peer may hold at most "
                "half of what its UID has left)",
                "out of range (2 to 2147483647)",
        },
        [CONFIG_MAX_HANDLES] = {
                CONFIG_MIN_HANDLES,
                "below the smallest useful value 2 (one handle: a peer may hold at most "
                "half of what its UID has left)",
                "out of range (2 to 2147483647)",
        },
        [CONFIG_MAX_INFLIGHT_BYTES] = {
                CONFIG_MIN_INFLIGHT_BYTES,
                "below the smallest useful value 4096 (one page: a pool costs whole pages, "
                "and a peer may fill at most half of what its UID has left)",
                "out of range (4096 to 2147483647)",
        },
        [CONFIG_MAX_INFLIGHT_FDS] = {
                CONFIG_MIN_INFLIGHT_FDS,
                "below the smallest useful value 2 (one fd: a peer may hold at most half "
                "of what its UID has left)",
                "out of range (2 to 2147483647)",
        },
        [CONFIG_MAX_CONNECTIONS] = {
                CONFIG_MIN_CONNECTIONS,
                "below the smallest useful value 1 (one connection)",
                "out of range (1 to 2147483647)",
        },
};

/* section names, for suggestions; UID and User take an argument */
static const char *const config_section_names[] = { "Limits", "UID", "User" };

typedef struct ConfigParser {
        Config *config;
        ConfigValues *section;  /* NULL before the first section header and in an unknown one */
        bool skip;              /* in an unknown section: its assignments are ignored */
        ConfigError *err;
        const char *line;       /* start of the current line */
        unsigned int n_line;    /* its number, 1-based */
} ConfigParser;

static bool config_is_blank(char c) {
        return c == ' ' || c == '\t';
}

static bool config_is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool config_word_is(const char *word, size_t len, const char *name) {
        return strlen(name) == len && !memcmp(word, name, len);
}

/**
 * config_init() - an empty configuration: every key keeps its default
 * @config:     config
 */
void config_init(Config *config) {
        *config = (Config){};
}

/**
 * config_deinit() - release a configuration
 * @config:     config, initialised; left empty
 */
void config_deinit(Config *config) {
        free(config->sections);
        free(config->warnings);
        config_init(config);
}

/**
 * config_key_name() - the name of a key as written in the file
 * @key:        CONFIG_*
 *
 * Return: "MaxSlices" and so on, or NULL for an invalid key.
 */
const char *config_key_name(ConfigKey key) {
        return key >= 0 && key < _CONFIG_KEY_N ? config_key_names[key] : NULL;
}

/**
 * config_key_from_name() - the key of a name (case-sensitive)
 * @name:       name, not NUL-terminated
 * @len:        its length
 *
 * Return: CONFIG_*, or _CONFIG_KEY_INVALID.
 */
ConfigKey config_key_from_name(const char *name, size_t len) {
        for (ConfigKey k = 0; k < _CONFIG_KEY_N; ++k)
                if (config_word_is(name, len, config_key_names[k]))
                        return k;
        return _CONFIG_KEY_INVALID;
}

/**
 * config_key_min() - the smallest value a key takes
 * @key:        CONFIG_*
 *
 * Below it the bus is of no use (CONFIG_MIN_*): no message, handle or fd
 * could be delivered, or no connection made.
 *
 * Return: the minimum, or 0 for an invalid key.
 */
uint64_t config_key_min(ConfigKey key) {
        return key >= 0 && key < _CONFIG_KEY_N ? config_key_mins[key].min : 0;
}

static char config_ascii_lower(char c) {
        return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool config_char_eq(char a, char b) {
        return config_ascii_lower(a) == config_ascii_lower(b);
}

/*
 * Edit distance of @a and the NUL-terminated @b (at most
 * CONFIG_SUGGEST_LEN_MAX long): insertions, deletions, substitutions and
 * swaps of two neighbours cost 1 each, a difference in case nothing (the
 * exact name has been looked for already).
 */
static size_t config_distance(const char *a, size_t la, const char *b) {
        size_t rows[3][CONFIG_SUGGEST_LEN_MAX + 1];
        size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2], lb = strlen(b);

        for (size_t j = 0; j <= lb; ++j)
                prev[j] = j;
        for (size_t i = 1; i <= la; ++i) {
                size_t *t;

                cur[0] = i;
                for (size_t j = 1; j <= lb; ++j) {
                        size_t v = prev[j - 1] + !config_char_eq(a[i - 1], b[j - 1]);

                        v = MIN(v, prev[j] + 1);
                        v = MIN(v, cur[j - 1] + 1);
                        if (i > 1 && j > 1 && config_char_eq(a[i - 1], b[j - 2]) &&
                            config_char_eq(a[i - 2], b[j - 1]))
                                v = MIN(v, prev2[j - 2] + 1);
                        cur[j] = v;
                }
                t = prev2;
                prev2 = prev;
                prev = cur;
                cur = t;
        }
        return prev[lb];
}

/*
 * The index of the name in @names nearest to @name, if it is at most a
 * third of that name's length away (and at least @slack); -1 if none is.
 * The first of equally near names wins.
 */
static int config_nearest(const char *name, size_t len, const char *const *names, size_t n,
                          size_t slack) {
        size_t best_d = SIZE_MAX;
        int best = -1;

        if (len > CONFIG_SUGGEST_LEN_MAX)
                return -1;
        for (size_t i = 0; i < n; ++i) {
                size_t lb = strlen(names[i]), d;

                d = config_distance(name, len, names[i]);
                if (d <= MAX(slack, lb / 3) && d < best_d) {
                        best_d = d;
                        best = (int)i;
                }
        }
        return best;
}

/**
 * config_key_suggest() - the valid key nearest to a name
 * @name:       a name, not NUL-terminated
 * @len:        its length
 *
 * Nearest by edit distance (case ignored, two swapped neighbours count as
 * one edit), and only if at most max(2, a third of the key's length) edits
 * away: "MaxInflightByte" and "maxslices" have a suggestion, "Foo" has none.
 *
 * Return: CONFIG_*, or _CONFIG_KEY_INVALID if no key is close.
 */
ConfigKey config_key_suggest(const char *name, size_t len) {
        int i = config_nearest(name, len, config_key_names, _CONFIG_KEY_N, 2);

        return i < 0 ? _CONFIG_KEY_INVALID : (ConfigKey)i;
}

/* a decimal number without sign, all of [text, text + len) */
static int config_parse_decimal(uint64_t *vp, const char *text, size_t len, size_t *n_digitsp) {
        uint64_t v = 0;
        size_t i;

        for (i = 0; i < len && config_is_digit(text[i]); ++i)
                if (__builtin_mul_overflow(v, 10, &v) ||
                    __builtin_add_overflow(v, (uint64_t)(text[i] - '0'), &v))
                        return -ERANGE;
        *vp = v;
        *n_digitsp = i;
        return 0;
}

/* config_parse_value(), but -EDOM for a value below the key's minimum */
static int config_parse_value_at(uint64_t *valuep, ConfigKey key, const char *text, size_t len,
                                 const char **reasonp) {
        bool suffixes = key == CONFIG_MAX_INFLIGHT_BYTES;
        uint64_t v, mul = 1;
        size_t n;

        if (config_parse_decimal(&v, text, len, &n) < 0) {
                *reasonp = config_key_mins[key].range;
                return -ERANGE;
        }
        if (n == 0 || (n < len && !(suffixes && n + 1 == len))) {
                *reasonp = suffixes ? "not a decimal number with an optional K, M or G suffix"
                                    : "not a decimal number";
                return -EINVAL;
        }
        if (n < len) {
                switch (text[n]) {
                case 'K':
                        mul = 1024ULL;
                        break;
                case 'M':
                        mul = 1024ULL * 1024;
                        break;
                case 'G':
                        mul = 1024ULL * 1024 * 1024;
                        break;
                default:
                        *reasonp = "not a decimal number with an optional K, M or G suffix";
                        return -EINVAL;
                }
        }
        if (__builtin_mul_overflow(v, mul, &v) || v > CONFIG_VALUE_MAX) {
                *reasonp = config_key_mins[key].range;
                return -ERANGE;
        }
        if (v < config_key_mins[key].min) {
                *reasonp = config_key_mins[key].below;
                return -EDOM;
        }
        *valuep = v;
        return 0;
}

/**
 * config_parse_value() - parse and validate the value of a key
 * @valuep:     out: the value
 * @key:        CONFIG_*
 * @text:       the value, without surrounding blanks, not NUL-terminated
 * @len:        its length
 * @reasonp:    out, on failure: why, for a message (a static string)
 *
 * A value is a decimal integer (no sign, no blanks) from config_key_min()
 * to CONFIG_VALUE_MAX; for CONFIG_MAX_INFLIGHT_BYTES it may end in K, M or
 * G (times 1024, 1024², 1024³), and the minimum applies to the product.
 * Overflow anywhere is out of range. The reason for a value below the
 * minimum is "below the smallest useful value N (why)".
 *
 * Return: 0, -EINVAL if it is no such number, -ERANGE if it is out of range
 *         (below the minimum included).
 */
int config_parse_value(uint64_t *valuep, ConfigKey key, const char *text, size_t len,
                       const char **reasonp) {
        int r = config_parse_value_at(valuep, key, text, len, reasonp);

        return r == -EDOM ? -ERANGE : r;
}

/**
 * config_set_default() - set a key of the defaults ([Limits])
 * @config:     config
 * @key:        CONFIG_*
 * @value:      a value config_parse_value() accepted
 *
 * This is what a command-line option does: it overrides what the files
 * set in [Limits], but not what they set for one UID.
 */
void config_set_default(Config *config, ConfigKey key, uint64_t value) {
        config->defaults.value[key] = value;
        config->defaults.set[key] = true;
}

static int config_error(ConfigParser *p, const char *at, const char *fmt, ...)
        __attribute__((__format__(__printf__, 3, 4)));

/* the 1-based column of @at in the current line; 0 for NULL, the whole line */
static unsigned int config_column(ConfigParser *p, const char *at) {
        return at ? (unsigned int)MIN((size_t)(at - p->line) + 1, (size_t)UINT32_MAX) : 0;
}

/* fill in the error for the current line; @at NULL means the whole line */
static int config_error(ConfigParser *p, const char *at, const char *fmt, ...) {
        va_list ap;

        p->err->line = p->n_line;
        p->err->column = config_column(p, at);
        va_start(ap, fmt);
        vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static void config_warning(ConfigParser *p, const char *at, const char *fmt, ...)
        __attribute__((__format__(__printf__, 3, 4)));

/*
 * Keep a warning about the current line; beyond CONFIG_WARNINGS_MAX, or
 * without memory, it is only counted
 */
static void config_warning(ConfigParser *p, const char *at, const char *fmt, ...) {
        Config *config = p->config;
        ConfigError *w;
        va_list ap;

        if (config->n_warnings >= CONFIG_WARNINGS_MAX) {
                ++config->n_warnings_dropped;
                return;
        }
        if (!config->warnings) {
                config->warnings = calloc(CONFIG_WARNINGS_MAX, sizeof(*config->warnings));
                if (!config->warnings) {
                        ++config->n_warnings_dropped;
                        return;
                }
        }
        w = &config->warnings[config->n_warnings++];
        *w = (ConfigError){ .line = p->n_line, .column = config_column(p, at) };
        va_start(ap, fmt);
        vsnprintf(w->message, sizeof(w->message), fmt, ap);
        va_end(ap);
}

static int config_quote_len(size_t len) {
        return (int)MIN(len, (size_t)CONFIG_QUOTE_MAX);
}

/* the section of @uid, added if new */
static int config_get_section(ConfigValues **valuesp, Config *config, uint32_t uid) {
        ConfigSection *s;

        for (size_t i = 0; i < config->n_sections; ++i)
                if (config->sections[i].uid == uid) {
                        *valuesp = &config->sections[i].values;
                        return 0;
                }

        s = reallocarray(config->sections, config->n_sections + 1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        config->sections = s;
        s = &config->sections[config->n_sections++];
        *s = (ConfigSection){ .uid = uid };
        *valuesp = &s->values;
        return 0;
}

/* [UID n]: a decimal UID, never (uid_t)-1 */
static int config_parse_uid_section(ConfigParser *p, const char *arg, size_t len) {
        uint64_t uid;
        size_t n;

        if (config_parse_decimal(&uid, arg, len, &n) < 0 || n == 0 || n != len ||
            uid >= UINT32_MAX)
                return config_error(p, arg, "invalid UID '%.*s' (a decimal number below %u)",
                                    config_quote_len(len), arg, UINT32_MAX);
        return config_get_section(&p->section, p->config, (uint32_t)uid);
}

/* [User name]: resolved through the config's hook */
static int config_parse_user_section(ConfigParser *p, const char *arg, size_t len) {
        char name[CONFIG_USER_NAME_MAX + 1];
        uint32_t uid;
        int r;

        if (len > CONFIG_USER_NAME_MAX || memchr(arg, ' ', len) || memchr(arg, '\t', len))
                return config_error(p, arg, "invalid user name '%.*s'", config_quote_len(len),
                                    arg);
        if (!p->config->resolve_user)
                return config_error(p, arg, "cannot resolve user '%.*s' here (no user database)",
                                    config_quote_len(len), arg);

        memcpy(name, arg, len);
        name[len] = '\0';
        r = p->config->resolve_user(&uid, name, p->config->userdata);
        if (r == -ESRCH)
                return config_error(p, arg, "unknown user '%s'", name);
        if (r < 0) {
                config_error(p, arg, "cannot resolve user '%s': %s", name, strerror(-r));
                return r;
        }
        return config_get_section(&p->section, p->config, uid);
}

/* an unknown section [name arg]: a warning, with the nearest valid section */
static void config_warn_section(ConfigParser *p, const char *name, const char *name_end,
                                const char *arg, const char *arg_end) {
        size_t len = name_end - name, n_digits;
        int quote = config_quote_len(arg_end - name), q_arg = config_quote_len(arg_end - arg);
        uint64_t uid;
        int i;

        /* [UID1000]: the blank is missing */
        if (arg == arg_end && len > 3 && config_char_eq(name[0], 'U') &&
            config_char_eq(name[1], 'I') && config_char_eq(name[2], 'D') &&
            config_parse_decimal(&uid, name + 3, len - 3, &n_digits) >= 0 &&
            n_digits == len - 3) {
                config_warning(p, name, "unknown section '[%.*s]' ignored with its keys; "
                               "did you mean [UID %.*s]?", quote, name,
                               config_quote_len(len - 3), name + 3);
                return;
        }

        i = config_nearest(name, len, config_section_names, ARRAY_SIZE(config_section_names),
                           1);
        if (i < 0)
                config_warning(p, name, "unknown section '[%.*s]' ignored with its keys "
                               "(sections: [Limits], [UID n], [User name])", quote, name);
        else if (i == 0)
                config_warning(p, name, "unknown section '[%.*s]' ignored with its keys; "
                               "did you mean [Limits]?", quote, name);
        else if (arg != arg_end)
                config_warning(p, name, "unknown section '[%.*s]' ignored with its keys; "
                               "did you mean [%s %.*s]?", quote, name, config_section_names[i],
                               q_arg, arg);
        else
                config_warning(p, name, "unknown section '[%.*s]' ignored with its keys; "
                               "did you mean [%s]?", quote, name,
                               i == 1 ? "UID n" : "User name");
}

/* '[' ... ']' with nothing after it; @s..@end is the trimmed line */
static int config_parse_section(ConfigParser *p, const char *s, const char *end) {
        const char *close, *name, *name_end, *arg, *arg_end;

        close = memchr(s, ']', end - s);
        if (!close)
                return config_error(p, s, "missing ']' after section name");
        if (close + 1 != end)
                return config_error(p, close + 1, "unexpected text after ']'");

        for (name = s + 1; name < close && config_is_blank(*name); ++name)
                ;
        for (arg_end = close; arg_end > name && config_is_blank(arg_end[-1]); --arg_end)
                ;
        for (name_end = name; name_end < arg_end && !config_is_blank(*name_end); ++name_end)
                ;
        for (arg = name_end; arg < arg_end && config_is_blank(*arg); ++arg)
                ;

        if (name == name_end)
                return config_error(p, name, "missing section name: [Limits], [UID n] or "
                                    "[User name]");

        p->skip = false;
        if (config_word_is(name, name_end - name, "Limits")) {
                if (arg != arg_end)
                        return config_error(p, arg, "[Limits] takes no argument");
                p->section = &p->config->defaults;
                return 0;
        }
        if (config_word_is(name, name_end - name, "UID")) {
                if (arg == arg_end)
                        return config_error(p, s, "missing UID: [UID n]");
                return config_parse_uid_section(p, arg, arg_end - arg);
        }
        if (config_word_is(name, name_end - name, "User")) {
                if (arg == arg_end)
                        return config_error(p, s, "missing user name: [User name]");
                return config_parse_user_section(p, arg, arg_end - arg);
        }

        /* what follows, up to the next section, is ignored */
        p->section = NULL;
        p->skip = true;
        config_warn_section(p, name, name_end, arg, arg_end);
        return 0;
}

/* Key=value; @s..@end is the trimmed line */
static int config_parse_assignment(ConfigParser *p, const char *s, const char *end) {
        const char *eq, *key_end, *value, *reason;
        ConfigKey key;
        uint64_t v;
        int r;

        eq = memchr(s, '=', end - s);
        if (!eq)
                return config_error(p, s, "expected 'Key=value', '[Section]' or a comment");
        for (key_end = eq; key_end > s && config_is_blank(key_end[-1]); --key_end)
                ;
        for (value = eq + 1; value < end && config_is_blank(*value); ++value)
                ;
        if (key_end == s)
                return config_error(p, s, "missing key before '='");
        if (!p->section && !p->skip)
                return config_error(p, s, "%.*s= outside a section (put it under [Limits], "
                                    "[UID n] or [User name])", config_quote_len(key_end - s),
                                    s);
        /* an unknown section was warned about once: nothing in it counts */
        if (p->skip)
                return 0;

        key = config_key_from_name(s, key_end - s);
        if (key == _CONFIG_KEY_INVALID) {
                ConfigKey near = config_key_suggest(s, key_end - s);

                if (near == _CONFIG_KEY_INVALID)
                        config_warning(p, s, "unknown key '%.*s' ignored (keys: MaxSlices, "
                                       "MaxHandles, MaxInflightBytes, MaxInflightFds, "
                                       "MaxConnections)", config_quote_len(key_end - s), s);
                else
                        config_warning(p, s, "unknown key '%.*s' ignored; did you mean %s?",
                                       config_quote_len(key_end - s), s,
                                       config_key_names[near]);
                return 0;
        }
        if (value == end)
                return config_error(p, value, "missing value for %s=", config_key_names[key]);
        r = config_parse_value_at(&v, key, value, end - value, &reason);
        if (r == -EDOM)
                return config_error(p, value, "%s=%.*s is %s", config_key_names[key],
                                    config_quote_len(end - value), value, reason);
        if (r < 0)
                return config_error(p, value, "invalid value '%.*s' for %s=: %s",
                                    config_quote_len(end - value), value, config_key_names[key],
                                    reason);

        /* a repeated key simply overrides: the last one wins */
        p->section->value[key] = v;
        p->section->set[key] = true;
        return 0;
}

static int config_parse_line(ConfigParser *p, const char *end) {
        const char *s = p->line, *nul;

        nul = memchr(s, '\0', end - s);
        if (nul)
                return config_error(p, nul, "NUL byte");

        while (s < end && config_is_blank(*s))
                ++s;
        while (end > s && (config_is_blank(end[-1]) || end[-1] == '\r'))
                --end;

        if (s == end || *s == '#' || *s == ';')
                return 0;
        if (*s == '[')
                return config_parse_section(p, s, end);
        return config_parse_assignment(p, s, end);
}

/**
 * config_parse() - read configuration text into a config
 * @config:     config; what the text sets overrides what it held
 * @text:       the text, not necessarily NUL-terminated
 * @len:        its length
 * @err:        out, on failure: where and why (err->path is set to NULL)
 *
 * Lines end in "\n" (a "\r" before it is ignored, and so is a UTF-8 byte
 * order mark at the start). [User name] sections are resolved through
 * config->resolve_user; without it they are an error. No other I/O.
 * An unknown key, or an unknown section and every line in it, is ignored
 * and added to config->warnings (with no path), also when a later line is
 * an error.
 *
 * Return: 0, -EINVAL for invalid text (@err names the line and column),
 *         -ENOMEM, or what config->resolve_user returned other than
 *         -ESRCH (@err filled in too).
 */
int config_parse(Config *config, const char *text, size_t len, ConfigError *err) {
        ConfigParser p = {
                .config = config,
                .err = err,
                .line = text,
                .n_line = 1,
        };
        const char *end = text + len;
        int r;

        *err = (ConfigError){};
        if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
                p.line += 3;

        while (p.line < end) {
                const char *nl = memchr(p.line, '\n', end - p.line);
                const char *eol = nl ?: end;

                r = config_parse_line(&p, eol);
                if (r < 0) {
                        if (r == -ENOMEM) {
                                err->line = p.n_line;
                                snprintf(err->message, sizeof(err->message), "out of memory");
                        }
                        return r;
                }
                if (!nl)
                        break;
                p.line = nl + 1;
                if (p.n_line < UINT32_MAX)
                        ++p.n_line;
        }
        return 0;
}

/**
 * config_resolve_passwd() - resolve a user name with getpwnam(3)
 * @uidp:       out: the UID
 * @name:       user name
 * @userdata:   unused
 *
 * Return: 0, -ESRCH for an unknown user, or the errno of getpwnam(3).
 */
int config_resolve_passwd(uint32_t *uidp, const char *name, void *userdata) {
        struct passwd *pw;

        errno = 0;
        pw = getpwnam(name);
        if (!pw) {
                /* getpwnam(3): "not found" comes as 0, ENOENT, ESRCH, EBADF or EPERM */
                if (errno == 0 || errno == ENOENT || errno == ESRCH || errno == EBADF ||
                    errno == EPERM)
                        return -ESRCH;
                return -errno;
        }
        if (pw->pw_uid == (uid_t)-1)
                return -ESRCH;
        *uidp = (uint32_t)pw->pw_uid;
        return 0;
}

static int config_load_error(ConfigError *err, const char *path, int r, const char *what) {
        *err = (ConfigError){ .path = path };
        snprintf(err->message, sizeof(err->message), "%s", what ?: strerror(-r));
        return r;
}

/* the whole file, at most CONFIG_FILE_MAX bytes */
static int config_read_fd(char **bufp, size_t *lenp, int fd) {
        _cleanup_(freep) char *buf = NULL;
        size_t len = 0;

        /* one byte more than allowed shows that the file is too large */
        buf = malloc(CONFIG_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t l = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);

                if (l < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (l == 0)
                        break;
                len += (size_t)l;
                if (len > CONFIG_FILE_MAX)
                        return -EFBIG;
        }
        *bufp = TAKE_PTR(buf);
        *lenp = len;
        return 0;
}

/**
 * config_load_file() - read a configuration file into a config
 * @config:     config; what the file sets overrides what it held
 * @path:       file
 * @err:        out, on failure: err->path is @path, and line and column
 *              are those config_parse() gives (0 for an I/O error)
 *
 * A file that does not exist is no error: it sets nothing. [User name]
 * sections are resolved with config->resolve_user, or getpwnam(3) if that
 * is NULL. The warnings the file adds to config->warnings carry @path.
 *
 * Return: 1 if the file was read, 0 if it does not exist, -EINVAL for
 *         invalid content, -EFBIG for a file larger than CONFIG_FILE_MAX,
 *         -EISDIR for a directory, -ENOMEM, or the errno of open(2) or
 *         read(2).
 */
int config_load_file(Config *config, const char *path, ConfigError *err) {
        _cleanup_(closep) int fd = -1;
        _cleanup_(freep) char *buf = NULL;
        ConfigResolveFn resolve = config->resolve_user;
        size_t n_warnings = config->n_warnings;
        struct stat st;
        size_t len = 0;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT)
                        return 0;
                return config_load_error(err, path, -errno, NULL);
        }
        if (fstat(fd, &st) < 0)
                return config_load_error(err, path, -errno, NULL);
        if (S_ISDIR(st.st_mode))
                return config_load_error(err, path, -EISDIR, NULL);

        r = config_read_fd(&buf, &len, fd);
        if (r == -EFBIG)
                return config_load_error(err, path, r, "larger than 1 MiB");
        if (r < 0)
                return config_load_error(err, path, r, NULL);

        if (!config->resolve_user)
                config->resolve_user = config_resolve_passwd;
        r = config_parse(config, buf, len, err);
        config->resolve_user = resolve;
        err->path = path;
        for (size_t i = n_warnings; i < config->n_warnings; ++i)
                config->warnings[i].path = path;
        return r < 0 ? r : 1;
}

/**
 * config_user_path() - the per-user configuration file
 * @buf:        out: the path
 * @size:       size of @buf
 *
 * $XDG_CONFIG_HOME/bus1/bus1d.conf if $XDG_CONFIG_HOME is an absolute path,
 * else ~/.config/bus1/bus1d.conf with the home directory from $HOME (if
 * absolute) or the user database.
 *
 * Return: 0, -ENXIO if there is no home directory, -ENAMETOOLONG.
 */
int config_user_path(char *buf, size_t size) {
        const char *base = getenv("XDG_CONFIG_HOME"), *sub = "";
        int n;

        if (!base || base[0] != '/') {
                base = getenv("HOME");
                if (!base || base[0] != '/') {
                        struct passwd *pw = getpwuid(getuid());

                        base = pw && pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : NULL;
                }
                if (!base)
                        return -ENXIO;
                sub = "/.config";
        }
        n = snprintf(buf, size, "%s%s/" CONFIG_USER_PATH, base, sub);
        if (n < 0 || (size_t)n >= size)
                return -ENAMETOOLONG;
        return 0;
}

/* what a section sets, over @limits */
static void config_values_apply(UserLimits *limits, const ConfigValues *values) {
        static const unsigned int resources[] = {
                [CONFIG_MAX_SLICES] = USER_SLICES,
                [CONFIG_MAX_HANDLES] = USER_HANDLES,
                [CONFIG_MAX_INFLIGHT_BYTES] = USER_BYTES,
                [CONFIG_MAX_INFLIGHT_FDS] = USER_FDS,
        };

        for (ConfigKey k = 0; k < _CONFIG_KEY_N; ++k) {
                if (!values->set[k])
                        continue;
                if (k == CONFIG_MAX_CONNECTIONS)
                        limits->max_peers = values->value[k];
                else
                        limits->max[resources[k]] = values->value[k];
        }
}

/**
 * config_apply() - make a config the registry's limits
 * @config:     config
 * @registry:   registry
 *
 * The registry's defaults get what [Limits] sets; every other key keeps
 * the registry's default. Each UID section becomes an override: the new
 * defaults, with what the section sets on top. Users already looked up
 * keep their limits (user_registry_set_override()), so apply before the
 * first peer connects.
 *
 * Return: 0, -ENOMEM (the registry may then hold some of the overrides).
 */
int config_apply(const Config *config, UserRegistry *registry) {
        UserLimits defaults = registry->defaults;
        int r;

        config_values_apply(&defaults, &config->defaults);
        for (size_t i = 0; i < config->n_sections; ++i) {
                UserLimits limits = defaults;

                config_values_apply(&limits, &config->sections[i].values);
                r = user_registry_set_override(registry, config->sections[i].uid, &limits);
                if (r < 0)
                        return r;
        }
        registry->defaults = defaults;
        return 0;
}

static void config_format_limits(FILE *f, const UserLimits *limits) {
        fprintf(f, "%s=%llu\n%s=%llu\n%s=%llu\n%s=%llu\n%s=%llu\n",
                config_key_names[CONFIG_MAX_SLICES],
                (unsigned long long)limits->max[USER_SLICES],
                config_key_names[CONFIG_MAX_HANDLES],
                (unsigned long long)limits->max[USER_HANDLES],
                config_key_names[CONFIG_MAX_INFLIGHT_BYTES],
                (unsigned long long)limits->max[USER_BYTES],
                config_key_names[CONFIG_MAX_INFLIGHT_FDS],
                (unsigned long long)limits->max[USER_FDS],
                config_key_names[CONFIG_MAX_CONNECTIONS],
                (unsigned long long)limits->max_peers);
}

/**
 * config_format() - the effective limits of a registry as configuration text
 * @textp:      out: NUL-terminated text, to free()
 * @registry:   registry
 *
 * A [Limits] section with every key, then one [UID n] section with every
 * key for each override, in the registry's order. config_parse() reads it
 * back to the same limits.
 *
 * Return: 0, -ENOMEM.
 */
int config_format(char **textp, const UserRegistry *registry) {
        char *text = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;

        fprintf(f, "[Limits]\n");
        config_format_limits(f, &registry->defaults);
        for (size_t i = 0; i < registry->n_overrides; ++i) {
                fprintf(f, "\n[UID %u]\n", registry->overrides[i].uid);
                config_format_limits(f, &registry->overrides[i].limits);
        }

        if (ferror(f)) {
                fclose(f);
                free(text);
                return -ENOMEM;
        }
        if (fclose(f) != 0) {
                free(text);
                return -ENOMEM;
        }
        *textp = text;
        return 0;
}
