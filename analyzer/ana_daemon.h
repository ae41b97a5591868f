/* ana_daemon.h -- the analyzer worker daemon (`triage-analyzer`): worker threads claim jobs from
 * the PostgreSQL queue in batches with a lease, hand each dump to a sandboxed child process that
 * runs the offline pipeline (read, unwind, symbolize, sign), and write the batch's results in one
 * transaction. Only the daemon's own files include this header; it is not part of the analyzer
 * library, which never talks to the database. */
#ifndef TRIAGE_ANA_DAEMON_H
#define TRIAGE_ANA_DAEMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/cm_arena.h"
#include "common/cm_buf.h"
#include "common/cm_conf.h"
#include "common/cm_err.h"
#include "db/db.h"

#define ANAD_MAX_SYMBOL_DIRS 32

struct anad_conf {
    char db_url[1024];      /* libpq connection string; required */
    char listen[256];       /* HOST:PORT for /healthz and /metrics; "" = none */
    char log_level[16];
    char rules[1024];       /* signature rules file; "" = the built-in rules */
    char *symbols[ANAD_MAX_SYMBOL_DIRS];
    size_t symbols_count;
    size_t workers;         /* worker threads, each with one sandboxed child */
    size_t batch;           /* jobs claimed at once */
    int64_t lease_ms;       /* job lease */
    int64_t job_timeout_ms; /* wall clock for one dump in the child before it is killed */
    int64_t idle_poll_ms;   /* longest sleep when the queue is empty */
    int64_t sweep_ms;       /* how often expired leases are swept */
    size_t child_memory_bytes; /* RLIMIT_AS of the child */
    size_t max_dump_bytes;  /* decompressed dump cap */
    size_t max_frames;      /* frames per thread */
    size_t max_attempts;    /* (informational: attempts are set when the crash is recorded) */
    bool child;             /* run as the sandboxed child (internal) */
};

extern const struct cm_conf anad_conf_table;

/* Counters shown on /metrics. */
struct anad_metrics {
    atomic_ullong jobs_done, jobs_failed, jobs_retried, jobs_lost, batches, child_restarts,
        child_timeouts, child_crashes, db_errors, analysis_us_sum;
    atomic_ullong latency[12]; /* analysis time buckets (see ana_status.c) */
    atomic_llong queue_ready, queue_running, queue_dead, oldest_due_ms;
    atomic_bool db_ok;
};

struct anad {
    struct anad_conf conf;
    struct anad_metrics metrics;
    atomic_bool stopping;
    char self_exe[4096];    /* this program, re-executed as the child */
};

/* ---- the sandboxed child (ana_sandbox.c) ---- */

/* What the child reports for one dump. Strings live in `arena`. */
struct anad_result {
    bool ok;                 /* false: the dump cannot be read (permanent failure) */
    const char *error;       /* "CORRUPT: minidump: ..." when !ok */
    const char *signature, *bucket, *crash_kind, *fault_module, *fault_module_version,
        *fault_point, *stack_hash, *fault_key, *rules_version, *processed_json, *dump_format;
    struct db_module *modules;
    size_t module_count;
};

struct anad_child {
    pid_t pid;
    int to_child, from_child; /* pipe ends */
    struct cm_buf in;         /* bytes read from the child */
};

/* Starts a child (re-executes self with --child and the symbol/limit flags). */
enum cm_code anad_child_start(struct anad *d, struct anad_child *ch, struct cm_err *err);
/* Kills and reaps the child. */
void anad_child_stop(struct anad_child *ch);
/* Sends one spool path and waits for the answer at most timeout_ms. CM_E_OK: *res filled (ok
 * or a permanent failure). CM_E_BUSY: the child died or timed out (it is stopped; restart it);
 * err says which. */
enum cm_code anad_child_analyze(struct anad_child *ch, const char *spool_path, int64_t timeout_ms,
                                struct cm_arena *arena, struct anad_result *res,
                                struct cm_err *err);
/* The child's main loop: requests on stdin, answers on stdout, until EOF. */
int anad_child_main(struct anad *d);

/* Installs the child's seccomp filter (ana_seccomp.c): the network, exec, ptrace, kill and new
 * processes answer EPERM from then on. allow_processes keeps process creation (sanitizer builds,
 * whose leak checker forks at exit). */
enum cm_code anad_seccomp(bool allow_processes, struct cm_err *err);

/* ---- workers (ana_worker.c) ---- */

void *anad_worker_thread(void *arg); /* arg: struct anad_worker */
struct anad_worker {
    struct anad *d;
    unsigned index;
};

/* ---- health and metrics (ana_status.c) ---- */

void anad_metrics_latency(struct anad_metrics *m, uint64_t micros);
/* Starts the /healthz and /metrics server; NULL when conf.listen is empty or on failure. */
void *anad_status_start(struct anad *d, struct cm_err *err);
void anad_status_stop(void *server);

#endif
