/* ana_int.h -- what the analyzer's own files share; no other module includes this. */
#ifndef TRIAGE_ANA_INT_H
#define TRIAGE_ANA_INT_H

#include "analyzer/ana.h"
#include "common/cm_cur.h" /* struct cm_cur by value (ELF core notes) */

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

/* ELF cores (ana_elfcore.c walks the ELF structure, ana_elfcore_notes.c the "CORE" notes,
 * ana_elfcore_files.c NT_FILE, ana_elfcore_image.c ELF images in the core's memory). State of
 * one parse; note views never outlive it (libelf owns them). */
struct ana__core {
    struct ana_crash *c;
    unsigned word;     /* bytes of a "long" and a pointer: 4 for ELFCLASS32, 8 for ELFCLASS64 */
    unsigned machine;  /* e_machine */
    bool nomem;        /* an allocation failed: the parse fails with CM_E_NOMEM */
    size_t thread_cap; /* slots allocated in c->threads */
    size_t threads_dropped; /* NT_PRSTATUS notes past limits.max_threads */
    /* NT_PRSTATUS notes too short for pr_reg / for pr_pid, and the first one's offset: one
     * warning each, however many there are. */
    size_t short_regs, short_pid;
    uint64_t short_regs_off, short_pid_off;
    bool regs_warned;
    uint64_t image_note_bytes; /* note bytes scanned in in-memory ELF images: capped */
    /* Process-wide notes: the first counts, later ones are warned about and ignored. */
    bool seen_prpsinfo, seen_siginfo, seen_auxv, seen_file;
    bool has_siginfo;        /* NT_SIGINFO was read whole */
    int sig_signo, sig_code; /* NT_SIGINFO */
    uint64_t sig_addr;       /* first word of siginfo's union: si_addr for faults */
    int cursig, cur_code;    /* first NT_PRSTATUS: pr_cursig, pr_info.si_code (no NT_SIGINFO) */
};
/* One note owned by "CORE"; desc views its descriptor, off is the descriptor's file offset. */
void ana__core_note(struct ana__core *k, uint32_t type, struct cm_cur desc, uint64_t off);
/* After the notes: one warning per kind of NT_PRSTATUS trouble. */
void ana__core_thread_warnings(struct ana__core *k);
/* NT_FILE: modules, and the names of the mappings they cover (c->mappings sorted by base). */
void ana__core_files(struct ana__core *k, struct cm_cur desc, uint64_t off);
/* The vDSO (AT_SYSINFO_EHDR) as a module, when no file module covers it. */
void ana__core_vdso_module(struct ana__core *k);
/* After ana__finish: crash facts, the main module (AT_ENTRY), build ids. */
void ana__core_crash_info(struct ana__core *k);
void ana__core_main_module(struct ana__core *k);
void ana__core_build_ids(struct ana__core *k);
/* "6.1.55" from the vDSO's "Linux" note (LINUX_VERSION_CODE), NULL if the core lacks it. */
const char *ana__core_kernel_version(struct ana__core *k);
/* Copies p (at most n bytes, up to a NUL) into c's arena as UTF-8: invalid bytes become U+FFFD.
 * NULL when out of memory. */
char *ana__core_text(struct ana_crash *c, const uint8_t *p, size_t n);
/* Reads a word of w bytes (4 or 8), little-endian. */
static inline bool ana__cur_word(struct cm_cur *cur, unsigned w, uint64_t *out)
{
    uint32_t v32;
    if (w == 8)
        return cm_cur_u64le(cur, out);
    bool ok = cm_cur_u32le(cur, &v32);
    *out = v32;
    return ok;
}

/* Windows bug checks (ana_bugcheck.c). */
/* Exact name of code ("SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M" for 0x1000007E) and the base name
 * signatures use ("SYSTEM_THREAD_EXCEPTION_NOT_HANDLED"); unknown codes as "0x%08x". Strings are
 * static or in c's arena. */
void ana__bugcheck_names(struct ana_crash *c, uint32_t code, const char **name,
                         const char **base_name);
/* The name the table holds for exactly this code, NULL if none (no _M derivation). */
const char *ana__bugcheck_lookup(uint32_t code);
/* The table, for tests: number of entries and the code of entry i. */
size_t ana__bugcheck_count(void);
uint32_t ana__bugcheck_code_at(size_t i);
/* The faulting instruction's address as the bug check defines it (0x7E/0x1000007E and 0x1E:
 * parameter 2; 0x50: parameter 3 when non-zero; 0x3B: ctx's pc; ...). False when the bug check
 * names none. ctx may be NULL. */
bool ana__bugcheck_fault_address(uint32_t code, const uint64_t params[4],
                                 const struct ana_context *ctx, uint64_t *addr);

/* Windows kernel dumps (ana_kernel.c reads DUMP_HEADER64, ana_kernel_triage.c the TRIAGE_DUMP64
 * block, ana_kernel_blame.c names the driver to blame). */
struct ana_dump_header64 { /* the DUMP_HEADER64 fields the reader uses (ntiodump.h) */
    uint32_t major_version, minor_version; /* 0xF free build; the build number */
    uint64_t directory_table_base, pfn_data_base, ps_loaded_module_list, ps_active_process_head;
    uint32_t machine_image_type, number_processors, bugcheck_code;
    uint64_t bugcheck_params[4];
    uint64_t kd_debugger_data_block;
    uint32_t exception_code;    /* EXCEPTION_RECORD64 at 0xF00 (the KeBugCheckEx breakpoint) */
    uint64_t exception_address;
    uint32_t dump_type;
    uint64_t system_time; /* FILETIME */
};
/* Reads DUMP_HEADER64 from the start of a PAGEDU64 dump; CM_E_TRUNCATED if it is cut before
 * SystemTime, CM_E_UNSUPPORTED for 32-bit PAGEDUMP, CM_E_NOTDUMP without the signature. */
enum cm_code ana__kernel_header(const uint8_t *p, size_t n, struct ana_dump_header64 *h,
                                struct cm_err *err);
struct ana_triage_dump64 { /* TRIAGE_DUMP64 at file offset 0x2000 (ntiodump.h) */
    uint32_t service_pack_build, size_of_dump, valid_offset, context_offset, exception_offset,
        mm_offset, unloaded_drivers_offset, prcb_offset, process_offset, thread_offset,
        call_stack_offset, size_of_call_stack, driver_list_offset, driver_count,
        string_pool_offset, string_pool_size, broken_driver_offset, triage_options;
    uint64_t top_of_stack; /* lowest address of the call stack (the sp at the bug check) */
    uint64_t data_page_address;
    uint32_t data_page_offset, data_page_size, debugger_data_offset, debugger_data_size,
        data_blocks_offset, data_blocks_count;
};
/* Reads TRIAGE_DUMP64; false when the file ends inside it. */
bool ana__kernel_triage_header(const uint8_t *p, size_t n, struct ana_triage_dump64 *t);
struct ana_kernel_triage {
    uint32_t context_offset, exception_offset; /* TRIAGE_DUMP64 fields; 0 if absent */
    uint64_t stack_base, stack_size; /* call-stack region: TopOfStack, SizeOfCallStack */
    const uint8_t *stack_data;       /* its bytes in the dump; NULL if absent */
    bool has_ids;                    /* pid and tid were read from the process/thread blocks */
    uint32_t pid, tid;
};
/* Reads the TRIAGE_DUMP64 block at file offset 0x2000 into c: drivers -> modules, unloaded
 * drivers, call stack and data blocks -> regions, process and thread facts. Damaged parts become
 * warnings; fails only when memory runs out. kdbg is DUMP_HEADER64.KdDebuggerDataBlock. */
enum cm_code ana__kernel_triage(struct ana_crash *c, uint32_t build, uint64_t kdbg,
                                struct ana_kernel_triage *out, struct cm_err *err);
/* True for the core kernel images whose frames never take the blame: ntoskrnl (any ntkr*.exe)
 * and the HAL (hal*.dll). */
bool ana__kernel_is_core(const struct ana_module *m);
/* The driver to blame, as an index into c->modules, or -1. The rule: the driver containing
 * fault_pc when that is not a core kernel image; else the first non-core driver containing one
 * of the code addresses (stack values from the faulting sp upward, or a walker's frame pcs,
 * innermost first), so the kernel's bug-check and exception-dispatch code is skipped; else the
 * core image containing fault_pc. Works before ana__finish (linear module search then). */
int ana__kernel_blame(const struct ana_crash *c, bool has_fault_pc, uint64_t fault_pc,
                      const uint64_t *code_addrs, size_t n);

/* Signature rules (ana_sigrules.c). */
enum ana_rule_kind {
    ANA_RULE_NONE = 0,
    ANA_RULE_ALIAS,
    ANA_RULE_IRRELEVANT,
    ANA_RULE_PREFIX,
    ANA_RULE_SENTINEL,
    ANA_RULE_RUNTIME_MODULE,
};
/* The crash address class of a memory fault as the signature's reason names it ("NULL",
 * "NEAR_NULL", "WILD"), NULL when the reason carries none (ana_signature.c). */
const char *ana__address_class(const struct ana_crash *c);
/* The alias target for function in module, or NULL. */
const char *ana__rules_alias(const struct ana_rules *r, const char *module, const char *function);
/* What the rules say of a frame (function NULL when it has no symbol); *why is the pattern. */
enum ana_rule_kind ana__rules_classify(const struct ana_rules *r, const char *module,
                                       const char *function, const char **why);
/* Cleans a function name for signatures (ana_normalize.c): drops parameter lists, collapses
 * templates to <T>, unifies anonymous namespaces, strips clone suffixes (.cold, .part.N,
 * .constprop.N, .isra.N), Rust hashes and @@GLIBC versions. Writes at most n bytes (always
 * terminated); returns the length written. */
size_t ana__normalize_function(const char *in, char *out, size_t n);

/* ---- MDMP minidumps (ana_minidump.c reads the header and directory and runs the stream
 * parsers of ana_mdmp_*.c). Formats: Microsoft minidumpapiset.h (MINIDUMP_HEADER,
 * MINIDUMP_DIRECTORY and the stream structures), Breakpad's minidump_format.h (0x4767xxxx
 * streams, MDCVInfoELF), Crashpad's minidump_extensions.h (0x43500001). Little-endian only. ---- */

/* MINIDUMP_STREAM_TYPE values and the Breakpad/Crashpad extensions the reader handles. */
enum {
    ANA_MD_UNUSED = 0,
    ANA_MD_THREAD_LIST = 3,
    ANA_MD_MODULE_LIST = 4,
    ANA_MD_MEMORY_LIST = 5,
    ANA_MD_EXCEPTION = 6,
    ANA_MD_SYSTEM_INFO = 7,
    ANA_MD_MEMORY64_LIST = 9,
    ANA_MD_UNLOADED_MODULE_LIST = 14,
    ANA_MD_MISC_INFO = 15,
    ANA_MD_MEMORY_INFO_LIST = 16,
    ANA_MD_THREAD_NAME_LIST = 24,
    ANA_MD_BREAKPAD_INFO = 0x47670001,
    ANA_MD_ASSERTION_INFO = 0x47670002,
    ANA_MD_LINUX_CPU_INFO = 0x47670003,
    ANA_MD_LINUX_PROC_STATUS = 0x47670004,
    ANA_MD_LINUX_LSB_RELEASE = 0x47670005,
    ANA_MD_LINUX_CMD_LINE = 0x47670006,
    ANA_MD_LINUX_ENVIRON = 0x47670007,
    ANA_MD_LINUX_AUXV = 0x47670008,
    ANA_MD_LINUX_MAPS = 0x47670009,
    ANA_MD_LINUX_DSO_DEBUG = 0x4767000A,
    ANA_MD_CRASHPAD_INFO = 0x43500001,
};

/* MINIDUMP_SYSTEM_INFO.ProcessorArchitecture and .PlatformId values (with Breakpad's). */
enum {
    ANA_MD_ARCH_X86 = 0, ANA_MD_ARCH_MIPS = 1, ANA_MD_ARCH_PPC = 3, ANA_MD_ARCH_ARM = 5,
    ANA_MD_ARCH_AMD64 = 9, ANA_MD_ARCH_X86_WIN64 = 10, ANA_MD_ARCH_ARM64 = 12,
    ANA_MD_ARCH_SPARC = 0x8001, ANA_MD_ARCH_PPC64 = 0x8002, ANA_MD_ARCH_ARM64_OLD = 0x8003,
    ANA_MD_ARCH_MIPS64 = 0x8004, ANA_MD_ARCH_RISCV64 = 0x8006, ANA_MD_ARCH_UNKNOWN = 0xFFFF,
};
enum {
    ANA_MD_OS_WIN32_WINDOWS = 1, ANA_MD_OS_WIN32_NT = 2, ANA_MD_OS_MAC_OS_X = 0x8101,
    ANA_MD_OS_IOS = 0x8102, ANA_MD_OS_LINUX = 0x8201, ANA_MD_OS_SOLARIS = 0x8202,
    ANA_MD_OS_ANDROID = 0x8203, ANA_MD_OS_PS3 = 0x8204, ANA_MD_OS_NACL = 0x8205,
    ANA_MD_OS_FUCHSIA = 0x8206,
};

/* MDRawBreakpadInfo.validity bits. */
enum { ANA_MD_BREAKPAD_DUMP_THREAD_VALID = 1, ANA_MD_BREAKPAD_REQUESTING_VALID = 2 };

/* Reader state the stream parsers share. */
struct ana_mdmp {
    struct ana_crash *c;
    struct cm_cur file;      /* the whole dump; every offset is followed through cm_cur_window */
    bool has_system_info;
    uint16_t arch;           /* MINIDUMP_SYSTEM_INFO.ProcessorArchitecture (ANA_MD_ARCH_UNKNOWN) */
    uint32_t platform;       /* MINIDUMP_SYSTEM_INFO.PlatformId, valid with has_system_info */
    bool has_exception;      /* an Exception stream was read */
    uint32_t breakpad_validity; /* MDRawBreakpadInfo.validity: ANA_MD_BREAKPAD_*_VALID bits */
    size_t region_cap, mapping_cap, annotation_cap; /* allocated slots of the growing arrays */
    bool regions_cut, annotations_cut;              /* the cap warning was given */
};

/* One directory entry handed to a stream parser: MINIDUMP_DIRECTORY.StreamType and .Location,
 * and a cursor over exactly the stream's bytes (the directory check made sure they are in the
 * file). */
struct ana_mdmp_stream {
    uint32_t type, rva, size;
    struct cm_cur cur;
};

/* Stream parsers. Problems in the data become warnings and skip what they spoil; the only
 * failure is CM_E_NOMEM. */
typedef enum cm_code (*ana_mdmp_parser)(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                        struct cm_err *err);
enum cm_code ana__mdmp_system_info(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                   struct cm_err *err);  /* ana_mdmp_system.c */
enum cm_code ana__mdmp_misc_info(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                 struct cm_err *err);    /* ana_mdmp_system.c */
enum cm_code ana__mdmp_breakpad_info(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                     struct cm_err *err); /* ana_mdmp_system.c */
enum cm_code ana__mdmp_thread_list(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                   struct cm_err *err);  /* ana_mdmp_threads.c */
enum cm_code ana__mdmp_thread_names(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                    struct cm_err *err); /* ana_mdmp_threads.c */
enum cm_code ana__mdmp_exception(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                 struct cm_err *err);    /* ana_mdmp_exception.c */
enum cm_code ana__mdmp_assertion(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                 struct cm_err *err);    /* ana_mdmp_exception.c */
enum cm_code ana__mdmp_module_list(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                   struct cm_err *err);  /* ana_mdmp_modules.c */
enum cm_code ana__mdmp_unloaded_modules(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                        struct cm_err *err); /* ana_mdmp_modules.c */
enum cm_code ana__mdmp_memory_list(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                   struct cm_err *err);  /* ana_mdmp_memory.c */
enum cm_code ana__mdmp_memory64_list(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                     struct cm_err *err); /* ana_mdmp_memory.c */
enum cm_code ana__mdmp_memory_info_list(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                        struct cm_err *err); /* ana_mdmp_memory.c */
enum cm_code ana__mdmp_crashpad_info(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                     struct cm_err *err); /* ana_mdmp_crashpad.c */
enum cm_code ana__mdmp_linux_stream(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                    struct cm_err *err);  /* ana_mdmp_linux.c: text, auxv, maps */

/* Shared helpers (ana_minidump.c). */
/* "ThreadList", "MemoryList", ... or "stream 0x%x" (static or in c's arena). */
const char *ana__mdmp_stream_name(struct ana_crash *c, uint32_t type);
/* Reads the count of a list stream (a u32 at the start, optionally followed by 4 bytes of
 * padding, as some writers emit) and points *entries at the count entries of entry_size bytes.
 * A count the stream cannot hold skips the list with a warning (false); a count over cap is cut
 * to cap with a warning. what names the list in messages ("threads"). */
bool ana__mdmp_list(struct ana_mdmp *m, const struct ana_mdmp_stream *s, size_t entry_size,
                    uint32_t cap, const char *what, uint32_t *count, struct cm_cur *entries);
/* MINIDUMP_STRING (u32 byte length, UTF-16LE) at rva as UTF-8 in c's arena; what names it in
 * warnings. NULL (with a warning) when it does not fit the file; a string longer than
 * limits.max_string_bytes is cut with a warning. */
const char *ana__mdmp_string(struct ana_mdmp *m, uint64_t rva, const char *what);
/* Crashpad MinidumpUTF8String (u32 byte length, bytes, NUL) at rva, same rules. */
const char *ana__mdmp_utf8(struct ana_mdmp *m, uint64_t rva, const char *what);
/* Adds memory [base, base+size) whose bytes are at rva in the file; what names it in warnings.
 * Out-of-file or wrapping ranges are dropped with a warning, and so is everything past
 * limits.max_regions. False when memory runs out. */
bool ana__mdmp_add_region(struct ana_mdmp *m, uint64_t base, uint64_t size, uint64_t rva,
                          const char *what);
/* Adds a mapping (MemoryInfoList, /proc maps). False when memory runs out. */
bool ana__mdmp_add_mapping(struct ana_mdmp *m, const struct ana_mapping *map);
/* Adds an annotation (strings already in c's arena), up to limits.max_annotations. False when
 * memory runs out. */
bool ana__mdmp_add_annotation(struct ana_mdmp *m, const char *key, const char *value,
                              const char *module);
/* The cpu the model uses for MINIDUMP_SYSTEM_INFO.ProcessorArchitecture. */
enum ana_cpu ana__mdmp_cpu(uint16_t arch);

/* CPU contexts (ana_mdmp_context.c): CONTEXT for x86 and amd64, Breakpad's MDRawContextARM,
 * MDRawContextARM64 and MDRawContextARM64_Old. Reads the context in cur (exactly its bytes) for
 * the cpu the SystemInfo names (ANA_CPU_UNKNOWN: guessed from size and flags) into out with DWARF
 * numbering; registers are valid as ContextFlags says. False, with *why set to a static reason,
 * when the bytes are not a context of that cpu. */
bool ana__mdmp_context(enum ana_cpu cpu, struct cm_cur cur, struct ana_context *out,
                       const char **why);

/* Crash reasons named as Breakpad's minidump_stackwalk names them. */
/* Windows exception record (ana_reason_win.c): "EXCEPTION_ACCESS_VIOLATION_WRITE",
 * "FAST_FAIL_FATAL_APP_EXIT", "STATUS_INVALID_PARAMETER", unknown codes "0x%08x / 0x%08x". */
const char *ana__reason_windows(struct ana_crash *c, uint32_t code, uint32_t flags,
                                uint32_t nparams, const uint64_t *params);
/* The NTSTATUS name of an error-severity (0xC...) code, NULL if the table has none. */
const char *ana__ntstatus_name(uint32_t code);
/* The FAST_FAIL_* name of a __fastfail code, NULL if unknown. */
const char *ana__fast_fail_name(uint64_t code);
/* macOS / iOS (ana_reason_mac.c): "EXC_BAD_ACCESS / KERN_INVALID_ADDRESS", "Uncaught
 * NSException", ... arch is MINIDUMP_SYSTEM_INFO.ProcessorArchitecture (codes are per cpu). */
const char *ana__reason_mac(struct ana_crash *c, uint32_t code, uint32_t flags, uint16_t arch);

/* Arena helpers bound to the crash. */
static inline void *ana__alloc(struct ana_crash *c, size_t n) { return cm_arena_alloc(&c->arena, n); }
static inline void *ana__calloc(struct ana_crash *c, size_t count, size_t size)
{
    return cm_arena_calloc(&c->arena, count, size);
}
char *ana__strndup(struct ana_crash *c, const char *s, size_t n);
char *ana__printf(struct ana_crash *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
