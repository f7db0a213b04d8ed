package consumer

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/presenced/presenced/presence"
	"github.com/presenced/presenced/presence/pgstore/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestCoalesceMergesConcurrentBatches applies batches from many goroutines
// through Coalesce into a real store: every event is stored once, each
// caller learns exactly its own new events, and fewer transactions than
// batches were used.
func TestCoalesceMergesConcurrentBatches(t *testing.T) {
	store := pgtest.NewStore(t)
	var mu sync.Mutex
	transactions := 0
	apply := Coalesce(func(ctx context.Context, events []presence.Event) ([]presence.StoredEvent, error) {
		mu.Lock()
		transactions++
		mu.Unlock()
		res, err := store.Apply(ctx, events)
		return res.Applied, err
	}, 2)
	const callers, perBatch, rounds = 20, 32, 10
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				batch := make([]presence.Event, perBatch)
				for i := range batch {
					batch[i] = presence.Event{ClientID: fmt.Sprintf("c%d", c), ChannelID: fmt.Sprintf("ch-%d-%d-%d", c, r, i), Type: presence.EventConnect, Time: 1}
				}
				batch = append(batch, batch[0]) // a duplicate within the batch
				applied, err := apply(context.Background(), batch)
				if err != nil {
					errs <- err
					return
				}
				if len(applied) != perBatch {
					errs <- fmt.Errorf("caller %d round %d learned %d new events, want %d", c, r, len(applied), perBatch)
					return
				}
				for _, a := range applied {
					if a.ClientID != fmt.Sprintf("c%d", c) {
						errs <- fmt.Errorf("caller %d was told about %s", c, a.ChannelID)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var stored int
	if err := store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != callers*perBatch*rounds {
		t.Fatalf("stored %d events, want %d", stored, callers*perBatch*rounds)
	}
	if transactions >= callers*rounds {
		t.Fatalf("%d transactions for %d batches: nothing was merged", transactions, callers*rounds)
	}
	t.Logf("%d batches applied in %d transactions", callers*rounds, transactions)
}
