/* det_status.c -- the detector's /healthz and /metrics (Prometheus text exposition format),
 * served by libmicrohttpd. Healthy means the database answered and a pass finished within three
 * intervals. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cm_alloc.h"
#include "common/cm_buf.h"
#include "detector/det_daemon.h"

struct server {
    struct MHD_Daemon *mhd;
    struct det_metrics *m;
    int64_t interval_ms;
};

#define LOAD(x) ((unsigned long long)atomic_load(&(x)))

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *render(struct det_metrics *m)
{
    struct cm_buf b;
    cm_buf_init(&b, 1 << 16);
    const struct { const char *name, *help; atomic_ullong *v; } counters[] = {
        { "triage_detector_passes_total", "detection passes finished", &m->passes },
        { "triage_detector_pass_failures_total", "passes that failed", &m->pass_failures },
        { "triage_detector_keys_total", "buckets and modules judged", &m->keys },
        { "triage_detector_spikes_total", "buckets and modules found spiking", &m->spikes },
        { "triage_detector_incidents_opened_total", "incidents opened", &m->opened },
        { "triage_detector_incidents_changed_total", "incident changes announced", &m->changed },
        { "triage_detector_incidents_closed_total", "incidents closed", &m->closed },
        { "triage_detector_notifies_total", "NOTIFYs sent", &m->notified },
        { "triage_detector_webhook_posts_total", "webhook POSTs tried", &m->webhook_posts },
        { "triage_detector_webhook_failures_total", "webhook POSTs that failed",
          &m->webhook_failures },
    };
    for (size_t i = 0; i < sizeof counters / sizeof *counters; i++)
        cm_buf_printf(&b, NULL, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counters[i].name,
                      counters[i].help, counters[i].name, counters[i].name,
                      LOAD(*counters[i].v));
    cm_buf_printf(&b, NULL,
                  "# TYPE triage_detector_open_incidents gauge\n"
                  "triage_detector_open_incidents %lld\n"
                  "# TYPE triage_detector_last_pass_seconds gauge\n"
                  "triage_detector_last_pass_seconds %g\n"
                  "# TYPE triage_detector_database_up gauge\ntriage_detector_database_up %d\n",
                  (long long)atomic_load(&m->open_incidents),
                  (double)atomic_load(&m->last_pass_ms) / 1000.0, atomic_load(&m->db_ok) ? 1 : 0);
    return (char *)cm_buf_steal(&b, NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req)
{
    (void)version, (void)upload, (void)upload_size, (void)req;
    struct server *s = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return MHD_NO;
    unsigned status = 200;
    char *body;
    const char *type = "text/plain; charset=utf-8";
    if (!strcmp(url, "/healthz")) {
        int64_t last = atomic_load(&s->m->last_pass_at_ms);
        bool db = atomic_load(&s->m->db_ok);
        bool recent = last > 0 && wall_ms() - last <= 3 * s->interval_ms + 5000;
        status = db && recent ? 200 : 503;
        body = strdup(status == 200 ? "ok\n"
                      : !db         ? "degraded: database unreachable\n"
                                    : "degraded: no recent detection pass\n");
    } else if (!strcmp(url, "/metrics")) {
        body = render(s->m);
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

void *det_status_start(const char *listen, struct det_metrics *m, int64_t interval_ms,
                       struct cm_err *err)
{
    if (!listen[0])
        return NULL;
    char host[256];
    snprintf(host, sizeof host, "%s", listen);
    char *colon = strrchr(host, ':');
    if (!colon) {
        cm_fail(err, CM_E_USAGE, "listen: \"%s\" is not HOST:PORT", listen);
        return NULL;
    }
    *colon = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (*end || port < 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        cm_fail(err, CM_E_USAGE, "listen: \"%s\" is not IPv4-ADDRESS:PORT", listen);
        return NULL;
    }
    struct server *s = cm_calloc(1, sizeof *s);
    if (!s) {
        cm_fail(err, CM_E_NOMEM, "status server: out of memory");
        return NULL;
    }
    s->m = m;
    s->interval_ms = interval_ms;
    s->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                              handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!s->mhd) {
        cm_fail(err, CM_E_IO, "cannot listen on %s for /healthz and /metrics", listen);
        cm_free(s);
        return NULL;
    }
    return s;
}

void det_status_stop(void *server)
{
    struct server *s = server;
    if (!s)
        return;
    MHD_stop_daemon(s->mhd);
    cm_free(s);
}
