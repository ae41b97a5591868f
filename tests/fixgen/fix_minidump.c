/* fix_minidump.c -- writes MDMP minidumps from a struct fix_md description, including hostile
 * ones (counts, RVAs and sizes that lie). Formats: Microsoft minidumpapiset.h (header,
 * directory, thread/module/memory/exception/system/misc/unloaded/memory-info/thread-name
 * streams, CONTEXT for x86, AMD64 and ARM64 in winnt.h), Breakpad minidump_format.h (Breakpad
 * info, assertion and Linux streams, MDRawContextARM, CodeView 'BpEL'), Crashpad
 * minidump_extensions.h (MinidumpCrashpadInfo, simple string dictionaries, annotation lists).
 *
 * Layout: header at 0, directory right after it, then each stream in directory order followed by
 * the data it references (strings, contexts, CodeView records); all memory bytes (thread stacks
 * first, then the other regions) are written once, contiguously, the first time a stream needs
 * them, so a Memory64List can point at them with one BaseRva. */
#include <stdlib.h>
#include <string.h>

#include "tests/fixgen/fixgen.h"

#define MDMP_SIGNATURE 0x504d444du /* "MDMP" */
#define MDMP_VERSION 0xa793u

struct writer {
    const struct fix_md *d;
    struct fix_buf b;
    struct fix_md_layout *l;
    bool memory_done;
    uint32_t *stack_rva;   /* per thread */
    uint32_t block_rva;    /* first byte of the listed memory */
    uint32_t *region_rva;  /* per extra region */
};

static uint32_t here(const struct writer *w) { return (uint32_t)w->b.len; }

static uint64_t over(struct fix_over o, uint64_t dflt) { return o.set ? o.v : dflt; }

static void patch32(struct writer *w, size_t off, uint32_t v)
{
    fix_put_u32(w->b.p, w->b.len, off, v);
}

/* ---- strings ---- */

/* UTF-8 to UTF-16LE units appended to b (no terminator); returns the number of bytes. */
static size_t put_utf16(struct fix_buf *b, const char *s, size_t max_units)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t units = 0;
    while (*p && units < max_units) {
        uint32_t cp = *p++;
        int more = cp >= 0xF0 ? 3 : cp >= 0xE0 ? 2 : cp >= 0xC0 ? 1 : 0;
        if (more)
            cp &= 0x3Fu >> more;
        for (; more && (*p & 0xC0) == 0x80; more--)
            cp = cp << 6 | (*p++ & 0x3Fu);
        if (cp >= 0x10000 && units + 1 < max_units) {
            cp -= 0x10000;
            fix_buf_u16(b, (uint16_t)(0xD800 + (cp >> 10)));
            fix_buf_u16(b, (uint16_t)(0xDC00 + (cp & 0x3FF)));
            units += 2;
        } else {
            fix_buf_u16(b, (uint16_t)(cp >= 0x10000 ? 0xFFFD : cp));
            units++;
        }
    }
    return units * 2;
}

/* MINIDUMP_STRING: Length (bytes, without the terminator), UTF-16LE, a 0 unit. */
static uint32_t put_md_string(struct writer *w, const char *s, struct fix_over len_over)
{
    fix_buf_align(&w->b, 4);
    uint32_t rva = here(w);
    fix_buf_u32(&w->b, 0);
    size_t n = put_utf16(&w->b, s ? s : "", 32768);
    fix_buf_u16(&w->b, 0);
    patch32(w, rva, (uint32_t)over(len_over, n));
    return rva;
}

/* Crashpad MinidumpUTF8String: Length, bytes, a NUL. */
static uint32_t put_utf8_string(struct writer *w, const void *s, size_t n)
{
    fix_buf_align(&w->b, 4);
    uint32_t rva = here(w);
    fix_buf_u32(&w->b, (uint32_t)n);
    fix_buf_bytes(&w->b, s, n);
    fix_buf_u8(&w->b, 0);
    return rva;
}

/* ---- CPU contexts ---- */

size_t fix_md_context_size(enum ana_cpu cpu)
{
    switch (cpu) {
    case ANA_CPU_X86: return 716;   /* CONTEXT (i386) with ExtendedRegisters */
    case ANA_CPU_AMD64: return 1232; /* CONTEXT (AMD64) */
    case ANA_CPU_ARM: return 368;   /* MDRawContextARM */
    case ANA_CPU_ARM64: return 912; /* CONTEXT (ARM64) == MDRawContextARM64 */
    default: return 0;
    }
}

static void put_reg32(uint8_t *c, size_t off, uint64_t v)
{
    fix_put_u32(c, 1232, off, (uint32_t)v);
}
static void put_reg64(uint8_t *c, size_t off, uint64_t v) { fix_put_u64(c, 1232, off, v); }

/* Fills c (zeroed, 1232 bytes) with cpu's context layout; returns its size. */
static size_t build_context(uint8_t *c, enum ana_cpu cpu, const uint64_t *r, struct fix_over flags)
{
    switch (cpu) {
    case ANA_CPU_X86: {
        /* ContextFlags CONTEXT_i386 | CONTROL | INTEGER | SEGMENTS | FLOATING_POINT | DEBUG |
         * EXTENDED_REGISTERS; Dr0..7 at 4, FLOATING_SAVE_AREA at 28 (112 bytes), then segments
         * and integer registers from 140. */
        put_reg32(c, 0, over(flags, 0x0001003f));
        static const size_t off[10] = { 176, 172, 168, 164, 196, 180, 160, 156, 184, 192 };
        for (int i = 0; i <= ANA_X86_EFLAGS; i++) /* eax ecx edx ebx esp ebp esi edi eip eflags */
            put_reg32(c, off[i], r[i]);
        put_reg32(c, 140, 0x2b); /* gs */
        put_reg32(c, 144, 0x53); /* fs */
        put_reg32(c, 148, 0x2b); /* es */
        put_reg32(c, 152, 0x2b); /* ds */
        put_reg32(c, 188, 0x23); /* cs */
        put_reg32(c, 200, 0x2b); /* ss */
        return 716;
    }
    case ANA_CPU_AMD64: {
        /* P1Home..P6Home, ContextFlags at 48, MxCsr 52, segments 56..66, EFlags 68, Dr0..7 72,
         * Rax..R15 from 120 in Windows order (rax rcx rdx rbx rsp rbp rsi rdi r8..r15), Rip 248. */
        put_reg32(c, 48, over(flags, 0x0010001f));
        put_reg32(c, 52, 0x1f80);
        fix_put_u16(c, 1232, 56, 0x33); /* cs */
        fix_put_u16(c, 1232, 66, 0x2b); /* ss */
        put_reg32(c, 68, r[ANA_AMD64_RFLAGS]);
        static const int order[16] = { ANA_AMD64_RAX, ANA_AMD64_RCX, ANA_AMD64_RDX, ANA_AMD64_RBX,
                                       ANA_AMD64_RSP, ANA_AMD64_RBP, ANA_AMD64_RSI, ANA_AMD64_RDI,
                                       ANA_AMD64_R8,  ANA_AMD64_R9,  ANA_AMD64_R10, ANA_AMD64_R11,
                                       ANA_AMD64_R12, ANA_AMD64_R13, ANA_AMD64_R14, ANA_AMD64_R15 };
        for (int i = 0; i < 16; i++)
            put_reg64(c, 120 + 8 * (size_t)i, r[order[i]]);
        put_reg64(c, 248, r[ANA_AMD64_RIP]);
        put_reg32(c, 256 + 24, 0x1f80); /* FltSave.MxCsr */
        return 1232;
    }
    case ANA_CPU_ARM64: {
        /* ContextFlags CONTEXT_ARM64 | CONTROL | INTEGER | FLOATING_POINT, Cpsr at 4,
         * X0..X28, Fp, Lr at 8, Sp 256, Pc 264, V[32] 272, Fpcr 784, Fpsr 788, debug regs. */
        put_reg32(c, 0, over(flags, 0x00400007));
        put_reg32(c, 4, r[ANA_ARM64_CPSR]);
        for (int i = 0; i <= ANA_ARM64_LR; i++)
            put_reg64(c, 8 + 8 * (size_t)i, r[i]);
        put_reg64(c, 256, r[ANA_ARM64_SP]);
        put_reg64(c, 264, r[ANA_ARM64_PC]);
        return 912;
    }
    case ANA_CPU_ARM: {
        /* context_flags MD_CONTEXT_ARM | INTEGER | FLOATING_POINT, iregs r0..r15 at 4, cpsr 68,
         * MDFloatingSaveAreaARM at 72 (fpscr, d0..d31, extra[8]). */
        put_reg32(c, 0, over(flags, 0x40000006));
        for (int i = 0; i <= ANA_ARM_PC; i++)
            put_reg32(c, 4 + 4 * (size_t)i, r[i]);
        put_reg32(c, 68, r[ANA_ARM_CPSR]);
        return 368;
    }
    default:
        put_reg32(c, 0, over(flags, 0));
        return 16;
    }
}

/* Writes a context; returns its location through rva/size (before overrides). */
static void put_context(struct writer *w, enum ana_cpu cpu, const uint64_t *regs,
                        struct fix_over flags, uint32_t *rva, uint32_t *size)
{
    uint8_t c[1232];
    memset(c, 0, sizeof c);
    size_t n = build_context(c, cpu, regs, flags);
    fix_buf_align(&w->b, 16);
    *rva = here(w);
    fix_buf_bytes(&w->b, c, n);
    *size = (uint32_t)n;
}

/* ---- memory ---- */

static bool stack_listed(const struct writer *w, size_t i)
{
    const struct fix_thread *t = &w->d->threads[i];
    return !w->d->stacks_not_in_memory_list && t->stack_len > 0;
}

/* Writes every memory byte once: unlisted stacks, then the listed block (stacks, regions). */
static void ensure_memory(struct writer *w)
{
    const struct fix_md *d = w->d;
    if (w->memory_done)
        return;
    w->memory_done = true;
    for (size_t i = 0; i < d->thread_count; i++) {
        if (!stack_listed(w, i) && d->threads[i].stack_len) {
            fix_buf_align(&w->b, 16);
            w->stack_rva[i] = here(w);
            fix_buf_bytes(&w->b, d->threads[i].stack, d->threads[i].stack_len);
        }
    }
    fix_buf_align(&w->b, 16);
    w->block_rva = here(w);
    for (size_t i = 0; i < d->thread_count; i++) {
        if (stack_listed(w, i)) {
            w->stack_rva[i] = here(w);
            fix_buf_bytes(&w->b, d->threads[i].stack, d->threads[i].stack_len);
        }
    }
    for (size_t i = 0; i < d->region_count; i++) {
        w->region_rva[i] = here(w);
        if (i < FIX_LAYOUT_MAX && w->l)
            w->l->region_data[i] = here(w);
        fix_buf_bytes(&w->b, d->regions[i].data, d->regions[i].size);
    }
}

/* ---- streams ---- */

static void stream_system_info(struct writer *w, const struct fix_md *d)
{
    const struct fix_sysinfo *s = &d->sys;
    uint16_t arch;
    switch (s->cpu) {
    case ANA_CPU_X86: arch = 0; break;   /* PROCESSOR_ARCHITECTURE_INTEL */
    case ANA_CPU_ARM: arch = 5; break;   /* PROCESSOR_ARCHITECTURE_ARM */
    case ANA_CPU_AMD64: arch = 9; break; /* PROCESSOR_ARCHITECTURE_AMD64 */
    case ANA_CPU_ARM64: arch = 12; break; /* PROCESSOR_ARCHITECTURE_ARM64 */
    default: arch = 0xffff; break;
    }
    uint32_t platform;
    switch (s->os) {
    case FIX_OS_WINDOWS: platform = 2; break; /* VER_PLATFORM_WIN32_NT */
    case FIX_OS_MACOS: platform = 0x8101; break;
    case FIX_OS_IOS: platform = 0x8102; break;
    case FIX_OS_LINUX: platform = 0x8201; break;
    case FIX_OS_ANDROID: platform = 0x8203; break;
    default: platform = 0x8000; break; /* MD_OS_UNIX */
    }
    uint32_t start = here(w);
    fix_buf_u16(&w->b, (uint16_t)over(s->arch, arch));
    fix_buf_u16(&w->b, s->level);
    fix_buf_u16(&w->b, s->revision);
    fix_buf_u8(&w->b, s->cpu_count);
    fix_buf_u8(&w->b, s->product_type);
    fix_buf_u32(&w->b, s->major);
    fix_buf_u32(&w->b, s->minor);
    fix_buf_u32(&w->b, s->build);
    fix_buf_u32(&w->b, (uint32_t)over(s->platform, platform));
    fix_buf_u32(&w->b, 0); /* CSDVersionRva, patched below */
    fix_buf_u16(&w->b, 0x100); /* SuiteMask: VER_SUITE_SINGLEUSERTS */
    fix_buf_u16(&w->b, 0);
    /* CPU_INFORMATION: X86CpuInfo (VendorId[3], VersionInformation, FeatureInformation,
     * AMDExtendedCpuFeatures) or OtherCpuInfo (ProcessorFeatures[2]). */
    char vendor[12] = { 0 };
    if (s->vendor)
        memcpy(vendor, s->vendor, strnlen(s->vendor, 12));
    fix_buf_bytes(&w->b, vendor, 12);
    fix_buf_u32(&w->b, s->cpuid_version);
    fix_buf_u32(&w->b, s->vendor ? 0xbfebfbffu : 0);
    fix_buf_u32(&w->b, 0);
    uint32_t csd = put_md_string(w, s->csd ? s->csd : "", (struct fix_over){ 0 });
    patch32(w, start + 24, (uint32_t)over(s->csd_rva, csd));
}

static void put_module_entry(struct writer *w, const struct fix_module *m, size_t i,
                             uint32_t *name_off, uint32_t *cv_off)
{
    uint32_t start = here(w);
    if (w->l && i < FIX_LAYOUT_MAX)
        w->l->module_entry[i] = start;
    fix_buf_u64(&w->b, m->base);
    fix_buf_u32(&w->b, m->size);
    fix_buf_u32(&w->b, m->checksum);
    fix_buf_u32(&w->b, m->timestamp);
    *name_off = here(w);
    fix_buf_u32(&w->b, 0); /* ModuleNameRva */
    /* VS_FIXEDFILEINFO (52 bytes); all zero when the module has no version resource. */
    if (m->has_version) {
        uint32_t ms = (uint32_t)m->version[0] << 16 | m->version[1];
        uint32_t ls = (uint32_t)m->version[2] << 16 | m->version[3];
        fix_buf_u32(&w->b, 0xfeef04bd); /* dwSignature */
        fix_buf_u32(&w->b, 0x00010000); /* dwStrucVersion */
        fix_buf_u32(&w->b, ms);
        fix_buf_u32(&w->b, ls);
        fix_buf_u32(&w->b, ms); /* product version */
        fix_buf_u32(&w->b, ls);
        fix_buf_u32(&w->b, 0x3f); /* dwFileFlagsMask */
        fix_buf_u32(&w->b, 0);
        fix_buf_u32(&w->b, 0x00040004); /* VOS_NT_WINDOWS32 */
        fix_buf_u32(&w->b, 2);          /* VFT_DLL */
        fix_buf_zeros(&w->b, 12);       /* subtype, date */
    } else {
        fix_buf_zeros(&w->b, 52);
    }
    *cv_off = here(w);
    fix_buf_zeros(&w->b, 8); /* CvRecord */
    fix_buf_zeros(&w->b, 8); /* MiscRecord */
    fix_buf_zeros(&w->b, 16); /* Reserved0, Reserved1 */
}

static void put_codeview(struct writer *w, const struct fix_module *m, size_t i, uint32_t cv_off)
{
    if (m->cv == FIX_CV_NONE && !m->cv_rva.set)
        return;
    fix_buf_align(&w->b, 4);
    uint32_t rva = here(w);
    if (m->cv == FIX_CV_PDB70) {
        fix_buf_u32(&w->b, 0x53445352); /* "RSDS" */
        fix_buf_u32(&w->b, m->guid.d1);
        fix_buf_u16(&w->b, m->guid.d2);
        fix_buf_u16(&w->b, m->guid.d3);
        fix_buf_bytes(&w->b, m->guid.d4, 8);
        fix_buf_u32(&w->b, m->age);
        const char *pdb = m->pdb_name ? m->pdb_name : "";
        fix_buf_bytes(&w->b, pdb, strlen(pdb) + 1);
    } else if (m->cv == FIX_CV_ELF) {
        fix_buf_u32(&w->b, 0x4270454c); /* "BpEL" */
        fix_buf_bytes(&w->b, m->build_id, m->build_id_len);
    }
    uint32_t size = here(w) - rva;
    if (w->l && i < FIX_LAYOUT_MAX)
        w->l->module_cv[i] = rva;
    patch32(w, cv_off, (uint32_t)over(m->cv_size, size));
    patch32(w, cv_off + 4, (uint32_t)over(m->cv_rva, rva));
}

static void stream_module_list(struct writer *w, const struct fix_md *d)
{
    fix_buf_u32(&w->b, (uint32_t)over(d->module_count_over, d->module_count));
    uint32_t *name_off = calloc(d->module_count + 1, sizeof *name_off);
    uint32_t *cv_off = calloc(d->module_count + 1, sizeof *cv_off);
    if (!name_off || !cv_off) {
        w->b.failed = true;
        goto out;
    }
    for (size_t i = 0; i < d->module_count; i++)
        put_module_entry(w, &d->modules[i], i, &name_off[i], &cv_off[i]);
    for (size_t i = 0; i < d->module_count; i++) {
        const struct fix_module *m = &d->modules[i];
        uint32_t name = put_md_string(w, m->name, m->name_len);
        if (w->l && i < FIX_LAYOUT_MAX)
            w->l->module_name[i] = name;
        patch32(w, name_off[i], (uint32_t)over(m->name_rva, name));
        put_codeview(w, m, i, cv_off[i]);
    }
out:
    free(name_off);
    free(cv_off);
}

static void stream_unloaded_list(struct writer *w, const struct fix_md *d)
{
    fix_buf_u32(&w->b, 12); /* SizeOfHeader */
    fix_buf_u32(&w->b, 24); /* SizeOfEntry */
    fix_buf_u32(&w->b, (uint32_t)over(d->unloaded_count_over, d->unloaded_count));
    uint32_t first = here(w);
    for (size_t i = 0; i < d->unloaded_count; i++) {
        const struct fix_module *m = &d->unloaded[i];
        fix_buf_u64(&w->b, m->base);
        fix_buf_u32(&w->b, m->size);
        fix_buf_u32(&w->b, m->checksum);
        fix_buf_u32(&w->b, m->timestamp);
        fix_buf_u32(&w->b, 0);
    }
    for (size_t i = 0; i < d->unloaded_count; i++) {
        const struct fix_module *m = &d->unloaded[i];
        uint32_t name = put_md_string(w, m->name, m->name_len);
        patch32(w, first + 24 * i + 20, (uint32_t)over(m->name_rva, name));
    }
}

static const uint64_t *thread_regs(const struct fix_md *d, uint32_t tid)
{
    for (size_t i = 0; i < d->thread_count; i++)
        if (d->threads[i].tid == tid)
            return d->threads[i].regs;
    return NULL;
}

static void stream_thread_list(struct writer *w, const struct fix_md *d)
{
    ensure_memory(w);
    fix_buf_align(&w->b, 4);
    /* The stream starts here: callers record its rva after ensure_memory ran. */
    fix_buf_u32(&w->b, (uint32_t)over(d->thread_count_over, d->thread_count));
    uint32_t first = here(w);
    for (size_t i = 0; i < d->thread_count; i++) {
        const struct fix_thread *t = &d->threads[i];
        if (w->l && i < FIX_LAYOUT_MAX)
            w->l->thread_entry[i] = here(w);
        fix_buf_u32(&w->b, t->tid);
        fix_buf_u32(&w->b, 0);    /* SuspendCount */
        fix_buf_u32(&w->b, 0x20); /* PriorityClass: NORMAL_PRIORITY_CLASS */
        fix_buf_u32(&w->b, 0);    /* Priority */
        fix_buf_u64(&w->b, t->teb);
        fix_buf_u64(&w->b, t->stack_base);
        fix_buf_u32(&w->b, (uint32_t)over(t->stack_size, t->stack_len));
        fix_buf_u32(&w->b, (uint32_t)over(t->stack_rva, t->stack_len ? w->stack_rva[i] : 0));
        fix_buf_zeros(&w->b, 8); /* ThreadContext, patched below */
    }
    for (size_t i = 0; i < d->thread_count; i++) {
        const struct fix_thread *t = &d->threads[i];
        uint32_t rva = 0, size = 0;
        if (!t->no_context)
            put_context(w, t->ctx_cpu ? t->ctx_cpu : d->sys.cpu, t->regs, t->ctx_flags, &rva,
                        &size);
        if (w->l && i < FIX_LAYOUT_MAX)
            w->l->thread_ctx[i] = rva;
        patch32(w, first + 48 * i + 40, (uint32_t)over(t->ctx_size, size));
        patch32(w, first + 48 * i + 44, (uint32_t)over(t->ctx_rva, rva));
    }
}

static void stream_thread_names(struct writer *w, const struct fix_md *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->thread_count; i++)
        n += d->threads[i].name != NULL;
    fix_buf_u32(&w->b, (uint32_t)over(d->name_count_over, n));
    uint32_t first = here(w);
    for (size_t i = 0, k = 0; i < d->thread_count; i++) {
        if (!d->threads[i].name)
            continue;
        if (w->l && k < FIX_LAYOUT_MAX)
            w->l->name_entry[k] = here(w);
        k++;
        fix_buf_u32(&w->b, d->threads[i].tid);
        fix_buf_u64(&w->b, 0); /* RvaOfThreadName (64-bit) */
    }
    for (size_t i = 0, k = 0; i < d->thread_count; i++) {
        if (!d->threads[i].name)
            continue;
        uint32_t rva = put_md_string(w, d->threads[i].name, (struct fix_over){ 0 });
        fix_put_u64(w->b.p, w->b.len, first + 12 * k + 4, rva);
        k++;
    }
}

/* Memory list entries in order: listed stacks, then regions. */
static size_t memory_entries(const struct writer *w)
{
    size_t n = w->d->region_count;
    for (size_t i = 0; i < w->d->thread_count; i++)
        n += stack_listed(w, i);
    return n;
}

static void stream_memory_list(struct writer *w, const struct fix_md *d)
{
    fix_buf_u32(&w->b, (uint32_t)over(d->region_count_over, memory_entries(w)));
    for (size_t i = 0; i < d->thread_count; i++) {
        if (!stack_listed(w, i))
            continue;
        fix_buf_u64(&w->b, d->threads[i].stack_base);
        fix_buf_u32(&w->b, (uint32_t)d->threads[i].stack_len);
        fix_buf_u32(&w->b, w->stack_rva[i]);
    }
    for (size_t i = 0; i < d->region_count; i++) {
        const struct fix_region *r = &d->regions[i];
        if (w->l && i < FIX_LAYOUT_MAX)
            w->l->region_desc[i] = here(w);
        fix_buf_u64(&w->b, r->base);
        fix_buf_u32(&w->b, (uint32_t)over(r->data_size, r->size));
        fix_buf_u32(&w->b, (uint32_t)over(r->rva, w->region_rva[i]));
    }
}

static void stream_memory64_list(struct writer *w, const struct fix_md *d)
{
    fix_buf_u64(&w->b, over(d->region_count_over, memory_entries(w)));
    fix_buf_u64(&w->b, w->block_rva); /* BaseRva */
    for (size_t i = 0; i < d->thread_count; i++) {
        if (!stack_listed(w, i))
            continue;
        fix_buf_u64(&w->b, d->threads[i].stack_base);
        fix_buf_u64(&w->b, d->threads[i].stack_len);
    }
    for (size_t i = 0; i < d->region_count; i++) {
        if (w->l && i < FIX_LAYOUT_MAX)
            w->l->region_desc[i] = here(w);
        fix_buf_u64(&w->b, d->regions[i].base);
        fix_buf_u64(&w->b, over(d->regions[i].data_size, d->regions[i].size));
    }
}

static void stream_exception(struct writer *w, const struct fix_md *d)
{
    const struct fix_exception *e = &d->exc;
    uint32_t start = here(w);
    fix_buf_u32(&w->b, e->tid);
    fix_buf_u32(&w->b, 0);
    fix_buf_u32(&w->b, e->code);
    fix_buf_u32(&w->b, e->flags);
    fix_buf_u64(&w->b, 0); /* nested ExceptionRecord */
    fix_buf_u64(&w->b, e->address);
    fix_buf_u32(&w->b, e->param_count);
    fix_buf_u32(&w->b, 0);
    for (int i = 0; i < 15; i++)
        fix_buf_u64(&w->b, e->params[i]);
    fix_buf_zeros(&w->b, 8); /* ThreadContext */
    const uint64_t *regs = e->has_context ? e->regs : thread_regs(d, e->tid);
    uint32_t rva = 0, size = 0;
    if (regs)
        put_context(w, d->sys.cpu, regs, (struct fix_over){ 0 }, &rva, &size);
    patch32(w, start + 160, (uint32_t)over(e->ctx_size, size));
    patch32(w, start + 164, (uint32_t)over(e->ctx_rva, rva));
}

static void stream_misc(struct writer *w, const struct fix_md *d)
{
    static const uint32_t sizes[6] = { 24, 24, 44, 232, 832, 1364 };
    static const uint32_t flags[6] = { 3, 3, 7, 0xf7, 0x1f7, 0x3f7 };
    int lv = d->misc.level < 1 ? 1 : d->misc.level > 5 ? 5 : d->misc.level;
    uint32_t start = here(w);
    fix_buf_u32(&w->b, sizes[lv]);
    fix_buf_u32(&w->b, flags[lv]);
    fix_buf_u32(&w->b, d->misc.pid);
    fix_buf_u32(&w->b, d->misc.create_time);
    fix_buf_u32(&w->b, d->misc.user_time);
    fix_buf_u32(&w->b, d->misc.kernel_time);
    fix_buf_zeros(&w->b, sizes[lv] - 24);
    if (lv >= 2) { /* ProcessorMaxMhz, CurrentMhz, MhzLimit */
        patch32(w, start + 24, 3000);
        patch32(w, start + 28, 3000);
        patch32(w, start + 32, 3000);
    }
    if (lv >= 4 && d->misc.build_string) { /* BuildString[260] at 232 */
        struct fix_buf t = { 0 };
        size_t n = put_utf16(&t, d->misc.build_string, 259);
        if (t.p)
            memcpy(w->b.p + start + 232, t.p, n);
        free(t.p);
    }
}

static void stream_breakpad_info(struct writer *w, const struct fix_md *d)
{
    fix_buf_u32(&w->b, d->breakpad.validity);
    fix_buf_u32(&w->b, d->breakpad.dump_tid);
    fix_buf_u32(&w->b, d->breakpad.requesting_tid);
}

static void put_fixed_utf16(struct writer *w, const char *s)
{
    size_t n = put_utf16(&w->b, s ? s : "", 127);
    fix_buf_zeros(&w->b, 256 - n);
}

static void stream_assertion(struct writer *w, const struct fix_md *d)
{
    put_fixed_utf16(w, d->assertion.expression);
    put_fixed_utf16(w, d->assertion.function);
    put_fixed_utf16(w, d->assertion.file);
    fix_buf_u32(&w->b, d->assertion.line);
    fix_buf_u32(&w->b, d->assertion.type);
}

/* MinidumpSimpleStringDictionary; returns its location. */
static void put_dictionary(struct writer *w, const struct fix_kv *kv, size_t n, struct fix_over cnt,
                           uint32_t *rva, uint32_t *size)
{
    fix_buf_align(&w->b, 4);
    *rva = here(w);
    fix_buf_u32(&w->b, (uint32_t)over(cnt, n));
    fix_buf_zeros(&w->b, 8 * n);
    *size = 4 + 8 * (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        uint32_t k = put_utf8_string(w, kv[i].key, strlen(kv[i].key));
        uint32_t v = put_utf8_string(w, kv[i].value, strlen(kv[i].value));
        patch32(w, *rva + 4 + 8 * i, k);
        patch32(w, *rva + 8 + 8 * i, v);
    }
}

static void put_module_crashpad(struct writer *w, const struct fix_crashpad_module *m,
                                uint32_t *rva, uint32_t *size)
{
    fix_buf_align(&w->b, 4);
    uint32_t start = here(w);
    fix_buf_u32(&w->b, 1); /* version */
    fix_buf_zeros(&w->b, 24);
    *rva = start;
    *size = 28;
    if (m->list_count) { /* MinidumpRVAList of MinidumpUTF8String */
        fix_buf_align(&w->b, 4);
        uint32_t l = here(w);
        fix_buf_u32(&w->b, (uint32_t)m->list_count);
        fix_buf_zeros(&w->b, 4 * m->list_count);
        for (size_t i = 0; i < m->list_count; i++)
            patch32(w, l + 4 + 4 * i, put_utf8_string(w, m->list[i], strlen(m->list[i])));
        patch32(w, start + 4, 4 + 4 * (uint32_t)m->list_count);
        patch32(w, start + 8, l);
    }
    if (m->simple_count) {
        uint32_t r, s;
        put_dictionary(w, m->simple, m->simple_count, (struct fix_over){ 0 }, &r, &s);
        patch32(w, start + 12, s);
        patch32(w, start + 16, r);
    }
    if (m->obj_count) { /* MinidumpAnnotationList */
        fix_buf_align(&w->b, 4);
        uint32_t l = here(w);
        fix_buf_u32(&w->b, (uint32_t)m->obj_count);
        fix_buf_zeros(&w->b, 12 * m->obj_count);
        for (size_t i = 0; i < m->obj_count; i++) {
            const struct fix_annotation_obj *o = &m->objs[i];
            uint32_t name = put_utf8_string(w, o->name, strlen(o->name));
            fix_buf_align(&w->b, 4);
            uint32_t val = here(w); /* MinidumpByteArray */
            fix_buf_u32(&w->b, o->value_len);
            fix_buf_bytes(&w->b, o->value, o->value_len);
            patch32(w, l + 4 + 12 * i, name);
            fix_put_u16(w->b.p, w->b.len, l + 8 + 12 * i, o->type);
            patch32(w, l + 12 + 12 * i, val);
        }
        patch32(w, start + 20, 4 + 12 * (uint32_t)m->obj_count);
        patch32(w, start + 24, l);
    }
}

static void stream_crashpad(struct writer *w, const struct fix_md *d)
{
    const struct fix_crashpad *cp = &d->crashpad;
    uint32_t start = here(w);
    fix_buf_u32(&w->b, 1); /* version */
    fix_buf_bytes(&w->b, cp->report_id, 16);
    fix_buf_bytes(&w->b, cp->client_id, 16);
    fix_buf_zeros(&w->b, 16); /* simple_annotations, module_list */
    if (cp->simple_count || cp->simple_count_over.set) {
        uint32_t r, s;
        put_dictionary(w, cp->simple, cp->simple_count, cp->simple_count_over, &r, &s);
        patch32(w, start + 36, s);
        patch32(w, start + 40, r);
    }
    if (cp->module_count) { /* MinidumpModuleCrashpadInfoList of links */
        fix_buf_align(&w->b, 4);
        uint32_t l = here(w);
        fix_buf_u32(&w->b, (uint32_t)cp->module_count);
        fix_buf_zeros(&w->b, 12 * cp->module_count);
        for (size_t i = 0; i < cp->module_count; i++) {
            uint32_t r, s;
            put_module_crashpad(w, &cp->modules[i], &r, &s);
            patch32(w, l + 4 + 12 * i, cp->modules[i].module_index);
            patch32(w, l + 8 + 12 * i, s);
            patch32(w, l + 12 + 12 * i, r);
        }
        patch32(w, start + 44, 4 + 12 * (uint32_t)cp->module_count);
        patch32(w, start + 48, l);
    }
}

static void stream_meminfo(struct writer *w, const struct fix_md *d)
{
    fix_buf_u32(&w->b, 16); /* SizeOfHeader */
    fix_buf_u32(&w->b, 48); /* SizeOfEntry */
    fix_buf_u64(&w->b, over(d->meminfo_count_over, d->meminfo_count));
    for (size_t i = 0; i < d->meminfo_count; i++) {
        const struct fix_meminfo *m = &d->meminfo[i];
        fix_buf_u64(&w->b, m->base);
        fix_buf_u64(&w->b, m->alloc_base);
        fix_buf_u32(&w->b, m->alloc_protect);
        fix_buf_u32(&w->b, 0);
        fix_buf_u64(&w->b, m->size);
        fix_buf_u32(&w->b, m->state);
        fix_buf_u32(&w->b, m->protect);
        fix_buf_u32(&w->b, m->type);
        fix_buf_u32(&w->b, 0);
    }
}

static const struct fix_blob *linux_blob(const struct fix_md *d, uint32_t type)
{
    switch (type) {
    case FIX_MD_LINUX_CPU_INFO: return &d->linux_cpuinfo;
    case FIX_MD_LINUX_PROC_STATUS: return &d->linux_status;
    case FIX_MD_LINUX_LSB_RELEASE: return &d->linux_lsb_release;
    case FIX_MD_LINUX_CMD_LINE: return &d->linux_cmdline;
    case FIX_MD_LINUX_ENVIRON: return &d->linux_environ;
    case FIX_MD_LINUX_AUXV: return &d->linux_auxv;
    case FIX_MD_LINUX_MAPS: return &d->linux_maps;
    default: return NULL;
    }
}

/* Streams generated from a description, in the order Breakpad's writer uses. */
static const uint32_t std_order[] = {
    FIX_MD_THREAD_LIST,   FIX_MD_THREAD_NAME_LIST, FIX_MD_MODULE_LIST, FIX_MD_UNLOADED_MODULE_LIST,
    FIX_MD_MEMORY_LIST,   FIX_MD_MEMORY64_LIST,    FIX_MD_EXCEPTION,   FIX_MD_SYSTEM_INFO,
    FIX_MD_MISC_INFO,     FIX_MD_MEMORY_INFO_LIST, FIX_MD_BREAKPAD_INFO, FIX_MD_ASSERTION_INFO,
    FIX_MD_LINUX_CPU_INFO, FIX_MD_LINUX_PROC_STATUS, FIX_MD_LINUX_LSB_RELEASE,
    FIX_MD_LINUX_CMD_LINE, FIX_MD_LINUX_ENVIRON,   FIX_MD_LINUX_AUXV,  FIX_MD_LINUX_MAPS,
    FIX_MD_CRASHPAD_INFO,
};

static bool has_stream(const struct fix_md *d, uint32_t type)
{
    switch (type) {
    case FIX_MD_THREAD_LIST:
    case FIX_MD_MODULE_LIST: return true;
    case FIX_MD_MEMORY_LIST: return !d->memory64;
    case FIX_MD_MEMORY64_LIST: return d->memory64;
    case FIX_MD_THREAD_NAME_LIST: return d->thread_names;
    case FIX_MD_UNLOADED_MODULE_LIST: return d->unloaded_count || d->unloaded_count_over.set;
    case FIX_MD_EXCEPTION: return d->exc.present;
    case FIX_MD_SYSTEM_INFO: return !d->no_sysinfo;
    case FIX_MD_MISC_INFO: return d->misc.present;
    case FIX_MD_MEMORY_INFO_LIST: return d->meminfo_count || d->meminfo_count_over.set;
    case FIX_MD_BREAKPAD_INFO: return d->breakpad.present;
    case FIX_MD_ASSERTION_INFO: return d->assertion.present;
    case FIX_MD_CRASHPAD_INFO: return d->crashpad.present;
    default: {
        const struct fix_blob *bl = linux_blob(d, type);
        return bl && bl->p;
    }
    }
}

/* Emits stream `type` of description d; returns its rva and size. */
static void emit(struct writer *w, const struct fix_md *d, uint32_t type, uint32_t *rva,
                 uint32_t *size)
{
    if (type == FIX_MD_THREAD_LIST || type == FIX_MD_MEMORY_LIST || type == FIX_MD_MEMORY64_LIST)
        ensure_memory(w);
    fix_buf_align(&w->b, 8);
    *rva = here(w);
    size_t fixed; /* bytes of the stream itself, not what it points at */
    switch (type) {
    case FIX_MD_THREAD_LIST: fixed = 4 + 48 * d->thread_count; stream_thread_list(w, d); break;
    case FIX_MD_THREAD_NAME_LIST: {
        size_t n = 0;
        for (size_t i = 0; i < d->thread_count; i++)
            n += d->threads[i].name != NULL;
        fixed = 4 + 12 * n;
        stream_thread_names(w, d);
        break;
    }
    case FIX_MD_MODULE_LIST: fixed = 4 + 108 * d->module_count; stream_module_list(w, d); break;
    case FIX_MD_UNLOADED_MODULE_LIST:
        fixed = 12 + 24 * d->unloaded_count;
        stream_unloaded_list(w, d);
        break;
    case FIX_MD_MEMORY_LIST: fixed = 4 + 16 * memory_entries(w); stream_memory_list(w, d); break;
    case FIX_MD_MEMORY64_LIST:
        fixed = 16 + 16 * memory_entries(w);
        stream_memory64_list(w, d);
        break;
    case FIX_MD_EXCEPTION: fixed = 168; stream_exception(w, d); break;
    case FIX_MD_SYSTEM_INFO: fixed = 56; stream_system_info(w, d); break;
    case FIX_MD_MISC_INFO: stream_misc(w, d); fixed = here(w) - *rva; break;
    case FIX_MD_MEMORY_INFO_LIST: fixed = 16 + 48 * d->meminfo_count; stream_meminfo(w, d); break;
    case FIX_MD_BREAKPAD_INFO: fixed = 12; stream_breakpad_info(w, d); break;
    case FIX_MD_ASSERTION_INFO: fixed = 776; stream_assertion(w, d); break;
    case FIX_MD_CRASHPAD_INFO: fixed = 52; stream_crashpad(w, d); break;
    default: {
        const struct fix_blob *bl = linux_blob(d, type);
        fixed = bl ? bl->n : 0;
        if (bl)
            fix_buf_bytes(&w->b, bl->p, bl->n);
        break;
    }
    }
    *size = (uint32_t)fixed;
}

uint32_t fix_md_stream_rva(const struct fix_md_layout *l, uint32_t type)
{
    for (size_t i = 0; i < l->dir_count && i < FIX_LAYOUT_MAX * 2; i++)
        if (l->dir[i].type == type)
            return l->dir[i].rva;
    return 0;
}

struct entry {
    uint32_t type;
    const struct fix_stream *extra; /* NULL: generated from w->d */
};

enum cm_code fix_md_write(const struct fix_md *d, uint8_t **out, size_t *out_len,
                          struct fix_md_layout *layout, struct cm_err *err)
{
    *out = NULL;
    *out_len = 0;
    enum cm_code rc = CM_E_OK;
    struct fix_md_layout scratch;
    struct writer w = { .d = d, .l = layout ? layout : &scratch };
    memset(w.l, 0, sizeof *w.l);
    size_t max_entries = sizeof std_order / sizeof *std_order + d->extra_count;
    struct entry *ents = calloc(max_entries, sizeof *ents);
    w.stack_rva = calloc(d->thread_count + 1, sizeof *w.stack_rva);
    w.region_rva = calloc(d->region_count + 1, sizeof *w.region_rva);
    if (!ents || !w.stack_rva || !w.region_rva) {
        rc = cm_fail(err, CM_E_NOMEM, "fixture: out of memory");
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < d->extra_count; i++)
        if (d->extra[i].before)
            ents[n++] = (struct entry){ d->extra[i].type, &d->extra[i] };
    for (size_t i = 0; i < sizeof std_order / sizeof *std_order; i++)
        if (has_stream(d, std_order[i]))
            ents[n++] = (struct entry){ std_order[i], NULL };
    for (size_t i = 0; i < d->extra_count; i++)
        if (!d->extra[i].before)
            ents[n++] = (struct entry){ d->extra[i].type, &d->extra[i] };

    /* MINIDUMP_HEADER */
    fix_buf_u32(&w.b, MDMP_SIGNATURE);
    fix_buf_u32(&w.b, (uint32_t)over(d->version, MDMP_VERSION));
    fix_buf_u32(&w.b, (uint32_t)over(d->stream_count, n));
    fix_buf_u32(&w.b, (uint32_t)over(d->dir_rva, 32));
    fix_buf_u32(&w.b, 0); /* CheckSum */
    fix_buf_u32(&w.b, d->time_date_stamp);
    fix_buf_u64(&w.b, d->flags);
    fix_buf_zeros(&w.b, 12 * n); /* MINIDUMP_DIRECTORY, filled below */
    w.l->dir_rva = 32;
    w.l->dir_count = n;

    for (size_t i = 0; i < n; i++) {
        uint32_t rva = 0, size = 0;
        const struct fix_stream *x = ents[i].extra;
        if (!x) {
            emit(&w, d, ents[i].type, &rva, &size);
        } else if (x->from) {
            /* Another description's stream: its memory and threads are its own. */
            struct writer w2 = { .d = x->from, .b = w.b, .l = NULL };
            w2.stack_rva = calloc(x->from->thread_count + 1, sizeof *w2.stack_rva);
            w2.region_rva = calloc(x->from->region_count + 1, sizeof *w2.region_rva);
            if (w2.stack_rva && w2.region_rva)
                emit(&w2, x->from, x->type, &rva, &size);
            else
                w2.b.failed = true;
            free(w2.stack_rva);
            free(w2.region_rva);
            w.b = w2.b;
        } else {
            fix_buf_align(&w.b, 8);
            rva = here(&w);
            fix_buf_bytes(&w.b, x->data, x->size);
            size = (uint32_t)x->size;
        }
        if (x) {
            rva = (uint32_t)over(x->rva, rva);
            size = (uint32_t)over(x->dir_size, size);
        }
        fix_put_u32(w.b.p, w.b.len, 32 + 12 * i, ents[i].type);
        fix_put_u32(w.b.p, w.b.len, 36 + 12 * i, size);
        fix_put_u32(w.b.p, w.b.len, 40 + 12 * i, rva);
        if (i < FIX_LAYOUT_MAX * 2)
            w.l->dir[i] = (struct fix_dirent){ ents[i].type, size, rva };
    }
    if (w.b.failed) {
        rc = cm_fail(err, CM_E_NOMEM, "fixture: out of memory writing %zu streams", n);
        goto out;
    }
    *out = w.b.p;
    *out_len = w.b.len;
    w.b.p = NULL;
out:
    free(w.b.p);
    free(ents);
    free(w.stack_rva);
    free(w.region_rva);
    return rc;
}
