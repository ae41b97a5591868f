/* ana_minidump.c -- placeholder until the reader lands. */
#include "analyzer/ana_int.h"

enum cm_code ana__minidump_parse(struct ana_crash *c, struct cm_err *err)
{
    (void)c;
    return cm_fail(err, CM_E_UNSUPPORTED, "minidump reader not built yet");
}
