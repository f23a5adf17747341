package main

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// valueSource hands out the value of key i, of the given size.
type valueSource interface {
	get(r *rand.Rand, i, size int) string
}

// objects hands out values shaped like Kubernetes objects as the API server
// stores built-in kinds: protobuf, so field names are not in the bytes (each
// field is a tag byte and a length), but the strings are: label and
// annotation keys, image names, the managedFields JSON (raw JSON inside the
// protobuf, often half of a pod), timestamps, and per-object random parts
// (UIDs, hashes, IPs, container IDs, environment values). Secrets carry
// random data (base64), configmaps configuration text. Each value is cut to
// its size; the server sees opaque bytes, so a cut object is as good as a
// whole one.
//
// What a block compressor gets from them is reported by
// TestObjectsCompressLikeKubernetesObjects (Snappy, as Pebble's blocks):
// the -values flag keeps the incompressible random values as the default,
// so that disk figures of both kinds can be told apart.
type objects struct {
	rand *values // random bytes for secrets' data
}

var (
	apps      = []string{"frontend", "checkout", "payments", "catalog", "search", "auth", "gateway", "inventory", "shipping", "recommendations", "notifications", "metrics-exporter"}
	images    = []string{"registry.k8s.io/pause:3.10", "docker.io/library/nginx:1.27.3", "quay.io/prometheus/node-exporter:v1.8.2", "ghcr.io/example/%s:v1.%d.%d", "gcr.io/example-prod/%s-server:2026.11.%d"}
	envNames  = []string{"LOG_LEVEL", "DATABASE_URL", "REDIS_HOST", "OTEL_EXPORTER_OTLP_ENDPOINT", "FEATURE_FLAGS", "HTTP_PORT", "GOMAXPROCS", "JAVA_OPTS", "SERVICE_ACCOUNT", "REGION", "CACHE_TTL_SECONDS", "UPSTREAM_TIMEOUT"}
	reasons   = []string{"Scheduled", "Pulling", "Pulled", "Created", "Started", "Killing", "BackOff", "Unhealthy", "SuccessfulCreate", "ScalingReplicaSet"}
	confLines = []string{"server.port=%d", "server.shutdown.grace-period=%ds", "spring.datasource.hikari.maximum-pool-size=%d", "logging.level.root=INFO", "management.endpoints.web.exposure.include=health,info,prometheus", "cache.ttl=%dm", "feature.%s.enabled=true", "upstream.%s.timeout-ms=%d"}
)

const managedFields = `{"f:metadata":{"f:labels":{".":{},"f:app":{},"f:pod-template-hash":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"%s\"}":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"%s\"}":{".":{},"f:env":{".":{},"k:{\"name\":\"LOG_LEVEL\"}":{".":{},"f:name":{},"f:value":{}}},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:ports":{".":{},"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:protocol":{}}},"f:resources":{".":{},"f:limits":{".":{},"f:memory":{}},"f:requests":{".":{},"f:cpu":{},"f:memory":{}}},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}`

// wire appends protobuf-like fields: a tag byte, a varint length, the bytes.
type wire []byte

func (b wire) str(field int, s string) wire {
	b = append(b, byte(field<<3|2))
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func hexTok(r *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	var sb strings.Builder
	for range n {
		sb.WriteByte(digits[r.IntN(16)])
	}
	return sb.String()
}

func alnum(r *rand.Rand, n int) string {
	const chars = "bcdfghjklmnpqrstvwxz2456789"
	var sb strings.Builder
	for range n {
		sb.WriteByte(chars[r.IntN(len(chars))])
	}
	return sb.String()
}

func uid(r *rand.Rand) string {
	h := hexTok(r, 32)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func stamp(r *rand.Rand) string {
	return fmt.Sprintf("2026-%02d-%02dT%02d:%02d:%02dZ", 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
}

func pick(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }

func (o *objects) get(r *rand.Rand, i, size int) string {
	kind := kindOf(i)
	app := pick(r, apps)
	hash := alnum(r, 10)
	owner := uid(r)
	key := sizeKey(i)
	_, name, _ := strings.Cut(key[len("/registry/"):], "/")
	ns, name, _ := strings.Cut(name, "/")
	b := make(wire, 0, size+2048)
	// metadata
	b = b.str(1, name).str(3, ns).
		str(5, uid(r)).str(6, strconv.Itoa(1_000_000+r.IntN(900_000_000))).str(8, stamp(r)).
		str(11, "app").str(11, app).str(11, "pod-template-hash").str(11, hash).
		str(11, "app.kubernetes.io/managed-by").str(11, "Helm").
		str(12, "kubectl.kubernetes.io/restartedAt").str(12, stamp(r))
	switch kind {
	case "secrets":
		// Opaque data: random bytes, base64 as kubectl writes them.
		n := size * 3 / 4
		raw := o.rand.get(r, i, max(n, 1))
		for len(b) < size {
			b = b.str(2, "tls.key").str(2, base64.StdEncoding.EncodeToString([]byte(raw)))
		}
	case "configmaps":
		for len(b) < size {
			line := pick(r, confLines)
			switch strings.Count(line, "%") {
			case 1:
				if strings.Contains(line, "%s") {
					line = fmt.Sprintf(line, app)
				} else {
					line = fmt.Sprintf(line, r.IntN(10000))
				}
			case 2:
				line = fmt.Sprintf(line, app, r.IntN(10000))
			}
			b = b.str(2, line+"\n")
		}
	case "events":
		for len(b) < size {
			b = b.str(2, pick(r, reasons)).str(3, fmt.Sprintf("Pod %s-%s-%s", app, hash, alnum(r, 5))).
				str(4, fmt.Sprintf("Successfully pulled image %q in %dms (%dms including waiting). Image size: %d bytes.",
					fmt.Sprintf(images[3], app, r.IntN(20), r.IntN(50)), r.IntN(5000), r.IntN(9000), r.IntN(1<<30))).
				str(5, stamp(r)).str(6, "kubelet").str(7, fmt.Sprintf("node-%03d", r.IntN(500)))
		}
	default: // pods, deployments, services
		b = b.str(13, "apps/v1").str(13, "ReplicaSet").str(13, app+"-"+hash).str(13, owner).
			str(17, "kubectl-client-side-apply").str(17, fmt.Sprintf(managedFields, owner, app))
		for c := 0; len(b) < size; c++ {
			img := pick(r, images)
			if strings.Contains(img, "%") {
				img = fmt.Sprintf(img, app, r.IntN(20), r.IntN(50))
			}
			b = b.str(2, fmt.Sprintf("%s-%d", app, c)).str(3, img).str(4, "IfNotPresent").
				str(5, "/var/run/secrets/kubernetes.io/serviceaccount").str(6, "kube-api-access-"+alnum(r, 5))
			for range 3 + r.IntN(4) {
				b = b.str(7, pick(r, envNames)).str(8, alnum(r, 8+r.IntN(24)))
			}
			b = b.str(9, fmt.Sprintf("%dm", 50*(1+r.IntN(20)))).str(10, fmt.Sprintf("%dMi", 64*(1+r.IntN(32)))).
				str(20, fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), r.IntN(256))).
				str(21, "containerd://"+hexTok(r, 64)).str(22, img+"@sha256:"+hexTok(r, 64)).
				str(23, "Ready").str(23, "True").str(24, stamp(r)).str(23, "ContainersReady").str(23, "True").str(24, stamp(r))
		}
	}
	return string(b[:size])
}
