/* ana_mdmp_memory.c -- the MDMP memory streams: MemoryList and Memory64List become memory
 * regions, one range at a time (a bad range is dropped with a warning and the rest kept;
 * ana__finish sorts them and drops overlaps one by one), and MemoryInfoList becomes the
 * protection mappings the stack scanner consults.
 *
 * Formats: minidumpapiset.h "MINIDUMP_MEMORY_LIST", "MINIDUMP_MEMORY_DESCRIPTOR",
 * "MINIDUMP_MEMORY64_LIST", "MINIDUMP_MEMORY_DESCRIPTOR64", "MINIDUMP_MEMORY_INFO_LIST",
 * "MINIDUMP_MEMORY_INFO"; winnt.h PAGE_* and MEM_* constants. */
#include "analyzer/ana_int.h"

#define MD_MEMORY_DESCRIPTOR_BYTES 16
#define MD_MEMORY64_DESCRIPTOR_BYTES 16
#define MD_MEMORY_INFO_BYTES 48
#define MEM_COMMIT 0x1000u

enum cm_code ana__mdmp_memory_list(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                   struct cm_err *err)
{
    struct ana_crash *c = m->c;
    uint32_t n;
    struct cm_cur e;
    /* MINIDUMP_MEMORY_LIST.NumberOfMemoryRanges x sizeof(MINIDUMP_MEMORY_DESCRIPTOR) */
    if (!ana__mdmp_list(m, s, MD_MEMORY_DESCRIPTOR_BYTES, c->limits.max_regions, "ranges", &n,
                        &e))
        return CM_E_OK;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t base;
        uint32_t size, rva;
        cm_cur_u64le(&e, &base); /* MINIDUMP_MEMORY_DESCRIPTOR.StartOfMemoryRange */
        cm_cur_u32le(&e, &size); /* .Memory.DataSize */
        cm_cur_u32le(&e, &rva);  /* .Memory.Rva */
        if (!ana__mdmp_add_region(m, base, size, rva, "MemoryList"))
            return cm_fail(err, CM_E_NOMEM, "minidump: out of memory reading MemoryList");
    }
    return CM_E_OK;
}

/* The ranges' bytes follow each other from BaseRva; a range running past the end of the file is
 * cut at the end and the list stops there. */
enum cm_code ana__mdmp_memory64_list(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                     struct cm_err *err)
{
    struct ana_crash *c = m->c;
    struct cm_cur cur = s->cur;
    uint64_t n, rva;
    cm_cur_u64le(&cur, &n);   /* MINIDUMP_MEMORY64_LIST.NumberOfMemoryRanges */
    cm_cur_u64le(&cur, &rva); /* .BaseRva */
    if (cur.failed || n > cm_cur_left(&cur) / MD_MEMORY64_DESCRIPTOR_BYTES) {
        ana__warn(c, "minidump: Memory64List at 0x%x: %llu ranges of %d bytes exceed the "
                     "stream's %u bytes; list skipped",
                  (unsigned)s->rva, (unsigned long long)n, MD_MEMORY64_DESCRIPTOR_BYTES,
                  (unsigned)s->size);
        return CM_E_OK;
    }
    if (n > c->limits.max_regions) {
        ana__warn(c, "minidump: Memory64List: %llu ranges exceed the limit of %u; the rest are "
                     "ignored",
                  (unsigned long long)n, (unsigned)c->limits.max_regions);
        n = c->limits.max_regions;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t base, size;
        cm_cur_u64le(&cur, &base); /* MINIDUMP_MEMORY_DESCRIPTOR64.StartOfMemoryRange */
        cm_cur_u64le(&cur, &size); /* .DataSize */
        if (rva > c->byte_count || size > c->byte_count - rva) {
            uint64_t have = rva < c->byte_count ? c->byte_count - rva : 0;
            ana__warn(c, "minidump: Memory64List: range %llu at 0x%llx needs 0x%llx bytes at "
                         "file offset 0x%llx, the file holds 0x%llx; the list is cut there",
                      (unsigned long long)i, (unsigned long long)base, (unsigned long long)size,
                      (unsigned long long)rva, (unsigned long long)have);
            if (have && !ana__mdmp_add_region(m, base, have, rva, "Memory64List"))
                return cm_fail(err, CM_E_NOMEM, "minidump: out of memory reading Memory64List");
            return CM_E_OK;
        }
        if (!ana__mdmp_add_region(m, base, size, rva, "Memory64List"))
            return cm_fail(err, CM_E_NOMEM, "minidump: out of memory reading Memory64List");
        rva += size; /* cannot wrap: rva + size <= byte_count */
    }
    return CM_E_OK;
}

/* winnt.h PAGE_* protection (low byte; PAGE_GUARD and friends above it) to ANA_PROT_*. */
static uint32_t prot_of(uint32_t protect)
{
    switch (protect & 0xFFu) {
    case 0x02: return ANA_PROT_R;              /* PAGE_READONLY */
    case 0x04:                                 /* PAGE_READWRITE */
    case 0x08: return ANA_PROT_R | ANA_PROT_W; /* PAGE_WRITECOPY */
    case 0x10: return ANA_PROT_X;              /* PAGE_EXECUTE */
    case 0x20: return ANA_PROT_R | ANA_PROT_X; /* PAGE_EXECUTE_READ */
    case 0x40:                                 /* PAGE_EXECUTE_READWRITE */
    case 0x80: return ANA_PROT_R | ANA_PROT_W | ANA_PROT_X; /* PAGE_EXECUTE_WRITECOPY */
    default: return 0;                         /* PAGE_NOACCESS */
    }
}

enum cm_code ana__mdmp_memory_info_list(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                        struct cm_err *err)
{
    struct ana_crash *c = m->c;
    struct cm_cur cur = s->cur;
    uint32_t hsize, esize;
    uint64_t n;
    cm_cur_u32le(&cur, &hsize); /* MINIDUMP_MEMORY_INFO_LIST.SizeOfHeader */
    cm_cur_u32le(&cur, &esize); /* .SizeOfEntry */
    cm_cur_u64le(&cur, &n);     /* .NumberOfEntries */
    if (cur.failed || hsize < 16 || esize < MD_MEMORY_INFO_BYTES || hsize > s->size ||
        n > (s->size - hsize) / esize) {
        ana__warn(c, "minidump: MemoryInfoList at 0x%x: header of %u bytes with %llu entries "
                     "of %u bytes does not fit the stream's %u bytes; skipped",
                  (unsigned)s->rva, (unsigned)hsize, (unsigned long long)n, (unsigned)esize,
                  (unsigned)s->size);
        return CM_E_OK;
    }
    if (n > c->limits.max_regions) {
        ana__warn(c, "minidump: MemoryInfoList: %llu entries exceed the limit of %u; the rest "
                     "are ignored",
                  (unsigned long long)n, (unsigned)c->limits.max_regions);
        n = c->limits.max_regions;
    }
    for (uint64_t i = 0; i < n; i++) {
        struct cm_cur e;
        uint64_t base, alloc_base, size;
        uint32_t alloc_protect, pad, state, protect, type;
        cm_cur_window(&s->cur, hsize + i * esize, esize, &e);
        cm_cur_u64le(&e, &base);          /* MINIDUMP_MEMORY_INFO.BaseAddress */
        cm_cur_u64le(&e, &alloc_base);    /* .AllocationBase */
        cm_cur_u32le(&e, &alloc_protect); /* .AllocationProtect */
        cm_cur_u32le(&e, &pad);           /* .__alignment1 */
        cm_cur_u64le(&e, &size);          /* .RegionSize */
        cm_cur_u32le(&e, &state);         /* .State */
        cm_cur_u32le(&e, &protect);       /* .Protect */
        cm_cur_u32le(&e, &type);          /* .Type */
        if (state != MEM_COMMIT || size == 0) /* reserved and free ranges hold nothing */
            continue;
        if (base + size < base) {
            ana__warn(c, "minidump: MemoryInfoList: entry %llu at 0x%llx of 0x%llx bytes wraps "
                         "the address space; skipped",
                      (unsigned long long)i, (unsigned long long)base, (unsigned long long)size);
            continue;
        }
        struct ana_mapping map = { .base = base, .size = size, .prot = prot_of(protect) };
        if (!ana__mdmp_add_mapping(m, &map))
            return cm_fail(err, CM_E_NOMEM, "minidump: out of memory reading MemoryInfoList");
    }
    return CM_E_OK;
}
