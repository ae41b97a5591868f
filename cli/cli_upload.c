/* cli_upload.c -- `triagectl upload FILE... --url URL [--product P] [--version V] [--host ID]
 * [--crash-time RFC3339] [--annotation K=V]... [--outbox DIR | --no-outbox] [--json]`: sends
 * dumps to the service's native route through ingest/ing_client.c (zstd, a fresh idempotency key
 * per file kept across retries, jittered backoff honouring Retry-After, an outbox so nothing is
 * lost while the service is down) and shows progress on stderr. By default each dump's fault key
 * goes first as a hint and the dump follows only when the service asks for it
 * (docs/progressive-collection.md); --no-hint uploads every dump in full.
 *
 * Exit status: 0 every file delivered (accepted, duplicate, discarded or counted from its
 * hint); 1 some file rejected
 * or failed; 75 (EX_TEMPFAIL) some file left in the outbox for the next run; 2 usage. */
#include <getopt.h>
#include <jansson.h>
#define OPENSSL_SUPPRESS_DEPRECATED /* the low-level SHA-256 calls: no provider lookup */
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "ingest/ing.h"

#define MAX_ANNOTATIONS 512

static void usage(FILE *f)
{
    fprintf(f,
            "usage: triagectl upload FILE... --url URL [--product P] [--version V] [--host ID]\n"
            "         [--channel C] [--build-id B] [--crash-time RFC3339] [--annotation K=V]...\n"
            "         [--outbox DIR | --no-outbox] [--max-attempts N] [--no-hint] [--json]\n\n"
            "Uploads crash dumps (raw, .zst or .gz) to the service at URL. Each dump's fault key\n"
            "is sent first as a small hint; the dump follows only when the service asks for it\n"
            "(--no-hint: always send the dump). Dumps that cannot be delivered stay in the\n"
            "outbox (default $XDG_STATE_HOME/triagectl/outbox) and are sent first by the next\n"
            "run. --host defaults to an id derived from /etc/machine-id (stable per machine).\n");
}

/* RFC 3339 date-time ("2024-07-19T04:09:00Z", "2024-07-19T06:09:00.5+02:00") to ms since the
 * epoch; -1 if malformed. */
static int64_t parse_rfc3339(const char *s)
{
    int Y, M, D, h, m, sec, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%*[Tt ]%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 || n < 19)
        return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return -1;
    const char *p = s + n;
    int64_t ms = 0;
    if (*p == '.') {
        int64_t scale = 100;
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            ms += (*p - '0') * scale;
    }
    int64_t off_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5 || oh > 23 || om > 59)
            return -1;
        off_s = (oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    struct tm tm = { .tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h,
                     .tm_min = m, .tm_sec = sec };
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    return ((int64_t)t - off_s) * 1000 + ms;
}

struct progress {
    bool quiet;
    json_t *results; /* --json: one object per file */
};

static void on_progress(void *ctx, const struct ing_client_event *ev)
{
    struct progress *p = ctx;
    if (!ev->final) {
        if (!p->quiet)
            fprintf(stderr, "[%zu/%zu] %s: attempt %u failed (%s); retrying in %.1f s\n",
                    ev->index, ev->total, ev->path, ev->attempt, ev->reason,
                    ev->wait_ms / 1000.0);
        return;
    }
    if (!p->quiet) {
        if (ev->crash_id[0])
            fprintf(stderr, "[%zu/%zu] %s: %s %s\n", ev->index, ev->total, ev->path,
                    ing_client_status_name(ev->status), ev->crash_id);
        else
            fprintf(stderr, "[%zu/%zu] %s: %s%s%s\n", ev->index, ev->total, ev->path,
                    ing_client_status_name(ev->status), ev->reason[0] ? ": " : "", ev->reason);
    }
    if (p->results) {
        json_t *o = json_object();
        json_object_set_new(o, "file", json_string(ev->path));
        json_object_set_new(o, "status", json_string(ing_client_status_name(ev->status)));
        json_object_set_new(o, "crash_id", ev->crash_id[0] ? json_string(ev->crash_id)
                                                           : json_null());
        json_object_set_new(o, "reason", json_string(ev->reason));
        json_array_append_new(p->results, o);
    }
}

/* A stable id for this machine when --host is not given: distinct-host counts need one. It is
 * derived from /etc/machine-id through a hash, as systemd advises for application ids, so the
 * machine id itself never leaves the machine. NULL when there is no machine id. */
static const char *default_host(char *buf, size_t n)
{
    FILE *f = fopen("/etc/machine-id", "r");
    if (!f)
        return NULL;
    char id[64] = "";
    bool ok = fgets(id, sizeof id, f) != NULL;
    fclose(f);
    id[strcspn(id, "\r\n")] = 0;
    if (!ok || strlen(id) < 16)
        return NULL;
    char salted[128];
    snprintf(salted, sizeof salted, "triage-host:%s", id);
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, salted, strlen(salted));
    SHA256_Final(d, &ctx);
    size_t o = (size_t)snprintf(buf, n, "mid-");
    for (int i = 0; i < 12 && o + 2 < n; i++, o += 2)
        snprintf(buf + o, n - o, "%02x", d[i]);
    return buf;
}

static char *default_outbox(char *buf, size_t n)
{
    const char *state = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    if (state && *state)
        snprintf(buf, n, "%s/triagectl/outbox", state);
    else if (home && *home)
        snprintf(buf, n, "%s/.local/state/triagectl/outbox", home);
    else
        return NULL;
    return buf;
}

int cli_upload(int argc, char **argv)
{
    static const struct option opts[] = {
        { "url", required_argument, NULL, 'u' },
        { "product", required_argument, NULL, 'p' },
        { "version", required_argument, NULL, 'v' },
        { "host", required_argument, NULL, 'H' },
        { "channel", required_argument, NULL, 'c' },
        { "build-id", required_argument, NULL, 'b' },
        { "crash-time", required_argument, NULL, 't' },
        { "annotation", required_argument, NULL, 'a' },
        { "outbox", required_argument, NULL, 'o' },
        { "no-outbox", no_argument, NULL, 'O' },
        { "max-attempts", required_argument, NULL, 'n' },
        { "json", no_argument, NULL, 'j' },
        { "no-hint", no_argument, NULL, 'N' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct ing_client_opts o = { 0 };
    static struct ing_kv ann[MAX_ANNOTATIONS];
    size_t nann = 0;
    bool json = false, no_outbox = false;
    struct progress prog = { 0 };
    char outbox_buf[4096];
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'u': o.url = optarg; break;
        case 'p': o.product = optarg; break;
        case 'v': o.version = optarg; break;
        case 'H': o.host_id = optarg; break;
        case 'c': o.channel = optarg; break;
        case 'b': o.build_id = optarg; break;
        case 't':
            if ((o.crash_time_unix_ms = parse_rfc3339(optarg)) < 0) {
                fprintf(stderr, "triagectl upload: --crash-time: \"%s\" is not RFC 3339\n",
                        optarg);
                return 2;
            }
            break;
        case 'a': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                fprintf(stderr, "triagectl upload: --annotation wants KEY=VALUE\n");
                return 2;
            }
            if (nann == MAX_ANNOTATIONS) {
                fprintf(stderr, "triagectl upload: at most %d annotations\n", MAX_ANNOTATIONS);
                return 2;
            }
            *eq = 0;
            ann[nann++] = (struct ing_kv){ optarg, eq + 1 };
            break;
        }
        case 'o': o.outbox_dir = optarg; break;
        case 'O': no_outbox = true; break;
        case 'n': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 1000) {
                fprintf(stderr, "triagectl upload: --max-attempts wants 1..1000\n");
                return 2;
            }
            o.max_attempts = (unsigned)v;
            break;
        }
        case 'j': json = true; break;
        case 'N': o.no_hint = true; break;
        case 'q': prog.quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!o.url) {
        fprintf(stderr, "triagectl upload: --url is required\n");
        usage(stderr);
        return 2;
    }
    char host_buf[64];
    if (!o.host_id)
        o.host_id = default_host(host_buf, sizeof host_buf);
    if (no_outbox)
        o.outbox_dir = NULL;
    else if (!o.outbox_dir)
        o.outbox_dir = default_outbox(outbox_buf, sizeof outbox_buf);
    if (optind >= argc && !o.outbox_dir) {
        fprintf(stderr, "triagectl upload: no files\n");
        return 2;
    }
    o.annotations = ann;
    o.annotation_count = nann;
    o.progress = on_progress;
    o.progress_ctx = &prog;
    if (json)
        prog.results = json_array();
    struct ing_client_totals t;
    struct cm_err err = { 0 };
    if (ing_client_upload(&o, argv + optind, (size_t)(argc - optind), &t, &err)) {
        fprintf(stderr, "triagectl upload: %s\n", err.msg);
        json_decref(prog.results);
        return 1;
    }
    if (json) {
        json_t *out = json_pack("{s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "results",
                                prog.results, "totals", "accepted", (json_int_t)t.accepted,
                                "duplicate", (json_int_t)t.duplicate, "discarded",
                                (json_int_t)t.discarded, "rejected", (json_int_t)t.rejected,
                                "queued", (json_int_t)t.queued, "failed", (json_int_t)t.failed,
                                "counted", (json_int_t)t.counted, "bytes_sent",
                                (json_int_t)t.bytes_sent);
        char *s = json_dumps(out, JSON_INDENT(2));
        if (s)
            puts(s);
        free(s);
        json_decref(out);
    }
    if (!prog.quiet)
        fprintf(stderr,
                "%zu accepted, %zu counted from hints, %zu duplicate, %zu discarded, %zu "
                "rejected, %zu queued, %zu failed\n",
                t.accepted, t.counted, t.duplicate, t.discarded, t.rejected, t.queued, t.failed);
    if (t.rejected || t.failed)
        return 1;
    return t.queued ? 75 : 0;
}
