/* ana_reason_linux.c -- Linux signals and si_code values named as crash tools print them:
 * always "SIGNAL /CODE" (SIGSEGV /SEGV_MAPERR, SIGABRT /SI_TKILL), a code without a name as
 * 0x%08x. Numbers are the generic Linux ABI (x86, arm, arm64, riscv); <asm-generic/siginfo.h>. */
#include <stdio.h>

#include "analyzer/ana_int.h"

static const char *const signal_names[] = {
    [1] = "SIGHUP",    [2] = "SIGINT",   [3] = "SIGQUIT",  [4] = "SIGILL",    [5] = "SIGTRAP",
    [6] = "SIGABRT",   [7] = "SIGBUS",   [8] = "SIGFPE",   [9] = "SIGKILL",   [10] = "SIGUSR1",
    [11] = "SIGSEGV",  [12] = "SIGUSR2", [13] = "SIGPIPE", [14] = "SIGALRM",  [15] = "SIGTERM",
    [16] = "SIGSTKFLT", [17] = "SIGCHLD", [18] = "SIGCONT", [19] = "SIGSTOP", [20] = "SIGTSTP",
    [21] = "SIGTTIN",  [22] = "SIGTTOU", [23] = "SIGURG",  [24] = "SIGXCPU",  [25] = "SIGXFSZ",
    [26] = "SIGVTALRM", [27] = "SIGPROF", [28] = "SIGWINCH", [29] = "SIGIO",  [30] = "SIGPWR",
    [31] = "SIGSYS",
};

const char *ana__linux_signal_name(int signo)
{
    if (signo > 0 && signo < (int)(sizeof signal_names / sizeof *signal_names))
        return signal_names[signo];
    return NULL;
}

/* Codes a sender sets, valid for every signal (<= 0, and SI_KERNEL). */
static const char *generic_code(int code)
{
    switch (code) {
    case 0: return "SI_USER";
    case 0x80: return "SI_KERNEL";
    case -1: return "SI_QUEUE";
    case -2: return "SI_TIMER";
    case -3: return "SI_MESGQ";
    case -4: return "SI_ASYNCIO";
    case -5: return "SI_SIGIO";
    case -6: return "SI_TKILL";
    case -7: return "SI_DETHREAD";
    case -60: return "SI_ASYNCNL";
    default: return NULL;
    }
}

static const char *fault_code(int signo, int code)
{
    static const char *const segv[] = { NULL, "SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR",
                                        "SEGV_PKUERR", "SEGV_ACCADI", "SEGV_ADIDERR",
                                        "SEGV_ADIPERR", "SEGV_MTEAERR", "SEGV_MTESERR",
                                        "SEGV_CPERR" };
    static const char *const bus[] = { NULL, "BUS_ADRALN", "BUS_ADRERR", "BUS_OBJERR",
                                       "BUS_MCEERR_AR", "BUS_MCEERR_AO" };
    static const char *const fpe[] = { NULL, "FPE_INTDIV", "FPE_INTOVF", "FPE_FLTDIV",
                                       "FPE_FLTOVF", "FPE_FLTUND", "FPE_FLTRES", "FPE_FLTINV",
                                       "FPE_FLTSUB", NULL, NULL, NULL, NULL, NULL, "FPE_FLTUNK",
                                       "FPE_CONDTRAP" };
    static const char *const ill[] = { NULL, "ILL_ILLOPC", "ILL_ILLOPN", "ILL_ILLADR",
                                       "ILL_ILLTRP", "ILL_PRVOPC", "ILL_PRVREG", "ILL_COPROC",
                                       "ILL_BADSTK", "ILL_BADIADDR" };
    static const char *const trap[] = { NULL, "TRAP_BRKPT", "TRAP_TRACE", "TRAP_BRANCH",
                                        "TRAP_HWBKPT", "TRAP_UNK", "TRAP_PERF" };
    static const char *const chld[] = { NULL, "CLD_EXITED", "CLD_KILLED", "CLD_DUMPED",
                                        "CLD_TRAPPED", "CLD_STOPPED", "CLD_CONTINUED" };
    static const char *const poll[] = { NULL, "POLL_IN", "POLL_OUT", "POLL_MSG", "POLL_ERR",
                                        "POLL_PRI", "POLL_HUP" };
#define PICK(t) (code > 0 && (size_t)code < sizeof t / sizeof *t ? t[code] : NULL)
    switch (signo) {
    case 11: return PICK(segv);
    case 7: return PICK(bus);
    case 8: return PICK(fpe);
    case 4: return PICK(ill);
    case 5: return PICK(trap);
    case 17: return PICK(chld);
    case 29: return PICK(poll);
    case 31: return code == 1 ? "SYS_SECCOMP" : code == 2 ? "SYS_USER_DISPATCH" : NULL;
    default: return NULL;
    }
#undef PICK
}

const char *ana__linux_reason(struct ana_crash *c, int signo, int code)
{
    const char *sig = ana__linux_signal_name(signo);
    const char *name = fault_code(signo, code);
    if (!name)
        name = generic_code(code);
    char sigbuf[16], codebuf[16];
    if (!sig) {
        snprintf(sigbuf, sizeof sigbuf, "0x%08x", (unsigned)signo);
        sig = sigbuf;
    }
    if (!name) {
        snprintf(codebuf, sizeof codebuf, "0x%08x", (unsigned)code);
        name = codebuf;
    }
    return ana__printf(c, "%s /%s", sig, name);
}

bool ana__linux_code_is_sender(int code) { return code <= 0 || code == 0x80; }
