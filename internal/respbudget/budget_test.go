package respbudget

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestSmallResponsesAreFree(t *testing.T) {
	b := New(1 << 20)
	big := b.NewAccount()
	if err := big.Charge(context.Background(), 1<<20+SmallBytes); err != nil {
		t.Fatal(err)
	}
	// The budget is now overdrawn by the only holder; a small response
	// still goes through without waiting.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	small := b.NewAccount()
	for range SmallBytes / 1024 {
		if err := small.Charge(ctx, 1024); err != nil {
			t.Fatalf("small response blocked: %v", err)
		}
	}
	if err := small.Charge(ctx, 1); !errors.Is(err, ErrExhausted) {
		t.Fatalf("past SmallBytes with the budget full and a dead context: got %v, want ErrExhausted", err)
	}
	small.Release()
	big.Release()
	// big, larger than the empty budget, went past it alone.
	if s := b.Stats(); s.InFlight != 0 || s.Rejected != 1 || s.Overdrafts != 1 {
		t.Fatalf("stats after release: %+v", s)
	}
}

func TestLargerThanBudgetCompletesAlone(t *testing.T) {
	b := New(2 << 20)
	a, other := b.NewAccount(), b.NewAccount()
	ctx := context.Background()
	if err := other.Charge(ctx, SmallBytes+1<<20); err != nil {
		t.Fatal(err)
	}
	// a needs ten times the budget while other holds half of it.
	for range 20 << 10 {
		if err := a.Charge(ctx, 1024); err != nil {
			t.Fatal(err)
		}
	}
	s := b.Stats()
	if s.Overdrafts != 1 || s.InFlight < 20<<20 {
		t.Fatalf("stats: %+v", s)
	}
	// other, also half-built, must wait for the overdraft holder now.
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := other.Charge(short, 4<<20); !errors.Is(err, ErrExhausted) {
		t.Fatalf("second overdraft: got %v, want ErrExhausted", err)
	}
	a.Release()
	if err := other.Charge(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := other.Charge(ctx, 4<<20); err != nil {
		t.Fatalf("after the overdraft holder left: %v", err)
	}
	other.Release()
	if s := b.Stats(); s.InFlight != 0 {
		t.Fatalf("in flight after all released: %d", s.InFlight)
	}
}

// TestManyConcurrentNeverDeadlock has more concurrent responses, each bigger
// than the budget, than the budget can hold; all complete, and the bytes in
// flight never exceed the budget plus one response.
func TestManyConcurrentNeverDeadlock(t *testing.T) {
	const limit, resp, n = 4 << 20, 6 << 20, 16
	b := New(limit)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A blocker fills the budget until every response waits for it.
	blocker := b.NewAccount()
	if err := blocker.Charge(ctx, limit); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := b.NewAccount()
			defer a.Release()
			for range resp / 4096 {
				if err := a.Charge(ctx, 4096); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for b.Stats().Waits < n {
		select {
		case <-ctx.Done():
			t.Fatalf("not all responses waited: %+v", b.Stats())
		case <-time.After(time.Millisecond):
		}
	}
	blocker.Release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := b.Stats()
	if s.InFlight != 0 {
		t.Fatalf("in flight after all released: %d", s.InFlight)
	}
	if s.Peak > limit+resp+grain {
		t.Fatalf("peak %d > budget %d + one response %d", s.Peak, limit, resp)
	}
}

func TestNilBudget(t *testing.T) {
	var b *Budget
	a := b.NewAccount()
	if err := a.Charge(context.Background(), 1<<40); err != nil {
		t.Fatal(err)
	}
	a.Release()
	if FromContext(WithAccount(context.Background(), a)) != nil {
		t.Fatal("nil account stored")
	}
}
