//go:build kubernetes

package kubernetes

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/metastore/metastore/internal/tlsutil/tlstest"
	"github.com/metastore/metastore/tests/framework"
)

func TestMain(m *testing.M) { os.Exit(framework.Main(m)) }

// apiToken is the bearer token of the test's only user (a system:masters
// member through --token-auth-file; authorization is AlwaysAllow anyway).
const apiToken = "metastore-kubernetes-test-token"

// env is one metastore cluster plus the kube-apiserver on it.
type env struct {
	t          *testing.T
	members    []*framework.Member
	url        string // https://127.0.0.1:PORT of the apiserver
	http       *http.Client
	kubeconfig string
	kubectl    string
	home       string
	logPath    string
	// clients[i] is a clientv3 client of members[i] (it reconnects across
	// restarts); only the test goroutine uses it.
	clients []*clientv3.Client
}

func (e *env) clientOf(i int) *clientv3.Client {
	if e.clients[i] == nil {
		e.clients[i] = e.members[i].Client()
	}
	return e.clients[i]
}

// startEnv starts a 3-member metastore cluster serving clients over TLS with
// client certificates, and kube-apiserver against it, and waits until the
// apiserver is ready. Everything is killed at test cleanup.
func startEnv(t *testing.T) *env {
	t.Helper()
	apiserverBin := framework.Tool(t, "kube-apiserver")
	kubectlBin := framework.Tool(t, "kubectl")
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "metastore-k8s-ca")
	caFile := ca.WriteCA(t, dir, "ca")
	members := framework.StartCluster(t, 3, framework.Options{
		ClientScheme: "https",
		StartTimeout: 60 * time.Second,
		MemberOptions: func(i int, o *framework.Options) {
			cert, key := ca.Issue(t, tlstest.Loopback("member")).Write(t, dir, fmt.Sprintf("member%d", i))
			o.ExtraArgs = append(o.ExtraArgs, "--cert-file", cert, "--key-file", key,
				"--trusted-ca-file", caFile, "--client-cert-auth")
			client := ca.Issue(t, tlstest.Names{CN: "test-client"})
			o.ClientTLS = &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client.TLS}, MinVersion: tls.VersionTLS12}
		},
	})
	etcdCert, etcdKey := ca.Issue(t, tlstest.Names{CN: "kube-apiserver-etcd-client"}).Write(t, dir, "etcd-client")
	servingCert, servingKey := ca.Issue(t, tlstest.Loopback("kube-apiserver")).Write(t, dir, "apiserver")

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	saKeyFile := tlstest.WriteFile(t, dir, "sa.key",
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}))
	tokenFile := tlstest.WriteFile(t, dir, "tokens.csv", []byte(apiToken+",admin,admin-uid,\"system:masters\"\n"))

	port, err := framework.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	var endpoints []string
	for _, m := range members {
		endpoints = append(endpoints, m.ClientURL)
	}
	e := &env{
		t:       t,
		members: members,
		url:     fmt.Sprintf("https://127.0.0.1:%d", port),
		http: &http.Client{
			Timeout:   20 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}},
		},
		kubectl: kubectlBin,
		clients: make([]*clientv3.Client, len(members)),
		home:    filepath.Join(dir, "home"),
		logPath: filepath.Join(dir, "kube-apiserver.log"),
	}
	if err := os.MkdirAll(e.home, 0o755); err != nil {
		t.Fatal(err)
	}
	e.kubeconfig = tlstest.WriteFile(t, dir, "kubeconfig", fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: metastore
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: metastore
  context:
    cluster: metastore
    user: admin
current-context: metastore
`, e.url, caFile, apiToken))

	args := []string{
		"--etcd-servers", strings.Join(endpoints, ","),
		"--etcd-cafile", caFile, "--etcd-certfile", etcdCert, "--etcd-keyfile", etcdKey,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", fmt.Sprint(port),
		"--tls-cert-file", servingCert, "--tls-private-key-file", servingKey,
		"--cert-dir", filepath.Join(dir, "certs"),
		"--token-auth-file", tokenFile,
		"--authorization-mode", "AlwaysAllow",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saKeyFile,
		"--service-account-signing-key-file", saKeyFile,
		"--service-cluster-ip-range", "10.0.0.0/24",
		// No controller-manager creates the "default" service account a
		// pod would need to pass this plugin.
		"--disable-admission-plugins", "ServiceAccount",
		// The apiserver compacts the store itself (a Txn on compact_rev_key,
		// then Compact); every 10s instead of 5m so it happens under the test.
		"--etcd-compaction-interval", "10s",
		// The "kubernetes" service's endpoints may not be a loopback
		// address: do not reconcile them (no pod would use them here).
		"--endpoint-reconciler-type", "none",
		"--profiling=false",
	}
	logf, err := os.Create(e.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child keeps its own descriptor
	cmd := exec.Command(apiserverBin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kube-apiserver: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("kube-apiserver still running 10s after SIGKILL")
		}
		if dir := os.Getenv("METASTORE_K8S_KEEP_LOG"); dir != "" {
			if b, err := os.ReadFile(e.logPath); err == nil {
				_ = os.WriteFile(filepath.Join(dir, "kube-apiserver.log"), b, 0o644)
			}
		}
		if t.Failed() {
			t.Logf("=== kube-apiserver log (%s), last 16 KiB:\n%s", e.logPath, e.logTail(16<<10))
		}
	})
	begin := time.Now()
	err = framework.WaitFor(3*time.Minute, 250*time.Millisecond, func() (bool, error) {
		select {
		case <-exited:
			return false, fmt.Errorf("kube-apiserver exited:\n%s", e.logTail(8<<10))
		default:
		}
		code, _, err := e.do(http.MethodGet, "/readyz", nil)
		return err == nil && code == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("kube-apiserver not ready: %v", err)
	}
	t.Logf("kube-apiserver ready on %s after %v", e.url, time.Since(begin).Round(time.Millisecond))
	return e
}

func (e *env) logTail(n int) string {
	b, _ := os.ReadFile(e.logPath)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// do sends one request to the apiserver and returns the status and body.
func (e *env) do(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// mustDo is do that fails the test unless the status is want.
func (e *env) mustDo(method, path string, body any, want int) []byte {
	e.t.Helper()
	code, b, err := e.do(method, path, body)
	if err != nil || code != want {
		e.t.Fatalf("%s %s: status %d err %v, want %d: %s", method, path, code, err, want, b)
	}
	return b
}

// kubectl runs kubectl against the apiserver (bounded to a minute).
func (e *env) kubectlRun(stdin string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.kubectl, append([]string{"--kubeconfig", e.kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+e.home, "KUBECONFIG=")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func (e *env) mustKubectl(stdin string, args ...string) string {
	e.t.Helper()
	out, errOut, err := e.kubectlRun(stdin, args...)
	if err != nil {
		e.t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// object is the part of a Kubernetes object the tests look at.
type object struct {
	Kind     string `json:"kind,omitempty"`
	Metadata struct {
		Name              string  `json:"name"`
		Namespace         string  `json:"namespace,omitempty"`
		ResourceVersion   string  `json:"resourceVersion,omitempty"`
		DeletionTimestamp *string `json:"deletionTimestamp,omitempty"`
	} `json:"metadata"`
	Data   map[string]string `json:"data,omitempty"`
	Status struct {
		Phase string `json:"phase,omitempty"`
	} `json:"status"`
	// Code is set on a Status object (an error).
	Code int `json:"code,omitempty"`
}

type list struct {
	Metadata struct {
		ResourceVersion    string `json:"resourceVersion"`
		Continue           string `json:"continue"`
		RemainingItemCount *int64 `json:"remainingItemCount"`
	} `json:"metadata"`
	Items []object `json:"items"`
}

// watchEvent is one event of a watch stream.
type watchEvent struct {
	Type   string `json:"type"`
	Object object `json:"object"`
}

// watcher follows one collection from a resourceVersion, resuming from the
// last one it saw if the apiserver ends the stream (as informers do).
type watcher struct {
	e    *env
	path string

	mu      sync.Mutex // guards the fields below
	events  []watchEvent
	resumes int
	err     error // a 410 Gone or a decode error: the watch lost history
	stop    bool
}

func (e *env) watch(path, fromRV string) *watcher {
	w := &watcher{e: e, path: path}
	go w.run(fromRV)
	return w
}

func (w *watcher) run(rv string) {
	// Bounded: each stream lasts at most timeoutSeconds, and at most 200
	// streams are opened (a test runs for a few minutes).
	for attempt := 0; attempt < 200; attempt++ {
		w.mu.Lock()
		stop := w.stop
		w.mu.Unlock()
		if stop {
			return
		}
		rv = w.stream(rv)
		w.mu.Lock()
		if w.err != nil {
			w.mu.Unlock()
			return
		}
		w.resumes++
		w.mu.Unlock()
	}
}

// stream reads one watch stream and returns the last resourceVersion seen.
func (w *watcher) stream(rv string) string {
	req, err := http.NewRequest(http.MethodGet,
		w.e.url+w.path+"?watch=1&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion="+rv, nil)
	if err != nil {
		w.fail(err)
		return rv
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	client := &http.Client{Transport: w.e.http.Transport} // no overall timeout: a stream
	resp, err := client.Do(req)
	if err != nil {
		time.Sleep(200 * time.Millisecond) // retry delay before reconnecting, not a wait for a condition
		return rv
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		w.fail(fmt.Errorf("watch from %s: status %d: %s", rv, resp.StatusCode, b))
		return rv
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var ev watchEvent
		if err := dec.Decode(&ev); err != nil {
			return rv // stream ended (timeout, apiserver closed it)
		}
		switch ev.Type {
		case "ERROR":
			w.fail(fmt.Errorf("watch from %s: ERROR event code %d", rv, ev.Object.Code))
			return rv
		case "BOOKMARK":
		default:
			w.mu.Lock()
			w.events = append(w.events, ev)
			w.mu.Unlock()
		}
		rv = ev.Object.Metadata.ResourceVersion
	}
}

func (w *watcher) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *watcher) snapshot() ([]watchEvent, int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]watchEvent(nil), w.events...), w.resumes, w.err
}

func (w *watcher) close() {
	w.mu.Lock()
	w.stop = true
	w.mu.Unlock()
}
