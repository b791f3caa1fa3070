/*
 * lat_mq: POSIX message queue ping-pong between two processes (a measuring instrument for
 * `crates/mqueue`, not part of the lab): 100-byte messages over two queues of depth 10.
 *
 *   cc -O2 -o lat_mq lat_mq.c -lrt && ./lat_mq [N] [BYTES]
 *
 * Prints "mq <mean> <p50>", round trips in us, over N round trips after N/10 of warm-up. Each round
 * trip is timed on its own (CLOCK_MONOTONIC before and after), as `mqueue` times its round trips
 * for its histogram, so the two medians compare like with like.
 */
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int by_value(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    int bytes = argc > 2 ? atoi(argv[2]) : 100;
    struct mq_attr attr = {0, 10, bytes, 0};
    char a[64], b[64];
    snprintf(a, sizeof a, "/lat_mq-a-%d", getpid());
    snprintf(b, sizeof b, "/lat_mq-b-%d", getpid());
    mqd_t to = mq_open(a, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
    mqd_t back = mq_open(b, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
    if (to == (mqd_t)-1 || back == (mqd_t)-1) { perror("mq_open"); return 1; }
    mq_unlink(a);
    mq_unlink(b);
    char *msg = calloc(1, bytes);
    int total = n + n / 10;
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < total; i++) {
            mq_receive(to, msg, bytes, NULL);
            mq_send(back, msg, bytes, 0);
        }
        _exit(0);
    }
    long *ns = malloc(n * sizeof *ns);
    for (int i = 0; i < n / 10; i++) { mq_send(to, msg, bytes, 0); mq_receive(back, msg, bytes, NULL); }
    for (int i = 0; i < n; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        mq_send(to, msg, bytes, 0);
        mq_receive(back, msg, bytes, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ns[i] = (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec);
    }
    waitpid(pid, NULL, 0);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += ns[i];
    qsort(ns, n, sizeof *ns, by_value);
    printf("mq %.2f %.2f\n", sum / n / 1e3, ns[n / 2] / 1e3);
    return 0;
}
