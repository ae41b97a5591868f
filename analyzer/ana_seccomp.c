/* ana_seccomp.c -- the system calls a sandboxed analyzer child may not make. The child reads one
 * spool file at a time and writes its answer to a pipe; a parser bug exploited by a hostile dump
 * must not reach the network, start programs, create processes or touch other processes. So a
 * seccomp filter answers EPERM to those calls (and ENOSYS to clone3, whose flags a filter cannot
 * read, so glibc falls back to clone). Everything else stays allowed: the reader, libelf, libdw
 * and zstd use ordinary file and memory calls. Linux seccomp(2), "SECCOMP_SET_MODE_FILTER". */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/sched.h> /* CLONE_THREAD */
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "analyzer/ana_daemon.h"

#if defined(__x86_64__)
#define AUDIT_ARCH_HERE AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AUDIT_ARCH_HERE AUDIT_ARCH_AARCH64
#endif

#ifdef AUDIT_ARCH_HERE

#define DENY(nr, err)                                                                              \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),                                               \
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((err) & SECCOMP_RET_DATA))

enum cm_code anad_seccomp(bool allow_processes, struct cm_err *err)
{
    struct sock_filter deny_net_exec[] = {
        /* A filter for another architecture's calling convention would misread numbers. */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_HERE, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        DENY(__NR_socket, EPERM),
        DENY(__NR_socketpair, EPERM),
        DENY(__NR_connect, EPERM),
        DENY(__NR_bind, EPERM),
        DENY(__NR_listen, EPERM),
        DENY(__NR_accept4, EPERM),
        DENY(__NR_execve, EPERM),
        DENY(__NR_execveat, EPERM),
        DENY(__NR_ptrace, EPERM),
        DENY(__NR_process_vm_readv, EPERM),
        DENY(__NR_process_vm_writev, EPERM),
        DENY(__NR_kill, EPERM),
        DENY(__NR_tkill, EPERM),
#ifdef __NR_clone3
        DENY(__NR_clone3, ENOSYS),
#endif
        /* clone without CLONE_THREAD makes a process; threads stay allowed. */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    size_t n = sizeof deny_net_exec / sizeof *deny_net_exec;
    if (allow_processes) /* drop the clone rule: a sanitizer's leak checker forks at exit */
        deny_net_exec[n - 5] = deny_net_exec[n - 1], n -= 4;
    struct sock_fprog prog = { .len = (unsigned short)n, .filter = deny_net_exec };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return cm_fail(err, CM_E_IO, "cannot set no_new_privs: errno %d", errno);
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
        return cm_fail(err, CM_E_IO, "cannot install the seccomp filter: errno %d", errno);
    return CM_E_OK;
}

#else

enum cm_code anad_seccomp(bool allow_processes, struct cm_err *err)
{
    (void)allow_processes;
    return cm_fail(err, CM_E_UNSUPPORTED, "no seccomp filter for this architecture");
}

#endif
