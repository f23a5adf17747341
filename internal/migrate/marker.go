package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Marker is what a member in migration mode holds.
type Marker struct {
	// Token authorises the follower's writes and the cut-over.
	Token string `json:"token"`
	// Revision is the etcd revision the member was restored at.
	Revision int64 `json:"revision"`
}

// markerPath is the marker's place under a data dir.
func markerPath(dataDir string) string { return filepath.Join(dataDir, "member", "migrate.json") }

// WriteMarker puts dataDir in migration mode (synced).
func WriteMarker(dataDir string, m Marker) error {
	if m.Token == "" {
		return errors.New("migrate: empty token")
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p := markerPath(dataDir)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	_, err = f.Write(b)
	err = errors.Join(err, f.Sync(), f.Close())
	if err != nil {
		return fmt.Errorf("migrate: write %s: %w", p, err)
	}
	return nil
}

// ReadMarker returns dataDir's marker, or nil when it is not migrating.
func ReadMarker(dataDir string) (*Marker, error) {
	b, err := os.ReadFile(markerPath(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	m := &Marker{}
	if err := json.Unmarshal(b, m); err != nil || m.Token == "" {
		return nil, fmt.Errorf("migrate: %s is damaged: %v", markerPath(dataDir), err)
	}
	return m, nil
}

// removeMarker ends migration mode durably.
func removeMarker(dataDir string) error {
	p := markerPath(dataDir)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("migrate: %w", err)
	}
	d, err := os.Open(filepath.Dir(p))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	err = errors.Join(d.Sync(), d.Close())
	if err != nil {
		return fmt.Errorf("migrate: sync %s: %w", filepath.Dir(p), err)
	}
	return nil
}
