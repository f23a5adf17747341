package server

import (
	"strings"
	"testing"
)

func TestNewRejectsWhatCannotStart(t *testing.T) {
	base := func(t *testing.T) *Config {
		cfg, err := ParseFlags([]string{"--storage-engine", "memory"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if _, err := New(base(t), nil); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	cases := []struct {
		name  string
		spoil func(*Config)
		want  string
	}{
		{"no client URL", func(c *Config) { c.Member.ListenClientURLs = nil }, "--listen-client-urls"},
		{"no peer URL", func(c *Config) { c.Member.ListenPeerURLs = nil }, "--listen-peer-urls"},
		{"election shorter than heartbeat", func(c *Config) { c.Raft.ElectionTimeout = c.Raft.HeartbeatInterval / 2 }, "--election-timeout"},
		{"no data dir on disk", func(c *Config) { c.Storage.Engine = "pebble"; c.Member.DataDir = "" }, "--data-dir"},
	}
	for _, c := range cases {
		cfg := base(t)
		c.spoil(cfg)
		if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one naming %s", c.name, err, c.want)
		}
	}
	if _, err := New(nil, nil); err == nil {
		t.Error("nil config accepted")
	}
}
