/* cm_utf8.h -- UTF-8 checking and cleaning for strings that come from dumps and requests and go
 * to JSON, PostgreSQL (a UTF8 database rejects invalid bytes) and logs. RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF. */
#ifndef TRIAGE_CM_UTF8_H
#define TRIAGE_CM_UTF8_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

#include "common/cm_arena.h"

/* Length (1-4) of the valid sequence at p, reading at most n bytes; 0 if invalid or a NUL. */
size_t cm_utf8_seq(const uint8_t *p, size_t n);
/* True when s[0..n) is valid UTF-8 without NUL bytes. */
bool cm_utf8_valid(const char *s, size_t n);
/* s[0..n) as a NUL-terminated string in a, with every byte that does not start a valid sequence
 * (NUL included) replaced by U+FFFD. NULL when out of memory. */
char *cm_utf8_clean(struct cm_arena *a, const char *s, size_t n);

#endif
