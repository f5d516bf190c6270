/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SipHash-2-4, after the reference implementation: two compression rounds
 * per 8-byte word, four finalization rounds, little-endian words.
 */

#include <stdint.h>
#include <string.h>
#include "util/siphash.h"

static inline uint64_t siphash_rotl(uint64_t x, unsigned int b) {
        return (x << b) | (x >> (64 - b));
}

static inline uint64_t siphash_le64(const uint8_t *p) {
        uint64_t v = 0;

        for (unsigned int i = 0; i < 8; ++i)
                v |= (uint64_t)p[i] << (8 * i);
        return v;
}

#define SIPROUND(v0, v1, v2, v3)                                                \
        do {                                                                    \
                v0 += v1;                                                       \
                v1 = siphash_rotl(v1, 13);                                      \
                v1 ^= v0;                                                       \
                v0 = siphash_rotl(v0, 32);                                      \
                v2 += v3;                                                       \
                v3 = siphash_rotl(v3, 16);                                      \
                v3 ^= v2;                                                       \
                v0 += v3;                                                       \
                v3 = siphash_rotl(v3, 21);                                      \
                v3 ^= v0;                                                       \
                v2 += v1;                                                       \
                v1 = siphash_rotl(v1, 17);                                      \
                v1 ^= v2;                                                       \
                v2 = siphash_rotl(v2, 32);                                      \
        } while (0)

/**
 * siphash24() - SipHash-2-4 of a byte string
 * @key:        the 128-bit key
 * @data:       the input
 * @len:        its length in bytes
 *
 * Return: the 64-bit hash.
 */
uint64_t siphash24(const uint8_t key[SIPHASH_KEY_SIZE], const void *data, size_t len) {
        uint64_t k0 = siphash_le64(key), k1 = siphash_le64(key + 8);
        uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
        uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
        uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
        uint64_t v3 = k1 ^ 0x7465646279746573ULL;
        const uint8_t *p = data;
        uint8_t last[8] = {};
        uint64_t m;
        size_t i;

        for (i = 0; i + 8 <= len; i += 8) {
                m = siphash_le64(p + i);
                v3 ^= m;
                SIPROUND(v0, v1, v2, v3);
                SIPROUND(v0, v1, v2, v3);
                v0 ^= m;
        }
        if (len > i)
                memcpy(last, p + i, len - i);
        m = siphash_le64(last) | ((uint64_t)(len & 0xff) << 56);
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
        v2 ^= 0xff;
        for (i = 0; i < 4; ++i)
                SIPROUND(v0, v1, v2, v3);
        return v0 ^ v1 ^ v2 ^ v3;
}
