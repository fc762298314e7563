/*
 * workers.c: the threads that run handlers when info.threads > 0, fed
 * from one FIFO queue by the main thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider_lib.h"
#include "util.h"

static void *worker_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&tt_prov.mu);
  for (;;) {
    while (!tt_prov.queue_head && !tt_prov.stopping)
      pthread_cond_wait(&tt_prov.work, &tt_prov.mu);
    tether_request *req = tt_prov.queue_head;
    if (!req)
      break;
    tt_prov.queue_head = req->queue_next;
    if (!tt_prov.queue_head)
      tt_prov.queue_tail = NULL;
    req->queue_next = NULL;
    /* A request cancelled while it waited was answered already: its
     * handler would work for nobody. */
    bool run = !req->answered;
    pthread_mutex_unlock(&tt_prov.mu);
    if (run)
      tt_prov_run_handler(req);
    else
      tt_prov_request_release(req);
    pthread_mutex_lock(&tt_prov.mu);
  }
  pthread_mutex_unlock(&tt_prov.mu);
  return NULL;
}

void tt_prov_workers_start(int n) {
  tt_prov.stopping = false;
  tt_prov.nthreads = 0;
  tt_prov.threads = tt_calloc((size_t)n, sizeof *tt_prov.threads);
  for (int i = 0; i < n; i++) {
    int rc = pthread_create(&tt_prov.threads[i], NULL, worker_main, NULL);
    if (rc != 0) {
      /* Fewer workers still serve every request, only less at once. */
      fprintf(stderr, "%s: could not start worker thread %d of %d: %s\n",
              tt_prov_name(), i + 1, n, strerror(rc));
      if (i == 0) {
        fprintf(stderr, "%s: no worker threads\n", tt_prov_name());
        abort();
      }
      break;
    }
    tt_prov.nthreads++;
  }
}

void tt_prov_enqueue(tether_request *req) {
  pthread_mutex_lock(&tt_prov.mu);
  req->queue_next = NULL;
  if (tt_prov.queue_tail)
    tt_prov.queue_tail->queue_next = req;
  else
    tt_prov.queue_head = req;
  tt_prov.queue_tail = req;
  pthread_cond_signal(&tt_prov.work);
  pthread_mutex_unlock(&tt_prov.mu);
}

void tt_prov_workers_stop(bool drop_queue) {
  tether_request *dropped = NULL;
  pthread_mutex_lock(&tt_prov.mu);
  if (drop_queue) {
    dropped = tt_prov.queue_head;
    tt_prov.queue_head = tt_prov.queue_tail = NULL;
  }
  tt_prov.stopping = true;
  pthread_cond_broadcast(&tt_prov.work);
  pthread_mutex_unlock(&tt_prov.mu);
  while (dropped) {
    tether_request *next = dropped->queue_next;
    tt_prov_request_release(dropped);
    dropped = next;
  }
  for (int i = 0; i < tt_prov.nthreads; i++)
    pthread_join(tt_prov.threads[i], NULL);
  free(tt_prov.threads);
  tt_prov.threads = NULL;
  tt_prov.nthreads = 0;
}
