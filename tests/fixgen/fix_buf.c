/* fix_buf.c -- the fixture writers' little-endian byte writer, in-place patching and zstd
 * compression of finished fixtures. */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "tests/fixgen/fixgen.h"

static bool grow(struct fix_buf *b, size_t n)
{
    if (b->failed)
        return false;
    if (n <= b->cap - b->len)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) {
            b->failed = true;
            return false;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void fix_buf_bytes(struct fix_buf *b, const void *p, size_t n)
{
    if (n == 0 || !grow(b, n))
        return;
    if (p)
        memcpy(b->p + b->len, p, n);
    else
        memset(b->p + b->len, 0, n);
    b->len += n;
}

void fix_buf_zeros(struct fix_buf *b, size_t n) { fix_buf_bytes(b, NULL, n); }

void fix_buf_u8(struct fix_buf *b, uint8_t v) { fix_buf_bytes(b, &v, 1); }

void fix_buf_u16(struct fix_buf *b, uint16_t v)
{
    uint8_t t[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
    fix_buf_bytes(b, t, 2);
}

void fix_buf_u32(struct fix_buf *b, uint32_t v)
{
    uint8_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    fix_buf_bytes(b, t, 4);
}

void fix_buf_u64(struct fix_buf *b, uint64_t v)
{
    uint8_t t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    fix_buf_bytes(b, t, 8);
}

void fix_buf_align(struct fix_buf *b, size_t to)
{
    if (to && b->len % to)
        fix_buf_zeros(b, to - b->len % to);
}

static void put(uint8_t *p, size_t len, size_t off, uint64_t v, size_t n)
{
    if (!p || off > len || n > len - off)
        return;
    for (size_t i = 0; i < n; i++)
        p[off + i] = (uint8_t)(v >> (8 * i));
}

void fix_put_u16(uint8_t *p, size_t len, size_t off, uint16_t v) { put(p, len, off, v, 2); }
void fix_put_u32(uint8_t *p, size_t len, size_t off, uint32_t v) { put(p, len, off, v, 4); }
void fix_put_u64(uint8_t *p, size_t len, size_t off, uint64_t v) { put(p, len, off, v, 8); }

enum cm_code fix_zstd(const uint8_t *p, size_t n, int level, uint8_t **out, size_t *out_len,
                      struct cm_err *err)
{
    *out = NULL;
    *out_len = 0;
    size_t cap = ZSTD_compressBound(n);
    uint8_t *z = malloc(cap ? cap : 1);
    if (!z)
        return cm_fail(err, CM_E_NOMEM, "cannot allocate %zu bytes for zstd output", cap);
    size_t zn = ZSTD_compress(z, cap, p, n, level);
    if (ZSTD_isError(zn)) {
        free(z);
        return cm_fail(err, CM_E_CORRUPT, "zstd: %s", ZSTD_getErrorName(zn));
    }
    *out = z;
    *out_len = zn;
    return CM_E_OK;
}
