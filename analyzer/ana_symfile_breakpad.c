/* ana_symfile_breakpad.c -- a Breakpad .sym file parsed once into sorted arrays: functions,
 * public symbols, line records, inline records (both formats), STACK CFI and STACK WIN. Every
 * lookup is a binary search; nested ranges (inline records, STACK WIN) are kept as a forest whose
 * nodes point at their innermost container, so the innermost range covering an address is found
 * from the last range starting at or below it.
 *
 * The file is untrusted text: a malformed line is skipped and counted, never fatal; every kind of
 * record is capped (opts.max_records). Where records conflict the resolver's rules apply: a FUNC,
 * STACK CFI INIT or line range overlapping an earlier one (in address order) is dropped, a zero
 * size drops the record, the first PUBLIC / FILE / INLINE_ORIGIN of an address or id wins, the
 * last STACK CFI delta of an address wins, nested STACK WIN and inline ranges are kept while a
 * range crossing another's boundary is dropped.
 *
 * Format: Breakpad docs/symbol_files.md. INLINE_ORIGIN has two forms: old `INLINE_ORIGIN id
 * file name` (the field after the id is a number) and new `INLINE_ORIGIN id name`; INLINE has a
 * call-site file column only in the new form, told apart by the parity of its field count
 * (old: 3 + 2n fields, new: 4 + 2n). */
#include <stdlib.h>
#include <string.h>

#include "analyzer/ana_sym_int.h"
#include "common/cm_alloc.h"

struct bp_file {
    int64_t id;
    const char *name;
    uint32_t order;
};

struct bp_origin {
    int64_t id;
    const char *name;
    uint32_t order;
};

struct bp_func {
    uint64_t rva, size;
    const char *name;
    uint32_t param_size;
    uint32_t order;                   /* record number: ties sort in file order */
    uint32_t line_first, line_count;  /* slice of lines[] */
    uint32_t node_first, node_count;  /* slice of inodes[]: its inline ranges */
};

struct bp_public {
    uint64_t rva;
    const char *name;
    uint32_t param_size;
    uint32_t order;
};

struct bp_line {
    uint64_t rva, size;
    int64_t file;
    uint32_t line;
    uint32_t order;
};

struct bp_inline {
    int64_t call_file;  /* FILE id, -1 if none */
    int64_t origin;
    uint32_t level, call_line;
    bool has_call_file; /* new format */
};

/* A range in a nested family: sorted by start, larger first on equal starts; parent is the index
 * of the innermost kept range containing it, -1 for none. */
struct bp_node {
    uint64_t rva, size;
    uint32_t item; /* index into inlines[] or wins[] */
    uint32_t order;
    int32_t parent;
};

struct bp_cfi_init {
    uint64_t rva, size;
    const char *rules;
    uint32_t order;
};

struct bp_cfi_delta {
    uint64_t rva;
    const char *rules;
    uint32_t order;
};

struct bp_win {
    struct ana_win_frame f;
};

/* A growable array with a cap on its count. */
struct vec {
    void *p;
    size_t n, cap;
};

struct ana_bpsym {
    char *text; /* owned; records point into it */
    size_t text_len;
    const char *module_id;
    uint64_t bad;     /* malformed or over-cap records */
    uint64_t dropped; /* well-formed records that conflict with others (overlaps, zero sizes) */
    uint64_t mem_bytes;
    uint32_t max_records;
    uint32_t order;

    struct vec files, origins, funcs, publics, lines, inlines, inodes, cfi_init, cfi_delta, wins;
    struct vec wnodes[2]; /* nodes of FRAME_DATA [0] and FPO [1] records */
};

#define MAX_NEST_STEPS 4096 /* parent links followed in one lookup */

static void *vec_push(struct vec *v, size_t elem, uint32_t max, bool *nomem)
{
    if (v->n >= max)
        return NULL;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        if (cap > max)
            cap = max;
        void *p = cm_reallocarray(v->p, cap, elem);
        if (!p) {
            *nomem = true;
            return NULL;
        }
        v->p = p;
        v->cap = cap;
    }
    void *slot = (char *)v->p + v->n * elem;
    memset(slot, 0, elem);
    v->n++;
    return slot;
}

/* ---- tokens ---- */

static bool is_sep(char ch) { return ch == ' ' || ch == '\t'; }

/* Next space-separated token of *s, NUL-terminated in place; NULL at the end of the line. */
static char *token(char **s)
{
    char *p = *s;
    while (is_sep(*p))
        p++;
    if (!*p) {
        *s = p;
        return NULL;
    }
    char *t = p;
    while (*p && !is_sep(*p))
        p++;
    if (*p)
        *p++ = 0;
    *s = p;
    return t;
}

/* The rest of the line after separators, NULL if empty. */
static char *rest(char **s)
{
    char *p = *s;
    while (is_sep(*p))
        p++;
    *s = p + strlen(p);
    return *p ? p : NULL;
}

static bool parse_hex(const char *t, uint64_t *out)
{
    uint64_t v = 0;
    if (!t || !*t)
        return false;
    for (; *t; t++) {
        unsigned d;
        if (*t >= '0' && *t <= '9')
            d = (unsigned)(*t - '0');
        else if (*t >= 'a' && *t <= 'f')
            d = (unsigned)(*t - 'a' + 10);
        else if (*t >= 'A' && *t <= 'F')
            d = (unsigned)(*t - 'A' + 10);
        else
            return false;
        if (v >> 60)
            return false; /* would overflow */
        v = v << 4 | d;
    }
    if (v == UINT64_MAX)
        return false;
    *out = v;
    return true;
}

static bool parse_hex32(const char *t, uint32_t *out)
{
    uint64_t v;
    if (!parse_hex(t, &v) || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Decimal, optionally negative, within [min, INT64_MAX). */
static bool parse_dec(const char *t, int64_t min, int64_t *out)
{
    bool neg = false;
    uint64_t v = 0;
    if (!t || !*t)
        return false;
    if (*t == '-') {
        neg = true;
        t++;
    }
    if (!*t)
        return false;
    for (; *t; t++) {
        if (*t < '0' || *t > '9')
            return false;
        if (v > (uint64_t)INT64_MAX / 10)
            return false;
        v = v * 10 + (uint64_t)(*t - '0');
    }
    if (v >= (uint64_t)INT64_MAX)
        return false;
    int64_t s = neg ? -(int64_t)v : (int64_t)v;
    if (s < min)
        return false;
    *out = s;
    return true;
}

/* ---- records ---- */

struct parse {
    struct ana_bpsym *b;
    bool nomem;
    struct bp_func *cur; /* FUNC that line and INLINE records belong to; NULL after PUBLIC */
    bool cur_valid;
};

#define PUSH(ps, vec, type)                                                                        \
    ((type *)vec_push(&(ps)->b->vec, sizeof(type), (ps)->b->max_records, &(ps)->nomem))

static bool rec_file(struct parse *ps, char *s)
{
    int64_t id;
    char *t = token(&s), *name = rest(&s);
    if (!parse_dec(t, 0, &id) || !name)
        return false;
    struct bp_file *f = PUSH(ps, files, struct bp_file);
    if (!f)
        return false;
    *f = (struct bp_file){ .id = id, .name = name, .order = ps->b->order };
    return true;
}

static bool rec_origin(struct parse *ps, char *s)
{
    int64_t id, file;
    if (!parse_dec(token(&s), 0, &id))
        return false;
    /* Old form when the next field is a number (-1 allowed: an artificial function). */
    while (is_sep(*s))
        s++;
    size_t len = 0;
    while (s[len] && !is_sep(s[len]))
        len++;
    bool has_file = len > 0;
    for (size_t i = 0; i < len && has_file; i++)
        has_file = (s[i] >= '0' && s[i] <= '9') || (i == 0 && s[i] == '-' && len > 1);
    if (has_file && !parse_dec(token(&s), -1, &file))
        return false;
    char *name = rest(&s);
    if (!name)
        return false;
    struct bp_origin *o = PUSH(ps, origins, struct bp_origin);
    if (!o)
        return false;
    *o = (struct bp_origin){ .id = id, .name = name, .order = ps->b->order };
    return true;
}

static bool rec_func(struct parse *ps, char *s)
{
    ps->cur = NULL;
    ps->cur_valid = false;
    char *t = token(&s);
    if (t && strcmp(t, "m") == 0)
        t = token(&s);
    uint64_t rva, size;
    uint32_t param;
    if (!parse_hex(t, &rva) || !parse_hex(token(&s), &size) || !parse_hex32(token(&s), &param))
        return false;
    char *name = rest(&s);
    if (!name)
        return false;
    struct bp_func *f = PUSH(ps, funcs, struct bp_func);
    if (!f)
        return false;
    *f = (struct bp_func){ .rva = rva, .size = size, .name = name, .param_size = param,
                           .order = ps->b->order,
                           .line_first = (uint32_t)ps->b->lines.n,
                           .node_first = (uint32_t)ps->b->inodes.n };
    ps->cur = f;
    ps->cur_valid = true;
    return true;
}

static bool rec_public(struct parse *ps, char *s)
{
    ps->cur = NULL; /* public symbols carry no lines */
    ps->cur_valid = false;
    char *t = token(&s);
    if (t && strcmp(t, "m") == 0)
        t = token(&s);
    uint64_t rva;
    uint32_t param;
    if (!parse_hex(t, &rva) || !parse_hex32(token(&s), &param))
        return false;
    char *name = rest(&s);
    if (!name)
        return false;
    if (rva == 0)
        return true; /* seen in real files (ntdll); accepted but never an answer */
    struct bp_public *p = PUSH(ps, publics, struct bp_public);
    if (!p)
        return false;
    *p = (struct bp_public){ .rva = rva, .name = name, .param_size = param,
                             .order = ps->b->order };
    return true;
}

/* ps->cur is a pointer into funcs' storage, which moves when the array grows; refresh it. */
static struct bp_func *cur_func(struct parse *ps)
{
    if (!ps->cur_valid || ps->b->funcs.n == 0)
        return NULL;
    return &((struct bp_func *)ps->b->funcs.p)[ps->b->funcs.n - 1];
}

static bool rec_line(struct parse *ps, char *s)
{
    struct bp_func *f = cur_func(ps);
    if (!f)
        return false; /* line record without a FUNC */
    uint64_t rva, size;
    int64_t line, file;
    if (!parse_hex(token(&s), &rva) || !parse_hex(token(&s), &size) ||
        !parse_dec(token(&s), 0, &line) || line > UINT32_MAX || !parse_dec(token(&s), 0, &file))
        return false;
    struct bp_line *l = PUSH(ps, lines, struct bp_line);
    if (!l)
        return false;
    *l = (struct bp_line){ .rva = rva, .size = size, .file = file, .line = (uint32_t)line,
                           .order = ps->b->order };
    f = cur_func(ps);
    f->line_count++;
    return true;
}

static bool rec_inline(struct parse *ps, char *s)
{
    struct bp_func *f = cur_func(ps);
    if (!f)
        return false;
    char *tok[1024];
    size_t n = 0;
    char *t;
    while ((t = token(&s)) != NULL) {
        if (n == sizeof tok / sizeof *tok)
            return false;
        tok[n++] = t;
    }
    if (n < 5)
        return false;
    bool has_file = n % 2 == 0;
    size_t i = 0;
    int64_t level, line, file = -1, origin;
    if (!parse_dec(tok[i++], 0, &level) || level > UINT32_MAX || !parse_dec(tok[i++], 0, &line) ||
        line > UINT32_MAX)
        return false;
    if (has_file && !parse_dec(tok[i++], -1, &file))
        return false;
    if (!parse_dec(tok[i++], 0, &origin))
        return false;
    size_t first_range = i;
    for (; i + 1 < n; i += 2) {
        uint64_t a, z;
        if (!parse_hex(tok[i], &a) || !parse_hex(tok[i + 1], &z))
            return false;
    }
    struct bp_inline *in = PUSH(ps, inlines, struct bp_inline);
    if (!in)
        return false;
    *in = (struct bp_inline){ .call_file = file, .origin = origin, .level = (uint32_t)level,
                              .call_line = (uint32_t)line, .has_call_file = has_file };
    uint32_t item = (uint32_t)(ps->b->inlines.n - 1);
    for (i = first_range; i + 1 < n; i += 2) {
        uint64_t a, z;
        parse_hex(tok[i], &a);
        parse_hex(tok[i + 1], &z);
        struct bp_node *node = PUSH(ps, inodes, struct bp_node);
        if (!node)
            return false;
        *node = (struct bp_node){ .rva = a, .size = z, .item = item, .order = ps->b->order };
        f = cur_func(ps);
        f->node_count++;
    }
    return true;
}

static bool rec_stack_win(struct parse *ps, char *s)
{
    uint32_t type, v[6], has_program;
    uint64_t rva, size;
    if (!parse_hex32(token(&s), &type) || !parse_hex(token(&s), &rva) ||
        !parse_hex(token(&s), &size))
        return false;
    for (int i = 0; i < 6; i++)
        if (!parse_hex32(token(&s), &v[i]))
            return false;
    if (!parse_hex32(token(&s), &has_program))
        return false;
    char *tail = rest(&s);
    if (!tail)
        return false;
    uint32_t abp = 0;
    if (!has_program) {
        char *end = tail;
        char *t = token(&end);
        if (!parse_hex32(t, &abp))
            return false;
    }
    if (type > 4)
        return false;
    if (type != ANA_WIN_FPO && type != ANA_WIN_FRAME_DATA)
        return true; /* valid, but the walker has no use for TRAP / TSS / STANDARD */
    struct bp_win *w = PUSH(ps, wins, struct bp_win);
    if (!w)
        return false;
    w->f = (struct ana_win_frame){ .type = type, .rva = rva, .code_size = size,
                                   .prolog_size = v[0], .epilog_size = v[1], .param_size = v[2],
                                   .saved_regs_size = v[3], .locals_size = v[4],
                                   .max_stack_size = v[5], .allocates_base_pointer = abp != 0,
                                   .program = has_program ? tail : "" };
    struct vec *nodes = &ps->b->wnodes[type == ANA_WIN_FRAME_DATA ? 0 : 1];
    struct bp_node *node = vec_push(nodes, sizeof *node, ps->b->max_records, &ps->nomem);
    if (!node)
        return false;
    *node = (struct bp_node){ .rva = rva, .size = size, .item = (uint32_t)(ps->b->wins.n - 1),
                              .order = ps->b->order };
    return true;
}

static bool rec_stack_cfi(struct parse *ps, char *s)
{
    char *t = token(&s);
    if (!t)
        return false;
    if (strcmp(t, "INIT") == 0) {
        uint64_t rva, size;
        if (!parse_hex(token(&s), &rva) || !parse_hex(token(&s), &size))
            return false;
        char *rules = rest(&s);
        if (!rules)
            return false;
        struct bp_cfi_init *c = PUSH(ps, cfi_init, struct bp_cfi_init);
        if (!c)
            return false;
        *c = (struct bp_cfi_init){ .rva = rva, .size = size, .rules = rules,
                                   .order = ps->b->order };
        return true;
    }
    uint64_t rva;
    if (!parse_hex(t, &rva))
        return false;
    char *rules = rest(&s);
    if (!rules)
        return false;
    struct bp_cfi_delta *d = PUSH(ps, cfi_delta, struct bp_cfi_delta);
    if (!d)
        return false;
    *d = (struct bp_cfi_delta){ .rva = rva, .rules = rules, .order = ps->b->order };
    return true;
}

static bool rec_module(struct parse *ps, char *s)
{
    char *os = token(&s), *arch = token(&s), *id = token(&s);
    (void)os;
    (void)arch;
    if (!id)
        return false;
    if (!ps->b->module_id)
        ps->b->module_id = id;
    return true;
}

static bool starts(const char *s, const char *prefix, char **after)
{
    size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0)
        return false;
    *after = (char *)s + n;
    return true;
}

static bool parse_line(struct parse *ps, char *s)
{
    char *a;
    if (starts(s, "FILE ", &a))
        return rec_file(ps, a);
    if (starts(s, "FUNC ", &a))
        return rec_func(ps, a);
    if (starts(s, "PUBLIC ", &a))
        return rec_public(ps, a);
    if (starts(s, "STACK WIN ", &a))
        return rec_stack_win(ps, a);
    if (starts(s, "STACK CFI ", &a))
        return rec_stack_cfi(ps, a);
    if (starts(s, "STACK ", &a))
        return false; /* unknown STACK kind */
    if (starts(s, "INLINE_ORIGIN ", &a))
        return rec_origin(ps, a);
    if (starts(s, "INLINE ", &a))
        return rec_inline(ps, a);
    if (starts(s, "MODULE ", &a))
        return rec_module(ps, a);
    if (starts(s, "INFO ", &a))
        return true;
    return rec_line(ps, s);
}

/* ---- indexing ---- */

static int cmp_u64(uint64_t a, uint64_t b) { return a < b ? -1 : a > b; }

static int cmp_func(const void *x, const void *y)
{
    const struct bp_func *a = x, *b = y;
    int c = cmp_u64(a->rva, b->rva);
    return c ? c : cmp_u64(a->order, b->order);
}

static int cmp_public(const void *x, const void *y)
{
    const struct bp_public *a = x, *b = y;
    int c = cmp_u64(a->rva, b->rva);
    return c ? c : cmp_u64(a->order, b->order);
}

static int cmp_line(const void *x, const void *y)
{
    const struct bp_line *a = x, *b = y;
    int c = cmp_u64(a->rva, b->rva);
    return c ? c : cmp_u64(a->order, b->order);
}

static int cmp_file(const void *x, const void *y)
{
    const struct bp_file *a = x, *b = y;
    int c = a->id < b->id ? -1 : a->id > b->id;
    return c ? c : cmp_u64(a->order, b->order);
}

static int cmp_origin(const void *x, const void *y)
{
    const struct bp_origin *a = x, *b = y;
    int c = a->id < b->id ? -1 : a->id > b->id;
    return c ? c : cmp_u64(a->order, b->order);
}

static int cmp_init(const void *x, const void *y)
{
    const struct bp_cfi_init *a = x, *b = y;
    int c = cmp_u64(a->rva, b->rva);
    return c ? c : cmp_u64(a->order, b->order);
}

static int cmp_delta(const void *x, const void *y)
{
    const struct bp_cfi_delta *a = x, *b = y;
    int c = cmp_u64(a->rva, b->rva);
    return c ? c : cmp_u64(a->order, b->order);
}

static int cmp_node(const void *x, const void *y)
{
    const struct bp_node *a = x, *b = y;
    int c = cmp_u64(a->rva, b->rva);
    if (c)
        return c;
    c = cmp_u64(b->size, a->size); /* containers first */
    return c ? c : cmp_u64(a->order, b->order);
}

static bool range_ok(uint64_t rva, uint64_t size) { return size != 0 && rva + size > rva; }

/* Sorts and keeps non-overlapping ranges (the first in address order wins); returns the count. */
#define KEEP_DISJOINT(arr, n, type, cmp)                                                           \
    do {                                                                                           \
        if ((n) > 1)                                                                               \
            qsort((arr), (n), sizeof(type), cmp);                                                  \
        size_t kept_ = 0;                                                                          \
        uint64_t end_ = 0;                                                                         \
        for (size_t i_ = 0; i_ < (n); i_++) {                                                      \
            type r_ = (arr)[i_];                                                                   \
            if (!range_ok(r_.rva, r_.size) || (kept_ && r_.rva < end_)) {                          \
                dropped++;                                                                         \
                continue;                                                                          \
            }                                                                                      \
            end_ = r_.rva + r_.size;                                                               \
            (arr)[kept_++] = r_;                                                                   \
        }                                                                                          \
        (n) = kept_;                                                                               \
    } while (0)

/* Sorts nodes and links each to its innermost container; drops ranges that are empty, wrap,
 * repeat another exactly, or cross another's boundary. Returns the count kept. */
static size_t build_nest(struct bp_node *n, size_t count, uint64_t *dropped)
{
    if (count > 1)
        qsort(n, count, sizeof *n, cmp_node);
    size_t kept = 0;
    int32_t top = -1;
    for (size_t i = 0; i < count; i++) {
        struct bp_node node = n[i];
        if (!range_ok(node.rva, node.size)) {
            ++*dropped;
            continue;
        }
        uint64_t end = node.rva + node.size;
        while (top >= 0 && n[top].rva + n[top].size <= node.rva)
            top = n[top].parent;
        if (top >= 0 && (end > n[top].rva + n[top].size ||
                         (node.rva == n[top].rva && node.size == n[top].size))) {
            ++*dropped;
            continue;
        }
        node.parent = top;
        n[kept] = node;
        top = (int32_t)kept++;
    }
    return kept;
}

/* Items of the ranges covering rva, innermost first; returns how many were stored. */
static size_t nest_find(const struct bp_node *n, size_t count, uint64_t rva, uint32_t *items,
                        size_t max)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (n[mid].rva <= rva)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return 0;
    int32_t i = (int32_t)(lo - 1);
    unsigned steps = 0;
    while (i >= 0 && rva - n[i].rva >= n[i].size) {
        if (++steps > MAX_NEST_STEPS)
            return 0;
        i = n[i].parent;
    }
    size_t out = 0;
    while (i >= 0 && out < max) {
        items[out++] = n[i].item; /* a container of a covering range covers it too */
        i = n[i].parent;
    }
    return out;
}

static void index_all(struct ana_bpsym *b)
{
    uint64_t dropped = 0;
    struct bp_func *funcs = b->funcs.p;
    struct bp_line *lines = b->lines.p;
    struct bp_node *inodes = b->inodes.p;

    /* Per function: its lines (disjoint) and its inline ranges (nested). Slices are compacted
     * in place; a function's slice never overlaps another's. */
    for (size_t i = 0; i < b->funcs.n; i++) {
        struct bp_func *f = &funcs[i];
        size_t nl = f->line_count;
        if (nl) {
            KEEP_DISJOINT(lines + f->line_first, nl, struct bp_line, cmp_line);
            f->line_count = (uint32_t)nl;
        }
        if (f->node_count)
            f->node_count = (uint32_t)build_nest(inodes + f->node_first, f->node_count, &dropped);
    }
    KEEP_DISJOINT(funcs, b->funcs.n, struct bp_func, cmp_func);

    struct bp_public *pubs = b->publics.p;
    if (b->publics.n > 1)
        qsort(pubs, b->publics.n, sizeof *pubs, cmp_public);
    size_t kept = 0;
    for (size_t i = 0; i < b->publics.n; i++) {
        if (kept && pubs[kept - 1].rva == pubs[i].rva) {
            dropped++;
            continue;
        }
        pubs[kept++] = pubs[i];
    }
    b->publics.n = kept;

    struct bp_file *files = b->files.p;
    if (b->files.n > 1)
        qsort(files, b->files.n, sizeof *files, cmp_file);
    kept = 0;
    for (size_t i = 0; i < b->files.n; i++)
        if (!kept || files[kept - 1].id != files[i].id)
            files[kept++] = files[i];
    b->files.n = kept;

    struct bp_origin *origins = b->origins.p;
    if (b->origins.n > 1)
        qsort(origins, b->origins.n, sizeof *origins, cmp_origin);
    kept = 0;
    for (size_t i = 0; i < b->origins.n; i++)
        if (!kept || origins[kept - 1].id != origins[i].id)
            origins[kept++] = origins[i];
    b->origins.n = kept;

    struct bp_cfi_init *init = b->cfi_init.p;
    KEEP_DISJOINT(init, b->cfi_init.n, struct bp_cfi_init, cmp_init);

    struct bp_cfi_delta *delta = b->cfi_delta.p;
    if (b->cfi_delta.n > 1)
        qsort(delta, b->cfi_delta.n, sizeof *delta, cmp_delta);
    kept = 0;
    for (size_t i = 0; i < b->cfi_delta.n; i++) {
        if (kept && delta[kept - 1].rva == delta[i].rva)
            kept--; /* the last record of an address wins */
        delta[kept++] = delta[i];
    }
    b->cfi_delta.n = kept;

    for (int t = 0; t < 2; t++)
        b->wnodes[t].n = build_nest(b->wnodes[t].p, b->wnodes[t].n, &dropped);
    b->dropped += dropped;
}

static uint64_t vec_bytes(const struct vec *v, size_t elem) { return (uint64_t)v->cap * elem; }

static void vec_free(struct vec *v)
{
    cm_free(v->p);
    v->p = NULL;
    v->n = v->cap = 0;
}

void ana__bpsym_free(struct ana_bpsym *b)
{
    if (!b)
        return;
    vec_free(&b->files);
    vec_free(&b->origins);
    vec_free(&b->funcs);
    vec_free(&b->publics);
    vec_free(&b->lines);
    vec_free(&b->inlines);
    vec_free(&b->inodes);
    vec_free(&b->cfi_init);
    vec_free(&b->cfi_delta);
    vec_free(&b->wins);
    vec_free(&b->wnodes[0]);
    vec_free(&b->wnodes[1]);
    cm_free(b->text);
    cm_free(b);
}

enum cm_code ana__bpsym_parse(char *text, size_t len, const struct ana_symstore_opts *o,
                              struct ana_bpsym **out, struct cm_err *err)
{
    *out = NULL;
    struct ana_bpsym *b = cm_calloc(1, sizeof *b);
    if (!b) {
        cm_free(text);
        return cm_fail(err, CM_E_NOMEM, "cannot allocate a symbol file");
    }
    b->text = text;
    b->text_len = len;
    b->max_records = o && o->max_records ? o->max_records : (32u << 20);

    /* A NUL inside the text would cut a record short: the resolver turns them into '_'. */
    for (size_t i = 0; i < len; i++) {
        if (text[i] == 0) {
            text[i] = '_';
            b->bad++;
        }
    }
    struct parse ps = { .b = b };
    char *p = text, *end = text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *line_end = nl ? nl : end;
        char *next = nl ? nl + 1 : end;
        *line_end = 0;
        if (line_end > p && line_end[-1] == '\r')
            line_end[-1] = 0;
        if (*p) {
            b->order++;
            if (!parse_line(&ps, p))
                b->bad++;
            if (ps.nomem) {
                ana__bpsym_free(b);
                return cm_fail(err, CM_E_NOMEM, "out of memory parsing a symbol file");
            }
        }
        p = next;
    }
    index_all(b);
    b->mem_bytes = len + vec_bytes(&b->files, sizeof(struct bp_file)) +
                   vec_bytes(&b->origins, sizeof(struct bp_origin)) +
                   vec_bytes(&b->funcs, sizeof(struct bp_func)) +
                   vec_bytes(&b->publics, sizeof(struct bp_public)) +
                   vec_bytes(&b->lines, sizeof(struct bp_line)) +
                   vec_bytes(&b->inlines, sizeof(struct bp_inline)) +
                   vec_bytes(&b->inodes, sizeof(struct bp_node)) +
                   vec_bytes(&b->cfi_init, sizeof(struct bp_cfi_init)) +
                   vec_bytes(&b->cfi_delta, sizeof(struct bp_cfi_delta)) +
                   vec_bytes(&b->wins, sizeof(struct bp_win)) +
                   vec_bytes(&b->wnodes[0], sizeof(struct bp_node)) +
                   vec_bytes(&b->wnodes[1], sizeof(struct bp_node));
    *out = b;
    return CM_E_OK;
}

const char *ana__bpsym_module_id(const struct ana_bpsym *b) { return b->module_id; }
uint64_t ana__bpsym_bad_records(const struct ana_bpsym *b) { return b->bad; }
uint64_t ana__bpsym_mem_bytes(const struct ana_bpsym *b) { return b->mem_bytes; }

/* ---- lookups ---- */

/* Index of the last element whose rva <= key, or -1. */
#define LAST_AT_OR_BELOW(arr, n, key, out)                                                         \
    do {                                                                                           \
        size_t lo_ = 0, hi_ = (n);                                                                 \
        while (lo_ < hi_) {                                                                        \
            size_t mid_ = lo_ + (hi_ - lo_) / 2;                                                   \
            if ((arr)[mid_].rva <= (key))                                                          \
                lo_ = mid_ + 1;                                                                    \
            else                                                                                   \
                hi_ = mid_;                                                                        \
        }                                                                                          \
        (out) = (ptrdiff_t)lo_ - 1;                                                                \
    } while (0)

static const char *file_name(const struct ana_bpsym *b, int64_t id)
{
    const struct bp_file *f = b->files.p;
    size_t lo = 0, hi = b->files.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f[mid].id == id)
            return f[mid].name;
        if (f[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static const char *origin_name(const struct ana_bpsym *b, int64_t id)
{
    const struct bp_origin *o = b->origins.p;
    size_t lo = 0, hi = b->origins.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (o[mid].id == id)
            return o[mid].name;
        if (o[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Deepest nesting level first; insertion sort of at most ANA_SYM_MAX_INLINES items, stable, so
 * equal levels stay innermost range first. */
static void sort_by_level(uint32_t *items, size_t n, const struct bp_inline *in)
{
    for (size_t i = 1; i < n; i++) {
        uint32_t v = items[i];
        size_t j = i;
        while (j > 0 && in[items[j - 1]].level < in[v].level) {
            items[j] = items[j - 1];
            j--;
        }
        items[j] = v;
    }
}

bool ana__bpsym_lookup(const struct ana_bpsym *b, uint64_t rva, struct ana_symloc *out)
{
    memset(out, 0, offsetof(struct ana_symloc, inlines));
    const struct bp_func *funcs = b->funcs.p;
    ptrdiff_t fi;
    LAST_AT_OR_BELOW(funcs, b->funcs.n, rva, fi);
    const struct bp_func *near = fi >= 0 ? &funcs[fi] : NULL;
    if (near && rva - near->rva < near->size) {
        out->function = near->name;
        out->function_rva = near->rva;
        out->function_size = near->size;
        out->param_size = near->param_size;
        const struct bp_line *lines =
            near->line_count ? (const struct bp_line *)b->lines.p + near->line_first : NULL;
        ptrdiff_t li;
        LAST_AT_OR_BELOW(lines, near->line_count, rva, li);
        if (li >= 0 && rva - lines[li].rva < lines[li].size) {
            out->file = file_name(b, lines[li].file);
            out->line = lines[li].line;
            out->line_rva = lines[li].rva;
        }
        uint32_t items[ANA_SYM_MAX_INLINES];
        const struct bp_node *nodes =
            near->node_count ? (const struct bp_node *)b->inodes.p + near->node_first : NULL;
        size_t n = nest_find(nodes, near->node_count, rva, items, ANA_SYM_MAX_INLINES);
        const struct bp_inline *in = b->inlines.p;
        sort_by_level(items, n, in);
        /* Each inline frame shows where the next inner one was called; the innermost shows the
         * address's own line, and the real function the outermost call site. */
        const char *pos_file = out->file;
        uint32_t pos_line = out->line;
        for (size_t k = 0; k < n; k++) {
            const struct bp_inline *r = &in[items[k]];
            const char *name = origin_name(b, r->origin);
            out->inlines[k] = (struct ana_inline){ .function = name ? name : "<name omitted>",
                                                   .file = pos_file, .line = pos_line };
            pos_file = r->has_call_file ? file_name(b, r->call_file) : out->file;
            pos_line = r->call_line;
        }
        out->inline_count = n;
        if (n) {
            out->file = pos_file;
            out->line = pos_line;
        }
        return true;
    }
    const struct bp_public *pubs = b->publics.p;
    ptrdiff_t pi;
    LAST_AT_OR_BELOW(pubs, b->publics.n, rva, pi);
    if (pi >= 0 && (!near || pubs[pi].rva > near->rva)) {
        out->function = pubs[pi].name;
        out->function_rva = pubs[pi].rva;
        out->param_size = pubs[pi].param_size;
        out->is_public = true;
        return true;
    }
    return false;
}

size_t ana__bpsym_cfi_rules(const struct ana_bpsym *b, uint64_t rva, const char **rules,
                            size_t max)
{
    const struct bp_cfi_init *init = b->cfi_init.p;
    ptrdiff_t ii;
    LAST_AT_OR_BELOW(init, b->cfi_init.n, rva, ii);
    if (ii < 0 || rva - init[ii].rva >= init[ii].size || max == 0)
        return 0;
    size_t n = 0;
    rules[n++] = init[ii].rules;
    const struct bp_cfi_delta *d = b->cfi_delta.p;
    /* first delta at or above the INIT record's start */
    size_t lo = 0, hi = b->cfi_delta.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d[mid].rva < init[ii].rva)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = lo; k < b->cfi_delta.n && d[k].rva <= rva; k++) {
        if (n == max)
            return 0;
        rules[n++] = d[k].rules;
    }
    return n;
}

bool ana__bpsym_win(const struct ana_bpsym *b, uint64_t rva, struct ana_win_frame *out)
{
    const struct bp_win *wins = b->wins.p;
    for (int t = 0; t < 2; t++) {
        uint32_t item;
        if (nest_find(b->wnodes[t].p, b->wnodes[t].n, rva, &item, 1) == 1) {
            *out = wins[item].f;
            return true;
        }
    }
    return false;
}
