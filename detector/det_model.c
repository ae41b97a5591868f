/* det_model.c -- the arithmetic of detection: how surprising a recent crash count is against a
 * baseline rate (the upper tail of a Poisson distribution), and how surprising an attribute's
 * share of an incident's crashes is against the other crashes (the upper tail of a
 * hypergeometric distribution: a one-sided Fisher exact test). Both are summed term by term in
 * log space from the observed value outward, each term from the previous one by the ratio of
 * consecutive probabilities, so no factorial is ever formed and tiny p-values do not underflow.
 * docs/incidents.md states the model and its parameters. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/cm_alloc.h"
#include "detector/det.h"

#define SCORE_MAX 1000.0
#define TERMS_MAX 10000000 /* a bound on any sum; reached only with absurd inputs */

static double to_score(double log_p)
{
    double s = -log_p / log(10.0);
    if (!(s > 0)) /* also NaN */
        return 0;
    return s > SCORE_MAX ? SCORE_MAX : s;
}

double det_poisson_score(int64_t k, double mu)
{
    if (k <= 0)
        return 0;
    if (!(mu > 0))
        return SCORE_MAX;
    double kd = (double)k;
    double log_pk = -mu + kd * log(mu) - lgamma(kd + 1); /* log P(X = k) */
    if (kd > mu) {
        /* P(X >= k) = P(X = k) * (1 + mu/(k+1) + mu^2/((k+1)(k+2)) + ...): decreasing terms. */
        double sum = 1, term = 1;
        for (int64_t j = k; j < k + TERMS_MAX; j++) {
            term *= mu / (double)(j + 1);
            sum += term;
            if (term < sum * 1e-17)
                break;
        }
        return to_score(log_pk + log(sum));
    }
    /* At or below the mean the tail is large: 1 - P(X < k), summed downward from k - 1, where
     * the terms fall away from the mode. */
    double log_pk1 = log_pk + log(kd / mu); /* log P(X = k - 1) */
    double sum = 1, term = 1;
    for (int64_t j = k - 1; j > 0 && j > k - 1 - TERMS_MAX; j--) {
        term *= (double)j / mu;
        sum += term;
        if (term < sum * 1e-17)
            break;
    }
    double below = exp(log_pk1) * sum;
    return below >= 1 ? 0 : to_score(log1p(-below));
}

/* log C(n, k) */
static double log_choose(double n, double k)
{
    return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1);
}

double det_fisher_score(int64_t a, int64_t n1, int64_t b, int64_t n2)
{
    if (a <= 0 || n1 <= 0 || a > n1 || b < 0 || n2 < 0 || b > n2)
        return 0;
    /* Over-represented: a / n1 > b / n2, i.e. a * n2 > b * n1 (in doubles: no overflow). */
    if (!((double)a * (double)n2 > (double)b * (double)n1))
        return 0;
    double N = (double)(n1 + n2), K = (double)(a + b), n = (double)n1;
    int64_t hi = (a + b) < n1 ? (a + b) : n1; /* largest possible count in the incident */
    double log_pa = log_choose(K, (double)a) + log_choose(N - K, n - (double)a)
                    - log_choose(N, n); /* log P(X = a) */
    /* P(X = x + 1) / P(X = x) = (K - x)(n - x) / ((x + 1)(N - K - n + x + 1)). Above the mean
     * (where a lies) the ratios are below one, so the sum is dominated by its first terms. */
    double sum = 1, term = 1;
    for (int64_t x = a; x < hi && x < a + TERMS_MAX; x++) {
        double xd = (double)x;
        double den = (xd + 1) * (N - K - n + xd + 1);
        if (den <= 0)
            break;
        term *= (K - xd) * (n - xd) / den;
        sum += term;
        if (term < sum * 1e-17)
            break;
    }
    return to_score(log_pa + log(sum));
}

void det_judge(const struct det_conf *c, int64_t recent_crashes, int64_t recent_hosts,
               int64_t baseline_crashes, int64_t baseline_ms, struct det_verdict *v)
{
    double recent_min = (double)(c->recent_ms / 60000 > 0 ? c->recent_ms / 60000 : 1);
    double base_min = (double)(baseline_ms / 60000 > 0 ? baseline_ms / 60000 : 1);
    double rate = (double)(baseline_crashes > 0 ? baseline_crashes : 0) / base_min;
    double floor_rate = (double)c->floor_per_day / 1440.0;
    v->expected = (rate > floor_rate ? rate : floor_rate) * recent_min;
    v->score = det_poisson_score(recent_crashes, v->expected);
    v->spike = recent_crashes >= (int64_t)c->min_crashes
               && recent_hosts >= (int64_t)c->min_hosts
               && (double)recent_crashes * 100.0 >= (double)c->min_ratio_pct * v->expected
               && v->score >= (double)c->open_score;
    v->hot = (double)recent_crashes > v->expected && v->score >= (double)c->hot_score;
}

static double pct(int64_t part, int64_t whole)
{
    return whole > 0 ? 100.0 * (double)part / (double)whole : 0;
}

static int by_rank(const void *pa, const void *pb)
{
    const struct db_corr *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    double da = a->incident_pct - a->overall_pct, db = b->incident_pct - b->overall_pct;
    if (da != db)
        return da > db ? -1 : 1;
    int c = strcmp(a->attribute, b->attribute);
    return c ? c : strcmp(a->value, b->value);
}

enum cm_code det_score_correlations(const struct db_corr_count *counts, size_t count,
                                    const struct db_corr_totals *totals, size_t max,
                                    struct db_corr **out, size_t *n, struct cm_err *err)
{
    *out = NULL;
    *n = 0;
    if (count == 0)
        return CM_E_OK;
    struct db_corr *c = cm_calloc(count, sizeof *c);
    if (!c)
        return cm_fail(err, CM_E_NOMEM, "correlations: out of memory for %zu", count);
    size_t kept = 0;
    double ti = (double)totals->incident, tr = (double)totals->rest;
    for (size_t i = 0; i < count; i++) {
        const struct db_corr_count *k = &counts[i];
        double pi = pct(k->incident_with, k->incident_n), pr = pct(k->rest_with, k->rest_n);
        if (pi <= pr || k->incident_with <= 0)
            continue; /* not over-represented */
        struct db_corr *x = &c[kept++];
        x->attribute = k->attribute;
        x->value = k->value;
        x->incident_pct = pi;
        x->rest_pct = pr;
        /* The whole population's share: each side's sampled share weighed by its true size. */
        x->overall_pct = ti + tr > 0 ? (pi * ti + pr * tr) / (ti + tr) : pi;
        x->score = det_fisher_score(k->incident_with, k->incident_n, k->rest_with, k->rest_n);
        x->incident_count = k->incident_with;
    }
    qsort(c, kept, sizeof *c, by_rank);
    *out = c;
    *n = kept < max ? kept : max;
    return CM_E_OK;
}
