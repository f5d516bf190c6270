/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuse-stall: a FUSE file whose close(2) never returns (see fuse-stall.h)
 *
 * The server is a forked child: it opens /dev/fuse, mounts, tells the
 * parent how that went over a pipe, and then answers requests one at a
 * time. Each request is one read(2) of /dev/fuse (a fuse_in_header and its
 * arguments); each answer is one write(2) (a fuse_out_header and its
 * result). Requests it leaves unanswered (FLUSH, RELEASE, INTERRUPT, and
 * FORGET, which never gets an answer) stay pending in the kernel until the
 * server dies and the kernel aborts the connection.
 *
 * No cmocka here: the child must not call it, and the parent's functions
 * return errors for the test to judge.
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "fuse-stall.h"

/* the one file's node ID (the root is FUSE_ROOT_ID) */
#define FUSE_STALL_FILE_ID 2
#define FUSE_STALL_MAX_WRITE 4096
/* the kernel wants room for a whole WRITE and more than 8 KiB; plenty */
#define FUSE_STALL_BUF_SIZE (256 * 1024)
/* how long the parent waits for the server to report its mount */
#define FUSE_STALL_START_MS 5000

/* a page shared with the server, which alone writes it */
struct FuseStallShared {
        unsigned int n_flushes;
        pid_t tids[FUSE_STALL_FLUSHES_MAX];
};

/* ---- the server (child) ---------------------------------------------------- */

/* answer request @unique: @error (negative errno) or the result @data */
static void fuse_reply(int dev, uint64_t unique, int error, const void *data, size_t len) {
        struct fuse_out_header h = {
                .len = (uint32_t)(sizeof(h) + (error ? 0 : len)),
                .error = error,
                .unique = unique,
        };
        struct iovec v[2] = {
                { .iov_base = &h, .iov_len = sizeof(h) },
                { .iov_base = (void *)data, .iov_len = len },
        };

        /* ENOENT: the kernel gave up on the request meanwhile; nothing to do */
        (void)writev(dev, v, error || !len ? 1 : 2);
}

/* the attributes of the root directory or of "f" */
static void fuse_attr_of(uint64_t nodeid, struct fuse_attr *a) {
        memset(a, 0, sizeof(*a));
        a->ino = nodeid;
        a->blksize = 4096;
        if (nodeid == FUSE_ROOT_ID) {
                a->mode = S_IFDIR | 0755;
                a->nlink = 2;
        } else {
                a->mode = S_IFREG | 0666;
                a->nlink = 1;
        }
}

/* INIT: protocol 7, the kernel's minor, no optional features */
static void fuse_do_init(int dev, const struct fuse_in_header *in, const void *arg) {
        const struct fuse_init_in *init = arg;
        struct fuse_init_out out = {
                .major = FUSE_KERNEL_VERSION,
                .minor = init->minor,
                .max_write = FUSE_STALL_MAX_WRITE,
        };

        fuse_reply(dev, in->unique, 0, &out, sizeof(out));
}

/* LOOKUP: only "f" in the root exists */
static void fuse_do_lookup(int dev, const struct fuse_in_header *in, const char *name,
                           size_t len) {
        struct fuse_entry_out out = {
                .nodeid = FUSE_STALL_FILE_ID,
                .generation = 1,
                .entry_valid = 60,
                .attr_valid = 60,
        };

        if (in->nodeid != FUSE_ROOT_ID || len < 2 || strncmp(name, "f", len) != 0) {
                fuse_reply(dev, in->unique, -ENOENT, NULL, 0);
                return;
        }
        fuse_attr_of(FUSE_STALL_FILE_ID, &out.attr);
        fuse_reply(dev, in->unique, 0, &out, sizeof(out));
}

/* GETATTR of the root or of "f" */
static void fuse_do_getattr(int dev, const struct fuse_in_header *in) {
        struct fuse_attr_out out = { .attr_valid = 60 };

        if (in->nodeid != FUSE_ROOT_ID && in->nodeid != FUSE_STALL_FILE_ID) {
                fuse_reply(dev, in->unique, -ENOENT, NULL, 0);
                return;
        }
        fuse_attr_of(in->nodeid, &out.attr);
        fuse_reply(dev, in->unique, 0, &out, sizeof(out));
}

/* OPEN of "f": file handle 1, and (open_flags 0) every close sends FLUSH */
static void fuse_do_open(int dev, const struct fuse_in_header *in) {
        struct fuse_open_out out = { .fh = 1 };

        if (in->nodeid != FUSE_STALL_FILE_ID) {
                fuse_reply(dev, in->unique, -EISDIR, NULL, 0);
                return;
        }
        fuse_reply(dev, in->unique, 0, &out, sizeof(out));
}

/* FLUSH: remember which thread is now stuck in close(2), never answer */
static void fuse_do_flush(FuseStallShared *shared, const struct fuse_in_header *in) {
        unsigned int n = shared->n_flushes;

        if (n < FUSE_STALL_FLUSHES_MAX)
                shared->tids[n] = (pid_t)in->pid;
        __atomic_store_n(&shared->n_flushes, n + 1, __ATOMIC_RELEASE);
}

/* one request of @len bytes */
static void fuse_dispatch(int dev, FuseStallShared *shared, const uint8_t *buf, size_t len) {
        const struct fuse_in_header *in = (const void *)buf;
        const void *arg = buf + sizeof(*in);
        size_t arg_len;

        if (len < sizeof(*in) || in->len != len)
                return;
        arg_len = len - sizeof(*in);

        switch (in->opcode) {
        case FUSE_INIT:
                if (arg_len >= offsetof(struct fuse_init_in, flags))
                        fuse_do_init(dev, in, arg);
                break;
        case FUSE_LOOKUP:
                fuse_do_lookup(dev, in, arg, arg_len);
                break;
        case FUSE_GETATTR:
                fuse_do_getattr(dev, in);
                break;
        case FUSE_OPEN:
                fuse_do_open(dev, in);
                break;
        case FUSE_FLUSH:
                fuse_do_flush(shared, in);
                break;
        case FUSE_RELEASE:
        case FUSE_INTERRUPT:
        case FUSE_FORGET:
        case FUSE_BATCH_FORGET:
                /* never answered (FORGETs never are, the others on purpose) */
                break;
        default:
                fuse_reply(dev, in->unique, -ENOSYS, NULL, 0);
                break;
        }
}

/* serve until the connection is gone or the lifeline closes */
static _Noreturn void fuse_serve(int dev, int lifeline, FuseStallShared *shared) {
        static uint8_t buf[FUSE_STALL_BUF_SIZE] __attribute__((aligned(8)));

        for (;;) {
                struct pollfd p[2] = {
                        { .fd = dev, .events = POLLIN },
                        { .fd = lifeline, .events = POLLIN },
                };
                ssize_t l;

                if (poll(p, 2, -1) < 0)
                        continue;
                if (p[1].revents)
                        _exit(0);
                l = read(dev, buf, sizeof(buf));
                if (l < 0 && (errno == EINTR || errno == EAGAIN || errno == ENOENT))
                        continue;
                if (l <= 0)
                        _exit(0);
                fuse_dispatch(dev, shared, buf, (size_t)l);
        }
}

/* close every descriptor but stdio, @a and @b (a < b) */
static void fuse_close_others(int a, int b) {
        close_range(3, (unsigned int)a - 1, 0);
        close_range((unsigned int)a + 1, (unsigned int)b - 1, 0);
        close_range((unsigned int)b + 1, ~0U, 0);
}

/* open /dev/fuse and mount it on @dir: a descriptor, or -errno */
static int fuse_mount(const char *dir) {
        char opts[128];
        int dev;

        dev = open("/dev/fuse", O_RDWR | O_CLOEXEC);
        if (dev < 0)
                return -errno;
        snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", dev);
        if (mount("bus1-fuse-stall", dir, "fuse", MS_NOSUID | MS_NODEV, opts) < 0) {
                int r = -errno;

                close(dev);
                return r;
        }
        return dev;
}

/* the child: mount, report the result (0 or -errno) on @status, serve */
static _Noreturn void fuse_server_main(FuseStall *fs, int status, int lifeline) {
        int dev, r;

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        fuse_close_others(status < lifeline ? status : lifeline,
                          status < lifeline ? lifeline : status);
        /* the last resort against a test that forgot to stop it */
        alarm(FUSE_STALL_LIFETIME_S);

        dev = fuse_mount(fs->dir);
        r = dev < 0 ? dev : 0;
        if (write(status, &r, sizeof(r)) != sizeof(r) || r < 0)
                _exit(1);
        close(status);
        fuse_serve(dev, lifeline, fs->shared);
}

/* ---- the parent ------------------------------------------------------------ */

/* record why the file system is unavailable; -EOPNOTSUPP */
static int fuse_stall_unavailable(FuseStall *fs, const char *why, int error) {
        snprintf(fs->error, sizeof(fs->error), "%s%s%s", why, error ? ": " : "",
                 error ? strerror(error) : "");
        return -EOPNOTSUPP;
}

/* the server's report: 0, -errno of its mount, or -EPIPE if it said nothing */
static int fuse_stall_read_status(int status) {
        struct pollfd p = { .fd = status, .events = POLLIN };
        int r, v;

        do {
                r = poll(&p, 1, FUSE_STALL_START_MS);
        } while (r < 0 && errno == EINTR);
        if (r <= 0)
                return -ETIMEDOUT;
        return read(status, &v, sizeof(v)) == sizeof(v) ? v : -EPIPE;
}

/* the directory, the shared page and the pipes, before the fork */
static int fuse_stall_prepare(FuseStall *fs, int status[2], int life[2]) {
        fs->shared = mmap(NULL, sizeof(*fs->shared), PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (fs->shared == MAP_FAILED) {
                fs->shared = NULL;
                return -errno;
        }
        snprintf(fs->dir, sizeof(fs->dir), "/tmp/bus1d-fuse-XXXXXX");
        if (!mkdtemp(fs->dir)) {
                fs->dir[0] = 0;
                return -errno;
        }
        snprintf(fs->path, sizeof(fs->path), "%s/f", fs->dir);
        if (pipe2(status, O_CLOEXEC) < 0)
                return -errno;
        if (pipe2(life, O_CLOEXEC) < 0) {
                close(status[0]);
                close(status[1]);
                return -errno;
        }
        return 0;
}

/**
 * fuse_stall_start() - mount the stalling file system and serve it
 * @fs:         filled in; fuse_stall_stop() it even on failure
 *
 * Return: 0, -EOPNOTSUPP if FUSE is unavailable here (not root, no
 *         /dev/fuse, mount(2) refused; fs->error says which), or another
 *         negative errno.
 */
int fuse_stall_start(FuseStall *fs) {
        int status[2], life[2], r;

        memset(fs, 0, sizeof(*fs));
        fs->lifeline = -1;
        if (geteuid() != 0)
                return fuse_stall_unavailable(fs, "not root (mounting FUSE needs it)", 0);
        if (access("/dev/fuse", F_OK) < 0)
                return fuse_stall_unavailable(fs, "no /dev/fuse", errno);
        r = fuse_stall_prepare(fs, status, life);
        if (r < 0)
                return r;

        fflush(NULL);
        fs->pid = fork();
        if (fs->pid < 0) {
                r = -errno;
                fs->pid = 0;
        } else if (fs->pid == 0) {
                fuse_server_main(fs, status[1], life[0]);
        }
        close(status[1]);
        close(life[0]);
        fs->lifeline = life[1];
        if (r == 0) {
                r = fuse_stall_read_status(status[0]);
                if (r == 0)
                        fs->mounted = true;
                else if (r != -ETIMEDOUT && r != -EPIPE)
                        r = fuse_stall_unavailable(fs, "cannot mount FUSE", -r);
        }
        close(status[0]);
        return r;
}

/**
 * fuse_stall_stop() - kill the server, unmount, remove the directory
 * @fs:         started (successfully or not) or stopped already
 *
 * Every close(2) stuck on this file system returns once the server is dead.
 */
void fuse_stall_stop(FuseStall *fs) {
        if (fs->pid > 0) {
                kill(fs->pid, SIGKILL);
                waitpid(fs->pid, NULL, 0);
                fs->pid = 0;
        }
        if (fs->lifeline >= 0)
                close(fs->lifeline);
        fs->lifeline = -1;
        if (fs->mounted)
                umount2(fs->dir, MNT_DETACH);
        fs->mounted = false;
        if (fs->dir[0])
                rmdir(fs->dir);
        fs->dir[0] = 0;
        if (fs->shared)
                munmap(fs->shared, sizeof(*fs->shared));
        fs->shared = NULL;
}

/**
 * fuse_stall_open() - open the stalling file
 * @fs:         started
 *
 * Keep the descriptor open until after fuse_stall_stop(): closing it
 * earlier blocks the caller.
 *
 * Return: a descriptor (O_RDWR, O_CLOEXEC), or a negative errno.
 */
int fuse_stall_open(FuseStall *fs) {
        int fd = open(fs->path, O_RDWR | O_CLOEXEC);

        return fd < 0 ? -errno : fd;
}

/**
 * fuse_stall_flushes() - the threads that closed the file so far
 * @fs:         started
 * @tids:       filled with up to @max thread IDs, in order; may be NULL
 * @max:        its size
 *
 * Every FLUSH the server got (and never answered) is one close(2) that is
 * stuck until fuse_stall_stop(); its thread ID is the one FUSE reports.
 *
 * Return: how many FLUSH requests the server got.
 */
unsigned int fuse_stall_flushes(const FuseStall *fs, pid_t *tids, unsigned int max) {
        unsigned int n;

        if (!fs->shared)
                return 0;
        n = __atomic_load_n(&fs->shared->n_flushes, __ATOMIC_ACQUIRE);
        for (unsigned int i = 0; tids && i < n && i < max && i < FUSE_STALL_FLUSHES_MAX; ++i)
                tids[i] = fs->shared->tids[i];
        return n;
}
