package snapshot

import (
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// pack writes a snapshot file the way etcdctl saves one: the stream, then
// the SHA-256 the server sends last.
func pack(t *testing.T, dir, out string) {
	t.Helper()
	r, size, err := Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) != size {
		t.Fatalf("Pack announced %d bytes, streamed %d", size, len(data))
	}
	if len(data)%blockSize != 0 {
		t.Fatalf("archive of %d bytes is not a multiple of %d: etcdctl would reject it", len(data), blockSize)
	}
	sum := sha256.Sum256(data)
	if err := os.WriteFile(out, append(data, sum[:]...), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPackUnpackRoundTrip(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{"000001.sst": "table\x00data", "MANIFEST-000001": "m", "sub/OPTIONS": string(make([]byte, 1500))}
	for name, body := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	snap := filepath.Join(t.TempDir(), "snap.db")
	pack(t, src, snap)
	dest := filepath.Join(t.TempDir(), "restored")
	if err := Unpack(snap, dest); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		got, err := os.ReadFile(filepath.Join(dest, name))
		if err != nil || string(got) != body {
			t.Fatalf("%s: %q, %v", name, got, err)
		}
	}
	if err := Unpack(snap, dest); err == nil {
		t.Fatal("restoring over an existing directory must fail")
	}
}

func TestUnpackDetectsCorruption(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("payload"), 0o600); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(t.TempDir(), "snap.db")
	pack(t, src, snap)
	data, _ := os.ReadFile(snap)
	data[600] ^= 0x01
	if err := os.WriteFile(snap, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Unpack(snap, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped bit: %v, want ErrCorrupt", err)
	}
	if err := os.WriteFile(snap, data[:100], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Unpack(snap, filepath.Join(t.TempDir(), "y")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v, want ErrCorrupt", err)
	}
}
