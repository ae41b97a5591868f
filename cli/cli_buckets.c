/* cli_buckets.c -- `triagectl buckets [--since 1h] [--top N] [--json]` and `triagectl bucket ID`:
 * what is crashing, most crashes first, with the fault module, crash and host counts, and when
 * each bucket was first and last seen. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_int.h"

static json_t *bucket_json(const struct db_bucket *b)
{
    char t1[32], t2[32];
    json_t *o = json_object();
    json_object_set_new(o, "bucket", json_string(b->bucket_key));
    json_object_set_new(o, "signature", json_string(b->signature ? b->signature : ""));
    json_object_set_new(o, "fault_module", b->fault_module ? json_string(b->fault_module)
                                                           : json_null());
    json_object_set_new(o, "fault_module_version",
                        b->fault_module_version ? json_string(b->fault_module_version)
                                                : json_null());
    json_object_set_new(o, "count", json_integer(b->window_count));
    json_object_set_new(o, "total", json_integer(b->crash_count));
    json_object_set_new(o, "hosts", json_integer(b->host_count));
    json_object_set_new(o, "first_seen", json_string(cli_time_text(b->first_seen_ms, t1, 32)));
    json_object_set_new(o, "last_seen", json_string(cli_time_text(b->last_seen_ms, t2, 32)));
    return o;
}

static void print_table(const struct db_bucket *b, size_t n, const char *since)
{
    printf("%-12s %7s %6s  %-20s %-28s %s\n", "BUCKET", "CRASHES", "HOSTS", "LAST SEEN",
           "FAULT MODULE", "SIGNATURE");
    for (size_t i = 0; i < n; i++) {
        char t[32], mod[64];
        snprintf(mod, sizeof mod, "%s%s%s", b[i].fault_module ? b[i].fault_module : "-",
                 b[i].fault_module_version ? "@" : "",
                 b[i].fault_module_version ? b[i].fault_module_version : "");
        printf("%-12.12s %7lld %6lld  %-20s %-28.28s %s\n", b[i].bucket_key,
               (long long)b[i].window_count, (long long)b[i].host_count,
               cli_time_text(b[i].last_seen_ms, t, sizeof t), mod,
               b[i].signature ? b[i].signature : "");
    }
    printf("%zu bucket%s with crashes in the last %s\n", n, n == 1 ? "" : "s", since);
}

int cli_buckets(int argc, char **argv)
{
    static const struct option opts[] = {
        { "since", required_argument, NULL, 's' }, { "top", required_argument, NULL, 't' },
        { "json", no_argument, NULL, 'j' },        { "help", no_argument, NULL, 'h' },
        CLI_DB_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    struct cli_dbopt dbo = { 0 };
    const char *since = "1h";
    long top = 20;
    bool json = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "s:t:jh", opts, NULL)) != -1) {
        switch (ch) {
        case 's': since = optarg; break;
        case 't': top = strtol(optarg, NULL, 10); break;
        case 'j': json = true; break;
        case 'h':
            printf("usage: triagectl buckets [--since 1h] [--top N] [--json] [--db URL | --data "
                   "DIR]\n");
            return 0;
        default:
            if (!cli_db_option(&dbo, ch, optarg))
                return 2;
        }
    }
    int64_t window;
    if (cli_parse_duration(since, &window) || top <= 0 || top > 100000 || optind != argc) {
        fprintf(stderr, "usage: triagectl buckets [--since 90m|2h|30d] [--top N] [--json]\n");
        return 2;
    }
    struct db_conn *db;
    if (cli_db_connect(&dbo, &db))
        return 1;
    struct db_bucket *b = NULL;
    size_t n = 0;
    struct cm_err err = { 0 };
    int rc = 0;
    if (db_buckets_top(db, NULL, cli_now_ms() - window, (size_t)top, &b, &n, &err) != CM_E_OK) {
        fprintf(stderr, "triagectl buckets: %s\n", err.msg);
        rc = 1;
    } else if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, bucket_json(&b[i]));
        char *s = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
        puts(s ? s : "[]");
        free(s);
        json_decref(arr);
    } else {
        print_table(b, n, since);
    }
    db_buckets_free(b, n);
    db_close(db);
    return rc;
}

int cli_bucket(int argc, char **argv)
{
    struct cli_dbopt dbo = { 0 };
    bool json = false;
    int rc = cli_parse_simple(argc, argv,
                              "usage: triagectl bucket ID [--json] [--db URL | --data DIR]\n", 1,
                              &dbo, &json);
    if (rc >= 0)
        return rc;
    struct db_conn *db;
    if (cli_db_connect(&dbo, &db))
        return 1;
    struct db_bucket *b = NULL;
    struct cm_err err = { 0 };
    rc = 0;
    enum cm_code code = db_bucket_get(db, NULL, argv[optind], &b, &err);
    if (code == CM_E_NOTFOUND) {
        fprintf(stderr, "triagectl bucket: no bucket %s (see `triagectl buckets`)\n",
                argv[optind]);
        rc = 1;
    } else if (code) {
        fprintf(stderr, "triagectl bucket: %s\n", err.msg);
        rc = 1;
    } else if (json) {
        json_t *o = bucket_json(b);
        char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
        json_decref(o);
    } else {
        char t1[32], t2[32];
        printf("bucket:       %s\nsignature:    %s\nfault module: %s %s\ncrashes:      %lld\n"
               "hosts:        %lld\nfirst seen:   %s\nlast seen:    %s\n",
               b->bucket_key, b->signature ? b->signature : "",
               b->fault_module ? b->fault_module : "-",
               b->fault_module_version ? b->fault_module_version : "",
               (long long)b->crash_count, (long long)b->host_count,
               cli_time_text(b->first_seen_ms, t1, 32), cli_time_text(b->last_seen_ms, t2, 32));
    }
    if (b)
        db_buckets_free(b, 1);
    db_close(db);
    return rc;
}
