package auth

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"

	"go.etcd.io/etcd/api/v3/authpb"
	"google.golang.org/protobuf/proto"

	"github.com/metastore/metastore/internal/storage"
)

// Snapshot is the whole auth state, as another store's snapshot (an etcd
// bbolt file) carries it.
type Snapshot struct {
	Enabled  bool
	Revision uint64
	Users    []*authpb.User
	Roles    []*authpb.Role
}

// ReadSnapshot reads the auth state r holds, users and roles by name.
func ReadSnapshot(r storage.Reader) (*Snapshot, error) {
	st, err := load(r)
	if err != nil {
		return nil, err
	}
	out := &Snapshot{Enabled: st.enabled, Revision: st.rev}
	for _, n := range sortedKeys(st.users) {
		out.Users = append(out.Users, st.users[n])
	}
	for _, n := range sortedKeys(st.roles) {
		out.Roles = append(out.Roles, st.roles[n])
	}
	return out, nil
}

// StageImport stages s into b, for a restore into an empty engine.
// Passwords stay the bcrypt hashes they were.
func StageImport(b storage.Batch, s *Snapshot) error {
	en := []byte{0}
	if s.Enabled {
		en[0] = 1
	}
	if err := b.Set(keyEnabled, en); err != nil {
		return fmt.Errorf("auth: stage import: %w", err)
	}
	if err := b.Set(keyRevision, binary.BigEndian.AppendUint64(nil, s.Revision)); err != nil {
		return fmt.Errorf("auth: stage import: %w", err)
	}
	for _, u := range s.Users {
		v, err := proto.Marshal(u)
		if err != nil {
			return fmt.Errorf("auth: stage import of user %q: %w", u.Name, err)
		}
		if err := b.Set(userKey(string(u.Name)), v); err != nil {
			return fmt.Errorf("auth: stage import: %w", err)
		}
	}
	for _, r := range s.Roles {
		r = proto.Clone(r).(*authpb.Role)
		// Permission checks rely on the order etcd keeps them in.
		sort.SliceStable(r.KeyPermission, func(i, j int) bool {
			return bytes.Compare(r.KeyPermission[i].Key, r.KeyPermission[j].Key) < 0
		})
		v, err := proto.Marshal(r)
		if err != nil {
			return fmt.Errorf("auth: stage import of role %q: %w", r.Name, err)
		}
		if err := b.Set(roleKey(string(r.Name)), v); err != nil {
			return fmt.Errorf("auth: stage import: %w", err)
		}
	}
	return nil
}
