/* ing_accept.c -- from a parsed upload to an acknowledgement, the same for both routes:
 *   1. inspect the dump (decompress with a cap, SHA-256, magic): bad input never touches disk;
 *   2. a repeat of a crash still pending in the spool gets that crash's id;
 *   3. the dump becomes durable in the spool (one file per distinct dump);
 *   4. the recorder inserts the crash row and its job in one transaction;
 *   5. if the recorder fails or is known down, a sidecar of the metadata is made durable
 *      instead and the drainer records it later.
 * Only after 4 or 5 succeed is the upload acknowledged. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h> /* PATH_MAX */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "analyzer/ana.h"
#include "common/cm_log.h"
#include "common/cm_utf8.h"
#include "ingest/ing_int.h"

void ing__uuid(char out[37])
{
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (errno != EINTR)
            break;
    }
    if (got < sizeof b) { /* no getrandom (old kernel, seccomp): the kernel's device */
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        while (fd >= 0 && got < sizeof b) {
            ssize_t n = read(fd, b + got, sizeof b - got);
            if (n <= 0 && errno != EINTR)
                break;
            if (n > 0)
                got += (size_t)n;
        }
        if (fd >= 0)
            close(fd);
    }
    if (got < sizeof b) /* never reached on Linux; ids stay distinct, if guessable */
        for (size_t i = got; i < sizeof b; i++)
            b[i] = (uint8_t)(clock() ^ (long)i * 131 ^ (long)getpid());
    b[6] = (uint8_t)((b[6] & 0x0F) | 0x40); /* version 4 (RFC 9562 section 5.4) */
    b[8] = (uint8_t)((b[8] & 0x3F) | 0x80); /* variant 10 */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = 0;
}

const char *ing__clean_utf8(struct cm_arena *a, const char *s, size_t n)
{
    return cm_utf8_clean(a, s, n); /* every bad byte and NUL becomes U+FFFD */
}

struct fill_ctx {
    struct ing_worker *w;
    const struct ing_upload *u;
    const struct ing_dump_info *info;
    uint64_t written;
};

static enum cm_code fill_dump(void *ctx, int fd, int *sys_errno, struct cm_err *err)
{
    struct fill_ctx *f = ctx;
    return ing__dump_write(f->w->codec, f->u->dump, f->u->dump_len, f->info, &f->w->srv->conf,
                           fd, &f->written, sys_errno, err);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Step 5: the sidecar. */
static void defer(struct ing_server *s, struct ing_crash *c, struct ing_outcome *out,
                  struct cm_err *err)
{
    char other[37];
    while (!ing__pending_reserve(s->pending, c, other)) {
        if (ing__pending_find(s->pending, c, out->crash_id)) { /* a concurrent repeat won */
            out->duplicate = out->deferred = true;
            atomic_fetch_add(&s->metrics.duplicates, 1);
            return;
        }
        /* its sidecar failed and the reservation went: try to reserve again */
    }
    struct cm_buf json;
    cm_buf_init(&json, 0);
    enum ing_reason r = ING_R_INTERNAL;
    enum cm_code rc = ing__crash_to_json(c, &json, err);
    if (!rc)
        rc = ing__spool_put_pending(s->spool, c->crash_id, json.data, json.len, &r, err);
    cm_buf_free(&json);
    ing__pending_settle(s->pending, c->crash_id, rc == CM_E_OK);
    atomic_store(&s->metrics.spool_depth, ing__pending_count(s->pending));
    if (rc) {
        out->reason = r ? r : ING_R_STORAGE_ERROR;
        return;
    }
    memcpy(out->crash_id, c->crash_id, 37);
    out->deferred = true;
    atomic_fetch_add(&s->metrics.deferred, 1);
    atomic_fetch_add(&s->metrics.accepted, 1);
}

void ing__accept(struct ing_worker *w, struct ing_upload *u, struct ing_outcome *out,
                 struct cm_err *err)
{
    struct ing_server *s = w->srv;
    struct ing_crash *c = &u->crash;
    memset(out, 0, sizeof *out);
    if (!c->received_unix_ms)
        c->received_unix_ms = now_ms();

    struct ing_dump_info info;
    enum ing_reason r = ing__dump_inspect(w->codec, u->dump, u->dump_len, u->comp, &s->conf,
                                          &info, err);
    if (r) {
        out->reason = r;
        return;
    }
    memcpy(c->dump_sha256, info.sha256, sizeof c->dump_sha256);
    c->dump_bytes = info.bytes;
    c->dump_kind = ana_kind_name((enum ana_kind)info.kind);

    if (ing__pending_find(s->pending, c, out->crash_id)) {
        out->duplicate = out->deferred = true;
        atomic_fetch_add(&s->metrics.duplicates, 1);
        return;
    }

    struct fill_ctx f = { .w = w, .u = u, .info = &info };
    char rel[96];
    bool existed;
    uint64_t size = 0;
    if (ing__spool_put_dump(s->spool, info.sha256, fill_dump, &f, rel, &existed, &size, &r,
                            err)) {
        out->reason = r ? r : ING_R_STORAGE_ERROR;
        return;
    }
    char path[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/%s", ing__spool_dir(s->spool), rel);
    c->spool_path = path;
    c->stored_bytes = existed ? size : f.written;
    ing__uuid(c->crash_id);

    if (s->has_rec && atomic_load(&s->db_up)) {
        char got[37] = { 0 };
        bool dup = false;
        struct cm_err rerr = { 0 };
        if (s->rec.record(s->rec.ctx, c, got, &dup, &rerr) == CM_E_OK) {
            memcpy(out->crash_id, got[0] ? got : c->crash_id, 37);
            out->duplicate = dup;
            atomic_fetch_add(dup ? &s->metrics.duplicates : &s->metrics.accepted, 1);
            atomic_store(&s->metrics.db_up, 1);
            return;
        }
        if (rerr.code == CM_E_BUSY) { /* unreachable: stop trying until the drainer says so */
            if (atomic_exchange(&s->db_up, false))
                cm_log(CM_LOG_WARN, "database unreachable, uploads wait in the spool: %s",
                       rerr.msg);
            atomic_store(&s->metrics.db_up, 0);
        } else { /* refused this crash: keep it pending, the drainer retries and reports */
            cm_log(CM_LOG_ERROR, "database refused a crash, kept pending: %s crash=%s",
                   rerr.msg, c->crash_id);
        }
    }
    defer(s, c, out, err);
    c->spool_path = ""; /* path dies with this frame */
}
