/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for Config: the parser (every key, suffixes, ranges and each key's
 * smallest useful value, overflow, syntax errors with their line and
 * column, unknown keys and sections as warnings with the nearest valid
 * name, duplicates), layering of several texts and of command-line
 * defaults, [User name] resolution, the loader and the per-user path, the
 * system path from meson's sysconfdir, and what config_apply() makes of it
 * in a UserRegistry (at the minimums: one message, handle and fd fit).
 *
 * Every test builds its own Config and registry on the stack and calls
 * assert_config_valid() after each parse: values set are in range, values
 * not set are zero, and no UID has two sections.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "broker/config.h"
#include "bus/user.h"
#include "util/macro.h"

/* longer than any name config_key_suggest() compares */
#define CONFIG_QUOTE_LEN_TEST 100

static void assert_values_valid(const ConfigValues *v) {
        for (ConfigKey k = 0; k < _CONFIG_KEY_N; ++k) {
                if (v->set[k]) {
                        assert_true(v->value[k] >= config_key_min(k));
                        assert_true(v->value[k] >= 1);
                        assert_true(v->value[k] <= CONFIG_VALUE_MAX);
                } else {
                        assert_int_equal(v->value[k], 0);
                }
        }
}

static void assert_config_valid(const Config *config) {
        assert_values_valid(&config->defaults);
        for (size_t i = 0; i < config->n_sections; ++i) {
                assert_values_valid(&config->sections[i].values);
                assert_true(config->sections[i].uid != UINT32_MAX);
                for (size_t j = 0; j < i; ++j)
                        assert_true(config->sections[i].uid != config->sections[j].uid);
        }
}

/* parse a NUL-terminated text, expecting success */
static void parse_ok(Config *config, const char *text) {
        ConfigError err = {};
        int r;

        r = config_parse(config, text, strlen(text), &err);
        if (r < 0)
                fail_msg("config_parse(\"%s\"): %d at %u:%u: %s", text, r, err.line, err.column,
                         err.message);
        assert_config_valid(config);
}

static const ConfigValues *section_of(const Config *config, uint32_t uid) {
        for (size_t i = 0; i < config->n_sections; ++i)
                if (config->sections[i].uid == uid)
                        return &config->sections[i].values;
        fail_msg("no section for UID %u", uid);
        return NULL;
}

static void test_key_names(void **state) {
        static const char *const names[] = {
                "MaxSlices", "MaxHandles", "MaxInflightBytes", "MaxInflightFds", "MaxConnections",
        };

        for (ConfigKey k = 0; k < _CONFIG_KEY_N; ++k) {
                assert_string_equal(config_key_name(k), names[k]);
                assert_int_equal(config_key_from_name(names[k], strlen(names[k])), k);
        }
        assert_null(config_key_name(_CONFIG_KEY_N));
        assert_null(config_key_name(_CONFIG_KEY_INVALID));
        assert_int_equal(config_key_from_name("maxslices", 9), _CONFIG_KEY_INVALID);
        assert_int_equal(config_key_from_name("MaxSlice", 8), _CONFIG_KEY_INVALID);
        /* a prefix of the name is not the name */
        assert_int_equal(config_key_from_name("MaxSlicesX", 9), CONFIG_MAX_SLICES);
        assert_int_equal(config_key_from_name("MaxSlicesX", 10), _CONFIG_KEY_INVALID);
        assert_int_equal(config_key_from_name("", 0), _CONFIG_KEY_INVALID);
}

static void test_empty_and_comments(void **state) {
        static const char *const texts[] = {
                "",
                "\n\n\n",
                "# only a comment",
                "; only a comment\n   # indented\n\t;tab\n",
                "\xef\xbb\xbf# with a byte order mark\n",
                "[Limits]\n",
                "[UID 5]\n# nothing set\n",
        };

        for (size_t i = 0; i < ARRAY_SIZE(texts); ++i) {
                UserRegistry registry;
                Config config;
                UserLimits before;

                config_init(&config);
                user_registry_init(&registry);
                before = registry.defaults;
                parse_ok(&config, texts[i]);
                for (ConfigKey k = 0; k < _CONFIG_KEY_N; ++k)
                        assert_false(config.defaults.set[k]);
                assert_int_equal(config_apply(&config, &registry), 0);
                assert_memory_equal(&registry.defaults, &before, sizeof(before));
                user_registry_deinit(&registry);
                config_deinit(&config);
        }
}

static void test_every_key(void **state) {
        UserRegistry registry;
        Config config;

        config_init(&config);
        parse_ok(&config,
                 "[Limits]\n"
                 "MaxSlices=100\n"
                 "MaxHandles=200\n"
                 "MaxInflightBytes=30000\n"
                 "MaxInflightFds=400\n"
                 "MaxConnections=500\n");
        assert_int_equal(config.n_sections, 0);
        assert_int_equal(config.n_warnings, 0);
        assert_int_equal(config.defaults.value[CONFIG_MAX_SLICES], 100);
        assert_int_equal(config.defaults.value[CONFIG_MAX_HANDLES], 200);
        assert_int_equal(config.defaults.value[CONFIG_MAX_INFLIGHT_BYTES], 30000);
        assert_int_equal(config.defaults.value[CONFIG_MAX_INFLIGHT_FDS], 400);
        assert_int_equal(config.defaults.value[CONFIG_MAX_CONNECTIONS], 500);

        user_registry_init(&registry);
        assert_int_equal(config_apply(&config, &registry), 0);
        assert_int_equal(registry.defaults.max[USER_SLICES], 100);
        assert_int_equal(registry.defaults.max[USER_HANDLES], 200);
        assert_int_equal(registry.defaults.max[USER_BYTES], 30000);
        assert_int_equal(registry.defaults.max[USER_FDS], 400);
        assert_int_equal(registry.defaults.max_peers, 500);
        assert_int_equal(registry.n_overrides, 0);
        user_registry_deinit(&registry);
        config_deinit(&config);
}

static void test_blanks_are_ignored(void **state) {
        Config config;

        config_init(&config);
        parse_ok(&config,
                 "  \t[ Limits ]  \r\n"
                 "\tMaxSlices \t=\t 7 \t\r\n"
                 "MaxHandles=8\r\n"
                 "[UID\t  42 ]\n"
                 "   MaxInflightFds   =9");
        assert_int_equal(config.defaults.value[CONFIG_MAX_SLICES], 7);
        assert_int_equal(config.defaults.value[CONFIG_MAX_HANDLES], 8);
        assert_int_equal(section_of(&config, 42)->value[CONFIG_MAX_INFLIGHT_FDS], 9);
        config_deinit(&config);
}

typedef struct ValueVector {
        ConfigKey key;
        const char *text;
        int r;
        uint64_t value;
} ValueVector;

static void test_values_and_suffixes(void **state) {
        static const ValueVector vectors[] = {
                { CONFIG_MAX_SLICES, "2", 0, 2 },
                { CONFIG_MAX_SLICES, "007", 0, 7 },
                { CONFIG_MAX_SLICES, "2147483647", 0, 2147483647 },
                { CONFIG_MAX_HANDLES, "2147483648", -ERANGE },
                { CONFIG_MAX_INFLIGHT_FDS, "4294967295", -ERANGE },
                { CONFIG_MAX_INFLIGHT_FDS, "4294967296", -ERANGE },
                { CONFIG_MAX_CONNECTIONS, "2147483647", 0, 2147483647 },
                { CONFIG_MAX_CONNECTIONS, "2147483648", -ERANGE },
                { CONFIG_MAX_SLICES, "0", -ERANGE },
                { CONFIG_MAX_SLICES, "000", -ERANGE },
                { CONFIG_MAX_SLICES, "1", -ERANGE },
                { CONFIG_MAX_HANDLES, "1", -ERANGE },
                { CONFIG_MAX_HANDLES, "2", 0, 2 },
                { CONFIG_MAX_INFLIGHT_FDS, "1", -ERANGE },
                { CONFIG_MAX_INFLIGHT_FDS, "2", 0, 2 },
                { CONFIG_MAX_CONNECTIONS, "0", -ERANGE },
                { CONFIG_MAX_CONNECTIONS, "1", 0, 1 },
                /* 64-bit wrap-around is out of range too, not a small number */
                { CONFIG_MAX_SLICES, "18446744073709551615", -ERANGE },
                { CONFIG_MAX_SLICES, "18446744073709551616", -ERANGE },
                { CONFIG_MAX_SLICES, "18446744073709551617", -ERANGE },
                { CONFIG_MAX_SLICES, "99999999999999999999999999999999", -ERANGE },
                { CONFIG_MAX_SLICES, "", -EINVAL },
                { CONFIG_MAX_SLICES, "-1", -EINVAL },
                { CONFIG_MAX_SLICES, "+1", -EINVAL },
                { CONFIG_MAX_SLICES, "0x10", -EINVAL },
                { CONFIG_MAX_SLICES, "1.5", -EINVAL },
                { CONFIG_MAX_SLICES, "1e3", -EINVAL },
                { CONFIG_MAX_SLICES, "1 000", -EINVAL },
                { CONFIG_MAX_SLICES, "ten", -EINVAL },
                /* suffixes belong to MaxInflightBytes only */
                { CONFIG_MAX_SLICES, "1K", -EINVAL },
                { CONFIG_MAX_HANDLES, "1M", -EINVAL },
                { CONFIG_MAX_INFLIGHT_FDS, "1G", -EINVAL },
                { CONFIG_MAX_CONNECTIONS, "1K", -EINVAL },
                { CONFIG_MAX_INFLIGHT_BYTES, "1", -ERANGE },
                { CONFIG_MAX_INFLIGHT_BYTES, "4095", -ERANGE },
                { CONFIG_MAX_INFLIGHT_BYTES, "4096", 0, 4096 },
                /* the minimum applies to the value, suffix included */
                { CONFIG_MAX_INFLIGHT_BYTES, "1K", -ERANGE },
                { CONFIG_MAX_INFLIGHT_BYTES, "3K", -ERANGE },
                { CONFIG_MAX_INFLIGHT_BYTES, "4K", 0, 4096 },
                { CONFIG_MAX_INFLIGHT_BYTES, "16M", 0, 16 * 1024 * 1024 },
                { CONFIG_MAX_INFLIGHT_BYTES, "1G", 0, 1024 * 1024 * 1024 },
                { CONFIG_MAX_INFLIGHT_BYTES, "2047M", 0, 2047ULL * 1024 * 1024 },
                { CONFIG_MAX_INFLIGHT_BYTES, "2097151K", 0, 2097151ULL * 1024 },
                { CONFIG_MAX_INFLIGHT_BYTES, "2097152K", -ERANGE },
                { CONFIG_MAX_INFLIGHT_BYTES, "2G", -ERANGE },
                { CONFIG_MAX_INFLIGHT_BYTES, "2147483647", 0, 2147483647 },
                { CONFIG_MAX_INFLIGHT_BYTES, "2147483648", -ERANGE },
                /* the multiplication overflows 64 bits */
                { CONFIG_MAX_INFLIGHT_BYTES, "17179869184G", -ERANGE },
                { CONFIG_MAX_INFLIGHT_BYTES, "18446744073709551615K", -ERANGE },
                { CONFIG_MAX_INFLIGHT_BYTES, "0K", -ERANGE },
                { CONFIG_MAX_INFLIGHT_BYTES, "K", -EINVAL },
                { CONFIG_MAX_INFLIGHT_BYTES, "1k", -EINVAL },
                { CONFIG_MAX_INFLIGHT_BYTES, "1KB", -EINVAL },
                { CONFIG_MAX_INFLIGHT_BYTES, "1KiB", -EINVAL },
                { CONFIG_MAX_INFLIGHT_BYTES, "1 K", -EINVAL },
                { CONFIG_MAX_INFLIGHT_BYTES, "1T", -EINVAL },
                { CONFIG_MAX_INFLIGHT_BYTES, "1MK", -EINVAL },
        };

        for (size_t i = 0; i < ARRAY_SIZE(vectors); ++i) {
                const ValueVector *v = &vectors[i];
                const char *reason = NULL;
                uint64_t value = 12345;
                int r;

                r = config_parse_value(&value, v->key, v->text, strlen(v->text), &reason);
                if (r != v->r)
                        fail_msg("%s=%s: %d, expected %d", config_key_name(v->key), v->text, r,
                                 v->r);
                if (r == 0) {
                        assert_int_equal(value, v->value);
                } else {
                        /* the output is written only on success */
                        assert_int_equal(value, 12345);
                        assert_non_null(reason);
                }
        }
}

/* the same vectors through the parser: values land, errors name the value */
static void test_values_in_text(void **state) {
        ConfigError err = {};
        Config config;
        char text[128];

        config_init(&config);
        parse_ok(&config, "[Limits]\nMaxInflightBytes=2047M\n");
        assert_int_equal(config.defaults.value[CONFIG_MAX_INFLIGHT_BYTES],
                         2047ULL * 1024 * 1024);

        snprintf(text, sizeof(text), "[Limits]\nMaxSlices=18446744073709551616\n");
        assert_int_equal(config_parse(&config, text, strlen(text), &err), -EINVAL);
        assert_int_equal(err.line, 2);
        assert_int_equal(err.column, 11);
        assert_non_null(strstr(err.message, "out of range"));
        assert_non_null(strstr(err.message, "MaxSlices"));
        assert_null(err.path);

        snprintf(text, sizeof(text), "[Limits]\nMaxInflightBytes = 2G\n");
        assert_int_equal(config_parse(&config, text, strlen(text), &err), -EINVAL);
        assert_int_equal(err.line, 2);
        assert_int_equal(err.column, 20);
        assert_non_null(strstr(err.message, "'2G'"));
        config_deinit(&config);
}

typedef struct SyntaxVector {
        const char *text;
        size_t len;             /* 0: strlen(text) */
        unsigned int line;
        unsigned int column;
        const char *message;
} SyntaxVector;

static void test_syntax_errors(void **state) {
        static const SyntaxVector vectors[] = {
                { "MaxSlices=5\n", 0, 1, 1, "outside a section" },
                { "# c\n\n  MaxSlices=5\n", 0, 3, 3, "outside a section" },
                { "[Limits]\nMaxSlices\n", 0, 2, 1, "expected 'Key=value'" },
                { "[Limits]\n\n  MaxSlices=abc\n", 0, 3, 13, "invalid value 'abc'" },
                { "[Limits]\nMaxSlices=\n", 0, 2, 11, "missing value for MaxSlices=" },
                { "[Limits]\nMaxSlices=   \n", 0, 2, 11, "missing value" },
                { "[Limits]\n=5\n", 0, 2, 1, "missing key" },
                /* an unknown key is only a warning, but not outside a section */
                { "Foo=1\n", 0, 1, 1, "Foo= outside a section" },
                /* a bad value is an error after an unknown key too */
                { "[Limits]\nFoo=1\nMaxSlices=x\n", 0, 3, 11, "invalid value 'x'" },
                /* in an unknown section, a malformed line is still an error */
                { "[Service]\nMaxSlices\n", 0, 2, 1, "expected 'Key=value'" },
                { "[Service]\n=5\n", 0, 2, 1, "missing key" },
                { "[Service]\n[Limits\n", 0, 2, 1, "missing ']'" },
                { "[Limits]\nMaxSlices=1 # no trailing comments\n", 0, 2, 11, "invalid value" },
                { "[Limits]\nMaxSlices=3\nMaxSlices=4\nMaxSlices=x\n", 0, 4, 11, "invalid" },
                { "[Limits\n", 0, 1, 1, "missing ']'" },
                { "  [Limits] x\n", 0, 1, 11, "unexpected text after ']'" },
                { "[Limits]]\n", 0, 1, 9, "unexpected text" },
                { "[Limits foo]\n", 0, 1, 9, "takes no argument" },
                { "[]\n", 0, 1, 2, "missing section name" },
                { "[ \t]\n", 0, 1, 4, "missing section name" },
                { "[UID]\n", 0, 1, 1, "missing UID" },
                { "[UID abc]\n", 0, 1, 6, "invalid UID 'abc'" },
                { "[UID -1]\n", 0, 1, 6, "invalid UID" },
                { "[UID 1 2]\n", 0, 1, 6, "invalid UID '1 2'" },
                { "[UID 4294967295]\n", 0, 1, 6, "invalid UID" },
                { "[UID 99999999999999999999]\n", 0, 1, 6, "invalid UID" },
                { "[User]\n", 0, 1, 1, "missing user name" },
                { "[User a b]\n", 0, 1, 7, "invalid user name" },
                /* no resolver in config_parse() alone */
                { "[User root]\n", 0, 1, 7, "cannot resolve user 'root'" },
                { "[Limits]\nMax\0Slices=1\n", 22, 2, 4, "NUL byte" },
        };

        for (size_t i = 0; i < ARRAY_SIZE(vectors); ++i) {
                const SyntaxVector *v = &vectors[i];
                size_t len = v->len ?: strlen(v->text);
                ConfigError err = { .path = "stale" };
                Config config;
                int r;

                config_init(&config);
                r = config_parse(&config, v->text, len, &err);
                if (r != -EINVAL || err.line != v->line || err.column != v->column ||
                    !strstr(err.message, v->message))
                        fail_msg("vector %zu: %d at %u:%u: '%s'; expected %u:%u: '%s'", i, r,
                                 err.line, err.column, err.message, v->line, v->column,
                                 v->message);
                assert_null(err.path);
                assert_config_valid(&config);
                config_deinit(&config);
        }
}

/* each key's smallest useful value: refused below it, with the minimum in the reason */
static void test_minimums(void **state) {
        static const uint64_t mins[_CONFIG_KEY_N] = {
                [CONFIG_MAX_SLICES] = 2,
                [CONFIG_MAX_HANDLES] = 2,
                [CONFIG_MAX_INFLIGHT_BYTES] = 4096,
                [CONFIG_MAX_INFLIGHT_FDS] = 2,
                [CONFIG_MAX_CONNECTIONS] = 1,
        };

        assert_int_equal(config_key_min(_CONFIG_KEY_N), 0);
        assert_int_equal(config_key_min(_CONFIG_KEY_INVALID), 0);
        for (ConfigKey k = 0; k < _CONFIG_KEY_N; ++k) {
                char text[32], below[64], range[64];
                const char *reason = NULL;
                uint64_t value = 0;

                assert_int_equal(config_key_min(k), mins[k]);
                snprintf(below, sizeof(below), "below the smallest useful value %llu (",
                         (unsigned long long)mins[k]);
                snprintf(range, sizeof(range), "out of range (%llu to 2147483647)",
                         (unsigned long long)mins[k]);

                snprintf(text, sizeof(text), "%llu", (unsigned long long)mins[k]);
                assert_int_equal(config_parse_value(&value, k, text, strlen(text), &reason), 0);
                assert_int_equal(value, mins[k]);

                snprintf(text, sizeof(text), "%llu", (unsigned long long)mins[k] - 1);
                assert_int_equal(config_parse_value(&value, k, text, strlen(text), &reason),
                                 -ERANGE);
                assert_non_null(strstr(reason, below));
                /* a static string that fits a message with the key and a quoted value */
                assert_true(strlen(reason) + 100 < sizeof(((ConfigError *)NULL)->message));

                assert_int_equal(config_parse_value(&value, k, "0", 1, &reason), -ERANGE);
                assert_non_null(strstr(reason, below));

                assert_int_equal(config_parse_value(&value, k, "2147483648", 10, &reason),
                                 -ERANGE);
                assert_string_equal(reason, range);
        }
}

typedef struct MinimumVector {
        const char *text;
        unsigned int line;
        unsigned int column;
        const char *message;
} MinimumVector;

/* through the parser: "Key=value is below the smallest useful value N (why)" */
static void test_minimums_in_text(void **state) {
        static const MinimumVector vectors[] = {
                { "[Limits]\nMaxInflightBytes=1\n", 2, 18,
                  "MaxInflightBytes=1 is below the smallest useful value 4096 (one page: " },
                { "[Limits]\nMaxInflightBytes = 3K\n", 2, 20,
                  "MaxInflightBytes=3K is below the smallest useful value 4096" },
                { "[UID 5]\nMaxSlices=1\n", 2, 11,
                  "MaxSlices=1 is below the smallest useful value 2 (one message: " },
                { "[Limits]\nMaxHandles=1\n", 2, 12,
                  "MaxHandles=1 is below the smallest useful value 2 (one handle: " },
                { "[Limits]\nMaxInflightFds=0\n", 2, 16,
                  "MaxInflightFds=0 is below the smallest useful value 2 (one fd: " },
                { "[Limits]\nMaxConnections=0\n", 2, 16,
                  "MaxConnections=0 is below the smallest useful value 1 (one connection)" },
        };

        for (size_t i = 0; i < ARRAY_SIZE(vectors); ++i) {
                const MinimumVector *v = &vectors[i];
                ConfigError err = {};
                Config config;
                int r;

                config_init(&config);
                r = config_parse(&config, v->text, strlen(v->text), &err);
                if (r != -EINVAL || err.line != v->line || err.column != v->column ||
                    !strstr(err.message, v->message))
                        fail_msg("vector %zu: %d at %u:%u: '%s'; expected %u:%u: '%s'", i, r,
                                 err.line, err.column, err.message, v->line, v->column,
                                 v->message);
                assert_config_valid(&config);
                config_deinit(&config);
        }
}

/*
 * Why these minimums: at them, a peer can be charged one message of half a
 * page with one handle and one fd, on its own behalf or another UID's;
 * one below, not even one slice, handle or fd fits (a peer holds at most
 * half of what its UID has left).
 */
static void test_minimums_are_useful(void **state) {
        static const uint64_t held[_USER_N] = {};
        UserRegistry registry;
        UserLimits limits;
        Config config;
        User *user;

        config_init(&config);
        user_registry_init(&registry);
        parse_ok(&config, "[Limits]\nMaxSlices=2\nMaxHandles=2\nMaxInflightBytes=4K\n"
                          "MaxInflightFds=2\nMaxConnections=1\n");
        assert_int_equal(config_apply(&config, &registry), 0);
        assert_int_equal(user_get(&user, &registry, 1000), 0);
        assert_int_equal(user->limits.max_peers, 1);
        for (uint32_t actor = 1000; actor <= 2000; actor += 1000) {
                assert_int_equal(user_check(user, actor, held,
                                            (uint64_t[_USER_N]){ [USER_SLICES] = 1,
                                                                 [USER_HANDLES] = 1,
                                                                 [USER_BYTES] = 2048,
                                                                 [USER_FDS] = 1 }),
                                 0);
                /* the largest message is half a page */
                assert_int_equal(user_check(user, actor, held,
                                            (uint64_t[_USER_N]){ [USER_SLICES] = 1,
                                                                 [USER_BYTES] = 2056 }),
                                 -EDQUOT);
        }
        user_unref(user);

        /* one below each minimum (set directly: the parser refuses it) */
        limits = registry.defaults;
        limits.max[USER_SLICES] = 1;
        limits.max[USER_HANDLES] = 1;
        limits.max[USER_FDS] = 1;
        assert_int_equal(user_registry_set_override(&registry, 3000, &limits), 0);
        assert_int_equal(user_get(&user, &registry, 3000), 0);
        for (unsigned int r = 0; r < _USER_N; ++r) {
                uint64_t charge[_USER_N] = {};

                if (r == USER_BYTES)
                        continue;
                charge[r] = 1;
                assert_int_equal(user_check(user, 3000, held, charge), -EDQUOT);
        }
        user_unref(user);

        user_registry_deinit(&registry);
        config_deinit(&config);
}

static void test_key_suggest(void **state) {
        char long_name[CONFIG_QUOTE_LEN_TEST + 1];

        for (ConfigKey k = 0; k < _CONFIG_KEY_N; ++k)
                assert_int_equal(config_key_suggest(config_key_name(k), strlen(config_key_name(k))),
                                 k);
        assert_int_equal(config_key_suggest("MaxInflightByte", 15), CONFIG_MAX_INFLIGHT_BYTES);
        assert_int_equal(config_key_suggest("MaxInflightBytess", 17), CONFIG_MAX_INFLIGHT_BYTES);
        assert_int_equal(config_key_suggest("maxslices", 9), CONFIG_MAX_SLICES);
        assert_int_equal(config_key_suggest("MAXHANDLES", 10), CONFIG_MAX_HANDLES);
        assert_int_equal(config_key_suggest("MaxSilces", 9), CONFIG_MAX_SLICES);
        assert_int_equal(config_key_suggest("MaxInflihgtFds", 14), CONFIG_MAX_INFLIGHT_FDS);
        assert_int_equal(config_key_suggest("MaxConection", 12), CONFIG_MAX_CONNECTIONS);
        assert_int_equal(config_key_suggest("Connections", 11), CONFIG_MAX_CONNECTIONS);
        assert_int_equal(config_key_suggest("Handles", 7), CONFIG_MAX_HANDLES);
        /* not a prefix: "MaxSlicesX" with its length */
        assert_int_equal(config_key_suggest("MaxSlicesX", 10), CONFIG_MAX_SLICES);
        /* too far from every key */
        assert_int_equal(config_key_suggest("Foo", 3), _CONFIG_KEY_INVALID);
        assert_int_equal(config_key_suggest("", 0), _CONFIG_KEY_INVALID);
        assert_int_equal(config_key_suggest("MaxBytes", 8), _CONFIG_KEY_INVALID);
        assert_int_equal(config_key_suggest("MaxPeers", 8), _CONFIG_KEY_INVALID);
        memset(long_name, 'x', sizeof(long_name));
        assert_int_equal(config_key_suggest(long_name, sizeof(long_name)), _CONFIG_KEY_INVALID);
}

typedef struct WarningVector {
        const char *text;
        unsigned int line;
        unsigned int column;
        const char *message;
        bool suggestion;        /* "did you mean" */
} WarningVector;

/* an unknown key or section is a warning naming the nearest valid one; nothing is set */
static void test_unknown_warnings(void **state) {
        static const WarningVector vectors[] = {
                { "[Limits]\nMaxInflightByte=1M\n", 2, 1,
                  "unknown key 'MaxInflightByte' ignored; did you mean MaxInflightBytes?", true },
                /* the value of an unknown key is not looked at */
                { "[Limits]\nmaxslices=1\n", 2, 1,
                  "unknown key 'maxslices' ignored; did you mean MaxSlices?", true },
                { "[UID 7]\n  MaxConection = 3\n", 2, 3,
                  "unknown key 'MaxConection' ignored; did you mean MaxConnections?", true },
                { "[Limits]\nMaxInflihgtFds=x\n", 2, 1, "did you mean MaxInflightFds?", true },
                { "[Limits]\nHandles=5\n", 2, 1, "did you mean MaxHandles?", true },
                { "[Limits]\r\nFoo=bar\r\n", 2, 1,
                  "unknown key 'Foo' ignored (keys: MaxSlices, MaxHandles, MaxInflightBytes, "
                  "MaxInflightFds, MaxConnections)", false },
                { "[Limits]\nMaxFds=\n", 2, 1, "unknown key 'MaxFds' ignored (keys: ", false },
                { "[Limits]\nMax Slices=5\n", 2, 1, "did you mean MaxSlices?", true },
                /* an unknown section: one warning, whatever its lines hold */
                { "[Limit]\nMaxSlices=abc\nFoo=1\n", 1, 2,
                  "unknown section '[Limit]' ignored with its keys; did you mean [Limits]?",
                  true },
                { "  [ limits ]\n", 1, 5, "unknown section '[limits]' ignored", true },
                { "[limits]\n", 1, 2, "did you mean [Limits]?", true },
                { "[uid 1000]\nMaxSlices=5\n", 1, 2,
                  "unknown section '[uid 1000]' ignored with its keys; did you mean [UID 1000]?",
                  true },
                { "[UID1000]\nMaxSlices=5\n", 1, 2, "did you mean [UID 1000]?", true },
                { "[Users alice]\n", 1, 2, "did you mean [User alice]?", true },
                { "[Usr]\n", 1, 2, "did you mean [User name]?", true },
                { "[UIDs]\n", 1, 2, "did you mean [UID n]?", true },
                { "# c\n[Service]\nFoo=1\nMaxSlices=0\n", 2, 2,
                  "unknown section '[Service]' ignored with its keys (sections: [Limits], "
                  "[UID n], [User name])", false },
        };

        for (size_t i = 0; i < ARRAY_SIZE(vectors); ++i) {
                const WarningVector *v = &vectors[i];
                ConfigError err = {};
                Config config;
                int r;

                config_init(&config);
                r = config_parse(&config, v->text, strlen(v->text), &err);
                if (r < 0)
                        fail_msg("vector %zu: %d at %u:%u: %s", i, r, err.line, err.column,
                                 err.message);
                if (config.n_warnings != 1 || config.warnings[0].line != v->line ||
                    config.warnings[0].column != v->column ||
                    !strstr(config.warnings[0].message, v->message))
                        fail_msg("vector %zu: %zu warnings, the first at %u:%u: '%s'; "
                                 "expected %u:%u: '%s'", i, config.n_warnings,
                                 config.n_warnings ? config.warnings[0].line : 0,
                                 config.n_warnings ? config.warnings[0].column : 0,
                                 config.n_warnings ? config.warnings[0].message : "",
                                 v->line, v->column, v->message);
                assert_null(config.warnings[0].path);
                assert_int_equal(config.n_warnings_dropped, 0);
                if (!!strstr(config.warnings[0].message, "did you mean") != v->suggestion)
                        fail_msg("vector %zu: '%s' %s a suggestion", i,
                                 config.warnings[0].message, v->suggestion ? "lacks" : "has");
                /* what was ignored set nothing (only [UID 7] is a section) */
                assert_int_equal(config.n_sections, !strncmp(v->text, "[UID 7]", 7));
                for (ConfigKey k = 0; k < _CONFIG_KEY_N; ++k) {
                        assert_false(config.defaults.set[k]);
                        for (size_t j = 0; j < config.n_sections; ++j)
                                assert_false(config.sections[j].values.set[k]);
                }
                assert_config_valid(&config);
                config_deinit(&config);
                assert_null(config.warnings);
                assert_int_equal(config.n_warnings, 0);
        }
}

/* the rest of a file still counts; warnings stay when a later line fails */
static void test_unknown_keep_going(void **state) {
        ConfigError err = {};
        Config config;
        char text[1024];
        size_t n = 0;

        config_init(&config);
        parse_ok(&config,
                 "[Limits]\n"
                 "MaxSlice=5\n"
                 "MaxHandles=77\n"
                 "[Limit]\n"
                 "MaxHandles=1\n"
                 "[UID 5]\n"
                 "MaxSlices=9\n"
                 "MaxInflightByte=1\n"
                 "[Limits]\n"
                 "MaxInflightFds=8\n");
        assert_int_equal(config.n_warnings, 3);
        assert_int_equal(config.warnings[0].line, 2);
        assert_int_equal(config.warnings[1].line, 4);
        assert_int_equal(config.warnings[2].line, 8);
        assert_false(config.defaults.set[CONFIG_MAX_SLICES]);
        /* the known key in the unknown section did not count */
        assert_int_equal(config.defaults.value[CONFIG_MAX_HANDLES], 77);
        assert_int_equal(config.defaults.value[CONFIG_MAX_INFLIGHT_FDS], 8);
        assert_int_equal(section_of(&config, 5)->value[CONFIG_MAX_SLICES], 9);
        assert_false(section_of(&config, 5)->set[CONFIG_MAX_INFLIGHT_BYTES]);

        /* a second text adds its warnings after the first's */
        parse_ok(&config, "[Limits]\nFoo=1\n");
        assert_int_equal(config.n_warnings, 4);
        assert_int_equal(config.warnings[3].line, 2);
        config_deinit(&config);

        config_init(&config);
        snprintf(text, sizeof(text), "[Limits]\nFoo=1\nMaxSlices=x\n");
        assert_int_equal(config_parse(&config, text, strlen(text), &err), -EINVAL);
        assert_int_equal(err.line, 3);
        assert_int_equal(config.n_warnings, 1);
        assert_int_equal(config.warnings[0].line, 2);
        config_deinit(&config);

        /* at most CONFIG_WARNINGS_MAX are kept, the rest counted */
        config_init(&config);
        n = (size_t)snprintf(text, sizeof(text), "[Limits]\n");
        for (unsigned int i = 0; i < CONFIG_WARNINGS_MAX + 8; ++i)
                n += (size_t)snprintf(text + n, sizeof(text) - n, "Foo%u=1\n", i);
        assert_true(n < sizeof(text));
        parse_ok(&config, text);
        assert_int_equal(config.n_warnings, CONFIG_WARNINGS_MAX);
        assert_int_equal(config.n_warnings_dropped, 8);
        assert_int_equal(config.warnings[CONFIG_WARNINGS_MAX - 1].line, CONFIG_WARNINGS_MAX + 1);
        config_deinit(&config);
        assert_int_equal(config.n_warnings_dropped, 0);
}

/* the system file is where meson installs it: <prefix>/<sysconfdir>/bus1 */
static void test_system_path(void **state) {
        assert_true(SYSCONFDIR[0] == '/');
        assert_string_equal(CONFIG_SYSTEM_PATH, SYSCONFDIR "/bus1/bus1d.conf");
}

static void test_uid_range(void **state) {
        Config config;

        config_init(&config);
        parse_ok(&config, "[UID 0]\nMaxSlices=2\n[UID 4294967294]\nMaxSlices=3\n");
        assert_int_equal(config.n_sections, 2);
        assert_int_equal(section_of(&config, 0)->value[CONFIG_MAX_SLICES], 2);
        assert_int_equal(section_of(&config, 4294967294U)->value[CONFIG_MAX_SLICES], 3);
        config_deinit(&config);
}

static void test_duplicates_last_wins(void **state) {
        Config config;

        config_init(&config);
        parse_ok(&config,
                 "[Limits]\n"
                 "MaxSlices=21\n"
                 "MaxSlices=22\n"
                 "[UID 1000]\n"
                 "MaxHandles=10\n"
                 "MaxSlices=11\n"
                 "[Limits]\n"
                 "MaxSlices=23\n"
                 "[UID 1000]\n"
                 "MaxHandles=12\n");
        assert_int_equal(config.defaults.value[CONFIG_MAX_SLICES], 23);
        assert_int_equal(config.n_sections, 1);
        assert_int_equal(section_of(&config, 1000)->value[CONFIG_MAX_HANDLES], 12);
        assert_int_equal(section_of(&config, 1000)->value[CONFIG_MAX_SLICES], 11);
        config_deinit(&config);
}

/* several files into one Config: key by key, later wins */
static void test_layering(void **state) {
        UserRegistry registry;
        Config config;
        User *user;

        config_init(&config);
        parse_ok(&config,
                 "[Limits]\nMaxSlices=100\nMaxHandles=200\n"
                 "[UID 1000]\nMaxInflightFds=30\nMaxConnections=40\n");
        parse_ok(&config,
                 "[Limits]\nMaxHandles=201\n"
                 "[UID 1000]\nMaxConnections=41\n"
                 "[UID 2000]\nMaxSlices=50\n");
        /* what the command line does, after the files */
        config_set_default(&config, CONFIG_MAX_SLICES, 101);
        config_set_default(&config, CONFIG_MAX_INFLIGHT_BYTES, 4096);
        assert_config_valid(&config);

        assert_int_equal(config.defaults.value[CONFIG_MAX_SLICES], 101);
        assert_int_equal(config.defaults.value[CONFIG_MAX_HANDLES], 201);
        assert_int_equal(section_of(&config, 1000)->value[CONFIG_MAX_INFLIGHT_FDS], 30);
        assert_int_equal(section_of(&config, 1000)->value[CONFIG_MAX_CONNECTIONS], 41);

        user_registry_init(&registry);
        assert_int_equal(config_apply(&config, &registry), 0);

        /* UID 2000 sets MaxSlices itself: the command-line default does not touch it */
        assert_int_equal(user_get(&user, &registry, 2000), 0);
        assert_int_equal(user->limits.max[USER_SLICES], 50);
        assert_int_equal(user->limits.max[USER_HANDLES], 201);
        assert_int_equal(user->limits.max[USER_BYTES], 4096);
        user_unref(user);

        assert_int_equal(user_get(&user, &registry, 1000), 0);
        assert_int_equal(user->limits.max[USER_SLICES], 101);
        assert_int_equal(user->limits.max[USER_HANDLES], 201);
        assert_int_equal(user->limits.max[USER_BYTES], 4096);
        assert_int_equal(user->limits.max[USER_FDS], 30);
        assert_int_equal(user->limits.max_peers, 41);
        user_unref(user);

        user_registry_deinit(&registry);
        config_deinit(&config);
}

static void test_overrides_applied(void **state) {
        UserRegistry registry;
        Config config;
        User *user, *early;

        user_registry_init(&registry);
        /* looked up before the configuration is applied: keeps its limits */
        assert_int_equal(user_get(&early, &registry, 1000), 0);

        config_init(&config);
        parse_ok(&config,
                 "[UID 1000]\n"
                 "MaxSlices=7\n"
                 "MaxHandles=8\n"
                 "MaxInflightBytes=9K\n"
                 "MaxInflightFds=10\n"
                 "MaxConnections=11\n"
                 "[UID 0]\n"
                 "MaxConnections=2\n");
        assert_int_equal(config_apply(&config, &registry), 0);
        assert_int_equal(registry.n_overrides, 2);

        assert_int_equal(early->limits.max[USER_SLICES], 16384);
        early = user_unref(early);

        assert_int_equal(user_get(&user, &registry, 1000), 0);
        assert_int_equal(user->limits.max[USER_SLICES], 7);
        assert_int_equal(user->limits.max[USER_HANDLES], 8);
        assert_int_equal(user->limits.max[USER_BYTES], 9 * 1024);
        assert_int_equal(user->limits.max[USER_FDS], 10);
        assert_int_equal(user->limits.max_peers, 11);
        user_unref(user);

        /* an override that sets one key takes the others from the defaults */
        assert_int_equal(user_get(&user, &registry, 0), 0);
        assert_int_equal(user->limits.max[USER_SLICES], 16384);
        assert_int_equal(user->limits.max[USER_HANDLES], 65536);
        assert_int_equal(user->limits.max[USER_BYTES], 16 * 1024 * 1024);
        assert_int_equal(user->limits.max[USER_FDS], 4096);
        assert_int_equal(user->limits.max_peers, 2);
        user_unref(user);

        /* any other UID gets the defaults */
        assert_int_equal(user_get(&user, &registry, 1001), 0);
        assert_memory_equal(&user->limits, &registry.defaults, sizeof(UserLimits));
        assert_int_equal(user->limits.max[USER_SLICES], 16384);
        user_unref(user);

        /* applying again replaces the override rather than adding one */
        config_deinit(&config);
        parse_ok(&config, "[UID 1000]\nMaxSlices=70\n");
        assert_int_equal(config_apply(&config, &registry), 0);
        assert_int_equal(registry.n_overrides, 2);
        assert_int_equal(user_get(&user, &registry, 1000), 0);
        assert_int_equal(user->limits.max[USER_SLICES], 70);
        assert_int_equal(user->limits.max[USER_HANDLES], 65536);
        user_unref(user);

        user_registry_deinit(&registry);
        config_deinit(&config);
}

static int resolve_fake(uint32_t *uidp, const char *name, void *userdata) {
        unsigned int *n_calls = userdata;

        ++*n_calls;
        if (!strcmp(name, "alice")) {
                *uidp = 1000;
                return 0;
        }
        if (!strcmp(name, "broken"))
                return -EIO;
        return -ESRCH;
}

static void test_user_sections(void **state) {
        unsigned int n_calls = 0;
        ConfigError err = {};
        Config config;
        const char *text;

        config_init(&config);
        config.resolve_user = resolve_fake;
        config.userdata = &n_calls;

        /* [User alice] and [UID 1000] are one section */
        parse_ok(&config, "[User alice]\nMaxSlices=5\n[UID 1000]\nMaxHandles=6\n"
                          "[User alice]\nMaxSlices=7\n");
        assert_int_equal(n_calls, 2);
        assert_int_equal(config.n_sections, 1);
        assert_int_equal(section_of(&config, 1000)->value[CONFIG_MAX_SLICES], 7);
        assert_int_equal(section_of(&config, 1000)->value[CONFIG_MAX_HANDLES], 6);

        text = "[Limits]\n[User bob]\n";
        assert_int_equal(config_parse(&config, text, strlen(text), &err), -EINVAL);
        assert_int_equal(err.line, 2);
        assert_int_equal(err.column, 7);
        assert_non_null(strstr(err.message, "unknown user 'bob'"));

        /* a failing user database is its own error, with its errno */
        text = "[User broken]\n";
        assert_int_equal(config_parse(&config, text, strlen(text), &err), -EIO);
        assert_int_equal(err.line, 1);
        assert_non_null(strstr(err.message, "broken"));
        config_deinit(&config);
}

/* apply, print, parse the print, apply again: the same limits */
static void test_format_round_trip(void **state) {
        UserRegistry a, b;
        Config config;
        char *text = NULL;

        config_init(&config);
        parse_ok(&config, "[Limits]\nMaxInflightBytes=1M\nMaxConnections=9\n"
                          "[UID 7]\nMaxSlices=70\n[UID 3]\nMaxInflightFds=30\n");
        user_registry_init(&a);
        assert_int_equal(config_apply(&config, &a), 0);
        assert_int_equal(config_format(&text, &a), 0);
        assert_non_null(strstr(text, "[Limits]\nMaxSlices=16384\nMaxHandles=65536\n"
                                     "MaxInflightBytes=1048576\nMaxInflightFds=4096\n"
                                     "MaxConnections=9\n"));
        assert_non_null(strstr(text, "\n[UID 7]\nMaxSlices=70\n"));
        assert_non_null(strstr(text, "\n[UID 3]\nMaxSlices=16384\n"));
        /* sections in the order they first appeared */
        assert_true(strstr(text, "[UID 7]") < strstr(text, "[UID 3]"));
        config_deinit(&config);

        parse_ok(&config, text);
        user_registry_init(&b);
        assert_int_equal(config_apply(&config, &b), 0);
        assert_memory_equal(&a.defaults, &b.defaults, sizeof(UserLimits));
        assert_int_equal(a.n_overrides, b.n_overrides);
        for (size_t i = 0; i < a.n_overrides; ++i) {
                assert_int_equal(a.overrides[i].uid, b.overrides[i].uid);
                assert_memory_equal(&a.overrides[i].limits, &b.overrides[i].limits,
                                    sizeof(UserLimits));
        }

        free(text);
        user_registry_deinit(&a);
        user_registry_deinit(&b);
        config_deinit(&config);
}

static void write_file(const char *path, const char *text, size_t len) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, len), (ssize_t)len);
        close(fd);
}

static void write_text(const char *path, const char *text) {
        write_file(path, text, strlen(text));
}

static void test_load_file(void **state) {
        char dir[] = "/tmp/bus1-test-config-XXXXXX", path[PATH_MAX], big_path[PATH_MAX];
        ConfigError err = {};
        Config config;
        char *big;

        assert_non_null(mkdtemp(dir));
        config_init(&config);

        /* no file: nothing set, no error */
        snprintf(path, sizeof(path), "%s/missing.conf", dir);
        assert_int_equal(config_load_file(&config, path, &err), 0);
        snprintf(path, sizeof(path), "%s/no/such/dir/bus1d.conf", dir);
        assert_int_equal(config_load_file(&config, path, &err), 0);
        assert_config_valid(&config);

        /* a good file, with a user name resolved through the user database */
        snprintf(path, sizeof(path), "%s/good.conf", dir);
        write_text(path, "[Limits]\nMaxSlices=9\n[User root]\nMaxConnections=3\n");
        assert_int_equal(config_load_file(&config, path, &err), 1);
        assert_config_valid(&config);
        assert_int_equal(config.defaults.value[CONFIG_MAX_SLICES], 9);
        assert_int_equal(section_of(&config, 0)->value[CONFIG_MAX_CONNECTIONS], 3);
        assert_null(config.resolve_user);

        /* an unknown key is read past, with a warning naming the file and line */
        snprintf(path, sizeof(path), "%s/unknown.conf", dir);
        write_text(path, "[Limits]\n\nMaxSlice=9\nMaxHandles=99\n");
        assert_int_equal(config.n_warnings, 0);
        assert_int_equal(config_load_file(&config, path, &err), 1);
        assert_config_valid(&config);
        assert_int_equal(config.defaults.value[CONFIG_MAX_SLICES], 9);
        assert_int_equal(config.defaults.value[CONFIG_MAX_HANDLES], 99);
        assert_int_equal(config.n_warnings, 1);
        assert_string_equal(config.warnings[0].path, path);
        assert_int_equal(config.warnings[0].line, 3);
        assert_int_equal(config.warnings[0].column, 1);
        assert_non_null(strstr(config.warnings[0].message,
                               "unknown key 'MaxSlice' ignored; did you mean MaxSlices?"));
        unlink(path);

        /* a bad one names itself and the line */
        snprintf(path, sizeof(path), "%s/bad.conf", dir);
        write_text(path, "[Limits]\n\nMaxSlices=1\n");
        assert_int_equal(config_load_file(&config, path, &err), -EINVAL);
        assert_string_equal(err.path, path);
        assert_int_equal(err.line, 3);
        assert_int_equal(err.column, 11);
        assert_non_null(strstr(err.message, "MaxSlices=1 is below the smallest useful value 2"));

        snprintf(path, sizeof(path), "%s/nobody-here.conf", dir);
        write_text(path, "[User no-such-user-bus1-test]\n");
        assert_int_equal(config_load_file(&config, path, &err), -EINVAL);
        assert_int_equal(err.line, 1);
        assert_non_null(strstr(err.message, "unknown user"));

        /* a directory, and a file over the size limit */
        assert_int_equal(config_load_file(&config, dir, &err), -EISDIR);
        assert_string_equal(err.path, dir);
        assert_int_equal(err.line, 0);

        snprintf(big_path, sizeof(big_path), "%s/big.conf", dir);
        big = malloc(CONFIG_FILE_MAX + 1);
        assert_non_null(big);
        memset(big, '\n', CONFIG_FILE_MAX + 1);
        write_file(big_path, big, CONFIG_FILE_MAX);
        assert_int_equal(config_load_file(&config, big_path, &err), 1);
        write_file(big_path, big, CONFIG_FILE_MAX + 1);
        assert_int_equal(config_load_file(&config, big_path, &err), -EFBIG);
        assert_int_equal(err.line, 0);
        free(big);

        unlink(big_path);
        snprintf(path, sizeof(path), "%s/good.conf", dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/bad.conf", dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/nobody-here.conf", dir);
        unlink(path);
        assert_int_equal(rmdir(dir), 0);
        config_deinit(&config);
}

/* sets or unsets an environment variable, NULL meaning unset */
static void set_env(const char *name, const char *value) {
        if (value)
                setenv(name, value, 1);
        else
                unsetenv(name);
}

static void test_user_path(void **state) {
        char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        char buf[PATH_MAX], small[16];

        xdg = xdg ? strdup(xdg) : NULL;
        home = home ? strdup(home) : NULL;

        setenv("XDG_CONFIG_HOME", "/xdg", 1);
        setenv("HOME", "/home/u", 1);
        assert_int_equal(config_user_path(buf, sizeof(buf)), 0);
        assert_string_equal(buf, "/xdg/bus1/bus1d.conf");
        assert_int_equal(config_user_path(small, sizeof(small)), -ENAMETOOLONG);

        /* the XDG base directory spec: a relative path is ignored */
        setenv("XDG_CONFIG_HOME", "relative", 1);
        assert_int_equal(config_user_path(buf, sizeof(buf)), 0);
        assert_string_equal(buf, "/home/u/.config/bus1/bus1d.conf");

        unsetenv("XDG_CONFIG_HOME");
        assert_int_equal(config_user_path(buf, sizeof(buf)), 0);
        assert_string_equal(buf, "/home/u/.config/bus1/bus1d.conf");

        /* without $HOME, the user database's home directory */
        unsetenv("HOME");
        assert_int_equal(config_user_path(buf, sizeof(buf)), 0);
        assert_true(buf[0] == '/');
        assert_non_null(strstr(buf, "/.config/bus1/bus1d.conf"));

        set_env("XDG_CONFIG_HOME", xdg);
        set_env("HOME", home);
        free(xdg);
        free(home);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_key_names),
                cmocka_unit_test(test_empty_and_comments),
                cmocka_unit_test(test_every_key),
                cmocka_unit_test(test_blanks_are_ignored),
                cmocka_unit_test(test_values_and_suffixes),
                cmocka_unit_test(test_values_in_text),
                cmocka_unit_test(test_syntax_errors),
                cmocka_unit_test(test_minimums),
                cmocka_unit_test(test_minimums_in_text),
                cmocka_unit_test(test_minimums_are_useful),
                cmocka_unit_test(test_key_suggest),
                cmocka_unit_test(test_unknown_warnings),
                cmocka_unit_test(test_unknown_keep_going),
                cmocka_unit_test(test_uid_range),
                cmocka_unit_test(test_duplicates_last_wins),
                cmocka_unit_test(test_layering),
                cmocka_unit_test(test_overrides_applied),
                cmocka_unit_test(test_user_sections),
                cmocka_unit_test(test_format_round_trip),
                cmocka_unit_test(test_load_file),
                cmocka_unit_test(test_user_path),
                cmocka_unit_test(test_system_path),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
