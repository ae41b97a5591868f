/* cli_bucket_eval.c -- `triagectl bucket-eval LABELS.tsv [--symbols DIR]...`: buckets every dump
 * a labels file lists and scores the bucketing against the labels with B-cubed precision,
 * recall and F1 (within each build_config, then averaged), beside three naive baselines: top
 * frame only, hash of the whole stack, executable + signal. It reports; its exit status does not
 * depend on the scores. Labels: tab-separated with a header naming at least `dump` (a path
 * relative to the file's folder), `bug_id`, `site` and `build_config`. */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyzer/ana.h"
#include "cli/cli.h"
#include "cli/cli_int.h"
#include "common/cm_alloc.h"

#define MAX_ROWS 100000
#define MAX_LINE 65536

struct row {
    char *dump, *bug_id, *site, *config;
    char *ours, *top, *stack, *exe_signal; /* cluster ids per method */
};

/* B-cubed over the rows selected by `config` (NULL: all). */
static void bcubed(const struct row *rows, size_t n, const char *config, size_t method,
                   bool by_bug, double *P, double *R, double *F)
{
    double p = 0, r = 0;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (config && strcmp(rows[i].config, config) != 0)
            continue;
        const char *ci = (&rows[i].ours)[method];
        const char *ti = by_bug ? rows[i].bug_id : rows[i].site;
        size_t same_cluster = 0, same_truth = 0, both = 0;
        for (size_t j = 0; j < n; j++) {
            if (config && strcmp(rows[j].config, config) != 0)
                continue;
            bool sc = strcmp((&rows[j].ours)[method], ci) == 0;
            bool st = strcmp(by_bug ? rows[j].bug_id : rows[j].site, ti) == 0;
            same_cluster += sc;
            same_truth += st;
            both += sc && st;
        }
        p += (double)both / (double)same_cluster;
        r += (double)both / (double)same_truth;
        count++;
    }
    *P = count ? p / (double)count : 0;
    *R = count ? r / (double)count : 0;
    *F = *P + *R > 0 ? 2 * *P * *R / (*P + *R) : 0;
}

static int column(char **cols, size_t ncols, const char *name)
{
    for (size_t i = 0; i < ncols; i++)
        if (strcmp(cols[i], name) == 0)
            return (int)i;
    return -1;
}

static size_t split_tabs(char *line, char **cols, size_t max)
{
    size_t n = 0;
    line[strcspn(line, "\r\n")] = 0;
    for (char *p = line; n < max;) {
        cols[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab)
            break;
        *tab = 0;
        p = tab + 1;
    }
    return n;
}

static const char *const method_names[] = { "ours", "top frame", "whole stack",
                                             "executable+signal" };

int cli_bucket_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        { "symbols", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },          { NULL, 0, NULL, 0 },
    };
    struct cli_symbols syms = { 0 };
    bool json = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
        switch (ch) {
        case 's':
            if (cli_symbols_add(&syms, optarg))
                return 2;
            break;
        case 'j': json = true; break;
        case 'h':
            printf("usage: triagectl bucket-eval LABELS.tsv [--symbols DIR]... [--json]\n");
            return 0;
        default: return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: triagectl bucket-eval LABELS.tsv [--symbols DIR]... [--json]\n");
        return 2;
    }
    const char *labels = argv[optind];
    FILE *f = fopen(labels, "r");
    if (!f) {
        fprintf(stderr, "triagectl bucket-eval: cannot open %s\n", labels);
        return 1;
    }
    char *dircopy = cm_strdup(labels);
    const char *base = dirname(dircopy);
    char *line = cm_malloc(MAX_LINE);
    char *cols[64];
    int c_dump = -1, c_bug = -1, c_site = -1, c_cfg = -1;
    if (fgets(line, MAX_LINE, f)) {
        size_t nc = split_tabs(line, cols, 64);
        c_dump = column(cols, nc, "dump");
        c_bug = column(cols, nc, "bug_id");
        c_site = column(cols, nc, "site");
        c_cfg = column(cols, nc, "build_config");
    }
    if (c_dump < 0 || c_bug < 0) {
        fprintf(stderr, "triagectl bucket-eval: %s: header needs `dump` and `bug_id` columns\n",
                labels);
        fclose(f);
        return 1;
    }
    struct row *rows = cm_calloc(MAX_ROWS, sizeof *rows);
    size_t n = 0, failed = 0;
    int status = 0;
    while (n < MAX_ROWS && fgets(line, MAX_LINE, f)) {
        size_t nc = split_tabs(line, cols, 64);
        if (nc <= (size_t)c_dump || !cols[c_dump][0])
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", base, cols[c_dump]);
        struct cli_result res;
        if (cli_analyze_file(path, &syms, &res) != 0) {
            failed++;
            status = 1;
            continue;
        }
        struct row *r = &rows[n++];
        r->dump = cm_strdup(cols[c_dump]);
        r->bug_id = cm_strdup(cols[c_bug]);
        r->site = cm_strdup(c_site >= 0 && (size_t)c_site < nc ? cols[c_site] : cols[c_bug]);
        r->config = cm_strdup(c_cfg >= 0 && (size_t)c_cfg < nc ? cols[c_cfg] : "-");
        r->ours = cm_strdup(res.keys.bucket);
        r->top = cm_strdup(res.top_frame);
        r->stack = cm_strdup(res.whole_stack);
        r->exe_signal = cm_strdup(res.exe_signal);
        cli_result_free(&res);
        if (!json && isatty(2) && n % 10 == 0)
            fprintf(stderr, "bucket-eval: %zu dumps\r", n);
    }
    fclose(f);
    /* Build configurations, in first-seen order. */
    const char *configs[64];
    size_t ncfg = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < ncfg && strcmp(configs[k], rows[i].config) != 0)
            k++;
        if (k == ncfg && ncfg < 64)
            configs[ncfg++] = rows[i].config;
    }
    if (json)
        printf("{\"dumps\":%zu,\"failed\":%zu,\"methods\":[", n, failed);
    else
        printf("bucket-eval: %zu dumps (%zu unreadable), %zu build configurations\n", n, failed,
               ncfg);
    for (size_t m = 0; m < 4; m++) {
        for (int by_bug = 0; by_bug < 2; by_bug++) {
            double sumF = 0, sumP = 0, sumR = 0;
            if (!json)
                printf("%-18s vs %-5s", method_names[m], by_bug ? "bug" : "site");
            for (size_t k = 0; k < ncfg; k++) {
                double P, R, F;
                bcubed(rows, n, configs[k], m, by_bug, &P, &R, &F);
                sumP += P;
                sumR += R;
                sumF += F;
                if (!json)
                    printf("  %s P=%.3f R=%.3f F1=%.3f", configs[k], P, R, F);
            }
            double avgF = ncfg ? sumF / (double)ncfg : 0;
            if (json)
                printf("%s{\"method\":\"%s\",\"truth\":\"%s\",\"precision\":%.4f,\"recall\":%.4f,"
                       "\"f1\":%.4f}",
                       m || by_bug ? "," : "", method_names[m], by_bug ? "bug_id" : "site",
                       ncfg ? sumP / (double)ncfg : 0, ncfg ? sumR / (double)ncfg : 0, avgF);
            else
                printf("  | average F1=%.3f\n", avgF);
        }
    }
    size_t buckets = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < i && strcmp(rows[j].ours, rows[i].ours) != 0)
            j++;
        buckets += j == i;
    }
    if (json)
        printf("],\"buckets\":%zu}\n", buckets);
    else
        printf("buckets: %zu distinct\n", buckets);
    for (size_t i = 0; i < n; i++) {
        struct row *r = &rows[i];
        char **fields[] = { &r->dump, &r->bug_id, &r->site, &r->config,
                            &r->ours, &r->top,    &r->stack, &r->exe_signal };
        for (size_t k = 0; k < sizeof fields / sizeof *fields; k++)
            cm_free(*fields[k]);
    }
    cli_symbols_free(&syms);
    cm_free(rows);
    cm_free(line);
    cm_free(dircopy);
    return status;
}
