/*
 * lat_mq: POSIX message queue ping-pong between two processes (a measuring instrument for
 * `crates/mqueue`, not part of the lab): 100-byte messages over two queues of depth 10.
 *
 *   cc -O2 -o lat_mq lat_mq.c -lrt && ./lat_mq [N] [BYTES]
 *
 * Prints "mq <mean round trip in us>" over N round trips after N/10 of warm-up.
 */
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
    struct timespec t0, t1;
    for (int i = 0; i < n / 10; i++) { mq_send(to, msg, bytes, 0); mq_receive(back, msg, bytes, NULL); }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) { mq_send(to, msg, bytes, 0); mq_receive(back, msg, bytes, NULL); }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    waitpid(pid, NULL, 0);
    printf("mq %.2f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / n / 1e3);
    return 0;
}
