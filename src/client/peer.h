/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Bus1Peer: the native API's peer object (internal view)
 *
 * A Bus1Peer wraps one Client. It is pinned by its users and by every
 * Bus1Message received on it (the messages point into its pool); the last
 * reference detaches any event source and closes the connection. Each call
 * into the Client holds client->lock, as the UAPI layer does; nothing here
 * holds it while user code (a message handler) runs.
 *
 * The event members belong to event.c; peer.c only calls the two helpers
 * below around PEER_DISCONNECT.
 */

#include <stdbool.h>
#include "bus1/client.h"
#include "client/client.h"

typedef struct sd_event_source sd_event_source;

struct Bus1Peer {
        unsigned long n_refs;           /* atomic */
        Client *client;

        /* event.c */
        Bus1MessageHandler handler;
        void *userdata;
        Bus1DisconnectHandler disconnect_handler;       /* NULL: the loop exits */
        void *disconnect_userdata;
        sd_event *event;                /* referenced while attached */
        sd_event_source *io;            /* NULL unless attached */
};

int peer_result(int r);
bool peer_event_pause(Bus1Peer *peer);
void peer_event_resume(Bus1Peer *peer, bool was_enabled);
