/* det.h -- the mass-crash detector (library triage_detector, daemon `triage-detector`): compares
 * recent crash rates with a baseline per bucket and per fault module + version, groups what
 * spikes by fault module into incidents (rows in PostgreSQL), finds each incident's correlated
 * attributes, and tells about every opened or changed incident with a NOTIFY, an optional
 * webhook and a log line. The model and its parameters: docs/incidents.md.
 *
 * The detector never reads a clock of its own: a pass takes "now" from its caller (the daemon
 * passes the wall clock, tests drive it), so incidents open and close the same way every run. */
#ifndef TRIAGE_DET_H
#define TRIAGE_DET_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

#include "common/cm_conf.h"
#include "common/cm_err.h"
#include "db/db.h"

/* The configuration (defaults in det_conf.c; detector/triage-detector.conf.example documents
 * every key). */
struct det_conf {
    char db_url[1024];        /* libpq connection string; required by the daemon */
    char listen[256];         /* HOST:PORT for /healthz and /metrics; "" none */
    char log_level[16];
    char webhook_url[1024];   /* http(s) URL that gets a POST per opened or changed incident */
    char notify_channel[64];  /* PostgreSQL NOTIFY channel */
    int64_t interval_ms;      /* time between passes */
    int64_t recent_ms;        /* the recent window (whole minutes) */
    int64_t baseline_ms;      /* the baseline window before it */
    size_t min_crashes;       /* crashes in the recent window needed to open */
    size_t min_hosts;         /* distinct hosts in the recent window needed to open */
    size_t min_ratio_pct;     /* recent crashes must reach this % of the expected count */
    size_t open_score;        /* -log10 p (Poisson upper tail) needed to open */
    size_t hot_score;         /* -log10 p that keeps an open incident spiking */
    size_t floor_per_day;     /* the least baseline rate assumed, crashes per day */
    int64_t quiet_ms;         /* an incident closes after this long without spiking */
    int64_t context_ms;       /* the rate series starts this long before the onset */
    size_t series_points;     /* at most this many minutes in the rate series */
    int64_t correlate_ms;     /* correlations are recomputed at most this often */
    int64_t correlation_window_ms; /* the population window is at least this long */
    size_t correlation_sample; /* crashes examined per side */
    size_t correlations_top;  /* correlations stored with the incident */
    size_t change_pct;        /* a bucket count or peak reaching this % of the announced one
                               * is announced as a change */
    int64_t webhook_timeout_ms;
};

extern const struct cm_conf det_conf_table;

/* Fills c with the table's defaults. */
void det_conf_default(struct det_conf *c);

/* ---- the model (det_model.c) ---- */

/* -log10 P(X >= k) for X ~ Poisson(mu): how surprising k crashes are when mu were expected.
 * 0 when k <= 0; capped at 1000. */
double det_poisson_score(int64_t k, double mu);
/* -log10 of the one-sided Fisher exact test that an attribute seen on a of n1 incident crashes
 * and on b of n2 other crashes is over-represented in the incident: P(X >= a) for X
 * hypergeometric (n1 draws from n1 + n2 crashes of which a + b have it). 0 when it is not
 * over-represented (a / n1 <= b / n2); capped at 1000. */
double det_fisher_score(int64_t a, int64_t n1, int64_t b, int64_t n2);

struct det_verdict {
    double expected; /* crashes expected in the recent window from the baseline */
    double score;    /* det_poisson_score(recent, expected) */
    bool spike;      /* enough to open an incident */
    bool hot;        /* enough to keep one open */
};
/* Judges one key: recent crashes and hosts against the baseline count over baseline_ms. */
void det_judge(const struct det_conf *c, int64_t recent_crashes, int64_t recent_hosts,
               int64_t baseline_crashes, int64_t baseline_ms, struct det_verdict *v);

/* Scores counts into correlations (strings borrowed from counts), keeps the over-represented
 * ones, best first (score, then incident_pct - overall_pct), at most max of them. totals weigh
 * the two sampled sides into overall_pct. *out is owned by the caller (cm_free the array only);
 * *n gets the number kept. */
enum cm_code det_score_correlations(const struct db_corr_count *counts, size_t count,
                                    const struct db_corr_totals *totals, size_t max,
                                    struct db_corr **out, size_t *n, struct cm_err *err);

/* ---- one pass (det_detect.c) ---- */

struct det_report {
    size_t keys;          /* buckets and modules judged */
    size_t spikes;        /* of them, spiking */
    size_t opened, changed, closed; /* incidents */
    size_t notified;      /* NOTIFYs sent */
    size_t webhook_posts, webhook_failures;
};

/* One detection pass over a project at now_ms: judge every bucket and module with recent
 * crashes, open or extend incidents, refresh every open incident, close the ones back at
 * baseline, recompute correlations when due, and announce every opened, changed or closed
 * incident (NOTIFY on c->notify_channel, webhook, log line). rep (may be NULL) is added to.
 * The webhook needs curl_global_init() done by the program. */
enum cm_code det_pass(struct db_conn *db, const struct det_conf *c, const char *project,
                      int64_t now_ms, struct det_report *rep, struct cm_err *err);

/* ---- announcing (det_notify.c) ---- */

/* POSTs body (JSON) to url within timeout_ms; a status other than 2xx is a failure. */
enum cm_code det_webhook_post(const char *url, const char *body, int64_t timeout_ms,
                              struct cm_err *err);

#endif
