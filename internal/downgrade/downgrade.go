package downgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/coreos/go-semver/semver"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metastore/metastore/internal/storage"
)

// Info is the replicated downgrade state.
type Info struct {
	Enabled bool   `json:"enabled"`
	Target  string `json:"target-version,omitempty"` // major.minor.0 while enabled
}

// Load reads the downgrade state from r; none recorded means disabled.
func Load(r storage.Reader) (Info, error) {
	v, err := r.Get(storage.KeyDowngrade)
	if errors.Is(err, storage.ErrNotFound) {
		return Info{}, nil
	}
	if err != nil {
		return Info{}, fmt.Errorf("downgrade: read state: %w", err)
	}
	var in Info
	if err := json.Unmarshal(v, &in); err != nil {
		return Info{}, fmt.Errorf("downgrade: decode state %q: %w", v, err)
	}
	return in, nil
}

// Stage records the state a committed DowngradeInfoSet request sets.
func Stage(b storage.Batch, r *membershippb.DowngradeInfoSetRequest) error {
	in := Info{Enabled: r.GetEnabled()}
	if in.Enabled {
		in.Target = r.GetVer()
	}
	v, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("downgrade: encode state: %w", err)
	}
	if err := b.Set(storage.KeyDowngrade, v); err != nil {
		return fmt.Errorf("downgrade: stage state: %w", err)
	}
	return nil
}

// Raft is what the service needs from the replicated request path.
type Raft interface {
	LinearizableBarrier(ctx context.Context) error
	// ProposeDowngrade replicates r and returns once it is applied.
	ProposeDowngrade(ctx context.Context, r *membershippb.DowngradeInfoSetRequest) error
}

// Service answers Downgrade requests.
type Service struct {
	// ClusterVersion is the cluster version, major.minor.patch.
	ClusterVersion string
	State          storage.Reader
	Raft           Raft
	Logger         *zap.Logger
}

// Downgrade serves one request with etcd's answers and errors.
func (s *Service) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	switch r.GetAction() {
	case pb.DowngradeRequest_VALIDATE:
		if _, err := s.validate(ctx, r.GetVersion()); err != nil {
			return nil, err
		}
	case pb.DowngradeRequest_ENABLE:
		target, err := s.validate(ctx, r.GetVersion())
		if err != nil {
			s.Logger.Warn("reject downgrade request", zap.String("error", status.Convert(err).Message()))
			return nil, err
		}
		if err := s.Raft.ProposeDowngrade(ctx, &membershippb.DowngradeInfoSetRequest{Enabled: true, Ver: target.String()}); err != nil {
			return nil, err
		}
	case pb.DowngradeRequest_CANCEL:
		if err := s.cancel(ctx); err != nil {
			// etcd answers success and only logs why nothing was cancelled.
			s.Logger.Warn("failed to cancel downgrade", zap.String("error", status.Convert(err).Message()))
		}
	default:
		// etcd's error, which its gRPC layer does not map: codes.Unknown.
		return nil, status.Error(codes.Unknown, "etcdserver: unknown method")
	}
	return &pb.DowngradeResponse{Version: s.majorMinor()}, nil
}

// validate checks that target is the one version the cluster may go down
// to and that no downgrade is under way.
func (s *Service) validate(ctx context.Context, target string) (*semver.Version, error) {
	v, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	if err := s.Raft.LinearizableBarrier(ctx); err != nil {
		return nil, err
	}
	cv, err := semver.NewVersion(s.ClusterVersion)
	if err != nil {
		return nil, rpctypes.ErrGRPCClusterVersionUnavailable
	}
	if cv.Minor == 0 || v.Major != cv.Major || v.Minor != cv.Minor-1 {
		return nil, rpctypes.ErrGRPCInvalidDowngradeTargetVersion
	}
	in, err := Load(s.State)
	if err != nil {
		return nil, err
	}
	if in.Enabled {
		return nil, rpctypes.ErrGRPCDowngradeInProcess
	}
	return v, nil
}

func (s *Service) cancel(ctx context.Context) error {
	if err := s.Raft.LinearizableBarrier(ctx); err != nil {
		return err
	}
	in, err := Load(s.State)
	if err != nil {
		return err
	}
	if !in.Enabled {
		return rpctypes.ErrGRPCNoInflightDowngrade
	}
	return s.Raft.ProposeDowngrade(ctx, &membershippb.DowngradeInfoSetRequest{Enabled: false})
}

// majorMinor is the cluster version as etcd answers it ("3.7").
func (s *Service) majorMinor() string {
	cv, err := semver.NewVersion(s.ClusterVersion)
	if err != nil {
		return s.ClusterVersion
	}
	return fmt.Sprintf("%d.%d", cv.Major, cv.Minor)
}

// parseTarget accepts major.minor.patch or major.minor and keeps
// major.minor, as etcd does.
func parseTarget(s string) (*semver.Version, error) {
	v, err := semver.NewVersion(s)
	if err != nil {
		if v, err = semver.NewVersion(s + ".0"); err != nil {
			return nil, rpctypes.ErrGRPCWrongDowngradeVersionFormat
		}
	}
	return &semver.Version{Major: v.Major, Minor: v.Minor}, nil
}

// StatusInfo is the downgradeInfo of a Status response.
func StatusInfo(r storage.Reader) *pb.DowngradeInfo {
	in, err := Load(r)
	if err != nil || !in.Enabled {
		return &pb.DowngradeInfo{}
	}
	return &pb.DowngradeInfo{Enabled: true, TargetVersion: in.Target}
}
