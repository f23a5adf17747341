// Package crc32c is the CRC-32C (Castagnoli) checksum that every checksummed
// format of metastore uses: Raft log records (raftlog), snapshot frames
// (raftsnap), peer message frames (transport), memory-engine checkpoints
// (storage/memory) and the MVCC hash (mvcc), which must equal etcd's. One
// table for all of them, so no format can drift to another polynomial.
package crc32c
