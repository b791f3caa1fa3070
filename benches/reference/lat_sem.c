/*
 * lat_sem: semaphore ping-pong between two processes, the way lmbench's `lat_sem` measures it
 * (a measuring instrument for `crates/semaphore`, not part of the lab). Two unnamed
 * process-shared semaphores in a MAP_SHARED page; the parent posts one and waits on the other,
 * the child does the reverse.
 *
 *   cc -O2 -pthread -o lat_sem lat_sem.c && ./lat_sem [N]
 *
 * Prints "sem <mean round trip in us>" over N round trips after N/10 of warm-up.
 */
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
    struct timespec a, b;
    for (int i = 0; i < n / 10; i++) { sem_post(&s[0]); sem_wait(&s[1]); }
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) { sem_post(&s[0]); sem_wait(&s[1]); }
    clock_gettime(CLOCK_MONOTONIC, &b);
    waitpid(pid, NULL, 0);
    printf("sem %.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n / 1e3);
    return 0;
}
