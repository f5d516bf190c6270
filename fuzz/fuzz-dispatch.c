/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz dispatch: a libFuzzer target over the broker's request dispatcher
 *
 * Each input builds a real Broker (broker_new()) with FUZZ_CLIENTS
 * connections over socketpair(AF_UNIX, SOCK_SEQPACKET): connection_new()
 * gets one end, this file plays the client on the other. The input is a
 * sequence of ops (fuzz-dispatch.h): pick a client and a record type, fill
 * the fields from input bytes with IDs from a tiny space (0x100-0x103, 0,
 * the IDs and offsets the client actually received, garbage), encode with
 * proto_encode_*() or send raw bytes, attach fds (eventfds, pipes, memfds,
 * another client's end for HANDLE_TRANSFER, AF_UNIX sockets that must be
 * refused), write it, run the event loop without blocking until it is
 * idle, and read and check everything the broker wrote back. IDs and
 * clients come from so few values that random sequences reach the
 * reference counting, destroy and release paths. A client also writes into
 * its release ring (FUZZ_OP_RING): mostly what libbus1-client would (ACKs
 * of pushed entries, releases of offsets it saw, while the ring has room),
 * sometimes what it never would (any tag, an unknown offset, ACK 0, a tail
 * moved ahead or back). The broker applies the ring at its own times (the
 * client's next request, a send to it, an EDQUOT of its user); a client
 * that broke its ring loses its connection, which here reads as the broker
 * closing it, like after any other protocol violation. A real client writes
 * its ring while the broker works, so values can also be written late:
 * from inside the model's drain hook, right before a chosen drain of that
 * peer within some request (FUZZ_RING_LATE).
 *
 * Properties checked (abort otherwise):
 *  - bus_validate() holds after every op;
 *  - every record the broker writes decodes with the client's decoder;
 *    replies answer the pending requests in order, with an errno that
 *    docs/protocol.md section 10 lists for that request; a RECV reply has
 *    fds only with INSTALL_FDS and without PEEK, and then all of them; a
 *    SEND reply has n_destinations errors exactly when asked for;
 *  - ENTRY IDs grow within a stream (the decoder checks it carries no fds);
 *    RETRACT and RESYNC only arrive while a request of the client is
 *    unanswered, and RETRACT names an entry that was pushed;
 *  - a slice an ENTRY or RECV reply names lies within the pool file; the
 *    slice of a RECV reply holds the payload the sender wrote (every
 *    payload carries a tag and a pattern derived from it); the pool fd
 *    cannot be mapped writable; unless the client wrote to its release
 *    ring after that RECV, which may free the slice at any time;
 *  - the event loop goes idle;
 *  - after broker_free() the process holds exactly the fds it held before.
 *
 * Everything depends on the input only, so a crash input reproduces.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>
#include "broker/broker.h"
#include "bus/bus.h"
#include "broker/connection.h"
#include "bus/peer.h"
#include "bus/validate.h"
#include "fuzz/fuzz-dispatch.h"
#include "fuzz/fuzz.h"
#include "proto/proto.h"
#include "util/log.h"
#include "util/macro.h"

#define FUZZ_OPS_MAX            256
#define FUZZ_IDS_MAX            16
#define FUZZ_PENDING_MAX        1024
#define FUZZ_RECONNECTS_MAX     8
#define FUZZ_SETTLE_MAX         1000    /* event loop rounds before "it spins" */
#define FUZZ_SMALL_SNDBUF       4096
#define FUZZ_FDS_SEEN           4096    /* fds tracked by number for leak reports */

/* a request waiting for its reply */
typedef struct Pending {
        uint64_t cookie;
        uint16_t type;
        uint64_t flags;         /* RECV: its flags */
        uint64_t n_errors;      /* SEND: the errors the reply must carry */
        int target;             /* HANDLE_TRANSFER: the client that gets the ID */
        bool carried;           /* FDS carriers went ahead of it */
} Pending;

typedef struct Client {
        int fd;                 /* our end; -1 when closed */
        unsigned int index;
        bool lazy;              /* drained only by FUZZ_OP_DRAIN */
        bool synced;            /* false after raw bytes: replies are not matched */
        Pending pending[FUZZ_PENDING_MAX];
        size_t pending_head;
        size_t n_pending;
        uint64_t seq;           /* cookies and payload tags: requests sent */

        uint64_t ids[FUZZ_IDS_MAX];
        size_t n_ids;
        uint64_t offsets[FUZZ_IDS_MAX];
        size_t n_offsets;

        uint64_t stream_entry;  /* the highest ENTRY id of the current stream */
        uint64_t max_entry;     /* the highest ENTRY id ever seen */

        int pool_fd;
        const uint8_t *pool;
        uint64_t pool_size;
        uint8_t *ring;          /* the release ring, mapped writable */
        uint64_t ring_tail;     /* values written to it (the tail as this side knows it) */
        uint64_t ring_seq;      /* seq when the ring was last written */
        uint64_t peer_id;       /* from the HELLO reply */
        unsigned int late_at;   /* FUZZ_RING_LATE: write before this drain, 0 none */
        uint64_t late[2];       /* the values to write then */
        size_t n_late;

        int carried[PROTO_RECORD_FDS_MAX];      /* from PUSH_FDS, for the next record */
        size_t n_carried;
        size_t n_sent_carried;  /* fds we put on FDS carriers since the last record */

        bool fd_install;        /* the last RECV handed over fds */
        uint64_t fd_offset;
        uint32_t fd_count;
        int fd_numbers[BUS1_FD_MAX];
} Client;

typedef struct Fuzz {
        Broker *broker;
        Client clients[FUZZ_CLIENTS];
        uint8_t config;
        unsigned int n_reconnects;
        unsigned int batch;     /* ops still to write before the broker runs */
        const uint8_t *p;       /* the input not read yet */
        size_t n;
} Fuzz;

static bool fuzz_tracing;       /* FUZZ_TRACE=1: print every record, for reproductions */
static uint8_t fuzz_rx[PROTO_RECORD_MAX + 8];
static uint8_t fuzz_tx[PROTO_RECORD_MAX + 16];    /* room for one record too long */
static uint8_t fuzz_payload[PROTO_RECORD_MAX];

static void fuzz_trace(const char *fmt, ...) __attribute__((__format__(__printf__, 1, 2)));

static void fuzz_trace(const char *fmt, ...) {
        va_list ap;

        if (!fuzz_tracing)
                return;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
}

/* input */

static uint8_t fuzz_u8(Fuzz *f) {
        if (!f->n)
                return 0;
        --f->n;
        return *f->p++;
}

static uint64_t fuzz_u64(Fuzz *f) {
        uint64_t v = 0;

        for (unsigned int i = 0; i < 8; ++i)
                v |= (uint64_t)fuzz_u8(f) << (8 * i);
        return v;
}

static void fuzz_remember(uint64_t *list, size_t *n, uint64_t v) {
        for (size_t i = 0; i < *n && i < FUZZ_IDS_MAX; ++i)
                if (list[i] == v)
                        return;
        list[*n % FUZZ_IDS_MAX] = v;
        ++*n;
}

static uint64_t fuzz_pick(Fuzz *f, const uint64_t *fixed, const uint64_t *list, size_t n) {
        uint8_t b = fuzz_u8(f);

        if (b < FUZZ_ID_FIXED)
                return fixed[b];
        if (b <= FUZZ_ID_RECEIVED_LAST)
                return n ? list[(b - FUZZ_ID_FIXED) % (n < FUZZ_IDS_MAX ? n : FUZZ_IDS_MAX)]
                         : fixed[b % FUZZ_ID_FIXED];
        if (b <= FUZZ_ID_SMALL_LAST)
                return (uint64_t)(b - FUZZ_ID_RECEIVED_LAST - 1) << 3 | (b & 7);
        return fuzz_u64(f);
}

static uint64_t fuzz_pick_id(Fuzz *f, Client *c) {
        static const uint64_t fixed[FUZZ_ID_FIXED] = { 0x100, 0x101, 0x102, 0x103, 0 };

        return fuzz_pick(f, fixed, c->ids, c->n_ids);
}

static uint64_t fuzz_pick_offset(Fuzz *f, Client *c) {
        static const uint64_t fixed[FUZZ_ID_FIXED] = { 0, 8, BUS1_OFFSET_INVALID, 16, 4096 };

        return fuzz_pick(f, fixed, c->offsets, c->n_offsets);
}

/* fds */

/* the open fds, as a bitmap of the first FUZZ_FDS_SEEN; returns their number */
static unsigned int fuzz_list_fds(uint64_t *seen) {
        unsigned int n = 0;
        struct dirent *d;
        DIR *dir;
        int self;

        memset(seen, 0, FUZZ_FDS_SEEN / 8);
        dir = opendir("/proc/self/fd");
        if (!dir)
                fuzz_fail("opendir /proc/self/fd: %m");
        self = dirfd(dir);
        while ((d = readdir(dir))) {
                int fd = atoi(d->d_name);

                if (d->d_name[0] == '.' || fd == self)
                        continue;
                ++n;
                if (fd < FUZZ_FDS_SEEN)
                        seen[fd / 64] |= (uint64_t)1 << (fd % 64);
        }
        closedir(dir);
        return n;
}

/* fail, naming what each fd open now but not in @before is */
static void fuzz_check_fds(const uint64_t *before, unsigned int n_before) {
        uint64_t after[FUZZ_FDS_SEEN / 64];
        unsigned int n_after;

        n_after = fuzz_list_fds(after);
        if (n_after == n_before && !memcmp(before, after, sizeof(after)))
                return;
        for (int fd = 0; fd < FUZZ_FDS_SEEN; ++fd) {
                char path[64], target[256] = "?";
                ssize_t l;

                if (!(after[fd / 64] & ((uint64_t)1 << (fd % 64))) ||
                    (before[fd / 64] & ((uint64_t)1 << (fd % 64))))
                        continue;
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                l = readlink(path, target, sizeof(target) - 1);
                target[l > 0 ? l : 1] = '\0';
                fprintf(stderr, "fuzz: leaked fd %d -> %s\n", fd, target);
        }
        fuzz_fail("fd leak: %u fds before, %u after", n_before, n_after);
}

static void fuzz_close_all(int *fds, size_t n) {
        for (size_t i = 0; i < n; ++i)
                fds[i] = safe_close(fds[i]);
}

/* a payload: a tag, then bytes that follow from it, so a receiver can check them */
static uint8_t fuzz_pattern(uint64_t tag, size_t i) {
        return (uint8_t)(tag * 131 + i * 7 + (i >> 8));
}

static void fuzz_fill_payload(uint8_t *p, size_t n, uint64_t tag) {
        uint64_t le = htole64(tag);

        if (n < sizeof(le))
                tag = 0;
        else
                memcpy(p, &le, sizeof(le));
        for (size_t i = n < sizeof(le) ? 0 : sizeof(le); i < n; ++i)
                p[i] = fuzz_pattern(tag, i);
}

static bool fuzz_payload_ok(const uint8_t *p, size_t n) {
        uint64_t tag = 0;

        if (n >= sizeof(tag)) {
                memcpy(&tag, p, sizeof(tag));
                tag = le64toh(tag);
        }
        for (size_t i = n < sizeof(tag) ? 0 : sizeof(tag); i < n; ++i)
                if (p[i] != fuzz_pattern(tag, i))
                        return false;
        return true;
}

static int fuzz_memfd(Fuzz *f, uint64_t offset, size_t n, bool seal, uint64_t tag) {
        int fd;

        fd = memfd_create("fuzz-payload", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -1;
        fuzz_fill_payload(fuzz_payload, n, tag);
        if (pwrite(fd, fuzz_payload, n, (off_t)offset) != (ssize_t)n ||
            (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0))
                return safe_close(fd);
        return fd;
}

/* a new fd of @kind for a message, or -1; @c's peers give FUZZ_FD_CLIENT */
static int fuzz_make_fd(Fuzz *f, Client *c, unsigned int kind) {
        int p[2], fd = -1;

        switch (kind % _FUZZ_FD_MAX) {
        case FUZZ_FD_EVENTFD:
                fd = eventfd(0, EFD_CLOEXEC);
                break;
        case FUZZ_FD_UNIX:
                fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
                break;
        case FUZZ_FD_OPATH:
                fd = open("/", O_PATH | O_CLOEXEC);
                break;
        case FUZZ_FD_PIPE:
                if (pipe2(p, O_CLOEXEC) == 0) {
                        safe_close(p[1]);
                        fd = p[0];
                }
                break;
        case FUZZ_FD_MEMFD:
                fd = fuzz_memfd(f, 0, 8, true, 0);
                break;
        case FUZZ_FD_CLIENT:
                fd = f->clients[(c->index + 1) % FUZZ_CLIENTS].fd;
                fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
                break;
        }
        return fd;
}

/* the client's side of the connection */

static void fuzz_unmap_pool(Client *c) {
        if (c->pool)
                munmap((void *)c->pool, (size_t)c->pool_size);
        c->pool = NULL;
        c->pool_size = 0;
        c->pool_fd = safe_close(c->pool_fd);
        if (c->ring)
                munmap(c->ring, PROTO_RING_SIZE);
        c->ring = NULL;
        c->ring_tail = 0;
        c->late_at = 0;
}

static void fuzz_client_reset(Client *c) {
        unsigned int index = c->index;
        bool lazy = c->lazy;

        fuzz_unmap_pool(c);
        fuzz_close_all(c->carried, c->n_carried);
        safe_close(c->fd);
        memset(c, 0, sizeof(*c));
        c->index = index;
        c->lazy = lazy;
        c->fd = -1;
        c->pool_fd = -1;
        c->synced = true;
}

static void fuzz_pending_push(Client *c, const Pending *p) {
        if (c->n_pending >= FUZZ_PENDING_MAX) {
                c->synced = false;
                return;
        }
        c->pending[(c->pending_head + c->n_pending++) % FUZZ_PENDING_MAX] = *p;
}

static uint64_t fuzz_cookie(Client *c, uint16_t type) {
        return ++c->seq << 16 | type;
}

/* write one packet; false if it could not be written */
static bool fuzz_write(Fuzz *f, Client *c, const void *buf, size_t len, const int *fds,
                       size_t n_fds);

static void fuzz_settle(Fuzz *f);

/* what each request may be answered with (docs/protocol.md sections 9 and 10) */
static bool fuzz_errno_ok(uint16_t type, uint32_t e) {
        static const struct {
                uint16_t type;
                int errors[12];
        } table[] = {
                /* ESHUTDOWN after PEER_DISCONNECT, EMFILE/ENFILE: not in section 10 */
                { PROTO_TYPE_HELLO, { EINVAL, EPROTONOSUPPORT, ESHUTDOWN, EMFILE, ENFILE,
                                      EBUSY } },
                { PROTO_TYPE_PEER_DISCONNECT, { EINVAL, ESHUTDOWN } },
                { PROTO_TYPE_PEER_QUERY, { EINVAL, ESHUTDOWN } },
                { PROTO_TYPE_PEER_RESET, { EINVAL, ESHUTDOWN } },
                { PROTO_TYPE_HANDLE_RELEASE, { ENXIO, EBUSY, ESHUTDOWN } },
                { PROTO_TYPE_HANDLE_TRANSFER, { EBADF, EOPNOTSUPP, ENXIO, ESHUTDOWN, EINVAL,
                                                EDQUOT } },
                /* EDQUOT: a new ID creates the node first (peer.c; not in section 10) */
                { PROTO_TYPE_NODES_DESTROY, { ENXIO, EREMOTE, ESTALE, ENOTUNIQ, EINVAL,
                                              ESHUTDOWN, EDQUOT, EFAULT } },
                { PROTO_TYPE_SLICE_RELEASE, { ENXIO, ESHUTDOWN } },
                { PROTO_TYPE_SLICE_FDS, { EINVAL, ESHUTDOWN } },
                { PROTO_TYPE_SEND, { EINVAL, ENXIO, ENOTUNIQ, EBADF, EOPNOTSUPP, EFAULT,
                                     EMSGSIZE, EHOSTUNREACH, ESHUTDOWN, EDQUOT, EXFULL } },
                { PROTO_TYPE_RECV, { EAGAIN, ERANGE, ESHUTDOWN, EINVAL } },
        };

        if (e == 0 || e == ENOMEM)
                return true;
        for (size_t i = 0; i < ARRAY_SIZE(table); ++i) {
                if (table[i].type != type)
                        continue;
                for (size_t j = 0; j < ARRAY_SIZE(table[i].errors) && table[i].errors[j]; ++j)
                        if ((uint32_t)table[i].errors[j] == e)
                                return true;
                return false;
        }
        /* an undefined request type */
        return e == ENOTTY;
}

/*
 * A DATA entry the client was told about: its slice lies in the pool file.
 * With @contents it also holds the payload its sender wrote, and the handle
 * IDs in it are the client's. That holds for a RECV reply the client reads
 * before it sends another request: only its own requests can free a slice
 * it received (SLICE_RELEASE, a reset) or peeked at (a new seed, a flush,
 * the release of a destroyed node).
 */
static void fuzz_check_slice(Client *c, const ProtoEntry *e, bool contents) {
        const ProtoMessage *m = &e->msg;
        uint64_t size, handles_at;
        struct stat st;

        c->offsets[c->n_offsets++ % FUZZ_IDS_MAX] = m->offset;
        if (!c->pool)
                return;

        handles_at = align8(m->n_bytes);
        size = handles_at + 8 * m->n_handles + align8(4 * m->n_fds) + m->n_secctx;
        if (size < 8)
                size = 8;
        if (m->offset > c->pool_size || size > c->pool_size - m->offset)
                fuzz_fail("client %u: slice %llu+%llu beyond the pool (%llu)", c->index,
                          (unsigned long long)m->offset, (unsigned long long)size,
                          (unsigned long long)c->pool_size);
        if (fstat(c->pool_fd, &st) < 0)
                fuzz_fail("fstat pool: %m");
        if (m->offset + size > (uint64_t)st.st_size)
                fuzz_fail("client %u: slice %llu+%llu beyond the pool file (%lld)", c->index,
                          (unsigned long long)m->offset, (unsigned long long)size,
                          (long long)st.st_size);
        if (!contents)
                return;
        if (!fuzz_payload_ok(c->pool + m->offset, (size_t)m->n_bytes))
                fuzz_fail("client %u: slice %llu does not hold the payload sent", c->index,
                          (unsigned long long)m->offset);
        for (uint64_t i = 0; i < m->n_handles; ++i)
                fuzz_remember(c->ids, &c->n_ids,
                              proto_u64_at(c->pool + m->offset + handles_at, (size_t)i));
}

static void fuzz_on_hello(Client *c, const ProtoReplyHello *reply, int *fds) {
        void *p;

        fuzz_unmap_pool(c);
        c->pool_fd = fds[0];
        fds[0] = -1;
        c->pool_size = reply->pool_size;
        if (reply->pool_size > SIZE_MAX)
                fuzz_fail("pool size %llu", (unsigned long long)reply->pool_size);
        p = mmap(NULL, (size_t)reply->pool_size, PROT_READ, MAP_SHARED, c->pool_fd, 0);
        if (p == MAP_FAILED)
                fuzz_fail("client %u: cannot map the pool: %m", c->index);
        c->pool = p;
        p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, c->pool_fd, 0);
        if (p != MAP_FAILED)
                fuzz_fail("client %u: the pool maps writable", c->index);
        p = mmap(NULL, PROTO_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
        if (p == MAP_FAILED)
                fuzz_fail("client %u: cannot map the release ring: %m", c->index);
        c->ring = p;
        c->peer_id = reply->peer_id;
        /* a fresh stream: everything queued is pushed again */
        c->stream_entry = 0;
        c->fd_install = false;
}

static void fuzz_on_reply(Fuzz *f, Client *c, const uint8_t *buf, size_t len, int *fds,
                          size_t n_fds) {
        Pending p = { .type = 0 };
        uint32_t error;
        int r;

        /* unmatched, a 48-byte reply with two fds can only answer a HELLO */
        if (!c->synced && len == PROTO_SIZE_REPLY_HELLO && n_fds == 2)
                p.type = PROTO_TYPE_HELLO;

        if (c->synced) {
                if (!c->n_pending)
                        fuzz_fail("client %u: a REPLY nobody asked for", c->index);
                p = c->pending[c->pending_head];
                c->pending_head = (c->pending_head + 1) % FUZZ_PENDING_MAX;
                --c->n_pending;
                if (proto_u64_at(buf, 1) != p.cookie)
                        fuzz_fail("client %u: REPLY cookie %llx, expected %llx", c->index,
                                  (unsigned long long)proto_u64_at(buf, 1),
                                  (unsigned long long)p.cookie);
        }

        switch (p.type) {
        case PROTO_TYPE_HELLO: {
                ProtoReplyHello reply;

                r = proto_decode_reply_hello(&reply, buf, len, n_fds);
                error = reply.error;
                if (r == 0 && !error)
                        fuzz_on_hello(c, &reply, fds);
                break;
        }
        case PROTO_TYPE_PEER_QUERY: {
                ProtoReplyPeerQuery reply;

                r = proto_decode_reply_peer_query(&reply, buf, len, n_fds);
                error = reply.error;
                break;
        }
        case PROTO_TYPE_HANDLE_TRANSFER: {
                ProtoReplyHandleTransfer reply;

                r = proto_decode_reply_handle_transfer(&reply, buf, len, n_fds);
                error = reply.error;
                if (r == 0 && !error && reply.dst_handle != BUS1_HANDLE_INVALID) {
                        Client *t = &f->clients[p.target];

                        fuzz_remember(t->ids, &t->n_ids, reply.dst_handle);
                }
                break;
        }
        case PROTO_TYPE_SEND: {
                ProtoReplySend reply;

                r = proto_decode_reply_send(&reply, buf, len, n_fds);
                error = reply.error;
                if (r == 0 && !error && reply.n_errors != p.n_errors)
                        fuzz_fail("client %u: SEND reply with %llu errors, expected %llu",
                                  c->index, (unsigned long long)reply.n_errors,
                                  (unsigned long long)p.n_errors);
                break;
        }
        case PROTO_TYPE_RECV: {
                ProtoReplyRecv reply;

                r = proto_decode_reply_recv(&reply, buf, len, n_fds);
                error = reply.error;
                if (r < 0 || error)
                        break;
                if (reply.entry.msg.n_fds && !(p.flags & BUS1_RECV_FLAG_INSTALL_FDS))
                        fuzz_fail("client %u: RECV without INSTALL_FDS reports %llu fds",
                                  c->index, (unsigned long long)reply.entry.msg.n_fds);
                /* a PEEK reports the fds but hands none over; a dequeue all of them */
                if (n_fds != ((p.flags & BUS1_RECV_FLAG_PEEK) ? 0 : reply.entry.msg.n_fds))
                        fuzz_fail("client %u: RECV reply with %zu fds for %llu", c->index,
                                  n_fds, (unsigned long long)reply.entry.msg.n_fds);
                /*
                 * A ring value written after the RECV may have released the
                 * slice (applied at a send to this client), so the slice
                 * may hold another message by now.
                 */
                if (reply.entry.msg.type == BUS1_MSG_DATA)
                        fuzz_check_slice(c, &reply.entry,
                                         c->synced && p.cookie >> 16 == c->seq &&
                                         c->ring_seq < c->seq);
                else
                        fuzz_remember(c->ids, &c->n_ids, reply.entry.msg.destination);
                c->fd_install = n_fds > 0;
                c->fd_offset = reply.entry.msg.offset;
                c->fd_count = (uint32_t)n_fds;
                for (size_t i = 0; i < n_fds && i < BUS1_FD_MAX; ++i)
                        c->fd_numbers[i] = fds[i];
                break;
        }
        default: {
                ProtoReply reply;

                r = proto_decode_reply(&reply, buf, len, n_fds);
                error = reply.error;
                break;
        }
        }

        if (r < 0 && c->synced)
                fuzz_fail("client %u: the reply to type 0x%04x does not decode: %d",
                          c->index, p.type, r);
        if (r == 0 && c->synced && !fuzz_errno_ok(p.type, error) &&
            !(p.carried && error == EDQUOT))
                fuzz_fail("client %u: type 0x%04x answered with errno %u", c->index, p.type,
                          error);
}

/* one record from the broker; @fds are the carried ones and the packet's */
static void fuzz_on_record(Fuzz *f, Client *c, const uint8_t *buf, size_t len, int *fds,
                           size_t n_fds) {
        ProtoHeader hdr;
        int r;

        r = proto_decode_header(&hdr, buf, len);
        if (r < 0)
                fuzz_fail("client %u: the broker wrote an unframed record (%zu bytes)",
                          c->index, len);
        fuzz_trace("client %u <- type 0x%04x, %zu bytes, %zu fds%s", c->index, hdr.type, len,
                   n_fds, hdr.type == PROTO_TYPE_REPLY ? "" : "\n");
        if (hdr.type == PROTO_TYPE_REPLY)
                fuzz_trace(", error %u\n", proto_u32_at(buf, 4));
        if (hdr.type == PROTO_TYPE_ENTRY || len == PROTO_SIZE_REPLY_RECV) {
                size_t at = hdr.type == PROTO_TYPE_ENTRY ? 2 : 3;

                fuzz_trace("    entry %llu type %llu flags %llx destination %llx "
                           "offset %llx bytes %llu handles %llu fds %llu secctx %llu\n",
                           (unsigned long long)proto_u64_at(buf, at),
                           (unsigned long long)proto_u64_at(buf, at + 1),
                           (unsigned long long)proto_u64_at(buf, at + 2),
                           (unsigned long long)proto_u64_at(buf, at + 3),
                           (unsigned long long)proto_u64_at(buf, at + 6),
                           (unsigned long long)proto_u64_at(buf, at + 7),
                           (unsigned long long)proto_u64_at(buf, at + 8),
                           (unsigned long long)proto_u64_at(buf, at + 9),
                           (unsigned long long)proto_u64_at(buf, at + 10));
        }

        switch (hdr.type) {
        case PROTO_TYPE_REPLY:
                fuzz_on_reply(f, c, buf, len, fds, n_fds);
                break;
        case PROTO_TYPE_ENTRY: {
                ProtoEntry e;

                /* no fds: msg.n_fds says how many a RECV would bring (section 8) */
                r = proto_decode_entry(&e, buf, len, n_fds);
                if (r < 0)
                        fuzz_fail("client %u: ENTRY does not decode: %d", c->index, r);
                if (e.entry_id <= c->stream_entry)
                        fuzz_fail("client %u: ENTRY %llu after %llu", c->index,
                                  (unsigned long long)e.entry_id,
                                  (unsigned long long)c->stream_entry);
                c->stream_entry = e.entry_id;
                if (e.entry_id > c->max_entry)
                        c->max_entry = e.entry_id;
                fuzz_remember(c->ids, &c->n_ids, e.msg.destination);
                if (e.msg.type == BUS1_MSG_DATA)
                        fuzz_check_slice(c, &e, false);
                break;
        }
        case PROTO_TYPE_RETRACT: {
                ProtoRetract retract;

                r = proto_decode_retract(&retract, buf, len, n_fds);
                if (r < 0)
                        fuzz_fail("client %u: RETRACT does not decode: %d", c->index, r);
                if (c->synced && !c->n_pending)
                        fuzz_fail("client %u: RETRACT outside a request", c->index);
                if (retract.entry_id > c->stream_entry)
                        fuzz_fail("client %u: RETRACT of %llu, never pushed", c->index,
                                  (unsigned long long)retract.entry_id);
                break;
        }
        case PROTO_TYPE_WAKE:
                r = proto_decode_wake(buf, len, n_fds);
                if (r < 0)
                        fuzz_fail("client %u: WAKE does not decode: %d", c->index, r);
                break;
        case PROTO_TYPE_RESYNC:
                r = proto_decode_resync(buf, len, n_fds);
                if (r < 0)
                        fuzz_fail("client %u: RESYNC does not decode: %d", c->index, r);
                if (c->synced && !c->n_pending)
                        fuzz_fail("client %u: RESYNC outside a request", c->index);
                c->stream_entry = 0;
                break;
        default:
                /*
                 * Raw bytes may have made a request this file does not
                 * know, such as a control request, with records of its own.
                 */
                if (c->synced || hdr.type < PROTO_TYPE_REPLY)
                        fuzz_fail("client %u: the broker wrote type 0x%04x", c->index,
                                  hdr.type);
        }
}

/* read what the broker wrote; true if anything came */
static bool fuzz_drain(Fuzz *f, Client *c) {
        union {
                struct cmsghdr cmsg;
                uint8_t buf[CMSG_SPACE(sizeof(int) * PROTO_PACKET_FDS_MAX + 64)];
        } control;
        bool any = false;

        while (c->fd >= 0) {
                struct iovec iov = { .iov_base = fuzz_rx, .iov_len = sizeof(fuzz_rx) };
                struct msghdr msg = {
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = &control,
                        .msg_controllen = sizeof(control),
                };
                int fds[PROTO_RECORD_FDS_MAX + PROTO_PACKET_FDS_MAX];
                size_t n_fds, n_pkt = 0;
                ssize_t l;
                ProtoFds carrier;

                l = recvmsg(c->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (l < 0 && (errno == EAGAIN || errno == EINTR))
                        break;
                any = true;
                if (l <= 0) {
                        /* the broker closed the connection */
                        fuzz_trace("client %u: closed by the broker\n", c->index);
                        fuzz_client_reset(c);
                        break;
                }

                n_fds = c->n_carried;
                memcpy(fds, c->carried, n_fds * sizeof(int));
                c->n_carried = 0;
                for (struct cmsghdr *m = CMSG_FIRSTHDR(&msg); m; m = CMSG_NXTHDR(&msg, m)) {
                        size_t n = (m->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                        if (m->cmsg_level != SOL_SOCKET || m->cmsg_type != SCM_RIGHTS)
                                fuzz_fail("client %u: foreign ancillary data", c->index);
                        if (n_fds + n > ARRAY_SIZE(fds))
                                fuzz_fail("client %u: too many fds", c->index);
                        memcpy(fds + n_fds, CMSG_DATA(m), n * sizeof(int));
                        n_fds += n;
                        n_pkt += n;
                }
                if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
                        fuzz_fail("client %u: truncated record", c->index);

                if (proto_decode_fds(&carrier, fuzz_rx, (size_t)l, n_pkt) == 0 &&
                    carrier.type == PROTO_TYPE_PUSH_FDS) {
                        if (n_fds > PROTO_RECORD_FDS_MAX)
                                fuzz_fail("client %u: carriers with %zu fds", c->index, n_fds);
                        memcpy(c->carried, fds, n_fds * sizeof(int));
                        c->n_carried = n_fds;
                        continue;
                }
                fuzz_on_record(f, c, fuzz_rx, (size_t)l, fds, n_fds);
                fuzz_close_all(fds, n_fds);
        }
        return any;
}

/* run the broker until it is idle and every eager client has read everything */
static void fuzz_settle(Fuzz *f) {
        unsigned int rounds = 0;
        bool busy = true;

        while (busy) {
                int r;

                busy = false;
                while ((r = broker_iterate(f->broker, false)) > 0) {
                        busy = true;
                        if (++rounds > FUZZ_SETTLE_MAX)
                                fuzz_fail("the event loop does not go idle");
                }
                if (r < 0)
                        fuzz_fail("broker_iterate: %s", strerror(-r));
                for (unsigned int i = 0; i < FUZZ_CLIENTS; ++i)
                        if (!f->clients[i].lazy && fuzz_drain(f, &f->clients[i]))
                                busy = true;
                if (++rounds > FUZZ_SETTLE_MAX)
                        fuzz_fail("the event loop does not go idle");
        }
        if (bus_validate(&f->broker->bus) < 0)
                fuzz_fail("bus_validate failed");
}

static bool fuzz_write(Fuzz *f, Client *c, const void *buf, size_t len, const int *fds,
                       size_t n_fds) {
        union {
                struct cmsghdr cmsg;
                uint8_t buf[CMSG_SPACE(sizeof(int) * PROTO_PACKET_FDS_MAX)];
        } control;
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (c->fd < 0 || n_fds > PROTO_PACKET_FDS_MAX)
                return false;
        if (n_fds) {
                memset(&control, 0, sizeof(control));
                msg.msg_control = &control;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                control.cmsg.cmsg_level = SOL_SOCKET;
                control.cmsg.cmsg_type = SCM_RIGHTS;
                control.cmsg.cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(&control.cmsg), fds, sizeof(int) * n_fds);
        }

        /* a full socket: let the broker read, a few times */
        for (unsigned int i = 0; i < 4; ++i) {
                if (sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) {
                        fuzz_trace("client %u -> type 0x%04x, %zu bytes, %zu fds\n", c->index,
                                   len >= PROTO_SIZE_HEADER ? proto_u32_at(buf, 1) >> 16 : 0,
                                   len, n_fds);
                        return true;
                }
                if (errno != EAGAIN)
                        return false;
                fuzz_settle(f);
                fuzz_drain(f, c);
                if (c->fd < 0)
                        return false;
        }
        return false;
}

/* write a request and expect its reply */
static void fuzz_request(Fuzz *f, Client *c, int len, const int *fds, size_t n_fds,
                         const Pending *p) {
        Pending pending = *p;

        if (len < 0)
                return;
        if (!fuzz_write(f, c, fuzz_tx, (size_t)len, fds, n_fds))
                return;
        /* the carried fds went with this record (a refused carrier fails it: EDQUOT) */
        pending.carried = c->n_sent_carried > 0;
        c->n_sent_carried = 0;
        fuzz_pending_push(c, &pending);
}

static bool fuzz_connect(Fuzz *f, Client *c) {
        Connection *conn;
        int sv[2], r;

        fuzz_client_reset(c);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
                return false;
        if (f->config & FUZZ_CONFIG_SMALL_SNDBUF(c->index))
                (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &(int){ FUZZ_SMALL_SNDBUF },
                                 sizeof(int));
        r = connection_new(&conn, f->broker, sv[0]);
        if (r < 0) {
                safe_close(sv[1]);
                return false;
        }
        /* as after accept: the fd budget follows the number of connections */
        broker_connection_closed(f->broker);
        c->fd = sv[1];
        return true;
}

/* ops */

static void fuzz_hello(Fuzz *f, Client *c, uint8_t variant) {
        ProtoHello hello = {
                .cookie = fuzz_cookie(c, PROTO_TYPE_HELLO),
                .version_min = variant & 3,
                .version_max = (variant >> 2) & 3,
        };
        Pending p = { .cookie = hello.cookie, .type = PROTO_TYPE_HELLO };
        ProtoWireHello w;
        int len;

        if (!variant)
                hello.version_min = hello.version_max = 1;
        len = proto_encode_hello(fuzz_tx, sizeof(fuzz_tx), &hello);
        if (len < 0 || (variant & 0x10)) {
                /* what the encoder refuses, written by hand */
                ProtoWireHeader h = {
                        .size = htole32(PROTO_SIZE_HELLO),
                        .version = htole16(BUS1_PROTO_VERSION),
                        .type = htole16(PROTO_TYPE_HELLO),
                        .cookie = htole64(hello.cookie),
                };

                w = (ProtoWireHello){
                        .flags = htole64((variant >> 5) & 1),
                        .version_min = htole32(hello.version_min),
                        .version_max = htole32(hello.version_max),
                };
                memcpy(fuzz_tx, &h, sizeof(h));
                memcpy(fuzz_tx + sizeof(h), &w, sizeof(w));
                len = (int)PROTO_SIZE_HELLO;
        }
        fuzz_request(f, c, len, NULL, 0, &p);
}

static void fuzz_ack(Fuzz *f, Client *c, uint8_t variant) {
        ProtoAck ack = { .entry_id = variant == 0 ? c->max_entry
                                   : variant == 1 ? c->stream_entry : variant };
        int len;

        len = proto_encode_ack(fuzz_tx, sizeof(fuzz_tx), &ack);
        if (len >= 0)
                fuzz_write(f, c, fuzz_tx, (size_t)len, NULL, 0);
}

static void fuzz_flags_only(Fuzz *f, Client *c, uint16_t type) {
        ProtoPeerQuery q = { .cookie = fuzz_cookie(c, type) };
        Pending p = { .cookie = q.cookie, .type = type };
        int len;

        if (type == PROTO_TYPE_PEER_QUERY)
                len = proto_encode_peer_query(fuzz_tx, sizeof(fuzz_tx), &q);
        else
                len = proto_encode_peer_disconnect(fuzz_tx, sizeof(fuzz_tx),
                                                   &(ProtoPeerDisconnect){ .cookie = q.cookie });
        fuzz_request(f, c, len, NULL, 0, &p);
}

static uint32_t fuzz_limit(unsigned int v) {
        static const uint32_t limits[] = { UINT32_MAX, 0, 1, 2, 4, 16, 1024, INT32_MAX };

        return limits[v & 7];
}

static void fuzz_reset(Fuzz *f, Client *c) {
        uint8_t flags = fuzz_u8(f), a = fuzz_u8(f), b = fuzz_u8(f);
        ProtoPeerReset reset = {
                .cookie = fuzz_cookie(c, PROTO_TYPE_PEER_RESET),
                .flags = flags & 3,
                .peer_flags = (flags & 8) ? UINT64_MAX : (flags >> 2) & 1,
                .max_slices = fuzz_limit(a),
                .max_handles = fuzz_limit(a >> 3),
                .max_inflight_bytes = fuzz_limit(b),
                .max_inflight_fds = fuzz_limit(b >> 3),
        };
        Pending p = { .cookie = reset.cookie, .type = PROTO_TYPE_PEER_RESET };

        fuzz_request(f, c, proto_encode_peer_reset(fuzz_tx, sizeof(fuzz_tx), &reset), NULL, 0,
                     &p);
}

static void fuzz_release(Fuzz *f, Client *c) {
        ProtoHandleRelease rel = {
                .cookie = fuzz_cookie(c, PROTO_TYPE_HANDLE_RELEASE),
                .id = fuzz_pick_id(f, c),
        };
        Pending p = { .cookie = rel.cookie, .type = PROTO_TYPE_HANDLE_RELEASE };

        fuzz_request(f, c, proto_encode_handle_release(fuzz_tx, sizeof(fuzz_tx), &rel), NULL, 0,
                     &p);
}

static void fuzz_transfer(Fuzz *f, Client *c) {
        ProtoHandleTransfer t = {
                .cookie = fuzz_cookie(c, PROTO_TYPE_HANDLE_TRANSFER),
                .src_handle = fuzz_pick_id(f, c),
        };
        Pending p = { .cookie = t.cookie, .type = PROTO_TYPE_HANDLE_TRANSFER,
                      .target = (int)c->index };
        uint8_t d = fuzz_u8(f) % 7;
        int fd = -1;

        if (d >= 1 && d <= 3 && f->clients[d - 1].fd >= 0) {
                fd = fcntl(f->clients[d - 1].fd, F_DUPFD_CLOEXEC, 3);
                p.target = d - 1;
        } else if (d == 4) {
                fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        } else if (d == 5) {
                fd = eventfd(0, EFD_CLOEXEC);
        } else if (d == 6) {
                fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 3);
        }
        t.dst_mode = fd >= 0 ? PROTO_DST_FD : PROTO_DST_SELF;
        fuzz_request(f, c, proto_encode_handle_transfer(fuzz_tx, sizeof(fuzz_tx), &t),
                     fd >= 0 ? &fd : NULL, fd >= 0, &p);
        safe_close(fd);
}

static void fuzz_destroy(Fuzz *f, Client *c) {
        uint8_t v = fuzz_u8(f);
        uint64_t ids[8];
        size_t n = v & 7;
        Pending p = { .cookie = fuzz_cookie(c, PROTO_TYPE_NODES_DESTROY),
                      .type = PROTO_TYPE_NODES_DESTROY };

        for (size_t i = 0; i < n; ++i)
                ids[i] = fuzz_pick_id(f, c);
        fuzz_request(f, c, proto_encode_nodes_destroy(fuzz_tx, sizeof(fuzz_tx), p.cookie,
                                                      (v >> 3) & 1, ids, n),
                     NULL, 0, &p);
}

static void fuzz_slice_release(Fuzz *f, Client *c) {
        ProtoSliceRelease rel = {
                .cookie = fuzz_cookie(c, PROTO_TYPE_SLICE_RELEASE),
                .offset = fuzz_pick_offset(f, c),
        };
        Pending p = { .cookie = rel.cookie, .type = PROTO_TYPE_SLICE_RELEASE };

        fuzz_request(f, c, proto_encode_slice_release(fuzz_tx, sizeof(fuzz_tx), &rel), NULL, 0,
                     &p);
}

static void fuzz_slice_fds(Fuzz *f, Client *c) {
        Pending p = { .cookie = fuzz_cookie(c, PROTO_TYPE_SLICE_FDS),
                      .type = PROTO_TYPE_SLICE_FDS };
        uint8_t v = fuzz_u8(f);
        int numbers[4];
        int len;

        if (v == 0 && c->fd_install) {
                len = proto_encode_slice_fds(fuzz_tx, sizeof(fuzz_tx), p.cookie, c->fd_offset,
                                             c->fd_numbers, c->fd_count);
        } else {
                uint64_t offset = fuzz_pick_offset(f, c);
                size_t n = fuzz_u8(f) % 4 + 1;

                for (size_t i = 0; i < n; ++i)
                        numbers[i] = fuzz_u8(f);
                len = proto_encode_slice_fds(fuzz_tx, sizeof(fuzz_tx), p.cookie, offset,
                                             numbers, n);
        }
        fuzz_request(f, c, len, NULL, 0, &p);
}

static void fuzz_send(Fuzz *f, Client *c) {
        uint8_t flags = fuzz_u8(f), n_dst = fuzz_u8(f) % 4, n_handles = fuzz_u8(f) % 4;
        uint8_t n_fds = fuzz_u8(f) % 4, mode, size;
        uint64_t dst[4], handles[4];
        int fds[5];
        size_t n_attached = 0, n_bytes;
        struct iovec vec;
        ProtoSendArgs args = {};
        Pending p = { .type = PROTO_TYPE_SEND };
        uint64_t tag;

        for (size_t i = 0; i < n_dst; ++i)
                dst[i] = fuzz_pick_id(f, c);
        for (size_t i = 0; i < n_handles; ++i)
                handles[i] = fuzz_pick_id(f, c);
        for (size_t i = 0; i < n_fds; ++i) {
                int fd = fuzz_make_fd(f, c, fuzz_u8(f));

                if (fd >= 0)
                        fds[n_attached++] = fd;
        }
        mode = fuzz_u8(f);
        size = fuzz_u8(f);
        n_bytes = (mode & 0x40) ? (size_t)size * 512 : size;

        p.cookie = fuzz_cookie(c, PROTO_TYPE_SEND);
        tag = (uint64_t)c->index << 56 | c->seq;
        args = (ProtoSendArgs){
                .cookie = p.cookie,
                .flags = (flags & 1 ? BUS1_SEND_FLAG_CONTINUE : 0) |
                         (flags & 2 ? BUS1_SEND_FLAG_SEED : 0) |
                         (flags & 4 ? PROTO_SEND_FLAG_ERRORS : 0),
                .destinations = dst,
                .n_destinations = n_dst,
                .handles = handles,
                .n_handles = n_handles,
                /* fds sent ahead on FDS carriers belong to this message too */
                .n_fds = n_attached + c->n_sent_carried,
        };
        if (args.flags & BUS1_SEND_FLAG_SEED) {
                args.n_destinations = 0;
                args.flags &= ~(uint64_t)BUS1_SEND_FLAG_CONTINUE;
        }
        p.n_errors = (args.flags & PROTO_SEND_FLAG_ERRORS) ? args.n_destinations : 0;

        if (mode & 0x80) {
                uint64_t offset = (mode & 0x10) ? 4096 + 8 * (mode & 0xf) : 0;
                int memfd = fuzz_memfd(f, offset, n_bytes, !(mode & 0x20), tag);

                if (memfd < 0)
                        goto out;
                fds[n_attached++] = memfd;
                args.payload_mode = PROTO_PAYLOAD_MEMFD;
                args.n_bytes = n_bytes;
                args.memfd_offset = offset;
        } else {
                fuzz_fill_payload(fuzz_payload, n_bytes, tag);
                vec = (struct iovec){ .iov_base = fuzz_payload, .iov_len = n_bytes };
                args.vecs = &vec;
                args.n_vecs = 1;
        }
        fuzz_request(f, c, proto_encode_send(fuzz_tx, sizeof(fuzz_tx), &args), fds, n_attached,
                     &p);
out:
        fuzz_close_all(fds, n_attached);
}

static void fuzz_recv(Fuzz *f, Client *c) {
        uint8_t flags = fuzz_u8(f), m = fuzz_u8(f);
        ProtoRecv recv_req = {
                .cookie = fuzz_cookie(c, PROTO_TYPE_RECV),
                .flags = flags & 7,
                .max_offset = m == 0 ? UINT64_MAX : m == 1 ? 0 : m == 2 ? c->pool_size
                                                                       : (uint64_t)m * 64,
        };
        Pending p = { .cookie = recv_req.cookie, .type = PROTO_TYPE_RECV,
                      .flags = recv_req.flags };

        fuzz_request(f, c, proto_encode_recv(fuzz_tx, sizeof(fuzz_tx), &recv_req), NULL, 0, &p);
}

/* bytes the encoders would never write; replies are no longer matched */
static void fuzz_raw(Fuzz *f, Client *c) {
        size_t len = (size_t)fuzz_u8(f) * 8;
        uint8_t kind = fuzz_u8(f) % 4;
        uint16_t type = (uint16_t)(fuzz_u8(f) | fuzz_u8(f) << 8);
        int fd = -1;

        for (size_t i = 0; i < len; ++i)
                fuzz_tx[i] = fuzz_u8(f);
        /* a packet longer than any record: the broker sees MSG_TRUNC */
        if (kind == 3) {
                memset(fuzz_tx + len, 0, sizeof(fuzz_tx) - len);
                len = sizeof(fuzz_tx);
        }
        if (kind >= 1 && len >= PROTO_SIZE_HEADER) {
                ProtoWireHeader h = {
                        .size = htole32((uint32_t)len),
                        .version = htole16(BUS1_PROTO_VERSION),
                        .type = htole16(type),
                        .cookie = htole64(fuzz_cookie(c, type)),
                };

                memcpy(fuzz_tx, &h, sizeof(h));
        }
        if (kind == 2)
                fd = eventfd(0, EFD_CLOEXEC);
        c->synced = false;
        fuzz_write(f, c, fuzz_tx, len, fd >= 0 ? &fd : NULL, fd >= 0);
        safe_close(fd);
}

static void fuzz_carrier(Fuzz *f, Client *c) {
        uint8_t v = fuzz_u8(f), wrong = fuzz_u8(f);
        size_t n = v == 0 ? PROTO_PACKET_FDS_MAX : (size_t)(v % 4 + 1);
        ProtoFds carrier = { .type = PROTO_TYPE_FDS, .n_fds = (uint32_t)n };
        int fds[PROTO_PACKET_FDS_MAX];
        size_t n_made = 0;
        int len;

        for (; n_made < n; ++n_made) {
                fds[n_made] = eventfd(0, EFD_CLOEXEC);
                if (fds[n_made] < 0)
                        break;
        }
        if (n_made == n) {
                /* a carrier whose count is not what it carries is a violation */
                if (wrong == 1 && n > 1)
                        --carrier.n_fds;
                len = proto_encode_fds(fuzz_tx, sizeof(fuzz_tx), &carrier);
                if (len >= 0 && fuzz_write(f, c, fuzz_tx, (size_t)len, fds, n))
                        c->n_sent_carried += n;
        }
        fuzz_close_all(fds, n_made);
}

static void fuzz_unknown(Fuzz *f, Client *c) {
        /* the control range but no control request, a later request, a broker type */
        static const uint16_t types[] = { PROTO_TYPE_CONTROL_LAST, 0x2000, PROTO_TYPE_REPLY };
        uint16_t type = types[fuzz_u8(f) % ARRAY_SIZE(types)];
        ProtoWireHeader h = {
                .size = htole32(PROTO_SIZE_HEADER + 8),
                .version = htole16(BUS1_PROTO_VERSION),
                .type = htole16(type),
        };
        Pending p = { .cookie = fuzz_cookie(c, type), .type = type };

        h.cookie = htole64(p.cookie);
        memcpy(fuzz_tx, &h, sizeof(h));
        memset(fuzz_tx + sizeof(h), 0, 8);
        fuzz_request(f, c, (int)(PROTO_SIZE_HEADER + 8), NULL, 0, &p);
}

/* the release ring, written the way the library does: the slot, then the tail */

static void fuzz_ring_publish(Client *c) {
        __atomic_store_n((uint64_t *)(void *)(c->ring + PROTO_RING_TAIL), htole64(c->ring_tail),
                         __ATOMIC_RELEASE);
        c->ring_seq = c->seq;
}

static void fuzz_ring_put(Client *c, uint64_t value) {
        uint64_t *slot = (uint64_t *)(void *)(c->ring + PROTO_RING_SLOTS +
                                              8 * (c->ring_tail % PROTO_RING_N_SLOTS));

        fuzz_trace("client %u ring[%llu] = %llx\n", c->index, (unsigned long long)c->ring_tail,
                   (unsigned long long)value);
        __atomic_store_n(slot, htole64(value), __ATOMIC_RELAXED);
        ++c->ring_tail;
        fuzz_ring_publish(c);
}

/* what the library appends: only while the broker's head says there is room */
static void fuzz_ring_append(Client *c, uint64_t value) {
        uint64_t head = le64toh(__atomic_load_n((uint64_t *)(void *)(c->ring + PROTO_RING_HEAD),
                                                __ATOMIC_ACQUIRE));

        if (c->ring_tail - head < PROTO_RING_N_SLOTS)
                fuzz_ring_put(c, value);
}

static void fuzz_ring_ack(Client *c) {
        if (c->stream_entry)
                fuzz_ring_append(c, (c->stream_entry << 3) | PROTO_RING_ACK);
}

static void fuzz_ring_move_tail(Client *c, uint64_t tail) {
        fuzz_trace("client %u ring tail %llu -> %llu\n", c->index,
                   (unsigned long long)c->ring_tail, (unsigned long long)tail);
        c->ring_tail = tail;
        fuzz_ring_publish(c);
}

/* the input being run, for the drain hook */
static Fuzz *fuzz_current;
static BusDrainFn fuzz_broker_drain;

/*
 * BusDrainFn around the broker's: a client with late values writes them
 * right before its chosen drain, as if it ran concurrently with the broker.
 */
static void fuzz_drain_hook(Bus *bus, Peer *peer) {
        for (unsigned int i = 0; fuzz_current && i < FUZZ_CLIENTS; ++i) {
                Client *c = &fuzz_current->clients[i];

                if (!c->late_at || !c->ring || c->peer_id != peer->id || --c->late_at)
                        continue;
                fuzz_trace("client %u: late ring values\n", c->index);
                for (size_t j = 0; j < c->n_late; ++j)
                        fuzz_ring_append(c, c->late[j]);
        }
        fuzz_broker_drain(bus, peer);
}

static void fuzz_ring(Fuzz *f, Client *c) {
        FuzzRing variant = fuzz_ring_variant(fuzz_u8(f));

        if (!c->ring)
                return;

        switch (variant) {
        case FUZZ_RING_ACK:
                fuzz_ring_ack(c);
                break;
        case FUZZ_RING_RELEASE:
                fuzz_ring_append(c, fuzz_pick_offset(f, c));
                break;
        case FUZZ_RING_ACK_RELEASE:
                fuzz_ring_ack(c);
                if (c->n_offsets)
                        fuzz_ring_append(c, c->offsets[(c->n_offsets - 1) % FUZZ_IDS_MAX]);
                break;
        case FUZZ_RING_ACK_ID:
                fuzz_ring_append(c, (uint64_t)fuzz_u8(f) << 3 | PROTO_RING_ACK);
                break;
        case FUZZ_RING_RELEASES: {
                unsigned int n = fuzz_u8(f) % 16 + 1;

                for (unsigned int i = 0; i < n; ++i)
                        fuzz_ring_append(c, fuzz_pick_offset(f, c));
                break;
        }
        case FUZZ_RING_LATE: {
                uint8_t n = fuzz_u8(f);

                c->n_late = 0;
                if (c->stream_entry)
                        c->late[c->n_late++] = (c->stream_entry << 3) | PROTO_RING_ACK;
                if ((n & 4) && c->n_offsets)
                        c->late[c->n_late++] = c->offsets[(c->n_offsets - 1) % FUZZ_IDS_MAX];
                c->late_at = c->n_late ? n % 4 + 1 : 0;
                break;
        }
        case FUZZ_RING_RAW:
                fuzz_ring_put(c, fuzz_u64(f));
                break;
        case FUZZ_RING_SMALL: {
                uint8_t v = fuzz_u8(f);

                fuzz_ring_put(c, (uint64_t)v << 3 | (v & 7));
                break;
        }
        case FUZZ_RING_AHEAD:
                fuzz_ring_move_tail(c, c->ring_tail + fuzz_u8(f) + 1);
                break;
        case FUZZ_RING_BACK:
                fuzz_ring_move_tail(c, c->ring_tail - (fuzz_u8(f) % 4 + 1));
                break;
        case FUZZ_RING_TAIL:
                fuzz_ring_move_tail(c, fuzz_u64(f));
                break;
        case _FUZZ_RING_MAX:
                break;
        }
}

static void fuzz_op(Fuzz *f) {
        uint8_t b = fuzz_u8(f);
        Client *c = &f->clients[(b >> 5) % FUZZ_CLIENTS];

        fuzz_trace("op %u on client %u\n", (b & 0x1f) % _FUZZ_OP_MAX, c->index);
        switch ((FuzzOp)((b & 0x1f) % _FUZZ_OP_MAX)) {
        case FUZZ_OP_HELLO:
                fuzz_hello(f, c, fuzz_u8(f));
                break;
        case FUZZ_OP_ACK:
                fuzz_ack(f, c, fuzz_u8(f));
                break;
        case FUZZ_OP_DISCONNECT:
                fuzz_flags_only(f, c, PROTO_TYPE_PEER_DISCONNECT);
                break;
        case FUZZ_OP_QUERY:
                fuzz_flags_only(f, c, PROTO_TYPE_PEER_QUERY);
                break;
        case FUZZ_OP_RESET:
                fuzz_reset(f, c);
                break;
        case FUZZ_OP_RELEASE:
                fuzz_release(f, c);
                break;
        case FUZZ_OP_TRANSFER:
                fuzz_transfer(f, c);
                break;
        case FUZZ_OP_DESTROY:
                fuzz_destroy(f, c);
                break;
        case FUZZ_OP_SLICE_RELEASE:
                fuzz_slice_release(f, c);
                break;
        case FUZZ_OP_SLICE_FDS:
                fuzz_slice_fds(f, c);
                break;
        case FUZZ_OP_SEND:
                fuzz_send(f, c);
                break;
        case FUZZ_OP_RECV:
                fuzz_recv(f, c);
                break;
        case FUZZ_OP_RAW:
                fuzz_raw(f, c);
                break;
        case FUZZ_OP_CARRIER:
                fuzz_carrier(f, c);
                break;
        case FUZZ_OP_CLOSE:
                fuzz_client_reset(c);
                break;
        case FUZZ_OP_RECONNECT:
                if (f->n_reconnects < FUZZ_RECONNECTS_MAX) {
                        ++f->n_reconnects;
                        if (fuzz_connect(f, c) && !(f->config & FUZZ_CONFIG_NO_HELLO))
                                fuzz_hello(f, c, 0);
                }
                break;
        case FUZZ_OP_DRAIN:
                fuzz_drain(f, c);
                break;
        case FUZZ_OP_UNKNOWN:
                fuzz_unknown(f, c);
                break;
        case FUZZ_OP_BATCH:
                /* this op and the next n are written before the broker runs */
                f->batch = fuzz_u8(f) % 8 + 2;
                return;
        case FUZZ_OP_ACK_RECV:
                fuzz_ack(f, c, 1);
                fuzz_recv(f, c);
                break;
        case FUZZ_OP_RING:
                fuzz_ring(f, c);
                break;
        case _FUZZ_OP_MAX:
                break;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool initialized;
        uint64_t fds_before[FUZZ_FDS_SEEN / 64];
        unsigned int n_fds_before;
        Fuzz *f;
        int r;

        if (!initialized) {
                const char *e = getenv("FUZZ_TRACE");

                /* refusals are expected by the thousand; errors still show */
                log_max_level = LOG_ERR;
                fuzz_tracing = e && *e && strcmp(e, "0") != 0;
                initialized = true;
        }
        if (size < 1)
                return 0;

        n_fds_before = fuzz_list_fds(fds_before);
        f = calloc(1, sizeof(*f));
        if (!f)
                return 0;
        f->config = data[0];
        f->p = data + 1;
        f->n = size - 1;

        r = broker_new(&f->broker);
        if (r < 0)
                fuzz_fail("broker_new: %s", strerror(-r));
        /*
         * The broker ends its loop on SIGTERM and SIGINT, and blocks them for
         * it; here they are libFuzzer's, which stops and prints its stats.
         */
        r = sd_event_set_signal_exit(f->broker->event, false);
        if (r < 0)
                fuzz_fail("sd_event_set_signal_exit: %s", strerror(-r));
        fuzz_current = f;
        fuzz_broker_drain = f->broker->bus.drain;
        if (!fuzz_broker_drain)
                fuzz_fail("the broker has no drain hook");
        f->broker->bus.drain = fuzz_drain_hook;
        for (unsigned int i = 0; i < FUZZ_CLIENTS; ++i) {
                Client *c = &f->clients[i];

                c->index = i;
                c->fd = -1;
                c->pool_fd = -1;
                c->lazy = f->config & FUZZ_CONFIG_LAZY(i);
                if (!fuzz_connect(f, c))
                        fuzz_fail("cannot connect client %u", i);
                if (!(f->config & FUZZ_CONFIG_NO_HELLO))
                        fuzz_hello(f, c, 0);
        }
        fuzz_settle(f);

        for (unsigned int i = 0; i < FUZZ_OPS_MAX && f->n; ++i) {
                fuzz_op(f);
                if (f->batch > 0 && --f->batch > 0)
                        continue;
                fuzz_settle(f);
        }
        fuzz_settle(f);
        for (unsigned int i = 0; i < FUZZ_CLIENTS; ++i)
                fuzz_drain(f, &f->clients[i]);

        f->broker = broker_free(f->broker);
        fuzz_current = NULL;
        for (unsigned int i = 0; i < FUZZ_CLIENTS; ++i)
                fuzz_client_reset(&f->clients[i]);
        free(f);

        fuzz_check_fds(fds_before, n_fds_before);
        return 0;
}
