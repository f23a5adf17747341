// Command dashboard draws deploy/grafana/metastore-dashboard.json as a
// PNG without Grafana (which is AGPL and cannot be used here): it reads
// the dashboard's panels, runs each panel's own PromQL through a
// Prometheus server's HTTP API (query_range over a time window) and draws
// the panels in the dashboard's grid layout, with their titles, units and
// legends, using gonum.org/v1/plot. scripts/dashboard-picture.sh runs it
// on a live three-member cluster to make docs/img/dashboard.png.
//
// The drawing is a faithful reading of the data, not Grafana's look:
// time series are lines (one per series, legend from legendFormat), stat
// panels show each series' last value, rows are headings. The template
// variables $job and $instance are "All" (.*), and $__rate_interval is
// Grafana's max(step + scrape interval, 4 × scrape interval).
package main
