/* ing_spool.c -- the durable spool. A dump is acknowledged only after its file is durable:
 * write a temp file, fsync it, rename it to its final name, fsync the folder (PostgreSQL's
 * durable_rename in fd.c). An fsync error means "not stored", never retried and then
 * acknowledged: the data may be lost in the page cache (PostgreSQL's "PANIC on fsync() failure"
 * reasoning). Folder fsyncs are shared by concurrent uploads (group commit): an upload that
 * renamed its file joins the next round, and one thread fsyncs the folder for the whole round.
 *
 * Layout: <dir>/dumps/<sha256>.zst (one file per distinct dump), <dir>/pending/<crash-id>.json
 * (crashes acknowledged but not recorded yet), <dir>/pending/bad/ (sidecars that cannot be
 * read). Folders are 0700 and files 0600; names are server-made (hex digests and UUIDs), never
 * taken from a request.
 *
 * Test hook: TRIAGE_FAULT=fsync_eio@N makes the Nth fsync of this spool (files and folders
 * counted together, from 1) fail with EIO. */
#include <dirent.h>
#include <limits.h> /* PATH_MAX */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/cm_alloc.h"
#include "ingest/ing_int.h"

#define MAX_SIDECAR_BYTES (64u << 20)
#define ROUNDS 64 /* results kept per folder; older rounds count as failed */

/* Group commit of one folder's fsync. Rounds are numbered; an upload joins the open round after
 * its rename; the first member to find no round running leads: closes the round, fsyncs, and
 * publishes the result to every member. */
struct dirsync {
    int fd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t open_round; /* the round new members join */
    uint64_t completed;  /* last finished round; rounds finish in order */
    bool running;
    struct { uint64_t id; int err; } results[ROUNDS];
};

struct ing_spool {
    char *dir;
    int dir_fd;
    struct dirsync dumps, pending;
    int bad_fd;
    bool batch;
    unsigned long fault_at; /* 0: no fault */
    atomic_ulong fsyncs;
};

static int spool_fsync(struct ing_spool *sp, int fd)
{
    unsigned long n = atomic_fetch_add(&sp->fsyncs, 1) + 1;
    if (sp->fault_at && n == sp->fault_at) {
        errno = EIO;
        return -1;
    }
    return fsync(fd);
}

/* Waits until a folder fsync that started after the caller's rename has finished. Returns 0 or
 * the errno of the failed fsync. */
static int dir_sync(struct ing_spool *sp, struct dirsync *d)
{
    if (!sp->batch)
        return spool_fsync(sp, d->fd) ? errno : 0;
    pthread_mutex_lock(&d->mu);
    uint64_t mine = d->open_round;
    while (d->completed < mine) {
        if (d->running) {
            pthread_cond_wait(&d->cv, &d->mu);
            continue;
        }
        /* No round running and mine not done: mine is the open one (rounds finish in order). */
        d->running = true;
        uint64_t round = d->open_round++;
        pthread_mutex_unlock(&d->mu);
        int e = spool_fsync(sp, d->fd) ? errno : 0;
        pthread_mutex_lock(&d->mu);
        d->results[round % ROUNDS].id = round;
        d->results[round % ROUNDS].err = e;
        d->completed = round;
        d->running = false;
        pthread_cond_broadcast(&d->cv);
    }
    int e = d->results[mine % ROUNDS].id == mine ? d->results[mine % ROUNDS].err : EIO;
    pthread_mutex_unlock(&d->mu);
    return e;
}

static enum cm_code open_sub(int parent, const char *name, int *fd, struct cm_err *err)
{
    if (mkdirat(parent, name, 0700) != 0 && errno != EEXIST)
        return cm_fail(err, CM_E_IO, "cannot create spool folder %s: %s", name, strerror(errno));
    *fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*fd < 0)
        return cm_fail(err, CM_E_IO, "cannot open spool folder %s: %s", name, strerror(errno));
    if (fchmod(*fd, 0700) != 0)
        return cm_fail(err, CM_E_IO, "cannot chmod spool folder %s: %s", name, strerror(errno));
    return CM_E_OK;
}

/* Removes temp files a crash left behind (RELIABILITY F07). */
static void remove_temps(int dfd)
{
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, ".tmp.", 5))
            unlinkat(dfd, e->d_name, 0);
    closedir(d);
}

static void dirsync_init(struct dirsync *d)
{
    d->fd = -1;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->open_round = 1;
}

enum cm_code ing__spool_open(const char *dir, bool batch, struct ing_spool **out,
                             struct cm_err *err)
{
    *out = NULL;
    struct ing_spool *sp = cm_calloc(1, sizeof *sp);
    if (!sp)
        return cm_fail(err, CM_E_NOMEM, "cannot allocate spool");
    sp->dir_fd = sp->bad_fd = -1;
    dirsync_init(&sp->dumps);
    dirsync_init(&sp->pending);
    sp->batch = batch;
    enum cm_code rc = CM_E_OK;
    if (!(sp->dir = cm_strdup(dir))) {
        rc = cm_fail(err, CM_E_NOMEM, "cannot allocate spool path");
        goto fail;
    }
    const char *fault = getenv("TRIAGE_FAULT");
    if (fault && !strncmp(fault, "fsync_eio@", 10))
        sp->fault_at = strtoul(fault + 10, NULL, 10);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = cm_fail(err, CM_E_IO, "cannot create spool %s: %s", dir, strerror(errno));
        goto fail;
    }
    char real[PATH_MAX]; /* crash rows name their dump by absolute path */
    if (!realpath(dir, real)) {
        rc = cm_fail(err, CM_E_IO, "cannot resolve spool %s: %s", dir, strerror(errno));
        goto fail;
    }
    cm_free(sp->dir);
    if (!(sp->dir = cm_strdup(real))) {
        rc = cm_fail(err, CM_E_NOMEM, "cannot allocate spool path");
        goto fail;
    }
    sp->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sp->dir_fd < 0) {
        rc = cm_fail(err, CM_E_IO, "cannot open spool %s: %s", dir, strerror(errno));
        goto fail;
    }
    if (fchmod(sp->dir_fd, 0700) != 0) {
        rc = cm_fail(err, CM_E_IO, "cannot chmod spool %s: %s", dir, strerror(errno));
        goto fail;
    }
    if ((rc = open_sub(sp->dir_fd, "dumps", &sp->dumps.fd, err)) ||
        (rc = open_sub(sp->dir_fd, "pending", &sp->pending.fd, err)) ||
        (rc = open_sub(sp->pending.fd, "bad", &sp->bad_fd, err)))
        goto fail;
    if (fsync(sp->dir_fd) != 0 || fsync(sp->pending.fd) != 0) { /* the folders themselves */
        rc = cm_fail(err, CM_E_IO, "cannot fsync spool %s: %s", dir, strerror(errno));
        goto fail;
    }
    remove_temps(sp->dumps.fd);
    remove_temps(sp->pending.fd);
    *out = sp;
    return CM_E_OK;
fail:
    ing__spool_close(sp);
    return rc;
}

void ing__spool_close(struct ing_spool *sp)
{
    if (!sp)
        return;
    int fds[] = { sp->dumps.fd, sp->pending.fd, sp->bad_fd, sp->dir_fd };
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    pthread_mutex_destroy(&sp->dumps.mu);
    pthread_cond_destroy(&sp->dumps.cv);
    pthread_mutex_destroy(&sp->pending.mu);
    pthread_cond_destroy(&sp->pending.cv);
    cm_free(sp->dir);
    cm_free(sp);
}

const char *ing__spool_dir(const struct ing_spool *sp) { return sp->dir; }

static void temp_name(char out[32])
{
    uint8_t r[8] = { 0 };
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) { /* never fatal: O_EXCL catches clashes */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        memcpy(r, &ts.tv_nsec, sizeof r < sizeof ts.tv_nsec ? sizeof r : sizeof ts.tv_nsec);
    }
    snprintf(out, 32, ".tmp.%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5],
             r[6], r[7]);
}

static enum ing_reason storage_reason(int e)
{
    return (e == ENOSPC || e == EDQUOT) ? ING_R_STORAGE_FULL : ING_R_STORAGE_ERROR;
}

/* temp -> fill -> fsync -> rename -> folder fsync, in folder d. */
static enum cm_code durable_write(struct ing_spool *sp, struct dirsync *d, const char *name,
                                  enum cm_code (*fill)(void *ctx, int fd, int *sys_errno,
                                                       struct cm_err *err),
                                  void *ctx, enum ing_reason *reason, struct cm_err *err)
{
    char tmp[32];
    temp_name(tmp);
    int fd = openat(d->fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        *reason = storage_reason(errno);
        return cm_fail(err, CM_E_IO, "cannot create spool temp file: %s", strerror(errno));
    }
    int e = 0;
    enum cm_code rc = fill(ctx, fd, &e, err);
    if (rc) {
        *reason = e ? storage_reason(e) : ING_R_STORAGE_ERROR;
        goto fail;
    }
    if (spool_fsync(sp, fd) != 0) {
        e = errno;
        *reason = storage_reason(e);
        rc = cm_fail(err, CM_E_IO, "fsync of spool file failed: %s", strerror(e));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        e = errno;
        *reason = storage_reason(e);
        rc = cm_fail(err, CM_E_IO, "close of spool file failed: %s", strerror(e));
        goto fail;
    }
    fd = -1;
    if (renameat(d->fd, tmp, d->fd, name) != 0) {
        e = errno;
        *reason = storage_reason(e);
        rc = cm_fail(err, CM_E_IO, "cannot rename spool file: %s", strerror(e));
        goto fail;
    }
    /* From here the file is complete and its data durable; only its name may not be. It is
     * left in place on failure: its content is right, and a concurrent upload of the same dump
     * may already rely on the name. */
    if ((e = dir_sync(sp, d)) != 0) {
        *reason = storage_reason(e);
        return cm_fail(err, CM_E_IO, "fsync of spool folder failed: %s", strerror(e));
    }
    return CM_E_OK;
fail:
    if (fd >= 0)
        close(fd);
    unlinkat(d->fd, tmp, 0);
    return rc;
}

enum cm_code ing__spool_put_dump(struct ing_spool *sp, const char *sha256,
                                 enum cm_code (*fill)(void *ctx, int fd, int *sys_errno,
                                                      struct cm_err *err),
                                 void *ctx, char rel_path[96], bool *existed,
                                 uint64_t *size_bytes, enum ing_reason *reason,
                                 struct cm_err *err)
{
    *existed = false;
    *size_bytes = 0;
    *reason = ING_R_NONE;
    char name[80];
    snprintf(name, sizeof name, "%.64s.zst", sha256);
    snprintf(rel_path, 96, "dumps/%s", name);
    struct stat st;
    if (fstatat(sp->dumps.fd, name, &st, 0) == 0 && S_ISREG(st.st_mode)) {
        /* One file per distinct dump. Its writer may still be waiting for the folder fsync:
         * wait for a round that starts now, so the name is durable before we answer. */
        *existed = true;
        *size_bytes = (uint64_t)st.st_size;
        int e = dir_sync(sp, &sp->dumps);
        if (e) {
            *reason = storage_reason(e);
            return cm_fail(err, CM_E_IO, "fsync of spool folder failed: %s", strerror(e));
        }
        return CM_E_OK;
    }
    return durable_write(sp, &sp->dumps, name, fill, ctx, reason, err);
}

struct bytes {
    const void *p;
    size_t n;
};

static enum cm_code fill_bytes(void *ctx, int fd, int *sys_errno, struct cm_err *err)
{
    const struct bytes *b = ctx;
    const uint8_t *p = b->p;
    size_t n = b->n;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            *sys_errno = w < 0 ? errno : EIO;
            return cm_fail(err, CM_E_IO, "cannot write sidecar: %s", strerror(*sys_errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return CM_E_OK;
}

enum cm_code ing__spool_put_pending(struct ing_spool *sp, const char *crash_id, const void *p,
                                    size_t n, enum ing_reason *reason, struct cm_err *err)
{
    char name[64];
    snprintf(name, sizeof name, "%.36s.json", crash_id);
    struct bytes b = { p, n };
    *reason = ING_R_NONE;
    return durable_write(sp, &sp->pending, name, fill_bytes, &b, reason, err);
}

void ing__spool_drop_pending(struct ing_spool *sp, const char *crash_id)
{
    char name[64];
    snprintf(name, sizeof name, "%.36s.json", crash_id);
    unlinkat(sp->pending.fd, name, 0);
}

void ing__spool_quarantine_pending(struct ing_spool *sp, const char *crash_id)
{
    char name[64];
    snprintf(name, sizeof name, "%.36s.json", crash_id);
    renameat(sp->pending.fd, name, sp->bad_fd, name);
}

enum cm_code ing__spool_read_pending(struct ing_spool *sp, const char *crash_id, char **out,
                                     size_t *len, struct cm_err *err)
{
    *out = NULL;
    *len = 0;
    char name[64];
    snprintf(name, sizeof name, "%.36s.json", crash_id);
    int fd = openat(sp->pending.fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cm_fail(err, errno == ENOENT ? CM_E_NOTFOUND : CM_E_IO, "cannot open %s: %s",
                       name, strerror(errno));
    enum cm_code rc = CM_E_OK;
    struct cm_buf b;
    cm_buf_init(&b, MAX_SIDECAR_BYTES);
    for (;;) {
        if ((rc = cm_buf_reserve(&b, 1 << 16, err)))
            break;
        ssize_t n = read(fd, b.data + b.len, b.cap_alloc - 1 - b.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = cm_fail(err, CM_E_IO, "cannot read %s: %s", name, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        b.len += (size_t)n;
        b.data[b.len] = 0;
    }
    close(fd);
    if (rc) {
        cm_buf_free(&b);
        return rc;
    }
    if (!b.data && (rc = cm_buf_reserve(&b, 1, err)))
        return rc;
    *out = (char *)cm_buf_steal(&b, len);
    return CM_E_OK;
}

static bool is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
            return false;
    }
    return true;
}

enum cm_code ing__spool_list_pending(struct ing_spool *sp, void (*fn)(void *ctx, const char *id),
                                     void *ctx, struct cm_err *err)
{
    int fd = dup(sp->pending.fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return cm_fail(err, CM_E_IO, "cannot list pending folder: %s", strerror(errno));
    }
    rewinddir(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n != 41 || strcmp(e->d_name + 36, ".json") != 0)
            continue;
        char id[37];
        memcpy(id, e->d_name, 36);
        id[36] = 0;
        if (is_uuid(id))
            fn(ctx, id);
    }
    closedir(d);
    return CM_E_OK;
}

uint64_t ing__spool_free_bytes(struct ing_spool *sp)
{
    struct statvfs v;
    if (fstatvfs(sp->dumps.fd, &v) != 0)
        return UINT64_MAX;
    return (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
}
