/* ana_signature.c -- signature, bucket and the keys above and below it, built as Socorro builds
 * a signature: from the top of the crashing thread (inlined calls expanded), skip irrelevant
 * frames, keep prefix frames and look past them, stop at the first frame that is neither. The
 * crash reason class leads it. Frames found by scanning never enter it; recursion collapses to
 * one frame; a frame outside every module is "(no module)", its address never in the signature.
 * Every decision is recorded in the trail so a wrong merge can be explained. */
#include <inttypes.h>
/* The low-level SHA-256 calls: the one-shot SHA256() of OpenSSL 3 looks up a provider and reads
 * openssl.cnf on first use, which costs a one-shot stackwalk about a millisecond. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "analyzer/ana_int.h"
#include "common/cm_buf.h"

#define MAX_SIGNATURE_FRAMES 16 /* prefix frames kept before giving up on a relevant one */
#define MAX_FLAT_FRAMES 256     /* frames (with inlines) considered for keys and stack hash */

struct item {
    int frame;             /* physical frame index */
    const char *module;    /* module file name, NULL outside every module */
    const char *function;  /* normalized and aliased, NULL without symbols */
    enum ana_trust trust;
    const char *text;      /* "module!function", "module+0x1a2b" or "(no module)" */
    int module_index;
};

static const char *frame_text(struct ana_crash *c, const struct item *it, uint64_t offset)
{
    if (!it->module)
        return "(no module)";
    if (it->function)
        return ana__printf(c, "%s!%s", it->module, it->function);
    return ana__printf(c, "%s+0x%" PRIx64, it->module, offset);
}

static const char *clean_function(struct ana_crash *c, const struct ana_rules *r,
                                  const char *module, const char *raw)
{
    if (!raw)
        return NULL;
    char buf[1024];
    ana__normalize_function(raw, buf, sizeof buf);
    const char *alias = ana__rules_alias(r, module, buf);
    return ana__strndup(c, alias ? alias : buf, sizeof buf);
}

/* The crashing thread's frames, inlined calls first (innermost first), as one list. */
static size_t flatten(struct ana_crash *c, const struct ana_rules *r, const struct ana_thread *t,
                      struct item *items, size_t cap)
{
    struct ana_frame ctx_frame;
    const struct ana_frame *frames = t->frames;
    size_t nframes = t->frame_count;
    int pc = ana_reg_pc(t->ctx.cpu);
    if (nframes == 0 && t->has_ctx && ana_ctx_has(&t->ctx, pc)) {
        memset(&ctx_frame, 0, sizeof ctx_frame);
        ctx_frame.pc = t->ctx.r[pc];
        ctx_frame.trust = ANA_TRUST_CONTEXT;
        ctx_frame.module = ana_module_at(c, ctx_frame.pc);
        frames = &ctx_frame;
        nframes = 1;
    }
    size_t n = 0;
    for (size_t i = 0; i < nframes && n < cap; i++) {
        const struct ana_frame *f = &frames[i];
        const struct ana_module *m =
            f->module >= 0 && (size_t)f->module < c->module_count ? &c->modules[f->module] : NULL;
        const char *module = m ? ana_module_basename(m) : NULL;
        uint64_t offset = m ? f->pc - m->base : 0;
        for (size_t k = 0; k < f->inline_count && n < cap; k++) {
            struct item *it = &items[n++];
            *it = (struct item){ .frame = (int)i, .module = module, .trust = f->trust,
                                 .module_index = f->module };
            it->function = clean_function(c, r, module, f->inlines[k].function);
            it->text = frame_text(c, it, offset);
        }
        if (n == cap)
            break;
        struct item *it = &items[n++];
        *it = (struct item){ .frame = (int)i, .module = module, .trust = f->trust,
                             .module_index = f->module };
        it->function = m ? clean_function(c, r, module, f->function) : NULL;
        it->text = frame_text(c, it, offset);
    }
    return n;
}

static bool is_memory_fault(const struct ana_crash *c)
{
    const struct ana_crash_info *ci = &c->crash_info;
    if (ci->has_signal)
        return ci->signo == 11 || ci->signo == 7; /* SIGSEGV, SIGBUS */
    const char *t = ci->type ? ci->type : "";
    return strncmp(t, "EXCEPTION_ACCESS_VIOLATION", 26) == 0 ||
           strncmp(t, "EXCEPTION_IN_PAGE_ERROR", 23) == 0 ||
           strncmp(t, "EXC_BAD_ACCESS", 14) == 0;
}

/* The address class reason_class() appends for a memory fault ("NULL", "NEAR_NULL", "WILD"),
 * NULL when it appends none; the fault key carries it too (ana_faultkey.c), so a key never
 * spans buckets that differ only by it. Keep the two rules equal. */
const char *ana__address_class(const struct ana_crash *c)
{
    const struct ana_crash_info *ci = &c->crash_info;
    if (c->bugcheck.present || !ci->crashed || !is_memory_fault(c) || !ci->has_address)
        return NULL;
    return ci->address == 0 ? "NULL" : ci->address < 0x10000 ? "NEAR_NULL" : "WILD";
}

/* "SIGSEGV NULL", "EXCEPTION_ACCESS_VIOLATION_READ WILD", "SIGABRT", "PAGE_FAULT_IN_..." */
static const char *reason_class(struct ana_crash *c)
{
    const struct ana_crash_info *ci = &c->crash_info;
    if (c->bugcheck.present)
        return c->bugcheck.base_name ? c->bugcheck.base_name
                                     : ana__printf(c, "BUGCHECK_0x%08X", c->bugcheck.code);
    if (!ci->crashed)
        return "NO_CRASH";
    char base[128];
    if (ci->has_signal && ana__linux_signal_name(ci->signo))
        snprintf(base, sizeof base, "%s", ana__linux_signal_name(ci->signo));
    else {
        /* The exception name without its sub-code ("EXC_BAD_ACCESS / KERN_..." -> its name). */
        snprintf(base, sizeof base, "%s", ci->type ? ci->type : "UNKNOWN");
        char *sub = strstr(base, " /");
        if (sub)
            *sub = 0;
    }
    if (!is_memory_fault(c) || !ci->has_address)
        return ana__printf(c, "%s", base);
    const char *cls = ci->address == 0 ? "NULL" : ci->address < 0x10000 ? "NEAR_NULL" : "WILD";
    return ana__printf(c, "%s %s", base, cls);
}

static void sha256(const void *p, size_t n, unsigned char digest[SHA256_DIGEST_LENGTH])
{
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, p, n);
    SHA256_Final(digest, &ctx);
}

static void hex128(const unsigned char *digest, char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

static void add_step(struct ana_crash *c, struct ana_keys *k, int frame, const char *text,
                     const char *action, const char *rule)
{
    if (k->trail_count % 16 == 0) {
        struct ana_sig_step *n = ana__calloc(c, k->trail_count + 16, sizeof *n);
        if (!n)
            return;
        if (k->trail_count)
            memcpy(n, k->trail, k->trail_count * sizeof *n);
        k->trail = n;
    }
    k->trail[k->trail_count++] = (struct ana_sig_step){ frame, text, action, rule };
}

static const char *version_of(const struct ana_module *m)
{
    if (m->version)
        return m->version;
    if (m->code_id)
        return m->code_id;
    return m->debug_id;
}

/* Kernel crashes name the blamed driver right after the bugcheck, even when the faulting context
 * is in the kernel itself (a driver's bad argument to an nt routine). */
static const struct item *blamed_item(const struct ana_crash *c, const struct item *items,
                                      size_t n)
{
    int b = c->bugcheck.blamed_module;
    if (b < 0)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (items[i].module_index == b && items[i].trust != ANA_TRUST_SCAN &&
            items[i].trust != ANA_TRUST_CFI_SCAN)
            return &items[i];
    return NULL;
}

enum cm_code ana_signature(struct ana_crash *c, const struct ana_rules *r, struct ana_keys *k,
                           struct cm_err *err)
{
    memset(k, 0, sizeof *k);
    if (!r)
        return cm_fail(err, CM_E_CORRUPT, "no signature rules");
    k->rules_version = ana_rules_version(r);
    const char *cls = reason_class(c);
    k->reason_class = cls;
    add_step(c, k, -1, cls, "lead", "crash reason class");

    int ti = c->crash_info.crashing_thread;
    if (ti < 0 && c->thread_count)
        ti = 0; /* a dump without a crash: its first thread */
    struct item items[MAX_FLAT_FRAMES];
    size_t n = ti >= 0 && (size_t)ti < c->thread_count
                   ? flatten(c, r, &c->threads[ti], items, MAX_FLAT_FRAMES)
                   : 0;

    /* Sentinels: start at the first one, if any. */
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        const char *why;
        if (items[i].trust != ANA_TRUST_SCAN && items[i].trust != ANA_TRUST_CFI_SCAN &&
            ana__rules_classify(r, items[i].module, items[i].function, &why) ==
                ANA_RULE_SENTINEL) {
            start = i;
            add_step(c, k, items[i].frame, items[i].text, "sentinel", why);
            break;
        }
    }

    struct cm_buf sig;
    cm_buf_init(&sig, 8192);
    enum cm_code rc = cm_buf_printf(&sig, err, "%s", cls);
    const struct item *relevant = NULL, *last_kept = NULL;
    size_t kept = 0;
    for (size_t i = start; i < n && !rc; i++) {
        const struct item *it = &items[i];
        if (it->trust == ANA_TRUST_SCAN || it->trust == ANA_TRUST_CFI_SCAN) {
            add_step(c, k, it->frame, it->text, "skip", "found by stack scanning");
            continue;
        }
        const char *why = NULL;
        enum ana_rule_kind kind = ana__rules_classify(r, it->module, it->function, &why);
        if (kind == ANA_RULE_IRRELEVANT) {
            add_step(c, k, it->frame, it->text, "skip", ana__printf(c, "irrelevant: %s", why));
            continue;
        }
        if (last_kept && strcmp(last_kept->text, it->text) == 0) {
            add_step(c, k, it->frame, it->text, "collapse", "recursion");
            continue;
        }
        if (kept == MAX_SIGNATURE_FRAMES) {
            add_step(c, k, it->frame, it->text, "stop", "signature frame limit");
            break;
        }
        rc = cm_buf_printf(&sig, err, " | %s", it->text);
        last_kept = it;
        kept++;
        if (kind == ANA_RULE_PREFIX || kind == ANA_RULE_SENTINEL ||
            kind == ANA_RULE_RUNTIME_MODULE) {
            const char *label = kind == ANA_RULE_RUNTIME_MODULE ? "runtime module" : "prefix";
            add_step(c, k, it->frame, it->text, "prefix", ana__printf(c, "%s: %s", label, why));
            continue;
        }
        add_step(c, k, it->frame, it->text, "keep", "first relevant frame");
        relevant = it;
        break;
    }
    if (!rc && kept == 0)
        rc = cm_buf_printf(&sig, err, " | %s", n ? "(no trusted frames)" : "(no frames)");

    /* Keys above the signature: the module the signature blames and its version. */
    const struct item *blame = relevant ? relevant : last_kept ? last_kept : n ? &items[0] : NULL;
    const struct item *kernel_blame = c->bugcheck.present ? blamed_item(c, items, n) : NULL;
    if (kernel_blame)
        blame = kernel_blame;
    if (c->bugcheck.present && c->bugcheck.blamed_module >= 0 && !kernel_blame) {
        /* No trusted frame in the blamed driver: name it by the crash address. */
        const struct ana_module *m = &c->modules[c->bugcheck.blamed_module];
        k->fault_module = ana_module_basename(m);
        k->fault_module_version = version_of(m);
        k->fault_point = c->crash_info.address - m->base < m->size
                             ? ana__printf(c, "%s+0x%" PRIx64, k->fault_module,
                                           c->crash_info.address - m->base)
                             : k->fault_module;
    } else if (blame) {
        const struct ana_module *m = blame->module_index >= 0 ? &c->modules[blame->module_index]
                                                               : NULL;
        k->fault_module = blame->module ? blame->module : "(no module)";
        k->fault_module_version = m ? version_of(m) : NULL;
        k->fault_point = blame->text;
    } else {
        k->fault_module = "(no module)";
        k->fault_point = "(no frames)";
    }
    if (!rc && c->bugcheck.present && k->fault_point &&
        !strstr((const char *)sig.data, k->fault_point)) {
        /* BUGCHECK | blamed driver's fault point | what the rules kept */
        size_t cls_len = strlen(cls);
        struct cm_buf s2;
        cm_buf_init(&s2, 8192);
        rc = cm_buf_printf(&s2, err, "%s | %s%s", cls, k->fault_point,
                           (const char *)sig.data + cls_len);
        add_step(c, k, -1, k->fault_point, "keep", "blamed driver");
        cm_buf_free(&sig);
        sig = s2;
    }
    if (rc) {
        cm_buf_free(&sig);
        return rc;
    }
    k->top_frame = n ? items[0].text : "(no frames)";
    k->signature = ana__strndup(c, (const char *)sig.data, sig.len);
    cm_buf_free(&sig);
    if (!k->signature)
        return cm_fail(err, CM_E_NOMEM, "cannot store signature");

    unsigned char digest[SHA256_DIGEST_LENGTH];
    sha256(k->signature, strlen(k->signature), digest);
    hex128(digest, k->bucket);

    /* Below the signature: every trusted frame of the stack. */
    struct cm_buf stack;
    cm_buf_init(&stack, 1u << 20);
    rc = cm_buf_printf(&stack, err, "%s", cls);
    for (size_t i = 0; i < n && !rc; i++)
        if (items[i].trust != ANA_TRUST_SCAN && items[i].trust != ANA_TRUST_CFI_SCAN)
            rc = cm_buf_printf(&stack, err, "\n%s", items[i].text);
    if (rc) {
        cm_buf_free(&stack);
        return rc;
    }
    sha256(stack.data, stack.len, digest);
    cm_buf_free(&stack);
    hex128(digest, k->stack_hash);
    return CM_E_OK;
}
