package memory

import (
	"bytes"
	"errors"

	"github.com/metastore/metastore/internal/storage"
)

var errCommitted = errors.New("memory: batch already committed")

type opKind uint8

const (
	opSet opKind = iota
	opDelete
	opDeleteRange // key is the start, value the end
)

type op struct {
	kind       opKind
	key, value []byte
}

type batch struct {
	e         *Engine
	ops       []op
	n         int // len(ops) until Commit drops them
	committed bool
	closed    bool
}

var _ storage.Batch = (*batch)(nil)

func (b *batch) writable() error {
	switch {
	case b.closed:
		return storage.ErrClosed
	case b.committed:
		return errCommitted
	}
	return nil
}

func (b *batch) add(kind opKind, key, value []byte) error {
	if err := b.writable(); err != nil {
		return err
	}
	// One allocation holds both copies.
	buf := make([]byte, len(key)+len(value))
	copy(buf, key)
	copy(buf[len(key):], value)
	o := op{kind: kind, key: buf[:len(key):len(key)]}
	if kind != opDelete {
		o.value = buf[len(key):]
	}
	b.ops = append(b.ops, o)
	b.n++
	return nil
}

func (b *batch) Set(key, value []byte) error { return b.add(opSet, key, value) }
func (b *batch) Delete(key []byte) error     { return b.add(opDelete, key, nil) }

// DeleteRange of an empty or inverted range is a no-op and not counted,
// like the Pebble engine's.
func (b *batch) DeleteRange(start, end []byte) error {
	if bytes.Compare(start, end) >= 0 {
		return b.writable()
	}
	return b.add(opDeleteRange, start, end)
}

func (b *batch) Count() int {
	if b.closed {
		return 0
	}
	return b.n
}

func (b *batch) Commit(bool) error {
	if err := b.writable(); err != nil {
		return err
	}
	if err := b.e.apply(b.ops); err != nil {
		return err
	}
	b.committed = true
	b.ops = nil
	return nil
}

func (b *batch) Close() error {
	b.closed = true
	b.ops = nil
	return nil
}
