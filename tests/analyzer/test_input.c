/* test_input.c -- the input layer: compression by magic, capped decompression, bombs, kinds. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "analyzer/ana.h"
#include "common/cm_alloc.h"
#include "tests/th.h"

static uint8_t *zstd_of(const void *p, size_t n, size_t *out_len)
{
    size_t cap = ZSTD_compressBound(n);
    uint8_t *z = malloc(cap);
    *out_len = ZSTD_compress(z, cap, p, n, 3);
    assert_false(ZSTD_isError(*out_len));
    return z;
}

static uint8_t *gzip_of(const void *p, size_t n, size_t *out_len)
{
    z_stream zs = { 0 };
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, (uLong)n) + 64;
    uint8_t *z = malloc(cap);
    zs.next_in = (Bytef *)(uintptr_t)p;
    zs.avail_in = (uInt)n;
    zs.next_out = z;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_len = zs.total_out;
    deflateEnd(&zs);
    return z;
}

static void sniffs_magic(void **state)
{
    assert_int_equal(ana_sniff_kind((const uint8_t *)"MDMP\x93\xa7", 6), ANA_KIND_MINIDUMP);
    assert_int_equal(ana_sniff_kind((const uint8_t *)"\177ELF\2\1", 6), ANA_KIND_ELFCORE);
    assert_int_equal(ana_sniff_kind((const uint8_t *)"PAGEDU64", 8), ANA_KIND_KERNEL);
    assert_int_equal(ana_sniff_kind((const uint8_t *)"PAGEDU6", 7), ANA_KIND_UNKNOWN);
    assert_int_equal(ana_sniff_kind((const uint8_t *)"-----BEGIN BREAKPAD MICRODUMP", 29),
                     ANA_KIND_UNKNOWN);
    assert_int_equal(ana_sniff_compression((const uint8_t *)"\x28\xb5\x2f\xfd", 4), ANA_COMP_ZSTD);
    assert_int_equal(ana_sniff_compression((const uint8_t *)"\x1f\x8b", 2), ANA_COMP_GZIP);
}

static void round_trips_zstd_gzip_raw(void **state)
{
    size_t n = 300000;
    uint8_t *raw = malloc(n);
    for (size_t i = 0; i < n; i++)
        raw[i] = (uint8_t)(i * 7 + i / 1000);
    size_t zl, gl, out_len;
    uint8_t *z = zstd_of(raw, n, &zl), *g = gzip_of(raw, n, &gl), *out;
    struct cm_err err;
    assert_int_equal(ana_decompress(z, zl, NULL, &out, &out_len, &err), CM_E_OK);
    assert_int_equal(out_len, n);
    assert_memory_equal(out, raw, n);
    cm_free(out);
    assert_int_equal(ana_decompress(g, gl, NULL, &out, &out_len, &err), CM_E_OK);
    assert_int_equal(out_len, n);
    assert_memory_equal(out, raw, n);
    cm_free(out);
    assert_int_equal(ana_decompress(raw, n, NULL, &out, &out_len, &err), CM_E_OK);
    assert_int_equal(out_len, n);
    cm_free(out);
    free(raw);
    free(z);
    free(g);
}

static void bomb_hits_cap(void **state)
{
    /* 64 MiB of zeros compresses to a few KiB; with a 1 MiB cap it must fail as LIMIT. */
    size_t n = 64u << 20;
    uint8_t *zeros = calloc(1, n);
    size_t zl, gl;
    uint8_t *z = zstd_of(zeros, n, &zl), *g = gzip_of(zeros, n, &gl);
    free(zeros);
    struct ana_limits lim;
    ana_limits_default(&lim);
    lim.max_dump_bytes = 1u << 20;
    uint8_t *out;
    size_t out_len;
    struct cm_err err = { 0 };
    assert_int_equal(ana_decompress(z, zl, &lim, &out, &out_len, &err), CM_E_LIMIT);
    assert_non_null(strstr(err.msg, "limit"));
    assert_null(out);
    assert_int_equal(ana_decompress(g, gl, &lim, &out, &out_len, &err), CM_E_LIMIT);
    /* Exactly at the cap is fine. */
    uint8_t *exact = calloc(1, lim.max_dump_bytes);
    uint8_t *ze = zstd_of(exact, lim.max_dump_bytes, &zl);
    assert_int_equal(ana_decompress(ze, zl, &lim, &out, &out_len, &err), CM_E_OK);
    assert_int_equal(out_len, lim.max_dump_bytes);
    cm_free(out);
    free(exact);
    free(ze);
    free(z);
    free(g);
}

static void window_limit_enforced(void **state)
{
    /* A frame that needs a 32 MiB window is refused with the default 16 MiB limit. */
    size_t n = 40u << 20;
    uint8_t *raw = malloc(n);
    for (size_t i = 0; i < n; i++)
        raw[i] = (uint8_t)(i ^ (i >> 13));
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, 25);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);
    size_t cap = ZSTD_compressBound(n);
    uint8_t *z = malloc(cap);
    size_t zl = ZSTD_compress2(cctx, z, cap, raw, n);
    assert_false(ZSTD_isError(zl));
    ZSTD_freeCCtx(cctx);
    uint8_t *out;
    size_t out_len;
    struct cm_err err = { 0 };
    assert_int_equal(ana_decompress(z, zl, NULL, &out, &out_len, &err), CM_E_LIMIT);
    free(raw);
    free(z);
}

static void truncated_and_corrupt_streams(void **state)
{
    const char text[] = "some text that is long enough to compress into a real frame......";
    size_t zl, gl;
    uint8_t *z = zstd_of(text, sizeof text, &zl), *g = gzip_of(text, sizeof text, &gl);
    uint8_t *out;
    size_t out_len;
    struct cm_err err;
    for (size_t cut = 4; cut < zl; cut++) {
        enum cm_code rc = ana_decompress(z, cut, NULL, &out, &out_len, &err);
        assert_true(rc == CM_E_TRUNCATED || rc == CM_E_CORRUPT);
    }
    for (size_t cut = 2; cut < gl; cut++) {
        enum cm_code rc = ana_decompress(g, cut, NULL, &out, &out_len, &err);
        assert_true(rc == CM_E_TRUNCATED || rc == CM_E_CORRUPT);
    }
    z[zl / 2] ^= 0xff;
    enum cm_code rc = ana_decompress(z, zl, NULL, &out, &out_len, &err);
    if (rc == CM_E_OK)
        cm_free(out); /* a flipped literal byte can still decode; checksum is optional */
    free(z);
    free(g);
}

static void not_a_dump(void **state)
{
    struct ana_crash *c;
    struct cm_err err = { 0 };
    const char png[] = "\x89PNG\r\n\x1a\n rest of an image";
    assert_int_equal(ana_load((const uint8_t *)png, sizeof png, NULL, &c, &err), CM_E_NOTDUMP);
    assert_null(c);
    assert_non_null(strstr(err.msg, "not a crash dump"));
    assert_int_equal(ana_load((const uint8_t *)"", 0, NULL, &c, &err), CM_E_NOTDUMP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sniffs_magic),
        cmocka_unit_test(round_trips_zstd_gzip_raw),
        cmocka_unit_test(bomb_hits_cap),
        cmocka_unit_test(window_limit_enforced),
        cmocka_unit_test(truncated_and_corrupt_streams),
        cmocka_unit_test(not_a_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
