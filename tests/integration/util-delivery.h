/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Util-delivery: running out of descriptors on purpose, and forked children
 *
 * delivery_squeeze() leaves the test process exactly @spare free
 * descriptors: it lowers the soft RLIMIT_NOFILE to @spare above the highest
 * open descriptor and fills every free number below the limit with a
 * duplicate of /dev/null, then closes @spare of those again.
 * delivery_unsqueeze() closes the duplicates and restores the limit. A test
 * calls it before it asserts anything about what happened while squeezed,
 * and delivery_cleanup() (called by the teardowns) does it too, so a failing
 * test never leaves the process crippled for the next one.
 *
 * delivery_fork() runs a function in a forked child, which _exit()s with
 * the function's result: a child never returns into cmocka, and reports a
 * failure only through its exit status (the CHILD_* checks print what
 * failed to stderr and _exit(1)). delivery_reap() waits for the child with
 * a deadline, SIGKILLs it after that, and fails the test unless the child
 * exited with 0; delivery_cleanup() kills a child a failed test left behind.
 *
 * Header-only (static inline), next to util-uapi.h or the native fixture.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* how long a child may take (ms) before it is killed and the test fails */
#define DELIVERY_CHILD_TIMEOUT_MS 10000

typedef struct DeliverySqueeze {
        bool active;
        struct rlimit old;
        int null_fd;
        int *fds;               /* the duplicates filling the table */
        size_t n_fds;
} DeliverySqueeze;

static DeliverySqueeze delivery_squeeze_state = { .null_fd = -1 };
static pid_t delivery_child_pid;

/* give back every descriptor and the old limit; harmless when not squeezed */
static inline void delivery_unsqueeze(void) {
        DeliverySqueeze *s = &delivery_squeeze_state;

        if (!s->active)
                return;
        for (size_t i = 0; i < s->n_fds; ++i)
                close(s->fds[i]);
        free(s->fds);
        s->fds = NULL;
        s->n_fds = 0;
        if (s->null_fd >= 0)
                close(s->null_fd);
        s->null_fd = -1;
        (void)setrlimit(RLIMIT_NOFILE, &s->old);
        s->active = false;
}

/*
 * Leave exactly @spare free descriptors. Return: 0, or a negative errno
 * (nothing is squeezed then). Makes no cmocka assertion.
 */
static inline int delivery_squeeze(unsigned int spare) {
        DeliverySqueeze *s = &delivery_squeeze_state;
        struct rlimit lim;
        rlim_t scan;
        size_t cap;
        int highest = -1, fd, r;

        if (s->active)
                return -EBUSY;
        if (getrlimit(RLIMIT_NOFILE, &s->old) < 0)
                return -errno;
        s->null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (s->null_fd < 0)
                return -errno;
        s->active = true;

        scan = s->old.rlim_cur < (rlim_t)1 << 20 ? s->old.rlim_cur : (rlim_t)1 << 20;
        for (fd = 0; (rlim_t)fd < scan; ++fd)
                if (fcntl(fd, F_GETFD) >= 0)
                        highest = fd;
        cap = (size_t)highest + 1 + spare;
        s->fds = calloc(cap, sizeof(int));
        if (!s->fds) {
                delivery_unsqueeze();
                return -ENOMEM;
        }

        lim = s->old;
        lim.rlim_cur = (rlim_t)cap;
        if (setrlimit(RLIMIT_NOFILE, &lim) < 0) {
                r = -errno;
                delivery_unsqueeze();
                return r;
        }
        while ((fd = fcntl(s->null_fd, F_DUPFD_CLOEXEC, 0)) >= 0) {
                if (s->n_fds >= cap) {
                        close(fd);
                        delivery_unsqueeze();
                        return -EOVERFLOW;
                }
                s->fds[s->n_fds++] = fd;
        }
        if (errno != EMFILE) {
                r = -errno;
                delivery_unsqueeze();
                return r;
        }
        if (s->n_fds < spare) {
                delivery_unsqueeze();
                return -ERANGE;
        }
        for (unsigned int i = 0; i < spare; ++i)
                close(s->fds[--s->n_fds]);
        return 0;
}

/* poll one descriptor without asserting (usable while squeezed); revents */
static inline short delivery_poll(int fd, short events, int timeout_ms) {
        struct pollfd p = { .fd = fd, .events = events };
        int r;

        do {
                r = poll(&p, 1, timeout_ms);
        } while (r < 0 && errno == EINTR);
        return r > 0 ? p.revents : (r < 0 ? -1 : 0);
}

/* checks for children: print what failed and _exit(1), never return to cmocka */
#define CHILD_CHECK(_cond)                                                              \
        do {                                                                            \
                if (!(_cond)) {                                                         \
                        fprintf(stderr, "child %d, %s:%d: %s\n", (int)getpid(),         \
                                __FILE__, __LINE__, #_cond);                            \
                        _exit(1);                                                       \
                }                                                                       \
        } while (0)

#define CHILD_EQ(_a, _b)                                                                \
        do {                                                                            \
                long long _x = (long long)(_a), _y = (long long)(_b);                   \
                if (_x != _y) {                                                         \
                        fprintf(stderr, "child %d, %s:%d: %s is %lld, expected %s (%lld)\n", \
                                (int)getpid(), __FILE__, __LINE__, #_a, _x, #_b, _y);   \
                        _exit(1);                                                       \
                }                                                                       \
        } while (0)

/* fork; the child runs @fn(@userdata) and _exit()s with its result */
static inline pid_t delivery_fork(int (*fn)(void *userdata), void *userdata) {
        pid_t pid;

        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid == 0)
                _exit(fn(userdata));
        if (pid > 0)
                delivery_child_pid = pid;
        return pid;
}

static inline long delivery_now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait for the child, at most DELIVERY_CHILD_TIMEOUT_MS. Return: its wait
 * status, or -1 if it had to be killed.
 */
static inline int delivery_wait(pid_t pid) {
        long deadline = delivery_now_ms() + DELIVERY_CHILD_TIMEOUT_MS;
        int status;
        pid_t r;

        for (;;) {
                r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        break;
                if (r < 0 && errno != EINTR)
                        return -1;
                if (delivery_now_ms() > deadline) {
                        kill(pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        status = -1;
                        break;
                }
                usleep(2000);
        }
        if (pid == delivery_child_pid)
                delivery_child_pid = 0;
        return status;
}

/* the child must have exited with 0 (use only in a cmocka test) */
#define delivery_reap(_pid)                                                             \
        do {                                                                            \
                int _status = delivery_wait(_pid);                                      \
                if (_status == -1)                                                      \
                        fail_msg("child %d hung and was killed", (int)(_pid));          \
                if (!WIFEXITED(_status))                                                \
                        fail_msg("child %d died of signal %d", (int)(_pid),             \
                                 WIFSIGNALED(_status) ? WTERMSIG(_status) : -1);        \
                if (WEXITSTATUS(_status) != 0)                                          \
                        fail_msg("child %d failed (exit %d, see its stderr)",           \
                                 (int)(_pid), WEXITSTATUS(_status));                    \
        } while (0)

/* for teardowns: undo a squeeze, kill a child left behind */
static inline void delivery_cleanup(void) {
        int status;

        delivery_unsqueeze();
        if (delivery_child_pid > 0) {
                kill(delivery_child_pid, SIGKILL);
                waitpid(delivery_child_pid, &status, 0);
                delivery_child_pid = 0;
        }
}
