//go:build kubernetes

package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/tests/framework"
)

const (
	ns          = "metastore-e2e"
	cmPath      = "/api/v1/namespaces/" + ns + "/configmaps"
	numObjects  = 40 // configmaps the writer creates
	numUpdates  = 3  // updates of each
	deleteEvery = 4  // every 4th configmap is deleted at the end
	deleted     = "<deleted>"
)

// TestKubernetesOnMetastore drives kube-apiserver on a TLS metastore cluster
// through kubectl and the REST API, with a leader move and a member restart
// in the middle of a stream of writes.
func TestKubernetesOnMetastore(t *testing.T) {
	e := startEnv(t)

	// Namespaces: create one to work in, and one to delete with its content.
	e.mustKubectl("", "create", "namespace", ns)
	e.mustKubectl("", "create", "namespace", "doomed")
	e.mustKubectl("", "create", "configmap", "x", "-n", "doomed", "--from-literal=k=v")
	e.mustKubectl("", "delete", "configmap", "x", "-n", "doomed")
	e.mustKubectl("", "delete", "namespace", "doomed", "--wait=false")
	var doomed object
	mustJSON(t, e.mustDo(http.MethodGet, "/api/v1/namespaces/doomed", nil, http.StatusOK), &doomed)
	if doomed.Status.Phase != "Terminating" || doomed.Metadata.DeletionTimestamp == nil {
		t.Fatalf("deleted namespace: phase %q deletionTimestamp %v, want Terminating", doomed.Status.Phase, doomed.Metadata.DeletionTimestamp)
	}
	// No controller-manager runs the namespace controller: finalize it as
	// that controller would once the namespace is empty.
	e.mustDo(http.MethodPut, "/api/v1/namespaces/doomed/finalize", map[string]any{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": "doomed"}, "spec": map[string]any{"finalizers": []string{}},
	}, http.StatusOK)
	if err := framework.WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		code, _, err := e.do(http.MethodGet, "/api/v1/namespaces/doomed", nil)
		return err == nil && code == http.StatusNotFound, nil
	}); err != nil {
		t.Fatalf("namespace doomed still there after finalize: %v", err)
	}

	// Pods: no scheduler or kubelet, so they stay Pending; an unscheduled
	// pod is deleted at once.
	for i := range 3 {
		e.mustKubectl(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: pod-%d, namespace: %s}
spec:
  containers: [{name: c, image: registry.k8s.io/pause:3.10}]
`, i, ns), "apply", "-f", "-")
	}
	out := e.mustKubectl("", "get", "pods", "-n", ns, "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.phase} {end}")
	if strings.TrimSpace(out) != "pod-0=Pending pod-1=Pending pod-2=Pending" {
		t.Fatalf("pods: %q", out)
	}
	e.mustKubectl("", "delete", "pod", "pod-1", "-n", ns)
	out = e.mustKubectl("", "get", "pods", "-n", ns, "-o", "name")
	if strings.Fields(out) == nil || strings.Join(strings.Fields(out), " ") != "pod/pod-0 pod/pod-2" {
		t.Fatalf("pods after deleting pod-1: %q", out)
	}

	// A watch opened before any configmap write and before the faults.
	var initial list
	mustJSON(t, e.mustDo(http.MethodGet, cmPath, nil, http.StatusOK), &initial)
	w := e.watch(cmPath, initial.Metadata.ResourceVersion)
	defer w.close()
	// kube-root-ca.crt is written by a controller we do not run: the
	// namespace starts with no configmaps.
	if len(initial.Items) != 0 {
		t.Fatalf("fresh namespace has %d configmaps", len(initial.Items))
	}

	wr := &writer{e: e, applied: map[string][]string{}}
	progress := make(chan int, numObjects*(numUpdates+2))
	done := make(chan error, 1)
	go func() { done <- wr.run(progress) }()

	// Faults under the load: move the leader after a quarter of the writes,
	// restart the new leader after half of them.
	total := numObjects*(1+numUpdates) + numObjects/deleteEvery
	moved, restarted := false, false
	var writeErr error
loop:
	for {
		select {
		case n := <-progress:
			if !moved && n >= total/4 {
				moved = true
				to := moveLeader(t, e)
				t.Logf("after %d writes: moved the metastore leader to %s", n, to.Name)
			}
			if moved && !restarted && n >= total/2 {
				restarted = true
				leader := findLeader(t, e)
				t.Logf("after %d writes: restarting the leader %s", n, leader.Name)
				leader.Restart()
			}
		case writeErr = <-done:
			break loop
		case <-time.After(5 * time.Minute):
			t.Fatalf("writer stuck")
		}
	}
	if writeErr != nil {
		t.Fatal(writeErr)
	}
	if !moved || !restarted {
		t.Fatalf("faults not injected (moved %v restarted %v)", moved, restarted)
	}
	t.Logf("writer: %d writes, %d retried after a transient error", wr.writes, wr.retries)

	// Optimistic concurrency: an update with a stale resourceVersion is
	// refused with 409 Conflict, after the faults as before.
	conflict(t, e, wr, "cm-1")

	// Every change exactly once, in order, per object; resourceVersions
	// increase along the stream.
	want := wr.appliedCopy()
	var events []watchEvent
	if err := framework.WaitFor(60*time.Second, 100*time.Millisecond, func() (bool, error) {
		var err error
		events, _, err = w.snapshot()
		return len(events) >= wr.writes, err
	}); err != nil {
		t.Fatalf("watch saw %d of %d changes: %v", len(events), wr.writes, err)
	}
	_, resumes, _ := w.snapshot()
	got := map[string][]string{}
	var lastRV uint64
	for _, ev := range events {
		rv, err := strconv.ParseUint(ev.Object.Metadata.ResourceVersion, 10, 64)
		if err != nil || rv <= lastRV {
			t.Fatalf("watch event %s %s: resourceVersion %q after %d", ev.Type, ev.Object.Metadata.Name, ev.Object.Metadata.ResourceVersion, lastRV)
		}
		lastRV = rv
		v := ev.Object.Data["v"]
		if ev.Type == "DELETED" {
			v = deleted
		}
		got[ev.Object.Metadata.Name] = append(got[ev.Object.Metadata.Name], v)
	}
	if len(events) != wr.writes {
		t.Errorf("watch saw %d events for %d writes", len(events), wr.writes)
	}
	for name, vs := range want {
		if strings.Join(got[name], ",") != strings.Join(vs, ",") {
			t.Errorf("watch of %s: %v, written %v", name, got[name], vs)
		}
	}
	t.Logf("watch: %d events, exactly the %d writes in order (stream resumed %d times)", len(events), wr.writes, resumes)

	// The apiserver's own compactor (every 10s here) keeps its state in
	// compact_rev_key; the version counts its rounds, and from the second
	// round on each compacts the store. Wait for one compaction so that the
	// lists below run on a compacted store.
	c := e.clientOf(0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var rounds int64
	var compacted string
	if err := framework.WaitFor(45*time.Second, 250*time.Millisecond, func() (bool, error) {
		cr, err := c.Get(ctx, "compact_rev_key")
		if err != nil || len(cr.Kvs) == 0 {
			return false, err
		}
		rounds, compacted = cr.Kvs[0].Version, string(cr.Kvs[0].Value)
		return rounds >= 2, nil
	}); err != nil {
		t.Fatalf("kube-apiserver's compactor: %d rounds: %v", rounds, err)
	}
	t.Logf("kube-apiserver's compactor: %d rounds, compacted metastore at revision %s", rounds, compacted)

	// Lists after the faults equal what was written: a consistent list (from
	// the watch cache), a paginated one, kubectl with and without chunks.
	expect := map[string]string{}
	for name, vs := range want {
		if last := vs[len(vs)-1]; last != deleted {
			expect[name] = last
		}
	}
	var consistent list
	mustJSON(t, e.mustDo(http.MethodGet, cmPath, nil, http.StatusOK), &consistent)
	checkItems(t, "consistent list", consistent.Items, expect)
	checkItems(t, "paginated list", pagedList(t, e, 7), expect)
	for _, chunk := range []string{"0", "7"} {
		out, errOut, err := e.kubectlRun("", "get", "configmaps", "-n", ns, "-o", "json", "--chunk-size="+chunk, "-v=6")
		if err != nil {
			t.Fatalf("kubectl get --chunk-size=%s: %v\n%s", chunk, err, errOut)
		}
		var l list
		mustJSON(t, []byte(out), &l)
		checkItems(t, "kubectl get --chunk-size="+chunk, l.Items, expect)
		pages := strings.Count(errOut, "continue=") + 1
		if wantPages := 1 + (len(expect)-1)/7; chunk == "7" && pages != wantPages {
			t.Errorf("kubectl --chunk-size=7 fetched %d pages, want %d", pages, wantPages)
		}
	}
	// The same objects are in metastore under the apiserver's prefix.
	resp, err := c.Get(ctx, "/registry/configmaps/"+ns+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != int64(len(expect)) {
		t.Errorf("metastore holds %d configmaps under /registry/configmaps/%s/, want %d", resp.Count, ns, len(expect))
	}

	// The namespace with everything in it goes to Terminating.
	e.mustKubectl("", "delete", "namespace", ns, "--wait=false")
	var nsObj object
	mustJSON(t, e.mustDo(http.MethodGet, "/api/v1/namespaces/"+ns, nil, http.StatusOK), &nsObj)
	if nsObj.Status.Phase != "Terminating" {
		t.Errorf("namespace %s after delete: phase %q", ns, nsObj.Status.Phase)
	}
	checkConsistentReadsFromCache(t, e)
	reportStorageErrors(t, e)
}

// checkConsistentReadsFromCache checks that the consistent configmap lists
// above were served from the watch cache, not by falling back to a quorum
// read: the cache can only do that when the store answers the progress
// requests it sends to learn it is as fresh as the store's revision.
func checkConsistentReadsFromCache(t *testing.T, e *env) {
	t.Helper()
	b := e.mustDo(http.MethodGet, "/metrics", nil, http.StatusOK)
	re := regexp.MustCompile(`(?m)^apiserver_watch_cache_consistent_read_total\{fallback="(\w+)",group="",resource="configmaps",success="(\w+)"\} (\d+)$`)
	counts := map[string]int{}
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		n, _ := strconv.Atoi(m[3])
		counts["fallback="+m[1]+",success="+m[2]] += n
	}
	t.Logf("consistent configmap reads from the watch cache: %v", counts)
	if counts["fallback=false,success=true"] == 0 {
		t.Errorf("no consistent read of configmaps was served from the watch cache: %v", counts)
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}

// checkItems compares configmaps with name -> data["v"].
func checkItems(t *testing.T, what string, items []object, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, it := range items {
		got[it.Metadata.Name] = it.Data["v"]
	}
	if len(got) != len(want) || len(items) != len(want) {
		t.Errorf("%s: %d items, want %d", what, len(items), len(want))
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s: %s has v=%q, want %q", what, name, got[name], v)
		}
	}
}

// pagedList lists the configmaps limit at a time through continue tokens.
func pagedList(t *testing.T, e *env, limit int) []object {
	t.Helper()
	var items []object
	cont := ""
	for page := 0; page < 1000; page++ {
		var l list
		mustJSON(t, e.mustDo(http.MethodGet, fmt.Sprintf("%s?limit=%d&continue=%s", cmPath, limit, cont), nil, http.StatusOK), &l)
		if len(l.Items) > limit {
			t.Fatalf("page of %d items with limit %d", len(l.Items), limit)
		}
		items = append(items, l.Items...)
		if l.Metadata.Continue == "" {
			return items
		}
		cont = l.Metadata.Continue
	}
	t.Fatal("more than 1000 pages")
	return nil
}

// conflict checks that an update with a stale resourceVersion gets 409.
func conflict(t *testing.T, e *env, wr *writer, name string) {
	t.Helper()
	var cm object
	mustJSON(t, e.mustDo(http.MethodGet, cmPath+"/"+name, nil, http.StatusOK), &cm)
	stale := cm.Metadata.ResourceVersion
	fresh := configMap(name, cm.Data["v"]+"-c1", stale)
	e.mustDo(http.MethodPut, cmPath+"/"+name, fresh, http.StatusOK)
	wr.record(name, cm.Data["v"]+"-c1")
	code, b, err := e.do(http.MethodPut, cmPath+"/"+name, configMap(name, "conflicting", stale))
	if err != nil || code != http.StatusConflict {
		t.Fatalf("update of %s with stale resourceVersion %s: status %d err %v, want 409: %s", name, stale, code, err, b)
	}
	// kubectl replace of the stale object is refused too.
	stdin, _ := json.Marshal(configMap(name, "conflicting", stale))
	_, errOut, err := e.kubectlRun(string(stdin), "replace", "-f", "-")
	if err == nil || !strings.Contains(errOut, "the object has been modified") {
		t.Fatalf("kubectl replace with a stale resourceVersion: err %v: %s", err, errOut)
	}
}

func configMap(name, v, rv string) map[string]any {
	md := map[string]any{"name": name, "namespace": ns}
	if rv != "" {
		md["resourceVersion"] = rv
	}
	return map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": map[string]string{"v": v}}
}

// findLeader returns the member that is the Raft leader.
func findLeader(t *testing.T, e *env) *framework.Member {
	t.Helper()
	ms := e.members
	ids, leader := memberIDs(t, e)
	for i, id := range ids {
		if id == leader {
			return ms[i]
		}
	}
	t.Fatalf("no member is the leader %x", leader)
	return nil
}

// memberIDs returns each member's ID and the leader's ID, once they agree
// on a leader.
func memberIDs(t *testing.T, e *env) ([]uint64, uint64) {
	t.Helper()
	ms := e.members
	ids := make([]uint64, len(ms))
	var leader uint64
	err := framework.WaitFor(30*time.Second, 100*time.Millisecond, func() (bool, error) {
		leader = 0
		for i, m := range ms {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			st, err := e.clientOf(i).Status(ctx, m.ClientURL)
			cancel()
			if err != nil || st.Leader == 0 || (leader != 0 && st.Leader != leader) {
				return false, nil
			}
			ids[i], leader = st.Header.MemberId, st.Leader
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("members do not agree on a leader: %v", err)
	}
	return ids, leader
}

// moveLeader hands leadership to a follower with MoveLeader and returns it.
func moveLeader(t *testing.T, e *env) *framework.Member {
	t.Helper()
	ms := e.members
	ids, leader := memberIDs(t, e)
	var from, to *framework.Member
	var toID uint64
	fromIdx := 0
	for i, id := range ids {
		if id == leader {
			from, fromIdx = ms[i], i
		} else if to == nil {
			to, toID = ms[i], id
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := e.clientOf(fromIdx).MoveLeader(ctx, toID); err != nil {
		t.Fatalf("move leader %s -> %s: %v", from.Name, to.Name, err)
	}
	// etcd's MoveLeader returns once the transferee leads; metastore's
	// returns once the transfer is started (internal/member/leadership), so wait.
	var now uint64
	if err := framework.WaitFor(15*time.Second, 50*time.Millisecond, func() (bool, error) {
		_, now = memberIDs(t, e)
		return now == toID, nil
	}); err != nil {
		t.Fatalf("leader after MoveLeader is %x, want %x", now, toID)
	}
	return to
}

// reportStorageErrors logs the apiserver's error lines from its etcd3
// storage layer and watch cache: how kube-apiserver saw the faults.
func reportStorageErrors(t *testing.T, e *env) {
	t.Helper()
	b := e.logTail(64 << 20)
	re := regexp.MustCompile(`(?m)^[EW]\d{4} .*(etcd|storage|cacher|reflector|watch|compact).*$`)
	lines := re.FindAllString(b, -1)
	t.Logf("kube-apiserver logged %d error/warning lines from storage, watch cache or watch:", len(lines))
	for i, l := range lines {
		if i == 40 {
			t.Logf("  ... %d more", len(lines)-i)
			break
		}
		t.Logf("  %s", l)
	}
}
