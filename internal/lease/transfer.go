package lease

import (
	"fmt"

	"github.com/metastore/metastore/internal/storage"
)

// Record is a lease as another store's snapshot (an etcd bbolt file) carries
// it: etcd's leasepb.Lease.
type Record struct {
	ID  int64
	TTL int64
	// Remaining is the last checkpointed remaining TTL in seconds, 0 when
	// never checkpointed (the lease then restarts with its full TTL).
	Remaining int64
}

// StageImport stages lease r into b, for a restore into an empty engine.
func StageImport(b storage.Batch, r Record) error {
	if err := b.Set(leaseKey(r.ID), encodeRecord(record{ttl: r.TTL, remaining: r.Remaining})); err != nil {
		return fmt.Errorf("lease: stage import of %x: %w", r.ID, err)
	}
	return nil
}

// StageImportAttach stages the attachment of key to lease id.
func StageImportAttach(b storage.Batch, id int64, key []byte) error {
	if err := b.Set(attachKey(id, key), nil); err != nil {
		return fmt.Errorf("lease: stage import of %x: %w", id, err)
	}
	return nil
}

// ReadRecords returns every lease r holds, by ID.
func ReadRecords(r storage.Reader) ([]Record, error) {
	it, err := r.NewIter(storage.IterOptions{LowerBound: storage.PrefixLease, UpperBound: storage.PrefixEnd(storage.PrefixLease)})
	if err != nil {
		return nil, fmt.Errorf("lease: open iterator: %w", err)
	}
	defer it.Close()
	var out []Record
	for ok := it.First(); ok; ok = it.Next() {
		id, rec, err := decodeRecord(it.Key(), it.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, Record{ID: id, TTL: rec.ttl, Remaining: rec.remaining})
	}
	return out, it.Error()
}
