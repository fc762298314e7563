/*
 * graph.c: topological order, cycle reports and DOT output.
 */
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "util.h"

/* A binary min-heap of resource indexes: among the resources whose
 * dependencies are all placed, the one written first goes next, so the
 * order (and every listing built from it) follows the file. */
typedef struct index_heap {
  size_t *items;
  size_t len;
} index_heap;

static void heap_push(index_heap *h, size_t v) {
  size_t i = h->len++;
  h->items[i] = v;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (h->items[parent] <= h->items[i])
      break;
    size_t t = h->items[parent];
    h->items[parent] = h->items[i];
    h->items[i] = t;
    i = parent;
  }
}

static size_t heap_pop(index_heap *h) {
  size_t top = h->items[0];
  h->items[0] = h->items[--h->len];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, min = i;
    if (l < h->len && h->items[l] < h->items[min])
      min = l;
    if (r < h->len && h->items[r] < h->items[min])
      min = r;
    if (min == i)
      break;
    size_t t = h->items[min];
    h->items[min] = h->items[i];
    h->items[i] = t;
    i = min;
  }
  return top;
}

/* Every resource left unplaced has at least one unplaced dependency (or it
 * would have been placed), so following such dependencies from any of them
 * must come back to a resource already seen: that loop is a cycle. */
static const char *report_cycle(const tt_model *m, const bool *placed,
                                tt_diag *diag) {
  size_t n = m->nresources;
  size_t start = 0;
  while (placed[start])
    start++;
  /* step_of[i] is 1 + the position at which the walk visited i. */
  size_t *step_of = tt_calloc(n, sizeof *step_of);
  size_t *walk = tt_calloc(n + 1, sizeof *walk);
  tt_dep_kind *via = tt_calloc(n + 1, sizeof *via);
  size_t len = 0, cur = start;
  while (!step_of[cur]) {
    step_of[cur] = ++len;
    walk[len - 1] = cur;
    const tt_resource *r = m->resources[cur];
    for (size_t i = 0; i < r->ndeps; i++)
      if (!placed[r->deps[i].target->index]) {
        via[len - 1] = r->deps[i].kind;
        cur = r->deps[i].target->index;
        break;
      }
  }
  size_t first = step_of[cur] - 1;
  size_t clen = len - first;
  /* Start the report at the member written first in the file. */
  size_t rot = 0;
  for (size_t i = 1; i < clen; i++)
    if (walk[first + i] < walk[first + rot])
      rot = i;
  bool through_store = false;
  tether_buf msg, why;
  tether_buf_init(&msg);
  tether_buf_init(&why);
  for (size_t i = 0; i <= clen; i++) {
    size_t k = first + (rot + i) % clen;
    const tt_resource *r = m->resources[walk[k]];
    if (i)
      tether_buf_append_str(&msg, " -> ");
    tether_buf_append_str(&msg, r->path);
    if (i < clen && via[k] == TT_DEP_STATE) {
      through_store = true;
      const tt_resource *next =
          m->resources[walk[first + (rot + i + 1) % clen]];
      tether_buf_printf(&why, "%s%s is recorded in %s", why.len ? ", " : "",
                        r->path, next->path);
    }
  }
  if (through_store)
    tt_diag_set(diag, "%s: state store cycle: %s (%s)", m->file, msg.data,
                why.data);
  else
    tt_diag_set(diag, "%s: dependency cycle: %s", m->file, msg.data);
  tether_buf_free(&msg);
  tether_buf_free(&why);
  free(step_of);
  free(walk);
  free(via);
  return diag->message;
}

const char *tt_graph_sort(tt_model *m, tt_diag *diag) {
  size_t n = m->nresources;
  /* Dependents in compressed rows: those of resource i are
   * dependents[first[i] .. first[i + 1]). */
  size_t *first = tt_calloc(n + 1, sizeof *first);
  size_t *waiting = tt_calloc(n, sizeof *waiting);
  size_t edges = 0;
  for (size_t i = 0; i < n; i++) {
    const tt_resource *r = m->resources[i];
    waiting[i] = r->ndeps;
    edges += r->ndeps;
    for (size_t j = 0; j < r->ndeps; j++)
      first[r->deps[j].target->index + 1]++;
  }
  for (size_t i = 0; i < n; i++)
    first[i + 1] += first[i];
  size_t *fill = tt_calloc(n, sizeof *fill);
  size_t *dependents = tt_calloc(edges, sizeof *dependents);
  for (size_t i = 0; i < n; i++) {
    const tt_resource *r = m->resources[i];
    for (size_t j = 0; j < r->ndeps; j++) {
      size_t t = r->deps[j].target->index;
      dependents[first[t] + fill[t]++] = i;
    }
  }

  free(m->order);
  m->order = tt_calloc(n, sizeof *m->order);
  bool *placed = tt_calloc(n, sizeof *placed);
  index_heap heap = {tt_calloc(n, sizeof(size_t)), 0};
  for (size_t i = 0; i < n; i++)
    if (!waiting[i])
      heap_push(&heap, i);
  size_t count = 0;
  while (heap.len) {
    size_t i = heap_pop(&heap);
    placed[i] = true;
    m->order[count++] = i;
    for (size_t k = first[i]; k < first[i + 1]; k++)
      if (--waiting[dependents[k]] == 0)
        heap_push(&heap, dependents[k]);
  }

  const char *err = NULL;
  if (count < n) {
    err = report_cycle(m, placed, diag);
  } else {
    free(m->stores);
    m->stores = NULL;
    m->nstores = 0;
    for (size_t k = 0; k < n; k++) {
      tt_resource *r = m->resources[m->order[k]];
      if (!r->is_store)
        continue;
      m->stores = tt_realloc(m->stores, (m->nstores + 1) * sizeof *m->stores);
      r->store_index = m->nstores;
      m->stores[m->nstores++] = r;
    }
  }
  free(first);
  free(waiting);
  free(fill);
  free(dependents);
  free(placed);
  free(heap.items);
  return err;
}

/* ---- DOT ---- */

/* A DOT string literal: quotes and backslashes escaped, control characters
 * dropped so a strange type name cannot break the file. */
static void dot_string(tether_buf *out, const char *s) {
  tether_buf_append_char(out, '"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      tether_buf_append_char(out, '\\');
    if (c >= 0x20 && c != 0x7f)
      tether_buf_append_char(out, (char)c);
  }
  tether_buf_append_char(out, '"');
}

static void indent(tether_buf *out, int depth) {
  for (int i = 0; i < depth; i++)
    tether_buf_append_str(out, "  ");
}

static void dot_nodes(const tt_deployment *d, tether_buf *out, int depth) {
  for (size_t i = 0; i < d->nresources; i++) {
    const tt_resource *r = d->resources[i];
    tether_buf label;
    tether_buf_init(&label);
    tether_buf_printf(&label, "%s\n%s %s", r->name, r->provider->name, r->type);
    indent(out, depth);
    dot_string(out, r->path);
    tether_buf_append_str(out, " [label=");
    /* The label holds a newline on purpose: write it as DOT's \n. */
    tether_buf_append_char(out, '"');
    for (const char *s = label.data; *s; s++) {
      unsigned char c = (unsigned char)*s;
      if (c == '\n') {
        tether_buf_append_str(out, "\\n");
        continue;
      }
      if (c == '"' || c == '\\')
        tether_buf_append_char(out, '\\');
      if (c >= 0x20 && c != 0x7f)
        tether_buf_append_char(out, (char)c);
    }
    tether_buf_append_char(out, '"');
    if (r->is_store)
      tether_buf_append_str(out, ", peripheries=2");
    tether_buf_append_str(out, "];\n");
    tether_buf_free(&label);
  }
  for (size_t i = 0; i < d->ndeployments; i++) {
    const tt_deployment *child = d->deployments[i];
    tether_buf id;
    tether_buf_init(&id);
    tether_buf_printf(&id, "cluster_%s", child->path);
    indent(out, depth);
    tether_buf_append_str(out, "subgraph ");
    dot_string(out, id.data);
    tether_buf_append_str(out, " {\n");
    indent(out, depth + 1);
    tether_buf_append_str(out, "label=");
    dot_string(out, child->name);
    tether_buf_append_str(out, ";\n");
    dot_nodes(child, out, depth + 1);
    indent(out, depth);
    tether_buf_append_str(out, "}\n");
    tether_buf_free(&id);
  }
}

void tt_graph_dot(const tt_model *m, tether_buf *out) {
  tether_buf_append_str(out, "digraph tether {\n"
                             "  node [shape=box];\n");
  dot_nodes(m->root, out, 1);
  for (size_t i = 0; i < m->nresources; i++) {
    const tt_resource *r = m->resources[i];
    for (size_t j = 0; j < r->ndeps; j++) {
      tether_buf_append_str(out, "  ");
      dot_string(out, r->path);
      tether_buf_append_str(out, " -> ");
      dot_string(out, r->deps[j].target->path);
      switch (r->deps[j].kind) {
      case TT_DEP_REFERENCE:
      case TT_DEP_EXPLICIT:
        break;
      case TT_DEP_STATE:
        tether_buf_append_str(out, " [style=dashed]");
        break;
      }
      tether_buf_append_str(out, ";\n");
    }
  }
  tether_buf_append_str(out, "}\n");
}
