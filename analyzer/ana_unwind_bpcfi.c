/* ana_unwind_bpcfi.c -- caller registers from Breakpad STACK CFI records. The records covering
 * the callee (an INIT record and the deltas up to the address) are rule sets "NAME: EXPR ...";
 * a later rule for a name replaces an earlier one. .cfa is evaluated over the callee's valid
 * registers, then .ra and every register rule with .cfa known. The caller's pc is its register
 * rule or else .ra, its stack pointer its rule or else .cfa; callee-saved registers the rules do
 * not mention keep the callee's values; every other register is unknown.
 * Format: Breakpad docs/symbol_files.md ("STACK CFI"). */
#include <string.h>

#include "analyzer/ana_unwind_int.h"

#define MAX_RULES 64

struct rule {
    struct uw_tok name;
    size_t first, count; /* tokens of the expression */
};

uint64_t ana__uw_callee_saved(enum ana_cpu cpu)
{
    switch (cpu) {
    case ANA_CPU_AMD64:
        return 1ull << ANA_AMD64_RBX | 1ull << ANA_AMD64_RBP | 1ull << ANA_AMD64_R12 |
               1ull << ANA_AMD64_R13 | 1ull << ANA_AMD64_R14 | 1ull << ANA_AMD64_R15;
    case ANA_CPU_X86:
        return 1ull << ANA_X86_EBX | 1ull << ANA_X86_EBP | 1ull << ANA_X86_ESI |
               1ull << ANA_X86_EDI;
    case ANA_CPU_ARM64: {
        uint64_t m = 0;
        for (int r = 19; r <= 29; r++)
            m |= 1ull << r;
        return m;
    }
    default:
        return 0;
    }
}

static bool same(const struct uw_tok *a, const char *s)
{
    return a->n == strlen(s) && memcmp(a->p, s, a->n) == 0;
}

/* Parses one record's rule set into rules[] (replacing same-named ones); its tokens are appended
 * to tok[]. False when the record is malformed; rules before the fault stay, as in Breakpad. */
static bool parse_set(const char *set, struct uw_tok *tok, size_t *ntok, struct rule *rules,
                      size_t *nrules)
{
    size_t start = *ntok;
    size_t n = ana__uw_tokens(set, tok + start, UW_MAX_TOKENS - start);
    if (n > UW_MAX_TOKENS - start)
        return false;
    *ntok += n;
    struct rule cur = { 0 };
    bool have = false;
    for (size_t i = start; i <= start + n; i++) {
        bool is_name = i < start + n && tok[i].n >= 1 && tok[i].p[tok[i].n - 1] == ':';
        if (i == start + n || is_name) {
            if (have) {
                if (cur.count == 0 || cur.name.n == 0)
                    return false;
                size_t k = 0;
                while (k < *nrules && !(rules[k].name.n == cur.name.n &&
                                        memcmp(rules[k].name.p, cur.name.p, cur.name.n) == 0))
                    k++;
                if (k == *nrules) {
                    if (*nrules == MAX_RULES)
                        return false;
                    (*nrules)++;
                }
                rules[k] = cur;
            }
            if (i == start + n)
                break;
            cur = (struct rule){ .name = { tok[i].p, tok[i].n - 1 }, .first = i + 1 };
            have = true;
        } else if (!have) {
            return false; /* an expression before any name */
        } else {
            cur.count++;
        }
    }
    return true;
}

bool ana__uw_caller_bpcfi(struct uw *w, struct uw_frame *caller)
{
    struct uw_frame *last = uw_last(w);
    if (!last->sym || last->module < 0)
        return false;
    uint64_t rva = last->lookup - w->c->modules[last->module].base;
    const char *sets[UW_MAX_CFI_RULES];
    size_t nsets = ana_symfile_cfi_rules(last->sym, rva, sets, UW_MAX_CFI_RULES);
    if (nsets == 0)
        return false;
    struct uw_tok tok[UW_MAX_TOKENS];
    size_t ntok = 0, nrules = 0;
    struct rule rules[MAX_RULES];
    for (size_t i = 0; i < nsets; i++)
        if (!parse_set(sets[i], tok, &ntok, rules, &nrules) && i == 0)
            return false; /* a broken INIT record gives no CFI at all */

    const struct rule *cfa_rule = NULL, *ra_rule = NULL;
    for (size_t i = 0; i < nrules; i++) {
        if (same(&rules[i].name, ".cfa"))
            cfa_rule = &rules[i];
        else if (same(&rules[i].name, ".ra"))
            ra_rule = &rules[i];
    }
    if (!cfa_rule || !ra_rule)
        return false;

    struct uw_vars d = { .regs = last };
    uint64_t cfa, ra;
    if (!ana__uw_postfix(w, &d, tok + cfa_rule->first, cfa_rule->count, false, &cfa))
        return false;
    ana__uw_var_set(&d, ".cfa", 4, cfa, false);
    if (!ana__uw_postfix(w, &d, tok + ra_rule->first, ra_rule->count, false, &ra))
        return false;

    *caller = (struct uw_frame){ .trust = ANA_TRUST_CFI };
    caller->regs.cpu = w->cpu;
    for (size_t i = 0; i < nrules; i++) {
        const struct rule *r = &rules[i];
        if (r == cfa_rule || r == ra_rule)
            continue;
        char name[24];
        if (r->name.n >= sizeof name)
            continue;
        memcpy(name, r->name.p, r->name.n);
        name[r->name.n] = 0;
        int reg = ana_reg_by_name(w->cpu, name);
        uint64_t v;
        if (reg < 0 || !ana__uw_postfix(w, &d, tok + r->first, r->count, false, &v))
            continue; /* a rule that does not evaluate leaves its register unknown */
        ana_ctx_set(&caller->regs, reg, v);
    }
    if (!ana_ctx_has(&caller->regs, w->pc_reg))
        ana_ctx_set(&caller->regs, w->pc_reg, ra);
    if (!ana_ctx_has(&caller->regs, w->sp_reg))
        ana_ctx_set(&caller->regs, w->sp_reg, cfa);
    uint64_t keep = ana__uw_callee_saved(w->cpu) & last->regs.valid & ~caller->regs.valid;
    for (int r = 0; r < ANA_NREGS; r++)
        if (keep >> r & 1)
            ana_ctx_set(&caller->regs, r, last->regs.r[r]);
    if (w->cpu == ANA_CPU_X86 && !ana_ctx_has(&caller->regs, ANA_X86_EBP))
        return false; /* Breakpad's x86 walker needs %ebp too */
    if (w->cpu == ANA_CPU_AMD64 &&
        (caller->regs.r[ANA_AMD64_RIP] == 0 || caller->regs.r[ANA_AMD64_RSP] == 0))
        return false;
    return true;
}
