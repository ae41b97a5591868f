/* drill.h -- the fleet drill (issue 5): a simulated fleet of hosts with a realistic baseline of
 * varied crashes over several products and modules, and at T0 a faulty build of a driver-like
 * kernel module that crashes a large share of the Windows hosts, many of them repeatedly (boot
 * loops), over many distinct stacks -- the July 2024 pattern. Every crash is a real dump made by
 * tests/fixgen (user-mode minidumps and Windows kernel triage dumps), different for every host
 * (load addresses, stack contents, annotations, ids), sent through triagectl's upload client
 * (ingest/ing_client.c) with hints on or off.
 *
 *   drill_fleet.c  the fleet model: hosts, the crash schedule, the dump of each crash
 *   drill_send.c   sending a schedule with several client sessions, paced or as fast as possible
 *   drill_main.c   the bench program: starts PostgreSQL and the daemons, runs, reports
 * tests/e2e/test_drill.c runs a scaled-down drill in CI with simulated time.
 *
 * Ownership: what a function hands out is the caller's; free with the matching *_free(). */
#ifndef TRIAGE_DRILL_H
#define TRIAGE_DRILL_H

#include <stdbool.h>
#include <stddef.h> /* size_t */
#include <stdint.h>

#include "common/cm_err.h"
#include "ingest/ing.h"

/* The faulty build: its module and the version the service reports for it (the kernel reader's
 * code id: TimeDateStamp then SizeOfImage, hex). */
#define DRILL_FAULT_MODULE "contoso_sensor.sys"
#define DRILL_FAULT_STAMP 0x66a0c0deu
#define DRILL_GOOD_STAMP 0x6690f2a1u
#define DRILL_FAULT_SIZE 0x1b0000u

struct drill_conf {
    size_t hosts;                 /* fleet size; default 100000 */
    uint64_t seed;                /* everything follows from it; default 1 */
    double windows_share;         /* hosts running Windows (the rest: Linux, macOS, Android);
                                   * default 0.6 */
    double affected_share;        /* Windows hosts that get the faulty build; default 0.4 */
    double loop_mean;             /* mean crashes per affected host (boot loops); default 3 */
    size_t stacks;                /* distinct stacks of the faulty build; default 24 */
    double baseline_per_host_day; /* baseline crashes per host per day; default 0.05 */
    int64_t history_ms;           /* baseline history before T0 (sent first); default 3 h */
    int64_t live_ms;              /* baseline before T0 sent live; default 2 min */
    int64_t after_ms;             /* baseline after T0 (alongside the event); default 10 min */
    int64_t rollout_ms;           /* the faulty build reaches the affected hosts over this;
                                   * default 10 min */
    int64_t loop_interval_ms;     /* between two crashes of a boot loop; default 90 s */
    size_t max_loops;             /* crashes of one host at most; default 10 */
};

/* Fills c with the defaults above. */
void drill_conf_default(struct drill_conf *c);

enum drill_kind {
    DRILL_USER,   /* baseline: a user-mode crash of one of the fleet's products */
    DRILL_KERNEL, /* baseline: a blue screen in one of several third-party drivers */
    DRILL_EVENT,  /* the faulty build's blue screen */
};

struct drill_crash {
    int64_t at_ms;  /* crash time (the endpoint's clock) */
    uint32_t host;  /* 0 .. hosts - 1 */
    uint32_t nth;   /* the host's how-many-th crash of this kind (seeds the dump) */
    uint8_t kind;   /* enum drill_kind */
    uint16_t variant; /* scenario, driver bug or faulty stack */
};

/* The whole schedule relative to t0_ms (the onset), sorted by time: baseline from
 * t0 - history - live to t0 + after, the event from t0 over the rollout and the boot loops.
 * *out owned by the caller (free()). */
enum cm_code drill_schedule(const struct drill_conf *c, int64_t t0_ms, struct drill_crash **out,
                            size_t *count, struct cm_err *err);

/* One crash ready to send: the dump and the metadata the endpoint reports. */
struct drill_dump {
    uint8_t *data;
    size_t len;
    char host[24];
    char product[32], version[32], os[16], os_version[24];
    char region[8], channel[12];
    struct ing_kv ann[2];
    struct ing_client_crash crash; /* points into this struct */
};
/* Builds the dump of k (real bytes from tests/fixgen). Free with drill_dump_free(). */
enum cm_code drill_make(const struct drill_conf *c, const struct drill_crash *k,
                        struct drill_dump *d, struct cm_err *err);
void drill_dump_free(struct drill_dump *d);

/* ---- sending (drill_send.c) ---- */

struct drill_send_opts {
    const char *url;   /* the ingest service */
    bool hints;        /* hint first (default client behaviour) or --no-hint */
    unsigned threads;  /* client sessions in parallel; default 4 */
    bool paced;        /* wait until each crash's time on the wall clock before sending it */
    /* Called by sending threads after each crash (may be NULL); must be thread-safe. */
    void (*progress)(void *ctx, size_t done, size_t total);
    void *progress_ctx;
};

struct drill_stats {
    size_t sent, counted, accepted, duplicate, failed, rejected, other;
    size_t event_sent;            /* of which the faulty build's */
    uint64_t bytes_sent;          /* hints and envelopes, as sent */
    uint64_t envelope_bytes;      /* what --no-hint would send: every crash's envelope once */
    uint64_t dump_bytes;          /* the raw dumps */
    double seconds;               /* wall time of the sending */
    double p50_ms, p99_ms;        /* client-side time per crash (hint, and dump when asked) */
    double max_lag_s;             /* paced: how far sending fell behind the crash times */
};

/* Sends k[0..n) in order with o->threads sessions. ids (may be NULL) gets each crash's id ("" if
 * none was acknowledged). Fails only when no session can be opened. */
enum cm_code drill_send(const struct drill_send_opts *o, const struct drill_conf *c,
                        const struct drill_crash *k, size_t n, char (*ids)[37],
                        struct drill_stats *st, struct cm_err *err);

#endif
