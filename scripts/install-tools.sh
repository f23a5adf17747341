#!/usr/bin/env bash
# Builds the pinned reference etcd tooling into <repo>/.bin/:
#   etcdctl, etcdutl            real etcd v3.7.3 clients (drive our server)
#   etcd-ref                    real etcd v3.7.3 server (reference for benchmarks/tests)
#   benchmark                   etcd's load generator (tools/benchmark v3.6.8)
#   etcd-e2e-common.test        etcd's compiled e2e "common" client test suite
#   grpc_health_probe           the standard gRPC health client (tools/healthprobe)
#   promtool                    Prometheus' rule checker (tools/promtool)
#   staticcheck                 the linter scripts/test.sh runs (tools/staticcheck)
#   kube-apiserver, kubectl     Kubernetes v1.35.4 (tools/kubernetes), for tests/kubernetes
# Versions are pinned by tools/go.mod+go.sum and tools/*/go.mod+go.sum (one module each
# for benchmark, healthprobe, promtool and staticcheck, so their dependencies never move each other).
# Idempotent: a binary is rebuilt only when its stamp (hash of the pinning
# files and the Go version) changed or the binary is missing.
# Usage: scripts/install-tools.sh [--force] [test|bench|deploy|k8s|all]
#   test   etcdctl, etcdutl, etcd-ref, etcd's e2e suite, grpc_health_probe and
#          staticcheck (what scripts/test.sh needs: the migration and comparison
#          e2e tests start the reference etcd)
#   deploy promtool built from source (scripts/check-deploy.sh takes Debian's
#          promtool first; a cold source build takes many minutes, so only
#          this argument asks for it)
#   bench  etcdctl, etcd-ref and benchmark (what bench/compare.sh needs)
#   k8s    kube-apiserver and kubectl (what tests/kubernetes/run.sh needs; a cold
#          build takes many minutes and GiBs of memory, so only this argument
#          asks for it)
#   all    test and bench (default)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${METASTORE_TOOLS_BIN:-$ROOT/.bin}"
TOOLS="$ROOT/tools"
FORCE=0
WHAT=all
for arg in "$@"; do
	case "$arg" in
	--force) FORCE=1 ;;
	test | bench | deploy | k8s | all) WHAT="$arg" ;;
	*)
		echo "install-tools: unknown argument $arg" >&2
		exit 2
		;;
	esac
done
want() { [[ ("$WHAT" == all && " $* " != *" deploy "* && " $* " != *" k8s "*) || " $* " == *" $WHAT "* ]]; }

mkdir -p "$BIN"
export GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false"

gover="$(go env GOVERSION)"

# stamp_key DIR: identifies exactly what would be built from module DIR.
stamp_key() {
	cat "$1/go.mod" "$1/go.sum" | sha256sum | cut -c1-16
	echo "$gover"
}

# build NAME MODDIR KIND PKG [LDFLAGS]: KIND is "bin" (go build) or "test" (go test -c -tags e2e).
build() {
	local name="$1" moddir="$2" kind="$3" pkg="$4" ldflags="${5:-}"
	local out="$BIN/$name" stamp="$BIN/.$name.stamp" key
	key="$(stamp_key "$moddir") $pkg${ldflags:+ $ldflags}"
	if [[ $FORCE -eq 0 && -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$key" ]]; then
		echo "install-tools: $name up to date"
		return 0
	fi
	echo "install-tools: building $name ($pkg)"
	local start=$SECONDS
	rm -f "$stamp"
	if [[ "$kind" == test ]]; then
		(cd "$moddir" && go test -tags e2e -c -o "$out.tmp" "$pkg")
	else
		(cd "$moddir" && go build -ldflags="$ldflags" -o "$out.tmp" "$pkg")
	fi
	mv -f "$out.tmp" "$out"
	printf '%s' "$key" >"$stamp"
	echo "install-tools: built $name in $((SECONDS - start))s"
}

build etcdctl "$TOOLS" bin go.etcd.io/etcd/etcdctl/v3
if want test; then
	build etcdutl "$TOOLS" bin go.etcd.io/etcd/etcdutl/v3
	build etcd-ref "$TOOLS" bin go.etcd.io/etcd/server/v3
	build etcd-e2e-common.test "$TOOLS" test go.etcd.io/etcd/tests/v3/common
	build grpc_health_probe "$TOOLS/healthprobe" bin github.com/grpc-ecosystem/grpc-health-probe
	build staticcheck "$TOOLS/staticcheck" bin honnef.co/go/tools/cmd/staticcheck
fi
if want deploy; then
	build promtool "$TOOLS/promtool" bin github.com/prometheus/prometheus/cmd/promtool
fi
if want k8s; then
	# The version the binaries report (/version, kubectl version); Kubernetes'
	# own build stamps it the same way. Keep in step with tools/kubernetes/go.mod.
	k8sver=v1.35.4
	k8sld="-X k8s.io/component-base/version.gitVersion=$k8sver -X k8s.io/component-base/version.gitMajor=1"
	k8sld+=" -X k8s.io/component-base/version.gitMinor=35 -X k8s.io/component-base/version.gitTreeState=clean"
	k8sld+=" -X k8s.io/client-go/pkg/version.gitVersion=$k8sver"
	# -trimpath: the binaries do not depend on where the module cache is.
	GOFLAGS="$GOFLAGS -trimpath" build kube-apiserver "$TOOLS/kubernetes" bin k8s.io/kubernetes/cmd/kube-apiserver "$k8sld"
	GOFLAGS="$GOFLAGS -trimpath" build kubectl "$TOOLS/kubernetes" bin k8s.io/kubernetes/cmd/kubectl "$k8sld"
fi
if want bench; then
	want test || build etcd-ref "$TOOLS" bin go.etcd.io/etcd/server/v3
	build benchmark "$TOOLS/benchmark" bin go.etcd.io/etcd/v3/tools/benchmark
fi

# Sanity check that the binaries run (no "| head": SIGPIPE would fail under pipefail).
out="$("$BIN/etcdctl" version)"
echo "install-tools: ${out%%$'\n'*}"
if want test bench; then
	out="$("$BIN/etcd-ref" --version)"
	echo "install-tools: etcd-ref ${out%%$'\n'*}"
fi
