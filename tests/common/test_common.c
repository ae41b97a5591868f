/* test_common.c -- cursor, capped buffer, arena and error helpers. */
#include <stdlib.h>
#include <string.h>

#include "common/cm_alloc.h"
#include "common/cm_arena.h"
#include "common/cm_buf.h"
#include "common/cm_conf.h"
#include "common/cm_cur.h"
#include "common/cm_err.h"
#include "common/cm_log.h"
#include "common/cm_utf8.h"
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

struct conf_t {
    size_t count;
    int64_t wait_ms;
    bool flag;
    char name[8];
    char level[8];
    char *dirs[2];
    size_t dirs_count;
};

static const struct cm_conf_key conf_keys[] = {
    CM_CONF_SZ(struct conf_t, count, "4K", 1, 1 << 20, "a size"),
    CM_CONF_MS(struct conf_t, wait_ms, "2s", 10, 60000, "a duration"),
    CM_CONF_BOOLEAN(struct conf_t, flag, "false", "a flag"),
    CM_CONF_STRING(struct conf_t, name, "abc", "a string"),
    CM_CONF_CHOICE(struct conf_t, level, "info", "debug|info", "a choice"),
    CM_CONF_STRINGS(struct conf_t, dirs, dirs_count, "a list"),
};
static const struct cm_conf conf_table = { conf_keys, sizeof conf_keys / sizeof *conf_keys };

static void conf_defaults_flags_and_errors(void **state)
{
    struct conf_t c = { 0 };
    struct cm_err err = { 0 };
    cm_conf_defaults(&conf_table, &c);
    assert_int_equal(c.count, 4096);
    assert_int_equal(c.wait_ms, 2000);
    assert_false(c.flag);
    assert_string_equal(c.name, "abc");
    char *argv[] = { "--count=1M", "--wait-ms", "250ms", "--flag", "--dirs", "a", "--dirs=b",
                     "--level=debug" };
    assert_int_equal(cm_conf_args(&conf_table, &c, 8, argv, &err), CM_E_OK);
    assert_int_equal(c.count, 1 << 20);
    assert_int_equal(c.wait_ms, 250);
    assert_true(c.flag);
    assert_int_equal(c.dirs_count, 2);
    assert_string_equal(c.dirs[1], "b");
    assert_string_equal(c.level, "debug");
    char *over[] = { "--count=2M" }; /* one past the maximum */
    assert_int_equal(cm_conf_args(&conf_table, &c, 1, over, &err), CM_E_USAGE);
    assert_non_null(strstr(err.msg, "count"));
    char *longname[] = { "--name=abcdefgh" }; /* 8 bytes do not fit 7 + NUL */
    assert_int_equal(cm_conf_args(&conf_table, &c, 1, longname, &err), CM_E_USAGE);
    char *choice[] = { "--level=loud" };
    assert_int_equal(cm_conf_args(&conf_table, &c, 1, choice, &err), CM_E_USAGE);
    char *unknown[] = { "--nope=1" };
    assert_int_equal(cm_conf_args(&conf_table, &c, 1, unknown, &err), CM_E_USAGE);
    char *bare[] = { "--wait_ms=3000" }; /* a bare number is milliseconds */
    assert_int_equal(cm_conf_args(&conf_table, &c, 1, bare, &err), CM_E_OK);
    assert_int_equal(c.wait_ms, 3000);
    char *third[] = { "--dirs=c" }; /* the list holds two */
    assert_int_equal(cm_conf_args(&conf_table, &c, 1, third, &err), CM_E_USAGE);
    const char *path = th_tmp("conf-test.conf");
    const char *text = "# comment\ncount = 8K\n\nbogus = 1\n";
    th_write(path, text, strlen(text));
    assert_int_equal(cm_conf_load(&conf_table, &c, path, &err), CM_E_USAGE);
    assert_non_null(strstr(err.msg, ":4:"));
    assert_int_equal(c.count, 8192); /* lines before the bad one took effect */
    free(c.dirs[0]);
    free(c.dirs[1]);
}

static void utf8_validate_and_clean(void **state)
{
    static const struct { const char *in; size_t n; bool valid; const char *clean; } cases[] = {
        { "plain", 5, true, "plain" },
        { "caf\xc3\xa9", 5, true, "caf\xc3\xa9" },
        { "\xf0\x9f\x92\xa5", 4, true, "\xf0\x9f\x92\xa5" },          /* U+1F4A5 */
        { "\xc0\xaf", 2, false, "\xef\xbf\xbd\xef\xbf\xbd" },       /* overlong '/' */
        { "\xed\xa0\x80", 3, false, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* surrogate */
        { "\xf4\x90\x80\x80", 4, false,
          "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },   /* past U+10FFFF */
        { "a\0b", 3, false, "a\xef\xbf\xbd" "b" },                  /* NUL inside */
        { "\xe2\x82", 2, false, "\xef\xbf\xbd\xef\xbf\xbd" },       /* cut sequence */
    };
    struct cm_arena a = { 0 };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(cm_utf8_valid(cases[i].in, cases[i].n), cases[i].valid);
        assert_string_equal(cm_utf8_clean(&a, cases[i].in, cases[i].n), cases[i].clean);
    }
    cm_arena_free(&a);
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
        cmocka_unit_test(conf_defaults_flags_and_errors),
        cmocka_unit_test(utf8_validate_and_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
