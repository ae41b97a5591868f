/* test_e2e.c -- the service end to end (issue 4's acceptance): a real PostgreSQL, the real
 * triage-ingest and triage-analyzer programs on loopback, uploads over real HTTP through both
 * routes, results read back from PostgreSQL and compared with `triagectl stackwalk`'s offline
 * analysis of the same files. Faults from RELIABILITY.md section (b): the analyzer killed
 * mid-batch (F04), PostgreSQL stopped under uploads (F01/F02), duplicates (F09), poison dumps
 * (F05); malformed and over-size uploads from section (a). Label: db. */
#define _GNU_SOURCE /* asprintf */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "proto/proto.h"
#include "tests/e2e/e2e_harness.h"
#include "tests/th.h"

/* Generous deadlines: they only catch hangs. */
#define DRAIN_TIMEOUT_S 600
#define PHASE_TIMEOUT_S 180

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

static int test_setup(void **state)
{
    (void)state;
    e2e_db_reset();
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    e2e_cleanup();
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

static void random_hex(char *out, size_t n)
{
    uint8_t b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        fail_msg("getrandom failed");
    out[0] = 0;
    for (size_t i = 0; i < sizeof b && 2 * i + 2 < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return m > 0 && n >= m && strcmp(s + n - m, suffix) == 0;
}

static const struct e2e_dump *corpus_file(const char *rel)
{
    size_t n;
    const struct e2e_dump *c = e2e_corpus(&n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(c[i].rel, rel))
            return &c[i];
    fail_msg("corpus file %s is not among the corpus dumps", rel);
    return NULL;
}

static void assert_accepted(const struct e2e_upload *u, const char *what)
{
    if (!u->accepted)
        fail_msg("%s: not accepted: HTTP %ld reason \"%s\" error \"%s\"", what, u->status,
                 u->reason, u->error);
}

/* ---- what the database must hold ---- */

/* One crash the test expects, with the offline analysis of its dump. */
struct expect {
    char crash_id[37];
    const struct e2e_dump *dump;
    const char *tag; /* the product it was uploaded under (the route and encoding) */
};

struct row {
    char crash_id[37], status[16], bucket[64], product[64];
    char *signature;
};

static int row_cmp(const void *a, const void *b)
{
    return strcmp(((const struct row *)a)->crash_id, ((const struct row *)b)->crash_id);
}

/* Every crash of the project, sorted by id (strcmp order). */
static struct row *load_rows(const char *product, size_t *count)
{
    PGresult *res = e2e_sql("SELECT crash_id::text, status, coalesce(bucket_key, ''),"
                            " coalesce(signature, ''), coalesce(product, '')"
                            " FROM crashes WHERE project = 'default'"
                            " AND ($1 = '' OR product = $1)",
                            (const char *const[]){ product ? product : "", NULL });
    size_t n = (size_t)PQntuples(res);
    struct row *rows = calloc(n ? n : 1, sizeof *rows);
    for (size_t i = 0; i < n; i++) {
        snprintf(rows[i].crash_id, sizeof rows[i].crash_id, "%s", PQgetvalue(res, (int)i, 0));
        snprintf(rows[i].status, sizeof rows[i].status, "%s", PQgetvalue(res, (int)i, 1));
        snprintf(rows[i].bucket, sizeof rows[i].bucket, "%s", PQgetvalue(res, (int)i, 2));
        rows[i].signature = strdup(PQgetvalue(res, (int)i, 3));
        snprintf(rows[i].product, sizeof rows[i].product, "%s", PQgetvalue(res, (int)i, 4));
    }
    PQclear(res);
    qsort(rows, n, sizeof *rows, row_cmp);
    *count = n;
    return rows;
}

static void free_rows(struct row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(rows[i].signature);
    free(rows);
}

/* The database holds exactly the expected crashes (no more; of that product when one is given),
 * each done, in the bucket and with the signature `triagectl stackwalk` gives its file offline. */
static void check_crashes(const struct expect *ex, size_t n, const char *product)
{
    size_t nrows;
    struct row *rows = load_rows(product, &nrows);
    for (size_t i = 0; i < n; i++) {
        struct row key = { 0 };
        snprintf(key.crash_id, sizeof key.crash_id, "%s", ex[i].crash_id);
        const struct row *r = bsearch(&key, rows, nrows, sizeof *rows, row_cmp);
        if (!r)
            fail_msg("crash %s (%s via %s) is not in the database", ex[i].crash_id,
                     ex[i].dump->rel, ex[i].tag);
        if (strcmp(r->status, "done") != 0)
            fail_msg("crash %s (%s via %s) is %s, not done", r->crash_id, ex[i].dump->rel,
                     ex[i].tag, r->status);
        if (strcmp(r->bucket, ex[i].dump->bucket) != 0)
            fail_msg("%s via %s: bucket %s in PostgreSQL, %s offline (signatures \"%s\" / "
                     "\"%s\")",
                     ex[i].dump->rel, ex[i].tag, r->bucket, ex[i].dump->bucket, r->signature,
                     ex[i].dump->signature);
        if (strcmp(r->signature, ex[i].dump->signature) != 0)
            fail_msg("%s via %s: signature \"%s\" in PostgreSQL, \"%s\" offline",
                     ex[i].dump->rel, ex[i].tag, r->signature, ex[i].dump->signature);
        if (strcmp(r->product, ex[i].tag) != 0)
            fail_msg("crash %s: product %s, uploaded as %s", r->crash_id, r->product, ex[i].tag);
    }
    if (nrows != n)
        fail_msg("%zu crashes in the database, %zu expected", nrows, n);
    free_rows(rows, nrows);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Counts of each distinct string. *keys and *counts are owned by the caller (free both). */
static size_t group_strings(char **items, size_t n, char ***keys, long long **counts)
{
    qsort(items, n, sizeof *items, str_cmp);
    *keys = calloc(n ? n : 1, sizeof **keys);
    *counts = calloc(n ? n : 1, sizeof **counts);
    size_t g = 0;
    for (size_t i = 0; i < n; i++) {
        if (g == 0 || strcmp((*keys)[g - 1], items[i]) != 0)
            (*keys)[g++] = items[i];
        (*counts)[g - 1]++;
    }
    return g;
}

static long long count_of(char **keys, const long long *counts, size_t g, const char *key)
{
    char *const *hit = bsearch(&key, keys, g, sizeof *keys, str_cmp);
    return hit ? counts[hit - keys] : 0;
}

/* Counts are exact: per route/encoding and bucket, the analyzed crashes equal the files of that
 * offline bucket; per bucket, crash_count equals the crashes and the expected total, the
 * distinct hosts equal bucket_hosts, and every rollup sums to the same number. */
static void check_counts(const struct expect *ex, size_t n, bool hosts_unique)
{
    char **buckets = calloc(n ? n : 1, sizeof *buckets);
    char **tagged = calloc(n ? n : 1, sizeof *tagged);
    for (size_t i = 0; i < n; i++) {
        buckets[i] = (char *)ex[i].dump->bucket; /* only compared, never written */
        if (asprintf(&tagged[i], "%s %s", ex[i].tag, ex[i].dump->bucket) < 0)
            fail_msg("out of memory");
    }
    char **bkeys, **tkeys;
    long long *bcounts, *tcounts;
    size_t nb = group_strings(buckets, n, &bkeys, &bcounts);
    size_t nt = group_strings(tagged, n, &tkeys, &tcounts);

    /* Per route and encoding. */
    PGresult *res = e2e_sql("SELECT product || ' ' || bucket_key, count(*) FROM crashes"
                            " WHERE project = 'default' AND status = 'done' GROUP BY 1",
                            NULL);
    if ((size_t)PQntuples(res) != nt)
        fail_msg("%d (route, bucket) groups in PostgreSQL, %zu offline", PQntuples(res), nt);
    for (int i = 0; i < PQntuples(res); i++) {
        const char *key = PQgetvalue(res, i, 0);
        long long got = atoll(PQgetvalue(res, i, 1));
        long long want = count_of(tkeys, tcounts, nt, key);
        if (got != want)
            fail_msg("%s: %lld crashes in PostgreSQL, %lld files offline", key, got, want);
    }
    PQclear(res);

    /* Per bucket, and every count that must agree with it. */
    res = e2e_sql(
        "SELECT b.bucket_key, b.crash_count, b.host_count,"
        " (SELECT count(*) FROM crashes c WHERE c.project = b.project"
        "   AND c.bucket_key = b.bucket_key AND c.status = 'done'),"
        " (SELECT coalesce(sum(crash_count), 0) FROM bucket_rollup_minute r"
        "   WHERE r.project = b.project AND r.bucket_key = b.bucket_key),"
        " (SELECT coalesce(sum(crash_count), 0) FROM bucket_rollup_hour r"
        "   WHERE r.project = b.project AND r.bucket_key = b.bucket_key),"
        " (SELECT coalesce(sum(crash_count), 0) FROM bucket_hosts h"
        "   WHERE h.project = b.project AND h.bucket_key = b.bucket_key),"
        " (SELECT count(*) FROM bucket_hosts h"
        "   WHERE h.project = b.project AND h.bucket_key = b.bucket_key)"
        " FROM buckets b WHERE b.project = 'default'",
        NULL);
    if ((size_t)PQntuples(res) != nb)
        fail_msg("%d buckets in PostgreSQL, %zu offline", PQntuples(res), nb);
    for (int i = 0; i < PQntuples(res); i++) {
        const char *key = PQgetvalue(res, i, 0);
        long long v[7];
        for (int k = 0; k < 7; k++)
            v[k] = atoll(PQgetvalue(res, i, k + 1));
        long long want = count_of(bkeys, bcounts, nb, key);
        if (v[0] != want)
            fail_msg("bucket %s: crash_count %lld, %lld offline", key, v[0], want);
        if (v[2] != want)
            fail_msg("bucket %s: %lld done crashes, %lld offline", key, v[2], want);
        if (v[3] != want || v[4] != want)
            fail_msg("bucket %s: rollups sum to %lld (minutes) and %lld (hours), not %lld", key,
                     v[3], v[4], want);
        if (v[5] != want)
            fail_msg("bucket %s: bucket_hosts counts sum to %lld, not %lld", key, v[5], want);
        if (v[1] != v[6])
            fail_msg("bucket %s: host_count %lld, %lld bucket_hosts rows", key, v[1], v[6]);
        if (hosts_unique && v[1] != want)
            fail_msg("bucket %s: host_count %lld, %lld distinct hosts uploaded", key, v[1], want);
    }
    PQclear(res);

    /* The per-module rollups count every analyzed crash with a fault module once. */
    long long modules = e2e_sql_int("SELECT coalesce(sum(crash_count), 0)"
                                    " FROM module_rollup_minute WHERE project = 'default'",
                                    NULL);
    long long with_module = e2e_sql_int("SELECT count(*) FROM crashes WHERE project = 'default'"
                                        " AND status = 'done' AND fault_module IS NOT NULL",
                                        NULL);
    assert_int_equal(modules, with_module);
    long long total = e2e_sql_int("SELECT coalesce(sum(crash_count), 0) FROM bucket_rollup_minute"
                                  " WHERE project = 'default'",
                                  NULL);
    assert_int_equal(total, (long long)n);

    for (size_t i = 0; i < n; i++)
        free(tagged[i]);
    free(tagged);
    free(buckets);
    free(bkeys);
    free(tkeys);
    free(bcounts);
    free(tcounts);
}

/* `triagectl crash ID --json` as a program: the stored crash as responders see it. */
static json_t *triagectl_crash(const char *id)
{
    char ref[48];
    snprintf(ref, sizeof ref, "bp-%s", id); /* the id Breakpad reporters show works too */
    const char *args[] = { "crash", ref, "--json", "--db", e2e_pg_conninfo(), NULL };
    char *out = NULL;
    int rc = e2e_triagectl(args, &out);
    if (rc != 0)
        fail_msg("triagectl crash %s exited %d", ref, rc);
    json_error_t jerr;
    json_t *o = json_loads(out, JSON_DISABLE_EOF_CHECK, &jerr);
    if (!o)
        fail_msg("triagectl crash --json: not JSON: %s", jerr.text);
    free(out);
    return o;
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* ---- 1. every corpus dump through both routes, compared with the offline analysis ---- */

static const struct variant {
    const char *tag;
    enum e2e_route route;
    enum e2e_enc enc;
} VARIANTS[] = {
    { "native-raw", E2E_NATIVE, E2E_RAW },   { "native-zstd", E2E_NATIVE, E2E_ZSTD },
    { "native-gzip", E2E_NATIVE, E2E_GZIP }, { "submit-raw", E2E_SUBMIT, E2E_RAW },
    { "submit-gzip", E2E_SUBMIT, E2E_GZIP },
};
#define NVARIANTS (sizeof VARIANTS / sizeof VARIANTS[0])

static void corpus_through_both_routes_matches_offline_buckets(void **state)
{
    size_t nf;
    const struct e2e_dump *corpus = e2e_corpus(&nf);
    struct e2e_ingest ing = { 0 };
    struct e2e_analyzer an = { 0 };
    e2e_ingest_start(&ing, NULL);
    e2e_analyzer_start(&an, (const char *const[]){ "--workers=2", NULL });

    size_t n = NVARIANTS * nf;
    struct e2e_upload *ups = calloc(n, sizeof *ups);
    char(*hosts)[48] = calloc(n, sizeof *hosts);
    char(*keys)[48] = calloc(n, sizeof *keys);
    char run[40];
    random_hex(run, sizeof run);
    for (size_t v = 0; v < NVARIANTS; v++)
        for (size_t f = 0; f < nf; f++) {
            size_t i = v * nf + f;
            snprintf(hosts[i], sizeof hosts[i], "corpus-%s-%zu", VARIANTS[v].tag, f);
            snprintf(keys[i], sizeof keys[i], "%.16s-%zu", run, i);
            ups[i] = (struct e2e_upload){ .route = VARIANTS[v].route, .enc = VARIANTS[v].enc,
                                          .dump = corpus[f].raw, .dump_len = corpus[f].raw_len,
                                          .zst = corpus[f].zst, .zst_len = corpus[f].zst_len,
                                          .host_id = hosts[i], .product = VARIANTS[v].tag };
            if (VARIANTS[v].route == E2E_NATIVE)
                ups[i].idempotency_key = keys[i];
        }
    e2e_upload_many(ing.port, ups, n, 4);

    struct expect *ex = calloc(n, sizeof *ex);
    for (size_t i = 0; i < n; i++) {
        char what[256];
        snprintf(what, sizeof what, "%s via %s", corpus[i % nf].rel, VARIANTS[i / nf].tag);
        assert_accepted(&ups[i], what);
        if (ups[i].duplicate)
            fail_msg("%s: answered as a duplicate", what);
        snprintf(ex[i].crash_id, sizeof ex[i].crash_id, "%s", ups[i].crash_id);
        ex[i].dump = &corpus[i % nf];
        ex[i].tag = VARIANTS[i / nf].tag;
    }

    struct e2e_counts c;
    e2e_wait_analyzed((long long)n, DRAIN_TIMEOUT_S, &c);
    assert_int_equal(c.total, (long long)n);
    assert_int_equal(c.done, (long long)n);
    assert_int_equal(c.failed + c.dead, 0);
    assert_int_equal(c.jobs_ready + c.jobs_running + c.jobs_dead, 0);
    check_crashes(ex, n, NULL);
    check_counts(ex, n, true);

    /* What a responder sees for one crash of each format equals the offline analysis. */
    const char *samples[] = { "breakpad/testdata/minidump2.dmp",
                              "elfcores/dumps/core.01ec17d51a7ce5bd.zst",
                              "windows-kernel/triage_x64.dmp" };
    for (size_t s = 0; s < sizeof samples / sizeof *samples; s++) {
        const struct e2e_dump *d = corpus_file(samples[s]);
        size_t i = 3 * nf + (size_t)(d - corpus); /* its submit-raw crash */
        json_t *o = triagectl_crash(ex[i].crash_id);
        assert_string_equal(jstr(o, "crash_id"), ex[i].crash_id);
        assert_string_equal(jstr(o, "status"), "done");
        assert_string_equal(jstr(o, "bucket"), d->bucket);
        assert_string_equal(jstr(o, "signature"), d->signature);
        json_decref(o);
    }
    assert_int_equal(e2e_ingest_stop(&ing), 0);
    assert_int_equal(e2e_analyzer_stop(&an), 0);
    free(ex);
    free(keys);
    free(hosts);
    free(ups);
    e2e_passed();
}

/* ---- 2. kill -9 of the analyzer mid-batch ---- */

#define KILL_COPIES 3
#define KILLS 2

static long long jobs_held_by(pid_t pid)
{
    char p[32];
    snprintf(p, sizeof p, "%d", (int)pid);
    return e2e_sql_int("SELECT count(*) FROM jobs WHERE state = 'running'"
                       " AND split_part(lease_owner, ':', 2) = $1",
                       (const char *const[]){ p, NULL });
}

static void analyzer_killed_mid_batch_counts_each_crash_once(void **state)
{
    size_t nf;
    const struct e2e_dump *corpus = e2e_corpus(&nf);
    struct e2e_ingest ing = { 0 };
    e2e_ingest_start(&ing, NULL);
    /* Queue every job first, so each analyzer start finds a long backlog. */
    size_t n = KILL_COPIES * nf;
    struct e2e_upload *ups = calloc(n, sizeof *ups);
    char(*hosts)[48] = calloc(n, sizeof *hosts);
    static const char *const tags[KILL_COPIES] = { "kill-native-zstd", "kill-submit-raw",
                                                   "kill-native-raw" };
    for (size_t i = 0; i < n; i++) {
        size_t copy = i / nf, f = i % nf;
        snprintf(hosts[i], sizeof hosts[i], "kill-%zu-%zu", copy, f);
        ups[i] = (struct e2e_upload){ .route = copy == 1 ? E2E_SUBMIT : E2E_NATIVE,
                                      .enc = copy == 0 ? E2E_ZSTD : E2E_RAW,
                                      .dump = corpus[f].raw, .dump_len = corpus[f].raw_len,
                                      .zst = corpus[f].zst, .zst_len = corpus[f].zst_len,
                                      .host_id = hosts[i], .product = tags[copy] };
    }
    e2e_upload_many(ing.port, ups, n, 4);
    struct expect *ex = calloc(n, sizeof *ex);
    for (size_t i = 0; i < n; i++) {
        assert_accepted(&ups[i], corpus[i % nf].rel);
        snprintf(ex[i].crash_id, sizeof ex[i].crash_id, "%s", ups[i].crash_id);
        ex[i].dump = &corpus[i % nf];
        ex[i].tag = tags[i / nf];
    }
    assert_int_equal(e2e_sql_int("SELECT count(*) FROM jobs WHERE state = 'ready'", NULL),
                     (long long)n);

    /* Start, wait until it holds claimed jobs, kill -9; the jobs it held stay running in the
     * database (nobody finished them): it died mid-batch. */
    const char *const flags[] = { "--workers=2", "--batch=32", "--lease_ms=3000ms", NULL };
    int confirmed = 0;
    for (int round = 0; round < 10 && confirmed < KILLS; round++) {
        long long done_before = e2e_sql_int("SELECT count(*) FROM crashes WHERE status = 'done'",
                                            NULL);
        struct e2e_analyzer an = { 0 };
        e2e_analyzer_start(&an, flags);
        pid_t pid = an.proc.pid;
        /* Kill once it has written results and holds claimed jobs: in the middle of its work. */
        int64_t deadline = mono_ms() + PHASE_TIMEOUT_S * 1000;
        while (jobs_held_by(pid) == 0 ||
               e2e_sql_int("SELECT count(*) FROM crashes WHERE status = 'done'", NULL) ==
                   done_before) {
            if (!e2e_proc_alive(&an.proc))
                fail_msg("the analyzer exited on its own");
            if (mono_ms() > deadline)
                fail_msg("the analyzer never wrote a result while holding jobs");
            sleep_ms(5);
        }
        e2e_proc_kill9(&an.proc);
        char p[32];
        snprintf(p, sizeof p, "%d", (int)pid);
        long long held = jobs_held_by(pid);
        long long analyzing = e2e_sql_int(
            "SELECT count(*) FROM jobs j JOIN crashes c ON c.project = j.project"
            " AND c.crash_id = j.crash_id WHERE j.state = 'running' AND c.status = 'analyzing'"
            " AND split_part(j.lease_owner, ':', 2) = $1",
            (const char *const[]){ p, NULL });
        assert_int_equal(analyzing, held);
        if (held > 0)
            confirmed++;
        fprintf(stderr, "e2e: kill -9 of triage-analyzer pid %d: %lld jobs were running\n",
                (int)pid, held);
        struct e2e_counts c;
        e2e_counts(&c);
        if (c.jobs_ready == 0)
            break; /* nothing left to interrupt */
    }
    if (confirmed < KILLS)
        fail_msg("the analyzer was killed mid-batch only %d times", confirmed);
    /* The held crashes show as analyzing until their lease expires. */
    assert_true(e2e_sql_int("SELECT count(*) FROM crashes WHERE status = 'analyzing'", NULL) > 0);

    /* A restart: the sweep hands the expired leases back; every crash counted exactly once. */
    struct e2e_analyzer an = { 0 };
    e2e_analyzer_start(&an, flags);
    struct e2e_counts c;
    e2e_wait_analyzed((long long)n, DRAIN_TIMEOUT_S, &c);
    assert_int_equal(c.total, (long long)n);
    assert_int_equal(c.done, (long long)n);
    assert_int_equal(c.failed + c.dead, 0);
    assert_int_equal(c.jobs_ready + c.jobs_running + c.jobs_dead, 0);
    check_crashes(ex, n, NULL);
    check_counts(ex, n, true);
    assert_int_equal(e2e_analyzer_stop(&an), 0);
    assert_int_equal(e2e_ingest_stop(&ing), 0);
    free(ex);
    free(hosts);
    free(ups);
    e2e_passed();
}

/* ---- 3. PostgreSQL stopped while uploads continue ---- */

#define OUTAGE_MAX 20000
#define OUTAGE_ACKS 100 /* acknowledgements wanted in each phase */
#define OUTAGES 2       /* pg_ctl stop -m fast, then -m immediate (a server crash) */
#define PHASES (2 * OUTAGES + 1) /* even phases: PostgreSQL up; odd: down */

struct outage {
    uint16_t port;
    const struct e2e_dump *corpus;
    size_t nf;
    struct e2e_upload *ups;
    int *phase_start, *phase_end;
    char (*hosts)[48], (*keys)[48];
    atomic_int phase;
    atomic_bool stop;
    atomic_size_t done;          /* uploads answered */
    atomic_size_t acked[PHASES]; /* acknowledged, started and answered in the same phase */
};

static void *outage_client(void *arg)
{
    struct outage *o = arg;
    for (size_t i = 0; i < OUTAGE_MAX && !atomic_load(&o->stop); i++) {
        const struct e2e_dump *d = &o->corpus[i % o->nf];
        struct e2e_upload *u = &o->ups[i];
        snprintf(o->hosts[i], sizeof o->hosts[i], "outage-%zu", i);
        snprintf(o->keys[i], sizeof o->keys[i], "outage-key-%zu", i);
        bool native = i % 2 == 0;
        *u = (struct e2e_upload){ .route = native ? E2E_NATIVE : E2E_SUBMIT,
                                  .enc = i % 3 == 0 ? E2E_GZIP : i % 3 == 1 ? E2E_ZSTD : E2E_RAW,
                                  .dump = d->raw, .dump_len = d->raw_len, .zst = d->zst,
                                  .zst_len = d->zst_len, .host_id = o->hosts[i],
                                  .idempotency_key = native ? o->keys[i] : NULL,
                                  .product = native ? "outage-native" : "outage-submit" };
        if (!native && u->enc == E2E_ZSTD)
            u->enc = E2E_RAW;
        o->phase_start[i] = atomic_load(&o->phase);
        e2e_upload(o->port, u);
        o->phase_end[i] = atomic_load(&o->phase);
        if (u->accepted && o->phase_start[i] == o->phase_end[i])
            atomic_fetch_add(&o->acked[o->phase_end[i]], 1);
        atomic_store(&o->done, i + 1);
    }
    return NULL;
}

/* Waits until `want` uploads were acknowledged within the current phase. */
static void wait_acks(struct outage *o, size_t want)
{
    int phase = atomic_load(&o->phase);
    int64_t deadline = mono_ms() + PHASE_TIMEOUT_S * 1000;
    while (atomic_load(&o->acked[phase]) < want) {
        if (mono_ms() > deadline || atomic_load(&o->done) >= OUTAGE_MAX) {
            size_t last = atomic_load(&o->done);
            const struct e2e_upload *u = last ? &o->ups[last - 1] : NULL;
            fail_msg("PostgreSQL %s (phase %d): only %zu uploads acknowledged (last answer: "
                     "HTTP %ld reason \"%s\" error \"%s\")",
                     phase % 2 ? "down" : "up", phase, atomic_load(&o->acked[phase]),
                     u ? u->status : 0L, u ? u->reason : "", u ? u->error : "");
        }
        sleep_ms(20);
    }
}

static void wait_health(uint16_t port, const char *prefix)
{
    int64_t deadline = mono_ms() + PHASE_TIMEOUT_S * 1000;
    for (;;) {
        struct e2e_resp r;
        e2e_http(port, "/healthz", NULL, NULL, 0, &r);
        bool match = r.status == 200 && r.body && !strncmp(r.body, prefix, strlen(prefix));
        e2e_resp_free(&r);
        if (match)
            return;
        if (mono_ms() > deadline)
            fail_msg("triage-ingest's /healthz never said \"%s\"", prefix);
        sleep_ms(50);
    }
}

static void postgres_outage_loses_no_acknowledged_upload(void **state)
{
    size_t nf;
    const struct e2e_dump *corpus = e2e_corpus(&nf);
    struct e2e_ingest ing = { 0 };
    struct e2e_analyzer an = { 0 };
    e2e_ingest_start(&ing, (const char *const[]){ "--db_timeout_ms=2000", NULL });
    e2e_analyzer_start(&an, (const char *const[]){ "--workers=2", NULL });

    struct outage *o = calloc(1, sizeof *o);
    o->port = ing.port;
    o->corpus = corpus;
    o->nf = nf;
    o->ups = calloc(OUTAGE_MAX, sizeof *o->ups);
    o->phase_start = calloc(OUTAGE_MAX, sizeof *o->phase_start);
    o->phase_end = calloc(OUTAGE_MAX, sizeof *o->phase_end);
    o->hosts = calloc(OUTAGE_MAX, sizeof *o->hosts);
    o->keys = calloc(OUTAGE_MAX, sizeof *o->keys);
    atomic_init(&o->phase, 0);
    pthread_t client;
    assert_int_equal(pthread_create(&client, NULL, outage_client, o), 0);

    wait_acks(o, OUTAGE_ACKS);
    for (int outage = 0; outage < OUTAGES; outage++) {
        e2e_pg_stop(outage == 1); /* returns once the server is down */
        atomic_fetch_add(&o->phase, 1);
        /* The collector notices, says so, and keeps acknowledging from its spool. */
        wait_acks(o, OUTAGE_ACKS);
        wait_health(ing.port, "degraded");
        atomic_fetch_add(&o->phase, 1);
        e2e_pg_start();
        wait_acks(o, OUTAGE_ACKS);
    }
    atomic_store(&o->stop, true);
    pthread_join(client, NULL);
    wait_health(ing.port, "ok");

    /* Every upload was acknowledged (the spool was far below its high-water mark). */
    size_t sent = atomic_load(&o->done);
    struct expect *ex = calloc(sent, sizeof *ex);
    for (size_t i = 0; i < sent; i++) {
        char what[64];
        snprintf(what, sizeof what, "upload %zu (phase %d..%d)", i, o->phase_start[i],
                 o->phase_end[i]);
        assert_accepted(&o->ups[i], what);
        snprintf(ex[i].crash_id, sizeof ex[i].crash_id, "%s", o->ups[i].crash_id);
        ex[i].dump = &corpus[i % nf];
        ex[i].tag = o->ups[i].product;
    }
    size_t down = 0;
    for (int p = 1; p < PHASES; p += 2)
        down += atomic_load(&o->acked[p]);
    fprintf(stderr, "e2e: %zu uploads, %zu acknowledged while PostgreSQL was down\n", sent, down);

    /* Each acknowledged crash is recorded exactly once and analyzed: the database holds exactly
     * the ids the client was given. */
    struct e2e_counts c;
    e2e_wait_analyzed((long long)sent, DRAIN_TIMEOUT_S, &c);
    assert_int_equal(c.total, (long long)sent);
    assert_int_equal(c.done, (long long)sent);
    check_crashes(ex, sent, NULL);
    check_counts(ex, sent, true);
    assert_int_equal(c.jobs_ready + c.jobs_running + c.jobs_dead, 0);
    /* Nothing waits in the spool any more (the drainer removes each sidecar after recording
     * it), and nothing was quarantined. */
    char pending_dir[400];
    snprintf(pending_dir, sizeof pending_dir, "%s/pending", ing.spool);
    for (int64_t until = mono_ms() + PHASE_TIMEOUT_S * 1000; e2e_count_files(pending_dir);) {
        if (mono_ms() > until)
            fail_msg("files left in the spool:\n%s", e2e_tree_snapshot(pending_dir));
        sleep_ms(50);
    }
    snprintf(pending_dir, sizeof pending_dir, "%s/pending/bad", ing.spool);
    assert_int_equal(e2e_count_files(pending_dir), 0);
    /* Both daemons rode it out. */
    assert_true(e2e_proc_alive(&ing.proc));
    assert_true(e2e_proc_alive(&an.proc));
    assert_int_equal(e2e_analyzer_stop(&an), 0);
    assert_int_equal(e2e_ingest_stop(&ing), 0);
    free(ex);
    free(o->keys);
    free(o->hosts);
    free(o->phase_end);
    free(o->phase_start);
    free(o->ups);
    free(o);
    e2e_passed();
}

/* ---- 4. duplicates; malformed and over-size uploads ---- */

struct dup_race {
    uint16_t port;
    struct e2e_upload u;
};

static void *dup_thread(void *arg)
{
    struct dup_race *r = arg;
    e2e_upload(r->port, &r->u);
    return NULL;
}

static void upload_ok(uint16_t port, struct e2e_upload *u, bool duplicate, const char *what)
{
    e2e_upload(port, u);
    assert_accepted(u, what);
    if (u->route == E2E_NATIVE && u->duplicate != duplicate)
        fail_msg("%s: answered %s", what, u->duplicate ? "duplicate" : "accepted");
}

static void duplicates_are_counted_once(void **state)
{
    const struct e2e_dump *d = corpus_file("breakpad/testdata/minidump2.dmp");
    const struct e2e_dump *d2 = corpus_file("breakpad/testdata/linux_overflow.dmp");
    struct e2e_ingest ing = { 0 };
    struct e2e_analyzer an = { 0 };
    e2e_ingest_start(&ing, NULL);
    e2e_analyzer_start(&an, NULL);
    char k1[48], k2[48];
    random_hex(k1, sizeof k1);
    random_hex(k2, sizeof k2);
    struct e2e_upload base = { .route = E2E_NATIVE, .enc = E2E_ZSTD, .dump = d->raw,
                               .dump_len = d->raw_len, .host_id = "dup-host-1",
                               .idempotency_key = k1, .product = "dup" };
    struct e2e_upload a = base, u;
    upload_ok(ing.port, &a, false, "first upload");
    /* The same idempotency key: a client retry. */
    u = base;
    upload_ok(ing.port, &u, true, "same key");
    assert_string_equal(u.crash_id, a.crash_id);
    /* Same host and dump under another key, without a key, and through the other route. */
    u = base;
    u.idempotency_key = k2;
    u.enc = E2E_RAW;
    upload_ok(ing.port, &u, true, "same host and dump, new key");
    assert_string_equal(u.crash_id, a.crash_id);
    u = base;
    u.idempotency_key = NULL;
    u.enc = E2E_GZIP;
    upload_ok(ing.port, &u, true, "same host and dump, no key");
    assert_string_equal(u.crash_id, a.crash_id);
    u = base;
    u.route = E2E_SUBMIT;
    u.enc = E2E_RAW;
    upload_ok(ing.port, &u, false, "same host and dump via /submit");
    assert_string_equal(u.crash_id, a.crash_id);
    /* The same dump from other hosts is another crash each; so is another dump of the host. */
    struct e2e_upload b = base;
    b.idempotency_key = NULL;
    b.host_id = "dup-host-2";
    upload_ok(ing.port, &b, false, "other host");
    assert_string_not_equal(b.crash_id, a.crash_id);
    struct e2e_upload s1 = base, s2;
    s1.route = E2E_SUBMIT;
    s1.enc = E2E_GZIP;
    s1.host_id = "dup-host-3";
    upload_ok(ing.port, &s1, false, "/submit from a third host");
    assert_string_not_equal(s1.crash_id, a.crash_id);
    assert_string_not_equal(s1.crash_id, b.crash_id);
    s2 = s1;
    upload_ok(ing.port, &s2, false, "/submit again (a reporter resending)");
    assert_string_equal(s2.crash_id, s1.crash_id);
    struct e2e_upload other = base;
    other.dump = d2->raw;
    other.dump_len = d2->raw_len;
    other.idempotency_key = NULL;
    upload_ok(ing.port, &other, false, "another dump of the first host");
    assert_string_not_equal(other.crash_id, a.crash_id);
    /* Eight identical uploads racing: one crash. */
    struct dup_race race[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        race[i] = (struct dup_race){ .port = ing.port, .u = base };
        race[i].u.idempotency_key = NULL;
        race[i].u.host_id = "dup-host-4";
        pthread_create(&t[i], NULL, dup_thread, &race[i]);
    }
    int firsts = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_accepted(&race[i].u, "racing upload");
        assert_string_equal(race[i].u.crash_id, race[0].u.crash_id);
        firsts += !race[i].u.duplicate;
    }
    assert_int_equal(firsts, 1);

    /* Five crashes: a (host 1), b (host 2), s1 (host 3), the race's (host 4), other (host 1). */
    struct expect ex[5] = { { .dump = d, .tag = "dup" }, { .dump = d, .tag = "dup" },
                            { .dump = d, .tag = "dup" }, { .dump = d, .tag = "dup" },
                            { .dump = d2, .tag = "dup" } };
    const char *ids[5] = { a.crash_id, b.crash_id, s1.crash_id, race[0].u.crash_id,
                           other.crash_id };
    for (int i = 0; i < 5; i++)
        snprintf(ex[i].crash_id, sizeof ex[i].crash_id, "%s", ids[i]);
    e2e_wait_analyzed(5, DRAIN_TIMEOUT_S, NULL);
    check_crashes(ex, 5, NULL);
    check_counts(ex, 5, false);
    char bucket_hosts[32];
    e2e_sql_text("SELECT host_count || '/' || crash_count FROM buckets WHERE bucket_key = $1",
                 (const char *const[]){ d->bucket, NULL }, bucket_hosts, sizeof bucket_hosts);
    assert_string_equal(bucket_hosts, "4/4");
    assert_int_equal(e2e_sql_int("SELECT count(*) FROM crash_keys", NULL), 5);
    char dumps[400];
    snprintf(dumps, sizeof dumps, "%s/dumps", ing.spool);
    assert_int_equal(e2e_count_files(dumps), 2); /* one spool file per distinct dump */
    assert_int_equal(e2e_analyzer_stop(&an), 0);
    assert_int_equal(e2e_ingest_stop(&ing), 0);
    e2e_passed();
}

/* Everything the database holds about crashes, as one line. */
static void db_state(char *out, size_t n)
{
    e2e_sql_text("SELECT (SELECT count(*) FROM crash_keys) || ' ' || (SELECT count(*) FROM crashes)"
                 " || ' ' || (SELECT count(*) FROM jobs) || ' ' || (SELECT count(*) FROM buckets)",
                 NULL, out, n);
}

struct bad {
    const char *what;
    bool native;
    const char *const *headers;
    const uint8_t *body;
    size_t len;
    long status;
    const char *reason;
};

/* Sends each request; each must be refused with its status and reason token and change nothing
 * in the spool or the database. */
static void refuse_all(const struct e2e_ingest *ing, const struct bad *cases, size_t n)
{
    char *spool_before = e2e_tree_snapshot(ing->spool);
    char db_before[128], db_after[128];
    db_state(db_before, sizeof db_before);
    for (size_t i = 0; i < n; i++) {
        struct e2e_resp r;
        e2e_http(ing->port, cases[i].native ? "/api/v1/crashes" : "/submit", cases[i].headers,
                 cases[i].body, cases[i].len, &r);
        char reason[64];
        e2e_reply_reason(&r, cases[i].native, reason, sizeof reason);
        if (r.status != cases[i].status || strcmp(reason, cases[i].reason) != 0)
            fail_msg("%s: HTTP %ld \"%s\" (%s), expected %ld \"%s\"", cases[i].what, r.status,
                     reason, r.error, cases[i].status, cases[i].reason);
        e2e_resp_free(&r);
        char *spool_after = e2e_tree_snapshot(ing->spool);
        if (strcmp(spool_before, spool_after) != 0)
            fail_msg("%s left something in the spool:\nbefore:\n%s\nafter:\n%s", cases[i].what,
                     spool_before, spool_after);
        free(spool_after);
        db_state(db_after, sizeof db_after);
        if (strcmp(db_before, db_after) != 0)
            fail_msg("%s changed the database: %s -> %s", cases[i].what, db_before, db_after);
    }
    free(spool_before);
}

static void malformed_get_400_oversize_413_and_leave_nothing(void **state)
{
    const struct e2e_dump *d = corpus_file("breakpad/testdata/minidump2.dmp");
    const struct e2e_dump *big = corpus_file("breakpad/testdata/stack_exhaustion.dmp");
    struct e2e_ingest ing = { 0 };
    e2e_ingest_start(&ing, NULL);
    /* One good upload first, so the spool and the database are not empty. */
    struct e2e_upload good = { .route = E2E_SUBMIT, .dump = d->raw, .dump_len = d->raw_len,
                               .host_id = "malformed-host" };
    e2e_upload(ing.port, &good);
    assert_accepted(&good, "the good upload");

    static const char *const PB[] = { "Content-Type: application/x-protobuf", NULL };
    static const char *const MP[] = { "Content-Type: multipart/form-data; boundary=e2eb", NULL };
    static const char *const MP_GZ[] = { "Content-Type: multipart/form-data; boundary=e2eb",
                                         "Content-Encoding: gzip", NULL };
    static const char *const MP_NOB[] = { "Content-Type: multipart/form-data", NULL };
    struct e2e_upload meta = { .host_id = "malformed-host-2", .product = "bad" };
    /* A length-delimited field claiming far more bytes than follow (RELIABILITY.md P02). */
    static const uint8_t not_pb[] = { 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 'x' };
    static const char not_dump[] = "this is a text file, not a crash dump";
    uint8_t *env_text, *env_empty, *env_trunc, *env_rawzstd, *env_rawgz;
    size_t n_text, n_empty, n_trunc, n_rawzstd, n_rawgz, zn;
    e2e_envelope(&meta, (const uint8_t *)not_dump, sizeof not_dump - 1, PROTO_COMP_NONE,
                 &env_text, &n_text);
    e2e_envelope(&meta, (const uint8_t *)"", 0, PROTO_COMP_NONE, &env_empty, &n_empty);
    uint8_t *z = e2e_zstd(d->raw, d->raw_len, &zn);
    e2e_envelope(&meta, z, zn - 100, PROTO_COMP_ZSTD, &env_trunc, &n_trunc); /* Z05 */
    e2e_envelope(&meta, d->raw, d->raw_len, PROTO_COMP_ZSTD, &env_rawzstd, &n_rawzstd); /* Z10 */
    e2e_envelope(&meta, d->raw, d->raw_len, PROTO_COMP_GZIP, &env_rawgz, &n_rawgz);

    struct cm_buf no_dump, text_dump, truncated;
    cm_buf_init(&no_dump, 0);
    cm_buf_printf(&no_dump, NULL,
                  "--e2eb\r\nContent-Disposition: form-data; name=\"prod\"\r\n\r\nbad\r\n"
                  "--e2eb--\r\n");
    cm_buf_init(&text_dump, 0);
    cm_buf_printf(&text_dump, NULL,
                  "--e2eb\r\nContent-Disposition: form-data; name=\"upload_file_minidump\"; "
                  "filename=\"a.dmp\"\r\nContent-Type: application/octet-stream\r\n\r\n%s\r\n"
                  "--e2eb--\r\n",
                  not_dump);
    cm_buf_init(&truncated, 0);
    cm_buf_printf(&truncated, NULL,
                  "--e2eb\r\nContent-Disposition: form-data; name=\"upload_file_minidump\"; "
                  "filename=\"a.dmp\"\r\nContent-Type: application/octet-stream\r\n\r\n");
    cm_buf_append(&truncated, d->raw, d->raw_len / 2, NULL); /* B02: no closing boundary */

    const struct bad bad[] = {
        { "native: not protobuf", true, PB, not_pb, sizeof not_pb, 400, "bad_envelope" },
        { "native: not a dump", true, PB, env_text, n_text, 400, "bad_magic" },
        { "native: empty dump", true, PB, env_empty, n_empty, 400, "missing_field:dump" },
        { "native: truncated zstd", true, PB, env_trunc, n_trunc, 400, "zstd_truncated" },
        { "native: raw bytes said zstd", true, PB, env_rawzstd, n_rawzstd, 400,
          "zstd_bad_magic" },
        { "native: raw bytes said gzip", true, PB, env_rawgz, n_rawgz, 400, "bad_gzip" },
        { "submit: no minidump part", false, MP, no_dump.data, no_dump.len, 400,
          "missing_minidump" },
        { "submit: not a dump", false, MP, text_dump.data, text_dump.len, 400, "bad_magic" },
        { "submit: gzip said, plain sent", false, MP_GZ, text_dump.data, text_dump.len, 400,
          "bad_gzip" },
        { "submit: no boundary", false, MP_NOB, text_dump.data, text_dump.len, 400,
          "no_boundary" },
        { "submit: truncated body", false, MP, truncated.data, truncated.len, 400,
          "invalid_payload_structure" },
    };
    refuse_all(&ing, bad, sizeof bad / sizeof *bad);

    /* Over-size, against a collector with small limits: bodies past the request cap, and
     * small bodies that inflate past the dump cap (the streaming cap, not a declared size). */
    struct e2e_ingest small = { 0 };
    e2e_ingest_start(&small, (const char *const[]){ "--max_request_bytes=256K",
                                                    "--max_part_bytes=256K",
                                                    "--max_dump_bytes=512K", NULL });
    assert_true(big->raw_len > 512 * 1024);
    size_t bz_n, bg_n;
    uint8_t *bz = e2e_zstd(big->raw, big->raw_len, &bz_n);
    uint8_t *bg = e2e_gzip(big->raw, big->raw_len, &bg_n);
    assert_true(bz_n < 256 * 1024 && bg_n < 256 * 1024);
    uint8_t *env_big, *env_bz, *env_bg;
    size_t n_big, n_bz, n_bg;
    e2e_envelope(&meta, big->raw, big->raw_len, PROTO_COMP_NONE, &env_big, &n_big);
    e2e_envelope(&meta, bz, bz_n, PROTO_COMP_ZSTD, &env_bz, &n_bz);
    e2e_envelope(&meta, bg, bg_n, PROTO_COMP_GZIP, &env_bg, &n_bg);
    struct cm_buf mp_big;
    cm_buf_init(&mp_big, 0);
    cm_buf_printf(&mp_big, NULL,
                  "--e2eb\r\nContent-Disposition: form-data; name=\"upload_file_minidump\"; "
                  "filename=\"a.dmp\"\r\nContent-Type: application/octet-stream\r\n\r\n");
    cm_buf_append(&mp_big, big->raw, big->raw_len, NULL);
    cm_buf_printf(&mp_big, NULL, "\r\n--e2eb--\r\n");
    size_t mp_gz_n;
    uint8_t *mp_gz = e2e_gzip(mp_big.data, mp_big.len, &mp_gz_n);
    const struct bad over[] = {
        { "native: body over the request cap", true, PB, env_big, n_big, 413, "too_large" },
        { "native: zstd inflating past the dump cap", true, PB, env_bz, n_bz, 413, "too_large" },
        { "native: gzip inflating past the dump cap", true, PB, env_bg, n_bg, 413, "too_large" },
        { "submit: body over the request cap", false, MP, mp_big.data, mp_big.len, 413,
          "too_large" },
        { "submit: gzip body inflating past the cap", false, MP_GZ, mp_gz, mp_gz_n, 413,
          "too_large" },
    };
    refuse_all(&small, over, sizeof over / sizeof *over);
    /* The good upload is still the only crash. */
    assert_int_equal(e2e_sql_int("SELECT count(*) FROM crashes", NULL), 1);

    assert_int_equal(e2e_ingest_stop(&small), 0);
    assert_int_equal(e2e_ingest_stop(&ing), 0);
    free(mp_gz);
    cm_buf_free(&mp_big);
    free(env_bg);
    free(env_bz);
    free(env_big);
    free(bg);
    free(bz);
    cm_buf_free(&truncated);
    cm_buf_free(&text_dump);
    cm_buf_free(&no_dump);
    free(env_rawgz);
    free(env_rawzstd);
    free(env_trunc);
    free(z);
    free(env_empty);
    free(env_text);
    e2e_passed();
}

/* ---- 5. poison dumps ---- */

#define JOB_TIMEOUT_MS 1000

/* A distinct file with minidump magic whose stream directory points past its end. */
static size_t fake_minidump(uint8_t *out, size_t cap)
{
    static const uint8_t head[] = { 'M', 'D', 'M', 'P', 0x93, 0xa7, 0, 0, 1, 0, 0, 0,
                                    0xf0, 0xff, 0xff, 0x7f };
    memcpy(out, head, sizeof head);
    char hex[40];
    random_hex(hex, sizeof hex);
    size_t n = sizeof head;
    n += (size_t)snprintf((char *)out + n, cap - n, "poison-%s", hex);
    return n;
}

static void spool_path_of(const char *id, char *out, size_t n)
{
    e2e_sql_text("SELECT spool_path FROM crashes WHERE crash_id = $1::uuid",
                 (const char *const[]){ id, NULL }, out, n);
    if (!out[0])
        fail_msg("crash %s has no spool path", id);
}

static long long metric(const char *text, const char *name)
{
    char want[160];
    snprintf(want, sizeof want, "\n%s ", name);
    const char *p = strstr(text, want);
    if (!p)
        fail_msg("metric %s missing", name);
    return atoll(p + strlen(want));
}

static void poison_dumps_never_block_other_jobs(void **state)
{
    size_t nf;
    const struct e2e_dump *corpus = e2e_corpus(&nf);
    struct e2e_ingest ing = { 0 };
    e2e_ingest_start(&ing, NULL);
    char dir[256];
    e2e_tmpdir("poison", dir, sizeof dir);

    /* Four poisons, each a distinct dump (its own spool file), mixed among good dumps. */
    enum { READER_ERROR, NOT_A_DUMP, CHILD_DIES, CHILD_HANGS, NPOISON };
    static const char *const poison_name[NPOISON] = { "reader error", "not a dump",
                                                      "child dies", "child hangs" };
    uint8_t fakes[NPOISON][128];
    size_t fake_len[NPOISON];
    struct e2e_upload poison[NPOISON];
    for (int p = 0; p < NPOISON; p++) {
        fake_len[p] = fake_minidump(fakes[p], sizeof fakes[p]);
        char host[48];
        snprintf(host, sizeof host, "poison-%d", p);
        poison[p] = (struct e2e_upload){ .route = p % 2 ? E2E_SUBMIT : E2E_NATIVE,
                                         .dump = fakes[p], .dump_len = fake_len[p],
                                         .host_id = host, .product = "poison" };
        e2e_upload(ing.port, &poison[p]);
        assert_accepted(&poison[p], poison_name[p]);
    }
    struct e2e_upload *ups = calloc(nf, sizeof *ups);
    char(*hosts)[48] = calloc(nf, sizeof *hosts);
    for (size_t f = 0; f < nf; f++) {
        snprintf(hosts[f], sizeof hosts[f], "good-%zu", f);
        ups[f] = (struct e2e_upload){ .route = E2E_NATIVE, .enc = E2E_ZSTD,
                                      .dump = corpus[f].raw, .dump_len = corpus[f].raw_len,
                                      .zst = corpus[f].zst, .zst_len = corpus[f].zst_len,
                                      .host_id = hosts[f], .product = "good" };
    }
    e2e_upload_many(ing.port, ups, nf, 4);
    struct expect *ex = calloc(nf, sizeof *ex);
    for (size_t f = 0; f < nf; f++) {
        assert_accepted(&ups[f], corpus[f].rel);
        snprintf(ex[f].crash_id, sizeof ex[f].crash_id, "%s", ups[f].crash_id);
        ex[f].dump = &corpus[f];
        ex[f].tag = "good";
    }

    /* Poison the spool: garbage that is no dump; a folder where the file was (the child cannot
     * read it and exits); a FIFO nobody writes (the child blocks in open() until killed). */
    char path[1024], expected[NPOISON][512], garbage_file[300];
    snprintf(garbage_file, sizeof garbage_file, "%s/reader-error.dmp", dir);
    th_write(garbage_file, fakes[READER_ERROR], fake_len[READER_ERROR]);
    e2e_offline_error(garbage_file, expected[READER_ERROR], sizeof expected[READER_ERROR]);
    static const char garbage[] = "#!/bin/sh\necho this spool file was replaced by a script\n";
    spool_path_of(poison[NOT_A_DUMP].crash_id, path, sizeof path);
    th_write(path, garbage, sizeof garbage - 1);
    e2e_offline_error(path, expected[NOT_A_DUMP], sizeof expected[NOT_A_DUMP]);
    spool_path_of(poison[CHILD_DIES].crash_id, path, sizeof path);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0700), 0);
    e2e_offline_error(path, expected[CHILD_DIES], sizeof expected[CHILD_DIES]);
    spool_path_of(poison[CHILD_HANGS].crash_id, path, sizeof path);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0600), 0);

    char timeout_flag[64];
    snprintf(timeout_flag, sizeof timeout_flag, "--job_timeout_ms=%dms", JOB_TIMEOUT_MS);
    struct e2e_analyzer an = { 0 };
    e2e_analyzer_start(&an, (const char *const[]){ "--workers=2", "--batch=8", timeout_flag,
                                                   NULL });
    struct e2e_counts c;
    e2e_wait_analyzed((long long)nf + NPOISON, DRAIN_TIMEOUT_S, &c);
    assert_int_equal(c.done, (long long)nf);
    assert_int_equal(c.failed, 2);
    assert_int_equal(c.dead, 2);

    /* Every good dump was analyzed and counted as offline. */
    check_crashes(ex, nf, "good");
    check_counts(ex, nf, true);

    /* A dump the reader refuses fails at once, for good, with the reader's own error. */
    for (int p = READER_ERROR; p <= NOT_A_DUMP; p++) {
        const char *id = poison[p].crash_id;
        char status[16], reason[600];
        e2e_sql_text("SELECT status FROM crashes WHERE crash_id = $1::uuid",
                     (const char *const[]){ id, NULL }, status, sizeof status);
        e2e_sql_text("SELECT failure_reason FROM crashes WHERE crash_id = $1::uuid",
                     (const char *const[]){ id, NULL }, reason, sizeof reason);
        if (strcmp(status, "failed") != 0 || !ends_with(reason, expected[p]))
            fail_msg("%s: crash is %s with \"%s\"; the reader says \"%s\"", poison_name[p],
                     status, reason, expected[p]);
        assert_int_equal(e2e_sql_int("SELECT count(*) FROM jobs WHERE crash_id = $1::uuid",
                                     (const char *const[]){ id, NULL }),
                         0); /* no retry is pending */
        fprintf(stderr, "e2e: %s: failed: %s\n", poison_name[p], reason);
        json_t *o = triagectl_crash(id);
        assert_string_equal(jstr(o, "status"), "failed");
        assert_true(ends_with(jstr(o, "failure_reason"), expected[p]));
        json_decref(o);
    }
    /* A dump whose child dies or hangs is retried, then dead-lettered with the error. */
    for (int p = CHILD_DIES; p <= CHILD_HANGS; p++) {
        const char *id = poison[p].crash_id;
        PGresult *res = e2e_sql("SELECT j.state, j.attempts, j.max_attempts,"
                                " coalesce(j.last_error, ''), c.status,"
                                " coalesce(c.failure_reason, '')"
                                " FROM jobs j JOIN crashes c ON c.project = j.project"
                                " AND c.crash_id = j.crash_id WHERE j.crash_id = $1::uuid",
                                (const char *const[]){ id, NULL });
        if (PQntuples(res) != 1)
            fail_msg("%s: no dead-letter job", poison_name[p]);
        const char *last_error = PQgetvalue(res, 0, 3);
        if (strcmp(PQgetvalue(res, 0, 0), "dead") != 0 || strcmp(PQgetvalue(res, 0, 4), "dead"))
            fail_msg("%s: job %s, crash %s", poison_name[p], PQgetvalue(res, 0, 0),
                     PQgetvalue(res, 0, 4));
        assert_int_equal(atoi(PQgetvalue(res, 0, 1)), atoi(PQgetvalue(res, 0, 2)));
        assert_true(last_error[0] != 0);
        assert_string_equal(PQgetvalue(res, 0, 5), last_error);
        char limit[32];
        snprintf(limit, sizeof limit, "%d ms", JOB_TIMEOUT_MS);
        if (p == CHILD_HANGS && !strstr(last_error, limit))
            fail_msg("a hung child's error does not name the limit: %s", last_error);
        if (p == CHILD_DIES && !ends_with(last_error, expected[p]))
            fail_msg("the dead letter's error \"%s\" is not the reader's \"%s\"", last_error,
                     expected[p]);
        fprintf(stderr, "e2e: %s: dead after %s attempts: %s\n", poison_name[p],
                PQgetvalue(res, 0, 1), last_error);
        json_t *o = triagectl_crash(id);
        assert_string_equal(jstr(o, "status"), "dead");
        assert_string_equal(jstr(o, "last_error"), last_error);
        assert_int_equal(json_integer_value(json_object_get(o, "attempts")),
                         atoi(PQgetvalue(res, 0, 2)));
        json_decref(o);
        PQclear(res);
    }
    /* The daemon saw exactly the children the poisons cost, and lived. */
    struct e2e_resp r;
    e2e_http(an.port, "/metrics", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    long long attempts = e2e_sql_int("SELECT max_attempts FROM jobs WHERE state = 'dead' LIMIT 1",
                                     NULL);
    assert_int_equal(metric(r.body, "triage_analyzer_child_timeouts_total"), attempts);
    assert_int_equal(metric(r.body, "triage_analyzer_child_crashes_total"), attempts);
    assert_int_equal(metric(r.body, "triage_analyzer_jobs_failed_total"), 2);
    assert_int_equal(metric(r.body, "triage_analyzer_jobs_done_total"), (long long)nf);
    e2e_resp_free(&r);
    assert_true(e2e_proc_alive(&an.proc));
    assert_int_equal(e2e_analyzer_stop(&an), 0);
    assert_int_equal(e2e_ingest_stop(&ing), 0);
    free(ex);
    free(hosts);
    free(ups);
    e2e_passed();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(corpus_through_both_routes_matches_offline_buckets,
                                        test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(analyzer_killed_mid_batch_counts_each_crash_once,
                                        test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(postgres_outage_loses_no_acknowledged_upload, test_setup,
                                        test_teardown),
        cmocka_unit_test_setup_teardown(duplicates_are_counted_once, test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(malformed_get_400_oversize_413_and_leave_nothing,
                                        test_setup, test_teardown),
        cmocka_unit_test_setup_teardown(poison_dumps_never_block_other_jobs, test_setup,
                                        test_teardown),
    };
    /* E2E_FILTER=pattern runs only the matching tests (cmocka's wildcards), for debugging. */
    const char *filter = getenv("E2E_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
