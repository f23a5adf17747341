package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Dashboard is the part of a Grafana dashboard model the renderer reads.
type Dashboard struct {
	Title  string  `json:"title"`
	Panels []Panel `json:"panels"`
}

// Panel is one panel: its kind, place on the 24-column grid, queries and
// unit.
type Panel struct {
	Type    string   `json:"type"`
	Title   string   `json:"title"`
	GridPos GridPos  `json:"gridPos"`
	Targets []Target `json:"targets"`
	Field   struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

// GridPos is Grafana's panel position: 24 columns, rows of one unit each.
type GridPos struct{ X, Y, W, H int }

// Target is one PromQL query of a panel.
type Target struct {
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat"`
}

func loadDashboard(path string) (*Dashboard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read dashboard: %w", err)
	}
	var d Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("parse dashboard %s: %w", path, err)
	}
	return &d, nil
}

// expand replaces the dashboard's template variables in a query: $job and
// $instance by "All" (.*), $__rate_interval by rateInterval.
func expand(expr string, rateInterval time.Duration) string {
	return strings.NewReplacer(
		"$__rate_interval", promDuration(rateInterval),
		"${job}", ".*", "$job", ".*",
		"${instance}", ".*", "$instance", ".*",
	).Replace(expr)
}

// rateInterval is Grafana's $__rate_interval for a query step and the
// scrape interval of the data source.
func rateInterval(step, scrape time.Duration) time.Duration {
	return max(step+scrape, 4*scrape)
}

func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", int64(d/time.Second))
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}

var legendVar = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// legend is a series' name: the target's legendFormat with {{label}}
// filled in, or the series' labels when the format is empty.
func legend(format string, labels map[string]string) string {
	if format == "" {
		keys := make([]string, 0, len(labels))
		for k := range labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+"="+labels[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return strings.TrimSpace(legendVar.ReplaceAllStringFunc(format, func(m string) string {
		return labels[legendVar.FindStringSubmatch(m)[1]]
	}))
}
