/* ana_mdmp_context.c -- CPU context records of MDMP threads and exceptions into struct
 * ana_context (DWARF register numbering, see ana.h). Each layout is a table of (offset, width,
 * register, ContextFlags group) rows, so a register counts as known only when the flags say its
 * group was saved.
 *
 * Formats: winnt.h CONTEXT for x86 (716 bytes, ContextFlags at 0) and amd64 (1232 bytes,
 * ContextFlags at 48; XSAVE contexts are longer and start the same way); Breakpad
 * minidump_cpu_arm.h MDRawContextARM (368 bytes), minidump_cpu_arm64.h MDRawContextARM64 (912
 * bytes, the Windows ARM64 CONTEXT layout) and MDRawContextARM64_Old (796 bytes, 64-bit
 * context_flags, written by Breakpad clients before 2018). */
#include "analyzer/ana_int.h"

/* ContextFlags: the cpu bits, and the groups of registers they say were saved. */
#define CTX_X86 0x00010000u
#define CTX_AMD64 0x00100000u
#define CTX_ARM 0x40000000u
#define CTX_ARM_OLD 0x00000040u
#define CTX_ARM64 0x00400000u
#define CTX_ARM64_OLD 0x80000000u
#define CTX_CPU_MASK 0xFFFFFF00u
#define G_CONTROL 0x1u /* CONTEXT_CONTROL: pc, sp, flags (and ebp on x86, fp/lr on arm64) */
#define G_INTEGER 0x2u /* CONTEXT_INTEGER: the general registers */

struct reg_row {
    uint16_t off;   /* byte offset in the record */
    uint8_t width;  /* 2, 4 or 8 bytes */
    uint8_t reg;    /* DWARF register number (ana.h) */
    uint8_t group;  /* G_CONTROL or G_INTEGER */
};

struct layout {
    enum ana_cpu cpu;
    const char *name;
    uint32_t size;        /* the record's size; longer records (XSAVE) are accepted */
    uint16_t flags_off;   /* offset of ContextFlags */
    uint32_t cpu_bit;     /* its cpu bits */
    const struct reg_row *rows;
    size_t nrows;
};

static const struct reg_row x86_rows[] = {
    { 156, 4, ANA_X86_EDI, G_INTEGER }, { 160, 4, ANA_X86_ESI, G_INTEGER },
    { 164, 4, ANA_X86_EBX, G_INTEGER }, { 168, 4, ANA_X86_EDX, G_INTEGER },
    { 172, 4, ANA_X86_ECX, G_INTEGER }, { 176, 4, ANA_X86_EAX, G_INTEGER },
    { 180, 4, ANA_X86_EBP, G_CONTROL }, { 184, 4, ANA_X86_EIP, G_CONTROL },
    { 192, 4, ANA_X86_EFLAGS, G_CONTROL }, { 196, 4, ANA_X86_ESP, G_CONTROL },
};

static const struct reg_row amd64_rows[] = {
    { 68, 4, ANA_AMD64_RFLAGS, G_CONTROL }, { 120, 8, ANA_AMD64_RAX, G_INTEGER },
    { 128, 8, ANA_AMD64_RCX, G_INTEGER },   { 136, 8, ANA_AMD64_RDX, G_INTEGER },
    { 144, 8, ANA_AMD64_RBX, G_INTEGER },   { 152, 8, ANA_AMD64_RSP, G_CONTROL },
    { 160, 8, ANA_AMD64_RBP, G_INTEGER },   { 168, 8, ANA_AMD64_RSI, G_INTEGER },
    { 176, 8, ANA_AMD64_RDI, G_INTEGER },   { 184, 8, ANA_AMD64_R8, G_INTEGER },
    { 192, 8, ANA_AMD64_R9, G_INTEGER },    { 200, 8, ANA_AMD64_R10, G_INTEGER },
    { 208, 8, ANA_AMD64_R11, G_INTEGER },   { 216, 8, ANA_AMD64_R12, G_INTEGER },
    { 224, 8, ANA_AMD64_R13, G_INTEGER },   { 232, 8, ANA_AMD64_R14, G_INTEGER },
    { 240, 8, ANA_AMD64_R15, G_INTEGER },   { 248, 8, ANA_AMD64_RIP, G_CONTROL },
};

/* MDRawContextARM: context_flags, iregs[16] (r0..r15), cpsr; all under its INTEGER bit. */
#define ARM_ROW(i) { (uint16_t)(4 + 4 * (i)), 4, (uint8_t)(i), G_INTEGER }
static const struct reg_row arm_rows[] = {
    ARM_ROW(0),  ARM_ROW(1),  ARM_ROW(2),  ARM_ROW(3),  ARM_ROW(4),  ARM_ROW(5),
    ARM_ROW(6),  ARM_ROW(7),  ARM_ROW(8),  ARM_ROW(9),  ARM_ROW(10), ARM_ROW(11),
    ARM_ROW(12), ARM_ROW(13), ARM_ROW(14), ARM_ROW(15), { 68, 4, ANA_ARM_CPSR, G_INTEGER },
};

/* MDRawContextARM64: context_flags u32, cpsr u32, iregs[33] = x0..x28, fp, lr, sp, pc. */
#define A64_ROW(i, g) { (uint16_t)(8 + 8 * (i)), 8, (uint8_t)(i), g }
#define A64_INT(i) A64_ROW(i, G_INTEGER)
static const struct reg_row arm64_rows[] = {
    A64_INT(0),  A64_INT(1),  A64_INT(2),  A64_INT(3),  A64_INT(4),  A64_INT(5),  A64_INT(6),
    A64_INT(7),  A64_INT(8),  A64_INT(9),  A64_INT(10), A64_INT(11), A64_INT(12), A64_INT(13),
    A64_INT(14), A64_INT(15), A64_INT(16), A64_INT(17), A64_INT(18), A64_INT(19), A64_INT(20),
    A64_INT(21), A64_INT(22), A64_INT(23), A64_INT(24), A64_INT(25), A64_INT(26), A64_INT(27),
    A64_INT(28), A64_ROW(29, G_CONTROL), A64_ROW(30, G_CONTROL), A64_ROW(31, G_CONTROL),
    A64_ROW(32, G_CONTROL), { 4, 4, ANA_ARM64_CPSR, G_CONTROL },
};

/* MDRawContextARM64_Old: context_flags u64, iregs[33] at 8, cpsr at 272; one INTEGER bit. */
static const struct reg_row arm64_old_rows[] = {
    A64_INT(0),  A64_INT(1),  A64_INT(2),  A64_INT(3),  A64_INT(4),  A64_INT(5),  A64_INT(6),
    A64_INT(7),  A64_INT(8),  A64_INT(9),  A64_INT(10), A64_INT(11), A64_INT(12), A64_INT(13),
    A64_INT(14), A64_INT(15), A64_INT(16), A64_INT(17), A64_INT(18), A64_INT(19), A64_INT(20),
    A64_INT(21), A64_INT(22), A64_INT(23), A64_INT(24), A64_INT(25), A64_INT(26), A64_INT(27),
    A64_INT(28), A64_INT(29), A64_INT(30), A64_INT(31), A64_INT(32),
    { 272, 4, ANA_ARM64_CPSR, G_INTEGER },
};

#define ROWS(r) r, sizeof r / sizeof *r
static const struct layout layouts[] = {
    { ANA_CPU_X86, "x86 CONTEXT", 716, 0, CTX_X86, ROWS(x86_rows) },
    { ANA_CPU_AMD64, "amd64 CONTEXT", 1232, 48, CTX_AMD64, ROWS(amd64_rows) },
    { ANA_CPU_ARM, "MDRawContextARM", 368, 0, CTX_ARM, ROWS(arm_rows) },
    { ANA_CPU_ARM64, "MDRawContextARM64", 912, 0, CTX_ARM64, ROWS(arm64_rows) },
    { ANA_CPU_ARM64, "MDRawContextARM64_Old", 796, 0, CTX_ARM64_OLD, ROWS(arm64_old_rows) },
};
#define NLAYOUTS (sizeof layouts / sizeof *layouts)

static uint32_t flags_at(const struct cm_cur *cur, uint16_t off)
{
    uint32_t v;
    cm_cur_peek_u32le(cur, off, &v);
    return v;
}

/* The cpu bits of the record's ContextFlags as this layout places them. */
static bool cpu_bits_match(const struct layout *l, const struct cm_cur *cur)
{
    uint32_t f = flags_at(cur, l->flags_off);
    if (l->cpu_bit == CTX_ARM)
        return (f & CTX_CPU_MASK) == CTX_ARM || (f & ~0x3Fu) == CTX_ARM_OLD;
    if (l->cpu_bit == CTX_ARM64_OLD) { /* u64 flags: the high word is zero */
        uint32_t hi = flags_at(cur, 4);
        return (f & CTX_CPU_MASK) == CTX_ARM64_OLD && hi == 0;
    }
    return (f & CTX_CPU_MASK) == l->cpu_bit;
}

/* Picks the layout: for a known cpu the one whose flags match (arm64 has two), else a guess from
 * the flags of every layout the record is long enough for. */
static const struct layout *pick(enum ana_cpu cpu, const struct cm_cur *cur, const char **why)
{
    const struct layout *first = NULL;
    for (size_t i = 0; i < NLAYOUTS; i++) {
        const struct layout *l = &layouts[i];
        if (cpu != ANA_CPU_UNKNOWN && l->cpu != cpu)
            continue;
        if (!first)
            first = l;
        if (cur->len >= l->size && cpu_bits_match(l, cur))
            return l;
    }
    if (!first) {
        *why = cpu == ANA_CPU_UNKNOWN ? "its size and flags match no known cpu context"
                                      : "contexts of this cpu are not supported";
        return NULL;
    }
    if (cur->len < first->size) {
        *why = "the record is shorter than the cpu's context structure";
        return NULL;
    }
    /* Breakpad accepts a ContextFlags with no cpu bits and takes the cpu from SystemInfo. */
    if (cpu != ANA_CPU_UNKNOWN && (flags_at(cur, first->flags_off) & CTX_CPU_MASK) == 0)
        return first;
    *why = "its ContextFlags name another cpu";
    return NULL;
}

bool ana__mdmp_context(enum ana_cpu cpu, struct cm_cur cur, struct ana_context *out,
                       const char **why)
{
    *out = (struct ana_context){ .cpu = cpu };
    const struct layout *l = pick(cpu, &cur, why);
    if (!l)
        return false;
    uint32_t groups = flags_at(&cur, l->flags_off) & 0xFFu; /* ContextFlags' group bits */
    if (l->cpu_bit == CTX_ARM && (flags_at(&cur, 0) & ~0x3Fu) == CTX_ARM_OLD)
        groups = G_INTEGER; /* the old ARM value carries no group bits */
    out->cpu = l->cpu;
    for (size_t i = 0; i < l->nrows; i++) {
        const struct reg_row *r = &l->rows[i];
        if (!(groups & r->group))
            continue;
        struct cm_cur at;
        uint64_t v = 0;
        cm_cur_window(&cur, r->off, r->width, &at);
        if (r->width == 8)
            cm_cur_u64le(&at, &v);
        else {
            uint32_t v32;
            cm_cur_u32le(&at, &v32);
            v = v32;
        }
        if (!at.failed)
            ana_ctx_set(out, r->reg, v);
    }
    if (!out->valid) {
        *why = "its ContextFlags name no saved registers";
        return false;
    }
    return true;
}
