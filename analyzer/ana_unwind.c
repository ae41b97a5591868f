/* ana_unwind.c -- the walker core: one walk per thread over the crash model, frame by frame.
 * The context frame comes from the thread's registers; each caller comes from the per-cpu
 * strategy sequence (CFI, frame pointer, stack scan); every frame is then symbolized (caller
 * frames at the call instruction, not the return address) into the crash's arena.
 *
 * A walk stops when no strategy finds a caller, when CFI says the thread has no caller (_start,
 * clone), when a caller's pc is below 4 KiB, when the stack pointer does not move up (it may stay
 * level only for the first unwind, where a leaf may not have pushed anything), at
 * limits.max_frames, and when the stack memory runs out (every read is confined to it). Each step
 * does bounded work (scans search at most 160 words, rule sets and programs are capped), so no
 * dump makes a walk unbounded in time or memory. */
#include <string.h>

#include "analyzer/ana_unwind_int.h"
#include "common/cm_alloc.h"

bool ana__uw_read(const struct uw *w, uint64_t addr, unsigned size, uint64_t *out)
{
    *out = 0;
    if (size == 0 || size > 8 || addr < w->stack_lo || addr >= w->stack_hi ||
        w->stack_hi - addr < size)
        return false;
    uint8_t b[8];
    if (!ana_mem_read(w->c, addr, b, size))
        return false;
    uint64_t v = 0;
    for (unsigned i = size; i > 0; i--)
        v = v << 8 | b[i - 1];
    *out = v;
    return true;
}

bool ana__uw_word(const struct uw *w, uint64_t addr, uint64_t *out)
{
    return ana__uw_read(w, addr, w->word, out);
}

/* The thread's stack memory: what the dump lists for the thread, else the region holding its
 * stack pointer. */
static void stack_window(struct uw *w, const struct ana_thread *t, const struct ana_context *ctx)
{
    w->stack_lo = w->stack_hi = 0;
    uint64_t sp = ctx->r[w->sp_reg] & w->mask;
    if (t->stack_size) {
        w->stack_lo = t->stack_base;
        w->stack_hi = t->stack_base + t->stack_size;
        if (w->stack_hi < t->stack_base)
            w->stack_hi = UINT64_MAX;
    } else {
        const struct ana_region *r = ana_mem_region(w->c, sp);
        if (r) {
            w->stack_lo = r->base;
            w->stack_hi = r->base + r->size;
        }
    }
    /* 32-bit walkers cannot address a stack above 4 GiB (Breakpad's x86 walker refuses it) */
    if (w->word == 4 && w->stack_hi > 0x100000000ull)
        w->stack_lo = w->stack_hi = 0;
}

static bool push(struct uw *w, const struct uw_frame *f)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 32;
        struct uw_frame *p = cm_reallocarray(w->f, cap, sizeof *p);
        if (!p)
            return false;
        w->f = p;
        w->cap = cap;
    }
    w->f[w->n++] = *f;
    return true;
}

static bool cpu_walks(enum ana_cpu cpu)
{
    return cpu == ANA_CPU_AMD64 || cpu == ANA_CPU_X86 || cpu == ANA_CPU_ARM64;
}

static bool find_caller(struct uw *w, struct uw_frame *caller, bool *end, bool *signal)
{
    switch (w->cpu) {
    case ANA_CPU_AMD64: return ana__uw_caller_amd64(w, caller, end, signal);
    case ANA_CPU_X86: return ana__uw_caller_x86(w, caller, end, signal);
    case ANA_CPU_ARM64: return ana__uw_caller_arm64(w, caller, end, signal);
    default: return false;
    }
}

static bool is_windows(const struct ana_crash *c)
{
    return c->system_info.platform_id == 2 /* VER_PLATFORM_WIN32_NT */ ||
           c->system_info.platform_id == 1 ||
           (c->system_info.os && strncmp(c->system_info.os, "Windows", 7) == 0);
}

enum cm_code ana_unwind_thread(struct ana_symjob *j, size_t ti, struct cm_err *err)
{
    struct ana_crash *c = ana_symjob_crash(j);
    struct ana_thread *t = &c->threads[ti];
    t->frames = NULL;
    t->frame_count = 0;
    t->frames_truncated = false;
    /* The crashing thread starts where the exception happened: its own context may be inside
     * the exception handler (Breakpad's processor does the same). */
    const struct ana_context *ctx = &t->ctx;
    bool crashed = c->crash_info.crashing_thread >= 0 &&
                   (size_t)c->crash_info.crashing_thread == ti && c->crash_info.has_exception_ctx;
    if (crashed)
        ctx = &c->crash_info.exception_ctx;
    else if (!t->has_ctx || t->bad_context)
        return CM_E_OK;
    struct uw w = { .c = c, .job = j };
    w.cpu = ctx->cpu != ANA_CPU_UNKNOWN ? ctx->cpu : c->system_info.cpu;
    w.word = ana_cpu_ptr_bytes(w.cpu);
    w.mask = w.word == 4 ? 0xffffffffull : UINT64_MAX;
    w.pc_reg = ana_reg_pc(w.cpu);
    w.sp_reg = ana_reg_sp(w.cpu);
    w.fp_reg = ana_reg_fp(w.cpu);
    w.windows = is_windows(c);
    if (w.pc_reg < 0 || !ana_ctx_has(ctx, w.pc_reg))
        return CM_E_OK; /* nothing to start from */
    bool can_walk = cpu_walks(w.cpu) && ana_ctx_has(ctx, w.sp_reg);
    if (can_walk)
        stack_window(&w, t, ctx);
    uint32_t max = c->limits.max_frames ? c->limits.max_frames : 1024;

    struct uw_frame f0 = { .regs = *ctx, .trust = ANA_TRUST_CONTEXT };
    f0.regs.cpu = w.cpu;
    f0.pc = f0.lookup = ctx->r[w.pc_reg] & w.mask;
    enum cm_code rc = CM_E_OK;
    if (!push(&w, &f0)) {
        rc = cm_fail(err, CM_E_NOMEM, "out of memory walking thread %zu", ti);
        goto out;
    }
    const char *stop = NULL;
    for (;;) {
        struct uw_frame *cur = uw_last(&w);
        cur->module = ana_module_at(c, cur->lookup);
        cur->sym = ana_symjob_module(j, cur->module);
        if (w.n >= max) {
            stop = "the frame cap";
            break;
        }
        if (!can_walk || w.stack_lo == w.stack_hi)
            break;
        struct uw_frame caller = { 0 };
        bool end = false, signal = false;
        if (!find_caller(&w, &caller, &end, &signal) || end)
            break;
        cur = uw_last(&w);
        caller.regs.cpu = w.cpu;
        uint64_t pc = caller.regs.r[w.pc_reg] & w.mask, sp = caller.regs.r[w.sp_reg] & w.mask;
        uint64_t last_sp = cur->regs.r[w.sp_reg] & w.mask;
        if (pc < 4096)
            break; /* end of stack (or nothing plausible) */
        bool first = cur->trust == ANA_TRUST_CONTEXT;
        if (first ? sp < last_sp : sp <= last_sp) {
            stop = "a stack pointer that did not move up";
            break;
        }
        caller.pc = pc;
        caller.lookup = signal ? pc : pc - (w.cpu == ANA_CPU_ARM64 ? 4 : 1);
        if (caller.trust == ANA_TRUST_SCAN || caller.trust == ANA_TRUST_CFI_SCAN)
            w.scanned++;
        if (!push(&w, &caller)) {
            rc = cm_fail(err, CM_E_NOMEM, "out of memory walking thread %zu", ti);
            goto out;
        }
    }
    if (stop) {
        t->frames_truncated = true;
        ana__warn(c, "thread %u: stack walk stopped after %zu frames at %s", t->tid, w.n, stop);
    }

    struct ana_frame *frames = ana__calloc(c, w.n, sizeof *frames);
    if (!frames) {
        rc = cm_fail(err, CM_E_NOMEM, "cannot store %zu frames", w.n);
        goto out;
    }
    for (size_t i = 0; i < w.n; i++) {
        if ((rc = ana_symjob_symbolize(j, w.f[i].lookup, &frames[i], err)))
            goto out;
        frames[i].pc = w.f[i].pc;
        frames[i].trust = w.f[i].trust;
        frames[i].regs = w.f[i].regs;
    }
    t->frames = frames;
    t->frame_count = w.n;
out:
    cm_free(w.f);
    return rc;
}

enum cm_code ana_unwind_all(struct ana_crash *c, struct ana_symstore *store, struct cm_err *err)
{
    struct ana_symjob *j = NULL;
    enum cm_code rc = ana_symjob_new(store, c, &j, err);
    if (rc)
        return rc;
    /* The crashing thread first: it matters most when a cap is reached. */
    int ct = c->crash_info.crashing_thread;
    if (ct >= 0 && (size_t)ct < c->thread_count)
        rc = ana_unwind_thread(j, (size_t)ct, err);
    for (size_t i = 0; !rc && i < c->thread_count; i++)
        if ((int)i != ct)
            rc = ana_unwind_thread(j, i, err);
    ana_symjob_free(j);
    return rc;
}
