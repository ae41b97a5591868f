/* ana_elfcore_notes.c -- the payloads of an ELF core's "CORE" notes, each read with a cm_cur
 * over its descriptor: NT_PRSTATUS (one per thread: tid and registers, numbered as ana.h's DWARF
 * tables), NT_PRPSINFO (process name, arguments, pid), NT_SIGINFO (signal, code, fault address),
 * NT_AUXV; NT_FILE goes to ana_elfcore_files.c. Other notes (NT_FPREGSET, NT_X86_XSTATE, ...)
 * are not needed and are skipped. Layouts: <linux/elfcore.h> (struct elf_prstatus,
 * elf_prpsinfo), <sys/procfs.h>, <asm-generic/siginfo.h>, <sys/user.h> (user_regs_struct). */
#include <elf.h>
#include <string.h>

#include "analyzer/ana_int.h"
#include "common/cm_utf8.h"

/* ---- NT_PRSTATUS ---- */

/* struct elf_prstatus_common: struct elf_siginfo pr_info {si_signo, si_code, si_errno},
 * short pr_cursig, unsigned long pr_sigpend, pr_sighold (aligned to a long, so at 16 for both
 * classes), pid_t pr_pid, pr_ppid, pr_pgrp, pr_sid, then four struct timeval {long, long}.
 * elf_gregset_t pr_reg follows: at 112 on 64-bit, 72 on 32-bit. */
#define PR_CODE_OFF 4
#define PR_CURSIG_OFF 12
#define PR_PID_OFF(w) (16 + 2 * (size_t)(w))
#define PR_REG_OFF(w) (32 + 10 * (size_t)(w))

/* elf_gregset_t slot -> DWARF register number (-1: not a DWARF register). */
static const int8_t amd64_slots[] = {
    /* struct user_regs_struct (x86_64): r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi
     * rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs */
    ANA_AMD64_R15, ANA_AMD64_R14, ANA_AMD64_R13, ANA_AMD64_R12, ANA_AMD64_RBP, ANA_AMD64_RBX,
    ANA_AMD64_R11, ANA_AMD64_R10, ANA_AMD64_R9,  ANA_AMD64_R8,  ANA_AMD64_RAX, ANA_AMD64_RCX,
    ANA_AMD64_RDX, ANA_AMD64_RSI, ANA_AMD64_RDI, -1,            ANA_AMD64_RIP, -1,
    ANA_AMD64_RFLAGS, ANA_AMD64_RSP, -1, -1, -1, -1, -1, -1, -1,
};
static const int8_t x86_slots[] = {
    /* struct user_regs_struct (i386): ebx ecx edx esi edi ebp eax xds xes xfs xgs orig_eax
     * eip xcs eflags esp xss */
    ANA_X86_EBX, ANA_X86_ECX, ANA_X86_EDX, ANA_X86_ESI, ANA_X86_EDI, ANA_X86_EBP, ANA_X86_EAX,
    -1, -1, -1, -1, -1, ANA_X86_EIP, -1, ANA_X86_EFLAGS, ANA_X86_ESP, -1,
};
static const int8_t arm64_slots[] = {
    /* struct user_pt_regs (aarch64): regs[31] (x0..x30), sp, pc, pstate */
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, ANA_ARM64_SP, ANA_ARM64_PC,
    ANA_ARM64_CPSR,
};
static const int8_t arm_slots[] = {
    /* struct pt_regs (arm) uregs[18]: r0..r15 (r15 = pc), cpsr, ORIG_r0 */
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, ANA_ARM_CPSR, -1,
};

struct reg_layout {
    unsigned machine;
    const int8_t *slots;
    size_t nslots; /* words (of the class's width) in elf_gregset_t */
};

static const struct reg_layout *layout_of(unsigned machine)
{
#define L(m, t) { m, t, sizeof t / sizeof *t }
    static const struct reg_layout layouts[] = {
        L(EM_X86_64, amd64_slots), L(EM_386, x86_slots), L(EM_AARCH64, arm64_slots),
        L(EM_ARM, arm_slots),
    };
#undef L
    for (size_t i = 0; i < sizeof layouts / sizeof *layouts; i++)
        if (layouts[i].machine == machine)
            return &layouts[i];
    return NULL;
}

static struct ana_thread *new_thread(struct ana__core *k)
{
    struct ana_crash *c = k->c;
    if (c->thread_count >= c->limits.max_threads) {
        k->threads_dropped++;
        return NULL;
    }
    if (c->thread_count == k->thread_cap) { /* grow in the arena: old arrays die with it */
        size_t cap = k->thread_cap ? 2 * k->thread_cap : 8;
        if (cap > c->limits.max_threads)
            cap = c->limits.max_threads;
        struct ana_thread *t = ana__calloc(c, cap, sizeof *t);
        if (!t) {
            k->nomem = true;
            return NULL;
        }
        if (c->thread_count)
            memcpy(t, c->threads, c->thread_count * sizeof *t);
        c->threads = t;
        k->thread_cap = cap;
    }
    struct ana_thread *t = &c->threads[c->thread_count++];
    *t = (struct ana_thread){ 0 };
    return t;
}

static void read_regs(struct ana__core *k, struct ana_thread *t, struct cm_cur d, uint64_t off)
{
    const struct reg_layout *l = layout_of(k->machine);
    if (!l) {
        if (!k->regs_warned)
            ana__warn(k->c, "elfcore: registers of e_machine %u are not decoded", k->machine);
        k->regs_warned = true;
        return;
    }
    if (d.len < PR_REG_OFF(k->word) + l->nslots * k->word) {
        /* <linux/elfcore.h>: pr_reg must be whole; the thread stays, marked unreadable */
        if (k->short_regs++ == 0)
            k->short_regs_off = off;
        t->bad_context = true;
        return;
    }
    cm_cur_seek(&d, PR_REG_OFF(k->word));
    for (size_t i = 0; i < l->nslots; i++) {
        uint64_t v;
        ana__cur_word(&d, k->word, &v);
        ana_ctx_set(&t->ctx, l->slots[i], v); /* ignores -1 */
    }
    t->has_ctx = true;
}

static void prstatus(struct ana__core *k, struct cm_cur d, uint64_t off)
{
    uint16_t cursig;
    uint32_t code, tid;
    cm_cur_seek(&d, PR_CODE_OFF);
    cm_cur_u32le(&d, &code);
    cm_cur_seek(&d, PR_CURSIG_OFF);
    cm_cur_u16le(&d, &cursig);
    cm_cur_seek(&d, PR_PID_OFF(k->word));
    cm_cur_u32le(&d, &tid);
    if (d.failed) {
        if (k->short_pid++ == 0)
            k->short_pid_off = off;
        return;
    }
    struct ana_thread *t = new_thread(k);
    if (!t)
        return;
    t->tid = tid;
    t->ctx.cpu = k->c->system_info.cpu;
    if (k->c->thread_count == 1) { /* the kernel writes the dumping thread first */
        k->cursig = (int16_t)cursig;
        k->cur_code = (int32_t)code;
    }
    read_regs(k, t, d, off);
}

/* One warning for each kind of short NT_PRSTATUS, and one for threads past the limit. */
void ana__core_thread_warnings(struct ana__core *k)
{
    struct ana_crash *c = k->c;
    if (k->short_pid)
        ana__warn(c, "elfcore: %zu NT_PRSTATUS notes (the first at 0x%llx) end before pr_pid; "
                  "those threads are skipped", k->short_pid,
                  (unsigned long long)k->short_pid_off);
    if (k->short_regs)
        ana__warn(c, "elfcore: %zu NT_PRSTATUS notes (the first at 0x%llx) end before their "
                  "pr_reg does; those threads' context is unreadable", k->short_regs,
                  (unsigned long long)k->short_regs_off);
    if (k->threads_dropped)
        ana__warn(c, "elfcore: %zu more NT_PRSTATUS notes than the limit of %u threads; "
                  "ignored", k->threads_dropped, c->limits.max_threads);
}

/* ---- NT_PRPSINFO ---- */

/* struct elf_prpsinfo: char pr_state, pr_sname, pr_zomb, pr_nice; unsigned long pr_flag;
 * __kernel_uid_t pr_uid, pr_gid (16-bit on i386 and arm, whose struct is then 124 bytes, else
 * 32-bit); pid_t pr_pid, pr_ppid, pr_pgrp, pr_sid; char pr_fname[16]; char pr_psargs[80]. */
static void prpsinfo(struct ana__core *k, struct cm_cur d, uint64_t off)
{
    struct ana_crash *c = k->c;
    size_t ids = k->word == 4 && d.len == 124 ? 4 : 8;
    size_t pid_off = 4 + (k->word == 8 ? 4u : 0u) + k->word + ids;
    size_t fname_off = pid_off + 16, args_off = fname_off + 16, end = args_off + 80;
    const uint8_t *fname, *args;
    uint32_t pid;
    cm_cur_seek(&d, pid_off);
    cm_cur_u32le(&d, &pid);
    cm_cur_seek(&d, fname_off);
    cm_cur_view(&d, 16, &fname);
    cm_cur_view(&d, 80, &args);
    if (d.failed) {
        ana__warn(c, "elfcore: NT_PRPSINFO at 0x%llx: %zu bytes, shorter than struct "
                  "elf_prpsinfo (%zu); ignored", (unsigned long long)off, d.len, end);
        return;
    }
    size_t n = strnlen((const char *)args, 80);
    while (n > 0 && args[n - 1] == ' ') /* the kernel turns argv's NULs into spaces */
        n--;
    c->pid = pid;
    c->process_name = ana__core_text(c, fname, 16);
    c->command_line = ana__core_text(c, args, n);
    k->nomem |= !c->process_name || !c->command_line;
}

/* ---- NT_SIGINFO ---- */

/* siginfo_t (<asm-generic/siginfo.h>): int si_signo, si_errno, si_code; then the union, aligned
 * for a pointer (at 16 on 64-bit, 12 on 32-bit), whose _sigfault member starts with si_addr. */
static void siginfo(struct ana__core *k, struct cm_cur d, uint64_t off)
{
    uint32_t signo, errno_, code;
    uint64_t addr;
    cm_cur_u32le(&d, &signo);
    cm_cur_u32le(&d, &errno_);
    cm_cur_u32le(&d, &code);
    cm_cur_seek(&d, k->word == 8 ? 16 : 12);
    ana__cur_word(&d, k->word, &addr);
    if (d.failed) {
        ana__warn(k->c, "elfcore: NT_SIGINFO at 0x%llx: %zu bytes end before si_addr; ignored",
                  (unsigned long long)off, d.len);
        return;
    }
    k->has_siginfo = true;
    k->sig_signo = (int32_t)signo;
    k->sig_code = (int32_t)code;
    k->sig_addr = addr;
}

/* ---- NT_AUXV ---- */

/* Elf{32,64}_auxv_t pairs {a_type, a_val} of words, ending with AT_NULL. An odd length means a
 * broken note (elfutils bug 24089): ignored. */
static void auxv(struct ana__core *k, struct cm_cur d, uint64_t off)
{
    struct ana_crash *c = k->c;
    size_t pair = 2 * (size_t)k->word, n = d.len / pair, max = 1024;
    if (d.len % pair) {
        ana__warn(c, "elfcore: NT_AUXV at 0x%llx: %zu bytes are not whole %zu-byte entries; "
                  "ignored", (unsigned long long)off, d.len, pair);
        return;
    }
    if (n > max) {
        ana__warn(c, "elfcore: NT_AUXV at 0x%llx: %zu entries cut to %zu",
                  (unsigned long long)off, n, max);
        n = max;
    }
    uint64_t *v = ana__calloc(c, n ? 2 * n : 1, sizeof *v);
    if (!v) {
        k->nomem = true;
        return;
    }
    size_t i = 0;
    for (; i < n; i++) {
        ana__cur_word(&d, k->word, &v[2 * i]);
        ana__cur_word(&d, k->word, &v[2 * i + 1]);
        if (v[2 * i] == AT_NULL)
            break;
    }
    c->auxv = v;
    c->auxv_count = i;
}

/* ---- dispatch ---- */

/* The first of each process-wide note counts; the kernel writes one. */
static bool first(struct ana__core *k, bool *seen, const char *what, uint64_t off)
{
    if (*seen) {
        ana__warn(k->c, "elfcore: another %s at 0x%llx; the first is kept", what,
                  (unsigned long long)off);
        return false;
    }
    *seen = true;
    return true;
}

void ana__core_note(struct ana__core *k, uint32_t type, struct cm_cur desc, uint64_t off)
{
    switch (type) {
    case NT_PRSTATUS:
        prstatus(k, desc, off);
        break;
    case NT_PRPSINFO:
        if (first(k, &k->seen_prpsinfo, "NT_PRPSINFO", off))
            prpsinfo(k, desc, off);
        break;
    case NT_SIGINFO:
        if (first(k, &k->seen_siginfo, "NT_SIGINFO", off))
            siginfo(k, desc, off);
        break;
    case NT_AUXV:
        if (first(k, &k->seen_auxv, "NT_AUXV", off))
            auxv(k, desc, off);
        break;
    case NT_FILE:
        if (first(k, &k->seen_file, "NT_FILE", off))
            ana__core_files(k, desc, off);
        break;
    default: /* NT_FPREGSET, NT_PRXFPREG, ...: not needed */
        break;
    }
}

/* ---- crash facts ---- */

/* Signals whose default action dumps core (signal(7) "Core"): SIGQUIT, SIGILL, SIGTRAP,
 * SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGXCPU, SIGXFSZ, SIGSYS. A core naming another signal is a
 * snapshot (gdb's gcore records the stop signal), not a crash. */
static bool is_core_signal(int signo)
{
    return (signo >= 3 && signo <= 8) || signo == 11 || signo == 24 || signo == 25 ||
           signo == 31;
}

/* Signals whose siginfo is the _sigfault member, holding the faulting address. */
static bool is_fault_signal(int signo)
{
    return signo == 4 || signo == 5 || signo == 7 || signo == 8 || signo == 11;
}

void ana__core_crash_info(struct ana__core *k)
{
    struct ana_crash *c = k->c;
    struct ana_crash_info *ci = &c->crash_info;
    int signo = k->sig_signo, code = k->sig_code;
    if (!k->has_siginfo) { /* cores before Linux 3.7, and some tools' cores */
        signo = k->cursig;
        code = k->cur_code;
        if (signo)
            ana__warn(c, "elfcore: no NT_SIGINFO; signal taken from NT_PRSTATUS pr_cursig, "
                      "without a fault address");
    }
    ci->signo = signo;
    ci->si_code = code;
    ci->has_signal = signo != 0;
    ci->crashed = is_core_signal(signo);
    if (ci->has_signal && k->has_siginfo)
        ci->type = ana__linux_reason(c, signo, code);
    else if (ci->has_signal) /* pr_info.si_code is never filled in: name the signal alone */
        ci->type = ana__linux_signal_name(signo) ? ana__linux_signal_name(signo)
                                                 : ana__printf(c, "0x%08x", (unsigned)signo);
    k->nomem |= ci->has_signal && !ci->type;
    /* si_addr is a fault address only when the kernel raised the signal for a fault; a sender's
     * si_code (kill, tgkill, SI_KERNEL) means the union holds a pid and uid instead. */
    if (k->has_siginfo && is_fault_signal(signo) && !ana__linux_code_is_sender(code)) {
        ci->has_address = true;
        ci->address = k->word == 4 ? (uint32_t)k->sig_addr : k->sig_addr;
    }
    if (ci->crashed && c->thread_count) { /* the dumping thread comes first in kernel cores */
        ci->crashing_thread = 0;
        ci->crashing_tid = c->threads[0].tid;
    }
}

/* ---- text ---- */

char *ana__core_text(struct ana_crash *c, const uint8_t *p, size_t n)
{
    const uint8_t *nul = memchr(p, 0, n);
    if (nul)
        n = (size_t)(nul - p);
    if (n > c->limits.max_string_bytes)
        n = c->limits.max_string_bytes;
    return cm_utf8_clean(&c->arena, (const char *)p, n); /* bad bytes become U+FFFD */
}
