/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for util/json: the writer's output parses back to what went in,
 * whatever bytes a string holds (invalid UTF-8 becomes U+FFFD, control
 * characters are escaped), and the parser accepts exactly RFC 8259: every
 * document below either parses or is refused with the errno given.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "util/json.h"
#include "util/macro.h"

static JsonValue *parse_ok(const char *text) {
        JsonValue *v = NULL;

        assert_int_equal(json_parse(&v, text, strlen(text)), 0);
        assert_non_null(v);
        return v;
}

static void test_writer_roundtrip(void **state) {
        static const char weird[] = "a\"b\\c\n\x01\x7f\xff\xc3\xa9\xe2\x82";
        const JsonValue *a;
        JsonValue *v;
        JsonWriter w;
        char *text;
        size_t len;

        for (int pretty = 0; pretty < 2; ++pretty) {
                json_writer_init(&w, 1 << 20, pretty ? "  " : NULL);
                json_begin_object(&w);
                json_pair_u64(&w, "big", UINT64_MAX);
                json_key(&w, "neg");
                json_i64(&w, INT64_MIN);
                json_pair_bool(&w, "yes", true);
                json_key(&w, "none");
                json_null(&w);
                json_key(&w, "weird");
                json_string_n(&w, weird, sizeof(weird) - 1);
                json_key(&w, "list");
                json_begin_array(&w);
                json_u64(&w, 1);
                json_begin_object(&w);
                json_end_object(&w);
                json_begin_array(&w);
                json_end_array(&w);
                json_end_array(&w);
                json_end_object(&w);
                assert_int_equal(json_writer_finish(&w, &text, &len), 0);
                assert_int_equal(strlen(text), len);

                v = parse_ok(text);
                assert_int_equal(json_get_u64(v, "big", 0), UINT64_MAX);
                assert_true(json_get(v, "neg")->is_i64);
                assert_true(json_get(v, "neg")->i64 == INT64_MIN);
                assert_true(json_get_bool(v, "yes", false));
                assert_int_equal(json_get(v, "none")->type, JSON_NULL);
                /* the invalid bytes (0xff, a cut 3-byte sequence) became U+FFFD */
                assert_string_equal(json_get_string(v, "weird", NULL),
                                    "a\"b\\c\n\x01\x7f\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd"
                                    "\xef\xbf\xbd");
                a = json_get_array(v, "list");
                assert_non_null(a);
                assert_int_equal(a->n_children, 3);
                assert_int_equal(a->children[1].type, JSON_OBJECT);
                assert_int_equal(a->children[2].type, JSON_ARRAY);
                json_free(v);
                free(text);
        }
}

static void test_writer_limits(void **state) {
        JsonWriter w;
        char *text;
        size_t len;

        json_writer_init(&w, 10, NULL);
        json_string(&w, "this is longer than ten bytes");
        assert_int_equal(json_writer_finish(&w, &text, &len), -EMSGSIZE);

        json_writer_init(&w, 1 << 20, NULL);
        for (int i = 0; i <= JSON_DEPTH_MAX; ++i)
                json_begin_array(&w);
        assert_int_equal(json_writer_finish(&w, &text, &len), -EMSGSIZE);

        json_writer_init(&w, 1 << 20, NULL);
        json_end_array(&w);
        assert_int_equal(json_writer_finish(&w, &text, &len), -EINVAL);
}

static void test_parser(void **state) {
        static const char *const good[] = {
                "0", "-0", "1.5e3", "-12.25E-2", "\"\"", "true", "false", "null", "[]", "{}",
                " [ 1 , \"x\" , { \"a\" : [ ] } ] ", "\"\\u00e9\\ud83d\\ude00\\/\"",
                "{\"a\":1,\"a\":2}", "18446744073709551616",
        };
        static const char *const bad[] = {
                "", " ", "01", "1.", ".5", "+1", "1e", "[1,]", "{\"a\":1,}", "{a:1}", "'x'",
                "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"a\nb\"", "\"\xff\"", "tru",
                "nul", "[1 2]", "{\"a\" 1}", "1 2", "[", "\"abc", "\"\\u12\"", "[]]",
                "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
        };
        JsonValue *v;
        char deep[2 * JSON_DEPTH_MAX + 3];

        for (size_t i = 0; i < ARRAY_SIZE(good); ++i) {
                v = NULL;
                assert_int_equal(json_parse(&v, good[i], strlen(good[i])), 0);
                json_free(v);
        }
        for (size_t i = 0; i < ARRAY_SIZE(bad); ++i) {
                v = NULL;
                assert_int_equal(json_parse(&v, bad[i], strlen(bad[i])), -EINVAL);
                assert_null(v);
        }

        v = parse_ok("\"\\u00e9\\ud83d\\ude00\"");
        assert_string_equal(v->string, "\xc3\xa9\xf0\x9f\x98\x80");
        json_free(v);
        v = parse_ok("{\"a\":1,\"a\":2}");
        assert_int_equal(json_get_u64(v, "a", 0), 1);
        json_free(v);
        v = parse_ok("18446744073709551616");
        assert_false(v->is_u64);
        assert_false(v->is_i64);
        json_free(v);
        v = parse_ok("-5");
        assert_false(v->is_u64);
        assert_int_equal(v->i64, -5);
        assert_int_equal(json_get_u64(v, "x", 7), 7);
        json_free(v);

        /* nesting: JSON_DEPTH_MAX containers are fine, one more is not */
        memset(deep, '[', JSON_DEPTH_MAX);
        memset(deep + JSON_DEPTH_MAX, ']', JSON_DEPTH_MAX);
        assert_int_equal(json_parse(&v, deep, 2 * JSON_DEPTH_MAX), 0);
        json_free(v);
        memset(deep, '[', JSON_DEPTH_MAX + 1);
        memset(deep + JSON_DEPTH_MAX + 1, ']', JSON_DEPTH_MAX + 1);
        v = NULL;
        assert_int_equal(json_parse(&v, deep, 2 * JSON_DEPTH_MAX + 2), -E2BIG);
        assert_null(v);

        /* the length is what counts, not a NUL */
        assert_int_equal(json_parse(&v, "[1]xyz", 3), 0);
        json_free(v);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_writer_roundtrip),
                cmocka_unit_test(test_writer_limits),
                cmocka_unit_test(test_parser),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
