/*
 * json_patch.c: JSON Patch (RFC 6902), all or nothing.
 *
 * Operations modify the document in place and record each primitive
 * mutation (member set, added or removed; element set, inserted or
 * removed; root replaced) in an undo log. When an operation fails the log
 * is played backwards and the document is exactly what it was; when all
 * succeed the log's references to replaced values are dropped. A patch
 * therefore costs O(depth + operations), not O(document size), also on a
 * state document with 50,000 resources.
 *
 * Containers are modified in place only when the patch holds the only
 * reference to them. A shared container on the way to a target (someone
 * else holds the document, or an earlier "copy" put the same value in two
 * places) is copied first, and the copy replaces it through a logged
 * mutation of its parent, so nobody else's value ever changes.
 *
 * The object a member is set in, added to or removed from may still be
 * raw (a resource nobody has looked into since it was stored). When it is
 * small it stays raw: a new raw object with the change in its text
 * (json_splice.c) takes its place in its parent, through a logged
 * mutation like any other, and the old one is left as it was, also for
 * anyone else who holds it. Looking into it would cost a node per member
 * now and a serialization member by member later; a state replay sets
 * members of tens of thousands of resources that way. A second edit of
 * the object the first one made, which only the document holds, is made
 * in that object's text when it does not lengthen it: undoing the first
 * edit undoes both.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"
#include "util.h"

typedef enum op_kind {
  OP_ADD,
  OP_REMOVE,
  OP_REPLACE,
  OP_MOVE,
  OP_COPY,
  OP_TEST
} op_kind;

static const char *op_name(op_kind k) {
  switch (k) {
  case OP_ADD:
    return "add";
  case OP_REMOVE:
    return "remove";
  case OP_REPLACE:
    return "replace";
  case OP_MOVE:
    return "move";
  case OP_COPY:
    return "copy";
  case OP_TEST:
    return "test";
  }
  return "?";
}

/* ---- The undo log ---- */

typedef enum undo_kind {
  UNDO_ROOT,       /* the root was replaced; old is the previous root */
  UNDO_MEMBER_SET, /* members[index] of container held old */
  UNDO_MEMBER_ADD, /* a member was appended to container */
  UNDO_MEMBER_DEL, /* members[index] (old) became a tombstone */
  UNDO_ITEM_SET,   /* items[index] of container held old */
  UNDO_ITEM_ADD,   /* an element was inserted at index */
  UNDO_ITEM_DEL    /* the element old was removed from index */
} undo_kind;

typedef struct undo {
  undo_kind kind;
  tether_json *container; /* borrowed: alive in the document or the log */
  size_t index;
  tether_json *old; /* owned by the log */
} undo;

/* Where the target of an operation is: the container holding its last
 * token (NULL for "", the root itself) and, unless that is the root,
 * the container holding it in turn and its index there. Every container
 * above parent is owned by the patch; parent itself only once own_parent
 * says so (an edit of its text may replace it instead). */
typedef struct place {
  tether_json *parent;
  tether_json *holder;
  size_t at;
} place;

typedef struct patcher {
  tether_json *root;
  undo *log;
  size_t nlog, cap;
  undo small[16];
  tt_sbuf scratch; /* unescaped pointer tokens */
  tt_sbuf last;    /* the last token of the current target */
  /* "path" and "from" of an operation read from a raw patch. */
  tt_sbuf path_buf, from_buf;
  /* Serializations pasted into raw objects' texts. */
  tether_buf edit, edit_key;
  /* Where the last operation's parent was found, and by which pointer up
   * to its last '/': consecutive operations on members of one object (a
   * resource's inputs, then its status) find it again without walking.
   * Valid while every operation since added, replaced or removed a member
   * of that same parent: none of that moves it or anything above it. */
  place found;
  tt_sbuf found_prefix;
  bool found_valid;
  /* The raw object the last edit of a raw object's text made (raw_edit),
   * or NULL. Nobody else has seen it: while the document is its only
   * holder, a further edit that does not lengthen its text is made in
   * place (a state replay sets a resource's inputs, then its status). */
  tether_json *fresh;
  /* The digest of the operation being applied, when it covers the whole
   * of its path (the first operation of a replayed patch): the path's
   * segments are walked from it, and last_hash is the last token's hash
   * when last_hashed is set (locate_parent). */
  const tt_patch_digest *digest;
  uint32_t last_hash;
  bool last_hashed;
  /* For messages. */
  long op;
  op_kind kind;
  const char *path, *from;
  tether_json_error *err;
} patcher;

static void log_undo(patcher *p, undo_kind kind, tether_json *container,
                     size_t index, tether_json *old) {
  if (p->nlog == p->cap) {
    size_t cap = p->cap * 2;
    if (p->log == p->small) {
      p->log = tt_malloc(cap * sizeof *p->log);
      memcpy(p->log, p->small, sizeof p->small);
    } else {
      p->log = tt_realloc(p->log, cap * sizeof *p->log);
    }
    p->cap = cap;
  }
  p->log[p->nlog++] = (undo){kind, container, index, old};
}

static void rollback(patcher *p) {
  while (p->nlog) {
    undo *u = &p->log[--p->nlog];
    switch (u->kind) {
    case UNDO_ROOT:
      tether_json_unref(p->root);
      p->root = u->old;
      break;
    case UNDO_MEMBER_SET: {
      tt_json_object *o = (tt_json_object *)u->container;
      tether_json_unref(o->members[u->index].value);
      o->members[u->index].value = u->old;
      break;
    }
    case UNDO_MEMBER_ADD:
      tether_json_unref(tt_json_object_pop((tt_json_object *)u->container));
      break;
    case UNDO_MEMBER_DEL:
      tt_json_object_restore((tt_json_object *)u->container, u->index,
                             u->old);
      break;
    case UNDO_ITEM_SET: {
      tt_json_array *a = (tt_json_array *)u->container;
      tether_json_unref(a->items[u->index]);
      a->items[u->index] = u->old;
      break;
    }
    case UNDO_ITEM_ADD:
      tether_json_unref(
          tt_json_array_take_at((tt_json_array *)u->container, u->index));
      break;
    case UNDO_ITEM_DEL:
      tt_json_array_insert_at((tt_json_array *)u->container, u->index,
                              u->old);
      break;
    }
  }
}

static void commit(patcher *p) {
  /* Values first, then compaction: an object compacted here is alive,
   * since the document or a later log entry still holds it. */
  for (size_t i = 0; i < p->nlog; i++) {
    undo *u = &p->log[i];
    if (u->kind == UNDO_MEMBER_DEL)
      tt_json_object_maybe_compact((tt_json_object *)u->container);
    tether_json_unref(u->old);
  }
  p->nlog = 0;
}

/* ---- Messages ---- */

TETHER_PRINTF(2, 3)
static bool fail(patcher *p, const char *fmt, ...) {
  char what[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  if (p->from)
    tt_json_set_error(p->err, 0, p->op,
                      "patch operation %ld (%s %.60s to %.60s): %s", p->op,
                      op_name(p->kind), p->from, p->path, what);
  else
    tt_json_set_error(p->err, 0, p->op, "patch operation %ld (%s %.80s): %s",
                      p->op, op_name(p->kind), p->path, what);
  return false;
}

/* ---- Finding things ---- */

static bool is_container(const tether_json *v) {
  return v->kind == TETHER_JSON_ARRAY || v->kind == TETHER_JSON_OBJECT;
}

/* Makes the root exclusively the patch's own. */
static void own_root(patcher *p) {
  if (!is_container(p->root))
    return;
  if (p->root->refs == 1) {
    tt_json_force(p->root);
    return;
  }
  tether_json *old = p->root;
  tether_json_ref(old);
  p->root = tt_json_unshare(old);
  log_undo(p, UNDO_ROOT, NULL, 0, old);
}

/* Makes the container in slot i of (owned, materialized) parent
 * exclusively owned and materialized, replacing a shared one by a copy
 * through a logged mutation. */
static tether_json *own_child(patcher *p, tether_json *parent, size_t i) {
  tether_json **slot =
      parent->kind == TETHER_JSON_OBJECT
          ? &((tt_json_object *)parent)->members[i].value
          : &((tt_json_array *)parent)->items[i];
  tether_json *child = *slot;
  if (!is_container(child))
    return child;
  if (child->refs == 1) {
    tt_json_force(child);
    return child;
  }
  tether_json_ref(child);
  *slot = tt_json_unshare(child);
  log_undo(p,
           parent->kind == TETHER_JSON_OBJECT ? UNDO_MEMBER_SET
                                              : UNDO_ITEM_SET,
           parent, i, child);
  return *slot;
}

/* Where an array index token points: false with a message when it is not
 * an index, or (unless allow_end) is "-" or >= size. */
static bool array_index(patcher *p, const tether_json *arr, const char *tok,
                        size_t toklen, bool allow_end, size_t *out) {
  size_t n = tether_json_array_size(arr);
  char q[80];
  tt_quote_token(q, sizeof q, tok, toklen);
  if (toklen == 1 && tok[0] == '-') {
    if (!allow_end)
      return fail(p, "index '-' (past the last element) cannot be used here");
    *out = n;
    return true;
  }
  if (!tt_pointer_index(tok, toklen, out))
    return fail(p, "%s is not an array index", q);
  if (*out > n || (*out == n && !allow_end))
    return fail(p, "index %zu out of range (the array has %zu elements)",
                *out, n);
  return true;
}

/* Looks a token up in container cur: the index of the member or element,
 * or false with a message. */
static bool find_child_hashed(patcher *p, const tether_json *cur,
                              const char *tok, size_t toklen, bool hashed,
                              uint32_t hash, size_t *index) {
  char q[80];
  if (tether_json_is_object(cur)) {
    const tt_json_object *o = tt_obj(cur);
    long i = hashed && o->nslots
                 ? tt_json_object_find_hashed(o, tok, toklen, hash)
                 : tt_json_object_find(o, tok, toklen);
    if (i < 0) {
      tt_quote_token(q, sizeof q, tok, toklen);
      return fail(p, "no such member %s", q);
    }
    *index = (size_t)i;
    return true;
  }
  if (tether_json_is_array(cur))
    return array_index(p, cur, tok, toklen, false, index);
  tt_quote_token(q, sizeof q, tok, toklen);
  return fail(p, "cannot look up %s in %s", q,
              tether_json_kind_name(tether_json_kind_of(cur)));
}

static bool find_child(patcher *p, const tether_json *cur, const char *tok,
                       size_t toklen, size_t *index) {
  return find_child_hashed(p, cur, tok, toklen, false, 0, index);
}

/* Looks up the last token of the target (locate_parent) in cur. */
static bool find_last(patcher *p, const tether_json *cur, size_t *index) {
  return find_child_hashed(p, cur, p->last.data, p->last.len, p->last_hashed,
                           p->last_hash, index);
}

static tether_json *child_at(const tether_json *cur, size_t i) {
  if (cur->kind == TETHER_JSON_OBJECT)
    return tt_obj(cur)->members[i].value;
  return tt_arr(cur)->items[i];
}

static bool check_pointer(patcher *p, const char *ptr) {
  if (ptr[0] && ptr[0] != '/')
    return fail(p, "a JSON pointer must be empty or start with '/'");
  return true;
}

/* The value at pointer ptr, borrowed; NULL with a message. */
static tether_json *lookup(patcher *p, const char *ptr) {
  if (!check_pointer(p, ptr))
    return NULL;
  size_t len = strlen(ptr), pos = 0;
  tether_json *cur = p->root;
  while (pos < len) {
    const char *tok;
    size_t toklen, i;
    if (!tt_pointer_next(ptr, len, &pos, &p->scratch, &tok, &toklen)) {
      fail(p, "'~' must be followed by '0' or '1' in a JSON pointer");
      return NULL;
    }
    if (!find_child(p, cur, tok, toklen, &i))
      return NULL;
    cur = child_at(cur, i);
  }
  return cur;
}

static void own_parent(patcher *p, place *pl) {
  if (pl->holder)
    pl->parent = own_child(p, pl->holder, pl->at);
}

/* Where the last token of a path (len bytes long) is found: in pl's
 * parent, and (with a holder) the same again for a path that shares the
 * prefix up to its last '/'. */
static bool found_parent(patcher *p, const char *ptr, size_t prefix,
                         const char *tok, size_t toklen, tether_json *cur,
                         tether_json *holder, size_t at, place *pl) {
  if (!is_container(cur)) {
    char q[80];
    tt_quote_token(q, sizeof q, tok, toklen);
    return fail(p, "cannot look up %s in %s", q,
                tether_json_kind_name(tether_json_kind_of(cur)));
  }
  tt_sbuf_set(&p->last, tok, toklen);
  *pl = (place){cur, holder, at};
  if (holder) {
    p->found = *pl;
    tt_sbuf_set(&p->found_prefix, ptr, prefix);
    p->found_valid = true;
  }
  return true;
}

/* locate_parent for a path that is p->digest's: its segments, which have
 * no escapes, and their hashes come from the digest. */
static bool locate_digested(patcher *p, const char *ptr, place *pl) {
  const tt_patch_digest *d = p->digest;
  p->found_valid = false;
  tether_json *cur = p->root, *holder = NULL;
  size_t at = 0;
  for (uint32_t k = 0; k < d->nseg; k++) {
    size_t seg = (k ? d->end[k - 1] : 0) + 1;
    const char *tok = ptr + seg;
    size_t toklen = d->end[k] - seg;
    if (k + 1 == d->nseg) {
      p->last_hash = d->hash[k];
      p->last_hashed = true;
      return found_parent(p, ptr, seg - 1, tok, toklen, cur, holder, at, pl);
    }
    size_t i;
    if (!find_child_hashed(p, cur, tok, toklen, true, d->hash[k], &i))
      return false;
    if (k + 2 < d->nseg) {
      cur = own_child(p, cur, i);
    } else {
      /* The next token is the last: this child is the parent. */
      holder = cur;
      at = i;
      cur = child_at(cur, i);
    }
  }
  return true;
}

/* Walks to the container that holds the last token of ptr and leaves
 * that token in p->last. */
static bool locate_parent(patcher *p, const char *ptr, place *pl) {
  if (!check_pointer(p, ptr))
    return false;
  own_root(p);
  *pl = (place){NULL, NULL, 0};
  p->last_hashed = false;
  /* The digest is the path's, not the "from" of a move. */
  if (p->digest && ptr == p->path)
    return locate_digested(p, ptr, pl);
  size_t len = strlen(ptr), pos = 0;
  const char *slash = len ? memrchr(ptr, '/', len) : NULL;
  size_t prefix = slash ? (size_t)(slash - ptr) : 0;
  if (p->found_valid && slash && prefix == p->found_prefix.len &&
      memcmp(ptr, p->found_prefix.data, prefix) == 0) {
    const char *tok;
    size_t toklen;
    pos = prefix;
    if (!tt_pointer_next(ptr, len, &pos, &p->scratch, &tok, &toklen))
      return fail(p, "'~' must be followed by '0' or '1' in a JSON pointer");
    *pl = p->found;
    pl->parent = child_at(pl->holder, pl->at);
    if (!is_container(pl->parent)) {
      char q[80];
      tt_quote_token(q, sizeof q, tok, toklen);
      return fail(p, "cannot look up %s in %s", q,
                  tether_json_kind_name(tether_json_kind_of(pl->parent)));
    }
    tt_sbuf_set(&p->last, tok, toklen);
    return true;
  }
  p->found_valid = false;
  tether_json *cur = p->root, *holder = NULL;
  size_t at = 0;
  while (pos < len) {
    const char *tok;
    size_t toklen;
    if (!tt_pointer_next(ptr, len, &pos, &p->scratch, &tok, &toklen))
      return fail(p, "'~' must be followed by '0' or '1' in a JSON pointer");
    if (pos == len)
      return found_parent(p, ptr, prefix, tok, toklen, cur, holder, at, pl);
    size_t i;
    if (!find_child(p, cur, tok, toklen, &i))
      return false;
    if (memchr(ptr + pos + 1, '/', len - pos - 1)) {
      cur = own_child(p, cur, i);
    } else {
      /* The next token is the last: this child is the parent. */
      holder = cur;
      at = i;
      cur = child_at(cur, i);
    }
  }
  return true;
}

/* ---- Primitive operations on a located target ---- */

/* The parts of one operation object, checked for shape. The value is
 * either a node or, for an operation read from a raw patch, token vtok of
 * vt, built only when the operation needs it. */
typedef struct op_parts {
  op_kind kind;
  const char *path;
  const char *from;
  const tether_json *value;
  tt_json_text *vt;
  uint32_t vtok;
} op_parts;

/* A new reference to the operation's value, ready to be stored. */
static tether_json *op_value(const op_parts *op) {
  if (op->value)
    return tether_json_ref(op->value);
  return tt_json_build_detached(op->vt, op->vtok);
}

/* The value an add or a replace stores: a node (owned), or else the
 * value of op, built only when it is stored as a node. */
typedef struct value_src {
  tether_json *node;
  const op_parts *op;
} value_src;

static tether_json *take_value(value_src *v) {
  tether_json *n = v->node ? v->node : op_value(v->op);
  v->node = NULL;
  return n;
}

static void drop_value(value_src *v) {
  if (v) {
    tether_json_unref(v->node);
    v->node = NULL;
  }
}

/* The value's serialization, into p->edit unless a raw patch holds it
 * already (a parsed text is its serialization, one with a repeated key
 * excepted: then false). */
static bool value_text(patcher *p, const value_src *v, const char **s,
                       size_t *len) {
  const tether_json *node = v->node ? v->node : v->op->value;
  if (!node) {
    const tt_json_text *t = v->op->vt;
    if (t->dups)
      return false;
    *s = t->text + t->toks[v->op->vtok].start;
    *len = t->toks[v->op->vtok].end - t->toks[v->op->vtok].start;
    return true;
  }
  p->edit.len = 0;
  tether_json_dump(node, &p->edit);
  *s = p->edit.data;
  *len = p->edit.len;
  return true;
}

/* Raw objects up to this size are edited as text; a larger one is
 * materialized, after which its hash index finds members in O(1) and a
 * change costs O(1), where an edit of the text costs a copy of it. */
#define RAW_EDIT_MAX 8192

typedef enum edit_result { EDIT_DECLINED, EDIT_DONE, EDIT_FAILED } edit_result;

/* Applies an add, replace or remove of member p->last of pl->parent by
 * putting a raw object with the change in its text in its place, when
 * the parent is a small raw object that repeats no key (its text is then
 * its serialization): EDIT_DECLINED otherwise, and the caller goes the
 * ordinary way. v (NULL for a remove) is not consumed. */
static edit_result raw_edit(patcher *p, place *pl, op_kind kind,
                            const value_src *v) {
  tether_json *parent = pl->parent;
  if (!pl->holder || parent->kind != TETHER_JSON_OBJECT ||
      !tt_json_is_raw(parent))
    return EDIT_DECLINED;
  /* The value's text first: serializing it may need to claim the parent
   * (a copy of an object into itself). */
  const char *vs = NULL;
  size_t vlen = 0;
  if (kind != OP_REMOVE &&
      (!value_text(p, v, &vs, &vlen) || vlen > RAW_EDIT_MAX))
    return EDIT_DECLINED;
  /* Someone else may hold the parent and be looking into it. */
  uint32_t tok;
  tt_json_text *t = tt_json_raw_claim(parent, &tok, true);
  if (!t)
    return EDIT_DECLINED;
  const char *s;
  size_t len;
  tt_json_text_slice(t, tok, &s, &len);
  if (t->dups || len > RAW_EDIT_MAX) {
    tt_json_raw_release(parent, t);
    return EDIT_DECLINED;
  }
  const char *key = p->last.data;
  size_t keylen = p->last.len;
  tt_raw_member m;
  bool found = tt_json_raw_find(s, len, key, keylen, &m);
  if (found && kind != OP_REMOVE && parent == p->fresh && parent->refs == 1 &&
      vlen <= m.end - m.value) {
    /* This patch made the object and the document alone holds it: the
     * new value goes where the old one was, and the rest of the text
     * moves up. Undoing the edit that made it undoes this one too. */
    char *d = t->text;
    memmove(d + m.value + vlen, d + m.end, len - m.end);
    memcpy(d + m.value, vs, vlen);
    t->len = len - (m.end - m.value) + vlen;
    d[t->len] = '\0';
    tt_json_raw_release(parent, t);
    return EDIT_DONE;
  }
  tether_json *edited = NULL;
  if (!found && kind != OP_ADD) {
    /* Nothing changes. */
  } else if (kind == OP_REMOVE) {
    /* The member goes with the comma after it, or before it when it is
     * the last one. */
    size_t from = m.key, to = m.end;
    if (s[to] == ',')
      to++;
    else if (s[from - 1] == ',')
      from--;
    edited = tt_json_raw_splice(s, len, from, to, NULL, 0, NULL, 0);
  } else if (found) {
    edited = tt_json_raw_splice(s, len, m.value, m.end, vs, vlen, NULL, 0);
  } else {
    /* A new member goes last, as tt_json_object_append puts it. */
    tether_buf *k = &p->edit_key;
    k->len = 0;
    if (s[1] != '}')
      tether_buf_append_char(k, ',');
    tether_json_dump_string(key, keylen, k);
    tether_buf_append_char(k, ':');
    edited = tt_json_raw_splice(s, len, len - 1, len - 1, k->data, k->len, vs,
                                vlen);
  }
  tt_json_raw_release(parent, t);
  if (!edited) {
    char q[80];
    tt_quote_token(q, sizeof q, key, keylen);
    fail(p, "no such member %s", q);
    return EDIT_FAILED;
  }
  /* The holder's reference to the old parent passes to the log. */
  if (pl->holder->kind == TETHER_JSON_OBJECT) {
    tt_json_object *o = (tt_json_object *)pl->holder;
    log_undo(p, UNDO_MEMBER_SET, pl->holder, pl->at, parent);
    o->members[pl->at].value = edited;
  } else {
    tt_json_array *a = (tt_json_array *)pl->holder;
    log_undo(p, UNDO_ITEM_SET, pl->holder, pl->at, parent);
    a->items[pl->at] = edited;
  }
  pl->parent = edited;
  p->fresh = edited;
  return EDIT_DONE;
}

/* Adds (or, for an existing member, replaces) the value at ptr; consumes
 * v's node. */
static bool do_add(patcher *p, const char *ptr, value_src *v) {
  place pl;
  if (!locate_parent(p, ptr, &pl)) {
    drop_value(v);
    return false;
  }
  tether_json *parent = pl.parent;
  if (parent) {
    edit_result r = raw_edit(p, &pl, OP_ADD, v);
    if (r != EDIT_DECLINED) {
      drop_value(v);
      return r == EDIT_DONE;
    }
    own_parent(p, &pl);
    parent = pl.parent;
  }
  tether_json *value = tt_json_adopt(take_value(v));
  if (!parent) {
    log_undo(p, UNDO_ROOT, NULL, 0, p->root);
    p->root = value;
    return true;
  }
  const char *key = p->last.data;
  size_t keylen = p->last.len;
  if (parent->kind == TETHER_JSON_OBJECT) {
    tt_json_object *o = (tt_json_object *)parent;
    long i = p->last_hashed && o->nslots
                 ? tt_json_object_find_hashed(o, key, keylen, p->last_hash)
                 : tt_json_object_find(o, key, keylen);
    if (i >= 0) {
      log_undo(p, UNDO_MEMBER_SET, parent, (size_t)i, o->members[i].value);
      o->members[i].value = value;
    } else {
      tt_json_object_append(o, key, keylen, value);
      log_undo(p, UNDO_MEMBER_ADD, parent, 0, NULL);
    }
    return true;
  }
  size_t i;
  if (!array_index(p, parent, key, keylen, true, &i)) {
    tether_json_unref(value);
    return false;
  }
  tt_json_array_insert_at((tt_json_array *)parent, i, value);
  log_undo(p, UNDO_ITEM_ADD, parent, i, NULL);
  return true;
}

static bool do_remove(patcher *p, const char *ptr) {
  place pl;
  if (!locate_parent(p, ptr, &pl))
    return false;
  if (!pl.parent)
    return fail(p, "the whole document cannot be removed");
  edit_result r = raw_edit(p, &pl, OP_REMOVE, NULL);
  if (r != EDIT_DECLINED)
    return r == EDIT_DONE;
  own_parent(p, &pl);
  tether_json *parent = pl.parent;
  size_t i;
  if (!find_last(p, parent, &i))
    return false;
  if (parent->kind == TETHER_JSON_OBJECT) {
    tether_json *old = tt_json_object_take((tt_json_object *)parent, i, false);
    log_undo(p, UNDO_MEMBER_DEL, parent, i, old);
  } else {
    tether_json *old = tt_json_array_take_at((tt_json_array *)parent, i);
    log_undo(p, UNDO_ITEM_DEL, parent, i, old);
  }
  return true;
}

/* Consumes v's node. */
static bool do_replace(patcher *p, const char *ptr, value_src *v) {
  place pl;
  if (!locate_parent(p, ptr, &pl)) {
    drop_value(v);
    return false;
  }
  if (pl.parent) {
    edit_result r = raw_edit(p, &pl, OP_REPLACE, v);
    if (r != EDIT_DECLINED) {
      drop_value(v);
      return r == EDIT_DONE;
    }
    own_parent(p, &pl);
  }
  tether_json *parent = pl.parent;
  size_t i;
  if (parent && !find_last(p, parent, &i)) {
    drop_value(v);
    return false;
  }
  tether_json *value = tt_json_adopt(take_value(v));
  if (!parent) {
    log_undo(p, UNDO_ROOT, NULL, 0, p->root);
    p->root = value;
  } else if (parent->kind == TETHER_JSON_OBJECT) {
    tt_json_object *o = (tt_json_object *)parent;
    log_undo(p, UNDO_MEMBER_SET, parent, i, o->members[i].value);
    o->members[i].value = value;
  } else {
    tt_json_array *a = (tt_json_array *)parent;
    log_undo(p, UNDO_ITEM_SET, parent, i, a->items[i]);
    a->items[i] = value;
  }
  return true;
}

/* ---- Operations ---- */

/* What is wrong with s as a JSON pointer, or NULL. */
static const char *pointer_problem(const char *s) {
  if (s[0] && s[0] != '/')
    return "it must be empty or start with '/'";
  for (const char *c = strchr(s, '~'); c; c = strchr(c + 1, '~'))
    if (c[1] != '0' && c[1] != '1')
      return "'~' must be followed by '0' or '1'";
  return NULL;
}

/* A string member that must be present. */
static const char *string_member(const tether_json *op, const char *name,
                                 char *why, size_t size) {
  const tether_json *m = tether_json_object_get(op, name);
  if (!m) {
    snprintf(why, size, "missing member \"%s\"", name);
    return NULL;
  }
  if (!tether_json_is_string(m)) {
    snprintf(why, size, "member \"%s\" is %s, not a string", name,
             tether_json_kind_name(tether_json_kind_of(m)));
    return NULL;
  }
  const char *s = tether_json_string_value(m);
  if (strlen(s) != tether_json_string_length(m)) {
    snprintf(why, size, "member \"%s\" holds a NUL character", name);
    return NULL;
  }
  const char *problem = pointer_problem(s);
  if (problem) {
    snprintf(why, size, "member \"%s\" is not a JSON pointer (%s)", name,
             problem);
    return NULL;
  }
  return s;
}

/* Reads operation i; false with *err filled when it is malformed. */
static bool read_op(const tether_json *op, long i, op_parts *out,
                    tether_json_error *err) {
  char why[160];
  if (!tether_json_is_object(op)) {
    tt_json_set_error(err, 0, i, "patch operation %ld is %s, not an object",
                      i, tether_json_kind_name(tether_json_kind_of(op)));
    return false;
  }
  const tether_json *name = tether_json_object_get(op, "op");
  if (!name) {
    tt_json_set_error(err, 0, i, "patch operation %ld: missing member \"op\"",
                      i);
    return false;
  }
  static const op_kind kinds[] = {OP_ADD,  OP_REMOVE, OP_REPLACE,
                                  OP_MOVE, OP_COPY,   OP_TEST};
  const char *s = tether_json_string_value(name);
  bool known = false;
  for (size_t k = 0; s && k < sizeof kinds / sizeof *kinds; k++) {
    if (strcmp(s, op_name(kinds[k])) == 0 &&
        strlen(s) == tether_json_string_length(name)) {
      out->kind = kinds[k];
      known = true;
    }
  }
  if (!known) {
    if (s) {
      char q[80];
      tt_quote_token(q, sizeof q, s, tether_json_string_length(name));
      tt_json_set_error(err, 0, i,
                        "patch operation %ld: unknown op %s (expected add, "
                        "remove, replace, move, copy or test)",
                        i, q);
    } else {
      tt_json_set_error(err, 0, i,
                        "patch operation %ld: member \"op\" is %s, not a "
                        "string",
                        i, tether_json_kind_name(tether_json_kind_of(name)));
    }
    return false;
  }
  out->path = string_member(op, "path", why, sizeof why);
  if (!out->path) {
    tt_json_set_error(err, 0, i, "patch operation %ld (%s): %s", i,
                      op_name(out->kind), why);
    return false;
  }
  out->from = NULL;
  out->value = NULL;
  out->vt = NULL;
  switch (out->kind) {
  case OP_ADD:
  case OP_REPLACE:
  case OP_TEST:
    out->value = tether_json_object_get(op, "value");
    if (!out->value) {
      tt_json_set_error(err, 0, i,
                        "patch operation %ld (%s %.80s): missing member "
                        "\"value\"",
                        i, op_name(out->kind), out->path);
      return false;
    }
    break;
  case OP_MOVE:
  case OP_COPY:
    out->from = string_member(op, "from", why, sizeof why);
    if (!out->from) {
      tt_json_set_error(err, 0, i, "patch operation %ld (%s %.80s): %s", i,
                        op_name(out->kind), out->path, why);
      return false;
    }
    break;
  case OP_REMOVE:
    break;
  }
  return true;
}

/* ---- Operations read from a raw patch ---- */

/* A string token's contents, unescaped and NUL-terminated in buf; false
 * when the token is not a string, or holds a NUL. */
static bool raw_string(const tt_json_text *t, uint32_t j, tt_sbuf *buf) {
  const tt_tok *k = &t->toks[j];
  if (t->text[k->start] != '"')
    return false;
  const char *s = t->text + k->start + 1;
  size_t len = k->end - k->start - 2;
  tt_sbuf_reserve(buf, len);
  buf->len = tt_json_unescape(s, len, buf->data);
  buf->data[buf->len] = '\0';
  return memchr(buf->data, '\0', buf->len) == NULL;
}

/* Whether the key at token j is name (n bytes, without escapes). */
static inline bool raw_key_is(const tt_json_text *t, uint32_t j,
                              const char *name, size_t n) {
  const tt_tok *k = &t->toks[j];
  return k->end - k->start - 2 == n &&
         memcmp(t->text + k->start + 1, name, n) == 0;
}

/* The operation named by the string token j of t: false for none. */
static bool raw_op_kind(const tt_json_text *t, uint32_t j, op_kind *kind) {
  switch (t->toks[j].end - t->toks[j].start - 2) {
  case 3:
    if (raw_key_is(t, j, "add", 3))
      *kind = OP_ADD;
    else
      return false;
    return true;
  case 4:
    if (raw_key_is(t, j, "move", 4))
      *kind = OP_MOVE;
    else if (raw_key_is(t, j, "copy", 4))
      *kind = OP_COPY;
    else if (raw_key_is(t, j, "test", 4))
      *kind = OP_TEST;
    else
      return false;
    return true;
  case 6:
    if (!raw_key_is(t, j, "remove", 6))
      return false;
    *kind = OP_REMOVE;
    return true;
  case 7:
    if (!raw_key_is(t, j, "replace", 7))
      return false;
    *kind = OP_REPLACE;
    return true;
  default:
    return false;
  }
}

/* Reads the operation at token jo of a raw patch without building nodes
 * for it: a state replay applies a hundred thousand small patches, and
 * building each operation object would be most of the work. Returns
 * false for anything but a well-formed operation; the caller then reads
 * it the ordinary way, which also words the error. */
static bool read_op_raw(patcher *p, tt_json_text *t, uint32_t jo,
                        op_parts *out) {
  const tt_tok *toks = t->toks;
  if (t->dups || t->text[toks[jo].start] != '{')
    return false;
  uint32_t jop = 0, jpath = 0, jfrom = 0, jvalue = 0, j = jo + 1;
  for (uint32_t k = 0; k < toks[jo].count; k++) {
    if (raw_key_is(t, j, "op", 2))
      jop = j + 1;
    else if (raw_key_is(t, j, "path", 4))
      jpath = j + 1;
    else if (raw_key_is(t, j, "from", 4))
      jfrom = j + 1;
    else if (raw_key_is(t, j, "value", 5))
      jvalue = j + 1;
    j = toks[j + 1].next;
  }
  if (!jop || !jpath || t->text[toks[jop].start] != '"')
    return false;
  if (!raw_op_kind(t, jop, &out->kind) ||
      !raw_string(t, jpath, &p->path_buf) ||
      pointer_problem(p->path_buf.data))
    return false;
  out->path = p->path_buf.data;
  out->from = NULL;
  out->value = NULL;
  out->vt = NULL;
  switch (out->kind) {
  case OP_ADD:
  case OP_REPLACE:
  case OP_TEST:
    if (!jvalue)
      return false;
    out->vt = t;
    out->vtok = jvalue;
    break;
  case OP_MOVE:
  case OP_COPY:
    if (!jfrom || !raw_string(t, jfrom, &p->from_buf) ||
        pointer_problem(p->from_buf.data))
      return false;
    out->from = p->from_buf.data;
    break;
  case OP_REMOVE:
    break;
  }
  return true;
}

/* A short rendering of a value for a message. */
static void brief(const tether_json *v, char *out, size_t size) {
  size_t len;
  char *s = tether_json_dumps(v, &len);
  if (len + 1 > size && size > 4)
    snprintf(out, size, "%.*s...", (int)(size - 4), s);
  else
    snprintf(out, size, "%s", s);
  free(s);
}

static bool apply_op(patcher *p, const op_parts *op) {
  /* A move or a copy may share containers, or take the found parent
   * away: the next operation walks. */
  if (op->kind != OP_ADD && op->kind != OP_REPLACE && op->kind != OP_REMOVE)
    p->found_valid = false;
  switch (op->kind) {
  case OP_ADD: {
    value_src v = {NULL, op};
    return do_add(p, op->path, &v);
  }
  case OP_REMOVE:
    return do_remove(p, op->path);
  case OP_REPLACE: {
    value_src v = {NULL, op};
    return do_replace(p, op->path, &v);
  }
  case OP_MOVE: {
    size_t flen = strlen(op->from);
    if (strncmp(op->path, op->from, flen) == 0 && op->path[flen] == '/')
      return fail(p, "a value cannot be moved into one of its own children");
    tether_json *v = lookup(p, op->from);
    if (!v)
      return false;
    if (strcmp(op->path, op->from) == 0)
      return true;
    /* The log keeps the removed value alive; the new place takes its
     * own reference. */
    tether_json_ref(v);
    if (!do_remove(p, op->from)) {
      tether_json_unref(v);
      return false;
    }
    value_src moved = {v, NULL};
    return do_add(p, op->path, &moved);
  }
  case OP_COPY: {
    tether_json *v = lookup(p, op->from);
    if (!v)
      return false;
    value_src copied = {tether_json_ref(v), NULL};
    return do_add(p, op->path, &copied);
  }
  case OP_TEST: {
    tether_json *v = lookup(p, op->path);
    if (!v)
      return false;
    tether_json *expect = op_value(op);
    bool same = tether_json_equal(v, expect);
    if (!same) {
      char have[48], want[48];
      brief(v, have, sizeof have);
      brief(expect, want, sizeof want);
      fail(p, "test failed: the value is %s, not %s", have, want);
    }
    tether_json_unref(expect);
    return same;
  }
  }
  return false;
}

/* Applies patch (an array) or, with t set, the raw patch at token tok of
 * t; own_t: the call holds a reference to t, dropped at the end. Without
 * patch, a patch node on t is made only when an operation needs one. */
static bool run_patch(tether_json **doc, const tether_json *patch,
                      tt_json_text *t, uint32_t tok, bool own_t,
                      const tt_patch_digest *digest, tether_json_error *err);

bool tether_json_patch(tether_json **doc, const tether_json *patch,
                       tether_json_error *err) {
  tether_json_error local_err;
  if (!err)
    err = &local_err;
  err->offset = 0;
  err->op = -1;
  err->message[0] = '\0';
  if (!tether_json_is_array(patch)) {
    tt_json_set_error(err, 0, -1,
                      "a JSON patch must be an array of operations, not %s",
                      patch ? tether_json_kind_name(tether_json_kind_of(patch))
                            : "nothing");
    return false;
  }
  /* A raw patch is read from its tokens, with a reference to its text:
   * an operation the fast path declines materializes the patch, which
   * then lets go of the text. */
  uint32_t tok = 0;
  tt_json_text *t = tt_json_raw_claim(patch, &tok, true);
  if (t) {
    /* A large patch waits for its index; the claim makes this thread the
     * one to build it (json_internal.h). */
    if (t->unindexed)
      tt_json_text_index(t);
    if (t->toks)
      tt_json_text_ref(t);
    tt_json_raw_release(patch, t);
    if (!t->toks)
      t = NULL;
  }
  return run_patch(doc, patch, t, tok, t != NULL, NULL, err);
}

bool tt_json_patch_text(tether_json **doc, tt_json_text *t, uint32_t tok,
                        tether_json_error *err) {
  return tt_json_patch_text_digested(doc, t, tok, NULL, err);
}

bool tt_json_patch_text_digested(tether_json **doc, tt_json_text *t,
                                 uint32_t tok, const tt_patch_digest *d,
                                 tether_json_error *err) {
  tether_json_error local_err;
  if (!err)
    err = &local_err;
  err->offset = 0;
  err->op = -1;
  err->message[0] = '\0';
  if (!t->toks || t->text[t->toks[tok].start] != '[') {
    /* Not what a replay hands over: the general way says what is wrong. */
    tt_json_text_ref(t);
    tether_json *patch = tt_json_new_raw(
        t->text[t->toks ? t->toks[tok].start : 0] == '{' ? TETHER_JSON_OBJECT
                                                          : TETHER_JSON_ARRAY,
        t, tok);
    bool ok = tether_json_patch(doc, patch, err);
    tether_json_unref(patch);
    return ok;
  }
  return run_patch(doc, NULL, t, tok, false, d && d->path ? d : NULL, err);
}

static bool run_patch(tether_json **doc, const tether_json *patch,
                      tt_json_text *t, uint32_t tok, bool own_t,
                      const tt_patch_digest *digest, tether_json_error *err) {
  /* Set field by field: zeroing the whole patcher, its small buffers
   * included, would cost more than many a patch. */
  patcher p;
  p.root = *doc ? *doc : tether_json_null();
  p.err = err;
  p.nlog = 0;
  p.op = 0;
  p.kind = OP_ADD;
  p.path = p.from = NULL;
  p.found_valid = false;
  p.fresh = NULL;
  p.digest = NULL;
  p.last_hashed = false;
  tt_sbuf_init(&p.found_prefix);
  p.log = p.small;
  p.cap = sizeof p.small / sizeof *p.small;
  tt_sbuf_init(&p.scratch);
  tt_sbuf_init(&p.last);
  tt_sbuf_init(&p.path_buf);
  tt_sbuf_init(&p.from_buf);
  tether_buf_init(&p.edit);
  tether_buf_init(&p.edit_key);
  tether_json *made = NULL; /* the patch node made for read_op */
  uint32_t j = tok + 1;
  bool ok = true;
  size_t n = t ? t->toks[tok].count : tether_json_array_size(patch);
  for (size_t i = 0; i < n && ok; i++) {
    op_parts op;
    bool got = false;
    if (t) {
      got = read_op_raw(&p, t, j, &op);
      j = t->toks[j].next;
    }
    if (!got && !patch) {
      tt_json_text_ref(t);
      patch = made = tt_json_new_raw(TETHER_JSON_ARRAY, t, tok);
    }
    if (!got)
      ok = read_op(tether_json_array_get(patch, i), (long)i, &op, err);
    if (!ok)
      break;
    p.op = (long)i;
    p.kind = op.kind;
    p.path = op.path;
    p.from = op.from;
    /* The digest is of the first operation's path as the text has it,
     * the first "path" member: the one read here when the operation was
     * read raw, which it only is without repeated keys. */
    p.digest = i == 0 && got && digest && p.path_buf.len == digest->len &&
                       digest->end[digest->nseg - 1] == digest->len &&
                       memcmp(p.path_buf.data, digest->path, digest->len) == 0
                   ? digest
                   : NULL;
    ok = apply_op(&p, &op);
  }
  if (ok) {
    commit(&p);
    *doc = p.root;
  } else {
    rollback(&p);
  }
  if (p.log != p.small)
    free(p.log);
  if (own_t)
    tt_json_text_unref(t);
  tether_json_unref(made);
  tt_sbuf_free(&p.scratch);
  tt_sbuf_free(&p.last);
  tt_sbuf_free(&p.path_buf);
  tt_sbuf_free(&p.from_buf);
  tether_buf_free(&p.edit);
  tether_buf_free(&p.edit_key);
  tt_sbuf_free(&p.found_prefix);
  return ok;
}

bool tether_json_patch_check(const tether_json *patch,
                             tether_json_error *err) {
  tether_json_error local_err;
  if (!err)
    err = &local_err;
  err->offset = 0;
  err->op = -1;
  err->message[0] = '\0';
  if (!tether_json_is_array(patch)) {
    tt_json_set_error(err, 0, -1,
                      "a JSON patch must be an array of operations, not %s",
                      patch ? tether_json_kind_name(tether_json_kind_of(patch))
                            : "nothing");
    return false;
  }
  size_t n = tether_json_array_size(patch);
  for (size_t i = 0; i < n; i++) {
    op_parts op;
    if (!read_op(tether_json_array_get(patch, i), (long)i, &op, err))
      return false;
  }
  return true;
}

/* ---- Fetching ahead (json_internal.h) ---- */

/* Index slots a step reads for the one that names the key's hash: those
 * of one cache line, about, which arrive together. */
#define AHEAD_PROBES 8

/* The container v as a materialized object, or NULL: a raw one would
 * have to be scanned, which is what fetching ahead must not cost. */
static const tt_json_object *plain_object(const tether_json *v) {
  if (!v || v->kind != TETHER_JSON_OBJECT || tt_json_is_raw(v))
    return NULL;
  return (const tt_json_object *)v;
}

/* Follows path[0..len), segments without escapes, from doc through
 * materialized objects: the object it ends at, or NULL. Each step looks
 * its object up again this way rather than keeping a pointer to it: the
 * patches applied in between may have taken it out of the document. */
static const tt_json_object *ahead_object(const tether_json *doc,
                                          const char *path, size_t len) {
  const tt_json_object *o = plain_object(doc);
  for (size_t pos = 0; o && pos < len;) {
    size_t seg = ++pos;
    while (pos < len && path[pos] != '/')
      pos++;
    long i = tt_json_object_find(o, path + seg, pos - seg);
    o = i < 0 ? NULL : plain_object(o->members[i].value);
  }
  return o;
}

void tt_patch_ahead_begin(tt_patch_ahead *h, const tether_json *doc,
                          const tether_json *patch, tt_patch_ahead_memo *memo) {
  h->step = 0;
  if (!patch || patch->kind != TETHER_JSON_ARRAY)
    return;
  tt_json_text *t = atomic_load_explicit(
      &((tt_json_array *)(uintptr_t)patch)->raw, memory_order_acquire);
  if (t && t != TT_RAW_BUSY)
    tt_patch_ahead_begin_text(h, doc, t, ((const tt_json_array *)patch)->tok,
                              memo);
}

/* The object with an index the path path[0..len) leads to, at its first
 * prefix bytes: from the memo when it has it. */
static const tt_json_object *ahead_found(const tether_json *doc,
                                         const char *path, uint32_t prefix,
                                         tt_patch_ahead_memo *memo) {
  if (memo && memo->doc == doc && memo->prefix == prefix &&
      memcmp(memo->path, path, prefix) == 0)
    return memo->obj;
  const tt_json_object *o = ahead_object(doc, path, prefix);
  if (memo)
    *memo = (tt_patch_ahead_memo){doc, path, prefix, o};
  return o;
}

void tt_patch_digest_text(tt_patch_digest *d, const tt_json_text *t,
                          uint32_t tok) {
  d->path = NULL;
  if (!t->toks || t->text[t->toks[tok].start] != '[')
    return;
  /* The first operation's "path", from the patch's tokens. */
  const tt_tok *toks = t->toks;
  if (toks[tok].count == 0 || t->text[toks[tok + 1].start] != '{')
    return;
  uint32_t jo = tok + 1, j = jo + 1, jpath = 0;
  for (uint32_t k = 0; k < toks[jo].count && !jpath; k++) {
    if (raw_key_is(t, j, "path", 4))
      jpath = j + 1;
    j = toks[j + 1].next;
  }
  if (!jpath || t->text[toks[jpath].start] != '"')
    return;
  const char *path = t->text + toks[jpath].start + 1;
  size_t len = toks[jpath].end - toks[jpath].start - 2;
  if (len == 0 || len > UINT32_MAX || path[0] != '/' ||
      memchr(path, '~', len) || memchr(path, '\\', len))
    return; /* escapes: not worth reading here */
  d->path = path;
  d->len = (uint32_t)len;
  d->nseg = 0;
  for (size_t pos = 0; pos < len && d->nseg < TT_DIGEST_SEGS; d->nseg++) {
    size_t seg = ++pos;
    const char *slash = memchr(path + seg, '/', len - seg);
    pos = slash ? (size_t)(slash - path) : len;
    d->end[d->nseg] = (uint32_t)pos;
    d->hash[d->nseg] = tt_json_hash(path + seg, pos - seg);
  }
}

/* The hash of segment k of d's path, which begins at seg, and in *end
 * where it ends: from the digest, or found and hashed here past the
 * segments the digest holds. */
static uint32_t digest_segment(const tt_patch_digest *d, uint32_t k,
                               size_t seg, size_t *end) {
  if (k < d->nseg) {
    *end = d->end[k];
    return d->hash[k];
  }
  const char *slash = memchr(d->path + seg, '/', d->len - seg);
  *end = slash ? (size_t)(slash - d->path) : d->len;
  return tt_json_hash(d->path + seg, *end - seg);
}

static void ahead_start(tt_patch_ahead *h, const tt_json_object *o,
                        const char *path, size_t prefix, uint32_t hash) {
  h->path = path;
  h->prefix = (uint32_t)prefix;
  h->hash = hash;
  h->slot = 0;
  h->value = NULL;
  h->step = 1;
  __builtin_prefetch(&o->slots[hash & (o->nslots - 1)]);
}

void tt_patch_ahead_begin_digest(tt_patch_ahead *h, const tether_json *doc,
                                 const tt_patch_digest *d,
                                 tt_patch_ahead_memo *memo) {
  h->step = 0;
  if (!d->path)
    return;
  const char *path = d->path;
  size_t len = d->len, end;
  /* The object the last patch's path led to, where this one goes on. */
  if (memo && memo->doc == doc && memo->obj && memo->obj->nslots &&
      memo->prefix < len && path[memo->prefix] == '/' &&
      memcmp(memo->path, path, memo->prefix) == 0) {
    uint32_t k = 0;
    while (k < d->nseg && d->end[k] <= memo->prefix)
      k++;
    /* Segment k starts right after the prefix unless the digest has
     * fewer segments: then it is found here. */
    if (k < d->nseg && (k ? d->end[k - 1] : 0) != memo->prefix)
      return;
    uint32_t hash = digest_segment(d, k, memo->prefix + 1, &end);
    ahead_start(h, memo->obj, path, memo->prefix, hash);
    return;
  }
  /* Down through small objects (no index: their members are few and
   * read often) to the first large one, where the key is looked up. */
  const tt_json_object *o = plain_object(doc);
  uint32_t k = 0;
  for (size_t pos = 0; o && pos < len; k++) {
    size_t seg = ++pos;
    uint32_t hash = digest_segment(d, k, seg, &end);
    pos = end;
    if (o->nslots) {
      if (memo)
        *memo = (tt_patch_ahead_memo){doc, path, (uint32_t)(seg - 1), o};
      ahead_start(h, o, path, seg - 1, hash);
      return;
    }
    long i = tt_json_object_find(o, path + seg, pos - seg);
    o = i < 0 ? NULL : plain_object(o->members[i].value);
  }
}

void tt_patch_ahead_begin_text(tt_patch_ahead *h, const tether_json *doc,
                               const tt_json_text *t, uint32_t tok,
                               tt_patch_ahead_memo *memo) {
  tt_patch_digest d;
  tt_patch_digest_text(&d, t, tok);
  tt_patch_ahead_begin_digest(h, doc, &d, memo);
}

void tt_patch_ahead_step(tt_patch_ahead *h, const tether_json *doc,
                         tt_patch_ahead_memo *memo) {
  if (!h->step)
    return;
  const tt_json_object *o = ahead_found(doc, h->path, h->prefix, memo);
  if (!o || !o->nslots) {
    h->step = 0;
    return;
  }
  const tt_member *m = NULL;
  if (h->step > 1) {
    if (h->slot > o->used) {
      h->step = 0;
      return;
    }
    m = &o->members[h->slot - 1];
  }
  switch (h->step) {
  case 1: { /* the slot has arrived: fetch the member whose hash it names */
    size_t mask = o->nslots - 1, p = h->hash & mask;
    uint32_t found = 0;
    for (size_t k = 0; k < AHEAD_PROBES && !found; k++, p = (p + 1) & mask) {
      uint32_t s = o->slots[p].member;
      if (s == 0)
        break;
      if (s != TT_SLOT_DELETED && o->slots[p].hash == h->hash)
        found = s;
    }
    if (!found || found > o->used) {
      h->step = 0;
      return;
    }
    h->slot = found;
    __builtin_prefetch(&o->members[found - 1]);
    h->step = 2;
    return;
  }
  case 2: /* the member: fetch its value, and its key, which the lookup
             compares */
    if (m->hash != h->hash || !m->value) {
      h->step = 0;
      return;
    }
    __builtin_prefetch(o->keys + m->key_off);
    h->value = m->value;
    __builtin_prefetch(h->value);
    __builtin_prefetch((const char *)h->value + 64);
    h->step = 3;
    return;
  case 3: { /* the value, still there: fetch its text when it is raw */
    h->step = 0;
    if (m->value != h->value || (h->value->kind != TETHER_JSON_OBJECT &&
                                 h->value->kind != TETHER_JSON_ARRAY))
      return;
    const char *from;
    size_t len;
    tt_json_raw_extent(h->value, &from, &len);
    if (!len)
      return;
    /* A detached value's text is its own allocation, right after its
     * header or elsewhere: its bytes are what an edit reads. */
    const tt_json_text *t = (const tt_json_text *)(const void *)from;
    for (size_t k = 0; k < t->len && k < 4096; k += 64)
      __builtin_prefetch(t->text + k);
    return;
  }
  default:
    h->step = 0;
    return;
  }
}
