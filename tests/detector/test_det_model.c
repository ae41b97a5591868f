/* test_det_model.c -- the detector's arithmetic against independent references: Poisson and
 * hypergeometric tails summed directly from their probability mass functions in long double
 * (a different method from det_model.c's ratio recurrences), and Fisher's textbook tea-tasting
 * table (one-sided p = 17/70 and 1/70). Then the spike rules and the ranking of correlations,
 * and the configuration example that must document every key. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detector/det.h"
#include "tests/th.h"

/* -log10 P(X >= k), X ~ Poisson(mu), by summing the mass function from k far into the tail. */
static double ref_poisson(int64_t k, double mu)
{
    long double sum = 0;
    for (int64_t j = k; j < k + 2000; j++)
        sum += expl((long double)j * logl(mu) - mu - lgammal((long double)j + 1));
    return (double)(-log10l(sum));
}

/* -log10 P(X >= a), X hypergeometric, summed from the mass function. */
static double ref_fisher(int64_t a, int64_t n1, int64_t b, int64_t n2)
{
    long double N = (long double)(n1 + n2), K = (long double)(a + b), n = (long double)n1;
    long double lcn = lgammal(N + 1) - lgammal(n + 1) - lgammal(N - n + 1);
    long double sum = 0;
    for (int64_t x = a; x <= n1 && x <= a + b; x++) {
        long double xd = (long double)x;
        if (n - xd > N - K)
            continue;
        long double l = lgammal(K + 1) - lgammal(xd + 1) - lgammal(K - xd + 1)
                        + lgammal(N - K + 1) - lgammal(n - xd + 1) - lgammal(N - K - n + xd + 1)
                        - lcn;
        sum += expl(l);
    }
    return (double)(-log10l(sum));
}

static void poisson_tail(void **state)
{
    (void)state;
    const struct { int64_t k; double mu; } cases[] = {
        { 1, 0.5 }, { 10, 0.0833 }, { 10, 1 }, { 30, 10 }, { 25, 10 }, { 200, 100 },
        { 50, 2.5 }, { 1000, 400 }, { 3, 2.9 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double got = det_poisson_score(cases[i].k, cases[i].mu);
        double want = ref_poisson(cases[i].k, cases[i].mu);
        if (fabs(got - want) > 1e-6 * (1 + want))
            fail_msg("poisson k=%lld mu=%g: %.9g, reference %.9g", (long long)cases[i].k,
                     cases[i].mu, got, want);
    }
    /* Below the mean the tail is most of the mass: 1 - P(X < k), by the reference's complement. */
    const struct { int64_t k; double mu; } low[] = { { 5, 10 }, { 90, 100 }, { 1, 3 } };
    for (size_t i = 0; i < sizeof low / sizeof *low; i++) {
        long double below = 0;
        for (int64_t j = 0; j < low[i].k; j++)
            below += expl((long double)j * logl(low[i].mu) - low[i].mu - lgammal(j + 1.0L));
        double want = (double)(-log10l(1 - below));
        double got = det_poisson_score(low[i].k, low[i].mu);
        if (fabs(got - want) > 1e-9)
            fail_msg("poisson low k=%lld mu=%g: %.12g, reference %.12g", (long long)low[i].k,
                     low[i].mu, got, want);
    }
    assert_true(det_poisson_score(0, 5) == 0);
    assert_true(det_poisson_score(-3, 5) == 0);
    /* Far beyond double's range of p, the score is still finite and capped. */
    double huge = det_poisson_score(100000, 0.01);
    assert_true(huge > 300 && huge <= 1000);
}

static void fisher_tail(void **state)
{
    (void)state;
    /* Fisher's lady tasting tea: 3 of 4 right is p = 17/70; 4 of 4 is p = 1/70. */
    assert_true(fabs(det_fisher_score(3, 4, 1, 4) - -log10(17.0 / 70.0)) < 1e-9);
    assert_true(fabs(det_fisher_score(4, 4, 0, 4) - -log10(1.0 / 70.0)) < 1e-9);
    const struct { int64_t a, n1, b, n2; } cases[] = {
        { 36, 40, 12, 120 }, { 40, 40, 0, 120 }, { 12, 40, 20, 120 }, { 500, 1000, 300, 1000 },
        { 5, 5, 0, 0 + 1 }, { 2, 3, 1, 100 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double got = det_fisher_score(cases[i].a, cases[i].n1, cases[i].b, cases[i].n2);
        double want = ref_fisher(cases[i].a, cases[i].n1, cases[i].b, cases[i].n2);
        if (fabs(got - want) > 1e-6 * (1 + want))
            fail_msg("fisher %lld/%lld vs %lld/%lld: %.9g, reference %.9g",
                     (long long)cases[i].a, (long long)cases[i].n1, (long long)cases[i].b,
                     (long long)cases[i].n2, got, want);
    }
    /* Not over-represented: no score. */
    assert_true(det_fisher_score(12, 40, 36, 120) == 0);
    assert_true(det_fisher_score(10, 40, 60, 120) == 0);
    assert_true(det_fisher_score(0, 40, 0, 120) == 0);
    assert_true(det_fisher_score(5, 4, 0, 4) == 0); /* impossible counts */
}

static void spike_rules(void **state)
{
    (void)state;
    struct det_conf c;
    det_conf_default(&c);
    int64_t day = 86400000;
    struct det_verdict v;
    /* A key never seen: ten crashes on three hosts in five minutes is a spike. */
    det_judge(&c, 10, 3, 0, day, &v);
    assert_true(v.spike);
    assert_true(v.hot);
    assert_true(fabs(v.expected - 24.0 / 1440.0 * 5) < 1e-12); /* the floor rate */
    det_judge(&c, 9, 9, 0, day, &v); /* too few crashes */
    assert_false(v.spike);
    det_judge(&c, 50, 2, 0, day, &v); /* one or two hosts boot-looping */
    assert_false(v.spike);
    /* An established key at 2 per minute: 10 expected in five minutes. */
    det_judge(&c, 25, 20, 2 * 1440, day, &v);
    assert_true(fabs(v.expected - 10) < 1e-9);
    assert_false(v.spike); /* 2.5 times the usual: below the 300 % ratio */
    assert_true(v.hot);    /* but well above the baseline */
    det_judge(&c, 40, 20, 2 * 1440, day, &v);
    assert_true(v.spike);
    det_judge(&c, 11, 20, 2 * 1440, day, &v);
    assert_false(v.spike);
    assert_false(v.hot); /* ordinary noise */
    /* A busy key: the ratio passes long before the p-value would fail. */
    det_judge(&c, 3000, 500, 100 * 1440, day, &v);
    assert_true(v.spike);
}

static void correlation_ranking(void **state)
{
    (void)state;
    struct db_corr_count counts[] = {
        { "annotation:gpu", "nv-551", 12, 40, 36, 120 },  /* evenly spread */
        { "module", "inject.dll@5.5", 36, 40, 12, 120 },  /* planted */
        { "os_version", "Windows 10.0.22631", 12, 40, 36, 120 },
        { "module", "av.dll@3.2", 13, 40, 36, 120 },      /* a hair above: weak */
        { "module", "rare.dll@1", 2, 40, 0, 120 },        /* rare but only in the incident */
        { "product_version", "app 3.1", 10, 40, 90, 120 }, /* under-represented */
    };
    struct db_corr_totals totals = { 40, 120 };
    struct db_corr *out = NULL;
    size_t n = 0;
    struct cm_err err = { 0 };
    assert_int_equal(det_score_correlations(counts, 6, &totals, 10, &out, &n, &err), CM_E_OK);
    assert_int_equal(n, 3); /* the even, equal and under-represented ones are dropped */
    assert_string_equal(out[0].value, "inject.dll@5.5");
    assert_true(fabs(out[0].incident_pct - 90) < 1e-9);
    assert_true(fabs(out[0].rest_pct - 10) < 1e-9);
    assert_true(fabs(out[0].overall_pct - 30) < 1e-9); /* (36 + 12) / 160 */
    for (size_t i = 1; i < n; i++)
        assert_true(out[i].score < out[0].score);
    free(out);
    /* Sampled sides are weighed by their true sizes: 90 % of 40 and 10 % of 4000. */
    struct db_corr_totals big = { 40, 4000 };
    assert_int_equal(det_score_correlations(counts + 1, 1, &big, 10, &out, &n, &err), CM_E_OK);
    assert_true(fabs(out[0].overall_pct - (36.0 + 400.0) / 4040.0 * 100) < 1e-9);
    free(out);
    /* max keeps the best. */
    assert_int_equal(det_score_correlations(counts, 6, &totals, 1, &out, &n, &err), CM_E_OK);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].value, "inject.dll@5.5");
    free(out);
}

/* detector/triage-detector.conf.example sets every key of the table. */
static void conf_example_documents_every_key(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/detector/triage-detector.conf.example", TRIAGE_SOURCE_DIR);
    size_t len;
    char *text = (char *)th_read(path, &len);
    for (size_t i = 0; i < det_conf_table.count; i++) {
        char want[128];
        snprintf(want, sizeof want, "\n%s = ", det_conf_table.keys[i].name);
        if (!strstr(text, want))
            fail_msg("triage-detector.conf.example does not set %s", det_conf_table.keys[i].name);
    }
    /* And the example loads. */
    struct det_conf c;
    det_conf_default(&c);
    struct cm_err err = { 0 };
    if (cm_conf_load(&det_conf_table, &c, path, &err) != CM_E_OK)
        fail_msg("conf example: %s", err.msg);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(poisson_tail),
        cmocka_unit_test(fisher_tail),
        cmocka_unit_test(spike_rules),
        cmocka_unit_test(correlation_ranking),
        cmocka_unit_test(conf_example_documents_every_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
