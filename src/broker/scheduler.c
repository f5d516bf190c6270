/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Scheduler: whose turn it is, fair between UIDs (see scheduler.h)
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include "broker/scheduler.h"

struct SchedGroup {
        RBNode node;            /* in Scheduler.groups */
        uint32_t uid;
        uint64_t n_entries;     /* attached entries */
        List ready;             /* SchedEntry.ready_link, in turn order */
        List active_link;       /* in Scheduler.active while ready is not empty */
        int64_t credit;         /* ns; a turn is served only while positive */
};

static int sched_group_compare(const RBNode *n, const void *key) {
        const SchedGroup *group = container_of(n, SchedGroup, node);
        uint32_t uid = *(const uint32_t *)key;

        if (uid < group->uid)
                return -1;
        return uid > group->uid;
}

/* free @group once nothing refers to it */
static void sched_group_put(Scheduler *sched, SchedGroup *group) {
        if (group->n_entries || sched->current == group)
                return;
        assert(list_is_empty(&group->ready));
        rbtree_remove(&sched->groups, &group->node);
        free(group);
}

/**
 * scheduler_init() - an empty scheduler
 * @sched:      scheduler
 * @quantum:    credit a group gains each time it passes its turn (ns, > 0):
 *              roughly the broker time a UID gets per round when others wait
 */
void scheduler_init(Scheduler *sched, int64_t quantum) {
        *sched = (Scheduler){ .quantum = quantum > 0 ? quantum : 1 };
        rbtree_init(&sched->groups);
        list_init(&sched->active);
}

/**
 * scheduler_deinit() - release a scheduler whose entries are all detached
 * @sched:      scheduler
 */
void scheduler_deinit(Scheduler *sched) {
        if (sched->current) {
                SchedGroup *group = sched->current;

                sched->current = NULL;
                sched_group_put(sched, group);
        }
        assert(rbtree_is_empty(&sched->groups));
}

/**
 * sched_entry_attach() - make an entry one of a UID's
 * @sched:      scheduler
 * @entry:      entry, not attached
 * @uid:        the UID whose turns it takes
 *
 * The entry starts idle. Return: 0, or -ENOMEM.
 */
int sched_entry_attach(Scheduler *sched, SchedEntry *entry, uint32_t uid) {
        RBNode **slot, *parent;
        SchedGroup *group;

        slot = rbtree_find_slot(&sched->groups, sched_group_compare, &uid, &parent);
        if (slot) {
                group = calloc(1, sizeof(*group));
                if (!group)
                        return -ENOMEM;
                group->uid = uid;
                group->credit = sched->quantum;
                list_init(&group->ready);
                list_init(&group->active_link);
                rbnode_init(&group->node);
                rbtree_add(&sched->groups, parent, slot, &group->node);
        } else {
                group = container_of(parent, SchedGroup, node);
        }
        ++group->n_entries;
        entry->group = group;
        list_init(&entry->ready_link);
        return 0;
}

/**
 * sched_entry_detach() - forget an entry (it may be the one being served)
 * @sched:      scheduler
 * @entry:      entry, attached or not (then nothing happens)
 */
void sched_entry_detach(Scheduler *sched, SchedEntry *entry) {
        SchedGroup *group = entry->group;

        if (!group)
                return;
        sched_entry_idle(sched, entry);
        entry->group = NULL;
        --group->n_entries;
        sched_group_put(sched, group);
}

/**
 * sched_entry_ready() - an entry has work: it waits for a turn
 * @sched:      scheduler
 * @entry:      attached entry; if it is ready already, nothing changes
 */
void sched_entry_ready(Scheduler *sched, SchedEntry *entry) {
        SchedGroup *group = entry->group;

        if (!group || list_is_linked(&entry->ready_link))
                return;
        if (list_is_empty(&group->ready))
                list_link_tail(&sched->active, &group->active_link);
        list_link_tail(&group->ready, &entry->ready_link);
        ++sched->n_ready;
}

/**
 * sched_entry_idle() - an entry has no work: it takes no more turns
 * @sched:      scheduler
 * @entry:      attached entry, ready or not
 */
void sched_entry_idle(Scheduler *sched, SchedEntry *entry) {
        SchedGroup *group = entry->group;

        if (!group || !list_is_linked(&entry->ready_link))
                return;
        list_unlink(&entry->ready_link);
        --sched->n_ready;
        if (list_is_empty(&group->ready))
                list_unlink(&group->active_link);
}

/*
 * Every active group is in debt: give each the rounds of quanta the least
 * indebted needs, at once, instead of passing round after round.
 */
static void scheduler_catch_up(Scheduler *sched) {
        SchedGroup *group;
        int64_t best = INT64_MIN, rounds;

        list_for_each_entry(group, &sched->active, active_link)
                if (group->credit > best)
                        best = group->credit;
        if (best > 0)
                return;
        rounds = -best / sched->quantum;
        if (rounds <= 0)
                return;
        list_for_each_entry(group, &sched->active, active_link)
                group->credit += rounds * sched->quantum;
}

/**
 * scheduler_next() - the entry whose turn it is
 * @sched:      scheduler
 *
 * The entry stays ready, behind the other ready entries of its group, and
 * its group behind the other active groups. The caller serves one request
 * of it, makes it idle if it has no more work, and then calls
 * scheduler_charge() with what the turn cost (also if the entry was
 * detached meanwhile).
 *
 * Return: the entry, or NULL if none is ready.
 */
SchedEntry *scheduler_next(Scheduler *sched) {
        SchedGroup *group;
        SchedEntry *entry;
        uint64_t passes = 0;

        assert(!sched->current);
        while ((group = list_entry(list_first(&sched->active), SchedGroup, active_link))) {
                list_unlink(&group->active_link);
                list_link_tail(&sched->active, &group->active_link);
                if (group->credit > 0)
                        break;
                /* pass: a quantum for the next round */
                group->credit += sched->quantum;
                if (++passes % (sched->n_ready + 1) == 0)
                        scheduler_catch_up(sched);
        }
        if (!group)
                return NULL;

        entry = list_entry(list_first(&group->ready), SchedEntry, ready_link);
        list_unlink(&entry->ready_link);
        list_link_tail(&group->ready, &entry->ready_link);
        sched->current = group;
        return entry;
}

/**
 * scheduler_charge() - pay for the turn scheduler_next() gave
 * @sched:      scheduler
 * @cost:       what it cost (ns)
 */
void scheduler_charge(Scheduler *sched, uint64_t cost) {
        SchedGroup *group = sched->current;

        if (!group)
                return;
        sched->current = NULL;
        /* one turn cannot cost more than a few seconds of debt */
        group->credit -= cost < (uint64_t)INT32_MAX * 4 ? (int64_t)cost : (int64_t)INT32_MAX * 4;
        sched_group_put(sched, group);
}
