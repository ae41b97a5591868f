/* ana_unwind_win.c -- 32-bit Windows frames through Breakpad STACK WIN records. A FRAME_DATA
 * record carries a postfix program that computes the caller's $eip, $esp and $ebp (and maybe
 * $ebx, $esi, $edi) from the callee's $ebp and $esp and the record's sizes; an FPO record only
 * sizes, from which a standard program is built. .raSearchStart, where the return address should
 * be, is the callee's %esp plus its callee's parameters, its locals and saved registers (nudged
 * by a short scan in case %esp was aligned, and taken from %ebp when the program aligns). Where
 * the program fails or lands outside every module, the stack is scanned, and a lost %ebp is
 * looked for in the saved-register area -- the same sequence as Breakpad's x86 walker, whose
 * answers the reference stacks hold.
 * Format: Breakpad docs/symbol_files.md ("STACK WIN"); FPO_DATA and the FRAME_DATA program
 * strings of the DIA SDK. */
#include <string.h>

#include "analyzer/ana_unwind_int.h"

static const char FPO_BP_PROGRAM[] = "$eip .raSearchStart ^ = "
                                     "$ebp $esp .cbCalleeParams + .cbSavedRegs + 8 - ^ = "
                                     "$esp .raSearchStart 4 + =";
static const char FPO_PROGRAM[] = "$eip .raSearchStart ^ = $esp .raSearchStart 4 + =";

#define VAR(d, name, v) ana__uw_var_set((d), (name), sizeof(name) - 1, (v), false)

static uint32_t get(const struct uw *w, const struct uw_vars *d, const char *name)
{
    uint64_t v = 0;
    ana__uw_var_get(w, d, name, strlen(name), &v);
    return (uint32_t)v;
}

static bool assigned(const struct uw_vars *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->v[i].name, name) == 0)
            return d->v[i].assigned;
    return false;
}

static bool scan32(struct uw *w, uint32_t start, unsigned words, uint32_t *loc, uint32_t *ip)
{
    uint64_t l, v;
    if (!ana__uw_scan(w, start, words, &l, &v))
        return false;
    *loc = (uint32_t)l;
    *ip = (uint32_t)v;
    return true;
}

bool ana__uw_caller_win(struct uw *w, struct uw_frame *caller)
{
    struct uw_frame *last = uw_last(w);
    if (!last->sym || last->module < 0)
        return false;
    uint64_t rva = last->lookup - w->c->modules[last->module].base;
    last->has_win = ana_symfile_win(last->sym, rva, &last->win);
    if (!last->has_win) {
        /* Without a record a FUNC still tells the parameter size, which the caller's own
         * unwind needs. */
        struct ana_symloc loc;
        if (ana_symfile_lookup(last->sym, rva, &loc) && loc.function && !loc.is_public) {
            last->param_size_valid = true;
            last->param_size = loc.param_size;
        }
        return false;
    }
    const struct ana_win_frame *info = &last->win;
    last->param_size_valid = true;
    last->param_size = info->param_size;

    /* %esp of a frame is its value just before the CALL into its callee, so it still covers the
     * callee's pushed arguments: those of the frame below this one. */
    uint32_t callee_params = 0;
    if (w->n >= 2 && w->f[w->n - 2].param_size_valid)
        callee_params = w->f[w->n - 2].param_size;
    bool context = last->trust == ANA_TRUST_CONTEXT;
    unsigned words = context ? UW_CONTEXT_SCAN_WORDS : UW_SCAN_WORDS;
    uint32_t esp = (uint32_t)last->regs.r[ANA_X86_ESP], ebp = (uint32_t)last->regs.r[ANA_X86_EBP];
    uint32_t eip = (uint32_t)last->regs.r[ANA_X86_EIP];

    struct uw_vars d = { 0 };
    VAR(&d, "$ebp", ebp);
    VAR(&d, "$esp", esp);
    if (ana_ctx_has(&last->regs, ANA_X86_EBX))
        VAR(&d, "$ebx", (uint32_t)last->regs.r[ANA_X86_EBX]);
    VAR(&d, ".cbCalleeParams", callee_params);
    VAR(&d, ".cbSavedRegs", info->saved_regs_size);
    VAR(&d, ".cbLocals", info->locals_size);

    uint32_t ra_start = esp + callee_params + info->locals_size + info->saved_regs_size;
    uint32_t ra_old = ra_start, found = 0, loc;
    /* Up to three words above, in case %esp was aligned. An FPO context frame whose stack top
     * holds its own pc is a system call that has returned: skip that word and look again. */
    if (scan32(w, ra_start, 3, &loc, &found)) {
        ra_start = loc;
        if (context && info->type == ANA_WIN_FPO && ra_old == ra_start && found == eip) {
            ra_start += 4;
            if (scan32(w, ra_start, 3, &loc, &found))
                ra_start = loc;
        }
    }
    VAR(&d, ".cbParams", info->param_size);

    const char *program;
    bool recover_ebp = true;
    char own[sizeof FPO_PROGRAM + 16];
    if (info->program[0]) {
        program = info->program;
    } else if (info->allocates_base_pointer) {
        program = FPO_BP_PROGRAM;
    } else {
        /* %ebp untouched: carried through, and %ebx too (simple forwarding functions) */
        strcpy(own, FPO_PROGRAM);
        if (ana_ctx_has(&last->regs, ANA_X86_EBX))
            strcat(own, " $ebx $ebx =");
        program = own;
        recover_ebp = false;
    }
    /* An aligning program (@) makes %esp-based arithmetic meaningless: %ebp + 4 it is. */
    if (ana_ctx_has(&last->regs, ANA_X86_EBP) && strchr(program, '@'))
        ra_start = ebp + 4;
    VAR(&d, ".raSearchStart", ra_start);
    VAR(&d, ".raSearch", ra_start);

    enum ana_trust trust = ANA_TRUST_CFI;
    struct uw_tok tok[UW_MAX_TOKENS];
    size_t nt = ana__uw_tokens(program, tok, UW_MAX_TOKENS);
    if (nt > UW_MAX_TOKENS || !ana__uw_postfix(w, &d, tok, nt, true, NULL) ||
        !assigned(&d, "$eip") || !assigned(&d, "$esp")) {
        /* The program did not evaluate (%ebp pointing outside the stack, say): scan. */
        uint32_t ip;
        if (!scan32(w, esp, words, &loc, &ip))
            return false;
        VAR(&d, "$eip", ip);
        VAR(&d, "$esp", loc + 4);
        trust = ANA_TRUST_SCAN;
    }

    /* Both 0: the program says this is the end of the stack; trust it. */
    if (get(w, &d, "$eip") != 0 || get(w, &d, "$ebp") != 0) {
        uint32_t offset = 0;
        if (ana_module_at(w->c, get(w, &d, "$eip")) < 0) {
            /* the word at .raSearchStart is no code address: look above it */
            uint32_t start = get(w, &d, ".raSearchStart") + 4, ip;
            if (scan32(w, start, words, &loc, &ip)) {
                VAR(&d, "$eip", ip);
                VAR(&d, "$esp", loc + 4);
                offset = loc - start;
                trust = ANA_TRUST_CFI_SCAN;
            }
        }
        if (recover_ebp) {
            /* A scan may have skipped frames, and a bad %ebp would derail the next unwind:
             * look for a saved %ebp that points into the stack, from the top of the
             * saved-register area down. */
            uint32_t cebp = get(w, &d, "$ebp");
            uint64_t probe;
            bool skipped = trust != ANA_TRUST_CFI && cebp <= ra_start + offset;
            if (skipped || !ana__uw_word(w, cebp, &probe)) {
                uint32_t end = esp + callee_params;
                uint32_t bytes = info->saved_regs_size + offset;
                /* bounded: a record's sizes come from a symbol file */
                for (uint32_t n = 0, at = end + bytes; n <= bytes / 4 && n < 4096; n++, at -= 4) {
                    uint64_t v;
                    if (!ana__uw_word(w, at, &v))
                        break;
                    if (ana__uw_word(w, v, &probe)) {
                        VAR(&d, "$ebp", v);
                        break;
                    }
                }
            }
        }
    }

    *caller = (struct uw_frame){ .trust = trust, .regs = last->regs };
    caller->regs.valid = 0;
    ana_ctx_set(&caller->regs, ANA_X86_EIP, get(w, &d, "$eip"));
    ana_ctx_set(&caller->regs, ANA_X86_ESP, get(w, &d, "$esp"));
    ana_ctx_set(&caller->regs, ANA_X86_EBP, get(w, &d, "$ebp"));
    static const struct { const char *name; int reg; } saved[] = {
        { "$ebx", ANA_X86_EBX }, { "$esi", ANA_X86_ESI }, { "$edi", ANA_X86_EDI } };
    for (size_t i = 0; i < sizeof saved / sizeof *saved; i++)
        if (assigned(&d, saved[i].name))
            ana_ctx_set(&caller->regs, saved[i].reg, get(w, &d, saved[i].name));
    return true;
}
