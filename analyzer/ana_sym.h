/* ana_sym.h -- the symbol layer and the unwinder's entry point.
 *
 * A symbol store is an ordered list of folders laid out the way existing tools lay them out:
 *   Breakpad:      DEBUG_FILE/DEBUG_ID/STEM.sym   ("test_app.pdb/5A98...1/test_app.sym" on Windows,
 *                                                  "libc.so.6/ID/libc.so.6.sym" elsewhere)
 *   GNU build-id:  .build-id/xx/rest.debug (symbols, DWARF) and .build-id/xx/rest (the binary:
 *                  .eh_frame, .dynsym)
 * Files are found by debug id or build id, never by file name alone, and the id inside a found
 * file must match. A file is parsed once into sorted arrays (binary search for every lookup) and
 * cached across dumps in one process; a missing file is remembered too (negative cache). The store
 * is shared by worker threads: every function on it is thread-safe.
 *
 * A job binds one crash's modules to symbol files and enforces the per-dump caps (RELIABILITY.md
 * S12): at most opts.max_job_modules modules symbolized and opts.max_job_bytes of symbol data.
 * The byte budget counts every file a job uses, cached or not, so a dump's result never depends
 * on what earlier dumps left in the cache.
 *
 * Addresses given to lookups are RVAs: the address minus the module's base in the dump. For ELF
 * files the layer adds the distance between the module base and the ELF's own first PT_LOAD.
 * Formats: Breakpad docs/symbol_files.md; System V gABI (symbol tables); DWARF 5 sections 6.2
 * (lines), 3.3.8 (inlined subroutines), 6.4 (CFI, evaluated by libdw). */
#ifndef TRIAGE_ANA_SYM_H
#define TRIAGE_ANA_SYM_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

#include "analyzer/ana.h"
#include "common/cm_err.h"

struct ana_symstore;
struct ana_symfile;
struct ana_symjob;
struct Dwarf_CFI_s; /* libdw's Dwarf_CFI */

/* ---- the store ---- */

struct ana_symstore_opts {
    uint64_t max_file_bytes;  /* one .sym file or ELF file; default 1 GiB */
    uint64_t max_job_bytes;   /* symbol data one dump may use (sum of its files); default 2 GiB */
    uint32_t max_job_modules; /* modules symbolized per dump; default 512 */
    uint64_t max_cache_bytes; /* parsed files kept across dumps, least recently used dropped
                                 beyond it; default 2 GiB */
    uint32_t max_records;     /* records of one kind (FUNC, line, STACK CFI...) per .sym file;
                                 default 32 Mi; more are skipped and counted as bad lines */
    uint32_t negative_ttl_s;  /* a missing file is remembered this long; 0: until freed;
                                 default 600 */
    bool dwarf_inlines;       /* report DWARF inline frames of ELF files; default false: then
                                 a frame's line is the innermost one, as eu-stack and gdb show
                                 it without inline expansion (Breakpad INLINE records are always
                                 reported) */
};

void ana_symstore_opts_default(struct ana_symstore_opts *o);

/* Creates a store over dirs (searched in order). Folders need not exist yet. opts may be NULL
 * for defaults. *out is owned by the caller; free with ana_symstore_free() after every job on it
 * has been freed. */
enum cm_code ana_symstore_new(const char *const *dirs, size_t ndirs,
                              const struct ana_symstore_opts *opts, struct ana_symstore **out,
                              struct cm_err *err);
void ana_symstore_free(struct ana_symstore *s);

struct ana_symstore_stats {
    uint64_t hits;          /* lookups answered by a cached parsed file */
    uint64_t negative_hits; /* lookups answered by the negative cache */
    uint64_t loads;         /* files parsed */
    uint64_t load_failures; /* files found but rejected (malformed, too large, wrong id) */
    uint64_t evictions;
    uint64_t cached_bytes;
    size_t cached_files;
};
void ana_symstore_get_stats(struct ana_symstore *s, struct ana_symstore_stats *out);
/* Forgets every remembered miss (after new symbols were uploaded). */
void ana_symstore_forget_missing(struct ana_symstore *s);

/* The symbol file for module m, from the cache or loaded now. CM_E_NOTFOUND when the store has
 * none (remembered), CM_E_LIMIT when the file is larger than budget_bytes. On success *out holds
 * a reference: release it with ana_symstore_release(). A file found but unreadable is reported
 * in err and remembered as missing. */
enum cm_code ana_symstore_get(struct ana_symstore *s, const struct ana_module *m,
                              uint64_t budget_bytes, struct ana_symfile **out,
                              struct cm_err *err);
void ana_symstore_release(struct ana_symstore *s, struct ana_symfile *f);

/* ---- one symbol file ---- */

enum ana_symfile_kind { ANA_SYMFILE_BREAKPAD = 1, ANA_SYMFILE_ELF };

#define ANA_SYM_MAX_INLINES 32

/* What a file says about one address. Strings point into the file: valid while it is
 * referenced. */
struct ana_symloc {
    const char *function;   /* NULL when no function or public symbol covers the address */
    uint64_t function_rva;  /* its start */
    uint64_t function_size; /* 0 when unknown (Breakpad PUBLIC records, sizeless ELF symbols) */
    uint32_t param_size;    /* Breakpad stack parameter size */
    bool is_public;         /* from a PUBLIC record */
    /* Source position in the real function: with inline frames, the call site of the outermost
     * one; else the line of the address. NULL / 0 when unknown. */
    const char *file;
    uint32_t line;
    uint64_t line_rva; /* start of the line record covering the address; 0 when unknown */
    /* Inlined calls covering the address, innermost first; each carries its own position (the
     * innermost: the line of the address; the others: the call site of the next inner one). */
    size_t inline_count;
    struct ana_inline inlines[ANA_SYM_MAX_INLINES];
};

enum ana_symfile_kind ana_symfile_kind(const struct ana_symfile *f);
/* Path of the file used (for ELF: the .debug file if any, else the binary). */
const char *ana_symfile_path(const struct ana_symfile *f);
/* Bytes of source data the file stands for (what the job budget counts). */
uint64_t ana_symfile_bytes(const struct ana_symfile *f);
/* Malformed or over-cap records skipped while parsing. */
uint64_t ana_symfile_bad_records(const struct ana_symfile *f);
/* Fills *out for the address rva; false (out->function NULL) when nothing covers it. */
bool ana_symfile_lookup(const struct ana_symfile *f, uint64_t rva, struct ana_symloc *out);

/* Whether a function or public symbol covers rva: the cheap part of a lookup (no DWARF), for the
 * stack scanner. */
bool ana_symfile_has_function(const struct ana_symfile *f, uint64_t rva);

/* Breakpad STACK CFI: the rule strings in force at rva -- the covering INIT record's rules, then
 * every delta record from its start up to rva, in address order (later rules override earlier
 * ones). Returns how many were stored in rules[0..max), 0 when no INIT record covers rva or more
 * than max would be needed. */
size_t ana_symfile_cfi_rules(const struct ana_symfile *f, uint64_t rva, const char **rules,
                             size_t max);

/* Breakpad STACK WIN (32-bit Windows). */
enum { ANA_WIN_FPO = 0, ANA_WIN_FRAME_DATA = 4 };
struct ana_win_frame {
    uint32_t type; /* ANA_WIN_FRAME_DATA or ANA_WIN_FPO */
    uint64_t rva, code_size;
    uint32_t prolog_size, epilog_size, param_size, saved_regs_size, locals_size, max_stack_size;
    bool allocates_base_pointer;
    const char *program; /* postfix program string, "" if none */
};
/* The innermost STACK WIN record covering rva, FRAME_DATA preferred over FPO. */
bool ana_symfile_win(const struct ana_symfile *f, uint64_t rva, struct ana_win_frame *out);

/* ELF CFI: runs fn while holding the file's libdw lock (a libdw handle is not thread-safe), with
 * the .eh_frame CFI of the binary and the .debug_frame CFI of the debug file (either may be
 * NULL). ELF address = rva + rva_to_elf. Returns fn's result, or -1 when the file is not ELF or
 * has no CFI. */
typedef int (*ana_cfi_fn)(void *arg, struct Dwarf_CFI_s *eh_frame, struct Dwarf_CFI_s *debug_frame,
                          uint64_t rva_to_elf);
int ana_symfile_with_cfi(const struct ana_symfile *f, ana_cfi_fn fn, void *arg);

/* ---- a job: one crash's modules bound to symbol files ---- */

/* store may be NULL (no symbols). *out is owned by the caller; free with ana_symjob_free(), which
 * releases the files it used, before the store. */
enum cm_code ana_symjob_new(struct ana_symstore *store, struct ana_crash *c,
                            struct ana_symjob **out, struct cm_err *err);
void ana_symjob_free(struct ana_symjob *j);
/* The symbol file of module index mi, found on first use; NULL without one, past a cap, or for
 * mi < 0. The first use sets the module's has_symbols and symbols_source, and adds a warning to
 * the crash when a file is rejected or a cap is reached. */
const struct ana_symfile *ana_symjob_module(struct ana_symjob *j, int mi);
/* Symbolizes addr (the fault pc, or a return address minus one) into fr: module, function,
 * function_base, file, line and inlines. Strings are copied into the crash's arena. fr->pc and
 * fr->trust are left alone. Fails only when out of memory. */
enum cm_code ana_symjob_symbolize(struct ana_symjob *j, uint64_t addr, struct ana_frame *fr,
                                  struct cm_err *err);
/* The crash the job was made for. */
struct ana_crash *ana_symjob_crash(struct ana_symjob *j);

/* ---- the unwinder ---- */

/* Walks every thread of c that has a context, frame by frame (context, then CFI, frame pointer,
 * stack scan), and symbolizes every frame through store (NULL: no symbols). Frames are allocated
 * in c->arena; each thread's frames, frame_count and frames_truncated are replaced. A thread whose
 * walk stops early keeps the frames found so far and the crash gets a warning. Fails only when out
 * of memory. */
enum cm_code ana_unwind_all(struct ana_crash *c, struct ana_symstore *store, struct cm_err *err);
/* The same for one thread, with an existing job (several threads share one job's budget). */
enum cm_code ana_unwind_thread(struct ana_symjob *j, size_t thread_index, struct cm_err *err);

#endif
