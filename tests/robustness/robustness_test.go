package robustness

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.etcd.io/etcd/tests/v3/robustness/model"

	"github.com/metastore/metastore/tests/framework"
)

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

// ciSeeds is the short campaign CI runs: one scenario per fault kind, on
// fixed seeds (each seed fixes the cluster shape, traffic kind and fault
// timing). Every one must validate in full.
var ciSeeds = map[string]uint64{
	"kill-leader":        1,
	"kill-follower":      2,
	"sigstop-leader":     3,
	"restart":            4,
	"net-blackhole-both": 5,
	"net-blackhole-in":   6,
	"net-delay-both":     7,
	"net-delay-in":       8,
	"net-drop-both":      9,
	"net-drop-in":        10,
	"move-leader":        11,
	"replace-member":     12,
	"defrag-compact":     13,
	"snapshot-catchup":   14,
	"lease-leader-churn": 15,
}

// failpointSeeds is the same for the failpoint and disk fault kinds (the
// server built with -tags failpoints). Each seed also fixes which
// failpoint of the kind's group fires, on which member.
var failpointSeeds = map[string]uint64{
	"fp-panic-raft":        16,
	"fp-panic-apply":       17,
	"fp-panic-compact":     18,
	"fp-panic-snapshot":    19,
	"fp-panic-conf-change": 20,
	"fp-panic-watch":       21,
	"fp-sleep-watch":       22,
	"disk-slow-raft-sync":  23,
	"disk-slow-commit":     24,
}

// TestRobustnessCI runs one scenario per fault kind that needs no
// failpoints.
func TestRobustnessCI(t *testing.T) {
	runEach(t, baseFaults, ciSeeds)
}

// TestRobustnessFailpointsCI runs one scenario per failpoint and disk fault
// kind: each fault checks that it fired (the member's log names the
// failpoint it panicked at, or gofail counts the sleeps) and the run that
// the cluster recovered and its history validates in full.
func TestRobustnessFailpointsCI(t *testing.T) {
	runEach(t, failpointFaults, failpointSeeds)
}

func runEach(t *testing.T, faults []Fault, seeds map[string]uint64) {
	if len(seeds) != len(faults) {
		t.Fatalf("the seeds cover %d fault kinds, the list has %d", len(seeds), len(faults))
	}
	for _, f := range faults {
		t.Run(f.Name(), func(t *testing.T) {
			seed, ok := seeds[f.Name()]
			if !ok {
				t.Fatalf("no CI seed for %s", f.Name())
			}
			s, err := NewScenario(seed, f.Name())
			if err != nil {
				t.Fatal(err)
			}
			res := Run(t, s)
			fmt.Println("ROBUSTNESS-ROW", res.Row())
		})
	}
}

// TestRobustnessSeed runs the scenario of ROBUSTNESS_SEED (and, if set,
// the fault kind ROBUSTNESS_FAULT): campaign.sh calls it once per seed,
// and it replays a failed run by its seed.
func TestRobustnessSeed(t *testing.T) {
	v := os.Getenv("ROBUSTNESS_SEED")
	if v == "" {
		t.Skip("set ROBUSTNESS_SEED (campaign.sh does)")
	}
	seed, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil {
		t.Fatalf("ROBUSTNESS_SEED=%q: %v", v, err)
	}
	s, err := NewScenario(seed, os.Getenv("ROBUSTNESS_FAULT"))
	if err != nil {
		t.Fatal(err)
	}
	res := Run(t, s)
	fmt.Println("ROBUSTNESS-ROW", res.Row())
}

// TestValidationCatchesLostWrite runs a scenario, then removes from the
// persisted requests a write that a client saw succeed, as if the cluster
// had lost it: the validation must fail. It shows that a run that passes
// was really checked against the log.
func TestValidationCatchesLostWrite(t *testing.T) {
	t.Setenv("ROBUSTNESS_RESULTS_DIR", t.TempDir()) // the failure is expected: keep nothing
	s, err := NewScenario(ciSeeds["restart"], "restart")
	if err != nil {
		t.Fatal(err)
	}
	dropped := 0
	s.tamper = func(reqs []model.EtcdRequest) []model.EtcdRequest {
		for i := len(reqs) / 2; i < len(reqs); i++ {
			if r := reqs[i]; r.Type == model.Txn && len(r.Txn.Conditions) == 0 && len(r.Txn.OperationsOnSuccess) == 1 && r.Txn.OperationsOnSuccess[0].Type == model.PutOperation {
				dropped++
				return slices.Delete(reqs, i, i+1)
			}
		}
		return reqs
	}
	res := run(t, s)
	if dropped != 1 {
		t.Fatalf("no plain put to drop among the persisted requests")
	}
	if res.Err == nil {
		t.Fatalf("validation passed with a persisted put removed: %s", res.Validation)
	}
	t.Logf("validation failed as it must: %v", res.Err)
}
