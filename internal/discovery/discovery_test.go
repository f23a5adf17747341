package discovery

import (
	"strings"
	"testing"
)

// TestAddKeepsCreationOrder checks what every member relies on to compute
// the same cluster: registrations ordered by creation revision, duplicates
// and values that are not "name=urls" left out.
func TestAddKeepsCreationOrder(t *testing.T) {
	var ms []member
	for _, m := range []member{
		{"/r/m/3", "c=http://3", 30},
		{"/r/m/1", "a=http://1", 10},
		{"/r/m/bad", "no-equals-sign", 5},
		{"/r/m/1", "a=http://1", 10},
		{"/r/m/2", "b=http://2", 20},
	} {
		ms = add(ms, m)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.value)
	}
	want := []string{"a=http://1", "b=http://2", "c=http://3"}
	if len(got) != len(want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("members %v, want %v", got, want)
		}
	}
}

// TestTLSDecision: when the discovery client dials with TLS, as etcd's
// client config decides it.
func TestTLSDecision(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c       Config
		tls     bool
		skip    bool
		wantErr string
	}{
		{name: "defaults: plain", c: Config{InsecureTransport: true}},
		{name: "secure transport", c: Config{InsecureTransport: false}, tls: true},
		{name: "skip verify alone", c: Config{InsecureTransport: true, InsecureSkipTLSVerify: true}, tls: true, skip: true},
		{name: "key without cert", c: Config{InsecureTransport: true, KeyFile: "k.pem"}, wantErr: "must both be given"},
		{name: "cert without key", c: Config{InsecureTransport: true, CertFile: "c.pem"}, wantErr: "must both be given"},
		{name: "missing CA file", c: Config{InsecureTransport: true, CAFile: "/nonexistent/ca.pem"}, wantErr: "--discovery-cacert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.c.tls()
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case (got != nil) != tc.tls:
				t.Fatalf("TLS config %v, want TLS %v", got, tc.tls)
			case got != nil && got.InsecureSkipVerify != tc.skip:
				t.Fatalf("InsecureSkipVerify %v, want %v", got.InsecureSkipVerify, tc.skip)
			}
		})
	}
}
