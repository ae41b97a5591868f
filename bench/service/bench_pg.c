/* bench_pg.c -- the PostgreSQL chores of the service benchmark, so bench/service/run.sh needs no
 * psql and starts the database exactly as `triagectl up` does (db_cluster_start with its default
 * options: fsync and synchronous_commit on, unix socket only; then db_migrate).
 *
 *   bench_pg start DIR          starts (or reuses) the cluster in DIR/postgres, applies the
 *                               migrations; prints its conninfo, then the postmaster's pid
 *   bench_pg stop DIR           pg_ctl stop -m fast
 *   bench_pg reset --db URL     empties every table of the service but schema_migrations
 *                               (TRUNCATE ... RESTART IDENTITY), then CHECKPOINT
 *   bench_pg sql --db URL SQL   runs one statement, prints the rows as TSV
 *   bench_pg drain --db URL --expect N [--timeout S] [--cpu NAME=PID]... [--label TEXT]
 *                               waits until N crashes exist and none is received or analyzing,
 *                               polling every 50 ms; prints one TSV line: the wall time from
 *                               its start, done/failed/dead counts, the span between the first
 *                               and the last analyzed_at (the server's clock: the analyzer's own
 *                               drain rate, without start-up), and each --cpu process's CPU time
 *                               per crash over the wait (--header prints the column names)
 *
 * Exit status 0, 1 on failure, 2 on bad usage. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "bench/service/svc_util.h"
#include "db/db.h"

#define MAX_CPU 8

static int usage(void)
{
    fprintf(stderr, "usage: bench_pg start DIR | stop DIR | reset --db URL | sql --db URL SQL |\n"
                    "       drain --db URL --expect N [--timeout S] [--cpu NAME=PID]... "
                    "[--label TEXT] [--header]\n");
    return 2;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int cmd_start(const char *dir)
{
    struct db_cluster *c = NULL;
    struct cm_err err = { 0 };
    if (db_cluster_start(dir, NULL, &c, &err) != CM_E_OK) {
        fprintf(stderr, "bench_pg: cannot start PostgreSQL in %s: %s\n", dir, err.msg);
        return 1;
    }
    struct db_conn *db = NULL;
    struct db_migrate_report rep = { 0 };
    int rc = 0;
    if (db_open(db_cluster_conninfo(c), NULL, &db, &err) != CM_E_OK ||
        db_migrate(db, &rep, &err) != CM_E_OK) {
        fprintf(stderr, "bench_pg: database not ready: %s\n", err.msg);
        rc = 1;
    } else {
        printf("%s\n%d\n", db_cluster_conninfo(c), db_cluster_pid(c));
    }
    db_close(db);
    db_cluster_free(c); /* leaves the server running */
    return rc;
}

static int cmd_stop(const char *dir)
{
    struct db_cluster *c = NULL;
    struct cm_err err = { 0 };
    if (db_cluster_start(dir, NULL, &c, &err) != CM_E_OK) { /* reuses the running one */
        fprintf(stderr, "bench_pg: no cluster in %s: %s\n", dir, err.msg);
        return 1;
    }
    int rc = 0;
    if (db_cluster_stop(c, DB_STOP_FAST, &err) != CM_E_OK) {
        fprintf(stderr, "bench_pg: cannot stop PostgreSQL: %s\n", err.msg);
        rc = 1;
    }
    db_cluster_free(c);
    return rc;
}

static PGconn *connect_url(const char *url)
{
    PGconn *pg = PQconnectdb(url);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "bench_pg: cannot connect: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

static bool exec_ok(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "bench_pg: %s: %s", sql, PQerrorMessage(pg));
    PQclear(r);
    return ok;
}

static int cmd_reset(const char *url)
{
    PGconn *pg = connect_url(url);
    if (!pg)
        return 1;
    bool ok = exec_ok(pg, "DO $$ DECLARE t text; BEGIN"
                          " SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') INTO t"
                          " FROM pg_tables WHERE schemaname = current_schema()"
                          " AND tablename <> 'schema_migrations' AND tablename NOT LIKE 'bench%';"
                          " IF t IS NOT NULL THEN EXECUTE 'TRUNCATE ' || t || ' RESTART IDENTITY';"
                          " END IF; END $$") &&
              exec_ok(pg, "CHECKPOINT");
    PQfinish(pg);
    return ok ? 0 : 1;
}

static int cmd_sql(const char *url, const char *sql)
{
    PGconn *pg = connect_url(url);
    if (!pg)
        return 1;
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(r); i++)
            for (int j = 0; j < PQnfields(r); j++)
                printf("%s%s", PQgetvalue(r, i, j), j + 1 < PQnfields(r) ? "\t" : "\n");
    } else if (st != PGRES_COMMAND_OK) {
        fprintf(stderr, "bench_pg: %s", PQerrorMessage(pg));
        rc = 1;
    }
    PQclear(r);
    PQfinish(pg);
    return rc;
}

struct drain_opts {
    const char *url, *label;
    long long expect;
    int timeout_s;
    bool header;
    struct { char name[32]; pid_t pid; } cpu[MAX_CPU];
    size_t ncpu;
};

static int cmd_drain(const struct drain_opts *o)
{
    PGconn *pg = connect_url(o->url);
    if (!pg)
        return 1;
    double cpu0[MAX_CPU], cpu1[MAX_CPU];
    for (size_t i = 0; i < o->ncpu; i++)
        cpu0[i] = svc_proc_tree_cpu_ms(o->cpu[i].pid);
    uint64_t t0 = svc_now_ns(), deadline = t0 + (uint64_t)o->timeout_s * 1000000000ull;
    long long total = 0, pending = 1, done = 0, failed = 0, dead = 0;
    const char *q = "SELECT count(*), count(*) FILTER (WHERE status IN ('received', 'analyzing')),"
                    " count(*) FILTER (WHERE status = 'done'),"
                    " count(*) FILTER (WHERE status = 'failed'),"
                    " count(*) FILTER (WHERE status = 'dead') FROM crashes";
    for (;;) {
        PGresult *r = PQexec(pg, q);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "bench_pg: %s", PQerrorMessage(pg));
            PQclear(r);
            PQfinish(pg);
            return 1;
        }
        total = atoll(PQgetvalue(r, 0, 0));
        pending = atoll(PQgetvalue(r, 0, 1));
        done = atoll(PQgetvalue(r, 0, 2));
        failed = atoll(PQgetvalue(r, 0, 3));
        dead = atoll(PQgetvalue(r, 0, 4));
        PQclear(r);
        if (total >= o->expect && pending == 0)
            break;
        if (svc_now_ns() > deadline) {
            fprintf(stderr, "bench_pg: not drained after %d s: %lld crashes, %lld pending\n",
                    o->timeout_s, total, pending);
            PQfinish(pg);
            return 1;
        }
        sleep_ms(50);
    }
    double wall = (double)(svc_now_ns() - t0) / 1e9;
    for (size_t i = 0; i < o->ncpu; i++)
        cpu1[i] = svc_proc_tree_cpu_ms(o->cpu[i].pid);
    PGresult *r = PQexec(pg, "SELECT extract(epoch FROM max(analyzed_at) - min(analyzed_at)),"
                             " count(DISTINCT bucket_key) FROM crashes");
    double span = PQresultStatus(r) == PGRES_TUPLES_OK ? atof(PQgetvalue(r, 0, 0)) : 0;
    long long buckets = PQresultStatus(r) == PGRES_TUPLES_OK ? atoll(PQgetvalue(r, 0, 1)) : 0;
    PQclear(r);
    PQfinish(pg);
    if (o->header) {
        printf("#label\tcrashes\tdone\tfailed\tdead\tbuckets\twall_s\tper_s_wall\tspan_s\t"
               "per_s_span");
        for (size_t i = 0; i < o->ncpu; i++)
            printf("\tcpu_ms_%s", o->cpu[i].name);
        printf("\n");
    }
    printf("%s\t%lld\t%lld\t%lld\t%lld\t%lld\t%.3f\t%.1f\t%.3f\t%.1f", o->label ? o->label : "-",
           total, done, failed, dead, buckets, wall, wall > 0 ? (double)total / wall : 0, span,
           span > 0 ? (double)total / span : 0);
    for (size_t i = 0; i < o->ncpu; i++)
        printf("\t%.3f", cpu0[i] >= 0 && cpu1[i] >= 0 && total ? (cpu1[i] - cpu0[i]) / (double)total
                                                                : -1.0);
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    const char *cmd = argv[1];
    if (!strcmp(cmd, "start"))
        return cmd_start(argv[2]);
    if (!strcmp(cmd, "stop"))
        return cmd_stop(argv[2]);
    struct drain_opts o = { .timeout_s = 3600 };
    const char *sql = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--header")) {
            o.header = true;
            continue;
        }
        if (!v) {
            if (!strcmp(cmd, "sql") && !sql) {
                sql = a;
                continue;
            }
            return usage();
        }
        if (!strcmp(a, "--db")) {
            o.url = v;
        } else if (!strcmp(a, "--expect")) {
            o.expect = atoll(v);
        } else if (!strcmp(a, "--timeout")) {
            o.timeout_s = atoi(v);
        } else if (!strcmp(a, "--label")) {
            o.label = v;
        } else if (!strcmp(a, "--cpu")) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || (size_t)(eq - v) >= sizeof o.cpu[0].name || o.ncpu == MAX_CPU)
                return usage();
            memcpy(o.cpu[o.ncpu].name, v, (size_t)(eq - v));
            o.cpu[o.ncpu].name[eq - v] = 0;
            o.cpu[o.ncpu++].pid = (pid_t)atol(eq + 1);
        } else if (!strcmp(cmd, "sql") && !sql) {
            sql = a;
            continue;
        } else {
            return usage();
        }
        i++;
    }
    if (!o.url)
        return usage();
    if (!strcmp(cmd, "reset"))
        return cmd_reset(o.url);
    if (!strcmp(cmd, "sql"))
        return sql ? cmd_sql(o.url, sql) : usage();
    if (!strcmp(cmd, "drain"))
        return o.expect > 0 ? cmd_drain(&o) : usage();
    return usage();
}
