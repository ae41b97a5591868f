/* elfcore_ref.c -- runs elfutils on a core and parses what it prints (elfutils 0.188 formats:
 * src/readelf.c handle_core_item / handle_file_note / handle_siginfo_note, src/unstrip.c). */
#include "tests/analyzer/elfcore_ref.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/th.h"

static char *run(char *const argv[])
{
    char *out = NULL, *errout = NULL;
    int st = th_run(argv, &out, &errout, 120);
    if (st != 0)
        fail_msg("%s %s %s exited %d: %s", argv[0], argv[1], argv[2], st, errout);
    free(errout);
    return out;
}

static const char *skip_spaces(const char *s)
{
    while (*s == ' ')
        s++;
    return s;
}

static void append(char **text, const char *line)
{
    size_t a = strlen(*text), b = strlen(line);
    *text = realloc(*text, a + b + 2);
    memcpy(*text + a, line, b);
    (*text)[a + b] = '\n';
    (*text)[a + b + 1] = 0;
}

static void start_note(struct ref_core *r, const char *type)
{
    if (strcmp(type, "PRSTATUS") == 0) {
        if (r->threads == REF_MAX_THREADS)
            fail_msg("more than %d threads in eu-readelf output", REF_MAX_THREADS);
        r->regs[r->threads++] = calloc(1, 1);
    }
    r->has_siginfo |= strcmp(type, "SIGINFO") == 0;
    r->has_prpsinfo |= strcmp(type, "PRPSINFO") == 0;
}

static void file_line(struct ref_core *r, const char *s)
{
    long count;
    int n = 0;
    struct ref_file f = { 0 };
    if (sscanf(s, "%ld files:%n", &count, &n) == 1 && n > 0) {
        r->file_count = count;
    } else if (sscanf(s, "%" SCNx64 "-%" SCNx64 " %" SCNx64 " %*d%n", &f.start, &f.end,
                      &f.offset, &n) == 3 && n > 0) {
        if (r->nfiles == REF_MAX_FILES)
            fail_msg("more than %d NT_FILE lines", REF_MAX_FILES);
        snprintf(f.path, sizeof f.path, "%s", skip_spaces(s + n));
        r->files[r->nfiles++] = f;
    }
}

static void note_line(struct ref_core *r, const char *type, const char *line)
{
    const char *s = skip_spaces(line), *p;
    if (strcmp(type, "PRSTATUS") == 0 && r->threads) {
        append(&r->regs[r->threads - 1], line);
        if (strncmp(s, "pid: ", 5) == 0)
            r->tids[r->threads - 1] = (uint32_t)strtoul(s + 5, NULL, 10);
    } else if (strcmp(type, "SIGINFO") == 0) {
        if (sscanf(s, "si_signo: %d, si_errno: %*d, si_code: %d", &r->signo, &r->code) == 2)
            return;
        if (strncmp(s, "fault address: ", 15) == 0) {
            r->has_fault = true;
            r->fault = strtoull(s + 15, NULL, 0);
        }
    } else if (strcmp(type, "PRPSINFO") == 0) {
        if ((p = strstr(line, " pid: ")))
            r->pid = (uint32_t)strtoul(p + 6, NULL, 10);
        if (strncmp(s, "fname: ", 7) == 0) /* psargs may follow on the same line */
            snprintf(r->fname, sizeof r->fname, "%.*s", (int)strcspn(s + 7, ","), s + 7);
    } else if (strcmp(type, "AUXV") == 0) {
        if (strncmp(s, "SYSINFO_EHDR: ", 14) == 0) {
            r->has_sysinfo_ehdr = true;
            r->sysinfo_ehdr = strtoull(s + 14, NULL, 0);
        } else if (strncmp(s, "ENTRY: ", 7) == 0) {
            r->has_entry = true;
            r->entry = strtoull(s + 7, NULL, 0);
        }
    } else if (strcmp(type, "FILE") == 0) {
        file_line(r, s);
    }
}

/* A note starts with a line indented by two: owner, descriptor size, type. */
static void parse_notes(char *text, struct ref_core *r)
{
    char type[64] = "", owner[32], *save = NULL;
    size_t size;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, "  ", 2) == 0 && l[2] != ' ' &&
            sscanf(l, " %31s %zu %63[^\n]", owner, &size, type) == 3) {
            start_note(r, type);
            continue;
        }
        note_line(r, type, l);
    }
}

/* "  LOAD 0x002000 0x000055b88cb87000 0x0000000000000000 0x001000 0x001000 R E 0x1000" */
static void parse_loads(char *text, struct ref_core *r)
{
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        struct ref_load ld = { 0 };
        int n = 0;
        if (sscanf(l, " LOAD %" SCNx64 " %" SCNx64 " %*x %" SCNx64 " %" SCNx64 "%n",
                   &ld.offset, &ld.vaddr, &ld.filesz, &ld.memsz, &n) != 4 || n == 0 ||
            strlen(l) < (size_t)n + 4)
            continue;
        ld.r = l[n + 1] == 'R';
        ld.w = l[n + 2] == 'W';
        ld.x = l[n + 3] == 'E';
        if (r->nloads == REF_MAX_LOADS)
            fail_msg("more than %d LOAD lines", REF_MAX_LOADS);
        r->loads[r->nloads++] = ld;
    }
}

/* "0x55b88cb87000+0x5000 967c...e9@0x55b88cb87368 - - /opt/crashlab/bin/quota" */
static void parse_ids(char *text, struct ref_core *r)
{
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        struct ref_id id = { 0 };
        if (sscanf(l, "%" SCNx64 "+%" SCNx64 " %128[0-9a-f]@", &id.base, &id.size,
                   id.build_id) != 3)
            continue;
        if (r->nids == REF_MAX_IDS)
            fail_msg("more than %d modules from eu-unstrip", REF_MAX_IDS);
        r->ids[r->nids++] = id;
    }
}

struct ref_core *ref_read(const char *path, bool with_unstrip)
{
    struct ref_core *r = calloc(1, sizeof *r);
    char core_arg[4200];
    char *notes_argv[] = { (char *)EU_READELF, "-n", (char *)path, NULL };
    char *loads_argv[] = { (char *)EU_READELF, "-l", (char *)path, NULL };
    char *ids_argv[] = { (char *)EU_UNSTRIP, "-n", core_arg, NULL };
    snprintf(core_arg, sizeof core_arg, "--core=%s", path);
    r->file_count = -1;
    char *text = run(notes_argv);
    parse_notes(text, r);
    free(text);
    text = run(loads_argv);
    parse_loads(text, r);
    free(text);
    if (with_unstrip) {
        text = run(ids_argv);
        parse_ids(text, r);
        free(text);
    }
    return r;
}

void ref_free(struct ref_core *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->threads; i++)
        free(r->regs[i]);
    free(r);
}

bool ref_reg(const struct ref_core *r, size_t thread, const char *name, uint64_t *v)
{
    char key[40];
    snprintf(key, sizeof key, " %s:", name);
    const char *p = thread < r->threads ? strstr(r->regs[thread], key) : NULL;
    if (!p)
        return false;
    p = skip_spaces(p + strlen(key));
    *v = *p == '-' ? (uint64_t)strtoll(p, NULL, 0) : strtoull(p, NULL, 0);
    return true;
}
