/* test_minidump.c -- the MDMP reader against Breakpad's answers for every minidump of the shared
 * corpus (breakpad/testdata, answers in breakpad/reference and testdata/minidump2.dump.out), the
 * places where Breakpad is wrong and why, and hostile variants made by patching corpus bytes in
 * memory (RELIABILITY.md M01-M18). */
#define _GNU_SOURCE /* memmem */
#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana_int.h"
#include "tests/analyzer/mdmp_ref.h"
#include "tests/th.h"

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail_msg(__VA_ARGS__);                                                                 \
    } while (0)

static const char *nz(const char *s) { return s ? s : ""; }

static struct ana_crash *load_corpus(const char *name)
{
    char rel[512];
    snprintf(rel, sizeof rel, "breakpad/testdata/%s.dmp", name);
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    enum cm_code rc = ana_load_file(th_corpus(rel), NULL, &c, &err);
    CHECK(rc == CM_E_OK, "%s: load failed: %s %s", name, cm_code_name(rc), err.msg);
    return c;
}

static struct ana_crash *load_bytes(const uint8_t *p, size_t n, const struct ana_limits *lim,
                                    enum cm_code want, struct cm_err *err)
{
    struct ana_crash *c = NULL;
    enum cm_code rc = ana_load(p, n, lim, &c, err);
    CHECK(rc == want, "load gave %s (%s), expected %s", cm_code_name(rc), err->msg,
          cm_code_name(want));
    return c;
}

static bool has_warning(const struct ana_crash *c, const char *a, const char *b)
{
    for (size_t i = 0; i < c->warning_count; i++)
        if (strstr(c->warnings[i], a) && (!b || strstr(c->warnings[i], b)))
            return true;
    return false;
}

/* The corpus's minidumps by name (without .dmp), sorted; microdumps separately. */
static size_t corpus_dumps(char names[][128], size_t cap, bool microdumps)
{
    DIR *d = opendir(th_corpus("breakpad/testdata"));
    CHECK(d, "cannot list breakpad/testdata");
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".dmp") != 0)
            continue;
        if ((strncmp(e->d_name, "microdump-", 10) == 0) != microdumps)
            continue;
        CHECK(n < cap, "too many corpus dumps");
        snprintf(names[n++], 128, "%.*s", (int)(len - 4), e->d_name);
    }
    closedir(d);
    qsort(names, n, 128, (int (*)(const void *, const void *))strcmp);
    return n;
}

/* ---- agreement with minidump_stackwalk ---- */

static void strip_spaces(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 1 < cap; s++)
        if (!isspace((unsigned char)*s))
            out[o++] = *s;
    out[o] = 0;
}

/* Breakpad's reason and ours agree ignoring white space; where Breakpad prints a bare signal
 * ("SIGABRT") or a hex code ("SIGSEGV /0x00000000"), ours must name the same signal and, for a
 * hex code, hold that si_code and give it a name. */
static void check_reason(const char *name, const char *ref, const struct ana_crash *c)
{
    char a[256], b[256];
    const struct ana_crash_info *ci = &c->crash_info;
    strip_spaces(ref, a, sizeof a);
    strip_spaces(nz(ci->type), b, sizeof b);
    if (strcmp(a, b) == 0)
        return;
    CHECK(ci->has_signal && strncmp(a, "SIG", 3) == 0,
          "%s: reason '%s', Breakpad says '%s'", name, b, a);
    size_t sig_len = strcspn(a, "/");
    CHECK(strncmp(a, b, sig_len) == 0 && b[sig_len] == '/',
          "%s: reason '%s' is not the signal of Breakpad's '%s'", name, b, a);
    CHECK(strncmp(b + sig_len + 1, "0x", 2) != 0, "%s: reason '%s' leaves the code unnamed", name,
          b);
    if (a[sig_len] == '/') {
        CHECK(strncmp(a + sig_len + 1, "0x", 2) == 0, "%s: '%s' vs '%s'", name, b, a);
        CHECK((uint32_t)ci->si_code == (uint32_t)strtoul(a + sig_len + 3, NULL, 16),
              "%s: si_code %d is not Breakpad's %s", name, ci->si_code, a + sig_len + 1);
    }
}

/* Breakpad leaves the dump-writing thread out of its thread numbers. */
static int breakpad_index(const struct ana_crash *c, int ours)
{
    int k = 0;
    for (int i = 0; i < ours; i++)
        k += !c->threads[i].dump_writer;
    return k;
}

static void check_crash(const char *name, const struct mdref *r, const struct ana_crash *c)
{
    const struct ana_crash_info *ci = &c->crash_info;
    if (strcmp(r->reason, "No crash") == 0) {
        CHECK(!ci->crashed, "%s: Breakpad says no crash, we say %s", name, nz(ci->type));
        CHECK(r->thread[0] == 0 && ci->crashing_thread == -1, "%s: requesting thread", name);
        return;
    }
    CHECK(ci->crashed, "%s: not crashed", name);
    check_reason(name, r->reason, c);
    uint64_t ref_addr = strtoull(r->address, NULL, 16);
    if (ci->has_address)
        CHECK(ci->address == ref_addr, "%s: crash address 0x%" PRIx64 ", Breakpad 0x%" PRIx64,
              name, ci->address, ref_addr);
    else /* Breakpad's "address" of a sent signal is the sender's pid and uid */
        CHECK(ci->has_sender && ref_addr == ((uint64_t)ci->sender_uid << 32 | ci->sender_pid),
              "%s: no crash address and no sender matching Breakpad's %s", name, r->address);
    CHECK(ci->crashing_thread >= 0, "%s: no crashing thread", name);
    CHECK(breakpad_index(c, ci->crashing_thread) == atoi(r->thread),
          "%s: crashing thread %d, Breakpad %s", name, ci->crashing_thread, r->thread);
}

static int cmp_base(const void *a, const void *b)
{
    const struct ana_module *x = *(const struct ana_module *const *)a;
    const struct ana_module *y = *(const struct ana_module *const *)b;
    return x->base < y->base ? -1 : x->base > y->base;
}

static void check_modules(const char *name, const struct mdref *r, const struct ana_crash *c)
{
    CHECK(c->module_count == r->module_count, "%s: %zu modules, Breakpad %zu", name,
          c->module_count, r->module_count);
    const struct ana_module **by_base = calloc(c->module_count + 1, sizeof *by_base);
    for (size_t i = 0; i < c->module_count; i++)
        by_base[i] = &c->modules[i];
    qsort(by_base, c->module_count, sizeof *by_base, cmp_base);
    for (size_t i = 0; i < r->module_count; i++) {
        const struct mdref_module *ref = &r->modules[i];
        const struct ana_module *m = by_base[i];
        CHECK(strcmp(ana_module_basename(m), ref->name) == 0, "%s: module %zu is %s, Breakpad %s",
              name, i, ana_module_basename(m), ref->name);
        CHECK(m->base == ref->base && m->base + m->size - 1 == ref->end,
              "%s: %s range 0x%" PRIx64 "+0x%" PRIx64, name, ref->name, m->base, m->size);
        CHECK(strcmp(nz(m->version), ref->version) == 0, "%s: %s version '%s', Breakpad '%s'",
              name, ref->name, nz(m->version), ref->version);
        CHECK(strcmp(nz(m->debug_file), ref->debug_file) == 0,
              "%s: %s debug file '%s', Breakpad '%s'", name, ref->name, nz(m->debug_file),
              ref->debug_file);
        CHECK(strcmp(nz(m->debug_id), ref->debug_id) == 0, "%s: %s debug id '%s', Breakpad '%s'",
              name, ref->name, nz(m->debug_id), ref->debug_id);
        CHECK(m->is_main == ref->main, "%s: %s main flag", name, ref->name);
    }
    free(by_base);
}

static void check_system(const char *name, const struct mdref *r, const struct ana_crash *c)
{
    const struct ana_system_info *s = &c->system_info;
    CHECK(strcmp(nz(s->os), r->os) == 0, "%s: os '%s', Breakpad '%s'", name, nz(s->os), r->os);
    CHECK(strcmp(nz(s->os_ver), r->os_ver) == 0, "%s: os_ver '%s', Breakpad '%s'", name,
          nz(s->os_ver), r->os_ver);
    CHECK(strcmp(nz(s->cpu_arch), r->cpu) == 0, "%s: cpu %s, Breakpad %s", name, nz(s->cpu_arch),
          r->cpu);
    CHECK(strcmp(nz(s->cpu_info), r->cpu_info) == 0, "%s: cpu_info '%s', Breakpad '%s'", name,
          nz(s->cpu_info), r->cpu_info);
    CHECK(s->cpu_count == r->cpu_count, "%s: %u cpus, Breakpad %u", name, s->cpu_count,
          r->cpu_count);
}

/* Crash parameters and process uptime of the human report. */
static void check_record(const char *name, const struct mdref *r, const struct ana_crash *c)
{
    const struct ana_crash_info *ci = &c->crash_info;
    if (ci->crashed) {
        CHECK(ci->param_count == r->nparams, "%s: %u parameters, Breakpad %zu", name,
              ci->param_count, r->nparams);
        for (size_t i = 0; i < r->nparams; i++)
            CHECK(ci->params[i] == r->params[i], "%s: parameter %zu", name, i);
    }
    if (r->has_uptime)
        CHECK(c->dump_time - c->process_create_time == r->uptime_s, "%s: uptime", name);
}

/* Every register Breakpad printed for a thread's frame 0 is the one our context holds (the
 * exception's context for the crashed thread). */
static void check_contexts(const char *name, const struct mdref *r, const struct ana_crash *c)
{
    for (size_t k = 0; k < r->thread_count; k++) {
        const struct mdref_thread *t = &r->threads[k];
        int ours = -1;
        for (int i = 0, bp = 0; i < (int)c->thread_count; i++)
            if (!c->threads[i].dump_writer && bp++ == t->index)
                ours = i;
        CHECK(ours >= 0, "%s: Breakpad's thread %d is not ours", name, t->index);
        const struct ana_context *ctx = t->crashed && c->crash_info.has_exception_ctx
                                            ? &c->crash_info.exception_ctx
                                            : &c->threads[ours].ctx;
        CHECK(!t->nregs || c->threads[ours].has_ctx, "%s: thread %d has no context", name, ours);
        for (size_t j = 0; j < t->nregs; j++) {
            const char *rn = strcmp(t->regs[j].name, "efl") == 0 ? "eflags" : t->regs[j].name;
            int reg = ana_reg_by_name(ctx->cpu, rn);
            CHECK(reg >= 0 && ana_ctx_has(ctx, reg), "%s: thread %d lacks %s", name, ours, rn);
            CHECK(ctx->r[reg] == t->regs[j].value,
                  "%s: thread %d %s = 0x%" PRIx64 ", Breakpad 0x%" PRIx64, name, ours, rn,
                  ctx->r[reg], t->regs[j].value);
        }
    }
}

static void every_corpus_minidump_agrees_with_breakpad(void **state)
{
    static char names[128][128];
    size_t n = corpus_dumps(names, 128, false);
    CHECK(n >= 40, "only %zu minidumps in the corpus", n);
    for (size_t i = 0; i < n; i++) {
        struct mdref *r = mdref_load(names[i]);
        struct ana_crash *c = load_corpus(names[i]);
        check_system(names[i], r, c);
        check_crash(names[i], r, c);
        check_modules(names[i], r, c);
        check_record(names[i], r, c);
        check_contexts(names[i], r, c);
        ana_crash_free(c);
        free(r);
    }
}

static void microdumps_are_not_minidumps(void **state)
{
    static char names[16][128];
    size_t n = corpus_dumps(names, 16, true);
    CHECK(n >= 5, "only %zu microdumps", n);
    for (size_t i = 0; i < n; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "breakpad/testdata/%s.dmp", names[i]);
        struct ana_crash *c = (struct ana_crash *)1;
        struct cm_err err = { 0 };
        CHECK(ana_load_file(th_corpus(rel), NULL, &c, &err) == CM_E_NOTDUMP, "%s", names[i]);
        CHECK(c == NULL && strstr(err.msg, "not a crash dump"), "%s: %s", names[i], err.msg);
    }
}

/* ---- minidump2.dmp against minidump_dump ---- */

static const struct mdump_block *next_block(const struct mdump *d, size_t *i, const char *name)
{
    for (; *i < d->n; (*i)++)
        if (strcmp(d->blocks[*i].name, name) == 0)
            return &d->blocks[(*i)++];
    fail_msg("minidump2.dump.out has no further %s block", name);
    return NULL;
}

static void check_x86_context(const struct mdump_block *b, const struct ana_context *ctx)
{
    static const char *const regs[] = { "eax", "ecx", "edx", "ebx", "esp",
                                        "ebp", "esi", "edi", "eip", "eflags" };
    CHECK(ctx->cpu == ANA_CPU_X86, "context cpu %d", (int)ctx->cpu);
    for (size_t i = 0; i < sizeof regs / sizeof *regs; i++) {
        int r = ana_reg_by_name(ANA_CPU_X86, regs[i]);
        CHECK(ana_ctx_has(ctx, r) && ctx->r[r] == mdump_num(b, regs[i]), "%s", regs[i]);
    }
}

/* A hex dump of minidump_dump equals n bytes at p. */
static void check_hex(const char *hexs, const uint8_t *p, size_t n)
{
    CHECK(hexs && strlen(hexs) == 2 * n, "hex dump of %zu bytes", n);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hexs + 2 * i, "%2x", &v);
        CHECK(v == p[i], "byte %zu of a memory dump", i);
    }
}

static void check_threads(const struct mdump *d, size_t *i, const struct ana_crash *c)
{
    CHECK(c->thread_count == mdump_num(next_block(d, i, "MinidumpThreadList"), "thread_count"),
          "thread count");
    for (size_t t = 0; t < c->thread_count; t++) {
        const struct mdump_block *b = next_block(d, i, "MDRawThread");
        const struct ana_thread *th = &c->threads[t];
        CHECK(th->tid == mdump_num(b, "thread_id"), "thread %zu id", t);
        CHECK(th->stack_base == mdump_num(b, "stack.start_of_memory_range") &&
                  th->stack_size == mdump_num(b, "stack.memory.data_size"),
              "thread %zu stack", t);
        check_x86_context(next_block(d, i, "MDRawContextX86"), &th->list_ctx);
        const struct mdump_block *stack = next_block(d, i, "Stack");
        uint8_t *bytes = malloc(th->stack_size);
        CHECK(ana_mem_read(c, th->stack_base, bytes, th->stack_size), "thread %zu stack", t);
        check_hex(stack->data, bytes, th->stack_size);
        free(bytes);
    }
}

static void check_module_blocks(const struct mdump *d, size_t *i, const struct ana_crash *c)
{
    CHECK(c->module_count == mdump_num(next_block(d, i, "MinidumpModuleList"), "module_count"),
          "module count");
    for (size_t k = 0; k < c->module_count; k++) {
        const struct mdump_block *b = next_block(d, i, "MDRawModule");
        const struct ana_module *m = &c->modules[k];
        CHECK(m->base == mdump_num(b, "base_of_image") && m->size == mdump_num(b, "size_of_image"),
              "module %zu range", k);
        CHECK(m->checksum == mdump_num(b, "checksum") &&
                  m->timestamp == mdump_num(b, "time_date_stamp"),
              "module %zu checksum/timestamp", k);
        CHECK(strcmp(m->path, mdump_str(b, "(code_file)")) == 0, "module %zu path", k);
        CHECK(strcmp(nz(m->code_id), mdump_str(b, "(code_identifier)")) == 0, "module %zu code id",
              k);
        const char *df = mdump_str(b, "(debug_file)"), *slash = strrchr(df, '\\');
        CHECK(strcmp(nz(m->debug_file), slash ? slash + 1 : df) == 0, "module %zu debug file", k);
        CHECK(strcmp(nz(m->debug_id), mdump_str(b, "(debug_identifier)")) == 0, "module %zu id",
              k);
        CHECK(strcmp(nz(m->version), mdump_str(b, "(version)")) == 0, "module %zu version", k);
    }
}

static void check_memory_blocks(const struct mdump *d, size_t *i, const struct ana_crash *c)
{
    uint64_t n = mdump_num(next_block(d, i, "MinidumpMemoryList"), "region_count");
    for (uint64_t k = 0; k < n; k++) {
        const struct mdump_block *b = next_block(d, i, "MDMemoryDescriptor");
        uint64_t base = mdump_num(b, "start_of_memory_range");
        uint64_t size = mdump_num(b, "memory.data_size"), rva = mdump_num(b, "memory.rva");
        const struct ana_region *r = ana_mem_region(c, base);
        CHECK(r && r->base == base && r->size == size && r->data == c->bytes + rva,
              "region %" PRIu64 " at 0x%" PRIx64, k, base);
        check_hex(next_block(d, i, "Memory")->data, r->data, size);
    }
}

static void check_exception_block(const struct mdump *d, size_t *i, const struct ana_crash *c)
{
    const struct mdump_block *b = next_block(d, i, "MDException");
    const struct ana_crash_info *ci = &c->crash_info;
    CHECK(ci->crashing_tid == mdump_num(b, "thread_id"), "exception thread");
    CHECK(c->threads[ci->crashing_thread].tid == ci->crashing_tid, "crashing thread index");
    CHECK(ci->exception_code == mdump_num(b, "exception_record.exception_code") &&
              ci->exception_flags == mdump_num(b, "exception_record.exception_flags") &&
              ci->exception_address == mdump_num(b, "exception_record.exception_address"),
          "exception record");
    CHECK(ci->param_count == mdump_num(b, "exception_record.number_parameters"), "parameters");
    char key[64];
    for (uint32_t p = 0; p < ci->param_count; p++) {
        snprintf(key, sizeof key, "exception_record.exception_information[%2u]", (unsigned)p);
        CHECK(ci->params[p] == mdump_num(b, key), "parameter %u", (unsigned)p);
    }
    CHECK(ci->has_exception_ctx, "exception context");
    check_x86_context(next_block(d, i, "MDRawContextX86"), &ci->exception_ctx);
}

static void check_system_blocks(const struct mdump *d, size_t *i, const struct ana_crash *c)
{
    const struct mdump_block *b = next_block(d, i, "MDRawSystemInfo");
    const struct ana_system_info *s = &c->system_info;
    char want[256];
    CHECK(s->cpu == ANA_CPU_X86 && mdump_num(b, "processor_architecture") == 0, "arch");
    CHECK(s->cpu_count == mdump_num(b, "number_of_processors"), "cpus");
    CHECK(s->platform_id == mdump_num(b, "platform_id"), "platform");
    snprintf(want, sizeof want, "%" PRIu64 ".%" PRIu64 ".%" PRIu64 " ",
             mdump_num(b, "major_version"), mdump_num(b, "minor_version"),
             mdump_num(b, "build_number"));
    strncat(want, mdump_str(b, "(csd_version)"), sizeof want - strlen(want) - 1);
    CHECK(strcmp(s->os_ver, want) == 0, "os_ver '%s' vs '%s'", s->os_ver, want);
    uint64_t rev = mdump_num(b, "processor_revision"), level = mdump_num(b, "processor_level");
    char vendor[64]; /* mdump_str's buffer is reused by the next call */
    snprintf(vendor, sizeof vendor, "%s", mdump_str(b, "(cpu_vendor)"));
    snprintf(want, sizeof want, "%s family %" PRIu64 " model %" PRIu64 " stepping %" PRIu64,
             vendor, level, rev >> 8, rev & 0xff);
    CHECK(strcmp(s->cpu_info, want) == 0, "cpu_info '%s' vs '%s'", s->cpu_info, want);
    b = next_block(d, i, "MDRawMiscInfo");
    CHECK(c->pid == mdump_num(b, "process_id"), "pid");
    CHECK(c->process_create_time == mdump_num(b, "process_create_time"), "create time");
    b = next_block(d, i, "MDRawBreakpadInfo");
    CHECK(c->has_breakpad_info && c->breakpad_dump_tid == mdump_num(b, "dump_thread_id") &&
              c->breakpad_requesting_tid == mdump_num(b, "requesting_thread_id"),
          "breakpad info");
    for (size_t t = 0; t < c->thread_count; t++)
        CHECK(c->threads[t].dump_writer == (c->threads[t].tid == c->breakpad_dump_tid),
              "dump writer mark on thread %zu", t);
}

static void minidump2_raw_streams_match_minidump_dump(void **state)
{
    struct mdump d;
    mdump_load(th_corpus("breakpad/testdata/minidump2.dump.out"), &d);
    struct ana_crash *c = load_corpus("minidump2");
    size_t i = 0;
    const struct mdump_block *h = next_block(&d, &i, "MDRawHeader");
    CHECK(c->stream_count == mdump_num(h, "stream_count"), "stream count");
    CHECK(c->dump_time == mdump_num(h, "time_date_stamp") && c->mdmp_flags == mdump_num(h, "flags"),
          "header");
    for (size_t s = 0; s < c->stream_count; s++) {
        const struct mdump_block *b = next_block(&d, &i, "MDRawDirectory");
        CHECK(c->streams[s].type == mdump_num(b, "stream_type") &&
                  c->streams[s].size == mdump_num(b, "location.data_size") &&
                  c->streams[s].rva == mdump_num(b, "location.rva"),
              "directory entry %zu", s);
    }
    check_threads(&d, &i, c);
    check_module_blocks(&d, &i, c);
    check_memory_blocks(&d, &i, c);
    check_exception_block(&d, &i, c);
    check_system_blocks(&d, &i, c);
    CHECK(c->warning_count == 0, "warnings on a clean dump: %s", c->warnings[0]);
    ana_crash_free(c);
    mdump_free(&d);
}

/* ---- where Breakpad is wrong ---- */

/* Test-side reading of raw dump bytes, the oracle for the checks below. */
static uint32_t get32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

/* Offset of the directory entry of the first stream of type, or 0. */
static size_t dirent_of(const uint8_t *b, uint32_t type)
{
    uint32_t n = get32(b + 8), rva = get32(b + 12);
    for (uint32_t i = 0; i < n; i++)
        if (get32(b + rva + 12 * i) == type)
            return rva + 12 * i;
    return 0;
}

/* exec_av_on_stack.dmp: two MemoryList ranges overlap (256 bytes around the faulting pc lie
 * inside the stack range). Breakpad rejects the whole MemoryList and walks without stack
 * memory. Right: both ranges are snapshots of the same memory, so dropping the contained range
 * loses nothing; every byte of every range stays readable, including the faulting pc on the
 * stack, which is what makes an exec-on-stack crash analyzable. */
static void overlapping_memory_list_is_kept_region_by_region(void **state)
{
    size_t len;
    uint8_t *raw = th_read(th_corpus("breakpad/testdata/exec_av_on_stack.dmp"), &len);
    struct ana_crash *c = load_corpus("exec_av_on_stack");
    size_t de = dirent_of(raw, ANA_MD_MEMORY_LIST);
    const uint8_t *list = raw + get32(raw + de + 8);
    uint32_t n = get32(list);
    CHECK(n == 5, "%u ranges", n);
    bool overlap = false;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = list + 4 + 16 * i;
        uint64_t base = get64(e);
        uint32_t size = get32(e + 8), rva = get32(e + 12);
        uint8_t *got = malloc(size);
        CHECK(ana_mem_read(c, base, got, size), "range %u at 0x%" PRIx64 " unreadable", i, base);
        CHECK(memcmp(got, raw + rva, size) == 0, "range %u bytes differ", i);
        free(got);
        for (uint32_t j = 0; j < n; j++) {
            uint64_t b2 = get64(list + 4 + 16 * j), s2 = get32(list + 4 + 16 * j + 8);
            overlap |= j != i && base < b2 + s2 && b2 < base + size;
        }
    }
    CHECK(overlap, "the corpus dump no longer has overlapping ranges");
    CHECK(has_warning(c, "overlaps", NULL), "no overlap warning");
    CHECK(ana_mem_region(c, c->crash_info.address), "the faulting pc is not in memory");
    const struct ana_context *ctx = &c->crash_info.exception_ctx;
    uint32_t top;
    CHECK(ana_mem_u32(c, ctx->r[ANA_X86_ESP], &top), "the crashing stack is unreadable");
    ana_crash_free(c);
    free(raw);
}

/* A SIGABRT from raise()/abort() carries the sender in siginfo: Breakpad prints pid|uid<<32 as
 * the crash address. We report no address and the sender instead, and prove the field is a
 * sender: its pid is the process's own pid and its uid the process's uid, both from the dump's
 * /proc/PID/status copy (the process killed itself). */
static void sigabrt_address_is_the_sender(void **state)
{
    const char *names[] = { "linux_raise_sigabrt", "linux_overflow" };
    for (size_t i = 0; i < 2; i++) {
        struct ana_crash *c = load_corpus(names[i]);
        struct mdref *r = mdref_load(names[i]);
        const struct ana_crash_info *ci = &c->crash_info;
        CHECK(ci->signo == 6 && !ci->has_address && ci->has_sender, "%s", names[i]);
        CHECK(strtoull(r->address, NULL, 16) == ((uint64_t)ci->sender_uid << 32 | ci->sender_pid),
              "%s: Breakpad's address is not pid|uid", names[i]);
        const char *pid = strstr(nz(c->linux_status), "\nPid:");
        const char *uid = strstr(nz(c->linux_status), "\nUid:");
        CHECK(pid && uid, "%s: no Pid/Uid in the status stream", names[i]);
        CHECK(strtoul(pid + 5, NULL, 10) == ci->sender_pid, "%s: sender pid", names[i]);
        CHECK(strtoul(uid + 5, NULL, 10) == ci->sender_uid, "%s: sender uid", names[i]);
        CHECK(c->threads[ci->crashing_thread].tid == ci->sender_pid, "%s: self-sent", names[i]);
        free(r);
        ana_crash_free(c);
    }
}

/* write_av_non_canonical.dmp: a write through a non-canonical pointer. The CPU raises #GP,
 * which carries no address, so Windows records a READ at 0xffffffffffffffff. Breakpad's
 * minidump_stackwalk prints exactly that (its unit test expects 0xfefefefefefefefe, which only
 * its objdump-based disassembly fix-up recovers, off in the CLI). We report the record as
 * written, like the CLI; the true pointer is in a register of the faulting context, which the
 * unwinder's report shows. */
static void non_canonical_write_reports_the_record(void **state)
{
    struct ana_crash *c = load_corpus("write_av_non_canonical");
    const struct ana_crash_info *ci = &c->crash_info;
    CHECK(ci->param_count == 2 && ci->params[0] == 0 && ci->params[1] == UINT64_MAX,
          "record changed");
    CHECK(strcmp(ci->type, "EXCEPTION_ACCESS_VIOLATION_READ") == 0 && ci->address == UINT64_MAX,
          "%s 0x%" PRIx64, ci->type, ci->address);
    bool in_register = false;
    for (int r = 0; r < ANA_NREGS; r++)
        in_register |= ana_ctx_has(&ci->exception_ctx, r) &&
                       ci->exception_ctx.r[r] == 0xfefefefefefefefeull;
    CHECK(in_register, "the non-canonical pointer is in no register");
    ana_crash_free(c);
}

/* minidump_32bit_crash_addr.dmp: the upper half of ExceptionInformation[1] is garbage. */
static void crash_address_is_cut_to_32_bits(void **state)
{
    struct ana_crash *c = load_corpus("minidump_32bit_crash_addr");
    CHECK(c->crash_info.params[1] == 0xffffffff00000045ull, "record changed");
    CHECK(c->crash_info.address == 0x45, "address 0x%" PRIx64, c->crash_info.address);
    ana_crash_free(c);
}

/* ---- other streams, checked across independent streams of the same dump ---- */

static void crashpad_annotations(void **state)
{
    size_t len;
    uint8_t *raw = th_read(th_corpus("breakpad/testdata/minidump_crashpad_annotation.dmp"), &len);
    struct ana_crash *c = load_corpus("minidump_crashpad_annotation");
    size_t process = 0, first = 0;
    const char *mods[8];
    size_t nmods = 0;
    for (size_t i = 0; i < c->annotation_count; i++) {
        const struct ana_annotation *a = &c->annotations[i];
        process += a->module == NULL;
        if (a->module && (nmods == 0 || strcmp(mods[nmods - 1], a->module) != 0) && nmods < 8)
            mods[nmods++] = a->module;
        first += a->module && strcmp(a->module, mods[0]) == 0;
        /* string values are the dump's bytes (others are hex of them) */
        bool hex = strspn(a->value, "0123456789abcdef") == strlen(a->value);
        CHECK(hex || memmem(raw, len, a->value, strlen(a->value)), "annotation %s", a->key);
    }
    /* corpus README: simple annotations, and module annotations for 2 modules, the first with 5
     * annotation objects */
    CHECK(process > 0 && nmods == 2 && first == 5, "%zu process, %zu modules, %zu first", process,
          nmods, first);
    ana_crash_free(c);
    free(raw);
}

static void thread_names(void **state)
{
    struct ana_crash *c = load_corpus("thread_name_list");
    const char *want[] = { "main thread", "sleep thread", "overflow thread" };
    size_t named = 0;
    for (size_t i = 0; i < c->thread_count; i++)
        named += c->threads[i].name != NULL;
    CHECK(named == 3, "%zu named threads", named);
    for (size_t k = 0; k < 3; k++) {
        bool found = false;
        for (size_t i = 0; i < c->thread_count; i++)
            found |= c->threads[i].name && strcmp(c->threads[i].name, want[k]) == 0;
        CHECK(found, "no thread named %s", want[k]);
    }
    ana_crash_free(c);
}

/* The maps, auxv, cmdline and status streams agree with the ModuleList and the thread list. */
static void linux_streams_agree_with_modules(void **state)
{
    struct ana_crash *c = load_corpus("linux_null_read_av");
    CHECK(c->mapping_count > 0 && c->linux_maps && c->linux_cpuinfo && c->linux_environ,
          "linux streams missing");
    for (size_t i = 0; i < c->module_count; i++) {
        const struct ana_mapping *m = ana_mapping_at(c, c->modules[i].base);
        const char *base = ana_module_basename(&c->modules[i]);
        /* the kernel's vdso, which Breakpad names linux-gate.so, has no file */
        CHECK(m && m->name && (strstr(m->name, base) || strcmp(m->name, "[vdso]") == 0) &&
                  (m->prot & ANA_PROT_X),
              "module %s has no executable mapping", base);
    }
    uint64_t entry = 0, pagesz = 0;
    for (size_t i = 0; i < c->auxv_count; i++) {
        entry = c->auxv[2 * i] == 9 ? c->auxv[2 * i + 1] : entry;  /* AT_ENTRY */
        pagesz = c->auxv[2 * i] == 6 ? c->auxv[2 * i + 1] : pagesz; /* AT_PAGESZ */
    }
    CHECK(pagesz == 4096 && ana_module_at(c, entry) == c->main_module, "auxv");
    CHECK(strcmp(ana_module_basename(&c->modules[c->main_module]),
                 strrchr(c->process_name, '/') ? strrchr(c->process_name, '/') + 1
                                               : c->process_name) == 0,
          "argv[0] %s", c->process_name);
    CHECK(c->pid == c->threads[c->crash_info.crashing_thread].tid, "pid from status");
    ana_crash_free(c);
}

/* MemoryInfoList: the thread's pc lies in executable memory, its sp in writable memory. */
static void memory_info_list_protections(void **state)
{
    struct ana_crash *c = load_corpus("tiny-exe-with-cet-xsave");
    CHECK(c->mapping_count > 0 && c->unloaded_module_count > 0, "streams missing");
    const struct ana_context *ctx = &c->threads[0].ctx;
    const struct ana_mapping *pc = ana_mapping_at(c, ctx->r[ANA_AMD64_RIP]);
    const struct ana_mapping *sp = ana_mapping_at(c, ctx->r[ANA_AMD64_RSP]);
    CHECK(pc && (pc->prot & ANA_PROT_X) && sp && (sp->prot & ANA_PROT_W), "protections");
    CHECK(ana_module_at(c, ctx->r[ANA_AMD64_RIP]) >= 0, "pc outside modules");
    /* UnloadedModuleList: one entry, shcore.dll (read from the raw stream by hand) */
    const struct ana_module *u = &c->unloaded_modules[0];
    CHECK(c->unloaded_module_count == 1 && u->unloaded && u->base == 0x7ff90f450000ull &&
              u->size == 0xea000 && strcmp(ana_module_basename(u), "shcore.dll") == 0 &&
              strcmp(nz(u->code_id), "D40BC30Aea000") == 0,
          "unloaded module %s", u->path);
    ana_crash_free(c);
}

/* ARM contexts (no ARM minidump in the corpus): records laid out as Breakpad's
 * minidump_cpu_arm.h / minidump_cpu_arm64.h define them, each register holding its own number. */
static void arm_contexts(void **state)
{
    uint8_t b[912] = { 0 };
    struct ana_context ctx;
    const char *why = NULL;
    put32(b, 0x00400003u); /* MDRawContextARM64: ARM64 | CONTROL | INTEGER */
    put32(b + 4, 0x60000000u);
    for (int i = 0; i < 33; i++)
        put32(b + 8 + 8 * i, 0x1000u + (uint32_t)i), put32(b + 12 + 8 * i, 0xAB);
    CHECK(ana__mdmp_context(ANA_CPU_ARM64, cm_cur_make(b, 912), &ctx, &why), "arm64: %s", why);
    CHECK(ctx.r[ANA_ARM64_PC] == 0xAB00001020ull && ctx.r[ANA_ARM64_SP] == 0xAB0000101Full &&
              ctx.r[ANA_ARM64_FP] == 0xAB0000101Dull && ctx.r[0] == 0xAB00001000ull &&
              ctx.r[ANA_ARM64_CPSR] == 0x60000000u,
          "arm64 registers");
    put32(b, 0x00400001u); /* CONTROL only: x0..x28 unknown */
    CHECK(ana__mdmp_context(ANA_CPU_ARM64, cm_cur_make(b, 912), &ctx, &why) &&
              !ana_ctx_has(&ctx, 0) && ana_ctx_has(&ctx, ANA_ARM64_PC),
          "arm64 flags");
    memset(b, 0, sizeof b); /* MDRawContextARM64_Old: u64 flags, iregs, cpsr at 272 */
    put32(b, 0x80000002u);
    for (int i = 0; i < 33; i++)
        put32(b + 8 + 8 * i, 0x2000u + (uint32_t)i);
    put32(b + 272, 0x20000000u);
    CHECK(ana__mdmp_context(ANA_CPU_ARM64, cm_cur_make(b, 796), &ctx, &why), "old: %s", why);
    CHECK(ctx.r[ANA_ARM64_PC] == 0x2020 && ctx.r[ANA_ARM64_LR] == 0x201E &&
              ctx.r[ANA_ARM64_CPSR] == 0x20000000u,
          "arm64 old registers");
    memset(b, 0, sizeof b); /* MDRawContextARM: flags, r0..r15, cpsr */
    put32(b, 0x40000002u);
    for (int i = 0; i < 16; i++)
        put32(b + 4 + 4 * i, 0x3000u + (uint32_t)i);
    put32(b + 68, 0x10u);
    CHECK(ana__mdmp_context(ANA_CPU_ARM, cm_cur_make(b, 368), &ctx, &why), "arm: %s", why);
    CHECK(ctx.r[ANA_ARM_PC] == 0x300F && ctx.r[ANA_ARM_SP] == 0x300D && ctx.r[ANA_ARM_CPSR] == 0x10,
          "arm registers");
    CHECK(!ana__mdmp_context(ANA_CPU_ARM, cm_cur_make(b, 367), &ctx, &why), "short arm context");
    put32(b, 0x00010003u); /* an x86 record where ARM is expected */
    CHECK(!ana__mdmp_context(ANA_CPU_ARM, cm_cur_make(b, 368), &ctx, &why), "wrong cpu");
}

/* ---- crash reasons by table ---- */

/* Names from Breakpad's GetCrashReason and the winnt.h / mach headers it follows. */
static const struct {
    uint32_t code, flags, nparams;
    uint64_t p0, p2;
    const char *want;
} win_cases[] = {
    { 0xC0000005u, 0, 2, 8, 0, "EXCEPTION_ACCESS_VIOLATION_EXEC" },
    { 0xC0000005u, 0, 2, 3, 0, "EXCEPTION_ACCESS_VIOLATION" },
    { 0xC0000005u, 0, 0, 0, 0, "EXCEPTION_ACCESS_VIOLATION" },
    { 0xC0000006u, 0, 3, 0, 0xC000009Cu,
      "EXCEPTION_IN_PAGE_ERROR_READ / STATUS_DEVICE_DATA_ERROR" },
    { 0xC000000Du, 0, 0, 0, 0, "STATUS_INVALID_PARAMETER" },
    { 0xC0000094u, 0, 0, 0, 0, "EXCEPTION_INT_DIVIDE_BY_ZERO" },
    { 0xC00000FDu, 0, 0, 0, 0, "EXCEPTION_STACK_OVERFLOW" },
    { 0x80000003u, 0, 0, 0, 0, "EXCEPTION_BREAKPOINT" },
    { 0xE06D7363u, 1, 0, 0, 0, "Unhandled C++ Exception" },
    { 0x12345678u, 1, 0, 0, 0, "0x12345678 / 0x00000001" },
    { 0xC0000409u, 1, 1, 7, 0, "FAST_FAIL_FATAL_APP_EXIT" },
    { 0xC0000409u, 1, 1, 70, 0, "FAST_FAIL_INVALID_FLS_DATA" },
    { 0xC0000409u, 1, 1, 0, 0, "EXCEPTION_STACK_BUFFER_OVERRUN" },
    { 0xC0000409u, 1, 1, 16, 0, "EXCEPTION_STACK_BUFFER_OVERRUN" },
};

static const struct {
    uint32_t code, flags;
    uint16_t arch;
    const char *want;
} mac_cases[] = {
    { 1, 1, ANA_MD_ARCH_AMD64, "EXC_BAD_ACCESS / KERN_INVALID_ADDRESS" },
    { 2, 1, ANA_MD_ARCH_AMD64, "EXC_BAD_INSTRUCTION / EXC_I386_INVOP" },
    { 1, 0x101, ANA_MD_ARCH_ARM64, "EXC_BAD_ACCESS / EXC_ARM_DA_ALIGN" },
    { 1, 0x101, ANA_MD_ARCH_AMD64, "EXC_BAD_ACCESS / 0x00000101" },
    { 10, 0x0c000000u, ANA_MD_ARCH_ARM64, "EXC_CRASH / 0x0c000000" },
    { 5, 0xDEADC0DEu, ANA_MD_ARCH_ARM64, "EXC_SOFTWARE / UNCAUGHT_NS_EXCEPTION" },
    { 0x43506E78u, 0, ANA_MD_ARCH_AMD64, "Uncaught NSException" },
    { 99, 2, ANA_MD_ARCH_AMD64, "0x00000063 / 0x00000002" },
};

static void windows_and_mac_reason_names(void **state)
{
    struct ana_crash *c = load_corpus("minidump2"); /* an arena for the strings */
    for (size_t i = 0; i < sizeof win_cases / sizeof *win_cases; i++) {
        uint64_t p[3] = { win_cases[i].p0, 0x1000, win_cases[i].p2 };
        const char *got = ana__reason_windows(c, win_cases[i].code, win_cases[i].flags,
                                              win_cases[i].nparams, p);
        CHECK(strcmp(got, win_cases[i].want) == 0, "0x%08x: %s", (unsigned)win_cases[i].code,
              got);
    }
    for (size_t i = 0; i < sizeof mac_cases / sizeof *mac_cases; i++) {
        const char *got =
            ana__reason_mac(c, mac_cases[i].code, mac_cases[i].flags, mac_cases[i].arch);
        CHECK(strcmp(got, mac_cases[i].want) == 0, "mac %u: %s", (unsigned)mac_cases[i].code,
              got);
    }
    /* the table's ends and a middle entry, so a mis-sorted table fails its binary search */
    CHECK(strcmp(nz(ana__ntstatus_name(0xC0000001u)), "STATUS_UNSUCCESSFUL") == 0, "first");
    CHECK(strcmp(nz(ana__ntstatus_name(0xC0000420u)), "STATUS_ASSERTION_FAILURE") == 0, "middle");
    CHECK(ana__ntstatus_name(0xC0000000u) == NULL && ana__ntstatus_name(0x80000003u) == NULL,
          "none");
    ana_crash_free(c);
}

/* ---- hostile variants of corpus bytes (RELIABILITY.md) ---- */

struct dump {
    uint8_t *p;
    size_t n;
};

static struct dump corpus_copy(const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "breakpad/testdata/%s.dmp", name);
    struct dump d;
    d.p = th_read(th_corpus(rel), &d.n);
    return d;
}

/* M01-M04, M18: the header and directory are the only things that fail a dump. */
static void unreadable_headers_fail(void **state)
{
    struct dump d = corpus_copy("minidump2");
    struct cm_err err = { 0 };
    uint8_t small[35];
    memcpy(small, d.p, 32);
    memset(small + 32, 0, 3);
    put32(small + 8, 0xFFFFFFFFu); /* M03: NumberOfStreams in a 35-byte file */
    load_bytes(small, sizeof small, NULL, CM_E_CORRUPT, &err);
    CHECK(strstr(err.msg, "directory"), "%s", err.msg);
    put32(small + 8, 0); /* M02 */
    load_bytes(small, sizeof small, NULL, CM_E_CORRUPT, &err);
    load_bytes(d.p, 20, NULL, CM_E_TRUNCATED, &err); /* header cut short */
    uint8_t *p = malloc(d.n);
    memcpy(p, d.p, d.n);
    put32(p + 12, (uint32_t)d.n - 4); /* M04: directory straddling the end */
    load_bytes(p, d.n, NULL, CM_E_CORRUPT, &err);
    memcpy(p, d.p, d.n);
    memcpy(p, "PMDM", 4); /* M18: big-endian */
    load_bytes(p, d.n, NULL, CM_E_UNSUPPORTED, &err);
    memcpy(p, d.p, d.n);
    put32(p + 4, 0x93A72851u); /* MDMP magic with a byte-swapped Version: mixed endianness */
    load_bytes(p, d.n, NULL, CM_E_CORRUPT, &err);
    CHECK(strstr(err.msg, "endianness"), "%s", err.msg);
    struct ana_limits lim;
    ana_limits_default(&lim);
    lim.max_dump_bytes = d.n - 1; /* over the size cap */
    memcpy(p, d.p, d.n);
    load_bytes(p, d.n, &lim, CM_E_LIMIT, &err);
    free(p);
    free(d.p);
}

/* M05, M07, M12, M14: damage in one stream costs that stream's data, nothing else. */
static void damaged_streams_degrade(void **state)
{
    struct dump d = corpus_copy("minidump2");
    struct cm_err err = { 0 };
    uint8_t *p = malloc(d.n);
    size_t threads = dirent_of(d.p, ANA_MD_THREAD_LIST);

    memcpy(p, d.p, d.n); /* M05: stream Rva 0xFFFFFFF0, DataSize 0x20 */
    put32(p + threads + 4, 0x20);
    put32(p + threads + 8, 0xFFFFFFF0u);
    struct ana_crash *c = load_bytes(p, d.n, NULL, CM_E_OK, &err);
    CHECK(c->thread_count == 0 && c->module_count == 13 && has_warning(c, "ThreadList", "outside"),
          "M05");
    CHECK(c->crash_info.crashing_thread == -1 && c->crash_info.crashing_tid == 0xbf4, "M05 tid");
    ana_crash_free(c);

    memcpy(p, d.p, d.n); /* a zero-sized ThreadList */
    put32(p + threads + 4, 0);
    c = load_bytes(p, d.n, NULL, CM_E_OK, &err);
    CHECK(c->thread_count == 0 && has_warning(c, "ThreadList", "empty"), "empty stream");
    ana_crash_free(c);

    memcpy(p, d.p, d.n); /* M07: NumberOfThreads 0x7FFFFFFF in a 4-byte stream */
    put32(p + threads + 4, 4);
    put32(p + get32(p + threads + 8), 0x7FFFFFFFu);
    c = load_bytes(p, d.n, NULL, CM_E_OK, &err);
    CHECK(c->thread_count == 0 && has_warning(c, "2147483647 threads", "exceed"), "M07");
    ana_crash_free(c);

    memcpy(p, d.p, d.n); /* M12: MINIDUMP_STRING.Length 0xFFFFFFFF for module 0's name */
    size_t mods = get32(p + dirent_of(p, ANA_MD_MODULE_LIST) + 8);
    put32(p + get32(p + mods + 4 + 20), 0xFFFFFFFFu);
    c = load_bytes(p, d.n, NULL, CM_E_OK, &err);
    CHECK(c->module_count == 13 && strcmp(c->modules[0].path, "<invalid>") == 0 &&
              strcmp(c->modules[1].path, "C:\\WINDOWS\\system32\\ntdll.dll") == 0,
          "M12");
    ana_crash_free(c);

    memcpy(p, d.p, d.n); /* M14: the exception names a thread id absent from the ThreadList */
    put32(p + get32(p + dirent_of(p, ANA_MD_EXCEPTION) + 8), 0xDEADu);
    c = load_bytes(p, d.n, NULL, CM_E_OK, &err);
    CHECK(c->crash_info.crashed && c->crash_info.crashing_thread == -1 &&
              c->crash_info.crashing_tid == 0xDEAD && has_warning(c, "0xdead", NULL),
          "M14");
    ana_crash_free(c);
    free(p);
    free(d.p);
}

/* M13: lists over their caps are cut with a warning, and the dump still loads. */
static void lists_over_caps_are_cut(void **state)
{
    struct dump d = corpus_copy("minidump2");
    struct cm_err err = { 0 };
    struct ana_limits lim;
    ana_limits_default(&lim);
    lim.max_modules = 5;
    lim.max_threads = 1;
    lim.max_regions = 2;
    lim.max_streams = 4;
    struct ana_crash *c = load_bytes(d.p, d.n, &lim, CM_E_OK, &err);
    CHECK(c->module_count == 5 && c->thread_count == 1 && c->region_count <= 2 &&
              c->stream_count == 4,
          "caps");
    CHECK(has_warning(c, "13 modules", "limit") && has_warning(c, "9 streams", "limit"),
          "cap warnings");
    ana_crash_free(c);
    free(d.p);
}

/* M08, M11, M17: duplicate streams (first wins, every run alike), a context of the wrong cpu,
 * and an unknown architecture. */
static void duplicates_and_wrong_cpus(void **state)
{
    struct dump d = corpus_copy("minidump2");
    struct cm_err err = { 0 };
    uint8_t *p = malloc(d.n);
    memcpy(p, d.p, d.n);
    size_t unused = dirent_of(p, ANA_MD_UNUSED), threads = dirent_of(p, ANA_MD_THREAD_LIST);
    memcpy(p + unused, p + threads, 12);
    put32(p + unused + 8, get32(p + threads + 8) + 4); /* a later, different ThreadList */
    for (int run = 0; run < 2; run++) {
        struct ana_crash *c = load_bytes(p, d.n, NULL, CM_E_OK, &err);
        CHECK(c->thread_count == 2 && c->threads[0].tid == 0xbf4 &&
                  has_warning(c, "duplicates", NULL),
              "M08 run %d", run);
        ana_crash_free(c);
    }
    memcpy(p, d.p, d.n);
    size_t si = get32(p + dirent_of(p, ANA_MD_SYSTEM_INFO) + 8);
    p[si] = ANA_MD_ARCH_AMD64; /* M11: x86 contexts under an amd64 SystemInfo */
    struct ana_crash *c = load_bytes(p, d.n, NULL, CM_E_OK, &err);
    CHECK(c->thread_count == 2 && c->threads[0].bad_context && c->threads[1].bad_context &&
              !c->crash_info.has_exception_ctx && has_warning(c, "context", NULL),
          "M11");
    ana_crash_free(c);
    p[si] = ANA_MD_ARCH_ARM; /* an ARM SystemInfo: Krait (MIDR 0x510f06f0), swp and neon */
    put32(p + si + 32, 0x510f06f0u);
    put32(p + si + 36, 0x1001u);
    c = load_bytes(p, d.n, NULL, CM_E_OK, &err);
    CHECK(strcmp(nz(c->system_info.cpu_info), "ARMv6 Qualcomm Krait features: swp,neon") == 0 &&
              c->threads[0].bad_context,
          "arm cpu_info '%s'", nz(c->system_info.cpu_info));
    ana_crash_free(c);
    p[si] = 0xFF, p[si + 1] = 0xFF; /* M17: ProcessorArchitecture 0xFFFF */
    c = load_bytes(p, d.n, NULL, CM_E_OK, &err);
    CHECK(c->module_count == 13 && c->threads[0].bad_context &&
              c->system_info.cpu == ANA_CPU_UNKNOWN,
          "M17");
    ana_crash_free(c);
    free(p);
    free(d.p);
}

/* M09: a MemoryList range wrapping 2^64 and one duplicated are dropped one by one. */
static void bad_memory_ranges_are_dropped_one_by_one(void **state)
{
    struct dump d = corpus_copy("minidump2");
    struct cm_err err = { 0 };
    size_t list = get32(d.p + dirent_of(d.p, ANA_MD_MEMORY_LIST) + 8);
    put32(d.p + list + 4, 0xFFFFFF80u); /* range 0: base 0xFFFFFFFFFFFFFF80, 0x100 bytes */
    put32(d.p + list + 8, 0xFFFFFFFFu);
    struct ana_crash *c = load_bytes(d.p, d.n, NULL, CM_E_OK, &err);
    CHECK(has_warning(c, "wraps", NULL) && c->region_count == 2, "M09: %zu regions",
          c->region_count);
    CHECK(ana_mem_region(c, 0x12f31c) && ana_mem_region(c, 0x97f6e8), "stacks kept");
    ana_crash_free(c);
    free(d.p);
}

/* M06: every truncation of a dump loads or fails with a message; nothing crashes (the sanitizer
 * build proves no out-of-bounds read). */
static void truncations_and_flips_never_crash(void **state)
{
    struct dump d = corpus_copy("minidump_crashpad_annotation");
    for (size_t cut = 0; cut < d.n; cut += cut < 4096 ? 61 : 4093) {
        struct ana_crash *c = NULL;
        struct cm_err err = { 0 };
        enum cm_code rc = ana_load(d.p, cut, NULL, &c, &err);
        CHECK(rc == CM_E_OK ? c != NULL : c == NULL && err.msg[0], "cut at %zu", cut);
        ana_crash_free(c);
    }
    uint8_t *p = malloc(d.n);
    for (size_t i = 0; i < 0x600 && i < d.n; i++) {
        memcpy(p, d.p, d.n);
        p[i] ^= 0xA5;
        struct ana_crash *c = NULL;
        struct cm_err err = { 0 };
        enum cm_code rc = ana_load(p, d.n, NULL, &c, &err);
        CHECK(rc == CM_E_OK || (c == NULL && err.msg[0]), "flip at %zu", i);
        ana_crash_free(c);
    }
    free(p);
    free(d.p);
}

/* ---- a dump built here: Memory64List, a PDB20 CodeView record, an assertion ---- */

struct out {
    uint8_t b[4096];
    size_t n;
};
static void o32(struct out *o, uint32_t v) { put32(o->b + o->n, v), o->n += 4; }
static void o64(struct out *o, uint64_t v) { o32(o, (uint32_t)v), o32(o, (uint32_t)(v >> 32)); }

/* Breakpad's AssertionInfo stream: 128 UTF-16 units each of expression, function, file. */
static void assertion_at(struct out *o, size_t at)
{
    const char *text[3] = { "x != 0", "f", "a.c" };
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; text[k][i]; i++)
            o->b[at + 256 * k + 2 * i] = (uint8_t)text[k][i];
    put32(o->b + at + 768, 12); /* line */
    put32(o->b + at + 772, 1);  /* type: invalid parameter */
}

static void memory64_pdb20_assertion(void **state)
{
    struct out o = { .n = 0 };
    o32(&o, 0x504D444Du), o32(&o, 0xA793), o32(&o, 4), o32(&o, 32), o32(&o, 0), o32(&o, 0);
    o64(&o, 0); /* header; a directory of 4 at 32; streams from 80 */
    o32(&o, ANA_MD_SYSTEM_INFO), o32(&o, 56), o32(&o, 80);
    o32(&o, ANA_MD_MEMORY64_LIST), o32(&o, 48), o32(&o, 136);
    o32(&o, ANA_MD_MODULE_LIST), o32(&o, 112), o32(&o, 184);
    o32(&o, ANA_MD_ASSERTION_INFO), o32(&o, 776), o32(&o, 400);
    /* SystemInfo at 80: amd64, level 6, Windows NT 6.1.2 */
    o32(&o, 0x00060009u), o32(&o, 0), o32(&o, 6), o32(&o, 1), o32(&o, 2), o32(&o, 2);
    o32(&o, 0), o32(&o, 0), o32(&o, 0), o32(&o, 0), o32(&o, 0), o32(&o, 0), o32(&o, 0), o32(&o, 0);
    /* Memory64List at 136: 2 ranges, data at 1200; the second runs past the end of the file */
    o64(&o, 2), o64(&o, 1200), o64(&o, 0x10000), o64(&o, 16), o64(&o, 0x20000), o64(&o, 64);
    /* ModuleList at 184: one module, name at 300, CodeView NB10 record at 340 */
    o32(&o, 1), o64(&o, 0x400000), o32(&o, 0x1000), o32(&o, 0), o32(&o, 0x12345678), o32(&o, 300);
    for (int i = 0; i < 13; i++)
        o32(&o, 0);
    o32(&o, 24), o32(&o, 340), o32(&o, 0), o32(&o, 0), o64(&o, 0), o64(&o, 0);
    o.n = 300; /* MINIDUMP_STRING "a.exe" */
    o32(&o, 10);
    memcpy(o.b + o.n, "a\0.\0e\0x\0e\0", 10), o.n += 10;
    o.n = 340;
    o32(&o, 0x3031424Eu), o32(&o, 0), o32(&o, 0xABCDEF01u), o32(&o, 0x1b);
    memcpy(o.b + o.n, "a.pdb\0\0", 8), o.n += 8;
    assertion_at(&o, 400);
    o.n = 1200;
    for (int i = 0; i < 40; i++)
        o.b[o.n++] = (uint8_t)i;
    struct cm_err err = { 0 };
    struct ana_crash *c = load_bytes(o.b, o.n, NULL, CM_E_OK, &err);
    CHECK(c->region_count == 2 && c->regions[0].size == 16 && c->regions[1].size == 24,
          "memory64: %zu regions", c->region_count);
    uint8_t b;
    CHECK(ana_mem_read(c, 0x20000, &b, 1) && b == 16 && has_warning(c, "Memory64List", "cut"),
          "memory64 data");
    CHECK(c->module_count == 1 && strcmp(c->modules[0].debug_id, "ABCDEF011b") == 0 &&
              strcmp(c->modules[0].debug_file, "a.pdb") == 0 &&
              strcmp(c->modules[0].code_id, "123456781000") == 0,
          "pdb20: %s %s", nz(c->modules[0].debug_id), nz(c->modules[0].code_id));
    CHECK(strcmp(c->system_info.os, "Windows NT") == 0 && c->system_info.cpu == ANA_CPU_AMD64 &&
              strcmp(c->system_info.os_ver, "6.1.2") == 0,
          "system");
    /* Breakpad's wording (MinidumpProcessor::GetAssertion) */
    CHECK(strcmp(nz(c->crash_info.assertion),
                 "Invalid parameter passed to library function x != 0 in function f, in file "
                 "a.c at line 12") == 0,
          "assertion '%s'", nz(c->crash_info.assertion));
    CHECK(!c->crash_info.crashed && c->crash_info.type == NULL, "no exception, no crash");
    ana_crash_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_corpus_minidump_agrees_with_breakpad),
        cmocka_unit_test(microdumps_are_not_minidumps),
        cmocka_unit_test(minidump2_raw_streams_match_minidump_dump),
        cmocka_unit_test(overlapping_memory_list_is_kept_region_by_region),
        cmocka_unit_test(sigabrt_address_is_the_sender),
        cmocka_unit_test(non_canonical_write_reports_the_record),
        cmocka_unit_test(crash_address_is_cut_to_32_bits),
        cmocka_unit_test(crashpad_annotations),
        cmocka_unit_test(thread_names),
        cmocka_unit_test(linux_streams_agree_with_modules),
        cmocka_unit_test(memory_info_list_protections),
        cmocka_unit_test(arm_contexts),
        cmocka_unit_test(windows_and_mac_reason_names),
        cmocka_unit_test(unreadable_headers_fail),
        cmocka_unit_test(damaged_streams_degrade),
        cmocka_unit_test(lists_over_caps_are_cut),
        cmocka_unit_test(duplicates_and_wrong_cpus),
        cmocka_unit_test(bad_memory_ranges_are_dropped_one_by_one),
        cmocka_unit_test(truncations_and_flips_never_crash),
        cmocka_unit_test(memory64_pdb20_assertion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
