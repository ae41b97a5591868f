/* bench_util.c -- command line, file reading, clock and statistics for the benchmark programs
 * (see bench_util.h). Dumps are read whole before any timing starts, so a measurement never
 * includes the file system. */
#include "bench/bench_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/cm_alloc.h"

#define MAX_FILE_BYTES ((size_t)1 << 30)

static bool read_file(const char *path, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench: %s: %s\n", path, strerror(errno));
        return false;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = cm_malloc(cap);
    bool ok = buf != NULL;
    while (ok) {
        if (n == cap) {
            uint8_t *bigger = cap >= MAX_FILE_BYTES ? NULL : cm_realloc(buf, cap * 2);
            if (!bigger) {
                fprintf(stderr, "bench: %s: larger than %zu bytes or out of memory\n", path,
                        cap);
                ok = false;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                fprintf(stderr, "bench: %s: read error\n", path);
                ok = false;
            }
            break;
        }
    }
    fclose(f);
    if (!ok) {
        cm_free(buf);
        return false;
    }
    *out = buf;
    *len = n;
    return true;
}

static bool parse_count(const char *opt, const char *text, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = text ? strtoul(text, &end, 10) : 0;
    if (!text || *text == '\0' || *end != '\0' || errno || v > 1000000) {
        fprintf(stderr, "bench: %s needs a count from 0 to 1000000\n", opt);
        return false;
    }
    *out = (unsigned)v;
    return true;
}

static struct bench_family *new_family(struct bench_args *a, const char *name)
{
    struct bench_family *f = cm_reallocarray(a->families, a->family_count + 1, sizeof *f);
    if (!f)
        return NULL;
    a->families = f;
    f = &a->families[a->family_count++];
    *f = (struct bench_family){ .name = name, .first = a->dump_count };
    return f;
}

bool bench_args_parse(int argc, char **argv, unsigned allow, struct bench_args *a)
{
    *a = (struct bench_args){ .reps = 10, .warmup = 1 };
    struct bench_family *fam = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--reps") == 0 || strcmp(arg, "--warmup") == 0) {
            if (!parse_count(arg, val, arg[2] == 'r' ? &a->reps : &a->warmup))
                return false;
            i++;
        } else if (strcmp(arg, "--per-dump") == 0) {
            a->per_dump = true;
        } else if (strcmp(arg, "--once") == 0 && (allow & BENCH_ALLOW_ONCE)) {
            a->once = true;
        } else if (strcmp(arg, "--family") == 0) {
            if (!val) {
                fprintf(stderr, "bench: --family needs a name\n");
                return false;
            }
            if (!(fam = new_family(a, val)))
                return false;
            i++;
        } else if (strcmp(arg, "--symbols") == 0) {
            bool allowed = allow & BENCH_ALLOW_SYMBOLS;
            if (!allowed || !val) {
                fprintf(stderr, "bench: --symbols %s\n",
                        allowed ? "needs a folder" : "is not an option of this program");
                return false;
            }
            if (!fam && !(fam = new_family(a, "all")))
                return false;
            if (fam->symbol_dir_count == BENCH_MAX_SYMBOL_DIRS) {
                fprintf(stderr, "bench: at most %d --symbols per family\n",
                        BENCH_MAX_SYMBOL_DIRS);
                return false;
            }
            fam->symbol_dirs[fam->symbol_dir_count++] = val;
            i++;
        } else if (arg[0] == '-' && arg[1] == '-') {
            fprintf(stderr, "bench: unknown option %s\n", arg);
            return false;
        } else {
            if (!fam && !(fam = new_family(a, "all")))
                return false;
            struct bench_dump *d = cm_reallocarray(a->dumps, a->dump_count + 1, sizeof *d);
            if (!d)
                return false;
            a->dumps = d;
            d = &a->dumps[a->dump_count];
            *d = (struct bench_dump){ .path = arg };
            if (!read_file(arg, &d->bytes, &d->len))
                return false;
            a->dump_count++;
            fam->count++;
        }
    }
    if (a->dump_count == 0) {
        fprintf(stderr, "bench: no dump given\n");
        return false;
    }
    if (a->reps == 0) {
        fprintf(stderr, "bench: --reps must be at least 1\n");
        return false;
    }
    return true;
}

void bench_args_free(struct bench_args *a)
{
    for (size_t i = 0; i < a->dump_count; i++)
        cm_free(a->dumps[i].bytes);
    cm_free(a->dumps);
    cm_free(a->families);
    *a = (struct bench_args){ 0 };
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_minflt(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_minflt : 0;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Linear interpolation between the closest ranks of the sorted v (q in [0, 1]). */
static double quantile(const double *v, size_t n, double q)
{
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (v[hi] - v[lo]) * (pos - (double)lo);
}

void bench_stats_of(double *v, size_t n, struct bench_stats *out)
{
    *out = (struct bench_stats){ .n = n };
    if (n == 0)
        return;
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    out->mean = sum / (double)n;
    double sq = 0;
    for (size_t i = 0; i < n; i++)
        sq += (v[i] - out->mean) * (v[i] - out->mean);
    out->stddev = n > 1 ? sqrt(sq / (double)(n - 1)) : 0;
    out->min = v[0];
    out->max = v[n - 1];
    out->median = quantile(v, n, 0.5);
    out->p90 = quantile(v, n, 0.9);
}

double bench_spread_pct(const struct bench_stats *s)
{
    return s->median > 0 ? (s->max - s->min) / s->median * 100.0 : 0;
}
