/* ana.h -- the analyzer's public interface: one crash model that every dump reader fills (MDMP
 * minidumps, ELF cores, Windows kernel triage dumps), bounded memory reads over it, and the entry
 * points that load a dump from untrusted bytes.
 *
 * Ownership: a struct ana_crash owns everything it points to (its arena and the decompressed dump
 * bytes); free it with ana_crash_free(). Strings are UTF-8, NUL-terminated, never NULL unless the
 * field says "NULL if absent". */
#ifndef TRIAGE_ANA_H
#define TRIAGE_ANA_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>
#include <stdio.h> /* FILE */

#include "common/cm_arena.h"
#include "common/cm_err.h"

/* ---- limits: every count and size taken from a dump is capped by one of these ---- */

struct ana_limits {
    size_t max_dump_bytes;       /* decompressed dump size; default 100 MiB */
    unsigned zstd_window_log_max; /* ZSTD_d_windowLogMax; default 24 (16 MiB window) */
    uint32_t max_streams;        /* MDMP directory entries; default 128 */
    uint32_t max_threads;        /* default 4096 */
    uint32_t max_modules;        /* default 2048 */
    uint32_t max_regions;        /* memory regions; default 4096 (ELF cores: PT_LOAD count) */
    uint32_t max_frames;         /* frames per thread in a walk; default 1024 */
    uint32_t max_string_bytes;   /* one string read from a dump; default 64 KiB */
    uint32_t max_annotations;    /* default 512 */
};

/* Fills *lim with the defaults above. */
void ana_limits_default(struct ana_limits *lim);

/* ---- CPU and registers ---- */

enum ana_cpu {
    ANA_CPU_UNKNOWN = 0,
    ANA_CPU_X86,
    ANA_CPU_AMD64,
    ANA_CPU_ARM,
    ANA_CPU_ARM64,
    ANA_CPU_PPC,
    ANA_CPU_PPC64,
    ANA_CPU_MIPS,
    ANA_CPU_MIPS64,
    ANA_CPU_SPARC,
    ANA_CPU_RISCV64,
};

/* Registers are numbered as DWARF numbers them for each psABI, so CFI results (Breakpad .sym or
 * libdw) map onto them directly. Slots past the DWARF range hold what DWARF does not number.
 *   amd64: 0 rax 1 rdx 2 rcx 3 rbx 4 rsi 5 rdi 6 rbp 7 rsp 8..15 r8..r15 16 rip 17 rflags
 *   x86:   0 eax 1 ecx 2 edx 3 ebx 4 esp 5 ebp 6 esi 7 edi 8 eip 9 eflags
 *   arm64: 0..30 x0..x30 (29 fp, 30 lr) 31 sp 32 pc 33 cpsr
 *   arm:   0..15 r0..r15 (11 fp, 13 sp, 14 lr, 15 pc) 16 cpsr */
#define ANA_NREGS 34

enum {
    ANA_AMD64_RAX = 0, ANA_AMD64_RDX, ANA_AMD64_RCX, ANA_AMD64_RBX, ANA_AMD64_RSI, ANA_AMD64_RDI,
    ANA_AMD64_RBP, ANA_AMD64_RSP, ANA_AMD64_R8, ANA_AMD64_R9, ANA_AMD64_R10, ANA_AMD64_R11,
    ANA_AMD64_R12, ANA_AMD64_R13, ANA_AMD64_R14, ANA_AMD64_R15, ANA_AMD64_RIP, ANA_AMD64_RFLAGS,
};
enum {
    ANA_X86_EAX = 0, ANA_X86_ECX, ANA_X86_EDX, ANA_X86_EBX, ANA_X86_ESP, ANA_X86_EBP, ANA_X86_ESI,
    ANA_X86_EDI, ANA_X86_EIP, ANA_X86_EFLAGS,
};
enum { ANA_ARM64_FP = 29, ANA_ARM64_LR = 30, ANA_ARM64_SP = 31, ANA_ARM64_PC = 32, ANA_ARM64_CPSR = 33 };
enum { ANA_ARM_FP = 11, ANA_ARM_SP = 13, ANA_ARM_LR = 14, ANA_ARM_PC = 15, ANA_ARM_CPSR = 16 };

struct ana_context {
    enum ana_cpu cpu;
    uint64_t valid;         /* bit i set: r[i] is known */
    uint64_t r[ANA_NREGS];  /* 32-bit cpus keep values zero-extended */
};

/* Register number of pc / sp / frame pointer for cpu, or -1. */
int ana_reg_pc(enum ana_cpu cpu);
int ana_reg_sp(enum ana_cpu cpu);
int ana_reg_fp(enum ana_cpu cpu);
/* Name of register i for cpu ("rip", "x29"...), NULL if the slot is unused. */
const char *ana_reg_name(enum ana_cpu cpu, int i);
/* Register number for a name ("$rsp", "rsp", ".cfa" excluded), or -1. A leading '$' is allowed. */
int ana_reg_by_name(enum ana_cpu cpu, const char *name);
/* Pointer size in bytes: 4 or 8 (8 for unknown). */
unsigned ana_cpu_ptr_bytes(enum ana_cpu cpu);
/* Schema name of the cpu: "x86", "amd64", "arm", "arm64", ... "unknown". */
const char *ana_cpu_name(enum ana_cpu cpu);

static inline bool ana_ctx_has(const struct ana_context *c, int i)
{
    return i >= 0 && i < ANA_NREGS && (c->valid >> i & 1);
}
static inline void ana_ctx_set(struct ana_context *c, int i, uint64_t v)
{
    if (i >= 0 && i < ANA_NREGS) {
        c->r[i] = v;
        c->valid |= (uint64_t)1 << i;
    }
}

/* ---- the crash model ---- */

enum ana_format { ANA_FMT_MINIDUMP = 1, ANA_FMT_ELFCORE, ANA_FMT_KERNEL };

/* A range of the crashed process's memory whose bytes the dump holds. Regions in a crash are
 * sorted by base and never overlap (readers drop or clip the bad ones and warn). */
struct ana_region {
    uint64_t base, size;
    const uint8_t *data; /* view into the dump bytes */
};

/* What the dump says about an address range's protection (MemoryInfoList, /proc maps, PT_LOAD
 * flags). Used by the stack scanner to accept only executable code addresses. */
enum { ANA_PROT_R = 1, ANA_PROT_W = 2, ANA_PROT_X = 4 };
struct ana_mapping {
    uint64_t base, size;
    uint32_t prot;     /* ANA_PROT_* */
    const char *name;  /* file backing it, NULL if anonymous or unknown */
    uint64_t file_offset; /* offset in that file of the byte at base; 0 if name is NULL */
};

struct ana_module {
    uint64_t base, size;
    const char *path;       /* as the dump records it ("C:\\...\\foo.dll", "/lib/libc.so.6") */
    const char *debug_file; /* "foo.pdb", or the ELF file's base name; NULL if absent */
    const char *debug_id;   /* Breakpad form: GUID in upper-case hex, then the age in
                             * lower-case hex as Breakpad prints it; NULL if absent */
    const char *code_id;    /* PE: TIMESTAMP(8 hex)+SIZEOFIMAGE(hex); ELF: build id hex; or NULL */
    const char *version;    /* "a.b.c.d" from VS_FIXEDFILEINFO, NULL if absent */
    const uint8_t *build_id; /* ELF GNU build id bytes, NULL if absent */
    size_t build_id_len;
    uint32_t timestamp, checksum; /* PE TimeDateStamp / CheckSum (kernel driver list, MDMP) */
    bool is_main;           /* the main executable */
    bool unloaded;          /* only in crash->unloaded_modules */
    bool has_symbols;       /* set by the symbolizer: a symbol file was found */
    const char *symbols_source; /* set by the symbolizer: path of what it used, or NULL */
};

enum ana_trust {
    ANA_TRUST_NONE = 0,
    ANA_TRUST_CONTEXT,  /* "context": registers given by the dump */
    ANA_TRUST_CFI,      /* "cfi": call frame information */
    ANA_TRUST_FP,       /* "frame_pointer" */
    ANA_TRUST_CFI_SCAN, /* "cfi_scan": scanning, confirmed by CFI */
    ANA_TRUST_SCAN,     /* "scan": stack scanning */
    ANA_TRUST_INLINE,   /* "inline": only inside a frame's inlines */
};
const char *ana_trust_name(enum ana_trust t);

struct ana_inline {
    const char *function;
    const char *file; /* NULL if unknown */
    uint32_t line;    /* 0 if unknown */
    bool from_dwarf;  /* from ELF DWARF (else from a Breakpad .sym INLINE record) */
};

struct ana_frame {
    uint64_t pc;          /* instruction address: the fault pc, or a return address */
    enum ana_trust trust;
    int module;           /* index into crash->modules, -1 if outside every module */
    const char *function; /* symbol name, NULL without symbols */
    uint64_t function_base; /* address where the function starts, if function != NULL */
    const char *file;     /* source file, NULL if unknown */
    uint32_t line;        /* 0 if unknown */
    uint64_t line_base;   /* address where the line's code starts, if line != 0 */
    struct ana_inline *inlines; /* innermost first */
    size_t inline_count;
    struct ana_context regs; /* registers recovered for this frame */
};

struct ana_thread {
    uint32_t tid;
    const char *name;        /* NULL if the dump names none */
    bool has_ctx;
    struct ana_context ctx;  /* registers at the time of the dump; for the crashing thread, the
                              * registers at the crash (ana_load puts the exception record's
                              * context here: MDMP thread lists hold the handler's registers) */
    struct ana_context list_ctx; /* the registers exactly as the thread list gives them */
    uint64_t stack_base, stack_size; /* the stack memory the dump lists for it; 0 if unknown */
    bool dump_writer;        /* the thread that wrote the dump (Breakpad info stream) */
    bool bad_context;        /* its context could not be read; the walker skips it */
    /* Filled by the unwinder. */
    struct ana_frame *frames;
    size_t frame_count;
    bool frames_truncated;   /* stopped by the frame cap or a loop */
};

struct ana_annotation {
    const char *key;    /* "" for a Crashpad list annotation, which has no key */
    const char *value;
    const char *module; /* module path for module annotations, NULL for process-wide ones */
};

struct ana_system_info {
    const char *os;       /* "Windows NT", "Linux", "Mac OS X", "iOS", "Android"... */
    const char *os_ver;   /* "10.0.19041", "5.1.2600 Service Pack 2", "0.0.0 Linux 3.3.8 ..." */
    const char *cpu_arch; /* ana_cpu_name(cpu) */
    const char *cpu_info; /* "GenuineIntel family 6 model 13 stepping 8", NULL if absent */
    uint32_t cpu_count;
    enum ana_cpu cpu;
    uint32_t platform_id; /* MDMP PlatformId, 0 if not MDMP */
};

struct ana_crash_info {
    bool crashed;          /* false for a dump written without a crash */
    const char *type;      /* "EXCEPTION_ACCESS_VIOLATION_WRITE", "SIGSEGV /SEGV_MAPERR", ... */
                           /* (NULL when crashed is false) */
    bool has_address;
    uint64_t address;      /* fault address, truncated to the cpu's width */
    int crashing_thread;   /* index into threads, -1 if unknown */
    uint32_t crashing_tid; /* the thread id the dump names, even if absent from threads */
    const char *assertion; /* NULL if absent */
    /* Raw facts the type was named from. */
    uint32_t exception_code, exception_flags; /* MDMP exception record */
    uint32_t param_count;
    uint64_t params[15];
    int signo, si_code;    /* Linux signal (ELF core NT_SIGINFO, or MDMP from Linux) */
    bool has_signal;
    bool has_exception_ctx;
    struct ana_context exception_ctx; /* context from the exception record, if any */
    /* MDMP ExceptionRecord.ExceptionAddress as written (untruncated; for an access violation
     * the fault address above comes from ExceptionInformation[1] instead). */
    uint64_t exception_address;
    /* A Linux signal some process sent (si_code <= 0: kill, tgkill, raise): the siginfo's
     * address field then holds the sender's pid and uid, not a fault address, so has_address
     * is false and these say who sent it. */
    bool has_sender;
    uint32_t sender_pid, sender_uid;
};

/* Windows kernel dumps only. */
struct ana_bugcheck {
    bool present;
    uint32_t code;        /* as written, e.g. 0x1000007E */
    const char *name;     /* exact name, e.g. "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M" */
    const char *base_name; /* name of code & 0xFFFF... without the _M variant, for signatures */
    uint64_t params[4];
    const char *dump_type; /* "triage", "full", "summary", "bitmap_full", "bitmap_kernel", ... */
    bool triage;          /* the triage block was parsed (else only header facts) */
    int blamed_module;    /* index into modules, -1 if none */
    uint64_t ps_loaded_module_list; /* DUMP_HEADER64.PsLoadedModuleList (nt's module list head) */
};

struct ana_crash {
    enum ana_format format;
    struct ana_system_info system_info;
    struct ana_crash_info crash_info;
    struct ana_bugcheck bugcheck;

    struct ana_module *modules;
    size_t module_count;
    int main_module;            /* index into modules, -1 if unknown */
    struct ana_module *unloaded_modules;
    size_t unloaded_module_count;

    struct ana_thread *threads;
    size_t thread_count;

    struct ana_region *regions; /* sorted by base, non-overlapping */
    size_t region_count;
    struct ana_mapping *mappings; /* sorted by base; may be empty */
    size_t mapping_count;

    struct ana_annotation *annotations;
    size_t annotation_count;

    /* Process facts, 0/NULL if absent. */
    uint32_t pid;
    uint64_t process_create_time; /* seconds since the epoch */
    uint64_t dump_time;           /* seconds since the epoch (MDMP header TimeDateStamp) */
    const char *process_name;     /* NT_PRPSINFO fname, Crashpad/Linux cmdline argv[0] */
    const char *command_line;
    /* Linux streams of Breakpad and Crashpad dumps, as text (NULL if absent). */
    const char *linux_maps, *linux_status, *linux_cmdline, *linux_lsb_release, *linux_cpuinfo,
        *linux_environ;
    uint64_t *auxv; /* pairs: type, value */
    size_t auxv_count; /* number of pairs */

    /* MDMP stream directory, for raw dumps and diagnostics. */
    struct ana_stream { uint32_t type, size, rva; } *streams;
    size_t stream_count;
    uint32_t mdmp_flags; /* MINIDUMP_HEADER.Flags */
    bool has_breakpad_info;
    uint32_t breakpad_dump_tid, breakpad_requesting_tid; /* valid when has_breakpad_info */

    /* Non-fatal problems found while reading: cut lists, dropped regions, bad streams. */
    const char **warnings;
    size_t warning_count;

    /* Owned storage. */
    uint32_t *module_order; /* module indices sorted by base, for ana_module_at */
    struct cm_arena arena;
    uint8_t *bytes;   /* the decompressed dump */
    size_t byte_count;
    struct ana_limits limits;
};

/* ---- loading ---- */

enum ana_compression { ANA_COMP_NONE = 0, ANA_COMP_ZSTD, ANA_COMP_GZIP };
enum ana_kind { ANA_KIND_UNKNOWN = 0, ANA_KIND_MINIDUMP, ANA_KIND_ELFCORE, ANA_KIND_KERNEL };

/* Guesses the compression from the first bytes (zstd or gzip magic). */
enum ana_compression ana_sniff_compression(const uint8_t *p, size_t n);
/* Guesses the dump kind from the first bytes of decompressed data: MDMP/PMDM, ELF, PAGEDU64 /
 * PAGEDUMP. ELF here means any ELF; the core check happens when parsing. */
enum ana_kind ana_sniff_kind(const uint8_t *p, size_t n);
const char *ana_kind_name(enum ana_kind k);

/* Decompresses (zstd or gzip, by magic) or copies raw input into a new buffer capped at
 * lim->max_dump_bytes; the frame's declared size is never trusted. *out is owned by the caller;
 * free with cm_free(). */
enum cm_code ana_decompress(const uint8_t *in, size_t in_len, const struct ana_limits *lim,
                            uint8_t **out, size_t *out_len, struct cm_err *err);

/* Parses a dump (raw or compressed) into a new crash model. The input is copied; *out is owned
 * by the caller; free with ana_crash_free(). Fails (CM_E_NOTDUMP, CM_E_TRUNCATED, CM_E_CORRUPT,
 * CM_E_LIMIT...) when the dump cannot be read at all; a dump that is read in part succeeds and
 * lists what was skipped in warnings. lim may be NULL for defaults. */
enum cm_code ana_load(const uint8_t *in, size_t in_len, const struct ana_limits *lim,
                      struct ana_crash **out, struct cm_err *err);
/* Same, reading a file (capped before reading). */
enum cm_code ana_load_file(const char *path, const struct ana_limits *lim, struct ana_crash **out,
                           struct cm_err *err);
void ana_crash_free(struct ana_crash *c);

/* ---- memory reads: bounded, never past a region ---- */

/* Copies n bytes at addr if the dump holds all of them. */
bool ana_mem_read(const struct ana_crash *c, uint64_t addr, void *out, size_t n);
bool ana_mem_u32(const struct ana_crash *c, uint64_t addr, uint32_t *out);
bool ana_mem_u64(const struct ana_crash *c, uint64_t addr, uint64_t *out);
/* Reads a pointer of the crash's cpu width. */
bool ana_mem_ptr(const struct ana_crash *c, uint64_t addr, uint64_t *out);
/* The region holding addr, or NULL. */
const struct ana_region *ana_mem_region(const struct ana_crash *c, uint64_t addr);

/* The module containing addr (index), or -1. */
int ana_module_at(const struct ana_crash *c, uint64_t addr);
/* The module's file name without directories ("kernel32.dll", "libc.so.6"). */
const char *ana_module_basename(const struct ana_module *m);
/* The mapping containing addr, or NULL. */
const struct ana_mapping *ana_mapping_at(const struct ana_crash *c, uint64_t addr);

/* ---- signatures and buckets (ana_signature.c, rules in analyzer/signature_rules.txt) ---- */

/* One step of the decision trail: what the signature builder did with a frame and why. */
struct ana_sig_step {
    int frame;          /* frame index in the crashing thread, -1 for the reason class */
    const char *text;   /* the normalized frame */
    const char *action; /* "skip", "prefix", "keep", "sentinel", "collapse", "scan" */
    const char *rule;   /* the rule that decided ("irrelevant: raise"), or a short reason */
};

/* The hierarchy of keys of one crash, each stable and printable:
 * fault module -> fault point -> signature (the bucket) -> full normalized stack hash. */
struct ana_keys {
    const char *rules_version;
    const char *reason_class;        /* "SIGSEGV NULL", "EXCEPTION_ACCESS_VIOLATION_READ WILD" */
    const char *signature;           /* reason class, then frames, joined with " | " */
    char bucket[33];                 /* hex: first 128 bits of SHA-256 of the signature */
    const char *fault_module;        /* module name, "(no module)" if outside every module */
    const char *fault_module_version; /* version, else code/build id, else NULL */
    const char *fault_point;         /* "module!function" or "module+0xoffset" */
    char stack_hash[33];             /* hex: SHA-256 of the whole normalized stack */
    const char *top_frame;           /* the first frame, normalized (inlines expanded) */
    const char *fault_key;           /* symbol-free fault key text (ana_fault_key_format) */
    struct ana_sig_step *trail;
    size_t trail_count;
};

struct ana_rules;
/* Parses rules in the format of analyzer/signature_rules.txt. *out is owned by the caller; free
 * with ana_rules_free(). */
enum cm_code ana_rules_parse(const char *text, struct ana_rules **out, struct cm_err *err);
enum cm_code ana_rules_load(const char *path, struct ana_rules **out, struct cm_err *err);
/* The rules compiled into the program; parsed once, shared by all threads, never freed. */
const struct ana_rules *ana_rules_builtin(void);
void ana_rules_free(struct ana_rules *r);
const char *ana_rules_version(const struct ana_rules *r);

/* Computes the keys of c from its crashing thread's frames (the unwinder's frames, or the
 * context frame alone). Strings live in c's arena. */
enum cm_code ana_signature(struct ana_crash *c, const struct ana_rules *r, struct ana_keys *out,
                           struct cm_err *err);

/* ---- the whole offline analysis ---- */

struct ana_symstore;
/* Unwinds and symbolizes every thread (store may be NULL: no symbols), computes the symbol-free
 * fault key, then the keys with rules (NULL: the built-in rules). Strings live in c's arena. */
enum cm_code ana_analyze(struct ana_crash *c, struct ana_symstore *store,
                         const struct ana_rules *rules, struct ana_keys *keys,
                         struct cm_err *err);

/* ---- the fault key: what an endpoint computes without symbols (progressive collection) ---- */

#define ANA_FAULT_KEY_FRAMES 4
struct ana_fault_key {
    const char *module;          /* file name of the module holding the fault pc; "" if none */
    const char *module_version;  /* "a.b.c.d", or "" */
    const char *module_build_id; /* debug id (PE) or GNU build id (ELF), or "" */
    uint64_t offset;             /* fault pc minus the module base (the pc without a module) */
    uint32_t exception_code;     /* MDMP exception code, signal number, or bugcheck code */
    uint32_t exception_subcode;  /* si_code, or the access type of an access violation */
    size_t frame_count;          /* return addresses found without symbols and without scanning */
    struct { const char *module; uint64_t offset; } frames[ANA_FAULT_KEY_FRAMES];
    const char *address_class;   /* memory faults: "NULL", "NEAR_NULL" or "WILD", as the
                                  * signature's reason names the crash address; "" otherwise
                                  * (issue 5: without it one key would span two buckets) */
};
/* The key of c from its frames as they stand: call it after a walk without symbols, so the
 * endpoint and the service compute it alike. Strings point into c. */
void ana_fault_key_get(const struct ana_crash *c, struct ana_fault_key *k);
/* Canonical text of a key: the same fields give the same text, whoever computed them.
 * Owned by the caller; free with cm_free(). NULL when out of memory. */
char *ana_fault_key_format(const struct ana_fault_key *k);

/* ---- output ---- */

/* The processed-crash JSON (Socorro / minidump-stackwalk schema) of c, with keys when not NULL.
 * One line unless ANA_JSON_PRETTY. Inlined calls from Breakpad .sym files are always listed in
 * each frame's `inlines`; those from ELF DWARF only with ANA_JSON_DWARF_INLINES (otherwise the
 * frame shows the innermost source line, as eu-stack and gdb print a frame). Owned by the
 * caller; free with cm_free(). NULL when out of memory. */
enum { ANA_JSON_PRETTY = 1, ANA_JSON_DWARF_INLINES = 2 };
char *ana_json_text(const struct ana_crash *c, const struct ana_keys *keys, unsigned flags);

/* A readable report in the spirit of Breakpad's minidump_stackwalk, written to f. */
void ana_report_human(FILE *f, const struct ana_crash *c, const struct ana_keys *keys);
#endif
