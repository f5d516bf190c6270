/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for the control records (bus1ctl): STATUS, PEERS, PEER, QUOTA,
 * METRICS (with its JSON flag) and MONITOR requests, the control REPLY,
 * CTL_DATA and EVENTS
 *
 * As for the other records: the layout is pinned at the numeric offsets of
 * docs/protocol.md section 15, every record round-trips through its encoder
 * and decoder, and every malformed record gets exactly the errno the
 * document gives, with nothing written on failure. check_record() is the
 * consistency checker run on every encoded record.
 */

#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "proto/proto.h"
#include "util/macro.h"

#define FILL 0xee

static void put32(uint8_t *buf, size_t off, uint32_t v) {
        v = htole32(v);
        memcpy(buf + off, &v, sizeof(v));
}

static void put64(uint8_t *buf, size_t off, uint64_t v) {
        v = htole64(v);
        memcpy(buf + off, &v, sizeof(v));
}

static uint32_t get32(const uint8_t *buf, size_t off) {
        uint32_t v;

        memcpy(&v, buf + off, sizeof(v));
        return le32toh(v);
}

static uint64_t get64(const uint8_t *buf, size_t off) {
        uint64_t v;

        memcpy(&v, buf + off, sizeof(v));
        return le64toh(v);
}

static uint8_t *buf_new(void) {
        uint8_t *b = malloc(PROTO_RECORD_MAX + 64);

        assert_non_null(b);
        memset(b, FILL, PROTO_RECORD_MAX + 64);
        return b;
}

/* the consistency checker */
static void check_record(const uint8_t *b, int n, uint16_t type, uint64_t cookie) {
        ProtoHeader hdr;

        assert_true(n >= 16);
        assert_int_equal(n % 8, 0);
        assert_true(n <= (int)PROTO_RECORD_MAX);
        assert_int_equal(proto_decode_header(&hdr, b, (size_t)n), 0);
        assert_int_equal(hdr.size, n);
        assert_int_equal(hdr.version, 1);
        assert_int_equal(hdr.type, type);
        assert_int_equal(hdr.cookie, cookie);
        for (size_t i = (size_t)n; i < (size_t)n + 64; ++i)
                assert_int_equal(b[i], FILL);
}

/* a record header at the start of @b */
static void put_header(uint8_t *b, uint32_t size, uint16_t type, uint64_t cookie) {
        uint16_t v;

        put32(b, 0, size);
        v = htole16(1);
        memcpy(b + 4, &v, 2);
        v = htole16(type);
        memcpy(b + 6, &v, 2);
        put64(b, 8, cookie);
}

static void test_types(void **state) {
        assert_int_equal(PROTO_TYPE_CTL_STATUS, 0x1000);
        assert_int_equal(PROTO_TYPE_CTL_PEERS, 0x1001);
        assert_int_equal(PROTO_TYPE_CTL_PEER, 0x1002);
        assert_int_equal(PROTO_TYPE_CTL_QUOTA, 0x1003);
        assert_int_equal(PROTO_TYPE_CTL_METRICS, 0x1004);
        assert_int_equal(PROTO_TYPE_CTL_MONITOR, 0x1005);
        assert_int_equal(PROTO_TYPE_CTL_DATA, 0x8006);
        assert_int_equal(PROTO_TYPE_EVENTS, 0x8007);
        for (uint32_t t = 0x1000; t <= 0x1005; ++t) {
                assert_true(proto_type_is_control((uint16_t)t));
                assert_int_equal(proto_check_request_type((uint16_t)t), 0);
        }
        assert_int_equal(proto_check_request_type(0x1006), -ENOTTY);
        assert_int_equal(proto_check_request_type(PROTO_TYPE_CTL_DATA), -EBADMSG);
        assert_int_equal(proto_check_request_type(PROTO_TYPE_EVENTS), -EBADMSG);
        assert_false(proto_type_is_control(0x0fff));
        assert_false(proto_type_is_control(0x2000));
        assert_int_equal(PROTO_SIZE_CTL, 32);
        assert_int_equal(PROTO_SIZE_CTL_MONITOR, 56);
        assert_int_equal(PROTO_SIZE_REPLY_CTL, 40);
        assert_int_equal(PROTO_SIZE_CTL_DATA_MIN, 24);
        assert_int_equal(PROTO_SIZE_EVENTS_MIN, 24);
        assert_int_equal(PROTO_CTL_DATA_MAX, 131048);
        assert_int_equal(PROTO_EVENTS_MAX, 1365);
}

static void test_ctl_layout(void **state) {
        uint8_t *b = buf_new(), expect[32] = {};
        ProtoCtl in = { .type = PROTO_TYPE_CTL_PEER, .cookie = 0x1122, .arg = 7 }, out;
        int n;

        n = proto_encode_ctl(b, PROTO_RECORD_MAX, &in);
        check_record(b, n, PROTO_TYPE_CTL_PEER, 0x1122);
        assert_int_equal(n, 32);
        put_header(expect, 32, 0x1002, 0x1122);
        put64(expect, 16, 0);
        put64(expect, 24, 7);
        assert_memory_equal(b, expect, 32);

        assert_int_equal(proto_decode_ctl(&out, b, 32, 0), 0);
        assert_int_equal(out.type, PROTO_TYPE_CTL_PEER);
        assert_int_equal(out.cookie, 0x1122);
        assert_int_equal(out.flags, 0);
        assert_int_equal(out.arg, 7);

        /* every type of the layout round-trips */
        for (uint16_t t = PROTO_TYPE_CTL_STATUS; t <= PROTO_TYPE_CTL_METRICS; ++t) {
                in = (ProtoCtl){ .type = t, .cookie = t };
                if (t == PROTO_TYPE_CTL_QUOTA)
                        in.arg = PROTO_CTL_UID_ALL;
                n = proto_encode_ctl(b, PROTO_RECORD_MAX, &in);
                check_record(b, n, t, t);
                assert_int_equal(proto_decode_ctl(&out, b, (size_t)n, 0), 0);
                assert_int_equal(out.type, in.type);
                assert_int_equal(out.cookie, in.cookie);
                assert_int_equal(out.flags, in.flags);
                assert_int_equal(out.arg, in.arg);
        }
        free(b);
}

static void test_ctl_refused(void **state) {
        uint8_t *b = buf_new(), rec[40];
        ProtoCtl in, out;

        /* encoder: the same rules as the decoder, nothing written */
        in = (ProtoCtl){ .type = PROTO_TYPE_CTL_STATUS, .flags = 1 };
        assert_int_equal(proto_encode_ctl(b, PROTO_RECORD_MAX, &in), -EINVAL);
        in = (ProtoCtl){ .type = PROTO_TYPE_CTL_STATUS, .arg = 1 };
        assert_int_equal(proto_encode_ctl(b, PROTO_RECORD_MAX, &in), -EINVAL);
        in = (ProtoCtl){ .type = PROTO_TYPE_CTL_QUOTA, .arg = UINT32_MAX };
        assert_int_equal(proto_encode_ctl(b, PROTO_RECORD_MAX, &in), -EINVAL);
        in = (ProtoCtl){ .type = PROTO_TYPE_CTL_QUOTA, .arg = (uint64_t)1 << 32 };
        assert_int_equal(proto_encode_ctl(b, PROTO_RECORD_MAX, &in), -EINVAL);
        in = (ProtoCtl){ .type = PROTO_TYPE_CTL_MONITOR };
        assert_int_equal(proto_encode_ctl(b, PROTO_RECORD_MAX, &in), -EINVAL);
        in = (ProtoCtl){ .type = PROTO_TYPE_CTL_QUOTA, .arg = UINT32_MAX - 1 };
        assert_int_equal(proto_encode_ctl(b, 31, &in), -ENOBUFS);
        for (size_t i = 0; i < 64; ++i)
                assert_int_equal(b[i], FILL);

        /* decoder */
        memset(rec, 0, sizeof(rec));
        put_header(rec, 32, PROTO_TYPE_CTL_METRICS, 5);
        assert_int_equal(proto_decode_ctl(&out, rec, 32, 0), 0);
        assert_int_equal(proto_decode_ctl(&out, rec, 32, 1), -EBADMSG);
        put64(rec, 16, 2);
        assert_int_equal(proto_decode_ctl(&out, rec, 32, 0), -EINVAL);
        put64(rec, 16, 0);
        put64(rec, 24, 1);
        assert_int_equal(proto_decode_ctl(&out, rec, 32, 0), -EINVAL);
        /* wrong sizes, wrong types */
        put_header(rec, 40, PROTO_TYPE_CTL_METRICS, 5);
        assert_int_equal(proto_decode_ctl(&out, rec, 40, 0), -EBADMSG);
        put_header(rec, 24, PROTO_TYPE_CTL_METRICS, 5);
        assert_int_equal(proto_decode_ctl(&out, rec, 24, 0), -EBADMSG);
        put_header(rec, 32, PROTO_TYPE_CTL_MONITOR, 5);
        assert_int_equal(proto_decode_ctl(&out, rec, 32, 0), -EBADMSG);
        put_header(rec, 32, PROTO_TYPE_PEER_QUERY, 5);
        assert_int_equal(proto_decode_ctl(&out, rec, 32, 0), -EBADMSG);
        free(b);
}

/* METRICS alone takes a flag: JSON instead of OpenMetrics text */
static void test_ctl_metrics_json(void **state) {
        uint8_t *b = buf_new(), expect[32] = {}, rec[32];
        ProtoCtl in = {
                .type = PROTO_TYPE_CTL_METRICS,
                .cookie = 0x33,
                .flags = PROTO_CTL_FLAG_JSON,
        }, out;
        int n;

        assert_int_equal(PROTO_CTL_FLAG_JSON, 1);
        assert_int_equal(PROTO_CTL_METRICS_FLAGS, PROTO_CTL_FLAG_JSON);
        n = proto_encode_ctl(b, PROTO_RECORD_MAX, &in);
        check_record(b, n, PROTO_TYPE_CTL_METRICS, 0x33);
        assert_int_equal(n, 32);
        put_header(expect, 32, 0x1004, 0x33);
        put64(expect, 16, 1);
        put64(expect, 24, 0);
        assert_memory_equal(b, expect, 32);
        assert_int_equal(proto_decode_ctl(&out, b, 32, 0), 0);
        assert_int_equal(out.type, PROTO_TYPE_CTL_METRICS);
        assert_int_equal(out.flags, PROTO_CTL_FLAG_JSON);
        assert_int_equal(out.arg, 0);

        /* the other requests are JSON anyway: the flag is refused there */
        free(b);
        b = buf_new();
        for (uint16_t t = PROTO_TYPE_CTL_STATUS; t < PROTO_TYPE_CTL_METRICS; ++t) {
                in = (ProtoCtl){ .type = t, .flags = PROTO_CTL_FLAG_JSON };
                if (t == PROTO_TYPE_CTL_QUOTA)
                        in.arg = PROTO_CTL_UID_ALL;
                assert_int_equal(proto_encode_ctl(b, PROTO_RECORD_MAX, &in), -EINVAL);
                memcpy(rec, expect, sizeof(rec));
                put_header(rec, 32, t, 0x33);
                put64(rec, 24, in.arg);
                assert_int_equal(proto_decode_ctl(&out, rec, 32, 0), -EINVAL);
                /* and without it, the same record is fine */
                put64(rec, 16, 0);
                assert_int_equal(proto_decode_ctl(&out, rec, 32, 0), 0);
        }
        for (size_t i = 0; i < 64; ++i)
                assert_int_equal(b[i], FILL);

        /* unknown flags beside it, and an argument, are still refused */
        in = (ProtoCtl){ .type = PROTO_TYPE_CTL_METRICS, .flags = PROTO_CTL_FLAG_JSON | 2 };
        assert_int_equal(proto_encode_ctl(b, PROTO_RECORD_MAX, &in), -EINVAL);
        in = (ProtoCtl){ .type = PROTO_TYPE_CTL_METRICS, .flags = PROTO_CTL_FLAG_JSON, .arg = 1 };
        assert_int_equal(proto_encode_ctl(b, PROTO_RECORD_MAX, &in), -EINVAL);
        memcpy(rec, expect, sizeof(rec));
        put64(rec, 16, 3);
        assert_int_equal(proto_decode_ctl(&out, rec, 32, 0), -EINVAL);
        put64(rec, 16, (uint64_t)1 << 63 | 1);
        assert_int_equal(proto_decode_ctl(&out, rec, 32, 0), -EINVAL);
        put64(rec, 16, 1);
        put64(rec, 24, 1);
        assert_int_equal(proto_decode_ctl(&out, rec, 32, 0), -EINVAL);
        for (size_t i = 0; i < 64; ++i)
                assert_int_equal(b[i], FILL);
        free(b);
}

static void test_monitor(void **state) {
        uint8_t *b = buf_new(), expect[56] = {};
        ProtoCtlMonitor in = {
                .cookie = 9,
                .types = (1 << PROTO_EVENT_SEND) | (1 << PROTO_EVENT_REFUSAL),
                .peer = 3,
                .node = 4,
                .uid = 1000,
        }, out;
        int n;

        n = proto_encode_ctl_monitor(b, PROTO_RECORD_MAX, &in);
        check_record(b, n, PROTO_TYPE_CTL_MONITOR, 9);
        assert_int_equal(n, 56);
        put_header(expect, 56, 0x1005, 9);
        put64(expect, 24, 0x42);
        put64(expect, 32, 3);
        put64(expect, 40, 4);
        put32(expect, 48, 1000);
        assert_memory_equal(b, expect, 56);
        assert_int_equal(proto_decode_ctl_monitor(&out, b, 56, 0), 0);
        assert_int_equal(out.cookie, 9);
        assert_int_equal(out.flags, 0);
        assert_int_equal(out.types, in.types);
        assert_int_equal(out.peer, 3);
        assert_int_equal(out.node, 4);
        assert_int_equal(out.uid, 1000);

        /* LOST cannot be selected (it always comes), nor unknown types */
        in.types = 1 << PROTO_EVENT_LOST;
        assert_int_equal(proto_encode_ctl_monitor(b, PROTO_RECORD_MAX, &in), -EINVAL);
        in.types = 1;
        assert_int_equal(proto_encode_ctl_monitor(b, PROTO_RECORD_MAX, &in), -EINVAL);
        in.types = 0;
        in.flags = 1;
        assert_int_equal(proto_encode_ctl_monitor(b, PROTO_RECORD_MAX, &in), -EINVAL);

        put64(expect, 24, 1 << PROTO_EVENT_LOST);
        assert_int_equal(proto_decode_ctl_monitor(&out, expect, 56, 0), -EINVAL);
        put64(expect, 24, 0);
        put32(expect, 52, 1);
        assert_int_equal(proto_decode_ctl_monitor(&out, expect, 56, 0), -EBADMSG);
        put32(expect, 52, 0);
        assert_int_equal(proto_decode_ctl_monitor(&out, expect, 56, 0), 0);
        assert_int_equal(proto_decode_ctl_monitor(&out, expect, 56, 1), -EBADMSG);
        free(b);
}

static void test_reply(void **state) {
        uint8_t *b = buf_new(), rec[48];
        ProtoReplyCtl in = {
                .cookie = 3,
                .format = PROTO_CTL_FORMAT_JSON,
                .flags = PROTO_CTL_REPLY_FLAG_TRUNCATED,
                .n_bytes = 300000,
        }, out;
        int n;

        n = proto_encode_reply_ctl(b, PROTO_RECORD_MAX, &in);
        check_record(b, n, PROTO_TYPE_REPLY, 3);
        assert_int_equal(n, 40);
        assert_int_equal(get32(b, 16), 0);
        assert_int_equal(get64(b, 24), 300000);
        assert_int_equal(get32(b, 32), PROTO_CTL_FORMAT_JSON);
        assert_int_equal(get32(b, 36), 1);
        assert_int_equal(proto_decode_reply_ctl(&out, b, 40, 0), 0);
        assert_int_equal(out.cookie, 3);
        assert_int_equal(out.error, 0);
        assert_int_equal(out.format, PROTO_CTL_FORMAT_JSON);
        assert_int_equal(out.flags, PROTO_CTL_REPLY_FLAG_TRUNCATED);
        assert_int_equal(out.n_bytes, 300000);

        /* an error reply has no body, and decodes with every body field 0 */
        memset(b, FILL, PROTO_RECORD_MAX + 64);
        in = (ProtoReplyCtl){ .cookie = 4, .error = EPERM, .n_bytes = 5 };
        n = proto_encode_reply_ctl(b, PROTO_RECORD_MAX, &in);
        check_record(b, n, PROTO_TYPE_REPLY, 4);
        assert_int_equal(n, 24);
        assert_int_equal(proto_decode_reply_ctl(&out, b, 24, 0), 0);
        assert_int_equal(out.error, EPERM);
        assert_int_equal(out.n_bytes, 0);
        assert_int_equal(out.format, 0);

        /* MONITOR: no body, format NONE */
        in = (ProtoReplyCtl){ .cookie = 5 };
        n = proto_encode_reply_ctl(b, PROTO_RECORD_MAX, &in);
        assert_int_equal(proto_decode_reply_ctl(&out, b, (size_t)n, 0), 0);

        /* format and size go together; limits */
        in = (ProtoReplyCtl){ .format = PROTO_CTL_FORMAT_NONE, .n_bytes = 1 };
        assert_int_equal(proto_encode_reply_ctl(b, PROTO_RECORD_MAX, &in), -EINVAL);
        in = (ProtoReplyCtl){ .format = PROTO_CTL_FORMAT_OPENMETRICS };
        assert_int_equal(proto_encode_reply_ctl(b, PROTO_RECORD_MAX, &in), -EINVAL);
        in = (ProtoReplyCtl){ .format = 3, .n_bytes = 1 };
        assert_int_equal(proto_encode_reply_ctl(b, PROTO_RECORD_MAX, &in), -EINVAL);
        in = (ProtoReplyCtl){ .format = 1, .n_bytes = 1, .flags = 2 };
        assert_int_equal(proto_encode_reply_ctl(b, PROTO_RECORD_MAX, &in), -EINVAL);
        in = (ProtoReplyCtl){ .format = 1, .n_bytes = PROTO_CTL_BYTES_MAX + 1 };
        assert_int_equal(proto_encode_reply_ctl(b, PROTO_RECORD_MAX, &in), -EMSGSIZE);
        in = (ProtoReplyCtl){ .format = 1, .n_bytes = PROTO_CTL_BYTES_MAX };
        assert_int_equal(proto_encode_reply_ctl(b, PROTO_RECORD_MAX, &in), 40);

        memset(rec, 0, sizeof(rec));
        put_header(rec, 40, PROTO_TYPE_REPLY, 1);
        put64(rec, 24, 1);
        put32(rec, 32, 2);
        assert_int_equal(proto_decode_reply_ctl(&out, rec, 40, 0), 0);
        assert_int_equal(proto_decode_reply_ctl(&out, rec, 40, 1), -EBADMSG);
        put32(rec, 32, 7);
        assert_int_equal(proto_decode_reply_ctl(&out, rec, 40, 0), -EINVAL);
        put32(rec, 32, 2);
        put32(rec, 20, 1);
        assert_int_equal(proto_decode_reply_ctl(&out, rec, 40, 0), -EBADMSG);
        put32(rec, 20, 0);
        /* a success reply without its body, an error reply with one */
        put_header(rec, 24, PROTO_TYPE_REPLY, 1);
        assert_int_equal(proto_decode_reply_ctl(&out, rec, 24, 0), -EBADMSG);
        put_header(rec, 40, PROTO_TYPE_REPLY, 1);
        put32(rec, 16, ENXIO);
        assert_int_equal(proto_decode_reply_ctl(&out, rec, 40, 0), -EBADMSG);
        free(b);
}

static void test_data(void **state) {
        uint8_t *b = buf_new(), *big;
        ProtoCtlData out;
        int n;

        n = proto_encode_ctl_data(b, PROTO_RECORD_MAX, 77, "{\"a\":1}", 7);
        check_record(b, n, PROTO_TYPE_CTL_DATA, 77);
        assert_int_equal(n, 32);
        assert_int_equal(get32(b, 16), 7);
        assert_int_equal(get32(b, 20), 0);
        assert_memory_equal(b + 24, "{\"a\":1}", 7);
        assert_int_equal(b[31], 0);
        assert_int_equal(proto_decode_ctl_data(&out, b, 32, 0), 0);
        assert_int_equal(out.cookie, 77);
        assert_int_equal(out.n_bytes, 7);
        assert_ptr_equal(out.bytes, b + 24);

        /* nonzero padding, a NUL in the body, a bad count, fds */
        b[31] = 1;
        assert_int_equal(proto_decode_ctl_data(&out, b, 32, 0), -EBADMSG);
        b[31] = 0;
        b[25] = 0;
        assert_int_equal(proto_decode_ctl_data(&out, b, 32, 0), -EINVAL);
        b[25] = 'a';
        assert_int_equal(proto_decode_ctl_data(&out, b, 32, 1), -EBADMSG);
        put32(b, 16, 9);
        assert_int_equal(proto_decode_ctl_data(&out, b, 32, 0), -EBADMSG);
        put32(b, 16, 0);
        assert_int_equal(proto_decode_ctl_data(&out, b, 32, 0), -EINVAL);
        put32(b, 16, 7);
        put32(b, 20, 1);
        assert_int_equal(proto_decode_ctl_data(&out, b, 32, 0), -EBADMSG);

        assert_int_equal(proto_encode_ctl_data(b, PROTO_RECORD_MAX, 1, "", 0), -EINVAL);
        assert_int_equal(proto_encode_ctl_data(b, PROTO_RECORD_MAX, 1, "a\0b", 3), -EINVAL);
        assert_int_equal(proto_encode_ctl_data(b, 31, 1, "abc", 3), -ENOBUFS);

        /* the largest part fills a record exactly */
        big = malloc(PROTO_CTL_DATA_MAX + 1);
        assert_non_null(big);
        memset(big, 'x', PROTO_CTL_DATA_MAX + 1);
        n = proto_encode_ctl_data(b, PROTO_RECORD_MAX, 2, big, PROTO_CTL_DATA_MAX);
        assert_int_equal(n, PROTO_RECORD_MAX);
        assert_int_equal(proto_decode_ctl_data(&out, b, PROTO_RECORD_MAX, 0), 0);
        assert_int_equal(proto_encode_ctl_data(b, PROTO_RECORD_MAX, 2, big,
                                               PROTO_CTL_DATA_MAX + 1), -EINVAL);
        free(big);
        free(b);
}

static ProtoEvent event(uint32_t type, uint64_t seq) {
        return (ProtoEvent){
                .seq = seq,
                .time = 1700000000000000000ULL + seq,
                .type = type,
                .error = type == PROTO_EVENT_REFUSAL ? EDQUOT : 0,
                .peer = 1,
                .uid = 1000,
                .pid = 42,
                .target = 2,
                .target_uid = 1001,
                .target_pid = 43,
                .node = 5,
                .n_bytes = 12,
                .n_handles = 1,
                .n_fds = 2,
                .count = type == PROTO_EVENT_LOST ? 99 : 0,
                .message = type == PROTO_EVENT_SEND || type == PROTO_EVENT_DELIVER
                                   ? 0x1000 + seq : 0,
        };
}

static void test_events(void **state) {
        ProtoEvent in[_PROTO_EVENT_N - 1], got;
        uint8_t *b = buf_new();
        ProtoEvents out;
        int n;

        for (uint32_t t = PROTO_EVENT_SEND; t < _PROTO_EVENT_N; ++t)
                in[t - 1] = event(t, t);
        n = proto_encode_events(b, PROTO_RECORD_MAX, in, ARRAY_SIZE(in));
        check_record(b, n, PROTO_TYPE_EVENTS, 0);
        assert_int_equal(n, 24 + 96 * 7);
        assert_int_equal(get32(b, 16), 7);
        /* the first event at 24: seq, time, type, error, peer, uid, pid, ... */
        assert_int_equal(get64(b, 24), 1);
        assert_int_equal(get64(b, 32), 1700000000000000001ULL);
        assert_int_equal(get32(b, 40), PROTO_EVENT_SEND);
        assert_int_equal(get32(b, 44), 0);
        assert_int_equal(get64(b, 48), 1);
        assert_int_equal(get32(b, 56), 1000);
        assert_int_equal(get32(b, 60), 42);
        assert_int_equal(get64(b, 64), 2);
        assert_int_equal(get32(b, 72), 1001);
        assert_int_equal(get32(b, 76), 43);
        assert_int_equal(get64(b, 80), 5);
        assert_int_equal(get64(b, 88), 12);
        assert_int_equal(get32(b, 96), 1);
        assert_int_equal(get32(b, 100), 2);
        assert_int_equal(get64(b, 104), 0);
        /* the message ID last: SEND and DELIVER carry one, the others none */
        assert_int_equal(get64(b, 112), 0x1001);
        assert_int_equal(get64(b, 24 + 96 + 88), 0x1002);
        assert_int_equal(get64(b, 24 + 96 * 2 + 88), 0);

        assert_int_equal(proto_decode_events(&out, b, (size_t)n, 0), 0);
        assert_int_equal(out.n_events, 7);
        for (size_t i = 0; i < out.n_events; ++i) {
                proto_event_at(&got, &out, i);
                assert_memory_equal(&got, &in[i], sizeof(got));
        }
        assert_int_equal(proto_decode_events(&out, b, (size_t)n, 1), -EBADMSG);

        /* a bad event anywhere refuses the record */
        put32(b, 24 + 96 * 6 + 16, 8);
        assert_int_equal(proto_decode_events(&out, b, (size_t)n, 0), -EINVAL);
        put32(b, 24 + 96 * 6 + 16, PROTO_EVENT_LOST);
        put64(b, 24 + 96 * 6 + 80, 0);
        assert_int_equal(proto_decode_events(&out, b, (size_t)n, 0), -EINVAL);
        put64(b, 24 + 96 * 6 + 80, 99);
        assert_int_equal(proto_decode_events(&out, b, (size_t)n, 0), 0);
        /* a message ID exactly on SEND and DELIVER */
        put64(b, 24 + 96 * 6 + 88, 7);
        assert_int_equal(proto_decode_events(&out, b, (size_t)n, 0), -EINVAL);
        put64(b, 24 + 96 * 6 + 88, 0);
        put64(b, 24 + 96 + 88, 0);
        assert_int_equal(proto_decode_events(&out, b, (size_t)n, 0), -EINVAL);
        put64(b, 24 + 96 + 88, 0x1002);
        assert_int_equal(proto_decode_events(&out, b, (size_t)n, 0), 0);
        /* a cookie, a count that does not match, reserved */
        put64(b, 8, 1);
        assert_int_equal(proto_decode_events(&out, b, (size_t)n, 0), -EBADMSG);
        put64(b, 8, 0);
        put32(b, 16, 6);
        assert_int_equal(proto_decode_events(&out, b, (size_t)n, 0), -EBADMSG);
        put32(b, 16, 0);
        assert_int_equal(proto_decode_events(&out, b, (size_t)n, 0), -EINVAL);
        put32(b, 16, 7);
        put32(b, 20, 1);
        assert_int_equal(proto_decode_events(&out, b, (size_t)n, 0), -EBADMSG);

        /* encoder refusals */
        got = event(PROTO_EVENT_SEND, 1);
        got.error = EDQUOT;
        assert_int_equal(proto_encode_events(b, PROTO_RECORD_MAX, &got, 1), -EINVAL);
        got = event(PROTO_EVENT_REFUSAL, 1);
        got.error = 0;
        assert_int_equal(proto_encode_events(b, PROTO_RECORD_MAX, &got, 1), -EINVAL);
        got.error = 4096;
        assert_int_equal(proto_encode_events(b, PROTO_RECORD_MAX, &got, 1), -EINVAL);
        got = event(PROTO_EVENT_DESTROY, 1);
        got.count = 1;
        assert_int_equal(proto_encode_events(b, PROTO_RECORD_MAX, &got, 1), -EINVAL);
        got.count = 0;
        got.message = 3;
        assert_int_equal(proto_encode_events(b, PROTO_RECORD_MAX, &got, 1), -EINVAL);
        got = event(PROTO_EVENT_SEND, 1);
        got.message = 0;
        assert_int_equal(proto_encode_events(b, PROTO_RECORD_MAX, &got, 1), -EINVAL);
        got = event(PROTO_EVENT_DESTROY, 1);
        assert_int_equal(proto_encode_events(b, PROTO_RECORD_MAX, &got, 0), -EINVAL);
        assert_int_equal(proto_encode_events(b, 24 + 95, &got, 1), -ENOBUFS);
        free(b);
}

static void test_events_max(void **state) {
        ProtoEvent *in = calloc(PROTO_EVENTS_MAX + 1, sizeof(*in));
        uint8_t *b = buf_new();
        ProtoEvents out;
        size_t size;
        int n;

        assert_non_null(in);
        for (size_t i = 0; i <= PROTO_EVENTS_MAX; ++i)
                in[i] = event(PROTO_EVENT_SEND, i + 1);
        n = proto_encode_events(b, PROTO_RECORD_MAX, in, PROTO_EVENTS_MAX);
        check_record(b, n, PROTO_TYPE_EVENTS, 0);
        assert_int_equal(proto_decode_events(&out, b, (size_t)n, 0), 0);
        assert_int_equal(out.n_events, PROTO_EVENTS_MAX);
        assert_int_equal(proto_encode_events(b, PROTO_RECORD_MAX, in, PROTO_EVENTS_MAX + 1),
                         -EINVAL);

        assert_int_equal(proto_size_events(&size, PROTO_EVENTS_MAX), 0);
        assert_true(size <= PROTO_RECORD_MAX);
        assert_int_equal(proto_size_events(&size, PROTO_EVENTS_MAX + 1), -EMSGSIZE);
        assert_int_equal(proto_size_events(&size, UINT64_MAX), -EMSGSIZE);
        assert_int_equal(proto_size_ctl_data(&size, PROTO_CTL_DATA_MAX), 0);
        assert_int_equal(size, PROTO_RECORD_MAX);
        assert_int_equal(proto_size_ctl_data(&size, PROTO_CTL_DATA_MAX + 1), -EMSGSIZE);
        assert_int_equal(proto_size_ctl_data(&size, UINT64_MAX), -EMSGSIZE);
        free(in);
        free(b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_types),
                cmocka_unit_test(test_ctl_layout),
                cmocka_unit_test(test_ctl_refused),
                cmocka_unit_test(test_ctl_metrics_json),
                cmocka_unit_test(test_monitor),
                cmocka_unit_test(test_reply),
                cmocka_unit_test(test_data),
                cmocka_unit_test(test_events),
                cmocka_unit_test(test_events_max),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
