package main

import (
	"math"
	"testing"
	"time"
)

// TestDashboardQueries: every panel of the shipped dashboard has its grid
// position, and every query, once its variables are expanded as the
// renderer runs it, has none left.
func TestDashboardQueries(t *testing.T) {
	d, err := loadDashboard("../../deploy/grafana/metastore-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	queries := 0
	for _, p := range d.Panels {
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: grid position %+v", p.Title, p.GridPos)
		}
		for _, tg := range p.Targets {
			q := expand(tg.Expr, rateInterval(2*time.Second, time.Second))
			for _, c := range q {
				if c == '$' {
					t.Errorf("panel %q: %q keeps a variable", p.Title, q)
					break
				}
			}
			queries++
		}
	}
	if queries == 0 {
		t.Fatal("no query in the dashboard")
	}
}

func TestExpandAndLegend(t *testing.T) {
	got := expand(`rate(x{job=~"$job", instance=~"$instance"}[$__rate_interval])`, rateInterval(2*time.Second, time.Second))
	if want := `rate(x{job=~".*", instance=~".*"}[4s])`; got != want {
		t.Errorf("expand = %s, want %s", got, want)
	}
	if got := rateInterval(10*time.Second, time.Second); got != 11*time.Second {
		t.Errorf("rateInterval(10s, 1s) = %v, want 11s", got)
	}
	if got := legend("put {{instance}} {{ where }}", map[string]string{"instance": "a:1", "where": "grpc"}); got != "put a:1 grpc" {
		t.Errorf("legend = %q", got)
	}
	if got := legend("", map[string]string{"b": "2", "a": "1"}); got != "{a=1, b=2}" {
		t.Errorf("legend without format = %q", got)
	}
}

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		unit string
		want string
	}{
		{2 << 30, "bytes", "2 GiB"},
		{1536, "bytes", "1.5 KiB"},
		{0.0125, "s", "12.5 ms"},
		{2, "s", "2 s"},
		{1200, "ops", "1.2K ops/s"},
		{3, "reqps", "3 req/s"},
		{16000, "short", "16K"},
		{0, "short", "0"},
	} {
		if got := formatValue(tc.v, tc.unit); got != tc.want {
			t.Errorf("formatValue(%v, %q) = %q, want %q", tc.v, tc.unit, got, tc.want)
		}
	}
}

// TestRunsBreakAtGaps: a series is drawn in pieces where it has no value,
// not joined across the gap.
func TestRunsBreakAtGaps(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	s := Series{
		Times:  []time.Time{at(0), at(1), at(2), at(3), at(10), at(11)},
		Values: []float64{1, 2, math.NaN(), 4, 5, 6},
	}
	got := runs(s, time.Second)
	if len(got) != 3 || len(got[0]) != 2 || len(got[1]) != 1 || len(got[2]) != 2 {
		t.Fatalf("runs = %v, want [1 2] [4] [5 6]", got)
	}
}
