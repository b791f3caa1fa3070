/*
 * lat_sem: semaphore ping-pong between two processes, the way lmbench's `lat_sem` measures it
 * (a measuring instrument for `crates/semaphore`, not part of the lab). Two unnamed
 * process-shared semaphores in a MAP_SHARED page; the parent posts one and waits on the other,
 * the child does the reverse. Each round trip is timed on its own (clock_gettime, as the topic
 * times its own), after N/10 of warm-up, so the median compares with the topic's p50.
 *
 *   cc -O2 -pthread -o lat_sem lat_sem.c && taskset -c 0 ./lat_sem [N]
 *
 * Prints "sem <median round trip in us> <mean in us>".
 */
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    sem_t *s = mmap(NULL, 2 * sizeof(sem_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED) { perror("mmap"); return 1; }
    sem_init(&s[0], 1, 0);
    sem_init(&s[1], 1, 0);
    int total = n + n / 10;
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < total; i++) { sem_wait(&s[0]); sem_post(&s[1]); }
        _exit(0);
    }
    uint64_t *rt = malloc(n * sizeof *rt);
    for (int i = 0; i < n / 10; i++) { sem_post(&s[0]); sem_wait(&s[1]); }
    double sum = 0;
    for (int i = 0; i < n; i++) {
        uint64_t a = now_ns();
        sem_post(&s[0]);
        sem_wait(&s[1]);
        rt[i] = now_ns() - a;
        sum += rt[i];
    }
    waitpid(pid, NULL, 0);
    qsort(rt, n, sizeof *rt, by_value);
    printf("sem %.3f %.3f\n", rt[n / 2] / 1e3, sum / n / 1e3);
    return 0;
}
