/* ing.h -- the collector (`triage-ingest`) and the upload client (`triagectl upload`).
 *
 * The collector takes crash uploads over HTTP (libmicrohttpd) on two routes: the native protobuf
 * envelope of proto/crash.proto (POST /api/v1/crashes) and the Breakpad/Crashpad multipart form
 * that stock reporters send (POST /submit). It stores each dump zstd-compressed in a spool under
 * the SHA-256 of its decompressed bytes, durably (fsync, rename, fsync directory), then hands the
 * crash to a recorder (the database: crash row and job in one transaction), and only then
 * acknowledges. When the recorder fails, the crash's metadata waits in the spool as a sidecar
 * record and a drainer thread records it later.
 *
 * The library does not talk to PostgreSQL itself: the program gives it a struct ing_recorder
 * (ingest/ing_pg.c wraps db/db.h), so libraries meet only in programs (STYLE.md section 1).
 *
 * Ownership: ing_server_start() returns a server owned by the caller (ing_server_stop() frees it).
 * Strings in the structs below are owned by whoever filled them unless a comment says otherwise. */
#ifndef TRIAGE_ING_H
#define TRIAGE_ING_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

#include "common/cm_err.h"

/* ---- configuration (ing_conf.c): one table of keys with type, default, min and max ----
 * Precedence: defaults, then the file (--config FILE), then flags (--key=value). Every key is
 * documented in ingest/triage-ingest.conf.example. */

struct ing_conf {
    char listen[256];       /* HOST:PORT to bind; port 0 picks a free port */
    char spool_dir[1024];   /* durable spool; created 0700 */
    char db_url[1024];      /* libpq connection string or URL; "" = no database */
    char log_level[16];     /* debug, info, warn, error */
    char project[64];       /* project every crash belongs to until API keys exist */

    size_t max_request_bytes;        /* whole request body as sent (compressed) */
    size_t max_header_bytes;         /* request line and header block */
    size_t max_dump_bytes;           /* decompressed dump (streaming cap) */
    size_t max_part_bytes;           /* one multipart part */
    size_t max_part_header_bytes;    /* header block of one multipart part */
    size_t max_preamble_bytes;       /* bytes before the first multipart boundary */
    size_t max_parts;                /* multipart parts per request */
    size_t max_annotations;          /* annotations per crash */
    size_t max_annotation_bytes;     /* one annotation value */
    size_t max_annotation_key_bytes; /* one annotation key (form field name) */
    size_t max_string_bytes;         /* other metadata strings (product, host id...) */
    size_t zstd_window_log_max;      /* ZSTD_d_windowLogMax for uploaded zstd frames */
    size_t zstd_level;               /* level used to compress raw and gzip dumps for the spool */

    size_t connection_timeout_s;  /* idle connection (no byte received) is closed */
    size_t body_deadline_s;       /* a request body must be complete within this time */
    size_t min_body_rate_bytes;   /* bytes/s a body must average once the grace period passed */
    size_t min_rate_grace_s;      /* grace period before the minimum rate applies */
    size_t max_connections;       /* open connections in total */
    size_t max_connections_per_ip;
    size_t http_threads;          /* libmicrohttpd polling threads */
    size_t workers;               /* threads that decompress, hash, fsync and record (and so the
                                     cap on concurrent decompressions) */

    size_t spool_high_water;      /* pending (not yet recorded) crashes past which the native
                                     route answers 503 */
    size_t queue_high_water;      /* analysis jobs waiting past which the native route answers
                                     503 */
    size_t spool_reserve_bytes;   /* free disk space below which the native route answers 503 */
    size_t retry_after_s;         /* Retry-After sent with 503 */
    size_t drain_interval_ms;     /* how often the drainer retries pending crashes */
    bool fsync_batch;             /* share one directory fsync among concurrent uploads */
    size_t db_timeout_ms;         /* bound on one database call */
    size_t event_clamp_s;         /* crash times are clamped into [received - this, received]
                                     where rates are computed (db_options.event_clamp_ms) */
    size_t shutdown_grace_ms;     /* SIGTERM: time in-flight requests get to finish */

    /* Progressive collection (POST /api/v1/hints, docs/progressive-collection.md). */
    bool hints;                   /* false: every hint asks for the dump, nothing is counted */
    size_t hint_first_k;          /* full dumps wanted per fault key per UTC day */
    size_t hint_sample_m;         /* after those, 1 dump in M (0: none) */
};

/* Fills *c with the defaults of the table. */
void ing_conf_default(struct ing_conf *c);
/* Sets one key from its text form ("20M", "true", "10"); CM_E_USAGE for an unknown key or a bad
 * or out-of-range value, with a message naming the key and the range. */
enum cm_code ing_conf_set(struct ing_conf *c, const char *key, const char *value,
                          struct cm_err *err);
/* Reads `key = value` lines (# comments, blank lines). Errors name path:line. */
enum cm_code ing_conf_load(struct ing_conf *c, const char *path, struct cm_err *err);
/* Applies argv: --config FILE (loaded first, wherever it appears), then --key=value or
 * --key value for every key of the table, in order. */
enum cm_code ing_conf_args(struct ing_conf *c, int argc, char **argv, struct cm_err *err);
/* Cross-key checks (part size within the request size...). */
enum cm_code ing_conf_check(const struct ing_conf *c, struct cm_err *err);
/* The table, for documentation and tests: name, type ("number", "bool", "string"), default text,
 * one-line help; NULL past the end. */
const char *ing_conf_key(size_t i, const char **type, const char **def, const char **help);

/* ---- what gets recorded ---- */

struct ing_kv {
    const char *key, *value; /* UTF-8 without NUL bytes */
};

/* One crash as the collector hands it to the recorder. Strings are never NULL ("" if absent). */
struct ing_crash {
    char crash_id[37];          /* server-chosen UUID, lower-case 8-4-4-4-12 */
    const char *project;
    const char *idempotency_key; /* client-chosen; "" for none (multipart uploads) */
    const char *host_id;
    const char *product, *version, *channel, *build_id, *os, *os_version, *cpu_arch;
    int64_t crash_time_unix_ms;  /* endpoint's clock; 0 = unknown */
    int64_t received_unix_ms;    /* collector's clock */
    const struct ing_kv *annotations;
    size_t annotation_count;
    char dump_sha256[65];        /* lower-case hex of the decompressed dump */
    uint64_t dump_bytes;         /* decompressed size */
    uint64_t stored_bytes;       /* size of the zstd file in the spool */
    const char *dump_kind;       /* ana_kind_name(): "minidump", "elfcore", "kernel" */
    const char *spool_path;      /* absolute: <spool_dir>/dumps/<sha256>.zst */
    const char *endpoint;        /* "native" or "submit" */
};

/* A hint (POST /api/v1/hints) as the collector hands it to the recorder. Strings never NULL. */
struct ing_hint {
    char crash_id[37];           /* server-chosen UUID, used if the crash is recorded */
    const char *project;
    const char *idempotency_key; /* "" for none: the dump is then always asked for */
    const char *host_id;
    const char *product, *version, *channel, *build_id, *os, *os_version, *cpu_arch;
    int64_t crash_time_unix_ms;
    const struct ing_kv *annotations;
    size_t annotation_count;
    const char *fault_key;       /* canonical text (ana_fault_key_format) */
    const char *fault_module, *fault_module_version; /* the key's (version, else build id) */
    const char *dump_kind;       /* ana_kind_name() of the declared format, or "" */
    size_t first_k, sample_m;    /* the policy (conf) */
};

/* The recorder's answer to a hint. */
struct ing_hint_decision {
    char crash_id[37]; /* "" when nothing was recorded */
    bool counted, want_dump, duplicate;
    char reason[32];   /* a token of ING_HINT_REASONS (ing_int.h) */
    char bucket[65];
};

/* The recorder: how durable crashes reach the database. Both functions are called from several
 * threads at once; ctx must allow that. */
struct ing_recorder {
    void *ctx;
    /* Records c (crash row and its analysis job) in one transaction. A crash the database
     * already has (same crash id; same project and idempotency key; or same project, host id
     * and dump SHA-256) is not counted again: id_out gets the existing crash id and *duplicate
     * is set. Otherwise id_out gets c->crash_id. Any failure means "not recorded": the
     * collector keeps the crash pending and retries, so the call must be idempotent. */
    enum cm_code (*record)(void *ctx, const struct ing_crash *c, char id_out[37], bool *duplicate,
                           struct cm_err *err);
    /* Analysis jobs not yet finished, for load shedding and metrics. */
    enum cm_code (*queue_depth)(void *ctx, uint64_t *jobs, struct cm_err *err);
    /* Decides one hint (progressive collection); idempotent by the hint's idempotency key. May
     * be NULL: every hint then asks for the dump. A failure makes the collector ask for the
     * dump (the upload route spools durably whatever the database does). */
    enum cm_code (*hint)(void *ctx, const struct ing_hint *h, struct ing_hint_decision *d,
                         struct cm_err *err);
};

/* ---- the recorder over db/db.h (ing_pg.c, library triage_ingest_pg) ----
 * A pool of PostgreSQL connections, one per calling thread at a time, opened on demand; the
 * first connection applies the migrations. Calls are bounded by conf->db_timeout_ms. */

struct ing_pg;
/* Does not connect yet (the database may be down at start). *out owned by the caller; free
 * with ing_pg_close(). */
enum cm_code ing_pg_open(const char *conninfo, const struct ing_conf *conf, struct ing_pg **out,
                         struct cm_err *err);
/* Fills *rec with the recorder functions over pg. */
void ing_pg_recorder(struct ing_pg *pg, struct ing_recorder *rec);
void ing_pg_close(struct ing_pg *pg);

/* ---- the server ---- */

struct ing_server;

/* Opens the spool (recovering pending crashes and removing stale temp files), starts the worker
 * threads, the drainer and the HTTP daemon. rec may be NULL: every crash then stays pending in
 * the spool. The conf is copied. *out is owned by the caller; free with ing_server_stop(). */
enum cm_code ing_server_start(const struct ing_conf *conf, const struct ing_recorder *rec,
                              struct ing_server **out, struct cm_err *err);
/* The TCP port the server listens on (the real one when conf->listen asked for port 0). */
uint16_t ing_server_port(const struct ing_server *s);
/* Stops accepting connections, lets requests already started finish (at most grace_ms), stops
 * the threads and frees s. NULL is fine. */
void ing_server_stop(struct ing_server *s, unsigned grace_ms);
/* Crashes acknowledged but not yet recorded (sidecars in the spool). */
uint64_t ing_server_pending(const struct ing_server *s);
/* Wakes the drainer now (tests, and the program after the database comes back). */
void ing_server_kick_drainer(struct ing_server *s);

/* ---- the upload client (ing_client.c), used by `triagectl upload` ---- */

enum ing_client_status {
    ING_CLIENT_ACCEPTED = 1, /* 202: stored by the service */
    ING_CLIENT_DUPLICATE,    /* 202: the service already had it */
    ING_CLIENT_DISCARDED,    /* deliberately dropped by policy; not retried */
    ING_CLIENT_REJECTED,     /* 4xx: malformed or over a limit; not retried */
    ING_CLIENT_QUEUED,       /* not delivered yet; kept in the outbox for the next run */
    ING_CLIENT_FAILED,       /* not delivered and no outbox to keep it in */
    ING_CLIENT_COUNTED,      /* the service counted the crash from its hint; dump not wanted */
};
const char *ing_client_status_name(enum ing_client_status s);

struct ing_client_event {
    const char *path;    /* the file (or outbox entry) */
    size_t index, total; /* 1-based position in this run */
    unsigned attempt;    /* 1 for the first try */
    bool final;          /* true once the file's outcome is known */
    enum ing_client_status status; /* when final */
    const char *crash_id;          /* when accepted or duplicate, else "" */
    const char *reason;            /* reason token or error text, "" if none */
    unsigned wait_ms;              /* when !final: the backoff before the next attempt */
};

struct ing_client_opts {
    const char *url;       /* service base URL, e.g. http://127.0.0.1:8080 */
    const char *product, *version, *channel, *host_id, *build_id, *os, *os_version;
    int64_t crash_time_unix_ms; /* 0: unknown */
    const struct ing_kv *annotations;
    size_t annotation_count;
    const char *outbox_dir; /* NULL: no outbox */
    unsigned max_attempts;  /* per file per run; default 6 */
    unsigned base_delay_ms; /* first backoff; default 500 */
    unsigned max_delay_ms;  /* backoff cap (also caps Retry-After); default 30000 */
    unsigned timeout_s;     /* per HTTP attempt; default 120 */
    size_t max_dump_bytes;  /* refuse larger files before reading; default 100 MiB */
    int zstd_level;         /* default 3 */
    bool no_hint;           /* true: upload every dump in full; false (default): send the hint
                             * (fault key, POST /api/v1/hints) first and the dump only when the
                             * service asks for it */
    /* Called for every attempt outcome; may be NULL. */
    void (*progress)(void *ctx, const struct ing_client_event *ev);
    void *progress_ctx;
};

struct ing_client_totals {
    size_t accepted, duplicate, discarded, rejected, queued, failed;
    size_t counted;         /* counted from the hint, dump not sent */
    size_t hints;           /* hints the service answered */
    uint64_t bytes_sent;    /* request bodies sent (hints and envelopes, every attempt) */
    uint64_t envelope_bytes; /* every new crash's envelope once: what --no-hint sends */
};

/* Uploads each file (raw dumps are zstd-compressed first; .zst/.gz files are sent as they are)
 * under a fresh idempotency key per file, kept across that file's retries. With an outbox, the
 * prepared envelope is written there first and removed once the service answered for good;
 * entries left by earlier runs are sent before the new files. Fails only for usage or local
 * errors (outbox not writable); per-file outcomes are in *totals and the progress events. */
enum cm_code ing_client_upload(const struct ing_client_opts *o, char *const *paths, size_t count,
                               struct ing_client_totals *totals, struct cm_err *err);

/* A session for programs that hold dumps in memory (the fleet drill): one libcurl handle kept
 * alive across crashes, the same hint-then-dump logic and retries as ing_client_upload(). Not
 * thread-safe: one session per thread. curl_global_init() must have been called once by the
 * program before sessions are opened from several threads. */
struct ing_client;

/* One crash. Metadata fields left NULL (0) take the session options' values. */
struct ing_client_crash {
    const uint8_t *dump;  /* raw, zstd or gzip */
    size_t dump_len;
    const char *name;     /* shown in progress events */
    const char *host_id, *product, *version, *os, *os_version, *channel, *build_id;
    int64_t crash_time_unix_ms;
    const struct ing_kv *annotations;
    size_t annotation_count;
};

/* *out owned by the caller; free with ing_client_close(). */
enum cm_code ing_client_open(const struct ing_client_opts *o, struct ing_client **out,
                             struct cm_err *err);
/* Sends one crash (hint first unless o->no_hint); crash_id (37 bytes) gets the crash id when
 * known, reason (300 bytes) the reason token or error. The outcome is added to the totals. */
enum ing_client_status ing_client_send(struct ing_client *c, const struct ing_client_crash *cr,
                                       char crash_id[37], char reason[300]);
void ing_client_totals_get(const struct ing_client *c, struct ing_client_totals *t);
void ing_client_close(struct ing_client *c);

#endif
