/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Built by tools/check-install against the *installed* libbus1-client, with
 * nothing but `pkg-config --cflags --libs libbus1-client`: two peers, a
 * transfer, one message, through both the UAPI layer and the native API.
 */

#include <bus1/client.h>
#include <bus1/uapi.h>
#include <stdio.h>
#include <string.h>

int main(void) {
        struct bus1_cmd_handle_transfer transfer = { .src_handle = 0x100 };
        Bus1Peer *a = NULL, *b = NULL;
        Bus1Message *m = NULL;
        struct iovec vec = { .iov_base = "installed", .iov_len = 9 };
        const void *data;
        size_t size;
        uint64_t dst;
        int fd, r;

        fd = bus1_uapi_open(NULL);
        if (fd < 0) {
                fprintf(stderr, "bus1_uapi_open: %s\n", strerror(-fd));
                return 1;
        }
        transfer.dst_fd = (uint64_t)-1;
        r = bus1_uapi_ioctl(fd, BUS1_CMD_HANDLE_TRANSFER, &transfer);
        bus1_uapi_close(fd);
        if (r < 0) {
                fprintf(stderr, "HANDLE_TRANSFER: %s\n", strerror(-r));
                return 1;
        }

        r = bus1_peer_new(&a, NULL);
        if (r >= 0)
                r = bus1_peer_new(&b, NULL);
        if (r >= 0)
                r = bus1_peer_handle_transfer(a, 0x100, b, &dst);
        if (r >= 0)
                r = bus1_peer_send(b, 0, &dst, 1, NULL, &vec, 1, NULL, 0, NULL, 0);
        if (r >= 0)
                r = bus1_peer_recv(a, 0, &m);
        if (r < 0) {
                fprintf(stderr, "native API: %s\n", strerror(-r));
                return 1;
        }
        data = bus1_message_get_data(m, &size);
        if (size != 9 || memcmp(data, "installed", 9)) {
                fprintf(stderr, "wrong payload\n");
                return 1;
        }
        bus1_message_unref(m);
        bus1_peer_unref(b);
        bus1_peer_unref(a);
        printf("pkg-config build of libbus1-client: ok\n");
        return 0;
}
