/* ana_symfile_elf.c -- symbols of an ELF module found by build id: function names from .symtab
 * (else .dynsym) through libelf, sorted once for binary search; source lines and inline frames
 * from DWARF through libdw (dwarf_addrdie, dwarf_getsrc_die, dwarf_getscopes); and the module's
 * CFI for the unwinder (.eh_frame of the binary through dwarf_getcfi_elf, .debug_frame of the
 * debug file through dwarf_getcfi).
 *
 * Addresses: a lookup's rva is relative to the module's base in the dump, which maps the file's
 * offset 0; the ELF's own address of that byte is p_vaddr - p_offset of its first PT_LOAD, added
 * to every rva. Only the two paths given are read: libdw is never asked to find files on its own
 * (no debuglink or debugaltlink search, so nothing under the machine's /usr/lib/debug).
 *
 * libdw handles are not thread-safe; every libdw call on a file holds the file's lock. The symbol
 * table is immutable after opening and read without it.
 * Formats: System V gABI (symbol table, notes), DWARF 5. */
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyzer/ana_sym_int.h"
#include "common/cm_alloc.h"

struct esym {
    uint64_t addr, size;
    const char *name;
    uint32_t order; /* position in the table: ties keep table order */
    uint8_t rank;   /* binding preference: global 3, weak 2, local 1 */
};

struct elf_one {
    int fd;
    Elf *elf;
    uint64_t bytes;
};

struct ana_elfsym {
    struct elf_one bin, dbg; /* either may be absent (elf == NULL) */
    struct elf_one alt;      /* the DWARF supplementary file, when the debug file names one */
    char **dirs;             /* the store's folders (copies), for the supplementary file */
    size_t ndirs;
    char *bin_path, *dbg_path;
    uint64_t elf_base; /* ELF address of the module's base */
    struct esym *syms; /* sorted by address */
    size_t nsyms;
    bool dwarf_inlines;
    uint64_t max_bytes; /* opts.max_file_bytes */

    pthread_mutex_t lock; /* guards everything below */
    bool dwarf_tried;
    Dwarf *dw;            /* from the debug file (else the binary), NULL without DWARF */
    Dwarf *alt_dw;        /* owned: the supplementary file's DWARF */
    Dwarf_CFI *eh_cfi;    /* owned: dwarf_cfi_end */
    Dwarf_CFI *dbg_cfi;   /* owned by dw */
    bool cfi_tried;
};

static pthread_once_t elf_once = PTHREAD_ONCE_INIT;
static void init_libelf(void) { elf_version(EV_CURRENT); }

static void close_one(struct elf_one *o)
{
    if (o->elf)
        elf_end(o->elf);
    if (o->fd >= 0)
        close(o->fd);
    o->elf = NULL;
    o->fd = -1;
}

static enum cm_code open_one(const char *path, uint64_t max_bytes, struct elf_one *o,
                             struct cm_err *err)
{
    o->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (o->fd < 0)
        return cm_fail(err, errno == ENOENT ? CM_E_NOTFOUND : CM_E_IO, "cannot open %s: %s",
                       path, strerror(errno));
    struct stat st;
    if (fstat(o->fd, &st) != 0 || !S_ISREG(st.st_mode))
        return cm_fail(err, CM_E_IO, "%s is not a regular file", path);
    if ((uint64_t)st.st_size > max_bytes)
        return cm_fail(err, CM_E_LIMIT, "%s: %lld bytes exceed the symbol file limit %llu", path,
                       (long long)st.st_size, (unsigned long long)max_bytes);
    o->bytes = (uint64_t)st.st_size;
    o->elf = elf_begin(o->fd, ELF_C_READ_MMAP_PRIVATE, NULL);
    if (!o->elf || elf_kind(o->elf) != ELF_K_ELF)
        return cm_fail(err, CM_E_CORRUPT, "%s: not an ELF file (%s)", path, elf_errmsg(-1));
    return CM_E_OK;
}

/* The NT_GNU_BUILD_ID note's bytes from the file's SHT_NOTE sections. */
static bool read_build_id(Elf *elf, const uint8_t **id, size_t *len)
{
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
            continue;
        Elf_Data *d = elf_getdata(scn, NULL);
        if (!d)
            continue;
        size_t off = 0, name_off, desc_off;
        GElf_Nhdr nh;
        while (off < d->d_size && (off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
            if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
                memcmp((const char *)d->d_buf + name_off, "GNU", 4) == 0 && nh.n_descsz > 0) {
                *id = (const uint8_t *)d->d_buf + desc_off;
                *len = nh.n_descsz;
                return true;
            }
        }
    }
    return false;
}

static enum cm_code check_build_id(const char *path, Elf *elf, const uint8_t *want, size_t n,
                                   struct cm_err *err)
{
    if (!want || !n)
        return CM_E_OK;
    const uint8_t *id;
    size_t len;
    if (!read_build_id(elf, &id, &len))
        return cm_fail(err, CM_E_CORRUPT, "%s has no GNU build id note", path);
    if (len != n || memcmp(id, want, n) != 0)
        return cm_fail(err, CM_E_CORRUPT, "%s: its build id differs from the module's", path);
    return CM_E_OK;
}

/* ELF address of file offset 0, from the first PT_LOAD. */
static bool load_base(Elf *elf, uint64_t *out)
{
    size_t n;
    if (elf_getphdrnum(elf, &n) != 0)
        return false;
    bool found = false;
    uint64_t best = 0;
    for (size_t i = 0; i < n; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
            continue;
        if (!found || ph.p_vaddr < best) {
            best = ph.p_vaddr;
            *out = ph.p_vaddr - ph.p_offset;
            found = true;
        }
    }
    return found;
}

static Elf_Scn *find_section(Elf *elf, uint32_t type, const char *name, GElf_Shdr *out)
{
    size_t shstrndx;
    if (elf_getshdrstrndx(elf, &shstrndx) != 0)
        return NULL;
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh))
            continue;
        if (type && sh.sh_type != type)
            continue;
        if (name) {
            const char *n = elf_strptr(elf, shstrndx, sh.sh_name);
            if (!n || strcmp(n, name) != 0)
                continue;
        }
        *out = sh;
        return scn;
    }
    return NULL;
}

static int cmp_esym(const void *x, const void *y)
{
    const struct esym *a = x, *b = y;
    if (a->addr != b->addr)
        return a->addr < b->addr ? -1 : 1;
    /* at one address: sized before sizeless, then global, weak, local, then table order */
    if ((a->size != 0) != (b->size != 0))
        return a->size ? -1 : 1;
    if (a->rank != b->rank)
        return a->rank > b->rank ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

static bool scn_exec(Elf *elf, size_t idx)
{
    Elf_Scn *s = elf_getscn(elf, idx);
    GElf_Shdr sh;
    return s && gelf_getshdr(s, &sh) && (sh.sh_flags & SHF_EXECINSTR);
}

static enum cm_code load_symtab(struct ana_elfsym *e, Elf *elf, Elf_Scn *scn, const GElf_Shdr *sh,
                                struct cm_err *err)
{
    Elf_Data *d = elf_getdata(scn, NULL);
    if (!d || sh->sh_entsize == 0)
        return CM_E_OK;
    size_t n = sh->sh_size / sh->sh_entsize;
    if (n > (64u << 20))
        n = 64u << 20;
    e->syms = cm_calloc(n ? n : 1, sizeof *e->syms);
    if (!e->syms)
        return cm_fail(err, CM_E_NOMEM, "cannot index %zu ELF symbols", n);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        GElf_Sym s;
        if (!gelf_getsym(d, (int)i, &s))
            break;
        int type = GELF_ST_TYPE(s.st_info), bind = GELF_ST_BIND(s.st_info);
        if (s.st_shndx == SHN_UNDEF || s.st_value == 0)
            continue;
        if (type != STT_FUNC && type != STT_GNU_IFUNC &&
            !(type == STT_NOTYPE && s.st_shndx < SHN_LORESERVE && scn_exec(elf, s.st_shndx)))
            continue;
        const char *name = elf_strptr(elf, sh->sh_link, s.st_name);
        if (!name || !*name)
            continue;
        e->syms[kept++] = (struct esym){ .addr = s.st_value, .size = s.st_size, .name = name,
                                         .order = (uint32_t)i,
                                         .rank = bind == STB_GLOBAL ? 3 : bind == STB_WEAK ? 2
                                                                                        : 1 };
    }
    if (kept > 1)
        qsort(e->syms, kept, sizeof *e->syms, cmp_esym);
    /* one entry per address: the preferred one sorts first */
    size_t u = 0;
    for (size_t i = 0; i < kept; i++)
        if (!u || e->syms[u - 1].addr != e->syms[i].addr)
            e->syms[u++] = e->syms[i];
    e->nsyms = u;
    return CM_E_OK;
}

void ana__elfsym_free(struct ana_elfsym *e)
{
    if (!e)
        return;
    if (e->eh_cfi)
        dwarf_cfi_end(e->eh_cfi);
    if (e->dw)
        dwarf_end(e->dw);
    if (e->alt_dw)
        dwarf_end(e->alt_dw);
    close_one(&e->alt);
    for (size_t i = 0; i < e->ndirs; i++)
        cm_free(e->dirs[i]);
    cm_free(e->dirs);
    cm_free(e->syms);
    close_one(&e->dbg);
    close_one(&e->bin);
    cm_free(e->bin_path);
    cm_free(e->dbg_path);
    pthread_mutex_destroy(&e->lock);
    cm_free(e);
}

enum cm_code ana__elfsym_open(const char *binary_path, const char *debug_path,
                              const uint8_t *build_id, size_t build_id_len,
                              const char *const *dirs, size_t ndirs,
                              const struct ana_symstore_opts *o, struct ana_elfsym **out,
                              struct cm_err *err)
{
    *out = NULL;
    pthread_once(&elf_once, init_libelf);
    struct ana_elfsym *e = cm_calloc(1, sizeof *e);
    if (!e)
        return cm_fail(err, CM_E_NOMEM, "cannot allocate an ELF symbol file");
    e->bin.fd = e->dbg.fd = e->alt.fd = -1;
    pthread_mutex_init(&e->lock, NULL);
    e->dwarf_inlines = o ? o->dwarf_inlines : false;
    e->max_bytes = o && o->max_file_bytes ? o->max_file_bytes : (1ull << 30);
    uint64_t max = e->max_bytes;
    enum cm_code rc = CM_E_OK;
    if (ndirs && !(e->dirs = cm_calloc(ndirs, sizeof *e->dirs))) {
        rc = cm_fail(err, CM_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < ndirs; i++) {
        if (!(e->dirs[i] = cm_strdup(dirs[i]))) {
            rc = cm_fail(err, CM_E_NOMEM, "out of memory");
            goto out;
        }
        e->ndirs = i + 1;
    }
    if (binary_path) {
        if (!(e->bin_path = cm_strdup(binary_path))) {
            rc = cm_fail(err, CM_E_NOMEM, "out of memory");
            goto out;
        }
        if ((rc = open_one(binary_path, max, &e->bin, err)) ||
            (rc = check_build_id(binary_path, e->bin.elf, build_id, build_id_len, err)))
            goto out;
    }
    if (debug_path) {
        if (!(e->dbg_path = cm_strdup(debug_path))) {
            rc = cm_fail(err, CM_E_NOMEM, "out of memory");
            goto out;
        }
        if ((rc = open_one(debug_path, max, &e->dbg, err)) ||
            (rc = check_build_id(debug_path, e->dbg.elf, build_id, build_id_len, err)))
            goto out;
    }
    if (!e->bin.elf && !e->dbg.elf) {
        rc = cm_fail(err, CM_E_NOTFOUND, "no ELF file given");
        goto out;
    }
    if (!(e->bin.elf && load_base(e->bin.elf, &e->elf_base)) &&
        !(e->dbg.elf && load_base(e->dbg.elf, &e->elf_base))) {
        rc = cm_fail(err, CM_E_CORRUPT, "%s: no PT_LOAD program header",
                     debug_path ? debug_path : binary_path);
        goto out;
    }
    /* Names: the full .symtab (debug file first), else the binary's .dynsym. */
    GElf_Shdr sh;
    Elf_Scn *scn = NULL;
    Elf *src = NULL;
    if (e->dbg.elf && (scn = find_section(e->dbg.elf, SHT_SYMTAB, NULL, &sh)))
        src = e->dbg.elf;
    else if (e->bin.elf && (scn = find_section(e->bin.elf, SHT_SYMTAB, NULL, &sh)))
        src = e->bin.elf;
    else if (e->bin.elf && (scn = find_section(e->bin.elf, SHT_DYNSYM, NULL, &sh)))
        src = e->bin.elf;
    else if (e->dbg.elf && (scn = find_section(e->dbg.elf, SHT_DYNSYM, NULL, &sh)))
        src = e->dbg.elf;
    if (src && (rc = load_symtab(e, src, scn, &sh, err)))
        goto out;
out:
    if (rc) {
        ana__elfsym_free(e);
        return rc;
    }
    *out = e;
    return CM_E_OK;
}

uint64_t ana__elfsym_bytes(const struct ana_elfsym *e) { return e->bin.bytes + e->dbg.bytes; }

const char *ana__elfsym_path(const struct ana_elfsym *e)
{
    return e->dbg_path ? e->dbg_path : e->bin_path;
}

/* ---- names ---- */

static const struct esym *find_sym(const struct ana_elfsym *e, uint64_t addr)
{
    size_t lo = 0, hi = e->nsyms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->syms[mid].addr <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const struct esym *near = &e->syms[lo - 1];
    /* The closest start wins; a sized symbol must cover the address; a symbol nested in a larger
     * one hands over to the larger one past its end (a few steps back at most). */
    for (size_t k = lo, steps = 0; k > 0 && steps < 16; k--, steps++) {
        const struct esym *s = &e->syms[k - 1];
        if (s->size && addr - s->addr < s->size)
            return s;
    }
    return near->size == 0 ? near : NULL;
}

/* ---- DWARF ---- */

static bool has_progbits(Elf *elf, const char *name)
{
    GElf_Shdr sh;
    return elf && find_section(elf, 0, name, &sh) && sh.sh_type != SHT_NOBITS;
}

/* Sections libdw would decompress on opening that no line, scope or CFI lookup reads (variable
 * locations, macros, name indexes): marked empty in our private copy of the section headers so
 * the cost of inflating them is not paid. */
static void skip_unused_sections(Elf *elf)
{
    static const char *const unused[] = { ".debug_loc",      ".debug_loclists",
                                          ".debug_macro",    ".debug_macinfo",
                                          ".debug_pubnames", ".debug_pubtypes",
                                          ".debug_gnu_pubnames", ".debug_gnu_pubtypes" };
    size_t shstrndx;
    if (elf_getshdrstrndx(elf, &shstrndx) != 0)
        return;
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || !(sh.sh_flags & SHF_COMPRESSED))
            continue;
        const char *n = elf_strptr(elf, shstrndx, sh.sh_name);
        for (size_t i = 0; n && i < sizeof unused / sizeof *unused; i++) {
            if (strcmp(n, unused[i]) == 0) {
                sh.sh_type = SHT_NOBITS;
                gelf_update_shdr(scn, &sh);
            }
        }
    }
}

/* A debug file compressed with dwz names a supplementary file by build id; libdw would look for
 * it under the machine's /usr/lib/debug on first use, so it is looked for in the store here and
 * handed over. False when it is named but not in the store. */
static bool attach_alt(struct ana_elfsym *e)
{
    const char *name;
    const void *id;
    ssize_t n = dwelf_dwarf_gnu_debugaltlink(e->dw, &name, &id);
    if (n <= 0)
        return true; /* none named */
    if (n < 2 || n > 64)
        return false;
    char hex[160];
    for (ssize_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", ((const uint8_t *)id)[i]);
    for (size_t i = 0; i < e->ndirs; i++) {
        char path[4096];
        int w = snprintf(path, sizeof path, "%s/.build-id/%.2s/%s.debug", e->dirs[i], hex,
                         hex + 2);
        if (w <= 0 || (size_t)w >= sizeof path)
            continue;
        struct elf_one alt = { .fd = -1 };
        if (open_one(path, e->max_bytes, &alt, NULL) != CM_E_OK ||
            check_build_id(path, alt.elf, id, (size_t)n, NULL) != CM_E_OK) {
            close_one(&alt);
            continue;
        }
        e->alt_dw = dwarf_begin_elf(alt.elf, DWARF_C_READ, NULL);
        if (!e->alt_dw) {
            close_one(&alt);
            continue;
        }
        e->alt = alt;
        dwarf_setalt(e->dw, e->alt_dw);
        return true;
    }
    return false;
}

/* Split DWARF: a skeleton unit's details live in a .dwo file that libdw would open by a path the
 * DWARF names; only its line table (kept in the skeleton) is read. */
static bool is_skeleton(Dwarf_Die *cu)
{
    return dwarf_tag(cu) == DW_TAG_skeleton_unit || dwarf_hasattr(cu, DW_AT_GNU_dwo_name) ||
           dwarf_hasattr(cu, DW_AT_dwo_name);
}

/* Opens DWARF once; the caller holds the lock. */
static void open_dwarf(struct ana_elfsym *e)
{
    if (e->dwarf_tried)
        return;
    e->dwarf_tried = true;
    Elf *src = NULL;
    if (has_progbits(e->dbg.elf, ".debug_info"))
        src = e->dbg.elf;
    else if (has_progbits(e->bin.elf, ".debug_info"))
        src = e->bin.elf;
    if (!src)
        return;
    skip_unused_sections(src);
    e->dw = dwarf_begin_elf(src, DWARF_C_READ, NULL);
    if (e->dw && !attach_alt(e)) {
        /* libdw would look for the missing piece itself, outside the store */
        dwarf_end(e->dw);
        e->dw = NULL;
    }
}

static const char *call_file(Dwarf_Die *cu, Dwarf_Die *die)
{
    Dwarf_Attribute a;
    Dwarf_Word idx;
    if (!dwarf_attr(die, DW_AT_call_file, &a) || dwarf_formudata(&a, &idx) != 0)
        return NULL;
    Dwarf_Files *files;
    size_t nfiles;
    if (dwarf_getsrcfiles(cu, &files, &nfiles) != 0 || idx >= nfiles)
        return NULL;
    return dwarf_filesrc(files, idx, NULL, NULL);
}

static uint32_t call_line(Dwarf_Die *die)
{
    Dwarf_Attribute a;
    Dwarf_Word v;
    if (!dwarf_attr(die, DW_AT_call_line, &a) || dwarf_formudata(&a, &v) != 0 || v > UINT32_MAX)
        return 0;
    return (uint32_t)v;
}

/* Lines and inline frames at ELF address addr; the caller holds the lock. */
static void dwarf_lookup(struct ana_elfsym *e, uint64_t addr, struct ana_symloc *out)
{
    open_dwarf(e);
    if (!e->dw)
        return;
    Dwarf_Die cu;
    if (!dwarf_addrdie(e->dw, addr, &cu))
        return;
    Dwarf_Line *l = dwarf_getsrc_die(&cu, addr);
    int lineno = 0;
    if (l) {
        out->file = dwarf_linesrc(l, NULL, NULL);
        if (dwarf_lineno(l, &lineno) == 0 && lineno > 0)
            out->line = (uint32_t)lineno;
        Dwarf_Addr line_addr;
        if (dwarf_lineaddr(l, &line_addr) == 0 && line_addr >= e->elf_base)
            out->line_rva = line_addr - e->elf_base;
    }
    /* dwarf_getscopes follows an inlined subroutine into its abstract definition, so it gives
     * the innermost function scope only; that scope's own concrete parents (dwarf_getscopes_die)
     * are the chain of inlined calls up to the real function. */
    if ((!e->dwarf_inlines && out->function) || is_skeleton(&cu))
        return; /* the scopes would only give inline frames, which are not wanted */
    Dwarf_Die *scopes = NULL, *chain = NULL;
    int n = dwarf_getscopes(&cu, addr, &scopes), nchain = 0;
    for (int i = 0; i < n; i++) {
        int tag = dwarf_tag(&scopes[i]);
        if (tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine) {
            nchain = dwarf_getscopes_die(&scopes[i], &chain);
            break;
        }
    }
    const char *pos_file = out->file;
    uint32_t pos_line = out->line;
    size_t k = 0;
    const char *subprogram = NULL;
    for (int i = 0; i < nchain; i++) {
        int tag = dwarf_tag(&chain[i]);
        if (tag == DW_TAG_subprogram) {
            subprogram = dwarf_diename(&chain[i]);
            break;
        }
        if (tag != DW_TAG_inlined_subroutine || !e->dwarf_inlines)
            continue;
        if (k < ANA_SYM_MAX_INLINES) {
            const char *name = dwarf_diename(&chain[i]);
            out->inlines[k++] = (struct ana_inline){ .function = name ? name : "<name omitted>",
                                                     .file = pos_file, .line = pos_line,
                                                     .from_dwarf = true };
        }
        pos_file = call_file(&cu, &chain[i]);
        pos_line = call_line(&chain[i]);
    }
    free(chain); /* malloc'd by libdw */
    free(scopes);
    out->inline_count = k;
    if (k) {
        out->file = pos_file;
        out->line = pos_line;
    }
    if (!out->function && subprogram)
        out->function = subprogram; /* no symbol table entry: DWARF's name */
}

bool ana__elfsym_lookup(struct ana_elfsym *e, uint64_t rva, struct ana_symloc *out)
{
    memset(out, 0, offsetof(struct ana_symloc, inlines));
    uint64_t addr = rva + e->elf_base;
    const struct esym *s = find_sym(e, addr);
    if (s) {
        out->function = s->name;
        out->function_rva = s->addr - e->elf_base;
        out->function_size = s->size;
    }
    pthread_mutex_lock(&e->lock);
    dwarf_lookup(e, addr, out);
    pthread_mutex_unlock(&e->lock);
    return out->function != NULL;
}

bool ana__elfsym_has_function(const struct ana_elfsym *e, uint64_t rva)
{
    return find_sym(e, rva + e->elf_base) != NULL;
}

/* ---- CFI ---- */

int ana__elfsym_with_cfi(struct ana_elfsym *e, ana_cfi_fn fn, void *arg)
{
    pthread_mutex_lock(&e->lock);
    if (!e->cfi_tried) {
        e->cfi_tried = true;
        if (has_progbits(e->bin.elf, ".eh_frame"))
            e->eh_cfi = dwarf_getcfi_elf(e->bin.elf);
        else if (has_progbits(e->dbg.elf, ".eh_frame"))
            e->eh_cfi = dwarf_getcfi_elf(e->dbg.elf);
        open_dwarf(e);
        if (e->dw && (has_progbits(e->dbg.elf, ".debug_frame") ||
                      has_progbits(e->bin.elf, ".debug_frame")))
            e->dbg_cfi = dwarf_getcfi(e->dw);
    }
    int r = -1;
    if (e->eh_cfi || e->dbg_cfi)
        r = fn(arg, e->eh_cfi, e->dbg_cfi, e->elf_base);
    pthread_mutex_unlock(&e->lock);
    return r;
}
