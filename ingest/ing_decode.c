/* ing_decode.c -- streaming decode of uploaded dumps: zstd (RFC 8878), gzip (RFC 1952) or raw.
 * Pass 1 (inspect) decompresses into a small reused buffer, hashes the bytes (SHA-256, OpenSSL
 * libcrypto) and checks the dump magic, never holding the whole dump; the output is capped while
 * streaming and a frame's declared content size is used only to refuse early, never to size a
 * buffer. Pass 2 (write) produces the spool file. Each failure maps to a stable reason token
 * (RELIABILITY.md Z01-Z11). */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader: window size and dictionary id */
#include <openssl/evp.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "analyzer/ana.h"
#include "common/cm_alloc.h"
#include "ingest/ing_int.h"

#define CHUNK (128u << 10)
#define ZSTD_MAGIC 0xFD2FB528u
#define SKIPPABLE_MASK 0xFFFFFFF0u
#define SKIPPABLE_MAGIC 0x184D2A50u

struct ing_codec {
    ZSTD_DCtx *dctx;
    ZSTD_CCtx *cctx;
    EVP_MD_CTX *md;
    uint8_t *out;  /* CHUNK bytes of decoded data */
    uint8_t *zout; /* CHUNK bytes of compressed data */
};

struct ing_codec *ing__codec_new(void)
{
    struct ing_codec *k = cm_calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->dctx = ZSTD_createDCtx();
    k->cctx = ZSTD_createCCtx();
    k->md = EVP_MD_CTX_new();
    k->out = cm_malloc(CHUNK);
    k->zout = cm_malloc(CHUNK);
    if (!k->dctx || !k->cctx || !k->md || !k->out || !k->zout) {
        ing__codec_free(k);
        return NULL;
    }
    return k;
}

void ing__codec_free(struct ing_codec *k)
{
    if (!k)
        return;
    ZSTD_freeDCtx(k->dctx);
    ZSTD_freeCCtx(k->cctx);
    EVP_MD_CTX_free(k->md);
    cm_free(k->out);
    cm_free(k->zout);
    cm_free(k);
}

/* A sink takes decoded bytes; a non-NONE reason stops decoding. */
typedef enum ing_reason (*sink_fn)(void *ctx, const uint8_t *p, size_t n, struct cm_err *err);

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static enum ing_reason zstd_error(size_t ret, size_t pos, struct cm_err *err)
{
    enum ing_reason r;
    switch (ZSTD_getErrorCode(ret)) {
    case ZSTD_error_frameParameter_windowTooLarge: r = ING_R_ZSTD_WINDOW; break;
    case ZSTD_error_dictionary_wrong:
    case ZSTD_error_dictionary_corrupted: r = ING_R_ZSTD_DICTIONARY; break;
    default: r = ING_R_ZSTD_CORRUPT; break;
    }
    cm_fail(err, CM_E_CORRUPT, "zstd: %s near input offset %zu", ZSTD_getErrorName(ret), pos);
    return r;
}

/* Checks the frame starting at in[pos] before decoding it: magic, dictionary, window and a
 * declared content size that already exceeds the cap. */
static enum ing_reason zstd_frame_check(const uint8_t *in, size_t n, size_t pos, bool first,
                                        unsigned wlog, uint64_t room, struct cm_err *err)
{
    if (n - pos < 4 || ((le32(in + pos) & SKIPPABLE_MASK) != SKIPPABLE_MAGIC &&
                        le32(in + pos) != ZSTD_MAGIC)) {
        if (first)
            return cm_fail(err, CM_E_CORRUPT, "zstd: no frame magic at offset 0"),
                   ING_R_ZSTD_BAD_MAGIC;
        cm_fail(err, CM_E_CORRUPT, "zstd: %zu bytes after the last frame are no frame", n - pos);
        return ING_R_ZSTD_TRAILING;
    }
    ZSTD_frameHeader fh;
    size_t r = ZSTD_getFrameHeader(&fh, in + pos, n - pos);
    if (ZSTD_isError(r))
        return zstd_error(r, pos, err);
    if (r > 0) {
        cm_fail(err, CM_E_TRUNCATED, "zstd: input ends inside a frame header at offset %zu", pos);
        return ING_R_ZSTD_TRUNCATED;
    }
    if (fh.frameType == ZSTD_skippableFrame)
        return ING_R_NONE;
    if (fh.dictID) {
        cm_fail(err, CM_E_UNSUPPORTED, "zstd: frame at offset %zu needs dictionary %u", pos,
                fh.dictID);
        return ING_R_ZSTD_DICTIONARY;
    }
    if (fh.windowSize > (1ull << wlog)) {
        cm_fail(err, CM_E_LIMIT, "zstd: frame at offset %zu has a %llu-byte window, limit %llu",
                pos, fh.windowSize, 1ull << wlog);
        return ING_R_ZSTD_WINDOW;
    }
    if (fh.frameContentSize != ZSTD_CONTENTSIZE_UNKNOWN && fh.frameContentSize > room) {
        cm_fail(err, CM_E_LIMIT, "zstd: frame at offset %zu declares %llu bytes, over the limit",
                pos, fh.frameContentSize);
        return ING_R_TOO_LARGE;
    }
    return ING_R_NONE;
}

static enum ing_reason unzstd(struct ing_codec *k, const uint8_t *in, size_t n, uint64_t max_out,
                              unsigned wlog, sink_fn sink, void *ctx, uint64_t *total,
                              struct cm_err *err)
{
    ZSTD_DCtx_reset(k->dctx, ZSTD_reset_session_and_parameters);
    size_t sr = ZSTD_DCtx_setParameter(k->dctx, ZSTD_d_windowLogMax, (int)wlog);
    if (ZSTD_isError(sr))
        return cm_fail(err, CM_E_USAGE, "zstd: %s", ZSTD_getErrorName(sr)), ING_R_INTERNAL;
    size_t pos = 0;
    bool frame_start = true, first = true;
    uint64_t out_total = 0;
    enum ing_reason r;
    while (pos < n || !frame_start) {
        if (frame_start) {
            if ((r = zstd_frame_check(in, n, pos, first, wlog, max_out - out_total, err)))
                return r;
            frame_start = first = false;
        }
        ZSTD_inBuffer ib = { in, n, pos };
        ZSTD_outBuffer ob = { k->out, CHUNK, 0 };
        size_t ret = ZSTD_decompressStream(k->dctx, &ob, &ib);
        if (ZSTD_isError(ret))
            return zstd_error(ret, ib.pos, err);
        pos = ib.pos;
        if (ob.pos > max_out - out_total) {
            cm_fail(err, CM_E_LIMIT, "zstd input decompresses past the %llu-byte dump limit",
                    (unsigned long long)max_out);
            return ING_R_TOO_LARGE;
        }
        out_total += ob.pos;
        if (ob.pos && (r = sink(ctx, k->out, ob.pos, err)))
            return r;
        if (ret == 0) { /* frame decoded and flushed */
            frame_start = true;
            continue;
        }
        if (pos == n && ob.pos < ob.size) {
            cm_fail(err, CM_E_TRUNCATED, "zstd: input ends inside a frame after %zu bytes", n);
            return ING_R_ZSTD_TRUNCATED;
        }
    }
    *total = out_total;
    return ING_R_NONE;
}

/* gzip members one after another (as gzip -d accepts them); anything else after a member is
 * an error. */
static enum ing_reason ungzip(struct ing_codec *k, uint8_t *outbuf, const uint8_t *in, size_t n,
                              uint64_t max_out, sink_fn sink, void *ctx, uint64_t *total,
                              struct cm_err *err)
{
    (void)k;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 16) != Z_OK) /* +16: the gzip wrapper only */
        return cm_fail(err, CM_E_NOMEM, "cannot create gzip decoder"), ING_R_INTERNAL;
    enum ing_reason r = ING_R_NONE;
    size_t pos = 0;
    uint64_t out_total = 0;
    if (n < 2 || in[0] != 0x1F || in[1] != 0x8B) {
        cm_fail(err, CM_E_CORRUPT, "gzip: no gzip magic at offset 0");
        r = ING_R_BAD_GZIP;
        goto out;
    }
    for (;;) {
        size_t chunk = n - pos > (1u << 30) ? (1u << 30) : n - pos;
        zs.next_in = (Bytef *)(uintptr_t)(in + pos);
        zs.avail_in = (uInt)chunk;
        zs.next_out = outbuf;
        zs.avail_out = CHUNK;
        int zr = inflate(&zs, Z_NO_FLUSH);
        pos += chunk - zs.avail_in;
        size_t got = CHUNK - zs.avail_out;
        if (got > max_out - out_total) {
            cm_fail(err, CM_E_LIMIT, "gzip input decompresses past the %llu-byte limit",
                    (unsigned long long)max_out);
            r = ING_R_TOO_LARGE;
            goto out;
        }
        out_total += got;
        if (got && (r = sink(ctx, outbuf, got, err)))
            goto out;
        if (zr == Z_STREAM_END) {
            if (pos == n)
                break;
            if (n - pos >= 2 && in[pos] == 0x1F && in[pos + 1] == 0x8B) {
                inflateReset(&zs);
                continue;
            }
            cm_fail(err, CM_E_CORRUPT, "gzip: %zu bytes after the last member are no member",
                    n - pos);
            r = ING_R_BAD_GZIP;
            goto out;
        }
        if (zr == Z_OK || (zr == Z_BUF_ERROR && got)) {
            if (pos == n && got < CHUNK) {
                cm_fail(err, CM_E_TRUNCATED, "gzip: input ends inside a member after %zu bytes",
                        n);
                r = ING_R_BAD_GZIP;
                goto out;
            }
            continue;
        }
        cm_fail(err, CM_E_CORRUPT, "gzip: %s near input offset %zu",
                zr == Z_BUF_ERROR ? "input ends inside a member" : zs.msg ? zs.msg : "bad data",
                pos);
        r = ING_R_BAD_GZIP;
        goto out;
    }
    *total = out_total;
out:
    inflateEnd(&zs);
    return r;
}

static enum ing_comp resolve(enum ing_comp comp, const uint8_t *in, size_t n)
{
    if (comp != ING_COMP_SNIFF)
        return comp;
    switch (ana_sniff_compression(in, n)) {
    case ANA_COMP_ZSTD: return ING_COMP_ZSTD;
    case ANA_COMP_GZIP: return ING_COMP_GZIP;
    default: return ING_COMP_NONE;
    }
}

static enum ing_reason decode(struct ing_codec *k, const uint8_t *in, size_t n, enum ing_comp comp,
                              const struct ing_conf *conf, sink_fn sink, void *ctx,
                              uint64_t *total, struct cm_err *err)
{
    switch (comp) {
    case ING_COMP_ZSTD:
        return unzstd(k, in, n, conf->max_dump_bytes, (unsigned)conf->zstd_window_log_max, sink,
                      ctx, total, err);
    case ING_COMP_GZIP:
        return ungzip(k, k->out, in, n, conf->max_dump_bytes, sink, ctx, total, err);
    default:
        if (n > conf->max_dump_bytes) {
            cm_fail(err, CM_E_LIMIT, "dump of %zu bytes exceeds the %zu-byte limit", n,
                    conf->max_dump_bytes);
            return ING_R_TOO_LARGE;
        }
        *total = n;
        return n ? sink(ctx, in, n, err) : ING_R_NONE;
    }
}

/* ---- pass 1 ---- */

struct inspect {
    EVP_MD_CTX *md;
    uint8_t head[8];
    size_t head_len;
    bool sniffed;
    int kind;
};

static enum ing_reason sniff(struct inspect *s, struct cm_err *err)
{
    s->sniffed = true;
    s->kind = (int)ana_sniff_kind(s->head, s->head_len);
    if (s->kind == ANA_KIND_UNKNOWN) {
        cm_fail(err, CM_E_NOTDUMP, "not a crash dump: no MDMP, ELF or PAGEDU64 magic");
        return ING_R_BAD_MAGIC;
    }
    return ING_R_NONE;
}

static enum ing_reason inspect_sink(void *ctx, const uint8_t *p, size_t n, struct cm_err *err)
{
    struct inspect *s = ctx;
    if (!s->sniffed) {
        size_t take = sizeof s->head - s->head_len < n ? sizeof s->head - s->head_len : n;
        memcpy(s->head + s->head_len, p, take);
        s->head_len += take;
        enum ing_reason r;
        if (s->head_len == sizeof s->head && (r = sniff(s, err)))
            return r; /* stop decoding garbage as soon as the magic is wrong */
    }
    if (EVP_DigestUpdate(s->md, p, n) != 1) {
        cm_fail(err, CM_E_NOMEM, "sha256 update failed");
        return ING_R_INTERNAL;
    }
    return ING_R_NONE;
}

enum ing_reason ing__dump_inspect(struct ing_codec *k, const uint8_t *in, size_t n,
                                  enum ing_comp comp, const struct ing_conf *conf,
                                  struct ing_dump_info *out, struct cm_err *err)
{
    memset(out, 0, sizeof *out);
    if (n == 0) {
        cm_fail(err, CM_E_TRUNCATED, "the dump is empty");
        return ING_R_EMPTY;
    }
    out->comp = resolve(comp, in, n);
    if (EVP_DigestInit_ex(k->md, EVP_sha256(), NULL) != 1) {
        cm_fail(err, CM_E_NOMEM, "sha256 init failed");
        return ING_R_INTERNAL;
    }
    struct inspect s = { .md = k->md };
    uint64_t total = 0;
    enum ing_reason r = decode(k, in, n, out->comp, conf, inspect_sink, &s, &total, err);
    if (r)
        return r;
    if (total == 0) {
        cm_fail(err, CM_E_TRUNCATED, "the dump decompresses to nothing");
        return ING_R_EMPTY;
    }
    if (!s.sniffed && (r = sniff(&s, err))) /* dumps shorter than 8 bytes */
        return r;
    uint8_t md[32];
    unsigned mdlen = 0;
    if (EVP_DigestFinal_ex(k->md, md, &mdlen) != 1 || mdlen != 32) {
        cm_fail(err, CM_E_NOMEM, "sha256 final failed");
        return ING_R_INTERNAL;
    }
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out->sha256[2 * i] = hex[md[i] >> 4];
        out->sha256[2 * i + 1] = hex[md[i] & 15];
    }
    out->sha256[64] = 0;
    out->bytes = total;
    out->kind = s.kind;
    return ING_R_NONE;
}

/* ---- pass 2 ---- */

static enum cm_code write_all(int fd, const uint8_t *p, size_t n, uint64_t *written,
                              int *sys_errno, struct cm_err *err)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            *sys_errno = w < 0 ? errno : EIO;
            return cm_fail(err, CM_E_IO, "cannot write spool file: %s", strerror(*sys_errno));
        }
        p += w;
        n -= (size_t)w;
        *written += (uint64_t)w;
    }
    return CM_E_OK;
}

struct writer {
    struct ing_codec *k;
    int fd;
    uint64_t written;
    int sys_errno;
    enum cm_code rc;
};

static enum ing_reason compress_chunk(struct writer *w, const uint8_t *p, size_t n,
                                      ZSTD_EndDirective mode, struct cm_err *err)
{
    ZSTD_inBuffer ib = { p, n, 0 };
    for (;;) {
        ZSTD_outBuffer ob = { w->k->zout, CHUNK, 0 };
        size_t ret = ZSTD_compressStream2(w->k->cctx, &ob, &ib, mode);
        if (ZSTD_isError(ret)) {
            w->rc = cm_fail(err, CM_E_IO, "zstd compression: %s", ZSTD_getErrorName(ret));
            return ING_R_INTERNAL;
        }
        if (ob.pos &&
            (w->rc = write_all(w->fd, w->k->zout, ob.pos, &w->written, &w->sys_errno, err)))
            return ING_R_STORAGE_ERROR;
        bool done = mode == ZSTD_e_end ? ret == 0 : ib.pos == ib.size;
        if (done)
            return ING_R_NONE;
    }
}

static enum ing_reason compress_sink(void *ctx, const uint8_t *p, size_t n, struct cm_err *err)
{
    return compress_chunk(ctx, p, n, ZSTD_e_continue, err);
}

enum cm_code ing__dump_write(struct ing_codec *k, const uint8_t *in, size_t n,
                             const struct ing_dump_info *info, const struct ing_conf *conf, int fd,
                             uint64_t *written, int *sys_errno, struct cm_err *err)
{
    *written = 0;
    *sys_errno = 0;
    if (info->comp == ING_COMP_ZSTD) /* validated by pass 1; the analyzer reads it as it came */
        return write_all(fd, in, n, written, sys_errno, err);
    struct writer w = { .k = k, .fd = fd };
    ZSTD_CCtx_reset(k->cctx, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(k->cctx, ZSTD_c_compressionLevel, (int)conf->zstd_level);
    ZSTD_CCtx_setParameter(k->cctx, ZSTD_c_checksumFlag, 1); /* spool corruption is detectable */
    ZSTD_CCtx_setParameter(k->cctx, ZSTD_c_windowLog,
                           (int)(conf->zstd_window_log_max < 24 ? conf->zstd_window_log_max : 24));
    ZSTD_CCtx_setPledgedSrcSize(k->cctx, info->bytes);
    uint64_t total = 0;
    enum ing_reason r = decode(k, in, n, info->comp, conf, compress_sink, &w, &total, err);
    if (!r)
        r = compress_chunk(&w, NULL, 0, ZSTD_e_end, err);
    *written = w.written;
    *sys_errno = w.sys_errno;
    if (r)
        return w.rc ? w.rc : cm_fail(err, CM_E_CORRUPT, "dump changed between passes");
    if (total != info->bytes)
        return cm_fail(err, CM_E_CORRUPT, "dump decoded to %llu bytes, then %llu",
                       (unsigned long long)info->bytes, (unsigned long long)total);
    return CM_E_OK;
}

/* ---- Content-Encoding: gzip request bodies ---- */

static enum ing_reason buf_sink(void *ctx, const uint8_t *p, size_t n, struct cm_err *err)
{
    enum cm_code rc = cm_buf_append(ctx, p, n, err);
    return rc == CM_E_LIMIT ? ING_R_TOO_LARGE : rc ? ING_R_INTERNAL : ING_R_NONE;
}

enum ing_reason ing__gunzip_body(const uint8_t *in, size_t n, struct cm_buf *out,
                                 struct cm_err *err)
{
    uint8_t *tmp = cm_malloc(CHUNK);
    if (!tmp)
        return cm_fail(err, CM_E_NOMEM, "cannot allocate gzip buffer"), ING_R_INTERNAL;
    uint64_t total = 0;
    enum ing_reason r = ungzip(NULL, tmp, in, n, out->max_bytes, buf_sink, out, &total, err);
    cm_free(tmp);
    return r;
}
