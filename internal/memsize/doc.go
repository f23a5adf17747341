// Package memsize applies metastore's memory sizing flags (issue 11): the
// soft Go memory limit (--memory-limit-bytes, unless the operator set
// GOMEMLIMIT), the budget of range response bytes in flight
// (--max-range-bytes-in-flight, internal/respbudget) and the storage
// engine's cache and memtable sizes; and it shows each as a metric, so that
// an operator (and the e2e tests) can see what is in force. LockMemory is
// --memory-mlock.
package memsize
