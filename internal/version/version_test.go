package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestPrintMatchesEtcdFormat(t *testing.T) {
	var b strings.Builder
	if err := Print(&b); err != nil {
		t.Fatal(err)
	}
	want := "etcd Version: 3.7.3\nGit SHA: " + GitSHA + "\nGo Version: " + runtime.Version() +
		"\nGo OS/Arch: " + runtime.GOOS + "/" + runtime.GOARCH + "\nmetastore Version: 0.1.0\n"
	if b.String() != want {
		t.Errorf("Print() = %q, want %q", b.String(), want)
	}
}
