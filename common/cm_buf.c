/* cm_buf.c -- capped growable buffer. */
#include "common/cm_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/cm_alloc.h"

void cm_buf_init(struct cm_buf *b, size_t max_bytes)
{
    *b = (struct cm_buf){ .max_bytes = max_bytes ? max_bytes : SIZE_MAX / 2 };
}

enum cm_code cm_buf_reserve(struct cm_buf *b, size_t extra, struct cm_err *err)
{
    if (extra > b->max_bytes - b->len)
        return cm_fail(err, CM_E_LIMIT, "buffer of %zu bytes would exceed its limit of %zu bytes",
                       b->len + (extra > SIZE_MAX / 4 ? 0 : extra), b->max_bytes);
    size_t need = b->len + extra + 1; /* +1 keeps room for the terminating NUL */
    if (need <= b->cap_alloc)
        return CM_E_OK;
    size_t cap = b->cap_alloc ? b->cap_alloc : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = cm_realloc(b->data, cap);
    if (!p)
        return cm_fail(err, CM_E_NOMEM, "cannot grow buffer to %zu bytes", cap);
    b->data = p;
    b->cap_alloc = cap;
    return CM_E_OK;
}

enum cm_code cm_buf_append(struct cm_buf *b, const void *p, size_t n, struct cm_err *err)
{
    enum cm_code rc = cm_buf_reserve(b, n, err);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return CM_E_OK;
}

enum cm_code cm_buf_printf(struct cm_buf *b, struct cm_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return cm_fail(err, CM_E_CORRUPT, "bad format string");
    enum cm_code rc = cm_buf_reserve(b, (size_t)n, err);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return CM_E_OK;
}

uint8_t *cm_buf_steal(struct cm_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    size_t max = b->max_bytes;
    cm_buf_init(b, max);
    return p;
}

void cm_buf_reset(struct cm_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

void cm_buf_free(struct cm_buf *b)
{
    cm_free(b->data);
    size_t max = b->max_bytes;
    cm_buf_init(b, max);
}
