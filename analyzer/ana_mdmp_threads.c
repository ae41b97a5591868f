/* ana_mdmp_threads.c -- the MDMP ThreadList (thread ids, register contexts, stacks as memory
 * regions, the Breakpad dump-writing thread marked) and the ThreadNameList (names by thread id).
 *
 * Formats: minidumpapiset.h "MINIDUMP_THREAD_LIST", "MINIDUMP_THREAD",
 * "MINIDUMP_THREAD_NAME_LIST", "MINIDUMP_THREAD_NAME"; contexts in ana_mdmp_context.c. */
#include "analyzer/ana_int.h"

#define MD_THREAD_BYTES 48
#define MD_THREAD_NAME_BYTES 12

struct raw_thread {
    uint32_t tid, suspend, priority_class, priority;
    uint64_t teb, stack_start;
    uint32_t stack_size, stack_rva, ctx_size, ctx_rva;
};

static void read_raw(struct cm_cur *e, struct raw_thread *t)
{
    cm_cur_u32le(e, &t->tid);            /* MINIDUMP_THREAD.ThreadId */
    cm_cur_u32le(e, &t->suspend);        /* .SuspendCount */
    cm_cur_u32le(e, &t->priority_class); /* .PriorityClass */
    cm_cur_u32le(e, &t->priority);       /* .Priority */
    cm_cur_u64le(e, &t->teb);            /* .Teb */
    cm_cur_u64le(e, &t->stack_start);    /* .Stack.StartOfMemoryRange */
    cm_cur_u32le(e, &t->stack_size);     /* .Stack.Memory.DataSize */
    cm_cur_u32le(e, &t->stack_rva);      /* .Stack.Memory.Rva */
    cm_cur_u32le(e, &t->ctx_size);       /* .ThreadContext.DataSize */
    cm_cur_u32le(e, &t->ctx_rva);        /* .ThreadContext.Rva */
}

/* Reads the context of thread i; a context that cannot be read marks the thread bad_context. */
static void read_context(struct ana_mdmp *m, uint32_t i, const struct raw_thread *r,
                         struct ana_thread *t)
{
    struct ana_crash *c = m->c;
    enum ana_cpu cpu = c->system_info.cpu;
    struct cm_cur ctx;
    const char *why = NULL;
    t->bad_context = true;
    if (m->has_system_info && cpu == ANA_CPU_UNKNOWN)
        return; /* the SystemInfo warning already says contexts are not read */
    if (!cm_cur_window(&m->file, r->ctx_rva, r->ctx_size, &ctx)) { /* .ThreadContext */
        ana__warn(c, "minidump: ThreadList: thread %u (id 0x%x): context at 0x%x of %u bytes "
                     "lies outside the file",
                  (unsigned)i, (unsigned)r->tid, (unsigned)r->ctx_rva, (unsigned)r->ctx_size);
        return;
    }
    if (!ana__mdmp_context(cpu, ctx, &t->ctx, &why)) {
        ana__warn(c, "minidump: ThreadList: thread %u (id 0x%x): context at 0x%x of %u bytes "
                     "does not hold a %s context: %s",
                  (unsigned)i, (unsigned)r->tid, (unsigned)r->ctx_rva, (unsigned)r->ctx_size,
                  ana_cpu_name(cpu), why);
        return;
    }
    t->has_ctx = true;
    t->bad_context = false;
    if (cpu == ANA_CPU_UNKNOWN) { /* no SystemInfo: the context itself says which cpu */
        c->system_info.cpu = t->ctx.cpu;
        c->system_info.cpu_arch = ana_cpu_name(t->ctx.cpu);
        ana__warn(c, "minidump: cpu taken as %s from the context of thread %u",
                  ana_cpu_name(t->ctx.cpu), (unsigned)i);
    }
}

enum cm_code ana__mdmp_thread_list(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                   struct cm_err *err)
{
    struct ana_crash *c = m->c;
    uint32_t n;
    struct cm_cur e;
    /* MINIDUMP_THREAD_LIST.NumberOfThreads x sizeof(MINIDUMP_THREAD) within the stream */
    if (!ana__mdmp_list(m, s, MD_THREAD_BYTES, c->limits.max_threads, "threads", &n, &e))
        return CM_E_OK;
    c->threads = ana__calloc(c, n ? n : 1, sizeof *c->threads);
    if (!c->threads)
        return cm_fail(err, CM_E_NOMEM, "minidump: cannot allocate %u threads", (unsigned)n);
    for (uint32_t i = 0; i < n; i++) {
        struct raw_thread r;
        struct ana_thread *t = &c->threads[i];
        read_raw(&e, &r);
        t->tid = r.tid;
        t->stack_base = r.stack_start;
        t->stack_size = r.stack_size;
        t->dump_writer = (m->breakpad_validity & ANA_MD_BREAKPAD_DUMP_THREAD_VALID) &&
                         c->has_breakpad_info && r.tid == c->breakpad_dump_tid;
        read_context(m, i, &r, t);
        if (!ana__mdmp_add_region(m, r.stack_start, r.stack_size, r.stack_rva,
                                  "ThreadList thread stack"))
            return cm_fail(err, CM_E_NOMEM, "minidump: out of memory adding thread stacks");
    }
    c->thread_count = n;
    return CM_E_OK;
}

static struct ana_thread *thread_by_id(struct ana_crash *c, uint32_t tid)
{
    for (size_t i = 0; i < c->thread_count; i++)
        if (c->threads[i].tid == tid)
            return &c->threads[i];
    return NULL;
}

enum cm_code ana__mdmp_thread_names(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                    struct cm_err *err)
{
    struct ana_crash *c = m->c;
    uint32_t n;
    struct cm_cur e;
    /* MINIDUMP_THREAD_NAME_LIST.NumberOfThreadNames x sizeof(MINIDUMP_THREAD_NAME) */
    if (!ana__mdmp_list(m, s, MD_THREAD_NAME_BYTES, c->limits.max_threads, "thread names", &n,
                        &e))
        return CM_E_OK;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t tid;
        uint64_t rva;
        cm_cur_u32le(&e, &tid); /* MINIDUMP_THREAD_NAME.ThreadId */
        cm_cur_u64le(&e, &rva); /* .RvaOfThreadName (a 64-bit RVA) */
        struct ana_thread *t = thread_by_id(c, tid);
        if (!t) {
            ana__warn(c, "minidump: ThreadNameList: name %u is for thread id 0x%x, which the "
                         "ThreadList does not hold",
                      (unsigned)i, (unsigned)tid);
            continue;
        }
        if (t->name)
            continue; /* the first name of a thread wins */
        const char *name = ana__mdmp_string(m, rva, "ThreadNameList name");
        t->name = name && *name ? name : NULL; /* an empty name names nothing */
    }
    return CM_E_OK;
}
