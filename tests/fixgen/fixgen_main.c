/* fixgen_main.c -- triage-fixgen: writes sample crash dumps made by the fixture writer, for the
 * demo command, end-to-end tests and drills.
 *
 *   triage-fixgen samples DIR [--count N] [--seed S]
 *
 * Writes N samples of every scenario (default 2) into DIR, as <scenario>-<seed>.dmp, every
 * second one of a scenario zstd-compressed as .dmp.zst, so each scenario appears in both forms.
 * Sample k of a scenario uses seed S + k. Prints one line per file: path, bytes, scenario, seed,
 * crashing thread's frame count, fault module. Exit 0, 1 on a write failure, 2 on bad usage. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fixgen/fixgen.h"

static int usage(void)
{
    fprintf(stderr, "usage: triage-fixgen samples DIR [--count N] [--seed S]\n");
    return 2;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || *s == '-')
        return false;
    *out = v;
    return true;
}

static int write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "triage-fixgen: cannot create %s: %s\n", path, strerror(errno));
        return 1;
    }
    bool ok = fwrite(p, 1, n, f) == n;
    if (fclose(f) != 0)
        ok = false;
    if (!ok) {
        fprintf(stderr, "triage-fixgen: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

static int samples(const char *dir, uint64_t count, uint64_t seed)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "triage-fixgen: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    for (uint64_t k = 0; k < count; k++) {
        for (int sc = 0; sc < FIX_SC__COUNT; sc++) {
            struct fix_sample_opts o = { .seed = seed + k };
            struct fix_sample_info info;
            struct cm_err err = { 0 };
            uint8_t *raw = NULL, *z = NULL;
            size_t raw_len = 0, z_len = 0;
            int rc = 0;
            if (fix_sample((enum fix_scenario)sc, &o, &raw, &raw_len, &info, &err)) {
                fprintf(stderr, "triage-fixgen: %s: %s\n", fix_scenario_name(sc), err.msg);
                return 1;
            }
            bool zst = k % 2 == 1;
            if (zst && fix_zstd(raw, raw_len, 9, &z, &z_len, &err)) {
                fprintf(stderr, "triage-fixgen: %s\n", err.msg);
                free(raw);
                return 1;
            }
            char path[4096];
            snprintf(path, sizeof path, "%s/%s-%" PRIu64 ".dmp%s", dir, fix_scenario_name(sc),
                     seed + k, zst ? ".zst" : "");
            rc = write_file(path, zst ? z : raw, zst ? z_len : raw_len);
            if (rc == 0)
                printf("%s bytes=%zu scenario=%s seed=%" PRIu64 " frames=%zu fault_module=%s\n",
                       path, zst ? z_len : raw_len, fix_scenario_name(sc), seed + k,
                       info.frame_count, info.fault_module);
            free(raw);
            free(z);
            if (rc)
                return rc;
        }
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "samples") != 0)
        return usage();
    uint64_t count = 2, seed = 1;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            if (!parse_u64(argv[++i], &count) || count == 0 || count > 1000000)
                return usage();
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            if (!parse_u64(argv[++i], &seed))
                return usage();
        } else {
            return usage();
        }
    }
    return samples(argv[2], count, seed);
}
