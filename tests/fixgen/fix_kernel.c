/* fix_kernel.c -- writes Windows kernel triage dumps (PAGEDU64, DumpType 4) from a description:
 * any bug check and parameters, any driver list, a faulting driver and offset, a call stack with
 * given return addresses, data blocks, process and thread ids. Layout as Windows writes it:
 * DUMP_HEADER64 (0x2000 bytes, "PAGE" fill) with the CONTEXT at 0x348 and EXCEPTION_RECORD64 at
 * 0xF00; TRIAGE_DUMP64 at 0x2000 and its sections, each 8-byte aligned, in the order the kernel
 * places them. Format: ntiodump.h, winnt.h (CONTEXT for AMD64 and ARM64). This writer is
 * independent of the analyzer's reader: it only shares the public register numbering. */
#include <stdlib.h>
#include <string.h>
#include <strings.h> /* strcasecmp */

#include "tests/fixgen/fixgen.h"

enum {
    HEADER_SIZE = 0x2000,
    TRIAGE_SIZE = 0x80,
    CONTEXT_OFFSET = 0x348,
    EXCEPTION_OFFSET = 0xF00,
    DRIVER_ENTRY_SIZE = 0x90,
    UNLOADED_ENTRY_SIZE = 0x38,
    MM_STORAGE_SIZE = 0x50,
    /* Windows 10 build 19041 x64: sizeof(EPROCESS), sizeof(ETHREAD) and the fields written. */
    EPROCESS_SIZE = 0xA40,
    EPROCESS_PID = 0x440,
    EPROCESS_IMAGE_NAME = 0x5A8,
    ETHREAD_SIZE = 0x898,
    ETHREAD_CID = 0x478,
};

static const char *base_name(const char *path)
{
    const char *b = path;
    for (const char *p = path; *p; p++)
        if (*p == '\\' || *p == '/')
            b = p + 1;
    return b;
}

static const struct fix_kdriver *find_driver(const struct fix_kernel *d, const char *name)
{
    for (size_t i = 0; name && i < d->driver_count; i++)
        if (d->drivers[i].name && strcasecmp(base_name(d->drivers[i].name), name) == 0)
            return &d->drivers[i];
    return NULL;
}

uint64_t fix_kernel_addr(const struct fix_kernel *d, const char *driver, uint64_t offset)
{
    const struct fix_kdriver *k = find_driver(d, driver);
    return k ? k->base + offset : 0;
}

/* UTF-16LE of an ASCII/Latin-1 string, one code unit per byte. */
static void put_utf16(struct fix_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fix_buf_u16(b, (uint8_t)s[i]);
}

/* CONTEXT (AMD64, 0x4D0 bytes) or ARM64 (0x390 bytes) at off in the header. */
static void put_context(uint8_t *p, size_t len, const struct fix_kernel *d, uint64_t pc,
                        uint64_t sp, uint64_t fp)
{
    uint64_t r[ANA_NREGS];
    memcpy(r, d->regs, sizeof r);
    memset(p + CONTEXT_OFFSET, 0, 0x4D0);
    if (d->cpu == ANA_CPU_ARM64) {
        r[ANA_ARM64_PC] = pc;
        r[ANA_ARM64_SP] = sp;
        r[ANA_ARM64_FP] = fp;
        uint32_t flags = d->context_flags.set ? (uint32_t)d->context_flags.v : 0x00400003;
        fix_put_u32(p, len, CONTEXT_OFFSET + 0x0, flags);
        fix_put_u32(p, len, CONTEXT_OFFSET + 0x4, (uint32_t)r[ANA_ARM64_CPSR]);
        for (int i = 0; i < 33; i++) /* X0..X28, Fp, Lr, Sp, Pc: ana.h numbers them 0..32 */
            fix_put_u64(p, len, CONTEXT_OFFSET + 0x8 + 8u * (unsigned)i, r[i]);
        return;
    }
    r[ANA_AMD64_RIP] = pc;
    r[ANA_AMD64_RSP] = sp;
    r[ANA_AMD64_RBP] = fp;
    uint32_t flags = d->context_flags.set ? (uint32_t)d->context_flags.v : 0x0010001F;
    fix_put_u32(p, len, CONTEXT_OFFSET + 0x30, flags);
    fix_put_u32(p, len, CONTEXT_OFFSET + 0x34, 0x1F80);  /* MxCsr */
    fix_put_u16(p, len, CONTEXT_OFFSET + 0x38, 0x10);    /* SegCs: kernel code */
    fix_put_u16(p, len, CONTEXT_OFFSET + 0x42, 0x18);    /* SegSs */
    fix_put_u32(p, len, CONTEXT_OFFSET + 0x44, (uint32_t)(r[ANA_AMD64_RFLAGS] ? r[ANA_AMD64_RFLAGS]
                                                                             : 0x50246));
    /* Rax Rcx Rdx Rbx Rsp Rbp Rsi Rdi R8..R15 from 0x78, Rip at 0xF8. */
    static const int order[17] = {
        ANA_AMD64_RAX, ANA_AMD64_RCX, ANA_AMD64_RDX, ANA_AMD64_RBX, ANA_AMD64_RSP, ANA_AMD64_RBP,
        ANA_AMD64_RSI, ANA_AMD64_RDI, ANA_AMD64_R8,  ANA_AMD64_R9,  ANA_AMD64_R10, ANA_AMD64_R11,
        ANA_AMD64_R12, ANA_AMD64_R13, ANA_AMD64_R14, ANA_AMD64_R15, ANA_AMD64_RIP,
    };
    for (int i = 0; i < 17; i++)
        fix_put_u64(p, len, CONTEXT_OFFSET + 0x78 + 8u * (unsigned)i, r[order[i]]);
}

static void put_header(struct fix_buf *b, const struct fix_kernel *d, uint32_t dump_type,
                       uint64_t pc, uint64_t sp, uint64_t fp)
{
    size_t at = b->len;
    for (int i = 0; i < HEADER_SIZE / 4; i++)
        fix_buf_bytes(b, "PAGE", 4);
    if (b->failed)
        return;
    uint8_t *p = b->p + at;
    size_t len = HEADER_SIZE;
    memcpy(p + 4, "DU64", 4);
    fix_put_u32(p, len, 0x08, 0xF);                         /* MajorVersion: free build */
    fix_put_u32(p, len, 0x0C, d->build ? d->build : 19041); /* MinorVersion */
    fix_put_u64(p, len, 0x10, 0x1AD000);                     /* DirectoryTableBase */
    fix_put_u64(p, len, 0x18, 0xFFFFF8047C6FC500ull);        /* PfnDataBase */
    fix_put_u64(p, len, 0x20, d->ps_loaded_module_list);
    fix_put_u64(p, len, 0x28, 0xFFFFF8047C61E200ull);        /* PsActiveProcessHead */
    fix_put_u32(p, len, 0x30, d->cpu == ANA_CPU_ARM64 ? 0xAA64 : 0x8664);
    fix_put_u32(p, len, 0x34, d->processors ? d->processors : 4);
    fix_put_u32(p, len, 0x38, d->bugcheck);
    for (int i = 0; i < 4; i++)
        fix_put_u64(p, len, 0x40 + 8u * (unsigned)i, d->params[i]);
    fix_put_u64(p, len, 0x80, 0xFFFFF8047C600B20ull);        /* KdDebuggerDataBlock */
    memset(p + 0x88, 0, 0x10);                               /* PhysicalMemoryBlock: no runs */
    put_context(p, len, d, pc, sp, fp);
    /* EXCEPTION_RECORD64: code, flags, record, address, NumberParameters. */
    fix_put_u32(p, len, EXCEPTION_OFFSET, d->exception_code ? d->exception_code : 0x80000003);
    fix_put_u32(p, len, EXCEPTION_OFFSET + 4, 1);
    fix_put_u64(p, len, EXCEPTION_OFFSET + 8, 0);
    fix_put_u64(p, len, EXCEPTION_OFFSET + 0x10, d->exception_address);
    fix_put_u32(p, len, EXCEPTION_OFFSET + 0x18, 0);
    fix_put_u32(p, len, 0xF98, dump_type);
    if (d->system_time)
        fix_put_u64(p, len, 0xFA8, d->system_time);
    fix_put_u32(p, len, 0x1038, dump_type == 4 ? 0xCFF : 0);  /* MiniDumpFields */
    fix_put_u32(p, len, 0x1040, 1);                          /* ProductType: workstation */
}

enum cm_code fix_kernel_write(const struct fix_kernel *d, uint8_t **out, size_t *out_len,
                              struct fix_kernel_layout *layout, struct cm_err *err)
{
    *out = NULL;
    *out_len = 0;
    struct fix_kernel_layout lay = { .triage = HEADER_SIZE };
    struct fix_buf b = { 0 };
    enum cm_code rc = CM_E_OK;
    uint32_t dump_type = d->dump_type ? d->dump_type : 4;
    uint64_t stack_top = d->stack_top ? d->stack_top : 0xFFFF850429890000ull;
    uint32_t stack_size = d->stack_size ? d->stack_size : 0x3000;
    uint64_t sp = d->sp ? d->sp : stack_top + stack_size / 4;
    uint64_t pc = d->fault_pc;
    if (d->fault_driver) {
        const struct fix_kdriver *k = find_driver(d, d->fault_driver);
        if (!k)
            return cm_fail(err, CM_E_USAGE, "fault driver %s is not in the driver list",
                           d->fault_driver);
        pc = k->base + d->fault_offset;
    }

    put_header(&b, d, dump_type, pc, sp, d->fp);
    if (dump_type != 4) {
        fix_buf_zeros(&b, 0x1000); /* a full or bitmap dump's memory follows; not modelled */
        goto done;
    }

    fix_buf_zeros(&b, TRIAGE_SIZE); /* TRIAGE_DUMP64, filled in at the end */

    /* Mm information: DUMP_MM_STORAGE64 { Version 1, Size }. */
    uint32_t mm = (uint32_t)b.len;
    fix_buf_u32(&b, 1);
    fix_buf_u32(&b, MM_STORAGE_SIZE);
    fix_buf_zeros(&b, MM_STORAGE_SIZE - 8);

    /* Unloaded drivers: ULONG count, padding, DUMP_UNLOADED_DRIVERS64 entries. */
    lay.unloaded = (uint32_t)b.len;
    fix_buf_u32(&b, d->unloaded_count_over.set ? (uint32_t)d->unloaded_count_over.v
                                               : (uint32_t)d->unloaded_count);
    fix_buf_u32(&b, 0);
    for (size_t i = 0; i < d->unloaded_count; i++) {
        const char *name = d->unloaded[i].name ? d->unloaded[i].name : "";
        size_t n = strlen(name) > 12 ? 12 : strlen(name);
        fix_buf_u16(&b, (uint16_t)(2 * strlen(name))); /* Name.Length: the whole name */
        fix_buf_u16(&b, (uint16_t)(2 * strlen(name)));
        fix_buf_u32(&b, 0);
        fix_buf_u64(&b, 0);                             /* Name.Buffer: not kept */
        put_utf16(&b, name, n);
        fix_buf_zeros(&b, 24 - 2 * n);
        fix_buf_u64(&b, d->unloaded[i].start);
        fix_buf_u64(&b, d->unloaded[i].end);
    }
    fix_buf_align(&b, 8);

    /* EPROCESS and ETHREAD copies with the ids where build 19041 keeps them. */
    if (d->tid) {
        lay.process = (uint32_t)b.len;
        fix_buf_zeros(&b, EPROCESS_SIZE);
        lay.thread = (uint32_t)b.len;
        fix_buf_zeros(&b, ETHREAD_SIZE);
        if (!b.failed) {
            fix_put_u64(b.p, b.len, lay.process + EPROCESS_PID, d->pid);
            if (d->process_name)
                memcpy(b.p + lay.process + EPROCESS_IMAGE_NAME, d->process_name,
                       strlen(d->process_name) > 14 ? 14 : strlen(d->process_name));
            fix_put_u64(b.p, b.len, lay.thread + ETHREAD_CID, d->pid);
            fix_put_u64(b.p, b.len, lay.thread + ETHREAD_CID + 8, d->tid);
        }
        fix_buf_align(&b, 8);
    }

    /* The call stack. */
    lay.call_stack = (uint32_t)b.len;
    fix_buf_zeros(&b, stack_size);
    fix_buf_align(&b, 8);
    for (size_t k = 0; k < d->return_count && !b.failed; k++) {
        const struct fix_kdriver *drv = find_driver(d, d->returns[k].driver);
        uint64_t at = sp - stack_top + 0x28 + 0x30 * (uint64_t)k;
        if (!drv || sp < stack_top || at + 8 > stack_size) {
            rc = cm_fail(err, CM_E_USAGE, "return %zu (%s+0x%llx) has no driver or falls outside "
                                          "the stack",
                         k, d->returns[k].driver ? d->returns[k].driver : "?",
                         (unsigned long long)d->returns[k].offset);
            goto fail;
        }
        fix_put_u64(b.p, b.len, lay.call_stack + at, drv->base + d->returns[k].offset);
    }
    for (size_t k = 0; k < d->slot_count && !b.failed; k++) {
        if ((uint64_t)d->slots[k].offset + 8 > stack_size) {
            rc = cm_fail(err, CM_E_USAGE, "stack slot at 0x%x is outside the 0x%x-byte stack",
                         d->slots[k].offset, stack_size);
            goto fail;
        }
        fix_put_u64(b.p, b.len, lay.call_stack + d->slots[k].offset, d->slots[k].value);
    }

    /* The driver list, then its string pool (DUMP_STRING: ULONG length in UTF-16 units, the
     * units, a NUL; each 8-byte aligned). */
    lay.driver_list = (uint32_t)b.len;
    for (size_t i = 0; i < d->driver_count; i++) {
        const struct fix_kdriver *k = &d->drivers[i];
        size_t e = b.len;
        fix_buf_zeros(&b, DRIVER_ENTRY_SIZE);
        if (b.failed)
            break;
        fix_put_u64(b.p, b.len, e + 0x38, k->base);       /* LdrEntry.DllBase */
        fix_put_u32(b.p, b.len, e + 0x48, k->size);       /* LdrEntry.SizeOfImage */
        fix_put_u32(b.p, b.len, e + 0x80, k->checksum);   /* LdrEntry.CheckSum */
        fix_put_u32(b.p, b.len, e + 0x88, k->timestamp);  /* LdrEntry.TimeDateStamp */
    }
    lay.string_pool = (uint32_t)b.len;
    for (size_t i = 0; i < d->driver_count; i++) {
        const char *name = d->drivers[i].name ? d->drivers[i].name : "";
        uint32_t at = (uint32_t)b.len;
        if (i < FIX_LAYOUT_MAX)
            lay.driver_name[i] = at;
        fix_buf_u32(&b, (uint32_t)strlen(name));
        put_utf16(&b, name, strlen(name));
        fix_buf_u16(&b, 0);
        fix_buf_align(&b, 8);
        fix_put_u32(b.p, b.len, lay.driver_list + i * DRIVER_ENTRY_SIZE, at);
    }
    uint32_t pool_size = (uint32_t)(b.len - lay.string_pool);

    /* Data blocks: the TRIAGE_DATA_BLOCK descriptors, then the bytes of each. */
    lay.data_blocks = (uint32_t)b.len;
    fix_buf_zeros(&b, 16 * d->block_count);
    for (size_t i = 0; i < d->block_count && !b.failed; i++) {
        uint32_t at = (uint32_t)b.len;
        fix_buf_bytes(&b, d->blocks[i].data, d->blocks[i].size);
        fix_buf_align(&b, 8);
        fix_put_u64(b.p, b.len, lay.data_blocks + 16 * i, d->blocks[i].addr);
        fix_put_u32(b.p, b.len, lay.data_blocks + 16 * i + 8, at);
        fix_put_u32(b.p, b.len, lay.data_blocks + 16 * i + 12, d->blocks[i].size);
    }

    /* The mark written last, then TRIAGE_DUMP64 itself. */
    lay.valid = (uint32_t)b.len;
    fix_buf_bytes(&b, d->no_valid_mark ? "\0\0\0\0" : "TRGD", 4);
    if (b.failed)
        goto nomem;
    uint8_t *p = b.p;
    size_t n = b.len, t = HEADER_SIZE;
    fix_put_u32(p, n, t + 0x04, d->size_of_dump.set ? (uint32_t)d->size_of_dump.v : (uint32_t)n);
    fix_put_u32(p, n, t + 0x08, lay.valid);
    fix_put_u32(p, n, t + 0x0C, CONTEXT_OFFSET);
    fix_put_u32(p, n, t + 0x10, EXCEPTION_OFFSET);
    fix_put_u32(p, n, t + 0x14, mm);
    fix_put_u32(p, n, t + 0x18, lay.unloaded);
    fix_put_u32(p, n, t + 0x20, lay.process);
    fix_put_u32(p, n, t + 0x24, lay.thread);
    fix_put_u32(p, n, t + 0x28, lay.call_stack);
    fix_put_u32(p, n, t + 0x2C, stack_size);
    fix_put_u32(p, n, t + 0x30, lay.driver_list);
    fix_put_u32(p, n, t + 0x34, d->driver_count_over.set ? (uint32_t)d->driver_count_over.v
                                                         : (uint32_t)d->driver_count);
    fix_put_u32(p, n, t + 0x38, lay.string_pool);
    fix_put_u32(p, n, t + 0x3C, d->string_pool_size.set ? (uint32_t)d->string_pool_size.v
                                                        : pool_size);
    fix_put_u32(p, n, t + 0x44, 0xFFFFFFFF); /* TriageOptions */
    fix_put_u64(p, n, t + 0x48, d->top_of_stack.set ? d->top_of_stack.v : stack_top);
    fix_put_u32(p, n, t + 0x78, lay.data_blocks);
    fix_put_u32(p, n, t + 0x7C, d->data_blocks_count.set ? (uint32_t)d->data_blocks_count.v
                                                         : (uint32_t)d->block_count);
done:
    if (b.failed)
        goto nomem;
    if (layout)
        *layout = lay;
    *out = b.p;
    *out_len = b.len;
    return CM_E_OK;
nomem:
    rc = cm_fail(err, CM_E_NOMEM, "cannot allocate the kernel dump");
fail:
    free(b.p);
    return rc;
}
