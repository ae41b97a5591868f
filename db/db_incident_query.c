/* db_incident_query.c -- reading incidents for responders and the detector: the list, one
 * incident with its buckets, correlations and sample crashes, and the JSON object that
 * `triagectl incidents --json`, the webhook and dashboards share (triage_incident_json,
 * migration 0004). */
#include "db/db_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/cm_alloc.h"

/* $1 project $2 open only $3 limit $4 one id (NULL: all) */
static const struct db__stmt st_select = {
    "incidents_select",
    "SELECT i.project, i.incident_id, i.status, i.kind, i.fault_module, i.fault_module_version,"
    "       i.bucket_key, i.headline, triage_ms(i.opened_at), triage_ms(i.onset_at),"
    "       triage_ms(i.last_spike_at), triage_ms(i.closed_at), triage_ms(i.updated_at),"
    "       triage_ms(i.first_seen), triage_ms(i.analyzed_at), triage_ms(i.peak_at),"
    "       i.crashes, i.hosts, i.peak_per_minute,"
    "       (SELECT count(*) FROM incident_buckets ib"
    "        WHERE ib.project = i.project AND ib.incident_id = i.incident_id),"
    "       i.baseline_per_hour, i.open_score, triage_ms(i.series_start), i.series::text,"
    "       i.revision, coalesce((i.correlations -> 0 ->> 'attribute') || '='"
    "                            || (i.correlations -> 0 ->> 'value'), ''),"
    "       i.published_status, i.published_top, i.published_buckets, i.published_peak"
    " FROM incidents i"
    " WHERE i.project = $1 AND (NOT $2::boolean OR i.status = 'open')"
    "   AND ($4::bigint IS NULL OR i.incident_id = $4::bigint)"
    " ORDER BY i.opened_at DESC, i.incident_id DESC LIMIT $3::bigint",
    4,
};

/* $1 project $2 id */
static const struct db__stmt st_buckets = {
    "incident_buckets_get",
    "SELECT ib.bucket_key, b.signature, ib.crashes, ib.hosts, triage_ms(ib.first_seen),"
    "       triage_ms(ib.last_seen), triage_ms(ib.spiked_at)"
    " FROM incident_buckets ib"
    " LEFT JOIN buckets b ON b.project = ib.project AND b.bucket_key = ib.bucket_key"
    " WHERE ib.project = $1 AND ib.incident_id = $2::bigint"
    " ORDER BY ib.crashes DESC, ib.bucket_key",
    2,
};

/* $1 project $2 id */
static const struct db__stmt st_corr = {
    "incident_corr_get",
    "SELECT x.attribute, x.value, x.incident_pct, x.overall_pct, x.rest_pct, x.score,"
    "       x.incident_count"
    " FROM incidents i CROSS JOIN LATERAL jsonb_to_recordset(i.correlations)"
    "      AS x(attribute text, value text, incident_pct float8, overall_pct float8,"
    "           rest_pct float8, score float8, incident_count bigint)"
    " WHERE i.project = $1 AND i.incident_id = $2::bigint",
    2,
};

/* The latest crashes of the incident. $1 project $2 id $3 limit */
static const struct db__stmt st_samples = {
    "incident_samples",
    "SELECT c.crash_id::text FROM incidents i JOIN crashes c ON c.project = i.project"
    " WHERE i.project = $1 AND i.incident_id = $2::bigint AND c.status = 'done'"
    "   AND c.event_at >= i.onset_at AND c.received_at >= i.onset_at"
    "   AND c.event_at < coalesce(i.closed_at, 'infinity')"
    "   AND CASE WHEN i.kind = 'module'"
    "            THEN c.fault_module = i.fault_module"
    "                 AND coalesce(c.fault_module_version, '') = i.fault_module_version"
    "            ELSE c.bucket_key IN (SELECT ib.bucket_key FROM incident_buckets ib"
    "                                  WHERE ib.project = $1 AND ib.incident_id = $2::bigint"
    "                                    AND ib.spiked_at IS NOT NULL) END"
    " ORDER BY c.event_at DESC, c.crash_id LIMIT $3::bigint",
    3,
};

/* $1 project $2 id */
static const struct db__stmt st_json = {
    "incident_json", "SELECT triage_incident_json($1, $2::bigint)::text", 2
};

/* $1 project $2 open only $3 limit */
static const struct db__stmt st_json_list = {
    "incidents_json",
    "SELECT coalesce(jsonb_agg(triage_incident_json(project, incident_id)"
    "                          ORDER BY opened_at DESC, incident_id DESC), '[]')::text"
    " FROM (SELECT project, incident_id, opened_at FROM incidents"
    "       WHERE project = $1 AND (NOT $2::boolean OR status = 'open')"
    "       ORDER BY opened_at DESC, incident_id DESC LIMIT $3::bigint) x",
    3,
};

static void incident_clear(struct db_incident *x)
{
    char **f[] = { &x->project, &x->status, &x->kind, &x->fault_module,
                   &x->fault_module_version, &x->bucket_key, &x->headline, &x->top_correlation,
                   &x->published_status, &x->published_top };
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        cm_free(*f[i]);
    cm_free(x->series);
    for (size_t i = 0; i < x->buckets_len; i++) {
        cm_free(x->buckets[i].bucket_key);
        cm_free(x->buckets[i].signature);
    }
    cm_free(x->buckets);
    for (size_t i = 0; i < x->corr_count; i++) {
        cm_free(x->corr[i].attribute);
        cm_free(x->corr[i].value);
    }
    cm_free(x->corr);
    for (size_t i = 0; i < x->sample_count; i++)
        cm_free(x->sample_crash_ids[i]);
    cm_free(x->sample_crash_ids);
}

void db_incidents_free(struct db_incident *list, size_t count)
{
    if (!list)
        return;
    for (size_t i = 0; i < count; i++)
        incident_clear(&list[i]);
    cm_free(list);
}

/* "{1,2,3}" (a bigint[] in text form) into an array. */
static bool parse_series(const char *s, int64_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!s || s[0] != '{')
        return true;
    size_t n = 0;
    for (const char *p = s + 1; *p && *p != '}'; p++)
        n += *p == ',';
    if (s[1] != '}')
        n++;
    if (!n)
        return true;
    int64_t *v = cm_calloc(n, sizeof *v);
    if (!v)
        return false;
    const char *p = s + 1;
    for (size_t i = 0; i < n; i++) {
        char *end;
        v[i] = strtoll(p, &end, 10);
        p = *end == ',' ? end + 1 : end;
    }
    *out = v;
    *len = n;
    return true;
}

static bool read_incident(const PGresult *res, int row, struct db_incident *x)
{
    bool oom = false;
    x->project = db__dup(res, row, 0, &oom);
    x->id = db__get_i64(res, row, 1);
    x->status = db__dup(res, row, 2, &oom);
    x->kind = db__dup(res, row, 3, &oom);
    x->fault_module = db__dup(res, row, 4, &oom);
    x->fault_module_version = db__dup(res, row, 5, &oom);
    x->bucket_key = db__dup(res, row, 6, &oom);
    x->headline = db__dup(res, row, 7, &oom);
    int64_t *times[] = { &x->opened_at_ms, &x->onset_ms, &x->last_spike_ms, &x->closed_at_ms,
                         &x->updated_at_ms, &x->first_seen_ms, &x->analyzed_at_ms,
                         &x->peak_at_ms };
    for (int k = 0; k < 8; k++)
        *times[k] = db__get_i64(res, row, 8 + k);
    x->crashes = db__get_i64(res, row, 16);
    x->hosts = db__get_i64(res, row, 17);
    x->peak_per_minute = db__get_i64(res, row, 18);
    x->bucket_count = db__get_i64(res, row, 19);
    const char *f = db__get(res, row, 20);
    x->baseline_per_hour = f ? strtod(f, NULL) : 0;
    f = db__get(res, row, 21);
    x->open_score = f ? strtod(f, NULL) : 0;
    x->series_start_ms = db__get_i64(res, row, 22);
    oom = oom || !parse_series(db__get(res, row, 23), &x->series, &x->series_len);
    x->revision = (int32_t)db__get_i64(res, row, 24);
    x->top_correlation = db__dup(res, row, 25, &oom);
    x->published_status = db__dup(res, row, 26, &oom);
    x->published_top = db__dup(res, row, 27, &oom);
    x->published_buckets = db__get_i64(res, row, 28);
    x->published_peak = db__get_i64(res, row, 29);
    return !oom;
}

static enum cm_code select_incidents(struct db_conn *db, const char *project, bool open_only,
                                     size_t limit, int64_t id, struct db_incident **out,
                                     size_t *count, struct cm_err *err)
{
    *out = NULL;
    *count = 0;
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, project);
    db__arg_bool(&a, open_only);
    db__arg_u64(&a, limit ? limit : 100);
    if (id)
        db__arg_i64(&a, id);
    else
        db__arg_null(&a);
    PGresult *res = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "incidents: out of memory")
                               : db__exec(db, &st_select, a.v, &res, "incidents", err);
    size_t n = rc ? 0 : (size_t)PQntuples(res);
    if (n) {
        struct db_incident *x = cm_calloc(n, sizeof *x);
        bool ok = x != NULL;
        for (size_t i = 0; ok && i < n; i++)
            ok = read_incident(res, (int)i, &x[i]);
        if (!ok) {
            db_incidents_free(x, n);
            rc = cm_fail(err, CM_E_NOMEM, "incidents: out of memory");
        } else {
            *out = x;
            *count = n;
        }
    }
    PQclear(res);
    db__args_free(&a);
    return rc;
}

enum cm_code db_incidents_list(struct db_conn *db, const char *project, bool open_only,
                               size_t limit, struct db_incident **out, size_t *count,
                               struct cm_err *err)
{
    return select_incidents(db, project, open_only, limit, 0, out, count, err);
}

static bool read_buckets(const PGresult *res, struct db_incident *x)
{
    size_t n = (size_t)PQntuples(res);
    if (!n)
        return true;
    x->buckets = cm_calloc(n, sizeof *x->buckets);
    if (!x->buckets)
        return false;
    x->buckets_len = n;
    bool oom = false;
    for (size_t i = 0; i < n; i++) {
        struct db_incident_bucket *b = &x->buckets[i];
        int row = (int)i;
        b->bucket_key = db__dup(res, row, 0, &oom);
        b->signature = db__dup(res, row, 1, &oom);
        b->crashes = db__get_i64(res, row, 2);
        b->hosts = db__get_i64(res, row, 3);
        b->first_seen_ms = db__get_i64(res, row, 4);
        b->last_seen_ms = db__get_i64(res, row, 5);
        b->spiked_at_ms = db__get_i64(res, row, 6);
    }
    return !oom;
}

static bool read_corr(const PGresult *res, struct db_incident *x)
{
    size_t n = (size_t)PQntuples(res);
    if (!n)
        return true;
    x->corr = cm_calloc(n, sizeof *x->corr);
    if (!x->corr)
        return false;
    x->corr_count = n;
    bool oom = false;
    for (size_t i = 0; i < n; i++) {
        struct db_corr *c = &x->corr[i];
        int row = (int)i;
        c->attribute = db__dup(res, row, 0, &oom);
        c->value = db__dup(res, row, 1, &oom);
        double *d[] = { &c->incident_pct, &c->overall_pct, &c->rest_pct, &c->score };
        for (int k = 0; k < 4; k++) {
            const char *v = db__get(res, row, 2 + k);
            *d[k] = v ? strtod(v, NULL) : 0;
        }
        c->incident_count = db__get_i64(res, row, 6);
    }
    return !oom;
}

static bool read_samples(const PGresult *res, struct db_incident *x)
{
    size_t n = (size_t)PQntuples(res);
    if (!n)
        return true;
    x->sample_crash_ids = cm_calloc(n, sizeof *x->sample_crash_ids);
    if (!x->sample_crash_ids)
        return false;
    x->sample_count = n;
    bool oom = false;
    for (size_t i = 0; i < n; i++)
        x->sample_crash_ids[i] = db__dup(res, (int)i, 0, &oom);
    return !oom;
}

enum cm_code db_incident_get(struct db_conn *db, const char *project, int64_t id, size_t samples,
                             struct db_incident **out, struct cm_err *err)
{
    *out = NULL;
    struct db_incident *x = NULL;
    size_t n = 0;
    enum cm_code rc =
        id > 0 ? select_incidents(db, project, false, 1, id, &x, &n, err) : CM_E_OK;
    if (rc)
        return rc;
    if (n == 0)
        return cm_fail(err, CM_E_NOTFOUND, "incident %lld not found", (long long)id);
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, project);
    db__arg_i64(&a, id);
    db__arg_u64(&a, samples);
    PGresult *res = NULL;
    if (a.failed)
        rc = cm_fail(err, CM_E_NOMEM, "incident: out of memory");
    if (!rc && !(rc = db__exec(db, &st_buckets, a.v, &res, "incident buckets", err)) &&
        !read_buckets(res, x))
        rc = cm_fail(err, CM_E_NOMEM, "incident: out of memory for buckets");
    PQclear(res);
    res = NULL;
    if (!rc && !(rc = db__exec(db, &st_corr, a.v, &res, "incident correlations", err)) &&
        !read_corr(res, x))
        rc = cm_fail(err, CM_E_NOMEM, "incident: out of memory for correlations");
    PQclear(res);
    res = NULL;
    if (!rc && samples &&
        !(rc = db__exec(db, &st_samples, a.v, &res, "incident samples", err)) &&
        !read_samples(res, x))
        rc = cm_fail(err, CM_E_NOMEM, "incident: out of memory for samples");
    PQclear(res);
    db__args_free(&a);
    if (rc) {
        db_incidents_free(x, n);
        return rc;
    }
    *out = x;
    return CM_E_OK;
}

static enum cm_code one_text(struct db_conn *db, const struct db__stmt *st, struct db__args *a,
                             char **out, const char *what, struct cm_err *err)
{
    PGresult *res = NULL;
    enum cm_code rc = a->failed ? cm_fail(err, CM_E_NOMEM, "%s: out of memory", what)
                                : db__exec(db, st, a->v, &res, what, err);
    if (!rc && (PQntuples(res) != 1 || !db__get(res, 0, 0)))
        rc = cm_fail(err, CM_E_NOTFOUND, "%s: not found", what);
    if (!rc) {
        bool oom = false;
        *out = db__dup(res, 0, 0, &oom);
        if (oom)
            rc = cm_fail(err, CM_E_NOMEM, "%s: out of memory", what);
    }
    PQclear(res);
    db__args_free(a);
    return rc;
}

enum cm_code db_incident_json(struct db_conn *db, const char *project, int64_t id, char **out,
                              struct cm_err *err)
{
    *out = NULL;
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, project);
    db__arg_i64(&a, id);
    return one_text(db, &st_json, &a, out, "incident json", err);
}

enum cm_code db_incidents_json(struct db_conn *db, const char *project, bool open_only,
                               size_t limit, char **out, struct cm_err *err)
{
    *out = NULL;
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, project);
    db__arg_bool(&a, open_only);
    db__arg_u64(&a, limit ? limit : 100);
    return one_text(db, &st_json_list, &a, out, "incidents json", err);
}
