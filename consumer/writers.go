package consumer

import "sync"

// writerPool runs the Pump's batches, at most n at once, each in its own
// goroutine and store transaction, and tells how far the log is stored: up
// to the last batch before which every batch is stored, whatever order
// they finished in.
type writerPool struct {
	slots chan struct{} // one token per writer at work (or reading for one)
	wg    sync.WaitGroup

	mu        sync.Mutex
	inFlight  []*pumpBatch // in log order, from the oldest not stored
	storedTo  uint64       // the log is stored up to here…
	newStored bool         // …which storedUpTo has not returned yet
	err       error        // the first batch that failed
}

// pumpBatch is one batch in a writer: the last log seq it holds and the
// clients its events belong to; finished closes when its writer is done
// with it, stored or not.
type pumpBatch struct {
	upTo     uint64
	clients  map[string]struct{}
	done     bool
	finished chan struct{}
}

func newWriterPool(n int) *writerPool {
	return &writerPool{slots: make(chan struct{}, max(n, 1))}
}

// acquire waits for a free writer. It fails with the error of a batch
// that failed meanwhile: the Pump stops at its first failure (its context
// ended, or an invalid record could not be parked), as with one writer.
func (w *writerPool) acquire() error {
	if err := w.failure(); err != nil {
		return err
	}
	w.slots <- struct{}{}
	return w.failure()
}

// release frees a writer acquire took and run did not.
func (w *writerPool) release() { <-w.slots }

func (w *writerPool) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// busy tells whether batches are being stored.
func (w *writerPool) busy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.inFlight) > 0
}

// waitClients waits until no batch in flight holds any of clients, so
// that the events of one client (and so of each of its channels) are stored one batch after the other, in
// log order.
func (w *writerPool) waitClients(clients map[string]struct{}) {
	for {
		w.mu.Lock()
		var busy *pumpBatch
		for _, b := range w.inFlight {
			if b.done || b.clients == nil {
				continue
			}
			for ch := range clients {
				if _, ok := b.clients[ch]; ok {
					busy = b
					break
				}
			}
			if busy != nil {
				break
			}
		}
		w.mu.Unlock()
		if busy == nil {
			return
		}
		<-busy.finished
	}
}

// run stores a batch ending at log seq upTo, of the events of clients,
// in the writer acquire took, and frees the writer when done.
func (w *writerPool) run(apply func() error, upTo uint64, clients map[string]struct{}) {
	b := &pumpBatch{upTo: upTo, clients: clients, finished: make(chan struct{})}
	w.mu.Lock()
	w.inFlight = append(w.inFlight, b)
	w.mu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		err := apply()
		w.mu.Lock()
		if err != nil && w.err == nil {
			w.err = err
		}
		b.done = err == nil
		b.clients = nil // finished: no longer holds its clients
		close(b.finished)
		n := 0
		for n < len(w.inFlight) && w.inFlight[n].done {
			w.storedTo, w.newStored = w.inFlight[n].upTo, true
			n++
		}
		w.inFlight = w.inFlight[n:]
		w.mu.Unlock()
		<-w.slots
	}()
}

// wait waits for every batch run started and returns the first failure.
func (w *writerPool) wait() error {
	w.wg.Wait()
	return w.failure()
}

// storedAlone records a batch stored by the caller itself, with no other
// batch in flight (after wait).
func (w *writerPool) storedAlone(upTo uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.storedTo, w.newStored = upTo, true
}

// storedUpTo returns how far the log is stored, if that moved since the
// last call.
func (w *writerPool) storedUpTo() (uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	moved := w.newStored
	w.newStored = false
	return w.storedTo, moved
}
