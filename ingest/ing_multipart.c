/* ing_multipart.c -- splits a multipart/form-data body (RFC 7578, syntax of RFC 2046 section 5.1)
 * into parts: name, filename and Content-Type from each part's headers, and a view of its data.
 * The whole body is in memory and untrusted: every search is bounded by a configured limit
 * (preamble, part headers, part count, part size), the epilogue after the close delimiter is
 * never scanned, and nothing from the body is used as a path. */
#include <string.h>
#include <strings.h>

#include "ingest/ing_int.h"

/* First occurrence of needle (n >= 1 bytes) in hay[0, len), or NULL: memchr for the first byte,
 * then compare (memmem is a GNU extension). */
static const uint8_t *find(const uint8_t *hay, size_t len, const void *needle, size_t n)
{
    const uint8_t *nd = needle, *p = hay, *end = hay + len;
    while ((size_t)(end - p) >= n) {
        p = memchr(p, nd[0], (size_t)(end - p) - n + 1);
        if (!p)
            return NULL;
        if (memcmp(p, nd, n) == 0)
            return p;
        p++;
    }
    return NULL;
}

/* RFC 2046 bchars: DIGIT / ALPHA / "'" / "(" / ")" / "+" / "_" / "," / "-" / "." / "/" / ":" /
 * "=" / "?" / " " (a space not last); 1 to 70 of them. */
static bool bchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("'()+_,-./:=? ", c));
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Reads one header parameter value at p (token or quoted-string); copies it into the arena.
 * *end gets the first byte after it. NULL when malformed or out of memory. */
static const char *param_value(const char *p, const char *limit, struct cm_arena *a,
                               const char **end, size_t *len_out)
{
    if (p < limit && *p == '"') {
        p++;
        size_t cap = (size_t)(limit - p);
        char *d = cm_arena_alloc(a, cap + 1);
        if (!d)
            return NULL;
        size_t n = 0;
        while (p < limit && *p != '"') {
            if (*p == '\\' && p + 1 < limit) /* quoted-pair */
                p++;
            d[n++] = *p++;
        }
        if (p >= limit) /* no closing quote */
            return NULL;
        d[n] = 0;
        *end = p + 1;
        *len_out = n;
        return d;
    }
    const char *s = p;
    while (p < limit && *p != ';' && *p != ' ' && *p != '\t')
        p++;
    *end = p;
    *len_out = (size_t)(p - s);
    return cm_arena_strndup(a, s, (size_t)(p - s));
}

enum ing_reason ing__multipart_boundary(const char *ct, struct cm_arena *a, const char **boundary)
{
    *boundary = NULL;
    if (!ct || !*(ct = skip_ws(ct)))
        return ING_R_NO_CONTENT_TYPE;
    size_t tlen = strcspn(ct, "; \t");
    if (!((tlen == 19 && !strncasecmp(ct, "multipart/form-data", 19)) ||
          (tlen == 15 && !strncasecmp(ct, "multipart/mixed", 15))))
        return ING_R_WRONG_CONTENT_TYPE;
    const char *p = ct + tlen, *limit = ct + strlen(ct);
    while (p < limit) {
        p = skip_ws(p);
        if (*p == ';') {
            p = skip_ws(p + 1);
            continue;
        }
        const char *name = p;
        while (p < limit && *p != '=' && *p != ';')
            p++;
        if (p >= limit || *p != '=')
            break;
        size_t nlen = (size_t)(p - name);
        while (nlen && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t'))
            nlen--;
        const char *end;
        size_t vlen;
        const char *v = param_value(skip_ws(p + 1), limit, a, &end, &vlen);
        if (!v)
            return ING_R_NO_BOUNDARY;
        p = end;
        if (nlen == 8 && !strncasecmp(name, "boundary", 8)) {
            if (vlen == 0 || vlen > 70 || v[vlen - 1] == ' ')
                return ING_R_NO_BOUNDARY;
            for (size_t i = 0; i < vlen; i++)
                if (!bchar((unsigned char)v[i]))
                    return ING_R_NO_BOUNDARY;
            *boundary = v;
            return ING_R_NONE;
        }
    }
    return ING_R_NO_BOUNDARY;
}

/* Content-Disposition: form-data; name="..."; filename="..." (RFC 7578 section 4.2). */
static enum ing_reason disposition(const char *v, const char *limit,
                                   const struct ing_mp_limits *lim, struct cm_arena *a,
                                   struct ing_part *part)
{
    const char *p = v;
    while (p < limit && *p != ';')
        p++;
    while (p < limit) {
        p = skip_ws(p);
        if (p < limit && *p == ';') {
            p++;
            continue;
        }
        const char *name = p;
        while (p < limit && *p != '=' && *p != ';')
            p++;
        if (p >= limit || *p != '=')
            break;
        size_t nlen = (size_t)(p - name);
        while (nlen && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t'))
            nlen--;
        const char *end;
        size_t vlen;
        const char *val = param_value(skip_ws(p + 1), limit, a, &end, &vlen);
        if (!val)
            return ING_R_BAD_STRUCTURE;
        p = end;
        if (nlen == 4 && !strncasecmp(name, "name", 4)) {
            if (vlen > lim->max_name_bytes)
                return ING_R_FIELD_NAME_TOO_LONG;
            for (size_t i = 0; i < vlen; i++) /* names become annotation keys */
                if ((unsigned char)val[i] < 0x20 || val[i] == 0x7f)
                    return ING_R_BAD_FIELD_NAME;
            if (strlen(val) != vlen) /* a NUL inside the quotes */
                return ING_R_BAD_FIELD_NAME;
            part->name = val;
        } else if ((nlen == 8 && !strncasecmp(name, "filename", 8)) ||
                   (nlen == 9 && !strncasecmp(name, "filename*", 9))) {
            part->filename = val; /* only ever tested for presence: never a path */
        }
    }
    return ING_R_NONE;
}

/* Parses the header block [p, end) of one part: lines "Name: value" ending in CRLF. */
static enum ing_reason part_headers(const char *p, const char *end,
                                    const struct ing_mp_limits *lim, struct cm_arena *a,
                                    struct ing_part *part)
{
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (!eol || eol + 1 >= end || eol[1] != '\n')
            return ING_R_BAD_STRUCTURE;
        if (*p == ' ' || *p == '\t') /* obs-fold: refused (RFC 7230 section 3.2.4) */
            return ING_R_BAD_STRUCTURE;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p)
            return ING_R_BAD_STRUCTURE;
        size_t nlen = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        if (nlen == 19 && !strncasecmp(p, "Content-Disposition", 19)) {
            enum ing_reason r = disposition(v, eol, lim, a, part);
            if (r)
                return r;
        } else if (nlen == 12 && !strncasecmp(p, "Content-Type", 12)) {
            size_t vl = (size_t)(eol - v);
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (!(part->content_type = cm_arena_strndup(a, v, vl)))
                return ING_R_INTERNAL;
        }
        p = eol + 2;
    }
    return ING_R_NONE;
}

/* After "--boundary": the close delimiter ("--"), or transport padding and CRLF. Returns the
 * offset of the first byte after it, 0 if what follows makes it no delimiter. */
static size_t after_delimiter(const uint8_t *b, size_t len, size_t pos, bool *close)
{
    *close = false;
    if (len - pos >= 2 && b[pos] == '-' && b[pos + 1] == '-') {
        *close = true;
        return pos + 2;
    }
    size_t pad = 0;
    while (pos < len && (b[pos] == ' ' || b[pos] == '\t') && pad < 64) {
        pos++;
        pad++;
    }
    if (len - pos >= 2 && b[pos] == '\r' && b[pos + 1] == '\n')
        return pos + 2;
    return 0;
}

enum ing_reason ing__multipart_parse(const uint8_t *body, size_t len, const char *boundary,
                                     const struct ing_mp_limits *lim, struct cm_arena *a,
                                     struct ing_part **parts_out, size_t *count_out,
                                     struct cm_err *err)
{
    *parts_out = NULL;
    *count_out = 0;
    size_t blen = strlen(boundary);
    if (blen == 0 || blen > 70)
        return cm_fail(err, CM_E_CORRUPT, "multipart: bad boundary"), ING_R_NO_BOUNDARY;
    char delim[2 + 2 + 70 + 1]; /* CRLF "--" boundary */
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, blen);
    size_t dlen = 4 + blen;
    struct ing_part *parts = cm_arena_calloc(a, lim->max_parts ? lim->max_parts : 1, sizeof *parts);
    if (!parts)
        return cm_fail(err, CM_E_NOMEM, "multipart: cannot allocate parts"), ING_R_INTERNAL;

    /* The first delimiter: at the very start, or after a preamble ending in CRLF. */
    size_t pos;
    bool close;
    if (len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0) {
        pos = dlen - 2;
    } else {
        size_t window = lim->max_preamble_bytes + dlen;
        if (window > len)
            window = len;
        const uint8_t *hit = find(body, window, delim, dlen);
        if (!hit) {
            /* A body that opens with a delimiter line of another boundary has no preamble:
             * its boundary is wrong (Antenna's test_wrong_boundary). */
            bool other = len >= 2 && body[0] == '-' && body[1] == '-';
            if (!other && len > lim->max_preamble_bytes + dlen)
                return cm_fail(err, CM_E_LIMIT, "multipart: no boundary in the first %zu bytes",
                               lim->max_preamble_bytes),
                       ING_R_PREAMBLE_TOO_LARGE;
            return cm_fail(err, CM_E_CORRUPT, "multipart: the boundary never appears"),
                   ING_R_BAD_STRUCTURE;
        }
        pos = (size_t)(hit - body) + dlen;
    }
    size_t count = 0;
    for (;;) {
        size_t next = after_delimiter(body, len, pos, &close);
        if (!next)
            return cm_fail(err, CM_E_CORRUPT, "multipart: malformed delimiter line at %zu", pos),
                   ING_R_BAD_STRUCTURE;
        if (close)
            break; /* the epilogue is ignored without scanning it */
        pos = next;
        if (count == lim->max_parts)
            return cm_fail(err, CM_E_LIMIT, "multipart: more than %zu parts", lim->max_parts),
                   ING_R_TOO_MANY_PARTS;
        struct ing_part *part = &parts[count];

        /* Header block: up to an empty line, within max_part_header_bytes. */
        size_t data_start;
        if (len - pos >= 2 && body[pos] == '\r' && body[pos + 1] == '\n') {
            data_start = pos + 2;
        } else {
            size_t window = lim->max_part_header_bytes + 4;
            if (window > len - pos)
                window = len - pos;
            const uint8_t *hit = find(body + pos, window, "\r\n\r\n", 4);
            if (!hit) {
                if (len - pos > lim->max_part_header_bytes + 4)
                    return cm_fail(err, CM_E_LIMIT,
                                   "multipart: part %zu headers exceed %zu bytes", count + 1,
                                   lim->max_part_header_bytes),
                           ING_R_PART_HEADERS_TOO_LARGE;
                return cm_fail(err, CM_E_TRUNCATED, "multipart: part %zu headers never end",
                               count + 1),
                       ING_R_BAD_STRUCTURE;
            }
            size_t hend = (size_t)(hit - body) + 2; /* keep the last line's CRLF */
            enum ing_reason r = part_headers((const char *)body + pos, (const char *)body + hend,
                                             lim, a, part);
            if (r)
                return cm_fail(err, CM_E_CORRUPT, "multipart: part %zu has bad headers (%s)",
                               count + 1, ing__reason_token(r)),
                       r;
            data_start = hend + 2;
        }

        /* Data: up to the next CRLF "--boundary" that is followed by "--" or CRLF. */
        size_t search = data_start;
        size_t data_end = 0, after = 0;
        while (search <= len) {
            const uint8_t *hit = find(body + search, len - search, delim, dlen);
            if (!hit)
                break;
            size_t at = (size_t)(hit - body);
            bool c;
            if (after_delimiter(body, len, at + dlen, &c)) {
                data_end = at;
                after = at + dlen;
                break;
            }
            search = at + 1;
        }
        if (!after)
            return cm_fail(err, CM_E_TRUNCATED,
                           "multipart: part %zu never ends (no closing boundary)", count + 1),
                   ING_R_BAD_STRUCTURE;
        if (data_end - data_start > lim->max_part_bytes)
            return cm_fail(err, CM_E_LIMIT, "multipart: part %zu of %zu bytes exceeds %zu",
                           count + 1, data_end - data_start, lim->max_part_bytes),
                   ING_R_TOO_LARGE;
        part->data = body + data_start;
        part->len = data_end - data_start;
        count++;
        pos = after;
    }
    *parts_out = parts;
    *count_out = count;
    return ING_R_NONE;
}
