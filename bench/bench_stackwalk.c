/* bench_stackwalk.c -- the whole offline pipeline per dump with a warm symbol cache, in one
 * process, as the analyzer daemon runs it: ana_load() (decompression and parsing), ana_analyze()
 * (walk without symbols for the fault key, walk with symbols, signature and keys) and
 * ana_json_text(), timed separately with CLOCK_MONOTONIC.
 *
 *   bench_stackwalk [--reps N] [--warmup N] [--per-dump] [--once]
 *                   (--family NAME [--symbols DIR]... FILE...)...
 *
 * Each family gets one ana_symstore over its own --symbols folders (none: no symbols), created
 * once and kept for all its passes. The first pass is the cold one: it parses the symbol files
 * (reported as "cold pass"); the --warmup passes (at least one) are not timed; then every timed
 * pass runs every dump once. A dump's time is its median over the timed passes; the table gives
 * the mean, median, 90th percentile and maximum of those over the family. Dumps the readers
 * reject (Breakpad microdumps are text) are counted and left out.
 *
 * --once is a one-shot run instead, for timing from outside (bench/stackwalk.sh runs it beside
 * `triagectl stackwalk --json`): each dump once through the same calls, its JSON on stdout, exit
 * status 1 if any dump failed. It is the analyzer library without the rest of triagectl, so the
 * two differ by what triagectl's process start costs (its shared libraries). */
#include <stdio.h>
#include <stdlib.h>

#include "analyzer/ana.h"
#include "analyzer/ana_sym.h"
#include "bench/bench_util.h"
#include "common/cm_alloc.h"

/* Under callgrind (`--collect-atstart=no`), the last timed pass counts the instructions of each
 * dump's load + analyze and writes one profile part per dump, named by its path. Outside
 * valgrind the requests are a few no-op instructions. */
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define BENCH_CALLGRIND 1
#endif
#endif
#ifndef BENCH_CALLGRIND
#define CALLGRIND_TOGGLE_COLLECT
#define CALLGRIND_DUMP_STATS_AT(name) ((void)(name))
#endif

/* What is timed per dump and pass, in nanoseconds. */
enum { T_LOAD, T_ANALYZE, T_JSON, T_WALK, T_WALK_CPU, T_COUNT };

struct dump_result {
    bool rejected;
    size_t frames;  /* frames over all threads, from the last pass */
    double cold_ns; /* load + analyze in the first pass */
    double *ns[T_COUNT]; /* one per timed pass */
};

/* Runs one dump through the pipeline; false when it cannot be loaded or analyzed. With count,
 * callgrind counts its load + analyze (see above). */
static bool walk_once(const struct bench_dump *d, struct ana_symstore *store,
                      struct dump_result *res, double ns[T_COUNT], bool count, struct cm_err *err)
{
    struct ana_crash *c = NULL;
    struct ana_keys keys;
    bool ok = false;
    if (count)
        CALLGRIND_TOGGLE_COLLECT;
    uint64_t cpu0 = bench_cpu_ns();
    uint64_t t0 = bench_now_ns();
    enum cm_code rc = ana_load(d->bytes, d->len, NULL, &c, err);
    uint64_t t1 = bench_now_ns();
    if (rc == CM_E_OK)
        rc = ana_analyze(c, store, NULL, &keys, err);
    uint64_t t2 = bench_now_ns();
    uint64_t cpu1 = bench_cpu_ns();
    if (count) {
        CALLGRIND_TOGGLE_COLLECT;
        CALLGRIND_DUMP_STATS_AT(d->path);
    }
    if (rc != CM_E_OK)
        goto out;
    uint64_t t3 = bench_now_ns();
    char *json = ana_json_text(c, &keys, false);
    uint64_t t4 = bench_now_ns();
    if (!json)
        goto out;
    cm_free(json);
    ns[T_LOAD] = (double)(t1 - t0);
    ns[T_ANALYZE] = (double)(t2 - t1);
    ns[T_JSON] = (double)(t4 - t3);
    ns[T_WALK] = (double)(t2 - t0);
    ns[T_WALK_CPU] = (double)(cpu1 - cpu0);
    res->frames = 0;
    for (size_t i = 0; i < c->thread_count; i++)
        res->frames += c->threads[i].frame_count;
    ok = true;
out:
    ana_crash_free(c);
    return ok;
}

static double mean_of(const double *v, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    return n ? sum / (double)n : 0;
}

/* Runs family f: cold pass, warm-up, timed passes. Returns false when the store cannot be made. */
static bool run_family(const struct bench_args *a, const struct bench_family *f,
                       struct dump_result *res, struct ana_symstore_stats *stats,
                       uint64_t *faults)
{
    struct ana_symstore *store = NULL;
    struct cm_err err;
    if (f->symbol_dir_count &&
        ana_symstore_new(f->symbol_dirs, f->symbol_dir_count, NULL, &store, &err) != CM_E_OK) {
        fprintf(stderr, "bench_stackwalk: %s: symbol store: %s\n", f->name, err.msg);
        return false;
    }
    unsigned warmup = a->warmup ? a->warmup : 1; /* the cold pass is always a warm-up */
    unsigned passes = warmup + a->reps;
    for (unsigned r = 0; r < passes; r++) {
        if (r == warmup)
            *faults = bench_minflt();
        for (size_t i = f->first; i < f->first + f->count; i++) {
            double ns[T_COUNT];
            if (res[i].rejected)
                continue;
            if (!walk_once(&a->dumps[i], store, &res[i], ns, r == passes - 1, &err)) {
                fprintf(stderr, "bench_stackwalk: %s: %s (left out)\n", a->dumps[i].path,
                        err.msg);
                res[i].rejected = true;
                continue;
            }
            if (r == 0)
                res[i].cold_ns = ns[T_WALK];
            if (r >= warmup)
                for (int k = 0; k < T_COUNT; k++)
                    res[i].ns[k][r - warmup] = ns[k];
        }
    }
    *faults = bench_minflt() - *faults;
    *stats = (struct ana_symstore_stats){ 0 };
    if (store)
        ana_symstore_get_stats(store, stats);
    ana_symstore_free(store);
    return true;
}

/* Median over the timed passes of each measure of one dump. */
static void dump_medians(const struct bench_args *a, const struct dump_result *r,
                         double out[T_COUNT])
{
    double *tmp = cm_calloc(a->reps, sizeof *tmp);
    for (int k = 0; k < T_COUNT; k++) {
        out[k] = 0;
        if (!tmp)
            continue;
        for (unsigned p = 0; p < a->reps; p++)
            tmp[p] = r->ns[k][p];
        struct bench_stats s;
        bench_stats_of(tmp, a->reps, &s);
        out[k] = s.median;
    }
    cm_free(tmp);
}

static void print_family(const struct bench_args *a, const struct bench_family *f,
                         const struct dump_result *res, const struct ana_symstore_stats *st,
                         uint64_t faults)
{
    size_t n = 0, over_1ms = 0, frames = 0;
    double cold_sum = 0;
    double *v[T_COUNT] = { 0 };
    for (int k = 0; k < T_COUNT; k++)
        if (!(v[k] = cm_calloc(f->count ? f->count : 1, sizeof(double))))
            goto out;
    for (size_t i = f->first; i < f->first + f->count; i++) {
        if (res[i].rejected)
            continue;
        double m[T_COUNT];
        dump_medians(a, &res[i], m);
        for (int k = 0; k < T_COUNT; k++)
            v[k][n] = m[k];
        over_1ms += m[T_WALK] >= 1e6;
        frames += res[i].frames;
        cold_sum += res[i].cold_ns;
        n++;
    }
    double load_mean = mean_of(v[T_LOAD], n), analyze_mean = mean_of(v[T_ANALYZE], n);
    double json_mean = mean_of(v[T_JSON], n), cpu_mean = mean_of(v[T_WALK_CPU], n);
    struct bench_stats s;
    bench_stats_of(v[T_WALK], n, &s);
    printf("| %s | %s | %zu | %zu | %.1f | %.2f | **%.3f** | %.3f | %.3f | %.3f | %.3f | %.3f | "
           "%.3f | %.3f | %zu | %.0f | %llu / %llu |\n",
           f->name, f->symbol_dir_count ? "yes" : "none", n, f->count - n,
           n ? (double)frames / (double)n : 0.0, cold_sum / 1e6, s.mean / 1e6, s.median / 1e6,
           s.p90 / 1e6, s.max / 1e6, cpu_mean / 1e6, load_mean / 1e6, analyze_mean / 1e6,
           json_mean / 1e6, over_1ms,
           n ? (double)faults / (double)a->reps / (double)n : 0.0,
           (unsigned long long)st->loads,
           (unsigned long long)(st->hits + st->negative_hits));
out:
    for (int k = 0; k < T_COUNT; k++)
        cm_free(v[k]);
}

/* The --once mode; returns the exit status. */
static int run_once(const struct bench_args *a)
{
    int rc = 0;
    for (size_t fi = 0; fi < a->family_count; fi++) {
        const struct bench_family *f = &a->families[fi];
        struct ana_symstore *store = NULL;
        struct cm_err err;
        if (f->symbol_dir_count && ana_symstore_new(f->symbol_dirs, f->symbol_dir_count, NULL,
                                                    &store, &err) != CM_E_OK) {
            fprintf(stderr, "bench_stackwalk: %s: symbol store: %s\n", f->name, err.msg);
            return 1;
        }
        for (size_t i = f->first; i < f->first + f->count; i++) {
            struct ana_crash *c = NULL;
            struct ana_keys keys;
            char *json = NULL;
            if (ana_load(a->dumps[i].bytes, a->dumps[i].len, NULL, &c, &err) != CM_E_OK ||
                ana_analyze(c, store, NULL, &keys, &err) != CM_E_OK) {
                fprintf(stderr, "bench_stackwalk: %s: %s\n", a->dumps[i].path, err.msg);
                rc = 1;
            } else if ((json = ana_json_text(c, &keys, false))) {
                puts(json);
            } else {
                fprintf(stderr, "bench_stackwalk: %s: out of memory writing JSON\n",
                        a->dumps[i].path);
                rc = 1;
            }
            cm_free(json);
            ana_crash_free(c);
        }
        ana_symstore_free(store);
    }
    return rc;
}

static void print_per_dump(const struct bench_args *a, const struct dump_result *res)
{
    printf("\nfamily\tdump\tframes\tload_us\tanalyze_us\tjson_us\twalk_us\twalk_cpu_us\t"
           "cold_us\n");
    for (size_t fi = 0; fi < a->family_count; fi++) {
        const struct bench_family *f = &a->families[fi];
        for (size_t i = f->first; i < f->first + f->count; i++) {
            if (res[i].rejected) {
                printf("%s\t%s\trejected\n", f->name, a->dumps[i].path);
                continue;
            }
            double m[T_COUNT];
            dump_medians(a, &res[i], m);
            printf("%s\t%s\t%zu\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\n", f->name,
                   a->dumps[i].path, res[i].frames, m[T_LOAD] / 1e3, m[T_ANALYZE] / 1e3,
                   m[T_JSON] / 1e3, m[T_WALK] / 1e3, m[T_WALK_CPU] / 1e3, res[i].cold_ns / 1e3);
        }
    }
}

int main(int argc, char **argv)
{
    struct bench_args a;
    if (!bench_args_parse(argc, argv, BENCH_ALLOW_SYMBOLS | BENCH_ALLOW_ONCE, &a)) {
        fprintf(stderr, "usage: bench_stackwalk [--reps N] [--warmup N] [--per-dump] [--once] "
                        "(--family NAME [--symbols DIR]... FILE...)...\n");
        bench_args_free(&a);
        return 2;
    }
    int rc = 1;
    if (a.once) {
        rc = run_once(&a);
        bench_args_free(&a);
        return rc;
    }
    struct ana_symstore_stats *stats = cm_calloc(a.family_count, sizeof *stats);
    uint64_t *faults = cm_calloc(a.family_count, sizeof *faults);
    struct dump_result *res = cm_calloc(a.dump_count, sizeof *res);
    if (!res || !stats || !faults)
        goto out;
    for (size_t i = 0; i < a.dump_count; i++)
        for (int k = 0; k < T_COUNT; k++)
            if (!(res[i].ns[k] = cm_calloc(a.reps, sizeof(double))))
                goto out;
    for (size_t fi = 0; fi < a.family_count; fi++)
        if (!run_family(&a, &a.families[fi], res, &stats[fi], &faults[fi]))
            goto out;
    printf("bench_stackwalk: per dump, in one process with a warm symbol cache: ana_load() + "
           "ana_analyze() (\"walk\"), then ana_json_text(); CLOCK_MONOTONIC; cold pass + %u "
           "warm-up + %u timed passes; a dump's time is its median pass; times in ms\n\n",
           a.warmup ? a.warmup - 1 : 0, a.reps);
    printf("| family | symbols | dumps | rejected | frames/dump | cold pass total | "
           "walk mean | walk median | walk p90 | walk max | walk CPU mean | load mean | "
           "analyze mean | json mean | dumps >= 1 ms | page faults per dump | "
           "symbol files parsed / cache hits |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
           "\n");
    for (size_t fi = 0; fi < a.family_count; fi++)
        print_family(&a, &a.families[fi], res, &stats[fi], faults[fi]);
    if (a.per_dump)
        print_per_dump(&a, res);
    rc = 0;
out:
    if (res)
        for (size_t i = 0; i < a.dump_count; i++)
            for (int k = 0; k < T_COUNT; k++)
                cm_free(res[i].ns[k]);
    cm_free(res);
    cm_free(stats);
    cm_free(faults);
    bench_args_free(&a);
    return rc;
}
