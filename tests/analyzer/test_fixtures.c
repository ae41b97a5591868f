/* test_fixtures.c -- the MDMP reader against dumps crafted by the fixture writer: what a good
 * dump holds comes back through ana_load (every cpu's registers, modules and their ids, thread
 * names, memory, annotations, Linux streams), and hostile dumps (huge counts, overlapping
 * regions, RVAs past the end, zero-sized and duplicate streams, self-referencing offsets, bad
 * string lengths, lists past their caps) load with warnings or fail with a message, never crash.
 * The sample crashes (fix_sample) are tested in test_samples.c.
 * Expected values come from the description and the format's rules (Breakpad's debug id
 * spelling), never from the reader's own output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h> /* strcasecmp */

#include "analyzer/ana.h"
#include "tests/fixgen/fixgen.h"
#include "tests/th.h"

/* ---- helpers ---- */

static struct ana_crash *load_ok(const uint8_t *p, size_t n, const struct ana_limits *lim)
{
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    enum cm_code rc = ana_load(p, n, lim, &c, &err);
    if (rc != CM_E_OK)
        fail_msg("ana_load failed: %s: %s", cm_code_name(rc), err.msg);
    return c;
}

/* Loads a hostile dump: either it succeeds or it fails with a message. Returns the crash or
 * NULL. */
static struct ana_crash *load_any(const uint8_t *p, size_t n, const struct ana_limits *lim,
                                  enum cm_code *rc_out)
{
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    enum cm_code rc = ana_load(p, n, lim, &c, &err);
    if (rc_out)
        *rc_out = rc;
    if (rc != CM_E_OK) {
        assert_null(c);
        assert_true(err.msg[0] != 0);
    }
    return c;
}

static struct ana_crash *write_load(const struct fix_md *d, const struct ana_limits *lim)
{
    uint8_t *p;
    size_t n;
    struct cm_err err;
    assert_int_equal(fix_md_write(d, &p, &n, NULL, &err), CM_E_OK);
    struct ana_crash *c = load_ok(p, n, lim);
    free(p);
    return c;
}

static bool has_warning(const struct ana_crash *c, const char *needle)
{
    for (size_t i = 0; i < c->warning_count; i++)
        if (!needle || strstr(c->warnings[i], needle))
            return true;
    return false;
}

static void print_warnings(const struct ana_crash *c)
{
    for (size_t i = 0; i < c->warning_count; i++)
        print_message("  warning: %s\n", c->warnings[i]);
}

/* Regions in a loaded crash stay sorted and disjoint whatever the input. */
static void assert_regions_sane(const struct ana_crash *c)
{
    for (size_t i = 0; i < c->region_count; i++) {
        assert_true(c->regions[i].size > 0);
        if (i)
            assert_true(c->regions[i - 1].base + c->regions[i - 1].size <= c->regions[i].base);
    }
}

static int thread_by_tid(const struct ana_crash *c, uint32_t tid)
{
    for (size_t i = 0; i < c->thread_count; i++)
        if (c->threads[i].tid == tid)
            return (int)i;
    return -1;
}

static int module_by_base(const struct ana_crash *c, uint64_t base)
{
    for (size_t i = 0; i < c->module_count; i++)
        if (c->modules[i].base == base)
            return (int)i;
    return -1;
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

/* ---- a small, complete world to start each case from ---- */

struct world {
    struct fix_md md;
    struct fix_module mods[3];
    struct fix_thread threads[2];
    uint8_t stack[2][512];
    struct fix_region regions[4];
    uint8_t region_bytes[4][256];
};

static const uint8_t build_id[20] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99,
                                      0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01, 0x02, 0x03, 0x04 };

/* Register values that tell slots apart: slot i holds 0x0101...(i+1), cut to the cpu width. */
static uint64_t reg_value(enum ana_cpu cpu, int i)
{
    uint64_t v = 0x0101010101010101u * (uint64_t)(i + 1) + 0x10;
    return cpu == ANA_CPU_X86 || cpu == ANA_CPU_ARM ? (uint32_t)v : v;
}

static int reg_count(enum ana_cpu cpu)
{
    switch (cpu) {
    case ANA_CPU_X86: return ANA_X86_EFLAGS + 1;
    case ANA_CPU_AMD64: return ANA_AMD64_RFLAGS + 1;
    case ANA_CPU_ARM64: return ANA_ARM64_CPSR + 1;
    case ANA_CPU_ARM: return ANA_ARM_CPSR + 1;
    default: return 0;
    }
}

static void world_init(struct world *w, enum ana_cpu cpu, enum fix_os os)
{
    memset(w, 0, sizeof *w);
    struct fix_md *d = &w->md;
    d->sys = (struct fix_sysinfo){ .cpu = cpu, .os = os, .major = 10, .minor = 0, .build = 19045,
                                   .csd = "Service Pack 9", .cpu_count = 4, .level = 6,
                                   .revision = 0x5504, .vendor = "GenuineIntel",
                                   .product_type = 1 };
    if (os != FIX_OS_WINDOWS) {
        d->sys.major = 6;
        d->sys.minor = 1;
        d->sys.build = 55;
        d->sys.csd = "Linux 6.1.55 #1 SMP x86_64";
    }
    d->time_date_stamp = 1700000000;
    bool wide = cpu == ANA_CPU_AMD64 || cpu == ANA_CPU_ARM64;
    uint64_t lib = wide ? 0x7ff810000000u : 0x70000000u;
    static const struct fix_guid guid0 = { 0x5a9832e5, 0x2872, 0x41c1,
                                           { 0x83, 0x8e, 0xd9, 0x89, 0x14, 0xe9, 0xb7, 0xff } };
    w->mods[0] = (struct fix_module){ .base = wide ? 0x140000000u : 0x400000u, .size = 0x30000,
                                      .name = "C:\\app\\main.exe", .timestamp = 0x5f3e2a10,
                                      .checksum = 0x1234, .cv = FIX_CV_PDB70, .guid = guid0,
                                      .age = 1, .pdb_name = "c:\\build\\main.pdb",
                                      .has_version = true, .version = { 1, 2, 3, 4 } };
    w->mods[1] = (struct fix_module){ .base = lib, .size = 0x120000, .name = "C:\\lib\\fault.dll",
                                      .timestamp = 0x60000001, .cv = FIX_CV_PDB70,
                                      .guid = { 0x01020304, 0x0506, 0x0708,
                                                { 9, 10, 11, 12, 13, 14, 15, 16 } },
                                      .age = 0x2a, .pdb_name = "fault.pdb", .has_version = true,
                                      .version = { 4, 2, 17, 65535 } };
    w->mods[2] = (struct fix_module){ .base = lib + 0x200000, .size = 0x8000,
                                      .name = "/usr/lib/libelfy.so.1", .cv = FIX_CV_ELF,
                                      .build_id = build_id, .build_id_len = sizeof build_id };
    d->modules = w->mods;
    d->module_count = 3;
    uint64_t stack_base = wide ? 0x7ffd00001000u : 0x00101000u;
    for (int t = 0; t < 2; t++) {
        struct fix_thread *th = &w->threads[t];
        th->tid = 0x100 + 4 * (uint32_t)t;
        for (int i = 0; i < ANA_NREGS; i++)
            th->regs[i] = reg_value(cpu, i) + (uint64_t)t;
        for (size_t k = 0; k < sizeof w->stack[t]; k++)
            w->stack[t][k] = (uint8_t)(k * 7 + (size_t)t);
        th->stack_base = stack_base + 0x10000 * (uint64_t)t;
        th->stack = w->stack[t];
        th->stack_len = sizeof w->stack[t];
    }
    d->threads = w->threads;
    d->thread_count = 2;
    d->exc = (struct fix_exception){ .present = true, .tid = 0x100, .code = 0xc0000005,
                                     .address = w->mods[1].base + 0x1234, .param_count = 2,
                                     .params = { 0, 0x10 } };
    for (int r = 0; r < 4; r++)
        for (size_t k = 0; k < 256; k++)
            w->region_bytes[r][k] = (uint8_t)(r * 31 + (int)k);
}

/* ---- good dumps read back ---- */

static void windows_amd64_round_trip(void **state)
{
    struct world w;
    world_init(&w, ANA_CPU_AMD64, FIX_OS_WINDOWS);
    w.threads[0].name = "main thread";
    w.threads[1].name = "w\xc3\xb6rker \xf0\x9f\x94\xa5"; /* non-ASCII and a surrogate pair */
    w.md.thread_names = true;
    w.md.misc = (struct fix_misc){ .present = true, .level = 5, .pid = 4242,
                                   .create_time = 1699990000, .build_string = "19041.1.amd64fre" };
    struct ana_crash *c = write_load(&w.md, NULL);
    print_warnings(c);
    assert_int_equal(c->format, ANA_FMT_MINIDUMP);
    assert_int_equal(c->system_info.cpu, ANA_CPU_AMD64);
    assert_string_equal(c->system_info.cpu_arch, "amd64");
    assert_int_equal(c->system_info.cpu_count, 4);
    assert_string_equal(c->system_info.os, "Windows NT");
    assert_non_null(strstr(c->system_info.os_ver, "10.0.19045"));
    assert_non_null(strstr(c->system_info.os_ver, "Service Pack 9"));
    assert_int_equal(c->dump_time, 1700000000);
    assert_int_equal(c->pid, 4242);
    assert_int_equal(c->process_create_time, 1699990000);

    assert_int_equal(c->module_count, 3);
    const struct ana_module *m0 = &c->modules[module_by_base(c, w.mods[0].base)];
    assert_int_equal(m0->size, 0x30000);
    assert_string_equal(m0->path, "C:\\app\\main.exe");
    assert_string_equal(ana_module_basename(m0), "main.exe");
    /* Breakpad: GUID Data1-3 as numbers, Data4 bytes, then the age, upper-case hex. */
    assert_string_equal(m0->debug_id, "5A9832E5287241C1838ED98914E9B7FF1");
    assert_non_null(m0->debug_file);
    assert_non_null(strstr(m0->debug_file, "main.pdb"));
    /* PE code id: TimeDateStamp (8 hex digits) then SizeOfImage (hex). */
    assert_non_null(m0->code_id);
    assert_true(strcasecmp(m0->code_id, "5F3E2A1030000") == 0);
    assert_string_equal(m0->version, "1.2.3.4");
    assert_int_equal(m0->timestamp, 0x5f3e2a10);
    assert_int_equal(m0->checksum, 0x1234);
    const struct ana_module *m1 = &c->modules[module_by_base(c, w.mods[1].base)];
    /* The age is printed with %x, lower case, as Breakpad and the Microsoft symbol server
     * spell it: age 0x2a is "2a". */
    assert_string_equal(m1->debug_id, "0102030405060708090A0B0C0D0E0F102a");
    assert_string_equal(m1->version, "4.2.17.65535");

    assert_int_equal(c->thread_count, 2);
    int t0 = thread_by_tid(c, 0x100), t1 = thread_by_tid(c, 0x104);
    assert_true(t0 >= 0 && t1 >= 0);
    assert_string_equal(c->threads[t0].name, "main thread");
    assert_string_equal(c->threads[t1].name, "w\xc3\xb6rker \xf0\x9f\x94\xa5");
    assert_int_equal(c->threads[t0].stack_base, w.threads[0].stack_base);
    assert_int_equal(c->threads[t0].stack_size, 512);

    /* The stack memory reads back byte for byte, and not one byte past it. */
    uint8_t buf[512];
    assert_true(ana_mem_read(c, w.threads[1].stack_base, buf, sizeof buf));
    assert_memory_equal(buf, w.stack[1], sizeof buf);
    assert_false(ana_mem_read(c, w.threads[1].stack_base + 1, buf, sizeof buf));
    uint64_t v;
    assert_true(ana_mem_u64(c, w.threads[0].stack_base + 8, &v));
    uint64_t want = 0;
    for (int i = 7; i >= 0; i--)
        want = want << 8 | w.stack[0][8 + i];
    assert_int_equal(v, want);

    assert_true(c->crash_info.crashed);
    assert_reason(c->crash_info.type, "EXCEPTION_ACCESS_VIOLATION_READ");
    assert_true(c->crash_info.has_address);
    assert_int_equal(c->crash_info.address, 0x10); /* ExceptionInformation[1] */
    assert_int_equal(c->crash_info.crashing_thread, t0);
    assert_int_equal(c->crash_info.crashing_tid, 0x100);
    assert_int_equal(c->crash_info.exception_code, 0xc0000005);
    assert_int_equal(c->crash_info.param_count, 2);
    assert_int_equal(c->crash_info.params[1], 0x10);
    assert_int_equal(ana_module_at(c, w.mods[1].base + 0x1234), module_by_base(c, w.mods[1].base));
    ana_crash_free(c);
}

/* Each cpu's context layout: every register lands in its DWARF slot with its valid bit. */
static void context_reads_back(enum ana_cpu cpu, enum fix_os os)
{
    struct world w;
    world_init(&w, cpu, os);
    struct ana_crash *c = write_load(&w.md, NULL);
    print_warnings(c);
    assert_int_equal(c->system_info.cpu, cpu);
    assert_int_equal(c->thread_count, 2);
    for (int t = 0; t < 2; t++) {
        int ti = thread_by_tid(c, w.threads[t].tid);
        assert_true(ti >= 0);
        const struct ana_thread *th = &c->threads[ti];
        assert_true(th->has_ctx);
        assert_false(th->bad_context);
        assert_int_equal(th->ctx.cpu, cpu);
        for (int i = 0; i < reg_count(cpu); i++) {
            if (!ana_ctx_has(&th->ctx, i))
                fail_msg("%s thread %d: register %s (%d) not marked valid", ana_cpu_name(cpu), t,
                         ana_reg_name(cpu, i), i);
            uint64_t want = w.threads[t].regs[i];
            if (cpu == ANA_CPU_X86 || cpu == ANA_CPU_ARM ||
                (cpu == ANA_CPU_AMD64 && i == ANA_AMD64_RFLAGS) ||
                (cpu == ANA_CPU_ARM64 && i == ANA_ARM64_CPSR))
                want = (uint32_t)want; /* 32-bit registers and flags words */
            if (th->ctx.r[i] != want)
                fail_msg("%s thread %d: %s = 0x%llx, want 0x%llx", ana_cpu_name(cpu), t,
                         ana_reg_name(cpu, i), (unsigned long long)th->ctx.r[i],
                         (unsigned long long)want);
        }
    }
    ana_crash_free(c);
}

static void context_x86(void **state) { context_reads_back(ANA_CPU_X86, FIX_OS_WINDOWS); }
static void context_amd64(void **state) { context_reads_back(ANA_CPU_AMD64, FIX_OS_WINDOWS); }
static void context_arm64(void **state) { context_reads_back(ANA_CPU_ARM64, FIX_OS_ANDROID); }
static void context_arm(void **state) { context_reads_back(ANA_CPU_ARM, FIX_OS_ANDROID); }

static void linux_streams_and_elf_ids(void **state)
{
    struct world w;
    world_init(&w, ANA_CPU_AMD64, FIX_OS_LINUX);
    static const char maps[] = "7ff810200000-7ff810208000 r-xp 00000000 08:01 42 "
                               "/usr/lib/libelfy.so.1\n";
    static const char cmdline[] = "/opt/app\0--flag\0";
    static const char status[] = "Name:\tapp\nPid:\t77\n";
    static const char lsb[] = "DISTRIB_ID=Debian\n";
    static const char cpuinfo[] = "processor\t: 0\n";
    uint8_t auxv[32];
    fix_put_u64(auxv, 32, 0, 6);    /* AT_PAGESZ */
    fix_put_u64(auxv, 32, 8, 4096);
    fix_put_u64(auxv, 32, 16, 0);   /* AT_NULL */
    fix_put_u64(auxv, 32, 24, 0);
    w.md.linux_maps = (struct fix_blob){ maps, sizeof maps - 1 };
    w.md.linux_cmdline = (struct fix_blob){ cmdline, sizeof cmdline - 1 };
    w.md.linux_status = (struct fix_blob){ status, sizeof status - 1 };
    w.md.linux_lsb_release = (struct fix_blob){ lsb, sizeof lsb - 1 };
    w.md.linux_cpuinfo = (struct fix_blob){ cpuinfo, sizeof cpuinfo - 1 };
    w.md.linux_auxv = (struct fix_blob){ auxv, sizeof auxv };
    w.md.exc.code = 11;  /* SIGSEGV */
    w.md.exc.flags = 1;  /* SEGV_MAPERR */
    w.md.exc.address = 0x28;
    w.md.exc.param_count = 0;
    w.md.breakpad = (struct fix_breakpad_info){ true, 3, 0x104, 0x100 };
    struct ana_crash *c = write_load(&w.md, NULL);
    print_warnings(c);
    assert_string_equal(c->system_info.os, "Linux");
    assert_reason(c->crash_info.type, "SIGSEGV /SEGV_MAPERR");
    assert_int_equal(c->crash_info.address, 0x28);
    assert_int_equal(c->crash_info.crashing_thread, thread_by_tid(c, 0x100));
    assert_true(c->has_breakpad_info);
    assert_int_equal(c->breakpad_dump_tid, 0x104);
    assert_int_equal(c->breakpad_requesting_tid, 0x100);
    /* The dump-writing thread stays in the list, marked. */
    assert_int_equal(c->thread_count, 2);
    assert_true(c->threads[thread_by_tid(c, 0x104)].dump_writer);
    assert_false(c->threads[thread_by_tid(c, 0x100)].dump_writer);

    const struct ana_module *m = &c->modules[module_by_base(c, w.mods[2].base)];
    /* Breakpad: code id is the build id in hex; debug id its first 16 bytes as a GUID (first
     * three fields byte-swapped) with age 0. */
    assert_non_null(m->code_id);
    assert_true(strcasecmp(m->code_id, "00112233445566778899aabbccddeeff01020304") == 0);
    assert_string_equal(m->debug_id, "33221100554477668899AABBCCDDEEFF0");
    assert_int_equal(m->build_id_len, 20);
    assert_memory_equal(m->build_id, build_id, 20);
    assert_null(m->version);

    assert_non_null(c->linux_maps);
    assert_string_equal(c->linux_maps, maps);
    assert_non_null(c->linux_status);
    assert_non_null(strstr(c->linux_status, "Pid:\t77"));
    assert_non_null(c->linux_lsb_release);
    assert_non_null(strstr(c->linux_lsb_release, "Debian"));
    assert_non_null(c->linux_cpuinfo);
    assert_non_null(c->linux_cmdline);
    assert_non_null(strstr(c->linux_cmdline, "/opt/app"));
    assert_true(c->auxv_count >= 1);
    assert_int_equal(c->auxv[0], 6);
    assert_int_equal(c->auxv[1], 4096);
    ana_crash_free(c);
}

static void crashpad_annotations(void **state)
{
    struct world w;
    world_init(&w, ANA_CPU_AMD64, FIX_OS_MACOS);
    static const struct fix_kv simple[] = { { "host", "host-000042" }, { "channel", "beta" } };
    static const char *const list[] = { "first list entry" };
    static const struct fix_kv msimple[] = { { "mkey", "mval" } };
    static const struct fix_annotation_obj objs[] = { { "exceptionName", 1, "NSRangeException",
                                                        16 } };
    static const struct fix_crashpad_module cm[] = {
        { .module_index = 1, .list = list, .list_count = 1, .simple = msimple, .simple_count = 1,
          .objs = objs, .obj_count = 1 },
    };
    w.md.crashpad = (struct fix_crashpad){ .present = true, .simple = simple, .simple_count = 2,
                                           .modules = cm, .module_count = 1 };
    w.md.exc.code = 1;  /* EXC_BAD_ACCESS */
    w.md.exc.flags = 1; /* KERN_INVALID_ADDRESS */
    w.md.exc.address = 0x7f;
    w.md.exc.param_count = 0;
    struct ana_crash *c = write_load(&w.md, NULL);
    print_warnings(c);
    assert_string_equal(c->system_info.os, "Mac OS X");
    assert_reason(c->crash_info.type, "EXC_BAD_ACCESS / KERN_INVALID_ADDRESS");
    bool host = false, channel = false, mlist = false, mkv = false, obj = false;
    for (size_t i = 0; i < c->annotation_count; i++) {
        const struct ana_annotation *a = &c->annotations[i];
        if (!a->module && strcmp(a->key, "host") == 0)
            host = strcmp(a->value, "host-000042") == 0;
        if (!a->module && strcmp(a->key, "channel") == 0)
            channel = strcmp(a->value, "beta") == 0;
        if (a->module && strcmp(a->value, "first list entry") == 0)
            mlist = strcmp(a->module, w.mods[1].name) == 0;
        if (a->module && strcmp(a->key, "mkey") == 0)
            mkv = strcmp(a->value, "mval") == 0 && strcmp(a->module, w.mods[1].name) == 0;
        if (a->module && strcmp(a->key, "exceptionName") == 0)
            obj = strcmp(a->value, "NSRangeException") == 0;
    }
    assert_true(host);
    assert_true(channel);
    assert_true(mlist);
    assert_true(mkv);
    assert_true(obj);
    ana_crash_free(c);
}

static void memory64_and_unloaded(void **state)
{
    struct world w;
    world_init(&w, ANA_CPU_AMD64, FIX_OS_WINDOWS);
    w.regions[0] = (struct fix_region){ .base = 0x200000, .data = w.region_bytes[0], .size = 256 };
    w.regions[1] = (struct fix_region){ .base = 0x100000, .data = w.region_bytes[1], .size = 256 };
    w.md.regions = w.regions;
    w.md.region_count = 2;
    w.md.memory64 = true;
    static const struct fix_module unl[] = { { .base = 0x7ff820000000u, .size = 0x5000,
                                               .name = "C:\\old\\gone.dll",
                                               .timestamp = 0x600d } };
    w.md.unloaded = unl;
    w.md.unloaded_count = 1;
    struct ana_crash *c = write_load(&w.md, NULL);
    print_warnings(c);
    uint8_t b[256];
    assert_true(ana_mem_read(c, 0x100000, b, 256));
    assert_memory_equal(b, w.region_bytes[1], 256);
    assert_true(ana_mem_read(c, 0x200000, b, 256));
    assert_memory_equal(b, w.region_bytes[0], 256);
    assert_true(ana_mem_read(c, w.threads[0].stack_base, b, 256));
    assert_memory_equal(b, w.stack[0], 256);
    assert_int_equal(c->unloaded_module_count, 1);
    assert_string_equal(c->unloaded_modules[0].path, "C:\\old\\gone.dll");
    assert_int_equal(c->unloaded_modules[0].base, 0x7ff820000000u);
    assert_int_equal(c->unloaded_modules[0].size, 0x5000);
    assert_regions_sane(c);
    ana_crash_free(c);
}

static void memory_info_list(void **state)
{
    struct world w;
    world_init(&w, ANA_CPU_AMD64, FIX_OS_WINDOWS);
    static const struct fix_meminfo mi[] = {
        { 0x7ff810001000u, 0x7ff810000000u, 0x1000, 0x80, 0x1000, 0x20, 0x1000000 }, /* r-x */
        { 0x7ff810002000u, 0x7ff810000000u, 0x1000, 0x80, 0x1000, 0x04, 0x1000000 }, /* rw- */
    };
    w.md.meminfo = mi;
    w.md.meminfo_count = 2;
    struct ana_crash *c = write_load(&w.md, NULL);
    print_warnings(c);
    const struct ana_mapping *x = ana_mapping_at(c, 0x7ff810001800u);
    assert_non_null(x);
    assert_true(x->prot & ANA_PROT_X);
    assert_true(x->prot & ANA_PROT_R);
    const struct ana_mapping *rw = ana_mapping_at(c, 0x7ff810002000u);
    assert_non_null(rw);
    assert_false(rw->prot & ANA_PROT_X);
    assert_true(rw->prot & ANA_PROT_W);
    ana_crash_free(c);
}

/* ---- hostile dumps ---- */

static void huge_counts(void **state)
{
    /* One list count at a time claims far more entries than its stream holds. */
    for (int k = 0; k < 7; k++) {
        struct world w;
        world_init(&w, ANA_CPU_AMD64, FIX_OS_WINDOWS);
        w.md.thread_names = true;
        w.threads[0].name = "t";
        static const struct fix_meminfo mi[1] = {
            { 0x1000, 0x1000, 0x1000, 4, 0x1000, 4, 0x20000 },
        };
        w.md.meminfo = mi;
        w.md.meminfo_count = 1;
        static const struct fix_module unl[1] = { { .base = 0x9000000, .size = 0x1000,
                                                    .name = "u.dll" } };
        w.md.unloaded = unl;
        w.md.unloaded_count = 1;
        w.md.memory64 = k == 6;
        switch (k) {
        case 0: w.md.thread_count_over = FIX_OVER(0xffffffffu); break;
        case 1: w.md.module_count_over = FIX_OVER(0x10000000u); break;
        case 2: w.md.region_count_over = FIX_OVER(0xfffffff0u); break;
        case 3: w.md.unloaded_count_over = FIX_OVER(0xffffffffu); break;
        case 4: w.md.name_count_over = FIX_OVER(0x7fffffffu); break;
        case 5: w.md.meminfo_count_over = FIX_OVER(0x1000000000000001u); break;
        case 6: w.md.region_count_over = FIX_OVER(0x1000000000000001u); break; /* 16*n wraps */
        }
        struct ana_crash *c = write_load(&w.md, NULL);
        if (!has_warning(c, NULL))
            fail_msg("case %d: a count past its stream loaded without a warning", k);
        assert_true(c->thread_count <= 2);
        assert_true(c->module_count <= 3);
        assert_true(c->unloaded_module_count <= 1);
        assert_regions_sane(c);
        /* The other lists are untouched. */
        if (k != 0)
            assert_int_equal(c->thread_count, 2);
        if (k != 1)
            assert_int_equal(c->module_count, 3);
        ana_crash_free(c);
    }
}

static void overlapping_regions_keep_the_good(void **state)
{
    struct world w;
    world_init(&w, ANA_CPU_AMD64, FIX_OS_WINDOWS);
    w.regions[0] = (struct fix_region){ .base = 0x10000, .data = w.region_bytes[0], .size = 256 };
    w.regions[1] = (struct fix_region){ .base = 0x10080, .data = w.region_bytes[1], .size = 256 };
    w.regions[2] = (struct fix_region){ .base = 0x20000, .data = w.region_bytes[2], .size = 256 };
    /* Its bytes lie past the end of the file. */
    w.regions[3] = (struct fix_region){ .base = 0x30000, .data = w.region_bytes[3], .size = 256,
                                        .rva = FIX_OVER(0xfffff000u) };
    w.md.regions = w.regions;
    w.md.region_count = 4;
    struct ana_crash *c = write_load(&w.md, NULL);
    print_warnings(c);
    assert_true(c->warning_count >= 2); /* the overlap and the region outside the file */
    assert_regions_sane(c);
    uint8_t b[256];
    assert_true(ana_mem_read(c, 0x20000, b, 256)); /* the good region after the bad ones */
    assert_memory_equal(b, w.region_bytes[2], 256);
    assert_true(ana_mem_read(c, 0x10000, b, 128)); /* the first of the overlapping pair */
    assert_memory_equal(b, w.region_bytes[0], 128);
    assert_null(ana_mem_region(c, 0x30000));
    assert_true(ana_mem_read(c, w.threads[0].stack_base, b, 256)); /* stacks kept */
    ana_crash_free(c);
}

static void region_size_past_eof(void **state)
{
    struct world w;
    world_init(&w, ANA_CPU_AMD64, FIX_OS_WINDOWS);
    w.regions[0] = (struct fix_region){ .base = 0x50000, .data = w.region_bytes[0], .size = 256,
                                        .data_size = FIX_OVER(0x7fffffffu) };
    w.regions[1] = (struct fix_region){ .base = 0x60000, .data = w.region_bytes[1], .size = 256 };
    w.md.regions = w.regions;
    w.md.region_count = 2;
    struct ana_crash *c = write_load(&w.md, NULL);
    print_warnings(c);
    assert_true(has_warning(c, NULL));
    assert_regions_sane(c);
    uint8_t b[256];
    assert_true(ana_mem_read(c, 0x60000, b, 256));
    assert_memory_equal(b, w.region_bytes[1], 256);
    /* Never more bytes than the file holds. */
    const struct ana_region *r = ana_mem_region(c, 0x50000);
    if (r)
        assert_true(r->size <= c->byte_count);
    ana_crash_free(c);
}

/* Directory entries pointing past the end of the file: that stream is skipped with a warning,
 * the others are read. */
static void stream_rva_past_eof(void **state)
{
    const uint32_t types[] = { FIX_MD_MODULE_LIST, FIX_MD_THREAD_LIST, FIX_MD_SYSTEM_INFO,
                               FIX_MD_EXCEPTION, FIX_MD_MEMORY_LIST };
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        struct world w;
        world_init(&w, ANA_CPU_AMD64, FIX_OS_WINDOWS);
        uint8_t *p;
        size_t n;
        struct fix_md_layout l;
        struct cm_err err;
        assert_int_equal(fix_md_write(&w.md, &p, &n, &l, &err), CM_E_OK);
        for (size_t i = 0; i < l.dir_count; i++)
            if (l.dir[i].type == types[k])
                fix_put_u32(p, n, l.dir_rva + 12 * i + 8, (uint32_t)n - 4); /* 4 bytes before EOF */
        struct ana_crash *c = load_ok(p, n, NULL);
        if (!has_warning(c, NULL))
            fail_msg("stream type %u past EOF loaded without a warning", types[k]);
        if (types[k] != FIX_MD_MODULE_LIST)
            assert_int_equal(c->module_count, 3);
        if (types[k] == FIX_MD_MODULE_LIST)
            assert_int_equal(c->module_count, 0);
        if (types[k] != FIX_MD_THREAD_LIST)
            assert_int_equal(c->thread_count, 2);
        assert_regions_sane(c);
        ana_crash_free(c);
        free(p);
    }
}

static void context_past_eof_or_short(void **state)
{
    struct world w;
    world_init(&w, ANA_CPU_AMD64, FIX_OS_WINDOWS);
    w.threads[0].ctx_rva = FIX_OVER(0xffffff00u);
    w.threads[1].ctx_size = FIX_OVER(100); /* far shorter than an AMD64 CONTEXT */
    w.md.exc.present = false; /* else thread 0x100 would take the exception's context */
    struct ana_crash *c = write_load(&w.md, NULL);
    print_warnings(c);
    assert_int_equal(c->thread_count, 2); /* threads are kept, their contexts marked bad */
    for (size_t i = 0; i < 2; i++)
        assert_true(c->threads[i].bad_context || !c->threads[i].has_ctx);
    assert_true(c->warning_count >= 2);
    ana_crash_free(c);

    /* With the exception back, the crashing thread has the exception record's context, as
     * Breakpad's processor uses it, even though its own is unreadable. */
    w.md.exc.present = true;
    c = write_load(&w.md, NULL);
    int t0 = thread_by_tid(c, 0x100);
    assert_int_equal(c->crash_info.crashing_thread, t0);
    assert_true(c->crash_info.has_exception_ctx);
    assert_int_equal(c->crash_info.exception_ctx.r[ANA_AMD64_RIP],
                     w.threads[0].regs[ANA_AMD64_RIP]);
    ana_crash_free(c);
}

static void zero_sized_streams(void **state)
{
    struct world w;
    world_init(&w, ANA_CPU_AMD64, FIX_OS_WINDOWS);
    /* An unused entry (type 0, as Breakpad leaves them), an empty ThreadList that comes first
     * and an empty unknown stream pointing past the end: none of them breaks the dump. */
    const struct fix_stream extra[] = {
        { .type = 0 },
        { .type = FIX_MD_THREAD_LIST, .before = true, .rva = FIX_OVER(0),
          .dir_size = FIX_OVER(0) },
        { .type = 0x12345678, .size = 0, .rva = FIX_OVER(0xffffffffu) },
    };
    w.md.extra = extra;
    w.md.extra_count = 3;
    uint8_t *p;
    size_t n;
    struct cm_err err;
    assert_int_equal(fix_md_write(&w.md, &p, &n, NULL, &err), CM_E_OK);
    enum cm_code rc;
    struct ana_crash *c = load_any(p, n, NULL, &rc);
    assert_int_equal(rc, CM_E_OK);
    print_warnings(c);
    assert_int_equal(c->module_count, 3);
    assert_int_equal(c->system_info.cpu, ANA_CPU_AMD64);
    ana_crash_free(c);
    free(p);

    /* A zero-sized SystemInfo: cpu unknown, with a warning, the rest read. */
    world_init(&w, ANA_CPU_AMD64, FIX_OS_WINDOWS);
    struct fix_md_layout l;
    assert_int_equal(fix_md_write(&w.md, &p, &n, &l, &err), CM_E_OK);
    for (size_t i = 0; i < l.dir_count; i++)
        if (l.dir[i].type == FIX_MD_SYSTEM_INFO)
            fix_put_u32(p, n, l.dir_rva + 12 * i + 4, 0);
    c = load_ok(p, n, NULL);
    assert_true(has_warning(c, NULL));
    assert_int_equal(c->module_count, 3);
    ana_crash_free(c);
    free(p);
}

static void duplicate_streams_first_wins(void **state)
{
    struct world a, b;
    world_init(&a, ANA_CPU_AMD64, FIX_OS_WINDOWS);
    world_init(&b, ANA_CPU_AMD64, FIX_OS_WINDOWS);
    b.md.sys.cpu_count = 64;
    b.md.misc = (struct fix_misc){ .present = true, .level = 1, .pid = 999 };
    b.mods[0].name = "C:\\other\\second.exe";
    a.md.misc = (struct fix_misc){ .present = true, .level = 1, .pid = 111 };
    const struct fix_stream after[] = {
        { .type = FIX_MD_SYSTEM_INFO, .from = &b.md },
        { .type = FIX_MD_MISC_INFO, .from = &b.md },
        { .type = FIX_MD_MODULE_LIST, .from = &b.md },
    };
    a.md.extra = after;
    a.md.extra_count = 3;
    struct ana_crash *c = write_load(&a.md, NULL);
    assert_int_equal(c->system_info.cpu_count, 4);
    assert_int_equal(c->pid, 111);
    assert_string_equal(c->modules[module_by_base(c, a.mods[0].base)].path, "C:\\app\\main.exe");
    ana_crash_free(c);

    /* The same duplicates placed first in the directory win instead. */
    const struct fix_stream before[] = {
        { .type = FIX_MD_SYSTEM_INFO, .from = &b.md, .before = true },
        { .type = FIX_MD_MISC_INFO, .from = &b.md, .before = true },
        { .type = FIX_MD_MODULE_LIST, .from = &b.md, .before = true },
    };
    a.md.extra = before;
    c = write_load(&a.md, NULL);
    assert_int_equal(c->system_info.cpu_count, 64);
    assert_int_equal(c->pid, 999);
    assert_string_equal(c->modules[module_by_base(c, a.mods[0].base)].path,
                        "C:\\other\\second.exe");
    ana_crash_free(c);
}

static void self_referencing_offsets(void **state)
{
    for (int k = 0; k < 7; k++) {
        struct world w;
        world_init(&w, ANA_CPU_AMD64, FIX_OS_WINDOWS);
        w.md.thread_names = true;
        w.threads[0].name = "loop";
        static const struct fix_kv kv[] = { { "k", "v" } };
        w.md.crashpad = (struct fix_crashpad){ .present = true, .simple = kv, .simple_count = 1 };
        uint8_t *p;
        size_t n;
        struct fix_md_layout l;
        struct cm_err err;
        assert_int_equal(fix_md_write(&w.md, &p, &n, &l, &err), CM_E_OK);
        uint32_t ml = fix_md_stream_rva(&l, FIX_MD_MODULE_LIST);
        uint32_t tl = fix_md_stream_rva(&l, FIX_MD_THREAD_LIST);
        uint32_t ex = fix_md_stream_rva(&l, FIX_MD_EXCEPTION);
        uint32_t cp = fix_md_stream_rva(&l, FIX_MD_CRASHPAD_INFO);
        switch (k) {
        case 0: /* the directory starts at the header */
            fix_put_u32(p, n, 12, 0);
            break;
        case 1: /* a module's name is the module entry itself */
            fix_put_u32(p, n, l.module_entry[0] + 20, l.module_entry[0]);
            break;
        case 2: /* a CodeView record is the module list */
            fix_put_u32(p, n, l.module_entry[1] + 76, 108);
            fix_put_u32(p, n, l.module_entry[1] + 80, ml);
            break;
        case 3: /* a thread context is the thread list */
            fix_put_u32(p, n, l.thread_entry[0] + 44, tl);
            break;
        case 4: /* the exception context is the exception stream */
            fix_put_u32(p, n, ex + 164, ex);
            break;
        case 5: { /* the Crashpad dictionary's key is the dictionary itself */
            uint32_t dict = 0;
            for (int i = 0; i < 4; i++)
                dict |= (uint32_t)p[cp + 40 + i] << (8 * i);
            fix_put_u32(p, n, dict + 4, dict);
            fix_put_u32(p, n, cp + 40, cp); /* and the simple annotations point at the stream */
            break;
        }
        case 6: /* a thread name points into the name list */
            fix_put_u64(p, n, l.name_entry[0] + 4, l.name_entry[0]);
            break;
        }
        enum cm_code rc;
        struct ana_crash *c = load_any(p, n, NULL, &rc);
        if (c) {
            assert_true(c->thread_count <= 2);
            assert_true(c->module_count <= 3);
            assert_regions_sane(c);
            if (k >= 1) /* only the directory itself may fail the whole dump */
                assert_int_equal(c->thread_count, 2);
            ana_crash_free(c);
        } else {
            assert_int_equal(k, 0);
        }
        free(p);
    }
}

static void strings_with_bad_lengths(void **state)
{
    const uint64_t lens[] = { 0xffffffffu, 0x7ffffffe, 3, 0, 1 };
    for (size_t k = 0; k < sizeof lens / sizeof *lens + 1; k++) {
        struct world w;
        world_init(&w, ANA_CPU_AMD64, FIX_OS_WINDOWS);
        if (k < sizeof lens / sizeof *lens)
            w.mods[1].name_len = FIX_OVER(lens[k]);
        else /* last: the name's RVA points past the end of the file */
            w.mods[1].name_rva = FIX_OVER(0xfffffff0u);
        uint64_t len = k < sizeof lens / sizeof *lens ? lens[k] : 0x10000;
        struct ana_crash *c = write_load(&w.md, NULL);
        assert_int_equal(c->module_count, 3);
        const struct ana_module *m = &c->modules[module_by_base(c, w.mods[1].base)];
        if (len == 3) /* odd: one whole UTF-16 unit */
            assert_true(m->path == NULL || strcmp(m->path, "C") == 0);
        if (len <= 1)
            assert_true(m->path == NULL || m->path[0] == 0);
        if (len > 0x1000) {
            assert_true(has_warning(c, NULL));
            assert_true(m->path == NULL || strlen(m->path) <= c->limits.max_string_bytes);
        }
        /* The good modules around it keep their names. */
        assert_string_equal(c->modules[module_by_base(c, w.mods[0].base)].path,
                            "C:\\app\\main.exe");
        ana_crash_free(c);
    }
}

static void lists_past_their_caps_are_cut(void **state)
{
    enum { NMOD = 12, NTHR = 6, NREG = 10 };
    static struct fix_module mods[NMOD];
    static struct fix_thread thr[NTHR];
    static struct fix_region regs[NREG];
    static uint8_t bytes[64];
    static char names[NMOD][32];
    struct world w;
    world_init(&w, ANA_CPU_AMD64, FIX_OS_WINDOWS);
    for (int i = 0; i < NMOD; i++) {
        snprintf(names[i], sizeof names[i], "C:\\m\\mod%02d.dll", i);
        mods[i] = (struct fix_module){ .base = 0x10000000u + 0x100000u * (uint64_t)i,
                                       .size = 0x1000, .name = names[i] };
    }
    for (int i = 0; i < NTHR; i++) {
        thr[i] = w.threads[0];
        thr[i].tid = 0x100 + 4 * (uint32_t)i;
        thr[i].stack_base = 0x300000 + 0x10000 * (uint64_t)i;
    }
    for (int i = 0; i < NREG; i++)
        regs[i] = (struct fix_region){ .base = 0x800000 + 0x1000 * (uint64_t)i, .data = bytes,
                                       .size = sizeof bytes };
    w.md.modules = mods;
    w.md.module_count = NMOD;
    w.md.threads = thr;
    w.md.thread_count = NTHR;
    w.md.regions = regs;
    w.md.region_count = NREG;
    struct ana_limits lim;
    ana_limits_default(&lim);
    lim.max_modules = 5;
    lim.max_threads = 4;
    lim.max_regions = 7;
    struct ana_crash *c = write_load(&w.md, &lim);
    print_warnings(c);
    assert_int_equal(c->module_count, 5);
    assert_int_equal(c->thread_count, 4);
    assert_true(c->region_count <= 7);
    assert_true(c->warning_count >= 3);
    /* the first entries are the ones kept */
    assert_true(module_by_base(c, mods[0].base) >= 0);
    assert_true(thread_by_tid(c, 0x100) >= 0);
    ana_crash_free(c);

    /* At the cap exactly: nothing cut, no warning about it. */
    lim.max_modules = NMOD;
    lim.max_threads = NTHR;
    lim.max_regions = 64;
    c = write_load(&w.md, &lim);
    assert_int_equal(c->module_count, NMOD);
    assert_int_equal(c->thread_count, NTHR);
    ana_crash_free(c);
}

static void header_and_directory_failures(void **state)
{
    struct world w;
    world_init(&w, ANA_CPU_AMD64, FIX_OS_WINDOWS);
    uint8_t *p;
    size_t n;
    struct cm_err err;
    assert_int_equal(fix_md_write(&w.md, &p, &n, NULL, &err), CM_E_OK);
    enum cm_code rc;
    /* Cut inside the header, inside the directory. */
    assert_null(load_any(p, 20, NULL, &rc));
    assert_int_not_equal(rc, CM_E_OK);
    assert_null(load_any(p, 40, NULL, &rc));
    assert_int_not_equal(rc, CM_E_OK);
    /* Directory past EOF; a stream count that cannot fit. */
    uint8_t *q = malloc(n);
    memcpy(q, p, n);
    fix_put_u32(q, n, 12, (uint32_t)n + 100);
    assert_null(load_any(q, n, NULL, &rc));
    memcpy(q, p, n);
    fix_put_u32(q, n, 8, 0xffffffffu);
    struct ana_crash *c = load_any(q, n, NULL, &rc); /* fails, or reads up to the cap */
    if (c) {
        assert_true(has_warning(c, NULL));
        ana_crash_free(c);
    }
    free(q);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(windows_amd64_round_trip),
        cmocka_unit_test(context_x86),
        cmocka_unit_test(context_amd64),
        cmocka_unit_test(context_arm64),
        cmocka_unit_test(context_arm),
        cmocka_unit_test(linux_streams_and_elf_ids),
        cmocka_unit_test(crashpad_annotations),
        cmocka_unit_test(memory64_and_unloaded),
        cmocka_unit_test(memory_info_list),
        cmocka_unit_test(huge_counts),
        cmocka_unit_test(overlapping_regions_keep_the_good),
        cmocka_unit_test(region_size_past_eof),
        cmocka_unit_test(stream_rva_past_eof),
        cmocka_unit_test(context_past_eof_or_short),
        cmocka_unit_test(zero_sized_streams),
        cmocka_unit_test(duplicate_streams_first_wins),
        cmocka_unit_test(self_referencing_offsets),
        cmocka_unit_test(strings_with_bad_lengths),
        cmocka_unit_test(lists_past_their_caps_are_cut),
        cmocka_unit_test(header_and_directory_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
