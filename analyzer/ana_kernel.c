/* ana_kernel.c -- fill the crash model from a Windows kernel memory dump, the blue-screen kind
 * ("PAGEDU64"): the DUMP_HEADER64 facts (build, machine, processors, bug check code and its four
 * parameters, PsLoadedModuleList, dump type), the faulting CONTEXT record and the
 * EXCEPTION_RECORD64 kept in the header, and for triage dumps (DumpType 4, the small dumps of
 * C:\Windows\Minidump) the TRIAGE_DUMP64 block that ana_kernel_triage.c reads. Full and bitmap
 * dumps yield the header facts and a warning that they are not triage dumps. 32-bit dumps
 * ("PAGEDUMP") are recognized and refused.
 *
 * Formats: ntiodump.h (DUMP_HEADER64, TRIAGE_DUMP64, DUMP_TYPE), winnt.h (CONTEXT for AMD64 and
 * ARM64, EXCEPTION_RECORD64). Frame 0 is the CONTEXT record at 0x348: the faulting instruction.
 * The processor state at KeBugCheckEx, which debuggers find through the PRCB copy, is not used. */
#include <string.h>

#include "analyzer/ana_int.h"
#include "common/cm_alloc.h"
#include "common/cm_cur.h"

/* DUMP_HEADER64 field offsets (ntiodump.h; the structure is 0x2000 bytes). */
enum {
    HDR_MAJOR_VERSION = 0x08,    /* then MinorVersion (the build), DirectoryTableBase,
                                  * PfnDataBase, PsLoadedModuleList (0x20), PsActiveProcessHead,
                                  * MachineImageType (0x30), NumberProcessors, BugCheckCode */
    HDR_BUGCHECK_PARAMETER1 = 0x40, /* four ULONG64 */
    HDR_KD_DEBUGGER_DATA_BLOCK = 0x80,
    HDR_CONTEXT_RECORD = 0x348,  /* UCHAR[3000] */
    HDR_CONTEXT_RECORD_SIZE = 3000,
    HDR_EXCEPTION = 0xF00,       /* EXCEPTION_RECORD64, 0x98 bytes */
    HDR_DUMP_TYPE = 0xF98,
    HDR_SYSTEM_TIME = 0xFA8,     /* FILETIME */
    HDR_READ_END = 0xFB0,        /* the reader needs the header up to here */
};

/* IMAGE_FILE_MACHINE_* */
enum { MACHINE_I386 = 0x14C, MACHINE_AMD64 = 0x8664, MACHINE_ARM64 = 0xAA64 };

/* CONTEXT.ContextFlags: the architecture bit, then which groups of registers are valid. */
enum {
    CONTEXT_AMD64 = 0x00100000,
    CONTEXT_ARM64 = 0x00400000,
    CONTEXT_CONTROL = 0x1,
    CONTEXT_INTEGER = 0x2,
};
enum { CONTEXT_AMD64_SIZE = 0x4D0, CONTEXT_ARM64_SIZE = 0x390 };

/* A FILETIME field never written still holds the "PAGE" fill of the header. */
#define PAGE_FILL64 0x4547415045474150ull

static const char *dump_type_name(struct ana_crash *c, uint32_t t)
{
    switch (t) {
    case 1: return "full";
    case 2: return "summary"; /* kernel memory dump */
    case 3: return "header";
    case 4: return "triage";
    case 5: return "bitmap_full";
    case 6: return "bitmap_kernel";
    case 7: return "automatic";
    default: return ana__printf(c, "unknown(%u)", t);
    }
}

/* Windows NT version of a kernel build number, as minidump SystemInfo would give it. */
static const char *os_version(struct ana_crash *c, uint32_t build)
{
    static const struct { uint32_t build; const char *ver; } v[] = {
        { 10240, "10.0" }, { 9600, "6.3" }, { 9200, "6.2" }, { 7600, "6.1" },
        { 6000, "6.0" }, { 3790, "5.2" }, { 2600, "5.1" }, { 2195, "5.0" },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (build >= v[i].build)
            return ana__printf(c, "%s.%u", v[i].ver, build);
    return ana__printf(c, "0.0.%u", build);
}

/* CONTEXT (AMD64) at off: 0x30 ContextFlags, 0x44 EFlags, 0x78.. Rax Rcx Rdx Rbx Rsp Rbp Rsi Rdi
 * R8..R15, 0xF8 Rip. Returns the ContextFlags. */
static uint32_t read_context_amd64(const struct cm_cur *dump, uint64_t off, struct ana_context *ctx,
                                   bool *ok)
{
    struct cm_cur cur;
    *ok = false;
    if (!cm_cur_window(dump, off, CONTEXT_AMD64_SIZE, &cur))
        return 0;
    uint32_t flags, eflags;
    uint64_t gpr[17]; /* Rax .. R15, then Rip */
    cm_cur_seek(&cur, 0x30);
    cm_cur_u32le(&cur, &flags);
    cm_cur_seek(&cur, 0x44);
    cm_cur_u32le(&cur, &eflags);
    cm_cur_seek(&cur, 0x78);
    for (int i = 0; i < 17; i++)
        cm_cur_u64le(&cur, &gpr[i]);
    if (cur.failed)
        return 0;
    *ok = true;
    *ctx = (struct ana_context){ .cpu = ANA_CPU_AMD64 };
    if (flags & CONTEXT_INTEGER) {
        static const int dwarf[16] = {
            ANA_AMD64_RAX, ANA_AMD64_RCX, ANA_AMD64_RDX, ANA_AMD64_RBX, -1, ANA_AMD64_RBP,
            ANA_AMD64_RSI, ANA_AMD64_RDI, ANA_AMD64_R8,  ANA_AMD64_R9,  ANA_AMD64_R10,
            ANA_AMD64_R11, ANA_AMD64_R12, ANA_AMD64_R13, ANA_AMD64_R14, ANA_AMD64_R15,
        };
        for (int i = 0; i < 16; i++)
            if (dwarf[i] >= 0)
                ana_ctx_set(ctx, dwarf[i], gpr[i]);
    }
    if (flags & CONTEXT_CONTROL) {
        ana_ctx_set(ctx, ANA_AMD64_RSP, gpr[4]);
        ana_ctx_set(ctx, ANA_AMD64_RIP, gpr[16]);
        ana_ctx_set(ctx, ANA_AMD64_RFLAGS, eflags);
    }
    return flags;
}

/* CONTEXT (ARM64) at off: 0x0 ContextFlags, 0x4 Cpsr, 0x8 X0..X28, Fp, Lr, 0x100 Sp, 0x108 Pc. */
static uint32_t read_context_arm64(const struct cm_cur *dump, uint64_t off, struct ana_context *ctx,
                                   bool *ok)
{
    struct cm_cur cur;
    *ok = false;
    if (!cm_cur_window(dump, off, CONTEXT_ARM64_SIZE, &cur))
        return 0;
    uint32_t flags, cpsr;
    uint64_t x[33]; /* X0..X28, Fp, Lr, Sp, Pc */
    cm_cur_u32le(&cur, &flags);
    cm_cur_u32le(&cur, &cpsr);
    for (int i = 0; i < 33; i++)
        cm_cur_u64le(&cur, &x[i]);
    if (cur.failed)
        return 0;
    *ok = true;
    *ctx = (struct ana_context){ .cpu = ANA_CPU_ARM64 };
    if (flags & CONTEXT_INTEGER)
        for (int i = 0; i < 29; i++)
            ana_ctx_set(ctx, i, x[i]);
    if (flags & CONTEXT_CONTROL) {
        ana_ctx_set(ctx, ANA_ARM64_FP, x[29]);
        ana_ctx_set(ctx, ANA_ARM64_LR, x[30]);
        ana_ctx_set(ctx, ANA_ARM64_SP, x[31]);
        ana_ctx_set(ctx, ANA_ARM64_PC, x[32]);
        ana_ctx_set(ctx, ANA_ARM64_CPSR, cpsr);
    }
    return flags;
}

/* Reads the faulting CONTEXT into t; a context that cannot be read or names another
 * architecture marks the thread bad_context with a warning. */
static void read_context(struct ana_crash *c, const struct cm_cur *dump, uint64_t off,
                         struct ana_thread *t)
{
    enum ana_cpu cpu = c->system_info.cpu;
    bool ok = false;
    uint32_t flags = 0, want = 0;
    if (cpu == ANA_CPU_AMD64) {
        flags = read_context_amd64(dump, off, &t->ctx, &ok);
        want = CONTEXT_AMD64;
    } else if (cpu == ANA_CPU_ARM64) {
        flags = read_context_arm64(dump, off, &t->ctx, &ok);
        want = CONTEXT_ARM64;
    }
    if (!ok) {
        t->bad_context = true;
        ana__warn(c, "kernel dump: CONTEXT record at 0x%llx: %s",
                  (unsigned long long)off,
                  cpu == ANA_CPU_AMD64 || cpu == ANA_CPU_ARM64
                      ? "runs past the end of the file"
                      : "no context layout for this machine type");
        return;
    }
    if (!(flags & want) || !(flags & CONTEXT_CONTROL)) {
        t->bad_context = true;
        ana__warn(c, "kernel dump: CONTEXT record at 0x%llx: ContextFlags 0x%08x lack the "
                     "%s and CONTEXT_CONTROL bits; registers not used",
                  (unsigned long long)off, flags,
                  cpu == ANA_CPU_AMD64 ? "CONTEXT_AMD64" : "CONTEXT_ARM64");
        return;
    }
    t->has_ctx = true;
}

/* EXCEPTION_RECORD64: ExceptionCode, ExceptionFlags, ExceptionRecord, ExceptionAddress. In a
 * triage dump it is the breakpoint at KeBugCheckEx, kept as a raw fact only. */
static void read_exception(struct ana_crash *c, const struct cm_cur *dump, uint64_t off)
{
    struct cm_cur cur;
    uint32_t code, flags;
    if (!cm_cur_window(dump, off, 0x18, &cur)) {
        ana__warn(c, "kernel dump: EXCEPTION_RECORD64 at 0x%llx runs past the end of the file",
                  (unsigned long long)off);
        return;
    }
    cm_cur_u32le(&cur, &code);
    cm_cur_u32le(&cur, &flags);
    c->crash_info.exception_code = code;
    c->crash_info.exception_flags = flags;
}

/* The stack values the blame rule looks at: pointer-sized slots of the call-stack region from
 * the faulting sp upward (slots below sp belong to the bug-check and dispatch code that ran
 * after the fault), at most 128 KiB of them (x64 kernel stacks are at most 72 KiB). */
static int blame_from_stack(struct ana_crash *c, const struct ana_kernel_triage *tri,
                            const struct ana_thread *t, bool has_fault, uint64_t fault_pc)
{
    enum { MAX_SLOTS = (128 << 10) / 8 };
    uint64_t *vals = NULL;
    size_t n = 0;
    if (tri->stack_data && tri->stack_size >= 8) {
        uint64_t from = tri->stack_base;
        int sp = ana_reg_sp(t->ctx.cpu);
        if (t->has_ctx && ana_ctx_has(&t->ctx, sp) && t->ctx.r[sp] >= tri->stack_base &&
            t->ctx.r[sp] - tri->stack_base < tri->stack_size)
            from = t->ctx.r[sp];
        uint64_t skip = (from - tri->stack_base + 7) & ~(uint64_t)7;
        uint64_t slots = skip < tri->stack_size ? (tri->stack_size - skip) / 8 : 0;
        if (slots > MAX_SLOTS)
            slots = MAX_SLOTS;
        vals = slots ? cm_calloc((size_t)slots, sizeof *vals) : NULL; /* none: fault pc only */
        for (size_t i = 0; vals && i < slots; i++) {
            struct cm_cur cur = cm_cur_make(tri->stack_data + skip + 8 * i, 8);
            cm_cur_u64le(&cur, &vals[n++]);
        }
    }
    int blamed = ana__kernel_blame(c, has_fault, fault_pc, vals, n);
    cm_free(vals);
    return blamed;
}

enum cm_code ana__kernel_header(const uint8_t *p, size_t n, struct ana_dump_header64 *h,
                                struct cm_err *err)
{
    *h = (struct ana_dump_header64){ 0 };
    if (n >= 8 && memcmp(p, "PAGEDUMP", 8) == 0)
        return cm_fail(err, CM_E_UNSUPPORTED,
                       "kernel dump: 32-bit kernel dumps (PAGEDUMP, DUMP_HEADER32) are not "
                       "supported");
    if (n < 8 || memcmp(p, "PAGEDU64", 8) != 0)
        return cm_fail(err, CM_E_NOTDUMP, "kernel dump: no PAGEDU64 signature at offset 0");
    if (n < HDR_READ_END)
        return cm_fail(err, CM_E_TRUNCATED,
                       "kernel dump: DUMP_HEADER64 needs 0x%x bytes up to SystemTime, the file "
                       "has %zu",
                       HDR_READ_END, n);
    struct cm_cur cur = cm_cur_make(p, n);
    cm_cur_seek(&cur, HDR_MAJOR_VERSION);
    cm_cur_u32le(&cur, &h->major_version);
    cm_cur_u32le(&cur, &h->minor_version);
    cm_cur_u64le(&cur, &h->directory_table_base);
    cm_cur_u64le(&cur, &h->pfn_data_base);
    cm_cur_u64le(&cur, &h->ps_loaded_module_list);
    cm_cur_u64le(&cur, &h->ps_active_process_head);
    cm_cur_u32le(&cur, &h->machine_image_type);
    cm_cur_u32le(&cur, &h->number_processors);
    cm_cur_u32le(&cur, &h->bugcheck_code);
    cm_cur_seek(&cur, HDR_BUGCHECK_PARAMETER1);
    for (int i = 0; i < 4; i++)
        cm_cur_u64le(&cur, &h->bugcheck_params[i]);
    cm_cur_seek(&cur, HDR_KD_DEBUGGER_DATA_BLOCK);
    cm_cur_u64le(&cur, &h->kd_debugger_data_block);
    cm_cur_seek(&cur, HDR_EXCEPTION);
    cm_cur_u32le(&cur, &h->exception_code);
    cm_cur_seek(&cur, HDR_EXCEPTION + 0x10);
    cm_cur_u64le(&cur, &h->exception_address);
    cm_cur_seek(&cur, HDR_DUMP_TYPE);
    cm_cur_u32le(&cur, &h->dump_type);
    cm_cur_seek(&cur, HDR_SYSTEM_TIME);
    cm_cur_u64le(&cur, &h->system_time);
    if (cur.failed) /* cannot fail after the size check; the group is still checked once */
        return cm_fail(err, CM_E_TRUNCATED, "kernel dump: DUMP_HEADER64 is cut");
    return CM_E_OK;
}

enum cm_code ana__kernel_parse(struct ana_crash *c, struct cm_err *err)
{
    struct ana_dump_header64 h;
    enum cm_code rc = ana__kernel_header(c->bytes, c->byte_count, &h, err);
    if (rc)
        return rc;
    struct cm_cur dump = cm_cur_make(c->bytes, c->byte_count);

    /* System facts. */
    struct ana_system_info *si = &c->system_info;
    si->os = "Windows NT";
    si->os_ver = os_version(c, h.minor_version);
    si->cpu = h.machine_image_type == MACHINE_AMD64   ? ANA_CPU_AMD64
              : h.machine_image_type == MACHINE_ARM64 ? ANA_CPU_ARM64
              : h.machine_image_type == MACHINE_I386  ? ANA_CPU_X86
                                                      : ANA_CPU_UNKNOWN;
    si->cpu_arch = ana_cpu_name(si->cpu);
    si->cpu_count = h.number_processors;
    if (si->cpu != ANA_CPU_AMD64 && si->cpu != ANA_CPU_ARM64)
        ana__warn(c, "kernel dump: DUMP_HEADER64.MachineImageType 0x%x at 0x30 is not x64 or "
                     "arm64; registers not read",
                  h.machine_image_type);
    if (h.system_time != PAGE_FILL64 && h.system_time >= 116444736000000000ull)
        c->dump_time = h.system_time / 10000000ull - 11644473600ull; /* FILETIME -> Unix */

    /* The bug check: the crash reason of a kernel dump. */
    struct ana_bugcheck *bc = &c->bugcheck;
    bc->present = true;
    bc->code = h.bugcheck_code;
    memcpy(bc->params, h.bugcheck_params, sizeof bc->params);
    ana__bugcheck_names(c, h.bugcheck_code, &bc->name, &bc->base_name);
    bc->dump_type = dump_type_name(c, h.dump_type);
    bc->ps_loaded_module_list = h.ps_loaded_module_list;
    struct ana_crash_info *ci = &c->crash_info;
    ci->crashed = true;
    ci->type = bc->name;
    ci->param_count = 4;
    memcpy(ci->params, h.bugcheck_params, sizeof h.bugcheck_params);

    struct ana_kernel_triage tri = { 0 };
    if (h.dump_type == 4) {
        if ((rc = ana__kernel_triage(c, h.minor_version, h.kd_debugger_data_block, &tri, err)))
            return rc;
    } else {
        ana__warn(c, "kernel dump: DumpType %u (%s) at 0xf98 is not a triage dump: only the "
                     "header facts (bug check, machine, build, context) were read",
                  h.dump_type, bc->dump_type);
    }

    /* The crashing thread: the one whose faulting CONTEXT the header keeps. */
    struct ana_thread *t = ana__calloc(c, 1, sizeof *t);
    if (!t)
        return cm_fail(err, CM_E_NOMEM, "kernel dump: cannot allocate the thread");
    c->threads = t;
    c->thread_count = 1;
    ci->crashing_thread = 0;
    t->tid = tri.tid;
    ci->crashing_tid = tri.tid;
    t->stack_base = tri.stack_data ? tri.stack_base : 0;
    t->stack_size = tri.stack_data ? tri.stack_size : 0;
    read_context(c, &dump, tri.context_offset ? tri.context_offset : HDR_CONTEXT_RECORD, t);
    read_exception(c, &dump, tri.exception_offset ? tri.exception_offset : HDR_EXCEPTION);

    /* Crash address per the bug check's parameters; the blamed driver from it or the stack. */
    uint64_t addr;
    ci->has_address = ana__bugcheck_fault_address(h.bugcheck_code, h.bugcheck_params,
                                                  t->has_ctx ? &t->ctx : NULL, &addr);
    ci->address = ci->has_address ? addr : 0;
    bool has_fault = ci->has_address;
    uint64_t fault_pc = addr;
    int pc = ana_reg_pc(t->ctx.cpu);
    if (!has_fault && t->has_ctx && ana_ctx_has(&t->ctx, pc)) {
        has_fault = true;
        fault_pc = t->ctx.r[pc];
    }
    bc->blamed_module = blame_from_stack(c, &tri, t, has_fault, fault_pc);
    return CM_E_OK;
}
