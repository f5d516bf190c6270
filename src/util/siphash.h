/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
 * 2012): a keyed pseudo-random function of a short input, 64 bits out.
 * The broker uses it where a number must be unguessable to whoever does
 * not hold the key (the message IDs an unprivileged monitor sees).
 */

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_SIZE 16

uint64_t siphash24(const uint8_t key[SIPHASH_KEY_SIZE], const void *data, size_t len);
