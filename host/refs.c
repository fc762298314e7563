/*
 * refs.c: scanning strings for references and resolving them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployment.h"
#include "refs.h"
#include "util.h"

#define LITERAL_HINT "write $${ for a literal ${"

void tt_ref_scan_init(tt_ref_scanner *sc, const char *s, size_t len) {
  memset(sc, 0, sizeof *sc);
  sc->s = s;
  sc->len = len;
}

static bool at(const tt_ref_scanner *sc, size_t i, const char *lit) {
  size_t n = strlen(lit);
  return i + n <= sc->len && memcmp(sc->s + i, lit, n) == 0;
}

/* Quotes the start of a bad reference in an error: control characters
 * become '?' and long text is cut, so the message stays on one line. */
static void quote_into(char *out, size_t outlen, const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len && n + 4 < outlen; i++) {
    unsigned char c = (unsigned char)s[i];
    out[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  if (n < len) {
    memcpy(out + n, "...", 3);
    n += 3;
  }
  out[n] = '\0';
}

/* Checks NAME(.NAME)*.outputs.NAME and fills ref. */
static bool parse_reference(const char *c, size_t len, tt_ref *ref) {
  size_t segs = 0, last_dot = 0, prev_dot = 0, start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && c[i] != '.')
      continue;
    if (!tt_name_valid(c + start, i - start))
      return false;
    segs++;
    if (i < len) {
      prev_dot = last_dot;
      last_dot = i;
    }
    start = i + 1;
  }
  if (segs < 3)
    return false;
  /* The segment before the key must be "outputs". */
  size_t out_start = prev_dot + 1;
  if (last_dot - out_start != 7 || memcmp(c + out_start, "outputs", 7) != 0)
    return false;
  ref->target = c;
  ref->target_len = prev_dot;
  ref->key = c + last_dot + 1;
  ref->key_len = len - last_dot - 1;
  return true;
}

tt_ref_token tt_ref_scan_next(tt_ref_scanner *sc) {
  if (sc->failed)
    return TT_REF_ERROR;
  size_t i = sc->pos;
  if (i >= sc->len)
    return TT_REF_END;
  if (at(sc, i, "$${")) {
    sc->text = sc->s + i + 1;
    sc->text_len = 2;
    sc->pos = i + 3;
    return TT_REF_TEXT;
  }
  if (at(sc, i, "${")) {
    const char *body = sc->s + i + 2;
    const char *close = memchr(body, '}', sc->len - i - 2);
    char shown[120];
    if (!close) {
      quote_into(shown, sizeof shown, sc->s + i, sc->len - i);
      snprintf(sc->error, sizeof sc->error,
               "unterminated reference '%s': no closing '}' (" LITERAL_HINT ")",
               shown);
      sc->failed = true;
      return TT_REF_ERROR;
    }
    size_t body_len = (size_t)(close - body);
    if (!parse_reference(body, body_len, &sc->ref)) {
      quote_into(shown, sizeof shown, sc->s + i, body_len + 3);
      snprintf(sc->error, sizeof sc->error,
               "malformed reference '%s': expected ${RESOURCE.outputs.KEY} "
               "(" LITERAL_HINT ")",
               shown);
      sc->failed = true;
      return TT_REF_ERROR;
    }
    sc->pos = i + 2 + body_len + 1;
    return TT_REF_REFERENCE;
  }
  size_t j = i;
  while (j < sc->len && !at(sc, j, "${") && !at(sc, j, "$${"))
    j++;
  sc->text = sc->s + i;
  sc->text_len = j - i;
  sc->pos = j;
  return TT_REF_TEXT;
}

bool tt_ref_whole(const char *s, size_t len, tt_ref *ref) {
  tt_ref_scanner sc;
  tt_ref_scan_init(&sc, s, len);
  if (tt_ref_scan_next(&sc) != TT_REF_REFERENCE)
    return false;
  tt_ref found = sc.ref;
  if (tt_ref_scan_next(&sc) != TT_REF_END)
    return false;
  *ref = found;
  return true;
}

void tt_ref_interpolate(const tether_json *v, tether_buf *out) {
  if (tether_json_is_string(v))
    tether_buf_append(out, tether_json_string_value(v),
                      tether_json_string_length(v));
  else
    tether_json_dump(v, out);
}

/* ---- Resolution ---- */

void tt_resolved_free(tt_resolved *r) {
  tether_json_unref(r->inputs);
  for (size_t i = 0; i < r->nunknown; i++)
    free(r->unknown[i]);
  free(r->unknown);
  r->inputs = NULL;
  r->unknown = NULL;
  r->nunknown = 0;
}

typedef struct resolver {
  const tt_resource *r;
  tt_outputs_lookup *lookup;
  void *ctx;
  tt_diag *diag;
  tether_buf pointer; /* JSON pointer of the value being resolved */
  tether_buf path;    /* the same place as a dotted path, for messages */
  tt_resolved *out;
  size_t unknown_cap;
} resolver;

static void mark_unknown(resolver *R) {
  tt_resolved *o = R->out;
  if (o->nunknown == R->unknown_cap) {
    R->unknown_cap = R->unknown_cap ? R->unknown_cap * 2 : 4;
    o->unknown = tt_realloc(o->unknown, R->unknown_cap * sizeof *o->unknown);
  }
  o->unknown[o->nunknown++] = tt_strdup(R->pointer.data ? R->pointer.data : "");
}

/* The value a reference stands for: *value borrowed from the outputs, or
 * NULL when the outputs are not known yet. */
static const char *lookup_reference(resolver *R, const tt_ref *ref,
                                    const tether_json **value) {
  const tt_resource *r = R->r;
  *value = NULL;
  const tt_resource *target = tt_deployment_find_resource(
      r->deployment, ref->target, ref->target_len, NULL);
  const char *file = r->deployment->model->file;
  if (!target)
    return tt_diag_set(R->diag, "%s: %s: reference to unknown resource '%.*s'",
                       file, R->path.data, (int)ref->target_len, ref->target);
  const tether_json *outputs = R->lookup(R->ctx, target);
  if (!outputs)
    return NULL;
  *value = tether_json_object_getn(outputs, ref->key, ref->key_len);
  if (*value)
    return NULL;
  tether_buf have;
  tether_buf_init(&have);
  size_t it = 0;
  const char *key;
  size_t keylen;
  tether_json *member;
  while (tether_json_object_next(outputs, &it, &key, &keylen, &member)) {
    if (have.len)
      tether_buf_append_str(&have, ", ");
    tether_buf_append(&have, key, keylen);
  }
  tt_diag_set(R->diag, "%s: %s: resource '%.*s' has no output '%.*s' (%s%s)",
              file, R->path.data, (int)ref->target_len, ref->target,
              (int)ref->key_len, ref->key,
              have.len ? "its outputs: " : "it has no outputs",
              have.len ? have.data : "");
  tether_buf_free(&have);
  return R->diag->message;
}

static const char *resolve_string(resolver *R, const tether_json *v,
                                  tether_json **out) {
  const char *s = tether_json_string_value(v);
  size_t len = tether_json_string_length(v);
  if (!memchr(s, '$', len)) {
    *out = tether_json_ref(v);
    return NULL;
  }
  const char *err = NULL;
  tt_ref whole;
  if (tt_ref_whole(s, len, &whole)) {
    const tether_json *value;
    err = lookup_reference(R, &whole, &value);
    if (!err && !value) {
      mark_unknown(R);
      *out = tether_json_null();
    } else if (!err) {
      *out = tether_json_ref(value);
    }
    return err;
  }
  tether_buf text;
  tether_buf_init(&text);
  bool unknown = false;
  tt_ref_scanner sc;
  tt_ref_scan_init(&sc, s, len);
  for (tt_ref_token t; !err && (t = tt_ref_scan_next(&sc)) != TT_REF_END;) {
    switch (t) {
    case TT_REF_END:
      break;
    case TT_REF_TEXT:
      tether_buf_append(&text, sc.text, sc.text_len);
      break;
    case TT_REF_REFERENCE: {
      const tether_json *value;
      err = lookup_reference(R, &sc.ref, &value);
      if (!err && value)
        tt_ref_interpolate(value, &text);
      else if (!err)
        unknown = true;
      break;
    }
    case TT_REF_ERROR:
      err = tt_diag_set(R->diag, "%s: %s: %s", R->r->deployment->model->file,
                        R->path.data, sc.error);
      break;
    }
  }
  if (!err && unknown) {
    mark_unknown(R);
    *out = tether_json_null();
  } else if (!err) {
    *out = tether_json_string_n(text.data ? text.data : "", text.len);
  }
  tether_buf_free(&text);
  return err;
}

static void truncate_buf(tether_buf *b, size_t len) {
  b->len = len;
  if (b->data)
    b->data[len] = '\0';
}

static const char *resolve_value(resolver *R, const tether_json *v,
                                 tether_json **out);

static const char *resolve_array(resolver *R, const tether_json *v,
                                 tether_json **out) {
  size_t n = tether_json_array_size(v);
  tether_json **items = tt_calloc(n, sizeof *items);
  const char *err = NULL;
  bool changed = false;
  size_t done = 0;
  for (; !err && done < n; done++) {
    size_t pmark = R->pointer.len, mark = R->path.len;
    tether_buf_printf(&R->pointer, "/%zu", done);
    tt_path_append_index(&R->path, done);
    const tether_json *item = tether_json_array_get(v, done);
    err = resolve_value(R, item, &items[done]);
    if (!err && items[done] != item)
      changed = true;
    truncate_buf(&R->pointer, pmark);
    truncate_buf(&R->path, mark);
  }
  if (!err && changed) {
    tether_json *arr = tether_json_array();
    for (size_t i = 0; i < n; i++) {
      arr = tether_json_array_append(arr, items[i]);
      items[i] = NULL;
    }
    *out = arr;
  } else if (!err) {
    /* Nothing referenced: share the written value instead of copying. */
    *out = tether_json_ref(v);
  }
  for (size_t i = 0; i < n; i++)
    tether_json_unref(items[i]);
  free(items);
  return err;
}

static const char *resolve_object(resolver *R, const tether_json *v,
                                  tether_json **out) {
  size_t n = tether_json_object_size(v);
  tether_json **items = tt_calloc(n, sizeof *items);
  const char *err = NULL;
  bool changed = false;
  size_t it = 0, done = 0;
  const char *key;
  size_t keylen;
  tether_json *member;
  while (!err && tether_json_object_next(v, &it, &key, &keylen, &member)) {
    size_t pmark = R->pointer.len, mark = R->path.len;
    tether_json_pointer_append(&R->pointer, key, keylen);
    tt_path_append_key(&R->path, key, keylen);
    err = resolve_value(R, member, &items[done]);
    if (!err && items[done] != member)
      changed = true;
    done++;
    truncate_buf(&R->pointer, pmark);
    truncate_buf(&R->path, mark);
  }
  if (!err && changed) {
    tether_json *obj = tether_json_object();
    it = 0;
    for (size_t i = 0; tether_json_object_next(v, &it, &key, &keylen, &member);
         i++) {
      obj = tether_json_object_setn(obj, key, keylen, items[i]);
      items[i] = NULL;
    }
    *out = obj;
  } else if (!err) {
    *out = tether_json_ref(v);
  }
  for (size_t i = 0; i < n; i++)
    tether_json_unref(items[i]);
  free(items);
  return err;
}

static const char *resolve_value(resolver *R, const tether_json *v,
                                 tether_json **out) {
  *out = NULL;
  switch (tether_json_kind_of(v)) {
  case TETHER_JSON_NULL:
  case TETHER_JSON_BOOL:
  case TETHER_JSON_NUMBER:
    *out = tether_json_ref(v);
    return NULL;
  case TETHER_JSON_STRING:
    return resolve_string(R, v, out);
  case TETHER_JSON_ARRAY:
    return resolve_array(R, v, out);
  case TETHER_JSON_OBJECT:
    return resolve_object(R, v, out);
  }
  return NULL;
}

const char *tt_resolve_inputs(const tt_resource *r, tt_outputs_lookup *lookup,
                              void *ctx, tt_resolved *out, tt_diag *diag) {
  memset(out, 0, sizeof *out);
  resolver R = {.r = r, .lookup = lookup, .ctx = ctx, .diag = diag, .out = out};
  tether_buf_init(&R.pointer);
  tether_buf_init(&R.path);
  tether_buf_append_str(&R.path, r->json_path);
  tt_path_append_key(&R.path, "inputs", 6);
  tether_json *inputs = NULL;
  const char *err = resolve_value(&R, r->inputs, &inputs);
  tether_buf_free(&R.pointer);
  tether_buf_free(&R.path);
  if (err) {
    tether_json_unref(inputs);
    tt_resolved_free(out);
    return err;
  }
  out->inputs = inputs;
  return NULL;
}
