/* test_detector.c -- the detector against a real PostgreSQL (pg_harness), fed only through the
 * production path (db_crash_insert, db_jobs_claim, db_result_write; tests/detector/det_sim.c)
 * and driven by an explicit clock: every pass gets its "now". Expected numbers come from the
 * simulated fleet the test builds, checked with independent SQL over the crash rows where the
 * detector reads rollups.
 *
 * The simulated timeline starts at T0, a whole hour a few hours ago. Background: two crashes a
 * minute over eight buckets and four fault modules from 150 hosts, every process loading
 * app.exe, ntdll.dll and the hook.sys@2.0 driver; inject.dll@5.5 in 10 % of them and three
 * evenly spread attributes (av.dll@3.2, gpu=nv-551, Windows 10.0.22631) in 30 %. The spike:
 * from minute 176 to 180, 40 crashes in hook.sys@2.0 itself over five new buckets from 20
 * hosts, with inject.dll@5.5 in 36 of them (90 %) and the three spread attributes in 30 %:
 * overall, the planted module and the spread attributes are all on 30 % of the crashes of the
 * hour (48 of 160), but only the planted one is over-represented. */
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/cm_alloc.h"
#include "common/cm_buf.h"
#include "detector/det.h"
#include "tests/db/pg_harness.h"
#include "tests/detector/det_sim.h"
#include "tests/th.h"

#define OK(call)                                                                                 \
    do {                                                                                         \
        if ((call) != CM_E_OK)                                                                   \
            fail_msg("%s failed: %s", #call, err.msg);                                           \
    } while (0)

#define MIN_MS 60000LL

static struct db_conn *db; /* the detector's and the workers' connection */
static PGconn *raw;        /* independent checks */
static int64_t t0;         /* the timeline's start: a whole hour, five hours ago */

static int64_t at(int64_t minute, int64_t second) { return t0 + minute * MIN_MS + second * 1000; }

static PGresult *q(const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(raw, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK)
        fail_msg("check query failed: %s: %s", sql, PQresultErrorMessage(r));
    return r;
}

static long long q_int(const char *sql, int n, const char *const *params)
{
    PGresult *r = q(sql, n, params);
    if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
        PQclear(r);
        fail_msg("check query returned no value: %s", sql);
    }
    long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static void conf_for_tests(struct det_conf *c)
{
    det_conf_default(c);
    c->baseline_ms = 2 * 3600 * 1000LL; /* the timeline holds three hours of background */
}

/* ---- the simulated fleet ---- */

static const char *const bg_modules[4][2] = {
    { "app.exe", "3.1" }, { "gfx.dll", "27.1" }, { "libcrypto.dll", "3.0" }, { "ui.dll", "3.1" }
};

static void common_modules(struct sim_crash *c, uint64_t g)
{
    sim_add_module(c, "app.exe@3.1");
    sim_add_module(c, "ntdll.dll@10.0.19041");
    sim_add_module(c, "hook.sys@2.0");
    if (g % 10 < 3)
        sim_add_module(c, "av.dll@3.2");
    snprintf(c->os_version, sizeof c->os_version, "%s",
             (g + 2) % 10 < 3 ? "10.0.22631" : "10.0.19045");
    snprintf(c->gpu, sizeof c->gpu, "%s", (g + 1) % 10 < 3 ? "nv-551" : "amd-23");
}

/* Two crashes a minute in [from, to) minutes. */
static void background(struct sim *s, int64_t from, int64_t to, uint64_t *rng)
{
    for (int64_t m = from; m < to; m++)
        for (int64_t k = 0; k < 2; k++) {
            uint64_t g = (uint64_t)(m * 2 + k);
            struct sim_crash *c = sim_add(s);
            unsigned b = (unsigned)(sim_rand(rng) % 8);
            snprintf(c->host, sizeof c->host, "bg-host-%u", (unsigned)(sim_rand(rng) % 150));
            snprintf(c->bucket, sizeof c->bucket, "bg-bucket-%u", b);
            snprintf(c->signature, sizeof c->signature, "%s!handler_%u", bg_modules[b / 2][0], b);
            snprintf(c->fault_module, sizeof c->fault_module, "%s", bg_modules[b / 2][0]);
            snprintf(c->fault_version, sizeof c->fault_version, "%s", bg_modules[b / 2][1]);
            common_modules(c, g);
            if (g % 10 == 0)
                sim_add_module(c, "inject.dll@5.5");
            c->crash_ms = at(m, 10 + 30 * k);
            c->received_ms = c->crash_ms + 2000;
        }
}

/* 40 crashes in hook.sys@2.0 over five new buckets from 20 hosts, minutes [from, from + 5). */
static void spike(struct sim *s, int64_t from)
{
    for (uint64_t i = 0; i < 40; i++) {
        struct sim_crash *c = sim_add(s);
        snprintf(c->host, sizeof c->host, "fleet-%u", (unsigned)(i % 20));
        snprintf(c->bucket, sizeof c->bucket, "hook-bucket-%u", (unsigned)(i % 5));
        snprintf(c->signature, sizeof c->signature, "hook.sys!filter_%u", (unsigned)(i % 5));
        snprintf(c->fault_module, sizeof c->fault_module, "hook.sys");
        snprintf(c->fault_version, sizeof c->fault_version, "2.0");
        common_modules(c, i);
        if (i < 36)
            sim_add_module(c, "inject.dll@5.5");
        c->crash_ms = at(from + (int64_t)i / 8, 5 + 5 * (int64_t)(i % 8));
        c->received_ms = c->crash_ms + 2000;
    }
}

static void feed(struct sim *s) { sim_feed(db, db, s); }

static struct det_report pass_at(const struct det_conf *c, int64_t now)
{
    struct det_report rep = { 0 };
    struct cm_err err = { 0 };
    OK(det_pass(db, c, NULL, now, &rep, &err));
    return rep;
}

static struct db_incident *only_incident(void)
{
    struct db_incident *list = NULL;
    size_t n = 0;
    struct cm_err err = { 0 };
    OK(db_incidents_list(db, NULL, false, 100, &list, &n, &err));
    if (n != 1)
        fail_msg("%zu incidents, expected one", n);
    struct db_incident *x = NULL;
    OK(db_incident_get(db, NULL, list[0].id, 5, &x, &err));
    db_incidents_free(list, n);
    return x;
}

/* The spike scenario up to the pass that sees it. */
static struct db_incident *spike_scenario(const struct det_conf *c, int64_t minutes)
{
    struct sim s = { 0 };
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    background(&s, 0, minutes, &rng);
    spike(&s, 176);
    feed(&s);
    sim_free(&s);
    struct det_report rep = pass_at(c, at(180, 30));
    assert_int_equal(rep.opened, 1);
    return only_incident();
}

/* ---- setup ---- */

static int group_setup(void **state)
{
    (void)state;
    char why[512];
    const char *ci = pgh_start("test_detector", why, sizeof why);
    if (!ci) {
        fprintf(stderr, "test_detector: cannot start PostgreSQL: %s\n", why);
        return -1;
    }
    struct cm_err err = { 0 };
    struct db_migrate_report rep;
    if (db_open(ci, NULL, &db, &err) != CM_E_OK || db_migrate(db, &rep, &err) != CM_E_OK) {
        fprintf(stderr, "test_detector: %s\n", err.msg);
        return -1;
    }
    raw = PQconnectdb(ci);
    if (PQstatus(raw) != CONNECTION_OK) {
        fprintf(stderr, "test_detector: raw connect: %s\n", PQerrorMessage(raw));
        return -1;
    }
    PQclear(PQexec(raw, "SET TimeZone = 'UTC'"));
    int64_t now = (int64_t)time(NULL) * 1000;
    t0 = now - now % (3600 * 1000LL) - 5 * 3600 * 1000LL;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    PQfinish(raw);
    db_close(db);
    pgh_stop();
    return 0;
}

static int each_setup(void **state)
{
    (void)state;
    PQclear(q("TRUNCATE crash_keys, crashes, crash_modules, jobs, buckets, bucket_hosts,"
              " bucket_rollup_minute, module_rollup_minute, bucket_rollup_hour,"
              " module_rollup_hour, incidents, incident_buckets",
              0, NULL));
    return 0;
}

/* ---- rollups ---- */

/* Minute and hour rollups through the result writer: counts equal the crash rows, hours equal
 * the sum of their minutes (also across reprocessing), host estimates match the exact distinct
 * hosts of the crash rows. */
static void rollups_hosts_and_hours(void **state)
{
    (void)state;
    struct sim s = { 0 };
    uint64_t rng = 42;
    for (int i = 0; i < 300; i++) {
        struct sim_crash *c = sim_add(&s);
        unsigned b = (unsigned)(sim_rand(&rng) % 3);
        snprintf(c->host, sizeof c->host, "host-%u", (unsigned)(sim_rand(&rng) % 120));
        snprintf(c->bucket, sizeof c->bucket, "roll-%u", b);
        snprintf(c->signature, sizeof c->signature, "sig %u", b);
        snprintf(c->fault_module, sizeof c->fault_module, "%s", b == 2 ? "b.dll" : "a.dll");
        snprintf(c->fault_version, sizeof c->fault_version, "1.0");
        sim_add_module(c, "app.exe@1");
        c->crash_ms = at(50 + (int64_t)(sim_rand(&rng) % 80), (int64_t)(sim_rand(&rng) % 60));
        c->received_ms = c->crash_ms + 1000;
    }
    feed(&s);
    sim_free(&s);
    const char *hours_match =
        "SELECT count(*) FROM ("
        " SELECT project, bucket_key, triage_hour(minute) AS hour, sum(crash_count) AS n"
        " FROM bucket_rollup_minute GROUP BY 1, 2, 3) m"
        " FULL JOIN bucket_rollup_hour h USING (project, bucket_key, hour)"
        " WHERE m.n IS DISTINCT FROM h.crash_count";
    const char *module_hours_match =
        "SELECT count(*) FROM ("
        " SELECT project, fault_module, fault_module_version, triage_hour(minute) AS hour,"
        "        sum(crash_count) AS n FROM module_rollup_minute GROUP BY 1, 2, 3, 4) m"
        " FULL JOIN module_rollup_hour h USING (project, fault_module, fault_module_version,"
        "                                       hour)"
        " WHERE m.n IS DISTINCT FROM h.crash_count";
    assert_int_equal(q_int(hours_match, 0, NULL), 0);
    assert_int_equal(q_int(module_hours_match, 0, NULL), 0);
    /* Two hour boundaries crossed: three hours per bucket. */
    assert_int_equal(q_int("SELECT count(DISTINCT hour) FROM bucket_rollup_hour", 0, NULL), 3);
    /* Hour counts equal the crash rows. */
    assert_int_equal(q_int("SELECT count(*) FROM (SELECT c.bucket_key, triage_hour(c.event_at) h,"
                           " count(*) n FROM crashes c GROUP BY 1, 2) c"
                           " FULL JOIN bucket_rollup_hour r ON r.bucket_key = c.bucket_key"
                           "  AND r.hour = c.h WHERE c.n IS DISTINCT FROM r.crash_count",
                           0, NULL),
                     0);
    /* Host estimates against exact distinct hosts, per bucket-hour, per module-hour and per
     * module over the whole span: within 2 hosts + 3 % (docs/incidents.md: linear counting
     * below 5120 hosts). */
    char from[24], to[24];
    snprintf(from, sizeof from, "%lld", (long long)at(45, 17)); /* ragged edges on purpose */
    snprintf(to, sizeof to, "%lld", (long long)at(140, 0));
    PGresult *r = q("SELECT est, exact, crashes, exact_crashes FROM ("
          " SELECT triage_hll_estimate(r.hosts) est, (SELECT count(DISTINCT host_id)"
          "   FROM crashes c WHERE c.bucket_key = r.bucket_key"
          "   AND triage_hour(c.event_at) = r.hour) exact, 0 crashes, 0 exact_crashes"
          " FROM bucket_rollup_hour r"
          " UNION ALL"
          " SELECT triage_hll_estimate(r.hosts), (SELECT count(DISTINCT host_id)"
          "   FROM crashes c WHERE c.fault_module = r.fault_module"
          "   AND triage_hour(c.event_at) = r.hour), 0, 0 FROM module_rollup_hour r"
          " UNION ALL"
          " SELECT triage_hll_estimate(w.hosts), (SELECT count(DISTINCT host_id)"
          "   FROM crashes WHERE fault_module = 'a.dll'), w.crashes,"
          "   (SELECT count(*) FROM crashes WHERE fault_module = 'a.dll')"
          " FROM triage_module_window('default', 'a.dll', '1.0', date_trunc('minute',"
          "      triage_ts($1::bigint)), triage_ts($2::bigint), true) w) x",
          2, (const char *[]){ from, to });
    assert_true(PQntuples(r) >= 7);
    for (int i = 0; i < PQntuples(r); i++) {
        long long est = atoll(PQgetvalue(r, i, 0)), exact = atoll(PQgetvalue(r, i, 1));
        if (llabs(est - exact) > 2 + exact * 3 / 100)
            fail_msg("row %d: %lld hosts estimated, %lld exact", i, est, exact);
        assert_int_equal(atoll(PQgetvalue(r, i, 2)), atoll(PQgetvalue(r, i, 3)));
    }
    PQclear(r);

    /* Reprocessing takes crashes out of the minutes; the hours follow, then come back. */
    struct cm_err err = { 0 };
    size_t requeued = 0;
    struct db_reprocess_filter f = { .bucket_key = "roll-0" };
    OK(db_reprocess(db, &f, &requeued, &err));
    assert_true(requeued > 0);
    assert_int_equal(q_int("SELECT count(*) FROM bucket_rollup_hour WHERE bucket_key = 'roll-0'",
                           0, NULL),
                     0);
    assert_int_equal(q_int(hours_match, 0, NULL), 0);
    assert_int_equal(q_int(module_hours_match, 0, NULL), 0);
    /* The jobs come back; analyze them again with the same plan (a new simulation run would
     * not know their ids), so re-record nothing and answer from the crash rows. */
    struct db_job *jobs = NULL;
    size_t n = 0;
    OK(db_jobs_claim(db, "w", 1000, 60000, &jobs, &n, &err));
    assert_int_equal(n, requeued);
    struct db_result *res = calloc(n, sizeof *res);
    for (size_t i = 0; i < n; i++)
        res[i] = (struct db_result){ .job = &jobs[i], .signature = "sig 0", .bucket_key = "roll-0",
                                     .fault_module = "a.dll", .fault_module_version = "1.0" };
    OK(db_result_write(db, res, n, NULL, &err));
    free(res);
    db_jobs_free(jobs, n);
    assert_int_equal(q_int(hours_match, 0, NULL), 0);
    assert_int_equal(q_int(module_hours_match, 0, NULL), 0);
    assert_int_equal(q_int("SELECT sum(crash_count) FROM bucket_rollup_hour", 0, NULL), 300);
    assert_int_equal(q_int("SELECT sum(crashes) FROM bucket_rate_per_hour", 0, NULL), 300);
    assert_int_equal(q_int("SELECT sum(crashes) FROM fault_module_rate_per_hour", 0, NULL), 300);
}

/* The sketch functions on their own: a large set within three standard errors (3 x 2.3 %),
 * and union(sketch A, sketch B) = sketch(A u B), element for element. */
static void hll_accuracy_and_union(void **state)
{
    (void)state;
    long long est = q_int("SELECT triage_hll_estimate(triage_hll_of(array_agg('host-' || g)))"
                          " FROM generate_series(1, 50000) g", 0, NULL);
    if (llabs(est - 50000) > 50000 * 7 / 100)
        fail_msg("50000 hosts estimated as %lld", est);
    assert_int_equal(q_int("SELECT (triage_hll_union("
                           "   (SELECT triage_hll_of(array_agg('h' || g))"
                           "    FROM generate_series(1, 3000) g),"
                           "   (SELECT triage_hll_of(array_agg('h' || g))"
                           "    FROM generate_series(2000, 9000) g))"
                           " = (SELECT triage_hll_of(array_agg('h' || g))"
                           "    FROM generate_series(1, 9000) g))::int",
                           0, NULL),
                     1);
    /* Small sets: the estimate is linear counting over the occupied registers (counted here
     * independently from the entries), whose error is that of the collisions it corrects for:
     * sd = sqrt(m (e^t - t - 1)), t = n / m, about one host at 60 (docs/incidents.md). */
    for (int n = 1; n <= 120; n += 7) {
        char ns[16];
        snprintf(ns, sizeof ns, "%d", n);
        const char *p[] = { ns };
        long long e = q_int("SELECT triage_hll_estimate(triage_hll_of(array_agg('small-' || g)))"
                            " FROM generate_series(1, $1::int) g", 1, p);
        long long occupied = q_int("SELECT count(DISTINCT triage_hll_entry('small-' || g) >> 6)"
                                   " FROM generate_series(1, $1::int) g", 1, p);
        assert_int_equal(e, llround(2048 * log(2048.0 / (2048.0 - (double)occupied))));
        double t = n / 2048.0, sd = sqrt(2048 * (exp(t) - t - 1));
        if (fabs((double)(e - n)) > 1 + 4 * sd)
            fail_msg("%d hosts estimated as %lld (sd %.2f)", n, e, sd);
    }
    /* Crashes without a host count nowhere. */
    assert_int_equal(q_int("SELECT triage_hll_estimate(triage_hll_of(ARRAY[NULL, '']::text[]))",
                           0, NULL),
                     0);
}

/* crash_time is clamped into [received - clamp, received] (1 day here, configured on the
 * inserting connection) and the rollups count each crash in the minute it lands in. */
static void clamped_times_land_where_they_should(void **state)
{
    (void)state;
    struct cm_err err = { 0 };
    struct db_options opt;
    db_options_default(&opt);
    opt.event_clamp_ms = 86400000;
    struct db_conn *ins = NULL;
    OK(db_open(pgh_conninfo(), &opt, &ins, &err));
    int64_t recv = at(200, 20);
    struct { int64_t crash_ms, lands_ms; bool clamped; } cases[] = {
        { recv - 3 * 86400000LL, recv - 86400000LL, true }, /* a broken clock, days behind */
        { recv + 2 * 3600000LL, recv, true },               /* in the future */
        { recv - 30 * MIN_MS - 5000, recv - 30 * MIN_MS - 5000, false }, /* a late upload */
        { 0, recv, false },                                 /* unknown */
    };
    struct sim s = { 0 };
    for (size_t i = 0; i < 4; i++) {
        struct sim_crash *c = sim_add(&s);
        snprintf(c->host, sizeof c->host, "clock-%zu", i);
        snprintf(c->bucket, sizeof c->bucket, "clamp-bucket");
        snprintf(c->signature, sizeof c->signature, "clamp");
        snprintf(c->fault_module, sizeof c->fault_module, "clock.dll");
        snprintf(c->fault_version, sizeof c->fault_version, "1");
        c->crash_ms = cases[i].crash_ms;
        c->received_ms = recv;
    }
    sim_feed(ins, db, &s);
    for (size_t i = 0; i < 4; i++) {
        const char *p[] = { s.c[i].crash_id };
        assert_int_equal(q_int("SELECT triage_ms(event_at) FROM crashes WHERE crash_id = $1::uuid",
                               1, p),
                         cases[i].lands_ms);
        assert_int_equal(q_int("SELECT event_clamped::int FROM crashes WHERE crash_id = $1::uuid",
                               1, p),
                         cases[i].clamped);
    }
    sim_free(&s);
    db_close(ins);
    /* Each landing minute holds its crashes, in both rollups and both granularities. */
    for (size_t i = 0; i < 4; i++) {
        char m[24];
        int64_t minute = cases[i].lands_ms - cases[i].lands_ms % MIN_MS;
        snprintf(m, sizeof m, "%lld", (long long)minute);
        long long want = 0;
        for (size_t k = 0; k < 4; k++)
            want += cases[k].lands_ms - cases[k].lands_ms % MIN_MS == minute;
        const char *p[] = { m };
        assert_int_equal(q_int("SELECT crash_count FROM bucket_rollup_minute"
                               " WHERE minute = triage_ts($1::bigint)", 1, p),
                         want);
        assert_int_equal(q_int("SELECT crash_count FROM module_rollup_minute"
                               " WHERE fault_module = 'clock.dll'"
                               "   AND minute = triage_ts($1::bigint)",
                               1, p),
                         want);
        assert_int_equal(q_int("SELECT sum(crash_count) FROM bucket_rollup_minute"
                               " WHERE triage_hour(minute) = triage_hour(triage_ts($1::bigint))",
                               1, p),
                         q_int("SELECT crash_count FROM bucket_rollup_hour"
                               " WHERE hour = triage_hour(triage_ts($1::bigint))", 1, p));
    }
    /* The rates the detector reads: the receive minute's window holds the future and the
     * unknown crash; the day-long baseline before it holds the other two. */
    struct db_rate_query rq = { .level = DB_RATE_BUCKET,
                                .recent_from_ms = recv - recv % MIN_MS - 4 * MIN_MS,
                                .recent_to_ms = recv - recv % MIN_MS + MIN_MS };
    rq.baseline_to_ms = rq.recent_from_ms;
    rq.baseline_from_ms = rq.recent_from_ms - 86400000LL - MIN_MS;
    struct db_rate *rates = NULL;
    size_t n = 0;
    OK(db_rates(db, &rq, &rates, &n, &err));
    assert_int_equal(n, 1);
    assert_int_equal(rates[0].recent_crashes, 2);
    assert_int_equal(rates[0].recent_hosts, 2);
    assert_int_equal(rates[0].baseline_crashes, 2);
    assert_string_equal(rates[0].fault_module, "clock.dll");
    db_rates_free(rates, n);
}

/* ---- detection ---- */

/* Three hours of varied background, with a busy bucket and a slow new one: no pass opens an
 * incident. */
static void baseline_opens_nothing(void **state)
{
    (void)state;
    struct sim s = { 0 };
    uint64_t rng = 7;
    background(&s, 0, 181, &rng);
    for (int64_t m = 0; m < 181; m++) {
        /* A busy bucket: 0..12 crashes a minute (6 on average) from 40 hosts. */
        int busy = 0;
        for (int k = 0; k < 12; k++)
            busy += (int)(sim_rand(&rng) & 1);
        for (int k = 0; k < busy; k++) {
            struct sim_crash *c = sim_add(&s);
            snprintf(c->host, sizeof c->host, "busy-%u", (unsigned)(sim_rand(&rng) % 40));
            snprintf(c->bucket, sizeof c->bucket, "busy-bucket");
            snprintf(c->signature, sizeof c->signature, "render.dll!draw");
            snprintf(c->fault_module, sizeof c->fault_module, "render.dll");
            snprintf(c->fault_version, sizeof c->fault_version, "9.9");
            sim_add_module(c, "render.dll@9.9");
            c->crash_ms = at(m, 2 + 4 * k);
            c->received_ms = c->crash_ms + 500;
        }
        /* A new bucket from minute 150, one crash every three minutes from two hosts. */
        if (m >= 150 && m % 3 == 0) {
            struct sim_crash *c = sim_add(&s);
            snprintf(c->host, sizeof c->host, "slow-%u", (unsigned)(m % 2));
            snprintf(c->bucket, sizeof c->bucket, "slow-new-bucket");
            snprintf(c->signature, sizeof c->signature, "newplugin.dll!init");
            snprintf(c->fault_module, sizeof c->fault_module, "newplugin.dll");
            snprintf(c->fault_version, sizeof c->fault_version, "0.1");
            c->crash_ms = at(m, 45);
            c->received_ms = c->crash_ms + 500;
        }
    }
    feed(&s);
    sim_free(&s);
    struct det_conf c;
    conf_for_tests(&c);
    struct det_report total = { 0 };
    for (int64_t m = 120; m <= 180; m += 2) {
        struct det_report rep = pass_at(&c, at(m, 30));
        total.keys += rep.keys;
        total.spikes += rep.spikes;
        total.opened += rep.opened;
    }
    assert_true(total.keys > 31 * 10); /* every pass judged the buckets and modules */
    assert_int_equal(total.spikes, 0);
    assert_int_equal(total.opened, 0);
    assert_int_equal(q_int("SELECT count(*) FROM incidents", 0, NULL), 0);
}

/* The new hook.sys crashes open one incident naming the module and version, grouping its five
 * buckets, with the crashes and hosts of the spike; the planted module ranks first. */
static void new_module_opens_incident(void **state)
{
    (void)state;
    struct det_conf c;
    conf_for_tests(&c);
    /* Before the spike reaches the database, nothing. */
    struct sim s = { 0 };
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    background(&s, 0, 176, &rng);
    feed(&s);
    sim_free(&s);
    assert_int_equal(pass_at(&c, at(175, 30)).opened, 0);
    struct sim sp = { 0 };
    background(&sp, 176, 181, &rng);
    spike(&sp, 176);
    feed(&sp);
    sim_free(&sp);
    struct det_report rep = pass_at(&c, at(180, 30));
    assert_int_equal(rep.opened, 1);
    assert_int_equal(rep.spikes, 1); /* the module; each bucket alone holds only 8 crashes */
    struct db_incident *x = only_incident();
    assert_string_equal(x->status, "open");
    assert_string_equal(x->kind, "module");
    assert_string_equal(x->fault_module, "hook.sys");
    assert_string_equal(x->fault_module_version, "2.0");
    assert_int_equal(x->opened_at_ms, at(180, 30));
    assert_int_equal(x->onset_ms, at(176, 0));
    assert_int_equal(x->crashes, 40);
    assert_int_equal(x->bucket_count, 5);
    assert_int_equal(x->buckets_len, 5);
    for (size_t i = 0; i < x->buckets_len; i++) {
        assert_int_equal(strncmp(x->buckets[i].bucket_key, "hook-bucket-", 12), 0);
        assert_int_equal(x->buckets[i].crashes, 8);
        assert_int_equal(x->buckets[i].hosts, 4); /* hosts i % 20 over buckets i % 5 */
    }
    long long exact_hosts = q_int("SELECT count(DISTINCT host_id) FROM crashes"
                                  " WHERE fault_module = 'hook.sys'", 0, NULL);
    assert_int_equal(exact_hosts, 20);
    assert_true(llabs(x->hosts - exact_hosts) <= 1);
    assert_int_equal(x->peak_per_minute, 8);
    /* The series: context before the onset, then the spike's eight a minute. */
    assert_int_equal(x->series_start_ms, at(146, 0));
    assert_int_equal(x->series_len, 35);
    for (size_t i = 0; i < x->series_len; i++)
        assert_int_equal(x->series[i], i >= 30 ? 8 : 0);
    /* Correlations: the planted module first, at 90 % of the incident and 30 % overall. */
    assert_true(x->corr_count >= 1);
    assert_string_equal(x->corr[0].attribute, "module");
    assert_string_equal(x->corr[0].value, "inject.dll@5.5");
    assert_true(fabs(x->corr[0].incident_pct - 90) < 0.01);
    assert_true(fabs(x->corr[0].overall_pct - 30) < 0.01);
    assert_true(fabs(x->corr[0].rest_pct - 10) < 0.01);
    assert_true(x->corr[0].score > 10);
    /* The evenly spread attributes are just as common in the hour (48 of 160 crashes) but not
     * over-represented. */
    char from[24], to[24];
    snprintf(from, sizeof from, "%lld", (long long)at(121, 0));
    snprintf(to, sizeof to, "%lld", (long long)at(181, 0));
    const char *win[] = { from, to, "inject.dll" };
    const char *in_window = "SELECT count(DISTINCT c.crash_id) FROM crashes c"
                            " JOIN crash_modules m USING (project, crash_id, received_at)"
                            " WHERE m.name = $3 AND c.event_at >= triage_ts($1::bigint)"
                            "   AND c.event_at < triage_ts($2::bigint)";
    assert_int_equal(q_int(in_window, 3, win), 48);
    win[2] = "av.dll";
    assert_int_equal(q_int(in_window, 3, win), 48);
    assert_int_equal(q_int("SELECT count(*) FROM crashes WHERE annotations ->> 'gpu' = 'nv-551'"
                           " AND event_at >= triage_ts($1::bigint)"
                           " AND event_at < triage_ts($2::bigint)", 2, win),
                     48);
    assert_int_equal(q_int("SELECT count(*) FROM crashes WHERE os_version = '10.0.22631'"
                           " AND event_at >= triage_ts($1::bigint)"
                           " AND event_at < triage_ts($2::bigint)", 2, win),
                     48);
    for (size_t i = 1; i < x->corr_count; i++) {
        assert_true(x->corr[i].score < x->corr[0].score);
        assert_string_not_equal(x->corr[i].value, "av.dll@3.2");
        assert_string_not_equal(x->corr[i].value, "nv-551");
        assert_string_not_equal(x->corr[i].value, "Windows 10.0.22631");
    }
    assert_non_null(strstr(x->headline, "hook.sys 2.0 is crashing 20 hosts (40 crashes in 5"));
    assert_non_null(strstr(x->headline, "new since"));
    assert_non_null(strstr(x->headline, "likely cause: module inject.dll@5.5 (90%"));
    /* Sample crashes are the incident's. */
    assert_int_equal(x->sample_count, 5);
    for (size_t i = 0; i < x->sample_count; i++)
        assert_int_equal(q_int("SELECT count(*) FROM crashes WHERE crash_id = $1::uuid"
                               " AND fault_module = 'hook.sys'",
                               1, (const char *[]){ x->sample_crash_ids[i] }),
                         1);
    /* Announced once; a second pass at the same moment changes nothing and announces nothing. */
    assert_int_equal(x->revision, 1);
    int64_t id = x->id;
    db_incidents_free(x, 1);
    rep = pass_at(&c, at(180, 30));
    assert_int_equal(rep.opened + rep.changed + rep.notified, 0);
    x = only_incident();
    assert_int_equal(x->id, id);
    assert_int_equal(x->revision, 1);
    db_incidents_free(x, 1);
}

/* Bucket-level spikes: a new bucket in a busy module spikes on its own while its module, busy
 * anyway, does not: the incident holds that bucket's crashes only, not the whole module's. A
 * bucket without a known fault module is an incident of its own. */
static void bucket_spikes_group_by_module(void **state)
{
    (void)state;
    struct det_conf c;
    conf_for_tests(&c);
    struct sim s = { 0 };
    uint64_t rng = 11;
    for (int64_t m = 0; m < 181; m++)
        for (int k = 0; k < 6; k++) { /* ntdll.dll: six crashes a minute over three buckets */
            struct sim_crash *x = sim_add(&s);
            snprintf(x->host, sizeof x->host, "nt-%u", (unsigned)(sim_rand(&rng) % 200));
            snprintf(x->bucket, sizeof x->bucket, "heap-%d", k % 3);
            snprintf(x->signature, sizeof x->signature, "ntdll.dll!RtlpHeap%d", k % 3);
            snprintf(x->fault_module, sizeof x->fault_module, "ntdll.dll");
            snprintf(x->fault_version, sizeof x->fault_version, "10.0");
            x->crash_ms = at(m, 3 + 9 * k);
            x->received_ms = x->crash_ms + 1000;
        }
    for (int i = 0; i < 20; i++) { /* a new ntdll bucket: 20 crashes from 6 hosts */
        struct sim_crash *x = sim_add(&s);
        snprintf(x->host, sizeof x->host, "plugin-host-%d", i % 6);
        snprintf(x->bucket, sizeof x->bucket, "heap-new");
        snprintf(x->signature, sizeof x->signature, "ntdll.dll!RtlpFreeHeap | plugin.dll");
        snprintf(x->fault_module, sizeof x->fault_module, "ntdll.dll");
        snprintf(x->fault_version, sizeof x->fault_version, "10.0");
        x->crash_ms = at(176 + i / 4, 7 + i % 4);
        x->received_ms = x->crash_ms + 1000;
    }
    for (int i = 0; i < 15; i++) { /* a new bucket with no fault module: 15 crashes, 5 hosts */
        struct sim_crash *x = sim_add(&s);
        snprintf(x->host, sizeof x->host, "jit-host-%d", i % 5);
        snprintf(x->bucket, sizeof x->bucket, "jit-bucket");
        snprintf(x->signature, sizeof x->signature, "0x7ff612340000");
        x->crash_ms = at(177 + i / 5, 11 + i % 5);
        x->received_ms = x->crash_ms + 1000;
    }
    feed(&s);
    sim_free(&s);
    struct det_report rep = pass_at(&c, at(180, 30));
    assert_int_equal(rep.spikes, 2); /* the two buckets; not ntdll.dll as a whole */
    assert_int_equal(rep.opened, 2);
    struct db_incident *list = NULL;
    size_t n = 0;
    struct cm_err err = { 0 };
    OK(db_incidents_list(db, NULL, true, 10, &list, &n, &err));
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        struct db_incident *x = NULL;
        OK(db_incident_get(db, NULL, list[i].id, 3, &x, &err));
        assert_string_equal(x->kind, "buckets");
        assert_int_equal(x->buckets_len, 1);
        if (x->fault_module) {
            assert_string_equal(x->fault_module, "ntdll.dll");
            assert_string_equal(x->fault_module_version, "10.0");
            assert_null(x->bucket_key);
            assert_string_equal(x->buckets[0].bucket_key, "heap-new");
            assert_int_equal(x->crashes, 20);
            assert_int_equal(x->buckets[0].hosts, 6);
            assert_true(llabs(x->hosts - 6) <= 1);
            assert_non_null(strstr(x->headline, "ntdll.dll 10.0 is crashing"));
            assert_non_null(strstr(x->headline, "(20 crashes in 1 bucket)"));
        } else {
            assert_string_equal(x->bucket_key, "jit-bucket");
            assert_string_equal(x->buckets[0].bucket_key, "jit-bucket");
            assert_int_equal(x->crashes, 15);
            assert_non_null(strstr(x->headline, "bucket jit-bucket is crashing"));
        }
        assert_true(x->buckets[0].spiked_at_ms == at(180, 30));
        for (size_t k = 0; k < x->sample_count; k++)
            assert_int_equal(q_int("SELECT count(*) FROM crashes WHERE crash_id = $1::uuid"
                                   " AND bucket_key IN ('heap-new', 'jit-bucket')",
                                   1, (const char *[]){ x->sample_crash_ids[k] }),
                             1);
        db_incidents_free(x, 1);
    }
    db_incidents_free(list, n);
}

/* After the spike the rates fall back: the incident stays open through the spike and the quiet
 * period, then closes; nothing else opens. */
static void incident_closes_at_baseline(void **state)
{
    (void)state;
    struct det_conf c;
    conf_for_tests(&c);
    struct sim s = { 0 };
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    background(&s, 0, 216, &rng);
    spike(&s, 176);
    feed(&s);
    sim_free(&s);
    int64_t closed_at = 0;
    for (int64_t m = 180; m <= 215; m++) {
        struct det_report rep = pass_at(&c, at(m, 30));
        struct db_incident *x = only_incident();
        if (m == 180)
            assert_int_equal(rep.opened, 1);
        if (strcmp(x->status, "closed") == 0 && !closed_at) {
            closed_at = x->closed_at_ms;
            assert_int_equal(closed_at, at(m, 30));
            assert_int_equal(rep.closed, 1);
            /* Quiet for quiet_ms since the last pass that saw it spiking. */
            assert_true(closed_at - x->last_spike_ms >= c.quiet_ms);
            /* Its numbers are those of the spike. */
            assert_int_equal(x->crashes, 40);
            assert_string_equal(x->fault_module, "hook.sys");
        }
        if (!closed_at) {
            /* Open while the spike is in the recent window and for the quiet period after. */
            assert_string_equal(x->status, "open");
            assert_true(at(m, 30) - x->last_spike_ms < c.quiet_ms);
        }
        db_incidents_free(x, 1);
    }
    assert_true(closed_at > 0);
    /* The last spike crash left the recent window at minute 185; quiet 10 more minutes. */
    assert_true(closed_at <= at(180, 0) + c.recent_ms + c.quiet_ms + 2 * MIN_MS);
    assert_int_equal(q_int("SELECT count(*) FROM incidents WHERE status = 'open'", 0, NULL), 0);
    assert_int_equal(q_int("SELECT (published_status = 'closed')::int FROM incidents", 0, NULL), 1);
}

/* ---- telling ---- */

static json_t *wait_notify(PGconn *listener, const char *channel)
{
    time_t deadline = time(NULL) + 20; /* a watchdog, not a timing assertion */
    for (;;) {
        PQconsumeInput(listener);
        PGnotify *n = PQnotifies(listener);
        if (n) {
            assert_string_equal(n->relname, channel);
            json_error_t jerr;
            json_t *o = json_loads(n->extra, 0, &jerr);
            if (!o)
                fail_msg("NOTIFY payload is not JSON: %s", n->extra);
            PQfreemem(n);
            return o;
        }
        if (time(NULL) > deadline)
            fail_msg("no NOTIFY on %s", channel);
        struct pollfd p = { PQsocket(listener), POLLIN, 0 };
        poll(&p, 1, 1000);
    }
}

static void notify_reaches_listener(void **state)
{
    (void)state;
    struct det_conf c;
    conf_for_tests(&c);
    snprintf(c.notify_channel, sizeof c.notify_channel, "incidents_under_test");
    PGconn *listener = PQconnectdb(pgh_conninfo());
    assert_int_equal(PQstatus(listener), CONNECTION_OK);
    PQclear(PQexec(listener, "LISTEN incidents_under_test"));
    struct db_incident *x = spike_scenario(&c, 181);
    json_t *o = wait_notify(listener, "incidents_under_test");
    assert_string_equal(json_string_value(json_object_get(o, "event")), "opened");
    assert_int_equal(json_integer_value(json_object_get(o, "id")), x->id);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "open");
    assert_string_equal(json_string_value(json_object_get(o, "fault_module")), "hook.sys");
    assert_string_equal(json_string_value(json_object_get(o, "fault_module_version")), "2.0");
    assert_int_equal(json_integer_value(json_object_get(o, "revision")), 1);
    assert_string_equal(json_string_value(json_object_get(o, "project")), "default");
    json_decref(o);
    /* The crashes spread over five more buckets: the bucket count doubled, a change. */
    struct sim more = { 0 };
    for (int i = 0; i < 20; i++) {
        struct sim_crash *m = sim_add(&more);
        snprintf(m->host, sizeof m->host, "fleet-%d", i);
        snprintf(m->bucket, sizeof m->bucket, "hook-bucket-%d", 5 + i % 5);
        snprintf(m->signature, sizeof m->signature, "hook.sys!filter_%d", 5 + i % 5);
        snprintf(m->fault_module, sizeof m->fault_module, "hook.sys");
        snprintf(m->fault_version, sizeof m->fault_version, "2.0");
        sim_add_module(m, "hook.sys@2.0");
        sim_add_module(m, "inject.dll@5.5");
        m->crash_ms = at(181 + i / 10, 3 * (i % 10));
        m->received_ms = m->crash_ms + 1000;
    }
    feed(&more);
    sim_free(&more);
    struct det_report rep = pass_at(&c, at(182, 30));
    assert_int_equal(rep.changed, 1);
    o = wait_notify(listener, "incidents_under_test");
    assert_string_equal(json_string_value(json_object_get(o, "event")), "changed");
    assert_int_equal(json_integer_value(json_object_get(o, "revision")), 2);
    json_decref(o);
    /* Closing is announced too, and nothing in between. */
    for (int64_t m = 183; m <= 210; m++)
        pass_at(&c, at(m, 30));
    o = wait_notify(listener, "incidents_under_test");
    assert_string_equal(json_string_value(json_object_get(o, "event")), "closed");
    assert_string_equal(json_string_value(json_object_get(o, "status")), "closed");
    assert_int_equal(json_integer_value(json_object_get(o, "revision")), 3);
    json_decref(o);
    db_incidents_free(x, 1);
    PQfinish(listener);
}

/* A loopback HTTP listener (libmicrohttpd) that keeps what is POSTed to it. */
struct hook {
    pthread_mutex_t mu;
    char *bodies[16];
    char types[16][64];
    size_t n;
};

static enum MHD_Result hook_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload,
                                   size_t *upload_size, void **req)
{
    (void)url, (void)version;
    struct hook *h = cls;
    struct cm_buf *b = *req;
    if (!b) {
        b = calloc(1, sizeof *b);
        cm_buf_init(b, 1 << 22);
        *req = b;
        return MHD_YES;
    }
    if (*upload_size) {
        cm_buf_append(b, upload, *upload_size, NULL);
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&h->mu);
    if (h->n < 16 && strcmp(method, "POST") == 0) {
        const char *t = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        snprintf(h->types[h->n], sizeof h->types[0], "%s", t ? t : "");
        h->bodies[h->n++] = strndup(b->data ? (const char *)b->data : "", b->len);
    }
    pthread_mutex_unlock(&h->mu);
    struct MHD_Response *r = MHD_create_response_from_buffer(3, (void *)"ok\n",
                                                             MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static void hook_done(void *cls, struct MHD_Connection *conn, void **req,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    struct cm_buf *b = *req;
    if (b) {
        cm_buf_free(b);
        free(b);
    }
    *req = NULL;
}

static void webhook_reaches_listener(void **state)
{
    (void)state;
    struct hook h = { .mu = PTHREAD_MUTEX_INITIALIZER };
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, hook_handle, &h, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, hook_done, NULL, MHD_OPTION_END);
    assert_non_null(d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    unsigned port = info->port;
    struct det_conf c;
    conf_for_tests(&c);
    snprintf(c.webhook_url, sizeof c.webhook_url, "http://127.0.0.1:%u/hook", port);
    struct db_incident *x = spike_scenario(&c, 181);
    pthread_mutex_lock(&h.mu);
    assert_int_equal(h.n, 1);
    assert_string_equal(h.types[0], "application/json");
    json_error_t jerr;
    json_t *o = json_loads(h.bodies[0], 0, &jerr);
    pthread_mutex_unlock(&h.mu);
    if (!o)
        fail_msg("webhook body is not JSON: %s", jerr.text);
    assert_string_equal(json_string_value(json_object_get(o, "event")), "opened");
    json_t *inc = json_object_get(o, "incident");
    assert_int_equal(json_integer_value(json_object_get(inc, "id")), x->id);
    assert_string_equal(json_string_value(json_object_get(inc, "status")), "open");
    assert_string_equal(json_string_value(json_object_get(inc, "fault_module")), "hook.sys");
    assert_string_equal(json_string_value(json_object_get(inc, "fault_module_version")), "2.0");
    assert_int_equal(json_integer_value(json_object_get(inc, "crashes")), 40);
    assert_int_equal(json_integer_value(json_object_get(inc, "hosts")), x->hosts);
    assert_int_equal(json_array_size(json_object_get(inc, "buckets")), 5);
    json_t *top = json_array_get(json_object_get(inc, "correlations"), 0);
    assert_string_equal(json_string_value(json_object_get(top, "attribute")), "module");
    assert_string_equal(json_string_value(json_object_get(top, "value")), "inject.dll@5.5");
    assert_true(fabs(json_number_value(json_object_get(top, "incident_pct")) - 90) < 0.01);
    assert_true(fabs(json_number_value(json_object_get(top, "overall_pct")) - 30) < 0.01);
    assert_true(json_number_value(json_object_get(top, "score")) > 10);
    json_decref(o);
    db_incidents_free(x, 1);
    MHD_stop_daemon(d);
    for (size_t i = 0; i < h.n; i++)
        free(h.bodies[i]);

    /* A receiver that is not there: the pass goes on, the failure is counted. */
    each_setup(NULL);
    c.webhook_timeout_ms = 5000;
    struct sim s = { 0 };
    uint64_t rng = 3;
    background(&s, 150, 181, &rng);
    spike(&s, 176);
    feed(&s);
    sim_free(&s);
    struct det_report rep = pass_at(&c, at(180, 30));
    assert_int_equal(rep.opened, 1);
    assert_int_equal(rep.webhook_posts, 1);
    assert_int_equal(rep.webhook_failures, 1);
}

/* ---- the responder's view ---- */

static void cli_shows_incidents(void **state)
{
    (void)state;
    struct det_conf c;
    conf_for_tests(&c);
    struct db_incident *x = spike_scenario(&c, 181);
    char ci[1024];
    snprintf(ci, sizeof ci, "%s", pgh_conninfo());
    char *out = NULL, *errout = NULL;
    char *list_json[] = { (char *)th_triagectl(), "incidents", "--json", "--db", ci, NULL };
    assert_int_equal(th_run(list_json, &out, &errout, 60), 0);
    json_error_t jerr;
    json_t *arr = json_loads(out, 0, &jerr);
    if (!arr)
        fail_msg("incidents --json is not JSON: %s", out);
    assert_int_equal(json_array_size(arr), 1);
    json_t *o = json_array_get(arr, 0);
    const char *need[] = { "id", "status", "opened_at", "fault_module", "fault_module_version",
                           "hosts", "crashes", "buckets", "correlations" };
    for (size_t i = 0; i < sizeof need / sizeof *need; i++)
        if (!json_object_get(o, need[i]))
            fail_msg("incidents --json lacks %s", need[i]);
    assert_int_equal(json_integer_value(json_object_get(o, "id")), x->id);
    json_t *corr = json_array_get(json_object_get(o, "correlations"), 0);
    const char *cneed[] = { "attribute", "value", "incident_pct", "overall_pct", "score" };
    for (size_t i = 0; i < sizeof cneed / sizeof *cneed; i++)
        if (!json_object_get(corr, cneed[i]))
            fail_msg("correlation lacks %s", cneed[i]);
    char opened[32];
    time_t t = (time_t)(x->opened_at_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(opened, sizeof opened, "%Y-%m-%dT%H:%M:%SZ", &tm);
    assert_string_equal(json_string_value(json_object_get(o, "opened_at")), opened);
    json_decref(arr);
    free(out);
    free(errout);

    char *list_open[] = { (char *)th_triagectl(), "incidents", "--open", "--db", ci, NULL };
    assert_int_equal(th_run(list_open, &out, &errout, 60), 0);
    assert_non_null(strstr(out, "hook.sys@2.0"));
    assert_non_null(strstr(out, "1 open incident"));
    free(out);
    free(errout);

    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)x->id);
    char *one[] = { (char *)th_triagectl(), "incident", id, "--db", ci, NULL };
    assert_int_equal(th_run(one, &out, &errout, 60), 0);
    assert_non_null(strstr(out, x->headline));
    assert_non_null(strstr(out, "inject.dll@5.5"));
    assert_non_null(strstr(out, "\u2588")); /* the sparkline's peak */
    assert_non_null(strstr(out, "hook-bucket-0"));
    for (size_t i = 0; i < x->sample_count; i++)
        assert_non_null(strstr(out, x->sample_crash_ids[i]));
    free(out);
    free(errout);

    char *missing[] = { (char *)th_triagectl(), "incident", "987654", "--db", ci, NULL };
    assert_int_equal(th_run(missing, &out, &errout, 60), 1);
    assert_non_null(strstr(errout, "no incident 987654"));
    free(out);
    free(errout);
    db_incidents_free(x, 1);
}

/* ---- the daemon ---- */

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    cm_buf_append(arg, p, size * n, NULL);
    return size * n;
}

/* GET url; returns the status and the body (caller frees) in *body. */
static long http_get(const char *url, char **body)
{
    struct cm_buf b;
    cm_buf_init(&b, 1 << 20);
    cm_buf_append(&b, "", 0, NULL);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    *body = (char *)cm_buf_steal(&b, NULL);
    return status;
}

static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        fail_msg("no free port");
    close(fd);
    return ntohs(sa.sin_port);
}

/* triage-detector itself, on the wall clock: crashes of a new module in the last two minutes
 * open an incident within a few passes; /healthz and /metrics answer; SIGTERM stops it with
 * status 0. The loop below waits for the incident with a watchdog, it does not time it. */
static void daemon_opens_incident_on_wall_clock(void **state)
{
    (void)state;
    struct sim s = { 0 };
    int64_t now = (int64_t)time(NULL) * 1000;
    for (int i = 0; i < 40; i++) {
        struct sim_crash *c = sim_add(&s);
        snprintf(c->host, sizeof c->host, "live-host-%d", i % 20);
        snprintf(c->bucket, sizeof c->bucket, "live-bucket-%d", i % 4);
        snprintf(c->signature, sizeof c->signature, "live.sys!ioctl_%d", i % 4);
        snprintf(c->fault_module, sizeof c->fault_module, "live.sys");
        snprintf(c->fault_version, sizeof c->fault_version, "1.0");
        c->crash_ms = now - 2000 * i;
    }
    feed(&s);
    sim_free(&s);
    char exe[4096], listen[64], url[96], log[4096];
    snprintf(exe, sizeof exe, "%s", th_triagectl());
    char *slash = strrchr(exe, '/');
    assert_non_null(slash);
    snprintf(slash + 1, sizeof exe - (size_t)(slash + 1 - exe), "triage-detector");
    unsigned port = free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
    snprintf(log, sizeof log, "%s", th_tmp("detector.log"));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(exe, exe, "--db_url", pgh_conninfo(), "--listen", listen, "--interval_ms", "200ms",
              (char *)NULL);
        _exit(127);
    }
    time_t deadline = time(NULL) + 60;
    while (q_int("SELECT count(*) FROM incidents WHERE fault_module = 'live.sys'", 0, NULL) == 0) {
        if (time(NULL) > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fail_msg("triage-detector opened no incident (log: %s)", log);
        }
        struct timespec ts = { 0, 100 * 1000000L };
        nanosleep(&ts, NULL);
    }
    char *body = NULL;
    snprintf(url, sizeof url, "http://%s/healthz", listen);
    long st = http_get(url, &body);
    for (int tries = 0; st != 200 && tries < 100; tries++) { /* the first pass may be running */
        free(body);
        struct timespec ts = { 0, 100 * 1000000L };
        nanosleep(&ts, NULL);
        st = http_get(url, &body);
    }
    assert_int_equal(st, 200);
    free(body);
    snprintf(url, sizeof url, "http://%s/metrics", listen);
    assert_int_equal(http_get(url, &body), 200);
    assert_non_null(strstr(body, "triage_detector_incidents_opened_total 1\n"));
    assert_non_null(strstr(body, "triage_detector_database_up 1\n"));
    free(body);
    kill(pid, SIGTERM);
    int status = 0;
    deadline = time(NULL) + 30;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (time(NULL) > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fail_msg("triage-detector did not stop on SIGTERM");
        }
        struct timespec ts = { 0, 50 * 1000000L };
        nanosleep(&ts, NULL);
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    struct db_incident *x = only_incident();
    assert_string_equal(x->fault_module, "live.sys");
    assert_int_equal(x->crashes, 40);
    assert_int_equal(x->bucket_count, 4);
    db_incidents_free(x, 1);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(rollups_hosts_and_hours, each_setup),
        cmocka_unit_test_setup(hll_accuracy_and_union, each_setup),
        cmocka_unit_test_setup(clamped_times_land_where_they_should, each_setup),
        cmocka_unit_test_setup(baseline_opens_nothing, each_setup),
        cmocka_unit_test_setup(new_module_opens_incident, each_setup),
        cmocka_unit_test_setup(bucket_spikes_group_by_module, each_setup),
        cmocka_unit_test_setup(incident_closes_at_baseline, each_setup),
        cmocka_unit_test_setup(notify_reaches_listener, each_setup),
        cmocka_unit_test_setup(webhook_reaches_listener, each_setup),
        cmocka_unit_test_setup(cli_shows_incidents, each_setup),
        cmocka_unit_test_setup(daemon_opens_incident_on_wall_clock, each_setup),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    curl_global_cleanup();
    return rc;
}
