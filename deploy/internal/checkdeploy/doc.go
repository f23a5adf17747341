// Command checkdeploy validates the deployment files under deploy/ without
// a cluster: scripts/check-deploy.sh runs it.
//
// It parses every document of the Kubernetes manifests (sigs.k8s.io/yaml,
// as kubectl does), and checks the StatefulSet against the server's own
// flag parser and validation (internal/config), so a flag renamed or
// mistyped in the manifest fails here rather than in a crash-looping pod:
// that --initial-cluster names exactly the StatefulSet's pods through its
// headless Service, that the probes hit /livez and /readyz on a port the
// member listens on, and that the termination grace period outlasts
// preStop plus --shutdown-timeout, so Kubernetes never SIGKILLs a member
// in the middle of its graceful shutdown. It also checks that the Grafana
// dashboard is valid JSON with a query behind every panel.
//
// Usage: go run ./deploy/internal/checkdeploy -k8s FILE -dashboard FILE
package main
