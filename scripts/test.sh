#!/usr/bin/env bash
# The whole test suite, as CI runs it (README: "Run the tests").
#   1. installs the pinned etcd tooling the tests drive (etcdctl, etcdutl,
#      etcd's e2e suite) into .bin/ from the Go module proxy;
#   2. checks formatting, vet and staticcheck (tools/staticcheck);
#   3. unit, deterministic and benchmark-smoke tests of every package
#      but the end-to-end ones, under the race detector;
#   4. short fuzzing of the key encoding and request validation;
#   5. deployment files (alert rules with promtool, manifests, dashboard);
#   6. end-to-end tests of the real binary with clientv3 and etcdctl
#      (including kill -9 durability);
#   7. etcd's own client test suite (the passing cases, docs/compatibility.md).
# Set METASTORE_SKIP_ETCD_SUITE=1 to skip step 7 locally.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export METASTORE_REQUIRE_TOOLS=1

step() { printf '\n=== %s\n' "$*"; }

step "install test tools"
scripts/install-tools.sh test

step "gofmt and go vet"
unformatted="$(gofmt -l $(git ls-files '*.go' | grep -v '^tools/') 2>/dev/null || true)"
if [[ -n "$unformatted" ]]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...

step "staticcheck (default checks)"
# shellcheck disable=SC2046
"${METASTORE_TOOLS_BIN:-$ROOT/.bin}/staticcheck" $(go list ./...)

step "unit tests (race detector)"
# Every package but the end-to-end ones, all under the race detector: no
# hand-kept list of "concurrent" packages to forget one in. No test behaves
# differently without -race, so a second plain run would add only time.
# shellcheck disable=SC2046
go test -count=1 -race -timeout 15m $(go list ./... | grep -v '/tests/')

step "fuzz (short)"
# A fixed number of inputs per target (not a time limit): the run does the
# same amount of work on a loaded machine, and Go's coordinator has no time
# limit to miss while a slow worker answers. A finding prints "Failing input
# written to" and fails the run.
fuzz() {
	local out
	if out="$(go test -run='^$' -fuzz="^$1\$" -fuzztime=20000x "./$2" 2>&1)"; then
		echo "$out" | tail -1
		return 0
	fi
	echo "$out"
	return 1
}
for target in $(grep -rl --include='*_test.go' '^func Fuzz' internal | xargs -n1 dirname | sort -u); do
	for fn in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$target"/*_test.go | sed 's/^func //'); do
		fuzz "$fn" "$target"
	done
done

step "deployment files (promtool rules and tests, manifests, dashboard)"
scripts/check-deploy.sh

step "end-to-end tests (real binary, clientv3, etcdctl)"
go test -count=1 -timeout 15m ./tests/...

if [[ "${METASTORE_SKIP_ETCD_SUITE:-}" != 1 ]]; then
	step "etcd v3.7.3 client test suite (see docs/compatibility.md)"
	tests/etcdsuite/ci.sh
fi

step "robustness: one fault-injection scenario per fault kind, validated in full (docs/robustness.md)"
# Its own module (etcd's robustness packages and their dependencies stay out
# of the main go.mod), so neither `go vet ./...` nor `go test ./tests/...`
# above reach it.
(cd tests/robustness && go vet ./... && go test -count=1 -timeout 10m -skip '^TestRobustnessSeed$' .)
