/* cli_main.c -- triagectl: the one command responders and operators use. Dispatches to one
 * cli_<subcommand>.c each.
 *
 * It is built twice from the same table: `triagectl` holds the offline commands only (stackwalk,
 * bucket-eval) and links nothing but the analyzer, so a one-shot stackwalk starts as fast as a
 * debugger does; `triagectl-net` holds every command, with PostgreSQL and HTTP. triagectl runs
 * triagectl-net (found next to itself) for the commands it does not hold, so users only ever
 * type `triagectl`. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/cm_log.h"

#ifdef CLI_NET
#define NET(fn) fn
#else
#define NET(fn) NULL /* in triagectl-net */
#endif

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    { "demo", NET(cli_demo), "start the service, upload sample dumps, print the buckets" },
    { "up", NET(cli_up), "run the service (embedded PostgreSQL unless --db) until Ctrl-C" },
    { "upload", NET(cli_upload), "upload dumps to the service (retries, outbox, progress)" },
    { "stackwalk", cli_stackwalk, "read dumps offline and print their stacks" },
    { "bucket-eval", cli_bucket_eval, "score bucketing against labeled dumps (B-cubed)" },
    { "buckets", NET(cli_buckets), "what is crashing: buckets by crashes in a window" },
    { "bucket", NET(cli_bucket), "one bucket" },
    { "crash", NET(cli_crash), "one crash with its processed stack" },
    { "reprocess", NET(cli_reprocess), "re-queue crashes after new rules or symbols" },
    { "want", NET(cli_want), "ask endpoints for the next N full dumps of a bucket" },
    { "incidents", NET(cli_incidents), "mass-crash incidents the detector opened" },
    { "incident", NET(cli_incident), "one incident: buckets, rate, hosts, likely cause" },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: triagectl COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`triagectl COMMAND --help` tells more.\n");
}

/* Runs triagectl-net from this program's folder with the same arguments. */
static int run_net(char **argv)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 16);
    if (n <= 0) {
        fprintf(stderr, "triagectl: cannot find its own program\n");
        return 1;
    }
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    strcpy(slash ? slash + 1 : exe, "triagectl-net");
    argv[0] = exe;
    execv(exe, argv);
    fprintf(stderr, "triagectl: cannot run %s: %s (it is built with triagectl)\n", exe,
            strerror(errno));
    return 1;
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
            return commands[i].run ? commands[i].run(argc - 1, argv + 1) : run_net(argv);
    fprintf(stderr, "triagectl: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
