// Package enginetest is the conformance suite for storage.Engine
// implementations.
//
// Every engine (Pebble in production, memory in tests) runs the same suite,
// so that code above the storage layer can be tested on the fast engine and
// trusted on the durable one. The suite pins down the parts of the contract
// that are easy to get subtly wrong: batch atomicity and op order, iterator
// bounds and direction changes, point-in-time isolation of iterators and
// snapshots, checkpoints, binary keys, and behaviour after Close.
package enginetest
