// Package memory implements storage.Engine in memory, on a copy-on-write
// B-tree.
//
// It exists so that the layers above storage (Raft log, MVCC, the server)
// can be tested quickly and deterministically, and so that a node can run
// without a disk in throwaway setups. It passes the same conformance suite
// (storage/enginetest) as the Pebble engine, so its behaviour is the
// production behaviour minus durability.
//
// Point-in-time reads come from the B-tree's O(1) lazy Clone: a snapshot or
// iterator reads a frozen clone while writers keep mutating the live tree,
// which copies only the nodes it touches. One frozen clone is shared by every
// reader that arrives before the next write, so read-mostly workloads do not
// pay for a clone per iterator.
//
// Checkpoint writes the whole tree to a single file (length-prefixed records
// with a CRC-32C trailer) that Load reads back, refusing a corrupt file.
package memory
