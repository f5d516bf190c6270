/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * CtlMonitor: bus1ctl monitor, the broker's events as they happen
 *
 * Sends MONITOR with the filter of the options and prints each event the
 * broker streams back, one line each (as text under a header, or one JSON
 * object per line with --json), flushed at once so that a pipe sees it,
 * until SIGINT or SIGTERM, or until the reader of the output goes away.
 */

#include <stdint.h>
#include "ctl/ctl-client.h"
#include "ctl/ctl-render.h"
#include "proto/proto.h"

int ctl_monitor_parse_types(const char *s, uint64_t *typesp);
int ctl_monitor(CtlClient *client, const CtlOutput *out, const ProtoCtlMonitor *filter);
