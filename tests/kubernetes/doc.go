// Package kubernetes runs a real kube-apiserver (k8s.io/kubernetes, pinned
// by tools/kubernetes) on a 3-member metastore cluster with client TLS and
// drives it with kubectl and the apiserver's REST API: creates, paginated and
// unpaginated lists, watches, resourceVersion conflicts and deletes of
// namespaces, configmaps and pods, while the metastore leader moves and a
// member restarts. It checks what Kubernetes users depend on: a watch opened
// before the faults sees every change exactly once and in order, and lists
// (served from the apiserver's watch cache, whose consistent reads need the
// store's progress notifications) equal what was written.
// TestDeployManifestApplies applies deploy/kubernetes/metastore.yaml, the
// manifest docs/operations.md deploys with, through the same apiserver.
//
// The tests carry the build tag "kubernetes" because building the apiserver
// takes minutes: run them with tests/kubernetes/run.sh, which builds the
// binaries (scripts/install-tools.sh k8s) first.
package kubernetes
