/* ana_report.c -- the human-readable report, laid out like Breakpad's minidump_stackwalk so
 * responders used to it read it at a glance: system, crash reason, each thread's frames with
 * registers and how each frame was found, loaded modules; then our keys (signature, bucket). */
#include <inttypes.h>
#include <string.h>

#include "analyzer/ana.h"

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/'), *b = strrchr(path, '\\');
    if (b && (!s || b > s))
        s = b;
    return s ? s + 1 : path;
}

static void hexw(FILE *f, uint64_t v, unsigned w)
{
    if (w == 4)
        fprintf(f, "0x%08" PRIx64, v & 0xffffffffu);
    else
        fprintf(f, "0x%016" PRIx64, v);
}

static const char *found_by(enum ana_trust t)
{
    switch (t) {
    case ANA_TRUST_CONTEXT: return "given as instruction pointer in context";
    case ANA_TRUST_CFI: return "call frame info";
    case ANA_TRUST_FP: return "previous frame's frame pointer";
    case ANA_TRUST_CFI_SCAN: return "call frame info with scanning";
    case ANA_TRUST_SCAN: return "stack scanning";
    case ANA_TRUST_INLINE: return "inlining";
    default: return "unknown";
    }
}

/* Breakpad's register order and names for the report. */
static const char *const amd64_order[] = { "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp",
                                            "rsp", "r8",  "r9",  "r10", "r11", "r12", "r13",
                                            "r14", "r15", "rip", NULL };
static const char *const x86_order[] = { "eip", "esp", "ebp", "ebx", "esi",
                                         "edi", "eax", "ecx", "edx", "eflags", NULL };

static void print_regs(FILE *f, const struct ana_context *r, unsigned w)
{
    const char *const *order = r->cpu == ANA_CPU_AMD64 ? amd64_order
                               : r->cpu == ANA_CPU_X86 ? x86_order
                                                       : NULL;
    int per_line = w == 4 ? 4 : 2, on_line = 0;
    for (int k = 0; k < ANA_NREGS; k++) {
        const char *name = order ? order[k] : ana_reg_name(r->cpu, k);
        if (order && !name)
            break;
        if (!name)
            continue;
        int i = order ? ana_reg_by_name(r->cpu, name) : k;
        if (!ana_ctx_has(r, i))
            continue;
        const char *shown = strcmp(name, "eflags") == 0 ? "efl" : name;
        fprintf(f, on_line == 0 ? "    " : "   ");
        fprintf(f, "%3s = ", shown);
        hexw(f, r->r[i], w);
        if (++on_line == per_line) {
            fputc('\n', f);
            on_line = 0;
        }
    }
    if (on_line)
        fputc('\n', f);
}

static void print_frame(FILE *f, const struct ana_crash *c, const struct ana_frame *fr,
                        size_t index, unsigned w)
{
    const struct ana_module *m =
        fr->module >= 0 && (size_t)fr->module < c->module_count ? &c->modules[fr->module] : NULL;
    /* Inlined calls first, innermost first, as Breakpad lists them. */
    for (size_t i = 0; i < fr->inline_count; i++) {
        const struct ana_inline *in = &fr->inlines[i];
        fprintf(f, "%2zu  %s!%s", index, m ? ana_module_basename(m) : "?", in->function);
        if (in->file)
            fprintf(f, " [%s : %u]", base_name(in->file), in->line);
        fprintf(f, "\n    Found by: inlining\n");
    }
    fprintf(f, "%2zu  ", index);
    if (!m) {
        hexw(f, fr->pc, w);
    } else if (!fr->function) {
        fprintf(f, "%s + 0x%" PRIx64, ana_module_basename(m), fr->pc - m->base);
    } else if (fr->file && fr->line) {
        fprintf(f, "%s!%s [%s : %u + 0x%" PRIx64 "]", ana_module_basename(m), fr->function,
                base_name(fr->file), fr->line,
                fr->pc - (fr->line_base ? fr->line_base : fr->function_base));
    } else {
        fprintf(f, "%s!%s + 0x%" PRIx64, ana_module_basename(m), fr->function,
                fr->pc - fr->function_base);
    }
    fputc('\n', f);
    print_regs(f, &fr->regs, w);
    fprintf(f, "    Found by: %s\n", found_by(fr->trust));
}

static void print_thread(FILE *f, const struct ana_crash *c, size_t ti, unsigned w)
{
    const struct ana_thread *t = &c->threads[ti];
    bool crashed = c->crash_info.crashed && c->crash_info.crashing_thread == (int)ti;
    fprintf(f, "\nThread %zu%s", ti, crashed ? " (crashed)" : "");
    if (t->name)
        fprintf(f, " - %s", t->name);
    fputc('\n', f);
    if (t->frame_count) {
        for (size_t i = 0; i < t->frame_count; i++)
            print_frame(f, c, &t->frames[i], i, w);
        if (t->frames_truncated)
            fprintf(f, "    (walk stopped: frame limit or loop)\n");
        return;
    }
    int pc = ana_reg_pc(t->ctx.cpu);
    if (t->has_ctx && ana_ctx_has(&t->ctx, pc)) {
        struct ana_frame fr = { .pc = t->ctx.r[pc], .trust = ANA_TRUST_CONTEXT, .regs = t->ctx };
        fr.module = ana_module_at(c, fr.pc);
        print_frame(f, c, &fr, 0, w);
    }
}

void ana_report_human(FILE *f, const struct ana_crash *c, const struct ana_keys *keys)
{
    unsigned w = ana_cpu_ptr_bytes(c->system_info.cpu);
    const struct ana_system_info *s = &c->system_info;
    fprintf(f, "Operating system: %s\n", s->os ? s->os : "unknown");
    fprintf(f, "                  %s\n", s->os_ver ? s->os_ver : "");
    fprintf(f, "CPU: %s\n", ana_cpu_name(s->cpu));
    if (s->cpu_info)
        fprintf(f, "     %s\n", s->cpu_info);
    fprintf(f, "     %u CPU%s\n\n", s->cpu_count, s->cpu_count == 1 ? "" : "s");

    const struct ana_crash_info *ci = &c->crash_info;
    if (!ci->crashed) {
        fprintf(f, "No crash\n");
    } else {
        fprintf(f, "Crash reason:  %s\n", ci->type ? ci->type : "unknown");
        if (ci->has_address)
            fprintf(f, "Crash address: 0x%" PRIx64 "\n", ci->address);
        if (ci->assertion)
            fprintf(f, "Assertion: %s\n", ci->assertion);
        if (ci->param_count && !c->bugcheck.present) {
            fprintf(f, "Crash parameters:\n");
            for (uint32_t i = 0; i < ci->param_count && i < 15; i++)
                fprintf(f, "    value: 0x%016" PRIx64 "\n", ci->params[i]);
        }
    }
    if (c->process_create_time && c->dump_time >= c->process_create_time)
        fprintf(f, "Process uptime: %" PRIu64 " seconds\n",
                c->dump_time - c->process_create_time);
    if (c->bugcheck.present) {
        const struct ana_bugcheck *b = &c->bugcheck;
        fprintf(f, "Bugcheck: 0x%08x %s (", b->code, b->name ? b->name : "UNKNOWN");
        for (int i = 0; i < 4; i++)
            fprintf(f, "%s0x%016" PRIx64, i ? ", " : "", b->params[i]);
        fprintf(f, ")\n");
        if (b->blamed_module >= 0 && (size_t)b->blamed_module < c->module_count) {
            const struct ana_module *m = &c->modules[b->blamed_module];
            fprintf(f, "Blamed driver: %s", ana_module_basename(m));
            if (ci->has_address && ci->address - m->base < m->size)
                fprintf(f, " + 0x%" PRIx64, ci->address - m->base);
            fputc('\n', f);
        }
    }
    if (keys) {
        fprintf(f, "Signature: %s\n", keys->signature ? keys->signature : "");
        fprintf(f, "Bucket: %s\n", keys->bucket);
        fprintf(f, "Fault module: %s%s%s\n", keys->fault_module ? keys->fault_module : "?",
                keys->fault_module_version ? " " : "",
                keys->fault_module_version ? keys->fault_module_version : "");
        fprintf(f, "Fault point: %s\n", keys->fault_point ? keys->fault_point : "?");
    }

    /* The crashing thread first, then the rest; the thread that wrote the dump is left out, as
     * Breakpad's processor leaves it out. */
    int ct = ci->crashing_thread;
    if (ct >= 0 && (size_t)ct < c->thread_count)
        print_thread(f, c, (size_t)ct, w);
    for (size_t i = 0; i < c->thread_count; i++)
        if ((int)i != ct && !c->threads[i].dump_writer)
            print_thread(f, c, i, w);

    /* Modules by address, as Breakpad lists them; the missing-symbols warning only for modules
     * the crashing thread runs through, where it matters. */
    fprintf(f, "\nLoaded modules:\n");
    for (size_t k = 0; k < c->module_count; k++) {
        size_t i = c->module_order ? c->module_order[k] : k;
        const struct ana_module *m = &c->modules[i];
        bool on_stack = false;
        if (ct >= 0 && (size_t)ct < c->thread_count)
            for (size_t j = 0; j < c->threads[ct].frame_count && !on_stack; j++)
                on_stack = c->threads[ct].frames[j].module == (int)i;
        hexw(f, m->base, w);
        fprintf(f, " - ");
        hexw(f, m->base + m->size - (m->size ? 1 : 0), w);
        fprintf(f, "  %s  %s%s", ana_module_basename(m), m->version ? m->version : "???",
                (int)i == c->main_module ? "  (main)" : "");
        if (on_stack && !m->has_symbols)
            fprintf(f, "  (WARNING: No symbols, %s, %s)", m->debug_file ? m->debug_file : "",
                    m->debug_id ? m->debug_id : "");
        fputc('\n', f);
    }
    for (size_t i = 0; i < c->warning_count; i++)
        fprintf(f, "%sWarning: %s\n", i == 0 ? "\n" : "", c->warnings[i]);
}
