/* ing_drain.c -- crashes acknowledged while the database was unreachable. Each waits in the
 * spool as a sidecar (pending/<crash-id>.json: the crash's metadata, JSON via jansson) next to
 * its dump. An in-memory index of them lets a repeat of a pending crash (same idempotency key,
 * or same project, host and dump) get the same crash id. The drainer thread records them when
 * the recorder works again (the record call is idempotent, so a sidecar recorded twice after a
 * crash of the collector counts once), refreshes the queue depth and the spool's free space, and
 * flips the server's db_up flag that makes workers skip the recorder while it is down. */
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "common/cm_alloc.h"
#include "common/cm_log.h"
#include "ingest/ing_int.h"

/* Passes a pending crash may be refused by a working database before it is set aside. */
#define MAX_REFUSALS 5

/* ---- sidecar JSON ---- */

enum cm_code ing__crash_to_json(const struct ing_crash *c, struct cm_buf *out, struct cm_err *err)
{
    enum cm_code rc = CM_E_OK;
    json_t *ann = json_array();
    json_t *o = json_pack(
        "{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:I, "
        "s:s, s:s, s:s}",
        "v", 1, "crash_id", c->crash_id, "project", c->project, "idempotency_key",
        c->idempotency_key, "host_id", c->host_id, "product", c->product, "version", c->version,
        "channel", c->channel, "build_id", c->build_id, "os", c->os, "os_version", c->os_version,
        "cpu_arch", c->cpu_arch, "crash_time_unix_ms", (json_int_t)c->crash_time_unix_ms,
        "received_unix_ms", (json_int_t)c->received_unix_ms, "dump_sha256", c->dump_sha256,
        "dump_bytes", (json_int_t)c->dump_bytes, "stored_bytes", (json_int_t)c->stored_bytes,
        "dump_kind", c->dump_kind, "spool_path", c->spool_path, "endpoint", c->endpoint);
    char *text = NULL;
    if (!o || !ann) {
        rc = cm_fail(err, CM_E_NOMEM, "cannot build sidecar JSON");
        goto out;
    }
    for (size_t i = 0; i < c->annotation_count; i++) {
        json_t *pair = json_pack("[s,s]", c->annotations[i].key, c->annotations[i].value);
        if (!pair || json_array_append_new(ann, pair)) {
            rc = cm_fail(err, CM_E_NOMEM, "cannot build sidecar JSON");
            goto out;
        }
    }
    if (json_object_set(o, "annotations", ann) ||
        !(text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII))) {
        rc = cm_fail(err, CM_E_NOMEM, "cannot serialise sidecar JSON");
        goto out;
    }
    rc = cm_buf_append(out, text, strlen(text), err);
out:
    free(text); /* jansson's allocator */
    json_decref(ann);
    json_decref(o);
    return rc;
}

static const char *jstr(json_t *o, const char *key, struct cm_arena *a, bool *ok)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) {
        *ok = false;
        return "";
    }
    const char *s = cm_arena_strndup(a, json_string_value(v), json_string_length(v));
    if (!s)
        *ok = false;
    return s ? s : "";
}

static int64_t jint(json_t *o, const char *key, bool *ok)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) {
        *ok = false;
        return 0;
    }
    return (int64_t)json_integer_value(v);
}

static void copy_fixed(char *dst, size_t cap, const char *s, bool *ok)
{
    size_t n = strlen(s);
    if (n >= cap) {
        *ok = false;
        n = cap - 1;
    }
    memcpy(dst, s, n);
    dst[n] = 0;
}

enum cm_code ing__crash_from_json(const char *text, size_t len, struct cm_arena *a,
                                  struct ing_crash *c, struct cm_err *err)
{
    memset(c, 0, sizeof *c);
    json_error_t jerr;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        return cm_fail(err, CM_E_CORRUPT, "sidecar: not a JSON object (%s at %d)", jerr.text,
                       jerr.position);
    }
    bool fine = true;
    if (jint(o, "v", &fine) != 1)
        fine = false;
    copy_fixed(c->crash_id, sizeof c->crash_id, jstr(o, "crash_id", a, &fine), &fine);
    c->project = jstr(o, "project", a, &fine);
    c->idempotency_key = jstr(o, "idempotency_key", a, &fine);
    c->host_id = jstr(o, "host_id", a, &fine);
    c->product = jstr(o, "product", a, &fine);
    c->version = jstr(o, "version", a, &fine);
    c->channel = jstr(o, "channel", a, &fine);
    c->build_id = jstr(o, "build_id", a, &fine);
    c->os = jstr(o, "os", a, &fine);
    c->os_version = jstr(o, "os_version", a, &fine);
    c->cpu_arch = jstr(o, "cpu_arch", a, &fine);
    c->crash_time_unix_ms = jint(o, "crash_time_unix_ms", &fine);
    c->received_unix_ms = jint(o, "received_unix_ms", &fine);
    copy_fixed(c->dump_sha256, sizeof c->dump_sha256, jstr(o, "dump_sha256", a, &fine), &fine);
    c->dump_bytes = (uint64_t)jint(o, "dump_bytes", &fine);
    c->stored_bytes = (uint64_t)jint(o, "stored_bytes", &fine);
    c->dump_kind = jstr(o, "dump_kind", a, &fine);
    c->spool_path = jstr(o, "spool_path", a, &fine);
    c->endpoint = jstr(o, "endpoint", a, &fine);
    json_t *ann = json_object_get(o, "annotations");
    if (!json_is_array(ann))
        fine = false;
    size_t n = json_array_size(ann);
    struct ing_kv *kv = n ? cm_arena_calloc(a, n, sizeof *kv) : NULL;
    if (n && !kv)
        fine = false;
    for (size_t i = 0; fine && i < n; i++) {
        json_t *pair = json_array_get(ann, i);
        json_t *k = json_array_get(pair, 0), *v = json_array_get(pair, 1);
        if (json_array_size(pair) != 2 || !json_is_string(k) || !json_is_string(v)) {
            fine = false;
            break;
        }
        kv[i].key = cm_arena_strndup(a, json_string_value(k), json_string_length(k));
        kv[i].value = cm_arena_strndup(a, json_string_value(v), json_string_length(v));
        if (!kv[i].key || !kv[i].value)
            fine = false;
    }
    c->annotations = kv;
    c->annotation_count = n;
    json_decref(o);
    if (!fine || strlen(c->crash_id) != 36 || strlen(c->dump_sha256) != 64)
        return cm_fail(err, CM_E_CORRUPT, "sidecar: missing or malformed fields");
    return CM_E_OK;
}

/* ---- the pending index ---- */

struct pentry {
    char id[37];
    char *key_idem, *key_content; /* NULL when the crash has no such key */
    bool durable;
    unsigned failures; /* recorder refusals (not outages) */
    size_t idx;        /* position in ing_pending.all */
};

/* Open addressing with linear probing; each entry sits under up to three keys (its id, its
 * idempotency key, its content key). Removed keys leave a tombstone until the next rebuild. */
static char tombstone[1];

struct slot {
    char *key; /* NULL: empty; &tombstone: removed; else owned by the entry */
    struct pentry *e;
};

struct ing_pending {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct slot *slots;
    size_t cap, used; /* used counts live keys and tombstones */
    struct pentry **all;
    size_t count, all_cap;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static struct slot *lookup(struct ing_pending *p, const char *key)
{
    for (size_t i = hash(key) & (p->cap - 1);; i = (i + 1) & (p->cap - 1)) {
        if (!p->slots[i].key)
            return NULL;
        if (p->slots[i].key != tombstone && !strcmp(p->slots[i].key, key))
            return &p->slots[i];
    }
}

/* Callers have checked that key is absent. */
static void insert_raw(struct slot *slots, size_t cap, char *key, struct pentry *e)
{
    for (size_t i = hash(key) & (cap - 1);; i = (i + 1) & (cap - 1))
        if (!slots[i].key) {
            slots[i].key = key;
            slots[i].e = e;
            return;
        }
}

static size_t insert_entry(struct slot *slots, size_t cap, struct pentry *e)
{
    size_t n = 1;
    insert_raw(slots, cap, e->id, e);
    if (e->key_idem) {
        insert_raw(slots, cap, e->key_idem, e);
        n++;
    }
    if (e->key_content) {
        insert_raw(slots, cap, e->key_content, e);
        n++;
    }
    return n;
}

/* A fresh table sized for `entries` (load at most 1/2), without tombstones. */
static bool rebuild(struct ing_pending *p, size_t entries)
{
    size_t cap = 64;
    while (cap < entries * 3 * 2 + 8)
        cap *= 2;
    struct slot *slots = cm_calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    size_t used = 0;
    for (size_t i = 0; i < p->count; i++)
        used += insert_entry(slots, cap, p->all[i]);
    cm_free(p->slots);
    p->slots = slots;
    p->cap = cap;
    p->used = used;
    return true;
}

struct ing_pending *ing__pending_new(void)
{
    struct ing_pending *p = cm_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (!rebuild(p, 0)) {
        ing__pending_free(p);
        return NULL;
    }
    return p;
}

static void entry_free(struct pentry *e)
{
    if (e) {
        cm_free(e->key_idem);
        cm_free(e->key_content);
        cm_free(e);
    }
}

void ing__pending_free(struct ing_pending *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->count; i++)
        entry_free(p->all[i]);
    cm_free(p->all);
    cm_free(p->slots);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    cm_free(p);
}

/* Keys are length-prefixed so no field value can forge another key. */
static char *key_idem(const struct ing_crash *c)
{
    if (!c->idempotency_key[0])
        return NULL;
    struct cm_buf b;
    cm_buf_init(&b, 0);
    if (cm_buf_printf(&b, NULL, "i%zu:%s%zu:%s", strlen(c->project), c->project,
                      strlen(c->idempotency_key), c->idempotency_key)) {
        cm_buf_free(&b);
        return NULL;
    }
    return (char *)cm_buf_steal(&b, NULL);
}

static char *key_content(const struct ing_crash *c)
{
    if (!c->host_id[0]) /* unknown host: never deduped by content */
        return NULL;
    struct cm_buf b;
    cm_buf_init(&b, 0);
    if (cm_buf_printf(&b, NULL, "c%zu:%s%zu:%s%s", strlen(c->project), c->project,
                      strlen(c->host_id), c->host_id, c->dump_sha256)) {
        cm_buf_free(&b);
        return NULL;
    }
    return (char *)cm_buf_steal(&b, NULL);
}

/* The entry matching either key, or NULL; under p->mu. */
static struct pentry *match(struct ing_pending *p, const char *ki, const char *kc)
{
    struct slot *s = ki ? lookup(p, ki) : NULL;
    if (!s && kc)
        s = lookup(p, kc);
    return s ? s->e : NULL;
}

bool ing__pending_find(struct ing_pending *p, const struct ing_crash *c, char id_out[37])
{
    char *ki = key_idem(c), *kc = key_content(c);
    bool found = false;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct pentry *e = match(p, ki, kc);
        if (!e)
            break;
        if (e->durable) {
            memcpy(id_out, e->id, 37);
            found = true;
            break;
        }
        pthread_cond_wait(&p->cv, &p->mu); /* its sidecar is being written */
    }
    pthread_mutex_unlock(&p->mu);
    cm_free(ki);
    cm_free(kc);
    return found;
}

/* Adds e; false without memory. Under p->mu. */
static bool add_locked(struct ing_pending *p, struct pentry *e)
{
    if (p->count == p->all_cap) {
        size_t cap = p->all_cap ? p->all_cap * 2 : 64;
        struct pentry **all = cm_reallocarray(p->all, cap, sizeof *all);
        if (!all)
            return false;
        p->all = all;
        p->all_cap = cap;
    }
    e->idx = p->count;
    p->all[p->count++] = e;
    if ((p->used + 3) * 2 > p->cap) {
        if (!rebuild(p, p->count)) {
            p->count--;
            return false;
        }
    } else {
        p->used += insert_entry(p->slots, p->cap, e);
    }
    return true;
}

bool ing__pending_reserve(struct ing_pending *p, const struct ing_crash *c, char id_out[37])
{
    struct pentry *e = cm_calloc(1, sizeof *e);
    if (!e)
        return true; /* no memory for the index: proceed without dedupe, never block */
    memcpy(e->id, c->crash_id, 37);
    e->key_idem = key_idem(c);
    e->key_content = key_content(c);
    bool reserved = true;
    pthread_mutex_lock(&p->mu);
    struct pentry *other = match(p, e->key_idem, e->key_content);
    if (other) {
        memcpy(id_out, other->id, 37);
        reserved = false;
    } else if (lookup(p, e->id)) {
        /* the same crash id again (a second sidecar of one crash): already indexed */
    } else if (add_locked(p, e)) {
        e = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    entry_free(e);
    return reserved;
}

/* Removes the entry with this id; under p->mu. */
static void remove_locked(struct ing_pending *p, const char *id)
{
    struct slot *s = lookup(p, id);
    if (!s)
        return;
    struct pentry *e = s->e;
    s->key = tombstone;
    if (e->key_idem && (s = lookup(p, e->key_idem)) && s->e == e)
        s->key = tombstone;
    if (e->key_content && (s = lookup(p, e->key_content)) && s->e == e)
        s->key = tombstone;
    p->all[e->idx] = p->all[--p->count];
    p->all[e->idx]->idx = e->idx;
    entry_free(e);
    pthread_cond_broadcast(&p->cv);
}

void ing__pending_settle(struct ing_pending *p, const char *crash_id, bool ok)
{
    pthread_mutex_lock(&p->mu);
    struct slot *s = lookup(p, crash_id);
    if (s && ok)
        s->e->durable = true;
    else if (s)
        remove_locked(p, crash_id);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void ing__pending_remove(struct ing_pending *p, const char *crash_id)
{
    pthread_mutex_lock(&p->mu);
    remove_locked(p, crash_id);
    pthread_mutex_unlock(&p->mu);
}

/* Counts one refusal of a pending crash by the recorder; returns the total. */
static unsigned note_failure(struct ing_pending *p, const char *id)
{
    pthread_mutex_lock(&p->mu);
    struct slot *s = lookup(p, id);
    unsigned n = s ? ++s->e->failures : 0;
    pthread_mutex_unlock(&p->mu);
    return n;
}

uint64_t ing__pending_count(struct ing_pending *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t n = p->count;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Ids of the durable entries. */
static size_t snapshot(struct ing_pending *p, char (**ids)[37])
{
    pthread_mutex_lock(&p->mu);
    size_t n = 0;
    *ids = p->count ? cm_calloc(p->count, sizeof **ids) : NULL;
    for (size_t i = 0; *ids && i < p->count; i++)
        if (p->all[i]->durable)
            memcpy((*ids)[n++], p->all[i]->id, 37);
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* ---- the drainer ---- */

struct ing_drainer {
    struct ing_server *srv;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, kicked;
};

static void refresh_depth(struct ing_server *s)
{
    atomic_store(&s->metrics.spool_depth, ing__pending_count(s->pending));
}

/* Records one pending crash. Returns false when the recorder failed (stop this pass). */
static bool drain_one(struct ing_server *s, const char *id)
{
    char *text = NULL;
    size_t len = 0;
    struct cm_err err = { 0 };
    struct cm_arena a = { 0 };
    bool keep_going = true;
    if (ing__spool_read_pending(s->spool, id, &text, &len, &err)) {
        if (err.code == CM_E_NOTFOUND)
            ing__pending_remove(s->pending, id); /* already drained by a previous run */
        else
            cm_log(CM_LOG_ERROR, "pending crash unreadable: %s crash=%s", err.msg, id);
        goto out;
    }
    struct ing_crash c;
    if (ing__crash_from_json(text, len, &a, &c, &err) || strcmp(c.crash_id, id) != 0) {
        cm_log(CM_LOG_ERROR, "pending crash quarantined: %s crash=%s", err.msg, id);
        ing__spool_quarantine_pending(s->spool, id);
        ing__pending_remove(s->pending, id);
        goto out;
    }
    char got[37] = { 0 };
    bool dup = false;
    if (s->rec.record(s->rec.ctx, &c, got, &dup, &err)) {
        atomic_fetch_add(&s->metrics.drain_failures, 1);
        if (err.code != CM_E_BUSY) {
            /* The database answers but refuses this crash. Retry a few passes (it may be a
             * passing failure), then set the sidecar aside for an operator: never delete it. */
            unsigned n = note_failure(s->pending, id);
            cm_log(CM_LOG_ERROR, "pending crash refused: %s crash=%s attempt=%u", err.msg, id, n);
            if (n >= MAX_REFUSALS) {
                ing__spool_quarantine_pending(s->spool, id);
                ing__pending_remove(s->pending, id);
                cm_log(CM_LOG_ERROR, "pending crash quarantined in pending/bad: crash=%s", id);
            }
            goto out;
        }
        atomic_store(&s->db_up, false);
        atomic_store(&s->metrics.db_up, 0);
        cm_log(CM_LOG_WARN, "drain paused: %s pending=%llu", err.msg,
               (unsigned long long)ing__pending_count(s->pending));
        keep_going = false;
        goto out;
    }
    atomic_store(&s->db_up, true);
    atomic_store(&s->metrics.db_up, 1);
    if (dup && strcmp(got, id) != 0) /* acknowledged under id while the database knew it */
        cm_log(CM_LOG_WARN, "pending crash was a duplicate: crash=%s recorded_as=%s", id, got);
    ing__spool_drop_pending(s->spool, id);
    ing__pending_remove(s->pending, id);
    atomic_fetch_add(&s->metrics.drained, 1);
out:
    cm_arena_free(&a);
    cm_free(text);
    refresh_depth(s);
    return keep_going;
}

static void drain_pass(struct ing_server *s)
{
    atomic_store(&s->free_bytes, ing__spool_free_bytes(s->spool));
    if (!s->has_rec)
        return;
    struct cm_err err = { 0 };
    uint64_t jobs = 0;
    if (s->rec.queue_depth(s->rec.ctx, &jobs, &err) == CM_E_OK) {
        atomic_store(&s->metrics.queue_depth, jobs);
        atomic_store(&s->db_up, true);
        atomic_store(&s->metrics.db_up, 1);
    } else {
        if (atomic_exchange(&s->db_up, false))
            cm_log(CM_LOG_WARN, "database unreachable: %s", err.msg);
        atomic_store(&s->metrics.db_up, 0);
        return;
    }
    char(*ids)[37] = NULL;
    size_t n = snapshot(s->pending, &ids);
    for (size_t i = 0; i < n && !atomic_load(&s->stopping); i++)
        if (!drain_one(s, ids[i]))
            break;
    cm_free(ids);
}

static void *drainer_main(void *arg)
{
    struct ing_drainer *d = arg;
    struct ing_server *s = d->srv;
    for (;;) {
        drain_pass(s);
        pthread_mutex_lock(&d->mu);
        if (!d->stop && !d->kicked) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)s->conf.drain_interval_ms * 1000000u;
            ts.tv_sec += (time_t)(ns / 1000000000u);
            ts.tv_nsec = (long)(ns % 1000000000u);
            pthread_cond_timedwait(&d->cv, &d->mu, &ts);
        }
        bool stop = d->stop;
        d->kicked = false;
        pthread_mutex_unlock(&d->mu);
        if (stop)
            break;
    }
    return NULL;
}

enum cm_code ing__drainer_start(struct ing_server *srv, struct ing_drainer **out,
                                struct cm_err *err)
{
    *out = NULL;
    struct ing_drainer *d = cm_calloc(1, sizeof *d);
    if (!d)
        return cm_fail(err, CM_E_NOMEM, "cannot allocate drainer");
    d->srv = srv;
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* waits never follow the wall clock */
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&d->thread, NULL, drainer_main, d) != 0) {
        pthread_mutex_destroy(&d->mu);
        pthread_cond_destroy(&d->cv);
        cm_free(d);
        return cm_fail(err, CM_E_NOMEM, "cannot start drainer thread");
    }
    *out = d;
    return CM_E_OK;
}

void ing__drainer_kick(struct ing_drainer *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->kicked = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

void ing__drainer_stop(struct ing_drainer *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    cm_free(d);
}

struct recover_ctx {
    struct ing_server *srv;
    size_t loaded, bad;
};

static void recover_one(void *arg, const char *id)
{
    struct recover_ctx *r = arg;
    struct ing_server *s = r->srv;
    char *text = NULL;
    size_t len = 0;
    struct cm_err err = { 0 };
    struct cm_arena a = { 0 };
    struct ing_crash c;
    char other[37];
    if (ing__spool_read_pending(s->spool, id, &text, &len, &err) ||
        ing__crash_from_json(text, len, &a, &c, &err) || strcmp(c.crash_id, id) != 0) {
        cm_log(CM_LOG_ERROR, "pending crash quarantined: %s crash=%s", err.msg, id);
        ing__spool_quarantine_pending(s->spool, id);
        r->bad++;
    } else {
        if (!ing__pending_reserve(s->pending, &c, other)) {
            /* Two sidecars of one crash (the collector died between writing one and
             * answering): index this one by its id alone so it drains too; recording is
             * idempotent and the database counts the crash once. */
            c.idempotency_key = c.host_id = "";
            ing__pending_reserve(s->pending, &c, other);
        }
        ing__pending_settle(s->pending, id, true);
        r->loaded++;
    }
    cm_arena_free(&a);
    cm_free(text);
}

enum cm_code ing__drainer_recover(struct ing_server *srv, struct cm_err *err)
{
    struct recover_ctx r = { .srv = srv };
    enum cm_code rc = ing__spool_list_pending(srv->spool, recover_one, &r, err);
    if (rc)
        return rc;
    refresh_depth(srv);
    if (r.loaded || r.bad)
        cm_log(CM_LOG_INFO, "spool recovered: pending=%zu quarantined=%zu", r.loaded, r.bad);
    return CM_E_OK;
}
