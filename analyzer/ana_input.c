/* ana_input.c -- from untrusted bytes to a parsed crash: detect compression by magic, decompress
 * into a capped buffer (the frame's declared size is never trusted), detect the dump kind, and
 * hand it to its reader. Formats: RFC 8878 (zstd frame magic 0xFD2FB528), RFC 1952 (gzip). */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader: stable since 1.3, exported by libzstd.so */
#include <zstd.h>
#include <zstd_errors.h>

#include "analyzer/ana_int.h"
#include "common/cm_alloc.h"
#include "common/cm_buf.h"

enum ana_compression ana_sniff_compression(const uint8_t *p, size_t n)
{
    if (n >= 4 && p[0] == 0x28 && p[1] == 0xB5 && p[2] == 0x2F && p[3] == 0xFD)
        return ANA_COMP_ZSTD;
    if (n >= 2 && p[0] == 0x1F && p[1] == 0x8B)
        return ANA_COMP_GZIP;
    return ANA_COMP_NONE;
}

enum ana_kind ana_sniff_kind(const uint8_t *p, size_t n)
{
    if (n >= 4 && (memcmp(p, "MDMP", 4) == 0 || memcmp(p, "PMDM", 4) == 0))
        return ANA_KIND_MINIDUMP;
    if (n >= 4 && memcmp(p, "\177ELF", 4) == 0)
        return ANA_KIND_ELFCORE;
    if (n >= 8 && (memcmp(p, "PAGEDU64", 8) == 0 || memcmp(p, "PAGEDUMP", 8) == 0))
        return ANA_KIND_KERNEL;
    return ANA_KIND_UNKNOWN;
}

const char *ana_kind_name(enum ana_kind k)
{
    switch (k) {
    case ANA_KIND_MINIDUMP: return "minidump";
    case ANA_KIND_ELFCORE: return "elfcore";
    case ANA_KIND_KERNEL: return "kernel";
    default: return "unknown";
    }
}

/* Room for the next write into out: what is allocated already, else up to 64 KiB more; never
 * past the cap. 0 means the cap is hit. */
static size_t make_room(struct cm_buf *out, struct cm_err *err, enum cm_code *rc)
{
    size_t left = out->max_bytes - out->len;
    *rc = CM_E_OK;
    if (left == 0)
        return 0;
    size_t want = left < (1 << 16) ? left : (1 << 16);
    bool have = out->cap_alloc > out->len + 1; /* +1: cm_buf keeps a NUL after the data */
    if (!have && (*rc = cm_buf_reserve(out, want, err)))
        return 0;
    size_t room = out->cap_alloc - 1 - out->len;
    return room < left ? room : left;
}

static enum cm_code unzstd(const uint8_t *in, size_t in_len, const struct ana_limits *lim,
                           struct cm_buf *out, struct cm_err *err)
{
    enum cm_code rc = CM_E_OK;
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!dctx)
        return cm_fail(err, CM_E_NOMEM, "cannot create zstd decoder");
    ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, (int)lim->zstd_window_log_max);
    /* The frame's declared size, when below the cap, only sizes the first allocation (decoded
     * in place, no regrowth); the output is still capped and checked as it comes, so a lying
     * header costs at most one untouched allocation of up to the cap. */
    /* A frame decoded straight into a buffer of its full size needs no window, so zstd would
     * not apply windowLogMax to it; check the first frame's window here so the limit holds the
     * same whatever the frame declares (later frames stream and zstd checks them itself). */
    ZSTD_frameHeader fh;
    if (ZSTD_getFrameHeader(&fh, in, in_len) == 0 &&
        fh.windowSize > (1ull << lim->zstd_window_log_max)) {
        rc = cm_fail(err, CM_E_LIMIT, "zstd: frame needs a %llu-byte window, over the limit of "
                                      "%llu (windowLogMax %u)",
                     (unsigned long long)fh.windowSize, 1ull << lim->zstd_window_log_max,
                     lim->zstd_window_log_max);
        goto out;
    }
    unsigned long long declared = ZSTD_getFrameContentSize(in, in_len);
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != ZSTD_CONTENTSIZE_ERROR &&
        declared < out->max_bytes && (rc = cm_buf_reserve(out, (size_t)declared, err)))
        goto out;
    ZSTD_inBuffer ib = { in, in_len, 0 };
    size_t ret = 1; /* 0 once a frame is complete and flushed */
    for (;;) {
        if (ib.pos == ib.size && ret == 0)
            break;
        size_t room = make_room(out, err, &rc);
        if (rc)
            goto out;
        if (room == 0) {
            rc = cm_fail(err, CM_E_LIMIT, "zstd input decompresses past the %zu-byte dump limit",
                         lim->max_dump_bytes);
            goto out;
        }
        ZSTD_outBuffer ob = { out->data + out->len, room, 0 };
        size_t in_before = ib.pos;
        ret = ZSTD_decompressStream(dctx, &ob, &ib);
        out->len += ob.pos;
        out->data[out->len] = 0;
        if (ZSTD_isError(ret)) {
            enum cm_code code = ZSTD_getErrorCode(ret) == ZSTD_error_frameParameter_windowTooLarge
                                    ? CM_E_LIMIT
                                    : CM_E_CORRUPT;
            rc = cm_fail(err, code, "zstd: %s near input offset %zu", ZSTD_getErrorName(ret),
                         ib.pos);
            goto out;
        }
        if (ob.pos == 0 && ib.pos == in_before) { /* no progress: the input ended mid-frame */
            rc = cm_fail(err, CM_E_TRUNCATED, "zstd: input ends inside a frame after %zu bytes",
                         in_len);
            goto out;
        }
    }
out:
    ZSTD_freeDCtx(dctx);
    return rc;
}

static enum cm_code ungzip(const uint8_t *in, size_t in_len, const struct ana_limits *lim,
                           struct cm_buf *out, struct cm_err *err)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 16) != Z_OK) /* +16: accept the gzip wrapper only */
        return cm_fail(err, CM_E_NOMEM, "cannot create gzip decoder");
    enum cm_code rc = CM_E_OK;
    size_t consumed = 0;
    for (;;) {
        size_t room = make_room(out, err, &rc);
        if (rc)
            break;
        if (room == 0) {
            rc = cm_fail(err, CM_E_LIMIT, "gzip input decompresses past the %zu-byte dump limit",
                         lim->max_dump_bytes);
            break;
        }
        size_t in_chunk = in_len - consumed > (1u << 30) ? (1u << 30) : in_len - consumed;
        zs.next_in = (Bytef *)(uintptr_t)(in + consumed);
        zs.avail_in = (uInt)in_chunk;
        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt)room; /* room <= 64 KiB */
        int zr = inflate(&zs, Z_NO_FLUSH);
        consumed += in_chunk - zs.avail_in;
        out->len += room - zs.avail_out;
        out->data[out->len] = 0;
        if (zr == Z_STREAM_END)
            break;
        if (zr == Z_BUF_ERROR || (zr == Z_OK && consumed == in_len && zs.avail_out != 0)) {
            rc = cm_fail(err, CM_E_TRUNCATED, "gzip: input ends inside the stream after %zu bytes",
                         in_len);
            break;
        }
        if (zr != Z_OK) {
            rc = cm_fail(err, CM_E_CORRUPT, "gzip: %s near input offset %zu",
                         zs.msg ? zs.msg : "bad data", consumed);
            break;
        }
    }
    inflateEnd(&zs);
    return rc;
}

enum cm_code ana_decompress(const uint8_t *in, size_t in_len, const struct ana_limits *lim,
                            uint8_t **out, size_t *out_len, struct cm_err *err)
{
    struct ana_limits defaults;
    if (!lim) {
        ana_limits_default(&defaults);
        lim = &defaults;
    }
    *out = NULL;
    *out_len = 0;
    struct cm_buf buf;
    cm_buf_init(&buf, lim->max_dump_bytes);
    enum cm_code rc;
    switch (ana_sniff_compression(in, in_len)) {
    case ANA_COMP_ZSTD:
        rc = unzstd(in, in_len, lim, &buf, err);
        break;
    case ANA_COMP_GZIP:
        rc = ungzip(in, in_len, lim, &buf, err);
        break;
    default:
        if (in_len > lim->max_dump_bytes)
            rc = cm_fail(err, CM_E_LIMIT, "dump of %zu bytes exceeds the %zu-byte limit", in_len,
                         lim->max_dump_bytes);
        else
            rc = cm_buf_append(&buf, in, in_len, err);
        break;
    }
    if (rc) {
        cm_buf_free(&buf);
        return rc;
    }
    if (!buf.data && (rc = cm_buf_reserve(&buf, 1, err)))
        return rc;
    *out = cm_buf_steal(&buf, out_len);
    return CM_E_OK;
}

enum cm_code ana_load(const uint8_t *in, size_t in_len, const struct ana_limits *lim,
                      struct ana_crash **out, struct cm_err *err)
{
    *out = NULL;
    struct ana_crash *c = cm_calloc(1, sizeof *c);
    if (!c)
        return cm_fail(err, CM_E_NOMEM, "cannot allocate crash");
    if (lim)
        c->limits = *lim;
    else
        ana_limits_default(&c->limits);
    c->main_module = -1;
    c->crash_info.crashing_thread = -1;
    c->bugcheck.blamed_module = -1;
    enum cm_code rc = ana_decompress(in, in_len, &c->limits, &c->bytes, &c->byte_count, err);
    if (rc)
        goto fail;
    switch (ana_sniff_kind(c->bytes, c->byte_count)) {
    case ANA_KIND_MINIDUMP:
        c->format = ANA_FMT_MINIDUMP;
        rc = ana__minidump_parse(c, err);
        break;
    case ANA_KIND_ELFCORE:
        c->format = ANA_FMT_ELFCORE;
        rc = ana__elfcore_parse(c, err);
        break;
    case ANA_KIND_KERNEL:
        c->format = ANA_FMT_KERNEL;
        rc = ana__kernel_parse(c, err);
        break;
    default:
        rc = cm_fail(err, CM_E_NOTDUMP,
                     "not a crash dump: no MDMP, ELF or PAGEDU64 magic in the first bytes "
                     "(%zu bytes after decompression)",
                     c->byte_count);
        break;
    }
    if (rc)
        goto fail;
    if ((rc = ana__finish(c, err)))
        goto fail;
    *out = c;
    return CM_E_OK;
fail:
    ana_crash_free(c);
    return rc;
}

enum cm_code ana_load_file(const char *path, const struct ana_limits *lim, struct ana_crash **out,
                           struct cm_err *err)
{
    struct ana_limits defaults;
    if (!lim) {
        ana_limits_default(&defaults);
        lim = &defaults;
    }
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cm_fail(err, CM_E_IO, "cannot open %s: %s", path, strerror(errno));
    enum cm_code rc = CM_E_OK;
    uint8_t *data = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = cm_fail(err, CM_E_IO, "cannot read %s: not a regular file", path);
        goto out;
    }
    /* A compressed file may be at most as large as the decompressed cap (zstd never expands
     * much), so this caps reading before any allocation. */
    if ((uint64_t)st.st_size > lim->max_dump_bytes + (lim->max_dump_bytes >> 4) + 4096) {
        rc = cm_fail(err, CM_E_LIMIT, "%s: file of %lld bytes exceeds the %zu-byte dump limit",
                     path, (long long)st.st_size, lim->max_dump_bytes);
        goto out;
    }
    size_t size = (size_t)st.st_size;
    data = cm_malloc(size);
    if (!data) {
        rc = cm_fail(err, CM_E_NOMEM, "cannot allocate %zu bytes for %s", size, path);
        goto out;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, data + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = cm_fail(err, CM_E_IO, "cannot read %s: %s", path, n ? strerror(errno) : "short");
            goto out;
        }
        got += (size_t)n;
    }
    rc = ana_load(data, size, lim, out, err);
out:
    cm_free(data);
    close(fd);
    return rc;
}
