/* cli_reprocess.c -- `triagectl reprocess [--bucket B | --since T | --all]`: re-queues crashes
 * for analysis after new signature rules or symbols; their counts leave their old buckets first,
 * so every crash is counted exactly once again. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_int.h"

int cli_reprocess(int argc, char **argv)
{
    static const struct option opts[] = {
        { "bucket", required_argument, NULL, 'b' }, { "since", required_argument, NULL, 's' },
        { "all", no_argument, NULL, 'a' },          { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },         CLI_DB_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    struct cli_dbopt dbo = { 0 };
    struct db_reprocess_filter f = { 0 };
    bool json = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "b:s:ajh", opts, NULL)) != -1) {
        switch (ch) {
        case 'b': f.bucket_key = optarg; break;
        case 's': {
            int64_t ms;
            if (cli_parse_duration(optarg, &ms)) {
                fprintf(stderr, "triagectl reprocess: --since takes a duration like 90m or 30d\n");
                return 2;
            }
            f.since_ms = cli_now_ms() - ms;
            break;
        }
        case 'a': f.all = true; break;
        case 'j': json = true; break;
        case 'h':
            printf("usage: triagectl reprocess [--bucket B | --since T | --all] [--json]\n");
            return 0;
        default:
            if (!cli_db_option(&dbo, ch, optarg))
                return 2;
        }
    }
    int chosen = (f.bucket_key != NULL) + (f.since_ms != 0) + f.all;
    if (chosen != 1 || optind != argc) {
        fprintf(stderr, "usage: triagectl reprocess [--bucket B | --since T | --all]\n");
        return 2;
    }
    struct db_conn *db;
    if (cli_db_connect(&dbo, &db))
        return 1;
    size_t n = 0;
    struct cm_err err = { 0 };
    int rc = 0;
    if (db_reprocess(db, &f, &n, &err) != CM_E_OK) {
        fprintf(stderr, "triagectl reprocess: %s\n", err.msg);
        rc = 1;
    } else if (json) {
        printf("{\"requeued\":%zu}\n", n);
    } else {
        printf("%zu crash%s re-queued for analysis\n", n, n == 1 ? "" : "es");
    }
    db_close(db);
    return rc;
}
