/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * RefusalLog: which quota refusals were logged lately (see refusal-log.h)
 *
 * A plain array, searched linearly: it is consulted only for the first
 * refusal of a pair in the model, never per message.
 */

#include "broker/refusal-log.h"

static RefusalLogPair *refusal_log_find(RefusalLog *log, uint32_t receiver, uint32_t actor) {
        for (size_t i = 0; i < log->n_pairs; ++i)
                if (log->pairs[i].receiver == receiver && log->pairs[i].actor == actor)
                        return &log->pairs[i];
        return NULL;
}

/* the slot for a new pair: a free one, else the one logged longest ago */
static RefusalLogPair *refusal_log_slot(RefusalLog *log) {
        RefusalLogPair *oldest;

        if (log->n_pairs < REFUSAL_LOG_MAX)
                return &log->pairs[log->n_pairs++];
        oldest = &log->pairs[0];
        for (size_t i = 1; i < log->n_pairs; ++i)
                if (log->pairs[i].logged_usec < oldest->logged_usec)
                        oldest = &log->pairs[i];
        return oldest;
}

/**
 * refusal_log_admit() - whether a refusal of this pair may be logged now
 * @log:        the table
 * @receiver:   UID that was to be charged
 * @actor:      UID on whose behalf
 * @now_usec:   the current time (any monotonic clock)
 *
 * Records the pair as logged now when it returns true.
 *
 * Return: true if the pair was not logged within REFUSAL_LOG_INTERVAL_USEC.
 */
bool refusal_log_admit(RefusalLog *log, uint32_t receiver, uint32_t actor, uint64_t now_usec) {
        RefusalLogPair *pair = refusal_log_find(log, receiver, actor);

        if (pair && now_usec - pair->logged_usec < REFUSAL_LOG_INTERVAL_USEC)
                return false;
        if (!pair)
                pair = refusal_log_slot(log);
        *pair = (RefusalLogPair){ .receiver = receiver, .actor = actor, .logged_usec = now_usec };
        return true;
}
