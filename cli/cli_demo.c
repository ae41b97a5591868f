/* cli_demo.c -- `triagectl demo [--corpus DIR] [--data DIR] [--serve]`: the whole service on its
 * embedded PostgreSQL, fed with the sample dumps the project makes itself (triage-fixgen) and
 * the shared corpus where it exists, through both upload routes (the native protobuf route for
 * the samples, the Breakpad/Crashpad multipart route for the corpus); it waits until every
 * crash is analyzed, prints the bucket table, and stops (--serve keeps the service running). */
#define _XOPEN_SOURCE 700 /* nftw */
#include <curl/curl.h>
#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "ingest/ing.h"

#define MAX_FILES 4096

struct files {
    char *paths[MAX_FILES];
    size_t count;
};

static void add_file(struct files *f, const char *dir, const char *name)
{
    if (f->count < MAX_FILES) {
        size_t n = strlen(dir) + strlen(name) + 2;
        f->paths[f->count] = malloc(n);
        snprintf(f->paths[f->count++], n, "%s/%s", dir, name);
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Files in dir whose names end with suffix, sorted (so runs are reproducible). */
static void list_dir(struct files *f, const char *dir, const char *suffix, const char *skip_prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t first = f->count;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > sl && strcmp(e->d_name + n - sl, suffix) == 0 &&
            (!skip_prefix || strncmp(e->d_name, skip_prefix, strlen(skip_prefix)) != 0))
            add_file(f, dir, e->d_name);
    }
    closedir(d);
    qsort(f->paths + first, f->count - first, sizeof *f->paths, by_name);
}

static int run_fixgen(const char *bindir, const char *outdir)
{
    char prog[4200];
    snprintf(prog, sizeof prog, "%s/triage-fixgen", bindir);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout))
            _exit(127);
        execl(prog, prog, "samples", outdir, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

/* One Breakpad/Crashpad-style multipart upload, as stock reporters send it. */
static int submit_multipart(const char *url, const char *path, int n, char *crash_id, size_t cap)
{
    CURL *c = curl_easy_init();
    if (!c)
        return 1;
    char endpoint[512], guid[64], answer[256] = "";
    snprintf(endpoint, sizeof endpoint, "%s/submit", url);
    snprintf(guid, sizeof guid, "demo-host-%04d", n);
    curl_mime *mime = curl_mime_init(c);
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, "prod");
    curl_mime_data(part, "CorpusApp", CURL_ZERO_TERMINATED);
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "ver");
    curl_mime_data(part, "1.0", CURL_ZERO_TERMINATED);
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "guid");
    curl_mime_data(part, guid, CURL_ZERO_TERMINATED);
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "upload_file_minidump");
    curl_mime_filedata(part, path);
    curl_mime_type(part, "application/octet-stream");
    curl_easy_setopt(c, CURLOPT_URL, endpoint);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    FILE *mem = fmemopen(answer, sizeof answer - 1, "w");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (mem)
        fclose(mem);
    curl_mime_free(mime);
    curl_easy_cleanup(c);
    answer[strcspn(answer, "\r\n")] = 0;
    if (rc != CURLE_OK || status != 200 || strncmp(answer, "CrashID=", 8) != 0) {
        fprintf(stderr, "demo: %s: /submit answered %ld %s\n", path, status, answer);
        return 1;
    }
    snprintf(crash_id, cap, "%.*s", (int)(cap > 1 ? cap - 1 : 0), answer + 8);
    return 0;
}

static void progress(void *ctx, const struct ing_client_event *ev)
{
    (void)ctx;
    if (ev->final && ev->status != ING_CLIENT_ACCEPTED && ev->status != ING_CLIENT_DUPLICATE)
        fprintf(stderr, "demo: %s: %s %s\n", ev->path, ing_client_status_name(ev->status),
                ev->reason);
    else if (ev->final && (isatty(2) || ev->index == ev->total || ev->index % 50 == 0))
        fprintf(stderr, "%sdemo: uploaded %zu/%zu (native route)%s", isatty(2) ? "\r" : "",
                ev->index, ev->total, isatty(2) ? "" : "\n");
}

/* Waits until no crash is waiting or being analyzed; prints progress. */
static int wait_analyzed(struct cli_service *svc, size_t expected)
{
    struct db_conn *db = NULL;
    struct cm_err err = { 0 };
    if (db_open(svc->conninfo, NULL, &db, &err) != CM_E_OK) {
        fprintf(stderr, "demo: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    for (int i = 0; i < 3000 && !cli_service_stopping(); i++) {
        struct db_status_counts s;
        if (db_crash_status_counts(db, NULL, &s, &err) == CM_E_OK) {
            int64_t finished = s.done + s.failed + s.dead;
            if (isatty(2) || i % 20 == 0)
                fprintf(stderr, "%sdemo: analyzed %lld of %zu (failed %lld, dead %lld)%s",
                        isatty(2) ? "\r" : "", (long long)finished, expected,
                        (long long)s.failed, (long long)s.dead, isatty(2) ? "   " : "\n");
            if (s.received == 0 && s.analyzing == 0 && (size_t)finished >= expected) {
                rc = 0;
                break;
            }
        }
        cli_service_reap(svc);
        struct timespec ts = { 0, 100 * 1000000 };
        nanosleep(&ts, NULL);
    }
    fputc('\n', stderr);
    db_close(db);
    return rc;
}

static void print_buckets(struct cli_service *svc, bool json)
{
    char *argv[] = { "buckets", "--since", "1h", "--top", "50", "--db", svc->conninfo,
                     json ? "--json" : NULL, NULL };
    fflush(stdout);
    cli_buckets(json ? 8 : 7, argv);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : 0; /* best effort; keep going */
}

static void remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int cli_demo(int argc, char **argv)
{
    enum { OPT_CORPUS = CLI_OPT_FREE, OPT_LISTEN, OPT_SERVE, OPT_JSON };
    static const struct option opts[] = {
        { "corpus", required_argument, NULL, OPT_CORPUS },
        { "listen", required_argument, NULL, OPT_LISTEN },
        { "serve", no_argument, NULL, OPT_SERVE },
        { "json", no_argument, NULL, OPT_JSON },
        { "help", no_argument, NULL, 'h' },
        CLI_DB_OPTIONS,
        { NULL, 0, NULL, 0 },
    };
    struct cli_dbopt dbo = { 0 };
    struct cli_service_opts o = { 0 };
    const char *corpus = NULL;
    bool serve = false, json = false;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_CORPUS: corpus = optarg; break;
        case OPT_LISTEN: o.listen = optarg; break;
        case OPT_SERVE: serve = true; break;
        case OPT_JSON: json = true; break;
        case 'h':
            printf("usage: triagectl demo [--corpus DIR] [--data DIR] [--listen H:P] [--serve] "
                   "[--json]\n");
            return 0;
        default:
            if (!cli_db_option(&dbo, ch, optarg))
                return 2;
        }
    }
    /* A fresh data folder unless told otherwise, so the counts are this run's alone. */
    char data[64] = "./triage-demo.XXXXXX";
    if (!dbo.data_dir && !mkdtemp(data)) {
        fprintf(stderr, "demo: cannot create a data folder here: %s\n", strerror(errno));
        return 1;
    }
    chmod(data, 0755); /* the embedded PostgreSQL runs as another user when we are root */
    o.data_dir = dbo.data_dir ? dbo.data_dir : data;
    o.db_url = dbo.db_url;
    char sym1[4200], sym2[4200];
    if (corpus) {
        snprintf(sym1, sizeof sym1, "%s/breakpad/testdata/symbols", corpus);
        snprintf(sym2, sizeof sym2, "%s/elfcores/symbols", corpus);
        cli_symbols_add(&o.symbols, sym1);
        cli_symbols_add(&o.symbols, sym2);
    }
    struct cli_service svc;
    if (cli_service_start(&o, &svc) != 0)
        return 1;
    fprintf(stderr, "demo: service up at %s (data %s)\n", svc.url, svc.data_dir);

    char samples[4200], bindir[4096];
    snprintf(samples, sizeof samples, "%s/samples", svc.data_dir);
    ssize_t bl = readlink("/proc/self/exe", bindir, sizeof bindir - 1);
    bindir[bl > 0 ? bl : 0] = 0;
    *strrchr(bindir, '/') = 0;
    int rc = 0;
    struct files native = { 0 }, multipart = { 0 };
    if (run_fixgen(bindir, samples) != 0) {
        fprintf(stderr, "demo: triage-fixgen could not write the samples\n");
        rc = 1;
        goto out;
    }
    list_dir(&native, samples, ".dmp", NULL);
    list_dir(&native, samples, ".zst", NULL);
    if (corpus) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/breakpad/testdata", corpus);
        list_dir(&multipart, dir, ".dmp", "microdump"); /* microdumps are text, not dumps */
        snprintf(dir, sizeof dir, "%s/elfcores/dumps", corpus);
        list_dir(&multipart, dir, ".zst", NULL);
        snprintf(dir, sizeof dir, "%s/windows-kernel", corpus);
        list_dir(&multipart, dir, ".dmp", NULL);
    }
    struct ing_client_opts co = { .url = svc.url, .product = "DemoApp", .version = "2.4.1",
                                  .host_id = "demo-host", .progress = progress };
    struct ing_client_totals totals = { 0 };
    struct cm_err err = { 0 };
    if (ing_client_upload(&co, native.paths, native.count, &totals, &err) != CM_E_OK) {
        fprintf(stderr, "\ndemo: upload failed: %s\n", err.msg);
        rc = 1;
        goto out;
    }
    if (isatty(2))
        fputc('\n', stderr);
    size_t sent = totals.accepted + totals.duplicate;
    for (size_t i = 0; i < multipart.count && !cli_service_stopping(); i++) {
        char id[64];
        if (submit_multipart(svc.url, multipart.paths[i], (int)i, id, sizeof id) == 0)
            sent++;
        if (isatty(2) || i + 1 == multipart.count || (i + 1) % 50 == 0)
            fprintf(stderr, "%sdemo: uploaded %zu/%zu (multipart route)%s", isatty(2) ? "\r" : "",
                    i + 1, multipart.count, isatty(2) ? "" : "\n");
    }
    if (isatty(2))
        fputc('\n', stderr);
    if (wait_analyzed(&svc, sent) != 0) {
        fprintf(stderr, "demo: not every crash was analyzed; see `triagectl buckets --db '%s'`\n",
                svc.conninfo);
        rc = 1;
    }
    if (!json)
        printf("\n%zu crashes uploaded (%zu samples over the native route, %zu corpus dumps "
               "over the multipart route)\n\n",
               sent, native.count, multipart.count);
    print_buckets(&svc, json);
    fflush(stdout);
    if (serve && !cli_service_stopping()) {
        printf("\nserving at %s until Ctrl-C (data %s)\n", svc.url, svc.data_dir);
        fflush(stdout);
        cli_service_run(&svc);
    }
out:
    cli_service_stop(&svc);
    if (!dbo.data_dir && !serve)
        remove_tree(svc.data_dir); /* the demo's own throwaway folder */
    for (size_t i = 0; i < native.count; i++)
        free(native.paths[i]);
    for (size_t i = 0; i < multipart.count; i++)
        free(multipart.paths[i]);
    return rc;
}
