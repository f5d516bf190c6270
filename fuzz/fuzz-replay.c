/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz replay: run a fuzz target once on each given input
 *
 * Usage: fuzz-<target>-replay PATH...; a PATH that is a directory stands
 * for every regular file in it, in name order, so a run is reproducible.
 * This is the main() of the replay programs built without libFuzzer (with
 * gcc, in every build): the test suite replays the seed corpus with it.
 * A target that finds a broken property aborts; this exits 1 if an input
 * could not be read, and 0 after printing how many inputs ran.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fuzz/fuzz.h"

/* read all of @path; the buffer has exactly the file's size, so ASan sees overreads */
static int replay_read(const char *path, uint8_t **datap, size_t *sizep) {
        struct stat st;
        uint8_t *data;
        size_t done = 0;
        int fd;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || st.st_size < 0) {
                close(fd);
                return -EIO;
        }
        data = malloc((size_t)st.st_size ?: 1);
        if (!data) {
                close(fd);
                return -ENOMEM;
        }
        while (done < (size_t)st.st_size) {
                ssize_t l = read(fd, data + done, (size_t)st.st_size - done);

                if (l <= 0) {
                        free(data);
                        close(fd);
                        return l < 0 ? -errno : -EIO;
                }
                done += (size_t)l;
        }
        close(fd);
        *datap = data;
        *sizep = done;
        return 0;
}

static int replay_file(const char *path) {
        uint8_t *data = NULL;
        size_t size = 0;
        int r;

        r = replay_read(path, &data, &size);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                return r;
        }
        LLVMFuzzerTestOneInput(data, size);
        free(data);
        return 0;
}

static int replay_compare(const struct dirent **a, const struct dirent **b) {
        return strcmp((*a)->d_name, (*b)->d_name);
}

/* every regular file of @dir, in name order; returns inputs run or -errno */
static int replay_dir(const char *dir) {
        struct dirent **names;
        int n, n_run = 0, r = 0;

        n = scandir(dir, &names, NULL, replay_compare);
        if (n < 0) {
                fprintf(stderr, "%s: %s\n", dir, strerror(errno));
                return -errno;
        }
        for (int i = 0; i < n; ++i) {
                char path[4096];
                struct stat st;

                if (names[i]->d_name[0] != '.') {
                        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
                        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                                if (replay_file(path) < 0)
                                        r = -EIO;
                                else
                                        ++n_run;
                        }
                }
                free(names[i]);
        }
        free(names);
        return r < 0 ? r : n_run;
}

int main(int argc, char **argv) {
        int n_run = 0, rc = 0;

        if (argc < 2) {
                fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
                return 2;
        }
        for (int i = 1; i < argc; ++i) {
                struct stat st;
                int r;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        rc = 1;
                        continue;
                }
                r = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i]);
                if (r < 0)
                        rc = 1;
                else
                        n_run += S_ISDIR(st.st_mode) ? r : 1;
        }
        printf("replayed %d inputs\n", n_run);
        if (n_run == 0)
                rc = 1;
        return rc;
}
