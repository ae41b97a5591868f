/* det_sim.h -- simulated crashes for the detector's tests, fed through the production path:
 * db_crash_insert (as ingest records an upload), db_jobs_claim and db_result_write (as the
 * analyzer's workers count a result). Nothing is written to the rollups or incidents by hand. */
#ifndef TRIAGE_DET_SIM_H
#define TRIAGE_DET_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "db/db.h"

#define SIM_MAX_MODULES 8

struct sim_crash {
    char host[40];
    char bucket[40];
    char signature[96];
    char fault_module[40], fault_version[24];
    char modules[SIM_MAX_MODULES][48]; /* "name@version" loaded in the process */
    size_t module_count;
    char os_version[24];  /* os is "Windows" */
    char gpu[24];         /* annotation "gpu" */
    int64_t crash_ms;     /* client clock; 0: unknown */
    int64_t received_ms;  /* when ingest made it durable */
    char crash_id[DB_UUID_LEN + 1]; /* set by sim_feed */
};

struct sim {
    struct sim_crash *c;
    size_t n, cap;
};

/* A new crash at the end of s (the test fails when memory runs out). */
struct sim_crash *sim_add(struct sim *s);
void sim_add_module(struct sim_crash *c, const char *name_at_version);
void sim_free(struct sim *s);

/* Records every crash of s (through ins, whose options decide the clamp window), then claims
 * and analyzes all waiting jobs through db, batch by batch, until none is left. The test fails
 * on any error. */
void sim_feed(struct db_conn *ins, struct db_conn *db, struct sim *s);

/* A small deterministic generator (xorshift64*). */
uint64_t sim_rand(uint64_t *state);

#endif
