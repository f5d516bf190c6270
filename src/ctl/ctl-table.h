/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * CtlTable: aligned text tables for bus1ctl
 *
 * A table has a fixed number of columns and a header; cells are copied in.
 * Printing pads every column but the last to its widest cell (counted in
 * UTF-8 characters), two spaces apart, so the last column (a command line)
 * may be as long as it is. Out of memory is sticky and reported by
 * ctl_table_print().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct CtlTable {
        size_t n_columns;
        char **cells;           /* header row first, row-major */
        size_t n_cells;
        size_t cap;
        bool oom;
} CtlTable;

int ctl_table_init(CtlTable *table, size_t n_columns, const char *const *header);
void ctl_table_deinit(CtlTable *table);
void ctl_table_add(CtlTable *table, const char *cell);
void ctl_table_addf(CtlTable *table, const char *fmt, ...)
        __attribute__((__format__(__printf__, 2, 3)));
int ctl_table_print(CtlTable *table, FILE *f, bool header);
size_t ctl_table_rows(const CtlTable *table);
