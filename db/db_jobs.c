/* db_jobs.c -- the analysis job queue: claim with FOR UPDATE SKIP LOCKED over the partial index
 * of ready jobs, leases measured by the server's clock, attempts bumped at claim, heartbeat,
 * completion, failure with exponential backoff, dead letters, and the sweep that re-queues
 * jobs whose worker vanished. The claim token (project, job_id, attempts) fences every later
 * update: a worker whose lease expired and whose job went to another worker changes nothing.
 * Patterns: PostgreSQL "The Locking Clause" (SKIP LOCKED); graphile-worker's backoff
 * exp(min(attempt, 10)) seconds. */
#include "db/db_int.h"

#include <string.h>

#include "common/cm_alloc.h"

/* $1 max jobs $2 worker $3 lease ms */
static const struct db__stmt st_claim = {
    "jobs_claim",
    "WITH c AS ("
    "  SELECT project, job_id FROM jobs"
    "  WHERE state = 'ready' AND run_after <= now()"
    "  ORDER BY run_after, job_id"
    "  LIMIT $1::integer"
    "  FOR UPDATE SKIP LOCKED),"
    " u AS ("
    "  UPDATE jobs j SET state = 'running', attempts = j.attempts + 1, lease_owner = $2,"
    "         lease_expires_at = now() + $3::bigint * interval '1 millisecond',"
    "         updated_at = now()"
    "  FROM c WHERE j.project = c.project AND j.job_id = c.job_id"
    "  RETURNING j.project, j.job_id, j.attempts, j.max_attempts, j.crash_id,"
    "            j.crash_received_at, j.lease_expires_at),"
    " s AS ("
    "  UPDATE crashes cr SET status = 'analyzing'"
    "  FROM u WHERE cr.project = u.project AND cr.crash_id = u.crash_id"
    "           AND cr.received_at = u.crash_received_at"
    "  RETURNING cr.project, cr.crash_id, cr.spool_path, cr.dump_sha256, cr.dump_format,"
    "            cr.host_id, cr.crash_time)"
    " SELECT u.project, u.job_id, u.attempts, u.max_attempts, u.crash_id::text,"
    "        triage_ms(u.crash_received_at), triage_ms(s.crash_time),"
    "        triage_ms(u.lease_expires_at), s.dump_sha256, s.spool_path, s.dump_format,"
    "        s.host_id"
    " FROM u LEFT JOIN s ON s.project = u.project AND s.crash_id = u.crash_id"
    " ORDER BY u.job_id",
    3,
};

/* $1 projects $2 job ids $3 attempts $4 lease ms */
static const struct db__stmt st_heartbeat = {
    "jobs_heartbeat",
    "UPDATE jobs j SET lease_expires_at = now() + $4::bigint * interval '1 millisecond',"
    "       updated_at = now()"
    " FROM unnest($1::text[], $2::bigint[], $3::integer[]) AS r(project, job_id, attempt)"
    " WHERE j.project = r.project AND j.job_id = r.job_id AND j.attempts = r.attempt"
    "   AND j.state = 'running'"
    " RETURNING j.job_id",
    4,
};

/* $1 project $2 job id $3 attempt */
static const struct db__stmt st_complete = {
    "job_complete",
    "WITH d AS ("
    "  DELETE FROM jobs WHERE project = $1 AND job_id = $2::bigint AND attempts = $3::integer"
    "                    AND state = 'running'"
    "  RETURNING project, crash_id, crash_received_at)"
    " UPDATE crashes cr SET status = 'done', analyzed_at = now()"
    " FROM d WHERE cr.project = d.project AND cr.crash_id = d.crash_id"
    "          AND cr.received_at = d.crash_received_at"
    " RETURNING cr.crash_id",
    3,
};

/* Retry or dead-letter. $1 project $2 job id $3 attempt $4 error $5 mode ('retry'|'dead') */
static const struct db__stmt st_fail = {
    "job_fail",
    "WITH u AS ("
    "  UPDATE jobs SET"
    "    state = CASE WHEN $5::text = 'retry' AND attempts < max_attempts THEN 'ready'"
    "                 ELSE 'dead' END,"
    "    run_after = CASE WHEN $5::text = 'retry'"
    "                     THEN now() + exp(least(attempts, 10)::float8) * interval '1 second'"
    "                     ELSE run_after END,"
    "    last_error = $4, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()"
    "  WHERE project = $1 AND job_id = $2::bigint AND attempts = $3::integer"
    "    AND state = 'running'"
    "  RETURNING project, crash_id, crash_received_at, state)"
    " UPDATE crashes cr SET"
    "   status = CASE u.state WHEN 'dead' THEN 'dead' ELSE 'received' END,"
    "   failure_reason = CASE u.state WHEN 'dead' THEN $4 ELSE cr.failure_reason END,"
    "   analyzed_at = CASE u.state WHEN 'dead' THEN now() ELSE cr.analyzed_at END"
    " FROM u WHERE cr.project = u.project AND cr.crash_id = u.crash_id"
    "          AND cr.received_at = u.crash_received_at"
    " RETURNING u.state",
    5,
};

/* The dump is malformed: the job goes, the crash is failed with the reason.
 * $1 project $2 job id $3 attempt $4 reason */
static const struct db__stmt st_fail_permanent = {
    "job_fail_permanent",
    "WITH d AS ("
    "  DELETE FROM jobs WHERE project = $1 AND job_id = $2::bigint AND attempts = $3::integer"
    "                    AND state = 'running'"
    "  RETURNING project, crash_id, crash_received_at)"
    " UPDATE crashes cr SET status = 'failed', failure_reason = $4, analyzed_at = now()"
    " FROM d WHERE cr.project = d.project AND cr.crash_id = d.crash_id"
    "          AND cr.received_at = d.crash_received_at"
    " RETURNING cr.crash_id",
    4,
};

/* $1 projects $2 job ids $3 attempts */
static const struct db__stmt st_release = {
    "jobs_release",
    "WITH u AS ("
    "  UPDATE jobs j SET state = 'ready', attempts = greatest(j.attempts - 1, 0),"
    "         lease_owner = NULL, lease_expires_at = NULL, run_after = now(), updated_at = now()"
    "  FROM unnest($1::text[], $2::bigint[], $3::integer[]) AS r(project, job_id, attempt)"
    "  WHERE j.project = r.project AND j.job_id = r.job_id AND j.attempts = r.attempt"
    "    AND j.state = 'running'"
    "  RETURNING j.project, j.crash_id, j.crash_received_at)"
    " UPDATE crashes cr SET status = 'received'"
    " FROM u WHERE cr.project = u.project AND cr.crash_id = u.crash_id"
    "          AND cr.received_at = u.crash_received_at",
    3,
};

static const struct db__stmt st_requeue = {
    "jobs_requeue_expired",
    "WITH e AS ("
    "  SELECT project, job_id FROM jobs"
    "  WHERE state = 'running' AND lease_expires_at < now()"
    "  ORDER BY lease_expires_at"
    "  LIMIT 1000"
    "  FOR UPDATE SKIP LOCKED),"
    " u AS ("
    "  UPDATE jobs j SET"
    "    state = CASE WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'ready' END,"
    "    last_error = 'lease expired: worker ' || coalesce(j.lease_owner, '?')"
    "                 || ' did not finish attempt ' || j.attempts,"
    "    lease_owner = NULL, lease_expires_at = NULL, run_after = now(), updated_at = now()"
    "  FROM e WHERE j.project = e.project AND j.job_id = e.job_id"
    "  RETURNING j.project, j.crash_id, j.crash_received_at, j.state, j.last_error),"
    " c AS ("
    "  UPDATE crashes cr SET"
    "    status = CASE u.state WHEN 'dead' THEN 'dead' ELSE 'received' END,"
    "    failure_reason = CASE u.state WHEN 'dead' THEN u.last_error ELSE cr.failure_reason END"
    "  FROM u WHERE cr.project = u.project AND cr.crash_id = u.crash_id"
    "           AND cr.received_at = u.crash_received_at)"
    " SELECT count(*) FILTER (WHERE state = 'ready'), count(*) FILTER (WHERE state = 'dead')"
    " FROM u",
    0,
};

void db_jobs_free(struct db_job *jobs, size_t count)
{
    if (!jobs)
        return;
    for (size_t i = 0; i < count; i++) {
        cm_free(jobs[i].spool_path);
        cm_free(jobs[i].dump_format);
        cm_free(jobs[i].host_id);
    }
    cm_free(jobs);
}

enum cm_code db_jobs_claim(struct db_conn *db, const char *worker, size_t max_jobs,
                           int64_t lease_ms, struct db_job **jobs, size_t *count,
                           struct cm_err *err)
{
    *jobs = NULL;
    *count = 0;
    if (max_jobs == 0)
        return CM_E_OK;
    if (max_jobs > 10000)
        max_jobs = 10000;
    if (lease_ms <= 0)
        return cm_fail(err, CM_E_USAGE, "job claim: lease must be positive");
    struct db__args a;
    db__args_init(&a);
    db__arg_i64(&a, (int64_t)max_jobs);
    db__arg_str(&a, worker && *worker ? worker : "?");
    db__arg_i64(&a, lease_ms);
    PGresult *res = NULL;
    struct db_job *out = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "job claim: out of memory")
                               : db__exec(db, &st_claim, a.v, &res, "job claim", err);
    if (rc)
        goto out;
    int n = PQntuples(res);
    if (n == 0)
        goto out;
    out = cm_calloc((size_t)n, sizeof *out);
    if (!out) {
        /* The jobs are claimed but we cannot hold them: their leases will expire. */
        rc = cm_fail(err, CM_E_NOMEM, "job claim: out of memory for %d jobs", n);
        goto out;
    }
    bool oom = false;
    for (int i = 0; i < n; i++) {
        struct db_job *j = &out[i];
        db__copy(res, i, 0, j->project, sizeof j->project);
        j->job_id = db__get_i64(res, i, 1);
        j->attempt = (int32_t)db__get_i64(res, i, 2);
        j->max_attempts = (int32_t)db__get_i64(res, i, 3);
        db__copy(res, i, 4, j->crash_id, sizeof j->crash_id);
        j->received_at_ms = db__get_i64(res, i, 5);
        j->crash_time_ms = db__get_i64(res, i, 6);
        j->lease_expires_at_ms = db__get_i64(res, i, 7);
        db__copy(res, i, 8, j->dump_sha256, sizeof j->dump_sha256);
        j->spool_path = cm_strdup(db__get(res, i, 9) ? db__get(res, i, 9) : "");
        j->dump_format = cm_strdup(db__get(res, i, 10) ? db__get(res, i, 10) : "unknown");
        j->host_id = cm_strdup(db__get(res, i, 11) ? db__get(res, i, 11) : "");
        oom |= !j->spool_path || !j->dump_format || !j->host_id;
    }
    if (oom) {
        db_jobs_free(out, (size_t)n);
        out = NULL;
        rc = cm_fail(err, CM_E_NOMEM, "job claim: out of memory for %d jobs", n);
        goto out;
    }
    *jobs = out;
    *count = (size_t)n;
out:
    PQclear(res);
    db__args_free(&a);
    return rc;
}

/* The three arrays naming claims: projects, job ids, attempts. */
static void token_arrays(struct db__args *a, const struct db_job *jobs, size_t count)
{
    struct cm_buf p, id, at;
    db__arr_begin(&p);
    db__arr_begin(&id);
    db__arr_begin(&at);
    for (size_t i = 0; i < count; i++) {
        db__arr_str(&p, jobs[i].project);
        db__arr_i64(&id, jobs[i].job_id);
        db__arr_i64(&at, jobs[i].attempt);
    }
    db__arr_end(&p);
    db__arr_end(&id);
    db__arr_end(&at);
    db__arg_buf(a, &p);
    db__arg_buf(a, &id);
    db__arg_buf(a, &at);
}

enum cm_code db_jobs_heartbeat(struct db_conn *db, const struct db_job *jobs, size_t count,
                               int64_t lease_ms, bool *lost, struct cm_err *err)
{
    if (count == 0)
        return CM_E_OK;
    struct db__args a;
    db__args_init(&a);
    token_arrays(&a, jobs, count);
    db__arg_i64(&a, lease_ms);
    PGresult *res = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "heartbeat: out of memory")
                               : db__exec(db, &st_heartbeat, a.v, &res, "heartbeat", err);
    if (!rc && lost) {
        for (size_t i = 0; i < count; i++) {
            lost[i] = true;
            for (int k = 0; k < PQntuples(res); k++)
                if (db__get_i64(res, k, 0) == jobs[i].job_id)
                    lost[i] = false;
        }
    }
    PQclear(res);
    db__args_free(&a);
    return rc;
}

static void token_args(struct db__args *a, const struct db_job *job)
{
    db__arg_str(a, job->project);
    db__arg_i64(a, job->job_id);
    db__arg_i64(a, job->attempt);
}

enum cm_code db_job_complete(struct db_conn *db, const struct db_job *job, bool *lost,
                             struct cm_err *err)
{
    struct db__args a;
    db__args_init(&a);
    token_args(&a, job);
    PGresult *res = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "job complete: out of memory")
                               : db__exec(db, &st_complete, a.v, &res, "job complete", err);
    if (!rc && lost)
        *lost = PQntuples(res) == 0;
    PQclear(res);
    db__args_free(&a);
    return rc;
}

enum cm_code db_job_fail(struct db_conn *db, const struct db_job *job, enum db_fail_mode mode,
                         const char *error, bool *lost, struct cm_err *err)
{
    struct db__args a;
    db__args_init(&a);
    token_args(&a, job);
    db__arg_str(&a, error && *error ? error : "unknown error");
    const struct db__stmt *st = &st_fail;
    if (mode == DB_FAIL_PERMANENT)
        st = &st_fail_permanent;
    else
        db__arg_str(&a, mode == DB_FAIL_RETRY ? "retry" : "dead");
    PGresult *res = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "job fail: out of memory")
                               : db__exec(db, st, a.v, &res, "job fail", err);
    if (!rc && lost)
        *lost = PQntuples(res) == 0;
    PQclear(res);
    db__args_free(&a);
    return rc;
}

enum cm_code db_jobs_release(struct db_conn *db, const struct db_job *jobs, size_t count,
                             struct cm_err *err)
{
    if (count == 0)
        return CM_E_OK;
    struct db__args a;
    db__args_init(&a);
    token_arrays(&a, jobs, count);
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "job release: out of memory")
                               : db__exec(db, &st_release, a.v, NULL, "job release", err);
    db__args_free(&a);
    return rc;
}

enum cm_code db_jobs_requeue_expired(struct db_conn *db, size_t *requeued, size_t *dead,
                                     struct cm_err *err)
{
    PGresult *res = NULL;
    enum cm_code rc = db__exec(db, &st_requeue, NULL, &res, "lease sweep", err);
    if (!rc) {
        if (requeued)
            *requeued = (size_t)db__get_i64(res, 0, 0);
        if (dead)
            *dead = (size_t)db__get_i64(res, 0, 1);
    }
    PQclear(res);
    return rc;
}
