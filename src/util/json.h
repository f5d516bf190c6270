/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Json: a small writer and a strict parser for RFC 8259 JSON
 *
 * The broker writes its control replies with JsonWriter; bus1ctl and the
 * tests read them (and check bus1ctl's own output) with json_parse(). Both
 * sides are bounded: the writer refuses to grow past the size it was given
 * and the parser past JSON_DEPTH_MAX nested containers, so neither a large
 * bus nor a hostile document can make them use unbounded stack or memory.
 *
 * Writer: values are appended in document order; commas and the colon after
 * a key are the writer's business. Strings are escaped, and bytes that are
 * not valid UTF-8 (a command line may hold any) become U+FFFD, so whatever
 * goes in, the output is valid JSON. Running out of memory or room is
 * sticky: the writer records it and every later call does nothing, so
 * callers check once, at json_writer_finish().
 *
 * Parser: a document is one value; duplicate keys are kept (json_get()
 * returns the first); numbers keep their text and, when they are integers
 * that fit, a u64 or i64 value.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_DEPTH_MAX 64

typedef struct JsonWriter {
        char *buf;
        size_t len;
        size_t cap;
        size_t max;             /* the output may not grow past this */
        int error;              /* 0, -ENOMEM or -EMSGSIZE: sticky */
        unsigned int depth;
        bool first[JSON_DEPTH_MAX + 1]; /* nothing written in this container yet */
        bool after_key;
        const char *indent;     /* NULL: compact */
} JsonWriter;

void json_writer_init(JsonWriter *w, size_t max, const char *indent);
void json_writer_deinit(JsonWriter *w);
int json_writer_finish(JsonWriter *w, char **textp, size_t *lenp);

void json_begin_object(JsonWriter *w);
void json_end_object(JsonWriter *w);
void json_begin_array(JsonWriter *w);
void json_end_array(JsonWriter *w);
void json_key(JsonWriter *w, const char *key);
void json_string(JsonWriter *w, const char *s);
void json_string_n(JsonWriter *w, const char *s, size_t n);
void json_u64(JsonWriter *w, uint64_t v);
void json_i64(JsonWriter *w, int64_t v);
void json_bool(JsonWriter *w, bool v);
void json_null(JsonWriter *w);

/* the common "key": value pairs */
static inline void json_pair_u64(JsonWriter *w, const char *key, uint64_t v) {
        json_key(w, key);
        json_u64(w, v);
}

static inline void json_pair_string(JsonWriter *w, const char *key, const char *s) {
        json_key(w, key);
        json_string(w, s);
}

static inline void json_pair_bool(JsonWriter *w, const char *key, bool v) {
        json_key(w, key);
        json_bool(w, v);
}

typedef enum JsonType {
        JSON_NULL,
        JSON_BOOL,
        JSON_NUMBER,
        JSON_STRING,
        JSON_ARRAY,
        JSON_OBJECT,
} JsonType;

typedef struct JsonValue JsonValue;

struct JsonValue {
        JsonType type;
        char *key;              /* member of an object: its key, else NULL */
        bool boolean;
        char *string;           /* STRING: the decoded text; NUMBER: its source text */
        size_t n_string;        /* bytes in string (a decoded string may hold NUL) */
        bool is_u64;            /* NUMBER: a non-negative integer that fits */
        bool is_i64;            /* NUMBER: an integer that fits an int64_t */
        uint64_t u64;
        int64_t i64;
        JsonValue *children;    /* ARRAY elements, OBJECT members */
        size_t n_children;
};

int json_parse(JsonValue **valuep, const char *text, size_t len);
JsonValue *json_free(JsonValue *value);

const JsonValue *json_get(const JsonValue *object, const char *key);
uint64_t json_get_u64(const JsonValue *object, const char *key, uint64_t fallback);
const char *json_get_string(const JsonValue *object, const char *key, const char *fallback);
bool json_get_bool(const JsonValue *object, const char *key, bool fallback);
const JsonValue *json_get_array(const JsonValue *object, const char *key);
