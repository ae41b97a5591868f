/* ana_unwind_scan.c -- stack scanning: when nothing better knows the caller, the words above the
 * stack pointer are searched for a value that could be a return address. A candidate must lie
 * in a module, in memory the dump marks executable when it says (MemoryInfoList, /proc maps,
 * PT_LOAD flags), and inside a function when the module has symbols. It is checked as
 * candidate - 1, the call it returns from (a call to a no-return function may be the last
 * instruction of its function). Search lengths are Breakpad's: 40 words, 160 for the caller of
 * the context frame. */
#include "analyzer/ana_unwind_int.h"

bool ana__uw_addr_ok(struct uw *w, uint64_t ip)
{
    if (ip == 0)
        return false;
    uint64_t a = (ip - 1) & w->mask;
    int mi = ana_module_at(w->c, a);
    if (mi < 0)
        return false;
    if (w->c->mapping_count) {
        const struct ana_mapping *m = ana_mapping_at(w->c, a);
        if (m && m->prot && !(m->prot & ANA_PROT_X))
            return false; /* the dump says this memory does not hold code */
    }
    const struct ana_symfile *f = ana_symjob_module(w->job, mi);
    if (!f)
        return true;
    return ana_symfile_has_function(f, a - w->c->modules[mi].base);
}

bool ana__uw_scan(struct uw *w, uint64_t start, unsigned words, uint64_t *location,
                  uint64_t *ip)
{
    for (unsigned i = 0; i <= words; i++) {
        uint64_t a = (start + (uint64_t)i * w->word) & w->mask, v;
        if (!ana__uw_word(w, a, &v))
            break;
        if (ana__uw_addr_ok(w, v)) {
            *location = a;
            *ip = v;
            return true;
        }
    }
    return false;
}

bool ana__uw_caller_scan(struct uw *w, struct uw_frame *caller)
{
    const struct uw_frame *last = uw_last(w);
    uint64_t loc, ip;
    unsigned words = last->trust == ANA_TRUST_CONTEXT ? UW_CONTEXT_SCAN_WORDS : UW_SCAN_WORDS;
    if (!ana__uw_scan(w, last->regs.r[w->sp_reg] & w->mask, words, &loc, &ip))
        return false;
    *caller = (struct uw_frame){ .trust = ANA_TRUST_SCAN, .regs = last->regs };
    caller->regs.valid = 0;
    ana_ctx_set(&caller->regs, w->pc_reg, ip);
    ana_ctx_set(&caller->regs, w->sp_reg, (loc + w->word) & w->mask);
    if (w->cpu == ANA_CPU_AMD64 && ana_ctx_has(&last->regs, ANA_AMD64_RBP)) {
        /* Keep a plausible frame pointer for the walkers after us: a function usually pushes
         * its caller's %rbp right below the return address and points %rbp at it; else an
         * untouched %rbp above the return address may still be the caller's. */
        uint64_t rbp = last->regs.r[ANA_AMD64_RBP], saved;
        if (loc - 8 == rbp) {
            if (ana__uw_word(w, rbp, &saved) && saved > loc)
                ana_ctx_set(&caller->regs, ANA_AMD64_RBP, saved);
        } else if (rbp >= loc + 8) {
            ana_ctx_set(&caller->regs, ANA_AMD64_RBP, rbp);
        }
    }
    return true;
}
