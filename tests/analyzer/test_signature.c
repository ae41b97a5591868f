/* test_signature.c -- frame normalization, the rules file, and signatures built from hand-made
 * crash models: skip/prefix/stop, scanned frames, recursion, reason classes, sentinels, frames
 * outside every module, unsymbolized runtime modules, kernel blamed drivers. */
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana_int.h"
#include "common/cm_alloc.h"
#include "tests/th.h"

/* ---- normalization ---- */

static void normalizes_function_names(void **state)
{
    static const struct { const char *in, *out; } cases[] = {
        { "foo(int, char const*)", "foo" },
        { "ns::Klass::method(int) const", "ns::Klass::method" },
        { "std::vector<int, std::allocator<int> >::at(unsigned long)", "std::vector<T>::at" },
        { "`anonymous namespace'::CrashFunction", "(anonymous namespace)::CrashFunction" },
        { "(anonymous namespace)::CrashFunction()", "(anonymous namespace)::CrashFunction" },
        { "account_check.part.0", "account_check" },
        { "__assert_fail_base.cold", "__assert_fail_base" },
        { "apply_op.constprop.0", "apply_op" },
        { "helper.isra.0.cold", "helper" },
        { "__libc_start_main@@GLIBC_2.34", "__libc_start_main" },
        { "memcpy@GLIBC_2.2.5", "memcpy" },
        { "core::ptr::drop_in_place::h0123456789abcdef", "core::ptr::drop_in_place" },
        { "Foo::operator()(int)", "Foo::operator()" },
        { "operator<<", "operator<<" },
        { "  spaced   name  ", "spaced name" },
        { "main", "main" },
        { "", "" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[256];
        ana__normalize_function(cases[i].in, out, sizeof out);
        if (strcmp(out, cases[i].out) != 0)
            fail_msg("normalize(\"%s\") = \"%s\", want \"%s\"", cases[i].in, out, cases[i].out);
    }
    char tiny[4];
    ana__normalize_function("longname", tiny, sizeof tiny);
    assert_string_equal(tiny, "lon");
}

/* ---- rules ---- */

static void builtin_rules_parse(void **state)
{
    const struct ana_rules *r = ana_rules_builtin();
    assert_non_null(r);
    assert_true(strlen(ana_rules_version(r)) > 0);
    const char *why;
    assert_int_equal(ana__rules_classify(r, "libc.so.6", "abort", &why), ANA_RULE_IRRELEVANT);
    assert_int_equal(ana__rules_classify(r, "libc.so.6", "strlen", &why), ANA_RULE_PREFIX);
    assert_int_equal(ana__rules_classify(r, "quota", "account_check", &why), ANA_RULE_NONE);
    assert_int_equal(ana__rules_classify(r, "libc.so.6", NULL, &why), ANA_RULE_RUNTIME_MODULE);
    assert_int_equal(ana__rules_classify(r, "quota", NULL, &why), ANA_RULE_NONE);
    assert_string_equal(ana__rules_alias(r, "libc.so.6", "__strlen_evex"), "strlen");
    assert_string_equal(ana__rules_alias(r, "libc.so.6", "__strlen_avx2"), "strlen");
    assert_null(ana__rules_alias(r, "libc.so.6", "strlen"));
    /* module-qualified rules only match that module */
    assert_int_equal(ana__rules_classify(r, "KERNELBASE.dll", "RaiseException", &why),
                     ANA_RULE_IRRELEVANT);
}

static void bad_rules_name_their_line(void **state)
{
    struct ana_rules *r;
    struct cm_err err = { 0 };
    assert_int_equal(ana_rules_parse("version 1\nprefix strlen\nbogus x\n", &r, &err),
                     CM_E_CORRUPT);
    assert_non_null(strstr(err.msg, "line 3"));
    assert_int_equal(ana_rules_parse("prefix strlen\n", &r, &err), CM_E_CORRUPT);
    assert_non_null(strstr(err.msg, "version"));
    assert_int_equal(ana_rules_parse("version 1\nalias onlyone\n", &r, &err), CM_E_CORRUPT);
    assert_int_equal(ana_rules_parse("version 7 # comment\n\n  prefix  a*b  \n", &r, &err),
                     CM_E_OK);
    assert_string_equal(ana_rules_version(r), "7");
    const char *why;
    assert_int_equal(ana__rules_classify(r, "m", "aXXb", &why), ANA_RULE_PREFIX);
    ana_rules_free(r);
}

/* ---- hand-made crashes ---- */

struct fr {
    int module;           /* index, -1 none */
    const char *function; /* NULL: no symbol */
    enum ana_trust trust;
    uint64_t offset;      /* from the module base */
    const char *inline_fn; /* one inlined call inside this frame, or NULL */
};

static struct ana_crash *make_crash(const char *const *modules, size_t nmod,
                                    const struct fr *frames, size_t n)
{
    struct ana_crash *c = calloc(1, sizeof *c);
    ana_limits_default(&c->limits);
    c->system_info.cpu = ANA_CPU_AMD64;
    c->module_count = nmod;
    c->modules = ana__calloc(c, nmod ? nmod : 1, sizeof *c->modules);
    for (size_t i = 0; i < nmod; i++) {
        c->modules[i].path = modules[i];
        c->modules[i].base = 0x10000000u * (i + 1);
        c->modules[i].size = 0x100000;
        c->modules[i].code_id = ana__printf(c, "buildid%zu", i);
    }
    c->thread_count = 1;
    c->threads = ana__calloc(c, 1, sizeof *c->threads);
    c->threads[0].frames = ana__calloc(c, n, sizeof(struct ana_frame));
    c->threads[0].frame_count = n;
    for (size_t i = 0; i < n; i++) {
        struct ana_frame *f = &c->threads[0].frames[i];
        f->module = frames[i].module;
        f->function = frames[i].function;
        f->trust = frames[i].trust;
        f->pc = frames[i].module >= 0 ? c->modules[frames[i].module].base + frames[i].offset
                                      : 0xdead0000u + frames[i].offset;
        if (frames[i].inline_fn) {
            f->inlines = ana__calloc(c, 1, sizeof *f->inlines);
            f->inlines[0].function = frames[i].inline_fn;
            f->inline_count = 1;
        }
    }
    c->crash_info.crashed = true;
    c->crash_info.crashing_thread = 0;
    c->main_module = -1;
    c->bugcheck.blamed_module = -1;
    struct cm_err err;
    assert_int_equal(ana__finish(c, &err), CM_E_OK);
    return c;
}

static void set_signal(struct ana_crash *c, int signo, bool has_addr, uint64_t addr)
{
    c->crash_info.has_signal = true;
    c->crash_info.signo = signo;
    c->crash_info.has_address = has_addr;
    c->crash_info.address = addr;
    c->crash_info.type = ana__linux_reason(c, signo, 1);
}

static struct ana_keys sign(struct ana_crash *c)
{
    struct ana_keys k;
    struct cm_err err;
    assert_int_equal(ana_signature(c, ana_rules_builtin(), &k, &err), CM_E_OK);
    return k;
}

static const char *const glibc_prog[] = { "/usr/lib/x86_64-linux-gnu/libc.so.6", "/srv/quota" };

static void assert_path_skips_to_program_frame(void **state)
{
    const struct fr f[] = {
        { 0, "__pthread_kill_implementation", ANA_TRUST_CONTEXT, 0x8eeec, NULL },
        { 0, "raise", ANA_TRUST_CFI, 0x3ffb2, NULL },
        { 0, "abort", ANA_TRUST_CFI, 0x2a472, NULL },
        { 0, "__assert_fail_base.cold", ANA_TRUST_CFI, 0x2a395, NULL },
        { 0, "__assert_fail", ANA_TRUST_CFI, 0x38ec2, NULL },
        { 1, "account_check.part.0", ANA_TRUST_CFI, 0x1483, NULL },
        { 1, "apply_op.constprop.0", ANA_TRUST_CFI, 0x1686, NULL },
        { 1, "main", ANA_TRUST_CFI, 0x1295, NULL },
    };
    struct ana_crash *c = make_crash(glibc_prog, 2, f, 8);
    set_signal(c, 6, false, 0);
    struct ana_keys k = sign(c);
    assert_string_equal(k.signature, "SIGABRT | quota!account_check");
    assert_string_equal(k.fault_point, "quota!account_check");
    assert_string_equal(k.fault_module, "quota");
    assert_string_equal(k.fault_module_version, "buildid1");
    assert_int_equal(strlen(k.bucket), 32);
    /* the trail explains every frame up to the relevant one */
    assert_true(k.trail_count >= 7);
    assert_string_equal(k.trail[1].action, "skip");
    assert_non_null(strstr(k.trail[1].rule, "__pthread_kill_implementation"));
    assert_string_equal(k.trail[6].action, "keep");
    ana_crash_free(c);
}

static void prefix_frames_kept_and_looked_past(void **state)
{
    const char *const mods[] = { "/lib/libc.so.6", "/opt/bin/tagfmt" };
    const struct fr f[] = {
        { 0, "__strlen_evex", ANA_TRUST_CONTEXT, 0x100, NULL },
        { 0, "__vfprintf_internal", ANA_TRUST_CFI, 0x200, NULL },
        { 0, "printf", ANA_TRUST_CFI, 0x300, NULL },
        { 1, "print_row", ANA_TRUST_CFI, 0x400, NULL },
        { 1, "main", ANA_TRUST_CFI, 0x500, NULL },
    };
    struct ana_crash *c = make_crash(mods, 2, f, 5);
    set_signal(c, 11, true, 0x175);
    struct ana_keys k = sign(c);
    assert_string_equal(k.signature, "SIGSEGV NEAR_NULL | libc.so.6!strlen | "
                                     "libc.so.6!vfprintf | libc.so.6!printf | tagfmt!print_row");
    assert_string_equal(k.fault_point, "tagfmt!print_row");
    /* a host whose CPU picked another strlen lands in the same bucket */
    struct ana_crash *c2 = make_crash(mods, 2, f, 5);
    c2->threads[0].frames[0].function = "__strlen_avx2";
    set_signal(c2, 11, true, 0x1b4);
    struct ana_keys k2 = sign(c2);
    assert_string_equal(k.bucket, k2.bucket);
    ana_crash_free(c);
    ana_crash_free(c2);
}

static void reason_classes(void **state)
{
    const char *const mods[] = { "/opt/bin/prog" };
    const struct fr f[] = { { 0, "crash_here", ANA_TRUST_CONTEXT, 0x10, NULL } };
    static const struct { uint64_t addr; bool has; const char *want; } cases[] = {
        { 0, true, "SIGSEGV NULL | prog!crash_here" },
        { 0xfff0, true, "SIGSEGV NEAR_NULL | prog!crash_here" },
        { 0x10000, true, "SIGSEGV WILD | prog!crash_here" },
        { 0x6b6b6b6b6b6b6b6bull, true, "SIGSEGV WILD | prog!crash_here" },
        { 0, false, "SIGSEGV | prog!crash_here" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct ana_crash *c = make_crash(mods, 1, f, 1);
        set_signal(c, 11, cases[i].has, cases[i].addr);
        struct ana_keys k = sign(c);
        assert_string_equal(k.signature, cases[i].want);
        ana_crash_free(c);
    }
    struct ana_crash *c = make_crash(mods, 1, f, 1);
    c->crash_info.type = "EXCEPTION_ACCESS_VIOLATION_WRITE";
    c->crash_info.has_address = true;
    c->crash_info.address = 0x45;
    struct ana_keys k = sign(c);
    assert_string_equal(k.signature, "EXCEPTION_ACCESS_VIOLATION_WRITE NEAR_NULL | prog!crash_here");
    ana_crash_free(c);
    c = make_crash(mods, 1, f, 1);
    set_signal(c, 8, true, 0x401f27); /* SIGFPE: the address is the instruction, no class */
    k = sign(c);
    assert_string_equal(k.signature, "SIGFPE | prog!crash_here");
    ana_crash_free(c);
}

static void scanned_frames_never_enter(void **state)
{
    const char *const mods[] = { "/lib/libc.so.6", "/opt/bin/prog" };
    const struct fr f[] = {
        { 0, "abort", ANA_TRUST_CONTEXT, 0x100, NULL },
        { 1, "looks_relevant", ANA_TRUST_SCAN, 0x200, NULL },
        { 1, "real_caller", ANA_TRUST_CFI, 0x300, NULL },
    };
    struct ana_crash *c = make_crash(mods, 2, f, 3);
    set_signal(c, 6, false, 0);
    struct ana_keys k = sign(c);
    assert_string_equal(k.signature, "SIGABRT | prog!real_caller");
    /* and the stack hash ignores them too: changing the scanned frame keeps it */
    struct ana_crash *c2 = make_crash(mods, 2, f, 3);
    c2->threads[0].frames[1].function = "other_noise";
    set_signal(c2, 6, false, 0);
    struct ana_keys k2 = sign(c2);
    assert_string_equal(k.stack_hash, k2.stack_hash);
    ana_crash_free(c);
    ana_crash_free(c2);
}

static void recursion_collapses(void **state)
{
    const char *const mods[] = { "/lib/libc.so.6", "/opt/bin/prog" };
    const struct fr f[] = {
        { 0, "msort_with_tmp.part.0", ANA_TRUST_CONTEXT, 0x100, NULL },
        { 0, "msort_with_tmp.part.0", ANA_TRUST_CFI, 0x180, NULL },
        { 0, "msort_with_tmp", ANA_TRUST_CFI, 0x200, NULL },
        { 0, "__qsort_r", ANA_TRUST_CFI, 0x300, NULL },
        { 1, "sort_records", ANA_TRUST_CFI, 0x400, NULL },
    };
    struct ana_crash *c = make_crash(mods, 2, f, 5);
    set_signal(c, 11, true, 0);
    struct ana_keys k = sign(c);
    assert_string_equal(k.signature, "SIGSEGV NULL | libc.so.6!msort_with_tmp | "
                                     "libc.so.6!qsort_r | prog!sort_records");
    ana_crash_free(c);
}

static void no_module_frame_is_a_fixed_token(void **state)
{
    const char *const mods[] = { "/opt/bin/prog" };
    const struct fr f[] = {
        { -1, NULL, ANA_TRUST_CONTEXT, 0x1234, NULL },
        { 0, "caller", ANA_TRUST_CFI, 0x10, NULL },
    };
    struct ana_crash *c = make_crash(mods, 1, f, 2);
    set_signal(c, 11, true, 0xdead1234);
    struct ana_keys k = sign(c);
    assert_string_equal(k.signature, "SIGSEGV WILD | (no module)");
    assert_null(strstr(k.signature, "dead"));
    assert_string_equal(k.fault_module, "(no module)");
    ana_crash_free(c);
}

static void unsymbolized_runtime_module_looked_past(void **state)
{
    const char *const mods[] = { "/lib/libc.so.6", "/opt/bin/prog" };
    const struct fr f[] = {
        { 0, NULL, ANA_TRUST_CONTEXT, 0x8eeec, NULL },
        { 0, NULL, ANA_TRUST_CFI, 0x3ffb2, NULL },
        { 1, NULL, ANA_TRUST_CFI, 0x1483, NULL },
        { 1, NULL, ANA_TRUST_CFI, 0x1600, NULL },
    };
    struct ana_crash *c = make_crash(mods, 2, f, 4);
    set_signal(c, 6, false, 0);
    struct ana_keys k = sign(c);
    assert_string_equal(k.signature,
                        "SIGABRT | libc.so.6+0x8eeec | libc.so.6+0x3ffb2 | prog+0x1483");
    assert_string_equal(k.fault_point, "prog+0x1483");
    ana_crash_free(c);
}

static void inline_frames_expand_first(void **state)
{
    const char *const mods[] = { "/lib/libc.so.6", "/opt/bin/quota" };
    const struct fr f[] = {
        { 0, "abort", ANA_TRUST_CONTEXT, 0x100, NULL },
        { 1, "account_refund", ANA_TRUST_CFI, 0x200, "account_check" },
    };
    struct ana_crash *c = make_crash(mods, 2, f, 2);
    set_signal(c, 6, false, 0);
    struct ana_keys k = sign(c);
    assert_string_equal(k.signature, "SIGABRT | quota!account_check");
    ana_crash_free(c);
}

static void sentinel_starts_the_signature(void **state)
{
    const char *const mods[] = { "/usr/lib/libstdc++.so.6", "/opt/bin/prog" };
    const struct fr f[] = {
        { 1, "some_handler", ANA_TRUST_CONTEXT, 0x100, NULL },
        { 0, "__cxa_pure_virtual", ANA_TRUST_CFI, 0x200, NULL },
        { 1, "Widget::draw", ANA_TRUST_CFI, 0x300, NULL },
    };
    struct ana_crash *c = make_crash(mods, 2, f, 3);
    set_signal(c, 6, false, 0);
    struct ana_keys k = sign(c);
    assert_string_equal(k.signature,
                        "SIGABRT | libstdc++.so.6!__cxa_pure_virtual | prog!Widget::draw");
    ana_crash_free(c);
}

static void kernel_names_blamed_driver(void **state)
{
    const char *const mods[] = { "\\SystemRoot\\system32\\ntoskrnl.exe",
                                 "\\SystemRoot\\System32\\drivers\\csagent.sys" };
    const struct fr f[] = {
        { 0, NULL, ANA_TRUST_CONTEXT, 0x4000, NULL },
        { 1, NULL, ANA_TRUST_SCAN, 0x1000, NULL },
        { 1, NULL, ANA_TRUST_FP, 0x2000, NULL },
    };
    struct ana_crash *c = make_crash(mods, 2, f, 3);
    c->bugcheck.present = true;
    c->bugcheck.code = 0x50;
    c->bugcheck.base_name = "PAGE_FAULT_IN_NONPAGED_AREA";
    c->bugcheck.blamed_module = 1;
    c->crash_info.type = "PAGE_FAULT_IN_NONPAGED_AREA";
    struct ana_keys k = sign(c);
    assert_string_equal(k.fault_module, "csagent.sys");
    assert_string_equal(k.fault_point, "csagent.sys+0x2000");
    assert_non_null(strstr(k.signature, "PAGE_FAULT_IN_NONPAGED_AREA | csagent.sys+0x2000"));
    assert_null(strstr(k.signature, "0x1000")); /* the scanned frame */
    /* the _M variant buckets with the base bugcheck */
    struct ana_crash *c2 = make_crash(mods, 2, f, 3);
    c2->bugcheck = c->bugcheck;
    c2->bugcheck.code = 0x10000050;
    struct ana_keys k2 = sign(c2);
    assert_string_equal(k.bucket, k2.bucket);
    ana_crash_free(c);
    ana_crash_free(c2);
}

static void different_causes_different_buckets(void **state)
{
    const char *const mods[] = { "/lib/libc.so.6", "/opt/bin/a" };
    const struct fr f1[] = { { 0, "strlen", ANA_TRUST_CONTEXT, 1, NULL },
                             { 1, "session_describe", ANA_TRUST_CFI, 2, NULL } };
    const struct fr f2[] = { { 0, "strlen", ANA_TRUST_CONTEXT, 1, NULL },
                             { 1, "name_width", ANA_TRUST_CFI, 2, NULL } };
    struct ana_crash *c1 = make_crash(mods, 2, f1, 2), *c2 = make_crash(mods, 2, f2, 2);
    set_signal(c1, 11, true, 0x6b6b6b6b6b6b6b6bull);
    set_signal(c2, 11, true, 0x6b6b6b6b6b6b6b6bull);
    struct ana_keys k1 = sign(c1), k2 = sign(c2);
    assert_string_not_equal(k1.bucket, k2.bucket);
    assert_string_not_equal(k1.stack_hash, k2.stack_hash);
    ana_crash_free(c1);
    ana_crash_free(c2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(normalizes_function_names),
        cmocka_unit_test(builtin_rules_parse),
        cmocka_unit_test(bad_rules_name_their_line),
        cmocka_unit_test(assert_path_skips_to_program_frame),
        cmocka_unit_test(prefix_frames_kept_and_looked_past),
        cmocka_unit_test(reason_classes),
        cmocka_unit_test(scanned_frames_never_enter),
        cmocka_unit_test(recursion_collapses),
        cmocka_unit_test(no_module_frame_is_a_fixed_token),
        cmocka_unit_test(unsymbolized_runtime_module_looked_past),
        cmocka_unit_test(inline_frames_expand_first),
        cmocka_unit_test(sentinel_starts_the_signature),
        cmocka_unit_test(kernel_names_blamed_driver),
        cmocka_unit_test(different_causes_different_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
