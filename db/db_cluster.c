/* db_cluster.c -- the embedded PostgreSQL: with no database configured, `triagectl up` and the
 * tests create (initdb) and start (pg_ctl) a private cluster under a data folder. It listens
 * only on a unix socket in a fresh private folder under /tmp (socket paths are limited to 107
 * bytes, so never inside a deep build tree), with listen_addresses = ''. PostgreSQL refuses to
 * run as root: when we are root, its programs run as the unprivileged `postgres` user, which
 * owns the cluster folder. Output of the programs goes to <dir>/postgres.log.
 * References: initdb(1), pg_ctl(1), "Server Setup and Operation" (postgresql.org/docs/15),
 * postmaster.pid lines (src/include/utils/pidfile.h: LOCK_FILE_LINE_*). */
#include "db/db_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cm_alloc.h"

#define CLUSTER_PORT 5432 /* only names the socket file inside our private folder */

struct db_cluster {
    char dir[PATH_MAX];
    char pgdata[PATH_MAX];
    char logfile[PATH_MAX];
    char bindir[PATH_MAX];
    char sockdir[128];
    char dbname[64];
    char conninfo[512];
    int port;
    int start_timeout_s;
    bool no_fsync;
    bool own_sockdir; /* we made sockdir and remove it when the cluster stops */
    bool running;
    bool as_postgres; /* run the server programs as the postgres user */
    uid_t uid;
    gid_t gid;
};

/* ---- running the server programs ---- */

static bool executable(const char *dir, const char *prog)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/%s", dir, prog) >= (int)sizeof p)
        return false;
    return access(p, X_OK) == 0;
}

static bool server_bindir(const char *dir)
{
    return dir && *dir && executable(dir, "initdb") && executable(dir, "pg_ctl") &&
           executable(dir, "postgres");
}

/* Runs argv (absolute argv[0]) with stdout captured into out (may be NULL) and stderr to
 * /dev/null, for `pg_config --bindir`. */
static int capture(char *const argv[], char *out, size_t out_size)
{
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(fd[1], 1);
        dup2(devnull, 2);
        close(fd[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd[0], out + n, n + 1 < out_size ? out_size - n - 1 : 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd[0]);
    out[n] = 0;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The first PATH entry holding prog, into out. */
static bool in_path(const char *prog, char *out, size_t out_size)
{
    const char *path = getenv("PATH");
    if (!path)
        return false;
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        if (len > 0 && len < out_size) {
            memcpy(out, path, len);
            out[len] = 0;
            if (executable(out, prog))
                return true;
        }
        path += len + (colon ? 1 : 0);
    }
    return false;
}

enum cm_code db_cluster_bindir(char *out, size_t out_size, struct cm_err *err)
{
    const char *env = getenv("TRIAGE_PG_BINDIR");
    if (env && *env) {
        if (!server_bindir(env))
            return cm_fail(err, CM_E_NOTFOUND, "TRIAGE_PG_BINDIR=%s holds no initdb, pg_ctl and "
                           "postgres", env);
        snprintf(out, out_size, "%s", env);
        return CM_E_OK;
    }
    char cfg[PATH_MAX], buf[PATH_MAX];
    if (in_path("pg_config", cfg, sizeof cfg)) {
        char prog[PATH_MAX + 16];
        snprintf(prog, sizeof prog, "%s/pg_config", cfg);
        char *argv[] = { prog, "--bindir", NULL };
        if (capture(argv, buf, sizeof buf) == 0) {
            buf[strcspn(buf, "\r\n")] = 0;
            if (server_bindir(buf)) {
                snprintf(out, out_size, "%s", buf);
                return CM_E_OK;
            }
        }
    }
    /* Debian and Ubuntu keep each major version's server programs apart. */
    DIR *d = opendir("/usr/lib/postgresql");
    long best = -1;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char *end;
            long v = strtol(e->d_name, &end, 10);
            if (end == e->d_name || *end || v <= best)
                continue;
            snprintf(buf, sizeof buf, "/usr/lib/postgresql/%s/bin", e->d_name);
            if (server_bindir(buf))
                best = v;
        }
        closedir(d);
    }
    if (best >= 0) {
        snprintf(out, out_size, "/usr/lib/postgresql/%ld/bin", best);
        return CM_E_OK;
    }
    if (in_path("initdb", buf, sizeof buf) && server_bindir(buf)) {
        snprintf(out, out_size, "%s", buf);
        return CM_E_OK;
    }
    return cm_fail(err, CM_E_NOTFOUND, "PostgreSQL server programs (initdb, pg_ctl, postgres) "
                   "not found: install PostgreSQL (Debian: postgresql) or set TRIAGE_PG_BINDIR");
}

/* The last line of the log, to explain a failure. */
static void log_tail(const struct db_cluster *c, char *out, size_t n)
{
    out[0] = 0;
    FILE *f = fopen(c->logfile, "rb");
    if (!f)
        return;
    char buf[2048];
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : 0;
    long from = size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0;
    fseek(f, from, SEEK_SET);
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = 0;
    while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
        buf[--got] = 0;
    const char *line = strrchr(buf, '\n');
    line = line ? line + 1 : buf;
    size_t len = strlen(line) < n - 1 ? strlen(line) : n - 1;
    memcpy(out, line, len);
    out[len] = 0;
}

/* Runs a server program (prog in bindir) as the cluster's user, output appended to the log.
 * Waits at most timeout_s, then kills it. Returns its exit status, -1 if it did not run. */
static int run_prog(const struct db_cluster *c, const char *prog, const char *const *args,
                    int timeout_s)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", c->bindir, prog);
    char *argv[24];
    size_t n = 0;
    argv[n++] = path;
    for (size_t i = 0; args[i] && n < 23; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    int logfd = open(c->logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (logfd < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        if (c->as_postgres) {
            if (setgroups(0, NULL) != 0 || setgid(c->gid) != 0 || setuid(c->uid) != 0) {
                dprintf(2, "triage: cannot switch to the postgres user: %s\n", strerror(errno));
                _exit(126);
            }
        }
        if (chdir(c->pgdata) != 0 && chdir("/") != 0)
            _exit(126);
        umask(077);
        unsetenv("PGDATA");
        unsetenv("PGHOST");
        unsetenv("PGPORT");
        execv(path, argv);
        dprintf(2, "triage: cannot run %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(logfd);
    struct timespec step = { 0, 20 * 1000 * 1000 };
    long waited_ms = 0;
    int st = 0;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            return -1;
        if (waited_ms > (long)timeout_s * 1000) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        nanosleep(&step, NULL);
        waited_ms += 20;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- start and stop ---- */

static enum cm_code chown_to_user(const struct db_cluster *c, const char *path, struct cm_err *err)
{
    if (c->as_postgres && chown(path, c->uid, c->gid) != 0)
        return cm_fail(err, CM_E_IO, "cluster: cannot give %s to the postgres user: %s", path,
                       strerror(errno));
    return CM_E_OK;
}

static enum cm_code write_conf(const struct db_cluster *c, struct cm_err *err)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/postgresql.conf", c->pgdata);
    FILE *f = fopen(path, "a");
    if (!f)
        return cm_fail(err, CM_E_IO, "cluster: cannot append to %s: %s", path, strerror(errno));
    fprintf(f, "\n# Added by triage (db_cluster.c): a private cluster, unix socket only.\n"
               "listen_addresses = ''\n"
               "unix_socket_permissions = 0700\n"
               "max_connections = 200\n"
               "timezone = 'UTC'\n"
               "log_timezone = 'UTC'\n");
    if (c->no_fsync)
        /* Safe against the server dying (tests kill it), not against the machine dying.
         * synchronous_commit stays on: an immediate stop must not lose committed rows. */
        fprintf(f, "# Test cluster: no fsync (data safe only while the OS keeps running).\n"
                   "fsync = off\nfull_page_writes = off\n");
    bool ok = !ferror(f);
    ok &= fclose(f) == 0;
    if (!ok)
        return cm_fail(err, CM_E_IO, "cluster: cannot write %s", path);
    return CM_E_OK;
}

static enum cm_code init_cluster(struct db_cluster *c, struct cm_err *err)
{
    if (mkdir(c->pgdata, 0700) != 0 && errno != EEXIST)
        return cm_fail(err, CM_E_IO, "cluster: cannot create %s: %s", c->pgdata, strerror(errno));
    enum cm_code rc = chown_to_user(c, c->pgdata, err);
    if (rc)
        return rc;
    /* Trust on the unix socket: the socket folder (0700, ours) is the access control. */
    const char *args[] = { "-D", c->pgdata, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                           "--locale=C", c->no_fsync ? "--no-sync" : NULL, NULL };
    int st = run_prog(c, "initdb", args, 300);
    if (st != 0) {
        char tail[256];
        log_tail(c, tail, sizeof tail);
        return cm_fail(err, CM_E_IO, "cluster: initdb of %s failed (status %d): %s", c->pgdata,
                       st, tail);
    }
    return write_conf(c, err);
}

/* Reads postmaster.pid of pgdata: pid (line 1), port (4), socket folder (5). */
static bool read_pidfile(const char *pgdata, long *pid, int *port, char *sockdir, size_t n)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/postmaster.pid", pgdata);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[PATH_MAX];
    int no = 0;
    *pid = 0;
    *port = 0;
    sockdir[0] = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        no++;
        if (no == 1)
            *pid = strtol(line, NULL, 10);
        else if (no == 4)
            *port = (int)strtol(line, NULL, 10);
        else if (no == 5)
            snprintf(sockdir, n, "%s", line);
    }
    fclose(f);
    return *pid > 0 && *port > 0 && sockdir[0];
}

static bool pid_alive(long pid) { return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM); }

static void make_conninfo(struct db_cluster *c)
{
    snprintf(c->conninfo, sizeof c->conninfo, "host=%s port=%d dbname=%s user=postgres",
             c->sockdir, c->port, c->dbname);
}

static enum cm_code pg_start(struct db_cluster *c, struct cm_err *err)
{
    char opts[256], timeout[16];
    snprintf(opts, sizeof opts, "-k %s -p %d", c->sockdir, c->port);
    snprintf(timeout, sizeof timeout, "%d", c->start_timeout_s);
    const char *args[] = { "-D", c->pgdata, "-l", c->logfile, "-w", "-t", timeout, "-o", opts,
                           "start", NULL };
    int st = run_prog(c, "pg_ctl", args, c->start_timeout_s + 30);
    if (st != 0) {
        char tail[256];
        log_tail(c, tail, sizeof tail);
        return cm_fail(err, CM_E_IO, "cluster: pg_ctl start of %s failed (status %d): %s",
                       c->pgdata, st, tail);
    }
    c->running = true;
    return CM_E_OK;
}

static const struct db__stmt st_has_db = {
    "cluster_has_db", "SELECT 1 FROM pg_database WHERE datname = $1", 1
};

static enum cm_code has_database(struct db_cluster *c, bool *has, struct cm_err *err)
{
    char ci[512];
    snprintf(ci, sizeof ci, "host=%s port=%d dbname=postgres user=postgres", c->sockdir, c->port);
    struct db_conn *db = NULL;
    enum cm_code rc = db_open(ci, NULL, &db, err);
    PGresult *res = NULL;
    const char *v[] = { c->dbname };
    if (!rc)
        rc = db__exec(db, &st_has_db, v, &res, "cluster", err);
    if (!rc)
        *has = PQntuples(res) > 0;
    PQclear(res);
    db_close(db);
    return rc;
}

static enum cm_code ensure_database(struct db_cluster *c, struct cm_err *err)
{
    bool has = false;
    enum cm_code rc = has_database(c, &has, err);
    if (rc || has)
        return rc;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    const char *args[] = { "-h", c->sockdir, "-p", port, "-U", "postgres", c->dbname, NULL };
    int st = run_prog(c, "createdb", args, 120);
    if (st != 0) {
        /* Another starter may have created it meanwhile. */
        rc = has_database(c, &has, err);
        if (rc)
            return rc;
        if (!has) {
            char tail[256];
            log_tail(c, tail, sizeof tail);
            return cm_fail(err, CM_E_IO, "cluster: createdb %s failed (status %d): %s",
                           c->dbname, st, tail);
        }
    }
    return CM_E_OK;
}

static bool valid_dbname(const char *s)
{
    if (!s || !*s || strlen(s) > 63)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

enum cm_code db_cluster_start(const char *dir, const struct db_cluster_options *opt,
                              struct db_cluster **out, struct cm_err *err)
{
    *out = NULL;
    struct db_cluster_options o = { 0 };
    if (opt)
        o = *opt;
    const char *dbname = o.dbname && *o.dbname ? o.dbname : "triage";
    if (!valid_dbname(dbname))
        return cm_fail(err, CM_E_USAGE, "cluster: database name must be 1-63 of [a-z0-9_]");
    if (!dir || !*dir)
        return cm_fail(err, CM_E_USAGE, "cluster: no data folder");
    struct db_cluster *c = cm_calloc(1, sizeof *c);
    if (!c)
        return cm_fail(err, CM_E_NOMEM, "cluster: out of memory");
    enum cm_code rc = CM_E_OK;
    c->port = CLUSTER_PORT;
    c->start_timeout_s = o.start_timeout_s > 0 ? o.start_timeout_s : 60;
    c->no_fsync = o.no_fsync;
    snprintf(c->dbname, sizeof c->dbname, "%s", dbname);

    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw) {
            rc = cm_fail(err, CM_E_NOTFOUND, "cluster: running as root needs the unprivileged "
                         "`postgres` user (PostgreSQL refuses root); install PostgreSQL");
            goto fail;
        }
        c->as_postgres = true;
        c->uid = pw->pw_uid;
        c->gid = pw->pw_gid;
    }
    if (o.bindir && *o.bindir) {
        if (!server_bindir(o.bindir)) {
            rc = cm_fail(err, CM_E_NOTFOUND, "cluster: %s holds no initdb, pg_ctl and postgres",
                         o.bindir);
            goto fail;
        }
        snprintf(c->bindir, sizeof c->bindir, "%s", o.bindir);
    } else if ((rc = db_cluster_bindir(c->bindir, sizeof c->bindir, err))) {
        goto fail;
    }

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = cm_fail(err, CM_E_IO, "cluster: cannot create %s: %s", dir, strerror(errno));
        goto fail;
    }
    if (!realpath(dir, c->dir)) {
        rc = cm_fail(err, CM_E_IO, "cluster: %s: %s", dir, strerror(errno));
        goto fail;
    }
    if (c->as_postgres) {
        /* The postgres user must be able to pass through the data folder to its own. */
        struct stat sb;
        if (stat(c->dir, &sb) == 0 && !(sb.st_mode & S_IXOTH))
            chmod(c->dir, (sb.st_mode & 07777) | S_IXOTH);
    }
    if (snprintf(c->pgdata, sizeof c->pgdata, "%s/postgres", c->dir) >= (int)sizeof c->pgdata ||
        snprintf(c->logfile, sizeof c->logfile, "%s/postgres.log", c->dir) >=
            (int)sizeof c->logfile) {
        rc = cm_fail(err, CM_E_LIMIT, "cluster: data folder path too long");
        goto fail;
    }
    int fd = open(c->logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = cm_fail(err, CM_E_IO, "cluster: cannot create %s: %s", c->logfile, strerror(errno));
        goto fail;
    }
    close(fd);
    if ((rc = chown_to_user(c, c->logfile, err)))
        goto fail;

    char version[PATH_MAX + 16];
    snprintf(version, sizeof version, "%s/PG_VERSION", c->pgdata);
    if (access(version, F_OK) != 0 && (rc = init_cluster(c, err)))
        goto fail;

    /* Already running (another `triagectl`, or a previous run that was not stopped)? */
    long pid;
    int port;
    char sock[PATH_MAX];
    if (read_pidfile(c->pgdata, &pid, &port, sock, sizeof sock) && pid_alive(pid) &&
        strlen(sock) < sizeof c->sockdir) {
        snprintf(c->sockdir, sizeof c->sockdir, "%s", sock);
        c->port = port;
        c->running = true;
    } else {
        snprintf(c->sockdir, sizeof c->sockdir, "/tmp/triage-pg-XXXXXX");
        if (!mkdtemp(c->sockdir)) {
            rc = cm_fail(err, CM_E_IO, "cluster: cannot create a socket folder in /tmp: %s",
                         strerror(errno));
            goto fail;
        }
        c->own_sockdir = true;
        if ((rc = chown_to_user(c, c->sockdir, err)) || (rc = pg_start(c, err)))
            goto fail;
    }
    make_conninfo(c);
    if ((rc = ensure_database(c, err)))
        goto fail;
    *out = c;
    return CM_E_OK;
fail:
    if (c->running && c->own_sockdir) {
        struct cm_err ignore;
        db_cluster_stop(c, DB_STOP_FAST, &ignore);
    }
    db_cluster_free(c);
    return rc;
}

const char *db_cluster_conninfo(const struct db_cluster *c) { return c->conninfo; }

const char *db_cluster_pgdata(const struct db_cluster *c) { return c->pgdata; }

int db_cluster_pid(const struct db_cluster *c)
{
    long pid;
    int port;
    char sock[PATH_MAX];
    if (read_pidfile(c->pgdata, &pid, &port, sock, sizeof sock) && pid_alive(pid))
        return (int)pid;
    return 0;
}

static void remove_sockdir(struct db_cluster *c)
{
    if (!c->own_sockdir || !c->sockdir[0])
        return;
    /* Left behind only if the server died without cleaning up. */
    char p[256];
    snprintf(p, sizeof p, "%s/.s.PGSQL.%d", c->sockdir, c->port);
    unlink(p);
    snprintf(p, sizeof p, "%s/.s.PGSQL.%d.lock", c->sockdir, c->port);
    unlink(p);
    if (rmdir(c->sockdir) == 0)
        c->sockdir[0] = 0;
}

static enum cm_code pg_stop(struct db_cluster *c, enum db_stop_mode mode, struct cm_err *err)
{
    const char *m = mode == DB_STOP_SMART ? "smart" : mode == DB_STOP_FAST ? "fast" : "immediate";
    const char *args[] = { "-D", c->pgdata, "-m", m, "-w", "-t", "120", "stop", NULL };
    int st = run_prog(c, "pg_ctl", args, 150);
    if (st != 0 && db_cluster_pid(c) != 0) {
        char tail[256];
        log_tail(c, tail, sizeof tail);
        return cm_fail(err, CM_E_IO, "cluster: pg_ctl stop of %s failed (status %d): %s",
                       c->pgdata, st, tail);
    }
    c->running = false;
    return CM_E_OK;
}

enum cm_code db_cluster_stop(struct db_cluster *c, enum db_stop_mode mode, struct cm_err *err)
{
    return pg_stop(c, mode, err); /* the socket folder stays for a restart; free removes it */
}

enum cm_code db_cluster_restart(struct db_cluster *c, enum db_stop_mode mode, struct cm_err *err)
{
    enum cm_code rc = db_cluster_pid(c) ? pg_stop(c, mode, err) : CM_E_OK;
    if (rc)
        return rc;
    if (!c->sockdir[0] || access(c->sockdir, F_OK) != 0)
        return cm_fail(err, CM_E_IO, "cluster: socket folder %s is gone", c->sockdir);
    return pg_start(c, err);
}

void db_cluster_free(struct db_cluster *c)
{
    if (!c)
        return;
    if (!c->running)
        remove_sockdir(c);
    cm_free(c);
}

enum cm_code db_cluster_conninfo_for(const char *dir, const char *dbname, char *out,
                                     size_t out_size, struct cm_err *err)
{
    char pgdata[PATH_MAX];
    if (snprintf(pgdata, sizeof pgdata, "%s/postgres", dir) >= (int)sizeof pgdata)
        return cm_fail(err, CM_E_LIMIT, "cluster: data folder path too long");
    long pid;
    int port;
    char sock[PATH_MAX];
    if (!read_pidfile(pgdata, &pid, &port, sock, sizeof sock) || !pid_alive(pid))
        return cm_fail(err, CM_E_NOTFOUND, "no PostgreSQL cluster is running in %s", pgdata);
    const char *name = dbname && *dbname ? dbname : "triage";
    if (!valid_dbname(name))
        return cm_fail(err, CM_E_USAGE, "cluster: database name must be 1-63 of [a-z0-9_]");
    if (snprintf(out, out_size, "host=%s port=%d dbname=%s user=postgres", sock, port, name) >=
        (int)out_size)
        return cm_fail(err, CM_E_LIMIT, "cluster: connection string too long");
    return CM_E_OK;
}
