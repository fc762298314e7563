/*
 * tether/json.h: JSON values (RFC 8259), JSON Pointer (RFC 6901) and
 * JSON Patch (RFC 6902).
 *
 * OWNERSHIP. One rule, obeyed by every function in this header:
 *
 *   A `tether_json *` parameter is consumed: the caller's reference passes
 *   to the function, on success and on failure alike. A `const tether_json *`
 *   parameter is only borrowed. Every returned `tether_json *` is a new
 *   reference owned by the caller, except what the getters return
 *   (`tether_json_object_get`, `tether_json_array_get`,
 *   `tether_json_object_next`, `tether_json_pointer_get`): those are borrowed
 *   from the container and stay valid while the container is alive and
 *   unmodified.
 *
 * Values are reference counted. `tether_json_ref` takes another reference
 * (it is how a borrowed value is kept), `tether_json_unref` drops one.
 * Modifying functions consume the container and return it; when the
 * container was shared (more than one reference) they modify a copy, so a
 * value someone else holds never changes under them:
 *
 *     obj = tether_json_object_set(obj, "name", tether_json_string("web"));
 *
 * Values are not thread-safe: share them across threads only read-only and
 * with references taken before the threads start.
 *
 * Numbers keep their exact text, so a 20-digit id survives a round trip.
 * Object members keep their order; equality ignores it. Running out of
 * memory aborts the process with a message: no function here returns NULL
 * for lack of memory.
 */
#ifndef TETHER_JSON_H
#define TETHER_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TETHER_MUST_USE __attribute__((warn_unused_result))
#define TETHER_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TETHER_MUST_USE
#define TETHER_PRINTF(f, a)
#endif

typedef struct tether_json tether_json;

typedef enum tether_json_kind {
  TETHER_JSON_NULL,
  TETHER_JSON_BOOL,
  TETHER_JSON_NUMBER,
  TETHER_JSON_STRING,
  TETHER_JSON_ARRAY,
  TETHER_JSON_OBJECT
} tether_json_kind;

/* Nesting deeper than this is rejected by the parser. */
#define TETHER_JSON_MAX_DEPTH 1024

/* Where and why a parse, a pointer or a patch failed. */
typedef struct tether_json_error {
  size_t offset;     /* byte offset into the input (parse errors) */
  long op;           /* index of the failing patch operation, or -1 */
  char message[240]; /* one line, no trailing newline */
} tether_json_error;

/* A growable byte buffer; serialization appends to it. */
typedef struct tether_buf {
  char *data; /* NUL-terminated when non-NULL */
  size_t len;
  size_t cap;
} tether_buf;

void tether_buf_init(tether_buf *b);
void tether_buf_free(tether_buf *b);
void tether_buf_reserve(tether_buf *b, size_t extra);
void tether_buf_append(tether_buf *b, const void *data, size_t len);
void tether_buf_append_str(tether_buf *b, const char *s);
void tether_buf_append_char(tether_buf *b, char c);
void tether_buf_printf(tether_buf *b, const char *fmt, ...) TETHER_PRINTF(2, 3);
/* Removes the first n bytes. */
void tether_buf_consume(tether_buf *b, size_t n);
/* Hands the data over to the caller (free() it) and empties the buffer. */
char *tether_buf_steal(tether_buf *b, size_t *len);

/* ---- Parsing and serialization ---- */

/* Parses exactly one JSON text (surrounding whitespace allowed). Returns
 * NULL and fills *err (when err is not NULL) on any deviation from RFC 8259:
 * invalid UTF-8, bad escapes, control characters in strings, leading zeros,
 * trailing commas, comments, bare words, trailing data, nesting deeper than
 * TETHER_JSON_MAX_DEPTH. The message says what and the offset says where. */
tether_json *tether_json_parse(const char *text, size_t len,
                               tether_json_error *err) TETHER_MUST_USE;

/* Appends the compact serialization (no whitespace) of v to out. */
void tether_json_dump(const tether_json *v, tether_buf *out);
/* Compact serialization in a malloc'd NUL-terminated string. */
char *tether_json_dumps(const tether_json *v, size_t *len) TETHER_MUST_USE;
/* Appends a JSON string literal for the bytes s[0..len) to out. */
void tether_json_dump_string(const char *s, size_t len, tether_buf *out);

/* ---- Reference counting ---- */

tether_json *tether_json_ref(const tether_json *v);
void tether_json_unref(tether_json *v);

/* ---- Constructors ---- */

tether_json *tether_json_null(void);
tether_json *tether_json_bool(bool b);
tether_json *tether_json_int(int64_t i);
tether_json *tether_json_uint(uint64_t u);
/* A finite double in its shortest round-tripping form; NaN and infinities,
 * which JSON cannot express, become null. */
tether_json *tether_json_double(double d);
/* A number from its JSON text; NULL when the text is not a JSON number. */
tether_json *tether_json_number_text(const char *text, size_t len);
/* Strings are UTF-8. Invalid sequences are replaced by U+FFFD, so a string
 * value always serializes to valid JSON. */
tether_json *tether_json_string(const char *s);
tether_json *tether_json_string_n(const char *s, size_t len);
tether_json *tether_json_stringf(const char *fmt, ...) TETHER_PRINTF(1, 2);
tether_json *tether_json_array(void);
tether_json *tether_json_object(void);

/* ---- Inspection ---- */

tether_json_kind tether_json_kind_of(const tether_json *v);
const char *tether_json_kind_name(tether_json_kind k); /* "object", ... */
bool tether_json_is_null(const tether_json *v);
bool tether_json_is_bool(const tether_json *v);
bool tether_json_is_number(const tether_json *v);
bool tether_json_is_string(const tether_json *v);
bool tether_json_is_array(const tether_json *v);
bool tether_json_is_object(const tether_json *v);

/* The value of a boolean; false for anything else. */
bool tether_json_bool_value(const tether_json *v);
/* A number's exact text, or NULL for a non-number. */
const char *tether_json_number_str(const tether_json *v);
/* True when v is an integer (no fraction, no exponent that makes one) that
 * fits; *out receives it. */
bool tether_json_get_int(const tether_json *v, int64_t *out);
bool tether_json_get_uint(const tether_json *v, uint64_t *out);
/* True when v is a number; *out receives the nearest double. */
bool tether_json_get_double(const tether_json *v, double *out);
/* A string's bytes, NUL-terminated (a string may also hold NUL bytes:
 * use the length). NULL for a non-string. */
const char *tether_json_string_value(const tether_json *v);
size_t tether_json_string_length(const tether_json *v);

/* Deep equality; object member order is ignored and numbers compare by
 * value ("1.0" equals "1", "1e2" equals "100"). */
bool tether_json_equal(const tether_json *a, const tether_json *b);

/* ---- Arrays ---- */

size_t tether_json_array_size(const tether_json *arr);
/* Borrowed; NULL when out of range or not an array. */
tether_json *tether_json_array_get(const tether_json *arr, size_t i);
tether_json *tether_json_array_append(tether_json *arr,
                                      tether_json *v) TETHER_MUST_USE;
/* Inserts before index i (i == size appends). Aborts when i > size. */
tether_json *tether_json_array_insert(tether_json *arr, size_t i,
                                      tether_json *v) TETHER_MUST_USE;
tether_json *tether_json_array_set(tether_json *arr, size_t i,
                                   tether_json *v) TETHER_MUST_USE;
tether_json *tether_json_array_remove(tether_json *arr,
                                      size_t i) TETHER_MUST_USE;

/* ---- Objects ---- */

size_t tether_json_object_size(const tether_json *obj);
/* Borrowed; NULL when absent or not an object. */
tether_json *tether_json_object_get(const tether_json *obj, const char *key);
tether_json *tether_json_object_getn(const tether_json *obj, const char *key,
                                     size_t keylen);
/* Sets key to v, keeping the member's position when it exists. */
tether_json *tether_json_object_set(tether_json *obj, const char *key,
                                    tether_json *v) TETHER_MUST_USE;
tether_json *tether_json_object_setn(tether_json *obj, const char *key,
                                     size_t keylen,
                                     tether_json *v) TETHER_MUST_USE;
/* Removes key when present. */
tether_json *tether_json_object_remove(tether_json *obj,
                                       const char *key) TETHER_MUST_USE;
tether_json *tether_json_object_removen(tether_json *obj, const char *key,
                                        size_t keylen) TETHER_MUST_USE;
/* Iterates members in order. Start with *iter = 0. Key and value are
 * borrowed. Returns false after the last member.
 *
 *     size_t it = 0; const char *k; size_t klen; tether_json *v;
 *     while (tether_json_object_next(obj, &it, &k, &klen, &v)) ...
 */
bool tether_json_object_next(const tether_json *obj, size_t *iter,
                             const char **key, size_t *keylen,
                             tether_json **value);

/* ---- JSON Pointer (RFC 6901) ---- */

/* The value at pointer (e.g. "/resources/web"; "" is the whole document),
 * borrowed from doc; NULL with *err filled when it does not resolve or the
 * pointer is malformed. */
tether_json *tether_json_pointer_get(const tether_json *doc,
                                     const char *pointer,
                                     tether_json_error *err);
/* Appends the escaped reference token for key ("~" -> "~0", "/" -> "~1")
 * preceded by '/' to out: builds pointers from names safely. */
void tether_json_pointer_append(tether_buf *out, const char *key,
                                size_t keylen);

/* ---- JSON Patch (RFC 6902) ---- */

/* Applies patch (an array of operations) to *doc, all or nothing. On
 * success *doc is the patched document (the old reference was consumed and
 * a new one stored). On failure *doc is left exactly as it was, and *err
 * names the failing operation (err->op is its index), its path and why. */
bool tether_json_patch(tether_json **doc, const tether_json *patch,
                       tether_json_error *err) TETHER_MUST_USE;

/* Checks that patch is a well-formed RFC 6902 document (an array of
 * operation objects with the members each op requires) without applying
 * it. Returns false with *err filled otherwise. */
bool tether_json_patch_check(const tether_json *patch, tether_json_error *err);

#ifdef __cplusplus
}
#endif

#endif /* TETHER_JSON_H */
