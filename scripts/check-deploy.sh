#!/usr/bin/env bash
# Validates the deployment files under deploy/ (no cluster, no Docker):
#   1. promtool check rules deploy/prometheus/alerts.yaml, and the alert
#      unit tests in deploy/prometheus/alerts_test.yaml (promtool test rules);
#   2. the Grafana dashboard is valid JSON (jq or python3, when present) with
#      a query behind every panel, and every document of the Kubernetes
#      manifests parses, with the StatefulSet's flags checked by the
#      server's own parser (go run ./deploy/internal/checkdeploy).
# promtool comes from Debian's prometheus package (extracted, not installed:
# nothing is started) when apt can fetch it, which takes seconds; otherwise
# scripts/install-tools.sh deploy builds it from the Go module proxy
# (pinned in tools/promtool; a cold build takes many minutes).
# METASTORE_SKIP_PROMTOOL=1 skips step 1 (e.g. on a machine without the
# Go module proxy).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${METASTORE_TOOLS_BIN:-$ROOT/.bin}"
cd "$ROOT"

if [[ -n "${METASTORE_SKIP_PROMTOOL:-}" ]]; then
	echo "check-deploy: METASTORE_SKIP_PROMTOOL set; not checking alert rules"
else
	if [[ ! -x "$BIN/promtool" ]] && command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1; then
		tmp="$(mktemp -d)"
		if (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 ||
			{ apt-get update -qq >/dev/null 2>&1 && apt-get download prometheus >/dev/null 2>&1; }; }); then
			dpkg -x "$tmp"/prometheus_*.deb "$tmp/x" && mkdir -p "$BIN" && cp "$tmp/x/usr/bin/promtool" "$BIN/promtool"
		fi
		rm -rf "$tmp"
	fi
	[[ -x "$BIN/promtool" ]] || "$ROOT/scripts/install-tools.sh" deploy
	"$BIN/promtool" check rules deploy/prometheus/alerts.yaml
	# Rule files in the test file are relative to it.
	(cd deploy/prometheus && "$BIN/promtool" test rules alerts_test.yaml)
fi

dash=deploy/grafana/metastore-dashboard.json
if command -v jq >/dev/null 2>&1; then
	jq empty "$dash"
elif command -v python3 >/dev/null 2>&1; then
	python3 -m json.tool "$dash" >/dev/null
fi
GOFLAGS="${GOFLAGS:-} -mod=readonly" go run ./deploy/internal/checkdeploy \
	-k8s deploy/kubernetes/metastore.yaml -dashboard "$dash"
echo "check-deploy: ok"
