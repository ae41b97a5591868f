/* cm_utf8.c -- UTF-8 validation (RFC 3629 table 3-7) and replacement of bad bytes. */
#include "common/cm_utf8.h"

#include <string.h>

size_t cm_utf8_seq(const uint8_t *p, size_t n)
{
    if (n == 0)
        return 0;
    uint8_t c = p[0];
    if (c < 0x80)
        return c ? 1 : 0;
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF; /* the second byte's range; later bytes are 80..BF */
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlong forms */
        hi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF; /* nothing past U+10FFFF */
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return len;
}

bool cm_utf8_valid(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        size_t l = cm_utf8_seq(p + i, n - i);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

char *cm_utf8_clean(struct cm_arena *a, const char *s, size_t n)
{
    if (cm_utf8_valid(s, n))
        return cm_arena_strndup(a, s, n);
    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    char *d = cm_arena_alloc(a, n * 3 + 1); /* each bad byte becomes 3 (U+FFFD) */
    if (!d)
        return NULL;
    const uint8_t *p = (const uint8_t *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t l = cm_utf8_seq(p + i, n - i);
        if (l) {
            memcpy(d + o, p + i, l);
            o += l;
            i += l;
        } else {
            memcpy(d + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    d[o] = 0;
    return d;
}
