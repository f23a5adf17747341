#!/usr/bin/env bash
# Makes docs/img/dashboard.png: deploy/grafana/metastore-dashboard.json on a
# running cluster, without Grafana (AGPL, not usable here). NOT part of CI.
#   1. builds metastore and starts a 3-member cluster on 127.0.0.1 (client
#      ports 22179/22279/22379, peer ports 22180/22280/22380, metrics ports
#      22181/22281/22381);
#   2. starts a real Prometheus (Debian's prometheus package, extracted, not
#      installed; or $PROMETHEUS) scraping the three metrics URLs every 1 s;
#   3. puts load on the cluster for $DURATION seconds (default 180) with
#      etcd's benchmark tool (.bin/benchmark): puts, then ranges and txns,
#      with a leader move in the middle, so every panel has something to show;
#   4. runs the renderer (tools/dashboard, its own module): it reads the
#      dashboard, runs each panel's own PromQL through Prometheus' HTTP API
#      (query_range over the run) and draws the panels in the dashboard's
#      grid layout into docs/img/dashboard.png (or $OUT).
# Every process it starts is stopped on exit (by PID); its files are in a
# temporary directory that is removed ($KEEP=1 keeps it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${METASTORE_TOOLS_BIN:-$ROOT/.bin}"
DURATION="${DURATION:-180}"
OUT="${OUT:-$ROOT/docs/img/dashboard.png}"
cd "$ROOT"

WORK="$(mktemp -d /tmp/dashboard-picture.XXXXXX)"
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	if [[ -z "${KEEP:-}" ]]; then rm -rf "$WORK"; else echo "dashboard-picture: files kept in $WORK"; fi
}
trap cleanup EXIT

for tool in benchmark etcdctl; do
	[[ -x "$BIN/$tool" ]] || { echo "dashboard-picture: $BIN/$tool missing (scripts/install-tools.sh)" >&2; exit 1; }
done

echo "dashboard-picture: building metastore and the renderer"
go build -o "$WORK/metastore" ./cmd/metastore
(cd tools/dashboard && go build -o "$WORK/dashboard" .)

PROM="${PROMETHEUS:-}"
if [[ -z "$PROM" ]]; then
	mkdir -p "$WORK/deb"
	(cd "$WORK/deb" && { apt-get download prometheus >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 && apt-get download prometheus >/dev/null 2>&1; }; }) ||
		{ echo "dashboard-picture: cannot fetch Debian's prometheus package; set PROMETHEUS=/path/to/prometheus" >&2; exit 1; }
	dpkg -x "$WORK"/deb/prometheus_*.deb "$WORK/deb/x"
	PROM="$WORK/deb/x/usr/bin/prometheus"
fi
"$PROM" --version 2>&1 | head -1

INITIAL="m1=http://127.0.0.1:22180,m2=http://127.0.0.1:22280,m3=http://127.0.0.1:22380"
CLIENTS="127.0.0.1:22179,127.0.0.1:22279,127.0.0.1:22379"
for n in 1 2 3; do
	"$WORK/metastore" --name "m$n" --data-dir "$WORK/m$n.data" \
		--listen-client-urls "http://127.0.0.1:22${n}79" --advertise-client-urls "http://127.0.0.1:22${n}79" \
		--listen-peer-urls "http://127.0.0.1:22${n}80" --initial-advertise-peer-urls "http://127.0.0.1:22${n}80" \
		--listen-metrics-urls "http://127.0.0.1:22${n}81" \
		--initial-cluster "$INITIAL" --initial-cluster-state new \
		--max-connections 1000 --quota-backend-bytes $((2 << 30)) >"$WORK/m$n.log" 2>&1 &
	PIDS+=($!)
done
# The members are reached through their client ports only after they serve.
for _ in $(seq 100); do
	"$BIN/etcdctl" --endpoints "$CLIENTS" --dial-timeout 1s endpoint health >/dev/null 2>&1 && break
	sleep 0.3
done
"$BIN/etcdctl" --endpoints "$CLIENTS" endpoint health

cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: metastore
    static_configs:
      - targets: ['127.0.0.1:22181', '127.0.0.1:22281', '127.0.0.1:22381']
YAML
"$PROM" --config.file "$WORK/prometheus.yml" --storage.tsdb.path "$WORK/tsdb" \
	--web.listen-address 127.0.0.1:22090 >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
	curl -fsS http://127.0.0.1:22090/-/ready >/dev/null 2>&1 && break
	sleep 0.3
done
curl -fsS http://127.0.0.1:22090/-/ready; echo

START=$(date +%s)
END=$((START + DURATION))
echo "dashboard-picture: load from $(date -u -d @"$START" +%T) for ${DURATION}s"
BENCH=("$BIN/benchmark" --endpoints "$CLIENTS" --clients 20 --conns 5)
phase() { # phase SECONDS benchmark-args...: repeat a benchmark run for about SECONDS
	local until=$(($(date +%s) + $1))
	shift
	while (($(date +%s) < until && $(date +%s) < END)); do
		"${BENCH[@]}" "$@" >>"$WORK/benchmark.log" 2>&1
	done
}
sleep 10 # an idle start, so that the picture shows the load begin
phase $((DURATION / 3)) put --total 20000 --key-space-size 50000 --val-size 256 --rate 2000
# A leader change in the middle, for the leader-changes panel.
LEADER_ID=$("$BIN/etcdctl" --endpoints "$CLIENTS" endpoint status -w json |
	python3 -c 'import json,sys; s=json.load(sys.stdin); print([format(e["Status"]["header"]["member_id"],"x") for e in s if e["Status"]["leader"]!=e["Status"]["header"]["member_id"]][0])')
"$BIN/etcdctl" --endpoints "$CLIENTS" move-leader "$LEADER_ID" || true
phase $((DURATION / 3)) range /bench --total 20000 --rate 3000
phase $((END - $(date +%s))) txn-put --total 10000 --key-space-size 50000 --val-size 256 --rate 1000
END=$(date +%s)
sleep 3 # the last scrapes
echo "dashboard-picture: load until $(date -u -d @"$END" +%T); drawing $OUT"
mkdir -p "$(dirname "$OUT")"
"$WORK/dashboard" -dashboard deploy/grafana/metastore-dashboard.json -prometheus http://127.0.0.1:22090 \
	-start "$START" -end "$END" -scrape-interval 1s -out "$OUT"
ls -l "$OUT"
