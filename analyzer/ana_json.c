/* ana_json.c -- the processed-crash JSON: the schema Socorro and rust-minidump's
 * minidump-stackwalk print (status, crash_info, system_info, modules, threads, crashing_thread),
 * with hexstrings zero-padded to the cpu's pointer width, plus our keys (signature, bucket,
 * fault module, fault point, rules version, decision trail) and the kernel bugcheck. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana.h"
#include "common/cm_alloc.h"

static json_t *hex_w(uint64_t v, unsigned width_bytes)
{
    char b[24];
    if (width_bytes == 4)
        snprintf(b, sizeof b, "0x%08llx", (unsigned long long)(v & 0xffffffffu));
    else
        snprintf(b, sizeof b, "0x%016llx", (unsigned long long)v);
    return json_string(b);
}


/* json_string rejects invalid UTF-8; dumps may hold anything, so fall back to an escaped copy. */
static json_t *safe_str(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *tmp = malloc(n * 4 + 1);
    if (!tmp)
        return json_null();
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x80)
            tmp[o++] = (char)ch;
        else
            o += (size_t)sprintf(tmp + o, "\\x%02x", ch);
    }
    tmp[o] = 0;
    j = json_string(tmp);
    free(tmp);
    return j ? j : json_null();
}

struct ctx {
    const struct ana_crash *c;
    unsigned w;     /* pointer width in bytes */
    unsigned flags; /* ANA_JSON_* */
};

static json_t *module_json(const struct ctx *x, const struct ana_module *m, bool unloaded)
{
    json_t *o = json_object();
    json_object_set_new(o, "base_addr", hex_w(m->base, x->w));
    json_object_set_new(o, "end_addr", hex_w(m->base + m->size, x->w));
    json_object_set_new(o, "filename", safe_str(ana_module_basename(m)));
    json_object_set_new(o, "code_id", safe_str(m->code_id));
    if (!unloaded) {
        json_object_set_new(o, "debug_file", safe_str(m->debug_file));
        json_object_set_new(o, "debug_id", safe_str(m->debug_id));
        json_object_set_new(o, "version", safe_str(m->version));
        json_object_set_new(o, "loaded_symbols", json_boolean(m->has_symbols));
        json_object_set_new(o, "missing_symbols", json_boolean(!m->has_symbols));
        json_object_set_new(o, "path", safe_str(m->path));
        if (m->timestamp)
            json_object_set_new(o, "timestamp", hex_w(m->timestamp, 4));
    }
    return o;
}

static json_t *registers_json(const struct ctx *x, const struct ana_context *r)
{
    json_t *o = json_object();
    for (int i = 0; i < ANA_NREGS; i++) {
        const char *name = ana_reg_name(r->cpu, i);
        if (name && ana_ctx_has(r, i))
            json_object_set_new(o, name, hex_w(r->r[i], x->w));
    }
    return o;
}

static json_t *frame_json(const struct ctx *x, const struct ana_frame *f, size_t index)
{
    const struct ana_crash *c = x->c;
    json_t *o = json_object();
    json_object_set_new(o, "frame", json_integer((json_int_t)index));
    json_object_set_new(o, "offset", hex_w(f->pc, x->w));
    json_object_set_new(o, "trust", json_string(ana_trust_name(f->trust)));
    const struct ana_module *m =
        f->module >= 0 && (size_t)f->module < c->module_count ? &c->modules[f->module] : NULL;
    if (m) {
        json_object_set_new(o, "module", safe_str(ana_module_basename(m)));
        json_object_set_new(o, "module_offset", hex_w(f->pc - m->base, x->w));
        json_object_set_new(o, "missing_symbols", json_boolean(!m->has_symbols));
    } else {
        /* Outside every module the address is its own offset, as Breakpad's processor prints. */
        json_object_set_new(o, "module", json_null());
        json_object_set_new(o, "module_offset", hex_w(f->pc, x->w));
    }
    if (f->function) {
        json_object_set_new(o, "function", safe_str(f->function));
        json_object_set_new(o, "function_offset", hex_w(f->pc - f->function_base, x->w));
    } else {
        json_object_set_new(o, "function", json_null());
    }
    /* Without DWARF inlines listed, the frame's position is the innermost one, as debuggers
     * print a frame; with them, the frame's own position is the call site of the outermost. */
    bool list_dwarf = x->flags & ANA_JSON_DWARF_INLINES;
    const char *file = f->file;
    uint32_t line = f->line;
    size_t listed = 0;
    for (size_t i = 0; i < f->inline_count; i++)
        listed += list_dwarf || !f->inlines[i].from_dwarf;
    if (!list_dwarf && f->inline_count && f->inlines[0].from_dwarf) {
        file = f->inlines[0].file;
        line = f->inlines[0].line;
    }
    json_object_set_new(o, "file", safe_str(file));
    json_object_set_new(o, "line", line ? json_integer(line) : json_null());
    if (listed) {
        json_t *inl = json_array();
        for (size_t i = 0; i < f->inline_count; i++) {
            if (!list_dwarf && f->inlines[i].from_dwarf)
                continue;
            json_t *io = json_object();
            json_object_set_new(io, "function", safe_str(f->inlines[i].function));
            json_object_set_new(io, "file", safe_str(f->inlines[i].file));
            json_object_set_new(io, "line", f->inlines[i].line ? json_integer(f->inlines[i].line)
                                                               : json_null());
            json_array_append_new(inl, io);
        }
        json_object_set_new(o, "inlines", inl);
    }
    return o;
}

/* A thread the unwinder has not walked still shows its context frame, so the output is useful
 * from the readers alone. */
static size_t thread_frames(const struct ana_crash *c, const struct ana_thread *t,
                            const struct ana_frame **frames, struct ana_frame *tmp)
{
    if (t->frame_count) {
        *frames = t->frames;
        return t->frame_count;
    }
    int pc = ana_reg_pc(t->ctx.cpu);
    if (!t->has_ctx || !ana_ctx_has(&t->ctx, pc))
        return 0;
    memset(tmp, 0, sizeof *tmp);
    tmp->pc = t->ctx.r[pc];
    tmp->trust = ANA_TRUST_CONTEXT;
    tmp->module = ana_module_at(c, tmp->pc);
    tmp->regs = t->ctx;
    *frames = tmp;
    return 1;
}

static json_t *thread_json(const struct ctx *x, const struct ana_thread *t)
{
    struct ana_frame tmp;
    const struct ana_frame *frames = NULL;
    size_t n = thread_frames(x->c, t, &frames, &tmp);
    json_t *o = json_object();
    json_object_set_new(o, "thread_id", json_integer(t->tid));
    json_object_set_new(o, "thread_name", safe_str(t->name));
    json_object_set_new(o, "frame_count", json_integer((json_int_t)n));
    if (t->dump_writer)
        json_object_set_new(o, "dump_writer", json_true());
    if (t->frames_truncated)
        json_object_set_new(o, "frames_truncated", json_true());
    json_t *fa = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(fa, frame_json(x, &frames[i], i));
    json_object_set_new(o, "frames", fa);
    return o;
}

static json_t *system_info_json(const struct ana_crash *c)
{
    const struct ana_system_info *s = &c->system_info;
    json_t *o = json_object();
    json_object_set_new(o, "os", safe_str(s->os));
    json_object_set_new(o, "os_ver", safe_str(s->os_ver));
    json_object_set_new(o, "cpu_arch", json_string(ana_cpu_name(s->cpu)));
    json_object_set_new(o, "cpu_info", safe_str(s->cpu_info));
    json_object_set_new(o, "cpu_count", json_integer(s->cpu_count));
    return o;
}

static json_t *crash_info_json(const struct ctx *x)
{
    const struct ana_crash_info *ci = &x->c->crash_info;
    json_t *o = json_object();
    json_object_set_new(o, "type", ci->crashed ? safe_str(ci->type) : json_null());
    json_object_set_new(o, "address", ci->crashed && ci->has_address ? hex_w(ci->address, x->w)
                                                                     : json_null());
    json_object_set_new(o, "crashing_thread",
                        ci->crashing_thread >= 0 ? json_integer(ci->crashing_thread)
                                                 : json_null());
    json_object_set_new(o, "assertion", safe_str(ci->assertion));
    return o;
}

static json_t *bugcheck_json(const struct ana_crash *c)
{
    const struct ana_bugcheck *b = &c->bugcheck;
    json_t *o = json_object();
    json_object_set_new(o, "code", hex_w(b->code, 4));
    json_object_set_new(o, "name", safe_str(b->name));
    json_t *p = json_array();
    for (int i = 0; i < 4; i++)
        json_array_append_new(p, hex_w(b->params[i], 8));
    json_object_set_new(o, "parameters", p);
    json_object_set_new(o, "dump_type", safe_str(b->dump_type));
    if (b->blamed_module >= 0 && (size_t)b->blamed_module < c->module_count) {
        const struct ana_module *m = &c->modules[b->blamed_module];
        json_object_set_new(o, "blamed_driver", safe_str(ana_module_basename(m)));
        if (c->crash_info.has_address && c->crash_info.address - m->base < m->size)
            json_object_set_new(o, "blamed_offset", hex_w(c->crash_info.address - m->base, 8));
    } else {
        json_object_set_new(o, "blamed_driver", json_null());
    }
    return o;
}

static json_t *keys_json(json_t *o, const struct ana_crash *c, const struct ana_keys *k)
{
    json_object_set_new(o, "signature", safe_str(k->signature));
    json_object_set_new(o, "bucket", json_string(k->bucket));
    json_object_set_new(o, "fault_module", safe_str(k->fault_module));
    json_object_set_new(o, "fault_module_version", safe_str(k->fault_module_version));
    json_object_set_new(o, "fault_point", safe_str(k->fault_point));
    json_object_set_new(o, "stack_hash", json_string(k->stack_hash));
    json_object_set_new(o, "rules_version", safe_str(k->rules_version));
    json_object_set_new(o, "fault_key", safe_str(k->fault_key));
    json_t *trail = json_array();
    for (size_t i = 0; i < k->trail_count; i++) {
        const struct ana_sig_step *s = &k->trail[i];
        json_t *so = json_object();
        json_object_set_new(so, "frame", s->frame >= 0 ? json_integer(s->frame) : json_null());
        json_object_set_new(so, "text", safe_str(s->text));
        json_object_set_new(so, "action", safe_str(s->action));
        json_object_set_new(so, "rule", safe_str(s->rule));
        json_array_append_new(trail, so);
    }
    json_object_set_new(o, "signature_trail", trail);
    /* Modules without symbols, so "missing symbols" can be listed per bucket. */
    json_t *missing = json_array();
    for (size_t i = 0; i < c->module_count; i++)
        if (!c->modules[i].has_symbols && c->modules[i].debug_id)
            json_array_append_new(missing, safe_str(ana_module_basename(&c->modules[i])));
    json_object_set_new(o, "modules_missing_symbols", missing);
    return o;
}

static json_t *crash_json(const struct ana_crash *c, const struct ana_keys *keys, unsigned flags)
{
    struct ctx x = { c, ana_cpu_ptr_bytes(c->system_info.cpu), flags };
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string("OK"));
    static const char *const formats[] = { "", "minidump", "elfcore", "kernel" };
    json_object_set_new(o, "format", json_string(formats[c->format <= 3 ? c->format : 0]));
    json_object_set_new(o, "system_info", system_info_json(c));
    json_object_set_new(o, "crash_info", crash_info_json(&x));
    if (c->bugcheck.present)
        json_object_set_new(o, "bugcheck", bugcheck_json(c));
    json_object_set_new(o, "main_module", c->main_module >= 0 ? json_integer(c->main_module)
                                                               : json_null());
    json_t *mods = json_array();
    for (size_t i = 0; i < c->module_count; i++)
        json_array_append_new(mods, module_json(&x, &c->modules[i], false));
    json_object_set_new(o, "modules", mods);
    json_t *unl = json_array();
    for (size_t i = 0; i < c->unloaded_module_count; i++)
        json_array_append_new(unl, module_json(&x, &c->unloaded_modules[i], true));
    json_object_set_new(o, "unloaded_modules", unl);
    json_object_set_new(o, "thread_count", json_integer((json_int_t)c->thread_count));
    json_t *threads = json_array();
    for (size_t i = 0; i < c->thread_count; i++)
        json_array_append_new(threads, thread_json(&x, &c->threads[i]));
    json_object_set_new(o, "threads", threads);
    int ct = c->crash_info.crashing_thread;
    if (ct >= 0 && (size_t)ct < c->thread_count) {
        const struct ana_thread *t = &c->threads[ct];
        json_t *cto = json_object();
        json_object_set_new(cto, "threads_index", json_integer(ct));
        json_object_set_new(cto, "thread_name", safe_str(t->name));
        const struct ana_context *regs = t->frame_count ? &t->frames[0].regs : &t->ctx;
        json_object_set_new(cto, "registers", registers_json(&x, regs));
        json_t *tj = thread_json(&x, t);
        json_object_set(cto, "frames", json_object_get(tj, "frames"));
        json_decref(tj);
        json_object_set_new(o, "crashing_thread", cto);
    } else {
        json_object_set_new(o, "crashing_thread", json_null());
    }
    if (c->pid)
        json_object_set_new(o, "pid", json_integer(c->pid));
    if (c->annotations) {
        json_t *an = json_array();
        for (size_t i = 0; i < c->annotation_count; i++) {
            json_t *a = json_object();
            json_object_set_new(a, "key", safe_str(c->annotations[i].key));
            json_object_set_new(a, "value", safe_str(c->annotations[i].value));
            if (c->annotations[i].module)
                json_object_set_new(a, "module", safe_str(c->annotations[i].module));
            json_array_append_new(an, a);
        }
        json_object_set_new(o, "annotations", an);
    }
    if (keys)
        keys_json(o, c, keys);
    json_t *w = json_array();
    for (size_t i = 0; i < c->warning_count; i++)
        json_array_append_new(w, safe_str(c->warnings[i]));
    json_object_set_new(o, "warnings", w);
    return o;
}

char *ana_json_text(const struct ana_crash *c, const struct ana_keys *keys, unsigned flags)
{
    bool pretty = flags & ANA_JSON_PRETTY;
    json_t *o = crash_json(c, keys, flags);
    if (!o)
        return NULL;
    char *s = json_dumps(o, (pretty ? JSON_INDENT(2) : JSON_COMPACT) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s)
        return NULL;
    char *out = cm_strdup(s); /* hand out memory of our allocator, freed with cm_free */
    free(s);
    return out;
}
