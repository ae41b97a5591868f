/* mdmp_ref.h -- readers for Breakpad's own answers about the corpus minidumps, the oracle of
 * test_minidump.c: minidump_stackwalk's machine-readable lines (OS|, CPU|, Crash|, Module|), its
 * human report (crash parameters, process uptime, each thread's frame-0 registers) and
 * minidump_dump's raw stream listing (blocks of "  key = value" lines). Formats as Breakpad's
 * stackwalk_common.cc and minidump.cc print them. */
#ifndef TRIAGE_TESTS_MDMP_REF_H
#define TRIAGE_TESTS_MDMP_REF_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

struct mdref_module {
    char name[256], version[64], debug_file[256], debug_id[80];
    uint64_t base, end;
    bool main;
};

struct mdref_reg {
    char name[16];
    uint64_t value;
};

/* A thread of the human report: Breakpad's index (the dump-writing thread left out) and the
 * registers it printed for frame 0, i.e. the context it was given. */
struct mdref_thread {
    int index;
    bool crashed;
    size_t nregs;
    struct mdref_reg regs[40];
};

struct mdref {
    char os[64], os_ver[256], cpu[32], cpu_info[256];
    unsigned cpu_count;
    char reason[256], address[64], thread[16]; /* the Crash| fields, "" where Breakpad has none */
    struct mdref_module modules[512];
    size_t module_count;
    bool has_uptime;
    uint64_t uptime_s;
    size_t nparams;
    uint64_t params[15];
    struct mdref_thread threads[16];
    size_t thread_count;
};

/* Reads reference/NAME.stackwalk.machine_readable.out and NAME.stackwalk.out under the corpus
 * (failing the test if either is missing). *r is allocated; free with free(). */
struct mdref *mdref_load(const char *name);

struct mdump_block {
    char name[64];
    size_t n;
    char keys[64][48], vals[64][160];
    char *data; /* hex lines that follow the block ("Stack", "Memory"), NULL if none */
};

struct mdump {
    struct mdump_block *blocks;
    size_t n;
};

/* Parses minidump_dump output at path. */
void mdump_load(const char *path, struct mdump *d);
void mdump_free(struct mdump *d);
/* The value of key in b (fails the test if absent); quotes stripped from strings. */
const char *mdump_str(const struct mdump_block *b, const char *key);
/* The value of key as a number: 0x-prefixed hex or decimal, up to the first space. */
uint64_t mdump_num(const struct mdump_block *b, const char *key);

#endif
