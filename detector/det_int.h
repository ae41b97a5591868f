/* det_int.h -- what the detector's own files share; no other module includes it. */
#ifndef TRIAGE_DET_INT_H
#define TRIAGE_DET_INT_H

#include "detector/det.h"

/* After an incident's refresh (det_incident.c): recompute its correlations and headline when
 * due (opened, closing, or correlate_ms since the last time), close it when closing, and
 * announce it when it opened, changed or closed. end_ms is the end of the counted window. */
enum cm_code det__conclude(struct db_conn *db, const struct det_conf *c, const char *project,
                           int64_t id, int64_t now_ms, int64_t end_ms, bool closing, bool opened,
                           struct det_report *rep, struct cm_err *err);

/* Correlations and headline of x over [min(onset, end - correlation_window), end), stored with
 * the incident (det_corr.c). x->headline and x->top_correlation are replaced. */
enum cm_code det__analyze(struct db_conn *db, const struct det_conf *c, struct db_incident *x,
                          int64_t end_ms, int64_t now_ms, struct cm_err *err);

/* The one-line summary responders read first (det_corr.c). *out owned by the caller (cm_free). */
enum cm_code det__headline(const struct det_conf *c, const struct db_incident *x,
                           const struct db_corr *top, char **out, struct cm_err *err);

/* NOTIFY, log line and webhook for event ("opened", "changed", "closed") (det_notify.c). A
 * webhook that fails is logged and counted, not an error of the pass. */
enum cm_code det__announce(struct db_conn *db, const struct det_conf *c,
                           const struct db_incident *x, const char *event,
                           struct det_report *rep, struct cm_err *err);

#endif
