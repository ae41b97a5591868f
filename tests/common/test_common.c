/* test_common.c -- cursor, capped buffer, arena and error helpers. */
#include <string.h>

#include "common/cm_alloc.h"
#include "common/cm_arena.h"
#include "common/cm_buf.h"
#include "common/cm_cur.h"
#include "common/cm_err.h"
#include "common/cm_log.h"
#include "tests/th.h"

static void cursor_reads_and_fails_sticky(void **state)
{
    const uint8_t b[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    struct cm_cur c = cm_cur_make(b, sizeof b);
    uint32_t v32;
    uint64_t v64;
    assert_true(cm_cur_u32le(&c, &v32));
    assert_int_equal(v32, 0x04030201);
    assert_false(cm_cur_u64le(&c, &v64)); /* 5 bytes left: one short */
    assert_int_equal(v64, 0);
    assert_true(c.failed);
    uint8_t v8;
    assert_false(cm_cur_u8(&c, &v8)); /* sticky even though a byte would fit */
}

static void cursor_big_endian(void **state)
{
    const uint8_t b[] = { 0x12, 0x34, 0x56, 0x78 };
    struct cm_cur c = cm_cur_make(b, sizeof b);
    uint32_t v;
    assert_true(cm_cur_u32be(&c, &v));
    assert_int_equal(v, 0x12345678);
}

static void window_rejects_overflow(void **state)
{
    const uint8_t b[16] = { 0 };
    struct cm_cur c = cm_cur_make(b, sizeof b), w;
    assert_true(cm_cur_window(&c, 16, 0, &w));    /* empty window at the end is fine */
    assert_false(cm_cur_window(&c, 17, 0, &w));   /* past the end */
    assert_false(cm_cur_window(&c, 8, 9, &w));    /* one byte too long */
    assert_false(cm_cur_window(&c, UINT64_MAX, 2, &w)); /* would wrap if added */
    assert_false(cm_cur_window(&c, 2, UINT64_MAX, &w));
    assert_true(w.failed);
    assert_true(cm_cur_window(&c, 4, 12, &w));
    assert_int_equal(w.len, 12);
}

static void buf_stops_at_cap(void **state)
{
    struct cm_buf b;
    struct cm_err err = { 0 };
    cm_buf_init(&b, 10);
    assert_int_equal(cm_buf_append(&b, "0123456789", 10, &err), CM_E_OK);
    assert_int_equal(cm_buf_append(&b, "x", 1, &err), CM_E_LIMIT);
    assert_int_equal(err.code, CM_E_LIMIT);
    assert_int_equal(b.len, 10);
    assert_string_equal((char *)b.data, "0123456789");
    cm_buf_free(&b);
}

static void buf_reports_nomem(void **state)
{
    struct cm_buf b;
    cm_buf_init(&b, 0);
    cm_alloc_fail_after(1);
    assert_int_equal(cm_buf_append(&b, "abc", 3, NULL), CM_E_NOMEM);
    cm_alloc_fail_after(0);
    cm_buf_free(&b);
}

static void arena_strings(void **state)
{
    struct cm_arena a = { 0 };
    char *s = cm_arena_printf(&a, "%s-%d", "x", 42);
    assert_string_equal(s, "x-42");
    for (int i = 0; i < 10000; i++)
        assert_non_null(cm_arena_strdup(&a, "a fairly long string to fill several blocks"));
    assert_non_null(cm_arena_alloc(&a, 100000)); /* larger than a block */
    cm_arena_free(&a);
    assert_null(a.head);
}

static void error_names_match_codes(void **state)
{
    struct cm_err err;
    assert_int_equal(cm_fail(&err, CM_E_TRUNCATED, "at offset %d", 12), CM_E_TRUNCATED);
    assert_string_equal(err.msg, "at offset 12");
    assert_string_equal(cm_code_name(CM_E_TRUNCATED), "TRUNCATED");
    assert_string_equal(cm_code_name(CM_E__COUNT), "?");
    assert_int_equal(cm_fail(NULL, CM_E_IO, "ignored"), CM_E_IO);
}

static void log_escape_control_bytes(void **state)
{
    char out[64];
    const char in[] = "a\nb\x1b[31m\\";
    cm_log_escape(in, sizeof in, out, sizeof out);
    assert_string_equal(out, "a\\x0ab\\x1b[31m\\x5c");
    cm_log_escape("abcdef", 6, out, 4);
    assert_string_equal(out, "abc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cursor_reads_and_fails_sticky),
        cmocka_unit_test(cursor_big_endian),
        cmocka_unit_test(window_rejects_overflow),
        cmocka_unit_test(buf_stops_at_cap),
        cmocka_unit_test(buf_reports_nomem),
        cmocka_unit_test(arena_strings),
        cmocka_unit_test(error_names_match_codes),
        cmocka_unit_test(log_escape_control_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
