package tracing

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Span names of the request path below the gRPC call's span.
const (
	SpanProposal    = "proposal"
	SpanRaftCommit  = "raft.commit"
	SpanApply       = "apply"
	SpanEngineWrite = "engine.write"
	SpanReadIndex   = "read_index"
)

// ApplyTimes are the moments the applier reports with a proposal's result:
// when its batch reached the applier (the entry was committed), when the
// engine batch commit started, and when it ended. The zero value records
// nothing.
type ApplyTimes struct {
	Applying, Writing, Written time.Time
}

// Proposal is the span of one proposal, from the proposer's side.
type Proposal struct {
	span  trace.Span
	start time.Time
}

// StartProposal opens the proposal span under the span in ctx.
func StartProposal(ctx context.Context) (context.Context, Proposal) {
	ctx, span := Start(ctx, SpanProposal)
	if !span.IsRecording() {
		return ctx, Proposal{span: span}
	}
	return ctx, Proposal{span: span, start: time.Now()}
}

// End closes the proposal span; with the applier's times it first records
// the raft.commit, apply and engine.write children they bound. err, if
// set, marks the span as failed.
func (p Proposal) End(t ApplyTimes, err error) {
	if !p.span.IsRecording() {
		return
	}
	if err != nil {
		p.span.RecordError(err)
	}
	if !t.Applying.IsZero() {
		tr := p.span.TracerProvider().Tracer(Scope)
		ctx := trace.ContextWithSpan(context.Background(), p.span)
		_, commit := tr.Start(ctx, SpanRaftCommit, trace.WithTimestamp(p.start))
		commit.End(trace.WithTimestamp(t.Applying))
		actx, apply := tr.Start(ctx, SpanApply, trace.WithTimestamp(t.Applying))
		_, write := tr.Start(actx, SpanEngineWrite, trace.WithTimestamp(t.Writing))
		write.End(trace.WithTimestamp(t.Written))
		apply.End(trace.WithTimestamp(t.Written))
	}
	p.span.End()
}

// StartReadIndex opens the span of a linearizable read's barrier.
func StartReadIndex(ctx context.Context) (context.Context, trace.Span) {
	return Start(ctx, SpanReadIndex)
}
