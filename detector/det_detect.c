/* det_detect.c -- one detection pass over a project (docs/incidents.md):
 *  1. judge every fault module + version and every bucket with crashes in the recent window
 *     against its baseline (det_judge);
 *  2. group the spikes by what they share, the fault module + version (a bucket without one
 *     is its own group), and open or extend one incident per group;
 *  3. for every open incident: a group that did not spike in this pass is judged against the
 *     baseline before its onset (so a long incident does not become its own baseline), and
 *     closes once it has not been hot for quiet_ms; refresh its numbers, recompute its
 *     correlations when due, and announce it when it opened, changed or closed. */
#include <stdio.h>
#include <string.h>

#include "common/cm_alloc.h"
#include "common/cm_log.h"
#include "detector/det_int.h"

static int64_t floor_minute(int64_t ms) { return ms - ((ms % 60000) + 60000) % 60000; }

/* What spiked in this pass, grouped by incident key. Rates own the strings. */
struct group {
    const char *fault_module, *version, *bucket; /* module + version, or a bucket */
    bool module_level;
    double score, baseline_per_hour;
    int64_t first_seen_ms;
    const char **buckets; /* buckets that spiked on their own */
    size_t nbuckets;
    int64_t id;
    bool opened;
};

struct pass {
    struct db_conn *db;
    const struct det_conf *c;
    const char *project;
    int64_t now, rfrom, rto, bfrom, bto; /* windows, ms */
    struct det_report *rep;
    struct group *groups;
    size_t ngroups;
};

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static struct group *group_for(struct pass *p, const char *module, const char *version,
                               const char *bucket, struct cm_err *err)
{
    for (size_t i = 0; i < p->ngroups; i++) {
        struct group *g = &p->groups[i];
        if (module ? same(g->fault_module, module) && same(g->version, version)
                   : !g->fault_module && same(g->bucket, bucket))
            return g;
    }
    struct group *n = cm_reallocarray(p->groups, p->ngroups + 1, sizeof *n);
    if (!n) {
        cm_fail(err, CM_E_NOMEM, "detector: out of memory for spike groups");
        return NULL;
    }
    p->groups = n;
    struct group *g = &p->groups[p->ngroups++];
    *g = (struct group){ .fault_module = module, .version = module ? version : NULL,
                         .bucket = module ? NULL : bucket };
    return g;
}

static enum cm_code add_bucket(struct group *g, const char *bucket, struct cm_err *err)
{
    const char **n = cm_reallocarray(g->buckets, g->nbuckets + 1, sizeof *n);
    if (!n)
        return cm_fail(err, CM_E_NOMEM, "detector: out of memory for spiking buckets");
    g->buckets = n;
    g->buckets[g->nbuckets++] = bucket;
    return CM_E_OK;
}

static void note_spike(struct group *g, const struct db_rate *r, const struct det_verdict *v,
                       int64_t baseline_ms)
{
    bool first = g->score == 0;
    if (v->score > g->score)
        g->score = v->score;
    /* The module's own rate describes a module group; a bucket's only until the module's
     * shows up. */
    if (first || !r->bucket_key)
        g->baseline_per_hour = (double)r->baseline_crashes * 3600000.0 / (double)baseline_ms;
    if (r->first_seen_ms && (!g->first_seen_ms || r->first_seen_ms < g->first_seen_ms))
        g->first_seen_ms = r->first_seen_ms;
}

/* Steps 1 and 2 for one level. */
static enum cm_code judge_level(struct pass *p, enum db_rate_level level, struct db_rate **rates,
                                size_t *nrates, struct cm_err *err)
{
    struct db_rate_query q = { .project = p->project, .level = level,
                               .recent_from_ms = p->rfrom, .recent_to_ms = p->rto,
                               .baseline_from_ms = p->bfrom, .baseline_to_ms = p->bto };
    enum cm_code rc = db_rates(p->db, &q, rates, nrates, err);
    for (size_t i = 0; !rc && i < *nrates; i++) {
        const struct db_rate *r = &(*rates)[i];
        struct det_verdict v;
        det_judge(p->c, r->recent_crashes, r->recent_hosts, r->baseline_crashes,
                  p->bto - p->bfrom, &v);
        if (p->rep)
            p->rep->keys++;
        if (!v.spike)
            continue;
        if (p->rep)
            p->rep->spikes++;
        struct group *g = group_for(p, r->fault_module, r->fault_module_version, r->bucket_key,
                                    err);
        if (!g)
            return CM_E_NOMEM;
        note_spike(g, r, &v, p->bto - p->bfrom);
        if (level == DB_RATE_MODULE)
            g->module_level = true;
        else
            rc = add_bucket(g, r->bucket_key, err);
        cm_log(CM_LOG_DEBUG, "spike level=%s score=%.1f expected=%.2f crashes=%lld hosts=%lld",
               level == DB_RATE_MODULE ? "module" : "bucket", v.score, v.expected,
               (long long)r->recent_crashes, (long long)r->recent_hosts);
    }
    return rc;
}

static enum cm_code open_groups(struct pass *p, struct cm_err *err)
{
    for (size_t i = 0; i < p->ngroups; i++) {
        struct group *g = &p->groups[i];
        struct db_incident_key k = { .project = p->project, .fault_module = g->fault_module,
                                     .fault_module_version = g->version,
                                     .bucket_key = g->bucket };
        struct db_incident_spike s = { .now_ms = p->now, .onset_ms = p->rfrom,
                                       .module_level = g->module_level,
                                       .baseline_per_hour = g->baseline_per_hour,
                                       .score = g->score, .first_seen_ms = g->first_seen_ms };
        enum cm_code rc = db_incident_spike(p->db, &k, &s, &g->id, &g->opened, err);
        if (rc)
            return rc;
    }
    return CM_E_OK;
}

static struct group *group_of(struct pass *p, int64_t id)
{
    for (size_t i = 0; i < p->ngroups; i++)
        if (p->groups[i].id == id)
            return &p->groups[i];
    return NULL;
}

/* An open incident that did not spike in this pass: is it still above the baseline it had
 * before its onset? */
static enum cm_code still_hot(struct pass *p, const struct db_incident *x, bool *hot,
                              struct cm_err *err)
{
    *hot = false;
    int64_t onset = floor_minute(x->onset_ms);
    struct db_rate_query q = { .project = p->project, .recent_from_ms = p->rfrom,
                               .recent_to_ms = p->rto,
                               .baseline_from_ms = floor_minute(onset - p->c->baseline_ms),
                               .baseline_to_ms = onset };
    struct db_incident *full = NULL;
    const char **members = NULL;
    enum cm_code rc = CM_E_OK;
    if (strcmp(x->kind, "module") == 0) {
        q.level = DB_RATE_MODULE;
        q.fault_module = x->fault_module;
        q.fault_module_version = x->fault_module_version;
    } else {
        q.level = DB_RATE_BUCKET;
        rc = db_incident_get(p->db, p->project, x->id, 0, &full, err);
        if (!rc && full->buckets_len &&
            !(members = cm_calloc(full->buckets_len, sizeof *members)))
            rc = cm_fail(err, CM_E_NOMEM, "detector: out of memory");
        for (size_t i = 0; !rc && i < full->buckets_len; i++)
            if (full->buckets[i].spiked_at_ms)
                members[q.bucket_key_count++] = full->buckets[i].bucket_key;
        q.bucket_keys = members;
    }
    struct db_rate *r = NULL;
    size_t n = 0;
    if (!rc && (q.level == DB_RATE_MODULE || q.bucket_key_count))
        rc = db_rates(p->db, &q, &r, &n, err);
    int64_t recent = 0, hosts = 0, base = 0;
    for (size_t i = 0; i < n; i++) {
        recent += r[i].recent_crashes;
        hosts += r[i].recent_hosts;
        base += r[i].baseline_crashes;
    }
    if (!rc && n) {
        struct det_verdict v;
        det_judge(p->c, recent, hosts, base, q.baseline_to_ms - q.baseline_from_ms, &v);
        *hot = v.hot;
    }
    db_rates_free(r, n);
    cm_free(members);
    db_incidents_free(full, full ? 1 : 0);
    return rc;
}

/* Step 3 for one open incident. */
static enum cm_code follow(struct pass *p, const struct db_incident *listed, struct cm_err *err)
{
    struct group *g = group_of(p, listed->id);
    bool closing = false;
    enum cm_code rc = CM_E_OK;
    if (!g) {
        bool hot;
        rc = still_hot(p, listed, &hot, err);
        if (rc)
            return rc;
        if (hot) {
            struct db_incident_key k = { .project = p->project,
                                         .fault_module = listed->fault_module,
                                         .fault_module_version = listed->fault_module_version,
                                         .bucket_key = listed->bucket_key };
            struct db_incident_spike s = { .now_ms = p->now, .onset_ms = listed->onset_ms };
            int64_t id;
            rc = db_incident_spike(p->db, &k, &s, &id, NULL, err);
        } else {
            closing = p->now - listed->last_spike_ms >= p->c->quiet_ms;
        }
    }
    struct db_incident_refresh r = { .now_ms = p->now, .end_ms = p->rto,
                                     .context_ms = p->c->context_ms,
                                     .max_points = p->c->series_points,
                                     .spiking_buckets = g ? g->buckets : NULL,
                                     .spiking_count = g ? g->nbuckets : 0 };
    if (!rc)
        rc = db_incident_refresh(p->db, p->project, listed->id, &r, err);
    if (rc)
        return rc;
    return det__conclude(p->db, p->c, p->project, listed->id, p->now, p->rto, closing,
                         g && g->opened, p->rep, err);
}

enum cm_code det_pass(struct db_conn *db, const struct det_conf *c, const char *project,
                      int64_t now_ms, struct det_report *rep, struct cm_err *err)
{
    struct pass p = { .db = db, .c = c, .project = project, .now = now_ms, .rep = rep };
    /* The recent window ends after the current (partial) minute. */
    p.rto = floor_minute(now_ms) + 60000;
    int64_t recent = c->recent_ms / 60000 > 0 ? c->recent_ms / 60000 * 60000 : 60000;
    p.rfrom = p.rto - recent;
    p.bto = p.rfrom;
    p.bfrom = floor_minute(p.bto - c->baseline_ms);

    struct db_rate *mods = NULL, *bkts = NULL;
    size_t nmods = 0, nbkts = 0;
    struct db_incident *open = NULL;
    size_t nopen = 0;
    enum cm_code rc = judge_level(&p, DB_RATE_MODULE, &mods, &nmods, err);
    if (!rc)
        rc = judge_level(&p, DB_RATE_BUCKET, &bkts, &nbkts, err);
    if (!rc)
        rc = open_groups(&p, err);
    if (!rc)
        rc = db_incidents_list(db, project, true, 10000, &open, &nopen, err);
    for (size_t i = 0; !rc && i < nopen; i++)
        rc = follow(&p, &open[i], err);
    db_incidents_free(open, nopen);
    for (size_t i = 0; i < p.ngroups; i++)
        cm_free(p.groups[i].buckets);
    cm_free(p.groups);
    db_rates_free(mods, nmods);
    db_rates_free(bkts, nbkts);
    return rc;
}
