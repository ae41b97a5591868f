/* test_proto.c -- proto/: round trips of every message, the size caps of the decoder
 * (body, allocation, dump, strings, counts) at, below and past each limit, hostile wire bytes
 * built by hand (huge declared lengths, a flood of empty map entries, truncations, unknown
 * fields), UTF-8 checks, and allocation failure at every step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cm_alloc.h"
#include "common/cm_buf.h"
#include "proto/proto.h"
#include "tests/th.h"

/* ---- a tiny protobuf writer for hand-made (hostile) bodies ---- */

static void put_varint(struct cm_buf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n] = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v)
            t[n] |= 0x80;
        n++;
    } while (v);
    cm_buf_append(b, t, n, NULL);
}

static void put_tag(struct cm_buf *b, unsigned field, unsigned wire)
{
    put_varint(b, (uint64_t)field << 3 | wire);
}

static void put_bytes(struct cm_buf *b, unsigned field, const void *p, size_t n)
{
    put_tag(b, field, 2);
    put_varint(b, n);
    cm_buf_append(b, p, n, NULL);
}

/* ---- fixtures ---- */

static const struct proto_kv sample_kv[] = {
    { "channel", "beta" }, { "note", "'; DROP TABLE crashes; --" }, { "empty", "" },
};
static const uint8_t sample_dump[] = { 'M', 'D', 'M', 'P', 0x93, 0xA7, 0, 0, 0xFF, 0 };

static struct proto_upload sample_upload(void)
{
    return (struct proto_upload){
        .meta = { .idempotency_key = "idem-1", .host_id = "host-42", .product = "demo",
                  .version = "1.2.3", .channel = "beta", .os = "Linux", .os_version = "6.1",
                  .build_id = "20240719", .cpu_arch = "amd64",
                  .crash_time_unix_ms = 1721390000123LL, .annotations = sample_kv,
                  .annotation_count = 3 },
        .dump_format = PROTO_DUMP_MINIDUMP,
        .compression = PROTO_COMP_ZSTD,
        .dump = sample_dump,
        .dump_len = sizeof sample_dump,
        .hint_crash_id = "",
    };
}

static void encode_upload(const struct proto_upload *u, struct cm_buf *b)
{
    cm_buf_init(b, 0);
    struct cm_err err = { 0 };
    if (proto_encode_upload(u, b, &err))
        fail_msg("encode: %s", err.msg);
}

/* ---- round trips ---- */

static void test_upload_roundtrip(void **state)
{
    (void)state;
    struct proto_upload in = sample_upload();
    struct cm_buf b;
    encode_upload(&in, &b);
    struct proto_upload *out = NULL;
    struct cm_err err = { 0 };
    assert_int_equal(proto_decode_upload(b.data, b.len, NULL, &out, &err), CM_E_OK);
    assert_string_equal(out->meta.idempotency_key, "idem-1");
    assert_string_equal(out->meta.host_id, "host-42");
    assert_string_equal(out->meta.product, "demo");
    assert_string_equal(out->meta.version, "1.2.3");
    assert_string_equal(out->meta.channel, "beta");
    assert_string_equal(out->meta.os, "Linux");
    assert_string_equal(out->meta.os_version, "6.1");
    assert_string_equal(out->meta.build_id, "20240719");
    assert_string_equal(out->meta.cpu_arch, "amd64");
    assert_int_equal(out->meta.crash_time_unix_ms, 1721390000123LL);
    assert_int_equal(out->meta.annotation_count, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(out->meta.annotations[i].key, sample_kv[i].key);
        assert_string_equal(out->meta.annotations[i].value, sample_kv[i].value);
    }
    assert_int_equal(out->dump_format, PROTO_DUMP_MINIDUMP);
    assert_int_equal(out->compression, PROTO_COMP_ZSTD);
    assert_int_equal(out->dump_len, sizeof sample_dump);
    assert_memory_equal(out->dump, sample_dump, sizeof sample_dump);
    assert_string_equal(out->hint_crash_id, "");
    proto_upload_free(out);
    cm_buf_free(&b);
}

static void test_absent_fields_are_empty(void **state)
{
    (void)state;
    /* Only a dump: meta absent on the wire, strings come back "" (never NULL). */
    struct cm_buf b;
    cm_buf_init(&b, 0);
    put_bytes(&b, 4, "MDMP", 4);
    struct proto_upload *u = NULL;
    struct cm_err err = { 0 };
    assert_int_equal(proto_decode_upload(b.data, b.len, NULL, &u, &err), CM_E_OK);
    assert_string_equal(u->meta.idempotency_key, "");
    assert_string_equal(u->meta.host_id, "");
    assert_int_equal(u->meta.annotation_count, 0);
    assert_int_equal(u->meta.crash_time_unix_ms, 0);
    assert_int_equal(u->dump_format, PROTO_DUMP_UNSPECIFIED);
    assert_int_equal(u->compression, PROTO_COMP_UNSPECIFIED);
    proto_upload_free(u);
    cm_buf_free(&b);
}

static void test_hint_roundtrip(void **state)
{
    (void)state;
    struct proto_module_offset frames[] = { { "driver.sys", 0x1234 }, { "", 0xfffff80000001000 },
                                            { "ntdll.dll", 0 } };
    struct proto_hint in = {
        .meta = { .idempotency_key = "k", .host_id = "h", .annotations = sample_kv,
                  .annotation_count = 1 },
        .fault_key = { .module = "driver.sys", .module_version = "10.0.1",
                       .module_build_id = "ABCDEF0123456789ABCDEF01234567891",
                       .offset = 0x1234, .exception_code = 0xC0000005u, .exception_subcode = 1,
                       .frames = frames, .frame_count = 3 },
        .dump_format = PROTO_DUMP_WINDOWS_KERNEL,
        .dump_size_bytes = 1u << 20,
    };
    struct cm_buf b;
    cm_buf_init(&b, 0);
    struct cm_err err = { 0 };
    assert_int_equal(proto_encode_hint(&in, &b, &err), CM_E_OK);
    struct proto_hint *out = NULL;
    assert_int_equal(proto_decode_hint(b.data, b.len, NULL, &out, &err), CM_E_OK);
    assert_string_equal(out->fault_key.module, "driver.sys");
    assert_string_equal(out->fault_key.module_version, "10.0.1");
    assert_string_equal(out->fault_key.module_build_id, in.fault_key.module_build_id);
    assert_int_equal(out->fault_key.offset, 0x1234);
    assert_int_equal(out->fault_key.exception_code, 0xC0000005u);
    assert_int_equal(out->fault_key.exception_subcode, 1);
    assert_int_equal(out->fault_key.frame_count, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(out->fault_key.frames[i].module, frames[i].module);
        assert_int_equal(out->fault_key.frames[i].offset, frames[i].offset);
    }
    assert_int_equal(out->dump_format, PROTO_DUMP_WINDOWS_KERNEL);
    assert_int_equal(out->dump_size_bytes, 1u << 20);
    assert_string_equal(out->meta.annotations[0].key, "channel");
    proto_hint_free(out);

    /* More frames than the limit: refused, naming the field. */
    struct proto_limits lim;
    proto_limits_default(&lim);
    lim.max_frames = 2;
    assert_int_equal(proto_decode_hint(b.data, b.len, &lim, &out, &err), CM_E_LIMIT);
    assert_non_null(strstr(err.msg, "FaultKey.frames"));
    assert_null(out);
    cm_buf_free(&b);
}

static void test_replies_roundtrip(void **state)
{
    (void)state;
    struct cm_err err = { 0 };
    struct cm_buf b;
    cm_buf_init(&b, 0);
    struct proto_ack ack = { .crash_id = "0a0b0c0d-0000-4000-8000-000000000001",
                             .status = PROTO_ACK_RETRY, .retry_after_s = 30,
                             .reason = "spool_full" };
    assert_int_equal(proto_encode_ack(&ack, &b, &err), CM_E_OK);
    struct proto_ack *a = NULL;
    assert_int_equal(proto_decode_ack(b.data, b.len, NULL, &a, &err), CM_E_OK);
    assert_string_equal(a->crash_id, ack.crash_id);
    assert_int_equal(a->status, PROTO_ACK_RETRY);
    assert_int_equal(a->retry_after_s, 30);
    assert_string_equal(a->reason, "spool_full");
    proto_ack_free(a);

    cm_buf_reset(&b);
    struct proto_hint_reply hr = { .want_dump = true, .crash_id = "x", .reason = "first_k",
                                   .retry_after_s = 0, .bucket = "b1" };
    assert_int_equal(proto_encode_hint_reply(&hr, &b, &err), CM_E_OK);
    struct proto_hint_reply *r = NULL;
    assert_int_equal(proto_decode_hint_reply(b.data, b.len, NULL, &r, &err), CM_E_OK);
    assert_true(r->want_dump);
    assert_string_equal(r->crash_id, "x");
    assert_string_equal(r->reason, "first_k");
    assert_string_equal(r->bucket, "b1");
    proto_hint_reply_free(r);

    /* An empty body is a valid message with every field absent. */
    assert_int_equal(proto_decode_ack(NULL, 0, NULL, &a, &err), CM_E_OK);
    assert_int_equal(a->status, PROTO_ACK_UNSPECIFIED);
    assert_string_equal(a->crash_id, "");
    proto_ack_free(a);
    cm_buf_free(&b);
}

static void test_json_replies(void **state)
{
    (void)state;
    struct cm_err err = { 0 };
    struct cm_buf b;
    cm_buf_init(&b, 0);
    struct proto_ack ack = { .crash_id = "id", .status = PROTO_ACK_DUPLICATE,
                             .reason = "a\"b\\c\n\x01" };
    assert_int_equal(proto_ack_json(&ack, &b, &err), CM_E_OK);
    assert_string_equal((char *)b.data,
                        "{\"crash_id\":\"id\",\"status\":\"duplicate\",\"retry_after_s\":0,"
                        "\"reason\":\"a\\\"b\\\\c\\u000a\\u0001\"}");
    cm_buf_reset(&b);
    struct proto_hint_reply hr = { .want_dump = false, .crash_id = NULL, .bucket = "bk" };
    assert_int_equal(proto_hint_reply_json(&hr, &b, &err), CM_E_OK);
    assert_string_equal((char *)b.data, "{\"want_dump\":false,\"crash_id\":\"\",\"reason\":\"\","
                                        "\"retry_after_s\":0,\"bucket\":\"bk\"}");
    cm_buf_free(&b);
}

/* ---- limits ---- */

static void test_limits_at_and_past(void **state)
{
    (void)state;
    struct proto_upload in = sample_upload();
    struct cm_buf b;
    encode_upload(&in, &b);
    struct proto_limits lim;
    proto_limits_default(&lim);
    struct proto_upload *out = NULL;
    struct cm_err err = { 0 };

    /* Body: at the limit decodes, one byte under the size is refused before unpacking. */
    lim.max_body_bytes = b.len;
    assert_int_equal(proto_decode_upload(b.data, b.len, &lim, &out, &err), CM_E_OK);
    proto_upload_free(out);
    lim.max_body_bytes = b.len - 1;
    assert_int_equal(proto_decode_upload(b.data, b.len, &lim, &out, &err), CM_E_LIMIT);
    assert_null(out);
    proto_limits_default(&lim);

    /* Dump size. */
    lim.max_dump_bytes = sizeof sample_dump;
    assert_int_equal(proto_decode_upload(b.data, b.len, &lim, &out, &err), CM_E_OK);
    proto_upload_free(out);
    lim.max_dump_bytes = sizeof sample_dump - 1;
    assert_int_equal(proto_decode_upload(b.data, b.len, &lim, &out, &err), CM_E_LIMIT);
    assert_non_null(strstr(err.msg, "CrashUpload.dump"));
    proto_limits_default(&lim);

    /* Annotation count. */
    lim.max_annotations = 3;
    assert_int_equal(proto_decode_upload(b.data, b.len, &lim, &out, &err), CM_E_OK);
    proto_upload_free(out);
    lim.max_annotations = 2;
    assert_int_equal(proto_decode_upload(b.data, b.len, &lim, &out, &err), CM_E_LIMIT);
    assert_non_null(strstr(err.msg, "annotations"));
    proto_limits_default(&lim);

    /* Annotation size: the longest value is 25 bytes. */
    lim.max_annotation_bytes = strlen(sample_kv[1].value);
    assert_int_equal(proto_decode_upload(b.data, b.len, &lim, &out, &err), CM_E_OK);
    proto_upload_free(out);
    lim.max_annotation_bytes = strlen(sample_kv[1].value) - 1;
    assert_int_equal(proto_decode_upload(b.data, b.len, &lim, &out, &err), CM_E_LIMIT);
    proto_limits_default(&lim);

    /* Other strings: the longest is "20240719" (8 bytes). */
    lim.max_string_bytes = 8;
    assert_int_equal(proto_decode_upload(b.data, b.len, &lim, &out, &err), CM_E_OK);
    proto_upload_free(out);
    lim.max_string_bytes = 7;
    assert_int_equal(proto_decode_upload(b.data, b.len, &lim, &out, &err), CM_E_LIMIT);
    assert_non_null(strstr(err.msg, "CrashMeta.build_id"));
    cm_buf_free(&b);
}

/* A body of a million empty annotation entries: two bytes each on the wire, dozens of bytes
 * each once unpacked. The allocation cap stops it. */
static void test_map_flood_capped(void **state)
{
    (void)state;
    struct cm_buf meta, body;
    cm_buf_init(&meta, 0);
    cm_buf_init(&body, 0);
    for (int i = 0; i < 1000000; i++) {
        put_tag(&meta, 9, 2);
        put_varint(&meta, 0);
    }
    put_bytes(&body, 1, meta.data, meta.len);
    put_bytes(&body, 4, "MDMP", 4);
    struct proto_limits lim;
    proto_limits_default(&lim);
    lim.max_alloc_bytes = 4u << 20; /* twice the body */
    struct proto_upload *out = NULL;
    struct cm_err err = { 0 };
    assert_int_equal(proto_decode_upload(body.data, body.len, &lim, &out, &err), CM_E_LIMIT);
    assert_non_null(strstr(err.msg, "memory"));
    assert_null(out);
    /* With room to unpack, the count limit still refuses it. */
    lim.max_alloc_bytes = 512u << 20;
    assert_int_equal(proto_decode_upload(body.data, body.len, &lim, &out, &err), CM_E_LIMIT);
    assert_non_null(strstr(err.msg, "annotations"));
    cm_buf_free(&meta);
    cm_buf_free(&body);
}

static void test_hostile_wire(void **state)
{
    (void)state;
    struct proto_upload *out = NULL;
    struct cm_err err = { 0 };
    struct cm_buf b;

    /* A dump declaring 2^62 bytes in a 12-byte body. */
    cm_buf_init(&b, 0);
    put_tag(&b, 4, 2);
    put_varint(&b, (uint64_t)1 << 62);
    cm_buf_append(&b, "MDMP", 4, NULL);
    assert_int_equal(proto_decode_upload(b.data, b.len, NULL, &out, &err), CM_E_CORRUPT);
    cm_buf_free(&b);

    /* A varint that never ends. */
    cm_buf_init(&b, 0);
    put_tag(&b, 8, 0);
    for (int i = 0; i < 20; i++)
        cm_buf_append(&b, "\xff", 1, NULL);
    assert_int_equal(proto_decode_upload(b.data, b.len, NULL, &out, &err), CM_E_CORRUPT);
    cm_buf_free(&b);

    /* Wrong wire type for a known field (dump as a varint). */
    cm_buf_init(&b, 0);
    put_tag(&b, 4, 0);
    put_varint(&b, 5);
    assert_int_equal(proto_decode_upload(b.data, b.len, NULL, &out, &err), CM_E_CORRUPT);
    cm_buf_free(&b);

    /* Unknown fields (a newer client) are skipped. Unknown enum values read as unspecified. */
    cm_buf_init(&b, 0);
    put_bytes(&b, 4, "MDMP", 4);
    put_tag(&b, 2, 0);
    put_varint(&b, 99);
    put_bytes(&b, 100, "future", 6);
    put_tag(&b, 101, 0);
    put_varint(&b, 7);
    assert_int_equal(proto_decode_upload(b.data, b.len, NULL, &out, &err), CM_E_OK);
    assert_int_equal(out->dump_format, PROTO_DUMP_UNSPECIFIED);
    proto_upload_free(out);
    cm_buf_free(&b);

    /* No dump. */
    cm_buf_init(&b, 0);
    put_bytes(&b, 5, "x", 1);
    assert_int_equal(proto_decode_upload(b.data, b.len, NULL, &out, &err), CM_E_USAGE);
    cm_buf_free(&b);

    /* Invalid UTF-8 in a string field (and an overlong '/', and a surrogate). */
    const char *bad[] = { "\xff\xfe", "\xc0\xaf", "\xed\xa0\x80" };
    for (size_t i = 0; i < 3; i++) {
        struct cm_buf meta;
        cm_buf_init(&meta, 0);
        cm_buf_init(&b, 0);
        put_bytes(&meta, 2, bad[i], strlen(bad[i]));
        put_bytes(&b, 1, meta.data, meta.len);
        put_bytes(&b, 4, "MDMP", 4);
        assert_int_equal(proto_decode_upload(b.data, b.len, NULL, &out, &err), CM_E_CORRUPT);
        assert_non_null(strstr(err.msg, "CrashMeta.host_id"));
        cm_buf_free(&meta);
        cm_buf_free(&b);
    }
}

/* Every prefix of a valid body decodes or fails cleanly (sanitizer builds check the rest). */
static void test_truncations(void **state)
{
    (void)state;
    struct proto_upload in = sample_upload();
    struct cm_buf b;
    encode_upload(&in, &b);
    size_t ok = 0;
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size, so an over-read is caught */
        memcpy(copy, b.data, n);
        struct proto_upload *out = NULL;
        struct cm_err err = { 0 };
        enum cm_code rc = proto_decode_upload(copy, n, NULL, &out, &err);
        assert_true(rc == CM_E_OK || rc == CM_E_CORRUPT || rc == CM_E_USAGE);
        if (rc == CM_E_OK) {
            assert_non_null(out);
            ok++;
        } else {
            assert_null(out);
            assert_true(strlen(err.msg) > 0);
        }
        proto_upload_free(out);
        free(copy);
    }
    assert_true(ok < b.len); /* most cuts land inside a field */
    cm_buf_free(&b);
}

/* The Nth allocation fails, for every N: NOMEM (or success once N is past the last), no leak. */
static void test_allocation_failures(void **state)
{
    (void)state;
    struct proto_upload in = sample_upload();
    struct cm_buf b;
    encode_upload(&in, &b);
    bool succeeded = false;
    for (unsigned long n = 1; n < 200 && !succeeded; n++) {
        struct proto_upload *out = NULL;
        struct cm_err err = { 0 };
        cm_alloc_fail_after(n);
        enum cm_code rc = proto_decode_upload(b.data, b.len, NULL, &out, &err);
        cm_alloc_fail_after(0);
        if (rc == CM_E_OK) {
            succeeded = true;
            assert_string_equal(out->meta.host_id, "host-42");
        } else {
            assert_int_equal(rc, CM_E_NOMEM);
        }
        proto_upload_free(out);
    }
    assert_true(succeeded);
    cm_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upload_roundtrip),
        cmocka_unit_test(test_absent_fields_are_empty),
        cmocka_unit_test(test_hint_roundtrip),
        cmocka_unit_test(test_replies_roundtrip),
        cmocka_unit_test(test_json_replies),
        cmocka_unit_test(test_limits_at_and_past),
        cmocka_unit_test(test_map_flood_capped),
        cmocka_unit_test(test_hostile_wire),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
