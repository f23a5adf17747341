package config

import (
	"strings"
	"testing"
)

func TestMemorySizingFlags(t *testing.T) {
	c := mustParse(t, []string{"--max-range-bytes-in-flight", "64MiB", "--storage-block-cache-bytes", "1GiB", "--storage-memtable-bytes", "64MiB"}, nil)
	if c.Limits.RangeBudget() != 64<<20 || c.Limits.StorageBlockCacheBytes != 1<<30 || c.Limits.StorageMemtableBytes != 64<<20 {
		t.Fatalf("limits: %+v", c.Limits)
	}
	for arg, want := range map[string]int64{"0": 0, "1MiB": 1 << 20, "512MiB": 512 << 20} {
		if c := mustParse(t, []string{"--storage-key-cache-bytes", arg}, nil); c.Limits.StorageKeyCacheBytes != want {
			t.Errorf("--storage-key-cache-bytes %s: %d, want %d", arg, c.Limits.StorageKeyCacheBytes, want)
		}
	}
	for arg, want := range map[string]int64{"0": 0, "1MiB": 1 << 20, "2GiB": 2 << 30} {
		if c := mustParse(t, []string{"--snapshot-catchup-bytes", arg}, []string{}); c.Raft.SnapshotCatchUpBytes != want {
			t.Errorf("--snapshot-catchup-bytes %s: %d, want %d", arg, c.Raft.SnapshotCatchUpBytes, want)
		}
	}
	if c := mustParse(t, nil, []string{"ETCD_SNAPSHOT_CATCHUP_BYTES=64MiB"}); c.Raft.SnapshotCatchUpBytes != 64<<20 {
		t.Errorf("ETCD_SNAPSHOT_CATCHUP_BYTES=64MiB: %d", c.Raft.SnapshotCatchUpBytes)
	}
	for _, tt := range []struct {
		memLimit string
		want     int64
	}{
		{"8GiB", 1 << 30},
		{"1GiB", 128 << 20},
		{"100MiB", 64 << 20},
		{"0", 1 << 30},
	} {
		c := mustParse(t, []string{"--memory-limit-bytes", tt.memLimit}, nil)
		if got := c.Limits.RangeBudget(); got != tt.want {
			t.Errorf("--memory-limit-bytes %s: range budget %d, want %d", tt.memLimit, got, tt.want)
		}
	}
}

func TestMemorySizingFlagsRejectBadValues(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-range-bytes-in-flight", "-1"}, "--max-range-bytes-in-flight"},
		{[]string{"--max-range-bytes-in-flight", "lots"}, "--max-range-bytes-in-flight"},
		{[]string{"--max-range-bytes-in-flight", "1000"}, "--max-range-bytes-in-flight: must be at least 1MiB"},
		{[]string{"--storage-block-cache-bytes", "0"}, "--storage-block-cache-bytes: must be at least 1MiB"},
		{[]string{"--storage-memtable-bytes", "4GiB"}, "--storage-memtable-bytes: must be less than 4GiB"},
		{[]string{"--storage-memtable-bytes", "512KiB"}, "--storage-memtable-bytes: must be at least 1MiB"},
		{[]string{"--storage-key-cache-bytes", "1000"}, "--storage-key-cache-bytes: must be at least 1MiB"},
		{[]string{"--storage-key-cache-bytes", "-1"}, "--storage-key-cache-bytes"},
		{[]string{"--snapshot-catchup-bytes", "1000"}, "--snapshot-catchup-bytes: must be 0 or at least 1MiB"},
		{[]string{"--snapshot-catchup-bytes", "-5"}, "--snapshot-catchup-bytes"},
		{[]string{"--snapshot-catchup-bytes", "many"}, "--snapshot-catchup-bytes"},
	} {
		c, err := Parse(append(tt.args, "--data-dir", t.TempDir()), nil)
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q) = %v, want one line with %q", tt.args, err, tt.want)
		}
	}
}
