package failpoint

import "testing"

func TestNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range Names() {
		if n == "" || seen[n] {
			t.Fatalf("failpoint name %q empty or listed twice", n)
		}
		seen[n] = true
	}
}
