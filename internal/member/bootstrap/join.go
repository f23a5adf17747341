package bootstrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/metastore/metastore/internal/membership"
	"github.com/metastore/metastore/internal/peerapi"
)

// clusterInfo is what peerapi.PathMembers answers.
type clusterInfo struct {
	ClusterID string               `json:"clusterID"`
	Members   []*membership.Member `json:"members"`
}

// ServeMembers answers a joining member's request for the cluster's ID and
// member list (etcd's /members peer endpoint).
func ServeMembers(members *membership.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(clusterInfo{ClusterID: idHex(members.ClusterID()), Members: members.Members()})
	}
}

// fetchCluster asks the peers named in --initial-cluster for the cluster
// this member joins, as etcd does with --initial-cluster-state=existing.
func fetchCluster(cfg Config, self []string) (uint64, []*membership.Member, error) {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg.PeerTLS, Proxy: nil,
		DialContext: (&net.Dialer{LocalAddr: cfg.PeerLocalAddr}).DialContext}}
	defer client.CloseIdleConnections()
	names := make([]string, 0, len(cfg.InitialMembers))
	for name := range cfg.InitialMembers {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		for _, u := range cfg.InitialMembers[name] {
			if slices.Contains(self, u) {
				continue
			}
			cid, ms, err := fetchFrom(client, u)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): %w", name, u, err))
				continue
			}
			return cid, ms, nil
		}
	}
	return 0, nil, fmt.Errorf("bootstrap: cannot fetch the cluster from the peers in --initial-cluster: %w", errors.Join(errs...))
}

func fetchFrom(client *http.Client, peerURL string) (uint64, []*membership.Member, error) {
	resp, err := client.Get(strings.TrimSuffix(peerURL, "/") + peerapi.PathMembers)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var ci clusterInfo
	err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&ci)
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("status %d: %v", resp.StatusCode, err)
	}
	cid, err := strconv.ParseUint(ci.ClusterID, 16, 64)
	if err != nil || cid == 0 {
		return 0, nil, fmt.Errorf("bad cluster ID %q", ci.ClusterID)
	}
	return cid, ci.Members, nil
}
