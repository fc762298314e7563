/*
 * bench_provider.c: the C provider the benchmarks drive. One type, "item",
 * whose operations do no work beyond echoing, so that what is measured is
 * the protocol path: tether, the pipes and the provider library.
 *
 *   bench_provider [--concurrency N] [--threads N]
 */
#include <stdlib.h>
#include <string.h>

#include "tether/provider.h"

static tether_done *item_create(tether_request *req) {
  return tether_reply_outputs(req,
                              tether_json_ref(tether_request_inputs(req)));
}

static tether_done *item_update(tether_request *req) {
  return tether_reply_outputs(req,
                              tether_json_ref(tether_request_inputs(req)));
}

static tether_done *item_delete(tether_request *req) {
  return tether_reply_ok(req, tether_json_object());
}

static tether_done *item_read(tether_request *req) {
  tether_json *r = tether_json_object();
  r = tether_json_object_set(r, "exists", tether_json_bool(true));
  r = tether_json_object_set(r, "outputProperties",
                             tether_json_ref(tether_request_outputs(req)));
  return tether_reply_ok(req, r);
}

static const tether_resource_type types[] = {
    {.name = "item",
     .description = "An item that echoes its inputs (benchmarks)",
     .op_create = item_create,
     .op_update = item_update,
     .op_delete = item_delete,
     .op_read = item_read},
    {.name = NULL}};

int main(int argc, char **argv) {
  tether_provider_info info = {.name = "bench",
                               .version = "1.0",
                               .concurrency = 1,
                               .types = types};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--concurrency") == 0)
      info.concurrency = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--threads") == 0)
      info.threads = atoi(argv[i + 1]);
  }
  return tether_provider_main(&info, argc, argv);
}
