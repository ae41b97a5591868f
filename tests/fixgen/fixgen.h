/* fixgen.h -- test fixture writers: build crash dumps from a description, so tests can craft
 * exact and hostile inputs, and generate realistic sample crashes for demos, end-to-end tests and
 * fleet drills. Library target `triage_fixgen` (tests/CMakeLists.txt).
 *
 *   fix_buf       a growable little-endian byte writer shared by the writers
 *   fix_md_*      MDMP minidumps (fix_minidump.c). Format: Microsoft minidumpapiset.h
 *                 (MINIDUMP_HEADER, MINIDUMP_DIRECTORY, the stream structures), Breakpad
 *                 minidump_format.h (Breakpad and Linux streams, ARM context), Crashpad
 *                 minidump_extensions.h (MinidumpCrashpadInfo and its annotations).
 *   fix_sample    realistic sample crashes per scenario and seed (fix_samples.c)
 *   fix_kernel_*  Windows kernel triage dumps, PAGEDU64 (fix_kernel.c). Format: ntiodump.h
 *                 (DUMP_HEADER64, TRIAGE_DUMP64, DUMP_DRIVER_ENTRY64, DUMP_STRING), winnt.h
 *                 (CONTEXT, EXCEPTION_RECORD64).
 *
 * Registers are numbered as analyzer/ana.h numbers them (DWARF numbers of each psABI); the writer
 * places each one where the cpu's MDMP context structure keeps it.
 *
 * Ownership: descriptions are owned by the caller and only read. Every *out buffer is owned by
 * the caller; free it with free(). Writers never print or exit. */
#ifndef TRIAGE_FIXGEN_H
#define TRIAGE_FIXGEN_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

#include "analyzer/ana.h" /* enum ana_cpu, register numbers */
#include "common/cm_err.h"

/* ---- byte writer ---- */

struct fix_buf {
    uint8_t *p;
    size_t len, cap;
    bool failed; /* sticky: an allocation failed */
};

void fix_buf_u8(struct fix_buf *b, uint8_t v);
void fix_buf_u16(struct fix_buf *b, uint16_t v);
void fix_buf_u32(struct fix_buf *b, uint32_t v);
void fix_buf_u64(struct fix_buf *b, uint64_t v);
void fix_buf_bytes(struct fix_buf *b, const void *p, size_t n);
void fix_buf_zeros(struct fix_buf *b, size_t n);
void fix_buf_align(struct fix_buf *b, size_t to);
/* Overwrites bytes already written; ignored when they would not fit. */
void fix_put_u16(uint8_t *p, size_t len, size_t off, uint16_t v);
void fix_put_u32(uint8_t *p, size_t len, size_t off, uint32_t v);
void fix_put_u64(uint8_t *p, size_t len, size_t off, uint64_t v);
/* zstd-compresses p into *out (caller frees with free()). */
enum cm_code fix_zstd(const uint8_t *p, size_t n, int level, uint8_t **out, size_t *out_len,
                      struct cm_err *err);

/* ---- MDMP minidumps ---- */

/* MINIDUMP_STREAM_TYPE values, Breakpad's 0x4767xxxx and Crashpad's 0x4350xxxx. */
enum {
    FIX_MD_THREAD_LIST = 3,
    FIX_MD_MODULE_LIST = 4,
    FIX_MD_MEMORY_LIST = 5,
    FIX_MD_EXCEPTION = 6,
    FIX_MD_SYSTEM_INFO = 7,
    FIX_MD_MEMORY64_LIST = 9,
    FIX_MD_UNLOADED_MODULE_LIST = 14,
    FIX_MD_MISC_INFO = 15,
    FIX_MD_MEMORY_INFO_LIST = 16,
    FIX_MD_THREAD_NAME_LIST = 24,
    FIX_MD_BREAKPAD_INFO = 0x47670001,
    FIX_MD_ASSERTION_INFO = 0x47670002,
    FIX_MD_LINUX_CPU_INFO = 0x47670003,
    FIX_MD_LINUX_PROC_STATUS = 0x47670004,
    FIX_MD_LINUX_LSB_RELEASE = 0x47670005,
    FIX_MD_LINUX_CMD_LINE = 0x47670006,
    FIX_MD_LINUX_ENVIRON = 0x47670007,
    FIX_MD_LINUX_AUXV = 0x47670008,
    FIX_MD_LINUX_MAPS = 0x47670009,
    FIX_MD_CRASHPAD_INFO = 0x43500001,
};

enum fix_os { FIX_OS_WINDOWS = 1, FIX_OS_LINUX, FIX_OS_MACOS, FIX_OS_IOS, FIX_OS_ANDROID };

/* A value that replaces what the writer would compute (hostile knobs). */
struct fix_over {
    bool set;
    uint64_t v;
};
#define FIX_OVER(x) ((struct fix_over){ .set = true, .v = (x) })

struct fix_sysinfo {
    enum ana_cpu cpu; /* X86, AMD64, ARM or ARM64 */
    enum fix_os os;
    uint32_t major, minor, build; /* OS version: 10.0.19045; Linux writers put 0.0.0 */
    const char *csd;      /* CSDVersion: "Service Pack 2", "Linux 5.15.0-91 #101 SMP x86_64" */
    uint8_t cpu_count;
    uint16_t level, revision; /* x86: family; model << 8 | stepping */
    const char *vendor;   /* x86/amd64 cpuid vendor ("GenuineIntel"), NULL for none */
    uint32_t cpuid_version; /* x86/amd64 cpuid(1).EAX */
    uint8_t product_type;   /* VER_NT_WORKSTATION = 1 */
    struct fix_over arch, platform; /* raw ProcessorArchitecture / PlatformId */
    struct fix_over csd_rva;
};

enum fix_cv { FIX_CV_NONE = 0, FIX_CV_PDB70, FIX_CV_ELF };

struct fix_guid {
    uint32_t d1;
    uint16_t d2, d3;
    uint8_t d4[8];
};

struct fix_module {
    uint64_t base;
    uint32_t size;
    const char *name; /* full path, as the dump records it */
    uint32_t timestamp, checksum;
    enum fix_cv cv;
    struct fix_guid guid; /* PDB70 */
    uint32_t age;         /* PDB70 */
    const char *pdb_name; /* PDB70: "contoso_sensor.pdb" */
    const uint8_t *build_id; /* ELF ('BpEL') record */
    size_t build_id_len;
    bool has_version;
    uint16_t version[4]; /* VS_FIXEDFILEINFO file version a.b.c.d */
    /* hostile */
    struct fix_over name_len; /* MINIDUMP_STRING.Length as written */
    struct fix_over name_rva, cv_rva, cv_size;
};

struct fix_thread {
    uint32_t tid;
    const char *name; /* ThreadNameList entry; NULL for none */
    bool no_context;  /* write an empty context location */
    uint64_t regs[ANA_NREGS];
    uint64_t stack_base; /* the stack memory, also listed in the memory list */
    const uint8_t *stack;
    size_t stack_len;
    uint64_t teb;
    /* hostile */
    enum ana_cpu ctx_cpu; /* write this cpu's layout instead of the dump's (0: the dump's) */
    struct fix_over ctx_size, ctx_rva, ctx_flags, stack_rva, stack_size;
};

struct fix_region {
    uint64_t base;
    const uint8_t *data; /* NULL: size zero bytes */
    size_t size;
    struct fix_over rva, data_size; /* MemoryList: Memory.Rva / DataSize; Memory64: DataSize */
};

struct fix_exception {
    bool present;
    uint32_t tid;
    uint32_t code, flags; /* Windows: NTSTATUS, flags; Linux: signal, si_code; macOS: type, code */
    uint64_t address;
    uint32_t param_count; /* written as is, even past 15 */
    uint64_t params[15];
    bool has_context;     /* else the context of thread tid is written again */
    uint64_t regs[ANA_NREGS];
    struct fix_over ctx_rva, ctx_size;
};

struct fix_misc {
    bool present;
    int level;            /* 1..5: MINIDUMP_MISC_INFO .. _5 (24, 44, 232, 832, 1364 bytes) */
    uint32_t pid;
    uint32_t create_time; /* seconds since the epoch */
    uint32_t user_time, kernel_time;
    const char *build_string; /* level >= 4 */
};

struct fix_breakpad_info {
    bool present;
    uint32_t validity; /* 1: dump thread valid, 2: requesting thread valid */
    uint32_t dump_tid, requesting_tid;
};

struct fix_assertion {
    bool present;
    const char *expression, *function, *file; /* each at most 127 UTF-16 units */
    uint32_t line, type;
};

struct fix_kv {
    const char *key, *value;
};

struct fix_annotation_obj {
    const char *name;
    uint16_t type; /* 1: string */
    const void *value;
    uint32_t value_len;
};

struct fix_crashpad_module {
    uint32_t module_index; /* index into the ModuleList */
    const char *const *list; /* list annotations */
    size_t list_count;
    const struct fix_kv *simple;
    size_t simple_count;
    const struct fix_annotation_obj *objs;
    size_t obj_count;
};

struct fix_crashpad {
    bool present;
    uint8_t report_id[16], client_id[16];
    const struct fix_kv *simple;
    size_t simple_count;
    const struct fix_crashpad_module *modules;
    size_t module_count;
    struct fix_over simple_count_over; /* hostile: dictionary count as written */
};

struct fix_blob {
    const void *p; /* NULL: stream absent */
    size_t n;
};

struct fix_meminfo {
    uint64_t base, alloc_base, size;
    uint32_t alloc_protect, state, protect, type; /* PAGE_*, MEM_COMMIT..., MEM_IMAGE... */
};

/* A stream added as given: raw bytes, or one stream type generated from another description
 * (to craft duplicates that differ). */
struct fix_stream {
    uint32_t type;
    const void *data;
    size_t size;
    const struct fix_md *from; /* if set: generate stream `type` from this description */
    bool before;               /* directory entry before the generated ones */
    struct fix_over rva, dir_size; /* directory entry's Rva / DataSize as written */
};

struct fix_md {
    struct fix_sysinfo sys;
    bool no_sysinfo;
    uint32_t time_date_stamp;
    uint64_t flags; /* MINIDUMP_HEADER.Flags */

    const struct fix_module *modules;
    size_t module_count;
    const struct fix_module *unloaded;
    size_t unloaded_count;
    const struct fix_thread *threads;
    size_t thread_count;
    bool thread_names;       /* write a ThreadNameList for threads with a name */
    const struct fix_region *regions; /* besides the thread stacks */
    size_t region_count;
    bool memory64;           /* Memory64List instead of MemoryList */
    bool stacks_not_in_memory_list;
    const struct fix_meminfo *meminfo;
    size_t meminfo_count;

    struct fix_exception exc;
    struct fix_misc misc;
    struct fix_breakpad_info breakpad;
    struct fix_assertion assertion;
    struct fix_crashpad crashpad;
    struct fix_blob linux_cpuinfo, linux_status, linux_lsb_release, linux_cmdline, linux_environ,
        linux_auxv, linux_maps;

    const struct fix_stream *extra;
    size_t extra_count;

    /* hostile: values written in place of the true ones */
    struct fix_over stream_count, dir_rva, version;
    struct fix_over thread_count_over, module_count_over, region_count_over, unloaded_count_over,
        name_count_over, meminfo_count_over;
};

/* Where the writer put things, for tests that patch bytes afterwards (first FIX_LAYOUT_MAX of
 * each list). Offsets are file offsets (RVAs). */
#define FIX_LAYOUT_MAX 64
struct fix_md_layout {
    uint32_t dir_rva;
    size_t dir_count;
    struct fix_dirent {
        uint32_t type, size, rva;
    } dir[FIX_LAYOUT_MAX * 2];
    uint32_t module_entry[FIX_LAYOUT_MAX], module_name[FIX_LAYOUT_MAX], module_cv[FIX_LAYOUT_MAX];
    uint32_t thread_entry[FIX_LAYOUT_MAX], thread_ctx[FIX_LAYOUT_MAX];
    uint32_t region_desc[FIX_LAYOUT_MAX], region_data[FIX_LAYOUT_MAX]; /* extra regions only */
    uint32_t name_entry[FIX_LAYOUT_MAX]; /* ThreadNameList entries */
};

/* Serializes d as an MDMP file. layout may be NULL. Fails only for out of memory or a
 * description the format cannot hold (a module name past 64 KiB...). */
enum cm_code fix_md_write(const struct fix_md *d, uint8_t **out, size_t *out_len,
                          struct fix_md_layout *layout, struct cm_err *err);
/* Offset of the first directory entry of type, or 0 if absent. */
uint32_t fix_md_stream_rva(const struct fix_md_layout *l, uint32_t type);
/* MDMP context size for cpu (x86 716, amd64 1232, arm 368, arm64 912), 0 if unknown. */
size_t fix_md_context_size(enum ana_cpu cpu);

/* ---- realistic sample crashes (fix_samples.c) ----
 *
 * Each scenario is a crash a fleet really sends. The crashing thread's stack memory holds a
 * frame-pointer chain (saved frame pointer + return address per frame) whose return addresses
 * fall inside the code ranges of the dump's modules, among locals that look like data, so a
 * frame-pointer or a scanning unwinder recovers the stack that info->frames lists. The same
 * scenario and seed always yield the same bytes; seeds vary load addresses (ASLR), stack depth
 * and contents, thread ids, timestamps and host annotations. Other threads sit in a wait.
 *
 *   win-amd64-av         Windows 10 amd64, EXCEPTION_ACCESS_VIOLATION_READ near null in the
 *                        agent module contoso_sensor.dll (driver-like: called from the service
 *                        host through ntdll), PDB70 ids, MiscInfo, MemoryInfoList, Crashpad
 *                        annotations (host, product, channel).
 *   win-amd64-stack-overflow  Windows amd64 EXCEPTION_STACK_OVERFLOW: unbounded recursion
 *                        inside contoso_sensor.dll; the stack is a run of identical frames.
 *   win-x86-divide       Windows x86 EXCEPTION_INT_DIVIDE_BY_ZERO in contoso_sensor.dll
 *                        (32-bit frames, ebp chain).
 *   linux-amd64-segv     Linux amd64 SIGSEGV / SEGV_MAPERR inside libcontoso.so.2 called from
 *                        the executable, Breakpad streams (maps, cmdline, status, lsb-release,
 *                        cpuinfo, auxv), ELF build ids.
 *   linux-amd64-abort    Linux amd64 SIGABRT / SI_TKILL through abort(): libc raise <- abort <-
 *                        contoso assertion handler, with an assertion stream.
 *   android-arm64-segv   Android arm64 SIGSEGV / SEGV_MAPERR in libcontoso_jni.so (x29/x30
 *                        frame records).
 *   android-arm-segv     Android 32-bit arm SIGSEGV / SEGV_ACCERR (r11 frame chain).
 *   macos-amd64-bad-access  macOS amd64 EXC_BAD_ACCESS / KERN_INVALID_ADDRESS in
 *                        ContosoKit.framework, Crashpad info with annotations.
 *   macos-arm64-bad-access  macOS arm64 (Apple silicon) EXC_BAD_ACCESS / KERN_INVALID_ADDRESS.
 */
enum fix_scenario {
    FIX_SC_WIN_AMD64_AV = 0,
    FIX_SC_WIN_AMD64_STACK_OVERFLOW,
    FIX_SC_WIN_X86_DIVIDE,
    FIX_SC_LINUX_AMD64_SEGV,
    FIX_SC_LINUX_AMD64_ABORT,
    FIX_SC_ANDROID_ARM64_SEGV,
    FIX_SC_ANDROID_ARM_SEGV,
    FIX_SC_MACOS_AMD64_BAD_ACCESS,
    FIX_SC_MACOS_ARM64_BAD_ACCESS,
    FIX_SC__COUNT
};

/* "win-amd64-av", ...; NULL for an unknown scenario. */
const char *fix_scenario_name(enum fix_scenario sc);
/* The scenario with that name, or -1. */
int fix_scenario_by_name(const char *name);

struct fix_sample_opts {
    uint64_t seed;
    uint16_t fault_version[4]; /* version of the faulting module; all zero: the scenario's */
    const char *host;          /* host name annotation; NULL: derived from the seed */
};

#define FIX_SAMPLE_MAX_FRAMES 64
/* What a sample holds, by construction: the truth its readers and unwinders should find. */
struct fix_sample_info {
    enum ana_cpu cpu;
    enum fix_os os;
    uint32_t crashing_tid;
    uint32_t exception_code, exception_flags;
    uint64_t crash_address;
    const char *fault_module; /* base name of the module holding frame 0 */
    uint16_t fault_version[4];
    size_t frame_count;       /* frames of the crashing thread, frame 0 = the fault pc */
    uint64_t frames[FIX_SAMPLE_MAX_FRAMES];
    int frame_module[FIX_SAMPLE_MAX_FRAMES]; /* index into the dump's module list */
    size_t thread_count, module_count;
    char host[32];
};

/* Builds the sample dump (raw MDMP). info may be NULL. */
enum cm_code fix_sample(enum fix_scenario sc, const struct fix_sample_opts *opts, uint8_t **out,
                        size_t *out_len, struct fix_sample_info *info, struct cm_err *err);


/* ---- Windows kernel triage dumps (fix_kernel.c) ----
 *
 * Writes a PAGEDU64 dump as Windows leaves it in C:\Windows\Minidump after a bug check:
 * DUMP_HEADER64 (0x2000 bytes, unused space filled with "PAGE") with the faulting CONTEXT at 0x348
 * and the EXCEPTION_RECORD64 at 0xF00, then TRIAGE_DUMP64 at 0x2000 followed by the Mm block, the
 * unloaded drivers, EPROCESS and ETHREAD copies, the call stack, the driver list and its string
 * pool, the data blocks, and the TRGD mark at ValidOffset. One description per driver version
 * lets a test replay a blue-screen wave across a fleet. */

struct fix_kdriver {
    const char *name; /* as the string pool keeps it: "\\SystemRoot\\System32\\drivers\\x.sys" */
    uint64_t base;
    uint32_t size, timestamp, checksum;
};

struct fix_kunloaded {
    const char *name; /* at most 12 characters are kept, as Windows keeps them */
    uint64_t start, end;
};

/* A return address into a driver, by the driver's base name and an offset. */
struct fix_kret {
    const char *driver;
    uint64_t offset;
};

/* A raw 8-byte value at an offset of the call-stack region. */
struct fix_kslot {
    uint32_t offset;
    uint64_t value;
};

/* A TRIAGE_DATA_BLOCK: memory at addr (data NULL: zeros). */
struct fix_kblock {
    uint64_t addr;
    const void *data;
    uint32_t size;
};

struct fix_kernel {
    enum ana_cpu cpu;        /* ANA_CPU_AMD64 (0 means this) or ANA_CPU_ARM64 */
    uint32_t build;          /* DUMP_HEADER64.MinorVersion; 0: 19041 */
    uint32_t processors;     /* 0: 4 */
    uint32_t dump_type;      /* 0: 4 (triage); any other type writes the header only */
    uint32_t bugcheck;
    uint64_t params[4];
    uint64_t ps_loaded_module_list;
    uint64_t system_time;    /* FILETIME; 0 leaves the "PAGE" fill */

    const struct fix_kdriver *drivers;
    size_t driver_count;
    const struct fix_kunloaded *unloaded;
    size_t unloaded_count;

    /* The faulting context, frame 0: pc = base of the driver whose base name is fault_driver
     * (case-insensitive) + fault_offset, or fault_pc without fault_driver. regs holds the other
     * registers as ana.h numbers them; pc, sp and fp below win over it. */
    const char *fault_driver;
    uint64_t fault_offset, fault_pc;
    uint64_t sp, fp;         /* sp 0: stack_top + stack_size / 4 */
    uint64_t regs[ANA_NREGS];
    uint32_t exception_code; /* 0: 0x80000003, the breakpoint at KeBugCheckEx */
    uint64_t exception_address;

    /* The call stack: stack_size bytes at stack_top (0: 0xffff850429890000 and 0x3000). */
    uint64_t stack_top;
    uint32_t stack_size;
    /* Return addresses written from sp upward, one per 0x30-byte frame at sp + 0x28 + 0x30 * k;
     * slots are written after them. */
    const struct fix_kret *returns;
    size_t return_count;
    const struct fix_kslot *slots;
    size_t slot_count;

    const struct fix_kblock *blocks;
    size_t block_count;

    /* The crashing thread's process and thread ids and image name, written as EPROCESS and
     * ETHREAD copies with the Windows 10 build 19041 layout when tid is not 0. */
    uint32_t pid, tid;
    const char *process_name;

    /* hostile: values written in place of the true ones */
    struct fix_over context_flags, driver_count_over, string_pool_size, unloaded_count_over,
        data_blocks_count, size_of_dump, top_of_stack;
    bool no_valid_mark;      /* leave out the TRGD mark */
};

/* File offsets of what fix_kernel_write placed, for tests that patch bytes afterwards. */
struct fix_kernel_layout {
    uint32_t triage;         /* TRIAGE_DUMP64: 0x2000 */
    uint32_t unloaded, process, thread, call_stack, driver_list, string_pool, data_blocks, valid;
    uint32_t driver_name[FIX_LAYOUT_MAX]; /* DUMP_STRING of driver i */
};

/* Serializes d as a PAGEDU64 dump. layout may be NULL. Fails for out of memory or a description
 * the format cannot hold (an unknown fault_driver or return driver, a slot outside the stack). */
enum cm_code fix_kernel_write(const struct fix_kernel *d, uint8_t **out, size_t *out_len,
                              struct fix_kernel_layout *layout, struct cm_err *err);
/* Base of the driver of d whose base name is driver, plus offset; 0 if there is none. */
uint64_t fix_kernel_addr(const struct fix_kernel *d, const char *driver, uint64_t offset);

#endif
