/* test_unwind.c -- the unwinder against the references beside the corpus, and against hostile
 * crash models built by hand.
 *
 * Breakpad: every MDMP in breakpad/testdata is walked with testdata/symbols and every thread is
 * compared with Breakpad's minidump_stackwalk output in breakpad/reference (module, function,
 * source file and line, module or function offset, "Found by" trust, and every register Breakpad
 * prints for each frame). Documented differences: Breakpad calls a return simulated from a leaf
 * "leaf" trust, which the model counts as scanning; and where a dump says which memory is
 * executable (MemoryInfoList), our scanner refuses return addresses in non-executable memory
 * that Breakpad's takes -- tiny-exe-with-cet-xsave.dmp has such frames (in tiny.exe's read-only
 * data), and the test checks that our walk is Breakpad's minus exactly those.
 *
 * ELF cores: all 120 crashlab cores are walked with the build-id store and compared frame by
 * frame with eu-stack's reference (module, symbol, pc, source line where it prints one); every
 * caller frame must come from CFI (.eh_frame), never scanning, and every walk must end at
 * _start with nothing past it.
 *
 * Hostile models: a frame-pointer chain pointing to itself, a stack pointer that does not move
 * up, a stack pointer outside stack memory, a zero-size stack, the frame cap, the end of stack
 * at a null return address, and an arm64 frame-record chain. */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana_int.h"
#include "analyzer/ana_sym.h"
#include "analyzer/ana_unwind_int.h"
#include "common/cm_alloc.h"
#include "tests/th.h"

/* ---- reference parsing ---- */

struct ref_frame {
    char module[256], function[1024], file[1024];
    bool has_line;
    uint32_t line;
    uint64_t offset;
    bool has_pc;
    uint64_t pc;
    char trust[64];
    size_t nregs;
    struct {
        char name[16];
        uint64_t v;
    } regs[48];
};

struct ref_thread {
    struct ref_frame *f;
    size_t n, cap;
};

#define MAX_REF_THREADS 64

static struct ref_frame *ref_add(struct ref_thread *t)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->f = realloc(t->f, t->cap * sizeof *t->f);
    }
    memset(&t->f[t->n], 0, sizeof *t->f);
    return &t->f[t->n++];
}

static char *field(char **s)
{
    char *b = *s, *bar = strchr(b, '|');
    if (bar) {
        *bar = 0;
        *s = bar + 1;
    } else {
        *s = b + strlen(b);
    }
    return b;
}

/* Breakpad's -m output: "thread|frame|module|function|file|line|offset"; the human output of the
 * same run adds registers and "Found by" per frame. */
static size_t read_breakpad(const char *base, struct ref_thread *th, int *crashed)
{
    char rel[512];
    size_t len;
    snprintf(rel, sizeof rel, "breakpad/reference/%s.stackwalk.machine_readable.out", base);
    char *mr = (char *)th_read(th_corpus(rel), &len);
    mr = realloc(mr, len + 1);
    mr[len] = 0;
    size_t nthreads = 0;
    *crashed = -1;
    for (char *line = strtok(mr, "\n"); line; line = strtok(NULL, "\n")) {
        char *s = line;
        char *f0 = field(&s);
        if (strcmp(f0, "Crash") == 0) {
            field(&s);
            field(&s);
            char *t = field(&s);
            if (*t)
                *crashed = atoi(t);
            continue;
        }
        if (*f0 < '0' || *f0 > '9')
            continue;
        int ti = atoi(f0);
        assert_true(ti < MAX_REF_THREADS);
        field(&s);
        if ((size_t)ti + 1 > nthreads)
            nthreads = (size_t)ti + 1;
        struct ref_frame *f = ref_add(&th[ti]);
        snprintf(f->module, sizeof f->module, "%s", field(&s));
        snprintf(f->function, sizeof f->function, "%s", field(&s));
        snprintf(f->file, sizeof f->file, "%s", field(&s));
        char *ln = field(&s);
        f->has_line = *ln != 0;
        f->line = (uint32_t)strtoul(ln, NULL, 10);
        f->offset = strtoull(field(&s), NULL, 16);
    }
    free(mr);

    snprintf(rel, sizeof rel, "breakpad/reference/%s.stackwalk.out", base);
    char *hu = (char *)th_read(th_corpus(rel), &len);
    hu = realloc(hu, len + 1);
    hu[len] = 0;
    int cur = -1;
    size_t fi = 0;
    struct ref_frame *f = NULL;
    for (char *line = strtok(hu, "\n"); line; line = strtok(NULL, "\n")) {
        int t;
        if (sscanf(line, "Thread %d", &t) == 1) {
            cur = t;
            fi = 0;
            f = NULL;
            continue;
        }
        if (strncmp(line, "Loaded modules", 14) == 0)
            break;
        if (cur < 0 || cur >= MAX_REF_THREADS)
            continue;
        /* a frame starts with its number and two blanks: " 0  test_app.exe!main [...]" */
        const char *p0 = line + strspn(line, " ");
        size_t digits = strspn(p0, "0123456789");
        if (digits && p0[digits] == ' ' && p0[digits + 1] == ' ' && !strstr(line, " = 0x")) {
            f = fi < th[cur].n ? &th[cur].f[fi] : NULL;
            fi++;
            continue;
        }
        if (!f)
            continue;
        const char *fb = strstr(line, "Found by: ");
        if (fb) {
            snprintf(f->trust, sizeof f->trust, "%s", fb + 10);
            continue;
        }
        char *p = line;
        char name[16];
        unsigned long long v;
        int used;
        while (sscanf(p, " %15s = 0x%llx%n", name, &v, &used) == 2) {
            if (f->nregs < sizeof f->regs / sizeof *f->regs) {
                snprintf(f->regs[f->nregs].name, sizeof f->regs[0].name, "%s", name);
                f->regs[f->nregs].v = v;
                f->nregs++;
            }
            p += used;
        }
    }
    free(hu);
    return nthreads;
}

static enum ana_trust trust_of(const char *found_by)
{
    static const struct {
        const char *text;
        enum ana_trust t;
    } map[] = {
        { "given as instruction pointer in context", ANA_TRUST_CONTEXT },
        { "call frame info with scanning", ANA_TRUST_CFI_SCAN },
        { "call frame info", ANA_TRUST_CFI },
        { "previous frame's frame pointer", ANA_TRUST_FP },
        { "stack scanning", ANA_TRUST_SCAN },
        /* Breakpad's "leaf" trust: the model has none; such a frame counts as scanned */
        { "simulating a return from leaf function", ANA_TRUST_SCAN },
        { "inlined", ANA_TRUST_INLINE },
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(found_by, map[i].text) == 0)
            return map[i].t;
    fail_msg("unknown Found by: %s", found_by);
    return ANA_TRUST_NONE;
}

/* One physical frame of ours, or one of its inline entries, as Breakpad lists them. */
struct flat {
    const struct ana_frame *fr;
    const struct ana_inline *in; /* NULL: the frame itself */
};

static size_t flatten(const struct ana_thread *t, struct flat *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < t->frame_count && n < max; i++) {
        for (size_t k = 0; k < t->frames[i].inline_count && n < max; k++)
            out[n++] = (struct flat){ &t->frames[i], &t->frames[i].inlines[k] };
        if (n < max)
            out[n++] = (struct flat){ &t->frames[i], NULL };
    }
    return n;
}

static struct ana_symstore *store_of(const char *dir)
{
    struct ana_symstore *s;
    struct cm_err err;
    const char *dirs[] = { dir };
    assert_int_equal(ana_symstore_new(dirs, 1, NULL, &s, &err), CM_E_OK);
    return s;
}

static size_t regs_compared; /* registers checked against Breakpad's, over the whole run */

static bool is_nonexec(const struct ana_crash *c, uint64_t pc)
{
    const struct ana_mapping *m = ana_mapping_at(c, pc - 1);
    return m && m->prot && !(m->prot & ANA_PROT_X);
}

/* Compares thread t with Breakpad's frames; returns the number of Breakpad frames dropped
 * because they lie in non-executable memory (only allowed when drop_nonexec). */
static size_t compare_thread(const char *dump, int ti, const struct ana_crash *c,
                             const struct ana_thread *t, struct ref_thread *rt, bool drop_nonexec)
{
    struct flat ours[2048];
    size_t n = flatten(t, ours, 2048), dropped = 0;
    struct ref_frame *ref = rt->f;
    size_t nref = 0;
    for (size_t i = 0; i < rt->n; i++) {
        struct ref_frame *r = &rt->f[i];
        /* the frame's address: module offset + base, as Breakpad printed it */
        uint64_t pc = r->offset;
        if (*r->module && !*r->function) {
            for (size_t m = 0; m < c->module_count; m++)
                if (strcmp(ana_module_basename(&c->modules[m]), r->module) == 0)
                    pc = c->modules[m].base + r->offset;
            if (drop_nonexec && i > 0 && is_nonexec(c, pc)) {
                dropped++;
                continue;
            }
        }
        ref[nref++] = *r;
    }
    if (drop_nonexec && n < nref && n > 0) {
        /* Without the refused frames the walk ends earlier: Breakpad's next frame in executable
         * memory lies beyond the 40 words scanned above our last frame, which its refused
         * frames had let it reach. */
        uint64_t next_sp = 0;
        for (size_t k = 0; k < ref[n].nregs; k++)
            if (strcmp(ref[n].regs[k].name, "rsp") == 0)
                next_sp = ref[n].regs[k].v;
        uint64_t last_sp = ours[n - 1].fr->regs.r[ANA_AMD64_RSP];
        if (next_sp - 8 <= last_sp + 40 * 8)
            fail_msg("%s thread %d: walk ends at %zu frames with Breakpad's next frame in reach",
                     dump, ti, n);
        nref = n;
    }
    if (n != nref)
        fail_msg("%s thread %d: %zu frames, Breakpad %zu", dump, ti, n, nref);
    for (size_t i = 0; i < n; i++) {
        const struct ref_frame *r = &ref[i];
        const struct ana_frame *fr = ours[i].fr;
        const char *mod = fr->module >= 0 ? ana_module_basename(&c->modules[fr->module]) : "";
        const char *fn = ours[i].in ? ours[i].in->function : fr->function;
        const char *file = ours[i].in ? ours[i].in->file : fr->file;
        uint32_t line = ours[i].in ? ours[i].in->line : fr->line;
        enum ana_trust trust = ours[i].in ? ANA_TRUST_INLINE : fr->trust;
        if (strcmp(mod, r->module) != 0 || strcmp(fn ? fn : "", r->function) != 0 ||
            strcmp(file ? file : "", r->file) != 0 || (r->has_line && line != r->line) ||
            trust != trust_of(r->trust))
            fail_msg("%s thread %d frame %zu: ours %s!%s %s:%u (%s), Breakpad %s!%s %s:%u (%s)",
                     dump, ti, i, mod, fn ? fn : "", file ? file : "", line,
                     ana_trust_name(trust), r->module, r->function, r->file, r->line, r->trust);
        uint64_t off = 0;
        if (!*r->module)
            off = fr->pc;
        else if (!*r->function)
            off = fr->pc - c->modules[fr->module].base;
        else if (!*r->file)
            off = fr->pc - fr->function_base;
        else
            off = r->offset; /* from the line's start: the model keeps no line start */
        if (off != r->offset)
            fail_msg("%s thread %d frame %zu: offset 0x%llx, Breakpad 0x%llx", dump, ti, i,
                     (unsigned long long)off, (unsigned long long)r->offset);
        if (ours[i].in)
            continue;
        for (size_t k = 0; k < r->nregs; k++) {
            int reg = ana_reg_by_name(c->system_info.cpu, r->regs[k].name);
            if (reg < 0)
                continue; /* efl, cpsr...: not numbered for walking */
            if (!ana_ctx_has(&fr->regs, reg) || (fr->regs.r[reg] != r->regs[k].v))
                fail_msg("%s thread %d frame %zu: %s = 0x%llx (%s), Breakpad 0x%llx", dump, ti,
                         i, r->regs[k].name, (unsigned long long)fr->regs.r[reg],
                         ana_ctx_has(&fr->regs, reg) ? "valid" : "unknown",
                         (unsigned long long)r->regs[k].v);
            regs_compared++;
        }
    }
    return dropped;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void breakpad_reference(void **state)
{
    struct ana_symstore *s = store_of(th_corpus("breakpad/testdata/symbols"));
    DIR *d = opendir(th_corpus("breakpad/testdata"));
    assert_non_null(d);
    char *names[256];
    size_t nn = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && nn < 256) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".dmp") == 0)
            names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, nn, sizeof *names, cmp_str);
    size_t walked = 0, threads = 0, frames = 0, documented = 0;
    for (size_t i = 0; i < nn; i++) {
        char base[256], rel[512];
        snprintf(base, sizeof base, "%.*s", (int)(strlen(names[i]) - 4), names[i]);
        snprintf(rel, sizeof rel, "breakpad/testdata/%s", names[i]);
        struct ana_crash *c = NULL;
        struct cm_err err;
        enum cm_code rc = ana_load_file(th_corpus(rel), NULL, &c, &err);
        if (strncmp(base, "microdump", 9) == 0) {
            /* text microdumps: not MDMP, no walk (their references are microdump_stackwalk's) */
            assert_int_not_equal(rc, CM_E_OK);
            free(names[i]);
            continue;
        }
        if (rc != CM_E_OK)
            fail_msg("%s: %s", names[i], err.msg);
        assert_int_equal(ana_unwind_all(c, s, &err), CM_E_OK);
        struct ref_thread rt[MAX_REF_THREADS] = { 0 };
        int crashed;
        size_t nref = read_breakpad(base, rt, &crashed);
        /* Breakpad leaves out the thread that wrote the dump and numbers the others in order. */
        size_t k = 0;
        for (size_t ti = 0; ti < c->thread_count; ti++) {
            const struct ana_thread *t = &c->threads[ti];
            if (t->dump_writer)
                continue;
            if (crashed == (int)k)
                assert_int_equal(c->crash_info.crashing_thread, (int)ti);
            bool doc = strcmp(base, "tiny-exe-with-cet-xsave") == 0 && k == 0;
            size_t dropped = compare_thread(names[i], (int)k, c, t, &rt[k], doc);
            if (doc) {
                assert_true(dropped > 0); /* the documented case is still there */
                documented += dropped;
            }
            frames += rt[k].n;
            threads++;
            free(rt[k].f);
            k++;
        }
        assert_int_equal(k, nref);
        walked++;
        ana_crash_free(c);
        free(names[i]);
    }
    assert_true(walked >= 40);
    assert_true(threads >= 60 && frames >= 800); /* 63 threads, 820 frames in the corpus */
    assert_true(documented >= 1);
    assert_true(regs_compared >= 2000);
    ana_symstore_free(s);
}

/* minidump2 without symbols still walks (frame pointers, scanning) and keeps the context frame. */
static void breakpad_without_symbols(void **state)
{
    struct ana_crash *c;
    struct cm_err err;
    assert_int_equal(ana_load_file(th_corpus("breakpad/testdata/minidump2.dmp"), NULL, &c, &err),
                     CM_E_OK);
    assert_int_equal(ana_unwind_all(c, NULL, &err), CM_E_OK);
    const struct ana_thread *t = &c->threads[c->crash_info.crashing_thread];
    assert_true(t->frame_count >= 2);
    assert_int_equal(t->frames[0].pc, 0x40429e);
    assert_int_equal(t->frames[0].trust, ANA_TRUST_CONTEXT);
    assert_null(t->frames[0].function);
    for (size_t i = 0; i < c->module_count; i++)
        assert_false(c->modules[i].has_symbols);
    ana_crash_free(c);
}

/* ---- ELF cores against eu-stack ---- */

struct eu_frame {
    uint64_t pc;
    char function[512], module[512], file[1024];
    uint32_t line;
};

static size_t read_eu_stack(const char *rel, struct eu_frame *f, size_t max)
{
    size_t len;
    char *txt = (char *)th_read(th_corpus(rel), &len);
    txt = realloc(txt, len + 1);
    txt[len] = 0;
    size_t n = 0;
    int tids = 0;
    for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "TID", 3) == 0 && ++tids > 1)
            break; /* the crashing thread comes first */
        unsigned idx;
        unsigned long long pc;
        char rest[2048];
        if (line[0] == '#' && n < max &&
            sscanf(line, "#%u %llx %2047[^\n]", &idx, &pc, rest) == 3) {
            char *dash = strstr(rest, " - ");
            assert_non_null(dash);
            *dash = 0;
            f[n] = (struct eu_frame){ .pc = pc };
            snprintf(f[n].function, sizeof f[n].function, "%.500s", rest);
            const char *mod = dash + 3, *slash = strrchr(mod, '/');
            snprintf(f[n].module, sizeof f[n].module, "%.500s", slash ? slash + 1 : mod);
            n++;
        } else if (n && strncmp(line, "    ", 4) == 0 && !f[n - 1].file[0]) {
            /* "    FILE:LINE[:COL]" */
            char *p = line + 4, *c1 = strrchr(p, ':');
            if (c1) {
                *c1 = 0;
                char *c2 = strrchr(p, ':');
                if (c2 && strspn(c2 + 1, "0123456789") == strlen(c2 + 1)) {
                    f[n - 1].line = (uint32_t)strtoul(c2 + 1, NULL, 10);
                    *c2 = 0;
                } else {
                    f[n - 1].line = (uint32_t)strtoul(c1 + 1, NULL, 10);
                }
                snprintf(f[n - 1].file, sizeof f[n - 1].file, "%.1000s", p);
            }
        }
    }
    free(txt);
    return n;
}

/* The symbol name without a version suffix, as the score compares it. */
static void base_symbol(const char *in, char *out, size_t cap)
{
    snprintf(out, cap, "%s", in ? in : "");
    char *at = strstr(out, "@@");
    if (!at)
        at = strstr(out, "@GLIBC");
    if (at)
        *at = 0;
}

static bool is_bottom(const char *fn)
{
    static const char *const b[] = { "_start", "__clone3", "clone3", "__clone", "clone" };
    for (size_t i = 0; fn && i < sizeof b / sizeof *b; i++)
        if (strcmp(fn, b[i]) == 0)
            return true;
    return false;
}

struct label {
    char dump[256], config[16];
};

static size_t read_labels(struct label *l, size_t max)
{
    size_t len;
    char *txt = (char *)th_read(th_corpus("elfcores/labels.tsv"), &len);
    txt = realloc(txt, len + 1);
    txt[len] = 0;
    size_t n = 0;
    char *save;
    for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *cols[12] = { 0 };
        size_t nc = 0;
        for (char *p = line; nc < 12;) {
            cols[nc++] = p;
            char *tab = strchr(p, '\t');
            if (!tab)
                break;
            *tab = 0;
            p = tab + 1;
        }
        if (nc < 5 || strcmp(cols[0], "dump") == 0 || n == max)
            continue;
        snprintf(l[n].dump, sizeof l[n].dump, "%.250s", cols[0]);
        snprintf(l[n].config, sizeof l[n].config, "%.15s", cols[4]);
        n++;
    }
    free(txt);
    return n;
}

static void elfcore_reference(void **state)
{
    struct ana_symstore *s = store_of(th_corpus("elfcores/symbols"));
    static struct label labels[256];
    size_t nl = read_labels(labels, 256);
    assert_int_equal(nl, 120);
    size_t frames = 0, lines = 0, start_artefacts = 0;
    for (size_t i = 0; i < nl; i++) {
        char rel[512], eu[512];
        snprintf(rel, sizeof rel, "elfcores/%.400s", labels[i].dump);
        snprintf(eu, sizeof eu, "elfcores/%.*s.eu-stack.txt",
                 (int)(strlen(labels[i].dump) - 4) % 400, labels[i].dump);
        struct eu_frame ref[300];
        size_t nref = read_eu_stack(eu, ref, 300);
        for (size_t k = 0; k < nref; k++)
            if (is_bottom(ref[k].function))
                nref = k + 1;
        struct ana_crash *c;
        struct cm_err err;
        if (ana_load_file(th_corpus(rel), NULL, &c, &err) != CM_E_OK)
            fail_msg("%s: %s", rel, err.msg);
        assert_int_equal(ana_unwind_all(c, s, &err), CM_E_OK);
        assert_true(c->crash_info.crashing_thread >= 0);
        const struct ana_thread *t = &c->threads[c->crash_info.crashing_thread];
        if (t->frame_count != nref)
            fail_msg("%s (%s): %zu frames, eu-stack %zu", rel, labels[i].config, t->frame_count,
                     nref);
        for (size_t k = 0; k < nref; k++) {
            const struct ana_frame *fr = &t->frames[k];
            char a[512], b[512];
            base_symbol(fr->function, a, sizeof a);
            base_symbol(ref[k].function, b, sizeof b);
            const char *mod = fr->module >= 0 ? ana_module_basename(&c->modules[fr->module]) : "";
            if (fr->pc != ref[k].pc || strcmp(a, b) != 0 || strcmp(mod, ref[k].module) != 0)
                fail_msg("%s frame %zu: 0x%llx %s - %s, eu-stack 0x%llx %s - %s", rel, k,
                         (unsigned long long)fr->pc, a, mod, (unsigned long long)ref[k].pc, b,
                         ref[k].module);
            /* callers come from .eh_frame CFI in every build, never from scanning */
            assert_int_equal(fr->trust, k ? ANA_TRUST_CFI : ANA_TRUST_CONTEXT);
            assert_int_equal(fr->inline_count, 0); /* eu-stack lists no inline frames either */
            if (ref[k].file[0] && strcmp(a, "_start") == 0 && !fr->file) {
                /* eu-stack's line for _start is an artefact: libdwfl takes the nearest compile
                 * unit below an address no unit covers (crt1's _start has no DWARF; in -O2
                 * builds main's unit lies below it), and that unit's last line. No unit's
                 * ranges hold _start, so there is no line to give. */
                start_artefacts++;
            } else if (ref[k].file[0]) {
                if (!fr->file || strcmp(fr->file, ref[k].file) != 0 || fr->line != ref[k].line)
                    fail_msg("%s frame %zu: %s:%u, eu-stack %s:%u", rel, k,
                             fr->file ? fr->file : "?", fr->line, ref[k].file, ref[k].line);
                lines++;
            }
            frames++;
        }
        /* the true bottom, and nothing past it */
        assert_true(is_bottom(t->frames[t->frame_count - 1].function));
        assert_false(t->frames_truncated);
        ana_crash_free(c);
    }
    assert_true(frames >= 1000 && lines >= 300);
    assert_true(start_artefacts >= 1); /* the documented case is still in the corpus */
    ana_symstore_free(s);
}

/* Worker threads walking different cores over one store agree with a single-threaded walk. */
struct worker {
    struct ana_symstore *s;
    const struct label *labels;
    size_t first, n;
    char sig[16][2048];
};

static void signature_of(const struct ana_crash *c, char *out, size_t cap)
{
    const struct ana_thread *t = &c->threads[c->crash_info.crashing_thread];
    size_t o = 0;
    out[0] = 0;
    for (size_t k = 0; k < t->frame_count && o < cap; k++)
        o += (size_t)snprintf(out + o, cap - o, "%llx:%s:%u|",
                              (unsigned long long)t->frames[k].pc,
                              t->frames[k].function ? t->frames[k].function : "?",
                              t->frames[k].line);
}

static void *work(void *arg)
{
    struct worker *w = arg;
    for (size_t i = 0; i < w->n; i++) {
        char rel[512];
        snprintf(rel, sizeof rel, "%.100s/elfcores/%.300s", TRIAGE_CORPUS_DIR,
                 w->labels[w->first + i].dump);
        struct ana_crash *c;
        struct cm_err err;
        if (ana_load_file(rel, NULL, &c, &err) != CM_E_OK || ana_unwind_all(c, w->s, &err))
            snprintf(w->sig[i], sizeof w->sig[i], "error %s", err.msg);
        else
            signature_of(c, w->sig[i], sizeof w->sig[i]);
        ana_crash_free(c);
    }
    return NULL;
}

static void shared_store_threads(void **state)
{
    static struct label labels[256];
    size_t nl = read_labels(labels, 256);
    assert_true(nl >= 16);
    static struct worker one, many[4];
    one = (struct worker){ .s = store_of(th_corpus("elfcores/symbols")), .labels = labels,
                           .first = 0, .n = 16 };
    work(&one);
    struct ana_symstore *shared = store_of(th_corpus("elfcores/symbols"));
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        many[i] = (struct worker){ .s = shared, .labels = labels, .first = (size_t)i * 4, .n = 4 };
        pthread_create(&th[i], NULL, work, &many[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++)
        for (size_t k = 0; k < 4; k++)
            assert_string_equal(many[i].sig[k], one.sig[(size_t)i * 4 + k]);
    struct ana_symstore_stats st;
    ana_symstore_get_stats(shared, &st);
    assert_true(st.hits > 0);
    ana_symstore_free(shared);
    ana_symstore_free(one.s);
}

/* ---- hand-built crash models ---- */

static struct ana_crash *model_new(enum ana_cpu cpu, const char *os)
{
    struct ana_crash *c = cm_calloc(1, sizeof *c);
    ana_limits_default(&c->limits);
    c->system_info.cpu = cpu;
    c->system_info.os = os;
    c->modules = ana__calloc(c, 8, sizeof *c->modules);
    c->regions = ana__calloc(c, 8, sizeof *c->regions);
    c->threads = ana__calloc(c, 2, sizeof *c->threads);
    c->crash_info.crashing_thread = 0;
    c->main_module = -1;
    return c;
}

static void model_module(struct ana_crash *c, uint64_t base, uint64_t size, const char *path)
{
    c->modules[c->module_count++] = (struct ana_module){ .base = base, .size = size, .path = path };
}

static uint8_t *model_region(struct ana_crash *c, uint64_t base, uint64_t size)
{
    uint8_t *p = ana__calloc(c, 1, size);
    c->regions[c->region_count++] = (struct ana_region){ .base = base, .size = size, .data = p };
    return p;
}

static struct ana_thread *model_thread(struct ana_crash *c)
{
    struct ana_thread *t = &c->threads[c->thread_count++];
    t->tid = 100 + (uint32_t)c->thread_count;
    t->has_ctx = true;
    t->ctx.cpu = c->system_info.cpu;
    return t;
}

static void put(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static const struct ana_thread *walk_model(struct ana_crash *c)
{
    struct cm_err err;
    assert_int_equal(ana__finish(c, &err), CM_E_OK);
    assert_int_equal(ana_unwind_all(c, NULL, &err), CM_E_OK);
    return &c->threads[0];
}

static bool has_warning(const struct ana_crash *c, const char *what)
{
    for (size_t i = 0; i < c->warning_count; i++)
        if (strstr(c->warnings[i], what))
            return true;
    return false;
}

/* x86 %ebp pointing at itself: [ebp] = ebp. The first unwind reaches the caller; the next would
 * not move the stack pointer: the walk stops, marked truncated. */
static void fp_chain_to_itself(void **state)
{
    struct ana_crash *c = model_new(ANA_CPU_X86, "Windows NT");
    model_module(c, 0x400000, 0x10000, "app.exe");
    uint8_t *stk = model_region(c, 0x12000, 0x1000);
    put(stk + 0x100, 0x12100, 4);   /* [ebp] = ebp */
    put(stk + 0x104, 0x401234, 4);  /* [ebp + 4]: a return address */
    struct ana_thread *t = model_thread(c);
    ana_ctx_set(&t->ctx, ANA_X86_EIP, 0x400100);
    ana_ctx_set(&t->ctx, ANA_X86_ESP, 0x12000);
    ana_ctx_set(&t->ctx, ANA_X86_EBP, 0x12100);
    t = (struct ana_thread *)walk_model(c);
    assert_int_equal(t->frame_count, 2);
    assert_int_equal(t->frames[1].pc, 0x401234);
    assert_int_equal(t->frames[1].trust, ANA_TRUST_FP);
    assert_true(t->frames_truncated);
    assert_true(has_warning(c, "did not move up"));
    ana_crash_free(c);

    /* amd64: the walker refuses the self-pointing chain outright and scans instead; the scan
     * ends with the stack */
    c = model_new(ANA_CPU_AMD64, "Linux");
    model_module(c, 0x400000, 0x10000, "app");
    stk = model_region(c, 0x7fff0000, 0x1000);
    put(stk + 0x100, 0x7fff0100, 8);
    put(stk + 0x108, 0x401234, 8);
    t = model_thread(c);
    ana_ctx_set(&t->ctx, ANA_AMD64_RIP, 0x400100);
    ana_ctx_set(&t->ctx, ANA_AMD64_RSP, 0x7fff0000);
    ana_ctx_set(&t->ctx, ANA_AMD64_RBP, 0x7fff0100);
    t = (struct ana_thread *)walk_model(c);
    assert_int_equal(t->frame_count, 2);
    assert_int_equal(t->frames[1].trust, ANA_TRUST_SCAN);
    assert_int_equal(t->frames[1].regs.r[ANA_AMD64_RSP], 0x7fff0110);
    ana_crash_free(c);
}

/* x86 frame chain going down the stack: stopped at the first caller below its callee. */
static void sp_not_increasing(void **state)
{
    struct ana_crash *c = model_new(ANA_CPU_X86, "Windows NT");
    model_module(c, 0x400000, 0x10000, "app.exe");
    uint8_t *stk = model_region(c, 0x12000, 0x1000);
    put(stk + 0x800, 0x12400, 4); /* caller's ebp lower than this frame */
    put(stk + 0x804, 0x401000, 4);
    put(stk + 0x400, 0x12200, 4);
    put(stk + 0x404, 0x402000, 4);
    struct ana_thread *t = model_thread(c);
    ana_ctx_set(&t->ctx, ANA_X86_EIP, 0x400100);
    ana_ctx_set(&t->ctx, ANA_X86_ESP, 0x12000);
    ana_ctx_set(&t->ctx, ANA_X86_EBP, 0x12800);
    t = (struct ana_thread *)walk_model(c);
    assert_int_equal(t->frame_count, 2);
    assert_true(t->frames_truncated);
    ana_crash_free(c);
}

/* A stack pointer outside every region, and a thread whose listed stack is empty: the context
 * frame only, and nothing read outside stack memory. */
static void sp_outside_stack_and_empty_stack(void **state)
{
    struct ana_crash *c = model_new(ANA_CPU_AMD64, "Linux");
    model_module(c, 0x400000, 0x10000, "app");
    uint8_t *other = model_region(c, 0x600000, 0x1000); /* memory, but not the stack */
    put(other, 0x401000, 8);
    struct ana_thread *t = model_thread(c);
    ana_ctx_set(&t->ctx, ANA_AMD64_RIP, 0x400100);
    ana_ctx_set(&t->ctx, ANA_AMD64_RSP, 0x7fff0000);
    ana_ctx_set(&t->ctx, ANA_AMD64_RBP, 0x600000);
    t = (struct ana_thread *)walk_model(c);
    assert_int_equal(t->frame_count, 1);
    assert_int_equal(t->frames[0].trust, ANA_TRUST_CONTEXT);
    assert_int_equal(t->frames[0].module, 0);
    ana_crash_free(c);

    c = model_new(ANA_CPU_X86, "Windows NT");
    model_module(c, 0x400000, 0x10000, "app.exe");
    uint8_t *stk = model_region(c, 0x12000, 0x1000);
    put(stk + 0x10, 0x401000, 4);
    t = model_thread(c);
    t->stack_base = 0x12000;
    t->stack_size = 0; /* the dump lists no stack bytes... */
    ana_ctx_set(&t->ctx, ANA_X86_EIP, 0x400100);
    ana_ctx_set(&t->ctx, ANA_X86_ESP, 0x20000); /* ...and sp points nowhere */
    ana_ctx_set(&t->ctx, ANA_X86_EBP, 0x12000);
    t = (struct ana_thread *)walk_model(c);
    assert_int_equal(t->frame_count, 1);
    ana_crash_free(c);
}

/* A long, valid %ebp chain: cut at limits.max_frames, marked truncated. */
static void frame_cap(void **state)
{
    struct ana_crash *c = model_new(ANA_CPU_X86, "Windows NT");
    c->limits.max_frames = 100;
    model_module(c, 0x400000, 0x10000, "app.exe");
    uint64_t base = 0x100000;
    uint8_t *stk = model_region(c, base, 0x10000);
    for (uint32_t off = 0; off + 16 < 0x10000; off += 16) {
        put(stk + off, base + off + 16, 4);
        put(stk + off + 4, 0x401000 + off, 4);
    }
    struct ana_thread *t = model_thread(c);
    ana_ctx_set(&t->ctx, ANA_X86_EIP, 0x400100);
    ana_ctx_set(&t->ctx, ANA_X86_ESP, base);
    ana_ctx_set(&t->ctx, ANA_X86_EBP, base);
    t = (struct ana_thread *)walk_model(c);
    assert_int_equal(t->frame_count, 100);
    assert_true(t->frames_truncated);
    for (size_t i = 1; i < t->frame_count; i++) {
        assert_int_equal(t->frames[i].trust, ANA_TRUST_FP);
        assert_int_equal(t->frames[i].pc, 0x401000 + (i - 1) * 16);
    }
    assert_true(has_warning(c, "frame cap"));
    ana_crash_free(c);
}

/* A null return address ends the stack normally (not truncated). */
static void null_return_ends(void **state)
{
    struct ana_crash *c = model_new(ANA_CPU_X86, "Windows NT");
    model_module(c, 0x400000, 0x10000, "app.exe");
    uint8_t *stk = model_region(c, 0x12000, 0x1000);
    put(stk + 0x100, 0x12200, 4);
    put(stk + 0x104, 0x401000, 4);
    put(stk + 0x200, 0, 4);
    put(stk + 0x204, 0, 4); /* the outermost frame returns to 0 */
    struct ana_thread *t = model_thread(c);
    ana_ctx_set(&t->ctx, ANA_X86_EIP, 0x400100);
    ana_ctx_set(&t->ctx, ANA_X86_ESP, 0x12000);
    ana_ctx_set(&t->ctx, ANA_X86_EBP, 0x12100);
    t = (struct ana_thread *)walk_model(c);
    assert_int_equal(t->frame_count, 2);
    assert_false(t->frames_truncated);
    ana_crash_free(c);
}

/* arm64: lr gives the first caller, the x29 frame records the rest; return addresses lose
 * pointer-authentication bits. */
static void arm64_frame_records(void **state)
{
    struct ana_crash *c = model_new(ANA_CPU_ARM64, "Linux");
    model_module(c, 0x5500000000, 0x100000, "app");
    uint64_t base = 0x7ff0000000;
    uint8_t *stk = model_region(c, base, 0x1000);
    put(stk + 0x100, base + 0x200, 8);         /* record of frame 1: [fp] = caller fp */
    put(stk + 0x108, 0x5500002000, 8);         /* [fp + 8] = lr of frame 1 -> frame 2 pc */
    put(stk + 0x200, base + 0x300, 8);         /* frame 2 record */
    put(stk + 0x208, 0x0012005500003000, 8);   /* signed return address */
    /* frame 3 record at base + 0x300: zeros, so frame 3 returns to 0: the end */
    struct ana_thread *t = model_thread(c);
    ana_ctx_set(&t->ctx, ANA_ARM64_PC, 0x5500000100);
    ana_ctx_set(&t->ctx, ANA_ARM64_SP, base);
    ana_ctx_set(&t->ctx, ANA_ARM64_FP, base + 0x100);
    ana_ctx_set(&t->ctx, ANA_ARM64_LR, 0x5500001000);
    t = (struct ana_thread *)walk_model(c);
    assert_int_equal(t->frame_count, 4);
    assert_false(t->frames_truncated);
    assert_int_equal(t->frames[1].pc, 0x5500001000);
    assert_int_equal(t->frames[1].trust, ANA_TRUST_FP);
    assert_int_equal(t->frames[2].pc, 0x5500002000);
    assert_int_equal(t->frames[3].pc, 0x5500003000); /* bits above the modules stripped */
    ana_crash_free(c);
}

/* Breakpad's postfix language, as STACK WIN programs and STACK CFI rules use it. */
static bool eval(struct uw *w, struct uw_vars *d, const char *prog, bool assign, uint64_t *v)
{
    struct uw_tok t[128];
    size_t n = ana__uw_tokens(prog, t, 128);
    assert_true(n <= 128);
    return ana__uw_postfix(w, d, t, n, assign, v);
}

static uint64_t var(struct uw *w, struct uw_vars *d, const char *name)
{
    uint64_t v = 0;
    assert_true(ana__uw_var_get(w, d, name, strlen(name), &v));
    return v;
}

static void postfix_language(void **state)
{
    struct ana_crash *c = model_new(ANA_CPU_X86, "Windows NT");
    uint8_t *stk = model_region(c, 0x12000, 0x100);
    put(stk + 0x10, 0x12080, 4); /* saved ebp */
    put(stk + 0x14, 0x401000, 4); /* return address */
    struct cm_err err;
    assert_int_equal(ana__finish(c, &err), CM_E_OK);
    struct uw w = { .c = c, .cpu = ANA_CPU_X86, .word = 4, .mask = 0xffffffff,
                    .stack_lo = 0x12000, .stack_hi = 0x12100 };
    struct uw_vars d = { 0 };
    ana__uw_var_set(&d, "$ebp", 4, 0x12010, false);
    ana__uw_var_set(&d, "$esp", 4, 0x12000, false);
    uint64_t v;
    /* the FRAME_DATA program of a standard %ebp frame */
    assert_true(eval(&w, &d, "$T0 $ebp = $eip $T0 4 + ^ = $ebp $T0 ^ = $esp $T0 8 + =", true,
                     NULL));
    assert_int_equal(var(&w, &d, "$eip"), 0x401000);
    assert_int_equal(var(&w, &d, "$ebp"), 0x12080);
    assert_int_equal(var(&w, &d, "$esp"), 0x12018);
    /* values */
    assert_true(eval(&w, &d, "$esp 8 +", false, &v));
    assert_int_equal(v, 0x12020);
    assert_true(eval(&w, &d, "0 1 -", false, &v));
    assert_int_equal(v, 0xffffffff); /* 32-bit wrap */
    assert_true(eval(&w, &d, "-8 $esp +", false, &v));
    assert_int_equal(v, 0x12010);
    assert_true(eval(&w, &d, "0x1f 8 @", false, &v));
    assert_int_equal(v, 0x18);
    assert_true(eval(&w, &d, "17 5 %", false, &v));
    assert_int_equal(v, 2);
    /* failures: division by zero, non-power-of-two alignment, reads outside the stack, unknown
     * names, stack underflow, leftovers, assignments to non-variables or in value mode */
    static const char *const bad_values[] = { "8 0 /", "8 0 %", "13 3 @", "$esp 0x1000 + ^",
                                              "$nope", "+", "1 2", "", "$T9 4 =" };
    for (size_t i = 0; i < sizeof bad_values / sizeof *bad_values; i++)
        assert_false(eval(&w, &d, bad_values[i], false, &v));
    static const char *const bad_programs[] = { ".cfa 4 =", "4 $T0 =", "$T0 4", "$T0 =",
                                                "$T0 $nope =" };
    for (size_t i = 0; i < sizeof bad_programs / sizeof *bad_programs; i++)
        assert_false(eval(&w, &d, bad_programs[i], true, NULL));
    /* too deep: 65 pushes */
    char deep[400] = "";
    for (int i = 0; i < 65; i++)
        strcat(deep, "1 ");
    assert_false(eval(&w, &d, deep, false, &v));
    ana_crash_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(breakpad_reference),
        cmocka_unit_test(breakpad_without_symbols),
        cmocka_unit_test(elfcore_reference),
        cmocka_unit_test(shared_store_threads),
        cmocka_unit_test(fp_chain_to_itself),
        cmocka_unit_test(sp_not_increasing),
        cmocka_unit_test(sp_outside_stack_and_empty_stack),
        cmocka_unit_test(frame_cap),
        cmocka_unit_test(null_return_ends),
        cmocka_unit_test(arm64_frame_records),
        cmocka_unit_test(postfix_language),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
