/* drill_fleet.c -- the drill's fleet: which hosts run what, when each crashes, and the real dump
 * of each crash (tests/fixgen: fix_sample for user-mode minidumps, fix_kernel_write for Windows
 * kernel triage dumps). Everything is derived from the seed, so a schedule and its dumps are the
 * same every run; every host differs (load addresses, stack contents, ids, annotations).
 *
 * The fleet: windows_share of the hosts run Windows (a user-mode agent in three flavours and a
 * kernel sensor driver, contoso_sensor.sys), the rest Linux, macOS or Android builds of the
 * agent. Baseline: crashes of the agent (fix_sample's nine scenarios, three agent versions
 * spread over the hosts) and blue screens in four drivers (three third-party, one rare bug of the
 * good sensor build). The event: from T0 the faulty sensor build reaches affected_share of the
 * Windows hosts over rollout_ms; each then bug-checks (0x50, PAGE_FAULT_IN_NONPAGED_AREA) one or
 * more times, loop_interval_ms apart (boot loops), in one of `stacks` distinct code paths. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/drill/drill.h"
#include "common/cm_alloc.h"
#include "tests/fixgen/fixgen.h"

#define DAY_MS 86400000LL

void drill_conf_default(struct drill_conf *c)
{
    *c = (struct drill_conf){
        .hosts = 100000,
        .seed = 1,
        .windows_share = 0.6,
        .affected_share = 0.4,
        .loop_mean = 3.0,
        .stacks = 24,
        .baseline_per_host_day = 0.05,
        .history_ms = 3 * 3600000LL,
        .live_ms = 2 * 60000LL,
        .after_ms = 10 * 60000LL,
        .rollout_ms = 10 * 60000LL,
        .loop_interval_ms = 90000,
        .max_loops = 10,
    };
}

/* ---- deterministic randomness (splitmix64), keyed by what it decides ---- */

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t key3(uint64_t seed, uint64_t a, uint64_t b)
{
    return mix(mix(mix(seed) ^ a) ^ (b * 0x2545f4914f6cdd1du));
}

static double unit(uint64_t r) { return (double)(r >> 11) * (1.0 / 9007199254740992.0); }

enum os_kind { OS_WINDOWS, OS_LINUX, OS_MACOS, OS_ANDROID };

static enum os_kind host_os(const struct drill_conf *c, uint32_t host)
{
    double u = unit(key3(c->seed, 1, host));
    if (u < c->windows_share)
        return OS_WINDOWS;
    u = (u - c->windows_share) / (1.0 - c->windows_share + 1e-12);
    return u < 0.5 ? OS_LINUX : u < 0.75 ? OS_MACOS : OS_ANDROID;
}

static bool host_affected(const struct drill_conf *c, uint32_t host)
{
    return host_os(c, host) == OS_WINDOWS && unit(key3(c->seed, 2, host)) < c->affected_share;
}

/* ---- the schedule ---- */

static int by_time(const void *a, const void *b)
{
    const struct drill_crash *x = a, *y = b;
    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    return x->host < y->host ? -1 : x->host > y->host;
}

enum cm_code drill_schedule(const struct drill_conf *c, int64_t t0_ms, struct drill_crash **out,
                            size_t *count, struct cm_err *err)
{
    *out = NULL;
    *count = 0;
    if (!c->hosts || c->hosts > UINT32_MAX || !c->stacks || c->stacks > 4096 || !c->max_loops ||
        c->max_loops > 256)
        return cm_fail(err, CM_E_USAGE, "drill: hosts 1..2^32-1, stacks 1..4096, loops 1..256");
    int64_t from = t0_ms - c->history_ms - c->live_ms, to = t0_ms + c->after_ms;
    double span_days = (double)(to - from) / (double)DAY_MS;
    size_t base = (size_t)llround((double)c->hosts * c->baseline_per_host_day * span_days);
    /* The event: affected hosts times their boot-loop lengths, counted first. */
    size_t event = 0;
    for (uint32_t h = 0; h < c->hosts; h++)
        if (host_affected(c, h)) {
            double u = unit(key3(c->seed, 3, h));
            double p = 1.0 / (c->loop_mean < 1 ? 1 : c->loop_mean); /* geometric, mean 1/p */
            size_t loops = 1 + (size_t)floor(log(1.0 - u) / log(1.0 - p + 1e-12));
            event += loops > c->max_loops ? c->max_loops : loops;
        }
    size_t n = base + event;
    struct drill_crash *k = cm_calloc(n ? n : 1, sizeof *k);
    if (!k)
        return cm_fail(err, CM_E_NOMEM, "drill: out of memory for %zu crashes", n);
    size_t i = 0;
    for (size_t b = 0; b < base; b++, i++) {
        uint64_t r = key3(c->seed, 4, b);
        uint32_t host = (uint32_t)(r % c->hosts);
        k[i].at_ms = from + (int64_t)(unit(mix(r)) * (double)(to - from));
        k[i].host = host;
        k[i].nth = (uint32_t)b;
        bool win = host_os(c, host) == OS_WINDOWS;
        k[i].kind = win && unit(mix(r ^ 7)) < 0.3 ? DRILL_KERNEL : DRILL_USER;
        k[i].variant = (uint16_t)(mix(r ^ 11) % (k[i].kind == DRILL_KERNEL ? 4 : 3));
    }
    for (uint32_t h = 0; h < c->hosts; h++) {
        if (!host_affected(c, h))
            continue;
        double u = unit(key3(c->seed, 3, h));
        double p = 1.0 / (c->loop_mean < 1 ? 1 : c->loop_mean);
        size_t loops = 1 + (size_t)floor(log(1.0 - u) / log(1.0 - p + 1e-12));
        if (loops > c->max_loops)
            loops = c->max_loops;
        /* The update reaches hosts ever faster, then the last stragglers (a logistic-like
         * rollout): the square root spreads early arrivals thin. */
        int64_t onset = t0_ms + (int64_t)(sqrt(unit(key3(c->seed, 5, h))) * (double)c->rollout_ms);
        for (size_t j = 0; j < loops; j++, i++) {
            uint64_t r = key3(c->seed, 6, (uint64_t)h << 8 | j);
            k[i].at_ms = onset + (int64_t)j * c->loop_interval_ms +
                         (int64_t)(unit(r) * 0.2 * (double)c->loop_interval_ms);
            k[i].host = h;
            k[i].nth = (uint32_t)j;
            k[i].kind = DRILL_EVENT;
            /* Stacks are not equally common: weight 1/(v+1). */
            double w = unit(mix(r)), tot = 0, acc = 0;
            for (size_t v = 0; v < c->stacks; v++)
                tot += 1.0 / (double)(v + 1);
            size_t v = 0;
            for (; v + 1 < c->stacks; v++) {
                acc += 1.0 / (double)(v + 1) / tot;
                if (w < acc)
                    break;
            }
            k[i].variant = (uint16_t)v;
        }
    }
    qsort(k, i, sizeof *k, by_time);
    *out = k;
    *count = i;
    return CM_E_OK;
}

/* ---- the dumps ---- */

static const char *const regions[] = { "eu", "us", "ap" };

static void metadata(const struct drill_conf *c, const struct drill_crash *k, struct drill_dump *d)
{
    snprintf(d->host, sizeof d->host, "h%07u", k->host);
    snprintf(d->region, sizeof d->region, "%s", regions[key3(c->seed, 7, k->host) % 3]);
    snprintf(d->channel, sizeof d->channel, "%s",
             key3(c->seed, 8, k->host) % 10 == 0 ? "early" : "stable");
    d->ann[0] = (struct ing_kv){ "region", d->region };
    d->ann[1] = (struct ing_kv){ "channel", d->channel };
}

/* A user-mode crash of the agent: the host's platform picks among its scenarios. */
static enum cm_code user_dump(const struct drill_conf *c, const struct drill_crash *k,
                              struct drill_dump *d, struct cm_err *err)
{
    static const enum fix_scenario win[] = { FIX_SC_WIN_AMD64_AV, FIX_SC_WIN_AMD64_STACK_OVERFLOW,
                                             FIX_SC_WIN_X86_DIVIDE };
    static const enum fix_scenario lin[] = { FIX_SC_LINUX_AMD64_SEGV, FIX_SC_LINUX_AMD64_ABORT,
                                             FIX_SC_LINUX_AMD64_SEGV };
    static const enum fix_scenario mac[] = { FIX_SC_MACOS_AMD64_BAD_ACCESS,
                                             FIX_SC_MACOS_ARM64_BAD_ACCESS,
                                             FIX_SC_MACOS_ARM64_BAD_ACCESS };
    static const enum fix_scenario and[] = { FIX_SC_ANDROID_ARM64_SEGV, FIX_SC_ANDROID_ARM_SEGV,
                                             FIX_SC_ANDROID_ARM64_SEGV };
    enum os_kind os = host_os(c, k->host);
    const enum fix_scenario *set = os == OS_WINDOWS ? win : os == OS_LINUX ? lin
                                   : os == OS_MACOS ? mac : and;
    static const char *const products[] = { "ContosoAgent", "contoso-agent", "Contoso Sensor",
                                            "com.contoso.sensor" };
    static const char *const oses[] = { "Windows NT", "Linux", "Mac OS X", "Android" };
    static const char *const os_versions[] = { "10.0.19045", "6.8.0-35-generic", "14.5.0",
                                               "14" };
    uint16_t minor = (uint16_t)(15 + key3(c->seed, 9, k->host) % 3); /* agent 4.2.15..17 */
    struct fix_sample_opts so = { .seed = key3(c->seed, 10, (uint64_t)k->host << 20 | k->nth),
                                  .fault_version = { 4, 2, minor, 0 }, .host = d->host };
    snprintf(d->product, sizeof d->product, "%s", products[os]);
    snprintf(d->version, sizeof d->version, "4.2.%u", minor);
    snprintf(d->os, sizeof d->os, "%s", oses[os]);
    snprintf(d->os_version, sizeof d->os_version, "%s", os_versions[os]);
    return fix_sample(set[k->variant % 3], &so, &d->data, &d->len, NULL, err);
}

/* The Windows kernel: a blue screen. Baseline bugs (variant 0..3) and the faulty build's
 * stacks (DRILL_EVENT, variant 0..stacks-1). */
static enum cm_code kernel_dump(const struct drill_conf *c, const struct drill_crash *k,
                                struct drill_dump *d, struct cm_err *err)
{
    uint64_t r = key3(c->seed, 11, (uint64_t)k->host << 24 ^ (uint64_t)k->nth << 2 ^ k->kind);
    bool event = k->kind == DRILL_EVENT;
    static const char *const names[] = {
        "\\SystemRoot\\system32\\ntoskrnl.exe",       "\\SystemRoot\\system32\\hal.dll",
        "\\SystemRoot\\System32\\drivers\\Wdf01000.sys", "\\SystemRoot\\System32\\drivers\\ndis.sys",
        "\\SystemRoot\\System32\\drivers\\tcpip.sys",  "\\SystemRoot\\System32\\drivers\\nvlddmkm.sys",
        "\\SystemRoot\\System32\\drivers\\rtwlane.sys", "\\SystemRoot\\System32\\drivers\\iaStorAC.sys",
        "\\SystemRoot\\System32\\drivers\\contoso_sensor.sys",
    };
    static const uint32_t sizes[] = { 0x1046000, 0x6000, 0xd1000, 0x12a000, 0x2d8000, 0x3e50000,
                                      0x6f1000, 0x1d2000, DRILL_FAULT_SIZE };
    static const uint32_t stamps[] = { 0x0d8333e6, 0x1a7be8e9, 0xa9a9d36e, 0x5e3c9d21, 0x7c1a09e4,
                                       0x6650b1c2, 0x64b2d0f1, 0x63f7a5e0, 0 };
    enum { NDRV = sizeof names / sizeof names[0] };
    struct fix_kdriver drv[NDRV];
    uint64_t base = 0xfffff80470000000ull + (mix(r) % 0x400) * 0x200000ull; /* KASLR */
    for (size_t i = 0; i < NDRV; i++) {
        drv[i] = (struct fix_kdriver){ names[i], base, sizes[i], stamps[i], (uint32_t)mix(i) };
        base += ((uint64_t)sizes[i] + 0xfffff) / 0x100000 * 0x100000 +
                (mix(r ^ i) % 16) * 0x100000;
    }
    drv[NDRV - 1].timestamp = event ? DRILL_FAULT_STAMP : DRILL_GOOD_STAMP;

    struct fix_kret rets[6];
    size_t nret = 0;
    struct fix_kernel kd = {
        .build = key3(c->seed, 12, k->host) % 3 == 0 ? 22631 : 19045,
        .processors = (uint32_t)(2u << (mix(r ^ 1) % 4)),
        .drivers = drv,
        .driver_count = NDRV,
        .stack_top = 0xffff850429890000ull + (mix(r ^ 2) % 0x10000) * 0x10000,
        .pid = 4,
        .tid = (uint32_t)(0x100 + mix(r ^ 3) % 0x4000) & ~3u,
        .process_name = "System",
        .system_time = (uint64_t)(k->at_ms + 11644473600000LL) * 10000u, /* FILETIME */
    };
    if (event) { /* the faulty build: one bug, many code paths into it */
        unsigned v = k->variant;
        kd.bugcheck = 0x50;
        kd.fault_driver = DRILL_FAULT_MODULE;
        kd.fault_offset = 0xe14b + 0x1d3u * v;
        kd.params[0] = 0xffff840500000074ull + (uint64_t)v * 0x10; /* the bad pointer */
        kd.params[1] = 0;
        kd.params[3] = 2;
        rets[nret++] = (struct fix_kret){ DRILL_FAULT_MODULE, 0x2200 + 0x97u * (v % 7) };
        rets[nret++] = (struct fix_kret){ DRILL_FAULT_MODULE, 0x5a10 + 0x61u * (v / 7) };
        rets[nret++] = (struct fix_kret){ "Wdf01000.sys", 0x7c027 };
        rets[nret++] = (struct fix_kret){ "ntoskrnl.exe", 0x35f0a5 };
    } else {
        static const struct {
            const char *drv;
            uint32_t code, off, ret;
            uint64_t p0;
        } bugs[] = {
            { "nvlddmkm.sys", 0x3b, 0x1f2a31, 0x1f1c08, 0xc0000005 },
            { "rtwlane.sys", 0xd1, 0x4c1e2, 0x4b0a4, 0xffffb30c2a7d1010ull },
            { "iaStorAC.sys", 0x7e, 0x1a3f0, 0x19e21, 0xc0000005 },
            { DRILL_FAULT_MODULE, 0x50, 0x8c21, 0x8a40, 0xffffd00000000010ull },
        };
        unsigned v = k->variant % 4;
        kd.bugcheck = bugs[v].code;
        kd.fault_driver = bugs[v].drv;
        kd.fault_offset = bugs[v].off;
        kd.params[0] = bugs[v].p0;
        rets[nret++] = (struct fix_kret){ bugs[v].drv, bugs[v].ret };
        rets[nret++] = (struct fix_kret){ "ndis.sys", 0x2c1b4 };
        rets[nret++] = (struct fix_kret){ "ntoskrnl.exe", 0x35f0a5 };
    }
    kd.params[2] = fix_kernel_addr(&kd, kd.fault_driver, kd.fault_offset);
    if (kd.bugcheck == 0x3b) /* SYSTEM_SERVICE_EXCEPTION: code, address, context, 0 */
        kd.params[1] = kd.params[2];
    kd.returns = rets;
    kd.return_count = nret;
    /* Locals between the frames: data that differs on every host, never a code address. */
    struct fix_kslot slots[24];
    size_t ns = 0;
    uint32_t sp_off = 0x3000 / 4; /* fix_kernel's default sp: stack_top + size / 4 */
    for (uint32_t off = 0x10; ns < 24 && off + 8 <= 0x3000; off += 0x58) {
        if (off + 8 > sp_off && off < sp_off + 0x30 * (uint32_t)(nret + 1))
            continue; /* the frames' return addresses live here */
        uint64_t x = mix(r ^ (0x100 + off));
        slots[ns++] = (struct fix_kslot){ off, x & 1 ? 0xffffa00000000000ull | (x >> 20)
                                                     : x % 4096 };
    }
    kd.slots = slots;
    kd.slot_count = ns;

    snprintf(d->product, sizeof d->product, "Windows");
    snprintf(d->version, sizeof d->version, "10.0.%u", kd.build);
    snprintf(d->os, sizeof d->os, "Windows NT");
    snprintf(d->os_version, sizeof d->os_version, "10.0.%u", kd.build);
    return fix_kernel_write(&kd, &d->data, &d->len, NULL, err);
}

enum cm_code drill_make(const struct drill_conf *c, const struct drill_crash *k,
                        struct drill_dump *d, struct cm_err *err)
{
    memset(d, 0, sizeof *d);
    metadata(c, k, d);
    enum cm_code rc = k->kind == DRILL_USER ? user_dump(c, k, d, err) : kernel_dump(c, k, d, err);
    if (rc)
        return rc;
    d->crash = (struct ing_client_crash){
        .dump = d->data,
        .dump_len = d->len,
        .name = d->host,
        .host_id = d->host,
        .product = d->product,
        .version = d->version,
        .os = d->os,
        .os_version = d->os_version,
        .crash_time_unix_ms = k->at_ms,
        .annotations = d->ann,
        .annotation_count = 2,
    };
    return CM_E_OK;
}

void drill_dump_free(struct drill_dump *d)
{
    if (!d)
        return;
    free(d->data);
    d->data = NULL;
}
