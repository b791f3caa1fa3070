/* lat_sock.c: round-trip latency over a Unix stream socketpair or loopback TCP between a parent
 * and a forked child, lmbench's lat_unix / lat_tcp method: the parent writes msize bytes, the
 * child reads them all (looping on short reads) and writes them back, N times; the mean per
 * round trip is printed. TCP uses TCP_NODELAY on both ends, as the lab's sockets topic does.
 *
 *   cc -O2 -o lat_sock lat_sock.c && ./lat_sock unix|tcp [round trips] [msize]
 * prints: "<mode> <msize> bytes: <mean> us"
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) { perror(what); exit(1); }

static void read_all(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) exit(r == 0 ? 0 : 1);
        got += (size_t)r;
    }
}

static void write_all(int fd, const char *buf, size_t n) {
    size_t put = 0;
    while (put < n) {
        ssize_t w = write(fd, buf + put, n - put);
        if (w <= 0) die("write");
        put += (size_t)w;
    }
}

static void nodelay(int fd) {
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) die("TCP_NODELAY");
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s unix|tcp [n] [msize]\n", argv[0]); return 2; }
    int tcp = strcmp(argv[1], "tcp") == 0;
    long n = argc > 2 ? atol(argv[2]) : 20000;
    size_t msize = argc > 3 ? (size_t)atol(argv[3]) : 100;
    char *buf = calloc(1, msize);
    int ours = -1, theirs = -1, listener = -1;
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (tcp) {
        socklen_t len = sizeof addr;
        listener = socket(AF_INET, SOCK_STREAM, 0);
        if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 ||
            listen(listener, 1) < 0 || getsockname(listener, (struct sockaddr *)&addr, &len) < 0)
            die("listen");
    } else {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) die("socketpair");
        ours = sv[0];
        theirs = sv[1];
    }
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (tcp) {
            theirs = socket(AF_INET, SOCK_STREAM, 0);
            if (connect(theirs, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
            nodelay(theirs);
        } else {
            close(ours);
        }
        for (;;) {
            read_all(theirs, buf, msize);
            write_all(theirs, buf, msize);
        }
    }
    if (tcp) {
        ours = accept(listener, NULL, NULL);
        if (ours < 0) die("accept");
        nodelay(ours);
    } else {
        close(theirs);
    }
    for (long i = 0; i < n / 10; i++) { /* warm-up */
        write_all(ours, buf, msize);
        read_all(ours, buf, msize);
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        write_all(ours, buf, msize);
        read_all(ours, buf, msize);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / (double)n;
    printf("%s %zu bytes: %.2f us\n", argv[1], msize, us);
    close(ours);
    waitpid(pid, NULL, 0);
    return 0;
}
