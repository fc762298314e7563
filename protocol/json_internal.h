/*
 * json_internal.h: the representation behind tether/json.h, shared by the
 * files that implement it (json_value.c, json_object.c, json_array.c,
 * json_number.c, json_parse.c, json_build.c, json_dump.c, json_pointer.c,
 * json_patch.c, json_splice.c) and by their unit tests. Nothing else
 * should include it, but for the provider library's output, which uses
 * tt_json_dump_pieces to stream large answers, and the host, which
 * parses large answers in place (tt_json_parse_member_in_place) and
 * prints them from their text (tt_json_write).
 *
 * NODES. Every value is a node that starts with `struct tether_json`
 * (reference count and kind) and continues with the fields of its kind:
 * tt_json_string, tt_json_number, tt_json_array or tt_json_object. A node
 * is an allocation of its own, or shares one (see BLOCKS and HOME TEXTS);
 * either way it is released by its last reference. null, true and false
 * are immortal static nodes whose reference count is never touched.
 *
 * PARSING. jsmn, compiled once in json_parse.c in strict mode with parent
 * links, tokenizes; a validation pass of our own follows its tokens and
 * checks every byte against RFC 8259 (jsmn alone accepts texts that are
 * not JSON), rejecting with a message that says what is wrong and at
 * which byte. jsmn fills a small window of tokens that the walk drains,
 * so its own 20-byte tokens never take more memory than the window; the
 * walk turns them into the compact index below (tt_tok).
 *
 * LAZY CONTAINERS. The parser does not build a tree. It validates the text,
 * keeps a compacted copy of it together with a token index (tt_json_text),
 * and returns a "raw" container node that points at its token in that text.
 * A raw node is materialized, one level at a time, the first time anything
 * looks inside it: its direct members become nodes, nested containers among
 * them become raw nodes on the same text. Materialization happens inside
 * the getters: the thread that claims the node (a compare-and-swap on its
 * raw field) builds the members and publishes them with a release store,
 * so it is invisible to callers and safe for values that several threads
 * read. The kind of a raw node is known without materializing it,
 * and a raw node serializes by copying its text. A large text gets its
 * token index only when its root is first materialized (unindexed), from
 * jsmn and the same walk over its compact text: most large texts are
 * passed on or printed whole.
 *
 * BLOCKS. Materializing a small container builds its members all at
 * once, so they share one allocation, a block (tt_block): the members
 * array and keys of the container and the nodes of its direct members.
 * Each of those is released on its own as before, and the block goes with
 * the last. Reading a few members of a small object (a protocol message,
 * a state file event) then costs one allocation instead of one per node.
 *
 * HOME TEXTS. A small raw container and its text are usually one
 * allocation: the node first, its text (tt_json_text and the bytes) right
 * after it. The node holds a reference to that "home" text for as long
 * as it lives, also after it has been materialized, and the allocation
 * goes with the last reference to the text. One allocation instead of
 * two, and the text is found next to the node: a state document's
 * resources are such nodes, read and replaced by the tens of thousands.
 *
 * EDITS OF RAW OBJECTS. A patch that sets, adds or removes one member of
 * a small raw object replaces the object by a new raw one whose text has
 * the change (json_splice.c, json_patch.c), instead of materializing it:
 * what was stored raw stays raw, and serializes by copying.
 *
 * A raw node keeps its whole text alive. So that a small value taken out of
 * a large document and stored elsewhere (a patch's "value" stored in a
 * state document) does not pin the document, containers detach raw values
 * as they adopt them: the value gets a text of its own (tt_json_adopt).
 *
 * The text of a raw container is exactly its serialization (the parser
 * writes strings with escapes the way the serializer would), except in a
 * text where some object repeats a key (tt_json_text.dups): there the last
 * value wins, which only a materialized object shows.
 */
#ifndef TETHER_PROTOCOL_JSON_INTERNAL_H
#define TETHER_PROTOCOL_JSON_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tether/json.h"

/* A reference count that marks a static node nobody frees. */
#define TT_JSON_IMMORTAL UINT32_MAX

struct tether_json {
  uint32_t refs;
  uint8_t kind; /* tether_json_kind */
  /* The node's home text follows it (see HOME TEXTS above). */
  bool home;
  /* Nonzero for a node in a block: its distance from the block's start
   * in units of TT_BLOCK_ALIGN bytes. */
  uint16_t block_at;
};

/* A block (see the top of this file). Its parts are the nodes in it and
 * the members of the container it was made for; the count is atomic,
 * since the parts may end up with different owners on different
 * threads, as the text reference counts are. */
typedef struct tt_block {
  atomic_uint parts;
} tt_block;

#define TT_BLOCK_ALIGN 16
/* Blocks stay this small, so that a member kept after its container is
 * gone keeps little else alive (and block_at fits in 16 bits). */
#define TT_BLOCK_MAX 2048

/* Releases one part of block b: the last frees it. */
void tt_json_block_release(tt_block *b);

typedef struct tt_json_string {
  tether_json head;
  size_t len;
  char bytes[]; /* len bytes and a terminating NUL */
} tt_json_string;

typedef struct tt_json_number {
  tether_json head;
  size_t len;
  char text[]; /* the exact JSON text and a terminating NUL */
} tt_json_number;

/*
 * One token of a validated, compacted JSON text. Offsets are into the
 * compacted text; a string token spans its quotes. `next` is the index of
 * the token after this one's subtree, `count` the number of elements or
 * members of a container (0 for scalars).
 */
typedef struct tt_tok {
  uint32_t start;
  uint32_t end;
  uint32_t count;
  uint32_t next;
} tt_tok;

/*
 * A validated JSON text without insignificant whitespace, shared by the raw
 * nodes that point into it. A parsed text has its tokens (a large one from
 * the first materialization of its root on: unindexed); a text made by
 * detaching a small value has none (toks NULL), and its one raw node
 * (token 0) is materialized by scanning it, which a valid compact text
 * allows.
 */
typedef struct tt_json_text {
  atomic_uint refs;
  uint32_t ntok;
  tt_tok *toks;
  char *text; /* len bytes and a terminating NUL */
  size_t len;
  bool own_toks; /* toks is a separate allocation */
  bool own_text; /* text is a separate allocation */
  /* Some object in the text repeats a key. Such a text is never copied
   * out as is: the last value wins, and only materialized objects show
   * that. */
  bool dups;
  /* A large parsed text whose token index is built when its root is
   * first materialized (json_parse.c); toks is NULL until then. */
  bool unindexed;
  /* The allocation starts with this text's home node, TT_HOME_OFFSET
   * bytes before it. */
  bool home;
  /* The text lies inside a larger allocation (own_text): a message
   * parsed in place whose text is one member's value. The allocation's
   * start is stored right after this header (tt_json_text_base). */
  bool inside;
  /* A home text whose allocation is part of an arena (tt_json_arena),
   * whose address is stored just before the home node. */
  bool arena;
} tt_json_text;

/* The allocation an own_text text is in. */
static inline void *tt_json_text_base(const tt_json_text *t) {
  if (!t->inside)
    return t->text;
  void *base;
  memcpy(&base, t + 1, sizeof base);
  return base;
}

typedef struct tt_json_array {
  tether_json head;
  /* Non-NULL while the array is raw: then tok is its token in raw and the
   * fields below are unused. TT_RAW_BUSY while a thread has claimed it
   * (see tt_json_raw_claim). */
  _Atomic(tt_json_text *) raw;
  uint32_t tok;
  size_t count;
  size_t cap;
  tether_json **items;
  tt_block *block; /* items is in this block, or NULL: its own allocation */
} tt_json_array;

/*
 * An object member. The key lives in the object's key arena at key_off
 * (NUL-terminated); a removed member keeps its slot with value NULL (a
 * tombstone) until the object is compacted, so removal is O(1).
 */
typedef struct tt_member {
  uint32_t key_off;
  uint32_t key_len;
  uint32_t hash; /* of the key; computed only once the object has an index */
  tether_json *value;
} tt_member;

/* A slot of an object's hash index: member index + 1 (0 for empty,
 * TT_SLOT_DELETED for a removed entry) and that member's hash, so that a
 * probe compares hashes without reading the member: a lookup of a key
 * that is not there (every add) reads nothing but the index. */
typedef struct tt_slot {
  uint32_t member;
  uint32_t hash;
} tt_slot;

typedef struct tt_json_object {
  tether_json head;
  _Atomic(tt_json_text *) raw; /* as in tt_json_array */
  uint32_t tok;
  tt_member *members; /* in insertion order, tombstones included */
  size_t used;        /* members[0..used) are occupied or tombstones */
  size_t live;        /* members that are not tombstones */
  size_t cap;
  char *keys; /* key arena */
  size_t keys_len;
  size_t keys_cap;
  /* Open-addressing index over members, built once an object grows past
   * a few members. */
  tt_slot *slots;
  size_t nslots; /* a power of two, or 0 without an index */
  size_t deleted_slots;
  tt_block *block; /* members and keys are in this block, or NULL: in
                      allocations of their own */
} tt_json_object;

#define TT_SLOT_DELETED UINT32_MAX

/* Where a home text starts after its node: room for either kind. */
#define TT_HOME_OFFSET                                                         \
  ((sizeof(tt_json_object) + 15) & ~(size_t)15)

static inline tt_json_text *tt_home_text(const tether_json *v) {
  return (tt_json_text *)(void *)((char *)(uintptr_t)v + TT_HOME_OFFSET);
}

/* ---- json_value.c ---- */

tether_json *tt_json_new_string_raw(const char *s, size_t len);
/* A string node whose bytes the caller fills in (len bytes, NUL added). */
tt_json_string *tt_json_alloc_string(size_t len);
tt_json_number *tt_json_alloc_number(size_t len);
/* A new raw container of kind `kind` on token `tok` of text t. It takes
 * over one reference to t that the caller holds (reference counts of texts
 * are atomic, so callers that create many nodes on one text account for
 * them with a single update). */
tether_json *tt_json_new_raw(tether_json_kind kind, tt_json_text *t,
                             uint32_t tok);
void tt_json_text_ref(tt_json_text *t);
void tt_json_text_unref(tt_json_text *t);
/* A new raw container of kind `kind` at token 0 of a home text of len
 * bytes with room for ntok tokens, which the caller fills in (the NUL
 * after the text is written). */
tether_json *tt_json_new_home(tether_json_kind kind, size_t len, uint32_t ntok,
                              bool dups);
/* Room for many small home texts made and let go of together: the
 * events of one span of a state file, which a replay parses on one thread
 * and frees once the other has applied them. A home placed in an arena
 * costs no allocation of its own. The arena is a block (tt_block) with a
 * part for each text in it and one for its owner, so it stays alive for
 * as long as any of its texts does. */
typedef struct tt_json_arena {
  tt_block block; /* first: releasing the last part frees the arena */
  size_t used, cap;
  _Alignas(16) char data[];
} tt_json_arena;
_Static_assert(offsetof(tt_json_arena, block) == 0,
               "an arena is freed through its block");

tt_json_arena *tt_json_arena_new(size_t cap);
/* For the arena's owner, once it has let go of the texts it made there:
 * empties the arena for reuse when no text in it is still held, else
 * gives up the owner's part and returns NULL (the arena then lives on
 * with the texts someone holds). */
tt_json_arena *tt_json_arena_reset(tt_json_arena *a);
/* Gives up the owner's part. NULL is fine. */
void tt_json_arena_free(tt_json_arena *a);
/* tt_json_new_home, in arena a when it has room (a may be NULL). */
tether_json *tt_json_new_home_in(tt_json_arena *a, tether_json_kind kind,
                                 size_t len, uint32_t ntok, bool dups);

/* A new text holding a copy of s[0..len), with room for ntok tokens
 * (toks NULL when ntok is 0); one reference. */
tt_json_text *tt_json_text_new(const char *s, size_t len, uint32_t ntok,
                               bool dups);

/* Materializes a raw container (no-op otherwise). Safe on a value other
 * threads read. */
void tt_json_force(const tether_json *v);
/* Whether v is a raw container (or one being materialized). */
static inline bool tt_json_is_raw(const tether_json *v) {
  if (v->kind == TETHER_JSON_ARRAY)
    return atomic_load_explicit(&((const tt_json_array *)v)->raw,
                                memory_order_acquire) != NULL;
  if (v->kind == TETHER_JSON_OBJECT)
    return atomic_load_explicit(&((const tt_json_object *)v)->raw,
                                memory_order_acquire) != NULL;
  return false;
}
static inline const tt_json_array *tt_arr(const tether_json *v) {
  tt_json_force(v);
  return (const tt_json_array *)v;
}
static inline const tt_json_object *tt_obj(const tether_json *v) {
  tt_json_force(v);
  return (const tt_json_object *)v;
}

/* Reading a raw container's text while another thread materializes the
 * container (which gives up the container's reference to the text) would
 * race, so readers claim the container the way materialization does:
 * tt_json_raw_claim returns the text with the container marked busy, or
 * NULL when it is not raw, and tt_json_raw_release ends the claim. Without
 * wait, a container another thread holds yields TT_RAW_BUSY at once.
 * While holding a claim, claim nothing else with wait set: two threads
 * doing so in opposite orders would wait for each other forever. */
extern tt_json_text tt_json_busy_marker;
#define TT_RAW_BUSY (&tt_json_busy_marker)
tt_json_text *tt_json_raw_claim(const tether_json *v, uint32_t *tok,
                                bool wait);
void tt_json_raw_release(const tether_json *v, tt_json_text *t);
/* The memory a reader of raw container v's text touches: its header,
 * tokens and bytes, from *from for *len bytes when they lie together (a
 * text parsed small is one allocation) and, in any case, at most 4 KiB.
 * *len is 0 when v is not raw. A thread about to look into values
 * another thread parsed asks the processor to fetch this ahead
 * (__builtin_prefetch): they are in the other CPU's caches, and a reader
 * that fetches them line by line stalls on each. Only for a value no
 * other thread is materializing. */
static inline void tt_json_text_extent(const tt_json_text *t,
                                       const char **from, size_t *len) {
  *from = (const char *)t;
  const char *end = t->text + t->len;
  *len = end > *from && end - *from <= 4096 ? (size_t)(end - *from)
                                             : sizeof *t;
}

/* The text of raw container v and its token there, without claiming it:
 * NULL when v is not raw. Only for a value no other thread can reach
 * (one this thread has just parsed) or is materializing. */
static inline tt_json_text *tt_json_raw_text(const tether_json *v,
                                             uint32_t *tok) {
  tt_json_text *t = NULL;
  if (v->kind == TETHER_JSON_ARRAY) {
    t = atomic_load_explicit(&((tt_json_array *)(uintptr_t)v)->raw,
                             memory_order_acquire);
    *tok = ((const tt_json_array *)v)->tok;
  } else if (v->kind == TETHER_JSON_OBJECT) {
    t = atomic_load_explicit(&((tt_json_object *)(uintptr_t)v)->raw,
                             memory_order_acquire);
    *tok = ((const tt_json_object *)v)->tok;
  }
  return t == TT_RAW_BUSY ? NULL : t;
}

static inline void tt_json_raw_extent(const tether_json *v, const char **from,
                                      size_t *len) {
  uint32_t tok;
  const tt_json_text *t = tt_json_raw_text(v, &tok);
  *from = (const char *)t;
  *len = 0;
  if (t)
    tt_json_text_extent(t, from, len);
}

/* Where token tok's value lies in t (token 0 is all of it). */
static inline void tt_json_text_slice(const tt_json_text *t, uint32_t tok,
                                      const char **s, size_t *len) {
  if (tok == 0) {
    *s = t->text;
    *len = t->len;
  } else {
    *s = t->text + t->toks[tok].start;
    *len = t->toks[tok].end - t->toks[tok].start;
  }
}
/* The length of the whole text behind raw container v, 0 when v is not
 * raw: shows whether a value has a text of its own (for tests). */
size_t tt_json_raw_text_size(const tether_json *v);

/* Prepares v for being stored inside a container: detaches a raw value
 * from a larger text it shares (see the top of this file). Consumes v and
 * returns the value to store, which is equal to v. */
tether_json *tt_json_adopt(tether_json *v);

/* Makes container v exclusively owned (reference count 1) and
 * materialized, so that it can be modified in place: consumes v and
 * returns it, or a shallow copy of it when it was shared. */
tether_json *tt_json_unshare(tether_json *v);

uint32_t tt_json_hash(const char *key, size_t len);
/* Index of the live member named key, or -1. */
long tt_json_object_find(const tt_json_object *o, const char *key,
                         size_t len);
/* The same, with tt_json_hash(key, len) already known. */
long tt_json_object_find_hashed(const tt_json_object *o, const char *key,
                                size_t len, uint32_t hash);
/* Appends a member that does not exist yet; takes the reference to value. */
void tt_json_object_append(tt_json_object *o, const char *key, size_t len,
                           tether_json *value);
/* Makes room for n more members and key_bytes more key bytes (NULs
 * included). */
void tt_json_object_reserve(tt_json_object *o, size_t n, size_t key_bytes);
/* Turns member i into a tombstone and returns its value (the reference
 * passes to the caller). Compacts the object when tombstones pile up and
 * compact is true. */
tether_json *tt_json_object_take(tt_json_object *o, size_t i, bool compact);
/* Undoes tt_json_object_take(o, i, false): puts value back into the
 * tombstone at i. */
void tt_json_object_restore(tt_json_object *o, size_t i, tether_json *value);
/* Undoes the last tt_json_object_append: removes members[used - 1] and
 * returns its value. */
tether_json *tt_json_object_pop(tt_json_object *o);
void tt_json_object_maybe_compact(tt_json_object *o);
static inline const char *tt_member_key(const tt_json_object *o,
                                        const tt_member *m) {
  return o->keys + m->key_off;
}

void tt_json_array_insert_at(tt_json_array *a, size_t i, tether_json *v);
tether_json *tt_json_array_take_at(tt_json_array *a, size_t i);

/* ---- json_build.c ---- */

/* The value at token j of t, ready to be stored anywhere: a scalar, or a
 * raw container with a text of its own (see tt_json_adopt). */
tether_json *tt_json_build_detached(tt_json_text *t, uint32_t j);
/* A scalar from its validated literal p[0..len). */
tether_json *tt_json_build_scalar(const char *p, size_t len);
/* Unescapes the contents s[0..len) of a validated string literal into out
 * (room for len bytes); returns the length. */
size_t tt_json_unescape(const char *s, size_t len, char *out);

/* The end of the string literal, or of the value, that starts at s in a
 * valid compact text ending at end. */
const char *tt_json_skip_string(const char *s, const char *end);
const char *tt_json_skip_value(const char *s, const char *end);

/* ---- json_parse.c: parsing without jsmn, parsing in place ---- */

/* tether_json_parse, with the token index built by the validation walk
 * alone (json_parse.c), which checks every byte by itself: what it
 * accepts, refuses and reports is what tether_json_parse does, jsmn's
 * agreement aside. For a reader of many small texts where the parse is
 * the cost: a state file replay, where jsmn's pass, which only agrees
 * with the walk, was more than a third of the work. */
tether_json *tt_json_parse_walked(const char *text, size_t len,
                                  tether_json_error *err);
/* The same with a small text's home (a line of a state file) placed in
 * arena when it has room (tt_json_new_home_in). */
tether_json *tt_json_parse_walked_in(tt_json_arena *arena, const char *text,
                                     size_t len, tether_json_error *err);

/* tether_json_parse of the len bytes at block + at, where block is a
 * malloc'd allocation of at least at + len + 1 bytes that the parse takes
 * over: the text is compacted within it, towards its front, and becomes
 * the text of the value, so that a large text is never copied into new
 * memory. On failure block is freed, and *err (when not NULL) is what
 * tether_json_parse reports for the same bytes. A container comes back
 * raw and unindexed, whatever its size (LAZY CONTAINERS above). */
tether_json *tt_json_parse_in_place(char *block, size_t at, size_t len,
                                    tether_json_error *err);
/* tt_json_parse_in_place, for a caller that wants the value of the last
 * member of an object and knows where it starts: at input offset
 * member_at, after bytes without whitespace between tokens and without
 * backslashes (a JSON-RPC answer's {"jsonrpc":"2.0","id":2,"result":).
 * When the text is such an object and the member there is its last, that
 * value alone is returned and *member set; the rest of the object is
 * validated but not kept. Otherwise the whole text is parsed as
 * tt_json_parse_in_place parses it. */
tether_json *tt_json_parse_member_in_place(char *block, size_t at, size_t len,
                                           size_t member_at, bool *member,
                                           tether_json_error *err);

/* Builds the token index of an unindexed text (t->unindexed), with the
 * parser's tokenizer and walk over the compact, valid text (json_parse.c).
 * Only the thread materializing the text's root calls it, and nothing
 * else refers to such a text, so it changes t in place. */
void tt_json_text_index(tt_json_text *t);

/* Builds the direct members of raw container v from token tok of t
 * (called by tt_json_force, which has claimed v). Returns how many of
 * them are raw containers on t, whose references to t the caller adds. */
size_t tt_json_materialize(tether_json *v, tt_json_text *t, uint32_t tok);

/* ---- json_splice.c ---- */

/* Where a member lies in the text of a raw object: offsets of its key's
 * opening quote, of its value and of the end of its value. */
typedef struct tt_raw_member {
  size_t key;
  size_t value;
  size_t end;
} tt_raw_member;

/* Finds the member named key (keylen bytes, unescaped) in s[0..len), the
 * compact text of an object that repeats no key. */
bool tt_json_raw_find(const char *s, size_t len, const char *key,
                      size_t keylen, tt_raw_member *m);
/* A new raw object on a home text: s[0..len) with s[from..to) replaced
 * by a[0..alen) followed by b[0..blen). */
tether_json *tt_json_raw_splice(const char *s, size_t len, size_t from,
                                size_t to, const char *a, size_t alen,
                                const char *b, size_t blen);

/* ---- json_dump.c ---- */

/* tether_json_dump, handing the text out as it goes: whenever out holds
 * at least `piece` bytes between two values, flush(out, ctx) is called,
 * which takes them out (out->len = 0). How a large answer goes out while
 * it is being serialized, in a buffer that stays small (the provider
 * library's output.c uses it). */
void tt_json_dump_pieces(const tether_json *v, tether_buf *out, size_t piece,
                         void (*flush)(tether_buf *out, void *ctx),
                         void *ctx);

/* tether_json_dump of v to f, without the text ever being in memory as a
 * whole: raw texts of 64 KiB or more are written from where they lie,
 * the rest goes through a small buffer. The bytes are the same. Returns
 * false when a write to f failed (errno says why); what f buffers is the
 * caller's to flush. */
bool tt_json_write(const tether_json *v, FILE *f);

/* The escape sequence for a byte a JSON string cannot hold as is ('"',
 * '\\' or a control character): written to out, length returned. */
size_t tt_json_escape_char(unsigned char c, char out[6]);

/* ---- json_number.c ---- */

/* True when s[0..len) is exactly one JSON number (RFC 8259 grammar). */
bool tt_json_number_valid(const char *s, size_t len);
bool tt_json_number_equal(const char *a, size_t alen, const char *b,
                          size_t blen);

/* ---- UTF-8 ---- */

/* Decodes one UTF-8 sequence at s[0..len) (len >= 1). Returns its length
 * and stores the code point, or returns 0 for an invalid sequence
 * (overlong forms, surrogates, values above U+10FFFF, truncation) and
 * stores in *why a short reason. */
size_t tt_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp,
                      const char **why);
/* Writes code point cp as UTF-8 to out (room for 4 bytes); returns the
 * number of bytes written. */
size_t tt_utf8_encode(uint32_t cp, char *out);

/* ---- Scratch buffers ---- */

/* A byte buffer that starts in its own small array, for the short-lived
 * strings of one call (pointer tokens, paths): most never need the heap.
 * It must not be copied or moved once in use. */
typedef struct tt_sbuf {
  char *data;
  size_t len, cap;
  char small[112];
} tt_sbuf;

void tt_sbuf_init(tt_sbuf *b);
void tt_sbuf_reserve(tt_sbuf *b, size_t n); /* room for n bytes and a NUL */
void tt_sbuf_set(tt_sbuf *b, const char *s, size_t n); /* NUL-terminated */
void tt_sbuf_free(tt_sbuf *b);

/* ---- json_parse.c: validating a large message while it arrives ---- */

/* A text that arrives in parts, validated as far as it has come each time
 * more arrives (tt_json_stream_feed: the same text each time, from its
 * start, possibly moved), so that when the last part is in, little is left
 * to parse (tt_json_stream_finish, which parses in place as
 * tt_json_parse_member_in_place does, with the same results and errors,
 * and frees the stream). Only a compact text, such as tether's providers
 * write, gains: for any other the stream soon stops, and the finish
 * parses the whole text. */
typedef struct tt_json_stream tt_json_stream;
tt_json_stream *tt_json_stream_new(void);
void tt_json_stream_feed(tt_json_stream *st, const char *text, size_t avail);
/* member may be NULL (tt_json_parse_in_place); st may be NULL. */
tether_json *tt_json_stream_finish(tt_json_stream *st, char *block, size_t at,
                                   size_t len, size_t member_at, bool *member,
                                   tether_json_error *err);
void tt_json_stream_free(tt_json_stream *st);
/* How far the text is validated for good (0 once the stream has stopped),
 * and the distance between checkpoints (0: the default), for tests. */
size_t tt_json_stream_done(const tt_json_stream *st);
void tt_json_stream_set_stride(size_t bytes);

/* ---- json_patch.c ---- */

/* tether_json_patch for the raw patch at token tok of t, a text with its
 * tokens that the caller keeps alive, without a node for the patch: a
 * state replay applies a hundred thousand patches it parsed itself. */
bool tt_json_patch_text(tether_json **doc, tt_json_text *t, uint32_t tok,
                        tether_json_error *err);

/* ---- json_patch.c: fetching ahead ---- */

/* What applying a patch will read of the document it is applied to, found
 * a step at a time so that each step finds in the caches what the one
 * before asked to fetch: the member a patch's first operation targets in
 * a large object (a resource among tens of thousands in a state) and,
 * once that is known, its value and the value's text. A reader applying
 * many patches in a row starts this a few patches ahead (tt_patch_ahead_
 * begin) and takes one step per patch it applies (tt_patch_ahead_step):
 * without it each patch stalls on memory at every link. Only hints: the
 * document is read, never changed, and nothing is materialized; a path
 * it cannot follow cheaply ends it. The document must not change between
 * the steps except by the patches applied meanwhile, on this thread, and
 * the patch must stay alive until the last step. */
typedef struct tt_patch_ahead {
  const char *path; /* the operation's, in the patch's text */
  uint32_t prefix;  /* its bytes up to the object with an index */
  uint32_t hash;    /* of the key looked up in that object */
  uint32_t slot;    /* where the index has that key, 0 unknown */
  const tether_json *value; /* the member's value, once found */
  int step;                 /* the next step, 0 when done */
} tt_patch_ahead;

/* The object the last step or beginning looked up, kept for the next
 * ones until the caller clears it (doc NULL), as it must whenever the
 * document may have changed: after each patch it applies. The steps for
 * several patches ahead then look up the large object once. */
typedef struct tt_patch_ahead_memo {
  const tether_json *doc;
  const char *path;
  uint32_t prefix;
  const tt_json_object *obj;
} tt_patch_ahead_memo;

/* memo may be NULL in these. */
void tt_patch_ahead_begin(tt_patch_ahead *h, const tether_json *doc,
                          const tether_json *patch, tt_patch_ahead_memo *memo);
/* The same for the raw patch at token tok of t (with its tokens). */
void tt_patch_ahead_begin_text(tt_patch_ahead *h, const tether_json *doc,
                               const tt_json_text *t, uint32_t tok,
                               tt_patch_ahead_memo *memo);
void tt_patch_ahead_step(tt_patch_ahead *h, const tether_json *doc,
                         tt_patch_ahead_memo *memo);

/* What beginning to fetch ahead for a raw patch reads of the patch alone,
 * without the document: its first operation's path, when that has no
 * escapes, with where its first segments end and their hashes. The
 * thread that parses patches makes it (tt_patch_digest_text) for the one
 * that applies them (tt_patch_ahead_begin_digest), which then only looks
 * the path up. The path points into the patch's text. */
#define TT_DIGEST_SEGS 3
typedef struct tt_patch_digest {
  const char *path; /* NULL when there is nothing to fetch */
  uint32_t len;
  uint32_t nseg;                /* segments digested */
  uint32_t end[TT_DIGEST_SEGS]; /* just past segment k: its '/' or len */
  uint32_t hash[TT_DIGEST_SEGS];
} tt_patch_digest;

void tt_patch_digest_text(tt_patch_digest *d, const tt_json_text *t,
                          uint32_t tok);
/* tt_json_patch_text with the patch's digest (NULL for none), from which
 * the first operation's path is walked without being read again. */
bool tt_json_patch_text_digested(tether_json **doc, tt_json_text *t,
                                 uint32_t tok, const tt_patch_digest *d,
                                 tether_json_error *err);
void tt_patch_ahead_begin_digest(tt_patch_ahead *h, const tether_json *doc,
                                 const tt_patch_digest *d,
                                 tt_patch_ahead_memo *memo);

/* ---- json_pointer.c ---- */

/* Reads the reference token that starts at ptr[*pos] (a '/') and moves
 * *pos past it. The token is returned unescaped in *tok / *toklen, which
 * point into ptr or, when it had escapes, into scratch. Returns false for
 * a '~' not followed by '0' or '1', with *pos at the '~'. */
bool tt_pointer_next(const char *ptr, size_t len, size_t *pos,
                     tt_sbuf *scratch, const char **tok, size_t *toklen);
/* An array index token: decimal digits without leading zeros. */
bool tt_pointer_index(const char *tok, size_t len, size_t *out);
/* A token for a message: quoted, control characters escaped, long ones
 * cut short. */
void tt_quote_token(char *out, size_t size, const char *tok, size_t len);

/* ---- errors ---- */

void tt_json_set_error(tether_json_error *err, size_t offset, long op,
                       const char *fmt, ...) TETHER_PRINTF(4, 5);

#endif /* TETHER_PROTOCOL_JSON_INTERNAL_H */
