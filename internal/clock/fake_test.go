package clock

import (
	"testing"
	"time"
)

func TestFakeMovesOnlyWhenTold(t *testing.T) {
	c := NewFake()
	if !c.Now().Equal(Start) {
		t.Fatalf("Now = %v, want %v", c.Now(), Start)
	}
	c.Advance(3 * time.Second)
	if got := c.Now().Sub(Start); got != 3*time.Second {
		t.Fatalf("after Advance: %v past Start", got)
	}
	c.Set(time.Unix(5, 0))
	if !c.Now().Equal(time.Unix(5, 0)) {
		t.Fatalf("after Set: %v", c.Now())
	}
}
