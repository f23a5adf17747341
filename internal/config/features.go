package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Feature gates known to etcd v3.7.3's server (server/features), with their
// defaults and maturity.
const (
	FeatureStopGRPCServiceOnDefrag      = "StopGRPCServiceOnDefrag"
	FeatureTxnModeWriteWithSharedBuffer = "TxnModeWriteWithSharedBuffer"
	FeatureInitialCorruptCheck          = "InitialCorruptCheck"
	FeatureCompactHashCheck             = "CompactHashCheck"
	FeatureLeaseCheckpoint              = "LeaseCheckpoint"
	FeatureLeaseCheckpointPersist       = "LeaseCheckpointPersist"
	FeatureSetMemberLocalAddr           = "SetMemberLocalAddr"
	FeatureFastLeaseKeepAlive           = "FastLeaseKeepAlive"
	FeaturePriorityRequest              = "PriorityRequest"

	// The two special gates that switch every alpha or beta gate at once.
	featureAllAlpha = "AllAlpha"
	featureAllBeta  = "AllBeta"
)

type featureSpec struct {
	def   bool
	stage string // ALPHA | BETA
}

func knownFeatures() map[string]featureSpec {
	return map[string]featureSpec{
		FeatureStopGRPCServiceOnDefrag:      {false, "ALPHA"},
		FeatureInitialCorruptCheck:          {false, "ALPHA"},
		FeatureCompactHashCheck:             {false, "ALPHA"},
		FeatureTxnModeWriteWithSharedBuffer: {true, "BETA"},
		FeatureLeaseCheckpoint:              {false, "ALPHA"},
		FeatureLeaseCheckpointPersist:       {false, "ALPHA"},
		FeatureSetMemberLocalAddr:           {false, "ALPHA"},
		FeatureFastLeaseKeepAlive:           {true, "BETA"},
		FeaturePriorityRequest:              {false, "ALPHA"},
	}
}

// FeatureGates is the --feature-gates setting: every known gate's state.
type FeatureGates struct {
	enabled map[string]bool
	// explicit are the gates the user named, for String.
	explicit map[string]bool
}

// DefaultFeatureGates has every gate at its default.
func DefaultFeatureGates() FeatureGates {
	fg := FeatureGates{enabled: map[string]bool{}, explicit: map[string]bool{}}
	for name, spec := range knownFeatures() {
		fg.enabled[name] = spec.def
	}
	return fg
}

// Enabled reports whether the named gate is on. Unknown gates are off.
func (f FeatureGates) Enabled(name string) bool { return f.enabled[name] }

// Map returns every gate's state.
func (f FeatureGates) Map() map[string]bool { return maps.Clone(f.enabled) }

// set applies "Name=bool,Name=bool" with etcd's rules: unknown names are an
// error, AllAlpha/AllBeta set every gate of that stage unless it is named
// explicitly.
func (f *FeatureGates) set(value string) error {
	given := map[string]bool{}
	for _, s := range strings.Split(value, ",") {
		if s == "" {
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		k = strings.TrimSpace(k)
		if !ok {
			return fmt.Errorf("missing bool value for %s", k)
		}
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("invalid value of %s=%s", k, strings.TrimSpace(v))
		}
		given[k] = b
	}
	known := knownFeatures()
	for k := range given {
		if _, ok := known[k]; !ok && k != featureAllAlpha && k != featureAllBeta {
			return fmt.Errorf("unrecognized feature gate: %s", k)
		}
	}
	for stage, gate := range map[string]string{"ALPHA": featureAllAlpha, "BETA": featureAllBeta} {
		all, ok := given[gate]
		if !ok {
			continue
		}
		for name, spec := range known {
			if spec.stage == stage {
				if _, named := given[name]; !named {
					f.enabled[name] = all
				}
			}
		}
	}
	for k, b := range given {
		if _, ok := known[k]; ok {
			f.enabled[k] = b
			f.explicit[k] = true
		}
	}
	return nil
}

func (f FeatureGates) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(f.explicit)) {
		parts = append(parts, fmt.Sprintf("%s=%t", k, f.enabled[k]))
	}
	return strings.Join(parts, ",")
}

// knownFeatureHelp lists the gates for --help, as etcd does.
func knownFeatureHelp() []string {
	known := knownFeatures()
	out := []string{
		featureAllAlpha + "=true|false (ALPHA - default=false)",
		featureAllBeta + "=true|false (BETA - default=false)",
	}
	for _, k := range slices.Sorted(maps.Keys(known)) {
		out = append(out, fmt.Sprintf("%s=true|false (%s - default=%t)", k, known[k].stage, known[k].def))
	}
	return out
}

type featureValue struct{ p *FeatureGates }

func (v featureValue) Set(s string) error {
	// Apply to a copy so that a bad list changes nothing.
	cp := FeatureGates{enabled: maps.Clone(v.p.enabled), explicit: maps.Clone(v.p.explicit)}
	if err := cp.set(s); err != nil {
		return err
	}
	*v.p = cp
	return nil
}
func (v featureValue) String() string {
	if v.p == nil {
		return ""
	}
	return v.p.String()
}

// featuresWithoutEffect are the gates metastore accepts, for etcd
// compatibility, without acting on them, with the reason; a gate the user
// names is logged once at start with it, so none is ignored silently.
func featuresWithoutEffect() map[string]string {
	return map[string]string{
		FeatureTxnModeWriteWithSharedBuffer: "in etcd it only lets a write transaction's compares and ranges read bbolt's shared read buffer instead of a copy, with the same results; metastore's transactions read from Pebble, which has no such buffer",
		FeaturePriorityRequest:              "in etcd it lets LeaseRevoke through the refusal of proposals while the applied index lags the committed index by more than 5000 entries; metastore has no such refusal (its overload limits are --max-requests-in-flight and --memory-limit-bytes), so there is nothing to let revocations through",
		FeatureLeaseCheckpoint:              "leases are always checkpointed: the remaining TTL survives leader changes, whatever this gate says",
		FeatureLeaseCheckpointPersist:       "lease checkpoints are always persisted: the remaining TTL survives restarts, whatever this gate says",
	}
}

// WithoutEffect returns the gates the user named (--feature-gates) that
// metastore does not act on, each with the reason, sorted by name.
func (f FeatureGates) WithoutEffect() []NoOp {
	var out []NoOp
	reasons := featuresWithoutEffect()
	for _, k := range slices.Sorted(maps.Keys(f.explicit)) {
		if r, ok := reasons[k]; ok {
			out = append(out, NoOp{Flag: "feature-gates=" + k, Reason: r})
		}
	}
	return out
}
