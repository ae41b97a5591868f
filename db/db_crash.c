/* db_crash.c -- records a durable upload: the crash's identity in crash_keys (where the dedupe
 * constraints live), its row in the partitioned crashes table and its analysis job, in one
 * statement (so one implicit transaction and one round trip for a new crash). A conflict on
 * any key of crash_keys inserts nothing; a second statement then finds the crash that holds
 * the key. ON CONFLICT waits for a concurrent inserter of the same key to finish, and the
 * lookup runs with a fresh snapshot, so racing identical uploads all get the first one's id. */
#include "db/db_int.h"

#include <string.h>

#include "common/cm_alloc.h"

const char *db_crash_status_name(enum db_crash_status s)
{
    switch (s) {
    case DB_CRASH_RECEIVED: return "received";
    case DB_CRASH_ANALYZING: return "analyzing";
    case DB_CRASH_DONE: return "done";
    case DB_CRASH_FAILED: return "failed";
    case DB_CRASH_DEAD: return "dead";
    }
    return "?";
}

/* $1 project $2 crash_id $3 received_at ms (NULL: now) $4 idempotency_key $5 host_id
 * $6 dump_sha256 $7 source $8 product $9 version $10 channel $11 build_id $12 os
 * $13 os_version $14 cpu_arch $15 crash_time ms (NULL: unknown) $16 annotations json
 * $17 dump_size_bytes $18 spool_path $19 dump_format $20 clamp window ms $21 max_attempts */
static const struct db__stmt st_insert = {
    "crash_insert",
    "WITH k AS ("
    "  INSERT INTO crash_keys (project, crash_id, received_at, idempotency_key, host_id,"
    "                          dump_sha256)"
    "  VALUES ($1, $2::uuid, coalesce(triage_ts($3::bigint), date_trunc('milliseconds', now())),"
    "          $4, $5, $6)"
    "  ON CONFLICT DO NOTHING"
    "  RETURNING project, crash_id, received_at),"
    " c AS ("
    "  INSERT INTO crashes (project, crash_id, received_at, source, idempotency_key, host_id,"
    "                       product, version, channel, build_id, os, os_version, cpu_arch,"
    "                       crash_time, event_at, event_clamped, annotations, dump_sha256,"
    "                       dump_size_bytes, spool_path, dump_format)"
    "  SELECT k.project, k.crash_id, k.received_at, $7, $4, $5, $8, $9, $10, $11, $12, $13, $14,"
    "         triage_ts($15::bigint),"
    "         CASE WHEN $15::bigint IS NULL THEN k.received_at"
    "              ELSE least(k.received_at, greatest(triage_ts($15::bigint),"
    "                         k.received_at - $20::bigint * interval '1 millisecond')) END,"
    "         $15::bigint IS NOT NULL AND triage_ts($15::bigint) NOT BETWEEN"
    "             k.received_at - $20::bigint * interval '1 millisecond' AND k.received_at,"
    "         $16::jsonb, $6, $17::bigint, $18, $19"
    "  FROM k"
    "  RETURNING project, crash_id, received_at),"
    " j AS ("
    "  INSERT INTO jobs (project, crash_id, crash_received_at, max_attempts)"
    "  SELECT project, crash_id, received_at, $21::integer FROM c"
    "  RETURNING job_id)"
    " SELECT k.crash_id::text, triage_ms(k.received_at), (SELECT count(*) FROM j) FROM k",
    21,
};

/* The crash that holds one of the keys: the idempotency key first, then the crash id (a
 * retried insert), then the content. */
static const struct db__stmt st_existing = {
    "crash_existing",
    "SELECT crash_id::text, triage_ms(received_at) FROM crash_keys"
    " WHERE project = $1 AND (idempotency_key = $2 OR crash_id = $3::uuid"
    "                         OR (host_id = $4 AND dump_sha256 = $5))"
    " ORDER BY (idempotency_key = $2) IS TRUE DESC, (crash_id = $3::uuid) DESC LIMIT 1",
    5,
};

static bool is_sha256_hex(const char *s)
{
    if (!s || strlen(s) != DB_SHA256_HEX)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* The annotations as one JSON object; a repeated key keeps its last value (jsonb does). */
static enum cm_code annotations_json(const struct db_crash_new *c, struct cm_arena *arena,
                                     const char **out, struct cm_err *err)
{
    struct cm_buf b;
    cm_buf_init(&b, 0);
    cm_buf_append(&b, "{", 1, NULL);
    for (size_t i = 0; i < c->annotation_count; i++) {
        const char *k = db__utf8_clean(arena, c->annotations[i].key ? c->annotations[i].key : "");
        const char *v = db__utf8_clean(arena, c->annotations[i].value ? c->annotations[i].value
                                                                     : "");
        if (!k || !v)
            break;
        if (i)
            cm_buf_append(&b, ",", 1, NULL);
        db__json_str(&b, k);
        cm_buf_append(&b, ":", 1, NULL);
        db__json_str(&b, v);
    }
    enum cm_code rc = cm_buf_append(&b, "}", 1, err);
    if (!rc)
        *out = cm_arena_strndup(arena, (const char *)b.data, b.len);
    cm_buf_free(&b);
    if (!rc && !*out)
        rc = cm_fail(err, CM_E_NOMEM, "crash insert: out of memory for annotations");
    return rc;
}

enum cm_code db_crash_insert(struct db_conn *db, const struct db_crash_new *c,
                             struct db_crash_ref *out, struct cm_err *err)
{
    *out = (struct db_crash_ref){ 0 };
    if (!db__is_uuid(c->crash_id))
        return cm_fail(err, CM_E_USAGE, "crash insert: crash id is not a UUID");
    if (!is_sha256_hex(c->dump_sha256))
        return cm_fail(err, CM_E_USAGE, "crash insert: dump sha256 is not 64 lower-case hex "
                       "digits");
    if (!c->spool_path || !*c->spool_path)
        return cm_fail(err, CM_E_USAGE, "crash insert: no spool path");
    if (strlen(db__project(c->project)) > DB_PROJECT_MAX)
        return cm_fail(err, CM_E_USAGE, "crash insert: project name longer than %d bytes",
                       DB_PROJECT_MAX);

    struct db__args a;
    db__args_init(&a);
    PGresult *res = NULL;
    const char *json = NULL;
    enum cm_code rc = annotations_json(c, &a.arena, &json, err);
    if (rc)
        goto out;
    db__arg_project(&a, c->project);
    db__arg_str(&a, c->crash_id);
    if (c->received_at_ms)
        db__arg_i64(&a, c->received_at_ms);
    else
        db__arg_null(&a);
    db__arg_str_or_null(&a, c->idempotency_key);
    db__arg_str_or_null(&a, c->host_id);
    db__arg_str(&a, c->dump_sha256);
    db__arg_str(&a, c->source && *c->source ? c->source : "upload");
    db__arg_str_or_null(&a, c->product);
    db__arg_str_or_null(&a, c->version);
    db__arg_str_or_null(&a, c->channel);
    db__arg_str_or_null(&a, c->build_id);
    db__arg_str_or_null(&a, c->os);
    db__arg_str_or_null(&a, c->os_version);
    db__arg_str_or_null(&a, c->cpu_arch);
    if (c->crash_time_ms)
        db__arg_i64(&a, c->crash_time_ms);
    else
        db__arg_null(&a);
    db__arg_str(&a, json);
    db__arg_u64(&a, c->dump_size_bytes);
    db__arg_str(&a, c->spool_path);
    db__arg_str(&a, c->dump_format && *c->dump_format ? c->dump_format : "unknown");
    db__arg_i64(&a, db->opt.event_clamp_ms);
    db__arg_i64(&a, c->max_attempts > 0 ? c->max_attempts : 3);
    if (a.failed) {
        rc = cm_fail(err, CM_E_NOMEM, "crash insert: out of memory for parameters");
        goto out;
    }
    rc = db__exec(db, &st_insert, a.v, &res, "crash insert", err);
    if (rc)
        goto out;
    if (PQntuples(res) == 1) {
        db__copy(res, 0, 0, out->crash_id, sizeof out->crash_id);
        out->received_at_ms = db__get_i64(res, 0, 1);
        goto out;
    }
    /* A key was taken: find the crash that holds it. */
    PQclear(res);
    res = NULL;
    const char *v[] = { a.v[0], a.v[3], a.v[1], a.v[4], a.v[5] };
    rc = db__exec(db, &st_existing, v, &res, "crash lookup", err);
    if (rc)
        goto out;
    if (PQntuples(res) != 1) {
        /* The holder vanished between the two statements (deleted): let the caller retry. */
        rc = cm_fail(err, CM_E_BUSY, "crash insert: conflicting crash not found; retry");
        goto out;
    }
    db__copy(res, 0, 0, out->crash_id, sizeof out->crash_id);
    out->received_at_ms = db__get_i64(res, 0, 1);
    out->duplicate = true;
out:
    PQclear(res);
    db__args_free(&a);
    return rc;
}
