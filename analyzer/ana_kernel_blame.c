/* ana_kernel_blame.c -- which driver a Windows kernel crash is blamed on. Windows' own analysis
 * names the driver that holds the faulting instruction, and when the fault is in the kernel
 * itself (or unknown), the first other driver on the stack: the kernel's bug-check and
 * exception-dispatch code (KeBugCheckEx, KiDispatchException, ...) never takes the blame. The
 * rule lives here alone so the stack walker can feed it real frames instead of raw stack
 * values. */
#include <string.h>
#include <strings.h> /* strcasecmp */

#include "analyzer/ana_int.h"

bool ana__kernel_is_core(const struct ana_module *m)
{
    const char *b = ana_module_basename(m);
    size_t n = strlen(b);
    /* ntoskrnl.exe, ntkrnlmp.exe, ntkrnlpa.exe, ntkrpamp.exe, ntkrla57.exe: the kernel image */
    if (strcasecmp(b, "ntoskrnl.exe") == 0 ||
        (strncasecmp(b, "ntkr", 4) == 0 && n > 4 && strcasecmp(b + n - 4, ".exe") == 0))
        return true;
    /* hal.dll, halmacpi.dll, halacpi.dll, ...: the hardware abstraction layer */
    return strncasecmp(b, "hal", 3) == 0 && n >= 7 && strcasecmp(b + n - 4, ".dll") == 0;
}

/* Before ana__finish builds the module index, search the list itself. */
static int module_at(const struct ana_crash *c, uint64_t addr)
{
    if (c->module_order)
        return ana_module_at(c, addr);
    for (size_t i = 0; i < c->module_count; i++)
        if (addr - c->modules[i].base < c->modules[i].size)
            return (int)i;
    return -1;
}

int ana__kernel_blame(const struct ana_crash *c, bool has_fault_pc, uint64_t fault_pc,
                      const uint64_t *code_addrs, size_t n)
{
    int fault = has_fault_pc ? module_at(c, fault_pc) : -1;
    if (fault >= 0 && !ana__kernel_is_core(&c->modules[fault]))
        return fault;
    for (size_t i = 0; i < n; i++) {
        int m = module_at(c, code_addrs[i]);
        if (m >= 0 && !ana__kernel_is_core(&c->modules[m]))
            return m;
    }
    return fault;
}
