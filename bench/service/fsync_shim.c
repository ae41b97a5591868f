/* fsync_shim.c -- an LD_PRELOAD library for the ingest benchmark's comparisons; never part of
 * the service. BENCH_FSYNC_SHIM selects what it does:
 *
 *   writes:PREFIX  every write to a file opened under PREFIX is followed by fsync(2) of that file
 *                  before the write call returns. nginx writes a request body to its temp file
 *                  (client_body_in_file_only) and only then answers, so under this shim nginx
 *                  answers after the body is on disk: the durable ceiling to set beside our
 *                  collector. nginx writes a body that fits client_body_buffer_size in one call,
 *                  so that is one fsync per upload. The folder is not fsynced.
 *   off            fsync(2) and fdatasync(2) return 0 without doing anything: the collector with
 *                  its spool's durability taken away (PostgreSQL's own fsyncs are untouched),
 *                  to show what the spool's fsyncs cost.
 *
 * nginx (Debian 12) calls open64, openat64, write, writev, pwrite64, pwritev64 and close; the
 * collector calls fsync. The fd table assumes descriptors below 65536. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 65536

static unsigned char watched[MAX_FD]; /* 1: a file opened under the prefix */
static int mode = -1;                 /* -1 not read yet, 0 none, 1 writes, 2 off */
/* A copy: nginx writes its process title over the memory the environment strings were in. */
static char prefix[4096];
static size_t prefix_len;

static void init(void)
{
    if (mode >= 0)
        return;
    const char *m = getenv("BENCH_FSYNC_SHIM");
    mode = 0;
    if (m && !strncmp(m, "writes:", 7) && m[7] && strlen(m + 7) < sizeof prefix) {
        strcpy(prefix, m + 7);
        prefix_len = strlen(prefix);
        mode = 1;
    } else if (m && !strcmp(m, "off")) {
        mode = 2;
    }
}

/* Read at load time: nginx empties the environment of its workers before they open files. */
__attribute__((constructor)) static void init_at_load(void) { init(); }

static void *next(const char *name) { return dlsym(RTLD_NEXT, name); }

static void watch(int fd, const char *path)
{
    init();
    if (fd >= 0 && fd < MAX_FD)
        watched[fd] = mode == 1 && path && !strncmp(path, prefix, prefix_len);
}

static void sync_if_watched(int fd, ssize_t n)
{
    static int (*real_fsync)(int);
    if (n > 0 && fd >= 0 && fd < MAX_FD && watched[fd]) {
        if (!real_fsync)
            real_fsync = (int (*)(int))next("fsync");
        real_fsync(fd);
    }
}

/* mode_t travels as int through the variadic call (default promotions). */
#define OPEN_MODE(flags, ap, m)                                                                \
    do {                                                                                       \
        if ((flags) & (O_CREAT | O_TMPFILE)) {                                                 \
            va_start(ap, flags);                                                               \
            m = (mode_t)va_arg(ap, int);                                                       \
            va_end(ap);                                                                        \
        }                                                                                      \
    } while (0)

int open64(const char *path, int flags, ...);
int open64(const char *path, int flags, ...)
{
    static int (*real)(const char *, int, ...);
    if (!real)
        real = (int (*)(const char *, int, ...))next("open64");
    va_list ap;
    mode_t m = 0;
    OPEN_MODE(flags, ap, m);
    int fd = real(path, flags, m);
    watch(fd, path);
    return fd;
}

int open(const char *path, int flags, ...)
{
    static int (*real)(const char *, int, ...);
    if (!real)
        real = (int (*)(const char *, int, ...))next("open");
    va_list ap;
    mode_t m = 0;
    OPEN_MODE(flags, ap, m);
    int fd = real(path, flags, m);
    watch(fd, path);
    return fd;
}

int openat64(int dir, const char *path, int flags, ...);
int openat64(int dir, const char *path, int flags, ...)
{
    static int (*real)(int, const char *, int, ...);
    if (!real)
        real = (int (*)(int, const char *, int, ...))next("openat64");
    va_list ap;
    mode_t m = 0;
    OPEN_MODE(flags, ap, m);
    int fd = real(dir, path, flags, m);
    watch(fd, path); /* a relative path never matches an absolute prefix */
    return fd;
}

int close(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))next("close");
    if (fd >= 0 && fd < MAX_FD)
        watched[fd] = 0;
    return real(fd);
}

ssize_t write(int fd, const void *p, size_t n)
{
    static ssize_t (*real)(int, const void *, size_t);
    if (!real)
        real = (ssize_t(*)(int, const void *, size_t))next("write");
    ssize_t r = real(fd, p, n);
    sync_if_watched(fd, r);
    return r;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    static ssize_t (*real)(int, const struct iovec *, int);
    if (!real)
        real = (ssize_t(*)(int, const struct iovec *, int))next("writev");
    ssize_t r = real(fd, iov, cnt);
    sync_if_watched(fd, r);
    return r;
}

ssize_t pwrite64(int fd, const void *p, size_t n, off_t off);
ssize_t pwrite64(int fd, const void *p, size_t n, off_t off)
{
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real)
        real = (ssize_t(*)(int, const void *, size_t, off_t))next("pwrite64");
    ssize_t r = real(fd, p, n, off);
    sync_if_watched(fd, r);
    return r;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off);
ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
    static ssize_t (*real)(int, const struct iovec *, int, off_t);
    if (!real)
        real = (ssize_t(*)(int, const struct iovec *, int, off_t))next("pwritev64");
    ssize_t r = real(fd, iov, cnt, off);
    sync_if_watched(fd, r);
    return r;
}

int fsync(int fd)
{
    static int (*real)(int);
    init();
    if (mode == 2)
        return 0;
    if (!real)
        real = (int (*)(int))next("fsync");
    return real(fd);
}

int fdatasync(int fd)
{
    static int (*real)(int);
    init();
    if (mode == 2)
        return 0;
    if (!real)
        real = (int (*)(int))next("fdatasync");
    return real(fd);
}
