/* test_kernel.c -- the Windows kernel dump reader (ana_kernel*.c), the bug-check table
 * (ana_bugcheck.c), the blamed-driver rule and the triage-dump fixture writer (fix_kernel.c).
 *
 * The corpus dump ../shared/corpus/windows-kernel/triage_x64.dmp is checked against the values
 * its README lists from Rizin's test and Microsoft's debugger (never against our own output);
 * the writer's dumps are checked against the descriptions they were written from. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h> /* strcasecmp */

#include "analyzer/ana_int.h"
#include "common/cm_alloc.h"
#include "tests/fixgen/fixgen.h"
#include "tests/th.h"

#define CORPUS "windows-kernel/triage_x64.dmp"

/* ---- values from ../shared/corpus/windows-kernel/README.md ---- */
static const uint64_t readme_params[4] = {
    0xffffffffc0000005ull, 0xfffff8048b58334cull, 0xffff850429891ee8ull, 0xffff850429891720ull,
};
#define AMDPPM_BASE 0xfffff8048b580000ull
#define AMDPPM_SIZE 0x3b000ull
#define WDF_BASE 0xfffff80479950000ull
static const uint64_t readme_amdppm[] = { 0x313f, 0x3234, 0x20e8f, 0x283f6, 0x1f852 };
static const uint64_t readme_wdf[] = { 0x7c027, 0x16f81, 0x7b227, 0x79e21, 0x799da,
                                       0x7b6b1, 0x7b47a, 0x8299e, 0xcc5f,  0xa866 };

static struct ana_crash *load_buf(const uint8_t *p, size_t n)
{
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    enum cm_code rc = ana_load(p, n, NULL, &c, &err);
    if (rc)
        fail_msg("ana_load failed: %s: %s", cm_code_name(rc), err.msg);
    return c;
}

static struct ana_crash *load_corpus(void)
{
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    enum cm_code rc = ana_load_file(th_corpus(CORPUS), NULL, &c, &err);
    if (rc)
        fail_msg("ana_load_file failed: %s: %s", cm_code_name(rc), err.msg);
    return c;
}

static int module_named(const struct ana_crash *c, const char *base)
{
    for (size_t i = 0; i < c->module_count; i++)
        if (strcasecmp(ana_module_basename(&c->modules[i]), base) == 0)
            return (int)i;
    return -1;
}

static bool has_warning(const struct ana_crash *c, const char *needle)
{
    for (size_t i = 0; i < c->warning_count; i++)
        if (strstr(c->warnings[i], needle))
            return true;
    return false;
}

/* ---- the corpus dump ---- */

static void corpus_headers(void **state)
{
    size_t n;
    uint8_t *p = th_read(th_corpus(CORPUS), &n);
    assert_int_equal(n, 1444532);
    struct ana_dump_header64 h;
    struct cm_err err;
    assert_int_equal(ana__kernel_header(p, n, &h, &err), CM_E_OK);
    assert_memory_equal(p, "PAGEDU64", 8);
    assert_int_equal(h.major_version, 0xf);
    assert_int_equal(h.minor_version, 0x4a61);
    assert_int_equal(h.minor_version, 19041);
    assert_int_equal(h.machine_image_type, 0x8664);
    assert_int_equal(h.number_processors, 16);
    assert_int_equal(h.bugcheck_code, 0x1000007e);
    for (int i = 0; i < 4; i++)
        assert_int_equal(h.bugcheck_params[i], readme_params[i]);
    assert_int_equal(h.ps_loaded_module_list, 0xfffff8047c62a390ull);
    assert_int_equal(h.exception_code, 0x80000003);
    assert_int_equal(h.exception_address, 0xfffff8047bdf5a80ull);
    assert_int_equal(h.dump_type, 4);

    struct ana_triage_dump64 t;
    assert_true(ana__kernel_triage_header(p, n, &t));
    assert_int_equal(t.context_offset, 0x348);
    assert_int_equal(t.exception_offset, 0xf00);
    assert_int_equal(t.call_stack_offset, 0xe390);
    assert_int_equal(t.size_of_call_stack, 0x2118);
    assert_int_equal(t.driver_list_offset, 0x10828);
    assert_int_equal(t.driver_count, 0x97);
    assert_int_equal(t.string_pool_offset, 0x15d18);
    assert_int_equal(t.string_pool_size, 0x3720);
    assert_int_equal(t.top_of_stack, 0xffff850429890ee8ull);
    free(p);
}

static void corpus_model(void **state)
{
    struct ana_crash *c = load_corpus();
    assert_int_equal(c->format, ANA_FMT_KERNEL);
    assert_string_equal(c->system_info.os, "Windows NT");
    assert_string_equal(c->system_info.os_ver, "10.0.19041");
    assert_string_equal(c->system_info.cpu_arch, "amd64");
    assert_int_equal(c->system_info.cpu_count, 16);

    const struct ana_bugcheck *bc = &c->bugcheck;
    assert_true(bc->present);
    assert_true(bc->triage);
    assert_string_equal(bc->dump_type, "triage");
    assert_int_equal(bc->code, 0x1000007e);
    assert_string_equal(bc->name, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M");
    assert_string_equal(bc->base_name, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED");
    for (int i = 0; i < 4; i++)
        assert_int_equal(bc->params[i], readme_params[i]);
    assert_int_equal(bc->ps_loaded_module_list, 0xfffff8047c62a390ull);

    const struct ana_crash_info *ci = &c->crash_info;
    assert_true(ci->crashed);
    assert_string_equal(ci->type, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M");
    assert_true(ci->has_address);
    assert_int_equal(ci->address, 0xfffff8048b58334cull);
    assert_int_equal(ci->exception_code, 0x80000003);
    assert_int_equal(ci->param_count, 4);

    /* 151 drivers; nt is one of them and the main module. */
    assert_int_equal(c->module_count, 151);
    int nt = module_named(c, "ntoskrnl.exe");
    assert_true(nt >= 0);
    assert_int_equal(c->main_module, nt);
    int amdppm = module_named(c, "amdppm.sys"), wdf = module_named(c, "Wdf01000.sys");
    assert_true(amdppm >= 0 && wdf >= 0);
    assert_int_equal(c->modules[amdppm].base, AMDPPM_BASE);
    assert_int_equal(c->modules[amdppm].size, AMDPPM_SIZE);
    assert_int_equal(c->modules[wdf].base, WDF_BASE);
    assert_true(c->modules[amdppm].timestamp != 0 && c->modules[amdppm].checksum != 0);
    assert_non_null(c->modules[amdppm].code_id);
    for (size_t i = 0; i < c->module_count; i++) {
        assert_non_null(c->modules[i].path); /* "\\SystemRoot\\..." or "\\??\\C:\\..." */
        assert_true(c->modules[i].path[0] == '\\');
        assert_true(strlen(ana_module_basename(&c->modules[i])) > 4);
    }

    /* Blamed: amdppm.sys at +0x334c. */
    assert_int_equal(bc->blamed_module, amdppm);
    assert_int_equal(ci->address - c->modules[bc->blamed_module].base, 0x334c);
    assert_int_equal(ana_module_at(c, ci->address), amdppm);

    /* The crashing thread: the faulting context at 0x348, not KeBugCheckEx's. */
    assert_int_equal(c->thread_count, 1);
    assert_int_equal(ci->crashing_thread, 0);
    const struct ana_thread *t = &c->threads[0];
    assert_true(t->has_ctx);
    assert_false(t->bad_context);
    assert_int_equal(t->ctx.r[ANA_AMD64_RIP], 0xfffff8048b58334cull);
    assert_int_equal(t->ctx.r[ANA_AMD64_RSP], 0xffff850429892120ull);
    assert_int_equal(t->ctx.r[ANA_AMD64_RBP], 0xfffff8048b58f598ull);

    /* A worker thread of the System process (the README's stack ends in PspSystemThreadStartup). */
    assert_int_equal(c->pid, 4);
    assert_string_equal(c->process_name, "System");
    assert_true(t->tid != 0 && t->tid % 4 == 0);

    /* Unloaded drivers: the four names xxd shows from 0x20e8. */
    assert_int_equal(c->unloaded_module_count, 4);
    const char *unl[] = { "dam.sys", "WdBoot.sys", "hwpolicy.sys", "mcupdate.dll" };
    for (int i = 0; i < 4; i++) {
        assert_string_equal(c->unloaded_modules[i].path, unl[i]);
        assert_true(c->unloaded_modules[i].unloaded);
        assert_true(c->unloaded_modules[i].size > 0);
    }
    ana_crash_free(c);
}

static void corpus_stack(void **state)
{
    struct ana_crash *c = load_corpus();
    const struct ana_thread *t = &c->threads[0];
    uint64_t top = 0xffff850429890ee8ull, rsp = t->ctx.r[ANA_AMD64_RSP];
    assert_int_equal(t->stack_base, top);
    assert_int_equal(t->stack_size, 0x2118);
    const struct ana_region *r = ana_mem_region(c, rsp);
    assert_non_null(r);
    assert_int_equal(r->base, top);
    assert_int_equal(r->size, 0x2118);
    assert_ptr_equal(ana_mem_region(c, top), r);
    uint64_t v;
    assert_true(ana_mem_u64(c, top + 0x2118 - 8, &v));
    assert_false(ana_mem_u64(c, top + 0x2118 - 4, &v));

    /* Scan from rsp up: the README's amdppm then Wdf01000 frames appear in that order. */
    int amdppm = module_named(c, "amdppm.sys"), wdf = module_named(c, "Wdf01000.sys");
    size_t ia = 0, iw = 0;
    for (uint64_t a = rsp; a + 8 <= top + 0x2118; a += 8) {
        assert_true(ana_mem_u64(c, a, &v));
        int m = ana_module_at(c, v);
        if (m == amdppm && ia < 5 && v - AMDPPM_BASE == readme_amdppm[ia]) {
            assert_int_equal(iw, 0); /* every amdppm frame comes before the Wdf01000 ones */
            ia++;
        } else if (m == wdf && iw < 10 && v - WDF_BASE == readme_wdf[iw]) {
            iw++;
        }
    }
    assert_int_equal(ia, 5);
    assert_int_equal(iw, 10);

    /* Data blocks became readable memory too (more than the stack and the KDBG copy). */
    assert_true(c->region_count > 100);
    ana_crash_free(c);
}

/* ---- robustness: truncated and bit-flipped copies ---- */

static void check_outcome(const uint8_t *p, size_t n, const char *what, size_t where)
{
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    enum cm_code rc = ana_load(p, n, NULL, &c, &err);
    if (rc) {
        assert_null(c);
        if (err.msg[0] == 0)
            fail_msg("%s at %zu: error %s without a message", what, where, cm_code_name(rc));
        return;
    }
    /* A dump read in part: the model stays consistent. */
    assert_true(c->bugcheck.present);
    assert_non_null(c->crash_info.type);
    assert_true(c->module_count <= c->limits.max_modules);
    assert_true(c->region_count <= c->limits.max_regions);
    for (size_t i = 0; i < c->module_count; i++)
        assert_non_null(c->modules[i].path);
    for (size_t i = 0; i < c->region_count; i++) {
        const struct ana_region *r = &c->regions[i];
        assert_true(r->data >= c->bytes && r->size <= c->byte_count &&
                    (size_t)(r->data - c->bytes) <= c->byte_count - r->size);
    }
    ana_crash_free(c);
}

static void corpus_truncated(void **state)
{
    size_t n;
    uint8_t *p = th_read(th_corpus(CORPUS), &n);
    static const size_t cuts[] = {
        0, 1, 7, 8, 0x30, 0x348, 0x3d0, 0xf00, 0xf98, 0xfaf, 0xfb0, 0x1fff, 0x2000, 0x207f,
        0x2080, 0x20d4, 0x21b8, 0xd0b8, 0xdaf8, 0xe390, 0xe391, 0x104a8, 0x10828, 0x10829,
        0x108b8, 0x15d18, 0x15d1c, 0x19438, 0x19440, 0x206a8, 0x13a288, 0x13a28c,
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        check_outcome(p, cuts[i], "cut", cuts[i]);
    for (size_t cut = 3; cut < n; cut += 9973)
        check_outcome(p, cut, "cut", cut);
    check_outcome(p, n - 1, "cut", n - 1);
    free(p);
}

static void corpus_bitflips(void **state)
{
    size_t n;
    uint8_t *p = th_read(th_corpus(CORPUS), &n);
    uint8_t *q = malloc(n);
    memcpy(q, p, n);
    /* Every TRIAGE_DUMP64 field and the header fields set to hostile values. */
    static const uint32_t hostile[] = { 0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x2000, 0x2008,
                                        0x160ab0, 0x160ab4, 0x160ab5 };
    for (size_t off = 0; off < 0x80; off += 4) {
        for (size_t h = 0; h < sizeof hostile / sizeof hostile[0]; h++) {
            fix_put_u32(q, n, 0x2000 + off, hostile[h]);
            check_outcome(q, n, "TRIAGE_DUMP64 field", off);
        }
        memcpy(q + 0x2000 + off, p + 0x2000 + off, 4);
    }
    static const size_t hdr[] = { 0x8, 0xc, 0x30, 0x34, 0x38, 0x378, 0xf98 };
    for (size_t i = 0; i < sizeof hdr / sizeof hdr[0]; i++) {
        for (size_t h = 0; h < sizeof hostile / sizeof hostile[0]; h++) {
            fix_put_u32(q, n, hdr[i], hostile[h]);
            check_outcome(q, n, "header field", hdr[i]);
        }
        memcpy(q + hdr[i], p + hdr[i], 4);
    }
    /* The first driver entries, the unloaded list, the first data block descriptors. */
    static const size_t spans[][2] = { { 0x10828, 0x10828 + 2 * 0x90 }, { 0x20d0, 0x2110 },
                                       { 0x19438, 0x19438 + 0x40 } };
    for (size_t s = 0; s < 3; s++) {
        for (size_t off = spans[s][0]; off < spans[s][1]; off++) {
            q[off] ^= 0xff;
            check_outcome(q, n, "flipped byte", off);
            q[off] = p[off];
        }
    }
    /* Random bits across the file, deterministic. */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 300; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t off = (size_t)(x % 0x1a000); /* header, triage block, drivers, pool, blocks */
        q[off] ^= (uint8_t)(1u << (x >> 60 & 7));
        check_outcome(q, n, "random bit", off);
        if (i % 4 == 3) /* let a few flips accumulate */
            memcpy(q, p, n);
    }
    free(q);
    free(p);
}

static void refuses_32bit_and_garbage(void **state)
{
    uint8_t buf[0x3000];
    memset(buf, 0, sizeof buf);
    memcpy(buf, "PAGEDUMP", 8);
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    assert_int_equal(ana_load(buf, sizeof buf, NULL, &c, &err), CM_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "32-bit"));
    memcpy(buf, "PAGEDU64", 8);
    assert_int_equal(ana_load(buf, 0x100, NULL, &c, &err), CM_E_TRUNCATED);
    assert_non_null(strstr(err.msg, "DUMP_HEADER64"));
}

/* ---- the bug-check table ---- */

static void bugcheck_table(void **state)
{
    for (size_t i = 1; i < ana__bugcheck_count(); i++)
        assert_true(ana__bugcheck_code_at(i - 1) < ana__bugcheck_code_at(i));
    assert_true(ana__bugcheck_count() > 400);
    static const struct { uint32_t code; const char *name; } known[] = {
        { 0x0A, "IRQL_NOT_LESS_OR_EQUAL" },
        { 0x1E, "KMODE_EXCEPTION_NOT_HANDLED" },
        { 0x3B, "SYSTEM_SERVICE_EXCEPTION" },
        { 0x50, "PAGE_FAULT_IN_NONPAGED_AREA" },
        { 0x7E, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED" },
        { 0x7F, "UNEXPECTED_KERNEL_MODE_TRAP" },
        { 0x9F, "DRIVER_POWER_STATE_FAILURE" },
        { 0xD1, "DRIVER_IRQL_NOT_LESS_OR_EQUAL" },
        { 0xEF, "CRITICAL_PROCESS_DIED" },
        { 0x124, "WHEA_UNCORRECTABLE_ERROR" },
        { 0x133, "DPC_WATCHDOG_VIOLATION" },
        { 0x139, "KERNEL_SECURITY_CHECK_FAILURE" },
        { 0x1C8, "MANUALLY_INITIATED_POWER_BUTTON_HOLD" },
        { 0xC000021A, "WINLOGON_FATAL_ERROR" },
        { 0xDEADDEAD, "MANUALLY_INITIATED_CRASH1" },
    };
    struct ana_crash *c = cm_calloc(1, sizeof *c);
    const char *name, *base;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        ana__bugcheck_names(c, known[i].code, &name, &base);
        assert_string_equal(name, known[i].name);
        assert_string_equal(base, known[i].name);
    }
    ana__bugcheck_names(c, 0x1000007E, &name, &base);
    assert_string_equal(name, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M");
    assert_string_equal(base, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED");
    ana__bugcheck_names(c, 0x1000008E, &name, &base);
    assert_string_equal(name, "KERNEL_MODE_EXCEPTION_NOT_HANDLED_M");
    assert_string_equal(base, "KERNEL_MODE_EXCEPTION_NOT_HANDLED");
    assert_string_equal(ana__bugcheck_lookup(0x50), "PAGE_FAULT_IN_NONPAGED_AREA");
    assert_null(ana__bugcheck_lookup(0x1000007E)); /* derived, not in the table */
    assert_null(ana__bugcheck_lookup(0x4000007E)); /* WINDOWS_NT_BANNER: a message, not a code */
    ana__bugcheck_names(c, 0x12345, &name, &base);
    assert_string_equal(name, "0x00012345");
    assert_string_equal(base, "0x00012345");
    ana__bugcheck_names(c, 0x10012345, &name, &base);
    assert_string_equal(name, "0x10012345");
    assert_string_equal(base, "0x00012345");
    ana_crash_free(c);

    /* Crash address rules. */
    const uint64_t p[4] = { 0x11, 0x22, 0x33, 0x44 }, p3zero[4] = { 0x11, 0x22, 0, 0x44 };
    uint64_t a;
    assert_true(ana__bugcheck_fault_address(0x7E, p, NULL, &a) && a == 0x22);
    assert_true(ana__bugcheck_fault_address(0x1000007E, p, NULL, &a) && a == 0x22);
    assert_true(ana__bugcheck_fault_address(0x1E, p, NULL, &a) && a == 0x22);
    assert_true(ana__bugcheck_fault_address(0x8E, p, NULL, &a) && a == 0x22);
    assert_true(ana__bugcheck_fault_address(0x50, p, NULL, &a) && a == 0x33);
    assert_false(ana__bugcheck_fault_address(0x50, p3zero, NULL, &a));
    assert_true(ana__bugcheck_fault_address(0xD1, p, NULL, &a) && a == 0x44);
    assert_true(ana__bugcheck_fault_address(0x0A, p, NULL, &a) && a == 0x44);
    assert_false(ana__bugcheck_fault_address(0x133, p, NULL, &a));
    assert_false(ana__bugcheck_fault_address(0x1C8, p, NULL, &a));
    assert_false(ana__bugcheck_fault_address(0x12345, p, NULL, &a));
    struct ana_context ctx = { .cpu = ANA_CPU_AMD64 };
    ana_ctx_set(&ctx, ANA_AMD64_RIP, 0xfffff80400001234ull);
    assert_true(ana__bugcheck_fault_address(0x3B, p, &ctx, &a) && a == 0xfffff80400001234ull);
    assert_true(ana__bugcheck_fault_address(0x3B, p, NULL, &a) && a == 0x22);
}

/* ---- the fixture writer, read back ---- */

static const struct fix_kdriver drivers[] = {
    { "\\SystemRoot\\system32\\ntoskrnl.exe", 0xfffff80470000000ull, 0x1046000, 0x0d8333e6,
      0xa5938c },
    { "\\SystemRoot\\system32\\hal.dll", 0xfffff80471100000ull, 0x6000, 0x1a7be8e9, 0xce9f },
    { "\\SystemRoot\\System32\\drivers\\Wdf01000.sys", 0xfffff80479950000ull, 0xd1000,
      0xa9a9d36e, 0xd3980 },
    { "\\SystemRoot\\System32\\drivers\\CSAgent.sys", 0xfffff8048a000000ull, 0x1b0000,
      0x66a0c0de, 0x1c0001 },
    { "\\SystemRoot\\System32\\drivers\\other.sys", 0xfffff8048c000000ull, 0x10000, 0x12345678,
      0x4242 },
};
#define NDRIVERS (sizeof drivers / sizeof drivers[0])

static const struct fix_kret wave_returns[] = {
    { "CSAgent.sys", 0x2200 }, { "CSAgent.sys", 0x5a10 }, { "Wdf01000.sys", 0x7c027 },
    { "ntoskrnl.exe", 0x35f0a5 },
};

static struct fix_kernel wave_desc(void)
{
    static const struct fix_kunloaded unl[] = {
        { "dam.sys", 0xfffff80487de0000ull, 0xfffff80487dfc000ull },
        { "averyveryverylongname.sys", 0xfffff80479d30000ull, 0xfffff80479d40000ull },
    };
    return (struct fix_kernel){
        .build = 19045,
        .processors = 8,
        .bugcheck = 0x50,
        .params = { 0xffffd00000000010ull, 0, 0xfffff8048a00e14bull, 2 },
        .ps_loaded_module_list = 0xfffff80470c2a390ull,
        .drivers = drivers,
        .driver_count = NDRIVERS,
        .unloaded = unl,
        .unloaded_count = 2,
        .fault_driver = "csagent.sys",
        .fault_offset = 0xe14b,
        .fp = 0xffff850429890f00ull,
        .returns = wave_returns,
        .return_count = sizeof wave_returns / sizeof wave_returns[0],
        .pid = 4,
        .tid = 0x1f4,
        .process_name = "System",
    };
}

static uint8_t *write_or_fail(const struct fix_kernel *d, size_t *n, struct fix_kernel_layout *l)
{
    uint8_t *p = NULL;
    struct cm_err err = { 0 };
    enum cm_code rc = fix_kernel_write(d, &p, n, l, &err);
    if (rc)
        fail_msg("fix_kernel_write: %s", err.msg);
    return p;
}

static void writer_round_trip(void **state)
{
    struct fix_kernel d = wave_desc();
    static const uint8_t page[0x100] = { 0xAB, 0xCD };
    const struct fix_kblock blocks[] = {
        { 0xffffc08bde9e1640ull, page, sizeof page },
        { 0xffff850429890000ull + 0x2000, NULL, 0x100 }, /* a copy of part of the stack */
    };
    d.blocks = blocks;
    d.block_count = 2;
    d.system_time = 133000000000000000ull;
    d.regs[ANA_AMD64_RAX] = 0x1111;
    d.regs[ANA_AMD64_R15] = 0xf15;
    size_t n;
    struct fix_kernel_layout lay;
    uint8_t *p = write_or_fail(&d, &n, &lay);
    struct ana_crash *c = load_buf(p, n);
    for (size_t i = 0; i < c->warning_count; i++)
        fail_msg("unexpected warning: %s", c->warnings[i]);

    assert_string_equal(c->system_info.os_ver, "10.0.19045");
    assert_int_equal(c->system_info.cpu_count, 8);
    assert_string_equal(c->crash_info.type, "PAGE_FAULT_IN_NONPAGED_AREA");
    assert_string_equal(c->bugcheck.base_name, "PAGE_FAULT_IN_NONPAGED_AREA");
    for (int i = 0; i < 4; i++)
        assert_int_equal(c->bugcheck.params[i], d.params[i]);
    assert_int_equal(c->bugcheck.ps_loaded_module_list, d.ps_loaded_module_list);
    assert_true(c->crash_info.has_address);
    assert_int_equal(c->crash_info.address, d.params[2]); /* 0x50: parameter 3 */
    assert_int_equal(c->dump_time, 133000000000000000ull / 10000000 - 11644473600ull);

    assert_int_equal(c->module_count, NDRIVERS);
    for (size_t i = 0; i < NDRIVERS; i++) {
        assert_string_equal(c->modules[i].path, drivers[i].name);
        assert_int_equal(c->modules[i].base, drivers[i].base);
        assert_int_equal(c->modules[i].size, drivers[i].size);
        assert_int_equal(c->modules[i].timestamp, drivers[i].timestamp);
        assert_int_equal(c->modules[i].checksum, drivers[i].checksum);
    }
    assert_string_equal(c->modules[3].code_id, "66A0C0DE1b0000");
    assert_int_equal(c->main_module, 0);
    assert_int_equal(c->bugcheck.blamed_module, 3);

    assert_int_equal(c->unloaded_module_count, 2);
    assert_string_equal(c->unloaded_modules[0].path, "dam.sys");
    assert_int_equal(c->unloaded_modules[0].base, 0xfffff80487de0000ull);
    assert_int_equal(c->unloaded_modules[0].size, 0x1c000);
    assert_string_equal(c->unloaded_modules[1].path, "averyveryver"); /* 12 characters kept */

    const struct ana_thread *t = &c->threads[0];
    assert_true(t->has_ctx);
    assert_int_equal(t->ctx.r[ANA_AMD64_RIP], drivers[3].base + 0xe14b);
    assert_int_equal(t->ctx.r[ANA_AMD64_RSP], 0xffff850429890000ull + 0x3000 / 4);
    assert_int_equal(t->ctx.r[ANA_AMD64_RBP], d.fp);
    assert_int_equal(t->ctx.r[ANA_AMD64_RAX], 0x1111);
    assert_int_equal(t->ctx.r[ANA_AMD64_R15], 0xf15);
    assert_int_equal(t->tid, 0x1f4);
    assert_int_equal(c->crash_info.crashing_tid, 0x1f4);
    assert_int_equal(c->pid, 4);
    assert_string_equal(c->process_name, "System");
    assert_int_equal(c->crash_info.exception_code, 0x80000003);

    /* The stack holds the return addresses, in order, from sp + 0x28 every 0x30 bytes. */
    uint64_t sp = t->ctx.r[ANA_AMD64_RSP], v;
    for (size_t k = 0; k < d.return_count; k++) {
        assert_true(ana_mem_u64(c, sp + 0x28 + 0x30 * k, &v));
        assert_int_equal(v, fix_kernel_addr(&d, wave_returns[k].driver, wave_returns[k].offset));
    }
    /* The data block outside the stack is memory; the one inside was a duplicate. */
    uint8_t got[2];
    assert_true(ana_mem_read(c, 0xffffc08bde9e1640ull, got, 2));
    assert_int_equal(got[0], 0xAB);
    assert_int_equal(got[1], 0xCD);
    assert_int_equal(c->region_count, 2);
    ana_crash_free(c);
    free(p);
}

static void writer_wave_buckets_together(void **state)
{
    /* One driver version blue-screens 40 machines: ids, times, stack noise and the bug
     * check's memory parameter differ; bug check, blamed driver and its offset do not. */
    uint64_t x = 42;
    for (int host = 0; host < 40; host++) {
        struct fix_kernel d = wave_desc();
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        d.tid = 0x100 + 4 * (uint32_t)(x >> 40 & 0xff);
        d.params[0] = 0xffffd00000000000ull | (x >> 20 & 0xfffff0);
        d.system_time = 133000000000000000ull + (x >> 8);
        struct fix_kslot noise[8];
        for (int i = 0; i < 8; i++)
            noise[i] = (struct fix_kslot){ .offset = 0x1000 + 8u * (unsigned)i,
                                           .value = x ^ (uint64_t)i };
        d.slots = noise;
        d.slot_count = 8;
        size_t n;
        uint8_t *p = write_or_fail(&d, &n, NULL);
        struct ana_crash *c = load_buf(p, n);
        assert_string_equal(c->bugcheck.base_name, "PAGE_FAULT_IN_NONPAGED_AREA");
        int b = c->bugcheck.blamed_module;
        assert_true(b >= 0);
        assert_string_equal(ana_module_basename(&c->modules[b]), "CSAgent.sys");
        assert_int_equal(c->crash_info.address - c->modules[b].base, 0xe14b);
        assert_int_equal(c->modules[b].timestamp, 0x66a0c0de);
        assert_int_equal(c->threads[0].tid, d.tid);
        ana_crash_free(c);
        free(p);
    }
}

static void blame_skips_kernel_frames(void **state)
{
    /* 0x3B in ntoskrnl: the context pc is the crash address; nt and hal frames on the stack
     * are skipped; other.sys below sp (a dead frame) is not looked at; Wdf01000 is blamed. */
    struct fix_kernel d = wave_desc();
    d.bugcheck = 0x3B;
    d.params[0] = 0xc0000005;
    d.params[1] = 0;
    d.fault_driver = "ntoskrnl.exe";
    d.fault_offset = 0x1234;
    static const struct fix_kret rets[] = {
        { "ntoskrnl.exe", 0x400000 }, { "hal.dll", 0x1000 }, { "Wdf01000.sys", 0x16f81 },
        { "CSAgent.sys", 0x10 },
    };
    d.returns = rets;
    d.return_count = 4;
    const struct fix_kslot dead[] = { { 0x100, drivers[4].base + 0x40 } };
    d.slots = dead;
    d.slot_count = 1;
    size_t n;
    uint8_t *p = write_or_fail(&d, &n, NULL);
    struct ana_crash *c = load_buf(p, n);
    assert_string_equal(c->crash_info.type, "SYSTEM_SERVICE_EXCEPTION");
    assert_int_equal(c->crash_info.address, drivers[0].base + 0x1234);
    assert_string_equal(ana_module_basename(&c->modules[c->bugcheck.blamed_module]),
                        "Wdf01000.sys");
    ana_crash_free(c);
    free(p);

    /* Only kernel frames anywhere: the kernel image holding the fault is blamed. */
    d.return_count = 2;
    d.slot_count = 0;
    p = write_or_fail(&d, &n, NULL);
    c = load_buf(p, n);
    assert_int_equal(c->bugcheck.blamed_module, 0);
    ana_crash_free(c);
    free(p);

    /* A bug check without an address (0x133): the context pc decides, here inside hal. */
    d.bugcheck = 0x133;
    d.fault_driver = "hal.dll";
    d.fault_offset = 0x10;
    d.returns = rets;
    d.return_count = 4;
    p = write_or_fail(&d, &n, NULL);
    c = load_buf(p, n);
    assert_false(c->crash_info.has_address);
    assert_string_equal(ana_module_basename(&c->modules[c->bugcheck.blamed_module]),
                        "Wdf01000.sys");
    ana_crash_free(c);
    free(p);

    /* Core kernel images by name. */
    static const struct { const char *path; bool core; } names[] = {
        { "\\SystemRoot\\system32\\ntoskrnl.exe", true }, { "ntkrla57.exe", true },
        { "NTKRNLMP.EXE", true }, { "hal.dll", true }, { "halmacpi.dll", true },
        { "hal.sys", false }, { "ntfs.sys", false }, { "Wdf01000.sys", false }, { "", false },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct ana_module m = { .path = names[i].path };
        assert_int_equal(ana__kernel_is_core(&m), names[i].core);
    }

    /* The rule alone, as the stack walker will call it with frame pcs. */
    c = load_buf(p = write_or_fail(&d, &n, NULL), n);
    const uint64_t pcs[] = { drivers[0].base + 5, drivers[1].base + 5, drivers[4].base + 5 };
    assert_int_equal(ana__kernel_blame(c, true, drivers[3].base + 1, pcs, 3), 3);
    assert_int_equal(ana__kernel_blame(c, true, drivers[0].base + 1, pcs, 3), 4);
    assert_int_equal(ana__kernel_blame(c, false, 0, pcs, 2), -1);
    assert_int_equal(ana__kernel_blame(c, true, 0x10, NULL, 0), -1);
    ana_crash_free(c);
    free(p);
}

static void writer_arm64_and_full(void **state)
{
    struct fix_kernel d = wave_desc();
    d.cpu = ANA_CPU_ARM64;
    d.bugcheck = 0x1000007E;
    d.params[1] = drivers[3].base + 0x40;
    d.regs[ANA_ARM64_LR] = drivers[3].base + 0x80;
    d.regs[5] = 0x55;
    d.tid = 0; /* no process blocks */
    size_t n;
    uint8_t *p = write_or_fail(&d, &n, NULL);
    struct ana_crash *c = load_buf(p, n);
    assert_string_equal(c->system_info.cpu_arch, "arm64");
    const struct ana_thread *t = &c->threads[0];
    assert_true(t->has_ctx);
    assert_int_equal(t->ctx.r[ANA_ARM64_PC], drivers[3].base + 0xe14b);
    assert_int_equal(t->ctx.r[ANA_ARM64_LR], drivers[3].base + 0x80);
    assert_int_equal(t->ctx.r[ANA_ARM64_FP], d.fp);
    assert_int_equal(t->ctx.r[5], 0x55);
    assert_int_equal(c->crash_info.address, drivers[3].base + 0x40);
    assert_string_equal(c->crash_info.type, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M");
    assert_int_equal(c->pid, 0);
    ana_crash_free(c);
    free(p);

    /* A full dump: header facts, the context, and a "not a triage dump" warning. */
    d = wave_desc();
    d.dump_type = 1;
    p = write_or_fail(&d, &n, NULL);
    c = load_buf(p, n);
    assert_false(c->bugcheck.triage);
    assert_string_equal(c->bugcheck.dump_type, "full");
    assert_string_equal(c->crash_info.type, "PAGE_FAULT_IN_NONPAGED_AREA");
    assert_int_equal(c->module_count, 0);
    assert_true(c->threads[0].has_ctx);
    assert_true(has_warning(c, "not a triage dump"));
    ana_crash_free(c);
    free(p);
}

static void writer_hostile(void **state)
{
    struct fix_kernel base = wave_desc();
    static const struct {
        const char *what, *warning;
    } cases[] = {
        { "driver count 2^32-1", "DriverCount" },
        { "string pool size 0", "string pool" },
        { "data blocks count huge", "DataBlocksCount" },
        { "stack wraps", "wraps" },
        { "dump cut", "SizeOfDump" },
        { "no TRGD", "TRGD" },
        { "context flags 0", "ContextFlags" },
        { "unloaded count huge", "unloaded" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fix_kernel d = base;
        switch (i) {
        case 0: d.driver_count_over = FIX_OVER(0xffffffff); break;
        case 1: d.string_pool_size = FIX_OVER(0); break;
        case 2: d.data_blocks_count = FIX_OVER(0xfffffff0); break;
        case 3: d.top_of_stack = FIX_OVER(0xfffffffffffff000ull); break;
        case 4: d.size_of_dump = FIX_OVER(0x7fffffff); break;
        case 5: d.no_valid_mark = true; break;
        case 6: d.context_flags = FIX_OVER(0); break;
        case 7: d.unloaded_count_over = FIX_OVER(0x7fffffff); break;
        }
        size_t n;
        uint8_t *p = write_or_fail(&d, &n, NULL);
        struct ana_crash *c = load_buf(p, n);
        if (!has_warning(c, cases[i].warning))
            fail_msg("%s: no warning naming %s (%zu warnings)", cases[i].what, cases[i].warning,
                     c->warning_count);
        assert_string_equal(c->crash_info.type, "PAGE_FAULT_IN_NONPAGED_AREA");
        if (i == 1) {
            assert_int_equal(c->module_count, NDRIVERS);
            assert_string_equal(c->modules[0].path, "driver_0");
        }
        if (i == 6)
            assert_true(c->threads[0].bad_context);
        ana_crash_free(c);
        free(p);
    }
    /* A name offset pointing at itself (inside the driver list, outside the pool). */
    size_t n;
    struct fix_kernel_layout lay;
    uint8_t *p = write_or_fail(&base, &n, &lay);
    fix_put_u32(p, n, lay.driver_list, lay.driver_list);
    struct ana_crash *c = load_buf(p, n);
    assert_true(has_warning(c, "DriverNameOffset"));
    ana_crash_free(c);
    /* The writer's own dump truncated everywhere stays a clean outcome. */
    for (size_t cut = 0; cut < n; cut += 61)
        check_outcome(p, cut, "cut writer dump", cut);
    free(p);

    /* Descriptions the format cannot hold are refused. */
    struct fix_kernel d = base;
    struct cm_err err;
    d.fault_driver = "absent.sys";
    assert_int_equal(fix_kernel_write(&d, &p, &n, NULL, &err), CM_E_USAGE);
    d = base;
    const struct fix_kslot out_of_stack[] = { { 0x3000, 1 } };
    d.slots = out_of_stack;
    d.slot_count = 1;
    assert_int_equal(fix_kernel_write(&d, &p, &n, NULL, &err), CM_E_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(corpus_headers),
        cmocka_unit_test(corpus_model),
        cmocka_unit_test(corpus_stack),
        cmocka_unit_test(corpus_truncated),
        cmocka_unit_test(corpus_bitflips),
        cmocka_unit_test(refuses_32bit_and_garbage),
        cmocka_unit_test(bugcheck_table),
        cmocka_unit_test(writer_round_trip),
        cmocka_unit_test(writer_wave_buckets_together),
        cmocka_unit_test(blame_skips_kernel_frames),
        cmocka_unit_test(writer_arm64_and_full),
        cmocka_unit_test(writer_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
