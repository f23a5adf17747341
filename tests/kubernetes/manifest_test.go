//go:build kubernetes

package kubernetes

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDeployManifestApplies runs docs/operations.md's `kubectl apply` of
// deploy/kubernetes/metastore.yaml against kube-apiserver on metastore:
// first a server-side dry run (the API server validates every object and
// runs admission), then the apply itself, and reads the objects back. No
// scheduler or kubelet runs here, so the StatefulSet's pods are not
// started: `kubectl rollout status` and `kubectl exec` need a real cluster.
func TestDeployManifestApplies(t *testing.T) {
	e := startEnv(t)
	manifest, err := filepath.Abs(filepath.Join("..", "..", "deploy", "kubernetes", "metastore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e.mustKubectl("", "apply", "--dry-run=server", "-f", manifest)
	e.mustKubectl("", "apply", "-f", manifest)
	for _, c := range []struct{ args, want string }{
		{"statefulset/metastore -o jsonpath={.spec.replicas}/{.spec.podManagementPolicy}", "3/Parallel"},
		{"service/metastore-peer -o jsonpath={.spec.clusterIP}/{.spec.publishNotReadyAddresses}", "None/true"},
		{"service/metastore -o jsonpath={.spec.ports[0].port}", "2379"},
		{"poddisruptionbudget/metastore -o jsonpath={.spec.maxUnavailable}", "1"},
	} {
		if got := strings.TrimSpace(e.mustKubectl("", append([]string{"get"}, strings.Fields(c.args)...)...)); got != c.want {
			t.Errorf("kubectl get %s = %q, want %q", c.args, got, c.want)
		}
	}
}
