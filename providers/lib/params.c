/*
 * params.c: what the library checks before a handler runs: the params of
 * each operation (SPEC section 5), the resource type and whether it has
 * the operation, require_state, declared inputs; and whether a provider's
 * type table makes sense at all.
 *
 * Every check returns NULL when fine or the problem's message (also in
 * p->message), so checks chain: `if (!err) err = check_resource(...)`.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "provider_lib.h"
#include "util.h"

static const char *problem(tt_prov_problem *p, int code, tether_json *data,
                           const char *fmt, ...) TETHER_PRINTF(4, 5);

static const char *problem(tt_prov_problem *p, int code, tether_json *data,
                           const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->message, sizeof p->message, fmt, ap);
  va_end(ap);
  p->code = code;
  tether_json_unref(p->data);
  p->data = data;
  return p->message;
}

static tether_json *path_data(const char *path) {
  tether_json *data = tether_json_object();
  return tether_json_object_set(data, "path", tether_json_string(path));
}

/* Checks member key of obj (at pointer `where`): present when required,
 * of the given kind when present. *out receives it, or NULL. The member's
 * pointer is spelled out only for a problem: most requests have none. */
static const char *member(const tether_json *obj, const char *where,
                          const char *key, tether_json_kind kind, bool required,
                          const tether_json **out, tt_prov_problem *p) {
  const tether_json *v = tether_json_object_get(obj, key);
  *out = NULL;
  if (v ? tether_json_kind_of(v) == kind : !required) {
    *out = v;
    return NULL;
  }
  tether_buf path;
  tether_buf_init(&path);
  tether_buf_append_str(&path, where);
  tether_json_pointer_append(&path, key, strlen(key));
  if (!v)
    problem(p, TETHER_ERR_INVALID_PARAMS, path_data(path.data),
            "invalid params: missing %s", path.data);
  else
    problem(p, TETHER_ERR_INVALID_PARAMS, path_data(path.data),
            "invalid params: %s must be %s, not %s", path.data,
            tt_json_kind_phrase(kind), tt_json_kind_phrase(tether_json_kind_of(v)));
  tether_buf_free(&path);
  return p->message;
}

static const char *check_resource(tether_request *req, tt_prov_problem *p) {
  const tether_json *r, *type, *in, *out;
  const char *err =
      member(req->params, "", "resource", TETHER_JSON_OBJECT, true, &r, p);
  if (!err)
    err = member(r, "/resource", "type", TETHER_JSON_STRING, true, &type, p);
  if (!err)
    err = member(r, "/resource", "inputProperties", TETHER_JSON_OBJECT, true,
                 &in, p);
  if (!err)
    err = member(r, "/resource", "outputProperties", TETHER_JSON_OBJECT, false,
                 &out, p);
  if (err)
    return err;
  req->resource = r;
  req->type_name = tether_json_string_value(type);
  req->inputs = in;
  if (!out) {
    req->empty_object = tether_json_object();
    out = req->empty_object;
  }
  req->outputs = out;
  return NULL;
}

static const char *check_create(tether_request *req, tt_prov_problem *p) {
  const tether_json *type, *in, *stateful;
  const char *err =
      member(req->params, "", "type", TETHER_JSON_STRING, true, &type, p);
  if (!err)
    err = member(req->params, "", "inputProperties", TETHER_JSON_OBJECT, true,
                 &in, p);
  if (!err)
    err = member(req->params, "", "isStateful", TETHER_JSON_BOOL, true,
                 &stateful, p);
  if (err)
    return err;
  req->type_name = tether_json_string_value(type);
  req->inputs = in;
  req->is_stateful = tether_json_bool_value(stateful);
  return NULL;
}

static const char *check_update(tether_request *req, tt_prov_problem *p) {
  const tether_json *in;
  const char *err = check_resource(req, p);
  if (!err)
    err = member(req->params, "", "inputProperties", TETHER_JSON_OBJECT, true,
                 &in, p);
  if (!err)
    req->inputs = in;
  return err;
}

static const char *check_patch(const tether_json *patch, tt_prov_problem *p) {
  tether_json_error jerr;
  if (tether_json_patch_check(patch, &jerr))
    return NULL;
  char path[48];
  tether_json *data;
  if (jerr.op >= 0) {
    snprintf(path, sizeof path, "/patch/%ld", jerr.op);
    data = path_data(path);
    data = tether_json_object_set(data, "op", tether_json_int(jerr.op));
  } else {
    snprintf(path, sizeof path, "/patch");
    data = path_data(path);
  }
  return problem(p, TETHER_ERR_INVALID_PARAMS, data, "invalid params: %s: %s",
                 path, jerr.message);
}

static const char *check_state_event(tether_request *req, tt_prov_problem *p) {
  const tether_json *event, *version, *patch, *expect;
  const char *err = check_resource(req, p);
  if (!err)
    err = member(req->params, "", "event", TETHER_JSON_STRING, true, &event, p);
  /* NixOps4 names the host's version nixopsVersion; either name will do,
   * and one of them must be there. */
  if (!err && tether_json_object_get(req->params, "hostVersion") == NULL &&
      tether_json_object_get(req->params, "nixopsVersion") != NULL)
    err = member(req->params, "", "nixopsVersion", TETHER_JSON_STRING, true,
                 &version, p);
  else if (!err)
    err = member(req->params, "", "hostVersion", TETHER_JSON_STRING, true,
                 &version, p);
  if (!err)
    err = member(req->params, "", "patch", TETHER_JSON_ARRAY, true, &patch, p);
  if (!err)
    err = check_patch(patch, p);
  if (!err)
    err = member(req->params, "", "expectIndex", TETHER_JSON_NUMBER, false,
                 &expect, p);
  uint64_t index;
  if (!err && expect && !tether_json_get_uint(expect, &index))
    err = problem(p, TETHER_ERR_INVALID_PARAMS, path_data("/expectIndex"),
                  "invalid params: /expectIndex must be an integer >= 0");
  return err;
}

static const char *check_op_params(tether_request *req, tt_prov_problem *p) {
  switch (req->op) {
  case TT_PROV_OP_CREATE:
    return check_create(req, p);
  case TT_PROV_OP_UPDATE:
    return check_update(req, p);
  case TT_PROV_OP_DELETE:
  case TT_PROV_OP_READ:
  case TT_PROV_OP_STATE_READ:
    return check_resource(req, p);
  case TT_PROV_OP_STATE_EVENT:
    return check_state_event(req, p);
  }
  return NULL;
}

static const char *find_type(tether_request *req, tt_prov_problem *p) {
  const tether_resource_type *t = tt_prov.info->types;
  for (; t->name; t++) {
    if (strcmp(t->name, req->type_name) == 0) {
      req->type = t;
      return NULL;
    }
  }
  tether_json *known = tether_json_array();
  tether_buf names;
  tether_buf_init(&names);
  for (t = tt_prov.info->types; t->name; t++) {
    known = tether_json_array_append(known, tether_json_string(t->name));
    tether_buf_printf(&names, "%s%s", names.len ? ", " : "", t->name);
  }
  tether_json *data = tether_json_object();
  data =
      tether_json_object_set(data, "type", tether_json_string(req->type_name));
  data = tether_json_object_set(data, "known", known);
  problem(p, TETHER_ERR_UNKNOWN_TYPE, data,
          "unknown resource type \"%s\" (this provider has: %s)",
          req->type_name, names.len ? names.data : "no types");
  tether_buf_free(&names);
  return p->message;
}

static tether_json *type_data(const tether_request *req) {
  tether_json *data = tether_json_object();
  return tether_json_object_set(data, "type",
                                tether_json_string(req->type->name));
}

static const char *check_supported(tether_request *req, tt_prov_problem *p) {
  if (tt_prov_op_handler(req->type, req->op))
    return NULL;
  tether_json *data = type_data(req);
  data = tether_json_object_set(data, "operation",
                                tether_json_string(tt_prov_op_name(req->op)));
  return problem(p, TETHER_ERR_UNSUPPORTED, data,
                 "resource type \"%s\" does not support %s", req->type->name,
                 tt_prov_op_name(req->op));
}

static const char *check_stateful(tether_request *req, tt_prov_problem *p) {
  if (req->op != TT_PROV_OP_CREATE || !req->type->require_state ||
      req->is_stateful)
    return NULL;
  return problem(p, TETHER_ERR_REQUIRES_STATE, type_data(req),
                 "resource type \"%s\" requires state: the resource must be "
                 "declared stateful (isStateful true)",
                 req->type->name);
}

static const char *check_declared(tether_request *req, tt_prov_problem *p) {
  if (!req->type->inputs ||
      (req->op != TT_PROV_OP_CREATE && req->op != TT_PROV_OP_UPDATE))
    return NULL;
  return tt_prov_check_inputs(req->inputs, "/inputProperties",
                              req->type->inputs, p);
}

const char *tt_prov_check_request(tether_request *req, tt_prov_problem *p) {
  req->params = req->msg.params;
  const char *err = NULL;
  if (!tether_json_is_object(req->params)) {
    req->params = NULL;
    err = problem(p, TETHER_ERR_INVALID_PARAMS, path_data(""),
                  "invalid params: %s needs params as an object",
                  tt_prov_op_name(req->op));
  }
  if (!err)
    err = check_op_params(req, p);
  if (!err)
    err = find_type(req, p);
  if (!err)
    err = check_supported(req, p);
  if (!err)
    err = check_stateful(req, p);
  if (!err)
    err = check_declared(req, p);
  return err;
}

/* ---- Declared inputs ---- */

static const tether_input *find_input(const tether_input *inputs,
                                      const char *key, size_t keylen) {
  for (; inputs->name; inputs++)
    if (strlen(inputs->name) == keylen &&
        memcmp(inputs->name, key, keylen) == 0)
      return inputs;
  return NULL;
}

static const char *input_problem(tt_prov_problem *p, const char *where,
                                 const char *key, size_t keylen,
                                 const char *fmt, ...) TETHER_PRINTF(5, 6);

static const char *input_problem(tt_prov_problem *p, const char *where,
                                 const char *key, size_t keylen,
                                 const char *fmt, ...) {
  tether_buf path;
  tether_buf_init(&path);
  tether_buf_append_str(&path, where);
  tether_json_pointer_append(&path, key, keylen);
  char what[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  problem(p, TETHER_ERR_INVALID_PARAMS, path_data(path.data), "%s: %s",
          path.data, what);
  tether_buf_free(&path);
  return p->message;
}

static const char *check_members(const tether_json *obj, const char *where,
                                 const tether_input *inputs,
                                 tt_prov_problem *p) {
  size_t it = 0, keylen;
  const char *key;
  tether_json *v;
  while (tether_json_object_next(obj, &it, &key, &keylen, &v)) {
    const tether_input *in = find_input(inputs, key, keylen);
    if (!in) {
      tether_buf known;
      tether_buf_init(&known);
      for (const tether_input *i = inputs; i->name; i++)
        tether_buf_printf(&known, "%s%s", known.len ? ", " : "", i->name);
      input_problem(p, where, key, keylen, "unknown input property (%s%s)",
                    known.len ? "known: " : "this type takes no inputs",
                    known.len ? known.data : "");
      tether_buf_free(&known);
      return p->message;
    }
    tether_json_kind kind = tether_json_kind_of(v);
    if (!in->any_kind && kind != in->kind)
      return input_problem(p, where, key, keylen, "must be %s, not %s",
                           tt_json_kind_phrase(in->kind), tt_json_kind_phrase(kind));
  }
  return NULL;
}

static const char *check_required(const tether_json *obj, const char *where,
                                  const tether_input *inputs,
                                  tt_prov_problem *p) {
  for (; inputs->name; inputs++)
    if (inputs->required && !tether_json_object_get(obj, inputs->name))
      return input_problem(p, where, inputs->name, strlen(inputs->name),
                           "missing required input property");
  return NULL;
}

const char *tt_prov_check_inputs(const tether_json *obj, const char *where,
                                 const tether_input *inputs,
                                 tt_prov_problem *p) {
  if (!tether_json_is_object(obj))
    return problem(p, TETHER_ERR_INVALID_PARAMS, path_data(where),
                   "%s must be an object, not %s", where,
                   tt_json_kind_phrase(tether_json_kind_of(obj)));
  const char *err = check_members(obj, where, inputs, p);
  if (!err)
    err = check_required(obj, where, inputs, p);
  return err;
}

/* ---- The type table ---- */

static const char *check_type(const tether_resource_type *t, char *buf,
                              size_t buflen) {
  if (!*t->name) {
    snprintf(buf, buflen, "a resource type has an empty name");
    return buf;
  }
  bool state_ops = t->op_state_read || t->op_state_event;
  if (t->state_provider && !(t->op_state_read && t->op_state_event)) {
    snprintf(buf, buflen,
             "type \"%s\" is a state provider but lacks op_state_read or "
             "op_state_event",
             t->name);
    return buf;
  }
  if (!t->state_provider && state_ops) {
    snprintf(buf, buflen,
             "type \"%s\" has state operations but state_provider is false",
             t->name);
    return buf;
  }
  for (const tether_input *in = t->inputs; in && in->name; in++) {
    if (find_input(in + 1, in->name, strlen(in->name))) {
      snprintf(buf, buflen, "type \"%s\" declares input \"%s\" twice", t->name,
               in->name);
      return buf;
    }
  }
  return NULL;
}

const char *tt_prov_check_info(const tether_provider_info *info, char *buf,
                               size_t buflen) {
  if (!info->name || !info->version || !info->types) {
    snprintf(buf, buflen, "provider info needs a name, a version and types");
    return buf;
  }
  if (info->concurrency < 0 || info->threads < 0) {
    snprintf(buf, buflen, "concurrency and threads must not be negative");
    return buf;
  }
  for (const tether_resource_type *t = info->types; t->name; t++) {
    const char *err = check_type(t, buf, buflen);
    if (err)
      return err;
    for (const tether_resource_type *u = info->types; u != t; u++) {
      if (strcmp(u->name, t->name) == 0) {
        snprintf(buf, buflen, "type \"%s\" is listed twice", t->name);
        return buf;
      }
    }
  }
  return NULL;
}
