/* cm_arena.c -- bump allocator in blocks of at least 16 KiB. */
#include "common/cm_arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/cm_alloc.h"

struct cm_arena_block {
    struct cm_arena_block *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

void *cm_arena_alloc(struct cm_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0 || n > SIZE_MAX / 2)
        n = n ? 0 : 16;
    if (n == 0)
        return NULL;
    struct cm_arena_block *b = a->head;
    if (!b || b->size - b->used < n) {
        size_t size = n > 16384 ? n : 16384;
        b = cm_malloc(sizeof *b + size);
        if (!b)
            return NULL;
        b->next = a->head;
        b->used = 0;
        b->size = size;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->total_bytes += n;
    memset(p, 0, n);
    return p;
}

void *cm_arena_calloc(struct cm_arena *a, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / 4 / size)
        return NULL;
    return cm_arena_alloc(a, count * size);
}

char *cm_arena_strndup(struct cm_arena *a, const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = cm_arena_alloc(a, len + 1);
    if (d)
        memcpy(d, s, len);
    return d;
}

char *cm_arena_strdup(struct cm_arena *a, const char *s) { return cm_arena_strndup(a, s, SIZE_MAX); }

char *cm_arena_printf(struct cm_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *d = cm_arena_alloc(a, (size_t)n + 1);
    if (!d)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

void cm_arena_free(struct cm_arena *a)
{
    struct cm_arena_block *b = a->head;
    while (b) {
        struct cm_arena_block *next = b->next;
        cm_free(b);
        b = next;
    }
    a->head = NULL;
    a->total_bytes = 0;
}
