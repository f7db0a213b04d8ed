package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/presenced/presenced/presence"
)

// DefaultBatchSize is the most events applied in one transaction.
const DefaultBatchSize = 1000

// DefaultWriters is Pump.Writers' default: one transaction at a time.
const DefaultWriters = 1

// DefaultAckEvery is Pump.AckEvery's default.
const DefaultAckEvery = 50 * time.Millisecond

// Entry is one record of the durable log between the broker and the store:
// a lifecycle event, or (Node set) a broker node's report about itself, in
// the JSON the broker wrote.
type Entry struct {
	Seq     uint64 // position in the log, increasing
	Node    bool
	Payload []byte
}

// Source is the durable log the Pump applies (the outbox in "serve").
// Read returns up to max entries after the last one returned, waiting
// until one exists or ctx ends; once ctx has ended it still returns the
// entries already waiting, and ctx.Err() only when there are none. Ack
// tells the log that every entry up to upTo is stored and need never be
// read again, even after a restart.
type Source interface {
	Read(ctx context.Context, max int) ([]Entry, error)
	Ack(upTo uint64) error
}

// RejectFunc parks a record that is not a valid event (rejected_events),
// so that it is kept for an operator instead of being dropped or blocking
// every event behind it.
type RejectFunc func(ctx context.Context, source string, raw []byte, reason string) error

// Pump applies a durable log to the store in order and acknowledges what
// was committed, so that a crash at any moment loses nothing: whatever was
// not acknowledged is read again at the next start and absorbed by the
// idempotent store.
//
// Batching is natural rather than timed: while one batch is being applied,
// new entries accumulate in the log and form the next batch. A lone event
// is applied at once (lowest latency when idle) and a burst is applied in
// large batches (highest throughput under load), with no linger timer.
type Pump struct {
	Source    Source
	Applier   *Applier
	Nodes     *NodeApplier // may be nil when no node events are sent
	Reject    RejectFunc
	BatchSize int
	// Writers is how many batches are applied at once, each in its own
	// store transaction (0: DefaultWriters). Batches of lifecycle events
	// commute (the store keeps per-channel event sets), so they may commit
	// in any order; a batch with a node report waits for every batch read
	// before it, and is applied alone. The log is acknowledged up to the
	// last batch before which all are stored.
	Writers int
	// AckEvery is the most often the log is told what was stored (0:
	// DefaultAckEvery). An acknowledgement is a durable write of its own
	// (the outbox's checkpoint: two fsyncs and a rename), so acknowledging
	// every batch under load would cost more disk flushes than the events
	// themselves; what a crash leaves unacknowledged meanwhile is applied
	// again at the next start and absorbed by the idempotent store.
	AckEvery time.Duration
	Log      *slog.Logger

	drainOnce sync.Once
	drain     chan struct{}
	initOnce  sync.Once
}

func (p *Pump) init() {
	p.initOnce.Do(func() {
		p.drain = make(chan struct{})
		if p.Log == nil {
			p.Log = slog.Default()
		}
		if p.AckEvery <= 0 {
			p.AckEvery = DefaultAckEvery
		}

	})
}

// Drain asks Run to return nil once it has applied every entry in the log.
func (p *Pump) Drain() {
	p.init()
	p.drainOnce.Do(func() { close(p.drain) })
}

// Run applies the log until Drain was called and nothing more is waiting
// (it returns nil), or until ctx ends (it returns ctx.Err(); what was not
// applied stays in the log for the next start). Store failures are
// retried with backoff for as long as it takes: the log holds the events
// meanwhile. Run returns another error only when the log cannot be read.
// Acknowledgements are written at most every AckEvery, and once more as
// Run returns.
func (p *Pump) Run(ctx context.Context) error {
	p.init()
	size := p.BatchSize
	if size <= 0 {
		size = DefaultBatchSize
	}
	// Reads stop waiting once draining; applies go on until ctx ends.
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go func() {
		select {
		case <-p.drain:
			stopReading()
		case <-readCtx.Done():
		}
	}()
	acks := ackState{every: p.AckEvery, last: time.Now()}
	writers := newWriterPool(max(p.Writers, DefaultWriters))
	for {
		// A writer is free before the log is read, so that a batch holds
		// everything that accumulated while the writers were busy.
		if err := writers.acquire(); err != nil {
			writers.wait()
			return err
		}
		p.stored(&acks, writers)
		// While an acknowledgement is due, or batches are being stored,
		// wait for more entries only until it is due, so an idle pump
		// does not sit on it.
		waitCtx, cancelWait := readCtx, context.CancelFunc(func() {})
		if acks.pending || writers.busy() {
			waitCtx, cancelWait = context.WithDeadline(readCtx, acks.due())
		}
		entries, err := p.Source.Read(waitCtx, size)
		cancelWait()
		if len(entries) == 0 {
			writers.release()
			if readCtx.Err() != nil { // drained, or ctx ended
				// A last acknowledgement; what it cannot acknowledge
				// is applied again at the next start.
				applyErr := writers.wait()
				p.stored(&acks, writers)
				if acks.pending {
					p.ack(&acks)
				}
				if applyErr != nil {
					return applyErr
				}
				return ctx.Err()
			}
			if waitCtx.Err() != nil { // due
				p.stored(&acks, writers)
				if acks.pending {
					p.ack(&acks)
				} else {
					acks.last = time.Now() // nothing stored yet: due again later
				}
				continue
			}
			if err != nil {
				writers.wait()
				return fmt.Errorf("read event log: %w", err)
			}
			continue
		}
		upTo := entries[len(entries)-1].Seq
		if hasNodeEntry(entries) {
			// A node's report applies after everything written before it.
			if err := writers.wait(); err != nil {
				writers.release()
				return err
			}
			err := p.apply(ctx, entries)
			writers.release()
			if err != nil {
				return err
			}
			writers.storedAlone(upTo)
		} else {
			events, raws, err := p.decodeEvents(ctx, entries)
			if err != nil {
				writers.release()
				writers.wait()
				return err
			}
			// A client's events are stored in the order the broker wrote
			// them (their seqs, and so each channel's history, in that
			// order): a batch waits for the batches in flight that hold any
			// of its clients. Per client, not per channel: in a takeover the
			// new channel's connect is written before the old one's
			// tcpclean, and storing the tcpclean first would show the
			// client offline in between (TestTakeoversNeverShowOffline).
			clients := clientsOf(events)
			writers.waitClients(clients)
			writers.run(func() error { return p.applyEvents(ctx, events, raws) }, upTo, clients)
		}
		p.stored(&acks, writers)
		if acks.pending && !time.Now().Before(acks.due()) {
			p.ack(&acks)
		}
	}
}

// stored moves what the writers stored into the acknowledgement due.
func (p *Pump) stored(a *ackState, w *writerPool) {
	if upTo, ok := w.storedUpTo(); ok {
		a.pending, a.upTo = true, upTo
	}
}

func hasNodeEntry(entries []Entry) bool {
	for _, e := range entries {
		if e.Node {
			return true
		}
	}
	return false
}

// ackState is what the pump has stored but not yet acknowledged.
type ackState struct {
	every   time.Duration
	last    time.Time // of the last acknowledgement
	pending bool
	upTo    uint64
}

func (a *ackState) due() time.Time { return a.last.Add(a.every) }

// ack tells the log what was stored. A failure (the checkpoint cannot be
// written: the disk is full) is not the pump's to end on: the events are
// stored, the log keeps them until a later acknowledgement, which covers
// these too, succeeds — so it is logged and tried again at the next due
// time.
func (p *Pump) ack(a *ackState) {
	a.last = time.Now()
	if err := p.Source.Ack(a.upTo); err != nil {
		p.Log.Warn("acknowledging stored events to the log failed; retrying", "up_to", a.upTo, "err", err)
		return
	}
	a.pending = false
}

// apply decodes a batch and applies it as runs of lifecycle events
// separated by node events, keeping the order the broker wrote them in: a
// node's channel-set report must be applied after the events written
// before it.
func (p *Pump) apply(ctx context.Context, entries []Entry) error {
	events := make([]presence.Event, 0, len(entries))
	raws := make([]Entry, 0, len(entries))
	flush := func() error {
		if len(events) == 0 {
			return nil
		}
		err := p.applyEvents(ctx, events, raws)
		events, raws = events[:0], raws[:0]
		return err
	}
	for _, e := range entries {
		if !e.Node {
			ev, ok, err := p.decodeEntry(ctx, e)
			if err != nil {
				return err
			}
			if ok {
				events = append(events, ev)
				raws = append(raws, e)
			}
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		n, err := presence.DecodeNodeEvent(e.Payload)
		if err != nil {
			if err := p.reject(ctx, e, err); err != nil {
				return err
			}
			continue
		}
		if p.Nodes != nil {
			if err := p.Nodes.ApplyRetrying(ctx, n); err != nil {
				return err
			}
		}
	}
	return flush()
}

// decodeEntry decodes a lifecycle event of the log; one that cannot be
// decoded is parked (ok false).
func (p *Pump) decodeEntry(ctx context.Context, e Entry) (ev presence.Event, ok bool, err error) {
	ev, err = presence.DecodeEvent(e.Payload)
	if err != nil {
		return ev, false, p.reject(ctx, e, err)
	}
	return ev, true, nil
}

// decodeEvents decodes a batch without node events, parking what cannot
// be decoded.
func (p *Pump) decodeEvents(ctx context.Context, entries []Entry) ([]presence.Event, []Entry, error) {
	events := make([]presence.Event, 0, len(entries))
	raws := make([]Entry, 0, len(entries))
	for _, e := range entries {
		ev, ok, err := p.decodeEntry(ctx, e)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			events, raws = append(events, ev), append(raws, e)
		}
	}
	return events, raws, nil
}

// clientsOf is the set of clients events belong to.
func clientsOf(events []presence.Event) map[string]struct{} {
	set := make(map[string]struct{}, len(events))
	for _, e := range events {
		set[e.ClientID] = struct{}{}
	}
	return set
}

// applyEvents applies events in one transaction, retrying while the store
// fails; when the store refuses the batch as invalid, it applies them one
// by one and parks those it refuses, so one bad event cannot hold back the
// log.
func (p *Pump) applyEvents(ctx context.Context, events []presence.Event, raws []Entry) error {
	err := p.Applier.ApplyRetrying(ctx, events)
	if presence.ErrorCode(err) != presence.EINVALID {
		return err
	}
	for i := range events {
		err := p.Applier.ApplyRetrying(ctx, events[i:i+1])
		if presence.ErrorCode(err) == presence.EINVALID {
			err = p.reject(ctx, raws[i], fmt.Errorf("store refused the event: %s", presence.ErrorMessage(err)))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// reject parks an entry, retrying while the store is unavailable.
func (p *Pump) reject(ctx context.Context, e Entry, why error) error {
	source := fmt.Sprintf("outbox seq=%d", e.Seq)
	var backoff presence.Backoff
	for {
		err := p.Reject(ctx, source, e.Payload, presence.ErrorMessage(why))
		if err == nil {
			p.Applier.Stats.Rejected.Add(1)
			p.Log.Warn("rejected a log record that is not a valid event", "source", source, "reason", presence.ErrorMessage(why))
			return nil
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return ctx.Err()
		}
		p.Log.Warn("park invalid event failed; retrying", "source", source, "err", err)
		if err := backoff.Wait(ctx); err != nil {
			return err
		}
	}
}
