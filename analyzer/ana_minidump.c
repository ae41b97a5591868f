/* ana_minidump.c -- fill the crash model from an MDMP minidump: read MINIDUMP_HEADER and the
 * MINIDUMP_DIRECTORY, pick one entry per stream type, and hand each stream to its parser
 * (ana_mdmp_*.c) in an order where later streams can rely on earlier ones (SystemInfo names the
 * cpu the contexts need; threads exist before their names and the exception). Also the helpers
 * the parsers share: list counts, strings, and the growing region/mapping/annotation arrays.
 *
 * Format: Microsoft minidumpapiset.h ("MINIDUMP_HEADER", "MINIDUMP_DIRECTORY",
 * "MINIDUMP_STRING", "MINIDUMP_LOCATION_DESCRIPTOR"); Breakpad's minidump_format.h for its
 * extension streams. Only the header or the directory can fail the whole dump; everything after
 * them degrades into warnings. */
#include <string.h>

#include "analyzer/ana_int.h"

#define MD_SIGNATURE 0x504D444Du /* "MDMP" read little-endian */
#define MD_VERSION 0xA793u       /* MINIDUMP_VERSION: the low 16 bits of Version */
#define MD_HEADER_BYTES 32
#define MD_DIRENT_BYTES 12

/* Parsers in the order they run; each type's first directory entry is the one parsed. */
static const struct {
    uint32_t type;
    ana_mdmp_parser parse;
} parsers[] = {
    { ANA_MD_SYSTEM_INFO, ana__mdmp_system_info },
    { ANA_MD_MISC_INFO, ana__mdmp_misc_info },
    { ANA_MD_BREAKPAD_INFO, ana__mdmp_breakpad_info },
    { ANA_MD_THREAD_LIST, ana__mdmp_thread_list },
    { ANA_MD_THREAD_NAME_LIST, ana__mdmp_thread_names },
    { ANA_MD_MODULE_LIST, ana__mdmp_module_list },
    { ANA_MD_UNLOADED_MODULE_LIST, ana__mdmp_unloaded_modules },
    { ANA_MD_MEMORY_LIST, ana__mdmp_memory_list },
    { ANA_MD_MEMORY64_LIST, ana__mdmp_memory64_list },
    { ANA_MD_MEMORY_INFO_LIST, ana__mdmp_memory_info_list },
    { ANA_MD_EXCEPTION, ana__mdmp_exception },
    { ANA_MD_ASSERTION_INFO, ana__mdmp_assertion },
    { ANA_MD_CRASHPAD_INFO, ana__mdmp_crashpad_info },
    { ANA_MD_LINUX_CPU_INFO, ana__mdmp_linux_stream },
    { ANA_MD_LINUX_PROC_STATUS, ana__mdmp_linux_stream },
    { ANA_MD_LINUX_LSB_RELEASE, ana__mdmp_linux_stream },
    { ANA_MD_LINUX_CMD_LINE, ana__mdmp_linux_stream },
    { ANA_MD_LINUX_ENVIRON, ana__mdmp_linux_stream },
    { ANA_MD_LINUX_AUXV, ana__mdmp_linux_stream },
    { ANA_MD_LINUX_MAPS, ana__mdmp_linux_stream },
};
#define NPARSERS (sizeof parsers / sizeof *parsers)

static const struct {
    uint32_t type;
    const char *name;
} stream_names[] = {
    { 0, "UnusedStream" },           { 3, "ThreadList" },
    { 4, "ModuleList" },             { 5, "MemoryList" },
    { 6, "Exception" },              { 7, "SystemInfo" },
    { 8, "ThreadExList" },           { 9, "Memory64List" },
    { 10, "CommentA" },              { 11, "CommentW" },
    { 12, "HandleData" },            { 13, "FunctionTable" },
    { 14, "UnloadedModuleList" },    { 15, "MiscInfo" },
    { 16, "MemoryInfoList" },        { 17, "ThreadInfoList" },
    { 18, "HandleOperationList" },   { 19, "Token" },
    { 21, "SystemMemoryInfo" },      { 22, "ProcessVmCounters" },
    { 24, "ThreadNameList" },        { ANA_MD_BREAKPAD_INFO, "BreakpadInfo" },
    { ANA_MD_ASSERTION_INFO, "AssertionInfo" },
    { ANA_MD_LINUX_CPU_INFO, "LinuxCpuInfo" },
    { ANA_MD_LINUX_PROC_STATUS, "LinuxProcStatus" },
    { ANA_MD_LINUX_LSB_RELEASE, "LinuxLsbRelease" },
    { ANA_MD_LINUX_CMD_LINE, "LinuxCmdLine" },
    { ANA_MD_LINUX_ENVIRON, "LinuxEnviron" },
    { ANA_MD_LINUX_AUXV, "LinuxAuxv" },
    { ANA_MD_LINUX_MAPS, "LinuxMaps" },
    { ANA_MD_LINUX_DSO_DEBUG, "LinuxDsoDebug" },
    { ANA_MD_CRASHPAD_INFO, "CrashpadInfo" },
};

const char *ana__mdmp_stream_name(struct ana_crash *c, uint32_t type)
{
    for (size_t i = 0; i < sizeof stream_names / sizeof *stream_names; i++)
        if (stream_names[i].type == type)
            return stream_names[i].name;
    const char *s = ana__printf(c, "stream 0x%x", (unsigned)type);
    return s ? s : "stream";
}

/* ---- header and directory ---- */

struct header {
    uint32_t nstreams, dir_rva;
};

static enum cm_code read_header(struct ana_mdmp *m, struct header *h, struct cm_err *err)
{
    struct ana_crash *c = m->c;
    struct cm_cur cur = m->file;
    uint32_t sig, version, checksum, stamp;
    uint64_t flags;
    cm_cur_u32le(&cur, &sig);        /* MINIDUMP_HEADER.Signature */
    cm_cur_u32le(&cur, &version);    /* MINIDUMP_HEADER.Version */
    cm_cur_u32le(&cur, &h->nstreams); /* MINIDUMP_HEADER.NumberOfStreams */
    cm_cur_u32le(&cur, &h->dir_rva); /* MINIDUMP_HEADER.StreamDirectoryRva */
    cm_cur_u32le(&cur, &checksum);   /* MINIDUMP_HEADER.CheckSum */
    cm_cur_u32le(&cur, &stamp);      /* MINIDUMP_HEADER.TimeDateStamp */
    cm_cur_u64le(&cur, &flags);      /* MINIDUMP_HEADER.Flags */
    if (sig == 0x4D444D50u)          /* "PMDM": written big-endian */
        return cm_fail(err, CM_E_UNSUPPORTED,
                       "minidump: big-endian (PMDM) dumps are not supported");
    if (cur.failed)
        return cm_fail(err, CM_E_TRUNCATED, "minidump: header needs %d bytes, the file has %zu",
                       MD_HEADER_BYTES, c->byte_count);
    if (sig != MD_SIGNATURE)
        return cm_fail(err, CM_E_NOTDUMP, "minidump: signature 0x%08x is not MDMP",
                       (unsigned)sig);
    /* A byte-swapped version word means a dump whose magic and fields disagree on endianness. */
    if ((version & 0xFFFFu) != MD_VERSION)
        return cm_fail(err, CM_E_CORRUPT,
                       "minidump: header version 0x%08x does not carry MINIDUMP_VERSION 0xa793 "
                       "in its low 16 bits (mixed endianness or not a minidump)",
                       (unsigned)version);
    if (h->nstreams == 0)
        return cm_fail(err, CM_E_CORRUPT, "minidump: header lists no streams");
    c->dump_time = stamp;
    c->mdmp_flags = (uint32_t)flags;
    return CM_E_OK;
}

/* Checks that the whole declared directory lies in the file before anything is allocated by
 * its count (rust-minidump #381: a 35-byte file declaring 0xFFFFFFFF streams). */
static enum cm_code check_directory(struct ana_mdmp *m, const struct header *h, struct cm_err *err)
{
    size_t len = m->c->byte_count;
    uint64_t bytes = (uint64_t)h->nstreams * MD_DIRENT_BYTES;
    if (h->dir_rva > len) /* MINIDUMP_HEADER.StreamDirectoryRva */
        return cm_fail(err, CM_E_CORRUPT,
                       "minidump: stream directory at 0x%x lies past the end of the %zu-byte file",
                       (unsigned)h->dir_rva, len);
    if (bytes > len - h->dir_rva) /* NumberOfStreams x sizeof(MINIDUMP_DIRECTORY) */
        return cm_fail(err, CM_E_CORRUPT,
                       "minidump: stream directory at 0x%x of %u entries (%llu bytes) runs past "
                       "the end of the %zu-byte file",
                       (unsigned)h->dir_rva, (unsigned)h->nstreams, (unsigned long long)bytes,
                       len);
    return CM_E_OK;
}

static int parser_slot(uint32_t type)
{
    for (size_t i = 0; i < NPARSERS; i++)
        if (parsers[i].type == type)
            return (int)i;
    return -1;
}

/* Reads the directory into c->streams and picks the entry each parser gets: the first of its
 * type (a later duplicate is ignored with a warning, so every run gives the same answer). */
static enum cm_code read_directory(struct ana_mdmp *m, const struct header *h, int picks[],
                                   struct cm_err *err)
{
    struct ana_crash *c = m->c;
    uint32_t n = h->nstreams;
    if (n > c->limits.max_streams) {
        ana__warn(c, "minidump: %u streams exceed the limit of %u; the rest are ignored",
                  (unsigned)n, (unsigned)c->limits.max_streams);
        n = c->limits.max_streams;
    }
    c->streams = ana__calloc(c, n ? n : 1, sizeof *c->streams);
    if (!c->streams)
        return cm_fail(err, CM_E_NOMEM, "minidump: cannot allocate %u directory entries",
                       (unsigned)n);
    struct cm_cur dir;
    cm_cur_window(&m->file, h->dir_rva, (uint64_t)n * MD_DIRENT_BYTES, &dir);
    for (uint32_t i = 0; i < n; i++) {
        struct ana_stream *e = &c->streams[i];
        cm_cur_u32le(&dir, &e->type); /* MINIDUMP_DIRECTORY.StreamType */
        cm_cur_u32le(&dir, &e->size); /* MINIDUMP_DIRECTORY.Location.DataSize */
        cm_cur_u32le(&dir, &e->rva);  /* MINIDUMP_DIRECTORY.Location.Rva */
        int slot = parser_slot(e->type);
        if (slot < 0)
            continue;
        if (picks[slot] >= 0) {
            ana__warn(c, "minidump: stream %u duplicates %s (stream %d); the first is used",
                      (unsigned)i, ana__mdmp_stream_name(c, e->type), picks[slot]);
            continue;
        }
        picks[slot] = (int)i;
    }
    c->stream_count = n;
    return CM_E_OK;
}

/* Runs one parser on its stream, after checking the stream's location against the file. */
static enum cm_code run_parser(struct ana_mdmp *m, size_t slot, int index, struct cm_err *err)
{
    struct ana_crash *c = m->c;
    const struct ana_stream *e = &c->streams[index];
    const char *name = ana__mdmp_stream_name(c, e->type);
    struct ana_mdmp_stream s = { .type = e->type, .rva = e->rva, .size = e->size };
    if (e->size == 0) {
        ana__warn(c, "minidump: stream %d (%s) is empty; skipped", index, name);
        return CM_E_OK;
    }
    /* MINIDUMP_DIRECTORY.Location: Rva + DataSize inside the file (subtracted, never added) */
    if (!cm_cur_window(&m->file, e->rva, e->size, &s.cur)) {
        ana__warn(c, "minidump: stream %d (%s) at 0x%x of %u bytes lies outside the %zu-byte "
                     "file; skipped",
                  index, name, (unsigned)e->rva, (unsigned)e->size, c->byte_count);
        return CM_E_OK;
    }
    return parsers[slot].parse(m, &s, err);
}

/* With no exception, a Breakpad client names the thread that asked for the dump. */
static void requesting_thread(struct ana_mdmp *m)
{
    struct ana_crash *c = m->c;
    if (m->has_exception || !(m->breakpad_validity & ANA_MD_BREAKPAD_REQUESTING_VALID))
        return;
    for (size_t i = 0; i < c->thread_count; i++)
        if (c->threads[i].tid == c->breakpad_requesting_tid) {
            c->crash_info.crashing_thread = (int)i;
            c->crash_info.crashing_tid = c->threads[i].tid;
            return;
        }
}

enum cm_code ana__minidump_parse(struct ana_crash *c, struct cm_err *err)
{
    struct ana_mdmp m = { .c = c, .arch = ANA_MD_ARCH_UNKNOWN };
    m.file = cm_cur_make(c->bytes, c->byte_count);
    struct header h;
    enum cm_code rc = read_header(&m, &h, err);
    if (rc || (rc = check_directory(&m, &h, err)))
        return rc;
    int picks[NPARSERS];
    for (size_t i = 0; i < NPARSERS; i++)
        picks[i] = -1;
    if ((rc = read_directory(&m, &h, picks, err)))
        return rc;
    if (picks[0] < 0)
        ana__warn(c, "minidump: no SystemInfo stream; cpu and os are unknown");
    for (size_t i = 0; i < NPARSERS; i++)
        if (picks[i] >= 0 && (rc = run_parser(&m, i, picks[i], err)))
            return rc;
    if (c->module_count) /* Breakpad's rule: the first module of the list is the main one */
        c->main_module = 0;
    requesting_thread(&m);
    return CM_E_OK;
}

/* ---- helpers for the stream parsers ---- */

bool ana__mdmp_list(struct ana_mdmp *m, const struct ana_mdmp_stream *s, size_t entry_size,
                    uint32_t cap, const char *what, uint32_t *count, struct cm_cur *entries)
{
    struct ana_crash *c = m->c;
    const char *name = ana__mdmp_stream_name(c, s->type);
    struct cm_cur cur = s->cur;
    uint32_t n;
    if (!cm_cur_u32le(&cur, &n)) { /* Number* field at the start of the list stream */
        ana__warn(c, "minidump: %s at 0x%x: %u bytes cannot hold its count; skipped", name,
                  (unsigned)s->rva, (unsigned)s->size);
        return false;
    }
    size_t left = cm_cur_left(&cur);
    /* Some writers pad the count to 8 bytes; the size tells (Breakpad does the same). */
    if (left >= 4 && (left - 4) % entry_size == 0 && (left - 4) / entry_size == n &&
        left % entry_size != 0) {
        cm_cur_skip(&cur, 4);
        left -= 4;
    }
    if (n > left / entry_size) {
        ana__warn(c, "minidump: %s at 0x%x: %u %s of %zu bytes exceed the stream's %u bytes; "
                     "list skipped",
                  name, (unsigned)s->rva, (unsigned)n, what, entry_size, (unsigned)s->size);
        return false;
    }
    if (n > cap) {
        ana__warn(c, "minidump: %s at 0x%x: %u %s exceed the limit of %u; the rest are ignored",
                  name, (unsigned)s->rva, (unsigned)n, what, (unsigned)cap);
        n = cap;
    }
    *count = n;
    cm_cur_window(&cur, cur.off, (uint64_t)n * entry_size, entries);
    return true;
}

/* Caps a string's byte length at max_string_bytes (warning), or returns false when the bytes
 * are not in the file. */
static bool string_window(struct ana_mdmp *m, uint64_t rva, const char *what, uint32_t unit,
                          struct cm_cur *out)
{
    struct ana_crash *c = m->c;
    uint32_t len;
    if (!cm_cur_peek_u32le(&m->file, rva, &len) ||
        !cm_cur_window(&m->file, rva + 4, len, out)) { /* MINIDUMP_STRING.Length */
        ana__warn(c, "minidump: %s: string at 0x%llx of %u bytes lies outside the file", what,
                  (unsigned long long)rva, (unsigned)len);
        return false;
    }
    if (len > c->limits.max_string_bytes) {
        ana__warn(c, "minidump: %s: string at 0x%llx of %u bytes cut to %u", what,
                  (unsigned long long)rva, (unsigned)len, (unsigned)c->limits.max_string_bytes);
        out->len = c->limits.max_string_bytes / unit * unit;
    }
    return true;
}

const char *ana__mdmp_string(struct ana_mdmp *m, uint64_t rva, const char *what)
{
    struct cm_cur s;
    if (!string_window(m, rva, what, 2, &s))
        return NULL;
    /* MINIDUMP_STRING.Buffer is UTF-16LE; an odd last byte is dropped by the converter. */
    return ana__utf16le_to_utf8(m->c, s.p, s.len);
}

const char *ana__mdmp_utf8(struct ana_mdmp *m, uint64_t rva, const char *what)
{
    struct cm_cur s;
    if (!string_window(m, rva, what, 1, &s))
        return NULL;
    const char *nul = memchr(s.p, 0, s.len); /* stop at an embedded NUL */
    return ana__strndup(m->c, (const char *)s.p, nul ? (size_t)(nul - (const char *)s.p) : s.len);
}

/* Grows an arena array to hold one more element; the old copy stays in the arena. */
static bool grow(struct ana_crash *c, void **arr, size_t count, size_t *cap, size_t elem)
{
    if (count < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *n = ana__calloc(c, ncap, elem);
    if (!n)
        return false;
    if (count)
        memcpy(n, *arr, count * elem);
    *arr = n;
    *cap = ncap;
    return true;
}

bool ana__mdmp_add_region(struct ana_mdmp *m, uint64_t base, uint64_t size, uint64_t rva,
                          const char *what)
{
    struct ana_crash *c = m->c;
    struct cm_cur data;
    if (size == 0)
        return true;
    if (!cm_cur_window(&m->file, rva, size, &data)) { /* MINIDUMP_MEMORY_DESCRIPTOR.Memory */
        ana__warn(c, "minidump: %s: memory at 0x%llx (0x%llx bytes) has its bytes at 0x%llx, "
                     "outside the %zu-byte file; dropped",
                  what, (unsigned long long)base, (unsigned long long)size,
                  (unsigned long long)rva, c->byte_count);
        return true;
    }
    if (base + size < base) { /* StartOfMemoryRange + DataSize wraps 2^64 */
        ana__warn(c, "minidump: %s: memory at 0x%llx of 0x%llx bytes wraps the address space; "
                     "dropped",
                  what, (unsigned long long)base, (unsigned long long)size);
        return true;
    }
    if (c->region_count >= c->limits.max_regions) {
        if (!m->regions_cut)
            ana__warn(c, "minidump: memory regions beyond the limit of %u are dropped",
                      (unsigned)c->limits.max_regions);
        m->regions_cut = true;
        return true;
    }
    if (!grow(c, (void **)&c->regions, c->region_count, &m->region_cap, sizeof *c->regions))
        return false;
    c->regions[c->region_count++] = (struct ana_region){ base, size, data.p };
    return true;
}

bool ana__mdmp_add_mapping(struct ana_mdmp *m, const struct ana_mapping *map)
{
    struct ana_crash *c = m->c;
    if (!grow(c, (void **)&c->mappings, c->mapping_count, &m->mapping_cap, sizeof *c->mappings))
        return false;
    c->mappings[c->mapping_count++] = *map;
    return true;
}

bool ana__mdmp_add_annotation(struct ana_mdmp *m, const char *key, const char *value,
                              const char *module)
{
    struct ana_crash *c = m->c;
    if (c->annotation_count >= c->limits.max_annotations) {
        if (!m->annotations_cut)
            ana__warn(c, "minidump: annotations beyond the limit of %u are dropped",
                      (unsigned)c->limits.max_annotations);
        m->annotations_cut = true;
        return true;
    }
    if (!grow(c, (void **)&c->annotations, c->annotation_count, &m->annotation_cap,
              sizeof *c->annotations))
        return false;
    c->annotations[c->annotation_count++] = (struct ana_annotation){ key, value, module };
    return true;
}

enum ana_cpu ana__mdmp_cpu(uint16_t arch)
{
    switch (arch) {
    case ANA_MD_ARCH_X86:
    case ANA_MD_ARCH_X86_WIN64: /* a 32-bit process on 64-bit Windows */
        return ANA_CPU_X86;
    case ANA_MD_ARCH_AMD64: return ANA_CPU_AMD64;
    case ANA_MD_ARCH_ARM: return ANA_CPU_ARM;
    case ANA_MD_ARCH_ARM64:
    case ANA_MD_ARCH_ARM64_OLD:
        return ANA_CPU_ARM64;
    case ANA_MD_ARCH_PPC: return ANA_CPU_PPC;
    case ANA_MD_ARCH_PPC64: return ANA_CPU_PPC64;
    case ANA_MD_ARCH_MIPS: return ANA_CPU_MIPS;
    case ANA_MD_ARCH_MIPS64: return ANA_CPU_MIPS64;
    case ANA_MD_ARCH_SPARC: return ANA_CPU_SPARC;
    case ANA_MD_ARCH_RISCV64: return ANA_CPU_RISCV64;
    default: return ANA_CPU_UNKNOWN;
    }
}
