/* db_migrate.c -- applies the migrations embedded at build time (db/migrations/NNNN_name.sql,
 * see embed_migrations.cmake) that the database lacks. One session-level advisory lock
 * serializes concurrent starters; each migration runs in its own transaction together with
 * its schema_migrations row, so it is applied entirely or not at all, exactly once.
 * Migration scripts are the only multi-statement SQL the service runs: constant text compiled
 * into the binary, no parameters, sent with the simple query protocol. */
#include "db/db_int.h"

#include <stdio.h>
#include <string.h>

/* "triage" in ASCII followed by 0001: the migration lock (partitions use ...0002). */
#define MIGRATE_LOCK "7472696167650001"

static const struct db__stmt st_lock = {
    "migrate_lock", "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", 0
};
static const struct db__stmt st_unlock = {
    "migrate_unlock", "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")", 0
};
/* Migrations may wait on locks and rewrite tables: relax this session's timeouts meanwhile. */
static const struct db__stmt st_relax = {
    "migrate_relax",
    "SELECT set_config('lock_timeout', '300s', false), set_config('statement_timeout', '0', false)",
    0,
};
static const struct db__stmt st_restore = {
    "migrate_restore",
    "SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)",
    2,
};
static const struct db__stmt st_table = {
    "migrate_table",
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())",
    0,
};
static const struct db__stmt st_applied = {
    "migrate_applied", "SELECT version, name, sha256 FROM schema_migrations ORDER BY version", 0
};
static const struct db__stmt st_record = {
    "migrate_record",
    "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1::integer, $2, $3)",
    3,
};
static const struct db__stmt st_partitions = {
    "partitions_ensure", "SELECT triage_ensure_partitions($1::integer)", 1
};

static const struct db__migration *embedded(int version)
{
    for (size_t i = 0; i < db__migration_count; i++)
        if (db__migrations[i].version == version)
            return &db__migrations[i];
    return NULL;
}

static enum cm_code apply_one(struct db_conn *db, const struct db__migration *m,
                              struct cm_err *err)
{
    char what[96];
    snprintf(what, sizeof what, "migration %s", m->name);
    enum cm_code rc = db__begin(db, err);
    if (rc)
        return rc;
    rc = db__exec_script(db, m->sql, what, err);
    if (!rc) {
        char ver[16];
        snprintf(ver, sizeof ver, "%d", m->version);
        const char *v[] = { ver, m->name, m->sha256 };
        rc = db__exec(db, &st_record, v, NULL, what, err);
    }
    if (!rc && db__hook_before_commit)
        db__hook_before_commit(db, what);
    if (!rc)
        rc = db__commit(db, err);
    if (rc)
        db__rollback(db);
    return rc;
}

enum cm_code db_migrate(struct db_conn *db, struct db_migrate_report *rep, struct cm_err *err)
{
    struct db_migrate_report r = { 0 };
    for (size_t i = 0; i < db__migration_count; i++)
        if (db__migrations[i].version > r.known_version)
            r.known_version = db__migrations[i].version;
    PGresult *res = NULL;
    bool locked = false;
    enum cm_code rc = db__exec(db, &st_relax, NULL, NULL, "migrate", err);
    if (rc)
        goto out;
    rc = db__exec(db, &st_lock, NULL, NULL, "migration lock", err);
    if (rc)
        goto out;
    locked = true;
    rc = db__exec(db, &st_table, NULL, NULL, "schema_migrations", err);
    if (rc)
        goto out;
    rc = db__exec(db, &st_applied, NULL, &res, "schema_migrations", err);
    if (rc)
        goto out;
    /* Every applied migration this binary knows must be the file it was built from. */
    for (int i = 0; i < PQntuples(res); i++) {
        int ver = (int)db__get_i64(res, i, 0);
        const char *sum = db__get(res, i, 2);
        if (ver > r.schema_version)
            r.schema_version = ver;
        const struct db__migration *m = embedded(ver);
        if (m && (!sum || strcmp(sum, m->sha256) != 0)) {
            rc = cm_fail(err, CM_E_CORRUPT, "migration %s was changed after it was applied "
                         "(sha256 %.12s... in the database, %.12s... built in)", m->name,
                         sum ? sum : "?", m->sha256);
            goto out;
        }
    }
    for (size_t i = 0; i < db__migration_count; i++) {
        const struct db__migration *m = &db__migrations[i];
        bool done = false;
        for (int k = 0; k < PQntuples(res) && !done; k++)
            done = db__get_i64(res, k, 0) == m->version;
        if (done)
            continue;
        rc = apply_one(db, m, err);
        if (rc)
            goto out;
        r.applied++;
        if (m->version > r.schema_version)
            r.schema_version = m->version;
    }
out:
    PQclear(res);
    if (locked && db->pg) {
        struct cm_err ignore;
        db__exec(db, &st_unlock, NULL, NULL, "migration unlock", &ignore);
    }
    if (db->pg) {
        char st[24], lt[24];
        snprintf(st, sizeof st, "%d", db->opt.statement_timeout_ms);
        snprintf(lt, sizeof lt, "%d", db->opt.lock_timeout_ms);
        const char *v[] = { lt, st };
        struct cm_err ignore;
        db__exec(db, &st_restore, v, NULL, "migrate", &ignore);
    }
    if (!rc)
        rc = db_partitions_ensure(db, 7, err);
    if (rep)
        *rep = r;
    return rc;
}

enum cm_code db_partitions_ensure(struct db_conn *db, int days_ahead, struct cm_err *err)
{
    char d[16];
    snprintf(d, sizeof d, "%d", days_ahead < 0 ? 0 : days_ahead > 366 ? 366 : days_ahead);
    const char *v[] = { d };
    return db__exec(db, &st_partitions, v, NULL, "partition maintenance", err);
}
