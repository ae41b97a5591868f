/* ing_client_hint.c -- the endpoint's half of progressive collection (docs/progressive-collection.md):
 * the fault key of a dump, computed with the analyzer's own reader code exactly as
 * analyzer/ana_pipeline.c computes it before symbolizing (ana_load, a walk without symbols,
 * ana_fault_key_get), so the key an endpoint sends and the key the service learned from the
 * dumps it analyzed agree; and the CrashHint that carries it with the crash's metadata. */
#include <string.h>

#include "analyzer/ana.h"
#include "analyzer/ana_sym.h" /* ana_unwind_all */
#include "common/cm_alloc.h"
#include "ingest/ing_int.h"
#include "proto/proto.h"

enum cm_code ing__client_hint_body(const uint8_t *dump, size_t n, size_t max_dump_bytes,
                                   const struct proto_meta *meta, int fmt,
                                   uint64_t sent_bytes, struct cm_buf *out, struct cm_err *err)
{
    struct ana_limits lim;
    ana_limits_default(&lim);
    if (max_dump_bytes)
        lim.max_dump_bytes = max_dump_bytes;
    struct ana_crash *c = NULL;
    struct proto_module_offset frames[ANA_FAULT_KEY_FRAMES];
    enum cm_code rc = ana_load(dump, n, &lim, &c, err);
    if (!rc)
        rc = ana_unwind_all(c, NULL, err);
    if (rc)
        goto out;
    struct ana_fault_key k;
    ana_fault_key_get(c, &k);
    struct proto_hint h = { .meta = *meta, .dump_size_bytes = sent_bytes };
    h.fault_key = (struct proto_fault_key){
        .module = k.module,
        .module_version = k.module_version,
        .module_build_id = k.module_build_id,
        .offset = k.offset,
        .exception_code = k.exception_code,
        .exception_subcode = k.exception_subcode,
        .frames = frames,
        .frame_count = k.frame_count,
        .address_class = k.address_class,
    };
    for (size_t i = 0; i < k.frame_count && i < ANA_FAULT_KEY_FRAMES; i++)
        frames[i] = (struct proto_module_offset){ k.frames[i].module, k.frames[i].offset };
    h.dump_format = (enum proto_dump_format)fmt;
    cm_buf_init(out, 1u << 20);
    rc = proto_encode_hint(&h, out, err);
out:
    ana_crash_free(c);
    return rc;
}
