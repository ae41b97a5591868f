/* cm_cur.h -- bounded reading of untrusted bytes. Every byte from the network, a minidump or a
 * core is read through a cursor; structs are never cast over input. Reads are little-endian
 * unless named otherwise. A failed read sets the sticky `failed` flag and yields zero, so a group
 * of fields can be read and checked once. */
#ifndef TRIAGE_CM_CUR_H
#define TRIAGE_CM_CUR_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

struct cm_cur {
    const uint8_t *p; /* start of the window; never moves */
    size_t len, off;  /* bytes in the window, next byte to read; invariant: off <= len */
    bool failed;      /* sticky: set by the first read that did not fit */
};

static inline struct cm_cur cm_cur_make(const void *p, size_t len)
{
    return (struct cm_cur){ .p = p, .len = p ? len : 0 };
}

static inline size_t cm_cur_left(const struct cm_cur *c) { return c->len - c->off; }

bool cm_cur_u8(struct cm_cur *c, uint8_t *out);
bool cm_cur_u16le(struct cm_cur *c, uint16_t *out);
bool cm_cur_u32le(struct cm_cur *c, uint32_t *out);
bool cm_cur_u64le(struct cm_cur *c, uint64_t *out);
bool cm_cur_u16be(struct cm_cur *c, uint16_t *out);
bool cm_cur_u32be(struct cm_cur *c, uint32_t *out);
bool cm_cur_u64be(struct cm_cur *c, uint64_t *out);
/* Copies n bytes out; on short input fills out with zeros. */
bool cm_cur_bytes(struct cm_cur *c, void *out, size_t n);
/* Points *out at the next n bytes without copying. */
bool cm_cur_view(struct cm_cur *c, size_t n, const uint8_t **out);
bool cm_cur_skip(struct cm_cur *c, size_t n);
/* Moves to an absolute offset inside the window. */
bool cm_cur_seek(struct cm_cur *c, size_t off);

/* The only way to follow an offset read from the input: a sub-window [off, off+size) of c's
 * whole window. Subtracts, never adds, so no overflow. On failure *out is an empty, failed
 * cursor. */
bool cm_cur_window(const struct cm_cur *c, uint64_t off, uint64_t size, struct cm_cur *out);

/* Reads a little-endian value at an absolute offset without moving. */
bool cm_cur_peek_u32le(const struct cm_cur *c, uint64_t off, uint32_t *out);

#endif
