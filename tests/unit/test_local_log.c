/*
 * test_local_log.c: tether-local's state file reader and writer
 * (providers/local/state_log.c): NixOps4's layouts, torn tails at every
 * byte, damage with line and offset, events larger than the read buffer,
 * the exact bytes appended, and large files replayed on two threads
 * exactly as on one.
 *
 * The provider's objects are not in the libraries the unit tests link, so
 * the files under test are compiled in here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../providers/local/durable.c"
#include "../../providers/local/fail.c"
#include "../../providers/local/heap.c"
#include "../../providers/local/state_log.c"

#define REF "../shared/reference/nixops4/"

static char *temp_path;

static int make_temp(void **state) {
  (void)state;
  char tmpl[] = "/tmp/tether-test-log-XXXXXX";
  int fd = mkstemp(tmpl);
  assert_true(fd >= 0);
  close(fd);
  temp_path = strdup(tmpl);
  return 0;
}

static int remove_temp(void **state) {
  (void)state;
  unlink(temp_path);
  free(temp_path);
  return 0;
}

static void write_file(const char *data, size_t len) {
  FILE *f = fopen(temp_path, "w");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  tether_buf b;
  tether_buf_init(&b);
  char block[4096];
  size_t n;
  while ((n = fread(block, 1, sizeof block, f)) > 0)
    tether_buf_append(&b, block, n);
  fclose(f);
  return tether_buf_steal(&b, len);
}

/* Replays temp_path; on failure *fail holds why. */
static bool replay(tt_log_replay *rep, tt_fail *fail) {
  int fd = open(temp_path, O_RDONLY);
  assert_true(fd >= 0);
  bool ok = tt_log_replay_fd(fd, temp_path, 0, rep, fail);
  close(fd);
  return ok;
}

static int64_t data_int(const tt_fail *f, const char *key) {
  int64_t v = -1;
  assert_true(tether_json_get_int(tether_json_object_get(f->data, key), &v));
  return v;
}

/* The offset of the first `where` in text (NULL: 0). */
static int64_t offset_of(const char *text, const char *where) {
  if (!where)
    return 0;
  const char *at = strstr(text, where);
  assert_non_null(at);
  return at - text;
}

/* Replays text[0..len), which must be damaged at line `line`, byte
 * offset `offset`. */
static void expect_damage(const char *text, size_t len, int64_t line,
                          int64_t offset) {
  write_file(text, len);
  tt_log_replay rep;
  tt_fail fail = {0};
  if (replay(&rep, &fail))
    fail_msg("no damage found in: %s", text);
  assert_int_equal(fail.code, TETHER_ERR_STATE_CORRUPT);
  if (data_int(&fail, "line") != line || data_int(&fail, "offset") != offset)
    fail_msg("damage reported at line %lld offset %lld, want %lld %lld: %s",
             (long long)data_int(&fail, "line"),
             (long long)data_int(&fail, "offset"), (long long)line,
             (long long)offset, fail.message);
  tether_json_unref(fail.data);
}

#define DAMAGE(lit, line, where)                                               \
  expect_damage(lit, sizeof lit - 1, line, offset_of(lit, where))

#define EV0                                                                    \
  "{\"index\":0,\"meta\":{\"time\":\"t\"},\"patch\":[{\"op\":\"add\","         \
  "\"path\":\"\",\"value\":{\"_type\":\"nixopsState\",\"resources\":{},"       \
  "\"deployments\":{}}}]}"

static void reference_file_resolves(void **state) {
  (void)state;
  size_t len, rlen;
  char *text = read_all(REF "state-file.json", &len);
  char *want_text = read_all(REF "resolved-state.json", &rlen);
  write_file(text, len);
  tt_log_replay rep;
  tt_fail fail = {0};
  assert_true(replay(&rep, &fail));
  tether_json *want = tether_json_parse(want_text, rlen, NULL);
  assert_non_null(want);
  assert_true(tether_json_equal(rep.state, want));
  assert_int_equal(rep.index, 1);
  assert_int_equal(rep.events, 2);
  /* The file ends with "}" and no newline: the next event needs one. */
  assert_int_equal(rep.append_at, (off_t)len);
  assert_true(rep.need_newline);
  tether_json_unref(want);
  tether_json_unref(rep.state);
  free(text);
  free(want_text);
}

static void nixops_index_zero_events_take_their_position(void **state) {
  (void)state;
  const char *text =
      EV0 "\n{\"index\":0,\"meta\":{\"time\":\"t\"},\"patch\":[{\"op\":\"add\","
          "\"path\":\"/resources/a\",\"value\":1}]}\n{\n  \"index\": 0,\n  "
          "\"meta\": {\"time\": \"t\"},\n  \"patch\": [{\"op\": \"add\", "
          "\"path\": \"/resources/b\", \"value\": 2}]\n}\n";
  write_file(text, strlen(text));
  tt_log_replay rep;
  tt_fail fail = {0};
  assert_true(replay(&rep, &fail));
  assert_int_equal(rep.index, 2);
  assert_non_null(tether_json_pointer_get(rep.state, "/resources/b", NULL));
  assert_false(rep.need_newline);
  tether_json_unref(rep.state);
}

/* Events with every kind of token a cut can fall inside: escapes, a
 * surrogate pair, UTF-8, literals, numbers with fractions and exponents. */
static const char *const tricky_events[] = {
    EV0,
    "{\"index\":1,\"meta\":{\"time\":\"t\",\"event\":\"create\"},\"patch\":"
    "[{\"op\":\"add\",\"path\":\"/resources/a\",\"value\":{\"s\":\"q\\\"b\\\\"
    "\\u00e9\\ud83d\\ude00 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"t\":true,"
    "\"f\":false,\"n\":null,\"x\":-12.5e+3,\"l\":[1,[2,{}],[]]}}]}",
    "{\"index\":2,\"meta\":{\"time\":\"t\"},\"patch\":[{\"op\":\"replace\","
    "\"path\":\"/resources/a/t\",\"value\":false}]}",
};

static void check_every_cut(const char *sep, bool pretty_gap) {
  tether_buf b;
  tether_buf_init(&b);
  size_t ends[3];
  for (int i = 0; i < 3; i++) {
    tether_buf_append_str(&b, tricky_events[i]);
    ends[i] = b.len;
    tether_buf_append_str(&b, sep);
    if (pretty_gap)
      tether_buf_append_str(&b, "  \t\r\n");
  }
  for (size_t cut = ends[0]; cut <= b.len; cut++) {
    write_file(b.data, cut);
    tt_log_replay rep;
    tt_fail fail = {0};
    if (!replay(&rep, &fail))
      fail_msg("cut at %zu of %zu reads as damage: %s", cut, b.len,
               fail.message);
    uint64_t complete = cut >= ends[2] ? 3 : cut >= ends[1] ? 2 : 1;
    if (rep.events != complete)
      fail_msg("cut at %zu: %llu events, want %llu", cut,
               (unsigned long long)rep.events, (unsigned long long)complete);
    /* The next event goes right after the whole ones (and their
     * whitespace): never inside, never after torn bytes. */
    size_t end = ends[complete - 1];
    if ((size_t)rep.append_at < end || (size_t)rep.append_at > cut)
      fail_msg("cut at %zu: append at %lld", cut, (long long)rep.append_at);
    for (size_t i = end; i < (size_t)rep.append_at; i++)
      assert_true(is_space(b.data[i]));
    tether_json_unref(rep.state);
  }
  tether_buf_free(&b);
}

static void every_cut_is_a_torn_tail_compact(void **state) {
  (void)state;
  check_every_cut("\n", false);
}

static void every_cut_is_a_torn_tail_spaced(void **state) {
  (void)state;
  check_every_cut(" ", true);
}

static void zero_bytes_after_a_cut_are_a_torn_tail(void **state) {
  (void)state;
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_append_str(&b, EV0 "\n{\"index\":1,\"meta\":{\"ti");
  size_t keep = strlen(EV0) + 1;
  for (int i = 0; i < 100; i++)
    tether_buf_append_char(&b, '\0');
  write_file(b.data, b.len);
  tt_log_replay rep;
  tt_fail fail = {0};
  assert_true(replay(&rep, &fail));
  assert_int_equal(rep.events, 1);
  assert_int_equal(rep.append_at, (off_t)keep);
  assert_int_equal(rep.file_size, (off_t)b.len);
  tether_json_unref(rep.state);
  tether_buf_free(&b);
}

static void damage_names_line_and_offset(void **state) {
  (void)state;
  /* A missing closing brace: found where the next event starts. */
  DAMAGE(EV0 "\n{\"index\":1,\"meta\":{\"time\":\"t\"},\"patch\":[]\n"
             "{\"index\":2,\"meta\":{\"time\":\"t\"},\"patch\":[]}\n",
         3, "{\"index\":2");
  /* Garbage between events. */
  DAMAGE(EV0 "\nhello\n", 2, "hello");
  /* An index out of order. */
  DAMAGE(EV0 "\n{\"index\":5,\"meta\":{\"time\":\"t\"},\"patch\":[]}\n", 2,
         "{\"index\":5");
  /* A first event that is not event 0. */
  DAMAGE("{\"index\":1,\"meta\":{\"time\":\"t\"},\"patch\":[]}\n", 1, NULL);
  /* A patch that does not apply. */
  DAMAGE(EV0 "\n{\"index\":1,\"meta\":{\"time\":\"t\"},\"patch\":[{"
             "\"op\":\"remove\",\"path\":\"/nothing\"}]}\n",
         2, "{\"index\":1");
  /* An event without meta. */
  DAMAGE(EV0 "\n{\"index\":1,\"patch\":[]}\n", 2, "{\"index\":1");
  /* A lost quote makes the rest one long string to a bracket counter:
   * still damage, where the parser first stumbles. */
  DAMAGE(EV0 "\n{\"index\":1,\"meta\":{\"time\":\"t},\"patch\":[]}\n"
             "{\"index\":2,\"meta\":{\"time\":\"t\"},\"patch\":[]}\n",
         2, "patch\":[]}\n{\"index\":2");
  /* Empty, or only whitespace. */
  DAMAGE("", 1, NULL);
  DAMAGE(" \n\n", 1, NULL);
  /* Only a torn first event: no state at all. */
  DAMAGE("{\"index\":0,\"me", 1, NULL);
  /* Zero bytes in the middle. */
  static const char zeros[] = EV0 "\n\0\0{\"index\":1}";
  expect_damage(zeros, sizeof zeros - 1, 2, (int64_t)strlen(EV0) + 1);
}

static void events_larger_than_the_buffer(void **state) {
  (void)state;
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_append_str(&b, EV0 "\n");
  for (int e = 1; e <= 3; e++) {
    tether_buf_printf(
        &b,
        "{\"index\":%d,\"meta\":{\"time\":\"t\"},\"patch\":[{"
        "\"op\":\"add\",\"path\":\"/resources/big%d\",\"value\":\"",
        e, e);
    for (int i = 0; i < 3 * (int)CHUNK; i++)
      tether_buf_append_char(&b, (char)('a' + i % 26));
    tether_buf_append_str(&b, "\"}]}\n");
  }
  write_file(b.data, b.len);
  tt_log_replay rep;
  tt_fail fail = {0};
  if (!replay(&rep, &fail))
    fail_msg("%s", fail.message);
  assert_int_equal(rep.index, 3);
  assert_int_equal(rep.append_at, (off_t)b.len);
  assert_int_equal(tether_json_string_length(tether_json_pointer_get(
                       rep.state, "/resources/big3", NULL)),
                   3 * CHUNK);
  tether_json_unref(rep.state);
  /* Cut in the middle of the last one: torn, not damage. */
  write_file(b.data, b.len - CHUNK);
  assert_true(replay(&rep, &fail));
  assert_int_equal(rep.index, 2);
  tether_json_unref(rep.state);
  tether_buf_free(&b);
}

static void early_damage_is_found_without_reading_everything(void **state) {
  (void)state;
  /* A lost quote in event 1, followed by 12 MiB of events: found at the
   * damage, not taken for a torn tail. */
  tether_buf b;
  tether_buf_init(&b);
  tether_buf_append_str(&b, EV0 "\n{\"index\":1,\"meta\":{\"time\":\"t},"
                                "\"patch\":[]}\n");
  size_t damage = strlen(EV0) + 1 + 30;
  for (int e = 2; b.len < 12 * CHUNK; e++)
    tether_buf_printf(&b,
                      "{\"index\":%d,\"meta\":{\"time\":\"t\"},\"patch\":[{"
                      "\"op\":\"add\",\"path\":\"/resources/r%d\",\"value\":"
                      "[1,2,3,\"some text to fill the file with\"]}]}\n",
                      e, e);
  write_file(b.data, b.len);
  tt_log_replay rep;
  tt_fail fail = {0};
  assert_false(replay(&rep, &fail));
  assert_int_equal(fail.code, TETHER_ERR_STATE_CORRUPT);
  assert_int_equal(data_int(&fail, "line"), 2);
  assert_true(data_int(&fail, "offset") >= (int64_t)damage);
  tether_json_unref(fail.data);
  tether_buf_free(&b);
}

static void validation_reads_the_first_event_only(void **state) {
  (void)state;
  const char *text = EV0 "\nthis is damage\n";
  write_file(text, strlen(text));
  int fd = open(temp_path, O_RDONLY);
  tt_log_replay rep;
  tt_fail fail = {0};
  assert_true(tt_log_replay_fd(fd, temp_path, 1, &rep, &fail));
  assert_int_equal(rep.events, 1);
  tether_json_unref(rep.state);
  close(fd);
}

static void appended_events_are_compact_lines(void **state) {
  (void)state;
  const char *ptext = "[ {\"op\": \"add\", \"path\": \"/resources/a\", "
                      "\"value\": {\"x\": \"line\\nbreak\"}} ]";
  tether_json *patch = tether_json_parse(ptext, strlen(ptext), NULL);
  assert_non_null(patch);
  tether_buf b;
  tether_buf_init(&b);
  tether_json *event = tether_json_string("create");
  tether_json *version = tether_json_string("0.1.0");
  tt_log_format_event(&b, true, 7, "2026-11-21T04:00:00.000Z", event, version,
                      patch);
  tether_json_unref(event);
  tether_json_unref(version);
  assert_string_equal(
      b.data, "\n{\"index\":7,\"meta\":{\"time\":\"2026-11-21T04:00:00.000Z\","
              "\"event\":\"create\",\"hostVersion\":\"0.1.0\"},\"patch\":[{"
              "\"op\":\"add\",\"path\":\"/resources/a\",\"value\":{\"x\":"
              "\"line\\nbreak\"}}]}\n");
  tether_buf_free(&b);
  tether_buf_init(&b);
  tt_log_format_initial(&b);
  /* Written, it replays to the empty state at index 0. */
  write_file(b.data, b.len);
  tt_log_replay rep;
  tt_fail fail = {0};
  assert_true(replay(&rep, &fail));
  assert_int_equal(rep.index, 0);
  assert_null(tt_log_check_state(rep.state));
  assert_int_equal(strchr(b.data, '\n') - b.data, (long)b.len - 1);
  tether_json_unref(rep.state);
  tether_json_unref(patch);
  tether_buf_free(&b);
}

/* ---- Large files: two threads ---- */

/* Appends events [from, to) of a log whose resources come and go: each
 * index not divisible by 3 adds resource r<index>, each other one
 * replaces (odd) or removes (even) the resource added just before it. */
static void append_events(tether_buf *b, int from, int to) {
  for (int i = from; i < to; i++) {
    tether_buf_printf(b, "{\"index\":%d,\"meta\":{\"time\":\"t\"},\"patch\":[",
                      i);
    if (i % 3)
      tether_buf_printf(b,
                        "{\"op\":\"add\",\"path\":\"/resources/r%d\",\"value\":"
                        "{\"n\":%d,\"text\":\"resource %d of a log long "
                        "enough for two threads to replay it, with \\\"quotes\\\""
                        " and \\u00e9 to unescape\"}}",
                        i, i, i);
    else if (i % 2)
      tether_buf_printf(b,
                        "{\"op\":\"replace\",\"path\":\"/resources/r%d/n\","
                        "\"value\":%d}",
                        i - 1, -i);
    else
      tether_buf_printf(b, "{\"op\":\"remove\",\"path\":\"/resources/r%d\"}",
                        i - 1);
    tether_buf_append_str(b, "]}\n");
  }
}

/* Events in a log of LARGE_EVENTS: about 5 MB, over PARALLEL_MIN. */
#define LARGE_EVENTS 24000

/* A large log: event 0, events 1..at, then `middle` (which takes the
 * place of event at when it holds one: at divisible by 3, so that no
 * later event needs what event at does), then the rest up to n. */
static void large_log(tether_buf *b, int at, const char *middle, int n) {
  assert_int_equal(at % 3, 0);
  tether_buf_init(b);
  tether_buf_append_str(b, EV0 "\n");
  append_events(b, 1, at);
  tether_buf_append_str(b, middle);
  append_events(b, at + (middle[0] == '{' ? 1 : 0), n);
}

/* One replay of temp_path, on one thread or two. */
typedef struct outcome {
  bool ok;
  tt_log_replay rep;
  tt_fail fail;
  uint64_t parallel_events;
} outcome;

static void replay_as(outcome *o, bool two_threads) {
  memset(o, 0, sizeof *o);
  replay_parallel = two_threads;
  o->ok = replay(&o->rep, &o->fail);
  o->parallel_events = replay_parallel_events;
  replay_parallel = true;
}

static void outcome_free(outcome *o) {
  tether_json_unref(o->rep.state);
  tether_json_unref(o->fail.data);
}

/* Replays text on two threads and on one and checks that the outcomes
 * are the same, to the byte offset of an error; returns how many events
 * the two-thread replay applied in parallel, having checked that it
 * applied some. ok says whether the replay should succeed. */
static uint64_t replays_alike(const tether_buf *b, bool ok) {
  write_file(b->data, b->len);
  outcome two, one;
  replay_as(&two, true);
  replay_as(&one, false);
  if (two.ok != ok || one.ok != ok)
    fail_msg("two threads: %s; one thread: %s",
             two.ok ? "replayed" : two.fail.message,
             one.ok ? "replayed" : one.fail.message);
  assert_int_equal(one.parallel_events, 0);
  assert_true(two.parallel_events > 0);
  if (ok) {
    assert_true(tether_json_equal(two.rep.state, one.rep.state));
    assert_int_equal(two.rep.index, one.rep.index);
    assert_int_equal(two.rep.events, one.rep.events);
    assert_int_equal(two.rep.append_at, one.rep.append_at);
    assert_int_equal(two.rep.file_size, one.rep.file_size);
    assert_int_equal(two.rep.need_newline, one.rep.need_newline);
  } else {
    assert_int_equal(two.fail.code, one.fail.code);
    assert_string_equal(two.fail.message, one.fail.message);
    assert_int_equal(data_int(&two.fail, "line"), data_int(&one.fail, "line"));
    assert_int_equal(data_int(&two.fail, "offset"),
                     data_int(&one.fail, "offset"));
  }
  uint64_t n = two.parallel_events;
  outcome_free(&two);
  outcome_free(&one);
  return n;
}

static void a_large_file_replays_on_two_threads_as_on_one(void **state) {
  (void)state;
  tether_buf b;
  large_log(&b, 3, "", LARGE_EVENTS);
  assert_true(b.len > PARALLEL_MIN);
  /* Every event, on the fast path. */
  assert_int_equal(replays_alike(&b, true), LARGE_EVENTS);
  tt_log_replay rep;
  tt_fail fail = {0};
  assert_true(replay(&rep, &fail));
  assert_int_equal(rep.index, LARGE_EVENTS - 1);
  assert_int_equal(rep.append_at, (off_t)b.len);
  assert_false(rep.need_newline);
  /* Event 3 replaced r2's n, r1 stays as added, event 6 removed r5. */
  int64_t n2 = 0;
  assert_true(tether_json_get_int(
      tether_json_pointer_get(rep.state, "/resources/r2/n", NULL), &n2));
  assert_int_equal(n2, -3);
  assert_non_null(tether_json_pointer_get(rep.state, "/resources/r1", NULL));
  assert_null(tether_json_pointer_get(rep.state, "/resources/r5", NULL));
  tether_json_unref(rep.state);
  tether_buf_free(&b);
}

static void damage_in_a_large_file_is_reported_as_by_one_thread(
    void **state) {
  (void)state;
  const int at = LARGE_EVENTS / 2;
  char line[200];
  /* Not JSON: a quote lost. */
  snprintf(line, sizeof line,
           "{\"index\":%d,\"meta\":{\"time\":\"t},\"patch\":[]}\n", at);
  tether_buf b;
  large_log(&b, at, line, LARGE_EVENTS);
  /* The fast path took every event before the damage. */
  assert_int_equal(replays_alike(&b, false), at);
  tether_buf_free(&b);
  /* An index out of order. */
  snprintf(line, sizeof line,
           "{\"index\":%d,\"meta\":{\"time\":\"t\"},\"patch\":[]}\n", at + 7);
  large_log(&b, at, line, LARGE_EVENTS);
  replays_alike(&b, false);
  tether_buf_free(&b);
  /* A patch that does not apply: the resource is not there. */
  snprintf(line, sizeof line,
           "{\"index\":%d,\"meta\":{\"time\":\"t\"},\"patch\":[{\"op\":"
           "\"remove\",\"path\":\"/resources/nowhere\"}]}\n",
           at);
  large_log(&b, at, line, LARGE_EVENTS);
  replays_alike(&b, false);
  tether_buf_free(&b);
  /* An event that is not an object of the right shape. */
  snprintf(line, sizeof line, "{\"index\":%d,\"patch\":[]}\n", at);
  large_log(&b, at, line, LARGE_EVENTS);
  replays_alike(&b, false);
  tether_buf_free(&b);
  /* An operation whose path is not a JSON pointer: read from the
   * patch's tokens, it is looked at again the general way, which words
   * the error. */
  snprintf(line, sizeof line,
           "{\"index\":%d,\"meta\":{\"time\":\"t\"},\"patch\":[{\"op\":"
           "\"add\",\"path\":\"resources/x\",\"value\":1}]}\n",
           at);
  large_log(&b, at, line, LARGE_EVENTS);
  replays_alike(&b, false);
  tether_buf_free(&b);
  /* Zero bytes in the middle of the file. */
  large_log(&b, at, "", LARGE_EVENTS);
  memset(b.data + b.len / 2, 0, 40);
  replays_alike(&b, false);
  tether_buf_free(&b);
}

static void large_files_of_any_layout_replay_as_by_one_thread(void **state) {
  (void)state;
  const int at = LARGE_EVENTS / 3 + 1;
  char line[400];
  tether_buf b;
  /* A pretty-printed event, as NixOps4 writes them, in the middle. */
  snprintf(line, sizeof line,
           "{\n  \"index\": %d,\n  \"meta\": {\n    \"time\": \"t\"\n  },\n"
           "  \"patch\": [\n    {\n      \"op\": \"add\",\n      \"path\": "
           "\"/resources/pretty\",\n      \"value\": 1\n    }\n  ]\n}\n",
           at);
  large_log(&b, at, line, LARGE_EVENTS);
  assert_int_equal(replays_alike(&b, true), at);
  tether_buf_free(&b);
  /* An event with its members in another order and one more, moving a
   * resource, with an operation of another shape (a "test"). */
  snprintf(line, sizeof line,
           "{\"patch\":[{\"path\":\"/resources/moved\",\"from\":"
           "\"/resources/r1\",\"op\":\"move\"},{\"op\":\"test\",\"path\":"
           "\"/resources/moved/n\",\"value\":1}],\"note\":[1],\"meta\":{},"
           "\"index\":%d}\n",
           at);
  large_log(&b, at, line, LARGE_EVENTS);
  assert_int_equal(replays_alike(&b, true), LARGE_EVENTS);
  tether_buf_free(&b);
  /* Events stamped with index 0, as NixOps4's writer appends them. */
  snprintf(line, sizeof line,
           "{\"index\":0,\"meta\":{\"time\":\"t\"},\"patch\":[]}\n");
  large_log(&b, at, line, LARGE_EVENTS);
  assert_int_equal(replays_alike(&b, true), LARGE_EVENTS);
  tether_buf_free(&b);
  /* Blank lines and carriage returns between events. */
  large_log(&b, at, "\n\r\n  \n", LARGE_EVENTS);
  replays_alike(&b, true);
  tether_buf_free(&b);
  /* An event of a megabyte, longer than a span and its margin. */
  large_log(&b, at, "", at);
  tether_buf_printf(&b,
                    "{\"index\":%d,\"meta\":{\"time\":\"t\"},\"patch\":[{\"op\":"
                    "\"add\",\"path\":\"/resources/big\",\"value\":\"",
                    at);
  for (int i = 0; i < (1 << 20) / 32; i++)
    tether_buf_append_str(&b, "a megabyte of one string value. ");
  tether_buf_append_str(&b, "\"}]}\n");
  append_events(&b, at + 1, LARGE_EVENTS);
  assert_int_equal(replays_alike(&b, true), LARGE_EVENTS);
  tether_buf_free(&b);
  /* A torn last event, and a last event without its newline. */
  large_log(&b, 3, "", LARGE_EVENTS);
  b.len -= 30;
  replays_alike(&b, true);
  b.len += 29;
  replays_alike(&b, true);
  tether_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(reference_file_resolves, make_temp,
                                      remove_temp),
      cmocka_unit_test_setup_teardown(
          nixops_index_zero_events_take_their_position, make_temp, remove_temp),
      cmocka_unit_test_setup_teardown(every_cut_is_a_torn_tail_compact,
                                      make_temp, remove_temp),
      cmocka_unit_test_setup_teardown(every_cut_is_a_torn_tail_spaced,
                                      make_temp, remove_temp),
      cmocka_unit_test_setup_teardown(zero_bytes_after_a_cut_are_a_torn_tail,
                                      make_temp, remove_temp),
      cmocka_unit_test_setup_teardown(damage_names_line_and_offset, make_temp,
                                      remove_temp),
      cmocka_unit_test_setup_teardown(events_larger_than_the_buffer, make_temp,
                                      remove_temp),
      cmocka_unit_test_setup_teardown(
          early_damage_is_found_without_reading_everything, make_temp,
          remove_temp),
      cmocka_unit_test_setup_teardown(validation_reads_the_first_event_only,
                                      make_temp, remove_temp),
      cmocka_unit_test_setup_teardown(appended_events_are_compact_lines,
                                      make_temp, remove_temp),
      cmocka_unit_test_setup_teardown(
          a_large_file_replays_on_two_threads_as_on_one, make_temp,
          remove_temp),
      cmocka_unit_test_setup_teardown(
          damage_in_a_large_file_is_reported_as_by_one_thread, make_temp,
          remove_temp),
      cmocka_unit_test_setup_teardown(
          large_files_of_any_layout_replay_as_by_one_thread, make_temp,
          remove_temp),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
