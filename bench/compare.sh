#!/usr/bin/env bash
# bench/compare.sh: metastore against the real etcd v3.7.3, measured with
# etcd's own benchmark tool, on this machine, in one run. The harness is the
# Go program bench/cmd/compare (its doc.go and --help say what it measures
# and how); this script only builds and runs it, so the command in
# docs/benchmarks.md stays the same.
#
# Usage: bench/compare.sh [--quick] [--large|--watchers|--pinned] [--members N] [--rounds N] [--write-docs[=FILE]] [--keep]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$(mktemp -d "${TMPDIR:-/tmp}/metastore-compare.XXXXXX")"
trap 'rm -rf "$bin"' EXIT
(cd "$ROOT" && go build -o "$bin/compare" ./bench/cmd/compare)
# Not exec: the trap removes the binary afterwards. Signals reach the
# harness through the process group (Ctrl-C) or are passed on (TERM).
"$bin/compare" "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
rc=0
wait "$pid" || rc=$?
# A trapped signal interrupts the first wait; wait for the harness to stop.
if kill -0 "$pid" 2>/dev/null; then wait "$pid" || rc=$?; fi
exit "$rc"
