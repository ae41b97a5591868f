/* db_int.h -- what db/'s own files share: the connection struct, the statement runner, and the
 * builders of parameters and array parameters. No other module includes this. */
#ifndef TRIAGE_DB_INT_H
#define TRIAGE_DB_INT_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

#include <libpq-fe.h>

#include "common/cm_arena.h"
#include "common/cm_buf.h"
#include "db/db.h"

/* A statement: constant text, prepared once per session under its name. Each file defines its
 * statements as `static const struct db__stmt` and runs them with db__exec(). */
struct db__stmt {
    const char *name; /* unique across db/, "crash_insert" */
    const char *sql;  /* constant; values only as $1..$n */
    int nparams;
};

#define DB__MAX_PREPARED 64

struct db_conn {
    PGconn *pg;             /* NULL while disconnected */
    char *conninfo;         /* owned; "" for libpq defaults */
    struct db_options opt;
    const struct db__stmt *prepared[DB__MAX_PREPARED]; /* prepared on the current session */
    size_t prepared_count;
    unsigned reconnects;
    bool connected_once;
    bool in_tx;             /* between db__begin and db__commit/rollback */
};

/* Runs a prepared statement with text parameters (NULL = SQL NULL). *res (may be NULL when the
 * caller wants no rows) gets the result on success; PQclear it. Connects or reconnects first if
 * needed; outside a transaction, a connection found broken is re-established and the
 * statement retried once. Errors: CM_E_BUSY for connection loss, timeouts, serialization
 * failures, deadlocks and shutdowns; CM_E_DB otherwise; the message starts with what. */
enum cm_code db__exec(struct db_conn *db, const struct db__stmt *st, const char *const *values,
                      PGresult **res, const char *what, struct cm_err *err);
/* BEGIN / COMMIT / ROLLBACK. Rollback never fails (a lost connection has rolled back). */
enum cm_code db__begin(struct db_conn *db, struct cm_err *err);
enum cm_code db__commit(struct db_conn *db, struct cm_err *err);
void db__rollback(struct db_conn *db);
/* Runs a whole script of statements (migrations only: constant text compiled into the binary,
 * no parameters) with the simple query protocol. */
enum cm_code db__exec_script(struct db_conn *db, const char *sql, const char *what,
                             struct cm_err *err);
/* Makes sure the session is up (connecting if needed). */
enum cm_code db__ensure(struct db_conn *db, struct cm_err *err);

/* Test hook: when set, called just before the COMMIT of every write transaction (result
 * batches, migrations) with a name of the transaction; fault tests restart the server there. */
extern void (*db__hook_before_commit)(struct db_conn *db, const char *what);

/* ---- values (db_sql.c) ---- */

/* Parameters of one call: text values kept in an arena. */
struct db__args {
    const char *v[32];
    int n;
    struct cm_arena arena;
    bool failed; /* out of memory or too many parameters */
};
void db__args_init(struct db__args *a);
void db__args_free(struct db__args *a);
/* A string (NULL stays NULL; "" stays ""), UTF-8 made valid. */
void db__arg_str(struct db__args *a, const char *s);
/* A string where "" means NULL. */
void db__arg_str_or_null(struct db__args *a, const char *s);
void db__arg_i64(struct db__args *a, int64_t v);
void db__arg_u64(struct db__args *a, uint64_t v);
void db__arg_bool(struct db__args *a, bool v);
void db__arg_null(struct db__args *a);
/* The project (NULL or "" -> DB_DEFAULT_PROJECT). */
void db__arg_project(struct db__args *a, const char *project);
/* A finished array literal (owned by the arena afterwards). */
void db__arg_buf(struct db__args *a, struct cm_buf *array);

/* Array literals for array parameters ($1::text[]): "{...}" with each element quoted. */
void db__arr_begin(struct cm_buf *b);
void db__arr_str(struct cm_buf *b, const char *s); /* NULL -> NULL element */
void db__arr_i64(struct cm_buf *b, int64_t v);
void db__arr_u64(struct cm_buf *b, uint64_t v);
void db__arr_bool(struct cm_buf *b, bool v);
void db__arr_null(struct cm_buf *b);
void db__arr_end(struct cm_buf *b);
/* True when every append to b succeeded (the buffer cap was not hit, memory did not run out). */
bool db__arr_ok(const struct cm_buf *b);

/* A copy of s with invalid UTF-8 replaced by U+FFFD, in the arena; s itself when valid. */
const char *db__utf8_clean(struct cm_arena *a, const char *s);
/* Appends s as a JSON string to b (valid UTF-8 assumed). */
void db__json_str(struct cm_buf *b, const char *s);

/* Result helpers: the value or NULL for SQL NULL; integer parse (0 for NULL). */
const char *db__get(const PGresult *r, int row, int col);
int64_t db__get_i64(const PGresult *r, int row, int col);
/* cm_strdup of the value, NULL for SQL NULL; *oom set when a copy failed. */
char *db__dup(const PGresult *r, int row, int col, bool *oom);
/* Copies the value into out (size n), "" for NULL, truncated if needed. */
void db__copy(const PGresult *r, int row, int col, char *out, size_t n);

/* True when s is a UUID in text form (8-4-4-4-12 hex digits). */
bool db__is_uuid(const char *s);
/* The project name to use (NULL or "" -> DB_DEFAULT_PROJECT). */
const char *db__project(const char *p);

/* ---- migrations (generated from db/migrations at build time) ---- */

struct db__migration {
    int version;
    const char *name;   /* "0001_init" */
    const char *sql;
    const char *sha256; /* hex SHA-256 of the file */
};
extern const struct db__migration db__migrations[];
extern const size_t db__migration_count;

#endif
