// Package metrics holds the server-level Prometheus collectors: etcd's own
// metric names, types, help strings, label sets and buckets (so dashboards and
// alerts written for etcd keep working) plus the metastore_* names of the
// reliability layer.
//
// Nothing is registered in init(): New registers on the Registerer the server
// passes in, so tests and embedded servers can each use a private registry.
// Gauges that mirror live state (database size, revisions, memory) are
// GaugeFuncs reading callbacks the server supplies with SetSources, so they
// are never stale and nobody has to remember to update them.
package metrics
