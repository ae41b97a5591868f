/* ti.h -- helpers of the ingest tests: the throwaway PostgreSQL cluster of
 * tests/db/pg_harness.h, an in-process collector on a random loopback port with a private
 * spool, HTTP over libcurl and over raw sockets, and builders for multipart bodies, gzip, zstd
 * and envelopes. */
#ifndef TRIAGE_TI_H
#define TRIAGE_TI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cm_buf.h"
#include "ingest/ing.h"
#include "proto/proto.h"

/* ---- PostgreSQL ---- */

/* Starts the test cluster (tests/db/pg_harness.h) and applies the migrations (fails the test
 * if it cannot: a missing server is a failure, never a skip). */
void ti_pg_start(void);
void ti_pg_stop_all(void);
/* pg_ctl stop -m fast / start again on the same socket. */
void ti_pg_down(void);
void ti_pg_up(void);
const char *ti_pg_conninfo(void);
/* SELECT count(*) ... with one text parameter ($1); reconnects after a restart. */
long long ti_sql_count(const char *sql, const char *param);
/* A text column of the first row, "" if none; into out. */
void ti_sql_text(const char *sql, const char *param, char *out, size_t n);

/* ---- a collector ---- */

struct ti_srv {
    struct ing_server *s;
    struct ing_pg *pg;
    struct ing_conf conf;
    char dir[64];   /* private folder; the spool is dir/spool */
    uint16_t port;
};

/* Defaults for tests: loopback port 0, private spool, drainer every 50 ms, no disk reserve. */
void ti_srv_conf(struct ti_srv *t);
/* Starts it; with_db connects the recorder to the test cluster. */
void ti_srv_start(struct ti_srv *t, bool with_db);
void ti_srv_stop(struct ti_srv *t);
/* Files in spool/dumps (or pending) not counting dot files; *temps gets the .tmp.* ones. */
size_t ti_spool_files(const struct ti_srv *t, const char *sub, size_t *temps);

/* ---- HTTP ---- */

struct ti_resp {
    long status;
    struct cm_buf body;
    long retry_after; /* -1 when absent */
};
/* One request with libcurl; headers NULL-terminated (may be NULL). body NULL: GET. */
void ti_http(uint16_t port, const char *path, const char *const *headers, const void *body,
             size_t n, struct ti_resp *r);
void ti_resp_free(struct ti_resp *r);
/* Sends req on a fresh connection, optionally half-closes, reads until EOF or timeout_ms of
 * silence; returns the bytes read (NUL-terminated, at most cap-1). */
size_t ti_raw(uint16_t port, const void *req, size_t n, char *out, size_t cap, int timeout_ms);
/* The status code of a raw HTTP response, 0 if none. */
int ti_raw_status(const char *resp);

/* ---- bodies ---- */

void ti_mp_field(struct cm_buf *b, const char *boundary, const char *name, const char *value);
void ti_mp_file(struct cm_buf *b, const char *boundary, const char *name, const char *ctype,
                const void *data, size_t n);
void ti_mp_end(struct cm_buf *b, const char *boundary);
void ti_gzip(const void *in, size_t n, struct cm_buf *out);
void ti_zstd(const void *in, size_t n, struct cm_buf *out);
/* Decompresses a zstd file the plain way (one-shot libzstd), for independent checks. */
uint8_t *ti_unzstd_file(const char *path, size_t *n);
/* SHA-256 hex of bytes as sha256sum(1) computes it (through a temp file). */
void ti_sha256sum(const void *p, size_t n, char out[65]);
/* A CrashUpload envelope. */
void ti_envelope(struct cm_buf *out, const char *idem, const char *host, const void *dump,
                 size_t n, enum proto_compression comp);
/* "ti-<random>" names so tests sharing one database never collide. */
void ti_unique(char *out, size_t n, const char *prefix);
/* Counts files in a folder (not dot files). */
size_t ti_count_dir(const char *dir);
/* rm -rf */
void ti_rmtree(const char *dir);

#endif
