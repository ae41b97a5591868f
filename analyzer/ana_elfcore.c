/* ana_elfcore.c -- fill the crash model from an ELF core. The ELF header and the program header
 * table are checked here with a cm_cur first, so libelf is only handed a table that fits the
 * file; then libelf walks the program headers (gelf_getphdr) and the notes of each PT_NOTE
 * (elf_getdata_rawchunk + gelf_getnote, with every range clipped to the file beforehand). Each
 * note's payload is parsed with a cm_cur over its descriptor in ana_elfcore_notes.c; PT_LOAD
 * segments become memory regions (the bytes the core holds) and mappings (every segment, with
 * its protection). Formats: System V gABI "ELF Header", "Sections" (PN_XNUM), "Program Header",
 * "Note Section"; what Linux writes: fs/binfmt_elf.c, <linux/elfcore.h>. */
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana_int.h"

/* A kernel core has one PT_NOTE; libelf allocates per segment, so more are cut here. */
#define MAX_NOTE_SEGMENTS 64

struct core_hdr {
    unsigned cls;          /* ELFCLASS32 or ELFCLASS64 */
    uint16_t type, machine, phentsize, shentsize;
    uint64_t phoff, shoff;
    uint64_t phnum;        /* e_phnum, or section 0's sh_info with PN_XNUM */
    uint64_t shnum;        /* e_shnum, or section 0's sh_size when e_shnum is 0 */
};

/* ---- ELF header: gABI "ELF Header" ---- */

static enum cm_code check_ident(const struct cm_cur *file, unsigned *cls, struct cm_err *err)
{
    uint8_t id[EI_NIDENT];
    struct cm_cur cur = *file;
    if (!cm_cur_bytes(&cur, id, sizeof id))
        return cm_fail(err, CM_E_TRUNCATED, "elfcore: file of %zu bytes ends inside e_ident "
                       "(16 bytes)", file->len);
    if (memcmp(id, ELFMAG, SELFMAG) != 0)
        return cm_fail(err, CM_E_NOTDUMP, "elfcore: no ELF magic at offset 0");
    /* e_ident[EI_CLASS]: ELFCLASS32 or ELFCLASS64 */
    if (id[EI_CLASS] != ELFCLASS32 && id[EI_CLASS] != ELFCLASS64)
        return cm_fail(err, CM_E_CORRUPT, "elfcore: e_ident[EI_CLASS] at 0x4 is %u, neither "
                       "ELFCLASS32 nor ELFCLASS64", id[EI_CLASS]);
    /* e_ident[EI_DATA]: every architecture we decode is little-endian */
    if (id[EI_DATA] == ELFDATA2MSB)
        return cm_fail(err, CM_E_UNSUPPORTED, "elfcore: big-endian (ELFDATA2MSB) cores are "
                       "not handled");
    if (id[EI_DATA] != ELFDATA2LSB)
        return cm_fail(err, CM_E_CORRUPT, "elfcore: e_ident[EI_DATA] at 0x5 is %u, neither "
                       "ELFDATA2LSB nor ELFDATA2MSB", id[EI_DATA]);
    /* e_ident[EI_VERSION] must be EV_CURRENT */
    if (id[EI_VERSION] != EV_CURRENT)
        return cm_fail(err, CM_E_CORRUPT, "elfcore: e_ident[EI_VERSION] at 0x6 is %u, not "
                       "EV_CURRENT", id[EI_VERSION]);
    *cls = id[EI_CLASS];
    return CM_E_OK;
}

static enum cm_code read_ehdr(const struct cm_cur *file, struct core_hdr *h, struct cm_err *err)
{
    enum cm_code rc = check_ident(file, &h->cls, err);
    if (rc)
        return rc;
    unsigned w = h->cls == ELFCLASS64 ? 8 : 4;
    struct cm_cur cur = *file;
    uint16_t ehsize, phnum, shnum, shstrndx;
    uint32_t version, flags;
    uint64_t entry;
    cm_cur_seek(&cur, EI_NIDENT);
    cm_cur_u16le(&cur, &h->type);
    cm_cur_u16le(&cur, &h->machine);
    cm_cur_u32le(&cur, &version);
    ana__cur_word(&cur, w, &entry);
    ana__cur_word(&cur, w, &h->phoff);
    ana__cur_word(&cur, w, &h->shoff);
    cm_cur_u32le(&cur, &flags);
    cm_cur_u16le(&cur, &ehsize);
    cm_cur_u16le(&cur, &h->phentsize);
    cm_cur_u16le(&cur, &phnum);
    cm_cur_u16le(&cur, &h->shentsize);
    cm_cur_u16le(&cur, &shnum);
    cm_cur_u16le(&cur, &shstrndx);
    if (cur.failed)
        return cm_fail(err, CM_E_TRUNCATED, "elfcore: file of %zu bytes ends inside the "
                       "%u-byte ELF header", file->len, w == 8 ? 64u : 52u);
    h->phnum = phnum;
    h->shnum = shnum;
    return CM_E_OK;
}

/* e_type: only ET_CORE is a core; executables and libraries are refused by name. */
static enum cm_code check_type(uint16_t type, struct cm_err *err)
{
    static const char *const names[] = { "ET_NONE", "ET_REL", "ET_EXEC", "ET_DYN" };
    if (type == ET_CORE)
        return CM_E_OK;
    if (type < sizeof names / sizeof *names)
        return cm_fail(err, CM_E_NOTDUMP, "elfcore: e_type at 0x10 is %s (%u), not ET_CORE: an "
                       "ELF file but not a core", names[type], type);
    return cm_fail(err, CM_E_NOTDUMP, "elfcore: e_type at 0x10 is 0x%x, not ET_CORE (4)", type);
}

/* e_machine, with the class each machine's Linux ABI uses. */
static enum cm_code check_machine(const struct core_hdr *h, enum ana_cpu *cpu, struct cm_err *err)
{
    static const struct { uint16_t machine; unsigned cls; enum ana_cpu cpu; } table[] = {
        { EM_386, ELFCLASS32, ANA_CPU_X86 },       { EM_X86_64, ELFCLASS64, ANA_CPU_AMD64 },
        { EM_ARM, ELFCLASS32, ANA_CPU_ARM },       { EM_AARCH64, ELFCLASS64, ANA_CPU_ARM64 },
        { EM_PPC, ELFCLASS32, ANA_CPU_PPC },       { EM_PPC64, ELFCLASS64, ANA_CPU_PPC64 },
        { EM_MIPS, ELFCLASS32, ANA_CPU_MIPS },     { EM_MIPS, ELFCLASS64, ANA_CPU_MIPS64 },
        { EM_SPARCV9, ELFCLASS64, ANA_CPU_SPARC }, { EM_RISCV, ELFCLASS64, ANA_CPU_RISCV64 },
    };
    bool known = false;
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        if (table[i].machine != h->machine)
            continue;
        known = true;
        if (table[i].cls == h->cls) {
            *cpu = table[i].cpu;
            return CM_E_OK;
        }
    }
    if (known)
        return cm_fail(err, CM_E_CORRUPT, "elfcore: e_machine %u at 0x12 does not match "
                       "e_ident[EI_CLASS] %s", h->machine, h->cls == ELFCLASS64 ? "ELFCLASS64"
                                                                                : "ELFCLASS32");
    if (h->machine == EM_NONE)
        return cm_fail(err, CM_E_CORRUPT, "elfcore: e_machine at 0x12 is EM_NONE");
    return cm_fail(err, CM_E_UNSUPPORTED, "elfcore: e_machine %u at 0x12 is not handled",
                   h->machine);
}

/* gABI "Sections", extended numbering: section header 0 holds the real program header count in
 * sh_info when e_phnum is PN_XNUM, and the real section count in sh_size when e_shnum is 0. */
static enum cm_code read_section0(const struct cm_cur *file, struct core_hdr *h,
                                  struct cm_err *err)
{
    bool xnum = h->phnum == PN_XNUM;
    if (xnum && h->shoff == 0)
        return cm_fail(err, CM_E_CORRUPT, "elfcore: e_phnum is PN_XNUM but e_shoff is 0: no "
                       "section header 0 holds the count");
    if (h->shoff == 0 || (h->shnum != 0 && !xnum))
        return CM_E_OK;
    size_t shsize = h->cls == ELFCLASS64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
    struct cm_cur s0;
    if (h->shentsize != shsize || !cm_cur_window(file, h->shoff, shsize, &s0)) {
        if (xnum)
            return cm_fail(err, CM_E_CORRUPT, "elfcore: e_phnum is PN_XNUM but section header "
                           "0 at 0x%llx (e_shentsize %u) is not in the %zu-byte file",
                           (unsigned long long)h->shoff, h->shentsize, file->len);
        h->shnum = 0; /* sections are not used: libelf finds no table either */
        return CM_E_OK;
    }
    uint64_t size;
    uint32_t info;
    cm_cur_seek(&s0, h->cls == ELFCLASS64 ? 32 : 20); /* sh_size */
    ana__cur_word(&s0, h->cls == ELFCLASS64 ? 8 : 4, &size);
    cm_cur_seek(&s0, h->cls == ELFCLASS64 ? 44 : 28); /* sh_info */
    cm_cur_u32le(&s0, &info);
    if (h->shnum == 0)
        h->shnum = size;
    if (xnum)
        h->phnum = info;
    return CM_E_OK;
}

/* gABI "Program Header": e_phentsize is the size of one entry; the table must lie in the file. */
static enum cm_code check_phdrs(const struct cm_cur *file, const struct core_hdr *h,
                                struct cm_err *err)
{
    size_t entsize = h->cls == ELFCLASS64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
    if (h->phentsize != entsize)
        return cm_fail(err, CM_E_CORRUPT, "elfcore: e_phentsize is %u, not sizeof(Elf%u_Phdr) "
                       "= %zu", h->phentsize, h->cls == ELFCLASS64 ? 64u : 32u, entsize);
    if (h->phnum == 0 || h->phoff == 0)
        return cm_fail(err, CM_E_CORRUPT, "elfcore: no program headers (e_phoff 0x%llx, %llu "
                       "entries)", (unsigned long long)h->phoff, (unsigned long long)h->phnum);
    if (h->phoff >= file->len)
        return cm_fail(err, CM_E_TRUNCATED, "elfcore: e_phoff 0x%llx is past the end of the "
                       "%zu-byte file", (unsigned long long)h->phoff, file->len);
    if (h->phnum > (file->len - h->phoff) / entsize || h->phnum > INT_MAX)
        return cm_fail(err, CM_E_TRUNCATED, "elfcore: program header table at 0x%llx (%llu "
                       "entries of %zu bytes) runs past the end of the %zu-byte file",
                       (unsigned long long)h->phoff, (unsigned long long)h->phnum, entsize,
                       file->len);
    return CM_E_OK;
}

/* gABI "Sections": a core needs no section headers (only section 0, for PN_XNUM), but libelf
 * reads the table when it opens the file and allocates per entry. It refuses a count beyond 32
 * bits and ignores a table outside the file; one inside may not exceed what a core carries
 * (none from the kernel, about one per segment from gdb). */
static enum cm_code check_sections(const struct cm_cur *file, const struct core_hdr *h,
                                   const struct ana_limits *lim, struct cm_err *err)
{
    size_t shsize = h->cls == ELFCLASS64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
    uint64_t max = 2 * (uint64_t)lim->max_regions + 1024;
    if (h->shnum > UINT32_MAX)
        return cm_fail(err, CM_E_CORRUPT, "elfcore: section header 0 at 0x%llx gives %llu "
                       "sections in sh_size, more than 32 bits hold",
                       (unsigned long long)h->shoff, (unsigned long long)h->shnum);
    bool in_file = h->shoff != 0 && h->shoff <= file->len &&
                   h->shnum <= (file->len - h->shoff) / shsize;
    if (in_file && h->shnum > max)
        return cm_fail(err, CM_E_LIMIT, "elfcore: %llu section headers at 0x%llx exceed the "
                       "%llu a core may carry", (unsigned long long)h->shnum,
                       (unsigned long long)h->shoff, (unsigned long long)max);
    return CM_E_OK;
}

static enum cm_code read_header(struct ana__core *k, struct core_hdr *h, struct cm_err *err)
{
    struct ana_crash *c = k->c;
    struct cm_cur file = cm_cur_make(c->bytes, c->byte_count);
    enum cm_code rc;
    if ((rc = read_ehdr(&file, h, err)) || (rc = check_type(h->type, err)) ||
        (rc = check_machine(h, &c->system_info.cpu, err)) ||
        (rc = read_section0(&file, h, err)) || (rc = check_phdrs(&file, h, err)) ||
        (rc = check_sections(&file, h, &c->limits, err)))
        return rc;
    k->word = h->cls == ELFCLASS64 ? 8 : 4;
    k->machine = h->machine;
    return CM_E_OK;
}

/* ---- libelf ---- */

static enum cm_code open_elf(struct ana_crash *c, const struct core_hdr *h, Elf **out,
                             struct cm_err *err)
{
    size_t n = 0;
    *out = NULL;
    if (elf_version(EV_CURRENT) == EV_NONE)
        return cm_fail(err, CM_E_UNSUPPORTED, "elfcore: libelf refuses EV_CURRENT: %s",
                       elf_errmsg(-1));
    /* The image is only read: elf_memory maps it as ELF_C_READ_MMAP, and our checks above
     * guarantee the header and program header table lie inside it. */
    Elf *elf = elf_memory((char *)c->bytes, c->byte_count);
    if (!elf)
        return cm_fail(err, CM_E_CORRUPT, "elfcore: libelf cannot open the core: %s",
                       elf_errmsg(-1));
    if (elf_kind(elf) != ELF_K_ELF || elf_getphdrnum(elf, &n) != 0 || n != h->phnum) {
        elf_end(elf);
        return cm_fail(err, CM_E_CORRUPT, "elfcore: libelf reads %zu program headers where the "
                       "header says %llu", n, (unsigned long long)h->phnum);
    }
    *out = elf;
    return CM_E_OK;
}

static enum cm_code get_phdr(Elf *elf, const struct core_hdr *h, uint64_t i, GElf_Phdr *ph,
                             struct cm_err *err)
{
    if (gelf_getphdr(elf, (int)i, ph))
        return CM_E_OK;
    return cm_fail(err, CM_E_CORRUPT, "elfcore: libelf cannot read program header %llu at "
                   "0x%llx: %s", (unsigned long long)i,
                   (unsigned long long)(h->phoff + i * h->phentsize), elf_errmsg(-1));
}

/* ---- PT_LOAD: memory and mappings ---- */

static uint32_t prot_of(uint32_t flags)
{
    return (flags & PF_R ? ANA_PROT_R : 0) | (flags & PF_W ? ANA_PROT_W : 0) |
           (flags & PF_X ? ANA_PROT_X : 0);
}

struct cut_loads {
    uint64_t count, first, missing; /* segments cut short, the first's index, bytes missing */
};

/* One PT_LOAD: a mapping for the whole segment (p_memsz), a region for the bytes the file holds
 * (p_filesz, clipped where the core was cut short). */
static void add_load(struct ana__core *k, const GElf_Phdr *ph, uint64_t i,
                     struct cut_loads *cut)
{
    struct ana_crash *c = k->c;
    uint64_t top = k->word == 8 ? UINT64_MAX : UINT32_MAX;
    uint64_t filesz = ph->p_filesz;
    if (ph->p_memsz == 0)
        return; /* nothing mapped */
    if (ph->p_vaddr > top || ph->p_memsz > top - ph->p_vaddr) {
        ana__warn(c, "elfcore: PT_LOAD %llu at 0x%llx of 0x%llx bytes wraps the address space; "
                  "dropped", (unsigned long long)i, (unsigned long long)ph->p_vaddr,
                  (unsigned long long)ph->p_memsz);
        return;
    }
    /* gABI: p_filesz may not be larger than p_memsz */
    if (filesz > ph->p_memsz) {
        ana__warn(c, "elfcore: PT_LOAD %llu at 0x%llx: p_filesz 0x%llx exceeds p_memsz 0x%llx; "
                  "cut to p_memsz", (unsigned long long)i, (unsigned long long)ph->p_vaddr,
                  (unsigned long long)filesz, (unsigned long long)ph->p_memsz);
        filesz = ph->p_memsz;
    }
    c->mappings[c->mapping_count++] = (struct ana_mapping){
        .base = ph->p_vaddr, .size = ph->p_memsz, .prot = prot_of(ph->p_flags) };
    if (filesz == 0)
        return;
    uint64_t held = ph->p_offset < c->byte_count ? c->byte_count - ph->p_offset : 0;
    if (held < filesz) { /* one warning for all of them, in read_loads */
        if (cut->count++ == 0)
            cut->first = i;
        cut->missing += filesz - held;
        filesz = held;
    }
    if (filesz)
        c->regions[c->region_count++] = (struct ana_region){
            .base = ph->p_vaddr, .size = filesz, .data = c->bytes + ph->p_offset };
}

static int cmp_mapping(const void *a, const void *b)
{
    const struct ana_mapping *x = a, *y = b;
    if (x->base != y->base)
        return x->base < y->base ? -1 : 1;
    if (x->size != y->size)
        return x->size > y->size ? -1 : 1; /* larger first, then by protection: deterministic */
    return x->prot < y->prot ? -1 : x->prot > y->prot;
}

/* Mappings sorted by base; of overlapping ones (hostile cores) the first is kept. */
static void sort_mappings(struct ana_crash *c)
{
    size_t kept = 0;
    if (c->mapping_count > 1)
        qsort(c->mappings, c->mapping_count, sizeof *c->mappings, cmp_mapping);
    for (size_t i = 0; i < c->mapping_count; i++) {
        struct ana_mapping m = c->mappings[i];
        const struct ana_mapping *prev = kept ? &c->mappings[kept - 1] : NULL;
        if (prev && m.base - prev->base < prev->size) {
            ana__warn(c, "elfcore: PT_LOAD at 0x%llx (0x%llx bytes) overlaps the one at 0x%llx; "
                      "its mapping is dropped", (unsigned long long)m.base,
                      (unsigned long long)m.size, (unsigned long long)prev->base);
            continue;
        }
        c->mappings[kept++] = m;
    }
    c->mapping_count = kept;
}

static enum cm_code read_loads(struct ana__core *k, Elf *elf, const struct core_hdr *h,
                               struct cm_err *err)
{
    struct ana_crash *c = k->c;
    GElf_Phdr ph;
    size_t loads = 0, cap;
    struct cut_loads cut = { 0 };
    enum cm_code rc;
    for (uint64_t i = 0; i < h->phnum; i++) {
        if ((rc = get_phdr(elf, h, i, &ph, err)))
            return rc;
        loads += ph.p_type == PT_LOAD;
    }
    cap = loads < c->limits.max_regions ? loads : c->limits.max_regions;
    if (loads > cap)
        ana__warn(c, "elfcore: %zu PT_LOAD segments exceed the limit of %zu; the rest are "
                  "ignored", loads, cap);
    c->regions = ana__calloc(c, cap ? cap : 1, sizeof *c->regions);
    c->mappings = ana__calloc(c, cap ? cap : 1, sizeof *c->mappings);
    if (!c->regions || !c->mappings)
        return cm_fail(err, CM_E_NOMEM, "elfcore: cannot allocate %zu memory regions", cap);
    for (uint64_t i = 0, seen = 0; i < h->phnum && seen < cap; i++) {
        if ((rc = get_phdr(elf, h, i, &ph, err)))
            return rc;
        if (ph.p_type != PT_LOAD)
            continue;
        seen++;
        add_load(k, &ph, i, &cut);
    }
    if (cut.count)
        ana__warn(c, "elfcore: the %zu-byte file ends before %llu PT_LOAD segments do (the "
                  "first is PT_LOAD %llu; core cut short); their 0x%llx missing bytes are "
                  "unavailable", c->byte_count, (unsigned long long)cut.count,
                  (unsigned long long)cut.first, (unsigned long long)cut.missing);
    sort_mappings(c);
    return CM_E_OK;
}

/* ---- PT_NOTE: gABI "Note Section" ---- */

/* The owner of the notes we read: "CORE" with its NUL (namesz 5). */
static bool owner_is_core(struct cm_cur name)
{
    const uint8_t *p;
    size_t n = name.len;
    return cm_cur_view(&name, n, &p) && (n == 5 || n == 4) && memcmp(p, "CORE", 4) == 0 &&
           (n == 4 || p[4] == 0);
}

static void bad_note(struct ana__core *k, const Elf_Data *d, uint64_t seg_off, uint64_t i,
                     size_t off)
{
    struct cm_cur cur = cm_cur_make(d->d_buf, d->d_size);
    uint32_t namesz, descsz, type;
    cm_cur_seek(&cur, off);
    cm_cur_u32le(&cur, &namesz);
    cm_cur_u32le(&cur, &descsz);
    cm_cur_u32le(&cur, &type);
    if (cur.failed)
        ana__warn(k->c, "elfcore: PT_NOTE %llu: %zu bytes at file offset 0x%llx are too short "
                  "for a note header; ignored", (unsigned long long)i, d->d_size - off,
                  (unsigned long long)(seg_off + off));
    else
        ana__warn(k->c, "elfcore: PT_NOTE %llu: note at file offset 0x%llx (n_namesz %u, "
                  "n_descsz %u, n_type 0x%x) runs past the segment's %zu bytes; it and the "
                  "notes after it are skipped", (unsigned long long)i,
                  (unsigned long long)(seg_off + off), namesz, descsz, type, d->d_size);
}

/* Walks the notes of one segment; size is what the file holds of it. */
static void walk_notes(struct ana__core *k, Elf *elf, const GElf_Phdr *ph, uint64_t i,
                       size_t size)
{
    /* 8-byte aligned notes are the GNU property kind (ELF_T_NHDR8); cores use 4 */
    Elf_Data *d = elf_getdata_rawchunk(elf, (int64_t)ph->p_offset, size,
                                       ph->p_align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR);
    if (!d || !d->d_buf) {
        ana__warn(k->c, "elfcore: PT_NOTE %llu at 0x%llx: libelf cannot read it: %s",
                  (unsigned long long)i, (unsigned long long)ph->p_offset, elf_errmsg(-1));
        return;
    }
    struct cm_cur seg = cm_cur_make(d->d_buf, d->d_size);
    size_t off = 0;
    while (off < d->d_size && !k->nomem) {
        GElf_Nhdr nh;
        size_t name_off = 0, desc_off = 0;
        size_t next = gelf_getnote(d, off, &nh, &name_off, &desc_off);
        struct cm_cur name, desc;
        if (next == 0 || next <= off || !cm_cur_window(&seg, name_off, nh.n_namesz, &name) ||
            !cm_cur_window(&seg, desc_off, nh.n_descsz, &desc)) {
            bad_note(k, d, ph->p_offset, i, off);
            return;
        }
        if (owner_is_core(name))
            ana__core_note(k, nh.n_type, desc, ph->p_offset + desc_off);
        off = next;
    }
}

/* Each PT_NOTE is clipped to the file; segments that together hold more bytes than the file
 * (overlapping hostile ones) are skipped, which bounds the work to one pass over the file. */
static enum cm_code read_notes(struct ana__core *k, Elf *elf, const struct core_hdr *h,
                               struct cm_err *err)
{
    struct ana_crash *c = k->c;
    uint64_t budget = c->byte_count;
    unsigned segs = 0;
    GElf_Phdr ph;
    enum cm_code rc;
    for (uint64_t i = 0; i < h->phnum && !k->nomem; i++) {
        if ((rc = get_phdr(elf, h, i, &ph, err)))
            return rc;
        if (ph.p_type != PT_NOTE || ph.p_filesz == 0)
            continue;
        if (segs++ == MAX_NOTE_SEGMENTS) {
            ana__warn(c, "elfcore: more than %d PT_NOTE segments; the rest are ignored",
                      MAX_NOTE_SEGMENTS);
            break;
        }
        uint64_t held = ph.p_offset < c->byte_count ? c->byte_count - ph.p_offset : 0;
        uint64_t size = ph.p_filesz < held ? ph.p_filesz : held;
        if (size < ph.p_filesz)
            ana__warn(c, "elfcore: PT_NOTE %llu at 0x%llx: the file holds 0x%llx of its 0x%llx "
                      "bytes (core cut short)", (unsigned long long)i,
                      (unsigned long long)ph.p_offset, (unsigned long long)size,
                      (unsigned long long)ph.p_filesz);
        if (size > budget) {
            ana__warn(c, "elfcore: PT_NOTE %llu at 0x%llx: note segments together exceed the "
                      "file; skipped", (unsigned long long)i, (unsigned long long)ph.p_offset);
            continue;
        }
        budget -= size;
        if (size)
            walk_notes(k, elf, &ph, i, (size_t)size);
    }
    if (k->nomem)
        return cm_fail(err, CM_E_NOMEM, "elfcore: out of memory reading notes");
    return CM_E_OK;
}

/* ---- after the notes ---- */

/* The stack a thread's sp points into: the region holding it, as the dump lists memory. */
static void set_thread_stacks(struct ana_crash *c)
{
    int sp = ana_reg_sp(c->system_info.cpu);
    for (size_t i = 0; i < c->thread_count; i++) {
        struct ana_thread *t = &c->threads[i];
        const struct ana_region *r;
        if (t->has_ctx && ana_ctx_has(&t->ctx, sp) && (r = ana_mem_region(c, t->ctx.r[sp]))) {
            t->stack_base = r->base;
            t->stack_size = r->size;
        }
    }
}

static void set_system_info(struct ana__core *k)
{
    struct ana_system_info *si = &k->c->system_info;
    const char *ver = ana__core_kernel_version(k);
    si->os = "Linux";
    si->cpu_arch = ana_cpu_name(si->cpu);
    /* A core holds no uname; the vDSO's version note is all it tells. */
    si->os_ver = ver ? ver : "";
}

enum cm_code ana__elfcore_parse(struct ana_crash *c, struct cm_err *err)
{
    struct ana__core k = { .c = c };
    struct core_hdr h = { 0 };
    Elf *elf = NULL;
    enum cm_code rc;
    if ((rc = read_header(&k, &h, err)) || (rc = open_elf(c, &h, &elf, err)) ||
        (rc = read_loads(&k, elf, &h, err)) || (rc = read_notes(&k, elf, &h, err)))
        goto out;
    ana__core_vdso_module(&k);
    ana__core_thread_warnings(&k);
    /* Sorted, sanitized regions for the memory reads below; ana_load finishes again after. */
    if ((rc = ana__finish(c, err)))
        goto out;
    ana__core_crash_info(&k);
    ana__core_main_module(&k);
    ana__core_build_ids(&k);
    set_thread_stacks(c);
    set_system_info(&k);
    if (k.nomem)
        rc = cm_fail(err, CM_E_NOMEM, "elfcore: out of memory");
out:
    elf_end(elf);
    return rc;
}
