package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// journal records what components did, in order.
type journal struct {
	mu    sync.Mutex
	steps []string
}

func (j *journal) add(step string) {
	j.mu.Lock()
	j.steps = append(j.steps, step)
	j.mu.Unlock()
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.steps)
}

// recorded is a component that notes its start, the end of its run and
// its stop.
func recorded(j *journal, name string) component {
	return component{
		name:  name,
		start: func() error { j.add("start " + name); return nil },
		run: func(ctx context.Context) error {
			<-ctx.Done()
			j.add("run ended " + name)
			return nil
		},
		stop: func(context.Context) error { j.add("stop " + name); return nil },
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)) }

func TestLifecycleStartsInOrderAndStopsInReverse(t *testing.T) {
	var j journal
	life := newLifecycle(quietLog())
	for _, name := range []string{"a", "b", "c"} {
		life.add(recorded(&j, name))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- life.run(ctx, time.Minute) }()
	waitFor(t, func() bool { return len(j.get()) == 3 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run returned %v, want nil after a plain shutdown", err)
	}
	want := []string{"start a", "start b", "start c",
		"stop c", "run ended c", "stop b", "run ended b", "stop a", "run ended a"}
	if got := j.get(); !slices.Equal(got, want) {
		t.Fatalf("steps\n%v\nwant\n%v", got, want)
	}
}

func TestLifecycleFailureStopsEverythingAndIsReturned(t *testing.T) {
	var j journal
	life := newLifecycle(quietLog())
	life.add(recorded(&j, "a"))
	boom := errors.New("boom")
	life.add(component{name: "failing", run: func(context.Context) error { return boom }})
	life.add(recorded(&j, "c"))
	err := life.run(context.Background(), time.Minute) // ends by itself: the failure
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "failing") {
		t.Fatalf("run returned %v, want the failure named after its component", err)
	}
	if got := j.get(); !slices.Contains(got, "run ended a") || !slices.Contains(got, "run ended c") {
		t.Fatalf("steps %v: every component must have stopped", got)
	}
}

func TestLifecycleStartFailureStopsOnlyWhatStarted(t *testing.T) {
	var j journal
	life := newLifecycle(quietLog())
	life.add(recorded(&j, "a"))
	life.add(component{name: "bad", start: func() error { return errors.New("no port") }})
	life.add(recorded(&j, "never"))
	err := life.run(context.Background(), time.Minute)
	if err == nil || !strings.Contains(err.Error(), "start bad: no port") {
		t.Fatalf("run returned %v, want the start failure", err)
	}
	want := []string{"start a", "stop a", "run ended a"}
	if got := j.get(); !slices.Equal(got, want) {
		t.Fatalf("steps %v, want %v", got, want)
	}
}

func TestLifecycleOnlyCriticalStopErrorsFailTheProcess(t *testing.T) {
	for _, critical := range []bool{false, true} {
		life := newLifecycle(quietLog())
		life.add(component{name: "outbox", critical: critical, stop: func(context.Context) error {
			return errors.New("3 events lost")
		}})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := life.run(ctx, time.Minute)
		if critical != (err != nil) {
			t.Fatalf("critical=%v: run returned %v", critical, err)
		}
	}
}

func TestLifecycleAbortStopsWhatWasAdded(t *testing.T) {
	var j journal
	life := newLifecycle(quietLog())
	life.add(recorded(&j, "db"))
	err := life.abort(errors.New("listen: address in use"))
	if err == nil || !strings.Contains(err.Error(), "address in use") {
		t.Fatalf("abort returned %v", err)
	}
	if got := j.get(); !slices.Equal(got, []string{"stop db"}) {
		t.Fatalf("steps %v, want only the stop of what was added", got)
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
