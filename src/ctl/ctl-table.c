/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CtlTable: aligned text tables for bus1ctl
 *
 * Invariant: n_cells is a multiple of n_columns once a row is complete;
 * the first n_columns cells are the header.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "ctl/ctl-table.h"

/**
 * ctl_table_init() - an empty table
 * @table:      table
 * @n_columns:  number of columns, at least 1
 * @header:     their titles
 *
 * Return: 0, -ENOMEM.
 */
int ctl_table_init(CtlTable *table, size_t n_columns, const char *const *header) {
        *table = (CtlTable){ .n_columns = n_columns };
        for (size_t i = 0; i < n_columns; ++i)
                ctl_table_add(table, header[i]);
        return table->oom ? -ENOMEM : 0;
}

/**
 * ctl_table_deinit() - free a table
 * @table:      table
 */
void ctl_table_deinit(CtlTable *table) {
        for (size_t i = 0; i < table->n_cells; ++i)
                free(table->cells[i]);
        free(table->cells);
        *table = (CtlTable){};
}

static void ctl_table_take(CtlTable *table, char *cell) {
        char **cells;

        if (!cell) {
                table->oom = true;
                return;
        }
        if (table->n_cells == table->cap) {
                size_t cap = table->cap ? table->cap * 2 : 64;

                cells = realloc(table->cells, cap * sizeof(*cells));
                if (!cells) {
                        free(cell);
                        table->oom = true;
                        return;
                }
                table->cells = cells;
                table->cap = cap;
        }
        table->cells[table->n_cells++] = cell;
}

/**
 * ctl_table_add() - the next cell, left to right, top to bottom
 * @table:      table
 * @cell:       text; NULL shows as "-"
 */
void ctl_table_add(CtlTable *table, const char *cell) {
        ctl_table_take(table, strdup(cell ?: "-"));
}

/**
 * ctl_table_addf() - the next cell, formatted
 * @table:      table
 * @fmt:        printf format
 */
void ctl_table_addf(CtlTable *table, const char *fmt, ...) {
        char *cell = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&cell, fmt, ap) < 0)
                cell = NULL;
        va_end(ap);
        ctl_table_take(table, cell);
}

/**
 * ctl_table_rows() - rows below the header
 * @table:      table
 *
 * Return: the number of complete rows.
 */
size_t ctl_table_rows(const CtlTable *table) {
        return table->n_cells / table->n_columns - 1;
}

/* characters, not bytes: a UTF-8 continuation byte adds no width */
static size_t ctl_table_width(const char *s) {
        size_t n = 0;

        for (; *s; ++s)
                n += ((unsigned char)*s & 0xc0) != 0x80;
        return n;
}

/**
 * ctl_table_print() - print the table
 * @table:      table
 * @f:          stream
 * @header:     print the header row
 *
 * Return: 0, -ENOMEM if a cell could not be stored, -EIO if writing failed.
 */
int ctl_table_print(CtlTable *table, FILE *f, bool header) {
        size_t n_rows = table->n_cells / table->n_columns, *width;

        if (table->oom)
                return -ENOMEM;
        width = calloc(table->n_columns, sizeof(*width));
        if (!width)
                return -ENOMEM;
        for (size_t i = 0; i < n_rows * table->n_columns; ++i) {
                size_t w = ctl_table_width(table->cells[i]);

                if (w > width[i % table->n_columns])
                        width[i % table->n_columns] = w;
        }
        for (size_t row = header ? 0 : 1; row < n_rows; ++row) {
                for (size_t c = 0; c < table->n_columns; ++c) {
                        const char *cell = table->cells[row * table->n_columns + c];

                        if (c + 1 == table->n_columns) {
                                fprintf(f, "%s\n", cell);
                                break;
                        }
                        fprintf(f, "%s%*s  ", cell,
                                (int)(width[c] - ctl_table_width(cell)), "");
                }
        }
        free(width);
        return ferror(f) ? -EIO : 0;
}
