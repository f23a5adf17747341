//go:build !failpoints

package failpoint

// Enabled reports whether this binary was built with failpoints.
const Enabled = false

// Inject does nothing: the binary was built without the failpoints tag.
func Inject(string) {}
