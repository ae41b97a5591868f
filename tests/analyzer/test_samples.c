/* test_samples.c -- the sample crashes triage-fixgen writes (fix_sample, tests/fixgen): every
 * scenario and seed loads through ana_load without a warning, with the crash, threads, modules
 * and names the generator built it with; a frame-pointer walk over the reader's memory finds the
 * generator's frame chain; the same seed gives the same bytes, and another seed moves addresses
 * but not the bug's module offsets or ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana.h"
#include "tests/fixgen/fixgen.h"
#include "tests/th.h"

static struct ana_crash *load_ok(const uint8_t *p, size_t n, const struct ana_limits *lim)
{
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    enum cm_code rc = ana_load(p, n, lim, &c, &err);
    if (rc != CM_E_OK)
        fail_msg("ana_load failed: %s: %s", cm_code_name(rc), err.msg);
    return c;
}

/* Compares crash reasons ignoring white space, as Breakpad spaces them inconsistently. */
static void assert_reason(const char *got, const char *want)
{
    char a[128], b[128];
    size_t i = 0, j = 0;
    for (const char *s = got ? got : ""; *s && i < sizeof a - 1; s++)
        if (*s != ' ')
            a[i++] = *s;
    for (const char *s = want; *s && j < sizeof b - 1; s++)
        if (*s != ' ')
            b[j++] = *s;
    a[i] = b[j] = 0;
    if (strcmp(a, b) != 0)
        fail_msg("crash reason \"%s\", want \"%s\"", got ? got : "(null)", want);
}

static void print_warnings(const struct ana_crash *c)
{
    for (size_t i = 0; i < c->warning_count; i++)
        print_message("  warning: %s\n", c->warnings[i]);
}

static void samples_load_with_their_truth(void **state)
{
    for (int sc = 0; sc < FIX_SC__COUNT; sc++) {
        for (uint64_t seed = 1; seed <= 3; seed++) {
            struct fix_sample_opts o = { .seed = seed };
            struct fix_sample_info info;
            uint8_t *p;
            size_t n;
            struct cm_err err;
            assert_int_equal(fix_sample((enum fix_scenario)sc, &o, &p, &n, &info, &err), CM_E_OK);
            struct ana_crash *c = load_ok(p, n, NULL);
            const char *name = fix_scenario_name(sc);
            if (c->warning_count) {
                print_warnings(c);
                fail_msg("%s seed %llu: a sample loads with warnings", name,
                         (unsigned long long)seed);
            }
            assert_int_equal(c->system_info.cpu, info.cpu);
            assert_int_equal(c->module_count, info.module_count);
            assert_int_equal(c->thread_count, info.thread_count);
            assert_int_equal(c->crash_info.crashing_tid, info.crashing_tid);
            int ct = c->crash_info.crashing_thread;
            assert_true(ct >= 0);
            assert_int_equal(c->threads[ct].tid, info.crashing_tid);
            if (info.crash_address)
                assert_int_equal(c->crash_info.address, info.crash_address);
            /* A frame-pointer walk through the reader's memory finds the recorded chain. */
            const struct ana_context *x = &c->threads[ct].ctx;
            enum ana_cpu cpu = c->system_info.cpu;
            uint64_t pc = x->r[ana_reg_pc(cpu)], fp = x->r[ana_reg_fp(cpu)];
            unsigned ptr = ana_cpu_ptr_bytes(cpu);
            size_t k = 0;
            while (k < info.frame_count && k < FIX_SAMPLE_MAX_FRAMES) {
                if (pc != info.frames[k])
                    fail_msg("%s seed %llu frame %zu: pc 0x%llx, want 0x%llx", name,
                             (unsigned long long)seed, k, (unsigned long long)pc,
                             (unsigned long long)info.frames[k]);
                int mi = ana_module_at(c, pc);
                assert_true(mi >= 0);
                assert_int_equal(c->modules[mi].base, c->modules[info.frame_module[k]].base);
                k++;
                uint64_t next_fp, ret;
                if (!ana_mem_ptr(c, fp, &next_fp) || !ana_mem_ptr(c, fp + ptr, &ret))
                    break;
                if (ret == 0)
                    break;
                pc = ret;
                fp = next_fp;
            }
            assert_int_equal(k, info.frame_count);
            int fm = ana_module_at(c, info.frames[0]);
            assert_string_equal(ana_module_basename(&c->modules[fm]), info.fault_module);
            ana_crash_free(c);
            free(p);
        }
    }
}

static void samples_name_their_crashes(void **state)
{
    static const char *const want[FIX_SC__COUNT] = {
        [FIX_SC_WIN_AMD64_AV] = "EXCEPTION_ACCESS_VIOLATION_READ",
        [FIX_SC_WIN_AMD64_STACK_OVERFLOW] = "EXCEPTION_STACK_OVERFLOW",
        [FIX_SC_WIN_X86_DIVIDE] = "EXCEPTION_INT_DIVIDE_BY_ZERO",
        [FIX_SC_LINUX_AMD64_SEGV] = "SIGSEGV /SEGV_MAPERR",
        [FIX_SC_LINUX_AMD64_ABORT] = "SIGABRT /SI_TKILL",
        [FIX_SC_ANDROID_ARM64_SEGV] = "SIGSEGV /SEGV_MAPERR",
        [FIX_SC_ANDROID_ARM_SEGV] = "SIGSEGV /SEGV_ACCERR",
        [FIX_SC_MACOS_AMD64_BAD_ACCESS] = "EXC_BAD_ACCESS / KERN_INVALID_ADDRESS",
        [FIX_SC_MACOS_ARM64_BAD_ACCESS] = "EXC_BAD_ACCESS / KERN_INVALID_ADDRESS",
    };
    for (int sc = 0; sc < FIX_SC__COUNT; sc++) {
        struct fix_sample_opts o = { .seed = 7 };
        uint8_t *p;
        size_t n;
        struct cm_err err;
        assert_int_equal(fix_sample((enum fix_scenario)sc, &o, &p, &n, NULL, &err), CM_E_OK);
        struct ana_crash *c = load_ok(p, n, NULL);
        assert_true(c->crash_info.crashed);
        assert_reason(c->crash_info.type, want[sc]);
        bool host = false;
        for (size_t i = 0; i < c->annotation_count; i++)
            host |= strcmp(c->annotations[i].key, "host") == 0 &&
                    strcmp(c->annotations[i].value, "host-000007") == 0;
        assert_true(host);
        ana_crash_free(c);
        free(p);
    }
}

/* Same seed, same bytes; another seed moves addresses but not the bug's module offsets. */
static void samples_are_deterministic(void **state)
{
    for (int sc = 0; sc < FIX_SC__COUNT; sc++) {
        uint8_t *a, *b, *x;
        size_t na, nb, nx;
        struct fix_sample_info ia, ix;
        struct cm_err err;
        struct fix_sample_opts o1 = { .seed = 11 }, o2 = { .seed = 12 };
        assert_int_equal(fix_sample((enum fix_scenario)sc, &o1, &a, &na, &ia, &err), CM_E_OK);
        assert_int_equal(fix_sample((enum fix_scenario)sc, &o1, &b, &nb, NULL, &err), CM_E_OK);
        assert_int_equal(fix_sample((enum fix_scenario)sc, &o2, &x, &nx, &ix, &err), CM_E_OK);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na);
        assert_true(na != nx || memcmp(a, x, na) != 0);
        struct ana_crash *ca = load_ok(a, na, NULL), *cx = load_ok(x, nx, NULL);
        int ma = ana_module_at(ca, ia.frames[0]), mx = ana_module_at(cx, ix.frames[0]);
        assert_true(ma >= 0 && mx >= 0);
        assert_int_equal(ia.frames[0] - ca->modules[ma].base, ix.frames[0] - cx->modules[mx].base);
        assert_string_equal(ca->modules[ma].debug_id, cx->modules[mx].debug_id);
        ana_crash_free(ca);
        ana_crash_free(cx);
        free(a);
        free(b);
        free(x);
    }
}

static void sample_fault_version_is_an_option(void **state)
{
    struct fix_sample_opts o = { .seed = 3, .fault_version = { 4, 3, 0, 12 } };
    struct fix_sample_info info;
    uint8_t *p;
    size_t n;
    struct cm_err err;
    assert_int_equal(fix_sample(FIX_SC_WIN_AMD64_AV, &o, &p, &n, &info, &err), CM_E_OK);
    struct ana_crash *c = load_ok(p, n, NULL);
    int m = ana_module_at(c, info.frames[0]);
    assert_true(m >= 0);
    assert_string_equal(c->modules[m].version, "4.3.0.12");
    assert_string_equal(ana_module_basename(&c->modules[m]), "contoso_sensor.dll");
    ana_crash_free(c);
    free(p);
}

/* The program: `triage-fixgen samples DIR --count 2` writes every scenario raw and compressed,
 * one line per file, and each file loads. */
static void program_writes_every_scenario(void **state)
{
    const char *tool = getenv("TRIAGE_FIXGEN");
    if (!tool || !*tool)
        fail_msg("TRIAGE_FIXGEN is not set (run the tests through ctest)");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", th_tmp("samples"));
    char *argv[] = { (char *)tool, "samples", dir, "--count", "2", "--seed", "40", NULL };
    char *out = NULL, *errout = NULL;
    assert_int_equal(th_run(argv, &out, &errout, 120), 0);
    size_t lines = 0, zst = 0;
    bool seen[FIX_SC__COUNT] = { false };
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        char path[4096];
        assert_int_equal(sscanf(line, "%4095s", path), 1);
        struct ana_crash *c = NULL;
        struct cm_err err = { 0 };
        if (ana_load_file(path, NULL, &c, &err) != CM_E_OK)
            fail_msg("%s: %s", path, err.msg);
        assert_true(c->crash_info.crashed);
        ana_crash_free(c);
        for (int sc = 0; sc < FIX_SC__COUNT; sc++) {
            char want[128];
            snprintf(want, sizeof want, "scenario=%s ", fix_scenario_name(sc));
            seen[sc] |= strstr(line, want) != NULL;
        }
        zst += strstr(path, ".dmp.zst") != NULL;
        lines++;
    }
    assert_int_equal(lines, 2 * FIX_SC__COUNT);
    assert_int_equal(zst, FIX_SC__COUNT);
    for (int sc = 0; sc < FIX_SC__COUNT; sc++)
        assert_true(seen[sc]);
    char *bad[] = { (char *)tool, "samples", dir, "--count", "x", NULL };
    assert_int_equal(th_run(bad, NULL, NULL, 60), 2);
    free(out);
    free(errout);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(samples_load_with_their_truth),
        cmocka_unit_test(samples_name_their_crashes),
        cmocka_unit_test(samples_are_deterministic),
        cmocka_unit_test(sample_fault_version_is_an_option),
        cmocka_unit_test(program_writes_every_scenario),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
