/* th.h -- shared helpers for the cmocka test programs: corpus paths that fail loudly when the
 * corpus is missing, file reading, running a program and capturing its output. */
#ifndef TRIAGE_TH_H
#define TRIAGE_TH_H

#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Absolute path of a corpus file ("breakpad/testdata/minidump2.dmp"); the test fails if the
 * file does not exist. Returns a static buffer of the calling thread (valid until next call). */
const char *th_corpus(const char *rel);
/* Path under the build tree's scratch folder for this test, created on demand. */
const char *th_tmp(const char *name);
/* Reads a whole file (test fails if it cannot). *len gets the size; caller frees with free(). */
uint8_t *th_read(const char *path, size_t *len);
void th_write(const char *path, const void *p, size_t n);
/* Runs argv (argv[0] is a path), captures stdout and stderr (each NUL-terminated, free()d by
 * the caller, may pass NULL to ignore), waits at most timeout_s (then kills; the test fails).
 * Returns the exit status, or 128+signal. */
int th_run(char *const argv[], char **out, char **errout, int timeout_s);
/* The triagectl binary under test (from $TRIAGECTL, set by ctest). */
const char *th_triagectl(void);

#endif
