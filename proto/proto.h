/* proto.h -- the wire format of proto/crash.proto as plain C structs, with size-capped decoding
 * of untrusted bodies and encoding of replies. protoc-c's generated names never leave proto/.
 *
 * Decoding: the body length is checked against limits->max_body_bytes first, then protobuf-c
 * unpacks it with an allocator that counts bytes and fails once limits->max_alloc_bytes is
 * reached, so a hostile body (a million empty map entries, a huge declared repeated count)
 * cannot make the service allocate more than the cap. Counts and sizes (annotations, frames,
 * strings, dump) are then checked against their own limits; a body over a limit fails with
 * CM_E_LIMIT and a message naming the field, a body that is not valid protobuf with
 * CM_E_CORRUPT.
 *
 * Ownership: a decoded message (struct proto_upload, struct proto_hint, ...) owns everything its
 * fields point to, including the dump bytes; free it with the matching *_free() (NULL is fine).
 * Strings are NUL-terminated and never NULL ("" when absent on the wire).
 *
 * Encoding appends to a struct cm_buf (so its cap bounds the output). */
#ifndef TRIAGE_PROTO_H
#define TRIAGE_PROTO_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

#include "common/cm_buf.h"
#include "common/cm_err.h"

/* ---- limits ---- */

struct proto_limits {
    size_t max_body_bytes;       /* whole protobuf body; default 20 MiB */
    size_t max_alloc_bytes;      /* bytes the decoder may allocate; default body cap + 4 MiB */
    size_t max_dump_bytes;       /* CrashUpload.dump as sent (compressed); default 20 MiB */
    size_t max_annotations;      /* CrashMeta.annotations entries; default 512 */
    size_t max_annotation_bytes; /* one key or value; default 64 KiB */
    size_t max_string_bytes;     /* any other string field; default 1 KiB */
    size_t max_frames;           /* FaultKey.frames; default 64 (the service uses the first 16) */
};

/* Fills *lim with the defaults above. */
void proto_limits_default(struct proto_limits *lim);

/* ---- enums (values equal the wire values of crash.proto) ---- */

enum proto_dump_format {
    PROTO_DUMP_UNSPECIFIED = 0,
    PROTO_DUMP_MINIDUMP = 1,
    PROTO_DUMP_ELF_CORE = 2,
    PROTO_DUMP_WINDOWS_KERNEL = 3,
};
enum proto_compression {
    PROTO_COMP_UNSPECIFIED = 0,
    PROTO_COMP_NONE = 1,
    PROTO_COMP_ZSTD = 2,
    PROTO_COMP_GZIP = 3,
};
enum proto_ack_status {
    PROTO_ACK_UNSPECIFIED = 0,
    PROTO_ACK_ACCEPTED = 1,
    PROTO_ACK_DUPLICATE = 2,
    PROTO_ACK_DISCARDED = 3,
    PROTO_ACK_REJECTED = 4,
    PROTO_ACK_RETRY = 5,
};

/* "minidump", "elf_core", "windows_kernel", "unspecified" (unknown values: "unspecified"). */
const char *proto_dump_format_name(enum proto_dump_format f);
/* "none", "zstd", "gzip", "unspecified". */
const char *proto_compression_name(enum proto_compression c);
/* "accepted", "duplicate", "discarded", "rejected", "retry", "unspecified". */
const char *proto_ack_status_name(enum proto_ack_status s);

/* ---- messages ---- */

struct proto_kv {
    const char *key;
    const char *value;
};

/* CrashMeta. Strings are "" when absent. */
struct proto_meta {
    const char *idempotency_key;
    const char *host_id;
    const char *product;
    const char *version;
    const char *channel;
    const char *os;
    const char *os_version;
    const char *build_id;
    const char *cpu_arch;
    int64_t crash_time_unix_ms; /* 0: unknown */
    const struct proto_kv *annotations;
    size_t annotation_count;
};

/* CrashUpload. */
struct proto_upload {
    struct proto_meta meta;
    enum proto_dump_format dump_format; /* values outside the enum decode as UNSPECIFIED */
    enum proto_compression compression; /* values outside the enum decode as UNSPECIFIED */
    const uint8_t *dump;
    size_t dump_len;
    const char *hint_crash_id;
    void *priv_; /* decoder storage; do not touch */
};

/* CrashAck. */
struct proto_ack {
    const char *crash_id; /* may be NULL or "" */
    enum proto_ack_status status;
    uint32_t retry_after_s;
    const char *reason; /* may be NULL or "" */
    void *priv_;        /* decoder storage (NULL when built by hand) */
};

struct proto_module_offset {
    const char *module;
    uint64_t offset;
};

/* FaultKey. */
struct proto_fault_key {
    const char *module;
    const char *module_version;
    const char *module_build_id;
    uint64_t offset;
    uint32_t exception_code;
    uint32_t exception_subcode;
    const struct proto_module_offset *frames;
    size_t frame_count;
    const char *address_class; /* "NULL", "NEAR_NULL", "WILD" or "" (NULL on encode: "") */
};

/* CrashHint. */
struct proto_hint {
    struct proto_meta meta;
    struct proto_fault_key fault_key;
    enum proto_dump_format dump_format;
    uint64_t dump_size_bytes;
    void *priv_;
};

/* HintReply. */
struct proto_hint_reply {
    bool want_dump;
    const char *crash_id; /* may be NULL or "" */
    const char *reason;   /* may be NULL or "" */
    uint32_t retry_after_s;
    const char *bucket; /* may be NULL or "" */
    void *priv_;
};

/* ---- decoding (untrusted input; lim may be NULL for the defaults) ---- */

/* *out is owned by the caller; free with proto_upload_free(). Fails with CM_E_LIMIT when the
 * body, an allocation total, the dump, a string or the annotation list is over its limit,
 * CM_E_CORRUPT when the body is not a valid CrashUpload, CM_E_USAGE when the dump is empty. */
enum cm_code proto_decode_upload(const uint8_t *body, size_t len, const struct proto_limits *lim,
                                 struct proto_upload **out, struct cm_err *err);
void proto_upload_free(struct proto_upload *u);

/* *out is owned by the caller; free with proto_hint_free(). Frames past max_frames fail the
 * decode (CM_E_LIMIT): a client computing a fault key sends only a few. */
enum cm_code proto_decode_hint(const uint8_t *body, size_t len, const struct proto_limits *lim,
                               struct proto_hint **out, struct cm_err *err);
void proto_hint_free(struct proto_hint *h);

/* Client side (triagectl upload): replies from the service are capped the same way. */
enum cm_code proto_decode_ack(const uint8_t *body, size_t len, const struct proto_limits *lim,
                              struct proto_ack **out, struct cm_err *err);
void proto_ack_free(struct proto_ack *a);
enum cm_code proto_decode_hint_reply(const uint8_t *body, size_t len,
                                     const struct proto_limits *lim, struct proto_hint_reply **out,
                                     struct cm_err *err);
void proto_hint_reply_free(struct proto_hint_reply *r);

/* ---- encoding (appends the packed message to out) ---- */

enum cm_code proto_encode_upload(const struct proto_upload *u, struct cm_buf *out,
                                 struct cm_err *err);
enum cm_code proto_encode_hint(const struct proto_hint *h, struct cm_buf *out, struct cm_err *err);
enum cm_code proto_encode_ack(const struct proto_ack *a, struct cm_buf *out, struct cm_err *err);
enum cm_code proto_encode_hint_reply(const struct proto_hint_reply *r, struct cm_buf *out,
                                     struct cm_err *err);

/* JSON forms of the replies, for clients that send `Accept: application/json`:
 *   {"crash_id":"...","status":"accepted","retry_after_s":0,"reason":""}
 *   {"want_dump":true,"crash_id":"...","reason":"...","retry_after_s":0,"bucket":""}
 * Strings are JSON-escaped; appended to out. */
enum cm_code proto_ack_json(const struct proto_ack *a, struct cm_buf *out, struct cm_err *err);
enum cm_code proto_hint_reply_json(const struct proto_hint_reply *r, struct cm_buf *out,
                                   struct cm_err *err);

#endif
