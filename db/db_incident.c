/* db_incident.c -- writing incidents (migration 0004): open or mark spiking, refresh the counts,
 * series and buckets from the rollups and crash rows, close, and publish a change with NOTIFY.
 * The detector decides (detector/); this file only keeps the rows. Every time is the caller's
 * clock. docs/incidents.md describes the model. */
#include "db/db_int.h"

#include <stdio.h>
#include <string.h>

/* $1 project $2 module $3 version $4 bucket $5 now $6 onset $7 module level $8 baseline/hour
 * $9 score $10 first seen (ms, NULL unknown). The group key is a JSON array, so no module name
 * can collide with another key. */
static const struct db__stmt st_spike = {
    "incident_spike",
    "INSERT INTO incidents AS i (project, group_key, kind, fault_module, fault_module_version,"
    "                            bucket_key, opened_at, onset_at, last_spike_at, updated_at,"
    "                            first_seen, baseline_per_hour, open_score)"
    " VALUES ($1, CASE WHEN $2::text IS NOT NULL"
    "                  THEN jsonb_build_array('m', $2::text, coalesce($3::text, ''))::text"
    "                  ELSE jsonb_build_array('b', $4::text)::text END,"
    "         CASE WHEN $7::boolean THEN 'module' ELSE 'buckets' END,"
    "         $2, coalesce($3, ''), CASE WHEN $2::text IS NULL THEN $4 END,"
    "         triage_ts($5::bigint), triage_ts($6::bigint), triage_ts($5::bigint),"
    "         triage_ts($5::bigint), triage_ts($10::bigint), $8::float8, $9::float8)"
    " ON CONFLICT (project, group_key) WHERE status = 'open' DO UPDATE SET"
    "   last_spike_at = greatest(i.last_spike_at, excluded.last_spike_at),"
    "   kind = CASE WHEN excluded.kind = 'module' THEN 'module' ELSE i.kind END,"
    "   updated_at = greatest(i.updated_at, excluded.updated_at)"
    " RETURNING incident_id, (xmax = 0)",
    10,
};

/* $1 project $2 id */
static const struct db__stmt st_lock = {
    "incident_lock",
    "SELECT kind, fault_module, fault_module_version, triage_ms(onset_at) FROM incidents"
    " WHERE project = $1 AND incident_id = $2::bigint FOR UPDATE",
    2,
};

/* $1 project $2 id $3 buckets $4 now */
static const struct db__stmt st_spiked = {
    "incident_spiked",
    "INSERT INTO incident_buckets AS ib (project, incident_id, bucket_key, spiked_at)"
    " SELECT $1, $2::bigint, b, triage_ts($4::bigint) FROM unnest($3::text[]) AS u(b)"
    " GROUP BY b ORDER BY b"
    " ON CONFLICT (project, incident_id, bucket_key) DO UPDATE"
    "   SET spiked_at = coalesce(ib.spiked_at, excluded.spiked_at)",
    4,
};

/* The buckets' own numbers come from the crash rows (exact hosts). Event times bound the
 * partitions too: a crash's event time is never after its receive time. */
#define BUCKETS_UPSERT                                                                           \
    "INSERT INTO incident_buckets AS ib (project, incident_id, bucket_key, crashes, hosts,"     \
    "                                    first_seen, last_seen)"                                \
    " SELECT $1, $2::bigint, c.bucket_key, count(*), count(DISTINCT nullif(c.host_id, '')),"   \
    "        min(c.event_at), max(c.event_at)"                                                  \
    " FROM crashes c"                                                                           \
    " WHERE c.project = $1 AND c.status = 'done' AND c.bucket_key IS NOT NULL"                  \
    "   AND c.event_at >= triage_ts($3::bigint) AND c.event_at < triage_ts($4::bigint)"         \
    "   AND c.received_at >= triage_ts($3::bigint) AND "
#define BUCKETS_UPSERT_END                                                                       \
    " GROUP BY c.bucket_key ORDER BY c.bucket_key"                                              \
    " ON CONFLICT (project, incident_id, bucket_key) DO UPDATE SET"                             \
    "   crashes = excluded.crashes, hosts = excluded.hosts, first_seen = excluded.first_seen,"  \
    "   last_seen = excluded.last_seen"

/* $1 project $2 id $3 onset $4 end $5 module $6 version */
static const struct db__stmt st_buckets_module = {
    "incident_buckets_module",
    BUCKETS_UPSERT "c.fault_module = $5 AND coalesce(c.fault_module_version, '') = $6"
    BUCKETS_UPSERT_END,
    6,
};

/* $1 project $2 id $3 onset $4 end */
static const struct db__stmt st_buckets_members = {
    "incident_buckets_members",
    BUCKETS_UPSERT "c.bucket_key IN (SELECT m.bucket_key FROM incident_buckets m"
    "                   WHERE m.project = $1 AND m.incident_id = $2::bigint"
    "                     AND m.spiked_at IS NOT NULL)"
    BUCKETS_UPSERT_END,
    4,
};

/* The totals, series and peak. t: (crashes, hosts sketch) since the onset; s: (minute, n). */
#define TOTALS_UPDATE                                                                            \
    " p AS (SELECT n, minute FROM s WHERE minute >= triage_ts($3::bigint)"                      \
    "       ORDER BY n DESC, minute LIMIT 1)"                                                   \
    " UPDATE incidents i SET crashes = t.crashes, hosts = triage_hll_estimate(t.hosts),"        \
    "   series_start = triage_ts($5::bigint),"                                                  \
    "   series = (SELECT coalesce(array_agg(n ORDER BY minute), '{}') FROM s),"                 \
    "   peak_per_minute = greatest(i.peak_per_minute, coalesce((SELECT n FROM p), 0)),"        \
    "   peak_at = CASE WHEN coalesce((SELECT n FROM p), 0) > i.peak_per_minute"                 \
    "                  THEN (SELECT minute FROM p) ELSE i.peak_at END,"                         \
    "   updated_at = triage_ts($6::bigint)"                                                     \
    " FROM t WHERE i.project = $1 AND i.incident_id = $2::bigint"
#define SERIES_MINUTES                                                                           \
    " generate_series(triage_ts($5::bigint), triage_ts($4::bigint) - interval '1 minute',"      \
    "                 interval '1 minute') AS g"

/* $1 project $2 id $3 onset $4 end $5 series start $6 now $7 module $8 version */
static const struct db__stmt st_totals_module = {
    "incident_totals_module",
    "WITH t AS (SELECT * FROM triage_module_window($1, $7, $8, triage_ts($3::bigint),"
    "                                              triage_ts($4::bigint), true)),"
    " s AS (SELECT g AS minute, coalesce(r.crash_count, 0) AS n FROM" SERIES_MINUTES
    "       LEFT JOIN module_rollup_minute r ON r.project = $1 AND r.fault_module = $7"
    "            AND r.fault_module_version = $8 AND r.minute = g),"
    TOTALS_UPDATE,
    8,
};

/* $1 project $2 id $3 onset $4 end $5 series start $6 now */
static const struct db__stmt st_totals_members = {
    "incident_totals_members",
    "WITH m AS (SELECT bucket_key FROM incident_buckets"
    "           WHERE project = $1 AND incident_id = $2::bigint AND spiked_at IS NOT NULL),"
    " t AS (SELECT coalesce(sum(w.crashes), 0)::bigint AS crashes,"
    "              triage_hll_union_agg(w.hosts) AS hosts"
    "       FROM m CROSS JOIN LATERAL triage_bucket_window($1, m.bucket_key,"
    "                triage_ts($3::bigint), triage_ts($4::bigint), true) w),"
    " rm AS (SELECT r.minute, sum(r.crash_count) AS n FROM bucket_rollup_minute r"
    "        JOIN m ON m.bucket_key = r.bucket_key"
    "        WHERE r.project = $1 AND r.minute >= triage_ts($5::bigint)"
    "          AND r.minute < triage_ts($4::bigint) GROUP BY r.minute),"
    " s AS (SELECT g AS minute, coalesce(rm.n, 0)::bigint AS n FROM" SERIES_MINUTES
    "       LEFT JOIN rm ON rm.minute = g),"
    TOTALS_UPDATE,
    6,
};

/* $1 project $2 id $3 now */
static const struct db__stmt st_close = {
    "incident_close",
    "UPDATE incidents SET status = 'closed', closed_at = triage_ts($3::bigint),"
    "  updated_at = triage_ts($3::bigint)"
    " WHERE project = $1 AND incident_id = $2::bigint AND status = 'open'"
    " RETURNING incident_id",
    3,
};

/* $1 project $2 id $3 channel $4 event */
static const struct db__stmt st_publish = {
    "incident_publish",
    "WITH u AS ("
    "  UPDATE incidents i SET revision = i.revision + 1, published_status = i.status,"
    "    published_buckets = (SELECT count(*) FROM incident_buckets ib"
    "                         WHERE ib.project = i.project AND ib.incident_id = i.incident_id),"
    "    published_peak = i.peak_per_minute,"
    "    published_top = coalesce((i.correlations -> 0 ->> 'attribute') || '='"
    "                             || (i.correlations -> 0 ->> 'value'), '')"
    "  WHERE i.project = $1 AND i.incident_id = $2::bigint"
    "  RETURNING i.project, i.incident_id, i.status, i.revision, i.fault_module,"
    "            i.fault_module_version, i.bucket_key)"
    " SELECT u.revision, pg_notify($3, json_build_object("
    "   'project', u.project, 'id', u.incident_id, 'event', $4::text, 'status', u.status,"
    "   'revision', u.revision, 'fault_module', left(u.fault_module, 256),"
    "   'fault_module_version', left(u.fault_module_version, 256),"
    "   'bucket_key', left(u.bucket_key, 256))::text)"
    " FROM u",
    4,
};

enum cm_code db_incident_spike(struct db_conn *db, const struct db_incident_key *k,
                               const struct db_incident_spike *s, int64_t *id, bool *opened,
                               struct cm_err *err)
{
    *id = 0;
    if (opened)
        *opened = false;
    if (!k->fault_module && (!k->bucket_key || !*k->bucket_key))
        return cm_fail(err, CM_E_USAGE, "incident: a key needs a fault module or a bucket");
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, k->project);
    db__arg_str(&a, k->fault_module);
    db__arg_str(&a, k->fault_module_version ? k->fault_module_version : "");
    db__arg_str(&a, k->bucket_key);
    db__arg_i64(&a, s->now_ms);
    db__arg_i64(&a, s->onset_ms);
    db__arg_bool(&a, s->module_level && k->fault_module);
    char base[40], score[40];
    snprintf(base, sizeof base, "%.6g", s->baseline_per_hour);
    snprintf(score, sizeof score, "%.6g", s->score);
    db__arg_str(&a, base);
    db__arg_str(&a, score);
    if (s->first_seen_ms > 0)
        db__arg_i64(&a, s->first_seen_ms);
    else
        db__arg_null(&a);
    PGresult *res = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "incident: out of memory")
                               : db__exec(db, &st_spike, a.v, &res, "incident spike", err);
    if (!rc && PQntuples(res) == 1) {
        *id = db__get_i64(res, 0, 0);
        if (opened) {
            const char *o = db__get(res, 0, 1);
            *opened = o && o[0] == 't';
        }
    } else if (!rc) {
        rc = cm_fail(err, CM_E_DB, "incident spike: no row returned");
    }
    PQclear(res);
    db__args_free(&a);
    return rc;
}

static int64_t floor_minute(int64_t ms) { return ms - ((ms % 60000) + 60000) % 60000; }

/* The steps of a refresh, inside the caller's transaction. */
static enum cm_code refresh_steps(struct db_conn *db, struct db__args *a,
                                  const struct db_incident_refresh *r, struct cm_err *err)
{
    PGresult *res = NULL;
    enum cm_code rc = db__exec(db, &st_lock, a->v, &res, "incident refresh", err);
    if (rc)
        return rc;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return cm_fail(err, CM_E_NOTFOUND, "incident %s not found", a->v[1]);
    }
    bool module = strcmp(db__get(res, 0, 0), "module") == 0;
    /* Copies: the parameters must outlive res. */
    for (int col = 1; col <= 2; col++) { /* [2] module (NULL for a bucket), [3] version */
        const char *val = db__get(res, 0, col);
        char *copy = val ? cm_arena_strdup(&a->arena, val) : NULL;
        a->failed = a->failed || (val && !copy);
        db__arg_str(a, copy);
    }
    int64_t onset = db__get_i64(res, 0, 3);
    PQclear(res);
    int64_t end = floor_minute(r->end_ms);
    if (end <= onset)
        end = floor_minute(onset) + 60000;
    size_t points = r->max_points ? r->max_points : 1440;
    int64_t start = floor_minute(onset - (r->context_ms > 0 ? r->context_ms : 0));
    if ((end - start) / 60000 > (int64_t)points)
        start = end - (int64_t)points * 60000;
    db__arg_i64(a, onset);    /* [4] */
    db__arg_i64(a, end);      /* [5] */
    db__arg_i64(a, start);    /* [6] */
    db__arg_i64(a, r->now_ms); /* [7] */
    if (r->spiking_count) {
        struct cm_buf b;
        db__arr_begin(&b);
        for (size_t i = 0; i < r->spiking_count; i++)
            db__arr_str(&b, r->spiking_buckets[i]);
        db__arr_end(&b);
        db__arg_buf(a, &b); /* [8] */
    }
    if (a->failed)
        return cm_fail(err, CM_E_NOMEM, "incident refresh: out of memory");
    const char *const *v = a->v;
    if (r->spiking_count) {
        const char *p[] = { v[0], v[1], v[8], v[7] };
        rc = db__exec(db, &st_spiked, p, NULL, "incident buckets", err);
    }
    if (!rc && module) {
        const char *p[] = { v[0], v[1], v[4], v[5], v[2], v[3] };
        rc = db__exec(db, &st_buckets_module, p, NULL, "incident buckets", err);
    } else if (!rc) {
        const char *p[] = { v[0], v[1], v[4], v[5] };
        rc = db__exec(db, &st_buckets_members, p, NULL, "incident buckets", err);
    }
    if (!rc && module) {
        const char *p[] = { v[0], v[1], v[4], v[5], v[6], v[7], v[2], v[3] };
        rc = db__exec(db, &st_totals_module, p, NULL, "incident totals", err);
    } else if (!rc) {
        const char *p[] = { v[0], v[1], v[4], v[5], v[6], v[7] };
        rc = db__exec(db, &st_totals_members, p, NULL, "incident totals", err);
    }
    return rc;
}

enum cm_code db_incident_refresh(struct db_conn *db, const char *project, int64_t id,
                                 const struct db_incident_refresh *r, struct cm_err *err)
{
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, project); /* [0] */
    db__arg_i64(&a, id);          /* [1] */
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "incident refresh: out of memory")
                               : db__begin(db, err);
    if (!rc) {
        rc = refresh_steps(db, &a, r, err);
        if (!rc)
            rc = db__commit(db, err);
        if (rc)
            db__rollback(db);
    }
    db__args_free(&a);
    return rc;
}

enum cm_code db_incident_close(struct db_conn *db, const char *project, int64_t id,
                               int64_t now_ms, bool *closed, struct cm_err *err)
{
    if (closed)
        *closed = false;
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, project);
    db__arg_i64(&a, id);
    db__arg_i64(&a, now_ms);
    PGresult *res = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "incident close: out of memory")
                               : db__exec(db, &st_close, a.v, &res, "incident close", err);
    if (!rc && closed)
        *closed = PQntuples(res) == 1;
    PQclear(res);
    db__args_free(&a);
    return rc;
}

enum cm_code db_incident_publish(struct db_conn *db, const char *project, int64_t id,
                                 const char *channel, const char *event, int32_t *revision,
                                 struct cm_err *err)
{
    if (revision)
        *revision = 0;
    if (!channel || !*channel || strlen(channel) > 63)
        return cm_fail(err, CM_E_USAGE, "incident publish: channel name must be 1 to 63 bytes");
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, project);
    db__arg_i64(&a, id);
    db__arg_str(&a, channel);
    db__arg_str(&a, event ? event : "changed");
    PGresult *res = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "incident publish: out of memory")
                               : db__exec(db, &st_publish, a.v, &res, "incident publish", err);
    if (!rc && PQntuples(res) != 1)
        rc = cm_fail(err, CM_E_NOTFOUND, "incident %lld not found", (long long)id);
    else if (!rc && revision)
        *revision = (int32_t)db__get_i64(res, 0, 0);
    PQclear(res);
    db__args_free(&a);
    return rc;
}
