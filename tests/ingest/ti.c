/* ti.c -- helpers of the ingest tests (see ti.h). */
#include "tests/ingest/ti.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "db/db.h"
#include "tests/db/pg_harness.h"
#include "tests/th.h"

/* ---- PostgreSQL ---- */

static PGconn *sql;

void ti_pg_start(void)
{
    char why[512];
    struct cm_err err = { 0 };
    if (!pgh_start("ingest", why, sizeof why))
        fail_msg("cannot start PostgreSQL: %s", why);
    struct db_conn *db = pgh_connect();
    if (db_migrate(db, NULL, &err))
        fail_msg("cannot migrate: %s", err.msg);
    db_close(db);
    sql = PQconnectdb(pgh_conninfo());
    if (PQstatus(sql) != CONNECTION_OK)
        fail_msg("cannot connect: %s", PQerrorMessage(sql));
}

void ti_pg_stop_all(void)
{
    if (sql)
        PQfinish(sql);
    sql = NULL;
    pgh_stop();
}

void ti_pg_down(void)
{
    struct cm_err err = { 0 };
    if (db_cluster_stop(pgh_cluster(), DB_STOP_FAST, &err))
        fail_msg("cannot stop PostgreSQL: %s", err.msg);
}

void ti_pg_up(void)
{
    struct cm_err err = { 0 };
    if (db_cluster_restart(pgh_cluster(), DB_STOP_FAST, &err))
        fail_msg("cannot start PostgreSQL again: %s", err.msg);
    PQreset(sql);
}

const char *ti_pg_conninfo(void) { return pgh_conninfo(); }

static PGresult *query(const char *q, const char *param)
{
    const char *params[1] = { param };
    for (int attempt = 0; attempt < 2; attempt++) {
        PGresult *res = PQexecParams(sql, q, param ? 1 : 0, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            return res;
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(sql));
        PQclear(res);
        if (PQstatus(sql) != CONNECTION_OK) {
            PQreset(sql);
            continue;
        }
        fail_msg("query failed: %s: %s", q, msg);
    }
    fail_msg("query failed twice: %s: %s", q, PQerrorMessage(sql));
    return NULL;
}

long long ti_sql_count(const char *q, const char *param)
{
    PGresult *res = query(q, param);
    long long n = PQntuples(res) ? atoll(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return n;
}

void ti_sql_text(const char *q, const char *param, char *out, size_t n)
{
    PGresult *res = query(q, param);
    snprintf(out, n, "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
}

/* ---- a collector ---- */

void ti_srv_conf(struct ti_srv *t)
{
    memset(t, 0, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "/tmp/ti-sp-XXXXXX");
    if (!mkdtemp(t->dir))
        fail_msg("mkdtemp: %s", strerror(errno));
    ing_conf_default(&t->conf);
    snprintf(t->conf.listen, sizeof t->conf.listen, "127.0.0.1:0");
    snprintf(t->conf.spool_dir, sizeof t->conf.spool_dir, "%s/spool", t->dir);
    t->conf.drain_interval_ms = 50;
    t->conf.workers = 4;
    t->conf.spool_reserve_bytes = 0;
    t->conf.db_timeout_ms = 3000;
    t->conf.retry_after_s = 1;
}

void ti_srv_start(struct ti_srv *t, bool with_db)
{
    struct cm_err err = { 0 };
    struct ing_recorder rec, *recp = NULL;
    if (with_db) {
        if (ing_pg_open(ti_pg_conninfo(), &t->conf, &t->pg, &err))
            fail_msg("ing_pg_open: %s", err.msg);
        ing_pg_recorder(t->pg, &rec);
        recp = &rec;
    }
    if (ing_server_start(&t->conf, recp, &t->s, &err))
        fail_msg("ing_server_start: %s", err.msg);
    t->port = ing_server_port(t->s);
    assert_true(t->port > 0);
}

void ti_srv_stop(struct ti_srv *t)
{
    ing_server_stop(t->s, 2000);
    t->s = NULL;
    ing_pg_close(t->pg);
    t->pg = NULL;
    ti_rmtree(t->dir);
}

size_t ti_spool_files(const struct ti_srv *t, const char *sub, size_t *temps)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", t->conf.spool_dir, sub);
    DIR *d = opendir(path);
    if (!d)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    size_t n = 0, tmp = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strncmp(e->d_name, ".tmp.", 5))
            tmp++;
        else if (e->d_name[0] != '.' && e->d_type != DT_DIR)
            n++;
    }
    closedir(d);
    if (temps)
        *temps = tmp;
    return n;
}

size_t ti_count_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

void ti_rmtree(const char *dir)
{
    if (strncmp(dir, "/tmp/ti-", 8) != 0) /* only our own folders */
        return;
    char *argv[] = { "/bin/rm", "-rf", (char *)dir, NULL };
    th_run(argv, NULL, NULL, 60);
}

/* ---- HTTP ---- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct ti_resp *r = arg;
    cm_buf_append(&r->body, p, size * nmemb, NULL);
    return size * nmemb;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    struct ti_resp *r = arg;
    size_t n = size * nmemb;
    if (n > 12 && !strncasecmp(p, "Retry-After:", 12))
        r->retry_after = atol(p + 12);
    return n;
}

void ti_http(uint16_t port, const char *path, const char *const *headers, const void *body,
             size_t n, struct ti_resp *r)
{
    memset(r, 0, sizeof *r);
    r->retry_after = -1;
    cm_buf_init(&r->body, 0);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK)
        fail_msg("HTTP %s: %s", path, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

void ti_resp_free(struct ti_resp *r) { cm_buf_free(&r->body); }

size_t ti_raw(uint16_t port, const void *req, size_t n, char *out, size_t cap, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        fail_msg("connect: %s", strerror(errno));
    const char *p = req;
    size_t left = n;
    while (left) { /* the server may answer and close before reading everything */
        ssize_t w = send(fd, p, left, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        p += w;
        left -= (size_t)w;
    }
    size_t got = 0;
    for (;;) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        if (poll(&pfd, 1, timeout_ms) <= 0)
            break;
        ssize_t r = recv(fd, out + got, cap - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == cap - 1)
            break;
    }
    out[got] = 0;
    close(fd);
    return got;
}

int ti_raw_status(const char *resp)
{
    int status = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
        return 0;
    return status;
}

/* ---- bodies ---- */

void ti_mp_field(struct cm_buf *b, const char *boundary, const char *name, const char *value)
{
    cm_buf_printf(b, NULL, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n",
                  boundary, name, value);
}

void ti_mp_file(struct cm_buf *b, const char *boundary, const char *name, const char *ctype,
                const void *data, size_t n)
{
    cm_buf_printf(b, NULL,
                  "--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"x.dmp\"\r\n"
                  "Content-Type: %s\r\n\r\n",
                  boundary, name, ctype);
    cm_buf_append(b, data, n, NULL);
    cm_buf_append(b, "\r\n", 2, NULL);
}

void ti_mp_end(struct cm_buf *b, const char *boundary)
{
    cm_buf_printf(b, NULL, "--%s--\r\n", boundary);
}

void ti_gzip(const void *in, size_t n, struct cm_buf *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    cm_buf_init(out, 0);
    size_t bound = deflateBound(&zs, (uLong)n);
    assert_int_equal(cm_buf_reserve(out, bound, NULL), CM_E_OK);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out->data;
    zs.avail_out = (uInt)bound;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out->len = bound - zs.avail_out;
    deflateEnd(&zs);
}

void ti_zstd(const void *in, size_t n, struct cm_buf *out)
{
    cm_buf_init(out, 0);
    size_t bound = ZSTD_compressBound(n);
    assert_int_equal(cm_buf_reserve(out, bound, NULL), CM_E_OK);
    size_t z = ZSTD_compress(out->data, bound, in, n, 3);
    assert_false(ZSTD_isError(z));
    out->len = z;
}

uint8_t *ti_unzstd_file(const char *path, size_t *n)
{
    size_t zn;
    uint8_t *z = th_read(path, &zn);
    unsigned long long size = ZSTD_getFrameContentSize(z, zn);
    if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR)
        size = 64u << 20;
    uint8_t *out = malloc(size ? size : 1);
    size_t r = ZSTD_decompress(out, size, z, zn);
    if (ZSTD_isError(r))
        fail_msg("%s: %s", path, ZSTD_getErrorName(r));
    free(z);
    *n = r;
    return out;
}

void ti_sha256sum(const void *p, size_t n, char out[65])
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/ti-sha-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    th_write(path, p, n);
    char *argv[] = { "/usr/bin/sha256sum", path, NULL };
    char *o = NULL;
    assert_int_equal(th_run(argv, &o, NULL, 60), 0);
    unlink(path);
    assert_true(strlen(o) >= 64);
    memcpy(out, o, 64);
    out[64] = 0;
    free(o);
}

void ti_envelope(struct cm_buf *out, const char *idem, const char *host, const void *dump,
                 size_t n, enum proto_compression comp)
{
    static const struct proto_kv kv[] = { { "channel_note", "from the test" } };
    struct proto_upload u = { 0 };
    u.meta = (struct proto_meta){ .idempotency_key = idem ? idem : "", .host_id = host,
                                  .product = "TestProduct", .version = "1.2.3", .channel = "",
                                  .os = "Linux", .os_version = "6.1", .build_id = "",
                                  .cpu_arch = "", .crash_time_unix_ms = 1721362140000,
                                  .annotations = kv, .annotation_count = 1 };
    u.compression = comp;
    u.dump = dump;
    u.dump_len = n;
    u.hint_crash_id = "";
    cm_buf_init(out, 0);
    assert_int_equal(proto_encode_upload(&u, out, NULL), CM_E_OK);
}

void ti_unique(char *out, size_t n, const char *prefix)
{
    uint32_t r = 0;
    assert_int_equal(getrandom(&r, sizeof r, 0), (ssize_t)sizeof r);
    snprintf(out, n, "%s-%08x", prefix, r);
}
