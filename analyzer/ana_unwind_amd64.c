/* ana_unwind_amd64.c -- the caller of an amd64 frame: CFI first (the module's ELF CFI through
 * libdw, or Breakpad STACK CFI); then, for the context frame of a Windows dump, a leaf function
 * that never moved %rsp (the return address on top of the stack: x64 leaf functions have no
 * unwind data); then the %rbp chain except on Windows, where compilers do not keep one; then
 * stack scanning. The order is Breakpad's amd64 walker's. */
#include "analyzer/ana_unwind_int.h"

/* A leaf's caller: the return address is one of the two words on top of the stack. */
static bool caller_leaf(struct uw *w, struct uw_frame *caller)
{
    const struct uw_frame *last = uw_last(w);
    uint64_t loc, ip;
    if (!ana__uw_scan(w, last->regs.r[ANA_AMD64_RSP], 1, &loc, &ip))
        return false;
    /* Breakpad calls this trust "leaf"; the model has no such word, and the address was found
     * on the stack without unwind data, so it counts as scanned. */
    *caller = (struct uw_frame){ .trust = ANA_TRUST_SCAN, .regs = last->regs };
    ana_ctx_set(&caller->regs, ANA_AMD64_RIP, ip);
    ana_ctx_set(&caller->regs, ANA_AMD64_RSP, loc + 8);
    return true;
}

bool ana__uw_caller_amd64(struct uw *w, struct uw_frame *caller, bool *end, bool *signal)
{
    const struct uw_frame *last = uw_last(w);
    if (last->sym) {
        if (ana_symfile_kind(last->sym) == ANA_SYMFILE_ELF) {
            enum uw_dwarf r = ana__uw_caller_dwarf(w, caller, signal);
            if (r == UW_DW_END) {
                *end = true;
                return false;
            }
            if (r == UW_DW_CALLER && caller->regs.r[ANA_AMD64_RIP] && caller->regs.r[ANA_AMD64_RSP])
                return true;
            *signal = false;
        } else if (ana__uw_caller_bpcfi(w, caller)) {
            return true;
        }
    }
    if (last->trust == ANA_TRUST_CONTEXT && w->windows && caller_leaf(w, caller))
        return true;
    if (!w->windows && ana__uw_caller_fp_amd64(w, caller))
        return true;
    return ana__uw_caller_scan(w, caller);
}
