/* test_symbols.c -- the symbol layer against real symbol files: Breakpad .sym records (FUNC,
 * PUBLIC, line records, both INLINE formats, STACK CFI, STACK WIN, malformed files), the store's
 * Breakpad and GNU build-id layouts, the cache (same object on a hit, misses remembered, ids
 * checked, thread-safe loading), the per-dump caps, and ELF answers checked against what
 * eu-readelf and eu-addr2line say about the same files. Expected values come from the records
 * of the corpus files themselves, from Breakpad's reference output, or from the elfutils tools
 * run by the test. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analyzer/ana_int.h"
#include "analyzer/ana_sym.h"
#include "analyzer/ana_sym_int.h"
#include "common/cm_alloc.h"
#include "tests/th.h"

#define BP_SYMS "breakpad/testdata/symbols"
#define ELF_SYMS "elfcores/symbols"
#define TEST_APP_ID "5A9832E5287241C1838ED98914E9B7FF1"
#define KERNEL32_ID "BCE8785C57B44245A669896B6A19B9542"
#define LIBC_BUILD_ID "93ac61ec5a8eb1396f9fbd350e3169a558528a40"
#define QUOTA_O0_BUILD_ID "cc661b2d8d927409bfebd2ba31f92cad709ce18d"
#define QUOTA_O2G_BUILD_ID "967c1990203ed854a3319fe9168cf96da1d767e9"

static struct ana_bpsym *parse_rel(const char *rel)
{
    size_t n;
    uint8_t *p = th_read(th_corpus(rel), &n);
    char *text = cm_malloc(n + 1);
    memcpy(text, p, n);
    text[n] = 0;
    free(p);
    struct ana_bpsym *b = NULL;
    struct cm_err err = { 0 };
    assert_int_equal(ana__bpsym_parse(text, n, NULL, &b, &err), CM_E_OK);
    return b;
}

static void expect_fn(const struct ana_bpsym *b, uint64_t rva, const char *fn, const char *file,
                      uint32_t line)
{
    struct ana_symloc loc;
    bool found = ana__bpsym_lookup(b, rva, &loc);
    if (!fn) {
        if (found)
            fail_msg("0x%llx: expected no function, got %s", (unsigned long long)rva,
                     loc.function);
        return;
    }
    if (!found)
        fail_msg("0x%llx: expected %s, got nothing", (unsigned long long)rva, fn);
    assert_string_equal(loc.function, fn);
    if (file)
        assert_string_equal(loc.file, file);
    else
        assert_null(loc.file);
    assert_int_equal(loc.line, line);
}

/* module1.out / module2.out: the resolver fixtures' FUNC, line and PUBLIC records. */
static void breakpad_functions_lines_publics(void **state)
{
    struct ana_bpsym *b = parse_rel("breakpad/testdata/module1.out");
    expect_fn(b, 0x1000, "Function1_1", "file1_1.cc", 44);          /* FUNC m */
    expect_fn(b, 0x1005, "Function1_1", "file1_1.cc", 45);
    expect_fn(b, 0x100b, "Function1_1", "file1_1.cc", 46);
    expect_fn(b, 0x1100, "Function1_2", "file1_2.cc", 65);
    expect_fn(b, 0x1200, "Function1_3", NULL, 0);                   /* no line records */
    expect_fn(b, 0x2000, NULL, NULL, 0);                            /* zero size: ignored */
    expect_fn(b, 0x2900, "PublicSymbol", NULL, 0);                  /* PUBLIC m */
    expect_fn(b, 0x3000, "LargeFunction", "file1_3.cc", 4098359);
    expect_fn(b, 0x9fff, "LargeFunction", "file1_3.cc", 4098359);
    expect_fn(b, 0xa000, NULL, NULL, 0); /* past it; the public below is older than the FUNC */
    assert_int_equal(ana__bpsym_bad_records(b), 0);
    assert_string_equal(ana__bpsym_module_id(b), "111111111111111111111111111111111");
    struct ana_symloc loc;
    assert_true(ana__bpsym_lookup(b, 0x1100, &loc));
    assert_int_equal(loc.param_size, 4);
    assert_int_equal(loc.function_rva, 0x1100);
    assert_int_equal(loc.function_size, 8);
    assert_false(loc.is_public);
    ana__bpsym_free(b);

    b = parse_rel("breakpad/testdata/module2.out");
    expect_fn(b, 0x2000, "Function2_1", NULL, 0); /* its lines lie outside it */
    expect_fn(b, 0x2165, "Public2_1", NULL, 0);
    expect_fn(b, 0x2170, "Function2_2", "file2_2.cc", 10);
    expect_fn(b, 0x2177, "Function2_2", "file2_2.cc", 12);
    expect_fn(b, 0x2183, "Function2_2", "file2_2.cc", 21);
    expect_fn(b, 0x21a5, "Public2_2", NULL, 0);
    expect_fn(b, 0x1fff, NULL, NULL, 0);
    assert_true(ana__bpsym_lookup(b, 0x21a5, &loc));
    assert_true(loc.is_public);
    assert_int_equal(loc.function_rva, 0x21a0);
    ana__bpsym_free(b);
}

static void breakpad_stack_records(void **state)
{
    struct ana_bpsym *b = parse_rel("breakpad/testdata/module1.out");
    const char *rules[16];
    assert_int_equal(ana__bpsym_cfi_rules(b, 0x3d3f, rules, 16), 0);
    assert_int_equal(ana__bpsym_cfi_rules(b, 0x3d40, rules, 16), 1);
    assert_string_equal(rules[0], ".cfa: $esp 4 + .ra: .cfa 4 - ^");
    assert_int_equal(ana__bpsym_cfi_rules(b, 0x3d45, rules, 16), 3);
    assert_string_equal(rules[2], ".cfa: $ebp 8 + $ebp: .cfa 8 - ^");
    assert_int_equal(ana__bpsym_cfi_rules(b, 0x3dee, rules, 16), 6);
    assert_string_equal(rules[5], "$edi: .cfa 12 - ^");
    assert_int_equal(ana__bpsym_cfi_rules(b, 0x3def, rules, 16), 0); /* past the INIT range */
    assert_int_equal(ana__bpsym_cfi_rules(b, 0x3dee, rules, 5), 0);  /* more than max */

    struct ana_win_frame w;
    assert_true(ana__bpsym_win(b, 0x1000, &w));
    assert_int_equal(w.type, ANA_WIN_FRAME_DATA);
    assert_int_equal(w.rva, 0x1000);
    assert_int_equal(w.prolog_size, 1);
    assert_string_equal(w.program, "$eip 4 + ^ = $esp $ebp 8 + = $ebp $ebp ^ =");
    /* 1100+8 sits inside 1100+100: the innermost record answers */
    assert_true(ana__bpsym_win(b, 0x1104, &w));
    assert_int_equal(w.code_size, 8);
    assert_true(ana__bpsym_win(b, 0x1150, &w));
    assert_int_equal(w.code_size, 0x100);
    assert_false(ana__bpsym_win(b, 0x1250, &w));
    ana__bpsym_free(b);

    /* kernel32.sym: real FPO and FRAME_DATA records; FRAME_DATA is preferred */
    b = parse_rel(BP_SYMS "/kernel32.pdb/" KERNEL32_ID "/kernel32.sym");
    assert_true(ana__bpsym_win(b, 0x17830, &w)); /* STACK WIN 4 17826 35 ... and STACK WIN 0 */
    assert_int_equal(w.type, ANA_WIN_FRAME_DATA);
    assert_string_equal(w.program,
                        "$T2 $esp .cbLocals + .cbSavedRegs + = $T0 .raSearchStart = $eip $T0 ^ = "
                        "$esp $T0 4 + =");
    assert_int_equal(ana__bpsym_bad_records(b), 0); /* conflicting ranges are not malformed */
    ana__bpsym_free(b);
}

/* The two INLINE formats of linux_inline give the same chain with different call-site files. At
 * 0x15b90 the records say: FUNC main; INLINE level 0 (foo, called at line 42), level 1 (bar, 39),
 * level 2 (func, 32); the line record 15b8d+4 is line 9 of FILE 0. */
static void breakpad_inline_formats(void **state)
{
    const char *dir = BP_SYMS "/linux_inline/BBA6FA10B8AAB33D00000000000000000/";
    char rel[512];
    for (int fmt = 0; fmt < 2; fmt++) {
        snprintf(rel, sizeof rel, "%slinux_inline.%s.sym", dir, fmt ? "new" : "old");
        struct ana_bpsym *b = parse_rel(rel);
        assert_int_equal(ana__bpsym_bad_records(b), 0);
        struct ana_symloc loc;
        assert_true(ana__bpsym_lookup(b, 0x15b90, &loc));
        assert_string_equal(loc.function, "main");
        assert_int_equal(loc.inline_count, 3);
        assert_string_equal(loc.inlines[0].function, "func()");
        assert_string_equal(loc.inlines[0].file, "linux_inline.cpp");
        assert_int_equal(loc.inlines[0].line, 9);
        assert_string_equal(loc.inlines[1].function, "bar()");
        assert_int_equal(loc.inlines[1].line, 32);
        assert_string_equal(loc.inlines[2].function, "foo()");
        assert_int_equal(loc.inlines[2].line, 39);
        assert_int_equal(loc.line, 42);
        if (fmt == 0) { /* old: no call-site files; positions keep the line record's file */
            assert_string_equal(loc.inlines[1].file, "linux_inline.cpp");
            assert_string_equal(loc.inlines[2].file, "linux_inline.cpp");
            assert_string_equal(loc.file, "linux_inline.cpp");
        } else { /* new: FILE 3 c.cpp, FILE 2 b.cpp, FILE 1 a.cpp */
            assert_string_equal(loc.inlines[1].file, "c.cpp");
            assert_string_equal(loc.inlines[2].file, "b.cpp");
            assert_string_equal(loc.file, "a.cpp");
        }
        /* 0x15b50: only foo() (15b45+6b1) covers it; line 15b45+11 is line 36 */
        assert_true(ana__bpsym_lookup(b, 0x15b50, &loc));
        assert_int_equal(loc.inline_count, 1);
        assert_string_equal(loc.inlines[0].function, "foo()");
        assert_int_equal(loc.inlines[0].line, 36);
        assert_int_equal(loc.line, 42);
        /* 0x15b30: main's own first line, no inline */
        assert_true(ana__bpsym_lookup(b, 0x15b30, &loc));
        assert_int_equal(loc.inline_count, 0);
        assert_int_equal(loc.line, 41);
        ana__bpsym_free(b);
    }
}

/* Malformed files: records are skipped and counted, nothing else breaks. */
static void breakpad_malformed(void **state)
{
    struct ana_bpsym *b = parse_rel("breakpad/testdata/module3_bad.out");
    assert_int_equal(ana__bpsym_bad_records(b), 1); /* "FUNC 1000" */
    expect_fn(b, 0x1000, NULL, NULL, 0);
    ana__bpsym_free(b);
    b = parse_rel("breakpad/testdata/module4_bad.out");
    assert_int_equal(ana__bpsym_bad_records(b), 2); /* two line records without a FUNC */
    expect_fn(b, 0x1000, NULL, NULL, 0);
    ana__bpsym_free(b);

    static const char *const cases[] = {
        "",
        "\n\n\r\n",
        "FUNC\n",
        "FUNC zz 10 0 f\n",
        "FUNC 10 ffffffffffffffffff 0 f\n",
        "FUNC 10 10 0\n",
        "PUBLIC 10\n",
        "INLINE 0 1 2\n",
        "INLINE_ORIGIN x name\n",
        "STACK WIN 4 10 10\n",
        "STACK WIN 9 10 10 0 0 0 0 0 0 1 $eip\n",
        "STACK CFI INIT 10\n",
        "STACK CFI zz .cfa: 4\n",
        "STACK FOO 1 2\n",
        "FILE -3 a.c\n",
        "10 10 -1 0\n",
        "FUNC 10 10 0 f\n10 10 1 99999999999999999999\n",
        "FUNC 10 10 0 f\nINLINE 5 1 0 10 4\nINLINE 0 1 0 zz 4\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *t = cm_strdup(cases[i]);
        struct cm_err err;
        assert_int_equal(ana__bpsym_parse(t, strlen(cases[i]), NULL, &b, &err), CM_E_OK);
        struct ana_symloc loc;
        const char *rules[4];
        struct ana_win_frame w;
        for (uint64_t a = 0; a < 0x40; a += 3) {
            ana__bpsym_lookup(b, a, &loc);
            ana__bpsym_cfi_rules(b, a, rules, 4);
            ana__bpsym_win(b, a, &w);
        }
        if (i >= 2 && i != 16 && i != 17)
            assert_true(ana__bpsym_bad_records(b) >= 1);
        ana__bpsym_free(b);
    }
    /* an embedded NUL is replaced, as the resolver does, and counted */
    char raw[] = "FUNC 10 10 0 f\0g\n10 10 7 0\nFILE 0 x.c\n";
    char *t = cm_malloc(sizeof raw);
    memcpy(t, raw, sizeof raw);
    assert_int_equal(ana__bpsym_parse(t, sizeof raw - 1, NULL, &b, NULL), CM_E_OK);
    expect_fn(b, 0x12, "f_g", "x.c", 7);
    assert_int_equal(ana__bpsym_bad_records(b), 1);
    ana__bpsym_free(b);

    /* a record cap cuts and counts */
    struct ana_symstore_opts o;
    ana_symstore_opts_default(&o);
    o.max_records = 2;
    t = cm_strdup("FUNC 10 10 0 a\nFUNC 20 10 0 b\nFUNC 30 10 0 c\n");
    assert_int_equal(ana__bpsym_parse(t, strlen(t), &o, &b, NULL), CM_E_OK);
    expect_fn(b, 0x25, "b", NULL, 0);
    expect_fn(b, 0x35, NULL, NULL, 0);
    assert_int_equal(ana__bpsym_bad_records(b), 1);
    ana__bpsym_free(b);
}

static struct ana_symstore *store_of(const char *dir, const struct ana_symstore_opts *o)
{
    struct ana_symstore *s;
    struct cm_err err;
    const char *dirs[] = { dir };
    assert_int_equal(ana_symstore_new(dirs, 1, o, &s, &err), CM_E_OK);
    return s;
}

/* Breakpad layout: found by debug file and id; the lookups agree with Breakpad's own answers for
 * minidump2 (reference/minidump2.stackwalk.out: CrashFunction at test_app.cc:58 for eip
 * 0x0040429e, BaseProcessStart for the return address 0x7c816fd7). */
static void store_breakpad_layout(void **state)
{
    struct ana_symstore *s = store_of(th_corpus(BP_SYMS), NULL);
    struct ana_module app = { .base = 0x400000, .size = 0x2d000, .path = "c:\\test_app.exe",
                              .debug_file = "c:\\build\\test_app.pdb", .debug_id = TEST_APP_ID };
    struct ana_symfile *f, *f2;
    struct cm_err err;
    assert_int_equal(ana_symstore_get(s, &app, UINT64_MAX, &f, &err), CM_E_OK);
    assert_int_equal(ana_symfile_kind(f), ANA_SYMFILE_BREAKPAD);
    assert_non_null(strstr(ana_symfile_path(f), "test_app.pdb/" TEST_APP_ID "/test_app.sym"));
    struct ana_symloc loc;
    assert_true(ana_symfile_lookup(f, 0x40429e - 0x400000, &loc));
    assert_string_equal(loc.function, "`anonymous namespace'::CrashFunction");
    assert_string_equal(loc.file, "c:\\test_app.cc");
    assert_int_equal(loc.line, 58);
    assert_true(ana_symfile_lookup(f, 0x404200 - 1 - 0x400000, &loc));
    assert_string_equal(loc.function, "main");
    assert_int_equal(loc.line, 65);

    /* a hit is the same parsed object; ids match case-insensitively */
    struct ana_module app_lower = app;
    app_lower.debug_id = "5a9832e5287241c1838ed98914e9b7ff1";
    assert_int_equal(ana_symstore_get(s, &app_lower, UINT64_MAX, &f2, &err), CM_E_OK);
    assert_ptr_equal(f, f2);
    struct ana_symstore_stats st;
    ana_symstore_get_stats(s, &st);
    assert_int_equal(st.loads, 1);
    assert_int_equal(st.hits, 1);
    ana_symstore_release(s, f2);
    ana_symstore_release(s, f);

    struct ana_module k32 = { .base = 0x7c800000, .size = 0xf4000, .debug_file = "kernel32.pdb",
                              .debug_id = KERNEL32_ID };
    assert_int_equal(ana_symstore_get(s, &k32, UINT64_MAX, &f, &err), CM_E_OK);
    assert_true(ana_symfile_lookup(f, 0x7c816fd7 - 1 - 0x7c800000, &loc));
    assert_string_equal(loc.function, "BaseProcessStart");
    assert_true(loc.is_public);
    ana_symstore_release(s, f);

    /* misses are remembered */
    struct ana_module other = app;
    other.debug_id = "00000000000000000000000000000000A";
    assert_int_equal(ana_symstore_get(s, &other, UINT64_MAX, &f, &err), CM_E_NOTFOUND);
    assert_int_equal(ana_symstore_get(s, &other, UINT64_MAX, &f, &err), CM_E_NOTFOUND);
    ana_symstore_get_stats(s, &st);
    assert_int_equal(st.negative_hits, 1);
    assert_int_equal(st.loads, 2);
    ana_symstore_forget_missing(s);
    assert_int_equal(ana_symstore_get(s, &other, UINT64_MAX, &f, &err), CM_E_NOTFOUND);
    ana_symstore_get_stats(s, &st);
    assert_int_equal(st.negative_hits, 1);

    /* names and ids from a dump never leave the store: no lookup by file name alone, no path
     * tricks, no non-hex ids */
    static const char *const bad_files[] = { "..", ".", "", "a\nb", NULL };
    for (size_t i = 0; i < sizeof bad_files / sizeof *bad_files; i++) {
        struct ana_module m = app;
        m.debug_file = bad_files[i];
        assert_int_equal(ana_symstore_get(s, &m, UINT64_MAX, &f, &err), CM_E_NOTFOUND);
    }
    static const char *const bad_ids[] = { "../" TEST_APP_ID, TEST_APP_ID "/..", "", NULL,
                                           "5A9832E5287241C1838ED98914E9B7FF1 " };
    for (size_t i = 0; i < sizeof bad_ids / sizeof *bad_ids; i++) {
        struct ana_module m = app;
        m.debug_id = bad_ids[i];
        assert_int_equal(ana_symstore_get(s, &m, UINT64_MAX, &f, &err), CM_E_NOTFOUND);
    }
    /* a budget smaller than the file: refused, and not remembered as missing */
    struct ana_module k32b = k32;
    ana_symstore_free(s);
    s = store_of(th_corpus(BP_SYMS), NULL);
    assert_int_equal(ana_symstore_get(s, &k32b, 1000, &f, &err), CM_E_LIMIT);
    assert_int_equal(ana_symstore_get(s, &k32b, UINT64_MAX, &f, &err), CM_E_OK);
    ana_symstore_release(s, f);
    ana_symstore_free(s);
}

/* A file at the right place whose MODULE record names another id is rejected and remembered. */
static void store_checks_ids(void **state)
{
    char dir[1024], sub[1200], path[1400];
    snprintf(dir, sizeof dir, "%s", th_tmp("symstore-ids"));
    mkdir(dir, 0700);
    snprintf(sub, sizeof sub, "%s/module1.pdb", dir);
    mkdir(sub, 0700);
    snprintf(sub, sizeof sub, "%s/module1.pdb/22222222222222222222222222222222F", dir);
    mkdir(sub, 0700);
    snprintf(path, sizeof path, "%s/module1.sym", sub);
    size_t n;
    uint8_t *p = th_read(th_corpus("breakpad/testdata/module1.out"), &n);
    th_write(path, p, n);
    free(p);
    struct ana_symstore *s = store_of(dir, NULL);
    struct ana_module m = { .debug_file = "module1.pdb",
                            .debug_id = "22222222222222222222222222222222F" };
    struct ana_symfile *f;
    struct cm_err err;
    assert_int_equal(ana_symstore_get(s, &m, UINT64_MAX, &f, &err), CM_E_NOTFOUND);
    assert_non_null(strstr(err.msg, "111111111111111111111111111111111"));
    assert_int_equal(ana_symstore_get(s, &m, UINT64_MAX, &f, &err), CM_E_NOTFOUND);
    assert_non_null(strstr(err.msg, "111111111111111111111111111111111"));
    struct ana_symstore_stats st;
    ana_symstore_get_stats(s, &st);
    assert_int_equal(st.load_failures, 1);
    assert_int_equal(st.negative_hits, 1);
    ana_symstore_free(s);
}

struct race {
    struct ana_symstore *s;
    struct ana_symfile *got;
};

static void *race_get(void *arg)
{
    struct race *r = arg;
    struct ana_module m = { .debug_file = "kernel32.pdb", .debug_id = KERNEL32_ID };
    struct cm_err err;
    if (ana_symstore_get(r->s, &m, UINT64_MAX, &r->got, &err) != CM_E_OK)
        r->got = NULL;
    return NULL;
}

/* Worker threads asking for one file at once: one parse, one object. */
static void store_is_thread_safe(void **state)
{
    struct ana_symstore *s = store_of(th_corpus(BP_SYMS), NULL);
    pthread_t t[8];
    struct race r[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (struct race){ .s = s };
        pthread_create(&t[i], NULL, race_get, &r[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 8; i++) {
        assert_non_null(r[i].got);
        assert_ptr_equal(r[i].got, r[0].got);
        ana_symstore_release(s, r[i].got);
    }
    struct ana_symstore_stats st;
    ana_symstore_get_stats(s, &st);
    assert_int_equal(st.loads, 1);
    assert_int_equal(st.hits, 7);
    ana_symstore_free(s);
}

/* The cache drops least recently used, unreferenced files past its byte cap. */
static void store_evicts(void **state)
{
    struct ana_symstore_opts o;
    ana_symstore_opts_default(&o);
    o.max_cache_bytes = 1; /* nothing unreferenced stays */
    struct ana_symstore *s = store_of(th_corpus(BP_SYMS), &o);
    struct ana_module m = { .debug_file = "kernel32.pdb", .debug_id = KERNEL32_ID };
    struct ana_symfile *f;
    assert_int_equal(ana_symstore_get(s, &m, UINT64_MAX, &f, NULL), CM_E_OK);
    struct ana_symstore_stats st;
    ana_symstore_get_stats(s, &st);
    assert_int_equal(st.cached_files, 1); /* held: kept */
    ana_symstore_release(s, f);
    ana_symstore_get_stats(s, &st);
    assert_int_equal(st.cached_files, 0);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(ana_symstore_get(s, &m, UINT64_MAX, &f, NULL), CM_E_OK);
    ana_symstore_release(s, f);
    ana_symstore_get_stats(s, &st);
    assert_int_equal(st.loads, 2);
    ana_symstore_free(s);
}

static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

/* Value and size of a symbol, as eu-readelf -s prints them. */
static void readelf_sym(const char *file, const char *name, uint64_t *value, uint64_t *size)
{
    char *argv[] = { "/usr/bin/eu-readelf", "-s", (char *)file, NULL };
    char *out = NULL;
    assert_int_equal(th_run(argv, &out, NULL, 60), 0);
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned long long v, z;
        char type[32], bind[32], vis[32], ndx[32], sym[512];
        if (sscanf(line, " %*u: %llx %llu %31s %31s %31s %31s %511s", &v, &z, type, bind, vis,
                   ndx, sym) == 7 &&
            strcmp(sym, name) == 0 && strcmp(type, "FUNC") == 0) {
            *value = v;
            *size = z;
            free(out);
            return;
        }
    }
    free(out);
    fail_msg("eu-readelf -s %s: no FUNC %s", file, name);
}

/* eu-addr2line -i: the positions of the inline chain at addr, innermost first; returns count. */
static size_t addr2line(const char *file, uint64_t addr, char pos[][512], size_t max)
{
    char a[32];
    snprintf(a, sizeof a, "0x%llx", (unsigned long long)addr);
    char *argv[] = { "/usr/bin/eu-addr2line", "-i", "-e", (char *)file, a, NULL };
    char *out = NULL;
    assert_int_equal(th_run(argv, &out, NULL, 60), 0);
    size_t n = 0;
    for (char *line = strtok(out, "\n"); line && n < max; line = strtok(NULL, "\n"))
        snprintf(pos[n++], 512, "%s", line);
    free(out);
    return n;
}

/* want is eu-addr2line's "FILE:LINE:COLUMN", where FILE may carry the compilation folder in
 * front of a relative name (eu-stack prints the name as the line table has it, as we do). */
static void expect_pos(const char *file, uint32_t line, const char *want)
{
    char got[600];
    snprintf(got, sizeof got, "%s:%u", file ? file : "?", line);
    const char *w = want;
    for (;;) {
        size_t n = strlen(got);
        if (strncmp(w, got, n) == 0 && (w[n] == 0 || w[n] == ':'))
            return;
        const char *slash = strchr(w, '/');
        if (!slash || file[0] == '/')
            break;
        w = slash + 1;
    }
    fail_msg("position %s, eu-addr2line says %s", got, want);
}

static struct ana_symfile *elf_get(struct ana_symstore *s, const char *hex,
                                   struct ana_module *m, uint8_t *buf)
{
    m->build_id_len = unhex(hex, buf);
    m->build_id = buf;
    struct ana_symfile *f;
    struct cm_err err;
    if (ana_symstore_get(s, m, UINT64_MAX, &f, &err) != CM_E_OK)
        fail_msg("build id %s: %s", hex, err.msg);
    assert_int_equal(ana_symfile_kind(f), ANA_SYMFILE_ELF);
    return f;
}

/* Build-id layout: libc.so.6 and programs; names as eu-readelf lists them (the preferred binding
 * when two share an address: raise, not its weak alias gsignal); lines and inline chains as
 * eu-addr2line prints them for an -O2 -g build. */
static void store_build_id_layout(void **state)
{
    char dbg[2048];
    struct ana_symstore *s = store_of(th_corpus(ELF_SYMS), NULL);
    uint8_t id[64];
    struct ana_symloc loc;
    uint64_t v, z;

    struct ana_module libc = { .base = 0x7f0000000000, .size = 0x200000, .path = "/lib/libc.so.6" };
    struct ana_symfile *f = elf_get(s, LIBC_BUILD_ID, &libc, id);
    snprintf(dbg, sizeof dbg, "%s/.build-id/93/%s.debug", th_corpus(ELF_SYMS),
             &LIBC_BUILD_ID[2]);
    assert_string_equal(ana_symfile_path(f), dbg);
    static const char *const names[] = { "__strlen_evex", "raise", "abort" };
    for (size_t i = 0; i < 3; i++) {
        readelf_sym(dbg, names[i], &v, &z);
        assert_true(ana_symfile_lookup(f, v + z / 2, &loc)); /* libc's first PT_LOAD is at 0 */
        assert_string_equal(loc.function, names[i]);
        assert_int_equal(loc.function_rva, v);
        assert_int_equal(loc.function_size, z);
    }
    /* libc has DWARF: the line of raise's body as eu-addr2line gives it */
    readelf_sym(dbg, "raise", &v, &z);
    char pos[ANA_SYM_MAX_INLINES + 1][512];
    size_t np = addr2line(dbg, v + 0x11, pos, ANA_SYM_MAX_INLINES + 1);
    assert_true(ana_symfile_lookup(f, v + 0x11, &loc));
    assert_int_equal(np, loc.inline_count + 1);
    expect_pos(loc.file, loc.line, pos[np - 1]);
    ana_symstore_release(s, f);

    /* a program without DWARF (O0-fp): names from .symtab */
    struct ana_module quota = { .base = 0x555555554000, .size = 0x5000, .path = "/opt/quota" };
    f = elf_get(s, QUOTA_O0_BUILD_ID, &quota, id);
    snprintf(dbg, sizeof dbg, "%s/.build-id/cc/%s.debug", th_corpus(ELF_SYMS),
             &QUOTA_O0_BUILD_ID[2]);
    static const char *const qnames[] = { "account_check", "account_refund", "main", "_start" };
    for (size_t i = 0; i < 4; i++) {
        readelf_sym(dbg, qnames[i], &v, &z);
        assert_true(ana_symfile_lookup(f, v + (z ? z - 1 : 0), &loc));
        assert_string_equal(loc.function, qnames[i]);
        assert_null(loc.file);
        assert_int_equal(loc.inline_count, 0);
    }
    ana_symstore_release(s, f);

    /* O2-g: every address of apply_op.constprop.0 gets the inline chain eu-addr2line prints
     * when inline frames are asked for; by default (as eu-stack shows frames) none, and the
     * line is the innermost one */
    struct ana_symstore_opts o;
    ana_symstore_opts_default(&o);
    assert_false(o.dwarf_inlines);
    o.dwarf_inlines = true;
    struct ana_symstore *si = store_of(th_corpus(ELF_SYMS), &o);
    struct ana_symfile *fi = elf_get(si, QUOTA_O2G_BUILD_ID, &quota, id);
    f = elf_get(s, QUOTA_O2G_BUILD_ID, &quota, id);
    snprintf(dbg, sizeof dbg, "%s/.build-id/96/%s.debug", th_corpus(ELF_SYMS),
             &QUOTA_O2G_BUILD_ID[2]);
    readelf_sym(dbg, "apply_op.constprop.0", &v, &z);
    size_t with_inlines = 0;
    for (uint64_t a = v; a < v + z; a += 7) {
        np = addr2line(dbg, a, pos, ANA_SYM_MAX_INLINES + 1);
        assert_true(ana_symfile_lookup(fi, a, &loc));
        assert_string_equal(loc.function, "apply_op.constprop.0");
        assert_int_equal(np, loc.inline_count + 1);
        for (size_t k = 0; k < loc.inline_count; k++)
            expect_pos(loc.inlines[k].file, loc.inlines[k].line, pos[k]);
        expect_pos(loc.file, loc.line, pos[np - 1]);
        with_inlines += loc.inline_count > 0;
        assert_true(ana_symfile_lookup(f, a, &loc));
        assert_int_equal(loc.inline_count, 0);
        expect_pos(loc.file, loc.line, pos[0]);
    }
    assert_true(with_inlines > 0); /* account_refund / account_check are inlined there */
    ana_symstore_release(s, f);
    ana_symstore_release(si, fi);
    ana_symstore_free(si);

    /* unknown build id: remembered miss */
    struct ana_module none = { .base = 0x1000, .size = 0x1000 };
    uint8_t zero[20] = { 0 };
    none.build_id = zero;
    none.build_id_len = 20;
    assert_int_equal(ana_symstore_get(s, &none, UINT64_MAX, &f, NULL), CM_E_NOTFOUND);
    ana_symstore_free(s);
}

/* An ELF file filed under a build id it does not carry is not used. */
static void store_checks_build_ids(void **state)
{
    char dir[1024], sub[1200], path[1400];
    snprintf(dir, sizeof dir, "%s", th_tmp("symstore-bid"));
    mkdir(dir, 0700);
    snprintf(sub, sizeof sub, "%s/.build-id", dir);
    mkdir(sub, 0700);
    snprintf(sub, sizeof sub, "%s/.build-id/ab", dir);
    mkdir(sub, 0700);
    snprintf(path, sizeof path, "%s/cdef0123456789abcdef0123456789abcdef01.debug", sub);
    char src[1024];
    snprintf(src, sizeof src, "%s/.build-id/cc/%s.debug", th_corpus(ELF_SYMS),
             &QUOTA_O0_BUILD_ID[2]);
    size_t n;
    uint8_t *p = th_read(src, &n);
    th_write(path, p, n);
    free(p);
    struct ana_symstore *s = store_of(dir, NULL);
    uint8_t id[64];
    struct ana_module m = { .base = 0x1000, .size = 0x1000 };
    m.build_id_len = unhex("abcdef0123456789abcdef0123456789abcdef01", id);
    m.build_id = id;
    struct ana_symfile *f;
    struct cm_err err;
    assert_int_equal(ana_symstore_get(s, &m, UINT64_MAX, &f, &err), CM_E_NOTFOUND);
    assert_non_null(strstr(err.msg, "build id"));
    struct ana_symstore_stats st;
    ana_symstore_get_stats(s, &st);
    assert_int_equal(st.load_failures, 1);
    ana_symstore_free(s);
}

/* A job records per module whether symbols were found, copies strings into the crash, and stops
 * at its module cap with a warning. */
static void job_caps_and_records(void **state)
{
    struct ana_crash *c = cm_calloc(1, sizeof *c);
    ana_limits_default(&c->limits);
    c->module_count = 3;
    c->modules = ana__calloc(c, 3, sizeof *c->modules);
    c->modules[0] = (struct ana_module){ .base = 0x400000, .size = 0x2d000, .path = "test_app.exe",
                                         .debug_file = "test_app.pdb", .debug_id = TEST_APP_ID };
    c->modules[1] = (struct ana_module){ .base = 0x7c800000, .size = 0xf4000,
                                         .path = "kernel32.dll", .debug_file = "kernel32.pdb",
                                         .debug_id = KERNEL32_ID };
    c->modules[2] = (struct ana_module){ .base = 0x7c900000, .size = 0xb0000, .path = "ntdll.dll",
                                         .debug_file = "ntdll.pdb",
                                         .debug_id = "36515FB5D04345E491F672FA2E2878C02" };
    struct cm_err err;
    assert_int_equal(ana__finish(c, &err), CM_E_OK);

    struct ana_symstore_opts o;
    ana_symstore_opts_default(&o);
    o.max_job_modules = 2;
    struct ana_symstore *s = store_of(th_corpus(BP_SYMS), &o);
    struct ana_symjob *j;
    assert_int_equal(ana_symjob_new(s, c, &j, &err), CM_E_OK);
    struct ana_frame fr = { 0 };
    assert_int_equal(ana_symjob_symbolize(j, 0x40429e, &fr, &err), CM_E_OK);
    assert_int_equal(fr.module, 0);
    assert_string_equal(fr.function, "`anonymous namespace'::CrashFunction");
    assert_int_equal(fr.line, 58);
    assert_true(c->modules[0].has_symbols);
    assert_non_null(strstr(c->modules[0].symbols_source, "test_app.sym"));
    assert_int_equal(ana_symjob_symbolize(j, 0x7c900100, &fr, &err), CM_E_OK); /* no file */
    assert_int_equal(fr.module, 2);
    assert_null(fr.function);
    assert_false(c->modules[2].has_symbols);
    assert_int_equal(c->warning_count, 0);
    assert_int_equal(ana_symjob_symbolize(j, 0x7c816fd6, &fr, &err), CM_E_OK); /* over the cap */
    assert_null(fr.function);
    assert_false(c->modules[1].has_symbols);
    assert_int_equal(c->warning_count, 1);
    assert_non_null(strstr(c->warnings[0], "module cap"));
    assert_int_equal(ana_symjob_symbolize(j, 0x1000, &fr, &err), CM_E_OK); /* outside modules */
    assert_int_equal(fr.module, -1);
    ana_symjob_free(j);

    /* byte budget: kernel32.sym has 616532 bytes, test_app.sym 818134 */
    o.max_job_modules = 512;
    o.max_job_bytes = 700000;
    ana_symstore_free(s);
    s = store_of(th_corpus(BP_SYMS), &o);
    for (size_t i = 0; i < 3; i++)
        c->modules[i].has_symbols = false;
    c->warning_count = 0;
    assert_int_equal(ana_symjob_new(s, c, &j, &err), CM_E_OK);
    assert_int_equal(ana_symjob_symbolize(j, 0x7c816fd6, &fr, &err), CM_E_OK);
    assert_string_equal(fr.function, "BaseProcessStart");
    assert_int_equal(ana_symjob_symbolize(j, 0x40429e, &fr, &err), CM_E_OK);
    assert_null(fr.function);
    assert_false(c->modules[0].has_symbols);
    assert_int_equal(c->warning_count, 1);
    assert_non_null(strstr(c->warnings[0], "budget"));
    ana_symjob_free(j);
    ana_symstore_free(s);
    ana_crash_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(breakpad_functions_lines_publics),
        cmocka_unit_test(breakpad_stack_records),
        cmocka_unit_test(breakpad_inline_formats),
        cmocka_unit_test(breakpad_malformed),
        cmocka_unit_test(store_breakpad_layout),
        cmocka_unit_test(store_checks_ids),
        cmocka_unit_test(store_is_thread_safe),
        cmocka_unit_test(store_evicts),
        cmocka_unit_test(store_build_id_layout),
        cmocka_unit_test(store_checks_build_ids),
        cmocka_unit_test(job_caps_and_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
