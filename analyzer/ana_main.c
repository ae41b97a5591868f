/* ana_main.c -- `triage-analyzer`: the worker daemon. Reads its configuration (defaults, then
 * --config FILE, then flags), starts the worker threads and the /healthz + /metrics server, and
 * on SIGTERM or SIGINT lets every worker finish or hand back its batch, then exits 0. Started with
 * --child it is instead the sandboxed child that one worker feeds with dumps. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyzer/ana_daemon.h"
#include "common/cm_log.h"

static const struct cm_conf_key keys[] = {
    CM_CONF_STRING(struct anad_conf, db_url, "", "PostgreSQL connection string or URL (required)"),
    CM_CONF_STRING(struct anad_conf, listen, "",
                   "HOST:PORT for /healthz and /metrics; empty: none"),
    CM_CONF_CHOICE(struct anad_conf, log_level, "info", "debug|info|warn|error",
                   "debug, info, warn or error"),
    CM_CONF_STRING(struct anad_conf, rules, "", "signature rules file; empty: built-in rules"),
    CM_CONF_STRINGS(struct anad_conf, symbols, symbols_count,
                    "symbol store folder (Breakpad or .build-id layout); repeatable"),
    CM_CONF_SZ(struct anad_conf, workers, "2", 1, 256, "worker threads, one sandboxed child each"),
    CM_CONF_SZ(struct anad_conf, batch, "16", 1, 64, "jobs claimed at once"),
    CM_CONF_MS(struct anad_conf, lease_ms, "5m", 1000, 86400000, "job lease"),
    CM_CONF_MS(struct anad_conf, job_timeout_ms, "60s", 100, 3600000,
               "wall clock for one dump before its child is killed"),
    CM_CONF_MS(struct anad_conf, idle_poll_ms, "500ms", 10, 60000,
               "longest sleep when the queue is empty"),
    CM_CONF_MS(struct anad_conf, sweep_ms, "10s", 100, 3600000,
               "how often expired leases are swept"),
    CM_CONF_SZ(struct anad_conf, child_memory_bytes, "2G", 64u << 20, 1ull << 40,
               "address-space limit of a sandboxed child"),
    CM_CONF_SZ(struct anad_conf, max_dump_bytes, "100M", 1024, 4ull << 30,
               "decompressed dump size cap"),
    CM_CONF_SZ(struct anad_conf, max_frames, "1024", 1, 100000, "frames per thread"),
    CM_CONF_BOOLEAN(struct anad_conf, child, "false", "internal: run as the sandboxed child"),
};
const struct cm_conf anad_conf_table = { keys, sizeof keys / sizeof *keys };

static struct anad the_daemon;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&the_daemon.stopping, true);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: triage-analyzer --db_url URL [--symbols DIR]... [options]\n\n"
               "Claims analysis jobs from PostgreSQL and buckets each crash.\n\noptions:\n");
    cm_conf_usage(&anad_conf_table, f);
}

int main(int argc, char **argv)
{
    struct anad *d = &the_daemon;
    cm_log_set_name("triage-analyzer");
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    cm_conf_defaults(&anad_conf_table, &d->conf);
    struct cm_err err = { 0 };
    if (cm_conf_args(&anad_conf_table, &d->conf, argc - 1, argv + 1, &err)) {
        fprintf(stderr, "triage-analyzer: %s\n", err.msg);
        usage(stderr);
        return 2;
    }
    cm_log_set_level(cm_log_level_parse(d->conf.log_level));
    ssize_t n = readlink("/proc/self/exe", d->self_exe, sizeof d->self_exe - 1);
    if (n <= 0) {
        fprintf(stderr, "triage-analyzer: cannot find its own executable\n");
        return 1;
    }
    d->self_exe[n] = 0;
    if (d->conf.child)
        return anad_child_main(d);
    if (!d->conf.db_url[0]) {
        fprintf(stderr, "triage-analyzer: --db_url is required (a libpq connection string)\n");
        return 2;
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a dead child shows as EPIPE, handled where it happens */

    void *status = anad_status_start(d, &err);
    if (d->conf.listen[0] && !status) {
        fprintf(stderr, "triage-analyzer: %s\n", err.msg);
        return 1;
    }
    size_t nw = d->conf.workers;
    pthread_t *threads = calloc(nw, sizeof *threads);
    struct anad_worker *workers = calloc(nw, sizeof *workers);
    if (!threads || !workers) {
        fprintf(stderr, "triage-analyzer: out of memory\n");
        return 1;
    }
    cm_log(CM_LOG_INFO, "started workers=%zu batch=%zu lease=%llds symbols=%zu", nw,
           d->conf.batch, (long long)d->conf.lease_ms / 1000, d->conf.symbols_count);
    for (size_t i = 0; i < nw; i++) {
        workers[i] = (struct anad_worker){ d, (unsigned)i };
        if (pthread_create(&threads[i], NULL, anad_worker_thread, &workers[i]) != 0) {
            fprintf(stderr, "triage-analyzer: cannot start worker %zu\n", i);
            atomic_store(&d->stopping, true);
            nw = i;
            break;
        }
    }
    for (size_t i = 0; i < nw; i++)
        pthread_join(threads[i], NULL);
    anad_status_stop(status);
    cm_log(CM_LOG_INFO, "stopped: done=%llu failed=%llu retried=%llu",
           (unsigned long long)atomic_load(&d->metrics.jobs_done),
           (unsigned long long)atomic_load(&d->metrics.jobs_failed),
           (unsigned long long)atomic_load(&d->metrics.jobs_retried));
    for (size_t i = 0; i < d->conf.symbols_count; i++)
        free(d->conf.symbols[i]);
    free(threads);
    free(workers);
    return 0;
}
