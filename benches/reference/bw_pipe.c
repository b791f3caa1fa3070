/*
 * bw_pipe: pipe bandwidth the way lmbench measures it (a measuring instrument for
 * `crates/pipes`, not part of the lab). A forked child writes TOTAL bytes in 64 KiB writes;
 * the parent reads them in 64 KiB reads and reports MiB/s over the transfer.
 *
 *   cc -O2 -o bw_pipe bw_pipe.c && ./bw_pipe [TOTAL_BYTES]
 *
 * Prints one line: "bw_pipe <MiB/s> MiB/s <bytes> bytes".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define XFER (64 * 1024)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    long long total = argc > 1 ? atoll(argv[1]) : 32LL << 20;
    static char buf[XFER];
    int fds[2];
    if (pipe(fds) != 0) { perror("pipe"); return 1; }
    memset(buf, 'x', sizeof buf);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
        close(fds[0]);
        for (long long left = total; left > 0;) {
            ssize_t n = write(fds[1], buf, left < XFER ? left : XFER);
            if (n <= 0) _exit(1);
            left -= n;
        }
        _exit(0);
    }
    close(fds[1]);
    double start = now();
    long long got = 0;
    for (;;) {
        ssize_t n = read(fds[0], buf, XFER);
        if (n < 0) { perror("read"); return 1; }
        if (n == 0) break;
        got += n;
    }
    double elapsed = now() - start;
    int status;
    waitpid(pid, &status, 0);
    if (got != total) { fprintf(stderr, "bw_pipe: got %lld of %lld bytes\n", got, total); return 1; }
    printf("bw_pipe %.1f MiB/s %lld bytes\n", got / 1048576.0 / elapsed, got);
    return 0;
}
