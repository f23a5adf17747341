//go:build amd64 || arm64

package middleware

// growStack is implemented in stack_amd64.s and stack_arm64.s.
func growStack()
