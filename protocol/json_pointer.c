/*
 * json_pointer.c: JSON Pointer (RFC 6901). "" is the whole document;
 * "/a/0" is member "a", then element 0; "~1" stands for '/' and "~0" for
 * '~' inside a reference token.
 */
#include <stdio.h>
#include <string.h>

#include "json_internal.h"
#include "util.h"

bool tt_pointer_next(const char *ptr, size_t len, size_t *pos,
                     tt_sbuf *scratch, const char **tok, size_t *toklen) {
  size_t start = *pos + 1;
  const char *slash = memchr(ptr + start, '/', len - start);
  size_t end = slash ? (size_t)(slash - ptr) : len;
  bool escaped = memchr(ptr + start, '~', end - start) != NULL;
  if (!escaped) {
    *tok = ptr + start;
    *toklen = end - start;
    *pos = end;
    return true;
  }
  tt_sbuf_reserve(scratch, end - start);
  size_t o = 0;
  for (size_t i = start; i < end; i++) {
    char c = ptr[i];
    if (c == '~') {
      if (i + 1 >= end || (ptr[i + 1] != '0' && ptr[i + 1] != '1')) {
        *pos = i;
        return false;
      }
      c = ptr[++i] == '0' ? '~' : '/';
    }
    scratch->data[o++] = c;
  }
  scratch->data[o] = '\0';
  scratch->len = o;
  *tok = scratch->data;
  *toklen = scratch->len;
  *pos = end;
  return true;
}

bool tt_pointer_index(const char *tok, size_t len, size_t *out) {
  if (len == 0 || (len > 1 && tok[0] == '0'))
    return false;
  size_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (tok[i] < '0' || tok[i] > '9')
      return false;
    size_t d = (size_t)(tok[i] - '0');
    if (v > (SIZE_MAX - d) / 10)
      return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

void tt_quote_token(char *out, size_t size, const char *tok, size_t len) {
  size_t o = 0;
  const size_t limit = 60;
  if (size < 8) {
    if (size)
      out[0] = '\0';
    return;
  }
  out[o++] = '\'';
  for (size_t i = 0; i < len && o + 6 < size; i++) {
    if (i == limit) {
      memcpy(out + o, "...", 3);
      o += 3;
      break;
    }
    unsigned char c = (unsigned char)tok[i];
    if (c < 0x20 || c == 0x7F) {
      if (o + 6 >= size)
        break;
      o += (size_t)snprintf(out + o, size - o, "\\x%02X", c);
    } else {
      out[o++] = (char)c;
    }
  }
  out[o++] = '\'';
  out[o] = '\0';
}

tether_json *tether_json_pointer_get(const tether_json *doc,
                                     const char *pointer,
                                     tether_json_error *err) {
  if (err) {
    err->offset = 0;
    err->op = -1;
    err->message[0] = '\0';
  }
  if (!pointer)
    pointer = "";
  size_t len = strlen(pointer);
  if (len && pointer[0] != '/') {
    tt_json_set_error(err, 0, -1,
                      "JSON pointer '%.60s' must be empty or start with '/'",
                      pointer);
    return NULL;
  }
  tt_sbuf scratch;
  tt_sbuf_init(&scratch);
  const tether_json *cur = doc;
  size_t pos = 0;
  tether_json *found = NULL;
  while (pos < len) {
    size_t tok_pos = pos;
    const char *tok;
    size_t toklen;
    char q[80];
    if (!tt_pointer_next(pointer, len, &pos, &scratch, &tok, &toklen)) {
      tt_json_set_error(err, pos, -1,
                        "JSON pointer '%.60s': '~' must be followed by '0' "
                        "or '1' (at byte %zu)",
                        pointer, pos);
      goto out;
    }
    tt_quote_token(q, sizeof q, tok, toklen);
    const char *fmt = NULL;
    if (tether_json_is_object(cur)) {
      const tether_json *next = tether_json_object_getn(cur, tok, toklen);
      if (!next)
        fmt = "no such member %s";
      cur = next;
    } else if (tether_json_is_array(cur)) {
      size_t i;
      size_t n = tether_json_array_size(cur);
      if (toklen == 1 && tok[0] == '-') {
        fmt = "index %s is past the last element";
      } else if (!tt_pointer_index(tok, toklen, &i)) {
        fmt = "%s is not an array index";
      } else if (i >= n) {
        tt_json_set_error(err, tok_pos, -1,
                          "JSON pointer '%.60s': index %zu out of range "
                          "(the array has %zu elements)",
                          pointer, i, n);
        goto out;
      } else {
        cur = tether_json_array_get(cur, i);
      }
    } else {
      tt_json_set_error(err, tok_pos, -1,
                        "JSON pointer '%.60s': cannot look up %s in %s",
                        pointer, q,
                        tether_json_kind_name(tether_json_kind_of(cur)));
      goto out;
    }
    if (fmt) {
      char what[120];
      snprintf(what, sizeof what, fmt, q);
      tt_json_set_error(err, tok_pos, -1, "JSON pointer '%.60s': %s",
                        pointer, what);
      goto out;
    }
  }
  found = (tether_json *)cur;
out:
  tt_sbuf_free(&scratch);
  return found;
}

void tether_json_pointer_append(tether_buf *out, const char *key,
                                size_t keylen) {
  tether_buf_reserve(out, keylen + 1);
  tether_buf_append_char(out, '/');
  size_t run = 0;
  for (size_t i = 0; i < keylen; i++) {
    if (key[i] != '~' && key[i] != '/')
      continue;
    tether_buf_append(out, key + run, i - run);
    tether_buf_append(out, key[i] == '~' ? "~0" : "~1", 2);
    run = i + 1;
  }
  tether_buf_append(out, key + run, keylen - run);
}
