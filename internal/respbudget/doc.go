// Package respbudget bounds the memory held by range responses being built
// and sent. Without it every concurrent unpaginated LIST of a large prefix
// materialises its whole result (the KeyValues, then gRPC's encoded copy) at
// once, so twenty of them can exhaust any member's memory (issue 11).
//
// A Budget is a byte semaphore shared by all Range and RangeStream calls.
// Each call gets an Account; the MVCC scan charges every key-value it
// decodes to the Account found in its context (FromContext) before
// appending it, and the Account draws grains from the Budget. The first
// SmallBytes of a response are free, so point reads and small ranges never
// wait behind big ones. When the Budget is exhausted a charge waits, bounded
// by the request's context; a waiting request that already holds budget may
// become the single overdraft holder and finish past the limit, so a
// response larger than the whole budget still completes and two half-built
// responses can never deadlock each other. Peak memory is therefore at most
// the budget plus one response.
package respbudget
