/* cli_db.c -- how triagectl's database commands find the database: --db URL, else
 * $DATABASE_URL, else the embedded cluster running in --data DIR (default ./triage-data); plus
 * the shared flags and the duration and time formats responders type and read. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_int.h"

int cli_db_connect(const struct cli_dbopt *o, struct db_conn **out)
{
    *out = NULL;
    struct cm_err err = { 0 };
    const char *url = o->db_url;
    if (!url || !*url)
        url = getenv("DATABASE_URL");
    char conninfo[1024];
    if (!url || !*url) {
        const char *data = o->data_dir ? o->data_dir : CLI_DEFAULT_DATA_DIR;
        if (db_cluster_conninfo_for(data, NULL, conninfo, sizeof conninfo, &err) != CM_E_OK) {
            fprintf(stderr,
                    "triagectl: no database: %s\n"
                    "  start the service with `triagectl up --data %s`, or give --db URL "
                    "(or DATABASE_URL)\n",
                    err.msg, data);
            return 1;
        }
        url = conninfo;
    }
    if (db_open(url, NULL, out, &err) != CM_E_OK) {
        fprintf(stderr, "triagectl: cannot connect to the database: %s\n", err.msg);
        return 1;
    }
    return 0;
}

bool cli_db_option(struct cli_dbopt *o, int ch, const char *arg)
{
    if (ch == CLI_OPT_DB)
        o->db_url = arg;
    else if (ch == CLI_OPT_DATA)
        o->data_dir = arg;
    else
        return false;
    return true;
}

int cli_parse_simple(int argc, char **argv, const char *usage, int positional,
                     struct cli_dbopt *dbo, bool *json)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, CLI_DB_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        switch (ch) {
        case 'j': *json = true; break;
        case 'h': fputs(usage, stdout); return 0;
        default:
            if (!cli_db_option(dbo, ch, optarg)) {
                fputs(usage, stderr);
                return 2;
            }
        }
    }
    if (argc - optind != positional) {
        fputs(usage, stderr);
        return 2;
    }
    return -1;
}

int cli_parse_duration(const char *s, int64_t *ms)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return 1;
    double unit;
    if (strcmp(end, "s") == 0)
        unit = 1e3;
    else if (strcmp(end, "m") == 0)
        unit = 60e3;
    else if (strcmp(end, "h") == 0)
        unit = 3600e3;
    else if (strcmp(end, "d") == 0)
        unit = 86400e3;
    else
        return 1;
    if (v * unit > 1e15)
        return 1;
    *ms = (int64_t)(v * unit);
    return 0;
}

int64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *cli_time_text(int64_t ms, char *buf, size_t n)
{
    if (ms <= 0) {
        snprintf(buf, n, "-");
        return buf;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}
