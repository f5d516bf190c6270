/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Listener: one listening SOCK_SEQPACKET socket of the broker
 *
 * Invariants: the io source is enabled unless the last accept4() ran out of
 * descriptors; then the retry timer is armed and re-enables it. A listener
 * that bound a path (owns_path) removes it when freed only while the path
 * still names the socket it bound (dev, ino): a socket another broker put
 * there since stays.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include "broker/listener.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/unix-address.h"

/* connections taken per wakeup, so that a flood cannot starve clients */
#define LISTENER_ACCEPT_MAX 32
#define LISTENER_RETRY_USEC (100 * 1000)

static int listener_retry_fn(sd_event_source *s, uint64_t usec, void *userdata) {
        listener_resume(userdata);
        return 0;
}

static void listener_pause(Listener *listener) {
        uint64_t now;
        int r;

        sd_event_source_set_enabled(listener->io, SD_EVENT_OFF);
        r = sd_event_now(listener->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return;
        if (listener->retry) {
                sd_event_source_set_time(listener->retry, now + LISTENER_RETRY_USEC);
                sd_event_source_set_enabled(listener->retry, SD_EVENT_ONESHOT);
                return;
        }
        r = sd_event_add_time(listener->event, &listener->retry, CLOCK_MONOTONIC,
                              now + LISTENER_RETRY_USEC, 0, listener_retry_fn, listener);
        if (r >= 0)
                sd_event_source_set_description(listener->retry, "listener-retry");
}

static int listener_io_fn(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Listener *listener = userdata;
        int r;

        for (unsigned int i = 0; i < LISTENER_ACCEPT_MAX; ++i) {
                int cfd = accept4(listener->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (cfd < 0) {
                        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                                return 0;
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                            errno == ENOMEM) {
                                log_warning("accept4: %s; pausing the listener",
                                            strerror(errno));
                                listener_pause(listener);
                                return 0;
                        }
                        /* anything else is the listener's own failure */
                        log_error("accept4: %s", strerror(errno));
                        return -errno;
                }

                r = listener->accept_fn(listener, cfd, listener->userdata);
                if (r < 0)
                        log_warning("refusing a connection: %s", strerror(-r));
        }
        return 0;
}

static int listener_setup(Listener *listener) {
        int r;

        r = sd_event_add_io(listener->event, &listener->io, listener->fd, EPOLLIN,
                            listener_io_fn, listener);
        if (r < 0)
                return r;
        sd_event_source_set_description(listener->io, "listener");
        sd_event_source_set_exit_on_failure(listener->io, true);
        return 0;
}

static int listener_alloc(Listener **listenerp, sd_event *event, ListenerAcceptFn fn,
                          void *userdata) {
        Listener *listener;

        listener = calloc(1, sizeof(*listener));
        if (!listener)
                return -ENOMEM;
        listener->event = sd_event_ref(event);
        listener->fd = -1;
        listener->accept_fn = fn;
        listener->userdata = userdata;
        *listenerp = listener;
        return 0;
}

DEFINE_CLEANUP(Listener *, listener_free);

/**
 * listener_new_fd() - listen on an inherited socket (socket activation)
 * @listenerp:  out: the listener
 * @event:      event loop
 * @fd:         a listening AF_UNIX SOCK_SEQPACKET socket, owned from now on
 * @fn:         called with each accepted connection
 * @userdata:   passed to @fn
 *
 * Return: 0, -ENOMEM, -EINVAL if @fd is not a listening SOCK_SEQPACKET
 *         AF_UNIX socket, or the errno of sd-event.
 */
int listener_new_fd(Listener **listenerp, sd_event *event, int fd,
                    ListenerAcceptFn fn, void *userdata) {
        _cleanup_(listener_freep) Listener *listener = NULL;
        int r;

        r = listener_alloc(&listener, event, fn, userdata);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        listener->fd = fd;

        r = sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0);
        if (r < 0)
                return r;
        if (r == 0)
                return -EINVAL;

        /* inherited sockets may be blocking; the broker never blocks */
        r = fcntl(fd, F_GETFL);
        if (r < 0 || fcntl(fd, F_SETFL, r | O_NONBLOCK) < 0)
                return -errno;

        r = listener_setup(listener);
        if (r < 0)
                return r;

        *listenerp = TAKE_PTR(listener);
        return 0;
}

/*
 * What is at @path before binding: nothing, or a socket nobody accepts on
 * (left behind by a broker that died; it is removed). Return: 0, -EEXIST
 * if it is no socket, -EADDRINUSE if a broker (or anything) accepts there,
 * or the errno of lstat(2), connect(2) or unlink(2).
 */
static int listener_claim_path(const char *path, const struct sockaddr_un *sa, socklen_t len) {
        struct stat st;
        int fd, r;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        r = connect(fd, (const struct sockaddr *)sa, len) < 0 ? -errno : 0;
        safe_close(fd);
        /* a full backlog (EAGAIN) or a socket of another type is just as alive */
        if (r == 0 || r == -EAGAIN || r == -EPROTOTYPE)
                return -EADDRINUSE;
        if (r != -ECONNREFUSED)
                return r;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

/**
 * listener_new_path() - bind and listen on a socket path
 * @listenerp:  out: the listener
 * @event:      event loop
 * @path:       socket path; a stale socket there (nobody accepts) is replaced
 * @mode:       permissions of the socket file, or 0 for what the umask gives
 * @fn:         called with each accepted connection
 * @userdata:   passed to @fn
 *
 * The socket is unlinked again when the listener is freed, if it is still
 * the one at @path.
 *
 * Return: 0, -ENOMEM, -ENAMETOOLONG, -EADDRINUSE if something accepts
 *         connections at @path, -EEXIST if @path is no socket, or the errno
 *         of socket(2), bind(2), chmod(2), listen(2) or sd-event.
 */
int listener_new_path(Listener **listenerp, sd_event *event, const char *path, mode_t mode,
                      ListenerAcceptFn fn, void *userdata) {
        _cleanup_(listener_freep) Listener *listener = NULL;
        struct sockaddr_un sa;
        socklen_t salen;
        int r;

        r = unix_address(&sa, path, &salen);
        if (r < 0)
                return r;

        r = listener_alloc(&listener, event, fn, userdata);
        if (r < 0)
                return r;

        listener->path = strdup(path);
        if (!listener->path)
                return -ENOMEM;

        listener->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (listener->fd < 0)
                return -errno;

        /* a live broker keeps its address; a dead one's socket would fail bind() */
        r = listener_claim_path(path, &sa, salen);
        if (r < 0)
                return r;
        if (bind(listener->fd, (struct sockaddr *)&sa, salen) < 0)
                return -errno;
        {
                struct stat st;

                if (lstat(path, &st) < 0)
                        return -errno;
                listener->path_dev = st.st_dev;
                listener->path_ino = st.st_ino;
                listener->owns_path = true;
        }
        if (mode && chmod(path, mode) < 0)
                return -errno;
        if (listen(listener->fd, SOMAXCONN) < 0)
                return -errno;

        r = listener_setup(listener);
        if (r < 0)
                return r;

        *listenerp = TAKE_PTR(listener);
        return 0;
}

/**
 * listener_free() - stop listening
 * @listener:   listener, or NULL
 *
 * Return: NULL.
 */
Listener *listener_free(Listener *listener) {
        if (!listener)
                return NULL;

        sd_event_source_disable_unref(listener->retry);
        sd_event_source_disable_unref(listener->io);
        if (listener->owns_path) {
                struct stat st;

                /* only our own socket: another broker may have replaced it */
                if (lstat(listener->path, &st) == 0 && st.st_dev == listener->path_dev &&
                    st.st_ino == listener->path_ino)
                        unlink(listener->path);
        }
        free(listener->path);
        safe_close(listener->fd);
        sd_event_unref(listener->event);
        free(listener);
        return NULL;
}

/**
 * listener_resume() - poll again after running out of descriptors
 * @listener:   listener
 *
 * Called when a connection went away (a descriptor was freed) or by the
 * retry timer.
 */
void listener_resume(Listener *listener) {
        if (listener->retry)
                sd_event_source_set_enabled(listener->retry, SD_EVENT_OFF);
        sd_event_source_set_enabled(listener->io, SD_EVENT_ON);
}
