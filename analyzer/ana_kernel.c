/* ana_kernel.c -- placeholder until the reader lands. */
#include "analyzer/ana_int.h"

enum cm_code ana__kernel_parse(struct ana_crash *c, struct cm_err *err)
{
    (void)c;
    return cm_fail(err, CM_E_UNSUPPORTED, "kernel reader not built yet");
}
