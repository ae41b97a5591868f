/* cli_want.c -- `triagectl want BUCKET N [--json]`: asks the endpoints for the next N full dumps of
 * a bucket (progressive collection, docs/progressive-collection.md). The next N hints counted in
 * the bucket answer "send the dump" whatever the sampling policy says; N = 0 cancels. */
#include <stdio.h>
#include <getopt.h> /* optind */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_int.h"

static const char want_usage[] =
    "usage: triagectl want BUCKET N [--json] [--db URL | --data DIR]\n\n"
    "The next N crashes of BUCKET that endpoints announce with a hint are asked for\n"
    "their full dump (0 cancels an earlier request).\n";

int cli_want(int argc, char **argv)
{
    struct cli_dbopt dbo = { 0 };
    bool json = false;
    int rc = cli_parse_simple(argc, argv, want_usage, 2, &dbo, &json);
    if (rc >= 0)
        return rc;
    const char *bucket = argv[optind];
    char *end;
    long long n = strtoll(argv[optind + 1], &end, 10);
    if (*end || end == argv[optind + 1] || n < 0 || n > 1000000000) {
        fprintf(stderr, "triagectl want: N must be a number from 0 to 1000000000\n");
        return 2;
    }
    struct db_conn *db;
    if (cli_db_connect(&dbo, &db))
        return 1;
    struct cm_err err = { 0 };
    bool found = false;
    rc = 0;
    if (db_want(db, NULL, bucket, n, &found, &err) != CM_E_OK) {
        fprintf(stderr, "triagectl want: %s\n", err.msg);
        rc = 1;
    } else if (!found) {
        fprintf(stderr, "triagectl want: no bucket %s\n", bucket);
        rc = 1;
    } else if (json) {
        printf("{\"bucket\":\"%s\",\"wanted\":%lld}\n", bucket, n);
    } else if (n) {
        printf("the next %lld dump%s of bucket %s will be asked for\n", n, n == 1 ? "" : "s",
               bucket);
    } else {
        printf("no more dumps of bucket %s are asked for beyond the policy\n", bucket);
    }
    db_close(db);
    return rc;
}
