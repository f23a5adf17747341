#!/usr/bin/env bash
# Runs etcd v3.7.3's client test suite against metastore and fails if any
# case fails, except the ones docs/compatibility.md lists as not supported
# yet (skipped here, with the reason there). A newly failing case fails CI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

SKIP='^(TestAuthority)$'
"$ROOT/tests/etcdsuite/run.sh" '.*' -test.skip "$SKIP"
# TestAuthority passes for its http/https scenarios (docs/compatibility.md)
# but takes 1.5 minutes; it is left to manual runs to keep CI short.
