/*
 * test_host_provider.c: the provider client (host/provider.c) against a
 * fake provider. The fake is this same binary re-run as
 * `test_host_provider fake-provider MODE`, one mode per way a provider can
 * behave or misbehave, in the manner of libuv's spawn_helper.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>

#include "provider.h"
#include "tether/json.h"
#include "util.h"

static char self_path[4096];

/* ---- The fake provider ---- */

static char inbuf[1 << 20];
static size_t inlen;
static bool fake_cl; /* content-length framing */

/* Reads until the buffer holds a '\n'; false at EOF. */
static bool fill_line(void) {
  while (!memchr(inbuf, '\n', inlen)) {
    if (inlen == sizeof inbuf)
      exit(90);
    ssize_t n = read(0, inbuf + inlen, sizeof inbuf - inlen);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    inlen += (size_t)n;
  }
  return true;
}

static size_t take_line(char *out, size_t cap) {
  char *nl = memchr(inbuf, '\n', inlen);
  size_t n = (size_t)(nl - inbuf);
  size_t copy = n < cap - 1 ? n : cap - 1;
  memcpy(out, inbuf, copy);
  out[copy] = '\0';
  memmove(inbuf, nl + 1, inlen - n - 1);
  inlen -= n + 1;
  return copy;
}

static bool fake_read(char *out, size_t cap) {
  if (!fake_cl) {
    if (!fill_line())
      return false;
    take_line(out, cap);
    return true;
  }
  size_t body = 0;
  for (;;) {
    if (!fill_line())
      return false;
    char line[256];
    size_t n = take_line(line, sizeof line);
    if (n > 0 && line[n - 1] == '\r')
      line[--n] = '\0';
    if (n == 0)
      break;
    if (strncmp(line, "Content-Length:", 15) == 0)
      body = strtoul(line + 15, NULL, 10);
  }
  while (inlen < body) {
    ssize_t n = read(0, inbuf + inlen, sizeof inbuf - inlen);
    if (n <= 0)
      return false;
    inlen += (size_t)n;
  }
  size_t copy = body < cap - 1 ? body : cap - 1;
  memcpy(out, inbuf, copy);
  out[copy] = '\0';
  memmove(inbuf, inbuf + body, inlen - body);
  inlen -= body;
  return true;
}

static void fake_write(const char *fmt, ...) {
  char msg[8192];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (fake_cl)
    printf("Content-Length: %d\r\n\r\n%s", n, msg);
  else
    printf("%s\n", msg);
  fflush(stdout);
}

/* The string a large answer carries: larger than the host's threshold for
 * parsing in place (IN_PLACE_MIN in host/provider.c). */
#define LARGE_BLOB (3u << 20)
#define COMPACT_ITEMS 30000
#define COMPACT_ITEM 100

/* Writes a large answer to request id, of the shape FAKE_LARGE names:
 * "plain" ({"jsonrpc","id","result"} in that order, the result spaced out
 * and with escapes), "extra" (a member after the result), "reordered",
 * "both" (a result and an error), "invalid" (broken at the end),
 * "compact" (a result of many small values, written as tether writes
 * JSON, which the host validates while it arrives: COMPACT_ITEMS strings
 * of COMPACT_ITEM x's) or "compact-invalid" (that with a control
 * character in the middle). */
static void fake_write_large(long long id, const char *shape) {
  char *blob = malloc(LARGE_BLOB + 1);
  memset(blob, 'x', LARGE_BLOB);
  blob[LARGE_BLOB] = '\0';
  tether_buf b;
  tether_buf_init(&b);
  if (strncmp(shape, "compact", 7) == 0) {
    tether_buf_printf(&b, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":", id);
    tether_buf_append_str(&b, "{\"items\":[");
    for (int i = 0; i < COMPACT_ITEMS; i++) {
      tether_buf_append_str(&b, i ? ",\"" : "\"");
      tether_buf_append(&b, blob, COMPACT_ITEM);
      tether_buf_append_char(&b, '"');
    }
    tether_buf_append_str(&b, "],\"n\":[1,2]}}");
    if (strcmp(shape, "compact-invalid") == 0)
      b.data[b.len / 2] = '\t';
  } else if (strcmp(shape, "reordered") == 0)
    tether_buf_printf(&b, "{\"id\":%lld,\"result\":", id);
  else
    tether_buf_printf(&b, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":", id);
  if (strncmp(shape, "compact", 7) != 0) {
    tether_buf_append_str(&b, "{ \"blob\" : \"");
    tether_buf_append(&b, blob, LARGE_BLOB);
    tether_buf_append_str(&b, "\\u0041\\n\" ,\t \"n\" : [ 1 , 2 ] }");
  }
  if (strncmp(shape, "compact", 7) == 0)
    ;
  else if (strcmp(shape, "extra") == 0)
    tether_buf_append_str(&b, ",\"note\":\"extra\"}");
  else if (strcmp(shape, "reordered") == 0)
    tether_buf_append_str(&b, ",\"jsonrpc\":\"2.0\"}");
  else if (strcmp(shape, "both") == 0)
    tether_buf_append_str(&b, ",\"error\":{\"code\":1,\"message\":\"m\"}}");
  else if (strcmp(shape, "invalid") == 0)
    tether_buf_append_str(&b, "]}");
  else
    tether_buf_append_str(&b, "  }");
  if (fake_cl)
    printf("Content-Length: %zu\r\n\r\n", b.len);
  fwrite(b.data, 1, b.len, stdout);
  if (!fake_cl)
    putchar('\n');
  fflush(stdout);
  tether_buf_free(&b);
  free(blob);
}

/* Whether more input is waiting, within ms. */
static bool input_waiting(int ms) {
  if (memchr(inbuf, '\n', inlen))
    return true;
  struct pollfd pfd = {.fd = 0, .events = POLLIN};
  return poll(&pfd, 1, ms) > 0;
}

static int fake_main(const char *mode) {
  fake_cl = strcmp(mode, "content-length") == 0 ||
            strcmp(mode, "large-content-length") == 0;
  /* The first operation gets a large answer, the others the usual. */
  bool large = strncmp(mode, "large", 5) == 0;
  int concurrency = getenv("FAKE_CONCURRENCY") ? atoi(getenv("FAKE_CONCURRENCY")) : 1;
  bool stubborn = strcmp(mode, "stubborn") == 0;
  if (stubborn)
    signal(SIGTERM, SIG_IGN);
  if (strcmp(mode, "child") == 0) {
    pid_t child = fork();
    if (child == 0) {
      for (;;)
        pause();
    }
    fprintf(stderr, "child pid %d\n", (int)child);
  }
  long long held[8];
  int nheld = 0;
  char msg[1 << 16];
  for (;;) {
    if (!fake_read(msg, sizeof msg)) {
      if (stubborn || strcmp(mode, "hang") == 0)
        for (;;)
          pause();
      return 0;
    }
    long long id = -1;
    char method[64] = "";
    char *idp = strstr(msg, "\"id\":");
    if (idp)
      id = strtoll(idp + 5, NULL, 10);
    char *mp = strstr(msg, "\"method\":\"");
    if (!mp)
      continue; /* the host answering something we asked */
    sscanf(mp + 10, "%63[^\"]", method);
    if (strcmp(method, "initialize") == 0) {
      if (strcmp(mode, "no-init") == 0)
        continue;
      fake_write("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"protocolVersion\":1,"
                 "\"provider\":{\"name\":\"fake\",\"version\":\"1\"},"
                 "\"concurrency\":%d,\"resourceTypes\":{\"thing\":{"
                 "\"description\":\"a thing\",\"requireState\":false,"
                 "\"stateProvider\":false,\"operations\":[\"create\",\"read\"]}}}}",
                 id, concurrency);
      continue;
    }
    if (strcmp(method, "shutdown") == 0) {
      if (!stubborn)
        fake_write("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":null}", id);
      continue;
    }
    if (strcmp(method, "exit") == 0) {
      if (stubborn)
        continue;
      return 0;
    }
    if (strcmp(method, "$/cancelRequest") == 0) {
      if (strcmp(mode, "cancel") == 0) {
        char *cid = strstr(msg, "\"params\":{\"id\":");
        fake_write("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-32800,"
                   "\"message\":\"cancelled\"}}",
                   cid ? strtoll(cid + 15, NULL, 10) : -1);
      }
      continue;
    }
    /* An operation. */
    if (strcmp(mode, "exit3") == 0) {
      fprintf(stderr, "about to fail\n");
      return 3;
    }
    if (strcmp(mode, "child") == 0)
      return 3;
    if (strcmp(mode, "garbage") == 0) {
      printf("hello world\n");
      fflush(stdout);
      continue;
    }
    if (strcmp(mode, "unknown-id") == 0) {
      fake_write("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{}}", id + 1000);
      continue;
    }
    if (strcmp(mode, "reordered") == 0) {
      fake_write("{\"id\":%lld,\"result\":{\"x\":1},\"jsonrpc\":\"2.0\"}", id);
      continue;
    }
    if (strcmp(mode, "trailing") == 0) {
      fake_write("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"x\":1}}}", id);
      continue;
    }
    if (strcmp(mode, "leading-zero") == 0) {
      fake_write("{\"jsonrpc\":\"2.0\",\"id\":0%lld,\"result\":{}}", id);
      continue;
    }
    if (strcmp(mode, "invalid-rpc") == 0) {
      fake_write("{\"jsonrpc\":\"1.0\",\"id\":%lld,\"result\":{}}", id);
      continue;
    }
    if (strcmp(mode, "oversized") == 0) {
      static char big[5000];
      memset(big, 'x', sizeof big - 1);
      fake_write("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"x\":\"%s\"}}", id, big);
      continue;
    }
    if (strcmp(mode, "hang") == 0 || stubborn || strcmp(mode, "cancel") == 0)
      continue;
    if (large) {
      large = false;
      fake_write_large(id, getenv("FAKE_LARGE") ? getenv("FAKE_LARGE") : "");
      continue;
    }
    if (strcmp(mode, "flood") == 0) {
      static char line[1000];
      memset(line, 'e', sizeof line - 2);
      line[sizeof line - 2] = '\n';
      for (int i = 0; i < 8000; i++)
        fputs(line, stderr);
      fprintf(stderr, "flood done\n");
    }
    if (strcmp(mode, "log") == 0) {
      fake_write("{\"jsonrpc\":\"2.0\",\"method\":\"log\",\"params\":{\"level\":"
                 "\"warn\",\"message\":\"careful now\"}}");
      fake_write("{\"jsonrpc\":\"2.0\",\"method\":\"progress\",\"params\":{\"id\":"
                 "%lld,\"message\":\"halfway\",\"fraction\":0.5}}", id);
      fake_write("{\"jsonrpc\":\"2.0\",\"id\":\"host-please\",\"method\":\"whatever\"}");
    }
    if (strcmp(mode, "env") == 0) {
      fake_write("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"outputProperties\":"
                 "{\"provider\":\"%s\",\"protocol\":\"%s\",\"leader\":%s}}}",
                 id, getenv("TETHER_PROVIDER") ? getenv("TETHER_PROVIDER") : "",
                 getenv("TETHER_PROTOCOL") ? getenv("TETHER_PROTOCOL") : "",
                 getpgid(0) == getpid() && getsid(0) == getpid() ? "true" : "false");
      continue;
    }
    if (strcmp(mode, "batcher") == 0) {
      /* Holds requests until `concurrency` of them are waiting (or no more
       * come), then answers them all; more than that at once is a breach
       * of the declared concurrency. */
      held[nheld++] = id;
      if (nheld > concurrency)
        return 7;
      if (nheld < concurrency && input_waiting(50))
        continue;
      if (nheld == concurrency && input_waiting(50))
        return 7;
      for (int i = 0; i < nheld; i++)
        fake_write("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"outputProperties\":{}}}",
                   held[i]);
      nheld = 0;
      continue;
    }
    fake_write("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"outputProperties\":"
               "{\"id\":%lld}}}", id, id);
    if (strcmp(mode, "answer-then-exit") == 0)
      return 0;
  }
}

/* ---- The harness ---- */

#define MAX_REPLIES 64

struct harness {
  uv_loop_t loop;
  uv_timer_t watchdog;
  tt_provider *p;
  bool ready_called, dead_called, watchdog_fired;
  tt_reply_kind ready_kind;
  char ready_message[1024];
  bool ready_ok;
  int nreplies;
  tt_reply_kind kinds[MAX_REPLIES];
  int codes[MAX_REPLIES];
  bool sent[MAX_REPLIES];
  char messages[MAX_REPLIES][1024];
  char data[MAX_REPLIES][4096];
  char results[MAX_REPLIES][512]; /* the start of each */
  size_t result_lens[MAX_REPLIES];
  char result_tails[MAX_REPLIES][32];
  void *users[MAX_REPLIES];
  tt_provider_state state_at_dead;
  char exit_desc[128];
  int nlog;
  char last_log[256];
  char last_level[32];
  long child_pid;
  int nprogress;
  double progress_fraction;
  char progress_message[64];
  void *progress_user;
  bool free_in_dead; /* free the provider from on_dead */
  bool stop_when_answered;
  int expected;
};

static void on_watchdog(uv_timer_t *t) {
  struct harness *h = t->data;
  h->watchdog_fired = true;
  tt_provider_kill_all_now();
}

static void h_ready(tt_provider *p, const tt_reply *failure, void *user) {
  struct harness *h = user;
  h->ready_called = true;
  h->ready_ok = failure == NULL;
  if (failure) {
    h->ready_kind = failure->kind;
    snprintf(h->ready_message, sizeof h->ready_message, "%s",
             failure->message ? failure->message : "");
  }
}

static void h_dead(tt_provider *p, void *user) {
  struct harness *h = user;
  h->dead_called = true;
  h->state_at_dead = tt_provider_state_of(p);
  snprintf(h->exit_desc, sizeof h->exit_desc, "%s", tt_provider_exit_desc(p));
  uv_close((uv_handle_t *)&h->watchdog, NULL);
  if (h->free_in_dead) {
    tt_provider_free(p);
    h->p = NULL;
  }
}

static void h_log(tt_provider *p, const char *level, const char *line,
                  size_t len, void *user) {
  struct harness *h = user;
  h->nlog++;
  snprintf(h->last_log, sizeof h->last_log, "%.*s", (int)len, line);
  snprintf(h->last_level, sizeof h->last_level, "%s", level ? level : "");
  long pid;
  if (sscanf(h->last_log, "child pid %ld", &pid) == 1)
    h->child_pid = pid;
}

static void h_progress(tt_provider *p, int64_t id, void *req_user,
                       const char *message, double fraction, void *user) {
  struct harness *h = user;
  h->nprogress++;
  h->progress_fraction = fraction;
  h->progress_user = req_user;
  snprintf(h->progress_message, sizeof h->progress_message, "%s", message);
}

static void h_reply(tt_provider *p, const tt_reply *rep, void *user) {
  struct harness *h = *(struct harness **)user;
  int i = h->nreplies++;
  assert_true(i < MAX_REPLIES);
  h->kinds[i] = rep->kind;
  h->codes[i] = rep->code;
  h->sent[i] = rep->sent;
  h->users[i] = user;
  snprintf(h->messages[i], sizeof h->messages[i], "%s",
           rep->message ? rep->message : "");
  if (rep->data) {
    char *d = tether_json_dumps(rep->data, NULL);
    snprintf(h->data[i], sizeof h->data[i], "%s", d);
    free(d);
  }
  if (rep->result) {
    size_t len;
    char *d = tether_json_dumps(rep->result, &len);
    snprintf(h->results[i], sizeof h->results[i], "%s", d);
    h->result_lens[i] = len;
    snprintf(h->result_tails[i], sizeof h->result_tails[i], "%s",
             len < sizeof h->result_tails[i]
                 ? d
                 : d + len + 1 - sizeof h->result_tails[i]);
    free(d);
  }
  if (h->stop_when_answered && h->nreplies == h->expected)
    tt_provider_stop(p);
}

static struct harness *harness_new(void) {
  struct harness *h = tt_calloc(1, sizeof *h);
  assert_int_equal(uv_loop_init(&h->loop), 0);
  uv_timer_init(&h->loop, &h->watchdog);
  h->watchdog.data = h;
  uv_timer_start(&h->watchdog, on_watchdog, 15000, 0);
  h->free_in_dead = true;
  return h;
}

static tt_provider *start_fake(struct harness *h, const char *mode,
                               tt_provider_config *extra) {
  static const char *args[3];
  args[0] = "fake-provider";
  args[1] = mode;
  args[2] = NULL;
  tt_provider_config cfg = {0};
  if (extra)
    cfg = *extra;
  cfg.name = "fake";
  cfg.executable = self_path;
  cfg.args = args;
  if (!cfg.stop_grace_ms)
    cfg.stop_grace_ms = 300;
  if (!cfg.kill_grace_ms)
    cfg.kill_grace_ms = 300;
  cfg.on_ready = h_ready;
  cfg.on_dead = h_dead;
  cfg.on_log = h_log;
  cfg.on_progress = h_progress;
  cfg.user = h;
  h->p = tt_provider_start(&h->loop, &cfg);
  return h->p;
}

/* Each request's user pointer points at the harness pointer; distinct
 * slots let a test tell requests apart. */
static struct harness *slots[MAX_REPLIES];

static int64_t create(struct harness *h, int slot, uint64_t timeout_ms) {
  slots[slot] = h;
  tether_json *params = tether_json_object();
  params = tether_json_object_set(params, "type", tether_json_string("thing"));
  params = tether_json_object_set(params, "inputProperties", tether_json_object());
  params = tether_json_object_set(params, "isStateful", tether_json_bool(false));
  return tt_provider_request(h->p, "create", params, timeout_ms, h_reply,
                             &slots[slot]);
}

static void run_loop(struct harness *h) {
  uv_run(&h->loop, UV_RUN_DEFAULT);
  assert_false(h->watchdog_fired);
  assert_int_equal(uv_loop_close(&h->loop), 0);
}

static void harness_free(struct harness *h) { free(h); }

static void assert_contains(const char *haystack, const char *needle) {
  if (!strstr(haystack, needle))
    fail_msg("expected \"%s\" in \"%s\"", needle, haystack);
}

/* ---- Tests ---- */

static void test_roundtrip(void **state) {
  struct harness *h = harness_new();
  start_fake(h, "ok", NULL);
  h->stop_when_answered = true;
  h->expected = 2;
  int64_t a = create(h, 0, 0);
  int64_t b = create(h, 1, 0);
  assert_true(a > 1 && b == a + 1); /* initialize took id 1 */
  run_loop(h);
  assert_true(h->ready_called && h->ready_ok);
  assert_true(h->dead_called);
  assert_int_equal(h->state_at_dead, TT_PROVIDER_DEAD);
  assert_int_equal(h->nreplies, 2);
  assert_int_equal(h->kinds[0], TT_REPLY_RESULT);
  assert_string_equal(h->results[0], "{\"outputProperties\":{\"id\":2}}");
  assert_string_equal(h->results[1], "{\"outputProperties\":{\"id\":3}}");
  assert_string_equal(h->exit_desc, "exited with status 0");
  harness_free(h);
}

static void test_content_length(void **state) {
  struct harness *h = harness_new();
  tt_provider_config cfg = {.framing = TT_FRAMING_CONTENT_LENGTH};
  start_fake(h, "content-length", &cfg);
  h->stop_when_answered = true;
  h->expected = 1;
  create(h, 0, 0);
  run_loop(h);
  assert_int_equal(h->nreplies, 1);
  assert_int_equal(h->kinds[0], TT_REPLY_RESULT);
  assert_string_equal(h->exit_desc, "exited with status 0");
  harness_free(h);
}

static void test_ready_state_and_info(void **state) {
  struct harness *h = harness_new();
  tt_provider_config cfg = {.env = (const char *const[]){"FAKE_CONCURRENCY=4", NULL}};
  tt_provider *p = start_fake(h, "ok", &cfg);
  h->free_in_dead = false;
  assert_int_equal(tt_provider_state_of(p), TT_PROVIDER_INITIALIZING);
  assert_string_equal(tt_provider_state_desc(TT_PROVIDER_INITIALIZING),
                      "initializing");
  assert_true(tt_provider_pid(p) > 0);
  while (!h->ready_called)
    uv_run(&h->loop, UV_RUN_ONCE);
  assert_true(h->ready_ok);
  assert_int_equal(tt_provider_state_of(p), TT_PROVIDER_READY);
  assert_int_equal(tt_provider_concurrency(p), 4);
  assert_non_null(tether_json_object_get(tt_provider_resource_types(p), "thing"));
  tt_provider_stop(p);
  assert_int_equal(tt_provider_state_of(p), TT_PROVIDER_STOPPING);
  while (!h->dead_called)
    uv_run(&h->loop, UV_RUN_ONCE);
  assert_int_equal(tt_provider_state_of(p), TT_PROVIDER_DEAD);
  tt_provider_free(p);
  run_loop(h);
  harness_free(h);
}

static void test_exit_while_handling(void **state) {
  struct harness *h = harness_new();
  start_fake(h, "exit3", NULL);
  create(h, 0, 0);
  create(h, 1, 0);
  run_loop(h);
  assert_int_equal(h->nreplies, 2);
  assert_int_equal(h->kinds[0], TT_REPLY_FAILED);
  assert_string_equal(h->messages[0],
                      "provider 'fake' exited with status 3 while handling "
                      "create of type thing");
  assert_string_equal(h->messages[1],
                      "provider 'fake' exited with status 3 before create of "
                      "type thing was sent");
  assert_true(h->sent[0]);
  assert_false(h->sent[1]);
  assert_contains(h->data[0], "\"stderr\":[\"about to fail\"]");
  assert_contains(h->data[0], "\"exitStatus\":3");
  assert_string_equal(h->exit_desc, "exited with status 3");
  harness_free(h);
}

static void test_garbage_on_stdout(void **state) {
  struct harness *h = harness_new();
  start_fake(h, "garbage", NULL);
  create(h, 0, 0);
  run_loop(h);
  assert_int_equal(h->nreplies, 1);
  assert_int_equal(h->kinds[0], TT_REPLY_FAILED);
  assert_contains(h->messages[0], "provider 'fake' wrote non-protocol output "
                                  "on stdout: 'hello world'");
  assert_contains(h->messages[0], "(while handling create of type thing)");
  harness_free(h);
}

static void test_unknown_id(void **state) {
  struct harness *h = harness_new();
  start_fake(h, "unknown-id", NULL);
  create(h, 0, 0);
  run_loop(h);
  assert_int_equal(h->nreplies, 1);
  assert_int_equal(h->kinds[0], TT_REPLY_FAILED);
  assert_contains(h->messages[0], "sent a response with unknown id 1002");
  assert_contains(h->messages[0], "'{\"jsonrpc\":\"2.0\",\"id\":1002");
  harness_free(h);
}

static void test_invalid_jsonrpc(void **state) {
  struct harness *h = harness_new();
  start_fake(h, "invalid-rpc", NULL);
  create(h, 0, 0);
  run_loop(h);
  assert_int_equal(h->nreplies, 1);
  assert_contains(h->messages[0], "sent an invalid JSON-RPC message");
  assert_contains(h->messages[0], "\"jsonrpc\":\"1.0\"");
  harness_free(h);
}

/* Answers in another member order take the general path; ones that only
 * look like the common shape are still refused. */
static void test_answer_spellings(void **state) {
  struct harness *h = harness_new();
  start_fake(h, "reordered", NULL);
  h->stop_when_answered = true;
  h->expected = 1;
  create(h, 0, 0);
  run_loop(h);
  assert_int_equal(h->kinds[0], TT_REPLY_RESULT);
  assert_string_equal(h->results[0], "{\"x\":1}");
  harness_free(h);

  static const char *const bad[] = {"trailing", "leading-zero"};
  for (size_t i = 0; i < 2; i++) {
    h = harness_new();
    start_fake(h, bad[i], NULL);
    create(h, 0, 0);
    run_loop(h);
    assert_int_equal(h->nreplies, 1);
    assert_int_equal(h->kinds[0], TT_REPLY_FAILED);
    assert_contains(h->messages[0], "wrote non-protocol output on stdout");
    harness_free(h);
  }
}

/* Large answers, which the host parses where it read them, arrive as small
 * ones do, in every shape; broken ones are reported the same way, quoting
 * how they began. Each is followed by a small answer to a second request. */
static void test_large_answers(void **state) {
  static const struct {
    const char *shape;
    bool content_length;
  } ok[] = {{"plain", false},
            {"plain", true},
            {"extra", false},
            {"reordered", false}};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    struct harness *h = harness_new();
    char env[64];
    snprintf(env, sizeof env, "FAKE_LARGE=%s", ok[i].shape);
    tt_provider_config cfg = {.env = (const char *const[]){env, NULL},
                              .framing = ok[i].content_length
                                             ? TT_FRAMING_CONTENT_LENGTH
                                             : TT_FRAMING_NDJSON};
    start_fake(h, ok[i].content_length ? "large-content-length" : "large",
               &cfg);
    h->stop_when_answered = true;
    h->expected = 2;
    create(h, 0, 0);
    create(h, 1, 0);
    run_loop(h);
    assert_int_equal(h->nreplies, 2);
    assert_int_equal(h->kinds[0], TT_REPLY_RESULT);
    assert_true(strncmp(h->results[0], "{\"blob\":\"xxxxxxxx", 17) == 0);
    assert_int_equal(h->result_lens[0], LARGE_BLOB + 24);
    assert_string_equal(h->result_tails[0],
                        "xxxxxxxxxxxxxxxxA\\n\",\"n\":[1,2]}");
    assert_int_equal(h->kinds[1], TT_REPLY_RESULT);
    assert_string_equal(h->results[1], "{\"outputProperties\":{\"id\":3}}");
    assert_string_equal(h->exit_desc, "exited with status 0");
    harness_free(h);
  }
  static const struct {
    const char *shape;
    const char *says;
  } bad[] = {
      {"both", "sent an invalid JSON-RPC message (a response must not have "
               "both \"result\" and \"error\")"},
      {"invalid", "wrote non-protocol output on stdout"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct harness *h = harness_new();
    char env[64];
    snprintf(env, sizeof env, "FAKE_LARGE=%s", bad[i].shape);
    tt_provider_config cfg = {.env = (const char *const[]){env, NULL}};
    start_fake(h, "large", &cfg);
    create(h, 0, 0);
    run_loop(h);
    assert_int_equal(h->nreplies, 1);
    assert_int_equal(h->kinds[0], TT_REPLY_FAILED);
    assert_contains(h->messages[0], bad[i].says);
    assert_contains(h->messages[0],
                    ": '{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{ \"blob\" : "
                    "\"xxxx");
    char first[64];
    snprintf(first, sizeof first, "xxx' (first 200 of %u bytes)",
             LARGE_BLOB + (i == 0 ? 109 : 77));
    assert_contains(h->messages[0], first);
    harness_free(h);
  }
}

/* A large compact answer, such as tether-local's state_read, which the
 * host validates while it arrives, in either framing: the same result as
 * any other; damage in it reported as for any other, once all of it is
 * in. */
static void test_large_compact_answers(void **state) {
  for (int cl = 0; cl < 4; cl++) {
    bool damaged = cl >= 2;
    struct harness *h = harness_new();
    tt_provider_config cfg = {
        .env = (const char *const[]){damaged ? "FAKE_LARGE=compact-invalid"
                                             : "FAKE_LARGE=compact",
                                     NULL},
        .framing = cl % 2 ? TT_FRAMING_CONTENT_LENGTH : TT_FRAMING_NDJSON};
    start_fake(h, cl % 2 ? "large-content-length" : "large", &cfg);
    h->stop_when_answered = !damaged;
    h->expected = damaged ? 1 : 2;
    create(h, 0, 0);
    if (!damaged)
      create(h, 1, 0);
    run_loop(h);
    if (damaged) {
      assert_int_equal(h->nreplies, 1);
      assert_int_equal(h->kinds[0], TT_REPLY_FAILED);
      assert_contains(h->messages[0], "wrote non-protocol output on stdout");
      assert_contains(h->messages[0],
                      ": '{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"items\":"
                      "[\"xxxx");
    } else {
      assert_int_equal(h->nreplies, 2);
      assert_int_equal(h->kinds[0], TT_REPLY_RESULT);
      assert_true(strncmp(h->results[0], "{\"items\":[\"xxxxxxxx", 19) == 0);
      assert_int_equal(h->result_lens[0],
                       COMPACT_ITEMS * (COMPACT_ITEM + 3) + 9 + 12);
      assert_string_equal(h->result_tails[0],
                          "xxxxxxxxxxxxxxxxxx\"],\"n\":[1,2]}");
      assert_int_equal(h->kinds[1], TT_REPLY_RESULT);
      assert_string_equal(h->results[1], "{\"outputProperties\":{\"id\":3}}");
    }
    harness_free(h);
  }
}

static void test_oversized_message(void **state) {
  struct harness *h = harness_new();
  tt_provider_config cfg = {.max_message = 1024};
  start_fake(h, "oversized", &cfg);
  create(h, 0, 0);
  run_loop(h);
  assert_int_equal(h->nreplies, 1);
  assert_contains(h->messages[0], "provider 'fake' wrote too much on stdout");
  assert_contains(h->messages[0], "1024");
  harness_free(h);
}

static void test_request_timeout(void **state) {
  struct harness *h = harness_new();
  start_fake(h, "hang", NULL);
  unsigned long long t0 = tt_now_ns();
  create(h, 0, 200);
  create(h, 1, 0);
  run_loop(h);
  assert_int_equal(h->nreplies, 2);
  assert_int_equal(h->kinds[0], TT_REPLY_FAILED);
  assert_string_equal(h->messages[0],
                      "provider 'fake' timed out: create of type thing got "
                      "no answer within 0.2 s; stopping it as hung");
  assert_contains(h->messages[1], "was stopped as hung");
  assert_contains(h->exit_desc, "SIGTERM");
  /* Timeout, then SIGTERM straight away: well under the grace periods. */
  assert_true(tt_now_ns() - t0 < 2000000000ull);
  harness_free(h);
}

static void test_start_timeout(void **state) {
  struct harness *h = harness_new();
  tt_provider_config cfg = {.start_timeout_ms = 200};
  start_fake(h, "no-init", &cfg);
  create(h, 0, 0);
  run_loop(h);
  assert_true(h->ready_called);
  assert_false(h->ready_ok);
  assert_string_equal(h->ready_message,
                      "provider 'fake' timed out starting: initialize got no "
                      "answer within 0.2 s; stopping it as hung");
  assert_int_equal(h->nreplies, 1);
  assert_contains(h->messages[0], "(before create of type thing was sent)");
  harness_free(h);
}

static void test_stubborn_is_killed(void **state) {
  struct harness *h = harness_new();
  start_fake(h, "stubborn", NULL);
  h->stop_when_answered = false;
  while (!h->ready_called)
    uv_run(&h->loop, UV_RUN_ONCE);
  unsigned long long t0 = tt_now_ns();
  tt_provider_stop(h->p);
  run_loop(h);
  assert_true(h->dead_called);
  assert_string_equal(h->exit_desc, "was killed by signal 9 (SIGKILL)");
  /* grace 0.3 s + kill grace 0.3 s, with slack. */
  assert_true(tt_now_ns() - t0 < 3000000000ull);
  harness_free(h);
}

static bool process_gone(long pid) {
  /* A zombie still answers kill(pid, 0); look at its state instead. */
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  for (int i = 0; i < 200; i++) {
    FILE *f = fopen(path, "r");
    if (!f)
      return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *close_paren = strrchr(buf, ')');
    if (close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z')
      return true;
    usleep(10000);
  }
  return false;
}

static void test_children_are_killed(void **state) {
  struct harness *h = harness_new();
  start_fake(h, "child", NULL);
  create(h, 0, 0);
  run_loop(h);
  assert_int_equal(h->nreplies, 1);
  assert_contains(h->messages[0], "exited with status 3");
  assert_true(h->child_pid > 0);
  assert_true(process_gone(h->child_pid));
  harness_free(h);
}

static void test_stderr_flood(void **state) {
  struct harness *h = harness_new();
  start_fake(h, "flood", NULL);
  h->stop_when_answered = true;
  h->expected = 1;
  create(h, 0, 0);
  run_loop(h);
  assert_int_equal(h->nreplies, 1);
  assert_int_equal(h->kinds[0], TT_REPLY_RESULT);
  assert_true(h->nlog >= 8001);
  assert_string_equal(h->last_log, "flood done");
  harness_free(h);
}

static void test_log_and_progress(void **state) {
  struct harness *h = harness_new();
  start_fake(h, "log", NULL);
  h->stop_when_answered = true;
  h->expected = 1;
  create(h, 5, 0);
  run_loop(h);
  assert_int_equal(h->nreplies, 1);
  assert_int_equal(h->kinds[0], TT_REPLY_RESULT);
  assert_true(h->nlog >= 1);
  assert_int_equal(h->nprogress, 1);
  assert_string_equal(h->progress_message, "halfway");
  assert_true(h->progress_fraction > 0.49 && h->progress_fraction < 0.51);
  assert_ptr_equal(h->progress_user, &slots[5]);
  harness_free(h);
}

static void test_log_line_format(void **state) {
  /* Without an on_log callback a log notification is printed on our
   * stderr; with one, the level and message arrive separately. */
  struct harness *h = harness_new();
  start_fake(h, "log", NULL);
  h->stop_when_answered = true;
  h->expected = 1;
  create(h, 0, 0);
  run_loop(h);
  assert_string_equal(h->last_level, "warn");
  assert_string_equal(h->last_log, "careful now");
  harness_free(h);
}

static void test_concurrency_cap(void **state) {
  struct harness *h = harness_new();
  tt_provider_config cfg = {.env = (const char *const[]){"FAKE_CONCURRENCY=2", NULL}};
  start_fake(h, "batcher", &cfg);
  h->stop_when_answered = true;
  h->expected = 9;
  for (int i = 0; i < 9; i++)
    create(h, i, 0);
  run_loop(h);
  assert_int_equal(h->nreplies, 9);
  for (int i = 0; i < 9; i++)
    if (h->kinds[i] != TT_REPLY_RESULT)
      fail_msg("request %d: %s", i, h->messages[i]);
  assert_string_equal(h->exit_desc, "exited with status 0");
  harness_free(h);
}

static void test_spawn_failure(void **state) {
  struct harness *h = harness_new();
  static const char *none[] = {NULL};
  tt_provider_config cfg = {.name = "ghost", .executable = "/nonexistent/ghost",
                            .args = none, .on_ready = h_ready,
                            .on_dead = h_dead, .user = h};
  h->p = tt_provider_start(&h->loop, &cfg);
  assert_false(h->ready_called); /* never from inside start */
  create(h, 0, 0);
  run_loop(h);
  assert_true(h->ready_called);
  assert_false(h->ready_ok);
  assert_int_equal(h->ready_kind, TT_REPLY_FAILED);
  assert_contains(h->ready_message, "cannot start provider 'ghost' "
                                    "(/nonexistent/ghost): ");
  assert_int_equal(h->nreplies, 1);
  assert_contains(h->messages[0], "cannot start provider 'ghost'");
  assert_string_equal(h->exit_desc, "did not start");
  harness_free(h);
}

static void test_not_on_path(void **state) {
  struct harness *h = harness_new();
  tt_provider_config cfg = {.executable = "tether-no-such-provider",
                            .on_ready = h_ready, .on_dead = h_dead, .user = h};
  h->p = tt_provider_start(&h->loop, &cfg);
  run_loop(h);
  assert_false(h->ready_ok);
  assert_contains(h->ready_message,
                  "cannot start provider 'tether-no-such-provider': "
                  "executable 'tether-no-such-provider' not found");
  harness_free(h);
}

static void test_answer_then_exit(void **state) {
  struct harness *h = harness_new();
  start_fake(h, "answer-then-exit", NULL);
  create(h, 0, 0);
  run_loop(h);
  /* The answer was written before the exit: it must win over the death. */
  assert_int_equal(h->nreplies, 1);
  assert_int_equal(h->kinds[0], TT_REPLY_RESULT);
  harness_free(h);
}

static void test_cancel(void **state) {
  struct harness *h = harness_new();
  start_fake(h, "cancel", NULL);
  h->stop_when_answered = true;
  h->expected = 2;
  int64_t inflight = create(h, 0, 0);
  int64_t queued = create(h, 1, 0);
  while (!h->ready_called)
    uv_run(&h->loop, UV_RUN_ONCE);
  assert_true(tt_provider_cancel(h->p, queued));
  assert_int_equal(h->nreplies, 1);
  assert_int_equal(h->kinds[0], TT_REPLY_FAILED);
  assert_contains(h->messages[0], "cancelled before it was sent");
  assert_true(tt_provider_cancel(h->p, inflight));
  assert_false(tt_provider_cancel(h->p, 999));
  run_loop(h);
  assert_int_equal(h->nreplies, 2);
  assert_int_equal(h->kinds[1], TT_REPLY_ERROR);
  assert_int_equal(h->codes[1], -32800);
  harness_free(h);
}

static void test_free_while_running(void **state) {
  struct harness *h = harness_new();
  tt_provider *p = start_fake(h, "hang", NULL);
  while (!h->ready_called)
    uv_run(&h->loop, UV_RUN_ONCE);
  create(h, 0, 0);
  int pid = tt_provider_pid(p);
  tt_provider_free(p);
  /* Pending requests fail before free returns; no on_dead after free. */
  assert_int_equal(h->nreplies, 1);
  assert_string_equal(h->messages[0],
                      "provider 'fake' was closed while handling create of "
                      "type thing");
  uv_close((uv_handle_t *)&h->watchdog, NULL);
  run_loop(h);
  assert_false(h->dead_called);
  assert_true(process_gone(pid));
  harness_free(h);
}

static void test_environment_and_group(void **state) {
  struct harness *h = harness_new();
  start_fake(h, "env", NULL);
  h->stop_when_answered = true;
  h->expected = 1;
  create(h, 0, 0);
  run_loop(h);
  assert_int_equal(h->kinds[0], TT_REPLY_RESULT);
  assert_string_equal(h->results[0], "{\"outputProperties\":{\"provider\":\"1\","
                                     "\"protocol\":\"1\",\"leader\":true}}");
  harness_free(h);
}

static void test_request_after_death(void **state) {
  struct harness *h = harness_new();
  h->free_in_dead = false;
  tt_provider *p = start_fake(h, "ok", NULL);
  while (!h->ready_called)
    uv_run(&h->loop, UV_RUN_ONCE);
  tt_provider_stop(p);
  while (!h->dead_called)
    uv_run(&h->loop, UV_RUN_ONCE);
  create(h, 0, 0);
  assert_int_equal(h->nreplies, 0); /* never from inside the call */
  uv_run(&h->loop, UV_RUN_NOWAIT);
  assert_int_equal(h->nreplies, 1);
  assert_string_equal(h->messages[0], "provider 'fake' was stopped before "
                                      "create of type thing was sent");
  tt_provider_free(p);
  run_loop(h);
  harness_free(h);
}

static void test_kill_all_now(void **state) {
  struct harness *h = harness_new();
  tt_provider *p = start_fake(h, "stubborn", NULL);
  while (!h->ready_called)
    uv_run(&h->loop, UV_RUN_ONCE);
  int pid = tt_provider_pid(p);
  tt_provider_kill_all_now();
  run_loop(h);
  assert_string_equal(h->exit_desc, "was killed by signal 9 (SIGKILL)");
  assert_true(process_gone(pid));
  harness_free(h);
}

/* Two providers on one loop, as the deployment engine runs them: one
 * dying does not disturb the other. */
struct pair {
  int dead;
  int replies;
  tt_reply_kind kinds[2];
  char messages[2][256];
  tt_provider *ok;
  uv_timer_t *watchdog;
};

static void pair_dead(tt_provider *p, void *user) {
  struct pair *pr = user;
  if (++pr->dead == 2)
    uv_close((uv_handle_t *)pr->watchdog, NULL);
  tt_provider_free(p);
}

static void pair_reply(tt_provider *p, const tt_reply *rep, void *user) {
  struct pair *pr = *(struct pair **)user;
  int which = p == pr->ok ? 0 : 1;
  pr->replies++;
  pr->kinds[which] = rep->kind;
  snprintf(pr->messages[which], sizeof pr->messages[which], "%s",
           rep->message ? rep->message : "");
  if (p == pr->ok)
    tt_provider_stop(p);
}

static void quiet_log(tt_provider *p, const char *level, const char *line,
                      size_t len, void *user) {}

static void test_two_providers_one_loop(void **state) {
  struct harness *h = harness_new();
  struct pair pr = {.watchdog = &h->watchdog};
  static struct pair *ref;
  ref = &pr;
  static const char *ok_args[] = {"fake-provider", "log", NULL};
  static const char *bad_args[] = {"fake-provider", "exit3", NULL};
  tt_provider_config cfg = {.executable = self_path, .on_dead = pair_dead,
                            .on_log = quiet_log, .user = &pr,
                            .stop_grace_ms = 300, .kill_grace_ms = 300};
  cfg.name = "good";
  cfg.args = ok_args;
  pr.ok = tt_provider_start(&h->loop, &cfg);
  cfg.name = "bad";
  cfg.args = bad_args;
  tt_provider *bad = tt_provider_start(&h->loop, &cfg);
  tether_json *params = tether_json_object();
  params = tether_json_object_set(params, "type", tether_json_string("thing"));
  tt_provider_request(bad, "create", tether_json_ref(params), 0, pair_reply, &ref);
  tt_provider_request(pr.ok, "create", params, 0, pair_reply, &ref);
  run_loop(h);
  assert_int_equal(pr.dead, 2);
  assert_int_equal(pr.replies, 2);
  assert_int_equal(pr.kinds[0], TT_REPLY_RESULT);
  assert_int_equal(pr.kinds[1], TT_REPLY_FAILED);
  assert_string_equal(pr.messages[1], "provider 'bad' exited with status 3 "
                                      "while handling create of type thing");
  harness_free(h);
}

static void test_find_executable(void **state) {
  tether_buf err;
  tether_buf_init(&err);
  char *p = tt_provider_find_executable("sh", &err);
  assert_non_null(p);
  assert_int_equal(access(p, X_OK), 0);
  free(p);
  p = tt_provider_find_executable("./relative/thing", &err);
  assert_string_equal(p, "./relative/thing");
  free(p);
  assert_null(tt_provider_find_executable("tether-surely-missing", &err));
  assert_contains(err.data, "'tether-surely-missing' not found");
  tether_buf_free(&err);
}

static void test_describe(void **state) {
  tether_json *data = tether_json_object();
  data = tether_json_object_set(data, "path", tether_json_string("/inputProperties/x"));
  tt_reply r = {.kind = TT_REPLY_ERROR, .provider = "local",
                .what = "create of type file", .code = -32602,
                .message = "x is required", .data = data};
  tether_buf out;
  tether_buf_init(&out);
  tt_reply_describe(&r, &out);
  assert_contains(out.data, "provider 'local' answered create of type file "
                            "with error -32602");
  assert_contains(out.data, ": x is required\n");
  assert_contains(out.data, "  data: {\"path\":\"/inputProperties/x\"}\n");
  tether_json_unref(data);

  tether_json *fd = tether_json_object();
  tether_json *lines = tether_json_array();
  lines = tether_json_array_append(lines, tether_json_string("disk full"));
  fd = tether_json_object_set(fd, "stderr", lines);
  tt_reply f = {.kind = TT_REPLY_FAILED, .provider = "local",
                .message = "provider 'local' exited with status 3", .data = fd};
  out.len = 0;
  tt_reply_describe(&f, &out);
  assert_string_equal(out.data, "provider 'local' exited with status 3\n"
                                "recent stderr of provider 'local':\n"
                                "  disk full\n");
  tether_json_unref(fd);
  tether_buf_free(&out);
  assert_string_equal(tt_signal_name(SIGKILL), "SIGKILL");
  assert_string_equal(tt_provider_state_desc(TT_PROVIDER_DEAD), "dead");
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "fake-provider") == 0)
    return fake_main(argv[2]);
  ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  if (n <= 0)
    return 1;
  self_path[n] = '\0';
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_content_length),
      cmocka_unit_test(test_ready_state_and_info),
      cmocka_unit_test(test_exit_while_handling),
      cmocka_unit_test(test_garbage_on_stdout),
      cmocka_unit_test(test_unknown_id),
      cmocka_unit_test(test_invalid_jsonrpc),
      cmocka_unit_test(test_answer_spellings),
      cmocka_unit_test(test_large_answers),
      cmocka_unit_test(test_large_compact_answers),
      cmocka_unit_test(test_oversized_message),
      cmocka_unit_test(test_request_timeout),
      cmocka_unit_test(test_start_timeout),
      cmocka_unit_test(test_stubborn_is_killed),
      cmocka_unit_test(test_children_are_killed),
      cmocka_unit_test(test_stderr_flood),
      cmocka_unit_test(test_log_and_progress),
      cmocka_unit_test(test_log_line_format),
      cmocka_unit_test(test_concurrency_cap),
      cmocka_unit_test(test_spawn_failure),
      cmocka_unit_test(test_not_on_path),
      cmocka_unit_test(test_answer_then_exit),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_free_while_running),
      cmocka_unit_test(test_environment_and_group),
      cmocka_unit_test(test_request_after_death),
      cmocka_unit_test(test_kill_all_now),
      cmocka_unit_test(test_two_providers_one_loop),
      cmocka_unit_test(test_find_executable),
      cmocka_unit_test(test_describe),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
