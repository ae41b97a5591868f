/* test_hints.c -- progressive collection end to end (issue 5, docs/progressive-collection.md): a
 * real PostgreSQL, the real triage-ingest and triage-analyzer programs, hints and uploads over
 * real HTTP through triagectl's upload client (ingest/ing_client.c) and hand-built CrashHints.
 * The service must learn each fault key's bucket from the dumps it analyzes, count a hint of a
 * known key at once and exactly once, ask for the first K dumps per key and then 1 in M, for the
 * dumps a responder wants, and always for unknown or ambiguous keys; counted and analyzed
 * crashes together must equal what was sent, bucket by bucket. Label: db. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyzer/ana.h"
#include "analyzer/ana_sym.h" /* ana_unwind_all */
#include "ingest/ing.h"
#include "proto/proto.h"
#include "tests/e2e/e2e_harness.h"
#include "tests/fixgen/fixgen.h"
#include "tests/th.h"

#define DRAIN_S 600

static int group_setup(void **state)
{
    (void)state;
    e2e_init();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    e2e_fini();
    return 0;
}

static int setup(void **state)
{
    (void)state;
    e2e_db_reset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    e2e_cleanup();
    return 0;
}

/* ---- crashes ---- */

struct crash {
    uint8_t *dump;
    size_t len;
    char host[32];
    char bucket[40];    /* offline analysis, no symbols (as the daemon has none for them) */
    char *fault_key;    /* offline, ana_fault_key_format */
    struct ana_fault_key key;
    struct ana_crash *c; /* keeps key's strings alive */
    char id[37];
    enum ing_client_status st;
};

static void make(struct crash *x, enum fix_scenario sc, uint64_t seed)
{
    struct fix_sample_opts o = { .seed = seed };
    struct cm_err err = { 0 };
    snprintf(x->host, sizeof x->host, "host-%llu", (unsigned long long)seed);
    o.host = x->host;
    if (fix_sample(sc, &o, &x->dump, &x->len, NULL, &err))
        fail_msg("fix_sample: %s", err.msg);
    struct ana_keys keys;
    if (ana_load(x->dump, x->len, NULL, &x->c, &err) || ana_analyze(x->c, NULL, NULL, &keys, &err))
        fail_msg("offline analysis: %s", err.msg);
    snprintf(x->bucket, sizeof x->bucket, "%s", keys.bucket);
    x->fault_key = strdup(keys.fault_key);
    /* The key again from a walk without symbols, as an endpoint computes it. */
    struct ana_crash *c2 = NULL;
    if (ana_load(x->dump, x->len, NULL, &c2, &err) || ana_unwind_all(c2, NULL, &err))
        fail_msg("endpoint walk: %s", err.msg);
    ana_fault_key_get(c2, &x->key);
    char *t = ana_fault_key_format(&x->key);
    assert_string_equal(t, x->fault_key); /* endpoint and analyzer agree */
    free(t);
    ana_crash_free(x->c);
    x->c = c2;
}

static void unmake(struct crash *x)
{
    free(x->dump);
    free(x->fault_key);
    ana_crash_free(x->c);
}

static void send_all(uint16_t port, struct crash *xs, size_t n, bool hints)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
    struct ing_client_opts o = { .url = url, .no_hint = !hints, .product = "agent",
                                 .version = "4.2.17", .max_attempts = 3 };
    struct ing_client *cl = NULL;
    struct cm_err err = { 0 };
    assert_int_equal(ing_client_open(&o, &cl, &err), CM_E_OK);
    for (size_t i = 0; i < n; i++) {
        struct ing_client_crash cr = { .dump = xs[i].dump, .dump_len = xs[i].len,
                                       .name = xs[i].host, .host_id = xs[i].host };
        char reason[300];
        xs[i].st = ing_client_send(cl, &cr, xs[i].id, reason);
        if (xs[i].st != ING_CLIENT_ACCEPTED && xs[i].st != ING_CLIENT_COUNTED)
            fail_msg("crash %zu: %s (%s)", i, ing_client_status_name(xs[i].st), reason);
    }
    ing_client_close(cl);
}

/* A CrashHint for x, built by hand. */
static void hint_body(const struct crash *x, const char *idem, struct cm_buf *out)
{
    struct proto_module_offset fr[ANA_FAULT_KEY_FRAMES];
    for (size_t i = 0; i < x->key.frame_count; i++)
        fr[i] = (struct proto_module_offset){ x->key.frames[i].module, x->key.frames[i].offset };
    struct proto_hint h = {
        .meta = { .idempotency_key = idem, .host_id = x->host, .product = "agent",
                  .version = "4.2.17", .channel = "", .os = "", .os_version = "", .build_id = "",
                  .cpu_arch = "" },
        .fault_key = { .module = x->key.module, .module_version = x->key.module_version,
                       .module_build_id = x->key.module_build_id, .offset = x->key.offset,
                       .exception_code = x->key.exception_code,
                       .exception_subcode = x->key.exception_subcode, .frames = fr,
                       .frame_count = x->key.frame_count,
                       .address_class = x->key.address_class },
        .dump_format = PROTO_DUMP_MINIDUMP,
    };
    cm_buf_init(out, 0);
    assert_int_equal(proto_encode_hint(&h, out, NULL), CM_E_OK);
}

struct reply {
    bool want;
    char id[37], reason[40], bucket[40];
};

static void post_hint(uint16_t port, const struct cm_buf *body, struct reply *r)
{
    struct e2e_resp resp;
    e2e_http(port, "/api/v1/hints", (const char *const[]){ "Content-Type: application/x-protobuf",
                                                           NULL },
             body->data, body->len, &resp);
    assert_int_equal(resp.status, 200);
    struct proto_hint_reply *hr = NULL;
    assert_int_equal(proto_decode_hint_reply((const uint8_t *)resp.body, resp.len, NULL, &hr,
                                             NULL),
                     CM_E_OK);
    r->want = hr->want_dump;
    snprintf(r->id, sizeof r->id, "%s", hr->crash_id ? hr->crash_id : "");
    snprintf(r->reason, sizeof r->reason, "%s", hr->reason ? hr->reason : "");
    snprintf(r->bucket, sizeof r->bucket, "%s", hr->bucket ? hr->bucket : "");
    proto_hint_reply_free(hr);
    e2e_resp_free(&resp);
}

static long long q1(const char *sql, const char *p1)
{
    return e2e_sql_int(sql, p1 ? (const char *const[]){ p1, NULL } : NULL);
}

/* Counted hints reach their buckets and rollups in batches, moments later (ingest's rollup). */
static void wait_rolled(void)
{
    for (int i = 0; i < 1200 && q1("SELECT count(*) FROM crashes WHERE hint_pending", NULL); i++)
        usleep(50000);
    assert_int_equal(q1("SELECT count(*) FROM crashes WHERE hint_pending", NULL), 0);
}

/* Counted and analyzed crashes equal what was sent, bucket by bucket, in every table that counts
 * them. */
static void check_buckets(const struct crash *xs, size_t n)
{
    wait_rolled();
    for (size_t i = 0; i < n; i++) {
        long long want = 0;
        for (size_t j = 0; j < n; j++)
            want += !strcmp(xs[j].bucket, xs[i].bucket);
        const char *b = xs[i].bucket;
        long long got = q1("SELECT crash_count FROM buckets WHERE bucket_key = $1", b);
        if (got != want)
            fail_msg("bucket %s holds %lld crashes, %lld were sent", b, got, want);
        assert_int_equal(q1("SELECT count(*) FROM crashes WHERE status = 'done'"
                            " AND bucket_key = $1", b), want);
        assert_int_equal(q1("SELECT sum(crash_count) FROM bucket_rollup_minute"
                            " WHERE bucket_key = $1", b), want);
        assert_int_equal(q1("SELECT sum(crash_count) FROM bucket_rollup_hour"
                            " WHERE bucket_key = $1", b), want);
        assert_int_equal(q1("SELECT host_count FROM buckets WHERE bucket_key = $1", b),
                         q1("SELECT count(DISTINCT host_id) FROM crashes WHERE status = 'done'"
                            " AND bucket_key = $1", b));
    }
    assert_int_equal(q1("SELECT count(*) FROM crashes", NULL), (long long)n);
    assert_int_equal(q1("SELECT sum(crash_count) FROM module_rollup_minute", NULL),
                     q1("SELECT count(*) FROM crashes WHERE fault_module IS NOT NULL", NULL));
}

/* ---- tests ---- */

static void known_keys_are_counted_once_and_sampled(void **state)
{
    (void)state;
    struct e2e_ingest ing = { 0 };
    struct e2e_analyzer an = { 0 };
    e2e_ingest_start(&ing, (const char *const[]){ "--hint_first_k=2", "--hint_sample_m=3", NULL });
    e2e_analyzer_start(&an, NULL);
    enum { PER = 10 };
    static const enum fix_scenario scs[] = { FIX_SC_WIN_AMD64_AV, FIX_SC_WIN_AMD64_STACK_OVERFLOW };
    struct crash xs[2 * PER];
    memset(xs, 0, sizeof xs);
    for (size_t s = 0; s < 2; s++)
        for (size_t i = 0; i < PER; i++)
            make(&xs[s * PER + i], scs[s], 1000 * (s + 1) + i);
    /* Each scenario's crashes share one fault key (fault offset, no unscanned callers). */
    for (size_t i = 1; i < PER; i++) {
        assert_string_equal(xs[i].fault_key, xs[0].fault_key);
        assert_string_equal(xs[PER + i].fault_key, xs[PER].fault_key);
    }
    /* The first of each key: never seen, so its dump is wanted and analyzed. */
    send_all(ing.port, (struct crash[]){ xs[0], xs[PER] }, 2, true);
    e2e_wait_analyzed(2, DRAIN_S, NULL);
    assert_int_equal(q1("SELECT count(*) FROM fault_key_map WHERE buckets = 1", NULL), 2);
    /* The rest: K = 2 per key and day (the unknown one counts), then 1 in 3. */
    struct crash rest[2 * (PER - 1)];
    for (size_t s = 0; s < 2; s++)
        memcpy(&rest[s * (PER - 1)], &xs[s * PER + 1], (PER - 1) * sizeof *xs);
    send_all(ing.port, rest, 2 * (PER - 1), true);
    e2e_wait_analyzed(2 * PER, DRAIN_S, NULL);
    /* hints 2..10 of a key: 2 first_k; 3,4 counted; 5 sampled; 6,7 counted; 8 sampled; 9,10 */
    static const char *const expect[PER - 1] = { "first_k", "counted", "counted", "sampled",
                                                 "counted", "counted", "sampled", "counted",
                                                 "counted" };
    for (size_t s = 0; s < 2; s++)
        for (size_t i = 0; i < PER - 1; i++) {
            const struct crash *x = &rest[s * (PER - 1) + i];
            char reason[32];
            e2e_sql_text("SELECT hint_reason FROM crashes WHERE crash_id = $1::uuid",
                         (const char *const[]){ x->id, NULL }, reason, sizeof reason);
            if (strcmp(reason, expect[i]))
                fail_msg("key %zu hint %zu: reason %s, expected %s", s, i + 2, reason, expect[i]);
            assert_int_equal(x->st, strcmp(expect[i], "counted") ? ING_CLIENT_ACCEPTED
                                                                 : ING_CLIENT_COUNTED);
        }
    /* Counted crashes have no dump; every wanted dump arrived, was attached and analyzed once. */
    assert_int_equal(q1("SELECT count(*) FROM crashes WHERE hint_counted AND dump_sha256 IS NULL"
                        " AND source = 'hint' AND status = 'done'", NULL), 2 * 6);
    assert_int_equal(q1("SELECT count(*) FROM crashes WHERE NOT hint_counted"
                        " AND dump_sha256 IS NOT NULL AND status = 'done'", NULL), 2 * 4);
    assert_int_equal(q1("SELECT count(*) FROM jobs", NULL), 0);
    check_buckets(xs, 2 * PER);
    /* Every decision is counted by reason, product, version and fault module. */
    assert_int_equal(q1("SELECT sum(crashes) FROM collection_decisions WHERE reason = 'counted'"
                        " AND product = 'agent' AND version = '4.2.17'"
                        " AND fault_module = 'contoso_sensor.dll'", NULL), 12);
    assert_int_equal(q1("SELECT sum(crashes) FROM collection_decisions", NULL), 2 * PER);
    struct e2e_resp m;
    e2e_http(ing.port, "/metrics", NULL, NULL, 0, &m);
    assert_non_null(strstr(m.body, "triage_ingest_hint_decisions_total{reason=\"counted\","
                                   "dump=\"no\"} 12\n"));
    assert_non_null(strstr(m.body, "triage_ingest_hint_decisions_total{reason=\"sampled\","
                                   "dump=\"yes\"} 4\n"));
    e2e_resp_free(&m);
    for (size_t i = 0; i < 2 * PER; i++)
        unmake(&xs[i]);
    e2e_passed();
}

static void retries_count_nothing_twice(void **state)
{
    (void)state;
    struct e2e_ingest ing = { 0 };
    struct e2e_analyzer an = { 0 };
    e2e_ingest_start(&ing, (const char *const[]){ "--hint_first_k=1", "--hint_sample_m=0", NULL });
    e2e_analyzer_start(&an, NULL);
    struct crash x[3] = { 0 };
    for (int i = 0; i < 3; i++)
        make(&x[i], FIX_SC_WIN_AMD64_AV, 77 + (uint64_t)i);
    send_all(ing.port, x, 1, true); /* teaches the key */
    e2e_wait_analyzed(1, DRAIN_S, NULL);
    /* A counted hint sent three times: one crash. */
    struct cm_buf body;
    hint_body(&x[1], "retry-key-1", &body);
    struct reply r1, r2, r3;
    post_hint(ing.port, &body, &r1);
    post_hint(ing.port, &body, &r2);
    post_hint(ing.port, &body, &r3);
    cm_buf_free(&body);
    assert_false(r1.want);
    assert_string_equal(r1.reason, "counted");
    assert_string_equal(r2.reason, "duplicate");
    assert_string_equal(r1.id, r2.id);
    assert_string_equal(r1.id, r3.id);
    assert_string_equal(r1.bucket, x[1].bucket);
    wait_rolled();
    assert_int_equal(q1("SELECT crash_count FROM buckets WHERE bucket_key = $1", x[1].bucket), 2);
    /* A hint whose dump is wanted (a responder asked), then the dump sent twice: one crash, one
     * analysis, the hint's count replaced by the dump's. */
    char *out = NULL;
    const char *ci = e2e_pg_conninfo();
    assert_int_equal(e2e_triagectl((const char *const[]){ "want", x[2].bucket, "1", "--db", ci,
                                                          NULL },
                                   &out),
                     0);
    free(out);
    hint_body(&x[2], "retry-key-2", &body);
    post_hint(ing.port, &body, &r1);
    post_hint(ing.port, &body, &r2);
    cm_buf_free(&body);
    assert_true(r1.want);
    assert_string_equal(r1.reason, "requested");
    assert_true(r2.want); /* retried: still wanted, same crash */
    assert_string_equal(r1.id, r2.id);
    wait_rolled();
    assert_int_equal(q1("SELECT crash_count FROM buckets WHERE bucket_key = $1", x[2].bucket), 3);
    struct e2e_upload u = { .route = E2E_NATIVE, .enc = E2E_ZSTD, .dump = x[2].dump,
                            .dump_len = x[2].len, .host_id = x[2].host,
                            .idempotency_key = "retry-key-2" };
    e2e_upload(ing.port, &u);
    assert_true(u.accepted);
    assert_false(u.duplicate);
    assert_string_equal(u.crash_id, r1.id);
    e2e_upload(ing.port, &u);
    assert_true(u.duplicate);
    e2e_wait_analyzed(3, DRAIN_S, NULL);
    assert_int_equal(q1("SELECT count(*) FROM crashes WHERE crash_id = $1::uuid"
                        " AND status = 'done' AND NOT hint_counted AND dump_sha256 IS NOT NULL",
                        r1.id), 1);
    check_buckets(x, 3);
    /* After the one requested dump, back to the policy (K = 1 used, no sampling). */
    hint_body(&x[2], "retry-key-3", &body);
    post_hint(ing.port, &body, &r3);
    cm_buf_free(&body);
    assert_false(r3.want);
    for (int i = 0; i < 3; i++)
        unmake(&x[i]);
    e2e_passed();
}

static void unknown_ambiguous_and_keyless_hints_ask_for_the_dump(void **state)
{
    (void)state;
    struct e2e_ingest ing = { 0 };
    e2e_ingest_start(&ing, NULL);
    struct crash x = { 0 };
    make(&x, FIX_SC_LINUX_AMD64_SEGV, 5);
    struct cm_buf body;
    struct reply r;
    hint_body(&x, "never-seen", &body);
    post_hint(ing.port, &body, &r);
    cm_buf_free(&body);
    assert_true(r.want);
    assert_string_equal(r.reason, "unknown_fault_key");
    assert_string_equal(r.id, "");
    /* The same key learned in two buckets. */
    PQclear(e2e_sql("INSERT INTO fault_key_buckets (project, fault_key, bucket_key, crash_count)"
                    " VALUES ('default', $1, 'b1', 1), ('default', $1, 'b2', 4)",
                    (const char *const[]){ x.fault_key, NULL }));
    hint_body(&x, "two-buckets", &body);
    post_hint(ing.port, &body, &r);
    cm_buf_free(&body);
    assert_true(r.want);
    assert_string_equal(r.reason, "ambiguous_fault_key");
    hint_body(&x, "", &body);
    post_hint(ing.port, &body, &r);
    cm_buf_free(&body);
    assert_true(r.want);
    assert_string_equal(r.reason, "no_idempotency_key");
    /* Nothing was recorded; each decision was counted. */
    assert_int_equal(q1("SELECT count(*) FROM crashes", NULL), 0);
    assert_int_equal(q1("SELECT sum(crashes) FROM collection_decisions", NULL), 3);
    /* Garbage is refused with a reason, not decided. */
    struct e2e_resp resp;
    e2e_http(ing.port, "/api/v1/hints",
             (const char *const[]){ "Content-Type: application/x-protobuf", NULL }, "\xff\xff\xff",
             3, &resp);
    assert_int_equal(resp.status, 400);
    e2e_resp_free(&resp);
    unmake(&x);
    e2e_passed();
}

static void without_a_database_every_hint_asks_for_the_dump(void **state)
{
    (void)state;
    struct e2e_ingest ing = { 0 };
    struct e2e_analyzer an = { 0 };
    e2e_ingest_start(&ing, (const char *const[]){ "--db_timeout_ms=2000", NULL });
    e2e_analyzer_start(&an, NULL);
    struct crash x[2] = { 0 };
    make(&x[0], FIX_SC_WIN_AMD64_AV, 900);
    make(&x[1], FIX_SC_WIN_AMD64_AV, 901);
    send_all(ing.port, x, 1, true);
    e2e_wait_analyzed(1, DRAIN_S, NULL);
    e2e_pg_stop(false);
    /* The key is known, but nothing can be counted now: the dump goes, and is spooled. */
    send_all(ing.port, x + 1, 1, true);
    assert_int_equal(x[1].st, ING_CLIENT_ACCEPTED);
    e2e_pg_start();
    e2e_wait_analyzed(2, DRAIN_S, NULL);
    check_buckets(x, 2);
    unmake(&x[0]);
    unmake(&x[1]);
    e2e_passed();
}

static void no_hint_uploads_every_dump(void **state)
{
    (void)state;
    struct e2e_ingest ing = { 0 };
    struct e2e_analyzer an = { 0 };
    e2e_ingest_start(&ing, NULL);
    e2e_analyzer_start(&an, NULL);
    struct crash x[6] = { 0 };
    for (int i = 0; i < 6; i++)
        make(&x[i], (enum fix_scenario)(i % FIX_SC__COUNT), 40 + (uint64_t)i);
    send_all(ing.port, x, 6, false);
    e2e_wait_analyzed(6, DRAIN_S, NULL);
    for (int i = 0; i < 6; i++)
        assert_int_equal(x[i].st, ING_CLIENT_ACCEPTED);
    assert_int_equal(q1("SELECT count(*) FROM crashes WHERE source = 'upload'", NULL), 6);
    assert_int_equal(q1("SELECT count(*) FROM collection_decisions", NULL), 0);
    check_buckets(x, 6);
    for (int i = 0; i < 6; i++)
        unmake(&x[i]);
    e2e_passed();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(known_keys_are_counted_once_and_sampled, setup, teardown),
        cmocka_unit_test_setup_teardown(retries_count_nothing_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_ambiguous_and_keyless_hints_ask_for_the_dump,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(without_a_database_every_hint_asks_for_the_dump, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(no_hint_uploads_every_dump, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
