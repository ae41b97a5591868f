/* elfcore_test.h -- what test_elfcore.c (corpus against elfutils) and test_elfcore_hostile.c
 * (patched and synthetic cores) share: loading from an exact-size buffer, expectations, and the
 * register comparison with eu-readelf. */
#ifndef TRIAGE_TEST_ELFCORE_TEST_H
#define TRIAGE_TEST_ELFCORE_TEST_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

#include "analyzer/ana.h"
#include "tests/analyzer/elfcore_ref.h"

/* Parses bytes as ana_load does after decompression, but from a buffer of exactly n bytes, so
 * the sanitizer catches any read past the end. lim may be NULL. */
enum cm_code load_exact(const uint8_t *p, size_t n, const struct ana_limits *lim,
                        struct ana_crash **out, struct cm_err *err);
bool has_warning(const struct ana_crash *c, const char *part);
void print_warnings(const struct ana_crash *c);
/* Parses or fails the test; with warning non-NULL, some warning must contain it. */
struct ana_crash *expect_ok(const uint8_t *p, size_t n, const struct ana_limits *lim,
                            const char *warning);
/* The parse must fail with code and a message containing part. */
void expect_fail(const uint8_t *p, size_t n, enum cm_code code, const char *part);
/* Thread t's registers equal what eu-readelf printed for thread ti, for every register the
 * machine's DWARF numbering and eu-readelf both name. */
void check_regs(const struct ana_thread *t, const struct ref_core *ref, size_t ti,
                unsigned machine);

/* test_elfcore_hostile.c */
void header_errors(void **state);
void executable_is_not_a_core(void **state);
void pn_xnum(void **state);
void section_headers(void **state);
void load_segments(void **state);
void limits_cut_lists(void **state);
void truncated_everywhere(void **state);
void note_headers(void **state);
void file_note(void **state);
void short_notes(void **state);
void synthetic_amd64(void **state);
void synthetic_i386(void **state);
void synthetic_aarch64(void **state);
void synthetic_arm(void **state);
void many_short_threads(void **state);
void synthetic_truncated(void **state);
void allocation_failures(void **state);

#endif
