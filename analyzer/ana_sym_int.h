/* ana_sym_int.h -- what the symbol layer's files share (ana_symstore.c, ana_symfile_breakpad.c,
 * ana_symfile_elf.c); nothing outside them includes this. */
#ifndef TRIAGE_ANA_SYM_INT_H
#define TRIAGE_ANA_SYM_INT_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

#include "analyzer/ana_sym.h"
#include "common/cm_err.h"

struct ana_bpsym;  /* a parsed Breakpad .sym file */
struct ana_elfsym; /* an opened ELF binary and/or .debug file */

/* Reads a whole regular file of at most max_bytes into a new NUL-terminated buffer (*out owned by
 * the caller, free with cm_free). CM_E_NOTFOUND if it does not exist, CM_E_LIMIT if larger. */
enum cm_code ana__read_file(const char *path, uint64_t max_bytes, char **out, size_t *len,
                            struct cm_err *err);

/* ---- ana_symfile_breakpad.c ---- */

/* Parses text (len bytes, NUL-terminated; ownership passes to the parser, also on failure).
 * Malformed lines are skipped and counted; fails only when out of memory or when the text is not
 * a .sym file at all. *out: free with ana__bpsym_free(). */
enum cm_code ana__bpsym_parse(char *text, size_t len, const struct ana_symstore_opts *o,
                              struct ana_bpsym **out, struct cm_err *err);
void ana__bpsym_free(struct ana_bpsym *b);
/* The MODULE record's debug id, NULL if the file has none. */
const char *ana__bpsym_module_id(const struct ana_bpsym *b);
uint64_t ana__bpsym_bad_records(const struct ana_bpsym *b);
/* Memory held by the parsed file (text and indexes). */
uint64_t ana__bpsym_mem_bytes(const struct ana_bpsym *b);
bool ana__bpsym_lookup(const struct ana_bpsym *b, uint64_t rva, struct ana_symloc *out);
size_t ana__bpsym_cfi_rules(const struct ana_bpsym *b, uint64_t rva, const char **rules,
                            size_t max);
bool ana__bpsym_win(const struct ana_bpsym *b, uint64_t rva, struct ana_win_frame *out);

/* ---- ana_symfile_elf.c ---- */

/* Opens the binary and/or the debug file (either path may be NULL, not both). A file whose GNU
 * build id differs from build_id is rejected. dirs are the store's folders, where a DWARF
 * supplementary file (.gnu_debugaltlink, dwz) is looked for by its build id. *out: free with
 * ana__elfsym_free(). */
enum cm_code ana__elfsym_open(const char *binary_path, const char *debug_path,
                              const uint8_t *build_id, size_t build_id_len,
                              const char *const *dirs, size_t ndirs,
                              const struct ana_symstore_opts *o, struct ana_elfsym **out,
                              struct cm_err *err);
void ana__elfsym_free(struct ana_elfsym *e);
uint64_t ana__elfsym_bytes(const struct ana_elfsym *e);
bool ana__elfsym_lookup(struct ana_elfsym *e, uint64_t rva, struct ana_symloc *out);
bool ana__elfsym_has_function(const struct ana_elfsym *e, uint64_t rva);
int ana__elfsym_with_cfi(struct ana_elfsym *e, ana_cfi_fn fn, void *arg);
/* The path lookups report: the debug file if any, else the binary. */
const char *ana__elfsym_path(const struct ana_elfsym *e);

#endif
