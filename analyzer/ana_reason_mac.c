/* ana_reason_mac.c -- macOS and iOS crash reasons as Breakpad's minidump_stackwalk names them:
 * "EXC_TYPE / CODE", where ExceptionCode holds the Mach exception type and ExceptionFlags its
 * first code (a kern_return_t for EXC_BAD_ACCESS, a cpu-specific trap code otherwise), plus
 * Crashpad's own codes ("Simulated Exception", "Uncaught NSException"). A code without a name
 * is printed as 0x%08x; an unknown type as "0x%08x / 0x%08x". Breakpad has no case for
 * EXC_CRASH, EXC_RESOURCE's neighbours and EXC_CORPSE_NOTIFY; we name them the same way.
 *
 * Values: <mach/exception_types.h>, <mach/kern_return.h>, <mach/i386/exception.h>,
 * <mach/arm/exception.h>, <mach/ppc/exception.h>; Breakpad minidump_exception_mac.h. */
#include "analyzer/ana_int.h"

#define CP_SIMULATED 0x43507378u    /* 'CPsx': Crashpad's SimulateCrash */
#define CP_NS_EXCEPTION 0x43506E78u /* 'CPnx': Crashpad's uncaught NSException */

struct code_name {
    uint32_t code;
    const char *name;
};
#define N(t) (sizeof t / sizeof *t)

static const struct code_name kern[] = {
    { 1, "KERN_INVALID_ADDRESS" }, { 2, "KERN_PROTECTION_FAILURE" }, { 8, "KERN_NO_ACCESS" },
    { 9, "KERN_MEMORY_FAILURE" },  { 10, "KERN_MEMORY_ERROR" },     { 50, "KERN_CODESIGN_ERROR" },
};
static const struct code_name arm_access[] = { { 0x101, "EXC_ARM_DA_ALIGN" },
                                               { 0x102, "EXC_ARM_DA_DEBUG" } };
static const struct code_name ppc_access[] = { { 0x101, "EXC_PPC_VM_PROT_READ" },
                                               { 0x102, "EXC_PPC_BADSPACE" },
                                               { 0x103, "EXC_PPC_UNALIGNED" } };
static const struct code_name x86_access[] = { { 13, "EXC_I386_GPFLT" } };
static const struct code_name arm_instruction[] = { { 1, "EXC_ARM_UNDEFINED" } };
static const struct code_name ppc_instruction[] = {
    { 1, "EXC_PPC_INVALID_SYSCALL" }, { 2, "EXC_PPC_UNIPL_INST" }, { 3, "EXC_PPC_PRIVINST" },
    { 4, "EXC_PPC_PRIVREG" },         { 5, "EXC_PPC_TRACE" },      { 6, "EXC_PPC_PERFMON" },
};
static const struct code_name x86_instruction[] = {
    { 1, "EXC_I386_INVOP" },   { 10, "EXC_I386_INVTSSFLT" }, { 11, "EXC_I386_SEGNPFLT" },
    { 12, "EXC_I386_STKFLT" }, { 13, "EXC_I386_GPFLT" },     { 17, "EXC_I386_ALIGNFLT" },
};
static const struct code_name ppc_arithmetic[] = {
    { 1, "EXC_PPC_OVERFLOW" },      { 2, "EXC_PPC_ZERO_DIVIDE" },
    { 3, "EXC_FLT_INEXACT" },       { 4, "EXC_PPC_FLT_ZERO_DIVIDE" },
    { 5, "EXC_PPC_FLT_UNDERFLOW" }, { 6, "EXC_PPC_FLT_OVERFLOW" },
    { 7, "EXC_PPC_FLT_NOT_A_NUMBER" }, { 8, "EXC_PPC_NOEMULATION" },
    { 9, "EXC_PPC_ALTIVECASSIST" },
};
static const struct code_name x86_arithmetic[] = {
    { 1, "EXC_I386_DIV" },    { 2, "EXC_I386_INTO" },  { 3, "EXC_I386_NOEXT" },
    { 4, "EXC_I386_EXTOVR" }, { 5, "EXC_I386_EXTERR" }, { 6, "EXC_I386_EMERR" },
    { 7, "EXC_I386_BOUND" },  { 8, "EXC_I386_SSEEXTERR" },
};
static const struct code_name software[] = {
    { 0x00010002u, "SIGABRT" },       { 0xDEADC0DEu, "UNCAUGHT_NS_EXCEPTION" },
    { 0x00000001u, "EXC_PPC_TRAP" },  { 0x00010100u, "EXC_PPC_MIGRATE" },
};
static const struct code_name arm_breakpoint[] = { { 0x101, "EXC_ARM_DA_ALIGN" },
                                                   { 0x102, "EXC_ARM_DA_DEBUG" },
                                                   { 1, "EXC_ARM_BREAKPOINT" } };
static const struct code_name ppc_breakpoint[] = { { 1, "EXC_PPC_BREAKPOINT" } };
static const struct code_name x86_breakpoint[] = { { 1, "EXC_I386_SGL" }, { 2, "EXC_I386_BPT" } };

/* Mach exception types without cpu-specific codes (the code is printed in hex). */
static const struct code_name plain_types[] = {
    { 4, "EXC_EMULATION" },      { 7, "EXC_SYSCALL" }, { 8, "EXC_MACH_SYSCALL" },
    { 9, "EXC_RPC_ALERT" },      { 10, "EXC_CRASH" },  { 11, "EXC_RESOURCE" },
    { 12, "EXC_GUARD" },         { 13, "EXC_CORPSE_NOTIFY" },
};

static const char *lookup(const struct code_name *t, size_t n, uint32_t code)
{
    for (size_t i = 0; i < n; i++)
        if (t && t[i].code == code)
            return t[i].name;
    return NULL;
}

enum family { F_OTHER, F_ARM, F_PPC, F_X86 };

static enum family family_of(uint16_t arch)
{
    switch (arch) {
    case ANA_MD_ARCH_ARM:
    case ANA_MD_ARCH_ARM64:
    case ANA_MD_ARCH_ARM64_OLD:
        return F_ARM;
    case ANA_MD_ARCH_PPC: return F_PPC;
    case ANA_MD_ARCH_X86:
    case ANA_MD_ARCH_AMD64:
        return F_X86;
    default: return F_OTHER;
    }
}

/* The code's name for exception type `type` on this cpu family, NULL if none. */
static const char *code_name(uint32_t type, enum family f, uint32_t code)
{
    const char *n;
    switch (type) {
    case 1: /* EXC_BAD_ACCESS: a kern_return_t first, then the cpu's own codes */
        if ((n = lookup(kern, N(kern), code)))
            return n;
        return f == F_ARM   ? lookup(arm_access, N(arm_access), code)
               : f == F_PPC ? lookup(ppc_access, N(ppc_access), code)
               : f == F_X86 ? lookup(x86_access, N(x86_access), code)
                            : NULL;
    case 2: /* EXC_BAD_INSTRUCTION */
        return f == F_ARM   ? lookup(arm_instruction, N(arm_instruction), code)
               : f == F_PPC ? lookup(ppc_instruction, N(ppc_instruction), code)
               : f == F_X86 ? lookup(x86_instruction, N(x86_instruction), code)
                            : NULL;
    case 3: /* EXC_ARITHMETIC */
        return f == F_PPC   ? lookup(ppc_arithmetic, N(ppc_arithmetic), code)
               : f == F_X86 ? lookup(x86_arithmetic, N(x86_arithmetic), code)
                            : NULL;
    case 5: /* EXC_SOFTWARE */
        return lookup(software, N(software), code);
    case 6: /* EXC_BREAKPOINT */
        return f == F_ARM   ? lookup(arm_breakpoint, N(arm_breakpoint), code)
               : f == F_PPC ? lookup(ppc_breakpoint, N(ppc_breakpoint), code)
               : f == F_X86 ? lookup(x86_breakpoint, N(x86_breakpoint), code)
                            : NULL;
    default: return NULL;
    }
}

static const char *const typed[] = { NULL, "EXC_BAD_ACCESS", "EXC_BAD_INSTRUCTION",
                                     "EXC_ARITHMETIC", NULL, "EXC_SOFTWARE", "EXC_BREAKPOINT" };

const char *ana__reason_mac(struct ana_crash *c, uint32_t code, uint32_t flags, uint16_t arch)
{
    if (code == CP_SIMULATED)
        return "Simulated Exception";
    if (code == CP_NS_EXCEPTION)
        return "Uncaught NSException";
    const char *type = code < N(typed) ? typed[code] : NULL;
    if (!type)
        type = lookup(plain_types, N(plain_types), code);
    if (!type)
        return ana__printf(c, "0x%08x / 0x%08x", (unsigned)code, (unsigned)flags);
    const char *name = code_name(code, family_of(arch), flags);
    if (name)
        return ana__printf(c, "%s / %s", type, name);
    return ana__printf(c, "%s / 0x%08x", type, (unsigned)flags);
}
