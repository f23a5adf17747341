package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestV2Deprecation checks --v2-deprecation against etcd v3.7.3's
// etcdmain: a comma list of write-only, write-only-skip-check,
// write-only-drop-data and gone is accepted (from the command line or
// ETCD_V2_DEPRECATION) with etcd's deprecation warning, "not-yet" and
// anything else are refused with etcd's message naming the bad item, and
// whatever is given the phase in effect is write-only.
func TestV2Deprecation(t *testing.T) {
	for _, tc := range []struct {
		args, env []string
		given     string
	}{
		{nil, nil, ""},
		{[]string{"--v2-deprecation", "write-only"}, nil, "write-only"},
		{[]string{"--v2-deprecation=write-only-skip-check"}, nil, "write-only-skip-check"},
		{[]string{"--v2-deprecation", "write-only-drop-data"}, nil, "write-only-drop-data"},
		{[]string{"--v2-deprecation", "gone"}, nil, "gone"},
		{[]string{"--v2-deprecation", "write-only,gone"}, nil, "gone,write-only"},
		{[]string{"--v2-deprecation", "gone", "--v2-deprecation", "write-only-skip-check"}, nil, "gone,write-only-skip-check"},
		{nil, []string{"ETCD_V2_DEPRECATION=gone"}, "gone"},
	} {
		c := mustParse(t, tc.args, tc.env)
		if c.Cluster.V2DeprecationGiven != tc.given || c.Cluster.V2Deprecation != "write-only" {
			t.Errorf("%v %v: given %q effective %q, want given %q effective write-only",
				tc.args, tc.env, c.Cluster.V2DeprecationGiven, c.Cluster.V2Deprecation, tc.given)
		}
		warned := slices.Contains(c.Warnings(), v2DeprecationWarning)
		if warned != (tc.given != "") {
			t.Errorf("%v %v: deprecation warned %v, want %v (warnings %q)", tc.args, tc.env, warned, tc.given != "", c.Warnings())
		}
	}
	for _, tc := range []struct {
		args, env []string
		want      string
	}{
		{[]string{"--v2-deprecation", "not-yet"}, nil, `invalid value "not-yet" for flag --v2-deprecation: invalid value "not-yet"`},
		{[]string{"--v2-deprecation", "bogus"}, nil, `invalid value "bogus" for flag --v2-deprecation: invalid value "bogus"`},
		{[]string{"--v2-deprecation", ""}, nil, `invalid value "" for flag --v2-deprecation: invalid value ""`},
		{[]string{"--v2-deprecation", "gone,never"}, nil, `invalid value "gone,never" for flag --v2-deprecation: invalid value "never"`},
		{nil, []string{"ETCD_V2_DEPRECATION=not-yet"}, `invalid value "not-yet" for environment variable ETCD_V2_DEPRECATION (flag --v2-deprecation): invalid value "not-yet"`},
	} {
		_, err := Parse(tc.args, tc.env)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v %v: err = %v, want %s", tc.args, tc.env, err, tc.want)
		}
	}
}

// TestV2DeprecationConfigFile checks that the config file's
// v2-deprecation key, which etcd reads into a plain string, takes any
// value with the warning, and the phase in effect is still write-only.
func TestV2DeprecationConfigFile(t *testing.T) {
	for _, v := range []string{"gone", "not-yet", "bogus"} {
		path := filepath.Join(t.TempDir(), "etcd.yaml")
		if err := os.WriteFile(path, []byte("name: m1\nv2-deprecation: "+v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c := mustParse(t, []string{"--config-file", path}, nil)
		if c.Cluster.V2DeprecationGiven != v || c.Cluster.V2Deprecation != "write-only" || c.SourceOf(flagV2Deprecation) != SourceFile {
			t.Errorf("%s: given %q effective %q source %v", v, c.Cluster.V2DeprecationGiven, c.Cluster.V2Deprecation, c.SourceOf(flagV2Deprecation))
		}
		if !slices.Contains(c.Warnings(), v2DeprecationWarning) {
			t.Errorf("%s: no deprecation warning in %q", v, c.Warnings())
		}
	}
}
