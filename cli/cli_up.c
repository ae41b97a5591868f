/* cli_up.c -- `triagectl up [--data DIR] [--db URL] [--listen HOST:PORT] [--symbols DIR]...`:
 * runs the service in the foreground until Ctrl-C: with no database configured it creates and
 * starts its own PostgreSQL under the data folder, applies migrations, starts ingest, the
 * analyzer and the detector, restarts any that dies, and prints the URL it serves. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_int.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: triagectl up [--data DIR] [--db URL] [--listen HOST:PORT] "
               "[--symbols DIR]... [--workers N]\n"
               "  --data DIR      service state: embedded PostgreSQL and spool (./triage-data)\n"
               "  --db URL        use this PostgreSQL instead of an embedded one (or "
               "DATABASE_URL)\n"
               "  --listen H:P    where uploads are accepted (127.0.0.1:8080); the analyzer's "
               "/metrics is on the next port\n"
               "  --symbols DIR   symbol store for the analyzer; repeatable\n"
               "  --json          print the URL and folders as one JSON line\n");
}

int cli_up(int argc, char **argv)
{
    enum { OPT_LISTEN = CLI_OPT_FREE, OPT_SYMBOLS, OPT_WORKERS, OPT_JSON };
    static const struct option opts[] = {
        { "listen", required_argument, NULL, OPT_LISTEN },
        { "symbols", required_argument, NULL, OPT_SYMBOLS },
        { "workers", required_argument, NULL, OPT_WORKERS },
        { "json", no_argument, NULL, OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        CLI_DB_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    struct cli_service_opts o = { 0 };
    struct cli_dbopt dbo = { 0 };
    bool json = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_LISTEN: o.listen = optarg; break;
        case OPT_SYMBOLS:
            if (cli_symbols_add(&o.symbols, optarg))
                return 2;
            break;
        case OPT_WORKERS: o.workers = optarg; break;
        case OPT_JSON: json = true; break;
        case 'h': usage(stdout); return 0;
        default:
            if (!cli_db_option(&dbo, ch, optarg)) {
                usage(stderr);
                return 2;
            }
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    o.data_dir = dbo.data_dir;
    o.db_url = dbo.db_url;
    struct cli_service svc;
    int rc = cli_service_start(&o, &svc);
    if (rc)
        return rc;
    if (json) /* one line a script can read, then the service runs until Ctrl-C */
        printf("{\"url\":\"%s\",\"data\":\"%s\",\"database\":\"%s\",\"metrics\":"
               "[\"%s/metrics\",\"http://%s/metrics\"]}\n",
               svc.url, svc.data_dir, svc.embedded ? "embedded" : "external", svc.url,
               svc.analyzer_listen);
    else
        printf("triage is up: %s  (uploads: %s/api/v1/crashes and %s/submit; data: %s; "
               "database: %s)\nCtrl-C stops it.\n",
               svc.url, svc.url, svc.url, svc.data_dir,
               svc.embedded ? "embedded PostgreSQL" : "external PostgreSQL");
    fflush(stdout);
    cli_service_run(&svc);
    fprintf(stderr, "triagectl: stopping ...\n");
    cli_service_stop(&svc);
    fprintf(stderr, "triagectl: stopped\n");
    return 0;
}
