#!/usr/bin/env bash
# Times every step of docs/migration.md at a chosen size:
#   bench/migration.sh [KEYS] [VALUE_BYTES]      (default 100000 x 1024 = ~100 MiB)
#   bench/migration.sh 1000000 1024              # ~1 GiB
#   bench/migration.sh 8000000 1024              # ~8 GiB (needs ~35 GiB of free disk: each step's
#                                                  input is removed once it is no longer needed)
# Needs .bin/ (scripts/install-tools.sh). Everything runs on 127.0.0.1 in a
# temp dir that is removed at the end; both servers are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-100000}
VAL=${2:-1024}
BIN=$PWD/.bin
WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	[[ -n "${KEEP:-}" ]] || rm -rf "$WORK"
}
trap cleanup EXIT
go build -o "$WORK/metastore" ./cmd/metastore

now() { date +%s.%N; }
step() { # step NAME CMD...: runs CMD, prints its wall time
	local name=$1 t0 t1
	shift
	t0=$(now)
	"$@" >"$WORK/step.log" 2>&1 || { cat "$WORK/step.log"; exit 1; }
	t1=$(now)
	printf '%-48s %8.2f s\n' "$name" "$(echo "$t1 - $t0" | bc)"
}
wait_ready() { # wait_ready ENDPOINT PID: healthy, and served by PID (not by whatever else holds the port)
	for _ in $(seq 1 300); do
		kill -0 "$2" 2>/dev/null || { echo "server for $1 exited; its log:" >&2; tail -20 "$WORK"/*.log >&2; exit 1; }
		"$BIN/etcdctl" --endpoints "$1" endpoint health >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "server at $1 did not become healthy" >&2
	exit 1
}
serve() { # serve BIN NAME DATADIR CLIENTPORT PEERPORT
	local port
	for port in "$4" "$5"; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "port $port is already in use on 127.0.0.1" >&2
			exit 1
		fi
	done
	"$1" --name "$2" --data-dir "$3" --listen-client-urls "http://127.0.0.1:$4" --advertise-client-urls "http://127.0.0.1:$4" \
		--listen-peer-urls "http://127.0.0.1:$5" --initial-advertise-peer-urls "http://127.0.0.1:$5" \
		--initial-cluster "$2=http://127.0.0.1:$5" --quota-backend-bytes 17179869184 >"$WORK/$2.log" 2>&1 &
	PIDS+=($!)
	wait_ready "127.0.0.1:$4" "$!"
}
stop_last() {
	local p=${PIDS[-1]}
	kill "$p"
	wait "$p" 2>/dev/null || true
	unset 'PIDS[-1]'
}
fill() { # fill ENDPOINT
	"$BIN/benchmark" --endpoints "$1" --conns 8 --clients 64 put --total "$KEYS" --key-space-size "$KEYS" \
		--sequential-keys --key-size 32 --val-size "$VAL"
}

echo "migration steps, $KEYS keys x $VAL bytes (work dir $WORK)"
echo "== etcd -> metastore"
serve "$BIN/etcd-ref" etcd "$WORK/etcd.data" 23790 23800
step "fill etcd (benchmark put)" fill 127.0.0.1:23790
step "etcdctl snapshot save (from etcd)" "$BIN/etcdctl" --endpoints 127.0.0.1:23790 snapshot save "$WORK/etcd.db"
ls -l "$WORK/etcd.db" | awk '{printf "%-48s %8.0f MiB\n", "snapshot file", $5/1048576}'
stop_last
rm -rf "$WORK/etcd.data" # what each step no longer needs goes at once: at 8 GiB the disk is the limit
step "metastore snapshot restore" "$WORK/metastore" snapshot restore "$WORK/etcd.db" --data-dir "$WORK/m.data" --name m
rm -f "$WORK/etcd.db"
t0=$(now)
serve "$WORK/metastore" m "$WORK/m.data" 23791 23801
printf '%-48s %8.2f s\n' "metastore start on the restored dir" "$(echo "$(now) - $t0" | bc)"
echo "== metastore -> etcd"
step "etcdctl snapshot save (from metastore)" "$BIN/etcdctl" --endpoints 127.0.0.1:23791 snapshot save "$WORK/m.db"
ls -l "$WORK/m.db" | awk '{printf "%-48s %8.0f MiB\n", "snapshot file", $5/1048576}'
step "etcdutl snapshot status" "$BIN/etcdutl" snapshot status "$WORK/m.db"
step "etcdutl snapshot restore" "$BIN/etcdutl" snapshot restore "$WORK/m.db" --data-dir "$WORK/e2.data" --name e2 \
	--initial-cluster e2=http://127.0.0.1:23802 --initial-advertise-peer-urls http://127.0.0.1:23802
rm -f "$WORK/m.db"
stop_last
rm -rf "$WORK/m.data"
t0=$(now)
serve "$BIN/etcd-ref" e2 "$WORK/e2.data" 23792 23802
printf '%-48s %8.2f s\n' "etcd start on the restored dir" "$(echo "$(now) - $t0" | bc)"
"$BIN/etcdctl" --endpoints 127.0.0.1:23792 endpoint status -w table
