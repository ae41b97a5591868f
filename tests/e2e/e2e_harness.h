/* e2e_harness.h -- helpers of the end-to-end tests: the real service as separate programs on
 * loopback. A throwaway PostgreSQL (tests/db/pg_harness.h), the real triage-ingest and
 * triage-analyzer started as child processes on random loopback ports with private temp
 * folders, uploads over real HTTP (libcurl) through both routes, waiting until the queue is
 * drained, and libpq queries. No mocks anywhere.
 *
 * Cleanup: every process started here and every temp folder is registered; e2e_cleanup() (call
 * it from each test's teardown: cmocka runs teardown after a failed test too) stops and removes
 * them all. If the test program itself dies, the daemons die with it (PR_SET_PDEATHSIG) and a
 * guardian process removes the temp root (/tmp/triage-e2e-*), as pg_harness does for its cluster.
 *
 * Threads: e2e_upload() and e2e_upload_many() may run on any thread and never fail the test
 * themselves (they report outcomes in the struct). Everything else (SQL, process control, the
 * cmocka assertions inside) belongs to the test's main thread. */
#ifndef TRIAGE_E2E_HARNESS_H
#define TRIAGE_E2E_HARNESS_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>
#include <sys/types.h> /* pid_t */

#include <libpq-fe.h>

/* ---- lifecycle ---- */

/* Once per program (group setup): the PostgreSQL cluster with the migrations applied, the
 * guardian, curl_global_init. Fails the test when PostgreSQL cannot start (never skips). */
void e2e_init(void);
/* Group teardown: e2e_cleanup(), then the cluster is stopped and removed. */
void e2e_fini(void);
/* Per test: stops every process still running (SIGTERM, then SIGKILL), removes every temp
 * folder. When the test did not call e2e_passed(), the tail of each daemon's log is printed
 * first, so a failure shows what the daemons said (E2E_LOG_DIR=folder keeps whole logs). */
void e2e_cleanup(void);
void e2e_passed(void);

/* A fresh private folder (0700) under the program's temp root; removed by e2e_cleanup(). */
void e2e_tmpdir(const char *label, char *out, size_t n);

/* ---- PostgreSQL (main thread only) ---- */

const char *e2e_pg_conninfo(void);
/* Empties every table of the service (not schema_migrations), between tests. */
void e2e_db_reset(void);
/* pg_ctl stop -m fast (or -m immediate: a crash of the server), and start again on the same
 * socket (tests/db/pg_harness.h's cluster). */
void e2e_pg_stop(bool immediate);
void e2e_pg_start(void);
/* Runs sql with text parameters (NULL-terminated list, may be NULL); fails the test on error.
 * Reconnects once when the connection broke (after a restart). The caller PQclear()s. */
PGresult *e2e_sql(const char *sql, const char *const *params);
/* First column of the first row as an integer (-1 without rows; NULL reads as 0). */
long long e2e_sql_int(const char *sql, const char *const *params);
/* First column of the first row into out ("" without rows or NULL). */
void e2e_sql_text(const char *sql, const char *const *params, char *out, size_t n);

/* Crashes of the default project by status. */
struct e2e_counts {
    long long total, received, analyzing, done, failed, dead;
    long long jobs_ready, jobs_running, jobs_dead;
};
void e2e_counts(struct e2e_counts *c);
/* Waits until at least `expected` crashes exist and none is received or analyzing (so every
 * job is done, failed or dead), polling; fails the test with the counts when timeout_s passes
 * (a deadline only catches hangs). *c (may be NULL) gets the final counts. */
void e2e_wait_analyzed(long long expected, int timeout_s, struct e2e_counts *c);

/* ---- the daemons ---- */

struct e2e_proc {
    int slot; /* index in the harness's registry; -1 when not started */
    pid_t pid;
};

struct e2e_ingest {
    struct e2e_proc proc;
    uint16_t port;
    char dir[256];   /* private folder */
    char spool[300]; /* dir/spool */
};
/* Starts triage-ingest on 127.0.0.1:0 with a private spool and the test database, plus extra
 * flags ("--key=value", NULL-terminated, may be NULL), reads its port from its log and waits
 * until /healthz answers 200. ing->dir and ing->spool are created on the first start and kept
 * when the same struct is started again (a restart keeps its spool and port). */
void e2e_ingest_start(struct e2e_ingest *ing, const char *const *extra);
/* SIGTERM, waits (30 s, then SIGKILL); returns the exit status (128+signal if killed). */
int e2e_ingest_stop(struct e2e_ingest *ing);

struct e2e_analyzer {
    struct e2e_proc proc;
    uint16_t port; /* /healthz and /metrics */
};
/* Starts triage-analyzer with the test database, the corpus's symbol stores
 * (breakpad/testdata/symbols, elfcores/symbols), --listen on a free loopback port and extra
 * flags; waits until /healthz answers 200 (a worker reached the database). */
void e2e_analyzer_start(struct e2e_analyzer *an, const char *const *extra);
int e2e_analyzer_stop(struct e2e_analyzer *an);
/* kill -9 and reap. */
void e2e_proc_kill9(struct e2e_proc *p);
bool e2e_proc_alive(const struct e2e_proc *p);

/* ---- HTTP ---- */

struct e2e_resp {
    long status; /* 0: transport failure (error says why) */
    char *body;  /* NUL-terminated; free with e2e_resp_free() */
    size_t len;
    long retry_after; /* -1 when absent */
    char error[128];
};
/* One request on a fresh connection; body NULL means GET. headers NULL-terminated (may be
 * NULL). Thread-safe. */
void e2e_http(uint16_t port, const char *path, const char *const *headers, const void *body,
              size_t n, struct e2e_resp *r);
void e2e_resp_free(struct e2e_resp *r);

/* ---- uploads ---- */

enum e2e_route {
    E2E_NATIVE, /* POST /api/v1/crashes, the CrashUpload envelope of proto/proto.h */
    E2E_SUBMIT, /* POST /submit, multipart as Breakpad and Crashpad send it */
};
enum e2e_enc {
    E2E_RAW,  /* native: compression NONE; submit: the dump part raw */
    E2E_ZSTD, /* native: compression ZSTD (zst bytes when given, else compressed here) */
    E2E_GZIP, /* native: compression GZIP; submit: the whole body, Content-Encoding: gzip */
};

struct e2e_upload {
    /* in */
    enum e2e_route route;
    enum e2e_enc enc;
    const uint8_t *dump; /* the dump, decompressed */
    size_t dump_len;
    const uint8_t *zst;  /* optional: the same dump zstd-compressed (sent as is for E2E_ZSTD) */
    size_t zst_len;
    const char *host_id; /* NULL: none (submit: no guid field) */
    const char *idempotency_key; /* native only; NULL: none */
    const char *product;         /* NULL: "e2e" */
    const char *version;         /* NULL: "1.0" */
    /* out */
    long status;        /* HTTP status; 0: no answer */
    bool accepted;      /* 202 accepted/duplicate (native) or 200 CrashID= (submit) */
    bool duplicate;     /* native ack status DUPLICATE */
    char crash_id[37];  /* when accepted */
    char reason[64];    /* reason token otherwise (CrashAck.reason or Discarded=) */
    char error[128];    /* transport error */
};
/* Uploads one dump; fills the out fields. Thread-safe; never fails the test itself. */
void e2e_upload(uint16_t port, struct e2e_upload *u);
/* Uploads n dumps with `threads` concurrent clients. */
void e2e_upload_many(uint16_t port, struct e2e_upload *u, size_t n, unsigned threads);

/* Bodies for hand-made requests. */
void e2e_envelope(const struct e2e_upload *u, const uint8_t *dump, size_t n, int compression,
                  uint8_t **out, size_t *out_len);
uint8_t *e2e_gzip(const void *in, size_t n, size_t *out_len);
uint8_t *e2e_zstd(const void *in, size_t n, size_t *out_len);
/* A reason token from a reply body: CrashAck.reason (protobuf) or "Discarded=<token>". */
void e2e_reply_reason(const struct e2e_resp *r, bool native, char *out, size_t n);

/* ---- the corpus and its offline analysis ---- */

struct e2e_dump {
    char rel[160];    /* path inside the corpus */
    uint8_t *raw;     /* decompressed */
    size_t raw_len;
    uint8_t *zst;     /* the corpus's .zst bytes, or NULL */
    size_t zst_len;
    char bucket[64];  /* `triagectl stackwalk --json` of the corpus file, same symbol stores */
    char signature[512];
};
/* Every corpus dump the service must take: breakpad/testdata/ *.dmp except microdumps,
 * elfcores/dumps/ *.zst, windows-kernel/triage_x64.dmp; loaded and analyzed offline once per
 * program by running triagectl as a program. Fails the test when a file or tool is missing. */
const struct e2e_dump *e2e_corpus(size_t *count);
/* The offline reader's error for a file: `triagectl stackwalk --json FILE` must fail; returns
 * the message it prints after "triagectl stackwalk: FILE: ". */
void e2e_offline_error(const char *path, char *out, size_t n);
/* Runs triagectl with the arguments (argv[0] is added), captures stdout; returns exit status. */
int e2e_triagectl(const char *const *args, char **out);

/* ---- the spool ---- */

/* Every entry under dir, recursively (dot and temp files too), as "path size\n" lines sorted;
 * free() the result. Two equal snapshots mean nothing was added, removed or resized. */
char *e2e_tree_snapshot(const char *dir);
/* Entries in dir that are not folders (dot and temp files too); 0 when dir is missing. */
size_t e2e_count_files(const char *dir);

#endif
