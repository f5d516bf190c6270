/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * RefusalLog: which quota refusals were logged lately
 *
 * The model reports the first refusal of each (receiving UID, acting UID)
 * pair once per lifetime of its accounting objects, which end with a
 * user's last peer. A client that connects, is refused and disconnects in
 * a loop would get a log line every time. The broker remembers the pairs
 * it logged and logs a pair again only after REFUSAL_LOG_INTERVAL_USEC.
 *
 * Invariants:
 *  - at most REFUSAL_LOG_MAX pairs are remembered; when a new pair finds
 *    the table full, the one logged longest ago makes room;
 *  - no pair appears twice.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REFUSAL_LOG_MAX 256
#define REFUSAL_LOG_INTERVAL_USEC (10ULL * 60 * 1000 * 1000)

typedef struct RefusalLogPair {
        uint32_t receiver;
        uint32_t actor;
        uint64_t logged_usec;
} RefusalLogPair;

typedef struct RefusalLog {
        RefusalLogPair pairs[REFUSAL_LOG_MAX];
        size_t n_pairs;
} RefusalLog;

bool refusal_log_admit(RefusalLog *log, uint32_t receiver, uint32_t actor, uint64_t now_usec);
