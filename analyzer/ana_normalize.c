/* ana_normalize.c -- function names cleaned for signatures, the way crash tools clean them, so
 * that the same code gives the same frame across builds, compilers and toolchains:
 *   "foo(int, char const*) const"      -> "foo"
 *   "std::vector<int, alloc<int>>::at" -> "std::vector<T>::at"
 *   "`anonymous namespace'::Crash"     -> "(anonymous namespace)::Crash"
 *   "account_check.part.0", ".cold"    -> "account_check"
 *   "core::ptr::drop::h0123456789abcdef" -> "core::ptr::drop"
 *   "__libc_start_main@@GLIBC_2.34"    -> "__libc_start_main" */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "analyzer/ana_int.h"

/* Appends s[0..n) to out, keeping room for the terminator. */
static void put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *o + 1 < cap; i++)
        out[(*o)++] = s[i];
}

static bool is_hex_hash(const char *p, size_t n)
{
    if (n != 17 || p[0] != 'h')
        return false;
    for (size_t i = 1; i < n; i++)
        if (!isxdigit((unsigned char)p[i]))
            return false;
    return true;
}

/* Removes a trailing "(...)" parameter list plus qualifiers after it, keeping "operator()". */
static size_t drop_params(const char *s, size_t n)
{
    size_t end = n;
    /* trailing qualifiers: " const", " volatile", " &", " &&", " noexcept" */
    for (;;) {
        while (end && s[end - 1] == ' ')
            end--;
        static const char *const quals[] = { "const", "volatile", "noexcept", "&&", "&" };
        bool cut = false;
        for (size_t q = 0; q < sizeof quals / sizeof *quals; q++) {
            size_t ql = strlen(quals[q]);
            if (end > ql && strncmp(s + end - ql, quals[q], ql) == 0 &&
                (s[end - ql - 1] == ' ' || s[end - ql - 1] == ')')) {
                end -= ql;
                cut = true;
                break;
            }
        }
        if (!cut)
            break;
    }
    if (end == 0 || s[end - 1] != ')')
        return n;
    int depth = 0;
    for (size_t i = end; i-- > 0;) {
        if (s[i] == ')')
            depth++;
        else if (s[i] == '(' && --depth == 0) {
            if (i >= 8 && strncmp(s + i - 8, "operator", 8) == 0)
                return n; /* "operator()" with no parameter list after it */
            if (i >= 10 && strncmp(s + i - 10, "operator()", 10) == 0)
                return i; /* "operator()(int)" -> "operator()" */
            return i;
        }
    }
    return n;
}

/* Strips clone and version suffixes from the end: .cold, .cold.N, .part.N, .constprop.N,
 * .isra.N, .lto_priv.N, .clone.N, .llvm.N, .localalias, @@GLIBC_x / @GLIBC_x. */
static size_t drop_suffixes(const char *s, size_t n)
{
    const char *at = memchr(s, '@', n);
    if (at && at != s)
        n = (size_t)(at - s);
    for (;;) {
        size_t end = n;
        while (end && isdigit((unsigned char)s[end - 1]))
            end--;
        if (end < n && end && s[end - 1] == '.')
            end--; /* a ".N" number */
        else
            end = n;
        static const char *const sfx[] = { ".cold", ".part", ".constprop", ".isra", ".lto_priv",
                                           ".clone", ".llvm", ".localalias", ".str" };
        bool cut = false;
        for (size_t k = 0; k < sizeof sfx / sizeof *sfx; k++) {
            size_t kl = strlen(sfx[k]);
            if (end > kl && strncmp(s + end - kl, sfx[k], kl) == 0) {
                n = end - kl;
                cut = true;
                break;
            }
        }
        if (!cut)
            return n;
    }
}

size_t ana__normalize_function(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return 0;
    size_t n = strlen(in);
    while (n && isspace((unsigned char)in[n - 1]))
        n--;
    while (n && isspace((unsigned char)*in)) {
        in++;
        n--;
    }
    n = drop_suffixes(in, n);
    n = drop_params(in, n);
    n = drop_suffixes(in, n);
    /* Rust legacy mangling leaves "::h<16 hex>" at the end. */
    if (n > 19 && in[n - 19] == ':' && in[n - 18] == ':' && is_hex_hash(in + n - 17, 17))
        n -= 19;
    int depth = 0;
    bool space = false;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        if (strncmp(in + i, "`anonymous namespace'", 21) == 0 && depth == 0) {
            put(out, cap, &o, "(anonymous namespace)", 21);
            i += 20;
            continue;
        }
        bool op = (i >= 8 && strncmp(in + i - 8, "operator", 8) == 0) ||
                  (i >= 9 && strncmp(in + i - 9, "operator<", 9) == 0);
        if (ch == '<' && !op) {
            if (depth++ == 0)
                put(out, cap, &o, "<T>", 3);
            continue;
        }
        if (ch == '>' && depth > 0) {
            depth--;
            continue;
        }
        if (depth > 0)
            continue;
        if (isspace((unsigned char)ch)) {
            space = true;
            continue;
        }
        if (space && o > 0) {
            put(out, cap, &o, " ", 1);
        }
        space = false;
        put(out, cap, &o, &ch, 1);
    }
    out[o] = 0;
    return o;
}
