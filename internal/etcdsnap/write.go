package etcdsnap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/mvcc"
)

// writeTxBytes bounds what one bbolt transaction stages: bbolt keeps a
// transaction's dirty pages in memory until it commits.
const writeTxBytes = 16 << 20

// initialMmapSize is address space, not memory: 10 GiB, etcd's default.
const initialMmapSize = 10 << 30

// allBuckets is every bucket etcd's schema creates at start-up.
var allBuckets = [][]byte{bucketKey, bucketMeta, bucketLease, bucketAlarm, bucketCluster,
	bucketMembers, bucketMembersRemoved, bucketAuth, bucketAuthUsers, bucketAuthRoles}

// Writer builds an etcd backend file. Versions must be put in revision
// order; it is not safe for concurrent use.
type Writer struct {
	db      *bolt.DB
	tx      *bolt.Tx
	pending int
	buf     []byte
}

// Create starts a new etcd backend file at path, which must not exist.
// The file is a scratch copy that is streamed and removed, so nothing is
// fsynced.
func Create(path string) (*Writer, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("etcdsnap: %s already exists", path)
	}
	// A large initial map, as etcd's backend uses: bbolt remaps the whole
	// file each time it outgrows the map, which dominated the export time.
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, NoFreelistSync: true, NoGrowSync: true, InitialMmapSize: initialMmapSize})
	if err != nil {
		return nil, fmt.Errorf("etcdsnap: create %s: %w", path, err)
	}
	w := &Writer{db: db}
	if err := w.begin(); err != nil {
		_ = db.Close()
		return nil, err
	}
	for _, b := range allBuckets {
		if _, err := w.tx.CreateBucketIfNotExists(b); err != nil {
			w.Abort()
			return nil, fmt.Errorf("etcdsnap: create bucket %s: %w", b, err)
		}
	}
	return w, nil
}

func (w *Writer) begin() error {
	tx, err := w.db.Begin(true)
	if err != nil {
		return fmt.Errorf("etcdsnap: begin: %w", err)
	}
	w.tx, w.pending = tx, 0
	return nil
}

func (w *Writer) put(bucket, k, v []byte) error {
	b := w.tx.Bucket(bucket)
	if string(bucket) == string(bucketKey) {
		// Appends in key order: fuller pages, as etcd's key bucket does.
		b.FillPercent = 0.9
	}
	if err := b.Put(k, v); err != nil {
		return fmt.Errorf("etcdsnap: put into %s: %w", bucket, err)
	}
	w.pending += len(k) + len(v)
	if w.pending < writeTxBytes {
		return nil
	}
	if err := w.tx.Commit(); err != nil {
		w.tx = nil
		return fmt.Errorf("etcdsnap: commit: %w", err)
	}
	return w.begin()
}

// PutVersion adds one version of a key to the key bucket.
func (w *Writer) PutVersion(v mvcc.ImportedVersion) error {
	kv := &mvccpb.KeyValue{Key: v.Key}
	if !v.Tombstone {
		kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease, kv.Value = v.CreateRevision, v.Main, v.Version, v.Lease, v.Value
	}
	val, err := proto.Marshal(kv)
	if err != nil {
		return fmt.Errorf("etcdsnap: marshal %q: %w", v.Key, err)
	}
	w.buf = appendRev(w.buf[:0], v.Main, v.Sub, v.Tombstone)
	return w.put(bucketKey, w.buf, val)
}

// PutLease adds a lease.
func (w *Writer) PutLease(r lease.Record) error {
	val, err := proto.Marshal(&leasepb.Lease{ID: r.ID, TTL: r.TTL, RemainingTTL: r.Remaining})
	if err != nil {
		return fmt.Errorf("etcdsnap: marshal lease %x: %w", r.ID, err)
	}
	return w.put(bucketLease, binary.BigEndian.AppendUint64(nil, uint64(r.ID)), val)
}

// PutAuth writes the auth state.
func (w *Writer) PutAuth(s *auth.Snapshot) error {
	en := []byte{0}
	if s.Enabled {
		en[0] = 1
	}
	errs := []error{w.put(bucketAuth, authEnabled, en), w.put(bucketAuth, authRevision, binary.BigEndian.AppendUint64(nil, s.Revision))}
	for _, u := range s.Users {
		v, err := proto.Marshal(u)
		errs = append(errs, err)
		if err == nil {
			errs = append(errs, w.put(bucketAuthUsers, u.Name, v))
		}
	}
	for _, r := range s.Roles {
		v, err := proto.Marshal(r)
		errs = append(errs, err)
		if err == nil {
			errs = append(errs, w.put(bucketAuthRoles, r.Name, v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("etcdsnap: auth: %w", err)
	}
	return nil
}

// PutAlarms writes the active alarms.
func (w *Writer) PutAlarms(alarms []*pb.AlarmMember) error {
	for _, a := range alarms {
		k, err := proto.Marshal(a)
		if err != nil {
			return fmt.Errorf("etcdsnap: marshal alarm: %w", err)
		}
		if err := w.put(bucketAlarm, k, nil); err != nil {
			return err
		}
	}
	return nil
}

// Finish writes the meta and cluster buckets and closes the file.
func (w *Writer) Finish(m Meta) error {
	var errs []error
	put := func(b, k, v []byte) { errs = append(errs, w.put(b, k, v)) }
	put(bucketMeta, metaConsistentIndex, binary.BigEndian.AppendUint64(nil, m.ConsistentIndex))
	put(bucketMeta, metaTerm, binary.BigEndian.AppendUint64(nil, m.Term))
	put(bucketMeta, metaStorageVersion, []byte(MaxStorageVersion.String()))
	if m.Scheduled > 0 {
		put(bucketMeta, metaScheduled, appendRev(nil, m.Scheduled, 0, false))
	}
	if m.Finished > 0 {
		put(bucketMeta, metaFinished, appendRev(nil, m.Finished, 0, false))
	}
	if m.ClusterVersion != "" {
		put(bucketCluster, clusterVersion, []byte(m.ClusterVersion))
	}
	if err := errors.Join(errs...); err != nil {
		w.Abort()
		return err
	}
	err := w.tx.Commit()
	w.tx = nil
	if err != nil {
		_ = w.db.Close()
		return fmt.Errorf("etcdsnap: commit: %w", err)
	}
	if err := w.db.Close(); err != nil {
		return fmt.Errorf("etcdsnap: close: %w", err)
	}
	return nil
}

// Abort drops the open transaction and closes the file (the caller removes
// it).
func (w *Writer) Abort() {
	if w.tx != nil {
		_ = w.tx.Rollback()
		w.tx = nil
	}
	_ = w.db.Close()
}
