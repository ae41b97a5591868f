/* ana_unwind_int.h -- what the unwinder's files share (ana_unwind*.c); nothing else includes it.
 *
 * One walk: the context frame, then callers found one at a time by a per-cpu sequence of
 * strategies (ana_unwind_amd64.c, _x86.c, _arm64.c) built from shared pieces: Breakpad STACK CFI
 * (ana_unwind_bpcfi.c over the postfix evaluator of ana_unwind_postfix.c), STACK WIN
 * (ana_unwind_win.c), ELF CFI through libdw (ana_unwind_dwarf.c), frame pointers
 * (ana_unwind_fp.c) and stack scanning (ana_unwind_scan.c). The walker core (ana_unwind.c)
 * symbolizes, applies the stop rules and stores the frames.
 *
 * Memory: every stack read goes through ana__uw_read, which only reads inside the thread's stack
 * memory (the stack the dump lists for the thread, else the region holding its stack pointer),
 * as Breakpad's walkers do; nothing else in the dump is read while walking. */
#ifndef TRIAGE_ANA_UNWIND_INT_H
#define TRIAGE_ANA_UNWIND_INT_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

#include "analyzer/ana_int.h"
#include "analyzer/ana_sym.h"

#define UW_SCAN_WORDS 40         /* words searched for a return address (Breakpad kRASearchWords) */
#define UW_CONTEXT_SCAN_WORDS 160 /* for the caller of the context frame */
#define UW_MAX_CFI_RULES 256     /* STACK CFI records applied for one address */
#define UW_MAX_TOKENS 512        /* tokens of one rule set or program string */

/* A frame while walking. */
struct uw_frame {
    struct ana_context regs; /* valid bits say what is known */
    enum ana_trust trust;
    uint64_t pc;     /* the fault pc, or a return address */
    uint64_t lookup; /* the address symbols and CFI are looked up at: pc for the context frame
                        and for a caller interrupted by a signal, else inside the call */
    int module;      /* index into crash->modules, -1 outside every module */
    const struct ana_symfile *sym; /* the module's symbols, NULL without */
    /* x86 STACK WIN: the record used to unwind this frame (found when its caller is sought) */
    bool has_win;
    struct ana_win_frame win;
    bool param_size_valid; /* a STACK WIN or FUNC record gave this frame's parameter size */
    uint32_t param_size;
};

struct uw {
    struct ana_crash *c;
    struct ana_symjob *job;
    enum ana_cpu cpu;
    unsigned word;      /* pointer bytes */
    uint64_t mask;      /* register width mask */
    int pc_reg, sp_reg, fp_reg;
    bool windows;       /* the dump is from Windows: no frame-pointer walking on amd64 */
    uint64_t stack_lo, stack_hi; /* stack memory [lo, hi); empty when lo == hi */
    struct uw_frame *f; /* frames so far; f[n - 1] is the one whose caller is sought */
    size_t n, cap;
    uint32_t scanned;   /* frames found by scanning so far */
};

static inline struct uw_frame *uw_last(struct uw *w) { return &w->f[w->n - 1]; }
static inline uint64_t uw_reg(const struct uw_frame *f, int r) { return f->regs.r[r]; }

/* ---- ana_unwind.c ---- */
/* Reads size bytes (1..8, little-endian) at addr, only inside the stack memory. */
bool ana__uw_read(const struct uw *w, uint64_t addr, unsigned size, uint64_t *out);
/* Reads a pointer-sized word inside the stack memory. */
bool ana__uw_word(const struct uw *w, uint64_t addr, uint64_t *out);

/* ---- ana_unwind_scan.c ---- */
/* Could ip be a return address? It must lie in a module (in executable memory when the dump
 * says which memory is executable), and inside a function when the module has symbols; ip is
 * checked as ip - 1, the call it returns from. */
bool ana__uw_addr_ok(struct uw *w, uint64_t ip);
/* Searches words [start, start + words * word] of the stack for a plausible return address. */
bool ana__uw_scan(struct uw *w, uint64_t start, unsigned words, uint64_t *location,
                  uint64_t *ip);
/* Caller by scanning from the callee's stack pointer (40 words, 160 for the context frame). */
bool ana__uw_caller_scan(struct uw *w, struct uw_frame *caller);

/* ---- ana_unwind_fp.c ---- */
bool ana__uw_caller_fp_amd64(struct uw *w, struct uw_frame *caller);
bool ana__uw_caller_fp_x86(struct uw *w, struct uw_frame *caller); /* scans when ebp is unusable */
bool ana__uw_caller_fp_arm64(struct uw *w, struct uw_frame *caller);

/* ---- ana_unwind_postfix.c: Breakpad's postfix expressions ---- */
struct uw_tok {
    const char *p;
    size_t n;
};
/* Splits s at blanks into at most max tokens; returns the count, or max + 1 when s has more. */
size_t ana__uw_tokens(const char *s, struct uw_tok *t, size_t max);

#define UW_MAX_VARS 48
struct uw_vars {
    struct {
        char name[24];
        uint64_t v;
        bool assigned; /* set by '=' in the program */
    } v[UW_MAX_VARS];
    size_t n;
    const struct uw_frame *regs; /* when set, register names not in v[] read its valid registers */
};
void ana__uw_var_set(struct uw_vars *d, const char *name, size_t len, uint64_t v, bool assigned);
bool ana__uw_var_get(const struct uw *w, const struct uw_vars *d, const char *name, size_t len,
                     uint64_t *out);
/* Evaluates tokens: with assign, a program of assignments that must leave the stack empty;
 * without, an expression that must leave exactly one value (stored in *value). Values wrap at
 * the cpu's width; '^' reads the stack memory; '@' aligns down to a power of two. */
bool ana__uw_postfix(const struct uw *w, struct uw_vars *d, const struct uw_tok *t, size_t n,
                     bool assign, uint64_t *value);

/* ---- ana_unwind_bpcfi.c: Breakpad STACK CFI ---- */
/* Callee-saved registers of the cpu that the walker carries into a caller when CFI says nothing
 * of them (bit i = register i). */
uint64_t ana__uw_callee_saved(enum ana_cpu cpu);
/* Caller registers from the STACK CFI records covering the callee; false when there are none,
 * they do not evaluate, or the essentials (pc and sp, x86 also ebp) are missing. */
bool ana__uw_caller_bpcfi(struct uw *w, struct uw_frame *caller);

/* ---- ana_unwind_dwarf.c: ELF CFI through libdw ---- */
enum uw_dwarf { UW_DW_NONE = 0, UW_DW_CALLER, UW_DW_END };
/* UW_DW_CALLER with *caller filled; UW_DW_END when the CFI says the callee has no caller (its
 * return address is undefined: _start, clone); UW_DW_NONE without usable CFI. *signal is set
 * when the callee is a signal trampoline (the caller's pc is then exact, not a return address). */
enum uw_dwarf ana__uw_caller_dwarf(struct uw *w, struct uw_frame *caller, bool *signal);

/* ---- ana_unwind_win.c: STACK WIN (32-bit Windows) ---- */
/* Caller from the STACK WIN record covering the callee (FRAME_DATA program strings, FPO data),
 * with the scans Breakpad's x86 walker does around it. Records the callee's parameter size. */
bool ana__uw_caller_win(struct uw *w, struct uw_frame *caller);

/* ---- per cpu: the sequence of strategies; true with *caller filled, *end when the walk is
 * known complete ---- */
bool ana__uw_caller_amd64(struct uw *w, struct uw_frame *caller, bool *end, bool *signal);
bool ana__uw_caller_x86(struct uw *w, struct uw_frame *caller, bool *end, bool *signal);
bool ana__uw_caller_arm64(struct uw *w, struct uw_frame *caller, bool *end, bool *signal);

#endif
