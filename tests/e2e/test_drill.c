/* test_drill.c -- the fleet drill scaled down for CI (issue 5; the full drill is bench/drill): a
 * few hundred simulated hosts with a baseline of varied crashes, then a faulty build of the
 * kernel sensor driver crashing half the Windows hosts in boot loops over several stacks. Real
 * dumps from tests/fixgen, sent through triagectl's upload client with hints on to the real
 * triage-ingest and triage-analyzer over loopback HTTP, a real PostgreSQL. Time is simulated:
 * crash times lie in the past and the detector's passes (detector/det.h, det_pass) run at chosen
 * "now"s, so the outcome never depends on the machine's speed. Asserts: the incident opens after
 * the onset and not before, names the faulty module and version, its top correlation is that
 * module@version, and nothing is lost -- every acknowledged crash is in PostgreSQL, counted or
 * analyzed, and the counts equal what was sent, bucket by bucket. No timing is asserted. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "analyzer/ana.h"
#include "bench/drill/drill.h"
#include "detector/det.h"
#include "tests/e2e/e2e_harness.h"
#include "tests/th.h"

static int group_setup(void **state)
{
    (void)state;
    e2e_init();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    e2e_fini();
    return 0;
}

static int setup(void **state)
{
    (void)state;
    e2e_db_reset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    e2e_cleanup();
    return 0;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long q1(const char *sql, const char *p1)
{
    return e2e_sql_int(sql, p1 ? (const char *const[]){ p1, NULL } : NULL);
}

/* The bucket each crash lands in offline (no symbols, as the daemon has none for these). */
static void offline_buckets(const struct drill_conf *c, const struct drill_crash *k, size_t n,
                            char (*bucket)[40])
{
    for (size_t i = 0; i < n; i++) {
        struct drill_dump d;
        struct cm_err err = { 0 };
        struct ana_crash *cr = NULL;
        struct ana_keys keys;
        if (drill_make(c, &k[i], &d, &err) || ana_load(d.data, d.len, NULL, &cr, &err) ||
            ana_analyze(cr, NULL, NULL, &keys, &err))
            fail_msg("crash %zu offline: %s", i, err.msg);
        snprintf(bucket[i], 40, "%s", keys.bucket);
        ana_crash_free(cr);
        drill_dump_free(&d);
    }
}

static void drill_opens_the_incident_and_loses_nothing(void **state)
{
    (void)state;
    struct drill_conf c;
    drill_conf_default(&c);
    c.hosts = 300;
    c.seed = 20240719;
    c.windows_share = 0.7;
    c.affected_share = 0.5;
    c.stacks = 6;
    c.baseline_per_host_day = 12;
    c.live_ms = 0;
    c.after_ms = 10 * 60000;
    c.rollout_ms = 10 * 60000;
    c.loop_interval_ms = 60000;
    /* The onset 90 minutes ago (whole minute): every crash time lies in the past. */
    int64_t t0 = (wall_ms() / 60000 - 90) * 60000;
    struct drill_crash *k = NULL;
    size_t n = 0;
    struct cm_err err = { 0 };
    assert_int_equal(drill_schedule(&c, t0, &k, &n, &err), CM_E_OK);
    size_t event = 0;
    for (size_t i = 0; i < n; i++) {
        event += k[i].kind == DRILL_EVENT;
        assert_true(k[i].at_ms < wall_ms());
    }
    assert_true(event > 50 && n - event > 100);

    struct e2e_ingest ing = { 0 };
    struct e2e_analyzer an = { 0 };
    e2e_ingest_start(&ing, (const char *const[]){ "--hint_first_k=3", "--hint_sample_m=10",
                                                  NULL });
    e2e_analyzer_start(&an, (const char *const[]){ "--workers=2", NULL });
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", ing.port);
    char(*ids)[37] = calloc(n, 37);
    struct drill_send_opts so = { .url = url, .hints = true, .threads = 4 };
    struct drill_stats st;
    assert_int_equal(drill_send(&so, &c, k, n, ids, &st, &err), CM_E_OK);
    fprintf(stderr, "drill: %zu crashes (%zu of the faulty build): %zu counted from hints, %zu "
                    "sent in full; %llu bytes sent, %llu without hints\n",
            n, event, st.counted, st.accepted, (unsigned long long)st.bytes_sent,
            (unsigned long long)st.envelope_bytes);
    assert_int_equal(st.sent, n);
    assert_int_equal(st.counted + st.accepted, n); /* every crash acknowledged */
    assert_true(st.counted > 0);
    assert_true(st.bytes_sent < st.envelope_bytes);
    e2e_wait_analyzed((long long)n, 900, NULL);
    /* Counted hints reach their buckets and rollups in batches, moments later. */
    for (int i = 0; i < 1200 && q1("SELECT count(*) FROM crashes WHERE hint_pending", NULL); i++)
        usleep(50000);
    assert_int_equal(q1("SELECT count(*) FROM crashes WHERE hint_pending", NULL), 0);

    /* Nothing lost: every acknowledged id is a crash, counted or analyzed. */
    for (size_t i = 0; i < n; i++) {
        assert_int_not_equal(ids[i][0], 0);
        if (q1("SELECT count(*) FROM crashes WHERE crash_id = $1::uuid AND status = 'done'",
               ids[i]) != 1)
            fail_msg("acknowledged crash %s (%zu) is not a done crash", ids[i], i);
    }
    assert_int_equal(q1("SELECT count(*) FROM crashes", NULL), (long long)n);
    /* Bucket by bucket, analyzed and hint-counted crashes equal what was sent. */
    char(*bucket)[40] = calloc(n, 40);
    offline_buckets(&c, k, n, bucket);
    for (size_t i = 0; i < n; i++) {
        long long want = 0;
        for (size_t j = 0; j < n; j++)
            want += !strcmp(bucket[j], bucket[i]);
        long long got = q1("SELECT crash_count FROM buckets WHERE bucket_key = $1", bucket[i]);
        if (got != want)
            fail_msg("bucket %s: %lld crashes in PostgreSQL, %lld sent", bucket[i], got, want);
        assert_int_equal(q1("SELECT sum(crash_count) FROM bucket_rollup_minute"
                            " WHERE bucket_key = $1", bucket[i]), want);
    }
    char version[32];
    snprintf(version, sizeof version, "%08X%x", DRILL_FAULT_STAMP, DRILL_FAULT_SIZE);
    assert_int_equal(e2e_sql_int("SELECT sum(crash_count) FROM module_rollup_minute"
                                 " WHERE fault_module = $1 AND fault_module_version = $2",
                                 (const char *const[]){ DRILL_FAULT_MODULE, version, NULL }),
                     (long long)event);

    /* The detector, pass by pass on a simulated clock, from before the onset to after it. */
    struct det_conf dc;
    det_conf_default(&dc);
    dc.baseline_ms = 2 * 3600000LL;
    struct db_conn *db = NULL;
    assert_int_equal(db_open(e2e_pg_conninfo(), NULL, &db, &err), CM_E_OK);
    int64_t opened_at = 0;
    for (int64_t now = t0 - 30 * 60000; now <= t0 + 40 * 60000; now += 60000) {
        struct det_report rep = { 0 };
        if (det_pass(db, &dc, NULL, now, &rep, &err))
            fail_msg("detector pass at T0%+lld min: %s", (long long)(now - t0) / 60000, err.msg);
        if (rep.opened && !opened_at)
            opened_at = now;
    }
    assert_true(opened_at >= t0); /* not before the onset: no false incident in the baseline */
    fprintf(stderr, "drill: incident opened at T0+%lld min (simulated clock, 1-minute passes)\n",
            (long long)(opened_at - t0) / 60000);
    struct db_incident *list = NULL;
    size_t nl = 0;
    assert_int_equal(db_incidents_list(db, NULL, false, 100, &list, &nl, &err), CM_E_OK);
    assert_int_equal(nl, 1); /* the event's, and no other */
    assert_non_null(list[0].fault_module);
    assert_string_equal(list[0].fault_module, DRILL_FAULT_MODULE);
    assert_string_equal(list[0].fault_module_version, version);
    struct db_incident *inc = NULL;
    assert_int_equal(db_incident_get(db, NULL, list[0].id, 5, &inc, &err), CM_E_OK);
    assert_true(inc->corr_count > 0);
    char want[96];
    snprintf(want, sizeof want, "%s@%s", DRILL_FAULT_MODULE, version);
    if (strcmp(inc->corr[0].attribute, "module") || strcasecmp(inc->corr[0].value, want))
        fail_msg("top correlation %s=%s, expected module=%s", inc->corr[0].attribute,
                 inc->corr[0].value, want);
    assert_true(inc->crashes >= (int64_t)event / 2);
    db_incidents_free(inc, 1);
    db_incidents_free(list, nl);
    db_close(db);
    free(bucket);
    free(ids);
    free(k);
    e2e_passed();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(drill_opens_the_incident_and_loses_nothing, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
