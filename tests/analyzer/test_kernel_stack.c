/* test_kernel_stack.c -- the stack, signature and keys of Windows kernel triage dumps: the real
 * corpus dump walked without symbols gives the driver frames the corpus README lists, in order,
 * each with its trust; the signature is the bugcheck's base name and the blamed driver's fault
 * point; 0x7E and 0x1000007E bucket together; scanned frames never enter the signature; a wave of
 * one driver version across hosts lands in one bucket. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana.h"
#include "common/cm_alloc.h"
#include "tests/fixgen/fixgen.h"
#include "tests/th.h"

struct want {
    const char *module;
    uint64_t offset;
};

/* From windows-kernel/README.md: the driver frames from the faulting instruction down. */
static const struct want readme_frames[] = {
    { "amdppm.sys", 0x334c },  { "amdppm.sys", 0x313f },  { "amdppm.sys", 0x3234 },
    { "amdppm.sys", 0x20e8f }, { "amdppm.sys", 0x283f6 }, { "amdppm.sys", 0x1f852 },
    { "Wdf01000.sys", 0x7c027 }, { "Wdf01000.sys", 0x16f81 }, { "Wdf01000.sys", 0x7b227 },
    { "Wdf01000.sys", 0x79e21 }, { "Wdf01000.sys", 0x799da }, { "Wdf01000.sys", 0x7b6b1 },
    { "Wdf01000.sys", 0x7b47a }, { "Wdf01000.sys", 0x8299e }, { "Wdf01000.sys", 0xcc5f },
    { "Wdf01000.sys", 0xa866 },
};

static struct ana_crash *analyze_file(const char *path, struct ana_keys *k)
{
    struct ana_crash *c;
    struct cm_err err = { 0 };
    if (ana_load_file(path, NULL, &c, &err) != CM_E_OK)
        fail_msg("%s: %s", path, err.msg);
    if (ana_analyze(c, NULL, NULL, k, &err) != CM_E_OK)
        fail_msg("%s: %s", path, err.msg);
    return c;
}

static void corpus_dump_frames_in_readme_order(void **state)
{
    struct ana_keys k;
    struct ana_crash *c = analyze_file(th_corpus("windows-kernel/triage_x64.dmp"), &k);
    int ct = c->crash_info.crashing_thread;
    assert_true(ct >= 0);
    const struct ana_thread *t = &c->threads[ct];
    assert_true(t->frame_count >= 16);
    /* Frame 0 is the faulting context, not KeBugCheckEx's. */
    const struct ana_frame *f0 = &t->frames[0];
    assert_int_equal(f0->trust, ANA_TRUST_CONTEXT);
    assert_int_equal(f0->pc, 0xfffff8048b58334cull);
    size_t w = 0;
    for (size_t i = 0; i < t->frame_count && w < sizeof readme_frames / sizeof *readme_frames;
         i++) {
        const struct ana_frame *f = &t->frames[i];
        const struct ana_module *m = f->module >= 0 ? &c->modules[f->module] : NULL;
        bool match = m && strcmp(ana_module_basename(m), readme_frames[w].module) == 0 &&
                     f->pc - m->base == readme_frames[w].offset;
        if (match) {
            w++;
            continue;
        }
        /* Anything else between the listed frames must say it was found by scanning. */
        if (f->trust != ANA_TRUST_SCAN && f->trust != ANA_TRUST_CFI_SCAN)
            fail_msg("frame %zu (%s+0x%" PRIx64 ") is not a listed frame but has trust %s", i,
                     m ? ana_module_basename(m) : "?", m ? f->pc - m->base : f->pc,
                     ana_trust_name(f->trust));
    }
    if (w != sizeof readme_frames / sizeof *readme_frames)
        fail_msg("only %zu of the README's driver frames were found in order; next missing: "
                 "%s+0x%" PRIx64,
                 w, readme_frames[w].module, readme_frames[w].offset);
    assert_string_equal(k.signature, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED | amdppm.sys+0x334c");
    assert_string_equal(k.fault_module, "amdppm.sys");
    assert_string_equal(k.fault_point, "amdppm.sys+0x334c");
    assert_non_null(k.fault_module_version); /* timestamp + size of the driver image */
    ana_crash_free(c);
}

static void json_carries_bugcheck_and_blamed_driver(void **state)
{
    char *argv[] = { (char *)th_triagectl(), "stackwalk", "--json",
                     (char *)th_corpus("windows-kernel/triage_x64.dmp"), NULL };
    char *out = NULL;
    assert_int_equal(th_run(argv, &out, NULL, 120), 0);
    assert_non_null(strstr(out, "\"bugcheck\":{\"code\":\"0x1000007e\""));
    assert_non_null(strstr(out, "\"name\":\"SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M\""));
    assert_non_null(strstr(out, "\"parameters\":[\"0xffffffffc0000005\",\"0xfffff8048b58334c\","
                                "\"0xffff850429891ee8\",\"0xffff850429891720\"]"));
    assert_non_null(strstr(out, "\"blamed_driver\":\"amdppm.sys\""));
    free(out);
    argv[2] = "--human";
    assert_int_equal(th_run(argv, &out, NULL, 120), 0);
    assert_non_null(strstr(out, "Bugcheck: 0x1000007e SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M"));
    assert_non_null(strstr(out, "Blamed driver: amdppm.sys + 0x334c"));
    free(out);
}

static const struct fix_kdriver wave_drivers[] = {
    { "\\SystemRoot\\system32\\ntoskrnl.exe", 0xfffff80000000000ull, 0x1000000, 0x5f000001, 0 },
    { "\\SystemRoot\\System32\\drivers\\csagent.sys", 0xfffff80470000000ull, 0x200000,
      0x668f2a11, 0 },
    { "\\SystemRoot\\System32\\drivers\\Wdf01000.sys", 0xfffff80479950000ull, 0xd0000,
      0x5c000002, 0 },
};

static struct ana_crash *wave_host(unsigned host, uint32_t bugcheck, struct ana_keys *k)
{
    /* Every host: the same faulting instruction of the same driver version, different stack
     * noise and registers. */
    struct fix_kret rets[3] = { { "csagent.sys", 0x1200 + 0x10 * (host % 7) },
                                { "Wdf01000.sys", 0x7c027 },
                                { "ntoskrnl.exe", 0x36b110 } };
    struct fix_kernel d = { .bugcheck = bugcheck, .params = { 0xffffb38f0000009cull, 0, 0,
                                                              0xfffff80470001234ull },
                            .drivers = wave_drivers, .driver_count = 3,
                            .fault_driver = "csagent.sys", .fault_offset = 0x1234,
                            .returns = rets, .return_count = 3 };
    for (int r = 0; r < 16; r++)
        d.regs[r] = 0x1000u * host + (uint64_t)r;
    uint8_t *bytes;
    size_t len;
    struct cm_err err = { 0 };
    assert_int_equal(fix_kernel_write(&d, &bytes, &len, NULL, &err), CM_E_OK);
    struct ana_crash *c;
    assert_int_equal(ana_load(bytes, len, NULL, &c, &err), CM_E_OK);
    assert_int_equal(ana_analyze(c, NULL, NULL, k, &err), CM_E_OK);
    cm_free(bytes);
    return c;
}

static void blue_screen_wave_is_one_bucket(void **state)
{
    struct ana_keys first;
    struct ana_crash *c0 = wave_host(0, 0x50, &first);
    assert_string_equal(first.fault_module, "csagent.sys");
    assert_string_equal(first.fault_point, "csagent.sys+0x1234");
    assert_non_null(strstr(first.signature, "PAGE_FAULT_IN_NONPAGED_AREA | csagent.sys+0x1234"));
    for (unsigned host = 1; host < 40; host++) {
        struct ana_keys k;
        struct ana_crash *c = wave_host(host, host % 2 ? 0x50 : 0x10000050, &k);
        assert_string_equal(k.bucket, first.bucket);
        assert_string_equal(k.fault_module_version, first.fault_module_version);
        ana_crash_free(c);
    }
    /* 0x7E and its _M twin bucket together too, apart from 0x50. */
    struct ana_keys k7e, k7em;
    struct ana_crash *a = wave_host(1, 0x7E, &k7e), *b = wave_host(2, 0x1000007E, &k7em);
    assert_string_equal(k7e.bucket, k7em.bucket);
    assert_string_not_equal(k7e.bucket, first.bucket);
    ana_crash_free(a);
    ana_crash_free(b);
    ana_crash_free(c0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(corpus_dump_frames_in_readme_order),
        cmocka_unit_test(json_carries_bugcheck_and_blamed_driver),
        cmocka_unit_test(blue_screen_wave_is_one_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
