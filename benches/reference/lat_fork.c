/*
 * lat_fork: fork + exit + wait, the way lmbench's `lat_proc fork` measures it, and
 * pthread_create + pthread_join of an empty thread. Measuring instruments for `crates/spawn`,
 * not part of the lab.
 *
 *   cc -O2 -pthread -o lat_fork lat_fork.c && ./lat_fork [N] [RESIDENT_MIB]
 *
 * Prints two lines: "fork <mean us>" and "pthread <mean us>", each over N creations after a
 * warm-up of N/10. With RESIDENT_MIB, the parent first writes that many MiB, since fork's cost
 * grows with the parent's resident memory (its page tables are copied).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fork_once(void) {
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
}

static void *nothing(void *arg) { return arg; }

static void thread_once(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) != 0) { perror("pthread_create"); exit(1); }
    pthread_join(t, NULL);
}

static double mean_us(void (*once)(void), int n) {
    for (int i = 0; i < n / 10; i++) once();
    double start = now();
    for (int i = 0; i < n; i++) once();
    return (now() - start) / n * 1e6;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    size_t resident = (size_t)(argc > 2 ? atoi(argv[2]) : 0) << 20;
    char *ballast = malloc(resident + 1);
    for (size_t i = 0; i < resident; i += 4096) ballast[i] = 1;
    printf("fork %.2f\n", mean_us(fork_once, n));
    printf("pthread %.2f\n", mean_us(thread_once, n));
    free(ballast);
    return 0;
}
