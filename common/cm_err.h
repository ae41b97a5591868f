/* cm_err.h -- the project's one error enum and message buffer. Codes are stored in the database
 * as failure reasons, so the list is append only. */
#ifndef TRIAGE_CM_ERR_H
#define TRIAGE_CM_ERR_H

#include <stdarg.h>

#define CM_ERRORS(X)                                                                               \
    X(OK, "success")                                                                               \
    X(NOMEM, "out of memory")                                                                      \
    X(IO, "i/o error")                                                                             \
    X(DB, "database error")                                                                        \
    X(TRUNCATED, "input ends before the structure does")                                           \
    X(CORRUPT, "input breaks its format")                                                          \
    X(LIMIT, "input exceeds a configured limit")                                                   \
    X(UNSUPPORTED, "valid but not handled")                                                        \
    X(NOTDUMP, "input is not a crash dump")                                                        \
    X(USAGE, "invalid arguments")                                                                  \
    X(NOTFOUND, "not found")                                                                       \
    X(BUSY, "temporarily unavailable")

enum cm_code {
#define X(name, text) CM_E_##name,
    CM_ERRORS(X)
#undef X
        CM_E__COUNT
};

struct cm_err {
    enum cm_code code;
    char msg[256];
};

/* Fills *err (unless err is NULL) and returns code. */
enum cm_code cm_fail(struct cm_err *err, enum cm_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
enum cm_code cm_vfail(struct cm_err *err, enum cm_code code, const char *fmt, va_list ap);

/* "TRUNCATED" and "input ends before the structure does"; "?" for an unknown code. */
const char *cm_code_name(enum cm_code code);
const char *cm_code_text(enum cm_code code);

#endif
