/* ana_reason_win.c -- Windows exception codes named as Breakpad's minidump_stackwalk names them
 * (MinidumpProcessor::GetCrashReason):
 *   - the classic exception codes get their EXCEPTION_* name, an access violation or in-page
 *     error split by ExceptionInformation[0] into _READ / _WRITE / _EXEC, an in-page error
 *     followed by " / " and the NTSTATUS of ExceptionInformation[2];
 *   - STATUS_STACK_BUFFER_OVERRUN (0xC0000409, raised by __fastfail) gets the FAST_FAIL_* name of
 *     ExceptionInformation[0], or EXCEPTION_STACK_BUFFER_OVERRUN for codes without one;
 *   - Breakpad's and Chrome's own codes ("Out of Memory", "Unhandled C++ Exception",
 *     "Simulated Exception");
 *   - every other error-severity NTSTATUS by its name (ana_ntstatus.inc), and anything else as
 *     "0x%08x / 0x%08x" (code / flags).
 * Values: ntstatus.h / winnt.h (EXCEPTION_*, FAST_FAIL_*), [MS-ERREF] 2.3.1. */
#include <stdlib.h>

#include "analyzer/ana_int.h"

#define WIN_ACCESS_VIOLATION 0xC0000005u
#define WIN_IN_PAGE_ERROR 0xC0000006u
#define WIN_STACK_BUFFER_OVERRUN 0xC0000409u

static const struct code_name {
    uint32_t code;
    const char *name;
} ntstatus[] = {
#include "analyzer/ana_ntstatus.inc"
};

/* Codes Breakpad names itself, before the NTSTATUS table. */
static const struct code_name exceptions[] = {
    { 0x40010005u, "DBG_CONTROL_C" },
    { 0x80000001u, "EXCEPTION_GUARD_PAGE" },
    { 0x80000002u, "EXCEPTION_DATATYPE_MISALIGNMENT" },
    { 0x80000003u, "EXCEPTION_BREAKPOINT" },
    { 0x80000004u, "EXCEPTION_SINGLE_STEP" },
    { 0xC0000008u, "EXCEPTION_INVALID_HANDLE" },
    { 0xC000001Du, "EXCEPTION_ILLEGAL_INSTRUCTION" },
    { 0xC0000025u, "EXCEPTION_NONCONTINUABLE_EXCEPTION" },
    { 0xC0000026u, "EXCEPTION_INVALID_DISPOSITION" },
    { 0xC000008Cu, "EXCEPTION_BOUNDS_EXCEEDED" },
    { 0xC000008Du, "EXCEPTION_FLT_DENORMAL_OPERAND" },
    { 0xC000008Eu, "EXCEPTION_FLT_DIVIDE_BY_ZERO" },
    { 0xC000008Fu, "EXCEPTION_FLT_INEXACT_RESULT" },
    { 0xC0000090u, "EXCEPTION_FLT_INVALID_OPERATION" },
    { 0xC0000091u, "EXCEPTION_FLT_OVERFLOW" },
    { 0xC0000092u, "EXCEPTION_FLT_STACK_CHECK" },
    { 0xC0000093u, "EXCEPTION_FLT_UNDERFLOW" },
    { 0xC0000094u, "EXCEPTION_INT_DIVIDE_BY_ZERO" },
    { 0xC0000095u, "EXCEPTION_INT_OVERFLOW" },
    { 0xC0000096u, "EXCEPTION_PRIV_INSTRUCTION" },
    { 0xC00000FDu, "EXCEPTION_STACK_OVERFLOW" },
    { 0xC00000FFu, "EXCEPTION_BAD_FUNCTION_TABLE" },
    { 0xC0000194u, "EXCEPTION_POSSIBLE_DEADLOCK" },
    { 0xC0000374u, "EXCEPTION_HEAP_CORRUPTION" },
    { 0xE0000008u, "Out of Memory" },           /* Chrome's out-of-memory code */
    { 0xE06D7363u, "Unhandled C++ Exception" }, /* MSVC's throw ("\xE0msc") */
    { 0x0517A7EDu, "Simulated Exception" },     /* Crashpad's DumpWithoutCrashing */
};

/* winnt.h FAST_FAIL_* codes 1..70 (0, the legacy /GS code, is left to the generic name, as
 * Breakpad does); NULL marks unassigned codes. */
static const char *const fast_fail[] = {
    NULL, "VTGUARD_CHECK_FAILURE", "STACK_COOKIE_CHECK_FAILURE", "CORRUPT_LIST_ENTRY",
    "INCORRECT_STACK", "INVALID_ARG", "GS_COOKIE_INIT", "FATAL_APP_EXIT", "RANGE_CHECK_FAILURE",
    "UNSAFE_REGISTRY_ACCESS", "GUARD_ICALL_CHECK_FAILURE", "GUARD_WRITE_CHECK_FAILURE",
    "INVALID_FIBER_SWITCH", "INVALID_SET_OF_CONTEXT", "INVALID_REFERENCE_COUNT", NULL, NULL, NULL,
    "INVALID_JUMP_BUFFER", "MRDATA_MODIFIED", "CERTIFICATION_FAILURE", "INVALID_EXCEPTION_CHAIN",
    "CRYPTO_LIBRARY", "INVALID_CALL_IN_DLL_CALLOUT", "INVALID_IMAGE_BASE",
    "DLOAD_PROTECTION_FAILURE", "UNSAFE_EXTENSION_CALL", "DEPRECATED_SERVICE_INVOKED",
    "INVALID_BUFFER_ACCESS", "INVALID_BALANCED_TREE", "INVALID_NEXT_THREAD",
    "GUARD_ICALL_CHECK_SUPPRESSED", "APCS_DISABLED", "INVALID_IDLE_STATE",
    "MRDATA_PROTECTION_FAILURE", "UNEXPECTED_HEAP_EXCEPTION", "INVALID_LOCK_STATE",
    "GUARD_JUMPTABLE", "INVALID_LONGJUMP_TARGET", "INVALID_DISPATCH_CONTEXT", "INVALID_THREAD",
    "INVALID_SYSCALL_NUMBER", "INVALID_FILE_OPERATION", "LPAC_ACCESS_DENIED", "GUARD_SS_FAILURE",
    "LOADER_CONTINUITY_FAILURE", "GUARD_EXPORT_SUPPRESSION_FAILURE", "INVALID_CONTROL_STACK",
    "SET_CONTEXT_DENIED", "INVALID_IAT", "HEAP_METADATA_CORRUPTION",
    "PAYLOAD_RESTRICTION_VIOLATION", "LOW_LABEL_ACCESS_DENIED", "ENCLAVE_CALL_FAILURE",
    "UNHANDLED_LSS_EXCEPTON", "ADMINLESS_ACCESS_DENIED", "UNEXPECTED_CALL",
    "CONTROL_INVALID_RETURN_ADDRESS", "UNEXPECTED_HOST_BEHAVIOR", "FLAGS_CORRUPTION",
    "VEH_CORRUPTION", "ETW_CORRUPTION", "RIO_ABORT", "INVALID_PFN",
    "GUARD_ICALL_CHECK_FAILURE_XFG", "CAST_GUARD", "HOST_VISIBILITY_CHANGE",
    "KERNEL_CET_SHADOW_STACK_ASSIST", "PATCH_CALLBACK_FAILED", "NTDLL_PATCH_FAILED",
    "INVALID_FLS_DATA",
};

static int cmp_code(const void *key, const void *elem)
{
    uint32_t k = *(const uint32_t *)key, e = ((const struct code_name *)elem)->code;
    return k < e ? -1 : k > e;
}

const char *ana__ntstatus_name(uint32_t code)
{
    const struct code_name *hit =
        bsearch(&code, ntstatus, sizeof ntstatus / sizeof *ntstatus, sizeof *ntstatus, cmp_code);
    return hit ? hit->name : NULL;
}

const char *ana__fast_fail_name(uint64_t code)
{
    if (code >= sizeof fast_fail / sizeof *fast_fail || !fast_fail[code])
        return NULL;
    return fast_fail[code];
}

/* ExceptionInformation[0] of an access violation or in-page error: 0 read, 1 write, 8 DEP. */
static const char *access_suffix(uint32_t nparams, const uint64_t *params)
{
    if (nparams < 1)
        return "";
    return params[0] == 0 ? "_READ" : params[0] == 1 ? "_WRITE" : params[0] == 8 ? "_EXEC" : "";
}

const char *ana__reason_windows(struct ana_crash *c, uint32_t code, uint32_t flags,
                                uint32_t nparams, const uint64_t *params)
{
    if (code == WIN_ACCESS_VIOLATION)
        return ana__printf(c, "EXCEPTION_ACCESS_VIOLATION%s", access_suffix(nparams, params));
    if (code == WIN_IN_PAGE_ERROR) {
        if (nparams < 3)
            return ana__printf(c, "EXCEPTION_IN_PAGE_ERROR%s", access_suffix(nparams, params));
        const char *status = ana__ntstatus_name((uint32_t)params[2]);
        return status ? ana__printf(c, "EXCEPTION_IN_PAGE_ERROR%s / %s",
                                    access_suffix(nparams, params), status)
                      : ana__printf(c, "EXCEPTION_IN_PAGE_ERROR%s / 0x%08x",
                                    access_suffix(nparams, params), (unsigned)params[2]);
    }
    if (code == WIN_STACK_BUFFER_OVERRUN) {
        const char *ff = nparams >= 1 ? ana__fast_fail_name(params[0]) : NULL;
        return ff ? ana__printf(c, "FAST_FAIL_%s", ff) : "EXCEPTION_STACK_BUFFER_OVERRUN";
    }
    for (size_t i = 0; i < sizeof exceptions / sizeof *exceptions; i++)
        if (exceptions[i].code == code)
            return exceptions[i].name;
    const char *status = ana__ntstatus_name(code);
    if (status)
        return status;
    return ana__printf(c, "0x%08x / 0x%08x", (unsigned)code, (unsigned)flags);
}
