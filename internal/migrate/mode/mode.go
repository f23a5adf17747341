package mode

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/metastore/metastore/internal/storage"
)

// Key holds the Marker, JSON-encoded, while the cluster follows etcd.
var Key = storage.MetaKey("migrate")

// FieldEnd is the InternalRaftRequest field number of the end request: a
// bytes field holding the token. It lies far above etcd's field numbers
// (the largest is 9900), so no etcd request can carry it.
const FieldEnd protowire.Number = 59001

// Marker is the migration state of a cluster that follows etcd.
type Marker struct {
	// Token authorises the follower's writes and the cut-over.
	Token string `json:"token"`
	// Revision is the etcd revision the cluster was restored at.
	Revision int64 `json:"revision"`
}

// ErrBadToken is the result of an end request with another token.
var ErrBadToken = status.Error(codes.PermissionDenied, "metastore: migration cut-over needs the migration token")

// Stage puts the cluster in migration mode: restore calls it on each
// member's engine before the member first starts.
func Stage(b storage.Batch, m Marker) error {
	if m.Token == "" {
		return errors.New("mode: empty migration token")
	}
	v, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("mode: %w", err)
	}
	if err := b.Set(Key, v); err != nil {
		return fmt.Errorf("mode: stage marker: %w", err)
	}
	return nil
}

// Load returns r's marker, nil when the cluster does not follow etcd.
// known is false while r holds no applied state yet (a member that joined
// and has not received the cluster's state): whether it migrates is then
// unknown.
func Load(r storage.Reader) (m *Marker, known bool, err error) {
	if _, err := r.Get(storage.KeyAppliedIndex); errors.Is(err, storage.ErrNotFound) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, fmt.Errorf("mode: read applied index: %w", err)
	}
	v, err := r.Get(Key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("mode: read marker: %w", err)
	}
	m = &Marker{}
	if err := json.Unmarshal(v, m); err != nil || m.Token == "" {
		return nil, false, fmt.Errorf("mode: migration marker %q is damaged: %v", Key, err)
	}
	return m, true, nil
}

// EndRequest is the Raft request that ends migration mode on every member.
func EndRequest(token string) *pb.InternalRaftRequest {
	r := &pb.InternalRaftRequest{}
	var f []byte
	f = protowire.AppendTag(f, FieldEnd, protowire.BytesType)
	f = protowire.AppendString(f, token)
	r.ProtoReflect().SetUnknown(f)
	return r
}

// IsEnd returns the token of an end request; ok is false for any other
// request.
func IsEnd(r *pb.InternalRaftRequest) (token string, ok bool) {
	b := r.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		if num == FieldEnd && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return "", false
			}
			return string(v), true
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return "", false
		}
		b = b[m:]
	}
	return "", false
}

// StageEnd applies an end request: it removes the marker in b when token is
// the marker's. Ending a cluster that no longer migrates is a no-op (the
// cut-over is sent to every member, so it may be committed more than once).
// A wrong token is the request's failure (ErrBadToken), not the applier's.
func StageEnd(b storage.Batch, r storage.Reader, token string) (failure error, err error) {
	v, err := r.Get(Key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mode: read marker: %w", err)
	}
	var m Marker
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, fmt.Errorf("mode: migration marker %q is damaged: %w", Key, err)
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(m.Token)) != 1 {
		return ErrBadToken, nil
	}
	if err := b.Delete(Key); err != nil {
		return nil, fmt.Errorf("mode: delete marker: %w", err)
	}
	return nil, nil
}
