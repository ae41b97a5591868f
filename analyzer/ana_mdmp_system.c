/* ana_mdmp_system.c -- the small fixed-size MDMP streams about the system and the process:
 * SystemInfo (os, os version, cpu and cpu_info named as Breakpad's minidump_stackwalk names
 * them), MiscInfo (pid, process create time) and Breakpad's info stream (the thread that wrote
 * the dump, the thread that asked for it).
 *
 * Formats: minidumpapiset.h "MINIDUMP_SYSTEM_INFO", "CPU_INFORMATION", "MINIDUMP_MISC_INFO";
 * Breakpad minidump_format.h "MDRawBreakpadInfo", and its ARM CPU_INFORMATION variant
 * (cpuid, elf_hwcaps). */
#include <stdio.h>
#include <string.h>

#include "analyzer/ana_int.h"

#define MD_SYSTEM_INFO_BYTES 56
#define MD_MISC_INFO_BYTES 24
#define MD_MISC1_PROCESS_ID 0x1u
#define MD_MISC1_PROCESS_TIMES 0x2u

static const struct {
    uint32_t id;
    const char *name;
} platforms[] = {
    { ANA_MD_OS_WIN32_NT, "Windows NT" }, { ANA_MD_OS_WIN32_WINDOWS, "Windows" },
    { ANA_MD_OS_MAC_OS_X, "Mac OS X" },   { ANA_MD_OS_IOS, "iOS" },
    { ANA_MD_OS_LINUX, "Linux" },         { ANA_MD_OS_SOLARIS, "Solaris" },
    { ANA_MD_OS_ANDROID, "Android" },     { ANA_MD_OS_PS3, "PS3" },
    { ANA_MD_OS_NACL, "NaCl" },           { ANA_MD_OS_FUCHSIA, "Fuchsia" },
};

static const char *os_name(struct ana_crash *c, uint32_t platform)
{
    for (size_t i = 0; i < sizeof platforms / sizeof *platforms; i++)
        if (platforms[i].id == platform)
            return platforms[i].name;
    return ana__printf(c, "0x%08x", (unsigned)platform); /* Breakpad prints the number */
}

/* ARM: "ARMv7 Qualcomm Krait features: swp,half,..." from the level, MIDR and ELF hwcaps. */
static const struct {
    uint32_t id;
    const char *name;
} arm_vendors[] = { { 0x41, "ARM" }, { 0x51, "Qualcomm" }, { 0x56, "Marvell" },
                    { 0x69, "Intel/Marvell" } },
  arm_parts[] = {
      { 0x4100c050, "Cortex-A5" },  { 0x4100c080, "Cortex-A8" },    { 0x4100c090, "Cortex-A9" },
      { 0x4100c0f0, "Cortex-A15" }, { 0x4100c140, "Cortex-R4" },    { 0x4100c150, "Cortex-R5" },
      { 0x4100b360, "ARM1136" },    { 0x4100b560, "ARM1156" },      { 0x4100b760, "ARM1176" },
      { 0x4100b020, "ARM11-MPCore" }, { 0x41009260, "ARM926" },     { 0x41009460, "ARM946" },
      { 0x41009660, "ARM966" },     { 0x510006f0, "Krait" },        { 0x510000f0, "Scorpion" },
  };
/* Linux HWCAP_* bits of 32-bit ARM, in bit order (<asm/hwcap.h>). */
static const char *const arm_hwcaps[] = {
    "swp",    "half",    "thumb",   "26bit", "fastmult", "fpa",      "vfpv2",
    "edsp",   "java",    "iwmmxt",  "crunch", "thumbee", "neon",     "vfpv3",
    "vfpv3d16", "tls",   "vfpv4",   "idiva", "idivt",
};

static const char *arm_cpu_info(struct ana_crash *c, uint16_t level, uint32_t cpuid,
                                uint32_t hwcaps)
{
    char buf[512];
    size_t o = (size_t)snprintf(buf, sizeof buf, "ARMv%u", (unsigned)level);
    if (cpuid) {
        const char *vendor = NULL, *part = NULL;
        for (size_t i = 0; i < sizeof arm_vendors / sizeof *arm_vendors; i++)
            if (arm_vendors[i].id == (cpuid >> 24 & 0xff))
                vendor = arm_vendors[i].name;
        for (size_t i = 0; i < sizeof arm_parts / sizeof *arm_parts; i++)
            if (arm_parts[i].id == (cpuid & 0xff00fff0))
                part = arm_parts[i].name;
        o += vendor ? (size_t)snprintf(buf + o, sizeof buf - o, " %s", vendor)
                    : (size_t)snprintf(buf + o, sizeof buf - o, " vendor(0x%x)",
                                       (unsigned)(cpuid >> 24 & 0xff));
        o += part ? (size_t)snprintf(buf + o, sizeof buf - o, " %s", part)
                  : (size_t)snprintf(buf + o, sizeof buf - o, " part(0x%x)",
                                     (unsigned)(cpuid & 0xff00fff0));
    }
    if (hwcaps) {
        o += (size_t)snprintf(buf + o, sizeof buf - o, " features: ");
        const char *sep = "";
        for (size_t i = 0; i < sizeof arm_hwcaps / sizeof *arm_hwcaps && o < sizeof buf; i++)
            if (hwcaps >> i & 1) {
                o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", sep, arm_hwcaps[i]);
                sep = ",";
            }
    }
    return ana__strndup(c, buf, strnlen(buf, sizeof buf));
}

/* x86 and amd64: "GenuineIntel family 6 model 13 stepping 8"; Breakpad prints the vendor only
 * for 32-bit x86, where CPU_INFORMATION.X86CpuInfo.VendorId is defined. */
static const char *x86_cpu_info(struct ana_crash *c, uint16_t arch, uint16_t level,
                                uint16_t revision, const uint8_t vendor[12])
{
    char v[13];
    memcpy(v, vendor, 12);
    v[12] = 0;
    bool has_vendor = (arch == ANA_MD_ARCH_X86 || arch == ANA_MD_ARCH_X86_WIN64) && v[0];
    return ana__printf(c, "%s%sfamily %u model %u stepping %u", has_vendor ? v : "",
                       has_vendor ? " " : "", (unsigned)level, (unsigned)(revision >> 8),
                       (unsigned)(revision & 0xff));
}

enum cm_code ana__mdmp_system_info(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                   struct cm_err *err)
{
    struct ana_crash *c = m->c;
    struct ana_system_info *si = &c->system_info;
    struct cm_cur cur = s->cur;
    uint16_t arch, level, revision, suite, reserved;
    uint8_t nproc, product, cpu_bytes[24];
    uint32_t major, minor, build, platform, csd_rva;
    cm_cur_u16le(&cur, &arch);     /* MINIDUMP_SYSTEM_INFO.ProcessorArchitecture */
    cm_cur_u16le(&cur, &level);    /* .ProcessorLevel */
    cm_cur_u16le(&cur, &revision); /* .ProcessorRevision */
    cm_cur_u8(&cur, &nproc);       /* .NumberOfProcessors */
    cm_cur_u8(&cur, &product);     /* .ProductType */
    cm_cur_u32le(&cur, &major);    /* .MajorVersion */
    cm_cur_u32le(&cur, &minor);    /* .MinorVersion */
    cm_cur_u32le(&cur, &build);    /* .BuildNumber */
    cm_cur_u32le(&cur, &platform); /* .PlatformId */
    cm_cur_u32le(&cur, &csd_rva);  /* .CSDVersionRva */
    cm_cur_u16le(&cur, &suite);    /* .SuiteMask */
    cm_cur_u16le(&cur, &reserved); /* .Reserved2 */
    cm_cur_bytes(&cur, cpu_bytes, sizeof cpu_bytes); /* .Cpu (CPU_INFORMATION) */
    if (cur.failed) {
        ana__warn(c, "minidump: SystemInfo at 0x%x: %u bytes, MINIDUMP_SYSTEM_INFO needs %d; "
                     "skipped",
                  (unsigned)s->rva, (unsigned)s->size, MD_SYSTEM_INFO_BYTES);
        return CM_E_OK;
    }
    m->has_system_info = true;
    m->arch = arch;
    m->platform = platform;
    si->cpu = ana__mdmp_cpu(arch);
    si->cpu_arch = ana_cpu_name(si->cpu);
    si->cpu_count = nproc;
    si->platform_id = platform;
    si->os = os_name(c, platform);
    /* Breakpad: "major.minor.build", then " " and the CSD string when it can be read. */
    const char *csd = csd_rva ? ana__mdmp_string(m, csd_rva, "SystemInfo CSDVersion") : NULL;
    si->os_ver = ana__printf(c, "%u.%u.%u%s%s", (unsigned)major, (unsigned)minor,
                             (unsigned)build, csd ? " " : "", csd ? csd : "");
    if (si->cpu == ANA_CPU_X86 || si->cpu == ANA_CPU_AMD64)
        si->cpu_info = x86_cpu_info(c, arch, level, revision, cpu_bytes);
    else if (si->cpu == ANA_CPU_ARM) { /* CPU_INFORMATION as Breakpad's arm_cpu_info */
        struct cm_cur arm = cm_cur_make(cpu_bytes, sizeof cpu_bytes);
        uint32_t cpuid, hwcaps;
        cm_cur_u32le(&arm, &cpuid);  /* .cpuid (MIDR) */
        cm_cur_u32le(&arm, &hwcaps); /* .elf_hwcaps */
        si->cpu_info = arm_cpu_info(c, level, cpuid, hwcaps);
    }
    if (si->cpu == ANA_CPU_UNKNOWN)
        ana__warn(c, "minidump: SystemInfo: processor architecture 0x%04x is not supported; "
                     "thread contexts are not read",
                  (unsigned)arch);
    if (!si->os || !si->os_ver)
        return cm_fail(err, CM_E_NOMEM, "minidump: out of memory reading SystemInfo");
    return CM_E_OK;
}

enum cm_code ana__mdmp_misc_info(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                 struct cm_err *err)
{
    struct ana_crash *c = m->c;
    struct cm_cur cur = s->cur;
    uint32_t size, flags, pid, create;
    cm_cur_u32le(&cur, &size);   /* MINIDUMP_MISC_INFO.SizeOfInfo */
    cm_cur_u32le(&cur, &flags);  /* .Flags1 */
    cm_cur_u32le(&cur, &pid);    /* .ProcessId */
    cm_cur_u32le(&cur, &create); /* .ProcessCreateTime (time_t) */
    if (cur.failed || s->size < MD_MISC_INFO_BYTES) {
        ana__warn(c, "minidump: MiscInfo at 0x%x: %u bytes, MINIDUMP_MISC_INFO needs %d; "
                     "skipped",
                  (unsigned)s->rva, (unsigned)s->size, MD_MISC_INFO_BYTES);
        return CM_E_OK;
    }
    if (flags & MD_MISC1_PROCESS_ID)
        c->pid = pid;
    if (flags & MD_MISC1_PROCESS_TIMES)
        c->process_create_time = create;
    return CM_E_OK;
}

enum cm_code ana__mdmp_breakpad_info(struct ana_mdmp *m, const struct ana_mdmp_stream *s,
                                     struct cm_err *err)
{
    struct ana_crash *c = m->c;
    struct cm_cur cur = s->cur;
    uint32_t validity, dump_tid, requesting_tid;
    cm_cur_u32le(&cur, &validity);       /* MDRawBreakpadInfo.validity */
    cm_cur_u32le(&cur, &dump_tid);       /* .dump_thread_id */
    cm_cur_u32le(&cur, &requesting_tid); /* .requesting_thread_id */
    if (cur.failed) {
        ana__warn(c, "minidump: BreakpadInfo at 0x%x: %u bytes, MDRawBreakpadInfo needs 12; "
                     "skipped",
                  (unsigned)s->rva, (unsigned)s->size);
        return CM_E_OK;
    }
    c->has_breakpad_info = true;
    c->breakpad_dump_tid = dump_tid;
    c->breakpad_requesting_tid = requesting_tid;
    m->breakpad_validity = validity;
    return CM_E_OK;
}
