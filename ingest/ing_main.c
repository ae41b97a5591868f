/* ing_main.c -- triage-ingest: the collector daemon. Reads the configuration (defaults, then
 * --config FILE, then flags), connects the recorder to PostgreSQL when a database is configured
 * (db_url, else $DATABASE_URL), serves until SIGTERM or SIGINT, then stops accepting, lets
 * in-flight requests finish (shutdown_grace_ms) and exits 0. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cm_log.h"
#include "ingest/ing.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: triage-ingest [--config FILE] [--KEY VALUE | --KEY=VALUE]...\n\n"
               "keys (see ingest/triage-ingest.conf.example):\n");
    const char *type, *def, *help;
    const char *name;
    for (size_t i = 0; (name = ing_conf_key(i, &type, &def, &help)); i++)
        fprintf(f, "  --%-26s %-6s (default %s) %s\n", name, type, *def ? def : "\"\"", help);
}

int main(int argc, char **argv)
{
    cm_log_set_name("triage-ingest");
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    struct ing_conf conf;
    ing_conf_default(&conf);
    struct cm_err err = { 0 };
    if (ing_conf_args(&conf, argc - 1, argv + 1, &err)) {
        fprintf(stderr, "triage-ingest: %s\n", err.msg);
        return 2;
    }
    cm_log_set_level(cm_log_level_parse(conf.log_level));
    const char *env_db = getenv("DATABASE_URL");
    if (!conf.db_url[0] && env_db && strlen(env_db) < sizeof conf.db_url)
        memcpy(conf.db_url, env_db, strlen(env_db) + 1);

    /* Signals are taken by sigwait in this thread only: block them before any thread starts. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct ing_pg *pg = NULL;
    struct ing_recorder rec, *recp = NULL;
    if (conf.db_url[0]) {
        if (ing_pg_open(conf.db_url, &conf, &pg, &err)) {
            cm_log(CM_LOG_ERROR, "cannot set up the database pool: %s", err.msg);
            return 1;
        }
        ing_pg_recorder(pg, &rec);
        recp = &rec;
    } else {
        cm_log(CM_LOG_WARN, "no database configured: uploads stay pending in the spool");
    }
    struct ing_server *srv = NULL;
    if (ing_server_start(&conf, recp, &srv, &err)) {
        cm_log(CM_LOG_ERROR, "cannot start: %s", err.msg);
        ing_pg_close(pg);
        return 1;
    }
    printf("listening on port %u\n", (unsigned)ing_server_port(srv));
    fflush(stdout);

    int sig = 0;
    sigwait(&set, &sig);
    cm_log(CM_LOG_INFO, "stopping: signal=%d grace_ms=%zu", sig, conf.shutdown_grace_ms);
    ing_server_stop(srv, (unsigned)conf.shutdown_grace_ms);
    ing_pg_close(pg);
    cm_log(CM_LOG_INFO, "stopped");
    return 0;
}
