package discovery

import "testing"

// TestAddKeepsCreationOrder checks what every member relies on to compute
// the same cluster: registrations ordered by creation revision, duplicates
// and values that are not "name=urls" left out.
func TestAddKeepsCreationOrder(t *testing.T) {
	var ms []member
	for _, m := range []member{
		{"/r/m/3", "c=http://3", 30},
		{"/r/m/1", "a=http://1", 10},
		{"/r/m/bad", "no-equals-sign", 5},
		{"/r/m/1", "a=http://1", 10},
		{"/r/m/2", "b=http://2", 20},
	} {
		ms = add(ms, m)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.value)
	}
	want := []string{"a=http://1", "b=http://2", "c=http://3"}
	if len(got) != len(want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("members %v, want %v", got, want)
		}
	}
}
