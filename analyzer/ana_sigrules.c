/* ana_sigrules.c -- the signature rules: parsing the rules file (analyzer/signature_rules.txt
 * documents the format) and matching frames against it. The built-in rules are compiled into
 * the binary from that file. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana_int.h"
#include "common/cm_alloc.h"
#include "common/cm_buf.h"
#include "common/cm_embed.h"

extern const struct cm_embedded_file ana_builtin_rules[];
extern const size_t ana_builtin_rules_count;

#define RULES_MAX_BYTES (4u << 20)
#define RULES_MAX_LINES 20000

struct rule {
    enum ana_rule_kind kind;
    char *module;  /* pattern for the module's file name, NULL for any module */
    char *pattern; /* pattern for the function (or, for runtime-module, the module) */
    char *target;  /* alias: the new name */
    bool literal;  /* pattern has no wildcard: compare with strcmp */
};

struct ana_rules {
    char version[64];
    struct rule *rules;
    size_t count;
};

/* Glob match with '*' (any run) and '?' (one character); iterative, linear in practice. */
static bool glob(const char *p, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == '?' || *p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == 0;
}

static bool rule_matches(const struct rule *r, const char *module, const char *function)
{
    if (r->module && (!module || !glob(r->module, module)))
        return false;
    if (!function)
        return false;
    return r->literal ? strcmp(r->pattern, function) == 0 : glob(r->pattern, function);
}

const char *ana__rules_alias(const struct ana_rules *r, const char *module, const char *function)
{
    for (size_t i = 0; i < r->count; i++)
        if (r->rules[i].kind == ANA_RULE_ALIAS && rule_matches(&r->rules[i], module, function))
            return r->rules[i].target;
    return NULL;
}

enum ana_rule_kind ana__rules_classify(const struct ana_rules *r, const char *module,
                                       const char *function, const char **why)
{
    *why = NULL;
    for (size_t i = 0; i < r->count; i++) {
        const struct rule *ru = &r->rules[i];
        if (ru->kind == ANA_RULE_ALIAS)
            continue;
        if (ru->kind == ANA_RULE_RUNTIME_MODULE) {
            if (!function && module && glob(ru->pattern, module)) {
                *why = ru->pattern;
                return ANA_RULE_RUNTIME_MODULE;
            }
            continue;
        }
        if (rule_matches(ru, module, function)) {
            *why = ru->pattern;
            return ru->kind;
        }
    }
    return ANA_RULE_NONE;
}

const char *ana_rules_version(const struct ana_rules *r) { return r->version; }

void ana_rules_free(struct ana_rules *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->count; i++) {
        cm_free(r->rules[i].module);
        cm_free(r->rules[i].pattern);
        cm_free(r->rules[i].target);
    }
    cm_free(r->rules);
    cm_free(r);
}

static enum ana_rule_kind kind_of(const char *word)
{
    static const struct { const char *name; enum ana_rule_kind kind; } kinds[] = {
        { "alias", ANA_RULE_ALIAS },       { "irrelevant", ANA_RULE_IRRELEVANT },
        { "prefix", ANA_RULE_PREFIX },     { "sentinel", ANA_RULE_SENTINEL },
        { "runtime-module", ANA_RULE_RUNTIME_MODULE },
    };
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (strcmp(word, kinds[i].name) == 0)
            return kinds[i].kind;
    return ANA_RULE_NONE;
}

/* One rule line: KIND PATTERN [TARGET]. Patterns hold no spaces except inside names such as
 * "operator delete*" or "-[NSException raise]": for every kind but alias, the rest of the line
 * is the pattern. */
static enum cm_code parse_line(struct ana_rules *r, char *line, size_t lineno,
                               struct cm_err *err)
{
    char *word = line;
    char *rest = strchr(line, ' ');
    if (!rest)
        return cm_fail(err, CM_E_CORRUPT, "signature rules line %zu: '%s' has no pattern",
                       lineno, line);
    *rest++ = 0;
    while (*rest == ' ')
        rest++;
    if (strcmp(word, "version") == 0) {
        if (strlen(rest) >= sizeof r->version)
            return cm_fail(err, CM_E_CORRUPT, "signature rules line %zu: version too long",
                           lineno);
        strcpy(r->version, rest);
        return CM_E_OK;
    }
    enum ana_rule_kind kind = kind_of(word);
    if (kind == ANA_RULE_NONE)
        return cm_fail(err, CM_E_CORRUPT, "signature rules line %zu: unknown directive '%s'",
                       lineno, word);
    char *target = NULL;
    if (kind == ANA_RULE_ALIAS) {
        target = strrchr(rest, ' ');
        if (!target)
            return cm_fail(err, CM_E_CORRUPT, "signature rules line %zu: alias needs a name",
                           lineno);
        *target++ = 0;
    }
    char *module = NULL, *bang = kind == ANA_RULE_RUNTIME_MODULE ? NULL : strchr(rest, '!');
    if (bang && bang != rest) { /* "module!function"; a leading '!' is part of a name */
        *bang = 0;
        module = rest;
        rest = bang + 1;
    }
    if (r->count % 64 == 0) {
        struct rule *n = cm_reallocarray(r->rules, r->count + 64, sizeof *n);
        if (!n)
            return cm_fail(err, CM_E_NOMEM, "cannot grow signature rules");
        r->rules = n;
    }
    struct rule *ru = &r->rules[r->count];
    *ru = (struct rule){ .kind = kind };
    ru->pattern = cm_strdup(rest);
    ru->module = module ? cm_strdup(module) : NULL;
    ru->target = target ? cm_strdup(target) : NULL;
    r->count++;
    if (!ru->pattern || (module && !ru->module) || (target && !ru->target))
        return cm_fail(err, CM_E_NOMEM, "cannot store signature rule");
    ru->literal = !strpbrk(ru->pattern, "*?");
    return CM_E_OK;
}

enum cm_code ana_rules_parse(const char *text, struct ana_rules **out, struct cm_err *err)
{
    *out = NULL;
    struct ana_rules *r = cm_calloc(1, sizeof *r);
    if (!r)
        return cm_fail(err, CM_E_NOMEM, "cannot allocate signature rules");
    enum cm_code rc = CM_E_OK;
    size_t lineno = 0;
    const char *p = text;
    char line[1024];
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        lineno++;
        if (lineno > RULES_MAX_LINES) {
            rc = cm_fail(err, CM_E_LIMIT, "signature rules: more than %d lines", RULES_MAX_LINES);
            goto fail;
        }
        if (len >= sizeof line) {
            rc = cm_fail(err, CM_E_CORRUPT, "signature rules line %zu: longer than %zu bytes",
                         lineno, sizeof line - 1);
            goto fail;
        }
        memcpy(line, p, len);
        line[len] = 0;
        p += len + (nl ? 1 : 0);
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        size_t end = strlen(line);
        while (end && (line[end - 1] == ' ' || line[end - 1] == '\t' || line[end - 1] == '\r'))
            line[--end] = 0;
        char *start = line;
        while (*start == ' ' || *start == '\t')
            start++;
        for (char *t = start; *t; t++)
            if (*t == '\t')
                *t = ' ';
        if (*start && (rc = parse_line(r, start, lineno, err)))
            goto fail;
    }
    if (!r->version[0]) {
        rc = cm_fail(err, CM_E_CORRUPT, "signature rules: no 'version' line");
        goto fail;
    }
    *out = r;
    return CM_E_OK;
fail:
    ana_rules_free(r);
    return rc;
}

enum cm_code ana_rules_load(const char *path, struct ana_rules **out, struct cm_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cm_fail(err, CM_E_IO, "cannot open signature rules %s: %s", path, strerror(errno));
    struct cm_buf b;
    cm_buf_init(&b, RULES_MAX_BYTES);
    char chunk[8192];
    size_t n;
    enum cm_code rc = CM_E_OK;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = cm_buf_append(&b, chunk, n, err);
    fclose(f);
    if (!rc && !b.data)
        rc = cm_buf_append(&b, "", 0, err);
    if (!rc)
        rc = ana_rules_parse((const char *)b.data, out, err);
    cm_buf_free(&b);
    return rc;
}

static struct ana_rules *builtin;

static void parse_builtin(void)
{
    struct cm_err err;
    if (ana_builtin_rules_count == 0 ||
        ana_rules_parse(ana_builtin_rules[0].text, &builtin, &err) != CM_E_OK)
        builtin = NULL; /* the text is ours: a parse failure is a build defect, caught by tests */
}

const struct ana_rules *ana_rules_builtin(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, parse_builtin);
    return builtin;
}
