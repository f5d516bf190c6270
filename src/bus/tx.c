/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tx: one message transaction (SEND)
 *
 * See tx.h for stage-then-commit. What staging holds, and unwinding gives
 * back:
 *  - nodes created for new IDs (the peer's staged list, peer_unstage());
 *  - per delivered destination: a Message with its slice in the receiver's
 *    pool, a reference on the FdList (charged to the receiver's fd count),
 *    and the handle references the message will take, reserved in
 *    receiver->n_handle_reserved;
 *  - handles created for receivers that did not hold the nodes yet, chained
 *    through Handle.stage_next; they have no references until the commit.
 *
 * Error classes (docs/model.md §4): EHOSTUNREACH, ESHUTDOWN, EDQUOT and
 * EXFULL concern one receiver and stay per destination with
 * BUS1_SEND_FLAG_CONTINUE; every other error fails the whole call.
 */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "bus1/uapi.h"
#include "bus/bus.h"
#include "bus/handle.h"
#include "bus/message.h"
#include "bus/node.h"
#include "bus/peer.h"
#include "bus/pool.h"
#include "bus/tx.h"
#include "bus/user.h"
#include "util/fdlist.h"

/* up to this many destinations and handles need no allocated arrays */
#define TX_INLINE_MAX 8

typedef struct Tx {
        Peer *sender;
        const TxArgs *args;
        uint64_t seq;
        uint64_t n_bytes;
        uint64_t n_fds;
        Handle **handles;       /* the sender's handles to attach */
        Handle **destinations;  /* the sender's destination handles */
        Message **messages;     /* per destination, NULL if not delivered */
        Handle *created;        /* receiver handles created by staging */
        List staged;            /* nodes created for new IDs */
        /* storage for small sends, so the common one allocates no arrays */
        Handle *handles_inline[TX_INLINE_MAX];
        Handle *destinations_inline[TX_INLINE_MAX];
        Message *messages_inline[TX_INLINE_MAX];
} Tx;

static bool tx_error_is_per_destination(int r) {
        return r == -EHOSTUNREACH || r == -ESHUTDOWN || r == -EDQUOT || r == -EXFULL;
}

static void tx_deinit(Tx *tx) {
        Handle *h;

        if (tx->messages) {
                for (uint64_t i = 0; i < tx->args->n_destinations; ++i) {
                        Message *m = tx->messages[i];
                        uint64_t n_valid = 0;

                        if (!m)
                                continue;
                        for (uint64_t j = 0; j < m->n_handles; ++j)
                                n_valid += !!m->handles[j];
                        m->receiver->n_handle_reserved -= n_valid;
                        user_sub(m->receiver->user, USER_HANDLES, n_valid);
                        /* not committed: holds no handle references */
                        for (uint64_t j = 0; j < m->n_handles; ++j)
                                m->handles[j] = NULL;
                        message_free(m, tx->seq);
                }
        }

        /* receiver handles staging created and nobody committed to */
        while ((h = tx->created)) {
                Peer *holder = h->holder;
                uint64_t n = h->id >> 3;

                tx->created = h->stage_next;
                h->stage_next = NULL;
                handle_free(h);
                /* newest first, so a failed send leaves no gap in the IDs */
                if (n == holder->n_handle_ids)
                        --holder->n_handle_ids;
        }

        peer_unstage(tx->sender, &tx->staged);
        if (tx->messages != tx->messages_inline)
                free(tx->messages);
        if (tx->destinations != tx->destinations_inline)
                free(tx->destinations);
        if (tx->handles != tx->handles_inline)
                free(tx->handles);
}

/*
 * The scalar checks, in the kernel's order (peer.c bus1_peer_ioctl_send(),
 * util.c bus1_import_vecs()): flags, the counts, the destinations against
 * the user's handle limit (not the peer's own, which it may have lowered),
 * then the payload length.
 */
static int tx_check_args(Tx *tx) {
        const TxArgs *a = tx->args;
        Peer *sender = tx->sender;

        if (a->flags & ~(BUS1_SEND_FLAG_CONTINUE | BUS1_SEND_FLAG_SEED))
                return -EINVAL;
        tx->n_fds = a->fds ? a->fds->n_fds : 0;
        if (a->n_vecs > TX_VECS_MAX || tx->n_fds > BUS1_FD_MAX)
                return -EMSGSIZE;
        if (a->n_destinations > sender->user->limits.max[USER_HANDLES])
                return -EINVAL;

        tx->n_bytes = 0;
        for (uint64_t i = 0; i < a->n_vecs; ++i)
                if (__builtin_add_overflow(tx->n_bytes, a->vecs[i].iov_len, &tx->n_bytes))
                        return -EMSGSIZE;
        if (tx->n_bytes > TX_BYTES_MAX)
                return -EMSGSIZE;

        return 0;
}

/* the handles to attach (kernel: bus1_factory_new() imports them first) */
static int tx_resolve_handles(Tx *tx) {
        const TxArgs *a = tx->args;
        int r;

        if (a->n_handles > TX_INLINE_MAX) {
                tx->handles = calloc(a->n_handles, sizeof(*tx->handles));
                if (!tx->handles)
                        return -ENOMEM;
        } else if (a->n_handles) {
                tx->handles = tx->handles_inline;
        }
        for (uint64_t i = 0; i < a->n_handles; ++i) {
                r = peer_resolve(tx->sender, a->handles[i], &tx->handles[i], &tx->staged);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* the destinations, after the handles, the fds and the seed's own checks */
static int tx_resolve_destinations(Tx *tx) {
        const TxArgs *a = tx->args;
        int r;

        if (a->destinations_fault)
                return -EFAULT;
        if (!a->n_destinations)
                return 0;

        if (a->n_destinations > TX_INLINE_MAX) {
                tx->destinations = calloc(a->n_destinations, sizeof(*tx->destinations));
                tx->messages = calloc(a->n_destinations, sizeof(*tx->messages));
                if (!tx->destinations || !tx->messages)
                        return -ENOMEM;
        } else {
                tx->destinations = tx->destinations_inline;
                tx->messages = tx->messages_inline;
        }

        for (uint64_t i = 0; i < a->n_destinations; ++i) {
                Handle *h;

                r = peer_resolve(tx->sender, a->destinations[i], &h, &tx->staged);
                if (r < 0)
                        return r;
                if (h->mark == tx->seq)
                        return -ENOTUNIQ;
                h->mark = tx->seq;
                tx->destinations[i] = h;
        }
        return 0;
}

/* the slice size for a receiver: EMSGSIZE if its pool can never hold it */
static int tx_slice_size(Tx *tx, Peer *receiver, uint64_t *sizep) {
        uint64_t n_secctx = 0, size;

        if ((receiver->peer_flags & BUS1_PEER_FLAG_WANT_SECCTX) && tx->sender->secctx)
                n_secctx = tx->sender->n_secctx;

        size = message_slice_size(tx->n_bytes, tx->args->n_handles, tx->n_fds, n_secctx);
        if (size > receiver->pool.max_size)
                return -EMSGSIZE;
        *sizep = size;
        return 0;
}

static int tx_check_limits(Peer *receiver, uint32_t actor, uint64_t size, uint64_t n_handles,
                           uint64_t n_fds) {
        const PeerLimits *l = &receiver->limits;
        uint64_t charge[_USER_N] = {
                [USER_SLICES] = 1,
                [USER_HANDLES] = n_handles,
                [USER_BYTES] = size,
                [USER_FDS] = n_fds,
        };
        int r;

        /* the user's quota first: EMSGSIZE for what could never fit */
        r = peer_check_charge(receiver, actor, charge);
        if (r < 0)
                return r;

        if (receiver->pool.n_busy + 1 > l->max_slices)
                return -EDQUOT;
        if (receiver->pool.busy_bytes + size > l->max_inflight_bytes)
                return -EDQUOT;
        r = peer_check_handles(receiver, n_handles);
        if (r < 0)
                return r;
        if (n_fds && receiver->n_inflight_fds + n_fds > l->max_inflight_fds)
                return -EDQUOT;
        /* fds the broker holds are its own descriptors: the table is finite */
        if (n_fds && receiver->bus->n_inflight_fds + receiver->bus->n_parked_fds + n_fds >
                             receiver->bus->fd_budget)
                return -EDQUOT;
        return 0;
}

/*
 * Apply what @peer's client released without telling yet (BusDrainFn), at
 * most once per send: a drain may dequeue entries (ACKs), which must not
 * happen under messages and handles this send already staged for @peer.
 * Every staging of a peer drains it first, so its one drain comes before
 * anything is staged for it; what its client writes later is concurrent
 * with this send and is applied at the next drain.
 */
static void tx_drain(Tx *tx, Peer *peer) {
        if (!peer->bus->drain || peer->drain_seq == tx->seq)
                return;
        peer->drain_seq = tx->seq;
        peer->bus->drain(peer->bus, peer);
}

/* before refusing a charge to a user: every peer of it may have released */
static void tx_drain_user(Tx *tx, Peer *receiver) {
        Peer *peer;

        /* once per user and send: a multicast may meet the user many times */
        if (!receiver->bus->drain || receiver->user->drain_seq == tx->seq)
                return;
        receiver->user->drain_seq = tx->seq;
        /* the user's own peers: never the whole bus */
        list_for_each_entry(peer, &receiver->user->peers, user_link)
                tx_drain(tx, peer);
}

/*
 * Stage one message to @receiver carrying the attached handles: reserve its
 * slice, charge its fds, reserve its handle references and find or create
 * the receiver's handles. On failure nothing of it is left.
 */
static int tx_stage_message(Tx *tx, Peer *receiver, Message **messagep) {
        const TxArgs *a = tx->args;
        Message *m;
        uint64_t size, n_valid = 0;
        int r;

        r = tx_slice_size(tx, receiver, &size);
        if (r < 0)
                return r;

        for (uint64_t j = 0; j < a->n_handles; ++j)
                n_valid += !tx->handles[j]->node->destroyed;

        /* releases its client made are placed before this slice is */
        tx_drain(tx, receiver);
        r = tx_check_limits(receiver, tx->sender->user->uid, size, n_valid, tx->n_fds);
        if (r == -EDQUOT) {
                tx_drain_user(tx, receiver);
                r = tx_check_limits(receiver, tx->sender->user->uid, size, n_valid,
                                    tx->n_fds);
        }
        if (r < 0)
                return r;

        r = message_new(&m, receiver, a->n_handles);
        if (r < 0)
                return r;

        r = pool_alloc(&receiver->pool, &m->slice, size);
        if (r < 0) {
                message_free(m, tx->seq);
                return r;
        }
        user_add(receiver->user, USER_SLICES, 1);
        user_add(receiver->user, USER_BYTES, m->slice->size);

        /* a foreign sender holds a share of the receiving user until dequeue */
        m->actor = tx->sender->user->uid;
        if (m->actor != receiver->user->uid) {
                uint64_t share[_USER_N] = {
                        [USER_SLICES] = 1,
                        [USER_HANDLES] = n_valid,
                        [USER_BYTES] = m->slice->size,
                        [USER_FDS] = tx->n_fds,
                };

                r = user_share_add(receiver->user, m->actor, share);
                if (r < 0) {
                        message_free(m, tx->seq);
                        return r;
                }
                memcpy(m->share, share, sizeof(share));
        }

        for (uint64_t j = 0; j < a->n_handles; ++j) {
                Node *node = tx->handles[j]->node;
                Handle *h = handle_find_by_node(receiver, node);

                if (node->destroyed)
                        continue;
                if (!h) {
                        r = handle_new(&h, receiver, node, BUS1_HANDLE_INVALID);
                        if (r < 0) {
                                /* no references taken yet: drop the slots */
                                for (uint64_t k = 0; k < j; ++k)
                                        m->handles[k] = NULL;
                                message_free(m, tx->seq);
                                return r;
                        }
                        h->stage_next = tx->created;
                        tx->created = h;
                }
                m->handles[j] = h;
        }

        receiver->n_handle_reserved += n_valid;
        user_add(receiver->user, USER_HANDLES, n_valid);
        if (tx->n_fds) {
                m->fds = fdlist_ref(a->fds);
                receiver->n_inflight_fds += tx->n_fds;
                receiver->bus->n_inflight_fds += tx->n_fds;
                user_add(receiver->user, USER_FDS, tx->n_fds);
        }
        m->n_bytes = tx->n_bytes;
        if ((receiver->peer_flags & BUS1_PEER_FLAG_WANT_SECCTX) && tx->sender->secctx)
                m->n_secctx = tx->sender->n_secctx;
        m->creds = tx->sender->creds;
        m->sender_id = tx->sender->id;

        *messagep = m;
        return 0;
}

/* fill a staged message's slice and hand it its handle references */
static void tx_commit_message(Tx *tx, Message *m) {
        Peer *receiver = m->receiver;
        uint64_t at, n_valid = 0;
        int r;

        if (tx->args->fill)
                r = pool_fill(&receiver->pool, m->slice, 0, m->n_bytes, tx->args->fill,
                              tx->args->fill_userdata);
        else
                r = pool_write_iovec(&receiver->pool, m->slice, 0, tx->args->vecs,
                                     tx->args->n_vecs);
        assert(r >= 0);

        at = align8(m->n_bytes);
        for (uint64_t j = 0; j < m->n_handles; ++j, at += 8) {
                uint64_t id = BUS1_HANDLE_INVALID;

                if (m->handles[j]) {
                        handle_acquire_inflight(m->handles[j], 1);
                        id = m->handles[j]->id;
                        ++n_valid;
                }
                r = pool_write(&receiver->pool, m->slice, at, &id, sizeof(id));
                assert(r >= 0);
        }
        receiver->n_handle_reserved -= n_valid;
        user_sub(receiver->user, USER_HANDLES, n_valid);

        if (m->n_secctx) {
                at = message_fd_offset(m->n_bytes, m->n_handles) +
                     align8(4 * message_n_fds(m));
                r = pool_write(&receiver->pool, m->slice, at, tx->sender->secctx,
                               m->n_secctx);
                assert(r >= 0);
                m->secctx_at = at;
        }
        (void)r;
}

/* tell the bus's observer about one destination (@m: the message queued there, if any) */
static void tx_observe(Tx *tx, unsigned int type, int error, Peer *receiver, Node *node,
                       const Message *m) {
        bus_observe(tx->sender->bus, &(BusEvent){
                .type = type,
                .error = error,
                .seq = tx->seq,
                .peer = bus_event_peer(tx->sender),
                .target = bus_event_peer(receiver),
                .message = m ? m->id : 0,
                .node = node->id,
                .n_bytes = tx->n_bytes,
                .n_handles = tx->args->n_handles,
                .n_fds = tx->n_fds,
        });
}

static int tx_send_seed(Tx *tx) {
        Peer *sender = tx->sender;
        Message *m;
        int r;

        r = tx_stage_message(tx, sender, &m);
        if (r < 0)
                return r;

        /* a peer's own handles are what its seed carries */
        assert(!tx->created);   /* the sender holds every handle it attaches */
        tx_commit_message(tx, m);
        message_free(sender->seed, tx->seq);
        sender->seed = m;
        return 0;
}

/**
 * peer_send() - SEND: deliver one message to any number of nodes
 * @sender:     sending peer
 * @args:       the validated command
 *
 * Without BUS1_SEND_FLAG_CONTINUE, every destination gets the message or
 * none does, and the first error is returned. With it, receiver-side
 * failures are reported in @args->errors (if set) and the rest is
 * delivered. Several destinations owned by one peer give that peer one
 * message per node, next to each other in its queue. With
 * BUS1_SEND_FLAG_SEED the message replaces the sender's seed.
 *
 * Errors are found in the kernel's order: flags, counts, the destination
 * count, the payload length, the handles, the fds (@args->fd_error), the
 * seed's own rules, then the destinations one by one.
 *
 * Return: 0 on success, or
 *         -ESHUTDOWN sender disconnected, or (per destination) owner gone,
 *         -EINVAL bad flags, SEED with destinations or CONTINUE, or more
 *                 destinations than the user's handle limit,
 *         -EMSGSIZE more than TX_VECS_MAX iovecs, BUS1_FD_MAX fds, a payload
 *                 over TX_BYTES_MAX, or a slice larger than a receiver's pool,
 *         -EFAULT, -EBADF, -EOPNOTSUPP as @args says of its arrays and fds,
 *         -ENXIO unknown handle ID,
 *         -ENOTUNIQ the same destination twice,
 *         -EHOSTUNREACH a destination node was destroyed,
 *         -EDQUOT a receiver's limit, -EXFULL a receiver's pool is full,
 *         -ENOMEM out of memory.
 */
int peer_send(Peer *sender, const TxArgs *args) {
        Tx tx = { .sender = sender, .args = args };
        int r;

        list_init(&tx.staged);
        if (sender->disconnected)
                return -ESHUTDOWN;

        r = tx_check_args(&tx);
        if (r < 0)
                return r;

        /* one clock tick names the transaction and marks its handles */
        tx.seq = bus_tick(sender->bus);

        r = tx_resolve_handles(&tx);
        if (r < 0)
                goto error;
        r = args->fd_error;
        if (r < 0)
                goto error;
        if ((args->flags & BUS1_SEND_FLAG_SEED) &&
            (args->n_destinations || args->destinations_fault ||
             (args->flags & BUS1_SEND_FLAG_CONTINUE))) {
                r = -EINVAL;
                goto error;
        }
        r = tx_resolve_destinations(&tx);
        if (r < 0)
                goto error;

        if (args->flags & BUS1_SEND_FLAG_SEED) {
                r = tx_send_seed(&tx);
                if (r < 0)
                        goto error;
                goto commit;
        }

        for (uint64_t i = 0; i < args->n_destinations; ++i) {
                Node *node = tx.destinations[i]->node;

                if (!node->owner || node->owner->disconnected)
                        r = -ESHUTDOWN;
                else if (node->destroyed)
                        r = -EHOSTUNREACH;
                else
                        r = tx_stage_message(&tx, node->owner, &tx.messages[i]);
                if (r == -EDQUOT || r == -EXFULL)
                        tx_observe(&tx, BUS_EVENT_REFUSAL, -r, node->owner, node, NULL);

                if (r < 0 && !((args->flags & BUS1_SEND_FLAG_CONTINUE) &&
                               tx_error_is_per_destination(r)))
                        goto error;
                if (args->errors)
                        args->errors[i] = r < 0 ? (uint64_t)-r : 0;
        }

        /* commit: from here on nothing fails */
        for (uint64_t i = 0; i < args->n_destinations; ++i) {
                Message *m = tx.messages[i];
                Node *node = tx.destinations[i]->node;

                if (!m)
                        continue;
                tx_commit_message(&tx, m);
                m->node = node_ref(node);
                list_link_tail(&node->messages, &m->node_link);
                m->destination = node->owner_handle->id;
                /* one ID per queued message: a monitor pairs its SEND and DELIVER */
                m->id = ++sender->bus->n_message_ids;
                queue_push(&m->receiver->queue, &m->entry, tx.seq);
                tx_observe(&tx, BUS_EVENT_SEND, 0, m->receiver, node, m);
                tx.messages[i] = NULL;
        }

        /* created receiver handles now hold references */
        while (tx.created) {
                Handle *h = tx.created;

                tx.created = h->stage_next;
                h->stage_next = NULL;
        }

commit:
        peer_commit_staged(&tx.staged);
        r = 0;
error:
        tx_deinit(&tx);
        return r;
}
