package e2e

import (
	"testing"

	"github.com/coreos/go-semver/semver"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestStatusMemberListHealth(t *testing.T) {
	m, c, ctx := setup(t)
	mustPut(t, c, ctx, "k", "v")

	st, err := c.Status(ctx, m.ClientURL)
	check(t, "status", err)
	v, err := semver.NewVersion(st.Version)
	if err != nil {
		t.Fatalf("status version %q is not semver: %v", st.Version, err)
	}
	if v.LessThan(*semver.New("3.5.13")) {
		t.Fatalf("status version %s < 3.5.13 (clients gate features on it)", v)
	}
	if st.Header.MemberId == 0 || st.Header.ClusterId == 0 || st.Leader != st.Header.MemberId {
		t.Fatalf("status header %+v leader %x: a single member must lead itself", st.Header, st.Leader)
	}
	if st.Header.Revision != 2 || st.RaftTerm < 1 || st.RaftIndex < 1 || st.RaftAppliedIndex < 1 || st.DbSize <= 0 || st.DbSizeInUse <= 0 || st.IsLearner {
		t.Fatalf("status %+v", st)
	}

	ml, err := c.MemberList(ctx)
	check(t, "member list", err)
	if len(ml.Members) != 1 {
		t.Fatalf("member list %+v", ml.Members)
	}
	mem := ml.Members[0]
	if mem.ID != st.Header.MemberId || mem.Name != m.Name || mem.IsLearner ||
		!equalStrings(mem.PeerURLs, []string{m.PeerURL}) || !equalStrings(mem.ClientURLs, []string{m.ClientURL}) {
		t.Fatalf("member %+v", mem)
	}
	if ml.Header.ClusterId != st.Header.ClusterId {
		t.Fatalf("cluster id %x vs %x", ml.Header.ClusterId, st.Header.ClusterId)
	}

	hc := healthpb.NewHealthClient(c.ActiveConnection())
	hr, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	check(t, "grpc health check", err)
	if hr.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("grpc health %v, want SERVING", hr.Status)
	}
	_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("grpc health of an unknown service: %v, want NotFound", err)
	}
}

func TestHashKV(t *testing.T) {
	m, c, ctx := setup(t)
	hash := func(rev int64) *clientv3.HashKVResponse {
		t.Helper()
		r, err := c.HashKV(ctx, m.ClientURL, rev)
		check(t, "hashkv", err)
		return r
	}
	mustPut(t, c, ctx, "a", "1")
	p := mustPut(t, c, ctx, "b", "2")
	h1 := hash(0)
	if h1.HashRevision != p.Header.Revision || h1.CompactRevision != -1 {
		t.Fatalf("hashkv at head: hash_revision %d compact_revision %d, want %d and none", h1.HashRevision, h1.CompactRevision, p.Header.Revision)
	}
	if h := hash(0); h.Hash != h1.Hash {
		t.Fatalf("hashkv not deterministic: %d then %d", h1.Hash, h.Hash)
	}
	mustPut(t, c, ctx, "a", "3")
	h2 := hash(0)
	if h2.Hash == h1.Hash {
		t.Fatal("hashkv unchanged by a put")
	}
	// Hashing an older revision gives that revision's hash.
	if h := hash(p.Header.Revision); h.Hash != h1.Hash || h.HashRevision != p.Header.Revision {
		t.Fatalf("hashkv(%d) = %d at %d, want %d", p.Header.Revision, h.Hash, h.HashRevision, h1.Hash)
	}
	if h := hash(p.Header.Revision + 1); h.Hash != h2.Hash {
		t.Fatalf("hashkv(current) %d != hashkv(0) %d", h.Hash, h2.Hash)
	}
	_, err := c.HashKV(ctx, m.ClientURL, p.Header.Revision+5)
	requireErr(t, err, rpctypes.ErrFutureRev)
}

// TestHashKVAfterPhysicalCompact: once Compact(c, physical) has returned,
// HashKV(0) hashes from c (etcd answers compact_revision = c), also when c is
// the current revision, where a recorded compaction hash exists; HashKV(c)
// itself answers that recorded hash, whose compact_revision is the previous
// compaction's, as etcd does.
func TestHashKVAfterPhysicalCompact(t *testing.T) {
	m, c, ctx := setup(t)
	mustPut(t, c, ctx, "a", "1")
	c1 := mustPut(t, c, ctx, "a", "2").Header.Revision
	mustPut(t, c, ctx, "b", "1")
	_, err := c.Compact(ctx, c1, clientv3.WithCompactPhysical())
	check(t, "compact", err)
	h, err := c.HashKV(ctx, m.ClientURL, 0)
	check(t, "hashkv", err)
	if h.CompactRevision != c1 || h.HashRevision != c1+1 {
		t.Fatalf("hashkv(0) after compact(%d) below head: compact_revision %d hash_revision %d, want %d and %d", c1, h.CompactRevision, h.HashRevision, c1, c1+1)
	}
	c2 := mustPut(t, c, ctx, "a", "3").Header.Revision
	_, err = c.Compact(ctx, c2, clientv3.WithCompactPhysical())
	check(t, "compact", err)
	h, err = c.HashKV(ctx, m.ClientURL, 0)
	check(t, "hashkv", err)
	if h.CompactRevision != c2 || h.HashRevision != c2 {
		t.Fatalf("hashkv(0) after compact(%d) at head: compact_revision %d hash_revision %d, want %d and %d", c2, h.CompactRevision, h.HashRevision, c2, c2)
	}
	hc, err := c.HashKV(ctx, m.ClientURL, c2)
	check(t, "hashkv", err)
	if hc.CompactRevision != c1 || hc.HashRevision != c2 {
		t.Fatalf("hashkv(%d): compact_revision %d hash_revision %d, want the recorded hash (%d, %d)", c2, hc.CompactRevision, hc.HashRevision, c1, c2)
	}
}
