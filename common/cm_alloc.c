/* cm_alloc.c -- thin wrappers over the C allocator with a fail-the-Nth hook for tests. */
#include "common/cm_alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local unsigned long fail_countdown;

void cm_alloc_fail_after(unsigned long n) { fail_countdown = n; }

static int should_fail(void)
{
    if (fail_countdown == 0)
        return 0;
    return --fail_countdown == 0;
}

void *cm_malloc(size_t n) { return should_fail() ? NULL : malloc(n ? n : 1); }

void *cm_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    return should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *cm_realloc(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n ? n : 1); }

void *cm_reallocarray(void *p, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    return cm_realloc(p, count * size);
}

char *cm_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = cm_malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = 0;
    }
    return d;
}

char *cm_strdup(const char *s) { return cm_strndup(s, SIZE_MAX); }

void cm_free(void *p) { free(p); }
