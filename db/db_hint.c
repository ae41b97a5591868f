/* db_hint.c -- progressive collection in the database (migration 0010_hints.sql, described in
 * docs/progressive-collection.md): one statement decides and records a hint (triage_hint), one
 * adds counted hints to their buckets and rollups in batches (triage_hint_rollup), one
 * attaches a later dump to a crash counted from its hint (triage_hint_attach), one takes a
 * responder's request for dumps (triage_want), and one reads the decision counts. The logic lives
 * in the SQL functions so each call is a single round trip and a single transaction. */
#include "db/db_int.h"

#include <stdio.h>
#include <string.h>

#include "common/cm_alloc.h"

/* $1 project $2 crash id $3 idempotency key $4 host $5 product $6 version $7 channel $8 build id
 * $9 os $10 os version $11 cpu arch $12 crash ms $13 annotations $14 fault key $15 key module
 * $16 key version $17 dump format $18 clamp ms $19 first K $20 sample M */
static const struct db__stmt st_hint = {
    "hint_record",
    "SELECT crash_id, counted, want_dump, reason, bucket_key, duplicate"
    " FROM triage_hint($1, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::bigint,"
    "                  $13::jsonb, $14, $15, $16, $17, $18::bigint, $19::bigint, $20::bigint)",
    20,
};

/* $1 project $2 crash id $3 sha256 $4 size $5 spool path $6 format $7 max attempts */
static const struct db__stmt st_attach = {
    "hint_attach",
    "SELECT triage_hint_attach($1, $2::uuid, $3, $4::bigint, $5, $6, $7::integer)",
    7,
};

/* $1 limit */
static const struct db__stmt st_rollup = {
    "hint_rollup",
    "SELECT triage_hint_rollup($1::integer)",
    1,
};

/* $1 project $2 bucket $3 n */
static const struct db__stmt st_want = {
    "hint_want",
    "SELECT triage_want($1, $2, $3::bigint)",
    3,
};

/* $1 project $2 since (ms; whole UTC days from its day on) */
static const struct db__stmt st_decisions = {
    "hint_decisions",
    "SELECT reason, product, version, fault_module, fault_module_version, sum(crashes)::bigint"
    " FROM collection_decisions"
    " WHERE project = $1 AND day >= (triage_ts($2::bigint) AT TIME ZONE 'UTC')::date"
    " GROUP BY 1, 2, 3, 4, 5 ORDER BY 6 DESC, 1, 2, 3, 4, 5 LIMIT 10000",
    2,
};

/* The annotations as one JSON object (a repeated key keeps its last value, as jsonb does). */
static const char *annotations_json(const struct db_kv *kv, size_t n, struct cm_arena *arena)
{
    struct cm_buf b;
    cm_buf_init(&b, 0);
    cm_buf_append(&b, "{", 1, NULL);
    for (size_t i = 0; i < n; i++) {
        const char *k = db__utf8_clean(arena, kv[i].key ? kv[i].key : "");
        const char *v = db__utf8_clean(arena, kv[i].value ? kv[i].value : "");
        if (!k || !v)
            break;
        if (i)
            cm_buf_append(&b, ",", 1, NULL);
        db__json_str(&b, k);
        cm_buf_append(&b, ":", 1, NULL);
        db__json_str(&b, v);
    }
    const char *out = NULL;
    if (!cm_buf_append(&b, "}", 1, NULL))
        out = cm_arena_strndup(arena, (const char *)b.data, b.len);
    cm_buf_free(&b);
    return out;
}

enum cm_code db_hint_record(struct db_conn *db, const struct db_hint *h, struct db_hint_reply *out,
                            struct cm_err *err)
{
    memset(out, 0, sizeof *out);
    if (!db__is_uuid(h->crash_id))
        return cm_fail(err, CM_E_USAGE, "hint: crash id is not a UUID");
    if (!h->fault_key || !*h->fault_key)
        return cm_fail(err, CM_E_USAGE, "hint: no fault key");
    if (strlen(db__project(h->project)) > DB_PROJECT_MAX)
        return cm_fail(err, CM_E_USAGE, "hint: project name longer than %d bytes",
                       DB_PROJECT_MAX);
    struct db__args a;
    db__args_init(&a);
    PGresult *res = NULL;
    enum cm_code rc = CM_E_OK;
    const char *json = annotations_json(h->annotations, h->annotation_count, &a.arena);
    db__arg_project(&a, h->project);
    db__arg_str(&a, h->crash_id);
    db__arg_str_or_null(&a, h->idempotency_key);
    db__arg_str_or_null(&a, h->host_id);
    db__arg_str_or_null(&a, h->product);
    db__arg_str_or_null(&a, h->version);
    db__arg_str_or_null(&a, h->channel);
    db__arg_str_or_null(&a, h->build_id);
    db__arg_str_or_null(&a, h->os);
    db__arg_str_or_null(&a, h->os_version);
    db__arg_str_or_null(&a, h->cpu_arch);
    if (h->crash_time_ms)
        db__arg_i64(&a, h->crash_time_ms);
    else
        db__arg_null(&a);
    db__arg_str(&a, json);
    db__arg_str(&a, h->fault_key);
    db__arg_str_or_null(&a, h->fault_module);
    db__arg_str_or_null(&a, h->fault_module_version);
    db__arg_str(&a, h->dump_format && *h->dump_format ? h->dump_format : "unknown");
    db__arg_i64(&a, db->opt.event_clamp_ms);
    db__arg_i64(&a, h->first_k < 0 ? 0 : h->first_k);
    db__arg_i64(&a, h->sample_m < 0 ? 0 : h->sample_m);
    if (!json || a.failed) {
        rc = cm_fail(err, CM_E_NOMEM, "hint: out of memory for parameters");
        goto out;
    }
    if ((rc = db__exec(db, &st_hint, a.v, &res, "hint", err)))
        goto out;
    if (PQntuples(res) != 1) {
        rc = cm_fail(err, CM_E_DB, "hint: the decision returned %d rows", PQntuples(res));
        goto out;
    }
    db__copy(res, 0, 0, out->crash_id, sizeof out->crash_id);
    const char *t;
    out->counted = (t = db__get(res, 0, 1)) && t[0] == 't';
    out->want_dump = (t = db__get(res, 0, 2)) && t[0] == 't';
    db__copy(res, 0, 3, out->reason, sizeof out->reason);
    db__copy(res, 0, 4, out->bucket_key, sizeof out->bucket_key);
    out->duplicate = (t = db__get(res, 0, 5)) && t[0] == 't';
out:
    PQclear(res);
    db__args_free(&a);
    return rc;
}

enum cm_code db_hint_rollup(struct db_conn *db, size_t limit, size_t *added, struct cm_err *err)
{
    *added = 0;
    char v[24];
    snprintf(v, sizeof v, "%zu", limit ? (limit > 100000 ? 100000 : limit) : 1000);
    const char *args[] = { v };
    PGresult *res = NULL;
    enum cm_code rc = db__exec(db, &st_rollup, args, &res, "hint rollup", err);
    if (!rc && PQntuples(res) == 1)
        *added = (size_t)db__get_i64(res, 0, 0);
    PQclear(res);
    return rc;
}

enum cm_code db_hint_attach(struct db_conn *db, const struct db_hint_dump *d, bool *attached,
                            struct cm_err *err)
{
    *attached = false;
    if (!db__is_uuid(d->crash_id))
        return cm_fail(err, CM_E_USAGE, "hint attach: crash id is not a UUID");
    struct db__args a;
    db__args_init(&a);
    PGresult *res = NULL;
    enum cm_code rc = CM_E_OK;
    db__arg_project(&a, d->project);
    db__arg_str(&a, d->crash_id);
    db__arg_str(&a, d->dump_sha256);
    db__arg_u64(&a, d->dump_size_bytes);
    db__arg_str(&a, d->spool_path);
    db__arg_str(&a, d->dump_format && *d->dump_format ? d->dump_format : "unknown");
    db__arg_i64(&a, d->max_attempts > 0 ? d->max_attempts : 3);
    if (a.failed)
        rc = cm_fail(err, CM_E_NOMEM, "hint attach: out of memory for parameters");
    else if (!(rc = db__exec(db, &st_attach, a.v, &res, "hint attach", err))) {
        const char *t = PQntuples(res) == 1 ? db__get(res, 0, 0) : NULL;
        *attached = t && t[0] == 't';
    }
    PQclear(res);
    db__args_free(&a);
    return rc;
}

enum cm_code db_want(struct db_conn *db, const char *project, const char *bucket_key, int64_t n,
                     bool *found, struct cm_err *err)
{
    *found = false;
    if (!bucket_key || !*bucket_key)
        return cm_fail(err, CM_E_USAGE, "want: no bucket");
    struct db__args a;
    db__args_init(&a);
    PGresult *res = NULL;
    enum cm_code rc = CM_E_OK;
    db__arg_project(&a, project);
    db__arg_str(&a, bucket_key);
    db__arg_i64(&a, n < 0 ? 0 : n);
    if (a.failed)
        rc = cm_fail(err, CM_E_NOMEM, "want: out of memory for parameters");
    else if (!(rc = db__exec(db, &st_want, a.v, &res, "want", err))) {
        const char *t = PQntuples(res) == 1 ? db__get(res, 0, 0) : NULL;
        *found = t && t[0] == 't';
    }
    PQclear(res);
    db__args_free(&a);
    return rc;
}

void db_decisions_free(struct db_decision *d, size_t count)
{
    if (!d)
        return;
    for (size_t i = 0; i < count; i++) {
        cm_free(d[i].reason);
        cm_free(d[i].product);
        cm_free(d[i].version);
        cm_free(d[i].fault_module);
        cm_free(d[i].fault_module_version);
    }
    cm_free(d);
}

enum cm_code db_decisions(struct db_conn *db, const char *project, int64_t since_ms,
                          struct db_decision **out, size_t *count, struct cm_err *err)
{
    *out = NULL;
    *count = 0;
    struct db__args a;
    db__args_init(&a);
    PGresult *res = NULL;
    db__arg_project(&a, project);
    db__arg_i64(&a, since_ms);
    enum cm_code rc = a.failed ? cm_fail(err, CM_E_NOMEM, "decisions: out of memory")
                               : db__exec(db, &st_decisions, a.v, &res, "decisions", err);
    size_t n = rc ? 0 : (size_t)PQntuples(res);
    struct db_decision *d = n ? cm_calloc(n, sizeof *d) : NULL;
    if (n && !d)
        rc = cm_fail(err, CM_E_NOMEM, "decisions: out of memory for %zu rows", n);
    bool oom = false;
    for (size_t i = 0; d && i < n; i++) {
        d[i].reason = db__dup(res, (int)i, 0, &oom);
        d[i].product = db__dup(res, (int)i, 1, &oom);
        d[i].version = db__dup(res, (int)i, 2, &oom);
        d[i].fault_module = db__dup(res, (int)i, 3, &oom);
        d[i].fault_module_version = db__dup(res, (int)i, 4, &oom);
        d[i].crashes = db__get_i64(res, (int)i, 5);
    }
    if (oom) {
        rc = cm_fail(err, CM_E_NOMEM, "decisions: out of memory");
        db_decisions_free(d, n);
        d = NULL;
        n = 0;
    }
    PQclear(res);
    db__args_free(&a);
    if (!rc) {
        *out = d;
        *count = n;
    }
    return rc;
}
