/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bench-util: timing, output and a private broker for the benchmarks
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench-util.h"

_Noreturn void bench_die(const char *fmt, ...) {
        va_list ap;

        fflush(stdout);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(1);
}

uint64_t bench_now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t bench_time_budget_ns(void) {
        const char *e = getenv("BENCH_TIME_MS");
        unsigned long ms = e ? strtoul(e, NULL, 10) : 0;

        return (uint64_t)(ms ? ms : 300) * 1000000ULL;
}

/*
 * Run @step in growing batches: a warm-up of a tenth of the budget, then
 * batches until the budget is spent. Returns nanoseconds per step.
 */
double bench_run(BenchStep step, void *userdata) {
        uint64_t budget = bench_time_budget_ns(), start, now, n = 0, batch = 1;
        const char *steps = getenv("BENCH_STEPS");

        /* a fixed number of steps and no warm-up, for strace -c and callgrind */
        if (steps && strtoull(steps, NULL, 10) > 0) {
                n = strtoull(steps, NULL, 10);
                start = bench_now_ns();
                for (uint64_t i = 0; i < n; ++i)
                        step(userdata);
                return (double)(bench_now_ns() - start) / (double)n;
        }

        start = bench_now_ns();
        do {
                step(userdata);
                now = bench_now_ns();
        } while (now - start < budget / 10);

        start = bench_now_ns();
        for (;;) {
                for (uint64_t i = 0; i < batch; ++i)
                        step(userdata);
                n += batch;
                now = bench_now_ns();
                if (now - start >= budget)
                        break;
                if (batch < 1024)
                        batch *= 2;
        }
        return (double)(now - start) / (double)n;
}

void bench_print(const char *name, uint64_t size, const char *metric, double value) {
        printf("%s %llu %s %.3f\n", name, (unsigned long long)size, metric, value);
        fflush(stdout);
}

/* no arguments select every case; otherwise a case runs if an argument names it */
bool bench_selected(int argc, char **argv, const char *name) {
        bool any = false;

        for (int i = 1; i < argc; ++i) {
                if (argv[i][0] == '-')
                        continue;
                any = true;
                if (!strcmp(argv[i], name))
                        return true;
        }
        return !any;
}

#define BENCH_BROKER_ARGS_MAX 16

void bench_broker_start(BenchBroker *broker, const char *const *args) {
        const char *exe = getenv("BUS1D");
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char notify_path[96], buf[256];
        struct pollfd p;
        int notify_fd;

        if (!exe)
                exe = BENCH_BUS1D_PATH;
        memset(broker, 0, sizeof(*broker));
        snprintf(broker->dir, sizeof(broker->dir), "/tmp/bus1d-bench-XXXXXX");
        if (!mkdtemp(broker->dir))
                bench_die("mkdtemp: %m");
        snprintf(broker->path, sizeof(broker->path), "%s/socket", broker->dir);
        snprintf(notify_path, sizeof(notify_path), "%s/notify", broker->dir);

        notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (notify_fd < 0)
                bench_die("socket: %m");
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", notify_path);
        if (bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                bench_die("bind %s: %m", notify_path);

        broker->pid = fork();
        if (broker->pid < 0)
                bench_die("fork: %m");
        if (broker->pid == 0) {
                const char *argv[BENCH_BROKER_ARGS_MAX + 3] = { exe };
                size_t n = 1;
                char arg[160];

                /* a benchmark that dies takes its broker along */
                if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() == 1)
                        _exit(127);
                snprintf(arg, sizeof(arg), "--listen=%s", broker->path);
                argv[n++] = arg;
                for (size_t i = 0; args && args[i] && i < BENCH_BROKER_ARGS_MAX; ++i)
                        argv[n++] = args[i];
                setenv("NOTIFY_SOCKET", notify_path, 1);
                execv(exe, (char *const *)argv);
                fprintf(stderr, "exec %s: %m\n", exe);
                _exit(127);
        }

        p = (struct pollfd){ .fd = notify_fd, .events = POLLIN };
        for (;;) {
                ssize_t l;
                int r = poll(&p, 1, 10000);

                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        bench_die("%s did not signal READY=1", exe);
                l = recv(notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
                if (l < 0)
                        continue;
                buf[l] = 0;
                if (strstr(buf, "READY=1"))
                        break;
        }
        close(notify_fd);
        unlink(notify_path);
        setenv("BUS1_ADDRESS", broker->path, 1);
}

void bench_broker_stop(BenchBroker *broker) {
        int status;

        if (broker->pid <= 0)
                return;
        kill(broker->pid, SIGTERM);
        if (waitpid(broker->pid, &status, 0) < 0 || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0)
                bench_die("bus1d did not exit cleanly");
        unlink(broker->path);
        rmdir(broker->dir);
        broker->pid = 0;
}

/*
 * Anonymous resident memory of @pid (0: this process), in bytes: RssAnon
 * of /proc/PID/status. Pool pages are shared memory (RssShmem) and file
 * pages are the binary and libraries, so neither is counted.
 */
size_t bench_rss_anon_bytes(pid_t pid) {
        char path[64], line[256];
        unsigned long kb = 0;
        bool found = false;
        FILE *f;

        if (pid)
                snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        else
                snprintf(path, sizeof(path), "/proc/self/status");
        f = fopen(path, "re");
        if (!f)
                bench_die("open %s: %m", path);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "RssAnon: %lu kB", &kb) == 1) {
                        found = true;
                        break;
                }
        fclose(f);
        if (!found)
                bench_die("no RssAnon in %s", path);
        return kb * 1024;
}
