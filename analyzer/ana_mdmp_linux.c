/* ana_mdmp_linux.c -- the Linux streams Breakpad and Crashpad clients copy from /proc and /etc
 * into a minidump: cpuinfo, status (the pid when MiscInfo gave none), lsb-release, cmdline
 * (the command line and argv[0]), environ, auxv (type/value pairs) and maps (also turned into
 * protection mappings when no MemoryInfoList gave any). The DSO-debug stream (the r_debug link
 * map) is not read: the ModuleList already names the same objects with their ranges.
 *
 * Formats: Breakpad minidump_format.h (MD_LINUX_* stream types); proc(5) for the text of
 * /proc/PID/{status,cmdline,environ,auxv,maps}; the auxv pairs are words of the cpu's width. */
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana_int.h"

/* Text streams are kept whole up to this many times max_string_bytes (1 MiB by default). */
#define TEXT_CAP_FACTOR 16u

/* A copy of the stream's bytes as a C string; embedded NULs become sep (0: the text ends at the
 * first NUL); a trailing separator run is trimmed. */
static char *text_of(struct ana_mdmp *m, const struct ana_mdmp_stream *s, char sep)
{
    struct ana_crash *c = m->c;
    size_t n = s->size, cap = (size_t)c->limits.max_string_bytes * TEXT_CAP_FACTOR;
    if (n > cap) {
        ana__warn(c, "minidump: %s at 0x%x: %zu bytes of text cut to %zu",
                  ana__mdmp_stream_name(c, s->type), (unsigned)s->rva, n, cap);
        n = cap;
    }
    char *t = ana__alloc(c, n + 1);
    if (!t)
        return NULL;
    memcpy(t, s->cur.p, n);
    t[n] = 0;
    for (size_t i = 0; i < n; i++)
        if (t[i] == 0) {
            if (!sep) {
                n = i;
                break;
            }
            t[i] = sep;
        }
    while (n && sep && t[n - 1] == sep)
        t[--n] = 0;
    return t;
}

/* "Pid:\t1234" in /proc/PID/status. */
static void pid_from_status(struct ana_crash *c, const char *status)
{
    const char *p = status;
    while (p && strncmp(p, "Pid:", 4) != 0) {
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    if (!p)
        return;
    unsigned long v = strtoul(p + 4, NULL, 10);
    if (!c->pid && v && v <= 0xFFFFFFFFul)
        c->pid = (uint32_t)v;
}

static enum cm_code read_auxv(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                              struct cm_err *err)
{
    struct ana_crash *c = m->c;
    size_t word = ana_cpu_ptr_bytes(c->system_info.cpu), pairs = s->size / (2 * word);
    c->auxv = ana__calloc(c, pairs ? 2 * pairs : 1, sizeof *c->auxv);
    if (!c->auxv)
        return cm_fail(err, CM_E_NOMEM, "minidump: cannot allocate %zu auxv pairs", pairs);
    struct cm_cur cur = s->cur;
    size_t n = 0;
    for (; n < pairs; n++) {
        uint64_t type, val;
        if (word == 4) { /* Elf32_auxv_t */
            uint32_t t32, v32;
            cm_cur_u32le(&cur, &t32);
            cm_cur_u32le(&cur, &v32);
            type = t32, val = v32;
        } else { /* Elf64_auxv_t */
            cm_cur_u64le(&cur, &type);
            cm_cur_u64le(&cur, &val);
        }
        if (type == 0) /* AT_NULL ends the vector */
            break;
        c->auxv[2 * n] = type;
        c->auxv[2 * n + 1] = val;
    }
    c->auxv_count = n;
    return CM_E_OK;
}

/* One maps line: "start-end perms offset dev inode [path]". False if it does not parse. */
static bool parse_maps_line(struct ana_crash *c, const char *line, size_t len,
                            struct ana_mapping *map)
{
    char buf[1024];
    if (len >= sizeof buf)
        len = sizeof buf - 1; /* a longer path is cut; the numbers come first */
    memcpy(buf, line, len);
    buf[len] = 0;
    char *p = buf, *end;
    uint64_t start = strtoull(p, &end, 16);
    if (end == p || *end != '-')
        return false;
    uint64_t stop = strtoull(p = end + 1, &end, 16);
    if (end == p || *end != ' ' || stop <= start)
        return false;
    p = end + 1;
    if (strlen(p) < 5 || p[4] != ' ')
        return false;
    map->base = start;
    map->size = stop - start;
    map->prot = (p[0] == 'r' ? ANA_PROT_R : 0) | (p[1] == 'w' ? ANA_PROT_W : 0) |
                (p[2] == 'x' ? ANA_PROT_X : 0);
    p += 5;
    uint64_t offset = strtoull(p, &end, 16);
    if (end == p || *end != ' ')
        return false;
    p = strchr(end + 1, ' '); /* past the device "major:minor" */
    if (!p)
        return false;
    strtoull(p, &end, 10); /* the inode */
    if (end == p)
        return false;
    while (*end == ' ' || *end == '\t')
        end++;
    /* The path, or a pseudo-name such as [stack] or [heap]; nothing for anonymous memory. */
    map->name = *end ? ana__strndup(c, end, strlen(end)) : NULL;
    map->file_offset = map->name ? offset : 0;
    return true;
}

static enum cm_code read_maps(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                              struct cm_err *err)
{
    struct ana_crash *c = m->c;
    if (c->mapping_count) /* MemoryInfoList already described the address space */
        return CM_E_OK;
    const char *p = (const char *)s->cur.p, *end = p + s->size;
    size_t lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        struct ana_mapping map = { 0 };
        lineno++;
        if (len && !parse_maps_line(c, p, len, &map)) {
            ana__warn(c, "minidump: LinuxMaps at 0x%x: line %zu does not parse; skipped",
                      (unsigned)s->rva, lineno);
        } else if (len) {
            if (c->mapping_count >= c->limits.max_regions) {
                ana__warn(c, "minidump: LinuxMaps: mappings beyond the limit of %u are ignored",
                          (unsigned)c->limits.max_regions);
                break;
            }
            if (!ana__mdmp_add_mapping(m, &map))
                return cm_fail(err, CM_E_NOMEM, "minidump: out of memory reading LinuxMaps");
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    return CM_E_OK;
}

static void read_cmdline(struct ana_crash *c, const struct ana_mdmp_stream *s, char *text)
{
    c->linux_cmdline = text;
    c->command_line = text;
    if (!c->process_name) { /* argv[0]: the bytes before the first NUL */
        const char *nul = memchr(s->cur.p, 0, s->size);
        size_t n = nul ? (size_t)(nul - (const char *)s->cur.p) : s->size;
        size_t have = strlen(text);
        c->process_name = ana__strndup(c, text, n < have ? n : have);
    }
}

enum cm_code ana__mdmp_linux_stream(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                    struct cm_err *err)
{
    struct ana_crash *c = m->c;
    if (s->type == ANA_MD_LINUX_AUXV)
        return read_auxv(m, s, err);
    char sep = s->type == ANA_MD_LINUX_CMD_LINE ? ' ' : s->type == ANA_MD_LINUX_ENVIRON ? '\n' : 0;
    char *text = text_of(m, s, sep);
    if (!text)
        return cm_fail(err, CM_E_NOMEM, "minidump: out of memory reading %s",
                       ana__mdmp_stream_name(c, s->type));
    switch (s->type) {
    case ANA_MD_LINUX_CPU_INFO: c->linux_cpuinfo = text; break;
    case ANA_MD_LINUX_PROC_STATUS:
        c->linux_status = text;
        pid_from_status(c, text);
        break;
    case ANA_MD_LINUX_LSB_RELEASE: c->linux_lsb_release = text; break;
    case ANA_MD_LINUX_CMD_LINE: read_cmdline(c, s, text); break;
    case ANA_MD_LINUX_ENVIRON: c->linux_environ = text; break;
    case ANA_MD_LINUX_MAPS:
        c->linux_maps = text;
        return read_maps(m, s, err);
    default: break;
    }
    return CM_E_OK;
}
