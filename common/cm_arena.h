/* cm_arena.h -- a bump allocator for many small objects that die together (the strings and
 * arrays of one parsed crash, one HTTP request). Freed all at once with cm_arena_free(). */
#ifndef TRIAGE_CM_ARENA_H
#define TRIAGE_CM_ARENA_H

#include <stddef.h> /* size_t */

struct cm_arena_block;
struct cm_arena {
    struct cm_arena_block *head;
    size_t total_bytes; /* bytes handed out, for limits and metrics */
};

/* Zeroed memory aligned for any type, or NULL. */
void *cm_arena_alloc(struct cm_arena *a, size_t n);
void *cm_arena_calloc(struct cm_arena *a, size_t count, size_t size);
char *cm_arena_strdup(struct cm_arena *a, const char *s);
char *cm_arena_strndup(struct cm_arena *a, const char *s, size_t n);
char *cm_arena_printf(struct cm_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cm_arena_free(struct cm_arena *a);

#endif
