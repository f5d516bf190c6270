/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Bus1Message: one received entry of the native API (internal view)
 *
 * bus1_peer_recv() allocates the message before it receives, so that
 * nothing can fail once an entry has been dequeued, and then fills it with
 * message_fill().
 */

#include <stdint.h>
#include "bus1/client.h"
#include "client/client.h"

int message_new(Bus1Message **messagep);
Bus1Message *message_free(Bus1Message *message);
int message_fill(Bus1Message *message, Bus1Peer *peer, uint64_t flags, ClientRecv *recv);
