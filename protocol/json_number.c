/*
 * json_number.c: numbers. A number keeps its exact JSON text, so a 20-digit
 * id or a price survives a round trip untouched. Numeric equality and the
 * integer accessors work on the decimal digits of that text, never through
 * a double, so two large integers that a double cannot tell apart still
 * compare as different.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strtod_l */
#endif
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"
#include "util.h"

bool tt_json_number_valid(const char *s, size_t len) {
  size_t i = 0;
  if (i < len && s[i] == '-')
    i++;
  if (i == len)
    return false;
  if (s[i] == '0') {
    i++;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < len && s[i] >= '0' && s[i] <= '9')
      i++;
  } else {
    return false;
  }
  if (i < len && s[i] == '.') {
    i++;
    size_t d = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
      i++;
    if (i == d)
      return false;
  }
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < len && (s[i] == '+' || s[i] == '-'))
      i++;
    size_t d = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
      i++;
    if (i == d)
      return false;
  }
  return i == len;
}

/* A valid number's text taken apart: the value is
 * (-1)^neg * digits * 10^exp, where digits are the significant decimal
 * digits (no leading or trailing zeros; none at all for zero). The digits
 * are read through digit() because the decimal point may split them. */
typedef struct number_parts {
  bool neg;
  const char *ip; /* integer part digits */
  size_t ilen;
  const char *fp; /* fraction digits */
  size_t flen;
  size_t lo, hi; /* significant digits are [lo, hi) of ip ++ fp */
  long long exp; /* saturated at +-EXP_LIMIT */
} number_parts;

#define EXP_LIMIT 4000000000000000000LL

static char digit_at(const number_parts *p, size_t k) {
  return k < p->ilen ? p->ip[k] : p->fp[k - p->ilen];
}

static void number_split(const char *s, size_t len, number_parts *p) {
  size_t i = 0;
  p->neg = s[0] == '-';
  if (p->neg)
    i++;
  p->ip = s + i;
  while (i < len && s[i] >= '0' && s[i] <= '9')
    i++;
  p->ilen = (size_t)(s + i - p->ip);
  p->fp = s + i;
  p->flen = 0;
  if (i < len && s[i] == '.') {
    i++;
    p->fp = s + i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
      i++;
    p->flen = (size_t)(s + i - p->fp);
  }
  long long e = 0;
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    bool eneg = false;
    if (s[i] == '+' || s[i] == '-')
      eneg = s[i++] == '-';
    for (; i < len; i++) {
      if (e < EXP_LIMIT / 10)
        e = e * 10 + (s[i] - '0');
      else
        e = EXP_LIMIT;
    }
    if (eneg)
      e = -e;
  }
  size_t total = p->ilen + p->flen;
  size_t lo = 0, hi = total;
  while (lo < total && digit_at(p, lo) == '0')
    lo++;
  while (hi > lo && digit_at(p, hi - 1) == '0')
    hi--;
  p->lo = lo;
  p->hi = hi;
  /* Digits after the significant ones scale the value up; fraction digits
   * scale it down. Both counts are far below EXP_LIMIT. */
  p->exp = e - (long long)p->flen + (long long)(total - hi);
  if (e >= EXP_LIMIT)
    p->exp = EXP_LIMIT;
  if (e <= -EXP_LIMIT)
    p->exp = -EXP_LIMIT;
}

bool tt_json_number_equal(const char *a, size_t alen, const char *b,
                          size_t blen) {
  if (alen == blen && memcmp(a, b, alen) == 0)
    return true;
  number_parts x, y;
  number_split(a, alen, &x);
  number_split(b, blen, &y);
  bool xzero = x.lo == x.hi, yzero = y.lo == y.hi;
  if (xzero || yzero)
    return xzero && yzero; /* -0 equals 0 */
  if (x.neg != y.neg || x.exp != y.exp || x.hi - x.lo != y.hi - y.lo)
    return false;
  for (size_t k = 0; k < x.hi - x.lo; k++)
    if (digit_at(&x, x.lo + k) != digit_at(&y, y.lo + k))
      return false;
  return true;
}

/* The magnitude of an integral number, when it fits in 64 bits. */
static bool number_magnitude(const tether_json *v, bool *neg, uint64_t *out) {
  if (!tether_json_is_number(v))
    return false;
  const tt_json_number *n = (const tt_json_number *)v;
  /* Most integers are plain digits of a size that cannot overflow (a
   * valid number's text has no leading zero): no need to take them
   * apart. */
  const char *digits = n->text + (n->text[0] == '-');
  size_t nd = n->len - (size_t)(digits - n->text);
  if (nd <= 19) {
    uint64_t u = 0;
    size_t i = 0;
    while (i < nd && digits[i] >= '0' && digits[i] <= '9')
      u = u * 10 + (uint64_t)(digits[i++] - '0');
    if (i == nd) {
      *neg = digits != n->text;
      *out = u;
      return true;
    }
  }
  number_parts p;
  number_split(n->text, n->len, &p);
  *neg = p.neg;
  if (p.lo == p.hi) {
    *out = 0;
    return true;
  }
  if (p.exp < 0 || p.exp > 20)
    return false;
  uint64_t u = 0;
  for (size_t k = p.lo; k < p.hi + (size_t)p.exp; k++) {
    unsigned d = k < p.hi ? (unsigned)(digit_at(&p, k) - '0') : 0;
    if (u > (UINT64_MAX - d) / 10)
      return false;
    u = u * 10 + d;
  }
  *out = u;
  return true;
}

bool tether_json_get_uint(const tether_json *v, uint64_t *out) {
  bool neg;
  uint64_t u;
  if (!number_magnitude(v, &neg, &u) || (neg && u != 0))
    return false;
  *out = u;
  return true;
}

bool tether_json_get_int(const tether_json *v, int64_t *out) {
  bool neg;
  uint64_t u;
  if (!number_magnitude(v, &neg, &u))
    return false;
  if (neg) {
    if (u > (uint64_t)INT64_MAX + 1)
      return false;
    *out = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
  } else {
    if (u > (uint64_t)INT64_MAX)
      return false;
    *out = (int64_t)u;
  }
  return true;
}

/* strtod and printf follow LC_NUMERIC, which a program may have set to a
 * locale with a decimal comma; JSON always uses '.'. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void) {
  c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  if (!c_locale)
    tt_oom();
}

bool tether_json_get_double(const tether_json *v, double *out) {
  if (!tether_json_is_number(v))
    return false;
  pthread_once(&c_locale_once, make_c_locale);
  *out = strtod_l(((const tt_json_number *)v)->text, NULL, c_locale);
  return true;
}

const char *tether_json_number_str(const tether_json *v) {
  if (!tether_json_is_number(v))
    return NULL;
  return ((const tt_json_number *)v)->text;
}

tether_json *tether_json_number_text(const char *text, size_t len) {
  if (!text || !tt_json_number_valid(text, len))
    return NULL;
  tt_json_number *n = tt_json_alloc_number(len);
  memcpy(n->text, text, len);
  return &n->head;
}

static tether_json *number_from_u64(bool neg, uint64_t u) {
  char buf[24];
  char *p = buf + sizeof buf;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (neg)
    *--p = '-';
  return tether_json_number_text(p, (size_t)(buf + sizeof buf - p));
}

tether_json *tether_json_int(int64_t i) {
  if (i < 0)
    return number_from_u64(true, (uint64_t)0 - (uint64_t)i);
  return number_from_u64(false, (uint64_t)i);
}

tether_json *tether_json_uint(uint64_t u) { return number_from_u64(false, u); }

tether_json *tether_json_double(double d) {
  if (!isfinite(d))
    return tether_json_null();
  pthread_once(&c_locale_once, make_c_locale);
  locale_t old = uselocale(c_locale);
  char buf[40];
  int n = 0;
  /* The shortest precision that reads back as the same double. */
  for (int prec = 1; prec <= 17; prec++) {
    n = snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (strtod(buf, NULL) == d)
      break;
  }
  uselocale(old);
  return tether_json_number_text(buf, (size_t)n);
}
