/* db.h -- the PostgreSQL access layer (libpq): connections, migrations, crash rows, the job
 * queue, batched analysis results, queries for responders, reprocessing, and the embedded
 * cluster that `triagectl up` and the tests start when no database is configured.
 * The schema is db/migrations/NNNN_*.sql, described in docs/database.md.
 *
 * Rules every call follows:
 * - SQL text is constant; every value travels as a parameter (PQexecPrepared), one statement
 *   per call. Batches travel as array parameters (unnest), so a batch costs a fixed number of
 *   round trips however many crashes, frames or modules it holds.
 * - Every call is bounded: connect_timeout, a server statement_timeout, and a client-side poll
 *   deadline (statement timeout + grace) that gives up on a server that hangs.
 * - A lost connection makes the call fail with CM_E_BUSY ("temporarily unavailable"); the next
 *   call reconnects by itself (prepared statements are re-prepared). A call that is a single
 *   statement and finds the connection already broken (the server restarted while we were
 *   idle) reconnects and retries once before giving up. CM_E_BUSY also covers
 *   serialization failures, deadlocks and server shutdown: the caller may retry the same call,
 *   and every write here is idempotent under retry. Other database errors are CM_E_DB.
 * - A struct db_conn is used by one thread at a time (one connection per worker thread).
 * - Every table and key carries a project; NULL or "" for a project means DB_DEFAULT_PROJECT.
 * - Times cross the API as int64 milliseconds since the Unix epoch (UTC); 0 means unknown/now
 *   where a field says so. The server's clock (now()) decides received times and leases.
 *
 * Strings handed in must be UTF-8; invalid sequences are replaced by U+FFFD before they reach
 * PostgreSQL (a UTF8 database rejects them), and NUL cannot be stored. Valid UTF-8 is stored
 * byte for byte. */
#ifndef TRIAGE_DB_H
#define TRIAGE_DB_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

#include "common/cm_err.h"

#define DB_DEFAULT_PROJECT "default"
#define DB_UUID_LEN 36    /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
#define DB_SHA256_HEX 64  /* lower-case hex */
#define DB_PROJECT_MAX 63 /* bytes in a project name */

/* ---- connections (db_conn.c) ---- */

struct db_conn;

struct db_options {
    int connect_timeout_s;      /* libpq connect_timeout; default 10 */
    int statement_timeout_ms;   /* server statement_timeout; default 30000 */
    int lock_timeout_ms;        /* server lock_timeout; default 10000 */
    int client_grace_ms;        /* client poll deadline = statement timeout + this; default 5000 */
    const char *application_name; /* shown in pg_stat_activity; default "triage" */
    int64_t event_clamp_ms;     /* crash times are clamped into [received - this, received] for
                                 * rates (crashes.event_at); default 7 days */
};

/* Fills *o with the defaults above. */
void db_options_default(struct db_options *o);

/* Connects to conninfo (a libpq URL or key=value string; NULL or "" means the libpq defaults
 * and PG* environment variables). Keepalives are turned on for TCP. opt may be NULL. *out is
 * owned by the caller; free with db_close(). Fails with CM_E_BUSY when the server cannot be
 * reached (retry later), CM_E_DB for other failures. */
enum cm_code db_open(const char *conninfo, const struct db_options *opt, struct db_conn **out,
                     struct cm_err *err);
void db_close(struct db_conn *db);
/* A round trip (SELECT 1); reconnects first if the connection was lost. */
enum cm_code db_ping(struct db_conn *db, struct cm_err *err);
/* Drops the current connection now; the next call reconnects. */
void db_disconnect(struct db_conn *db);
/* Number of times the connection has been re-established since db_open (for tests/metrics). */
unsigned db_reconnect_count(const struct db_conn *db);
/* Server process id of the current session, 0 when not connected (for fault tests). */
int db_backend_pid(const struct db_conn *db);

/* A new random (version 4) UUID, lower case, NUL-terminated; from getrandom(2). Crash ids are
 * chosen by ingest before PostgreSQL is reached, so an upload can be acknowledged while the
 * database is down. */
enum cm_code db_uuid_v4(char out[DB_UUID_LEN + 1], struct cm_err *err);

/* ---- migrations and partitions (db_migrate.c) ---- */

struct db_migrate_report {
    int applied;        /* migrations applied by this call */
    int schema_version; /* highest version applied in the database after the call */
    int known_version;  /* highest version embedded in this binary */
};

/* Applies the embedded migrations that the database lacks, in order, each in its own
 * transaction, under an advisory lock so concurrent starts apply each one exactly once. Fails
 * (CM_E_CORRUPT) when an applied migration's checksum differs from the embedded one. A database
 * newer than the binary is fine (schema_version > known_version). Then creates the crash
 * partitions for the coming days (db_partitions_ensure with 7 days). rep may be NULL. */
enum cm_code db_migrate(struct db_conn *db, struct db_migrate_report *rep, struct cm_err *err);

/* Creates the daily partitions of the partitioned tables from yesterday to days_ahead days
 * ahead (server time, UTC days); safe to call concurrently and often. Long-running daemons
 * should call it periodically (hourly). Rows outside every daily partition land in a default
 * partition, never fail. */
enum cm_code db_partitions_ensure(struct db_conn *db, int days_ahead, struct cm_err *err);

/* ---- crashes (db_crash.c) ---- */

enum db_crash_status {
    DB_CRASH_RECEIVED = 0, /* stored, waiting for analysis */
    DB_CRASH_ANALYZING,    /* a worker holds its job */
    DB_CRASH_DONE,         /* analyzed; counted in its bucket */
    DB_CRASH_FAILED,       /* the dump cannot be read (deterministic); failure_reason says why */
    DB_CRASH_DEAD,         /* analysis failed too often for other reasons; see the job's error */
};
/* "received", "analyzing", "done", "failed", "dead" (the values of crashes.status). */
const char *db_crash_status_name(enum db_crash_status s);

struct db_kv {
    const char *key;
    const char *value;
};

/* One durable upload, as ingest (or its drainer) records it. */
struct db_crash_new {
    const char *project;         /* NULL: DB_DEFAULT_PROJECT */
    const char *crash_id;        /* required: the UUID ingest chose and acknowledged */
    const char *idempotency_key; /* NULL or "": none (dedupe by host + sha256 only) */
    const char *host_id;         /* NULL or "": unknown (then never deduped by content) */
    const char *product, *version, *channel, *build_id, *os, *os_version, *cpu_arch; /* or NULL */
    int64_t crash_time_ms;       /* client clock; 0: unknown */
    int64_t received_at_ms;      /* when ingest made it durable; 0: the server's now() */
    const struct db_kv *annotations; /* stored as a jsonb object; a repeated key keeps the last */
    size_t annotation_count;
    const char *dump_sha256;     /* required: 64 hex digits, SHA-256 of the decompressed dump */
    uint64_t dump_size_bytes;    /* decompressed size */
    const char *spool_path;      /* required: where the zstd-compressed dump lives */
    const char *dump_format;     /* "minidump", "elf_core", "windows_kernel", "unknown" */
    const char *source;          /* "upload" (protobuf), "submit" (multipart); NULL: "upload" */
    int max_attempts;            /* job attempts before dead; 0: 3 */
};

struct db_crash_ref {
    char crash_id[DB_UUID_LEN + 1]; /* the stored crash's id: c->crash_id, or the first one's */
    bool duplicate;                 /* true: the crash was already recorded; nothing counted */
    int64_t received_at_ms;         /* the stored crash's received time */
};

/* Records a crash and its analysis job in one transaction. Idempotent: a crash with the same
 * (project, idempotency key), or the same (project, host id, dump sha256), is the same crash;
 * then out->duplicate is set, out->crash_id is the id stored first, and nothing is added.
 * Concurrent identical inserts yield one row. Safe to retry after CM_E_BUSY (a COMMIT whose
 * reply was lost simply turns into a duplicate on retry). */
enum cm_code db_crash_insert(struct db_conn *db, const struct db_crash_new *c,
                             struct db_crash_ref *out, struct cm_err *err);

/* ---- the job queue (db_jobs.c) ---- */

/* A claimed job: what a worker needs to analyze the crash and report back. The claim token is
 * (project, job_id, attempt): every later call for the job names it, and is ignored (the job is
 * "lost") once the lease expired and the job went to another worker. */
struct db_job {
    char project[DB_PROJECT_MAX + 1];
    int64_t job_id;
    int32_t attempt;      /* attempts so far, this one included (bumped at claim) */
    int32_t max_attempts;
    char crash_id[DB_UUID_LEN + 1];
    int64_t received_at_ms;
    int64_t crash_time_ms; /* 0: unknown */
    int64_t lease_expires_at_ms; /* server clock */
    char dump_sha256[DB_SHA256_HEX + 1];
    char *spool_path;  /* owned by the job array */
    char *dump_format; /* owned by the job array */
    char *host_id;     /* owned by the job array; "" if unknown */
};

/* Claims up to max_jobs ready jobs whose run_after has come, oldest first, with
 * FOR UPDATE SKIP LOCKED, so concurrent workers get disjoint jobs. Each claimed job's attempts
 * is bumped, its lease set to the server's now() + lease_ms, its crash marked analyzing.
 * worker names the claimer (host:pid:thread) in the row. *jobs is owned by the caller (may be
 * NULL when *count is 0); free with db_jobs_free(). */
enum cm_code db_jobs_claim(struct db_conn *db, const char *worker, size_t max_jobs,
                           int64_t lease_ms, struct db_job **jobs, size_t *count,
                           struct cm_err *err);
void db_jobs_free(struct db_job *jobs, size_t count);

/* Extends the leases of jobs still held (same attempt, still running) to now() + lease_ms.
 * lost (may be NULL) gets, per job, whether it is no longer ours. */
enum cm_code db_jobs_heartbeat(struct db_conn *db, const struct db_job *jobs, size_t count,
                               int64_t lease_ms, bool *lost, struct cm_err *err);

/* Marks a held job done without writing a result (the result batch does this itself): the job
 * row is deleted (the jobs table holds only ready, running and dead jobs) and the crash marked
 * done. *lost (may be NULL) is set when the job was no longer ours and nothing changed. */
enum cm_code db_job_complete(struct db_conn *db, const struct db_job *job, bool *lost,
                             struct cm_err *err);

enum db_fail_mode {
    DB_FAIL_RETRY,     /* infrastructure trouble: ready again after a backoff of
                        * exp(min(attempt, 10)) seconds, or dead once attempts reach max */
    DB_FAIL_PERMANENT, /* the dump is malformed: crash failed with the reason, job removed, no
                        * retry */
    DB_FAIL_DEAD,      /* give up now: dead-letter the job and the crash */
};
/* Records a failure of a held job. error is kept as the job's last_error (and, for PERMANENT,
 * the crash's failure_reason, conventionally "CM_CODE: message"). */
enum cm_code db_job_fail(struct db_conn *db, const struct db_job *job, enum db_fail_mode mode,
                         const char *error, bool *lost, struct cm_err *err);

/* Hands held jobs back without counting the attempt (graceful shutdown): ready at once,
 * attempts decremented. */
enum cm_code db_jobs_release(struct db_conn *db, const struct db_job *jobs, size_t count,
                             struct cm_err *err);

/* Sweeps running jobs whose lease expired (server clock): back to ready with last_error
 * "lease expired", or dead when attempts reached max_attempts (their crash dead too). Any
 * worker may call it often; it is cheap on the partial index of running jobs. Counts may be
 * NULL. */
enum cm_code db_jobs_requeue_expired(struct db_conn *db, size_t *requeued, size_t *dead,
                                     struct cm_err *err);

/* ---- analysis results (db_result.c) ---- */

struct db_module {
    const char *name;       /* file name without directories ("ntdll.dll") */
    const char *version;    /* or NULL */
    const char *debug_file; /* or NULL */
    const char *debug_id;   /* Breakpad debug id, or NULL */
    const char *code_id;    /* PE code id or ELF build id hex, or NULL */
    uint64_t base, size;
    bool is_main;
};

/* The outcome of analyzing one claimed job. */
struct db_result {
    const struct db_job *job; /* the claim this result answers */
    bool failed;              /* true: the dump could not be read (crash failed, no retry) */
    const char *failure_reason; /* when failed: "CORRUPT: minidump: ..." */
    const char *signature;    /* "EXCEPTION_ACCESS_VIOLATION_READ | foo.dll!bar | ..." */
    const char *bucket_key;   /* hash(crash kind + signature), hex; required unless failed */
    const char *crash_kind;   /* "EXCEPTION_ACCESS_VIOLATION_READ", "SIGSEGV", ... or NULL */
    const char *fault_module; /* or NULL */
    const char *fault_module_version; /* version or build id; or NULL */
    const char *fault_point;  /* "foo.dll+0x1234" or "foo.dll!bar" */
    const char *stack_hash;   /* hash of the crashing thread's top frames, or NULL */
    const char *fault_key;    /* the symbol-free fault key (issue 5: hints), or NULL */
    const char *processed_json; /* the processed crash as JSON (stack etc.), or NULL */
    const char *rules_version;  /* signature rules version, or NULL */
    const struct db_module *modules;
    size_t module_count;
};

struct db_result_report {
    size_t written; /* results stored */
    size_t lost;    /* results dropped because their lease had gone to another worker */
};

/* Writes a batch in one transaction: for every job still held, the crash's result and status,
 * the bucket upsert (counts, first/last seen, distinct hosts), the per-minute rollups per bucket
 * and per fault module + version, the crash's modules; and marks the jobs done (or failed).
 * A fixed number of statements whatever the batch size. Jobs no longer held are skipped and
 * counted in rep->lost, so a result is never counted twice. On error nothing is written.
 * rep may be NULL. */
enum cm_code db_result_write(struct db_conn *db, const struct db_result *results, size_t count,
                             struct db_result_report *rep, struct cm_err *err);

/* ---- queries (db_query.c) ---- */

struct db_bucket {
    char *bucket_key;
    char *signature;
    char *crash_kind;
    char *fault_module;
    char *fault_module_version;
    int64_t crash_count;  /* all time */
    int64_t host_count;   /* distinct hosts, all time */
    int64_t window_count; /* crashes in the asked window (rollups); = crash_count for one bucket */
    int64_t first_seen_ms, last_seen_ms;
};
void db_buckets_free(struct db_bucket *b, size_t count);

/* Buckets with crashes since since_ms (by event minute, from the rollups), most
 * crashes in the window first, at most top of them (0: 100). *out owned by the caller. */
enum cm_code db_buckets_top(struct db_conn *db, const char *project, int64_t since_ms, size_t top,
                            struct db_bucket **out, size_t *count, struct cm_err *err);
/* One bucket by key; CM_E_NOTFOUND if absent. *out owned by the caller; free with
 * db_buckets_free(out, 1). */
enum cm_code db_bucket_get(struct db_conn *db, const char *project, const char *bucket_key,
                           struct db_bucket **out, struct cm_err *err);

struct db_crash_info {
    char *crash_id, *status, *idempotency_key, *host_id, *product, *version, *channel, *os,
        *os_version, *dump_sha256, *spool_path, *dump_format, *failure_reason, *signature,
        *bucket_key, *fault_module, *fault_module_version, *fault_point, *stack_hash,
        *annotations_json, *processed_json; /* NULL when the column is NULL */
    int64_t crash_time_ms, received_at_ms, analyzed_at_ms; /* 0 when unknown */
    int32_t attempts;
    char *last_error; /* the job's, or NULL */
};
/* CM_E_NOTFOUND if absent. *out owned by the caller; free with db_crash_info_free(). */
enum cm_code db_crash_get(struct db_conn *db, const char *project, const char *crash_id,
                          struct db_crash_info **out, struct cm_err *err);
void db_crash_info_free(struct db_crash_info *c);

struct db_queue_depth {
    int64_t ready;        /* ready jobs, due or not */
    int64_t due;          /* ready and due now */
    int64_t running;
    int64_t dead;         /* the dead-letter jobs (finished jobs are removed from the queue) */
    int64_t oldest_due_age_ms; /* age of the oldest due job; 0 when none */
};
/* Across all projects (the queue is shared). */
enum cm_code db_queue_depth(struct db_conn *db, struct db_queue_depth *out, struct cm_err *err);
/* Cheap check for load shedding: ready jobs (the backlog), counted only up to limit. */
enum cm_code db_queue_backlog(struct db_conn *db, int64_t limit, int64_t *out, struct cm_err *err);

/* Crashes by status in a project (for tests and `triagectl`). */
struct db_status_counts {
    int64_t received, analyzing, done, failed, dead;
};
enum cm_code db_crash_status_counts(struct db_conn *db, const char *project,
                                    struct db_status_counts *out, struct cm_err *err);

/* ---- reprocessing (db_reprocess.c) ---- */

struct db_reprocess_filter {
    const char *project;    /* NULL: DB_DEFAULT_PROJECT */
    const char *bucket_key; /* crashes now in this bucket */
    int64_t since_ms;       /* crashes received at or after this time (0: no bound) */
    bool all;               /* every crash of the project (bucket_key and since_ms unset) */
};
/* Re-queues analysis of the matching crashes (done, failed or dead; crashes waiting or being
 * analyzed are left alone): their counts are taken out of buckets and rollups first, so the
 * new analysis counts them exactly once again; jobs return to ready with attempts 0. At least
 * one of bucket_key, since_ms, all must be given (else CM_E_USAGE). *count (may be NULL) gets
 * the number of crashes re-queued. */
enum cm_code db_reprocess(struct db_conn *db, const struct db_reprocess_filter *f, size_t *count,
                          struct cm_err *err);

/* ---- rates and incidents (db_incident_rates.c, db_incident.c, db_incident_corr.c,
 * db_incident_query.c; the model is docs/incidents.md) ----
 * Times are event times (crashes.event_at, the clamped crash time) in milliseconds; windows are
 * [from, to) and the caller aligns them to minutes. The detector passes its own clock as now_ms,
 * so every time written here is the caller's (tests drive it). */

enum db_rate_level {
    DB_RATE_BUCKET, /* one row per bucket */
    DB_RATE_MODULE, /* one row per fault module + version, across all its buckets */
};

struct db_rate_query {
    const char *project; /* NULL: DB_DEFAULT_PROJECT */
    enum db_rate_level level;
    int64_t recent_from_ms, recent_to_ms;     /* the recent window */
    int64_t baseline_from_ms, baseline_to_ms; /* the baseline window */
    /* Optional filter: only these keys, reported even with no crash in the recent window.
     * Without one, every key with a crash in the recent window is reported. */
    const char *fault_module, *fault_module_version; /* DB_RATE_MODULE; version NULL = "" */
    const char *const *bucket_keys;                  /* DB_RATE_BUCKET */
    size_t bucket_key_count;
};

struct db_rate {
    char *bucket_key;           /* DB_RATE_BUCKET; NULL at module level */
    char *fault_module;         /* the key, or the bucket's fault module (NULL if unknown) */
    char *fault_module_version; /* "" when unknown */
    int64_t recent_crashes;     /* crashes in the recent window */
    int64_t recent_hosts;       /* distinct hosts in it (HyperLogLog estimate, ~2 %) */
    int64_t baseline_crashes;   /* crashes in the baseline window */
    int64_t first_seen_ms;      /* first crash of the key ever (event time); 0 if none */
};

/* Crash counts of the recent and baseline windows per key. *out is owned by the caller; free
 * with db_rates_free(). */
enum cm_code db_rates(struct db_conn *db, const struct db_rate_query *q, struct db_rate **out,
                      size_t *count, struct cm_err *err);
void db_rates_free(struct db_rate *r, size_t count);

/* Projects with a crash counted in an event minute at or after since_ms, or with an open
 * incident. *out (an array of strings) is owned by the caller; free with
 * db_incident_projects_free(). */
enum cm_code db_incident_projects(struct db_conn *db, int64_t since_ms, char ***out,
                                  size_t *count, struct cm_err *err);
void db_incident_projects_free(char **projects, size_t count);

/* What an incident's spikes share: a fault module + version, or one bucket when the bucket has
 * no known fault module. */
struct db_incident_key {
    const char *project;              /* NULL: DB_DEFAULT_PROJECT */
    const char *fault_module;         /* NULL: a bucket without a known fault module */
    const char *fault_module_version; /* NULL or "": unknown */
    const char *bucket_key;           /* required when fault_module is NULL */
};

struct db_incident_spike {
    int64_t now_ms;           /* the detector's clock */
    int64_t onset_ms;         /* start of the window that shows the spike (kept when opening) */
    bool module_level;        /* the fault module + version spiked across its buckets */
    double baseline_per_hour; /* the rate it was measured against (kept when opening) */
    double score;             /* -log10 p of the spike (kept when opening) */
    int64_t first_seen_ms;    /* first crash of the key ever; 0 unknown */
};

/* Opens an incident for the key unless one is open, and marks it spiking at now_ms
 * (last_spike_at). module_level turns an incident of single buckets into a module incident
 * (its crashes become every crash of the module + version). *id gets the incident; *opened
 * (may be NULL) whether this call opened it. Concurrent detectors open one incident per key. */
enum cm_code db_incident_spike(struct db_conn *db, const struct db_incident_key *k,
                               const struct db_incident_spike *s, int64_t *id, bool *opened,
                               struct cm_err *err);

struct db_incident_refresh {
    int64_t now_ms;     /* the detector's clock (updated_at, spiked_at) */
    int64_t end_ms;     /* counts and the series run to here, exclusive (minute-aligned) */
    int64_t context_ms; /* the series starts this long before the onset */
    size_t max_points;  /* at most this many minutes in the series (the latest); 0: 1440 */
    const char *const *spiking_buckets; /* buckets that spiked on their own in this pass */
    size_t spiking_count;
};

/* Recomputes, in one transaction, an incident's crashes and distinct hosts since its onset
 * (from the rollups), its per-minute series and peak, and its buckets with their crashes and
 * exact distinct hosts (from the crash rows). A module incident groups every bucket with a
 * crash of its fault module + version since the onset; a buckets incident groups the buckets
 * that spiked. CM_E_NOTFOUND when there is no such incident. */
enum cm_code db_incident_refresh(struct db_conn *db, const char *project, int64_t id,
                                 const struct db_incident_refresh *r, struct cm_err *err);

/* Closes an open incident at now_ms (rates are back to baseline). *closed (may be NULL) is
 * false when it was not open. */
enum cm_code db_incident_close(struct db_conn *db, const char *project, int64_t id,
                               int64_t now_ms, bool *closed, struct cm_err *err);

/* Bumps the incident's revision, records what this notification tells (status, bucket count,
 * peak, top correlation: the published_* columns), and NOTIFYs channel with
 * {"project","id","event","status","revision","fault_module","fault_module_version"} in the same
 * statement, so a listener hears of it only once the change is committed. *revision (may be
 * NULL) gets the new revision. */
enum cm_code db_incident_publish(struct db_conn *db, const char *project, int64_t id,
                                 const char *channel, const char *event, int32_t *revision,
                                 struct cm_err *err);

/* Counts for correlations: attributes of the incident's crashes against the other crashes of
 * the project with event times in [from_ms, to_ms). Attributes: "module" (name@version of every
 * module loaded in the process; the build id or debug id when there is no version),
 * "os_version", "product_version", "annotation:KEY". Each side is sampled to at most `sample`
 * crashes (by crash id, effectively random); only attributes on at least min_with examined
 * incident crashes are returned, at most max_rows of them, most over-represented first. */
struct db_corr_query {
    const char *project;
    int64_t id;
    int64_t from_ms, to_ms;
    size_t sample;   /* 0: 5000 */
    size_t min_with; /* 0: 2 */
    size_t max_rows; /* 0: 500 */
};

struct db_corr_count {
    char *attribute, *value;
    int64_t incident_with, incident_n; /* examined incident crashes with it / examined */
    int64_t rest_with, rest_n;         /* the same for the other crashes */
};

struct db_corr_totals {
    int64_t incident, rest; /* crashes in the window on each side, before sampling */
};

/* *out is owned by the caller; free with db_corr_counts_free(). */
enum cm_code db_incident_corr_counts(struct db_conn *db, const struct db_corr_query *q,
                                     struct db_corr_count **out, size_t *count,
                                     struct db_corr_totals *totals, struct cm_err *err);
void db_corr_counts_free(struct db_corr_count *c, size_t count);

/* One correlation as stored with an incident (and shown by `triagectl incident`). */
struct db_corr {
    char *attribute, *value;
    double incident_pct; /* share of the incident's crashes with it, 0..100 */
    double overall_pct;  /* share of all crashes in the window with it, 0..100 */
    double rest_pct;     /* share of the other crashes */
    double score;        /* significance: -log10 p, one-sided Fisher exact test */
    int64_t incident_count; /* examined incident crashes with it */
};

/* Stores the incident's correlations (best first) and headline; analyzed_at = now_ms. */
enum cm_code db_incident_set_analysis(struct db_conn *db, const char *project, int64_t id,
                                      const struct db_corr *corr, size_t count,
                                      const char *headline, int64_t now_ms, struct cm_err *err);

struct db_incident_bucket {
    char *bucket_key, *signature;
    int64_t crashes, hosts; /* since the incident's onset; hosts exact */
    int64_t first_seen_ms, last_seen_ms;
    int64_t spiked_at_ms;   /* when it spiked on its own; 0 never */
};

struct db_incident {
    char *project;
    int64_t id;
    char *status;               /* "open", "closed" */
    char *kind;                 /* "module", "buckets" */
    char *fault_module;         /* NULL: a bucket without a known fault module */
    char *fault_module_version; /* "" unknown */
    char *bucket_key;           /* the bucket when fault_module is NULL */
    char *headline;
    int64_t opened_at_ms, onset_ms, last_spike_ms, closed_at_ms, updated_at_ms;
    int64_t first_seen_ms, analyzed_at_ms, peak_at_ms; /* 0: none */
    int64_t crashes, hosts, peak_per_minute, bucket_count;
    double baseline_per_hour, open_score;
    int64_t series_start_ms;
    int64_t *series; /* crashes per minute from series_start_ms */
    size_t series_len;
    int32_t revision;
    char *top_correlation; /* "attribute=value" of the best correlation; "" none */
    char *published_status, *published_top;
    int64_t published_buckets, published_peak;
    /* Filled by db_incident_get() only. */
    struct db_incident_bucket *buckets; /* most crashes first */
    size_t buckets_len;
    struct db_corr *corr; /* best first */
    size_t corr_count;
    char **sample_crash_ids; /* the latest crashes of the incident */
    size_t sample_count;
};

/* Incidents of a project, newest first (open_only: the open ones), at most limit (0: 100).
 * *out is owned by the caller; free with db_incidents_free(). */
enum cm_code db_incidents_list(struct db_conn *db, const char *project, bool open_only,
                               size_t limit, struct db_incident **out, size_t *count,
                               struct cm_err *err);
/* One incident with its buckets, correlations and up to `samples` crash ids. CM_E_NOTFOUND if
 * absent. *out is owned by the caller; free with db_incidents_free(*out, 1). */
enum cm_code db_incident_get(struct db_conn *db, const char *project, int64_t id, size_t samples,
                             struct db_incident **out, struct cm_err *err);
void db_incidents_free(struct db_incident *list, size_t count);

/* The incident as JSON (triage_incident_json: the object `triagectl incidents --json` lists and
 * the webhook posts), or the list as a JSON array. *out is owned by the caller (cm_free). */
enum cm_code db_incident_json(struct db_conn *db, const char *project, int64_t id, char **out,
                              struct cm_err *err);
enum cm_code db_incidents_json(struct db_conn *db, const char *project, bool open_only,
                               size_t limit, char **out, struct cm_err *err);

/* ---- progressive collection (db_hint.c; migration 0010, docs/progressive-collection.md) ----
 * Analyzed crashes teach the service which bucket each fault key lands in (fault_key_buckets,
 * kept by a trigger on crashes). A hint whose key maps to exactly one bucket is counted at once
 * as a 'done' crash with source 'hint' and no dump, in the bucket, its hosts and every rollup. */

struct db_hint {
    const char *project;         /* NULL: DB_DEFAULT_PROJECT */
    const char *crash_id;        /* required: the UUID ingest chose (kept if recorded) */
    const char *idempotency_key; /* NULL or "": the dump is asked for, nothing is recorded */
    const char *host_id, *product, *version, *channel, *build_id, *os, *os_version, *cpu_arch;
    int64_t crash_time_ms;       /* client clock; 0 unknown (clamped as db_crash_insert does) */
    const struct db_kv *annotations;
    size_t annotation_count;
    const char *fault_key;       /* required: ana_fault_key_format() text */
    const char *fault_module, *fault_module_version; /* the key's, for decision counts */
    const char *dump_format;     /* "minidump", "elf_core", "windows_kernel", "unknown" */
    int64_t first_k;             /* policy: the first K dumps per fault key per UTC day */
    int64_t sample_m;            /* then 1 in M (0: never) */
};

struct db_hint_reply {
    char crash_id[DB_UUID_LEN + 1]; /* "" when nothing was recorded */
    bool counted;   /* the crash is counted (now, or by an earlier identical hint) */
    bool want_dump; /* send the dump (CrashUpload with the same idempotency key) */
    bool duplicate; /* the idempotency key was known: the first answer again */
    char reason[32]; /* counted, first_k, sampled, requested, unknown_fault_key,
                      * ambiguous_fault_key, no_idempotency_key, duplicate */
    char bucket_key[65]; /* the bucket counted in, "" if none */
};

/* Decides and records one hint in one transaction (triage_hint). Idempotent by idempotency key:
 * a retried hint gets the first answer and counts nothing twice. Every decision is added to
 * collection_decisions by reason, product, version and fault module. A counted crash reaches
 * its bucket and rollups through db_hint_rollup(). */
enum cm_code db_hint_record(struct db_conn *db, const struct db_hint *h, struct db_hint_reply *out,
                            struct cm_err *err);

/* Adds up to limit crashes counted from hints to their buckets and rollups (they are recorded
 * at once, and added in ordered batches like analysis results, so a flood of one-row hint
 * transactions never contends for the shared bucket and rollup rows). *added gets how many;
 * call again while it equals limit. Safe to call from many processes at once. */
enum cm_code db_hint_rollup(struct db_conn *db, size_t limit, size_t *added, struct cm_err *err);

/* The dump of a crash recorded from its hint. */
struct db_hint_dump {
    const char *project, *crash_id;
    const char *dump_sha256, *spool_path, *dump_format;
    uint64_t dump_size_bytes;
    int max_attempts; /* 0: 3 */
};
/* Attaches the dump to crash_id if it is a hint crash without a dump: the hint's count is taken
 * out and the dump queued for analysis, which counts the crash once. *attached is false (and
 * nothing changes) for any other crash, so a retried upload is harmless. */
enum cm_code db_hint_attach(struct db_conn *db, const struct db_hint_dump *d, bool *attached,
                            struct cm_err *err);

/* `triagectl want BUCKET N`: the next n hints counted in the bucket ask for their dump (0
 * cancels). *found is false when the project has no such bucket. */
enum cm_code db_want(struct db_conn *db, const char *project, const char *bucket_key, int64_t n,
                     bool *found, struct cm_err *err);

/* Hint decisions summed from the UTC day of since_ms on. */
struct db_decision {
    char *reason, *product, *version, *fault_module, *fault_module_version; /* "" unknown */
    int64_t crashes;
};
/* *out owned by the caller; free with db_decisions_free(). */
enum cm_code db_decisions(struct db_conn *db, const char *project, int64_t since_ms,
                          struct db_decision **out, size_t *count, struct cm_err *err);
void db_decisions_free(struct db_decision *d, size_t count);

/* ---- the embedded cluster (db_cluster.c) ---- */

struct db_cluster;

struct db_cluster_options {
    const char *bindir;  /* PostgreSQL server programs; NULL: found (see db_cluster_bindir) */
    const char *dbname;  /* database created for the service; NULL: "triage" */
    int start_timeout_s; /* pg_ctl -t; default 60 */
    bool no_fsync;       /* tests only: initdb --no-sync and fsync=off (data not crash-safe) */
};

/* Finds the folder holding initdb, pg_ctl and postgres: $TRIAGE_PG_BINDIR, then
 * `pg_config --bindir`, then the newest /usr/lib/postgresql/N/bin, then $PATH. */
enum cm_code db_cluster_bindir(char *out, size_t out_size, struct cm_err *err);

/* Creates (initdb, if dir/postgres holds no cluster yet) and starts a private PostgreSQL cluster
 * in dir/postgres, listening only on a unix socket in a fresh private folder under /tmp
 * (listen_addresses=''), and creates the service's database. The server's log is
 * dir/postgres.log. When run as root, the server programs run as the unprivileged `postgres`
 * user, which then owns dir/postgres (dir and its parents must be searchable by it). A cluster
 * already running in dir is reused (started = false). *out is owned by the caller; free with
 * db_cluster_free() (which does not stop a cluster it did not start, see db_cluster_stop). */
enum cm_code db_cluster_start(const char *dir, const struct db_cluster_options *opt,
                              struct db_cluster **out, struct cm_err *err);
/* The libpq connection string of the service's database ("host=/tmp/... port=... dbname=...
 * user=postgres"). Valid while c lives. */
const char *db_cluster_conninfo(const struct db_cluster *c);
/* The cluster's PGDATA folder. */
const char *db_cluster_pgdata(const struct db_cluster *c);
/* Postmaster pid, 0 if not running. */
int db_cluster_pid(const struct db_cluster *c);

enum db_stop_mode { DB_STOP_SMART, DB_STOP_FAST, DB_STOP_IMMEDIATE };
/* Stops the cluster (pg_ctl stop -m smart|fast|immediate) and waits for it. c stays valid:
 * db_cluster_restart() starts it again on the same socket. */
enum cm_code db_cluster_stop(struct db_cluster *c, enum db_stop_mode mode, struct cm_err *err);
/* Stops (with mode) if running, and starts again on the same socket. */
enum cm_code db_cluster_restart(struct db_cluster *c, enum db_stop_mode mode, struct cm_err *err);
/* Frees c, and removes its socket folder when the cluster is stopped (a running cluster is left
 * running). */
void db_cluster_free(struct db_cluster *c);

/* For a running embedded cluster started by another process (`triagectl buckets --data DIR`):
 * reads dir/postgres/postmaster.pid and writes the conninfo of the service's database.
 * CM_E_NOTFOUND when no cluster runs there. */
enum cm_code db_cluster_conninfo_for(const char *dir, const char *dbname, char *out,
                                     size_t out_size, struct cm_err *err);

#endif
