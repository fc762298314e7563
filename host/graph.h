/*
 * graph.h: the dependency graph of a deployment model.
 *
 * Nodes are resources; a resource has an edge to each resource its inputs
 * reference, each one it names in dependsOn, and the store its record
 * lives in (see tt_resource.deps). Edges point from the dependent to what
 * it depends on, the way "a -> b" reads in a cycle message and in the DOT
 * output: a needs b first.
 */
#ifndef TETHER_HOST_GRAPH_H
#define TETHER_HOST_GRAPH_H

#include "deployment.h"

/* Orders the model: fills m->order (every resource after all it depends
 * on; among resources free to go, file order first) and m->stores (each
 * store after the store it is recorded in, with store_index set). Refuses
 * a cycle, naming its members in order from the first one in the file:
 * "tether.json: dependency cycle: a -> b -> c -> a". A cycle that passes
 * through a store edge is a cycle of state stores, reported as
 * "tether.json: state store cycle: s -> t -> s (s is recorded in t, t is
 * recorded in s)". Returns NULL or the message in *diag. Linear in
 * resources and edges, apart from the heap that keeps file order. */
const char *tt_graph_sort(tt_model *m, tt_diag *diag);

/* Appends the graph in Graphviz DOT: a node per resource labelled with its
 * name, provider and type, nested deployments as clusters, reference and
 * dependsOn edges solid and store edges dashed. Nodes are named by resource
 * path ("web", "sub/web"). */
void tt_graph_dot(const tt_model *m, tether_buf *out);

#endif /* TETHER_HOST_GRAPH_H */
