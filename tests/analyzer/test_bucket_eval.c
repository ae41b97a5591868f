/* test_bucket_eval.c -- buckets that group by cause, on the labeled ELF cores: `triagectl
 * bucket-eval` with the corpus's symbol store scores a site-level B-cubed F1 of at least 0.95,
 * strictly better than each naive baseline; without any symbols the faulting modules still
 * separate (no single catch-all bucket). */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/th.h"

static json_t *eval(bool symbols)
{
    char labels[4096], store[4096];
    snprintf(labels, sizeof labels, "%s", th_corpus("elfcores/labels.tsv"));
    snprintf(store, sizeof store, "%s", th_corpus("elfcores/symbols"));
    char *argv[] = { (char *)th_triagectl(), "bucket-eval", "--json", labels,
                     symbols ? "--symbols" : NULL, store, NULL };
    char *out = NULL, *errout = NULL;
    int rc = th_run(argv, &out, &errout, 600);
    if (rc != 0)
        fail_msg("bucket-eval exited %d: %s", rc, errout);
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    if (!j)
        fail_msg("bucket-eval printed no JSON: %s", jerr.text);
    free(out);
    free(errout);
    return j;
}

static double f1_of(json_t *j, const char *method, const char *truth)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(j, "methods"), i, m) {
        if (!strcmp(json_string_value(json_object_get(m, "method")), method) &&
            !strcmp(json_string_value(json_object_get(m, "truth")), truth))
            return json_real_value(json_object_get(m, "f1"));
    }
    fail_msg("no %s/%s figure", method, truth);
    return 0;
}

static void site_f1_beats_every_baseline(void **state)
{
    json_t *j = eval(true);
    assert_int_equal(json_integer_value(json_object_get(j, "dumps")), 120);
    assert_int_equal(json_integer_value(json_object_get(j, "failed")), 0);
    double ours = f1_of(j, "ours", "site");
    if (ours < 0.95)
        fail_msg("site-level F1 %.3f is below 0.95", ours);
    static const char *const baselines[] = { "top frame", "whole stack", "executable+signal" };
    for (size_t i = 0; i < 3; i++) {
        double b = f1_of(j, baselines[i], "site");
        if (!(ours > b))
            fail_msg("ours %.3f does not beat the %s baseline %.3f", ours, baselines[i], b);
    }
    json_decref(j);
}

static void without_symbols_modules_still_separate(void **state)
{
    json_t *j = eval(false);
    json_int_t buckets = json_integer_value(json_object_get(j, "buckets"));
    /* Four programs crash in four ways; a single catch-all bucket would be 1. */
    if (buckets < 4)
        fail_msg("without symbols only %lld buckets", (long long)buckets);
    double ours = f1_of(j, "ours", "site");
    if (!(ours > f1_of(j, "top frame", "site")))
        fail_msg("without symbols ours %.3f does not beat the top-frame baseline", ours);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(site_f1_beats_every_baseline),
        cmocka_unit_test(without_symbols_modules_still_separate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
