/*
 * inputs.c: input checks that a tether_input table cannot express.
 */
#include <stdio.h>
#include <string.h>

#include "local.h"

const char *tt_check_c_string(const tether_json *s, bool nonempty) {
  if (!tether_json_is_string(s))
    return "must be a string";
  size_t len = tether_json_string_length(s);
  if (nonempty && len == 0)
    return "must not be empty";
  if (memchr(tether_json_string_value(s), '\0', len))
    return "must not contain a NUL character";
  return NULL;
}

const char *tt_inputs_where(const tether_request *req) {
  const char *method = tether_request_method(req);
  return strcmp(method, "create") == 0 || strcmp(method, "update") == 0
             ? "/inputProperties"
             : "/resource/inputProperties";
}

tether_done *tt_check_resource_inputs(tether_request *req,
                                      const tether_input *inputs) {
  const char *where = tt_inputs_where(req);
  if (strcmp(where, "/inputProperties") == 0)
    return NULL; /* the library checked them against the same table */
  return tether_check_inputs(req, tether_request_inputs(req), where, inputs);
}

tether_done *tt_reply_bad_input(tether_request *req, const char *key,
                                const char *why) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", tt_inputs_where(req), key);
  return tether_reply_invalid(req, path, "%s %s", path, why);
}
