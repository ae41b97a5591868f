/* ana_model.c -- the crash model's shared machinery: limits, register tables, warnings, region
 * sanitizing, bounded memory reads and module lookup. */
#define _GNU_SOURCE /* qsort_r */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana_int.h"
#include "common/cm_alloc.h"
#include "common/cm_log.h"

void ana_limits_default(struct ana_limits *lim)
{
    *lim = (struct ana_limits){
        .max_dump_bytes = 100u << 20,
        .zstd_window_log_max = 24,
        .max_streams = 128,
        .max_threads = 4096,
        .max_modules = 2048,
        .max_regions = 4096,
        .max_frames = 1024,
        .max_string_bytes = 64u << 10,
        .max_annotations = 512,
    };
}

/* ---- registers ---- */

static const char *const amd64_regs[ANA_NREGS] = {
    "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
    "r12", "r13", "r14", "r15", "rip", "rflags",
};
static const char *const x86_regs[ANA_NREGS] = {
    "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip", "eflags",
};
static const char *const arm64_regs[ANA_NREGS] = {
    "x0",  "x1",  "x2",  "x3",  "x4",  "x5",  "x6",  "x7",  "x8",  "x9",  "x10", "x11",
    "x12", "x13", "x14", "x15", "x16", "x17", "x18", "x19", "x20", "x21", "x22", "x23",
    "x24", "x25", "x26", "x27", "x28", "fp",  "lr",  "sp",  "pc",  "cpsr",
};
static const char *const arm_regs[ANA_NREGS] = {
    "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "fp", "r12", "sp", "lr",
    "pc", "cpsr",
};

static const char *const *reg_table(enum ana_cpu cpu)
{
    switch (cpu) {
    case ANA_CPU_AMD64: return amd64_regs;
    case ANA_CPU_X86: return x86_regs;
    case ANA_CPU_ARM64: return arm64_regs;
    case ANA_CPU_ARM: return arm_regs;
    default: return NULL;
    }
}

const char *ana_reg_name(enum ana_cpu cpu, int i)
{
    const char *const *t = reg_table(cpu);
    return t && i >= 0 && i < ANA_NREGS ? t[i] : NULL;
}

int ana_reg_by_name(enum ana_cpu cpu, const char *name)
{
    const char *const *t = reg_table(cpu);
    if (!t || !name)
        return -1;
    if (*name == '$')
        name++;
    for (int i = 0; i < ANA_NREGS; i++)
        if (t[i] && strcmp(t[i], name) == 0)
            return i;
    if (cpu == ANA_CPU_ARM64) { /* aliases Breakpad .sym files use */
        if (strcmp(name, "x29") == 0)
            return ANA_ARM64_FP;
        if (strcmp(name, "x30") == 0)
            return ANA_ARM64_LR;
    }
    if (cpu == ANA_CPU_ARM && strcmp(name, "r11") == 0)
        return ANA_ARM_FP;
    if (cpu == ANA_CPU_ARM && strcmp(name, "r13") == 0)
        return ANA_ARM_SP;
    if (cpu == ANA_CPU_ARM && strcmp(name, "r14") == 0)
        return ANA_ARM_LR;
    if (cpu == ANA_CPU_ARM && strcmp(name, "r15") == 0)
        return ANA_ARM_PC;
    return -1;
}

int ana_reg_pc(enum ana_cpu cpu)
{
    switch (cpu) {
    case ANA_CPU_AMD64: return ANA_AMD64_RIP;
    case ANA_CPU_X86: return ANA_X86_EIP;
    case ANA_CPU_ARM64: return ANA_ARM64_PC;
    case ANA_CPU_ARM: return ANA_ARM_PC;
    default: return -1;
    }
}

int ana_reg_sp(enum ana_cpu cpu)
{
    switch (cpu) {
    case ANA_CPU_AMD64: return ANA_AMD64_RSP;
    case ANA_CPU_X86: return ANA_X86_ESP;
    case ANA_CPU_ARM64: return ANA_ARM64_SP;
    case ANA_CPU_ARM: return ANA_ARM_SP;
    default: return -1;
    }
}

int ana_reg_fp(enum ana_cpu cpu)
{
    switch (cpu) {
    case ANA_CPU_AMD64: return ANA_AMD64_RBP;
    case ANA_CPU_X86: return ANA_X86_EBP;
    case ANA_CPU_ARM64: return ANA_ARM64_FP;
    case ANA_CPU_ARM: return ANA_ARM_FP;
    default: return -1;
    }
}

unsigned ana_cpu_ptr_bytes(enum ana_cpu cpu)
{
    switch (cpu) {
    case ANA_CPU_X86:
    case ANA_CPU_ARM:
    case ANA_CPU_PPC:
    case ANA_CPU_MIPS:
        return 4;
    default:
        return 8;
    }
}

const char *ana_cpu_name(enum ana_cpu cpu)
{
    switch (cpu) {
    case ANA_CPU_X86: return "x86";
    case ANA_CPU_AMD64: return "amd64";
    case ANA_CPU_ARM: return "arm";
    case ANA_CPU_ARM64: return "arm64";
    case ANA_CPU_PPC: return "ppc";
    case ANA_CPU_PPC64: return "ppc64";
    case ANA_CPU_MIPS: return "mips";
    case ANA_CPU_MIPS64: return "mips64";
    case ANA_CPU_SPARC: return "sparc";
    case ANA_CPU_RISCV64: return "riscv64";
    default: return "unknown";
    }
}

const char *ana_trust_name(enum ana_trust t)
{
    switch (t) {
    case ANA_TRUST_CONTEXT: return "context";
    case ANA_TRUST_CFI: return "cfi";
    case ANA_TRUST_FP: return "frame_pointer";
    case ANA_TRUST_CFI_SCAN: return "cfi_scan";
    case ANA_TRUST_SCAN: return "scan";
    case ANA_TRUST_INLINE: return "inline";
    default: return "none";
    }
}

/* ---- arena helpers and warnings ---- */

char *ana__strndup(struct ana_crash *c, const char *s, size_t n)
{
    return cm_arena_strndup(&c->arena, s, n);
}

char *ana__printf(struct ana_crash *c, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    if ((size_t)n < sizeof tmp)
        return cm_arena_strdup(&c->arena, tmp);
    char *d = cm_arena_alloc(&c->arena, (size_t)n + 1);
    if (d) {
        va_start(ap, fmt);
        vsnprintf(d, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return d;
}

#define ANA_MAX_WARNINGS 256

void ana__warn(struct ana_crash *c, const char *fmt, ...)
{
    if (c->warning_count >= ANA_MAX_WARNINGS)
        return;
    char raw[512], clean[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    cm_log_escape(raw, sizeof raw, clean, sizeof clean);
    if (c->warning_count == ANA_MAX_WARNINGS - 1)
        snprintf(clean, sizeof clean, "more warnings dropped after %d", ANA_MAX_WARNINGS - 1);
    if (c->warning_count % 16 == 0) {
        const char **w = cm_arena_calloc(&c->arena, c->warning_count + 16, sizeof *w);
        if (!w)
            return;
        if (c->warning_count)
            memcpy(w, c->warnings, c->warning_count * sizeof *w);
        c->warnings = w;
    }
    char *d = cm_arena_strdup(&c->arena, clean);
    if (d)
        c->warnings[c->warning_count++] = d;
}

char *ana__utf16le_to_utf8(struct ana_crash *c, const uint8_t *p, size_t n)
{
    size_t units = n / 2;
    char *out = cm_arena_alloc(&c->arena, units * 3 + 1); /* each unit yields at most 3 bytes */
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < units; i++) {
        uint32_t u = (uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8;
        if (u == 0)
            break;
        if (u >= 0xD800 && u <= 0xDBFF && i + 1 < units) {
            uint32_t lo = (uint32_t)p[2 * i + 2] | (uint32_t)p[2 * i + 3] << 8;
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                uint32_t cp = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                out[o++] = (char)(0xF0 | cp >> 18);
                out[o++] = (char)(0x80 | (cp >> 12 & 0x3F));
                out[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
                out[o++] = (char)(0x80 | (cp & 0x3F));
                i++;
                continue; /* 4 bytes from 2 units: still within 3 per unit */
            }
        }
        if (u >= 0xD800 && u <= 0xDFFF)
            u = 0xFFFD;
        if (u < 0x80) {
            out[o++] = (char)u;
        } else if (u < 0x800) {
            out[o++] = (char)(0xC0 | u >> 6);
            out[o++] = (char)(0x80 | (u & 0x3F));
        } else {
            out[o++] = (char)(0xE0 | u >> 12);
            out[o++] = (char)(0x80 | (u >> 6 & 0x3F));
            out[o++] = (char)(0x80 | (u & 0x3F));
        }
    }
    out[o] = 0;
    return out;
}

/* ---- finishing: regions, mappings, module index ---- */

static int cmp_region(const void *a, const void *b)
{
    const struct ana_region *x = a, *y = b;
    if (x->base != y->base)
        return x->base < y->base ? -1 : 1;
    return x->size < y->size ? 1 : x->size > y->size ? -1 : 0; /* larger first */
}

static int cmp_mapping(const void *a, const void *b)
{
    const struct ana_mapping *x = a, *y = b;
    return x->base < y->base ? -1 : x->base > y->base;
}

static int cmp_module_index(const void *a, const void *b, void *arg)
{
    const struct ana_crash *c = arg;
    const struct ana_module *x = &c->modules[*(const uint32_t *)a];
    const struct ana_module *y = &c->modules[*(const uint32_t *)b];
    return x->base < y->base ? -1 : x->base > y->base;
}

enum cm_code ana__finish(struct ana_crash *c, struct cm_err *err)
{
    /* The crashing thread's registers at the crash are the exception record's context (the
     * thread list holds them inside the handler that wrote the dump); every consumer walks from
     * the thread's context, so put the right one there, as Breakpad's processor does. */
    int ct = c->crash_info.crashing_thread;
    for (size_t i = 0; i < c->thread_count; i++)
        c->threads[i].list_ctx = c->threads[i].ctx;
    if (c->crash_info.has_exception_ctx && ct >= 0 && (size_t)ct < c->thread_count) {
        c->threads[ct].ctx = c->crash_info.exception_ctx;
        c->threads[ct].has_ctx = true;
        c->threads[ct].bad_context = false;
    }

    /* Regions: drop empty and wrapping ones, sort, then keep the first of overlapping ones.
     * Identical duplicates (a thread stack also listed in the MemoryList) merge silently. */
    size_t kept = 0;
    for (size_t i = 0; i < c->region_count; i++) {
        struct ana_region r = c->regions[i];
        if (r.size == 0)
            continue;
        if (r.base + r.size < r.base) {
            ana__warn(c, "memory region at 0x%llx of 0x%llx bytes wraps the address space; dropped",
                      (unsigned long long)r.base, (unsigned long long)r.size);
            continue;
        }
        c->regions[kept++] = r;
    }
    c->region_count = kept;
    if (kept > 1)
        qsort(c->regions, kept, sizeof *c->regions, cmp_region);
    kept = 0;
    for (size_t i = 0; i < c->region_count; i++) {
        struct ana_region r = c->regions[i];
        if (kept) {
            struct ana_region *prev = &c->regions[kept - 1];
            uint64_t prev_end = prev->base + prev->size;
            if (r.base < prev_end) {
                uint64_t end = r.base + r.size;
                bool same = r.base == prev->base && r.size == prev->size;
                if (end <= prev_end) {
                    if (!same)
                        ana__warn(c, "memory region at 0x%llx (0x%llx bytes) overlaps the "
                                     "region at 0x%llx and lies inside it; dropped",
                                  (unsigned long long)r.base, (unsigned long long)r.size,
                                  (unsigned long long)prev->base);
                    continue;
                }
                /* Keep the part past the previous region: its bytes are known nowhere else. */
                ana__warn(c, "memory region at 0x%llx (0x%llx bytes) overlaps the region at "
                             "0x%llx; clipped to start at 0x%llx",
                          (unsigned long long)r.base, (unsigned long long)r.size,
                          (unsigned long long)prev->base, (unsigned long long)prev_end);
                r.data += prev_end - r.base;
                r.size = end - prev_end;
                r.base = prev_end;
            }
        }
        c->regions[kept++] = r;
    }
    c->region_count = kept;

    if (c->mapping_count > 1)
        qsort(c->mappings, c->mapping_count, sizeof *c->mappings, cmp_mapping);

    cm_free(c->module_order);
    c->module_order = NULL;
    if (c->module_count) {
        c->module_order = cm_calloc(c->module_count, sizeof *c->module_order);
        if (!c->module_order)
            return cm_fail(err, CM_E_NOMEM, "cannot index %zu modules", c->module_count);
        for (size_t i = 0; i < c->module_count; i++)
            c->module_order[i] = (uint32_t)i;
        qsort_r(c->module_order, c->module_count, sizeof *c->module_order, cmp_module_index, c);
    }
    return CM_E_OK;
}

/* ---- memory ---- */

const struct ana_region *ana_mem_region(const struct ana_crash *c, uint64_t addr)
{
    size_t lo = 0, hi = c->region_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct ana_region *r = &c->regions[mid];
        if (addr < r->base)
            hi = mid;
        else if (addr - r->base >= r->size)
            lo = mid + 1;
        else
            return r;
    }
    return NULL;
}

bool ana_mem_read(const struct ana_crash *c, uint64_t addr, void *out, size_t n)
{
    const struct ana_region *r = ana_mem_region(c, addr);
    if (!r || n > r->size - (addr - r->base))
        return false;
    memcpy(out, r->data + (addr - r->base), n);
    return true;
}

bool ana_mem_u32(const struct ana_crash *c, uint64_t addr, uint32_t *out)
{
    uint8_t b[4];
    *out = 0;
    if (!ana_mem_read(c, addr, b, 4))
        return false;
    *out = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return true;
}

bool ana_mem_u64(const struct ana_crash *c, uint64_t addr, uint64_t *out)
{
    uint8_t b[8];
    *out = 0;
    if (!ana_mem_read(c, addr, b, 8))
        return false;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    *out = v;
    return true;
}

bool ana_mem_ptr(const struct ana_crash *c, uint64_t addr, uint64_t *out)
{
    if (ana_cpu_ptr_bytes(c->system_info.cpu) == 4) {
        uint32_t v;
        bool ok = ana_mem_u32(c, addr, &v);
        *out = v;
        return ok;
    }
    return ana_mem_u64(c, addr, out);
}

/* ---- modules and mappings ---- */

int ana_module_at(const struct ana_crash *c, uint64_t addr)
{
    if (!c->module_order)
        return -1;
    /* Last module whose base <= addr; modules may overlap in hostile dumps, so check a few
     * predecessors too. */
    size_t lo = 0, hi = c->module_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->modules[c->module_order[mid]].base <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = lo, tries = 0; k > 0 && tries < 8; k--, tries++) {
        const struct ana_module *m = &c->modules[c->module_order[k - 1]];
        if (addr - m->base < m->size)
            return (int)c->module_order[k - 1];
    }
    return -1;
}

const char *ana_module_basename(const struct ana_module *m)
{
    const char *p = m->path ? m->path : "";
    const char *slash = strrchr(p, '/');
    const char *bslash = strrchr(p, '\\');
    if (bslash && (!slash || bslash > slash))
        slash = bslash;
    return slash ? slash + 1 : p;
}

const struct ana_mapping *ana_mapping_at(const struct ana_crash *c, uint64_t addr)
{
    size_t lo = 0, hi = c->mapping_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct ana_mapping *m = &c->mappings[mid];
        if (addr < m->base)
            hi = mid;
        else if (addr - m->base >= m->size)
            lo = mid + 1;
        else
            return m;
    }
    return NULL;
}

void ana_crash_free(struct ana_crash *c)
{
    if (!c)
        return;
    cm_free(c->module_order);
    cm_free(c->bytes);
    cm_arena_free(&c->arena);
    cm_free(c);
}
