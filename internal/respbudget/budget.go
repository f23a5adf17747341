package respbudget

import (
	"context"
	"errors"
	"sync"
)

// SmallBytes is how much of a response is never charged: responses that
// stay below it (point reads, small pages) are never blocked behind big
// LISTs. With --max-requests-in-flight at 5000 the free part is at most
// 1.25 GiB, and in practice almost all such requests are a few KiB.
const SmallBytes = 256 << 10

// KVOverhead estimates the memory of one decoded KeyValue beyond its key and
// value: the struct, its pointer in the response slice, and the proto
// framing of the encoded copy.
const KVOverhead = 128

// KVCost is what one key-value of a response is charged. A response exists
// twice at its peak: the decoded KeyValues (key and value copied out of the
// engine, whose iterator reuses its buffers) and gRPC's encoding of them,
// made after the handler returned and while the KeyValues are still
// referenced; so key and value count twice.
func KVCost(keyLen, valueLen int) int {
	return 2*(keyLen+valueLen) + KVOverhead
}

// ErrExhausted is returned by Charge when the request's context ended while
// it waited for budget. The rpc layer maps it to ResourceExhausted.
var ErrExhausted = errors.New("etcdserver: too many range bytes in flight")

// grain is the largest unit an Account draws from its Budget at a time, so
// that a scan locks the Budget once per grain, not once per key.
const grain = 1 << 20

// Stats is a snapshot of a Budget's counters, for metrics and tests.
type Stats struct {
	Limit      int64 // the budget in bytes
	InFlight   int64 // bytes currently held
	Peak       int64 // largest InFlight seen
	Waits      int64 // charges that had to wait
	Overdrafts int64 // times a request went past the limit alone
	Rejected   int64 // charges abandoned because the context ended
}

// Budget is the byte semaphore shared by every range response.
type Budget struct {
	limit int64

	mu sync.Mutex
	// Guarded by mu:
	used      int64         // bytes held by all accounts
	overdraft *Account      // the one account allowed past limit, or nil
	holders   int           // waiting accounts that already hold bytes
	wake      chan struct{} // closed and replaced whenever bytes are released
	stats     Stats         // Peak, Waits, Overdrafts, Rejected
}

// New returns a Budget of limit bytes (limit must be positive).
func New(limit int64) *Budget {
	return &Budget{limit: limit, wake: make(chan struct{})}
}

// Stats returns the current counters.
func (b *Budget) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.Limit, s.InFlight = b.limit, b.used
	return s
}

// NewAccount starts the accounting of one response. A nil Budget gives a
// nil Account, whose methods do nothing.
func (b *Budget) NewAccount() *Account {
	if b == nil {
		return nil
	}
	return &Account{b: b}
}

// acquire grants n more bytes to a, waiting while the budget is full.
func (b *Budget) acquire(ctx context.Context, a *Account, n int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	waited := false
	for {
		switch {
		case b.overdraft == a:
		case b.used+n <= b.limit && (a.held > 0 || b.holders == 0):
			// Newcomers yield to half-built responses, which free the
			// memory they already pin only once they complete.
		case b.overdraft == nil && (a.held > 0 || b.used == 0):
			// Every holder but one may block; the one proceeds alone
			// (and so does a response whose first charge alone is larger
			// than an empty budget).
			b.overdraft = a
			b.stats.Overdrafts++
		default:
			if !waited {
				waited = true
				b.stats.Waits++
			}
			if err := b.wait(ctx, a); err != nil {
				b.stats.Rejected++
				return err
			}
			continue
		}
		b.used += n
		a.held += n
		b.stats.Peak = max(b.stats.Peak, b.used)
		return nil
	}
}

// wait blocks until bytes are released or ctx ends; mu is held on entry and
// on return.
func (b *Budget) wait(ctx context.Context, a *Account) error {
	if a.held > 0 {
		b.holders++
		defer func() { b.holders-- }()
	}
	wake := b.wake
	b.mu.Unlock()
	defer b.mu.Lock()
	select {
	case <-wake:
		return nil
	case <-ctx.Done():
		return ErrExhausted
	}
}

func (b *Budget) release(a *Account) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= a.held
	a.held = 0
	if b.overdraft == a {
		b.overdraft = nil
	}
	close(b.wake)
	b.wake = make(chan struct{})
}

// Account is the charge of one response. It is used by one goroutine at a
// time (the request's), so its fields need no lock of their own; held is
// also read and written by its Budget under Budget.mu.
type Account struct {
	b    *Budget
	used int64 // bytes charged so far
	held int64 // bytes drawn from b (>= used once used > SmallBytes)
}

// Charge records n more bytes of the response, waiting for budget if the
// response is past SmallBytes and the budget is full.
func (a *Account) Charge(ctx context.Context, n int) error {
	if a == nil {
		return nil
	}
	a.used += int64(n)
	if a.used <= SmallBytes || a.used <= a.held {
		return nil
	}
	need := a.used - a.held
	// Draw at least a grain (but no more than an eighth of the budget, so
	// that small budgets still admit several responses at once).
	want := max(need, min(grain, a.b.limit/8))
	return a.b.acquire(ctx, a, want)
}

// Holds reports whether the Account holds bytes of its Budget, which
// Release must give back (a response within SmallBytes holds none).
func (a *Account) Holds() bool { return a != nil && a.held > 0 }

// Release returns everything the Account holds to its Budget. The Account
// may be used again afterwards (RangeStream reuses one per chunk).
func (a *Account) Release() {
	if a == nil {
		return
	}
	a.used = 0
	if a.held > 0 {
		a.b.release(a)
	}
}

type ctxKey struct{}

// WithAccount returns ctx carrying a, for the scan to charge.
func WithAccount(ctx context.Context, a *Account) context.Context {
	if a == nil {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, a)
}

// FromContext returns the Account of ctx, or nil when the request is not
// budgeted.
func FromContext(ctx context.Context) *Account {
	a, _ := ctx.Value(ctxKey{}).(*Account)
	return a
}
