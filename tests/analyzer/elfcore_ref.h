/* elfcore_ref.h -- what elfutils says about a core file, for tests to compare the ELF core reader
 * with: `eu-readelf -n` (notes), `eu-readelf -l` (program headers) and `eu-unstrip -n --core`
 * (modules with build ids), run on the file and parsed into plain structs. */
#ifndef TRIAGE_TEST_ELFCORE_REF_H
#define TRIAGE_TEST_ELFCORE_REF_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

#define REF_MAX_THREADS 64
#define REF_MAX_FILES 512
#define REF_MAX_LOADS 512
#define REF_MAX_IDS 64

struct ref_file { /* one NT_FILE line */
    uint64_t start, end, offset;
    char path[256];
};

struct ref_load { /* one LOAD program header */
    uint64_t offset, vaddr, filesz, memsz;
    bool r, w, x;
};

struct ref_id { /* one eu-unstrip module with a build id */
    uint64_t base, size;
    char build_id[129];
};

struct ref_core {
    size_t threads;                  /* NT_PRSTATUS notes */
    uint32_t tids[REF_MAX_THREADS];  /* their pid: lines */
    char *regs[REF_MAX_THREADS];     /* each PRSTATUS's text, for ref_reg */
    bool has_siginfo, has_fault;
    int signo, code;
    uint64_t fault;                  /* "fault address:" */
    bool has_prpsinfo;
    uint32_t pid;
    char fname[32];
    long file_count;                 /* "N files:", -1 without NT_FILE */
    size_t nfiles;
    struct ref_file files[REF_MAX_FILES];
    bool has_sysinfo_ehdr, has_entry;
    uint64_t sysinfo_ehdr, entry;    /* NT_AUXV */
    size_t nloads;
    struct ref_load loads[REF_MAX_LOADS];
    size_t nids;
    struct ref_id ids[REF_MAX_IDS];
};

/* Runs the elfutils tools on path (each must exit 0) and parses their output; the test fails if
 * they cannot run. *r is owned by the caller; free with ref_free(). */
struct ref_core *ref_read(const char *path, bool with_unstrip);
void ref_free(struct ref_core *r);
/* The value eu-readelf prints for register name in thread i's NT_PRSTATUS. */
bool ref_reg(const struct ref_core *r, size_t thread, const char *name, uint64_t *v);

#endif
