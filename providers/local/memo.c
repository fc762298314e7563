/*
 * memo.c: the memo type, a value remembered in the state: created from
 * initialize_with, and kept as it was whatever the inputs say later.
 */
#include "local.h"

const tether_input tt_memo_inputs[] = {
    {.name = "initialize_with", .required = true, .any_kind = true},
    {.name = NULL}};

tether_done *tt_memo_create(tether_request *req) {
  /* The library has refused isStateful false already (require_state). */
  tether_json *out = tether_json_object();
  out = tether_json_object_set(
      out, "value",
      tether_json_ref(tether_json_object_get(tether_request_inputs(req),
                                             "initialize_with")));
  return tether_reply_outputs(req, out);
}

tether_done *tt_memo_update(tether_request *req) {
  const tether_json *value =
      tether_json_object_get(tether_request_outputs(req), "value");
  if (!value)
    return tether_reply_invalid(
        req, "/resource/outputProperties/value",
        "a memo's update needs the value it remembers in "
        "/resource/outputProperties/value, and it is missing");
  tether_json *out = tether_json_object();
  out = tether_json_object_set(out, "value", tether_json_ref(value));
  return tether_reply_outputs(req, out);
}

tether_done *tt_memo_delete(tether_request *req) {
  tether_done *done = tt_check_resource_inputs(req, tt_memo_inputs);
  if (done)
    return done;
  /* Nothing exists outside the state, which the host updates. */
  return tether_reply_ok(req, tether_json_object());
}
