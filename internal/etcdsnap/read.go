package etcdsnap

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/coreos/go-semver/semver"
	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/server/v3/lease/leasepb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/auth"
	"github.com/metastore/metastore/internal/lease"
	"github.com/metastore/metastore/internal/mvcc"
)

// Bucket and meta key names of etcd's storage schema.
var (
	bucketKey            = []byte("key")
	bucketMeta           = []byte("meta")
	bucketLease          = []byte("lease")
	bucketAlarm          = []byte("alarm")
	bucketCluster        = []byte("cluster")
	bucketMembers        = []byte("members")
	bucketMembersRemoved = []byte("members_removed")
	bucketAuth           = []byte("auth")
	bucketAuthUsers      = []byte("authUsers")
	bucketAuthRoles      = []byte("authRoles")

	metaConsistentIndex = []byte("consistent_index")
	metaTerm            = []byte("term")
	metaStorageVersion  = []byte("storageVersion")
	metaScheduled       = []byte("scheduledCompactRev")
	metaFinished        = []byte("finishedCompactRev")
	authEnabled         = []byte("authEnabled")
	authRevision        = []byte("authRevision")
	clusterVersion      = []byte("clusterVersion")
)

// MaxStorageVersion is the newest etcd storage schema this package reads and
// the one it writes: etcd v3.7's.
var MaxStorageVersion = semver.Version{Major: 3, Minor: 7}

// revLen is the length of an encoded revision; a deletion adds one 't'.
const revLen = 17

// ErrNotSnapshot: the file is not an etcd backend, or it is damaged.
var ErrNotSnapshot = errors.New("not a valid etcd snapshot")

// Reader reads an etcd snapshot file.
type Reader struct {
	db *bolt.DB
	// Version is the storage schema version the file declares, or 3.5 for
	// a file without one (etcd v3.5 did not record it).
	Version semver.Version
}

// Meta is what the snapshot's meta bucket says.
type Meta struct {
	ConsistentIndex, Term uint64
	// Scheduled and Finished are the compaction revisions, -1 for none.
	Scheduled, Finished int64
	ClusterVersion      string
}

// HasHash reports whether a file of size bytes carries the SHA-256 trailer
// etcdctl appends: bbolt files are whole pages, so their size is a multiple
// of 512 without it.
func HasHash(size int64) bool { return size%512 == sha256.Size }

// Open checks path's SHA-256 trailer (unless skipHashCheck, for a file
// copied from a data dir, which has none) and opens it read-only. Every
// error is one line.
func Open(path string, skipHashCheck bool) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open snapshot: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open snapshot: %w", err)
	}
	size := st.Size()
	dbSize := size
	if HasHash(size) {
		dbSize = size - sha256.Size
		if !skipHashCheck {
			h := sha256.New()
			if _, err := io.CopyN(h, f, dbSize); err != nil {
				return nil, fmt.Errorf("read snapshot %s: %w", path, err)
			}
			want := make([]byte, sha256.Size)
			if _, err := io.ReadFull(f, want); err != nil {
				return nil, fmt.Errorf("read snapshot %s: %w", path, err)
			}
			if got := h.Sum(nil); !bytes.Equal(got, want) {
				return nil, fmt.Errorf("%w: %s: sha256 mismatch (expected %x, got %x): the file is truncated or damaged", ErrNotSnapshot, path, want, got)
			}
		}
	} else if !skipHashCheck {
		return nil, fmt.Errorf("%w: %s has no SHA-256 trailer (%d bytes): truncated, or not saved by etcdctl snapshot save (use --skip-hash-check for a copied db file)", ErrNotSnapshot, path, size)
	}
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotSnapshot, path, err)
	}
	r := &Reader{db: db}
	if err := r.validate(dbSize); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// validate checks that the file holds all of the database it describes and
// that it is an etcd backend of a version this package reads.
func (r *Reader) validate(fileSize int64) error {
	return r.db.View(func(tx *bolt.Tx) error {
		if tx.Size() > fileSize {
			return fmt.Errorf("%w: the database needs %d bytes, the file has %d: truncated", ErrNotSnapshot, tx.Size(), fileSize)
		}
		for _, b := range [][]byte{bucketKey, bucketMeta} {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("%w: no %q bucket (a bbolt file, but not etcd's backend)", ErrNotSnapshot, b)
			}
		}
		r.Version = semver.Version{Major: 3, Minor: 5}
		if v := tx.Bucket(bucketMeta).Get(metaStorageVersion); v != nil {
			sv, err := semver.NewVersion(string(v))
			if err != nil {
				return fmt.Errorf("%w: storage version %q: %v", ErrNotSnapshot, v, err)
			}
			r.Version = *sv
		}
		if MaxStorageVersion.LessThan(semver.Version{Major: r.Version.Major, Minor: r.Version.Minor}) {
			return fmt.Errorf("snapshot storage version %s is newer than %d.%d, the newest this metastore reads", r.Version, MaxStorageVersion.Major, MaxStorageVersion.Minor)
		}
		return nil
	})
}

// Close releases the file.
func (r *Reader) Close() error { return r.db.Close() }

func decodeRev(b []byte) (main, sub int64, tomb bool, err error) {
	if (len(b) != revLen && len(b) != revLen+1) || b[8] != '_' || (len(b) == revLen+1 && b[revLen] != 't') {
		return 0, 0, false, fmt.Errorf("%w: malformed revision %x", ErrNotSnapshot, b)
	}
	return int64(binary.BigEndian.Uint64(b)), int64(binary.BigEndian.Uint64(b[9:])), len(b) == revLen+1, nil
}

func appendRev(dst []byte, main, sub int64, tomb bool) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(main))
	dst = append(dst, '_')
	dst = binary.BigEndian.AppendUint64(dst, uint64(sub))
	if tomb {
		dst = append(dst, 't')
	}
	return dst
}

// Meta reads the meta and cluster buckets.
func (r *Reader) Meta() (Meta, error) {
	m := Meta{Scheduled: -1, Finished: -1}
	err := r.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if v := b.Get(metaConsistentIndex); len(v) == 8 {
			m.ConsistentIndex = binary.BigEndian.Uint64(v)
		}
		if v := b.Get(metaTerm); len(v) == 8 {
			m.Term = binary.BigEndian.Uint64(v)
		}
		for _, c := range []struct {
			name []byte
			dst  *int64
		}{{metaScheduled, &m.Scheduled}, {metaFinished, &m.Finished}} {
			v := b.Get(c.name)
			if v == nil {
				continue
			}
			main, _, _, err := decodeRev(v)
			if err != nil {
				return fmt.Errorf("meta %s: %w", c.name, err)
			}
			*c.dst = main
		}
		if cb := tx.Bucket(bucketCluster); cb != nil {
			m.ClusterVersion = string(cb.Get(clusterVersion))
		}
		return nil
	})
	return m, err
}

// Versions calls fn with every version in the key bucket, in revision order.
func (r *Reader) Versions(fn func(mvcc.ImportedVersion) error) error {
	return r.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketKey).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			main, sub, tomb, err := decodeRev(k)
			if err != nil {
				return err
			}
			kv := &mvccpb.KeyValue{}
			if err := proto.Unmarshal(v, kv); err != nil {
				return fmt.Errorf("%w: revision %d_%d: %v", ErrNotSnapshot, main, sub, err)
			}
			iv := mvcc.ImportedVersion{Key: kv.Key, Main: main, Sub: sub, Tombstone: tomb}
			if !tomb {
				if kv.ModRevision != main {
					return fmt.Errorf("%w: key %q stored at revision %d says mod revision %d", ErrNotSnapshot, kv.Key, main, kv.ModRevision)
				}
				iv.CreateRevision, iv.Version, iv.Lease, iv.Value = kv.CreateRevision, kv.Version, kv.Lease, kv.Value
			}
			if err := fn(iv); err != nil {
				return err
			}
		}
		return nil
	})
}

// Leases returns the lease bucket.
func (r *Reader) Leases() ([]lease.Record, error) {
	var out []lease.Record
	err := r.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLease)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			l := &leasepb.Lease{}
			if err := proto.Unmarshal(v, l); err != nil {
				return fmt.Errorf("%w: lease %x: %v", ErrNotSnapshot, k, err)
			}
			out = append(out, lease.Record{ID: l.ID, TTL: l.TTL, Remaining: l.RemainingTTL})
			return nil
		})
	})
	return out, err
}

// Auth returns the auth state.
func (r *Reader) Auth() (*auth.Snapshot, error) {
	s := &auth.Snapshot{}
	err := r.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketAuth); b != nil {
			if v := b.Get(authEnabled); len(v) == 1 && v[0] == 1 {
				s.Enabled = true
			}
			if v := b.Get(authRevision); len(v) == 8 {
				s.Revision = binary.BigEndian.Uint64(v)
			}
		}
		if b := tx.Bucket(bucketAuthUsers); b != nil {
			if err := b.ForEach(func(k, v []byte) error {
				u := &authpb.User{}
				if err := proto.Unmarshal(v, u); err != nil {
					return fmt.Errorf("%w: user %q: %v", ErrNotSnapshot, k, err)
				}
				s.Users = append(s.Users, u)
				return nil
			}); err != nil {
				return err
			}
		}
		if b := tx.Bucket(bucketAuthRoles); b != nil {
			return b.ForEach(func(k, v []byte) error {
				ro := &authpb.Role{}
				if err := proto.Unmarshal(v, ro); err != nil {
					return fmt.Errorf("%w: role %q: %v", ErrNotSnapshot, k, err)
				}
				s.Roles = append(s.Roles, ro)
				return nil
			})
		}
		return nil
	})
	return s, err
}

// Alarms returns the active alarms.
func (r *Reader) Alarms() ([]*pb.AlarmMember, error) {
	var out []*pb.AlarmMember
	err := r.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlarm)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			a := &pb.AlarmMember{}
			if err := proto.Unmarshal(k, a); err != nil {
				return fmt.Errorf("%w: alarm %x: %v", ErrNotSnapshot, k, err)
			}
			out = append(out, a)
			return nil
		})
	})
	return out, err
}
