/* ana_status.c -- the analyzer daemon's /healthz and /metrics (Prometheus text exposition
 * format), served by libmicrohttpd on a loopback port. Labels are fixed names only. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana_daemon.h"

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

static char *render(struct anad *d)
{
    struct anad_metrics *m = &d->metrics;
    struct cm_buf b;
    cm_buf_init(&b, 1 << 20);
    const struct { const char *name, *help; atomic_ullong *v; } counters[] = {
        { "triage_analyzer_jobs_done_total", "jobs analyzed and counted", &m->jobs_done },
        { "triage_analyzer_jobs_failed_total", "dumps that could not be read", &m->jobs_failed },
        { "triage_analyzer_jobs_retried_total", "jobs whose child died or hung", &m->jobs_retried },
        { "triage_analyzer_jobs_lost_total", "results dropped: lease gone", &m->jobs_lost },
        { "triage_analyzer_batches_total", "result batches written", &m->batches },
        { "triage_analyzer_child_starts_total", "sandboxed children started", &m->child_restarts },
        { "triage_analyzer_child_timeouts_total", "children killed for time", &m->child_timeouts },
        { "triage_analyzer_child_crashes_total", "children that died", &m->child_crashes },
        { "triage_analyzer_db_errors_total", "database calls that failed", &m->db_errors },
    };
    for (size_t i = 0; i < sizeof counters / sizeof *counters; i++)
        cm_buf_printf(&b, NULL, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counters[i].name,
                      counters[i].help, counters[i].name, counters[i].name,
                      LOAD(*counters[i].v));
    const struct { const char *name; atomic_llong *v; } gauges[] = {
        { "triage_queue_ready_jobs", &m->queue_ready },
        { "triage_queue_running_jobs", &m->queue_running },
        { "triage_queue_dead_jobs", &m->queue_dead },
        { "triage_queue_oldest_due_age_ms", &m->oldest_due_ms },
    };
    for (size_t i = 0; i < sizeof gauges / sizeof *gauges; i++)
        cm_buf_printf(&b, NULL, "# TYPE %s gauge\n%s %lld\n", gauges[i].name, gauges[i].name,
                      (long long)atomic_load(gauges[i].v));
    cm_buf_printf(&b, NULL, "# HELP triage_analyzer_seconds time to analyze one dump\n"
                            "# TYPE triage_analyzer_seconds histogram\n");
    unsigned long long cum = 0;
    for (size_t i = 0; i < 12; i++) {
        cum += LOAD(m->latency[i]);
        if (i < 11)
            cm_buf_printf(&b, NULL, "triage_analyzer_seconds_bucket{le=\"%g\"} %llu\n",
                          (double)bucket_us[i] / 1e6, cum);
        else
            cm_buf_printf(&b, NULL, "triage_analyzer_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
    }
    cm_buf_printf(&b, NULL, "triage_analyzer_seconds_sum %g\ntriage_analyzer_seconds_count %llu\n",
                  (double)LOAD(m->analysis_us_sum) / 1e6, cum);
    cm_buf_printf(&b, NULL, "# TYPE triage_analyzer_database_up gauge\ntriage_analyzer_database_up %d\n",
                  atomic_load(&m->db_ok) ? 1 : 0);
    return (char *)cm_buf_steal(&b, NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req)
{
    struct anad *d = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return MHD_NO;
    unsigned status = 200;
    char *body;
    const char *type = "text/plain; charset=utf-8";
    if (!strcmp(url, "/healthz")) {
        bool ok = atomic_load(&d->metrics.db_ok);
        status = ok ? 200 : 503;
        body = strdup(ok ? "ok\n" : "degraded: database unreachable\n");
    } else if (!strcmp(url, "/metrics")) {
        body = render(d);
        type = "text/plain; version=0.0.4";
    } else {
        status = 404;
        body = strdup("not found\n");
    }
    if (!body)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

void *anad_status_start(struct anad *d, struct cm_err *err)
{
    if (!d->conf.listen[0])
        return NULL;
    char host[256];
    snprintf(host, sizeof host, "%s", d->conf.listen);
    char *colon = strrchr(host, ':');
    if (!colon) {
        cm_fail(err, CM_E_USAGE, "listen: \"%s\" is not HOST:PORT", d->conf.listen);
        return NULL;
    }
    *colon = 0;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1)) };
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        cm_fail(err, CM_E_USAGE, "listen: \"%s\" is not an IPv4 address", host);
        return NULL;
    }
    struct MHD_Daemon *mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle, d,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)10, MHD_OPTION_END);
    if (!mhd)
        cm_fail(err, CM_E_IO, "cannot listen on %s for /healthz and /metrics", d->conf.listen);
    return mhd;
}

void anad_status_stop(void *server)
{
    if (server)
        MHD_stop_daemon(server);
}
