/*
 * cacheline: the hardware's floor for a shared-memory hand-off between two CPUs (a measuring
 * instrument for `crates/shm`, not part of the lab). Two threads, pinned to two CPUs, bounce
 * one cache line: the first writes 2i+1 and spins until it reads 2i+2; the second spins until
 * it reads 2i+1 and writes 2i+2. Each round trip is timed on its own (clock_gettime, as the
 * topic times its own), after a warm-up; the median is the figure. Then the same with two lines,
 * one per direction (the first writes line x and spins on line y; the second the other way
 * round): the floor of any pair of one-way rings, whose round trip moves a line each way. Then
 * memcpy through memory: 64 MiB buffers, far larger than any cache.
 *
 *   cc -O2 -pthread -o cacheline cacheline.c && ./cacheline [N [CPU_A CPU_B]]
 *
 * Prints "line <median ns> <mean ns>", "two <median ns> <mean ns>" and "memcpy <MiB/s>".
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Alignas(64) _Atomic uint64_t word;
/* The two-line bounce: out (first to second) and back, 128 bytes apart. */
static _Alignas(128) _Atomic uint64_t lines[32];
#define OUT (&lines[0])
#define BACK (&lines[16])
static long n;
static int cpu_b;

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) { perror("pin"); exit(1); }
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void *echo(void *arg) {
    (void)arg;
    pin(cpu_b);
    for (long i = 0; i < n + n / 10; i++) {
        while (atomic_load_explicit(&word, memory_order_acquire) != (uint64_t)(2 * i + 1))
            __builtin_ia32_pause();
        atomic_store_explicit(&word, (uint64_t)(2 * i + 2), memory_order_release);
    }
    return NULL;
}

static void *echo_two(void *arg) {
    (void)arg;
    pin(cpu_b);
    for (long i = 0; i < n + n / 10; i++) {
        while (atomic_load_explicit(OUT, memory_order_acquire) != (uint64_t)(i + 1))
            __builtin_ia32_pause();
        atomic_store_explicit(BACK, (uint64_t)(i + 1), memory_order_release);
    }
    return NULL;
}

static int by_value(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Prints "<name> <median> <mean>" of the n round trips in rt (sorting them). */
static void report(const char *name, uint64_t *rt) {
    double sum = 0;
    for (long i = 0; i < n; i++) sum += rt[i];
    qsort(rt, n, sizeof *rt, by_value);
    printf("%s %llu %.1f\n", name, (unsigned long long)rt[n / 2], sum / n);
}

int main(int argc, char **argv) {
    n = argc > 1 ? atol(argv[1]) : 100000;
    int cpu_a = argc > 3 ? atoi(argv[2]) : 0;
    cpu_b = argc > 3 ? atoi(argv[3]) : 1;
    uint64_t *rt = malloc(n * sizeof *rt);
    pthread_t t;
    pin(cpu_a);
    pthread_create(&t, NULL, echo, NULL);
    for (long i = 0; i < n + n / 10; i++) {
        uint64_t a = now_ns();
        atomic_store_explicit(&word, (uint64_t)(2 * i + 1), memory_order_release);
        while (atomic_load_explicit(&word, memory_order_acquire) != (uint64_t)(2 * i + 2))
            __builtin_ia32_pause();
        uint64_t b = now_ns();
        if (i >= n / 10) rt[i - n / 10] = b - a;
    }
    pthread_join(t, NULL);
    report("line", rt);

    pthread_create(&t, NULL, echo_two, NULL);
    for (long i = 0; i < n + n / 10; i++) {
        uint64_t a = now_ns();
        atomic_store_explicit(OUT, (uint64_t)(i + 1), memory_order_release);
        while (atomic_load_explicit(BACK, memory_order_acquire) != (uint64_t)(i + 1))
            __builtin_ia32_pause();
        uint64_t b = now_ns();
        if (i >= n / 10) rt[i - n / 10] = b - a;
    }
    pthread_join(t, NULL);
    report("two", rt);

    size_t len = 64u << 20;
    char *src = malloc(len), *dst = malloc(len);
    memset(src, 1, len);
    memset(dst, 2, len);
    uint64_t a = now_ns();
    for (int r = 0; r < 8; r++) { memcpy(dst, src, len); src[r] = dst[len - 1 - r]; }
    uint64_t b = now_ns();
    printf("memcpy %.0f\n", 8.0 * len / (1 << 20) / ((b - a) / 1e9));
    return 0;
}
