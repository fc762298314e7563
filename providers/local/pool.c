/*
 * pool.c: the threads that write files and run programs side by side.
 *
 * The library runs every handler of tether-local on its own thread, one
 * at a time, in the order the requests arrive (threads = 0 in main.c).
 * That order is what keeps a state store's events in sequence, so
 * state_file does its work right there. The file and exec types only
 * check their inputs there and hand the slow part (writes with their
 * fsyncs, a program and its output) to this pool, which answers with
 * tether_resolve or tether_reject from whichever thread did the work.
 *
 * A thread is started when work arrives and every thread is busy, up to
 * one per request the host may have in flight (TT_LOCAL_CONCURRENCY), so
 * a long program never makes a file write wait for a thread. Threads
 * stay until the process ends: starting one costs more than keeping it.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "local.h"
#include "util.h"

typedef struct job {
  tether_request *req;
  tt_work_fn *fn;
  void *arg;
  struct job *next;
} job;

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  job *head, *tail;
  size_t queued;  /* jobs waiting for a thread */
  size_t idle;    /* threads waiting for a job (or woken, not yet taken) */
  size_t started; /* threads in tid[] */
  bool stopping;
  bool warned; /* about a thread that could not be started */
  pthread_t tid[TT_LOCAL_CONCURRENCY];
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void run_job(job *j) {
  /* A request cancelled while it waited was answered -32800 already; the
   * rejection only completes its life in the library. */
  if (tether_request_cancelled(j->req))
    tether_reject(j->req, TETHER_ERR_CANCELLED, NULL, "request cancelled");
  else
    j->fn(j->req, j->arg);
  free(j->arg);
  free(j);
}

static void *pool_main(void *unused) {
  (void)unused;
  pthread_mutex_lock(&pool.mu);
  for (;;) {
    pool.idle++;
    while (!pool.head && !pool.stopping)
      pthread_cond_wait(&pool.cv, &pool.mu);
    pool.idle--;
    /* Work queued before the stop is still done (or, cancelled by the
     * exit, answered at once), so no request is left without an answer. */
    job *j = pool.head;
    if (!j)
      break;
    pool.head = j->next;
    if (!pool.head)
      pool.tail = NULL;
    pool.queued--;
    pthread_mutex_unlock(&pool.mu);
    run_job(j);
    pthread_mutex_lock(&pool.mu);
  }
  pthread_mutex_unlock(&pool.mu);
  return NULL;
}

tether_done *tt_pool_submit(tether_request *req, tt_work_fn *fn, void *arg) {
  job *j = tt_malloc(sizeof *j);
  *j = (job){.req = req, .fn = fn, .arg = arg};
  pthread_mutex_lock(&pool.mu);
  /* Counting the idle threads against the queue, not only looking for
   * one, matters when requests come faster than woken threads take
   * them: each queued job needs a thread of its own. */
  if (pool.queued + 1 > pool.idle && pool.started < TT_LOCAL_CONCURRENCY) {
    int rc = pthread_create(&pool.tid[pool.started], NULL, pool_main, NULL);
    if (rc == 0) {
      pool.started++;
    } else if (pool.started == 0) {
      /* No thread to be had at all: the work is done here, as it was
       * before there was a pool. */
      pthread_mutex_unlock(&pool.mu);
      run_job(j);
      return tether_reply_pending(req);
    } else if (!pool.warned) {
      pool.warned = true;
      fprintf(stderr,
              "tether-local: could not start another worker thread (%s); "
              "the %zu running take turns\n",
              tt_strerror(rc), pool.started);
    }
  }
  if (pool.tail)
    pool.tail->next = j;
  else
    pool.head = j;
  pool.tail = j;
  pool.queued++;
  pthread_cond_signal(&pool.cv);
  pthread_mutex_unlock(&pool.mu);
  /* The work may have been answered already, on a pool thread; the
   * library expects that. */
  return tether_reply_pending(req);
}

void tt_pool_stop(void) {
  pthread_mutex_lock(&pool.mu);
  pool.stopping = true;
  pthread_cond_broadcast(&pool.cv);
  size_t n = pool.started;
  pthread_mutex_unlock(&pool.mu);
  for (size_t i = 0; i < n; i++)
    pthread_join(pool.tid[i], NULL);
  pthread_mutex_lock(&pool.mu);
  pool.started = 0;
  pthread_mutex_unlock(&pool.mu);
}

void tt_resolve_outputs(tether_request *req, tether_json *outputs) {
  tether_json *result = tether_json_object();
  result = tether_json_object_set(result, "outputProperties", outputs);
  tether_resolve(req, result);
}
