/*
 * patch_command.c: `tether patch DOC.json PATCH.json` applies an RFC 6902
 * patch to a JSON document and prints the result, compact, on one line.
 * "-" reads one of the two from stdin.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "tether/json.h"

/* Reads a whole file (or stdin for "-") into out; false with a message on
 * stderr when it cannot. */
static bool read_file(const char *path, tether_buf *out) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "tether patch: cannot open %s: %s\n", path, strerror(errno));
    return false;
  }
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    tether_buf_append(out, chunk, n);
  bool ok = !ferror(f);
  if (!ok)
    fprintf(stderr, "tether patch: cannot read %s: %s\n", path, strerror(errno));
  if (f != stdin)
    fclose(f);
  return ok;
}

static tether_json *load_json(const char *path) {
  tether_buf text;
  tether_buf_init(&text);
  if (!read_file(path, &text)) {
    tether_buf_free(&text);
    return NULL;
  }
  tether_json_error err;
  tether_json *v = tether_json_parse(text.data ? text.data : "", text.len, &err);
  /* The parser's message names the byte offset itself. */
  if (!v)
    fprintf(stderr, "tether patch: %s: %s\n", path, err.message);
  tether_buf_free(&text);
  return v;
}

int tt_patch_main(int argc, char **argv) {
  if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    fputs("usage: tether patch DOC.json PATCH.json\n"
          "Applies the RFC 6902 patch to the document and prints the result.\n",
          stdout);
    return 0;
  }
  if (argc != 3) {
    fprintf(stderr, "tether patch: expected two files, DOC.json and "
                    "PATCH.json (got %d argument%s)\n"
                    "usage: tether patch DOC.json PATCH.json\n",
            argc - 1, argc == 2 ? "" : "s");
    return 2;
  }
  if (strcmp(argv[1], "-") == 0 && strcmp(argv[2], "-") == 0) {
    fputs("tether patch: only one of DOC.json and PATCH.json can be '-'\n",
          stderr);
    return 2;
  }
  tether_json *doc = load_json(argv[1]);
  if (!doc)
    return 1;
  tether_json *patch = load_json(argv[2]);
  if (!patch) {
    tether_json_unref(doc);
    return 1;
  }
  tether_json_error err;
  int status = 0;
  if (!tether_json_patch(&doc, patch, &err)) {
    /* The message names the failing operation ("patch operation 2 (...)");
     * say it here only when it does not. */
    if (err.op >= 0 && !strstr(err.message, "operation"))
      fprintf(stderr, "tether patch: %s: operation %ld: %s\n", argv[2],
              err.op, err.message);
    else
      fprintf(stderr, "tether patch: %s: %s\n", argv[2], err.message);
    status = 1;
  } else {
    tether_buf out;
    tether_buf_init(&out);
    tether_json_dump(doc, &out);
    tether_buf_append_char(&out, '\n');
    fwrite(out.data, 1, out.len, stdout);
    tether_buf_free(&out);
  }
  tether_json_unref(doc);
  tether_json_unref(patch);
  return status;
}
