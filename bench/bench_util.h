/* bench_util.h -- what the benchmark programs share: the command line (dumps grouped into
 * families, each with its own symbol folders), reading the dumps into memory before any timing,
 * a monotonic clock, and order statistics over repeated measurements.
 *
 * Benchmarks measure; they never assert a time. Figures go to stdout as Markdown tables, so a run
 * can be pasted into an issue note as it stands. */
#ifndef TRIAGE_BENCH_UTIL_H
#define TRIAGE_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

#define BENCH_MAX_SYMBOL_DIRS 8

struct bench_dump {
    const char *path;
    uint8_t *bytes; /* the file as read (compressed or not); owned by the args */
    size_t len;
};

/* Consecutive dumps of one corpus. */
struct bench_family {
    const char *name;
    size_t first, count; /* dumps[first .. first+count) */
    const char *symbol_dirs[BENCH_MAX_SYMBOL_DIRS];
    size_t symbol_dir_count;
};

struct bench_args {
    struct bench_dump *dumps;
    size_t dump_count;
    struct bench_family *families;
    size_t family_count;
    unsigned reps;   /* timed passes over every family */
    unsigned warmup; /* untimed passes first */
    bool per_dump;   /* also print one TSV line per dump */
    bool once;       /* one pass, no timing: print each dump's JSON (a one-shot run) */
};

enum { BENCH_ALLOW_SYMBOLS = 1, BENCH_ALLOW_ONCE = 2 };

/* Parses `[--reps N] [--warmup N] [--per-dump] [--once]
 * (--family NAME [--symbols DIR]... FILE...)...` in order (a FILE belongs to the last --family;
 * before any, to a family named "all"), then reads every file. --symbols and --once are refused
 * unless allowed (BENCH_ALLOW_*). Prints the problem and returns false on bad usage or an
 * unreadable file. Free with bench_args_free(). */
bool bench_args_parse(int argc, char **argv, unsigned allow, struct bench_args *a);
void bench_args_free(struct bench_args *a);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);
/* CLOCK_THREAD_CPUTIME_ID in nanoseconds: the calling thread's CPU time, which other processes
 * on a busy machine disturb less than the wall clock. */
uint64_t bench_cpu_ns(void);
/* Minor page faults of the process so far (getrusage ru_minflt): memory the kernel had to map
 * and zero, which the instruction counts do not show. */
uint64_t bench_minflt(void);

struct bench_stats {
    size_t n;
    double min, max, mean, median, p90, stddev;
};
/* Order statistics of v[0..n); sorts v. All zero when n is 0. */
void bench_stats_of(double *v, size_t n, struct bench_stats *out);

/* The spread of the measurements as a percentage of their median: (max - min) / median * 100. */
double bench_spread_pct(const struct bench_stats *s);

#endif
