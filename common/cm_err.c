/* cm_err.c -- error codes and their names, generated from one list so they cannot drift. */
#include "common/cm_err.h"

#include <stdio.h>

enum cm_code cm_vfail(struct cm_err *err, enum cm_code code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

enum cm_code cm_fail(struct cm_err *err, enum cm_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cm_vfail(err, code, fmt, ap);
    va_end(ap);
    return code;
}

const char *cm_code_name(enum cm_code code)
{
    static const char *const names[] = {
#define X(name, text) #name,
        CM_ERRORS(X)
#undef X
    };
    return (unsigned)code < CM_E__COUNT ? names[code] : "?";
}

const char *cm_code_text(enum cm_code code)
{
    static const char *const texts[] = {
#define X(name, text) text,
        CM_ERRORS(X)
#undef X
    };
    return (unsigned)code < CM_E__COUNT ? texts[code] : "?";
}
