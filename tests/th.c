/* th.c -- test helpers shared by every test program. */
#include "tests/th.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *th_corpus(const char *rel)
{
    static _Thread_local char path[4096];
    snprintf(path, sizeof path, "%s/%s", TRIAGE_CORPUS_DIR, rel);
    if (access(path, R_OK) != 0)
        fail_msg("corpus file missing: %s (the corpus must be at ../shared/corpus)", path);
    return path;
}

const char *th_tmp(const char *name)
{
    static _Thread_local char path[4096];
    char dir[3000];
    snprintf(dir, sizeof dir, "%s/test-tmp", TRIAGE_BINARY_DIR);
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

uint8_t *th_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *p = malloc(cap);
    size_t got;
    while ((got = fread(p + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            p = realloc(p, cap *= 2);
    }
    fclose(f);
    *len = n;
    return p;
}

void th_write(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n)
        fail_msg("cannot write %s", path);
    fclose(f);
}

struct sink {
    char *p;
    size_t n, cap;
};

static void sink_add(struct sink *s, const char *b, size_t n)
{
    if (s->n + n + 1 > s->cap) {
        s->cap = (s->n + n + 1) * 2;
        s->p = realloc(s->p, s->cap);
    }
    memcpy(s->p + s->n, b, n);
    s->n += n;
    s->p[s->n] = 0;
}

int th_run(char *const argv[], char **out, char **errout, int timeout_s)
{
    int po[2], pe[2];
    if (pipe(po) || pipe(pe))
        fail_msg("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(pe[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    struct sink so = { 0 }, se = { 0 };
    sink_add(&so, "", 0);
    sink_add(&se, "", 0);
    struct pollfd fds[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
    time_t deadline = time(NULL) + timeout_s;
    int open_fds = 2;
    while (open_fds > 0) {
        int left = (int)(deadline - time(NULL));
        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fail_msg("%s timed out after %d s", argv[0], timeout_s);
        }
        if (poll(fds, 2, left * 1000) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP)))
                continue;
            char b[65536];
            ssize_t n = read(fds[i].fd, b, sizeof b);
            if (n <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            } else {
                sink_add(i ? &se : &so, b, (size_t)n);
            }
        }
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (out)
        *out = so.p;
    else
        free(so.p);
    if (errout)
        *errout = se.p;
    else
        free(se.p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

const char *th_triagectl(void)
{
    const char *p = getenv("TRIAGECTL");
    if (!p || !*p)
        fail_msg("TRIAGECTL is not set (run the tests through ctest)");
    return p;
}
