/* mdmp_ref.c -- parse Breakpad's reference outputs for test_minidump.c (see mdmp_ref.h). */
#include "tests/analyzer/mdmp_ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/th.h"

static char *read_text(const char *path)
{
    size_t n;
    uint8_t *p = th_read(path, &n);
    char *s = realloc(p, n + 1);
    s[n] = 0;
    return s;
}

/* Copies field i of a '|'-separated line into out. */
static void field(const char *line, int i, char *out, size_t cap)
{
    const char *p = line;
    for (int k = 0; k < i && p; k++) {
        p = strchr(p, '|');
        p = p ? p + 1 : NULL;
    }
    size_t n = 0;
    if (p)
        n = strcspn(p, "|\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p ? p : "", n);
    out[n] = 0;
}

static uint64_t hex(const char *s) { return strtoull(s, NULL, 16); }

static void machine_line(struct mdref *r, const char *line)
{
    char tmp[64];
    if (strncmp(line, "OS|", 3) == 0) {
        field(line, 1, r->os, sizeof r->os);
        field(line, 2, r->os_ver, sizeof r->os_ver);
    } else if (strncmp(line, "CPU|", 4) == 0) {
        field(line, 1, r->cpu, sizeof r->cpu);
        field(line, 2, r->cpu_info, sizeof r->cpu_info);
        field(line, 3, tmp, sizeof tmp);
        r->cpu_count = (unsigned)strtoul(tmp, NULL, 10);
    } else if (strncmp(line, "Crash|", 6) == 0) {
        field(line, 1, r->reason, sizeof r->reason);
        field(line, 2, r->address, sizeof r->address);
        field(line, 3, r->thread, sizeof r->thread);
    } else if (strncmp(line, "Module|", 7) == 0) {
        if (r->module_count == sizeof r->modules / sizeof *r->modules)
            fail_msg("more reference modules than the test holds");
        struct mdref_module *m = &r->modules[r->module_count++];
        field(line, 1, m->name, sizeof m->name);
        field(line, 2, m->version, sizeof m->version);
        field(line, 3, m->debug_file, sizeof m->debug_file);
        field(line, 4, m->debug_id, sizeof m->debug_id);
        field(line, 5, tmp, sizeof tmp);
        m->base = hex(tmp);
        field(line, 6, tmp, sizeof tmp);
        m->end = hex(tmp);
        field(line, 7, tmp, sizeof tmp);
        m->main = strcmp(tmp, "1") == 0;
    }
}

/* "    eip = 0x0040429e   esp = 0x0012fe84 ..." */
static void register_line(struct mdref_thread *t, const char *line)
{
    const char *p = line;
    char name[16];
    unsigned long long v;
    int used;
    while (sscanf(p, " %15s = %llx%n", name, &v, &used) == 2) {
        if (t->nregs == sizeof t->regs / sizeof *t->regs)
            fail_msg("more frame-0 registers than the test holds");
        snprintf(t->regs[t->nregs].name, sizeof t->regs[t->nregs].name, "%s", name);
        t->regs[t->nregs++].value = v;
        p += used;
    }
}

/* The human report: crash parameters, uptime, and frame 0 of every thread. */
static void human(struct mdref *r, char *text)
{
    struct mdref_thread *t = NULL;
    bool in_params = false, in_frame0 = false;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned long long v;
        int idx;
        if (in_params && sscanf(line, "    value: %llx", &v) == 1) {
            if (r->nparams < 15)
                r->params[r->nparams++] = v;
            continue;
        }
        in_params = strcmp(line, "Crash parameters:") == 0;
        if (sscanf(line, "Process uptime: %llu seconds", &v) == 1) {
            r->has_uptime = true;
            r->uptime_s = v;
        } else if (sscanf(line, "Thread %d", &idx) == 1 && strncmp(line, "Thread ", 7) == 0) {
            if (r->thread_count == sizeof r->threads / sizeof *r->threads)
                fail_msg("more reference threads than the test holds");
            t = &r->threads[r->thread_count++];
            t->index = idx;
            t->crashed = strstr(line, "(crashed)") != NULL;
            in_frame0 = false;
        } else if (t && strncmp(line, " 0  ", 4) == 0) {
            in_frame0 = true;
        } else if (t && in_frame0 && strncmp(line, "    Found by:", 13) == 0) {
            in_frame0 = false;
            t = NULL;
        } else if (t && in_frame0) {
            register_line(t, line);
        }
    }
}

struct mdref *mdref_load(const char *name)
{
    struct mdref *r = calloc(1, sizeof *r);
    char rel[512];
    snprintf(rel, sizeof rel, "breakpad/reference/%s.stackwalk.machine_readable.out", name);
    char *text = read_text(th_corpus(rel));
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        machine_line(r, line);
    free(text);
    snprintf(rel, sizeof rel, "breakpad/reference/%s.stackwalk.out", name);
    text = read_text(th_corpus(rel));
    human(r, text);
    free(text);
    return r;
}

/* ---- minidump_dump ---- */

static struct mdump_block *new_block(struct mdump *d, const char *name)
{
    d->blocks = realloc(d->blocks, (d->n + 1) * sizeof *d->blocks);
    struct mdump_block *b = &d->blocks[d->n++];
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "%s", name);
    return b;
}

static void key_value(struct mdump_block *b, const char *line)
{
    const char *eq = strstr(line, " = ");
    if (!eq)
        return;
    if (b->n == sizeof b->keys / sizeof *b->keys)
        fail_msg("minidump_dump block %s has more keys than the test holds", b->name);
    const char *k = line + strspn(line, " ");
    size_t kn = (size_t)(eq - k);
    while (kn && k[kn - 1] == ' ')
        kn--;
    snprintf(b->keys[b->n], sizeof b->keys[b->n], "%.*s", (int)kn, k);
    snprintf(b->vals[b->n], sizeof b->vals[b->n], "%s", eq + 3); /* long hex values are cut */
    b->n++;
}

void mdump_load(const char *path, struct mdump *d)
{
    memset(d, 0, sizeof *d);
    char *text = read_text(path);
    struct mdump_block *b = NULL;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == ' ' && b) {
            key_value(b, line);
        } else if (strncmp(line, "0x", 2) == 0 && b) { /* a hex dump under "Stack"/"Memory" */
            b->data = strdup(line + 2);
        } else if (line[0] != ' ') {
            b = new_block(d, line);
        }
    }
    free(text);
}

void mdump_free(struct mdump *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->blocks[i].data);
    free(d->blocks);
}

const char *mdump_str(const struct mdump_block *b, const char *key)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->keys[i], key) == 0) {
            static _Thread_local char out[160];
            const char *v = b->vals[i];
            size_t n = strlen(v);
            if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
                snprintf(out, sizeof out, "%.*s", (int)(n - 2), v + 1);
            else
                snprintf(out, sizeof out, "%s", v);
            return out;
        }
    fail_msg("minidump_dump block %s has no key %s", b->name, key);
    return NULL;
}

uint64_t mdump_num(const struct mdump_block *b, const char *key)
{
    const char *v = mdump_str(b, key);
    return strncmp(v, "0x", 2) == 0 ? strtoull(v + 2, NULL, 16) : strtoull(v, NULL, 10);
}
