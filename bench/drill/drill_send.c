/* drill_send.c -- sends a drill schedule through triagectl's upload client (ingest/ing_client.c,
 * one session per thread): threads take crashes in schedule order, build each dump, and send it
 * with hints on or off. Paced, a thread waits until the crash's time comes on the wall clock, so
 * the service sees the fleet as it would live; unpaced, crashes go as fast as the service takes
 * them (their crash times still say when they happened). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/drill/drill.h"
#include "common/cm_alloc.h"

struct shared {
    const struct drill_send_opts *o;
    const struct drill_conf *c;
    const struct drill_crash *k;
    size_t n;
    char (*ids)[37];
    atomic_size_t next, done;
    pthread_mutex_t mu;
    struct drill_stats st;
    float *lat_ms; /* per crash */
    struct cm_err err;
    bool failed;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void wait_until(int64_t at_ms)
{
    for (;;) {
        int64_t left = at_ms - wall_ms();
        if (left <= 0)
            return;
        if (left > 200)
            left = 200;
        struct timespec ts = { 0, (long)left * 1000000L };
        nanosleep(&ts, NULL);
    }
}

static void *worker(void *arg)
{
    struct shared *s = arg;
    struct ing_client_opts co = { .url = s->o->url, .no_hint = !s->o->hints, .max_attempts = 8,
                                  .base_delay_ms = 200, .max_delay_ms = 5000, .timeout_s = 60 };
    struct ing_client *cl = NULL;
    struct cm_err err = { 0 };
    if (ing_client_open(&co, &cl, &err)) {
        pthread_mutex_lock(&s->mu);
        s->failed = true;
        s->err = err;
        pthread_mutex_unlock(&s->mu);
        return NULL;
    }
    struct drill_stats mine = { 0 };
    for (;;) {
        size_t i = atomic_fetch_add(&s->next, 1);
        if (i >= s->n)
            break;
        const struct drill_crash *k = &s->k[i];
        struct drill_dump d;
        if (drill_make(s->c, k, &d, &err)) {
            mine.failed++;
            fprintf(stderr, "drill: crash %zu not made: %s\n", i, err.msg);
            continue;
        }
        if (s->o->paced) {
            wait_until(k->at_ms);
            double lag = (double)(wall_ms() - k->at_ms) / 1000.0;
            if (lag > mine.max_lag_s)
                mine.max_lag_s = lag;
        }
        char id[37], reason[300];
        double t0 = mono_s();
        enum ing_client_status st = ing_client_send(cl, &d.crash, id, reason);
        s->lat_ms[i] = (float)((mono_s() - t0) * 1000.0);
        mine.dump_bytes += d.len;
        drill_dump_free(&d);
        mine.sent++;
        mine.event_sent += k->kind == DRILL_EVENT;
        switch (st) {
        case ING_CLIENT_COUNTED: mine.counted++; break;
        case ING_CLIENT_ACCEPTED: mine.accepted++; break;
        case ING_CLIENT_DUPLICATE: mine.duplicate++; break;
        case ING_CLIENT_REJECTED: mine.rejected++; break;
        case ING_CLIENT_FAILED: case ING_CLIENT_QUEUED: mine.failed++; break;
        default: mine.other++; break;
        }
        if (s->ids)
            snprintf(s->ids[i], 37, "%s", st == ING_CLIENT_COUNTED || st == ING_CLIENT_ACCEPTED ||
                                                  st == ING_CLIENT_DUPLICATE
                                              ? id
                                              : "");
        size_t done = atomic_fetch_add(&s->done, 1) + 1;
        if (s->o->progress)
            s->o->progress(s->o->progress_ctx, done, s->n);
    }
    struct ing_client_totals t;
    ing_client_totals_get(cl, &t);
    ing_client_close(cl);
    pthread_mutex_lock(&s->mu);
    s->st.sent += mine.sent;
    s->st.event_sent += mine.event_sent;
    s->st.counted += mine.counted;
    s->st.accepted += mine.accepted;
    s->st.duplicate += mine.duplicate;
    s->st.rejected += mine.rejected;
    s->st.failed += mine.failed;
    s->st.other += mine.other;
    s->st.dump_bytes += mine.dump_bytes;
    if (mine.max_lag_s > s->st.max_lag_s)
        s->st.max_lag_s = mine.max_lag_s;
    s->st.bytes_sent += t.bytes_sent;
    s->st.envelope_bytes += t.envelope_bytes;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int by_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

enum cm_code drill_send(const struct drill_send_opts *o, const struct drill_conf *c,
                        const struct drill_crash *k, size_t n, char (*ids)[37],
                        struct drill_stats *st, struct cm_err *err)
{
    memset(st, 0, sizeof *st);
    struct shared s = { .o = o, .c = c, .k = k, .n = n, .ids = ids };
    unsigned threads = o->threads ? o->threads : 4;
    if (threads > 64)
        threads = 64;
    pthread_t tid[64];
    s.lat_ms = cm_calloc(n ? n : 1, sizeof *s.lat_ms);
    if (!s.lat_ms)
        return cm_fail(err, CM_E_NOMEM, "drill: out of memory");
    pthread_mutex_init(&s.mu, NULL);
    double t0 = mono_s();
    unsigned started = 0;
    for (; started < threads; started++)
        if (pthread_create(&tid[started], NULL, worker, &s))
            break;
    for (unsigned i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    s.st.seconds = mono_s() - t0;
    enum cm_code rc = CM_E_OK;
    if (!started || (s.failed && s.st.sent == 0))
        rc = cm_fail(err, CM_E_IO, "drill: no client session: %s", s.err.msg);
    if (n) {
        qsort(s.lat_ms, n, sizeof *s.lat_ms, by_float);
        s.st.p50_ms = s.lat_ms[n / 2];
        s.st.p99_ms = s.lat_ms[(size_t)((double)(n - 1) * 0.99)];
    }
    *st = s.st;
    pthread_mutex_destroy(&s.mu);
    cm_free(s.lat_ms);
    return rc;
}
