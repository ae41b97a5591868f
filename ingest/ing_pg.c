/* ing_pg.c -- the collector's recorder over db/db.h: hands each durable upload to
 * db_crash_insert() (crash row and job in one transaction, deduplicated by idempotency key or by
 * project, host and dump SHA-256) and asks db_queue_backlog() for load shedding. A struct
 * db_conn serves one thread at a time, so connections live in a small pool: a caller takes one
 * (or opens one), uses it, and puts it back. The first connection that works applies the
 * migrations (db_migrate is safe when several processes start at once). */
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "common/cm_alloc.h"
#include "common/cm_log.h"
#include "db/db.h"
#include "ingest/ing.h"

#define POOL_MAX 64

struct ing_pg {
    char *conninfo;
    atomic_flag rolling;         /* one thread adds counted hints to the rollups at a time */
    _Atomic int64_t last_roll_ms;
    struct db_options opt;
    int64_t backlog_limit;
    pthread_mutex_t mu;
    struct db_conn *idle[POOL_MAX];
    size_t nidle;
    atomic_bool migrated;
};

enum cm_code ing_pg_open(const char *conninfo, const struct ing_conf *conf, struct ing_pg **out,
                         struct cm_err *err)
{
    *out = NULL;
    struct ing_pg *pg = cm_calloc(1, sizeof *pg);
    if (!pg || !(pg->conninfo = cm_strdup(conninfo ? conninfo : ""))) {
        cm_free(pg);
        return cm_fail(err, CM_E_NOMEM, "cannot allocate database pool");
    }
    db_options_default(&pg->opt);
    int ms = (int)conf->db_timeout_ms;
    pg->opt.statement_timeout_ms = ms;
    pg->opt.lock_timeout_ms = ms;
    pg->opt.client_grace_ms = ms / 5 > 200 ? ms / 5 : 200;
    pg->opt.connect_timeout_s = ms >= 2000 ? ms / 1000 : 2; /* libpq's minimum is 2 s */
    pg->opt.application_name = "triage-ingest";
    pg->opt.event_clamp_ms = (int64_t)conf->event_clamp_s * 1000;
    pg->backlog_limit = (int64_t)conf->queue_high_water + 1;
    atomic_flag_clear(&pg->rolling);
    pthread_mutex_init(&pg->mu, NULL);
    *out = pg;
    return CM_E_OK;
}

void ing_pg_close(struct ing_pg *pg)
{
    if (!pg)
        return;
    for (size_t i = 0; i < pg->nidle; i++)
        db_close(pg->idle[i]);
    pthread_mutex_destroy(&pg->mu);
    cm_free(pg->conninfo);
    cm_free(pg);
}

static enum cm_code take(struct ing_pg *pg, struct db_conn **out, struct cm_err *err)
{
    *out = NULL;
    pthread_mutex_lock(&pg->mu);
    if (pg->nidle)
        *out = pg->idle[--pg->nidle];
    pthread_mutex_unlock(&pg->mu);
    enum cm_code rc;
    if (!*out && (rc = db_open(pg->conninfo, &pg->opt, out, err)))
        return rc;
    if (!atomic_load(&pg->migrated)) {
        struct db_migrate_report rep = { 0 };
        if ((rc = db_migrate(*out, &rep, err))) {
            db_close(*out);
            *out = NULL;
            return rc;
        }
        if (!atomic_exchange(&pg->migrated, true) && rep.applied)
            cm_log(CM_LOG_INFO, "database migrated: applied=%d schema_version=%d", rep.applied,
                   rep.schema_version);
    }
    return CM_E_OK;
}

static void give(struct ing_pg *pg, struct db_conn *db)
{
    if (!db)
        return;
    pthread_mutex_lock(&pg->mu);
    if (pg->nidle < POOL_MAX) {
        pg->idle[pg->nidle++] = db;
        db = NULL;
    }
    pthread_mutex_unlock(&pg->mu);
    db_close(db);
}

static const char *format_name(const char *kind)
{
    if (!strcmp(kind, "minidump"))
        return "minidump";
    if (!strcmp(kind, "elfcore"))
        return "elf_core";
    if (!strcmp(kind, "kernel"))
        return "windows_kernel";
    return "unknown";
}

static enum cm_code record(void *ctx, const struct ing_crash *c, char id_out[37], bool *duplicate,
                           struct cm_err *err)
{
    struct ing_pg *pg = ctx;
    struct db_conn *db = NULL;
    struct db_kv *kv = NULL;
    enum cm_code rc = take(pg, &db, err);
    if (rc)
        goto out;
    if (c->annotation_count && !(kv = cm_calloc(c->annotation_count, sizeof *kv))) {
        rc = cm_fail(err, CM_E_NOMEM, "cannot allocate %zu annotations", c->annotation_count);
        goto out;
    }
    for (size_t i = 0; i < c->annotation_count; i++)
        kv[i] = (struct db_kv){ c->annotations[i].key, c->annotations[i].value };
    struct db_crash_new n = {
        .project = c->project,
        .crash_id = c->crash_id,
        .idempotency_key = c->idempotency_key,
        .host_id = c->host_id,
        .product = c->product,
        .version = c->version,
        .channel = c->channel,
        .build_id = c->build_id,
        .os = c->os,
        .os_version = c->os_version,
        .cpu_arch = c->cpu_arch,
        .crash_time_ms = c->crash_time_unix_ms,
        .received_at_ms = c->received_unix_ms,
        .annotations = kv,
        .annotation_count = c->annotation_count,
        .dump_sha256 = c->dump_sha256,
        .dump_size_bytes = c->dump_bytes,
        .spool_path = c->spool_path,
        .dump_format = format_name(c->dump_kind),
        .source = !strcmp(c->endpoint, "submit") ? "submit" : "upload",
    };
    struct db_crash_ref ref = { 0 };
    if ((rc = db_crash_insert(db, &n, &ref, err)))
        goto out;
    memcpy(id_out, ref.crash_id, 37);
    *duplicate = ref.duplicate;
    if (ref.duplicate) { /* the dump a hint was asked for (same idempotency key): attach it */
        struct db_hint_dump d = { .project = c->project, .crash_id = ref.crash_id,
                                  .dump_sha256 = c->dump_sha256, .spool_path = c->spool_path,
                                  .dump_format = n.dump_format,
                                  .dump_size_bytes = c->dump_bytes };
        bool attached = false;
        if ((rc = db_hint_attach(db, &d, &attached, err)))
            goto out;
        *duplicate = !attached;
    }
out:
    cm_free(kv);
    give(pg, db);
    return rc;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Adds the counted hints to their buckets and rollups (db_hint_rollup) on db, at most
 * `batches` batches, unless another thread is at it or did it less than every_ms ago. Failures
 * are left for the next call. */
static void roll(struct ing_pg *pg, struct db_conn *db, int64_t every_ms, int batches)
{
    int64_t now = mono_ms();
    if (now - atomic_load(&pg->last_roll_ms) < every_ms || atomic_flag_test_and_set(&pg->rolling))
        return;
    size_t added = 0;
    struct cm_err err = { 0 };
    for (int i = 0; i < batches; i++)
        if (db_hint_rollup(db, 2000, &added, &err) || added < 2000)
            break;
    if (err.code)
        cm_log(CM_LOG_WARN, "counted hints not yet added to the rollups: %s", err.msg);
    atomic_store(&pg->last_roll_ms, mono_ms());
    atomic_flag_clear(&pg->rolling);
}

static enum cm_code queue_depth(void *ctx, uint64_t *jobs, struct cm_err *err)
{
    struct ing_pg *pg = ctx;
    struct db_conn *db = NULL;
    int64_t n = 0;
    enum cm_code rc = take(pg, &db, err);
    if (!rc) /* the drainer calls this every drain_interval_ms: the tail of the counted hints */
        roll(pg, db, 0, 100);
    if (!rc)
        rc = db_queue_backlog(db, pg->backlog_limit, &n, err);
    give(pg, db);
    *jobs = n > 0 ? (uint64_t)n : 0;
    return rc;
}

/* Progressive collection: one call decides and records the hint (db_hint_record). */
static enum cm_code hint(void *ctx, const struct ing_hint *h, struct ing_hint_decision *d,
                         struct cm_err *err)
{
    struct ing_pg *pg = ctx;
    struct db_conn *db = NULL;
    struct db_kv *kv = NULL;
    memset(d, 0, sizeof *d);
    enum cm_code rc = take(pg, &db, err);
    if (rc)
        goto out;
    if (h->annotation_count && !(kv = cm_calloc(h->annotation_count, sizeof *kv))) {
        rc = cm_fail(err, CM_E_NOMEM, "cannot allocate %zu annotations", h->annotation_count);
        goto out;
    }
    for (size_t i = 0; i < h->annotation_count; i++)
        kv[i] = (struct db_kv){ h->annotations[i].key, h->annotations[i].value };
    struct db_hint dh = {
        .project = h->project,
        .crash_id = h->crash_id,
        .idempotency_key = h->idempotency_key,
        .host_id = h->host_id,
        .product = h->product,
        .version = h->version,
        .channel = h->channel,
        .build_id = h->build_id,
        .os = h->os,
        .os_version = h->os_version,
        .cpu_arch = h->cpu_arch,
        .crash_time_ms = h->crash_time_unix_ms,
        .annotations = kv,
        .annotation_count = h->annotation_count,
        .fault_key = h->fault_key,
        .fault_module = h->fault_module,
        .fault_module_version = h->fault_module_version,
        .dump_format = h->dump_kind[0] ? format_name(h->dump_kind) : "unknown",
        .first_k = (int64_t)h->first_k,
        .sample_m = (int64_t)h->sample_m,
    };
    struct db_hint_reply r;
    if ((rc = db_hint_record(db, &dh, &r, err)))
        goto out;
    if (r.counted && !r.duplicate)
        roll(pg, db, 50, 1); /* under a flood: every 50 ms, one batch */
    memcpy(d->crash_id, r.crash_id, sizeof d->crash_id);
    d->counted = r.counted;
    d->want_dump = r.want_dump;
    d->duplicate = r.duplicate;
    snprintf(d->reason, sizeof d->reason, "%s", r.reason);
    snprintf(d->bucket, sizeof d->bucket, "%s", r.bucket_key);
out:
    cm_free(kv);
    give(pg, db);
    return rc;
}

void ing_pg_recorder(struct ing_pg *pg, struct ing_recorder *rec)
{
    *rec = (struct ing_recorder){ .ctx = pg, .record = record, .queue_depth = queue_depth,
                                  .hint = hint };
}
