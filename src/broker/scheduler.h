/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Scheduler: whose turn it is, fair between UIDs
 *
 * The broker serves one request per turn. Connections that may have work
 * (SchedEntry) belong to the group of their UID (SchedGroup); the groups
 * with ready entries take turns in round robin, and within a group its
 * ready entries take turns in round robin too. So a UID with a thousand
 * busy connections gets what a UID with one gets, and a victim waits
 * behind at most one request of every other busy UID.
 *
 * Requests differ in cost (a multicast to 256 destinations against a
 * query), so turns are paid for by deficit round robin: each turn's cost
 * (what the caller measured, in nanoseconds) is charged to its group's
 * credit, and a group whose credit is not positive passes its turn and
 * gains one quantum instead. A UID that makes expensive requests gets as
 * much of the broker's time as one that makes cheap ones, not more.
 *
 * Invariants: a group is on `active` exactly while it has ready entries; an
 * entry is on its group's `ready` list exactly while it is ready; a group
 * lives while it has entries or is `current` (the group whose turn is
 * being served, charged by scheduler_charge()). Credit never exceeds one
 * quantum. The scheduler does no I/O and reads no clock.
 */

#include <stdbool.h>
#include <stdint.h>
#include "util/list.h"
#include "util/rbtree.h"

typedef struct SchedGroup SchedGroup;

typedef struct Scheduler {
        RBTree groups;          /* SchedGroup.node, by uid */
        List active;            /* SchedGroup.active_link: groups with ready entries */
        int64_t quantum;        /* credit a passing group gains, ns */
        SchedGroup *current;    /* the group being served, or NULL */
        uint64_t n_ready;       /* ready entries, all groups */
} Scheduler;

typedef struct SchedEntry {
        SchedGroup *group;      /* NULL: not attached */
        List ready_link;        /* in group->ready while ready */
} SchedEntry;

void scheduler_init(Scheduler *sched, int64_t quantum);
void scheduler_deinit(Scheduler *sched);

int sched_entry_attach(Scheduler *sched, SchedEntry *entry, uint32_t uid);
void sched_entry_detach(Scheduler *sched, SchedEntry *entry);
void sched_entry_ready(Scheduler *sched, SchedEntry *entry);
void sched_entry_idle(Scheduler *sched, SchedEntry *entry);

SchedEntry *scheduler_next(Scheduler *sched);
void scheduler_charge(Scheduler *sched, uint64_t cost);

/* true if some entry is ready */
static inline bool scheduler_busy(const Scheduler *sched) {
        return sched->n_ready > 0;
}

/* true if @entry waits for a turn */
static inline bool sched_entry_is_ready(const SchedEntry *entry) {
        return list_is_linked(&entry->ready_link);
}
