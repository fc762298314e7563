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
 * line) does a scanner find where the JSON text really ends. Events are
 * parsed by the validation walk alone (tt_json_parse_walked): jsmn's pass
 * would only agree with it, at a third of the replay's work.
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
 * Two threads replay a large file. It is cut into spans of lines, which
 * either thread parses (a newline is never inside a JSON string, so the
 * lines of a span are found without reading what comes before it), and
 * the thread that began the replay applies their events in the file's
 * order. Only lines that are each one whole event go this way: from the
 * first line that is anything else (an event NixOps4 pretty-printed over
 * many lines, damage, a torn tail), reading goes on event by event as
 * for a small file, and reports what it finds exactly as one thread
 * reading the whole file would: the first problem in the file wins.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json_internal.h"
#include "local.h"
#include "util.h"

#define CHUNK (1u << 20)
/* Files up to this size are asked into the page cache before a replay:
 * it is about to read all of them. */
#define WILLNEED_MAX ((off_t)1 << 30)

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
    tether_json *v = tt_json_parse_walked(t, n - k, &e);
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

/* Applies the patch of the next event, found at file offset at: the node
 * patch or, without it, token ptok of t. */
static bool apply_patch(applier *a, const tether_json *patch, tt_json_text *t,
                        uint32_t ptok, const tt_patch_digest *digest,
                        off_t at) {
  tt_log_replay *out = a->out;
  const char *err = NULL;
  char why[400];
  tether_json_error perr;
  if (patch ? !tether_json_patch(&out->state, patch, &perr)
            : !tt_json_patch_text_digested(&out->state, t, ptok, digest,
                                           &perr)) {
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

/* Cuts the file from r's position on into JSON texts, parses and checks
 * them, and applies them in order (up to max_events in all, 0 for all);
 * end->texts events came before r's position. A tail that holds no
 * complete text is classified: torn (recorded in end->torn_at) or damage.
 * False with fail filled on damage, a read error or an event that does
 * not apply. */
static bool read_events(reader *r, uint64_t max_events, applier *a,
                        read_end *end, tt_fail *fail) {
  char prev = '\n'; /* the byte before the next text; none counts as '\n' */
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
      ev = tt_json_parse_walked(r->buf + r->pos, stop - r->pos, NULL);
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
      ev = tt_json_parse_walked(r->buf + r->pos, stop - r->pos, &err);
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
    bool applied = apply_patch(a, patch, NULL, 0, NULL, at);
    tether_json_unref(ev);
    if (!applied)
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

/* ---- Replaying a large file on two threads ---- */

/* Files from this size on are replayed by two threads. */
#define PARALLEL_MIN (4u << 20)
/* The file is cut into spans of this many bytes. A span's events are the
 * lines that start in it: lines can be found from anywhere in the file,
 * since a newline is never inside a JSON string, so any thread can take
 * any span. */
#define SPAN (256u << 10)
/* Spans parsed and not yet applied, at most: bounds the memory a replay
 * runs ahead by. Four keep both threads busy; more only spread the
 * parsed events over more memory, which costs page faults and cache
 * misses (eight: 4 ms more of 105, and 1.3 MB more peak RSS, on the
 * 100,000-event benchmark; two: a third slower). */
#define SPANS_AHEAD 4
/* The room for a span's events (their texts and token indexes, about
 * three times the span's bytes); any that do not fit are allocated one
 * by one. */
#define SPAN_ARENA (1u << 20)
/* How many events ahead of the one it applies the applying thread asks
 * for the memory of the next (apply_span): enough for the fetch to
 * arrive, not so many that it pushes out what is in use. The state is
 * fetched in steps, one per event applied (tt_patch_ahead_step), so it
 * starts further ahead, where the event's text has arrived. */
#define TEXT_AHEAD 5
#define STATE_AHEAD 4

/* Whether a replay may use a second thread, and how many events the last
 * one on this thread applied that way: the tests compare the two ways of
 * replaying. */
static bool replay_parallel = true;
static _Thread_local uint64_t replay_parallel_events;

typedef struct parsed {
  tether_json *ev;
  /* The patch: token ptok of ev's text t, or (for an event read the
   * general way) the node patch. */
  tether_json *patch;
  tt_json_text *t;
  uint32_t ptok;
  uint64_t index;
  off_t at;
  /* What applying the patch reads of its text (tt_json_text_extent). */
  const char *text;
  size_t text_len;
  /* What fetching ahead reads of a raw patch, made by the thread that
   * parsed it. */
  tt_patch_digest digest;
} parsed;

/* A slot's span goes from free to parsing, to ready, to applied, to
 * freeing, and is free again once either thread has freed its events.
 * Their texts are in the slot's arena (tt_json_arena), so freeing them
 * takes no malloc arena's lock, whichever thread parsed them. */
typedef enum span_state {
  SPAN_FREE,
  SPAN_PARSING,
  SPAN_READY,
  SPAN_APPLIED,
  SPAN_FREEING
} span_state;

/* One span, parsed: the events of its lines in order, up to the first
 * line that is not one whole valid event. */
typedef struct span {
  parsed *item;
  size_t n, cap;
  /* Where its events' texts are, most of them: made and let go of
   * together, and used again for the next span in this slot. */
  tt_json_arena *arena;
  span_state state;
  /* The fast path ends in this span: at stop_at, the start of a line it
   * did not take, or (stop_at -1) where the span's events end. */
  bool stop;
  off_t stop_at;
  off_t end; /* just past the last line taken (when n > 0) */
} span;

/* The file as one thread reads a span of it. */
typedef struct span_buf {
  char *data;
  size_t len, cap;
  off_t from; /* file offset of data[0] */
  bool eof;   /* data runs to the end of the file */
} span_buf;

typedef struct parallel {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int fd;
  off_t size;       /* of the file when the replay began */
  uint64_t spans;   /* how many spans cover it */
  uint64_t next;    /* the next span to parse */
  uint64_t applied; /* spans applied: the next one to apply */
  bool done;        /* no more spans will be applied */
  int waiting;      /* threads asleep on cv */
  span slot[SPANS_AHEAD]; /* span k in slot k % SPANS_AHEAD */
  applier *a;
  bool failed;     /* an event did not apply: a->fail says why */
  off_t resume_at; /* where reading event by event takes over */
} parallel;

/* Makes b hold the file from `from` up to `upto` (or its end). False on
 * a read error. */
static bool span_read(int fd, span_buf *b, off_t from, off_t upto) {
  if (b->from != from || b->len == 0) {
    b->from = from;
    b->len = 0;
    b->eof = false;
  }
  size_t want = (size_t)(upto - from);
  if (want + 1 > b->cap) {
    b->cap = want + 1;
    b->data = tt_realloc(b->data, b->cap);
  }
  while (b->len < want && !b->eof) {
    ssize_t n = pread(fd, b->data + b->len, want - b->len,
                      from + (off_t)b->len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return false;
    if (n == 0)
      b->eof = true;
    b->len += (size_t)n;
  }
  b->data[b->len] = '\0';
  return true;
}

/* Adds an event to s: its patch is the node patch or, when that is NULL,
 * token ptok of t. */
static void span_push(span *s, tether_json *ev, tether_json *patch,
                      tt_json_text *t, uint32_t ptok, uint64_t index,
                      off_t at) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 256;
    s->item = tt_realloc(s->item, s->cap * sizeof *s->item);
  }
  parsed *e = &s->item[s->n++];
  e->ev = ev;
  e->patch = patch;
  e->t = t;
  e->ptok = ptok;
  e->index = index;
  e->at = at;
  if (patch) {
    tt_json_raw_extent(patch, &e->text, &e->text_len);
    e->digest.path = NULL;
  } else {
    tt_json_text_extent(t, &e->text, &e->text_len);
    tt_patch_digest_text(&e->digest, t, ptok);
  }
}

/* Whether key token j of t is name (n bytes, without escapes). */
static bool key_is(const tt_json_text *t, uint32_t j, const char *name,
                   size_t n) {
  const tt_tok *k = &t->toks[j];
  return k->end - k->start - 2 == n &&
         memcmp(t->text + k->start + 1, name, n) == 0;
}

/* What check_event finds in an event that is not the first, read from
 * the tokens of its text, which ev (just parsed, on this thread) holds:
 * its index, and where its patch is (*t, *ptok). False when the event
 * needs the closer look of check_event, which then also words what is
 * wrong. */
static bool event_parts(const tether_json *ev, uint64_t *index,
                        tt_json_text **t_out, uint32_t *ptok) {
  uint32_t root;
  tt_json_text *t = tt_json_raw_text(ev, &root);
  if (!t || !t->toks || t->dups || t->text[t->toks[root].start] != '{')
    return false;
  /* The first of each key: the text repeats none (dups). */
  uint32_t tok[3] = {0, 0, 0};
  const tt_tok *tk = t->toks;
  uint32_t j = root + 1;
  for (uint32_t k = 0; k < tk[root].count; k++) {
    if (!tok[0] && key_is(t, j, "index", 5))
      tok[0] = j + 1;
    else if (!tok[1] && key_is(t, j, "meta", 4))
      tok[1] = j + 1;
    else if (!tok[2] && key_is(t, j, "patch", 5))
      tok[2] = j + 1;
    j = tk[j + 1].next;
  }
  bool ok = tok[0] && tok[1] && tok[2] &&
            t->text[tk[tok[1]].start] == '{' &&
            t->text[tk[tok[2]].start] == '[';
  /* An index of plain digits; any other number goes the long way. */
  const char *d = ok ? t->text + tk[tok[0]].start : NULL;
  size_t len = ok ? tk[tok[0]].end - tk[tok[0]].start : 0;
  ok = ok && len > 0 && len < 20;
  uint64_t v = 0;
  for (size_t i = 0; ok && i < len; i++) {
    ok = d[i] >= '0' && d[i] <= '9';
    v = v * 10 + (uint64_t)(d[i] - '0');
  }
  if (!ok)
    return false;
  *index = v;
  *t_out = t;
  *ptok = tok[2];
  return true;
}

/* Parses span k into s: each line that starts in it, while each is one
 * whole event of the right shape. Anything else (a line that is not a
 * complete JSON text, an event spread over lines as NixOps4 writes them,
 * damage, the last line without its newline, a read error) stops the
 * fast path there; reading event by event takes over from that line and
 * finds what it is. */
static void parse_span(parallel *pl, uint64_t k, span *s, span_buf *b) {
  off_t lo = (off_t)k * SPAN;
  off_t hi = lo + SPAN < pl->size ? lo + SPAN : pl->size;
  off_t from = lo ? lo - 1 : 0; /* a line starts at lo when lo - 1 is '\n' */
  s->n = 0;
  s->stop = false;
  s->stop_at = -1;
  if (!s->arena)
    s->arena = tt_json_arena_new(SPAN_ARENA);
  b->len = 0;
  /* Room for the line that runs past hi, usually. */
  off_t upto = hi + SPAN / 4;
  if (!span_read(pl->fd, b, from, upto)) {
    s->stop = true;
    return;
  }
  size_t p = 0;
  if (lo > 0) {
    size_t first = (size_t)(hi - from);
    const char *nl = memchr(b->data, '\n', first < b->len ? first : b->len);
    if (!nl)
      return; /* no line starts here: one runs through the whole span */
    p = (size_t)(nl - b->data) + 1;
  }
  while (from + (off_t)p < hi) {
    off_t at = from + (off_t)p;
    const char *nl = memchr(b->data + p, '\n', b->len - p);
    if (!nl && !b->eof) {
      /* A line longer than what was read: read on. */
      upto = from + (off_t)b->len * 2;
      if (!span_read(pl->fd, b, from, upto)) {
        s->stop = true;
        s->stop_at = at;
        return;
      }
      continue;
    }
    tether_json *ev = NULL, *patch = NULL;
    tt_json_text *t = NULL;
    uint32_t ptok = 0;
    uint64_t index = 0;
    if (nl && b->data[p] == '{')
      ev = tt_json_parse_walked_in(s->arena, b->data + p,
                                   (size_t)(nl - b->data) - p, NULL);
    bool parts = ev && at > 0 && event_parts(ev, &index, &t, &ptok);
    if (ev && !parts && !check_event(ev, at == 0, &index))
      patch = tether_json_ref(tether_json_object_get(ev, "patch"));
    if (!parts && !patch) {
      tether_json_unref(ev);
      s->stop = true;
      s->stop_at = at;
      return;
    }
    span_push(s, ev, patch, t, ptok, index, at);
    p = (size_t)(nl - b->data) + 1;
    s->end = from + (off_t)p;
  }
}

static void free_span_events(span *s) {
  for (size_t i = 0; i < s->n; i++) {
    /* The other thread has written to them since (reference counts):
     * fetched ahead too. */
    if (i + TEXT_AHEAD < s->n) {
      const parsed *next = &s->item[i + TEXT_AHEAD];
      __builtin_prefetch(next->ev, 1);
      __builtin_prefetch(next->text, 1);
    }
    tether_json_unref(s->item[i].patch);
    tether_json_unref(s->item[i].ev);
  }
  s->n = 0;
  s->arena = tt_json_arena_reset(s->arena);
}

/* Applies span s's events in order (either thread frees them later). False when
 * the fast path ends here: an event failed to apply (pl->failed), or one
 * has an index that is not its position, or the span stopped;
 * pl->resume_at is then where reading event by event takes over, to
 * report the problem or read on. */
static bool apply_span(parallel *pl, span *s) {
  applier *a = pl->a;
  /* Applying waits on memory more than it computes. The events were
   * parsed on the other CPU and are in its caches, and the resources
   * they change lie anywhere in tens of megabytes: what the next events
   * read of both is fetched while this one is applied. */
  tt_patch_ahead ahead[STATE_AHEAD];
  for (size_t k = 0; k < STATE_AHEAD; k++)
    ahead[k].step = 0;
  for (size_t i = 0; i < s->n; i++) {
    parsed *e = &s->item[i];
    if (i + TEXT_AHEAD < s->n) {
      const parsed *next = &s->item[i + TEXT_AHEAD];
      for (size_t k = 0; k < next->text_len; k += 64)
        __builtin_prefetch(next->text + k);
    }
    /* The state has changed since: the memo starts empty. */
    tt_patch_ahead_memo memo = {NULL, NULL, 0, NULL};
    for (size_t k = 1; k < STATE_AHEAD; k++)
      tt_patch_ahead_step(&ahead[(i + k) % STATE_AHEAD], a->out->state, &memo);
    if (i + STATE_AHEAD < s->n) {
      const parsed *next = &s->item[i + STATE_AHEAD];
      if (next->patch)
        tt_patch_ahead_begin(&ahead[i % STATE_AHEAD], a->out->state,
                             next->patch, &memo);
      else
        tt_patch_ahead_begin_digest(&ahead[i % STATE_AHEAD], a->out->state,
                                    &next->digest, &memo);
    }
    uint64_t n = a->out->events;
    /* The checks of check_parsed that need the event's position; a
     * mismatch is reported by the one-thread reading. */
    if (n == 0 ? e->at != 0 || e->index != 0
               : e->index != 0 && e->index != n) {
      pl->resume_at = e->at;
      return false;
    }
    if (!apply_patch(a, e->patch, e->t, e->ptok, &e->digest, e->at)) {
      pl->failed = true;
      return false;
    }
  }
  if (s->n > 0)
    pl->resume_at = s->end;
  if (s->stop) {
    if (s->stop_at >= 0)
      pl->resume_at = s->stop_at;
    return false;
  }
  return true;
}

static void wake(parallel *pl) {
  if (pl->waiting)
    pthread_cond_broadcast(&pl->cv);
}

/* What each of the two threads does. Thread 0 applies the next span as
 * soon as it is parsed: the state, tens of megabytes touched at random,
 * stays in the caches of one CPU, where a state that moved between two
 * would cost more than the second thread saves. Otherwise a thread frees the events of a span that
 * is applied (whichever thread is free first: which of the two is the
 * busier one changes with the machine), else parses the next span while
 * fewer than SPANS_AHEAD are in hand (thread 0 only the one it is to
 * apply next, when the other thread has not begun it), else sleeps. So
 * thread 0 applies while thread 1 parses ahead, and the events are still
 * applied one span after the other in the file's order. */
static void parallel_work(parallel *pl, int self) {
  span_buf b = {0};
  pthread_mutex_lock(&pl->mu);
  while (!pl->done) {
    span *s = &pl->slot[pl->applied % SPANS_AHEAD];
    if (self == 0 && s->state == SPAN_READY) {
      pthread_mutex_unlock(&pl->mu);
      bool go_on = apply_span(pl, s);
      pthread_mutex_lock(&pl->mu);
      s->state = SPAN_APPLIED;
      pl->applied++;
      if (!go_on || pl->applied == pl->spans)
        pl->done = true;
      wake(pl);
      continue;
    }
    span *applied = NULL;
    for (size_t i = 0; i < SPANS_AHEAD && !applied; i++)
      if (pl->slot[i].state == SPAN_APPLIED)
        applied = &pl->slot[i];
    if (applied) {
      applied->state = SPAN_FREEING;
      pthread_mutex_unlock(&pl->mu);
      free_span_events(applied);
      pthread_mutex_lock(&pl->mu);
      applied->state = SPAN_FREE;
      wake(pl);
      continue;
    }
    span *t = &pl->slot[pl->next % SPANS_AHEAD];
    /* Thread 0 parses only the span it is to apply next, when nobody
     * has begun it: applying is the longer part, and parsing ahead is
     * the other thread's. */
    if (pl->next < pl->spans && t->state == SPAN_FREE &&
        (self != 0 || pl->next == pl->applied)) {
      uint64_t k = pl->next++;
      t->state = SPAN_PARSING;
      pthread_mutex_unlock(&pl->mu);
      parse_span(pl, k, t, &b);
      pthread_mutex_lock(&pl->mu);
      t->state = SPAN_READY;
      wake(pl);
      continue;
    }
    pl->waiting++;
    pthread_cond_wait(&pl->cv, &pl->mu);
    pl->waiting--;
  }
  pthread_mutex_unlock(&pl->mu);
  free(b.data);
}

static void *parallel_main(void *arg) {
  parallel_work(arg, 1);
  return NULL;
}

/* Replays the file's leading run of one-line events on two threads.
 * Returns false when an event failed to apply (fail filled); otherwise
 * *resume_at is where reading event by event goes on (the end of the
 * file when every line was an event). */
static bool replay_parallel_prefix(int fd, off_t size, applier *a,
                                   off_t *resume_at) {
  parallel pl = {.fd = fd,
                 .size = size,
                 .spans = ((uint64_t)size + SPAN - 1) / SPAN,
                 .a = a};
  pthread_mutex_init(&pl.mu, NULL);
  pthread_cond_init(&pl.cv, NULL);
  pthread_t helper;
  bool two = pthread_create(&helper, NULL, parallel_main, &pl) == 0;
  parallel_work(&pl, 0);
  if (two)
    pthread_join(helper, NULL);
  /* Spans parsed past where the replay stopped, and the other thread's
   * applied ones, are freed here. */
  for (size_t i = 0; i < SPANS_AHEAD; i++) {
    free_span_events(&pl.slot[i]);
    free(pl.slot[i].item);
    tt_json_arena_free(pl.slot[i].arena);
  }
  pthread_mutex_destroy(&pl.mu);
  pthread_cond_destroy(&pl.cv);
  replay_parallel_events = a->out->events;
  *resume_at = pl.resume_at;
  return !pl.failed;
}

bool tt_log_replay_fd(int fd, const char *path, uint64_t max_events,
                      tt_log_replay *out, tt_fail *fail) {
  reader r = {.fd = fd, .path = path};
  memset(out, 0, sizeof *out);
  out->state = tether_json_object();
  applier a = {.fd = fd, .path = path, .out = out, .fail = fail};
  read_end end = {0};
  struct stat st;
  bool ok = true;
  replay_parallel_events = 0;
  bool large = max_events == 0 && fstat(fd, &st) == 0 &&
               st.st_size >= PARALLEL_MIN;
  /* The state is built on this thread; it takes less room than the
   * file (about half, when most events update or remove what others
   * added), and what it does not take is only address space. */
  if (large) {
    tt_heap_expect((size_t)st.st_size);
    /* Pages of the file the system has let go of are read now, all at
     * once and in the background, rather than when a thread stops on
     * each. A hint: where it is not honoured, reading is as before. */
    if (st.st_size <= WILLNEED_MAX)
      (void)posix_fadvise(fd, 0, st.st_size, POSIX_FADV_WILLNEED);
  }
  if (large && replay_parallel) {
    ok = replay_parallel_prefix(fd, st.st_size, &a, &r.base);
    end.texts = out->events;
  }
  if (ok)
    ok = read_events(&r, max_events, &a, &end, fail);
  free(r.buf);
  if (large)
    tt_heap_settle();
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
