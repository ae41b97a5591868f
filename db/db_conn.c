/* db_conn.c -- one libpq session with bounded calls: connect with connect_timeout and TCP
 * keepalives, server-side statement/lock/idle timeouts, and a client-side poll deadline on
 * every statement so a hung server (SIGSTOP, a dead network path) cannot block a caller.
 * Statements are prepared lazily per session and re-prepared after a reconnect.
 * Reference: libpq "Asynchronous Command Processing" and "Connection Status Functions"
 * (postgresql.org/docs/15/libpq-async.html), SQLSTATE codes (errcodes-appendix.html). */
#include "db/db_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/cm_alloc.h"

void (*db__hook_before_commit)(struct db_conn *db, const char *what);

void db_options_default(struct db_options *o)
{
    *o = (struct db_options){
        .connect_timeout_s = 10,
        .statement_timeout_ms = 30000,
        .lock_timeout_ms = 10000,
        .client_grace_ms = 5000,
        .application_name = "triage",
        .event_clamp_ms = 7LL * 24 * 3600 * 1000,
    };
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* libpq messages end in a newline; copy without it. */
static void pg_msg(char *out, size_t n, const char *msg)
{
    snprintf(out, n, "%s", msg && *msg ? msg : "unknown error");
    size_t len = strlen(out);
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' '))
        out[--len] = 0;
}

static void drop(struct db_conn *db)
{
    if (db->pg)
        PQfinish(db->pg);
    db->pg = NULL;
    db->prepared_count = 0;
    db->in_tx = false;
}

/* Notices (RAISE WARNING, "relation already exists, skipping") are not ours to print. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static enum cm_code session_setup(struct db_conn *db, struct cm_err *err);

static enum cm_code connect_now(struct db_conn *db, struct cm_err *err)
{
    drop(db);
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", db->opt.connect_timeout_s > 0
                                                ? db->opt.connect_timeout_s : 10);
    /* Defaults first: keywords in the caller's conninfo (expanded from dbname) override them. */
    const char *keys[] = { "connect_timeout", "keepalives", "keepalives_idle",
                           "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                           "application_name", "client_encoding", "dbname", NULL };
    const char *vals[] = { timeout, "1", "30", "10", "3", "60000",
                           db->opt.application_name ? db->opt.application_name : "triage",
                           "UTF8", db->conninfo, NULL };
    if (!*db->conninfo)
        keys[8] = NULL; /* no dbname: libpq defaults and PG* variables */
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (!pg)
        return cm_fail(err, CM_E_NOMEM, "database: out of memory connecting");
    if (PQstatus(pg) != CONNECTION_OK) {
        char m[200];
        pg_msg(m, sizeof m, PQerrorMessage(pg));
        PQfinish(pg);
        return cm_fail(err, CM_E_BUSY, "database: cannot connect: %s", m);
    }
    PQsetNoticeProcessor(pg, quiet_notice, NULL);
    if (PQsetnonblocking(pg, 1) != 0) {
        PQfinish(pg);
        return cm_fail(err, CM_E_DB, "database: cannot make the connection non-blocking");
    }
    db->pg = pg;
    if (db->connected_once)
        db->reconnects++;
    db->connected_once = true;
    enum cm_code rc = session_setup(db, err);
    if (rc)
        drop(db);
    return rc;
}

enum cm_code db__ensure(struct db_conn *db, struct cm_err *err)
{
    if (db->pg && PQstatus(db->pg) == CONNECTION_OK)
        return CM_E_OK;
    if (db->in_tx) {
        drop(db);
        return cm_fail(err, CM_E_BUSY, "database: connection lost inside a transaction");
    }
    return connect_now(db, err);
}

/* Sends what libpq has buffered and waits for the whole result, bounded by deadline_ms.
 * Returns the first non-NULL result kept (others cleared), or NULL with *timed_out or a broken
 * connection. */
static PGresult *wait_result(struct db_conn *db, int64_t deadline_ms, bool *timed_out)
{
    PGconn *pg = db->pg;
    int sock = PQsocket(pg);
    *timed_out = false;
    for (;;) { /* flush the query out */
        int f = PQflush(pg);
        if (f == 0)
            break;
        if (f < 0)
            return NULL;
        int64_t left = deadline_ms - now_ms();
        if (left <= 0) {
            *timed_out = true;
            return NULL;
        }
        struct pollfd p = { sock, POLLOUT | POLLIN, 0 };
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            return NULL;
        if ((p.revents & POLLIN) && !PQconsumeInput(pg))
            return NULL;
    }
    PGresult *keep = NULL;
    for (;;) {
        while (PQisBusy(pg)) {
            int64_t left = deadline_ms - now_ms();
            if (left <= 0) {
                *timed_out = true;
                PQclear(keep);
                return NULL;
            }
            struct pollfd p = { sock, POLLIN, 0 };
            int n = poll(&p, 1, (int)left);
            if (n < 0 && errno != EINTR) {
                PQclear(keep);
                return NULL;
            }
            if (n > 0 && !PQconsumeInput(pg)) {
                PQclear(keep);
                return NULL;
            }
        }
        PGresult *r = PQgetResult(pg);
        if (!r)
            return keep;
        if (!keep)
            keep = r;
        else if (PQresultStatus(r) == PGRES_FATAL_ERROR &&
                 PQresultStatus(keep) != PGRES_FATAL_ERROR) {
            PQclear(keep); /* an error after rows (a script) wins */
            keep = r;
        } else
            PQclear(r);
    }
}

/* SQLSTATEs after which the same call may succeed later. */
static bool retryable_state(const char *st)
{
    if (!st)
        return false;
    return strncmp(st, "08", 2) == 0 /* connection exception */
           || strcmp(st, "40001") == 0 /* serialization_failure */
           || strcmp(st, "40P01") == 0 /* deadlock_detected */
           || strcmp(st, "55P03") == 0 /* lock_not_available (lock_timeout) */
           || strcmp(st, "57014") == 0 /* query_canceled (statement_timeout) */
           || strcmp(st, "57P01") == 0 /* admin_shutdown */
           || strcmp(st, "57P02") == 0 /* crash_shutdown */
           || strcmp(st, "57P03") == 0 /* cannot_connect_now */
           || strcmp(st, "53300") == 0 /* too_many_connections */
           || strcmp(st, "25P03") == 0; /* idle_in_transaction_session_timeout */
}

enum send_kind { SEND_PREPARED, SEND_PARAMS_TEXT, SEND_SCRIPT, SEND_PREPARE };

/* One attempt. *broken is set when the connection failed (not a server-reported error). */
static enum cm_code run_once(struct db_conn *db, enum send_kind kind, const struct db__stmt *st,
                             const char *text, const char *const *values, PGresult **res,
                             const char *what, bool *broken, struct cm_err *err)
{
    *broken = false;
    int sent;
    switch (kind) {
    case SEND_PREPARE:
        sent = PQsendPrepare(db->pg, st->name, st->sql, st->nparams, NULL);
        break;
    case SEND_PREPARED:
        sent = PQsendQueryPrepared(db->pg, st->name, st->nparams, values, NULL, NULL, 0);
        break;
    case SEND_PARAMS_TEXT:
        sent = PQsendQueryParams(db->pg, text, 0, NULL, NULL, NULL, NULL, 0);
        break;
    default:
        sent = PQsendQuery(db->pg, text);
        break;
    }
    char m[200];
    if (!sent) {
        pg_msg(m, sizeof m, PQerrorMessage(db->pg));
        *broken = true;
        drop(db);
        return cm_fail(err, CM_E_BUSY, "%s: cannot send to the database: %s", what, m);
    }
    int64_t budget = (int64_t)db->opt.statement_timeout_ms + db->opt.client_grace_ms;
    if (kind == SEND_SCRIPT)
        budget = 10LL * 60 * 1000; /* migrations may rewrite tables */
    bool timed_out;
    PGresult *r = wait_result(db, now_ms() + budget, &timed_out);
    if (timed_out) {
        drop(db);
        return cm_fail(err, CM_E_BUSY, "%s: no answer from the database within %lld ms", what,
                       (long long)budget);
    }
    if (!r || PQstatus(db->pg) != CONNECTION_OK) {
        pg_msg(m, sizeof m, r ? PQresultErrorMessage(r) : PQerrorMessage(db->pg));
        PQclear(r);
        *broken = true;
        drop(db);
        return cm_fail(err, CM_E_BUSY, "%s: connection to the database lost: %s", what, m);
    }
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
        if (res)
            *res = r;
        else
            PQclear(r);
        return CM_E_OK;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    pg_msg(m, sizeof m, PQresultErrorMessage(r));
    enum cm_code code = retryable_state(state) ? CM_E_BUSY : CM_E_DB;
    /* A server that shut down our session: the connection is gone too. */
    if (state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0))
        *broken = true;
    enum cm_code rc = cm_fail(err, code, "%s: %s (SQLSTATE %s)", what, m, state ? state : "?");
    PQclear(r);
    if (*broken)
        drop(db);
    return rc;
}

static bool is_prepared(const struct db_conn *db, const struct db__stmt *st)
{
    for (size_t i = 0; i < db->prepared_count; i++)
        if (db->prepared[i] == st)
            return true;
    return false;
}

static enum cm_code exec_once(struct db_conn *db, const struct db__stmt *st,
                              const char *const *values, PGresult **res, const char *what,
                              bool *broken, struct cm_err *err)
{
    *broken = false;
    enum cm_code rc = db__ensure(db, err);
    if (rc) {
        *broken = true;
        return rc;
    }
    if (!is_prepared(db, st)) {
        rc = run_once(db, SEND_PREPARE, st, NULL, NULL, NULL, what, broken, err);
        if (rc)
            return rc;
        if (db->prepared_count < DB__MAX_PREPARED)
            db->prepared[db->prepared_count++] = st;
        else
            return cm_fail(err, CM_E_LIMIT, "%s: more than %d prepared statements", what,
                           DB__MAX_PREPARED);
    }
    return run_once(db, SEND_PREPARED, st, NULL, values, res, what, broken, err);
}

enum cm_code db__exec(struct db_conn *db, const struct db__stmt *st, const char *const *values,
                      PGresult **res, const char *what, struct cm_err *err)
{
    if (res)
        *res = NULL;
    bool had_session = db->pg != NULL, broken;
    bool in_tx = db->in_tx;
    enum cm_code rc = exec_once(db, st, values, res, what, &broken, err);
    /* A session that died while idle (server restart): one fresh try, outside transactions. */
    if (rc == CM_E_BUSY && broken && had_session && !in_tx)
        rc = exec_once(db, st, values, res, what, &broken, err);
    return rc;
}

static enum cm_code simple(struct db_conn *db, const char *sql, const char *what,
                           struct cm_err *err)
{
    bool broken;
    enum cm_code rc = db__ensure(db, err);
    if (rc)
        return rc;
    return run_once(db, SEND_PARAMS_TEXT, NULL, sql, NULL, NULL, what, &broken, err);
}

enum cm_code db__begin(struct db_conn *db, struct cm_err *err)
{
    if (db->in_tx)
        return cm_fail(err, CM_E_USAGE, "database: nested transaction");
    bool had_session = db->pg != NULL;
    enum cm_code rc = simple(db, "BEGIN", "begin", err);
    if (rc == CM_E_BUSY && had_session) /* stale session: BEGIN changes nothing, retry once */
        rc = simple(db, "BEGIN", "begin", err);
    if (!rc)
        db->in_tx = true;
    return rc;
}

enum cm_code db__commit(struct db_conn *db, struct cm_err *err)
{
    enum cm_code rc = simple(db, "COMMIT", "commit", err);
    db->in_tx = false;
    return rc;
}

void db__rollback(struct db_conn *db)
{
    if (db->pg && PQstatus(db->pg) == CONNECTION_OK) {
        bool broken;
        run_once(db, SEND_PARAMS_TEXT, NULL, "ROLLBACK", NULL, NULL, "rollback", &broken, NULL);
    }
    db->in_tx = false;
}

enum cm_code db__exec_script(struct db_conn *db, const char *sql, const char *what,
                             struct cm_err *err)
{
    bool broken;
    enum cm_code rc = db__ensure(db, err);
    if (rc)
        return rc;
    return run_once(db, SEND_SCRIPT, NULL, sql, NULL, NULL, what, &broken, err);
}

static const struct db__stmt st_setup = {
    "session_setup",
    "SELECT set_config('statement_timeout', $1, false), set_config('lock_timeout', $2, false),"
    " set_config('idle_in_transaction_session_timeout', $3, false),"
    " set_config('TimeZone', 'UTC', false)",
    3,
};

static enum cm_code session_setup(struct db_conn *db, struct cm_err *err)
{
    char st[24], lt[24], it[24];
    snprintf(st, sizeof st, "%d", db->opt.statement_timeout_ms);
    snprintf(lt, sizeof lt, "%d", db->opt.lock_timeout_ms);
    /* A transaction left open by a stuck client must not hold locks for ever. */
    snprintf(it, sizeof it, "%d", db->opt.statement_timeout_ms * 2);
    const char *v[] = { st, lt, it };
    bool broken;
    enum cm_code rc = run_once(db, SEND_PREPARE, &st_setup, NULL, NULL, NULL, "session setup",
                               &broken, err);
    if (!rc)
        rc = run_once(db, SEND_PREPARED, &st_setup, NULL, v, NULL, "session setup", &broken,
                      err);
    if (!rc)
        db->prepared[db->prepared_count++] = &st_setup;
    return rc;
}

enum cm_code db_open(const char *conninfo, const struct db_options *opt, struct db_conn **out,
                     struct cm_err *err)
{
    *out = NULL;
    struct db_conn *db = cm_calloc(1, sizeof *db);
    if (!db)
        return cm_fail(err, CM_E_NOMEM, "database: out of memory");
    if (opt)
        db->opt = *opt;
    else
        db_options_default(&db->opt);
    struct db_options def;
    db_options_default(&def);
    if (db->opt.statement_timeout_ms <= 0)
        db->opt.statement_timeout_ms = def.statement_timeout_ms;
    if (db->opt.lock_timeout_ms <= 0)
        db->opt.lock_timeout_ms = def.lock_timeout_ms;
    if (db->opt.client_grace_ms <= 0)
        db->opt.client_grace_ms = def.client_grace_ms;
    if (db->opt.event_clamp_ms <= 0)
        db->opt.event_clamp_ms = def.event_clamp_ms;
    db->conninfo = cm_strdup(conninfo ? conninfo : "");
    if (!db->conninfo) {
        cm_free(db);
        return cm_fail(err, CM_E_NOMEM, "database: out of memory");
    }
    enum cm_code rc = connect_now(db, err);
    if (rc) {
        db_close(db);
        return rc;
    }
    db->reconnects = 0;
    *out = db;
    return CM_E_OK;
}

void db_close(struct db_conn *db)
{
    if (!db)
        return;
    drop(db);
    cm_free(db->conninfo);
    cm_free(db);
}

static const struct db__stmt st_ping = { "ping", "SELECT 1", 0 };

enum cm_code db_ping(struct db_conn *db, struct cm_err *err)
{
    return db__exec(db, &st_ping, NULL, NULL, "ping", err);
}

void db_disconnect(struct db_conn *db) { drop(db); }

unsigned db_reconnect_count(const struct db_conn *db) { return db->reconnects; }

int db_backend_pid(const struct db_conn *db)
{
    return db->pg && PQstatus(db->pg) == CONNECTION_OK ? PQbackendPID(db->pg) : 0;
}

enum cm_code db_uuid_v4(char out[DB_UUID_LEN + 1], struct cm_err *err)
{
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return cm_fail(err, CM_E_IO, "getrandom: %s", strerror(errno));
        got += (size_t)n;
    }
    b[6] = (uint8_t)((b[6] & 0x0F) | 0x40); /* version 4 (RFC 9562 section 5.4) */
    b[8] = (uint8_t)((b[8] & 0x3F) | 0x80); /* variant 10 */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = 0;
    return CM_E_OK;
}
