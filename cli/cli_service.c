/* cli_service.c -- the whole service on one machine, as `triagectl up` and `triagectl demo` run
 * it: with no database configured, a private PostgreSQL cluster under the data folder (initdb,
 * pg_ctl, unix socket; as the `postgres` user when started as root); migrations; then
 * triage-ingest, triage-analyzer and triage-detector as child processes, restarted if one dies,
 * stopped cleanly on Ctrl-C. The daemons are found next to triagectl (the build puts every
 * program in one bin/ folder). */
#include <curl/curl.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "common/cm_log.h"

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

bool cli_service_stopping(void) { return stop_requested != 0; }

static int mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    return mkdir(tmp, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

/* The folder holding triagectl, where the daemons live too. */
static int program_dir(char *out, size_t n)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return -1;
    exe[len] = 0;
    snprintf(out, n, "%s", dirname(exe));
    return 0;
}

static pid_t spawn(struct cli_child *ch)
{
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        dup2(2, 1); /* the daemons' own output is log, not triagectl's answer */
        execv(ch->argv[0], ch->argv);
        fprintf(stderr, "triagectl: cannot run %s: %s\n", ch->argv[0], strerror(errno));
        _exit(127);
    }
    ch->pid = pid;
    ch->started_ms = mono_ms();
    return pid;
}

static void add_arg(struct cli_child *ch, const char *a)
{
    if (ch->argc + 1 < CLI_CHILD_MAX_ARGS) {
        ch->argv[ch->argc++] = strdup(a);
        ch->argv[ch->argc] = NULL;
    }
}

static void add_flag(struct cli_child *ch, const char *name, const char *value)
{
    char buf[4200];
    snprintf(buf, sizeof buf, "--%s=%s", name, value);
    add_arg(ch, buf);
}

/* GET url; 0 when it answers 200 within timeout. */
static int http_ok(const char *url, long timeout_ms)
{
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    FILE *devnull = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (devnull)
        fclose(devnull);
    return rc == CURLE_OK && status == 200 ? 0 : -1;
}

static int prepare_database(struct cli_service *svc, const struct cli_service_opts *o)
{
    struct cm_err err = { 0 };
    const char *url = o->db_url && *o->db_url ? o->db_url : getenv("DATABASE_URL");
    if (url && *url) {
        snprintf(svc->conninfo, sizeof svc->conninfo, "%s", url);
        svc->embedded = false;
    } else {
        fprintf(stderr, "triagectl: starting PostgreSQL in %s/postgres ...\n", svc->data_dir);
        if (db_cluster_start(svc->data_dir, NULL, &svc->cluster, &err) != CM_E_OK) {
            fprintf(stderr, "triagectl: cannot start the embedded PostgreSQL: %s\n", err.msg);
            return 1;
        }
        snprintf(svc->conninfo, sizeof svc->conninfo, "%s", db_cluster_conninfo(svc->cluster));
        svc->embedded = true;
    }
    struct db_conn *db = NULL;
    struct db_migrate_report rep = { 0 };
    if (db_open(svc->conninfo, NULL, &db, &err) != CM_E_OK ||
        db_migrate(db, &rep, &err) != CM_E_OK) {
        fprintf(stderr, "triagectl: database not ready: %s\n", err.msg);
        db_close(db);
        return 1;
    }
    fprintf(stderr, "triagectl: database schema version %d (%d migration%s applied now)\n",
            rep.schema_version, rep.applied, rep.applied == 1 ? "" : "s");
    db_close(db);
    return 0;
}

static void build_children(struct cli_service *svc, const struct cli_service_opts *o,
                           const char *bindir)
{
    char path[PATH_MAX + 64], spool[PATH_MAX + 16];
    snprintf(spool, sizeof spool, "%s/spool", svc->data_dir);

    struct cli_child *ing = &svc->children[svc->nchildren++];
    snprintf(ing->name, sizeof ing->name, "triage-ingest");
    snprintf(path, sizeof path, "%s/triage-ingest", bindir);
    add_arg(ing, path);
    add_flag(ing, "listen", svc->listen);
    add_flag(ing, "spool_dir", spool);
    add_flag(ing, "db_url", svc->conninfo);

    struct cli_child *ana = &svc->children[svc->nchildren++];
    snprintf(ana->name, sizeof ana->name, "triage-analyzer");
    snprintf(path, sizeof path, "%s/triage-analyzer", bindir);
    add_arg(ana, path);
    add_flag(ana, "db_url", svc->conninfo);
    if (svc->analyzer_listen[0])
        add_flag(ana, "listen", svc->analyzer_listen);
    if (o->workers)
        add_flag(ana, "workers", o->workers);
    for (size_t i = 0; i < o->symbols.count; i++)
        add_flag(ana, "symbols", o->symbols.dirs[i]);

    snprintf(path, sizeof path, "%s/triage-detector", bindir);
    if (access(path, X_OK) == 0) {
        struct cli_child *det = &svc->children[svc->nchildren++];
        snprintf(det->name, sizeof det->name, "triage-detector");
        add_arg(det, path);
        add_flag(det, "db_url", svc->conninfo);
    }
}

int cli_service_start(const struct cli_service_opts *o, struct cli_service *svc)
{
    memset(svc, 0, sizeof *svc);
    const char *data = o->data_dir ? o->data_dir : CLI_DEFAULT_DATA_DIR;
    if (mkdirs(data) != 0 || !realpath(data, svc->data_dir)) {
        fprintf(stderr, "triagectl: cannot create the data folder %s: %s\n", data,
                strerror(errno));
        return 1;
    }
    snprintf(svc->listen, sizeof svc->listen, "%s", o->listen ? o->listen : CLI_DEFAULT_LISTEN);
    char *colon = strrchr(svc->listen, ':');
    if (!colon || atoi(colon + 1) <= 0 || atoi(colon + 1) > 65534) {
        fprintf(stderr, "triagectl: --listen takes HOST:PORT with a fixed port, not \"%s\"\n",
                svc->listen);
        return 2;
    }
    snprintf(svc->analyzer_listen, sizeof svc->analyzer_listen, "%.*s:%d",
             (int)(colon - svc->listen), svc->listen, atoi(colon + 1) + 1);
    char bindir[PATH_MAX];
    if (program_dir(bindir, sizeof bindir) != 0) {
        fprintf(stderr, "triagectl: cannot find the folder of its own program\n");
        return 1;
    }
    setpgid(0, 0); /* one process group: Ctrl-C and a kill of the group reach every part */
    struct sigaction sa = { .sa_handler = on_stop };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (prepare_database(svc, o) != 0)
        return 1;
    build_children(svc, o, bindir);
    for (size_t i = 0; i < svc->nchildren; i++)
        spawn(&svc->children[i]);
    char url[300];
    snprintf(url, sizeof url, "http://%s/healthz", svc->listen);
    for (int64_t deadline = mono_ms() + 60000; http_ok(url, 1000) != 0;) {
        if (stop_requested || mono_ms() > deadline) {
            fprintf(stderr, "triagectl: %s did not answer within 60 s; see the log above\n", url);
            cli_service_stop(svc);
            return 1;
        }
        cli_service_reap(svc);
        sleep_ms(100);
    }
    snprintf(svc->url, sizeof svc->url, "http://%s", svc->listen);
    return 0;
}

void cli_service_reap(struct cli_service *svc)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < svc->nchildren; i++) {
            struct cli_child *ch = &svc->children[i];
            if (ch->pid != pid)
                continue;
            ch->pid = 0;
            if (stop_requested || svc->stopping)
                break;
            /* Restart with a backoff that resets after a minute of good health. */
            int64_t up = mono_ms() - ch->started_ms;
            ch->backoff_ms = up > 60000 ? 1000 : ch->backoff_ms ? ch->backoff_ms * 2 : 1000;
            if (ch->backoff_ms > 30000)
                ch->backoff_ms = 30000;
            ch->restart_at_ms = mono_ms() + ch->backoff_ms;
            if (WIFSIGNALED(status))
                cm_log(CM_LOG_WARN, "%s died of signal %d; restarting in %lld ms", ch->name,
                       WTERMSIG(status), (long long)ch->backoff_ms);
            else
                cm_log(CM_LOG_WARN, "%s exited with status %d; restarting in %lld ms", ch->name,
                       WEXITSTATUS(status), (long long)ch->backoff_ms);
        }
    }
    for (size_t i = 0; i < svc->nchildren; i++) {
        struct cli_child *ch = &svc->children[i];
        if (ch->pid == 0 && !stop_requested && !svc->stopping && mono_ms() >= ch->restart_at_ms)
            spawn(ch);
    }
}

void cli_service_run(struct cli_service *svc)
{
    while (!stop_requested) {
        cli_service_reap(svc);
        sleep_ms(200);
    }
}

void cli_service_stop(struct cli_service *svc)
{
    svc->stopping = true;
    for (size_t i = 0; i < svc->nchildren; i++)
        if (svc->children[i].pid > 0)
            kill(svc->children[i].pid, SIGTERM);
    int64_t deadline = mono_ms() + 20000;
    for (;;) {
        bool alive = false;
        for (size_t i = 0; i < svc->nchildren; i++) {
            struct cli_child *ch = &svc->children[i];
            if (ch->pid > 0 && waitpid(ch->pid, NULL, WNOHANG) == ch->pid)
                ch->pid = 0;
            alive |= ch->pid > 0;
        }
        if (!alive)
            break;
        if (mono_ms() > deadline) {
            for (size_t i = 0; i < svc->nchildren; i++)
                if (svc->children[i].pid > 0) {
                    cm_log(CM_LOG_WARN, "%s did not stop in 20 s; killing it",
                           svc->children[i].name);
                    kill(svc->children[i].pid, SIGKILL);
                    waitpid(svc->children[i].pid, NULL, 0);
                    svc->children[i].pid = 0;
                }
            break;
        }
        sleep_ms(50);
    }
    for (size_t i = 0; i < svc->nchildren; i++)
        for (int a = 0; a < svc->children[i].argc; a++)
            free(svc->children[i].argv[a]);
    svc->nchildren = 0;
    if (svc->cluster) {
        struct cm_err err = { 0 };
        if (db_cluster_stop(svc->cluster, DB_STOP_FAST, &err) != CM_E_OK)
            fprintf(stderr, "triagectl: stopping PostgreSQL: %s\n", err.msg);
        db_cluster_free(svc->cluster);
        svc->cluster = NULL;
    }
}
