/*
 * json_value.c: the life of a JSON value: reference counting, the
 * constructors and accessors of scalars, lazy materialization, copy on
 * write, deep equality and the UTF-8 rules every string obeys.
 */
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"
#include "util.h"

static tether_json json_null = {TT_JSON_IMMORTAL, TETHER_JSON_NULL, false, 0};
static tether_json json_true = {TT_JSON_IMMORTAL, TETHER_JSON_BOOL, false, 0};
static tether_json json_false = {TT_JSON_IMMORTAL, TETHER_JSON_BOOL, false, 0};

void tt_json_set_error(tether_json_error *err, size_t offset, long op,
                       const char *fmt, ...) {
  if (!err)
    return;
  err->offset = offset;
  err->op = op;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
}

/* Before a home node in an arena: the arena's address, in 16 bytes so
 * that the node keeps malloc's alignment. */
#define ARENA_LINK 16

/* ---- Reference counting ---- */

tether_json *tether_json_ref(const tether_json *v) {
  tether_json *m = (tether_json *)v;
  if (m && m->refs != TT_JSON_IMMORTAL)
    m->refs++;
  return m;
}

void tt_json_text_ref(tt_json_text *t) {
  atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void tt_json_text_unref(tt_json_text *t) {
  if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (t->own_toks)
    free(t->toks);
  if (t->own_text)
    free(tt_json_text_base(t));
  if (t->arena) {
    tt_json_arena *a;
    memcpy(&a, (char *)t - TT_HOME_OFFSET - ARENA_LINK, sizeof a);
    tt_json_block_release(&a->block);
    return;
  }
  free(t->home ? (char *)t - TT_HOME_OFFSET : (char *)t);
}

void tt_json_block_release(tt_block *b) {
  if (atomic_fetch_sub_explicit(&b->parts, 1, memory_order_acq_rel) == 1)
    free(b);
}

static tt_block *block_of(const tether_json *v) {
  return (tt_block *)(void *)((char *)(uintptr_t)v -
                              (size_t)v->block_at * TT_BLOCK_ALIGN);
}

/* Lets go of the members of a materialized container (not the values
 * they hold). */
static void free_body(tether_json *v) {
  if (v->kind == TETHER_JSON_ARRAY) {
    tt_json_array *a = (tt_json_array *)v;
    if (a->block)
      tt_json_block_release(a->block);
    else
      free(a->items);
    return;
  }
  tt_json_object *o = (tt_json_object *)v;
  if (o->block) {
    tt_json_block_release(o->block);
  } else {
    free(o->members);
    free(o->keys);
  }
  free(o->slots);
}

/* A stack of nodes whose last reference is gone. Freeing works through it
 * instead of recursing, so a value nested a million levels deep (possible
 * when built through the API) does not overflow the C stack. */
typedef struct free_stack {
  tether_json **items;
  size_t len, cap;
  tether_json *small[32];
} free_stack;

static void release_child(free_stack *fs, tether_json *c) {
  if (c->refs == TT_JSON_IMMORTAL || --c->refs)
    return;
  if (fs->len == fs->cap) {
    size_t cap = fs->cap * 2;
    if (fs->items == fs->small) {
      fs->items = tt_malloc(cap * sizeof *fs->items);
      memcpy(fs->items, fs->small, sizeof fs->small);
    } else {
      fs->items = tt_realloc(fs->items, cap * sizeof *fs->items);
    }
    fs->cap = cap;
  }
  fs->items[fs->len++] = c;
}

static void free_node(free_stack *fs, tether_json *v) {
  switch ((tether_json_kind)v->kind) {
  case TETHER_JSON_NULL:
  case TETHER_JSON_BOOL:
  case TETHER_JSON_NUMBER:
  case TETHER_JSON_STRING:
    break;
  case TETHER_JSON_ARRAY: {
    tt_json_array *a = (tt_json_array *)v;
    tt_json_text *raw = atomic_load_explicit(&a->raw, memory_order_relaxed);
    /* A home node's raw text shares its home reference. */
    if (raw && !(v->home && raw == tt_home_text(v)))
      tt_json_text_unref(raw);
    for (size_t i = 0; i < a->count; i++) {
      /* Large containers' members are spread over the heap: start
       * fetching a few ahead. */
      if (i + 4 < a->count)
        __builtin_prefetch(a->items[i + 4]);
      release_child(fs, a->items[i]);
    }
    free_body(v);
    break;
  }
  case TETHER_JSON_OBJECT: {
    tt_json_object *o = (tt_json_object *)v;
    tt_json_text *raw = atomic_load_explicit(&o->raw, memory_order_relaxed);
    if (raw && !(v->home && raw == tt_home_text(v)))
      tt_json_text_unref(raw);
    for (size_t i = 0; i < o->used; i++) {
      if (i + 4 < o->used && o->members[i + 4].value)
        __builtin_prefetch(o->members[i + 4].value);
      if (o->members[i].value)
        release_child(fs, o->members[i].value);
    }
    free_body(v);
    break;
  }
  }
  if (v->home)
    tt_json_text_unref(tt_home_text(v));
  else if (v->block_at)
    tt_json_block_release(block_of(v));
  else
    free(v);
}

void tether_json_unref(tether_json *v) {
  if (!v || v->refs == TT_JSON_IMMORTAL || --v->refs)
    return;
  free_stack fs = {.len = 0, .cap = 32};
  fs.items = fs.small;
  free_node(&fs, v);
  while (fs.len)
    free_node(&fs, fs.items[--fs.len]);
  if (fs.items != fs.small)
    free(fs.items);
}

/* ---- Constructors ---- */

tether_json *tether_json_null(void) { return &json_null; }

tether_json *tether_json_bool(bool b) { return b ? &json_true : &json_false; }

tt_json_string *tt_json_alloc_string(size_t len) {
  if (len > SIZE_MAX - sizeof(tt_json_string) - 1)
    tt_oom();
  tt_json_string *s = tt_malloc(sizeof *s + len + 1);
  s->head.refs = 1;
  s->head.kind = TETHER_JSON_STRING;
  s->head.home = false;
  s->head.block_at = 0;
  s->len = len;
  s->bytes[len] = '\0';
  return s;
}

tt_json_number *tt_json_alloc_number(size_t len) {
  if (len > SIZE_MAX - sizeof(tt_json_number) - 1)
    tt_oom();
  tt_json_number *n = tt_malloc(sizeof *n + len + 1);
  n->head.refs = 1;
  n->head.kind = TETHER_JSON_NUMBER;
  n->head.home = false;
  n->head.block_at = 0;
  n->len = len;
  n->text[len] = '\0';
  return n;
}

tether_json *tt_json_new_string_raw(const char *s, size_t len) {
  tt_json_string *n = tt_json_alloc_string(len);
  if (len)
    memcpy(n->bytes, s, len);
  return &n->head;
}

/* The replacement character, U+FFFD, in UTF-8. */
static const char replacement[3] = {'\xEF', '\xBF', '\xBD'};

tether_json *tether_json_string_n(const char *s, size_t len) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  uint32_t cp;
  const char *why;
  while (i < len) {
    if (u[i] < 0x80) {
      i++;
      continue;
    }
    size_t n = tt_utf8_decode(u + i, len - i, &cp, &why);
    if (!n)
      break;
    i += n;
  }
  if (i == len)
    return tt_json_new_string_raw(s, len);

  /* Invalid UTF-8: copy, turning each invalid byte into U+FFFD. */
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_reserve(&b, len + 16);
  tether_buf_append(&b, s, i);
  while (i < len) {
    size_t n = u[i] < 0x80 ? 1 : tt_utf8_decode(u + i, len - i, &cp, &why);
    if (n) {
      tether_buf_append(&b, s + i, n);
      i += n;
    } else {
      tether_buf_append(&b, replacement, sizeof replacement);
      i++;
    }
  }
  tether_json *v = tt_json_new_string_raw(b.data, b.len);
  tether_buf_free(&b);
  return v;
}

tether_json *tether_json_string(const char *s) {
  return tether_json_string_n(s, strlen(s));
}

tether_json *tether_json_stringf(const char *fmt, ...) {
  tether_buf b;
  tether_buf_init(&b);
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0)
    n = 0;
  if ((size_t)n < sizeof small)
    return tether_json_string_n(small, (size_t)n);
  tether_buf_reserve(&b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b.data, (size_t)n + 1, fmt, ap);
  va_end(ap);
  tether_json *v = tether_json_string_n(b.data, (size_t)n);
  tether_buf_free(&b);
  return v;
}

tether_json *tether_json_array(void) {
  tt_json_array *a = tt_calloc(1, sizeof *a);
  a->head.refs = 1;
  a->head.kind = TETHER_JSON_ARRAY;
  atomic_init(&a->raw, NULL);
  return &a->head;
}

tether_json *tether_json_object(void) {
  tt_json_object *o = tt_calloc(1, sizeof *o);
  o->head.refs = 1;
  o->head.kind = TETHER_JSON_OBJECT;
  atomic_init(&o->raw, NULL);
  return &o->head;
}

/* Lays out a home node, its text of len bytes and room for ntok tokens
 * at mem. */
static tether_json *init_home(char *mem, tether_json_kind kind, size_t len,
                              uint32_t ntok, bool dups, bool arena) {
  size_t toks_size = (size_t)ntok * sizeof(tt_tok);
  tether_json *v = (tether_json *)(void *)mem;
  tt_json_text *t = tt_home_text(v);
  atomic_init(&t->refs, 1);
  t->own_toks = false;
  t->own_text = false;
  t->dups = dups;
  t->unindexed = false;
  t->home = true;
  t->inside = false;
  t->arena = arena;
  t->ntok = ntok;
  t->toks = ntok ? (tt_tok *)(void *)(t + 1) : NULL;
  t->text = (char *)(t + 1) + toks_size;
  t->len = len;
  t->text[len] = '\0';
  if (kind == TETHER_JSON_ARRAY) {
    tt_json_array *a = (tt_json_array *)v;
    memset(a, 0, sizeof *a);
    atomic_init(&a->raw, t);
  } else {
    tt_json_object *o = (tt_json_object *)v;
    memset(o, 0, sizeof *o);
    atomic_init(&o->raw, t);
  }
  v->refs = 1;
  v->kind = (uint8_t)kind;
  v->home = true;
  return v;
}

static size_t home_size(size_t len, uint32_t ntok) {
  size_t toks_size = (size_t)ntok * sizeof(tt_tok);
  if (len > SIZE_MAX - TT_HOME_OFFSET - sizeof(tt_json_text) - toks_size -
                ARENA_LINK - 16)
    tt_oom();
  return TT_HOME_OFFSET + sizeof(tt_json_text) + toks_size + len + 1;
}

tether_json *tt_json_new_home(tether_json_kind kind, size_t len, uint32_t ntok,
                              bool dups) {
  return init_home(tt_malloc(home_size(len, ntok)), kind, len, ntok, dups,
                   false);
}

/* ---- Arenas ---- */

tt_json_arena *tt_json_arena_new(size_t cap) {
  tt_json_arena *a = tt_malloc(sizeof *a + cap);
  atomic_init(&a->block.parts, 1);
  a->used = 0;
  a->cap = cap;
  return a;
}

tt_json_arena *tt_json_arena_reset(tt_json_arena *a) {
  if (!a)
    return NULL;
  if (atomic_load_explicit(&a->block.parts, memory_order_acquire) == 1) {
    a->used = 0;
    return a;
  }
  tt_json_block_release(&a->block);
  return NULL;
}

void tt_json_arena_free(tt_json_arena *a) {
  if (a)
    tt_json_block_release(&a->block);
}

tether_json *tt_json_new_home_in(tt_json_arena *a, tether_json_kind kind,
                                 size_t len, uint32_t ntok, bool dups) {
  size_t size = home_size(len, ntok);
  /* The arena's address, then the home node, 16-aligned as malloc's. */
  size_t need = (ARENA_LINK + size + 15) & ~(size_t)15;
  if (!a || a->cap - a->used < need)
    return tt_json_new_home(kind, len, ntok, dups);
  char *at = a->data + a->used;
  a->used += need;
  memcpy(at, &a, sizeof a);
  atomic_fetch_add_explicit(&a->block.parts, 1, memory_order_relaxed);
  return init_home(at + ARENA_LINK, kind, len, ntok, dups, true);
}

tether_json *tt_json_new_raw(tether_json_kind kind, tt_json_text *t,
                             uint32_t tok) {
  tether_json *v =
      kind == TETHER_JSON_ARRAY ? tether_json_array() : tether_json_object();
  if (kind == TETHER_JSON_ARRAY) {
    tt_json_array *a = (tt_json_array *)v;
    a->tok = tok;
    atomic_store_explicit(&a->raw, t, memory_order_relaxed);
  } else {
    tt_json_object *o = (tt_json_object *)v;
    o->tok = tok;
    atomic_store_explicit(&o->raw, t, memory_order_relaxed);
  }
  return v;
}

/* ---- Lazy materialization ---- */

/* A raw container being materialized holds this in its raw field: the
 * thread that swapped it in owns the node until it stores NULL, and other
 * threads wait. Materializing takes microseconds, so they wait by
 * yielding. */
tt_json_text tt_json_busy_marker;
#define RAW_BUSY TT_RAW_BUSY

static _Atomic(tt_json_text *) *raw_slot(tether_json *v, uint32_t **tok) {
  if (v->kind == TETHER_JSON_ARRAY) {
    tt_json_array *a = (tt_json_array *)v;
    *tok = &a->tok;
    return &a->raw;
  }
  tt_json_object *o = (tt_json_object *)v;
  *tok = &o->tok;
  return &o->raw;
}

void tt_json_force(const tether_json *cv) {
  if (!tt_json_is_raw(cv))
    return;
  /* Materializing changes the representation, never the value, so it is
   * done through a const pointer: every node lives in writable heap
   * memory. */
  tether_json *v = (tether_json *)cv;
  uint32_t *tok;
  _Atomic(tt_json_text *) *slot = raw_slot(v, &tok);
  tt_json_text *t = atomic_load_explicit(slot, memory_order_acquire);
  while (t) {
    if (t == RAW_BUSY) {
      sched_yield();
      t = atomic_load_explicit(slot, memory_order_acquire);
      continue;
    }
    if (atomic_compare_exchange_weak_explicit(slot, &t, RAW_BUSY,
                                              memory_order_acquire,
                                              memory_order_acquire)) {
      /* The k new raw members each need a reference to t, and v gives
       * its own up (a home node keeps it): one update for all, made
       * before the members are published so that t cannot go away
       * meanwhile. */
      size_t k = tt_json_materialize(v, t, *tok);
      size_t keep = v->home && t == tt_home_text(v) ? 1 : 0;
      if (k + keep > 1)
        atomic_fetch_add_explicit(&t->refs, (unsigned)(k + keep - 1),
                                  memory_order_relaxed);
      atomic_store_explicit(slot, NULL, memory_order_release);
      if (k + keep == 0)
        tt_json_text_unref(t);
      return;
    }
  }
}

tt_json_text *tt_json_raw_claim(const tether_json *v, uint32_t *tok,
                                bool wait) {
  if (v->kind != TETHER_JSON_ARRAY && v->kind != TETHER_JSON_OBJECT)
    return NULL;
  uint32_t *tokp;
  _Atomic(tt_json_text *) *slot = raw_slot((tether_json *)v, &tokp);
  tt_json_text *t = atomic_load_explicit(slot, memory_order_acquire);
  while (t) {
    if (t == RAW_BUSY) {
      if (!wait)
        return RAW_BUSY;
      sched_yield();
      t = atomic_load_explicit(slot, memory_order_acquire);
      continue;
    }
    if (atomic_compare_exchange_weak_explicit(slot, &t, RAW_BUSY,
                                              memory_order_acquire,
                                              memory_order_acquire)) {
      *tok = *tokp;
      return t;
    }
  }
  return NULL;
}

void tt_json_raw_release(const tether_json *v, tt_json_text *t) {
  uint32_t *tokp;
  _Atomic(tt_json_text *) *slot = raw_slot((tether_json *)v, &tokp);
  atomic_store_explicit(slot, t, memory_order_release);
}

size_t tt_json_raw_text_size(const tether_json *v) {
  uint32_t tok;
  tt_json_text *t = tt_json_raw_claim(v, &tok, true);
  if (!t)
    return 0;
  size_t len = t->len;
  tt_json_raw_release(v, t);
  return len;
}

tt_json_text *tt_json_text_new(const char *s, size_t len, uint32_t ntok,
                               bool dups) {
  size_t toks_size = (size_t)ntok * sizeof(tt_tok);
  tt_json_text *t = tt_malloc(sizeof *t + toks_size + len + 1);
  atomic_init(&t->refs, 1);
  t->own_toks = false;
  t->own_text = false;
  t->dups = dups;
  t->unindexed = false;
  t->home = false;
  t->inside = false;
  t->arena = false;
  t->ntok = ntok;
  t->toks = ntok ? (tt_tok *)(void *)(t + 1) : NULL;
  t->text = (char *)(t + 1) + toks_size;
  t->len = len;
  memcpy(t->text, s, len);
  t->text[len] = '\0';
  return t;
}

/* Token subtrees of at least this many tokens keep their tokens when
 * detached; smaller ones are scanned if anyone ever looks inside. */
#define DETACH_KEEP_TOKENS 4096

tether_json *tt_json_adopt(tether_json *v) {
  if (!tt_json_is_raw(v))
    return v;
  /* A value only the caller holds cannot be in use elsewhere; a shared
   * one is claimed while its text is copied. */
  bool shared = v->refs != 1;
  uint32_t *tokp;
  _Atomic(tt_json_text *) *slot = raw_slot(v, &tokp);
  uint32_t tok = *tokp;
  tt_json_text *t = shared ? tt_json_raw_claim(v, &tok, true)
                           : atomic_load_explicit(slot, memory_order_relaxed);
  if (!t)
    return v;
  if (tok == 0) {
    /* Its whole text already. (A home node's text is always that.) */
    if (shared)
      tt_json_raw_release(v, t);
    return v;
  }

  const tt_tok *tk = &t->toks[tok];
  size_t len = tk->end - tk->start;
  uint32_t ntok = tk->next - tok;
  bool keep_toks = ntok >= DETACH_KEEP_TOKENS;
  tt_json_text *nt = tt_json_text_new(t->text + tk->start, len,
                                      keep_toks ? ntok : 0, t->dups);
  if (keep_toks) {
    for (uint32_t i = 0; i < ntok; i++) {
      tt_tok src = t->toks[tok + i];
      nt->toks[i] = (tt_tok){src.start - tk->start, src.end - tk->start,
                             src.count, src.next - tok};
    }
  }

  if (!shared) {
    /* Nobody else can see v: change its text in place. */
    *tokp = 0;
    atomic_store_explicit(slot, nt, memory_order_relaxed);
    tt_json_text_unref(t);
    return v;
  }
  tt_json_raw_release(v, t);
  tether_json *copy = tt_json_new_raw((tether_json_kind)v->kind, nt, 0);
  tether_json_unref(v);
  return copy;
}

/* ---- Scratch buffers ---- */

void tt_sbuf_init(tt_sbuf *b) {
  b->data = b->small;
  b->len = 0;
  b->cap = sizeof b->small;
  b->small[0] = '\0';
}

void tt_sbuf_reserve(tt_sbuf *b, size_t n) {
  if (n < b->cap)
    return;
  if (n > SIZE_MAX / 2)
    tt_oom();
  size_t cap = b->cap * 2;
  while (cap <= n)
    cap *= 2;
  if (b->data == b->small) {
    b->data = tt_malloc(cap);
    memcpy(b->data, b->small, b->len + 1);
  } else {
    b->data = tt_realloc(b->data, cap);
  }
  b->cap = cap;
}

void tt_sbuf_set(tt_sbuf *b, const char *s, size_t n) {
  tt_sbuf_reserve(b, n);
  if (n)
    memcpy(b->data, s, n);
  b->data[n] = '\0';
  b->len = n;
}

void tt_sbuf_free(tt_sbuf *b) {
  if (b->data != b->small)
    free(b->data);
  tt_sbuf_init(b);
}

/* ---- Copy on write ---- */

tether_json *tt_json_unshare(tether_json *v) {
  tt_json_force(v);
  if (v->refs == 1)
    return v;
  tether_json *copy;
  if (v->kind == TETHER_JSON_ARRAY) {
    const tt_json_array *a = (const tt_json_array *)v;
    tt_json_array *c = (tt_json_array *)tether_json_array();
    c->cap = c->count = a->count;
    c->items = tt_malloc((a->count ? a->count : 1) * sizeof *c->items);
    for (size_t i = 0; i < a->count; i++)
      c->items[i] = tether_json_ref(a->items[i]);
    copy = &c->head;
  } else {
    const tt_json_object *o = (const tt_json_object *)v;
    tt_json_object *c = (tt_json_object *)tether_json_object();
    tt_json_object_reserve(c, o->live, o->keys_len);
    for (size_t i = 0; i < o->used; i++) {
      const tt_member *m = &o->members[i];
      if (m->value)
        tt_json_object_append(c, tt_member_key(o, m), m->key_len,
                              tether_json_ref(m->value));
    }
    copy = &c->head;
  }
  tether_json_unref(v);
  return copy;
}

/* ---- Inspection ---- */

tether_json_kind tether_json_kind_of(const tether_json *v) {
  return v ? (tether_json_kind)v->kind : TETHER_JSON_NULL;
}

const char *tether_json_kind_name(tether_json_kind k) {
  switch (k) {
  case TETHER_JSON_NULL:
    return "null";
  case TETHER_JSON_BOOL:
    return "boolean";
  case TETHER_JSON_NUMBER:
    return "number";
  case TETHER_JSON_STRING:
    return "string";
  case TETHER_JSON_ARRAY:
    return "array";
  case TETHER_JSON_OBJECT:
    return "object";
  }
  return "invalid";
}

bool tether_json_is_null(const tether_json *v) {
  return v && v->kind == TETHER_JSON_NULL;
}
bool tether_json_is_bool(const tether_json *v) {
  return v && v->kind == TETHER_JSON_BOOL;
}
bool tether_json_is_number(const tether_json *v) {
  return v && v->kind == TETHER_JSON_NUMBER;
}
bool tether_json_is_string(const tether_json *v) {
  return v && v->kind == TETHER_JSON_STRING;
}
bool tether_json_is_array(const tether_json *v) {
  return v && v->kind == TETHER_JSON_ARRAY;
}
bool tether_json_is_object(const tether_json *v) {
  return v && v->kind == TETHER_JSON_OBJECT;
}

bool tether_json_bool_value(const tether_json *v) { return v == &json_true; }

const char *tether_json_string_value(const tether_json *v) {
  if (!tether_json_is_string(v))
    return NULL;
  return ((const tt_json_string *)v)->bytes;
}

size_t tether_json_string_length(const tether_json *v) {
  if (!tether_json_is_string(v))
    return 0;
  return ((const tt_json_string *)v)->len;
}

/* ---- Equality ---- */

/* Whether two raw containers have the same compact text, which makes
 * them equal values. False when either is not raw (or busy). */
static bool same_raw_text(const tether_json *a, const tether_json *b) {
  uint32_t ta_tok, tb_tok;
  tt_json_text *ta = tt_json_raw_claim(a, &ta_tok, true);
  if (!ta)
    return false;
  bool same = false;
  /* The second claim must not wait: another thread could hold b and be
   * waiting for a. */
  tt_json_text *tb = a == b ? NULL : tt_json_raw_claim(b, &tb_tok, false);
  if (tb && tb != TT_RAW_BUSY) {
    const char *s1, *s2;
    size_t l1, l2;
    tt_json_text_slice(ta, ta_tok, &s1, &l1);
    tt_json_text_slice(tb, tb_tok, &s2, &l2);
    same = !ta->dups && !tb->dups && l1 == l2 && memcmp(s1, s2, l1) == 0;
    tt_json_raw_release(b, tb);
  }
  tt_json_raw_release(a, ta);
  return same;
}

typedef struct eq_frame {
  const tether_json *a, *b;
  size_t i;
} eq_frame;

typedef enum eq_result { EQ_DIFFERENT, EQ_SAME, EQ_DESCEND } eq_result;

/* Compares everything but the members of two containers. */
static eq_result compare_shallow(const tether_json *a, const tether_json *b) {
  if (a == b)
    return EQ_SAME;
  if (a->kind != b->kind)
    return EQ_DIFFERENT;
  switch ((tether_json_kind)a->kind) {
  case TETHER_JSON_NULL:
    return EQ_SAME;
  case TETHER_JSON_BOOL:
    return EQ_DIFFERENT; /* two distinct boolean nodes differ */
  case TETHER_JSON_NUMBER: {
    const tt_json_number *x = (const tt_json_number *)a;
    const tt_json_number *y = (const tt_json_number *)b;
    return tt_json_number_equal(x->text, x->len, y->text, y->len)
               ? EQ_SAME
               : EQ_DIFFERENT;
  }
  case TETHER_JSON_STRING: {
    const tt_json_string *x = (const tt_json_string *)a;
    const tt_json_string *y = (const tt_json_string *)b;
    return x->len == y->len && memcmp(x->bytes, y->bytes, x->len) == 0
               ? EQ_SAME
               : EQ_DIFFERENT;
  }
  case TETHER_JSON_ARRAY:
  case TETHER_JSON_OBJECT: {
    if (same_raw_text(a, b))
      return EQ_SAME;
    if (a->kind == TETHER_JSON_ARRAY)
      return tt_arr(a)->count == tt_arr(b)->count ? EQ_DESCEND : EQ_DIFFERENT;
    return tt_obj(a)->live == tt_obj(b)->live ? EQ_DESCEND : EQ_DIFFERENT;
  }
  }
  return EQ_DIFFERENT;
}

bool tether_json_equal(const tether_json *a, const tether_json *b) {
  if (!a || !b)
    return a == b;
  eq_result r = compare_shallow(a, b);
  if (r != EQ_DESCEND)
    return r == EQ_SAME;

  /* Walk with an explicit stack, for the same reason free does. */
  size_t cap = 32, len = 0;
  eq_frame *st = tt_malloc(cap * sizeof *st);
  st[len++] = (eq_frame){a, b, 0};
  bool equal = true;
  while (len && equal) {
    eq_frame *f = &st[len - 1];
    const tether_json *x = NULL, *y = NULL;
    if (f->a->kind == TETHER_JSON_ARRAY) {
      const tt_json_array *aa = (const tt_json_array *)f->a;
      if (f->i == aa->count) {
        len--;
        continue;
      }
      x = aa->items[f->i];
      y = ((const tt_json_array *)f->b)->items[f->i];
      f->i++;
    } else {
      const tt_json_object *oa = (const tt_json_object *)f->a;
      while (f->i < oa->used && !oa->members[f->i].value)
        f->i++;
      if (f->i == oa->used) {
        len--;
        continue;
      }
      const tt_member *m = &oa->members[f->i++];
      const tt_json_object *ob = (const tt_json_object *)f->b;
      long j = tt_json_object_find(ob, tt_member_key(oa, m), m->key_len);
      if (j < 0) {
        equal = false;
        break;
      }
      x = m->value;
      y = ob->members[j].value;
    }
    r = compare_shallow(x, y);
    if (r == EQ_DIFFERENT) {
      equal = false;
    } else if (r == EQ_DESCEND) {
      if (len == cap) {
        cap *= 2;
        st = tt_realloc(st, cap * sizeof *st);
      }
      st[len++] = (eq_frame){x, y, 0};
    }
  }
  free(st);
  return equal;
}

/* ---- UTF-8 ---- */

size_t tt_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp,
                      const char **why) {
  unsigned c = s[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c < 0xC0) {
    *why = "unexpected UTF-8 continuation byte";
    return 0;
  }
  if (c < 0xC2) {
    *why = "overlong UTF-8 encoding";
    return 0;
  }
  if (c >= 0xF5) {
    *why = "invalid UTF-8 byte";
    return 0;
  }
  size_t n = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  for (size_t i = 1; i < n; i++) {
    if (i >= len || (s[i] & 0xC0) != 0x80) {
      *why = "truncated UTF-8 sequence";
      return 0;
    }
  }
  if (n == 2) {
    *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    return 2;
  }
  if (n == 3) {
    if (c == 0xE0 && s[1] < 0xA0) {
      *why = "overlong UTF-8 encoding";
      return 0;
    }
    if (c == 0xED && s[1] >= 0xA0) {
      *why = "UTF-8 encoded surrogate";
      return 0;
    }
    *cp = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    return 3;
  }
  if (c == 0xF0 && s[1] < 0x90) {
    *why = "overlong UTF-8 encoding";
    return 0;
  }
  if (c == 0xF4 && s[1] >= 0x90) {
    *why = "UTF-8 code point above U+10FFFF";
    return 0;
  }
  *cp = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) |
        (s[3] & 0x3Fu);
  return 4;
}

size_t tt_utf8_encode(uint32_t cp, char *out) {
  unsigned char *o = (unsigned char *)out;
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (unsigned char)(0xF0 | (cp >> 18));
  o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}
