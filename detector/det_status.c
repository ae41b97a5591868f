/* det_status.c -- what the detector shows on /healthz and /metrics (served by status/). Healthy
 * means the database answered and a pass finished within three intervals. */
#include <stdlib.h>
#include <time.h>

#include "common/cm_alloc.h"
#include "detector/det_daemon.h"
#include "status/st.h"

struct server {
    struct st_server *st;
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

static void metrics(void *ctx, struct cm_buf *b)
{
    struct det_metrics *m = ((struct server *)ctx)->m;
    st_counter(b, "triage_detector_passes_total", "detection passes finished", LOAD(m->passes));
    st_counter(b, "triage_detector_pass_failures_total", "passes that failed",
               LOAD(m->pass_failures));
    st_counter(b, "triage_detector_keys_total", "buckets and modules judged", LOAD(m->keys));
    st_counter(b, "triage_detector_spikes_total", "buckets and modules found spiking",
               LOAD(m->spikes));
    st_counter(b, "triage_detector_incidents_opened_total", "incidents opened", LOAD(m->opened));
    st_counter(b, "triage_detector_incidents_changed_total", "incident changes announced",
               LOAD(m->changed));
    st_counter(b, "triage_detector_incidents_closed_total", "incidents closed", LOAD(m->closed));
    st_counter(b, "triage_detector_notifies_total", "NOTIFYs sent", LOAD(m->notified));
    st_counter(b, "triage_detector_webhook_posts_total", "webhook POSTs tried",
               LOAD(m->webhook_posts));
    st_counter(b, "triage_detector_webhook_failures_total", "webhook POSTs that failed",
               LOAD(m->webhook_failures));
    st_gauge(b, "triage_detector_open_incidents", "incidents open now",
             (double)atomic_load(&m->open_incidents));
    st_gauge(b, "triage_detector_last_pass_seconds", "duration of the last pass",
             (double)atomic_load(&m->last_pass_ms) / 1000.0);
    st_gauge(b, "triage_detector_database_up", "1 when the last database call worked",
             atomic_load(&m->db_ok) ? 1 : 0);
}

static bool healthy(void *ctx, const char **reason)
{
    struct server *s = ctx;
    int64_t last = atomic_load(&s->m->last_pass_at_ms);
    if (!atomic_load(&s->m->db_ok)) {
        *reason = "database unreachable";
        return false;
    }
    if (last <= 0 || wall_ms() - last > 3 * s->interval_ms + 5000) {
        *reason = "no recent detection pass";
        return false;
    }
    return true;
}

void *det_status_start(const char *listen, struct det_metrics *m, int64_t interval_ms,
                       struct cm_err *err)
{
    if (!listen[0])
        return NULL;
    struct server *s = cm_calloc(1, sizeof *s);
    if (!s) {
        cm_fail(err, CM_E_NOMEM, "status server: out of memory");
        return NULL;
    }
    s->m = m;
    s->interval_ms = interval_ms;
    struct st_handlers h = { .ctx = s, .healthy = healthy, .metrics = metrics };
    if (st_start(listen, &h, &s->st, err) != CM_E_OK) {
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
    st_stop(s->st);
    cm_free(s);
}
