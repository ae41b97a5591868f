/* det_notify.c -- telling the world about an incident: a NOTIFY on the configured PostgreSQL
 * channel (in the statement that records the announcement, so listeners hear only of committed
 * changes), a log line, and an optional webhook: an HTTP POST (libcurl) of
 * {"event": "opened" | "changed" | "closed", "incident": <triage_incident_json>}. */
#include <curl/curl.h>
#include <string.h>

#include "common/cm_alloc.h"
#include "common/cm_buf.h"
#include "common/cm_log.h"
#include "detector/det_int.h"

/* The response body is not needed; swallow it. */
static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

enum cm_code det_webhook_post(const char *url, const char *body, int64_t timeout_ms,
                              struct cm_err *err)
{
    CURL *h = curl_easy_init();
    if (!h)
        return cm_fail(err, CM_E_NOMEM, "webhook: cannot start a transfer");
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    enum cm_code rc = CM_E_OK;
    if (!headers) {
        rc = cm_fail(err, CM_E_NOMEM, "webhook: out of memory");
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "triage-detector");
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK)
        rc = cm_fail(err, CM_E_IO, "webhook: %s", curl_easy_strerror(cc));
    else if (status < 200 || status > 299)
        rc = cm_fail(err, CM_E_IO, "webhook: the receiver answered %ld", status);
out:
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return rc;
}

static void post(const struct det_conf *c, struct db_conn *db, const struct db_incident *x,
                 const char *event, struct det_report *rep)
{
    struct cm_err err = { 0 };
    char *json = NULL;
    struct cm_buf body;
    cm_buf_init(&body, 0);
    enum cm_code rc = db_incident_json(db, x->project, x->id, &json, &err);
    if (!rc)
        rc = cm_buf_printf(&body, &err, "{\"event\":\"%s\",\"incident\":%s}", event, json);
    if (!rc)
        rc = det_webhook_post(c->webhook_url, (const char *)body.data, c->webhook_timeout_ms,
                              &err);
    if (rep)
        rep->webhook_posts++;
    if (rc) {
        if (rep)
            rep->webhook_failures++;
        cm_log(CM_LOG_WARN, "incident webhook failed id=%lld event=%s: %s", (long long)x->id,
               event, err.msg);
    }
    cm_buf_free(&body);
    cm_free(json);
}

enum cm_code det__announce(struct db_conn *db, const struct det_conf *c,
                           const struct db_incident *x, const char *event,
                           struct det_report *rep, struct cm_err *err)
{
    int32_t revision = 0;
    enum cm_code rc = db_incident_publish(db, x->project, x->id, c->notify_channel, event,
                                          &revision, err);
    if (rc)
        return rc;
    if (rep)
        rep->notified++;
    /* Module names and headlines come from dumps: escaped before they reach a log. */
    char module[200], version[120], headline[600];
    const char *m = x->fault_module ? x->fault_module : x->bucket_key ? x->bucket_key : "";
    const char *v = x->fault_module_version ? x->fault_module_version : "";
    const char *h = x->headline ? x->headline : "";
    cm_log(CM_LOG_INFO, "incident %s id=%lld revision=%d module=%s version=%s crashes=%lld "
                        "hosts=%lld buckets=%lld peak_per_minute=%lld headline=\"%s\"",
           event, (long long)x->id, revision, cm_log_escape(m, strlen(m), module, sizeof module),
           cm_log_escape(v, strlen(v), version, sizeof version), (long long)x->crashes,
           (long long)x->hosts, (long long)x->bucket_count, (long long)x->peak_per_minute,
           cm_log_escape(h, strlen(h), headline, sizeof headline));
    if (c->webhook_url[0])
        post(c, db, x, event, rep);
    return CM_E_OK;
}
