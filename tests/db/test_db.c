/* test_db.c -- the db/ layer against a real PostgreSQL (started by pg_harness in the build
 * tree; no mocks): migrations, dedupe, the job queue, batched results, reprocessing, hostile
 * strings, and a server restart in the middle of a transaction. Expected counts come from the
 * inputs each test makes, checked with independent SQL queries. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "db/db.h"
#include "db/db_int.h" /* db__migration_count: versions may have gaps (0010 after 0004) */
#include "tests/db/pg_harness.h"
#include "tests/th.h"

/* ---- helpers ---- */

static struct db_conn *db; /* the tests' main connection */
static PGconn *raw;        /* an independent libpq connection for checks */

/* Runs a db call that must succeed; the caller has a `struct cm_err err` in scope. */
#define OK(call)                                                                                 \
    do {                                                                                         \
        if ((call) != CM_E_OK)                                                                   \
            fail_msg("%s failed: %s", #call, err.msg);                                           \
    } while (0)

static PGresult *q(const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(raw, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK)
        fail_msg("check query failed: %s: %s", sql, PQresultErrorMessage(r));
    return r;
}

/* The single integer a check query returns. */
static long long q_int(const char *sql, int n, const char *const *params)
{
    PGresult *r = q(sql, n, params);
    if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
        PQclear(r);
        fail_msg("check query returned no value: %s", sql);
    }
    long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static void reset_tables(void)
{
    PQclear(q("TRUNCATE crash_keys, crashes, crash_modules, jobs, buckets, bucket_hosts,"
              " bucket_rollup_minute, module_rollup_minute",
              0, NULL));
}

static void sha_of(int i, char out[DB_SHA256_HEX + 1])
{
    snprintf(out, DB_SHA256_HEX + 1, "%064x", i);
}

struct crash_spec {
    const char *key;
    const char *host;
    int dump;          /* sha256 = hex of this number */
    int64_t crash_time_ms;
    int max_attempts;
};

/* Inserts one crash with a fresh crash id; returns the reference. */
static struct db_crash_ref insert_crash(struct db_conn *c, const struct crash_spec *s)
{
    char id[DB_UUID_LEN + 1], sha[DB_SHA256_HEX + 1];
    struct cm_err err = { 0 };
    if (db_uuid_v4(id, &err))
        fail_msg("uuid: %s", err.msg);
    sha_of(s->dump, sha);
    struct db_kv ann[] = { { "channel", "test" } };
    struct db_crash_new n = {
        .crash_id = id, .idempotency_key = s->key, .host_id = s->host, .product = "demo",
        .version = "1.0", .os = "Linux", .crash_time_ms = s->crash_time_ms, .annotations = ann,
        .annotation_count = 1, .dump_sha256 = sha, .dump_size_bytes = 1234,
        .spool_path = "/spool/x.zst", .dump_format = "minidump",
        .max_attempts = s->max_attempts,
    };
    struct db_crash_ref ref;
    if (db_crash_insert(c, &n, &ref, &err) != CM_E_OK)
        fail_msg("crash insert: %s", err.msg);
    return ref;
}

static long long count_rows(const char *table_sql) { return q_int(table_sql, 0, NULL); }

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ---- setup ---- */

static int group_setup(void **state)
{
    (void)state;
    char why[512];
    const char *ci = pgh_start("test_db", why, sizeof why);
    if (!ci) {
        fprintf(stderr, "test_db: cannot start PostgreSQL: %s\n", why);
        return -1;
    }
    struct cm_err err = { 0 };
    if (db_open(ci, NULL, &db, &err) != CM_E_OK) {
        fprintf(stderr, "test_db: cannot connect: %s\n", err.msg);
        return -1;
    }
    struct db_migrate_report rep;
    if (db_migrate(db, &rep, &err) != CM_E_OK) {
        fprintf(stderr, "test_db: migrate: %s\n", err.msg);
        return -1;
    }
    raw = PQconnectdb(ci);
    if (PQstatus(raw) != CONNECTION_OK) {
        fprintf(stderr, "test_db: raw connect: %s\n", PQerrorMessage(raw));
        return -1;
    }
    PQclear(PQexec(raw, "SET TimeZone = 'UTC'"));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    PQfinish(raw);
    db_close(db);
    pgh_stop();
    return 0;
}

static int each_setup(void **state)
{
    (void)state;
    reset_tables();
    return 0;
}

/* ---- migrations ---- */

static void test_migrate_idempotent(void **state)
{
    (void)state;
    struct cm_err err = { 0 };
    struct db_migrate_report rep;
    OK(db_migrate(db, &rep, &err));
    assert_int_equal(rep.applied, 0);
    assert_true(rep.known_version >= 2);
    assert_int_equal(rep.schema_version, rep.known_version);
    /* The database agrees: one row per embedded migration. */
    assert_int_equal(count_rows("SELECT count(*) FROM schema_migrations"), db__migration_count);
}

/* Several processes migrate a fresh database at once: each migration applied exactly once. */
static void test_migrate_concurrent(void **state)
{
    (void)state;
    PQclear(q("DROP DATABASE IF EXISTS race", 0, NULL));
    PQclear(q("CREATE DATABASE race", 0, NULL));
    char ci[600];
    snprintf(ci, sizeof ci, "%s", pgh_conninfo());
    char *p = strstr(ci, "dbname=");
    assert_non_null(p);
    snprintf(p, sizeof ci - (size_t)(p - ci), "dbname=race user=postgres");

    enum { PROCS = 4 };
    pid_t kids[PROCS];
    for (int i = 0; i < PROCS; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            struct db_conn *c = NULL;
            struct cm_err err = { 0 };
            struct db_migrate_report rep = { 0 };
            if (db_open(ci, NULL, &c, &err) || db_migrate(c, &rep, &err))
                _exit(100);
            db_close(c);
            _exit(rep.applied);
        }
    }
    int applied = 0, failures = 0;
    for (int i = 0; i < PROCS; i++) {
        int st;
        waitpid(kids[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) >= 100)
            failures++;
        else
            applied += WEXITSTATUS(st);
    }
    assert_int_equal(failures, 0);

    PGconn *r = PQconnectdb(ci);
    assert_int_equal(PQstatus(r), CONNECTION_OK);
    PGresult *res = PQexec(r, "SELECT count(*), count(DISTINCT version) FROM schema_migrations");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    int rows = atoi(PQgetvalue(res, 0, 0)), distinct = atoi(PQgetvalue(res, 0, 1));
    PQclear(res);
    PQfinish(r);
    struct db_migrate_report rep;
    struct cm_err err = { 0 };
    OK(db_migrate(db, &rep, &err)); /* for known_version */
    assert_true(rep.known_version >= (int)db__migration_count);
    assert_int_equal(rows, db__migration_count);
    assert_int_equal(distinct, db__migration_count);
    assert_int_equal(applied, db__migration_count); /* the processes together applied each once */
    PQclear(q("DROP DATABASE race", 0, NULL));
}

/* ---- crashes ---- */

static void test_insert_dedupe(void **state)
{
    (void)state;
    struct crash_spec a = { .key = "key-1", .host = "host-1", .dump = 1 };
    struct db_crash_ref r1 = insert_crash(db, &a);
    assert_false(r1.duplicate);

    /* Same idempotency key (a retried upload): same crash. */
    struct crash_spec a2 = { .key = "key-1", .host = "host-9", .dump = 99 };
    struct db_crash_ref r2 = insert_crash(db, &a2);
    assert_true(r2.duplicate);
    assert_string_equal(r2.crash_id, r1.crash_id);

    /* No key, same host and dump: same crash. */
    struct crash_spec a3 = { .key = NULL, .host = "host-1", .dump = 1 };
    struct db_crash_ref r3 = insert_crash(db, &a3);
    assert_true(r3.duplicate);
    assert_string_equal(r3.crash_id, r1.crash_id);

    /* Same dump from another host: a different crash. */
    struct crash_spec b = { .key = "key-2", .host = "host-2", .dump = 1 };
    struct db_crash_ref r4 = insert_crash(db, &b);
    assert_false(r4.duplicate);
    assert_string_not_equal(r4.crash_id, r1.crash_id);

    /* No host: never deduped by content. */
    struct crash_spec c = { .key = NULL, .host = NULL, .dump = 1 };
    struct crash_spec c2 = { .key = NULL, .host = NULL, .dump = 1 };
    assert_false(insert_crash(db, &c).duplicate);
    assert_false(insert_crash(db, &c2).duplicate);

    assert_int_equal(count_rows("SELECT count(*) FROM crashes"), 4);
    assert_int_equal(count_rows("SELECT count(*) FROM jobs WHERE state = 'ready'"), 4);
    assert_int_equal(count_rows("SELECT count(*) FROM crash_keys"), 4);
    assert_int_equal(count_rows("SELECT count(*) FROM crashes WHERE project = 'default'"), 4);

    /* A retry with the same crash id (a lost COMMIT reply) is a duplicate of itself. */
    char sha[DB_SHA256_HEX + 1];
    sha_of(7, sha);
    struct db_crash_new n = { .crash_id = "0a0b0c0d-0000-4000-8000-000000000001",
                              .dump_sha256 = sha, .spool_path = "/s" };
    struct db_crash_ref x, y;
    struct cm_err err = { 0 };
    OK(db_crash_insert(db, &n, &x, &err));
    OK(db_crash_insert(db, &n, &y, &err));
    assert_false(x.duplicate);
    assert_true(y.duplicate);
    assert_string_equal(y.crash_id, n.crash_id);

    /* Bad input is refused before reaching SQL. */
    struct db_crash_new bad = n;
    bad.crash_id = "not-a-uuid";
    assert_int_equal(db_crash_insert(db, &bad, &x, &err), CM_E_USAGE);
    bad = n;
    bad.dump_sha256 = "XYZ";
    assert_int_equal(db_crash_insert(db, &bad, &x, &err), CM_E_USAGE);
}

struct racer {
    const char *conninfo;
    const char *key; /* NULL: dedupe by host + dump */
    char crash_id[DB_UUID_LEN + 1];
    bool duplicate;
    enum cm_code rc;
    char msg[256];
};

static pthread_barrier_t race_start;

static void *race_insert(void *arg)
{
    struct racer *r = arg;
    struct db_conn *c = NULL;
    struct cm_err err = { 0 };
    r->rc = db_open(r->conninfo, NULL, &c, &err);
    pthread_barrier_wait(&race_start);
    if (r->rc == CM_E_OK) {
        char id[DB_UUID_LEN + 1], sha[DB_SHA256_HEX + 1];
        db_uuid_v4(id, &err);
        sha_of(42, sha);
        struct db_crash_new n = { .crash_id = id, .idempotency_key = r->key,
                                  .host_id = "racing-host", .dump_sha256 = sha,
                                  .spool_path = "/spool/race.zst" };
        struct db_crash_ref ref;
        r->rc = db_crash_insert(c, &n, &ref, &err);
        snprintf(r->crash_id, sizeof r->crash_id, "%s", ref.crash_id);
        r->duplicate = ref.duplicate;
    }
    snprintf(r->msg, sizeof r->msg, "%s", err.msg);
    db_close(c);
    return NULL;
}

static void race(const char *key)
{
    enum { N = 20 };
    struct racer rs[N];
    pthread_t t[N];
    pthread_barrier_init(&race_start, NULL, N);
    for (int i = 0; i < N; i++) {
        rs[i] = (struct racer){ .conninfo = pgh_conninfo(), .key = key };
        pthread_create(&t[i], NULL, race_insert, &rs[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&race_start);
    int fresh = 0;
    for (int i = 0; i < N; i++) {
        if (rs[i].rc != CM_E_OK)
            fail_msg("racer %d: %s", i, rs[i].msg);
        fresh += !rs[i].duplicate;
        assert_string_equal(rs[i].crash_id, rs[0].crash_id);
    }
    assert_int_equal(fresh, 1);
    assert_int_equal(count_rows("SELECT count(*) FROM crashes"), 1);
    assert_int_equal(count_rows("SELECT count(*) FROM jobs"), 1);
}

static void test_insert_race_key(void **state)
{
    (void)state;
    race("the-same-key");
}

static void test_insert_race_content(void **state)
{
    (void)state;
    race(NULL);
}

/* crash_time is clamped into [received - 7 days, received] for event_at, and flagged. */
static void test_event_time_clamp(void **state)
{
    (void)state;
    int64_t now = wall_ms();
    struct crash_spec past = { .key = "old", .host = "h", .dump = 1, .crash_time_ms = 86400000 };
    struct crash_spec future = { .key = "new", .host = "h", .dump = 2,
                                 .crash_time_ms = now + 86400000LL * 365 };
    struct crash_spec fine = { .key = "ok", .host = "h", .dump = 3,
                               .crash_time_ms = now - 3600 * 1000 };
    struct db_crash_ref a = insert_crash(db, &past), b = insert_crash(db, &future),
                        c = insert_crash(db, &fine);
    const char *pa[] = { a.crash_id }, *pb[] = { b.crash_id }, *pc[] = { c.crash_id };
    const char *sql_off = "SELECT triage_ms(received_at) - triage_ms(event_at) FROM crashes"
                          " WHERE crash_id = $1::uuid";
    const char *sql_flag = "SELECT event_clamped::int FROM crashes WHERE crash_id = $1::uuid";
    assert_int_equal(q_int(sql_off, 1, pa), 7LL * 86400000);
    assert_int_equal(q_int(sql_flag, 1, pa), 1);
    assert_int_equal(q_int(sql_off, 1, pb), 0);
    assert_int_equal(q_int(sql_flag, 1, pb), 1);
    assert_int_equal(q_int(sql_flag, 1, pc), 0);
    const char *sql_ev = "SELECT triage_ms(event_at) FROM crashes WHERE crash_id = $1::uuid";
    assert_int_equal(q_int(sql_ev, 1, pc), fine.crash_time_ms);
    /* The client's own value is kept as given. */
    const char *sql_ct = "SELECT triage_ms(crash_time) FROM crashes WHERE crash_id = $1::uuid";
    assert_int_equal(q_int(sql_ct, 1, pa), past.crash_time_ms);
}

/* Today's crash lands in today's partition; one from 2001 in the default partition. */
static void test_partitions(void **state)
{
    (void)state;
    struct crash_spec s = { .key = "p1", .host = "h", .dump = 1 };
    struct db_crash_ref now_ref = insert_crash(db, &s);
    char sha[DB_SHA256_HEX + 1];
    sha_of(2, sha);
    struct db_crash_new old = { .crash_id = "11111111-2222-4333-8444-555555555555",
                                .received_at_ms = 978307200000LL, /* 2001-01-01 */
                                .dump_sha256 = sha, .spool_path = "/s" };
    struct db_crash_ref old_ref;
    struct cm_err err = { 0 };
    OK(db_crash_insert(db, &old, &old_ref, &err));
    PGresult *r = q("SELECT tableoid::regclass::text, to_char(received_at AT TIME ZONE 'UTC',"
                    " 'YYYYMMDD') FROM crashes WHERE crash_id = $1::uuid",
                    1, (const char *[]){ now_ref.crash_id });
    char want[64];
    snprintf(want, sizeof want, "crashes_%s", PQgetvalue(r, 0, 1));
    assert_string_equal(PQgetvalue(r, 0, 0), want);
    PQclear(r);
    r = q("SELECT tableoid::regclass::text FROM crashes WHERE crash_id = $1::uuid", 1,
          (const char *[]){ old_ref.crash_id });
    assert_string_equal(PQgetvalue(r, 0, 0), "crashes_default");
    PQclear(r);
    /* Partitions exist a week ahead and ensure is idempotent. */
    OK(db_partitions_ensure(db, 7, &err));
    assert_true(count_rows("SELECT count(*) FROM pg_inherits WHERE inhparent = 'crashes'::regclass")
                >= 9 + 1);
}

/* ---- hostile strings ---- */

static void test_injection_stored_exactly(void **state)
{
    (void)state;
    const char *evil[][2] = {
        { "note", "'); DROP TABLE crashes;--" },
        { "'; DELETE FROM jobs; --", "key is hostile too" },
        { "dollar", "$1 $$ $body$ ::uuid" },
        { "backslash", "C:\\Windows\\System32\\ \\x00 \\\\" },
        { "quotes", "\"double\" 'single' `back`" },
        { "json", "{\"a\": [1, 2, {\"b\": null}]}" },
        { "braces", "{\"x\",NULL}" },
        { "lines", "line1\nline2\r\n\tend" },
        { "unicode", "ünïcödé \xe2\x9c\x93 \xf0\x9f\x92\xa5" },
        { "empty", "" },
    };
    size_t n = sizeof evil / sizeof *evil;
    struct db_kv kv[16];
    for (size_t i = 0; i < n; i++)
        kv[i] = (struct db_kv){ evil[i][0], evil[i][1] };
    char sha[DB_SHA256_HEX + 1];
    sha_of(5, sha);
    const char *product = "prod'); DROP TABLE buckets;--";
    struct db_crash_new c = { .crash_id = "22222222-3333-4444-8555-666666666666",
                              .idempotency_key = "k' OR '1'='1", .host_id = "h\\'--",
                              .product = product, .annotations = kv, .annotation_count = n,
                              .dump_sha256 = sha, .spool_path = "/spool/'; rm -rf /" };
    struct db_crash_ref ref;
    struct cm_err err = { 0 };
    OK(db_crash_insert(db, &c, &ref, &err));
    for (size_t i = 0; i < n; i++) {
        const char *p[] = { ref.crash_id, evil[i][0] };
        PGresult *r = q("SELECT annotations ->> $2 FROM crashes WHERE crash_id = $1::uuid", 2, p);
        assert_int_equal(PQntuples(r), 1);
        assert_false(PQgetisnull(r, 0, 0));
        assert_string_equal(PQgetvalue(r, 0, 0), evil[i][1]);
        PQclear(r);
    }
    PGresult *r = q("SELECT product, idempotency_key, host_id, spool_path,"
                    " jsonb_typeof(annotations),"
                    " (SELECT count(*) FROM jsonb_object_keys(annotations))"
                    " FROM crashes WHERE crash_id = $1::uuid",
                    1, (const char *[]){ ref.crash_id });
    assert_string_equal(PQgetvalue(r, 0, 0), product);
    assert_string_equal(PQgetvalue(r, 0, 1), c.idempotency_key);
    assert_string_equal(PQgetvalue(r, 0, 2), c.host_id);
    assert_string_equal(PQgetvalue(r, 0, 3), c.spool_path);
    assert_string_equal(PQgetvalue(r, 0, 4), "object");
    assert_int_equal(atoi(PQgetvalue(r, 0, 5)), (int)n);
    PQclear(r);
    /* Schema intact. */
    assert_int_equal(count_rows("SELECT count(*) FROM crashes"), 1);
    assert_int_equal(count_rows("SELECT count(*) FROM jobs"), 1);
    assert_int_equal(count_rows("SELECT count(*) FROM buckets"), 0);

    /* Invalid UTF-8 is repaired, not rejected (PostgreSQL would refuse it). */
    struct db_kv bad[] = { { "bin", "a\xff\xfe" "b" } };
    struct db_crash_new d = c;
    d.crash_id = "33333333-3333-4444-8555-666666666666";
    d.idempotency_key = "other";
    sha_of(6, sha); /* another dump: same host and dump would be the same crash */
    d.annotations = bad;
    d.annotation_count = 1;
    OK(db_crash_insert(db, &d, &ref, &err));
    r = q("SELECT annotations ->> 'bin' FROM crashes WHERE crash_id = $1::uuid", 1,
          (const char *[]){ ref.crash_id });
    assert_string_equal(PQgetvalue(r, 0, 0), "a\xef\xbf\xbd\xef\xbf\xbd" "b");
    PQclear(r);

    /* The same strings as result fields and module names survive a batch write. */
    struct db_job *jobs = NULL;
    size_t nj = 0;
    OK(db_jobs_claim(db, "w", 10, 60000, &jobs, &nj, &err));
    assert_int_equal(nj, 2);
    struct db_module mods[] = { { .name = "evil'); DROP TABLE crash_modules;--",
                                  .version = "{\"1\",\"2\"}", .debug_id = "\\\"" } };
    struct db_result res[2];
    for (size_t i = 0; i < 2; i++)
        res[i] = (struct db_result){ .job = &jobs[i], .signature = evil[0][1],
                                     .bucket_key = evil[6][1], .fault_module = evil[3][1],
                                     .processed_json = "{\"s\": \"'; --\"}",
                                     .modules = mods, .module_count = 1 };
    struct db_result_report rep;
    OK(db_result_write(db, res, 2, &rep, &err));
    assert_int_equal(rep.written, 2);
    r = q("SELECT signature, crash_count, fault_module FROM buckets WHERE bucket_key = $1", 1,
          (const char *[]){ evil[6][1] });
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), evil[0][1]);
    assert_string_equal(PQgetvalue(r, 0, 1), "2");
    assert_string_equal(PQgetvalue(r, 0, 2), evil[3][1]);
    PQclear(r);
    r = q("SELECT DISTINCT name, version, debug_id FROM crash_modules", 0, NULL);
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), mods[0].name);
    assert_string_equal(PQgetvalue(r, 0, 1), mods[0].version);
    assert_string_equal(PQgetvalue(r, 0, 2), mods[0].debug_id);
    PQclear(r);
    db_jobs_free(jobs, nj);
}

/* ---- the queue ---- */

static void test_claim_disjoint(void **state)
{
    (void)state;
    enum { N = 30 };
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "claim-%d", i);
        struct crash_spec s = { .key = key, .host = "h", .dump = i };
        insert_crash(db, &s);
    }
    struct db_conn *other = pgh_connect();
    struct cm_err err = { 0 };
    struct db_job *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    OK(db_jobs_claim(db, "worker-a", 12, 60000, &a, &na, &err));
    OK(db_jobs_claim(other, "worker-b", 100, 60000, &b, &nb, &err));
    assert_int_equal(na, 12);
    assert_int_equal(nb, N - 12);
    for (size_t i = 0; i < na; i++)
        for (size_t k = 0; k < nb; k++)
            assert_true(a[i].job_id != b[k].job_id);
    for (size_t i = 0; i < na; i++) {
        assert_int_equal(a[i].attempt, 1);
        assert_string_equal(a[i].project, "default");
        assert_string_equal(a[i].dump_format, "minidump");
        assert_string_equal(a[i].spool_path, "/spool/x.zst");
        assert_string_equal(a[i].host_id, "h");
    }
    /* Nothing left, and the claimed crashes are marked analyzing. */
    struct db_job *c = NULL;
    size_t nc = 0;
    OK(db_jobs_claim(db, "worker-c", 10, 60000, &c, &nc, &err));
    assert_int_equal(nc, 0);
    assert_int_equal(count_rows("SELECT count(*) FROM crashes WHERE status = 'analyzing'"), N);
    struct db_queue_depth d;
    OK(db_queue_depth(db, &d, &err));
    assert_int_equal(d.running, N);
    assert_int_equal(d.ready, 0);
    db_jobs_free(a, na);
    db_jobs_free(b, nb);
    db_close(other);
}

/* Two connections claim while holding an open transaction on some rows: SKIP LOCKED never
 * hands out a row another transaction has locked. */
static void test_claim_skips_locked_rows(void **state)
{
    (void)state;
    for (int i = 0; i < 6; i++) {
        char key[32];
        snprintf(key, sizeof key, "lock-%d", i);
        struct crash_spec s = { .key = key, .host = "h", .dump = i };
        insert_crash(db, &s);
    }
    /* raw holds row locks on the two oldest ready jobs. */
    PQclear(q("BEGIN", 0, NULL));
    PGresult *locked = q("SELECT job_id FROM jobs ORDER BY run_after, job_id LIMIT 2 FOR UPDATE",
                         0, NULL);
    struct cm_err err = { 0 };
    struct db_job *j = NULL;
    size_t n = 0;
    OK(db_jobs_claim(db, "w", 10, 60000, &j, &n, &err));
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 2; k++)
            assert_true(j[i].job_id != strtoll(PQgetvalue(locked, k, 0), NULL, 10));
    PQclear(locked);
    PQclear(q("COMMIT", 0, NULL));
    db_jobs_free(j, n);
    OK(db_jobs_claim(db, "w", 10, 60000, &j, &n, &err));
    assert_int_equal(n, 2);
    db_jobs_free(j, n);
}

static void test_lease_expiry(void **state)
{
    (void)state;
    struct crash_spec s = { .key = "lease", .host = "h", .dump = 1 };
    insert_crash(db, &s);
    struct db_conn *w2 = pgh_connect();
    struct cm_err err = { 0 };
    struct db_job *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    OK(db_jobs_claim(db, "dies", 1, 1, &a, &na, &err)); /* a 1 ms lease */
    assert_int_equal(na, 1);
    /* Nobody else can take it before the sweep. */
    OK(db_jobs_claim(w2, "w2", 1, 60000, &b, &nb, &err));
    assert_int_equal(nb, 0);
    sleep_ms(20);
    size_t requeued = 0, dead = 0;
    OK(db_jobs_requeue_expired(w2, &requeued, &dead, &err));
    assert_int_equal(requeued, 1);
    assert_int_equal(dead, 0);
    OK(db_jobs_claim(w2, "w2", 1, 60000, &b, &nb, &err));
    assert_int_equal(nb, 1);
    assert_int_equal(b[0].job_id, a[0].job_id);
    assert_int_equal(b[0].attempt, 2);
    /* The first worker comes back: its claim token is stale, nothing changes. */
    bool lost = false;
    OK(db_job_complete(db, &a[0], &lost, &err));
    assert_true(lost);
    bool lost_hb[1];
    OK(db_jobs_heartbeat(db, a, 1, 60000, lost_hb, &err));
    assert_true(lost_hb[0]);
    struct db_result stale = { .job = &a[0], .signature = "s", .bucket_key = "b" };
    struct db_result_report rep;
    OK(db_result_write(db, &stale, 1, &rep, &err));
    assert_int_equal(rep.written, 0);
    assert_int_equal(rep.lost, 1);
    assert_int_equal(count_rows("SELECT count(*) FROM buckets"), 0);
    /* The holder's heartbeat and completion work. */
    OK(db_jobs_heartbeat(w2, b, 1, 60000, lost_hb, &err));
    assert_false(lost_hb[0]);
    OK(db_job_complete(w2, &b[0], &lost, &err));
    assert_false(lost);
    assert_int_equal(count_rows("SELECT count(*) FROM jobs"), 0);
    assert_int_equal(count_rows("SELECT count(*) FROM crashes WHERE status = 'done'"), 1);
    db_jobs_free(a, na);
    db_jobs_free(b, nb);
    db_close(w2);
}

static void make_due(void) { PQclear(q("UPDATE jobs SET run_after = now()", 0, NULL)); }

static void test_failures_dead_letter(void **state)
{
    (void)state;
    struct crash_spec s = { .key = "poison", .host = "h", .dump = 1, .max_attempts = 3 };
    struct db_crash_ref ref = insert_crash(db, &s);
    struct cm_err err = { 0 };
    for (int attempt = 1; attempt <= 3; attempt++) {
        struct db_job *j = NULL;
        size_t n = 0;
        OK(db_jobs_claim(db, "w", 1, 60000, &j, &n, &err));
        assert_int_equal(n, 1);
        assert_int_equal(j[0].attempt, attempt);
        char msg[64];
        snprintf(msg, sizeof msg, "IO: spool read failed on attempt %d", attempt);
        bool lost = true;
        OK(db_job_fail(db, &j[0], DB_FAIL_RETRY, msg, &lost, &err));
        assert_false(lost);
        if (attempt < 3) {
            /* Backed off: not claimable yet. */
            struct db_job *none = NULL;
            size_t nn = 0;
            OK(db_jobs_claim(db, "w", 1, 60000, &none, &nn, &err));
            assert_int_equal(nn, 0);
            assert_int_equal(count_rows("SELECT count(*) FROM jobs WHERE state = 'ready'"
                                        " AND run_after > now()"), 1);
            make_due();
        }
        db_jobs_free(j, n);
    }
    const char *p[] = { ref.crash_id };
    PGresult *r = q("SELECT j.state, j.attempts, j.last_error, c.status, c.failure_reason"
                    " FROM jobs j JOIN crashes c USING (project, crash_id)"
                    " WHERE c.crash_id = $1::uuid", 1, p);
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), "dead");
    assert_string_equal(PQgetvalue(r, 0, 1), "3");
    assert_string_equal(PQgetvalue(r, 0, 2), "IO: spool read failed on attempt 3");
    assert_string_equal(PQgetvalue(r, 0, 3), "dead");
    assert_string_equal(PQgetvalue(r, 0, 4), "IO: spool read failed on attempt 3");
    PQclear(r);
    struct db_queue_depth d;
    OK(db_queue_depth(db, &d, &err));
    assert_int_equal(d.dead, 1);
    struct db_crash_info *info = NULL;
    OK(db_crash_get(db, NULL, ref.crash_id, &info, &err));
    assert_string_equal(info->status, "dead");
    assert_int_equal(info->attempts, 3);
    assert_string_equal(info->last_error, "IO: spool read failed on attempt 3");
    db_crash_info_free(info);

    /* A worker that keeps dying: dead once the sweep finds the last lease expired. */
    struct crash_spec k = { .key = "killer", .host = "h", .dump = 2, .max_attempts = 2 };
    insert_crash(db, &k);
    for (int attempt = 1; attempt <= 2; attempt++) {
        struct db_job *j = NULL;
        size_t n = 0;
        OK(db_jobs_claim(db, "w", 1, 1, &j, &n, &err));
        assert_int_equal(n, 1);
        sleep_ms(20);
        size_t rq = 0, dd = 0;
        OK(db_jobs_requeue_expired(db, &rq, &dd, &err));
        assert_int_equal(rq, attempt < 2 ? 1 : 0);
        assert_int_equal(dd, attempt < 2 ? 0 : 1);
        db_jobs_free(j, n);
    }
    assert_int_equal(count_rows("SELECT count(*) FROM crashes WHERE status = 'dead'"), 2);

    /* A malformed dump: failed at once with the reader's error, no retry. */
    struct crash_spec m = { .key = "malformed", .host = "h", .dump = 3 };
    struct db_crash_ref mref = insert_crash(db, &m);
    struct db_job *j = NULL;
    size_t n = 0;
    OK(db_jobs_claim(db, "w", 1, 60000, &j, &n, &err));
    assert_int_equal(n, 1);
    OK(db_job_fail(db, &j[0], DB_FAIL_PERMANENT, "CORRUPT: minidump: bad header", NULL, &err));
    db_jobs_free(j, n);
    r = q("SELECT status, failure_reason, (SELECT count(*) FROM jobs j"
          " WHERE j.crash_id = c.crash_id) FROM crashes c WHERE crash_id = $1::uuid",
          1, (const char *[]){ mref.crash_id });
    assert_string_equal(PQgetvalue(r, 0, 0), "failed");
    assert_string_equal(PQgetvalue(r, 0, 1), "CORRUPT: minidump: bad header");
    assert_string_equal(PQgetvalue(r, 0, 2), "0");
    PQclear(r);
}

/* ---- result batches ---- */

/* One planned crash of the batch test. */
struct planned {
    const char *bucket; /* NULL: the dump is malformed */
    const char *host;
    int minute;         /* crash time = base + minute minutes + a few seconds */
    const char *fault_version;
};

static const struct planned plan[] = {
    { "bucket-a", "h1", 0, "1.0" }, { "bucket-a", "h1", 0, "1.0" }, { "bucket-a", "h2", 1, "1.0" },
    { "bucket-a", "h1", 1, "1.1" }, { "bucket-a", "h3", 2, "1.1" }, { "bucket-a", "h2", 2, "1.1" },
    { "bucket-b", "h4", 0, "2.0" }, { "bucket-b", "h4", 1, "2.0" }, { "bucket-b", "h5", 1, "2.0" },
    { "bucket-b", "h4", 1, "2.0" }, { NULL, "h6", 0, NULL },
};
#define PLANNED (sizeof plan / sizeof *plan)
#define MODS_PER_CRASH 3

/* Expected counts from the plan itself. */
static long long plan_count(const char *bucket, int minute /* -1: any */)
{
    long long n = 0;
    for (size_t i = 0; i < PLANNED; i++)
        if (plan[i].bucket && strcmp(plan[i].bucket, bucket) == 0 &&
            (minute < 0 || plan[i].minute == minute))
            n++;
    return n;
}

static long long plan_hosts(const char *bucket)
{
    long long n = 0;
    for (size_t i = 0; i < PLANNED; i++) {
        if (!plan[i].bucket || strcmp(plan[i].bucket, bucket) != 0)
            continue;
        bool seen = false;
        for (size_t k = 0; k < i; k++)
            seen |= plan[k].bucket && strcmp(plan[k].bucket, bucket) == 0 &&
                    strcmp(plan[k].host, plan[i].host) == 0;
        n += !seen;
    }
    return n;
}

static long long plan_version(const char *version)
{
    long long n = 0;
    for (size_t i = 0; i < PLANNED; i++)
        n += plan[i].fault_version && strcmp(plan[i].fault_version, version) == 0;
    return n;
}

static int64_t base_ms;

static void insert_plan(void)
{
    base_ms = (wall_ms() / 60000 - 30) * 60000; /* a whole minute, half an hour ago */
    for (size_t i = 0; i < PLANNED; i++) {
        char key[32];
        snprintf(key, sizeof key, "plan-%zu", i);
        struct crash_spec s = { .key = key, .host = plan[i].host, .dump = (int)i,
                                .crash_time_ms = base_ms + plan[i].minute * 60000 + 7000 };
        insert_crash(db, &s);
    }
}

/* Results for the claimed jobs, matched to the plan by crash key. */
static void make_results(struct db_job *jobs, size_t n, struct db_result *out,
                         struct db_module mods[][MODS_PER_CRASH])
{
    for (size_t i = 0; i < n; i++) {
        const char *p[] = { jobs[i].crash_id };
        PGresult *r = q("SELECT idempotency_key FROM crashes WHERE crash_id = $1::uuid", 1, p);
        size_t k = (size_t)atoi(PQgetvalue(r, 0, 0) + 5);
        PQclear(r);
        assert_true(k < PLANNED);
        const struct planned *pl = &plan[k];
        for (int m = 0; m < MODS_PER_CRASH; m++)
            mods[i][m] = (struct db_module){ .name = m == 0 ? "app" : m == 1 ? "libc.so.6"
                                                                             : "driver.sys",
                                             .version = m == 2 ? pl->fault_version : "1",
                                             .code_id = "abcdef", .base = 0x400000u * (m + 1),
                                             .size = 0x1000, .is_main = m == 0 };
        out[i] = (struct db_result){
            .job = &jobs[i], .failed = pl->bucket == NULL,
            .failure_reason = pl->bucket ? NULL : "CORRUPT: minidump: truncated",
            .signature = pl->bucket ? "SIGSEGV | frame" : NULL, .bucket_key = pl->bucket,
            .crash_kind = "SIGSEGV", .fault_module = pl->bucket ? "driver.sys" : NULL,
            .fault_module_version = pl->fault_version, .fault_point = "driver.sys+0x10",
            .stack_hash = "h", .processed_json = "{\"frames\": [1, 2, 3]}",
            .modules = mods[i], .module_count = MODS_PER_CRASH,
        };
    }
}

static void check_counts(void)
{
    const char *buckets[] = { "bucket-a", "bucket-b" };
    for (int b = 0; b < 2; b++) {
        const char *p[] = { buckets[b] };
        assert_int_equal(q_int("SELECT crash_count FROM buckets WHERE bucket_key = $1", 1, p),
                         plan_count(buckets[b], -1));
        assert_int_equal(q_int("SELECT host_count FROM buckets WHERE bucket_key = $1", 1, p),
                         plan_hosts(buckets[b]));
        assert_int_equal(q_int("SELECT count(*) FROM bucket_hosts WHERE bucket_key = $1", 1, p),
                         plan_hosts(buckets[b]));
        for (int m = 0; m < 3; m++) {
            char ms[32];
            snprintf(ms, sizeof ms, "%lld", (long long)(base_ms + m * 60000));
            const char *pm[] = { buckets[b], ms };
            assert_int_equal(q_int("SELECT coalesce(sum(crash_count), 0) FROM"
                                   " bucket_rollup_minute WHERE bucket_key = $1"
                                   " AND minute = triage_ts($2::bigint)", 2, pm),
                             plan_count(buckets[b], m));
        }
    }
    const char *versions[] = { "1.0", "1.1", "2.0" };
    for (int v = 0; v < 3; v++)
        assert_int_equal(q_int("SELECT coalesce(sum(crash_count), 0) FROM module_rollup_minute"
                               " WHERE fault_module = 'driver.sys' AND fault_module_version = $1",
                               1, (const char *[]){ versions[v] }),
                         plan_version(versions[v]));
    assert_int_equal(count_rows("SELECT sum(crash_count) FROM bucket_rollup_minute"),
                     plan_count("bucket-a", -1) + plan_count("bucket-b", -1));
}

static void test_result_batch(void **state)
{
    (void)state;
    insert_plan();
    struct cm_err err = { 0 };
    struct db_job *jobs = NULL;
    size_t n = 0;
    OK(db_jobs_claim(db, "w", 100, 60000, &jobs, &n, &err));
    assert_int_equal(n, PLANNED);
    struct db_result res[PLANNED];
    struct db_module mods[PLANNED][MODS_PER_CRASH];
    make_results(jobs, n, res, mods);
    struct db_result_report rep;
    OK(db_result_write(db, res, n, &rep, &err));
    assert_int_equal(rep.written, PLANNED);
    assert_int_equal(rep.lost, 0);
    check_counts();
    assert_int_equal(count_rows("SELECT count(*) FROM crash_modules"), PLANNED * MODS_PER_CRASH);
    assert_int_equal(count_rows("SELECT count(*) FROM crashes WHERE status = 'done'"),
                     PLANNED - 1);
    assert_int_equal(count_rows("SELECT count(*) FROM crashes WHERE status = 'failed'"
                                " AND failure_reason = 'CORRUPT: minidump: truncated'"), 1);
    assert_int_equal(count_rows("SELECT count(*) FROM jobs"), 0);
    assert_int_equal(count_rows("SELECT count(*) FROM crashes WHERE processed ->"
                                " 'frames' = '[1, 2, 3]'::jsonb"), PLANNED);

    /* The same batch again (a worker retrying after a lost reply): nothing counts twice. */
    OK(db_result_write(db, res, n, &rep, &err));
    assert_int_equal(rep.written, 0);
    assert_int_equal(rep.lost, PLANNED);
    check_counts();

    /* The API view of the same numbers. */
    struct db_bucket *top = NULL;
    size_t nt = 0;
    OK(db_buckets_top(db, NULL, base_ms - 60000, 10, &top, &nt, &err));
    assert_int_equal(nt, 2);
    const char *first = plan_count("bucket-a", -1) >= plan_count("bucket-b", -1) ? "bucket-a"
                                                                                  : "bucket-b";
    assert_string_equal(top[0].bucket_key, first);
    for (size_t i = 0; i < nt; i++) {
        assert_int_equal(top[i].window_count, plan_count(top[i].bucket_key, -1));
        assert_int_equal(top[i].crash_count, plan_count(top[i].bucket_key, -1));
        assert_int_equal(top[i].host_count, plan_hosts(top[i].bucket_key));
        assert_string_equal(top[i].fault_module, "driver.sys");
        assert_int_equal(top[i].first_seen_ms % 60000, 7000);
    }
    db_buckets_free(top, nt);
    /* A window after the last minute holds nothing. */
    OK(db_buckets_top(db, NULL, base_ms + 10 * 60000, 10, &top, &nt, &err));
    assert_int_equal(nt, 0);
    struct db_bucket *one = NULL;
    OK(db_bucket_get(db, NULL, "bucket-b", &one, &err));
    assert_int_equal(one->crash_count, plan_count("bucket-b", -1));
    db_buckets_free(one, 1);
    assert_int_equal(db_bucket_get(db, NULL, "nope", &one, &err), CM_E_NOTFOUND);
    /* The dashboard views agree. */
    assert_int_equal(count_rows("SELECT sum(window_crashes) FROM top_buckets_24h"),
                     plan_count("bucket-a", -1) + plan_count("bucket-b", -1));
    assert_int_equal(count_rows("SELECT sum(crashes) FROM bucket_rate_per_minute"),
                     plan_count("bucket-a", -1) + plan_count("bucket-b", -1));
    assert_int_equal(count_rows("SELECT crashes FROM crashes_per_fault_module_version_24h"
                                " WHERE fault_module_version = '2.0'"), plan_version("2.0"));
    assert_int_equal(count_rows("SELECT crashes FROM crashes_per_module_version_24h"
                                " WHERE module = 'app'"), PLANNED);

    /* Reprocess bucket-a: its crashes leave the counts, then come back exactly once. */
    size_t requeued = 0;
    struct db_reprocess_filter f = { .bucket_key = "bucket-a" };
    OK(db_reprocess(db, &f, &requeued, &err));
    assert_int_equal(requeued, plan_count("bucket-a", -1));
    assert_int_equal(q_int("SELECT crash_count FROM buckets WHERE bucket_key = 'bucket-a'", 0,
                           NULL), 0);
    assert_int_equal(q_int("SELECT host_count FROM buckets WHERE bucket_key = 'bucket-a'", 0,
                           NULL), 0);
    assert_int_equal(count_rows("SELECT count(*) FROM bucket_rollup_minute"
                                " WHERE bucket_key = 'bucket-a'"), 0);
    assert_int_equal(q_int("SELECT crash_count FROM buckets WHERE bucket_key = 'bucket-b'", 0,
                           NULL), plan_count("bucket-b", -1));
    db_jobs_free(jobs, n);
    OK(db_jobs_claim(db, "w", 100, 60000, &jobs, &n, &err));
    assert_int_equal(n, plan_count("bucket-a", -1));
    make_results(jobs, n, res, mods);
    OK(db_result_write(db, res, n, &rep, &err));
    assert_int_equal(rep.written, n);
    check_counts();
    assert_int_equal(count_rows("SELECT count(*) FROM crash_modules"), PLANNED * MODS_PER_CRASH);
    db_jobs_free(jobs, n);

    /* Reprocess all: everything (done and failed) is queued again. */
    f = (struct db_reprocess_filter){ .all = true };
    OK(db_reprocess(db, &f, &requeued, &err));
    assert_int_equal(requeued, PLANNED);
    assert_int_equal(count_rows("SELECT coalesce(sum(crash_count), 0) FROM buckets"), 0);
    assert_int_equal(count_rows("SELECT count(*) FROM jobs WHERE state = 'ready'"), PLANNED);
    f = (struct db_reprocess_filter){ 0 };
    assert_int_equal(db_reprocess(db, &f, &requeued, &err), CM_E_USAGE);
}

/* ---- faults ---- */

static int restarts_in_hook;

static void restart_hook(struct db_conn *c, const char *what)
{
    (void)c, (void)what;
    if (restarts_in_hook-- <= 0)
        return;
    struct cm_err err = { 0 };
    if (db_cluster_restart(pgh_cluster(), DB_STOP_IMMEDIATE, &err) != CM_E_OK)
        fail_msg("restart: %s", err.msg);
}

extern void (*db__hook_before_commit)(struct db_conn *db, const char *what);

static void test_restart_mid_transaction(void **state)
{
    (void)state;
    insert_plan();
    struct cm_err err = { 0 };
    struct db_job *jobs = NULL;
    size_t n = 0;
    OK(db_jobs_claim(db, "w", 100, 600000, &jobs, &n, &err));
    assert_int_equal(n, PLANNED);
    struct db_result res[PLANNED];
    struct db_module mods[PLANNED][MODS_PER_CRASH];
    make_results(jobs, n, res, mods);
    unsigned reconnects = db_reconnect_count(db);

    /* The server dies between the batch's last statement and its COMMIT. */
    restarts_in_hook = 1;
    db__hook_before_commit = restart_hook;
    struct db_result_report rep;
    enum cm_code rc = db_result_write(db, res, n, &rep, &err);
    db__hook_before_commit = NULL;
    assert_int_equal(rc, CM_E_BUSY);

    /* raw lost its session too. */
    PQreset(raw);
    assert_int_equal(PQstatus(raw), CONNECTION_OK);
    PQclear(PQexec(raw, "SET TimeZone = 'UTC'"));
    assert_int_equal(count_rows("SELECT count(*) FROM buckets"), 0);
    assert_int_equal(count_rows("SELECT count(*) FROM jobs WHERE state = 'running'"), PLANNED);

    /* The retry reconnects and writes everything exactly once. */
    OK(db_result_write(db, res, n, &rep, &err));
    assert_int_equal(rep.written, PLANNED);
    assert_true(db_reconnect_count(db) > reconnects);
    check_counts();
    db_jobs_free(jobs, n);

    /* A restart while idle: the next call reconnects by itself. */
    reconnects = db_reconnect_count(db);
    OK(db_cluster_restart(pgh_cluster(), DB_STOP_FAST, &err));
    OK(db_ping(db, &err));
    assert_true(db_reconnect_count(db) > reconnects);

    /* An insert retried after the server came back is the same crash. */
    struct crash_spec s = { .key = "after-restart", .host = "h", .dump = 1 };
    struct db_crash_ref a = insert_crash(db, &s);
    OK(db_cluster_restart(pgh_cluster(), DB_STOP_IMMEDIATE, &err));
    struct db_crash_ref b = insert_crash(db, &s);
    assert_true(b.duplicate);
    assert_string_equal(a.crash_id, b.crash_id);
    PQreset(raw);
    PQclear(PQexec(raw, "SET TimeZone = 'UTC'"));
}

/* A server that is down: calls fail with CM_E_BUSY (retryable), never hang or crash. */
static void test_server_down(void **state)
{
    (void)state;
    struct cm_err err = { 0 };
    OK(db_cluster_stop(pgh_cluster(), DB_STOP_FAST, &err));
    struct cm_err e2 = { 0 };
    assert_int_equal(db_ping(db, &e2), CM_E_BUSY);
    struct crash_spec s = { .key = "down", .host = "h", .dump = 1 };
    char sha[DB_SHA256_HEX + 1];
    sha_of(s.dump, sha);
    struct db_crash_new n = { .crash_id = "44444444-3333-4444-8555-666666666666",
                              .idempotency_key = s.key, .dump_sha256 = sha, .spool_path = "/s" };
    struct db_crash_ref ref;
    assert_int_equal(db_crash_insert(db, &n, &ref, &e2), CM_E_BUSY);
    assert_true(strlen(e2.msg) > 0);
    /* Start again and carry on: the same connection object reconnects. */
    OK(db_cluster_restart(pgh_cluster(), DB_STOP_FAST, &err));
    OK(db_ping(db, &err));
    OK(db_crash_insert(db, &n, &ref, &err));
    assert_false(ref.duplicate);
    PQreset(raw);
    PQclear(PQexec(raw, "SET TimeZone = 'UTC'"));
}

static void test_misc(void **state)
{
    (void)state;
    struct cm_err err = { 0 };
    char a[DB_UUID_LEN + 1], b[DB_UUID_LEN + 1];
    OK(db_uuid_v4(a, &err));
    OK(db_uuid_v4(b, &err));
    assert_int_equal(strlen(a), DB_UUID_LEN);
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4');
    /* PostgreSQL parses it as a uuid of version 4. */
    assert_int_equal(q_int("SELECT get_byte(uuid_send($1::uuid), 6) >> 4", 1,
                           (const char *[]){ a }), 4);
    /* The cluster can be found from its folder by another process. */
    char ci[512];
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", db_cluster_pgdata(pgh_cluster()));
    *strrchr(dir, '/') = 0;
    OK(db_cluster_conninfo_for(dir, NULL, ci, sizeof ci, &err));
    struct db_conn *c = NULL;
    OK(db_open(ci, NULL, &c, &err));
    OK(db_ping(c, &err));
    db_close(c);
    assert_int_equal(db_cluster_conninfo_for("/nonexistent", NULL, ci, sizeof ci, &err),
                     CM_E_NOTFOUND);
    /* Crash lookups of ids that are no UUID are "not found", never an SQL error. */
    struct db_crash_info *info = NULL;
    assert_int_equal(db_crash_get(db, NULL, "'; DROP TABLE crashes; --", &info, &err),
                     CM_E_NOTFOUND);
    assert_int_equal(db_crash_get(db, NULL, "00000000-0000-4000-8000-000000000000", &info, &err),
                     CM_E_NOTFOUND);
    int64_t backlog = -1;
    OK(db_queue_backlog(db, 10, &backlog, &err));
    assert_int_equal(backlog, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_migrate_idempotent, each_setup),
        cmocka_unit_test_setup(test_migrate_concurrent, each_setup),
        cmocka_unit_test_setup(test_insert_dedupe, each_setup),
        cmocka_unit_test_setup(test_insert_race_key, each_setup),
        cmocka_unit_test_setup(test_insert_race_content, each_setup),
        cmocka_unit_test_setup(test_event_time_clamp, each_setup),
        cmocka_unit_test_setup(test_partitions, each_setup),
        cmocka_unit_test_setup(test_injection_stored_exactly, each_setup),
        cmocka_unit_test_setup(test_claim_disjoint, each_setup),
        cmocka_unit_test_setup(test_claim_skips_locked_rows, each_setup),
        cmocka_unit_test_setup(test_lease_expiry, each_setup),
        cmocka_unit_test_setup(test_failures_dead_letter, each_setup),
        cmocka_unit_test_setup(test_result_batch, each_setup),
        cmocka_unit_test_setup(test_restart_mid_transaction, each_setup),
        cmocka_unit_test_setup(test_server_down, each_setup),
        cmocka_unit_test_setup(test_misc, each_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
