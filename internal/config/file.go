package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Keys of etcd's config file that hold a nested map instead of one flag,
// with the flag each nested key stands for. A key mapped to "" has no flag
// and is stored by setNested.
var (
	clientSecurityKeys = map[string]string{
		"cert-file":                    "cert-file",
		"key-file":                     "key-file",
		"client-cert-file":             "client-cert-file",
		"client-key-file":              "client-key-file",
		"client-cert-auth":             "client-cert-auth",
		"trusted-ca-file":              "trusted-ca-file",
		"auto-tls":                     "auto-tls",
		"allowed-hostname":             "client-cert-allowed-hostname",
		"crl-file":                     "client-crl-file",
		"allowed-cn":                   "",
		"skip-client-san-verification": "",
	}
	peerSecurityKeys = map[string]string{
		"cert-file":                    "peer-cert-file",
		"key-file":                     "peer-key-file",
		"client-cert-file":             "peer-client-cert-file",
		"client-key-file":              "peer-client-key-file",
		"client-cert-auth":             "peer-client-cert-auth",
		"trusted-ca-file":              "peer-trusted-ca-file",
		"auto-tls":                     "peer-auto-tls",
		"allowed-cn":                   "peer-cert-allowed-cn",
		"allowed-hostname":             "peer-cert-allowed-hostname",
		"crl-file":                     "peer-crl-file",
		"skip-client-san-verification": "peer-skip-client-san-verification",
	}
	discoveryKeys = map[string]string{
		"token":                                  "discovery-token",
		"client.endpoints":                       "discovery-endpoints",
		"client.dial-timeout":                    "discovery-dial-timeout",
		"client.request-timeout":                 "discovery-request-timeout",
		"client.keepalive-time":                  "discovery-keepalive-time",
		"client.keepalive-timeout":               "discovery-keepalive-timeout",
		"client.secure.cert":                     "discovery-cert",
		"client.secure.key":                      "discovery-key",
		"client.secure.cacert":                   "discovery-cacert",
		"client.secure.insecure-transport":       "discovery-insecure-transport",
		"client.secure.insecure-skip-tls-verify": "discovery-insecure-skip-tls-verify",
		"client.auth.username":                   "discovery-user",
		"client.auth.password":                   "discovery-password",
	}
	socketKeys = map[string]string{
		"reuse-port":    "socket-reuse-port",
		"reuse-address": "socket-reuse-address",
	}
)

// loadFile reads an etcd YAML config file into c through the same flag
// values the command line uses, so parsing and messages are identical.
// It accepts what etcd accepts (durations as integer nanoseconds, lists as
// YAML lists or comma strings) and also Go duration strings.
func (c *Config) loadFile(path string, fs *flag.FlagSet, byName map[string]flagSpec) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read --config-file: %w", err)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return fmt.Errorf("parse --config-file %q: %w", path, err)
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("parse --config-file %q: expected a YAML mapping of etcd configuration keys: %w", path, err)
	}
	set := func(key, name string, v any) error {
		if v == nil {
			return nil
		}
		spec, ok := byName[name]
		if !ok {
			return fmt.Errorf("config file %q: key %s: no flag --%s", path, key, name)
		}
		text, err := fileValueText(spec.kind, v)
		if err == nil {
			err = fs.Set(name, text)
		}
		if err != nil {
			return fmt.Errorf("config file %q: invalid value %v for key %s (flag --%s): %w", path, v, key, name, err)
		}
		c.set[name] = SourceFile
		return nil
	}
	nested := func(key string, v any, names map[string]string, direct func(k string, v any) error) error {
		if v == nil {
			return nil
		}
		flat, ok := flatten(v, "")
		if !ok {
			return fmt.Errorf("config file %q: invalid %s: expected a mapping", path, key)
		}
		for _, k := range sortedKeys(flat) {
			name, known := names[k]
			switch {
			case !known:
				c.warnf("config file %q: unrecognized key %s.%s; ignoring it", path, key, k)
			case name == "":
				if err := direct(k, flat[k]); err != nil {
					return fmt.Errorf("config file %q: invalid value %v for key %s.%s: %w", path, flat[k], key, k, err)
				}
			default:
				if err := set(key+"."+k, name, flat[k]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, key := range sortedKeys(doc) {
		v := doc[key]
		var err error
		switch key {
		case "client-transport-security":
			err = nested(key, v, clientSecurityKeys, func(k string, v any) error {
				return c.setClientTLSDirect(k, v)
			})
		case "peer-transport-security":
			err = nested(key, v, peerSecurityKeys, nil)
		case "discovery-config":
			err = nested(key, v, discoveryKeys, nil)
		case "socket-options":
			err = nested(key, v, socketKeys, nil)
		case flagConfigFile, flagVersion:
			// Meaningless inside the file.
		case flagV2Deprecation:
			// etcd reads this key into a plain string without checking it
			// (only the command line and ETCD_V2_DEPRECATION check the
			// phase), warns, and enforces the default phase.
			if v != nil {
				c.Cluster.V2DeprecationGiven = fmt.Sprint(v)
				c.set[key] = SourceFile
				c.warnf("%s", v2DeprecationWarning)
			}
		default:
			if _, ok := byName[key]; ok {
				err = set(key, key, v)
			} else if !isIgnoredFlag(key) {
				c.warnf("config file %q: unrecognized key %s; ignoring it", path, key)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// setClientTLSDirect stores client-transport-security keys that have no
// command-line flag of their own.
func (c *Config) setClientTLSDirect(k string, v any) error {
	switch k {
	case "allowed-cn":
		text, err := fileValueText(kindList, v)
		if err != nil {
			return err
		}
		return listValue{&c.ClientTLS.AllowedCNs, false}.Set(text)
	case "skip-client-san-verification":
		text, err := fileValueText(kindBool, v)
		if err != nil {
			return err
		}
		return boolValue{&c.ClientTLS.SkipClientSANVerify}.Set(text)
	}
	return nil
}

// fileValueText turns a decoded YAML value into the text the flag parses.
func fileValueText(k kind, v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return fmt.Sprint(x), nil
	case json.Number:
		if k == kindDuration {
			// etcd's file format: time.Duration as integer nanoseconds.
			n, err := x.Int64()
			if err != nil {
				return "", fmt.Errorf("expected integer nanoseconds or a duration string")
			}
			return time.Duration(n).String(), nil
		}
		return x.String(), nil
	case []any:
		if k != kindList {
			return "", fmt.Errorf("expected a single value, not a list")
		}
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, err := fileValueText(kindString, e)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("unexpected value of type %T", v)
}

// flatten turns nested mappings into "a.b.c" keys.
func flatten(v any, prefix string) (map[string]any, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	out := map[string]any{}
	for k, e := range m {
		if sub, isMap := e.(map[string]any); isMap {
			inner, _ := flatten(sub, prefix+k+".")
			for ik, iv := range inner {
				out[ik] = iv
			}
			continue
		}
		out[prefix+k] = e
	}
	return out, true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func isIgnoredFlag(name string) bool {
	for _, n := range ignoredFlags {
		if n == name {
			return true
		}
	}
	return false
}
