#!/usr/bin/env bash
# Runs etcd v3.7.3's own e2e "common" client test suite (tests/v3/common,
# compiled by scripts/install-tools.sh) against our server binary.
#
# Usage: tests/etcdsuite/run.sh [RUN_REGEXP] [extra test-binary flags...]
#   RUN_REGEXP defaults to '.*'; e.g. 'TestKVPut/NoTLS' or see tests/README.md.
# Environment:
#   METASTORE_SUITE_SERVER_BIN  server binary to test instead of building ./cmd/metastore
#                          (e.g. .bin/etcd-ref to check the harness against real etcd)
#   METASTORE_SUITE_BIN_DIR     directory to assemble binaries in (default: fresh temp dir)
#   METASTORE_SUITE_TIMEOUT     go test timeout (default 20m)
#   E2E_TEST_MINIMAL       default true: only the NoTLS (1 member) and
#                          "PeerTLS and ClientTLS" (3 members) cluster cases
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN="${1:-.*}"
shift || true

"$ROOT/scripts/install-tools.sh" test >&2

TMP=""
if [[ -n "${METASTORE_SUITE_BIN_DIR:-}" ]]; then
	BINDIR="$METASTORE_SUITE_BIN_DIR"
	mkdir -p "$BINDIR"
else
	TMP="$(mktemp -d "${TMPDIR:-/tmp}/etcdsuite.XXXXXX")"
	BINDIR="$TMP"
	trap 'rm -rf "$TMP"' EXIT
fi
BINDIR="$(cd "$BINDIR" && pwd)"

# The framework runs <bin-dir>/etcd, <bin-dir>/etcdctl and <bin-dir>/etcdutl.
if [[ -n "${METASTORE_SUITE_SERVER_BIN:-}" ]]; then
	cp -f "$METASTORE_SUITE_SERVER_BIN" "$BINDIR/etcd"
	echo "etcdsuite: server under test: $METASTORE_SUITE_SERVER_BIN" >&2
else
	(cd "$ROOT" && go build -buildvcs=false -o "$BINDIR/etcd" ./cmd/metastore)
	echo "etcdsuite: server under test: ./cmd/metastore" >&2
fi
cp -f "$ROOT/.bin/etcdctl" "$ROOT/.bin/etcdutl" "$BINDIR/"
# No etcd-last-release in BINDIR: mixed-version cluster cases are not generated.

# The suite resolves testdata (../fixtures certificates) relative to its
# package folder, so it must run from there (read-only module cache is fine).
suite_dir() { (cd "$ROOT/tools" && GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' go.etcd.io/etcd/tests/v3); }
SUITE_DIR="$(suite_dir)/common"
if [[ ! -d "$SUITE_DIR" ]]; then
	(cd "$ROOT/tools" && go mod download go.etcd.io/etcd/tests/v3)
	SUITE_DIR="$(suite_dir)/common"
fi

export E2E_TEST_MINIMAL="${E2E_TEST_MINIMAL:-true}"
# shellcheck source=portlock.sh
source "$ROOT/tests/etcdsuite/portlock.sh"
etcd_ports_lock etcdsuite
cd "$SUITE_DIR"
start=$SECONDS
set +e
"$ROOT/.bin/etcd-e2e-common.test" \
	-test.run "$RUN" -test.v -test.timeout "${METASTORE_SUITE_TIMEOUT:-20m}" \
	-bin-dir "$BINDIR" "$@"
rc=$?
set -e
echo "etcdsuite: finished in $((SECONDS - start))s, exit code $rc" >&2
exit $rc
