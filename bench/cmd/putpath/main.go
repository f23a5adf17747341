// Command putpath prints where a lone request's latency went inside a
// server, from a Go execution trace of it (package bench/putpath says how).
//
// Usage: go run ./bench/cmd/putpath [-end SUBSTRING] trace.out
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/metastore/metastore/bench/putpath"
)

func main() {
	end := flag.String("end", putpath.DefaultEnd, "a function on the stack of the system call that writes a response")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: putpath [-end SUBSTRING] trace.out")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *end, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "putpath:", err)
		os.Exit(1)
	}
}

func run(path, end string, out io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h, err := putpath.Read(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	paths, tally := h.Paths(end)
	if len(paths) == 0 {
		return fmt.Errorf("%s: %w (%s)", path, putpath.ErrNoPath, tally)
	}
	_, err = io.WriteString(out, h.Report(paths))
	return err
}
