/* ana_pipeline.c -- the offline analysis of one crash, as the worker daemon and `triagectl
 * stackwalk` run it: a walk without symbols for the fault key (what an endpoint can compute), then
 * the real walk with symbols, then the signature and the keys above and below it. */
#include "analyzer/ana_int.h"
#include "analyzer/ana_sym.h"
#include "common/cm_alloc.h"

enum cm_code ana_analyze(struct ana_crash *c, struct ana_symstore *store,
                         const struct ana_rules *rules, struct ana_keys *keys,
                         struct cm_err *err)
{
    enum cm_code rc = ana_unwind_all(c, NULL, err);
    if (rc)
        return rc;
    struct ana_fault_key fk;
    ana_fault_key_get(c, &fk);
    char *text = ana_fault_key_format(&fk);
    if (!text)
        return cm_fail(err, CM_E_NOMEM, "cannot format the fault key");
    const char *fault_key = ana__strndup(c, text, 4096);
    cm_free(text);
    if (store && (rc = ana_unwind_all(c, store, err)))
        return rc;
    if ((rc = ana_signature(c, rules ? rules : ana_rules_builtin(), keys, err)))
        return rc;
    keys->fault_key = fault_key;
    return CM_E_OK;
}
