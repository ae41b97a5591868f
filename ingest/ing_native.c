/* ing_native.c -- POST /api/v1/crashes: the protobuf envelope of proto/crash.proto (CrashUpload)
 * in, a CrashAck out (protobuf, or JSON when the client sends Accept: application/json).
 * proto/ decodes with a byte-counting allocator and caps; here the envelope's strings are made
 * safe for PostgreSQL text (valid UTF-8, no NUL) and mapped onto the crash record. A crash id
 * is always the server's: nothing in the envelope can choose it. */
#include <string.h>

#include "analyzer/ana.h"
#include "ingest/ing_int.h"
#include "proto/proto.h"

static void release_proto(void *arg) { proto_upload_free(arg); }

/* Maps a decoder failure onto a reason token. proto/ reports limits as CM_E_LIMIT with a message
 * naming the field; the annotation cases get their own tokens (RELIABILITY.md P04). */
static enum ing_reason decode_reason(const struct cm_err *e)
{
    switch (e->code) {
    case CM_E_LIMIT:
        if (strstr(e->msg, "annotation"))
            return strstr(e->msg, "entries") ? ING_R_TOO_MANY_ANNOTATIONS
                                             : ING_R_ANNOTATION_TOO_LARGE;
        if (strstr(e->msg, "body") || strstr(e->msg, "dump"))
            return ING_R_TOO_LARGE;
        if (strstr(e->msg, "longer than"))
            return ING_R_STRING_TOO_LONG;
        return ING_R_ENVELOPE_LIMIT; /* the decoder's allocation cap */
    case CM_E_USAGE: return ING_R_MISSING_DUMP;
    case CM_E_NOMEM: return ING_R_INTERNAL;
    default: return ING_R_BAD_ENVELOPE;
    }
}

enum ing_reason ing__native_parse(struct ing_server *s, struct cm_arena *a, bool gzip,
                                  const uint8_t *body, size_t len, struct ing_upload *u,
                                  struct cm_err *err)
{
    const struct ing_conf *conf = &s->conf;
    if (gzip) { /* Content-Encoding: gzip of the envelope; inflated, it obeys the same cap */
        enum ing_reason r;
        cm_buf_init(&u->inflated, conf->max_request_bytes);
        if ((r = ing__gunzip_body(body, len, &u->inflated, err)))
            return r;
        body = u->inflated.data;
        len = u->inflated.len;
    }
    struct proto_limits lim;
    proto_limits_default(&lim);
    lim.max_body_bytes = conf->max_request_bytes;
    lim.max_alloc_bytes = conf->max_request_bytes + (4u << 20);
    lim.max_dump_bytes = conf->max_request_bytes;
    lim.max_annotations = conf->max_annotations;
    lim.max_annotation_bytes = conf->max_annotation_bytes > conf->max_annotation_key_bytes
                                   ? conf->max_annotation_bytes
                                   : conf->max_annotation_key_bytes;
    lim.max_string_bytes = conf->max_string_bytes;
    struct proto_upload *pu = NULL;
    struct cm_err e = { 0 };
    if (proto_decode_upload(body, len, &lim, &pu, &e)) {
        cm_fail(err, e.code, "%s", e.msg);
        return decode_reason(&e);
    }
    u->release = release_proto;
    u->release_arg = pu;
    if (!pu->dump || pu->dump_len == 0) {
        cm_fail(err, CM_E_USAGE, "envelope has no dump");
        return ING_R_MISSING_DUMP;
    }

    const struct proto_meta *m = &pu->meta;
    struct ing_crash *c = &u->crash;
    const char **dst[] = { &c->idempotency_key, &c->host_id, &c->product, &c->version,
                           &c->channel, &c->build_id, &c->os, &c->os_version, &c->cpu_arch };
    const char *src[] = { m->idempotency_key, m->host_id, m->product, m->version, m->channel,
                          m->build_id, m->os, m->os_version, m->cpu_arch };
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
        const char *v = src[i] ? src[i] : "";
        size_t n = strlen(v);
        if (n > conf->max_string_bytes) {
            cm_fail(err, CM_E_LIMIT, "envelope string of %zu bytes exceeds %zu", n,
                    conf->max_string_bytes);
            return ING_R_STRING_TOO_LONG;
        }
        if (!(*dst[i] = ing__clean_utf8(a, v, n)))
            return cm_fail(err, CM_E_NOMEM, "out of memory"), ING_R_INTERNAL;
    }
    c->crash_time_unix_ms = m->crash_time_unix_ms;
    if (m->annotation_count > conf->max_annotations) {
        cm_fail(err, CM_E_LIMIT, "%zu annotations exceed %zu", m->annotation_count,
                conf->max_annotations);
        return ING_R_TOO_MANY_ANNOTATIONS;
    }
    struct ing_kv *kv = m->annotation_count ? cm_arena_calloc(a, m->annotation_count, sizeof *kv)
                                            : NULL;
    if (m->annotation_count && !kv)
        return cm_fail(err, CM_E_NOMEM, "out of memory"), ING_R_INTERNAL;
    for (size_t i = 0; i < m->annotation_count; i++) {
        const char *k = m->annotations[i].key ? m->annotations[i].key : "";
        const char *v = m->annotations[i].value ? m->annotations[i].value : "";
        size_t kl = strlen(k), vl = strlen(v);
        if (kl > conf->max_annotation_key_bytes) {
            cm_fail(err, CM_E_LIMIT, "annotation key of %zu bytes exceeds %zu", kl,
                    conf->max_annotation_key_bytes);
            return ING_R_FIELD_NAME_TOO_LONG;
        }
        if (vl > conf->max_annotation_bytes) {
            cm_fail(err, CM_E_LIMIT, "annotation value of %zu bytes exceeds %zu", vl,
                    conf->max_annotation_bytes);
            return ING_R_ANNOTATION_TOO_LARGE;
        }
        if (!(kv[i].key = ing__clean_utf8(a, k, kl)) || !(kv[i].value = ing__clean_utf8(a, v, vl)))
            return cm_fail(err, CM_E_NOMEM, "out of memory"), ING_R_INTERNAL;
    }
    c->annotations = kv;
    c->annotation_count = m->annotation_count;
    c->endpoint = "native";

    u->dump = pu->dump;
    u->dump_len = pu->dump_len;
    switch (pu->compression) {
    case PROTO_COMP_NONE: u->comp = ING_COMP_NONE; break;
    case PROTO_COMP_ZSTD: u->comp = ING_COMP_ZSTD; break;
    case PROTO_COMP_GZIP: u->comp = ING_COMP_GZIP; break;
    default: u->comp = ING_COMP_SNIFF; break;
    }
    switch (pu->dump_format) {
    case PROTO_DUMP_MINIDUMP: u->declared_kind = ANA_KIND_MINIDUMP; break;
    case PROTO_DUMP_ELF_CORE: u->declared_kind = ANA_KIND_ELFCORE; break;
    case PROTO_DUMP_WINDOWS_KERNEL: u->declared_kind = ANA_KIND_KERNEL; break;
    default: u->declared_kind = ANA_KIND_UNKNOWN; break;
    }
    u->has_declared = u->declared_kind != ANA_KIND_UNKNOWN;
    return ING_R_NONE;
}

void ing__native_reply(struct ing_server *s, bool json, const struct ing_outcome *o,
                       struct ing_reply *r)
{
    struct proto_ack ack = { 0 };
    if (o->reason == ING_R_NONE) {
        r->status = 202;
        ack.crash_id = o->crash_id;
        ack.status = o->duplicate ? PROTO_ACK_DUPLICATE : PROTO_ACK_ACCEPTED;
        ack.reason = "";
    } else {
        r->status = ing__reason_status(o->reason);
        ack.crash_id = "";
        ack.reason = ing__reason_token(o->reason);
        if (r->status == 503 || r->status == 507) {
            ack.status = PROTO_ACK_RETRY;
            ack.retry_after_s = (uint32_t)s->conf.retry_after_s;
            r->retry_after_s = (unsigned)s->conf.retry_after_s;
        } else {
            ack.status = PROTO_ACK_REJECTED;
        }
    }
    cm_buf_init(&r->body, 1u << 16);
    enum cm_code rc = json ? proto_ack_json(&ack, &r->body, NULL)
                           : proto_encode_ack(&ack, &r->body, NULL);
    r->content_type = json ? "application/json" : "application/x-protobuf";
    if (rc) { /* cannot happen with a 64 KiB cap and a token-sized ack */
        cm_buf_reset(&r->body);
        r->status = 500;
        r->content_type = "text/plain";
    }
}
