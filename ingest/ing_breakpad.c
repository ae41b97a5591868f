/* ing_breakpad.c -- POST /submit: the multipart upload that stock Breakpad, Crashpad and
 * Electron reporters send, answered as Socorro's collector (Antenna) answers, so they work
 * unchanged (Socorro "Specification: Submitting crash reports"):
 *   200 CrashID=bp-<crash id>     stored
 *   200 Discarded=<rule>          deliberately dropped
 *   400 Discarded=<reason>        malformed (the reason is a stable token)
 *   413 Discarded=too_large       over a size limit
 * The minidump is the part named upload_file_minidump; other file parts (extra dumps, memory
 * reports) are ignored; other fields are annotations, and so is each member of an optional JSON
 * object in a part named `extra`. `prod`, `ver` and `guid` may also come in the query string;
 * `guid` is the host id (Crashpad's client id). The whole body may be gzip (Content-Encoding).
 * A `uuid` field is kept as an annotation and never becomes the crash id. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingest/ing_int.h"

static const char DUMP_FIELD[] = "upload_file_minidump";

struct ann_list {
    struct ing_kv *kv;
    size_t n, cap;
};

static enum ing_reason ann_add(struct ing_server *s, struct cm_arena *a, struct ann_list *l,
                               const char *key, size_t klen, const char *val, size_t vlen,
                               struct cm_err *err)
{
    const struct ing_conf *conf = &s->conf;
    if (l->n == conf->max_annotations) {
        cm_fail(err, CM_E_LIMIT, "more than %zu annotations", conf->max_annotations);
        return ING_R_TOO_MANY_ANNOTATIONS;
    }
    if (klen > conf->max_annotation_key_bytes) {
        cm_fail(err, CM_E_LIMIT, "annotation key of %zu bytes exceeds %zu", klen,
                conf->max_annotation_key_bytes);
        return ING_R_FIELD_NAME_TOO_LONG;
    }
    if (vlen > conf->max_annotation_bytes) {
        cm_fail(err, CM_E_LIMIT, "annotation value of %zu bytes exceeds %zu", vlen,
                conf->max_annotation_bytes);
        return ING_R_ANNOTATION_TOO_LARGE;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        if (cap > conf->max_annotations)
            cap = conf->max_annotations;
        struct ing_kv *kv = cm_arena_calloc(a, cap, sizeof *kv);
        if (!kv)
            return cm_fail(err, CM_E_NOMEM, "out of memory"), ING_R_INTERNAL;
        if (l->n)
            memcpy(kv, l->kv, l->n * sizeof *kv);
        l->kv = kv;
        l->cap = cap;
    }
    const char *k = ing__clean_utf8(a, key, klen), *v = ing__clean_utf8(a, val, vlen);
    if (!k || !v)
        return cm_fail(err, CM_E_NOMEM, "out of memory"), ING_R_INTERNAL;
    l->kv[l->n].key = k;
    l->kv[l->n].value = v;
    l->n++;
    return ING_R_NONE;
}

/* The `extra` part: one JSON object whose members are annotations. Values that are not strings
 * are kept as their compact JSON text. */
static enum ing_reason add_extra(struct ing_server *s, struct cm_arena *a, struct ann_list *l,
                                 const struct ing_part *p, struct cm_err *err)
{
    json_error_t jerr;
    json_t *o = json_loadb((const char *)p->data, p->len, 0, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        cm_fail(err, CM_E_CORRUPT, "extra: not a JSON object (line %d)", jerr.line);
        return ING_R_BAD_JSON;
    }
    enum ing_reason r = ING_R_NONE;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (json_is_string(v)) {
            r = ann_add(s, a, l, key, strlen(key), json_string_value(v), json_string_length(v),
                        err);
        } else {
            char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            if (!text) {
                r = ING_R_INTERNAL;
                cm_fail(err, CM_E_NOMEM, "out of memory");
            } else {
                r = ann_add(s, a, l, key, strlen(key), text, strlen(text), err);
                free(text); /* jansson's allocator */
            }
        }
        if (r)
            break;
    }
    json_decref(o);
    return r;
}

static bool is_json_type(const char *ct)
{
    return ct && !strncasecmp(ct, "application/json", 16);
}

/* An old Electron sent the minidump part as a multipart body of its own; unwrap one level
 * (as Sentry Relay does) and refuse deeper nesting. The boundary comes from the part's
 * Content-Type, else from its first line. */
static enum ing_reason unwrap(struct ing_server *s, struct cm_arena *a,
                              const struct ing_mp_limits *lim, struct ing_part *dump, int depth,
                              struct cm_err *err)
{
    const char *boundary = NULL;
    if (dump->content_type && !strncasecmp(dump->content_type, "multipart/", 10)) {
        if (ing__multipart_boundary(dump->content_type, a, &boundary))
            boundary = NULL;
    }
    if (!boundary && dump->len > 2 && dump->data[0] == '-' && dump->data[1] == '-') {
        size_t i = 2;
        while (i < dump->len && i < 2 + 71 && dump->data[i] != '\r')
            i++;
        if (i > 2 && i < dump->len && i - 2 <= 70)
            boundary = cm_arena_strndup(a, (const char *)dump->data + 2, i - 2);
    }
    if (!boundary)
        return ING_R_NONE; /* not multipart: the dump itself */
    if (depth > 0) {
        cm_fail(err, CM_E_UNSUPPORTED, "multipart nested more than one level in the dump part");
        return ING_R_NESTED_MULTIPART;
    }
    struct ing_part *parts;
    size_t n;
    enum ing_reason r = ing__multipart_parse(dump->data, dump->len, boundary, lim, a, &parts, &n,
                                             err);
    if (r)
        return r;
    struct ing_part *pick = NULL;
    for (size_t i = 0; i < n && !pick; i++)
        if (parts[i].name && !strcmp(parts[i].name, DUMP_FIELD))
            pick = &parts[i];
    for (size_t i = 0; i < n && !pick; i++)
        if (parts[i].filename)
            pick = &parts[i];
    if (!pick && n == 1)
        pick = &parts[0];
    if (!pick) {
        cm_fail(err, CM_E_CORRUPT, "nested multipart holds no minidump");
        return ING_R_MISSING_MINIDUMP;
    }
    *dump = *pick;
    return unwrap(s, a, lim, dump, depth + 1, err);
}

static const char *field(const struct ann_list *l, const char *name, const char *name2)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->kv[i].key, name) || (name2 && !strcmp(l->kv[i].key, name2)))
            return l->kv[i].value;
    return NULL;
}

static enum ing_reason set_meta(struct ing_server *s, struct cm_arena *a, const char **dst,
                                const char *v, struct cm_err *err)
{
    if (!v)
        v = "";
    size_t n = strlen(v);
    if (n > s->conf.max_string_bytes) {
        cm_fail(err, CM_E_LIMIT, "field of %zu bytes exceeds %zu", n, s->conf.max_string_bytes);
        return ING_R_STRING_TOO_LONG;
    }
    if (!(*dst = ing__clean_utf8(a, v, n)))
        return cm_fail(err, CM_E_NOMEM, "out of memory"), ING_R_INTERNAL;
    return ING_R_NONE;
}

enum ing_reason ing__submit_parse(struct ing_server *s, struct cm_arena *a,
                                  const struct ing_submit_in *in, const uint8_t *body, size_t len,
                                  struct ing_upload *u, struct cm_err *err)
{
    const struct ing_conf *conf = &s->conf;
    enum ing_reason r;
    const char *boundary;
    if ((r = ing__multipart_boundary(in->content_type, a, &boundary))) {
        cm_fail(err, CM_E_CORRUPT, "unusable multipart Content-Type");
        return r;
    }
    if (in->gzip) {
        cm_buf_init(&u->inflated, conf->max_dump_bytes + conf->max_request_bytes);
        if ((r = ing__gunzip_body(body, len, &u->inflated, err)))
            return r;
        body = u->inflated.data;
        len = u->inflated.len;
    }
    struct ing_mp_limits lim = {
        .max_parts = conf->max_parts,
        .max_part_bytes = conf->max_part_bytes > conf->max_dump_bytes ? conf->max_part_bytes
                                                                      : conf->max_dump_bytes,
        .max_part_header_bytes = conf->max_part_header_bytes,
        .max_preamble_bytes = conf->max_preamble_bytes,
        .max_name_bytes = conf->max_annotation_key_bytes,
    };
    if (!in->gzip) /* as sent, a part is capped by the per-part limit */
        lim.max_part_bytes = conf->max_part_bytes;
    struct ing_part *parts;
    size_t n;
    if ((r = ing__multipart_parse(body, len, boundary, &lim, a, &parts, &n, err)))
        return r;

    struct ann_list ann = { 0 };
    struct ing_part dump = { 0 };
    bool have_dump = false;
    for (size_t i = 0; i < n; i++) {
        const struct ing_part *p = &parts[i];
        if (!p->name)
            continue; /* no name: neither a field nor the dump */
        if (!strcmp(p->name, DUMP_FIELD)) {
            if (have_dump) {
                cm_fail(err, CM_E_CORRUPT, "two %s parts", DUMP_FIELD);
                return ING_R_DUPLICATE_MINIDUMP;
            }
            dump = *p;
            have_dump = true;
        } else if (p->filename) {
            continue; /* other dumps and attachments: not stored */
        } else if (!strcmp(p->name, "extra") &&
                   (is_json_type(p->content_type) || (p->len && p->data[0] == '{'))) {
            if ((r = add_extra(s, a, &ann, p, err)))
                return r;
        } else if ((r = ann_add(s, a, &ann, p->name, strlen(p->name), (const char *)p->data,
                                p->len, err))) {
            return r;
        }
    }
    if (!have_dump) {
        cm_fail(err, CM_E_CORRUPT, "no %s part", DUMP_FIELD);
        return ING_R_MISSING_MINIDUMP;
    }
    lim.max_part_bytes = conf->max_dump_bytes;
    if ((r = unwrap(s, a, &lim, &dump, 0, err)))
        return r;

    struct ing_crash *c = &u->crash;
    const char *prod = field(&ann, "prod", "ProductName");
    const char *ver = field(&ann, "ver", "Version");
    const char *guid = field(&ann, "guid", NULL);
    if ((r = set_meta(s, a, &c->product, prod ? prod : in->q_prod, err)) ||
        (r = set_meta(s, a, &c->version, ver ? ver : in->q_ver, err)) ||
        (r = set_meta(s, a, &c->host_id, guid ? guid : in->q_guid, err)) ||
        (r = set_meta(s, a, &c->build_id, field(&ann, "BuildID", "build_id"), err)) ||
        (r = set_meta(s, a, &c->channel, field(&ann, "ReleaseChannel", "channel"), err)) ||
        (r = set_meta(s, a, &c->os, field(&ann, "os", "plat"), err)) ||
        (r = set_meta(s, a, &c->os_version, field(&ann, "os_version", "OSVersion"), err)) ||
        (r = set_meta(s, a, &c->cpu_arch, field(&ann, "cpu_arch", NULL), err)) ||
        (r = set_meta(s, a, &c->idempotency_key, "", err)))
        return r;
    const char *ct = field(&ann, "CrashTime", NULL); /* Mozilla: seconds since the epoch */
    if (ct) {
        char *end;
        long long secs = strtoll(ct, &end, 10);
        if (*end == 0 && secs > 0 && secs < 1LL << 40)
            c->crash_time_unix_ms = secs * 1000;
    }
    c->annotations = ann.kv;
    c->annotation_count = ann.n;
    c->endpoint = "submit";
    u->dump = dump.data;
    u->dump_len = dump.len;
    u->comp = ING_COMP_SNIFF; /* a raw, .zst or .gz dump part, by magic */
    return ING_R_NONE;
}

void ing__submit_reply(const struct ing_outcome *o, struct ing_reply *r)
{
    cm_buf_init(&r->body, 1024);
    r->content_type = "text/plain; charset=utf-8";
    if (o->reason == ING_R_NONE) {
        r->status = 200;
        cm_buf_printf(&r->body, NULL, "CrashID=bp-%s\n", o->crash_id);
        return;
    }
    r->status = ing__reason_status(o->reason);
    cm_buf_printf(&r->body, NULL, "Discarded=%s\n", ing__reason_token(o->reason));
}
