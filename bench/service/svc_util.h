/* svc_util.h -- what the service benchmarks (bench/service/) share: clocks, the CPU time of
 * processes read from /proc (a daemon with its threads and its direct children, as the
 * benchmark counts them), the whole machine's busy time from /proc/stat, order statistics with
 * p99, and reading a whole file.
 *
 * Benchmarks measure; they never assert a time (bench/README.md). */
#ifndef TRIAGE_SVC_UTIL_H
#define TRIAGE_SVC_UTIL_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>
#include <sys/types.h> /* pid_t */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t svc_now_ns(void);
/* CPU time (user + system) of this process so far, all threads, in nanoseconds. */
uint64_t svc_self_cpu_ns(void);

/* CPU time in milliseconds of pid (all its threads, plus the children it has reaped) and of its
 * direct children still running (PostgreSQL's backends, nginx's workers, the analyzer's
 * sandboxed children). -1 when pid does not exist. */
double svc_proc_tree_cpu_ms(pid_t pid);

/* Busy and total CPU time of the whole machine in milliseconds, all CPUs (/proc/stat: busy is
 * everything but idle and iowait). false when /proc/stat cannot be read. */
bool svc_machine_cpu_ms(double *busy, double *total);

struct svc_stats {
    size_t n;
    double min, max, mean, p50, p90, p99;
};
/* Order statistics of v[0..n); sorts v. All zero when n is 0. */
void svc_stats_of(double *v, size_t n, struct svc_stats *out);
/* The q-quantile (0..1) of the sorted v, linear between the closest ranks. */
double svc_quantile(const double *v, size_t n, double q);

/* Reads a whole file (at most max_bytes); *out is owned by the caller (free()). Prints the
 * problem to stderr and returns false on failure. */
bool svc_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len);

/* Comma-separated unsigned numbers ("1,4,16,64") into v (at most cap); returns the count, 0 on
 * a malformed list. */
size_t svc_parse_list(const char *text, unsigned *v, size_t cap);

#endif
