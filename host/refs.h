/*
 * refs.h: references between resources inside input properties.
 *
 * SYNTAX. A reference is `${PATH.outputs.KEY}`:
 *
 *   - PATH names a resource relative to the deployment whose inputs hold
 *     the reference: `db` is the resource db of the same deployment,
 *     `sub.db` the resource db of its nested deployment sub, `a.b.db` one
 *     level deeper. References only look down the tree: a nested deployment
 *     cannot name its parent's or its siblings' resources. That keeps every
 *     nested deployment self-contained (it can be cut out into a file of
 *     its own), and a parent composes its children by reading their
 *     outputs.
 *   - KEY is a top-level member of the resource's outputProperties.
 *   - Names and keys are made of ASCII letters, digits, '_' and '-'.
 *
 * VALUES. A string that is exactly one reference takes the referenced value
 * with its JSON type (a number stays a number, an object stays an object).
 * A reference inside a longer string is interpolated: a string contributes
 * its characters, anything else its compact JSON text (42, true, null,
 * {"a":1}), so structured outputs can be embedded in configuration text.
 * `$${` is a literal `${` and starts no reference; any other `$` is an
 * ordinary character. A `${` that does not form a valid reference is an
 * error, never silently kept: "${HOME}" must be written "$${HOME}".
 * Only string values are scanned; object keys are taken literally.
 */
#ifndef TETHER_HOST_REFS_H
#define TETHER_HOST_REFS_H

#include <stdbool.h>
#include <stddef.h>

#include "tether/json.h"

struct tt_resource;
struct tt_diag;

/* One parsed reference. Both members point into the scanned string. */
typedef struct tt_ref {
  const char *target; /* "db", "sub.db" */
  size_t target_len;
  const char *key; /* "url" */
  size_t key_len;
} tt_ref;

typedef enum tt_ref_token {
  TT_REF_END,       /* the string is exhausted */
  TT_REF_TEXT,      /* literal bytes: text, text_len */
  TT_REF_REFERENCE, /* a reference: ref */
  TT_REF_ERROR      /* a malformed or unterminated reference: error */
} tt_ref_token;

/* Splits a string into literal text and references without allocating.
 *
 *     tt_ref_scanner sc;
 *     tt_ref_scan_init(&sc, s, len);
 *     for (tt_ref_token t; (t = tt_ref_scan_next(&sc)) != TT_REF_END;) ...
 *
 * `$${` comes out as a TEXT token holding "${". After TT_REF_ERROR the
 * scanner stays at TT_REF_ERROR. */
typedef struct tt_ref_scanner {
  const char *s;
  size_t len;
  size_t pos;
  bool failed;
  const char *text; /* TT_REF_TEXT */
  size_t text_len;
  tt_ref ref;      /* TT_REF_REFERENCE */
  char error[240]; /* TT_REF_ERROR: the problem, naming the bad text */
} tt_ref_scanner;

void tt_ref_scan_init(tt_ref_scanner *sc, const char *s, size_t len);
tt_ref_token tt_ref_scan_next(tt_ref_scanner *sc);

/* True when s is exactly one reference (whole-string, typed); *ref then
 * describes it. */
bool tt_ref_whole(const char *s, size_t len, tt_ref *ref);

/* Appends v as it appears inside a longer string: a string's characters,
 * any other value's compact JSON text. */
void tt_ref_interpolate(const tether_json *v, tether_buf *out);

/* Where the outputs of a referenced resource come from: the outputs object
 * (borrowed; it must stay alive until tt_resolve_inputs returns), or NULL
 * when they are not known yet, so the values that depend on them are
 * "known after apply". Plan answers from recorded outputs; apply answers
 * from what the providers just returned. */
typedef const tether_json *tt_outputs_lookup(void *ctx,
                                             const struct tt_resource *target);

/* Inputs with every reference resolved. */
typedef struct tt_resolved {
  /* The input properties with references replaced by values. A value that
   * is known only after apply is null here and listed in unknown. */
  tether_json *inputs;
  /* JSON pointers into inputs (e.g. "/url") of the values known only after
   * apply, in document order. */
  char **unknown;
  size_t nunknown;
} tt_resolved;

void tt_resolved_free(tt_resolved *r);

/* Resolves the references in r's inputs through lookup. On success fills
 * *out and returns NULL. When a referenced resource's known outputs lack
 * the key, returns the message (kept in *diag), e.g.
 * "tether.json: resources.web.inputs.url: resource 'db' has no output
 * 'port' (its outputs: host, user)", and *out is left empty. The same
 * function serves plan and apply, so both see the same values. */
const char *tt_resolve_inputs(const struct tt_resource *r,
                              tt_outputs_lookup *lookup, void *ctx,
                              tt_resolved *out, struct tt_diag *diag);

#endif /* TETHER_HOST_REFS_H */
