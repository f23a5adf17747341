package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/metastore/metastore/internal/config"
)

func main() {
	k8s := flag.String("k8s", "deploy/kubernetes/metastore.yaml", "Kubernetes manifests (multi-document YAML)")
	dashboard := flag.String("dashboard", "deploy/grafana/metastore-dashboard.json", "Grafana dashboard JSON")
	flag.Parse()
	var errs []error
	if err := checkKubernetes(*k8s); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", *k8s, err))
	}
	if err := checkDashboard(*dashboard); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", *dashboard, err))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(os.Stderr, "checkdeploy: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("checkdeploy: %s and %s are valid\n", *k8s, *dashboard)
}

// object is the part of a Kubernetes object the checks read.
type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

type statefulSetSpec struct {
	ServiceName string `json:"serviceName"`
	Replicas    int    `json:"replicas"`
	Template    struct {
		Spec struct {
			TerminationGracePeriodSeconds int         `json:"terminationGracePeriodSeconds"`
			Containers                    []container `json:"containers"`
		} `json:"spec"`
	} `json:"template"`
	VolumeClaimTemplates []object `json:"volumeClaimTemplates"`
}

type container struct {
	Name  string   `json:"name"`
	Args  []string `json:"args"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	LivenessProbe  *probe `json:"livenessProbe"`
	ReadinessProbe *probe `json:"readinessProbe"`
	StartupProbe   *probe `json:"startupProbe"`
	Lifecycle      struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `json:"seconds"`
			} `json:"sleep"`
		} `json:"preStop"`
	} `json:"lifecycle"`
	Resources struct {
		Requests map[string]string `json:"requests"`
		Limits   map[string]string `json:"limits"`
	} `json:"resources"`
}

type probe struct {
	HTTPGet *struct {
		Path string          `json:"path"`
		Port json.RawMessage `json:"port"` // a name or a number
	} `json:"httpGet"`
}

// splitDocs splits a multi-document YAML stream at "---" lines.
func splitDocs(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if strings.TrimSpace(stripComments(cur.String())) != "" {
			docs = append(docs, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if strings.TrimRight(line, " \r\n") == "---" {
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return docs
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func checkKubernetes(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	docs := splitDocs(b)
	services := map[string]bool{}
	var sets []object
	for i, d := range docs {
		var o object
		if err := yaml.UnmarshalStrict(d, &map[string]any{}); err != nil {
			return fmt.Errorf("document %d: %w", i+1, err)
		}
		if err := yaml.Unmarshal(d, &o); err != nil {
			return fmt.Errorf("document %d: %w", i+1, err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			return fmt.Errorf("document %d: apiVersion, kind and metadata.name are required", i+1)
		}
		switch o.Kind {
		case "Service":
			services[o.Metadata.Name] = true
		case "StatefulSet":
			sets = append(sets, o)
		}
	}
	if len(sets) == 0 {
		return errors.New("no StatefulSet")
	}
	for _, o := range sets {
		if err := checkStatefulSet(o, services); err != nil {
			return fmt.Errorf("StatefulSet %s: %w", o.Metadata.Name, err)
		}
	}
	return nil
}

func checkStatefulSet(o object, services map[string]bool) error {
	var spec statefulSetSpec
	if err := json.Unmarshal(o.Spec, &spec); err != nil {
		return err
	}
	if !services[spec.ServiceName] {
		return fmt.Errorf("serviceName %q is not a Service in the file", spec.ServiceName)
	}
	if spec.Replicas < 1 || spec.Replicas%2 == 0 {
		return fmt.Errorf("replicas %d: want an odd number of members", spec.Replicas)
	}
	if len(spec.VolumeClaimTemplates) == 0 {
		return errors.New("no volumeClaimTemplates: the data dir must outlive the pod")
	}
	var c *container
	for i := range spec.Template.Spec.Containers {
		if spec.Template.Spec.Containers[i].Name == "metastore" {
			c = &spec.Template.Spec.Containers[i]
		}
	}
	if c == nil {
		return errors.New(`no container named "metastore"`)
	}
	if c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		return errors.New("memory requests and limits must be set")
	}
	// Every pod must parse and validate with the server's own rules.
	ns := "default"
	var cfgs []*config.Config
	for i := range spec.Replicas {
		pod := fmt.Sprintf("%s-%d", o.Metadata.Name, i)
		args := make([]string, len(c.Args))
		for j, a := range c.Args {
			args[j] = strings.NewReplacer("$(POD_NAME)", pod, "$(POD_NAMESPACE)", ns).Replace(a)
			if m := regexp.MustCompile(`\$\([A-Z_]+\)`).FindString(args[j]); m != "" {
				return fmt.Errorf("argument %q uses %s, which the checker does not know", a, m)
			}
		}
		cfg, err := config.Parse(args, nil)
		if err != nil {
			return fmt.Errorf("pod %s: %w", pod, err)
		}
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("pod %s: %w", pod, err)
		}
		if cfg.Member.Name != pod {
			return fmt.Errorf("pod %s: --name is %q", pod, cfg.Member.Name)
		}
		cfgs = append(cfgs, cfg)
	}
	// --initial-cluster names exactly the pods, at their stable DNS names.
	members := cfgs[0].Cluster.InitialMembers
	if len(members) != spec.Replicas {
		return fmt.Errorf("--initial-cluster has %d members, replicas is %d", len(members), spec.Replicas)
	}
	for i, cfg := range cfgs {
		pod := fmt.Sprintf("%s-%d", o.Metadata.Name, i)
		urls, ok := members[pod]
		if !ok || len(urls) != 1 {
			return fmt.Errorf("--initial-cluster lacks %s", pod)
		}
		want := fmt.Sprintf("%s.%s.%s.svc", pod, spec.ServiceName, ns)
		if urls[0].Hostname() != want {
			return fmt.Errorf("--initial-cluster: %s at %s, want host %s", pod, urls[0].Host, want)
		}
		if adv := cfg.Member.AdvertisePeerURLs; len(adv) != 1 || adv[0] != urls[0] {
			return fmt.Errorf("pod %s: --initial-advertise-peer-urls %v differs from its --initial-cluster entry %s", pod, adv, urls[0].String())
		}
	}
	// Probes reach the health endpoints on a port the member listens on.
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
		ports[strconv.Itoa(p.ContainerPort)] = p.ContainerPort
	}
	listening := map[int]bool{}
	cfg := cfgs[0]
	for _, us := range [][]url.URL{cfg.Member.ListenClientURLs, cfg.Ops.ListenMetricsURLs} {
		for _, u := range us {
			if n, err := strconv.Atoi(u.Port()); err == nil {
				listening[n] = true
			}
		}
	}
	for _, pc := range []struct {
		name string
		p    *probe
		path string
	}{{"livenessProbe", c.LivenessProbe, "/livez"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
		if pc.p == nil || pc.p.HTTPGet == nil {
			return fmt.Errorf("%s: an httpGet probe is required", pc.name)
		}
		if pc.p.HTTPGet.Path != pc.path {
			return fmt.Errorf("%s: path %q, want %q", pc.name, pc.p.HTTPGet.Path, pc.path)
		}
		port := strings.Trim(string(pc.p.HTTPGet.Port), `"`)
		if n, ok := ports[port]; !ok || !listening[n] {
			return fmt.Errorf("%s: port %s is not a client or metrics port of the member", pc.name, port)
		}
	}
	// Kubernetes must not SIGKILL a member during its graceful shutdown.
	preStop := 0
	if ps := c.Lifecycle.PreStop; ps != nil && ps.Sleep != nil {
		preStop = ps.Sleep.Seconds
	}
	grace := time.Duration(spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if need := time.Duration(preStop)*time.Second + cfg.Limits.ShutdownTimeout; grace <= need {
		return fmt.Errorf("terminationGracePeriodSeconds %v must exceed preStop (%ds) + --shutdown-timeout (%v)", grace, preStop, cfg.Limits.ShutdownTimeout)
	}
	return nil
}

// dashboard is the part of a Grafana dashboard the checks read.
type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // collapsed rows
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func checkDashboard(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var d dashboard
	if err := dec.Decode(&d); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return errors.New("trailing data after the dashboard object")
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 {
		return errors.New("title, uid and schemaVersion are required")
	}
	ids := map[int]bool{}
	var walk func(ps []panel) (int, error)
	walk = func(ps []panel) (int, error) {
		n := 0
		for _, p := range ps {
			if ids[p.ID] {
				return 0, fmt.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				m, err := walk(p.Panels)
				if err != nil {
					return 0, err
				}
				n += m
				continue
			}
			if p.Title == "" || len(p.Targets) == 0 {
				return 0, fmt.Errorf("panel %d: a title and at least one query are required", p.ID)
			}
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) == "" {
					return 0, fmt.Errorf("panel %q: empty query", p.Title)
				}
			}
			n++
		}
		return n, nil
	}
	n, err := walk(d.Panels)
	if err != nil {
		return err
	}
	if n == 0 {
		return errors.New("no panels")
	}
	return nil
}
