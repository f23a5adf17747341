//go:build !amd64 && !arm64

package middleware

//go:noinline
func growStack() {
	var buf [stackReserve]byte
	keep(buf[:])
}

// keep stops the compiler from dropping buf; it does not retain b, so buf
// stays on the stack.
//
//go:noinline
func keep(b []byte) { _ = b }
