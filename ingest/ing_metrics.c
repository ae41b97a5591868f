/* ing_metrics.c -- the collector's counters, rendered in the Prometheus text exposition format
 * (prometheus.io/docs/instrumenting/exposition_formats). Every label value comes from a fixed
 * table (endpoints, status codes, reason tokens), never from a request. */
#include <stdio.h>

#include "ingest/ing_int.h"

static const char *const reason_tokens[] = {
#define X(name, status, token) token,
    ING_REASONS(X)
#undef X
};
static const unsigned reason_statuses[] = {
#define X(name, status, token) status,
    ING_REASONS(X)
#undef X
};

const char *ing__reason_token(enum ing_reason r)
{
    return (unsigned)r < ING_R__COUNT ? reason_tokens[r] : "internal_error";
}

unsigned ing__reason_status(enum ing_reason r)
{
    return (unsigned)r < ING_R__COUNT ? reason_statuses[r] : 500;
}

static const char *const endpoint_names[ING_EP__COUNT] = { "native", "submit", "healthz",
                                                           "metrics", "other", "hints" };

const char *ing__endpoint_name(enum ing_endpoint ep)
{
    return (unsigned)ep < ING_EP__COUNT ? endpoint_names[ep] : "other";
}

/* Status codes with their own slot; everything else lands in the last ("other"). */
static const unsigned statuses[ING_STATUS_SLOTS - 1] = { 200, 202, 400, 404, 405, 408, 411,
                                                         413, 414, 415, 431, 500, 503, 505,
                                                         507 };

static size_t status_slot(unsigned status)
{
    for (size_t i = 0; i < ING_STATUS_SLOTS - 1; i++)
        if (statuses[i] == status)
            return i;
    return ING_STATUS_SLOTS - 1;
}

/* Upper bounds of the ack latency buckets, in microseconds. */
static const uint64_t bucket_us[ING_LATENCY_BUCKETS] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
    10000000, 30000000,
};

void ing__metrics_request(struct ing_metrics *m, enum ing_endpoint ep, unsigned status)
{
    if ((unsigned)ep >= ING_EP__COUNT)
        ep = ING_EP_OTHER;
    atomic_fetch_add(&m->requests[ep][status_slot(status)], 1);
}

void ing__metrics_ack(struct ing_metrics *m, uint64_t micros)
{
    size_t i = 0;
    while (i < ING_LATENCY_BUCKETS && micros > bucket_us[i])
        i++;
    atomic_fetch_add(&m->ack_buckets[i], 1); /* non-cumulative here; summed when rendered */
    atomic_fetch_add(&m->ack_sum_us, micros);
    atomic_fetch_add(&m->ack_count, 1);
}

#define LOAD(x) ((unsigned long long)atomic_load(&(x)))

enum cm_code ing__metrics_render(struct ing_metrics *m, struct cm_buf *out, struct cm_err *err)
{
    enum cm_code rc = CM_E_OK;
#define P(...)                                                                                     \
    do {                                                                                           \
        if ((rc = cm_buf_printf(out, err, __VA_ARGS__)))                                           \
            return rc;                                                                             \
    } while (0)
    P("# HELP triage_ingest_requests_total HTTP requests answered, by endpoint and status.\n"
      "# TYPE triage_ingest_requests_total counter\n");
    for (int ep = 0; ep < ING_EP__COUNT; ep++)
        for (size_t s = 0; s < ING_STATUS_SLOTS; s++) {
            unsigned long long n = LOAD(m->requests[ep][s]);
            if (!n)
                continue;
            if (s < ING_STATUS_SLOTS - 1)
                P("triage_ingest_requests_total{endpoint=\"%s\",code=\"%u\"} %llu\n",
                  endpoint_names[ep], statuses[s], n);
            else
                P("triage_ingest_requests_total{endpoint=\"%s\",code=\"other\"} %llu\n",
                  endpoint_names[ep], n);
        }
    P("# HELP triage_ingest_bytes_in_total Request body bytes received, as sent.\n"
      "# TYPE triage_ingest_bytes_in_total counter\n");
    for (int ep = 0; ep < ING_EP__COUNT; ep++)
        P("triage_ingest_bytes_in_total{endpoint=\"%s\"} %llu\n", endpoint_names[ep],
          LOAD(m->bytes_in[ep]));
    P("# HELP triage_ingest_rejected_total Uploads refused, by reason token.\n"
      "# TYPE triage_ingest_rejected_total counter\n");
    for (int r = 1; r < ING_R__COUNT; r++)
        if (LOAD(m->rejected[r]))
            P("triage_ingest_rejected_total{reason=\"%s\"} %llu\n", reason_tokens[r],
              LOAD(m->rejected[r]));
    P("# HELP triage_ingest_discarded_total Uploads deliberately dropped, by reason token.\n"
      "# TYPE triage_ingest_discarded_total counter\n");
    for (int r = 1; r < ING_R__COUNT; r++)
        if (LOAD(m->discarded[r]))
            P("triage_ingest_discarded_total{reason=\"%s\"} %llu\n", reason_tokens[r],
              LOAD(m->discarded[r]));
    P("# HELP triage_ingest_accepted_total Uploads acknowledged as new crashes.\n"
      "# TYPE triage_ingest_accepted_total counter\n"
      "triage_ingest_accepted_total %llu\n"
      "# HELP triage_ingest_duplicates_total Uploads acknowledged as a crash already known.\n"
      "# TYPE triage_ingest_duplicates_total counter\n"
      "triage_ingest_duplicates_total %llu\n"
      "# HELP triage_ingest_deferred_total Uploads acknowledged from the spool while the "
      "database was unreachable.\n"
      "# TYPE triage_ingest_deferred_total counter\n"
      "triage_ingest_deferred_total %llu\n"
      "# HELP triage_ingest_drained_total Pending crashes recorded by the drainer.\n"
      "# TYPE triage_ingest_drained_total counter\n"
      "triage_ingest_drained_total %llu\n"
      "# HELP triage_ingest_drain_failures_total Drainer attempts that failed.\n"
      "# TYPE triage_ingest_drain_failures_total counter\n"
      "triage_ingest_drain_failures_total %llu\n",
      LOAD(m->accepted), LOAD(m->duplicates), LOAD(m->deferred), LOAD(m->drained),
      LOAD(m->drain_failures));
    P("# HELP triage_ingest_spool_depth Crashes acknowledged but not yet recorded.\n"
      "# TYPE triage_ingest_spool_depth gauge\n"
      "triage_ingest_spool_depth %llu\n"
      "# HELP triage_ingest_queue_depth Analysis jobs not yet finished (last known).\n"
      "# TYPE triage_ingest_queue_depth gauge\n"
      "triage_ingest_queue_depth %llu\n"
      "# HELP triage_ingest_db_up 1 when the database answered the last call.\n"
      "# TYPE triage_ingest_db_up gauge\n"
      "triage_ingest_db_up %llu\n"
      "# HELP triage_ingest_inflight Requests being received or processed.\n"
      "# TYPE triage_ingest_inflight gauge\n"
      "triage_ingest_inflight %llu\n",
      LOAD(m->spool_depth), LOAD(m->queue_depth), LOAD(m->db_up), LOAD(m->inflight));
    P("# HELP triage_ingest_ack_seconds Time from request headers to acknowledgement.\n"
      "# TYPE triage_ingest_ack_seconds histogram\n");
    unsigned long long cum = 0;
    for (int i = 0; i < ING_LATENCY_BUCKETS; i++) {
        cum += LOAD(m->ack_buckets[i]);
        P("triage_ingest_ack_seconds_bucket{le=\"%g\"} %llu\n", (double)bucket_us[i] / 1e6, cum);
    }
    cum += LOAD(m->ack_buckets[ING_LATENCY_BUCKETS]);
    P("triage_ingest_ack_seconds_bucket{le=\"+Inf\"} %llu\n"
      "triage_ingest_ack_seconds_sum %.6f\n"
      "triage_ingest_ack_seconds_count %llu\n",
      cum, (double)LOAD(m->ack_sum_us) / 1e6, LOAD(m->ack_count));
#undef P
    return ing__hint_metrics_render(m, out, err);
}
