/* ana_worker.c -- one worker thread of the analyzer daemon: claim a batch of jobs with a lease,
 * analyze each dump in the sandboxed child, write the batch's results in one transaction. A
 * malformed dump fails its crash with the reader's error and is never retried; a child that dies
 * or hangs costs the job an attempt (dead after its maximum); a worker killed outright leaves
 * its jobs to lease expiry, and the sweep hands them to another worker. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "analyzer/ana_daemon.h"
#include "common/cm_log.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

struct state {
    struct anad *d;
    unsigned index;
    char name[128];
    struct db_conn *db;
    struct anad_child child;
    int64_t next_sweep_ms;
    int64_t next_partitions_ms;
};

static bool connect_db(struct state *s)
{
    if (s->db)
        return true;
    struct cm_err err = { 0 };
    struct db_options opt;
    db_options_default(&opt);
    opt.application_name = "triage-analyzer";
    if (db_open(s->d->conf.db_url, &opt, &s->db, &err) != CM_E_OK) {
        atomic_store(&s->d->metrics.db_ok, false);
        cm_log(CM_LOG_WARN, "worker=%u database unreachable: %s", s->index, err.msg);
        return false;
    }
    atomic_store(&s->d->metrics.db_ok, true);
    return true;
}

static void sweep_and_measure(struct state *s)
{
    int64_t now = mono_ms();
    if (now < s->next_sweep_ms)
        return;
    s->next_sweep_ms = now + s->d->conf.sweep_ms;
    struct cm_err err = { 0 };
    size_t requeued = 0, dead = 0;
    if (db_jobs_requeue_expired(s->db, &requeued, &dead, &err) != CM_E_OK) {
        cm_log(CM_LOG_WARN, "worker=%u lease sweep failed: %s", s->index, err.msg);
        return;
    }
    if (requeued || dead)
        cm_log(CM_LOG_INFO, "worker=%u expired leases: requeued=%zu dead=%zu", s->index,
               requeued, dead);
    if (s->index == 0 && now >= s->next_partitions_ms) {
        /* Daily crash partitions ahead of time; hourly is plenty for a 7-day horizon. */
        if (db_partitions_ensure(s->db, 7, &err) == CM_E_OK)
            s->next_partitions_ms = now + 3600 * 1000;
        else
            cm_log(CM_LOG_WARN, "cannot create crash partitions ahead: %s", err.msg);
    }
    struct db_queue_depth q;
    if (s->index == 0 && db_queue_depth(s->db, &q, &err) == CM_E_OK) {
        atomic_store(&s->d->metrics.queue_ready, q.ready);
        atomic_store(&s->d->metrics.queue_running, q.running);
        atomic_store(&s->d->metrics.queue_dead, q.dead);
        atomic_store(&s->d->metrics.oldest_due_ms, q.oldest_due_age_ms);
    }
}

/* Writes the batch, retrying what the database calls temporary; gives up after a few tries
 * and lets the leases expire (the jobs then run again elsewhere, never counted twice). */
static void write_results(struct state *s, const struct db_result *results, size_t n)
{
    if (n == 0)
        return;
    struct cm_err err = { 0 };
    for (int attempt = 0; attempt < 5; attempt++) {
        struct db_result_report rep = { 0 };
        enum cm_code rc = db_result_write(s->db, results, n, &rep, &err);
        if (rc == CM_E_OK) {
            atomic_fetch_add(&s->d->metrics.jobs_lost, rep.lost);
            for (size_t i = 0; i < n; i++)
                atomic_fetch_add(results[i].failed ? &s->d->metrics.jobs_failed
                                                   : &s->d->metrics.jobs_done,
                                 1);
            atomic_fetch_add(&s->d->metrics.batches, 1);
            return;
        }
        atomic_fetch_add(&s->d->metrics.db_errors, 1);
        cm_log(CM_LOG_WARN, "worker=%u cannot write %zu results (try %d): %s", s->index, n,
               attempt + 1, err.msg);
        if (rc != CM_E_BUSY)
            break;
        sleep_ms(200 << attempt);
    }
}

static void fill_result(struct db_result *r, const struct db_job *job,
                        const struct anad_result *a)
{
    memset(r, 0, sizeof *r);
    r->job = job;
    r->failed = !a->ok;
    r->failure_reason = a->error;
    r->signature = a->signature;
    r->bucket_key = a->bucket;
    r->crash_kind = a->crash_kind;
    r->fault_module = a->fault_module;
    r->fault_module_version = a->fault_module_version;
    r->fault_point = a->fault_point;
    r->stack_hash = a->stack_hash;
    r->fault_key = a->fault_key;
    r->processed_json = a->processed_json;
    r->rules_version = a->rules_version;
    r->modules = a->modules;
    r->module_count = a->module_count;
}

/* One claimed batch: every job analyzed, then one write. Jobs left when stopping go back. */
static void run_batch(struct state *s, struct db_job *jobs, size_t n)
{
    struct anad *d = s->d;
    struct cm_arena arena = { 0 };
    struct db_result results[64];
    size_t nres = 0, i = 0;
    int64_t claimed_at = mono_ms();
    struct cm_err err = { 0 };
    for (; i < n && !atomic_load(&d->stopping); i++) {
        if (s->child.pid <= 0) {
            if (anad_child_start(d, &s->child, &err) != CM_E_OK) {
                cm_log(CM_LOG_ERROR, "worker=%u %s", s->index, err.msg);
                break;
            }
            atomic_fetch_add(&d->metrics.child_restarts, 1);
        }
        int64_t t0 = mono_ms();
        struct anad_result a;
        enum cm_code rc = anad_child_analyze(&s->child, jobs[i].spool_path, d->conf.job_timeout_ms,
                                             &arena, &a, &err);
        anad_metrics_latency(&d->metrics, (uint64_t)(mono_ms() - t0) * 1000);
        if (rc == CM_E_BUSY) {
            /* The child died or hung on this dump: an attempt is spent, the job retries later
             * (or goes dead), the other jobs go on with a fresh child. */
            atomic_fetch_add(strstr(err.msg, "killed after") ? &d->metrics.child_timeouts
                                                             : &d->metrics.child_crashes,
                             1);
            atomic_fetch_add(&d->metrics.jobs_retried, 1);
            cm_log(CM_LOG_WARN, "worker=%u crash=%s attempt=%d: %s", s->index, jobs[i].crash_id,
                   jobs[i].attempt, err.msg);
            char reason[300];
            snprintf(reason, sizeof reason, "%s: %s", cm_code_name(rc), err.msg);
            db_job_fail(s->db, &jobs[i], DB_FAIL_RETRY, reason, NULL, &err);
            continue;
        }
        if (rc) {
            cm_log(CM_LOG_ERROR, "worker=%u crash=%s: %s", s->index, jobs[i].crash_id, err.msg);
            db_job_fail(s->db, &jobs[i], DB_FAIL_RETRY, err.msg, NULL, &err);
            continue;
        }
        if (!a.ok)
            cm_log(CM_LOG_INFO, "worker=%u crash=%s failed: %s", s->index, jobs[i].crash_id,
                   a.error);
        fill_result(&results[nres++], &jobs[i], &a);
        /* A long batch keeps its leases. */
        if (mono_ms() - claimed_at > d->conf.lease_ms / 3) {
            db_jobs_heartbeat(s->db, jobs + i + 1, n - i - 1, d->conf.lease_ms, NULL, &err);
            claimed_at = mono_ms();
        }
    }
    write_results(s, results, nres);
    if (i < n && db_jobs_release(s->db, jobs + i, n - i, &err) != CM_E_OK)
        cm_log(CM_LOG_WARN, "worker=%u cannot release %zu jobs (their leases will expire): %s",
               s->index, n - i, err.msg);
    cm_arena_free(&arena);
}

void *anad_worker_thread(void *arg)
{
    struct anad_worker *w = arg;
    struct state s = { .d = w->d, .index = w->index, .child = { .pid = -1, .to_child = -1,
                                                                .from_child = -1 } };
    char host[64] = "host";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = 0;
    snprintf(s.name, sizeof s.name, "%s:%d:%u", host, (int)getpid(), w->index);
    int64_t idle_ms = 10;
    size_t batch = s.d->conf.batch > 64 ? 64 : s.d->conf.batch;
    while (!atomic_load(&s.d->stopping)) {
        if (!connect_db(&s)) {
            sleep_ms(1000);
            continue;
        }
        sweep_and_measure(&s);
        struct db_job *jobs = NULL;
        size_t n = 0;
        struct cm_err err = { 0 };
        enum cm_code rc = db_jobs_claim(s.db, s.name, batch, s.d->conf.lease_ms, &jobs, &n, &err);
        if (rc) {
            atomic_fetch_add(&s.d->metrics.db_errors, 1);
            atomic_store(&s.d->metrics.db_ok, false);
            cm_log(CM_LOG_WARN, "worker=%u cannot claim jobs: %s", s.index, err.msg);
            sleep_ms(1000);
            continue;
        }
        atomic_store(&s.d->metrics.db_ok, true);
        if (n == 0) {
            sleep_ms(idle_ms);
            idle_ms = idle_ms * 2 > s.d->conf.idle_poll_ms ? s.d->conf.idle_poll_ms : idle_ms * 2;
            continue;
        }
        idle_ms = 10;
        run_batch(&s, jobs, n);
        db_jobs_free(jobs, n);
    }
    if (s.child.pid > 0)
        anad_child_stop(&s.child);
    db_close(s.db);
    return NULL;
}
