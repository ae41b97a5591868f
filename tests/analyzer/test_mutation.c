/* test_mutation.c -- every corpus dump, cut short at many offsets and with bytes flipped across
 * its headers and directories, goes through ana_load in process: each outcome is CM_E_OK with a
 * model that keeps the limits, or an error with a message; no crash, no hang, no leak (the
 * sanitizer build checks the last). A subset of the mutants also goes through
 * `triagectl stackwalk`, which must exit 0 or 1 (with a message on stderr), never by a signal.
 *
 * Corpus: breakpad/testdata/ *.dmp (MDMP, and microdumps as text), a sample of elfcores/dumps
 * (decompressed), windows-kernel/triage_x64.dmp. Where the flips go follows each format's
 * header: MINIDUMP_HEADER and MINIDUMP_DIRECTORY and each stream's first bytes; the ELF header,
 * program headers and the start of each PT_NOTE; the kernel DUMP_HEADER64's first page and the
 * triage offsets its README lists. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana.h"
#include "common/cm_alloc.h"
#include "tests/th.h"

struct dump {
    char name[256];
    uint8_t *p;
    size_t n;
};

static struct dump dumps[64];
static size_t ndumps;
static unsigned long loads_ok, loads_failed; /* reported, so a run that tests nothing shows */

static uint32_t rd32(const uint8_t *p, size_t n, size_t off)
{
    if (off > n || n - off < 4)
        return 0;
    return (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
           (uint32_t)p[off + 3] << 24;
}

static uint64_t rd64(const uint8_t *p, size_t n, size_t off)
{
    return rd32(p, n, off) | (uint64_t)rd32(p, n, off + 4) << 32;
}

static uint16_t rd16(const uint8_t *p, size_t n, size_t off)
{
    return off <= n && n - off >= 2 ? (uint16_t)(p[off] | p[off + 1] << 8) : 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted file names in dir ending in suffix. */
static size_t list_dir(const char *dir, const char *suffix, char **out, size_t max)
{
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open corpus folder %s", dir);
    size_t n = 0;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d)) != NULL && n < max) {
        size_t l = strlen(e->d_name);
        if (l > sl && strcmp(e->d_name + l - sl, suffix) == 0)
            out[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(out, n, sizeof *out, cmp_str);
    return n;
}

static void add_dump(const char *name, uint8_t *p, size_t n)
{
    assert_true(ndumps < sizeof dumps / sizeof *dumps);
    struct dump *d = &dumps[ndumps++];
    snprintf(d->name, sizeof d->name, "%s", name);
    d->p = p;
    d->n = n;
}

static int setup(void **state)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", th_corpus("breakpad/testdata"));
    char *names[256];
    size_t n = list_dir(dir, ".dmp", names, 256);
    assert_true(n >= 30);
    for (size_t i = 0; i < n; i++) {
        char path[4400];
        size_t len;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        uint8_t *p = th_read(path, &len);
        add_dump(names[i], p, len);
        free(names[i]);
    }
    /* Every 20th core: all four programs and three build configurations show up. */
    snprintf(dir, sizeof dir, "%s", th_corpus("elfcores/dumps"));
    n = list_dir(dir, ".zst", names, 256);
    assert_true(n >= 100);
    for (size_t i = 0; i < n; i++) {
        if (i % 20 == 0) {
            char path[4400];
            size_t zlen, len;
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            uint8_t *z = th_read(path, &zlen), *raw;
            struct cm_err err;
            assert_int_equal(ana_decompress(z, zlen, NULL, &raw, &len, &err), CM_E_OK);
            uint8_t *copy = malloc(len);
            memcpy(copy, raw, len);
            cm_free(raw);
            free(z);
            add_dump(names[i], copy, len);
        }
        free(names[i]);
    }
    size_t len;
    uint8_t *k = th_read(th_corpus("windows-kernel/triage_x64.dmp"), &len);
    add_dump("triage_x64.dmp", k, len);
    return 0;
}

static int teardown(void **state)
{
    for (size_t i = 0; i < ndumps; i++)
        free(dumps[i].p);
    ndumps = 0;
    return 0;
}

/* One load: OK within the limits, or an error with a message. */
static void check_load(const struct dump *d, const uint8_t *p, size_t n, const char *what,
                       size_t where)
{
    struct ana_limits lim;
    ana_limits_default(&lim);
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    enum cm_code rc = ana_load(p, n, &lim, &c, &err);
    if (rc != CM_E_OK) {
        loads_failed++;
        if (c)
            fail_msg("%s %s at %zu: failed (%s) but returned a crash", d->name, what, where,
                     cm_code_name(rc));
        if (!err.msg[0])
            fail_msg("%s %s at %zu: %s without a message", d->name, what, where,
                     cm_code_name(rc));
        if (strcmp(cm_code_name(rc), "?") == 0)
            fail_msg("%s %s at %zu: unknown code %d", d->name, what, where, (int)rc);
        return;
    }
    assert_non_null(c);
    loads_ok++;
    if (c->thread_count > lim.max_threads || c->module_count > lim.max_modules ||
        c->annotation_count > lim.max_annotations)
        fail_msg("%s %s at %zu: a list exceeds its limit", d->name, what, where);
    for (size_t i = 1; i < c->region_count; i++)
        if (c->regions[i - 1].base + c->regions[i - 1].size > c->regions[i].base)
            fail_msg("%s %s at %zu: regions overlap or are unsorted", d->name, what, where);
    for (size_t i = 0; i < c->region_count; i++) /* region bytes lie inside the dump */
        if (c->regions[i].data < c->bytes || c->regions[i].size > c->byte_count ||
            (size_t)(c->regions[i].data - c->bytes) > c->byte_count - c->regions[i].size)
            fail_msg("%s %s at %zu: region 0x%llx points outside the dump", d->name, what, where,
                     (unsigned long long)c->regions[i].base);
    if (c->crash_info.crashing_thread >= (int)c->thread_count)
        fail_msg("%s %s at %zu: crashing thread out of range", d->name, what, where);
    ana_crash_free(c);
}

static void add_range(size_t *pos, size_t *npos, size_t max, size_t lo, size_t len, size_t n)
{
    for (size_t i = lo; i < lo + len && i < n && *npos < max; i++)
        pos[(*npos)++] = i;
}

/* Byte positions worth flipping: the structures that locate everything else. */
static size_t flip_positions(const struct dump *d, size_t *pos, size_t max)
{
    size_t np = 0;
    const uint8_t *p = d->p;
    size_t n = d->n;
    if (n >= 4 && memcmp(p, "MDMP", 4) == 0) {
        uint32_t count = rd32(p, n, 8), dir = rd32(p, n, 12);
        add_range(pos, &np, max, 0, 32, n);
        if (count > 64)
            count = 64;
        add_range(pos, &np, max, dir, 12 * (size_t)count, n);
        for (uint32_t i = 0; i < count; i++) /* each stream's count and first fields */
            add_range(pos, &np, max, rd32(p, n, dir + 12 * i + 8), 24, n);
    } else if (n >= 64 && memcmp(p, "\177ELF", 4) == 0) {
        uint64_t phoff = rd64(p, n, 32);
        uint16_t phentsize = rd16(p, n, 54), phnum = rd16(p, n, 56);
        add_range(pos, &np, max, 0, 64, n);
        if (phoff < n)
            add_range(pos, &np, max, (size_t)phoff,
                      (size_t)phentsize * (phnum < 16 ? phnum : 16), n);
        for (uint16_t i = 0; i < phnum && phoff < n; i++) {
            size_t ph = (size_t)phoff + (size_t)i * phentsize;
            if (rd32(p, n, ph) == 4) /* PT_NOTE: the note headers at its start */
                add_range(pos, &np, max, (size_t)rd64(p, n, ph + 8), 256, n);
        }
    } else if (n >= 8 && memcmp(p, "PAGEDU64", 8) == 0) {
        for (size_t i = 0; i < 0x1000 && np < max; i += 4) /* DUMP_HEADER64, every 4th byte */
            pos[np++] = i;
        static const size_t triage[] = { 0x348, 0xf00, 0xe390, 0x10828, 0x15d18 };
        for (size_t k = 0; k < sizeof triage / sizeof *triage; k++)
            add_range(pos, &np, max, triage[k], 32, n);
        add_range(pos, &np, max, 0x2000, 0x100, n); /* the triage dump header */
    } else {
        add_range(pos, &np, max, 0, 64, n);
    }
    return np;
}

static void truncations_load_or_fail_cleanly(void **state)
{
    loads_ok = loads_failed = 0;
    for (size_t k = 0; k < ndumps; k++) {
        const struct dump *d = &dumps[k];
        size_t pos[1024];
        size_t np = flip_positions(d, pos, 1024);
        /* Every offset up to 64, each structure boundary found above and one past it, 48
         * evenly spread offsets, and one byte short of the whole file. */
        for (size_t off = 0; off <= 64 && off < d->n; off++)
            check_load(d, d->p, off, "cut", off);
        for (size_t i = 0; i < np; i += 4)
            check_load(d, d->p, pos[i], "cut", pos[i]);
        for (size_t i = 1; i <= 48; i++)
            check_load(d, d->p, d->n / 49 * i, "cut", d->n / 49 * i);
        check_load(d, d->p, d->n - 1, "cut", d->n - 1);
    }
    print_message("%zu dumps cut: %lu loads read, %lu failed cleanly\n", ndumps, loads_ok,
                  loads_failed);
    assert_true(loads_ok > 0 && loads_failed > 0);
}

static void flips_load_or_fail_cleanly(void **state)
{
    loads_ok = loads_failed = 0;
    static const uint8_t how[3] = { 0xff, 0x00, 0x80 }; /* xor 0xff, set 0, xor 0x80 */
    for (size_t k = 0; k < ndumps; k++) {
        struct dump *d = &dumps[k];
        size_t pos[1024];
        size_t np = flip_positions(d, pos, 1024);
        assert_true(np > 0);
        for (size_t i = 0; i < np; i++) {
            uint8_t keep = d->p[pos[i]];
            for (int h = 0; h < 3; h++) {
                d->p[pos[i]] = h == 1 ? 0 : (uint8_t)(keep ^ how[h]);
                if (d->p[pos[i]] == keep)
                    continue;
                check_load(d, d->p, d->n, "flip", pos[i]);
            }
            d->p[pos[i]] = keep;
        }
    }
    print_message("flips: %lu loads read, %lu failed cleanly\n", loads_ok, loads_failed);
}

/* Mutants through the program: exit 0 or 1, a message on failure, never a signal or a hang. */
static void stackwalk_survives_mutants(void **state)
{
    const char *tool = th_triagectl();
    char *paths[64];
    size_t npaths = 0;
    for (size_t k = 0; k < ndumps && npaths < 60; k += 7) {
        const struct dump *d = &dumps[k];
        size_t pos[1024];
        size_t np = flip_positions(d, pos, 1024);
        size_t cuts[3] = { 31, d->n / 3, d->n - 1 };
        for (int m = 0; m < 6; m++) {
            uint8_t *q = malloc(d->n);
            memcpy(q, d->p, d->n);
            size_t len = d->n;
            if (m < 3) {
                len = cuts[m] < d->n ? cuts[m] : d->n;
            } else {
                size_t at = pos[(np / 4) * (size_t)(m - 2) % np];
                q[at] ^= 0xff;
            }
            char name[300];
            snprintf(name, sizeof name, "mutant-%zu-%d.dmp", k, m);
            const char *path = th_tmp(name);
            th_write(path, q, len);
            paths[npaths++] = strdup(path);
            free(q);
        }
    }
    for (size_t i = 0; i < npaths; i++) {
        for (int json = 0; json < 2; json++) {
            char *argv[] = { (char *)tool, "stackwalk", paths[i], json ? "--json" : "--human",
                             NULL };
            char *out = NULL, *errout = NULL;
            int st = th_run(argv, &out, &errout, 120);
            if (st != 0 && st != 1)
                fail_msg("triagectl stackwalk %s %s exited %d: %s", paths[i], argv[3], st,
                         errout);
            if (st == 1 && errout[0] == 0)
                fail_msg("triagectl stackwalk %s failed without a message", paths[i]);
            if (st == 0 && out[0] == 0)
                fail_msg("triagectl stackwalk %s printed nothing", paths[i]);
            free(out);
            free(errout);
        }
    }
    /* All at once: the worst status of them, still 0 or 1. */
    char *argv[72];
    int a = 0;
    argv[a++] = (char *)tool;
    argv[a++] = "stackwalk";
    for (size_t i = 0; i < npaths; i++)
        argv[a++] = paths[i];
    argv[a++] = "--json";
    argv[a] = NULL;
    char *out = NULL, *errout = NULL;
    int st = th_run(argv, &out, &errout, 300);
    assert_true(st == 0 || st == 1);
    free(out);
    free(errout);
    for (size_t i = 0; i < npaths; i++)
        free(paths[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(truncations_load_or_fail_cleanly),
        cmocka_unit_test(flips_load_or_fail_cleanly),
        cmocka_unit_test(stackwalk_survives_mutants),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
