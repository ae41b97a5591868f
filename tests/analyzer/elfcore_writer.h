/* elfcore_writer.h -- builds small ELF cores from a description, so tests reach machines the
 * corpus lacks (i386, aarch64, arm) and shapes it lacks (many threads, short notes). The layout
 * is the kernel's: ELF header, program headers, one PT_NOTE (NT_PRSTATUS per thread,
 * NT_PRPSINFO, NT_SIGINFO, NT_AUXV, NT_FILE), then PT_LOAD data. Memory: an executable mapped
 * without data at EW_PROG, a stack page at EW_STACK, and a library whose first page (an ELF
 * header with an NT_GNU_BUILD_ID note) is dumped at EW_LIB. */
#ifndef TRIAGE_TEST_ELFCORE_WRITER_H
#define TRIAGE_TEST_ELFCORE_WRITER_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

#define EW_PROG 0x400000u
#define EW_STACK 0x7f000000u
#define EW_LIB 0x40000000u
#define EW_PID 1000u
#define EW_SIGNO 11 /* SIGSEGV */
#define EW_CODE 2   /* SEGV_ACCERR */

struct ew_desc {
    unsigned machine;       /* EM_386, EM_X86_64, EM_ARM or EM_AARCH64 */
    unsigned threads;       /* NT_PRSTATUS notes; tids EW_PID + i */
    size_t prstatus_bytes;  /* descriptor size of each NT_PRSTATUS; 0: the kernel's */
};

/* The core as bytes; free() it. */
uint8_t *ew_core(const struct ew_desc *d, size_t *len);
/* What the writer puts in pr_reg slot i of thread t (the stack pointer slot holds an address in
 * the stack page). */
uint64_t ew_reg(const struct ew_desc *d, unsigned t, unsigned slot);
/* The fault address in NT_SIGINFO, and the library's build id (20 bytes). */
uint64_t ew_fault(const struct ew_desc *d);
extern const uint8_t ew_build_id[20];

#endif
