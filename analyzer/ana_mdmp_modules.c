/* ana_mdmp_modules.c -- the MDMP ModuleList and UnloadedModuleList: module ranges and paths,
 * VS_FIXEDFILEINFO versions, and the debug identity from the CodeView record, written the way
 * Breakpad writes it:
 *   PDB70 ("RSDS"): debug_id = GUID as %08X%04X%04X + 8 bytes %02X + age, debug_file = the PDB;
 *   PDB20 ("NB10"): debug_id = signature %08X + age;
 *   ELF ("BpEL", Breakpad/Crashpad): code_id = the GNU build id in lower-case hex; debug_id =
 *     the build id's first 16 bytes (zero-padded) read as a GUID (data1..data3 little-endian)
 *     with age 0; debug_file = the module's own file name.
 * The GUID is upper-case hex, the age lower-case (%x), exactly as Breakpad's processor prints
 * it: crashme.pdb in the corpus has age 0x1c and Breakpad's debug id ends in "1c". Symbol stores
 * written by dump_syms use upper case, so a symbol lookup should compare debug ids
 * case-insensitively.
 * code_id for Windows modules: TimeDateStamp %08X followed by SizeOfImage %x.
 *
 * Formats: minidumpapiset.h "MINIDUMP_MODULE_LIST", "MINIDUMP_MODULE",
 * "MINIDUMP_UNLOADED_MODULE_LIST"; verrsrc.h "VS_FIXEDFILEINFO"; Breakpad minidump_format.h
 * "MDCVInfoPDB70", "MDCVInfoPDB20", "MDCVInfoELF", "MDImageDebugMisc". */
#include <string.h>

#include "analyzer/ana_int.h"

#define MD_MODULE_BYTES 108
#define MD_UNLOADED_BYTES 24
#define VS_FFI_SIGNATURE 0xFEEF04BDu
#define VS_FFI_STRUCVERSION 0x00010000u
#define CV_PDB70 0x53445352u /* "RSDS" */
#define CV_PDB20 0x3031424Eu /* "NB10" */
#define CV_ELF 0x4270454Cu   /* "BpEL" */

struct raw_module {
    uint64_t base;
    uint32_t size, checksum, stamp, name_rva;
    uint32_t ffi[13]; /* VS_FIXEDFILEINFO */
    uint32_t cv_size, cv_rva, misc_size, misc_rva;
};

static void read_raw(struct cm_cur *e, struct raw_module *r)
{
    uint64_t reserved;
    cm_cur_u64le(e, &r->base);     /* MINIDUMP_MODULE.BaseOfImage */
    cm_cur_u32le(e, &r->size);     /* .SizeOfImage */
    cm_cur_u32le(e, &r->checksum); /* .CheckSum */
    cm_cur_u32le(e, &r->stamp);    /* .TimeDateStamp */
    cm_cur_u32le(e, &r->name_rva); /* .ModuleNameRva */
    for (int i = 0; i < 13; i++)
        cm_cur_u32le(e, &r->ffi[i]); /* .VersionInfo */
    cm_cur_u32le(e, &r->cv_size);    /* .CvRecord.DataSize */
    cm_cur_u32le(e, &r->cv_rva);     /* .CvRecord.Rva */
    cm_cur_u32le(e, &r->misc_size);  /* .MiscRecord.DataSize */
    cm_cur_u32le(e, &r->misc_rva);   /* .MiscRecord.Rva */
    cm_cur_u64le(e, &reserved);      /* .Reserved0 */
    cm_cur_u64le(e, &reserved);      /* .Reserved1 */
}

static const char *base_name(struct ana_crash *c, const char *path, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++)
        if (path[i] == '/' || path[i] == '\\')
            start = i + 1;
    return ana__strndup(c, path + start, n - start);
}

static bool is_windows(const struct ana_mdmp *m)
{
    return m->has_system_info &&
           (m->platform == ANA_MD_OS_WIN32_NT || m->platform == ANA_MD_OS_WIN32_WINDOWS);
}

/* The PDB name after the fixed part of a CodeView record: up to its NUL, within the record. */
static const char *pdb_name(struct ana_crash *c, struct cm_cur *cv)
{
    size_t n = cm_cur_left(cv);
    const char *p = (const char *)cv->p + cv->off;
    const char *nul = memchr(p, 0, n);
    n = nul ? (size_t)(nul - p) : n;
    if (n > c->limits.max_string_bytes)
        n = c->limits.max_string_bytes;
    return n ? base_name(c, p, n) : NULL;
}

static void cv_pdb70(struct ana_crash *c, struct cm_cur *cv, struct ana_module *mod)
{
    uint32_t d1, age;
    uint16_t d2, d3;
    uint8_t d4[8];
    cm_cur_u32le(cv, &d1);           /* MDCVInfoPDB70.signature.data1 */
    cm_cur_u16le(cv, &d2);           /* .signature.data2 */
    cm_cur_u16le(cv, &d3);           /* .signature.data3 */
    cm_cur_bytes(cv, d4, sizeof d4); /* .signature.data4 */
    cm_cur_u32le(cv, &age);          /* .age */
    if (cv->failed)
        return;
    mod->debug_id = ana__printf(c, "%08X%04X%04X%02X%02X%02X%02X%02X%02X%02X%02X%x",
                                (unsigned)d1, (unsigned)d2, (unsigned)d3, d4[0], d4[1], d4[2],
                                d4[3], d4[4], d4[5], d4[6], d4[7], (unsigned)age);
    mod->debug_file = pdb_name(c, cv); /* .pdb_file_name */
}

static void cv_pdb20(struct ana_crash *c, struct cm_cur *cv, struct ana_module *mod)
{
    uint32_t offset, sig, age;
    cm_cur_u32le(cv, &offset); /* MDCVInfoPDB20.cv_header.offset */
    cm_cur_u32le(cv, &sig);    /* .signature */
    cm_cur_u32le(cv, &age);    /* .age */
    if (cv->failed)
        return;
    mod->debug_id = ana__printf(c, "%08X%x", (unsigned)sig, (unsigned)age);
    mod->debug_file = pdb_name(c, cv); /* .pdb_file_name */
}

static void cv_elf(struct ana_crash *c, struct cm_cur *cv, struct ana_module *mod)
{
    size_t n = cm_cur_left(cv); /* MDCVInfoELF.build_id: the rest of the record */
    const uint8_t *id = cv->p + cv->off;
    uint8_t g[16] = { 0 };
    memcpy(g, id, n < sizeof g ? n : sizeof g);
    mod->debug_id =
        ana__printf(c, "%02X%02X%02X%02X%02X%02X%02X%02X%02X%02X%02X%02X%02X%02X%02X%02X0", g[3],
                    g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12],
                    g[13], g[14], g[15]);
    if (n > c->limits.max_string_bytes / 2)
        n = c->limits.max_string_bytes / 2;
    char *hex = ana__alloc(c, 2 * n + 1);
    if (hex) {
        for (size_t i = 0; i < n; i++) {
            hex[2 * i] = "0123456789abcdef"[id[i] >> 4];
            hex[2 * i + 1] = "0123456789abcdef"[id[i] & 15];
        }
        hex[2 * n] = 0;
        mod->code_id = hex;
    }
    mod->build_id = n ? id : NULL;
    mod->build_id_len = n;
    mod->debug_file = base_name(c, mod->path, strlen(mod->path));
}

static void read_codeview(struct ana_mdmp *m, uint32_t i, const struct raw_module *r,
                          struct ana_module *mod)
{
    struct ana_crash *c = m->c;
    struct cm_cur cv;
    uint32_t sig;
    if (r->cv_size == 0)
        return;
    if (!cm_cur_window(&m->file, r->cv_rva, r->cv_size, &cv)) { /* MINIDUMP_MODULE.CvRecord */
        ana__warn(c, "minidump: ModuleList: module %u (%s): CodeView record at 0x%x of %u bytes "
                     "lies outside the file",
                  (unsigned)i, mod->path, (unsigned)r->cv_rva, (unsigned)r->cv_size);
        return;
    }
    cm_cur_u32le(&cv, &sig); /* CvSignature */
    if (sig == CV_PDB70)
        cv_pdb70(c, &cv, mod);
    else if (sig == CV_PDB20)
        cv_pdb20(c, &cv, mod);
    else if (sig == CV_ELF)
        cv_elf(c, &cv, mod);
    if (cv.failed)
        ana__warn(c, "minidump: ModuleList: module %u (%s): CodeView record of %u bytes is too "
                     "short for its signature 0x%08x",
                  (unsigned)i, mod->path, (unsigned)r->cv_size, (unsigned)sig);
}

/* IMAGE_DEBUG_MISC names the debug file when no CodeView record does. */
static void read_misc(struct ana_mdmp *m, const struct raw_module *r, struct ana_module *mod)
{
    struct ana_crash *c = m->c;
    struct cm_cur misc;
    uint32_t type, length;
    uint8_t unicode, reserved[3];
    if (mod->debug_file || r->misc_size == 0 ||
        !cm_cur_window(&m->file, r->misc_rva, r->misc_size, &misc)) /* MINIDUMP_MODULE.MiscRecord */
        return;
    cm_cur_u32le(&misc, &type);                  /* IMAGE_DEBUG_MISC.DataType */
    cm_cur_u32le(&misc, &length);                /* .Length */
    cm_cur_u8(&misc, &unicode);                  /* .Unicode */
    cm_cur_bytes(&misc, reserved, sizeof reserved); /* .Reserved */
    if (misc.failed || length != r->misc_size)
        return;
    size_t n = cm_cur_left(&misc);
    const uint8_t *p = misc.p + misc.off; /* .Data */
    const char *name = unicode ? ana__utf16le_to_utf8(c, p, n)
                               : ana__strndup(c, (const char *)p, strnlen((const char *)p, n));
    if (name && *name)
        mod->debug_file = base_name(c, name, strlen(name));
}

static const char *version_of(struct ana_crash *c, const uint32_t ffi[13])
{
    /* VS_FIXEDFILEINFO.dwSignature and .dwStrucVersion, then dwFileVersionMS/LS */
    if (ffi[0] != VS_FFI_SIGNATURE || !(ffi[1] & VS_FFI_STRUCVERSION))
        return NULL;
    return ana__printf(c, "%u.%u.%u.%u", (unsigned)(ffi[2] >> 16), (unsigned)(ffi[2] & 0xffff),
                       (unsigned)(ffi[3] >> 16), (unsigned)(ffi[3] & 0xffff));
}

/* Fills mod from module entry i; false (with a warning) when the entry's range is unusable. */
static bool read_module(struct ana_mdmp *m, uint32_t i, struct cm_cur *e, struct ana_module *mod)
{
    struct ana_crash *c = m->c;
    struct raw_module r;
    read_raw(e, &r);
    const char *path = ana__mdmp_string(m, r.name_rva, "ModuleList module name");
    mod->path = path ? path : "<invalid>";
    if (r.size == 0 || r.base + r.size < r.base) { /* BaseOfImage + SizeOfImage */
        ana__warn(c, "minidump: ModuleList: module %u (%s) at 0x%llx of 0x%x bytes has an "
                     "empty or wrapping range; skipped",
                  (unsigned)i, mod->path, (unsigned long long)r.base, (unsigned)r.size);
        return false;
    }
    mod->base = r.base;
    mod->size = r.size;
    mod->checksum = r.checksum;
    mod->timestamp = r.stamp;
    mod->version = version_of(c, r.ffi);
    if (is_windows(m))
        mod->code_id = ana__printf(c, "%08X%x", (unsigned)r.stamp, (unsigned)r.size);
    read_codeview(m, i, &r, mod);
    read_misc(m, &r, mod);
    return true;
}

enum cm_code ana__mdmp_module_list(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                   struct cm_err *err)
{
    struct ana_crash *c = m->c;
    uint32_t n;
    struct cm_cur e;
    /* MINIDUMP_MODULE_LIST.NumberOfModules x sizeof(MINIDUMP_MODULE) within the stream */
    if (!ana__mdmp_list(m, s, MD_MODULE_BYTES, c->limits.max_modules, "modules", &n, &e))
        return CM_E_OK;
    c->modules = ana__calloc(c, n ? n : 1, sizeof *c->modules);
    if (!c->modules)
        return cm_fail(err, CM_E_NOMEM, "minidump: cannot allocate %u modules", (unsigned)n);
    size_t kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct ana_module *mod = &c->modules[kept];
        *mod = (struct ana_module){ 0 };
        if (read_module(m, i, &e, mod))
            kept++;
    }
    if (kept)
        c->modules[0].is_main = true; /* Breakpad: the first module is the main one */
    c->module_count = kept;
    return CM_E_OK;
}

enum cm_code ana__mdmp_unloaded_modules(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                        struct cm_err *err)
{
    struct ana_crash *c = m->c;
    struct cm_cur cur = s->cur, e;
    uint32_t hsize, esize, n;
    cm_cur_u32le(&cur, &hsize); /* MINIDUMP_UNLOADED_MODULE_LIST.SizeOfHeader */
    cm_cur_u32le(&cur, &esize); /* .SizeOfEntry */
    cm_cur_u32le(&cur, &n);     /* .NumberOfEntries */
    if (cur.failed || hsize < 12 || esize < MD_UNLOADED_BYTES || hsize > s->size ||
        n > (s->size - hsize) / esize) {
        ana__warn(c, "minidump: UnloadedModuleList at 0x%x: header of %u bytes with %u entries "
                     "of %u bytes does not fit the stream's %u bytes; skipped",
                  (unsigned)s->rva, (unsigned)hsize, (unsigned)n, (unsigned)esize,
                  (unsigned)s->size);
        return CM_E_OK;
    }
    if (n > c->limits.max_modules) {
        ana__warn(c, "minidump: UnloadedModuleList: %u entries exceed the limit of %u; the rest "
                     "are ignored",
                  (unsigned)n, (unsigned)c->limits.max_modules);
        n = c->limits.max_modules;
    }
    c->unloaded_modules = ana__calloc(c, n ? n : 1, sizeof *c->unloaded_modules);
    if (!c->unloaded_modules)
        return cm_fail(err, CM_E_NOMEM, "minidump: cannot allocate %u unloaded modules",
                       (unsigned)n);
    for (uint32_t i = 0; i < n; i++) {
        struct ana_module *mod = &c->unloaded_modules[i];
        uint32_t name_rva;
        cm_cur_window(&s->cur, hsize + (uint64_t)i * esize, esize, &e);
        cm_cur_u64le(&e, &mod->base);      /* MINIDUMP_UNLOADED_MODULE.BaseOfImage */
        uint32_t size;
        cm_cur_u32le(&e, &size);           /* .SizeOfImage */
        cm_cur_u32le(&e, &mod->checksum);  /* .CheckSum */
        cm_cur_u32le(&e, &mod->timestamp); /* .TimeDateStamp */
        cm_cur_u32le(&e, &name_rva);       /* .ModuleNameRva */
        mod->size = size;
        mod->unloaded = true;
        const char *path = ana__mdmp_string(m, name_rva, "UnloadedModuleList module name");
        mod->path = path ? path : "<invalid>";
        if (is_windows(m))
            mod->code_id = ana__printf(c, "%08X%x", (unsigned)mod->timestamp, (unsigned)size);
    }
    c->unloaded_module_count = n;
    return CM_E_OK;
}
