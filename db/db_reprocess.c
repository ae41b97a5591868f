/* db_reprocess.c -- re-queues analysis after new signature rules or symbols: by bucket, by
 * receive time, or all. The work is the SQL function triage_reprocess() (0001_init.sql): it
 * locks the matching crashes, takes their counts out of buckets, hosts and rollups, clears
 * their results and readies their jobs, in one statement and so one transaction. */
#include "db/db_int.h"

static const struct db__stmt st_reprocess = {
    "reprocess",
    "SELECT triage_reprocess($1, $2, triage_ts($3::bigint), $4::boolean)",
    4,
};

enum cm_code db_reprocess(struct db_conn *db, const struct db_reprocess_filter *f, size_t *count,
                          struct cm_err *err)
{
    if (count)
        *count = 0;
    bool has_bucket = f->bucket_key && *f->bucket_key;
    if (!has_bucket && f->since_ms == 0 && !f->all)
        return cm_fail(err, CM_E_USAGE, "reprocess: name a bucket, a start time, or all");
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, f->project);
    db__arg_str(&a, has_bucket ? f->bucket_key : NULL);
    if (f->since_ms)
        db__arg_i64(&a, f->since_ms);
    else
        db__arg_null(&a);
    db__arg_bool(&a, f->all);
    PGresult *res = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "reprocess: out of memory")
                               : db__exec(db, &st_reprocess, a.v, &res, "reprocess", err);
    if (!rc && count)
        *count = (size_t)db__get_i64(res, 0, 0);
    PQclear(res);
    db__args_free(&a);
    return rc;
}
