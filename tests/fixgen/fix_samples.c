/* fix_samples.c -- realistic sample crashes on top of the MDMP writer: per scenario a module set
 * with fixed code offsets (the same bug faults at the same module+offset on every host), seeded
 * load addresses, thread ids, frame sizes and stack contents, and a frame-pointer chain whose
 * return addresses point into the modules' code. The scenarios are described in fixgen.h.
 *
 * Frame layout for every cpu (P = pointer size): frame i occupies [sp_i, fp_i + 2P); its frame
 * record at fp_i holds the caller's frame pointer and the return address into the caller, and
 * the caller's stack pointer is fp_i + 2P. That is what x86/amd64 `push rbp; mov rbp, rsp`
 * code, AArch64 `stp x29, x30` records and ARM APCS r11 frames leave behind, and what
 * Breakpad-style frame-pointer walkers read. Locals hold zeros, small integers, heap and stack
 * pointers, never code addresses, so a scanning walker finds exactly the same frames. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fixgen/fixgen.h"

/* ---- deterministic randomness (splitmix64) ---- */

struct rng {
    uint64_t s;
};

static uint64_t next(struct rng *g)
{
    uint64_t z = (g->s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t below(struct rng *g, uint64_t n) { return n ? next(g) % n : 0; }

static uint64_t hash_str(const char *s, uint64_t h)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3u;
    return h;
}

/* Register numbers of pc, sp and the frame pointer (ana.h numbering), kept here so the fixture
 * writer does not depend on the library it tests. */
static void frame_regs(enum ana_cpu cpu, int *pc, int *sp, int *fp)
{
    switch (cpu) {
    case ANA_CPU_X86: *pc = ANA_X86_EIP, *sp = ANA_X86_ESP, *fp = ANA_X86_EBP; break;
    case ANA_CPU_ARM64: *pc = ANA_ARM64_PC, *sp = ANA_ARM64_SP, *fp = ANA_ARM64_FP; break;
    case ANA_CPU_ARM: *pc = ANA_ARM_PC, *sp = ANA_ARM_SP, *fp = ANA_ARM_FP; break;
    default: *pc = ANA_AMD64_RIP, *sp = ANA_AMD64_RSP, *fp = ANA_AMD64_RBP; break;
    }
}

/* ---- scenario tables ---- */

struct mspec {
    const char *path;
    uint32_t size;
    uint16_t ver[4]; /* all zero: no version resource */
};

struct fspec {
    uint8_t mod;
    uint32_t off; /* module-relative pc (frame 0) or return address */
};

struct sspec {
    const char *name;
    enum ana_cpu cpu;
    enum fix_os os;
    const struct mspec *mods;
    uint8_t nmods, main_mod, fault_mod;
    const struct fspec *top; /* frame 0 first; fixed for the bug */
    uint8_t ntop;
    uint8_t recurse_min, recurse_max; /* repeats of the last top frame (recursion) */
    const struct fspec *mid; /* callers: the seed picks how many of them */
    uint8_t nmid;
    const struct fspec *bottom; /* thread start */
    uint8_t nbottom;
    const struct fspec *wait; /* other threads */
    uint8_t nwait;
    uint32_t code, flags;
    enum { ADDR_PC, ADDR_PARAM, ADDR_FIELD, ADDR_NONE } addr_kind;
};

#define N(a) (uint8_t)(sizeof(a) / sizeof *(a))
#define WINVER { 10, 0, 19041, 3636 }

static const struct mspec win64_mods[] = {
    { "C:\\Program Files\\Contoso\\Sensor\\ContosoAgent.exe", 0x5a000, { 4, 2, 17, 0 } },
    { "C:\\Program Files\\Contoso\\Sensor\\contoso_sensor.dll", 0x138000, { 4, 2, 17, 0 } },
    { "C:\\Windows\\System32\\ntdll.dll", 0x1f8000, WINVER },
    { "C:\\Windows\\System32\\KERNEL32.DLL", 0xbf000, WINVER },
    { "C:\\Windows\\System32\\KERNELBASE.dll", 0x2f6000, WINVER },
    { "C:\\Windows\\System32\\ucrtbase.dll", 0x100000, WINVER },
};
static const struct fspec win64_av_top[] = { { 1, 0x1a2b4 }, { 1, 0x1b0f9 }, { 1, 0x2c4d1 } };
static const struct fspec win64_mid[] = { { 0, 0x1843e }, { 0, 0x17d02 }, { 0, 0x21a90 },
                                          { 0, 0x12f77 } };
static const struct fspec win64_bottom[] = { { 3, 0x17344 }, { 2, 0x526b1 } };
static const struct fspec win64_wait[] = { { 2, 0x9d0c4 }, { 4, 0x39a6e }, { 0, 0x2210b },
                                           { 3, 0x17344 }, { 2, 0x526b1 } };
static const struct fspec win64_so_top[] = { { 1, 0x3e6f0 }, { 1, 0x3e91c }, { 1, 0x3e7a5 } };

static const struct mspec win32_mods[] = {
    { "C:\\Program Files (x86)\\Contoso\\Sensor\\ContosoAgent.exe", 0x48000, { 4, 2, 17, 0 } },
    { "C:\\Program Files (x86)\\Contoso\\Sensor\\contoso_sensor.dll", 0xf4000, { 4, 2, 17, 0 } },
    { "C:\\Windows\\SysWOW64\\ntdll.dll", 0x19a000, WINVER },
    { "C:\\Windows\\SysWOW64\\KERNEL32.DLL", 0xf0000, WINVER },
    { "C:\\Windows\\SysWOW64\\KERNELBASE.dll", 0x214000, WINVER },
};
static const struct fspec win32_top[] = { { 1, 0x9c3e }, { 1, 0xa51b } };
static const struct fspec win32_mid[] = { { 0, 0x1d2f4 }, { 0, 0x1c8a0 }, { 0, 0x1e04c } };
static const struct fspec win32_bottom[] = { { 3, 0x1fa29 }, { 2, 0x6c0ae }, { 2, 0x6c07e } };
static const struct fspec win32_wait[] = { { 2, 0x7287c }, { 4, 0xf2a19 }, { 0, 0x2014d },
                                           { 3, 0x1fa29 }, { 2, 0x6c0ae } };

static const struct mspec lin64_mods[] = {
    { "/opt/contoso/bin/contoso-agent", 0x3c000, { 0 } },
    { "/opt/contoso/lib/libcontoso.so.2", 0x9e000, { 0 } },
    { "/usr/lib/x86_64-linux-gnu/libc.so.6", 0x1e6000, { 0 } },
    { "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", 0x2c000, { 0 } },
};
static const struct fspec lin64_segv_top[] = { { 1, 0x2d7c3 }, { 1, 0x2e1a0 }, { 1, 0x31f58 } };
static const struct fspec lin64_abort_top[] = { { 2, 0x8eb1c }, { 2, 0x3cf32 }, { 2, 0x2647e },
                                                { 1, 0x1f04d }, { 1, 0x2e9b2 } };
static const struct fspec lin64_mid[] = { { 0, 0x1be42 }, { 0, 0x1a77d }, { 0, 0x1c0d9 },
                                          { 0, 0x195e3 } };
static const struct fspec lin64_bottom[] = { { 2, 0x271ca }, { 2, 0x27285 }, { 0, 0x6a21 } };
static const struct fspec lin64_wait[] = { { 2, 0x8a0f6 }, { 2, 0x8cc4a }, { 1, 0x40133 },
                                           { 2, 0x89134 }, { 2, 0x1097dc } };

static const struct mspec and64_mods[] = {
    { "/data/app/com.contoso.sensor/lib/arm64/libcontoso_jni.so", 0x120000, { 0 } },
    { "/apex/com.android.art/lib64/libart.so", 0x9a0000, { 0 } },
    { "/apex/com.android.runtime/lib64/bionic/libc.so", 0xbd000, { 0 } },
    { "/system/bin/app_process64", 0x9000, { 0 } },
};
static const struct fspec and64_top[] = { { 0, 0x4a1c8 }, { 0, 0x4b03c }, { 0, 0x51e70 } };
static const struct fspec and64_mid[] = { { 1, 0x2183e8 }, { 1, 0x20f5a4 }, { 1, 0x44d9b0 } };
static const struct fspec and64_bottom[] = { { 2, 0xb2a8c }, { 2, 0x53f0c } };
static const struct fspec and64_wait[] = { { 2, 0x9a1d4 }, { 1, 0x3b0c18 }, { 2, 0xb2a8c },
                                           { 2, 0x53f0c } };

static const struct mspec and32_mods[] = {
    { "/data/app/com.contoso.sensor/lib/arm/libcontoso_jni.so", 0xd8000, { 0 } },
    { "/apex/com.android.art/lib/libart.so", 0x6a0000, { 0 } },
    { "/apex/com.android.runtime/lib/bionic/libc.so", 0x9c000, { 0 } },
    { "/system/bin/app_process32", 0x6000, { 0 } },
};
static const struct fspec and32_top[] = { { 0, 0x38b54 }, { 0, 0x39a10 } };
static const struct fspec and32_mid[] = { { 1, 0x14f2a8 }, { 1, 0x1b6c40 } };
static const struct fspec and32_bottom[] = { { 2, 0x8e4c4 }, { 2, 0x4d2b8 } };
static const struct fspec and32_wait[] = { { 2, 0x6c1f0 }, { 1, 0x2a4e04 }, { 2, 0x8e4c4 },
                                           { 2, 0x4d2b8 } };

static const struct mspec mac64_mods[] = {
    { "/Applications/Contoso Sensor.app/Contents/MacOS/Contoso Sensor", 0x40000, { 4, 2, 17, 0 } },
    { "/Applications/Contoso Sensor.app/Contents/Frameworks/ContosoKit.framework/Versions/A/"
      "ContosoKit",
      0x1a0000, { 4, 2, 17, 0 } },
    { "/usr/lib/system/libsystem_kernel.dylib", 0x3c000, { 0 } },
    { "/usr/lib/system/libsystem_pthread.dylib", 0xc000, { 0 } },
    { "/usr/lib/dyld", 0x90000, { 0 } },
    { "/System/Library/Frameworks/CoreFoundation.framework/Versions/A/CoreFoundation", 0x4ff000,
      { 0 } },
};
static const struct fspec mac64_top[] = { { 1, 0x5c3a1 }, { 1, 0x5d0f2 }, { 1, 0x7712e } };
static const struct fspec mac_a64_top[] = { { 1, 0x5c3a0 }, { 1, 0x5d0f4 }, { 1, 0x77128 } };
static const struct fspec mac_mid[] = { { 5, 0x3a1c4 }, { 5, 0x39f0c }, { 0, 0x1b44 } };
static const struct fspec mac_bottom[] = { { 0, 0x1a14 }, { 4, 0x5368 } };
static const struct fspec mac_wait[] = { { 2, 0x4c2c }, { 5, 0x7b4d0 }, { 3, 0x6f4c },
                                         { 3, 0x1a54 } };

static const struct sspec scenarios[FIX_SC__COUNT] = {
    [FIX_SC_WIN_AMD64_AV] = { "win-amd64-av", ANA_CPU_AMD64, FIX_OS_WINDOWS, win64_mods,
                              N(win64_mods), 0, 1, win64_av_top, N(win64_av_top), 0, 0,
                              win64_mid, N(win64_mid), win64_bottom, N(win64_bottom),
                              win64_wait, N(win64_wait), 0xc0000005, 0, ADDR_PARAM },
    [FIX_SC_WIN_AMD64_STACK_OVERFLOW] = { "win-amd64-stack-overflow", ANA_CPU_AMD64,
                                          FIX_OS_WINDOWS, win64_mods, N(win64_mods), 0, 1,
                                          win64_so_top, N(win64_so_top), 30, 50, win64_mid,
                                          N(win64_mid), win64_bottom, N(win64_bottom), win64_wait,
                                          N(win64_wait), 0xc00000fd, 0, ADDR_PC },
    [FIX_SC_WIN_X86_DIVIDE] = { "win-x86-divide", ANA_CPU_X86, FIX_OS_WINDOWS, win32_mods,
                                N(win32_mods), 0, 1, win32_top, N(win32_top), 0, 0, win32_mid,
                                N(win32_mid), win32_bottom, N(win32_bottom), win32_wait,
                                N(win32_wait), 0xc0000094, 0, ADDR_PC },
    [FIX_SC_LINUX_AMD64_SEGV] = { "linux-amd64-segv", ANA_CPU_AMD64, FIX_OS_LINUX, lin64_mods,
                                  N(lin64_mods), 0, 1, lin64_segv_top, N(lin64_segv_top), 0, 0,
                                  lin64_mid, N(lin64_mid), lin64_bottom, N(lin64_bottom),
                                  lin64_wait, N(lin64_wait), 11, 1 /* SEGV_MAPERR */, ADDR_FIELD },
    [FIX_SC_LINUX_AMD64_ABORT] = { "linux-amd64-abort", ANA_CPU_AMD64, FIX_OS_LINUX, lin64_mods,
                                   N(lin64_mods), 0, 2, lin64_abort_top, N(lin64_abort_top), 0, 0,
                                   lin64_mid, N(lin64_mid), lin64_bottom, N(lin64_bottom),
                                   lin64_wait, N(lin64_wait), 6, 0xfffffffa /* SI_TKILL */,
                                   ADDR_NONE },
    [FIX_SC_ANDROID_ARM64_SEGV] = { "android-arm64-segv", ANA_CPU_ARM64, FIX_OS_ANDROID,
                                    and64_mods, N(and64_mods), 3, 0, and64_top, N(and64_top), 0,
                                    0, and64_mid, N(and64_mid), and64_bottom, N(and64_bottom),
                                    and64_wait, N(and64_wait), 11, 1, ADDR_FIELD },
    [FIX_SC_ANDROID_ARM_SEGV] = { "android-arm-segv", ANA_CPU_ARM, FIX_OS_ANDROID, and32_mods,
                                  N(and32_mods), 3, 0, and32_top, N(and32_top), 0, 0, and32_mid,
                                  N(and32_mid), and32_bottom, N(and32_bottom), and32_wait,
                                  N(and32_wait), 11, 2 /* SEGV_ACCERR */, ADDR_FIELD },
    [FIX_SC_MACOS_AMD64_BAD_ACCESS] = { "macos-amd64-bad-access", ANA_CPU_AMD64, FIX_OS_MACOS,
                                        mac64_mods, N(mac64_mods), 0, 1, mac64_top,
                                        N(mac64_top), 0, 0, mac_mid, N(mac_mid), mac_bottom,
                                        N(mac_bottom), mac_wait, N(mac_wait),
                                        1 /* EXC_BAD_ACCESS */, 1 /* KERN_INVALID_ADDRESS */,
                                        ADDR_FIELD },
    [FIX_SC_MACOS_ARM64_BAD_ACCESS] = { "macos-arm64-bad-access", ANA_CPU_ARM64, FIX_OS_MACOS,
                                        mac64_mods, N(mac64_mods), 0, 1, mac_a64_top,
                                        N(mac_a64_top), 0, 0, mac_mid, N(mac_mid), mac_bottom,
                                        N(mac_bottom), mac_wait, N(mac_wait), 1, 1, ADDR_FIELD },
};

const char *fix_scenario_name(enum fix_scenario sc)
{
    return (unsigned)sc < FIX_SC__COUNT ? scenarios[sc].name : NULL;
}

int fix_scenario_by_name(const char *name)
{
    for (int i = 0; i < FIX_SC__COUNT; i++)
        if (name && strcmp(scenarios[i].name, name) == 0)
            return i;
    return -1;
}

/* ---- building one sample ---- */

#define MAX_MODS 8
#define MAX_THREADS 5

struct sample {
    struct rng g;
    const struct sspec *sc;
    unsigned ptr;
    struct fix_md md;
    struct fix_module mods[MAX_MODS];
    uint8_t build_ids[MAX_MODS][20];
    char pdb[MAX_MODS][64];
    struct fix_thread threads[MAX_THREADS];
    char tname[MAX_THREADS][32];
    uint8_t *stacks[MAX_THREADS];
    struct fix_region regions[1];
    uint8_t code_bytes[256];
    struct fix_meminfo meminfo[MAX_MODS * 3 + MAX_THREADS];
    struct fix_kv annotations[5];
    char version_str[32], host[32];
    char maps[4096], cmdline[128], status[512], auxv_bytes[16 * 8];
    const char *csd;
};

static const char *base_name(const char *path)
{
    const char *a = strrchr(path, '/'), *b = strrchr(path, '\\');
    const char *s = a > b ? a : b;
    return s ? s + 1 : path;
}

static void place_modules(struct sample *s, const struct fix_sample_opts *o)
{
    const struct sspec *sc = s->sc;
    uint64_t exe, lib, align;
    switch (sc->os) {
    case FIX_OS_WINDOWS:
        align = 0x10000;
        if (sc->cpu == ANA_CPU_X86) {
            exe = 0x00400000 + below(&s->g, 0x100) * align;
            lib = 0x70000000 + below(&s->g, 0x400) * align;
        } else {
            exe = 0x7ff600000000u + below(&s->g, 0x8000) * align;
            lib = 0x7ff900000000u + below(&s->g, 0x8000) * align;
        }
        break;
    case FIX_OS_ANDROID:
        align = 0x1000;
        if (sc->cpu == ANA_CPU_ARM) {
            exe = 0xaa000000u + below(&s->g, 0x4000) * align;
            lib = 0xe0000000u + below(&s->g, 0x4000) * align;
        } else {
            exe = 0x5a00000000u + below(&s->g, 0x100000) * align;
            lib = 0x7100000000u + below(&s->g, 0x400000) * align;
        }
        break;
    default: /* Linux and macOS, 64-bit */
        align = 0x1000;
        exe = (sc->os == FIX_OS_MACOS ? 0x100000000u : 0x550000000000u) +
              below(&s->g, 0x1000000) * align;
        lib = (sc->os == FIX_OS_MACOS ? 0x7ff800000000u : 0x7f0000000000u) +
              below(&s->g, 0x8000000) * align;
        break;
    }
    for (uint8_t i = 0; i < sc->nmods; i++) {
        const struct mspec *ms = &sc->mods[i];
        struct fix_module *m = &s->mods[i];
        const uint16_t *ver = ms->ver;
        bool fault = i == sc->fault_mod;
        if (fault && (o->fault_version[0] | o->fault_version[1] | o->fault_version[2] |
                      o->fault_version[3]))
            ver = o->fault_version;
        /* Ids depend on the file (path and version), never on the seed: one build, many hosts. */
        uint64_t h = hash_str(ms->path, 0xcbf29ce484222325u);
        uint64_t v64 = (uint64_t)ver[0] << 48 | (uint64_t)ver[1] << 32;
        v64 |= (uint64_t)ver[2] << 16 | ver[3];
        h = (h ^ v64) * 0x100000001b3u;
        m->name = ms->path;
        m->size = ms->size;
        if (i == sc->main_mod) {
            m->base = exe;
        } else {
            m->base = lib;
            lib += (ms->size + align - 1) / align * align + align * (1 + below(&s->g, 8));
        }
        m->timestamp = 0x60000000u + (uint32_t)(h % 0x8000000);
        m->checksum = (uint32_t)(h >> 32) & 0xffffff;
        m->has_version = ver[0] || ver[1] || ver[2] || ver[3];
        memcpy(m->version, ver, sizeof m->version);
        if (sc->os == FIX_OS_LINUX || sc->os == FIX_OS_ANDROID) {
            struct rng id = { h };
            for (int k = 0; k < 20; k++)
                s->build_ids[i][k] = (uint8_t)next(&id);
            m->cv = FIX_CV_ELF;
            m->build_id = s->build_ids[i];
            m->build_id_len = 20;
        } else {
            struct rng id = { h };
            m->cv = FIX_CV_PDB70;
            m->guid.d1 = (uint32_t)next(&id);
            m->guid.d2 = (uint16_t)next(&id);
            m->guid.d3 = (uint16_t)next(&id);
            for (int k = 0; k < 8; k++)
                m->guid.d4[k] = (uint8_t)next(&id);
            const char *bn = base_name(ms->path);
            if (sc->os == FIX_OS_WINDOWS) { /* foo.dll -> foo.pdb */
                m->age = 1;
                const char *dot = strrchr(bn, '.');
                int stem = dot ? (int)(dot - bn) : (int)strlen(bn);
                snprintf(s->pdb[i], sizeof s->pdb[i], "%.*s.pdb", stem, bn);
            } else { /* Mach-O UUID as Crashpad writes it: age 0, the module's name */
                m->age = 0;
                snprintf(s->pdb[i], sizeof s->pdb[i], "%s", bn);
            }
            m->pdb_name = s->pdb[i];
        }
    }
}

static uint64_t frame_pc(const struct sample *s, struct fspec f)
{
    return s->mods[f.mod].base + f.off;
}

/* Value for a local slot: never a code address. */
static uint64_t junk(struct sample *s, uint64_t stack_lo, uint64_t stack_hi, uint64_t heap)
{
    uint64_t r = below(&s->g, 100);
    uint64_t mask = s->ptr == 4 ? 0xffffffffu : ~(uint64_t)0;
    if (r < 25)
        return 0;
    if (r < 50)
        return below(&s->g, 4096);
    if (r < 75)
        return (heap + below(&s->g, 0x40000) * 16) & mask;
    if (r < 90)
        return (stack_lo + below(&s->g, (stack_hi - stack_lo) / s->ptr) * s->ptr) & mask;
    return (next(&s->g) & 0x7f7f7f7f7f7f7f7fu & mask) | (0x2020202020202020u & mask);
}

static void put_ptr(struct sample *s, uint8_t *stack, size_t off, uint64_t v)
{
    if (s->ptr == 4)
        fix_put_u32(stack, (size_t)-1, off, (uint32_t)v);
    else
        fix_put_u64(stack, (size_t)-1, off, v);
}

/* Lays out the frames pcs[0..n) at the top of a new stack ending at stack_top and fills t. */
static bool build_thread(struct sample *s, struct fix_thread *t, uint8_t **store,
                         const uint64_t *pcs, size_t n, uint64_t stack_top, uint64_t heap)
{
    const unsigned P = s->ptr;
    uint32_t locals[FIX_SAMPLE_MAX_FRAMES];
    uint64_t need = 128 + 0x100 + 16 * below(&s->g, 48); /* red zone, then above the last frame */
    for (size_t i = 0; i < n; i++) {
        locals[i] = (uint32_t)(16 * (1 + below(&s->g, 14)));
        need += locals[i] + 2 * P;
    }
    need = (need + 15) & ~(uint64_t)15;
    uint64_t lo = stack_top - need;
    uint8_t *st = calloc(1, need);
    if (!st)
        return false;
    *store = st;
    for (size_t off = 0; off + P <= need; off += P)
        put_ptr(s, st, off, junk(s, lo, stack_top, heap));
    uint64_t sp = lo + 128, fp0 = 0, prev_fp = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t fp = sp + locals[i];
        if (i == 0)
            fp0 = fp;
        else
            put_ptr(s, st, prev_fp - lo, fp); /* the callee's record links to this frame */
        put_ptr(s, st, fp - lo, 0);
        put_ptr(s, st, fp - lo + P, i + 1 < n ? pcs[i + 1] : 0);
        prev_fp = fp;
        sp = fp + 2 * P;
    }
    t->stack_base = lo;
    t->stack = st;
    t->stack_len = need;
    /* Registers: pc, sp, fp (and lr) from the layout; the rest look like data. */
    for (int i = 0; i < ANA_NREGS; i++)
        t->regs[i] = junk(s, lo, stack_top, heap);
    enum ana_cpu cpu = s->sc->cpu;
    int rpc, rsp, rfp;
    frame_regs(cpu, &rpc, &rsp, &rfp);
    t->regs[rpc] = pcs[0];
    t->regs[rsp] = lo + 128;
    t->regs[rfp] = fp0;
    switch (cpu) {
    case ANA_CPU_AMD64: t->regs[ANA_AMD64_RFLAGS] = 0x10246; break;
    case ANA_CPU_X86: t->regs[ANA_X86_EFLAGS] = 0x10246; break;
    case ANA_CPU_ARM64:
        t->regs[ANA_ARM64_LR] = n > 1 ? pcs[1] : 0;
        t->regs[ANA_ARM64_CPSR] = 0x60000000;
        break;
    case ANA_CPU_ARM:
        t->regs[ANA_ARM_LR] = n > 1 ? pcs[1] : 0;
        t->regs[ANA_ARM_CPSR] = 0x20000010;
        break;
    default: break;
    }
    return true;
}

static size_t chain(struct sample *s, const struct sspec *sc, uint64_t *pcs, int *mods)
{
    size_t n = 0;
    uint8_t rec = 0;
    if (sc->recurse_max)
        rec = (uint8_t)(sc->recurse_min + below(&s->g, sc->recurse_max - sc->recurse_min + 1u));
    for (uint8_t i = 0; i < sc->ntop; i++) {
        mods[n] = sc->top[i].mod;
        pcs[n++] = frame_pc(s, sc->top[i]);
    }
    for (uint8_t i = 0; i < rec && n < FIX_SAMPLE_MAX_FRAMES - 8; i++) {
        mods[n] = sc->top[sc->ntop - 1].mod;
        pcs[n++] = frame_pc(s, sc->top[sc->ntop - 1]);
    }
    size_t nmid = 1 + below(&s->g, sc->nmid);
    for (size_t i = 0; i < nmid; i++) {
        mods[n] = sc->mid[i].mod;
        pcs[n++] = frame_pc(s, sc->mid[i]);
    }
    for (uint8_t i = 0; i < sc->nbottom; i++) {
        mods[n] = sc->bottom[i].mod;
        pcs[n++] = frame_pc(s, sc->bottom[i]);
    }
    return n;
}

static void linux_streams(struct sample *s, uint32_t pid)
{
    size_t o = 0;
    for (uint8_t i = 0; i < s->sc->nmods; i++) {
        const struct fix_module *m = &s->mods[i];
        uint64_t code_end = m->base + (m->size * 3 / 4 & ~0xfffu);
        unsigned long inode = 400000 + (unsigned long)(hash_str(m->name, 7) % 500000);
        const char *fmt = "%08llx-%08llx %s %08llx 08:01 %lu %s\n";
        struct {
            uint64_t lo, hi;
            const char *perm;
        } part[4] = { { m->base, m->base + 0x1000, "r--p" },
                      { m->base + 0x1000, code_end, "r-xp" },
                      { code_end, m->base + m->size - 0x1000, "r--p" },
                      { m->base + m->size - 0x1000, m->base + m->size, "rw-p" } };
        for (int k = 0; k < 4 && o < sizeof s->maps - 200; k++)
            o += (size_t)snprintf(s->maps + o, sizeof s->maps - o, fmt,
                                  (unsigned long long)part[k].lo, (unsigned long long)part[k].hi,
                                  part[k].perm, (unsigned long long)(part[k].lo - m->base), inode,
                                  m->name);
    }
    for (int t = 0; t < MAX_THREADS && s->threads[t].stack_len && o < sizeof s->maps - 100; t++) {
        const struct fix_thread *th = &s->threads[t];
        uint64_t hi = (th->stack_base + th->stack_len + 0xfff) & ~(uint64_t)0xfff;
        o += (size_t)snprintf(s->maps + o, sizeof s->maps - o,
                              "%08llx-%08llx rw-p 00000000 00:00 0 %s\n",
                              (unsigned long long)(hi - 0x100000), (unsigned long long)hi,
                              t == 0 ? "[stack]" : "");
    }
    s->md.linux_maps = (struct fix_blob){ s->maps, o };
    const char *exe = s->mods[s->sc->main_mod].name;
    int n = snprintf(s->cmdline, sizeof s->cmdline, "%s%c--daemon%c%s", exe, 0, 0,
                     "--config=/etc/contoso/agent.conf");
    s->md.linux_cmdline = (struct fix_blob){ s->cmdline, (size_t)n + 1 };
    n = snprintf(s->status, sizeof s->status,
                 "Name:\t%s\nState:\tR (running)\nTgid:\t%u\nPid:\t%u\nPPid:\t1\n"
                 "Uid:\t998\t998\t998\t998\nThreads:\t%d\n",
                 base_name(exe), pid, pid, (int)s->md.thread_count);
    s->md.linux_status = (struct fix_blob){ s->status, (size_t)n };
    static const char lsb[] = "DISTRIB_ID=Debian\nDISTRIB_RELEASE=12\nDISTRIB_CODENAME=bookworm\n"
                              "DISTRIB_DESCRIPTION=\"Debian GNU/Linux 12 (bookworm)\"\n";
    static const char cpuinfo[] = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n"
                                  "model\t\t: 85\nmodel name\t: Intel(R) Xeon(R) CPU\n";
    s->md.linux_lsb_release = (struct fix_blob){ lsb, sizeof lsb - 1 };
    s->md.linux_cpuinfo = (struct fix_blob){ cpuinfo, sizeof cpuinfo - 1 };
    /* auxv: AT_PAGESZ, AT_BASE (the dynamic linker), AT_ENTRY, AT_NULL */
    uint64_t av[8] = { 6, 4096, 7, s->mods[3].base, 9, s->mods[s->sc->main_mod].base + 0x6a00, 0,
                       0 };
    size_t k = 0;
    for (int i = 0; i < 8; i++) {
        if (s->ptr == 4) {
            fix_put_u32((uint8_t *)s->auxv_bytes, sizeof s->auxv_bytes, k, (uint32_t)av[i]);
            k += 4;
        } else {
            fix_put_u64((uint8_t *)s->auxv_bytes, sizeof s->auxv_bytes, k, av[i]);
            k += 8;
        }
    }
    s->md.linux_auxv = (struct fix_blob){ s->auxv_bytes, k };
}

static void windows_meminfo(struct sample *s)
{
    size_t n = 0;
    for (uint8_t i = 0; i < s->sc->nmods; i++) {
        const struct fix_module *m = &s->mods[i];
        uint64_t code_end = m->base + (m->size * 3 / 4 & ~0xfffu);
        /* PAGE_READONLY headers, PAGE_EXECUTE_READ .text, PAGE_READONLY/READWRITE data;
         * MEM_COMMIT, MEM_IMAGE, AllocationProtect PAGE_EXECUTE_WRITECOPY. */
        struct fix_meminfo parts[3] = {
            { m->base, m->base, 0x1000, 0x80, 0x1000, 0x02, 0x1000000 },
            { m->base + 0x1000, m->base, code_end - m->base - 0x1000, 0x80, 0x1000, 0x20,
              0x1000000 },
            { code_end, m->base, m->base + m->size - code_end, 0x80, 0x1000, 0x04, 0x1000000 },
        };
        for (int k = 0; k < 3; k++)
            s->meminfo[n++] = parts[k];
    }
    for (int t = 0; t < MAX_THREADS && s->threads[t].stack_len; t++) {
        const struct fix_thread *th = &s->threads[t];
        uint64_t lo = th->stack_base & ~(uint64_t)0xfff;
        uint64_t hi = (th->stack_base + th->stack_len + 0xfff) & ~(uint64_t)0xfff;
        /* PAGE_READWRITE, MEM_PRIVATE */
        s->meminfo[n++] = (struct fix_meminfo){ lo, lo, hi - lo, 0x04, 0x1000, 0x04, 0x20000 };
    }
    s->md.meminfo = s->meminfo;
    s->md.meminfo_count = n;
}

static void sysinfo(struct sample *s)
{
    struct fix_sysinfo *si = &s->md.sys;
    si->cpu = s->sc->cpu;
    si->os = s->sc->os;
    si->cpu_count = (uint8_t)(2u << below(&s->g, 4));
    bool x86ish = si->cpu == ANA_CPU_X86 || si->cpu == ANA_CPU_AMD64;
    if (x86ish) {
        static const uint16_t models[4] = { 0x55, 0x8c, 0x9e, 0xa5 };
        uint16_t model = models[below(&s->g, 4)];
        si->level = 6;
        si->revision = (uint16_t)(model << 8 | (uint16_t)below(&s->g, 10));
        si->vendor = "GenuineIntel";
        si->cpuid_version = 0x600u | (model & 0xfu) << 4 | (uint32_t)(model >> 4) << 16 |
                            (si->revision & 0xfu);
    }
    switch (si->os) {
    case FIX_OS_WINDOWS: {
        static const uint32_t builds[3] = { 19044, 19045, 22631 };
        si->major = 10;
        si->build = builds[below(&s->g, 3)];
        si->csd = "";
        si->product_type = 1;
        break;
    }
    case FIX_OS_LINUX:
        si->major = 6;
        si->minor = 1;
        si->build = 0;
        si->csd = "-13-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29) x86_64";
        break;
    case FIX_OS_ANDROID:
        si->major = 5;
        si->minor = 10;
        si->build = 177;
        si->csd = si->cpu == ANA_CPU_ARM ? "-android12-9 #1 SMP PREEMPT armv8l"
                                         : "-android12-9 #1 SMP PREEMPT aarch64";
        break;
    default: /* macOS */
        si->major = 14;
        si->minor = (uint32_t)below(&s->g, 4);
        si->build = 0;
        si->csd = si->minor & 1 ? "23C71" : "23B81";
        break;
    }
}

enum cm_code fix_sample(enum fix_scenario scn, const struct fix_sample_opts *opts, uint8_t **out,
                        size_t *out_len, struct fix_sample_info *info, struct cm_err *err)
{
    *out = NULL;
    *out_len = 0;
    if ((unsigned)scn >= FIX_SC__COUNT)
        return cm_fail(err, CM_E_USAGE, "unknown sample scenario %d", (int)scn);
    struct fix_sample_opts dflt = { 0 };
    const struct fix_sample_opts *o = opts ? opts : &dflt;
    struct sample *s = calloc(1, sizeof *s);
    if (!s)
        return cm_fail(err, CM_E_NOMEM, "cannot allocate a sample");
    enum cm_code rc = CM_E_OK;
    const struct sspec *sc = &scenarios[scn];
    s->sc = sc;
    s->ptr = sc->cpu == ANA_CPU_X86 || sc->cpu == ANA_CPU_ARM ? 4 : 8;
    s->g.s = o->seed * 0x9e3779b97f4a7c15u ^ hash_str(sc->name, 0xcbf29ce484222325u);
    sysinfo(s);
    place_modules(s, o);
    s->md.modules = s->mods;
    s->md.module_count = sc->nmods;

    bool win = sc->os == FIX_OS_WINDOWS;
    uint32_t pid = win ? 4 * (uint32_t)(0x100 + below(&s->g, 0x3000))
                       : 1000 + (uint32_t)below(&s->g, 60000);
    uint64_t heap = s->ptr == 4 ? 0x01000000u : win ? 0x0000020000000000u : 0x000055d000000000u;
    heap += below(&s->g, 0x1000) * 0x10000;
    uint64_t stack_top;
    if (s->ptr == 4)
        stack_top = 0x0a000000u - below(&s->g, 0x80) * 0x10000;
    else if (win)
        stack_top = 0x000000a000000000u + below(&s->g, 0x10000) * 0x100000;
    else
        stack_top = 0x00007ffd00000000u - below(&s->g, 0x10000) * 0x100000;

    /* Thread 0 crashes; then 1..3 waiting threads; Breakpad-client dumps add the writer. */
    uint64_t pcs[FIX_SAMPLE_MAX_FRAMES];
    int fmods[FIX_SAMPLE_MAX_FRAMES];
    size_t n = chain(s, sc, pcs, fmods);
    size_t nthreads = 1;
    uint32_t tid0 = win ? pid + 4 * (uint32_t)(1 + below(&s->g, 64)) : pid;
    s->threads[0].tid = tid0;
    if (!build_thread(s, &s->threads[0], &s->stacks[0], pcs, n, stack_top, heap))
        goto nomem;
    size_t nwait = 1 + below(&s->g, 3);
    uint64_t wpcs[FIX_SAMPLE_MAX_FRAMES];
    for (size_t i = 0; i < sc->nwait; i++)
        wpcs[i] = frame_pc(s, sc->wait[i]);
    for (size_t t = 1; t <= nwait; t++, nthreads++) {
        s->threads[t].tid = tid0 + (win ? 4 : 1) * (uint32_t)(t + below(&s->g, 16) * 8);
        if (!build_thread(s, &s->threads[t], &s->stacks[t], wpcs, sc->nwait,
                          stack_top - 0x200000 * t, heap))
            goto nomem;
    }
    bool breakpad_client = sc->os == FIX_OS_LINUX || sc->os == FIX_OS_ANDROID;
    if (breakpad_client) { /* the handler thread that wrote the dump, parked in the kernel */
        size_t t = nthreads++;
        s->threads[t].tid = tid0 + 100 + (uint32_t)below(&s->g, 50);
        if (!build_thread(s, &s->threads[t], &s->stacks[t], wpcs, sc->nwait,
                          stack_top - 0x200000 * t, heap))
            goto nomem;
        s->md.breakpad = (struct fix_breakpad_info){ true, 3, s->threads[t].tid, tid0 };
    }
    if (win || sc->os == FIX_OS_MACOS) {
        static const char *const names[] = { "SensorWorker", "EventPump", "ThreadPoolWorker",
                                             "UploadQueue" };
        for (size_t t = 0; t < nthreads; t++) {
            snprintf(s->tname[t], sizeof s->tname[t], "%s", t == 0 ? "main" : names[t % 4]);
            s->threads[t].name = s->tname[t];
        }
        s->md.thread_names = true;
    }
    for (size_t t = 0; t < nthreads; t++)
        s->threads[t].teb = win ? (s->ptr == 4 ? 0x7ffd0000u + 0x1000 * t
                                               : 0x000000c3a1000000u + 0x2000 * t)
                                : 0;
    s->md.threads = s->threads;
    s->md.thread_count = nthreads;

    /* 256 bytes of code around the fault pc, as Breakpad writes them. */
    for (size_t i = 0; i < sizeof s->code_bytes; i++)
        s->code_bytes[i] = (uint8_t)next(&s->g);
    s->regions[0] = (struct fix_region){ pcs[0] - 128, s->code_bytes, sizeof s->code_bytes, { 0 },
                                         { 0 } };
    s->md.regions = s->regions;
    s->md.region_count = 1;

    /* The exception. */
    uint64_t addr = 0;
    struct fix_exception *e = &s->md.exc;
    e->present = true;
    e->tid = tid0;
    e->code = sc->code;
    e->flags = sc->flags;
    switch (sc->addr_kind) {
    case ADDR_PARAM: /* access violation: params = { read/write, data address } */
        addr = 8 * (2 + below(&s->g, 60));
        e->address = pcs[0];
        e->param_count = 2;
        e->params[0] = 0;
        e->params[1] = addr;
        break;
    case ADDR_PC:
        addr = pcs[0];
        e->address = pcs[0];
        if (sc->code == 0xc00000fd) { /* stack overflow: the guard page address */
            e->param_count = 2;
            e->params[0] = 1;
            e->params[1] = s->threads[0].stack_base - 0x1000 + 8 * below(&s->g, 64);
        }
        break;
    case ADDR_FIELD:
        addr = below(&s->g, 2) ? 8 * (1 + below(&s->g, 500))
                               : heap + 0x1000000 + 16 * below(&s->g, 0x100000);
        e->address = addr;
        break;
    case ADDR_NONE:
        break;
    }
    /* the faulting instruction's base register held (about) the bad address */
    if (sc->addr_kind == ADDR_PARAM || sc->addr_kind == ADDR_FIELD)
        s->threads[0].regs[sc->cpu == ANA_CPU_X86 ? ANA_X86_ECX : 1] = addr - 8 * (addr >= 8);

    /* Process facts and annotations. */
    uint32_t now = 1793000000u + (uint32_t)below(&s->g, 20000000);
    s->md.time_date_stamp = now;
    if (o->host)
        snprintf(s->host, sizeof s->host, "%s", o->host);
    else
        snprintf(s->host, sizeof s->host, "host-%06u", (unsigned)(o->seed % 1000000));
    const uint16_t *fv = s->mods[sc->fault_mod].version;
    const uint16_t *pv = s->mods[sc->main_mod].version;
    snprintf(s->version_str, sizeof s->version_str, "%u.%u.%u.%u", pv[0], pv[1], pv[2], pv[3]);
    if (!s->mods[sc->main_mod].has_version)
        snprintf(s->version_str, sizeof s->version_str, "4.2.17");
    static const char *const channels[3] = { "stable", "stable", "beta" };
    s->annotations[0] = (struct fix_kv){ "host", s->host };
    s->annotations[1] = (struct fix_kv){ "product", "ContosoSensor" };
    s->annotations[2] = (struct fix_kv){ "version", s->version_str };
    s->annotations[3] = (struct fix_kv){ "channel", channels[below(&s->g, 3)] };
    s->md.crashpad.present = true;
    for (int i = 0; i < 16; i++) {
        s->md.crashpad.report_id[i] = (uint8_t)next(&s->g);
        s->md.crashpad.client_id[i] = (uint8_t)(hash_str(s->host, (uint64_t)i) >> 8);
    }
    s->md.crashpad.simple = s->annotations;
    s->md.crashpad.simple_count = 4;
    if (win || sc->os == FIX_OS_MACOS) {
        s->md.misc = (struct fix_misc){ true, win ? 5 : 4, pid,
                                        now - 60 - (uint32_t)below(&s->g, 86400),
                                        (uint32_t)below(&s->g, 500), (uint32_t)below(&s->g, 200),
                                        win ? "19041.1.amd64fre.vb_release.191206-1406" : NULL };
    }
    if (win)
        windows_meminfo(s);
    else if (breakpad_client)
        linux_streams(s, pid);

    rc = fix_md_write(&s->md, out, out_len, NULL, err);
    if (rc == CM_E_OK && info) {
        memset(info, 0, sizeof *info);
        info->cpu = sc->cpu;
        info->os = sc->os;
        info->crashing_tid = tid0;
        info->exception_code = e->code;
        info->exception_flags = e->flags;
        info->crash_address = addr;
        info->fault_module = base_name(s->mods[sc->fault_mod].name);
        memcpy(info->fault_version, fv, sizeof info->fault_version);
        info->frame_count = n;
        memcpy(info->frames, pcs, n * sizeof *pcs);
        memcpy(info->frame_module, fmods, n * sizeof *fmods);
        info->thread_count = nthreads;
        info->module_count = sc->nmods;
        snprintf(info->host, sizeof info->host, "%s", s->host);
    }
    goto out;
nomem:
    rc = cm_fail(err, CM_E_NOMEM, "cannot allocate sample stacks");
out:
    for (int t = 0; t < MAX_THREADS; t++)
        free(s->stacks[t]);
    free(s);
    return rc;
}
