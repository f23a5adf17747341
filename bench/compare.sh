#!/usr/bin/env bash
# bench/compare.sh: metastore against the real etcd v3.7.3, measured with
# etcd's own benchmark tool (tools/benchmark v3.6.8), on this machine, in one
# run. A claim of "faster than etcd" only holds for numbers produced this way.
#
# Each round starts metastore, runs the whole suite, stops it, then does the
# same with etcd (A B A B ...): both servers see the same machine state, same
# flags, a fresh data dir under one work dir (same disk), default fsync. The
# table reports medians over the rounds and the ratio metastore/etcd.
#
# Usage: bench/compare.sh [--quick] [--large|--watchers] [--members N] [--rounds N] [--write-docs[=FILE]] [--keep]
#   (default)      the suite: put, range (l/s), txn-put, watch-latency
#   --quick        1 round, small totals: a smoke test of the harness (~2 min)
#   --large        opt-in large data set: 1M keys of 1 KiB, then ranges and
#                  puts; peak RSS and on-disk size (takes long)
#   --watchers     opt-in watch scale test: a put load from 100 clients with no
#                  watcher, then the same load with 10,000 watchers (100
#                  streams x 100) on the 1,000 keys written: write throughput
#                  with and without them, events/s delivered
#   --members N    run every server as a cluster of N members on this machine
#                  (default 1); writes go to the leader (--target-leader), reads
#                  to all members, as in etcd's performance doc. Memory is the
#                  largest member's, CPU and disk the sum over members.
#   --rounds N     rounds (default 3; --large default 1)
#   --write-docs   write the result into docs/benchmarks.md (or FILE), replacing
#                  only the section of this mode
#   --keep         keep the work dir (logs, raw outputs; data dirs are always
#                  removed after each round to save disk)
# Environment (all optional; the defaults keep a full run under ~15 min on 2 cores):
#   BENCH_ROUNDS, BENCH_PUT1_TOTAL, BENCH_PUT_TOTAL, BENCH_RANGE1_TOTAL,
#   BENCH_RANGE_TOTAL, BENCH_TXN_TOTAL, BENCH_WATCH_PUTS, BENCH_WATCH_RATE,
#   BENCH_VAL_SIZE, BENCH_LARGE_KEYS, BENCH_LARGE_VAL_SIZE,
#   BENCH_LARGE_RANGE_TOTAL, BENCH_LARGE_SCAN_TOTAL, BENCH_LARGE_PUT_TOTAL,
#   BENCH_WATCHERS_PUTS,
#   BENCH_CLIENT_PORT (32379), BENCH_PEER_PORT (32380), BENCH_TIMEOUT (seconds
#   per benchmark run), BENCH_DIR (parent of the work dir; default $TMPDIR or
#   /tmp), BENCH_ORDER ("metastore etcd"), BENCH_MEMBERS (same as --members),
#   METASTORE_BIN (use this binary instead of building ./cmd/metastore).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LIB="$ROOT/bench/lib"
TOOLS_BIN="${METASTORE_TOOLS_BIN:-$ROOT/.bin}"

QUICK=0
LARGE=0
WATCHERS=0
KEEP=0
WRITE_DOCS=""
ROUNDS_FLAG=""
MEMBERS_FLAG=""

die() {
	echo "compare: $*" >&2
	exit 1
}
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while (($#)); do
	case "$1" in
	--quick) QUICK=1 ;;
	--large) LARGE=1 ;;
	--watchers) WATCHERS=1 ;;
	--keep) KEEP=1 ;;
	--rounds) [[ $# -ge 2 ]] || die "--rounds needs a value"; ROUNDS_FLAG="$2"; shift ;;
	--rounds=*) ROUNDS_FLAG="${1#*=}" ;;
	--members) [[ $# -ge 2 ]] || die "--members needs a value"; MEMBERS_FLAG="$2"; shift ;;
	--members=*) MEMBERS_FLAG="${1#*=}" ;;
	--write-docs) WRITE_DOCS="$ROOT/docs/benchmarks.md" ;;
	--write-docs=*) WRITE_DOCS="${1#*=}" ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
	shift
done

MEMBERS="${MEMBERS_FLAG:-${BENCH_MEMBERS:-1}}"

# Totals. The defaults are sized so that one server-round of the suite takes
# about 75 s on 2 cores (3 rounds x 2 servers ~ 8-10 min; an earlier run with
# half these totals took 217 s in all).
if ((QUICK)); then
	ROUNDS="${ROUNDS_FLAG:-${BENCH_ROUNDS:-1}}"
	PUT1_TOTAL="${BENCH_PUT1_TOTAL:-300}"
	PUT_TOTAL="${BENCH_PUT_TOTAL:-5000}"
	RANGE1_TOTAL="${BENCH_RANGE1_TOTAL:-1000}"
	RANGE_TOTAL="${BENCH_RANGE_TOTAL:-5000}"
	TXN_TOTAL="${BENCH_TXN_TOTAL:-5000}"
	WATCH_PUTS="${BENCH_WATCH_PUTS:-100}"
	LARGE_KEYS="${BENCH_LARGE_KEYS:-20000}"
	LARGE_RANGE_TOTAL="${BENCH_LARGE_RANGE_TOTAL:-2000}"
	LARGE_SCAN_TOTAL="${BENCH_LARGE_SCAN_TOTAL:-200}"
	LARGE_PUT_TOTAL="${BENCH_LARGE_PUT_TOTAL:-2000}"
	WATCHERS_PUTS="${BENCH_WATCHERS_PUTS:-2000}"
elif ((LARGE)); then
	ROUNDS="${ROUNDS_FLAG:-${BENCH_ROUNDS:-1}}"
else
	ROUNDS="${ROUNDS_FLAG:-${BENCH_ROUNDS:-3}}"
fi
PUT1_TOTAL="${PUT1_TOTAL:-${BENCH_PUT1_TOTAL:-5000}}"
PUT_TOTAL="${PUT_TOTAL:-${BENCH_PUT_TOTAL:-100000}}"
RANGE1_TOTAL="${RANGE1_TOTAL:-${BENCH_RANGE1_TOTAL:-20000}}"
RANGE_TOTAL="${RANGE_TOTAL:-${BENCH_RANGE_TOTAL:-100000}}"
TXN_TOTAL="${TXN_TOTAL:-${BENCH_TXN_TOTAL:-60000}}"
WATCH_PUTS="${WATCH_PUTS:-${BENCH_WATCH_PUTS:-1000}}"
WATCH_RATE="${BENCH_WATCH_RATE:-100}"
VAL_SIZE="${BENCH_VAL_SIZE:-256}"
LARGE_KEYS="${LARGE_KEYS:-${BENCH_LARGE_KEYS:-1000000}}"
LARGE_VAL_SIZE="${BENCH_LARGE_VAL_SIZE:-1024}"
LARGE_RANGE_TOTAL="${LARGE_RANGE_TOTAL:-${BENCH_LARGE_RANGE_TOTAL:-20000}}"
LARGE_SCAN_TOTAL="${LARGE_SCAN_TOTAL:-${BENCH_LARGE_SCAN_TOTAL:-500}}"
LARGE_PUT_TOTAL="${LARGE_PUT_TOTAL:-${BENCH_LARGE_PUT_TOTAL:-50000}}"
WATCHERS_PUTS="${WATCHERS_PUTS:-${BENCH_WATCHERS_PUTS:-20000}}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-600}"
CLIENT_PORT="${BENCH_CLIENT_PORT:-32379}"
PEER_PORT="${BENCH_PEER_PORT:-32380}"
read -r -a ORDER <<<"${BENCH_ORDER:-metastore etcd}"

for v in ROUNDS PUT1_TOTAL PUT_TOTAL RANGE1_TOTAL RANGE_TOTAL TXN_TOTAL WATCH_PUTS WATCH_RATE VAL_SIZE \
	LARGE_KEYS LARGE_VAL_SIZE LARGE_RANGE_TOTAL LARGE_SCAN_TOTAL LARGE_PUT_TOTAL WATCHERS_PUTS BENCH_TIMEOUT CLIENT_PORT PEER_PORT MEMBERS; do
	[[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
for s in "${ORDER[@]}"; do
	[[ "$s" == metastore || "$s" == etcd ]] || die "BENCH_ORDER: unknown server '$s'"
done

((MEMBERS <= 5)) || die "--members: at most 5 on one machine, got $MEMBERS"
# Member i listens on CLIENT_PORT+10i (clients) and PEER_PORT+10i (peers).
CLIENT_PORTS=() PEER_PORTS=() NAMES=() ENDPOINTS=() INITIAL_CLUSTER=""
for ((i = 0; i < MEMBERS; i++)); do
	CLIENT_PORTS+=($((CLIENT_PORT + 10 * i)))
	PEER_PORTS+=($((PEER_PORT + 10 * i)))
	NAMES+=("bench$i")
	ENDPOINTS+=("127.0.0.1:${CLIENT_PORTS[i]}")
	INITIAL_CLUSTER+="${INITIAL_CLUSTER:+,}bench$i=http://127.0.0.1:${PEER_PORTS[i]}"
done
ENDPOINT="$(IFS=,; echo "${ENDPOINTS[*]}")"
# Writes go to the leader when there are several members (etcd's doc).
WRITE_TARGET=()
((MEMBERS > 1)) && WRITE_TARGET=(--target-leader)
((LARGE && WATCHERS)) && die "--large and --watchers are separate runs"
MODE=suite
((LARGE)) && MODE=large
((WATCHERS)) && MODE=watchers
# Each cluster size has its own section in docs/benchmarks.md.
SECTION="$MODE"
((MEMBERS > 1)) && SECTION="$MODE-$MEMBERS-members"
# Flags given to both servers, besides the member/URL flags. --large raises the
# backend quota (default 2 GiB) on both so that 1M x 1 KiB fits in either.
EXTRA_FLAGS=()
((LARGE)) && EXTRA_FLAGS+=(--quota-backend-bytes=8589934592)

# ---------------------------------------------------------------------------
# Process bookkeeping: every server and benchmark process is killed on exit,
# including Ctrl-C. Children run in the background and are waited for, so that
# a signal interrupts the wait instead of being deferred until they finish.
SERVER_PIDS=() # the members of the running server
BENCH_PID=""
STOP_RC=0
WORK=""
FAILED=0

# stop_pid PID GRACE_SECONDS [signalled]: SIGTERM (unless the caller already
# sent it: a second SIGTERM makes metastore exit at once, with status 143),
# then SIGKILL after the grace period.
stop_pid() {
	local pid="$1" grace="$2" i
	STOP_RC=0
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || STOP_RC=$?; return 0; }
	[[ "${3:-}" == signalled ]] || kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < grace * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid did not stop within ${grace}s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || STOP_RC=$?
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[[ -n "$BENCH_PID" ]] && stop_pid "$BENCH_PID" 5
	for pid in ${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}; do stop_pid "$pid" 20; done
	if [[ -n "$WORK" && -d "$WORK" ]]; then
		rm -rf "$WORK/data"
		if ((KEEP)) || ((rc != 0)); then
			log "work dir kept: $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# ---------------------------------------------------------------------------
# Setup.
[[ -d /proc/self ]] || die "needs Linux /proc (peak RSS is read from /proc/<pid>/status)"
command -v ss >/dev/null || die "needs ss (iproute2) to wait for free ports"

log "building reference tools (scripts/install-tools.sh)"
"$ROOT/scripts/install-tools.sh" bench >&2
ETCD_BIN="$TOOLS_BIN/etcd-ref"
ETCDCTL="$TOOLS_BIN/etcdctl"
BENCHMARK="$TOOLS_BIN/benchmark"
for b in "$ETCD_BIN" "$ETCDCTL" "$BENCHMARK"; do [[ -x "$b" ]] || die "missing $b"; done

parent="${BENCH_DIR:-${TMPDIR:-/tmp}}"
mkdir -p "$parent"
WORK="$(mktemp -d "$parent/metastore-bench.XXXXXX")"
OUT="$WORK/out"
mkdir -p "$OUT" "$WORK/data"
RESULTS="$OUT/results.tsv" # round server bench metric value
LOADS="$OUT/loadavg.tsv"   # round server bench loadavg(1 5 15)
FAILURES="$OUT/failures.txt"
COMMANDS="$OUT/commands.txt"
: >"$RESULTS"
: >"$LOADS"
: >"$FAILURES"
: >"$COMMANDS"

if [[ -n "${METASTORE_BIN:-}" ]]; then
	MS_BIN="$METASTORE_BIN"
else
	MS_BIN="$WORK/metastore"
	log "building ./cmd/metastore into $MS_BIN"
	(cd "$ROOT" && go build -o "$MS_BIN" ./cmd/metastore)
fi
[[ -x "$MS_BIN" ]] || die "missing metastore binary $MS_BIN"
# The line a member logs once it serves clients: defined once, as
# tests/framework's ReadyLine, and read from there.
READY_LINE="$(cd "$ROOT" && go doc ./tests/framework ReadyLine | sed -n 's/^const ReadyLine = "\(.*\)"$/\1/p')"
[[ -n "$READY_LINE" ]] || die "cannot read framework.ReadyLine from tests/framework"
MS_VERSION="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(cd "$ROOT" && git status --porcelain --untracked-files=no 2>/dev/null | wc -l)"
((dirty == 0)) || MS_VERSION+=" + $dirty uncommitted file(s)"

# ---------------------------------------------------------------------------
# Servers.
wait_port_free() { # bounded: 60 s
	local port i
	for port in "${CLIENT_PORTS[@]}" "${PEER_PORTS[@]}"; do
		for ((i = 0; i < 600; i++)); do
			[[ -z "$(ss -Htln "sport = :$port")" ]] && break
			sleep 0.1
		done
		[[ -z "$(ss -Htln "sport = :$port")" ]] || die "port $port still in use after 60s: $(ss -Htlnp "sport = :$port")"
	done
}

# start_server KIND DATADIR LOG: sets SERVER_PIDS (one process per member,
# data in DATADIR/<name>, logs in LOG.<i> and, for member 0, LOG); returns
# once every member logged readiness and the cluster answered a put.
start_server() {
	local kind="$1" dir="$2" logf="$3" bin i m mlog
	case "$kind" in
	metastore) bin="$MS_BIN" ;;
	etcd) bin="$ETCD_BIN" ;;
	esac
	wait_port_free
	SERVER_PIDS=()
	for ((m = 0; m < MEMBERS; m++)); do
		mlog="$(member_log "$logf" "$m")"
		local curl="http://127.0.0.1:${CLIENT_PORTS[m]}" purl="http://127.0.0.1:${PEER_PORTS[m]}"
		"$bin" --name "${NAMES[m]}" --data-dir "$dir/${NAMES[m]}" \
			--listen-client-urls "$curl" --advertise-client-urls "$curl" \
			--listen-peer-urls "$purl" --initial-advertise-peer-urls "$purl" \
			--initial-cluster "$INITIAL_CLUSTER" ${EXTRA_FLAGS[@]+"${EXTRA_FLAGS[@]}"} >"$mlog" 2>&1 &
		SERVER_PIDS+=($!)
	done
	for ((m = 0; m < MEMBERS; m++)); do
		mlog="$(member_log "$logf" "$m")"
		for ((i = 0; i < 600; i++)); do
			kill -0 "${SERVER_PIDS[m]}" 2>/dev/null || { tail -20 "$mlog" >&2; die "$kind ${NAMES[m]} exited during start-up (log: $mlog)"; }
			grep -qF "$READY_LINE" "$mlog" && break
			sleep 0.1
		done
		grep -qF "$READY_LINE" "$mlog" || die "$kind ${NAMES[m]} not ready after 60s (log: $mlog)"
	done
	for ((i = 0; i < 50; i++)); do
		"$ETCDCTL" --endpoints "$ENDPOINT" --command-timeout=2s put foo bar >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	die "$kind does not accept puts (log: $logf)"
}

# member_log LOG I: member 0 logs to LOG (what the rest of the script reads),
# others to LOG.I.
member_log() { if (($2 == 0)); then echo "$1"; else echo "$1.$2"; fi; }

# stop_server ROUND KIND: SIGTERM to every member, and a note in
# failures.txt if one did not exit with status 0 (a graceful stop is part
# of what is tested). etcd re-raises SIGTERM after its own clean-up, so 143
# is its normal status.
stop_server() {
	local pids=(${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}) pid
	SERVER_PIDS=()
	for pid in ${pids[@]+"${pids[@]}"}; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in ${pids[@]+"${pids[@]}"}; do
		stop_pid "$pid" 60 signalled
		if ((STOP_RC != 0)) && ! [[ "$2" == etcd && "$STOP_RC" == 143 ]]; then
			printf '### round %s, %s: exit status %s after SIGTERM\n' "$1" "$2" "$STOP_RC" >>"$FAILURES"
		fi
	done
}

# servers_alive: whether every member is still running.
servers_alive() {
	local pid
	for pid in "${SERVER_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || return 1; done
}

# mem_kb FIELD: VmHWM (peak RSS) or VmRSS of the running server, in kB; with
# several members, the largest.
mem_kb() {
	local pid max=0 v
	for pid in "${SERVER_PIDS[@]}"; do
		v="$(awk -v f="$1:" '$1 == f { print $2 }' "/proc/$pid/status")"
		((v > max)) && max=$v
	done
	echo "$max"
}

CLK_TCK="$(getconf CLK_TCK)"
# server_cpu_ticks: user+system CPU of the running server (all members), in
# clock ticks.
server_cpu_ticks() {
	local f=()
	for pid in "${SERVER_PIDS[@]}"; do f+=("/proc/$pid/stat"); done
	awk '{ s += $14 + $15 } END { print s }' "${f[@]}" 2>/dev/null || echo NA
}
# children_cpu: sets CHILD_CPU to the user+system CPU seconds of this
# shell's waited-for children. `times` must run in this shell, not in a
# command substitution (a fresh subshell has no children), hence the file.
children_cpu() {
	times >"$OUT/times.txt"
	CHILD_CPU="$(awk 'NR == 2 {
		s = 0
		for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); s += p[1] * 60 + p[2] }
		printf "%.3f", s
	}' "$OUT/times.txt")"
}
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

# record_mem ROUND SERVER LABEL: peak and current RSS in MiB.
record_mem() {
	local hwm rss
	hwm="$(mem_kb VmHWM)"
	rss="$(mem_kb VmRSS)"
	record "$1" "$2" "$3" peak_rss_mib "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')"
	record "$1" "$2" "$3" rss_mib "$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')"
}

record_disk() { # ROUND SERVER LABEL DIR
	local b
	b="$(du -sb "$4" | cut -f1)"
	record "$1" "$2" "$3" disk_mib "$(awk -v b="$b" 'BEGIN { printf "%.1f", b / 1048576 }')"
}

# ---------------------------------------------------------------------------
# Benchmarks. run_bench ROUND SERVER NAME SECTION BENCHMARK-ARGS...
# Records rps, avg_ms, p99_ms and errors; a failed run records NA and its
# error text goes to failures.txt. Returns 1 if the server died.
run_bench() {
	local round="$1" server="$2" name="$3" section="$4" rc=0 load
	shift 4
	local out="$OUT/r$round-$server-$name.txt"
	if ! grep -q "^$name:" "$COMMANDS"; then
		{ # %q: the scan bounds are raw bytes, not text
			printf '%s: benchmark --endpoints=%s --precise' "$name" "$ENDPOINT"
			printf ' %q' "$@"
			echo
		} >>"$COMMANDS"
	fi
	load="$(cut -d' ' -f1-3 /proc/loadavg)"
	printf '%s\t%s\t%s\t%s\n' "$round" "$server" "$name" "$load" >>"$LOADS"
	log "round $round $server $name (load $load)"
	local srv0 cli0 srv1 cli1
	srv0="$(server_cpu_ticks)"
	children_cpu
	cli0="$CHILD_CPU"
	timeout -k 10 "$BENCH_TIMEOUT" "$BENCHMARK" --endpoints="$ENDPOINT" --precise "$@" >"$out" 2>"$out.stderr" &
	BENCH_PID=$!
	wait "$BENCH_PID" || rc=$?
	BENCH_PID=""
	srv1="$(server_cpu_ticks)"
	children_cpu
	cli1="$CHILD_CPU"
	local rps avg p99 errs total
	read -r rps avg p99 errs total < <(awk -v section="$section" -f "$LIB/parse.awk" "$out")
	if ((rc != 0)) || [[ "$rps" == NA ]]; then
		local why="exit status $rc"
		((rc == 124)) && why="timed out after ${BENCH_TIMEOUT}s"
		{
			printf '### round %s, %s, %s: %s\n' "$round" "$server" "$name" "$why"
			tr '\r' '\n' <"$out.stderr" | grep -v 'INFO: \|p/s\|^[[:space:]]*$' | tail -5 || true
			sed -n '/Error distribution/,$p' "$out" | head -10
		} >>"$FAILURES"
		log "  FAILED: $why (see $out)"
		rps=NA avg=NA p99=NA
	else
		log "  rps=$rps avg=${avg}ms p99=${p99}ms errors=$errs"
	fi
	record "$round" "$server" "$name" rps "$rps"
	record "$round" "$server" "$name" avg_ms "$avg"
	record "$round" "$server" "$name" p99_ms "$p99"
	record "$round" "$server" "$name" errors "$errs"
	# CPU per request of the server and of the load generator: on a shared
	# 2-core machine the two compete, so throughput is bounded by their sum
	# (docs/benchmarks.md, "Where the time goes").
	local n
	n="$(awk -v r="$rps" -v t="$total" 'BEGIN { if (r == "NA" || t == "NA" || r * t < 1) print "NA"; else printf "%.0f", r * t }')"
	record "$round" "$server" "$name" server_cpu_us "$(awk -v a="$srv0" -v b="$srv1" -v n="$n" -v hz="$CLK_TCK" 'BEGIN { if (n == "NA" || a == "NA" || b == "NA") print "NA"; else printf "%.1f", (b - a) / hz * 1e6 / n }')"
	record "$round" "$server" "$name" client_cpu_us "$(awk -v a="$cli0" -v b="$cli1" -v n="$n" 'BEGIN { if (n == "NA") print "NA"; else printf "%.1f", (b - a) * 1e6 / n }')"
	if ((errs > 0)); then
		{
			printf '### round %s, %s, %s: %s failed requests\n' "$round" "$server" "$name" "$errs"
			sed -n '/Error distribution/,$p' "$out" | head -10
		} >>"$FAILURES"
	fi
	if ! servers_alive; then
		printf '### round %s, %s: server died during %s\n' "$round" "$server" "$name" >>"$FAILURES"
		log "  $server DIED during $name"
		return 1
	fi
}


# watch_probe ROUND SERVER NAME: checks that a watcher sees a put; if not,
# records NA for NAME with the reason and returns 1 (not a server failure).
watch_probe() {
	local round="$1" server="$2" name="$3" wout="$OUT/r$1-$2-watch-probe.txt" pid i m
	timeout 40 "$ETCDCTL" --endpoints "$ENDPOINT" watch bench-watch-probe >"$wout" 2>&1 &
	pid=$!
	local deadline=$((SECONDS + 30))
	for ((i = 0; i < 300 && SECONDS < deadline; i++)); do
		"$ETCDCTL" --endpoints "$ENDPOINT" --command-timeout=2s put bench-watch-probe "v$i" >/dev/null 2>&1 || true
		grep -q '^v[0-9]' "$wout" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	stop_pid "$pid" 2
	grep -q '^v[0-9]' "$wout" && return 0
	[[ -s "$wout" ]] || echo "(no event within 30s)" >"$wout"
	printf '### round %s, %s, %s: not available yet: etcdctl watch says: %s\n' "$round" "$server" "$name" \
		"$(tr '\n' ' ' <"$wout")" >>"$FAILURES"
	log "  $name: Watch not available on $server: $(tr '\n' ' ' <"$wout")"
	for m in rps avg_ms p99_ms errors; do record "$round" "$server" "$name" "$m" UNAVAILABLE; done
	return 1
}

# suite ROUND SERVER: etcd's performance doc scaled to 2 cores. Keys are 8
# bytes; sequential put keys with key-space-size = total make every put a new
# key (the doc's key-space-size of 1 would rewrite one key).
suite() {
	local r="$1" s="$2" one=(--conns=1 --clients=1) many=(--conns=100 --clients=1000)
	run_bench "$r" "$s" put-1 all ${WRITE_TARGET[@]+"${WRITE_TARGET[@]}"} "${one[@]}" put --key-size=8 --val-size="$VAL_SIZE" \
		--sequential-keys --key-space-size="$PUT1_TOTAL" --total="$PUT1_TOTAL" || return 1
	run_bench "$r" "$s" put-1000 all ${WRITE_TARGET[@]+"${WRITE_TARGET[@]}"} "${many[@]}" put --key-size=8 --val-size="$VAL_SIZE" \
		--sequential-keys --key-space-size="$PUT_TOTAL" --total="$PUT_TOTAL" || return 1
	record_mem "$r" "$s" after-put-suite
	run_bench "$r" "$s" range-l-1 all "${one[@]}" range foo --consistency=l --total="$RANGE1_TOTAL" || return 1
	run_bench "$r" "$s" range-s-1 all "${one[@]}" range foo --consistency=s --total="$RANGE1_TOTAL" || return 1
	run_bench "$r" "$s" range-l-1000 all "${many[@]}" range foo --consistency=l --total="$RANGE_TOTAL" || return 1
	run_bench "$r" "$s" range-s-1000 all "${many[@]}" range foo --consistency=s --total="$RANGE_TOTAL" || return 1
	run_bench "$r" "$s" txn-put-1000 all ${WRITE_TARGET[@]+"${WRITE_TARGET[@]}"} "${many[@]}" txn-put --key-size=8 --val-size="$VAL_SIZE" \
		--key-space-size="$TXN_TOTAL" --total="$TXN_TOTAL" || return 1
	# 10 streams x 10 watchers on one key; a put every 1/rate s. If Watch is
	# missing the tool spins on a closed channel (burning CPU until the
	# timeout), so a probe with etcdctl comes first.
	if watch_probe "$r" "$s" watch-latency; then
		BENCH_TIMEOUT=$((WATCH_PUTS / WATCH_RATE + 60)) run_bench "$r" "$s" watch-latency watch \
			watch-latency --put-total="$WATCH_PUTS" --put-rate="$WATCH_RATE" --streams=10 \
			--watchers-per-stream=10 --key-size=32 --val-size=32 || return 1
	fi
	record_mem "$r" "$s" end-of-suite
}

# large ROUND SERVER: 1M keys of 1 KiB (8-byte sequential keys), then point
# ranges, limited scans and overwrites; memory and disk after each phase.
large() {
	local r="$1" s="$2" many=(--conns=100 --clients=1000)
	# The load alone may take many minutes: its timeout scales with the keys
	# (500 puts/s at least) unless BENCH_TIMEOUT is larger.
	local load_timeout=$((LARGE_KEYS / 500 + 60))
	((load_timeout > BENCH_TIMEOUT)) || load_timeout=$BENCH_TIMEOUT
	BENCH_TIMEOUT=$load_timeout run_bench "$r" "$s" large-load all "${many[@]}" put --key-size=8 --val-size="$LARGE_VAL_SIZE" \
		--sequential-keys --key-space-size="$LARGE_KEYS" --total="$LARGE_KEYS" || return 1
	record_mem "$r" "$s" large-after-load
	record_disk "$r" "$s" large-after-load "$DATA"
	run_bench "$r" "$s" large-range-l-1000 all "${many[@]}" range foo --consistency=l --total="$LARGE_RANGE_TOTAL" || return 1
	run_bench "$r" "$s" large-range-s-1000 all "${many[@]}" range foo --consistency=s --total="$LARGE_RANGE_TOTAL" || return 1
	# Scan: 100 keys from the upper half of the key space (zig-zag varint keys
	# start with 0x80-0xff once i >= 64), serializable, 100 clients.
	run_bench "$r" "$s" large-scan-100 all --conns=10 --clients=100 range $'\x80' $'\xff' --limit=100 \
		--consistency=s --total="$LARGE_SCAN_TOTAL" || return 1
	run_bench "$r" "$s" large-put-1000 all "${many[@]}" put --key-size=8 --val-size="$LARGE_VAL_SIZE" \
		--key-space-size="$LARGE_KEYS" --total="$LARGE_PUT_TOTAL" || return 1
	record_mem "$r" "$s" large-end
}

# watchers ROUND SERVER: the watch issue's scale test. The same put load
# (100 clients, 8-byte keys cycling over 1,000) runs first with no watcher,
# then with 10,000 watchers (100 streams x 100, ten on each key) through the
# benchmark tool's watch command, which reports the events it received; the
# put throughput under watchers is the puts over the span of those events.
watchers() {
	local r="$1" s="$2" load=(--conns=10 --clients=100) total
	run_bench "$r" "$s" put-no-watchers all "${load[@]}" put --key-size=8 --sequential-keys \
		--key-space-size=1000 --total="$WATCHERS_PUTS" || return 1
	run_bench "$r" "$s" put-10k-watchers events "${load[@]}" watch --key-size=8 --sequential-keys \
		--key-space-size=1000 --watched-key-total=1000 --streams=100 --watch-per-stream=100 \
		--put-total="$WATCHERS_PUTS" || return 1
	total="$(awk '/Watch events received summary:/ { on = 1 } on && /Total:/ { print $2; exit }' \
		"$OUT/r$r-$s-put-10k-watchers.txt")"
	if [[ "$total" =~ ^[0-9.]+$ ]]; then
		record "$r" "$s" put-10k-watchers put_rps "$(awk -v n="$WATCHERS_PUTS" -v t="$total" 'BEGIN { printf "%.1f", n / t }')"
	else
		record "$r" "$s" put-10k-watchers put_rps NA
	fi
	record_mem "$r" "$s" watchers-end
}

# ---------------------------------------------------------------------------
log "mode=$MODE members=$MEMBERS rounds=$ROUNDS order=${ORDER[*]} work=$WORK"
START_DATE="$(date -u '+%Y-%m-%d %H:%M UTC')"
start_s=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
	for server in "${ORDER[@]}"; do
		DATA="$WORK/data/r$round-$server"
		logf="$OUT/r$round-$server.log"
		log "round $round/$ROUNDS: starting $server"
		start_server "$server" "$DATA" "$logf"
		ok=1
		case "$MODE" in
		large) large "$round" "$server" || ok=0 ;;
		watchers) watchers "$round" "$server" || ok=0 ;;
		*) suite "$round" "$server" || ok=0 ;;
		esac
		((ok)) || FAILED=1
		stop_server "$round" "$server"
		case "$MODE" in
		large) record_disk "$round" "$server" large-end "$DATA" ;;
		suite) record_disk "$round" "$server" end-of-suite "$DATA" ;;
		esac
		rm -rf "$DATA"
		if [[ "$server" == metastore ]] && grep -qs '"level":"\(error\|fatal\|panic\)"\|^panic:' "$logf"*; then
			{
				printf '### round %s, metastore log errors (first 5 of %s):\n' "$round" "$(cat "$logf"* | grep -c '"level":"\(error\|fatal\|panic\)"\|^panic:')"
				grep -h '"level":"\(error\|fatal\|panic\)"\|^panic:' "$logf"* | head -5 | cut -c1-400 || true
			} >>"$FAILURES"
		fi
	done
done
elapsed=$((SECONDS - start_s))

# ---------------------------------------------------------------------------
# Report.
SPEC="$OUT/spec.txt"
if [[ "$MODE" == suite ]]; then
	cat >"$SPEC" <<'EOF'
put, 1 client|put-1|avg_ms|ms|le|0.6
put, 1 client|put-1|rps|req/s|-|
put, 1000 clients|put-1000|rps|req/s|ge|2.0
put, 1000 clients|put-1000|p99_ms|ms|le|1.0
peak RSS after put suite|after-put-suite|peak_rss_mib|MiB|le|0.7
range linearizable, 1 client|range-l-1|rps|req/s|-|
range serializable, 1 client|range-s-1|rps|req/s|-|
range linearizable, 1000 clients|range-l-1000|rps|req/s|ge|1.5
range serializable, 1000 clients|range-s-1000|rps|req/s|ge|1.5
put, 1000 clients: server CPU per request|put-1000|server_cpu_us|us|-|
put, 1000 clients: load generator CPU per request|put-1000|client_cpu_us|us|-|
range serializable, 1000 clients: server CPU per request|range-s-1000|server_cpu_us|us|-|
range serializable, 1000 clients: load generator CPU per request|range-s-1000|client_cpu_us|us|-|
txn-put, 1000 clients: server CPU per request|txn-put-1000|server_cpu_us|us|-|
txn-put, 1000 clients|txn-put-1000|rps|req/s|ge|2.0
txn-put, 1000 clients|txn-put-1000|p99_ms|ms|-|
watch-latency (watch events)|watch-latency|p99_ms|ms|le|1.0
watch-latency (watch events)|watch-latency|avg_ms|ms|-|
peak RSS end of suite|end-of-suite|peak_rss_mib|MiB|-|
on-disk size end of suite|end-of-suite|disk_mib|MiB|-|
EOF
elif [[ "$MODE" == watchers ]]; then
	cat >"$SPEC" <<EOF
put $WATCHERS_PUTS, 100 clients, no watcher|put-no-watchers|rps|req/s|-|
put $WATCHERS_PUTS, 100 clients, 10,000 watchers on the keys|put-10k-watchers|put_rps|req/s|ge|1.0
watch events delivered to 10,000 watchers|put-10k-watchers|rps|events/s|ge|1.0
watch events: errors|put-10k-watchers|errors|-|-|
peak RSS with 10,000 watchers|watchers-end|peak_rss_mib|MiB|le|1.0
EOF
else
	cat >"$SPEC" <<EOF
load $LARGE_KEYS keys x $LARGE_VAL_SIZE B, 1000 clients|large-load|rps|req/s|-|
peak RSS after load|large-after-load|peak_rss_mib|MiB|le|0.5
on-disk size after load|large-after-load|disk_mib|MiB|-|
range linearizable, 1000 clients|large-range-l-1000|rps|req/s|-|
range serializable, 1000 clients|large-range-s-1000|rps|req/s|-|
scan 100 keys, 100 clients|large-scan-100|rps|req/s|-|
put (overwrite), 1000 clients|large-put-1000|rps|req/s|-|
put (overwrite), 1000 clients|large-put-1000|p99_ms|ms|-|
peak RSS end|large-end|peak_rss_mib|MiB|le|0.5
RSS end|large-end|rss_mib|MiB|-|
on-disk size end (after stop)|large-end|disk_mib|MiB|-|
EOF
fi
TABLE="$(awk -F'|' -f "$LIB/summary.awk" "$SPEC" FS='\t' "$RESULTS")"

raw_table() { # per-round numbers, one line per (bench, metric)
	awk -F'\t' '
		{ k = $3 " " $4; if (!(k in seen)) { seen[k] = 1; order[++n] = k }
		  v[k, $2] = v[k, $2] (v[k, $2] == "" ? "" : ", ") $5 }
		END {
			print "| Benchmark metric | metastore per round | etcd per round |"
			print "|---|---|---|"
			for (i = 1; i <= n; i++) printf "| %s | %s | %s |\n", order[i], v[order[i], "metastore"], v[order[i], "etcd"]
		}' "$RESULTS"
}

cmdline="$(env | grep -E '^(BENCH_[A-Z0-9_]+|METASTORE_BIN)=' | sort | tr '\n' ' ' || true)bench/compare.sh"
((QUICK)) && cmdline+=" --quick"
((LARGE)) && cmdline+=" --large"
((WATCHERS)) && cmdline+=" --watchers"
((MEMBERS > 1)) && cmdline+=" --members $MEMBERS"
[[ -n "$ROUNDS_FLAG" ]] && cmdline+=" --rounds $ROUNDS_FLAG"
REPORT="$OUT/report.md"
{
	echo "### Results ($SECTION) — $START_DATE"
	echo
	echo "Command: \`$cmdline\`; $ROUNDS round(s), order per round: ${ORDER[*]}; wall time ${elapsed}s."
	echo "Medians over rounds; ratio = metastore/etcd (for req/s higher is better, for ms and MiB lower is better)."
	echo
	echo "$TABLE"
	echo
	echo "Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r), $(go version | cut -d' ' -f3)."
	echo
	echo '```'
	free -g
	echo '```'
	echo
	echo "Servers: metastore \`$MS_VERSION\` (${METASTORE_BIN:+given as METASTORE_BIN=$METASTORE_BIN; }built from the working tree with \`go build ./cmd/metastore\`),"
	echo "etcd \`$("$ETCD_BIN" --version | head -1)\`; both started as $MEMBERS member(s), member i with \`--name bench<i> --data-dir <fresh dir> --listen-client-urls http://127.0.0.1:<$CLIENT_PORT+10i> --advertise-client-urls <same> --listen-peer-urls http://127.0.0.1:<$PEER_PORT+10i> --initial-advertise-peer-urls <same> --initial-cluster $INITIAL_CLUSTER${EXTRA_FLAGS[*]:+ ${EXTRA_FLAGS[*]}}\`, default fsync."
	echo
	echo "<details><summary>Benchmark commands ($(basename "$BENCHMARK") = go.etcd.io/etcd/v3/tools/benchmark v3.6.8)</summary>"
	echo
	echo '```'
	cat "$COMMANDS"
	echo '```'
	echo "</details>"
	echo
	echo "<details><summary>Raw per-round numbers and load averages</summary>"
	echo
	raw_table
	echo
	echo '| Round | Server | Benchmark | /proc/loadavg before |'
	echo '|---|---|---|---|'
	awk -F'\t' '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$LOADS"
	echo "</details>"
	if [[ -s "$FAILURES" ]]; then
		echo
		echo "<details><summary>Failures and errors</summary>"
		echo
		echo '```'
		cat "$FAILURES"
		echo '```'
		echo "</details>"
	fi
} >"$REPORT"

cat "$REPORT"

if [[ -n "$WRITE_DOCS" ]]; then
	# Replace only this mode's section, delimited by markers, so that the
	# suite and --large results can be refreshed independently.
	begin="<!-- BEGIN bench/compare.sh $SECTION -->"
	end="<!-- END bench/compare.sh $SECTION -->"
	[[ -f "$WRITE_DOCS" ]] || printf '# Benchmarks\n' >"$WRITE_DOCS"
	if grep -qF "$begin" "$WRITE_DOCS"; then
		awk -v b="$begin" -v e="$end" -v f="$REPORT" '
			$0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
			$0 == e { skip = 0 }
			!skip' "$WRITE_DOCS" >"$WRITE_DOCS.tmp"
	else
		{ cat "$WRITE_DOCS"; echo; echo "$begin"; cat "$REPORT"; echo "$end"; } >"$WRITE_DOCS.tmp"
	fi
	mv -f "$WRITE_DOCS.tmp" "$WRITE_DOCS"
	log "wrote $WRITE_DOCS"
fi
log "done in ${elapsed}s; raw outputs in $OUT$( ((KEEP)) || echo ' (removed; use --keep)')"
((FAILED == 0)) || exit 1
