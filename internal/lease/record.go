package lease

import (
	"encoding/binary"
	"fmt"

	"github.com/metastore/metastore/internal/storage"
)

// recordVersion prefixes every l/ value so the format can change later.
const recordVersion = 1

const recordLen = 1 + 8 + 8

// record is what the engine keeps of a lease.
type record struct {
	ttl       int64 // granted TTL, seconds
	remaining int64 // last checkpointed remaining TTL, seconds; 0 = unset
}

func leaseKey(id int64) []byte {
	k := make([]byte, 0, len(storage.PrefixLease)+8)
	k = append(k, storage.PrefixLease...)
	return binary.BigEndian.AppendUint64(k, uint64(id))
}

func leaseKeysPrefix(id int64) []byte {
	k := make([]byte, 0, len(storage.PrefixLeaseKeys)+8)
	k = append(k, storage.PrefixLeaseKeys...)
	return binary.BigEndian.AppendUint64(k, uint64(id))
}

func attachKey(id int64, key []byte) []byte {
	p := leaseKeysPrefix(id)
	return append(p, key...)
}

func encodeRecord(r record) []byte {
	v := make([]byte, 0, recordLen)
	v = append(v, recordVersion)
	v = binary.BigEndian.AppendUint64(v, uint64(r.ttl))
	return binary.BigEndian.AppendUint64(v, uint64(r.remaining))
}

func decodeRecord(k, v []byte) (int64, record, error) {
	if len(k) != len(storage.PrefixLease)+8 {
		return 0, record{}, fmt.Errorf("lease: malformed record key %x", k)
	}
	id := int64(binary.BigEndian.Uint64(k[len(storage.PrefixLease):]))
	if len(v) != recordLen || v[0] != recordVersion {
		return 0, record{}, fmt.Errorf("lease: record %x: malformed value (%d bytes)", id, len(v))
	}
	return id, record{
		ttl:       int64(binary.BigEndian.Uint64(v[1:])),
		remaining: int64(binary.BigEndian.Uint64(v[9:])),
	}, nil
}
