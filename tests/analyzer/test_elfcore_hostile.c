/* test_elfcore_hostile.c -- the ELF core reader on hostile input (RELIABILITY.md E01-E11): a
 * corpus core patched in memory (bad identity and header fields, PN_XNUM, broken section
 * tables, bad PT_LOADs, oversized and short notes, broken NT_FILE tables) and cut at many
 * offsets; and synthetic cores from elfcore_writer.c for machines the corpus lacks (i386,
 * aarch64, arm registers checked against eu-readelf) and for thread limits. */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyzer/ana_int.h"
#include "common/cm_alloc.h"
#include "tests/analyzer/elfcore_ref.h"
#include "tests/analyzer/elfcore_test.h"
#include "tests/analyzer/elfcore_writer.h"
#include "tests/th.h"

/* ---- a corpus core to patch: SIGSEGV /SEGV_MAPERR at 0xe (manifest.tsv) ---- */

struct img {
    uint8_t *p;
    size_t n;
};

static struct img base_core(void)
{
    size_t zn;
    struct img m;
    struct cm_err err;
    uint8_t *z = th_read(th_corpus("elfcores/dumps/core.01ec17d51a7ce5bd.zst"), &zn);
    assert_int_equal(ana_decompress(z, zn, NULL, &m.p, &m.n, &err), CM_E_OK);
    free(z);
    return m;
}

static Elf64_Ehdr ehdr_of(struct img m)
{
    Elf64_Ehdr e;
    memcpy(&e, m.p, sizeof e);
    return e;
}

/* File offset of the nth program header of type. */
static size_t phdr_off(struct img m, uint32_t type, unsigned nth)
{
    Elf64_Ehdr e = ehdr_of(m);
    for (unsigned i = 0; i < e.e_phnum; i++) {
        Elf64_Phdr ph;
        size_t off = e.e_phoff + (size_t)i * sizeof ph;
        memcpy(&ph, m.p + off, sizeof ph);
        if (ph.p_type == type && nth-- == 0)
            return off;
    }
    fail_msg("no program header %u of type %u", nth, type);
    return 0;
}

static Elf64_Phdr phdr_get(struct img m, size_t off)
{
    Elf64_Phdr ph;
    memcpy(&ph, m.p + off, sizeof ph);
    return ph;
}

/* File offset of the header of the first note of type in the PT_NOTE segment. */
static size_t note_off(struct img m, uint32_t type)
{
    Elf64_Phdr ph = phdr_get(m, phdr_off(m, PT_NOTE, 0));
    for (size_t off = ph.p_offset; off + 12 <= ph.p_offset + ph.p_filesz;) {
        Elf64_Nhdr nh;
        memcpy(&nh, m.p + off, sizeof nh);
        if (nh.n_type == type)
            return off;
        off += 12 + (nh.n_namesz + 3) / 4 * 4 + (nh.n_descsz + 3) / 4 * 4;
    }
    fail_msg("no note of type 0x%x", type);
    return 0;
}

static void put32(struct img m, size_t off, uint32_t v) { memcpy(m.p + off, &v, 4); }
static void put64(struct img m, size_t off, uint64_t v) { memcpy(m.p + off, &v, 8); }

/* Shrinks a "CORE" note's descriptor to n bytes and fills the freed room with a note of an
 * unknown type, so the notes after it stay where they were. */
static void shrink_note(struct img m, size_t off, uint32_t n)
{
    Elf64_Nhdr nh;
    memcpy(&nh, m.p + off, sizeof nh);
    size_t desc = off + 12 + (nh.n_namesz + 3) / 4 * 4;
    size_t old = (nh.n_descsz + 3) / 4 * 4, now = (n + 3u) / 4 * 4;
    assert_true(now + 12 <= old);
    put32(m, off + 4, n);
    put32(m, desc + now, 0);
    put32(m, desc + now + 4, (uint32_t)(old - now - 12));
    put32(m, desc + now + 8, 0x7777);
}

static struct img dup_img(struct img m, size_t extra)
{
    struct img d = { malloc(m.n + extra), m.n };
    memcpy(d.p, m.p, m.n);
    return d;
}

/* ---- E01-E04, E11: the ELF header ---- */

void header_errors(void **state)
{
    struct img base = base_core(), m = dup_img(base, 0);
    size_t n = m.n;
#define RESET() memcpy(m.p, base.p, n)
    m.p[16] = ET_EXEC; /* e_type */
    expect_fail(m.p, n, CM_E_NOTDUMP, "ET_EXEC");
    RESET();
    m.p[EI_CLASS] = 3;
    expect_fail(m.p, n, CM_E_CORRUPT, "EI_CLASS");
    RESET();
    m.p[EI_DATA] = 0;
    expect_fail(m.p, n, CM_E_CORRUPT, "EI_DATA");
    RESET();
    m.p[EI_DATA] = ELFDATA2MSB;
    expect_fail(m.p, n, CM_E_UNSUPPORTED, "big-endian");
    RESET();
    m.p[EI_CLASS] = ELFCLASS32; /* an x86-64 core cannot be ELFCLASS32 */
    expect_fail(m.p, n, CM_E_CORRUPT, "does not match");
    RESET();
    m.p[18] = 0; /* e_machine EM_NONE */
    expect_fail(m.p, n, CM_E_CORRUPT, "EM_NONE");
    RESET();
    m.p[18] = 0x99; /* unknown e_machine */
    m.p[19] = 0x99;
    expect_fail(m.p, n, CM_E_UNSUPPORTED, "e_machine");
    RESET();
    m.p[54] = 32; /* e_phentsize */
    expect_fail(m.p, n, CM_E_CORRUPT, "e_phentsize");
    RESET();
    put64(m, 32, n + 8); /* e_phoff past EOF */
    expect_fail(m.p, n, CM_E_TRUNCATED, "e_phoff");
    RESET();
    m.p[56] = 0xfe; /* e_phnum 0xfffe */
    m.p[57] = 0xff;
    expect_fail(m.p, n, CM_E_TRUNCATED, "program header table");
    RESET();
    m.p[56] = m.p[57] = 0;
    expect_fail(m.p, n, CM_E_CORRUPT, "no program headers");
    RESET();
    expect_fail(m.p, 40, CM_E_TRUNCATED, "ELF header");
    expect_fail(m.p, 10, CM_E_TRUNCATED, "e_ident");
#undef RESET
    free(m.p);
    cm_free(base.p);
}

/* A real executable from the symbol store is an ELF file but no core. */
void executable_is_not_a_core(void **state)
{
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    const char *exe = th_corpus("elfcores/symbols/.build-id/ae/35315291017e562815d378c44122c43ed"
                                "41465");
    assert_int_equal(ana_load_file(exe, NULL, &c, &err), CM_E_NOTDUMP);
    assert_non_null(strstr(err.msg, "not ET_CORE"));
    assert_null(c);
}

/* gABI extended numbering: e_phnum PN_XNUM, the count in section 0's sh_info. */
void pn_xnum(void **state)
{
    struct img base = base_core(), m = dup_img(base, sizeof(Elf64_Shdr));
    Elf64_Ehdr e = ehdr_of(base);
    Elf64_Shdr s0 = { .sh_info = e.e_phnum };
    memcpy(m.p + base.n, &s0, sizeof s0);
    m.n = base.n + sizeof s0;
    e.e_phnum = PN_XNUM;
    e.e_shoff = base.n;
    e.e_shentsize = sizeof s0;
    e.e_shnum = 1;
    memcpy(m.p, &e, sizeof e);
    struct ana_crash *want = expect_ok(base.p, base.n, NULL, NULL);
    struct ana_crash *c = expect_ok(m.p, m.n, NULL, NULL);
    assert_int_equal(c->thread_count, want->thread_count);
    assert_int_equal(c->module_count, want->module_count);
    assert_int_equal(c->region_count, want->region_count);
    assert_int_equal(c->mapping_count, want->mapping_count);
    ana_crash_free(c);
    s0.sh_info = 0x7fffffff; /* more entries than the file holds */
    memcpy(m.p + base.n, &s0, sizeof s0);
    expect_fail(m.p, m.n, CM_E_TRUNCATED, "program header table");
    e.e_shoff = 0; /* PN_XNUM without section 0 */
    memcpy(m.p, &e, sizeof e);
    expect_fail(m.p, m.n, CM_E_CORRUPT, "PN_XNUM");
    ana_crash_free(want);
    free(m.p);
    cm_free(base.p);
}

/* E11: the core needs no sections; broken section tables are ignored or refused cleanly. */
void section_headers(void **state)
{
    struct img base = base_core(), m = dup_img(base, sizeof(Elf64_Shdr));
    Elf64_Ehdr e = ehdr_of(base);
    e.e_shoff = base.n + 4096; /* past EOF */
    e.e_shnum = 5;
    e.e_shentsize = sizeof(Elf64_Shdr);
    e.e_shstrndx = 77;
    memcpy(m.p, &e, sizeof e);
    ana_crash_free(expect_ok(m.p, m.n, NULL, NULL));
    Elf64_Shdr s0 = { .sh_size = 1ull << 33 }; /* e_shnum 0: count in sh_size, beyond 32 bits */
    memcpy(m.p + base.n, &s0, sizeof s0);
    m.n = base.n + sizeof s0;
    e.e_shoff = base.n;
    e.e_shnum = 0;
    memcpy(m.p, &e, sizeof e);
    expect_fail(m.p, m.n, CM_E_CORRUPT, "sh_size");
    s0.sh_size = 5; /* a table running past EOF: libelf ignores it, so do we */
    memcpy(m.p + base.n, &s0, sizeof s0);
    ana_crash_free(expect_ok(m.p, m.n, NULL, NULL));
    e.e_shoff = 64; /* 5000 entries inside the file: more than a core carries */
    e.e_shnum = 5000;
    memcpy(m.p, &e, sizeof e);
    struct ana_limits lim;
    ana_limits_default(&lim);
    lim.max_regions = 64;
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    assert_int_equal(load_exact(m.p, m.n, &lim, &c, &err), CM_E_LIMIT);
    assert_non_null(strstr(err.msg, "section headers"));
    free(m.p);
    cm_free(base.p);
}

/* ---- E05, E06: PT_LOAD ---- */

void load_segments(void **state)
{
    struct img base = base_core(), m = dup_img(base, 0);
    size_t off = phdr_off(m, PT_LOAD, 0);
    Elf64_Phdr ph = phdr_get(m, off);
    struct ana_crash *c;

    put64(m, off + 32, ph.p_memsz + 0x1000); /* p_filesz > p_memsz */
    c = expect_ok(m.p, m.n, NULL, "exceeds p_memsz");
    assert_int_equal(ana_mem_region(c, ph.p_vaddr)->size, ph.p_memsz);
    ana_crash_free(c);
    memcpy(m.p, base.p, m.n);

    put64(m, off + 16, UINT64_MAX - 0x800); /* p_vaddr + p_memsz wraps */
    c = expect_ok(m.p, m.n, NULL, "wraps");
    assert_null(ana_mapping_at(c, UINT64_MAX - 0x10));
    ana_crash_free(c);
    memcpy(m.p, base.p, m.n);

    Elf64_Phdr next = phdr_get(m, phdr_off(m, PT_LOAD, 1)); /* 2nd PT_LOAD onto the 1st */
    put64(m, phdr_off(m, PT_LOAD, 1) + 16, ph.p_vaddr + 0x800);
    c = expect_ok(m.p, m.n, NULL, "overlaps");
    for (size_t i = 1; i < c->region_count; i++)
        assert_true(c->regions[i].base >= c->regions[i - 1].base + c->regions[i - 1].size);
    for (size_t i = 1; i < c->mapping_count; i++)
        assert_true(c->mappings[i].base >= c->mappings[i - 1].base + c->mappings[i - 1].size);
    assert_null(ana_mapping_at(c, next.p_vaddr)); /* its old place is now unmapped */
    ana_crash_free(c);
    memcpy(m.p, base.p, m.n);

    put64(m, off + 8, m.n + 0x10000); /* p_offset past EOF */
    c = expect_ok(m.p, m.n, NULL, "core cut short");
    assert_null(ana_mem_region(c, ph.p_vaddr));
    assert_non_null(ana_mapping_at(c, ph.p_vaddr));
    ana_crash_free(c);
    free(m.p);
    cm_free(base.p);
}

void limits_cut_lists(void **state)
{
    struct img m = base_core();
    struct ana_limits lim;
    ana_limits_default(&lim);
    lim.max_regions = 5;
    lim.max_modules = 2;
    struct ana_crash *c = expect_ok(m.p, m.n, &lim, "PT_LOAD segments exceed the limit of 5");
    assert_true(has_warning(c, "exceed the limit of 2 modules"));
    assert_true(c->region_count <= 5);
    assert_int_equal(c->mapping_count, 5);
    assert_int_equal(c->module_count, 2);
    ana_crash_free(c);
    cm_free(m.p);
}

/* ---- E05: a core cut at many offsets ---- */

void truncated_everywhere(void **state)
{
    struct img m = base_core();
    struct ana_crash *full = expect_ok(m.p, m.n, NULL, NULL);
    Elf64_Phdr note = phdr_get(m, phdr_off(m, PT_NOTE, 0));
    size_t notes_end = note.p_offset + note.p_filesz, ok = 0, failed = 0;
    for (size_t cut = 0; cut < m.n; cut += cut < notes_end + 64 ? 7 : 4093) {
        struct ana_crash *c = NULL;
        struct cm_err err = { 0 };
        enum cm_code rc = load_exact(m.p, cut, NULL, &c, &err);
        if (rc) {
            assert_true(rc == CM_E_TRUNCATED || rc == CM_E_CORRUPT);
            assert_int_equal(strncmp(err.msg, "elfcore: ", 9), 0);
            failed++;
            continue;
        }
        ok++;
        assert_true(c->warning_count > 0); /* some PT_LOAD is always cut */
        for (size_t i = 0; i < c->region_count; i++) /* nothing past the cut is memory */
            assert_true(c->regions[i].data + c->regions[i].size <= c->bytes + cut);
        if (cut >= notes_end) { /* one warning says what was cut */
            assert_true(has_warning(c, "core cut short"));
            assert_int_equal(c->warning_count, 1);
            assert_int_equal(c->thread_count, full->thread_count);
            assert_int_equal(c->crash_info.signo, full->crash_info.signo);
            assert_int_equal(c->crash_info.address, full->crash_info.address);
            assert_int_equal(c->module_count, full->module_count);
        }
        ana_crash_free(c);
    }
    print_message("cuts: %zu parsed with warnings, %zu refused\n", ok, failed);
    assert_true(ok > 0 && failed > 0);
    ana_crash_free(full);
    cm_free(m.p);
}

/* ---- E07-E10: notes ---- */

void note_headers(void **state)
{
    struct img base = base_core(), m = dup_img(base, 0);
    struct ana_crash *c;
    size_t pr = note_off(m, NT_PRSTATUS), file = note_off(m, NT_FILE);

    put32(m, pr, 0xffffffff); /* n_namesz of the first note */
    c = expect_ok(m.p, m.n, NULL, "n_namesz 4294967295");
    assert_int_equal(c->thread_count, 0);
    assert_false(c->crash_info.has_signal);
    assert_int_equal(c->crash_info.crashing_thread, -1);
    ana_crash_free(c);
    memcpy(m.p, base.p, m.n);

    put32(m, file + 4, 0xffffffff); /* n_descsz of NT_FILE: notes before it still count */
    c = expect_ok(m.p, m.n, NULL, "n_descsz 4294967295");
    assert_int_equal(c->thread_count, 1);
    assert_int_equal(c->crash_info.signo, 11);
    assert_int_equal(c->module_count, 1); /* the vDSO only */
    ana_crash_free(c);
    memcpy(m.p, base.p, m.n);

    put32(m, note_off(m, NT_SIGINFO) + 20, 19); /* SIGSTOP: a snapshot (gcore), no crash */
    c = expect_ok(m.p, m.n, NULL, NULL);
    assert_true(c->crash_info.has_signal);
    assert_false(c->crash_info.crashed);
    assert_int_equal(c->crash_info.crashing_thread, -1);
    ana_crash_free(c);
    memcpy(m.p, base.p, m.n);

    put32(m, note_off(m, NT_FPREGSET) + 8, NT_SIGINFO); /* a second NT_SIGINFO */
    c = expect_ok(m.p, m.n, NULL, "another NT_SIGINFO");
    assert_int_equal(c->crash_info.address, 0xe);
    ana_crash_free(c);
    free(m.p);
    cm_free(base.p);
}

/* LLVM D65832's NT_FILE cases: the list is ignored, the rest of the core is read. */
void file_note(void **state)
{
    struct img base = base_core(), m = dup_img(base, 0);
    size_t desc = note_off(m, NT_FILE) + 12 + 8; /* "CORE\0" padded to 8 */
    Elf64_Nhdr nh;
    memcpy(&nh, m.p + note_off(m, NT_FILE), sizeof nh);
    const struct { size_t off; uint64_t v; int bytes; const char *warning; } cases[] = {
        { 0, 0xffffffffu, 8, "count 4294967295" },
        { 0, UINT64_MAX, 8, "count 18446744073709551615" },
        { 8, 0, 8, "page_size 0" },
        { 8, 3000, 8, "page_size 3000" },
        { nh.n_descsz - 1, 'x', 1, "not terminated" }, /* the last name's NUL */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memcpy(m.p, base.p, m.n);
        memcpy(m.p + desc + cases[i].off, &cases[i].v, (size_t)cases[i].bytes);
        struct ana_crash *c = expect_ok(m.p, m.n, NULL, cases[i].warning);
        assert_int_equal(c->module_count, 1); /* the vDSO */
        assert_int_equal(c->thread_count, 1);
        for (size_t j = 0; j < c->mapping_count; j++)
            assert_null(c->mappings[j].name);
        ana_crash_free(c);
    }
    free(m.p);
    cm_free(base.p);
}

void short_notes(void **state)
{
    struct img base = base_core(), m = dup_img(base, 0);
    struct ana_crash *c;
    shrink_note(m, note_off(m, NT_PRSTATUS), 200); /* pr_pid inside, pr_reg cut */
    c = expect_ok(m.p, m.n, NULL, "context is unreadable");
    assert_int_equal(c->thread_count, 1);
    assert_true(c->threads[0].bad_context);
    assert_false(c->threads[0].has_ctx);
    assert_int_equal(c->threads[0].tid, c->pid);
    ana_crash_free(c);
    memcpy(m.p, base.p, m.n);
    shrink_note(m, note_off(m, NT_PRSTATUS), 20); /* ends before pr_pid */
    c = expect_ok(m.p, m.n, NULL, "threads are skipped");
    assert_int_equal(c->thread_count, 0);
    assert_int_equal(c->crash_info.crashing_thread, -1);
    assert_int_equal(c->crash_info.signo, 11); /* NT_SIGINFO still says what happened */
    ana_crash_free(c);
    memcpy(m.p, base.p, m.n);
    shrink_note(m, note_off(m, NT_SIGINFO), 12); /* ends before si_addr */
    c = expect_ok(m.p, m.n, NULL, "NT_SIGINFO");
    assert_true(c->crash_info.has_signal); /* from NT_PRSTATUS pr_cursig */
    assert_false(c->crash_info.has_address);
    assert_string_equal(c->crash_info.type, "SIGSEGV"); /* no si_code to name */
    ana_crash_free(c);
    memcpy(m.p, base.p, m.n);
    shrink_note(m, note_off(m, NT_AUXV), 356); /* E10: not whole entries */
    c = expect_ok(m.p, m.n, NULL, "NT_AUXV");
    assert_int_equal(c->auxv_count, 0);
    assert_int_equal(c->main_module >= 0, 1); /* found by the process name instead */
    ana_crash_free(c);
    memcpy(m.p, base.p, m.n);
    shrink_note(m, note_off(m, NT_PRPSINFO), 100);
    c = expect_ok(m.p, m.n, NULL, "NT_PRPSINFO");
    assert_null(c->process_name);
    ana_crash_free(c);
    free(m.p);
    cm_free(base.p);
}

/* ---- synthetic cores: other machines, many threads ---- */

static void synthetic_matches_eu_readelf(unsigned machine, enum ana_cpu cpu)
{
    struct ew_desc d = { .machine = machine, .threads = 3 };
    size_t n;
    uint8_t *p = ew_core(&d, &n);
    char name[64];
    snprintf(name, sizeof name, "synthetic-%u.core", machine);
    const char *path = th_tmp(name);
    th_write(path, p, n);
    struct ref_core *ref = ref_read(path, false);
    struct ana_crash *c = expect_ok(p, n, NULL, NULL);
    print_warnings(c);
    assert_int_equal(c->warning_count, 0);
    assert_int_equal(c->system_info.cpu, cpu);
    assert_int_equal(c->thread_count, ref->threads);
    assert_int_equal(ref->threads, 3);
    for (size_t t = 0; t < c->thread_count; t++) {
        assert_int_equal(c->threads[t].tid, ref->tids[t]);
        check_regs(&c->threads[t], ref, t, machine);
        int sp = ana_reg_sp(cpu);
        assert_int_equal(c->threads[t].ctx.r[sp], EW_STACK + 0x800 + 0x10 * t);
        assert_int_equal(c->threads[t].stack_base, EW_STACK);
    }
    assert_int_equal(c->crash_info.signo, ref->signo);
    assert_int_equal(c->crash_info.si_code, ref->code);
    assert_true(ref->has_fault && c->crash_info.has_address);
    assert_int_equal(c->crash_info.address, ref->fault);
    assert_string_equal(c->crash_info.type, "SIGSEGV /SEGV_ACCERR");
    assert_int_equal(c->pid, ref->pid);
    assert_string_equal(c->process_name, ref->fname);
    assert_string_equal(c->command_line, "/usr/bin/prog --flag value");
    assert_int_equal(c->module_count, 2);
    assert_string_equal(c->modules[c->main_module].path, "/usr/bin/prog");
    int lib = ana_module_at(c, EW_LIB + 0x2000);
    assert_true(lib >= 0);
    assert_string_equal(c->modules[lib].path, ref->files[1].path);
    assert_int_equal(c->modules[lib].base, ref->files[1].start);
    assert_int_equal(c->modules[lib].size, ref->files[2].end - ref->files[1].start);
    assert_int_equal(c->modules[lib].build_id_len, sizeof ew_build_id);
    assert_memory_equal(c->modules[lib].build_id, ew_build_id, sizeof ew_build_id);
    assert_string_equal(c->modules[lib].code_id, "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3");
    assert_string_equal(c->modules[lib].debug_id, "A3A2A1A0A5A4A7A6A8A9AAABACADAEAF0");
    assert_string_equal(c->system_info.os_ver, ""); /* no vDSO: nothing tells the kernel */
    ref_free(ref);
    ana_crash_free(c);
    unlink(path);
    free(p);
}

void synthetic_i386(void **state) { synthetic_matches_eu_readelf(EM_386, ANA_CPU_X86); }
void synthetic_aarch64(void **state)
{
    synthetic_matches_eu_readelf(EM_AARCH64, ANA_CPU_ARM64);
}
void synthetic_arm(void **state) { synthetic_matches_eu_readelf(EM_ARM, ANA_CPU_ARM); }
void synthetic_amd64(void **state)
{
    synthetic_matches_eu_readelf(EM_X86_64, ANA_CPU_AMD64);
}

/* E08: many NT_PRSTATUS notes, each too short for registers: threads cut at the limit. */
void many_short_threads(void **state)
{
    struct ew_desc d = { .machine = EM_X86_64, .threads = 20000, .prstatus_bytes = 40 };
    size_t n;
    uint8_t *p = ew_core(&d, &n);
    struct ana_crash *c = expect_ok(p, n, NULL, "than the limit of 4096 threads");
    assert_int_equal(c->thread_count, 4096);
    assert_int_equal(c->threads[4095].tid, EW_PID + 4095);
    assert_true(c->threads[0].bad_context);
    ana_crash_free(c);
    struct ana_limits lim;
    ana_limits_default(&lim);
    lim.max_threads = 2;
    d = (struct ew_desc){ .machine = EM_386, .threads = 3 };
    free(p);
    p = ew_core(&d, &n);
    c = expect_ok(p, n, &lim, "than the limit of 2 threads");
    assert_int_equal(c->thread_count, 2);
    assert_true(c->threads[1].has_ctx);
    ana_crash_free(c);
    free(p);
}

/* Every cut of a synthetic 32-bit core: parsed with warnings or refused, never past the end. */
void synthetic_truncated(void **state)
{
    struct ew_desc d = { .machine = EM_ARM, .threads = 2 };
    size_t n;
    uint8_t *p = ew_core(&d, &n);
    for (size_t cut = 0; cut < n; cut += cut < 2048 ? 1 : 61) {
        struct ana_crash *c = NULL;
        struct cm_err err = { 0 };
        enum cm_code rc = load_exact(p, cut, NULL, &c, &err);
        assert_true(rc == CM_E_OK || rc == CM_E_TRUNCATED || rc == CM_E_CORRUPT);
        if (rc == CM_E_OK)
            assert_true(c->warning_count > 0);
        ana_crash_free(c);
    }
    free(p);
}

/* The Nth allocation fails, for every N a parse makes: CM_E_NOMEM or a whole result, and the
 * sanitizer build sees no leak either way. */
void allocation_failures(void **state)
{
    struct img m = base_core();
    size_t nomem = 0, n = 1;
    for (;; n++) {
        struct ana_crash *c = NULL;
        struct cm_err err = { 0 };
        cm_alloc_fail_after(n);
        enum cm_code rc = ana_load(m.p, m.n, NULL, &c, &err);
        cm_alloc_fail_after(0);
        if (rc == CM_E_OK) {
            assert_int_equal(c->module_count, 5);
            ana_crash_free(c);
            break; /* the Nth allocation came after the parse: all paths done */
        }
        assert_int_equal(rc, CM_E_NOMEM);
        assert_null(c);
        nomem++;
    }
    print_message("%zu allocation failures, all reported as NOMEM\n", nomem);
    assert_true(nomem >= 3); /* the crash, the dump buffer, arena blocks, NT_FILE entries... */
    cm_free(m.p);
}
