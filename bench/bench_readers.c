/* bench_readers.c -- the dump readers alone: ana_load() (decompression and parsing into the crash
 * model, no unwinding, no symbols) over dumps held in memory, timed in process with
 * CLOCK_MONOTONIC.
 *
 *   bench_readers [--reps N] [--warmup N] [--per-dump] (--family NAME FILE...)...
 *
 * Every pass loads every dump of a family once; a pass's time is the sum of its ana_load() calls
 * (ana_crash_free() is not timed). For each family it prints dumps/s and MB/s (1 MB = 10^6
 * bytes) of decompressed and of input bytes, as the median pass with the slowest and fastest
 * pass beside it, and the same from the median pass's thread CPU time; and the minor page
 * faults per load (memory the kernel maps and zeroes, which instruction counts miss). A dump
 * the readers reject (a Breakpad microdump is text, not MDMP) is timed like the others:
 * rejecting quickly is part of the job.
 *
 * Under `valgrind --tool=callgrind --toggle-collect=ana_load --dump-after=ana_load` with
 * `--reps 1 --warmup 0`, callgrind writes one profile part per dump, in argument order
 * (bench/readers.sh reads them). */
#include <stdio.h>
#include <stdlib.h>

#include "analyzer/ana.h"
#include "bench/bench_util.h"
#include "common/cm_alloc.h"

struct dump_result {
    size_t decompressed_bytes;
    enum cm_code code; /* of the last ana_load */
    double *ns, *cpu_ns; /* one per timed pass: wall clock, thread CPU time */
};

/* One ana_load() of dump d; returns its time in nanoseconds, and its CPU time in *cpu_ns. */
static double load_once(const struct bench_dump *d, enum cm_code *code, double *cpu_ns)
{
    struct ana_crash *c = NULL;
    struct cm_err err;
    uint64_t cpu0 = bench_cpu_ns();
    uint64_t t0 = bench_now_ns();
    *code = ana_load(d->bytes, d->len, NULL, &c, &err);
    uint64_t t1 = bench_now_ns();
    uint64_t cpu1 = bench_cpu_ns();
    ana_crash_free(c);
    *cpu_ns = (double)(cpu1 - cpu0);
    return (double)(t1 - t0);
}

static void print_family(const struct bench_args *a, const struct bench_family *f,
                         const struct dump_result *res, uint64_t faults)
{
    size_t ok = 0;
    double in_bytes = 0, out_bytes = 0;
    for (size_t i = f->first; i < f->first + f->count; i++) {
        ok += res[i].code == CM_E_OK;
        in_bytes += (double)a->dumps[i].len;
        out_bytes += (double)res[i].decompressed_bytes;
    }
    double *pass_s = cm_calloc(a->reps, sizeof *pass_s);
    double *cpu_s = cm_calloc(a->reps, sizeof *cpu_s);
    if (!pass_s || !cpu_s)
        goto out;
    for (unsigned r = 0; r < a->reps; r++)
        for (size_t i = f->first; i < f->first + f->count; i++) {
            pass_s[r] += res[i].ns[r] / 1e9;
            cpu_s[r] += res[i].cpu_ns[r] / 1e9;
        }
    struct bench_stats s, cpu;
    bench_stats_of(pass_s, a->reps, &s);
    bench_stats_of(cpu_s, a->reps, &cpu);
    /* Rates are counts over times: the fastest pass gives the highest rate. */
    double n = (double)f->count;
    printf("| %s | %zu | %zu | %.2f | %.2f | %.3f [%.3f .. %.3f] | %.0f%% | %.3f | "
           "%.0f [%.0f .. %.0f] | %.0f | %.1f [%.1f .. %.1f] | %.1f | %.1f [%.1f .. %.1f] | "
           "%.1f | %.0f |\n",
           f->name, f->count, f->count - ok, in_bytes / 1e6, out_bytes / 1e6, s.median * 1e3,
           s.min * 1e3, s.max * 1e3, bench_spread_pct(&s), cpu.median * 1e3, n / s.median,
           n / s.max, n / s.min, n / cpu.median, out_bytes / 1e6 / s.median,
           out_bytes / 1e6 / s.max, out_bytes / 1e6 / s.min, out_bytes / 1e6 / cpu.median,
           in_bytes / 1e6 / s.median, in_bytes / 1e6 / s.max, in_bytes / 1e6 / s.min,
           in_bytes / 1e6 / cpu.median, (double)faults / (double)a->reps / n);
out:
    cm_free(pass_s);
    cm_free(cpu_s);
}

static void print_per_dump(const struct bench_args *a, const struct dump_result *res)
{
    printf("\nfamily\tdump\tinput_bytes\tdecompressed_bytes\tresult\tmedian_us\tmin_us\tmax_us\n");
    for (size_t fi = 0; fi < a->family_count; fi++) {
        const struct bench_family *f = &a->families[fi];
        for (size_t i = f->first; i < f->first + f->count; i++) {
            struct bench_stats s;
            bench_stats_of(res[i].ns, a->reps, &s);
            printf("%s\t%s\t%zu\t%zu\t%s\t%.1f\t%.1f\t%.1f\n", f->name, a->dumps[i].path,
                   a->dumps[i].len, res[i].decompressed_bytes,
                   res[i].code == CM_E_OK ? "ok" : cm_code_name(res[i].code), s.median / 1e3,
                   s.min / 1e3, s.max / 1e3);
        }
    }
}

int main(int argc, char **argv)
{
    struct bench_args a;
    if (!bench_args_parse(argc, argv, 0, &a)) {
        fprintf(stderr, "usage: bench_readers [--reps N] [--warmup N] [--per-dump] "
                        "(--family NAME FILE...)...\n");
        bench_args_free(&a);
        return 2;
    }
    int rc = 1;
    uint64_t *faults = NULL;
    struct dump_result *res = cm_calloc(a.dump_count, sizeof *res);
    if (!res)
        goto out;
    struct ana_limits lim;
    ana_limits_default(&lim);
    for (size_t i = 0; i < a.dump_count; i++) {
        /* The decompressed size, found outside any timing (and outside callgrind's toggle). */
        uint8_t *raw = NULL;
        size_t raw_len = 0;
        if (ana_decompress(a.dumps[i].bytes, a.dumps[i].len, &lim, &raw, &raw_len, NULL) ==
            CM_E_OK)
            res[i].decompressed_bytes = raw_len;
        cm_free(raw);
        res[i].ns = cm_calloc(a.reps, sizeof *res[i].ns);
        res[i].cpu_ns = cm_calloc(a.reps, sizeof *res[i].cpu_ns);
        if (!res[i].ns || !res[i].cpu_ns)
            goto out;
    }
    if (!(faults = cm_calloc(a.family_count, sizeof *faults)))
        goto out;
    /* Family by family, so one family's caches do not warm another's. */
    for (size_t fi = 0; fi < a.family_count; fi++) {
        const struct bench_family *f = &a.families[fi];
        for (unsigned r = 0; r < a.warmup + a.reps; r++) {
            if (r == a.warmup)
                faults[fi] = bench_minflt();
            for (size_t i = f->first; i < f->first + f->count; i++) {
                double cpu_ns;
                double ns = load_once(&a.dumps[i], &res[i].code, &cpu_ns);
                if (r >= a.warmup) {
                    res[i].ns[r - a.warmup] = ns;
                    res[i].cpu_ns[r - a.warmup] = cpu_ns;
                }
            }
        }
        faults[fi] = bench_minflt() - faults[fi];
    }
    printf("bench_readers: ana_load() from memory (decompression + parsing, no unwinding), "
           "CLOCK_MONOTONIC, %u warm-up + %u timed passes per family; "
           "figures: median pass [lowest .. highest pass]; \"by CPU\": from the median pass's "
           "thread CPU time (CLOCK_THREAD_CPUTIME_ID), which time taken by other processes "
           "does not inflate; 1 MB = 10^6 bytes\n\n",
           a.warmup, a.reps);
    printf("| family | dumps | rejected | input MB | decompressed MB | pass ms | spread | "
           "pass CPU ms | dumps/s | dumps/s by CPU | MB/s decompressed | by CPU | MB/s input | "
           "by CPU | page faults per dump |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t fi = 0; fi < a.family_count; fi++)
        print_family(&a, &a.families[fi], res, faults[fi]);
    if (a.per_dump)
        print_per_dump(&a, res);
    rc = 0;
out:
    if (res)
        for (size_t i = 0; i < a.dump_count; i++) {
            cm_free(res[i].ns);
            cm_free(res[i].cpu_ns);
        }
    cm_free(res);
    cm_free(faults);
    bench_args_free(&a);
    return rc;
}
