/* cli_common.c -- the offline pipeline shared by stackwalk and bucket-eval. */
#include <stdio.h>
#include <string.h>

#include "analyzer/ana_sym.h"
#include "cli/cli_int.h"

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
    if (!s->store && ana_symstore_new(s->dirs, s->count, NULL, &s->store, err) != CM_E_OK)
        return NULL;
    return s->store;
}

void cli_symbols_free(struct cli_symbols *s)
{
    ana_symstore_free(s->store);
    s->store = NULL;
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
    return 0;
}

void cli_result_free(struct cli_result *res)
{
    ana_crash_free(res->crash);
    res->crash = NULL;
}
