/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Json: a small writer and a strict parser for RFC 8259 JSON
 *
 * See json.h. Invariants of the writer: buf holds len bytes of output and a
 * NUL after them (when allocated); first[d] is true while the container at
 * depth d has no element; after_key is true between a key and its value.
 * The parser is recursive descent, at most JSON_DEPTH_MAX containers deep,
 * and reads nothing beyond @len.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util/json.h"

/**
 * json_writer_init() - start an empty document
 * @w:          writer
 * @max:        the output may not grow past this many bytes (-EMSGSIZE)
 * @indent:     indentation per level for pretty output, or NULL for compact
 */
void json_writer_init(JsonWriter *w, size_t max, const char *indent) {
        *w = (JsonWriter){ .max = max, .indent = indent };
        w->first[0] = true;
}

/**
 * json_writer_deinit() - free what the writer holds
 * @w:          writer
 */
void json_writer_deinit(JsonWriter *w) {
        free(w->buf);
        w->buf = NULL;
        w->len = w->cap = 0;
}

/**
 * json_writer_finish() - hand over the document
 * @w:          writer
 * @textp:      out: the NUL-terminated text, to free()
 * @lenp:       out: its length
 *
 * Return: 0, or the first error the writer met: -ENOMEM, or -EMSGSIZE if
 *         the document would have grown past its maximum. The writer is
 *         empty afterwards either way.
 */
int json_writer_finish(JsonWriter *w, char **textp, size_t *lenp) {
        int r = w->error;

        if (r == 0 && !w->buf)
                r = -EINVAL;
        if (r < 0) {
                json_writer_deinit(w);
                return r;
        }
        *textp = w->buf;
        *lenp = w->len;
        w->buf = NULL;
        w->len = w->cap = 0;
        return 0;
}

static void json_put(JsonWriter *w, const char *s, size_t n) {
        size_t cap;
        char *p;

        if (w->error)
                return;
        if (n > w->max || w->len > w->max - n) {
                w->error = -EMSGSIZE;
                return;
        }
        if (w->len + n + 1 > w->cap) {
                cap = w->cap ? w->cap : 256;
                while (cap < w->len + n + 1)
                        cap *= 2;
                p = realloc(w->buf, cap);
                if (!p) {
                        w->error = -ENOMEM;
                        return;
                }
                w->buf = p;
                w->cap = cap;
        }
        memcpy(w->buf + w->len, s, n);
        w->len += n;
        w->buf[w->len] = 0;
}

static void json_puts(JsonWriter *w, const char *s) {
        json_put(w, s, strlen(s));
}

static void json_newline(JsonWriter *w) {
        if (!w->indent)
                return;
        json_put(w, "\n", 1);
        for (unsigned int i = 0; i < w->depth; ++i)
                json_puts(w, w->indent);
}

/* what goes before a value (or a key): a comma and the indentation */
static void json_before(JsonWriter *w) {
        if (w->after_key) {
                w->after_key = false;
                return;
        }
        if (!w->first[w->depth])
                json_put(w, ",", 1);
        w->first[w->depth] = false;
        if (w->depth > 0)
                json_newline(w);
}

static void json_open(JsonWriter *w, const char *c) {
        json_before(w);
        json_puts(w, c);
        if (w->depth >= JSON_DEPTH_MAX) {
                w->error = w->error ?: -EMSGSIZE;
                return;
        }
        w->first[++w->depth] = true;
}

static void json_close(JsonWriter *w, const char *c) {
        bool empty;

        if (w->depth == 0) {
                w->error = w->error ?: -EINVAL;
                return;
        }
        empty = w->first[w->depth];
        --w->depth;
        if (!empty)
                json_newline(w);
        json_puts(w, c);
}

/** json_begin_object() - open an object @w: writer */
void json_begin_object(JsonWriter *w) {
        json_open(w, "{");
}

/** json_end_object() - close the innermost object @w: writer */
void json_end_object(JsonWriter *w) {
        json_close(w, "}");
}

/** json_begin_array() - open an array @w: writer */
void json_begin_array(JsonWriter *w) {
        json_open(w, "[");
}

/** json_end_array() - close the innermost array @w: writer */
void json_end_array(JsonWriter *w) {
        json_close(w, "]");
}

/* the length of the valid UTF-8 sequence at @s (at most @n bytes), or 0 */
static size_t json_utf8_len(const unsigned char *s, size_t n) {
        uint32_t cp;
        size_t len;

        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                len = 2, cp = s[0] & 0x1f;
        else if (s[0] >= 0xe0 && s[0] <= 0xef)
                len = 3, cp = s[0] & 0x0f;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                len = 4, cp = s[0] & 0x07;
        else
                return 0;
        if (len > n)
                return 0;
        for (size_t i = 1; i < len; ++i) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        /* overlong forms, surrogates, beyond U+10FFFF */
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

/**
 * json_string_n() - write a string value (or a key's text) of @n bytes
 * @w:          writer
 * @s:          bytes, any
 * @n:          their number
 *
 * Quotes, backslashes and control characters are escaped; invalid UTF-8
 * becomes U+FFFD.
 */
void json_string_n(JsonWriter *w, const char *s, size_t n) {
        const unsigned char *u = (const unsigned char *)s;
        char esc[8];
        size_t i = 0, l;

        json_before(w);
        json_put(w, "\"", 1);
        while (i < n) {
                if (u[i] == '"' || u[i] == '\\') {
                        esc[0] = '\\';
                        esc[1] = (char)u[i];
                        json_put(w, esc, 2);
                        ++i;
                        continue;
                }
                if (u[i] < 0x20 || u[i] == 0x7f) {
                        snprintf(esc, sizeof(esc), "\\u%04x", u[i]);
                        json_put(w, esc, 6);
                        ++i;
                        continue;
                }
                l = json_utf8_len(u + i, n - i);
                if (!l) {
                        json_puts(w, "\\ufffd");
                        ++i;
                        continue;
                }
                json_put(w, s + i, l);
                i += l;
        }
        json_put(w, "\"", 1);
}

/** json_string() - write a NUL-terminated string value @w: writer @s: string */
void json_string(JsonWriter *w, const char *s) {
        json_string_n(w, s, strlen(s));
}

/**
 * json_key() - write the key of the next object member
 * @w:          writer
 * @key:        key
 */
void json_key(JsonWriter *w, const char *key) {
        json_string(w, key);
        json_puts(w, w->indent ? ": " : ":");
        w->after_key = true;
}

/** json_u64() - write an unsigned integer @w: writer @v: value */
void json_u64(JsonWriter *w, uint64_t v) {
        char buf[32];

        json_before(w);
        snprintf(buf, sizeof(buf), "%" PRIu64, v);
        json_puts(w, buf);
}

/** json_i64() - write a signed integer @w: writer @v: value */
void json_i64(JsonWriter *w, int64_t v) {
        char buf[32];

        json_before(w);
        snprintf(buf, sizeof(buf), "%" PRId64, v);
        json_puts(w, buf);
}

/** json_bool() - write true or false @w: writer @v: value */
void json_bool(JsonWriter *w, bool v) {
        json_before(w);
        json_puts(w, v ? "true" : "false");
}

/** json_null() - write null @w: writer */
void json_null(JsonWriter *w) {
        json_before(w);
        json_puts(w, "null");
}

/* the parser */

typedef struct JsonParser {
        const char *p;
        const char *end;
} JsonParser;

static void json_skip_ws(JsonParser *j) {
        while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' ||
                                 *j->p == '\r'))
                ++j->p;
}

static void json_value_clear(JsonValue *v) {
        for (size_t i = 0; i < v->n_children; ++i)
                json_value_clear(&v->children[i]);
        free(v->children);
        free(v->key);
        free(v->string);
        *v = (JsonValue){};
}

static int json_hex4(JsonParser *j, uint32_t *cpp) {
        uint32_t cp = 0;

        if (j->end - j->p < 4)
                return -EINVAL;
        for (int i = 0; i < 4; ++i) {
                char c = *j->p++;

                cp <<= 4;
                if (c >= '0' && c <= '9')
                        cp |= (uint32_t)(c - '0');
                else if (c >= 'a' && c <= 'f')
                        cp |= (uint32_t)(c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        cp |= (uint32_t)(c - 'A' + 10);
                else
                        return -EINVAL;
        }
        *cpp = cp;
        return 0;
}

static size_t json_utf8_put(char *out, uint32_t cp) {
        if (cp < 0x80) {
                out[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char)(0xc0 | (cp >> 6));
                out[1] = (char)(0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char)(0xe0 | (cp >> 12));
                out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
                out[2] = (char)(0x80 | (cp & 0x3f));
                return 3;
        }
        out[0] = (char)(0xf0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[3] = (char)(0x80 | (cp & 0x3f));
        return 4;
}

/* an escape after the backslash: appends to @out, which has room for 4 bytes */
static int json_parse_escape(JsonParser *j, char *out, size_t *np) {
        uint32_t cp, lo;
        char c;

        if (j->p >= j->end)
                return -EINVAL;
        c = *j->p++;
        switch (c) {
        case '"': case '\\': case '/':
                out[0] = c;
                *np = 1;
                return 0;
        case 'b': out[0] = '\b'; *np = 1; return 0;
        case 'f': out[0] = '\f'; *np = 1; return 0;
        case 'n': out[0] = '\n'; *np = 1; return 0;
        case 'r': out[0] = '\r'; *np = 1; return 0;
        case 't': out[0] = '\t'; *np = 1; return 0;
        case 'u':
                break;
        default:
                return -EINVAL;
        }
        if (json_hex4(j, &cp) < 0)
                return -EINVAL;
        if (cp >= 0xdc00 && cp <= 0xdfff)
                return -EINVAL;
        if (cp >= 0xd800 && cp <= 0xdbff) {
                /* a high surrogate needs its low one */
                if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
                        return -EINVAL;
                j->p += 2;
                if (json_hex4(j, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                        return -EINVAL;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        *np = json_utf8_put(out, cp);
        return 0;
}

static int json_parse_string(JsonParser *j, char **sp, size_t *np) {
        const char *start;
        size_t n = 0, l;
        char *s;
        int r;

        if (j->p >= j->end || *j->p != '"')
                return -EINVAL;
        start = ++j->p;
        /* the decoded text is never longer than the source */
        while (j->p < j->end && *j->p != '"') {
                if (*j->p == '\\' && j->p + 1 < j->end)
                        ++j->p;
                ++j->p;
        }
        if (j->p >= j->end)
                return -EINVAL;
        s = malloc((size_t)(j->p - start) + 1);
        if (!s)
                return -ENOMEM;

        j->p = start;
        while (*j->p != '"') {
                unsigned char c = (unsigned char)*j->p;

                if (c < 0x20) {
                        r = -EINVAL;
                        goto error;
                }
                if (c == '\\') {
                        ++j->p;
                        r = json_parse_escape(j, s + n, &l);
                        if (r < 0)
                                goto error;
                        n += l;
                        continue;
                }
                l = json_utf8_len((const unsigned char *)j->p, (size_t)(j->end - j->p));
                if (!l) {
                        r = -EINVAL;
                        goto error;
                }
                memcpy(s + n, j->p, l);
                n += l;
                j->p += l;
        }
        ++j->p;
        s[n] = 0;
        *sp = s;
        *np = n;
        return 0;

error:
        free(s);
        return r;
}

static bool json_is_digit(char c) {
        return c >= '0' && c <= '9';
}

static int json_parse_number(JsonParser *j, JsonValue *v) {
        const char *start = j->p;
        bool integer = true, negative = false;
        uint64_t u = 0;
        bool fits = true;

        if (j->p < j->end && *j->p == '-') {
                negative = true;
                ++j->p;
        }
        if (j->p >= j->end || !json_is_digit(*j->p))
                return -EINVAL;
        if (*j->p == '0') {
                ++j->p;
        } else {
                while (j->p < j->end && json_is_digit(*j->p)) {
                        if (__builtin_mul_overflow(u, 10, &u) ||
                            __builtin_add_overflow(u, (uint64_t)(*j->p - '0'), &u))
                                fits = false;
                        ++j->p;
                }
        }
        if (j->p < j->end && *j->p == '.') {
                integer = false;
                ++j->p;
                if (j->p >= j->end || !json_is_digit(*j->p))
                        return -EINVAL;
                while (j->p < j->end && json_is_digit(*j->p))
                        ++j->p;
        }
        if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
                integer = false;
                ++j->p;
                if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
                        ++j->p;
                if (j->p >= j->end || !json_is_digit(*j->p))
                        return -EINVAL;
                while (j->p < j->end && json_is_digit(*j->p))
                        ++j->p;
        }

        v->type = JSON_NUMBER;
        v->n_string = (size_t)(j->p - start);
        v->string = strndup(start, v->n_string);
        if (!v->string)
                return -ENOMEM;
        if (integer && fits) {
                if (!negative) {
                        v->is_u64 = true;
                        v->u64 = u;
                        if (u <= INT64_MAX) {
                                v->is_i64 = true;
                                v->i64 = (int64_t)u;
                        }
                } else if (u <= (uint64_t)INT64_MAX + 1) {
                        v->is_i64 = true;
                        v->i64 = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
                }
        }
        return 0;
}

static int json_parse_value(JsonParser *j, JsonValue *v, unsigned int depth);

static int json_add_child(JsonValue *v, JsonValue **childp) {
        JsonValue *c;

        c = realloc(v->children, (v->n_children + 1) * sizeof(*c));
        if (!c)
                return -ENOMEM;
        v->children = c;
        c[v->n_children] = (JsonValue){};
        *childp = &c[v->n_children++];
        return 0;
}

static int json_parse_container(JsonParser *j, JsonValue *v, unsigned int depth) {
        bool object = *j->p == '{';
        char close = object ? '}' : ']';
        JsonValue *child;
        int r;

        if (depth >= JSON_DEPTH_MAX)
                return -E2BIG;
        v->type = object ? JSON_OBJECT : JSON_ARRAY;
        ++j->p;
        json_skip_ws(j);
        if (j->p < j->end && *j->p == close) {
                ++j->p;
                return 0;
        }
        for (;;) {
                r = json_add_child(v, &child);
                if (r < 0)
                        return r;
                if (object) {
                        size_t n;

                        json_skip_ws(j);
                        r = json_parse_string(j, &child->key, &n);
                        if (r < 0)
                                return r;
                        json_skip_ws(j);
                        if (j->p >= j->end || *j->p != ':')
                                return -EINVAL;
                        ++j->p;
                }
                r = json_parse_value(j, child, depth + 1);
                if (r < 0)
                        return r;
                json_skip_ws(j);
                if (j->p >= j->end)
                        return -EINVAL;
                if (*j->p == close) {
                        ++j->p;
                        return 0;
                }
                if (*j->p != ',')
                        return -EINVAL;
                ++j->p;
        }
}

static int json_parse_literal(JsonParser *j, const char *word) {
        size_t n = strlen(word);

        if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
                return -EINVAL;
        j->p += n;
        return 0;
}

static int json_parse_value(JsonParser *j, JsonValue *v, unsigned int depth) {
        json_skip_ws(j);
        if (j->p >= j->end)
                return -EINVAL;
        switch (*j->p) {
        case '{':
        case '[':
                return json_parse_container(j, v, depth);
        case '"':
                v->type = JSON_STRING;
                return json_parse_string(j, &v->string, &v->n_string);
        case 't':
                v->type = JSON_BOOL;
                v->boolean = true;
                return json_parse_literal(j, "true");
        case 'f':
                v->type = JSON_BOOL;
                return json_parse_literal(j, "false");
        case 'n':
                v->type = JSON_NULL;
                return json_parse_literal(j, "null");
        default:
                return json_parse_number(j, v);
        }
}

/**
 * json_parse() - parse one JSON document
 * @valuep:     out: the document's value, to json_free()
 * @text:       the text (need not be NUL-terminated)
 * @len:        its length
 *
 * Strict RFC 8259: one value with optional whitespace around it, strings
 * of valid UTF-8 without raw control characters, no trailing commas, no
 * leading zeros.
 *
 * Return: 0, -EINVAL for text that is not JSON, -E2BIG for containers
 *         nested deeper than JSON_DEPTH_MAX, -ENOMEM.
 */
int json_parse(JsonValue **valuep, const char *text, size_t len) {
        JsonParser j = { .p = text, .end = text + len };
        JsonValue *v;
        int r;

        v = calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        r = json_parse_value(&j, v, 0);
        if (r == 0) {
                json_skip_ws(&j);
                if (j.p != j.end)
                        r = -EINVAL;
        }
        if (r < 0) {
                json_free(v);
                return r;
        }
        *valuep = v;
        return 0;
}

/**
 * json_free() - free a parsed document
 * @value:      what json_parse() returned, or NULL
 *
 * Return: NULL.
 */
JsonValue *json_free(JsonValue *value) {
        if (value) {
                json_value_clear(value);
                free(value);
        }
        return NULL;
}

/**
 * json_get() - a member of an object
 * @object:     value, may be NULL or not an object
 * @key:        key
 *
 * Return: the first member named @key, or NULL.
 */
const JsonValue *json_get(const JsonValue *object, const char *key) {
        if (!object || object->type != JSON_OBJECT)
                return NULL;
        for (size_t i = 0; i < object->n_children; ++i)
                if (strcmp(object->children[i].key, key) == 0)
                        return &object->children[i];
        return NULL;
}

/**
 * json_get_u64() - an unsigned integer member
 * @object:     object
 * @key:        key
 * @fallback:   returned if there is no such member or it is no u64
 *
 * Return: the value or @fallback.
 */
uint64_t json_get_u64(const JsonValue *object, const char *key, uint64_t fallback) {
        const JsonValue *v = json_get(object, key);

        return v && v->type == JSON_NUMBER && v->is_u64 ? v->u64 : fallback;
}

/**
 * json_get_string() - a string member
 * @object:     object
 * @key:        key
 * @fallback:   returned if there is no such member or it is no string
 *
 * Return: the string or @fallback.
 */
const char *json_get_string(const JsonValue *object, const char *key, const char *fallback) {
        const JsonValue *v = json_get(object, key);

        return v && v->type == JSON_STRING ? v->string : fallback;
}

/**
 * json_get_bool() - a boolean member
 * @object:     object
 * @key:        key
 * @fallback:   returned if there is no such member or it is no boolean
 *
 * Return: the value or @fallback.
 */
bool json_get_bool(const JsonValue *object, const char *key, bool fallback) {
        const JsonValue *v = json_get(object, key);

        return v && v->type == JSON_BOOL ? v->boolean : fallback;
}

/**
 * json_get_array() - an array member
 * @object:     object
 * @key:        key
 *
 * Return: the array, or NULL if there is no such member or it is no array.
 */
const JsonValue *json_get_array(const JsonValue *object, const char *key) {
        const JsonValue *v = json_get(object, key);

        return v && v->type == JSON_ARRAY ? v : NULL;
}
