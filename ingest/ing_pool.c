/* ing_pool.c -- the worker threads that do the slow part of an upload (decompress, hash, write,
 * fsync, record) off libmicrohttpd's polling threads, so a slow disk or database never stalls
 * other connections. The HTTP layer suspends a connection, submits a task, and the task resumes
 * it. The number of workers caps concurrent decompressions (RELIABILITY.md: at most 32). */
#include "common/cm_alloc.h"
#include "ingest/ing_int.h"

struct task {
    ing_task_fn fn;
    void *arg;
    struct task *next;
};

struct ing_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct task *head, *tail;
    bool stop;
    size_t nthreads, nworkers;
    pthread_t *threads;
    struct ing_worker *workers;
};

static void *worker_main(void *arg)
{
    struct ing_worker *w = arg;
    struct ing_pool *p = w->srv->pool;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        struct task *t = p->head;
        if (t) {
            p->head = t->next;
            if (!p->head)
                p->tail = NULL;
        }
        pthread_mutex_unlock(&p->mu);
        if (!t)
            break; /* stopping and the queue is empty */
        t->fn(w, t->arg);
        cm_free(t);
    }
    return NULL;
}

enum cm_code ing__pool_start(struct ing_server *srv, size_t threads, struct ing_pool **out,
                             struct cm_err *err)
{
    *out = NULL;
    struct ing_pool *p = cm_calloc(1, sizeof *p);
    if (!p)
        return cm_fail(err, CM_E_NOMEM, "cannot allocate worker pool");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = cm_calloc(threads, sizeof *p->threads);
    p->workers = cm_calloc(threads, sizeof *p->workers);
    enum cm_code rc = CM_E_OK;
    if (!p->threads || !p->workers) {
        rc = cm_fail(err, CM_E_NOMEM, "cannot allocate worker pool");
        goto fail;
    }
    p->nworkers = threads;
    for (size_t i = 0; i < threads; i++) {
        p->workers[i].srv = srv;
        if (!(p->workers[i].codec = ing__codec_new())) {
            rc = cm_fail(err, CM_E_NOMEM, "cannot allocate codec for worker %zu", i);
            goto fail;
        }
    }
    srv->pool = p; /* workers find the queue through the server */
    for (size_t i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]) != 0) {
            rc = cm_fail(err, CM_E_NOMEM, "cannot start worker thread %zu", i);
            break;
        }
        p->nthreads++;
    }
    if (rc) {
        ing__pool_free(p);
        srv->pool = NULL;
        return rc;
    }
    *out = p;
    return CM_E_OK;
fail:
    for (size_t i = 0; p->workers && i < threads; i++)
        ing__codec_free(p->workers[i].codec);
    cm_free(p->threads);
    cm_free(p->workers);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    cm_free(p);
    return rc;
}

bool ing__pool_submit(struct ing_pool *p, ing_task_fn fn, void *arg)
{
    struct task *t = cm_calloc(1, sizeof *t);
    if (!t)
        return false;
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (p->stop) {
        pthread_mutex_unlock(&p->mu);
        cm_free(t);
        return false;
    }
    if (p->tail)
        p->tail->next = t;
    else
        p->head = t;
    p->tail = t;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return true;
}

void ing__pool_stop(struct ing_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    p->nthreads = 0;
}

void ing__pool_free(struct ing_pool *p)
{
    if (!p)
        return;
    ing__pool_stop(p);
    for (size_t i = 0; i < p->nworkers; i++)
        ing__codec_free(p->workers[i].codec);
    cm_free(p->threads);
    cm_free(p->workers);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    cm_free(p);
}
