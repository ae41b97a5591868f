/* test_ingest_unit.c -- the collector's parts without a network or a database: the configuration
 * table against its documentation, the multipart parser, the streaming decoder (RELIABILITY.md
 * Z01-Z11, B01-B10), UTF-8 cleaning, the pending index and the spool's durability rules. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "analyzer/ana.h"
#include "common/cm_arena.h"
#include "ingest/ing_int.h"
#include "tests/ingest/ti.h"
#include "tests/th.h"

/* ---- configuration ---- */

static void conf_example_documents_every_key(void **state)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/ingest/triage-ingest.conf.example", TRIAGE_SOURCE_DIR);
    size_t n;
    char *text = (char *)th_read(path, &n);
    text = realloc(text, n + 1);
    text[n] = 0;
    const char *name;
    for (size_t i = 0; (name = ing_conf_key(i, NULL, NULL, NULL)); i++) {
        char want[128];
        snprintf(want, sizeof want, "\n%s = ", name);
        if (!strstr(text, want))
            fail_msg("triage-ingest.conf.example does not set %s", name);
    }
    free(text);
    /* The example sets every key to its default: loading it changes nothing. */
    struct ing_conf def, loaded;
    ing_conf_default(&def);
    ing_conf_default(&loaded);
    struct cm_err err = { 0 };
    assert_int_equal(ing_conf_load(&loaded, path, &err), CM_E_OK);
    assert_memory_equal(&def, &loaded, sizeof def);
    assert_int_equal(ing_conf_check(&def, &err), CM_E_OK);
}

static void conf_errors_and_precedence(void **state)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/ti-conf-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct ing_conf c;
    struct cm_err err = { 0 };

    static const char bad_key[] = "# comment\nmax_parts = 8\nno_such_key = 1\n";
    th_write(path, bad_key, strlen(bad_key));
    ing_conf_default(&c);
    assert_int_equal(ing_conf_load(&c, path, &err), CM_E_USAGE);
    char where[96];
    snprintf(where, sizeof where, "%s:3:", path);
    assert_non_null(strstr(err.msg, where));

    static const char range[] = "max_parts = 0\n";
    th_write(path, range, strlen(range));
    ing_conf_default(&c);
    assert_int_equal(ing_conf_load(&c, path, &err), CM_E_USAGE);
    assert_non_null(strstr(err.msg, ":1:"));
    assert_non_null(strstr(err.msg, "outside [1, 10000]"));

    static const char good[] = "max_request_bytes = 2M\nmax_parts = 8\nfsync_batch = false\n"
                               "db_url = \"\"\n";
    th_write(path, good, strlen(good));
    char *argv[] = { "--max-parts", "9", "--config", path, "--max_header_bytes=8K", NULL };
    ing_conf_default(&c);
    assert_int_equal(ing_conf_args(&c, 5, argv, &err), CM_E_OK);
    assert_int_equal(c.max_request_bytes, 2u << 20); /* file */
    assert_int_equal(c.max_parts, 9);                /* flag beats file, wherever it is */
    assert_int_equal(c.max_header_bytes, 8192);
    assert_false(c.fsync_batch);
    char *bad[] = { "--max-parts", "many", NULL };
    assert_int_equal(ing_conf_args(&c, 2, bad, &err), CM_E_USAGE);
    char *unknown[] = { "--nope=1", NULL };
    assert_int_equal(ing_conf_args(&c, 1, unknown, &err), CM_E_USAGE);
    unlink(path);
}

/* ---- multipart ---- */

struct mp_case {
    const char *name;
    const char *content_type;
    const char *body;
    enum ing_reason want;
    size_t parts; /* when NONE */
};

static void multipart_cases(void **state)
{
    static const char ok[] = "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
                             "--b\r\nContent-Disposition: form-data; name=upload_file_minidump; "
                             "filename=\"../../etc/passwd\"\r\nContent-Type: application/"
                             "octet-stream\r\n\r\nMDMP\r\n--b--\r\nignored epilogue";
    static const struct mp_case cases[] = {
        { "ok", "multipart/form-data; boundary=b", ok, ING_R_NONE, 2 },
        { "no content type", "", ok, ING_R_NO_CONTENT_TYPE, 0 },
        { "wrong type", "application/x-protobuf", ok, ING_R_WRONG_CONTENT_TYPE, 0 },
        { "no boundary", "multipart/form-data", ok, ING_R_NO_BOUNDARY, 0 },
        { "boundary over 70",
          "multipart/form-data; boundary=01234567890123456789012345678901234567890123456789"
          "012345678901234567890",
          ok, ING_R_NO_BOUNDARY, 0 },
        { "wrong boundary", "multipart/form-data; boundary=zz", ok, ING_R_BAD_STRUCTURE, 0 },
        { "no close delimiter", "multipart/form-data; boundary=b",
          "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n", ING_R_BAD_STRUCTURE,
          0 },
        { "headers never end", "multipart/form-data; boundary=b",
          "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n", ING_R_BAD_STRUCTURE, 0 },
        { "header without colon", "multipart/form-data; boundary=b",
          "--b\r\nnonsense\r\n\r\n1\r\n--b--", ING_R_BAD_STRUCTURE, 0 },
        { "obs-fold", "multipart/form-data; boundary=b",
          "--b\r\nContent-Disposition: form-data;\r\n name=\"a\"\r\n\r\n1\r\n--b--",
          ING_R_BAD_STRUCTURE, 0 },
        { "NUL in a name", "multipart/form-data; boundary=b",
          "--b\r\nContent-Disposition: form-data; name=\"a\\\x01\"\r\n\r\n1\r\n--b--",
          ING_R_BAD_FIELD_NAME, 0 },
        { "empty body parts", "multipart/form-data; boundary=b", "--b\r\n\r\n\r\n--b--", ING_R_NONE,
          1 },
        { "delimiter lookalike inside data", "multipart/form-data; boundary=b",
          "--b\r\n\r\nx\r\n--bx\r\n--b--", ING_R_NONE, 1 },
        { "padding after delimiter", "multipart/mixed; boundary=\"b c\"",
          "pre\r\n--b c \t\r\n\r\nx\r\n--b c--", ING_R_NONE, 1 },
    };
    struct ing_mp_limits lim = { .max_parts = 32, .max_part_bytes = 1024,
                                 .max_part_header_bytes = 1024, .max_preamble_bytes = 16,
                                 .max_name_bytes = 32 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct mp_case *t = &cases[i];
        struct cm_arena a = { 0 };
        const char *boundary = NULL;
        struct cm_err err = { 0 };
        enum ing_reason r = ing__multipart_boundary(t->content_type, &a, &boundary);
        struct ing_part *parts = NULL;
        size_t n = 0;
        if (!r)
            r = ing__multipart_parse((const uint8_t *)t->body, strlen(t->body), boundary, &lim,
                                     &a, &parts, &n, &err);
        if (r != t->want)
            fail_msg("%s: got %s, want %s (%s)", t->name, ing__reason_token(r),
                     ing__reason_token(t->want), err.msg);
        if (!r)
            assert_int_equal(n, t->parts);
        if (!r && i == 0) {
            assert_string_equal(parts[0].name, "a");
            assert_int_equal(parts[0].len, 1);
            assert_string_equal(parts[1].name, "upload_file_minidump");
            assert_memory_equal(parts[1].data, "MDMP", 4);
            assert_int_equal(parts[1].len, 4);
            assert_string_equal(parts[1].content_type, "application/octet-stream");
        }
        cm_arena_free(&a);
    }
}

/* Limits at, and one past, their values (B05, B06, B07, B08). */
static void multipart_limits(void **state)
{
    struct ing_mp_limits lim = { .max_parts = 3, .max_part_bytes = 10,
                                 .max_part_header_bytes = 64, .max_preamble_bytes = 8,
                                 .max_name_bytes = 5 };
    struct {
        const char *name;
        struct cm_buf b;
        enum ing_reason want;
    } t[8];
    size_t nt = 0;
#define CASE(label, reason)                                                                        \
    do {                                                                                           \
        t[nt].name = label;                                                                        \
        t[nt].want = reason;                                                                       \
        cm_buf_init(&t[nt].b, 0);                                                                  \
    } while (0)
    CASE("3 parts", ING_R_NONE);
    for (int i = 0; i < 3; i++)
        cm_buf_printf(&t[nt].b, NULL, "--b\r\n\r\nx\r\n");
    cm_buf_printf(&t[nt++].b, NULL, "--b--");
    CASE("4 parts", ING_R_TOO_MANY_PARTS);
    for (int i = 0; i < 4; i++)
        cm_buf_printf(&t[nt].b, NULL, "--b\r\n\r\nx\r\n");
    cm_buf_printf(&t[nt++].b, NULL, "--b--");
    CASE("part of 10", ING_R_NONE);
    cm_buf_printf(&t[nt++].b, NULL, "--b\r\n\r\n0123456789\r\n--b--");
    CASE("part of 11", ING_R_TOO_LARGE);
    cm_buf_printf(&t[nt++].b, NULL, "--b\r\n\r\n0123456789a\r\n--b--");
    CASE("preamble of 8", ING_R_NONE);
    cm_buf_printf(&t[nt++].b, NULL, "12345\r\n\r\n--b\r\n\r\nx\r\n--b--");
    CASE("preamble of 100", ING_R_PREAMBLE_TOO_LARGE);
    for (int i = 0; i < 100; i++)
        cm_buf_append(&t[nt].b, "p", 1, NULL);
    cm_buf_printf(&t[nt++].b, NULL, "\r\n--b\r\n\r\nx\r\n--b--");
    CASE("part headers of 200", ING_R_PART_HEADERS_TOO_LARGE);
    cm_buf_printf(&t[nt].b, NULL, "--b\r\nX-Long: ");
    for (int i = 0; i < 200; i++)
        cm_buf_append(&t[nt].b, "h", 1, NULL);
    cm_buf_printf(&t[nt++].b, NULL, "\r\n\r\nx\r\n--b--");
    CASE("name of 6", ING_R_FIELD_NAME_TOO_LONG);
    cm_buf_printf(&t[nt++].b, NULL,
                  "--b\r\nContent-Disposition: form-data; name=\"abcdef\"\r\n\r\nx\r\n--b--");
#undef CASE
    for (size_t i = 0; i < nt; i++) {
        struct cm_arena a = { 0 };
        struct ing_part *parts;
        size_t n;
        struct cm_err err = { 0 };
        enum ing_reason r = ing__multipart_parse(t[i].b.data, t[i].b.len, "b", &lim, &a, &parts,
                                                 &n, &err);
        if (r != t[i].want)
            fail_msg("%s: got %s, want %s (%s)", t[i].name, ing__reason_token(r),
                     ing__reason_token(t[i].want), err.msg);
        cm_arena_free(&a);
        cm_buf_free(&t[i].b);
    }
}

/* ---- decoding (Z01-Z11) ---- */

struct dec_case {
    const char *name;
    struct cm_buf in;
    enum ing_comp comp;
    enum ing_reason want;
};

/* A zstd frame header: magic, descriptor, window byte (unless single segment), dictionary id,
 * content size, then a raw last block of one byte when `block`. */
static void frame_header(struct cm_buf *b, uint8_t fhd, int window, uint32_t dict, int dict_len,
                         uint64_t fcs, int fcs_len, bool block)
{
    static const uint8_t magic[] = { 0x28, 0xB5, 0x2F, 0xFD };
    cm_buf_append(b, magic, 4, NULL);
    cm_buf_append(b, &fhd, 1, NULL);
    if (window >= 0) {
        uint8_t w = (uint8_t)window;
        cm_buf_append(b, &w, 1, NULL);
    }
    for (int i = 0; i < dict_len; i++) {
        uint8_t v = (uint8_t)(dict >> (8 * i));
        cm_buf_append(b, &v, 1, NULL);
    }
    for (int i = 0; i < fcs_len; i++) {
        uint8_t v = (uint8_t)(fcs >> (8 * i));
        cm_buf_append(b, &v, 1, NULL);
    }
    if (block) { /* Last_Block=1, Block_Type=Raw, Block_Size=1: 0x09 0x00 0x00, then 'M' */
        static const uint8_t blk[] = { 0x09, 0x00, 0x00, 'M' };
        cm_buf_append(b, blk, sizeof blk, NULL);
    }
}

static void zstd_stream(const void *in, size_t n, bool checksum, bool content_size,
                        struct cm_buf *out)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum);
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, content_size);
    size_t bound = ZSTD_compressBound(n);
    cm_buf_init(out, 0);
    cm_buf_reserve(out, bound, NULL);
    size_t z = ZSTD_compress2(c, out->data, bound, in, n);
    assert_false(ZSTD_isError(z));
    out->len = z;
    ZSTD_freeCCtx(c);
}

static void decode_cases(void **state)
{
    size_t dn;
    uint8_t *dump = th_read(th_corpus("breakpad/testdata/minidump2.dmp"), &dn);
    struct ing_conf conf;
    ing_conf_default(&conf);
    conf.max_dump_bytes = 1u << 20; /* small cap so bombs are cheap */
    uint8_t *zeros = calloc(1, 4u << 20);
    memcpy(zeros, "MDMP", 4);
    struct dec_case t[24];
    size_t nt = 0;
#define CASE(label, c, reason)                                                                     \
    do {                                                                                           \
        t[nt].name = label;                                                                        \
        t[nt].comp = c;                                                                            \
        t[nt].want = reason;                                                                       \
        cm_buf_init(&t[nt].in, 0);                                                                 \
    } while (0)
    CASE("raw minidump", ING_COMP_SNIFF, ING_R_NONE);
    cm_buf_append(&t[nt++].in, dump, dn, NULL);
    CASE("zstd minidump", ING_COMP_SNIFF, ING_R_NONE);
    zstd_stream(dump, dn, true, true, &t[nt++].in);
    CASE("gzip minidump", ING_COMP_GZIP, ING_R_NONE);
    ti_gzip(dump, dn, &t[nt++].in);
    CASE("Z01 declares 10 GiB", ING_COMP_ZSTD, ING_R_TOO_LARGE);
    frame_header(&t[nt++].in, 0xC0, 0x58, 0, 0, 10ull << 30, 8, true);
    CASE("Z02 bomb without content size", ING_COMP_ZSTD, ING_R_TOO_LARGE);
    zstd_stream(zeros, 4u << 20, false, false, &t[nt++].in);
    CASE("Z03 says 1 byte, holds more", ING_COMP_ZSTD, ING_R_ZSTD_CORRUPT);
    frame_header(&t[nt].in, 0x20, -1, 0, 0, 0, 1, false); /* single segment, FCS 0 ... */
    t[nt].in.data[5] = 1;                                 /* ... now 1 */
    {
        static const uint8_t blk[] = { 0x11, 0x00, 0x00, 'M', 'D' }; /* raw block of 2 */
        cm_buf_append(&t[nt++].in, blk, sizeof blk, NULL);
    }
    CASE("Z04 window log 31", ING_COMP_ZSTD, ING_R_ZSTD_WINDOW);
    frame_header(&t[nt++].in, 0x00, 21 << 3, 0, 0, 0, 0, true);
    CASE("Z05 truncated", ING_COMP_ZSTD, ING_R_ZSTD_TRUNCATED);
    zstd_stream(dump, dn, true, true, &t[nt].in);
    t[nt++].in.len -= 100;
    CASE("Z06 bad checksum", ING_COMP_ZSTD, ING_R_ZSTD_CORRUPT);
    zstd_stream(dump, dn, true, true, &t[nt].in);
    t[nt].in.data[t[nt].in.len - 1] ^= 0x40;
    nt++;
    CASE("Z07 two frames and a skippable one", ING_COMP_ZSTD, ING_R_NONE);
    {
        static const uint8_t skip[] = { 0x50, 0x2A, 0x4D, 0x18, 3, 0, 0, 0, 'a', 'b', 'c' };
        cm_buf_append(&t[nt].in, skip, sizeof skip, NULL);
        struct cm_buf a, b;
        zstd_stream(dump, dn / 2, true, true, &a);
        zstd_stream(dump + dn / 2, dn - dn / 2, false, false, &b);
        cm_buf_append(&t[nt].in, a.data, a.len, NULL);
        cm_buf_append(&t[nt++].in, b.data, b.len, NULL);
        cm_buf_free(&a);
        cm_buf_free(&b);
    }
    CASE("Z08 trailing garbage", ING_COMP_ZSTD, ING_R_ZSTD_TRAILING);
    zstd_stream(dump, dn, true, true, &t[nt].in);
    cm_buf_append(&t[nt++].in, "garbage!", 8, NULL);
    CASE("Z09 dictionary id", ING_COMP_ZSTD, ING_R_ZSTD_DICTIONARY);
    frame_header(&t[nt++].in, 0x01, 0x58, 7, 1, 0, 0, true);
    CASE("Z10 declared zstd, raw bytes", ING_COMP_ZSTD, ING_R_ZSTD_BAD_MAGIC);
    cm_buf_append(&t[nt++].in, dump, dn, NULL);
    CASE("Z11 empty body", ING_COMP_SNIFF, ING_R_EMPTY);
    nt++;
    CASE("Z11 frame of nothing", ING_COMP_ZSTD, ING_R_EMPTY);
    zstd_stream("", 0, true, true, &t[nt++].in);
    CASE("gzip bomb", ING_COMP_GZIP, ING_R_TOO_LARGE);
    ti_gzip(zeros, 4u << 20, &t[nt++].in);
    CASE("gzip declared, not gzip", ING_COMP_GZIP, ING_R_BAD_GZIP);
    cm_buf_append(&t[nt++].in, dump, dn, NULL);
    CASE("gzip truncated", ING_COMP_GZIP, ING_R_BAD_GZIP);
    ti_gzip(dump, dn, &t[nt].in);
    t[nt++].in.len -= 20;
    CASE("M01 PNG", ING_COMP_SNIFF, ING_R_BAD_MAGIC);
    cm_buf_append(&t[nt++].in, "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16, NULL);
    CASE("three bytes", ING_COMP_SNIFF, ING_R_BAD_MAGIC);
    cm_buf_append(&t[nt++].in, "MDM", 3, NULL);
    CASE("zstd of a non-dump", ING_COMP_SNIFF, ING_R_BAD_MAGIC);
    zstd_stream("hello, world, not a dump", 24, true, true, &t[nt++].in);
    CASE("raw over the cap", ING_COMP_NONE, ING_R_TOO_LARGE);
    cm_buf_append(&t[nt++].in, zeros, (1u << 20) + 1, NULL);
    CASE("raw at the cap", ING_COMP_NONE, ING_R_NONE);
    cm_buf_append(&t[nt++].in, zeros, 1u << 20, NULL);
#undef CASE
    struct ing_codec *k = ing__codec_new();
    assert_non_null(k);
    char want_sha[65];
    ti_sha256sum(dump, dn, want_sha);
    for (size_t i = 0; i < nt; i++) {
        struct ing_dump_info info;
        struct cm_err err = { 0 };
        enum ing_reason r = ing__dump_inspect(k, t[i].in.data ? t[i].in.data : (uint8_t *)"",
                                              t[i].in.len, t[i].comp, &conf, &info, &err);
        if (r != t[i].want)
            fail_msg("%s: got %s, want %s (%s)", t[i].name, ing__reason_token(r),
                     ing__reason_token(t[i].want), err.msg);
        if (r)
            assert_true(err.msg[0]); /* every refusal says why */
        if (!r && i < 3) { /* the same dump however it came: sha256sum's digest and size */
            assert_string_equal(info.sha256, want_sha);
            assert_int_equal(info.bytes, dn);
            assert_int_equal(info.kind, ANA_KIND_MINIDUMP);
        }
        if (!r && !strncmp(t[i].name, "Z07", 3)) {
            assert_string_equal(info.sha256, want_sha);
            assert_int_equal(info.bytes, dn);
        }
        cm_buf_free(&t[i].in);
    }
    ing__codec_free(k);
    free(zeros);
    free(dump);
}

/* Pass 2 writes what pass 1 inspected; the analyzer reads the spool file back. */
static void spool_form_reads_back(void **state)
{
    size_t dn;
    uint8_t *dump = th_read(th_corpus("breakpad/testdata/minidump2.dmp"), &dn);
    struct ing_conf conf;
    ing_conf_default(&conf);
    struct ing_codec *k = ing__codec_new();
    struct cm_buf gz;
    ti_gzip(dump, dn, &gz);
    struct ing_dump_info info;
    struct cm_err err = { 0 };
    assert_int_equal(ing__dump_inspect(k, gz.data, gz.len, ING_COMP_SNIFF, &conf, &info, &err),
                     ING_R_NONE);
    assert_int_equal(info.comp, ING_COMP_GZIP);
    char path[64];
    snprintf(path, sizeof path, "/tmp/ti-spf-XXXXXX");
    int fd = mkstemp(path);
    uint64_t written = 0;
    int e = 0;
    assert_int_equal(ing__dump_write(k, gz.data, gz.len, &info, &conf, fd, &written, &e, &err),
                     CM_E_OK);
    close(fd);
    size_t zn;
    uint8_t *back = ti_unzstd_file(path, &zn); /* plain one-shot libzstd */
    assert_int_equal(zn, dn);
    assert_memory_equal(back, dump, dn);
    struct ana_crash *crash = NULL;
    assert_int_equal(ana_load_file(path, NULL, &crash, &err), CM_E_OK);
    assert_int_equal(crash->format, ANA_FMT_MINIDUMP);
    ana_crash_free(crash);
    unlink(path);
    free(back);
    cm_buf_free(&gz);
    ing__codec_free(k);
    free(dump);
}

/* ---- UTF-8 ---- */

static void utf8_is_made_safe(void **state)
{
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } t[] = {
        { "plain", 5, "plain" },
        { "caf\xc3\xa9", 5, "caf\xc3\xa9" },
        { "a\0b", 3, "a\xef\xbf\xbd" "b" },
        { "\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd" },         /* overlong '/' */
        { "\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* surrogate */
        { "\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
        { "ok\xe2\x82", 4, "ok\xef\xbf\xbd\xef\xbf\xbd" }, /* cut sequence */
    };
    struct cm_arena a = { 0 };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        assert_string_equal(ing__clean_utf8(&a, t[i].in, t[i].n), t[i].out);
    cm_arena_free(&a);
}

/* ---- the pending index ---- */

static void crash_for(struct ing_crash *c, const char *id, const char *idem, const char *host,
                      const char *sha)
{
    memset(c, 0, sizeof *c);
    snprintf(c->crash_id, sizeof c->crash_id, "%s", id);
    snprintf(c->dump_sha256, sizeof c->dump_sha256, "%s", sha);
    c->project = "default";
    c->idempotency_key = idem;
    c->host_id = host;
}

static void pending_index_dedupes(void **state)
{
    struct ing_pending *p = ing__pending_new();
    char sha1[65], sha2[65], id[37];
    memset(sha1, 'a', 64);
    memset(sha2, 'b', 64);
    sha1[64] = sha2[64] = 0;
    struct ing_crash c1, c2, c3, c4, c5;
    crash_for(&c1, "00000000-0000-4000-8000-000000000001", "k1", "h1", sha1);
    crash_for(&c2, "00000000-0000-4000-8000-000000000002", "k1", "h2", sha2); /* same key */
    crash_for(&c3, "00000000-0000-4000-8000-000000000003", "", "h1", sha1);   /* same content */
    crash_for(&c4, "00000000-0000-4000-8000-000000000004", "", "h9", sha1);   /* other host */
    crash_for(&c5, "00000000-0000-4000-8000-000000000005", "", "", sha1);     /* no host */
    assert_false(ing__pending_find(p, &c1, id));
    assert_true(ing__pending_reserve(p, &c1, id));
    ing__pending_settle(p, c1.crash_id, true);
    assert_true(ing__pending_find(p, &c2, id));
    assert_string_equal(id, c1.crash_id);
    assert_true(ing__pending_find(p, &c3, id));
    assert_string_equal(id, c1.crash_id);
    assert_false(ing__pending_find(p, &c4, id));
    assert_false(ing__pending_reserve(p, &c3, id));
    assert_true(ing__pending_reserve(p, &c5, id)); /* unknown host: never by content */
    ing__pending_settle(p, c5.crash_id, false);   /* its sidecar failed: gone */
    assert_int_equal(ing__pending_count(p), 1);
    /* Many entries, then all removed: lookups stay right through rebuilds and tombstones. */
    char ids[300][37], keys[300][16];
    for (int i = 0; i < 300; i++) {
        struct ing_crash c;
        snprintf(ids[i], 37, "00000000-0000-4000-8000-%012d", 100 + i);
        snprintf(keys[i], 16, "key%d", i);
        crash_for(&c, ids[i], keys[i], "", sha2);
        assert_true(ing__pending_reserve(p, &c, id));
        ing__pending_settle(p, ids[i], true);
    }
    assert_int_equal(ing__pending_count(p), 301);
    for (int i = 0; i < 300; i += 2)
        ing__pending_remove(p, ids[i]);
    for (int i = 0; i < 300; i++) {
        struct ing_crash c;
        crash_for(&c, "00000000-0000-4000-8000-999999999999", keys[i], "", sha2);
        assert_int_equal(ing__pending_find(p, &c, id), i % 2 == 1);
        if (i % 2)
            assert_string_equal(id, ids[i]);
    }
    assert_int_equal(ing__pending_count(p), 151);
    ing__pending_free(p);
}

/* ---- the spool ---- */

struct put_arg {
    struct ing_spool *sp;
    const char *sha;
    enum cm_code rc;
    bool existed;
};

static enum cm_code fill_hello(void *ctx, int fd, int *e, struct cm_err *err)
{
    (void)ctx;
    if (write(fd, "hello", 5) != 5) {
        *e = errno;
        return cm_fail(err, CM_E_IO, "write");
    }
    return CM_E_OK;
}

static void *put_thread(void *arg)
{
    struct put_arg *a = arg;
    char rel[96];
    uint64_t size;
    enum ing_reason r;
    a->rc = ing__spool_put_dump(a->sp, a->sha, fill_hello, NULL, rel, &a->existed, &size, &r,
                                NULL);
    return NULL;
}

static void spool_one_file_per_dump_and_fsync_failure(void **state)
{
    char dir[64], spool[96], dumps[128];
    snprintf(dir, sizeof dir, "/tmp/ti-spool-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(spool, sizeof spool, "%s/s", dir);
    snprintf(dumps, sizeof dumps, "%s/dumps", spool);
    struct ing_spool *sp = NULL;
    struct cm_err err = { 0 };
    assert_int_equal(ing__spool_open(spool, true, &sp, &err), CM_E_OK);
    struct stat st;
    assert_int_equal(stat(spool, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* 16 concurrent uploads of one dump: one file, every upload durable. */
    pthread_t th[16];
    struct put_arg args[16];
    for (int i = 0; i < 16; i++) {
        args[i] = (struct put_arg){ .sp = sp, .sha = "1111111111111111111111111111111111111111"
                                                      "111111111111111111111111" };
        pthread_create(&th[i], NULL, put_thread, &args[i]);
    }
    int created = 0;
    for (int i = 0; i < 16; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].rc, CM_E_OK);
        created += !args[i].existed;
    }
    assert_true(created >= 1);
    assert_int_equal(ti_count_dir(dumps), 1);
    char file[256];
    snprintf(file, sizeof file, "%s/%s.zst", dumps, args[0].sha);
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    ing__spool_close(sp);

    /* The first fsync fails: no success, no temp file left, nothing under the final name. */
    setenv("TRIAGE_FAULT", "fsync_eio@1", 1);
    assert_int_equal(ing__spool_open(spool, true, &sp, &err), CM_E_OK);
    unsetenv("TRIAGE_FAULT");
    char rel[96];
    bool existed;
    uint64_t size;
    enum ing_reason r = ING_R_NONE;
    assert_int_equal(ing__spool_put_dump(sp, "2222222222222222222222222222222222222222222222222222"
                                             "222222222222",
                                         fill_hello, NULL, rel, &existed, &size, &r, &err),
                     CM_E_IO);
    assert_int_equal(r, ING_R_STORAGE_ERROR);
    assert_int_equal(ti_count_dir(dumps), 1); /* only the earlier file */
    /* The next one works without a restart. */
    assert_int_equal(ing__spool_put_dump(sp, "3333333333333333333333333333333333333333333333333333"
                                             "333333333333",
                                         fill_hello, NULL, rel, &existed, &size, &r, &err),
                     CM_E_OK);
    assert_int_equal(ti_count_dir(dumps), 2);
    ing__spool_close(sp);
    ti_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conf_example_documents_every_key),
        cmocka_unit_test(conf_errors_and_precedence),
        cmocka_unit_test(multipart_cases),
        cmocka_unit_test(multipart_limits),
        cmocka_unit_test(decode_cases),
        cmocka_unit_test(spool_form_reads_back),
        cmocka_unit_test(utf8_is_made_safe),
        cmocka_unit_test(pending_index_dedupes),
        cmocka_unit_test(spool_one_file_per_dump_and_fsync_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
