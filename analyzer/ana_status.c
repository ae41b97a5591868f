/* ana_status.c -- what the analyzer daemon shows on /healthz and /metrics (served by status/). */
#include <stdio.h>

#include "analyzer/ana_daemon.h"
#include "status/st.h"

/* Upper bounds of the analysis-time buckets, in microseconds. */
static const uint64_t bucket_us[12] = { 1000,   2500,   5000,    10000,   25000,   50000,
                                        100000, 250000, 1000000, 5000000, 30000000, UINT64_MAX };

void anad_metrics_latency(struct anad_metrics *m, uint64_t micros)
{
    size_t i = 0;
    while (i < 11 && micros > bucket_us[i])
        i++;
    atomic_fetch_add(&m->latency[i], 1);
    atomic_fetch_add(&m->analysis_us_sum, micros);
}

#define LOAD(x) ((unsigned long long)atomic_load(&(x)))

static void metrics(void *ctx, struct cm_buf *b)
{
    struct anad_metrics *m = &((struct anad *)ctx)->metrics;
    st_counter(b, "triage_analyzer_jobs_done_total", "jobs analyzed and counted", LOAD(m->jobs_done));
    st_counter(b, "triage_analyzer_jobs_failed_total", "dumps that could not be read",
               LOAD(m->jobs_failed));
    st_counter(b, "triage_analyzer_jobs_retried_total", "jobs whose child died or hung",
               LOAD(m->jobs_retried));
    st_counter(b, "triage_analyzer_jobs_lost_total", "results dropped: lease gone",
               LOAD(m->jobs_lost));
    st_counter(b, "triage_analyzer_batches_total", "result batches written", LOAD(m->batches));
    st_counter(b, "triage_analyzer_child_starts_total", "sandboxed children started",
               LOAD(m->child_restarts));
    st_counter(b, "triage_analyzer_child_timeouts_total", "children killed for time",
               LOAD(m->child_timeouts));
    st_counter(b, "triage_analyzer_child_crashes_total", "children that died",
               LOAD(m->child_crashes));
    st_counter(b, "triage_analyzer_db_errors_total", "database calls that failed",
               LOAD(m->db_errors));
    st_gauge(b, "triage_queue_ready_jobs", "jobs waiting", (double)atomic_load(&m->queue_ready));
    st_gauge(b, "triage_queue_running_jobs", "jobs held by workers",
             (double)atomic_load(&m->queue_running));
    st_gauge(b, "triage_queue_dead_jobs", "dead-letter jobs", (double)atomic_load(&m->queue_dead));
    st_gauge(b, "triage_queue_oldest_due_age_ms", "age of the oldest due job",
             (double)atomic_load(&m->oldest_due_ms));
    st_gauge(b, "triage_analyzer_database_up", "1 when the last database call worked",
             atomic_load(&m->db_ok) ? 1 : 0);
    cm_buf_printf(b, NULL, "# HELP triage_analyzer_seconds time to analyze one dump\n"
                           "# TYPE triage_analyzer_seconds histogram\n");
    unsigned long long cum = 0;
    for (size_t i = 0; i < 12; i++) {
        cum += LOAD(m->latency[i]);
        if (i < 11)
            cm_buf_printf(b, NULL, "triage_analyzer_seconds_bucket{le=\"%g\"} %llu\n",
                          (double)bucket_us[i] / 1e6, cum);
        else
            cm_buf_printf(b, NULL, "triage_analyzer_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
    }
    cm_buf_printf(b, NULL, "triage_analyzer_seconds_sum %g\ntriage_analyzer_seconds_count %llu\n",
                  (double)LOAD(m->analysis_us_sum) / 1e6, cum);
}

static bool healthy(void *ctx, const char **reason)
{
    *reason = "database unreachable";
    return atomic_load(&((struct anad *)ctx)->metrics.db_ok);
}

void *anad_status_start(struct anad *d, struct cm_err *err)
{
    if (!d->conf.listen[0])
        return NULL;
    struct st_handlers h = { .ctx = d, .healthy = healthy, .metrics = metrics };
    struct st_server *s = NULL;
    st_start(d->conf.listen, &h, &s, err);
    return s;
}

void anad_status_stop(void *server) { st_stop(server); }
