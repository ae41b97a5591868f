/* ana_int.h -- what the analyzer's own files share; no other module includes this. */
#ifndef TRIAGE_ANA_INT_H
#define TRIAGE_ANA_INT_H

#include "analyzer/ana.h"

/* Adds a warning to c (formatted, escaped of control bytes). Never fails: if memory runs out the
 * warning is dropped. */
void ana__warn(struct ana_crash *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Format readers. Each fills c from c->bytes (c->byte_count) and returns CM_E_OK, or an error
 * that names the structure and offset when the dump cannot be read at all. */
enum cm_code ana__minidump_parse(struct ana_crash *c, struct cm_err *err);
enum cm_code ana__elfcore_parse(struct ana_crash *c, struct cm_err *err);
enum cm_code ana__kernel_parse(struct ana_crash *c, struct cm_err *err);

/* Called by ana_load after a reader succeeds: sorts and sanitizes regions (overlaps dropped
 * region by region with a warning), sorts mappings, builds the module lookup index. Readers may
 * add regions in any order. */
enum cm_code ana__finish(struct ana_crash *c, struct cm_err *err);

/* Converts UTF-16LE (n bytes) to a NUL-terminated UTF-8 string in c's arena; unpaired
 * surrogates become U+FFFD. NULL only when out of memory. */
char *ana__utf16le_to_utf8(struct ana_crash *c, const uint8_t *p, size_t n);

/* Linux signals (ana_reason_linux.c). */
const char *ana__linux_signal_name(int signo); /* "SIGSEGV", NULL if unknown */
/* "SIGSEGV /SEGV_MAPERR", "SIGABRT /SI_TKILL", unnamed codes as 0x%08x; in c's arena. */
const char *ana__linux_reason(struct ana_crash *c, int signo, int code);
/* True when si_code says a sender raised the signal (kill, tgkill, raise): then the siginfo
 * holds the sender's pid and uid, not a fault address. */
bool ana__linux_code_is_sender(int code);

/* Arena helpers bound to the crash. */
static inline void *ana__alloc(struct ana_crash *c, size_t n) { return cm_arena_alloc(&c->arena, n); }
static inline void *ana__calloc(struct ana_crash *c, size_t count, size_t size)
{
    return cm_arena_calloc(&c->arena, count, size);
}
char *ana__strndup(struct ana_crash *c, const char *s, size_t n);
char *ana__printf(struct ana_crash *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
