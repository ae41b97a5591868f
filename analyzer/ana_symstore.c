/* ana_symstore.c -- symbol stores, the per-process cache of parsed symbol files, and per-dump
 * jobs.
 *
 * A module is looked for under up to two keys, each searched through every folder in order:
 * Breakpad (DEBUG_FILE/DEBUG_ID/STEM.sym, from the module's debug file and debug id) and GNU
 * build-id (.build-id/xx/rest.debug and .build-id/xx/rest, from its build id). Names taken from a
 * dump are untrusted: the debug file is reduced to its last path component and refused if it is
 * empty, "." or "..", or holds control bytes; ids must be hex. A found file must carry the same
 * id inside (MODULE record, NT_GNU_BUILD_ID note).
 *
 * Cache: a hash table of keys. An entry is LOADING (one thread parses, others wait on the
 * condition variable), READY (a parsed file, on an LRU list, reference counted) or MISSING
 * (remembered for opts.negative_ttl_s). Parsing happens outside the lock. Files past
 * opts.max_cache_bytes are dropped least recently used first, never while a job holds them. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h> /* strcasecmp */
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "analyzer/ana_int.h"
#include "analyzer/ana_sym_int.h"
#include "common/cm_alloc.h"

#define MAX_NEGATIVE_ENTRIES 100000
#define MAX_NAME_BYTES 255
#define MAX_ID_CHARS 128

void ana_symstore_opts_default(struct ana_symstore_opts *o)
{
    *o = (struct ana_symstore_opts){
        .max_file_bytes = 1ull << 30,
        .max_job_bytes = 2ull << 30,
        .max_job_modules = 512,
        .max_cache_bytes = 2ull << 30,
        .max_records = 32u << 20,
        .negative_ttl_s = 600,
        .dwarf_inlines = false,
    };
}

enum cm_code ana__read_file(const char *path, uint64_t max_bytes, char **out, size_t *len,
                            struct cm_err *err)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cm_fail(err, errno == ENOENT ? CM_E_NOTFOUND : CM_E_IO, "cannot open %s: %s", path,
                       strerror(errno));
    enum cm_code rc = CM_E_OK;
    char *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = cm_fail(err, CM_E_IO, "%s is not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > max_bytes || (uint64_t)st.st_size >= SIZE_MAX) {
        rc = cm_fail(err, CM_E_LIMIT, "%s: %lld bytes exceed the symbol file limit %llu", path,
                     (long long)st.st_size, (unsigned long long)max_bytes);
        goto out;
    }
    size_t n = (size_t)st.st_size, got = 0;
    if (!(buf = cm_malloc(n + 1))) {
        rc = cm_fail(err, CM_E_NOMEM, "cannot hold %zu bytes of %s", n, path);
        goto out;
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* the file shrank: take what was read */
        got += (size_t)r;
    }
    buf[got] = 0;
    *out = buf;
    *len = got;
    buf = NULL;
out:
    cm_free(buf);
    close(fd);
    return rc;
}

/* ---- symbol files ---- */

struct entry;

struct ana_symfile {
    enum ana_symfile_kind kind;
    struct ana_bpsym *bp;
    struct ana_elfsym *elf;
    uint64_t bytes; /* source bytes: what a job's budget counts */
    uint64_t mem;   /* what the cache counts */
    unsigned refs;  /* guarded by the store's lock */
    struct entry *entry;
};

static void symfile_free(struct ana_symfile *f)
{
    if (!f)
        return;
    ana__bpsym_free(f->bp);
    ana__elfsym_free(f->elf);
    cm_free(f);
}

enum ana_symfile_kind ana_symfile_kind(const struct ana_symfile *f) { return f->kind; }
uint64_t ana_symfile_bytes(const struct ana_symfile *f) { return f->bytes; }

uint64_t ana_symfile_bad_records(const struct ana_symfile *f)
{
    return f->bp ? ana__bpsym_bad_records(f->bp) : 0;
}

bool ana_symfile_lookup(const struct ana_symfile *f, uint64_t rva, struct ana_symloc *out)
{
    if (f->bp)
        return ana__bpsym_lookup(f->bp, rva, out);
    return ana__elfsym_lookup(f->elf, rva, out);
}

bool ana_symfile_has_function(const struct ana_symfile *f, uint64_t rva)
{
    if (f->bp) {
        struct ana_symloc loc;
        return ana__bpsym_lookup(f->bp, rva, &loc) && loc.function;
    }
    return ana__elfsym_has_function(f->elf, rva);
}

size_t ana_symfile_cfi_rules(const struct ana_symfile *f, uint64_t rva, const char **rules,
                             size_t max)
{
    return f->bp ? ana__bpsym_cfi_rules(f->bp, rva, rules, max) : 0;
}

bool ana_symfile_win(const struct ana_symfile *f, uint64_t rva, struct ana_win_frame *out)
{
    return f->bp ? ana__bpsym_win(f->bp, rva, out) : false;
}

int ana_symfile_with_cfi(const struct ana_symfile *f, ana_cfi_fn fn, void *arg)
{
    return f->elf ? ana__elfsym_with_cfi(f->elf, fn, arg) : -1;
}

/* ---- the store ---- */

enum entry_state { E_LOADING, E_READY, E_MISSING };

struct entry {
    struct entry *next;             /* hash chain */
    struct entry *lru_prev, *lru_next;
    enum entry_state state;
    struct ana_symfile *file;       /* E_READY */
    char *why;                      /* E_MISSING: why a found file was rejected, or NULL */
    char *path;                     /* E_READY: the file used */
    uint64_t missing_since_s;
    uint64_t hash;
    char key[];
};

struct ana_symstore {
    char **dirs;
    size_t ndirs;
    struct ana_symstore_opts opts;
    pthread_mutex_t lock;
    pthread_cond_t loaded;
    struct entry **buckets;
    size_t nbuckets, nentries, nnegative;
    struct entry *lru_head, *lru_tail; /* READY entries, most recent first */
    struct ana_symstore_stats stats;
};

static uint64_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec;
}

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static struct entry *find_entry(struct ana_symstore *s, const char *key, uint64_t h)
{
    for (struct entry *e = s->buckets[h & (s->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void lru_unlink(struct ana_symstore *s, struct entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else if (s->lru_head == e)
        s->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else if (s->lru_tail == e)
        s->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(struct ana_symstore *s, struct entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = s->lru_head;
    if (s->lru_head)
        s->lru_head->lru_prev = e;
    s->lru_head = e;
    if (!s->lru_tail)
        s->lru_tail = e;
}

static void grow(struct ana_symstore *s)
{
    if (s->nentries < s->nbuckets * 2)
        return;
    size_t n = s->nbuckets * 4;
    struct entry **b = cm_calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains; still correct */
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct entry *e = s->buckets[i];
        while (e) {
            struct entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    cm_free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

static void entry_free(struct entry *e)
{
    if (e->file)
        symfile_free(e->file);
    cm_free(e->why);
    cm_free(e->path);
    cm_free(e);
}

static void remove_entry(struct ana_symstore *s, struct entry *e)
{
    struct entry **pp = &s->buckets[e->hash & (s->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp)
        *pp = e->next;
    s->nentries--;
    if (e->state == E_MISSING)
        s->nnegative--;
    if (e->state == E_READY) {
        lru_unlink(s, e);
        s->stats.cached_bytes -= e->file->mem;
        s->stats.cached_files--;
    }
    entry_free(e);
}

static void drop_negatives(struct ana_symstore *s)
{
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct entry **pp = &s->buckets[i];
        while (*pp) {
            struct entry *e = *pp;
            if (e->state == E_MISSING) {
                *pp = e->next;
                s->nentries--;
                s->nnegative--;
                entry_free(e);
            } else {
                pp = &e->next;
            }
        }
    }
}

/* Drops unreferenced files, least recently used first, until the cache fits. */
static void evict(struct ana_symstore *s)
{
    struct entry *e = s->lru_tail;
    while (e && s->stats.cached_bytes > s->opts.max_cache_bytes) {
        struct entry *prev = e->lru_prev;
        if (e->file->refs == 0) {
            remove_entry(s, e);
            s->stats.evictions++;
        }
        e = prev;
    }
}

void ana_symstore_free(struct ana_symstore *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->buckets && i < s->nbuckets; i++) {
        struct entry *e = s->buckets[i];
        while (e) {
            struct entry *next = e->next;
            entry_free(e);
            e = next;
        }
    }
    cm_free(s->buckets);
    for (size_t i = 0; i < s->ndirs; i++)
        cm_free(s->dirs[i]);
    cm_free(s->dirs);
    pthread_cond_destroy(&s->loaded);
    pthread_mutex_destroy(&s->lock);
    cm_free(s);
}

enum cm_code ana_symstore_new(const char *const *dirs, size_t ndirs,
                              const struct ana_symstore_opts *opts, struct ana_symstore **out,
                              struct cm_err *err)
{
    *out = NULL;
    struct ana_symstore *s = cm_calloc(1, sizeof *s);
    if (!s)
        return cm_fail(err, CM_E_NOMEM, "cannot allocate a symbol store");
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->loaded, NULL);
    if (opts)
        s->opts = *opts;
    else
        ana_symstore_opts_default(&s->opts);
    s->nbuckets = 64;
    s->buckets = cm_calloc(s->nbuckets, sizeof *s->buckets);
    s->dirs = cm_calloc(ndirs ? ndirs : 1, sizeof *s->dirs);
    if (!s->buckets || !s->dirs) {
        ana_symstore_free(s);
        return cm_fail(err, CM_E_NOMEM, "cannot allocate a symbol store");
    }
    for (size_t i = 0; i < ndirs; i++) {
        if (!dirs[i] || !*dirs[i]) {
            ana_symstore_free(s);
            return cm_fail(err, CM_E_USAGE, "symbol folder %zu is empty", i);
        }
        size_t len = strlen(dirs[i]);
        while (len > 1 && dirs[i][len - 1] == '/')
            len--;
        if (!(s->dirs[i] = cm_strndup(dirs[i], len))) {
            ana_symstore_free(s);
            return cm_fail(err, CM_E_NOMEM, "cannot allocate a symbol store");
        }
        s->ndirs = i + 1;
    }
    *out = s;
    return CM_E_OK;
}

void ana_symstore_get_stats(struct ana_symstore *s, struct ana_symstore_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->lock);
}

void ana_symstore_forget_missing(struct ana_symstore *s)
{
    pthread_mutex_lock(&s->lock);
    drop_negatives(s);
    pthread_mutex_unlock(&s->lock);
}

void ana_symstore_release(struct ana_symstore *s, struct ana_symfile *f)
{
    if (!s || !f)
        return;
    pthread_mutex_lock(&s->lock);
    if (f->refs)
        f->refs--;
    if (f->refs == 0 && s->stats.cached_bytes > s->opts.max_cache_bytes)
        evict(s);
    pthread_mutex_unlock(&s->lock);
}

/* ---- keys and probing ---- */

/* The last component of a Windows or POSIX path; NULL when unusable as a file name. */
static const char *safe_name(const char *path, char *buf, size_t cap)
{
    if (!path)
        return NULL;
    const char *b = path;
    for (const char *p = path; *p; p++)
        if (*p == '/' || *p == '\\')
            b = p + 1;
    size_t n = strlen(b);
    if (n == 0 || n > MAX_NAME_BYTES || n >= cap || strcmp(b, ".") == 0 || strcmp(b, "..") == 0)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)b[i] < 0x20 || b[i] == 0x7f)
            return NULL;
    memcpy(buf, b, n + 1);
    return buf;
}

/* Upper-case hex id; NULL when id holds anything else. */
static const char *safe_id(const char *id, char *buf, size_t cap)
{
    if (!id)
        return NULL;
    size_t n = strlen(id);
    if (n == 0 || n > MAX_ID_CHARS || n >= cap)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (ch >= 'a' && ch <= 'f')
            ch = (char)(ch - 'a' + 'A');
        else if (!((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'F')))
            return NULL;
        buf[i] = ch;
    }
    buf[n] = 0;
    return buf;
}

static bool regular_file(const char *path, uint64_t *size)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    *size = (uint64_t)st.st_size;
    return true;
}

struct key {
    bool breakpad;
    char text[MAX_NAME_BYTES + MAX_ID_CHARS + 16];
    char name[MAX_NAME_BYTES + 1]; /* Breakpad: debug file */
    char id[MAX_ID_CHARS + 1];     /* Breakpad: debug id; build id: lower-case hex */
    const uint8_t *build_id;
    size_t build_id_len;
};

static size_t module_keys(const struct ana_module *m, struct key *k)
{
    size_t n = 0;
    char name[MAX_NAME_BYTES + 1], id[MAX_ID_CHARS + 1];
    if (safe_name(m->debug_file, name, sizeof name) && safe_id(m->debug_id, id, sizeof id)) {
        k[n] = (struct key){ .breakpad = true };
        memcpy(k[n].name, name, sizeof name);
        memcpy(k[n].id, id, sizeof id);
        snprintf(k[n].text, sizeof k[n].text, "bp/%s/%s", name, id);
        n++;
    }
    if (m->build_id && m->build_id_len > 0 && m->build_id_len <= MAX_ID_CHARS / 2) {
        k[n] = (struct key){ .breakpad = false, .build_id = m->build_id,
                             .build_id_len = m->build_id_len };
        for (size_t i = 0; i < m->build_id_len; i++)
            snprintf(k[n].id + 2 * i, 3, "%02x", m->build_id[i]);
        snprintf(k[n].text, sizeof k[n].text, "bid/%s", k[n].id);
        n++;
    }
    return n;
}

/* Finds the key's files. Breakpad: path[0]; build id: path[0] the binary, path[1] the .debug. */
static bool probe(const struct ana_symstore *s, const struct key *k, char path[2][4096],
                  uint64_t *bytes)
{
    uint64_t sz;
    *bytes = 0;
    path[0][0] = path[1][0] = 0;
    if (k->breakpad) {
        char stem[MAX_NAME_BYTES + 8];
        size_t n = strlen(k->name);
        snprintf(stem, sizeof stem, "%s", k->name);
        if (n > 4 && strcasecmp(k->name + n - 4, ".pdb") == 0)
            stem[n - 4] = 0;
        for (size_t i = 0; i < s->ndirs; i++) {
            int w = snprintf(path[0], 4096, "%s/%s/%s/%s.sym", s->dirs[i], k->name, k->id, stem);
            if (w > 0 && w < 4096 && regular_file(path[0], &sz)) {
                *bytes = sz;
                return true;
            }
        }
        path[0][0] = 0;
        return false;
    }
    for (int which = 0; which < 2; which++) {
        for (size_t i = 0; i < s->ndirs; i++) {
            int w = snprintf(path[which], 4096, "%s/.build-id/%.2s/%s%s", s->dirs[i], k->id,
                             k->id + 2, which ? ".debug" : "");
            if (w > 0 && w < 4096 && strlen(k->id) > 2 && regular_file(path[which], &sz)) {
                *bytes += sz;
                break;
            }
            path[which][0] = 0;
        }
    }
    return path[0][0] || path[1][0];
}

static enum cm_code load(const struct ana_symstore *s, const struct key *k, char path[2][4096],
                         struct ana_symfile **out, struct cm_err *err)
{
    *out = NULL;
    struct ana_symfile *f = cm_calloc(1, sizeof *f);
    if (!f)
        return cm_fail(err, CM_E_NOMEM, "cannot allocate a symbol file");
    enum cm_code rc;
    if (k->breakpad) {
        char *text;
        size_t len;
        f->kind = ANA_SYMFILE_BREAKPAD;
        if ((rc = ana__read_file(path[0], s->opts.max_file_bytes, &text, &len, err)))
            goto fail;
        if ((rc = ana__bpsym_parse(text, len, &s->opts, &f->bp, err)))
            goto fail;
        const char *mid = ana__bpsym_module_id(f->bp);
        if (mid && strcasecmp(mid, k->id) != 0) {
            rc = cm_fail(err, CM_E_CORRUPT, "%s is for module id %.40s, not %s", path[0], mid,
                         k->id);
            goto fail;
        }
        f->bytes = len;
        f->mem = ana__bpsym_mem_bytes(f->bp);
    } else {
        f->kind = ANA_SYMFILE_ELF;
        const char *bin = path[0][0] ? path[0] : NULL, *dbg = path[1][0] ? path[1] : NULL;
        const char *const *dirs = (const char *const *)s->dirs;
        rc = ana__elfsym_open(bin, dbg, k->build_id, k->build_id_len, dirs, s->ndirs, &s->opts,
                              &f->elf, err);
        if (rc && bin && dbg && rc != CM_E_NOMEM) {
            /* one of the two is unusable: try each alone */
            struct cm_err e2;
            if (ana__elfsym_open(NULL, dbg, k->build_id, k->build_id_len, dirs, s->ndirs,
                                 &s->opts, &f->elf, &e2) == CM_E_OK ||
                ana__elfsym_open(bin, NULL, k->build_id, k->build_id_len, dirs, s->ndirs,
                                 &s->opts, &f->elf, &e2) == CM_E_OK)
                rc = CM_E_OK;
        }
        if (rc)
            goto fail;
        f->bytes = ana__elfsym_bytes(f->elf);
        f->mem = f->bytes;
    }
    *out = f;
    return CM_E_OK;
fail:
    symfile_free(f);
    return rc;
}

const char *ana_symfile_path(const struct ana_symfile *f)
{
    if (f->elf)
        return ana__elfsym_path(f->elf);
    return f->entry ? f->entry->path : NULL;
}

/* One key: from the cache, or found and loaded now. */
static enum cm_code get_key(struct ana_symstore *s, const struct key *k, uint64_t budget,
                            struct ana_symfile **out, struct cm_err *err)
{
    uint64_t h = hash_key(k->text);
    pthread_mutex_lock(&s->lock);
    struct entry *e;
    while ((e = find_entry(s, k->text, h)) != NULL && e->state == E_LOADING)
        pthread_cond_wait(&s->loaded, &s->lock);
    if (e && e->state == E_MISSING && s->opts.negative_ttl_s &&
        now_s() - e->missing_since_s >= s->opts.negative_ttl_s) {
        remove_entry(s, e);
        e = NULL;
    }
    if (e && e->state == E_MISSING) {
        s->stats.negative_hits++;
        enum cm_code rc = e->why ? cm_fail(err, CM_E_NOTFOUND, "%s", e->why)
                                 : cm_fail(err, CM_E_NOTFOUND, "no symbols for %s", k->text);
        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    if (e) { /* READY */
        if (e->file->bytes > budget) {
            pthread_mutex_unlock(&s->lock);
            return cm_fail(err, CM_E_LIMIT, "%s", k->text);
        }
        s->stats.hits++;
        e->file->refs++;
        lru_unlink(s, e);
        lru_push_front(s, e);
        *out = e->file;
        pthread_mutex_unlock(&s->lock);
        return CM_E_OK;
    }
    /* Not known: claim it, then search and parse without the lock. */
    size_t klen = strlen(k->text);
    e = cm_calloc(1, sizeof *e + klen + 1);
    if (!e) {
        pthread_mutex_unlock(&s->lock);
        return cm_fail(err, CM_E_NOMEM, "out of memory");
    }
    memcpy(e->key, k->text, klen + 1);
    e->hash = h;
    e->state = E_LOADING;
    e->next = s->buckets[h & (s->nbuckets - 1)];
    s->buckets[h & (s->nbuckets - 1)] = e;
    s->nentries++;
    pthread_mutex_unlock(&s->lock);

    char (*path)[4096] = cm_malloc(2 * 4096);
    uint64_t bytes = 0;
    struct ana_symfile *f = NULL;
    enum cm_code rc;
    bool found = path && probe(s, k, path, &bytes);
    if (!path)
        rc = cm_fail(err, CM_E_NOMEM, "out of memory");
    else if (!found)
        rc = cm_fail(err, CM_E_NOTFOUND, "no symbols for %s", k->text);
    else if (bytes > budget)
        rc = cm_fail(err, CM_E_LIMIT, "%s", k->text);
    else
        rc = load(s, k, path, &f, err);

    pthread_mutex_lock(&s->lock);
    if (rc == CM_E_OK) {
        e->state = E_READY;
        e->file = f;
        f->entry = e;
        f->refs = 1;
        if (k->breakpad)
            e->path = cm_strdup(path[0]);
        s->stats.loads++;
        s->stats.cached_files++;
        s->stats.cached_bytes += f->mem;
        lru_push_front(s, e);
        *out = f;
        evict(s);
    } else if (rc == CM_E_LIMIT || rc == CM_E_NOMEM) {
        remove_entry(s, e); /* the job's budget, not the file: ask again next time */
    } else {
        e->state = E_MISSING;
        e->missing_since_s = now_s();
        s->nnegative++;
        if (found) {
            s->stats.load_failures++;
            e->why = cm_strdup(err ? err->msg : "symbol file rejected");
        }
        if (s->nnegative > MAX_NEGATIVE_ENTRIES)
            drop_negatives(s);
    }
    grow(s);
    pthread_cond_broadcast(&s->loaded);
    pthread_mutex_unlock(&s->lock);
    cm_free(path);
    if (rc == CM_E_LIMIT)
        return cm_fail(err, CM_E_LIMIT, "%s: %llu bytes of symbols exceed what is left of the "
                                        "job's budget (%llu)",
                       k->text, (unsigned long long)bytes, (unsigned long long)budget);
    return rc;
}

enum cm_code ana_symstore_get(struct ana_symstore *s, const struct ana_module *m,
                              uint64_t budget_bytes, struct ana_symfile **out,
                              struct cm_err *err)
{
    *out = NULL;
    struct key k[2];
    size_t n = module_keys(m, k);
    enum cm_code rc = cm_fail(err, CM_E_NOTFOUND, "module has no usable debug id or build id");
    struct cm_err first = { 0 };
    bool have_first = false;
    for (size_t i = 0; i < n; i++) {
        struct cm_err e = { 0 };
        rc = get_key(s, &k[i], budget_bytes, out, &e);
        if (rc == CM_E_OK)
            return CM_E_OK;
        if (rc == CM_E_NOMEM || rc == CM_E_LIMIT) {
            if (err)
                *err = e;
            return rc;
        }
        /* prefer reporting a rejected file over a plain miss */
        if (!have_first || (strncmp(first.msg, "no symbols", 10) == 0 &&
                            strncmp(e.msg, "no symbols", 10) != 0)) {
            first = e;
            have_first = true;
        }
    }
    if (have_first && err)
        *err = first;
    return n ? CM_E_NOTFOUND : rc;
}

/* ---- jobs ---- */

enum { JM_UNTRIED = 0, JM_HAVE, JM_NONE };

struct ana_symjob {
    struct ana_symstore *store;
    struct ana_crash *c;
    uint8_t *state;             /* per module */
    struct ana_symfile **files; /* per module */
    struct ana_symfile **used;  /* distinct files held, released at the end */
    size_t nused, capused;
    uint32_t tried;
    uint64_t bytes_used;
    bool warned_modules, warned_budget;
};

enum cm_code ana_symjob_new(struct ana_symstore *store, struct ana_crash *c,
                            struct ana_symjob **out, struct cm_err *err)
{
    *out = NULL;
    struct ana_symjob *j = cm_calloc(1, sizeof *j);
    if (!j)
        return cm_fail(err, CM_E_NOMEM, "cannot allocate a symbol job");
    j->store = store;
    j->c = c;
    size_t n = c->module_count ? c->module_count : 1;
    j->state = cm_calloc(n, sizeof *j->state);
    j->files = cm_calloc(n, sizeof *j->files);
    if (!j->state || !j->files) {
        ana_symjob_free(j);
        return cm_fail(err, CM_E_NOMEM, "cannot allocate a symbol job for %zu modules", n);
    }
    *out = j;
    return CM_E_OK;
}

void ana_symjob_free(struct ana_symjob *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->nused; i++)
        ana_symstore_release(j->store, j->used[i]);
    cm_free(j->used);
    cm_free(j->files);
    cm_free(j->state);
    cm_free(j);
}

struct ana_crash *ana_symjob_crash(struct ana_symjob *j) { return j->c; }

/* Keeps one reference per distinct file (the store's reference on f is consumed either way). */
enum hold { HOLD_NEW, HOLD_KNOWN, HOLD_NOMEM };
static enum hold hold(struct ana_symjob *j, struct ana_symfile *f)
{
    for (size_t i = 0; i < j->nused; i++) {
        if (j->used[i] == f) {
            ana_symstore_release(j->store, f); /* the job holds it already */
            return HOLD_KNOWN;
        }
    }
    if (j->nused == j->capused) {
        size_t cap = j->capused ? j->capused * 2 : 16;
        struct ana_symfile **u = cm_reallocarray(j->used, cap, sizeof *u);
        if (!u) {
            ana_symstore_release(j->store, f);
            return HOLD_NOMEM;
        }
        j->used = u;
        j->capused = cap;
    }
    j->used[j->nused++] = f;
    return HOLD_NEW;
}

const struct ana_symfile *ana_symjob_module(struct ana_symjob *j, int mi)
{
    if (mi < 0 || (size_t)mi >= j->c->module_count)
        return NULL;
    if (j->state[mi] != JM_UNTRIED)
        return j->files[mi];
    j->state[mi] = JM_NONE;
    struct ana_module *m = &j->c->modules[mi];
    m->has_symbols = false;
    m->symbols_source = NULL;
    if (!j->store)
        return NULL;
    uint32_t cap = j->store->opts.max_job_modules;
    if (j->tried >= cap) {
        if (!j->warned_modules)
            ana__warn(j->c, "symbols: module cap of %u reached; %s and later modules left "
                            "unsymbolized",
                      cap, ana_module_basename(m));
        j->warned_modules = true;
        return NULL;
    }
    j->tried++;
    uint64_t budget = j->store->opts.max_job_bytes > j->bytes_used
                          ? j->store->opts.max_job_bytes - j->bytes_used
                          : 0;
    struct ana_symfile *f;
    struct cm_err err = { 0 };
    enum cm_code rc = ana_symstore_get(j->store, m, budget, &f, &err);
    if (rc == CM_E_LIMIT) {
        if (!j->warned_budget)
            ana__warn(j->c, "symbols: budget of %llu bytes per dump reached at %s (%s)",
                      (unsigned long long)j->store->opts.max_job_bytes, ana_module_basename(m),
                      err.msg);
        j->warned_budget = true;
        return NULL;
    }
    if (rc) {
        /* a plain miss is normal (has_symbols says it); a rejected file is worth a warning */
        bool miss = rc == CM_E_NOTFOUND && (strncmp(err.msg, "no symbols", 10) == 0 ||
                                            strncmp(err.msg, "module has no", 13) == 0);
        if (!miss)
            ana__warn(j->c, "symbols for %s not used: %s", ana_module_basename(m), err.msg);
        return NULL;
    }
    enum hold h = hold(j, f);
    if (h == HOLD_NOMEM) {
        ana__warn(j->c, "symbols for %s not used: out of memory", ana_module_basename(m));
        return NULL;
    }
    if (h == HOLD_NEW)
        j->bytes_used += f->bytes;
    j->state[mi] = JM_HAVE;
    j->files[mi] = f;
    m->has_symbols = true;
    const char *src = ana_symfile_path(f);
    m->symbols_source = src ? ana__strndup(j->c, src, 4096) : NULL;
    return f;
}

static const char *dup_str(struct ana_crash *c, const char *s, bool *nomem)
{
    if (!s)
        return NULL;
    const char *d = ana__strndup(c, s, 64 * 1024);
    if (!d)
        *nomem = true;
    return d;
}

enum cm_code ana_symjob_symbolize(struct ana_symjob *j, uint64_t addr, struct ana_frame *fr,
                                  struct cm_err *err)
{
    struct ana_crash *c = j->c;
    fr->module = ana_module_at(c, addr);
    fr->function = NULL;
    fr->function_base = 0;
    fr->file = NULL;
    fr->line = 0;
    fr->line_base = 0;
    fr->inlines = NULL;
    fr->inline_count = 0;
    const struct ana_symfile *f = ana_symjob_module(j, fr->module);
    if (!f)
        return CM_E_OK;
    const struct ana_module *m = &c->modules[fr->module];
    struct ana_symloc loc;
    if (!ana_symfile_lookup(f, addr - m->base, &loc) && !loc.file)
        return CM_E_OK;
    bool nomem = false;
    fr->function = dup_str(c, loc.function, &nomem);
    fr->function_base = loc.function ? m->base + loc.function_rva : 0;
    fr->file = dup_str(c, loc.file, &nomem);
    fr->line = loc.line;
    fr->line_base = loc.line_rva ? m->base + loc.line_rva : 0;
    if (loc.inline_count) {
        fr->inlines = ana__calloc(c, loc.inline_count, sizeof *fr->inlines);
        if (!fr->inlines)
            nomem = true;
        for (size_t i = 0; fr->inlines && i < loc.inline_count; i++) {
            fr->inlines[i].function = dup_str(c, loc.inlines[i].function, &nomem);
            fr->inlines[i].file = dup_str(c, loc.inlines[i].file, &nomem);
            fr->inlines[i].line = loc.inlines[i].line;
            fr->inlines[i].from_dwarf = loc.inlines[i].from_dwarf;
        }
        if (fr->inlines)
            fr->inline_count = loc.inline_count;
    }
    if (nomem)
        return cm_fail(err, CM_E_NOMEM, "out of memory symbolizing 0x%llx",
                       (unsigned long long)addr);
    return CM_E_OK;
}
