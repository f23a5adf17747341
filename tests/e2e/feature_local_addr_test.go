package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/metastore/metastore/tests/framework"
)

// TestSetMemberLocalAddrGate: with --feature-gates=SetMemberLocalAddr=true
// a member looks, as etcd does, for the address to dial its peers from
// among its advertised peer URLs, and says what it found. On loopback
// there is none (etcd skips loopback addresses), so both log etcd's warning
// with the URLs searched, leave the choice to the kernel, and the cluster
// works. Which address is dialed from when one qualifies is checked by
// internal/transport's TestDialsFromLocalAddr (only loopback addresses
// can be used here).
func TestSetMemberLocalAddrGate(t *testing.T) {
	ms := framework.StartCluster(t, 2, framework.Options{ExtraArgs: []string{"--feature-gates", "SetMemberLocalAddr=true"}})
	for _, m := range ms {
		logEntry(t, m, "searching for a suitable member local address in AdvertisePeerURLs", func(e map[string]any) bool {
			return slices.Contains(strings.Fields(anyStrings(e["advertise-peer-urls"])), m.PeerURL)
		})
		logEntry(t, m, "unable to set a member local address due to lack of suitable local addresses", func(e map[string]any) bool {
			return slices.Contains(strings.Fields(anyStrings(e["advertise-peer-urls"])), m.PeerURL)
		})
		if strings.Contains(m.Logs(), `"flag":"--feature-gates=SetMemberLocalAddr"`) {
			t.Errorf("%s logged SetMemberLocalAddr as having no effect", m.Name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mustPut(t, ms[0].Client(), ctx, "local-addr", "kernel's choice")
	if got := mustGet(t, ms[1].Client(), ctx, "local-addr"); len(got.Kvs) != 1 {
		t.Errorf("a write on one member is not visible on the other")
	}
}

// anyStrings joins a JSON array of strings with spaces ("" otherwise).
func anyStrings(v any) string {
	xs, _ := v.([]any)
	var out []string
	for _, x := range xs {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}
