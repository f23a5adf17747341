// Package storage declares the small key-value engine interface that every
// stateful part of metastore (the Raft log, MVCC, leases, auth, membership)
// writes through, and the schema of the key space those parts share.
//
// Keeping the interface small is what lets one conformance suite
// (storage/enginetest) prove that the Pebble engine and the memory engine
// behave the same, so that tests on the fast memory engine say something
// about production on Pebble.
package storage
