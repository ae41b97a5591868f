/* ana_unwind_fp.c -- callers through frame pointers: a function that keeps one pushes its
 * caller's frame pointer next to the return address and points the register at that pair, so
 * caller fp = [fp], return address = [fp + word], caller sp = fp + 2 words. Each cpu's checks
 * follow Breakpad's walkers, which the reference stacks were made with. */
#include "analyzer/ana_unwind_int.h"

/* x86 frames further apart than this are taken as a broken %ebp chain (Breakpad's bound). */
#define MAX_X86_FRAME_GAP (128u * 1024)

static bool non_canonical(uint64_t p) { return p > 0x7FFFFFFFFFFFull && p < 0xFFFF800000000000ull; }

bool ana__uw_caller_fp_amd64(struct uw *w, struct uw_frame *caller)
{
    const struct uw_frame *last = uw_last(w);
    uint64_t rbp = last->regs.r[ANA_AMD64_RBP], rip, saved;
    if (rbp % 8)
        return false;
    if (!ana__uw_word(w, rbp + 8, &rip) || !ana__uw_word(w, rbp, &saved))
        return false;
    uint64_t rsp = rbp + 16, probe;
    if (non_canonical(rip))
        return false; /* not a return address: %rbp was no frame pointer */
    if (rsp <= rbp || saved < rsp)
        return false; /* the chain must go up the stack */
    if (!ana__uw_word(w, saved, &probe))
        return false; /* and stay inside it */
    *caller = (struct uw_frame){ .trust = ANA_TRUST_FP, .regs = last->regs };
    caller->regs.valid = 0;
    ana_ctx_set(&caller->regs, ANA_AMD64_RIP, rip);
    ana_ctx_set(&caller->regs, ANA_AMD64_RSP, rsp);
    ana_ctx_set(&caller->regs, ANA_AMD64_RBP, saved);
    return true;
}

bool ana__uw_caller_fp_x86(struct uw *w, struct uw_frame *caller)
{
    const struct uw_frame *last = uw_last(w);
    uint32_t esp = (uint32_t)last->regs.r[ANA_X86_ESP], ebp = (uint32_t)last->regs.r[ANA_X86_EBP];
    uint64_t eip, cebp, cesp;
    enum ana_trust trust;
    if (ana__uw_word(w, (uint32_t)(ebp + 4), &eip) && ana__uw_word(w, ebp, &cebp)) {
        cesp = (uint32_t)(ebp + 8);
        trust = ANA_TRUST_FP;
    } else {
        /* %ebp does not point into the stack (a module without symbols built without frame
         * pointers): scan, then try to pick the %ebp chain up again just below the return
         * address; else assume %ebp unchanged. */
        uint64_t loc;
        unsigned words = last->trust == ANA_TRUST_CONTEXT ? UW_CONTEXT_SCAN_WORDS : UW_SCAN_WORDS;
        if (!ana__uw_scan(w, esp, words, &loc, &eip))
            return false;
        cesp = (uint32_t)(loc + 4);
        uint32_t slot = (uint32_t)(cesp - 8);
        if (!ana__uw_word(w, slot, &cebp) || cebp <= slot || cebp - slot > MAX_X86_FRAME_GAP)
            cebp = ebp;
        trust = ANA_TRUST_SCAN;
    }
    *caller = (struct uw_frame){ .trust = trust, .regs = last->regs };
    caller->regs.valid = 0;
    ana_ctx_set(&caller->regs, ANA_X86_EIP, eip);
    ana_ctx_set(&caller->regs, ANA_X86_ESP, cesp);
    ana_ctx_set(&caller->regs, ANA_X86_EBP, cebp);
    return true;
}

/* Pointer-authentication bits off a return address when the stripped value lands in a module:
 * the mask covers every bit up to the highest module end. */
static uint64_t ptrauth_strip(const struct uw *w, uint64_t p)
{
    uint64_t top = 0;
    for (size_t i = 0; i < w->c->module_count; i++) {
        const struct ana_module *m = &w->c->modules[i];
        if (m->base + m->size > top)
            top = m->base + m->size;
    }
    uint64_t mask = top;
    for (int s = 1; s < 64; s <<= 1)
        mask |= mask >> s;
    uint64_t stripped = p & mask;
    return ana_module_at(w->c, stripped) >= 0 ? stripped : p;
}

bool ana__uw_caller_fp_arm64(struct uw *w, struct uw_frame *caller)
{
    struct uw_frame *last = uw_last(w);
    uint64_t fp = last->regs.r[ANA_ARM64_FP], sp = last->regs.r[ANA_ARM64_SP];
    /* A frame found by CFI may not know its own lr: the callee's frame record holds it when
     * the callee's saved fp agrees with this frame's fp. */
    if (!ana_ctx_has(&last->regs, ANA_ARM64_LR) && w->n >= 2 && fp > sp) {
        const struct uw_frame *callee = &w->f[w->n - 2];
        uint64_t cfp = callee->regs.r[ANA_ARM64_FP], saved_fp = 0, saved_lr = 0;
        if (cfp && ana__uw_word(w, cfp, &saved_fp) && saved_fp == fp &&
            ana__uw_word(w, cfp + 8, &saved_lr))
            ana_ctx_set(&last->regs, ANA_ARM64_LR, ptrauth_strip(w, saved_lr));
    }
    uint64_t cfp = 0, clr = 0;
    if (fp && (!ana__uw_word(w, fp, &cfp) || !ana__uw_word(w, fp + 8, &clr)))
        return false;
    *caller = (struct uw_frame){ .trust = ANA_TRUST_FP, .regs = last->regs };
    caller->regs.valid = 0;
    ana_ctx_set(&caller->regs, ANA_ARM64_FP, cfp);
    ana_ctx_set(&caller->regs, ANA_ARM64_SP, fp ? fp + 16 : sp);
    ana_ctx_set(&caller->regs, ANA_ARM64_PC, ptrauth_strip(w, last->regs.r[ANA_ARM64_LR]));
    ana_ctx_set(&caller->regs, ANA_ARM64_LR, ptrauth_strip(w, clr));
    return true;
}
