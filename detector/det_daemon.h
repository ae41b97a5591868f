/* det_daemon.h -- the `triage-detector` program's own state: its counters and the /healthz +
 * /metrics server. Only det_main.c and det_status.c include it. */
#ifndef TRIAGE_DET_DAEMON_H
#define TRIAGE_DET_DAEMON_H

#include <stdatomic.h>

#include "detector/det.h"

struct det_metrics {
    atomic_ullong passes, pass_failures, keys, spikes, opened, changed, closed, notified,
        webhook_posts, webhook_failures;
    atomic_llong open_incidents, last_pass_ms, last_pass_at_ms;
    atomic_bool db_ok;
};

/* Starts the /healthz and /metrics server on listen (HOST:PORT); NULL when listen is empty or
 * on failure (err says which). */
void *det_status_start(const char *listen, struct det_metrics *m, int64_t interval_ms,
                       struct cm_err *err);
void det_status_stop(void *server);

#endif
