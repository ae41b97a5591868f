/* cli_incidents.c -- `triagectl incidents [--open] [--json]` and `triagectl incident ID`: what
 * the detector (triage-detector, docs/incidents.md) found. The list shows each incident's
 * headline and counts; one incident adds its buckets, its rate per minute as a sparkline, its
 * correlations and sample crash ids. --json prints the objects the webhook posts
 * (triage_incident_json). Strings that come from dumps are escaped before they reach the
 * terminal. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "common/cm_alloc.h"
#include "common/cm_log.h"

/* Terminal-safe copy of an untrusted string (control bytes and non-ASCII as \xNN). */
static const char *safe(const char *s, char *buf, size_t n)
{
    return s ? cm_log_escape(s, strlen(s), buf, n) : "";
}

static void module_text(const struct db_incident *x, char *out, size_t n)
{
    char m[160], v[120];
    if (x->fault_module)
        snprintf(out, n, "%s%s%s", safe(x->fault_module, m, sizeof m),
                 x->fault_module_version && *x->fault_module_version ? "@" : "",
                 safe(x->fault_module_version, v, sizeof v));
    else
        snprintf(out, n, "bucket %s", safe(x->bucket_key, m, sizeof m));
}

static void print_list(const struct db_incident *x, size_t n, bool open_only)
{
    printf("%-6s %-7s %-20s %-32s %8s %7s %7s  %s\n", "ID", "STATUS", "OPENED", "FAULT MODULE",
           "CRASHES", "HOSTS", "BUCKETS", "HEADLINE");
    for (size_t i = 0; i < n; i++) {
        char t[32], mod[300], h[600];
        module_text(&x[i], mod, sizeof mod);
        printf("%-6lld %-7s %-20s %-32.32s %8lld %7lld %7lld  %s\n", (long long)x[i].id,
               x[i].status, cli_time_text(x[i].opened_at_ms, t, sizeof t), mod,
               (long long)x[i].crashes, (long long)x[i].hosts, (long long)x[i].bucket_count,
               safe(x[i].headline, h, sizeof h));
    }
    printf("%zu %sincident%s\n", n, open_only ? "open " : "", n == 1 ? "" : "s");
}

/* The series as one line of block characters, at most width columns (minutes are merged,
 * keeping each group's largest count); a minute without crashes is a space. */
static void sparkline(const int64_t *series, size_t n, size_t width)
{
    static const char *const blocks[] = { "\u2581", "\u2582", "\u2583", "\u2584",
                                          "\u2585", "\u2586", "\u2587", "\u2588" };
    size_t per = n > width ? (n + width - 1) / width : 1;
    int64_t max = 0;
    for (size_t i = 0; i < n; i++)
        max = series[i] > max ? series[i] : max;
    for (size_t i = 0; i < n; i += per) {
        int64_t v = 0;
        for (size_t k = i; k < i + per && k < n; k++)
            v = series[k] > v ? series[k] : v;
        if (v <= 0 || max <= 0)
            fputs(" ", stdout);
        else
            fputs(blocks[(size_t)((v * 8 - 1) / max)], stdout);
    }
}

static void print_one(const struct db_incident *x)
{
    char t1[32], t2[32], t3[32], mod[300], buf[700];
    module_text(x, mod, sizeof mod);
    printf("incident %lld (%s, %s)\n%s\n\n", (long long)x->id, x->status, x->kind,
           safe(x->headline, buf, sizeof buf));
    printf("fault module: %s\n", mod);
    printf("opened:       %s (onset %s, last spike %s)\n",
           cli_time_text(x->opened_at_ms, t1, sizeof t1), cli_time_text(x->onset_ms, t2, sizeof t2),
           cli_time_text(x->last_spike_ms, t3, sizeof t3));
    if (x->closed_at_ms)
        printf("closed:       %s\n", cli_time_text(x->closed_at_ms, t1, sizeof t1));
    printf("first seen:   %s\n", cli_time_text(x->first_seen_ms, t1, sizeof t1));
    printf("crashes:      %lld since onset, peak %lld/min at %s, baseline %.2f/hour\n",
           (long long)x->crashes, (long long)x->peak_per_minute,
           cli_time_text(x->peak_at_ms, t1, sizeof t1), x->baseline_per_hour);
    printf("hosts:        %lld distinct\n", (long long)x->hosts);
    if (x->series_len) {
        printf("rate:         ");
        sparkline(x->series, x->series_len, 100);
        printf("\n              per minute from %s, %zu minutes\n",
               cli_time_text(x->series_start_ms, t1, sizeof t1), x->series_len);
    }
    printf("\nbuckets (%zu):\n  %8s %6s  %-16s %s\n", x->buckets_len, "CRASHES", "HOSTS",
           "BUCKET", "SIGNATURE");
    for (size_t i = 0; i < x->buckets_len && i < 50; i++) {
        char key[64], sig[400];
        printf("  %8lld %6lld  %-16.16s %s%s\n", (long long)x->buckets[i].crashes,
               (long long)x->buckets[i].hosts, safe(x->buckets[i].bucket_key, key, sizeof key),
               safe(x->buckets[i].signature, sig, sizeof sig),
               x->buckets[i].spiked_at_ms ? "  [spiked]" : "");
    }
    if (x->buckets_len > 50)
        printf("  ... %zu more\n", x->buckets_len - 50);
    printf("\ncorrelations (incident's crashes against all crashes in the window):\n");
    if (!x->corr_count)
        printf("  none yet\n");
    else
        printf("  %7s %9s %8s  %-16s %s\n", "SCORE", "INCIDENT", "OVERALL", "ATTRIBUTE", "VALUE");
    for (size_t i = 0; i < x->corr_count; i++) {
        char a[100], v[400];
        printf("  %7.1f %8.1f%% %7.1f%%  %-16s %s\n", x->corr[i].score, x->corr[i].incident_pct,
               x->corr[i].overall_pct, safe(x->corr[i].attribute, a, sizeof a),
               safe(x->corr[i].value, v, sizeof v));
    }
    if (x->sample_count) {
        printf("\nsample crashes (`triagectl crash ID`):\n");
        for (size_t i = 0; i < x->sample_count; i++)
            printf("  %s\n", x->sample_crash_ids[i]);
    }
}

int cli_incidents(int argc, char **argv)
{
    static const struct option opts[] = {
        { "open", no_argument, NULL, 'o' },       { "json", no_argument, NULL, 'j' },
        { "limit", required_argument, NULL, 'n' }, { "help", no_argument, NULL, 'h' },
        CLI_DB_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    struct cli_dbopt dbo = { 0 };
    bool open_only = false, json = false;
    long limit = 50;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "ojn:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'o': open_only = true; break;
        case 'j': json = true; break;
        case 'n': limit = strtol(optarg, NULL, 10); break;
        case 'h':
            printf("usage: triagectl incidents [--open] [--limit N] [--json] [--db URL | --data "
                   "DIR]\n");
            return 0;
        default:
            if (!cli_db_option(&dbo, ch, optarg))
                return 2;
        }
    }
    if (limit <= 0 || limit > 100000 || optind != argc) {
        fprintf(stderr, "usage: triagectl incidents [--open] [--limit N] [--json]\n");
        return 2;
    }
    struct db_conn *db;
    if (cli_db_connect(&dbo, &db))
        return 1;
    struct cm_err err = { 0 };
    int rc = 0;
    if (json) {
        char *text = NULL;
        if (db_incidents_json(db, NULL, open_only, (size_t)limit, &text, &err) != CM_E_OK) {
            fprintf(stderr, "triagectl incidents: %s\n", err.msg);
            rc = 1;
        } else {
            puts(text);
        }
        cm_free(text);
    } else {
        struct db_incident *x = NULL;
        size_t n = 0;
        if (db_incidents_list(db, NULL, open_only, (size_t)limit, &x, &n, &err) != CM_E_OK) {
            fprintf(stderr, "triagectl incidents: %s\n", err.msg);
            rc = 1;
        } else {
            print_list(x, n, open_only);
        }
        db_incidents_free(x, n);
    }
    db_close(db);
    return rc;
}

int cli_incident(int argc, char **argv)
{
    static const char usage[] =
        "usage: triagectl incident ID [--json] [--db URL | --data DIR] (ID from `triagectl "
        "incidents`)\n";
    struct cli_dbopt dbo = { 0 };
    bool json = false;
    int rc = cli_parse_simple(argc, argv, usage, 1, &dbo, &json);
    if (rc >= 0)
        return rc;
    char *end = NULL;
    long long id = strtoll(argv[optind], &end, 10);
    if (id <= 0 || *end) {
        fputs(usage, stderr);
        return 2;
    }
    struct db_conn *db;
    if (cli_db_connect(&dbo, &db))
        return 1;
    struct cm_err err = { 0 };
    rc = 0;
    enum cm_code code;
    if (json) {
        char *text = NULL;
        code = db_incident_json(db, NULL, id, &text, &err);
        if (!code)
            puts(text);
        cm_free(text);
    } else {
        struct db_incident *x = NULL;
        code = db_incident_get(db, NULL, id, 5, &x, &err);
        if (!code)
            print_one(x);
        db_incidents_free(x, x ? 1 : 0);
    }
    if (code == CM_E_NOTFOUND) {
        fprintf(stderr, "triagectl incident: no incident %lld (see `triagectl incidents`)\n", id);
        rc = 1;
    } else if (code) {
        fprintf(stderr, "triagectl incident: %s\n", err.msg);
        rc = 1;
    }
    db_close(db);
    return rc;
}
