/* det_main.c -- `triage-detector`: reads its configuration (defaults, then --config FILE, then
 * flags; detector/triage-detector.conf.example), applies the database migrations, and every
 * interval runs a detection pass (det_pass) over each project with recent crashes or open
 * incidents, at the wall clock's now. Serves /healthz and /metrics when --listen is given.
 * SIGTERM or SIGINT finishes the current pass and exits 0. `triagectl up` runs it as a child. */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/cm_log.h"
#include "detector/det_daemon.h"

static atomic_bool stopping;
static struct det_metrics metrics;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stopping, true);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps until the monotonic deadline or a stop signal, in short steps. */
static void sleep_until(int64_t deadline)
{
    while (!atomic_load(&stopping)) {
        int64_t left = deadline - mono_ms();
        if (left <= 0)
            return;
        if (left > 200)
            left = 200;
        struct timespec ts = { (time_t)(left / 1000), (long)(left % 1000) * 1000000 };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !atomic_load(&stopping))
            ;
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: triage-detector --db_url URL [options]\n\n"
               "Opens an incident when crash rates of a fault module + version or of a bucket\n"
               "depart from their baseline (docs/incidents.md).\n\noptions:\n");
    cm_conf_usage(&det_conf_table, f);
}

static struct db_conn *connect_db(const struct det_conf *c)
{
    struct db_options opt;
    db_options_default(&opt);
    opt.application_name = "triage-detector";
    struct db_conn *db = NULL;
    struct cm_err err = { 0 };
    struct db_migrate_report rep;
    if (db_open(c->db_url, &opt, &db, &err) == CM_E_OK && db_migrate(db, &rep, &err) == CM_E_OK) {
        atomic_store(&metrics.db_ok, true);
        return db;
    }
    cm_log(CM_LOG_WARN, "database unreachable (retrying): %s", err.msg);
    atomic_store(&metrics.db_ok, false);
    db_close(db);
    return NULL;
}

static void add(atomic_ullong *counter, size_t n) { atomic_fetch_add(counter, n); }

/* One round: every project with something to look at. */
static void round_once(struct db_conn *db, const struct det_conf *c)
{
    int64_t t0 = mono_ms(), now = wall_ms();
    struct cm_err err = { 0 };
    char **projects = NULL;
    size_t n = 0;
    bool ok =
        db_incident_projects(db, now - c->recent_ms - 60000, &projects, &n, &err) == CM_E_OK;
    if (!ok)
        cm_log(CM_LOG_WARN, "detection pass failed: %s", err.msg);
    struct det_report rep = { 0 };
    for (size_t i = 0; ok && i < n && !atomic_load(&stopping); i++) {
        if (det_pass(db, c, projects[i], now, &rep, &err) != CM_E_OK) {
            char p[128];
            cm_log(CM_LOG_WARN, "detection pass failed project=%s: %s",
                   cm_log_escape(projects[i], strlen(projects[i]), p, sizeof p), err.msg);
            ok = false;
        }
    }
    db_incident_projects_free(projects, n);
    struct db_incident *open = NULL;
    size_t nopen = 0;
    if (ok && db_incidents_list(db, NULL, true, 10000, &open, &nopen, &err) == CM_E_OK)
        atomic_store(&metrics.open_incidents, (long long)nopen);
    db_incidents_free(open, nopen);
    add(ok ? &metrics.passes : &metrics.pass_failures, 1);
    add(&metrics.keys, rep.keys);
    add(&metrics.spikes, rep.spikes);
    add(&metrics.opened, rep.opened);
    add(&metrics.changed, rep.changed);
    add(&metrics.closed, rep.closed);
    add(&metrics.notified, rep.notified);
    add(&metrics.webhook_posts, rep.webhook_posts);
    add(&metrics.webhook_failures, rep.webhook_failures);
    atomic_store(&metrics.db_ok, ok);
    atomic_store(&metrics.last_pass_ms, (long long)(mono_ms() - t0));
    if (ok)
        atomic_store(&metrics.last_pass_at_ms, (long long)wall_ms());
}

int main(int argc, char **argv)
{
    cm_log_set_name("triage-detector");
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    struct det_conf c;
    det_conf_default(&c);
    struct cm_err err = { 0 };
    if (cm_conf_args(&det_conf_table, &c, argc - 1, argv + 1, &err)) {
        fprintf(stderr, "triage-detector: %s\n", err.msg);
        usage(stderr);
        return 2;
    }
    cm_log_set_level(cm_log_level_parse(c.log_level));
    if (!c.db_url[0]) {
        fprintf(stderr, "triage-detector: --db_url is required (a libpq connection string)\n");
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "triage-detector: cannot initialize libcurl\n");
        return 1;
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    void *status = det_status_start(c.listen, &metrics, c.interval_ms, &err);
    if (c.listen[0] && !status) {
        fprintf(stderr, "triage-detector: %s\n", err.msg);
        curl_global_cleanup();
        return 1;
    }
    cm_log(CM_LOG_INFO, "started interval_ms=%lld recent_ms=%lld baseline_ms=%lld channel=%s "
                        "webhook=%s",
           (long long)c.interval_ms, (long long)c.recent_ms, (long long)c.baseline_ms,
           c.notify_channel, c.webhook_url[0] ? "yes" : "no");
    struct db_conn *db = NULL;
    while (!atomic_load(&stopping)) {
        int64_t next = mono_ms() + c.interval_ms;
        if (!db)
            db = connect_db(&c);
        if (db)
            round_once(db, &c);
        sleep_until(next);
    }
    db_close(db);
    det_status_stop(status);
    curl_global_cleanup();
    cm_log(CM_LOG_INFO, "stopped: passes=%llu opened=%llu closed=%llu",
           (unsigned long long)atomic_load(&metrics.passes),
           (unsigned long long)atomic_load(&metrics.opened),
           (unsigned long long)atomic_load(&metrics.closed));
    return 0;
}
