/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Error: the words for the errors libbus1-client gives a meaning of its own
 *
 * The library returns plain negative errnos. Some mean something bus1
 * specific that strerror(3) cannot say ("Connection reset by peer" for a
 * broker that exited); bus1_strerror() says it. The table is constant, so
 * the strings are safe to use from any thread.
 */

#include <errno.h>
#include <string.h>
#include "bus1/client.h"
#include "util/macro.h"

static const struct {
        int error;
        const char *text;
} error_texts[] = {
        { ECONNRESET, "The connection to the broker ended (the broker exited or closed it)" },
        { EPROTO, "The broker broke the protocol; the connection to it was closed" },
        { ESHUTDOWN, "The peer (or a destination node's owner) is disconnected" },
        { EBADFD, "Another process (a forked child) took the peer over" },
        { EHOSTUNREACH, "The destination node was destroyed" },
        { ENXIO, "No such handle or node" },
        { EDQUOT, "A receiver's quota or limits would be exceeded" },
        { EXFULL, "A receiver's pool has no free range large enough" },
        { EAGAIN, "Nothing is queued" },
};

/**
 * bus1_strerror() - what an error of this library means
 * @error:      an errno, negative or positive
 *
 * Return: a static string: bus1's meaning for the errors listed above,
 *         else the text strerror(3) has for @error.
 */
_public_ const char *bus1_strerror(int error) {
        if (error < 0)
                error = -error;
        for (size_t i = 0; i < ARRAY_SIZE(error_texts); ++i)
                if (error_texts[i].error == error)
                        return error_texts[i].text;
        return strerror(error);
}
