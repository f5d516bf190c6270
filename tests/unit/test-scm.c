/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for sending records with many fds (util/scm.c scm_send_carried())
 *
 *  - 300 fds: a carrier with the first 47 goes ahead, the record brings the
 *    last 253, in order;
 *  - resuming a record whose carrier went out already (n_sent 47) sends
 *    only the record, with the same 253 fds: a socket that was full after
 *    the carrier never gets the carrier twice;
 *  - a count of sent fds above the record's is refused.
 */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "util/scm.h"

#define N_FDS 300

static int carrier(void *buf, size_t size, size_t n_fds) {
        if (size < 8)
                return -ENOBUFS;
        memset(buf, 'C', 8);
        ((uint8_t *)buf)[7] = (uint8_t)n_fds;
        return 8;
}

/* the next packet: its first byte, and its fds (whose inodes are checked) */
static char next_packet(int fd, const struct stat *want, size_t first, size_t n) {
        int fds[SCM_FDS_MAX];
        char buf[16];
        size_t n_fds = 0;
        int flags = 0;
        ssize_t l;

        l = scm_recv(fd, buf, sizeof(buf), MSG_DONTWAIT, fds, SCM_FDS_MAX, &n_fds, &flags);
        assert_true(l > 0);
        assert_int_equal(n_fds, n);
        for (size_t i = 0; i < n_fds; ++i) {
                struct stat st;

                assert_int_equal(fstat(fds[i], &st), 0);
                assert_int_equal(st.st_ino, want[first + i].st_ino);
                close(fds[i]);
        }
        return buf[0];
}

static void test_carried_and_resumed(void **state) {
        static int fds[N_FDS];
        static struct stat st[N_FDS];
        size_t n_sent = 0;
        int sv[2], pipes[2];

        (void)state;
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        /* distinct files, so the order can be checked: pipes alternate */
        for (size_t i = 0; i < N_FDS; i += 2) {
                assert_int_equal(pipe2(pipes, O_CLOEXEC), 0);
                fds[i] = pipes[0];
                fds[i + 1] = pipes[1];
        }
        for (size_t i = 0; i < N_FDS; ++i)
                assert_int_equal(fstat(fds[i], &st[i]), 0);

        assert_int_equal(scm_send_carried(sv[0], "R", 1, fds, N_FDS, carrier, 0, &n_sent), 0);
        assert_int_equal(n_sent, N_FDS - SCM_FDS_MAX);
        assert_int_equal(next_packet(sv[1], st, 0, N_FDS - SCM_FDS_MAX), 'C');
        assert_int_equal(next_packet(sv[1], st, N_FDS - SCM_FDS_MAX, SCM_FDS_MAX), 'R');

        /* the carrier went out before: only the record follows */
        n_sent = N_FDS - SCM_FDS_MAX;
        assert_int_equal(scm_send_carried(sv[0], "R", 1, fds, N_FDS, carrier, 0, &n_sent), 0);
        assert_int_equal(n_sent, N_FDS - SCM_FDS_MAX);
        assert_int_equal(next_packet(sv[1], st, N_FDS - SCM_FDS_MAX, SCM_FDS_MAX), 'R');

        n_sent = N_FDS + 1;
        assert_int_equal(scm_send_carried(sv[0], "R", 1, fds, N_FDS, carrier, 0, &n_sent),
                         -EINVAL);

        for (size_t i = 0; i < N_FDS; ++i)
                close(fds[i]);
        close(sv[0]);
        close(sv[1]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_carried_and_resumed),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
