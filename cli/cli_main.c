/* cli_main.c -- triagectl: the one command responders and operators use. Dispatches to one
 * cli_<subcommand>.c each. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/cm_log.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    { "demo", cli_demo, "start the service, upload sample dumps, print the buckets" },
    { "up", cli_up, "run the service (embedded PostgreSQL unless --db) until Ctrl-C" },
    { "upload", cli_upload, "upload dumps to the service (retries, outbox, progress)" },
    { "stackwalk", cli_stackwalk, "read dumps offline and print their stacks" },
    { "bucket-eval", cli_bucket_eval, "score bucketing against labeled dumps (B-cubed)" },
    { "buckets", cli_buckets, "what is crashing: buckets by crashes in a window" },
    { "bucket", cli_bucket, "one bucket" },
    { "crash", cli_crash, "one crash with its processed stack" },
    { "reprocess", cli_reprocess, "re-queue crashes after new rules or symbols" },
    { "want", cli_want, "ask endpoints for the next N full dumps of a bucket" },
    { "incidents", cli_incidents, "mass-crash incidents the detector opened" },
    { "incident", cli_incident, "one incident: buckets, rate, hosts, likely cause" },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: triagectl COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`triagectl COMMAND --help` tells more.\n");
}

int main(int argc, char **argv)
{
    cm_log_set_name("triagectl");
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "triagectl: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
