package membership

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/metastore/metastore/internal/storage"
)

// The identity of a member's data dir is two 8-byte big-endian records:
// this member's own ID (storage.KeyMemberID, never replicated: it is not
// part of a Raft snapshot image) and the cluster ID (storage.KeyClusterID).
// They are written once, when the member first starts, and read at every
// start after; this file is the only place that encodes or decodes them.

// ReadLocalID returns the member ID recorded in r; ok is false on a data
// dir that holds no member yet.
func ReadLocalID(r storage.Reader) (id uint64, ok bool, err error) {
	v, err := r.Get(storage.KeyMemberID)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("membership: read member id: %w", err)
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("membership: member id record has %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// RecordIdentity durably records this member's ID and the cluster ID in one
// synced batch, then makes the cluster ID the store's.
func (s *Store) RecordIdentity(eng storage.Engine, memberID, clusterID uint64) error {
	b := eng.NewBatch()
	defer b.Close()
	if err := b.Set(storage.KeyMemberID, binary.BigEndian.AppendUint64(nil, memberID)); err != nil {
		return fmt.Errorf("membership: record member id: %w", err)
	}
	if err := b.Set(storage.KeyClusterID, binary.BigEndian.AppendUint64(nil, clusterID)); err != nil {
		return fmt.Errorf("membership: record cluster id: %w", err)
	}
	if err := b.Commit(true); err != nil {
		return fmt.Errorf("membership: record member and cluster id: %w", err)
	}
	s.SetClusterID(clusterID)
	return nil
}

// readClusterID returns the cluster ID recorded in r, 0 if none.
func readClusterID(r storage.Reader) uint64 {
	if v, err := r.Get(storage.KeyClusterID); err == nil && len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}
