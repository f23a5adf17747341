package simcluster

import "context"

// expiredCtx is the context of a call that must not wait: the harness
// never blocks the test's goroutine, so a keep-alive of an expired lease
// (which would wait for its revocation) fails at once instead.
func expiredCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx, func() {}
}
