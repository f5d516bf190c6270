/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Closer: close(2) off the caller's thread (see closer.h)
 *
 * A growable ring of descriptors under one mutex; the thread waits on a
 * condition variable while it is empty. The thread is detached: a close
 * that never returns (a FUSE server that never answers) must not keep the
 * process from exiting.
 */

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "util/closer.h"

static pthread_mutex_t closer_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t closer_wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t closer_done = PTHREAD_COND_INITIALIZER;
static bool closer_running;
static int *closer_fds;         /* ring of closer_cap slots */
static size_t closer_cap;
static size_t closer_head;      /* next to close */
static size_t closer_n;         /* queued */
static size_t closer_busy;      /* taken by the thread, being closed */

static void *closer_thread(void *userdata) {
        (void)userdata;
        pthread_mutex_lock(&closer_lock);
        for (;;) {
                int fd;

                while (!closer_n)
                        pthread_cond_wait(&closer_wake, &closer_lock);
                fd = closer_fds[closer_head];
                closer_head = (closer_head + 1) % closer_cap;
                --closer_n;
                closer_busy = 1;
                pthread_mutex_unlock(&closer_lock);

                /* the one call that may block, for as long as the file wants */
                (void)close(fd);

                pthread_mutex_lock(&closer_lock);
                closer_busy = 0;
                if (!closer_n)
                        pthread_cond_broadcast(&closer_done);
        }
        return NULL;
}

/**
 * closer_start() - start the closing thread
 *
 * Idempotent. Call before the event loop runs.
 *
 * Return: 0, or the negative errno of pthread_create().
 */
int closer_start(void) {
        pthread_attr_t attr;
        pthread_t thread;
        int r = 0;

        pthread_mutex_lock(&closer_lock);
        if (closer_running)
                goto out;
        r = -pthread_attr_init(&attr);
        if (r < 0)
                goto out;
        r = -pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (r == 0)
                r = -pthread_create(&thread, &attr, closer_thread, NULL);
        pthread_attr_destroy(&attr);
        closer_running = r == 0;
out:
        pthread_mutex_unlock(&closer_lock);
        return r;
}

/* make room for one more; false if the ring cannot grow */
static bool closer_grow(void) {
        size_t cap = closer_cap ? closer_cap * 2 : 64;
        int *fds;

        if (closer_n < closer_cap)
                return true;
        fds = malloc(cap * sizeof(*fds));
        if (!fds)
                return false;
        for (size_t i = 0; i < closer_n; ++i)
                fds[i] = closer_fds[(closer_head + i) % closer_cap];
        free(closer_fds);
        closer_fds = fds;
        closer_cap = cap;
        closer_head = 0;
        return true;
}

/**
 * closer_close() - close a descriptor without waiting for it
 * @fd:         descriptor, owned by the closer from now on; negative: nothing
 *
 * Never blocks on the file. Only if the queue cannot grow (out of memory)
 * does the caller close it itself.
 */
void closer_close(int fd) {
        bool queued = false;

        if (fd < 0)
                return;
        pthread_mutex_lock(&closer_lock);
        if (closer_running && closer_grow()) {
                closer_fds[(closer_head + closer_n) % closer_cap] = fd;
                ++closer_n;
                queued = true;
                pthread_cond_signal(&closer_wake);
        }
        pthread_mutex_unlock(&closer_lock);
        if (!queued)
                (void)close(fd);
}

/**
 * closer_pending() - descriptors handed over and not closed yet
 *
 * Return: the count (0 without a closer).
 */
size_t closer_pending(void) {
        size_t n;

        pthread_mutex_lock(&closer_lock);
        n = closer_n + closer_busy;
        pthread_mutex_unlock(&closer_lock);
        return n;
}

/**
 * closer_flush() - wait until every handed-over descriptor is closed
 * @timeout_ms: the longest wait
 *
 * For an orderly exit: a close that blocks for ever must not keep the
 * broker from stopping.
 *
 * Return: true if nothing is pending any more.
 */
bool closer_flush(unsigned int timeout_ms) {
        struct timespec until;
        bool empty;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
                ++until.tv_sec;
                until.tv_nsec -= 1000000000L;
        }

        pthread_mutex_lock(&closer_lock);
        while (closer_n + closer_busy &&
               pthread_cond_timedwait(&closer_done, &closer_lock, &until) != ETIMEDOUT)
                ;
        empty = !(closer_n + closer_busy);
        pthread_mutex_unlock(&closer_lock);
        return empty;
}
