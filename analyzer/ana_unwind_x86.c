/* ana_unwind_x86.c -- the caller of an x86 frame: a STACK WIN record first (32-bit Windows),
 * then CFI (ELF CFI through libdw, or Breakpad STACK CFI), then the %ebp chain, which scans when
 * %ebp does not point into the stack. The order is Breakpad's x86 walker's. */
#include "analyzer/ana_unwind_int.h"

bool ana__uw_caller_x86(struct uw *w, struct uw_frame *caller, bool *end, bool *signal)
{
    const struct uw_frame *last = uw_last(w);
    if (last->sym) {
        if (ana_symfile_kind(last->sym) == ANA_SYMFILE_ELF) {
            enum uw_dwarf r = ana__uw_caller_dwarf(w, caller, signal);
            if (r == UW_DW_END) {
                *end = true;
                return false;
            }
            if (r == UW_DW_CALLER && ana_ctx_has(&caller->regs, ANA_X86_EBP))
                return true;
            *signal = false;
        } else if (ana__uw_caller_win(w, caller) || ana__uw_caller_bpcfi(w, caller)) {
            return true;
        }
    }
    return ana__uw_caller_fp_x86(w, caller);
}
