/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * OpenMetrics: the text format's escaping, for the broker that writes
 * METRICS and bus1ctl that renders them, in one place
 */

#include <stdio.h>

/* help texts and label values escape backslash, double quote and line feed */
static inline void openmetrics_write_escaped(FILE *f, const char *s) {
        for (; *s; ++s) {
                if (*s == '\\' || *s == '"')
                        fputc('\\', f);
                if (*s == '\n')
                        fputs("\\n", f);
                else
                        fputc(*s, f);
        }
}
