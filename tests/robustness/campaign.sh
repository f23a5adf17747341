#!/usr/bin/env bash
# Runs N randomized robustness scenarios (tests/robustness, docs/robustness.md)
# and prints a table: seed, fault, traffic, members, faults injected,
# requests ok/failed, validation result.
#
#   tests/robustness/campaign.sh N [FIRST_SEED]   N scenarios, seeds FIRST_SEED.. (default: random start)
#   tests/robustness/campaign.sh replay SEED       run one scenario again by its seed
#
# A failed run keeps its history, member data dirs and logs and porcupine's
# history.html under $ROBUSTNESS_RESULTS_DIR/seed-SEED (default
# ${TMPDIR:-/tmp}/metastore-robustness); ROBUSTNESS_KEEP=1 keeps every run's.
# ROBUSTNESS_FAULT=<kind> fixes the fault kind. Exits non-zero if any run failed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# With the failpoints compiled in: the fp-* and disk-* fault kinds set them
# over gofail's endpoint; the other kinds leave them off (a no-op).
(cd "$ROOT" && go build -tags failpoints -o "$work/metastore" ./cmd/metastore)
(cd "$HERE" && go test -c -o "$work/robustness.test" .)
export METASTORE_E2E_SERVER_BIN="$work/metastore"

run() { # seed
	local out
	out="$work/run-$1.log"
	if ROBUSTNESS_SEED="$1" "$work/robustness.test" -test.run '^TestRobustnessSeed$' -test.v -test.timeout 10m >"$out" 2>&1; then
		status=pass
	else
		status=FAIL
	fi
	row="$(grep -m1 '^ROBUSTNESS-ROW' "$out" | sed 's/^ROBUSTNESS-ROW //' || true)"
	[[ -n "$row" ]] || row="| $1 | ? | ? | ? | run did not finish: $(grep -m1 -E 'panic|FAIL|Error' "$out" | tr '|' '/' || true) | | | FAILED |"
	echo "$row"
	if [[ $status == FAIL ]]; then
		dir="${ROBUSTNESS_RESULTS_DIR:-${TMPDIR:-/tmp}/metastore-robustness}/seed-$1"
		mkdir -p "$dir" && cp "$out" "$dir/test.log"
		failed=$((failed + 1))
	fi
}

failed=0
echo "| seed | fault | traffic | members | faults injected | requests ok | requests failed | validation |"
echo "|---|---|---|---|---|---|---|---|"
if [[ "${1:-}" == replay ]]; then
	run "${2:?usage: campaign.sh replay SEED}"
else
	n="${1:?usage: campaign.sh N [FIRST_SEED] | replay SEED}"
	first="${2:-$(( (RANDOM << 15 | RANDOM) ))}"
	for ((i = 0; i < n; i++)); do
		run $((first + i))
	done
fi
echo "failed runs: $failed"
[[ $failed == 0 ]]
