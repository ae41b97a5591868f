/* ana_unwind_arm64.c -- the caller of an arm64 frame: CFI first (ELF CFI through libdw, or
 * Breakpad STACK CFI), then the frame record chain (x29), then stack scanning. The order is
 * Breakpad's arm64 walker's. Return addresses lose pointer-authentication bits in
 * ana_unwind_fp.c. */
#include "analyzer/ana_unwind_int.h"

bool ana__uw_caller_arm64(struct uw *w, struct uw_frame *caller, bool *end, bool *signal)
{
    const struct uw_frame *last = uw_last(w);
    if (last->sym) {
        if (ana_symfile_kind(last->sym) == ANA_SYMFILE_ELF) {
            enum uw_dwarf r = ana__uw_caller_dwarf(w, caller, signal);
            if (r == UW_DW_END) {
                *end = true;
                return false;
            }
            if (r == UW_DW_CALLER)
                return true;
            *signal = false;
        } else if (ana__uw_caller_bpcfi(w, caller)) {
            return true;
        }
    }
    if (ana__uw_caller_fp_arm64(w, caller))
        return true;
    return ana__uw_caller_scan(w, caller);
}
