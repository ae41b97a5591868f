/* det_corr.c -- an incident's correlations and headline. The counts come from the database
 * (db_incident_corr_counts: the incident's crashes against every other crash of the project in
 * the same event-time window, stretched back to correlation_window so a young incident has a
 * population to compare with); det_score_correlations ranks them; the best one names the likely
 * cause in the headline ("netdrv.sys 7.4.1 is crashing 812 hosts (2403 crashes in 57 buckets),
 * new since ...; likely cause: module netdrv.sys@7.4.1 (100% of its crashes vs 9% overall)"). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/cm_alloc.h"
#include "common/cm_buf.h"
#include "detector/det_int.h"

/* A correlation names a cause in the headline only when at least this significant
 * (p <= 0.01). */
#define CAUSE_MIN_SCORE 2.0

static const char *time_text(int64_t ms, char *buf, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static const char *plural(int64_t n) { return n == 1 ? "" : "s"; }

enum cm_code det__headline(const struct det_conf *c, const struct db_incident *x,
                           const struct db_corr *top, char **out, struct cm_err *err)
{
    *out = NULL;
    struct cm_buf b;
    cm_buf_init(&b, 2048);
    if (x->fault_module)
        cm_buf_printf(&b, NULL, "%.200s%s%.200s", x->fault_module,
                      x->fault_module_version && *x->fault_module_version ? " " : "",
                      x->fault_module_version ? x->fault_module_version : "");
    else
        cm_buf_printf(&b, NULL, "bucket %.16s", x->bucket_key ? x->bucket_key : "?");
    cm_buf_printf(&b, NULL, " is crashing %lld host%s (%lld crash%s in %lld bucket%s)",
                  (long long)x->hosts, plural(x->hosts), (long long)x->crashes,
                  x->crashes == 1 ? "" : "es", (long long)x->bucket_count,
                  plural(x->bucket_count));
    /* New: nothing of it in the baseline window before the onset. */
    bool fresh = x->first_seen_ms == 0 || x->first_seen_ms >= x->onset_ms - c->baseline_ms;
    char t[32];
    cm_buf_printf(&b, NULL, fresh ? ", new since %s" : ", spiking since %s",
                  time_text(fresh && x->first_seen_ms ? x->first_seen_ms : x->onset_ms, t,
                            sizeof t));
    if (top && top->score >= CAUSE_MIN_SCORE)
        cm_buf_printf(&b, NULL, "; likely cause: %s %.300s (%.0f%% of its crashes vs %.0f%% "
                      "overall)", top->attribute, top->value, top->incident_pct,
                      top->overall_pct);
    if (!b.data) {
        cm_buf_free(&b);
        return cm_fail(err, CM_E_NOMEM, "headline: out of memory");
    }
    *out = (char *)cm_buf_steal(&b, NULL);
    return CM_E_OK;
}

static enum cm_code replace(char **field, const char *value, struct cm_err *err)
{
    char *s = cm_strdup(value);
    if (!s)
        return cm_fail(err, CM_E_NOMEM, "detector: out of memory");
    cm_free(*field);
    *field = s;
    return CM_E_OK;
}

enum cm_code det__analyze(struct db_conn *db, const struct det_conf *c, struct db_incident *x,
                          int64_t end_ms, int64_t now_ms, struct cm_err *err)
{
    int64_t from = x->onset_ms;
    if (end_ms - c->correlation_window_ms < from)
        from = end_ms - c->correlation_window_ms;
    struct db_corr_query q = { .project = x->project, .id = x->id, .from_ms = from,
                               .to_ms = end_ms, .sample = c->correlation_sample };
    struct db_corr_count *counts = NULL;
    size_t ncounts = 0, ncorr = 0;
    struct db_corr_totals totals;
    struct db_corr *corr = NULL;
    char *headline = NULL;
    enum cm_code rc = db_incident_corr_counts(db, &q, &counts, &ncounts, &totals, err);
    if (!rc)
        rc = det_score_correlations(counts, ncounts, &totals, c->correlations_top, &corr, &ncorr,
                                    err);
    if (!rc)
        rc = det__headline(c, x, ncorr ? &corr[0] : NULL, &headline, err);
    if (!rc)
        rc = db_incident_set_analysis(db, x->project, x->id, corr, ncorr, headline, now_ms, err);
    if (!rc)
        rc = replace(&x->headline, headline, err);
    struct cm_buf top;
    cm_buf_init(&top, 0);
    if (!rc)
        rc = ncorr ? cm_buf_printf(&top, err, "%s=%s", corr[0].attribute, corr[0].value)
                   : cm_buf_append(&top, "", 0, err);
    if (!rc)
        rc = replace(&x->top_correlation, (const char *)top.data, err);
    cm_buf_free(&top);
    if (!rc)
        x->analyzed_at_ms = now_ms;
    cm_free(headline);
    cm_free(corr);
    db_corr_counts_free(counts, ncounts);
    return rc;
}
