package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/tests/v3/robustness/client"
	"go.etcd.io/etcd/tests/v3/robustness/identity"
	"go.etcd.io/etcd/tests/v3/robustness/model"
	"go.etcd.io/etcd/tests/v3/robustness/report"
	"go.etcd.io/etcd/tests/v3/robustness/traffic"
	"go.etcd.io/etcd/tests/v3/robustness/validate"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"golang.org/x/time/rate"
)

// trafficKind is one of etcd's traffic profiles with the request mix and
// rates used here: lower than etcd's CI, since the campaign shares two
// cores with the cluster it tests.
type trafficKind struct {
	name    string
	traffic traffic.Traffic
	profile traffic.Profile
}

var (
	keyValueShared = traffic.KeyValue{
		MinimalQPS: 50, MaximalQPS: 150, BurstableQPS: 150,
		MemberClientCount: 6, ClusterClientCount: 2, MaxNonUniqueRequestConcurrency: 3,
	}
	trafficKinds = []trafficKind{
		{"EtcdPutDeleteLease", traffic.EtcdPutDeleteLease, traffic.Profile{KeyValue: &keyValueShared, Watch: &traffic.WatchDefault, Compaction: &traffic.CompactionDefault}},
		{"Kubernetes", traffic.Kubernetes, traffic.Profile{KeyValue: &keyValueShared, Watch: &traffic.WatchDefault, Compaction: &traffic.CompactionDefault}},
		{"KubernetesCreateDelete", traffic.KubernetesCreateDelete, traffic.Profile{KeyValue: &keyValueShared, Watch: &traffic.WatchDefault, Compaction: &traffic.CompactionDefault}},
	}
)

// Scenario is one randomized run: everything random in it derives from
// Seed, so the same seed replays the same cluster, traffic kind, fault and
// fault timing (the requests themselves come from etcd's traffic
// generators, which draw from their own random source).
type Scenario struct {
	Seed    uint64
	Fault   Fault
	Traffic trafficKind
	Cluster ClusterConfig
	// Before and After are the traffic periods around the fault.
	Before, After time.Duration
	rnd           *rand.Rand
	// tamper, in the harness's own test only, changes the persisted
	// requests before validation, to show that validation catches it.
	tamper func([]model.EtcdRequest) []model.EtcdRequest
}

func (s Scenario) String() string {
	return fmt.Sprintf("seed=%d fault=%s traffic=%s members=%d snapshot-count=%d catchup=%d heartbeat=%dms election=%dms",
		s.Seed, s.Fault.Name(), s.Traffic.name, s.Cluster.Size, s.Cluster.SnapshotCount, s.Cluster.CatchupEntries, s.Cluster.HeartbeatMillis, s.Cluster.ElectionMillis)
}

// NewScenario derives a scenario from seed. faultName, if not empty, fixes
// the fault kind; otherwise it is drawn too.
func NewScenario(seed uint64, faultName string) (Scenario, error) {
	rnd := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := Scenario{Seed: seed, rnd: rnd}
	if faultName != "" {
		f, ok := FaultByName(faultName)
		if !ok {
			return s, fmt.Errorf("unknown fault %q", faultName)
		}
		s.Fault = f
	} else {
		s.Fault = Faults[rnd.IntN(len(Faults))]
	}
	s.Cluster.Size = 3
	if s.Fault.Available(ClusterConfig{Size: 1}) && rnd.IntN(4) == 0 {
		s.Cluster.Size = 1
	}
	s.Cluster.HeartbeatMillis = 20 + rnd.IntN(81)
	s.Cluster.ElectionMillis = s.Cluster.HeartbeatMillis * (5 + rnd.IntN(6))
	s.Cluster.SnapshotCount = 20 + rnd.IntN(481)
	if _, ok := s.Fault.(snapshotCatchup); ok {
		s.Cluster.SnapshotCount = 10 + rnd.IntN(41)
	}
	s.Cluster.CatchupEntries = 1 + rnd.IntN(s.Cluster.SnapshotCount/2)
	s.Traffic = trafficKinds[rnd.IntN(len(trafficKinds))]
	switch s.Fault.(type) {
	case leaderChurn:
		s.Traffic = trafficKinds[0] // the lease-heavy one
	case defragFault:
		s.Traffic.profile.Compaction = &traffic.CompactionFrequent
	}
	if cf, ok := s.Fault.(configurer); ok {
		cf.configure(&s)
	}
	s.Before = between(rnd, 700*time.Millisecond, 1500*time.Millisecond)
	s.After = between(rnd, 500*time.Millisecond, 1000*time.Millisecond)
	return s, nil
}

// Result sums up a run for the campaign table.
type Result struct {
	Scenario   Scenario
	Injected   string
	OK, Failed int
	Validation string
	Dir        string // where the history, data and logs were kept
	Err        error
}

// Row is the campaign table line.
func (r Result) Row() string {
	return fmt.Sprintf("| %d | %s | %s | %d | %s | %d | %d | %s |", r.Scenario.Seed, r.Scenario.Fault.Name(), r.Scenario.Traffic.name,
		r.Scenario.Cluster.Size, strings.ReplaceAll(r.Injected, "|", "/"), r.OK, r.Failed, r.Validation)
}

// resultsDir is where a failed (or, with ROBUSTNESS_KEEP=1, every) run
// keeps its history, member data dirs and logs, and porcupine's HTML.
func resultsDir(seed uint64) string {
	base := os.Getenv("ROBUSTNESS_RESULTS_DIR")
	if base == "" {
		base = filepath.Join(os.TempDir(), "metastore-robustness")
	}
	return filepath.Join(base, fmt.Sprintf("seed-%d", seed))
}

// Run runs the scenario on a fresh cluster and validates its history. It
// reports failures through t and returns the summary.
func Run(t *testing.T, s Scenario) Result {
	res := run(t, s)
	if res.Err != nil {
		t.Errorf("%s: %v", s, res.Err)
	}
	return res
}

// run is Run without failing t.
func run(t *testing.T, s Scenario) Result {
	res := Result{Scenario: s, Validation: "not validated"}
	lg := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	t.Logf("scenario %s", s)
	c := StartCluster(t, s.Cluster)
	reports, injected, err := runTraffic(ctx, t, lg, c, s)
	res.Injected = injected
	for _, r := range reports {
		for _, op := range r.KeyValue {
			if op.Output.(model.MaybeEtcdResponse).Error != "" {
				res.Failed++
			} else {
				res.OK++
			}
		}
	}
	if err == nil {
		err = checkHashKV(ctx, c)
	}
	c.StopAll()
	var persisted []model.EtcdRequest
	if err == nil {
		var dirs []string
		for _, d := range c.DataDirs() {
			dirs = append(dirs, d)
		}
		slices.Sort(dirs)
		persisted, err = PersistedRequests(dirs)
		if err == nil && s.tamper != nil {
			persisted = s.tamper(persisted)
		}
	}
	var vr validate.RobustnessResult
	if err == nil {
		vr = validate.ValidateAndReturnVisualize(lg, validate.Config{ExpectRevisionUnique: s.Traffic.traffic.ExpectUniqueRevision()}, reports, persisted, 2*time.Minute)
		err = checkAllSucceeded(vr)
		res.Validation = validationSummary(vr)
	}
	if err != nil {
		res.Err = err
		if res.Validation == "not validated" {
			res.Validation = "FAILED: " + err.Error()
		}
	}
	if err != nil || os.Getenv("ROBUSTNESS_KEEP") == "1" {
		res.Dir = resultsDir(s.Seed)
		if kerr := keep(lg, res.Dir, c, reports, s, vr); kerr != nil {
			t.Errorf("keeping results in %s: %v", res.Dir, kerr)
		}
		t.Logf("history, data dirs, logs and visualization kept in %s", res.Dir)
	}
	return res
}

// checkAllSucceeded accepts only Success from every validation: etcd's
// Result.Error lets Unknown through, and a porcupine Timeout is no proof.
func checkAllSucceeded(r validate.RobustnessResult) error {
	for _, v := range []struct {
		name string
		res  validate.Result
	}{{"assumptions", r.Assumptions}, {"linearization", r.Linearization.Result}, {"watch", r.Watch}, {"serializable", r.Serializable}} {
		if v.res.Status != validate.Success {
			return fmt.Errorf("%s: %s", v.name, v.res)
		}
	}
	return nil
}

func validationSummary(r validate.RobustnessResult) string {
	return fmt.Sprintf("lin %s, watch %s, serializable %s", r.Linearization.Status, r.Watch.Status, r.Serializable.Status)
}

// runTraffic drives etcd's traffic, watch and compaction loops, injects
// the fault on this goroutine in the middle, and returns every client's
// report.
func runTraffic(ctx context.Context, t *testing.T, lg *zap.Logger, c *Cluster, s Scenario) ([]report.ClientReport, string, error) {
	if _, ok := s.Fault.(replaceMember); ok {
		c.replaceVictim = c.Members[s.rnd.IntN(len(c.Members))]
	}
	endpoints := c.Endpoints()
	var watchEndpoints []string
	for _, m := range c.Members {
		if m != c.replaceVictim {
			watchEndpoints = append(watchEndpoints, m.ClientURL)
		}
	}
	ids := identity.NewIDProvider()
	baseTime := time.Now()
	trafficSet := client.NewSet(ids, baseTime)
	defer trafficSet.Close()
	watchSet := client.NewSet(ids, baseTime)
	defer watchSet.Close()
	if err := traffic.CheckEmptyDatabaseAtStart(ctx, lg, endpoints, trafficSet); err != nil {
		return nil, "", fmt.Errorf("database at start: %w", err)
	}
	p := s.Traffic.profile
	limiter := rate.NewLimiter(rate.Limit(p.KeyValue.MaximalQPS), p.KeyValue.BurstableQPS)
	finish := make(chan struct{})
	keyStore := traffic.NewKeyStore(10, "key")
	k8s := traffic.NewKubernetesStorage()
	// Some of etcd's requests (the Kubernetes profile's Get) wait on the
	// caller's context only: one pinned to a member removed for good
	// would wait forever, so the traffic gets a context of its own that
	// is cancelled shortly after it was told to finish.
	tctx, tcancel := context.WithCancel(ctx)
	defer tcancel()
	var wg sync.WaitGroup
	err := traffic.SimulateKeyValueTraffic(tctx, &wg, p.KeyValue, endpoints, trafficSet, s.Traffic.traffic, traffic.RunTrafficLoopParam{
		QPSLimiter: limiter, IDs: ids, LeaseIDStorage: identity.NewLeaseIDStorage(),
		NonUniqueRequestConcurrencyLimiter: traffic.NewConcurrencyLimiter(p.KeyValue.MaxNonUniqueRequestConcurrency),
		KeyStore:                           keyStore, Storage: k8s, Finish: finish,
	})
	if err == nil {
		err = traffic.SimulateWatchTraffic(tctx, &wg, p.Watch, endpoints, trafficSet, s.Traffic.traffic, traffic.RunWatchLoopParam{
			Config: *p.Watch, QPSLimiter: limiter, KeyStore: keyStore, Storage: k8s, Finish: finish, Logger: lg,
		})
	}
	if err == nil {
		err = traffic.SimulateCompactionTraffic(tctx, &wg, p.Compaction, endpoints, trafficSet, s.Traffic.traffic, traffic.RunCompactLoopParam{Period: p.Compaction.Period, Finish: finish})
	}
	maxRevision := make(chan int64, 1)
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- client.CollectClusterWatchEvents(ctx, client.CollectClusterWatchEventsParam{
			Lg: lg, Endpoints: watchEndpoints, MaxRevisionChan: maxRevision, ClientSet: watchSet,
		})
	}()
	var injected string
	if err == nil {
		err = pause(ctx, s.Before)
	}
	if err == nil {
		injected, err = s.Fault.Inject(ctx, c, s.rnd)
		if err != nil {
			err = fmt.Errorf("inject %s: %w", s.Fault.Name(), err)
		}
	}
	if err == nil {
		err = c.WaitHealthy(ctx, 60*time.Second)
	}
	if err == nil {
		err = pause(ctx, s.After)
	}
	close(finish)
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		tcancel()
		<-stopped
	}
	if err == nil {
		err = lastWriteSucceeds(ctx, trafficSet, c.Endpoints())
	}
	trafficReports := trafficSet.Reports()
	maxRevision <- report.OperationsMaxRevision(trafficReports)
	close(maxRevision)
	select {
	case werr := <-watchDone:
		if err == nil && werr != nil {
			err = fmt.Errorf("collecting watch events: %w", werr)
		}
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("collecting watch events: %w", ctx.Err())
		}
	}
	return slices.Concat(trafficReports, watchSet.Reports()), injected, err
}

// lastWriteSucceeds writes the tombstone key until a write succeeds: etcd's
// validation needs the history to end with a successful write, so that
// every earlier request is decided. Failed attempts stay in the history.
func lastWriteSucceeds(ctx context.Context, set *client.ClientSet, endpoints []string) error {
	cc, err := set.NewClient(endpoints)
	if err != nil {
		return err
	}
	defer cc.Close()
	return retry(ctx, 60*time.Second, func(ctx context.Context) error {
		_, err := cc.Put(ctx, "tombstone", "true")
		return err
	})
}

// checkHashKV compares HashKV of every member at the same revision.
func checkHashKV(ctx context.Context, c *Cluster) error {
	cl, err := c.client(c.Endpoints()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var rev int64
	var first *clientv3.HashKVResponse
	var firstName string
	return retry(ctx, 30*time.Second, func(ctx context.Context) error {
		rev, first = 0, nil
		for _, m := range c.Members {
			h, err := cl.HashKV(ctx, m.ClientURL, rev)
			if err != nil {
				return fmt.Errorf("HashKV %s: %w", m.Name, err)
			}
			if first == nil {
				first, firstName, rev = h, m.Name, h.Header.Revision
				continue
			}
			if h.Hash != first.Hash || h.CompactRevision != first.CompactRevision {
				return errors.Join(errHashMismatch, fmt.Errorf("at revision %d: %s hash %d compact %d, %s hash %d compact %d",
					rev, firstName, first.Hash, first.CompactRevision, m.Name, h.Hash, h.CompactRevision))
			}
		}
		return nil
	})
}

var errHashMismatch = errors.New("members disagree on HashKV")

// keep saves what a failed run needs to be understood: the client reports
// (history), the members' data dirs (through etcd's report package), the
// members' logs and porcupine's visualization.
func keep(lg *zap.Logger, dir string, c *Cluster, reports []report.ClientReport, s Scenario, vr validate.RobustnessResult) error {
	r, err := report.NewTestReport(lg, dir, c.DataDirs(), &report.TrafficDetail{ExpectUniqueRevision: s.Traffic.traffic.ExpectUniqueRevision()})
	if err != nil {
		return err
	}
	r.SetClientReports(reports)
	if err := r.Finalize(true, false); err != nil {
		return err
	}
	var errs []error
	for _, m := range c.Every {
		if b, err := os.ReadFile(m.LogPath); err == nil {
			errs = append(errs, os.WriteFile(filepath.Join(dir, m.Name+".log"), b, 0o644))
		}
	}
	errs = append(errs, os.WriteFile(filepath.Join(dir, "scenario.txt"), []byte(s.String()+"\n"), 0o644))
	if vr.Linearization.Model.Init != nil {
		errs = append(errs, porcupine.VisualizePath(vr.Linearization.Model, vr.Linearization.Info, filepath.Join(dir, "history.html")))
	}
	return errors.Join(errs...)
}
