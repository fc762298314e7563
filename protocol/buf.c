/*
 * buf.c: the growable byte buffer every serializer and reader appends to.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tether/json.h"
#include "util.h"

void tether_buf_init(tether_buf *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void tether_buf_free(tether_buf *b) {
  free(b->data);
  tether_buf_init(b);
}

void tether_buf_reserve(tether_buf *b, size_t extra) {
  /* One byte more than asked keeps room for the terminating NUL. */
  if (extra > SIZE_MAX / 2 - b->len)
    tt_oom();
  size_t need = b->len + extra + 1;
  if (need <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap *= 2;
  b->data = tt_realloc(b->data, cap);
  b->cap = cap;
}

void tether_buf_append(tether_buf *b, const void *data, size_t len) {
  tether_buf_reserve(b, len);
  if (len)
    memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
}

void tether_buf_append_str(tether_buf *b, const char *s) {
  tether_buf_append(b, s, strlen(s));
}

void tether_buf_append_char(tether_buf *b, char c) {
  tether_buf_reserve(b, 1);
  b->data[b->len++] = c;
  b->data[b->len] = '\0';
}

void tether_buf_printf(tether_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n < sizeof small) {
    tether_buf_append(b, small, (size_t)n);
    return;
  }
  tether_buf_reserve(b, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void tether_buf_consume(tether_buf *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    if (b->data)
      b->data[0] = '\0';
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  b->data[b->len] = '\0';
}

char *tether_buf_steal(tether_buf *b, size_t *len) {
  if (!b->data)
    tether_buf_append(b, "", 0);
  char *d = b->data;
  if (len)
    *len = b->len;
  tether_buf_init(b);
  return d;
}
