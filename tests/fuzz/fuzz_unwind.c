/* fuzz_unwind.c -- libFuzzer target for the unwinder: random registers and stack memory walked
 * against real module sets with their real symbols -- minidump2's x86 modules (Breakpad FUNC,
 * STACK WIN records), a crashlab core's amd64 modules (ELF .eh_frame CFI through libdw), the same
 * modules as a Windows amd64 process (leaf and scan rules), and as arm64 (frame records). The
 * input is: a selector byte, a valid-register mask, the registers, then the stack bytes; words of
 * the stack whose top byte is 0xEE become addresses inside a module, so walks reach real CFI.
 * Every walk must stay within limits.max_frames, and everything it returns is read so a dangling
 * pointer shows up under ASan. A missing corpus file aborts: it must never pass silently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana_int.h"
#include "analyzer/ana_sym.h"
#include "common/cm_alloc.h"

#ifndef TRIAGE_CORPUS_DIR
#error "TRIAGE_CORPUS_DIR must name the shared corpus"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STACK_BASE 0x7ffe00000000ull
#define MAX_STACK (64u << 10)

static struct {
    struct ana_crash *x86, *amd64;
    struct ana_symstore *bp, *elf;
} g;

static struct ana_crash *load(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", TRIAGE_CORPUS_DIR, rel);
    struct ana_crash *c;
    struct cm_err err;
    if (ana_load_file(path, NULL, &c, &err) != CM_E_OK) {
        fprintf(stderr, "fuzz_unwind: %s: %s\n", path, err.msg);
        abort();
    }
    return c;
}

static struct ana_symstore *store(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", TRIAGE_CORPUS_DIR, rel);
    const char *dirs[] = { path };
    struct ana_symstore *s;
    if (ana_symstore_new(dirs, 1, NULL, &s, NULL) != CM_E_OK)
        abort();
    return s;
}

static void init(void)
{
    if (g.x86)
        return;
    g.x86 = load("breakpad/testdata/minidump2.dmp");
    g.amd64 = load("elfcores/dumps/core.0428bd436ce2accf.zst");
    g.bp = store("breakpad/testdata/symbols");
    g.elf = store("elfcores/symbols");
}

static size_t touch(const char *s) { return s ? strlen(s) : 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    if (size < 1 + 8 + ANA_NREGS * 8)
        return 0;
    uint8_t sel = data[0] % 4;
    const struct ana_crash *tpl = sel == 0 ? g.x86 : g.amd64;
    struct ana_symstore *s = sel == 0 ? g.bp : g.elf;
    enum ana_cpu cpu = sel == 0 ? ANA_CPU_X86 : sel == 3 ? ANA_CPU_ARM64 : ANA_CPU_AMD64;

    struct ana_crash *c = cm_calloc(1, sizeof *c);
    if (!c)
        return 0;
    ana_limits_default(&c->limits);
    c->limits.max_frames = 256;
    c->system_info = tpl->system_info;
    c->system_info.cpu = cpu;
    if (sel == 2) {
        c->system_info.os = "Windows NT";
        c->system_info.platform_id = 2;
    }
    /* the template's modules and mappings (their strings live in the template) */
    c->module_count = tpl->module_count;
    c->modules = ana__calloc(c, c->module_count ? c->module_count : 1, sizeof *c->modules);
    c->mapping_count = tpl->mapping_count;
    c->mappings = ana__calloc(c, c->mapping_count ? c->mapping_count : 1, sizeof *c->mappings);
    c->threads = ana__calloc(c, 1, sizeof *c->threads);
    c->regions = ana__calloc(c, 1, sizeof *c->regions);
    if (!c->modules || !c->mappings || !c->threads || !c->regions)
        goto out;
    for (size_t i = 0; i < c->module_count; i++) {
        c->modules[i] = tpl->modules[i];
        c->modules[i].has_symbols = false;
        c->modules[i].symbols_source = NULL;
    }
    if (c->mapping_count)
        memcpy(c->mappings, tpl->mappings, c->mapping_count * sizeof *c->mappings);

    size_t off = 1;
    uint64_t valid;
    memcpy(&valid, data + off, 8);
    off += 8;
    struct ana_thread *t = &c->threads[0];
    c->thread_count = 1;
    c->crash_info.crashing_thread = 0;
    t->has_ctx = true;
    t->ctx.cpu = cpu;
    t->ctx.valid = valid | 1ull << ana_reg_pc(cpu) | 1ull << ana_reg_sp(cpu);
    memcpy(t->ctx.r, data + off, ANA_NREGS * 8);
    off += ANA_NREGS * 8;

    size_t n = size - off;
    if (n > MAX_STACK)
        n = MAX_STACK;
    n &= ~(size_t)7;
    if (n) {
        uint64_t base = cpu == ANA_CPU_X86 ? 0x00100000 : STACK_BASE;
        uint8_t *stk = ana__alloc(c, n);
        if (!stk)
            goto out;
        memcpy(stk, data + off, n);
        for (size_t i = 0; i + 8 <= n && c->module_count; i += 8) {
            if (stk[i + 7] != 0xEE)
                continue;
            uint64_t v;
            memcpy(&v, stk + i, 8);
            const struct ana_module *m = &c->modules[(v >> 32 & 0xffff) % c->module_count];
            uint64_t a = m->base + (m->size ? (v & 0xffffffff) % m->size : 0);
            unsigned w = ana_cpu_ptr_bytes(cpu);
            for (unsigned b = 0; b < w; b++)
                stk[i + b] = (uint8_t)(a >> (8 * b));
            if (w == 4)
                memset(stk + i + 4, 0, 4);
        }
        c->regions[0] = (struct ana_region){ .base = base, .size = n, .data = stk };
        c->region_count = 1;
        /* most walks should start inside the stack */
        int sp = ana_reg_sp(cpu);
        if (!(data[0] & 0x80))
            t->ctx.r[sp] = base + ((t->ctx.r[sp] % n) & ~(uint64_t)3);
        int pc = ana_reg_pc(cpu);
        if (!(data[0] & 0x40) && c->module_count) {
            const struct ana_module *m = &c->modules[t->ctx.r[pc] % c->module_count];
            t->ctx.r[pc] = m->base + (m->size ? (t->ctx.r[pc] >> 16) % m->size : 0);
        }
        if (cpu == ANA_CPU_X86)
            for (int r = 0; r < ANA_NREGS; r++)
                t->ctx.r[r] &= 0xffffffff;
    }
    struct cm_err err = { 0 };
    if (ana__finish(c, &err) != CM_E_OK)
        goto out;
    if (ana_unwind_all(c, s, &err) != CM_E_OK) {
        if (!err.msg[0])
            abort();
        goto out;
    }
    if (t->frame_count > c->limits.max_frames)
        abort();
    volatile size_t sink = 0;
    for (size_t i = 0; i < t->frame_count; i++) {
        const struct ana_frame *f = &t->frames[i];
        if (f->module >= (int)c->module_count)
            abort();
        sink += touch(f->function) + touch(f->file) + f->line + (size_t)f->pc;
        for (size_t k = 0; k < f->inline_count; k++)
            sink += touch(f->inlines[k].function) + touch(f->inlines[k].file);
    }
    for (size_t i = 0; i < c->warning_count; i++)
        sink += touch(c->warnings[i]);
    (void)sink;
out:
    ana_crash_free(c);
    return 0;
}
