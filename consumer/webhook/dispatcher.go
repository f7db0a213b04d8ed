package webhook

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/presenced/presenced/presence"
)

// Feed tells where the store's webhook feed ends.
type Feed interface {
	// FeedHead returns the newest seq of the feed.
	FeedHead(ctx context.Context) (int64, error)
}

// ChannelSeqs is where one channel starts and ends in the feed: the seqs
// of its first and newest events; and its broker node.
type ChannelSeqs struct {
	ClientID, ChannelID string
	FirstSeq, LastSeq   int64
	Open                bool
	Node                string
}

// ChannelsAroundFunc returns, for clientIDs, every open channel and every
// channel that changed after afterSeq and began by uptoSeq.
type ChannelsAroundFunc func(ctx context.Context, clientIDs []string, afterSeq, uptoSeq int64) ([]ChannelSeqs, error)

// Cursors keeps each hook's durable cursor and its delivery lease.
type Cursors interface {
	// ClaimWebhookCursor takes or renews the lease of hook for owner and
	// returns its cursor; claimed is false while another owner holds it.
	ClaimWebhookCursor(ctx context.Context, hook, owner string, lease time.Duration) (cursor int64, claimed bool, err error)
	// SaveWebhookCursor moves the cursor forward and renews the lease;
	// held is false when owner lost the lease.
	SaveWebhookCursor(ctx context.Context, hook, owner string, cursor int64, lease time.Duration) (held bool, err error)
	// ReleaseWebhookCursor ends owner's lease.
	ReleaseWebhookCursor(ctx context.Context, hook, owner string) error
}

// Dispatcher delivers the presence changes of the feed to every hook.
type Dispatcher struct {
	Hooks []*Hook
	// Changes reads the feed; Feed says where it ends (for the lag).
	Changes  FeedFunc
	Feed     Feed
	Channels ChannelsAroundFunc
	Cursors  Cursors
	// Owner names this process in the leases; unique per process.
	Owner string
	// Lease is how long a claim lasts without renewal (default 30s); it
	// must exceed every hook's Timeout, since an attempt runs on one
	// renewal.
	Lease time.Duration
	// Poll is how often an idle hook reads the feed (default 1s).
	Poll time.Duration
	Log  *slog.Logger
	// Now is the clock of the signature timestamps.
	Now func() time.Time

	client *http.Client
}

// errLeaseLost stops a hook's deliveries: its lease expired and another
// process may be delivering it now.
var errLeaseLost = errors.New("webhook lease lost to another process")

// Run delivers every hook until ctx ends; it always returns nil (a hook's
// failures are retried, logged and counted, never fatal).
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.Lease <= 0 {
		d.Lease = 30 * time.Second
	}
	if d.Poll <= 0 {
		d.Poll = time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	d.client = newHTTPClient()
	var wg sync.WaitGroup
	for _, h := range d.Hooks {
		wg.Go(func() { d.runHook(ctx, h) })
	}
	wg.Wait()
	d.client.CloseIdleConnections()
	return nil
}

// runHook claims the hook's lease and delivers while holding it, until ctx
// ends; then it releases the lease so that another process takes over at
// once.
func (d *Dispatcher) runHook(ctx context.Context, h *Hook) {
	log := d.Log.With("hook", h.Name)
	retry := presence.Backoff{Min: d.Poll, Max: d.Lease / 3}
	for ctx.Err() == nil {
		cursor, claimed, err := d.Cursors.ClaimWebhookCursor(ctx, h.Name, d.Owner, d.Lease)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				log.Warn("webhook: cannot claim the hook's cursor; retrying", "err", err)
			}
		case !claimed:
			// Another process delivers this hook; take over if it stops.
			h.stats.Leader.Store(0)
		default:
			h.stats.Leader.Store(1)
			h.stats.Cursor.Store(cursor)
			retry.Reset()
			err = d.deliverWhileLeader(ctx, h, cursor)
			h.stats.Leader.Store(0)
			h.stats.Pending.Store(0)
			if ctx.Err() == nil {
				log.Warn("webhook: stopped delivering; claiming again", "err", err)
			}
		}
		_ = retry.Wait(ctx)
	}
	releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.Cursors.ReleaseWebhookCursor(releaseCtx, h.Name, d.Owner); err != nil {
		log.Warn("webhook: cannot release the hook's lease; another process takes over when it expires", "err", err)
	}
}

// deliverWhileLeader follows the feed from cursor and delivers each batch
// of presence changes, advancing the durable cursor only past what was
// delivered. It returns when ctx ends, the lease is lost, or the store
// fails.
func (d *Dispatcher) deliverWhileLeader(ctx context.Context, h *Hook, cursor int64) error {
	lease := &leaseKeeper{d: d, hook: h.Name, renewed: time.Now()}
	for {
		if head, err := d.Feed.FeedHead(ctx); err == nil {
			h.stats.Head.Store(head)
		}
		batch, err := d.Changes(ctx, cursor, h.Batch)
		if err != nil {
			return err
		}
		if batch.UptoSeq > cursor {
			changes, err := batchChanges(ctx, h.Name, cursor, batch, d.Channels)
			if err != nil {
				return err
			}
			if len(changes) > 0 {
				if err := d.deliver(ctx, h, lease, cursor, changes); err != nil {
					return err
				}
			}
			cursor = batch.UptoSeq
			if err := lease.save(ctx, cursor); err != nil {
				return err
			}
			h.stats.Cursor.Store(cursor)
			if len(batch.Channels)+len(batch.Nodes) == h.Batch {
				continue // more are waiting
			}
		}
		if err := lease.sleep(ctx, d.Poll, cursor); err != nil {
			return err
		}
	}
}

// deliver posts one batch until a receiver takes it, backing off between
// failed attempts and keeping the lease meanwhile (cursor unchanged).
func (d *Dispatcher) deliver(ctx context.Context, h *Hook, lease *leaseKeeper, cursor int64, changes []Change) error {
	log := d.Log.With("hook", h.Name, "target", h.Target())
	delivery := newDelivery(h.Name, changes)
	h.stats.Pending.Store(int64(len(changes)))
	defer h.stats.Pending.Store(0)
	backoff := presence.Backoff{Min: h.RetryMin, Max: h.RetryMax}
	for {
		err := post(ctx, d.client, h, delivery, d.Now())
		if err == nil {
			h.stats.Delivered.Add(int64(len(changes)))
			h.stats.LastSuccess.Store(d.Now().UnixMilli())
			if backoff.Failures() > 0 {
				log.Info("webhook: delivered after failures", "delivery", delivery.ID, "attempts", backoff.Failures()+1)
			} else {
				log.Debug("webhook: delivered", "delivery", delivery.ID, "changes", len(changes))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.stats.Failed.Add(1)
		wait := backoff.Next()
		// The first failure and then every doubling: a hook down for hours
		// writes a few dozen lines, not one per attempt.
		if n := backoff.Failures(); n&(n-1) == 0 {
			log.Warn("webhook: delivery failed; retrying", "delivery", delivery.ID, "attempt", n,
				"kind", failureKind(err), "err", safeErr(err), "retry_in", wait)
		}
		if err := lease.sleep(ctx, wait, cursor); err != nil {
			return err
		}
	}
}

// leaseKeeper renews a hook's lease often enough that it never lapses
// while this process works: before it is a third gone.
type leaseKeeper struct {
	d       *Dispatcher
	hook    string
	renewed time.Time // local clock; the store's decides expiry
}

// save stores cursor and renews the lease.
func (k *leaseKeeper) save(ctx context.Context, cursor int64) error {
	held, err := k.d.Cursors.SaveWebhookCursor(ctx, k.hook, k.d.Owner, cursor, k.d.Lease)
	if err != nil {
		return err
	}
	if !held {
		return errLeaseLost
	}
	k.renewed = time.Now()
	return nil
}

// sleep waits for d, renewing the lease (at cursor) whenever it is due,
// and renews it once more at the end if due, so that an attempt that
// follows starts with most of a lease ahead.
func (k *leaseKeeper) sleep(ctx context.Context, d time.Duration, cursor int64) error {
	every := k.d.Lease / 3
	deadline := time.Now().Add(d)
	for {
		if time.Since(k.renewed) >= every {
			if err := k.save(ctx, cursor); err != nil {
				return err
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		t := time.NewTimer(min(left, every-time.Since(k.renewed)))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
