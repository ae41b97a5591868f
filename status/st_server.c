/* st_server.c -- /healthz and /metrics over libmicrohttpd for the daemons. Labels in metrics are
 * fixed names chosen by the daemon, never request data. */
#include "status/st.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cm_alloc.h"

struct st_server {
    struct MHD_Daemon *mhd;
    struct st_handlers h;
    unsigned port;
};

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, const char *type,
                              char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req)
{
    (void)version, (void)upload, (void)upload_size, (void)req;
    struct st_server *s = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return answer(conn, 405, "text/plain", strdup("method not allowed\n"), 19);
    if (!strcmp(url, "/healthz")) {
        const char *reason = "unhealthy";
        bool ok = s->h.healthy ? s->h.healthy(s->h.ctx, &reason) : true;
        char text[256];
        int n = snprintf(text, sizeof text, ok ? "ok\n" : "degraded: %s\n", reason);
        return answer(conn, ok ? 200 : 503, "text/plain; charset=utf-8", strdup(text),
                      (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
    }
    if (!strcmp(url, "/metrics")) {
        struct cm_buf b;
        cm_buf_init(&b, 4u << 20);
        if (s->h.metrics)
            s->h.metrics(s->h.ctx, &b);
        size_t len = 0;
        char *body = b.data ? (char *)cm_buf_steal(&b, &len) : strdup("");
        return answer(conn, 200, "text/plain; version=0.0.4", body, len);
    }
    return answer(conn, 404, "text/plain", strdup("not found\n"), 10);
}

enum cm_code st_start(const char *listen, const struct st_handlers *h, struct st_server **out,
                      struct cm_err *err)
{
    *out = NULL;
    char host[256];
    snprintf(host, sizeof host, "%s", listen);
    char *colon = strrchr(host, ':'), *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    struct sockaddr_in sa = { .sin_family = AF_INET };
    if (!colon || *end || port < 0 || port > 65535)
        return cm_fail(err, CM_E_USAGE, "listen: \"%s\" is not IPV4-ADDRESS:PORT", listen);
    *colon = 0;
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return cm_fail(err, CM_E_USAGE, "listen: \"%s\" is not an IPv4 address", host);
    sa.sin_port = htons((uint16_t)port);
    struct st_server *s = cm_calloc(1, sizeof *s);
    if (!s)
        return cm_fail(err, CM_E_NOMEM, "status server: out of memory");
    s->h = *h;
    s->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                              handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
    if (!s->mhd) {
        cm_free(s);
        return cm_fail(err, CM_E_IO, "cannot listen on %s for /healthz and /metrics", listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : (unsigned)port;
    *out = s;
    return CM_E_OK;
}

unsigned st_port(const struct st_server *s) { return s ? s->port : 0; }

void st_stop(struct st_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->mhd);
    cm_free(s);
}

void st_counter(struct cm_buf *out, const char *name, const char *help, unsigned long long v)
{
    cm_buf_printf(out, NULL, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                  v);
}

void st_gauge(struct cm_buf *out, const char *name, const char *help, double v)
{
    cm_buf_printf(out, NULL, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name,
                  v);
}
