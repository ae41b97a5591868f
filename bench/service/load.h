/* load.h -- the request pool of bench_load: every HTTP request of a run prepared before the clock
 * starts, each one a new crash. A request is a short owned head (request line, headers and,
 * for the native route, the whole protobuf body) plus, for multipart, views into the shared
 * base dump, so a pool of 20,000 raw 50 KB uploads costs little memory.
 *
 * Every request carries a distinct dump: the base dump with a 32-bit counter written where the
 * formats leave room for it (MINIDUMP_HEADER.CheckSum at offset 16 of an MDMP file, which readers
 * ignore; e_ident[EI_PAD] at offset 9 of an ELF core), so the collector stores one new spool file
 * per request and never takes the repeat-dump path. Idempotency keys are distinct too. */
#ifndef TRIAGE_BENCH_LOAD_H
#define TRIAGE_BENCH_LOAD_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>
#include <sys/uio.h> /* struct iovec */

#define LOAD_MAX_IOV 6
#define LOAD_MAX_DUMPS 512

enum load_kind {
    LOAD_NATIVE, /* POST /api/v1/crashes: the CrashUpload envelope (proto/crash.proto) */
    LOAD_SUBMIT, /* POST /submit: multipart/form-data as Breakpad and Crashpad send it */
};

struct load_dump {
    const char *path;
    uint8_t *raw; /* decompressed; owned */
    size_t len;
    size_t patch_at; /* where the per-request counter goes (see above) */
    bool elf;
};

struct load_pool_opts {
    enum load_kind kind;
    bool zstd;         /* native: compress each dump (level 3, as triagectl upload does) */
    int zstd_level;
    const char *host;  /* "127.0.0.1:8080", for the Host header */
    const char *path;  /* request target */
    uint32_t seed;     /* first counter value; keeps pools of several invocations distinct */
    unsigned hosts;    /* distinct host ids (guid) cycled through */
    const struct load_dump *dumps;
    size_t dump_count;
};

struct load_req {
    struct iovec iov[LOAD_MAX_IOV];
    int iovcnt;
    size_t bytes;      /* the whole request */
    size_t body_bytes; /* the body alone */
    uint8_t *head;     /* owned: request line, headers, and what else is not shared */
    uint8_t patch[4];  /* the counter, referenced by iov for multipart */
};

struct load_pool {
    struct load_req *req;
    size_t count;
    uint8_t *tail;     /* the multipart epilogue, shared */
    size_t tail_len;
    double body_mean;  /* bytes */
};

/* Loads a dump file (raw or zstd-compressed) and finds where its counter goes; prints the
 * problem and returns false for a file that is neither MDMP nor ELF. */
bool load_dump_read(const char *path, struct load_dump *d);
/* A 32-byte minidump: MINIDUMP_HEADER with no streams (the smallest upload the collector
 * takes; the analyzer then fails it as having no streams). */
void load_dump_tiny(struct load_dump *d);
void load_dump_free(struct load_dump *d);

/* Builds count requests. Prints the problem and returns false on failure. */
bool load_pool_build(const struct load_pool_opts *o, size_t count, struct load_pool *p);
void load_pool_free(struct load_pool *p);

#endif
