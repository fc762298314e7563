/*
 * json_array.c: arrays, a growable vector of values.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"
#include "util.h"

_Noreturn static void misuse(const char *fn, const tether_json *v) {
  fprintf(stderr, "tether: %s called on %s, not an array\n", fn,
          v ? tether_json_kind_name((tether_json_kind)v->kind) : "NULL");
  abort();
}

_Noreturn static void out_of_range(const char *fn, size_t i, size_t size) {
  fprintf(stderr, "tether: %s: index %zu out of range (size %zu)\n", fn, i,
          size);
  abort();
}

void tt_json_array_insert_at(tt_json_array *a, size_t i, tether_json *v) {
  if (a->count == a->cap && a->block) {
    /* Items in a block (json_internal.h) move out before they grow. */
    tether_json **items = tt_malloc((a->cap ? a->cap : 1) * sizeof *items);
    memcpy(items, a->items, a->count * sizeof *items);
    a->items = items;
    tt_json_block_release(a->block);
    a->block = NULL;
  }
  if (a->count == a->cap) {
    if (a->cap > SIZE_MAX / 2 / sizeof *a->items)
      tt_oom();
    a->cap = a->cap ? a->cap * 2 : 4;
    a->items = tt_realloc(a->items, a->cap * sizeof *a->items);
  }
  memmove(a->items + i + 1, a->items + i, (a->count - i) * sizeof *a->items);
  a->items[i] = v;
  a->count++;
}

tether_json *tt_json_array_take_at(tt_json_array *a, size_t i) {
  tether_json *v = a->items[i];
  memmove(a->items + i, a->items + i + 1,
          (a->count - i - 1) * sizeof *a->items);
  a->count--;
  return v;
}

size_t tether_json_array_size(const tether_json *arr) {
  if (!tether_json_is_array(arr))
    return 0;
  return tt_arr(arr)->count;
}

tether_json *tether_json_array_get(const tether_json *arr, size_t i) {
  if (!tether_json_is_array(arr))
    return NULL;
  const tt_json_array *a = tt_arr(arr);
  return i < a->count ? a->items[i] : NULL;
}

tether_json *tether_json_array_insert(tether_json *arr, size_t i,
                                      tether_json *v) {
  if (!tether_json_is_array(arr))
    misuse("tether_json_array_insert", arr);
  size_t n = tt_arr(arr)->count;
  if (i > n)
    out_of_range("tether_json_array_insert", i, n);
  if (!v)
    v = tether_json_null();
  v = tt_json_adopt(v);
  tt_json_array *a = (tt_json_array *)tt_json_unshare(arr);
  tt_json_array_insert_at(a, i, v);
  return &a->head;
}

tether_json *tether_json_array_append(tether_json *arr, tether_json *v) {
  if (!tether_json_is_array(arr))
    misuse("tether_json_array_append", arr);
  return tether_json_array_insert(arr, tt_arr(arr)->count, v);
}

tether_json *tether_json_array_set(tether_json *arr, size_t i,
                                   tether_json *v) {
  if (!tether_json_is_array(arr))
    misuse("tether_json_array_set", arr);
  size_t n = tt_arr(arr)->count;
  if (i >= n)
    out_of_range("tether_json_array_set", i, n);
  if (!v)
    v = tether_json_null();
  v = tt_json_adopt(v);
  tt_json_array *a = (tt_json_array *)tt_json_unshare(arr);
  tether_json *old = a->items[i];
  a->items[i] = v;
  tether_json_unref(old);
  return &a->head;
}

tether_json *tether_json_array_remove(tether_json *arr, size_t i) {
  if (!tether_json_is_array(arr))
    misuse("tether_json_array_remove", arr);
  size_t n = tt_arr(arr)->count;
  if (i >= n)
    out_of_range("tether_json_array_remove", i, n);
  tt_json_array *a = (tt_json_array *)tt_json_unshare(arr);
  tether_json_unref(tt_json_array_take_at(a, i));
  return &a->head;
}
