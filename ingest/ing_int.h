/* ing_int.h -- what the files of ingest/ share; no other module includes it. */
#ifndef TRIAGE_ING_INT_H
#define TRIAGE_ING_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cm_arena.h"
#include "common/cm_buf.h"
#include "common/cm_err.h"
#include "ingest/ing.h"

/* ---- reasons: every answer that is not an acceptance has a stable token ----
 * The token is what clients see (`Discarded=<token>`, CrashAck.reason) and the only label of the
 * rejected/discarded metrics, so user strings never become labels. Append only. */
#define ING_REASONS(X)                                                                             \
    X(NONE, 200, "ok")                                                                             \
    X(NOT_FOUND, 404, "not_found")                                                                 \
    X(BAD_METHOD, 405, "method_not_allowed")                                                       \
    X(NO_CONTENT_LENGTH, 411, "no_content_length")                                                 \
    X(BAD_CONTENT_LENGTH, 400, "bad_content_length")                                               \
    X(TE_AND_CL, 400, "transfer_encoding_with_content_length")                                     \
    X(TOO_LARGE, 413, "too_large")                                                                 \
    X(BAD_ENCODING, 415, "unsupported_content_encoding")                                           \
    X(NO_CONTENT_TYPE, 400, "no_content_type")                                                     \
    X(WRONG_CONTENT_TYPE, 415, "wrong_content_type")                                               \
    X(NO_BOUNDARY, 400, "no_boundary")                                                             \
    X(BAD_STRUCTURE, 400, "invalid_payload_structure")                                             \
    X(PREAMBLE_TOO_LARGE, 400, "preamble_too_large")                                               \
    X(TOO_MANY_PARTS, 400, "too_many_parts")                                                       \
    X(PART_HEADERS_TOO_LARGE, 400, "part_headers_too_large")                                       \
    X(FIELD_NAME_TOO_LONG, 400, "field_name_too_long")                                             \
    X(BAD_FIELD_NAME, 400, "bad_field_name")                                                       \
    X(MISSING_MINIDUMP, 400, "missing_minidump")                                                   \
    X(DUPLICATE_MINIDUMP, 400, "duplicate_minidump")                                               \
    X(NESTED_MULTIPART, 400, "nested_multipart")                                                   \
    X(TOO_MANY_ANNOTATIONS, 400, "too_many_annotations")                                           \
    X(ANNOTATION_TOO_LARGE, 400, "annotation_too_large")                                           \
    X(BAD_JSON, 400, "bad_json")                                                                   \
    X(BAD_GZIP, 400, "bad_gzip")                                                                   \
    X(EMPTY, 400, "empty")                                                                         \
    X(BAD_MAGIC, 400, "bad_magic")                                                                 \
    X(ZSTD_BAD_MAGIC, 400, "zstd_bad_magic")                                                       \
    X(ZSTD_TRUNCATED, 400, "zstd_truncated")                                                       \
    X(ZSTD_CORRUPT, 400, "zstd_corrupt")                                                           \
    X(ZSTD_WINDOW, 400, "zstd_window_too_large")                                                   \
    X(ZSTD_TRAILING, 400, "zstd_trailing_data")                                                    \
    X(ZSTD_DICTIONARY, 400, "zstd_dictionary")                                                     \
    X(BAD_ENVELOPE, 400, "bad_envelope")                                                           \
    X(ENVELOPE_LIMIT, 400, "envelope_over_limit")                                                  \
    X(MISSING_DUMP, 400, "missing_field:dump")                                                     \
    X(STRING_TOO_LONG, 400, "string_too_long")                                                     \
    X(SLOW_BODY, 408, "slow_body")                                                                 \
    X(SPOOL_FULL, 503, "spool_full")                                                               \
    X(QUEUE_FULL, 503, "queue_full")                                                               \
    X(DISK_LOW, 503, "disk_low")                                                                   \
    X(SHUTTING_DOWN, 503, "shutting_down")                                                         \
    X(STORAGE_FULL, 507, "storage_full")                                                           \
    X(STORAGE_ERROR, 503, "storage_error")                                                         \
    X(INTERNAL, 500, "internal_error")

enum ing_reason {
#define X(name, status, token) ING_R_##name,
    ING_REASONS(X)
#undef X
        ING_R__COUNT
};
const char *ing__reason_token(enum ing_reason r);
unsigned ing__reason_status(enum ing_reason r);

/* ---- metrics (ing_metrics.c): atomic counters rendered as Prometheus text ---- */

enum ing_endpoint { ING_EP_NATIVE, ING_EP_SUBMIT, ING_EP_HEALTHZ, ING_EP_METRICS, ING_EP_OTHER,
                    ING_EP_HINTS, ING_EP__COUNT };

/* Hint decisions (ing_hint.c): the reason tokens of HintReply, the only labels of their metric. */
#define ING_HINT_REASONS(X)                                                                        \
    X(COUNTED, "counted")                                                                          \
    X(FIRST_K, "first_k")                                                                          \
    X(SAMPLED, "sampled")                                                                          \
    X(REQUESTED, "requested")                                                                      \
    X(UNKNOWN_KEY, "unknown_fault_key")                                                            \
    X(AMBIGUOUS_KEY, "ambiguous_fault_key")                                                        \
    X(NO_KEY, "no_idempotency_key")                                                                \
    X(DUPLICATE, "duplicate")                                                                      \
    X(DISABLED, "hints_disabled")                                                                  \
    X(DEGRADED, "service_degraded")                                                                \
    X(OTHER, "other")
enum ing_hint_reason {
#define X(name, token) ING_HR_##name,
    ING_HINT_REASONS(X)
#undef X
        ING_HR__COUNT
};
const char *ing__endpoint_name(enum ing_endpoint ep);

#define ING_STATUS_SLOTS 16
#define ING_LATENCY_BUCKETS 14

struct ing_metrics {
    _Atomic uint64_t requests[ING_EP__COUNT][ING_STATUS_SLOTS];
    _Atomic uint64_t bytes_in[ING_EP__COUNT];
    _Atomic uint64_t rejected[ING_R__COUNT];
    _Atomic uint64_t discarded[ING_R__COUNT];
    _Atomic uint64_t accepted, duplicates, deferred, drained, drain_failures;
    _Atomic uint64_t ack_buckets[ING_LATENCY_BUCKETS + 1]; /* last one: +Inf */
    _Atomic uint64_t ack_sum_us, ack_count;
    _Atomic uint64_t spool_depth; /* pending crashes (sidecars) */
    _Atomic uint64_t queue_depth; /* last value the recorder gave */
    _Atomic uint64_t db_up;       /* 1 when the last recorder call succeeded */
    _Atomic uint64_t inflight;    /* requests between headers and completion */
    _Atomic uint64_t hint_decisions[ING_HR__COUNT][2]; /* [reason][dump wanted] */
};
/* Appends the hint metrics (ing_hint.c) to out. */
enum cm_code ing__hint_metrics_render(struct ing_metrics *m, struct cm_buf *out,
                                      struct cm_err *err);
void ing__metrics_request(struct ing_metrics *m, enum ing_endpoint ep, unsigned status);
void ing__metrics_ack(struct ing_metrics *m, uint64_t micros);
/* Appends the Prometheus text exposition of m to out. */
enum cm_code ing__metrics_render(struct ing_metrics *m, struct cm_buf *out, struct cm_err *err);

/* ---- streaming decode of an uploaded dump (ing_decode.c) ---- */

enum ing_comp { ING_COMP_SNIFF = 0, ING_COMP_NONE, ING_COMP_ZSTD, ING_COMP_GZIP };

/* Per-thread codec state, reused across uploads. */
struct ing_codec;
struct ing_codec *ing__codec_new(void);
void ing__codec_free(struct ing_codec *k);

struct ing_dump_info {
    enum ing_comp comp;   /* as found (never SNIFF) */
    uint64_t bytes;       /* decompressed size */
    char sha256[65];      /* lower-case hex of the decompressed bytes */
    int kind;             /* enum ana_kind */
};

/* Pass 1: decompresses in (streaming, capped at max_dump_bytes, the frame's declared size never
 * trusted), hashes the bytes and checks the dump magic; writes nothing. */
enum ing_reason ing__dump_inspect(struct ing_codec *k, const uint8_t *in, size_t n,
                                  enum ing_comp comp, const struct ing_conf *conf,
                                  struct ing_dump_info *out, struct cm_err *err);
/* Pass 2: writes the spool form of a dump inspected by pass 1 to fd: zstd input as it came,
 * anything else compressed at conf->zstd_level with a content checksum. */
enum cm_code ing__dump_write(struct ing_codec *k, const uint8_t *in, size_t n,
                             const struct ing_dump_info *info, const struct ing_conf *conf, int fd,
                             uint64_t *written, int *sys_errno, struct cm_err *err);
/* Inflates a gzip request body (Content-Encoding: gzip) into out, capped at out's max. */
enum ing_reason ing__gunzip_body(const uint8_t *in, size_t n, struct cm_buf *out,
                                 struct cm_err *err);

/* ---- multipart/form-data (ing_multipart.c), RFC 7578 / RFC 2046 section 5.1 ---- */

struct ing_mp_limits {
    size_t max_parts, max_part_bytes, max_part_header_bytes, max_preamble_bytes, max_name_bytes;
};

/* One part. name/filename/content_type are NUL-terminated copies in the arena (NULL if absent);
 * data is a view into the body. */
struct ing_part {
    const char *name, *filename, *content_type;
    const uint8_t *data;
    size_t len;
};

/* The boundary parameter of a multipart Content-Type (quoted or not), copied into the arena.
 * NO_CONTENT_TYPE, WRONG_CONTENT_TYPE or NO_BOUNDARY when it is not usable. */
enum ing_reason ing__multipart_boundary(const char *content_type, struct cm_arena *a,
                                        const char **boundary);
/* Splits body into parts. *parts is allocated from a. */
enum ing_reason ing__multipart_parse(const uint8_t *body, size_t len, const char *boundary,
                                     const struct ing_mp_limits *lim, struct cm_arena *a,
                                     struct ing_part **parts, size_t *count, struct cm_err *err);

/* ---- the spool (ing_spool.c) ----
 * <dir>/dumps/<sha256>.zst  one file per distinct dump (one flat folder, so concurrent uploads
 *                           share its fsync)
 * <dir>/pending/<crash-id>.json  sidecar of a crash acknowledged but not yet recorded
 * Temp files start with ".tmp." in the folder of their final name and are removed at start. */

struct ing_spool;

enum cm_code ing__spool_open(const char *dir, bool batch, struct ing_spool **out,
                             struct cm_err *err);
void ing__spool_close(struct ing_spool *sp);
/* Makes the dump with this SHA-256 durable: if the spool has it, only waits until its name is
 * durable; else creates a temp file, lets fill() write it, fsyncs, renames and fsyncs the folder.
 * A temp file is removed on every failure. *reason is STORAGE_FULL (ENOSPC) or STORAGE_ERROR on
 * failure. rel_path gets "dumps/<sha>.zst"; *size_bytes the existing file's size (0 when it was
 * written now: fill() knows that size). */
enum cm_code ing__spool_put_dump(struct ing_spool *sp, const char *sha256,
                                 enum cm_code (*fill)(void *ctx, int fd, int *sys_errno,
                                                      struct cm_err *err),
                                 void *ctx, char rel_path[96], bool *existed,
                                 uint64_t *size_bytes, enum ing_reason *reason,
                                 struct cm_err *err);
/* Writes pending/<crash_id>.json durably. */
enum cm_code ing__spool_put_pending(struct ing_spool *sp, const char *crash_id, const void *p,
                                    size_t n, enum ing_reason *reason, struct cm_err *err);
/* Removes a sidecar once recorded (no fsync: recording again is idempotent). */
void ing__spool_drop_pending(struct ing_spool *sp, const char *crash_id);
/* Moves a sidecar that cannot be read to pending/bad/. */
void ing__spool_quarantine_pending(struct ing_spool *sp, const char *crash_id);
/* Reads a sidecar into a NUL-terminated buffer (capped); free with cm_free. */
enum cm_code ing__spool_read_pending(struct ing_spool *sp, const char *crash_id, char **out,
                                     size_t *len, struct cm_err *err);
/* Calls fn for each sidecar's crash id. */
enum cm_code ing__spool_list_pending(struct ing_spool *sp, void (*fn)(void *ctx, const char *id),
                                     void *ctx, struct cm_err *err);
/* Free bytes on the spool's file system (UINT64_MAX if unknown). */
uint64_t ing__spool_free_bytes(struct ing_spool *sp);
/* The spool's absolute path (resolved at open). */
const char *ing__spool_dir(const struct ing_spool *sp);

/* ---- crash records: sidecar JSON and the pending index (ing_drain.c) ---- */

/* Serialises c as the sidecar JSON. */
enum cm_code ing__crash_to_json(const struct ing_crash *c, struct cm_buf *out, struct cm_err *err);
/* Parses a sidecar; strings are copied into a. */
enum cm_code ing__crash_from_json(const char *text, size_t len, struct cm_arena *a,
                                  struct ing_crash *c, struct cm_err *err);

struct ing_pending;
struct ing_pending *ing__pending_new(void);
void ing__pending_free(struct ing_pending *p);
/* Looks a crash up by (project, idempotency key) or (project, host, sha256). Found: copies its
 * id. A match still being written makes the caller wait until it is durable or dropped. */
bool ing__pending_find(struct ing_pending *p, const struct ing_crash *c, char id_out[37]);
/* Reserves c's keys with c->crash_id before its sidecar is written; false if a concurrent
 * upload reserved them first (its id in id_out: wait with ing__pending_find). */
bool ing__pending_reserve(struct ing_pending *p, const struct ing_crash *c, char id_out[37]);
/* The sidecar is durable (ok) or could not be written (!ok: the reservation goes). */
void ing__pending_settle(struct ing_pending *p, const char *crash_id, bool ok);
/* Recorded: forget it. */
void ing__pending_remove(struct ing_pending *p, const char *crash_id);
uint64_t ing__pending_count(struct ing_pending *p);

/* ---- request processing ---- */

struct ing_server;

/* A worker's private state. */
struct ing_worker {
    struct ing_server *srv;
    struct ing_codec *codec;
};

/* An upload ready to store, built by the route's parser. Strings live in the request arena. */
struct ing_upload {
    struct ing_crash crash;
    const uint8_t *dump;
    size_t dump_len;
    enum ing_comp comp;
    bool has_declared; /* native: dump_format said something */
    int declared_kind; /* enum ana_kind the client claimed */
    /* What the dump view points into, released by whoever built the upload. */
    struct cm_buf inflated;           /* a gzip request body, inflated */
    void (*release)(void *arg);       /* e.g. proto_upload_free */
    void *release_arg;
};
/* Releases what an upload owns (not the upload itself). */
void ing__upload_release(struct ing_upload *u);

struct ing_outcome {
    enum ing_reason reason; /* NONE: accepted or duplicate */
    bool duplicate;
    bool deferred;          /* acknowledged from the spool; the recorder was not reached */
    char crash_id[37];
};

/* Stores and records an upload; fills *out. Never fails silently: a reason says why not. */
void ing__accept(struct ing_worker *w, struct ing_upload *u, struct ing_outcome *out,
                 struct cm_err *err);
/* A new random (version 4) UUID. */
void ing__uuid(char out[37]);
/* UTF-8 as PostgreSQL text accepts it: invalid sequences and NUL become U+FFFD. Into the arena. */
const char *ing__clean_utf8(struct cm_arena *a, const char *p, size_t n);

/* A response built off the HTTP threads. */
struct ing_reply {
    unsigned status;
    const char *content_type;
    struct cm_buf body;
    unsigned retry_after_s; /* 0: no header */
};

/* Route parsers: turn the fully received body into an upload, or a reason. */
enum ing_reason ing__native_parse(struct ing_server *s, struct cm_arena *a, bool gzip,
                                  const uint8_t *body, size_t len, struct ing_upload *u,
                                  struct cm_err *err);
void ing__native_reply(struct ing_server *s, bool json, const struct ing_outcome *o,
                       struct ing_reply *r);

/* Request facts the multipart route needs from HTTP (query string, Content-Type...). */
struct ing_submit_in {
    const char *content_type;
    bool gzip; /* Content-Encoding: gzip */
    const char *q_prod, *q_ver, *q_guid;
};
enum ing_reason ing__submit_parse(struct ing_server *s, struct cm_arena *a,
                                  const struct ing_submit_in *in, const uint8_t *body, size_t len,
                                  struct ing_upload *u, struct cm_err *err);
void ing__submit_reply(const struct ing_outcome *o, struct ing_reply *r);

/* POST /api/v1/hints (ing_hint.c): decodes a CrashHint, asks the recorder, builds the HintReply
 * (protobuf, or JSON when json) into *r. Runs on a worker thread. */
void ing__hint_handle(struct ing_server *s, struct cm_arena *a, bool gzip, bool json,
                      const uint8_t *body, size_t len, struct ing_reply *r);

/* ---- the upload client's hint (ing_client_hint.c) ---- */

struct proto_meta;
/* The CrashHint of a dump (raw, zstd or gzip, decompressed within max_dump_bytes; 0: the
 * analyzer's default) into out: its fault key computed as analyzer/ana_pipeline.c computes it,
 * with meta, the declared format (enum proto_dump_format) and the size of the envelope's dump.
 * Fails when the dump cannot be read (the caller then uploads it in full). */
enum cm_code ing__client_hint_body(const uint8_t *dump, size_t n, size_t max_dump_bytes,
                                   const struct proto_meta *meta, int fmt, uint64_t sent_bytes,
                                   struct cm_buf *out, struct cm_err *err);

/* ---- worker pool (ing_pool.c) ---- */

struct ing_pool;
typedef void (*ing_task_fn)(struct ing_worker *w, void *arg);
enum cm_code ing__pool_start(struct ing_server *srv, size_t threads, struct ing_pool **out,
                             struct cm_err *err);
/* Queues a task; false once the pool is stopping (the caller answers by itself). */
bool ing__pool_submit(struct ing_pool *p, ing_task_fn fn, void *arg);
/* Refuses new tasks, runs every queued one, joins the threads. p stays valid for submit. */
void ing__pool_stop(struct ing_pool *p);
void ing__pool_free(struct ing_pool *p);

/* ---- drainer (ing_drain.c) ---- */

struct ing_drainer;
enum cm_code ing__drainer_start(struct ing_server *srv, struct ing_drainer **out,
                                struct cm_err *err);
void ing__drainer_kick(struct ing_drainer *d);
void ing__drainer_stop(struct ing_drainer *d);
/* Reads the spool's sidecars into the pending index (at start). */
enum cm_code ing__drainer_recover(struct ing_server *srv, struct cm_err *err);

/* ---- the server (ing_http.c) ---- */

struct ing_server {
    struct ing_conf conf;
    struct ing_recorder rec;
    bool has_rec;
    struct ing_spool *spool;
    struct ing_pending *pending;
    struct ing_pool *pool;
    struct ing_drainer *drainer;
    struct ing_metrics metrics;
    struct MHD_Daemon *mhd;
    uint16_t port;
    atomic_bool stopping;
    atomic_bool db_up;      /* false: skip the recorder, go straight to a sidecar */
    _Atomic uint64_t free_bytes; /* spool file system, refreshed by the drainer */
};

#endif
