//go:build tools

// Package kubernetes pins kube-apiserver and kubectl (k8s.io/kubernetes
// v1.35.4) for tests/kubernetes, which runs a real apiserver on a metastore
// cluster. It is a module of its own because Kubernetes brings hundreds of
// dependencies that must never move the main module's or the other tools'.
package kubernetes

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
