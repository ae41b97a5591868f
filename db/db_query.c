/* db_query.c -- what responders and the daemons read: top buckets in a window (from the
 * per-minute rollups), one bucket, one crash with its processed result, and the queue's
 * depth for load shedding and metrics. */
#include "db/db_int.h"

#include <string.h>

#include "common/cm_alloc.h"

#define BUCKET_COLS                                                                              \
    "b.bucket_key, b.signature, b.crash_kind, b.fault_module, b.fault_module_version,"          \
    " b.crash_count, b.host_count, "

/* $1 project $2 since ms $3 limit */
static const struct db__stmt st_top = {
    "buckets_top",
    "SELECT " BUCKET_COLS "w.n, triage_ms(b.first_seen), triage_ms(b.last_seen)"
    " FROM (SELECT bucket_key, sum(crash_count)::bigint AS n FROM bucket_rollup_minute"
    "       WHERE project = $1 AND minute >= date_trunc('minute', triage_ts($2::bigint))"
    "       GROUP BY bucket_key) w"
    " JOIN buckets b ON b.project = $1 AND b.bucket_key = w.bucket_key"
    " WHERE w.n > 0"
    " ORDER BY w.n DESC, b.bucket_key"
    " LIMIT $3::integer",
    3,
};

static const struct db__stmt st_bucket = {
    "bucket_get",
    "SELECT " BUCKET_COLS "b.crash_count, triage_ms(b.first_seen), triage_ms(b.last_seen)"
    " FROM buckets b WHERE b.project = $1 AND b.bucket_key = $2",
    2,
};

static const struct db__stmt st_crash = {
    "crash_get",
    "SELECT c.crash_id::text, c.status, c.idempotency_key, c.host_id, c.product, c.version,"
    "       c.channel, c.os, c.os_version, c.dump_sha256, c.spool_path, c.dump_format,"
    "       c.failure_reason, c.signature, c.bucket_key, c.fault_module,"
    "       c.fault_module_version, c.fault_point, c.stack_hash, c.annotations::text,"
    "       c.processed::text, triage_ms(c.crash_time), triage_ms(c.received_at),"
    "       triage_ms(c.analyzed_at), j.attempts, j.last_error"
    " FROM crashes c"
    " LEFT JOIN jobs j ON j.project = c.project AND j.crash_id = c.crash_id"
    " WHERE c.project = $1 AND c.crash_id = $2::uuid",
    2,
};

static const struct db__stmt st_depth = {
    "queue_depth",
    "SELECT (SELECT count(*) FROM jobs WHERE state = 'ready'),"
    "       (SELECT count(*) FROM jobs WHERE state = 'ready' AND run_after <= now()),"
    "       (SELECT count(*) FROM jobs WHERE state = 'running'),"
    "       (SELECT count(*) FROM jobs WHERE state = 'dead'),"
    "       (SELECT coalesce(triage_ms(now()) - triage_ms(min(run_after)), 0) FROM jobs"
    "         WHERE state = 'ready' AND run_after <= now())",
    0,
};

static const struct db__stmt st_backlog = {
    "queue_backlog",
    "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE state = 'ready' LIMIT $1::bigint) r",
    1,
};

static const struct db__stmt st_status = {
    "crash_status_counts",
    "SELECT status, count(*) FROM crashes WHERE project = $1 GROUP BY status",
    1,
};

void db_buckets_free(struct db_bucket *b, size_t count)
{
    if (!b)
        return;
    for (size_t i = 0; i < count; i++) {
        cm_free(b[i].bucket_key);
        cm_free(b[i].signature);
        cm_free(b[i].crash_kind);
        cm_free(b[i].fault_module);
        cm_free(b[i].fault_module_version);
    }
    cm_free(b);
}

static enum cm_code read_buckets(const PGresult *res, struct db_bucket **out, size_t *count,
                                 struct cm_err *err)
{
    int n = PQntuples(res);
    *out = NULL;
    *count = 0;
    if (n == 0)
        return CM_E_OK;
    struct db_bucket *b = cm_calloc((size_t)n, sizeof *b);
    if (!b)
        return cm_fail(err, CM_E_NOMEM, "buckets: out of memory for %d rows", n);
    bool oom = false;
    for (int i = 0; i < n; i++) {
        b[i].bucket_key = db__dup(res, i, 0, &oom);
        b[i].signature = db__dup(res, i, 1, &oom);
        b[i].crash_kind = db__dup(res, i, 2, &oom);
        b[i].fault_module = db__dup(res, i, 3, &oom);
        b[i].fault_module_version = db__dup(res, i, 4, &oom);
        b[i].crash_count = db__get_i64(res, i, 5);
        b[i].host_count = db__get_i64(res, i, 6);
        b[i].window_count = db__get_i64(res, i, 7);
        b[i].first_seen_ms = db__get_i64(res, i, 8);
        b[i].last_seen_ms = db__get_i64(res, i, 9);
    }
    if (oom) {
        db_buckets_free(b, (size_t)n);
        return cm_fail(err, CM_E_NOMEM, "buckets: out of memory for %d rows", n);
    }
    *out = b;
    *count = (size_t)n;
    return CM_E_OK;
}

enum cm_code db_buckets_top(struct db_conn *db, const char *project, int64_t since_ms, size_t top,
                            struct db_bucket **out, size_t *count, struct cm_err *err)
{
    *out = NULL;
    *count = 0;
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, project);
    db__arg_i64(&a, since_ms);
    db__arg_i64(&a, (int64_t)(top == 0 ? 100 : top > 100000 ? 100000 : top));
    PGresult *res = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "buckets: out of memory")
                               : db__exec(db, &st_top, a.v, &res, "buckets", err);
    if (!rc)
        rc = read_buckets(res, out, count, err);
    PQclear(res);
    db__args_free(&a);
    return rc;
}

enum cm_code db_bucket_get(struct db_conn *db, const char *project, const char *bucket_key,
                           struct db_bucket **out, struct cm_err *err)
{
    *out = NULL;
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, project);
    db__arg_str(&a, bucket_key ? bucket_key : "");
    PGresult *res = NULL;
    size_t n = 0;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "bucket: out of memory")
                               : db__exec(db, &st_bucket, a.v, &res, "bucket", err);
    if (!rc)
        rc = read_buckets(res, out, &n, err);
    if (!rc && n == 0)
        rc = cm_fail(err, CM_E_NOTFOUND, "bucket not found");
    PQclear(res);
    db__args_free(&a);
    return rc;
}

void db_crash_info_free(struct db_crash_info *c)
{
    if (!c)
        return;
    char **f[] = { &c->crash_id, &c->status, &c->idempotency_key, &c->host_id, &c->product,
                   &c->version, &c->channel, &c->os, &c->os_version, &c->dump_sha256,
                   &c->spool_path, &c->dump_format, &c->failure_reason, &c->signature,
                   &c->bucket_key, &c->fault_module, &c->fault_module_version, &c->fault_point,
                   &c->stack_hash, &c->annotations_json, &c->processed_json, &c->last_error };
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        cm_free(*f[i]);
    cm_free(c);
}

enum cm_code db_crash_get(struct db_conn *db, const char *project, const char *crash_id,
                          struct db_crash_info **out, struct cm_err *err)
{
    *out = NULL;
    if (!db__is_uuid(crash_id))
        return cm_fail(err, CM_E_NOTFOUND, "crash not found (not a crash id)");
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, project);
    db__arg_str(&a, crash_id);
    PGresult *res = NULL;
    struct db_crash_info *c = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "crash: out of memory")
                               : db__exec(db, &st_crash, a.v, &res, "crash", err);
    if (rc)
        goto out;
    if (PQntuples(res) == 0) {
        rc = cm_fail(err, CM_E_NOTFOUND, "crash %s not found", crash_id);
        goto out;
    }
    c = cm_calloc(1, sizeof *c);
    if (!c) {
        rc = cm_fail(err, CM_E_NOMEM, "crash: out of memory");
        goto out;
    }
    bool oom = false;
    char **f[] = { &c->crash_id, &c->status, &c->idempotency_key, &c->host_id, &c->product,
                   &c->version, &c->channel, &c->os, &c->os_version, &c->dump_sha256,
                   &c->spool_path, &c->dump_format, &c->failure_reason, &c->signature,
                   &c->bucket_key, &c->fault_module, &c->fault_module_version, &c->fault_point,
                   &c->stack_hash, &c->annotations_json, &c->processed_json };
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        *f[i] = db__dup(res, 0, (int)i, &oom);
    c->crash_time_ms = db__get_i64(res, 0, 21);
    c->received_at_ms = db__get_i64(res, 0, 22);
    c->analyzed_at_ms = db__get_i64(res, 0, 23);
    c->attempts = (int32_t)db__get_i64(res, 0, 24);
    c->last_error = db__dup(res, 0, 25, &oom);
    if (oom) {
        db_crash_info_free(c);
        c = NULL;
        rc = cm_fail(err, CM_E_NOMEM, "crash: out of memory");
        goto out;
    }
    *out = c;
out:
    PQclear(res);
    db__args_free(&a);
    return rc;
}

enum cm_code db_queue_depth(struct db_conn *db, struct db_queue_depth *out, struct cm_err *err)
{
    *out = (struct db_queue_depth){ 0 };
    PGresult *res = NULL;
    enum cm_code rc = db__exec(db, &st_depth, NULL, &res, "queue depth", err);
    if (!rc) {
        out->ready = db__get_i64(res, 0, 0);
        out->due = db__get_i64(res, 0, 1);
        out->running = db__get_i64(res, 0, 2);
        out->dead = db__get_i64(res, 0, 3);
        out->oldest_due_age_ms = db__get_i64(res, 0, 4);
    }
    PQclear(res);
    return rc;
}

enum cm_code db_queue_backlog(struct db_conn *db, int64_t limit, int64_t *out, struct cm_err *err)
{
    *out = 0;
    struct db__args a;
    db__args_init(&a);
    db__arg_i64(&a, limit > 0 ? limit : 1);
    PGresult *res = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "queue backlog: out of memory")
                               : db__exec(db, &st_backlog, a.v, &res, "queue backlog", err);
    if (!rc)
        *out = db__get_i64(res, 0, 0);
    PQclear(res);
    db__args_free(&a);
    return rc;
}

enum cm_code db_crash_status_counts(struct db_conn *db, const char *project,
                                    struct db_status_counts *out, struct cm_err *err)
{
    *out = (struct db_status_counts){ 0 };
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, project);
    PGresult *res = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "crash counts: out of memory")
                               : db__exec(db, &st_status, a.v, &res, "crash counts", err);
    for (int i = 0; !rc && i < PQntuples(res); i++) {
        const char *s = db__get(res, i, 0);
        int64_t n = db__get_i64(res, i, 1);
        if (!s)
            continue;
        if (strcmp(s, "received") == 0)
            out->received = n;
        else if (strcmp(s, "analyzing") == 0)
            out->analyzing = n;
        else if (strcmp(s, "done") == 0)
            out->done = n;
        else if (strcmp(s, "failed") == 0)
            out->failed = n;
        else if (strcmp(s, "dead") == 0)
            out->dead = n;
    }
    PQclear(res);
    db__args_free(&a);
    return rc;
}
