/* ing_hint.c -- POST /api/v1/hints: progressive collection (docs/progressive-collection.md). A
 * CrashHint (the crash's metadata and its symbol-free fault key, proto/crash.proto) comes in; the
 * recorder decides whether the crash can be counted from the hint alone or the dump is wanted,
 * and a HintReply goes out (protobuf, or JSON for Accept: application/json).
 *
 * The fault key's canonical text is made here with ana_fault_key_format(), the same function the
 * analyzer uses on the dumps it reads, so a key computed by an endpoint and the key of an
 * analyzed dump are equal byte for byte when the fields are. Whenever the service cannot decide
 * (hints turned off, no database, a database error), the reply asks for the dump: the upload
 * route stores it durably whatever the database does, so asking never loses a crash. */
#include <string.h>

#include "analyzer/ana.h"
#include "common/cm_alloc.h"
#include "common/cm_log.h"
#include "ingest/ing_int.h"
#include "proto/proto.h"

static const char *const hint_tokens[ING_HR__COUNT] = {
#define X(name, token) token,
    ING_HINT_REASONS(X)
#undef X
};

static enum ing_hint_reason reason_of(const char *token)
{
    for (int i = 0; i < ING_HR__COUNT; i++)
        if (!strcmp(hint_tokens[i], token))
            return (enum ing_hint_reason)i;
    return ING_HR_OTHER;
}

enum cm_code ing__hint_metrics_render(struct ing_metrics *m, struct cm_buf *out,
                                      struct cm_err *err)
{
    enum cm_code rc = cm_buf_printf(
        out, err,
        "# HELP triage_ingest_hint_decisions_total Hints decided, by reason and whether the dump "
        "was asked for (dump=\"no\": counted from the hint alone, dump deliberately not "
        "collected).\n"
        "# TYPE triage_ingest_hint_decisions_total counter\n");
    for (int r = 0; r < ING_HR__COUNT && !rc; r++)
        for (int w = 0; w < 2 && !rc; w++) {
            unsigned long long n = (unsigned long long)atomic_load(&m->hint_decisions[r][w]);
            if (n)
                rc = cm_buf_printf(out, err,
                                   "triage_ingest_hint_decisions_total{reason=\"%s\",dump=\"%s\"}"
                                   " %llu\n",
                                   hint_tokens[r], w ? "yes" : "no", n);
        }
    return rc;
}

/* Strings of the hint, made valid UTF-8 without NUL, each within max bytes. */
static bool clean(struct cm_arena *a, const char *in, size_t max, const char **out)
{
    const char *v = in ? in : "";
    size_t n = strlen(v);
    if (n > max)
        return false;
    return (*out = ing__clean_utf8(a, v, n)) != NULL;
}

static const char *kind_of(enum proto_dump_format f)
{
    switch (f) {
    case PROTO_DUMP_MINIDUMP: return ana_kind_name(ANA_KIND_MINIDUMP);
    case PROTO_DUMP_ELF_CORE: return ana_kind_name(ANA_KIND_ELFCORE);
    case PROTO_DUMP_WINDOWS_KERNEL: return ana_kind_name(ANA_KIND_KERNEL);
    default: return "";
    }
}

/* Fills h from the decoded message; false when a string is over its limit or memory ran out. */
static bool build(struct ing_server *s, struct cm_arena *a, const struct proto_hint *ph,
                  struct ing_hint *h, struct cm_err *err)
{
    const struct ing_conf *conf = &s->conf;
    const struct proto_meta *m = &ph->meta;
    memset(h, 0, sizeof *h);
    h->project = conf->project;
    const char **dst[] = { &h->idempotency_key, &h->host_id, &h->product, &h->version,
                           &h->channel, &h->build_id, &h->os, &h->os_version, &h->cpu_arch };
    const char *src[] = { m->idempotency_key, m->host_id, m->product, m->version, m->channel,
                          m->build_id, m->os, m->os_version, m->cpu_arch };
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++)
        if (!clean(a, src[i], conf->max_string_bytes, dst[i])) {
            cm_fail(err, CM_E_LIMIT, "hint: a metadata string exceeds %zu bytes",
                    conf->max_string_bytes);
            return false;
        }
    h->crash_time_unix_ms = m->crash_time_unix_ms;
    if (m->annotation_count > conf->max_annotations) {
        cm_fail(err, CM_E_LIMIT, "hint: %zu annotations exceed %zu", m->annotation_count,
                conf->max_annotations);
        return false;
    }
    struct ing_kv *kv = m->annotation_count ? cm_arena_calloc(a, m->annotation_count, sizeof *kv)
                                            : NULL;
    if (m->annotation_count && !kv)
        return cm_fail(err, CM_E_NOMEM, "out of memory"), false;
    for (size_t i = 0; i < m->annotation_count; i++)
        if (!clean(a, m->annotations[i].key, conf->max_annotation_key_bytes, &kv[i].key) ||
            !clean(a, m->annotations[i].value, conf->max_annotation_bytes, &kv[i].value)) {
            cm_fail(err, CM_E_LIMIT, "hint: annotation %zu over its limits", i);
            return false;
        }
    h->annotations = kv;
    h->annotation_count = m->annotation_count;

    /* The key, as the analyzer formats the keys of the dumps it reads. */
    const struct proto_fault_key *pk = &ph->fault_key;
    struct ana_fault_key k;
    memset(&k, 0, sizeof k);
    if (!clean(a, pk->module, conf->max_string_bytes, &k.module) ||
        !clean(a, pk->module_version, conf->max_string_bytes, &k.module_version) ||
        !clean(a, pk->module_build_id, conf->max_string_bytes, &k.module_build_id)) {
        cm_fail(err, CM_E_LIMIT, "hint: a fault key string exceeds %zu bytes",
                conf->max_string_bytes);
        return false;
    }
    if (!clean(a, pk->address_class, 64, &k.address_class)) {
        cm_fail(err, CM_E_LIMIT, "hint: address class too long");
        return false;
    }
    k.offset = pk->offset;
    k.exception_code = pk->exception_code;
    k.exception_subcode = pk->exception_subcode;
    for (size_t i = 0; i < pk->frame_count && k.frame_count < ANA_FAULT_KEY_FRAMES; i++) {
        if (!clean(a, pk->frames[i].module, conf->max_string_bytes,
                   &k.frames[k.frame_count].module)) {
            cm_fail(err, CM_E_LIMIT, "hint: frame %zu module name too long", i);
            return false;
        }
        k.frames[k.frame_count++].offset = pk->frames[i].offset;
    }
    char *text = ana_fault_key_format(&k);
    if (!text)
        return cm_fail(err, CM_E_NOMEM, "out of memory"), false;
    h->fault_key = cm_arena_strdup(a, text);
    cm_free(text);
    if (!h->fault_key)
        return cm_fail(err, CM_E_NOMEM, "out of memory"), false;
    h->fault_module = k.module;
    h->fault_module_version = k.module_version[0] ? k.module_version : k.module_build_id;
    h->dump_kind = kind_of(ph->dump_format);
    h->first_k = conf->hint_first_k;
    h->sample_m = conf->hint_sample_m;
    ing__uuid(h->crash_id);
    return true;
}

static void reply(struct ing_reply *r, unsigned status, bool json,
                  const struct proto_hint_reply *hr)
{
    r->status = status;
    cm_buf_init(&r->body, 1u << 16);
    enum cm_code rc = json ? proto_hint_reply_json(hr, &r->body, NULL)
                           : proto_encode_hint_reply(hr, &r->body, NULL);
    r->content_type = json ? "application/json" : "application/x-protobuf";
    if (rc) { /* cannot happen with a 64 KiB cap and token-sized fields */
        cm_buf_reset(&r->body);
        r->status = 500;
        r->content_type = "text/plain";
    }
}

static void refuse(struct ing_server *s, struct ing_reply *r, enum ing_reason why)
{
    atomic_fetch_add(&s->metrics.rejected[why], 1);
    r->status = ing__reason_status(why);
    r->content_type = "text/plain; charset=utf-8";
    cm_buf_init(&r->body, 1024);
    cm_buf_printf(&r->body, NULL, "%s\n", ing__reason_token(why));
}

void ing__hint_handle(struct ing_server *s, struct cm_arena *a, bool gzip, bool json,
                      const uint8_t *body, size_t len, struct ing_reply *r)
{
    const struct ing_conf *conf = &s->conf;
    memset(r, 0, sizeof *r);
    struct cm_buf inflated;
    cm_buf_init(&inflated, conf->max_request_bytes);
    struct cm_err err = { 0 };
    struct proto_hint *ph = NULL;
    if (gzip) {
        enum ing_reason why = ing__gunzip_body(body, len, &inflated, &err);
        if (why) {
            refuse(s, r, why);
            goto out;
        }
        body = inflated.data;
        len = inflated.len;
    }
    struct proto_limits lim;
    proto_limits_default(&lim);
    lim.max_body_bytes = conf->max_request_bytes;
    lim.max_alloc_bytes = conf->max_request_bytes + (1u << 20);
    lim.max_annotations = conf->max_annotations;
    lim.max_annotation_bytes = conf->max_annotation_bytes > conf->max_annotation_key_bytes
                                   ? conf->max_annotation_bytes
                                   : conf->max_annotation_key_bytes;
    lim.max_string_bytes = conf->max_string_bytes;
    if (proto_decode_hint(body, len, &lim, &ph, &err)) {
        cm_log(CM_LOG_INFO, "hint refused: reason=bad_envelope bytes=%zu", len);
        refuse(s, r, err.code == CM_E_LIMIT ? ING_R_ENVELOPE_LIMIT : ING_R_BAD_ENVELOPE);
        goto out;
    }
    struct ing_hint h;
    if (!build(s, a, ph, &h, &err)) {
        refuse(s, r, err.code == CM_E_NOMEM ? ING_R_INTERNAL : ING_R_STRING_TOO_LONG);
        goto out;
    }
    struct ing_hint_decision d = { .want_dump = true };
    enum ing_hint_reason why = conf->hints ? ING_HR_DEGRADED : ING_HR_DISABLED;
    if (conf->hints && s->has_rec && s->rec.hint) {
        struct cm_err rerr = { 0 };
        if (atomic_load(&s->db_up) && s->rec.hint(s->rec.ctx, &h, &d, &rerr) == CM_E_OK) {
            why = d.duplicate ? ING_HR_DUPLICATE : reason_of(d.reason);
        } else {
            d = (struct ing_hint_decision){ .want_dump = true };
            if (rerr.code)
                cm_log(CM_LOG_WARN, "hint not decided, dump asked for: %s", rerr.msg);
        }
    }
    atomic_fetch_add(&s->metrics.hint_decisions[why][d.want_dump ? 1 : 0], 1);
    struct proto_hint_reply hr = { .want_dump = d.want_dump, .crash_id = d.crash_id,
                                   .reason = hint_tokens[why], .bucket = d.bucket };
    reply(r, 200, json, &hr);
out:
    proto_hint_free(ph);
    cm_buf_free(&inflated);
}
