/* db_incident_rates.c -- what the detector measures: per bucket and per fault module + version,
 * the crashes and distinct hosts of a recent window and the crashes of a baseline window, read
 * from the per-minute and per-hour rollups (migration 0003: triage_bucket_window and
 * triage_module_window take whole hours from the hourly rollup and the edges from the minutes),
 * and the projects worth a detection pass. docs/incidents.md describes the model. */
#include "db/db_int.h"

#include "common/cm_alloc.h"

/* Columns of both rate statements: bucket key, fault module, version, recent crashes, recent
 * hosts, baseline crashes, first seen (ms). */

/* $1 project $2 recent from $3 recent to $4 baseline from $5 baseline to (ms) $6 buckets
 * (NULL: every bucket with a crash in the recent window) */
static const struct db__stmt st_rates_bucket = {
    "rates_bucket",
    "SELECT k.bucket_key, b.fault_module, coalesce(b.fault_module_version, ''), rc.crashes,"
    "       triage_hll_estimate(rc.hosts), bc.crashes, triage_ms(b.first_seen)"
    " FROM (SELECT DISTINCT r.bucket_key FROM bucket_rollup_minute r"
    "       WHERE $6::text[] IS NULL AND r.project = $1"
    "         AND r.minute >= triage_ts($2::bigint) AND r.minute < triage_ts($3::bigint)"
    "       UNION SELECT unnest($6::text[])) k"
    " LEFT JOIN buckets b ON b.project = $1 AND b.bucket_key = k.bucket_key"
    " CROSS JOIN LATERAL triage_bucket_window($1, k.bucket_key, triage_ts($2::bigint),"
    "                                         triage_ts($3::bigint), true) rc"
    " CROSS JOIN LATERAL triage_bucket_window($1, k.bucket_key, triage_ts($4::bigint),"
    "                                         triage_ts($5::bigint), false) bc"
    " ORDER BY k.bucket_key",
    6,
};

/* $1..$5 as above, $6 module (NULL: every module with a crash in the recent window) $7 version */
static const struct db__stmt st_rates_module = {
    "rates_module",
    "SELECT NULL::text, k.fault_module, k.fault_module_version, rc.crashes,"
    "       triage_hll_estimate(rc.hosts), bc.crashes,"
    "       triage_ms((SELECT min(m.minute) FROM module_rollup_minute m"
    "                  WHERE m.project = $1 AND m.fault_module = k.fault_module"
    "                    AND m.fault_module_version = k.fault_module_version))"
    " FROM (SELECT DISTINCT r.fault_module, r.fault_module_version FROM module_rollup_minute r"
    "       WHERE $6::text IS NULL AND r.project = $1"
    "         AND r.minute >= triage_ts($2::bigint) AND r.minute < triage_ts($3::bigint)"
    "       UNION SELECT $6::text, coalesce($7::text, '') WHERE $6::text IS NOT NULL) k"
    " CROSS JOIN LATERAL triage_module_window($1, k.fault_module, k.fault_module_version,"
    "                                         triage_ts($2::bigint), triage_ts($3::bigint),"
    "                                         true) rc"
    " CROSS JOIN LATERAL triage_module_window($1, k.fault_module, k.fault_module_version,"
    "                                         triage_ts($4::bigint), triage_ts($5::bigint),"
    "                                         false) bc"
    " ORDER BY k.fault_module, k.fault_module_version",
    7,
};

/* Distinct projects by a loose index scan of the rollup's primary key (a handful of index
 * probes, however many rows), kept when they have a recent minute; plus open incidents.
 * $1 since (ms) */
static const struct db__stmt st_projects = {
    "incident_projects",
    "WITH RECURSIVE p AS ("
    "  (SELECT project FROM bucket_rollup_minute ORDER BY project LIMIT 1)"
    "  UNION ALL"
    "  SELECT (SELECT r.project FROM bucket_rollup_minute r WHERE r.project > p.project"
    "          ORDER BY r.project LIMIT 1)"
    "  FROM p WHERE p.project IS NOT NULL)"
    " SELECT project FROM p WHERE project IS NOT NULL AND EXISTS ("
    "   SELECT 1 FROM bucket_rollup_minute r WHERE r.project = p.project"
    "     AND r.minute >= triage_ts($1::bigint))"
    " UNION SELECT project FROM incidents WHERE status = 'open'"
    " ORDER BY 1",
    1,
};

void db_rates_free(struct db_rate *r, size_t count)
{
    if (!r)
        return;
    for (size_t i = 0; i < count; i++) {
        cm_free(r[i].bucket_key);
        cm_free(r[i].fault_module);
        cm_free(r[i].fault_module_version);
    }
    cm_free(r);
}

static enum cm_code read_rates(PGresult *res, struct db_rate **out, size_t *count,
                               struct cm_err *err)
{
    size_t n = (size_t)PQntuples(res);
    if (n == 0)
        return CM_E_OK;
    struct db_rate *r = cm_calloc(n, sizeof *r);
    if (!r)
        return cm_fail(err, CM_E_NOMEM, "rates: out of memory for %zu rows", n);
    bool oom = false;
    for (size_t i = 0; i < n; i++) {
        int row = (int)i;
        r[i].bucket_key = db__dup(res, row, 0, &oom);
        r[i].fault_module = db__dup(res, row, 1, &oom);
        r[i].fault_module_version = db__dup(res, row, 2, &oom);
        if (!r[i].fault_module_version && !oom)
            r[i].fault_module_version = cm_strdup("");
        oom = oom || !r[i].fault_module_version;
        r[i].recent_crashes = db__get_i64(res, row, 3);
        r[i].recent_hosts = db__get_i64(res, row, 4);
        r[i].baseline_crashes = db__get_i64(res, row, 5);
        r[i].first_seen_ms = db__get_i64(res, row, 6);
    }
    if (oom) {
        db_rates_free(r, n);
        return cm_fail(err, CM_E_NOMEM, "rates: out of memory");
    }
    *out = r;
    *count = n;
    return CM_E_OK;
}

enum cm_code db_rates(struct db_conn *db, const struct db_rate_query *q, struct db_rate **out,
                      size_t *count, struct cm_err *err)
{
    *out = NULL;
    *count = 0;
    if (q->recent_from_ms >= q->recent_to_ms || q->baseline_from_ms > q->baseline_to_ms)
        return cm_fail(err, CM_E_USAGE, "rates: empty or reversed window");
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, q->project);
    db__arg_i64(&a, q->recent_from_ms);
    db__arg_i64(&a, q->recent_to_ms);
    db__arg_i64(&a, q->baseline_from_ms);
    db__arg_i64(&a, q->baseline_to_ms);
    const struct db__stmt *st = &st_rates_module;
    if (q->level == DB_RATE_BUCKET) {
        st = &st_rates_bucket;
        if (q->bucket_keys) {
            struct cm_buf b;
            db__arr_begin(&b);
            for (size_t i = 0; i < q->bucket_key_count; i++)
                db__arr_str(&b, q->bucket_keys[i]);
            db__arr_end(&b);
            db__arg_buf(&a, &b);
        } else {
            db__arg_null(&a);
        }
    } else {
        db__arg_str(&a, q->fault_module);
        db__arg_str(&a, q->fault_module ? (q->fault_module_version ? q->fault_module_version
                                                                   : "")
                                        : NULL);
    }
    PGresult *res = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "rates: out of memory")
                               : db__exec(db, st, a.v, &res, "rates", err);
    if (!rc)
        rc = read_rates(res, out, count, err);
    PQclear(res);
    db__args_free(&a);
    return rc;
}

void db_incident_projects_free(char **projects, size_t count)
{
    if (!projects)
        return;
    for (size_t i = 0; i < count; i++)
        cm_free(projects[i]);
    cm_free(projects);
}

enum cm_code db_incident_projects(struct db_conn *db, int64_t since_ms, char ***out,
                                  size_t *count, struct cm_err *err)
{
    *out = NULL;
    *count = 0;
    struct db__args a;
    db__args_init(&a);
    db__arg_i64(&a, since_ms);
    PGresult *res = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "projects: out of memory")
                               : db__exec(db, &st_projects, a.v, &res, "projects", err);
    size_t n = rc ? 0 : (size_t)PQntuples(res);
    if (n) {
        char **p = cm_calloc(n, sizeof *p);
        bool oom = !p;
        for (size_t i = 0; p && i < n; i++)
            p[i] = db__dup(res, (int)i, 0, &oom);
        if (oom) {
            db_incident_projects_free(p, n);
            rc = cm_fail(err, CM_E_NOMEM, "projects: out of memory");
        } else {
            *out = p;
            *count = n;
        }
    }
    PQclear(res);
    db__args_free(&a);
    return rc;
}
