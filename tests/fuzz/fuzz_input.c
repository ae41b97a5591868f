/* fuzz_input.c -- libFuzzer target for the input layer: zstd and gzip decompression (by magic)
 * into a buffer capped at 1 MiB with a 1 MiB zstd window. Whatever the bytes: success within the
 * cap, or an error with a message; never a read or write out of bounds. Seeds: compressed
 * crashlab cores and a gzip-compressed minidump. */
#include <stdlib.h>

#include "analyzer/ana.h"
#include "common/cm_alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ana_limits lim;
    ana_limits_default(&lim);
    lim.max_dump_bytes = 1u << 20;
    lim.zstd_window_log_max = 20;
    uint8_t *out = NULL;
    size_t out_len = 0;
    struct cm_err err = { 0 };
    if (ana_decompress(data, size, &lim, &out, &out_len, &err) != CM_E_OK) {
        if (out || !err.msg[0])
            abort();
        return 0;
    }
    if (!out || out_len > lim.max_dump_bytes)
        abort();
    volatile uint8_t sink = out_len ? out[out_len - 1] : 0;
    (void)sink;
    (void)ana_sniff_kind(out, out_len);
    cm_free(out);
    return 0;
}
