/*
 * hello.c: a complete tether resource provider in C, built on the provider
 * library the way a provider outside this tree is:
 *
 *     cc hello.c $(pkg-config --cflags --libs tether-provider)
 *
 * It has one resource type, `greeting`, whose output is a greeting for
 * the `name` it is given. The library answers initialize, checks params
 * and inputs against the table below, and handles shutdown, cancellation
 * and framing; the handlers only compute outputs. A greeting lives only in
 * the host's state, so there is nothing to `read`: the type leaves that
 * operation out, and the library answers it with -32011.
 *
 * Try it by hand:
 *
 *     tether run create --provider-exe ./hello --type greeting \
 *         --input-str name world
 */
#include <string.h>

#include <tether/provider.h>

static tether_json *greet(const tether_json *inputs) {
  const char *name =
      tether_json_string_value(tether_json_object_get(inputs, "name"));
  const tether_json *shout = tether_json_object_get(inputs, "shout");
  tether_json *out = tether_json_object();
  out = tether_json_object_set(
      out, "greeting",
      tether_json_stringf("Hello, %s%s", name,
                          tether_json_bool_value(shout) ? "!" : "."));
  return out;
}

static tether_done *greeting_create(tether_request *req) {
  return tether_reply_outputs(req, greet(tether_request_inputs(req)));
}

static tether_done *greeting_update(tether_request *req) {
  tether_log(TETHER_LOG_INFO, "updating the greeting for %s",
             tether_json_string_value(
                 tether_json_object_get(tether_request_inputs(req), "name")));
  return tether_reply_outputs(req, greet(tether_request_inputs(req)));
}

static tether_done *greeting_delete(tether_request *req) {
  /* A greeting lives nowhere but in the state: nothing to remove. */
  return tether_reply_ok(req, tether_json_object());
}

static const tether_input greeting_inputs[] = {
    {.name = "name", .kind = TETHER_JSON_STRING, .required = true},
    {.name = "shout", .kind = TETHER_JSON_BOOL},
    {.name = NULL}};

static const tether_resource_type types[] = {
    {.name = "greeting",
     .description = "A greeting for someone, computed from their name",
     .inputs = greeting_inputs,
     .op_create = greeting_create,
     .op_update = greeting_update,
     .op_delete = greeting_delete},
    {.name = NULL}};

int main(int argc, char **argv) {
  tether_provider_info info = {
      .name = "hello", .version = "1.0.0", .types = types};
  return tether_provider_main(&info, argc, argv);
}
