/* ing_http.c -- the collector's HTTP side on libmicrohttpd (0.9.75): routing, request limits,
 * the per-request arena, and the hand-off to worker threads.
 *
 * A request's life: the first callback sees only the headers; everything that can be decided
 * there is (route, method, Content-Length against the size cap, Transfer-Encoding with
 * Content-Length, Content-Encoding, Content-Type, load shedding on the native route), and the
 * answer then goes out before any body byte is read (no "100 Continue" either). Body chunks are
 * appended to a buffer capped at max_request_bytes, with a body deadline and a minimum rate.
 * When the body is complete the connection is suspended, a worker parses, stores and records
 * it, builds the reply and resumes the connection, and the last callback queues the reply.
 *
 * libmicrohttpd cannot queue a response while a body is still arriving, so a slow body is
 * answered by closing the connection (no 408), and a chunked body past the cap is read and
 * dropped (up to the cap again) before its 413. Idle connections close after
 * connection_timeout_s. Header blocks larger than max_header_bytes are refused by
 * libmicrohttpd's per-connection memory limit. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/cm_alloc.h"
#include "common/cm_log.h"
#include "ingest/ing_int.h"

enum state { RECEIVING, DISCARDING, PROCESSING, REPLYING };

/* One request (nginx's pool idea: what it allocates dies with it). */
struct ing_request {
    struct ing_server *srv;
    struct MHD_Connection *conn;
    enum ing_endpoint ep;
    enum state state;
    struct cm_arena arena;
    struct cm_buf body;
    uint64_t t0_us;      /* headers received (monotonic) */
    uint64_t received;   /* body bytes as sent, including dropped ones */
    bool json;           /* Accept: application/json */
    bool gzip;           /* Content-Encoding: gzip */
    struct ing_submit_in sub;
    enum ing_reason late; /* decided while reading the body, answered at its end */
    struct ing_reply reply;
    char id[9];          /* short request id for log lines */
};

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* ---- answering ---- */

static enum MHD_Result send_reply(struct ing_server *s, struct MHD_Connection *conn,
                                  enum ing_endpoint ep, struct ing_reply *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        r->body.len, r->body.data ? r->body.data : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    if (r->content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    if (r->retry_after_s) {
        char v[16];
        snprintf(v, sizeof v, "%u", r->retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (r->status == 405)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                ep == ING_EP_NATIVE || ep == ING_EP_SUBMIT ||
                                        ep == ING_EP_HINTS ? "POST" : "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    ing__metrics_request(&s->metrics, ep, r->status);
    return ret;
}

/* Builds the route's answer for a reason (or an acceptance) into *r. */
static void build_reply(struct ing_server *s, enum ing_endpoint ep, bool json,
                        const struct ing_outcome *o, struct ing_reply *r)
{
    memset(r, 0, sizeof *r);
    if (o->reason != ING_R_NONE)
        atomic_fetch_add(&s->metrics.rejected[o->reason], 1);
    if (ep == ING_EP_NATIVE) {
        ing__native_reply(s, json, o, r);
        return;
    }
    if (ep == ING_EP_SUBMIT) {
        ing__submit_reply(o, r);
        return;
    }
    r->status = ing__reason_status(o->reason);
    r->content_type = "text/plain; charset=utf-8";
    cm_buf_init(&r->body, 1024);
    cm_buf_printf(&r->body, NULL, "%s\n", ing__reason_token(o->reason));
}

static enum MHD_Result reject(struct ing_server *s, struct MHD_Connection *conn,
                              enum ing_endpoint ep, bool json, enum ing_reason reason)
{
    struct ing_outcome o = { .reason = reason };
    struct ing_reply r;
    build_reply(s, ep, json, &o, &r);
    enum MHD_Result ret = send_reply(s, conn, ep, &r);
    cm_buf_free(&r.body);
    return ret;
}

static enum MHD_Result text(struct ing_server *s, struct MHD_Connection *conn,
                            enum ing_endpoint ep, unsigned status, const char *ctype,
                            struct cm_buf *body)
{
    struct ing_reply r = { .status = status, .content_type = ctype, .body = *body };
    return send_reply(s, conn, ep, &r);
}

/* ---- GET routes ---- */

static enum MHD_Result healthz(struct ing_server *s, struct MHD_Connection *conn)
{
    struct cm_buf b;
    cm_buf_init(&b, 4096);
    unsigned status = 200;
    unsigned long long pending = (unsigned long long)ing__pending_count(s->pending);
    if (atomic_load(&s->stopping)) {
        status = 503;
        cm_buf_printf(&b, NULL, "stopping\n");
    } else if (atomic_load(&s->free_bytes) < (1u << 20)) {
        status = 503;
        cm_buf_printf(&b, NULL, "unavailable: spool disk full\n");
    } else if (!s->has_rec) {
        cm_buf_printf(&b, NULL, "degraded: no database configured, pending=%llu\n", pending);
    } else if (!atomic_load(&s->db_up)) {
        cm_buf_printf(&b, NULL, "degraded: database unreachable, pending=%llu\n", pending);
    } else {
        cm_buf_printf(&b, NULL, "ok pending=%llu\n", pending);
    }
    enum MHD_Result ret = text(s, conn, ING_EP_HEALTHZ, status, "text/plain; charset=utf-8", &b);
    cm_buf_free(&b);
    return ret;
}

static enum MHD_Result metrics(struct ing_server *s, struct MHD_Connection *conn)
{
    struct cm_buf b;
    cm_buf_init(&b, 1u << 20);
    atomic_store(&s->metrics.spool_depth, ing__pending_count(s->pending));
    unsigned status = 200;
    if (ing__metrics_render(&s->metrics, &b, NULL)) {
        cm_buf_reset(&b);
        status = 500;
    }
    enum MHD_Result ret =
        text(s, conn, ING_EP_METRICS, status, "text/plain; version=0.0.4; charset=utf-8", &b);
    cm_buf_free(&b);
    return ret;
}

/* ---- the first callback: headers only ---- */

static enum ing_endpoint route(const char *url)
{
    if (!strcmp(url, "/api/v1/crashes"))
        return ING_EP_NATIVE;
    if (!strcmp(url, "/submit"))
        return ING_EP_SUBMIT;
    if (!strcmp(url, "/api/v1/hints"))
        return ING_EP_HINTS;
    if (!strcmp(url, "/healthz"))
        return ING_EP_HEALTHZ;
    if (!strcmp(url, "/metrics"))
        return ING_EP_METRICS;
    return ING_EP_OTHER;
}

struct header_count {
    unsigned content_length, transfer_encoding;
};

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct header_count *h = cls;
    (void)kind;
    (void)value;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
        h->content_length++;
    else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        h->transfer_encoding++;
    return MHD_YES;
}

/* Framing checks (RELIABILITY.md H01, H02, H05, H06). Sets *declared to Content-Length. */
static enum ing_reason check_framing(struct ing_server *s, struct MHD_Connection *conn,
                                     uint64_t *declared, bool *chunked)
{
    struct header_count h = { 0 };
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &h);
    const char *te = header(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *cl = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    *declared = 0;
    *chunked = false;
    if (h.transfer_encoding && h.content_length)
        return ING_R_TE_AND_CL; /* request smuggling shape: refuse, never pick one */
    if (h.transfer_encoding) {
        if (h.transfer_encoding > 1 || !te || strcasecmp(te, "chunked") != 0)
            return ING_R_BAD_ENCODING;
        *chunked = true;
        return ING_R_NONE;
    }
    if (!h.content_length)
        return ING_R_NO_CONTENT_LENGTH;
    if (h.content_length > 1 || !cl || !*cl)
        return ING_R_BAD_CONTENT_LENGTH;
    uint64_t n = 0;
    for (const char *p = cl; *p; p++) {
        if (*p < '0' || *p > '9' || n > (UINT64_MAX - 9) / 10)
            return ING_R_BAD_CONTENT_LENGTH;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (n == 0)
        return ING_R_EMPTY;
    if (n > s->conf.max_request_bytes)
        return ING_R_TOO_LARGE;
    *declared = n;
    return ING_R_NONE;
}

static bool is_identity(const char *v) { return !v || !*v || !strcasecmp(v, "identity"); }

/* Everything decidable from the headers of a POST; ING_R_NONE to go on reading. */
static enum ing_reason check_post(struct ing_server *s, struct MHD_Connection *conn,
                                  enum ing_endpoint ep, uint64_t *declared, bool *gzip)
{
    bool chunked;
    enum ing_reason r = check_framing(s, conn, declared, &chunked);
    if (r)
        return r;
    const char *ce = header(conn, MHD_HTTP_HEADER_CONTENT_ENCODING);
    const char *ct = header(conn, MHD_HTTP_HEADER_CONTENT_TYPE);
    *gzip = false;
    if (ce && (!strcasecmp(ce, "gzip") || !strcasecmp(ce, "x-gzip")))
        *gzip = true;
    else if (!is_identity(ce)) /* br, zstd, stacked codings... (RELIABILITY.md H09) */
        return ING_R_BAD_ENCODING;
    if (ep == ING_EP_NATIVE || ep == ING_EP_HINTS) {
        if (ct && *ct && strncasecmp(ct, "application/x-protobuf", 22) &&
            strncasecmp(ct, "application/protobuf", 20) &&
            strncasecmp(ct, "application/octet-stream", 24) &&
            strncasecmp(ct, "application/vnd.google.protobuf", 31))
            return ING_R_WRONG_CONTENT_TYPE;
        if (atomic_load(&s->stopping))
            return ING_R_SHUTTING_DOWN;
        if (ep == ING_EP_HINTS) /* a hint spools nothing; its answer may ask for the dump */
            return ING_R_NONE;
        /* Load shedding, before reading the body (the client retries after Retry-After). */
        if (ing__pending_count(s->pending) >= s->conf.spool_high_water)
            return ING_R_SPOOL_FULL;
        if (atomic_load(&s->metrics.queue_depth) >= s->conf.queue_high_water)
            return ING_R_QUEUE_FULL;
        if (atomic_load(&s->free_bytes) < s->conf.spool_reserve_bytes)
            return ING_R_DISK_LOW;
        return ING_R_NONE;
    }
    /* /submit: stock reporters do not retry, so no load shedding; only a disk that cannot
     * hold the upload refuses it. */
    struct cm_arena tmp = { 0 };
    const char *boundary;
    r = ing__multipart_boundary(ct, &tmp, &boundary);
    cm_arena_free(&tmp);
    if (r)
        return r;
    if (atomic_load(&s->stopping))
        return ING_R_SHUTTING_DOWN;
    if (atomic_load(&s->free_bytes) < *declared + (1u << 20))
        return ING_R_STORAGE_FULL;
    return ING_R_NONE;
}

static const char *copy_arg(struct ing_request *req, const char *name)
{
    const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    return v ? cm_arena_strndup(&req->arena, v, 4096) : NULL;
}

static struct ing_request *new_request(struct ing_server *s, struct MHD_Connection *conn,
                                       enum ing_endpoint ep, uint64_t declared, bool gzip)
{
    struct ing_request *req = cm_calloc(1, sizeof *req);
    if (!req)
        return NULL;
    req->srv = s;
    req->conn = conn;
    req->ep = ep;
    req->t0_us = mono_us();
    cm_buf_init(&req->body, s->conf.max_request_bytes);
    /* Room for the declared body, up to 4 MiB: a header alone never commits more memory. */
    if (declared && cm_buf_reserve(&req->body, (size_t)(declared < (4u << 20) ? declared
                                                                                : (4u << 20)),
                                   NULL)) {
        cm_free(req);
        return NULL;
    }
    const char *accept = header(conn, MHD_HTTP_HEADER_ACCEPT);
    req->json = accept && strstr(accept, "application/json");
    req->gzip = gzip;
    if (ep == ING_EP_SUBMIT) {
        const char *ct = header(conn, MHD_HTTP_HEADER_CONTENT_TYPE);
        req->sub.content_type = ct ? cm_arena_strdup(&req->arena, ct) : NULL;
        req->sub.gzip = gzip;
        req->sub.q_prod = copy_arg(req, "prod");
        req->sub.q_ver = copy_arg(req, "ver");
        req->sub.q_guid = copy_arg(req, "guid");
    }
    static atomic_uint seq;
    snprintf(req->id, sizeof req->id, "%08x", atomic_fetch_add(&seq, 1));
    atomic_fetch_add(&s->metrics.inflight, 1);
    return req;
}

static void free_request(struct ing_request *req)
{
    if (!req)
        return;
    atomic_fetch_sub(&req->srv->metrics.inflight, 1);
    cm_buf_free(&req->body);
    cm_buf_free(&req->reply.body);
    cm_arena_free(&req->arena);
    cm_free(req);
}

/* ---- the worker side ---- */

static void crash_init(struct ing_crash *c, const char *project)
{
    memset(c, 0, sizeof *c);
    c->project = project;
    c->idempotency_key = c->host_id = c->product = c->version = c->channel = c->build_id =
        c->os = c->os_version = c->cpu_arch = c->dump_kind = c->spool_path = c->endpoint = "";
}

void ing__upload_release(struct ing_upload *u)
{
    cm_buf_free(&u->inflated);
    if (u->release)
        u->release(u->release_arg);
    u->release = NULL;
}

static void process(struct ing_worker *w, void *arg)
{
    struct ing_request *req = arg;
    struct ing_server *s = req->srv;
    if (req->ep == ING_EP_HINTS) {
        ing__hint_handle(s, &req->arena, req->gzip, req->json, req->body.data, req->body.len,
                         &req->reply);
        cm_buf_free(&req->body);
        req->state = REPLYING;
        MHD_resume_connection(req->conn);
        return;
    }
    struct ing_upload u;
    memset(&u, 0, sizeof u);
    crash_init(&u.crash, s->conf.project);
    struct ing_outcome o = { 0 };
    struct cm_err err = { 0 };
    enum ing_reason r = req->ep == ING_EP_NATIVE
                            ? ing__native_parse(s, &req->arena, req->gzip, req->body.data,
                                                req->body.len, &u, &err)
                            : ing__submit_parse(s, &req->arena, &req->sub, req->body.data,
                                                req->body.len, &u, &err);
    if (r)
        o.reason = r;
    else
        ing__accept(w, &u, &o, &err);
    if (o.reason) {
        char msg[300];
        cm_log_escape(err.msg, sizeof err.msg, msg, sizeof msg);
        cm_log(o.reason == ING_R_STORAGE_ERROR || o.reason == ING_R_STORAGE_FULL ||
                       o.reason == ING_R_INTERNAL
                   ? CM_LOG_ERROR
                   : CM_LOG_INFO,
               "upload refused: reason=%s req=%s endpoint=%s bytes=%zu detail=\"%s\"",
               ing__reason_token(o.reason), req->id, ing__endpoint_name(req->ep), req->body.len,
               msg);
    } else {
        cm_log(CM_LOG_DEBUG, "upload stored: crash=%s req=%s endpoint=%s dup=%d deferred=%d",
               o.crash_id, req->id, ing__endpoint_name(req->ep), o.duplicate, o.deferred);
    }
    build_reply(s, req->ep, req->json, &o, &req->reply);
    if (o.reason == ING_R_NONE)
        ing__metrics_ack(&s->metrics, mono_us() - req->t0_us);
    ing__upload_release(&u);
    cm_buf_free(&req->body); /* the upload is stored: release its bytes before replying */
    req->state = REPLYING;
    MHD_resume_connection(req->conn);
}

/* ---- the access handler ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct ing_server *s = cls;
    struct ing_request *req = *con_cls;
    (void)version;
    if (!req) {
        enum ing_endpoint ep = route(url);
        bool post = !strcmp(method, MHD_HTTP_METHOD_POST);
        bool get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
        if (ep == ING_EP_OTHER)
            return reject(s, conn, ep, false, ING_R_NOT_FOUND);
        if (ep == ING_EP_HEALTHZ || ep == ING_EP_METRICS) {
            if (!get)
                return reject(s, conn, ep, false, ING_R_BAD_METHOD);
            return ep == ING_EP_HEALTHZ ? healthz(s, conn) : metrics(s, conn);
        }
        const char *accept = header(conn, MHD_HTTP_HEADER_ACCEPT);
        bool json = accept && strstr(accept, "application/json");
        if (!post)
            return reject(s, conn, ep, json, ING_R_BAD_METHOD);
        uint64_t declared = 0;
        bool gzip = false;
        enum ing_reason r = check_post(s, conn, ep, &declared, &gzip);
        if (r)
            return reject(s, conn, ep, json, r);
        if (!(req = new_request(s, conn, ep, declared, gzip)))
            return reject(s, conn, ep, json, ING_R_INTERNAL);
        *con_cls = req;
        return MHD_YES;
    }

    if (*upload_size) { /* a body chunk */
        size_t n = *upload_size;
        *upload_size = 0;
        req->received += n;
        atomic_fetch_add(&s->metrics.bytes_in[req->ep], n);
        uint64_t elapsed = mono_us() - req->t0_us;
        bool too_slow = elapsed > (uint64_t)s->conf.body_deadline_s * 1000000u ||
                        (elapsed > (uint64_t)s->conf.min_rate_grace_s * 1000000u &&
                         req->received * 1000000u / elapsed < s->conf.min_body_rate_bytes);
        if (too_slow) { /* no response can be queued mid-body: close the connection */
            atomic_fetch_add(&s->metrics.rejected[ING_R_SLOW_BODY], 1);
            ing__metrics_request(&s->metrics, req->ep, 408);
            cm_log(CM_LOG_INFO, "upload refused: reason=slow_body req=%s bytes=%llu", req->id,
                   (unsigned long long)req->received);
            return MHD_NO;
        }
        if (req->state == RECEIVING) {
            if (cm_buf_append(&req->body, upload_data, n, NULL)) {
                req->late = ING_R_TOO_LARGE; /* chunked body past the cap */
                req->state = DISCARDING;
                cm_buf_free(&req->body);
            }
        } else if (req->state == DISCARDING && req->received > 2 * s->conf.max_request_bytes) {
            return MHD_NO; /* stop reading a body that never ends */
        }
        return MHD_YES;
    }

    switch (req->state) {
    case RECEIVING:
        if (req->body.len == 0)
            return reject(s, conn, req->ep, req->json, ING_R_EMPTY);
        req->state = PROCESSING;
        MHD_suspend_connection(conn);
        if (!ing__pool_submit(s->pool, process, req)) {
            MHD_resume_connection(conn);
            req->state = DISCARDING;
            req->late = ING_R_SHUTTING_DOWN;
        }
        return MHD_YES;
    case DISCARDING:
        return reject(s, conn, req->ep, req->json, req->late);
    case PROCESSING:
        return MHD_YES; /* spurious call while suspended */
    case REPLYING:
        return send_reply(s, conn, req->ep, &req->reply);
    }
    return MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free_request(*con_cls);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = 0;
    cm_log(CM_LOG_DEBUG, "http: %s", line);
}

/* ---- start and stop ---- */

static enum cm_code parse_listen(const char *listen, struct sockaddr_storage *sa, bool *v6,
                                 struct cm_err *err)
{
    char host[256];
    const char *port;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':' || (size_t)(close - listen - 1) >= sizeof host)
            return cm_fail(err, CM_E_USAGE, "listen: \"%s\" is not [HOST]:PORT", listen);
        memcpy(host, listen + 1, (size_t)(close - listen - 1));
        host[close - listen - 1] = 0;
        port = close + 2;
    } else {
        const char *colon = strrchr(listen, ':');
        if (!colon || (size_t)(colon - listen) >= sizeof host)
            return cm_fail(err, CM_E_USAGE, "listen: \"%s\" is not HOST:PORT", listen);
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = 0;
        port = colon + 1;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (gai != 0)
        return cm_fail(err, CM_E_USAGE, "listen: cannot resolve \"%s\": %s", listen,
                       gai_strerror(gai));
    memcpy(sa, ai->ai_addr, ai->ai_addrlen);
    *v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    return CM_E_OK;
}

enum cm_code ing_server_start(const struct ing_conf *conf, const struct ing_recorder *rec,
                              struct ing_server **out, struct cm_err *err)
{
    *out = NULL;
    enum cm_code rc = ing_conf_check(conf, err);
    if (rc)
        return rc;
    struct ing_server *s = cm_calloc(1, sizeof *s);
    if (!s)
        return cm_fail(err, CM_E_NOMEM, "cannot allocate server");
    s->conf = *conf;
    if (rec && rec->record && rec->queue_depth) {
        s->rec = *rec;
        s->has_rec = true;
    }
    atomic_store(&s->db_up, s->has_rec);
    atomic_store(&s->metrics.db_up, s->has_rec ? 1 : 0);
    struct sockaddr_storage sa;
    bool v6 = false;
    if ((rc = parse_listen(conf->listen, &sa, &v6, err)))
        goto fail;
    if ((rc = ing__spool_open(conf->spool_dir, conf->fsync_batch, &s->spool, err)))
        goto fail;
    atomic_store(&s->free_bytes, ing__spool_free_bytes(s->spool));
    if (!(s->pending = ing__pending_new())) {
        rc = cm_fail(err, CM_E_NOMEM, "cannot allocate pending index");
        goto fail;
    }
    if ((rc = ing__drainer_recover(s, err)))
        goto fail;
    if ((rc = ing__pool_start(s, conf->workers, &s->pool, err)))
        goto fail;
    if ((rc = ing__drainer_start(s, &s->drainer, err)))
        goto fail;
    /* The pool holds the read buffer and the parsed headers: twice the header cap leaves room
     * for both while refusing header blocks past the cap. */
    size_t mem = conf->max_header_bytes * 2;
    if (mem < 32768)
        mem = 32768;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)conf->connection_timeout_s, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)conf->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)conf->max_connections_per_ip, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)conf->http_threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_STRICT_FOR_CLIENT, 1,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, MHD_OPTION_END);
    if (!s->mhd) {
        rc = cm_fail(err, CM_E_IO, "cannot listen on %s", conf->listen);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    cm_log(CM_LOG_INFO, "listening: addr=%s port=%u spool=%s pending=%llu", conf->listen,
           s->port, conf->spool_dir, (unsigned long long)ing__pending_count(s->pending));
    *out = s;
    return CM_E_OK;
fail:
    ing_server_stop(s, 0);
    return rc;
}

uint16_t ing_server_port(const struct ing_server *s) { return s ? s->port : 0; }

uint64_t ing_server_pending(const struct ing_server *s)
{
    return s ? ing__pending_count(s->pending) : 0;
}

void ing_server_kick_drainer(struct ing_server *s)
{
    if (s)
        ing__drainer_kick(s->drainer);
}

void ing_server_stop(struct ing_server *s, unsigned grace_ms)
{
    if (!s)
        return;
    atomic_store(&s->stopping, true);
    if (s->mhd) {
        MHD_socket lfd = MHD_quiesce_daemon(s->mhd); /* no new connections */
        if (lfd != MHD_INVALID_SOCKET)
            close(lfd);
        uint64_t deadline = mono_us() + (uint64_t)grace_ms * 1000u;
        while (atomic_load(&s->metrics.inflight) > 0 && mono_us() < deadline)
            usleep(10000);
    }
    /* Workers finish every queued upload and resume its connection before the daemon goes. */
    ing__pool_stop(s->pool);
    if (s->mhd) {
        if (grace_ms) { /* give resumed connections a moment to send their replies */
            uint64_t deadline = mono_us() + 200000u;
            while (atomic_load(&s->metrics.inflight) > 0 && mono_us() < deadline)
                usleep(5000);
        }
        MHD_stop_daemon(s->mhd);
    }
    ing__pool_free(s->pool);
    ing__drainer_stop(s->drainer);
    ing__pending_free(s->pending);
    ing__spool_close(s->spool);
    cm_free(s);
}
