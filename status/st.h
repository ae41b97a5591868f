/* st.h -- the small HTTP server every daemon of the service runs beside its work: GET /healthz
 * (200 "ok" or 503 with the reason) and GET /metrics (Prometheus text exposition format), on a
 * loopback IPv4 address by default. The daemon supplies two callbacks; everything about HTTP lives
 * here (libmicrohttpd). The collector serves both on its own upload port instead. */
#ifndef TRIAGE_ST_H
#define TRIAGE_ST_H

#include <stdbool.h>
#include <stddef.h> /* size_t */

#include "common/cm_buf.h"
#include "common/cm_err.h"

struct st_server;

struct st_handlers {
    void *ctx;
    /* Healthy? When not, *reason (a static string) says why: "database unreachable". */
    bool (*healthy)(void *ctx, const char **reason);
    /* Appends the metrics text to out (capped buffer; a failed append truncates the page). */
    void (*metrics)(void *ctx, struct cm_buf *out);
};

/* Listens on listen ("IPV4-ADDRESS:PORT"; port 0 picks one) and serves until st_stop(). *out is
 * owned by the caller. */
enum cm_code st_start(const char *listen, const struct st_handlers *h, struct st_server **out,
                      struct cm_err *err);
/* The port it listens on (the real one when 0 was asked for). */
unsigned st_port(const struct st_server *s);
/* Stops and frees s; NULL is fine. */
void st_stop(struct st_server *s);

/* Prometheus helpers for the metrics callback: a counter or gauge with its HELP and TYPE. */
void st_counter(struct cm_buf *out, const char *name, const char *help, unsigned long long v);
void st_gauge(struct cm_buf *out, const char *name, const char *help, double v);

#endif
