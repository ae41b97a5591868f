/* bench_db.c -- rows/s into PostgreSQL: the service's two write paths against raw COPY of the
 * same rows into tables with the same columns, indexes and constraints.
 *
 *   bench_db --db URL --profiles FILE.jsonl [--crashes N] [--threads 1,8] [--writers 1,2]
 *            [--batch 16] [--hosts H] [--reps R] [--pg-pid PID] [--parts ingest,results]
 *            [--header]
 *
 * 1. Ingest's path: N crashes recorded with db_crash_insert(), one transaction per crash as the
 *    collector does before it acknowledges (crash_keys, crashes, jobs: 3 rows per crash), by 1
 *    and 8 threads (ingest's default workers), each with its own connection. Against it, the
 *    same rows (read back with COPY TO) copied into scratch tables `bench_*` made with
 *    CREATE TABLE ... (LIKE t INCLUDING ALL): one transaction per crash (BEGIN, three COPYs,
 *    COMMIT) by as many threads, one per --batch crashes (what committing concurrent uploads
 *    together could reach), and all rows in one transaction. Without "ingest" in --parts only
 *    the crashes the second part needs are inserted (8 threads, untimed).
 * 2. The analyzer's path: the N crashes loaded again with their ready jobs, then claimed in
 *    batches (db_jobs_claim, --batch, the analyzer's default 16) and written with
 *    db_result_write() by 1 and 2 writer threads (the analyzer's workers): crash result, bucket
 *    upsert with exact hosts, minute rollups (and, by trigger, hour rollups and the fault-key
 *    map), modules. Only db_result_write is timed. Its rows are the final rows of those tables
 *    (crashes, crash_modules, buckets, bucket_hosts, bucket_rollup_minute/hour,
 *    module_rollup_minute/hour, fault_key_buckets); they are read back and copied into scratch
 *    tables in transactions of --batch crashes (the aggregate tables' rows spread evenly over
 *    the transactions) and in one transaction.
 *
 * The results come from real analyses: --profiles is `triagectl stackwalk --json` output (one
 * processed crash per line: signature, bucket, fault module, modules, the JSON itself); crash i
 * gets profile i mod P and host bench-host-(i mod H), with crash times spread over ten minutes.
 * CPU: this program's own and, with --pg-pid, the PostgreSQL server's (postmaster and backends).
 * Output: one TSV line per measurement. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "bench/service/svc_util.h"
#include "common/cm_alloc.h"
#include "db/db.h"

#define MAX_LEVELS 8
#define MAX_THREADS 64
#define MAX_MODULES 512

/* ---- profiles: real processed crashes ---- */

struct profile {
    json_t *root; /* keeps the strings below alive */
    char *json;   /* the processed crash as JSON */
    const char *signature, *bucket, *crash_kind, *fault_module, *fault_module_version,
        *fault_point, *stack_hash, *fault_key, *rules_version, *dump_format;
    struct db_module *modules;
    size_t module_count;
    char (*kind_buf)[64];
};

static const char *str_of(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && *s ? s : NULL;
}

static bool load_profiles(const char *path, struct profile **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_db: %s: %s\n", path, strerror(errno));
        return false;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    struct profile *p = NULL;
    size_t np = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        json_error_t jerr;
        json_t *root = json_loadb(line, (size_t)n, 0, &jerr);
        if (!root || !str_of(root, "bucket")) {
            json_decref(root);
            continue;
        }
        struct profile *grown = cm_realloc(p, (np + 1) * sizeof *p);
        if (!grown) {
            json_decref(root);
            break;
        }
        p = grown;
        struct profile *q = &p[np++];
        *q = (struct profile){ .root = root };
        q->json = json_dumps(root, JSON_COMPACT);
        q->signature = str_of(root, "signature");
        q->bucket = str_of(root, "bucket");
        q->fault_module = str_of(root, "fault_module");
        q->fault_module_version = str_of(root, "fault_module_version");
        q->fault_point = str_of(root, "fault_point");
        q->stack_hash = str_of(root, "stack_hash");
        q->fault_key = str_of(root, "fault_key");
        q->rules_version = str_of(root, "rules_version");
        q->dump_format = str_of(root, "format");
        /* crash kind: the signature's first part, as the analyzer's reason class */
        q->kind_buf = cm_calloc(1, sizeof *q->kind_buf);
        if (q->kind_buf && q->signature) {
            snprintf(*q->kind_buf, sizeof *q->kind_buf, "%.*s",
                     (int)strcspn(q->signature, " |"), q->signature);
            q->crash_kind = *q->kind_buf;
        }
        json_t *mods = json_object_get(root, "modules");
        size_t nm = json_array_size(mods);
        if (nm > MAX_MODULES)
            nm = MAX_MODULES;
        q->modules = nm ? cm_calloc(nm, sizeof *q->modules) : NULL;
        json_int_t main_index = json_integer_value(json_object_get(root, "main_module"));
        for (size_t i = 0; q->modules && i < nm; i++) {
            json_t *m = json_array_get(mods, i);
            struct db_module *d = &q->modules[q->module_count++];
            d->name = str_of(m, "filename");
            d->version = str_of(m, "version");
            d->debug_file = str_of(m, "debug_file");
            d->debug_id = str_of(m, "debug_id");
            d->code_id = str_of(m, "code_id");
            const char *b = str_of(m, "base_addr"), *e = str_of(m, "end_addr");
            d->base = b ? strtoull(b, NULL, 16) : 0;
            uint64_t end = e ? strtoull(e, NULL, 16) : 0;
            d->size = end > d->base ? end - d->base : 0;
            d->is_main = (json_int_t)i == main_index;
        }
    }
    free(line);
    fclose(f);
    if (np == 0) {
        fprintf(stderr, "bench_db: %s: no processed crash with a bucket\n", path);
        cm_free(p);
        return false;
    }
    *out = p;
    *count = np;
    return true;
}

/* ---- the run's settings and shared state ---- */

struct opts {
    const char *url, *profiles_path;
    size_t crashes, batch;
    unsigned threads[MAX_LEVELS], writers[MAX_LEVELS];
    size_t nthreads, nwriters;
    unsigned hosts, reps;
    pid_t pg_pid;
    bool header;
    bool ingest_part, results_part; /* --parts */
};

static struct opts O;
static struct profile *P;
static size_t NP;
static int64_t base_ms; /* crash times count back from here */

static uint64_t splitmix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

struct meter {
    uint64_t t0;
    double pg0, self0;
};

static void meter_start(struct meter *m)
{
    m->pg0 = O.pg_pid ? svc_proc_tree_cpu_ms(O.pg_pid) : -1;
    m->self0 = (double)svc_self_cpu_ns() / 1e6;
    m->t0 = svc_now_ns();
}

/* One output line. lat (may be NULL) is sorted here. */
static void report(const char *part, const char *method, unsigned threads, size_t batch,
                   size_t crashes, size_t rows, const struct meter *m, double seconds,
                   double *lat, size_t nlat, unsigned rep)
{
    double secs = seconds > 0 ? seconds : (double)(svc_now_ns() - m->t0) / 1e9;
    double pg = O.pg_pid ? svc_proc_tree_cpu_ms(O.pg_pid) - m->pg0 : -1;
    double self = (double)svc_self_cpu_ns() / 1e6 - m->self0;
    struct svc_stats st;
    svc_stats_of(lat, nlat, &st);
    printf("%s\t%s\t%u\t%zu\t%u\t%zu\t%zu\t%.3f\t%.1f\t%.1f\t%.3f\t%.3f\t%.1f\t%.1f\n", part,
           method, threads, batch, rep, crashes, rows, secs, crashes / secs, rows / secs, st.p50,
           st.p99, pg >= 0 && crashes ? pg * 1000 / (double)crashes : -1,
           crashes ? self * 1000 / (double)crashes : -1);
    fflush(stdout);
    fprintf(stderr, "bench_db: %s %s threads=%u rep=%u: %zu crashes, %zu rows in %.2f s = "
                    "%.0f rows/s\n",
            part, method, threads, rep, crashes, rows, secs, rows / secs);
}

/* ---- plain libpq helpers (for COPY and housekeeping) ---- */

static void quiet(void *arg, const char *message)
{
    (void)arg; /* NOTICEs of DROP TABLE IF EXISTS and the like */
    (void)message;
}

static PGconn *pg_connect(void)
{
    PGconn *pg = PQconnectdb(O.url);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "bench_db: cannot connect: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    PQsetNoticeProcessor(pg, quiet, NULL);
    return pg;
}

static bool pg_exec(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "bench_db: %.80s: %s", sql, PQerrorMessage(pg));
    PQclear(r);
    return ok;
}

static long long pg_int(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    long long v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) ? atoll(PQgetvalue(r, 0, 0))
                                                                        : -1;
    PQclear(r);
    return v;
}

/* Rows in COPY text format, one line each: line i is buf[off[i] .. off[i + 1]). */
struct lines {
    char *buf;
    size_t len, cap;
    size_t *off;
    size_t n, ncap;
};

static void lines_free(struct lines *l)
{
    cm_free(l->buf);
    cm_free(l->off);
    *l = (struct lines){ 0 };
}

static bool lines_add(struct lines *l, const char *p, size_t n)
{
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1 << 20;
        while (cap < l->len + n)
            cap *= 2;
        char *b = cm_realloc(l->buf, cap);
        if (!b)
            return false;
        l->buf = b;
        l->cap = cap;
    }
    if (l->n + 2 > l->ncap) {
        size_t cap = l->ncap ? l->ncap * 2 : 4096;
        size_t *o = cm_realloc(l->off, cap * sizeof *o);
        if (!o)
            return false;
        l->off = o;
        l->ncap = cap;
    }
    if (l->n == 0)
        l->off[0] = 0;
    memcpy(l->buf + l->len, p, n);
    l->len += n;
    l->off[++l->n] = l->len;
    return true;
}

/* The table's columns that COPY may write: not identity, not generated. */
static bool columns_of(PGconn *pg, const char *table, char *out, size_t n)
{
    const char *v[1] = { table };
    PGresult *r = PQexecParams(pg,
                               "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)"
                               " FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0"
                               " AND NOT attisdropped AND attidentity = '' AND attgenerated = ''",
                               1, NULL, v, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok)
        snprintf(out, n, "%s", PQgetvalue(r, 0, 0));
    else
        fprintf(stderr, "bench_db: columns of %s: %s", table, PQerrorMessage(pg));
    PQclear(r);
    return ok;
}

static bool copy_out(PGconn *pg, const char *table, const char *cols, const char *order,
                     struct lines *l)
{
    char sql[4096];
    snprintf(sql, sizeof sql, "COPY (SELECT %s FROM %s ORDER BY %s) TO STDOUT", cols, table,
             order);
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        fprintf(stderr, "bench_db: %s: %s", sql, PQerrorMessage(pg));
        PQclear(r);
        return false;
    }
    PQclear(r);
    char *row;
    int n;
    bool ok = true;
    while ((n = PQgetCopyData(pg, &row, 0)) > 0) {
        ok = ok && lines_add(l, row, (size_t)n);
        PQfreemem(row);
    }
    r = PQgetResult(pg);
    ok = ok && n == -1 && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    while ((r = PQgetResult(pg)))
        PQclear(r);
    return ok;
}

/* COPY table (cols) FROM STDIN with lines [from, to). */
static bool copy_in(PGconn *pg, const char *table, const char *cols, const struct lines *l,
                    size_t from, size_t to)
{
    if (to <= from)
        return true;
    char sql[4096];
    snprintf(sql, sizeof sql, "COPY %s (%s) FROM STDIN", table, cols);
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        fprintf(stderr, "bench_db: %s: %s", sql, PQerrorMessage(pg));
        PQclear(r);
        return false;
    }
    PQclear(r);
    size_t a = l->off[from], b = l->off[to];
    bool ok = PQputCopyData(pg, l->buf + a, (int)(b - a)) == 1 && PQputCopyEnd(pg, NULL) == 1;
    r = PQgetResult(pg);
    ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "bench_db: COPY into %s: %s", table, PQerrorMessage(pg));
    PQclear(r);
    while ((r = PQgetResult(pg)))
        PQclear(r);
    return ok;
}

/* Empties the service's tables (as bench_pg reset) and the scratch ones. */
static bool reset_all(PGconn *pg)
{
    return pg_exec(pg, "DO $$ DECLARE t text; BEGIN"
                       " SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') INTO t"
                       " FROM pg_tables WHERE schemaname = current_schema()"
                       " AND tablename <> 'schema_migrations';"
                       " IF t IS NOT NULL THEN EXECUTE 'TRUNCATE ' || t || ' RESTART IDENTITY';"
                       " END IF; END $$") &&
           pg_exec(pg, "CHECKPOINT");
}

/* A scratch copy of each table: same columns, defaults, constraints and indexes; no triggers,
 * not partitioned. */
static bool make_scratch(PGconn *pg, const char *const *tables, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "DROP TABLE IF EXISTS bench_%s; CREATE TABLE bench_%s (LIKE %s INCLUDING ALL)",
                 tables[i], tables[i], tables[i]);
        if (!pg_exec(pg, sql))
            return false;
    }
    return true;
}

/* ---- 1. ingest's write path ---- */

struct insert_ctx {
    atomic_size_t next;
    double *lat; /* per crash, ms */
    atomic_size_t errors;
};

static void *insert_thread(void *arg)
{
    struct insert_ctx *x = arg;
    struct db_conn *db = NULL;
    struct cm_err err = { 0 };
    if (db_open(O.url, NULL, &db, &err) != CM_E_OK) {
        fprintf(stderr, "bench_db: %s\n", err.msg);
        atomic_fetch_add(&x->errors, 1);
        return NULL;
    }
    static const struct db_kv ann[] = { { "channel", "release" }, { "region", "eu-west-1" },
                                        { "gpu", "Contoso Graphics 7100" },
                                        { "uptime_s", "86211" } };
    for (size_t i; (i = atomic_fetch_add(&x->next, 1)) < O.crashes;) {
        const struct profile *p = &P[i % NP];
        char id[DB_UUID_LEN + 1], key[48], host[32], sha[DB_SHA256_HEX + 1], path[160];
        db_uuid_v4(id, NULL);
        snprintf(key, sizeof key, "bench-db-%zu", i);
        snprintf(host, sizeof host, "bench-host-%05u", (unsigned)(i % O.hosts));
        for (int k = 0; k < 4; k++)
            snprintf(sha + 16 * k, 17, "%016" PRIx64, splitmix(i * 4 + (uint64_t)k));
        snprintf(path, sizeof path, "/var/lib/triage/spool/dumps/%s.zst", sha);
        struct db_crash_new c = {
            .crash_id = id, .idempotency_key = key, .host_id = host, .product = "BenchApp",
            .version = "4.2.1", .channel = "release", .os = "Linux", .os_version = "6.1.0",
            .cpu_arch = "amd64", .crash_time_ms = base_ms - (int64_t)(i % 600) * 1000,
            .annotations = ann, .annotation_count = 4, .dump_sha256 = sha,
            .dump_size_bytes = 50000, .spool_path = path,
            .dump_format = p->dump_format ? p->dump_format : "minidump", .source = "upload",
        };
        struct db_crash_ref ref;
        uint64_t t = svc_now_ns();
        if (db_crash_insert(db, &c, &ref, &err) != CM_E_OK || ref.duplicate) {
            fprintf(stderr, "bench_db: crash insert: %s\n", ref.duplicate ? "duplicate" : err.msg);
            atomic_fetch_add(&x->errors, 1);
        }
        x->lat[i] = (double)(svc_now_ns() - t) / 1e6;
    }
    db_close(db);
    return NULL;
}

static bool run_threads(void *(*fn)(void *), void *arg, unsigned n)
{
    pthread_t t[MAX_THREADS];
    unsigned started = 0;
    for (; started < n && started < MAX_THREADS; started++)
        if (pthread_create(&t[started], NULL, fn, arg) != 0)
            break;
    for (unsigned i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    return started == n;
}

static const char *const ingest_tables[] = { "crash_keys", "crashes", "jobs" };
#define N_INGEST 3

/* The rows ingest wrote, read back in crash order, and the columns COPY writes. */
struct table_rows {
    char cols[2048];
    struct lines l;
};

static bool export_tables(PGconn *pg, const char *const *tables, const char *const *order,
                          size_t n, struct table_rows *out)
{
    for (size_t i = 0; i < n; i++) {
        lines_free(&out[i].l);
        if (!columns_of(pg, tables[i], out[i].cols, sizeof out[i].cols) ||
            !copy_out(pg, tables[i], out[i].cols, order[i], &out[i].l))
            return false;
    }
    return true;
}

struct copy_ctx {
    const struct table_rows *rows; /* ingest_tables, one line per crash each */
    size_t per_tx;                 /* crashes per transaction */
    atomic_size_t next;
    double *lat;
    atomic_size_t errors;
};

static void *copy_crash_thread(void *arg)
{
    struct copy_ctx *x = arg;
    PGconn *pg = pg_connect();
    if (!pg) {
        atomic_fetch_add(&x->errors, 1);
        return NULL;
    }
    for (size_t i; (i = atomic_fetch_add(&x->next, x->per_tx)) < O.crashes;) {
        size_t end = i + x->per_tx < O.crashes ? i + x->per_tx : O.crashes;
        uint64_t t = svc_now_ns();
        bool ok = pg_exec(pg, "BEGIN");
        for (size_t k = 0; ok && k < N_INGEST; k++) {
            char table[64];
            snprintf(table, sizeof table, "bench_%s", ingest_tables[k]);
            ok = copy_in(pg, table, x->rows[k].cols, &x->rows[k].l, i, end);
        }
        ok = ok && pg_exec(pg, "COMMIT");
        if (!ok) {
            pg_exec(pg, "ROLLBACK");
            atomic_fetch_add(&x->errors, 1);
        }
        x->lat[i / x->per_tx] = (double)(svc_now_ns() - t) / 1e6;
    }
    PQfinish(pg);
    return NULL;
}

static bool bench_ingest_path(PGconn *pg, struct table_rows *rows)
{
    static const char *const order[] = { "crash_id", "crash_id", "crash_id" };
    double *lat = cm_calloc(O.crashes, sizeof *lat);
    if (!lat)
        return false;
    bool ok = true;
    if (!O.ingest_part) { /* only the crashes the analyzer's path starts from */
        struct insert_ctx x = { .lat = lat };
        ok = reset_all(pg) && run_threads(insert_thread, &x, 8) && !atomic_load(&x.errors) &&
             export_tables(pg, ingest_tables, order, N_INGEST, rows);
        cm_free(lat);
        return ok;
    }
    for (unsigned rep = 1; ok && rep <= O.reps; rep++)
        for (size_t t = 0; ok && t < O.nthreads; t++) {
            ok = reset_all(pg);
            struct insert_ctx x = { .lat = lat };
            struct meter m;
            meter_start(&m);
            ok = ok && run_threads(insert_thread, &x, O.threads[t]) && !atomic_load(&x.errors);
            if (ok)
                report("ingest", "db_crash_insert", O.threads[t], 1, O.crashes, O.crashes * 3, &m,
                       0, lat, O.crashes, rep);
        }
    /* The rows of the last run, for COPY. */
    ok = ok && export_tables(pg, ingest_tables, order, N_INGEST, rows) &&
         make_scratch(pg, ingest_tables, N_INGEST);
    for (size_t k = 0; ok && k < N_INGEST; k++)
        if (rows[k].l.n != O.crashes) {
            fprintf(stderr, "bench_db: %s holds %zu rows, not %zu\n", ingest_tables[k],
                    rows[k].l.n, O.crashes);
            ok = false;
        }
    for (unsigned rep = 1; ok && rep <= O.reps; rep++) {
        for (size_t t = 0; ok && t < O.nthreads; t++) {
            ok = pg_exec(pg, "TRUNCATE bench_crash_keys, bench_crashes, bench_jobs") &&
                 pg_exec(pg, "CHECKPOINT");
            struct copy_ctx x = { .rows = rows, .per_tx = 1, .lat = lat };
            struct meter m;
            meter_start(&m);
            ok = ok && run_threads(copy_crash_thread, &x, O.threads[t]) && !atomic_load(&x.errors);
            if (ok)
                report("ingest", "COPY, a transaction per crash", O.threads[t], 1, O.crashes,
                       O.crashes * 3, &m, 0, lat, O.crashes, rep);
        }
        /* what committing concurrent uploads together could reach: O.batch crashes per
         * transaction, one thread */
        ok = ok && pg_exec(pg, "TRUNCATE bench_crash_keys, bench_crashes, bench_jobs") &&
             pg_exec(pg, "CHECKPOINT");
        if (ok) {
            struct copy_ctx x = { .rows = rows, .per_tx = O.batch, .lat = lat };
            struct meter m;
            meter_start(&m);
            ok = run_threads(copy_crash_thread, &x, 1) && !atomic_load(&x.errors);
            if (ok)
                report("ingest", "COPY, a transaction per batch", 1, O.batch, O.crashes,
                       O.crashes * 3, &m, 0, lat, (O.crashes + O.batch - 1) / O.batch, rep);
        }
        ok = ok && pg_exec(pg, "TRUNCATE bench_crash_keys, bench_crashes, bench_jobs") &&
             pg_exec(pg, "CHECKPOINT");
        struct meter m;
        meter_start(&m);
        ok = ok && pg_exec(pg, "BEGIN");
        for (size_t k = 0; ok && k < N_INGEST; k++) {
            char table[64];
            snprintf(table, sizeof table, "bench_%s", ingest_tables[k]);
            ok = copy_in(pg, table, rows[k].cols, &rows[k].l, 0, rows[k].l.n);
        }
        ok = ok && pg_exec(pg, "COMMIT");
        if (ok)
            report("ingest", "COPY, one transaction", 1, O.crashes, O.crashes, O.crashes * 3, &m,
                   0, NULL, 0, rep);
    }
    cm_free(lat);
    return ok;
}

/* ---- 2. the analyzer's write path ---- */

struct result_ctx {
    atomic_size_t written, batches, errors;
    double *lat; /* per batch, ms */
    atomic_size_t nlat;
    size_t lat_cap;
    _Atomic uint64_t write_ns;
};

static void *result_thread(void *arg)
{
    struct result_ctx *x = arg;
    struct db_conn *db = NULL;
    struct cm_err err = { 0 };
    if (db_open(O.url, NULL, &db, &err) != CM_E_OK) {
        fprintf(stderr, "bench_db: %s\n", err.msg);
        atomic_fetch_add(&x->errors, 1);
        return NULL;
    }
    char worker[64];
    snprintf(worker, sizeof worker, "bench:%d:%lu", (int)getpid(), (unsigned long)pthread_self());
    struct db_result *res = cm_calloc(O.batch, sizeof *res);
    for (;;) {
        struct db_job *jobs = NULL;
        size_t n = 0;
        if (db_jobs_claim(db, worker, O.batch, 300000, &jobs, &n, &err) != CM_E_OK) {
            fprintf(stderr, "bench_db: claim: %s\n", err.msg);
            atomic_fetch_add(&x->errors, 1);
            break;
        }
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            /* the same crash always gets the same profile */
            uint64_t h = 0;
            for (const char *c = jobs[i].crash_id; *c; c++)
                h = h * 31 + (uint64_t)*c;
            const struct profile *p = &P[splitmix(h) % NP];
            res[i] = (struct db_result){
                .job = &jobs[i], .signature = p->signature, .bucket_key = p->bucket,
                .crash_kind = p->crash_kind, .fault_module = p->fault_module,
                .fault_module_version = p->fault_module_version, .fault_point = p->fault_point,
                .stack_hash = p->stack_hash, .fault_key = p->fault_key,
                .processed_json = p->json, .rules_version = p->rules_version,
                .modules = p->modules, .module_count = p->module_count,
            };
        }
        struct db_result_report rep = { 0 };
        uint64_t t = svc_now_ns();
        enum cm_code rc = db_result_write(db, res, n, &rep, &err);
        uint64_t dt = svc_now_ns() - t;
        atomic_fetch_add(&x->write_ns, dt);
        if (rc != CM_E_OK || rep.lost) {
            fprintf(stderr, "bench_db: result write: %s\n", rc ? err.msg : "results lost");
            atomic_fetch_add(&x->errors, 1);
        }
        atomic_fetch_add(&x->written, rep.written);
        size_t k = atomic_fetch_add(&x->nlat, 1);
        if (k < x->lat_cap)
            x->lat[k] = (double)dt / 1e6;
        db_jobs_free(jobs, n);
        if (rc != CM_E_OK)
            break;
    }
    cm_free(res);
    db_close(db);
    return NULL;
}

static const char *const result_tables[] = {
    "crashes",           "crash_modules",        "buckets",           "bucket_hosts",
    "bucket_rollup_minute", "module_rollup_minute", "bucket_rollup_hour", "module_rollup_hour",
    "fault_key_buckets",
};
#define N_RESULT 9
static const char *const result_order[] = {
    "crash_id", "crash_id, module_index", "bucket_key", "bucket_key, host_id",
    "bucket_key, minute", "fault_module, fault_module_version, minute", "bucket_key, hour",
    "fault_module, fault_module_version, hour", "fault_key, bucket_key",
};

/* The second tab-separated field of a COPY line (crash_id in crashes and crash_modules). */
static size_t field2(const struct lines *l, size_t i, const char **p)
{
    const char *a = l->buf + l->off[i], *end = l->buf + l->off[i + 1];
    const char *t1 = memchr(a, '\t', (size_t)(end - a));
    if (!t1) {
        *p = a;
        return 0;
    }
    const char *t2 = memchr(t1 + 1, '\t', (size_t)(end - t1 - 1));
    *p = t1 + 1;
    return t2 ? (size_t)(t2 - t1 - 1) : 0;
}

/* COPY of the result rows in transactions of O.batch crashes: the crashes and their modules in
 * crash order, the rows of the aggregate tables spread evenly. */
static bool copy_results_batched(PGconn *pg, const struct table_rows *rows, double *lat,
                                 size_t *nlat)
{
    const struct lines *cr = &rows[0].l, *mo = &rows[1].l;
    size_t nb = (cr->n + O.batch - 1) / O.batch, m_at = 0;
    *nlat = 0;
    for (size_t b = 0; b < nb; b++) {
        size_t c_from = b * O.batch, c_to = c_from + O.batch < cr->n ? c_from + O.batch : cr->n;
        /* modules of crashes [c_from, c_to): contiguous, same crash ids in the same order */
        size_t m_from = m_at;
        const char *last_id;
        size_t last_len = field2(cr, c_to - 1, &last_id);
        while (m_at < mo->n) {
            const char *id;
            size_t len = field2(mo, m_at, &id);
            /* stop at the first module of a crash after the batch's last */
            if (len == last_len && memcmp(id, last_id, len) > 0)
                break;
            m_at++;
        }
        uint64_t t = svc_now_ns();
        bool ok = pg_exec(pg, "BEGIN") &&
                  copy_in(pg, "bench_crashes", rows[0].cols, cr, c_from, c_to) &&
                  copy_in(pg, "bench_crash_modules", rows[1].cols, mo, m_from, m_at);
        for (size_t k = 2; ok && k < N_RESULT; k++) {
            const struct lines *l = &rows[k].l;
            char table[64];
            snprintf(table, sizeof table, "bench_%s", result_tables[k]);
            ok = copy_in(pg, table, rows[k].cols, l, b * l->n / nb, (b + 1) * l->n / nb);
        }
        ok = ok && pg_exec(pg, "COMMIT");
        if (!ok)
            return false;
        lat[(*nlat)++] = (double)(svc_now_ns() - t) / 1e6;
    }
    if (m_at != mo->n) {
        fprintf(stderr, "bench_db: %zu of %zu module rows copied: crash order differs\n", m_at,
                mo->n);
        return false;
    }
    return true;
}

static bool truncate_scratch(PGconn *pg, const char *const *tables, size_t n)
{
    char sql[1024] = "TRUNCATE ";
    for (size_t i = 0; i < n; i++)
        snprintf(sql + strlen(sql), sizeof sql - strlen(sql), "%sbench_%s", i ? ", " : "",
                 tables[i]);
    return pg_exec(pg, sql) && pg_exec(pg, "CHECKPOINT");
}

static bool bench_result_path(PGconn *pg, const struct table_rows *ingest_rows)
{
    if (!O.results_part)
        return true;
    size_t cap = O.crashes / (O.batch ? O.batch : 1) + 64;
    double *lat = cm_calloc(cap, sizeof *lat);
    struct table_rows *rows = cm_calloc(N_RESULT, sizeof *rows);
    bool ok = lat && rows;
    size_t total_rows = 0;
    for (unsigned rep = 1; ok && rep <= O.reps; rep++)
        for (size_t w = 0; ok && w < O.nwriters; w++) {
            /* the crashes as ingest left them, with their ready jobs */
            ok = reset_all(pg) && pg_exec(pg, "BEGIN");
            for (size_t k = 0; ok && k < N_INGEST; k++)
                ok = copy_in(pg, ingest_tables[k], ingest_rows[k].cols, &ingest_rows[k].l, 0,
                             ingest_rows[k].l.n);
            ok = ok && pg_exec(pg, "COMMIT") && pg_exec(pg, "ANALYZE") &&
                 pg_exec(pg, "CHECKPOINT");
            struct result_ctx x = { .lat = lat, .lat_cap = cap };
            struct meter m;
            meter_start(&m);
            ok = ok && run_threads(result_thread, &x, O.writers[w]) && !atomic_load(&x.errors);
            double wall = (double)(svc_now_ns() - m.t0) / 1e9;
            if (ok && atomic_load(&x.written) != O.crashes) {
                fprintf(stderr, "bench_db: %zu results written, not %zu\n",
                        atomic_load(&x.written), O.crashes);
                ok = false;
            }
            if (!ok)
                break;
            /* rows now in the tables the batch writes (jobs are deleted, one per crash) */
            total_rows = 0;
            for (size_t k = 0; k < N_RESULT; k++) {
                char sql[256];
                snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", result_tables[k]);
                long long c = pg_int(pg, sql);
                total_rows += c > 0 ? (size_t)c : 0;
            }
            /* with several writers, their summed time in db_result_write is divided by their
             * number; the second line is the wall time of claiming and writing */
            double secs = (double)atomic_load(&x.write_ns) / 1e9 / O.writers[w];
            size_t nl = atomic_load(&x.nlat) < cap ? atomic_load(&x.nlat) : cap;
            report("results", "db_result_write", O.writers[w], O.batch, O.crashes, total_rows,
                   &m, secs, lat, nl, rep);
            report("results", "db_jobs_claim + db_result_write, wall", O.writers[w], O.batch,
                   O.crashes, total_rows, &m, wall, NULL, 0, rep);
        }
    ok = ok && export_tables(pg, result_tables, result_order, N_RESULT, rows) &&
         make_scratch(pg, result_tables, N_RESULT);
    size_t copied = 0;
    for (size_t k = 0; ok && k < N_RESULT; k++)
        copied += rows[k].l.n;
    for (unsigned rep = 1; ok && rep <= O.reps; rep++) {
        ok = truncate_scratch(pg, result_tables, N_RESULT);
        size_t nl = 0;
        struct meter m;
        meter_start(&m);
        ok = ok && copy_results_batched(pg, rows, lat, &nl);
        if (ok)
            report("results", "COPY, a transaction per batch", 1, O.batch, O.crashes, copied,
                   &m, 0, lat, nl, rep);
        ok = ok && truncate_scratch(pg, result_tables, N_RESULT);
        meter_start(&m);
        ok = ok && pg_exec(pg, "BEGIN");
        for (size_t k = 0; ok && k < N_RESULT; k++) {
            char table[64];
            snprintf(table, sizeof table, "bench_%s", result_tables[k]);
            ok = copy_in(pg, table, rows[k].cols, &rows[k].l, 0, rows[k].l.n);
        }
        ok = ok && pg_exec(pg, "COMMIT");
        if (ok)
            report("results", "COPY, one transaction", 1, O.crashes, O.crashes, copied, &m, 0,
                   NULL, 0, rep);
    }
    if (ok) {
        fprintf(stderr, "bench_db: result rows:");
        for (size_t k = 0; k < N_RESULT; k++)
            fprintf(stderr, " %s=%zu", result_tables[k], rows[k].l.n);
        fprintf(stderr, "\n");
    }
    for (size_t k = 0; rows && k < N_RESULT; k++)
        lines_free(&rows[k].l);
    cm_free(rows);
    cm_free(lat);
    return ok;
}

/* ---- main ---- */

static int usage(void)
{
    fprintf(stderr, "usage: bench_db --db URL --profiles FILE.jsonl [--crashes N] "
                    "[--threads 1,8] [--writers 1,2] [--batch 16] [--hosts H] [--reps R] "
                    "[--pg-pid PID] [--parts ingest,results] [--header]\n");
    return 2;
}

int main(int argc, char **argv)
{
    O = (struct opts){ .crashes = 4000, .batch = 16, .hosts = 1000, .reps = 3,
                       .ingest_part = true, .results_part = true,
                       .threads = { 1, 8 }, .nthreads = 2, .writers = { 1, 2 }, .nwriters = 2 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--header")) {
            O.header = true;
            continue;
        }
        if (!v)
            return usage();
        i++;
        if (!strcmp(a, "--db"))
            O.url = v;
        else if (!strcmp(a, "--profiles"))
            O.profiles_path = v;
        else if (!strcmp(a, "--crashes"))
            O.crashes = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--batch"))
            O.batch = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--hosts"))
            O.hosts = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--reps"))
            O.reps = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--pg-pid"))
            O.pg_pid = (pid_t)atol(v);
        else if (!strcmp(a, "--threads"))
            O.nthreads = svc_parse_list(v, O.threads, MAX_LEVELS);
        else if (!strcmp(a, "--writers"))
            O.nwriters = svc_parse_list(v, O.writers, MAX_LEVELS);
        else if (!strcmp(a, "--parts")) {
            O.ingest_part = strstr(v, "ingest") != NULL;
            O.results_part = strstr(v, "results") != NULL;
        } else
            return usage();
    }
    if (!O.url || !O.profiles_path || !O.crashes || !O.batch || O.batch > 64 || !O.hosts ||
        !O.reps || !O.nthreads || !O.nwriters)
        return usage();
    for (size_t i = 0; i < O.nthreads; i++)
        if (O.threads[i] > MAX_THREADS)
            return usage();
    if (!load_profiles(O.profiles_path, &P, &NP))
        return 1;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    base_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    PGconn *pg = pg_connect();
    if (!pg)
        return 1;
    if (O.header)
        printf("#part\tmethod\tthreads\tbatch\trep\tcrashes\trows\tseconds\tcrashes_per_s\t"
               "rows_per_s\tp50_ms\tp99_ms\tpg_cpu_us_per_crash\tclient_cpu_us_per_crash\n");
    struct table_rows ingest_rows[N_INGEST] = { 0 };
    bool ok = bench_ingest_path(pg, ingest_rows) && bench_result_path(pg, ingest_rows);
    for (size_t k = 0; k < N_INGEST; k++)
        lines_free(&ingest_rows[k].l);
    if (ok) { /* leave the database empty for what runs next */
        pg_exec(pg, "DROP TABLE IF EXISTS bench_crash_keys, bench_crashes, bench_jobs,"
                    " bench_crash_modules, bench_buckets, bench_bucket_hosts,"
                    " bench_bucket_rollup_minute, bench_module_rollup_minute,"
                    " bench_bucket_rollup_hour, bench_module_rollup_hour,"
                    " bench_fault_key_buckets");
        reset_all(pg);
    }
    PQfinish(pg);
    for (size_t i = 0; i < NP; i++) {
        free(P[i].json);
        cm_free(P[i].modules);
        cm_free(P[i].kind_buf);
        json_decref(P[i].root);
    }
    cm_free(P);
    return ok ? 0 : 1;
}
