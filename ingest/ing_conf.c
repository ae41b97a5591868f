/* ing_conf.c -- the collector's configuration: one table of keys with type, default, minimum and
 * maximum (Redis standardConfig, nginx directives). Defaults come from the table, then the file,
 * then flags. Sizes accept K, M, G suffixes (powers of 1024). An unknown key or an out-of-range
 * value stops start-up with file:line. ingest/triage-ingest.conf.example documents every key and
 * tests/ingest checks that it names them all. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ing.h"

enum type { T_SIZE, T_BOOL, T_STR };

struct key {
    const char *name;
    enum type type;
    size_t off, str_cap; /* offset in struct ing_conf; capacity of a string field */
    const char *def;
    uint64_t min, max;   /* T_SIZE only */
    const char *help;
};

#define SZ(field, def, min, max, help)                                                             \
    { #field, T_SIZE, offsetof(struct ing_conf, field), 0, def, min, max, help }
#define BOOL(field, def, help)                                                                     \
    { #field, T_BOOL, offsetof(struct ing_conf, field), 0, def, 0, 1, help }
#define STR(field, def, help)                                                                      \
    { #field, T_STR, offsetof(struct ing_conf, field),                                             \
      sizeof(((struct ing_conf *)0)->field), def, 0, 0, help }

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define GiB (1024ull * 1024 * 1024)

static const struct key keys[] = {
    STR(listen, "127.0.0.1:8080", "HOST:PORT to listen on; port 0 picks a free port"),
    STR(spool_dir, "./triage-data/spool", "durable spool folder (created 0700)"),
    STR(db_url, "", "PostgreSQL connection string or URL; empty: no database"),
    STR(log_level, "info", "debug, info, warn or error"),
    STR(project, "default", "project every crash belongs to until API keys exist"),
    SZ(max_request_bytes, "20M", 1 * KiB, 1 * GiB, "request body as sent (compressed)"),
    SZ(max_header_bytes, "16K", 4 * KiB, 1 * MiB, "request line plus header block"),
    SZ(max_dump_bytes, "100M", 1 * KiB, 4 * GiB, "decompressed dump, capped while streaming"),
    SZ(max_part_bytes, "20M", 1 * KiB, 1 * GiB, "one multipart part"),
    SZ(max_part_header_bytes, "16K", 256, 1 * MiB, "header block of one multipart part"),
    SZ(max_preamble_bytes, "1K", 0, 1 * MiB, "bytes before the first multipart boundary"),
    SZ(max_parts, "32", 1, 10000, "multipart parts per request"),
    SZ(max_annotations, "512", 0, 100000, "annotations per crash"),
    SZ(max_annotation_bytes, "64K", 16, 16 * MiB, "one annotation value"),
    SZ(max_annotation_key_bytes, "256", 8, 64 * KiB, "one annotation key (form field name)"),
    SZ(max_string_bytes, "1K", 16, 64 * KiB, "product, version, host id and the other strings"),
    SZ(zstd_window_log_max, "24", 10, 30, "largest zstd window accepted, as a power of two"),
    SZ(zstd_level, "3", 1, 19, "zstd level for raw and gzip dumps stored in the spool"),
    SZ(connection_timeout_s, "10", 1, 3600, "idle connection (no byte received) is closed"),
    SZ(body_deadline_s, "120", 1, 86400, "a request body must be complete within this time"),
    SZ(min_body_rate_bytes, "4K", 0, 1 * GiB, "bytes/s a body must average after the grace"),
    SZ(min_rate_grace_s, "10", 0, 3600, "seconds before the minimum body rate applies"),
    SZ(max_connections, "1024", 1, 100000, "open connections in total"),
    SZ(max_connections_per_ip, "32", 1, 100000, "open connections per client address"),
    SZ(http_threads, "2", 1, 64, "HTTP polling threads"),
    SZ(workers, "8", 1, 32, "threads that decompress, fsync and record (concurrent decodes)"),
    SZ(spool_high_water, "10000", 1, 100000000,
       "pending crashes past which the native route answers 503"),
    SZ(queue_high_water, "100000", 1, 1000000000,
       "analysis jobs waiting past which the native route answers 503"),
    SZ(spool_reserve_bytes, "256M", 0, 1024 * GiB,
       "free disk below which the native route answers 503"),
    SZ(retry_after_s, "5", 1, 3600, "Retry-After sent with 503"),
    SZ(drain_interval_ms, "1000", 10, 600000, "how often pending crashes are retried"),
    BOOL(fsync_batch, "true", "concurrent uploads share one directory fsync"),
    SZ(db_timeout_ms, "5000", 100, 600000,
       "bound on one database call (statement timeout; connect gets the same, in seconds)"),
    SZ(shutdown_grace_ms, "10000", 0, 600000, "SIGTERM: time in-flight requests get to finish"),
};
#define NKEYS (sizeof keys / sizeof keys[0])

const char *ing_conf_key(size_t i, const char **type, const char **def, const char **help)
{
    static const char *const names[] = { "number", "bool", "string" };
    if (i >= NKEYS)
        return NULL;
    if (type)
        *type = names[keys[i].type];
    if (def)
        *def = keys[i].def;
    if (help)
        *help = keys[i].help;
    return keys[i].name;
}

static const struct key *find(const char *name, size_t len)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strlen(keys[i].name) == len && memcmp(keys[i].name, name, len) == 0)
            return &keys[i];
    return NULL;
}

static enum cm_code parse_size(const struct key *k, const char *v, uint64_t *out,
                               struct cm_err *err)
{
    const char *p = v;
    if (*p < '0' || *p > '9')
        return cm_fail(err, CM_E_USAGE, "%s: \"%s\" is not a number", k->name, v);
    errno = 0;
    char *end;
    unsigned long long n = strtoull(p, &end, 10);
    if (errno)
        return cm_fail(err, CM_E_USAGE, "%s: \"%s\" is too large", k->name, v);
    uint64_t mult = 1;
    if (*end && strchr("kKmMgG", *end)) {
        mult = (*end == 'k' || *end == 'K') ? KiB : (*end == 'm' || *end == 'M') ? MiB : GiB;
        end++;
        if (*end == 'i' && end[1] == 'B')
            end += 2;
        else if (*end == 'B')
            end++;
    }
    if (*end)
        return cm_fail(err, CM_E_USAGE, "%s: \"%s\" has trailing characters", k->name, v);
    if (n > UINT64_MAX / mult)
        return cm_fail(err, CM_E_USAGE, "%s: \"%s\" is too large", k->name, v);
    n *= mult;
    if (n < k->min || n > k->max || n > SIZE_MAX)
        return cm_fail(err, CM_E_USAGE, "%s: %llu is outside [%llu, %llu]", k->name, n,
                       (unsigned long long)k->min, (unsigned long long)k->max);
    *out = n;
    return CM_E_OK;
}

static enum cm_code set_key(struct ing_conf *c, const struct key *k, const char *v,
                            struct cm_err *err)
{
    char *field = (char *)c + k->off;
    switch (k->type) {
    case T_SIZE: {
        uint64_t n = 0;
        enum cm_code rc = parse_size(k, v, &n, err);
        if (rc)
            return rc;
        *(size_t *)(void *)field = (size_t)n;
        return CM_E_OK;
    }
    case T_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
            *(bool *)(void *)field = true;
        else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0"))
            *(bool *)(void *)field = false;
        else
            return cm_fail(err, CM_E_USAGE, "%s: \"%s\" is not true or false", k->name, v);
        return CM_E_OK;
    case T_STR:
        if (strlen(v) >= k->str_cap)
            return cm_fail(err, CM_E_USAGE, "%s: value longer than %zu bytes", k->name,
                           k->str_cap - 1);
        if (!strcmp(k->name, "log_level") && strcmp(v, "debug") && strcmp(v, "info") &&
            strcmp(v, "warn") && strcmp(v, "error"))
            return cm_fail(err, CM_E_USAGE, "log_level: \"%s\" is not debug, info, warn or error",
                           v);
        memcpy(field, v, strlen(v) + 1);
        return CM_E_OK;
    }
    return CM_E_OK;
}

void ing_conf_default(struct ing_conf *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NKEYS; i++) {
        enum cm_code rc = set_key(c, &keys[i], keys[i].def, NULL);
        (void)rc; /* the table's defaults are in range; test_ingest checks */
    }
}

enum cm_code ing_conf_set(struct ing_conf *c, const char *key, const char *value,
                          struct cm_err *err)
{
    const struct key *k = find(key, strlen(key));
    if (!k)
        return cm_fail(err, CM_E_USAGE, "unknown key \"%.64s\"", key);
    return set_key(c, k, value, err);
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

enum cm_code ing_conf_load(struct ing_conf *c, const char *path, struct cm_err *err)
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
        if (ing_conf_set(c, key, val, &e)) {
            rc = cm_fail(err, CM_E_USAGE, "%s:%u: %s", path, lineno, e.msg);
            break;
        }
    }
    fclose(f);
    return rc;
}

enum cm_code ing_conf_args(struct ing_conf *c, int argc, char **argv, struct cm_err *err)
{
    enum cm_code rc;
    for (int i = 0; i < argc; i++) { /* the file first, so flags override it */
        const char *a = argv[i];
        const char *path = NULL;
        if (!strcmp(a, "--config")) {
            if (i + 1 >= argc)
                return cm_fail(err, CM_E_USAGE, "--config needs a file");
            path = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            path = a + 9;
        }
        if (path && (rc = ing_conf_load(c, path, err)))
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
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        char key[64];
        if (nlen >= sizeof key)
            return cm_fail(err, CM_E_USAGE, "unknown flag \"%.64s\"", a);
        for (size_t j = 0; j < nlen; j++) /* --max-request-bytes and --max_request_bytes */
            key[j] = name[j] == '-' ? '_' : name[j];
        key[nlen] = 0;
        const struct key *k = find(key, nlen);
        if (!k)
            return cm_fail(err, CM_E_USAGE, "unknown flag \"--%s\"", key);
        const char *val;
        if (eq)
            val = eq + 1;
        else if (k->type == T_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0))
            val = "true";
        else if (i + 1 < argc)
            val = argv[++i];
        else
            return cm_fail(err, CM_E_USAGE, "--%s needs a value", key);
        if ((rc = set_key(c, k, val, err)))
            return rc;
    }
    return ing_conf_check(c, err);
}

enum cm_code ing_conf_check(const struct ing_conf *c, struct cm_err *err)
{
    if (c->max_part_bytes > c->max_request_bytes && c->max_part_bytes > c->max_dump_bytes)
        return cm_fail(err, CM_E_USAGE,
                       "max_part_bytes (%zu) exceeds both max_request_bytes and max_dump_bytes",
                       c->max_part_bytes);
    if (c->max_annotation_key_bytes > c->max_part_header_bytes)
        return cm_fail(err, CM_E_USAGE,
                       "max_annotation_key_bytes (%zu) exceeds max_part_header_bytes (%zu)",
                       c->max_annotation_key_bytes, c->max_part_header_bytes);
    if (!c->spool_dir[0])
        return cm_fail(err, CM_E_USAGE, "spool_dir is empty");
    if (!c->listen[0])
        return cm_fail(err, CM_E_USAGE, "listen is empty");
    return CM_E_OK;
}
