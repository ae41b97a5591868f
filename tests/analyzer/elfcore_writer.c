/* elfcore_writer.c -- small ELF cores from a description. Layouts as Linux writes them:
 * fs/binfmt_elf.c, <linux/elfcore.h> (elf_prstatus: 112 bytes of common fields on 64-bit, 72 on
 * 32-bit, then pr_reg and pr_fpvalid), elf_prpsinfo, siginfo_t (128 bytes), NT_FILE. */
#include "tests/analyzer/elfcore_writer.h"

#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "tests/th.h"

const uint8_t ew_build_id[20] = { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9,
                                  0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0, 0xb1, 0xb2, 0xb3 };

struct mach {
    unsigned machine, word, slots, prstatus, prpsinfo, id_bytes, sp_slot;
};

static const struct mach machs[] = {
    { EM_X86_64, 8, 27, 336, 136, 4, 19 }, /* user_regs_struct: rsp is slot 19 */
    { EM_386, 4, 17, 144, 124, 2, 15 },    /* esp is slot 15; 16-bit uid in elf_prpsinfo */
    { EM_AARCH64, 8, 34, 392, 136, 4, 31 },
    { EM_ARM, 4, 18, 148, 124, 2, 13 },
};

static const struct mach *mach_of(unsigned machine)
{
    for (size_t i = 0; i < sizeof machs / sizeof *machs; i++)
        if (machs[i].machine == machine)
            return &machs[i];
    fail_msg("elfcore_writer: machine %u not described", machine);
    return NULL;
}

struct wbuf {
    uint8_t *p;
    size_t n;
};

static void put(struct wbuf *b, const void *p, size_t n)
{
    b->p = realloc(b->p, b->n + n + 1);
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put_le(struct wbuf *b, uint64_t v, unsigned bytes)
{
    uint8_t x[8];
    for (unsigned i = 0; i < bytes; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, bytes);
}

static void pad_to(struct wbuf *b, size_t align)
{
    static const uint8_t zero[4096];
    while (b->n % align)
        put(b, zero, align - b->n % align < sizeof zero ? align - b->n % align : sizeof zero);
}

static void put_zero(struct wbuf *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_le(b, 0, 1);
}

/* gABI "Note Section": namesz, descsz, type, name and descriptor each padded to 4. */
static void put_note(struct wbuf *b, const char *name, uint32_t type, const struct wbuf *desc)
{
    size_t namesz = strlen(name) + 1;
    put_le(b, namesz, 4);
    put_le(b, desc->n, 4);
    put_le(b, type, 4);
    put(b, name, namesz);
    pad_to(b, 4);
    put(b, desc->p, desc->n);
    pad_to(b, 4);
}

uint64_t ew_reg(const struct ew_desc *d, unsigned t, unsigned slot)
{
    const struct mach *m = mach_of(d->machine);
    if (slot == m->sp_slot)
        return EW_STACK + 0x800 + 0x10 * t;
    return 0x1000u * (t + 1) + slot;
}

uint64_t ew_fault(const struct ew_desc *d)
{
    return mach_of(d->machine)->word == 8 ? 0xdeadbeef000ull : 0xdeadb000u;
}

static void prstatus(struct wbuf *notes, const struct ew_desc *d, const struct mach *m,
                     unsigned t)
{
    struct wbuf s = { 0 };
    unsigned w = m->word;
    put_le(&s, EW_SIGNO, 4); /* pr_info: si_signo, si_code, si_errno */
    put_le(&s, 0, 4);
    put_le(&s, 0, 4);
    put_le(&s, EW_SIGNO, 2); /* pr_cursig */
    put_zero(&s, 2 + 2 * w); /* padding, pr_sigpend, pr_sighold */
    put_le(&s, EW_PID + t, 4);
    put_le(&s, 1, 4);        /* ppid, pgrp, sid */
    put_le(&s, EW_PID, 4);
    put_le(&s, EW_PID, 4);
    put_zero(&s, 8 * w);     /* four struct timeval */
    for (unsigned i = 0; i < m->slots; i++)
        put_le(&s, ew_reg(d, t, i), w);
    put_le(&s, 1, 4);        /* pr_fpvalid */
    pad_to(&s, w);
    s.n = d->prstatus_bytes ? d->prstatus_bytes > s.n ? s.n : d->prstatus_bytes : s.n;
    if (s.n != m->prstatus && !d->prstatus_bytes)
        fail_msg("elfcore_writer: NT_PRSTATUS of %zu bytes, expected %u", s.n, m->prstatus);
    put_note(notes, "CORE", NT_PRSTATUS, &s);
    free(s.p);
}

static void prpsinfo(struct wbuf *notes, const struct mach *m)
{
    struct wbuf s = { 0 };
    char fname[16] = "prog", args[80] = "/usr/bin/prog --flag value";
    put_le(&s, 0, 1);   /* pr_state, pr_sname, pr_zomb, pr_nice */
    put_le(&s, 'R', 1);
    put_zero(&s, 2);
    pad_to(&s, m->word);
    put_le(&s, 0x400600, m->word); /* pr_flag */
    put_zero(&s, 2 * m->id_bytes); /* uid, gid */
    put_le(&s, EW_PID, 4);
    put_le(&s, 1, 4);
    put_le(&s, EW_PID, 4);
    put_le(&s, EW_PID, 4);
    put(&s, fname, sizeof fname);
    put(&s, args, sizeof args);
    if (s.n != m->prpsinfo)
        fail_msg("elfcore_writer: NT_PRPSINFO of %zu bytes, expected %u", s.n, m->prpsinfo);
    put_note(notes, "CORE", NT_PRPSINFO, &s);
    free(s.p);
}

static void siginfo(struct wbuf *notes, const struct ew_desc *d, const struct mach *m)
{
    struct wbuf s = { 0 };
    put_le(&s, EW_SIGNO, 4);
    put_le(&s, 0, 4);
    put_le(&s, EW_CODE, 4);
    pad_to(&s, m->word); /* the union is aligned for a pointer */
    put_le(&s, ew_fault(d), m->word);
    put_zero(&s, 128 - s.n);
    put_note(notes, "CORE", NT_SIGINFO, &s);
    free(s.p);
}

static void auxv(struct wbuf *notes, const struct mach *m)
{
    struct wbuf s = { 0 };
    const uint64_t v[] = { AT_PAGESZ, 4096, AT_ENTRY, EW_PROG + 0x100, AT_NULL, 0 };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        put_le(&s, v[i], m->word);
    put_note(notes, "CORE", NT_AUXV, &s);
    free(s.p);
}

static void files(struct wbuf *notes, const struct mach *m)
{
    struct wbuf s = { 0 };
    const uint64_t ents[][3] = { { EW_PROG, EW_PROG + 0x1000, 0 },
                                 { EW_LIB, EW_LIB + 0x1000, 0 },
                                 { EW_LIB + 0x1000, EW_LIB + 0x3000, 1 } };
    const char *names[] = { "/usr/bin/prog", "/usr/lib/libx.so.1", "/usr/lib/libx.so.1" };
    put_le(&s, 3, m->word);
    put_le(&s, 4096, m->word);
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 3; j++)
            put_le(&s, ents[i][j], m->word);
    for (size_t i = 0; i < 3; i++)
        put(&s, names[i], strlen(names[i]) + 1);
    put_note(notes, "CORE", NT_FILE, &s);
    free(s.p);
}

static void put_phdr(struct wbuf *b, const struct mach *m, uint32_t type, uint32_t flags,
                     uint64_t off, uint64_t vaddr, uint64_t filesz, uint64_t memsz,
                     uint64_t align)
{
    unsigned w = m->word;
    put_le(b, type, 4);
    if (w == 8)
        put_le(b, flags, 4);
    put_le(b, off, w);
    put_le(b, vaddr, w);
    put_le(b, 0, w);
    put_le(b, filesz, w);
    put_le(b, memsz, w);
    if (w == 4)
        put_le(b, flags, 4);
    put_le(b, align, w);
}

static void put_ehdr(struct wbuf *b, const struct mach *m, uint16_t type, uint16_t phnum)
{
    unsigned w = m->word;
    uint8_t ident[EI_NIDENT] = { 0x7f, 'E', 'L', 'F', w == 8 ? ELFCLASS64 : ELFCLASS32,
                                 ELFDATA2LSB, EV_CURRENT };
    put(b, ident, sizeof ident);
    put_le(b, type, 2);
    put_le(b, m->machine, 2);
    put_le(b, EV_CURRENT, 4);
    put_le(b, 0, w);                 /* e_entry */
    put_le(b, w == 8 ? 64 : 52, w);  /* e_phoff: right after the header */
    put_le(b, 0, w);                 /* e_shoff */
    put_le(b, 0, 4);                 /* e_flags */
    put_le(b, w == 8 ? 64 : 52, 2);  /* e_ehsize */
    put_le(b, w == 8 ? 56 : 32, 2);  /* e_phentsize */
    put_le(b, phnum, 2);
    put_zero(b, 6);                  /* e_shentsize, e_shnum, e_shstrndx */
}

/* The library's first page: ELF header, PT_LOAD and PT_NOTE, and the build-id note at 0x200. */
static void lib_page(struct wbuf *b, const struct mach *m)
{
    struct wbuf page = { 0 }, id = { 0 };
    put_ehdr(&page, m, ET_DYN, 2);
    put_phdr(&page, m, PT_LOAD, PF_R | PF_X, 0, 0, 0x3000, 0x3000, 0x1000);
    put_phdr(&page, m, PT_NOTE, PF_R, 0x200, 0x200, 36, 36, 4);
    put_zero(&page, 0x200 - page.n);
    put(&id, ew_build_id, sizeof ew_build_id);
    put_note(&page, "GNU", NT_GNU_BUILD_ID, &id);
    put_zero(&page, 0x1000 - page.n);
    put(b, page.p, page.n);
    free(page.p);
    free(id.p);
}

uint8_t *ew_core(const struct ew_desc *d, size_t *len)
{
    const struct mach *m = mach_of(d->machine);
    struct wbuf notes = { 0 }, core = { 0 };
    for (unsigned t = 0; t < d->threads; t++)
        prstatus(&notes, d, m, t);
    prpsinfo(&notes, m);
    siginfo(&notes, d, m);
    auxv(&notes, m);
    files(&notes, m);
    size_t phnum = 5, notes_off = (m->word == 8 ? 64 : 52) + phnum * (m->word == 8 ? 56 : 32);
    size_t data_off = (notes_off + notes.n + 4095) / 4096 * 4096;
    put_ehdr(&core, m, ET_CORE, (uint16_t)phnum);
    put_phdr(&core, m, PT_NOTE, 0, notes_off, 0, notes.n, 0, 4);
    put_phdr(&core, m, PT_LOAD, PF_R | PF_X, data_off, EW_PROG, 0, 0x1000, 0x1000);
    put_phdr(&core, m, PT_LOAD, PF_R, data_off, EW_LIB, 0x1000, 0x1000, 0x1000);
    put_phdr(&core, m, PT_LOAD, PF_R | PF_X, data_off + 0x1000, EW_LIB + 0x1000, 0, 0x2000,
             0x1000);
    put_phdr(&core, m, PT_LOAD, PF_R | PF_W, data_off + 0x1000, EW_STACK, 0x1000, 0x1000,
             0x1000);
    put(&core, notes.p, notes.n);
    put_zero(&core, data_off - core.n);
    lib_page(&core, m);
    for (unsigned i = 0; i < 0x1000 / 4; i++) /* the stack: recognizable words */
        put_le(&core, 0x57ac0000u + i, 4);
    free(notes.p);
    *len = core.n;
    return core.p;
}
