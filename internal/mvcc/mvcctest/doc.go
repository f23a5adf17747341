// Package mvcctest opens mvcc stores for tests and checks, when each test
// ends, that the store it left is consistent (mvcc.Store.CheckInvariants),
// as bbolt's tests check their database file after each test. Every test
// package that opens a store does it through Open (internal/mvcc's own tests
// through their openStore, which cannot import this package).
package mvcctest
