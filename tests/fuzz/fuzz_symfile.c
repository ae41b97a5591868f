/* fuzz_symfile.c -- libFuzzer target for the Breakpad .sym parser (seeds: the corpus's .sym
 * files and the resolver fixtures): parse any bytes with small record caps, then look up
 * addresses taken from the input and the records' own neighbourhoods, and read every string a
 * lookup returns so a dangling pointer shows up under ASan. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana_sym.h"
#include "analyzer/ana_sym_int.h"
#include "common/cm_alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t touch(const char *s) { return s ? strlen(s) : 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (8u << 20))
        return 0;
    char *text = cm_malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    struct ana_symstore_opts o;
    ana_symstore_opts_default(&o);
    o.max_records = 1u << 16;
    struct ana_bpsym *b = NULL;
    struct cm_err err = { 0 };
    if (ana__bpsym_parse(text, size, &o, &b, &err) != CM_E_OK) {
        if (!err.msg[0])
            abort();
        return 0;
    }
    volatile size_t sink = 0;
    uint64_t probes[64];
    size_t np = 0;
    for (size_t i = 0; i + 8 <= size && np < 48; i += 1 + size / 48) {
        uint64_t v;
        memcpy(&v, data + i, 8);
        probes[np++] = v;
        probes[np++] = v & 0xfffff;
    }
    static const uint64_t fixed[] = { 0, 1, 0x1000, 0x15b90, 0x3d45, UINT64_MAX };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed && np < 64; i++)
        probes[np++] = fixed[i];
    for (size_t i = 0; i < np; i++) {
        struct ana_symloc loc;
        if (ana__bpsym_lookup(b, probes[i], &loc)) {
            sink += touch(loc.function) + touch(loc.file) + loc.line;
            if (loc.inline_count > ANA_SYM_MAX_INLINES)
                abort();
            for (size_t k = 0; k < loc.inline_count; k++)
                sink += touch(loc.inlines[k].function) + touch(loc.inlines[k].file);
        }
        const char *rules[8];
        size_t nr = ana__bpsym_cfi_rules(b, probes[i], rules, 8);
        if (nr > 8)
            abort();
        for (size_t k = 0; k < nr; k++)
            sink += touch(rules[k]);
        struct ana_win_frame w;
        if (ana__bpsym_win(b, probes[i], &w))
            sink += touch(w.program) + w.param_size;
    }
    sink += touch(ana__bpsym_module_id(b)) + ana__bpsym_bad_records(b);
    (void)sink;
    ana__bpsym_free(b);
    return 0;
}
