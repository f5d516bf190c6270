/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * CtlClient: bus1ctl's connection to the broker
 *
 * A control connection never says HELLO, so the broker lists it as no peer
 * and pushes it no entries: what arrives is the CTL_DATA records and the
 * REPLY of each request, and after a MONITOR the EVENTS records. Every
 * record is decoded and checked with src/proto; anything else, or any fd,
 * is a protocol violation (-EBADMSG). Requests are sent one at a time.
 */

#include <stddef.h>
#include <stdint.h>
#include "proto/proto.h"

typedef struct CtlClient {
        int fd;
        uint64_t cookie;        /* of the last request */
        uint8_t *rx;            /* PROTO_RECORD_MAX + 8 */
} CtlClient;

#define CTL_CLIENT_NULL { .fd = -1 }

int ctl_client_connect(CtlClient *client, const char *path);
void ctl_client_close(CtlClient *client);

int ctl_client_request(CtlClient *client, const ProtoCtl *req, char **bodyp, size_t *lenp,
                       uint32_t *formatp, uint32_t *flagsp);
int ctl_client_call(CtlClient *client, uint16_t type, uint64_t arg, char **bodyp,
                    size_t *lenp, uint32_t *formatp, uint32_t *flagsp);
int ctl_client_monitor(CtlClient *client, const ProtoCtlMonitor *filter);
int ctl_client_read_events(CtlClient *client, ProtoEvent *events, size_t *n_eventsp);
