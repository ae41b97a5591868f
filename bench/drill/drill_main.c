/* drill_main.c -- `drill`: the fleet drill as a bench program (bench/drill/README.md). Starts a
 * private PostgreSQL (db_cluster) and the real daemons as child processes -- triage-ingest,
 * triage-analyzer and triage-detector, found next to this program -- then sends the fleet's
 * crashes through triagectl's upload client: the baseline history first (crash times in the
 * past), then the live baseline and the event paced by the wall clock, onset T0 = live_ms after
 * the history is in. It reports the seconds from T0 to the incident's opened_at (the detector's
 * clock), whether the incident's top correlation names the faulty module and version, incidents
 * that are not the event (false incidents), ingest throughput and lag, bytes sent with and
 * without hints, and that every acknowledged crash is in the database, analyzed or counted.
 *
 *   drill [--hosts N] [--seed S] [--no-hint] [--threads N] [--data DIR] [--bindir DIR]
 *         [--stacks N] [--affected F] [--live S] [--after S] [--rollout S] [--loop S]
 *         [--max-loops N] [--wait S] [--analyzer-workers N] [--fsync] [--unpaced]
 *
 * --unpaced sends every crash as fast as the service takes it, with the whole schedule moved
 * into the past: it measures ingest throughput; the time to open is then not meaningful.
 *
 * No timing is asserted anywhere; the figures are printed. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libpq-fe.h>

#include "bench/drill/drill.h"
#include "db/db.h"

struct opts {
    struct drill_conf conf;
    bool hints;
    unsigned threads, analyzer_workers;
    char data[PATH_MAX], bindir[PATH_MAX];
    int wait_s;
    bool fsync;
    bool unpaced; /* everything as fast as the service takes it, crash times all in the past */
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ---- child processes ---- */

static pid_t spawn(const char *log, char *const argv[])
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    execv(argv[0], argv);
    fprintf(stderr, "drill: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static void stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 300; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        sleep_ms(100);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t n = sizeof a;
    uint16_t port = 0;
    if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof a) &&
        !getsockname(fd, (struct sockaddr *)&a, &n))
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static bool healthy(uint16_t port)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/healthz", port);
    CURL *c = curl_easy_init();
    long status = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 2L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status == 200;
}

/* ---- watching for the incident ---- */

struct watch {
    const char *conninfo;
    atomic_bool stop;
    int64_t t0_ms;
    atomic_llong first_open_ms;  /* opened_at of the first incident of the faulty build */
    atomic_llong seen_ms;        /* when the drill first saw it */
    atomic_llong incident_id;
};

static bool is_event(const struct db_incident *i, const char *version)
{
    return i->fault_module && !strcasecmp(i->fault_module, DRILL_FAULT_MODULE) &&
           i->fault_module_version && !strcasecmp(i->fault_module_version, version);
}

static char fault_version[32];

static void *watcher(void *arg)
{
    struct watch *w = arg;
    struct db_conn *db = NULL;
    struct cm_err err = { 0 };
    while (!atomic_load(&w->stop)) {
        if (!db && db_open(w->conninfo, NULL, &db, &err)) {
            db = NULL;
            sleep_ms(500);
            continue;
        }
        struct db_incident *l = NULL;
        size_t n = 0;
        if (db_incidents_list(db, NULL, false, 1000, &l, &n, &err) == CM_E_OK) {
            for (size_t i = 0; i < n; i++)
                if (is_event(&l[i], fault_version) && !atomic_load(&w->first_open_ms)) {
                    atomic_store(&w->first_open_ms, l[i].opened_at_ms);
                    atomic_store(&w->seen_ms, wall_ms());
                    atomic_store(&w->incident_id, l[i].id);
                }
            db_incidents_free(l, n);
        }
        sleep_ms(250);
    }
    db_close(db);
    return NULL;
}

/* ---- checks in SQL (libpq directly: read-only questions about the outcome) ---- */

static long long sql_int(PGconn *pg, const char *sql, int n, const char *const *v)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, v, NULL, NULL, 0);
    long long x = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        x = atoll(PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "drill: query failed: %s", PQerrorMessage(pg));
    PQclear(r);
    return x;
}

/* Acknowledged ids found in crashes, in chunks of uuid[] parameters. */
static size_t found_ids(PGconn *pg, char (*ids)[37], size_t n, size_t *acked)
{
    size_t found = 0;
    *acked = 0;
    char *buf = malloc(10000 * 40 + 16);
    for (size_t i = 0; i < n;) {
        size_t len = 0, k = 0;
        buf[len++] = '{';
        for (; i < n && k < 10000; i++) {
            if (!ids[i][0])
                continue;
            len += (size_t)sprintf(buf + len, "%s%s", k ? "," : "", ids[i]);
            k++;
        }
        buf[len++] = '}';
        buf[len] = 0;
        *acked += k;
        const char *v[] = { buf };
        long long c = k ? sql_int(pg, "SELECT count(*) FROM crashes WHERE crash_id = ANY($1::uuid[])",
                                  1, v)
                        : 0;
        found += c > 0 ? (size_t)c : 0;
    }
    free(buf);
    return found;
}

/* ---- the run ---- */

static void progress(void *ctx, size_t done, size_t total)
{
    (void)ctx;
    if (done % 5000 == 0 || done == total)
        fprintf(stderr, "drill: %zu/%zu crashes sent\n", done, total);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: drill [--hosts N] [--seed S] [--no-hint] [--threads N] [--data DIR]\n"
               "             [--bindir DIR] [--stacks N] [--affected F] [--live S] [--after S]\n"
               "             [--rollout S] [--loop S] [--max-loops N] [--wait S]\n"
               "             [--analyzer-workers N] [--fsync] [--unpaced]\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        { "hosts", 1, NULL, 'H' },   { "seed", 1, NULL, 's' },    { "no-hint", 0, NULL, 'n' },
        { "threads", 1, NULL, 't' }, { "data", 1, NULL, 'd' },    { "bindir", 1, NULL, 'b' },
        { "stacks", 1, NULL, 'S' },  { "affected", 1, NULL, 'a' }, { "live", 1, NULL, 'l' },
        { "after", 1, NULL, 'A' },   { "rollout", 1, NULL, 'r' }, { "loop", 1, NULL, 'L' },
        { "wait", 1, NULL, 'w' },    { "analyzer-workers", 1, NULL, 'W' },
        { "max-loops", 1, NULL, 'M' },
        { "fsync", 0, NULL, 'f' },   { "help", 0, NULL, 'h' },    { "unpaced", 0, NULL, 'u' },
        { NULL, 0, NULL, 0 },
    };
    drill_conf_default(&o->conf);
    o->hints = true;
    o->threads = 8;
    o->analyzer_workers = 2;
    o->wait_s = 300;
    snprintf(o->data, sizeof o->data, "./drill-data");
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    snprintf(o->bindir, sizeof o->bindir, "%s", dirname(self));
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/triage-ingest", o->bindir);
    if (access(probe, X_OK) != 0) { /* in a build tree: build/bench/drill -> build/bin */
        char up[PATH_MAX + 16];
        snprintf(up, sizeof up, "%s/../../bin", o->bindir);
        snprintf(o->bindir, sizeof o->bindir, "%.*s", (int)(sizeof o->bindir - 1), up);
    }
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'H': o->conf.hosts = strtoull(optarg, NULL, 10); break;
        case 's': o->conf.seed = strtoull(optarg, NULL, 0); break;
        case 'n': o->hints = false; break;
        case 't': o->threads = (unsigned)atoi(optarg); break;
        case 'd': snprintf(o->data, sizeof o->data, "%s", optarg); break;
        case 'b': snprintf(o->bindir, sizeof o->bindir, "%s", optarg); break;
        case 'S': o->conf.stacks = strtoull(optarg, NULL, 10); break;
        case 'a': o->conf.affected_share = atof(optarg); break;
        case 'l': o->conf.live_ms = (int64_t)(atof(optarg) * 1000); break;
        case 'A': o->conf.after_ms = (int64_t)(atof(optarg) * 1000); break;
        case 'r': o->conf.rollout_ms = (int64_t)(atof(optarg) * 1000); break;
        case 'L': o->conf.loop_interval_ms = (int64_t)(atof(optarg) * 1000); break;
        case 'w': o->wait_s = atoi(optarg); break;
        case 'W': o->analyzer_workers = (unsigned)atoi(optarg); break;
        case 'M': o->conf.max_loops = strtoull(optarg, NULL, 10); break;
        case 'f': o->fsync = true; break;
        case 'u': o->unpaced = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !o->conf.hosts || !o->threads) {
        usage(stderr);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = { 0 };
    if (parse(argc, argv, &o))
        return 2;
    snprintf(fault_version, sizeof fault_version, "%08X%x", DRILL_FAULT_STAMP, DRILL_FAULT_SIZE);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    mkdir(o.data, 0755);
    char path[PATH_MAX + 64], logs[3][PATH_MAX + 64];
    struct cm_err err = { 0 };
    struct db_cluster *cl = NULL;
    struct db_cluster_options co = { .no_fsync = !o.fsync };
    fprintf(stderr, "drill: starting PostgreSQL in %s\n", o.data);
    if (db_cluster_start(o.data, &co, &cl, &err)) {
        fprintf(stderr, "drill: %s\n", err.msg);
        return 1;
    }
    const char *ci = db_cluster_conninfo(cl);
    struct db_conn *db = NULL;
    if (db_open(ci, NULL, &db, &err) || db_migrate(db, NULL, &err)) {
        fprintf(stderr, "drill: %s\n", err.msg);
        return 1;
    }
    PGconn *pg = PQconnectdb(ci);
    PQclear(PQexec(pg, "DO $$ DECLARE t text; BEGIN SELECT string_agg(format('%I', tablename),"
                       " ', ') INTO t FROM pg_tables WHERE schemaname = current_schema()"
                       " AND tablename <> 'schema_migrations'; IF t IS NOT NULL THEN"
                       " EXECUTE 'TRUNCATE ' || t || ' RESTART IDENTITY'; END IF; END $$"));

    uint16_t port = free_port();
    char url[64], listen[64], dburl[1100], spool[PATH_MAX + 32], wk[32];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
    snprintf(listen, sizeof listen, "--listen=127.0.0.1:%u", port);
    snprintf(dburl, sizeof dburl, "--db_url=%s", ci);
    snprintf(spool, sizeof spool, "--spool_dir=%s/spool", o.data);
    snprintf(wk, sizeof wk, "--workers=%u", o.analyzer_workers);
    for (int i = 0; i < 3; i++)
        snprintf(logs[i], sizeof logs[i], "%s/%s.log", o.data,
                 (const char *[]){ "ingest", "analyzer", "detector" }[i]);
    snprintf(path, sizeof path, "%s/triage-ingest", o.bindir);
    char *ia[] = { path, dburl, listen, spool, "--log_level=warn", "--workers=8", NULL };
    pid_t ing = spawn(logs[0], ia);
    char apath[PATH_MAX + 64], dpath[PATH_MAX + 64];
    snprintf(apath, sizeof apath, "%s/triage-analyzer", o.bindir);
    char *aa[] = { apath, dburl, wk, "--log_level=warn", NULL };
    pid_t ana = spawn(logs[1], aa);
    snprintf(dpath, sizeof dpath, "%s/triage-detector", o.bindir);
    char *da[] = { dpath, dburl, "--interval_ms=2s", "--baseline_ms=2h", "--log_level=info", NULL };
    pid_t det = spawn(logs[2], da);
    for (int i = 0; i < 300 && !healthy(port); i++)
        sleep_ms(100);
    if (!healthy(port)) {
        fprintf(stderr, "drill: triage-ingest did not come up (see %s)\n", logs[0]);
        return 1;
    }

    /* The schedule, with the onset T0 = now + live (the history lies before now). */
    struct drill_crash *k = NULL;
    size_t n = 0;
    if (drill_schedule(&o.conf, 0, &k, &n, &err)) {
        fprintf(stderr, "drill: %s\n", err.msg);
        return 1;
    }
    int64_t start = wall_ms(), t0 = start + o.conf.live_ms;
    if (o.unpaced) { /* the whole schedule in the past: the last crash a second ago */
        int64_t last = 0;
        for (size_t i = 0; i < n; i++)
            last = k[i].at_ms > last ? k[i].at_ms : last;
        t0 = start - last - 1000;
    }
    size_t hist = 0, event = 0;
    for (size_t i = 0; i < n; i++) {
        k[i].at_ms += t0;
        hist += k[i].at_ms < start;
        event += k[i].kind == DRILL_EVENT;
    }
    char(*ids)[37] = calloc(n ? n : 1, 37);
    fprintf(stderr, "drill: %zu hosts, %zu crashes (%zu history, %zu of the faulty build); hints "
                    "%s; onset in %.0f s\n",
            o.conf.hosts, n, hist, event, o.hints ? "on" : "off",
            (double)(t0 - wall_ms()) / 1000.0);
    struct watch w = { .conninfo = ci, .t0_ms = t0 };
    pthread_t wt;
    pthread_create(&wt, NULL, watcher, &w);
    struct drill_send_opts so = { .url = url, .hints = o.hints, .threads = o.threads,
                                  .progress = progress };
    struct drill_stats hs = { 0 }, ls = { 0 };
    if (drill_send(&so, &o.conf, k, hist, ids, &hs, &err)) {
        fprintf(stderr, "drill: %s\n", err.msg);
        return 1;
    }
    so.paced = !o.unpaced;
    if (drill_send(&so, &o.conf, k + hist, n - hist, ids + hist, &ls, &err)) {
        fprintf(stderr, "drill: %s\n", err.msg);
        return 1;
    }
    /* Let the analyzer drain and the detector see it. */
    int64_t until = wall_ms() + (int64_t)o.wait_s * 1000;
    struct db_queue_depth q = { 0 };
    struct db_status_counts sc = { 0 };
    while (wall_ms() < until) {
        if (!db_queue_depth(db, &q, &err) && !db_crash_status_counts(db, NULL, &sc, &err) &&
            q.ready + q.running == 0 && sc.received + sc.analyzing == 0 &&
            sql_int(pg, "SELECT count(*) FROM crashes WHERE hint_pending", 0, NULL) == 0 &&
            atomic_load(&w.first_open_ms))
            break;
        sleep_ms(1000);
    }
    sleep_ms(5000); /* one more detector pass over the drained numbers (correlations) */
    atomic_store(&w.stop, true);
    pthread_join(wt, NULL);

    /* ---- the report ---- */
    size_t acked = 0, found = found_ids(pg, ids, n, &acked);
    long long total = sql_int(pg, "SELECT count(*) FROM crashes", 0, NULL);
    long long done = sql_int(pg, "SELECT count(*) FROM crashes WHERE status = 'done'", 0, NULL);
    long long hinted = sql_int(pg, "SELECT count(*) FROM crashes WHERE hint_counted", 0, NULL);
    long long in_buckets = sql_int(pg, "SELECT sum(crash_count) FROM buckets", 0, NULL);
    long long in_minutes = sql_int(pg, "SELECT sum(crash_count) FROM bucket_rollup_minute", 0,
                                   NULL);
    const char *fv[] = { DRILL_FAULT_MODULE, fault_version };
    long long event_counted = sql_int(pg, "SELECT count(*) FROM crashes WHERE status = 'done'"
                                          " AND fault_module = $1 AND fault_module_version = $2",
                                      2, fv);
    long long event_rollup = sql_int(pg, "SELECT sum(crash_count) FROM module_rollup_minute"
                                         " WHERE fault_module = $1 AND fault_module_version = $2",
                                     2, fv);
    long long false_inc = sql_int(pg, "SELECT count(*) FROM incidents WHERE NOT ("
                                      "fault_module = $1 AND fault_module_version = $2)",
                                  2, fv);
    long long early = -1;
    {
        char t0s[32];
        snprintf(t0s, sizeof t0s, "%lld", (long long)t0);
        const char *v[] = { t0s };
        early = sql_int(pg, "SELECT count(*) FROM incidents WHERE opened_at < triage_ts($1::bigint)",
                        1, v);
    }
    char top[256] = "(none)";
    int64_t iid = atomic_load(&w.incident_id);
    struct db_incident *inc = NULL;
    if (iid && !db_incident_get(db, NULL, iid, 5, &inc, &err) && inc->corr_count)
        snprintf(top, sizeof top, "%s=%s (incident %.1f%%, rest %.1f%%, score %.1f)",
                 inc->corr[0].attribute, inc->corr[0].value, inc->corr[0].incident_pct,
                 inc->corr[0].rest_pct, inc->corr[0].score);
    char want[128];
    snprintf(want, sizeof want, "%s@%s", DRILL_FAULT_MODULE, fault_version);
    bool top_ok = inc && inc->corr_count && !strcmp(inc->corr[0].attribute, "module") &&
                  !strcasecmp(inc->corr[0].value, want);
    int64_t opened = atomic_load(&w.first_open_ms);
    double event_s = (double)(o.conf.rollout_ms + o.conf.after_ms) / 1000.0;

    printf("fleet drill: %zu hosts, seed %llu, hints %s\n", o.conf.hosts,
           (unsigned long long)o.conf.seed, o.hints ? "on" : "off");
    printf("crashes sent: %zu (history %zu, live %zu; faulty build %zu)\n", hs.sent + ls.sent,
           hs.sent, ls.sent, event);
    printf("incident opened: %s", opened ? "yes" : "NO");
    if (o.unpaced)
        printf(" (unpaced: the event lies in the past, outside the detector's recent window; "
               "this mode measures throughput)");
    else if (opened)
        printf(", %.1f s after onset (opened_at by the detector's clock; seen by the drill "
               "%.1f s after onset)",
               (double)(opened - t0) / 1000.0, (double)(atomic_load(&w.seen_ms) - t0) / 1000.0);
    printf("\n");
    if (inc)
        printf("incident %lld: %s %s@%s, %lld crashes, %lld hosts, %lld buckets, peak %lld/min\n",
               (long long)inc->id, inc->kind, inc->fault_module ? inc->fault_module : "?",
               inc->fault_module_version ? inc->fault_module_version : "?",
               (long long)inc->crashes, (long long)inc->hosts, (long long)inc->bucket_count,
               (long long)inc->peak_per_minute);
    printf("top correlation: %s -> %s\n", top, top_ok ? "right module and version" : "WRONG");
    printf("false incidents: %lld (opened before onset: %lld)\n", false_inc, early);
    printf("ingest: history %zu crashes in %.1f s (%.0f/s); live %zu crashes in %.1f s (offered "
           "over %.0f s of event), max lag behind the crash times %.1f s; client time per crash "
           "p50 %.1f ms p99 %.1f ms\n",
           hs.sent, hs.seconds, hs.seconds > 0 ? (double)hs.sent / hs.seconds : 0.0, ls.sent,
           ls.seconds, event_s, ls.max_lag_s, (ls.sent ? ls : hs).p50_ms,
           (ls.sent ? ls : hs).p99_ms);
    printf("outcomes: %zu counted from hints, %zu accepted in full, %zu duplicate, %zu failed, "
           "%zu rejected\n",
           hs.counted + ls.counted, hs.accepted + ls.accepted, hs.duplicate + ls.duplicate,
           hs.failed + ls.failed, hs.rejected + ls.rejected);
    uint64_t sent = hs.bytes_sent + ls.bytes_sent, full = hs.envelope_bytes + ls.envelope_bytes;
    printf("bytes: sent %.1f MB; the same crashes without hints %.1f MB (%.1f%% of it sent); raw "
           "dumps %.1f MB\n",
           (double)sent / 1e6, (double)full / 1e6, full ? 100.0 * (double)sent / (double)full : 0,
           (double)(hs.dump_bytes + ls.dump_bytes) / 1e6);
    printf("database: %lld crashes (%lld counted from hints alone), %lld done; buckets hold "
           "%lld, minute rollups %lld; faulty build: %lld crashes, rollup %lld, sent %zu\n",
           total, hinted, done, in_buckets, in_minutes, event_counted, event_rollup, event);
    printf("acknowledged: %zu, found in the database: %zu, lost: %zu\n", acked, found,
           acked - found);
    db_incidents_free(inc, inc ? 1 : 0);

    stop(det);
    stop(ana);
    stop(ing);
    PQfinish(pg);
    db_close(db);
    db_cluster_stop(cl, DB_STOP_FAST, &err);
    db_cluster_free(cl);
    free(ids);
    free(k);
    curl_global_cleanup();
    /* Unpaced, the event lies wholly in the past: no recent window sees it spike. */
    bool ok = (o.unpaced || (opened && top_ok)) && acked == found;
    return ok ? 0 : 3;
}
