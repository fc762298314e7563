/*
 * bench_json.c: throughput of the JSON core.
 *
 *   bench_json [--mb N] [--runs N] [--events N] [--replay FILE]
 *
 * 1. Parsing and serializing a generated document of about N MB (default
 *    40): an array of resource-like objects with strings, escapes, UTF-8,
 *    numbers and nesting. Parsing is timed as is (validation; containers
 *    stay raw until looked into) and followed by a walk that materializes
 *    everything; serializing is timed for the untouched document (its
 *    text is copied) and for the materialized one (every node written).
 *    Each figure is the median of --runs runs (default 7), in MB/s of the
 *    document's size.
 * 2. A state file replay, the shape of the state_file benchmark: event 0
 *    adds the empty state, then --events events (default 100000; 60% add
 *    a resource with about 200 bytes of inputs, 30% replace a resource's
 *    inputProperties and status, 10% remove one), each line parsed and its
 *    patch applied, then the resolved state serialized. It runs in a fresh
 *    process (this program, re-executed) that reads the log in 1 MiB
 *    chunks, as a provider would, so its peak RSS is the replay's own.
 *    --replay FILE replays an existing log (one event per line) instead.
 *
 * Prints one line per measurement: "name=... mb=... median_ms=... mb_s=...
 * cpu_ms=..." and "replay events=... bytes=... ms=... parse_ms=...
 * apply_ms=... dump_ms=... state_bytes=...
 * process_median_ms=... process_cpu_ms=... maxrss_kb=...". Wall times
 * suffer on a busy machine; the CPU times (median, user + system) less.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tether/json.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint64_t rng_state = 42;
static uint64_t rng(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void random_text(tether_buf *b, size_t n) {
  static const char alphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_./";
  for (size_t i = 0; i < n; i++)
    tether_buf_append_char(b, alphabet[rng() % (sizeof alphabet - 1)]);
}

/* ---- The document ---- */

static void generate_document(tether_buf *b, size_t target) {
  tether_buf_append_char(b, '[');
  for (uint64_t i = 0; b->len < target; i++) {
    if (i)
      tether_buf_append_char(b, ',');
    tether_buf_printf(b,
                      "{\"type\":\"file\",\"provider\":\"local\",\"name\":"
                      "\"r%06" PRIu64 "\",\"inputProperties\":{\"name\":\"/srv/"
                      "app/conf.d/resource-%06" PRIu64 ".conf\",\"contents\":\"",
                      i, i);
    random_text(b, 40 + rng() % 120);
    /* Some escapes and some non-ASCII text, as real contents have. */
    if (i % 4 == 0)
      tether_buf_append_str(b, "\\n\\t\\\"quoted\\\"");
    if (i % 5 == 0)
      tether_buf_append_str(b, " caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x9A\x80");
    tether_buf_printf(b,
                      "\",\"mode\":%u,\"tags\":[\"a\",\"b%u\",\"c\"],"
                      "\"limits\":{\"cpu\":%u.%02u,\"memory\":%" PRIu64
                      ",\"ratio\":%.6g,\"enabled\":%s,\"parent\":null}},"
                      "\"outputProperties\":{\"id\":\"%020" PRIu64
                      "\",\"size\":%" PRIu64 ",\"sha\":\"",
                      420u + (unsigned)(i % 3), (unsigned)(i % 9),
                      (unsigned)(rng() % 16), (unsigned)(rng() % 100),
                      rng() % ((uint64_t)1 << 40), (double)(rng() % 100000) / 7.0,
                      i % 2 ? "true" : "false", rng(), rng() % 1000000);
    random_text(b, 40);
    tether_buf_printf(b,
                      "\"},\"dependsOn\":[\"r%06" PRIu64 "\",\"r%06" PRIu64
                      "\"],\"status\":\"created\"}",
                      i / 2, i / 3);
  }
  tether_buf_append_char(b, ']');
}

/* Looks at every value, which materializes every container. */
static size_t walk_all(const tether_json *v) {
  size_t n = 1;
  if (tether_json_is_array(v)) {
    size_t size = tether_json_array_size(v);
    for (size_t i = 0; i < size; i++)
      n += walk_all(tether_json_array_get(v, i));
  } else if (tether_json_is_object(v)) {
    size_t it = 0;
    tether_json *m;
    while (tether_json_object_next(v, &it, NULL, NULL, &m))
      n += walk_all(m);
  }
  return n;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void report(const char *name, size_t bytes, double *ms, double *cpu,
                   int runs) {
  double m = median(ms, runs);
  double mb = (double)bytes / 1e6;
  printf("name=%s mb=%.1f median_ms=%.1f mb_s=%.0f cpu_ms=%.1f\n", name, mb,
         m, mb / (m / 1e3), median(cpu, runs));
  fflush(stdout);
}

/* A measurement: wall and CPU milliseconds of each run. */
typedef struct timing {
  double *wall, *cpu;
  double wall0, cpu0;
} timing;

static void timing_start(timing *t) {
  t->wall0 = now_ms();
  t->cpu0 = cpu_ms();
}

static void timing_stop(timing *t, int run, double extra_wall,
                        double extra_cpu) {
  t->wall[run] = now_ms() - t->wall0 + extra_wall;
  t->cpu[run] = cpu_ms() - t->cpu0 + extra_cpu;
}

static void bench_document(size_t target, int runs) {
  tether_buf doc;
  tether_buf_init(&doc);
  generate_document(&doc, target);
  timing parse, full, dump_raw, dump_full;
  timing *all[] = {&parse, &full, &dump_raw, &dump_full};
  for (size_t i = 0; i < 4; i++) {
    all[i]->wall = calloc((size_t)runs, sizeof(double));
    all[i]->cpu = calloc((size_t)runs, sizeof(double));
  }
  size_t nodes = 0;
  for (int r = 0; r < runs; r++) {
    tether_json_error err;
    timing_start(&parse);
    tether_json *v = tether_json_parse(doc.data, doc.len, &err);
    timing_stop(&parse, r, 0, 0);
    if (!v) {
      fprintf(stderr, "bench_json: generated document rejected: %s\n",
              err.message);
      exit(1);
    }
    tether_buf out;
    tether_buf_init(&out);
    tether_buf_reserve(&out, doc.len);
    timing_start(&dump_raw);
    tether_json_dump(v, &out);
    timing_stop(&dump_raw, r, 0, 0);
    if (out.len != doc.len || memcmp(out.data, doc.data, doc.len) != 0) {
      fprintf(stderr, "bench_json: serialization differs from the input\n");
      exit(1);
    }
    /* Parsing plus looking at every value. */
    timing_start(&full);
    nodes = walk_all(v);
    timing_stop(&full, r, parse.wall[r], parse.cpu[r]);
    out.len = 0;
    timing_start(&dump_full);
    tether_json_dump(v, &out);
    timing_stop(&dump_full, r, 0, 0);
    if (out.len != doc.len || memcmp(out.data, doc.data, doc.len) != 0) {
      fprintf(stderr, "bench_json: serialization differs from the input\n");
      exit(1);
    }
    tether_buf_free(&out);
    tether_json_unref(v);
  }
  printf("document bytes=%zu values=%zu\n", doc.len, nodes);
  report("parse", doc.len, parse.wall, parse.cpu, runs);
  report("parse_and_materialize_all", doc.len, full.wall, full.cpu, runs);
  report("dump_untouched", doc.len, dump_raw.wall, dump_raw.cpu, runs);
  report("dump_materialized", doc.len, dump_full.wall, dump_full.cpu, runs);
  for (size_t i = 0; i < 4; i++) {
    free(all[i]->wall);
    free(all[i]->cpu);
  }
  tether_buf_free(&doc);
}

/* ---- The replay ---- */

static int generate_log(const char *path, uint64_t events) {
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  uint64_t *live = malloc(events * sizeof *live);
  size_t nlive = 0;
  uint64_t next_id = 0;
  tether_buf line, inputs;
  tether_buf_init(&line);
  tether_buf_init(&inputs);
  for (uint64_t i = 0; i <= events; i++) {
    line.len = 0;
    const char *time = "2026-01-01T00:00:00.000Z";
    if (i == 0) {
      tether_buf_printf(&line,
                        "{\"index\":0,\"meta\":{\"time\":\"%s\"},\"patch\":[{"
                        "\"op\":\"add\",\"path\":\"\",\"value\":{\"_type\":"
                        "\"nixopsState\",\"resources\":{},\"deployments\":{}}}"
                        "]}",
                        time);
    } else {
      unsigned roll = (unsigned)(rng() % 100);
      bool create = nlive == 0 || roll < 60;
      uint64_t id;
      if (create) {
        id = next_id++;
        live[nlive++] = id;
      } else {
        id = live[rng() % nlive];
      }
      inputs.len = 0;
      tether_buf_printf(&inputs,
                        "{\"name\":\"/srv/app/conf.d/resource-%06" PRIu64
                        ".conf\",\"contents\":\"",
                        id);
      random_text(&inputs, 100 + rng() % 30);
      tether_buf_append_str(&inputs, "\",\"mode\":\"0644\"}");
      if (create) {
        tether_buf_printf(&line,
                          "{\"index\":%" PRIu64 ",\"meta\":{\"time\":\"%s\","
                          "\"event\":\"create\",\"hostVersion\":\"0.1.0\"},"
                          "\"patch\":[{\"op\":\"add\",\"path\":\"/resources/"
                          "r%06" PRIu64 "\",\"value\":{\"type\":\"file\","
                          "\"provider\":\"local\",\"inputProperties\":%s,"
                          "\"outputProperties\":{},\"dependsOn\":[],"
                          "\"status\":\"created\"}}]}",
                          i, time, id, inputs.data);
      } else if (roll < 90) {
        tether_buf_printf(&line,
                          "{\"index\":%" PRIu64 ",\"meta\":{\"time\":\"%s\","
                          "\"event\":\"update\",\"hostVersion\":\"0.1.0\"},"
                          "\"patch\":[{\"op\":\"replace\",\"path\":"
                          "\"/resources/r%06" PRIu64 "/inputProperties\","
                          "\"value\":%s},{\"op\":\"replace\",\"path\":"
                          "\"/resources/r%06" PRIu64 "/status\",\"value\":"
                          "\"updated\"}]}",
                          i, time, id, inputs.data, id);
      } else {
        size_t k = (size_t)(rng() % nlive);
        id = live[k];
        live[k] = live[--nlive];
        tether_buf_printf(&line,
                          "{\"index\":%" PRIu64 ",\"meta\":{\"time\":\"%s\","
                          "\"event\":\"destroy\",\"hostVersion\":\"0.1.0\"},"
                          "\"patch\":[{\"op\":\"remove\",\"path\":"
                          "\"/resources/r%06" PRIu64 "\"}]}",
                          i, time, id);
      }
    }
    tether_buf_append_char(&line, '\n');
    fwrite(line.data, 1, line.len, f);
  }
  free(live);
  tether_buf_free(&line);
  tether_buf_free(&inputs);
  return fclose(f);
}

/* Replays the log at path; the child process's whole job. */
static int replay(const char *path) {
  double t0 = now_ms();
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    perror(path);
    return 1;
  }
  tether_json *state = tether_json_null();
  char *buf = malloc(1 << 20);
  size_t have = 0, events = 0, bytes = 0;
  /* Time spent parsing events and applying their patches, apart. */
  double parse_ms = 0, apply_ms = 0;
  for (;;) {
    ssize_t n = read(fd, buf + have, (1 << 20) - have);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      perror(path);
      return 1;
    }
    have += (size_t)n;
    bytes += (size_t)n;
    size_t start = 0;
    for (;;) {
      char *nl = memchr(buf + start, '\n', have - start);
      if (!nl && !(n == 0 && start < have))
        break;
      size_t end = nl ? (size_t)(nl - buf) : have;
      tether_json_error err;
      double p0 = now_ms();
      tether_json *ev = tether_json_parse(buf + start, end - start, &err);
      double p1 = now_ms();
      parse_ms += p1 - p0;
      if (!ev) {
        fprintf(stderr, "replay: event %zu: %s\n", events, err.message);
        return 1;
      }
      if (!tether_json_patch(&state, tether_json_object_get(ev, "patch"),
                             &err)) {
        fprintf(stderr, "replay: event %zu: %s\n", events, err.message);
        return 1;
      }
      tether_json_unref(ev);
      apply_ms += now_ms() - p1;
      events++;
      start = end + (nl != NULL);
    }
    memmove(buf, buf + start, have - start);
    have -= start;
    if (n == 0)
      break;
  }
  close(fd);
  free(buf);
  size_t len;
  double d0 = now_ms();
  char *out = tether_json_dumps(state, &len);
  double t1 = now_ms();
  printf("replay events=%zu bytes=%zu ms=%.1f parse_ms=%.1f apply_ms=%.1f "
         "dump_ms=%.1f state_bytes=%zu resources=%zu",
         events, bytes, t1 - t0, parse_ms, apply_ms, t1 - d0, len,
         tether_json_object_size(tether_json_object_get(state, "resources")));
  fflush(stdout);
  free(out);
  tether_json_unref(state);
  return 0;
}

static void bench_replay(const char *self, const char *log, int runs) {
  double *ms = calloc((size_t)runs, sizeof *ms);
  double *cpu = calloc((size_t)runs, sizeof *cpu);
  long max_rss = 0;
  for (int r = 0; r < runs; r++) {
    fflush(stdout);
    int pipefd[2];
    if (pipe(pipefd) != 0) {
      perror("pipe");
      exit(1);
    }
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid == 0) {
      dup2(pipefd[1], 1);
      close(pipefd[0]);
      close(pipefd[1]);
      execl(self, self, "--replay-child", log, (char *)NULL);
      perror(self);
      _exit(127);
    }
    close(pipefd[1]);
    char line[512];
    ssize_t n = read(pipefd[0], line, sizeof line - 1);
    close(pipefd[0]);
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    double t1 = now_ms();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || n <= 0) {
      fprintf(stderr, "bench_json: the replay failed\n");
      exit(1);
    }
    line[n] = '\0';
    ms[r] = t1 - t0;
    cpu[r] = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
             (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
    if (ru.ru_maxrss > max_rss)
      max_rss = ru.ru_maxrss;
    if (r == runs - 1)
      printf("%s process_median_ms=%.1f process_cpu_ms=%.1f maxrss_kb=%ld\n",
             line, median(ms, runs), median(cpu, runs), max_rss);
  }
  free(ms);
  free(cpu);
}

int main(int argc, char **argv) {
  size_t mb = 40;
  int runs = 7;
  uint64_t events = 100000;
  const char *replay_file = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--replay-child") == 0 && i + 1 < argc)
      return replay(argv[i + 1]);
    if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc)
      mb = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
      runs = atoi(argv[++i]);
    else if (strcmp(argv[i], "--events") == 0 && i + 1 < argc)
      events = strtoull(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--replay") == 0 && i + 1 < argc)
      replay_file = argv[++i];
    else {
      fprintf(stderr, "usage: bench_json [--mb N] [--runs N] [--events N] "
                      "[--replay FILE]\n");
      return 2;
    }
  }
  if (runs < 1)
    runs = 1;

  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    perror("/proc/self/exe");
    return 1;
  }
  self[n] = '\0';
  char tmp[] = "/tmp/bench_json_log.XXXXXX";
  if (!replay_file) {
    int fd = mkstemp(tmp);
    if (fd < 0 || generate_log(tmp, events) != 0) {
      perror(tmp);
      return 1;
    }
    close(fd);
    replay_file = tmp;
  }
  bench_replay(self, replay_file, runs);
  if (replay_file == tmp)
    unlink(tmp);
  if (mb)
    bench_document(mb * 1000000, runs);
  return 0;
}
