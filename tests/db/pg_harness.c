/* pg_harness.c -- see pg_harness.h. The guardian is a forked process in its own session that
 * blocks reading a pipe whose write end only the test process holds: when the test process
 * exits for any reason (a failed assertion, a crash, a ctest timeout kill), the read returns
 * and the guardian stops the cluster (immediate shutdown) and removes its folders. */
#define _GNU_SOURCE
#include "tests/db/pg_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/th.h"

static struct db_cluster *cluster;
static char folder[PATH_MAX];
static pid_t owner;
static int guard_fd = -1;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *path)
{
    if (path[0])
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Stops whatever cluster runs in the folder, without the cluster struct (the guardian may
 * wake while the cluster is still starting): SIGQUIT to the postmaster is what
 * `pg_ctl stop -m immediate` sends. */
static void stop_folder_cluster(void)
{
    char path[PATH_MAX + 32], line[PATH_MAX], sock[PATH_MAX] = "";
    snprintf(path, sizeof path, "%s/postgres/postmaster.pid", folder);
    FILE *f = fopen(path, "r");
    long pid = 0;
    for (int no = 1; f && fgets(line, sizeof line, f); no++) {
        line[strcspn(line, "\r\n")] = 0;
        if (no == 1)
            pid = strtol(line, NULL, 10);
        else if (no == 5)
            snprintf(sock, sizeof sock, "%s", line);
    }
    if (f)
        fclose(f);
    if (pid > 0 && kill((pid_t)pid, SIGQUIT) == 0) {
        for (int i = 0; i < 200 && kill((pid_t)pid, 0) == 0; i++)
            usleep(50 * 1000);
        kill((pid_t)pid, SIGKILL);
    }
    if (strncmp(sock, "/tmp/triage-pg-", 15) == 0)
        rm_rf(sock);
}

static void guardian(int rfd)
{
    setsid();
    for (int fd = 0; fd < 1024; fd++)
        if (fd != rfd)
            close(fd);
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(devnull, 2);
    char b;
    while (read(rfd, &b, 1) != 0 && errno == EINTR)
        ;
    stop_folder_cluster();
    rm_rf(folder);
    _exit(0);
}

const char *pgh_start(const char *name, char *why, size_t n)
{
    if (cluster)
        return db_cluster_conninfo(cluster);
    char base[PATH_MAX / 2];
    snprintf(base, sizeof base, "%s/pg-harness", TRIAGE_BINARY_DIR);
    mkdir(base, 0711);
    chmod(base, 0711); /* the postgres user passes through it when tests run as root */
    snprintf(folder, sizeof folder, "%s/%s-%ld", base, name, (long)getpid());
    rm_rf(folder);
    if (mkdir(folder, 0711) != 0) {
        snprintf(why, n, "cannot create %s: %s", folder, strerror(errno));
        return NULL;
    }
    /* The guardian first, so a death during the start is covered too. */
    owner = getpid();
    int p[2];
    if (pipe(p) == 0) {
        pid_t g = fork();
        if (g == 0) {
            close(p[1]);
            guardian(p[0]);
        }
        close(p[0]);
        fcntl(p[1], F_SETFD, FD_CLOEXEC);
        guard_fd = p[1];
    }
    struct db_cluster_options opt = { .no_fsync = true, .start_timeout_s = 120 };
    struct cm_err err = { 0 };
    if (db_cluster_start(folder, &opt, &cluster, &err) != CM_E_OK) {
        snprintf(why, n, "%s", err.msg);
        close(guard_fd); /* the guardian removes the folder */
        guard_fd = -1;
        return NULL;
    }
    atexit(pgh_stop);
    return db_cluster_conninfo(cluster);
}

struct db_cluster *pgh_cluster(void) { return cluster; }

const char *pgh_conninfo(void) { return cluster ? db_cluster_conninfo(cluster) : NULL; }

void pgh_stop(void)
{
    if (!cluster || getpid() != owner)
        return; /* a forked child of the test must not stop its parent's cluster */
    struct cm_err err;
    db_cluster_stop(cluster, DB_STOP_FAST, &err);
    db_cluster_free(cluster);
    cluster = NULL;
    rm_rf(folder);
    if (guard_fd >= 0)
        close(guard_fd);
    guard_fd = -1;
}

struct db_conn *pgh_connect(void)
{
    if (!cluster)
        fail_msg("the test cluster is not running");
    struct db_conn *db = NULL;
    struct cm_err err = { 0 };
    if (db_open(db_cluster_conninfo(cluster), NULL, &db, &err) != CM_E_OK)
        fail_msg("cannot connect to the test cluster: %s", err.msg);
    return db;
}
