/* ana_elfcore_image.c -- facts read from the ELF images a core holds in memory. The kernel dumps
 * the first page of every file mapping that starts with an ELF header (coredump_filter bit 4),
 * so each module's GNU build id can be found there: ELF header -> program headers -> PT_NOTE ->
 * NT_GNU_BUILD_ID. It gives the module's code id (lowercase hex) and Breakpad debug id. The vDSO
 * (AT_SYSINFO_EHDR) carries a "Linux" note with the kernel's LINUX_VERSION_CODE. Every read is
 * bounded by one of the model's memory regions. Formats: System V gABI "ELF Header", "Program
 * Header", "Note Section"; <elf.h> NT_GNU_BUILD_ID; Breakpad file_id.cc (debug id). */
#include <elf.h>
#include <stdio.h>
#include <string.h>

#include "analyzer/ana_int.h"

#define MAX_IMAGE_PHDRS 128         /* real images have about a dozen */
#define MAX_IMAGE_NOTE_BYTES 65536  /* build-id notes sit in the first page */
#define MAX_BUILD_ID_BYTES 64       /* sha1 is 20, md5 16, xxhash 8 */
/* All images together: a few hundred bytes each in real cores; hostile ones stop here. */
#define MAX_NOTE_BYTES_TOTAL (16u << 20)

/* A cursor over [addr, addr + n) of the dumped memory; false unless one region holds it all. */
static bool mem_cur(const struct ana_crash *c, uint64_t addr, uint64_t n, struct cm_cur *out)
{
    const struct ana_region *r = ana_mem_region(c, addr);
    *out = (struct cm_cur){ .failed = true };
    if (!r)
        return false;
    struct cm_cur whole = cm_cur_make(r->data, (size_t)r->size);
    return cm_cur_window(&whole, addr - r->base, n, out);
}

struct image {
    uint64_t addr; /* where its first byte (file offset 0) is mapped */
    unsigned word;
    struct cm_cur phdrs;
    uint16_t phnum;
};

/* The ELF header at addr: little-endian, either class, with a readable program header table. */
static bool open_image(const struct ana_crash *c, uint64_t addr, struct image *im)
{
    struct cm_cur h;
    const uint8_t *id;
    if (!mem_cur(c, addr, 52, &h) || !cm_cur_view(&h, EI_NIDENT, &id) ||
        memcmp(id, ELFMAG, SELFMAG) != 0 || id[EI_DATA] != ELFDATA2LSB ||
        (id[EI_CLASS] != ELFCLASS32 && id[EI_CLASS] != ELFCLASS64))
        return false;
    im->addr = addr;
    im->word = id[EI_CLASS] == ELFCLASS64 ? 8 : 4;
    if (!mem_cur(c, addr, im->word == 8 ? 64 : 52, &h))
        return false;
    uint64_t phoff;
    uint16_t phentsize;
    cm_cur_seek(&h, im->word == 8 ? 32 : 28); /* e_phoff */
    ana__cur_word(&h, im->word, &phoff);
    cm_cur_seek(&h, im->word == 8 ? 54 : 42); /* e_phentsize, e_phnum */
    cm_cur_u16le(&h, &phentsize);
    cm_cur_u16le(&h, &im->phnum);
    size_t entsize = im->word == 8 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
    if (h.failed || phentsize != entsize || im->phnum == 0 || im->phnum > MAX_IMAGE_PHDRS ||
        phoff > UINT64_MAX - addr)
        return false;
    return mem_cur(c, addr + phoff, (uint64_t)im->phnum * entsize, &im->phdrs);
}

struct phdr {
    uint32_t type;
    uint64_t offset, vaddr, filesz, align;
};

static struct phdr phdr_at(const struct image *im, size_t i)
{
    struct cm_cur p = im->phdrs;
    struct phdr ph = { 0 };
    uint32_t flags;
    uint64_t paddr, memsz;
    cm_cur_seek(&p, i * (im->word == 8 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)));
    cm_cur_u32le(&p, &ph.type);
    if (im->word == 8) /* Elf64_Phdr moves p_flags up for alignment */
        cm_cur_u32le(&p, &flags);
    ana__cur_word(&p, im->word, &ph.offset);
    ana__cur_word(&p, im->word, &ph.vaddr);
    ana__cur_word(&p, im->word, &paddr);
    ana__cur_word(&p, im->word, &ph.filesz);
    ana__cur_word(&p, im->word, &memsz);
    if (im->word == 4)
        cm_cur_u32le(&p, &flags);
    ana__cur_word(&p, im->word, &ph.align);
    return ph;
}

static bool skip_pad(struct cm_cur *seg, size_t align)
{
    size_t pad = (align - seg->off % align) % align;
    return pad <= cm_cur_left(seg) ? cm_cur_skip(seg, pad) : cm_cur_seek(seg, seg->len);
}

/* gABI "Note Section": namesz, descsz, type, then name and desc, each padded to the segment's
 * alignment (4, or 8 for ELF_T_NHDR8-style segments). */
static bool find_note(struct cm_cur seg, size_t align, const char *owner, uint32_t type,
                      struct cm_cur *desc)
{
    size_t olen = strlen(owner) + 1;
    while (cm_cur_left(&seg) >= 12) {
        uint32_t namesz, descsz, ntype;
        const uint8_t *name;
        cm_cur_u32le(&seg, &namesz);
        cm_cur_u32le(&seg, &descsz);
        cm_cur_u32le(&seg, &ntype);
        if (!cm_cur_view(&seg, namesz, &name) || !skip_pad(&seg, align) ||
            !cm_cur_window(&seg, seg.off, descsz, desc))
            return false;
        if (ntype == type && namesz == olen && memcmp(name, owner, olen) == 0)
            return true;
        if (!cm_cur_skip(&seg, descsz) || !skip_pad(&seg, align))
            return false;
    }
    return false;
}

/* The first note of owner and type in the image's PT_NOTE segments. Segment addresses are
 * p_vaddr plus the load bias, which the first PT_LOAD gives: it maps file offset p_offset at
 * p_vaddr + bias, and the image's offset 0 is at im->addr. */
static bool image_note(struct ana__core *k, const struct image *im, const char *owner,
                       uint32_t type, struct cm_cur *desc)
{
    const struct ana_crash *c = k->c;
    uint64_t bias = 0;
    bool have_bias = false;
    for (size_t i = 0; i < im->phnum && !have_bias; i++) {
        struct phdr ph = phdr_at(im, i);
        if (ph.type == PT_LOAD) {
            bias = im->addr - (ph.vaddr - ph.offset); /* modulo 2^64, as the loader computes */
            have_bias = true;
        }
    }
    for (size_t i = 0; i < im->phnum && have_bias; i++) {
        struct phdr ph = phdr_at(im, i);
        struct cm_cur seg;
        uint64_t size = ph.filesz < MAX_IMAGE_NOTE_BYTES ? ph.filesz : MAX_IMAGE_NOTE_BYTES;
        if (ph.type != PT_NOTE || !mem_cur(c, ph.vaddr + bias, size, &seg))
            continue;
        if (k->image_note_bytes + size > MAX_NOTE_BYTES_TOTAL) {
            if (k->image_note_bytes <= MAX_NOTE_BYTES_TOTAL)
                ana__warn(k->c, "elfcore: notes of in-memory ELF images exceed %u bytes; later "
                          "build ids are not read", MAX_NOTE_BYTES_TOTAL);
            k->image_note_bytes = MAX_NOTE_BYTES_TOTAL + 1;
            return false;
        }
        k->image_note_bytes += size;
        if (find_note(seg, ph.align == 8 ? 8 : 4, owner, type, desc))
            return true;
    }
    return false;
}

/* ---- build ids ---- */

/* Breakpad's debug id for ELF: the first 16 bytes of the build id (zero-padded) as a GUID whose
 * first three fields are stored little-endian, printed as upper-case hex, then the age "0". */
static char *debug_id(struct ana_crash *c, const uint8_t *id, size_t n)
{
    static const uint8_t order[16] = { 3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15 };
    uint8_t g[16] = { 0 };
    char s[34];
    memcpy(g, id, n < 16 ? n : 16);
    for (size_t i = 0; i < 16; i++)
        snprintf(s + 2 * i, 3, "%02X", g[order[i]]);
    s[32] = '0';
    s[33] = 0;
    return ana__strndup(c, s, 33);
}

static char *hex_lower(struct ana_crash *c, const uint8_t *p, size_t n)
{
    char *s = ana__alloc(c, 2 * n + 1);
    for (size_t i = 0; s && i < n; i++)
        snprintf(s + 2 * i, 3, "%02x", p[i]);
    return s;
}

/* Address of the module's first page: its mapping at file offset 0 (the lowest, if several);
 * the base for a module without a file mapping (the vDSO). */
static uint64_t first_page(const struct ana_crash *c, const struct ana_module *m)
{
    for (size_t i = 0; i < c->mapping_count; i++) {
        const struct ana_mapping *mp = &c->mappings[i];
        if (mp->name == m->path && mp->file_offset == 0)
            return mp->base;
    }
    return m->base;
}

static void module_build_id(struct ana__core *k, struct ana_module *m)
{
    struct ana_crash *c = k->c;
    struct image im;
    struct cm_cur desc;
    const uint8_t *id;
    if (!open_image(c, first_page(c, m), &im) ||
        !image_note(k, &im, "GNU", NT_GNU_BUILD_ID, &desc))
        return;
    size_t n = desc.len;
    if (n == 0 || n > MAX_BUILD_ID_BYTES || !cm_cur_view(&desc, n, &id)) {
        ana__warn(c, "elfcore: module %s at 0x%llx: NT_GNU_BUILD_ID of %zu bytes ignored",
                  m->path, (unsigned long long)m->base, n);
        return;
    }
    uint8_t *copy = ana__alloc(c, n);
    if (copy)
        memcpy(copy, id, n);
    m->build_id = copy;
    m->build_id_len = copy ? n : 0;
    m->code_id = hex_lower(c, id, n);
    m->debug_id = debug_id(c, id, n);
    k->nomem |= !copy || !m->code_id || !m->debug_id;
}

void ana__core_build_ids(struct ana__core *k)
{
    for (size_t i = 0; i < k->c->module_count && !k->nomem; i++)
        module_build_id(k, &k->c->modules[i]);
}

/* ---- kernel version ---- */

const char *ana__core_kernel_version(struct ana__core *k)
{
    struct ana_crash *c = k->c;
    struct image im;
    struct cm_cur desc;
    uint32_t code;
    uint64_t vdso = 0;
    for (size_t i = 0; i < c->auxv_count && !vdso; i++)
        if (c->auxv[2 * i] == AT_SYSINFO_EHDR)
            vdso = c->auxv[2 * i + 1];
    /* vdso-note.S: ELFNOTE_START(Linux, 0, "a") .long LINUX_VERSION_CODE */
    if (!vdso || !open_image(c, vdso, &im) || !image_note(k, &im, "Linux", 0, &desc) ||
        !cm_cur_u32le(&desc, &code) || code == 0)
        return NULL;
    const char *v = ana__printf(c, "%u.%u.%u", code >> 16, code >> 8 & 0xFF, code & 0xFF);
    k->nomem |= !v;
    return v;
}
