/* bench_load.c -- a closed-loop HTTP/1.1 load generator for the ingest benchmark: N keep-alive
 * connections, each with one request in flight, posting requests prepared before the clock
 * starts (load.h), one epoll thread. Every response is read whole and judged (the native
 * route's protobuf CrashAck must say ACCEPTED, the multipart route must answer CrashID=bp-,
 * nginx must answer 200), and every latency is kept, so p50 and p99 are exact.
 *
 *   bench_load --url http://127.0.0.1:PORT/PATH --kind native|submit
 *              (--tiny | --dump FILE...) [--zstd | --no-zstd] [--expect native|submit|200]
 *              [--concurrency 1,4,16,64] [--reps N] [--duration S] [--warmup S]
 *              [--pool N] [--cycle] [--requests N] [--between CMD] [--cpu NAME=PID]...
 *              [--label TEXT] [--sources K] [--hosts H] [--seed S] [--header]
 *
 * A run: `--between` (a shell command: the script empties the database and the spool, so every
 * run starts from the same state and the pool's crashes are new again), then `--warmup`
 * seconds, then `--duration` seconds measured: uploads completed in the window per second, the
 * latency from writing a request to having its whole response, the CPU time that each --cpu
 * process (with its direct children) spent in the window per accepted upload, this program's
 * own CPU, and the whole machine's busy share (the machine is shared: what was busy beyond the
 * processes we know is reported as "other"). A run also ends when the pool is used up (unless
 * --cycle); --requests N sends exactly N requests once, with no warm-up and no time limit (the
 * analysis benchmark's upload phase). Runs go rep-major (every concurrency once, then again),
 * so the machine's changing load falls on every level alike.
 *
 * Connection i binds to 127.0.0.(2 + i mod K) with --sources K (default 8), so 64 connections do
 * not run into the collector's per-address cap (max_connections_per_ip, default 32).
 *
 * Output: one TSV line per run on stdout (--header prints the column names first, after '#'). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/service/load.h"
#include "bench/service/svc_util.h"
#include "common/cm_alloc.h"
#include "proto/proto.h"

#define MAX_LEVELS 16
#define MAX_CPU 8
#define MAX_RESPONSE (1u << 20)
#define DRAIN_TIMEOUT_NS (120ull * 1000000000ull)

enum expect { EXPECT_NATIVE, EXPECT_SUBMIT, EXPECT_200 };

struct opts {
    char addr[64], hostport[80], path[512];
    uint16_t port;
    enum load_kind kind;
    int zstd; /* -1: default (zstd for dumps, none for --tiny) */
    bool tiny;
    const char *dumps[LOAD_MAX_DUMPS];
    size_t ndumps;
    unsigned conc[MAX_LEVELS];
    size_t nconc;
    unsigned reps;
    double duration_s, warmup_s;
    size_t pool, requests;
    bool cycle, header;
    int expect; /* -1: from the kind */
    const char *between, *label;
    struct { char name[32]; pid_t pid; } cpu[MAX_CPU];
    size_t ncpu;
    unsigned sources, hosts;
    uint32_t seed;
};

enum cstate { C_CLOSED, C_CONNECTING, C_SENDING, C_READING };

struct conn {
    unsigned index;
    int fd;
    enum cstate st;
    struct iovec iov[LOAD_MAX_IOV];
    int iovcnt, iov_at;
    bool busy; /* a request is in flight */
    uint64_t t_start;
    uint8_t *rbuf;
    size_t rlen, rcap;
};

struct sample {
    double cpu_ms[MAX_CPU];
    double self_ms, busy_ms, total_ms;
};

struct run {
    const struct opts *o;
    const struct load_pool *pool;
    struct conn *c;
    unsigned nconn;
    int ep;
    size_t next, sent;
    bool dispatch;
    uint64_t t_measure, t_end, last_done;
    bool measuring, stopped;
    double *lat;
    size_t nlat, lat_cap;
    size_t ok, dup, bad, errors;
    size_t bad_status[600];
    unsigned bad_printed;
    unsigned inflight;
    struct sample s0, s1;
    uint64_t m_start, m_stop; /* the measured window */
};

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_load --url http://127.0.0.1:PORT/PATH --kind native|submit\n"
            "       (--tiny | --dump FILE...) [--zstd|--no-zstd] [--expect native|submit|200]\n"
            "       [--concurrency 1,4,16,64] [--reps N] [--duration S] [--warmup S]\n"
            "       [--pool N] [--cycle] [--requests N] [--between CMD] [--cpu NAME=PID]...\n"
            "       [--label TEXT] [--sources K] [--hosts H] [--seed S] [--header]\n");
}

static void sample_now(const struct opts *o, struct sample *s)
{
    for (size_t i = 0; i < o->ncpu; i++)
        s->cpu_ms[i] = svc_proc_tree_cpu_ms(o->cpu[i].pid);
    s->self_ms = (double)svc_self_cpu_ns() / 1e6;
    if (!svc_machine_cpu_ms(&s->busy_ms, &s->total_ms))
        s->busy_ms = s->total_ms = 0;
}

/* ---- connections ---- */

static void conn_close(struct run *r, struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->st = C_CLOSED;
    c->rlen = 0;
}

static bool conn_open(struct run *r, struct conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return false;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(r->o->port) };
    inet_pton(AF_INET, r->o->addr, &dst.sin_addr);
    if (r->o->sources && ntohl(dst.sin_addr.s_addr) == INADDR_LOOPBACK) {
        struct sockaddr_in src = { .sin_family = AF_INET };
        src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1 + c->index % r->o->sources);
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0) {
            close(c->fd);
            c->fd = -1;
            return false;
        }
    }
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return false;
    }
    struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
    epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev);
    c->st = C_CONNECTING;
    return true;
}

static void want(struct run *r, struct conn *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };
    epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_send(struct run *r, struct conn *c);

/* Takes the next request of the pool, if the run still issues requests. */
static void conn_next(struct run *r, struct conn *c)
{
    c->busy = false;
    if (!r->dispatch)
        return;
    if (r->next >= r->pool->count) {
        if (!r->o->cycle) {
            r->dispatch = false;
            return;
        }
        r->next = 0;
    }
    if (r->o->requests && r->sent >= r->o->requests) {
        r->dispatch = false;
        return;
    }
    const struct load_req *q = &r->pool->req[r->next++];
    r->sent++;
    memcpy(c->iov, q->iov, sizeof c->iov);
    c->iovcnt = q->iovcnt;
    c->iov_at = 0;
    c->busy = true;
    r->inflight++;
    c->t_start = svc_now_ns();
    c->rlen = 0;
    if (c->fd < 0 && !conn_open(r, c)) {
        r->errors++;
        c->busy = false;
        r->inflight--;
        return;
    }
    if (c->st == C_CLOSED || c->st == C_READING) {
        c->st = C_SENDING;
        conn_send(r, c);
    }
}

/* The request failed on the wire: count it, reconnect for the next one. */
static void conn_fail(struct run *r, struct conn *c)
{
    if (c->busy) {
        r->inflight--;
        r->errors++;
    }
    conn_close(r, c);
    conn_next(r, c);
}

static void conn_send(struct run *r, struct conn *c)
{
    while (c->iov_at < c->iovcnt) {
        ssize_t n = writev(c->fd, c->iov + c->iov_at, c->iovcnt - c->iov_at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want(r, c, EPOLLOUT);
            return;
        }
        if (n <= 0) {
            conn_fail(r, c);
            return;
        }
        size_t left = (size_t)n;
        while (left && c->iov_at < c->iovcnt) {
            struct iovec *v = &c->iov[c->iov_at];
            if (left >= v->iov_len) {
                left -= v->iov_len;
                c->iov_at++;
            } else {
                v->iov_base = (uint8_t *)v->iov_base + left;
                v->iov_len -= left;
                left = 0;
            }
        }
    }
    c->st = C_READING;
    want(r, c, EPOLLIN);
}

/* ---- responses ---- */

/* Length of a complete chunked body starting at p, or 0 while incomplete (no trailers). */
static size_t chunked_len(const uint8_t *p, size_t n)
{
    size_t at = 0;
    for (;;) {
        const uint8_t *eol = memmem(p + at, n - at, "\r\n", 2);
        if (!eol)
            return 0;
        unsigned long size = strtoul((const char *)p + at, NULL, 16);
        at = (size_t)(eol - p) + 2;
        if (size == 0)
            return n - at >= 2 ? at + 2 : 0;
        if (n - at < size + 2)
            return 0;
        at += size + 2;
    }
}

struct response {
    int status;
    const uint8_t *body;
    size_t body_len;
    bool close;
};

/* 1: complete, 0: need more, -1: malformed. */
static int parse_response(const uint8_t *p, size_t n, struct response *out)
{
    const uint8_t *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end)
        return n > 65536 ? -1 : 0;
    size_t head = (size_t)(end - p) + 4;
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0)
        return -1;
    *out = (struct response){ .status = atoi((const char *)p + 9) };
    long clen = -1;
    bool chunked = false;
    /* header lines: name: value */
    const char *line = memchr(p, '\n', head);
    while (line && (size_t)((const uint8_t *)line - p) + 1 < head) {
        line++;
        const char *eol = memchr(line, '\n', head - (size_t)((const uint8_t *)line - p));
        if (!eol)
            break;
        size_t len = (size_t)(eol - line);
        if (len > 15 && !strncasecmp(line, "Content-Length:", 15))
            clen = atol(line + 15);
        else if (len > 18 && !strncasecmp(line, "Transfer-Encoding:", 18) &&
                 memmem(line, len, "chunked", 7))
            chunked = true;
        else if (len > 11 && !strncasecmp(line, "Connection:", 11) && memmem(line, len, "close", 5))
            out->close = true;
        line = eol;
    }
    out->body = p + head;
    if (chunked) {
        size_t b = chunked_len(p + head, n - head);
        if (!b)
            return 0;
        out->body_len = b;
        return 1;
    }
    if (clen < 0)
        clen = 0; /* our servers always say; a body without length would end with the socket */
    if (n - head < (size_t)clen)
        return 0;
    out->body_len = (size_t)clen;
    return 1;
}

/* 0 ok, 1 duplicate, 2 not what was expected. */
static int judge(const struct run *r, const struct response *rs)
{
    int expect = r->o->expect;
    if (expect == EXPECT_200)
        return rs->status == 200 ? 0 : 2;
    if (expect == EXPECT_SUBMIT)
        return rs->status == 200 && rs->body_len >= 47 && !memcmp(rs->body, "CrashID=bp-", 11)
                   ? 0
                   : 2;
    if (rs->status != 202)
        return 2;
    struct proto_ack *ack = NULL;
    int v = 2;
    if (proto_decode_ack(rs->body, rs->body_len, NULL, &ack, NULL) == CM_E_OK) {
        if (ack->status == PROTO_ACK_ACCEPTED && ack->crash_id && strlen(ack->crash_id) == 36)
            v = 0;
        else if (ack->status == PROTO_ACK_DUPLICATE)
            v = 1;
    }
    proto_ack_free(ack);
    return v;
}

static void record(struct run *r, struct conn *c, const struct response *rs, uint64_t now)
{
    r->inflight--;
    r->last_done = now;
    int v = judge(r, rs);
    if (v == 2 && r->bad_printed < 3) {
        r->bad_printed++;
        size_t n = rs->body_len < 160 ? rs->body_len : 160;
        fprintf(stderr, "bench_load: unexpected answer %d: %.*s\n", rs->status, (int)n,
                (const char *)rs->body);
    }
    if (v == 1) {
        r->dup++;
        return;
    }
    if (v == 2) {
        r->bad++;
        r->bad_status[rs->status >= 0 && rs->status < 600 ? rs->status : 0]++;
        return;
    }
    if (r->measuring && !r->stopped) {
        r->ok++;
        if (r->nlat == r->lat_cap) {
            size_t cap = r->lat_cap ? r->lat_cap * 2 : 65536;
            double *l = cm_realloc(r->lat, cap * sizeof *l);
            if (!l)
                return;
            r->lat = l;
            r->lat_cap = cap;
        }
        r->lat[r->nlat++] = (double)(now - c->t_start) / 1e6;
    }
}

static void conn_read(struct run *r, struct conn *c)
{
    for (;;) {
        if (c->rcap - c->rlen < 4096) {
            size_t cap = c->rcap ? c->rcap * 2 : 8192;
            uint8_t *b = cap <= MAX_RESPONSE ? cm_realloc(c->rbuf, cap) : NULL;
            if (!b) {
                conn_fail(r, c);
                return;
            }
            c->rbuf = b;
            c->rcap = cap;
        }
        ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_fail(r, c);
            return;
        }
        c->rlen += (size_t)n;
        struct response rs;
        int p = parse_response(c->rbuf, c->rlen, &rs);
        if (p < 0) {
            conn_fail(r, c);
            return;
        }
        if (p == 0)
            continue;
        uint64_t now = svc_now_ns();
        record(r, c, &rs, now);
        c->busy = false;
        if (rs.close)
            conn_close(r, c);
        conn_next(r, c);
        return;
    }
}

static void on_event(struct run *r, struct conn *c, uint32_t events)
{
    if (c->fd < 0)
        return;
    if (c->st == C_CONNECTING) {
        int e = 0;
        socklen_t len = sizeof e;
        if ((events & (EPOLLERR | EPOLLHUP)) ||
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0 || e != 0) {
            conn_fail(r, c);
            return;
        }
        c->st = C_SENDING;
        conn_send(r, c);
        return;
    }
    if (c->st == C_SENDING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        conn_send(r, c);
        return;
    }
    if (c->st == C_READING && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        conn_read(r, c);
}

/* ---- one run ---- */

static void print_header(const struct opts *o)
{
    printf("#label\ttarget\tkind\tbody_bytes\tconc\trep\tseconds\tok\tdup\tbad\terrors\t"
           "per_s\tmb_per_s\tp50_ms\tp90_ms\tp99_ms\tmax_ms\tmean_ms\tclient_cpu_pct\t"
           "machine_busy_pct\tother_busy_pct\tpool_used_up\tbad_statuses");
    for (size_t i = 0; i < o->ncpu; i++)
        printf("\tcpu_us_%s", o->cpu[i].name);
    printf("\n");
}

static bool run_once(const struct opts *o, const struct load_pool *pool, unsigned conc,
                     unsigned rep)
{
    if (o->between && *o->between) {
        fflush(stdout);
        int st = system(o->between);
        if (st != 0) {
            fprintf(stderr, "bench_load: --between command failed (status %d)\n", st);
            return false;
        }
    }
    struct run r = { .o = o, .pool = pool, .nconn = conc, .dispatch = true };
    r.ep = epoll_create1(EPOLL_CLOEXEC);
    r.c = cm_calloc(conc, sizeof *r.c);
    if (r.ep < 0 || !r.c) {
        fprintf(stderr, "bench_load: out of resources\n");
        return false;
    }
    uint64_t t0 = svc_now_ns();
    bool timed = o->requests == 0;
    r.t_measure = t0 + (uint64_t)(o->warmup_s * 1e9);
    r.t_end = r.t_measure + (uint64_t)(o->duration_s * 1e9);
    if (!timed) { /* --requests: everything is measured, no time limit */
        r.measuring = true;
        r.m_start = t0;
        sample_now(o, &r.s0);
    }
    for (unsigned i = 0; i < conc; i++) {
        r.c[i] = (struct conn){ .index = i, .fd = -1 };
        conn_next(&r, &r.c[i]);
    }
    struct epoll_event evs[64];
    uint64_t drain_deadline = 0;
    for (;;) {
        uint64_t now = svc_now_ns();
        if (timed && !r.measuring && now >= r.t_measure) {
            sample_now(o, &r.s0);
            r.measuring = true;
            r.m_start = now;
        }
        if (timed && r.measuring && !r.stopped && now >= r.t_end) {
            sample_now(o, &r.s1);
            r.stopped = true;
            r.m_stop = now;
            r.dispatch = false;
        }
        if (r.inflight == 0 && !r.dispatch)
            break;
        if (r.inflight == 0 && r.dispatch) { /* every connection failed to start a request */
            for (unsigned i = 0; i < conc && r.dispatch; i++)
                if (!r.c[i].busy)
                    conn_next(&r, &r.c[i]);
            if (r.inflight == 0) {
                fprintf(stderr, "bench_load: cannot reach %s\n", o->hostport);
                break;
            }
        }
        if (!r.dispatch && !drain_deadline)
            drain_deadline = now + DRAIN_TIMEOUT_NS;
        if (drain_deadline && now > drain_deadline) {
            fprintf(stderr, "bench_load: %u requests still unanswered after %llu s\n",
                    r.inflight, DRAIN_TIMEOUT_NS / 1000000000ull);
            r.errors += r.inflight;
            break;
        }
        int n = epoll_wait(r.ep, evs, 64, 5);
        for (int i = 0; i < n; i++)
            on_event(&r, evs[i].data.ptr, evs[i].events);
    }
    bool used_up = !o->cycle && r.next >= pool->count;
    if (!r.stopped) { /* the pool ran out (or --requests): the window ends at the last answer */
        sample_now(o, &r.s1);
        r.m_stop = r.last_done > r.m_start ? r.last_done : svc_now_ns();
        r.stopped = true;
    }
    for (unsigned i = 0; i < conc; i++) {
        conn_close(&r, &r.c[i]);
        cm_free(r.c[i].rbuf);
    }
    close(r.ep);
    cm_free(r.c);

    double secs = r.measuring ? (double)(r.m_stop - r.m_start) / 1e9 : 0;
    struct svc_stats st;
    svc_stats_of(r.lat, r.nlat, &st);
    cm_free(r.lat);
    double wall_ms = secs * 1000;
    double client_ms = r.s1.self_ms - r.s0.self_ms;
    double busy = r.s1.busy_ms - r.s0.busy_ms, total = r.s1.total_ms - r.s0.total_ms;
    double known = client_ms;
    for (size_t i = 0; i < o->ncpu; i++)
        if (r.s0.cpu_ms[i] >= 0 && r.s1.cpu_ms[i] >= 0)
            known += r.s1.cpu_ms[i] - r.s0.cpu_ms[i];
    char bad[256] = "";
    size_t at = 0;
    for (int s = 0; s < 600 && at < sizeof bad - 16; s++)
        if (r.bad_status[s])
            at += (size_t)snprintf(bad + at, sizeof bad - at, "%s%dx%zu", at ? "," : "", s,
                                   r.bad_status[s]);
    printf("%s\t%s\t%s\t%.0f\t%u\t%u\t%.3f\t%zu\t%zu\t%zu\t%zu\t%.1f\t%.2f\t%.3f\t%.3f\t%.3f\t"
           "%.3f\t%.3f\t%.1f\t%.1f\t%.1f\t%d\t%s",
           o->label ? o->label : "-", o->hostport, o->kind == LOAD_NATIVE ? "native" : "submit",
           pool->body_mean, conc, rep, secs, r.ok, r.dup, r.bad, r.errors,
           secs > 0 ? (double)r.ok / secs : 0,
           secs > 0 ? (double)r.ok * pool->body_mean / secs / 1e6 : 0, st.p50, st.p90, st.p99,
           st.max, st.mean, wall_ms > 0 ? client_ms / wall_ms * 100 : 0,
           total > 0 ? busy / total * 100 : 0,
           total > 0 ? (busy - known > 0 ? busy - known : 0) / total * 100 : 0, used_up,
           at ? bad : "-");
    for (size_t i = 0; i < o->ncpu; i++) {
        double d = r.s1.cpu_ms[i] - r.s0.cpu_ms[i];
        printf("\t%.1f", r.ok && r.s0.cpu_ms[i] >= 0 && r.s1.cpu_ms[i] >= 0
                             ? d * 1000.0 / (double)r.ok
                             : -1.0);
    }
    printf("\n");
    fflush(stdout);
    fprintf(stderr, "bench_load: %s c=%u rep=%u: %zu ok in %.2f s = %.0f/s, p50 %.2f ms, "
                    "p99 %.2f ms%s\n",
            o->label ? o->label : o->hostport, conc, rep, r.ok, secs,
            secs > 0 ? (double)r.ok / secs : 0, st.p50, st.p99,
            r.bad || r.errors || r.dup ? " (with failures)" : "");
    return true;
}

/* ---- command line ---- */

static bool parse_url(const char *url, struct opts *o)
{
    const char *p = strncmp(url, "http://", 7) == 0 ? url + 7 : NULL;
    const char *colon = p ? strchr(p, ':') : NULL;
    if (!colon || (size_t)(colon - p) >= sizeof o->addr)
        return false;
    memcpy(o->addr, p, (size_t)(colon - p));
    o->addr[colon - p] = 0;
    char *end = NULL;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (port == 0 || port > 65535 || (*end && *end != '/'))
        return false;
    o->port = (uint16_t)port;
    snprintf(o->path, sizeof o->path, "%s", *end ? end : "/");
    snprintf(o->hostport, sizeof o->hostport, "%s:%lu", o->addr, port);
    struct in_addr a;
    return inet_pton(AF_INET, o->addr, &a) == 1;
}

static bool parse_args(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){ .zstd = -1, .expect = -1, .reps = 1, .duration_s = 10,
                        .warmup_s = 2, .pool = 20000, .sources = 8, .hosts = 1000 };
    bool have_url = false, have_kind = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED()                                                                                 \
    do {                                                                                       \
        if (!v) {                                                                              \
            fprintf(stderr, "bench_load: %s needs a value\n", a);                              \
            return false;                                                                      \
        }                                                                                      \
        i++;                                                                                   \
    } while (0)
        if (!strcmp(a, "--url")) {
            NEED();
            if (!parse_url(v, o)) {
                fprintf(stderr, "bench_load: --url takes http://A.B.C.D:PORT/PATH\n");
                return false;
            }
            have_url = true;
        } else if (!strcmp(a, "--kind")) {
            NEED();
            if (strcmp(v, "native") && strcmp(v, "submit")) {
                fprintf(stderr, "bench_load: --kind is native or submit\n");
                return false;
            }
            o->kind = v[0] == 'n' ? LOAD_NATIVE : LOAD_SUBMIT;
            have_kind = true;
        } else if (!strcmp(a, "--tiny")) {
            o->tiny = true;
        } else if (!strcmp(a, "--dump")) {
            NEED();
            if (o->ndumps == LOAD_MAX_DUMPS) {
                fprintf(stderr, "bench_load: at most %d dumps\n", LOAD_MAX_DUMPS);
                return false;
            }
            o->dumps[o->ndumps++] = v;
            while (i + 1 < argc && argv[i + 1][0] != '-' && o->ndumps < LOAD_MAX_DUMPS)
                o->dumps[o->ndumps++] = argv[++i];
        } else if (!strcmp(a, "--zstd") || !strcmp(a, "--no-zstd")) {
            o->zstd = a[2] == 'z';
        } else if (!strcmp(a, "--expect")) {
            NEED();
            o->expect = !strcmp(v, "native") ? EXPECT_NATIVE
                        : !strcmp(v, "submit") ? EXPECT_SUBMIT
                        : !strcmp(v, "200")    ? EXPECT_200
                                               : -2;
            if (o->expect == -2) {
                fprintf(stderr, "bench_load: --expect is native, submit or 200\n");
                return false;
            }
        } else if (!strcmp(a, "--concurrency")) {
            NEED();
            if (!(o->nconc = svc_parse_list(v, o->conc, MAX_LEVELS))) {
                fprintf(stderr, "bench_load: --concurrency takes a list like 1,4,16,64\n");
                return false;
            }
        } else if (!strcmp(a, "--reps") || !strcmp(a, "--pool") || !strcmp(a, "--requests") ||
                   !strcmp(a, "--sources") || !strcmp(a, "--hosts") || !strcmp(a, "--seed")) {
            NEED();
            char *end = NULL;
            unsigned long x = strtoul(v, &end, 10);
            if (*end || end == v || x > (a[2] == 's' && a[3] == 'e' ? 4000000000ul : 100000000ul)) {
                fprintf(stderr, "bench_load: %s takes a number\n", a);
                return false;
            }
            if (a[2] == 'r' && a[3] == 'e' && a[4] == 'p')
                o->reps = (unsigned)x;
            else if (a[2] == 'p')
                o->pool = x;
            else if (a[2] == 'r')
                o->requests = x;
            else if (a[3] == 'o')
                o->sources = (unsigned)x;
            else if (a[2] == 'h')
                o->hosts = (unsigned)x;
            else
                o->seed = (uint32_t)x;
        } else if (!strcmp(a, "--duration") || !strcmp(a, "--warmup")) {
            NEED();
            char *end = NULL;
            double x = strtod(v, &end);
            if (*end || end == v || x < 0 || x > 86400) {
                fprintf(stderr, "bench_load: %s takes seconds\n", a);
                return false;
            }
            *(a[2] == 'd' ? &o->duration_s : &o->warmup_s) = x;
        } else if (!strcmp(a, "--cycle")) {
            o->cycle = true;
        } else if (!strcmp(a, "--header")) {
            o->header = true;
        } else if (!strcmp(a, "--between")) {
            NEED();
            o->between = v;
        } else if (!strcmp(a, "--label")) {
            NEED();
            o->label = v;
        } else if (!strcmp(a, "--cpu")) {
            NEED();
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || (size_t)(eq - v) >= sizeof o->cpu[0].name || o->ncpu == MAX_CPU ||
                atol(eq + 1) <= 0) {
                fprintf(stderr, "bench_load: --cpu takes NAME=PID (at most %d)\n", MAX_CPU);
                return false;
            }
            memcpy(o->cpu[o->ncpu].name, v, (size_t)(eq - v));
            o->cpu[o->ncpu].name[eq - v] = 0;
            o->cpu[o->ncpu++].pid = (pid_t)atol(eq + 1);
        } else {
            fprintf(stderr, "bench_load: unknown argument %s\n", a);
            return false;
        }
#undef NEED
    }
    if (!have_url || !have_kind || (o->tiny == (o->ndumps > 0))) {
        usage();
        return false;
    }
    if (!o->nconc) {
        o->conc[0] = 1;
        o->nconc = 1;
    }
    if (o->hosts == 0)
        o->hosts = 1;
    if (o->zstd < 0)
        o->zstd = !o->tiny && o->kind == LOAD_NATIVE;
    if (o->zstd && o->kind == LOAD_SUBMIT) {
        fprintf(stderr, "bench_load: --zstd is for the native route\n");
        return false;
    }
    if (o->expect < 0)
        o->expect = o->kind == LOAD_NATIVE ? EXPECT_NATIVE : EXPECT_SUBMIT;
    if (o->requests) {
        o->pool = o->requests;
        o->cycle = false;
        o->nconc = 1;
        o->reps = 1;
    }
    return true;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (!parse_args(argc, argv, &o))
        return 2;
    signal(SIGPIPE, SIG_IGN);
    static struct load_dump dumps[LOAD_MAX_DUMPS];
    size_t nd = 0;
    int rc = 1;
    struct load_pool pool = { 0 };
    if (o.tiny) {
        load_dump_tiny(&dumps[nd++]);
        if (!dumps[0].raw)
            goto out;
    } else {
        for (; nd < o.ndumps; nd++)
            if (!load_dump_read(o.dumps[nd], &dumps[nd]))
                goto out;
    }
    struct load_pool_opts po = { .kind = o.kind, .zstd = o.zstd == 1, .zstd_level = 3,
                                 .host = o.hostport, .path = o.path, .seed = o.seed,
                                 .hosts = o.hosts, .dumps = dumps, .dump_count = nd };
    uint64_t t = svc_now_ns();
    if (!load_pool_build(&po, o.pool, &pool))
        goto out;
    fprintf(stderr, "bench_load: %zu requests built in %.1f s (body %.0f bytes on average)\n",
            pool.count, (double)(svc_now_ns() - t) / 1e9, pool.body_mean);
    if (o.header)
        print_header(&o);
    rc = 0;
    for (unsigned rep = 1; rep <= o.reps && !rc; rep++)
        for (size_t l = 0; l < o.nconc && !rc; l++)
            if (!run_once(&o, &pool, o.conc[l], rep))
                rc = 1;
out:
    load_pool_free(&pool);
    for (size_t i = 0; i < nd; i++)
        load_dump_free(&dumps[i]);
    return rc;
}
