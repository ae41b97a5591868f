/* load_pool.c -- builds the requests of bench_load before any timing (see load.h). The native
 * body is the CrashUpload envelope of proto/crash.proto encoded with proto/'s encoder, the same
 * bytes `triagectl upload` sends; the multipart body follows what Crashpad's and Breakpad's
 * reporters send (fields prod, ver, guid, then the file part upload_file_minidump). */
#include "bench/service/load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zstd.h>

#include "bench/service/svc_util.h"
#include "common/cm_alloc.h"
#include "common/cm_buf.h"
#include "proto/proto.h"

#define MAX_DUMP_BYTES ((size_t)256 << 20)

static void put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

bool load_dump_read(const char *path, struct load_dump *d)
{
    *d = (struct load_dump){ .path = path };
    uint8_t *file = NULL;
    size_t n = 0;
    if (!svc_read_file(path, MAX_DUMP_BYTES, &file, &n))
        return false;
    if (n >= 4 && file[0] == 0x28 && file[1] == 0xB5 && file[2] == 0x2F && file[3] == 0xFD) {
        unsigned long long size = ZSTD_getFrameContentSize(file, n);
        if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN ||
            size > MAX_DUMP_BYTES) {
            fprintf(stderr, "bench_load: %s: zstd frame without a usable content size\n", path);
            cm_free(file);
            return false;
        }
        uint8_t *raw = cm_malloc(size ? (size_t)size : 1);
        size_t got = raw ? ZSTD_decompress(raw, (size_t)size, file, n) : 0;
        cm_free(file);
        if (!raw || ZSTD_isError(got) || got != size) {
            fprintf(stderr, "bench_load: %s: cannot decompress\n", path);
            cm_free(raw);
            return false;
        }
        file = raw;
        n = got;
    }
    if (n >= 32 && memcmp(file, "MDMP", 4) == 0) {
        d->patch_at = 16; /* MINIDUMP_HEADER.CheckSum */
    } else if (n >= 64 && memcmp(file, "\x7f" "ELF", 4) == 0) {
        d->patch_at = 9; /* e_ident[EI_PAD] */
        d->elf = true;
    } else {
        fprintf(stderr, "bench_load: %s: neither a minidump nor an ELF core\n", path);
        cm_free(file);
        return false;
    }
    d->raw = file;
    d->len = n;
    return true;
}

void load_dump_tiny(struct load_dump *d)
{
    *d = (struct load_dump){ .path = "tiny", .len = 32, .patch_at = 16 };
    d->raw = cm_calloc(1, 32);
    if (!d->raw)
        return;
    memcpy(d->raw, "MDMP", 4);
    put_u32le(d->raw + 4, 0xA793);  /* MINIDUMP_HEADER.Version: MINIDUMP_VERSION */
    put_u32le(d->raw + 8, 0);       /* NumberOfStreams */
    put_u32le(d->raw + 12, 32);     /* StreamDirectoryRva: right after the header */
    put_u32le(d->raw + 20, 0x65000000u); /* TimeDateStamp */
}

void load_dump_free(struct load_dump *d)
{
    cm_free(d->raw);
    d->raw = NULL;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const struct proto_kv annotations[] = {
    { "channel", "release" },
    { "region", "eu-west-1" },
    { "gpu", "Contoso Graphics 7100" },
    { "uptime_s", "86211" },
};

/* Native: the request line, headers and the envelope in one owned buffer. */
static bool build_native(const struct load_pool_opts *o, ZSTD_CCtx *cctx, uint8_t *scratch,
                         uint8_t *zbuf, size_t zcap, uint32_t counter, size_t i,
                         int64_t now_ms, struct load_req *r)
{
    const struct load_dump *d = &o->dumps[i % o->dump_count];
    memcpy(scratch, d->raw, d->len);
    put_u32le(scratch + d->patch_at, counter);
    const uint8_t *dump = scratch;
    size_t dump_len = d->len;
    if (o->zstd) {
        size_t z = ZSTD_compressCCtx(cctx, zbuf, zcap, scratch, d->len, o->zstd_level);
        if (ZSTD_isError(z)) {
            fprintf(stderr, "bench_load: zstd: %s\n", ZSTD_getErrorName(z));
            return false;
        }
        dump = zbuf;
        dump_len = z;
    }
    char key[48], host[32];
    snprintf(key, sizeof key, "bench-%08x-%08zx", o->seed, i);
    snprintf(host, sizeof host, "bench-host-%05u", (unsigned)(counter % o->hosts));
    struct proto_upload m = { 0 };
    m.meta = (struct proto_meta){
        .idempotency_key = key, .host_id = host, .product = "BenchApp", .version = "4.2.1",
        .channel = "release", .os = d->elf ? "Linux" : "Windows NT",
        .os_version = d->elf ? "6.1.0" : "10.0.19045", .build_id = "", .cpu_arch = "amd64",
        /* crashes of the last ten minutes, spread over the minutes like a live fleet's */
        .crash_time_unix_ms = now_ms - (int64_t)(counter % 600) * 1000,
        .annotations = annotations,
        .annotation_count = sizeof annotations / sizeof annotations[0],
    };
    m.dump_format = d->elf ? PROTO_DUMP_ELF_CORE : PROTO_DUMP_MINIDUMP;
    m.compression = o->zstd ? PROTO_COMP_ZSTD : PROTO_COMP_NONE;
    m.dump = dump;
    m.dump_len = dump_len;
    m.hint_crash_id = "";
    struct cm_buf body, req;
    cm_buf_init(&body, 0);
    cm_buf_init(&req, 0);
    struct cm_err err = { 0 };
    bool ok = proto_encode_upload(&m, &body, &err) == CM_E_OK &&
              cm_buf_printf(&req, &err,
                            "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: bench_load\r\n"
                            "Content-Type: application/x-protobuf\r\nContent-Length: %zu\r\n\r\n",
                            o->path, o->host, body.len) == CM_E_OK &&
              cm_buf_append(&req, body.data, body.len, &err) == CM_E_OK;
    if (!ok) {
        fprintf(stderr, "bench_load: cannot build an envelope: %s\n", err.msg);
        cm_buf_free(&body);
        cm_buf_free(&req);
        return false;
    }
    r->body_bytes = body.len;
    cm_buf_free(&body);
    r->head = cm_buf_steal(&req, &r->bytes);
    r->iov[0] = (struct iovec){ r->head, r->bytes };
    r->iovcnt = 1;
    return true;
}

/* Multipart: an owned head (headers, fields, the file part's header), then the shared dump with
 * the counter spliced in, then the shared epilogue. */
static bool build_submit(const struct load_pool_opts *o, const char *boundary,
                         const struct load_pool *p, uint32_t counter, size_t i,
                         struct load_req *r)
{
    const struct load_dump *d = &o->dumps[i % o->dump_count];
    struct cm_buf fields, req;
    cm_buf_init(&fields, 0);
    cm_buf_init(&req, 0);
    char host[32];
    snprintf(host, sizeof host, "bench-host-%05u", (unsigned)(counter % o->hosts));
    const char *names[] = { "prod", "ver", "guid", "channel", "ptype" };
    const char *values[] = { "BenchApp", "4.2.1", host, "release", "browser" };
    struct cm_err err = { 0 };
    enum cm_code rc = CM_E_OK;
    for (size_t k = 0; k < sizeof names / sizeof names[0] && !rc; k++)
        rc = cm_buf_printf(&fields, &err,
                           "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n",
                           boundary, names[k], values[k]);
    if (!rc)
        rc = cm_buf_printf(&fields, &err,
                           "--%s\r\nContent-Disposition: form-data; name=\"upload_file_minidump\";"
                           " filename=\"upload.dmp\"\r\nContent-Type: application/octet-stream"
                           "\r\n\r\n",
                           boundary);
    size_t body = fields.len + d->len + p->tail_len;
    if (!rc)
        rc = cm_buf_printf(&req, &err,
                           "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: bench_load\r\n"
                           "Content-Type: multipart/form-data; boundary=%s\r\n"
                           "Content-Length: %zu\r\n\r\n",
                           o->path, o->host, boundary, body);
    if (!rc)
        rc = cm_buf_append(&req, fields.data, fields.len, &err);
    cm_buf_free(&fields);
    if (rc) {
        fprintf(stderr, "bench_load: cannot build a multipart body: %s\n", err.msg);
        cm_buf_free(&req);
        return false;
    }
    size_t head_len = 0;
    r->head = cm_buf_steal(&req, &head_len);
    put_u32le(r->patch, counter);
    r->iov[0] = (struct iovec){ r->head, head_len };
    r->iov[1] = (struct iovec){ d->raw, d->patch_at };
    r->iov[2] = (struct iovec){ r->patch, 4 };
    r->iov[3] = (struct iovec){ d->raw + d->patch_at + 4, d->len - d->patch_at - 4 };
    r->iov[4] = (struct iovec){ p->tail, p->tail_len };
    r->iovcnt = 5;
    r->body_bytes = body;
    r->bytes = head_len + d->len + p->tail_len;
    return true;
}

bool load_pool_build(const struct load_pool_opts *o, size_t count, struct load_pool *p)
{
    *p = (struct load_pool){ 0 };
    if (o->dump_count == 0 || count == 0) {
        fprintf(stderr, "bench_load: nothing to build\n");
        return false;
    }
    size_t max_len = 0;
    for (size_t i = 0; i < o->dump_count; i++)
        if (o->dumps[i].len > max_len)
            max_len = o->dumps[i].len;
    char boundary[64];
    snprintf(boundary, sizeof boundary, "------BenchBoundary%08x", o->seed);
    struct cm_buf tail;
    cm_buf_init(&tail, 0);
    cm_buf_printf(&tail, NULL, "\r\n--%s--\r\n", boundary);
    p->tail = cm_buf_steal(&tail, &p->tail_len);
    p->req = cm_calloc(count, sizeof *p->req);
    size_t zcap = ZSTD_compressBound(max_len);
    uint8_t *scratch = cm_malloc(max_len), *zbuf = cm_malloc(zcap);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    bool ok = p->req && p->tail && scratch && zbuf && cctx;
    if (!ok)
        fprintf(stderr, "bench_load: out of memory for %zu requests\n", count);
    int64_t now = wall_ms();
    double body_sum = 0;
    for (size_t i = 0; ok && i < count; i++) {
        uint32_t counter = o->seed + (uint32_t)i + 1;
        ok = o->kind == LOAD_NATIVE
                 ? build_native(o, cctx, scratch, zbuf, zcap, counter, i, now, &p->req[i])
                 : build_submit(o, boundary, p, counter, i, &p->req[i]);
        if (ok) {
            p->count++;
            body_sum += (double)p->req[i].body_bytes;
        }
    }
    ZSTD_freeCCtx(cctx);
    cm_free(scratch);
    cm_free(zbuf);
    if (!ok) {
        load_pool_free(p);
        return false;
    }
    p->body_mean = body_sum / (double)p->count;
    return true;
}

void load_pool_free(struct load_pool *p)
{
    for (size_t i = 0; p->req && i < p->count; i++)
        cm_free(p->req[i].head); /* from cm_buf_steal */
    cm_free(p->req);
    cm_free(p->tail);
    *p = (struct load_pool){ 0 };
}
