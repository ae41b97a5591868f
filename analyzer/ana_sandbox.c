/* ana_sandbox.c -- the analyzer's sandboxed child. Dumps are hostile bytes: the parser runs in a
 * separate process with a memory limit, no core files, no new privileges, and a wall-clock kill
 * by its parent, so a parser crash, a hang or a memory bomb costs one child, never the daemon
 * (Socorro runs its stackwalker the same way, under `timeout -s KILL`). One child serves many
 * dumps, so its symbol cache stays warm.
 *
 * Protocol, parent to child: one line per dump, the spool path. Child to parent: fields as
 * "NAME LENGTH\n" followed by LENGTH bytes and "\n", ending with "end 0\n\n". Lengths make it
 * binary-safe; no escaping anywhere. */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "analyzer/ana.h"
#include "analyzer/ana_daemon.h"
#include "analyzer/ana_sym.h"
#include "common/cm_alloc.h"
#include "common/cm_log.h"

#define MAX_RESPONSE_BYTES (256u << 20)

/* ---- parent side ---- */

enum cm_code anad_child_start(struct anad *d, struct anad_child *ch, struct cm_err *err)
{
    int down[2] = { -1, -1 }, up[2] = { -1, -1 };
    if (pipe2(down, O_CLOEXEC) || pipe2(up, O_CLOEXEC)) {
        int e = errno;
        if (down[0] >= 0) {
            close(down[0]);
            close(down[1]);
        }
        return cm_fail(err, CM_E_IO, "cannot create pipes for the analyzer child: %s",
                       strerror(e));
    }
    char *argv[16 + 2 * ANAD_MAX_SYMBOL_DIRS];
    char mem[64], dump[64], frames[64];
    size_t a = 0;
    argv[a++] = d->self_exe;
    argv[a++] = "--child";
    snprintf(mem, sizeof mem, "--child_memory_bytes=%zu", d->conf.child_memory_bytes);
    snprintf(dump, sizeof dump, "--max_dump_bytes=%zu", d->conf.max_dump_bytes);
    snprintf(frames, sizeof frames, "--max_frames=%zu", d->conf.max_frames);
    argv[a++] = mem;
    argv[a++] = dump;
    argv[a++] = frames;
    argv[a++] = "--log_level";
    argv[a++] = d->conf.log_level;
    if (d->conf.rules[0]) {
        argv[a++] = "--rules";
        argv[a++] = d->conf.rules;
    }
    for (size_t i = 0; i < d->conf.symbols_count; i++) {
        argv[a++] = "--symbols";
        argv[a++] = d->conf.symbols[i];
    }
    argv[a] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(down[0]), close(down[1]), close(up[0]), close(up[1]);
        return cm_fail(err, CM_E_IO, "cannot fork the analyzer child: %s", strerror(e));
    }
    if (pid == 0) {
        dup2(down[0], 0);
        dup2(up[1], 1);
        execv(d->self_exe, argv);
        _exit(127);
    }
    close(down[0]);
    close(up[1]);
    ch->pid = pid;
    ch->to_child = down[1];
    ch->from_child = up[0];
    cm_buf_init(&ch->in, MAX_RESPONSE_BYTES);
    return CM_E_OK;
}

void anad_child_stop(struct anad_child *ch)
{
    if (ch->pid > 0) {
        kill(ch->pid, SIGKILL);
        while (waitpid(ch->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (ch->to_child >= 0)
        close(ch->to_child);
    if (ch->from_child >= 0)
        close(ch->from_child);
    cm_buf_free(&ch->in);
    ch->pid = -1;
    ch->to_child = ch->from_child = -1;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Finds "end 0\n\n" framing completion; returns true when the buffer holds a whole response. */
static bool response_complete(const struct cm_buf *b)
{
    size_t off = 0;
    while (off < b->len) {
        const char *line = (const char *)b->data + off;
        const char *nl = memchr(line, '\n', b->len - off);
        if (!nl)
            return false;
        const char *sp = memchr(line, ' ', (size_t)(nl - line));
        if (!sp)
            return false;
        unsigned long long len = strtoull(sp + 1, NULL, 10);
        size_t head = (size_t)(nl - line) + 1;
        if (len > b->len || b->len - off - head < len + 1)
            return false;
        if ((size_t)(sp - line) == 3 && memcmp(line, "end", 3) == 0)
            return true;
        off += head + (size_t)len + 1;
    }
    return false;
}

static enum cm_code parse_module(char *text, struct db_module *m)
{
    char *f[8];
    size_t n = 0;
    for (char *p = text; n < 8;) {
        f[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab)
            break;
        *tab = 0;
        p = tab + 1;
    }
    if (n != 8)
        return CM_E_CORRUPT;
    m->name = f[0];
    m->version = *f[1] ? f[1] : NULL;
    m->debug_file = *f[2] ? f[2] : NULL;
    m->debug_id = *f[3] ? f[3] : NULL;
    m->code_id = *f[4] ? f[4] : NULL;
    m->base = strtoull(f[5], NULL, 16);
    m->size = strtoull(f[6], NULL, 16);
    m->is_main = f[7][0] == '1';
    return CM_E_OK;
}

static enum cm_code parse_response(const struct cm_buf *b, struct cm_arena *arena,
                                   struct anad_result *res, struct cm_err *err)
{
    memset(res, 0, sizeof *res);
    size_t nmod = 0, off = 0;
    bool retry = false; /* the child could not read the dump and is exiting */
    /* First pass counts modules so the array is sized once. */
    for (size_t o = 0; o < b->len;) {
        const char *line = (const char *)b->data + o;
        const char *nl = memchr(line, '\n', b->len - o);
        const char *sp = memchr(line, ' ', (size_t)(nl - line));
        size_t len = (size_t)strtoull(sp + 1, NULL, 10);
        nmod += (size_t)(sp - line) == 6 && memcmp(line, "module", 6) == 0;
        o += (size_t)(nl - line) + 1 + len + 1;
    }
    res->modules = nmod ? cm_arena_calloc(arena, nmod, sizeof *res->modules) : NULL;
    while (off < b->len) {
        const char *line = (const char *)b->data + off;
        const char *nl = memchr(line, '\n', b->len - off);
        const char *sp = memchr(line, ' ', (size_t)(nl - line));
        size_t name_len = (size_t)(sp - line);
        size_t len = (size_t)strtoull(sp + 1, NULL, 10);
        const char *val = nl + 1;
        off += (size_t)(nl - line) + 1 + len + 1;
        char name[32];
        if (name_len >= sizeof name)
            continue;
        memcpy(name, line, name_len);
        name[name_len] = 0;
        if (!strcmp(name, "end"))
            break;
        char *v = cm_arena_strndup(arena, val, len);
        if (!v)
            return cm_fail(err, CM_E_NOMEM, "out of memory reading the child's answer");
        static const struct { const char *name; size_t off; } fields[] = {
#define F(x) { #x, offsetof(struct anad_result, x) }
            F(error),       F(signature),   F(bucket),     F(crash_kind),
            F(fault_module), F(fault_module_version), F(fault_point), F(stack_hash),
            F(fault_key),   F(rules_version), F(processed_json), F(dump_format),
#undef F
        };
        if (!strcmp(name, "status")) {
            res->ok = !strcmp(v, "ok");
            retry = !strcmp(v, "retry");
        } else if (!strcmp(name, "module")) {
            if (res->modules && res->module_count < nmod &&
                parse_module(v, &res->modules[res->module_count]) == CM_E_OK)
                res->module_count++;
        } else {
            for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
                if (!strcmp(name, fields[i].name))
                    *(const char **)(void *)((char *)res + fields[i].off) = v;
        }
    }
    if (retry)
        return cm_fail(err, CM_E_BUSY, "analyzer child could not read the dump: %s",
                       res->error ? res->error : "no reason given");
    if (!res->ok && !res->error)
        res->error = "CORRUPT: the analyzer child gave no reason";
    if (res->ok && !res->bucket)
        return cm_fail(err, CM_E_CORRUPT, "the analyzer child's answer has no bucket");
    return CM_E_OK;
}

enum cm_code anad_child_analyze(struct anad_child *ch, const char *spool_path, int64_t timeout_ms,
                                struct cm_arena *arena, struct anad_result *res,
                                struct cm_err *err)
{
    cm_buf_reset(&ch->in);
    size_t plen = strlen(spool_path);
    if (memchr(spool_path, '\n', plen))
        return cm_fail(err, CM_E_CORRUPT, "spool path holds a newline");
    struct iovec_like { const char *p; size_t n; } parts[2] = { { spool_path, plen }, { "\n", 1 } };
    for (int i = 0; i < 2; i++) {
        size_t done = 0;
        while (done < parts[i].n) {
            ssize_t w = write(ch->to_child, parts[i].p + done, parts[i].n - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                anad_child_stop(ch);
                return cm_fail(err, CM_E_BUSY, "analyzer child is gone (write: %s)",
                               strerror(errno));
            }
            done += (size_t)w;
        }
    }
    int64_t deadline = mono_ms() + timeout_ms;
    while (!response_complete(&ch->in)) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            anad_child_stop(ch);
            return cm_fail(err, CM_E_BUSY, "analyzer child killed after %lld ms on one dump",
                           (long long)timeout_ms);
        }
        struct pollfd pfd = { ch->from_child, POLLIN, 0 };
        int pr = poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
        if (pr < 0 && errno != EINTR) {
            anad_child_stop(ch);
            return cm_fail(err, CM_E_BUSY, "poll on the analyzer child: %s", strerror(errno));
        }
        if (pr <= 0)
            continue;
        char buf[65536];
        ssize_t n = read(ch->from_child, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int status = 0;
            pid_t pid = ch->pid;
            ch->pid = -1;
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            anad_child_stop(ch);
            if (WIFSIGNALED(status))
                return cm_fail(err, CM_E_BUSY, "analyzer child died of signal %d",
                               WTERMSIG(status));
            return cm_fail(err, CM_E_BUSY, "analyzer child exited with status %d",
                           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
        if (cm_buf_append(&ch->in, buf, (size_t)n, err)) {
            anad_child_stop(ch);
            return cm_fail(err, CM_E_BUSY, "analyzer child's answer exceeds %u bytes",
                           MAX_RESPONSE_BYTES);
        }
    }
    enum cm_code rc = parse_response(&ch->in, arena, res, err);
    if (rc == CM_E_BUSY)
        anad_child_stop(ch); /* it exits after a "retry" answer */
    return rc;
}

/* ---- child side ---- */

static void put_field(FILE *out, const char *name, const char *value)
{
    if (!value)
        return;
    size_t n = strlen(value);
    fprintf(out, "%s %zu\n", name, n);
    fwrite(value, 1, n, out);
    fputc('\n', out);
}

static const char *format_name(enum ana_format f)
{
    return f == ANA_FMT_MINIDUMP  ? "minidump"
           : f == ANA_FMT_ELFCORE ? "elf_core"
           : f == ANA_FMT_KERNEL  ? "windows_kernel"
                                  : "unknown";
}

static void answer(FILE *out, struct anad *d, struct ana_symstore *store,
                   const struct ana_rules *rules, const char *path)
{
    struct ana_limits lim;
    ana_limits_default(&lim);
    lim.max_dump_bytes = d->conf.max_dump_bytes;
    lim.max_frames = (uint32_t)d->conf.max_frames;
    struct ana_crash *c = NULL;
    struct cm_err err = { 0 };
    struct ana_keys keys;
    enum cm_code rc = ana_load_file(path, &lim, &c, &err);
    if (rc == CM_E_IO || rc == CM_E_NOMEM) {
        /* Not the dump's fault: say why, then exit so the parent retries with a fresh child
         * (the spool may be on a flaky disk). */
        char reason[512];
        snprintf(reason, sizeof reason, "%s: %s", cm_code_name(err.code), err.msg);
        put_field(out, "status", "retry");
        put_field(out, "error", reason);
        fputs("end 0\n\n", out);
        fflush(out);
        _exit(3);
    }
    if (!rc)
        rc = ana_analyze(c, store, rules, &keys, &err);
    if (rc) {
        char reason[512];
        snprintf(reason, sizeof reason, "%s: %s", cm_code_name(err.code), err.msg);
        put_field(out, "status", "failed");
        put_field(out, "error", reason);
    } else {
        put_field(out, "status", "ok");
        put_field(out, "dump_format", format_name(c->format));
        put_field(out, "signature", keys.signature);
        put_field(out, "bucket", keys.bucket);
        put_field(out, "crash_kind", keys.reason_class);
        put_field(out, "fault_module", keys.fault_module);
        put_field(out, "fault_module_version", keys.fault_module_version);
        put_field(out, "fault_point", keys.fault_point);
        put_field(out, "stack_hash", keys.stack_hash);
        put_field(out, "rules_version", keys.rules_version);
        put_field(out, "fault_key", keys.fault_key);
        for (size_t i = 0; i < c->module_count; i++) {
            const struct ana_module *m = &c->modules[i];
            char line[2048];
            snprintf(line, sizeof line, "%s\t%s\t%s\t%s\t%s\t%llx\t%llx\t%d",
                     ana_module_basename(m), m->version ? m->version : "",
                     m->debug_file ? m->debug_file : "", m->debug_id ? m->debug_id : "",
                     m->code_id ? m->code_id : "", (unsigned long long)m->base,
                     (unsigned long long)m->size, (int)i == c->main_module);
            for (char *p = line; *p; p++) /* names are data: no framing bytes inside fields */
                if (*p == '\n')
                    *p = ' ';
            put_field(out, "module", line);
        }
        char *json = ana_json_text(c, &keys, ANA_JSON_DWARF_INLINES);
        put_field(out, "processed_json", json);
        cm_free(json);
    }
    fputs("end 0\n\n", out);
    fflush(out);
    ana_crash_free(c);
}

/* AddressSanitizer reserves terabytes of address space for its shadow memory, so an address-space
 * limit makes every allocation of a sanitizer build fail: such builds keep the other limits. */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_BUILD 1
#endif
#endif
#ifndef ASAN_BUILD
#define ASAN_BUILD 0
#endif

static void confine(struct anad *d)
{
    struct rlimit core = { 0, 0 };
    setrlimit(RLIMIT_CORE, &core);
    if (d->conf.child_memory_bytes && !ASAN_BUILD) {
        struct rlimit as = { d->conf.child_memory_bytes, d->conf.child_memory_bytes };
        setrlimit(RLIMIT_AS, &as);
    }
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0); /* never outlive the daemon */
    signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the process group: the parent decides */
    /* Last: no network, no programs, no processes (ana_seccomp.c). */
    struct cm_err err = { 0 };
    if (anad_seccomp(ASAN_BUILD, &err) != CM_E_OK)
        cm_log(CM_LOG_WARN, "analyzer child runs without its system-call filter: %s", err.msg);
}

int anad_child_main(struct anad *d)
{
    confine(d);
    cm_log_set_name("triage-analyzer[child]");
    struct cm_err err = { 0 };
    struct ana_symstore *store = NULL;
    struct ana_symstore_opts opts;
    ana_symstore_opts_default(&opts);
    opts.dwarf_inlines = true; /* the signature expands inlined calls */
    if (d->conf.symbols_count &&
        ana_symstore_new((const char *const *)d->conf.symbols, d->conf.symbols_count, &opts,
                         &store, &err) != CM_E_OK) {
        cm_log(CM_LOG_ERROR, "cannot open symbol store: %s", err.msg);
        return 1;
    }
    struct ana_rules *own_rules = NULL;
    const struct ana_rules *rules = ana_rules_builtin();
    if (d->conf.rules[0]) {
        if (ana_rules_load(d->conf.rules, &own_rules, &err) != CM_E_OK) {
            cm_log(CM_LOG_ERROR, "cannot load signature rules: %s", err.msg);
            return 1;
        }
        rules = own_rules;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = 0;
        answer(stdout, d, store, rules, line);
    }
    free(line);
    ana_rules_free(own_rules);
    ana_symstore_free(store);
    return 0;
}
