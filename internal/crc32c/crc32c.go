package crc32c

import (
	"hash"
	"hash/crc32"
)

// table is read-only after package initialisation.
var table = crc32.MakeTable(crc32.Castagnoli)

// Checksum is the CRC-32C of b.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, table) }

// Update returns crc extended by b.
func Update(crc uint32, b []byte) uint32 { return crc32.Update(crc, table, b) }

// New returns a CRC-32C hash.
func New() hash.Hash32 { return crc32.New(table) }
