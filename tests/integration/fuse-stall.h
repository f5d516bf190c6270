/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Fuse-stall: a FUSE file whose close(2) never returns, for tests
 *
 * A descriptor a client passes may name a file whose close(2) waits for
 * somebody else. The worst case is a FUSE file: close(2) sends FLUSH to the
 * file system's server and waits for the answer uninterruptibly, so a
 * server that never answers freezes the closing thread for as long as it
 * lives. Tests use this to check that the broker never closes (or fstat()s)
 * a client's descriptor on its event loop.
 *
 * fuse_stall_start() mounts, as root, a tiny file system on a fresh
 * directory and serves it from a forked child that speaks the FUSE
 * protocol of <linux/fuse.h> directly (no libfuse). It has one regular
 * file, "f" (mode 0666, size 0), answers INIT, LOOKUP, GETATTR and OPEN,
 * refuses everything else with ENOSYS, and never answers FLUSH or RELEASE.
 * It records which threads sent FLUSH (fuse_stall_flushes()), so a test can
 * see that a close really is stuck.
 *
 * fuse_stall_open() opens the file. Every copy of that descriptor, in any
 * process, must stay open until fuse_stall_stop(): closing one blocks the
 * caller, and so does the exit of a process that still holds one (a forked
 * child that holds it can only be reaped after fuse_stall_stop()).
 * fuse_stall_stop() kills the server: the kernel then aborts the
 * connection, and every close stuck on FLUSH returns. Then it unmounts
 * (lazily, the file may still be open) and removes the directory.
 *
 * Should the test process die with the file open, its exit would wait on
 * FLUSH too; the server therefore also exits when the test's end of a
 * lifeline pipe closes (opened before the file, so closed first) and after
 * FUSE_STALL_LIFETIME_S seconds at the most.
 */

#include <stdbool.h>
#include <sys/types.h>

#define FUSE_STALL_LIFETIME_S 60
#define FUSE_STALL_FLUSHES_MAX 64

typedef struct FuseStallShared FuseStallShared;

typedef struct FuseStall {
        pid_t pid;                      /* the server, 0: not running */
        int lifeline;                   /* write end; -1: none */
        bool mounted;
        char dir[64];                   /* the mount point, "" if none */
        char path[80];                  /* dir/f */
        char error[160];                /* why fuse_stall_start() failed */
        FuseStallShared *shared;        /* what the server saw */
} FuseStall;

int fuse_stall_start(FuseStall *fs);
void fuse_stall_stop(FuseStall *fs);
int fuse_stall_open(FuseStall *fs);
unsigned int fuse_stall_flushes(const FuseStall *fs, pid_t *tids, unsigned int max);
