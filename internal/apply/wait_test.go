package apply

import (
	"errors"
	"testing"
)

// TestWaitReusedChannel: a channel the proposer received its result from
// can carry the next proposal's result, and nothing from the earlier ID
// reaches it (Trigger forgets an ID once it delivered).
func TestWaitReusedChannel(t *testing.T) {
	w := NewWait()
	ch := make(chan Result, 1)
	first, second := errors.New("first"), errors.New("second")
	if got := w.RegisterProposal(1, nil, nil, ch); got != (<-chan Result)(ch) {
		t.Fatal("RegisterProposal did not use the given channel")
	}
	w.Trigger(1, Result{Err: first})
	if r := <-ch; r.Err != first {
		t.Fatalf("first result %v", r.Err)
	}
	w.RegisterProposal(2, nil, nil, ch)
	w.Trigger(1, Result{Err: first}) // a replayed entry of the first ID
	select {
	case r := <-ch:
		t.Fatalf("the reused channel got %v before its own result", r.Err)
	default:
	}
	w.Trigger(2, Result{Err: second})
	if r := <-ch; r.Err != second {
		t.Fatalf("second result %v", r.Err)
	}
}
