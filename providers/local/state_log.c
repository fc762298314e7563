/*
 * state_log.c: the state file format, NixOps4's: a sequence of JSON texts,
 * each an event {"index", "meta": {"time", ...}, "patch": [RFC 6902]},
 * event 0 adding the empty state at "". Any whitespace layout reads
 * (NixOps4 pretty-prints its events, one JSON text over many lines); we
 * append one compact event per line.
 *
 * Reading streams the file through a fixed-size buffer and parses event
 * by event, so memory follows the resolved state, not the file. Most
 * events sit on one line of their own: the line is handed to the parser
 * as it is, and only when that fails (a pretty-printed event, or two on a
 * line) does a scanner find where the JSON text really ends.
 *
 * A torn tail versus damage. A crash in the middle of an append leaves a
 * prefix of the event at the end of the file (possibly followed by zero
 * bytes, which some file systems show after a crash in place of data they
 * never wrote). Such a tail was never acknowledged: reading skips it with
 * a warning and the next append cuts it off. Everything else that is not
 * a valid event is damage (-32022 with line and offset), and nothing is
 * rewritten: a prefix is only a torn tail when the JSON parser agrees it
 * is a valid beginning cut short by the end of the file, so a quote or a
 * bracket lost in the middle of the file, which a bracket counter would
 * take for an unfinished event running to the end, is still damage.
 *
 * Two threads replay a large file: while this one applies patches to the
 * state, a reader thread reads, parses and checks the events ahead of it,
 * and frees the ones applied. Parsing is a good third of a replay and
 * applying the rest, so on two CPUs the replay takes about as long as
 * applying alone. Whatever either finds wrong is reported as if one
 * thread had read and applied the events in order: the first problem in
 * the file wins.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local.h"
#include "util.h"

#define CHUNK (1u << 20)

typedef struct reader {
  int fd;
  const char *path;
  char *buf;
  size_t cap;
  size_t len; /* bytes in buf */
  off_t base; /* file offset of buf[0] */
  size_t pos; /* next byte to look at */
  bool eof;
  /* The scanner's progress through the text starting at pos, kept across
   * refills so a long event is scanned once. */
  size_t scanned;
  int depth;
  bool in_string;
  bool escaped;
} reader;

/* Reads more of the file, keeping buf[pos..len). False on a read error
 * (errno set). */
static bool refill(reader *r) {
  if (r->pos > 0) {
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->base += (off_t)r->pos;
    r->len -= r->pos;
    r->pos = 0;
  }
  if (r->cap - r->len < CHUNK / 2) {
    r->cap = r->cap ? r->cap * 2 : CHUNK;
    r->buf = tt_realloc(r->buf, r->cap + 1);
  }
  for (;;) {
    ssize_t n =
        pread(r->fd, r->buf + r->len, r->cap - r->len, r->base + (off_t)r->len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return false;
    if (n == 0)
      r->eof = true;
    r->len += (size_t)n;
    r->buf[r->len] = '\0';
    return true;
  }
}

static bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* The 1-based line of offset in the file: counted only when an error
 * needs it, so the common path never counts newlines. */
static uint64_t line_of(int fd, off_t offset) {
  uint64_t line = 1;
  char block[65536];
  for (off_t at = 0; at < offset;) {
    size_t want = sizeof block;
    if ((off_t)want > offset - at)
      want = (size_t)(offset - at);
    ssize_t n = pread(fd, block, want, at);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    for (const char *p = block, *end = block + n;
         (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
      line++;
    at += n;
  }
  return line;
}

static void fail_corrupt(int fd, const char *path, tt_fail *fail, off_t offset,
                         const char *fmt, const char *what) {
  uint64_t line = line_of(fd, offset);
  tether_json *data = tether_json_object();
  data = tether_json_object_set(data, "file", tether_json_string(path));
  data = tether_json_object_set(data, "line", tether_json_uint(line));
  data =
      tether_json_object_set(data, "offset", tether_json_int((int64_t)offset));
  char detail[512];
  snprintf(detail, sizeof detail, fmt, what);
  tt_fail_set(fail, TETHER_ERR_STATE_CORRUPT, data,
              "state file %s is damaged at line %" PRIu64
              ", byte offset %lld: %s; nothing was changed, repair or "
              "restore the file",
              path, line, (long long)offset, detail);
}

typedef enum scan_result { SCAN_COMPLETE, SCAN_INCOMPLETE } scan_result;

/* Finds the end of the JSON text starting at r->pos (an object or array:
 * events are objects) by counting brackets outside strings. Only finds the
 * end; the parser judges the text. */
static scan_result scan_text(reader *r, size_t *end) {
  const char *b = r->buf + r->pos;
  size_t n = r->len - r->pos;
  size_t i = r->scanned;
  while (i < n) {
    char c = b[i];
    if (r->in_string) {
      if (r->escaped) {
        r->escaped = false;
      } else if (c == '\\') {
        r->escaped = true;
      } else if (c == '"') {
        r->in_string = false;
      }
    } else if (c == '"') {
      r->in_string = true;
    } else if (c == '{' || c == '[') {
      r->depth++;
    } else if (c == '}' || c == ']') {
      if (--r->depth <= 0) {
        *end = r->pos + i + 1;
        return SCAN_COMPLETE;
      }
    }
    i++;
  }
  r->scanned = i;
  return SCAN_INCOMPLETE;
}

static void scan_reset(reader *r) {
  r->scanned = 0;
  r->depth = 0;
  r->in_string = false;
  r->escaped = false;
}

/* The JSON parser's message without its own "invalid JSON at byte N: "
 * (N counts from the start of the event, which would only confuse next
 * to the file offset we give). */
static const char *parse_reason(const tether_json_error *err) {
  static const char prefix[] = "invalid JSON at byte ";
  if (strncmp(err->message, prefix, sizeof prefix - 1) == 0) {
    const char *colon = strstr(err->message, ": ");
    if (colon)
      return colon + 2;
  }
  return err->message;
}

/* The longest cut inside one token that the parser reports at the token's
 * start rather than at the end of the input: a literal ("fals"), a \u
 * escape, a surrogate pair ("\uD83D\uDE0"), a UTF-8 sequence. */
#define LONGEST_TOKEN_CUT 12

/* True when t[0..n) is the beginning of a JSON text cut short, such as a
 * crash leaves; false with *err saying where it is not. The parser stops
 * at the end of the input for most cuts; for a cut inside one of the
 * tokens above it stops at the token's start, so a few bytes are taken
 * off and it is asked again. */
static bool valid_beginning(const char *t, size_t n, tether_json_error *err) {
  for (size_t k = 0; k <= LONGEST_TOKEN_CUT && k < n; k++) {
    tether_json_error e;
    tether_json *v = tether_json_parse(t, n - k, &e);
    if (v) {
      /* Complete, yet not found complete by the scanner: cannot happen
       * for text the two read alike, so it is not a cut either. */
      tether_json_unref(v);
      err->offset = n - k;
      snprintf(err->message, sizeof err->message,
               "a complete JSON text where the scanner saw none");
      return false;
    }
    if (k == 0)
      *err = e;
    if (e.offset >= n - k)
      return true;
    if (n > LONGEST_TOKEN_CUT && e.offset < n - LONGEST_TOKEN_CUT)
      return false; /* wrong well before the end */
  }
  return false;
}

/* Classifies what is left from r->pos to the end of the file, which holds
 * no complete JSON text: a torn tail (true) or damage (false, fail
 * filled). The whole rest is in the buffer. */
static bool classify_tail(reader *r, tt_fail *fail) {
  const char *t = r->buf + r->pos;
  size_t n = r->len - r->pos;
  while (n > 0 && t[n - 1] == '\0')
    n--;
  off_t at = r->base + (off_t)r->pos;
  if (n == 0)
    return true; /* only zero bytes: space a crash allocated, never data */
  if (t[0] != '{') {
    fail_corrupt(r->fd, r->path, fail, at, "%s",
                 t[0] == '\0' ? "zero bytes followed by more data"
                              : "expected '{' starting an event");
    return false;
  }
  tether_json_error err;
  if (!valid_beginning(t, n, &err)) {
    fail_corrupt(r->fd, r->path, fail, at + (off_t)err.offset, "%s",
                 parse_reason(&err));
    return false;
  }
  return true;
}

/* Checks the shape of one event and gives its index. The first event's
 * meta must have its "time"; later ones are only looked into as far as
 * replaying needs, which keeps a long replay fast. */
static const char *check_event(const tether_json *ev, bool first,
                               uint64_t *index) {
  if (!tether_json_is_object(ev))
    return "an event must be a JSON object";
  if (!tether_json_get_uint(tether_json_object_get(ev, "index"), index))
    return "the event has no \"index\" that is a non-negative integer";
  const tether_json *meta = tether_json_object_get(ev, "meta");
  if (!tether_json_is_object(meta))
    return "the event has no \"meta\" object";
  if (first && !tether_json_is_string(tether_json_object_get(meta, "time")))
    return "the event's meta has no \"time\" string";
  if (!tether_json_is_array(tether_json_object_get(ev, "patch")))
    return "the event has no \"patch\" array";
  return NULL;
}

const char *tt_log_check_state(const tether_json *state) {
  const char *type =
      tether_json_string_value(tether_json_object_get(state, "_type"));
  if (!type || strcmp(type, "nixopsState") != 0)
    return "the state is not an object with \"_type\": \"nixopsState\"";
  if (!tether_json_is_object(tether_json_object_get(state, "resources")))
    return "the state has no \"resources\" object";
  if (!tether_json_is_object(tether_json_object_get(state, "deployments")))
    return "the state has no \"deployments\" object";
  return NULL;
}

/* Checks parsed event number n of the file (at offset at): its shape and
 * its index. Returns its patch, or NULL with fail filled. */
static const tether_json *check_parsed(int fd, const char *path,
                                       const tether_json *ev, uint64_t n,
                                       off_t at, tt_fail *fail) {
  uint64_t index = 0;
  const char *err = check_event(ev, n == 0, &index);
  char why[400];
  if (!err && n == 0 && index != 0)
    err = "the first event must have index 0";
  /* NixOps4's writer stamps every appended event with index 0: such an
   * event takes its position as its index. */
  if (!err && n > 0 && index != 0 && index != n) {
    snprintf(why, sizeof why,
             "event number %" PRIu64 " has index %" PRIu64 " (expected %" PRIu64
             " or 0): the history is out of order",
             n, index, n);
    err = why;
  }
  if (err) {
    fail_corrupt(fd, path, fail, at, "%s", err);
    return NULL;
  }
  return tether_json_object_get(ev, "patch");
}

/* Resolving: events applied in order to the state. */
typedef struct applier {
  int fd;
  const char *path;
  tt_log_replay *out;
  tt_fail *fail;
} applier;

/* Applies the patch of the next event, found at file offset at. */
static bool apply_patch(applier *a, const tether_json *patch, off_t at) {
  tt_log_replay *out = a->out;
  const char *err = NULL;
  char why[400];
  tether_json_error perr;
  if (!tether_json_patch(&out->state, patch, &perr)) {
    snprintf(why, sizeof why,
             "event %" PRIu64 " does not apply to the state before it: %s",
             out->events, perr.message);
    err = why;
  }
  if (!err && out->events == 0)
    err = tt_log_check_state(out->state);
  if (err) {
    fail_corrupt(a->fd, a->path, a->fail, at, "%s", err);
    return false;
  }
  out->index = out->events;
  out->events++;
  return true;
}

/* ---- Reading ahead on a second thread ---- */

/* Files from this size on are replayed by two threads. */
#define PIPELINE_MIN (4u << 20)
/* Events travel in batches, so the threads meet once per batch; a bound
 * on the batches in flight bounds the memory the reader runs ahead by. */
#define BATCH_EVENTS 64
#define BATCHES_AHEAD 8

typedef struct parsed {
  tether_json *ev;
  const tether_json *patch; /* borrowed from ev */
  off_t at;
} parsed;

typedef struct batch {
  size_t n;
  parsed item[BATCH_EVENTS];
  struct batch *next;
} batch;

typedef struct pipeline {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  batch *full, *full_tail; /* parsed, for the applier, in order */
  batch *done;             /* applied, for the reader to free */
  size_t ahead;            /* batches handed over, not yet taken back */
  bool reader_done;        /* no more batches will come */
  bool stop;               /* the applier failed: read no further */
  atomic_uint news;        /* counts the changes above (see wait_news) */
  /* The reader's own. */
  batch *cur;      /* being filled */
  batch *spare;    /* emptied, for reuse */
  batch *applied;  /* given back, n events still to free */
} pipeline;

/* Spins this many times before sleeping (see wait_news). */
#define SPINS 2000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Tells the other thread that something it may wait for changed; mu
 * held. */
static void tell_news(pipeline *pl) {
  atomic_fetch_add_explicit(&pl->news, 1, memory_order_release);
  pthread_cond_broadcast(&pl->cv);
}

/* Waits, mu held, until the other thread tells news. It first watches
 * for a short while without the lock: a thread that goes to sleep takes
 * tens of microseconds to wake up again (much longer on a virtual
 * machine), and the other thread usually has the next batch, or room
 * for one, ready within a few. */
static void wait_news(pipeline *pl) {
  unsigned seen = atomic_load_explicit(&pl->news, memory_order_relaxed);
  pthread_mutex_unlock(&pl->mu);
  for (int i = 0; i < SPINS && atomic_load_explicit(&pl->news,
                                                     memory_order_acquire) ==
                                   seen;
       i++)
    cpu_relax();
  pthread_mutex_lock(&pl->mu);
  if (atomic_load_explicit(&pl->news, memory_order_relaxed) == seen)
    pthread_cond_wait(&pl->cv, &pl->mu);
}

static void free_events(batch *b) {
  for (size_t i = 0; i < b->n; i++)
    tether_json_unref(b->item[i].ev);
  b->n = 0;
}

/* Takes the batches the applier has given back; their events are freed
 * one or two at a time between parses (free_some). Called by the reader
 * with mu held. */
static void reclaim_locked(pipeline *pl) {
  while (pl->done) {
    batch *b = pl->done;
    pl->done = b->next;
    b->next = pl->applied;
    pl->applied = b;
    pl->ahead--;
  }
}

/* Frees up to n events of the batches given back. Freeing a whole batch
 * at once would overflow malloc's per-thread caches, and the next
 * batch's allocations would then take its slow path; a few at a time,
 * between parses, keeps both on the fast one. */
static void free_some(pipeline *pl, size_t n) {
  while (n && pl->applied) {
    batch *b = pl->applied;
    if (b->n == 0) {
      pl->applied = b->next;
      b->next = pl->spare;
      pl->spare = b;
      continue;
    }
    tether_json_unref(b->item[--b->n].ev);
    n--;
  }
}

/* Hands the current batch to the applier; false when it has failed. */
static bool hand_over(pipeline *pl) {
  batch *b = pl->cur;
  pl->cur = NULL;
  pthread_mutex_lock(&pl->mu);
  while (pl->ahead >= BATCHES_AHEAD && !pl->stop && !pl->done)
    wait_news(pl);
  reclaim_locked(pl);
  bool stop = pl->stop;
  if (!stop) {
    b->next = NULL;
    if (pl->full_tail)
      pl->full_tail->next = b;
    else
      pl->full = b;
    pl->full_tail = b;
    pl->ahead++;
    tell_news(pl);
  }
  pthread_mutex_unlock(&pl->mu);
  if (stop) {
    free_events(b);
    free(b);
  }
  return !stop;
}

/* Takes a checked event (consumed) for the applier. */
static bool pipeline_put(pipeline *pl, tether_json *ev,
                         const tether_json *patch, off_t at) {
  /* Two per event: the backlog shrinks even while the applier keeps up. */
  free_some(pl, 2);
  if (!pl->cur) {
    pl->cur = pl->spare;
    if (pl->cur)
      pl->spare = pl->cur->next;
    else
      pl->cur = tt_malloc(sizeof *pl->cur);
    pl->cur->n = 0;
  }
  pl->cur->item[pl->cur->n++] = (parsed){ev, patch, at};
  return pl->cur->n < BATCH_EVENTS || hand_over(pl);
}

/* Where parsed events go: applied at once, or handed to the applier
 * thread. */
typedef struct sink {
  applier *a;   /* one thread */
  pipeline *pl; /* two */
} sink;

static bool sink_put(sink *k, tether_json *ev, const tether_json *patch,
                     off_t at) {
  if (k->pl)
    return pipeline_put(k->pl, ev, patch, at);
  bool ok = apply_patch(k->a, patch, at);
  tether_json_unref(ev);
  return ok;
}

/* Reads the rest of the file into the buffer: only for a tail that holds
 * no complete text, which is small unless the file is damaged. */
static bool read_to_end(reader *r) {
  while (!r->eof)
    if (!refill(r))
      return false;
  return true;
}

/* Finds the end of the event starting at r->pos, refilling as needed.
 * Returns 1 with *end set, 0 when the file ends first, -1 on a read error
 * (errno set) or on damage found early (fail filled, errno 0). */
static int find_text_end(reader *r, size_t *end, tt_fail *fail) {
  scan_reset(r);
  /* An unfinished text that keeps growing is checked now and then, so a
   * file damaged early (a lost quote turns everything after it into one
   * long string) is reported without buffering the rest of it. */
  size_t check_at = 4 * CHUNK;
  while (scan_text(r, end) == SCAN_INCOMPLETE) {
    if (r->eof)
      return 0;
    /* Everything scanned so far belongs to this one unfinished text. */
    if (r->scanned >= check_at) {
      check_at *= 2;
      tether_json_error err;
      if (!valid_beginning(r->buf + r->pos, r->scanned, &err)) {
        fail_corrupt(r->fd, r->path, fail,
                     r->base + (off_t)(r->pos + err.offset), "%s",
                     parse_reason(&err));
        errno = 0;
        return -1;
      }
    }
    if (!refill(r))
      return -1;
  }
  return 1;
}

/* What the reading found besides the events. */
typedef struct read_end {
  uint64_t texts;  /* events parsed */
  off_t append_at; /* just after the whole events and their whitespace */
  off_t file_size;
  bool need_newline; /* the byte before append_at is not '\n' */
  off_t torn_at;     /* where an incomplete last event starts, or -1 */
} read_end;

/* Cuts the file into JSON texts, parses and checks them, and passes them
 * on in order (up to max_events, 0 for all). A tail that holds no
 * complete text is classified: torn (recorded in end->torn_at) or damage.
 * False with fail filled on damage or a read error, or without when the
 * applier has failed. */
static bool read_events(reader *r, uint64_t max_events, sink *k,
                        read_end *end, tt_fail *fail) {
  char prev = '\n'; /* the byte before the next text; none counts as '\n' */
  end->texts = 0;
  end->torn_at = -1;
  for (;;) {
    /* Skip the whitespace between texts. */
    for (;;) {
      while (r->pos < r->len && is_space(r->buf[r->pos]))
        prev = r->buf[r->pos++];
      if (r->pos < r->len || r->eof)
        break;
      if (!refill(r))
        goto read_error;
    }
    off_t at = r->base + (off_t)r->pos;
    if (r->pos == r->len)
      break; /* the end of the file, after whole events */
    if (max_events && end->texts >= max_events)
      return true;
    /* The fast path: the event is the rest of its line. */
    size_t stop = 0;
    tether_json *ev = NULL;
    const char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
    if (nl && r->buf[r->pos] == '{') {
      stop = (size_t)(nl - r->buf);
      ev = tether_json_parse(r->buf + r->pos, stop - r->pos, NULL);
    }
    if (!ev) {
      int found = 0;
      if (r->buf[r->pos] == '{') {
        found = find_text_end(r, &stop, fail);
        if (found < 0 && errno == 0)
          return false;
        if (found < 0)
          goto read_error;
        at = r->base + (off_t)r->pos;
      } else if (r->buf[r->pos] != '\0') {
        char what[48];
        unsigned char c = (unsigned char)r->buf[r->pos];
        if (c > 0x20 && c < 0x7f)
          snprintf(what, sizeof what, "'%c'", c);
        else
          snprintf(what, sizeof what, "byte 0x%02X", c);
        fail_corrupt(r->fd, r->path, fail, at,
                     "expected '{' starting an event, found %s", what);
        return false;
      }
      if (!found) {
        /* Nothing complete before the end of the file: a torn tail, or
         * damage. r->pos stays at it: the next event goes there. */
        if (!read_to_end(r))
          goto read_error;
        if (!classify_tail(r, fail))
          return false;
        end->torn_at = at;
        break;
      }
      tether_json_error err;
      ev = tether_json_parse(r->buf + r->pos, stop - r->pos, &err);
      if (!ev) {
        fail_corrupt(r->fd, r->path, fail, at + (off_t)err.offset, "%s",
                     parse_reason(&err));
        return false;
      }
    }
    const tether_json *patch =
        check_parsed(r->fd, r->path, ev, end->texts, at, fail);
    if (!patch) {
      tether_json_unref(ev);
      return false;
    }
    end->texts++;
    if (!sink_put(k, ev, patch, at))
      return false;
    prev = r->buf[stop - 1];
    r->pos = stop;
  }
  end->append_at = r->base + (off_t)r->pos;
  end->file_size = r->base + (off_t)r->len;
  end->need_newline = prev != '\n';
  return true;
read_error:
  tt_fail_set(fail, TETHER_ERR_FAILED, NULL, "reading state file %s: %s",
              r->path, strerror(errno));
  return false;
}

/* The reader thread of a two-thread replay. */
typedef struct read_job {
  reader *r;
  pipeline *pl;
  read_end *end;
  tt_fail fail; /* what the reading found wrong */
  bool ok;
} read_job;

static void *read_main(void *arg) {
  read_job *j = arg;
  pipeline *pl = j->pl;
  sink k = {.pl = pl};
  j->ok = read_events(j->r, 0, &k, j->end, &j->fail);
  /* The events before a problem are still applied. */
  if (pl->cur && pl->cur->n)
    hand_over(pl);
  free(pl->cur);
  pl->cur = NULL;
  free_some(pl, SIZE_MAX);
  pthread_mutex_lock(&pl->mu);
  pl->reader_done = true;
  tell_news(pl);
  pthread_mutex_unlock(&pl->mu);
  return NULL;
}

static void free_batches(batch *b) {
  while (b) {
    batch *next = b->next;
    free_events(b);
    free(b);
    b = next;
  }
}

/* Replays with a reader thread; false with *started unset when there is
 * none to be had, and nothing has been read then. */
static bool replay_two_threads(reader *r, applier *a, read_end *end,
                               tt_fail *fail, bool *started) {
  pipeline pl = {0};
  atomic_init(&pl.news, 0);
  read_job j = {.r = r, .pl = &pl, .end = end};
  pthread_mutex_init(&pl.mu, NULL);
  pthread_cond_init(&pl.cv, NULL);
  pthread_t reader_thread;
  *started = pthread_create(&reader_thread, NULL, read_main, &j) == 0;
  bool ok = *started;
  pthread_mutex_lock(&pl.mu);
  while (ok) {
    while (!pl.full && !pl.reader_done)
      wait_news(&pl);
    batch *b = pl.full;
    if (!b)
      break;
    pl.full = b->next;
    if (!pl.full)
      pl.full_tail = NULL;
    pthread_mutex_unlock(&pl.mu);
    for (size_t i = 0; i < b->n && ok; i++)
      ok = apply_patch(a, b->item[i].patch, b->item[i].at);
    pthread_mutex_lock(&pl.mu);
    b->next = pl.done;
    pl.done = b;
    pl.stop = !ok;
    tell_news(&pl);
  }
  pthread_mutex_unlock(&pl.mu);
  if (*started) {
    pthread_join(reader_thread, NULL);
    /* The applier's problem comes first in the file when it has one: the
     * reader stops at its own. */
    if (ok && !j.ok) {
      *fail = j.fail;
      ok = false;
    } else {
      tether_json_unref(j.fail.data);
    }
  }
  free_batches(pl.full);
  free_batches(pl.done);
  free_batches(pl.spare);
  pthread_mutex_destroy(&pl.mu);
  pthread_cond_destroy(&pl.cv);
  return ok;
}

bool tt_log_replay_fd(int fd, const char *path, uint64_t max_events,
                      tt_log_replay *out, tt_fail *fail) {
  reader r = {.fd = fd, .path = path};
  memset(out, 0, sizeof *out);
  out->state = tether_json_object();
  applier a = {.fd = fd, .path = path, .out = out, .fail = fail};
  read_end end = {0};
  struct stat st;
  bool ok = false, started = false;
  if (max_events == 0 && fstat(fd, &st) == 0 && st.st_size >= PIPELINE_MIN)
    ok = replay_two_threads(&r, &a, &end, fail, &started);
  if (!started) {
    sink k = {.a = &a};
    ok = read_events(&r, max_events, &k, &end, fail);
  }
  free(r.buf);
  if (ok && max_events && out->events >= max_events) {
    /* Validated as far as asked. */
  } else if (ok && out->events == 0) {
    ok = false;
    fail_corrupt(fd, path, fail, end.torn_at >= 0 ? end.torn_at : 0, "%s",
                 end.torn_at >= 0
                     ? "the file has no complete first event"
                     : "the file is empty: a state file starts with event 0");
  } else if (ok) {
    out->append_at = end.append_at;
    out->file_size = end.file_size;
    out->need_newline = end.need_newline;
    if (end.torn_at >= 0)
      fprintf(stderr,
              "warning: state file %s: ignoring an incomplete last event at "
              "line %" PRIu64 ", byte offset %lld (%lld bytes): a write cut "
              "short, never acknowledged; the next append cuts it off\n",
              path, line_of(fd, end.torn_at), (long long)end.torn_at,
              (long long)(end.file_size - end.torn_at));
  }
  if (!ok) {
    tether_json_unref(out->state);
    out->state = NULL;
  }
  return ok;
}

static void format_meta(tether_buf *out, const char *time,
                        const tether_json *event,
                        const tether_json *host_version) {
  tether_buf_append_str(out, "\"meta\":{\"time\":");
  tether_json_dump_string(time, strlen(time), out);
  if (event) {
    tether_buf_append_str(out, ",\"event\":");
    tether_json_dump(event, out);
  }
  if (host_version) {
    tether_buf_append_str(out, ",\"hostVersion\":");
    tether_json_dump(host_version, out);
  }
  tether_buf_append_char(out, '}');
}

void tt_log_format_event(tether_buf *out, bool newline_first, uint64_t index,
                         const char *time, const tether_json *event,
                         const tether_json *host_version,
                         const tether_json *patch) {
  if (newline_first)
    tether_buf_append_char(out, '\n');
  tether_buf_printf(out, "{\"index\":%" PRIu64 ",", index);
  format_meta(out, time, event, host_version);
  tether_buf_append_str(out, ",\"patch\":");
  tether_json_dump(patch, out);
  tether_buf_append_str(out, "}\n");
}

void tt_log_format_initial(tether_buf *out) {
  char time[32];
  tt_utc_now(time, sizeof time);
  tether_buf_append_str(out, "{\"index\":0,");
  format_meta(out, time, NULL, NULL);
  tether_buf_append_str(
      out, ",\"patch\":[{\"op\":\"add\",\"path\":\"\",\"value\":"
           "{\"_type\":\"nixopsState\",\"resources\":{},\"deployments\":{}}}]}"
           "\n");
}
