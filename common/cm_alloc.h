/* cm_alloc.h -- all allocation goes through here, so tests can fail the Nth allocation and check
 * that every path cleans up and reports CM_E_NOMEM. */
#ifndef TRIAGE_CM_ALLOC_H
#define TRIAGE_CM_ALLOC_H

#include <stddef.h> /* size_t */

void *cm_malloc(size_t n);
void *cm_calloc(size_t count, size_t size); /* NULL if count*size overflows */
void *cm_realloc(void *p, size_t n);
/* Grows an array to hold count items of size bytes; NULL on overflow or failure (p untouched). */
void *cm_reallocarray(void *p, size_t count, size_t size);
char *cm_strdup(const char *s);
char *cm_strndup(const char *s, size_t n);
void cm_free(void *p);

/* Test hook: the Nth allocation from now fails (0 turns the hook off). */
void cm_alloc_fail_after(unsigned long n);

#endif
