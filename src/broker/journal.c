/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Journal: the log sink for systemd's journal
 *
 * Each field is one iovec "NAME=value"; sd_journal_sendv() encodes values
 * with newlines itself. Fields with a name the journal would reject or
 * treat as trusted are dropped rather than failing the whole message.
 * Nothing is kept open: libsystemd holds the one journal socket.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>
#include "broker/journal.h"

/* a field name and value, as one "NAME=value" string */
#define JOURNAL_FIELD_MAX 256
/* what the journal accepts as a field name (journald's own limit is 64) */
#define JOURNAL_NAME_MAX 64

/**
 * journal_stderr_is_journal() - is stderr systemd's stream to the journal?
 *
 * systemd sets $JOURNAL_STREAM to "DEVICE:INODE" of the stream it connects
 * stdout and stderr to. A child that inherited the variable but has its
 * stderr elsewhere (a pipe, a terminal) must not take it for the journal,
 * hence the comparison with fstat().
 *
 * Return: true if stderr is the stream $JOURNAL_STREAM names.
 */
bool journal_stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        char tail;

        if (!e || sscanf(e, "%llu:%llu%c", &dev, &ino, &tail) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/**
 * journal_available() - is there a journal to send to?
 *
 * sd_journal_sendv() quietly drops messages when the journal's socket does
 * not exist, so whoever installs journal_send() asks this first.
 *
 * Return: true if JOURNAL_SOCKET_PATH is a socket.
 */
bool journal_available(void) {
        struct stat st;

        return stat(JOURNAL_SOCKET_PATH, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* uppercase letters, digits and '_', not leading '_' or digit (journal-send(3)) */
static bool journal_name_valid(const char *name) {
        size_t n = strlen(name);

        if (n == 0 || n > JOURNAL_NAME_MAX || name[0] == '_' || (name[0] >= '0' && name[0] <= '9'))
                return false;
        for (size_t i = 0; i < n; ++i)
                if (!((name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= '0' && name[i] <= '9') ||
                      name[i] == '_'))
                        return false;
        return true;
}

/**
 * journal_send() - send one message to the journal (a LogSinkFn)
 * @level:      syslog priority
 * @func:       function the message comes from (CODE_FUNC=)
 * @fields:     extra fields; invalid names are left out
 * @n_fields:   number of @fields, at most LOG_FIELDS_MAX
 * @message:    the text (MESSAGE=)
 *
 * Return: 0, or the negative errno of sd_journal_sendv() (no journal
 *         socket, say); the logger then falls back to stderr.
 */
int journal_send(int level, const char *func, const LogField *fields, size_t n_fields,
                 const char *message) {
        char head[4][JOURNAL_FIELD_MAX];
        char extra[LOG_FIELDS_MAX][JOURNAL_FIELD_MAX];
        struct iovec iov[1 + 4 + LOG_FIELDS_MAX];
        size_t n = 0, len = strlen(message);
        char *text;
        int r;

        /* the message is up to LOG_MESSAGE_MAX long: it gets its own buffer */
        text = malloc(sizeof("MESSAGE=") + len);
        if (!text)
                return -ENOMEM;
        memcpy(text, "MESSAGE=", sizeof("MESSAGE=") - 1);
        memcpy(text + sizeof("MESSAGE=") - 1, message, len + 1);
        iov[n++] = (struct iovec){ .iov_base = text, .iov_len = sizeof("MESSAGE=") - 1 + len };

        snprintf(head[0], sizeof(head[0]), "PRIORITY=%d", level);
        snprintf(head[1], sizeof(head[1]), "CODE_FUNC=%s", func);
        snprintf(head[2], sizeof(head[2]), "SYSLOG_IDENTIFIER=bus1d");
        snprintf(head[3], sizeof(head[3]), "SYSLOG_PID=%d", (int)getpid());
        for (size_t i = 0; i < 4; ++i)
                iov[n++] = (struct iovec){ .iov_base = head[i], .iov_len = strlen(head[i]) };

        for (size_t i = 0; i < n_fields && i < LOG_FIELDS_MAX; ++i) {
                int l;

                if (!journal_name_valid(fields[i].name))
                        continue;
                l = snprintf(extra[i], sizeof(extra[i]), "%s=%s", fields[i].name,
                             fields[i].value);
                if (l < 0)
                        continue;
                iov[n++] = (struct iovec){
                        .iov_base = extra[i],
                        .iov_len = MIN((size_t)l, sizeof(extra[i]) - 1),
                };
        }

        r = sd_journal_sendv(iov, (int)n);
        free(text);
        return r < 0 ? r : 0;
}
