/* cli_stackwalk.c -- `triagectl stackwalk FILE... [--symbols DIR]... [--json | --human]`:
 * reads dumps offline and prints the processed crash. Exit status: 0 processed, 1 not a dump or
 * malformed (the message says what and where), 2 usage; with several files, the worst. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana.h"
#include "cli/cli.h"
#include "cli/cli_int.h"
#include "common/cm_alloc.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: triagectl stackwalk FILE... [--symbols DIR]... [--json | --human] "
               "[--pretty]\n"
               "  FILE      a minidump, ELF core or Windows kernel dump, raw, zstd or gzip\n"
               "  --symbols DIR  a symbol store (Breakpad NAME/ID/NAME.sym or .build-id/); "
               "repeatable, searched in order\n"
               "  --json    the processed-crash JSON, one object per line per file\n"
               "  --human   a readable report (the default)\n"
               "  --summary one line per dump\n"
               "  --dwarf-inlines  list inlined calls found in DWARF in each frame's `inlines`\n"
               "            (by default a frame shows its innermost source line, as eu-stack does;\n"
               "            inlined calls from Breakpad .sym files are always listed)\n");
}

enum mode { MODE_HUMAN, MODE_JSON, MODE_SUMMARY };

/* One line: file, format, system, crash reason and address, top frame. */
static void print_summary(const char *path, const struct ana_crash *c, const struct ana_keys *k)
{
    const struct ana_crash_info *ci = &c->crash_info;
    static const char *const formats[] = { "?", "minidump", "elfcore", "kernel" };
    printf("%s  %s %s/%s  ", path, formats[c->format <= 3 ? c->format : 0],
           c->system_info.os ? c->system_info.os : "?", ana_cpu_name(c->system_info.cpu));
    if (!ci->crashed)
        printf("no crash");
    else
        printf("%s", ci->type ? ci->type : "?");
    if (ci->crashed && ci->has_address)
        printf(" @ 0x%llx", (unsigned long long)ci->address);
    printf("  threads=%zu modules=%zu", c->thread_count, c->module_count);
    int ct = ci->crashing_thread;
    if (ct >= 0 && (size_t)ct < c->thread_count) {
        const struct ana_thread *t = &c->threads[ct];
        int pc = ana_reg_pc(t->ctx.cpu);
        uint64_t addr = t->frame_count ? t->frames[0].pc : t->ctx.r[pc >= 0 ? pc : 0];
        int m = t->frame_count ? t->frames[0].module : ana_module_at(c, addr);
        if (m >= 0)
            printf("  top=%s+0x%llx", ana_module_basename(&c->modules[m]),
                   (unsigned long long)(addr - c->modules[m].base));
        else
            printf("  top=0x%llx", (unsigned long long)addr);
    }
    if (c->warning_count)
        printf("  warnings=%zu", c->warning_count);
    printf("  bucket=%.12s  %s", k->bucket, k->signature);
    putchar('\n');
}

static int walk_one(const char *path, struct cli_symbols *syms, enum mode mode, unsigned json_flags)
{
    struct cli_result res;
    if (cli_analyze_file(path, syms, &res) != 0) {
        fprintf(stderr, "triagectl stackwalk: %s: %s\n", path, res.err.msg);
        if (mode == MODE_SUMMARY)
            printf("%s  error: %s\n", path, res.err.msg);
        return 1;
    }
    int rc = 0;
    if (mode == MODE_SUMMARY) {
        print_summary(path, res.crash, &res.keys);
    } else if (mode == MODE_JSON) {
        char *text = ana_json_text(res.crash, &res.keys, json_flags);
        if (text) {
            fputs(text, stdout);
            fputc('\n', stdout);
            cm_free(text);
        } else {
            fprintf(stderr, "triagectl stackwalk: %s: out of memory writing JSON\n", path);
            rc = 1;
        }
    } else {
        ana_report_human(stdout, res.crash, &res.keys);
    }
    cli_result_free(&res);
    return rc;
}

int cli_stackwalk(int argc, char **argv)
{
    static const struct option opts[] = {
        { "symbols", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
        { "human", no_argument, NULL, 'H' },         { "pretty", no_argument, NULL, 'p' },
        { "summary", no_argument, NULL, 'S' },       { "help", no_argument, NULL, 'h' },
        { "dwarf-inlines", no_argument, NULL, 'I' },
        { NULL, 0, NULL, 0 },
    };
    struct cli_symbols syms = { 0 };
    enum mode mode = MODE_HUMAN;
    unsigned json_flags = 0;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "s:jHSphI", opts, NULL)) != -1) {
        switch (ch) {
        case 's':
            if (cli_symbols_add(&syms, optarg))
                return 2;
            break;
        case 'j': mode = MODE_JSON; break;
        case 'H': mode = MODE_HUMAN; break;
        case 'S': mode = MODE_SUMMARY; break;
        case 'p': json_flags |= ANA_JSON_PRETTY; break;
        case 'I': json_flags |= ANA_JSON_DWARF_INLINES; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "triagectl stackwalk: no dump given\n");
        usage(stderr);
        return 2;
    }
    int worst = 0;
    for (int i = optind; i < argc; i++) {
        int rc = walk_one(argv[i], &syms, mode, json_flags);
        if (rc > worst)
            worst = rc;
        fflush(stdout);
    }
    cli_symbols_free(&syms);
    return worst;
}
