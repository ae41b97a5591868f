/* proto_codec.c -- size-capped decoding and encoding of the messages in crash.proto, with
 * protobuf-c. Format: Protocol Buffers encoding (protobuf.dev/programming-guides/encoding),
 * protobuf-c's ProtobufCAllocator interface (protobuf-c.h).
 *
 * A body is first checked against max_body_bytes, then unpacked with an allocator that counts
 * every byte protobuf-c asks for (cumulatively: its scratch slabs count too) and refuses once
 * the total would pass max_alloc_bytes. Field sizes, counts and UTF-8 validity are checked
 * after unpacking; only then are the plain structs of proto.h filled, as views into the
 * unpacked message. */
#include "proto/proto.h"

#include <stdio.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "common/cm_alloc.h"
#include "crash.pb-c.h"

void proto_limits_default(struct proto_limits *lim)
{
    *lim = (struct proto_limits){
        .max_body_bytes = 20u << 20,
        .max_alloc_bytes = (20u << 20) + (4u << 20),
        .max_dump_bytes = 20u << 20,
        .max_annotations = 512,
        .max_annotation_bytes = 64u << 10,
        .max_string_bytes = 1024,
        .max_frames = 64,
    };
}

const char *proto_dump_format_name(enum proto_dump_format f)
{
    switch (f) {
    case PROTO_DUMP_MINIDUMP: return "minidump";
    case PROTO_DUMP_ELF_CORE: return "elf_core";
    case PROTO_DUMP_WINDOWS_KERNEL: return "windows_kernel";
    default: return "unspecified";
    }
}

const char *proto_compression_name(enum proto_compression c)
{
    switch (c) {
    case PROTO_COMP_NONE: return "none";
    case PROTO_COMP_ZSTD: return "zstd";
    case PROTO_COMP_GZIP: return "gzip";
    default: return "unspecified";
    }
}

const char *proto_ack_status_name(enum proto_ack_status s)
{
    switch (s) {
    case PROTO_ACK_ACCEPTED: return "accepted";
    case PROTO_ACK_DUPLICATE: return "duplicate";
    case PROTO_ACK_DISCARDED: return "discarded";
    case PROTO_ACK_REJECTED: return "rejected";
    case PROTO_ACK_RETRY: return "retry";
    default: return "unspecified";
    }
}

/* ---- the byte-counting allocator ---- */

struct counting_alloc {
    ProtobufCAllocator pa; /* first: protobuf-c gets &pa, allocator_data points back here */
    size_t used_bytes;     /* cumulative bytes handed out; invariant: used_bytes <= cap_bytes */
    size_t cap_bytes;
    bool over_cap;         /* a request was refused by the cap */
    bool out_of_memory;    /* the system allocator failed */
};

static void *ca_alloc(void *data, size_t n)
{
    struct counting_alloc *a = data;
    if (n > a->cap_bytes - a->used_bytes) {
        a->over_cap = true;
        return NULL;
    }
    void *p = cm_malloc(n);
    if (!p) {
        a->out_of_memory = true;
        return NULL;
    }
    a->used_bytes += n;
    return p;
}

static void ca_free(void *data, void *p)
{
    (void)data;
    cm_free(p);
}

static void ca_init(struct counting_alloc *a, size_t cap_bytes)
{
    *a = (struct counting_alloc){ .cap_bytes = cap_bytes };
    a->pa.alloc = ca_alloc;
    a->pa.free = ca_free;
    a->pa.allocator_data = a;
}

/* What a decoded message keeps alive: the unpacked protobuf-c message, the allocator that must
 * free it, and the arrays of plain structs that point into it. */
struct holder {
    struct counting_alloc ca;
    ProtobufCMessage *msg;
    struct proto_kv *kv;
    struct proto_module_offset *frames;
};

static void holder_free(struct holder *h)
{
    if (!h)
        return;
    if (h->msg)
        protobuf_c_message_free_unpacked(h->msg, &h->ca.pa);
    cm_free(h->kv);
    cm_free(h->frames);
}

/* ---- checks on decoded fields ---- */

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned min, cp;
        if ((c & 0xE0) == 0xC0) {
            len = 2, min = 0x80, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, min = 0x800, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, min = 0x10000, cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

/* A decoded string field: NULL becomes "", length capped, UTF-8 checked. */
static enum cm_code check_str(const char **s, size_t max_bytes, const char *field,
                              struct cm_err *err)
{
    if (!*s)
        *s = "";
    size_t n = strnlen(*s, max_bytes + 1);
    if (n > max_bytes)
        return cm_fail(err, CM_E_LIMIT, "protobuf: %s is longer than its limit of %zu bytes",
                       field, max_bytes);
    if (!utf8_valid((const unsigned char *)*s, n))
        return cm_fail(err, CM_E_CORRUPT, "protobuf: %s is not valid UTF-8", field);
    return CM_E_OK;
}

static enum cm_code unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *body,
                           size_t len, const struct proto_limits *lim, const char *what,
                           struct holder *h, struct cm_err *err)
{
    if (len > lim->max_body_bytes)
        return cm_fail(err, CM_E_LIMIT, "protobuf: %s body of %zu bytes exceeds the limit of %zu",
                       what, len, lim->max_body_bytes);
    ca_init(&h->ca, lim->max_alloc_bytes);
    static const uint8_t empty[1];
    h->msg = protobuf_c_message_unpack(desc, &h->ca.pa, len, body ? body : empty);
    if (h->msg)
        return CM_E_OK;
    if (h->ca.over_cap)
        return cm_fail(err, CM_E_LIMIT,
                       "protobuf: decoding the %s body of %zu bytes needs more than %zu bytes of "
                       "memory", what, len, lim->max_alloc_bytes);
    if (h->ca.out_of_memory)
        return cm_fail(err, CM_E_NOMEM, "protobuf: out of memory decoding a %s", what);
    return cm_fail(err, CM_E_CORRUPT, "protobuf: body of %zu bytes is not a valid %s", len, what);
}

static const struct proto_limits *limits_or_default(const struct proto_limits *lim,
                                                    struct proto_limits *def)
{
    if (lim)
        return lim;
    proto_limits_default(def);
    return def;
}

/* Fills m from a decoded CrashMeta (which may be NULL: all fields absent). */
static enum cm_code take_meta(Triage__V1__CrashMeta *pm, const struct proto_limits *lim,
                              struct holder *h, struct proto_meta *m, struct cm_err *err)
{
    *m = (struct proto_meta){ 0 };
    const char *empty = "";
    m->idempotency_key = pm ? pm->idempotency_key : empty;
    m->host_id = pm ? pm->host_id : empty;
    m->product = pm ? pm->product : empty;
    m->version = pm ? pm->version : empty;
    m->channel = pm ? pm->channel : empty;
    m->os = pm ? pm->os : empty;
    m->os_version = pm ? pm->os_version : empty;
    m->build_id = pm ? pm->build_id : empty;
    m->cpu_arch = pm ? pm->cpu_arch : empty;
    m->crash_time_unix_ms = pm ? pm->crash_time_unix_ms : 0;
    struct {
        const char **s;
        const char *name;
    } fields[] = {
        { &m->idempotency_key, "CrashMeta.idempotency_key" },
        { &m->host_id, "CrashMeta.host_id" },
        { &m->product, "CrashMeta.product" },
        { &m->version, "CrashMeta.version" },
        { &m->channel, "CrashMeta.channel" },
        { &m->os, "CrashMeta.os" },
        { &m->os_version, "CrashMeta.os_version" },
        { &m->build_id, "CrashMeta.build_id" },
        { &m->cpu_arch, "CrashMeta.cpu_arch" },
    };
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        enum cm_code rc = check_str(fields[i].s, lim->max_string_bytes, fields[i].name, err);
        if (rc)
            return rc;
    }
    if (!pm || pm->n_annotations == 0)
        return CM_E_OK;
    if (pm->n_annotations > lim->max_annotations)
        return cm_fail(err, CM_E_LIMIT,
                       "protobuf: CrashMeta.annotations has %zu entries, over the limit of %zu",
                       pm->n_annotations, lim->max_annotations);
    h->kv = cm_calloc(pm->n_annotations, sizeof *h->kv);
    if (!h->kv)
        return cm_fail(err, CM_E_NOMEM, "protobuf: out of memory for %zu annotations",
                       pm->n_annotations);
    for (size_t i = 0; i < pm->n_annotations; i++) {
        const Triage__V1__CrashMeta__AnnotationsEntry *e = pm->annotations[i];
        const char *k = e ? e->key : NULL, *v = e ? e->value : NULL;
        enum cm_code rc = check_str(&k, lim->max_annotation_bytes, "CrashMeta.annotations key",
                                    err);
        if (!rc)
            rc = check_str(&v, lim->max_annotation_bytes, "CrashMeta.annotations value", err);
        if (rc)
            return rc;
        h->kv[i] = (struct proto_kv){ k, v };
    }
    m->annotations = h->kv;
    m->annotation_count = pm->n_annotations;
    return CM_E_OK;
}

static enum proto_dump_format dump_format_of(int v)
{
    return v >= PROTO_DUMP_MINIDUMP && v <= PROTO_DUMP_WINDOWS_KERNEL ? (enum proto_dump_format)v
                                                                      : PROTO_DUMP_UNSPECIFIED;
}

/* ---- decoding ---- */

struct upload_box {
    struct proto_upload pub;
    struct holder h;
};

enum cm_code proto_decode_upload(const uint8_t *body, size_t len, const struct proto_limits *lim,
                                 struct proto_upload **out, struct cm_err *err)
{
    struct proto_limits def;
    lim = limits_or_default(lim, &def);
    *out = NULL;
    struct upload_box *b = cm_calloc(1, sizeof *b);
    if (!b)
        return cm_fail(err, CM_E_NOMEM, "protobuf: out of memory");
    enum cm_code rc = unpack(&triage__v1__crash_upload__descriptor, body, len, lim, "CrashUpload",
                             &b->h, err);
    if (rc)
        goto fail;
    Triage__V1__CrashUpload *m = (Triage__V1__CrashUpload *)b->h.msg;
    rc = take_meta(m->meta, lim, &b->h, &b->pub.meta, err);
    if (rc)
        goto fail;
    b->pub.hint_crash_id = m->hint_crash_id;
    rc = check_str(&b->pub.hint_crash_id, 64, "CrashUpload.hint_crash_id", err);
    if (rc)
        goto fail;
    if (m->dump.len > lim->max_dump_bytes) {
        rc = cm_fail(err, CM_E_LIMIT, "protobuf: CrashUpload.dump of %zu bytes exceeds the limit "
                     "of %zu", m->dump.len, lim->max_dump_bytes);
        goto fail;
    }
    if (m->dump.len == 0) {
        rc = cm_fail(err, CM_E_USAGE, "protobuf: CrashUpload.dump is empty");
        goto fail;
    }
    b->pub.dump = m->dump.data;
    b->pub.dump_len = m->dump.len;
    b->pub.dump_format = dump_format_of((int)m->dump_format);
    b->pub.compression = m->compression >= 1 && m->compression <= 3
                             ? (enum proto_compression)m->compression
                             : PROTO_COMP_UNSPECIFIED;
    b->pub.priv_ = &b->h;
    *out = &b->pub;
    return CM_E_OK;
fail:
    holder_free(&b->h);
    cm_free(b);
    return rc;
}

void proto_upload_free(struct proto_upload *u)
{
    if (!u)
        return;
    struct upload_box *b = (struct upload_box *)u; /* pub is the first member */
    holder_free(&b->h);
    cm_free(b);
}

struct hint_box {
    struct proto_hint pub;
    struct holder h;
};

enum cm_code proto_decode_hint(const uint8_t *body, size_t len, const struct proto_limits *lim,
                               struct proto_hint **out, struct cm_err *err)
{
    struct proto_limits def;
    lim = limits_or_default(lim, &def);
    *out = NULL;
    struct hint_box *b = cm_calloc(1, sizeof *b);
    if (!b)
        return cm_fail(err, CM_E_NOMEM, "protobuf: out of memory");
    enum cm_code rc = unpack(&triage__v1__crash_hint__descriptor, body, len, lim, "CrashHint",
                             &b->h, err);
    if (rc)
        goto fail;
    Triage__V1__CrashHint *m = (Triage__V1__CrashHint *)b->h.msg;
    rc = take_meta(m->meta, lim, &b->h, &b->pub.meta, err);
    if (rc)
        goto fail;
    b->pub.dump_format = dump_format_of((int)m->dump_format);
    b->pub.dump_size_bytes = m->dump_size_bytes;
    struct proto_fault_key *fk = &b->pub.fault_key;
    const Triage__V1__FaultKey *pf = m->fault_key;
    fk->module = pf ? pf->module : "";
    fk->module_version = pf ? pf->module_version : "";
    fk->module_build_id = pf ? pf->module_build_id : "";
    fk->offset = pf ? pf->offset : 0;
    fk->exception_code = pf ? pf->exception_code : 0;
    fk->exception_subcode = pf ? pf->exception_subcode : 0;
    fk->address_class = pf ? pf->address_class : "";
    if ((rc = check_str(&fk->address_class, 64, "FaultKey.address_class", err)) ||
        (rc = check_str(&fk->module, lim->max_string_bytes, "FaultKey.module", err)) ||
        (rc = check_str(&fk->module_version, lim->max_string_bytes, "FaultKey.module_version",
                        err)) ||
        (rc = check_str(&fk->module_build_id, lim->max_string_bytes, "FaultKey.module_build_id",
                        err)))
        goto fail;
    if (pf && pf->n_frames > 0) {
        if (pf->n_frames > lim->max_frames) {
            rc = cm_fail(err, CM_E_LIMIT, "protobuf: FaultKey.frames has %zu entries, over the "
                         "limit of %zu", pf->n_frames, lim->max_frames);
            goto fail;
        }
        b->h.frames = cm_calloc(pf->n_frames, sizeof *b->h.frames);
        if (!b->h.frames) {
            rc = cm_fail(err, CM_E_NOMEM, "protobuf: out of memory for %zu frames", pf->n_frames);
            goto fail;
        }
        for (size_t i = 0; i < pf->n_frames; i++) {
            const Triage__V1__ModuleOffset *f = pf->frames[i];
            const char *mod = f ? f->module : NULL;
            if ((rc = check_str(&mod, lim->max_string_bytes, "ModuleOffset.module", err)))
                goto fail;
            b->h.frames[i] = (struct proto_module_offset){ mod, f ? f->offset : 0 };
        }
        fk->frames = b->h.frames;
        fk->frame_count = pf->n_frames;
    }
    b->pub.priv_ = &b->h;
    *out = &b->pub;
    return CM_E_OK;
fail:
    holder_free(&b->h);
    cm_free(b);
    return rc;
}

void proto_hint_free(struct proto_hint *hint)
{
    if (!hint)
        return;
    struct hint_box *b = (struct hint_box *)hint;
    holder_free(&b->h);
    cm_free(b);
}

struct ack_box {
    struct proto_ack pub;
    struct holder h;
};

enum cm_code proto_decode_ack(const uint8_t *body, size_t len, const struct proto_limits *lim,
                              struct proto_ack **out, struct cm_err *err)
{
    struct proto_limits def;
    lim = limits_or_default(lim, &def);
    *out = NULL;
    struct ack_box *b = cm_calloc(1, sizeof *b);
    if (!b)
        return cm_fail(err, CM_E_NOMEM, "protobuf: out of memory");
    enum cm_code rc = unpack(&triage__v1__crash_ack__descriptor, body, len, lim, "CrashAck",
                             &b->h, err);
    if (rc)
        goto fail;
    Triage__V1__CrashAck *m = (Triage__V1__CrashAck *)b->h.msg;
    b->pub.crash_id = m->crash_id;
    b->pub.reason = m->reason;
    if ((rc = check_str(&b->pub.crash_id, 64, "CrashAck.crash_id", err)) ||
        (rc = check_str(&b->pub.reason, lim->max_string_bytes, "CrashAck.reason", err)))
        goto fail;
    b->pub.status = m->status >= 1 && m->status <= 5 ? (enum proto_ack_status)m->status
                                                      : PROTO_ACK_UNSPECIFIED;
    b->pub.retry_after_s = m->retry_after_s;
    b->pub.priv_ = &b->h;
    *out = &b->pub;
    return CM_E_OK;
fail:
    holder_free(&b->h);
    cm_free(b);
    return rc;
}

void proto_ack_free(struct proto_ack *a)
{
    if (!a)
        return;
    struct ack_box *b = (struct ack_box *)a;
    holder_free(&b->h);
    cm_free(b);
}

struct hint_reply_box {
    struct proto_hint_reply pub;
    struct holder h;
};

enum cm_code proto_decode_hint_reply(const uint8_t *body, size_t len,
                                     const struct proto_limits *lim, struct proto_hint_reply **out,
                                     struct cm_err *err)
{
    struct proto_limits def;
    lim = limits_or_default(lim, &def);
    *out = NULL;
    struct hint_reply_box *b = cm_calloc(1, sizeof *b);
    if (!b)
        return cm_fail(err, CM_E_NOMEM, "protobuf: out of memory");
    enum cm_code rc = unpack(&triage__v1__hint_reply__descriptor, body, len, lim, "HintReply",
                             &b->h, err);
    if (rc)
        goto fail;
    Triage__V1__HintReply *m = (Triage__V1__HintReply *)b->h.msg;
    b->pub.want_dump = m->want_dump;
    b->pub.crash_id = m->crash_id;
    b->pub.reason = m->reason;
    b->pub.bucket = m->bucket;
    if ((rc = check_str(&b->pub.crash_id, 64, "HintReply.crash_id", err)) ||
        (rc = check_str(&b->pub.reason, lim->max_string_bytes, "HintReply.reason", err)) ||
        (rc = check_str(&b->pub.bucket, lim->max_string_bytes, "HintReply.bucket", err)))
        goto fail;
    b->pub.retry_after_s = m->retry_after_s;
    b->pub.priv_ = &b->h;
    *out = &b->pub;
    return CM_E_OK;
fail:
    holder_free(&b->h);
    cm_free(b);
    return rc;
}

void proto_hint_reply_free(struct proto_hint_reply *r)
{
    if (!r)
        return;
    struct hint_reply_box *b = (struct hint_reply_box *)r;
    holder_free(&b->h);
    cm_free(b);
}

/* ---- encoding ---- */

/* protobuf-c's structs hold `char *` but packing only reads them. */
static char *s_(const char *s) { return (char *)(s ? s : ""); }

static enum cm_code pack(const ProtobufCMessage *m, struct cm_buf *out, struct cm_err *err)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    enum cm_code rc = cm_buf_reserve(out, n, err);
    if (rc)
        return rc;
    size_t w = protobuf_c_message_pack(m, out->data + out->len);
    if (w != n)
        return cm_fail(err, CM_E_CORRUPT, "protobuf: packed %zu bytes where %zu were sized", w, n);
    out->len += n;
    out->data[out->len] = 0;
    return CM_E_OK;
}

/* Builds a CrashMeta over m; the entry arrays are allocated and freed by the caller through
 * *entries / *entry_ptrs. */
static enum cm_code build_meta(const struct proto_meta *m, Triage__V1__CrashMeta *pm,
                               Triage__V1__CrashMeta__AnnotationsEntry **entries,
                               Triage__V1__CrashMeta__AnnotationsEntry ***entry_ptrs,
                               struct cm_err *err)
{
    *pm = (Triage__V1__CrashMeta)TRIAGE__V1__CRASH_META__INIT;
    pm->idempotency_key = s_(m->idempotency_key);
    pm->host_id = s_(m->host_id);
    pm->product = s_(m->product);
    pm->version = s_(m->version);
    pm->channel = s_(m->channel);
    pm->os = s_(m->os);
    pm->os_version = s_(m->os_version);
    pm->build_id = s_(m->build_id);
    pm->cpu_arch = s_(m->cpu_arch);
    pm->crash_time_unix_ms = m->crash_time_unix_ms;
    *entries = NULL;
    *entry_ptrs = NULL;
    if (m->annotation_count == 0)
        return CM_E_OK;
    *entries = cm_calloc(m->annotation_count, sizeof **entries);
    *entry_ptrs = cm_calloc(m->annotation_count, sizeof **entry_ptrs);
    if (!*entries || !*entry_ptrs)
        return cm_fail(err, CM_E_NOMEM, "protobuf: out of memory for %zu annotations",
                       m->annotation_count);
    for (size_t i = 0; i < m->annotation_count; i++) {
        Triage__V1__CrashMeta__AnnotationsEntry *e = &(*entries)[i];
        *e = (Triage__V1__CrashMeta__AnnotationsEntry)
            TRIAGE__V1__CRASH_META__ANNOTATIONS_ENTRY__INIT;
        e->key = s_(m->annotations[i].key);
        e->value = s_(m->annotations[i].value);
        (*entry_ptrs)[i] = e;
    }
    pm->n_annotations = m->annotation_count;
    pm->annotations = *entry_ptrs;
    return CM_E_OK;
}

enum cm_code proto_encode_upload(const struct proto_upload *u, struct cm_buf *out,
                                 struct cm_err *err)
{
    Triage__V1__CrashMeta meta;
    Triage__V1__CrashMeta__AnnotationsEntry *entries = NULL, **ptrs = NULL;
    enum cm_code rc = build_meta(&u->meta, &meta, &entries, &ptrs, err);
    if (rc)
        goto out;
    Triage__V1__CrashUpload m = TRIAGE__V1__CRASH_UPLOAD__INIT;
    m.meta = &meta;
    m.dump_format = (Triage__V1__DumpFormat)u->dump_format;
    m.compression = (Triage__V1__Compression)u->compression;
    m.dump.data = (uint8_t *)u->dump;
    m.dump.len = u->dump ? u->dump_len : 0;
    m.hint_crash_id = s_(u->hint_crash_id);
    rc = pack(&m.base, out, err);
out:
    cm_free(entries);
    cm_free(ptrs);
    return rc;
}

enum cm_code proto_encode_hint(const struct proto_hint *h, struct cm_buf *out, struct cm_err *err)
{
    Triage__V1__CrashMeta meta;
    Triage__V1__CrashMeta__AnnotationsEntry *entries = NULL, **ptrs = NULL;
    Triage__V1__ModuleOffset *frames = NULL, **frame_ptrs = NULL;
    enum cm_code rc = build_meta(&h->meta, &meta, &entries, &ptrs, err);
    if (rc)
        goto out;
    Triage__V1__FaultKey fk = TRIAGE__V1__FAULT_KEY__INIT;
    const struct proto_fault_key *k = &h->fault_key;
    fk.module = s_(k->module);
    fk.module_version = s_(k->module_version);
    fk.module_build_id = s_(k->module_build_id);
    fk.offset = k->offset;
    fk.exception_code = k->exception_code;
    fk.exception_subcode = k->exception_subcode;
    fk.address_class = s_(k->address_class);
    if (k->frame_count) {
        frames = cm_calloc(k->frame_count, sizeof *frames);
        frame_ptrs = cm_calloc(k->frame_count, sizeof *frame_ptrs);
        if (!frames || !frame_ptrs) {
            rc = cm_fail(err, CM_E_NOMEM, "protobuf: out of memory for %zu frames",
                         k->frame_count);
            goto out;
        }
        for (size_t i = 0; i < k->frame_count; i++) {
            frames[i] = (Triage__V1__ModuleOffset)TRIAGE__V1__MODULE_OFFSET__INIT;
            frames[i].module = s_(k->frames[i].module);
            frames[i].offset = k->frames[i].offset;
            frame_ptrs[i] = &frames[i];
        }
        fk.n_frames = k->frame_count;
        fk.frames = frame_ptrs;
    }
    Triage__V1__CrashHint m = TRIAGE__V1__CRASH_HINT__INIT;
    m.meta = &meta;
    m.fault_key = &fk;
    m.dump_format = (Triage__V1__DumpFormat)h->dump_format;
    m.dump_size_bytes = h->dump_size_bytes;
    rc = pack(&m.base, out, err);
out:
    cm_free(entries);
    cm_free(ptrs);
    cm_free(frames);
    cm_free(frame_ptrs);
    return rc;
}

enum cm_code proto_encode_ack(const struct proto_ack *a, struct cm_buf *out, struct cm_err *err)
{
    Triage__V1__CrashAck m = TRIAGE__V1__CRASH_ACK__INIT;
    m.crash_id = s_(a->crash_id);
    m.status = (Triage__V1__AckStatus)a->status;
    m.retry_after_s = a->retry_after_s;
    m.reason = s_(a->reason);
    return pack(&m.base, out, err);
}

enum cm_code proto_encode_hint_reply(const struct proto_hint_reply *r, struct cm_buf *out,
                                     struct cm_err *err)
{
    Triage__V1__HintReply m = TRIAGE__V1__HINT_REPLY__INIT;
    m.want_dump = r->want_dump;
    m.crash_id = s_(r->crash_id);
    m.reason = s_(r->reason);
    m.retry_after_s = r->retry_after_s;
    m.bucket = s_(r->bucket);
    return pack(&m.base, out, err);
}

/* ---- JSON replies ---- */

/* Appends s as a JSON string (RFC 8259): quotes, backslashes and control bytes escaped. */
static enum cm_code json_str(struct cm_buf *b, const char *s, struct cm_err *err)
{
    enum cm_code rc = cm_buf_append(b, "\"", 1, err);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); !rc && *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p;
            rc = cm_buf_append(b, esc, 2, err);
        } else if (*p < 0x20 || *p == 0x7F) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            rc = cm_buf_append(b, esc, 6, err);
        } else {
            rc = cm_buf_append(b, p, 1, err);
        }
    }
    return rc ? rc : cm_buf_append(b, "\"", 1, err);
}

enum cm_code proto_ack_json(const struct proto_ack *a, struct cm_buf *out, struct cm_err *err)
{
    enum cm_code rc;
    if ((rc = cm_buf_printf(out, err, "{\"crash_id\":")) ||
        (rc = json_str(out, a->crash_id, err)) ||
        (rc = cm_buf_printf(out, err, ",\"status\":\"%s\",\"retry_after_s\":%u,\"reason\":",
                            proto_ack_status_name(a->status), a->retry_after_s)) ||
        (rc = json_str(out, a->reason, err)))
        return rc;
    return cm_buf_append(out, "}", 1, err);
}

enum cm_code proto_hint_reply_json(const struct proto_hint_reply *r, struct cm_buf *out,
                                   struct cm_err *err)
{
    enum cm_code rc;
    if ((rc = cm_buf_printf(out, err, "{\"want_dump\":%s,\"crash_id\":",
                            r->want_dump ? "true" : "false")) ||
        (rc = json_str(out, r->crash_id, err)) ||
        (rc = cm_buf_printf(out, err, ",\"reason\":")) || (rc = json_str(out, r->reason, err)) ||
        (rc = cm_buf_printf(out, err, ",\"retry_after_s\":%u,\"bucket\":", r->retry_after_s)) ||
        (rc = json_str(out, r->bucket, err)))
        return rc;
    return cm_buf_append(out, "}", 1, err);
}
