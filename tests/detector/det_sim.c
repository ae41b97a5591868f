/* det_sim.c -- see det_sim.h. */
#include "tests/detector/det_sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/th.h"

struct sim_crash *sim_add(struct sim *s)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        struct sim_crash *c = realloc(s->c, cap * sizeof *c);
        if (!c)
            fail_msg("sim: out of memory");
        s->c = c;
        s->cap = cap;
    }
    struct sim_crash *c = &s->c[s->n++];
    memset(c, 0, sizeof *c);
    return c;
}

void sim_add_module(struct sim_crash *c, const char *name_at_version)
{
    if (c->module_count == SIM_MAX_MODULES)
        fail_msg("sim: too many modules");
    snprintf(c->modules[c->module_count++], sizeof c->modules[0], "%s", name_at_version);
}

void sim_free(struct sim *s)
{
    free(s->c);
    *s = (struct sim){ 0 };
}

uint64_t sim_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void record(struct db_conn *ins, struct sim_crash *c, size_t index)
{
    struct cm_err err = { 0 };
    if (db_uuid_v4(c->crash_id, &err))
        fail_msg("uuid: %s", err.msg);
    char sha[DB_SHA256_HEX + 1], key[48];
    snprintf(sha, sizeof sha, "%064zx", index + 1);
    snprintf(key, sizeof key, "sim-%s", c->crash_id);
    struct db_kv ann[] = { { "gpu", c->gpu } };
    struct db_crash_new n = {
        .crash_id = c->crash_id, .idempotency_key = key, .host_id = c->host,
        .product = "app", .version = "3.1", .os = "Windows", .os_version = c->os_version,
        .crash_time_ms = c->crash_ms, .received_at_ms = c->received_ms, .annotations = ann,
        .annotation_count = c->gpu[0] ? 1 : 0, .dump_sha256 = sha, .dump_size_bytes = 4096,
        .spool_path = "/spool/sim.zst", .dump_format = "minidump",
    };
    struct db_crash_ref ref;
    if (db_crash_insert(ins, &n, &ref, &err) != CM_E_OK)
        fail_msg("crash insert: %s", err.msg);
    if (ref.duplicate)
        fail_msg("sim crash %zu recorded twice", index);
}

/* The plan entry of a claimed job: jobs come back roughly in insertion order, so the search
 * starts after the last match. */
static struct sim_crash *find(struct sim *s, const char *crash_id, size_t *hint)
{
    for (size_t k = 0; k < s->n; k++) {
        size_t i = (*hint + k) % s->n;
        if (strcmp(s->c[i].crash_id, crash_id) == 0) {
            *hint = i + 1;
            return &s->c[i];
        }
    }
    fail_msg("claimed a crash the simulation did not make: %s", crash_id);
    return NULL;
}

void sim_feed(struct db_conn *ins, struct db_conn *db, struct sim *s)
{
    for (size_t i = 0; i < s->n; i++)
        record(ins, &s->c[i], i);
    size_t hint = 0;
    enum { BATCH = 64 };
    for (;;) {
        struct db_job *jobs = NULL;
        size_t n = 0;
        struct cm_err err = { 0 };
        if (db_jobs_claim(db, "sim-worker", BATCH, 600000, &jobs, &n, &err) != CM_E_OK)
            fail_msg("claim: %s", err.msg);
        if (n == 0)
            break;
        struct db_result res[BATCH];
        struct db_module mods[BATCH][SIM_MAX_MODULES];
        char names[BATCH][SIM_MAX_MODULES][48];
        for (size_t j = 0; j < n; j++) {
            struct sim_crash *c = find(s, jobs[j].crash_id, &hint);
            for (size_t m = 0; m < c->module_count; m++) {
                snprintf(names[j][m], sizeof names[j][m], "%s", c->modules[m]);
                char *at = strchr(names[j][m], '@');
                if (at)
                    *at = 0;
                mods[j][m] = (struct db_module){ .name = names[j][m], .version = at ? at + 1 : NULL,
                                                 .base = 0x10000000u * (m + 1), .size = 0x10000,
                                                 .is_main = m == 0 };
            }
            res[j] = (struct db_result){
                .job = &jobs[j], .signature = c->signature, .bucket_key = c->bucket,
                .crash_kind = "EXCEPTION_ACCESS_VIOLATION_READ", .fault_module = c->fault_module,
                .fault_module_version = c->fault_version, .fault_point = c->fault_module,
                .processed_json = "{}", .modules = mods[j], .module_count = c->module_count,
            };
        }
        struct db_result_report rep;
        if (db_result_write(db, res, n, &rep, &err) != CM_E_OK)
            fail_msg("result write: %s", err.msg);
        if (rep.written != n)
            fail_msg("result write: %zu of %zu written", rep.written, n);
        db_jobs_free(jobs, n);
    }
}
