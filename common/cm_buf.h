/* cm_buf.h -- a growable byte buffer with a hard cap (curl's dynbuf idea): appending past the cap
 * fails with CM_E_LIMIT instead of growing. Also used to build strings (always NUL-terminated). */
#ifndef TRIAGE_CM_BUF_H
#define TRIAGE_CM_BUF_H

#include <stddef.h> /* size_t */
#include <stdint.h>

#include "common/cm_err.h"

struct cm_buf {
    uint8_t *data; /* owned; NUL-terminated after every append */
    size_t len, cap_alloc;
    size_t max_bytes; /* hard cap on len; 0 means SIZE_MAX/2 */
};

void cm_buf_init(struct cm_buf *b, size_t max_bytes);
enum cm_code cm_buf_reserve(struct cm_buf *b, size_t extra, struct cm_err *err);
enum cm_code cm_buf_append(struct cm_buf *b, const void *p, size_t n, struct cm_err *err);
enum cm_code cm_buf_printf(struct cm_buf *b, struct cm_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Hands the bytes to the caller (free with cm_free) and resets b. */
uint8_t *cm_buf_steal(struct cm_buf *b, size_t *len);
void cm_buf_reset(struct cm_buf *b); /* len = 0, keeps memory */
void cm_buf_free(struct cm_buf *b);

#endif
