/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Queue: one peer's incoming entries, in global order
 *
 * See queue.h for why a FIFO is enough. Invariants: entries are sorted by
 * seq (non-decreasing from front to back), every entry's id is unique within
 * its queue and increases from front to back, n_entries is the length of
 * the list and n_messages the number of its QUEUE_ENTRY_DATA entries (an
 * entry's type does not change while it is queued).
 */

#include <assert.h>
#include "bus/queue.h"

/**
 * queue_init() - initialise an empty queue
 * @queue:      queue
 */
void queue_init(Queue *queue) {
        *queue = (Queue)QUEUE_INIT(*queue);
}

/**
 * queue_set_hooks() - install the mirror hooks
 * @queue:      queue
 * @hooks:      hooks, or NULL
 * @userdata:   passed to the hooks
 */
void queue_set_hooks(Queue *queue, const QueueHooks *hooks, void *userdata) {
        queue->hooks = hooks;
        queue->userdata = userdata;
}

/**
 * queue_deinit() - release an empty queue
 * @queue:      queue, which must have no entries left
 */
void queue_deinit(Queue *queue) {
        assert(list_is_empty(&queue->entries));
        assert(queue->n_entries == 0);
}

/**
 * queue_push() - append an entry
 * @queue:      queue
 * @entry:      entry, not queued anywhere
 * @seq:        sequence number of the transaction queueing it
 *
 * The caller guarantees that @seq is not lower than that of any queued entry,
 * which holds because transactions commit one at a time in clock order.
 */
void queue_push(Queue *queue, QueueEntry *entry, uint64_t seq) {
        QueueEntry *last;

        assert(!queue_entry_is_queued(entry));
        last = list_entry(list_last(&queue->entries), QueueEntry, link);
        assert(!last || last->seq <= seq);
        (void)last;

        entry->seq = seq;
        entry->id = ++queue->n_ids;
        list_link_tail(&queue->entries, &entry->link);
        ++queue->n_entries;
        queue->n_messages += entry->type == QUEUE_ENTRY_DATA;
        if (queue->hooks && queue->hooks->on_push)
                queue->hooks->on_push(queue, entry, queue->userdata);
}

/**
 * queue_remove() - unlink an entry, if it is queued
 * @queue:      queue the entry is on
 * @entry:      entry
 */
void queue_remove(Queue *queue, QueueEntry *entry) {
        if (!queue_entry_is_queued(entry))
                return;

        assert(queue->n_entries > 0);
        if (queue->hooks && queue->hooks->on_remove)
                queue->hooks->on_remove(queue, entry, queue->userdata);
        list_unlink(&entry->link);
        --queue->n_entries;
        queue->n_messages -= entry->type == QUEUE_ENTRY_DATA;
}

/**
 * queue_first() - the front entry
 * @queue:      queue
 *
 * Return: the front entry, or NULL if the queue is empty.
 */
QueueEntry *queue_first(Queue *queue) {
        return list_entry(list_first(&queue->entries), QueueEntry, link);
}

/**
 * queue_entry_continues() - whether the next entry is of the same transaction
 * @queue:      queue the entry is on
 * @entry:      a queued entry
 *
 * Return: true if the entry right behind @entry carries the same sequence
 *         number, which is what BUS1_MSG_FLAG_CONTINUE reports.
 */
bool queue_entry_continues(Queue *queue, QueueEntry *entry) {
        QueueEntry *next;

        next = list_entry(list_next(&queue->entries, &entry->link), QueueEntry, link);
        return next && next->seq == entry->seq;
}
