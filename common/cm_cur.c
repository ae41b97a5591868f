/* cm_cur.c -- bounded little/big-endian readers over a byte window. */
#include "common/cm_cur.h"

#include <string.h>

static bool take(struct cm_cur *c, size_t n, const uint8_t **b)
{
    if (c->failed || c->len - c->off < n) {
        c->failed = true;
        return false;
    }
    *b = c->p + c->off;
    c->off += n;
    return true;
}

bool cm_cur_u8(struct cm_cur *c, uint8_t *out)
{
    const uint8_t *b;
    *out = 0;
    if (!take(c, 1, &b))
        return false;
    *out = b[0];
    return true;
}

static uint64_t le(const uint8_t *b, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = v << 8 | b[i];
    return v;
}

static uint64_t be(const uint8_t *b, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | b[i];
    return v;
}

#define READER(fn, type, n, conv)                                                                  \
    bool fn(struct cm_cur *c, type *out)                                                           \
    {                                                                                              \
        const uint8_t *b;                                                                          \
        *out = 0;                                                                                  \
        if (!take(c, n, &b))                                                                       \
            return false;                                                                          \
        *out = (type)conv(b, n);                                                                   \
        return true;                                                                               \
    }
READER(cm_cur_u16le, uint16_t, 2, le)
READER(cm_cur_u32le, uint32_t, 4, le)
READER(cm_cur_u64le, uint64_t, 8, le)
READER(cm_cur_u16be, uint16_t, 2, be)
READER(cm_cur_u32be, uint32_t, 4, be)
READER(cm_cur_u64be, uint64_t, 8, be)
#undef READER

bool cm_cur_bytes(struct cm_cur *c, void *out, size_t n)
{
    const uint8_t *b;
    if (!take(c, n, &b)) {
        memset(out, 0, n);
        return false;
    }
    memcpy(out, b, n);
    return true;
}

bool cm_cur_view(struct cm_cur *c, size_t n, const uint8_t **out)
{
    *out = NULL;
    return take(c, n, out);
}

bool cm_cur_skip(struct cm_cur *c, size_t n)
{
    const uint8_t *b;
    return take(c, n, &b);
}

bool cm_cur_seek(struct cm_cur *c, size_t off)
{
    if (c->failed || off > c->len) {
        c->failed = true;
        return false;
    }
    c->off = off;
    return true;
}

bool cm_cur_window(const struct cm_cur *c, uint64_t off, uint64_t size, struct cm_cur *out)
{
    *out = (struct cm_cur){ .failed = true };
    if (off > c->len || size > c->len - off)
        return false;
    *out = (struct cm_cur){ .p = c->p + off, .len = (size_t)size };
    return true;
}

bool cm_cur_peek_u32le(const struct cm_cur *c, uint64_t off, uint32_t *out)
{
    *out = 0;
    if (off > c->len || c->len - off < 4)
        return false;
    *out = (uint32_t)le(c->p + off, 4);
    return true;
}
