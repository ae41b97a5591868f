/* db_result.c -- writes a batch of analysis results in one transaction with a fixed number of
 * statements, whatever the batch holds: (1) delete the jobs still held under their claim token
 * (fencing: a result whose lease went to another worker is dropped), (2) store each owned
 * crash's result, (3) count the analyzed crashes: bucket upsert, exact distinct hosts, per-minute
 * rollups per bucket and per fault module + version, (4) the crashes' modules. Rows travel as
 * array parameters expanded by unnest(). The minute rollups carry distinct-host sketches
 * (HyperLogLog, migration 0003); triggers carry every minute change into the hourly rollups.
 * Upserts feed rows in key order so concurrent batches lock shared bucket rows in the same
 * order. The counting statement is one INSERT with data-modifying CTEs for the other tables;
 * PostgreSQL runs each of those to completion whether or not the main query reads it (docs:
 * "Data-Modifying Statements in WITH"). */
#include "db/db_int.h"

#include <string.h>

#include "common/cm_alloc.h"

/* $1 projects $2 job ids $3 attempts */
static const struct db__stmt st_take = {
    "result_take_jobs",
    "DELETE FROM jobs j"
    " USING unnest($1::text[], $2::bigint[], $3::integer[]) AS r(project, job_id, attempt)"
    " WHERE j.project = r.project AND j.job_id = r.job_id AND j.attempts = r.attempt"
    "   AND j.state = 'running'"
    " RETURNING j.project, j.job_id",
    3,
};

/* One row per owned result; only crashes waiting for a result are touched, so a crash is never
 * counted twice. */
static const struct db__stmt st_crashes = {
    "result_crashes",
    "UPDATE crashes c SET"
    "  status = CASE WHEN r.failed THEN 'failed' ELSE 'done' END,"
    "  failure_reason = r.failure_reason, analyzed_at = now(), signature = r.signature,"
    "  bucket_key = r.bucket_key, crash_kind = r.crash_kind, fault_module = r.fault_module,"
    "  fault_module_version = r.fault_module_version, fault_point = r.fault_point,"
    "  stack_hash = r.stack_hash, fault_key = r.fault_key, rules_version = r.rules_version,"
    "  processed = r.processed::jsonb"
    " FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::boolean[], $5::text[], $6::text[],"
    "             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],"
    "             $13::text[], $14::text[], $15::text[])"
    "      AS r(project, crash_id, received_ms, failed, failure_reason, signature, bucket_key,"
    "           crash_kind, fault_module, fault_module_version, fault_point, stack_hash,"
    "           fault_key, rules_version, processed)"
    " WHERE c.project = r.project AND c.crash_id = r.crash_id"
    "   AND c.received_at = triage_ts(r.received_ms)"
    "   AND c.status IN ('received', 'analyzing')"
    " RETURNING c.project, c.bucket_key, c.signature, c.crash_kind, c.fault_module,"
    "           c.fault_module_version, c.host_id, triage_ms(c.event_at), r.failed",
    15,
};

/* Counts the analyzed crashes. $1 projects $2 bucket keys $3 signatures $4 crash kinds
 * $5 fault modules $6 fault module versions $7 host ids $8 event times (ms) */
static const struct db__stmt st_count = {
    "result_count",
    "WITH r AS ("
    "  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
    "                       $6::text[], $7::text[], $8::bigint[])"
    "    AS r(project, bucket_key, signature, crash_kind, fault_module, fault_module_version,"
    "         host_id, event_ms)),"
    " hg AS ("
    "  SELECT project, bucket_key, host_id, count(*) AS n, min(event_ms) AS lo,"
    "         max(event_ms) AS hi"
    "  FROM r WHERE coalesce(host_id, '') <> '' GROUP BY 1, 2, 3),"
    " hi AS ("
    "  INSERT INTO bucket_hosts AS h (project, bucket_key, host_id, crash_count, first_seen,"
    "                                 last_seen)"
    "  SELECT project, bucket_key, host_id, n, triage_ts(lo), triage_ts(hi) FROM hg"
    "  ORDER BY 1, 2, 3"
    "  ON CONFLICT (project, bucket_key, host_id) DO UPDATE SET"
    "    crash_count = h.crash_count + excluded.crash_count,"
    "    first_seen = least(h.first_seen, excluded.first_seen),"
    "    last_seen = greatest(h.last_seen, excluded.last_seen)"
    "  RETURNING h.project, h.bucket_key, (h.xmax = 0) AS fresh),"
    " hn AS ("
    "  SELECT project, bucket_key, count(*) FILTER (WHERE fresh) AS new_hosts FROM hi"
    "  GROUP BY 1, 2),"
    " br AS ("
    "  INSERT INTO bucket_rollup_minute AS m (project, bucket_key, minute, crash_count, hosts)"
    "  SELECT project, bucket_key, date_trunc('minute', triage_ts(event_ms)), count(*),"
    "         triage_hll_of(array_agg(host_id)) FROM r"
    "  GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    "  ON CONFLICT (project, bucket_key, minute) DO UPDATE SET"
    "    crash_count = m.crash_count + excluded.crash_count,"
    "    hosts = triage_hll_union(m.hosts, excluded.hosts)),"
    " mr AS ("
    "  INSERT INTO module_rollup_minute AS m (project, fault_module, fault_module_version,"
    "                                         minute, crash_count, hosts)"
    "  SELECT project, fault_module, coalesce(fault_module_version, ''),"
    "         date_trunc('minute', triage_ts(event_ms)), count(*),"
    "         triage_hll_of(array_agg(host_id)) FROM r"
    "  WHERE fault_module IS NOT NULL"
    "  GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    "  ON CONFLICT (project, fault_module, fault_module_version, minute) DO UPDATE SET"
    "    crash_count = m.crash_count + excluded.crash_count,"
    "    hosts = triage_hll_union(m.hosts, excluded.hosts)),"
    " bg AS ("
    "  SELECT project, bucket_key, (array_agg(signature))[1] AS signature,"
    "         (array_agg(crash_kind))[1] AS crash_kind,"
    "         (array_agg(fault_module))[1] AS fault_module,"
    "         (array_agg(fault_module_version))[1] AS fault_module_version,"
    "         count(*) AS n, min(event_ms) AS lo, max(event_ms) AS hi"
    "  FROM r GROUP BY 1, 2)"
    " INSERT INTO buckets AS b (project, bucket_key, signature, crash_kind, fault_module,"
    "                           fault_module_version, crash_count, host_count, first_seen,"
    "                           last_seen)"
    " SELECT bg.project, bg.bucket_key, coalesce(bg.signature, ''), bg.crash_kind,"
    "        bg.fault_module, bg.fault_module_version, bg.n, coalesce(hn.new_hosts, 0),"
    "        triage_ts(bg.lo), triage_ts(bg.hi)"
    " FROM bg LEFT JOIN hn ON hn.project = bg.project AND hn.bucket_key = bg.bucket_key"
    " ORDER BY 1, 2"
    " ON CONFLICT (project, bucket_key) DO UPDATE SET"
    "   crash_count = b.crash_count + excluded.crash_count,"
    "   host_count = b.host_count + excluded.host_count,"
    "   first_seen = least(b.first_seen, excluded.first_seen),"
    "   last_seen = greatest(b.last_seen, excluded.last_seen),"
    "   fault_module = coalesce(b.fault_module, excluded.fault_module),"
    "   fault_module_version = coalesce(b.fault_module_version, excluded.fault_module_version),"
    "   updated_at = now()",
    8,
};

/* $1 projects $2 crash ids $3 received ms $4 indexes $5 names $6 versions $7 debug files
 * $8 debug ids $9 code ids $10 bases $11 sizes $12 is_main */
static const struct db__stmt st_modules = {
    "result_modules",
    "INSERT INTO crash_modules (project, crash_id, received_at, module_index, name, version,"
    "                           debug_file, debug_id, code_id, base_address, size_bytes, is_main)"
    " SELECT project, crash_id, triage_ts(received_ms), idx, name, version, debug_file,"
    "        debug_id, code_id, base, size, is_main"
    " FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::integer[], $5::text[], $6::text[],"
    "             $7::text[], $8::text[], $9::text[], $10::numeric[], $11::numeric[],"
    "             $12::boolean[])"
    "      AS r(project, crash_id, received_ms, idx, name, version, debug_file, debug_id,"
    "           code_id, base, size, is_main)"
    " ON CONFLICT DO NOTHING",
    12,
};

static void arr_str_or_null(struct cm_buf *b, const char *s) { db__arr_str(b, s && *s ? s : NULL); }

static enum cm_code take_jobs(struct db_conn *db, const struct db_result *rs, size_t n,
                              bool *owned, struct cm_err *err)
{
    struct cm_buf p, id, at;
    db__arr_begin(&p);
    db__arr_begin(&id);
    db__arr_begin(&at);
    for (size_t i = 0; i < n; i++) {
        db__arr_str(&p, rs[i].job->project);
        db__arr_i64(&id, rs[i].job->job_id);
        db__arr_i64(&at, rs[i].job->attempt);
    }
    db__arr_end(&p);
    db__arr_end(&id);
    db__arr_end(&at);
    struct db__args a;
    db__args_init(&a);
    db__arg_buf(&a, &p);
    db__arg_buf(&a, &id);
    db__arg_buf(&a, &at);
    PGresult *res = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "result batch: out of memory")
                               : db__exec(db, &st_take, a.v, &res, "result batch: jobs", err);
    if (!rc) {
        for (size_t i = 0; i < n; i++)
            owned[i] = false;
        for (int k = 0; k < PQntuples(res); k++) {
            const char *proj = db__get(res, k, 0);
            int64_t jid = db__get_i64(res, k, 1);
            for (size_t i = 0; i < n; i++)
                if (rs[i].job->job_id == jid && proj && strcmp(rs[i].job->project, proj) == 0)
                    owned[i] = true;
        }
    }
    PQclear(res);
    db__args_free(&a);
    return rc;
}

static enum cm_code store_crashes(struct db_conn *db, const struct db_result *rs, size_t n,
                                  const bool *owned, PGresult **res, struct cm_err *err)
{
    struct cm_buf b[15];
    for (int k = 0; k < 15; k++)
        db__arr_begin(&b[k]);
    for (size_t i = 0; i < n; i++) {
        if (!owned[i])
            continue;
        const struct db_result *r = &rs[i];
        db__arr_str(&b[0], r->job->project);
        db__arr_str(&b[1], r->job->crash_id);
        db__arr_i64(&b[2], r->job->received_at_ms);
        db__arr_bool(&b[3], r->failed);
        arr_str_or_null(&b[4], r->failed ? (r->failure_reason ? r->failure_reason : "failed")
                                         : NULL);
        arr_str_or_null(&b[5], r->signature);
        arr_str_or_null(&b[6], r->failed ? NULL : r->bucket_key);
        arr_str_or_null(&b[7], r->crash_kind);
        arr_str_or_null(&b[8], r->fault_module);
        arr_str_or_null(&b[9], r->fault_module_version);
        arr_str_or_null(&b[10], r->fault_point);
        arr_str_or_null(&b[11], r->stack_hash);
        arr_str_or_null(&b[12], r->fault_key);
        arr_str_or_null(&b[13], r->rules_version);
        arr_str_or_null(&b[14], r->processed_json);
    }
    struct db__args a;
    db__args_init(&a);
    for (int k = 0; k < 15; k++) {
        db__arr_end(&b[k]);
        db__arg_buf(&a, &b[k]);
    }
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "result batch: out of memory")
                               : db__exec(db, &st_crashes, a.v, res, "result batch: crashes",
                                          err);
    db__args_free(&a);
    return rc;
}

/* Counts the crashes the previous statement marked done (its returned rows). */
static enum cm_code count_crashes(struct db_conn *db, const PGresult *done, struct cm_err *err)
{
    struct cm_buf b[8];
    for (int k = 0; k < 8; k++)
        db__arr_begin(&b[k]);
    size_t rows = 0;
    for (int i = 0; i < PQntuples(done); i++) {
        const char *failed = db__get(done, i, 8);
        const char *bucket = db__get(done, i, 1);
        if ((failed && failed[0] == 't') || !bucket)
            continue;
        for (int k = 0; k < 7; k++)
            db__arr_str(&b[k], db__get(done, i, k));
        db__arr_i64(&b[7], db__get_i64(done, i, 7));
        rows++;
    }
    struct db__args a;
    db__args_init(&a);
    for (int k = 0; k < 8; k++) {
        db__arr_end(&b[k]);
        db__arg_buf(&a, &b[k]);
    }
    enum cm_code rc = CM_E_OK;
    if (a.failed)
        rc = cm_fail(err, CM_E_NOMEM, "result batch: out of memory");
    else if (rows)
        rc = db__exec(db, &st_count, a.v, NULL, "result batch: buckets", err);
    db__args_free(&a);
    return rc;
}

static enum cm_code store_modules(struct db_conn *db, const struct db_result *rs, size_t n,
                                  const bool *owned, struct cm_err *err)
{
    struct cm_buf b[12];
    for (int k = 0; k < 12; k++)
        db__arr_begin(&b[k]);
    size_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        if (!owned[i])
            continue;
        const struct db_result *r = &rs[i];
        for (size_t m = 0; m < r->module_count; m++) {
            const struct db_module *mod = &r->modules[m];
            db__arr_str(&b[0], r->job->project);
            db__arr_str(&b[1], r->job->crash_id);
            db__arr_i64(&b[2], r->job->received_at_ms);
            db__arr_i64(&b[3], (int64_t)m);
            db__arr_str(&b[4], mod->name && *mod->name ? mod->name : "?");
            arr_str_or_null(&b[5], mod->version);
            arr_str_or_null(&b[6], mod->debug_file);
            arr_str_or_null(&b[7], mod->debug_id);
            arr_str_or_null(&b[8], mod->code_id);
            db__arr_u64(&b[9], mod->base);
            db__arr_u64(&b[10], mod->size);
            db__arr_bool(&b[11], mod->is_main);
            rows++;
        }
    }
    struct db__args a;
    db__args_init(&a);
    for (int k = 0; k < 12; k++) {
        db__arr_end(&b[k]);
        db__arg_buf(&a, &b[k]);
    }
    enum cm_code rc = CM_E_OK;
    if (a.failed)
        rc = cm_fail(err, CM_E_NOMEM, "result batch: out of memory for %zu modules", rows);
    else if (rows)
        rc = db__exec(db, &st_modules, a.v, NULL, "result batch: modules", err);
    db__args_free(&a);
    return rc;
}

enum cm_code db_result_write(struct db_conn *db, const struct db_result *results, size_t count,
                             struct db_result_report *rep, struct cm_err *err)
{
    if (rep)
        *rep = (struct db_result_report){ 0 };
    if (count == 0)
        return CM_E_OK;
    for (size_t i = 0; i < count; i++) {
        const struct db_result *r = &results[i];
        if (!r->job)
            return cm_fail(err, CM_E_USAGE, "result batch: result %zu names no job", i);
        if (!r->failed && (!r->bucket_key || !*r->bucket_key))
            return cm_fail(err, CM_E_USAGE, "result batch: result %zu (crash %s) has no bucket",
                           i, r->job->crash_id);
        for (size_t k = 0; k < i; k++)
            if (results[k].job->job_id == r->job->job_id &&
                strcmp(results[k].job->project, r->job->project) == 0)
                return cm_fail(err, CM_E_USAGE, "result batch: job %lld appears twice",
                               (long long)r->job->job_id);
    }
    bool *owned = cm_calloc(count, sizeof *owned);
    if (!owned)
        return cm_fail(err, CM_E_NOMEM, "result batch: out of memory");
    PGresult *done = NULL;
    enum cm_code rc = db__begin(db, err);
    if (rc)
        goto out;
    rc = take_jobs(db, results, count, owned, err);
    size_t n_owned = 0;
    for (size_t i = 0; i < count; i++)
        n_owned += owned[i];
    if (!rc && n_owned)
        rc = store_crashes(db, results, count, owned, &done, err);
    if (!rc && n_owned)
        rc = count_crashes(db, done, err);
    if (!rc && n_owned)
        rc = store_modules(db, results, count, owned, err);
    if (!rc && db__hook_before_commit)
        db__hook_before_commit(db, "result batch");
    if (!rc)
        rc = db__commit(db, err);
    if (rc) {
        db__rollback(db);
        goto out;
    }
    if (rep) {
        rep->written = n_owned;
        rep->lost = count - n_owned;
    }
out:
    PQclear(done);
    cm_free(owned);
    return rc;
}
