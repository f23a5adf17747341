package config

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

// TestEveryFlagActedOnOrNoOp is issue 14's "done means": every flag is
// acted on, except the bbolt/WAL-file-only flags, which are documented
// no-ops (noOps) that log their reason once.
func TestEveryFlagActedOnOrNoOp(t *testing.T) {
	var idle []string
	for name, impl := range implemented {
		if !impl && noOps[name] == "" {
			idle = append(idle, name)
		}
	}
	if len(idle) != 0 {
		slices.Sort(idle)
		t.Errorf("flags accepted but not acted on: %s", strings.Join(idle, ", "))
	}
	for name := range noOps {
		if implemented[name] {
			t.Errorf("--%s is both acted on and a documented no-op", name)
		}
	}
	// The knobs of etcd's bbolt backend and WAL/snapshot files are the
	// documented no-ops, each logged once when set (NoOpSet).
	bbolt := []string{"max-wals", "max-snapshots", "backend-batch-interval", "backend-batch-limit",
		"backend-bbolt-freelist-type"}
	if got := slices.Sorted(maps.Keys(noOps)); !slices.Equal(got, slices.Sorted(slices.Values(bbolt))) {
		t.Errorf("documented no-ops %v, want exactly the bbolt/WAL knobs %v", got, bbolt)
	}
	c := mustParse(t, []string{"--backend-bbolt-freelist-type", "array"}, nil)
	if n := c.NoOpSet(); len(n) != 1 || n[0].Flag != "backend-bbolt-freelist-type" || n[0].Reason == "" {
		t.Errorf("NoOpSet() = %v, want backend-bbolt-freelist-type with its reason", n)
	}
}

// TestEveryFeatureGateActedOnOrLogged checks that every gate is either
// read by the server or, when named, logged with the reason it has no
// effect (FeatureGates.WithoutEffect), so none is ignored silently.
func TestEveryFeatureGateActedOnOrLogged(t *testing.T) {
	actedOn := []string{FeatureInitialCorruptCheck, FeatureCompactHashCheck, FeatureSetMemberLocalAddr, FeatureFastLeaseKeepAlive, FeatureStopGRPCServiceOnDefrag}
	reasons := featuresWithoutEffect()
	for name := range knownFeatures() {
		if _, logged := reasons[name]; logged == slices.Contains(actedOn, name) {
			t.Errorf("gate %s: acted on %v, logged as without effect %v; want exactly one", name, slices.Contains(actedOn, name), logged)
		}
	}
	c := mustParse(t, []string{"--feature-gates", "LeaseCheckpoint=true,LeaseCheckpointPersist=true,InitialCorruptCheck=true"}, nil)
	var got []string
	for _, n := range c.Features.WithoutEffect() {
		got = append(got, n.Flag)
	}
	if want := []string{"feature-gates=LeaseCheckpoint", "feature-gates=LeaseCheckpointPersist"}; !slices.Equal(got, want) {
		t.Errorf("WithoutEffect() = %v, want %v", got, want)
	}
}
