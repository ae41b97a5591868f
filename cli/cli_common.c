/* cli_common.c -- the offline pipeline shared by stackwalk and bucket-eval. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana_sym.h"
#include "cli/cli_int.h"
#include "common/cm_buf.h"

int cli_symbols_add(struct cli_symbols *s, const char *dir)
{
    if (s->count == CLI_MAX_SYMBOL_DIRS) {
        fprintf(stderr, "triagectl: at most %d --symbols directories\n", CLI_MAX_SYMBOL_DIRS);
        return 1;
    }
    s->dirs[s->count++] = dir;
    return 0;
}

static void exe_signal_key(const struct ana_crash *c, const struct ana_keys *k, char *out,
                           size_t n)
{
    const char *exe = c->main_module >= 0 ? ana_module_basename(&c->modules[c->main_module])
                      : c->process_name ? c->process_name
                                        : "?";
    char cls[128];
    snprintf(cls, sizeof cls, "%s", k->reason_class ? k->reason_class : "?");
    cls[strcspn(cls, " ")] = 0;
    snprintf(out, n, "%s/%s", exe, cls);
}

/* One store for the whole command, so every dump after the first finds its symbols parsed. */
static struct ana_symstore *store_of(struct cli_symbols *s, struct cm_err *err)
{
    if (!s || s->count == 0)
        return NULL;
    struct ana_symstore_opts opts;
    ana_symstore_opts_default(&opts);
    opts.dwarf_inlines = true; /* the signature expands inlined calls */
    if (!s->store && ana_symstore_new(s->dirs, s->count, &opts, &s->store, err) != CM_E_OK)
        return NULL;
    return s->store;
}

void cli_symbols_free(struct cli_symbols *s)
{
    ana_symstore_free(s->store);
    s->store = NULL;
}

/* module!function as a plain tool prints it: the module's file name, the symbol with an
 * @@GLIBC version suffix and a parameter list dropped, no other cleaning (the naive baselines of
 * bucket-eval compare raw frames, as /work/shared/tools/score_stacks.py does). */
static void raw_frame(const struct ana_crash *c, const struct ana_frame *f, char *out, size_t n)
{
    const char *mod = f->module >= 0 ? ana_module_basename(&c->modules[f->module]) : "";
    char fn[512];
    snprintf(fn, sizeof fn, "%s", f->function ? f->function : "");
    char *at = strstr(fn, "@@GLIBC_");
    if (!at)
        at = strstr(fn, "@GLIBC_");
    if (at)
        *at = 0;
    size_t len = strlen(fn);
    if (len && fn[len - 1] == ')') {
        char *paren = strchr(fn, '(');
        if (paren)
            *paren = 0;
    }
    snprintf(out, n, "%s!%s", mod, fn);
}

static bool is_bottom(const struct ana_frame *f)
{
    static const char *const bottoms[] = { "_start", "__clone3", "clone3", "__clone", "clone" };
    for (size_t i = 0; f->function && i < sizeof bottoms / sizeof *bottoms; i++)
        if (strcmp(f->function, bottoms[i]) == 0)
            return true;
    return false;
}

static void baselines(struct cli_result *res)
{
    const struct ana_crash *c = res->crash;
    int ti = c->crash_info.crashing_thread >= 0 ? c->crash_info.crashing_thread : 0;
    const struct ana_thread *t = (size_t)ti < c->thread_count ? &c->threads[ti] : NULL;
    struct cm_buf whole;
    cm_buf_init(&whole, 1 << 20);
    char text[1100];
    for (size_t i = 0; t && i < t->frame_count; i++) {
        raw_frame(c, &t->frames[i], text, sizeof text);
        if (i == 0)
            res->top_frame = strdup(text);
        cm_buf_printf(&whole, NULL, "%s%s", i ? "|" : "", text);
        if (is_bottom(&t->frames[i]))
            break;
    }
    if (!res->top_frame)
        res->top_frame = strdup("-");
    res->whole_stack = whole.data ? (char *)cm_buf_steal(&whole, NULL) : strdup("-");
}

int cli_analyze_file(const char *path, struct cli_symbols *s, struct cli_result *res)
{
    memset(res, 0, sizeof *res);
    struct ana_symstore *store = store_of(s, &res->err);
    if (s && s->count && !store)
        return 1;
    if (ana_load_file(path, NULL, &res->crash, &res->err) != CM_E_OK)
        return 1;
    if (ana_analyze(res->crash, store, NULL, &res->keys, &res->err) != CM_E_OK) {
        ana_crash_free(res->crash);
        res->crash = NULL;
        return 1;
    }
    exe_signal_key(res->crash, &res->keys, res->exe_signal, sizeof res->exe_signal);
    baselines(res);
    return 0;
}

void cli_result_free(struct cli_result *res)
{
    free(res->top_frame);
    free(res->whole_stack);
    res->top_frame = res->whole_stack = NULL;
    ana_crash_free(res->crash);
    res->crash = NULL;
}
