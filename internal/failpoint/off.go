//go:build !failpoints

package failpoint

import "time"

// Enabled reports whether this binary was built with failpoints.
const Enabled = false

// Inject does nothing: the binary was built without the failpoints tag.
func Inject(string) {}

// Hold does nothing: the binary was built without the failpoints tag.
func Hold(string, time.Duration) {}
