/* cm_conf.c -- table-driven configuration: defaults, file, flags. */
#include "common/cm_conf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/cm_alloc.h"

static const struct cm_conf_key *find(const struct cm_conf *t, const char *name, size_t len)
{
    for (size_t i = 0; i < t->count; i++)
        if (strlen(t->keys[i].name) == len && memcmp(t->keys[i].name, name, len) == 0)
            return &t->keys[i];
    return NULL;
}

static enum cm_code parse_number(const struct cm_conf_key *k, const char *v, uint64_t *out,
                                 struct cm_err *err)
{
    if (*v < '0' || *v > '9')
        return cm_fail(err, CM_E_USAGE, "%s: \"%.64s\" is not a number", k->name, v);
    errno = 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno)
        return cm_fail(err, CM_E_USAGE, "%s: \"%.64s\" is too large", k->name, v);
    uint64_t mult = 1;
    if (k->type == CM_CONF_SIZE && *end && strchr("kKmMgG", *end)) {
        mult = (*end == 'k' || *end == 'K') ? 1024ull : (*end == 'm' || *end == 'M') ? 1ull << 20
                                                                                  : 1ull << 30;
        end++;
        if (*end == 'i' && end[1] == 'B')
            end += 2;
        else if (*end == 'B')
            end++;
    } else if (k->type == CM_CONF_DURATION) {
        if (!strcmp(end, "ms"))
            mult = 1, end += 2;
        else if (!*end) /* a bare number is milliseconds, the unit the key's name ends in */
            mult = 1;
        else if (!strcmp(end, "s"))
            mult = 1000, end++;
        else if (!strcmp(end, "m"))
            mult = 60000, end++;
        else if (!strcmp(end, "h"))
            mult = 3600000, end++;
    }
    if (*end)
        return cm_fail(err, CM_E_USAGE, "%s: \"%.64s\" has trailing characters", k->name, v);
    if (n > UINT64_MAX / mult)
        return cm_fail(err, CM_E_USAGE, "%s: \"%.64s\" is too large", k->name, v);
    n *= mult;
    if (n < k->min || n > k->max || n > SIZE_MAX)
        return cm_fail(err, CM_E_USAGE, "%s: %llu is outside [%llu, %llu]", k->name, n,
                       (unsigned long long)k->min, (unsigned long long)k->max);
    *out = n;
    return CM_E_OK;
}

static bool is_choice(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        p += len + (bar ? 1 : 0);
    }
    return false;
}

static enum cm_code set_key(const struct cm_conf_key *k, void *cfg, const char *v,
                            struct cm_err *err)
{
    char *field = (char *)cfg + k->off;
    uint64_t n;
    enum cm_code rc;
    switch (k->type) {
    case CM_CONF_SIZE:
        if ((rc = parse_number(k, v, &n, err)))
            return rc;
        *(size_t *)(void *)field = (size_t)n;
        return CM_E_OK;
    case CM_CONF_DURATION:
        if ((rc = parse_number(k, v, &n, err)))
            return rc;
        *(int64_t *)(void *)field = (int64_t)n;
        return CM_E_OK;
    case CM_CONF_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
            *(bool *)(void *)field = true;
        else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0"))
            *(bool *)(void *)field = false;
        else
            return cm_fail(err, CM_E_USAGE, "%s: \"%.64s\" is not true or false", k->name, v);
        return CM_E_OK;
    case CM_CONF_STR:
        if (k->choices && !is_choice(k->choices, v))
            return cm_fail(err, CM_E_USAGE, "%s: \"%.64s\" is not one of %s", k->name, v,
                           k->choices);
        if (strlen(v) >= k->cap)
            return cm_fail(err, CM_E_USAGE, "%s: value longer than %zu bytes", k->name,
                           k->cap - 1);
        memcpy(field, v, strlen(v) + 1);
        return CM_E_OK;
    case CM_CONF_LIST: {
        if (!*v)
            return CM_E_OK; /* the empty default */
        size_t *count = (size_t *)(void *)((char *)cfg + k->count_off);
        if (*count >= k->cap)
            return cm_fail(err, CM_E_USAGE, "%s: at most %zu values", k->name, k->cap);
        char *copy = cm_strdup(v);
        if (!copy)
            return cm_fail(err, CM_E_NOMEM, "%s: out of memory", k->name);
        ((char **)(void *)field)[(*count)++] = copy;
        return CM_E_OK;
    }
    }
    return CM_E_OK;
}

void cm_conf_defaults(const struct cm_conf *t, void *cfg)
{
    for (size_t i = 0; i < t->count; i++)
        (void)set_key(&t->keys[i], cfg, t->keys[i].def, NULL); /* tests check defaults parse */
}

enum cm_code cm_conf_set(const struct cm_conf *t, void *cfg, const char *key, const char *value,
                         struct cm_err *err)
{
    const struct cm_conf_key *k = find(t, key, strlen(key));
    if (!k)
        return cm_fail(err, CM_E_USAGE, "unknown key \"%.64s\"", key);
    return set_key(k, cfg, value, err);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

enum cm_code cm_conf_load(const struct cm_conf *t, void *cfg, const char *path,
                          struct cm_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return cm_fail(err, CM_E_IO, "cannot open %s: %s", path, strerror(errno));
    enum cm_code rc = CM_E_OK;
    char line[4096];
    unsigned lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = cm_fail(err, CM_E_USAGE, "%s:%u: line longer than %zu bytes", path, lineno,
                         sizeof line - 2);
            break;
        }
        char *s = trim(line);
        if (*s == 0 || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = cm_fail(err, CM_E_USAGE, "%s:%u: expected key = value", path, lineno);
            break;
        }
        *eq = 0;
        char *key = trim(s), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') { /* "" for an empty string */
            val[vl - 1] = 0;
            val++;
        }
        struct cm_err e;
        if (cm_conf_set(t, cfg, key, val, &e)) {
            rc = cm_fail(err, CM_E_USAGE, "%s:%u: %s", path, lineno, e.msg);
            break;
        }
    }
    fclose(f);
    return rc;
}

enum cm_code cm_conf_args(const struct cm_conf *t, void *cfg, int argc, char **argv,
                          struct cm_err *err)
{
    enum cm_code rc;
    for (int i = 0; i < argc; i++) { /* the file first, so flags override it */
        const char *path = NULL;
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc)
                return cm_fail(err, CM_E_USAGE, "--config needs a file");
            path = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            path = argv[i] + 9;
        }
        if (path && (rc = cm_conf_load(t, cfg, path, err)))
            return rc;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9))
            continue;
        if (strncmp(a, "--", 2) != 0)
            return cm_fail(err, CM_E_USAGE, "unexpected argument \"%.64s\"", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        char keybuf[128];
        if (len >= sizeof keybuf)
            return cm_fail(err, CM_E_USAGE, "unknown option \"%.64s\"", a);
        memcpy(keybuf, name, len);
        keybuf[len] = 0;
        for (char *p = keybuf; *p; p++) /* --max-frames and --max_frames are the same key */
            if (*p == '-')
                *p = '_';
        const struct cm_conf_key *k = find(t, keybuf, len);
        if (!k)
            return cm_fail(err, CM_E_USAGE, "unknown option \"%.64s\"", a);
        const char *value;
        if (eq)
            value = eq + 1;
        else if (k->type == CM_CONF_BOOL && (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2)))
            value = "true";
        else if (i + 1 < argc)
            value = argv[++i];
        else
            return cm_fail(err, CM_E_USAGE, "--%s needs a value", k->name);
        if ((rc = set_key(k, cfg, value, err)))
            return rc;
    }
    return CM_E_OK;
}

const char *cm_conf_type_name(enum cm_conf_type t)
{
    static const char *const types[] = { "size", "bool", "string", "duration", "list" };
    return (unsigned)t < sizeof types / sizeof *types ? types[t] : "?";
}

void cm_conf_usage(const struct cm_conf *t, FILE *f)
{
    for (size_t i = 0; i < t->count; i++) {
        const struct cm_conf_key *k = &t->keys[i];
        fprintf(f, "  --%-26s %-8s %s", k->name, cm_conf_type_name(k->type), k->help);
        if (k->def && *k->def)
            fprintf(f, " (default %s)", k->def);
        fputc('\n', f);
    }
}
