/*
 * json_splice.c: edits of a raw object's text. Setting, adding or
 * removing one member of a small raw object (a resource in a state
 * document) by making a new raw object whose text has the change costs
 * one allocation and a copy of the text, where materializing it costs a
 * node per member and leaves nodes to serialize one by one; the result
 * stays raw and is copied out whole. json_patch.c decides when an edit
 * goes this way and puts the new object in the old one's place.
 *
 * The texts read here are compact and valid, and the text of a raw
 * container is exactly its serialization, so a member is found by
 * scanning, and pasting a value's serialization into it gives the
 * serialization of the edited object.
 */
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"
#include "util.h"

/* Whether the key literal k[0..klen) (without its quotes, as written in a
 * compact text) spells key. Canonical escapes only ever stand for bytes
 * that cannot appear as they are, so a literal without a backslash is
 * the key's bytes themselves. */
static bool key_matches(const char *k, size_t klen, const char *key,
                        size_t keylen) {
  /* Unescaping only shortens: a literal as long as the key spells it
   * only when it has no escape, and a shorter one never does. */
  if (klen <= keylen)
    return klen == keylen && memcmp(k, key, keylen) == 0 &&
           !memchr(k, '\\', klen);
  if (!memchr(k, '\\', klen))
    return false;
  char small[128];
  char *buf = klen <= sizeof small ? small : tt_malloc(klen);
  size_t ulen = tt_json_unescape(k, klen, buf);
  bool same = ulen == keylen && memcmp(buf, key, keylen) == 0;
  if (buf != small)
    free(buf);
  return same;
}

bool tt_json_raw_find(const char *s, size_t len, const char *key,
                      size_t keylen, tt_raw_member *m) {
  const char *end = s + len, *p = s + 1;
  if (*p == '}')
    return false;
  for (;;) {
    const char *kend = tt_json_skip_string(p, end);
    const char *value = kend + 1; /* past the ':' */
    const char *vend = tt_json_skip_value(value, end);
    if (key_matches(p + 1, (size_t)(kend - p) - 2, key, keylen)) {
      m->key = (size_t)(p - s);
      m->value = (size_t)(value - s);
      m->end = (size_t)(vend - s);
      return true;
    }
    if (*vend != ',')
      return false;
    p = vend + 1;
  }
}

tether_json *tt_json_raw_splice(const char *s, size_t len, size_t from,
                                size_t to, const char *a, size_t alen,
                                const char *b, size_t blen) {
  size_t n = from + alen + blen + (len - to);
  tether_json *v = tt_json_new_home(TETHER_JSON_OBJECT, n, 0, false);
  char *d = tt_home_text(v)->text;
  memcpy(d, s, from);
  d += from;
  if (alen)
    memcpy(d, a, alen);
  d += alen;
  if (blen)
    memcpy(d, b, blen);
  d += blen;
  memcpy(d, s + to, len - to);
  return v;
}
