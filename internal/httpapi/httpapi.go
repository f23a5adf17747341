package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
	"time"
)

// Probe is what the endpoints ask of the server.
type Probe interface {
	// HasLeader reports whether a raft leader is known.
	HasLeader() bool
	// Alarms returns the names of active alarms (e.g. "NOSPACE").
	Alarms() []string
	// Read performs a range of one key, linearizable unless serializable.
	Read(ctx context.Context, serializable bool) error
	// IsLearner reports whether this member is a raft learner.
	IsLearner() bool
}

// Versions is what /version reports.
type Versions struct {
	Server  string `json:"etcdserver"`
	Cluster string `json:"etcdcluster"`
	Storage string `json:"storage"`
}

// Config wires the handler.
type Config struct {
	Probe    Probe
	Versions Versions
	Metrics  http.Handler // nil: no /metrics
	// Timeout bounds each health read.
	Timeout time.Duration
	// Pprof serves Go's profiler under /debug/pprof (--enable-pprof).
	Pprof bool
	// Gateway, if set, serves etcd's JSON gateway under /v3/ and /v3beta/.
	Gateway http.Handler
}

// New returns the HTTP handler.
func New(cfg Config) http.Handler {
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	h := &handler{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", h.health)
	mux.HandleFunc("/livez", h.checks(livez))
	mux.HandleFunc("/livez/", h.checks(livez))
	mux.HandleFunc("/readyz", h.checks(readyz))
	mux.HandleFunc("/readyz/", h.checks(readyz))
	mux.HandleFunc("/version", h.version)
	if cfg.Metrics != nil {
		mux.Handle("/metrics", cfg.Metrics)
	}
	if cfg.Gateway != nil {
		mux.Handle("/v3/", cfg.Gateway)
		mux.Handle("/v3beta/", cfg.Gateway)
	}
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

type handler struct{ cfg Config }

type healthJSON struct {
	Health string `json:"health"`
	Reason string `json:"reason"`
}

// health mirrors etcd's /health: alarms (minus ?exclude=), a leader, and a
// one-key read (serializable with ?serializable=true).
func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	excluded := map[string]bool{}
	for _, e := range q["exclude"] {
		excluded[e] = true
	}
	serializable := q.Get("serializable") == "true"
	reason := ""
	for _, a := range h.cfg.Probe.Alarms() {
		if !excluded[a] {
			reason = "ALARM " + a
			break
		}
	}
	if reason == "" && !serializable && !h.cfg.Probe.HasLeader() {
		reason = "RAFT NO LEADER"
	}
	if reason == "" {
		ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
		err := h.cfg.Probe.Read(ctx, serializable)
		cancel()
		if err != nil {
			reason = "QGET ERROR:" + err.Error()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	status := http.StatusOK
	out := healthJSON{Health: "true"}
	if reason != "" {
		status = http.StatusServiceUnavailable
		out = healthJSON{Health: "false", Reason: reason}
	}
	w.WriteHeader(status)
	writeJSON(w, out)
}

type check struct {
	name string
	run  func(ctx context.Context, p Probe) error
}

var (
	checkSerializable = check{"serializable_read", func(ctx context.Context, p Probe) error { return p.Read(ctx, true) }}
	checkLinearizable = check{"linearizable_read", func(ctx context.Context, p Probe) error { return p.Read(ctx, false) }}
	checkCorruption   = check{"data_corruption", func(_ context.Context, p Probe) error {
		for _, a := range p.Alarms() {
			if a == "CORRUPT" {
				return fmt.Errorf("alarm activated: CORRUPT")
			}
		}
		return nil
	}}
	checkNonLearner = check{"non_learner", func(_ context.Context, p Probe) error {
		if p.IsLearner() {
			return fmt.Errorf("this member is a learner")
		}
		return nil
	}}
	livez  = []check{checkSerializable}
	readyz = []check{checkCorruption, checkSerializable, checkLinearizable, checkNonLearner}
)

// checks serves /livez and /readyz the way Kubernetes-style health
// endpoints (and etcd) do: "ok\n" on success, a per-check report with
// ?verbose, a single check at /<endpoint>/<check>.
func (h *handler) checks(list []check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		path := strings.Trim(r.URL.Path, "/")
		endpoint, only, _ := strings.Cut(path, "/")
		q := r.URL.Query()
		excluded := map[string]bool{}
		for _, e := range q["exclude"] {
			excluded[e] = true
		}
		run := list
		if only != "" {
			run = nil
			for _, c := range list {
				if c.name == only {
					run = []check{c}
				}
			}
			if run == nil {
				http.NotFound(w, r)
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
		defer cancel()
		var lines []string
		failed := false
		for _, c := range run {
			if excluded[c.name] {
				lines = append(lines, fmt.Sprintf("[+]%s excluded: ok", c.name))
				continue
			}
			if err := c.run(ctx, h.cfg.Probe); err != nil {
				failed = true
				lines = append(lines, fmt.Sprintf("[-]%s failed: %v", c.name, err))
				continue
			}
			lines = append(lines, fmt.Sprintf("[+]%s ok", c.name))
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if failed {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "%s\n%s check failed\n", strings.Join(lines, "\n"), endpoint)
			return
		}
		if _, verbose := q["verbose"]; verbose {
			sort.Strings(lines)
			fmt.Fprintf(w, "%s\n%s check passed\n", strings.Join(lines, "\n"), endpoint)
			return
		}
		fmt.Fprint(w, "ok\n")
	}
}

func (h *handler) version(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	writeJSON(w, h.cfg.Versions)
}

// writeJSON writes v without the trailing newline json.Encoder adds: etcd's
// bodies have none.
func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(b)
}
