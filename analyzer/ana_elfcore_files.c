/* ana_elfcore_files.c -- NT_FILE, the kernel's table of file-backed mappings, into modules: one
 * module per distinct file, from the start of its lowest mapping to the end of its highest; each
 * mapping the table covers gets its file's name and offset. Also picks the main module, the one
 * holding AT_ENTRY. Layout (Linux fs/binfmt_elf.c fill_files_note): long count; long page_size;
 * count x {long start, long end, long file_ofs (in pages)}; then count NUL-terminated names.
 * Broken tables (LLVM D65832's cases: huge count, page size 0, unterminated names) are ignored
 * with a warning. */
#include <elf.h> /* AT_ENTRY */
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana_int.h"
#include "common/cm_alloc.h"

/* vm.max_map_count defaults to 65530: a process has fewer file mappings than this. */
#define MAX_FILE_ENTRIES (1u << 16)

struct file_ent {
    uint64_t start, end, page_ofs;
    const uint8_t *name; /* inside the descriptor, name_len bytes before its NUL */
    size_t name_len;
};

struct file_table {
    uint64_t count, page_size;
    struct file_ent *ents; /* owned: cm_free */
    size_t n;
};

/* Views the NUL-terminated string at the cursor; false if no NUL is left. */
static bool take_cstr(struct cm_cur *d, const uint8_t **s, size_t *len)
{
    struct cm_cur rest = *d;
    const uint8_t *p;
    if (!cm_cur_view(&rest, cm_cur_left(d), &p))
        return false;
    const uint8_t *nul = memchr(p, 0, cm_cur_left(d));
    if (!nul)
        return false;
    *s = p;
    *len = (size_t)(nul - p);
    return cm_cur_skip(d, *len + 1);
}

/* count and page_size, checked against the descriptor's bytes before anything is allocated. */
static bool read_head(struct ana__core *k, struct cm_cur *d, uint64_t off, struct file_table *t)
{
    struct ana_crash *c = k->c;
    unsigned w = k->word;
    ana__cur_word(d, w, &t->count);
    ana__cur_word(d, w, &t->page_size);
    if (d->failed)
        ana__warn(c, "elfcore: NT_FILE at 0x%llx: %zu bytes end before count and page_size; "
                  "mapping list ignored", (unsigned long long)off, d->len);
    else if (t->count > cm_cur_left(d) / (3 * w))
        ana__warn(c, "elfcore: NT_FILE at 0x%llx: count %llu of %u-byte entries exceeds the "
                  "%zu-byte descriptor; mapping list ignored", (unsigned long long)off,
                  (unsigned long long)t->count, 3 * w, d->len);
    else if (t->page_size == 0 || (t->page_size & (t->page_size - 1)))
        ana__warn(c, "elfcore: NT_FILE at 0x%llx: page_size %llu is not a power of two; "
                  "mapping list ignored", (unsigned long long)off,
                  (unsigned long long)t->page_size);
    else
        return true;
    return false;
}

static bool read_table(struct ana__core *k, struct cm_cur d, uint64_t off, struct file_table *t)
{
    struct ana_crash *c = k->c;
    unsigned w = k->word;
    if (!read_head(k, &d, off, t))
        return false;
    t->n = t->count > MAX_FILE_ENTRIES ? MAX_FILE_ENTRIES : (size_t)t->count;
    if (t->n < t->count)
        ana__warn(c, "elfcore: NT_FILE at 0x%llx: %llu mappings cut to %zu",
                  (unsigned long long)off, (unsigned long long)t->count, t->n);
    t->ents = cm_calloc(t->n ? t->n : 1, sizeof *t->ents);
    if (!t->ents) {
        k->nomem = true;
        return false;
    }
    for (size_t i = 0; i < t->n; i++) {
        ana__cur_word(&d, w, &t->ents[i].start);
        ana__cur_word(&d, w, &t->ents[i].end);
        ana__cur_word(&d, w, &t->ents[i].page_ofs);
    }
    cm_cur_seek(&d, 2 * w + 3 * w * (size_t)t->count); /* names follow all count entries */
    for (size_t i = 0; i < t->n; i++) {
        if (!take_cstr(&d, &t->ents[i].name, &t->ents[i].name_len)) {
            ana__warn(c, "elfcore: NT_FILE at 0x%llx: name %zu of %llu is not terminated "
                      "inside the %zu-byte descriptor; mapping list ignored",
                      (unsigned long long)off, i, (unsigned long long)t->count, d.len);
            return false;
        }
    }
    return true;
}

/* Entries with end <= start describe no memory; they are dropped. */
static void drop_empty(struct ana__core *k, struct file_table *t, uint64_t off)
{
    size_t kept = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->ents[i].end > t->ents[i].start)
            t->ents[kept++] = t->ents[i];
    if (kept < t->n)
        ana__warn(k->c, "elfcore: NT_FILE at 0x%llx: %zu mappings end before they start; "
                  "dropped", (unsigned long long)off, t->n - kept);
    t->n = kept;
}

static bool same_name(const struct file_ent *x, const struct file_ent *y)
{
    return x->name_len == y->name_len && memcmp(x->name, y->name, x->name_len) == 0;
}

static int cmp_ent(const void *a, const void *b)
{
    const struct file_ent *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int r = memcmp(x->name, y->name, n);
    if (r || x->name_len != y->name_len)
        return r ? r : x->name_len < y->name_len ? -1 : 1;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int cmp_module(const void *a, const void *b)
{
    const struct ana_module *x = a, *y = b;
    if (x->base != y->base)
        return x->base < y->base ? -1 : 1;
    return strcmp(x->path, y->path);
}

/* The mapping starting at e->start (c->mappings is sorted) gets the file's name and offset. */
static void name_mapping(struct ana_crash *c, const struct file_ent *e, uint64_t page_size,
                         const char *path)
{
    size_t lo = 0, hi = c->mapping_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->mappings[mid].base < e->start)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == c->mapping_count || c->mappings[lo].base != e->start)
        return;
    c->mappings[lo].name = path;
    if (e->page_ofs <= UINT64_MAX / page_size)
        c->mappings[lo].file_offset = e->page_ofs * page_size;
}

/* Groups the entries by file: one module each, sorted by base, cut to limits.max_modules. */
static void build_modules(struct ana__core *k, struct file_table *t, uint64_t off)
{
    struct ana_crash *c = k->c;
    size_t groups = 0, g = 0;
    if (t->n > 1)
        qsort(t->ents, t->n, sizeof *t->ents, cmp_ent);
    for (size_t i = 0; i < t->n; i++)
        groups += i == 0 || !same_name(&t->ents[i - 1], &t->ents[i]);
    struct ana_module *m = ana__calloc(c, groups ? groups : 1, sizeof *m);
    if (!m) {
        k->nomem = true;
        return;
    }
    for (size_t i = 0, j; i < t->n; i = j) {
        uint64_t end = 0;
        char *path = ana__core_text(c, t->ents[i].name, t->ents[i].name_len);
        if (!path) {
            k->nomem = true;
            return;
        }
        for (j = i; j < t->n && same_name(&t->ents[i], &t->ents[j]); j++) {
            end = t->ents[j].end > end ? t->ents[j].end : end;
            name_mapping(c, &t->ents[j], t->page_size, path);
        }
        /* sorted by start within the file: entry i is its lowest mapping */
        m[g] = (struct ana_module){ .base = t->ents[i].start, .size = end - t->ents[i].start,
                                    .path = path };
        m[g].debug_file = ana_module_basename(&m[g]);
        g++;
    }
    if (g > 1)
        qsort(m, g, sizeof *m, cmp_module);
    if (g > c->limits.max_modules) {
        ana__warn(c, "elfcore: NT_FILE at 0x%llx: %zu files exceed the limit of %u modules; "
                  "cut", (unsigned long long)off, g, c->limits.max_modules);
        g = c->limits.max_modules;
    }
    c->modules = m;
    c->module_count = g;
}

void ana__core_files(struct ana__core *k, struct cm_cur desc, uint64_t off)
{
    struct file_table t = { 0 };
    if (read_table(k, desc, off, &t)) {
        drop_empty(k, &t, off);
        build_modules(k, &t, off);
    }
    cm_free(t.ents);
}

/* ---- main module ---- */

static bool auxv_value(const struct ana_crash *c, uint64_t type, uint64_t *v)
{
    for (size_t i = 0; i < c->auxv_count; i++) {
        if (c->auxv[2 * i] == type) {
            *v = c->auxv[2 * i + 1];
            return true;
        }
    }
    return false;
}

/* The module whose file name begins with the process name (pr_fname: the executable's base
 * name cut to 15 bytes), -1 if none. */
static int module_named(const struct ana_crash *c, const char *comm)
{
    size_t n = strlen(comm);
    for (size_t i = 0; n && i < c->module_count; i++) {
        const char *base = ana_module_basename(&c->modules[i]);
        if (strncmp(base, comm, n) == 0 && (base[n] == 0 || n >= 15))
            return (int)i;
    }
    return -1;
}

/* AT_ENTRY is the executable's entry point (the kernel's, before the dynamic loader runs). */
void ana__core_main_module(struct ana__core *k)
{
    struct ana_crash *c = k->c;
    uint64_t entry;
    int i = -1;
    if (auxv_value(c, AT_ENTRY, &entry))
        i = ana_module_at(c, entry);
    if (i < 0 && c->process_name)
        i = module_named(c, c->process_name);
    if (i >= 0) {
        c->main_module = i;
        c->modules[i].is_main = true;
    }
}

/* ---- the vDSO ---- */

/* The kernel maps the vDSO without a file, so NT_FILE omits it; AT_SYSINFO_EHDR gives its
 * address. It becomes a module named as the dynamic loader names it (its DT_SONAME), sized by
 * the PT_LOAD mapping that holds it. Runs before the main module is chosen, so it may sort. */
void ana__core_vdso_module(struct ana__core *k)
{
    struct ana_crash *c = k->c;
    uint64_t at;
    const struct ana_mapping *mp;
    if (!auxv_value(c, AT_SYSINFO_EHDR, &at) || at == 0 || !(mp = ana_mapping_at(c, at)) ||
        mp->name || c->module_count >= c->limits.max_modules)
        return;
    for (size_t i = 0; i < c->module_count; i++)
        if (at - c->modules[i].base < c->modules[i].size)
            return;
    struct ana_module *m = ana__calloc(c, c->module_count + 1, sizeof *m);
    if (!m) {
        k->nomem = true;
        return;
    }
    if (c->module_count)
        memcpy(m, c->modules, c->module_count * sizeof *m);
    m[c->module_count] = (struct ana_module){
        .base = at, .size = mp->size - (at - mp->base),
        .path = k->machine == EM_386 ? "linux-gate.so.1" : "linux-vdso.so.1" };
    m[c->module_count].debug_file = m[c->module_count].path;
    c->modules = m;
    c->module_count++;
    qsort(c->modules, c->module_count, sizeof *c->modules, cmp_module); /* kept by base */
}
