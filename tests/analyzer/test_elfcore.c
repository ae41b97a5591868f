/* test_elfcore.c -- the ELF core reader against the corpus and elfutils. For every core in
 * elfcores/dumps: signal, si_code, fault address, threads (ids and registers), the NT_FILE
 * module list, PT_LOAD mappings and memory agree with `eu-readelf -n -l`; build ids agree with
 * `eu-unstrip -n --core` and with the symbol store's build-id file names; manifest.tsv and
 * labels.tsv agree too. Hostile and synthetic cores are in test_elfcore_hostile.c. */
#include <dirent.h>
#include <elf.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyzer/ana_int.h"
#include "common/cm_alloc.h"
#include "tests/analyzer/elfcore_ref.h"
#include "tests/analyzer/elfcore_test.h"
#include "tests/th.h"

/* ---- loading ---- */

enum cm_code load_exact(const uint8_t *p, size_t n, const struct ana_limits *lim,
                               struct ana_crash **out, struct cm_err *err)
{
    struct ana_crash *c = cm_calloc(1, sizeof *c);
    assert_non_null(c);
    if (lim)
        c->limits = *lim;
    else
        ana_limits_default(&c->limits);
    c->main_module = -1;
    c->crash_info.crashing_thread = -1;
    c->bugcheck.blamed_module = -1;
    c->format = ANA_FMT_ELFCORE;
    c->bytes = cm_malloc(n ? n : 1);
    assert_non_null(c->bytes);
    memcpy(c->bytes, p, n);
    c->byte_count = n;
    enum cm_code rc = ana__elfcore_parse(c, err);
    if (!rc)
        rc = ana__finish(c, err);
    *out = rc ? NULL : c;
    if (rc)
        ana_crash_free(c);
    return rc;
}

bool has_warning(const struct ana_crash *c, const char *part)
{
    for (size_t i = 0; i < c->warning_count; i++)
        if (strstr(c->warnings[i], part))
            return true;
    return false;
}

void print_warnings(const struct ana_crash *c)
{
    for (size_t i = 0; i < c->warning_count; i++)
        print_message("  warning: %s\n", c->warnings[i]);
}

struct ana_crash *expect_ok(const uint8_t *p, size_t n, const struct ana_limits *lim,
                                   const char *warning)
{
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    enum cm_code rc = load_exact(p, n, lim, &c, &err);
    if (rc)
        fail_msg("expected a parse, got %s: %s", cm_code_name(rc), err.msg);
    if (warning && !has_warning(c, warning)) {
        print_warnings(c);
        fail_msg("no warning containing \"%s\"", warning);
    }
    return c;
}

void expect_fail(const uint8_t *p, size_t n, enum cm_code code, const char *part)
{
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    enum cm_code rc = load_exact(p, n, NULL, &c, &err);
    if (rc != code || !strstr(err.msg, part))
        fail_msg("expected %s with \"%s\", got %s: %s", cm_code_name(code), part,
                 cm_code_name(rc), err.msg);
    assert_null(c);
    assert_int_equal(strncmp(err.msg, "elfcore: ", 9), 0);
}

/* ---- the corpus tables ---- */

/* Column col of the row whose first column is key in a TSV file; false if no row has it. */
static bool tsv_get(const char *text, const char *key, int col, char *out, size_t n)
{
    size_t klen = strlen(key);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, key, klen) != 0 || l[klen] != '\t')
            continue;
        const char *f = l;
        for (int i = 0; i < col && f; i++)
            f = strchr(f, '\t') ? strchr(f, '\t') + 1 : NULL;
        if (!f)
            return false;
        size_t len = strcspn(f, "\t\n");
        snprintf(out, n, "%.*s", (int)len, f);
        return true;
    }
    return false;
}

struct tables {
    char *manifest, *labels, *index;
};

static char *read_text(const char *rel)
{
    size_t n;
    uint8_t *p = th_read(th_corpus(rel), &n);
    p = realloc(p, n + 1);
    p[n] = 0;
    return (char *)p;
}

/* ---- registers: DWARF numbers (ana.h) and the names eu-readelf prints for them ---- */

static const char *eu_reg(unsigned machine, int i, char *buf, size_t n)
{
    static const char *const amd64[] = { "rax", "rdx", "rcx", "rbx", "rsi", "rdi",
                                         "rbp", "rsp", "r8",  "r9",  "r10", "r11",
                                         "r12", "r13", "r14", "r15", "rip", "rflags" };
    static const char *const x86[] = { "eax", "ecx", "edx", "ebx", "esp",
                                       "ebp", "esi", "edi", "eip", "eflags" };
    static const char *const arm_tail[] = { "sp", "lr", "pc", "spsr" }; /* 13..16 */
    switch (machine) {
    case EM_X86_64:
        return i < 18 ? amd64[i] : NULL;
    case EM_386:
        return i < 10 ? x86[i] : NULL;
    case EM_AARCH64:
        if (i < 31)
            snprintf(buf, n, "x%d", i);
        return i < 31 ? buf : i == 31 ? "sp" : i == 32 ? "pc" : i == 33 ? "pstate" : NULL;
    case EM_ARM:
        if (i < 13)
            snprintf(buf, n, "r%d", i);
        return i < 13 ? buf : i < 17 ? arm_tail[i - 13] : NULL;
    default:
        return NULL;
    }
}

void check_regs(const struct ana_thread *t, const struct ref_core *ref, size_t ti,
                       unsigned machine)
{
    char buf[8];
    int checked = 0;
    assert_true(t->has_ctx);
    for (int i = 0; i < ANA_NREGS; i++) {
        const char *name = eu_reg(machine, i, buf, sizeof buf);
        uint64_t v;
        if (!name)
            continue;
        if (!ref_reg(ref, ti, name, &v))
            fail_msg("eu-readelf shows no %s for thread %zu", name, ti);
        if (!ana_ctx_has(&t->ctx, i) || t->ctx.r[i] != v)
            fail_msg("thread %zu register %s: ours 0x%" PRIx64 ", eu-readelf 0x%" PRIx64, ti,
                     name, t->ctx.r[i], v);
        checked++;
    }
    assert_true(checked >= 10);
}

/* ---- one corpus core ---- */

static void check_threads_signal(const struct ana_crash *c, const struct ref_core *ref)
{
    const struct ana_crash_info *ci = &c->crash_info;
    assert_int_equal(c->thread_count, ref->threads);
    for (size_t i = 0; i < ref->threads; i++) {
        assert_int_equal(c->threads[i].tid, ref->tids[i]);
        check_regs(&c->threads[i], ref, i, EM_X86_64);
    }
    assert_true(ref->has_siginfo);
    assert_true(ci->crashed && ci->has_signal);
    assert_int_equal(ci->signo, ref->signo);
    assert_int_equal(ci->si_code, ref->code);
    assert_int_equal(ci->crashing_thread, 0);
    assert_int_equal(ci->crashing_tid, ref->tids[0]);
    /* eu-readelf prints si_addr for SIGILL/FPE/SEGV/BUS with si_code > 0; ours also leaves out
     * SI_KERNEL (0x80), whose siginfo holds no address: the kernel writes 0 there. */
    bool fault = ref->has_fault && ref->code != 0x80;
    assert_int_equal(ci->has_address, fault);
    if (fault)
        assert_int_equal(ci->address, ref->fault);
    else if (ref->has_fault)
        assert_int_equal(ref->fault, 0);
    assert_non_null(ci->type);
    assert_non_null(strstr(ci->type, ana__linux_signal_name(ref->signo)));
}

/* One module per distinct NT_FILE path, lowest start to highest end; plus the vDSO. */
static void check_modules(const struct ana_crash *c, const struct ref_core *ref)
{
    size_t groups = 0;
    assert_int_equal(ref->file_count, (long)ref->nfiles);
    for (size_t i = 0; i < ref->nfiles; i++) {
        bool first = true;
        uint64_t lo = UINT64_MAX, hi = 0;
        for (size_t j = 0; j < ref->nfiles; j++) {
            if (strcmp(ref->files[i].path, ref->files[j].path) != 0)
                continue;
            first &= j >= i;
            lo = ref->files[j].start < lo ? ref->files[j].start : lo;
            hi = ref->files[j].end > hi ? ref->files[j].end : hi;
        }
        if (!first)
            continue;
        groups++;
        size_t found = 0;
        for (size_t m = 0; m < c->module_count; m++) {
            const struct ana_module *mod = &c->modules[m];
            if (strcmp(mod->path, ref->files[i].path) == 0) {
                found++;
                assert_int_equal(mod->base, lo);
                assert_int_equal(mod->base + mod->size, hi);
            }
        }
        if (found != 1)
            fail_msg("%s: %zu modules, expected 1", ref->files[i].path, found);
    }
    assert_true(ref->has_sysinfo_ehdr);
    assert_int_equal(c->module_count, groups + 1);
    bool vdso = false;
    for (size_t m = 0; m < c->module_count; m++)
        vdso |= c->modules[m].base == ref->sysinfo_ehdr &&
                strcmp(c->modules[m].path, "linux-vdso.so.1") == 0;
    assert_true(vdso);
}

/* Every LOAD is a mapping with its protection; every LOAD with file bytes is a region holding
 * exactly those bytes. */
static void check_memory(const struct ana_crash *c, const struct ref_core *ref,
                         const uint8_t *raw, size_t raw_len)
{
    size_t with_data = 0;
    assert_int_equal(c->mapping_count, ref->nloads);
    for (size_t i = 0; i < ref->nloads; i++) {
        const struct ref_load *l = &ref->loads[i];
        const struct ana_mapping *m = ana_mapping_at(c, l->vaddr);
        assert_non_null(m);
        assert_int_equal(m->base, l->vaddr);
        assert_int_equal(m->size, l->memsz);
        assert_int_equal(m->prot, (l->r ? ANA_PROT_R : 0) | (l->w ? ANA_PROT_W : 0) |
                                      (l->x ? ANA_PROT_X : 0));
        if (l->filesz == 0)
            continue;
        with_data++;
        const struct ana_region *r = ana_mem_region(c, l->vaddr);
        assert_non_null(r);
        assert_int_equal(r->base, l->vaddr);
        assert_int_equal(r->size, l->filesz);
        assert_true(l->offset + l->filesz <= raw_len);
        assert_memory_equal(r->data, raw + l->offset, l->filesz);
    }
    assert_int_equal(c->region_count, with_data);
}

static void check_process(const struct ana_crash *c, const struct ref_core *ref,
                          const char *program)
{
    char exe[256];
    snprintf(exe, sizeof exe, "/opt/crashlab/bin/%s", program);
    assert_true(ref->has_prpsinfo && ref->has_entry);
    assert_int_equal(c->pid, ref->pid);
    assert_string_equal(c->process_name, ref->fname);
    assert_non_null(c->command_line);
    assert_int_equal(strncmp(c->command_line, exe, strlen(exe)), 0);
    assert_true(c->main_module >= 0);
    const struct ana_module *main = &c->modules[c->main_module];
    assert_true(main->is_main);
    assert_string_equal(main->path, exe);
    assert_true(ref->entry - main->base < main->size);
    assert_string_equal(c->system_info.os, "Linux");
    assert_string_equal(c->system_info.cpu_arch, "amd64");
    /* README: "The cores are real kernel cores, written by Linux 6.18" (the vDSO's note) */
    assert_int_equal(strncmp(c->system_info.os_ver, "6.18.", 5), 0);
    const struct ana_thread *t = &c->threads[0];
    assert_true(t->stack_size > 0);
    assert_true(t->ctx.r[ANA_AMD64_RSP] - t->stack_base < t->stack_size);
}

/* Breakpad's debug id from the build id: GUID fields byte-swapped, upper-case, age 0. */
static void check_debug_id(const struct ana_module *m)
{
    static const int order[16] = { 3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15 };
    char want[34];
    assert_true(m->build_id_len >= 16);
    for (int i = 0; i < 16; i++)
        snprintf(want + 2 * i, 3, "%02X", m->build_id[order[i]]);
    want[32] = '0';
    want[33] = 0;
    assert_string_equal(m->debug_id, want);
    assert_string_equal(m->debug_file, ana_module_basename(m));
}

static void check_in_store(const char *code_id, const struct tables *t, const char *name,
                           const char *config)
{
    char rel[256], got[64];
    snprintf(rel, sizeof rel, "elfcores/symbols/.build-id/%.2s/%s", code_id, code_id + 2);
    th_corpus(rel); /* fails the test when the store has no file of that build id */
    assert_true(tsv_get(t->index, code_id, 1, got, sizeof got));
    assert_string_equal(got, name);
    assert_true(tsv_get(t->index, code_id, 3, got, sizeof got));
    assert_string_equal(got, config);
}

static void check_build_ids(const struct ana_crash *c, const struct ref_core *ref,
                            const struct tables *t, const char *dump)
{
    char program[64], config[16], exe_id[64];
    size_t with_id = 0;
    assert_true(tsv_get(t->labels, dump, 3, program, sizeof program));
    assert_true(tsv_get(t->labels, dump, 4, config, sizeof config));
    assert_true(tsv_get(t->labels, dump, 6, exe_id, sizeof exe_id));
    for (size_t i = 0; i < ref->nids; i++) { /* eu-unstrip's modules: same base, same id */
        int m = ana_module_at(c, ref->ids[i].base);
        assert_true(m >= 0);
        assert_int_equal(c->modules[m].base, ref->ids[i].base);
        assert_non_null(c->modules[m].code_id);
        assert_string_equal(c->modules[m].code_id, ref->ids[i].build_id);
    }
    bool rec_mapped = false, rec_checked = false;
    for (size_t i = 0; i < ref->nfiles; i++)
        rec_mapped |= strcmp(ref->files[i].path, "/opt/crashlab/lib/librec.so.1") == 0;
    for (size_t m = 0; m < c->module_count; m++) {
        const struct ana_module *mod = &c->modules[m];
        if (!mod->code_id)
            continue;
        with_id++;
        check_debug_id(mod);
        if (strcmp(ana_module_basename(mod), "librec.so.1") == 0) {
            check_in_store(mod->code_id, t, "librec.so.1", config);
            rec_checked = true;
        }
    }
    assert_int_equal(with_id, ref->nids);
    assert_int_equal(rec_checked, rec_mapped);
    const struct ana_module *main = &c->modules[c->main_module];
    assert_non_null(main->code_id);
    assert_string_equal(main->code_id, exe_id);
    check_in_store(main->code_id, t, program, config);
}

static void check_manifest(const struct ana_crash *c, const struct tables *t, const char *dump)
{
    char threads[16], code[16], addr[32];
    assert_true(tsv_get(t->manifest, dump, 3, threads, sizeof threads));
    assert_true(tsv_get(t->manifest, dump, 4, code, sizeof code));
    assert_true(tsv_get(t->manifest, dump, 5, addr, sizeof addr));
    assert_int_equal(c->thread_count, strtoul(threads, NULL, 10));
    assert_int_equal(c->crash_info.si_code, strtol(code, NULL, 10));
    if (strcmp(addr, "-") == 0)
        assert_false(c->crash_info.has_address);
    else if (c->crash_info.has_address)
        assert_int_equal(c->crash_info.address, strtoull(addr, NULL, 16));
    else /* SI_KERNEL: the manifest shows the 0 the siginfo holds */
        assert_int_equal(strtoull(addr, NULL, 16), 0);
}

static void check_corpus_core(const char *file, const struct tables *t)
{
    char rel[512], dump[512], tmp[512];
    size_t zn, raw_n;
    uint8_t *raw;
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    snprintf(rel, sizeof rel, "elfcores/dumps/%s", file);
    snprintf(dump, sizeof dump, "dumps/%s", file);
    snprintf(tmp, sizeof tmp, "%s", th_tmp(file));
    uint8_t *z = th_read(th_corpus(rel), &zn);
    assert_int_equal(ana_decompress(z, zn, NULL, &raw, &raw_n, &err), CM_E_OK);
    th_write(tmp, raw, raw_n);
    if (ana_load(z, zn, NULL, &c, &err) != CM_E_OK)
        fail_msg("%s: %s", file, err.msg);
    struct ref_core *ref = ref_read(tmp, true);
    print_message("%s: %s, %zu modules, %zu warnings\n", file, c->crash_info.type,
                  c->module_count, c->warning_count);
    assert_int_equal(c->format, ANA_FMT_ELFCORE);
    assert_int_equal(c->warning_count, 0);
    check_threads_signal(c, ref);
    check_modules(c, ref);
    check_memory(c, ref, raw, raw_n);
    check_build_ids(c, ref, t, dump);
    check_manifest(c, t, dump);
    char program[64];
    assert_true(tsv_get(t->labels, dump, 3, program, sizeof program));
    check_process(c, ref, program);
    ref_free(ref);
    ana_crash_free(c);
    unlink(tmp);
    cm_free(raw);
    free(z);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void corpus_agrees_with_elfutils(void **state)
{
    struct tables t = { read_text("elfcores/manifest.tsv"), read_text("elfcores/labels.tsv"),
                        read_text("elfcores/symbols/index.tsv") };
    char *names[512];
    size_t n = 0;
    DIR *d = opendir(th_corpus("elfcores/dumps"));
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".zst") == 0 && n < 512)
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    assert_int_equal(n, 120); /* README: 120 cores */
    for (size_t i = 0; i < n; i++) {
        check_corpus_core(names[i], &t);
        free(names[i]);
    }
    free(t.manifest);
    free(t.labels);
    free(t.index);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(corpus_agrees_with_elfutils),
        cmocka_unit_test(header_errors),
        cmocka_unit_test(executable_is_not_a_core),
        cmocka_unit_test(pn_xnum),
        cmocka_unit_test(section_headers),
        cmocka_unit_test(load_segments),
        cmocka_unit_test(limits_cut_lists),
        cmocka_unit_test(truncated_everywhere),
        cmocka_unit_test(note_headers),
        cmocka_unit_test(file_note),
        cmocka_unit_test(short_notes),
        cmocka_unit_test(synthetic_amd64),
        cmocka_unit_test(synthetic_i386),
        cmocka_unit_test(synthetic_aarch64),
        cmocka_unit_test(synthetic_arm),
        cmocka_unit_test(many_short_threads),
        cmocka_unit_test(synthetic_truncated),
        cmocka_unit_test(allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
