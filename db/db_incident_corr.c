/* db_incident_corr.c -- the counts behind an incident's correlations, as Socorro's crash
 * correlations count them for a signature: for each attribute of a crash (module@version loaded
 * in the process, OS version, product version, annotation values), how many of the incident's
 * crashes have it against how many of the other crashes in the same event-time window. Both
 * sides are sampled by crash id (random UUIDs, so an effectively random sample) to bound the
 * work during a flood; the scoring is the detector's (detector/det_model.c). Also stores the
 * scored result with the incident. docs/incidents.md describes both. */
#include "db/db_int.h"

#include <stdio.h>

#include "common/cm_alloc.h"

/* $1 project $2 id $3 from $4 to (ms) $5 sample per side $6 min incident crashes with it
 * $7 max rows. Columns: attribute, value, incident with, incident examined, rest with, rest
 * examined, incident total, rest total. Module attributes count only crashes whose module list
 * is known (a crash counted from a hint has none); the others count every examined crash. */
static const struct db__stmt st_counts = {
    "incident_corr_counts",
    "WITH i AS (SELECT kind, fault_module, fault_module_version FROM incidents"
    "           WHERE project = $1 AND incident_id = $2::bigint),"
    " mem AS (SELECT bucket_key FROM incident_buckets"
    "         WHERE project = $1 AND incident_id = $2::bigint AND spiked_at IS NOT NULL),"
    " win AS ("
    "  SELECT c.crash_id, c.received_at, c.os, c.os_version, c.product, c.version,"
    "         c.annotations,"
    "         coalesce(CASE WHEN (SELECT kind FROM i) = 'module'"
    "                       THEN c.fault_module = (SELECT fault_module FROM i)"
    "                            AND coalesce(c.fault_module_version, '')"
    "                                = (SELECT fault_module_version FROM i)"
    "                       ELSE c.bucket_key IN (SELECT bucket_key FROM mem) END, false) AS inc"
    "  FROM crashes c"
    "  WHERE c.project = $1 AND c.status = 'done'"
    "    AND c.event_at >= triage_ts($3::bigint) AND c.event_at < triage_ts($4::bigint)"
    "    AND c.received_at >= triage_ts($3::bigint)),"
    " tot AS (SELECT count(*) FILTER (WHERE inc) AS ti, count(*) FILTER (WHERE NOT inc) AS tr"
    "         FROM win),"
    " pop AS ((SELECT * FROM win WHERE inc ORDER BY crash_id LIMIT $5::bigint)"
    "         UNION ALL (SELECT * FROM win WHERE NOT inc ORDER BY crash_id LIMIT $5::bigint)),"
    " attrs AS ("
    "  SELECT DISTINCT p.inc, p.crash_id, 'module'::text AS attribute,"
    "         m.name || '@' || coalesce(m.version, m.code_id, m.debug_id, '?') AS value"
    "  FROM pop p JOIN crash_modules m ON m.project = $1 AND m.crash_id = p.crash_id"
    "                                 AND m.received_at = p.received_at"
    "  UNION ALL"
    "  SELECT p.inc, p.crash_id, 'os_version', concat_ws(' ', p.os, p.os_version) FROM pop p"
    "  WHERE coalesce(p.os, p.os_version) IS NOT NULL"
    "  UNION ALL"
    "  SELECT p.inc, p.crash_id, 'product_version', concat_ws(' ', p.product, p.version)"
    "  FROM pop p WHERE coalesce(p.product, p.version) IS NOT NULL"
    "  UNION ALL"
    "  SELECT p.inc, p.crash_id, 'annotation:' || a.key, a.value"
    "  FROM pop p CROSS JOIN LATERAL jsonb_each_text(p.annotations) a"
    "  WHERE length(a.key) <= 64 AND length(a.value) <= 256),"
    " n AS (SELECT count(*) FILTER (WHERE inc) AS ni, count(*) FILTER (WHERE NOT inc) AS nr"
    "       FROM pop),"
    " nm AS (SELECT count(DISTINCT crash_id) FILTER (WHERE inc) AS ni,"
    "               count(DISTINCT crash_id) FILTER (WHERE NOT inc) AS nr"
    "        FROM attrs WHERE attribute = 'module'),"
    " g AS (SELECT attribute, value, count(*) FILTER (WHERE inc) AS wi,"
    "              count(*) FILTER (WHERE NOT inc) AS wr FROM attrs GROUP BY 1, 2),"
    " x AS (SELECT g.attribute, g.value, g.wi,"
    "              CASE WHEN g.attribute = 'module' THEN nm.ni ELSE n.ni END AS di, g.wr,"
    "              CASE WHEN g.attribute = 'module' THEN nm.nr ELSE n.nr END AS dr,"
    "              tot.ti, tot.tr"
    "       FROM g, n, nm, tot WHERE g.wi >= $6::bigint)"
    " SELECT attribute, value, wi, di, wr, dr, ti, tr FROM x"
    " ORDER BY wi::float8 / greatest(di, 1) - wr::float8 / greatest(dr, 1) DESC, attribute, value"
    " LIMIT $7::bigint",
    7,
};

/* $1 project $2 id $3 attributes $4 values $5 incident % $6 overall % $7 rest % $8 scores
 * $9 incident counts $10 headline $11 now */
static const struct db__stmt st_analysis = {
    "incident_analysis",
    "UPDATE incidents SET correlations = coalesce(("
    "    SELECT jsonb_agg(jsonb_build_object('attribute', x.a, 'value', x.v,"
    "                                        'incident_pct', x.ip, 'overall_pct', x.op,"
    "                                        'rest_pct', x.rp, 'score', x.s,"
    "                                        'incident_count', x.n) ORDER BY x.o)"
    "    FROM unnest($3::text[], $4::text[], $5::float8[], $6::float8[], $7::float8[],"
    "                $8::float8[], $9::bigint[]) WITH ORDINALITY AS x(a, v, ip, op, rp, s, n, o)),"
    "    '[]'::jsonb),"
    "  headline = $10, analyzed_at = triage_ts($11::bigint)"
    " WHERE project = $1 AND incident_id = $2::bigint",
    11,
};

void db_corr_counts_free(struct db_corr_count *c, size_t count)
{
    if (!c)
        return;
    for (size_t i = 0; i < count; i++) {
        cm_free(c[i].attribute);
        cm_free(c[i].value);
    }
    cm_free(c);
}

enum cm_code db_incident_corr_counts(struct db_conn *db, const struct db_corr_query *q,
                                     struct db_corr_count **out, size_t *count,
                                     struct db_corr_totals *totals, struct cm_err *err)
{
    *out = NULL;
    *count = 0;
    *totals = (struct db_corr_totals){ 0 };
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, q->project);
    db__arg_i64(&a, q->id);
    db__arg_i64(&a, q->from_ms);
    db__arg_i64(&a, q->to_ms);
    db__arg_u64(&a, q->sample ? q->sample : 5000);
    db__arg_u64(&a, q->min_with ? q->min_with : 2);
    db__arg_u64(&a, q->max_rows ? q->max_rows : 500);
    PGresult *res = NULL;
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "correlations: out of memory")
                               : db__exec(db, &st_counts, a.v, &res, "correlations", err);
    size_t n = rc ? 0 : (size_t)PQntuples(res);
    if (n) {
        struct db_corr_count *c = cm_calloc(n, sizeof *c);
        bool oom = !c;
        for (size_t i = 0; c && i < n; i++) {
            int row = (int)i;
            c[i].attribute = db__dup(res, row, 0, &oom);
            c[i].value = db__dup(res, row, 1, &oom);
            c[i].incident_with = db__get_i64(res, row, 2);
            c[i].incident_n = db__get_i64(res, row, 3);
            c[i].rest_with = db__get_i64(res, row, 4);
            c[i].rest_n = db__get_i64(res, row, 5);
        }
        if (oom) {
            db_corr_counts_free(c, n);
            rc = cm_fail(err, CM_E_NOMEM, "correlations: out of memory for %zu rows", n);
        } else {
            totals->incident = db__get_i64(res, 0, 6);
            totals->rest = db__get_i64(res, 0, 7);
            *out = c;
            *count = n;
        }
    }
    PQclear(res);
    db__args_free(&a);
    return rc;
}

static void arr_num(struct cm_buf *b, double v)
{
    char t[40];
    snprintf(t, sizeof t, "%.4f", v);
    db__arr_str(b, t);
}

enum cm_code db_incident_set_analysis(struct db_conn *db, const char *project, int64_t id,
                                      const struct db_corr *corr, size_t count,
                                      const char *headline, int64_t now_ms, struct cm_err *err)
{
    struct cm_buf b[7];
    for (int k = 0; k < 7; k++)
        db__arr_begin(&b[k]);
    for (size_t i = 0; i < count; i++) {
        db__arr_str(&b[0], corr[i].attribute ? corr[i].attribute : "");
        db__arr_str(&b[1], corr[i].value ? corr[i].value : "");
        arr_num(&b[2], corr[i].incident_pct);
        arr_num(&b[3], corr[i].overall_pct);
        arr_num(&b[4], corr[i].rest_pct);
        arr_num(&b[5], corr[i].score);
        db__arr_i64(&b[6], corr[i].incident_count);
    }
    struct db__args a;
    db__args_init(&a);
    db__arg_project(&a, project);
    db__arg_i64(&a, id);
    for (int k = 0; k < 7; k++) {
        db__arr_end(&b[k]);
        db__arg_buf(&a, &b[k]);
    }
    db__arg_str(&a, headline ? headline : "");
    db__arg_i64(&a, now_ms);
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "incident analysis: out of memory")
                               : db__exec(db, &st_analysis, a.v, NULL, "incident analysis", err);
    db__args_free(&a);
    return rc;
}
