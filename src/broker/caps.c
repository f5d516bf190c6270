/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Caps: give up every privilege once the broker listens (libcap-ng)
 *
 * Invariant after caps_drop() returned 0: the effective, permitted,
 * inheritable and ambient sets are empty, no_new_privs is set, and the
 * bounding set is empty if the process started with CAP_SETPCAP (as root
 * does). A broker started without capabilities (a user service) only gets
 * no_new_privs: it could not clear its bounding set, and with nothing
 * permitted and no_new_privs set there is nothing left to drop.
 */

#include <cap-ng.h>
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include "broker/caps.h"
#include "util/log.h"
#include "util/macro.h"

static int caps_lookup_user(const char *name, uid_t *uidp, gid_t *gidp) {
        struct passwd *pw;

        errno = 0;
        pw = getpwnam(name);
        /* glibc reports "not found" as no error, or ENOENT, ESRCH, EBADF or EPERM */
        if (!pw)
                return errno && errno != ENOENT && errno != ESRCH && errno != EBADF &&
                       errno != EPERM ? -errno : -ESRCH;
        *uidp = pw->pw_uid;
        *gidp = pw->pw_gid;
        return 0;
}

static int caps_verify(void) {
        if (capng_get_caps_process() < 0)
                return -EIO;
        if (capng_have_capabilities(CAPNG_SELECT_CAPS) != CAPNG_NONE)
                return -EPERM;
        return 0;
}

/**
 * caps_drop() - drop every capability, optionally becoming another user
 * @user:       a user name to switch to (uid, primary gid, no supplementary
 *              groups) before dropping, or NULL to stay who we are; only
 *              root can switch
 *
 * Call it after the listening sockets exist and before serving anyone.
 * Changing credentials makes the process dumpable again, so a switch to
 * @user also sets PR_SET_DUMPABLE back to 0 (pools must stay private).
 * What was dropped is logged at debug level.
 *
 * Return: 0; -ESRCH if @user does not exist; -EPERM if we are not root but
 *         @user was given, or the capabilities could not be dropped; -EIO if
 *         they could not be read; or the errno of getpwnam() or prctl().
 */
int caps_drop(const char *user) {
        _cleanup_(freep) char *text = NULL;
        uid_t uid = (uid_t)-1;
        gid_t gid = (gid_t)-1;
        bool setpcap;
        int r;

        if (user) {
                if (geteuid() != 0)
                        return -EPERM;
                r = caps_lookup_user(user, &uid, &gid);
                if (r < 0)
                        return r;
        }

        /* the broker never executes anything; make sure nothing could gain privileges */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;

        if (capng_get_caps_process() < 0)
                return -EIO;
        if (!user && capng_have_capabilities(CAPNG_SELECT_CAPS) == CAPNG_NONE) {
                log_debug("no capabilities to drop");
                return 0;
        }

        text = capng_print_caps_text(CAPNG_PRINT_BUFFER, CAPNG_PERMITTED);
        /* the bounding set can only be cleared while we hold CAP_SETPCAP */
        setpcap = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP);

        capng_clear(CAPNG_SELECT_ALL);
        if (user) {
                /* takes CAP_SETUID/CAP_SETGID for the switch, then applies the cleared sets */
                r = capng_change_id(uid, gid, CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_BOUNDING |
                                              CAPNG_CLEAR_AMBIENT);
                if (r < 0) {
                        log_debug("capng_change_id(%u, %u): %d", (unsigned)uid, (unsigned)gid, r);
                        return -EPERM;
                }
                if (prctl(PR_SET_DUMPABLE, 0) < 0)
                        return -errno;
        } else if (capng_apply(setpcap ? CAPNG_SELECT_ALL
                                       : CAPNG_SELECT_CAPS | CAPNG_SELECT_AMBIENT) < 0) {
                return -EPERM;
        }

        r = caps_verify();
        if (r < 0)
                return r;

        if (user)
                log_debug("now uid %u gid %u", (unsigned)uid, (unsigned)gid);
        log_debug("dropped capabilities: %s; bounding set %s", text ? text : "(unknown)",
                  setpcap ? "cleared" : "kept (no CAP_SETPCAP)");
        return 0;
}
