/* ana_faultkey.c -- the fault key: the faulting module with its version and build id, the offset
 * of the fault inside it, the exception code, and a few return addresses as module+offset, all
 * computable on the endpoint without symbols. The service learns which bucket each key lands in
 * from the dumps it analyzes, so a later crash with a known key can be counted from a small hint
 * instead of a full upload (Windows Error Reporting's idea). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "analyzer/ana_int.h"
#include "common/cm_buf.h"

static const char *build_id_of(const struct ana_module *m)
{
    if (m->debug_id)
        return m->debug_id;
    return m->code_id ? m->code_id : "";
}

void ana_fault_key_get(const struct ana_crash *c, struct ana_fault_key *k)
{
    memset(k, 0, sizeof *k);
    k->module = k->module_version = k->module_build_id = "";
    const char *cls = ana__address_class(c);
    k->address_class = cls ? cls : "";
    const struct ana_crash_info *ci = &c->crash_info;
    if (c->bugcheck.present)
        k->exception_code = c->bugcheck.code;
    else if (ci->has_signal)
        k->exception_code = (uint32_t)ci->signo, k->exception_subcode = (uint32_t)ci->si_code;
    else {
        k->exception_code = ci->exception_code;
        k->exception_subcode = ci->param_count ? (uint32_t)ci->params[0] : 0;
    }
    int ti = ci->crashing_thread;
    if (ti < 0 || (size_t)ti >= c->thread_count)
        return;
    const struct ana_thread *t = &c->threads[ti];
    uint64_t pc = 0;
    int pcr = ana_reg_pc(t->ctx.cpu);
    if (t->frame_count)
        pc = t->frames[0].pc;
    else if (t->has_ctx && ana_ctx_has(&t->ctx, pcr))
        pc = t->ctx.r[pcr];
    else
        return;
    int mi = ana_module_at(c, pc);
    if (mi >= 0) {
        const struct ana_module *m = &c->modules[mi];
        k->module = ana_module_basename(m);
        k->module_version = m->version ? m->version : "";
        k->module_build_id = build_id_of(m);
        k->offset = pc - m->base;
    } else {
        k->offset = pc;
    }
    for (size_t i = 1; i < t->frame_count && k->frame_count < ANA_FAULT_KEY_FRAMES; i++) {
        const struct ana_frame *f = &t->frames[i];
        if (f->trust == ANA_TRUST_SCAN || f->trust == ANA_TRUST_CFI_SCAN)
            break; /* scanned frames differ from crash to crash: never part of a key */
        int fm = ana_module_at(c, f->pc);
        k->frames[k->frame_count].module = fm >= 0 ? ana_module_basename(&c->modules[fm]) : "";
        k->frames[k->frame_count].offset = fm >= 0 ? f->pc - c->modules[fm].base : f->pc;
        k->frame_count++;
    }
}

char *ana_fault_key_format(const struct ana_fault_key *k)
{
    struct cm_buf b;
    cm_buf_init(&b, 4096);
    /* '|' and ',' never occur in the numbers; names are written as given, with those two
     * characters replaced, so the text stays parseable. */
    enum cm_code rc = CM_E_OK;
    const char *names[3] = { k->module, k->module_version, k->module_build_id };
    for (int i = 0; i < 3 && !rc; i++) {
        for (const char *p = names[i] ? names[i] : ""; *p && !rc; p++)
            rc = cm_buf_append(&b, *p == '|' || *p == ',' ? "_" : p, 1, NULL);
        rc = rc ? rc : cm_buf_append(&b, "|", 1, NULL);
    }
    if (!rc)
        rc = cm_buf_printf(&b, NULL, "0x%" PRIx64 "|0x%08x|0x%x|", k->offset, k->exception_code,
                           k->exception_subcode);
    for (size_t i = 0; i < k->frame_count && i < ANA_FAULT_KEY_FRAMES && !rc; i++) {
        for (const char *p = k->frames[i].module ? k->frames[i].module : ""; *p && !rc; p++)
            rc = cm_buf_append(&b, *p == '|' || *p == ',' ? "_" : p, 1, NULL);
        rc = rc ? rc : cm_buf_printf(&b, NULL, "+0x%" PRIx64 "%s", k->frames[i].offset,
                                     i + 1 < k->frame_count ? "," : "");
    }
    /* The address class last, and only when there is one, so keys of other crashes read as
     * they always did. */
    if (!rc && k->address_class && *k->address_class) {
        rc = cm_buf_append(&b, "|", 1, NULL);
        for (const char *p = k->address_class; *p && !rc; p++)
            rc = cm_buf_append(&b, *p == '|' || *p == ',' ? "_" : p, 1, NULL);
    }
    if (rc) {
        cm_buf_free(&b);
        return NULL;
    }
    return (char *)cm_buf_steal(&b, NULL);
}
