/* ing_client.c -- the upload client behind `triagectl upload`: builds the protobuf envelope of
 * proto/crash.proto for each dump (raw dumps zstd-compressed first, .zst and .gz files sent as
 * they are), under a fresh idempotency key per file per run, and posts it to
 * /api/v1/crashes with libcurl. A failed attempt (no connection, 408, 429, 5xx) is retried
 * with jittered exponential backoff ("full jitter" between half and all of the delay), and a
 * Retry-After from the service replaces the delay (capped). The key never changes across
 * retries, so the service counts the crash once whatever happens to the replies.
 *
 * Outbox: when given, each envelope is written there (temp, fsync, rename) before its first
 * attempt and removed once the service has answered for good (accepted, duplicate, discarded,
 * rejected). Whatever is left (the service stayed down) is sent first by the next run, with its
 * original key, so nothing is lost while the service is down.
 *
 * Hints (docs/progressive-collection.md): unless no_hint, the crash's fault key goes first as a
 * CrashHint to /api/v1/hints (ing_client_hint.c computes it with the analyzer's reader code).
 * When the service counted the crash from the hint and does not want the dump, nothing more is
 * sent; otherwise, or when the hint gets no answer, the envelope follows as usual, carrying the
 * hint's crash id (hint_crash_id) and the same idempotency key, so it is one crash. The outbox
 * entry is written before the hint, so a crash is never lost between the two. */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "analyzer/ana.h"
#include "common/cm_alloc.h"
#include "ingest/ing_int.h"
#include "proto/proto.h"

#define MAX_REPLY_BYTES (64u << 10)

const char *ing_client_status_name(enum ing_client_status s)
{
    switch (s) {
    case ING_CLIENT_ACCEPTED: return "accepted";
    case ING_CLIENT_DUPLICATE: return "duplicate";
    case ING_CLIENT_DISCARDED: return "discarded";
    case ING_CLIENT_REJECTED: return "rejected";
    case ING_CLIENT_QUEUED: return "queued";
    case ING_CLIENT_FAILED: return "failed";
    case ING_CLIENT_COUNTED: return "counted";
    }
    return "?";
}

struct item {
    char *path;     /* the user's file, or the outbox entry */
    bool from_outbox;
    char *outbox;   /* the outbox entry holding the envelope, NULL without one */
};

struct ing_client {
    struct ing_client_opts opts; /* with the defaults filled in */
    const struct ing_client_opts *o; /* &opts */
    CURL *curl;
    char url[2048], hint_url[2048];
    size_t index, total;
    struct ing_client_totals totals;
    /* the current attempt */
    struct cm_buf reply;
    long retry_after_s; /* -1: none */
};

/* ---- reading and preparing a dump ---- */

static enum cm_code read_file(const char *path, size_t cap, struct cm_buf *out, struct cm_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cm_fail(err, CM_E_IO, "cannot open %s: %s", path, strerror(errno));
    enum cm_code rc = CM_E_OK;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = cm_fail(err, CM_E_IO, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > cap) {
        rc = cm_fail(err, CM_E_LIMIT, "%s: %lld bytes exceed the %zu-byte limit", path,
                     (long long)st.st_size, cap);
        goto out;
    }
    cm_buf_init(out, cap);
    if ((rc = cm_buf_reserve(out, (size_t)st.st_size, err)))
        goto out;
    for (;;) {
        if (out->len == out->cap_alloc - 1 && (rc = cm_buf_reserve(out, 65536, err)))
            break;
        ssize_t n = read(fd, out->data + out->len, out->cap_alloc - 1 - out->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = cm_fail(err, CM_E_IO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        out->len += (size_t)n;
    }
out:
    close(fd);
    return rc;
}

static enum cm_code compress(const uint8_t *in, size_t n, int level, struct cm_buf *out,
                             struct cm_err *err)
{
    size_t bound = ZSTD_compressBound(n);
    cm_buf_init(out, 0);
    enum cm_code rc = cm_buf_reserve(out, bound, err);
    if (rc)
        return rc;
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    if (!cctx)
        return cm_fail(err, CM_E_NOMEM, "cannot create zstd compressor");
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, 22); /* well under the service's window cap */
    size_t z = ZSTD_compress2(cctx, out->data, bound, in, n);
    ZSTD_freeCCtx(cctx);
    if (ZSTD_isError(z))
        return cm_fail(err, CM_E_IO, "zstd: %s", ZSTD_getErrorName(z));
    out->len = z;
    return CM_E_OK;
}

/* The envelope for one crash, with a fresh idempotency key, and (unless o->no_hint) its hint in
 * *hint (left empty when the dump's fault key cannot be computed: it then goes in full). */
static enum cm_code envelope(const struct ing_client_opts *o, const struct ing_client_crash *cr,
                             struct cm_buf *env, struct cm_buf *hint, char key[37],
                             struct cm_err *err)
{
    struct cm_buf packed;
    cm_buf_init(&packed, 0);
    cm_buf_init(hint, 0);
    struct proto_kv *kv = NULL;
    enum cm_code rc = CM_E_OK;
    if (cr->dump_len == 0) {
        rc = cm_fail(err, CM_E_USAGE, "%s is empty", cr->name ? cr->name : "dump");
        goto out;
    }
    struct proto_upload u = { 0 };
    switch (ana_sniff_compression(cr->dump, cr->dump_len)) {
    case ANA_COMP_ZSTD:
        u.compression = PROTO_COMP_ZSTD;
        u.dump = cr->dump;
        u.dump_len = cr->dump_len;
        break;
    case ANA_COMP_GZIP:
        u.compression = PROTO_COMP_GZIP;
        u.dump = cr->dump;
        u.dump_len = cr->dump_len;
        break;
    default:
        switch (ana_sniff_kind(cr->dump, cr->dump_len)) {
        case ANA_KIND_MINIDUMP: u.dump_format = PROTO_DUMP_MINIDUMP; break;
        case ANA_KIND_ELFCORE: u.dump_format = PROTO_DUMP_ELF_CORE; break;
        case ANA_KIND_KERNEL: u.dump_format = PROTO_DUMP_WINDOWS_KERNEL; break;
        default: break; /* the service decides; it refuses non-dumps */
        }
        if ((rc = compress(cr->dump, cr->dump_len, o->zstd_level, &packed, err)))
            goto out;
        u.compression = PROTO_COMP_ZSTD;
        u.dump = packed.data;
        u.dump_len = packed.len;
        break;
    }
    ing__uuid(key);
    const struct ing_kv *ann = cr->annotations ? cr->annotations : o->annotations;
    size_t nann = cr->annotations ? cr->annotation_count : o->annotation_count;
    if (nann && !(kv = cm_calloc(nann, sizeof *kv))) {
        rc = cm_fail(err, CM_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nann; i++)
        kv[i] = (struct proto_kv){ ann[i].key, ann[i].value };
#define S(f) (cr->f ? cr->f : o->f ? o->f : "")
    u.meta = (struct proto_meta){
        .idempotency_key = key,
        .host_id = S(host_id),
        .product = S(product),
        .version = S(version),
        .channel = S(channel),
        .os = S(os),
        .os_version = S(os_version),
        .build_id = S(build_id),
        .cpu_arch = "",
        .crash_time_unix_ms = cr->crash_time_unix_ms ? cr->crash_time_unix_ms
                                                     : o->crash_time_unix_ms,
        .annotations = kv,
        .annotation_count = nann,
    };
#undef S
    u.hint_crash_id = "";
    cm_buf_init(env, 0);
    if ((rc = proto_encode_upload(&u, env, err)))
        goto out;
    struct cm_err herr = { 0 };
    if (!o->no_hint && ing__client_hint_body(cr->dump, cr->dump_len, o->max_dump_bytes, &u.meta,
                                             u.dump_format, u.dump_len, hint, &herr))
        cm_buf_free(hint); /* no key: the dump goes in full, the service reads it */
out:
    cm_free(kv);
    cm_buf_free(&packed);
    return rc;
}

/* ---- the outbox ---- */

static enum cm_code mkdirs(const char *dir, struct cm_err *err)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return cm_fail(err, CM_E_USAGE, "outbox path is empty or too long");
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != 0)
            continue;
        char c = path[i];
        path[i] = 0;
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return cm_fail(err, CM_E_IO, "cannot create %s: %s", path, strerror(errno));
        path[i] = c;
    }
    return CM_E_OK;
}

static enum cm_code outbox_put(const char *dir, const char *key, const struct cm_buf *env,
                               char **out_path, struct cm_err *err)
{
    char tmp[4200], fin[4200];
    snprintf(tmp, sizeof tmp, "%s/.tmp.%s", dir, key);
    snprintf(fin, sizeof fin, "%s/%s.pb", dir, key);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return cm_fail(err, CM_E_IO, "cannot write outbox %s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < env->len) {
        ssize_t w = write(fd, env->data + off, env->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            return cm_fail(err, CM_E_IO, "cannot write outbox %s: %s", tmp, strerror(e));
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, fin) != 0) {
        int e = errno;
        unlink(tmp);
        return cm_fail(err, CM_E_IO, "cannot store outbox entry %s: %s", fin, strerror(e));
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    if (!(*out_path = cm_strdup(fin)))
        return cm_fail(err, CM_E_NOMEM, "out of memory");
    return CM_E_OK;
}

static enum cm_code outbox_list(const char *dir, struct item **items, size_t *n, size_t *cap,
                                struct cm_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return cm_fail(err, CM_E_IO, "cannot list outbox %s: %s", dir, strerror(errno));
    struct dirent *e;
    enum cm_code rc = CM_E_OK;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 4 || e->d_name[0] == '.' || strcmp(e->d_name + len - 3, ".pb") != 0)
            continue;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            struct item *ni = cm_reallocarray(*items, nc, sizeof *ni);
            if (!ni) {
                rc = cm_fail(err, CM_E_NOMEM, "out of memory");
                break;
            }
            *items = ni;
            *cap = nc;
        }
        struct cm_buf p;
        cm_buf_init(&p, 8192);
        if (cm_buf_printf(&p, err, "%s/%s", dir, e->d_name)) {
            cm_buf_free(&p);
            rc = CM_E_LIMIT;
            break;
        }
        char *path = (char *)cm_buf_steal(&p, NULL);
        (*items)[(*n)++] = (struct item){ .path = path, .from_outbox = true, .outbox = path };
    }
    closedir(d);
    return rc;
}

/* ---- sending ---- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct ing_client *r = arg;
    size_t n = size * nmemb;
    if (cm_buf_append(&r->reply, p, n, NULL))
        return 0; /* reply past its cap: abort the transfer */
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    struct ing_client *r = arg;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && !strncasecmp(p, name, sizeof name - 1)) {
        char v[128];
        size_t vl = n - (sizeof name - 1);
        if (vl >= sizeof v)
            vl = sizeof v - 1;
        memcpy(v, p + sizeof name - 1, vl);
        v[vl] = 0;
        char *s = v;
        while (*s == ' ' || *s == '\t')
            s++;
        s[strcspn(s, "\r\n")] = 0;
        char *end;
        long secs = strtol(s, &end, 10);
        if (end != s && *end == 0 && secs >= 0) {
            r->retry_after_s = secs;
        } else { /* an HTTP-date */
            time_t t = curl_getdate(s, NULL);
            if (t != -1)
                r->retry_after_s = t > time(NULL) ? (long)(t - time(NULL)) : 0;
        }
    }
    return n;
}

static unsigned jitter(unsigned ms)
{
    uint32_t x = 0;
    if (getrandom(&x, sizeof x, 0) != sizeof x)
        x = (uint32_t)clock();
    unsigned half = ms / 2;
    return half + (half ? x % (ms - half + 1) : 0);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void emit(struct ing_client *r, const char *path, unsigned attempt, bool final,
                 enum ing_client_status st, const char *crash_id, const char *reason,
                 unsigned wait_ms)
{
    if (!r->o->progress)
        return;
    struct ing_client_event ev = { .path = path, .index = r->index, .total = r->total,
                                   .attempt = attempt, .final = final, .status = st,
                                   .crash_id = crash_id ? crash_id : "",
                                   .reason = reason ? reason : "", .wait_ms = wait_ms };
    r->o->progress(r->o->progress_ctx, &ev);
}

/* One envelope until the service answers for good or the attempts run out. */
static enum ing_client_status deliver(struct ing_client *r, const char *path, const struct cm_buf *env,
                                      char crash_id[37], char reason[300])
{
    const struct ing_client_opts *o = r->o;
    crash_id[0] = reason[0] = 0;
    unsigned delay = o->base_delay_ms;
    for (unsigned attempt = 1;; attempt++) {
        cm_buf_reset(&r->reply);
        r->retry_after_s = -1;
        struct curl_slist *h = NULL;
        h = curl_slist_append(h, "Content-Type: application/x-protobuf");
        h = curl_slist_append(h, "Accept: application/x-protobuf");
        h = curl_slist_append(h, "Expect:"); /* the body is small; no 100-continue round trip */
        curl_easy_setopt(r->curl, CURLOPT_URL, r->url);
        curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, env->data);
        curl_easy_setopt(r->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)env->len);
        CURLcode cc = curl_easy_perform(r->curl);
        curl_slist_free_all(h);
        r->totals.bytes_sent += env->len;
        long status = 0;
        if (cc == CURLE_OK)
            curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
        struct proto_ack *ack = NULL;
        if (cc == CURLE_OK && r->reply.len)
            proto_decode_ack(r->reply.data, r->reply.len, NULL, &ack, NULL);
        const char *ack_reason = ack && ack->reason ? ack->reason : "";
        enum ing_client_status st = 0;
        if (cc == CURLE_OK && status == 202 && ack && ack->crash_id && ack->crash_id[0]) {
            snprintf(crash_id, 37, "%s", ack->crash_id);
            st = ack->status == PROTO_ACK_DUPLICATE ? ING_CLIENT_DUPLICATE : ING_CLIENT_ACCEPTED;
        } else if (cc == CURLE_OK && ack && ack->status == PROTO_ACK_DISCARDED) {
            st = ING_CLIENT_DISCARDED;
        } else if (cc == CURLE_OK && status >= 400 && status < 500 && status != 408 &&
                   status != 429) {
            st = ING_CLIENT_REJECTED;
        }
        if (st) {
            snprintf(reason, 300, "%s", st == ING_CLIENT_REJECTED && !ack_reason[0]
                                            ? "http_error"
                                            : ack_reason);
            if (st == ING_CLIENT_REJECTED && status)
                snprintf(reason + strlen(reason), 300 - strlen(reason), " (HTTP %ld)", status);
            proto_ack_free(ack);
            return st;
        }
        if (cc != CURLE_OK)
            snprintf(reason, 300, "%s", curl_easy_strerror(cc));
        else
            snprintf(reason, 300, "HTTP %ld%s%s", status, ack_reason[0] ? " " : "", ack_reason);
        proto_ack_free(ack);
        if (attempt >= o->max_attempts)
            return o->outbox_dir ? ING_CLIENT_QUEUED : ING_CLIENT_FAILED;
        unsigned wait = jitter(delay);
        if (r->retry_after_s >= 0) /* the service said when: honour it, within our cap */
            wait = (unsigned)(r->retry_after_s * 1000 < (long)o->max_delay_ms
                                  ? r->retry_after_s * 1000
                                  : (long)o->max_delay_ms);
        emit(r, path, attempt, false, 0, NULL, reason, wait);
        sleep_ms(wait);
        delay = delay > o->max_delay_ms / 2 ? o->max_delay_ms : delay * 2;
    }
}

static void count(struct ing_client_totals *t, enum ing_client_status st)
{
    switch (st) {
    case ING_CLIENT_ACCEPTED: t->accepted++; break;
    case ING_CLIENT_DUPLICATE: t->duplicate++; break;
    case ING_CLIENT_DISCARDED: t->discarded++; break;
    case ING_CLIENT_REJECTED: t->rejected++; break;
    case ING_CLIENT_QUEUED: t->queued++; break;
    case ING_CLIENT_FAILED: t->failed++; break;
    case ING_CLIENT_COUNTED: t->counted++; break;
    }
}

/* One hint attempt: true when the service decided (want, crash_id and reason filled). A hint
 * that gets no decision (no connection, an older service, an error) is not retried: the full
 * upload follows, with its own retries. */
static bool ask(struct ing_client *r, const struct cm_buf *hint, bool *want, char crash_id[37],
                char reason[300])
{
    cm_buf_reset(&r->reply);
    r->retry_after_s = -1;
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/x-protobuf");
    h = curl_slist_append(h, "Accept: application/x-protobuf");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(r->curl, CURLOPT_URL, r->hint_url);
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, hint->data);
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)hint->len);
    CURLcode cc = curl_easy_perform(r->curl);
    curl_slist_free_all(h);
    r->totals.bytes_sent += hint->len;
    long status = 0;
    if (cc == CURLE_OK)
        curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
    struct proto_hint_reply *hr = NULL;
    if (cc != CURLE_OK || status != 200 ||
        proto_decode_hint_reply(r->reply.data, r->reply.len, NULL, &hr, NULL))
        return false;
    *want = hr->want_dump || !hr->crash_id || !hr->crash_id[0];
    snprintf(crash_id, 37, "%s", hr->crash_id ? hr->crash_id : "");
    snprintf(reason, 300, "%s", hr->reason ? hr->reason : "");
    proto_hint_reply_free(hr);
    r->totals.hints++;
    return true;
}

/* Sends one prepared crash: the hint (if any), then the envelope when wanted. */
static enum ing_client_status send_prepared(struct ing_client *r, const char *path, struct cm_buf *env,
                                            const struct cm_buf *hint, const char *outbox,
                                            char crash_id[37], char reason[300])
{
    bool want = true;
    char hint_id[37] = "";
    if (hint && hint->len && ask(r, hint, &want, hint_id, reason) && !want) {
        snprintf(crash_id, 37, "%s", hint_id);
        if (outbox)
            unlink(outbox); /* counted for good */
        return ING_CLIENT_COUNTED;
    }
    if (hint_id[0]) { /* link the upload to the hint's crash: a later field wins (protobuf) */
        struct proto_upload link = { .hint_crash_id = hint_id };
        proto_encode_upload(&link, env, NULL);
    }
    enum ing_client_status st = deliver(r, path, env, crash_id, reason);
    if (st != ING_CLIENT_QUEUED && st != ING_CLIENT_FAILED && outbox)
        unlink(outbox); /* answered for good */
    return st;
}

static void one(struct ing_client *r, struct item *it)
{
    const struct ing_client_opts *o = r->o;
    struct cm_buf env, raw, hint;
    cm_buf_init(&env, 0);
    cm_buf_init(&raw, 0);
    cm_buf_init(&hint, 0);
    struct cm_err err = { 0 };
    char key[37], crash_id[37] = "", reason[300] = "";
    enum ing_client_status st;
    if (it->from_outbox) {
        if (read_file(it->path, (size_t)o->max_dump_bytes + (16u << 20), &env, &err)) {
            st = ING_CLIENT_FAILED;
            snprintf(reason, sizeof reason, "%.256s", err.msg);
            goto done;
        }
    } else {
        struct ing_client_crash cr = { .name = it->path };
        if (!read_file(it->path, o->max_dump_bytes, &raw, &err)) {
            cr.dump = raw.data;
            cr.dump_len = raw.len;
        }
        if (err.code || envelope(o, &cr, &env, &hint, key, &err)) {
            st = ING_CLIENT_FAILED;
            snprintf(reason, sizeof reason, "%.256s", err.msg);
            goto done;
        }
        cm_buf_free(&raw);
        r->totals.envelope_bytes += env.len;
        if (o->outbox_dir && outbox_put(o->outbox_dir, key, &env, &it->outbox, &err)) {
            st = ING_CLIENT_FAILED;
            snprintf(reason, sizeof reason, "%.256s", err.msg);
            goto done;
        }
    }
    st = send_prepared(r, it->path, &env, &hint, it->outbox, crash_id, reason);
done:
    cm_buf_free(&env);
    cm_buf_free(&raw);
    cm_buf_free(&hint);
    count(&r->totals, st);
    emit(r, it->path, 0, true, st, crash_id, reason, 0);
}

/* The session: defaults, URLs and the libcurl handle (curl_global_init done by the caller). */
static enum cm_code session_init(struct ing_client *r, const struct ing_client_opts *opts,
                                 struct cm_err *err)
{
    memset(r, 0, sizeof *r);
    r->opts = *opts;
    r->o = &r->opts;
    struct ing_client_opts *o = &r->opts;
    if (!o->url || !*o->url)
        return cm_fail(err, CM_E_USAGE, "no service URL");
    if (!o->max_attempts)
        o->max_attempts = 6;
    if (!o->base_delay_ms)
        o->base_delay_ms = 500;
    if (!o->max_delay_ms)
        o->max_delay_ms = 30000;
    if (!o->timeout_s)
        o->timeout_s = 120;
    if (!o->max_dump_bytes)
        o->max_dump_bytes = 100u << 20;
    if (!o->zstd_level)
        o->zstd_level = 3;
    size_t ulen = strlen(o->url);
    while (ulen && o->url[ulen - 1] == '/')
        ulen--;
    if (ulen + 32 > sizeof r->url)
        return cm_fail(err, CM_E_USAGE, "service URL too long");
    snprintf(r->url, sizeof r->url, "%.*s/api/v1/crashes", (int)ulen, o->url);
    snprintf(r->hint_url, sizeof r->hint_url, "%.*s/api/v1/hints", (int)ulen, o->url);
    if (!(r->curl = curl_easy_init()))
        return cm_fail(err, CM_E_NOMEM, "cannot create a libcurl handle");
    cm_buf_init(&r->reply, MAX_REPLY_BYTES);
    curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(r->curl, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(r->curl, CURLOPT_TIMEOUT, (long)o->timeout_s);
    curl_easy_setopt(r->curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->curl, CURLOPT_USERAGENT, "triagectl-upload/1");
    return CM_E_OK;
}

static void session_fini(struct ing_client *r)
{
    cm_buf_free(&r->reply);
    if (r->curl)
        curl_easy_cleanup(r->curl);
    r->curl = NULL;
}

enum cm_code ing_client_upload(const struct ing_client_opts *opts, char *const *paths,
                               size_t count_in, struct ing_client_totals *totals,
                               struct cm_err *err)
{
    memset(totals, 0, sizeof *totals);
    struct item *items = NULL;
    size_t n = 0, cap = 0;
    bool global = false;
    struct ing_client r;
    enum cm_code rc = CM_E_OK;
    memset(&r, 0, sizeof r);
    if (!opts->url || !*opts->url)
        return cm_fail(err, CM_E_USAGE, "no service URL");
    if (opts->outbox_dir) {
        if ((rc = mkdirs(opts->outbox_dir, err)) ||
            (rc = outbox_list(opts->outbox_dir, &items, &n, &cap, err)))
            goto out;
    }
    if (count_in) {
        struct item *ni = cm_reallocarray(items, n + count_in, sizeof *ni);
        if (!ni) {
            rc = cm_fail(err, CM_E_NOMEM, "out of memory");
            goto out;
        }
        items = ni;
        for (size_t i = 0; i < count_in; i++)
            items[n++] = (struct item){ .path = paths[i] };
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = cm_fail(err, CM_E_IO, "cannot initialise libcurl");
        goto out;
    }
    global = true;
    if ((rc = session_init(&r, opts, err)))
        goto out;
    r.total = n;
    for (size_t i = 0; i < n; i++) {
        r.index = i + 1;
        one(&r, &items[i]);
    }
    *totals = r.totals;
out:
    session_fini(&r);
    if (global)
        curl_global_cleanup();
    for (size_t i = 0; i < n; i++) {
        if (items[i].from_outbox)
            cm_free(items[i].path);
        else
            cm_free(items[i].outbox);
    }
    cm_free(items);
    return rc;
}

/* ---- the in-memory session ---- */

enum cm_code ing_client_open(const struct ing_client_opts *o, struct ing_client **out,
                             struct cm_err *err)
{
    *out = NULL;
    struct ing_client *c = cm_calloc(1, sizeof *c);
    if (!c)
        return cm_fail(err, CM_E_NOMEM, "out of memory");
    enum cm_code rc = session_init(c, o, err);
    if (rc) {
        session_fini(c);
        cm_free(c);
        return rc;
    }
    c->opts.outbox_dir = NULL; /* the caller keeps its crashes; no outbox here */
    *out = c;
    return CM_E_OK;
}

enum ing_client_status ing_client_send(struct ing_client *c, const struct ing_client_crash *cr,
                                       char crash_id[37], char reason[300])
{
    struct cm_buf env, hint;
    struct cm_err err = { 0 };
    char key[37];
    crash_id[0] = reason[0] = 0;
    c->index++;
    c->total = c->index;
    cm_buf_init(&env, 0);
    cm_buf_init(&hint, 0);
    enum ing_client_status st;
    if (envelope(c->o, cr, &env, &hint, key, &err)) {
        st = ING_CLIENT_FAILED;
        snprintf(reason, 300, "%.256s", err.msg);
    } else {
        c->totals.envelope_bytes += env.len;
        st = send_prepared(c, cr->name ? cr->name : "dump", &env, &hint, NULL, crash_id, reason);
    }
    cm_buf_free(&env);
    cm_buf_free(&hint);
    count(&c->totals, st);
    emit(c, cr->name ? cr->name : "dump", 0, true, st, crash_id, reason, 0);
    return st;
}

void ing_client_totals_get(const struct ing_client *c, struct ing_client_totals *t)
{
    *t = c->totals;
}

void ing_client_close(struct ing_client *c)
{
    if (!c)
        return;
    session_fini(c);
    cm_free(c);
}
