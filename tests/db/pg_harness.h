/* pg_harness.h -- a throwaway PostgreSQL cluster for test programs: started in the build tree
 * through db_cluster (initdb, pg_ctl; as the postgres user when the tests run as root), stopped
 * and removed at exit, and also when the test program dies (a guardian process watches it).
 * A missing or broken PostgreSQL fails the test; it never skips. */
#ifndef TRIAGE_PG_HARNESS_H
#define TRIAGE_PG_HARNESS_H

#include "db/db.h"

/* Starts the cluster once per process (later calls return the same) and returns its libpq
 * connection string. name labels the folder (build/pg-harness/<name>-<pid>). On failure
 * returns NULL and writes the reason to why (size n). */
const char *pgh_start(const char *name, char *why, size_t n);
/* The running cluster (NULL before pgh_start). */
struct db_cluster *pgh_cluster(void);
const char *pgh_conninfo(void);
/* Stops the cluster and removes its folder (also registered with atexit). */
void pgh_stop(void);
/* A connection to the cluster with default options; fails the current test if it cannot. */
struct db_conn *pgh_connect(void);

#endif
