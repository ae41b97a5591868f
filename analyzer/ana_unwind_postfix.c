/* ana_unwind_postfix.c -- Breakpad's postfix expressions, as STACK CFI rules and STACK WIN
 * program strings use them: tokens separated by blanks; numbers (decimal, optionally negative,
 * or 0x hex) and names ($eip, .cfa, $T0, .raSearchStart...) are pushed; + - * / % apply to the
 * two topmost values, @ aligns the lower one down to the upper (a power of two), ^ replaces the
 * top by the word stored at that address, and = (in programs) assigns the top value to the
 * variable below it, which must start with '$'. Values wrap at the cpu's width.
 * Format: Breakpad docs/symbol_files.md ("STACK WIN", "STACK CFI"). */
#include <string.h>

#include "analyzer/ana_unwind_int.h"

#define MAX_DEPTH 64

size_t ana__uw_tokens(const char *s, struct uw_tok *t, size_t max)
{
    size_t n = 0;
    while (*s) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        const char *b = s;
        while (*s && *s != ' ' && *s != '\t')
            s++;
        if (n == max)
            return max + 1;
        t[n++] = (struct uw_tok){ .p = b, .n = (size_t)(s - b) };
    }
    return n;
}

void ana__uw_var_set(struct uw_vars *d, const char *name, size_t len, uint64_t v, bool assigned)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strlen(d->v[i].name) == len && memcmp(d->v[i].name, name, len) == 0) {
            d->v[i].v = v;
            d->v[i].assigned |= assigned;
            return;
        }
    }
    if (d->n == UW_MAX_VARS || len >= sizeof d->v[0].name)
        return;
    memcpy(d->v[d->n].name, name, len);
    d->v[d->n].name[len] = 0;
    d->v[d->n].v = v;
    d->v[d->n].assigned = assigned;
    d->n++;
}

bool ana__uw_var_get(const struct uw *w, const struct uw_vars *d, const char *name, size_t len,
                     uint64_t *out)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strlen(d->v[i].name) == len && memcmp(d->v[i].name, name, len) == 0) {
            *out = d->v[i].v;
            return true;
        }
    }
    if (!d->regs || len == 0 || len >= 24 || name[0] == '.')
        return false;
    char buf[24];
    memcpy(buf, name, len);
    buf[len] = 0;
    int r = ana_reg_by_name(w->cpu, buf);
    if (r < 0 || !ana_ctx_has(&d->regs->regs, r))
        return false;
    *out = d->regs->regs.r[r] & w->mask;
    return true;
}

static bool number(const struct uw_tok *t, uint64_t *out)
{
    const char *p = t->p, *end = t->p + t->n;
    bool neg = false;
    if (p < end && *p == '-') {
        neg = true;
        p++;
    }
    if (p == end)
        return false;
    uint64_t v = 0;
    if (end - p > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        for (p += 2; p < end; p++) {
            unsigned dgt;
            if (*p >= '0' && *p <= '9')
                dgt = (unsigned)(*p - '0');
            else if (*p >= 'a' && *p <= 'f')
                dgt = (unsigned)(*p - 'a' + 10);
            else if (*p >= 'A' && *p <= 'F')
                dgt = (unsigned)(*p - 'A' + 10);
            else
                return false;
            v = v << 4 | dgt;
        }
    } else {
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                return false;
            v = v * 10 + (uint64_t)(*p - '0');
        }
    }
    *out = neg ? (uint64_t)0 - v : v;
    return true;
}

struct slot {
    bool ident;
    struct uw_tok tok;
    uint64_t v;
};

static bool value_of(const struct uw *w, const struct uw_vars *d, const struct slot *s,
                     uint64_t *out)
{
    if (!s->ident) {
        *out = s->v;
        return true;
    }
    return ana__uw_var_get(w, d, s->tok.p, s->tok.n, out);
}

static bool is_op(const struct uw_tok *t, char ch) { return t->n == 1 && t->p[0] == ch; }

bool ana__uw_postfix(const struct uw *w, struct uw_vars *d, const struct uw_tok *t, size_t n,
                     bool assign, uint64_t *value)
{
    struct slot st[MAX_DEPTH];
    size_t sp = 0;
    for (size_t i = 0; i < n; i++) {
        const struct uw_tok *k = &t[i];
        if (k->n == 1 && strchr("+-*/%@", k->p[0])) {
            uint64_t a, b, r;
            if (sp < 2 || !value_of(w, d, &st[sp - 1], &b) || !value_of(w, d, &st[sp - 2], &a))
                return false;
            sp -= 2;
            switch (k->p[0]) {
            case '+': r = a + b; break;
            case '-': r = a - b; break;
            case '*': r = a * b; break;
            case '/':
                if ((b & w->mask) == 0)
                    return false;
                r = (a & w->mask) / (b & w->mask);
                break;
            case '%':
                if ((b & w->mask) == 0)
                    return false;
                r = (a & w->mask) % (b & w->mask);
                break;
            default: /* '@': align down */
                b &= w->mask;
                if (b == 0 || (b & (b - 1)) != 0)
                    return false;
                r = a & ~(b - 1);
                break;
            }
            st[sp++] = (struct slot){ .v = r & w->mask };
        } else if (is_op(k, '^')) {
            uint64_t a, v;
            if (sp < 1 || !value_of(w, d, &st[sp - 1], &a) || !ana__uw_word(w, a & w->mask, &v))
                return false;
            st[sp - 1] = (struct slot){ .v = v & w->mask };
        } else if (is_op(k, '=')) {
            uint64_t v;
            if (!assign || sp < 2 || !value_of(w, d, &st[sp - 1], &v))
                return false;
            const struct slot *target = &st[sp - 2];
            if (!target->ident || target->tok.p[0] != '$')
                return false; /* only variables can be assigned */
            ana__uw_var_set(d, target->tok.p, target->tok.n, v & w->mask, true);
            sp -= 2;
        } else {
            if (sp == MAX_DEPTH)
                return false;
            uint64_t v;
            if (number(k, &v))
                st[sp++] = (struct slot){ .v = v & w->mask };
            else
                st[sp++] = (struct slot){ .ident = true, .tok = *k };
        }
    }
    if (assign)
        return sp == 0;
    return sp == 1 && value_of(w, d, &st[0], value) && ((*value &= w->mask), true);
}
