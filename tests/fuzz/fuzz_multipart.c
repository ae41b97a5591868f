/* fuzz_multipart.c -- libFuzzer target for the collector's multipart/form-data parser
 * (ingest/ing_multipart.c). Input: the first line is the Content-Type header value, the rest is
 * the body (with no newline, a fixed Content-Type with boundary "b" is used). Whatever the
 * bytes: a reason token, or parts that lie inside the body and within every limit; never a read
 * or write out of bounds. Seeds: tests/fixtures/upload/. */
#include <stdlib.h>
#include <string.h>

#include "common/cm_arena.h"
#include "ingest/ing_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char fixed[] = "multipart/form-data; boundary=b";
    char ct[512];
    const uint8_t *nl = memchr(data, '\n', size < sizeof ct ? size : sizeof ct);
    const uint8_t *body = data;
    size_t len = size;
    if (nl) {
        size_t n = (size_t)(nl - data);
        memcpy(ct, data, n);
        ct[n] = 0;
        body = nl + 1;
        len = size - n - 1;
    } else {
        memcpy(ct, fixed, sizeof fixed);
    }
    struct cm_arena a = { 0 };
    const char *boundary = NULL;
    if (ing__multipart_boundary(ct, &a, &boundary) == ING_R_NONE) {
        if (!boundary || strlen(boundary) == 0 || strlen(boundary) > 70)
            abort();
        struct ing_mp_limits lim = { .max_parts = 32, .max_part_bytes = 1u << 20,
                                     .max_part_header_bytes = 16384, .max_preamble_bytes = 1024,
                                     .max_name_bytes = 256 };
        struct ing_part *parts = NULL;
        size_t count = 0;
        struct cm_err err = { 0 };
        enum ing_reason r = ing__multipart_parse(body, len, boundary, &lim, &a, &parts, &count,
                                                 &err);
        if (r == ING_R_NONE) {
            if (count > lim.max_parts)
                abort();
            for (size_t i = 0; i < count; i++) {
                const struct ing_part *p = &parts[i];
                if (p->data < body || p->len > len || (size_t)(p->data - body) > len - p->len)
                    abort();
                if (p->len > lim.max_part_bytes)
                    abort();
                if (p->name && strlen(p->name) > lim.max_name_bytes)
                    abort();
                volatile uint8_t sink = p->len ? p->data[p->len - 1] : 0;
                (void)sink;
            }
        } else if (!err.msg[0]) {
            abort(); /* every refusal says why */
        }
    }
    cm_arena_free(&a);
    return 0;
}
