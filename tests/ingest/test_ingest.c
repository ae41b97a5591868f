/* test_ingest.c -- the collector end to end over real HTTP on loopback and a real PostgreSQL
 * (db/db.h's embedded cluster, started once for the program): both routes with raw, zstd and
 * gzip bodies of corpus dumps; duplicates; malformed and over-size uploads leaving nothing
 * behind; HTTP framing cases over raw sockets (RELIABILITY.md H01-H12); PostgreSQL down then
 * back (F01); fsync failure (F06); load shedding (503 + Retry-After on the native route only);
 * metrics; SIGTERM (F12); the upload client and `triagectl upload`. Label: db. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "analyzer/ana.h"
#include "cli/cli.h"
#include "ingest/ing.h"
#include "tests/ingest/ti.h"
#include "tests/th.h"

static const char *const NATIVE_HDRS[] = { "Content-Type: application/x-protobuf", NULL };
static const char *const JSON_HDRS[] = { "Content-Type: application/x-protobuf",
                                         "Accept: application/json", NULL };
#define MP_CT "Content-Type: multipart/form-data; boundary=tib0undary"
#define BOUNDARY "tib0undary"
static const char *const MP_HDRS[] = { MP_CT, NULL };
static const char *const MP_GZ_HDRS[] = { MP_CT, "Content-Encoding: gzip", NULL };

static const char MINIDUMP[] = "breakpad/testdata/minidump2.dmp";
static const char ELFCORE[] = "elfcores/dumps/core.01ec17d51a7ce5bd.zst";

static int group_setup(void **state)
{
    (void)state;
    ti_pg_start();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ti_pg_stop_all();
    return 0;
}

/* ---- helpers ---- */

static bool is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
            return false;
    }
    return s[14] == '4'; /* version 4 */
}

/* Posts an envelope; returns the ack (status checked by the caller). */
static long post_native(struct ti_srv *t, const struct cm_buf *env, char id[37],
                        enum proto_ack_status *st, char reason[64])
{
    struct ti_resp r;
    ti_http(t->port, "/api/v1/crashes", NATIVE_HDRS, env->data, env->len, &r);
    id[0] = 0;
    if (reason)
        reason[0] = 0;
    struct proto_ack *ack = NULL;
    if (proto_decode_ack(r.body.data, r.body.len, NULL, &ack, NULL) == CM_E_OK) {
        snprintf(id, 37, "%s", ack->crash_id ? ack->crash_id : "");
        if (st)
            *st = ack->status;
        if (reason)
            snprintf(reason, 64, "%s", ack->reason ? ack->reason : "");
        proto_ack_free(ack);
    }
    long status = r.status;
    ti_resp_free(&r);
    return status;
}

/* Posts a multipart body; returns the status, the crash id of "CrashID=bp-<id>" in id, and the
 * body in text. */
static long post_submit(struct ti_srv *t, const char *query, const char *const *hdrs,
                        const struct cm_buf *body, char id[37], char *text, size_t n)
{
    char path[256];
    snprintf(path, sizeof path, "/submit%s", query ? query : "");
    struct ti_resp r;
    ti_http(t->port, path, hdrs, body->data, body->len, &r);
    id[0] = 0;
    const char *b = r.body.data ? (const char *)r.body.data : "";
    if (!strncmp(b, "CrashID=bp-", 11) && strlen(b) >= 11 + 36) {
        memcpy(id, b + 11, 36);
        id[36] = 0;
    }
    if (text)
        snprintf(text, n, "%s", b);
    long status = r.status;
    ti_resp_free(&r);
    return status;
}

static void read_corpus(const char *rel, uint8_t **raw, size_t *rn)
{
    const char *path = th_corpus(rel);
    if (strstr(rel, ".zst"))
        *raw = ti_unzstd_file(path, rn);
    else
        *raw = th_read(path, rn);
}

static long long rows_for_host(const char *host)
{
    return ti_sql_count("SELECT count(*) FROM crashes WHERE host_id = $1", host);
}

static long long rows_for_id(const char *id)
{
    return ti_sql_count("SELECT count(*) FROM crashes WHERE crash_id = $1::uuid", id);
}

static long long jobs_for_id(const char *id)
{
    return ti_sql_count("SELECT count(*) FROM jobs WHERE crash_id = $1::uuid", id);
}

/* The row's dump digest equals sha256sum of the dump, its job exists, and the spool file it
 * names is the dump (read back by the analyzer). */
static void check_stored(struct ti_srv *t, const char *id, const uint8_t *raw, size_t rn)
{
    char want[65], got[128], rel[256], path[1400];
    ti_sha256sum(raw, rn, want);
    assert_int_equal(rows_for_id(id), 1);
    assert_int_equal(jobs_for_id(id), 1);
    ti_sql_text("SELECT dump_sha256 FROM crashes WHERE crash_id = $1::uuid", id, got, sizeof got);
    assert_string_equal(got, want);
    ti_sql_text("SELECT dump_size_bytes::text FROM crashes WHERE crash_id = $1::uuid", id, got,
                sizeof got);
    assert_int_equal(atoll(got), rn);
    ti_sql_text("SELECT spool_path FROM crashes WHERE crash_id = $1::uuid", id, rel, sizeof rel);
    snprintf(path, sizeof path, "%s/dumps/%s.zst", t->conf.spool_dir, want);
    assert_string_equal(rel, path); /* absolute, named by the digest */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    size_t bn;
    uint8_t *back = ti_unzstd_file(path, &bn);
    assert_int_equal(bn, rn);
    assert_memory_equal(back, raw, rn);
    free(back);
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    assert_int_equal(ana_load_file(path, NULL, &c, &err), CM_E_OK);
    ana_crash_free(c);
}

/* ---- both routes with raw, zstd and gzip bodies ---- */

static void native_bodies_are_stored_and_recorded(void **state)
{
    struct ti_srv t;
    ti_srv_conf(&t);
    ti_srv_start(&t, true);
    const struct {
        const char *file;
        enum proto_compression comp;
    } cases[] = {
        { MINIDUMP, PROTO_COMP_NONE },
        { MINIDUMP, PROTO_COMP_ZSTD },
        { MINIDUMP, PROTO_COMP_GZIP },
        { MINIDUMP, PROTO_COMP_UNSPECIFIED }, /* sniffed */
        { ELFCORE, PROTO_COMP_ZSTD },         /* the .zst file as it is */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *raw;
        size_t rn;
        read_corpus(cases[i].file, &raw, &rn);
        struct cm_buf body;
        if (cases[i].comp == PROTO_COMP_ZSTD && strstr(cases[i].file, ".zst")) {
            cm_buf_init(&body, 0);
            size_t zn;
            uint8_t *z = th_read(th_corpus(cases[i].file), &zn);
            cm_buf_append(&body, z, zn, NULL);
            free(z);
        } else if (cases[i].comp == PROTO_COMP_ZSTD) {
            ti_zstd(raw, rn, &body);
        } else if (cases[i].comp == PROTO_COMP_GZIP) {
            ti_gzip(raw, rn, &body);
        } else {
            cm_buf_init(&body, 0);
            cm_buf_append(&body, raw, rn, NULL);
        }
        char host[64], idem[64], id[37];
        ti_unique(host, sizeof host, "native-host");
        ti_unique(idem, sizeof idem, "idem");
        struct cm_buf env;
        ti_envelope(&env, idem, host, body.data, body.len, cases[i].comp);
        enum proto_ack_status st = 0;
        assert_int_equal(post_native(&t, &env, id, &st, NULL), 202);
        assert_int_equal(st, PROTO_ACK_ACCEPTED);
        assert_true(is_uuid(id));
        check_stored(&t, id, raw, rn);
        char prod[64];
        ti_sql_text("SELECT product FROM crashes WHERE crash_id = $1::uuid", id, prod,
                    sizeof prod);
        assert_string_equal(prod, "TestProduct");
        cm_buf_free(&env);
        cm_buf_free(&body);
        free(raw);
    }
    /* The whole envelope gzip-compressed (Content-Encoding: gzip). */
    {
        static const char *const GZ_HDRS[] = { "Content-Type: application/x-protobuf",
                                               "Content-Encoding: gzip", NULL };
        uint8_t *d;
        size_t dn;
        read_corpus(MINIDUMP, &d, &dn);
        char h[64], gid[37];
        ti_unique(h, sizeof h, "native-gz");
        struct cm_buf e, gz;
        ti_envelope(&e, NULL, h, d, dn, PROTO_COMP_NONE);
        ti_gzip(e.data, e.len, &gz);
        struct ti_resp gr;
        ti_http(t.port, "/api/v1/crashes", GZ_HDRS, gz.data, gz.len, &gr);
        assert_int_equal(gr.status, 202);
        struct proto_ack *ack = NULL;
        assert_int_equal(proto_decode_ack(gr.body.data, gr.body.len, NULL, &ack, NULL), CM_E_OK);
        snprintf(gid, sizeof gid, "%s", ack->crash_id);
        proto_ack_free(ack);
        check_stored(&t, gid, d, dn);
        ti_resp_free(&gr);
        cm_buf_free(&e);
        cm_buf_free(&gz);
        free(d);
    }
    /* Accept: application/json gets the ack as JSON. */
    uint8_t *raw;
    size_t rn;
    read_corpus(MINIDUMP, &raw, &rn);
    char host[64];
    ti_unique(host, sizeof host, "json-host");
    struct cm_buf env;
    ti_envelope(&env, NULL, host, raw, rn, PROTO_COMP_NONE);
    struct ti_resp r;
    ti_http(t.port, "/api/v1/crashes", JSON_HDRS, env.data, env.len, &r);
    assert_int_equal(r.status, 202);
    json_error_t jerr;
    json_t *o = json_loadb((const char *)r.body.data, r.body.len, 0, &jerr);
    assert_non_null(o);
    const char *id = json_string_value(json_object_get(o, "crash_id"));
    assert_non_null(id);
    assert_true(is_uuid(id));
    assert_string_equal(json_string_value(json_object_get(o, "status")), "accepted");
    assert_int_equal(rows_for_id(id), 1);
    json_decref(o);
    ti_resp_free(&r);
    cm_buf_free(&env);
    free(raw);
    ti_srv_stop(&t);
}

static void submit_bodies_are_stored_and_recorded(void **state)
{
    struct ti_srv t;
    ti_srv_conf(&t);
    ti_srv_start(&t, true);
    uint8_t *raw;
    size_t rn;
    char host[64], id[37], text[256], got[4096], query[160];

    /* 1. Raw minidump; prod and ver as fields, guid in the query string (Crashpad). */
    read_corpus(MINIDUMP, &raw, &rn);
    ti_unique(host, sizeof host, "submit-host");
    struct cm_buf b;
    cm_buf_init(&b, 0);
    ti_mp_field(&b, BOUNDARY, "prod", "Crashpad Test");
    ti_mp_field(&b, BOUNDARY, "ver", "9.8.7");
    ti_mp_field(&b, BOUNDARY, "uuid", "11111111-1111-4111-8111-111111111111");
    ti_mp_file(&b, BOUNDARY, "upload_file_minidump", "application/octet-stream", raw, rn);
    ti_mp_file(&b, BOUNDARY, "upload_file_minidump_browser", "application/octet-stream", "x", 1);
    ti_mp_end(&b, BOUNDARY);
    snprintf(query, sizeof query, "?guid=%s", host);
    assert_int_equal(post_submit(&t, query, MP_HDRS, &b, id, text, sizeof text), 200);
    assert_true(is_uuid(id));
    assert_string_not_equal(id, "11111111-1111-4111-8111-111111111111"); /* never the client's */
    check_stored(&t, id, raw, rn);
    ti_sql_text("SELECT product || '/' || version || '/' || host_id || '/' || source FROM crashes "
                "WHERE crash_id = $1::uuid",
                id, got, sizeof got);
    char want[256];
    snprintf(want, sizeof want, "Crashpad Test/9.8.7/%s/submit", host);
    assert_string_equal(got, want);
    cm_buf_free(&b);

    /* 2. The ELF core's .zst file as the dump part; JSON annotations in `extra`. */
    uint8_t *core;
    size_t cn, zn;
    read_corpus(ELFCORE, &core, &cn);
    uint8_t *z = th_read(th_corpus(ELFCORE), &zn);
    ti_unique(host, sizeof host, "submit-core");
    char extra[256];
    snprintf(extra, sizeof extra,
             "{\"ProductName\":\"CoreTest\",\"Version\":\"2.0\",\"guid\":\"%s\","
             "\"Nested\":{\"a\":1}}",
             host);
    cm_buf_init(&b, 0);
    cm_buf_printf(&b, NULL,
                  "--%s\r\nContent-Disposition: form-data; name=\"extra\"\r\nContent-Type: "
                  "application/json\r\n\r\n%s\r\n",
                  BOUNDARY, extra);
    ti_mp_file(&b, BOUNDARY, "upload_file_minidump", "application/zstd", z, zn);
    ti_mp_end(&b, BOUNDARY);
    assert_int_equal(post_submit(&t, NULL, MP_HDRS, &b, id, text, sizeof text), 200);
    check_stored(&t, id, core, cn);
    ti_sql_text("SELECT product || '/' || host_id || '/' || (annotations->>'Nested') FROM crashes "
                "WHERE crash_id = $1::uuid",
                id, got, sizeof got);
    snprintf(want, sizeof want, "CoreTest/%s/{\"a\":1}", host);
    assert_string_equal(got, want);

    /* 3. The same body gzip-compressed as a whole (Content-Encoding: gzip), another host. */
    ti_unique(host, sizeof host, "submit-gz");
    struct cm_buf plain, gz;
    cm_buf_init(&plain, 0);
    ti_mp_field(&plain, BOUNDARY, "ProductName", "GzTest");
    ti_mp_field(&plain, BOUNDARY, "guid", host);
    ti_mp_file(&plain, BOUNDARY, "upload_file_minidump", "application/octet-stream", raw, rn);
    ti_mp_end(&plain, BOUNDARY);
    ti_gzip(plain.data, plain.len, &gz);
    assert_int_equal(post_submit(&t, NULL, MP_GZ_HDRS, &gz, id, text, sizeof text), 200);
    check_stored(&t, id, raw, rn);
    assert_int_equal(rows_for_host(host), 1);
    cm_buf_free(&plain);
    cm_buf_free(&gz);
    cm_buf_free(&b);
    free(z);
    free(core);
    free(raw);
    ti_srv_stop(&t);
}

/* ---- duplicates (F09) ---- */

struct race {
    struct ti_srv *t;
    const struct cm_buf *env;
    char id[37];
    long status;
};

static void *race_thread(void *arg)
{
    struct race *r = arg;
    r->status = post_native(r->t, r->env, r->id, NULL, NULL);
    return NULL;
}

static void duplicates_get_one_id_and_one_row(void **state)
{
    struct ti_srv t;
    ti_srv_conf(&t);
    ti_srv_start(&t, true);
    uint8_t *raw;
    size_t rn;
    read_corpus(MINIDUMP, &raw, &rn);
    char host[64], host2[64], idem[64], idem2[64], id1[37], id2[37], id3[37];
    ti_unique(host, sizeof host, "dup-host");
    ti_unique(host2, sizeof host2, "dup-host2");
    ti_unique(idem, sizeof idem, "dup-idem");
    ti_unique(idem2, sizeof idem2, "dup-idem2");
    struct cm_buf env, env2, env3;
    ti_envelope(&env, idem, host, raw, rn, PROTO_COMP_NONE);
    enum proto_ack_status st;
    assert_int_equal(post_native(&t, &env, id1, &st, NULL), 202);
    assert_int_equal(st, PROTO_ACK_ACCEPTED);
    assert_int_equal(post_native(&t, &env, id2, &st, NULL), 202); /* a client retry */
    assert_int_equal(st, PROTO_ACK_DUPLICATE);
    assert_string_equal(id1, id2);
    ti_envelope(&env2, idem2, host, raw, rn, PROTO_COMP_NONE);
    assert_int_equal(post_native(&t, &env2, id2, &st, NULL), 202); /* same host and dump */
    assert_string_equal(id1, id2);
    assert_int_equal(rows_for_host(host), 1);
    ti_envelope(&env3, NULL, host2, raw, rn, PROTO_COMP_NONE); /* same dump, other host */
    assert_int_equal(post_native(&t, &env3, id3, &st, NULL), 202);
    assert_string_not_equal(id1, id3);
    assert_int_equal(rows_for_host(host2), 1);
    assert_int_equal(ti_spool_files(&t, "dumps", NULL), 1); /* one file per distinct dump */

    /* The multipart route: the same report twice from one host is one crash. */
    char mhost[64], m1[37], m2[37];
    ti_unique(mhost, sizeof mhost, "dup-submit");
    struct cm_buf b;
    cm_buf_init(&b, 0);
    ti_mp_field(&b, BOUNDARY, "guid", mhost);
    ti_mp_file(&b, BOUNDARY, "upload_file_minidump", "application/octet-stream", raw, rn);
    ti_mp_end(&b, BOUNDARY);
    assert_int_equal(post_submit(&t, NULL, MP_HDRS, &b, m1, NULL, 0), 200);
    assert_int_equal(post_submit(&t, NULL, MP_HDRS, &b, m2, NULL, 0), 200);
    assert_true(is_uuid(m1));
    assert_string_equal(m1, m2);
    assert_int_equal(rows_for_host(mhost), 1);

    /* Twenty identical uploads at once: one id, one row, one job. */
    char rhost[64], ridem[64];
    ti_unique(rhost, sizeof rhost, "dup-race");
    ti_unique(ridem, sizeof ridem, "dup-race-idem");
    struct cm_buf renv;
    ti_envelope(&renv, ridem, rhost, raw, rn, PROTO_COMP_NONE);
    pthread_t th[20];
    struct race races[20];
    for (int i = 0; i < 20; i++) {
        races[i] = (struct race){ .t = &t, .env = &renv };
        pthread_create(&th[i], NULL, race_thread, &races[i]);
    }
    for (int i = 0; i < 20; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(races[i].status, 202);
        assert_string_equal(races[i].id, races[0].id);
    }
    assert_int_equal(rows_for_host(rhost), 1);
    assert_int_equal(jobs_for_id(races[0].id), 1);
    cm_buf_free(&renv);
    cm_buf_free(&b);
    cm_buf_free(&env);
    cm_buf_free(&env2);
    cm_buf_free(&env3);
    free(raw);
    ti_srv_stop(&t);
}

/* ---- malformed uploads leave nothing behind ---- */

struct bad_case {
    const char *name;
    bool native;
    const char *const *hdrs;
    struct cm_buf body;
    long status;
    const char *token;
};

static void malformed_uploads_leave_nothing(void **state)
{
    struct ti_srv t;
    ti_srv_conf(&t);
    ti_srv_start(&t, true);
    uint8_t *raw;
    size_t rn;
    read_corpus(MINIDUMP, &raw, &rn);
    long long rows_before = ti_sql_count("SELECT count(*) FROM crashes WHERE $1 = $1", "x");
    static const char *const NO_CT[] = { "Content-Type:", NULL }; /* curl: remove it */
    static const char *const WRONG_CT[] = { "Content-Type: text/plain", NULL };
    static const char *const NO_BOUNDARY[] = { "Content-Type: multipart/form-data", NULL };
    static const char *const PB_ON_MP[] = { "Content-Type: application/x-protobuf", NULL };
    static const char *const MP_ON_PB[] = { MP_CT, NULL };
    static const char *const BR[] = { MP_CT, "Content-Encoding: br", NULL };
    static const char *const STACKED[] = { MP_CT, "Content-Encoding: gzip, zstd", NULL };
    static const char *const NATIVE_BR[] = { "Content-Type: application/x-protobuf",
                                             "Content-Encoding: br", NULL };
    struct bad_case c[32];
    size_t n = 0;
    char host[64];
    ti_unique(host, sizeof host, "bad-host");
#define CASE(label, nat, h, st, tok)                                                               \
    do {                                                                                           \
        c[n] = (struct bad_case){ label, nat, h, { 0 }, st, tok };                                 \
        cm_buf_init(&c[n].body, 0);                                                                \
    } while (0)
    CASE("P01 not protobuf", true, NATIVE_HDRS, 400, "bad_envelope");
    cm_buf_append(&c[n++].body, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11, NULL);
    CASE("P07 no dump", true, NATIVE_HDRS, 400, "missing_field:dump");
    ti_envelope(&c[n++].body, NULL, host, "", 0, PROTO_COMP_NONE);
    CASE("M01 a PNG", true, NATIVE_HDRS, 400, "bad_magic");
    ti_envelope(&c[n++].body, NULL, host, "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16, PROTO_COMP_NONE);
    CASE("Z10 zstd declared, raw sent", true, NATIVE_HDRS, 400, "zstd_bad_magic");
    ti_envelope(&c[n++].body, NULL, host, raw, rn, PROTO_COMP_ZSTD);
    {
        struct cm_buf z;
        ti_zstd(raw, rn, &z);
        CASE("Z05 truncated zstd", true, NATIVE_HDRS, 400, "zstd_truncated");
        ti_envelope(&c[n++].body, NULL, host, z.data, z.len - 50, PROTO_COMP_ZSTD);
        cm_buf_free(&z);
    }
    {
        struct proto_kv kv[600];
        char keys[600][8];
        for (int i = 0; i < 600; i++) {
            snprintf(keys[i], sizeof keys[i], "k%d", i);
            kv[i] = (struct proto_kv){ keys[i], "v" };
        }
        struct proto_upload u = { 0 };
        u.meta = (struct proto_meta){ "", host, "", "", "", "", "", "", "", 0, kv, 600 };
        u.dump = raw;
        u.dump_len = rn;
        u.hint_crash_id = "";
        CASE("P04 600 annotations", true, NATIVE_HDRS, 400, "too_many_annotations");
        proto_encode_upload(&u, &c[n++].body, NULL);
    }
    CASE("H10 multipart on the native route", true, MP_ON_PB, 415, "wrong_content_type");
    cm_buf_append(&c[n++].body, "x", 1, NULL);
    CASE("H09 br on the native route", true, NATIVE_BR, 415, "unsupported_content_encoding");
    ti_envelope(&c[n++].body, NULL, host, raw, rn, PROTO_COMP_NONE);
    CASE("B01 no content type", false, NO_CT, 400, "no_content_type");
    cm_buf_append(&c[n++].body, "x", 1, NULL);
    CASE("wrong content type", false, WRONG_CT, 415, "wrong_content_type");
    cm_buf_append(&c[n++].body, "x", 1, NULL);
    CASE("H10 protobuf on the multipart route", false, PB_ON_MP, 415, "wrong_content_type");
    cm_buf_append(&c[n++].body, "x", 1, NULL);
    CASE("B01 no boundary", false, NO_BOUNDARY, 400, "no_boundary");
    cm_buf_append(&c[n++].body, "x", 1, NULL);
    CASE("H09 br", false, BR, 415, "unsupported_content_encoding");
    cm_buf_append(&c[n++].body, "x", 1, NULL);
    CASE("H09 stacked encodings", false, STACKED, 415, "unsupported_content_encoding");
    cm_buf_append(&c[n++].body, "x", 1, NULL);
    CASE("B11 gzip header, plain body", false, MP_GZ_HDRS, 400, "bad_gzip");
    ti_mp_file(&c[n].body, BOUNDARY, "upload_file_minidump", "x", raw, rn);
    ti_mp_end(&c[n++].body, BOUNDARY);
    CASE("B02 no close delimiter", false, MP_HDRS, 400, "invalid_payload_structure");
    ti_mp_file(&c[n++].body, BOUNDARY, "upload_file_minidump", "x", raw, rn);
    CASE("B03 no minidump", false, MP_HDRS, 400, "missing_minidump");
    ti_mp_field(&c[n].body, BOUNDARY, "prod", "x");
    ti_mp_end(&c[n++].body, BOUNDARY);
    CASE("B04 two minidumps", false, MP_HDRS, 400, "duplicate_minidump");
    ti_mp_file(&c[n].body, BOUNDARY, "upload_file_minidump", "x", raw, rn);
    ti_mp_file(&c[n].body, BOUNDARY, "upload_file_minidump", "x", raw, rn);
    ti_mp_end(&c[n++].body, BOUNDARY);
    CASE("B05 too many parts", false, MP_HDRS, 400, "too_many_parts");
    for (int i = 0; i < 10000; i++)
        cm_buf_printf(&c[n].body, NULL, "--%s\r\n\r\n\r\n", BOUNDARY);
    ti_mp_end(&c[n++].body, BOUNDARY);
    CASE("B07 preamble of 64 KiB", false, MP_HDRS, 400, "preamble_too_large");
    for (int i = 0; i < 65536; i++)
        cm_buf_append(&c[n].body, "p", 1, NULL);
    cm_buf_append(&c[n].body, "\r\n", 2, NULL);
    ti_mp_file(&c[n].body, BOUNDARY, "upload_file_minidump", "x", raw, rn);
    ti_mp_end(&c[n++].body, BOUNDARY);
    CASE("B06 part headers of 1 MiB", false, MP_HDRS, 400, "part_headers_too_large");
    cm_buf_printf(&c[n].body, NULL, "--%s\r\nX-Big: ", BOUNDARY);
    for (int i = 0; i < (1 << 20); i++)
        cm_buf_append(&c[n].body, "h", 1, NULL);
    cm_buf_append(&c[n].body, "\r\n\r\nx\r\n", 7, NULL);
    ti_mp_end(&c[n++].body, BOUNDARY);
    CASE("B08 field name of 1 KiB", false, MP_HDRS, 400, "field_name_too_long");
    {
        char *name = malloc(1025);
        memset(name, 'n', 1024);
        name[1024] = 0;
        ti_mp_field(&c[n].body, BOUNDARY, name, "v");
        free(name);
    }
    ti_mp_file(&c[n].body, BOUNDARY, "upload_file_minidump", "x", raw, rn);
    ti_mp_end(&c[n++].body, BOUNDARY);
    CASE("B10 5000 annotations", false, MP_HDRS, 400, "too_many_parts");
    for (int i = 0; i < 5000; i++)
        ti_mp_field(&c[n].body, BOUNDARY, "a", "b");
    ti_mp_end(&c[n++].body, BOUNDARY);
    CASE("bad extra JSON", false, MP_HDRS, 400, "bad_json");
    cm_buf_printf(&c[n].body, NULL,
                  "--%s\r\nContent-Disposition: form-data; name=\"extra\"\r\nContent-Type: "
                  "application/json\r\n\r\n{\"a\":\r\n",
                  BOUNDARY);
    ti_mp_file(&c[n].body, BOUNDARY, "upload_file_minidump", "x", raw, rn);
    ti_mp_end(&c[n++].body, BOUNDARY);
    CASE("M01 not a dump", false, MP_HDRS, 400, "bad_magic");
    ti_mp_file(&c[n].body, BOUNDARY, "upload_file_minidump", "x", "PK\3\4zipzipzip", 13);
    ti_mp_end(&c[n++].body, BOUNDARY);
    CASE("B09 multipart nested twice", false, MP_HDRS, 400, "nested_multipart");
    cm_buf_printf(&c[n].body, NULL,
                  "--%s\r\nContent-Disposition: form-data; name=\"upload_file_minidump\"; "
                  "filename=\"a\"\r\n\r\n--l1\r\nContent-Disposition: form-data; "
                  "name=\"upload_file_minidump\"\r\n\r\n--l2\r\nContent-Disposition: form-data; "
                  "name=\"upload_file_minidump\"\r\n\r\nMDMP\r\n--l2--\r\n--l1--\r\n",
                  BOUNDARY);
    ti_mp_end(&c[n++].body, BOUNDARY);
#undef CASE
    for (size_t i = 0; i < n; i++) {
        struct ti_resp r;
        ti_http(t.port, c[i].native ? "/api/v1/crashes" : "/submit", c[i].hdrs, c[i].body.data,
                c[i].body.len, &r);
        char reason[64] = "";
        if (c[i].native) {
            struct proto_ack *ack = NULL;
            if (proto_decode_ack(r.body.data, r.body.len, NULL, &ack, NULL) == CM_E_OK) {
                snprintf(reason, sizeof reason, "%s", ack->reason ? ack->reason : "");
                assert_int_equal(ack->status, PROTO_ACK_REJECTED);
                proto_ack_free(ack);
            }
        } else {
            const char *b = r.body.data ? (const char *)r.body.data : "";
            if (!strncmp(b, "Discarded=", 10))
                snprintf(reason, sizeof reason, "%.*s", (int)strcspn(b + 10, "\n"), b + 10);
        }
        if (r.status != c[i].status || strcmp(reason, c[i].token) != 0)
            fail_msg("%s: got %ld %s, want %ld %s", c[i].name, r.status, reason, c[i].status,
                     c[i].token);
        ti_resp_free(&r);
        cm_buf_free(&c[i].body);
    }
    size_t temps;
    assert_int_equal(ti_spool_files(&t, "dumps", &temps), 0);
    assert_int_equal(temps, 0);
    assert_int_equal(ti_spool_files(&t, "pending", NULL), 0);
    assert_int_equal(ti_sql_count("SELECT count(*) FROM crashes WHERE $1 = $1", "x"), rows_before);
    assert_int_equal(rows_for_host(host), 0);
    free(raw);
    ti_srv_stop(&t);
}

/* ---- over-size: 413 ---- */

static void oversize_gets_413(void **state)
{
    struct ti_srv t;
    ti_srv_conf(&t);
    t.conf.max_request_bytes = 64u << 10;
    t.conf.max_part_bytes = 32u << 10;
    t.conf.max_dump_bytes = 256u << 10;
    ti_srv_start(&t, true);
    char resp[4096];

    /* H05: Content-Length past the cap, with Expect: 100-continue: 413 at once, no 100. */
    static const char h05[] = "POST /api/v1/crashes HTTP/1.1\r\nHost: x\r\n"
                              "Content-Type: application/x-protobuf\r\n"
                              "Content-Length: 22020096\r\nExpect: 100-continue\r\n\r\n";
    ti_raw(t.port, h05, sizeof h05 - 1, resp, sizeof resp, 10000);
    assert_int_equal(ti_raw_status(resp), 413);
    assert_null(strstr(resp, "100 Continue"));
    static const char h05s[] = "POST /submit HTTP/1.1\r\nHost: x\r\n" MP_CT "\r\n"
                               "Content-Length: 22020096\r\n\r\n";
    ti_raw(t.port, h05s, sizeof h05s - 1, resp, sizeof resp, 10000);
    assert_int_equal(ti_raw_status(resp), 413);
    assert_non_null(strstr(resp, "Discarded=too_large"));

    /* A part past max_part_bytes inside an allowed request. */
    uint8_t *part = calloc(1, 40u << 10);
    memcpy(part, "MDMP", 4);
    struct cm_buf b;
    cm_buf_init(&b, 0);
    ti_mp_file(&b, BOUNDARY, "upload_file_minidump", "x", part, 40u << 10);
    ti_mp_end(&b, BOUNDARY);
    char id[37], text[128];
    assert_int_equal(post_submit(&t, NULL, MP_HDRS, &b, id, text, sizeof text), 413);
    assert_string_equal(text, "Discarded=too_large\n");
    cm_buf_free(&b);

    /* Z02: a zstd bomb past the decompressed cap, on both routes. */
    uint8_t *big = calloc(1, 1u << 20);
    memcpy(big, "MDMP", 4);
    struct cm_buf z, env;
    ti_zstd(big, 1u << 20, &z);
    ti_envelope(&env, NULL, "bomb-host", z.data, z.len, PROTO_COMP_ZSTD);
    char reason[64];
    assert_int_equal(post_native(&t, &env, id, NULL, reason), 413);
    assert_string_equal(reason, "too_large");
    cm_buf_init(&b, 0);
    ti_mp_file(&b, BOUNDARY, "upload_file_minidump", "x", z.data, z.len);
    ti_mp_end(&b, BOUNDARY);
    assert_int_equal(post_submit(&t, NULL, MP_HDRS, &b, id, text, sizeof text), 413);
    /* B11: a gzip bomb as the whole body. */
    struct cm_buf plain, gz;
    cm_buf_init(&plain, 0);
    ti_mp_file(&plain, BOUNDARY, "upload_file_minidump", "x", big, 1u << 20);
    ti_mp_end(&plain, BOUNDARY);
    ti_gzip(plain.data, plain.len, &gz);
    assert_int_equal(post_submit(&t, NULL, MP_GZ_HDRS, &gz, id, text, sizeof text), 413);

    /* A chunked body that never stops at the cap. */
    struct cm_buf chunked;
    cm_buf_init(&chunked, 0);
    cm_buf_printf(&chunked, NULL, "POST /submit HTTP/1.1\r\nHost: x\r\n" MP_CT "\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 80; i++) {
        cm_buf_printf(&chunked, NULL, "400\r\n");
        cm_buf_append(&chunked, big, 1024, NULL);
        cm_buf_printf(&chunked, NULL, "\r\n");
    }
    cm_buf_printf(&chunked, NULL, "0\r\n\r\n");
    ti_raw(t.port, chunked.data, chunked.len, resp, sizeof resp, 10000);
    assert_int_equal(ti_raw_status(resp), 413);

    size_t temps;
    assert_int_equal(ti_spool_files(&t, "dumps", &temps), 0);
    assert_int_equal(temps, 0);
    assert_int_equal(rows_for_host("bomb-host"), 0);
    cm_buf_free(&chunked);
    cm_buf_free(&plain);
    cm_buf_free(&gz);
    cm_buf_free(&b);
    cm_buf_free(&z);
    cm_buf_free(&env);
    free(big);
    free(part);
    ti_srv_stop(&t);
}

/* ---- HTTP framing over raw sockets (H01-H12) ---- */

/* A client that sends the headers and 100 body bytes, pauses, sends 100 more, then the rest
 * (if the connection still stands), and reads the answer. */
struct slow {
    uint16_t port;
    const struct cm_buf *body;
    unsigned pause_ms;
    int status; /* of the answer; 0 when the connection closed without one */
};

static int connect_lo(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void run_slow(struct slow *sl)
{
    int fd = connect_lo(sl->port);
    char hdr[256], resp[2048];
    int hl = snprintf(hdr, sizeof hdr,
                      "POST /submit HTTP/1.1\r\nHost: x\r\n" MP_CT
                      "\r\nContent-Length: %zu\r\n\r\n",
                      sl->body->len);
    const uint8_t *p = sl->body->data;
    send(fd, hdr, (size_t)hl, MSG_NOSIGNAL);
    send(fd, p, 100, MSG_NOSIGNAL);
    usleep(sl->pause_ms * 1000u);
    send(fd, p + 100, 100, MSG_NOSIGNAL);
    usleep(sl->pause_ms * 1000u);
    send(fd, p + 200, sl->body->len - 200, MSG_NOSIGNAL);
    size_t n = 0;
    ssize_t r;
    while (n < sizeof resp - 1 && (r = recv(fd, resp + n, sizeof resp - 1 - n, 0)) > 0)
        n += (size_t)r;
    resp[n] = 0;
    sl->status = ti_raw_status(resp);
    close(fd);
}

static void http_framing_cases(void **state)
{
    struct ti_srv t;
    ti_srv_conf(&t);
    t.conf.connection_timeout_s = 2;
    t.conf.min_rate_grace_s = 1;
    ti_srv_start(&t, false);
    struct cm_buf big_header, long_url, many;
    cm_buf_init(&big_header, 0);
    cm_buf_printf(&big_header, NULL, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    for (int i = 0; i < 65536; i++)
        cm_buf_append(&big_header, "a", 1, NULL);
    cm_buf_printf(&big_header, NULL, "\r\n\r\n");
    cm_buf_init(&long_url, 0);
    cm_buf_printf(&long_url, NULL, "GET /");
    for (int i = 0; i < 65536; i++)
        cm_buf_append(&long_url, "u", 1, NULL);
    cm_buf_printf(&long_url, NULL, " HTTP/1.1\r\nHost: x\r\n\r\n");
    cm_buf_init(&many, 0);
    cm_buf_printf(&many, NULL, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 200; i++)
        cm_buf_printf(&many, NULL, "X-H%d: %0100d\r\n", i, 0);
    cm_buf_printf(&many, NULL, "\r\n");
    const struct {
        const char *name;
        const char *req;
        size_t len;
        int status;
        const char *token; /* in the body, or NULL */
    } cases[] = {
#define R(s) s, sizeof s - 1
        { "H01 no length", R("POST /submit HTTP/1.1\r\nHost: x\r\n" MP_CT "\r\n\r\n"), 411,
          "no_content_length" },
        { "H02 length 0", R("POST /submit HTTP/1.1\r\nHost: x\r\n" MP_CT
                            "\r\nContent-Length: 0\r\n\r\n"),
          400, "empty" },
        { "H02 length -1", R("POST /submit HTTP/1.1\r\nHost: x\r\n" MP_CT
                             "\r\nContent-Length: -1\r\n\r\n"),
          400, NULL },
        { "H02 length 1e3", R("POST /submit HTTP/1.1\r\nHost: x\r\n" MP_CT
                              "\r\nContent-Length: 1e3\r\n\r\n"),
          400, NULL },
        { "H02 two lengths", R("POST /submit HTTP/1.1\r\nHost: x\r\n" MP_CT
                               "\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
          400, "bad_content_length" },
        { "H06 chunked and length",
          R("POST /api/v1/crashes HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            "Content-Length: 5\r\n\r\n0\r\n\r\n"),
          400, "transfer_encoding_with_content_length" },
        { "H07 chunk size overflow",
          R("POST /submit HTTP/1.1\r\nHost: x\r\n" MP_CT "\r\nTransfer-Encoding: chunked\r\n\r\n"
            "FFFFFFFFFFFFFFFFF\r\nabc"),
          413, NULL },
        { "H08 header without colon", R("GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"),
          400, NULL },
        { "H12 unknown method", R("BREW /submit HTTP/1.1\r\nHost: x\r\n\r\n"), 405,
          "method_not_allowed" },
        { "H12 HTTP/2.0 line", R("GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n"), 505, NULL },
        { "H12 HTTP/0.9 line", R("GET /healthz\r\n\r\n"), 400, NULL },
        { "unknown path", R("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"), 404, "not_found" },
        { "H08 64 KiB header", (const char *)big_header.data, big_header.len, 431, NULL },
        { "H08 200 headers", (const char *)many.data, many.len, 431, NULL },
        { "H12 64 KiB URL", (const char *)long_url.data, long_url.len, 414, NULL },
#undef R
    };
    char resp[8192];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ti_raw(t.port, cases[i].req, cases[i].len, resp, sizeof resp, 10000);
        if (ti_raw_status(resp) != cases[i].status ||
            (cases[i].token && !strstr(resp, cases[i].token)))
            fail_msg("%s: got \"%.80s\", want %d %s", cases[i].name, resp, cases[i].status,
                     cases[i].token ? cases[i].token : "");
    }
    /* H04: Content-Length shorter than the body: exactly that many bytes are the body, and the
     * rest is parsed as a new request, never appended. */
    static const char h04[] = "POST /api/v1/crashes HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                              "\r\nabcGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ti_raw(t.port, h04, sizeof h04 - 1, resp, sizeof resp, 5000);
    assert_int_equal(ti_raw_status(resp), 400);
    assert_non_null(strstr(resp, "bad_envelope"));
    const char *second = strstr(resp + 4, "HTTP/1.1 ");
    assert_non_null(second);
    assert_int_equal(ti_raw_status(second), 404);
    struct ti_resp mr;
    ti_http(t.port, "/metrics", NULL, NULL, 0, &mr);
    assert_non_null(strstr((const char *)mr.body.data,
                           "triage_ingest_bytes_in_total{endpoint=\"native\"} 3\n"));
    ti_resp_free(&mr);
    /* H03: Content-Length longer than what comes, then silence: the connection is closed
     * without an answer and nothing is stored. */
    static const char h03[] = "POST /api/v1/crashes HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                              "\r\nabc";
    size_t got = ti_raw(t.port, h03, sizeof h03 - 1, resp, sizeof resp, 30000);
    assert_int_equal(got, 0);
    /* F08: a body trickling below the minimum rate is cut off without an answer. */
    size_t dn;
    uint8_t *dump = th_read(th_corpus(MINIDUMP), &dn);
    struct cm_buf b;
    cm_buf_init(&b, 0);
    ti_mp_file(&b, BOUNDARY, "upload_file_minidump", "x", dump, dn);
    ti_mp_end(&b, BOUNDARY);
    struct slow sl = { .port = t.port, .body = &b, .pause_ms = 1300 };
    run_slow(&sl);
    assert_int_equal(sl.status, 0); /* closed, no status line */
    size_t temps;
    assert_int_equal(ti_spool_files(&t, "dumps", &temps), 0);
    assert_int_equal(temps, 0);
    assert_int_equal(ti_spool_files(&t, "pending", NULL), 0);
    cm_buf_free(&b);
    free(dump);
    cm_buf_free(&big_header);
    cm_buf_free(&long_url);
    cm_buf_free(&many);
    ti_srv_stop(&t);
}

/* ---- PostgreSQL down, then back (F01) ---- */

static bool drained(const char *id)
{
    return rows_for_id(id) == 1 && jobs_for_id(id) == 1;
}

static void pg_down_still_acks_then_drains(void **state)
{
    struct ti_srv t;
    ti_srv_conf(&t);
    ti_srv_start(&t, true);
    uint8_t *raw;
    size_t rn;
    read_corpus(MINIDUMP, &raw, &rn);
    char host[64], idem[64], mhost[64], id1[37], id2[37], m1[37];
    ti_unique(host, sizeof host, "down-host");
    ti_unique(idem, sizeof idem, "down-idem");
    ti_unique(mhost, sizeof mhost, "down-submit");
    struct cm_buf env;
    ti_envelope(&env, idem, host, raw, rn, PROTO_COMP_NONE);
    struct cm_buf b;
    cm_buf_init(&b, 0);
    ti_mp_field(&b, BOUNDARY, "guid", mhost);
    ti_mp_file(&b, BOUNDARY, "upload_file_minidump", "x", raw, rn);
    ti_mp_end(&b, BOUNDARY);

    ti_pg_down();
    enum proto_ack_status st;
    assert_int_equal(post_native(&t, &env, id1, &st, NULL), 202);
    assert_int_equal(st, PROTO_ACK_ACCEPTED);
    assert_int_equal(post_native(&t, &env, id2, &st, NULL), 202); /* a retry while down */
    assert_string_equal(id1, id2);
    assert_int_equal(post_submit(&t, NULL, MP_HDRS, &b, m1, NULL, 0), 200);
    assert_true(is_uuid(m1));
    assert_int_equal(ti_spool_files(&t, "pending", NULL), 2);
    struct ti_resp r;
    ti_http(t.port, "/healthz", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr((const char *)r.body.data, "degraded"));
    ti_resp_free(&r);

    ti_pg_up();
    ing_server_kick_drainer(t.s);
    time_t deadline = time(NULL) + 60; /* a watchdog, not a timing assertion */
    while (!(drained(id1) && drained(m1) && ing_server_pending(t.s) == 0)) {
        if (time(NULL) > deadline)
            fail_msg("pending crashes not recorded within 60 s of PostgreSQL's return");
        usleep(50000);
    }
    assert_int_equal(rows_for_host(host), 1);
    assert_int_equal(rows_for_host(mhost), 1);
    assert_int_equal(ti_spool_files(&t, "pending", NULL), 0);
    ti_http(t.port, "/healthz", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr((const char *)r.body.data, "ok"));
    ti_resp_free(&r);
    /* After the drain, a retry of the same crash still gets its id. */
    assert_int_equal(post_native(&t, &env, id2, &st, NULL), 202);
    assert_string_equal(id1, id2);
    assert_int_equal(st, PROTO_ACK_DUPLICATE);
    cm_buf_free(&b);
    cm_buf_free(&env);
    free(raw);
    ti_srv_stop(&t);
}

/* A collector stopped while crashes are pending hands them to the next one (F07). */
static void pending_survives_a_restart(void **state)
{
    struct ti_srv t;
    ti_srv_conf(&t);
    uint8_t *raw;
    size_t rn;
    read_corpus(MINIDUMP, &raw, &rn);
    char host[64], id[37];
    ti_unique(host, sizeof host, "restart-host");
    struct cm_buf env;
    ti_envelope(&env, NULL, host, raw, rn, PROTO_COMP_NONE);
    ti_srv_start(&t, false); /* no database at all: the crash waits in the spool */
    assert_int_equal(post_native(&t, &env, id, NULL, NULL), 202);
    ing_server_stop(t.s, 2000);
    char stale[1200]; /* a temp file a crash left behind */
    snprintf(stale, sizeof stale, "%s/dumps/.tmp.0123456789abcdef", t.conf.spool_dir);
    th_write(stale, "x", 1);
    ti_srv_start(&t, true);
    size_t temps;
    ti_spool_files(&t, "dumps", &temps);
    assert_int_equal(temps, 0);
    time_t deadline = time(NULL) + 60;
    while (!drained(id)) {
        if (time(NULL) > deadline)
            fail_msg("pending crash not recorded after restart");
        usleep(50000);
    }
    cm_buf_free(&env);
    free(raw);
    ti_srv_stop(&t);
}

/* ---- fsync failure (F06) ---- */

static void fsync_failure_means_no_ack(void **state)
{
    uint8_t *raw;
    size_t rn;
    read_corpus(MINIDUMP, &raw, &rn);
    for (int route = 0; route < 2; route++) {
        struct ti_srv t;
        ti_srv_conf(&t);
        setenv("TRIAGE_FAULT", "fsync_eio@1", 1);
        ti_srv_start(&t, true);
        unsetenv("TRIAGE_FAULT");
        char host[64], id[37], text[128];
        ti_unique(host, sizeof host, "fsync-host");
        struct cm_buf env, b;
        ti_envelope(&env, NULL, host, raw, rn, PROTO_COMP_NONE);
        cm_buf_init(&b, 0);
        ti_mp_field(&b, BOUNDARY, "guid", host);
        ti_mp_file(&b, BOUNDARY, "upload_file_minidump", "x", raw, rn);
        ti_mp_end(&b, BOUNDARY);
        if (route == 0) {
            char reason[64];
            struct ti_resp r;
            ti_http(t.port, "/api/v1/crashes", NATIVE_HDRS, env.data, env.len, &r);
            assert_int_equal(r.status, 503);
            assert_int_equal(r.retry_after, 1);
            ti_resp_free(&r);
            (void)reason;
        } else {
            assert_int_equal(post_submit(&t, NULL, MP_HDRS, &b, id, text, sizeof text), 503);
            assert_string_equal(text, "Discarded=storage_error\n");
        }
        size_t temps;
        assert_int_equal(ti_spool_files(&t, "dumps", &temps), 0);
        assert_int_equal(temps, 0);
        assert_int_equal(rows_for_host(host), 0);
        /* The disk works again: the retry is stored, without a restart. */
        if (route == 0)
            assert_int_equal(post_native(&t, &env, id, NULL, NULL), 202);
        else
            assert_int_equal(post_submit(&t, NULL, MP_HDRS, &b, id, text, sizeof text), 200);
        assert_int_equal(rows_for_host(host), 1);
        cm_buf_free(&env);
        cm_buf_free(&b);
        ti_srv_stop(&t);
    }
    free(raw);
}

/* ---- load shedding: the native route only ---- */

static void high_water_sheds_native_only(void **state)
{
    uint8_t *raw;
    size_t rn;
    read_corpus(MINIDUMP, &raw, &rn);
    struct ti_srv t;
    ti_srv_conf(&t);
    t.conf.spool_high_water = 1;
    ti_srv_start(&t, false); /* no database: every crash stays pending */
    char host[64], id[37], reason[64], resp[2048];
    ti_unique(host, sizeof host, "shed-host");
    struct cm_buf env;
    ti_envelope(&env, NULL, host, raw, rn, PROTO_COMP_NONE);
    assert_int_equal(post_native(&t, &env, id, NULL, NULL), 202);
    cm_buf_free(&env);
    ti_unique(host, sizeof host, "shed-host2");
    ti_envelope(&env, NULL, host, raw, rn, PROTO_COMP_NONE);
    struct ti_resp r;
    ti_http(t.port, "/api/v1/crashes", NATIVE_HDRS, env.data, env.len, &r);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.retry_after, 1);
    struct proto_ack *ack = NULL;
    assert_int_equal(proto_decode_ack(r.body.data, r.body.len, NULL, &ack, NULL), CM_E_OK);
    assert_int_equal(ack->status, PROTO_ACK_RETRY);
    assert_string_equal(ack->reason, "spool_full");
    assert_int_equal(ack->retry_after_s, 1);
    proto_ack_free(ack);
    ti_resp_free(&r);
    /* Decided on the headers: the answer comes although no body byte was sent. */
    static const char hdr_only[] = "POST /api/v1/crashes HTTP/1.1\r\nHost: x\r\n"
                                   "Content-Type: application/x-protobuf\r\n"
                                   "Content-Length: 5000\r\n\r\n";
    ti_raw(t.port, hdr_only, sizeof hdr_only - 1, resp, sizeof resp, 10000);
    assert_int_equal(ti_raw_status(resp), 503);
    assert_non_null(strstr(resp, "Retry-After: 1"));
    /* Stock reporters do not retry: /submit keeps accepting past the high-water mark. */
    struct cm_buf b;
    cm_buf_init(&b, 0);
    ti_mp_field(&b, BOUNDARY, "guid", host);
    ti_mp_file(&b, BOUNDARY, "upload_file_minidump", "x", raw, rn);
    ti_mp_end(&b, BOUNDARY);
    assert_int_equal(post_submit(&t, NULL, MP_HDRS, &b, id, NULL, 0), 200);
    assert_true(is_uuid(id));
    assert_int_equal(ti_spool_files(&t, "pending", NULL), 2);
    (void)reason;
    cm_buf_free(&b);
    cm_buf_free(&env);
    ti_srv_stop(&t);

    /* The queue's high-water mark: jobs nobody analyzes pile up past 1. */
    ti_srv_conf(&t);
    t.conf.queue_high_water = 1;
    ti_srv_start(&t, true);
    for (int i = 0; i < 2; i++) {
        ti_unique(host, sizeof host, "queue-host");
        ti_envelope(&env, NULL, host, raw, rn, PROTO_COMP_NONE);
        post_native(&t, &env, id, NULL, NULL);
        cm_buf_free(&env);
    }
    time_t deadline = time(NULL) + 60; /* the drainer polls the queue depth */
    for (;;) {
        ti_unique(host, sizeof host, "queue-host");
        ti_envelope(&env, NULL, host, raw, rn, PROTO_COMP_NONE);
        long status = post_native(&t, &env, id, NULL, reason);
        cm_buf_free(&env);
        if (status == 503) {
            assert_string_equal(reason, "queue_full");
            break;
        }
        assert_int_equal(status, 202);
        if (time(NULL) > deadline)
            fail_msg("queue past its high-water mark never shed load");
        usleep(100000);
    }
    cm_buf_init(&b, 0);
    ti_mp_file(&b, BOUNDARY, "upload_file_minidump", "x", raw, rn);
    ti_mp_end(&b, BOUNDARY);
    assert_int_equal(post_submit(&t, NULL, MP_HDRS, &b, id, NULL, 0), 200);
    cm_buf_free(&b);
    free(raw);
    ti_srv_stop(&t);
}

/* ---- metrics ---- */

static long long metric(const char *text, const char *series)
{
    char want[256];
    snprintf(want, sizeof want, "\n%s ", series);
    const char *p = strstr(text, want);
    return p ? atoll(p + strlen(want)) : 0;
}

static void metrics_count_what_happened(void **state)
{
    struct ti_srv t;
    ti_srv_conf(&t);
    ti_srv_start(&t, false);
    uint8_t *raw;
    size_t rn;
    read_corpus(MINIDUMP, &raw, &rn);
    size_t bytes = 0;
    char id[37];
    for (int i = 0; i < 3; i++) {
        char host[64];
        ti_unique(host, sizeof host, "metrics-host");
        struct cm_buf b;
        cm_buf_init(&b, 0);
        ti_mp_field(&b, BOUNDARY, "guid", host);
        ti_mp_field(&b, BOUNDARY, "evil\"label{x=\"1\"}", "v");
        ti_mp_field(&b, BOUNDARY, "prod", "line\nbreak-product");
        ti_mp_file(&b, BOUNDARY, "upload_file_minidump", "x", raw, rn);
        ti_mp_end(&b, BOUNDARY);
        assert_int_equal(post_submit(&t, NULL, MP_HDRS, &b, id, NULL, 0), 200);
        bytes += b.len;
        cm_buf_free(&b);
    }
    for (int i = 0; i < 2; i++) {
        struct cm_buf b;
        cm_buf_init(&b, 0);
        ti_mp_file(&b, BOUNDARY, "upload_file_minidump", "x", "not a dump", 10);
        ti_mp_end(&b, BOUNDARY);
        assert_int_equal(post_submit(&t, NULL, MP_HDRS, &b, id, NULL, 0), 400);
        bytes += b.len;
        cm_buf_free(&b);
    }
    struct cm_buf env;
    ti_envelope(&env, NULL, "metrics-native", raw, rn, PROTO_COMP_NONE);
    assert_int_equal(post_native(&t, &env, id, NULL, NULL), 202);
    struct ti_resp r;
    ti_http(t.port, "/nowhere", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 404);
    ti_resp_free(&r);
    ti_http(t.port, "/metrics", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    const char *m = (const char *)r.body.data;
    assert_int_equal(metric(m, "triage_ingest_requests_total{endpoint=\"submit\",code=\"200\"}"),
                     3);
    assert_int_equal(metric(m, "triage_ingest_requests_total{endpoint=\"submit\",code=\"400\"}"),
                     2);
    assert_int_equal(metric(m, "triage_ingest_requests_total{endpoint=\"native\",code=\"202\"}"),
                     1);
    assert_int_equal(metric(m, "triage_ingest_requests_total{endpoint=\"other\",code=\"404\"}"),
                     1);
    assert_int_equal(metric(m, "triage_ingest_rejected_total{reason=\"bad_magic\"}"), 2);
    assert_int_equal(metric(m, "triage_ingest_bytes_in_total{endpoint=\"submit\"}"),
                     (long long)bytes);
    assert_int_equal(metric(m, "triage_ingest_bytes_in_total{endpoint=\"native\"}"),
                     (long long)env.len);
    assert_int_equal(metric(m, "triage_ingest_ack_seconds_count"), 4);
    assert_int_equal(metric(m, "triage_ingest_ack_seconds_bucket{le=\"+Inf\"}"), 4);
    assert_int_equal(metric(m, "triage_ingest_spool_depth"), 4);
    assert_int_equal(metric(m, "triage_ingest_accepted_total"), 4);
    assert_null(strstr(m, "evil"));  /* user strings never become labels */
    assert_null(strstr(m, "break-product"));
    ti_resp_free(&r);
    cm_buf_free(&env);
    free(raw);
    ti_srv_stop(&t);
}

/* ---- SIGTERM (F12) ---- */

/* An upload in flight when SIGTERM comes: headers and half a body, the signal, the rest. */
struct term {
    uint16_t port;
    const struct cm_buf *body;
    pid_t server;
    int status;
    bool crash_id;
};

static void *term_client(void *arg)
{
    struct term *tm = arg;
    int fd = connect_lo(tm->port);
    char hdr[256];
    int hl = snprintf(hdr, sizeof hdr,
                      "POST /submit HTTP/1.1\r\nHost: x\r\n" MP_CT
                      "\r\nContent-Length: %zu\r\n\r\n",
                      tm->body->len);
    send(fd, hdr, (size_t)hl, MSG_NOSIGNAL);
    send(fd, tm->body->data, tm->body->len / 2, MSG_NOSIGNAL);
    usleep(300000);
    kill(tm->server, SIGTERM);
    usleep(300000);
    send(fd, tm->body->data + tm->body->len / 2, tm->body->len - tm->body->len / 2,
         MSG_NOSIGNAL);
    char resp[1024];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof resp - 1 && (r = recv(fd, resp + n, sizeof resp - 1 - n, 0)) > 0)
        n += (size_t)r;
    resp[n] = 0;
    tm->status = ti_raw_status(resp);
    tm->crash_id = strstr(resp, "CrashID=bp-") != NULL;
    close(fd);
    return NULL;
}

static void sigterm_finishes_in_flight_and_exits_0(void **state)
{
    const char *bin = getenv("TRIAGE_INGEST");
    if (!bin || !*bin)
        fail_msg("TRIAGE_INGEST is not set (run through ctest)");
    char dir[64], spool[128];
    snprintf(dir, sizeof dir, "/tmp/ti-sig-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(spool, sizeof spool, "%s/spool", dir);
    int out[2];
    assert_int_equal(pipe(out), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execl(bin, bin, "--listen", "127.0.0.1:0", "--spool-dir", spool, "--log-level", "warn",
              (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char line[128] = "";
    size_t got = 0;
    while (got < sizeof line - 1 && !strchr(line, '\n')) {
        ssize_t n = read(out[0], line + got, sizeof line - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        line[got] = 0;
    }
    unsigned port = 0;
    assert_int_equal(sscanf(line, "listening on port %u", &port), 1);

    size_t dn;
    uint8_t *dump = th_read(th_corpus(MINIDUMP), &dn);
    struct cm_buf b;
    cm_buf_init(&b, 0);
    ti_mp_file(&b, BOUNDARY, "upload_file_minidump", "x", dump, dn);
    ti_mp_end(&b, BOUNDARY);
    pthread_t client;
    struct term tm = { .port = (uint16_t)port, .body = &b, .server = pid };
    pthread_create(&client, NULL, term_client, &tm);
    pthread_join(client, NULL);
    assert_int_equal(tm.status, 200); /* the in-flight upload was answered */
    assert_true(tm.crash_id);
    int st = 0;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    char dumps[192];
    snprintf(dumps, sizeof dumps, "%s/dumps", spool);
    assert_int_equal(ti_count_dir(dumps), 1);
    close(out[0]);
    cm_buf_free(&b);
    free(dump);
    ti_rmtree(dir);
}

/* ---- the upload client ---- */

struct events {
    size_t finals, retries;
    unsigned first_wait_ms;
    char ids[8][37];
};

static void on_event(void *ctx, const struct ing_client_event *ev)
{
    struct events *e = ctx;
    if (!ev->final) {
        if (e->retries++ == 0)
            e->first_wait_ms = ev->wait_ms;
        return;
    }
    if (e->finals < 8)
        snprintf(e->ids[e->finals], 37, "%s", ev->crash_id);
    e->finals++;
    assert_int_equal(ev->index, e->finals);
}

static void client_uploads_retries_and_keeps_an_outbox(void **state)
{
    struct ti_srv t;
    ti_srv_conf(&t);
    ti_srv_start(&t, true);
    char url[64], host[64], outbox[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)t.port);
    ti_unique(host, sizeof host, "client-host");
    snprintf(outbox, sizeof outbox, "%s/outbox", t.dir);
    char *files[2] = { (char *)strdup(th_corpus(MINIDUMP)), (char *)strdup(th_corpus(ELFCORE)) };
    struct events ev = { 0 };
    struct ing_client_opts o = { .url = url, .product = "ClientTest", .version = "1",
                                 .host_id = host, .outbox_dir = outbox, .max_attempts = 2,
                                 .base_delay_ms = 20, .progress = on_event, .progress_ctx = &ev };
    struct ing_client_totals tot;
    struct cm_err err = { 0 };
    assert_int_equal(ing_client_upload(&o, files, 2, &tot, &err), CM_E_OK);
    assert_int_equal(tot.accepted, 2);
    assert_int_equal(ev.finals, 2);
    assert_int_equal(rows_for_host(host), 2);
    assert_int_equal(ti_count_dir(outbox), 0);
    uint8_t *core;
    size_t cn;
    read_corpus(ELFCORE, &core, &cn);
    check_stored(&t, ev.ids[1], core, cn);
    free(core);
    /* A second run: fresh keys, but the same host and dumps: the same crashes. */
    struct events ev2 = { 0 };
    o.progress_ctx = &ev2;
    assert_int_equal(ing_client_upload(&o, files, 2, &tot, &err), CM_E_OK);
    assert_int_equal(tot.duplicate, 2);
    assert_string_equal(ev2.ids[0], ev.ids[0]);
    assert_string_equal(ev2.ids[1], ev.ids[1]);
    assert_int_equal(rows_for_host(host), 2);
    ti_srv_stop(&t);

    /* The service is down: the envelope stays in the outbox. */
    ti_srv_conf(&t);
    snprintf(outbox, sizeof outbox, "%s/outbox", t.dir);
    ti_unique(host, sizeof host, "client-outbox");
    struct events ev3 = { 0 };
    o.host_id = host;
    o.outbox_dir = outbox;
    o.progress_ctx = &ev3;
    o.url = "http://127.0.0.1:9"; /* discard port: nothing listens on loopback */
    assert_int_equal(ing_client_upload(&o, files, 1, &tot, &err), CM_E_OK);
    assert_int_equal(tot.queued, 1);
    assert_int_equal(ev3.retries, 1);
    assert_int_equal(ti_count_dir(outbox), 1);
    char key[64] = "";
    {
        DIR *d = opendir(outbox);
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                snprintf(key, sizeof key, "%.36s", e->d_name);
        closedir(d);
    }
    /* It comes back: the next run (no new files) sends it with its original key. */
    ev3 = (struct events){ 0 };
    ti_srv_start(&t, true);
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)t.port);
    o.url = url;
    assert_int_equal(ing_client_upload(&o, NULL, 0, &tot, &err), CM_E_OK);
    assert_int_equal(tot.accepted, 1);
    assert_int_equal(ti_count_dir(outbox), 0);
    assert_int_equal(ti_sql_count("SELECT count(*) FROM crashes WHERE idempotency_key = $1", key),
                     1);
    ti_srv_stop(&t);

    /* Retry-After is honoured: a full spool answers 503 with Retry-After: 1. */
    ti_srv_conf(&t);
    t.conf.spool_high_water = 1;
    ti_srv_start(&t, false);
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)t.port);
    struct events ev4 = { 0 };
    o.url = url;
    o.outbox_dir = NULL;
    o.progress_ctx = &ev4;
    o.base_delay_ms = 10;
    ti_unique(host, sizeof host, "client-ra");
    o.host_id = host;
    assert_int_equal(ing_client_upload(&o, files, 1, &tot, &err), CM_E_OK); /* fills it */
    assert_int_equal(tot.accepted, 1);
    ev4 = (struct events){ 0 };
    assert_int_equal(ing_client_upload(&o, files + 1, 1, &tot, &err), CM_E_OK);
    assert_int_equal(tot.failed, 1); /* no outbox this time */
    assert_int_equal(ev4.retries, 1);
    assert_int_equal(ev4.first_wait_ms, 1000); /* Retry-After, not the 10 ms backoff */
    ti_srv_stop(&t);
    free(files[0]);
    free(files[1]);
}

/* `triagectl upload`, through cli_upload() itself. */
static void cli_upload_sends_metadata(void **state)
{
    struct ti_srv t;
    ti_srv_conf(&t);
    ti_srv_start(&t, true);
    char url[64], host[64], outbox[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)t.port);
    snprintf(outbox, sizeof outbox, "%s/outbox", t.dir);
    ti_unique(host, sizeof host, "cli-host");
    char *file = strdup(th_corpus(MINIDUMP));
    char ann[] = "build_flavor=asan";
    char *argv[] = { "upload", file, "--url", url, "--product", "CliProduct", "--version", "4.5",
                     "--host", host, "--crash-time", "2024-07-19T06:09:00.250+02:00",
                     "--annotation", ann, "--outbox", outbox, "--quiet", NULL };
    assert_int_equal(cli_upload(17, argv), 0);
    char got[256];
    ti_sql_text("SELECT product || '/' || version || '/' || "
                "(extract(epoch FROM crash_time) * 1000)::bigint || '/' || "
                "(annotations->>'build_flavor') FROM crashes WHERE host_id = $1",
                host, got, sizeof got);
    assert_string_equal(got, "CliProduct/4.5/1721362140250/asan");
    char *bad[] = { "upload", file, NULL };
    assert_int_equal(cli_upload(2, bad), 2); /* no --url */
    free(file);
    ti_srv_stop(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(native_bodies_are_stored_and_recorded),
        cmocka_unit_test(submit_bodies_are_stored_and_recorded),
        cmocka_unit_test(duplicates_get_one_id_and_one_row),
        cmocka_unit_test(malformed_uploads_leave_nothing),
        cmocka_unit_test(oversize_gets_413),
        cmocka_unit_test(http_framing_cases),
        cmocka_unit_test(pg_down_still_acks_then_drains),
        cmocka_unit_test(pending_survives_a_restart),
        cmocka_unit_test(fsync_failure_means_no_ack),
        cmocka_unit_test(high_water_sheds_native_only),
        cmocka_unit_test(metrics_count_what_happened),
        cmocka_unit_test(sigterm_finishes_in_flight_and_exits_0),
        cmocka_unit_test(client_uploads_retries_and_keeps_an_outbox),
        cmocka_unit_test(cli_upload_sends_metadata),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
