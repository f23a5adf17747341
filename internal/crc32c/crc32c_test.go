package crc32c

import "testing"

// The check value of CRC-32C (RFC 3720, B.4: 32 bytes of zeros) and the
// standard "123456789" check value: a table of another polynomial fails.
func TestCastagnoliCheckValues(t *testing.T) {
	if got := Checksum(make([]byte, 32)); got != 0x8a9136aa {
		t.Errorf("Checksum(32 zero bytes) = %#x, want 0x8a9136aa", got)
	}
	if got := Checksum([]byte("123456789")); got != 0xe3069283 {
		t.Errorf("Checksum(123456789) = %#x, want 0xe3069283", got)
	}
	if got := Update(Checksum([]byte("1234")), []byte("56789")); got != 0xe3069283 {
		t.Errorf("Update in two parts = %#x, want 0xe3069283", got)
	}
	h := New()
	_, _ = h.Write([]byte("123456789"))
	if got := h.Sum32(); got != 0xe3069283 {
		t.Errorf("New().Sum32 = %#x, want 0xe3069283", got)
	}
}
