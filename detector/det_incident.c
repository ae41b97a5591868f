/* det_incident.c -- what follows an incident's refresh in a pass: correlations when due, closing,
 * and deciding whether the incident changed enough to announce. An announcement records what it
 * told (the incident's published_* columns), so an incident is announced when it opens, when it
 * closes, when its likely cause changes, and when its bucket count or peak rate reaches
 * change_pct % of what was last announced -- not on every pass of a growing flood. */
#include <string.h>

#include "common/cm_alloc.h"
#include "detector/det_int.h"

/* The event to announce for x, or NULL. */
static const char *event_of(const struct det_conf *c, const struct db_incident *x)
{
    const char *pub = x->published_status ? x->published_status : "";
    if (strcmp(x->status, "closed") == 0)
        return strcmp(pub, "closed") != 0 ? "closed" : NULL;
    if (!*pub)
        return "opened";
    double grow = (double)c->change_pct / 100.0;
    if (x->bucket_count > x->published_buckets &&
        (double)x->bucket_count >= grow * (double)x->published_buckets)
        return "changed";
    if (x->peak_per_minute > x->published_peak &&
        (double)x->peak_per_minute >= grow * (double)x->published_peak)
        return "changed";
    if (strcmp(x->top_correlation ? x->top_correlation : "",
               x->published_top ? x->published_top : "") != 0)
        return "changed";
    return NULL;
}

enum cm_code det__conclude(struct db_conn *db, const struct det_conf *c, const char *project,
                           int64_t id, int64_t now_ms, int64_t end_ms, bool closing, bool opened,
                           struct det_report *rep, struct cm_err *err)
{
    struct db_incident *x = NULL;
    enum cm_code rc = db_incident_get(db, project, id, 0, &x, err);
    if (rc)
        return rc;
    bool due = opened || closing || x->analyzed_at_ms == 0 ||
               now_ms - x->analyzed_at_ms >= c->correlate_ms;
    if (due)
        rc = det__analyze(db, c, x, end_ms, now_ms, err);
    if (!rc && closing) {
        bool closed = false;
        rc = db_incident_close(db, project, id, now_ms, &closed, err);
        if (!rc && closed) {
            char *s = cm_strdup("closed");
            if (!s) {
                rc = cm_fail(err, CM_E_NOMEM, "detector: out of memory");
            } else {
                cm_free(x->status);
                x->status = s;
                x->closed_at_ms = now_ms;
            }
        }
    }
    const char *event = rc ? NULL : event_of(c, x);
    if (event) {
        if (rep) {
            if (!strcmp(event, "opened"))
                rep->opened++;
            else if (!strcmp(event, "closed"))
                rep->closed++;
            else
                rep->changed++;
        }
        rc = det__announce(db, c, x, event, rep, err);
    }
    db_incidents_free(x, 1);
    return rc;
}
