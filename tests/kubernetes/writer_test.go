//go:build kubernetes

package kubernetes

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/metastore/metastore/tests/framework"
)

// writer creates, updates and deletes configmaps one at a time and records
// each change that took effect, so a watch can be checked against it. A
// request that fails in a way that leaves its outcome unknown (a timeout or
// a 5xx while the metastore leader changes) is resolved by reading the
// object back before retrying.
type writer struct {
	e *env

	mu      sync.Mutex          // guards the fields below
	applied map[string][]string // name -> data["v"] of each change, deleted for a delete
	writes  int
	retries int
}

func (w *writer) record(name, v string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.applied[name] = append(w.applied[name], v)
	w.writes++
}

func (w *writer) appliedCopy() map[string][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := make(map[string][]string, len(w.applied))
	for k, v := range w.applied {
		c[k] = append([]string(nil), v...)
	}
	return c
}

// run performs every write, sending the number done so far on progress.
func (w *writer) run(progress chan<- int) error {
	rvs := map[string]string{}
	n := 0
	step := func(name, v string) error {
		rv, err := w.apply(name, v, rvs[name])
		if err != nil {
			return err
		}
		rvs[name] = rv
		n++
		progress <- n
		return nil
	}
	for round := 0; round <= numUpdates; round++ {
		for i := range numObjects {
			if err := step(fmt.Sprintf("cm-%d", i), fmt.Sprintf("r%d", round)); err != nil {
				return err
			}
		}
	}
	for i := 0; i < numObjects; i += deleteEvery {
		if err := step(fmt.Sprintf("cm-%d", i), deleted); err != nil {
			return err
		}
	}
	return nil
}

// apply makes one change: a create when rv is empty, a delete when v is
// deleted, else an update from rv. It returns the new resourceVersion.
func (w *writer) apply(name, v, rv string) (string, error) {
	method, path, want := http.MethodPut, cmPath+"/"+name, http.StatusOK
	var body any = configMap(name, v, rv)
	switch {
	case v == deleted:
		method, body = http.MethodDelete, nil
	case rv == "":
		method, path, want = http.MethodPost, cmPath, http.StatusCreated
	}
	var newRV string
	var lastErr error
	attempt := 0
	err := framework.WaitFor(2*time.Minute, 300*time.Millisecond, func() (bool, error) {
		attempt++
		code, b, err := w.e.do(method, path, body)
		if err == nil && code == want {
			if v == deleted {
				return true, nil // the answer is a Status, not the object
			}
			var o object
			if err := json.Unmarshal(b, &o); err != nil {
				return false, fmt.Errorf("%s %s: decode: %w", method, path, err)
			}
			newRV = o.Metadata.ResourceVersion
			return true, nil
		}
		transient := err != nil || code >= 500 || code == http.StatusTooManyRequests
		// After an attempt of unknown outcome, "already exists", "conflict"
		// and "not found" may mean that attempt took effect.
		maybeDone := attempt > 1 && (code == http.StatusConflict || code == http.StatusNotFound)
		if !transient && !maybeDone {
			return false, fmt.Errorf("%s %s: status %d: %s", method, path, code, b)
		}
		lastErr = fmt.Errorf("status %d err %v: %s", code, err, b)
		w.mu.Lock()
		w.retries++
		w.mu.Unlock()
		// Did it take effect?
		gcode, gb, gerr := w.e.do(http.MethodGet, cmPath+"/"+name, nil)
		if gerr != nil {
			return false, nil
		}
		if v == deleted {
			return gcode == http.StatusNotFound, nil
		}
		var o object
		if gcode != http.StatusOK || json.Unmarshal(gb, &o) != nil || o.Data["v"] != v {
			return false, nil
		}
		newRV = o.Metadata.ResourceVersion
		return true, nil
	})
	if err != nil {
		return "", fmt.Errorf("%s %s (v=%s): %w (last: %v)", method, path, v, err, lastErr)
	}
	w.record(name, v)
	return newRV, nil
}
