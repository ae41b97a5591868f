/* e2e_harness.c -- see e2e_harness.h. The daemons are the programs the build puts in bin/
 * ($TRIAGE_INGEST, $TRIAGE_ANALYZER and $TRIAGECTL, set by ctest), run as child processes whose
 * stdout and stderr go to a log file in the test's temp folder. */
#define _GNU_SOURCE /* mkdtemp, nftw, pipe2 */
#include "tests/e2e/e2e_harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "common/cm_buf.h"
#include "db/db.h"
#include "proto/proto.h"
#include "tests/db/pg_harness.h"
#include "tests/th.h"

#define MAX_PROCS 64
#define LOG_TAIL_LINES 40

static char temp_root[64];
static PGconn *sql;
static bool test_passed;

struct proc_entry {
    bool used;
    pid_t pid;        /* 0 once reaped */
    char name[32];
    char log[512];
};
static struct proc_entry procs[MAX_PROCS];

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static const char *env_program(const char *var)
{
    const char *p = getenv(var);
    if (!p || !*p)
        fail_msg("%s is not set (run the tests through ctest)", var);
    return p;
}

/* ---- temp folders ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *path)
{
    if (strncmp(path, "/tmp/triage-e2e-", 16) == 0) /* only our own folders */
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Removes everything inside the temp root, keeping the root. */
static void empty_root(void)
{
    if (!temp_root[0])
        return;
    DIR *d = opendir(temp_root);
    if (!d)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(path, sizeof path, "%s/%s", temp_root, e->d_name);
        rm_rf(path);
    }
    closedir(d);
}

/* The guardian: a process in its own session that waits for EOF on a pipe only the test
 * process writes to, then removes the temp root (the test process died, however it died). */
static void start_guardian(void)
{
    int p[2];
    if (pipe(p) != 0)
        fail_msg("pipe: %s", strerror(errno));
    pid_t g = fork();
    if (g < 0)
        fail_msg("fork: %s", strerror(errno));
    if (g == 0) {
        setsid();
        for (int fd = 0; fd < 1024; fd++)
            if (fd != p[0])
                close(fd);
        char b;
        while (read(p[0], &b, 1) != 0 && errno == EINTR)
            ;
        rm_rf(temp_root);
        _exit(0);
    }
    close(p[0]);
    fcntl(p[1], F_SETFD, FD_CLOEXEC); /* held by this process only, never by the daemons */
}

void e2e_tmpdir(const char *label, char *out, size_t n)
{
    static unsigned counter;
    if (!temp_root[0])
        fail_msg("e2e_init() was not called");
    snprintf(out, n, "%s/%s-%u", temp_root, label, ++counter);
    if (mkdir(out, 0700) != 0)
        fail_msg("cannot create %s: %s", out, strerror(errno));
}

/* ---- lifecycle ---- */

static void sql_connect(void)
{
    if (sql)
        PQfinish(sql);
    sql = PQconnectdb(pgh_conninfo());
    if (PQstatus(sql) != CONNECTION_OK)
        fail_msg("cannot connect to the test cluster: %s", PQerrorMessage(sql));
}

void e2e_init(void)
{
    snprintf(temp_root, sizeof temp_root, "/tmp/triage-e2e-XXXXXX");
    if (!mkdtemp(temp_root))
        fail_msg("mkdtemp: %s", strerror(errno));
    start_guardian();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        fail_msg("curl_global_init failed");
    char why[512];
    if (!pgh_start("e2e", why, sizeof why))
        fail_msg("cannot start PostgreSQL: %s", why);
    struct db_conn *db = pgh_connect();
    struct cm_err err = { 0 };
    if (db_migrate(db, NULL, &err) != CM_E_OK)
        fail_msg("cannot migrate the test database: %s", err.msg);
    db_close(db);
    sql_connect();
}

static void print_tail(const char *name, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *lines[LOG_TAIL_LINES] = { 0 };
    size_t count = 0;
    char line[2048];
    while (fgets(line, sizeof line, f)) {
        free(lines[count % LOG_TAIL_LINES]);
        lines[count % LOG_TAIL_LINES] = strdup(line);
        count++;
    }
    fclose(f);
    fprintf(stderr, "---- last lines of %s (%s) ----\n", name, path);
    size_t first = count > LOG_TAIL_LINES ? count - LOG_TAIL_LINES : 0;
    for (size_t i = first; i < count; i++)
        fputs(lines[i % LOG_TAIL_LINES], stderr);
    for (size_t i = 0; i < LOG_TAIL_LINES; i++)
        free(lines[i]);
}

static int reap(struct proc_entry *p, int grace_ms)
{
    int status = 0;
    if (p->pid <= 0)
        return 0;
    kill(p->pid, SIGTERM);
    int64_t deadline = mono_ms() + grace_ms;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid || (r < 0 && errno == ECHILD))
            break;
        if (mono_ms() > deadline) {
            fprintf(stderr, "e2e: %s (pid %d) did not stop in %d ms; killing it\n", p->name,
                    (int)p->pid, grace_ms);
            kill(p->pid, SIGKILL);
            while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        sleep_ms(20);
    }
    p->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void e2e_cleanup(void)
{
    for (size_t i = 0; i < MAX_PROCS; i++)
        if (procs[i].used && procs[i].pid > 0)
            reap(&procs[i], 30000);
    if (!test_passed)
        for (size_t i = 0; i < MAX_PROCS; i++)
            if (procs[i].used)
                print_tail(procs[i].name, procs[i].log);
    /* E2E_LOG_DIR=folder keeps every daemon's whole log there (debugging). */
    const char *keep = getenv("E2E_LOG_DIR");
    for (size_t i = 0; keep && *keep && i < MAX_PROCS; i++)
        if (procs[i].used) {
            char *argv[] = { "/bin/cp", procs[i].log, (char *)keep, NULL };
            th_run(argv, NULL, NULL, 60);
        }
    memset(procs, 0, sizeof procs);
    empty_root();
    test_passed = false;
}

void e2e_passed(void) { test_passed = true; }

void e2e_fini(void)
{
    e2e_cleanup();
    if (sql)
        PQfinish(sql);
    sql = NULL;
    pgh_stop();
    rm_rf(temp_root);
}

/* ---- PostgreSQL ---- */

const char *e2e_pg_conninfo(void) { return pgh_conninfo(); }

PGresult *e2e_sql(const char *q, const char *const *params)
{
    int n = 0;
    while (params && params[n])
        n++;
    char msg[1024] = "";
    for (int attempt = 0; attempt < 50; attempt++) {
        PGresult *res = PQexecParams(sql, q, n, NULL, params, NULL, NULL, 0);
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
            return res;
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(sql));
        PQclear(res);
        if (PQstatus(sql) == CONNECTION_OK)
            break; /* a real error, not a lost connection */
        sleep_ms(200); /* the server restarted: reconnect (it may still be starting) */
        PQreset(sql);
    }
    fail_msg("query failed: %s: %s", q, msg);
    return NULL;
}

long long e2e_sql_int(const char *q, const char *const *params)
{
    PGresult *res = e2e_sql(q, params);
    long long v = PQntuples(res) ? atoll(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return v;
}

void e2e_sql_text(const char *q, const char *const *params, char *out, size_t n)
{
    PGresult *res = e2e_sql(q, params);
    snprintf(out, n, "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
}

void e2e_db_reset(void)
{
    PQclear(e2e_sql("DO $$ DECLARE t text; BEGIN"
                    " SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') INTO t"
                    " FROM pg_tables WHERE schemaname = current_schema()"
                    " AND tablename <> 'schema_migrations';"
                    " IF t IS NOT NULL THEN"
                    "  EXECUTE 'TRUNCATE ' || t || ' RESTART IDENTITY';"
                    " END IF;"
                    " END $$",
                    NULL));
}

void e2e_pg_stop(bool immediate)
{
    struct cm_err err = { 0 };
    if (db_cluster_stop(pgh_cluster(), immediate ? DB_STOP_IMMEDIATE : DB_STOP_FAST, &err) !=
        CM_E_OK)
        fail_msg("cannot stop PostgreSQL: %s", err.msg);
}

void e2e_pg_start(void)
{
    struct cm_err err = { 0 };
    if (db_cluster_restart(pgh_cluster(), DB_STOP_FAST, &err) != CM_E_OK)
        fail_msg("cannot start PostgreSQL again: %s", err.msg);
    PQreset(sql);
}

void e2e_counts(struct e2e_counts *c)
{
    PGresult *res = e2e_sql(
        "SELECT (SELECT count(*) FROM crashes WHERE project = 'default'),"
        " (SELECT count(*) FROM crashes WHERE project = 'default' AND status = 'received'),"
        " (SELECT count(*) FROM crashes WHERE project = 'default' AND status = 'analyzing'),"
        " (SELECT count(*) FROM crashes WHERE project = 'default' AND status = 'done'),"
        " (SELECT count(*) FROM crashes WHERE project = 'default' AND status = 'failed'),"
        " (SELECT count(*) FROM crashes WHERE project = 'default' AND status = 'dead'),"
        " (SELECT count(*) FROM jobs WHERE state = 'ready'),"
        " (SELECT count(*) FROM jobs WHERE state = 'running'),"
        " (SELECT count(*) FROM jobs WHERE state = 'dead')",
        NULL);
    long long *f[] = { &c->total,   &c->received,   &c->analyzing,    &c->done,    &c->failed,
                       &c->dead,    &c->jobs_ready, &c->jobs_running, &c->jobs_dead };
    for (int i = 0; i < 9; i++)
        *f[i] = atoll(PQgetvalue(res, 0, i));
    PQclear(res);
}

void e2e_wait_analyzed(long long expected, int timeout_s, struct e2e_counts *out)
{
    struct e2e_counts c = { 0 };
    int64_t deadline = mono_ms() + (int64_t)timeout_s * 1000;
    for (;;) {
        e2e_counts(&c);
        if (c.total >= expected && c.received == 0 && c.analyzing == 0)
            break;
        if (mono_ms() > deadline)
            fail_msg("queue not drained after %d s: expected %lld crashes; total %lld received "
                     "%lld analyzing %lld done %lld failed %lld dead %lld; jobs ready %lld "
                     "running %lld dead %lld",
                     timeout_s, expected, c.total, c.received, c.analyzing, c.done, c.failed,
                     c.dead, c.jobs_ready, c.jobs_running, c.jobs_dead);
        sleep_ms(200);
    }
    if (out)
        *out = c;
}

/* ---- processes ---- */

static int spawn(const char *name, char *const argv[], const char *log_dir)
{
    int slot = -1;
    for (int i = 0; i < MAX_PROCS && slot < 0; i++)
        if (!procs[i].used)
            slot = i;
    if (slot < 0)
        fail_msg("too many processes for the e2e harness");
    struct proc_entry *p = &procs[slot];
    memset(p, 0, sizeof *p);
    p->used = true;
    snprintf(p->name, sizeof p->name, "%s", name);
    static unsigned started; /* unique log names across the program (E2E_LOG_DIR) */
    snprintf(p->log, sizeof p->log, "%s/%s-%u.log", log_dir, name, ++started);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        /* Never outlive the test program, however it ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != parent)
            _exit(127);
        int log = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (log < 0 || null < 0)
            _exit(127);
        dup2(null, 0);
        dup2(log, 1);
        dup2(log, 2);
        for (int fd = 3; fd < 4096; fd++)
            close(fd);
        signal(SIGPIPE, SIG_DFL);
        execv(argv[0], argv);
        dprintf(2, "e2e: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    return slot;
}

bool e2e_proc_alive(const struct e2e_proc *p)
{
    if (p->slot < 0 || !procs[p->slot].used || procs[p->slot].pid <= 0)
        return false;
    int status;
    pid_t r = waitpid(procs[p->slot].pid, &status, WNOHANG);
    if (r == procs[p->slot].pid) {
        procs[p->slot].pid = 0;
        return false;
    }
    return true;
}

static int proc_stop(struct e2e_proc *p)
{
    if (p->slot < 0 || !procs[p->slot].used)
        return -1;
    int status = reap(&procs[p->slot], 30000);
    p->pid = 0;
    return status;
}

void e2e_proc_kill9(struct e2e_proc *p)
{
    if (p->slot < 0 || !procs[p->slot].used || procs[p->slot].pid <= 0)
        fail_msg("kill -9 of a process that is not running");
    pid_t pid = procs[p->slot].pid;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    procs[p->slot].pid = 0;
    p->pid = 0;
}

/* Reads the whole log of a process. */
static char *read_log(int slot)
{
    FILE *f = fopen(procs[slot].log, "r");
    if (!f)
        return strdup("");
    struct cm_buf b;
    cm_buf_init(&b, 0);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        cm_buf_append(&b, chunk, n, NULL);
    fclose(f);
    if (!b.data)
        return strdup("");
    return (char *)cm_buf_steal(&b, NULL);
}

/* GET path until it answers 200; fails the test when the process dies or the deadline passes. */
static void wait_healthy(struct e2e_proc *p, uint16_t port, int timeout_s)
{
    int64_t deadline = mono_ms() + (int64_t)timeout_s * 1000;
    for (;;) {
        if (!e2e_proc_alive(p)) {
            print_tail(procs[p->slot].name, procs[p->slot].log);
            fail_msg("%s exited before /healthz answered", procs[p->slot].name);
        }
        struct e2e_resp r;
        e2e_http(port, "/healthz", NULL, NULL, 0, &r);
        long status = r.status;
        e2e_resp_free(&r);
        if (status == 200)
            return;
        if (mono_ms() > deadline) {
            print_tail(procs[p->slot].name, procs[p->slot].log);
            fail_msg("%s: /healthz on port %u did not answer 200 within %d s (last %ld)",
                     procs[p->slot].name, (unsigned)port, timeout_s, status);
        }
        sleep_ms(50);
    }
}

#define MAX_ARGS 64

struct args {
    char *v[MAX_ARGS + 1];
    int n;
};

static void arg_add(struct args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg_add(struct args *a, const char *fmt, ...)
{
    if (a->n >= MAX_ARGS)
        fail_msg("too many arguments");
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&a->v[a->n], fmt, ap) < 0)
        fail_msg("out of memory");
    va_end(ap);
    a->v[++a->n] = NULL;
}

static void args_free(struct args *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    a->n = 0;
}

void e2e_ingest_start(struct e2e_ingest *ing, const char *const *extra)
{
    if (!ing->dir[0]) {
        e2e_tmpdir("ingest", ing->dir, sizeof ing->dir);
        snprintf(ing->spool, sizeof ing->spool, "%s/spool", ing->dir);
        ing->port = 0;
    }
    struct args a = { 0 };
    arg_add(&a, "%s", env_program("TRIAGE_INGEST"));
    arg_add(&a, "--listen=127.0.0.1:%u", (unsigned)ing->port);
    arg_add(&a, "--spool_dir=%s", ing->spool);
    arg_add(&a, "--db_url=%s", e2e_pg_conninfo());
    arg_add(&a, "--drain_interval_ms=100");
    arg_add(&a, "--spool_reserve_bytes=0");
    arg_add(&a, "--retry_after_s=1");
    for (size_t i = 0; extra && extra[i]; i++)
        arg_add(&a, "%s", extra[i]);
    ing->proc.slot = spawn("triage-ingest", a.v, ing->dir);
    ing->proc.pid = procs[ing->proc.slot].pid;
    args_free(&a);
    /* "listening on port N" is its first line on stdout, flushed. */
    int64_t deadline = mono_ms() + 60000;
    unsigned port = 0;
    while (port == 0) {
        char *log = read_log(ing->proc.slot);
        const char *p = strstr(log, "listening on port ");
        if (p)
            port = (unsigned)atoi(p + 18);
        free(log);
        if (port)
            break;
        if (!e2e_proc_alive(&ing->proc)) {
            print_tail("triage-ingest", procs[ing->proc.slot].log);
            fail_msg("triage-ingest exited before it listened");
        }
        if (mono_ms() > deadline) {
            print_tail("triage-ingest", procs[ing->proc.slot].log);
            fail_msg("triage-ingest did not listen within 60 s");
        }
        sleep_ms(20);
    }
    ing->port = (uint16_t)port;
    wait_healthy(&ing->proc, ing->port, 60);
}

int e2e_ingest_stop(struct e2e_ingest *ing) { return proc_stop(&ing->proc); }

/* A loopback port free right now (the kernel's pick for port 0). */
static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        fail_msg("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(sa.sin_port);
}

void e2e_analyzer_start(struct e2e_analyzer *an, const char *const *extra)
{
    char dir[256];
    e2e_tmpdir("analyzer", dir, sizeof dir);
    char sym1[4200], sym2[4200];
    snprintf(sym1, sizeof sym1, "%s", th_corpus("breakpad/testdata/symbols"));
    snprintf(sym2, sizeof sym2, "%s", th_corpus("elfcores/symbols"));
    /* The status port is picked here, so another process may take it first: then the analyzer
     * exits at once and we try another. */
    for (int attempt = 0;; attempt++) {
        an->port = free_port();
        struct args a = { 0 };
        arg_add(&a, "%s", env_program("TRIAGE_ANALYZER"));
        arg_add(&a, "--db_url=%s", e2e_pg_conninfo());
        arg_add(&a, "--symbols=%s", sym1);
        arg_add(&a, "--symbols=%s", sym2);
        arg_add(&a, "--listen=127.0.0.1:%u", (unsigned)an->port);
        arg_add(&a, "--idle_poll_ms=100ms");
        arg_add(&a, "--sweep_ms=500ms");
        for (size_t i = 0; extra && extra[i]; i++)
            arg_add(&a, "%s", extra[i]);
        an->proc.slot = spawn("triage-analyzer", a.v, dir);
        an->proc.pid = procs[an->proc.slot].pid;
        args_free(&a);
        sleep_ms(100);
        if (e2e_proc_alive(&an->proc) || attempt == 4)
            break;
    }
    wait_healthy(&an->proc, an->port, 60);
}

int e2e_analyzer_stop(struct e2e_analyzer *an) { return proc_stop(&an->proc); }

/* ---- HTTP ---- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct cm_buf *b = arg;
    return cm_buf_append(b, p, size * nmemb, NULL) == CM_E_OK ? size * nmemb : 0;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    long *retry_after = arg;
    size_t n = size * nmemb;
    if (n > 12 && !strncasecmp(p, "Retry-After:", 12))
        *retry_after = atol(p + 12);
    return n;
}

void e2e_http(uint16_t port, const char *path, const char *const *headers, const void *body,
              size_t n, struct e2e_resp *r)
{
    memset(r, 0, sizeof *r);
    r->retry_after = -1;
    struct cm_buf b;
    cm_buf_init(&b, 0);
    cm_buf_append(&b, "", 0, NULL);
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(r->error, sizeof r->error, "curl_easy_init failed");
        r->body = (char *)cm_buf_steal(&b, &r->len);
        return;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->retry_after);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK)
        snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(cc));
    else
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    r->body = (char *)cm_buf_steal(&b, &r->len);
}

void e2e_resp_free(struct e2e_resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* ---- bodies ---- */

uint8_t *e2e_gzip(const void *in, size_t n, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t bound = deflateBound(&zs, (uLong)n) + 64;
    uint8_t *out = malloc(bound);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)bound;
    int rc = deflate(&zs, Z_FINISH);
    *out_len = bound - zs.avail_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

uint8_t *e2e_zstd(const void *in, size_t n, size_t *out_len)
{
    size_t bound = ZSTD_compressBound(n);
    uint8_t *out = malloc(bound);
    size_t z = ZSTD_compress(out, bound, in, n, 3);
    if (ZSTD_isError(z)) {
        free(out);
        return NULL;
    }
    *out_len = z;
    return out;
}

void e2e_envelope(const struct e2e_upload *u, const uint8_t *dump, size_t n, int compression,
                  uint8_t **out, size_t *out_len)
{
    struct proto_upload m = { 0 };
    m.meta = (struct proto_meta){ .idempotency_key = u->idempotency_key ? u->idempotency_key : "",
                                  .host_id = u->host_id ? u->host_id : "",
                                  .product = u->product ? u->product : "e2e",
                                  .version = u->version ? u->version : "1.0",
                                  .channel = "", .os = "", .os_version = "", .build_id = "",
                                  .cpu_arch = "" };
    m.compression = (enum proto_compression)compression;
    m.dump = dump;
    m.dump_len = n;
    m.hint_crash_id = "";
    struct cm_buf b;
    cm_buf_init(&b, 0);
    if (proto_encode_upload(&m, &b, NULL) != CM_E_OK) {
        cm_buf_free(&b);
        *out = NULL;
        *out_len = 0;
        return;
    }
    *out = cm_buf_steal(&b, out_len);
}

void e2e_reply_reason(const struct e2e_resp *r, bool native, char *out, size_t n)
{
    out[0] = 0;
    if (native) {
        struct proto_ack *ack = NULL;
        if (proto_decode_ack((const uint8_t *)r->body, r->len, NULL, &ack, NULL) == CM_E_OK) {
            snprintf(out, n, "%s", ack->reason ? ack->reason : "");
            proto_ack_free(ack);
        }
        return;
    }
    const char *p = r->body ? strstr(r->body, "Discarded=") : NULL;
    if (p) {
        p += 10;
        snprintf(out, n, "%.*s", (int)strcspn(p, "\r\n"), p);
    }
}

static void mp_field(struct cm_buf *b, const char *boundary, const char *name, const char *value)
{
    cm_buf_printf(b, NULL, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n",
                  boundary, name, value);
}

static void upload_native(uint16_t port, struct e2e_upload *u)
{
    const uint8_t *dump = u->dump;
    size_t n = u->dump_len;
    uint8_t *owned = NULL;
    int comp = PROTO_COMP_NONE;
    if (u->enc == E2E_ZSTD) {
        comp = PROTO_COMP_ZSTD;
        if (u->zst) {
            dump = u->zst;
            n = u->zst_len;
        } else {
            dump = owned = e2e_zstd(u->dump, u->dump_len, &n);
        }
    } else if (u->enc == E2E_GZIP) {
        comp = PROTO_COMP_GZIP;
        dump = owned = e2e_gzip(u->dump, u->dump_len, &n);
    }
    uint8_t *body = NULL;
    size_t body_len = 0;
    if (dump)
        e2e_envelope(u, dump, n, comp, &body, &body_len);
    free(owned);
    if (!body) {
        snprintf(u->error, sizeof u->error, "cannot build the envelope");
        return;
    }
    static const char *const hdrs[] = { "Content-Type: application/x-protobuf", NULL };
    struct e2e_resp r;
    e2e_http(port, "/api/v1/crashes", hdrs, body, body_len, &r);
    free(body);
    u->status = r.status;
    snprintf(u->error, sizeof u->error, "%s", r.error);
    struct proto_ack *ack = NULL;
    if (r.status && proto_decode_ack((const uint8_t *)r.body, r.len, NULL, &ack, NULL) == CM_E_OK) {
        bool ok = r.status == 202 &&
                  (ack->status == PROTO_ACK_ACCEPTED || ack->status == PROTO_ACK_DUPLICATE) &&
                  ack->crash_id && strlen(ack->crash_id) == 36;
        if (ok) {
            u->accepted = true;
            u->duplicate = ack->status == PROTO_ACK_DUPLICATE;
            snprintf(u->crash_id, sizeof u->crash_id, "%s", ack->crash_id);
        }
        snprintf(u->reason, sizeof u->reason, "%s", ack->reason ? ack->reason : "");
        proto_ack_free(ack);
    }
    e2e_resp_free(&r);
}

static void upload_submit(uint16_t port, struct e2e_upload *u)
{
    uint32_t rnd[2] = { 0 };
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd[0] = (uint32_t)mono_ms();
    char boundary[64];
    snprintf(boundary, sizeof boundary, "---MultipartBoundary-%08x%08x---", rnd[0], rnd[1]);
    struct cm_buf b;
    cm_buf_init(&b, 0);
    mp_field(&b, boundary, "prod", u->product ? u->product : "e2e");
    mp_field(&b, boundary, "ver", u->version ? u->version : "1.0");
    if (u->host_id)
        mp_field(&b, boundary, "guid", u->host_id);
    const uint8_t *dump = u->dump;
    size_t n = u->dump_len;
    const char *ctype = "application/octet-stream";
    if (u->enc == E2E_ZSTD && u->zst) {
        dump = u->zst;
        n = u->zst_len;
        ctype = "application/zstd";
    }
    cm_buf_printf(&b, NULL,
                  "--%s\r\nContent-Disposition: form-data; name=\"upload_file_minidump\"; "
                  "filename=\"upload.dmp\"\r\nContent-Type: %s\r\n\r\n",
                  boundary, ctype);
    cm_buf_append(&b, dump, n, NULL);
    cm_buf_printf(&b, NULL, "\r\n--%s--\r\n", boundary);
    char ct[128];
    snprintf(ct, sizeof ct, "Content-Type: multipart/form-data; boundary=%s", boundary);
    const char *hdrs[] = { ct, NULL, NULL };
    const uint8_t *body = b.data;
    size_t body_len = b.len;
    uint8_t *gz = NULL;
    if (u->enc == E2E_GZIP) {
        body = gz = e2e_gzip(b.data, b.len, &body_len);
        hdrs[1] = "Content-Encoding: gzip";
    }
    struct e2e_resp r;
    if (body) {
        e2e_http(port, "/submit", hdrs, body, body_len, &r);
    } else {
        memset(&r, 0, sizeof r);
        snprintf(r.error, sizeof r.error, "cannot compress the body");
    }
    free(gz);
    cm_buf_free(&b);
    u->status = r.status;
    snprintf(u->error, sizeof u->error, "%s", r.error);
    const char *id = r.body ? strstr(r.body, "CrashID=bp-") : NULL;
    if (r.status == 200 && id && strlen(id + 11) >= 36) {
        u->accepted = true;
        snprintf(u->crash_id, sizeof u->crash_id, "%.36s", id + 11);
    } else if (r.body) {
        e2e_reply_reason(&r, false, u->reason, sizeof u->reason);
    }
    e2e_resp_free(&r);
}

void e2e_upload(uint16_t port, struct e2e_upload *u)
{
    u->status = 0;
    u->accepted = u->duplicate = false;
    u->crash_id[0] = u->reason[0] = u->error[0] = 0;
    if (u->route == E2E_NATIVE)
        upload_native(port, u);
    else
        upload_submit(port, u);
}

struct many {
    uint16_t port;
    struct e2e_upload *u;
    size_t n;
    atomic_size_t next;
};

static void *many_thread(void *arg)
{
    struct many *m = arg;
    for (size_t i; (i = atomic_fetch_add(&m->next, 1)) < m->n;)
        e2e_upload(m->port, &m->u[i]);
    return NULL;
}

void e2e_upload_many(uint16_t port, struct e2e_upload *u, size_t n, unsigned threads)
{
    struct many m = { .port = port, .u = u, .n = n };
    atomic_init(&m.next, 0);
    if (threads < 1)
        threads = 1;
    if (threads > 32)
        threads = 32;
    pthread_t t[32];
    unsigned started = 0;
    for (; started < threads; started++)
        if (pthread_create(&t[started], NULL, many_thread, &m) != 0)
            break;
    if (started == 0)
        many_thread(&m);
    for (unsigned i = 0; i < started; i++)
        pthread_join(t[i], NULL);
}

/* ---- the corpus ---- */

static struct e2e_dump *corpus;
static size_t corpus_count;

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Corpus-relative names in sub ending with suffix (not starting with skip), sorted. */
static void list_corpus(const char *sub, const char *suffix, const char *skip, char ***names,
                        size_t *count)
{
    const char *dir = th_corpus(sub);
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot list %s: %s", dir, strerror(errno));
    size_t first = *count, sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len <= sl || strcmp(e->d_name + len - sl, suffix) != 0)
            continue;
        if (skip && strncmp(e->d_name, skip, strlen(skip)) == 0)
            continue;
        *names = realloc(*names, (*count + 1) * sizeof **names);
        if (asprintf(&(*names)[*count], "%s/%s", sub, e->d_name) < 0)
            fail_msg("out of memory");
        (*count)++;
    }
    closedir(d);
    qsort(*names + first, *count - first, sizeof **names, by_name);
}

static uint8_t *unzstd(const uint8_t *in, size_t n, size_t *out_len)
{
    ZSTD_DStream *ds = ZSTD_createDStream();
    struct cm_buf b;
    cm_buf_init(&b, 0);
    ZSTD_inBuffer ib = { in, n, 0 };
    uint8_t chunk[1 << 16];
    size_t rc = 1;
    while (ib.pos < ib.size || rc != 0) {
        ZSTD_outBuffer ob = { chunk, sizeof chunk, 0 };
        rc = ZSTD_decompressStream(ds, &ob, &ib);
        if (ZSTD_isError(rc))
            fail_msg("zstd: %s", ZSTD_getErrorName(rc));
        cm_buf_append(&b, chunk, ob.pos, NULL);
        if (ib.pos == ib.size && ob.pos == 0 && rc != 0)
            fail_msg("zstd: truncated input");
    }
    ZSTD_freeDStream(ds);
    return cm_buf_steal(&b, out_len);
}

int e2e_triagectl(const char *const *args, char **out)
{
    const char *argv[32];
    size_t n = 0;
    argv[n++] = th_triagectl();
    for (size_t i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return th_run((char *const *)argv, out, NULL, 120);
}

static void offline(struct e2e_dump *d)
{
    char sym1[4200], sym2[4200], file[4200];
    snprintf(sym1, sizeof sym1, "%s", th_corpus("breakpad/testdata/symbols"));
    snprintf(sym2, sizeof sym2, "%s", th_corpus("elfcores/symbols"));
    snprintf(file, sizeof file, "%s", th_corpus(d->rel));
    const char *args[] = { "stackwalk", "--json", "--symbols", sym1, "--symbols", sym2, file,
                           NULL };
    char *out = NULL;
    int rc = e2e_triagectl(args, &out);
    if (rc != 0)
        fail_msg("triagectl stackwalk %s exited %d", d->rel, rc);
    json_error_t jerr;
    json_t *o = json_loads(out, JSON_DISABLE_EOF_CHECK, &jerr);
    if (!o)
        fail_msg("triagectl stackwalk --json %s: not JSON: %s", d->rel, jerr.text);
    const char *bucket = json_string_value(json_object_get(o, "bucket"));
    const char *sig = json_string_value(json_object_get(o, "signature"));
    if (!bucket || !*bucket || !sig)
        fail_msg("triagectl stackwalk --json %s: no bucket", d->rel);
    snprintf(d->bucket, sizeof d->bucket, "%s", bucket);
    snprintf(d->signature, sizeof d->signature, "%s", sig);
    json_decref(o);
    free(out);
}

const struct e2e_dump *e2e_corpus(size_t *count)
{
    if (corpus) {
        *count = corpus_count;
        return corpus;
    }
    char **names = NULL;
    size_t n = 0;
    list_corpus("breakpad/testdata", ".dmp", "microdump", &names, &n); /* microdumps are text */
    list_corpus("elfcores/dumps", ".zst", NULL, &names, &n);
    list_corpus("windows-kernel", ".dmp", NULL, &names, &n);
    if (n == 0)
        fail_msg("no corpus dumps found");
    struct e2e_dump *c = calloc(n, sizeof *c);
    for (size_t i = 0; i < n; i++) {
        snprintf(c[i].rel, sizeof c[i].rel, "%s", names[i]);
        size_t len;
        uint8_t *bytes = th_read(th_corpus(names[i]), &len);
        size_t nl = strlen(names[i]);
        if (nl > 4 && !strcmp(names[i] + nl - 4, ".zst")) {
            c[i].zst = bytes;
            c[i].zst_len = len;
            c[i].raw = unzstd(bytes, len, &c[i].raw_len);
        } else {
            c[i].raw = bytes;
            c[i].raw_len = len;
        }
        offline(&c[i]);
        free(names[i]);
    }
    free(names);
    corpus = c;
    corpus_count = n;
    *count = n;
    return corpus;
}

void e2e_offline_error(const char *path, char *out, size_t n)
{
    const char *argv[] = { th_triagectl(), "stackwalk", "--json", path, NULL };
    char *so = NULL, *se = NULL;
    int rc = th_run((char *const *)argv, &so, &se, 120);
    if (rc == 0)
        fail_msg("triagectl stackwalk read %s, which should fail", path);
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "triagectl stackwalk: %s: ", path);
    const char *p = strstr(se, prefix);
    if (!p)
        fail_msg("triagectl stackwalk %s: unexpected error output: %s", path, se);
    p += strlen(prefix);
    snprintf(out, n, "%.*s", (int)strcspn(p, "\n"), p);
    free(so);
    free(se);
}

/* ---- the spool ---- */

static struct cm_buf *snap_buf;
static size_t snap_root_len;

static int snap_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    const char *rel = path + snap_root_len;
    if (flag == FTW_D || flag == FTW_DP)
        cm_buf_printf(snap_buf, NULL, "%s/ dir\n", rel);
    else
        cm_buf_printf(snap_buf, NULL, "%s %lld\n", rel, (long long)sb->st_size);
    return 0;
}

static int by_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *e2e_tree_snapshot(const char *dir)
{
    struct cm_buf b;
    cm_buf_init(&b, 0);
    cm_buf_append(&b, "", 0, NULL);
    snap_buf = &b;
    snap_root_len = strlen(dir);
    nftw(dir, snap_entry, 16, FTW_PHYS);
    snap_buf = NULL;
    /* Sort the lines so the order of readdir does not matter. */
    char **lines = NULL;
    size_t count = 0;
    for (char *save = NULL, *l = strtok_r((char *)b.data, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        lines = realloc(lines, (count + 1) * sizeof *lines);
        lines[count++] = l;
    }
    qsort(lines, count, sizeof *lines, by_line);
    struct cm_buf out;
    cm_buf_init(&out, 0);
    cm_buf_append(&out, "", 0, NULL);
    for (size_t i = 0; i < count; i++)
        cm_buf_printf(&out, NULL, "%s\n", lines[i]);
    free(lines);
    cm_buf_free(&b);
    return (char *)cm_buf_steal(&out, NULL);
}

size_t e2e_count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    char path[4200];
    while ((e = readdir(d))) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && !S_ISDIR(st.st_mode))
            n++;
    }
    closedir(d);
    return n;
}
