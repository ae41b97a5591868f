/* ana_kernel_triage.c -- the TRIAGE_DUMP64 block of a Windows kernel triage dump ("minidump",
 * DumpType 4): the loaded-driver list with names from the string pool -> modules (the kernel,
 * ntoskrnl, is a module too), unloaded drivers, the call-stack region at TopOfStack and the data
 * blocks of kernel memory -> regions, and the process and thread ids from the EPROCESS/ETHREAD
 * copies. Every offset in the block is absolute in the file and followed only through
 * cm_cur_window; a damaged part is skipped with a warning naming the field and offset.
 *
 * Format: ntiodump.h (TRIAGE_DUMP64, DUMP_DRIVER_ENTRY64 = DriverNameOffset + alignment +
 * KLDR_DATA_TABLE_ENTRY64, DUMP_STRING, DUMP_UNLOADED_DRIVERS64, TRIAGE_DATA_BLOCK). Where real
 * dumps differ from that header's comments, the code says so. */
#include <string.h>
#include <strings.h> /* strncasecmp */

#include "analyzer/ana_int.h"
#include "common/cm_cur.h"

enum {
    TRIAGE_OFFSET = 0x2000,    /* right after DUMP_HEADER64 */
    TRIAGE_SIZE = 0x80,        /* through DataBlocksCount */
    TRIAGE_VALID = 0x44475254, /* 'DGRT': the ULONG at ValidOffset, written last */
    /* DUMP_DRIVER_ENTRY64: DriverNameOffset, __alignment, then KLDR_DATA_TABLE_ENTRY64 at +8
     * (DllBase +0x30, SizeOfImage +0x40, CheckSum +0x78, TimeDateStamp +0x80; 0x88 bytes). */
    DRIVER_ENTRY_SIZE = 0x90,
    DRIVER_DLL_BASE = 0x38,
    DRIVER_SIZE_OF_IMAGE = 0x48,
    DRIVER_CHECKSUM = 0x80,
    DRIVER_TIMESTAMP = 0x88,
    /* DUMP_UNLOADED_DRIVERS64: UNICODE_STRING64 Name, WCHAR DriverName[12], StartAddress,
     * EndAddress. The list is a ULONG count (padded to 8 bytes) then the entries. */
    UNLOADED_ENTRY_SIZE = 0x38,
    UNLOADED_NAME_CHARS = 0x10,
    UNLOADED_NAME_BYTES = 24, /* MAX_UNLOADED_NAME_LENGTH */
    UNLOADED_START = 0x28,
    DATA_BLOCK_SIZE = 0x10, /* TRIAGE_DATA_BLOCK: Address, Offset, Size */
};

bool ana__kernel_triage_header(const uint8_t *p, size_t n, struct ana_triage_dump64 *t)
{
    *t = (struct ana_triage_dump64){ 0 };
    struct cm_cur whole = cm_cur_make(p, n), cur;
    if (!cm_cur_window(&whole, TRIAGE_OFFSET, TRIAGE_SIZE, &cur))
        return false;
    uint32_t *u32s[] = {
        &t->service_pack_build, &t->size_of_dump, &t->valid_offset, &t->context_offset,
        &t->exception_offset, &t->mm_offset, &t->unloaded_drivers_offset, &t->prcb_offset,
        &t->process_offset, &t->thread_offset, &t->call_stack_offset, &t->size_of_call_stack,
        &t->driver_list_offset, &t->driver_count, &t->string_pool_offset, &t->string_pool_size,
        &t->broken_driver_offset, &t->triage_options,
    };
    for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++)
        cm_cur_u32le(&cur, u32s[i]);
    cm_cur_u64le(&cur, &t->top_of_stack);
    cm_cur_skip(&cur, 16); /* ArchitectureSpecific: the IA64 backing store */
    cm_cur_u64le(&cur, &t->data_page_address);
    uint32_t *tail[] = {
        &t->data_page_offset,  &t->data_page_size,     &t->debugger_data_offset,
        &t->debugger_data_size, &t->data_blocks_offset, &t->data_blocks_count,
    };
    for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++)
        cm_cur_u32le(&cur, tail[i]);
    return !cur.failed;
}

/* A DUMP_STRING at absolute file offset off, which must lie inside the string pool. Its Length
 * counts UTF-16 code units in the dumps Windows writes (ntiodump.h's comment says bytes; the
 * corpus dump has 33 for "\SystemRoot\system32\ntoskrnl.exe"). NULL if it does not fit. */
static const char *pool_string(struct ana_crash *c, const struct cm_cur *pool, uint64_t pool_off,
                               uint64_t off)
{
    struct cm_cur cur;
    uint32_t units;
    if (off < pool_off || !cm_cur_window(pool, off - pool_off, 4, &cur) ||
        !cm_cur_u32le(&cur, &units))
        return NULL;
    if (units > c->limits.max_string_bytes / 2)
        return NULL;
    if (!cm_cur_window(pool, off - pool_off + 4, (uint64_t)units * 2, &cur))
        return NULL;
    return ana__utf16le_to_utf8(c, cur.p, cur.len);
}

static enum cm_code read_drivers(struct ana_crash *c, const struct cm_cur *dump,
                                 const struct ana_triage_dump64 *t, struct cm_err *err)
{
    if (t->driver_count == 0)
        return CM_E_OK;
    struct cm_cur pool;
    if (!cm_cur_window(dump, t->string_pool_offset, t->string_pool_size, &pool)) {
        ana__warn(c, "kernel dump: TRIAGE_DUMP64 string pool at 0x%x (0x%x bytes) runs past the "
                     "end of the file (%zu bytes); driver names unknown",
                  t->string_pool_offset, t->string_pool_size, c->byte_count);
        pool = cm_cur_make(NULL, 0);
    }
    uint64_t n = t->driver_count;
    if (n > c->limits.max_modules) {
        ana__warn(c, "kernel dump: TRIAGE_DUMP64.DriverCount %u exceeds the limit of %u "
                     "modules; list cut",
                  t->driver_count, c->limits.max_modules);
        n = c->limits.max_modules;
    }
    uint64_t fit = t->driver_list_offset < c->byte_count
                       ? (c->byte_count - t->driver_list_offset) / DRIVER_ENTRY_SIZE
                       : 0;
    if (n > fit) {
        ana__warn(c, "kernel dump: TRIAGE_DUMP64 driver list at 0x%x: %llu drivers of 0x%x bytes "
                     "run past the end of the file (%zu bytes); %llu read",
                  t->driver_list_offset, (unsigned long long)n, DRIVER_ENTRY_SIZE, c->byte_count,
                  (unsigned long long)fit);
        n = fit;
    }
    if (n == 0)
        return CM_E_OK;
    c->modules = ana__calloc(c, (size_t)n, sizeof *c->modules);
    if (!c->modules)
        return cm_fail(err, CM_E_NOMEM, "kernel dump: cannot allocate %llu modules",
                       (unsigned long long)n);
    size_t bad_names = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct cm_cur e;
        cm_cur_window(dump, t->driver_list_offset + i * DRIVER_ENTRY_SIZE, DRIVER_ENTRY_SIZE, &e);
        uint32_t name_off, size, checksum, stamp;
        uint64_t base;
        cm_cur_u32le(&e, &name_off);
        cm_cur_seek(&e, DRIVER_DLL_BASE);
        cm_cur_u64le(&e, &base);
        cm_cur_seek(&e, DRIVER_SIZE_OF_IMAGE);
        cm_cur_u32le(&e, &size);
        cm_cur_seek(&e, DRIVER_CHECKSUM);
        cm_cur_u32le(&e, &checksum);
        cm_cur_seek(&e, DRIVER_TIMESTAMP);
        cm_cur_u32le(&e, &stamp);
        struct ana_module *m = &c->modules[c->module_count];
        m->base = base;
        m->size = size;
        m->checksum = checksum;
        m->timestamp = stamp;
        m->path = pool_string(c, &pool, t->string_pool_offset, name_off);
        if (!m->path) {
            if (bad_names++ < 8)
                ana__warn(c, "kernel dump: driver %llu at 0x%llx: DriverNameOffset 0x%x is not a "
                             "DUMP_STRING inside the string pool at 0x%x (0x%x bytes)",
                          (unsigned long long)i,
                          (unsigned long long)(t->driver_list_offset + i * DRIVER_ENTRY_SIZE),
                          name_off, t->string_pool_offset, t->string_pool_size);
            m->path = ana__printf(c, "driver_%llu", (unsigned long long)i);
        }
        /* Breakpad's PE code id: TimeDateStamp then SizeOfImage, as a symbol server keys it. */
        m->code_id = ana__printf(c, "%08X%x", stamp, size);
        if (!m->path || !m->code_id)
            return cm_fail(err, CM_E_NOMEM, "kernel dump: cannot copy driver names");
        if (c->main_module < 0 && ana__kernel_is_core(m) &&
            strncasecmp(ana_module_basename(m), "hal", 3) != 0) { /* nt, the kernel image */
            c->main_module = (int)c->module_count;
            m->is_main = true;
        }
        c->module_count++;
    }
    if (bad_names > 8)
        ana__warn(c, "kernel dump: %zu driver names in all were unreadable", bad_names);
    return CM_E_OK;
}

static enum cm_code read_unloaded(struct ana_crash *c, const struct cm_cur *dump,
                                  const struct ana_triage_dump64 *t, struct cm_err *err)
{
    struct cm_cur cur;
    uint32_t count;
    if (t->unloaded_drivers_offset == 0)
        return CM_E_OK;
    if (!cm_cur_window(dump, t->unloaded_drivers_offset, 8, &cur) || !cm_cur_u32le(&cur, &count)) {
        ana__warn(c, "kernel dump: TRIAGE_DUMP64.UnloadedDriversOffset 0x%x is past the end of "
                     "the file",
                  t->unloaded_drivers_offset);
        return CM_E_OK;
    }
    uint64_t n = count, first = (uint64_t)t->unloaded_drivers_offset + 8;
    if (n > c->limits.max_modules) {
        ana__warn(c, "kernel dump: unloaded driver count %u at 0x%x exceeds the limit of %u; "
                     "list cut",
                  count, t->unloaded_drivers_offset, c->limits.max_modules);
        n = c->limits.max_modules;
    }
    uint64_t fit = first < c->byte_count ? (c->byte_count - first) / UNLOADED_ENTRY_SIZE : 0;
    if (n > fit) {
        ana__warn(c, "kernel dump: unloaded drivers at 0x%x: %llu entries of 0x%x bytes run past "
                     "the end of the file; %llu read",
                  t->unloaded_drivers_offset, (unsigned long long)n, UNLOADED_ENTRY_SIZE,
                  (unsigned long long)fit);
        n = fit;
    }
    if (n == 0)
        return CM_E_OK;
    c->unloaded_modules = ana__calloc(c, (size_t)n, sizeof *c->unloaded_modules);
    if (!c->unloaded_modules)
        return cm_fail(err, CM_E_NOMEM, "kernel dump: cannot allocate unloaded drivers");
    for (uint64_t i = 0; i < n; i++) {
        struct cm_cur e;
        cm_cur_window(dump, first + i * UNLOADED_ENTRY_SIZE, UNLOADED_ENTRY_SIZE, &e);
        uint16_t name_bytes;
        uint64_t start, end;
        const uint8_t *chars;
        cm_cur_u16le(&e, &name_bytes);
        cm_cur_seek(&e, UNLOADED_NAME_CHARS);
        cm_cur_view(&e, UNLOADED_NAME_BYTES, &chars);
        cm_cur_seek(&e, UNLOADED_START);
        cm_cur_u64le(&e, &start);
        cm_cur_u64le(&e, &end);
        /* Windows keeps only the first 12 characters of the name (Name.Length may say more). */
        if (name_bytes > UNLOADED_NAME_BYTES)
            name_bytes = UNLOADED_NAME_BYTES;
        struct ana_module *m = &c->unloaded_modules[c->unloaded_module_count];
        m->unloaded = true;
        m->base = start;
        m->size = end > start ? end - start : 0;
        m->path = ana__utf16le_to_utf8(c, chars, name_bytes & ~1u);
        if (!m->path)
            return cm_fail(err, CM_E_NOMEM, "kernel dump: cannot copy unloaded driver names");
        if (end < start)
            ana__warn(c, "kernel dump: unloaded driver %llu (%s): EndAddress 0x%llx is below "
                         "StartAddress 0x%llx",
                      (unsigned long long)i, m->path, (unsigned long long)end,
                      (unsigned long long)start);
        c->unloaded_module_count++;
    }
    return CM_E_OK;
}

/* Adds the region [addr, addr+size) whose bytes are at file offset off; false (after a warning)
 * when they are not all in the file. */
static bool add_region(struct ana_crash *c, const struct cm_cur *dump, size_t cap,
                       const char *what, uint64_t addr, uint64_t off, uint64_t size)
{
    struct cm_cur w;
    if (!cm_cur_window(dump, off, size, &w)) {
        ana__warn(c, "kernel dump: %s for 0x%llx at file offset 0x%llx (0x%llx bytes) runs past "
                     "the end of the file (%zu bytes); dropped",
                  what, (unsigned long long)addr, (unsigned long long)off,
                  (unsigned long long)size, c->byte_count);
        return false;
    }
    if (c->region_count >= cap)
        return false;
    c->regions[c->region_count++] = (struct ana_region){ .base = addr, .size = size, .data = w.p };
    return true;
}

static enum cm_code read_memory(struct ana_crash *c, const struct cm_cur *dump,
                                const struct ana_triage_dump64 *t, uint64_t kdbg,
                                struct ana_kernel_triage *out, struct cm_err *err)
{
    uint64_t nblocks = t->data_blocks_offset ? t->data_blocks_count : 0;
    uint64_t room = c->limits.max_regions > 3 ? c->limits.max_regions - 3 : 0;
    if (nblocks > room) {
        ana__warn(c, "kernel dump: TRIAGE_DUMP64.DataBlocksCount %u exceeds the limit of %u "
                     "regions; list cut",
                  t->data_blocks_count, c->limits.max_regions);
        nblocks = room;
    }
    uint64_t fit = t->data_blocks_offset < c->byte_count
                       ? (c->byte_count - t->data_blocks_offset) / DATA_BLOCK_SIZE
                       : 0;
    if (nblocks > fit) {
        ana__warn(c, "kernel dump: TRIAGE_DUMP64 data blocks at 0x%x: %llu descriptors run past "
                     "the end of the file; %llu read",
                  t->data_blocks_offset, (unsigned long long)nblocks, (unsigned long long)fit);
        nblocks = fit;
    }
    size_t cap = (size_t)nblocks + 3; /* call stack, debugger data, data page, blocks */
    c->regions = ana__calloc(c, cap, sizeof *c->regions);
    if (!c->regions)
        return cm_fail(err, CM_E_NOMEM, "kernel dump: cannot allocate %zu regions", cap);

    /* The call stack: SizeOfCallStack bytes from TopOfStack, the lowest address, upward. */
    if (t->call_stack_offset && t->size_of_call_stack) {
        if (t->top_of_stack + t->size_of_call_stack < t->top_of_stack)
            ana__warn(c, "kernel dump: call stack at 0x%llx (0x%x bytes) wraps the address space",
                      (unsigned long long)t->top_of_stack, t->size_of_call_stack);
        else if (add_region(c, dump, cap, "TRIAGE_DUMP64 call stack", t->top_of_stack,
                            t->call_stack_offset, t->size_of_call_stack)) {
            out->stack_base = t->top_of_stack;
            out->stack_size = t->size_of_call_stack;
            out->stack_data = c->regions[c->region_count - 1].data;
        }
    }
    if (t->debugger_data_offset && t->debugger_data_size && kdbg)
        add_region(c, dump, cap, "TRIAGE_DUMP64 debugger data (KDDEBUGGER_DATA64)", kdbg,
                   t->debugger_data_offset, t->debugger_data_size);
    if (t->data_page_offset && t->data_page_size && t->data_page_address)
        add_region(c, dump, cap, "TRIAGE_DUMP64 data page", t->data_page_address,
                   t->data_page_offset, t->data_page_size);

    size_t bad = 0;
    for (uint64_t i = 0; i < nblocks; i++) {
        struct cm_cur d;
        uint64_t addr;
        uint32_t off, size;
        cm_cur_window(dump, t->data_blocks_offset + i * DATA_BLOCK_SIZE, DATA_BLOCK_SIZE, &d);
        cm_cur_u64le(&d, &addr);
        cm_cur_u32le(&d, &off);
        cm_cur_u32le(&d, &size);
        if (size == 0)
            continue;
        /* Windows copies the stack's live part again as a data block: a duplicate, not a
         * conflict, so it is dropped here silently. */
        if (out->stack_data && addr >= out->stack_base &&
            addr - out->stack_base < out->stack_size &&
            size <= out->stack_size - (addr - out->stack_base))
            continue;
        struct cm_cur w;
        if (!cm_cur_window(dump, off, size, &w)) {
            if (bad++ < 8)
                ana__warn(c, "kernel dump: data block %llu for 0x%llx: Offset 0x%x Size 0x%x runs "
                             "past the end of the file (%zu bytes); dropped",
                          (unsigned long long)i, (unsigned long long)addr, off, size,
                          c->byte_count);
            continue;
        }
        c->regions[c->region_count++] =
            (struct ana_region){ .base = addr, .size = size, .data = w.p };
    }
    if (bad > 8)
        ana__warn(c, "kernel dump: %zu data blocks in all were dropped", bad);
    return CM_E_OK;
}

/* Offsets of EPROCESS.UniqueProcessId, EPROCESS.ImageFileName and ETHREAD.Cid by x64 kernel
 * build. Only layouts checked against a real dump are listed; a result must also pass a cross
 * check (ETHREAD.Cid.UniqueProcess == EPROCESS.UniqueProcessId) before it is used. */
static const struct {
    uint32_t build_lo, build_hi;
    uint16_t pid, image_name, cid;
} x64_layouts[] = {
    { 19041, 19045, 0x440, 0x5A8, 0x478 }, /* Windows 10 2004 .. 22H2 (corpus triage_x64.dmp) */
};

static void read_ids(struct ana_crash *c, const struct cm_cur *dump,
                     const struct ana_triage_dump64 *t, uint32_t build,
                     struct ana_kernel_triage *out)
{
    if (!t->process_offset || !t->thread_offset || c->system_info.cpu != ANA_CPU_AMD64)
        return;
    for (size_t i = 0; i < sizeof x64_layouts / sizeof x64_layouts[0]; i++) {
        if (build < x64_layouts[i].build_lo || build > x64_layouts[i].build_hi)
            continue;
        struct cm_cur p, th, name;
        uint64_t pid, cid_pid, cid_tid;
        const uint8_t *chars;
        cm_cur_window(dump, (uint64_t)t->process_offset + x64_layouts[i].pid, 8, &p);
        cm_cur_u64le(&p, &pid);
        cm_cur_window(dump, (uint64_t)t->thread_offset + x64_layouts[i].cid, 16, &th);
        cm_cur_u64le(&th, &cid_pid);
        cm_cur_u64le(&th, &cid_tid);
        if (p.failed || th.failed || pid != cid_pid || pid > UINT32_MAX || cid_tid > UINT32_MAX ||
            (pid & 3) || (cid_tid & 3)) {
            ana__warn(c, "kernel dump: process/thread blocks at 0x%x/0x%x do not hold matching "
                         "ids for build %u; thread id unknown",
                      t->process_offset, t->thread_offset, build);
            return;
        }
        out->has_ids = true;
        out->pid = (uint32_t)pid;
        out->tid = (uint32_t)cid_tid;
        c->pid = out->pid;
        /* ImageFileName: UCHAR[15], NUL-padded ASCII. */
        cm_cur_window(dump, (uint64_t)t->process_offset + x64_layouts[i].image_name, 15, &name);
        if (cm_cur_view(&name, 15, &chars)) {
            size_t len = 0;
            while (len < 15 && chars[len] >= 0x20 && chars[len] < 0x7F)
                len++;
            if (len > 0 && (len == 15 || chars[len] == 0))
                c->process_name = ana__strndup(c, (const char *)chars, len);
        }
        return;
    }
}

enum cm_code ana__kernel_triage(struct ana_crash *c, uint32_t build, uint64_t kdbg,
                                struct ana_kernel_triage *out, struct cm_err *err)
{
    *out = (struct ana_kernel_triage){ 0 };
    struct cm_cur dump = cm_cur_make(c->bytes, c->byte_count);
    struct ana_triage_dump64 t;
    if (!ana__kernel_triage_header(c->bytes, c->byte_count, &t)) {
        ana__warn(c, "kernel dump: TRIAGE_DUMP64 at 0x2000 needs 0x%x bytes, the file has %zu; "
                     "only the header facts were read",
                  TRIAGE_OFFSET + TRIAGE_SIZE, c->byte_count);
        return CM_E_OK;
    }
    c->bugcheck.triage = true;
    out->context_offset = t.context_offset;
    out->exception_offset = t.exception_offset;
    uint32_t valid = 0;
    if (t.size_of_dump > c->byte_count)
        ana__warn(c, "kernel dump: TRIAGE_DUMP64.SizeOfDump is %u bytes but the file has %zu; "
                     "the dump is cut",
                  t.size_of_dump, c->byte_count);
    else if (!cm_cur_peek_u32le(&dump, t.valid_offset, &valid) || valid != TRIAGE_VALID)
        ana__warn(c, "kernel dump: no TRGD mark at TRIAGE_DUMP64.ValidOffset 0x%x; the dump may "
                     "be incomplete",
                  t.valid_offset);

    enum cm_code rc;
    if ((rc = read_drivers(c, &dump, &t, err)) || (rc = read_unloaded(c, &dump, &t, err)) ||
        (rc = read_memory(c, &dump, &t, kdbg, out, err)))
        return rc;
    read_ids(c, &dump, &t, build, out);
    return CM_E_OK;
}
