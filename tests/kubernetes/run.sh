#!/usr/bin/env bash
# Kubernetes on metastore, end to end: builds kube-apiserver and kubectl
# (k8s.io/kubernetes v1.35.4, pinned by tools/kubernetes; skipped when up to
# date) and runs tests/kubernetes against a 3-member TLS metastore cluster.
# Not part of scripts/test.sh: the cold build alone takes longer than the CI
# budget allows (see docs/compatibility.md for the last result).
# Usage: tests/kubernetes/run.sh [extra go test flags, e.g. -run X]
# Env: METASTORE_TOOLS_BIN (where the binaries go, default <repo>/.bin),
#      METASTORE_K8S_TIMEOUT (go test -timeout, default 15m),
#      METASTORE_K8S_KEEP_LOG=DIR (copy the apiserver's log there).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
start=$SECONDS
scripts/install-tools.sh k8s
echo "run.sh: tools ready after $((SECONDS - start))s"
start=$SECONDS
METASTORE_REQUIRE_TOOLS=1 go test -tags kubernetes -count=1 -v \
	-timeout "${METASTORE_K8S_TIMEOUT:-15m}" "$@" ./tests/kubernetes/
echo "run.sh: tests passed in $((SECONDS - start))s"
