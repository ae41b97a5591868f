/* ana_mdmp_exception.c -- the MDMP Exception stream (the crashing thread, the exception record
 * and its context) named as Breakpad's minidump_stackwalk names crashes, and Breakpad's assertion
 * stream.
 *
 * The crash address follows Breakpad: ExceptionAddress, except for a Windows access violation
 * or in-page error, where ExceptionInformation[1] holds the data address; truncated to 32 bits
 * on 32-bit cpus (a 32-bit process can hold garbage in the upper half, see
 * minidump_32bit_crash_addr.dmp).
 *
 * Linux and Android dumps store the signal in ExceptionCode, si_code in ExceptionFlags and
 * siginfo's address field in ExceptionAddress. The type is always "SIGNAL /CODE". For si_code
 * <= 0 (kill, tgkill, raise: SI_USER, SI_TKILL, ...) or SI_KERNEL the kernel fills that field
 * with the sender's pid (low 32 bits) and uid (high 32 bits, on 64-bit cpus), not with an
 * address: we report no crash address and record the sender instead (Breakpad prints the pid and
 * uid as the "crash address"). One exception: the fault signals SIGSEGV, SIGBUS, SIGFPE, SIGILL
 * and SIGTRAP with si_code 0 keep the address, because Breakpad's Linux client did not record
 * si_code until 2016 and wrote 0 for every real fault (all of the corpus's linux_*.dmp); a
 * genuine kill(pid, SIGSEGV) reported by a current client is then misread as a fault at
 * pid|uid<<32, which we accept as the rarer case.
 *
 * Formats: minidumpapiset.h "MINIDUMP_EXCEPTION_STREAM", "MINIDUMP_EXCEPTION"; Breakpad
 * minidump_format.h "MDRawAssertionInfo"; siginfo layout from <asm-generic/siginfo.h>. */
#include <stdio.h>

#include "analyzer/ana_int.h"

#define MD_EXCEPTION_STREAM_BYTES 168
#define MD_EXCEPTION_MAX_PARAMS 15
#define MD_ASSERTION_BYTES 776
#define WIN_ACCESS_VIOLATION 0xC0000005u
#define WIN_IN_PAGE_ERROR 0xC0000006u

struct raw_exception {
    uint32_t tid, code, flags, nparams, ctx_size, ctx_rva;
    uint64_t nested, address, params[MD_EXCEPTION_MAX_PARAMS];
};

static bool read_raw(const struct ana_mdmp_stream *s, struct raw_exception *x)
{
    struct cm_cur cur = s->cur;
    uint32_t pad;
    cm_cur_u32le(&cur, &x->tid);     /* MINIDUMP_EXCEPTION_STREAM.ThreadId */
    cm_cur_u32le(&cur, &pad);        /* .__alignment */
    cm_cur_u32le(&cur, &x->code);    /* .ExceptionRecord.ExceptionCode */
    cm_cur_u32le(&cur, &x->flags);   /* .ExceptionRecord.ExceptionFlags */
    cm_cur_u64le(&cur, &x->nested);  /* .ExceptionRecord.ExceptionRecord */
    cm_cur_u64le(&cur, &x->address); /* .ExceptionRecord.ExceptionAddress */
    cm_cur_u32le(&cur, &x->nparams); /* .ExceptionRecord.NumberParameters */
    cm_cur_u32le(&cur, &pad);        /* .ExceptionRecord.__unusedAlignment */
    for (int i = 0; i < MD_EXCEPTION_MAX_PARAMS; i++)
        cm_cur_u64le(&cur, &x->params[i]); /* .ExceptionRecord.ExceptionInformation[i] */
    cm_cur_u32le(&cur, &x->ctx_size); /* .ThreadContext.DataSize */
    cm_cur_u32le(&cur, &x->ctx_rva);  /* .ThreadContext.Rva */
    return !cur.failed;
}

static bool is_fault_signal(int signo)
{
    return signo == 4 || signo == 5 || signo == 7 || signo == 8 || signo == 11;
}

static void name_linux(struct ana_crash *c, const struct raw_exception *x)
{
    struct ana_crash_info *ci = &c->crash_info;
    ci->has_signal = true;
    ci->signo = (int)x->code;
    ci->si_code = (int)x->flags;
    ci->type = ana__linux_reason(c, ci->signo, ci->si_code);
    bool sender = ana__linux_code_is_sender(ci->si_code);
    bool fault = is_fault_signal(ci->signo);
    if ((fault && (!sender || ci->si_code == 0)) || (ci->signo == 31 && !sender)) {
        ci->has_address = true; /* si_addr, or SIGSYS's si_call_addr */
        ci->address = x->address;
    } else if (sender) {
        ci->has_sender = true;
        ci->sender_pid = (uint32_t)x->address;         /* siginfo si_pid */
        ci->sender_uid = (uint32_t)(x->address >> 32); /* siginfo si_uid (64-bit cpus) */
    } /* else: SIGCHLD, SIGPOLL... carry no address */
}

/* Breakpad's fallback for a code it cannot name: "0x%08x / 0x%08x" (code / flags). */
static const char *name_raw(struct ana_crash *c, const struct raw_exception *x)
{
    return ana__printf(c, "0x%08x / 0x%08x", (unsigned)x->code, (unsigned)x->flags);
}

static void name_crash(struct ana_mdmp *m, const struct raw_exception *x)
{
    struct ana_crash *c = m->c;
    struct ana_crash_info *ci = &c->crash_info;
    ci->has_address = true;
    ci->address = x->address;
    if (!m->has_system_info) {
        ci->type = name_raw(c, x);
    } else if (m->platform == ANA_MD_OS_WIN32_NT || m->platform == ANA_MD_OS_WIN32_WINDOWS) {
        ci->type = ana__reason_windows(c, x->code, x->flags, ci->param_count, ci->params);
        if ((x->code == WIN_ACCESS_VIOLATION || x->code == WIN_IN_PAGE_ERROR) &&
            ci->param_count >= 2)
            ci->address = ci->params[1]; /* ExceptionInformation[1]: the data address */
    } else if (m->platform == ANA_MD_OS_MAC_OS_X || m->platform == ANA_MD_OS_IOS) {
        ci->type = ana__reason_mac(c, x->code, x->flags, m->arch);
    } else if (m->platform == ANA_MD_OS_LINUX || m->platform == ANA_MD_OS_ANDROID) {
        ci->has_address = false;
        name_linux(c, x);
    } else {
        ci->type = name_raw(c, x);
    }
    if (ana_cpu_ptr_bytes(c->system_info.cpu) == 4)
        ci->address &= 0xFFFFFFFFu;
}

static void read_context(struct ana_mdmp *m, const struct raw_exception *x)
{
    struct ana_crash *c = m->c;
    struct ana_crash_info *ci = &c->crash_info;
    struct cm_cur ctx;
    const char *why = NULL;
    if (m->has_system_info && c->system_info.cpu == ANA_CPU_UNKNOWN)
        return;
    if (!cm_cur_window(&m->file, x->ctx_rva, x->ctx_size, &ctx)) { /* .ThreadContext */
        ana__warn(c, "minidump: Exception: context at 0x%x of %u bytes lies outside the file",
                  (unsigned)x->ctx_rva, (unsigned)x->ctx_size);
        return;
    }
    if (!ana__mdmp_context(c->system_info.cpu, ctx, &ci->exception_ctx, &why)) {
        ana__warn(c, "minidump: Exception: context at 0x%x of %u bytes does not hold a %s context: %s",
                  (unsigned)x->ctx_rva, (unsigned)x->ctx_size, ana_cpu_name(c->system_info.cpu),
                  why);
        return;
    }
    ci->has_exception_ctx = true;
}

static void find_thread(struct ana_crash *c, uint32_t tid)
{
    struct ana_crash_info *ci = &c->crash_info;
    ci->crashing_tid = tid;
    ci->crashing_thread = -1;
    for (size_t i = 0; i < c->thread_count; i++)
        if (c->threads[i].tid == tid) {
            ci->crashing_thread = (int)i;
            return;
        }
    ana__warn(c, "minidump: Exception names thread id 0x%x, which the ThreadList does not hold",
              (unsigned)tid);
}

enum cm_code ana__mdmp_exception(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                 struct cm_err *err)
{
    struct ana_crash *c = m->c;
    struct ana_crash_info *ci = &c->crash_info;
    struct raw_exception x;
    m->has_exception = true;
    ci->crashed = true; /* even an unreadable record says the process crashed */
    if (!read_raw(s, &x)) {
        ana__warn(c, "minidump: Exception at 0x%x: %u bytes, MINIDUMP_EXCEPTION_STREAM needs "
                     "%d; the crash is not named",
                  (unsigned)s->rva, (unsigned)s->size, MD_EXCEPTION_STREAM_BYTES);
        return CM_E_OK;
    }
    find_thread(c, x.tid);
    ci->exception_code = x.code;
    ci->exception_flags = x.flags;
    ci->exception_address = x.address;
    ci->param_count = x.nparams;
    if (x.nparams > MD_EXCEPTION_MAX_PARAMS) { /* EXCEPTION_MAXIMUM_PARAMETERS */
        ana__warn(c, "minidump: Exception: %u parameters exceed the record's %d; the rest are "
                     "ignored",
                  (unsigned)x.nparams, MD_EXCEPTION_MAX_PARAMS);
        ci->param_count = MD_EXCEPTION_MAX_PARAMS;
    }
    for (uint32_t i = 0; i < ci->param_count; i++)
        ci->params[i] = x.params[i];
    read_context(m, &x);
    name_crash(m, &x);
    if (!ci->type)
        return cm_fail(err, CM_E_NOMEM, "minidump: out of memory naming the crash");
    return CM_E_OK;
}

/* MDRawAssertionInfo strings: 128 UTF-16 units each, NUL-padded. */
static const char *fixed_utf16(struct ana_crash *c, struct cm_cur *cur)
{
    const uint8_t *p;
    if (!cm_cur_view(cur, 256, &p))
        return "";
    const char *s = ana__utf16le_to_utf8(c, p, 256);
    return s ? s : "";
}

enum cm_code ana__mdmp_assertion(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                 struct cm_err *err)
{
    struct ana_crash *c = m->c;
    struct cm_cur cur = s->cur;
    const char *expr = fixed_utf16(c, &cur);     /* MDRawAssertionInfo.expression */
    const char *function = fixed_utf16(c, &cur); /* .function */
    const char *file = fixed_utf16(c, &cur);     /* .file */
    uint32_t line, type;
    cm_cur_u32le(&cur, &line); /* .line */
    cm_cur_u32le(&cur, &type); /* .type */
    if (cur.failed) {
        ana__warn(c, "minidump: AssertionInfo at 0x%x: %u bytes, MDRawAssertionInfo needs %d; "
                     "skipped",
                  (unsigned)s->rva, (unsigned)s->size, MD_ASSERTION_BYTES);
        return CM_E_OK;
    }
    /* Breakpad's wording (MinidumpProcessor::GetAssertion). */
    char kind[48];
    if (type == 1)
        snprintf(kind, sizeof kind, "Invalid parameter passed to library function");
    else if (type == 2)
        snprintf(kind, sizeof kind, "Pure virtual function called");
    else
        snprintf(kind, sizeof kind, "Unknown assertion type 0x%08x", (unsigned)type);
    char at[32] = "";
    if (line)
        snprintf(at, sizeof at, " at line %u", (unsigned)line);
    c->crash_info.assertion =
        ana__printf(c, "%s%s%s%s%s%s%s%s", kind, *expr ? " " : "", expr,
                    *function ? " in function " : "", function, *file ? ", in file " : "", file,
                    at);
    if (!c->crash_info.assertion)
        return cm_fail(err, CM_E_NOMEM, "minidump: out of memory reading AssertionInfo");
    return CM_E_OK;
}
