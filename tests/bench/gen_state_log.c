/*
 * gen_state_log.c: writes a deterministic state file for the state_file
 * benchmarks and tests: event 0, then events that create (about 60%),
 * update (30%) and remove (10%) resources with inputs of about 200 bytes,
 * shaped as tether records them.
 *
 *   gen_state_log [--events N] [--seed S] [--nixops] FILE
 *
 * Default: 100000 events (about 42 MB), one compact event per line, as
 * tether-local appends them. --nixops writes what NixOps4's writer does
 * instead: pretty-printed events, every one after the first stamped with
 * index 0. Prints "events=N bytes=B resources=R" (R: resources left).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng_state;

/* splitmix64: small, fast and the same everywhere. */
static uint64_t rng(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void random_text(char *out, size_t n) {
  static const char alphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.";
  for (size_t i = 0; i < n; i++)
    out[i] = alphabet[rng() % (sizeof alphabet - 1)];
  out[n] = '\0';
}

/* Inputs of about 200 bytes once serialized. */
static void make_inputs(char *out, size_t outlen, uint64_t id) {
  char contents[140];
  random_text(contents, 100 + (size_t)(rng() % 30));
  snprintf(out, outlen,
           "{\"name\":\"/srv/app/conf.d/resource-%06" PRIu64 ".conf\","
           "\"contents\":\"%s\",\"mode\":\"0644\"}",
           id, contents);
}

/* Writes compact JSON text as serde_json's pretty printer does (two
 * spaces, "key": value), for the NixOps4 layout. */
static void write_pretty(FILE *f, const char *s) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char *p = s; *p; p++) {
    char c = *p;
    if (in_string) {
      fputc(c, f);
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
    case '"':
      in_string = true;
      fputc(c, f);
      break;
    case '{':
    case '[':
      if (p[1] == (c == '{' ? '}' : ']')) {
        fputc(c, f);
        fputc(*++p, f);
        break;
      }
      fputc(c, f);
      depth++;
      fprintf(f, "\n%*s", depth * 2, "");
      break;
    case '}':
    case ']':
      depth--;
      fprintf(f, "\n%*s%c", depth * 2, "", c);
      break;
    case ',':
      fprintf(f, ",\n%*s", depth * 2, "");
      break;
    case ':':
      fputs(": ", f);
      break;
    default:
      fputc(c, f);
    }
  }
  fputc('\n', f);
}

int main(int argc, char **argv) {
  uint64_t events = 100000, seed = 42;
  bool nixops = false;
  const char *path = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--events") == 0 && i + 1 < argc)
      events = strtoull(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
      seed = strtoull(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--nixops") == 0)
      nixops = true;
    else if (!path && argv[i][0] != '-')
      path = argv[i];
    else {
      fprintf(stderr,
              "usage: gen_state_log [--events N] [--seed S] [--nixops] FILE\n");
      return 2;
    }
  }
  if (!path || events == 0) {
    fprintf(stderr,
            "usage: gen_state_log [--events N] [--seed S] [--nixops] FILE\n");
    return 2;
  }
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    return 1;
  }
  rng_state = seed;
  /* Live resources, so updates and removes pick existing ones: a removed
   * one is swapped with the last, O(1). */
  uint64_t *live = malloc(events * sizeof *live);
  size_t nlive = 0;
  uint64_t next_id = 0;
  char *line = malloc(4096);
  char inputs[512];
  for (uint64_t i = 0; i < events; i++) {
    /* 2026-01-01 onwards, one event a second. */
    time_t secs = (time_t)(1767225600 + i);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char time[32];
    strftime(time, sizeof time, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    uint64_t index = nixops && i > 0 ? 0 : i;
    if (i == 0) {
      snprintf(line, 4096,
               "{\"index\":0,\"meta\":{\"time\":\"%s\"},\"patch\":[{\"op\":"
               "\"add\",\"path\":\"\",\"value\":{\"_type\":\"nixopsState\","
               "\"resources\":{},\"deployments\":{}}}]}",
               time);
    } else {
      unsigned roll = (unsigned)(rng() % 100);
      if (nlive == 0 || roll < 60) {
        uint64_t id = next_id++;
        live[nlive++] = id;
        make_inputs(inputs, sizeof inputs, id);
        snprintf(line, 4096,
                 "{\"index\":%" PRIu64 ",\"meta\":{\"time\":\"%s\",\"event\":"
                 "\"create\",\"hostVersion\":\"0.1.0\"},\"patch\":[{\"op\":"
                 "\"add\",\"path\":\"/resources/r%06" PRIu64 "\",\"value\":{"
                 "\"type\":\"file\",\"provider\":\"local\",\"inputProperties\":"
                 "%s,\"outputProperties\":{},\"dependsOn\":[],\"status\":"
                 "\"created\"}}]}",
                 index, time, id, inputs);
      } else if (roll < 90) {
        uint64_t id = live[rng() % nlive];
        make_inputs(inputs, sizeof inputs, id);
        snprintf(line, 4096,
                 "{\"index\":%" PRIu64 ",\"meta\":{\"time\":\"%s\",\"event\":"
                 "\"update\",\"hostVersion\":\"0.1.0\"},\"patch\":[{\"op\":"
                 "\"replace\",\"path\":\"/resources/r%06" PRIu64
                 "/inputProperties\",\"value\":%s},{\"op\":\"replace\","
                 "\"path\":\"/resources/r%06" PRIu64 "/status\",\"value\":"
                 "\"updated\"}]}",
                 index, time, id, inputs, id);
      } else {
        size_t k = (size_t)(rng() % nlive);
        uint64_t id = live[k];
        live[k] = live[--nlive];
        snprintf(line, 4096,
                 "{\"index\":%" PRIu64 ",\"meta\":{\"time\":\"%s\",\"event\":"
                 "\"destroy\",\"hostVersion\":\"0.1.0\"},\"patch\":[{\"op\":"
                 "\"remove\",\"path\":\"/resources/r%06" PRIu64 "\"}]}",
                 index, time, id);
      }
    }
    if (nixops)
      write_pretty(f, line);
    else
      fprintf(f, "%s\n", line);
  }
  long bytes = ftell(f);
  if (fclose(f) != 0) {
    perror(path);
    return 1;
  }
  printf("events=%" PRIu64 " bytes=%ld resources=%zu\n", events, bytes, nlive);
  free(live);
  free(line);
  return 0;
}
