/* db_sql.c -- values for statements: text parameters, array literals for batched statements
 * (unnest of array parameters), UTF-8 repair and result accessors.
 * Array literal syntax: postgresql.org/docs/15/arrays.html#ARRAYS-IO (elements double-quoted,
 * `"` and `\` escaped with a backslash, unquoted NULL for SQL NULL). */
#include "db/db_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cm_alloc.h"
#include "common/cm_utf8.h"

/* ---- UTF-8 ---- */

const char *db__utf8_clean(struct cm_arena *a, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s);
    return cm_utf8_valid(s, n) ? s : cm_utf8_clean(a, s, n); /* bad bytes become U+FFFD */
}

void db__json_str(struct cm_buf *b, const char *s)
{
    cm_buf_append(b, "\"", 1, NULL);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p;
            cm_buf_append(b, esc, 2, NULL);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            cm_buf_append(b, esc, 6, NULL);
        } else {
            cm_buf_append(b, p, 1, NULL);
        }
    }
    cm_buf_append(b, "\"", 1, NULL);
}

/* ---- parameters ---- */

void db__args_init(struct db__args *a) { *a = (struct db__args){ 0 }; }

void db__args_free(struct db__args *a) { cm_arena_free(&a->arena); }

static void push(struct db__args *a, const char *v, bool ok)
{
    if (!ok || a->n >= (int)(sizeof a->v / sizeof *a->v)) {
        a->failed = true;
        return;
    }
    a->v[a->n++] = v;
}

const char *db__project(const char *p) { return p && *p ? p : DB_DEFAULT_PROJECT; }

void db__arg_str(struct db__args *a, const char *s)
{
    if (!s) {
        push(a, NULL, true);
        return;
    }
    const char *c = db__utf8_clean(&a->arena, s);
    push(a, c, c != NULL);
}

void db__arg_str_or_null(struct db__args *a, const char *s)
{
    db__arg_str(a, s && *s ? s : NULL);
}

void db__arg_i64(struct db__args *a, int64_t v)
{
    char *s = cm_arena_printf(&a->arena, "%" PRId64, v);
    push(a, s, s != NULL);
}

void db__arg_u64(struct db__args *a, uint64_t v)
{
    char *s = cm_arena_printf(&a->arena, "%" PRIu64, v);
    push(a, s, s != NULL);
}

void db__arg_bool(struct db__args *a, bool v) { push(a, v ? "t" : "f", true); }

void db__arg_null(struct db__args *a) { push(a, NULL, true); }

void db__arg_project(struct db__args *a, const char *project)
{
    db__arg_str(a, db__project(project));
}

void db__arg_buf(struct db__args *a, struct cm_buf *array)
{
    if (!db__arr_ok(array)) {
        cm_buf_free(array);
        push(a, NULL, false);
        return;
    }
    char *s = cm_arena_strndup(&a->arena, (const char *)array->data, array->len);
    cm_buf_free(array);
    push(a, s, s != NULL);
}

/* ---- array literals ---- */

/* Arrays always start with '{'; a failed append overwrites it with '!', so one check at the
 * end (db__arr_ok) catches a failure anywhere in the array. */
static void arr_put(struct cm_buf *b, const void *p, size_t n)
{
    if (b->len && b->data[0] == '!')
        return;
    if (cm_buf_append(b, p, n, NULL) != CM_E_OK && b->len)
        b->data[0] = '!';
}

bool db__arr_ok(const struct cm_buf *b) { return b->len >= 2 && b->data[0] == '{'; }

void db__arr_begin(struct cm_buf *b)
{
    cm_buf_init(b, 0);
    if (cm_buf_append(b, "{", 1, NULL) != CM_E_OK)
        cm_buf_free(b); /* len 0: db__arr_ok fails */
}

static void sep(struct cm_buf *b)
{
    if (b->len > 1)
        arr_put(b, ",", 1);
}

void db__arr_null(struct cm_buf *b)
{
    sep(b);
    arr_put(b, "NULL", 4);
}

void db__arr_str(struct cm_buf *b, const char *s)
{
    if (!s) {
        db__arr_null(b);
        return;
    }
    sep(b);
    arr_put(b, "\"", 1);
    /* Copy runs of plain bytes at once; escape `"` and `\`; repair invalid UTF-8. */
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, run = 0;
    while (i < n) {
        unsigned char c = u[i];
        size_t l = c < 0x80 ? 1 : cm_utf8_seq(u + i, n - i);
        if (c == '"' || c == '\\' || l == 0) {
            arr_put(b, u + run, i - run);
            if (l == 0) {
                arr_put(b, "\xEF\xBF\xBD", 3);
                i++;
            } else {
                char esc[2] = { '\\', (char)c };
                arr_put(b, esc, 2);
                i++;
            }
            run = i;
        } else {
            i += l;
        }
    }
    arr_put(b, u + run, n - run);
    arr_put(b, "\"", 1);
}

void db__arr_i64(struct cm_buf *b, int64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%" PRId64, v);
    sep(b);
    arr_put(b, t, (size_t)n);
}

void db__arr_u64(struct cm_buf *b, uint64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%" PRIu64, v);
    sep(b);
    arr_put(b, t, (size_t)n);
}

void db__arr_bool(struct cm_buf *b, bool v)
{
    sep(b);
    arr_put(b, v ? "t" : "f", 1);
}

void db__arr_end(struct cm_buf *b) { arr_put(b, "}", 1); }

/* ---- results ---- */

const char *db__get(const PGresult *r, int row, int col)
{
    if (row >= PQntuples(r) || col >= PQnfields(r) || PQgetisnull(r, row, col))
        return NULL;
    return PQgetvalue(r, row, col);
}

int64_t db__get_i64(const PGresult *r, int row, int col)
{
    const char *v = db__get(r, row, col);
    return v ? strtoll(v, NULL, 10) : 0;
}

char *db__dup(const PGresult *r, int row, int col, bool *oom)
{
    const char *v = db__get(r, row, col);
    if (!v)
        return NULL;
    char *d = cm_strdup(v);
    if (!d)
        *oom = true;
    return d;
}

void db__copy(const PGresult *r, int row, int col, char *out, size_t n)
{
    const char *v = db__get(r, row, col);
    snprintf(out, n, "%s", v ? v : "");
}

bool db__is_uuid(const char *s)
{
    if (!s || strlen(s) != DB_UUID_LEN)
        return false;
    for (size_t i = 0; i < DB_UUID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (dash ? c != '-' : !hex)
            return false;
    }
    return true;
}
