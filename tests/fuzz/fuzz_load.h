/* fuzz_load.h -- what every dump fuzz target does with one input: load it through ana_load with
 * fuzzing limits, then touch everything the model points at (strings, regions, module lookups,
 * memory at each thread's stack pointer) so a dangling or out-of-range pointer shows up under
 * ASan. A failed load must come with a message; an empty one aborts (a finding). */
#ifndef TRIAGE_FUZZ_LOAD_H
#define TRIAGE_FUZZ_LOAD_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana.h"

static inline size_t fuzz_touch_str(const char *s) { return s ? strlen(s) : 0; }

static inline void fuzz_touch(const struct ana_crash *c)
{
    volatile size_t sink = 0;
    sink += fuzz_touch_str(c->system_info.os) + fuzz_touch_str(c->system_info.os_ver) +
            fuzz_touch_str(c->system_info.cpu_info) + fuzz_touch_str(c->crash_info.type) +
            fuzz_touch_str(c->crash_info.assertion) + fuzz_touch_str(c->process_name) +
            fuzz_touch_str(c->linux_maps) + fuzz_touch_str(c->linux_cmdline);
    for (size_t i = 0; i < c->module_count; i++) {
        const struct ana_module *m = &c->modules[i];
        sink += fuzz_touch_str(m->path) + fuzz_touch_str(m->debug_file) +
                fuzz_touch_str(m->debug_id) + fuzz_touch_str(m->code_id) +
                fuzz_touch_str(m->version) + fuzz_touch_str(ana_module_basename(m));
        if (m->build_id_len)
            sink += m->build_id[m->build_id_len - 1];
        sink += (size_t)ana_module_at(c, m->base);
    }
    for (size_t i = 0; i < c->thread_count; i++) {
        const struct ana_thread *t = &c->threads[i];
        sink += fuzz_touch_str(t->name);
        int sp = ana_reg_sp(t->ctx.cpu);
        uint64_t v;
        if (t->has_ctx && ana_ctx_has(&t->ctx, sp) && ana_mem_ptr(c, t->ctx.r[sp], &v))
            sink += (size_t)v;
    }
    for (size_t i = 0; i < c->region_count; i++) {
        const struct ana_region *r = &c->regions[i];
        sink += r->data[0] + r->data[r->size - 1];
    }
    for (size_t i = 0; i < c->mapping_count; i++)
        sink += fuzz_touch_str(c->mappings[i].name) + (ana_mapping_at(c, c->mappings[i].base) != 0);
    for (size_t i = 0; i < c->annotation_count; i++)
        sink += fuzz_touch_str(c->annotations[i].key) + fuzz_touch_str(c->annotations[i].value) +
                fuzz_touch_str(c->annotations[i].module);
    for (size_t i = 0; i < c->warning_count; i++)
        sink += fuzz_touch_str(c->warnings[i]);
    (void)sink;
}

static inline int fuzz_load(const uint8_t *data, size_t size)
{
    struct ana_limits lim;
    ana_limits_default(&lim);
    lim.max_dump_bytes = 16u << 20;
    lim.zstd_window_log_max = 20;
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    if (ana_load(data, size, &lim, &c, &err) != CM_E_OK) {
        if (c || !err.msg[0])
            abort(); /* a failure must leave no crash and say what went wrong */
        return 0;
    }
    if (c->thread_count > lim.max_threads || c->module_count > lim.max_modules)
        abort(); /* limits are the reader's promise */
    fuzz_touch(c);
    ana_crash_free(c);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
