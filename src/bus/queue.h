/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Queue: one peer's incoming entries, in global order
 *
 * Every transaction on the bus takes one sequence number from the bus clock
 * (bus_tick()), and every entry it queues carries that number. The broker is
 * single-threaded and a transaction commits without interruption, so entries
 * are appended in sequence order and a plain FIFO is globally ordered: any
 * two queues agree on the relative order of the entries they share
 * transactions with, and causality holds, because a transaction's entries
 * are all queued before the broker answers its caller.
 *
 * An entry is embedded in the object it reports: a Message (DATA), a Handle
 * (its NODE_DESTROY) or a Node (its NODE_RELEASE). Entries of one
 * transaction that sit next to each other are reported with
 * BUS1_MSG_FLAG_CONTINUE; that is computed when the entry is read, so it
 * stays right when a neighbour is withdrawn.
 */

#include <stdbool.h>
#include <stdint.h>
#include "util/list.h"

typedef struct Queue Queue;
typedef struct QueueEntry QueueEntry;

enum {
        QUEUE_ENTRY_DATA = 1,           /* BUS1_MSG_DATA */
        QUEUE_ENTRY_NODE_DESTROY = 2,   /* BUS1_MSG_NODE_DESTROY */
        QUEUE_ENTRY_NODE_RELEASE = 3,   /* BUS1_MSG_NODE_RELEASE */
};

struct QueueEntry {
        List link;              /* in queue->entries */
        uint64_t seq;           /* transaction sequence number */
        /* one word for both: every Handle embeds an entry (its NODE_DESTROY) */
        uint64_t id : 60;       /* per-queue, increasing: names the entry to the client */
        uint64_t type : 4;      /* QUEUE_ENTRY_* */
};

#define QUEUE_ENTRY_INIT(_var, _type) { .link = LIST_INIT((_var).link), .type = (_type) }

/*
 * Hooks for whoever mirrors the queue elsewhere (the broker pushes entries
 * to the client as they are queued): on_push after an entry was appended,
 * on_remove before one is unlinked. Both are optional and must not touch
 * the queue.
 */
typedef struct QueueHooks {
        void (*on_push)(Queue *queue, QueueEntry *entry, void *userdata);
        void (*on_remove)(Queue *queue, QueueEntry *entry, void *userdata);
} QueueHooks;

struct Queue {
        List entries;
        uint64_t n_entries;
        uint64_t n_messages;    /* of those, QUEUE_ENTRY_DATA */
        uint64_t n_ids;         /* last entry id handed out */
        const QueueHooks *hooks;
        void *userdata;
};

#define QUEUE_INIT(_var) { .entries = LIST_INIT((_var).entries) }

void queue_init(Queue *queue);
void queue_deinit(Queue *queue);
void queue_set_hooks(Queue *queue, const QueueHooks *hooks, void *userdata);

static inline void queue_entry_init(QueueEntry *entry, unsigned int type) {
        *entry = (QueueEntry){ .type = type };
        list_init(&entry->link);
}

static inline bool queue_entry_is_queued(const QueueEntry *entry) {
        return list_is_linked(&entry->link);
}

void queue_push(Queue *queue, QueueEntry *entry, uint64_t seq);
void queue_remove(Queue *queue, QueueEntry *entry);
QueueEntry *queue_first(Queue *queue);
bool queue_entry_continues(Queue *queue, QueueEntry *entry);
