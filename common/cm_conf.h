/* cm_conf.h -- configuration as one table of keys with type, default, minimum and maximum (Redis
 * standardConfig, nginx directives). Precedence: the table's defaults, then a file
 * (--config FILE, `key = value` lines), then flags (--key=value or --key value). An unknown key or
 * an out-of-range value is an error naming the key (and file:line). Sizes take K, M, G suffixes
 * (powers of 1024); durations take ms, s, m, h suffixes and are stored in milliseconds (a bare
 * number is milliseconds: duration keys are named *_ms). */
#ifndef TRIAGE_CM_CONF_H
#define TRIAGE_CM_CONF_H

#include <stddef.h> /* size_t, offsetof */
#include <stdint.h>
#include <stdio.h>  /* FILE */

#include "common/cm_err.h"

enum cm_conf_type {
    CM_CONF_SIZE,     /* size_t: count or bytes */
    CM_CONF_BOOL,     /* bool */
    CM_CONF_STR,      /* char[str_cap] inside the struct */
    CM_CONF_DURATION, /* int64_t milliseconds */
    CM_CONF_LIST,     /* char *[list_cap] plus a size_t count at count_off; repeatable flag */
};

struct cm_conf_key {
    const char *name;
    enum cm_conf_type type;
    size_t off;      /* offset of the field in the config struct */
    size_t cap;      /* STR: bytes of the array; LIST: entries */
    size_t count_off; /* LIST: offset of the size_t count */
    const char *def; /* default, in text form ("" for none) */
    uint64_t min, max; /* SIZE and DURATION (milliseconds) */
    const char *help;
    const char *choices; /* STR: the allowed values, "|"-separated; NULL for any */
};

#define CM_CONF_SZ(type, field, def, min, max, help)                                             \
    { #field, CM_CONF_SIZE, offsetof(type, field), 0, 0, def, min, max, help, NULL }
#define CM_CONF_MS(type, field, def, min, max, help)                                             \
    { #field, CM_CONF_DURATION, offsetof(type, field), 0, 0, def, min, max, help, NULL }
#define CM_CONF_BOOLEAN(type, field, def, help)                                                  \
    { #field, CM_CONF_BOOL, offsetof(type, field), 0, 0, def, 0, 1, help, NULL }
#define CM_CONF_STRING(type, field, def, help)                                                   \
    { #field, CM_CONF_STR, offsetof(type, field), sizeof(((type *)0)->field), 0, def, 0, 0, help, NULL }
#define CM_CONF_CHOICE(type, field, def, choices, help)                                         \
    { #field, CM_CONF_STR, offsetof(type, field), sizeof(((type *)0)->field), 0, def, 0, 0, help, \
      choices }
#define CM_CONF_STRINGS(type, field, count_field, help)                                          \
    { #field, CM_CONF_LIST, offsetof(type, field),                                              \
      sizeof(((type *)0)->field) / sizeof(((type *)0)->field[0]), offsetof(type, count_field), "",\
      0, 0, help, NULL }

struct cm_conf {
    const struct cm_conf_key *keys;
    size_t count;
};

/* Sets every key of the table to its default. */
void cm_conf_defaults(const struct cm_conf *t, void *cfg);
enum cm_code cm_conf_set(const struct cm_conf *t, void *cfg, const char *key, const char *value,
                         struct cm_err *err);
enum cm_code cm_conf_load(const struct cm_conf *t, void *cfg, const char *path,
                          struct cm_err *err);
/* Applies argv (the options only): --config FILE first, then every --key=value / --key value
 * in order; a bool key alone (--key, followed by nothing or another --option) means true.
 * Unknown keys and stray arguments fail. */
enum cm_code cm_conf_args(const struct cm_conf *t, void *cfg, int argc, char **argv,
                          struct cm_err *err);
/* "size", "bool", "string", "duration", "list". */
const char *cm_conf_type_name(enum cm_conf_type t);
/* Prints every key with its type, default and help (for --help and the .conf.example check). */
void cm_conf_usage(const struct cm_conf *t, FILE *f);

#endif
