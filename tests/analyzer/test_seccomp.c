/* test_seccomp.c -- the analyzer child's system-call filter: after anad_seccomp(), the network,
 * exec, new processes and signals to others answer EPERM, while files, memory and threads keep
 * working (the reader needs them). Each case runs in a forked process, since a filter cannot be
 * removed. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analyzer/ana_daemon.h"
#include "tests/th.h"

static void *thread_main(void *arg) { return arg; }

/* Bit i of the child's exit status: check i failed. _exit skips sanitizer exit hooks, which
 * would need the very calls the filter refuses. */
static int filtered_child(void)
{
    struct cm_err err = { 0 };
    if (anad_seccomp(false, &err) != CM_E_OK)
        _exit(0x7f);
    int bad = 0;
    errno = 0;
    if (!(socket(AF_INET, SOCK_STREAM, 0) < 0 && errno == EPERM))
        bad |= 1;
    char *const argv[] = { "/bin/true", NULL };
    errno = 0;
    if (!(execv("/bin/true", argv) < 0 && errno == EPERM))
        bad |= 2;
    errno = 0;
    pid_t p = fork();
    if (p == 0)
        _exit(0); /* the filter failed: a process was made */
    if (!(p < 0 && errno == EPERM))
        bad |= 4;
    errno = 0;
    if (!(kill(getppid(), 0) < 0 && errno == EPERM))
        bad |= 8;
    /* what the reader needs still works */
    int fd = open("/proc/self/status", O_RDONLY);
    char buf[64];
    if (fd < 0 || read(fd, buf, sizeof buf) <= 0)
        bad |= 16;
    pthread_t t;
    if (pthread_create(&t, NULL, thread_main, NULL) != 0 || pthread_join(t, NULL) != 0)
        bad |= 32;
    _exit(bad);
}

static void filter_refuses_network_exec_processes(void **state)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        filtered_child();
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    int bad = WEXITSTATUS(st);
    if (bad == 0x7f)
        fail_msg("the filter could not be installed");
    if (bad)
        fail_msg("filter checks failed (bits: 1 socket, 2 exec, 4 fork, 8 kill, 16 file "
                 "read, 32 thread): 0x%x",
                 bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(filter_refuses_network_exec_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
