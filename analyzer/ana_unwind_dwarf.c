/* ana_unwind_dwarf.c -- callers from an ELF module's own CFI (.eh_frame, .debug_frame). libdw
 * interprets the CFI (dwarf_cfi_addrframe) and hands back, per register, a rule as a DWARF
 * expression (dwarf_frame_cfa, dwarf_frame_register); this file only evaluates those
 * expressions against the callee's registers and the stack memory. The return-address column
 * gives the caller's pc -- undefined there means the thread has no caller (_start, clone) -- and
 * the CFA is the caller's stack pointer.
 * Formats: DWARF 5 sections 2.5 (expressions) and 6.4 (call frame information). */
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <stdlib.h>

#include "analyzer/ana_unwind_int.h"

#define MAX_STACK 64
#define MAX_STEPS 1024

struct eval {
    const struct uw *w;
    const struct uw_frame *callee;
    bool have_cfa;
    uint64_t cfa;
};

static bool reg_value(const struct eval *e, uint64_t regno, uint64_t *out)
{
    if (regno >= ANA_NREGS || !ana_ctx_has(&e->callee->regs, (int)regno))
        return false;
    *out = e->callee->regs.r[regno] & e->w->mask;
    return true;
}

/* Index of the op at byte offset off, or n. */
static size_t op_at(const Dwarf_Op *ops, size_t n, uint64_t off)
{
    for (size_t i = 0; i < n; i++)
        if (ops[i].offset == off)
            return i;
    return n;
}

/* Runs ops; *out is the top of the stack. */
static bool run(const struct eval *e, const Dwarf_Op *ops, size_t n, uint64_t *out)
{
    uint64_t st[MAX_STACK];
    size_t sp = 0;
    const uint64_t mask = e->w->mask;
    unsigned steps = 0;
#define NEED(k)                                                                                    \
    do {                                                                                           \
        if (sp < (k))                                                                              \
            return false;                                                                          \
    } while (0)
#define PUSH(v)                                                                                    \
    do {                                                                                           \
        uint64_t pushed_ = (v) & mask;                                                             \
        if (sp == MAX_STACK)                                                                       \
            return false;                                                                          \
        st[sp++] = pushed_;                                                                        \
    } while (0)
    for (size_t i = 0; i < n;) {
        if (++steps > MAX_STEPS)
            return false;
        const Dwarf_Op *op = &ops[i];
        uint8_t a = op->atom;
        uint64_t v, x;
        size_t next = i + 1;
        if (a >= DW_OP_lit0 && a <= DW_OP_lit31) {
            PUSH((uint64_t)(a - DW_OP_lit0));
        } else if (a >= DW_OP_breg0 && a <= DW_OP_breg31) {
            if (!reg_value(e, (uint64_t)(a - DW_OP_breg0), &v))
                return false;
            PUSH(v + op->number);
        } else {
            switch (a) {
            case DW_OP_call_frame_cfa:
                if (!e->have_cfa)
                    return false;
                PUSH(e->cfa);
                break;
            case DW_OP_bregx:
                if (!reg_value(e, op->number, &v))
                    return false;
                PUSH(v + op->number2);
                break;
            case DW_OP_addr:
            case DW_OP_const1u: case DW_OP_const1s: case DW_OP_const2u: case DW_OP_const2s:
            case DW_OP_const4u: case DW_OP_const4s: case DW_OP_const8u: case DW_OP_const8s:
            case DW_OP_constu: case DW_OP_consts:
                PUSH(op->number);
                break;
            case DW_OP_plus_uconst:
                NEED(1);
                st[sp - 1] = (st[sp - 1] + op->number) & mask;
                break;
            case DW_OP_dup:
                NEED(1);
                PUSH(st[sp - 1]);
                break;
            case DW_OP_drop:
                NEED(1);
                sp--;
                break;
            case DW_OP_over:
                NEED(2);
                PUSH(st[sp - 2]);
                break;
            case DW_OP_pick:
                if (op->number >= sp)
                    return false;
                PUSH(st[sp - 1 - op->number]);
                break;
            case DW_OP_swap:
                NEED(2);
                v = st[sp - 1];
                st[sp - 1] = st[sp - 2];
                st[sp - 2] = v;
                break;
            case DW_OP_rot:
                NEED(3);
                v = st[sp - 1];
                st[sp - 1] = st[sp - 2];
                st[sp - 2] = st[sp - 3];
                st[sp - 3] = v;
                break;
            case DW_OP_deref:
                NEED(1);
                if (!ana__uw_word(e->w, st[sp - 1], &v))
                    return false;
                st[sp - 1] = v & mask;
                break;
            case DW_OP_deref_size:
                NEED(1);
                if (op->number == 0 || op->number > 8 ||
                    !ana__uw_read(e->w, st[sp - 1], (unsigned)op->number, &v))
                    return false;
                st[sp - 1] = v & mask;
                break;
            case DW_OP_abs:
                NEED(1);
                if (e->w->word == 8 ? (int64_t)st[sp - 1] < 0 : (int32_t)st[sp - 1] < 0)
                    st[sp - 1] = (0 - st[sp - 1]) & mask;
                break;
            case DW_OP_neg:
                NEED(1);
                st[sp - 1] = (0 - st[sp - 1]) & mask;
                break;
            case DW_OP_not:
                NEED(1);
                st[sp - 1] = ~st[sp - 1] & mask;
                break;
            case DW_OP_and: case DW_OP_or: case DW_OP_xor: case DW_OP_plus: case DW_OP_minus:
            case DW_OP_mul: case DW_OP_div: case DW_OP_mod: case DW_OP_shl: case DW_OP_shr:
            case DW_OP_shra: case DW_OP_eq: case DW_OP_ne: case DW_OP_lt: case DW_OP_gt:
            case DW_OP_le: case DW_OP_ge: {
                NEED(2);
                x = st[--sp]; /* top */
                v = st[sp - 1];
                int64_t sv = e->w->word == 8 ? (int64_t)v : (int32_t)v;
                int64_t sx = e->w->word == 8 ? (int64_t)x : (int32_t)x;
                uint64_t r;
                switch (a) {
                case DW_OP_and: r = v & x; break;
                case DW_OP_or: r = v | x; break;
                case DW_OP_xor: r = v ^ x; break;
                case DW_OP_plus: r = v + x; break;
                case DW_OP_minus: r = v - x; break;
                case DW_OP_mul: r = v * x; break;
                case DW_OP_div:
                    if (sx == 0 || (sx == -1 && sv == INT64_MIN))
                        return false;
                    r = (uint64_t)(sv / sx);
                    break;
                case DW_OP_mod:
                    if (x == 0)
                        return false;
                    r = v % x;
                    break;
                case DW_OP_shl: r = x >= 64 ? 0 : v << x; break;
                case DW_OP_shr: r = x >= 64 ? 0 : v >> x; break;
                case DW_OP_shra: r = (uint64_t)(x >= 63 ? (sv < 0 ? -1 : 0) : sv >> x); break;
                case DW_OP_eq: r = sv == sx; break;
                case DW_OP_ne: r = sv != sx; break;
                case DW_OP_lt: r = sv < sx; break;
                case DW_OP_gt: r = sv > sx; break;
                case DW_OP_le: r = sv <= sx; break;
                default: r = sv >= sx; break;
                }
                st[sp - 1] = r & mask;
                break;
            }
            case DW_OP_skip:
            case DW_OP_bra: {
                bool take = true;
                if (a == DW_OP_bra) {
                    NEED(1);
                    take = st[--sp] != 0;
                }
                if (take) {
                    /* target: the byte after this 3-byte op, plus the signed offset */
                    uint64_t target = op->offset + 3 + (uint64_t)(int64_t)(int16_t)op->number;
                    next = op_at(ops, n, target);
                    if (next == n && target <= ops[n - 1].offset)
                        return false; /* lands inside an op: malformed */
                }
                break;
            }
            case DW_OP_nop:
                break;
            default:
                return false; /* not something CFI rules use */
            }
        }
        i = next;
    }
#undef NEED
#undef PUSH
    if (sp == 0)
        return false;
    *out = st[sp - 1];
    return true;
}

/* A register rule: a location (read the saved value there) or, ending in DW_OP_stack_value, the
 * value itself; a single DW_OP_regx names the register holding it. */
static bool rule_value(const struct eval *e, const Dwarf_Op *ops, size_t n, uint64_t *out)
{
    if (n == 1 && (ops[0].atom == DW_OP_regx ||
                   (ops[0].atom >= DW_OP_reg0 && ops[0].atom <= DW_OP_reg31)))
        return reg_value(e, ops[0].atom == DW_OP_regx ? ops[0].number
                                                      : (uint64_t)(ops[0].atom - DW_OP_reg0),
                         out);
    if (ops[n - 1].atom == DW_OP_stack_value)
        return run(e, ops, n - 1, out);
    uint64_t addr;
    return run(e, ops, n, &addr) && ana__uw_word(e->w, addr, out);
}

struct call {
    struct uw *w;
    struct uw_frame *caller;
    bool signal;
    enum uw_dwarf result;
};

static int nregs(enum ana_cpu cpu)
{
    switch (cpu) {
    case ANA_CPU_AMD64: return 17; /* rax..r15, rip (return address column) */
    case ANA_CPU_X86: return 9;    /* eax..edi, eip */
    case ANA_CPU_ARM64: return 32; /* x0..x30, sp */
    default: return 0;
    }
}

static int with_cfi(void *arg, Dwarf_CFI *eh, Dwarf_CFI *dbg, uint64_t rva_to_elf)
{
    struct call *k = arg;
    struct uw *w = k->w;
    const struct uw_frame *last = uw_last(w);
    uint64_t addr = last->lookup - w->c->modules[last->module].base + rva_to_elf;
    Dwarf_Frame *fr = NULL;
    if (!eh || dwarf_cfi_addrframe(eh, addr, &fr) != 0) {
        fr = NULL;
        if (!dbg || dwarf_cfi_addrframe(dbg, addr, &fr) != 0)
            return 0; /* no FDE covers it */
    }
    bool signal = false;
    int ra_col = dwarf_frame_info(fr, NULL, NULL, &signal);
    Dwarf_Op *ops, mem[3];
    size_t nops;
    struct eval e = { .w = w, .callee = last };
    if (ra_col < 0 || ra_col >= ANA_NREGS || dwarf_frame_cfa(fr, &ops, &nops) != 0 || nops == 0 ||
        !run(&e, ops, nops, &e.cfa))
        goto out;
    e.have_cfa = true;
    /* The return address column first: undefined ends the stack. */
    if (dwarf_frame_register(fr, ra_col, mem, &ops, &nops) != 0)
        goto out;
    if (nops == 0 && ops == mem) {
        k->result = UW_DW_END;
        goto out;
    }
    struct uw_frame *c = k->caller;
    *c = (struct uw_frame){ .trust = ANA_TRUST_CFI };
    c->regs.cpu = w->cpu;
    for (int r = 0; r < nregs(w->cpu); r++) {
        if (dwarf_frame_register(fr, r, mem, &ops, &nops) != 0)
            continue;
        uint64_t v;
        if (nops == 0) {
            if (ops == NULL && ana_ctx_has(&last->regs, r)) /* same value */
                ana_ctx_set(&c->regs, r, last->regs.r[r]);
            continue; /* else undefined: unknown in the caller */
        }
        if (rule_value(&e, ops, nops, &v))
            ana_ctx_set(&c->regs, r, v & w->mask);
    }
    if (!ana_ctx_has(&c->regs, ra_col))
        goto out; /* the return address could not be read */
    ana_ctx_set(&c->regs, w->pc_reg, c->regs.r[ra_col]);
    ana_ctx_set(&c->regs, w->sp_reg, e.cfa);
    k->signal = signal;
    k->result = UW_DW_CALLER;
out:
    free(fr); /* malloc'd by libdw */
    return 0;
}

enum uw_dwarf ana__uw_caller_dwarf(struct uw *w, struct uw_frame *caller, bool *signal)
{
    const struct uw_frame *last = uw_last(w);
    *signal = false;
    if (!last->sym || last->module < 0 || nregs(w->cpu) == 0)
        return UW_DW_NONE;
    struct call k = { .w = w, .caller = caller, .result = UW_DW_NONE };
    if (ana_symfile_with_cfi(last->sym, with_cfi, &k) < 0)
        return UW_DW_NONE;
    *signal = k.signal;
    return k.result;
}
