package pgstore

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/presenced/presenced/presence"
)

// feedChannel is the LISTEN channel that migration 0002's trigger notifies
// after every statement that changes channels.
const feedChannel = "presenced_channels"

// FeedSink receives the channel feed of the store, from one goroutine, in
// seq order, each change once (see feedWatermark).
type FeedSink interface {
	// Load replaces everything with a snapshot as of asOfSeq (Store.snapshot).
	Load(states []presence.ChannelState, asOfSeq int64)
	// Apply folds channels changed after the previous Load or Apply.
	Apply(states []presence.ChannelState)
	// Lost reports that the feed broke: until the next Load the sink may be
	// behind the store.
	Lost(err error)
	// SilentNodes reports the broker nodes that missed their lease (and are
	// not yet lost), read every PollInterval: a node's state changes no
	// channel, so it is not in the feed.
	// The map is node → since when it is silent (the store's clock).
	SilentNodes(nodes map[string]time.Time)
}

// FollowOptions tune a Follower; zero values take the defaults.
type FollowOptions struct {
	// PollInterval reads the feed even without a notification (default 1s),
	// in case one is lost.
	PollInterval time.Duration
	// BatchSize is the most channels read per feed query (default 5000).
	BatchSize int
	Logger    *slog.Logger
}

// Follower keeps a FeedSink current with the store: it loads a snapshot,
// then tails the feed (channels with last_seq after its cursor, up to the
// watermark: see changesSince), woken by LISTEN/NOTIFY within milliseconds
// of each commit, and polls every PollInterval in case a notification is
// lost. It holds one connection of its own, outside the pool. When that
// connection breaks it tells the sink, reconnects with backoff, and loads a
// fresh snapshot: a full reload, since nothing can be assumed about what
// happened meanwhile.
type Follower struct {
	store    *Store
	sink     FeedSink
	opts     FollowOptions
	log      *slog.Logger
	notified atomic.Bool // a notification arrived while a query ran
	cursor   atomic.Int64
	// heldAt is the cursor at which the feed first held a takeover close
	// back, at heldSince (-1: none held); see maxTakeoverHold.
	heldAt    int64
	heldSince time.Time
}

// NewFollower returns a Follower feeding sink; call Run.
func (s *Store) NewFollower(sink FeedSink, opts FollowOptions) *Follower {
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Follower{store: s, sink: sink, opts: opts, log: opts.Logger, heldAt: -1}
}

// Cursor returns the seq of the newest change handed to the sink.
func (f *Follower) Cursor() int64 { return f.cursor.Load() }

// Run follows the store until ctx ends, then returns nil. Failures are
// logged and retried; they never end Run.
func (f *Follower) Run(ctx context.Context) error {
	backoff := presence.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for {
		start := time.Now()
		err := f.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		f.sink.Lost(err)
		if time.Since(start) > time.Minute {
			backoff.Reset() // it worked for a while: retry soon
		}
		f.log.Warn("change feed lost; reconnecting", "err", err, "failures", backoff.Failures()+1)
		if backoff.Wait(ctx) != nil {
			return nil
		}
	}
}

// session connects, loads a snapshot and tails the feed until the
// connection fails or ctx ends.
func (f *Follower) session(ctx context.Context) error {
	config := f.store.pool.Config().ConnConfig.Copy()
	config.RuntimeParams["application_name"] = "presenced-follower"
	config.OnNotification = func(*pgconn.PgConn, *pgconn.Notification) { f.notified.Store(true) }
	conn, err := pgx.ConnectConfig(ctx, config)
	if err != nil {
		return storeErr("connect change feed", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// LISTEN before the snapshot: a commit after the snapshot is then
	// either in the snapshot or notified.
	if _, err := conn.Exec(ctx, "LISTEN "+feedChannel); err != nil {
		return storeErr("listen for changes", err)
	}
	start := time.Now()
	states, asOfSeq, err := f.store.snapshot(ctx, conn)
	if err != nil {
		return storeErr("read view snapshot", err)
	}
	f.sink.Load(states, asOfSeq)
	f.cursor.Store(asOfSeq)
	f.log.Info("view loaded", "states", len(states), "as_of_seq", asOfSeq, "took", time.Since(start).Round(time.Millisecond))

	var nodesReadAt time.Time
	// A change committed but not yet final (a writer beside it still ran
	// when the feed was read) is notified once, before it can be returned:
	// while the watermark is behind what was handed out, read again soon,
	// backing off up to the poll interval (a foreign long transaction may
	// hold it back for a while).
	behindWait := minBehindWait
	for {
		if time.Since(nodesReadAt) >= f.opts.PollInterval {
			if err := f.readSilentNodes(ctx, conn); err != nil {
				return err
			}
			nodesReadAt = time.Now()
		}
		// Clear before reading: a notification from now on means read again.
		f.notified.Store(false)
		if err := f.drain(ctx, conn); err != nil {
			return err
		}
		if f.notified.Load() {
			continue
		}
		wait := f.opts.PollInterval
		if f.store.watermark.behind() {
			wait = min(behindWait, wait)
			behindWait *= 2
		} else {
			behindWait = minBehindWait
		}
		waitCtx, cancel := context.WithTimeout(ctx, wait)
		err := conn.PgConn().WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
			// The poll: read the feed anyway. The connection stays usable,
			// since a deadline does not break a connection that was idle.
		default:
			return storeErr("wait for changes", err)
		}
	}
}

// minBehindWait is the first wait before reading the feed again while its
// watermark is behind (see session).
const minBehindWait = 5 * time.Millisecond

// readSilentNodes hands the sink the nodes that missed their lease.
func (f *Follower) readSilentNodes(ctx context.Context, conn *pgx.Conn) error {
	rows, _ := conn.Query(ctx, "SELECT node, silent_since FROM nodes WHERE state = 'silent'")
	nodes := map[string]time.Time{}
	var node string
	var since time.Time
	if _, err := pgx.ForEachRow(rows, []any{&node, &since}, func() error { nodes[node] = since; return nil }); err != nil {
		return storeErr("read silent nodes", err)
	}
	f.sink.SilentNodes(nodes)
	return nil
}

// maxTakeoverHold bounds how long the feed holds a takeover close back
// at one cursor (holdBackTakeovers): the whole feed waits behind it, and a
// client taken over again and again (two devices sharing an id) could
// otherwise keep it waiting. Past it the close is handed on, and the view
// may show that client offline for a moment.
const maxTakeoverHold = 250 * time.Millisecond

// drain reads the feed from the cursor until it is exhausted.
func (f *Follower) drain(ctx context.Context, conn *pgx.Conn) error {
	for {
		cursor := f.cursor.Load()
		hold := cursor != f.heldAt || time.Since(f.heldSince) < maxTakeoverHold
		if !hold {
			f.log.Warn("change feed: a takeover close held back too long is handed on; its client may show offline for a moment", "cursor", cursor, "held", time.Since(f.heldSince).Round(time.Millisecond))
		}
		states, held, full, err := f.store.changesSince(ctx, conn, cursor, f.opts.BatchSize, hold)
		if err != nil {
			return storeErr("read channel feed", err)
		}
		switch {
		case !held:
			f.heldAt = -1
		case cursor != f.heldAt:
			f.heldAt, f.heldSince = cursor, time.Now()
		}
		if len(states) > 0 {
			f.sink.Apply(states)
			f.cursor.Store(states[len(states)-1].Seq)
		}
		if !full {
			return nil
		}
	}
}
