/*
 * fail.c: failures that carry their protocol code and data from where
 * they happen to the handler that answers with them, and the error
 * messages they quote.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "local.h"

void tt_fail_set(tt_fail *f, int code, tether_json *data, const char *fmt,
                 ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->message, sizeof f->message, fmt, ap);
  va_end(ap);
  f->code = code;
  if (f->data)
    tether_json_unref(f->data);
  f->data = data;
}

tether_done *tt_fail_reply(tether_request *req, tt_fail *f) {
  tether_json *data = f->data;
  f->data = NULL;
  return tether_reply_error(req, f->code, data, "%s", f->message);
}

const char *tt_strerror_r(int err, char *buf, size_t len) {
  /* The GNU strerror_r (the build defines _GNU_SOURCE) returns the
   * message, from its constant table or written into buf. */
  return strerror_r(err, buf, len);
}
