/* cm_embed.h -- files compiled into the binary by cmake/embed.cmake (signature rules, SQL
 * migrations), so an installed program needs no source tree. */
#ifndef TRIAGE_CM_EMBED_H
#define TRIAGE_CM_EMBED_H

#include <stddef.h> /* size_t */

struct cm_embedded_file {
    const char *name; /* file name without directories */
    const char *text; /* contents, NUL-terminated */
};

#endif
