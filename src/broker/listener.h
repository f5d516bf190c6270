/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Listener: one listening SOCK_SEQPACKET socket of the broker
 *
 * Accepts connections and hands each new fd to its callback. Running out of
 * descriptors (EMFILE, ENFILE) refuses nothing but the pending connections:
 * the listener stops polling (a level-triggered socket that keeps failing
 * accept4() would spin) and resumes when listener_resume() is called, or
 * after a short timer.
 */

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

typedef struct Listener Listener;

/* takes ownership of @fd; a negative return is logged by the listener */
typedef int (*ListenerAcceptFn)(Listener *listener, int fd, void *userdata);

struct Listener {
        sd_event *event;
        int fd;
        bool owns_path;         /* unlink the socket path on free, if still ours */
        dev_t path_dev;         /* the socket file we bound */
        ino_t path_ino;
        char *path;
        sd_event_source *io;
        sd_event_source *retry;
        ListenerAcceptFn accept_fn;
        void *userdata;
};

int listener_new_path(Listener **listenerp, sd_event *event, const char *path, mode_t mode,
                      ListenerAcceptFn fn, void *userdata);
int listener_new_fd(Listener **listenerp, sd_event *event, int fd,
                    ListenerAcceptFn fn, void *userdata);
Listener *listener_free(Listener *listener);
void listener_resume(Listener *listener);
