/* svc_util.c -- clocks, /proc accounting, statistics and file reading for the service benchmarks
 * (see svc_util.h). /proc/PID/stat fields are those of proc(5): after the command name in
 * parentheses come state (3), ppid (4), ... utime (14), stime (15), cutime (16), cstime (17), in
 * clock ticks. */
#include "bench/service/svc_util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/cm_alloc.h"

uint64_t svc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t svc_self_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct stat_line {
    long ppid;
    unsigned long long utime, stime, cutime, cstime;
};

/* Reads /proc/<pid>/stat; false if the process is gone or the line is not as expected. */
static bool read_stat(const char *pid, struct stat_line *s)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    /* The command name may hold spaces and parentheses: the fields start after the last ')'. */
    char *p = ok ? strrchr(line, ')') : NULL;
    if (!p)
        return false;
    char state;
    long ppid;
    unsigned long long u, st, cu, cs;
    /* state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
     * cutime cstime */
    int n = sscanf(p + 1, " %c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
                   &state, &ppid, &u, &st, &cu, &cs);
    if (n != 6)
        return false;
    *s = (struct stat_line){ .ppid = ppid, .utime = u, .stime = st, .cutime = cu, .cstime = cs };
    return true;
}

double svc_proc_tree_cpu_ms(pid_t pid)
{
    char self[32];
    snprintf(self, sizeof self, "%ld", (long)pid);
    struct stat_line s;
    if (!read_stat(self, &s))
        return -1;
    unsigned long long ticks = s.utime + s.stime + s.cutime + s.cstime;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        struct stat_line c;
        if (read_stat(e->d_name, &c) && c.ppid == (long)pid)
            ticks += c.utime + c.stime + c.cutime + c.cstime;
    }
    if (d)
        closedir(d);
    long hz = sysconf(_SC_CLK_TCK);
    return (double)ticks * 1000.0 / (double)(hz > 0 ? hz : 100);
}

bool svc_machine_cpu_ms(double *busy, double *total)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return false;
    unsigned long long v[10] = { 0 };
    /* cpu user nice system idle iowait irq softirq steal guest guest_nice */
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (n < 8)
        return false;
    /* guest time is already inside user time */
    unsigned long long all = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
    unsigned long long idle = v[3] + v[4];
    long hz = sysconf(_SC_CLK_TCK);
    double k = 1000.0 / (double)(hz > 0 ? hz : 100);
    *busy = (double)(all - idle) * k;
    *total = (double)all * k;
    return true;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

double svc_quantile(const double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (v[hi] - v[lo]) * (pos - (double)lo);
}

void svc_stats_of(double *v, size_t n, struct svc_stats *out)
{
    *out = (struct svc_stats){ .n = n };
    if (n == 0)
        return;
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    out->mean = sum / (double)n;
    out->min = v[0];
    out->max = v[n - 1];
    out->p50 = svc_quantile(v, n, 0.50);
    out->p90 = svc_quantile(v, n, 0.90);
    out->p99 = svc_quantile(v, n, 0.99);
}

bool svc_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len)
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
            uint8_t *bigger = cap >= max_bytes ? NULL : cm_realloc(buf, cap * 2);
            if (!bigger) {
                fprintf(stderr, "bench: %s: larger than %zu bytes or out of memory\n", path,
                        max_bytes);
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

size_t svc_parse_list(const char *text, unsigned *v, size_t cap)
{
    size_t n = 0;
    const char *p = text;
    while (p && *p) {
        char *end = NULL;
        errno = 0;
        unsigned long x = strtoul(p, &end, 10);
        if (end == p || errno || x == 0 || x > 100000 || n == cap)
            return 0;
        v[n++] = (unsigned)x;
        if (*end == ',')
            end++;
        else if (*end)
            return 0;
        p = end;
    }
    return n;
}
